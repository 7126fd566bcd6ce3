'use strict';
// Connection events as msgs: a `websocket in` node whose `events` option is on
// gets connect, disconnect and error on its second output. Nothing here runs,
// and nothing about a connection is kept, unless such a node uses the config node.

const { pathOf } = require('./upgrade');
const { KIND } = require('./batch');

/**
 * Sets up a config node's share: the in nodes that want events (each with the
 * number of the first connect it can have seen), and the sessions announced,
 * each with its connect's number.
 */
function init(node) {
    node.eventNodes = new Map();
    node.announced = new Map();
    node.connects = 0;
}

/** The `websocket in` node `node` wants events of `config`'s sessions from now on. */
function register(config, node) {
    config.eventNodes.set(node, config.connects + 1);
}

function unregister(config, node) {
    config.eventNodes.delete(node);
}

/** A query string as an object; a name given more than once gets an array of its values. */
function queryOf(url) {
    const q = url.indexOf('?');
    const query = {};
    if (q < 0) return query;
    const end = url.indexOf('#', q);
    for (const [name, value] of new URLSearchParams(url.slice(q + 1, end < 0 ? undefined : end))) {
        const had = query[name];
        query[name] = had === undefined ? value : [].concat(had, value);
    }
    return query;
}

/**
 * What a connect event tells of a listener's client, taken from the upgrade
 * request as it is handed to Rust, which gives it back with the session's open
 * event (so it exists only for a session that opened, and JS keeps nothing
 * meanwhile). `extra` adds fields (such as a verified identity).
 */
function connectInfo(req, socket, hidden) {
    let url = req.url || '';
    let headers = req.headers;
    if (hidden) {
        // The listener's credential stays out of the flow (and so out of debug
        // sidebars, context and logs).
        url = withoutParam(url, hidden.param);
        if (headers.authorization !== undefined) {
            headers = Object.assign({}, headers);
            delete headers.authorization;
        }
    }
    const info = {
        url,
        path: pathOf(url),
        query: queryOf(url),
        headers,
        remoteAddress: socket.remoteAddress
    };
    return JSON.stringify(info);
}

/** `url` without the query parameter `name` (the others as they were written). */
function withoutParam(url, name) {
    const q = url.indexOf('?');
    if (q < 0) return url;
    const hash = url.indexOf('#', q);
    const query = url.slice(q + 1, hash < 0 ? undefined : hash);
    const decodedName = (pair) => {
        const key = pair.split('=')[0];
        try {
            return decodeURIComponent(key.replace(/\+/g, ' '));
        } catch (err) {
            return key;
        }
    };
    const kept = query.split('&').filter((pair) => decodedName(pair) !== name);
    return url.slice(0, q) + (kept.length ? '?' + kept.join('&') : '') + (hash < 0 ? '' : url.slice(hash));
}

function eventMsg(config, event, session, details) {
    return {
        payload: event,
        _session: { type: 'websocket', id: config.sessionId(session) },
        websocket: Object.assign({ event }, details)
    };
}

/** Sends `msg` to the event nodes registered by connect number `seen` (all if absent). */
function emit(config, msg, seen) {
    for (const [n, since] of config.eventNodes) {
        if (seen !== undefined && since > seen) continue;
        try {
            n.send([null, msg]);
        } catch (err) {
            n.error(err);
        }
    }
}

/** A session's rooms as the addon lists them: `count` names, each a u32 (LE) length and UTF-8. */
function roomList(buf, start, count) {
    const rooms = [];
    let at = start;
    for (let i = 0; i < count; i++) {
        const len = buf.readUInt32LE(at);
        rooms.push(buf.toString('utf8', at + 4, at + 4 + len));
        at += 4 + len;
    }
    return rooms;
}

/**
 * An event of the addon's batch (called for open, close, error and rooms only): the
 * matching msg, if any node wants it. A disconnect follows only a connect that
 * was emitted, for the same session.
 */
function onEvent(config, kind, session, buf, start, end, extra) {
    switch (kind) {
        case KIND.OPEN: {
            if (config.eventNodes.size === 0) return;
            const subprotocol = buf.toString('latin1', start, start + extra) || null;
            let details;
            if (config.isListener) {
                // Nothing handed over: no node wanted events when the client came.
                if (end - start <= extra) return;
                details = JSON.parse(buf.toString('utf8', start + extra, end));
                details.subprotocol = subprotocol;
            } else {
                // The URL dialled (the configured one, or one asked for by msg), without credentials.
                details = { url: buf.toString('utf8', start + extra, end) || config.path, subprotocol };
            }
            const seen = ++config.connects;
            config.announced.set(session, seen);
            emit(config, eventMsg(config, 'connect', session, details));
            break;
        }
        case KIND.CLOSE: {
            // Only to the nodes that were there for the connect.
            const seen = config.announced.get(session);
            if (seen === undefined) return;
            config.announced.delete(session);
            if (config.eventNodes.size === 0) return;
            emit(config, eventMsg(config, 'disconnect', session, { code: extra, reason: buf.toString('utf8', start, end) }), seen);
            break;
        }
        case KIND.ERROR:
            if (config.eventNodes.size === 0) return;
            emit(config, eventMsg(config, 'error', session, { message: buf.toString('utf8', start, end) }));
            break;
        case KIND.ROOMS:
            // The answer to msg.websocket.rooms, in order with the session's other events.
            if (config.eventNodes.size === 0) return;
            // `list`, not `rooms`: wired back to a websocket out, this msg must not read as a request.
            emit(config, eventMsg(config, 'rooms', session, { list: roomList(buf, start, extra) }));
            break;
    }
}

module.exports = { init, register, unregister, connectInfo, queryOf, withoutParam, onEvent };
