'use strict';
//! The "Limits" of websocket-client (handshake and idle timeouts, max message,
//! queue cap and policy), in a real Node-RED (test helper) against independent
//! `ws` servers and a TCP server that never answers, over loopback.

const assert = require('assert');
const net = require('net');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, until, within } = require('./support');

helper.init(require('./node-red-under-test').runtime);

function clientFlow(url, limits = {}) {
    return [
        { id: 'client', type: 'websocket-client', path: url, tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [], ...limits },
        { id: 'in', type: 'websocket in', server: '', client: 'client', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: '', client: 'client' }
    ];
}

/** What the node logged as warnings (message keys under the test helper). */
function warned() {
    return helper.log().args.filter((a) => a[0].level === helper.log().WARN).map((a) => String(a[0].msg));
}

describe('websocket-client limits', function () {
    const cleanups = [];

    /** An independent ws server: {port, conns, closes: [{code, reason}]}. */
    async function server() {
        const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
        await new Promise((resolve) => wss.once('listening', resolve));
        const s = { port: wss.address().port, conns: [], closes: [] };
        wss.on('connection', (ws) => {
            s.conns.push(ws);
            ws.on('close', (code, reason) => s.closes.push({ code, reason: reason.toString() }));
        });
        cleanups.push(() => new Promise((resolve) => {
            for (const c of wss.clients) c.terminate();
            wss.close(resolve);
        }));
        return s;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    beforeEach(() => helper.settings({ websocketClientReconnectDelay: 100, websocketClientReconnectMaxDelay: 200 }));
    afterEach(async function () {
        await helper.unload();
        for (const fn of cleanups.splice(0)) await fn();
        helper.settings({});
    });

    it('handshake timeout: a server that accepts TCP and never answers fails the attempt, which is retried', async function () {
        const sockets = [];
        let given = 0;
        const mute = net.createServer((socket) => {
            sockets.push(socket);
            socket.on('error', () => {});
            socket.on('close', () => given++);
            socket.resume(); // reads (and drops) the upgrade request, so it sees the client leave
        });
        await new Promise((resolve) => mute.listen(0, '127.0.0.1', resolve));
        cleanups.push(() => new Promise((resolve) => {
            for (const s of sockets) s.destroy();
            mute.close(resolve);
        }));
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + mute.address().port + '/', { limHandshake: '0.3' }));
        await until(() => given >= 1, 'the first attempt to be given up', 5000);
        await until(() => sockets.length >= 2, 'a second attempt', 5000);
        assert.ok(warned().some((m) => /timed out after 300ms/.test(m)), warned().join('\n'));
        // The control: under the same limit, a server that answers is connected to.
        await helper.unload();
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { limHandshake: '0.3' }));
        await until(() => helper.getNode('client').count === 1, 'the connection');
    });

    it('idle timeout: a connection on which the server is silent is closed with 1001 "idle timeout", then redialled', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { limIdle: '0.3' }));
        await until(() => s.closes.length === 1, 'the idle close', 5000);
        assert.deepStrictEqual(s.closes[0], { code: 1001, reason: 'idle timeout' });
        await until(() => s.conns.length === 2, 'the client to dial again', 5000);
    });

    it('max message: a message from the server over it closes with 1009, one at it arrives', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { limMsg: '1 KiB' }));
        await until(() => s.conns.length === 1, 'the connection');
        const got = new Promise((resolve) => helper.getNode('sink').once('input', resolve));
        s.conns[0].send(Buffer.alloc(1024));
        assert.strictEqual((await within(got, 5000, 'the 1 KiB message')).payload.length, 1024);
        s.conns[0].send(Buffer.alloc(1025));
        await until(() => s.closes.length === 1, 'the close', 5000);
        assert.strictEqual(s.closes[0].code, 1009);
    });

    for (const policy of ['close', 'drop']) {
        it('queue full, "' + policy + '": a server that stops reading ' + (policy === 'drop' ? 'stays connected, drops counted and warned' : 'is closed (1008)'), async function () {
            const s = await server();
            await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { limQueue: '1', limPolicy: policy }));
            const client = helper.getNode('client');
            await until(() => client.count === 1, 'the connection');
            s.conns[0]._socket.pause();
            const out = helper.getNode('out');
            // 16 MiB in one event-loop turn, 16 times the cap.
            for (let i = 0; i < 256; i++) out.receive({ payload: Buffer.alloc(64 << 10, i) });
            if (policy === 'close') {
                await until(() => client.count === 0, 'the client to close the connection', 10000);
                assert.ok(warned().some((m) => /send queue full/.test(m)), warned().join('\n'));
                return;
            }
            await until(() => client.dropped > 0, 'drops to be counted', 5000);
            assert.ok(warned().some((m) => /dropped/.test(m)), warned().join('\n'));
            // Still connected: the server gets what fitted, then a message sent afterwards.
            const received = [];
            s.conns[0].on('message', (d) => received.push(d.length));
            s.conns[0]._socket.resume();
            await until(() => received.length === 256 - client.dropped, 'what was queued', 10000);
            out.receive({ payload: 'after' });
            await until(() => received.length === 256 - client.dropped + 1, 'a message sent after the drops', 5000);
            assert.strictEqual(client.count, 1);
        });
    }
});
