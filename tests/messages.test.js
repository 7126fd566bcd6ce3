'use strict';
// The msg mapping's helpers on their own: session keys (cached per slot) and msg ids.

const assert = require('assert');
const messages = require('../nodes/lib/messages');

describe('msg mapping helpers', function () {
    it('spells each session number as its own hex key, also numbers that share a cache slot', function () {
        // -1 is not a u32 (never cached): 0xffffffff, in the same slot, gets its own key.
        const numbers = [1, 257, 0x40000001, 0xffffff01, 0x7fffffff, 0x80000000, -1, 0xffffffff, 0x100, 0];
        for (let round = 0; round < 3; round++) {
            for (const n of numbers) {
                assert.strictEqual(messages.sessionKey(n), n.toString(16), 'key of ' + n);
                if (n > 0) assert.strictEqual(messages.sessionNumber(messages.sessionKey(n)), n);
            }
        }
    });

    it('reads a session number only from its exact key', function () {
        for (const [key, n] of [['1', 1], ['ff', 255], ['ffffffff', 0xffffffff], ['9abcdef0', 0x9abcdef0]]) {
            assert.strictEqual(messages.sessionNumber(key), n, key);
        }
        for (const key of ['', '0', '01', 'FF', 'fffffffff', '1g', ' 1', '1 ', '0x1', '-1', '+1', '1.5', 'é', 1, null, undefined, {}]) {
            assert.strictEqual(messages.sessionNumber(key), -1, JSON.stringify(key));
        }
    });

    it('makes msg ids of 16 hex digits, no two alike across refills of its pool', function () {
        const seen = new Set();
        let last = '';
        for (let i = 0; i < 5000; i++) {
            const id = messages.newMsgId();
            assert.match(id, /^[0-9a-f]{16}$/);
            // Not cut from overlapping digits of the pool (which would still be unique).
            assert.notStrictEqual(id.slice(0, 8), last.slice(8), 'id ' + i);
            seen.add(id);
            last = id;
        }
        assert.strictEqual(seen.size, 5000);
    });
});
