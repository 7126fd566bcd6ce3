'use strict';
// What a `websocket out` msg may ask of a listener's sessions beyond a reply or a
// broadcast: multicast (`_session` an array), and through `msg.websocket`:
// `room` (publish to rooms), `join` / `leave` (room membership), `rooms` (list a
// session's rooms, answered on the events output of `websocket in`) and `close`.
// A turn's requests cross into the addon as one program (layout in
// src/commands.rs), with the turn's plain sends in it, in order.

const OP = Object.freeze({ SEND: 1, MULTICAST: 2, PUBLISH: 3, JOIN: 4, LEAVE: 5, CLOSE: 6, ROOMS: 7 });
const NONE = 0xffffffff;
const KEYS = ['room', 'join', 'leave', 'rooms', 'close'];
const MAX_REASON_BYTES = 123;

/** True if `msg.websocket` carries one of our command keys. */
function hasCommand(msg) {
    const w = msg.websocket;
    return w !== null && typeof w === 'object' && !Array.isArray(w) && KEYS.some((k) => w[k] !== undefined);
}

function fail(text) {
    const err = new Error(text);
    err.code = 'ERR_WSRS_INVALID_COMMAND';
    return err;
}

/** Room names: one name or an array of them, each a non-empty string. */
function roomNames(value, key) {
    const list = Array.isArray(value) ? value : [value];
    for (const name of list) {
        if (typeof name !== 'string' || name === '') {
            throw fail('msg.websocket.' + key + ' must be a room name or an array of them (non-empty strings)');
        }
    }
    return list;
}

/** A close code a flow may send (as the addon checks it, RFC 6455 §7.4). */
function closeCodeAllowed(code) {
    return Number.isInteger(code) &&
        ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
}

function closeOf(value) {
    if (value === undefined || value === false) return null;
    if (value === true) return { code: 1000, reason: '' };
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw fail('msg.websocket.close must be true or {code, reason}');
    }
    const code = value.code === undefined ? 1000 : value.code;
    const reason = value.reason === undefined ? '' : value.reason;
    if (!closeCodeAllowed(code)) {
        throw fail('close code ' + code + ' may not be sent: use 1000-1003, 1007-1014 or 3000-4999');
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
        throw fail('a close reason is a string of at most ' + MAX_REASON_BYTES + ' bytes (UTF-8)');
    }
    return { code, reason };
}

/**
 * The commands of `msg`, checked; throws (with nothing sent) when one is not
 * valid. Join, leave and close need the sessions of `msg._session`.
 */
function parse(msg) {
    const w = msg.websocket;
    const cmd = {
        room: w.room === undefined ? null : roomNames(w.room, 'room'),
        join: w.join === undefined ? null : roomNames(w.join, 'join'),
        leave: w.leave === undefined ? null : roomNames(w.leave, 'leave'),
        rooms: w.rooms === undefined || w.rooms === false ? false : w.rooms,
        close: closeOf(w.close)
    };
    if (cmd.rooms !== false && cmd.rooms !== true) throw fail('msg.websocket.rooms must be true');
    if ((cmd.join || cmd.leave || cmd.rooms || cmd.close) && sessionIds(msg._session).length === 0) {
        throw fail('msg.websocket.join, leave, rooms and close need msg._session (one session or an array of them)');
    }
    return cmd;
}

/** The ids (`_session.id`) named by `_session`: a session, an id, or an array of them. */
function sessionIds(session) {
    const list = Array.isArray(session) ? session : session === undefined || session === null ? [] : [session];
    const ids = [];
    for (const s of list) {
        if (typeof s === 'string') ids.push(s);
        else if (s && typeof s === 'object' && s.type === 'websocket' && typeof s.id === 'string') ids.push(s.id);
    }
    return ids;
}

/** The live sessions (the addon's numbers) among `ids`; gone ones are skipped, as core skips them. */
function liveSessions(config, ids) {
    const out = new Set();
    for (const id of ids) {
        const n = config.sessionNumber(id);
        if (config.live.has(n)) out.add(n);
    }
    // A session named twice gets the message once, as a room member does.
    return [...out];
}

/** The turn's program, begun with the sends queued so far in the turn. */
function program(config) {
    if (!config.outProgram) {
        const p = [];
        for (let i = 0; i < config.outTargets.length; i++) p.push(OP.SEND, config.outTargets[i], i);
        config.outProgram = p;
        config.outNames = [];
    }
    config.scheduleFlush();
    return config.outProgram;
}

function payloadIndex(config, data) {
    config.outPayloads.push(data);
    return config.outPayloads.length - 1;
}

function nameIndex(config, name) {
    config.outNames.push(name);
    return config.outNames.length - 1;
}

function pushList(p, list) {
    p.push(list.length);
    for (const x of list) p.push(x);
}

/** `data` to each live session of `ids` (an array `_session`), framed once. */
function multicast(config, ids, data) {
    // Sessions of other instances of a cluster are reached through it.
    if (config.cluster) config.cluster.sendRemote(config, ids.filter((id) => !config.live.has(config.sessionNumber(id))), data);
    const sessions = liveSessions(config, ids);
    if (sessions.length === 0) return;
    const p = program(config);
    p.push(OP.MULTICAST, payloadIndex(config, data));
    pushList(p, sessions);
}

/**
 * Queues what `cmd` asks, in the order: the payload (`data`, if any; to the
 * rooms if `cmd.room`, which wins over `_session`, else to the sessions), then
 * join and leave, then the rooms listing, then close.
 */
function queue(config, msg, cmd, data) {
    const ids = sessionIds(msg._session);
    if (data !== undefined) {
        if (cmd.room) {
            const p = program(config);
            p.push(OP.PUBLISH, payloadIndex(config, data));
            pushList(p, cmd.room.map((r) => nameIndex(config, r)));
        } else if (ids.length > 0) {
            multicast(config, ids, data);
        }
    }
    const sessions = liveSessions(config, ids);
    if (sessions.length === 0) return;
    for (const [op, rooms] of [[OP.JOIN, cmd.join], [OP.LEAVE, cmd.leave]]) {
        if (!rooms) continue;
        const p = program(config);
        p.push(op);
        pushList(p, sessions);
        pushList(p, rooms.map((r) => nameIndex(config, r)));
    }
    if (cmd.rooms) {
        const p = program(config);
        p.push(OP.ROOMS);
        pushList(p, sessions);
    }
    if (cmd.close) {
        const p = program(config);
        p.push(OP.CLOSE);
        pushList(p, sessions);
        p.push(cmd.close.code, cmd.close.reason === '' ? NONE : nameIndex(config, cmd.close.reason));
    }
}

/** Sends the turn's program (the config node's flushOutbox, in program mode). */
function flush(config, RED) {
    const ops = Uint32Array.from(config.outProgram);
    const payloads = config.outPayloads;
    const names = config.outNames;
    config.outProgram = null;
    config.outNames = null;
    config.outTargets = [];
    config.outPayloads = [];
    if (!config.native) return;
    try {
        config.native.run(ops, payloads, names);
    } catch (err) {
        config.warn(RED._('websocket.errors.send-error') + err.message);
    }
}

module.exports = { OP, hasCommand, parse, sessionIds, queue, multicast, flush, closeCodeAllowed };
