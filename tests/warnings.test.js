'use strict';
//! The rate limit on warnings about peers (nodes/lib/warnings.js), on sinon's fake clock.

const assert = require('assert');
const sinon = require('sinon');
const { limiter, LIMIT, WINDOW_MS } = require('../nodes/lib/warnings');

describe('warnings about peers', function () {
    let clock;
    let log;
    let w;
    beforeEach(function () {
        clock = sinon.useFakeTimers();
        log = [];
        w = limiter((text) => log.push(text), (count, seconds) => log.push('+' + count + ' in ' + seconds + ' s'));
    });
    afterEach(function () {
        clock.restore();
    });

    it('logs the first ones of a window, then one summary when the window ends', function () {
        for (let i = 0; i < LIMIT + 25; i++) w.warn('w' + i);
        assert.deepStrictEqual(log, Array.from({ length: LIMIT }, (_, i) => 'w' + i));
        clock.tick(WINDOW_MS - 1);
        assert.strictEqual(log.length, LIMIT, 'summarized before the window ended');
        clock.tick(1);
        assert.deepStrictEqual(log.slice(LIMIT), ['+25 in ' + WINDOW_MS / 1000 + ' s']);
        w.warn('next window');
        assert.strictEqual(log[log.length - 1], 'next window');
    });

    it('logs every warning while they stay under the limit, and never summarizes nothing', function () {
        for (let round = 0; round < 3; round++) {
            for (let i = 0; i < LIMIT; i++) w.warn('r' + round + ':' + i);
            clock.tick(WINDOW_MS);
        }
        assert.strictEqual(log.length, 3 * LIMIT);
        assert.ok(log.every((line) => !line.startsWith('+')), log.join('\n'));
    });

    it('reports what it held back when the node closes', function () {
        for (let i = 0; i < LIMIT + 2; i++) w.warn('w' + i);
        w.close();
        assert.deepStrictEqual(log.slice(LIMIT), ['+2 in ' + WINDOW_MS / 1000 + ' s']);
        clock.tick(WINDOW_MS);
        assert.strictEqual(log.length, LIMIT + 1, 'a second summary after close');
    });
});
