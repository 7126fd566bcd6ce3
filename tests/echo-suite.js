'use strict';
//! The echo-flow tests that a real Node-RED must pass whichever way an upgraded
//! connection reaches Rust: e2e.test.js (HTTP, descriptor handover) and
//! https.test.js (HTTPS, byte bridge) each call `defineEchoSuite` inside their
//! top-level `describe`, whose `afterEach` closes the clients made here.

const assert = require('assert');
const { WebSocket, nextMessage, messages, closed, until, within } = require('./support');
const { ECHO_FLOW, withChange, withComment } = require('./flows');

/** How long any single wait for a message, a close or a connection may take. */
const WAIT = 5000;

/** `n` bytes of a pattern that depends on `seed`, so that misplaced chunks show. */
function pattern(n, seed) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8) + seed * 7) & 0xff;
    return b;
}

/**
 * Declares the shared `describe`/`it` blocks.
 *
 * - label: the scheme the clients use ('ws', 'wss'), shown in titles and sent texts.
 * - pool: the file's `clientPool` (support.js) for Node-RED's ws(s) URL.
 * - deploy(flow, type): the file's Node-RED `deploy`; output(): what Node-RED printed so far.
 *
 * The last flow it deploys is the echo flow plus a comment (the listener on /ws/echo).
 */
function defineEchoSuite({ label, pool, deploy, output }) {
    const connect = (urlPath = '/ws/echo', ms = WAIT) => pool.connect(urlPath, ms);

    describe('the echo flow exported from core, over ' + label, function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('echoes text', async function () {
            const text = 'hello, Node-RED over ' + label;
            const ws = await connect();
            const m = nextMessage(ws, { ms: WAIT });
            ws.send(text);
            const got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.toString(), text);
        });

        it('echoes ASCII and non-ASCII text, whole and fragmented, as sent', async function () {
            // The addon flags all-ASCII text, which JS then copies as Latin-1: a wrong
            // flag on 'é' (0xc3 0xa9) would come back as 'Ã©'.
            const ws = await connect();
            const texts = ['plain', '\u007f edge of ASCII', 'café', 'x'.repeat(5000), '€' + 'y'.repeat(5000), '\u0080'];
            for (const text of texts) {
                const m = nextMessage(ws, { ms: WAIT });
                ws.send(text);
                const got = await m;
                assert.strictEqual(got.isBinary, false);
                assert.strictEqual(got.data.toString(), text);
            }
            for (const [first, last] of [['abc', 'def'], ['abc', 'déf'], ['dé', 'f']]) {
                const m = nextMessage(ws, { ms: WAIT });
                ws.send(first, { fin: false });
                ws.send(last, { fin: true });
                assert.strictEqual((await m).data.toString(), first + last);
            }
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

        it('echoes an empty string as an empty text frame (core drops it)', async function () {
            const ws = await connect();
            const m = nextMessage(ws, { ms: WAIT });
            ws.send('');
            const got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.length, 0);
            // and the connection keeps working
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

        it('serves 100 concurrent clients, each getting exactly its own replies in order', async function () {
            this.timeout(30000);
            const N = 100;
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
            // Nothing extra may arrive: anything misrouted to a client comes before its
            // own last echo, on the same connection.
            clients.forEach((ws, i) => ws.send('c' + i + ':end'));
            await until(() => got.every((g, i) => g.includes('c' + i + ':end')), 'the last echoes', 15000);
            got.forEach((g) => g.pop());
            got.forEach((g, i) => {
                assert.deepStrictEqual(g, Array.from({ length: PER }, (_, j) => 'c' + i + ':' + j), 'client ' + i);
            });
        });

        it('replies only to the sender', async function () {
            const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
            const others = [];
            b.on('message', (d) => others.push(d.toString()));
            c.on('message', (d) => others.push(d.toString()));
            const m = nextMessage(a, { ms: WAIT });
            a.send('just for a');
            assert.strictEqual((await m).data.toString(), 'just for a');
            // b's and c's own echoes come after anything misrouted to them.
            const own = [nextMessage(b, { ms: WAIT }), nextMessage(c, { ms: WAIT })];
            b.send('b');
            c.send('c');
            await Promise.all(own);
            assert.deepStrictEqual(others.sort(), ['b', 'c'], 'a reply reached other clients');
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

    describe('clients that go away without a closing handshake', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('are not reported as errors (core logs nothing for them), and the listener keeps serving', async function () {
            // Core's `ws` server reports a dropped TCP connection as a 1006 close
            // only; it emits 'error' (and core warns) on protocol violations alone.
            const mark = output().length;
            const a = await connect();
            const m = nextMessage(a, { ms: WAIT });
            a.send('x');
            await m;
            a.terminate(); // FIN without a close frame (nor TLS close_notify), as a killed browser tab
            const { ws: b, tcp } = await pool.connectOverTcp('/ws/echo', WAIT);
            const mb = nextMessage(b, { ms: WAIT });
            b.send('y');
            await mb;
            tcp.resetAndDestroy(); // RST, as a dropped network
            const live = await connect(); // the listener is fine afterwards
            const ml = nextMessage(live, { ms: WAIT });
            live.send('z');
            assert.strictEqual((await ml).data.toString(), 'z');
            // The control: a client that does misbehave (invalid UTF-8) is logged, and
            // after the two that just went away.
            const bad = await connect();
            const badClosed = closed(bad, { ms: WAIT });
            bad._socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])); // masked text frame, key 0
            assert.strictEqual((await badClosed).code, 1007);
            await until(() => /\[warn\].*UTF-8/.test(output().slice(mark)), 'the control\'s warning in the log', WAIT);
            const lines = output().slice(mark).split('\n').filter((l) => /\[(warn|error)\]/.test(l) && !/UTF-8/.test(l));
            assert.deepStrictEqual(lines, [], 'Node-RED logged warnings/errors for clients that just went away');
        });
    });

    describe('broadcast: a change node deletes msg._session', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(withChange([{ t: 'delete', p: '_session', pt: 'msg' }]));
        });

        it('sends one client\'s message to every connected client', async function () {
            const text = 'to everyone over ' + label;
            const clients = await Promise.all(Array.from({ length: 10 }, () => connect()));
            const got = clients.map((ws) => nextMessage(ws, { ms: WAIT }));
            clients[3].send(text);
            for (const [i, m] of (await Promise.all(got)).entries()) {
                assert.strictEqual(m.data.toString(), text, 'client ' + i);
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

    describe('the editor', function () {
        it('still connects to its own comms websocket over ' + label + ' while a listener is deployed', async function () {
            this.timeout(30000);
            await deploy(ECHO_FLOW);
            const echo = await connect(); // our upgrade handler is attached and routing
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
            await deploy(withComment('comms over ' + label), 'nodes');
            await until(() => notes.slice(before).some((n) => n.topic === 'notification/runtime-deploy'), 'a runtime-deploy notification for the new deploy');
            assert.strictEqual(comms.readyState, WebSocket.OPEN);
            // the listener client was not disturbed either
            const m = nextMessage(echo, { ms: WAIT });
            echo.send('ok');
            assert.strictEqual((await m).data.toString(), 'ok');
        });
    });
}

module.exports = { defineEchoSuite, WAIT };
