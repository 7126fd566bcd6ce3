'use strict';
//! The websocket-cluster config node without a Redis to reach (issue 15): the
//! listener serves its own clients as ever, session ids name the instance, the
//! status says the cluster is disconnected, and one warning is logged, not one
//! per retry or per message. (With a real Redis: npm run test:cluster.)

const assert = require('assert');
const net = require('net');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { clientPool, wsUrl, until, nextMessage, delay } = require('./support');

helper.init(require('./node-red-under-test').runtime);

/** The nodes, with message keys followed by their parameters (the helper's own
 * RED._ drops them), for tests that look at what a message would show. */
function wsNodeWithParams(RED) {
    RED._ = (key, params) => (params ? key + ' ' + JSON.stringify(params) : key);
    return wsNode(RED);
}

/** A loopback port with nothing listening on it (bound, then let go). */
function closedPort() {
    return new Promise((resolve) => {
        const srv = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function flow(port, cluster = 'cl', props = {}) {
    return [
        { id: 'cl', type: 'websocket-cluster', url: 'redis://127.0.0.1:' + port, prefix: 't:', ...props },
        { id: 'listener', type: 'websocket-listener', path: '/ws/cl', wholemsg: 'false', cluster },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

describe('websocket-cluster without Redis', function () {
    this.timeout(20000);
    let pool;
    before(() => helper.startServer());
    after(() => helper.stopServer());
    beforeEach(() => {
        pool = clientPool(() => wsUrl(helper, ''));
    });
    afterEach(async function () {
        await pool.closeAll();
        await helper.unload();
    });

    it('serves local clients, names the instance in session ids, warns once and shows the cluster disconnected', async function () {
        await helper.load(wsNode, flow(await closedPort()));
        const cluster = helper.getNode('cl');
        const warn = cluster.warn; // the helper's spy
        const status = helper.getNode('out').status;
        const sink = helper.getNode('sink');
        const got = [];
        sink.on('input', (msg) => got.push(msg));
        const a = await pool.connect('/ws/cl');
        const b = await pool.connect('/ws/cl');
        a.send('hello');
        await until(() => got.length === 1, 'the message in');
        assert.match(got[0]._session.id, /^[0-9a-f]{12}-[0-9a-f]+$/);
        // A broadcast and a reply, served locally at once.
        const allAtA = nextMessage(a, { ms: 5000 });
        const atB = nextMessage(b, { ms: 5000 });
        helper.getNode('out').receive({ payload: 'to all' });
        assert.strictEqual(String((await allAtA).data), 'to all');
        assert.strictEqual(String((await atB).data), 'to all');
        const atA = nextMessage(a, { ms: 5000 });
        helper.getNode('out').receive({ payload: 'to you', _session: got[0]._session });
        assert.strictEqual(String((await atA).data), 'to you');
        // A reply to a session of another instance goes nowhere here and is no
        // error; a local send after it still arrives (and nothing before it).
        const out = helper.getNode('out');
        const errorsBefore = out.error.callCount;
        const next = nextMessage(a, { ms: 5000 });
        out.receive({ payload: 'away', _session: { type: 'websocket', id: '100000000001-5' } });
        out.receive({ payload: 'after', _session: got[0]._session });
        assert.strictEqual(String((await next).data), 'after');
        assert.strictEqual(out.error.callCount, errorsBefore);
        // Retries go on (100 ms, doubling to 2 s): after 3 s, several have failed.
        await until(() => warn.called, 'the warning');
        await delay(3000);
        assert.strictEqual(warn.callCount, 1, warn.args.map((x) => x[0]).join('\n'));
        // The helper's runtime leaves message keys untranslated.
        assert.match(warn.args[0][0], /cluster\.disconnected|Cluster disconnected/);
        const last = status.lastCall.args[0];
        assert.strictEqual(last.fill, 'yellow');
        assert.match(last.text, /cluster\.status-off|cluster disconnected/);
    });

    it('logs a link that keeps dropping once a minute, not once per drop', async function () {
        await helper.load(wsNode, flow(await closedPort()));
        const cluster = helper.getNode('cl');
        await until(() => cluster.warn.called, 'the first warning');
        // From here on the test drives the states, on its own clock.
        cluster.native.close();
        let now = Date.now();
        cluster.clock = () => now;
        const warnings = () => cluster.warn.args.filter((x) => /cluster\.disconnected/.test(x[0])).length;
        const infos = () => cluster.log.args.filter((x) => /cluster\.reconnected/.test(x[0])).length;
        cluster.onState(true);
        // The control: the outage that was warned of is said to be over.
        assert.deepStrictEqual([warnings(), infos()], [1, 1]);
        for (let i = 0; i < 5; i++) {
            now += 1000;
            cluster.onState(false, 'flap');
            cluster.onState(true);
        }
        assert.deepStrictEqual([warnings(), infos()], [1, 1], 'flaps within the minute: not logged');
        now += 60000;
        cluster.onState(false, 'again');
        cluster.onState(true);
        assert.deepStrictEqual([warnings(), infos()], [2, 2], 'a minute later: logged');
        // Each state is still shown.
        assert.strictEqual(cluster.connected, true);
    });

    it('with richStatus: no error, the cluster state stays shown, and a link change repeats no connect event', async function () {
        const nodes = flow(await closedPort());
        nodes[1].richStatus = true;
        await helper.load(wsNode, nodes);
        const listener = helper.getNode('listener');
        // The helper's spy on status sees every node's; this sees the out node's only.
        const shown = [];
        const out = helper.getNode('out');
        const original = out.status;
        out.status = function (st) {
            shown.push(st);
            return original.apply(this, arguments);
        };
        const a = await pool.connect('/ws/cl');
        await until(() => helper.getNode('cl').warn.called, 'the cluster\'s warning');
        // Traffic, for the rich text's timer (every 2 s) to run with.
        const got = [];
        helper.getNode('sink').on('input', (msg) => got.push(msg));
        for (let i = 0; i < 20; i++) a.send('m' + i);
        await until(() => got.length === 20, 'the messages in');
        await delay(2500);
        assert.ok(shown.some((s) => /rich/.test(s.text)), 'the rich text: ' + JSON.stringify(shown));
        const last = shown[shown.length - 1];
        assert.strictEqual(last.fill, 'yellow', JSON.stringify(last));
        assert.match(last.text, /cluster\.status-off|cluster disconnected/);
        assert.strictEqual(shown.filter((s) => s.event === 'connect').length, 1, JSON.stringify(shown));
        assert.strictEqual(listener.error.callCount, 0, listener.error.args.map((x) => x[0]).join('\n'));
    });

    it('keeps what other instances should get while Redis is away in Streams mode, where Pub/Sub drops it', async function () {
        const port = await closedPort();
        const dropped = {};
        for (const mode of ['pubsub', 'streams']) {
            await helper.load(wsNode, flow(port, 'cl', { mode, retention: 'not a number' }));
            const a = await pool.connect('/ws/cl');
            const atA = nextMessage(a, { ms: 5000 });
            for (let i = 0; i < 5; i++) helper.getNode('out').receive({ payload: 'b' + i });
            // Served locally at once in either mode.
            assert.strictEqual(String((await atA).data), 'b0');
            dropped[mode] = helper.getNode('cl').native.dropped;
            await pool.closeAll();
            await helper.unload();
        }
        assert.deepStrictEqual(dropped, { pubsub: 5, streams: 0 });
    });

    it('keeps a message over the size limit local: delivered here, counted, one warning', async function () {
        // Streams mode keeps what Redis cannot take yet, so the one not kept is the large one.
        await helper.load(wsNode, flow(await closedPort(), 'cl', { mode: 'streams' }));
        const cluster = helper.getNode('cl');
        const a = await pool.connect('/ws/cl');
        const big = 'x'.repeat(8 * 1024 * 1024 + 1);
        const atA = nextMessage(a, { ms: 10000 });
        helper.getNode('out').receive({ payload: big });
        assert.strictEqual(String((await atA).data).length, big.length);
        const small = nextMessage(a, { ms: 5000 });
        helper.getNode('out').receive({ payload: 'small' });
        assert.strictEqual(String((await small).data), 'small');
        helper.getNode('out').receive({ payload: big });
        await until(() => cluster.native.tooLarge === 2, 'both counted');
        // The control: the small one was kept for Redis, not counted.
        assert.strictEqual(cluster.native.dropped, 2);
        const tooLarge = cluster.warn.args.filter((x) => /too-large|over the limit/.test(x[0]));
        assert.strictEqual(tooLarge.length, 1, cluster.warn.args.map((x) => x[0]).join('\n'));
    });

    it('shows the cluster\'s drops in the listener\'s live stats', async function () {
        await helper.load(wsNode, flow(await closedPort()));
        const stats = require('../nodes/lib/stats');
        const a = await pool.connect('/ws/cl');
        const atA = nextMessage(a, { ms: 5000 });
        // Pub/Sub with Redis away: served here, dropped for the others.
        for (let i = 0; i < 3; i++) helper.getNode('out').receive({ payload: 'b' + i });
        assert.strictEqual(String((await atA).data), 'b0');
        const s = stats.statsOf(helper.getNode('listener'));
        assert.deepStrictEqual(s.cluster, { id: 'cl', connected: false, dropped: 3, tooLarge: 0 });
    });

    it('keeps plain hex session ids on a listener without a cluster', async function () {
        await helper.load(wsNode, flow(await closedPort(), ''));
        const got = [];
        helper.getNode('sink').on('input', (msg) => got.push(msg));
        (await pool.connect('/ws/cl')).send('x');
        await until(() => got.length === 1, 'the message in');
        assert.match(got[0]._session.id, /^[0-9a-f]+$/);
        assert.strictEqual(helper.getNode('listener').cluster, null);
    });

    it('refuses a URL that is not redis:// or rediss:// with a node error, which does not echo it', async function () {
        await helper.load(wsNodeWithParams, [{ id: 'cl', type: 'websocket-cluster', url: 'http://u:s3cret@127.0.0.1:1', prefix: 'p:' }]);
        const cluster = helper.getNode('cl');
        assert.strictEqual(cluster.native, null);
        assert.strictEqual(cluster.error.callCount, 1);
        const [message] = cluster.error.args[0];
        assert.match(message, /^websocket\.cluster\.failed .*redis:\/\/ or rediss:\/\//);
        assert.doesNotMatch(message, /s3cret/);
    });

    it('refuses an empty channel prefix or one with a "/" with a node error', async function () {
        for (const [prefix, refused] of [['', true], ['nr-ws:/a', true], ['nr-ws:', false]]) {
            await helper.load(wsNodeWithParams, [{ id: 'cl', type: 'websocket-cluster', url: 'redis://127.0.0.1:1', prefix }]);
            const cluster = helper.getNode('cl');
            assert.strictEqual(cluster.native === null, refused, JSON.stringify(prefix));
            assert.strictEqual(cluster.error.callCount, refused ? 1 : 0, JSON.stringify(prefix));
            if (refused) assert.match(cluster.error.args[0][0], /^websocket\.cluster\.failed .*prefix/);
            await helper.unload();
        }
    });

    it('logs and labels the URL without its user-info', async function () {
        const port = await closedPort();
        await helper.load(wsNodeWithParams, flow(port, 'cl', { url: 'redis://user:s3cret@127.0.0.1:' + port }));
        const cluster = helper.getNode('cl');
        await until(() => cluster.warn.called, 'the warning');
        const [message] = cluster.warn.args[0];
        // The control: the URL is in the message, without user-info.
        assert.match(message, new RegExp('^websocket\\.cluster\\.disconnected .*"url":"redis://127\\.0\\.0\\.1:' + port + '"'));
        assert.doesNotMatch(message, /s3cret|user/);
    });
});
