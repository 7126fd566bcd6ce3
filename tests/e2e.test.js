'use strict';
//! End to end: a real Node-RED (node-red/red.js as a child process) with this
//! package loaded from a user dir the way a user installs it, the core websocket
//! nodes excluded. Flows are deployed through the admin API and exercised with
//! real `ws` clients over loopback. One Node-RED process serves the whole file.

const assert = require('assert');
const { WebSocket, nextMessage, closed, delay, until, within, clientPool } = require('./support');
const { startNodeRed } = require('./nodered');
const { ECHO_FLOW, seedFlow, withComment, withTwoTabs, crashLines } = require('./flows');
const { defineEchoSuite, WAIT } = require('./echo-suite');
const nodeRed = require('./node-red-under-test');

const MODULE = '@websocket-rs/node-red';
// Core's four, and the cluster's config node (issue 15).
const TYPES = ['websocket in', 'websocket out', 'websocket-listener', 'websocket-client', 'websocket-cluster'];

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

    it('runs Node-RED ' + nodeRed.expected.nodeRed + ' on Node ' + nodeRed.expected.node + ', the versions this run is for', async function () {
        // The child's own report: which Node-RED answered, on which Node (the tests'
        // process and the child must both be on the expected Node).
        assert.strictEqual(process.version, nodeRed.expected.node, 'the tests\' Node');
        const res = await api('GET', '/diagnostics', { headers: { Accept: 'application/json' } });
        assert.strictEqual(res.status, 200, res.text);
        const report = res.json();
        // Node-RED appends "-git" when a .git sits four levels above its runtime's
        // lib/, which is this repository's for the devDependency in node_modules/.
        const plain = (v) => String(v).replace(/-git$/, '');
        assert.strictEqual(plain(report.runtime.version), nodeRed.expected.nodeRed, 'Node-RED\'s reported version');
        assert.strictEqual(report.nodejs.version, nodeRed.expected.node, 'Node-RED\'s Node');
        const settings = (await api('GET', '/settings', { headers: { Accept: 'application/json' } })).json();
        assert.strictEqual(plain(settings.version), nodeRed.expected.nodeRed, 'the version in /settings');
    });

    it('lists our module with core\'s four types and websocket-cluster, and not core\'s websocket set', async function () {
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

    describe('redeploy, "flows" and "nodes" deploys', function () {
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
            // An echo on each connection after the deploy: a close the deploy caused
            // would have come first on that connection.
            for (const [i, ws] of clients.entries()) {
                const m = nextMessage(ws, { ms: WAIT });
                ws.send('still here ' + i);
                assert.strictEqual((await m).data.toString(), 'still here ' + i);
                assert.strictEqual(ws.readyState, WebSocket.OPEN, 'client ' + i);
            }
            assert.strictEqual(closes, 0, 'a client was closed by a deploy that did not touch the listener');
            const fresh = await connect();
            const m = nextMessage(fresh, { ms: WAIT });
            fresh.send('fresh');
            assert.strictEqual((await m).data.toString(), 'fresh');
        });
    });

    describe('a websocket-client whose in node is enabled by a later "nodes" deploy', function () {
        const V5 = parseInt(nodeRed.version, 10) >= 5;
        let wss = null;
        const conns = [];
        afterEach(async function () {
            if (!wss) return;
            for (const c of wss.clients) c.terminate();
            await new Promise((resolve) => wss.close(() => resolve()));
            wss = null;
            conns.length = 0;
        });

        it(V5 ? 'stays idle until then, then connects once (as 5.0 core)' : 'connects at the first deploy and keeps that one connection (as 4.1 core)', async function () {
            wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
            await new Promise((resolve) => wss.once('listening', resolve));
            const controls = [];
            wss.on('connection', (ws, req) => (req.url === '/control' ? controls : conns).push(ws));
            const url = 'ws://127.0.0.1:' + wss.address().port + '/';
            const client = (id, path) => ({ id, type: 'websocket-client', path: url + path, tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [] });
            const inNode = (id, clientId, d) => ({ id, type: 'websocket in', z: 'e2elazytab000001', name: '', server: '', client: clientId, d, x: 100, y: 100, wires: [] });
            const tab = { id: 'e2elazytab000001', type: 'tab', label: 'lazy', disabled: false, info: '', env: [] };
            // A control client used by an enabled in node, deployed with the lazy one.
            const control = [client('e2elazycontrol01', 'control'), inNode('e2elazyctlin0001', 'e2elazycontrol01', false)];
            const flow = (disabled) => [tab, client('e2elazyclient001', ''), inNode('e2elazyin0000001', 'e2elazyclient001', disabled), ...control];
            await deploy(flow(true));
            if (V5) {
                await delay(500);
                assert.strictEqual(controls.length, 1, 'the control client did not connect in the same time');
                assert.strictEqual(conns.length, 0, 'a client with only a disabled in node connected');
            } else {
                await until(() => conns.length === 1, 'the client connected at deploy', WAIT);
            }
            await deploy(flow(false), 'nodes');
            await until(() => conns.length === 1, 'the client connected', WAIT);
            // Removing the client stops it (the deploy answers once it has): any
            // second connection it was going to make would be there by then.
            const closing = closed(conns[0], { ms: WAIT });
            await deploy([tab]);
            assert.strictEqual((await closing).code, 1001);
            assert.strictEqual(conns.length, 1, 'no second connection');
        });
    });

    describe('a websocket-client opens exactly one connection', function () {
        // Node-RED 5.0's core can open two when the out node starts before the in node.
        let wss = null;
        const conns = [];
        const tab = { id: 'e2eonetab0000001', type: 'tab', label: 'one', disabled: false, info: '', env: [] };
        const client = (hb) => ({ id: 'e2eoneclient0001', type: 'websocket-client', path: 'ws://127.0.0.1:' + wss.address().port + '/', tls: '', wholemsg: 'false', hb, subprotocol: '', headers: [] });
        const inNode = (name = '') => ({ id: 'e2eonein00000001', type: 'websocket in', z: tab.id, name, server: '', client: 'e2eoneclient0001', x: 100, y: 100, wires: [] });
        const outNode = () => ({ id: 'e2eoneout0000001', type: 'websocket out', z: tab.id, name: '', server: '', client: 'e2eoneclient0001', x: 300, y: 100, wires: [] });

        beforeEach(async function () {
            wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
            await new Promise((resolve) => wss.once('listening', resolve));
            wss.on('connection', (ws, req) => {
                ws.path = req.url;
                conns.push(ws);
            });
        });
        afterEach(async function () {
            for (const c of wss.clients) c.terminate();
            await new Promise((resolve) => wss.close(() => resolve()));
            conns.length = 0;
        });

        /**
         * Removes the flow (the client is stopped when the deploy answers), then, as a
         * positive control that any dial still in flight has landed, deploys a control
         * client to the same server and waits for its connection before counting.
         */
        async function removeAndCount(expected) {
            const closing = closed(conns[conns.length - 1], { ms: WAIT });
            await deploy([tab]);
            assert.strictEqual((await closing).code, 1001);
            const control = { ...client('0'), id: 'e2eonecontrol001', path: client('0').path + 'control' };
            await deploy([tab, control, { ...inNode(), id: 'e2eonectlin00001', client: control.id }]);
            await until(() => conns.some((c) => c.path === '/control'), 'the control client connected', WAIT);
            assert.strictEqual(conns.filter((c) => c.path !== '/control').length, expected, 'connections made');
            await deploy([tab]);
        }

        for (const [label, nodes] of [
            ['out node before in node', () => [outNode(), inNode()]],
            ['in node before out node', () => [inNode(), outNode()]],
            ['out node only', () => [outNode()]],
            ['in node only', () => [inNode()]]
        ]) {
            it(label, async function () {
                await deploy([tab, client('0'), ...nodes()]);
                await until(() => conns.length === 1, 'the client connected', WAIT);
                await removeAndCount(1);
            });
        }

        it('keeps its connection when a "nodes" deploy changes only the in node, and makes one new one when it changes the client', async function () {
            await deploy([tab, client('0'), outNode(), inNode()]);
            await until(() => conns.length === 1, 'the client connected', WAIT);
            await deploy([tab, client('0'), outNode(), inNode('renamed')], 'nodes');
            assert.strictEqual(conns[0].readyState, WebSocket.OPEN);
            const first = closed(conns[0], { ms: WAIT });
            await deploy([tab, client('5'), outNode(), inNode('renamed')], 'nodes');
            assert.strictEqual((await first).code, 1001, 'the old connection closed as the client restarted');
            await until(() => conns.length === 2, 'the restarted client connected', WAIT);
            await removeAndCount(2);
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

    defineEchoSuite({ label: 'ws', pool, deploy, output });

    describe('a path no listener serves', function () {
        it('leaves an unknown path to Node-RED (no handshake from us)', async function () {
            // Nothing in Node-RED answers an upgrade on a path no one serves; the
            // point is that our handler does not accept it.
            const outcome = (path) => {
                const ws = track(new WebSocket(nr.wsUrl + path));
                return within(new Promise((resolve) => {
                    ws.once('open', () => resolve('open'));
                    ws.once('unexpected-response', () => resolve('refused'));
                    ws.once('error', () => resolve('error'));
                    setTimeout(() => resolve('no answer'), 500);
                }), 2000, 'an outcome');
            };
            await deploy(ECHO_FLOW);
            // The control: a path we serve opens within the same wait.
            const [unknown, served] = await Promise.all([outcome('/ws/nobody-here'), outcome('/ws/echo')]);
            assert.strictEqual(served, 'open', 'the control path did not open');
            assert.notStrictEqual(unknown, 'open');
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
