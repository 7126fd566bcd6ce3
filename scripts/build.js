#!/usr/bin/env node
'use strict';
// Builds the native addon and puts it where native/index.js (napi-rs's generated
// loader) looks for it: native/websocket-rs.<platform>.node.
//
//   node scripts/build.js            this machine, release (needs cargo)
//   node scripts/build.js --debug    this machine, debug
//   node scripts/build.js --all      every platform the package ships, cross-built
//                                    with cargo-zigbuild (Linux: glibc floor 2.17)
//   node scripts/build.js --target linux-arm64-gnu [--target ...]
//   node scripts/build.js --prepare  npm's "prepare": builds this machine's addon, except
//                                    under `npm pack` / `npm publish`, where it checks
//                                    that every shipped binary is there, fresh, and built
//                                    for the glibc floor (a host build would raise it)
//
// Only cargo is needed (no npm dev dependency), so `npm run build` also works in an
// installed copy of the package on a platform that has no prebuilt binary.

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { hostPlatform, SOURCE_BUILD_SUFFIX } = require('../nodes/lib/platform');

const root = path.resolve(__dirname, '..');
const nativeDir = path.join(root, 'native');
const BINARY = 'websocket-rs';

/** The platforms the package ships: napi-rs platform name -> Rust target (zigbuild spelling). */
const SHIPPED = {
    'linux-x64-gnu': 'x86_64-unknown-linux-gnu.2.17',
    'linux-arm64-gnu': 'aarch64-unknown-linux-gnu.2.17',
    'linux-arm-gnueabihf': 'armv7-unknown-linux-gnueabihf.2.17',
    'linux-x64-musl': 'x86_64-unknown-linux-musl',
    'linux-arm64-musl': 'aarch64-unknown-linux-musl',
    // A MinGW build, under the name the loader gives the official (MSVC-built) Node:
    // with napi's dyn-symbols it imports nothing from Node, and it needs no C
    // runtime that Windows 10 lacks (the MSVC toolchain cannot be fetched here).
    'win32-x64-msvc': 'x86_64-pc-windows-gnu',
    'darwin-arm64': 'aarch64-apple-darwin',
    'darwin-x64': 'x86_64-apple-darwin'
};

/** Per-platform build environment (functions run when that platform is built): the
 * oldest macOS that Node 18+ runs on, per CPU; the stand-in libnode for Windows. */
const TARGET_ENV = {
    'darwin-arm64': { MACOSX_DEPLOYMENT_TARGET: '11.0' },
    'darwin-x64': { MACOSX_DEPLOYMENT_TARGET: '10.15' },
    'win32-x64-msvc': { LIBNODE_PATH: libnodeStub }
};

/**
 * napi's build scripts link a windows-gnu addon with -lnode and insist on finding a
 * libnode.dll, which Node for Windows does not ship. With dyn-symbols nothing is
 * imported from it, so an empty library (an empty archive) satisfies the link.
 */
function libnodeStub() {
    const dir = path.join(root, 'target', 'libnode-stub');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'libnode.dll'), '');
    fs.writeFileSync(path.join(dir, 'libnode.a'), '!<arch>\n');
    return dir;
}

/**
 * Runs a cargo build and returns the path of the cdylib it produced, as cargo
 * reports it (so target-dir settings from any cargo config are honoured).
 */
function cargo(args, extraEnv = {}) {
    const all = [...args, '--lib', '--message-format=json-render-diagnostics'];
    console.log('> ' + Object.entries(extraEnv).map(([k, v]) => k + '=' + v + ' ').join('') + 'cargo ' + all.join(' '));
    // cargo-zigbuild and zig, where .ci/setup installed them.
    const venvBin = path.join(root, '.ci', 'venv', 'bin');
    const env = { ...process.env, ...extraEnv };
    if (fs.existsSync(venvBin)) env.PATH = venvBin + path.delimiter + process.env.PATH;
    const r = spawnSync('cargo', all, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.error) {
        throw new Error('cargo: ' + r.error.message + (r.error.code === 'ENOENT' ? ' (not on PATH: install Rust from https://rustup.rs)' : ''));
    }
    if (r.status !== 0) throw new Error('cargo ' + args.join(' ') + ' failed (exit ' + r.status + ')');
    let lib = null;
    for (const line of r.stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const m = JSON.parse(line);
        if (m.reason === 'compiler-artifact' && m.target.kind.includes('cdylib')) {
            lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
        }
    }
    if (!lib) throw new Error('cargo ' + args.join(' ') + ' reported no library');
    return lib;
}

