'use strict';
// Mapping between WebSocket messages and Node-RED msg objects, as core does it.

const crypto = require('crypto');

// A msg's `_msgid`: 16 random hex digits, as Node-RED's generateId makes them.
// Node.send makes one for a msg that has none, with eight Math.random calls and
// string joins (~400 ns). Here a pool of random bytes is turned into hex once
// per refill, and each id is two 8-digit pieces of it joined: V8 copies pieces
// that short, so an id kept by a flow keeps 16 digits alive, not the pool (a
// 16-digit substring would be a view of it). ~35 ns, against ~75 ns for a
// Buffer#toString('hex') per id, a C++ call that was 6% of an echo flow's JS time.
const ID_POOL = Buffer.alloc(4096);
let idHex = '';
let idOffset = 0;

function newMsgId() {
    if (idOffset === idHex.length) {
        crypto.randomFillSync(ID_POOL);
        idHex = ID_POOL.toString('hex');
        idOffset = 0;
    }
    idOffset += 16;
    return idHex.substring(idOffset - 16, idOffset - 8) + idHex.substring(idOffset - 8, idOffset);
}

// The last key made for each of 256 slots (by the number's low byte): session
// numbers are random u32s, mostly beyond V8's small integers, whose toString(16)
// takes a slow path (~60 ns, 4% of an echo flow's JS time); a few sessions
// carry most traffic. Fixed size, so idle sessions cost nothing here.
const KEY_NUMBERS = new Uint32Array(256);
const KEY_TEXT = new Array(256).fill('');

/** `_session.id` is the session number in hex. */
function sessionKey(id) {
    const slot = id & 255;
    if (KEY_NUMBERS[slot] === id && KEY_TEXT[slot] !== '') return KEY_TEXT[slot];
    const key = id.toString(16);
    if (id >>> 0 === id) {
        KEY_NUMBERS[slot] = id;
        KEY_TEXT[slot] = key;
    }
    return key;
}

/** The keys of msg.websocket that ask the out node for something (lib/commands.js, lib/client-control.js). */
const REQUEST_KEYS = ['room', 'join', 'leave', 'rooms', 'close', 'connect', 'disconnect'];

function carriesRequest(w) {
    return w !== null && typeof w === 'object' && REQUEST_KEYS.some((k) => w[k] !== undefined);
}

/**
 * The session number a `_session.id` names, or -1: only `sessionKey`'s exact
 * spelling counts (1 to 8 lowercase hex digits, no leading zero). Read digit by
 * digit: a regular expression and parseInt took ~2% of an echo flow's JS time.
 */
function sessionNumber(key) {
    if (typeof key !== 'string' || key.length === 0 || key.length > 8) return -1;
    let n = 0;
    for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i);
        const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
        if (digit < 0 || (i === 0 && digit === 0)) return -1;
        n = n * 16 + digit;
    }
    return n;
}

/**
 * Builds the msg for an inbound message. In whole-message mode a JSON object
 * becomes the msg itself; any other JSON value, or text that is not JSON, is
 * the payload. (Core passes JSON arrays and null through as the msg itself,
 * which Node-RED then misreads; we wrap them as payload.)
 */
function inboundMsg(data, wholemsg, session) {
    let msg;
    if (wholemsg) {
        try {
            const parsed = JSON.parse(data);
            msg = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : { payload: parsed };
        } catch (err) {
            msg = { payload: data };
        }
        // A peer does not get to send the out node's requests (join any room,
        // close, reconnect...) through a flow that passes its msgs on, as it
        // does not get to choose `_session`.
        if (carriesRequest(msg.websocket)) delete msg.websocket;
        msg._session = { type: 'websocket', id: session };
        // A peer's own _msgid stays, as Node.send would keep it.
        if (!msg._msgid) msg._msgid = newMsgId();
        return msg;
    }
    // One literal, its keys in the order core's msg ends up with.
    return { payload: data, _session: { type: 'websocket', id: session }, _msgid: newMsgId() };
}

/**
 * What to send for `msg`, or undefined when there is nothing to send: whole-msg
 * mode sends the msg as JSON without `_session` (and without `websocket` when
 * `command`: it carries requests for the out node, lib/commands.js); payload
 * mode sends a Buffer as binary and anything else as text (objects as JSON).
 * Unlike core, an empty string is sent as an empty frame rather than dropped.
 */
function outboundData(msg, wholemsg, ensureString, command) {
    if (wholemsg) {
        const hidden = command ? ['_session', 'websocket'] : ['_session'];
        const kept = hidden.filter((k) => Object.prototype.hasOwnProperty.call(msg, k)).map((k) => [k, msg[k]]);
        for (const [k] of kept) {
            delete msg[k];
        }
        try {
            return JSON.stringify(msg);
        } finally {
            for (const [k, v] of kept) {
                msg[k] = v;
            }
        }
    }
    if (!Object.prototype.hasOwnProperty.call(msg, 'payload')) {
        return undefined;
    }
    return Buffer.isBuffer(msg.payload) ? msg.payload : ensureString(msg.payload);
}

module.exports = { sessionKey, sessionNumber, inboundMsg, outboundData, newMsgId, REQUEST_KEYS };
