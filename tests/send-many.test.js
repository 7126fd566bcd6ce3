'use strict';
// The addon's sendMany and the payloads it takes (src/js/frame.rs): strings as
// text frames, Buffers and other Uint8Arrays as binary, anything else refused
// with a clear error; on the wire through a Node-RED echo flow.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const addon = require('../index.js');
const { connect, messages, wsUrl } = require('./support');

helper.init(require('./node-red-under-test').runtime);

/** A listener at `path` whose `websocket in` feeds a helper node; the payloads it gets. */
async function receivedAt(path) {
    await helper.load(wsNode, [
        { id: 'l', type: 'websocket-listener', path, wholemsg: 'false' },
        { id: 'in', type: 'websocket in', server: 'l', client: '', wires: [['sink']] },
        { id: 'sink', type: 'helper' }
    ]);
    const got = [];
    helper.getNode('sink').on('input', (msg) => got.push(msg.payload));
    return got;
}

describe('sendMany payloads', function () {
    it('takes strings, Buffers and Uint8Arrays, and refuses anything else by name', async function () {
        const listener = new addon.Listener({}, () => {});
        try {
            assert.strictEqual(listener.sendMany(Uint32Array.of(0, 0, 0, 0), ['', 'é', Buffer.alloc(0), new Uint8Array(3)]), 4);
            const refused = [42, { payload: 'x' }, new Uint16Array(2), new Int8Array(2), new Uint8ClampedArray(2),
                new DataView(new ArrayBuffer(2)), new ArrayBuffer(2), null, [Buffer.alloc(1)]];
            for (const bad of refused) {
                assert.throws(() => listener.sendMany(Uint32Array.of(0), [bad]),
                    (err) => /a payload must be a string or a Buffer/.test(err.message) && addon.withCode(err).code === 'ERR_WSRS_INVALID_ARGUMENT',
                    Object.prototype.toString.call(bad));
            }
        } finally {
            await listener.close(1001);
        }
    });

    it('a client takes the same payloads, refuses the same others, and sends what it takes', async function () {
        await helper.startServer();
        try {
            const got = await receivedAt('/ws/from-client');
            const client = new addon.Client({ url: wsUrl(helper, '/ws/from-client') }, () => {});
            try {
                const payloads = ['', 'é\uD800', Buffer.from([1, 2]), new Uint8Array([3])];
                // 0: the live connection; nothing is taken until it is up.
                const until = Date.now() + 5000;
                while (client.sendMany(Uint32Array.of(0, 0, 0, 0), payloads) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
                for (const bad of [42, new Int8Array(1), new ArrayBuffer(1)]) {
                    assert.throws(() => client.sendMany(Uint32Array.of(0), [bad]), /a payload must be a string or a Buffer/);
                }
                while (got.length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
                assert.deepStrictEqual(got.slice(0, 4), ['', 'é\uFFFD', Buffer.from([1, 2]), Buffer.from([3])]);
            } finally {
                await client.close(1001);
            }
        } finally {
            await helper.unload();
            await helper.stopServer();
        }
    });

    it('refuses targets or ops that are not a Uint32Array, by name', async function () {
        const listener = new addon.Listener({}, () => {});
        try {
            for (const bad of [[0], new Int32Array(1), new Float64Array(1), Buffer.alloc(4), null]) {
                const invalid = (err) => /expected a Uint32Array/.test(err.message) && addon.withCode(err).code === 'ERR_WSRS_INVALID_ARGUMENT';
                assert.throws(() => listener.sendMany(bad, ['x']), invalid, Object.prototype.toString.call(bad));
                assert.throws(() => listener.run(bad, ['x'], []), invalid, Object.prototype.toString.call(bad));
            }
            assert.strictEqual(listener.sendMany(new Uint32Array(0), []), 0);
        } finally {
            await listener.close(1001);
        }
    });

    describe('on the wire', function () {
        before(() => helper.startServer());
        after(() => helper.stopServer());
        afterEach(() => helper.unload());

        it('sends text of every length class, multi-byte included, and binary, byte for byte', async function () {
            await helper.load(wsNode, [
                { id: 'l', type: 'websocket-listener', path: '/ws/many', wholemsg: 'false' },
                { id: 'out', type: 'websocket out', server: 'l', client: '' }
            ]);
            const ws = await connect(wsUrl(helper, '/ws/many'));
            try {
                const texts = [0, 1, 62, 125, 126, 65535, 65536, 70001].map((n) => 'é'.repeat(n >> 1) + 'x'.repeat(n & 1));
                const big = Buffer.alloc(70000);
                for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
                // A Buffer that is a view into a larger one, as well as whole ones.
                const binaries = [Buffer.alloc(0), Buffer.from([0, 1, 2, 255]), big.subarray(3, 129), big];
                const got = messages(ws, texts.length + 2 + binaries.length);
                const out = helper.getNode('out');
                for (const t of texts) out.receive({ payload: t });
                out.receive({ payload: 'a\uD800b' }); // a lone surrogate: sent as U+FFFD, as before
                out.receive({ payload: '' });
                for (const b of binaries) out.receive({ payload: b });
                const m = await got;
                assert.deepStrictEqual(m.slice(0, texts.length).map((x) => [x.isBinary, x.data.toString()]), texts.map((t) => [false, t]));
                assert.deepStrictEqual(m[texts.length].data, Buffer.from('a\uFFFDb'));
                assert.strictEqual(m[texts.length + 1].data.length, 0);
                binaries.forEach((b, i) => {
                    const x = m[texts.length + 2 + i];
                    assert.ok(x.isBinary && b.equals(x.data), 'binary ' + i + ' (' + b.length + ' bytes)');
                });
            } finally {
                ws.terminate();
            }
        });

        // A payload's getter runs JS while the call converts its arguments; the
        // typed arrays given before it count as they were when passed.
        const changedBy = (array, index, value, payload) => Object.defineProperty([], 0, {
            enumerable: true,
            get() { array[index] = value; return payload; }
        });

        it("run's ops are taken as passed, whatever a payload's getter does to them", async function () {
            await helper.load(wsNode, [{ id: 'l', type: 'websocket-listener', path: '/ws/ops', wholemsg: 'false' }]);
            const ws = await connect(wsUrl(helper, '/ws/ops'));
            try {
                const native = helper.getNode('l').native;
                const got = messages(ws, 1);
                const ops = Uint32Array.of(1, 0, 0); // SEND to every session, payload 0
                // Read after the getter, op 99 would refuse the whole program.
                assert.strictEqual(native.run(ops, changedBy(ops, 0, 99, 'as passed'), []), 3);
                assert.deepStrictEqual((await got).map((x) => x.data.toString()), ['as passed']);
            } finally {
                ws.terminate();
            }
        });

        it("a client's targets are taken as passed, whatever a payload's getter does to them", async function () {
            const got = await receivedAt('/ws/targets');
            const client = new addon.Client({ url: wsUrl(helper, '/ws/targets') }, () => {});
            try {
                const until = Date.now() + 5000;
                while (client.sendMany(Uint32Array.of(0), ['up']) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
                // Read after the getter, target 12345 (not the live connection) would send nothing.
                const targets = Uint32Array.of(0);
                assert.strictEqual(client.sendMany(targets, changedBy(targets, 0, 12345, 'as passed')), 1);
                while (got.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
                assert.deepStrictEqual(got, ['up', 'as passed']);
            } finally {
                await client.close(1001);
            }
        });

        it('sends nothing of a call with a payload it refuses; the next call is what arrives first', async function () {
            await helper.load(wsNode, [{ id: 'l', type: 'websocket-listener', path: '/ws/refused', wholemsg: 'false' }]);
            const ws = await connect(wsUrl(helper, '/ws/refused'));
            try {
                const native = helper.getNode('l').native;
                const got = messages(ws, 2);
                assert.throws(() => native.sendMany(Uint32Array.of(0, 0, 0), ['a', 42, 'b']), /a payload must be a string or a Buffer/);
                // The refused payload in the middle of its run, then last in one.
                assert.throws(() => native.sendMany(Uint32Array.of(0, 0), [Buffer.from('c'), null]), /a payload must be a string or a Buffer/);
                assert.strictEqual(native.sendMany(Uint32Array.of(0, 0), ['after', Buffer.from('and this')]), 2);
                const m = await got;
                assert.deepStrictEqual(m.map((x) => [x.isBinary, x.data.toString()]), [[false, 'after'], [true, 'and this']]);
            } finally {
                ws.terminate();
            }
        });
    });
});
