'use strict';
// Test-only child process of the Rust property test in src/inbox/props.rs: it
// decodes real batches with the shipped decoder, so the round trip crosses from the
// Rust encoder to nodes/lib/batch.js. Not a mocha file, not shipped.
//
// stdin: frames of [u32 LE length][batch bytes]. stdout: one JSON line per frame,
// {events: [[kind, session, extra, payloadBase64, text], ...]} or {error}. Each event
// is read as nodes/lib/endpoint.js reads it: text and error events as a string (also
// given as `text`), binary ones through binaryPayload, a Dropped event's count from
// `extra`; the other kinds carry no payload the node looks at, given raw here.

const { KIND, forEachEvent, binaryPayload } = require('../nodes/lib/batch');

function decode(buf) {
    const events = [];
    forEachEvent(buf, (kind, session, data, start, end, extra) => {
        let payload = data.subarray(start, end);
        let text = null;
        if (kind === KIND.TEXT || kind === KIND.ERROR) {
            text = data.toString('utf8', start, end);
        } else if (kind === KIND.BINARY) {
            payload = binaryPayload(data, start, end);
        } else if (kind === KIND.DROPPED && end !== start) {
            throw new Error('a Dropped event with a payload');
        }
        events.push([kind, session, extra, Buffer.from(payload).toString('base64'), text]);
    });
    return { events };
}

let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
        const len = pending.readUInt32LE(0);
        if (pending.length < 4 + len) break;
        // A copy: the decoder must not depend on where the batch sits in memory.
        const batch = Buffer.from(pending.subarray(4, 4 + len));
        pending = pending.subarray(4 + len);
        let reply;
        try {
            reply = decode(batch);
        } catch (err) {
            reply = { error: String(err && err.stack || err) };
        }
        process.stdout.write(JSON.stringify(reply) + '\n');
    }
});
