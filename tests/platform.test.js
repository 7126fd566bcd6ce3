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

/** Runs `code` in a fresh Node whose process.arch is `arch` and whose kernel reports `machine` (uname -m). */
function withCpu(arch, machine, code) {
    const pretend = 'Object.defineProperty(process, "arch", { value: ' + JSON.stringify(arch) + ' });' +
        'require("os").machine = () => ' + JSON.stringify(machine) + ';';
    return execFileSync(process.execPath, ['-e', pretend + code], { cwd: ROOT, encoding: 'utf8' });
}

const TRY_LOAD = 'try { require("./index.js"); console.log("loaded"); } catch (e) { console.log(e.code + " " + e.message); }';

describe('platform', function () {
    it('names platforms as the generated loader does', function () {
        const loader = fs.readFileSync(path.join(ROOT, 'native', 'index.js'), 'utf8');
        const known = (name) => loader.includes("'./websocket-rs." + name + ".node'");
        assert.ok(known(hostPlatform()), 'this machine: ' + hostPlatform());
        const cases = [
            ['linux', 'x64', false, 'linux-x64-gnu'], ['linux', 'x64', true, 'linux-x64-musl'],
            ['linux', 'arm64', false, 'linux-arm64-gnu'], ['linux', 'arm64', true, 'linux-arm64-musl'],
            ['linux', 'arm', false, 'linux-arm-gnueabihf'], ['linux', 'arm', true, 'linux-arm-musleabihf'],
            ['linux', 'riscv64', false, 'linux-riscv64-gnu'], ['darwin', 'arm64', undefined, 'darwin-arm64'],
            ['darwin', 'x64', undefined, 'darwin-x64'], ['win32', 'x64', undefined, 'win32-x64-msvc'],
            ['win32', 'arm64', undefined, 'win32-arm64-msvc'], ['freebsd', 'x64', undefined, 'freebsd-x64'],
            ['android', 'arm', undefined, 'android-arm-eabi'], ['android', 'arm64', undefined, 'android-arm64']
        ];
        for (const [platform, arch, musl, name] of cases) {
            assert.strictEqual(hostPlatform(platform, arch, musl), name);
            assert.ok(known(name), name + ' is not a name the loader looks for');
        }
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
            assert.match(cpuMismatch(file, 'arm', 'armv6l'), /needs an ARMv7 CPU or newer, and this one is armv6l \(a Raspberry Pi Zero or 1\)/);
        });

        it('accepts it on ARMv7 and newer CPUs, whatever Node was built for, and on other architectures', function () {
            assert.strictEqual(cpuMismatch(file, 'arm', 'armv7l'), null);
            assert.strictEqual(cpuMismatch(file, 'arm', 'armv8l'), null);
            assert.strictEqual(cpuMismatch(file, 'arm', 'aarch64'), null);
            assert.strictEqual(cpuMismatch(file, 'arm64', 'aarch64'), null);
            assert.strictEqual(cpuMismatch(file, 'x64', 'x86_64'), null);
        });

        it('accepts a binary built on the machine itself', function () {
            fs.writeFileSync(file + SOURCE_BUILD_SUFFIX, '');
            assert.strictEqual(cpuMismatch(file, 'arm', 'armv6l'), null);
        });

        it('has the package refuse before loading anything, with the fix in the error', function () {
            const out = withCpu('arm', 'armv6l', TRY_LOAD);
            assert.match(out, /^ERR_WSRS_ADDON_LOAD the prebuilt addon for 32-bit ARM needs an ARMv7 CPU/);
            assert.match(out, /npm run build/);
            // Positive control: on ARMv7 the package goes on to the loader (which then finds
            // no ARM binary that loads on this x64 machine, or none at all).
            const v7 = withCpu('arm', 'armv7l', TRY_LOAD);
            assert.doesNotMatch(v7, /ARMv7 CPU/);
            assert.match(v7, /^ERR_WSRS_ADDON_LOAD (there is no prebuilt addon|the addon built for linux-arm-gnueabihf does not load here)/);
        });
    });
});
