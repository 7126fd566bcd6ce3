'use strict';
// Decodes one event batch from the addon (layout documented in src/inbox.rs):
// [count] then [kind, session, len, extra] per event, then the payloads.

const KIND = Object.freeze({ OPEN: 1, TEXT: 2, BINARY: 3, CLOSE: 4, ERROR: 5, CONNECTING: 6 });

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

module.exports = { KIND, forEachEvent };
