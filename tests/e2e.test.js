'use strict';
//! End to end: a real Node-RED (node-red/red.js as a child process) with this
//! package loaded from a user dir the way a user installs it, the core websocket
//! nodes excluded. Flows are deployed through the admin API and exercised with
//! real `ws` clients over loopback. One Node-RED process serves the whole file.

const assert = require('assert');
const { WebSocket, nextMessage, closed, delay, until, within, clientPool } = require('./support');
const { startNodeRed } = require('./nodered');
const { ECHO_FLOW, seedFlow, withChange, withComment, withTwoTabs, crashLines } = require('./flows');

const MODULE = '@websocket-rs/node-red';
const TYPES = ['websocket in', 'websocket out', 'websocket-listener', 'websocket-client'];

/** How long any single wait for a message, a close or a connection may take. */
const WAIT = 5000;

describe('e2e: a real Node-RED with @websocket-rs/node-red', function () {
    let nr = null;
    const output = () => nr.output();
    const pool = clientPool(() => nr.wsUrl);
    const { track, closeAll } = pool;
    const connect = (urlPath = '/ws/echo', ms = WAIT) => pool.connect(urlPath, ms);
    const api = (...args) => nr.request(...args);
    const deploy = (...args) => nr.deploy(...args);

    before(async function () {
        this.timeout(45000);
        nr = await startNodeRed({ withPackage: true, prefix: 'wsrs-e2e-' });
    });

    afterEach(async function () {
        await closeAll();
    });

    after(async function () {
        this.timeout(15000);
        await closeAll();
        if (!nr) return;
        if (process.env.E2E_LOG) {
            console.log(nr.output()); // E2E_LOG=1: show what Node-RED printed
        }
        await nr.stop({ signal: 'SIGKILL', ms: 5000 }); // only the child this file started; removes its user dir
    });

    it('lists our module with the four types and not core\'s websocket set', async function () {
        const res = await api('GET', '/nodes', { headers: { Accept: 'application/json' } });
        assert.strictEqual(res.status, 200);
        const sets = res.json();
        const ours = sets.filter((s) => s.module === MODULE);
        assert.strictEqual(ours.length, 1, 'sets of ' + MODULE + ': ' + JSON.stringify(ours));
        assert.deepStrictEqual([...ours[0].types].sort(), [...TYPES].sort());
        assert.strictEqual(ours[0].enabled, true);
        assert.ok(!ours[0].err, 'our set failed to load: ' + ours[0].err);
        assert.ok(!sets.some((s) => s.id === 'node-red/websocket'), 'core 22-websocket is loaded');
        for (const s of sets) {
            if (s.module !== MODULE) {
                for (const t of TYPES) {
                    assert.ok(!(s.types || []).includes(t), s.id + ' also provides ' + t);
                }
            }
        }
    });

    describe('the echo flow exported from core', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('echoes text', async function () {
            const ws = await connect();
            const m = nextMessage(ws, { ms: WAIT });
            ws.send('hello, Node-RED');
            const got = await m;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.toString(), 'hello, Node-RED');
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
            const big = Buffer.alloc(1 << 20);
            for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff;
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
            await delay(200); // nothing extra may arrive
            got.forEach((g, i) => {
                assert.deepStrictEqual(g, Array.from({ length: PER }, (_, j) => 'c' + i + ':' + j), 'client ' + i);
            });
        });

        it('replies only to the sender', async function () {
            const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
            let others = 0;
            b.on('message', () => others++);
            c.on('message', () => others++);
            const m = nextMessage(a, { ms: WAIT });
            a.send('just for a');
            assert.strictEqual((await m).data.toString(), 'just for a');
            await delay(200);
            assert.strictEqual(others, 0, 'a reply reached other clients');
        });
    });

    describe('clients that go away without a closing handshake', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(ECHO_FLOW);
        });

        it('are not reported as errors (core logs nothing for them)', async function () {
            // Core's `ws` server reports a dropped TCP connection as a 1006 close
            // only; it emits 'error' (and core warns) on protocol violations alone.
            const mark = output().length;
            const a = await connect();
            const m = nextMessage(a, { ms: WAIT });
            a.send('x');
            await m;
            a.terminate(); // FIN without a close frame, as a killed browser tab
            const b = await connect();
            const mb = nextMessage(b, { ms: WAIT });
            b.send('y');
            await mb;
            b._socket.resetAndDestroy(); // RST, as a dropped network
            const live = await connect(); // the listener is fine afterwards
            const ml = nextMessage(live, { ms: WAIT });
            live.send('z');
            assert.strictEqual((await ml).data.toString(), 'z');
            await delay(300);
            const lines = output().slice(mark).split('\n').filter((l) => /\[(warn|error)\]/.test(l));
            assert.deepStrictEqual(lines, [], 'Node-RED logged warnings/errors for clients that just went away');
        });
    });

    describe('broadcast: a change node deletes msg._session', function () {
        before(async function () {
            this.timeout(15000);
            await deploy(withChange([{ t: 'delete', p: '_session', pt: 'msg' }]));
        });

        it('sends one client\'s message to every connected client', async function () {
            const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
            const got = clients.map((ws) => nextMessage(ws, { ms: WAIT }));
            clients[2].send('to everyone');
            for (const [i, m] of (await Promise.all(got)).entries()) {
                assert.strictEqual(m.data.toString(), 'to everyone', 'client ' + i);
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

        it('keeps clients connected on "flows" deploys: another tab changed, then the in node itself', async function () {
            this.timeout(30000);
            await deploy(withTwoTabs('in v1', 'other v1'));
            const ws = await connect();
            let closes = 0;
            ws.on('close', () => closes++);
            const echo = async (text) => {
                const m = nextMessage(ws, { ms: WAIT });
                ws.send(text);
                assert.strictEqual((await m).data.toString(), text);
            };
            await echo('one');
            await deploy(withTwoTabs('in v1', 'other v2'), 'flows');
            await echo('two');
            // The echo tab's nodes restart; the listener (a config node) does not,
            // so the connection stays and the new in node receives from it.
            await deploy(withTwoTabs('in v2', 'other v2'), 'flows');
            await echo('three');
            assert.strictEqual(closes, 0);
        });

        it('keeps the listener and its clients on a "nodes" deploy that changes an unrelated node', async function () {
            this.timeout(30000);
            await deploy(withComment('before'));
            const clients = await Promise.all([connect(), connect()]);
            let closes = 0;
            clients.forEach((ws) => ws.on('close', () => closes++));

            await deploy(withComment('after'), 'nodes');
            const flows = (await api('GET', '/flows')).json();
            assert.ok(flows.some((n) => n.id === 'e2ecomment000001' && n.name === 'after'), 'the change was deployed');
            await delay(300);
            assert.strictEqual(closes, 0, 'a client was closed by a deploy that did not touch the listener');
            for (const [i, ws] of clients.entries()) {
                assert.strictEqual(ws.readyState, WebSocket.OPEN, 'client ' + i);
                const m = nextMessage(ws, { ms: WAIT });
                ws.send('still here ' + i);
                assert.strictEqual((await m).data.toString(), 'still here ' + i);
            }
            const fresh = await connect();
            const m = nextMessage(fresh, { ms: WAIT });
            fresh.send('fresh');
            assert.strictEqual((await m).data.toString(), 'fresh');
        });
    });

    describe('the seed example from core, both halves (client → listener echo → client)', function () {
        it('echoes an injected timestamp through the client and the listener back to the debug node', async function () {
            this.timeout(30000);
            await deploy(seedFlow(nr.port));
            const comms = await connect('/comms');
            const debug = [];
            const statuses = [];
            comms.on('message', (data) => {
                try {
                    for (const n of JSON.parse(data.toString())) {
                        if (n.topic === 'debug') debug.push(n.data);
                        if (n.topic === 'status/e788dbc44428f6b7') statuses.push(n.data);
                    }
                } catch (err) { /* not a batch */ }
            });
            comms.send(JSON.stringify({ subscribe: 'debug' }));
            comms.send(JSON.stringify({ subscribe: 'status/#' }));
            await until(() => statuses.some((st) => st.fill === 'green'), 'the client half connected', WAIT);
            const res = await api('POST', '/inject/dda81a976ccf2a2b');
            assert.strictEqual(res.status, 200);
            const got = await until(() => debug.find((d) => d.id === 'd86baf93795dbb2d'), 'the echo at the debug node', WAIT);
            assert.ok(Number(got.msg) > 1.7e12, 'a timestamp came back: ' + got.msg);
        });
    });

    describe('the editor', function () {
        it('still connects to its own comms websocket while a listener is deployed', async function () {
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
            await deploy(withComment('comms'), 'nodes');
            await until(() => notes.slice(before).some((n) => n.topic === 'notification/runtime-deploy'), 'a runtime-deploy notification for the new deploy');
            assert.strictEqual(comms.readyState, WebSocket.OPEN);
            // the listener client was not disturbed either
            const m = nextMessage(echo, { ms: WAIT });
            echo.send('ok');
            assert.strictEqual((await m).data.toString(), 'ok');
        });

        it('leaves an unknown path to Node-RED (no handshake from us)', async function () {
            // Nothing in Node-RED answers an upgrade on a path no one serves; the
            // point is that our handler does not accept it.
            const ws = track(new WebSocket(nr.wsUrl + '/ws/nobody-here'));
            const outcome = await within(new Promise((resolve) => {
                ws.once('open', () => resolve('open'));
                ws.once('unexpected-response', () => resolve('refused'));
                ws.once('error', () => resolve('error'));
                setTimeout(() => resolve('no answer'), 500);
            }), 2000, 'an outcome');
            assert.notStrictEqual(outcome, 'open');
        });
    });

    describe('shutdown', function () {
        it('stops on SIGINT, closing clients with 1001, without crash output', async function () {
            this.timeout(30000);
            const ws = await connect();
            const closing = closed(ws, { ms: 15000 });
            assert.ok(!nr.exited(), 'Node-RED is still running before SIGINT');
            process.kill(nr.child.pid, 'SIGINT'); // the child this file started
            const how = await within(nr.exitPromise, 15000, 'Node-RED to exit after SIGINT');
            assert.deepStrictEqual(how, { code: 0, signal: null }, 'exit: ' + JSON.stringify(how) + '\n' + output());
            const c = await closing;
            assert.strictEqual(c.code, 1001, 'client closed with ' + c.code + ' on shutdown');
            assert.deepStrictEqual(crashLines(output()), [], 'crash signs in Node-RED output:\n' + output());
            assert.match(output(), /Stopped flows/);
        });
    });
});
