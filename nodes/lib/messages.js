'use strict';
// Mapping between WebSocket messages and Node-RED msg objects, as core does it.

/** `_session.id` is the session number in hex. */
function sessionKey(id) {
    return id.toString(16);
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
    } else {
        msg = { payload: data };
    }
    msg._session = { type: 'websocket', id: session };
    return msg;
}

/**
 * What to send for `msg`, or undefined when there is nothing to send: whole-msg
 * mode sends the msg as JSON without `_session`; payload mode sends a Buffer as
 * binary and anything else as text (objects as JSON). Unlike core, an empty
 * string is sent as an empty frame rather than dropped.
 */
function outboundData(msg, wholemsg, ensureString) {
    if (wholemsg) {
        const hasSession = Object.prototype.hasOwnProperty.call(msg, '_session');
        const session = msg._session;
        if (hasSession) {
            delete msg._session;
        }
        try {
            return JSON.stringify(msg);
        } finally {
            if (hasSession) {
                msg._session = session;
            }
        }
    }
    if (!Object.prototype.hasOwnProperty.call(msg, 'payload')) {
        return undefined;
    }
    return Buffer.isBuffer(msg.payload) ? msg.payload : ensureString(msg.payload);
}

module.exports = { sessionKey, sessionNumber, inboundMsg, outboundData };
