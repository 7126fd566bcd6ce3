'use strict';
//! Reading the limit properties (nodes/lib/limits.js): sizes, origins as browsers
//! send them, and the defaults of blank properties.

const assert = require('assert');
const { limitsOf, parseSize, normalizeOrigin, originAllowed, formatSize, DEFAULTS } = require('../nodes/lib/limits');

describe('limit properties', function () {
    it('read sizes in MiB unless a unit is given', function () {
        assert.strictEqual(parseSize('32'), 32 << 20);
        assert.strictEqual(parseSize('0.5'), 512 << 10);
        assert.strictEqual(parseSize('64 KiB'), 64 << 10);
        assert.strictEqual(parseSize('64k'), 64 << 10);
        assert.strictEqual(parseSize('1 GiB'), 1 << 30);
        assert.strictEqual(parseSize('100 B'), 100);
        for (const bad of ['0', '64 KB', '-1', '', 'MiB', '1e3']) assert.ok(Number.isNaN(parseSize(bad)), bad);
        assert.strictEqual(formatSize(32 << 20), '32 MiB');
        assert.strictEqual(formatSize(1536), '1.5 KiB');
    });

    it('normalize origins the way browsers send them', function () {
        assert.strictEqual(normalizeOrigin('HTTPS://Example.COM:443/'), 'https://example.com');
        assert.strictEqual(normalizeOrigin('http://localhost:01880'), 'http://localhost:1880');
        assert.strictEqual(normalizeOrigin('http://[::1]:80'), 'http://[::1]');
        assert.strictEqual(normalizeOrigin('https://bücher.example'), 'https://xn--bcher-kva.example');
        assert.strictEqual(normalizeOrigin('NULL'), 'null');
        for (const bad of ['example.com', 'https://a.example/path', 'https://a.example?x', 'http://u@h', 'http://h:65536']) {
            assert.strictEqual(normalizeOrigin(bad), null, bad);
        }
    });

    it('allow any origin with an empty list, and a request without Origin with any list', function () {
        const list = limitsOf({ limOrigins: 'https://a.example, null' }, true, assert.fail).origins;
        assert.deepStrictEqual(list, ['https://a.example', 'null']);
        assert.ok(originAllowed(list, 'https://A.example'));
        assert.ok(originAllowed(list, 'null'));
        assert.ok(originAllowed(list, undefined));
        assert.ok(!originAllowed(list, 'https://b.example'));
        assert.ok(!originAllowed(list, 'garbage'));
        assert.ok(originAllowed([], 'https://b.example'));
    });

    it('give blank properties the defaults; a client has no connection limit or origins', function () {
        const listener = limitsOf({ limConns: ' ', limOrigins: '' }, true, assert.fail);
        const client = limitsOf({ limConns: '5', limOrigins: 'https://a.example' }, false, assert.fail);
        assert.strictEqual(listener.handshakeMs, DEFAULTS.listenerHandshakeMs);
        assert.strictEqual(client.handshakeMs, DEFAULTS.clientHandshakeMs);
        assert.deepStrictEqual([client.maxConnections, client.origins], [0, []]);
        const set = limitsOf({ limHandshake: '2.5', limIdle: '60', limConns: '10', limPolicy: ' drop ' }, true, assert.fail);
        assert.deepStrictEqual([set.handshakeMs, set.idleTimeoutMs, set.maxConnections, set.queuePolicy], [2500, 60000, 10, 'drop']);
    });
});
