'use strict';
//! The byte bridge itself (nodes/lib/bridge.js over the addon's Listener.bridge),
//! on an HTTP and an HTTPS server of its own so that the listener's queue cap can
//! be small: a peer that stops reading is closed by that cap, with only a bounded
//! amount held in JS, and a socket whose peer never finishes closing is destroyed.

const assert = require('assert');
const http = require('http');
const https = require('https');
const net = require('net');
const tls = require('tls');
const crypto = require('crypto');
const addon = require('../index.js');
const bridge = require('../nodes/lib/bridge');
const upgrade = require('../nodes/lib/upgrade');
const { KIND, forEachEvent } = require('../nodes/lib/batch');
const { makeCerts } = require('./certs');
const { until, within, delay } = require('./support');

const QUEUE_CAP = 8 << 20;
const CHUNK = 256 * 1024;
/** The most JS may hold for one peer: Rust's output window (1 MiB) and one read
 *  (64 KiB) unreported, what the session left in its pipe when it ended (256 KiB),
 *  and the socket's write buffer (16 KiB on Node 20, 64 KiB on 22). */
const heldBound = (socket) => (1 << 20) + (64 << 10) + (256 << 10) + socket.writableHighWaterMark;

/** A listener (by default with a small queue cap) on a server of our own; every session is bridged. */
async function bridgedServer(certs, graceMs, options = { maxQueueBytes: QUEUE_CAP }) {
    const events = [];
    const take = (batch) => forEachEvent(batch, (kind, session, buf, start, end, extra) => {
        events.push({ kind, session, text: buf.toString('utf8', start, end), extra });
    });
    // The first batch comes as a call; the rest are pulled, one per event-loop turn.
    const listener = new addon.Listener(options, (batch) => {
        take(batch);
        setImmediate(function pull() {
            const more = listener.pull();
            if (more) {
                take(more);
                setImmediate(pull);
            }
        });
    });
    const server = certs ? https.createServer({ key: certs.key, cert: certs.cert }) : http.createServer();
    const sockets = [];
    server.on('upgrade', (req, socket, head) => {
        sockets.push(socket);
        bridge.carry(socket, (onOutput) => listener.bridge(head, upgrade.requestInfo(req), onOutput), graceMs);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        listener, events, sockets, port: server.address().port,
        async stop() {
            for (const s of sockets) s.destroy();
            await listener.close(1001).catch(() => {});
            await new Promise((resolve) => server.close(resolve));
        }
    };
}

/** A raw client (TLS if `ca`) that sends the upgrade request and resolves after the 101. */
async function rawClient(port, ca, options = {}) {
    const socket = ca
        ? tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options })
        : net.connect({ host: '127.0.0.1', port, ...options });
    socket.on('error', () => {});
    const key = crypto.randomBytes(16).toString('base64');
    await within(new Promise((resolve, reject) => {
        let got = Buffer.alloc(0);
        socket.once(ca ? 'secureConnect' : 'connect', () => socket.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
            'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\n\r\n'));
        const onData = (d) => {
            got = Buffer.concat([got, d]);
            if (got.includes('\r\n\r\n')) {
                socket.off('data', onData);
                if (/^HTTP\/1\.1 101 /.test(got.toString('latin1'))) resolve();
                else reject(new Error('no 101: ' + got.toString('latin1')));
            }
        };
        socket.on('data', onData);
        socket.once('error', reject);
    }), 5000, 'the 101');
    return socket;
}

/** A masked client close frame with code 1000. */
function closeFrame() {
    const mask = crypto.randomBytes(4);
    const body = Buffer.from([0x03, 0xe8]);
    return Buffer.concat([Buffer.from([0x88, 0x80 | body.length]), mask, body.map((b, i) => b ^ mask[i & 3])]);
}

