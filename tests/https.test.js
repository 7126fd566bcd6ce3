'use strict';
//! End to end over HTTPS: a real Node-RED serving HTTPS (settings.https with a
//! throw-away CA's certificate for 127.0.0.1), this package loaded, the echo flow
//! exported from core deployed. An upgraded connection is then a TLS socket that
//! cannot be handed to Rust by descriptor, so every session here runs through the
//! byte bridge (nodes/websocket.js `bridge()`, src/bridge.rs). Clients are `ws`
//! over wss:// trusting the CA. One Node-RED process serves the whole file.

const assert = require('assert');
const crypto = require('crypto');
const tls = require('tls');
const { WebSocket, nextMessage, closed, within, clientPool } = require('./support');
const { startNodeRed, request } = require('./nodered');
const { ECHO_FLOW, crashLines } = require('./flows');
const { makeCerts } = require('./certs');
const { defineEchoSuite, WAIT } = require('./echo-suite');

describe('https: a real Node-RED serving HTTPS with @websocket-rs/node-red (byte bridge)', function () {
    let certs;
    let nr = null;
    const wsOptions = {}; // gets the CA once made
    const output = () => nr.output();
    const pool = clientPool(() => nr.wsUrl, wsOptions);
    const { track, closeAll } = pool;
    const connect = (urlPath = '/ws/echo', ms = WAIT) => pool.connect(urlPath, ms);
    const deploy = (...args) => nr.deploy(...args);

    before(async function () {
        this.timeout(60000);
        certs = makeCerts();
        wsOptions.ca = certs.ca;
        nr = await startNodeRed({ withPackage: true, https: certs, prefix: 'wsrs-https-' });
        await deploy(ECHO_FLOW);
    });

    afterEach(async function () {
        await closeAll();
    });

    after(async function () {
        this.timeout(20000);
        await closeAll();
        if (!nr) return;
        if (process.env.E2E_LOG) {
            console.log(nr.output()); // E2E_LOG=1: show what Node-RED printed
        }
        await nr.stop(); // SIGINT, SIGKILL if it lingers; only the child this file started; removes its user dir
    });

    describe('sanity', function () {
        it('serves the admin API over https: GET /flows has the deployed listener', async function () {
            assert.match(nr.url, /^https:\/\/127\.0\.0\.1:\d+$/);
            const res = await nr.request('GET', '/flows');
            assert.strictEqual(res.status, 200);
            const flows = res.json();
            const nodes = Array.isArray(flows) ? flows : flows.flows;
            assert.ok(nodes.some((n) => n.type === 'websocket-listener' && n.path === '/ws/echo'), 'the listener is deployed: ' + res.text);
        });

        it('is TLS only: plain http on the port gets no HTTP answer, an untrusted client is refused', async function () {
            const plain = await request(nr.url.replace(/^https/, 'http'), undefined, 'GET', '/flows', { ms: 3000 })
                .then((res) => res.status, (err) => 'error: ' + err.message);
            assert.notStrictEqual(plain, 200, 'answered over plain http');
            const ws = track(new WebSocket(nr.wsUrl + '/ws/echo')); // no CA
            const outcome = await within(new Promise((resolve) => {
                ws.once('open', () => resolve('open'));
                ws.once('error', (err) => resolve(err.code || err.message));
            }), WAIT, 'an outcome');
            assert.notStrictEqual(outcome, 'open');
            assert.match(String(outcome), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/i);
        });
    });

    describe('the handshake through the byte bridge', function () {
        it('answers a wss upgrade on the listener path with 101 and the accept key', async function () {
            // A raw TLS client, so that what the server sends (or not) is visible as is.
            const key = crypto.randomBytes(16).toString('base64');
            const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
            const sock = tls.connect({ host: '127.0.0.1', port: nr.port, ca: certs.ca, servername: 'localhost' });
            try {
                const answer = await within(new Promise((resolve, reject) => {
                    let got = Buffer.alloc(0);
                    sock.once('secureConnect', () => sock.write('GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1:' + nr.port + '\r\n' +
                        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\n\r\n'));
                    sock.on('data', (d) => {
                        got = Buffer.concat([got, d]);
                        if (got.includes('\r\n\r\n')) resolve({ head: got.toString('latin1'), ended: false });
                    });
                    sock.once('end', () => resolve({ head: got.toString('latin1'), ended: true }));
                    sock.once('error', reject);
                }), WAIT, 'an answer to the upgrade request');
                assert.ok(answer.head.length > 0, 'the server ended the TLS connection without writing a byte of the handshake answer');
                assert.match(answer.head, /^HTTP\/1\.1 101 /, 'answer: ' + JSON.stringify(answer.head));
                assert.match(answer.head, new RegExp('\r\nsec-websocket-accept: ' + accept.replace(/[+/]/g, '\\$&') + '\r\n', 'i'));
                assert.strictEqual(answer.ended, false, 'the server ended the connection right after the 101');
            } finally {
                sock.destroy();
            }
        });
    });

    defineEchoSuite({ label: 'wss', pool, deploy, output });

    describe('sessions in flows through the byte bridge (issue 13)', function () {
        // A listener whose in node has connection events on: each client is told its
        // connect info, joins a room on request, and can be closed with a code.
        const TAB = JSON.parse(ECHO_FLOW)[0].id;
        const EV = (id) => 'e2eevents000000' + id;
        const fn = (id, func, wires) => ({ id: EV(id), type: 'function', z: TAB, name: '', func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 400, y: 500, wires });
        const FLOW = [
            { id: EV('1'), type: 'websocket-listener', path: '/ws/ev', wholemsg: 'false' },
            { id: EV('2'), type: 'websocket in', z: TAB, name: '', server: EV('1'), client: '', events: true, outputs: 2, x: 200, y: 500, wires: [[EV('4')], [EV('3')]] },
            fn('3', "return msg.payload === 'connect' ? { _session: msg._session, payload: JSON.stringify(msg.websocket) } : null;", [[EV('5')]]),
            fn('4', [
                "const [verb, room, text] = String(msg.payload).split(' ');",
                "if (verb === 'join') return { _session: msg._session, payload: 'joined', websocket: { join: room } };",
                "if (verb === 'say') return { payload: text, websocket: { room } };",
                "if (verb === 'bye') return { _session: msg._session, payload: 'bye', websocket: { close: { code: 4001, reason: 'see you' } } };",
                'return null;'
            ].join('\n'), [[EV('5')]]),
            { id: EV('5'), type: 'websocket out', z: TAB, name: '', server: EV('1'), client: '', x: 600, y: 500, wires: [] }
        ];

        before(async function () {
            await deploy(JSON.parse(ECHO_FLOW).concat(FLOW));
        });
        after(async function () {
            await deploy(ECHO_FLOW);
        });

        async function joined(query) {
            const ws = await connect('/ws/ev?' + query);
            const texts = [];
            ws.on('message', (d) => texts.push(d.toString()));
            const next = async (n) => {
                const end = Date.now() + WAIT;
                while (texts.length < n) {
                    if (Date.now() > end) throw new Error('timed out waiting for message ' + n + ' of ' + query);
                    await new Promise((r) => setTimeout(r, 10));
                }
                return texts[n - 1];
            };
            const info = JSON.parse(await next(1));
            return { ws, texts, next, info };
        }

        it('tells each client its connect info, publishes to a room, and closes one client with its code', async function () {
            const a = await joined('who=a');
            assert.deepStrictEqual([a.info.event, a.info.path, a.info.query], ['connect', '/ws/ev', { who: 'a' }]);
            assert.match(a.info.remoteAddress, /127\.0\.0\.1$/);
            assert.strictEqual(a.info.subprotocol, null);
            const b = await joined('who=b');
            const c = await joined('who=c');
            a.ws.send('join r');
            b.ws.send('join r');
            assert.deepStrictEqual([await a.next(2), await b.next(2)], ['joined', 'joined']);
            c.ws.send('say r hello');
            assert.deepStrictEqual([await a.next(3), await b.next(3)], ['hello', 'hello']);
            const end = closed(c.ws, { ms: WAIT });
            c.ws.send('bye');
            assert.deepStrictEqual(await end, { code: 4001, reason: 'see you' });
            // c, not in the room, got its info and its 'bye' only (positive control: the 'bye').
            assert.deepStrictEqual(c.texts.slice(1), ['bye']);
        });
    });

    describe('shutdown', function () {
        it('stops on SIGINT without crash output, closing clients with 1001', async function () {
            this.timeout(30000);
            // A client first (its failure is reported last, after the shutdown itself is checked).
            const client = await (async () => {
                const ws = await connect();
                const m = nextMessage(ws, { ms: WAIT });
                ws.send('before SIGINT');
                assert.strictEqual((await m).data.toString(), 'before SIGINT');
                return { ws, closing: closed(ws, { ms: 15000 }) };
            })().catch((err) => ({ err }));
            assert.ok(!nr.exited(), 'Node-RED is still running before SIGINT');
            process.kill(nr.child.pid, 'SIGINT'); // the child this file started
            const how = await within(nr.exitPromise, 15000, 'Node-RED to exit after SIGINT');
            assert.deepStrictEqual(how, { code: 0, signal: null }, 'exit: ' + JSON.stringify(how) + '\n' + output());
            assert.deepStrictEqual(crashLines(output()), [], 'crash signs in Node-RED output:\n' + output());
            assert.match(output(), /Stopped flows/);
            if (client.err) throw new Error('no client to see the shutdown: ' + client.err.message);
            const c = await client.closing;
            assert.strictEqual(c.code, 1001, 'client closed with ' + c.code + ' on shutdown');
        });
    });

    describe('with an asynchronous webSocketNodeVerifyClient', function () {
        // Its own Node-RED: the verifier is a setting. While it runs, reading is
        // stopped; the bridge must start reading again afterwards.
        let verified = null;
        let allowed = null; // clients sending the header the verifier wants
        let others = null;

        before(async function () {
            this.timeout(60000);
            verified = await startNodeRed({
                withPackage: true,
                https: certs,
                prefix: 'wsrs-https-verify-',
                flows: ECHO_FLOW,
                settingsCode: 'module.exports.webSocketNodeVerifyClient = function (info, done) {\n' +
                    '    setTimeout(() => done(info.req.headers["x-let-me-in"] === "yes", 403), 50);\n' +
                    '};'
            });
            allowed = clientPool(() => verified.wsUrl, { ca: certs.ca, headers: { 'x-let-me-in': 'yes' } });
            others = clientPool(() => verified.wsUrl, { ca: certs.ca });
        });

        after(async function () {
            this.timeout(20000);
            if (allowed) await allowed.closeAll();
            if (others) await others.closeAll();
            if (verified) await verified.stop();
        });

        it('echoes once the verifier accepts, and refuses when it says no', async function () {
            const ws = await allowed.connect('/ws/echo', WAIT);
            const got = nextMessage(ws, { ms: WAIT });
            ws.send('after async verification');
            assert.strictEqual((await got).data.toString(), 'after async verification');
            await assert.rejects(others.connect('/ws/echo', WAIT), /HTTP 403/);
        });
    });
});
