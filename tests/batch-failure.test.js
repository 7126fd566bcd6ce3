'use strict';
//! A batch the addon could not allocate (nodes/lib/endpoint.js): it hands JS an
//! Error in the batch's place and keeps the events, which JS pulls again later.
//! A fake addon, on sinon's fake clock.

const assert = require('assert');
const sinon = require('sinon');
const { KIND } = require('../nodes/lib/batch');

const RED = { _: (key) => key };
const endpoint = require('../nodes/lib/endpoint')(RED);

/** One batch as the addon encodes it (src/inbox.rs): text messages of session 3. */
function batch(...texts) {
    const payloads = texts.map((t) => Buffer.from(t));
    const header = Buffer.alloc(4 + 16 * texts.length);
    header.writeUInt32LE(texts.length, 0);
    payloads.forEach((p, i) => {
        header.writeUInt32LE(KIND.TEXT, 4 + 16 * i);
        header.writeUInt32LE(3, 8 + 16 * i);
        header.writeUInt32LE(p.length, 12 + 16 * i);
    });
    return Buffer.concat([header, ...payloads]);
}

/** A config node whose addon answers `pull` from `answers` (then null). */
function configNode(answers) {
    const node = { errors: [], sent: [], pulls: 0, error(e) { this.errors.push(e); }, warn() {} };
    Object.assign(node, endpoint.methods);
    endpoint.init(node, { wholemsg: 'false' });
    node.isListener = true;
    node.native = { pull() { node.pulls++; return answers.length ? answers.shift() : null; } };
    node.registerInputNode({ send: (msg) => node.sent.push(msg.payload) });
    return node;
}

const noMemory = () => Object.assign(new Error('could not allocate a Buffer'), { code: 'ERR_WSRS_NO_MEMORY' });

describe('a batch that could not be allocated', function () {
    let clock;
    beforeEach(function () {
        clock = sinon.useFakeTimers();
    });
    afterEach(function () {
        clock.restore();
    });

    it('is reported once, and its events pulled again later, in order', function () {
        // The wake-up brings an Error; the next pull fails too; the one after works.
        const node = configNode([noMemory(), batch('a', 'b'), batch('c')]);
        node.onBatch(noMemory());
        assert.deepStrictEqual(node.errors.map((e) => e.code), ['ERR_WSRS_NO_MEMORY']);
        clock.tick(99);
        assert.strictEqual(node.pulls, 0, 'no retry in a tight loop');
        clock.tick(1);
        assert.strictEqual(node.pulls, 1);
        assert.strictEqual(node.errors.length, 1, 'the same trouble is reported once');
        clock.tick(100);
        assert.deepStrictEqual(node.sent, ['a', 'b']);
        // (An immediate set during a fake tick runs 1 ms later.)
        clock.tick(1);
        assert.deepStrictEqual(node.sent, ['a', 'b', 'c'], 'then pulled one batch per turn as usual');
        clock.tick(1000);
        assert.strictEqual(node.pulls, 4, 'the pulling ends with the null');
        // The control: after a batch got through, a new failure is reported again.
        node.onBatch(noMemory());
        assert.strictEqual(node.errors.length, 2);
    });

    it('thrown by pull is handled the same way', function () {
        const node = configNode([]);
        node.native.pull = () => {
            node.pulls++;
            if (node.pulls === 1) throw noMemory();
            return node.pulls === 2 ? batch('x') : null;
        };
        node.pullBatch();
        assert.strictEqual(node.errors.length, 1);
        clock.tick(100);
        assert.deepStrictEqual(node.sent, ['x']);
    });

    it('is not retried once the node is closing', function () {
        const node = configNode([batch('late')]);
        node.onBatch(noMemory());
        node.closing = true;
        clock.tick(1000);
        assert.deepStrictEqual(node.sent, []);
    });
});
