'use strict';
//! End to end over HTTPS: a real Node-RED serving HTTPS (settings.https with a
//! throw-away CA's certificate for 127.0.0.1), this package loaded, the echo flow
//! exported from core deployed. An upgraded connection is then a TLS socket that
//! cannot be handed to Rust by descriptor, so every session here runs through the
//! byte bridge (nodes/websocket.js `bridge()`, src/bridge.rs). Clients are `ws`
//! over wss:// trusting the CA. One Node-RED process serves the whole file.

const assert = require('assert');
const crypto = require('crypto');
const net = require('net');
const tls = require('tls');
const { WebSocket, nextMessage, messages, closed, delay, until, within, clientPool } = require('./support');
const { startNodeRed, request } = require('./nodered');
const { ECHO_FLOW, withChange, withComment, crashLines } = require('./flows');
const { makeCerts } = require('./certs');

/** How long any single wait for a message, a close or a connection may take. */
const WAIT = 5000;

/** `n` bytes of a pattern that depends on `seed`, so that misplaced chunks show. */
function pattern(n, seed) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8) + seed * 7) & 0xff;
    return b;
}

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

    describe('the echo flow exported from core, over wss', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('echoes text', async function () {
            const ws = await connect();
            const m = nextMessage(ws, { ms: WAIT });
            ws.send('hello, secure Node-RED');
            const got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.toString(), 'hello, secure Node-RED');
        });

        it('echoes binary as binary', async function () {
            const ws = await connect();
            const data = Buffer.from([0, 1, 2, 127, 128, 254, 255]);
            const m = nextMessage(ws, { ms: WAIT });
            ws.send(data);
            const got = await m;
            assert.strictEqual(got.isBinary, true);
            assert.ok(data.equals(got.data));
        });

        it('echoes an empty string as an empty text frame', async function () {
            const ws = await connect();
            const m = nextMessage(ws, { ms: WAIT });
            ws.send('');
            const got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.length, 0);
            const m2 = nextMessage(ws, { ms: WAIT });
            ws.send('after');
            assert.strictEqual((await m2).data.toString(), 'after');
        });

        it('echoes a 1 MiB message intact (binary and text)', async function () {
            const ws = await connect();
            const big = pattern(1 << 20, 0);
            let m = nextMessage(ws, { ms: 10000 });
            ws.send(big);
            let got = await m;
            assert.strictEqual(got.isBinary, true);
            assert.strictEqual(got.data.length, big.length);
            assert.ok(big.equals(got.data), '1 MiB binary came back altered');

            const text = 'é'.repeat(1 << 19) + 'end'; // multi-byte, ~1 MiB of UTF-8
            m = nextMessage(ws, { ms: 10000 });
            ws.send(text);
            got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.ok(got.data.toString() === text, '1 MiB text came back altered');
        });

        it('serves 50 concurrent clients, each getting exactly its own replies in order', async function () {
            this.timeout(30000);
            const N = 50;
            const PER = 20;
            const clients = await Promise.all(Array.from({ length: N }, () => connect('/ws/echo', 10000)));
            const got = clients.map(() => []);
            clients.forEach((ws, i) => ws.on('message', (data, isBinary) => got[i].push(isBinary ? '<binary>' : data.toString())));
            clients.forEach((ws, i) => {
                for (let j = 0; j < PER; j++) ws.send('c' + i + ':' + j);
            });
            await until(() => got.every((g) => g.length >= PER), 'all replies', 15000)
                .catch((err) => {
                    const short = got.map((g, i) => [i, g.length]).filter(([, n]) => n < PER);
                    throw new Error(err.message + '; clients short of replies [index, count]: ' + JSON.stringify(short.slice(0, 10)));
                });
            await delay(200); // nothing extra may arrive
            got.forEach((g, i) => {
                assert.deepStrictEqual(g, Array.from({ length: PER }, (_, j) => 'c' + i + ':' + j), 'client ' + i);
            });
        });

        it('echoes a 4 MiB burst (64 × 64 KiB sent without waiting) completely and in order', async function () {
            this.timeout(30000);
            const COUNT = 64;
            const SIZE = 64 * 1024;
            const ws = await connect();
            const sent = Array.from({ length: COUNT }, (_, i) => {
                const b = pattern(SIZE, i + 1);
                b.writeUInt32BE(i, 0);
                return b;
            });
            const all = within(messages(ws, COUNT), 20000, COUNT + ' echoes of the burst');
            for (const b of sent) ws.send(b);
            const got = await all.catch((err) => {
                throw new Error(err.message + ' (bufferedAmount ' + ws.bufferedAmount + ', readyState ' + ws.readyState + ')');
            });
            const order = got.map((m) => (m.data.length >= 4 ? m.data.readUInt32BE(0) : -1));
            assert.deepStrictEqual(order, sent.map((_, i) => i), 'echoes out of order');
            got.forEach((m, i) => {
                assert.strictEqual(m.isBinary, true, 'echo ' + i);
                assert.strictEqual(m.data.length, SIZE, 'echo ' + i + ' length');
                assert.ok(sent[i].equals(m.data), 'echo ' + i + ' came back altered');
            });
            // and the session is still usable afterwards
            const m = nextMessage(ws, { ms: WAIT });
            ws.send('after the burst');
            assert.strictEqual((await m).data.toString(), 'after the burst');
        });

        it('echoes bursts on several clients at once, each complete and in order', async function () {
            this.timeout(30000);
            const CLIENTS = 4;
            const COUNT = 32;
            const SIZE = 64 * 1024;
            const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect()));
            const results = clients.map((ws) => within(messages(ws, COUNT), 20000, COUNT + ' echoes'));
            clients.forEach((ws, c) => {
                for (let i = 0; i < COUNT; i++) {
                    const b = pattern(SIZE, c * COUNT + i);
                    b.writeUInt32BE(c * COUNT + i, 0);
                    ws.send(b);
                }
            });
            for (const [c, got] of (await Promise.all(results)).entries()) {
                got.forEach((m, i) => {
                    const expect = pattern(SIZE, c * COUNT + i);
                    expect.writeUInt32BE(c * COUNT + i, 0);
                    assert.ok(expect.equals(m.data), 'client ' + c + ' echo ' + i + ' altered or out of order');
                });
            }
        });
    });

    describe('broadcast: a change node deletes msg._session', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(withChange([{ t: 'delete', p: '_session', pt: 'msg' }]));
        });

        it('sends one client\'s message to every connected client', async function () {
            const clients = await Promise.all(Array.from({ length: 10 }, () => connect()));
            const got = clients.map((ws) => nextMessage(ws, { ms: WAIT }));
            clients[3].send('to everyone, securely');
            for (const [i, m] of (await Promise.all(got)).entries()) {
                assert.strictEqual(m.data.toString(), 'to everyone, securely', 'client ' + i);
                assert.strictEqual(m.isBinary, false);
            }
            const bin = clients.map((ws) => nextMessage(ws, { ms: WAIT }));
            clients[0].send(Buffer.from([9, 8, 7]));
            for (const m of await Promise.all(bin)) {
                assert.strictEqual(m.isBinary, true);
                assert.deepStrictEqual([...m.data], [9, 8, 7]);
            }
        });
    });

    describe('redeploy', function () {
        it('closes connected clients with 1001 on a full deploy; new clients get the new flow', async function () {
            this.timeout(30000);
            await deploy(ECHO_FLOW);
            const old = await Promise.all([connect(), connect(), connect()]);
            const m = nextMessage(old[0], { ms: WAIT });
            old[0].send('v1');
            assert.strictEqual((await m).data.toString(), 'v1');
            const closes = old.map((ws) => closed(ws, { ms: 10000 }));

            await deploy(withChange([{ t: 'set', p: 'payload', pt: 'msg', to: '"v2:" & payload', tot: 'jsonata' }]));
            for (const [i, c] of (await Promise.all(closes)).entries()) {
                assert.strictEqual(c.code, 1001, 'old client ' + i + ' closed with ' + c.code + ' ' + c.reason);
            }

            const ws = await connect();
            const m2 = nextMessage(ws, { ms: WAIT });
            ws.send('hello');
            assert.strictEqual((await m2).data.toString(), 'v2:hello');
        });
    });

    describe('clients that go away without a closing handshake', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('are not reported as errors, and the listener keeps serving', async function () {
            const mark = output().length;
            const a = await connect();
            const m = nextMessage(a, { ms: WAIT });
            a.send('x');
            await m;
            a.terminate(); // FIN without a close frame (and without TLS close_notify)
            // A TLS socket cannot reset; keep the TCP socket under it to send an RST.
            let tcp = null;
            const b = track(new WebSocket(nr.wsUrl + '/ws/echo', {
                ca: certs.ca,
                createConnection: (opts) => {
                    tcp = net.connect(nr.port, '127.0.0.1');
                    return tls.connect({ ...opts, socket: tcp });
                }
            }));
            await within(new Promise((resolve, reject) => {
                b.once('open', resolve);
                b.once('error', reject);
            }), WAIT, 'a connection to /ws/echo');
            const mb = nextMessage(b, { ms: WAIT });
            b.send('y');
            await mb;
            tcp.resetAndDestroy(); // RST, as a dropped network
            const live = await connect();
            const ml = nextMessage(live, { ms: WAIT });
            live.send('z');
            assert.strictEqual((await ml).data.toString(), 'z');
            await delay(300);
            const lines = output().slice(mark).split('\n').filter((l) => /\[(warn|error)\]/.test(l));
            assert.deepStrictEqual(lines, [], 'Node-RED logged warnings/errors for clients that just went away');
        });
    });

    describe('the editor', function () {
        it('still connects to its own comms websocket over wss while a listener is deployed', async function () {
            this.timeout(30000);
            await deploy(ECHO_FLOW); // our upgrade handler is attached to the HTTPS server
            const comms = await connect('/comms');
            const notes = [];
            comms.on('message', (data) => {
                try {
                    notes.push(...JSON.parse(data.toString()));
                } catch (err) { /* hb or auth packet */ }
            });
            comms.send(JSON.stringify({ subscribe: 'notification/runtime-deploy' }));
            // Retained: the last deploy's revision arrives on subscribe.
            await until(() => notes.some((n) => n.topic === 'notification/runtime-deploy'), 'the retained runtime-deploy notification');
            const before = notes.length;
            await deploy(withComment('comms over wss'), 'nodes');
            await until(() => notes.slice(before).some((n) => n.topic === 'notification/runtime-deploy'), 'a runtime-deploy notification for the new deploy');
            assert.strictEqual(comms.readyState, WebSocket.OPEN);
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
