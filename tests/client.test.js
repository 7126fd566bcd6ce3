'use strict';
//! websocket-client (and websocket in/out bound to it) in a real Node-RED (test
//! helper) against our own listener and against independent `ws` servers.

const assert = require('assert');
const https = require('https');
const net = require('net');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const tlsNode = require('@node-red/nodes/core/network/05-tls.js');
const { WebSocket, received, delay, until, statusLog } = require('./support');
const { makeCerts, encryptKey } = require('./certs');
const { seedFlow, clientFlow } = require('./flows');

helper.init(require('./node-red-under-test').runtime);

/** The seed example, with its debug node swapped for a helper sink to observe. */
function seedWithSink(port) {
    return seedFlow(port).map((n) => (n.type === 'debug' ? { id: n.id, z: n.z, type: 'helper' } : n));
}

/** An independent ws server on a free loopback port. */
function wsServer(options = {}) {
    return new Promise((resolve) => {
        const server = options.server;
        const { listenHost, ...wsOptions } = options;
        const wss = new WebSocket.Server(server ? { server, ...wsOptions } : { host: '127.0.0.1', port: options.port || 0, ...wsOptions }, () => {});
        const conns = [];
        const requests = [];
        wss.on('connection', (ws, req) => {
            conns.push(ws);
            requests.push(req);
        });
        const ready = () => resolve({ wss, conns, requests, port: (server || wss).address().port });
        if (server) server.listen(0, options.listenHost || '127.0.0.1', ready);
        else wss.once('listening', ready);
    });
}

function closeServer(s) {
    return new Promise((resolve) => {
        for (const c of s.wss.clients) c.terminate();
        s.wss.close(() => (s.wss.options.server ? s.wss.options.server.close(() => resolve()) : resolve()));
    });
}

