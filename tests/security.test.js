'use strict';
//! The security guarantees of the README's Security section, one by one: only a
//! deployed listener's exact path is answered; client headers cannot carry a line
//! break into the handshake; TLS verification is on unless turned off explicitly;
//! no Rust panic reaches Node.js.

const assert = require('assert');
const crypto = require('crypto');
const https = require('https');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const tlsNode = require('@node-red/nodes/core/network/05-tls.js');
const { WebSocket, until, within } = require('./support');
const { makeCerts } = require('./certs');

helper.init(require('./node-red-under-test').runtime);

const ROOT = path.join(__dirname, '..');

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

    it('echoes only a subprotocol that is a token, since the 101 echoes it, and looks at no other entry (as ws 7)', async function () {
        await helper.load(wsNode, [{ id: 'l', type: 'websocket-listener', path: '/ws/proto', wholemsg: 'false' }]);
        const port = Number(new URL(helper.url()).port);
        for (const offer of ['chat, x', 'chat, a b', 'chat, "q", ch\u00e2t']) {
            const ok = await upgradeStatus(port, '/ws/proto', 'Sec-WebSocket-Protocol: ' + offer + '\r\n');
            assert.match(ok, /^HTTP\/1.1 101 [^]*\r\nSec-WebSocket-Protocol: chat$/m, offer);
        }
        for (const offer of ['"chat"', 'a b, chat', 'ch\u00e2t']) {
            const head = await upgradeStatus(port, '/ws/proto', 'Sec-WebSocket-Protocol: ' + offer + '\r\n');
            assert.strictEqual(head.split('\r\n')[0], 'HTTP/1.1 400 Bad Request', offer);
        }
    });

    describe('custom client headers cannot inject lines into the handshake', function () {
        let server;
        const requests = [];
        before(async function () {
            server = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
            server.on('connection', (ws, req) => requests.push(req));
            await new Promise((resolve) => server.once('listening', resolve));
        });
        after(() => new Promise((resolve) => {
            for (const c of server.clients) c.terminate();
            server.close(() => resolve());
        }));
        afterEach(() => { requests.length = 0; });

        function withHeaders(headers) {
            return [
                { id: 'client', type: 'websocket-client', path: 'ws://127.0.0.1:' + server.address().port + '/h', tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers },
                { id: 'in', type: 'websocket in', server: '', client: 'client', wires: [] }
            ];
        }

        const header = (keyValue, valueType, valueValue) => ({ keyType: 'other', keyValue, valueType, valueValue });

        for (const [what, h] of [
            ['a value with CR LF', header('X-Ok', 'other', 'yes\r\nX-Injected: 1')],
            ['a value with a bare LF', header('X-Ok', 'other', 'yes\nX-Injected: 1')],
            ['a value with NUL', header('X-Ok', 'other', 'yes\u0000')],
            ['a value from an environment variable with CR LF', header('X-Ok', 'env', 'WSRS_TEST_HEADER')],
            ['a name with CR LF', header('X-Ok\r\nX-Injected', 'other', '1')]
        ]) {
            it('refuses ' + what + ' with a node error and sends nothing', async function () {
                process.env.WSRS_TEST_HEADER = 'yes\r\nX-Injected: 1';
                try {
                    await helper.load(wsNode, withHeaders([h]));
                } finally {
                    delete process.env.WSRS_TEST_HEADER;
                }
                const client = helper.getNode('client');
                assert.ok(client.failure, 'no failure recorded');
                assert.strictEqual(client.failure.code, 'ERR_WSRS_INVALID_ARGUMENT');
                assert.match(client.failure.message, /header (name )?"X-Ok.*(line break|not allowed)/);
                assert.doesNotMatch(client.failure.message, /\r|\n/, 'the error itself carries the line break into the log');
                assert.strictEqual(client.native, null, 'a client was started');
            });
        }

        it('sends valid headers, Latin-1 included, as Node.js does (the control)', async function () {
            await helper.load(wsNode, withHeaders([header('X-Ok', 'other', 'yes'), header('X-Name', 'other', 'M\u00fcller')]));
            await until(() => requests.length === 1, 'the connection');
            assert.strictEqual(requests[0].headers['x-ok'], 'yes');
            assert.strictEqual(Buffer.from(requests[0].headers['x-name'], 'latin1').toString('latin1'), 'M\u00fcller');
            assert.strictEqual(requests[0].headers['x-injected'], undefined);
        });
    });

    describe('TLS verification is on unless a tls-config turns it off explicitly', function () {
        let certs;
        let srv;
        const conns = [];
        before(async function () {
            certs = makeCerts();
            srv = https.createServer({ cert: certs.cert, key: certs.key });
            new WebSocket.Server({ server: srv }).on('connection', (ws) => conns.push(ws));
            await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
        });
        after(() => new Promise((resolve) => {
            for (const ws of conns) ws.terminate();
            srv.close(() => resolve());
        }));

        function flow(tlsProps) {
            const nodes = [
                { id: 'client', type: 'websocket-client', path: 'wss://localhost:' + srv.address().port + '/', tls: tlsProps ? 'tls' : '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [] },
                { id: 'in', type: 'websocket in', server: '', client: 'client', wires: [] }
            ];
            if (tlsProps) nodes.push({ id: 'tls', type: 'tls-config', name: '', cert: '', key: '', ca: '', servername: '', ...tlsProps });
            return nodes;
        }

        const refusedAs = async (what) => {
            const warned = () => helper.log().args.map((a) => String(a[0].msg)).join('\n');
            await until(() => /invalid peer certificate: UnknownIssuer/.test(warned()), what + ': the untrusted server to be refused');
        };

        for (const [what, props] of [
            ['without a tls-config', null],
            ['with a tls-config that leaves "verify" unset', {}],
            ['with a tls-config whose "verify" is the string "false"', { verifyservercert: 'false' }]
        ]) {
            it('verifies ' + what, async function () {
                await helper.load([wsNode, tlsNode], flow(props));
                await refusedAs(what);
                assert.strictEqual(conns.length, 0);
            });
        }

        it('connects when a tls-config sets "verify" to false (the control)', async function () {
            await helper.load([wsNode, tlsNode], flow({ verifyservercert: false }));
            await until(() => conns.length === 1, 'the unverified connection');
        });
    });

    describe('no Rust panic reaches Node.js', function () {
        /** Runs `script` in a Node child (only it is signalled, and only after `ms`). */
        function runNode(script, env, ms = 15000) {
            return new Promise((resolve) => {
                const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
                let out = '';
                child.stdout.on('data', (d) => { out += d; });
                child.stderr.on('data', (d) => { out += d; });
                const timer = setTimeout(() => child.kill('SIGKILL'), ms);
                child.on('exit', (code, signal) => {
                    clearTimeout(timer);
                    resolve({ code, signal, out });
                });
            });
        }

        const SCRIPT = `
            const binding = require('./native/index.js');
            const { Client, withCode } = require('./index.js');
            const { WebSocketServer } = require('ws');
            const outcome = (f) => { try { f(); return 'returned'; } catch (e) { return 'Error: ' + e.message; } };
            (async () => {
                const r = {};
                r.call = outcome(() => binding.__testPanic('call'));
                r.task = outcome(() => binding.__testPanic('task'));
                r.async = await binding.__testPanicAsync().then(() => 'resolved', (e) => 'rejected: ' + e.message);
                // The runtime still works after the panics: a client connects.
                const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
                await new Promise((ok) => server.once('listening', ok));
                const connected = new Promise((ok) => server.once('connection', () => ok('connected')));
                const client = new Client({ url: 'ws://127.0.0.1:' + server.address().port + '/' }, () => {});
                r.after = await connected;
                await client.close();
                server.close();
                console.log('RESULT ' + JSON.stringify(r));
            })();
        `;

        it('turns a panic in a call, in a task and in an async call into an Error, a contained task and a rejection', async function () {
            const { code, signal, out } = await runNode(SCRIPT, { WSRS_TEST_PANIC: '1' });
            assert.deepStrictEqual({ code, signal }, { code: 0, signal: null }, out);
            const result = JSON.parse(/RESULT (.*)/.exec(out)[1]);
            assert.match(result.call, /^Error: websocket-rs test panic in a call/);
            assert.strictEqual(result.task, 'returned');
            assert.match(result.async, /^rejected: websocket-rs test panic in an async call/);
            assert.strictEqual(result.after, 'connected');
            assert.match(out, /websocket-rs test panic in a task/, 'the task\'s panic did happen (the control)');
        });

        it('keeps the hooks inert when WSRS_TEST_PANIC=1 is set only after the addon is loaded', async function () {
            // The variable is read once, as the addon loads: a process cannot arm
            // the shipped hooks later (the first test, which sets it before, is the control).
            const script = `
                const binding = require('./native/index.js');
                process.env.WSRS_TEST_PANIC = '1';
                const outcome = (f) => { try { f(); return 'returned'; } catch (e) { return 'Error: ' + e.message; } };
                const r = { call: outcome(() => binding.__testPanic('call')), task: outcome(() => binding.__testPanic('task')) };
                r.async = outcome(() => binding.__testPanicAsync());
                console.log('RESULT ' + JSON.stringify(r));
            `;
            const { code, signal, out } = await runNode(script, { WSRS_TEST_PANIC: '' });
            assert.deepStrictEqual({ code, signal }, { code: 0, signal: null }, out);
            const result = JSON.parse(/RESULT (.*)/.exec(out)[1]);
            for (const place of ['call', 'task', 'async']) {
                assert.match(result[place], /^Error: (ERR_WSRS_INVALID_ARGUMENT: )?test hook: inert unless WSRS_TEST_PANIC=1/, place);
            }
            assert.doesNotMatch(out, /websocket-rs test panic/);
            assert.strictEqual(require('../index.js').__testPanic, undefined, 'exported by the package');
        });
    });
});