describe('the byte bridge (nodes/lib/bridge.js)', function () {
    let certs;
    const servers = [];
    const clients = [];

    before(function () {
        this.timeout(30000);
        certs = makeCerts();
    });
    afterEach(async function () {
        for (const c of clients.splice(0)) c.destroy();
        for (const s of servers.splice(0)) await s.stop();
    });

    /** Offers 256 KiB per event-loop turn (at most 64 MiB), each turn keeping the JS
     *  thread busy for a while as a flow would, until the session is closed; returns
     *  the most the server socket held in JS. */
    async function flood(srv) {
        const socket = srv.sockets[0];
        const chunk = Buffer.alloc(CHUNK, 7);
        let held = 0;
        for (let sent = 0; sent < 64 << 20 && !srv.events.some((e) => e.kind === KIND.CLOSE); sent += CHUNK) {
            srv.listener.sendMany(Uint32Array.of(0), [chunk]);
            for (const end = Date.now() + 20; Date.now() < end;) { /* busy */ }
            await new Promise((resolve) => setImmediate(resolve));
            held = Math.max(held, socket.writableLength);
        }
        return held;
    }

    for (const [secure, slow] of [[false, false], [true, false], [false, true], [true, true]]) {
        const peer = slow ? 'reads slowly' : 'stops reading';
        it('closes a peer that ' + peer + ' with the queue cap (1008), holding a bounded amount in JS' + (secure ? ' (TLS)' : ''), async function () {
            this.timeout(30000);
            const srv = await bridgedServer(secure && certs, 200);
            servers.push(srv);
            const client = await rawClient(srv.port, secure && certs.ca);
            clients.push(client);
            client.pause();
            // A slow peer takes what has arrived every 10 ms (~64 KiB at a time).
            const reader = slow && setInterval(() => { while (client.read() !== null); }, 10);
            try {
                await until(() => srv.events.some((e) => e.kind === KIND.OPEN), 'the session to open');
                const closedSocket = new Promise((resolve) => srv.sockets[0].once('close', resolve));
                const held = await flood(srv);
                const closes = srv.events.filter((e) => e.kind === KIND.CLOSE);
                assert.strictEqual(closes.length, 1, 'the session was not closed; JS held up to ' + held + ' bytes');
                const error = srv.events.find((e) => e.kind === KIND.ERROR);
                assert.match(error ? error.text : 'no error event', /too slow/);
                assert.ok(held <= heldBound(srv.sockets[0]), 'JS held ' + held + ' bytes for a peer that ' + peer);
                // The socket is ended and, its peer not taking the rest, destroyed after the grace.
                await within(closedSocket, 5000, 'the server socket to be destroyed');
            } finally {
                clearInterval(reader);
            }
        });
    }

    it('takes the head as passed, whatever a getter of the request does to it', async function () {
        const texts = [];
        const take = (batch) => batch instanceof Buffer && forEachEvent(batch, (kind, session, buf, start, end) => {
            if (kind === KIND.TEXT) texts.push(buf.toString('utf8', start, end));
        });
        const listener = new addon.Listener({}, (batch) => {
            take(batch);
            for (let more = listener.pull(); more; more = listener.pull()) take(more);
        });
        try {
            // The start of the peer's traffic: a text frame, masked with key 0.
            const head = Buffer.from([0x81, 0x85, 0, 0, 0, 0, ...Buffer.from('hello')]);
            const request = { upgrade: 'websocket', key: crypto.randomBytes(16).toString('base64'), version: '13', protocol: '' };
            // Read after this getter, the head would be 0xff bytes: a reserved opcode.
            Object.defineProperty(request, 'method', { enumerable: true, get() { head.fill(0xff); return 'GET'; } });
            const outputs = [];
            const b = listener.bridge(head, request, (kind, bytes) => outputs.push(kind));
            assert.strictEqual(typeof b, 'object', 'bridged: ' + b);
            await until(() => texts.length > 0, "the head's message");
            assert.deepStrictEqual(texts, ['hello']);
            assert.ok(outputs.includes(1), 'the handshake answer was written');
        } finally {
            await listener.close(1001).catch(() => {});
        }
    });

    it('destroys a socket whose peer never finishes closing, after the grace', async function () {
        const GRACE_MS = 1000;
        const srv = await bridgedServer(null, GRACE_MS);
        servers.push(srv);
        const client = await rawClient(srv.port, null, { allowHalfOpen: true });
        clients.push(client);
        await until(() => srv.events.some((e) => e.kind === KIND.OPEN), 'the session to open');
        const socket = srv.sockets[0];
        const closedSocket = new Promise((resolve) => socket.once('close', resolve));
        const clientSawEnd = new Promise((resolve) => client.once('end', resolve));
        client.write(closeFrame()); // the session answers and ends; the client keeps its side open
        await within(clientSawEnd, 5000, 'the server to end its side');
        // Not at once: the socket stays for the grace (ended before the client saw it).
        await delay(GRACE_MS / 4);
        assert.strictEqual(socket.destroyed, false, 'destroyed before the grace was over');
        await within(closedSocket, 5000, 'the server socket to be destroyed');
        assert.strictEqual(srv.events.filter((e) => e.kind === KIND.CLOSE).length, 1);
    });

    it('carries 8 MiB sent at once to a peer that reads (default queue cap)', async function () {
        this.timeout(20000);
        const srv = await bridgedServer(certs, 200, {});
        servers.push(srv);
        const client = await rawClient(srv.port, certs.ca);
        clients.push(client);
        await until(() => srv.events.some((e) => e.kind === KIND.OPEN), 'the session to open');
        let received = 0;
        client.on('data', (d) => { received += d.length; });
        const chunk = Buffer.alloc(CHUNK, 1);
        for (let i = 0; i < 32; i++) srv.listener.sendMany(Uint32Array.of(0), [chunk]);
        // 32 frames of 256 KiB, each with a 10-byte header.
        await until(() => received >= 32 * (CHUNK + 10), '8 MiB to arrive (got ' + received + ')', 15000);
        assert.ok(!srv.events.some((e) => e.kind === KIND.CLOSE), 'closed a peer that reads');
    });
});