describe('websocket-client', function () {
    const servers = [];
    async function server(options) {
        const s = await wsServer(options);
        servers.push(s);
        return s;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    beforeEach(() => helper.settings({ websocketClientReconnectDelay: 200, websocketClientReconnectMaxDelay: 1000 }));
    afterEach(async function () {
        await helper.unload();
        for (const s of servers.splice(0)) await closeServer(s);
        helper.settings({});
    });

    it('runs the core seed example: inject → client → listener echo → client in', async function () {
        const port = new URL(helper.url()).port;
        await helper.load([wsNode, require('@node-red/nodes/core/common/20-inject.js')], seedWithSink(port));
        const client = helper.getNode('4db78eb653d6d50d');
        await until(() => client.count === 1, 'client connected');
        const got = received(helper.getNode('d86baf93795dbb2d'));
        helper.getNode('dda81a976ccf2a2b').receive({});
        const msg = await got;
        assert.strictEqual(typeof msg.payload, 'string', 'a timestamp echoed back as text');
        assert.ok(Number(msg.payload) > 1.7e12, msg.payload);
        assert.strictEqual(msg._session.type, 'websocket');
    });

    it('sends and receives text and binary with an independent server, with headers and subprotocol', async function () {
        const s = await server({ handleProtocols: (protocols) => (protocols.has('two') ? 'two' : false) });
        const headers = [
            { keyType: 'Authorization', keyValue: '', valueType: 'other', valueValue: 'Bearer abc' },
            { keyType: 'other', keyValue: 'X-Custom', valueType: 'other', valueValue: 'yes' }
        ];
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/path?q=1', { subprotocol: 'one, two', headers }));
        await until(() => s.conns.length === 1, 'connection');
        const req = s.requests[0];
        assert.strictEqual(req.url, '/path?q=1');
        assert.strictEqual(req.headers.authorization, 'Bearer abc');
        assert.strictEqual(req.headers['x-custom'], 'yes');
        assert.strictEqual(req.headers['sec-websocket-protocol'], 'one, two');
        assert.strictEqual(s.conns[0].protocol, 'two');

        const got = received(helper.getNode('sink'), 2);
        s.conns[0].send('hello');
        s.conns[0].send(Buffer.from([1, 2, 3]));
        const [a, b] = await got;
        assert.strictEqual(a.payload, 'hello');
        assert.ok(Buffer.isBuffer(b.payload));

        const serverGot = new Promise((r) => s.conns[0].once('message', (d, isBinary) => r({ d, isBinary })));
        helper.getNode('out').receive({ payload: Buffer.from('bin') });
        const m = await serverGot;
        assert.strictEqual(m.isBinary, true);
        assert.strictEqual(m.d.toString(), 'bin');
    });

    it('takes its URL from an environment variable written ${NAME}, as core', async function () {
        const s = await server();
        process.env.WSRS_TEST_URL = 'ws://127.0.0.1:' + s.port + '/from-env';
        try {
            await helper.load(wsNode, clientFlow('${WSRS_TEST_URL}'));
            await until(() => s.conns.length === 1, 'connection');
            assert.strictEqual(s.requests[0].url, '/from-env');
        } finally {
            delete process.env.WSRS_TEST_URL;
        }
    });

    it('warns when a message is sent while not connected (as core), with the count, rate-limited', async function () {
        const s = await server();
        // The helper's RED._ gives the bare key: give the parameters too.
        const withParams = (RED) => {
            RED._ = (key, params) => (params ? key + ' ' + JSON.stringify(params) : key);
            return wsNode(RED);
        };
        await helper.load(withParams, clientFlow('ws://127.0.0.1:' + s.port + '/'));
        await until(() => s.conns.length === 1, 'connection');
        const client = helper.getNode('client');
        const out = helper.getNode('out');
        const warnings = [];
        const warn = client.warn.bind(client);
        client.warn = (text) => { warnings.push(String(text)); warn(text); };

        // Connected: sent, and no warning.
        const got = new Promise((r) => s.conns[0].once('message', (d) => r(d.toString())));
        out.receive({ payload: 'while connected' });
        assert.strictEqual(await got, 'while connected');
        assert.deepStrictEqual(warnings, []);

        servers.splice(servers.indexOf(s), 1);
        await closeServer(s);
        await until(() => client.count === 0, 'disconnect seen');
        for (const payload of ['a', 'b', 'c']) out.receive({ payload });
        await until(() => warnings.length === 1, 'a warning');
        assert.strictEqual(warnings[0], 'websocket.errors.not-connected {"count":3}');
        // The limiter logs the first ten of a minute and counts the rest. (Sends of
        // one event-loop turn make one warning, so send until ten are logged.)
        for (let i = 0; i < 200 && warnings.length < 10; i++) {
            out.receive({ payload: 'x' });
            await delay(2);
        }
        assert.strictEqual(warnings.length, 10, 'ten warnings');
        for (let i = 0; i < 5; i++) {
            out.receive({ payload: 'x' });
            await delay(2);
        }
        await delay(50);
        assert.strictEqual(warnings.length, 10, 'no more than ten a minute');
    });

    it('echoes back to the server through an in → out wire (core does not)', async function () {
        const s = await server();
        const flow = clientFlow('ws://127.0.0.1:' + s.port + '/');
        flow[1].wires = [['out']];
        await helper.load(wsNode, flow);
        await until(() => s.conns.length === 1, 'connection');
        const echo = new Promise((r) => s.conns[0].once('message', (d) => r(d.toString())));
        s.conns[0].send('round trip');
        assert.strictEqual(await echo, 'round trip');
    });

    it('whole-message mode sends the msg as JSON and parses JSON in', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { wholemsg: 'true' }));
        await until(() => s.conns.length === 1, 'connection');
        const serverGot = new Promise((r) => s.conns[0].once('message', (d) => r(JSON.parse(d.toString()))));
        helper.getNode('out').receive({ payload: 1, topic: 'x' });
        const sent = await serverGot;
        assert.strictEqual(sent.topic, 'x');
        assert.ok(!('_session' in sent));
        const got = received(helper.getNode('sink'));
        s.conns[0].send(JSON.stringify({ topic: 'in', payload: [1] }));
        const msg = await got;
        assert.strictEqual(msg.topic, 'in');
        assert.deepStrictEqual(msg.payload, [1]);
    });

    it('reconnects after the server goes away and comes back, and resumes', async function () {
        let s = await server();
        const port = s.port;
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + port + '/'));
        const statuses = statusLog(helper.getNode('in'));
        await until(() => s.conns.length === 1, 'first connection');
        await closeServer(servers.pop());
        await until(() => statuses.some((x) => x.event === 'disconnect'), 'disconnect status');
        s = await server({ port });
        await until(() => s.conns.length === 1, 'reconnection', 10000);
        const got = received(helper.getNode('sink'));
        s.conns[0].send('after restart');
        assert.strictEqual((await got).payload, 'after restart');
        assert.ok(statuses.some((x) => x.text === 'common.status.connecting'), 'connecting status shown');
    });

    it('drops a connection whose server stops answering pings, then reconnects', async function () {
        const s = await server({ autoPong: false });
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { hb: '0.3' }));
        const statuses = statusLog(helper.getNode('in'));
        await until(() => s.conns.length >= 1, 'connection');
        await until(() => statuses.some((x) => x.event === 'error'), 'heartbeat error', 5000);
        await until(() => s.conns.length >= 2, 'reconnection after heartbeat timeout', 5000);
    });

    it('keeps a connection whose server answers pings', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/', { hb: '0.2' }));
        await until(() => s.conns.length === 1, 'connection');
        let pings = 0;
        s.conns[0].on('ping', () => pings++);
        // Four pings span four intervals: a server taken for silent is dropped after two.
        await until(() => pings >= 4 || s.conns[0].readyState !== WebSocket.OPEN, 'four pings', 5000);
        assert.strictEqual(s.conns.length, 1, 'no reconnection');
        assert.strictEqual(s.conns[0].readyState, WebSocket.OPEN);
    });

    it('does not reconnect once the flow is stopped', async function () {
        const s = await server();
        await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/'));
        await until(() => s.conns.length === 1, 'connection');
        // The control: dropped by the server, the client comes back (after 200 ms).
        const dropped = Date.now();
        s.conns[0].terminate();
        await until(() => s.conns.length === 2, 'the client to reconnect after a drop');
        const reconnectMs = Date.now() - dropped;
        const closed = new Promise((r) => s.conns[1].once('close', (code) => r(code)));
        await helper.unload();
        assert.strictEqual(await closed, 1001);
        await delay(3 * reconnectMs);
        assert.strictEqual(s.conns.length, 2, 'reconnected after the flow was stopped');
    });

    it('reports a bad URL as a node error and keeps running', async function () {
        await helper.load(wsNode, clientFlow('http://127.0.0.1/nope'));
        const client = helper.getNode('client');
        assert.ok(client.failure, 'failure recorded');
        assert.match(client.failure.message, /ws:\/\/ or wss:\/\//);
        const logged = helper.log().args.filter((a) => a[0].level === helper.log().ERROR || a[0].level === 20);
        assert.ok(logged.length > 0, 'an error was logged');
        // The in and out nodes report that error, not a missing addon.
        for (const id of ['in', 'out']) {
            const errors = helper.log().args.map((a) => a[0]).filter((o) => o && o.level === helper.log().ERROR && o.id === id).map((o) => String(o.msg));
            assert.strictEqual(errors.length, 1, id + ': ' + JSON.stringify(errors));
            assert.match(errors[0], /ws:\/\/ or wss:\/\//);
            assert.doesNotMatch(errors[0], /addon/);
        }
    });

    it('retries a server that keeps failing with a growing wait, and shows the error', async function () {
        // An independent TCP listener that drops every connection: each attempt fails
        // its handshake. Reconnect delay 200 ms, cap 1000 ms (beforeEach): the waits
        // should be 200, 400, 800, 1000 ms (exactly so in the Rust test of the same
        // back-off on tokio's paused clock); asserted here only as growth.
        const attempts = [];
        const dropper = net.createServer((c) => {
            attempts.push(Date.now());
            c.destroy();
        });
        await new Promise((r) => dropper.listen(0, '127.0.0.1', r));
        try {
            await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + dropper.address().port + '/'));
            const statuses = statusLog(helper.getNode('in'));
            await until(() => attempts.length >= 5, 'five attempts (' + attempts.length + ' so far)', 10000);
            const gaps = attempts.slice(1, 5).map((t, i) => t - attempts[i]);
            assert.ok(gaps[1] > gaps[0] && gaps[2] > gaps[1], 'the wait did not grow: ' + gaps.join(', ') + ' ms');
            assert.ok(gaps[2] > 2 * gaps[0], 'the wait did not double twice: ' + gaps.join(', ') + ' ms');
            const errors = statuses.filter((x) => x.event === 'error');
            assert.ok(errors.length >= 2, 'errors shown: ' + errors.length);
            assert.strictEqual(errors[0].fill, 'red');
        } finally {
            await helper.unload();
            await new Promise((r) => dropper.close(r));
        }
    });

    it('reads blank reconnect settings as their defaults', function () {
        const { clientOptions } = require('../nodes/lib/client-options');
        const RED = { settings: { websocketClientReconnectDelay: '', websocketClientReconnectMaxDelay: ' ' }, nodes: { getNode: () => null } };
        const o = clientOptions(RED, {}, { path: 'ws://127.0.0.1:1/', headers: [] }, 0, []);
        assert.strictEqual(o.reconnectMs, 3000);
        assert.strictEqual(o.reconnectMaxMs, 60000);
        RED.settings = { websocketClientReconnectDelay: 0, websocketClientReconnectMaxDelay: '250' };
        const zero = clientOptions(RED, {}, { path: 'ws://127.0.0.1:1/', headers: [] }, 0, []);
        // 0 reaches the addon, which waits at least 100 ms (src/client.rs MIN_RECONNECT_DELAY).
        assert.deepStrictEqual([zero.reconnectMs, zero.reconnectMaxMs], [0, 250]);
    });

    it('tunnels through an HTTP CONNECT proxy named by ws_proxy', async function () {
        const s = await server();
        const seen = [];
        const proxy = net.createServer((c) => {
            c.once('data', (d) => {
                const line = d.toString().split('\r\n')[0];
                seen.push(line);
                const [host, port] = line.split(' ')[1].split(':');
                const up = net.connect(Number(port), host, () => {
                    c.write('HTTP/1.1 200 Connection established\r\n\r\n');
                    c.pipe(up).pipe(c);
                });
                up.on('error', () => c.destroy());
                c.on('error', () => up.destroy());
            });
        });
        await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
        process.env.ws_proxy = 'http://127.0.0.1:' + proxy.address().port;
        try {
            await helper.load(wsNode, clientFlow('ws://127.0.0.1:' + s.port + '/via-proxy'));
            await until(() => s.conns.length === 1, 'connection through the proxy');
            assert.deepStrictEqual(seen, ['CONNECT 127.0.0.1:' + s.port + ' HTTP/1.1']);
        } finally {
            delete process.env.ws_proxy;
            await helper.unload();
            await new Promise((r) => proxy.close(r));
        }
    });

    describe('wss://', function () {
        let certs;
        before(function () {
            this.timeout(30000);
            certs = makeCerts();
        });

        async function tlsServer() {
            return server({ server: https.createServer({ cert: certs.cert, key: certs.key }) });
        }

        function tlsFlow(port, tlsConfig) {
            const flow = clientFlow('wss://localhost:' + port + '/secure', { tls: tlsConfig ? 'tls' : '' });
            if (tlsConfig) flow.push({ id: 'tls', type: 'tls-config', name: '', cert: '', key: '', ca: '', certname: '', keyname: '', caname: '', servername: '', verifyservercert: true, ...tlsConfig });
            return flow;
        }

        it('connects with the CA given through a tls-config node', async function () {
            const s = await tlsServer();
            const flow = tlsFlow(s.port, {});
            await helper.load([wsNode, tlsNode], flow, { tls: { cadata: certs.ca } });
            await until(() => s.conns.length === 1, 'wss connection');
            const got = received(helper.getNode('sink'));
            s.conns[0].send('secure hello');
            assert.strictEqual((await got).payload, 'secure hello');
        });

        it('fails verification without the CA, and connects with verification off', async function () {
            const s = await tlsServer();
            await helper.load([wsNode, tlsNode], tlsFlow(s.port, null));
            const statuses = statusLog(helper.getNode('in'));
            await until(() => statuses.some((x) => x.event === 'error'), 'verification error');
            assert.strictEqual(s.conns.length, 0);
            const warned = helper.log().args.map((a) => String(a[0].msg)).join('\n');
            assert.match(warned, /certificate|UnknownIssuer/i);
            await helper.unload();
            await helper.load([wsNode, tlsNode], tlsFlow(s.port, { verifyservercert: false }));
            await until(() => s.conns.length === 1, 'unverified wss connection');
        });

        it('presents a client certificate whose key has a passphrase', async function () {
            const s = await server({
                server: https.createServer({ cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true, rejectUnauthorized: true })
            });
            await helper.load([wsNode, tlsNode], tlsFlow(s.port, {}), {
                tls: { cadata: certs.ca, certdata: certs.cert, keydata: encryptKey(certs.key, 'open sesame'), passphrase: 'open sesame' }
            });
            await until(() => s.conns.length === 1, 'mutual TLS connection');
            assert.ok(s.requests[0].socket.getPeerCertificate().subject, 'the server saw our certificate');
        });

        it('verifies against the tls-config server name instead of the URL host', async function () {
            // The certificate names localhost and 127.0.0.1, not 127.0.0.2.
            const srv = https.createServer({ cert: certs.cert, key: certs.key });
            const s = await server({ server: srv, listenHost: '127.0.0.2' });
            const url = (port) => 'wss://127.0.0.2:' + port + '/secure';
            const flow = tlsFlow(s.port, {});
            flow[0].path = url(s.port);
            await helper.load([wsNode, tlsNode], flow, { tls: { cadata: certs.ca } });
            const statuses = statusLog(helper.getNode('in'));
            await until(() => statuses.some((x) => x.event === 'error'), 'name mismatch refused');
            assert.strictEqual(s.conns.length, 0);
            await helper.unload();
            const named = tlsFlow(s.port, { servername: 'localhost' });
            named[0].path = url(s.port);
            await helper.load([wsNode, tlsNode], named, { tls: { cadata: certs.ca } });
            await until(() => s.conns.length === 1, 'connection verified as localhost');
        });

        it('reports unusable TLS material as a node error', async function () {
            await helper.load([wsNode, tlsNode], tlsFlow(443, {}), { tls: { cadata: 'not a certificate' } });
            const client = helper.getNode('client');
            assert.ok(client.failure, 'failure recorded');
            assert.match(client.failure.message, /CA certificate/);
        });
    });
});
