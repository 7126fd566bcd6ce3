'use strict';
//! Warnings about messages dropped by the queue policy "drop" (nodes/lib/endpoint.js),
//! fed the addon's events directly, on sinon's fake clock.

const assert = require('assert');
const sinon = require('sinon');
const { KIND } = require('../nodes/lib/batch');

const RED = { _: (key, args) => key + (args ? ' ' + JSON.stringify(args) : '') };
const endpoint = require('../nodes/lib/endpoint')(RED);

/** A config node with the endpoint's state and methods, its warnings logged. */
function configNode() {
    const node = { warnings: [], warn(m) { this.warnings.push(String(m)); }, error(e) { throw e; }, limits: { maxQueueBytes: 1 << 20 } };
    Object.assign(node, endpoint.methods);
    endpoint.init(node, { wholemsg: 'false' });
    node.isListener = true;
    node.event = (kind, session, extra = 0) => node.visitEvent(kind, session, Buffer.alloc(0), 0, 0, extra);
    return node;
}

const counts = (node) => node.warnings.filter((w) => /dropped/.test(w)).map((w) => JSON.parse(w.slice(w.indexOf('{'))).count);

describe('drop warnings', function () {
    let clock;
    beforeEach(function () {
        clock = sinon.useFakeTimers();
    });
    afterEach(function () {
        clock.restore();
    });

    it('logs the count of a session whose drops stopped while it stays connected, once its 10 s are over', function () {
        const node = configNode();
        node.event(KIND.OPEN, 5);
        node.event(KIND.DROPPED, 5, 3);
        assert.deepStrictEqual(counts(node), [3], 'the first drops are warned at once');
        clock.tick(1000);
        node.event(KIND.DROPPED, 5, 4);
        clock.tick(8999);
        assert.deepStrictEqual(counts(node), [3], 'at most one warning per 10 s');
        clock.tick(1);
        assert.deepStrictEqual(counts(node), [3, 7], 'the outstanding count, with no later drop to bring it');
        clock.tick(60000);
        assert.deepStrictEqual(counts(node), [3, 7], 'nothing new, nothing logged');
        // The control: drops just before the close are logged at the close.
        node.event(KIND.DROPPED, 5, 2);
        clock.tick(500);
        node.event(KIND.DROPPED, 5, 1);
        node.event(KIND.CLOSE, 5, 1000);
        assert.deepStrictEqual(counts(node), [3, 7, 9, 10]);
        clock.tick(20000);
        assert.deepStrictEqual(counts(node), [3, 7, 9, 10], 'no timer outlives the session');
        assert.strictEqual(node.dropped, 10);
    });

    it('counts in `dropped` only the drops it warns of: none for a session that has ended', function () {
        const node = configNode();
        node.event(KIND.OPEN, 8);
        node.event(KIND.DROPPED, 8, 2);
        node.event(KIND.CLOSE, 8, 1000);
        node.event(KIND.DROPPED, 8, 5);
        node.event(KIND.DROPPED, 9, 1);
        assert.strictEqual(node.dropped, 2);
        assert.deepStrictEqual(counts(node), [2]);
    });

    it('logs the outstanding count as the node closes, and nothing after', function () {
        const node = configNode();
        node.event(KIND.OPEN, 5);
        node.event(KIND.DROPPED, 5, 1);
        node.event(KIND.DROPPED, 5, 1);
        let done = false;
        node.closeNative(() => { done = true; });
        assert.ok(done);
        assert.deepStrictEqual(counts(node), [1, 2]);
        clock.tick(20000);
        assert.deepStrictEqual(counts(node), [1, 2]);
    });
});
