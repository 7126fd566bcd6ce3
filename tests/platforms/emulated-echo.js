'use strict';
// Run by the Node of the platform under test (an ARM Node under qemu-user, the
// official Windows node.exe under Wine, or the host's):
// `node emulated-echo.js <napi platform> [<node version>]`.
// Loads the addon through the package's own loader, proves which binary that
// loader picked, then does one WebSocket echo through the addon on loopback:
// a Listener fed by an http server's `upgrade` through the listener node's own
// code (nodes/websocket.js: acceptUpgrade -> handOver, which hands the
// connection over by descriptor where there is one, and otherwise -- Windows --
// carries its bytes through bridge()), and a Client from the same addon.
// Prints one line "ok: ..." (exit 0) or "error: ..." (exit 1).

const assert = require('assert');
const http = require('http');
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const upgrade = require(path.join(ROOT, 'nodes', 'lib', 'upgrade.js'));
const { KIND, forEachEvent } = require(path.join(ROOT, 'nodes', 'lib', 'batch.js'));

// Emulated V8 is slow, but no single step should come near this.
const STEP_MS = 30000;
// The addon's session close timeout: a client close that takes this long was
// not answered by the server, i.e. not clean.
const CLOSE_TIMEOUT_MS = 2000;
// The napi platform name -> the process.platform and process.arch its Node must report.
const RUNS_ON = {
    'linux-arm64-gnu': ['linux', 'arm64'],
    'linux-arm-gnueabihf': ['linux', 'arm'],
    'linux-x64-gnu': ['linux', 'x64'],
    'win32-x64-msvc': ['win32', 'x64']
};

const [platform, nodeVersion] = process.argv.slice(2);

