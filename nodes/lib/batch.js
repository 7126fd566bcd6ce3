'use strict';
// Decodes one event batch from the addon (layout documented in src/inbox.rs):
// [count] then [kind, session, len, extra] per event, then the payloads.

const KIND = Object.freeze({ OPEN: 1, TEXT: 2, BINARY: 3, CLOSE: 4, ERROR: 5, CONNECTING: 6, DROPPED: 7, ROOMS: 8, IDLE: 9 });

/** Calls `visit(kind, session, buf, start, end, extra)` for each event, in order. */
function forEachEvent(buf, visit) {
    const count = buf.readUInt32LE(0);
    let header = 4;
    let offset = 4 + count * 16;
    for (let i = 0; i < count; i++) {
        const kind = buf.readUInt32LE(header);
        const session = buf.readUInt32LE(header + 4);
        const len = buf.readUInt32LE(header + 8);
        const extra = buf.readUInt32LE(header + 12);
        visit(kind, session, buf, offset, offset + len, extra);
        header += 16;
        offset += len;
    }
}

/**
 * Below this a binary payload is copied out of its batch (up to 256 KiB), so that a
 * flow keeping a small Buffer does not keep the whole batch: Buffer.from copies
 * these into Node's shared 8 KiB pool, at ~0.1-0.5 us up to 1 KiB and ~1.7 us at
 * 4 KiB. From 4 KiB up a payload stays a view, pinning at most 64 times its own
 * size (core's ws keeps views of its 64 KiB socket reads, the same bound for 1 KiB
 * messages), where a copy would need its own allocation (2.4 us at 4 KiB, 10 us at
 * 64 KiB).
 */
// VIEW_FROM in src/js/mod.rs must stay equal: the addon writes no such batch into a lent Buffer.
const COPY_BELOW = 4096;

function binaryPayload(buf, start, end) {
    const view = buf.subarray(start, end);
    return end - start < COPY_BELOW ? Buffer.from(view) : view;
}

module.exports = { KIND, forEachEvent, binaryPayload, COPY_BELOW };
