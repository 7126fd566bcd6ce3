'use strict';
//! Edge cases of websocket-listener in a real Node-RED (test helper), with real
//! clients over loopback: `ws` clients and raw `net` sockets that build frames
//! themselves (for what `ws` refuses to send).

const assert = require('assert');
const crypto = require('crypto');
const net = require('net');
const path = require('path');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, connect, nextMessage, messages, closed, received, wsUrl, until } = require('./support');

helper.init(require('./node-red-under-test').runtime);

// Runtime events (the same object as RED.runtime.events): carries 'node-status'.
const runtimeEvents = require('@node-red/util').events;

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function listenerFlow(extra = {}, path = '/ws/edge') {
    return [
        { id: 'listener', type: 'websocket-listener', path, wholemsg: 'false', ...extra },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

/** in wired to out: every message is echoed to its sender. */
function echoFlow(extra = {}, path = '/ws/edge') {
    const flow = listenerFlow(extra, path);
    flow[1].wires = [['out', 'sink']];
    return flow;
}

/** Rejects if `promise` does not settle within `ms`. */
function within(promise, ms, what) {
    let timer;
    const timeout = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms waiting for ' + what)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function port() {
    return Number(new URL(helper.url()).port);
}

/** ERROR-level log entries of node `id` so far (needs helper.load to have run). */
function errorsOf(id) {
    const spy = helper.log();
    return spy.args.map((a) => a[0]).filter((o) => o && o.level === spy.ERROR && o.id === id);
}

// ---- raw client: HTTP upgrade and frames built by hand ---------------------------

function randomKey() {
    return crypto.randomBytes(16).toString('base64');
}

function acceptFor(key) {
    return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** An HTTP upgrade request; a header given as null is left out. */
function upgradeRequest(target, headers = {}) {
    const all = {
        Host: '127.0.0.1:' + port(),
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': randomKey(),
        'Sec-WebSocket-Version': '13',
        ...headers
    };
    let text = 'GET ' + target + ' HTTP/1.1\r\n';
    for (const [name, value] of Object.entries(all)) {
        if (value !== null && value !== undefined) text += name + ': ' + value + '\r\n';
    }
    return { text: text + '\r\n', key: all['Sec-WebSocket-Key'] };
}

/** A client frame (masked, as RFC 6455 requires of clients). */
function clientFrame(opcode, payload, fin = true) {
    const data = Buffer.from(payload);
    const len = data.length;
    let header;
    if (len < 126) {
        header = Buffer.alloc(2);
        header[1] = 0x80 | len;
    } else if (len < 65536) {
        header = Buffer.alloc(4);
        header[1] = 0x80 | 126;
        header.writeUInt16BE(len, 2);
    } else {
        header = Buffer.alloc(10);
        header[1] = 0x80 | 127;
        header.writeBigUInt64BE(BigInt(len), 2);
    }
    header[0] = (fin ? 0x80 : 0) | opcode;
    const mask = crypto.randomBytes(4);
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = data[i] ^ mask[i & 3];
    return Buffer.concat([header, mask, masked]);
}

const textFrame = (s) => clientFrame(0x1, Buffer.from(s, 'utf8'));

/** Splits an HTTP response head off `buf`: {status, headers, rest}, or null if incomplete. */
function parseResponse(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return { statusLine: lines[0], status, headers, rest: buf.subarray(end + 4) };
}

/** Server frames (unmasked) in `buf`: complete ones only. */
function parseFrames(buf) {
    const frames = [];
    let at = 0;
    while (buf.length - at >= 2) {
        const b0 = buf[at];
        const b1 = buf[at + 1];
        let len = b1 & 0x7f;
        let off = at + 2;
        if (len === 126) {
            if (buf.length - off < 2) break;
            len = buf.readUInt16BE(off);
            off += 2;
        } else if (len === 127) {
            if (buf.length - off < 8) break;
            len = Number(buf.readBigUInt64BE(off));
            off += 8;
        }
        if (b1 & 0x80) off += 4; // a server must not mask; tolerate it anyway
        if (buf.length - off < len) break;
        frames.push({ fin: !!(b0 & 0x80), opcode: b0 & 0x0f, payload: buf.subarray(off, off + len) });
        at = off + len;
    }
    return frames;
}

/** A raw TCP client that accumulates what it receives; every wait is bounded. */
class RawClient {
    constructor() {
        this.data = Buffer.alloc(0);
        this.ended = false;
        this.closed = false;
        this.error = null;
        this.waiters = new Set();
        this.socket = net.connect({ host: '127.0.0.1', port: port() });
        this.socket.setNoDelay(true);
        this.socket.on('data', (d) => { this.data = Buffer.concat([this.data, d]); this.check(); });
        this.socket.on('end', () => { this.ended = true; this.check(); });
        this.socket.on('close', () => { this.closed = true; this.check(); });
        this.socket.on('error', (e) => { this.error = e; this.check(); });
    }

    connected() {
        return within(new Promise((resolve, reject) => {
            this.socket.once('connect', resolve);
            this.socket.once('error', reject);
        }), 5000, 'TCP connect');
    }

    write(buf) {
        return new Promise((resolve, reject) => this.socket.write(buf, (err) => (err ? reject(err) : resolve())));
    }

    check() {
        for (const w of this.waiters) w();
    }

    /** Resolves with `probe(this)` once truthy; rejects after `ms`. */
    waitFor(probe, what, ms = 5000) {
        return new Promise((resolve, reject) => {
            const finish = (fn, v) => {
                clearTimeout(timer);
                this.waiters.delete(poll);
                fn(v);
            };
            const poll = () => {
                let v;
                try {
                    v = probe(this);
                } catch (err) {
                    return finish(reject, err);
                }
                if (v) finish(resolve, v);
            };
            const timer = setTimeout(() => finish(reject, new Error('timed out waiting for ' + what)), ms);
            this.waiters.add(poll);
            poll();
        });
    }

    /** The HTTP response head (and what followed it). */
    response(ms) {
        return this.waitFor((c) => {
            const r = parseResponse(c.data);
            if (r) return r;
            if (c.closed) throw new Error('connection closed before an HTTP response: ' + JSON.stringify(c.data.toString('latin1')));
            return null;
        }, 'HTTP response', ms);
    }

    /** The whole response including its body, once the server closed the connection. */
    responseAndClose(ms) {
        return this.waitFor((c) => (c.ended || c.closed) && parseResponse(c.data), 'response and close', ms);
    }

    /** Frames received after the 101 response head. */
    frames() {
        const r = parseResponse(this.data);
        return r ? parseFrames(r.rest) : [];
    }

    destroy() {
        this.socket.destroy();
    }
}

// ---- tests -----------------------------------------------------------------------

describe('websocket-listener edge cases', function () {
    const clients = [];
    const raws = [];
    const cleanups = [];

    async function client(path = '/ws/edge', protocols, options) {
        const ws = await within(connect(wsUrl(helper, path), protocols, options), 5000, 'ws connect to ' + path);
        clients.push(ws);
        return ws;
    }

    /** A ws client that is expected to fail: resolves with the rejection. */
    async function refused(path = '/ws/edge', protocols, options) {
        const url = wsUrl(helper, path);
        try {
            const ws = await within(connect(url, protocols, options), 5000, 'ws connect to ' + path);
            clients.push(ws);
        } catch (err) {
            return err;
        }
        throw new Error('connection to ' + path + ' was accepted');
    }

    async function raw() {
        const c = new RawClient();
        raws.push(c);
        await c.connected();
        return c;
    }

    /** Raw handshake; resolves with the client once the 101 is in. */
    async function rawOpen(path = '/ws/edge') {
        const c = await raw();
        const req = upgradeRequest(path);
        await c.write(req.text);
        const r = await c.response();
        assert.strictEqual(r.status, 101, r.statusLine);
        assert.strictEqual(r.headers['sec-websocket-accept'], acceptFor(req.key));
        return c;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        for (const c of raws.splice(0)) c.destroy();
        for (const fn of cleanups.splice(0).reverse()) await fn();
        await helper.unload();
    });

    describe('webSocketNodeVerifyClient', function () {
        let saved;
        beforeEach(function () {
            saved = helper.settings();
        });
        afterEach(function () {
            // The helper has no public way back to its original settings object;
            // settings() only ever replaces `_settings` with a merged copy.
            helper._settings = saved;
        });

        it('refuses with HTTP 401 when a sync verifier returns false', async function () {
            let calls = 0;
            helper.settings({ webSocketNodeVerifyClient: (info) => { calls++; return false; } });
            await helper.load(wsNode, listenerFlow());
            const err = await refused();
            assert.strictEqual(err.statusCode, 401);
            assert.strictEqual(calls, 1);
        });

        it('gives a sync verifier info with origin, secure and req', async function () {
            let seen = null;
            helper.settings({ webSocketNodeVerifyClient: (info) => { seen = info; return true; } });
            await helper.load(wsNode, listenerFlow());
            await client('/ws/edge?x=1', undefined, { origin: 'http://example.test' });
            assert.ok(seen, 'verifier was not called');
            assert.strictEqual(seen.origin, 'http://example.test');
            assert.strictEqual(seen.secure, false);
            assert.strictEqual(seen.req.url, '/ws/edge?x=1');
        });

        it('accepts after an async verifier calls back 50 ms later', async function () {
            let calls = 0;
            helper.settings({
                webSocketNodeVerifyClient: (info, cb) => { calls++; setTimeout(() => cb(true), 50); }
            });
            await helper.load(wsNode, echoFlow());
            const ws = await client();
            assert.strictEqual(calls, 1);
            const echo = nextMessage(ws);
            ws.send('after verify');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'after verify');
        });

        it('refuses with the async verifier\'s status code', async function () {
            helper.settings({
                webSocketNodeVerifyClient: (info, cb) => setTimeout(() => cb(false, 403, 'Forbidden'), 20)
            });
            await helper.load(wsNode, listenerFlow());
            const err = await refused();
            assert.strictEqual(err.statusCode, 403);
        });

        it('does not lose frames the client sent while an async verifier was pending', async function () {
            let verifying = false;
            let callback = null;
            helper.settings({
                // Holds the first request; a control request (x-control) is accepted at once.
                webSocketNodeVerifyClient: (info, cb) => {
                    if (info.req.headers['x-control']) return setImmediate(() => cb(true));
                    verifying = true;
                    callback = cb;
                }
            });
            await helper.load(wsNode, listenerFlow());
            const got = received(helper.getNode('sink'), 2);
            const c = await raw();
            const req = upgradeRequest('/ws/edge');
            // Separate writes: the request, then a frame at once, then another once
            // the verifier is known to be pending.
            await c.write(req.text);
            await c.write(textFrame('early one'));
            await until(() => verifying, 'the verifier to be called');
            await c.write(textFrame('early two'));
            // The control: a client the verifier accepts at once is answered meanwhile.
            const control = await raw();
            await control.write(upgradeRequest('/ws/edge', { 'X-Control': '1' }).text);
            assert.strictEqual((await control.response()).status, 101);
            assert.ok(!parseResponse(c.data), 'answered before the verifier decided');
            callback(true);
            const r = await c.response();
            assert.strictEqual(r.status, 101, r.statusLine);
            assert.strictEqual(r.headers['sec-websocket-accept'], acceptFor(req.key));
            const msgs = await within(got, 5000, 'the two early messages');
            assert.deepStrictEqual(msgs.map((m) => m.payload), ['early one', 'early two']);
        });

        it('hands a client whose async verification outlived a redeploy to the new listener', async function () {
            let callback = null;
            helper.settings({
                webSocketNodeVerifyClient: (info, cb) => {
                    if (info.req.headers['x-control']) return setImmediate(() => cb(true));
                    callback = cb;
                }
            });
            await helper.load(wsNode, echoFlow());
            const c = await raw();
            await c.write(upgradeRequest('/ws/edge').text);
            await until(() => callback, 'the verifier to be called');
            await helper.setFlows(echoFlow({ hb: '30' }), 'full');
            // The control: the new listener serves the path.
            const control = await raw();
            await control.write(upgradeRequest('/ws/edge', { 'X-Control': '1' }).text);
            assert.strictEqual((await control.response()).status, 101);
            const got = received(helper.getNode('sink'));
            callback(true);
            const r = await c.response();
            assert.strictEqual(r.status, 101, r.statusLine);
            await c.write(textFrame('after the redeploy'));
            assert.strictEqual((await within(got, 5000, 'the message')).payload, 'after the redeploy');
        });
    });

    describe('handshake bytes', function () {
        it('delivers a frame sent in the same TCP write as the upgrade request', async function () {
            await helper.load(wsNode, listenerFlow());
            const got = received(helper.getNode('sink'));
            const c = await raw();
            const req = upgradeRequest('/ws/edge');
            await c.write(Buffer.concat([Buffer.from(req.text), textFrame('in the head')]));
            const r = await c.response();
            assert.strictEqual(r.status, 101, r.statusLine);
            assert.strictEqual((await within(got, 5000, 'the message')).payload, 'in the head');
        });

        it('completes a frame that starts in the upgrade write and ends in a later one', async function () {
            await helper.load(wsNode, listenerFlow());
            const got = received(helper.getNode('sink'), 2);
            const c = await raw();
            const req = upgradeRequest('/ws/edge');
            const second = textFrame('split across writes');
            await c.write(Buffer.concat([Buffer.from(req.text), textFrame('whole'), second.subarray(0, 5)]));
            const r = await c.response();
            assert.strictEqual(r.status, 101, r.statusLine);
            await c.write(second.subarray(5));
            const msgs = await within(got, 5000, 'both messages');
            assert.deepStrictEqual(msgs.map((m) => m.payload), ['whole', 'split across writes']);
        });
    });

    describe('paths that are not ours', function () {
        /** A second upgrade handler on Node-RED's server, answering /other only. */
        function otherServer() {
            const server = helper._server;
            assert.ok(server, 'helper has no http server');
            const wss = new WebSocket.Server({ noServer: true });
            wss.on('headers', (headers) => headers.push('X-Other: yes'));
            wss.on('connection', (ws) => ws.on('message', (d) => ws.send('other:' + d)));
            const onUpgrade = (req, socket, head) => {
                if (new URL(req.url, 'http://x').pathname === '/other') {
                    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
                }
            };
            server.on('upgrade', onUpgrade);
            cleanups.push(() => {
                server.off('upgrade', onUpgrade);
                for (const ws of wss.clients) ws.terminate();
                return new Promise((resolve) => wss.close(() => resolve()));
            });
            return wss;
        }

        it('leaves an unknown path to another upgrade handler', async function () {
            await helper.load(wsNode, listenerFlow());
            const statuses = [];
            const onStatus = (e) => statuses.push(e);
            runtimeEvents.on('node-status', onStatus);
            cleanups.push(() => runtimeEvents.off('node-status', onStatus));
            let delivered = 0;
            helper.getNode('sink').on('input', () => delivered++);
            otherServer();
            const ws = new WebSocket(wsUrl(helper, '/other'));
            clients.push(ws);
            const headers = within(new Promise((resolve, reject) => {
                ws.once('upgrade', (res) => resolve(res.headers));
                ws.once('error', reject);
            }), 5000, 'the /other handshake');
            await within(new Promise((resolve) => ws.once('open', resolve)), 5000, '/other open');
            assert.strictEqual((await headers)['x-other'], 'yes');
            const echo = nextMessage(ws);
            ws.send('hi');
            assert.strictEqual((await within(echo, 5000, '/other echo')).data.toString(), 'other:hi');
            // The control: a connection and a message on our own path, made after those
            // on /other, are reported and delivered.
            const ours = await client('/ws/edge');
            const got = received(helper.getNode('sink'));
            ours.send('ours');
            assert.strictEqual((await within(got, 5000, 'our message')).payload, 'ours');
            assert.strictEqual(delivered, 1, 'the listener delivered a message from /other');
            const connects = statuses.filter((e) => e.id === 'in' && e.status.event === 'connect');
            assert.strictEqual(connects.length, 1, 'the listener reported a connection on /other');
        });

        it('still serves its own path next to another upgrade handler', async function () {
            await helper.load(wsNode, echoFlow());
            otherServer();
            const other = await client('/other');
            const ours = await client('/ws/edge');
            const e1 = nextMessage(ours);
            const e2 = nextMessage(other);
            ours.send('mine');
            other.send('theirs');
            assert.strictEqual((await within(e1, 5000, 'our echo')).data.toString(), 'mine');
            assert.strictEqual((await within(e2, 5000, 'their echo')).data.toString(), 'other:theirs');
        });
    });

    describe('bad handshakes', function () {
        it('answers Sec-WebSocket-Version 12 with 426 and Sec-WebSocket-Version: 13', async function () {
            await helper.load(wsNode, listenerFlow());
            const c = await raw();
            await c.write(upgradeRequest('/ws/edge', { 'Sec-WebSocket-Version': '12' }).text);
            const r = await c.responseAndClose();
            assert.strictEqual(r.status, 426, r.statusLine);
            assert.strictEqual(r.headers['sec-websocket-version'], '13');
        });

        it('answers a request without Sec-WebSocket-Key with 400', async function () {
            await helper.load(wsNode, listenerFlow());
            const c = await raw();
            await c.write(upgradeRequest('/ws/edge', { 'Sec-WebSocket-Key': null }).text);
            const r = await c.responseAndClose();
            assert.strictEqual(r.status, 400, r.statusLine);
        });

        it('keeps working after refused handshakes', async function () {
            await helper.load(wsNode, echoFlow());
            for (const headers of [{ 'Sec-WebSocket-Version': '12' }, { 'Sec-WebSocket-Key': null }]) {
                const c = await raw();
                await c.write(upgradeRequest('/ws/edge', headers).text);
                await c.responseAndClose();
            }
            const ws = await client();
            const echo = nextMessage(ws);
            ws.send('still here');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'still here');
        });
    });

    describe('subprotocol', function () {
        it('answers the first offered protocol that is configured', async function () {
            await helper.load(wsNode, listenerFlow({ subprotocol: 'a, b' }));
            const ws = await client('/ws/edge', ['x', 'b']);
            assert.strictEqual(ws.protocol, 'b');
        });

        it('answers the client\'s first protocol when none is configured (as core)', async function () {
            await helper.load(wsNode, listenerFlow());
            const ws = await client('/ws/edge', ['p1', 'p2']);
            assert.strictEqual(ws.protocol, 'p1');
        });
    });

    describe('heartbeat', function () {
        it('drops a client that does not answer pings', async function () {
            this.timeout(10000);
            await helper.load(wsNode, listenerFlow({ hb: '1' }));
            const ws = await client('/ws/edge', undefined, { autoPong: false });
            let pings = 0;
            ws.on('ping', () => pings++);
            const c = await within(closed(ws), 4500, 'the server to drop the silent client');
            assert.ok(pings >= 1, 'no ping was received');
            // Dropped without a close frame: a peer that answers nothing would not read one.
            assert.strictEqual(c.code, 1006, 'close code ' + c.code);
        });

        it('keeps a client that answers pings', async function () {
            this.timeout(10000);
            await helper.load(wsNode, echoFlow({ hb: '1' }));
            const ws = await client();
            let pings = 0;
            let closedEarly = null;
            ws.on('ping', () => pings++);
            ws.on('close', (code) => { closedEarly = code; });
            // Three pings span three intervals: a client taken for silent is dropped after two.
            await until(() => pings >= 3 || closedEarly !== null, 'three pings', 8000);
            assert.strictEqual(closedEarly, null, 'closed with ' + closedEarly);
            assert.strictEqual(ws.readyState, WebSocket.OPEN);
            const echo = nextMessage(ws);
            ws.send('alive');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'alive');
        });
    });

    describe('deploys', function () {
        it('logs an error for a second listener on the same path; the first keeps working', async function () {
            const flow = [
                { id: 'first', type: 'websocket-listener', path: '/ws/dup', wholemsg: 'false' },
                { id: 'second', type: 'websocket-listener', path: '/ws/dup', wholemsg: 'false' },
                { id: 'in', type: 'websocket in', server: 'first', client: '', wires: [['sink']] },
                { id: 'sink', type: 'helper' }
            ];
            await helper.load(wsNode, flow);
            const dup = errorsOf('second');
            assert.strictEqual(dup.length, 1, 'errors of second: ' + JSON.stringify(dup.map((e) => e.msg)));
            assert.match(String(dup[0].msg), /websocket\.errors\.duplicate-path|same path/);
            assert.deepStrictEqual(errorsOf('first'), []);
            const got = received(helper.getNode('sink'));
            const ws = await client('/ws/dup');
            ws.send('to the first');
            assert.strictEqual((await within(got, 5000, 'the message')).payload, 'to the first');
        });

        it('serves new clients after unload and reload on the same path; old ones got 1001', async function () {
            await helper.load(wsNode, echoFlow());
            const old = await client();
            const oldClosed = closed(old);
            await helper.unload();
            assert.strictEqual((await within(oldClosed, 5000, 'old client close')).code, 1001);
            await helper.load(wsNode, echoFlow());
            const ws = await client();
            const echo = nextMessage(ws);
            ws.send('new deploy');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'new deploy');
        });

        it('serves new clients after a full redeploy (setFlows) on the same path', async function () {
            await helper.load(wsNode, echoFlow());
            const old = await client();
            const oldClosed = closed(old);
            const flow = echoFlow({ hb: '30' });
            await helper.setFlows(flow, 'full');
            assert.strictEqual((await within(oldClosed, 5000, 'old client close')).code, 1001);
            const ws = await client();
            const echo = nextMessage(ws);
            ws.send('redeployed');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'redeployed');
        });
    });

    describe('payloads', function () {
        it('carries an 8 MiB message through an echo flow intact', async function () {
            await helper.load(wsNode, echoFlow());
            const ws = await client();
            const big = Buffer.alloc(8 << 20);
            for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 13)) & 0xff;
            const echo = nextMessage(ws);
            ws.send(big);
            const m = await within(echo, 15000, '8 MiB echo');
            assert.ok(m.isBinary);
            assert.strictEqual(m.data.length, big.length);
            assert.ok(big.equals(m.data), '8 MiB echo differs');
        });

        it('closes a connection that sends invalid UTF-8 text with 1007', async function () {
            await helper.load(wsNode, listenerFlow());
            let delivered = 0;
            helper.getNode('sink').on('input', () => delivered++);
            const c = await rawOpen();
            await c.write(clientFrame(0x1, Buffer.from([0xff, 0xfe])));
            const close = await c.waitFor((rc) => {
                const f = rc.frames().find((x) => x.opcode === 0x8);
                if (f) return f;
                if (rc.ended || rc.closed) {
                    throw new Error('connection closed without a close frame (client sees 1006); received ' +
                        rc.frames().length + ' frame(s)');
                }
                return null;
            }, 'a close frame');
            assert.ok(close.payload.length >= 2, 'close frame without a code');
            assert.strictEqual(close.payload.readUInt16BE(0), 1007);
            assert.strictEqual(delivered, 0);
        });

        it('keeps serving other clients after a client sent invalid UTF-8', async function () {
            await helper.load(wsNode, echoFlow());
            const c = await rawOpen();
            await c.write(clientFrame(0x1, Buffer.from([0xff, 0xfe])));
            await c.waitFor((rc) => rc.ended || rc.closed || rc.frames().some((f) => f.opcode === 0x8), 'the bad client to be closed');
            const ws = await client();
            const echo = nextMessage(ws);
            ws.send('fine');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'fine');
        });
    });

    describe('warnings about peers', function () {
        it('logs the first 10 of a flood of protocol errors, and the rest in one line', async function () {
            this.timeout(20000);
            await helper.load(wsNode, listenerFlow());
            const inNode = helper.getNode('in');
            const status = inNode.status.bind(inNode);
            let ended = 0;
            inNode.status = (s) => {
                if (s.event === 'disconnect') ended++;
                status(s);
            };
            const listener = helper.getNode('listener');
            const warnings = [];
            const warn = listener.warn.bind(listener);
            listener.warn = (m) => {
                warnings.push(String(m));
                warn(m);
            };
            const N = 25;
            const bad = await Promise.all(Array.from({ length: N }, () => rawOpen()));
            await Promise.all(bad.map((c) => c.write(clientFrame(0x1, Buffer.from([0xff, 0xfe])))));
            // Each session's error reaches the node before its end: once all have
            // ended, every warning that was going to be logged has been.
            await until(() => ended === N, 'all ' + N + ' sessions to end (' + ended + ' so far)', 15000);
            assert.strictEqual(warnings.length, 10, warnings.join('\n'));
            assert.ok(warnings.every((m) => /UTF-8/.test(m)), warnings.join('\n'));
            await helper.unload(); // the node reports what it held back as it closes
            assert.strictEqual(warnings.length, 11, warnings.join('\n'));
            assert.match(warnings[10], /more-errors|: 15$/);
        });
    });

    describe('load', function () {
        it('gives each of 100 concurrent clients exactly its own 10 replies, in order', async function () {
            this.timeout(30000);
            await helper.load(wsNode, echoFlow());
            const N = 100;
            const M = 10;
            const all = await within(Promise.all(Array.from({ length: N }, () => client())), 15000, N + ' connections');
            const replies = all.map((ws) => messages(ws, M));
            const extra = all.map(() => 0);
            all.forEach((ws, i) => {
                for (let j = 0; j < M; j++) ws.send('c' + i + '-m' + j);
            });
            const got = await within(Promise.all(replies), 15000, 'all replies');
            // Count anything beyond the M expected replies until each client's own last
            // echo: anything misrouted to it was sent before that, on the same connection.
            all.forEach((ws, i) => ws.on('message', (d) => { if (d.toString() !== 'end') extra[i]++; }));
            const ends = all.map((ws) => within(new Promise((resolve) => ws.on('message', (d) => d.toString() === 'end' && resolve())), 15000, 'the last echo'));
            all.forEach((ws) => ws.send('end'));
            await Promise.all(ends);
            got.forEach((list, i) => {
                const expected = Array.from({ length: M }, (_, j) => 'c' + i + '-m' + j);
                assert.deepStrictEqual(list.map((m) => m.data.toString()), expected, 'client ' + i);
            });
            assert.deepStrictEqual(extra.filter((n) => n > 0), [], 'some clients got more than their own replies');
        });
    });

    describe('addon load failure', function () {
        const ROOT = path.resolve(__dirname, '..');
        const MODULES = ['index.js', 'native/index.js', 'nodes/lib/addon.js', 'nodes/lib/endpoint.js', 'nodes/websocket.js']
            .map((f) => path.join(ROOT, f));
        let savedEnv;
        let brokenNode;
        const statuses = [];
        const onStatus = (e) => statuses.push(e);

        function forget() {
            for (const f of MODULES) delete require.cache[f];
        }

        before(function () {
            savedEnv = process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
            // native/index.js (napi-rs loader) requires this path instead of the built addon.
            process.env.NAPI_RS_NATIVE_LIBRARY_PATH = path.join(ROOT, 'native', 'does-not-exist.node');
            forget();
            brokenNode = require('../nodes/websocket.js');
        });

        after(function () {
            if (savedEnv === undefined) delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
            else process.env.NAPI_RS_NATIVE_LIBRARY_PATH = savedEnv;
            forget();
        });

        beforeEach(function () {
            statuses.length = 0;
            runtimeEvents.on('node-status', onStatus);
        });

        afterEach(function () {
            runtimeEvents.off('node-status', onStatus);
        });

        it('registers the node types and starts the flow', async function () {
            await helper.load(brokenNode, listenerFlow());
            for (const id of ['listener', 'in', 'out']) {
                assert.ok(helper.getNode(id), id + ' was not created');
            }
        });

        it('has the listener report that the addon could not be loaded', async function () {
            await helper.load(brokenNode, listenerFlow());
            const errors = errorsOf('listener').map((e) => String(e.msg));
            assert.strictEqual(errors.length, 1, JSON.stringify(errors));
            assert.match(errors[0], /native addon could not be loaded|websocket\.errors\.addon-load/);
        });

        it('has the in and out nodes report the error and show a red status', async function () {
            await helper.load(brokenNode, listenerFlow());
            for (const id of ['in', 'out']) {
                const errors = errorsOf(id).map((e) => String(e.msg));
                assert.strictEqual(errors.length, 1, id + ': ' + JSON.stringify(errors));
                assert.match(errors[0], /native addon could not be loaded|websocket\.errors\.addon-load/);
                const status = statuses.filter((e) => e.id === id).map((e) => e.status);
                assert.ok(status.length >= 1, id + ' showed no status');
                assert.strictEqual(status[status.length - 1].fill, 'red', id + ': ' + JSON.stringify(status));
            }
        });

        it('answers an upgrade on the listener path with 503 and a reason, not silence', async function () {
            await helper.load(brokenNode, listenerFlow());
            const c = await raw();
            await c.write(upgradeRequest('/ws/edge').text);
            const r = await c.responseAndClose();
            assert.strictEqual(r.status, 503, r.statusLine);
            assert.match(r.rest.toString(), /could not start \(ERR_WSRS_ADDON_LOAD\)/);
        });
    });

    describe('after the addon load failure', function () {
        it('loads the real addon again for later flows', async function () {
            const fresh = require('../nodes/websocket.js');
            await helper.load(fresh, echoFlow());
            assert.deepStrictEqual(errorsOf('listener'), []);
            const ws = await client();
            const echo = nextMessage(ws);
            ws.send('real addon');
            assert.strictEqual((await within(echo, 5000, 'echo')).data.toString(), 'real addon');
        });
    });
});