function withTimeout(promise, what) {
    let timer;
    const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after ' + STEP_MS + ' ms: ' + what)), STEP_MS);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Collects one endpoint's event batches; `next()` waits for the next event. The
 * addon calls `onBatch` with the first batch; the rest are pulled from the
 * endpoint given to `pullFrom`, one per event-loop turn (as the nodes do).
 */
function events(name) {
    const queue = [];
    let wake = null;
    let source = null;
    function take(buf) {
        forEachEvent(buf, (kind, session, b, start, end, extra) => {
            // Copied: a later batch must not be able to alias what we compare.
            queue.push({ kind, session, data: Buffer.from(b.subarray(start, end)), extra });
        });
        if (wake) wake();
    }
    function onBatch(buf) {
        take(buf);
        setImmediate(function pull() {
            const more = source && source.pull();
            if (more) {
                take(more);
                setImmediate(pull);
            }
        });
    }
    async function next(kind, what) {
        while (queue.length === 0) {
            await withTimeout(new Promise((resolve) => { wake = resolve; }), name + ' waiting for ' + what);
            wake = null;
        }
        const ev = queue.shift();
        if (ev.kind === KIND.CONNECTING) return next(kind, what);
        if (ev.kind === KIND.ERROR) throw new Error(name + ' reported an error while waiting for ' + what + ': ' + ev.data.toString());
        assert.strictEqual(ev.kind, kind, name + ' expected event kind ' + kind + ' (' + what + '), got ' + ev.kind);
        return ev;
    }
    /** Anything left besides "connecting" is unexpected (an error, a second session). */
    function leftovers() {
        return queue.filter((ev) => ev.kind !== KIND.CONNECTING);
    }
    return { onBatch, pullFrom: (endpoint) => { source = endpoint; }, next, leftovers };
}

function sameBytes(actual, expected, what) {
    if (!actual.equals(expected)) {
        let i = 0;
        while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
        throw new Error(what + ' differs: ' + actual.length + ' B received, ' + expected.length + ' B expected, first difference at byte ' + i);
    }
}

/** Every byte value, then a fixed pseudo-random tail: long enough for a 64-bit frame length. */
function binaryPayload(size) {
    const b = Buffer.alloc(size);
    let x = 0x2545f491;
    for (let i = 0; i < size; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        b[i] = i < 256 ? i : x >>> 24;
    }
    return b;
}

/** Checks that the package's loader picked exactly this platform's binary, and returns the addon. */
function loadAddon() {
    assert.ok(RUNS_ON[platform], 'unknown platform ' + platform);
    assert.deepStrictEqual([process.platform, process.arch], RUNS_ON[platform], 'this Node runs as ' + process.platform + '-' + process.arch);
    if (nodeVersion) assert.strictEqual(process.version, 'v' + nodeVersion, 'unexpected Node version');
    const addon = require(path.join(ROOT, 'index.js'));
    const want = path.join(ROOT, 'native', 'websocket-rs.' + platform + '.node');
    // What require() loaded: the loader tries candidates in turn, so anything
    // else here means it picked, or first tried and loaded, another file.
    const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
    assert.deepStrictEqual(loaded, [want], 'the loader loaded ' + loaded.join(', '));
    // And what the dynamic linker mapped, in case require's cache was bypassed.
    const mapped = process.report.getReport().sharedObjects.filter((f) => /websocket-rs\..*\.node$/.test(f));
    assert.deepStrictEqual(mapped, [want], 'mapped addon files: ' + mapped.join(', '));
    return { addon, file: path.relative(ROOT, want).split(path.sep).join('/') };
}

/**
 * A websocket-listener node as nodes/websocket.js defines it, on `native` (the
 * addon Listener): its own acceptUpgrade/handOver/bridge/startSession run, so
 * this test takes whichever path the node takes and duplicates none of it.
 * Node-RED itself is not loaded; the stand-in RED offers what that file uses
 * while loading and on this path (no verifyClient setting, as by default).
 */
function listenerNode(native, warn) {
    const types = {};
    const RED = {
        settings: {},
        nodes: { registerType: (type, ctor) => { types[type] = ctor; } },
        _: (key) => key
    };
    require(path.join(ROOT, 'nodes', 'websocket.js'))(RED);
    const node = Object.create(types['websocket-listener'].prototype);
    const { limitsOf } = require(path.join(ROOT, 'nodes', 'lib', 'limits.js'));
    // As the constructor leaves a listener with no limits configured.
    // No websocket in asks for connection events (endpoint.init's empty set).
    Object.assign(node, { native, closing: false, failure: null, warn, limits: limitsOf({}, true, warn), peerWarnings: { warn }, eventNodes: new Set() });
    return node;
}

async function echo({ Listener, Client }) {
    const text = 'échø ✓ ARM 🚀 ' + 'ünïcödé '.repeat(40);
    const binary = binaryPayload(100000);
    const L = events('listener');
    const C = events('client');
    const listener = new Listener({}, L.onBatch);
    L.pullFrom(listener);
    // What the node's code did with the connection, seen through the addon calls it made.
    const seen = { route: null, adopted: null, bridge: null, refused: null, socket: null, fd: null };
    const native = {
        adopt(...args) {
            seen.route = 'handover';
            const result = listener.adopt(...args);
            if (typeof result === 'string') seen.refused = result.split('\r\n')[0];
            else seen.adopted = result;
            return result;
        },
        bridge(...args) {
            seen.route = 'bridge';
            const result = listener.bridge(...args);
            if (typeof result === 'string') seen.refused = result.split('\r\n')[0];
            else seen.bridge = result;
            return result;
        }
    };

    const server = http.createServer((req, res) => res.writeHead(404).end());
    // Only to look at the socket afterwards; it runs before the node's handler.
    server.on('upgrade', (req, socket) => {
        seen.socket = socket;
        seen.fd = upgrade.descriptorOf(socket);
    });
    upgrade.attach(server);
    upgrade.routes.set('/echo', listenerNode(native, (text) => { seen.refused = 'node warned: ' + text; }));
    await withTimeout(new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    }), 'http server listening');
    const url = 'ws://127.0.0.1:' + server.address().port + '/echo';
    // No reconnect during the test: a second session would be a failure.
    const client = new Client({ url, reconnectMs: 600000, connectTimeoutMs: STEP_MS }, C.onBatch);
    C.pullFrom(client);
    try {
        const serverOpen = await L.next(KIND.OPEN, 'the client to connect');
        assert.strictEqual(seen.refused, null, 'handshake refused: ' + seen.refused);
        // Where the node can hand a descriptor over it must, and only there.
        // (A plain TCP socket has one everywhere but on Windows.)
        assert.strictEqual(seen.fd >= 0, process.platform !== 'win32', 'descriptorOf the upgraded socket is ' + seen.fd);
        assert.strictEqual(seen.route, seen.fd >= 0 ? 'handover' : 'bridge', 'the listener node took the ' + seen.route + ' path');
        if (seen.route === 'handover') {
            assert.strictEqual(serverOpen.session, seen.adopted, 'the open session is not the adopted one');
            assert.ok(seen.socket.destroyed, 'the handed-over socket was not let go of in JS');
        } else {
            assert.ok(seen.bridge, 'bridge() returned no bridge');
        }
        await C.next(KIND.OPEN, 'its connection to open');
        const session = serverOpen.session;

        client.sendMany(Uint32Array.of(0, 0), [text, binary]);
        const inText = await L.next(KIND.TEXT, 'the text message');
        sameBytes(inText.data, Buffer.from(text, 'utf8'), 'text client -> server');
        const inBinary = await L.next(KIND.BINARY, 'the binary message');
        sameBytes(inBinary.data, binary, 'binary client -> server');

        listener.sendMany(Uint32Array.of(session, session), [inText.data.toString('utf8'), inBinary.data]);
        sameBytes((await C.next(KIND.TEXT, 'the text echo')).data, Buffer.from(text, 'utf8'), 'text server -> client');
        sameBytes((await C.next(KIND.BINARY, 'the binary echo')).data, binary, 'binary server -> client');

        const started = Date.now();
        await withTimeout(client.close(1000), 'client.close(1000)');
        const closeMs = Date.now() - started;
        const closed = await L.next(KIND.CLOSE, 'the session to close');
        assert.strictEqual(closed.session, session);
        assert.strictEqual(closed.extra, 1000, 'the server saw close code ' + closed.extra);
        assert.ok(closeMs < CLOSE_TIMEOUT_MS, 'client.close took ' + closeMs + ' ms: the server never answered its close');
        await withTimeout(listener.close(1001), 'listener.close()');
        // Who carried the server's bytes: Rust alone after a handover (the JS
        // socket wrote nothing, not even the 101), the JS socket for a bridge.
        const { bytesRead, bytesWritten } = seen.socket;
        if (seen.route === 'handover') {
            assert.strictEqual(bytesWritten, 0, 'the handed-over socket wrote ' + bytesWritten + ' B from JS');
        } else {
            assert.ok(bytesRead > binary.length && bytesWritten > binary.length,
                'the bridged socket carried only ' + bytesRead + ' B in, ' + bytesWritten + ' B out');
        }
        // The client's own close event races close() dropping its inbox, so it
        // may or may not arrive; when it does, it must be the clean 1000.
        const extra = L.leftovers().concat(C.leftovers().filter((e) => !(e.kind === KIND.CLOSE && e.extra === 1000)));
        assert.strictEqual(extra.length, 0, 'unexpected events: ' + JSON.stringify(extra.map((e) => [e.kind, e.data.toString()])));
        const via = seen.route === 'handover'
            ? 'listener by descriptor handover'
            : 'listener by JS bridge (' + bytesRead + ' B in, ' + bytesWritten + ' B out through the socket)';
        return 'text ' + Buffer.byteLength(text) + ' B + binary ' + binary.length + ' B echoed byte for byte, ' + via + ', close 1000 in ' + closeMs + ' ms';
    } finally {
        await withTimeout(new Promise((resolve) => server.close(resolve)), 'http server close').catch(() => {});
    }
}

async function main() {
    const { addon, file } = loadAddon();
    const summary = await echo(addon);
    console.log('ok: ' + process.version + ' ' + process.platform + '-' + process.arch + ', loader picked ' + file + '; ' + summary);
}

main().then(() => process.exit(0), (err) => {
    // One line: the message (without assert's diff) and where it was thrown.
    const where = err && err.stack ? (/\((.*emulated-echo\.js:\d+):\d+\)/.exec(err.stack) || [])[1] : null;
    console.log('error: ' + (err && err.message ? err.message.split('\n')[0] : err) + (where ? ' [' + path.basename(where) + ']' : ''));
    process.exit(1);
});
