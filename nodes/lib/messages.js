'use strict';
// Mapping between WebSocket messages and Node-RED msg objects, as core does it.

/** `_session.id` is the session number in hex. */
function sessionKey(id) {
    return id.toString(16);
}

/** The keys of msg.websocket that ask the out node for something (lib/commands.js, lib/client-control.js). */
const REQUEST_KEYS = ['room', 'join', 'leave', 'rooms', 'close', 'connect', 'disconnect'];

function carriesRequest(w) {
    return w !== null && typeof w === 'object' && REQUEST_KEYS.some((k) => w[k] !== undefined);
}

const KEY = /^[1-9a-f][0-9a-f]{0,7}$/;

/** The session number a `_session.id` names, or -1: only `sessionKey`'s exact spelling counts. */
function sessionNumber(key) {
    return typeof key === 'string' && KEY.test(key) ? parseInt(key, 16) : -1;
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
        return msg;
    }
    // One literal: the msg starts with the properties it carries (Node.send adds _msgid).
    return { payload: data, _session: { type: 'websocket', id: session } };
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

module.exports = { sessionKey, sessionNumber, inboundMsg, outboundData, REQUEST_KEYS };
