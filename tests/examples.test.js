'use strict';
//! The flows in examples/ (what Import → Examples offers) do what their
//! descriptions say, run as shipped but for the port their clients dial.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, received, until } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const NODES = [
    wsNode,
    require('@node-red/nodes/core/common/20-inject.js'),
    require('@node-red/nodes/core/function/15-change.js'),
    require('@node-red/nodes/core/function/10-function.js')
];
const DIR = path.join(__dirname, '..', 'examples');

/** An example flow, its debug nodes turned into helper sinks and its clients pointed at the helper's port. */
function example(file, port) {
    const text = fs.readFileSync(path.join(DIR, file), 'utf8').replace(/ws:\/\/127\.0\.0\.1:1880\//g, 'ws://127.0.0.1:' + port + '/');
    return JSON.parse(text).map((n) => (n.type === 'debug' ? { id: n.id, z: n.z, name: n.name, type: 'helper' } : n));
}

function idOf(flow, type, name) {
    const node = flow.find((n) => n.name === name && (n.type === type || (type === 'debug' && n.type === 'helper')));
    assert.ok(node, 'no ' + type + ' named ' + name);
    return node.id;
}

describe('examples', function () {
    let port;
    before(async function () {
        await helper.startServer();
        port = new URL(helper.url()).port;
    });
    after(() => helper.stopServer());
    afterEach(() => helper.unload());

    it('are the six the README and the package test list, each a valid flow with its own tab', function () {
        const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();
        assert.deepStrictEqual(files, ['01 - Echo server and client.json', '02 - Broadcast to many clients.json',
            '03 - Whole message mode.json', '04 - Chat with rooms.json', '05 - Authenticated listener.json',
            '06 - Broadcast across instances.json']);
        for (const f of files) {
            const flow = JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'));
            assert.strictEqual(flow.filter((n) => n.type === 'tab').length, 1, f);
            assert.ok(flow.every((n) => /^[0-9a-f]{16}$/.test(n.id)), f + ': node ids');
        }
    });

    it('01 echoes the injected time through the client and the listener', async function () {
        const flow = example('01 - Echo server and client.json', port);
        await helper.load(NODES, flow);
        const client = helper.getNode(flow.find((n) => n.type === 'websocket-client').id);
        await until(() => client.count === 1, 'client connected');
        const got = received(helper.getNode(idOf(flow, 'debug', 'echo received')));
        helper.getNode(idOf(flow, 'inject', 'send time')).receive({});
        const msg = await got;
        assert.ok(Number(msg.payload) > 1.7e12, String(msg.payload));
    });

    it('02 broadcasts the tick and a client\'s message to both clients', async function () {
        const flow = example('02 - Broadcast to many clients.json', port);
        await helper.load(NODES, flow);
        const listener = helper.getNode(flow.find((n) => n.type === 'websocket-listener').id);
        await until(() => listener.count === 2, 'both clients connected');
        const sinkA = helper.getNode(idOf(flow, 'debug', 'client A received'));
        const sinkB = helper.getNode(idOf(flow, 'debug', 'client B received'));
        const hello = (sink) => new Promise((resolve) => sink.on('input', (msg) => msg.payload === 'hello from client A' && resolve()));
        const both = Promise.all([hello(sinkA), hello(sinkB)]);
        helper.getNode(idOf(flow, 'inject', 'client A says hello')).receive({});
        await both;
        // The tick (every 2 s, first after 1 s) reaches both as well.
        const ticks = Promise.all([sinkA, sinkB].map((sink) => new Promise((resolve) => sink.on('input', (msg) => Number(msg.payload) > 1.7e12 && resolve()))));
        await ticks;
    });

    it('03 carries topic and payload as a whole msg, and the reply comes back whole', async function () {
        const flow = example('03 - Whole message mode.json', port);
        await helper.load(NODES, flow);
        const client = helper.getNode(flow.find((n) => n.type === 'websocket-client').id);
        await until(() => client.count === 1, 'client connected');
        const got = received(helper.getNode(idOf(flow, 'debug', 'reply (whole msg)')));
        helper.getNode(idOf(flow, 'inject', 'send order')).receive({});
        const msg = await got;
        assert.strictEqual(msg.topic, 'orders/new');
        assert.deepStrictEqual(msg.payload, { item: 'widget', quantity: 3 });
        assert.strictEqual(msg.status, 'accepted');
        assert.ok(msg.receivedAt > 1.7e12, String(msg.receivedAt));
    });

    it('04 greets each client, and a post reaches exactly the members of its room', async function () {
        const flow = example('04 - Chat with rooms.json', port);
        await helper.load(NODES, flow);
        const got = { alice: [], bob: [] };
        for (const who of ['alice', 'bob']) {
            helper.getNode(idOf(flow, 'debug', who + ' received')).on('input', (msg) => got[who].push(JSON.parse(msg.payload)));
        }
        await until(() => got.alice.length === 1 && got.bob.length === 1, 'both welcomed');
        assert.match(got.alice[0].info, /^welcome/);
        const press = (name) => helper.getNode(idOf(flow, 'inject', name)).receive({});
        const said = (who, what) => until(() => got[who].some((m) => m.info === what || m.text === what), who + ' getting ' + what);
        press('alice joins general');
        press('bob joins general');
        await Promise.all([said('alice', 'joined general'), said('bob', 'joined general')]);
        press('alice posts to general');
        await Promise.all([said('alice', 'hello, general'), said('bob', 'hello, general')]);
        press('alice joins random');
        await said('alice', 'joined random');
        press('bob posts to random');
        await said('alice', 'anyone here?');
        // bob is not in random; positive control: a later post to general reaches him.
        press('alice posts to general');
        await until(() => got.bob.filter((m) => m.text === 'hello, general').length === 2, 'bob getting the second post');
        assert.deepStrictEqual(got.bob.map((m) => m.info || m.text), ['welcome: send {"join": "<room>"}', 'joined general', 'hello, general', 'hello, general']);
        assert.ok(got.alice.every((m) => m.from === undefined || /^[0-9a-f]+$/.test(m.from)));
    });

    it('05 lets the client with the demo JWT in, greets it by the token\'s name, and echoes; 401 without it', async function () {
        const flow = example('05 - Authenticated listener.json', port);
        await helper.load(NODES, flow);
        const got = received(helper.getNode(idOf(flow, 'debug', 'from the server')), 2);
        const client = helper.getNode(flow.find((n) => n.type === 'websocket-client').id);
        await until(() => client.count === 1, 'client connected');
        helper.getNode(idOf(flow, 'inject', 'send time')).receive({});
        const [greeting, echo] = await got;
        assert.strictEqual(greeting.payload, 'hello Demo User');
        assert.ok(/^\d+$/.test(String(echo.payload)), 'the time echoed: ' + echo.payload);
        const refused = await new Promise((resolve) => {
            const ws = new WebSocket('ws://127.0.0.1:' + port + '/ws/secure');
            ws.once('unexpected-response', (req, res) => resolve(res.statusCode));
            ws.once('open', () => resolve('opened'));
            ws.once('error', () => {});
        });
        assert.strictEqual(refused, 401);
    });
    it('06 broadcasts a shout through the listener, and keeps delivering locally while its Redis is unreachable', async function () {
        // No Redis on this port: the instance is on its own, as during an outage
        // (tests/cluster/example.test.js runs this flow on two instances with a real Redis).
        const text = fs.readFileSync(path.join(DIR, '06 - Broadcast across instances.json'), 'utf8')
            .replace(/redis:\/\/127\.0\.0\.1:6379/g, 'redis://127.0.0.1:1');
        const flow = JSON.parse(text.replace(/ws:\/\/127\.0\.0\.1:1880\//g, 'ws://127.0.0.1:' + port + '/'))
            .map((n) => (n.type === 'debug' ? { id: n.id, z: n.z, name: n.name, type: 'helper' } : n));
        await helper.load(NODES, flow);
        const cluster = helper.getNode(flow.find((n) => n.type === 'websocket-cluster').id);
        const client = helper.getNode(flow.find((n) => n.type === 'websocket-client').id);
        await until(() => client.count === 1, 'client connected');
        const heard = received(helper.getNode(idOf(flow, 'debug', 'heard')));
        helper.getNode(idOf(flow, 'inject', 'shout hello')).receive({});
        assert.strictEqual((await heard).payload, 'hello, everyone');
        await until(() => cluster.warn.called, 'the cluster\'s warning');
        // A second client of the listener hears the next shout too: a broadcast, not a reply.
        const other = new WebSocket('ws://127.0.0.1:' + port + '/ws/shout');
        const got = new Promise((resolve) => other.on('message', (d) => resolve(d.toString())));
        await new Promise((resolve, reject) => { other.once('open', resolve); other.once('error', reject); });
        helper.getNode(idOf(flow, 'inject', 'shout hello')).receive({});
        assert.strictEqual(await got, 'hello, everyone');
        other.close();
    });
});
