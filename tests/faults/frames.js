'use strict';
// Raw WebSocket bytes for the fault tests: an upgrade request, client frames
// (masked, as RFC 6455 requires of clients, unless told otherwise) and a parser
// for what the server sends back.

const crypto = require('crypto');

function upgradeRequest(host, path) {
    return 'GET ' + path + ' HTTP/1.1\r\nHost: ' + host + '\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: ' + crypto.randomBytes(16).toString('base64') + '\r\nSec-WebSocket-Version: 13\r\n\r\n';
}

/** One frame: `opcode`, `payload` (Buffer), FIN set unless `fin: false`; `rsv` bits; `masked` (default true); `length` to lie about it. */
function frame(opcode, payload, { fin = true, rsv = 0, masked = true, length } = {}) {
    const len = length === undefined ? payload.length : length;
    const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
    const mask = masked ? 0x80 : 0;
    if (len < 126) head.push(mask | len);
    else if (len < 65536) head.push(mask | 126, len >> 8, len & 255);
    else {
        head.push(mask | 127);
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(len));
        head.push(...b);
    }
    if (!masked) return Buffer.concat([Buffer.from(head), payload]);
    const key = crypto.randomBytes(4);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
    return Buffer.concat([Buffer.from(head), key, body]);
}

/** The close code in the server's first close frame after the 101 head in `data`, or null. */
function closeCodeIn(data) {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return null;
    let i = end + 4;
    while (i + 2 <= data.length) {
        const opcode = data[i] & 15;
        let len = data[i + 1] & 127;
        let at = i + 2;
        if (len === 126) {
            len = data.readUInt16BE(at);
            at += 2;
        } else if (len === 127) {
            len = Number(data.readBigUInt64BE(at));
            at += 8;
        }
        if (at + len > data.length) return null;
        if (opcode === 8) return len >= 2 ? data.readUInt16BE(at) : 1005;
        i = at + len;
    }
    return null;
}

/**
 * Parses a server's (unmasked) frames as chunks arrive: `push(chunk)`, then
 * `frames`, each {opcode, payload}, in order.
 */
function frameParser() {
    let buf = Buffer.alloc(0);
    const frames = [];
    return {
        frames,
        push(chunk) {
            buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
            for (;;) {
                if (buf.length < 2) return;
                let len = buf[1] & 127;
                let at = 2;
                if (len === 126) {
                    if (buf.length < 4) return;
                    len = buf.readUInt16BE(2);
                    at = 4;
                } else if (len === 127) {
                    if (buf.length < 10) return;
                    len = Number(buf.readBigUInt64BE(2));
                    at = 10;
                }
                if (buf.length < at + len) return;
                frames.push({ opcode: buf[0] & 15, payload: buf.subarray(at, at + len) });
                buf = buf.subarray(at + len);
            }
        }
    };
}

module.exports = { upgradeRequest, frame, closeCodeIn, frameParser };
