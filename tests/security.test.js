'use strict';
//! The security guarantees of the README's Security section, one by one: only a
//! deployed listener's exact path is answered.

const assert = require('assert');
const crypto = require('crypto');
const net = require('net');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { within } = require('./support');

helper.init(require('./node-red-under-test').runtime);

/** One raw upgrade request for `target`; resolves with the response's head (status line first). */
function upgradeStatus(port, target, extra = '') {
    return within(new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1', () => {
            sock.write('GET ' + target + ' HTTP/1.1\r\nHost: 127.0.0.1:' + port + '\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                'Sec-WebSocket-Key: ' + crypto.randomBytes(16).toString('base64') + '\r\nSec-WebSocket-Version: 13\r\n' + extra + '\r\n');
        });
        let data = '';
        sock.on('data', (d) => {
            data += d.toString('latin1');
            const end = data.indexOf('\r\n\r\n');
            if (end >= 0) {
                sock.destroy();
                resolve(data.slice(0, end));
            }
        });
        sock.on('error', reject);
    }), 5000, 'an answer to ' + target);
}

describe('security', function () {
    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(() => helper.unload());

    describe('only a deployed listener\'s exact path is answered (as core: url.parse(req.url).pathname)', function () {
        const ANSWERED = ['/ws/echo', '/ws/echo?x', '/ws/echo?a=1&b=/x#frag', 'http://127.0.0.1/ws/echo', 'ws://elsewhere:1/ws/echo?x'];
        const NOT_OURS = ['/ws/echo/', '/WS/ECHO', '/ws/Echo', '//ws/echo', '/ws/echo/../echo', '/ws/x/../echo', '/ws/./echo',
            'http://h/ws/x/../echo', 'http://h/ws/./echo', 'http://h//ws/echo', '/ws/%65cho', '/ws%2Fecho', '/ws/echo%00', '/ws\\echo',
            '/ws/echo;x', '/ws/echox', '/ws', '/ws/', '/', '*', 'http://h', 'http://h/WS/ECHO'];
        let fallback;

        before(function () {
            // Answers whatever our handler (registered first) left alone.
            fallback = (req, socket) => {
                if (!socket.destroyed) socket.end('HTTP/1.1 404 Not ours\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
            };
        });
        afterEach(() => helper._server.off('upgrade', fallback));

        it('answers the path itself, with a query or fragment, or as an absolute-form target; leaves every look-alike to others', async function () {
            await helper.load(wsNode, [
                { id: 'l', type: 'websocket-listener', path: '/ws/echo', wholemsg: 'false' },
                { id: 'in', type: 'websocket in', server: 'l', client: '', wires: [['out']] },
                { id: 'out', type: 'websocket out', server: 'l', client: '' }
            ]);
            helper._server.on('upgrade', fallback);
            const port = Number(new URL(helper.url()).port);
            const got = {};
            for (const target of [...ANSWERED, ...NOT_OURS]) got[target] = (await upgradeStatus(port, target)).split('\r\n')[0];
            const expected = {};
            for (const t of ANSWERED) expected[t] = 'HTTP/1.1 101 Switching Protocols';
            for (const t of NOT_OURS) expected[t] = 'HTTP/1.1 404 Not ours';
            assert.deepStrictEqual(got, expected);
        });
    });

    it('answers only a subprotocol that is a token, since the 101 echoes it (as ws 8)', async function () {
        await helper.load(wsNode, [{ id: 'l', type: 'websocket-listener', path: '/ws/proto', wholemsg: 'false' }]);
        const port = Number(new URL(helper.url()).port);
        const ok = await upgradeStatus(port, '/ws/proto', 'Sec-WebSocket-Protocol: chat, x\r\n');
        assert.match(ok, /^HTTP\/1.1 101 [^]*\r\nSec-WebSocket-Protocol: chat$/m);
        for (const offer of ['"chat"', 'chat, a b', 'ch\u00e2t']) {
            const head = await upgradeStatus(port, '/ws/proto', 'Sec-WebSocket-Protocol: ' + offer + '\r\n');
            assert.strictEqual(head.split('\r\n')[0], 'HTTP/1.1 400 Bad Request', offer);
        }
    });
});
