'use strict';
// This machine's platform as napi-rs names its binaries ("linux-arm64-musl",
// "linux-arm-gnueabihf", "darwin-arm64", "win32-x64-msvc"), decided the way the
// generated loader in native/index.js decides it, so that a source build lands
// where the loader looks and an error can say what was looked for.

const fs = require('fs');

/** The file name cargo gives the library, per OS. */
const CRATE_LIB = {
    linux: 'libwebsocket_rs_node_red.so',
    freebsd: 'libwebsocket_rs_node_red.so',
    darwin: 'libwebsocket_rs_node_red.dylib',
    win32: 'websocket_rs_node_red.dll'
};

function isMusl() {
    try {
        return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
    } catch (err) {
        // No ldd script (some minimal images): Node's report names the glibc it runs on.
    }
    const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null;
    return !!report && !(report.header && report.header.glibcVersionRuntime);
}

function hostPlatform(platform = process.platform, arch = process.arch) {
    if (platform === 'linux') {
        const musl = isMusl();
        if (arch === 'arm') return 'linux-arm-' + (musl ? 'musleabihf' : 'gnueabihf');
        return 'linux-' + arch + '-' + (musl ? 'musl' : 'gnu');
    }
    if (platform === 'win32') {
        const gnu = process.config && process.config.variables &&
            (process.config.variables.shlib_suffix === 'dll.a' || process.config.variables.node_target_type === 'shared_library');
        return 'win32-' + arch + '-' + (gnu && arch === 'x64' ? 'gnu' : 'msvc');
    }
    return platform + '-' + arch;
}

/** Written beside a binary built on this machine by `npm run build` (scripts/build.js). */
const SOURCE_BUILD_SUFFIX = '.source-build';

/**
 * The shipped 32-bit ARM binary is built for ARMv7 (Raspberry Pi 2 and later) and
 * would die on an illegal instruction on an ARMv6 CPU (Pi Zero, Pi 1), taking
 * Node-RED down with it. Returns why it must not be loaded, or null. A binary
 * built on the machine itself (it has the source-build marker) is fine.
 */
function cpuMismatch(file, arch = process.arch, armVersion = process.config.variables.arm_version) {
    if (arch !== 'arm' || !(Number(armVersion) < 7) || fs.existsSync(file + SOURCE_BUILD_SUFFIX)) {
        return null;
    }
    return 'the prebuilt addon for 32-bit ARM needs an ARMv7 CPU or newer, and this one is ARMv' + armVersion +
        ' (Raspberry Pi Zero or 1)';
}

module.exports = { hostPlatform, cpuMismatch, CRATE_LIB, SOURCE_BUILD_SUFFIX };
