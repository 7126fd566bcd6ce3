'use strict';
//! websocket-listener with websocket in/out, in a real Node-RED (test helper),
//! talking to real `ws` clients over loopback.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, connect, nextMessage, messages, closed, received, wsUrl, until } = require('./support');

helper.init(require('./node-red-under-test').runtime);

function listenerFlow(extra = {}, path = '/ws/echo') {
    return [
        { id: 'listener', type: 'websocket-listener', path, wholemsg: 'false', ...extra },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

describe('websocket-listener', function () {
    const clients = [];
    async function client(path = '/ws/echo', protocols, options) {
        const ws = await connect(wsUrl(helper, path), protocols, options);
        clients.push(ws);
        return ws;
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        await helper.unload();
    });

    it('delivers text as a string payload with _session', async function () {
        await helper.load(wsNode, listenerFlow());
        const ws = await client();
        const got = received(helper.getNode('sink'));
        ws.send('hello');
        const msg = await got;
        assert.strictEqual(msg.payload, 'hello');
        assert.strictEqual(msg._session.type, 'websocket');
        assert.match(msg._session.id, /^[0-9a-f]+$/);
    });

    it('delivers binary as a Buffer', async function () {
        await helper.load(wsNode, listenerFlow());
        const ws = await client();
        const got = received(helper.getNode('sink'));
        ws.send(Buffer.from([0, 1, 2, 255]));
        const msg = await got;
        assert.ok(Buffer.isBuffer(msg.payload));
        assert.deepStrictEqual([...msg.payload], [0, 1, 2, 255]);
    });

    it('copies a small binary payload out of its batch; a large one may stay a view', async function () {
        await helper.load(wsNode, listenerFlow());
        const got = received(helper.getNode('sink'), 2);
        // A batch as the addon makes it (src/inbox.rs): 10 bytes, then 200 KiB.
        const small = Buffer.from('0123456789');
        const large = Buffer.alloc(200 * 1024, 7);
        const header = Buffer.alloc(4 + 2 * 16);
        header.writeUInt32LE(2, 0);
        [[3, small.length], [3, large.length]].forEach(([kind, len], i) => {
            header.writeUInt32LE(kind, 4 + i * 16);
            header.writeUInt32LE(42, 8 + i * 16);
            header.writeUInt32LE(len, 12 + i * 16);
        });
        const batch = Buffer.concat([header, small, large]);
        helper.getNode('listener').onBatch(batch);
        const [a, b] = await got;
        assert.ok(a.payload.equals(small) && b.payload.equals(large));
        assert.ok(a.payload.buffer.byteLength <= 8192, 'a 10-byte payload keeps ' + a.payload.buffer.byteLength + ' bytes alive');
        batch.fill(0);
        assert.ok(a.payload.equals(small), 'the small payload shares the batch');
    });

    it('replies to the sending session only', async function () {
        const flow = listenerFlow();
        flow[1].wires = [['out']];
        await helper.load(wsNode, flow);
        const a = await client();
        const b = await client();
        const bGot = [];
        b.on('message', (data) => bGot.push(data.toString()));
        const echo = nextMessage(a);
        a.send('ping');
        const m = await echo;
        assert.strictEqual(m.data.toString(), 'ping');
        assert.strictEqual(m.isBinary, false);
        // b's own echo comes after anything misrouted to it, on the same connection.
        const bEcho = nextMessage(b);
        b.send('b');
        await bEcho;
        assert.deepStrictEqual(bGot, ['b']);
    });

    it('broadcasts a msg without _session to every client, binary as binary', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const b = await client();
        const ga = nextMessage(a);
        const gb = nextMessage(b);
        helper.getNode('out').receive({ payload: Buffer.from('xyz') });
        for (const m of [await ga, await gb]) {
            assert.strictEqual(m.isBinary, true);
            assert.strictEqual(m.data.toString(), 'xyz');
        }
    });

    it('sends objects as JSON text and empty strings as empty frames', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const got = messages(a, 3);
        const out = helper.getNode('out');
        out.receive({ payload: { a: 1 } });
        out.receive({ payload: '' });
        out.receive({ payload: 42 });
        const m = await got;
        assert.deepStrictEqual(m.map((x) => x.data.toString()), ['{"a":1}', '', '42']);
        assert.ok(m.every((x) => !x.isBinary));
    });

    it('whole-message mode parses objects in and sends the msg without _session out', async function () {
        const flow = listenerFlow({ wholemsg: 'true' });
        await helper.load(wsNode, flow);
        const a = await client();
        const got = received(helper.getNode('sink'), 4);
        a.send(JSON.stringify({ topic: 't', payload: 5 }));
        a.send('not json');
        a.send('[1,2]');
        a.send('null');
        const [m1, m2, m3, m4] = await got;
        assert.strictEqual(m1.topic, 't');
        assert.strictEqual(m1.payload, 5);
        assert.strictEqual(m2.payload, 'not json');
        assert.deepStrictEqual(m3.payload, [1, 2]);
        assert.strictEqual(m4.payload, null);
        const echo = nextMessage(a);
        helper.getNode('out').receive({ payload: 'p', topic: 'x', _session: m1._session });
        const sent = JSON.parse((await echo).data.toString());
        assert.strictEqual(sent.payload, 'p');
        assert.strictEqual(sent.topic, 'x');
        assert.ok(!('_session' in sent));
    });

    it('gives each inbound msg its own 16-hex-digit _msgid, keys in core\'s order; a whole msg keeps the peer\'s', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const got = received(helper.getNode('sink'), 50);
        for (let i = 0; i < 50; i++) a.send('m' + i);
        const msgs = await got;
        assert.deepStrictEqual(Object.keys(msgs[0]), ['payload', '_session', '_msgid']);
        assert.ok(msgs.every((m) => /^[0-9a-f]{16}$/.test(m._msgid)), msgs.map((m) => m._msgid).join(' '));
        assert.strictEqual(new Set(msgs.map((m) => m._msgid)).size, 50);

        await helper.unload();
        await helper.load(wsNode, listenerFlow({ wholemsg: 'true' }));
        const b = await client();
        const whole = received(helper.getNode('sink'), 4);
        b.send(JSON.stringify({ _msgid: 'theirs', payload: 1 }));
        b.send(JSON.stringify({ topic: 't' }));
        b.send(JSON.stringify({ _msgid: '', payload: 2 }));
        b.send(JSON.stringify({ _msgid: 0, payload: 3 }));
        const [own, made, empty, zero] = await whole;
        assert.strictEqual(own._msgid, 'theirs');
        assert.deepStrictEqual(Object.keys(made), ['topic', '_session', '_msgid']);
        // A falsy id is replaced, as Node.send replaces it.
        for (const m of [made, empty, zero]) assert.match(m._msgid, /^[0-9a-f]{16}$/);
    });

    it('ignores a _session that is gone or not ours', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const got = [];
        a.on('message', (data) => got.push(data.toString()));
        const out = helper.getNode('out');
        out.receive({ payload: 'x', _session: { type: 'websocket', id: 'ffffffff' } });
        out.receive({ payload: 'x', _session: { type: 'websocket', id: 'zz' } });
        out.receive({ payload: 'x', _session: { type: 'websocket', id: 12 } });
        // Sends go out in order: a broadcast after them arrives after anything they sent.
        const last = nextMessage(a);
        out.receive({ payload: 'broadcast' });
        await last;
        assert.deepStrictEqual(got, ['broadcast']);
    });

    it('answers a live session only under its exact _session.id, not the same number spelled otherwise', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const first = received(helper.getNode('sink'), 1);
        a.send('hello');
        const { id } = (await first)._session;
        const got = [];
        a.on('message', (data) => got.push(data.toString()));
        const out = helper.getNode('out');
        const n = parseInt(id, 16);
        for (const other of [id.toUpperCase() === id ? null : id.toUpperCase(), '0' + id, '0x' + id, ' ' + id, id + 'g', n, String(n)]) {
            if (other !== null && other !== id) out.receive({ payload: 'wrong', _session: { type: 'websocket', id: other } });
        }
        out.receive({ payload: 'right', _session: { type: 'websocket', id } });
        const last = nextMessage(a);
        out.receive({ payload: 'broadcast' });
        await last;
        assert.deepStrictEqual(got, ['right', 'broadcast']);
    });

    it('refuses close codes that must never be sent, with a coded error, and stays open', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const { withCode, Client } = require('../index.js');
        const natives = [helper.getNode('listener').native, new Client({ url: 'ws://127.0.0.1:9/' }, () => {})];
        for (const native of natives) {
            for (const code of [0, 999, 1004, 1005, 1006, 1015, 2000, 5000, 65536]) {
                await assert.rejects(native.close(code).catch((err) => { throw withCode(err); }),
                    { code: 'ERR_WSRS_INVALID_ARGUMENT', message: new RegExp('close code ' + code + ' ') });
            }
        }
        await natives[1].close(4000); // a valid one is taken
        const echo = nextMessage(a);
        helper.getNode('out').receive({ payload: 'still open' });
        assert.strictEqual((await echo).data.toString(), 'still open');
    });

    it('reports connect and disconnect in the status with _session', async function () {
        await helper.load(wsNode, listenerFlow());
        const inNode = helper.getNode('in');
        const statuses = [];
        const orig = inNode.status.bind(inNode);
        inNode.status = (s) => { statuses.push(s); orig(s); };
        const a = await client();
        await until(() => statuses.length >= 1, 'connect status');
        assert.strictEqual(statuses[0].event, 'connect');
        assert.strictEqual(statuses[0].fill, 'green');
        assert.strictEqual(statuses[0]._session.type, 'websocket');
        a.close();
        await until(() => statuses.length >= 2, 'disconnect status');
        assert.strictEqual(statuses[1].event, 'disconnect');
        assert.strictEqual(statuses[1].text, 'common.status.disconnected');
        assert.strictEqual(statuses[1]._session.id, statuses[0]._session.id);
    });

    it('carries a 1 MiB message intact both ways', async function () {
        const flow = listenerFlow();
        flow[1].wires = [['out']];
        await helper.load(wsNode, flow);
        const a = await client();
        const big = Buffer.alloc(1 << 20);
        for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
        const echo = nextMessage(a);
        a.send(big);
        const m = await echo;
        assert.ok(m.isBinary);
        assert.ok(big.equals(m.data));
    });

    it('keeps the order of replies and broadcasts sent in the same turn', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const got = received(helper.getNode('sink'));
        a.send('who am I');
        const session = (await got)._session;
        const all = messages(a, 6);
        const out = helper.getNode('out');
        out.receive({ payload: 'r1', _session: session });
        out.receive({ payload: 'b1' });
        out.receive({ payload: 'r2', _session: session });
        out.receive({ payload: 'b2' });
        out.receive({ payload: 'r3', _session: session });
        out.receive({ payload: 'b3' });
        assert.deepStrictEqual((await all).map((m) => m.data.toString()), ['r1', 'b1', 'r2', 'b2', 'r3', 'b3']);
    });

    it('delivers what was sent just before the flow stops, then closes with 1001', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const got = [];
        a.on('message', (d) => got.push(d.toString()));
        const c = closed(a);
        const out = helper.getNode('out');
        for (let i = 0; i < 50; i++) out.receive({ payload: 'last ' + i });
        await helper.unload();
        assert.strictEqual((await c).code, 1001);
        assert.deepStrictEqual(got, Array.from({ length: 50 }, (_, i) => 'last ' + i));
    });

    it('closes clients with 1001 when the flow is stopped', async function () {
        await helper.load(wsNode, listenerFlow());
        const a = await client();
        const c = closed(a);
        await helper.unload();
        assert.strictEqual((await c).code, 1001);
    });
});
