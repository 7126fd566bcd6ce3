'use strict';
// Checks the embedded code signature of a thin 64-bit Mach-O file without a Mac:
// finds LC_CODE_SIGNATURE, walks the signature's SuperBlob, and recomputes every
// hash each CodeDirectory holds -- one per page of the file up to codeLimit, and
// one per special slot (requirements, entitlements, ...) -- against the file's
// actual bytes. Apple Silicon kills a process that maps arm64 code whose pages do
// not match its signature, so a binary changed after the linker signed it (by
// strip, install_name_tool, a patch) shows up here as a bad page.
//
// `node macho-signature.js <file>` prints the result; run.js uses verify().

const crypto = require('crypto');
const fs = require('fs');

const MH_MAGIC_64 = 0xfeedfacf;
const LC_CODE_SIGNATURE = 0x1d;

const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
const CSSLOT_ALTERNATE_FIRST = 0x1000;
const CSSLOT_ALTERNATE_LAST = 0x1004;
const CSSLOT_SIGNATURESLOT = 0x10000;
const CS_ADHOC = 0x2;
const CS_LINKER_SIGNED = 0x20000;

// hashType -> [Node's digest name, bytes kept of it]
const HASHES = { 1: ['sha1', 20], 2: ['sha256', 32], 3: ['sha256', 20], 4: ['sha384', 48] };
const HASH_NAMES = { 1: 'SHA-1', 2: 'SHA-256', 3: 'SHA-256/20', 4: 'SHA-384' };

/** The LC_CODE_SIGNATURE of a thin 64-bit little-endian Mach-O, or null when there is none. */
function signatureCommand(file) {
    if (file.length < 32 || file.readUInt32LE(0) !== MH_MAGIC_64) {
        throw new Error('not a thin 64-bit little-endian Mach-O file');
    }
    const ncmds = file.readUInt32LE(16);
    let at = 32;
    for (let i = 0; i < ncmds; i++) {
        const cmd = file.readUInt32LE(at);
        const size = file.readUInt32LE(at + 4);
        if (size < 8 || at + size > file.length) throw new Error('load command ' + i + ' runs past the file');
        if (cmd === LC_CODE_SIGNATURE) return { dataoff: file.readUInt32LE(at + 8), datasize: file.readUInt32LE(at + 12) };
        at += size;
    }
    return null;
}

function digest(type, bytes) {
    const [algo, keep] = HASHES[type];
    return crypto.createHash(algo).update(bytes).digest().subarray(0, keep);
}

/** Checks one CodeDirectory at `cd` (a view of its bytes) against the file; returns its facts. */
function checkCodeDirectory(file, cd, blobs, dataoff) {
    const version = cd.readUInt32BE(8);
    const flags = cd.readUInt32BE(12);
    const hashOffset = cd.readUInt32BE(16);
    const identOffset = cd.readUInt32BE(20);
    const nSpecial = cd.readUInt32BE(24);
    const nCode = cd.readUInt32BE(28);
    let codeLimit = cd.readUInt32BE(32);
    const hashSize = cd.readUInt8(36);
    const hashType = cd.readUInt8(37);
    const pageShift = cd.readUInt8(39);
    if (version >= 0x20300 && cd.length >= 64) {
        const limit64 = Number(cd.readBigUInt64BE(56));
        if (limit64) codeLimit = limit64;
    }
    const problems = [];
    if (!HASHES[hashType] || HASHES[hashType][1] !== hashSize) {
        return { problems: ['unknown hash type ' + hashType + ' of ' + hashSize + ' B'] };
    }
    const end = cd.indexOf(0, identOffset);
    const identifier = cd.toString('utf8', identOffset, end < 0 ? cd.length : end);
    if (hashOffset + nCode * hashSize > cd.length || hashOffset < nSpecial * hashSize) {
        return { problems: ['hash slots run outside the CodeDirectory'] };
    }
    // The signature covers the whole file in front of it.
    if (codeLimit !== dataoff) problems.push('codeLimit ' + codeLimit + ' is not the signature offset ' + dataoff);
    const pageSize = pageShift ? 2 ** pageShift : codeLimit;
    const wantSlots = Math.ceil(codeLimit / pageSize);
    if (nCode !== wantSlots) problems.push(nCode + ' page hashes for ' + wantSlots + ' pages');
    const bad = [];
    for (let i = 0; i < nCode; i++) {
        const start = i * pageSize;
        const page = file.subarray(start, Math.min(start + pageSize, codeLimit));
        const stored = cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize);
        if (!digest(hashType, page).equals(stored)) bad.push(i);
    }
    if (bad.length) problems.push(bad.length + ' of ' + nCode + ' pages do not match their hash (first: page ' + bad[0] + ' at ' + bad[0] * pageSize + ')');
    // Special slot n is stored n hashes in front of page 0; an absent blob hashes as zeros.
    for (let n = 1; n <= nSpecial; n++) {
        const stored = cd.subarray(hashOffset - n * hashSize, hashOffset - (n - 1) * hashSize);
        const blob = blobs.get(n);
        if (blob) {
            if (!digest(hashType, blob).equals(stored)) problems.push('special slot ' + n + ' does not match its blob');
        } else if (stored.some((b) => b !== 0)) {
            problems.push('special slot ' + n + ' has a hash but no blob' + (n === 1 || n === 3 ? ' (Info.plist/resources: not for a dylib)' : ''));
        }
    }
    return {
        problems, identifier, flags, hashType, pageSize, pages: nCode, codeLimit,
        adhoc: (flags & CS_ADHOC) !== 0, linkerSigned: (flags & CS_LINKER_SIGNED) !== 0
    };
}

