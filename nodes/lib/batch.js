'use strict';
// Decodes one event batch from the addon (layout documented in src/inbox.rs):
// [count] then [kind, session, len, extra] per event, then the payloads.

const KIND = Object.freeze({ OPEN: 1, TEXT: 2, BINARY: 3, CLOSE: 4, ERROR: 5, CONNECTING: 6, DROPPED: 7, ROOMS: 8, IDLE: 9 });

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Calls `visit(kind, session, buf, start, end, extra)` for each event, in order. */
function forEachEvent(buf, visit) {
    const count = buf.readUInt32LE(0);
    const headerWords = 1 + count * 4;
    if (headerWords * 4 > buf.length) throw new RangeError('batch of ' + count + ' events in ' + buf.length + ' bytes');
    // The addon's Buffers start aligned: the header read as u32s, without
    // readUInt32LE's checks on each of the four words of every event.
    const words = LITTLE_ENDIAN && buf.byteOffset % 4 === 0
        ? new Uint32Array(buf.buffer, buf.byteOffset, headerWords)
        : Uint32Array.from({ length: headerWords }, (_, i) => buf.readUInt32LE(i * 4));
    let offset = headerWords * 4;
    for (let w = 1; w < headerWords; w += 4) {
        const len = words[w + 2];
        // A payload past the batch's end would read whatever follows it in memory.
        if (offset + len > buf.length) throw new RangeError('event payload of ' + len + ' bytes at ' + offset + ' past the batch\'s ' + buf.length);
        visit(words[w], words[w + 1], buf, offset, offset + len, words[w + 3]);
        offset += len;
    }
}

/**
 * Below this a binary payload is copied out of its batch (up to 256 KiB), so that a
 * flow keeping a small Buffer does not keep the whole batch: copied into Node's
 * shared 8 KiB pool (Buffer.allocUnsafe), at ~0.1-0.5 us up to 1 KiB and ~1.7 us at
 * 4 KiB. From 4 KiB up a payload stays a view, pinning at most 64 times its own
 * size (core's ws keeps views of its 64 KiB socket reads, the same bound for 1 KiB
 * messages), where a copy would need its own allocation (2.4 us at 4 KiB, 10 us at
 * 64 KiB).
 */
// VIEW_FROM in src/js/mod.rs must stay equal: the addon writes no such batch into a lent Buffer.
const COPY_BELOW = 4096;

/** A view of the batch (then the batch is never reused: see `isView`) or a copy. */
function binaryPayload(buf, start, end) {
    if (end - start >= COPY_BELOW) return buf.subarray(start, end);
    // From Node's pool, as Buffer.from would take it, without the view Buffer.from
    // needs (~100 against ~135 ns for 64 B).
    const copy = Buffer.allocUnsafe(end - start);
    buf.copy(copy, 0, start, end);
    return copy;
}

/** Whether binaryPayload gave a view of the batch, without asking the Buffer for its memory. */
function isView(start, end) {
    return end - start >= COPY_BELOW;
}

module.exports = { KIND, forEachEvent, binaryPayload, isView, COPY_BELOW };
