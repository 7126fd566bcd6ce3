'use strict';
//! Choosing the binary: platform names as napi-rs's loader spells them, and the
//! ARMv6 guard that keeps the ARMv7 binary from killing Node-RED on a Pi Zero.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { hostPlatform, cpuMismatch, SOURCE_BUILD_SUFFIX } = require('../nodes/lib/platform');

const ROOT = path.resolve(__dirname, '..');

/** Runs `code` in a fresh Node whose process.arch and arm_version are `arch` and `armVersion`. */
function withCpu(arch, armVersion, code) {
    const pretend = 'Object.defineProperty(process, "arch", { value: ' + JSON.stringify(arch) + ' });' +
        'Object.defineProperty(process, "config", { value: { variables: { arm_version: ' + JSON.stringify(armVersion) + ' } } });';
    return execFileSync(process.execPath, ['-e', pretend + code], { cwd: ROOT, encoding: 'utf8' });
}

describe('platform', function () {
    it('names this machine as the generated loader does', function () {
        // The loader file in native/ must contain the name we build to, for this host.
        const name = hostPlatform();
        assert.match(name, /^linux-(x64|arm64)-(gnu|musl)$/);
        assert.ok(fs.readFileSync(path.join(ROOT, 'native', 'index.js'), 'utf8').includes("'./websocket-rs." + name + ".node'"));
        assert.strictEqual(hostPlatform('linux', 'arm'), 'linux-arm-gnueabihf');
        assert.strictEqual(hostPlatform('darwin', 'arm64'), 'darwin-arm64');
        assert.strictEqual(hostPlatform('win32', 'x64'), 'win32-x64-msvc');
    });

    describe('on 32-bit ARM', function () {
        let dir;
        let file;
        beforeEach(function () {
            dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-platform-'));
            file = path.join(dir, 'websocket-rs.linux-arm-gnueabihf.node');
            fs.writeFileSync(file, 'not loaded');
        });
        afterEach(function () {
            fs.rmSync(dir, { recursive: true, force: true });
        });

        it('refuses the shipped binary on an ARMv6 CPU, and says why', function () {
            assert.match(cpuMismatch(file, 'arm', '6'), /needs an ARMv7 CPU or newer, and this one is ARMv6 \(Raspberry Pi Zero or 1\)/);
        });

        it('accepts it on ARMv7 and on other architectures', function () {
            assert.strictEqual(cpuMismatch(file, 'arm', '7'), null);
            assert.strictEqual(cpuMismatch(file, 'arm', '8'), null);
            assert.strictEqual(cpuMismatch(file, 'arm64', undefined), null);
            assert.strictEqual(cpuMismatch(file, 'x64', undefined), null);
        });

        it('accepts a binary built on the machine itself', function () {
            fs.writeFileSync(file + SOURCE_BUILD_SUFFIX, '');
            assert.strictEqual(cpuMismatch(file, 'arm', '6'), null);
        });

        it('has the package refuse before loading anything, with the fix in the error', function () {
            const out = withCpu('arm', '6', 'try { require("./index.js"); console.log("loaded"); } ' +
                'catch (e) { console.log(e.code + " " + e.message); }');
            assert.match(out, /^ERR_WSRS_ADDON_LOAD the prebuilt addon for 32-bit ARM needs an ARMv7 CPU/);
            assert.match(out, /npm run build/);
            // Positive control: the same Node on ARMv7 goes on to the loader (which then finds
            // no ARM binary loadable on this x64 machine, or none at all).
            const v7 = withCpu('arm', '7', 'try { require("./index.js"); console.log("loaded"); } ' +
                'catch (e) { console.log(e.code + " " + e.message); }');
            assert.doesNotMatch(v7, /ARMv7 CPU/);
            assert.match(v7, /^ERR_WSRS_ADDON_LOAD (there is no prebuilt addon|the addon built for linux-arm-gnueabihf does not load here)/);
        });
    });
});
