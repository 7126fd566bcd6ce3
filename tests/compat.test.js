'use strict';
//! Code that reaches into core's config nodes keeps working: `isServer`, the
//! config node's 'opened' / 'closed' events, and a listener's `server` emitting
//! 'connection' with a socket-like object, against real `ws` clients over loopback.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { connect, nextMessage, closed, wsUrl, until, within } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const flow = () => [
    { id: 'listener', type: 'websocket-listener', path: '/ws/compat', wholemsg: 'false', subprotocol: 'chat' },
    { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
    { id: 'sink', type: 'helper' },
    { id: 'client', type: 'websocket-client', path: 'ws://127.0.0.1:1/', tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [], connectOn: 'request' },
    { id: 'cin', type: 'websocket in', server: '', client: 'client', wires: [] }
];

describe('compatibility with code that reaches into the config nodes', function () {
    const clients = [];
    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        await helper.unload();
    });
    async function client() {
        const ws = await within(connect(wsUrl(helper, '/ws/compat'), ['chat']), 5000, 'a connection');
        clients.push(ws);
        return ws;
    }

    it('tells a listener from a client with isServer, as core', async function () {
        await helper.load(wsNode, flow());
        assert.strictEqual(helper.getNode('listener').isServer, true);
        assert.strictEqual(helper.getNode('client').isServer, false);
    });

    it('emits opened and closed on the config node, with the count and _session id', async function () {
        await helper.load(wsNode, flow());
        const listener = helper.getNode('listener');
        const seen = [];
        listener.on('opened', (e) => seen.push(['opened', e.count, e.id]));
        listener.on('closed', (e) => seen.push(['closed', e.count, e.id]));
        const got = new Promise((resolve) => helper.getNode('sink').once('input', resolve));
        const ws = await client();
        ws.send('who am I');
        const id = (await within(got, 5000, 'the msg'))._session.id;
        ws.close(1000);
        await until(() => seen.length === 2, 'opened and closed');
        assert.deepStrictEqual(seen, [['opened', 1, id], ['closed', 0, id]]);
    });

    it('gives a listener\'s server "connection" sockets that receive, send and close, only once something listens', async function () {
        await helper.load(wsNode, flow());
        const listener = helper.getNode('listener');
        const early = await client();
        // Known to the flow (so its open event has come) before anything listens.
        const first = new Promise((resolve) => helper.getNode('sink').once('input', resolve));
        early.send('early');
        await within(first, 5000, 'the early msg');
        assert.strictEqual(listener.compatSockets, null, 'sockets were built with nobody listening');

        const sockets = [];
        listener.server.on('connection', (socket) => sockets.push(socket));
        const ws = await client();
        await until(() => sockets.length === 1, 'the connection event');
        assert.strictEqual(sockets.length, 1, 'a session from before the listener got a socket');
        const socket = sockets[0];
        assert.strictEqual(socket.protocol, 'chat');
        assert.strictEqual(socket.readyState, 1);
        assert.ok(listener.server.clients.has(socket));

        const heard = [];
        socket.on('message', (data, isBinary) => heard.push([data, isBinary]));
        ws.send('text');
        ws.send(Buffer.from([1, 2]));
        await until(() => heard.length === 2, 'two messages');
        assert.deepStrictEqual(heard, [['text', false], [Buffer.from([1, 2]), true]]);

        const back = nextMessage(ws, { ms: 5000 });
        socket.send('back', (err) => assert.ifError(err));
        assert.strictEqual((await back).data.toString(), 'back');
        // The flow is served as before, beside the socket.
        const got = new Promise((resolve) => helper.getNode('sink').once('input', resolve));
        early.send('still a flow msg');
        assert.strictEqual((await within(got, 5000, 'the flow msg')).payload, 'still a flow msg');

        assert.throws(() => socket.close(1005), TypeError);
        const end = closed(ws, { ms: 5000 });
        const socketClosed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
        socket.close(4000, 'bye');
        const c = await end;
        assert.deepStrictEqual([c.code, c.reason], [4000, 'bye']);
        assert.strictEqual(await within(socketClosed, 5000, 'the socket\'s close'), 4000);
        assert.strictEqual(socket.readyState, 3);
        assert.ok(!listener.server.clients.has(socket));
        assert.throws(() => socket.send('late'), /not open/);
    });
});