/**
 * Verifies the signature of `path`. Returns null when the file has no
 * LC_CODE_SIGNATURE, else { ok, adhoc, problems, summary, ... }.
 */
function verify(path) {
    const file = fs.readFileSync(path);
    const lc = signatureCommand(file);
    if (!lc) return null;
    const { dataoff, datasize } = lc;
    if (dataoff + datasize > file.length) return { ok: false, problems: ['signature runs past the end of the file'], summary: '' };
    const sig = file.subarray(dataoff, dataoff + datasize);
    if (sig.readUInt32BE(0) !== CSMAGIC_EMBEDDED_SIGNATURE) {
        return { ok: false, problems: ['no embedded-signature SuperBlob at ' + dataoff], summary: '' };
    }
    const length = sig.readUInt32BE(4);
    const count = sig.readUInt32BE(8);
    if (length > datasize || 12 + count * 8 > length) return { ok: false, problems: ['SuperBlob header out of bounds'], summary: '' };
    const blobs = new Map();
    for (let i = 0; i < count; i++) {
        const type = sig.readUInt32BE(12 + i * 8);
        const offset = sig.readUInt32BE(16 + i * 8);
        if (offset + 8 > length) return { ok: false, problems: ['blob ' + type + ' outside the SuperBlob'], summary: '' };
        const blobLength = sig.readUInt32BE(offset + 4);
        if (offset + blobLength > length) return { ok: false, problems: ['blob ' + type + ' runs past the SuperBlob'], summary: '' };
        blobs.set(type, sig.subarray(offset, offset + blobLength));
    }
    const problems = [];
    const directories = [...blobs.keys()]
        .filter((t) => t === CSSLOT_CODEDIRECTORY || (t >= CSSLOT_ALTERNATE_FIRST && t <= CSSLOT_ALTERNATE_LAST))
        .sort((a, b) => a - b);
    if (!directories.includes(CSSLOT_CODEDIRECTORY)) problems.push('no CodeDirectory');
    const checked = [];
    for (const t of directories) {
        const cd = blobs.get(t);
        if (cd.readUInt32BE(0) !== CSMAGIC_CODEDIRECTORY) {
            problems.push('slot ' + t + ' is not a CodeDirectory');
            continue;
        }
        const r = checkCodeDirectory(file, cd, blobs, dataoff);
        problems.push(...r.problems.map((p) => (t ? 'alternate CodeDirectory ' + t + ': ' : '') + p));
        checked.push(r);
    }
    // Ad hoc: no CMS signature, or only the empty wrapper (8 bytes) some signers leave.
    const cms = blobs.get(CSSLOT_SIGNATURESLOT);
    const hasCms = !!cms && cms.length > 8;
    const main = checked[0] || {};
    const adhoc = !!main.adhoc && !hasCms;
    const summary = main.hashType
        ? (adhoc ? 'ad-hoc' : hasCms ? 'CMS-signed' : 'signed') + (main.linkerSigned ? ' (linker-signed)' : '') +
          ', ' + checked.map((r) => HASH_NAMES[r.hashType]).join(' + ') + ', ' + main.pages + ' pages of ' + main.pageSize +
          ' B hashed, identifier ' + main.identifier
        : '';
    return { ok: problems.length === 0, adhoc, problems, summary, identifier: main.identifier, dataoff, datasize };
}

module.exports = { verify };

if (require.main === module) {
    const target = process.argv[2];
    if (!target) {
        console.error('usage: node macho-signature.js <mach-o file>');
        process.exit(2);
    }
    const r = verify(target);
    if (!r) {
        console.log(target + ': no code signature');
        process.exit(1);
    }
    console.log(target + ': ' + (r.ok ? 'valid' : 'INVALID') + ' ' + r.summary + (r.problems.length ? ' -- ' + r.problems.join('; ') : ''));
    process.exit(r.ok ? 0 : 1);
}
