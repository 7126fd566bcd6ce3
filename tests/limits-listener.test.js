'use strict';
//! The "Limits" of websocket-listener (max message, queue cap and policy,
//! handshake and idle timeouts, connection limit, origins), in a real Node-RED
//! (test helper) with real `ws` clients and raw sockets over loopback; and a flow
//! exported from core, which must get the defaults.

const assert = require('assert');
const net = require('net');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { DEFAULTS } = require('../nodes/lib/limits');
const { WebSocket, connect, nextMessage, closed, wsUrl, until, within, delay } = require('./support');
const { upgradeRequest, frameParser } = require('./faults/frames');

helper.init(require('./node-red-under-test').runtime);

function flow(limits = {}, path = '/ws/lim') {
    return [
        { id: 'listener', type: 'websocket-listener', path, wholemsg: 'false', ...limits },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

/** Every warning the node logs, as text. */
function warnings(node) {
    const log = [];
    const warn = node.warn.bind(node);
    node.warn = (m) => {
        log.push(String(m));
        warn(m);
    };
    return log;
}

/** What `new WebSocket` got instead of a connection: the HTTP status, or the error. */
function refusal(url, options) {
    return within(new Promise((resolve) => {
        const ws = new WebSocket(url, options);
        ws.on('error', (err) => resolve(err.message));
        ws.on('unexpected-response', (req, res) => {
            resolve(res.statusCode);
            req.destroy();
        });
        ws.on('open', () => {
            resolve('open');
            ws.terminate();
        });
    }), 5000, 'an answer to the upgrade');
}

describe('websocket-listener limits', function () {
    const clients = [];
    const raws = [];
    async function client(options, path = '/ws/lim') {
        const ws = await connect(wsUrl(helper, path), undefined, options);
        clients.push(ws);
        return ws;
    }

    /**
     * A raw connection past the 101 that never reads (its socket is paused);
     * `leftover`: what came after the 101's head.
     */
    async function stalledRaw(path = '/ws/lim') {
        const port = new URL(helper.url()).port;
        const socket = net.connect(port, '127.0.0.1');
        raws.push(socket);
        socket.on('error', () => {});
        let data = Buffer.alloc(0);
        const onData = (d) => { data = Buffer.concat([data, d]); };
        socket.on('data', onData);
        socket.write(upgradeRequest('127.0.0.1:' + port, path));
        await until(() => data.indexOf('\r\n\r\n') > 0, 'the 101');
        assert.match(data.toString('latin1', 0, 13), /^HTTP\/1\.1 101/);
        socket.off('data', onData);
        socket.pause();
        socket.leftover = data.subarray(data.indexOf('\r\n\r\n') + 4);
        return socket;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        for (const s of raws.splice(0)) s.destroy();
        await helper.unload();
    });

    it('a flow exported from core gets the defaults, which are today\'s behaviour', async function () {
        const port = new URL(helper.url()).port;
        // As Node-RED 4.1's core exports them (Export → JSON), unchanged.
        const core = [
            { id: 'c0a1', type: 'tab', label: 'Flow 1', disabled: false, info: '', env: [] },
            { id: 'c0a2', type: 'websocket in', z: 'c0a1', name: '', server: 'c0a4', client: '', x: 130, y: 80, wires: [['c0a3']] },
            { id: 'c0a3', type: 'websocket out', z: 'c0a1', name: '', server: 'c0a4', client: '', x: 330, y: 80, wires: [] },
            { id: 'c0a4', type: 'websocket-listener', path: '/ws/core', wholemsg: 'false' },
            { id: 'c0a5', type: 'websocket out', z: 'c0a1', name: '', server: '', client: 'c0a6', x: 330, y: 140, wires: [] },
            { id: 'c0a6', type: 'websocket-client', path: 'ws://127.0.0.1:' + port + '/ws/core', tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [] }
        ];
        await helper.load(wsNode, core);
        const listener = helper.getNode('c0a4');
        const wsClient = helper.getNode('c0a6');
        const common = { maxMessageBytes: 100 << 20, maxQueueBytes: 256 << 20, queuePolicy: 'close', idleTimeoutMs: 0, maxConnections: 0, origins: [] };
        assert.deepStrictEqual(listener.limits, { ...common, handshakeMs: 0 });
        assert.deepStrictEqual(wsClient.limits, { ...common, handshakeMs: 30000 });
        assert.strictEqual(DEFAULTS.maxMessageBytes, 100 << 20);
        // And it runs: any origin, a 2 MiB message, the echo.
        const ws = await client({ origin: 'https://anywhere.example' }, '/ws/core');
        const echo = nextMessage(ws, { ms: 5000 });
        ws.send(Buffer.alloc(2 << 20, 7));
        assert.strictEqual((await echo).data.length, 2 << 20);
        await until(() => wsClient.count === 1, 'the client node to connect');
    });

    it('max message: a message over it closes the connection with 1009, one at it passes', async function () {
        await helper.load(wsNode, flow({ limMsg: '1 KiB' }));
        const ok = await client();
        const bad = await client();
        const got = new Promise((resolve) => helper.getNode('sink').once('input', resolve));
        ok.send(Buffer.alloc(1024));
        assert.strictEqual((await within(got, 5000, 'the 1 KiB message')).payload.length, 1024);
        bad.send(Buffer.alloc(1025));
        assert.strictEqual((await closed(bad, { ms: 5000 })).code, 1009);
    });

    /**
     * 32 MiB broadcast in 64 KiB messages, 8 at a time, each group once the client
     * that reads has had the previous one: its queue never holds more than 512 KiB,
     * while a client that stops reading meets the cap of 1 MiB once the kernel's
     * socket buffers are full. Resolves with the first byte of each message it got.
     */
    async function feed(reader) {
        const seen = [];
        reader.on('message', (d) => seen.push(d[0]));
        const out = helper.getNode('out');
        for (let group = 0; group < 64; group++) {
            for (let i = 0; i < 8; i++) out.receive({ payload: Buffer.alloc(64 << 10, (group * 8 + i) & 255) });
            await until(() => seen.length === (group + 1) * 8, 'group ' + group + ' at the reading client', 10000);
        }
        return seen;
    }
    const everything = Array.from({ length: 512 }, (_, i) => i & 255);

    it('queue full, "close" (default): a client that stops reading is closed, one that reads gets everything', async function () {
        await helper.load(wsNode, flow({ limQueue: '1' }));
        const listener = helper.getNode('listener');
        const reader = await client();
        await stalledRaw();
        await until(() => listener.count === 2, 'both connected');
        assert.deepStrictEqual(await feed(reader), everything);
        await until(() => listener.count === 1, 'the stalled client to be closed', 5000);
    });

    it('queue full, "drop": a client that stops reading stays connected, its drops counted and warned; one that reads gets everything', async function () {
        await helper.load(wsNode, flow({ limQueue: '1', limPolicy: 'drop' }));
        const listener = helper.getNode('listener');
        const log = warnings(listener);
        const reader = await client();
        const slow = await stalledRaw();
        await until(() => listener.count === 2, 'both connected');
        assert.deepStrictEqual(await feed(reader), everything);
        await until(() => listener.dropped > 0, 'drops to be counted', 5000);
        assert.ok(log.some((m) => /dropped/.test(m)), log.join('\n'));
        assert.strictEqual(listener.count, 2, 'the slow client was closed');
        // Still connected: once it reads, it gets what was queued for it, then a
        // message broadcast afterwards (which no socket buffer could hold already).
        const parser = frameParser();
        parser.push(slow.leftover);
        slow.on('data', (d) => parser.push(d));
        slow.resume();
        const binary = () => parser.frames.filter((f) => f.opcode === 2).length;
        await until(() => binary() === 512 - listener.dropped, 'the slow client to read what was queued for it', 10000);
        helper.getNode('out').receive({ payload: 'after the drops' });
        await until(() => parser.frames.some((f) => f.opcode === 1), 'a message sent after the drops', 5000);
        const last = parser.frames[parser.frames.length - 1];
        assert.deepStrictEqual([last.opcode, last.payload.toString()], [1, 'after the drops']);
        assert.deepStrictEqual(parser.frames.filter((f) => f.opcode !== 2).map((f) => f.opcode), [1], 'only data frames, no close');
        assert.strictEqual(listener.count, 2);
        assert.ok(listener.dropped > 0 && listener.dropped < 512, 'dropped ' + listener.dropped + ' of 512');
    });

    describe('with an asynchronous webSocketNodeVerifyClient', function () {
        let saved;
        beforeEach(function () {
            saved = helper.settings();
            // Hangs on requests marked x-hang; answers others after 20 ms.
            helper.settings({
                webSocketNodeVerifyClient: (info, cb) => {
                    if (!info.req.headers['x-hang']) setTimeout(() => cb(true), 20);
                }
            });
        });
        afterEach(function () {
            helper._settings = saved;
        });

        it('handshake timeout: a verifier that does not answer in time gets the client a 503 and a warning', async function () {
            await helper.load(wsNode, flow({ limHandshake: '0.2' }));
            const log = warnings(helper.getNode('listener'));
            assert.strictEqual(await refusal(wsUrl(helper, '/ws/lim'), { headers: { 'x-hang': '1' } }), 503);
            assert.ok(log.some((m) => /verify-timeout|0\.2 s/.test(m)), log.join('\n'));
            assert.strictEqual(await refusal(wsUrl(helper, '/ws/lim')), 'open', 'a verifier that answers in time');
        });
    });

    it('idle timeout: a silent client is closed with 1001 "idle timeout", one that talks stays', async function () {
        await helper.load(wsNode, flow({ limIdle: '0.3' }));
        const silent = await client();
        const talking = await client();
        let talkingClosed = false;
        talking.on('close', () => { talkingClosed = true; });
        const chat = setInterval(() => talking.send('.'), 50);
        try {
            const end = await closed(silent, { ms: 5000 });
            assert.deepStrictEqual(end, { code: 1001, reason: 'idle timeout' });
            await delay(500);
            assert.strictEqual(talkingClosed, false);
        } finally {
            clearInterval(chat);
        }
    });

    it('idle timeout with the heartbeat on: the heartbeat rules', async function () {
        await helper.load(wsNode, flow({ limIdle: '0.05', hb: '0.3' }));
        const answering = await client(); // `ws` answers pings, and sends nothing else
        let answeringClosed = false;
        answering.on('close', () => { answeringClosed = true; });
        const mute = await stalledRaw(); // answers nothing
        await within(new Promise((resolve) => mute.once('close', resolve).resume()), 5000, 'the heartbeat to drop the mute peer');
        assert.strictEqual(answeringClosed, false, 'closed as idle although the heartbeat is on');
    });

    it('max connections: past the limit 503 and a warning; room again once a client has left', async function () {
        await helper.load(wsNode, flow({ limConns: '2' }));
        const listener = helper.getNode('listener');
        const log = warnings(listener);
        const first = await client();
        await client();
        assert.strictEqual(await refusal(wsUrl(helper, '/ws/lim')), 503);
        assert.ok(log.some((m) => /too-many|maximum of 2/.test(m)), log.join('\n'));
        first.close();
        await until(async () => (await refusal(wsUrl(helper, '/ws/lim'))) === 'open', 'a connection once the first has left');
    });

    it('origins: listed ones as browsers send them pass, others get 403 and a warning, no Origin passes', async function () {
        await helper.load(wsNode, flow({ limOrigins: 'https://Example.com, http://localhost:1880' }));
        const log = warnings(helper.getNode('listener'));
        const url = wsUrl(helper, '/ws/lim');
        for (const origin of ['https://example.com', 'https://EXAMPLE.COM:443', 'http://localhost:1880']) {
            assert.strictEqual(await refusal(url, { origin }), 'open', origin);
        }
        assert.strictEqual(await refusal(url), 'open', 'a request without an Origin');
        for (const origin of ['http://example.com', 'https://example.com:8443', 'http://localhost:1881', 'https://evil.example', 'null']) {
            assert.strictEqual(await refusal(url, { origin }), 403, origin);
        }
        assert.ok(log.some((m) => /origin-refused|evil\.example/.test(m)), log.join('\n'));
    });

    it('unusable values in a hand-edited flow are ignored with a warning, and the defaults apply', async function () {
        await helper.load(wsNode, flow({ limMsg: 'lots', limConns: '-1', limPolicy: 'sometimes', limIdle: '0' }));
        const warned = helper.log().args.map((a) => String(a[0].msg));
        const l = helper.getNode('listener').limits;
        assert.deepStrictEqual([l.maxMessageBytes, l.maxConnections, l.queuePolicy, l.idleTimeoutMs], [100 << 20, 0, 'close', 0]);
        assert.strictEqual(warned.filter((m) => /bad-limit|Ignored/.test(m)).length, 4, warned.join('\n'));
        assert.strictEqual(await refusal(wsUrl(helper, '/ws/lim')), 'open');
    });
});
