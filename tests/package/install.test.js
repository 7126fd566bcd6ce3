'use strict';
//! The package as a user gets it: `npm pack`, then `npm install <tarball>` into a
//! fresh Node-RED user dir, offline and with no Rust toolchain on PATH; Node-RED
//! loads it, a flow exported from a core Node-RED echoes through it with an
//! independent client (ws), and a platform without a binary gets a clear error,
//! an HTTP answer on the listener's path, and a working source build.
//! Needs every shipped binary in native/ (`npm run build:all`).

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { startNodeRed } = require('../nodered');
const { ECHO_FLOW } = require('../flows');
const { connect, nextMessage, within, closed } = require('../support');
const { SHIPPED, BINARY } = require('../../scripts/build');
const { hostPlatform } = require('../../nodes/lib/platform');

const ROOT = path.resolve(__dirname, '..', '..');
const NAME = '@websocket-rs/node-red';

/** PATH without any directory that holds cargo or rustc: a user's machine with no toolchain. */
function pathWithoutRust() {
    return process.env.PATH.split(path.delimiter)
        .filter((dir) => !['cargo', 'rustc', 'rustup'].some((tool) => fs.existsSync(path.join(dir, tool))))
        .join(path.delimiter);
}

/** npm, run by this Node so that it needs nothing from PATH (`npm run` sets npm_execpath). */
function npm(args, options) {
    const cli = process.env.npm_execpath;
    const [cmd, pre] = cli && /\.c?js$/.test(cli) ? [process.execPath, [cli]] : ['npm', []];
    return execFileSync(cmd, [...pre, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

describe('the packed package, installed as a user installs it', function () {
    this.timeout(120000);
    let tmp;
    let tarball;
    let packed;
    let userDir;
    let installed;
    let nr = null;
    const noRust = { ...process.env, PATH: pathWithoutRust() };

    before(function () {
        for (const platform of Object.keys(SHIPPED)) {
            const file = path.join(ROOT, 'native', BINARY + '.' + platform + '.node');
            assert.ok(fs.existsSync(file), file + ' is missing: run "npm run build:all" first');
        }
        assert.throws(() => execFileSync('cargo', ['--version'], { env: noRust, stdio: 'ignore' }), /ENOENT/,
            'cargo is still reachable without the Rust directories on PATH');
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-package-'));
        // `prepare` runs here and refuses stale, missing or host-built binaries.
        [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp], { cwd: ROOT }));
        tarball = path.join(tmp, packed.filename);
        console.log('      tarball: ' + (packed.size / 1048576).toFixed(2) + ' MiB packed, ' +
            (packed.unpackedSize / 1048576).toFixed(2) + ' MiB unpacked, ' + packed.entryCount + ' files');

        userDir = path.join(tmp, 'user');
        fs.mkdirSync(userDir);
        fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
        npm(['install', tarball, '--offline', '--no-audit', '--no-fund', '--cache', path.join(tmp, 'npm-cache')], { cwd: userDir, env: noRust });
        installed = path.join(userDir, 'node_modules', NAME);
    });

    after(async function () {
        if (nr) await nr.stop();
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function start(flows, env = noRust) {
        if (nr) await nr.stop();
        nr = await startNodeRed({ userDir, env, flows });
        return nr;
    }

    async function echoes(text) {
        const ws = await within(connect(nr.wsUrl + '/ws/echo'), 5000, 'connect');
        try {
            const reply = nextMessage(ws, { ms: 5000 });
            ws.send(text);
            const got = await reply;
            assert.strictEqual(got.isBinary, false);
            assert.strictEqual(got.data.toString(), text);
            const binary = Buffer.from([0, 1, 2, 253, 254, 255]);
            const again = nextMessage(ws, { ms: 5000 });
            ws.send(binary);
            const gotBinary = await again;
            assert.strictEqual(gotBinary.isBinary, true);
            assert.deepStrictEqual(Buffer.from(gotBinary.data), binary);
        } finally {
            const done = closed(ws, { ms: 5000 });
            ws.close();
            await done;
        }
    }

    it('holds only what runs: code, nodes, locales, examples, every binary, node-forge, README, LICENSE', function () {
        const files = packed.files.map((f) => f.path);
        assert.deepStrictEqual(files.filter((f) => f.startsWith('native/')).sort(),
            ['native/index.js', ...Object.keys(SHIPPED).map((p) => 'native/' + BINARY + '.' + p + '.node')].sort());
        for (const f of ['index.js', 'native/index.js', 'nodes/websocket.js', 'nodes/websocket.html',
            'nodes/locales/en-US/websocket.json', 'nodes/locales/en-US/websocket.html', 'nodes/websocket-live.js', 'nodes/websocket-live.html', 'nodes/locales/en-US/websocket-live.json', 'README.md', 'LICENSE',
            'scripts/build.js', 'Cargo.toml', 'Cargo.lock', 'src/lib.rs',
            'node_modules/node-forge/package.json', 'node_modules/node-forge/lib/index.js']) {
            assert.ok(files.includes(f), f + ' not packed');
        }
        assert.strictEqual(files.filter((f) => /^examples\/.+\.json$/.test(f)).length, 6, 'examples: ' + files);
        const extra = files.filter((f) => /^(tests|bench|\.ci|target|scripts\/(?!build\.js$))/.test(f) || f.endsWith('.tgz'));
        assert.deepStrictEqual(extra, []);
        // Its one dependency, bundled so that an offline install fetches nothing.
        const modules = files.filter((f) => f.startsWith('node_modules/') && !f.startsWith('node_modules/node-forge/'));
        assert.deepStrictEqual(modules, []);
    });

    it('installs as a real copy (not a link to the checkout), with every binary', function () {
        assert.ok(!fs.lstatSync(installed).isSymbolicLink());
        assert.strictEqual(JSON.parse(fs.readFileSync(path.join(installed, 'package.json'))).name, NAME);
        for (const platform of Object.keys(SHIPPED)) {
            assert.ok(fs.existsSync(path.join(installed, 'native', BINARY + '.' + platform + '.node')), platform);
        }
    });

    it('reads a PKCS#12 bundle with the node-forge it carries', function () {
        const forge = path.join(installed, 'node_modules', 'node-forge', 'package.json');
        const pinned = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'))).dependencies['node-forge'];
        assert.strictEqual(JSON.parse(fs.readFileSync(forge)).version, pinned);
        const { readPfx } = require(path.join(installed, 'nodes', 'lib', 'pfx.js'));
        const fixtures = path.join(ROOT, 'tests', 'fixtures', 'pkcs12');
        const got = readPfx(fs.readFileSync(path.join(fixtures, 'aes256.p12')), 'secret');
        assert.strictEqual(got.ca, fs.readFileSync(path.join(fixtures, 'ca.pem'), 'latin1'));
        assert.ok(require.cache[path.join(installed, 'node_modules', 'node-forge', 'lib', 'index.js')], 'the installed copy\'s node-forge was used');
    });

    it('loads in Node-RED from the user dir, with core\'s four types and websocket-cluster, and echoes through a flow exported from core', async function () {
        await start(ECHO_FLOW);
        const res = await nr.request('GET', '/nodes', { headers: { Accept: 'application/json' } });
        const ours = res.json().filter((set) => set.module === NAME);
        assert.strictEqual(ours.length, 1, JSON.stringify(res.json().map((s) => s.id)));
        assert.deepStrictEqual(ours[0].types.slice().sort(), ['websocket in', 'websocket out', 'websocket-client', 'websocket-cluster', 'websocket-listener']);
        assert.ok(ours[0].enabled && !ours[0].err, JSON.stringify(ours[0]));
        assert.doesNotMatch(nr.output(), /addon could not be loaded|\[error\]/);
        await echoes('hello from an installed tarball');
    });

    it('offers its six examples to Import → Examples', async function () {
        const res = await nr.request('GET', '/library/examples/flows/' + NAME);
        assert.strictEqual(res.status, 200, res.text);
        const names = res.json().map((entry) => entry.fn).sort();
        assert.deepStrictEqual(names, ['01 - Echo server and client', '02 - Broadcast to many clients', '03 - Whole message mode', '04 - Chat with rooms', '05 - Authenticated listener',
            '06 - Broadcast across instances']);
        for (const name of names) {
            const flow = await nr.request('GET', '/library/examples/flows/' + NAME + '/' + encodeURIComponent(name));
            assert.strictEqual(flow.status, 200, name);
            const types = new Set(flow.json().map((n) => n.type));
            for (const t of ['websocket in', 'websocket out', 'websocket-listener', 'websocket-client']) {
                assert.ok(types.has(t), name + ' has no ' + t);
            }
        }
    });

    describe('on a platform with no prebuilt binary', function () {
        const platform = hostPlatform();
        let binary;
        let saved;

        before(function () {
            binary = path.join(installed, 'native', BINARY + '.' + platform + '.node');
            saved = fs.readFileSync(binary);
            fs.rmSync(binary);
        });

        it('registers the types, names the platform and the fix, and answers the listener path with 503', async function () {
            await start(ECHO_FLOW);
            const out = nr.output();
            assert.match(out, /Started flows/);
            assert.match(out, new RegExp('no prebuilt addon for this platform \\(' + platform));
            assert.match(out, /npm run build/);
            assert.match(out, /rustup\.rs/);
            const err = await connect(nr.wsUrl + '/ws/echo').then(() => null, (e) => e);
            assert.ok(err, 'the handshake succeeded without an addon');
            assert.strictEqual(err.statusCode, 503, String(err));
        });

        it('builds from source with "npm run build" when Rust is on PATH, and then echoes', async function () {
            this.timeout(900000);
            await nr.stop();
            nr = null;
            // Reuse this checkout's compiled dependencies; only the package itself compiles.
            npm(['run', 'build'], { cwd: installed, env: { ...process.env, CARGO_TARGET_DIR: path.join(ROOT, 'target') }, stdio: 'inherit' });
            assert.ok(fs.existsSync(binary), 'npm run build made no ' + binary);
            assert.notDeepStrictEqual(fs.readFileSync(binary), saved, 'expected a fresh build, not the shipped file');
            await start(ECHO_FLOW);
            assert.doesNotMatch(nr.output(), /addon could not be loaded/);
            await echoes('built from source');
        });
    });
});
