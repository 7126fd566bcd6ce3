'use strict';
//! websocket-client on demand: "connect only on a connect message", reconnecting
//! turned off, and connect/disconnect requests (with a URL and headers) sent as
//! msg.websocket to its out node, in a real Node-RED (test helper) against
//! independent `ws` servers over loopback.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, closed, delay, until, statusLog } = require('./support');
const { clientFlow } = require('./flows');

helper.init(require('./node-red-under-test').runtime);

/** An independent ws server on a free loopback port, recording connections and their requests. */
async function wsServer() {
    const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    const conns = [];
    const requests = [];
    wss.on('connection', (ws, req) => {
        conns.push(ws);
        requests.push(req);
    });
    return { wss, conns, requests, url: 'ws://127.0.0.1:' + wss.address().port };
}

/** Records what a node logs with `method` (warn, error). */
function spy(node, method) {
    const log = [];
    const orig = node[method].bind(node);
    node[method] = (...args) => {
        log.push(args[0] instanceof Error ? args[0].message : String(args[0]));
        orig(...args);
    };
    return log;
}

describe('websocket-client on demand', function () {
    const servers = [];
    async function server() {
        const s = await wsServer();
        servers.push(s);
        return s;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    beforeEach(() => helper.settings({ websocketClientReconnectDelay: 100, websocketClientReconnectMaxDelay: 200 }));
    afterEach(async function () {
        await helper.unload();
        for (const s of servers.splice(0)) {
            for (const c of s.wss.clients) c.terminate();
            await new Promise((resolve) => s.wss.close(() => resolve()));
        }
        helper.settings({});
    });

    it('connects only on a connect message, and disconnect closes with 1000 until the next connect', async function () {
        const s = await server();
        const control = await server();
        // A control client deployed with it, connecting at deploy as core does.
        const flow = [...clientFlow(s.url + '/', { connectOn: 'request' }),
            { id: 'control', type: 'websocket-client', path: control.url + '/', tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [] },
            { id: 'controlIn', type: 'websocket in', server: '', client: 'control', wires: [] }];
        await helper.load(wsNode, flow);
        const statuses = statusLog(helper.getNode('in'));
        const out = helper.getNode('out');
        await until(() => control.conns.length === 1, 'the control client connected');
        await until(() => statuses.some((st) => st.text === 'common.status.not-connected'), 'the "not connected" status');
        assert.strictEqual(s.conns.length, 0, 'connected before it was asked');

        out.receive({ websocket: { connect: true }, payload: 'not sent' });
        await until(() => s.conns.length === 1, 'connected on request');
        const first = new Promise((r) => s.conns[0].once('message', (d) => r(d.toString())));
        out.receive({ payload: 'hello' });
        assert.strictEqual(await first, 'hello', 'the connect request\'s payload is not sent, the next msg is');

        const gone = closed(s.conns[0], { ms: 5000 });
        out.receive({ websocket: { disconnect: true } });
        assert.strictEqual((await gone).code, 1000);
        await until(() => statuses[statuses.length - 1].text === 'common.status.not-connected', 'not connected again');
        // No redial: the settings' delay is 100 ms; a positive control follows.
        await delay(600);
        assert.strictEqual(s.conns.length, 1, 'redialled after a disconnect request');
        out.receive({ websocket: { connect: true } });
        await until(() => s.conns.length === 2, 'connected again on request');
    });

    it('connects to a URL and with headers given by message, replacing the connection it has, and keeps them', async function () {
        const a = await server();
        const b = await server();
        await helper.load(wsNode, clientFlow(a.url + '/configured', {
            headers: [{ keyType: 'other', keyValue: 'X-Configured', valueType: 'other', valueValue: 'yes' }]
        }));
        const out = helper.getNode('out');
        await until(() => a.conns.length === 1, 'connected to the configured URL');
        assert.strictEqual(a.requests[0].headers['x-configured'], 'yes');

        const gone = closed(a.conns[0], { ms: 5000 });
        out.receive({ websocket: { connect: { url: b.url + '/asked?x=1', headers: { 'X-Token': 'abc', 'X-Number': 7 } } } });
        assert.strictEqual((await gone).code, 1000, 'the old connection closed normally');
        await until(() => b.conns.length === 1, 'connected to the URL asked for');
        assert.strictEqual(b.requests[0].url, '/asked?x=1');
        assert.strictEqual(b.requests[0].headers['x-token'], 'abc');
        assert.strictEqual(b.requests[0].headers['x-number'], '7');
        assert.strictEqual(b.requests[0].headers['x-configured'], undefined, 'the headers asked for replace the configured ones');

        // Dropped by the server: the client redials the URL it was last asked for.
        b.conns[0].close(1001);
        await until(() => b.conns.length === 2, 'redialled the URL asked for');
        assert.strictEqual(b.requests[1].url, '/asked?x=1');
        assert.strictEqual(a.conns.length, 1, 'went back to the configured URL');
    });

    it('sends its configured headers only to the server they were meant for, and tells the URL dialled', async function () {
        const a = await server();
        const b = await server();
        const flow = clientFlow(a.url.replace('ws://', 'ws://user:pw@') + '/configured', {
            headers: [{ keyType: 'other', keyValue: 'X-Secret', valueType: 'other', valueValue: 'for-a' }]
        });
        flow[1] = { ...flow[1], events: true, outputs: 2, wires: [['sink'], ['events']] };
        flow.push({ id: 'events', type: 'helper' });
        await helper.load(wsNode, flow);
        const connects = [];
        helper.getNode('events').on('input', (msg) => { if (msg.payload === 'connect') connects.push(msg.websocket.url); });
        const out = helper.getNode('out');
        await until(() => a.conns.length === 1, 'connected to the configured URL');
        assert.strictEqual(a.requests[0].headers['x-secret'], 'for-a');

        out.receive({ websocket: { connect: { url: b.url + '/elsewhere' } } });
        await until(() => b.conns.length === 1, 'connected to another server');
        assert.strictEqual(b.requests[0].headers['x-secret'], undefined, 'the configured headers went to another server');
        out.receive({ websocket: { connect: { url: a.url + '/back' } } });
        await until(() => a.conns.length === 2, 'back to the configured server');
        assert.strictEqual(a.requests[1].url, '/back');
        assert.strictEqual(a.requests[1].headers['x-secret'], 'for-a', 'the configured server gets its headers again');
        await until(() => connects.length === 3, 'three connect events');
        assert.deepStrictEqual(connects, [a.url + '/configured', b.url + '/elsewhere', a.url + '/back'], 'the URLs dialled, without credentials');
    });

    it('with reconnecting off, stays down after the server closes until a connect message', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow(s.url + '/', { reconnect: 'off' }));
        const statuses = statusLog(helper.getNode('in'));
        const out = helper.getNode('out');
        await until(() => s.conns.length === 1, 'connected at deploy');
        s.conns[0].close(1001);
        await until(() => statuses.some((st) => st.text === 'common.status.not-connected'), 'not connected');
        await delay(600); // four times the settings' delay
        assert.strictEqual(s.conns.length, 1, 'reconnected with reconnecting off');
        out.receive({ websocket: { connect: true } });
        await until(() => s.conns.length === 2, 'connected on request');
    });

    it('reads its own reconnect delays, in seconds, before the settings', async function () {
        const s = await server();
        helper.settings({ websocketClientReconnectDelay: 60000, websocketClientReconnectMaxDelay: 60000 });
        await helper.load(wsNode, clientFlow(s.url + '/', { rcDelay: '0.2', rcMaxDelay: '0.2' }));
        await until(() => s.conns.length === 1, 'connected at deploy');
        s.conns[0].close(1001);
        // With the settings' 60 s this would not come within the bound.
        await until(() => s.conns.length === 2, 'redialled after the node\'s 0.2 s', 5000);
    });

    it('refuses a malformed request as a node error, changing nothing', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow(s.url + '/'));
        const out = helper.getNode('out');
        const errors = spy(out, 'error');
        await until(() => s.conns.length === 1, 'connected');
        for (const websocket of [
            { connect: { url: 'http://127.0.0.1:1/' } },
            { connect: 'yes' },
            { connect: true, disconnect: true },
            { connect: { headers: ['X-A', 'b'] } },
            { connect: { url: 'ws://127.0.0.1:1/', headers: { 'X-Bad': 'a\r\nb' } } }
        ]) {
            out.receive({ websocket });
        }
        await until(() => errors.length === 5, 'five node errors');
        assert.ok(/ws:\/\/ or wss:\/\//.test(errors[0]), errors[0]);
        assert.ok(/X-Bad/.test(errors[4]) && !/a\r\nb/.test(errors[4]), errors[4]);
        // Still connected to the same server, and serving ordinary messages.
        const got = new Promise((r) => s.conns[0].once('message', (d) => r(d.toString())));
        out.receive({ payload: 'still here', websocket: { note: 'not a request' } });
        assert.strictEqual(await got, 'still here');
        assert.strictEqual(s.conns.length, 1);
    });
});
