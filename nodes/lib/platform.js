'use strict';
// This machine's platform as napi-rs names its binaries ("linux-arm64-musl",
// "linux-arm-gnueabihf", "darwin-arm64", "win32-x64-msvc"), decided the way the
// generated loader in native/index.js decides it, so that a source build lands
// where the loader looks and an error can say what was looked for.

const fs = require('fs');
const os = require('os');

/** musl or glibc, checked in the loader's order: ldd, then Node's report, then `ldd --version`. */
function isMusl() {
    try {
        return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
    } catch (err) { /* no ldd script */ }
    if (process.report && typeof process.report.getReport === 'function') {
        process.report.excludeNetwork = true;
        const report = process.report.getReport();
        if (report) {
            if (report.header && report.header.glibcVersionRuntime) return false;
            return Array.isArray(report.sharedObjects) &&
                report.sharedObjects.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'));
        }
    }
    try {
        return require('child_process').execSync('ldd --version', { encoding: 'utf8' }).includes('musl');
    } catch (err) {
        return false;
    }
}

/** The napi-rs platform name; `musl` is only looked up on Linux, and only when not given. */
function hostPlatform(platform = process.platform, arch = process.arch, musl) {
    if (platform === 'linux') {
        const libc = (musl === undefined ? isMusl() : musl) ? 'musl' : 'gnu';
        if (arch === 'arm') return 'linux-arm-' + libc + 'eabihf';
        return 'linux-' + arch + '-' + libc;
    }
    if (platform === 'win32') {
        const v = process.config && process.config.variables;
        const gnu = v && (v.shlib_suffix === 'dll.a' || v.node_target_type === 'shared_library');
        return 'win32-' + arch + '-' + (gnu && arch === 'x64' ? 'gnu' : 'msvc');
    }
    if (platform === 'android' && arch === 'arm') return 'android-arm-eabi';
    return platform + '-' + arch;
}

/** Written beside a binary built on this machine by `npm run build` (scripts/build.js). */
const SOURCE_BUILD_SUFFIX = '.source-build';

/**
 * The shipped 32-bit ARM binary is built for ARMv7 (Raspberry Pi 2 and later) and
 * would die on an illegal instruction on an ARMv6 CPU (Pi Zero, Pi 1), taking
 * Node-RED down with it. Returns why `file` must not be loaded here, or null. The
 * CPU is what the kernel reports (`uname -m`: armv6l), not what Node was built for
 * (Raspbian's own Node is an ARMv6 build that also runs on a Pi 4). A binary built
 * on the machine itself (it has the source-build marker) is fine.
 */
function cpuMismatch(file, arch = process.arch, machine = os.machine ? os.machine() : '') {
    if (arch !== 'arm' || !/^armv[1-6]/.test(machine) || !file.endsWith('gnueabihf.node') ||
        fs.existsSync(file + SOURCE_BUILD_SUFFIX)) {
        return null;
    }
    return 'the prebuilt addon for 32-bit ARM needs an ARMv7 CPU or newer, and this one is ' + machine +
        ' (a Raspberry Pi Zero or 1)';
}

module.exports = { hostPlatform, cpuMismatch, isMusl, SOURCE_BUILD_SUFFIX };
