'use strict';
// The batch layout decoded in JS (src/inbox.rs writes it): the same events from
// Buffers at aligned offsets (read as u32s) and at odd ones (read with checks).

const assert = require('assert');
const { KIND, forEachEvent } = require('../nodes/lib/batch');

function batch(events, at) {
    const payloads = events.map((e) => Buffer.from(e.data));
    const size = 4 + events.length * 16 + payloads.reduce((n, p) => n + p.length, 0);
    const buf = Buffer.alloc(at + size).subarray(at);
    buf.writeUInt32LE(events.length, 0);
    let offset = 4 + events.length * 16;
    events.forEach((e, i) => {
        [e.kind, e.session, payloads[i].length, e.extra].forEach((v, k) => buf.writeUInt32LE(v, 4 + i * 16 + k * 4));
        payloads[i].copy(buf, offset);
        offset += payloads[i].length;
    });
    return buf;
}

function decode(buf) {
    const out = [];
    forEachEvent(buf, (kind, session, b, start, end, extra) => out.push({ kind, session, data: b.toString('utf8', start, end), extra }));
    return out;
}

describe('event batches', function () {
    const events = [
        { kind: KIND.OPEN, session: 0xfffffff1, data: 'proto', extra: 5 },
        { kind: KIND.TEXT, session: 0xfffffff1, data: 'héllo', extra: 0 },
        { kind: KIND.BINARY, session: 7, data: '', extra: 0 },
        { kind: KIND.CLOSE, session: 7, data: 'bye', extra: 1000 }
    ];

    it('decodes the same events from Buffers at aligned and at odd offsets in their memory', function () {
        for (const at of [0, 1, 3, 4, 8]) {
            assert.deepStrictEqual(decode(batch(events, at)), events, 'at offset ' + at);
        }
        assert.deepStrictEqual(decode(batch([], 0)), []);
    });

    it('refuses a batch whose header runs past its end', function () {
        const buf = batch(events, 0);
        assert.throws(() => decode(buf.subarray(0, 4 + 3 * 16)), RangeError);
    });

    it('refuses an event whose payload runs past the batch, and visits none of it', function () {
        const buf = batch(events, 0);
        const whole = buf.length;
        // The last payload ('bye') one byte short: every event before it is visited.
        const seen = [];
        assert.throws(() => forEachEvent(buf.subarray(0, whole - 1), (kind) => seen.push(kind)), RangeError);
        assert.deepStrictEqual(seen, [KIND.OPEN, KIND.TEXT, KIND.BINARY]);
        // The control: the whole batch visits all four.
        assert.strictEqual(decode(buf).length, 4);
    });
});