/** Copies a built library into native/; `hostBuilt` marks it as built for this very machine. */
function install(from, platform, hostBuilt) {
    fs.mkdirSync(nativeDir, { recursive: true });
    const to = path.join(nativeDir, BINARY + '.' + platform + '.node');
    // Copy to a temporary name and rename: a running Node-RED that has the old file
    // mapped keeps it intact.
    const tmp = to + '.tmp';
    fs.copyFileSync(from, tmp);
    fs.renameSync(tmp, to);
    // The marker lets index.js load a binary built for this CPU where it would
    // refuse the shipped one (an ARMv6 Raspberry Pi).
    if (hostBuilt) fs.writeFileSync(to + SOURCE_BUILD_SUFFIX, 'built on this machine by scripts/build.js\n');
    else fs.rmSync(to + SOURCE_BUILD_SUFFIX, { force: true });
    console.log('built ' + path.relative(root, to) + ' (' + (fs.statSync(to).size / 1048576).toFixed(1) + ' MiB)');
}

function buildHost(release) {
    const platform = hostPlatform();
    const loader = fs.readFileSync(path.join(nativeDir, 'index.js'), 'utf8');
    if (!loader.includes("'./" + BINARY + '.' + platform + ".node'")) {
        throw new Error('napi-rs\'s loader (native/index.js) has no binary name for this platform (' + platform + '); ' +
            'build with "cargo build --release --lib" and point NAPI_RS_NATIVE_LIBRARY_PATH at the library instead');
    }
    install(cargo(['build', ...(release ? ['--release'] : [])]), platform, true);
}

function buildCross(platform) {
    const target = SHIPPED[platform];
    if (!target) {
        throw new Error('unknown platform ' + platform + ' (shipped: ' + Object.keys(SHIPPED).join(', ') + ')');
    }
    const env = {};
    for (const [k, v] of Object.entries(TARGET_ENV[platform] || {})) env[k] = typeof v === 'function' ? v() : v;
    install(cargo(['zigbuild', '--release', '--target', target], env), platform, false);
}

/** Newest modification time among the files a binary is built from. */
function newestSource() {
    const files = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => path.join(root, f));
    const walk = (dir) => {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
            const p = path.join(dir, entry.name);
            if (entry.isDirectory()) walk(p);
            else files.push(p);
        }
    };
    walk(path.join(root, 'src'));
    return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

/** The highest GLIBC_2.N symbol version a binary refers to (0 if none). */
function glibcFloor(file) {
    let minor = 0;
    for (const m of fs.readFileSync(file).toString('latin1').matchAll(/GLIBC_2\.(\d+)/g)) {
        minor = Math.max(minor, Number(m[1]));
    }
    return minor;
}

const GLIBC_FLOOR_MINOR = 17;

function checkShipped() {
    const sources = newestSource();
    const problems = [];
    for (const f of fs.readdirSync(nativeDir)) {
        const m = new RegExp('^' + BINARY + '\\.(.+)\\.node$').exec(f);
        if (m && !SHIPPED[m[1]]) problems.push(f + ': not a shipped platform');
    }
    for (const platform of Object.keys(SHIPPED)) {
        const file = path.join(nativeDir, BINARY + '.' + platform + '.node');
        if (!fs.existsSync(file)) {
            problems.push(platform + ': missing');
        } else if (fs.existsSync(file + SOURCE_BUILD_SUFFIX)) {
            problems.push(platform + ': built for this machine, not cross-built');
        } else if (fs.statSync(file).mtimeMs < sources) {
            problems.push(platform + ': older than the Rust sources');
        } else if (platform.endsWith('-gnu') || platform.endsWith('-gnueabihf')) {
            const minor = glibcFloor(file);
            if (minor > GLIBC_FLOOR_MINOR) problems.push(platform + ': needs glibc 2.' + minor + ' (a host build?)');
        }
    }
    if (problems.length) {
        throw new Error('the package would ship unusable binaries (' + problems.join('; ') + '). Run "npm run build:all" first.');
    }
    // stderr: `npm pack --json` prints its JSON on stdout.
    console.error('shipping ' + Object.keys(SHIPPED).join(', '));
}

function main(argv) {
    if (argv.includes('--prepare')) {
        const packing = ['pack', 'publish'].includes(process.env.npm_command);
        return packing ? checkShipped() : buildHost(true);
    }
    const targets = [];
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--target') targets.push(argv[++i]);
    }
    if (argv.includes('--all')) targets.push(...Object.keys(SHIPPED));
    if (targets.length === 0) return buildHost(!argv.includes('--debug'));
    for (const platform of targets) buildCross(platform);
}

if (require.main === module) {
    try {
        main(process.argv.slice(2));
    } catch (err) {
        console.error('build: ' + err.message);
        process.exit(1);
    }
}

module.exports = { SHIPPED, BINARY };
