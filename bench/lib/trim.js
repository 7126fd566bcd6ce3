'use strict';
// glibc's malloc_trim(0) in a Node-RED the bench starts, core's or ours, through
// bench/lib/trim-preload.c, preloaded into it: gdb cannot call a function in a
// process on some CPUs ("Couldn't write extended state status: Bad address").
// The library is built here with the C compiler Rust builds already need.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { delay } = require('./measure');

const SOURCE = path.join(__dirname, 'trim-preload.c');
const LIB = path.join(__dirname, '..', '..', 'target', 'bench', 'trim-preload.so');

function build() {
    if (fs.existsSync(LIB) && fs.statSync(LIB).mtimeMs >= fs.statSync(SOURCE).mtimeMs) return LIB;
    fs.mkdirSync(path.dirname(LIB), { recursive: true });
    try {
        execFileSync(process.env.CC || 'cc', ['-shared', '-fPIC', '-O2', '-o', LIB, SOURCE, '-lpthread'], { stdio: 'pipe', timeout: 120000 });
    } catch (err) {
        throw new Error('could not build ' + SOURCE + ' with ' + (process.env.CC || 'cc') + ': ' + String(err.stderr || err.message).trim());
    }
    return LIB;
}

/**
 * A malloc channel for one child process: `env` starts it with the library loaded;
 * `trim()` has it call malloc_trim(0) once, `stats()` only reads glibc's totals.
 * Each resolves { released, system, inUse } (bytes over all arenas, after the trim;
 * system and inUse null where glibc cannot tell) once the call has run, or null
 * if it did not within `ms`. Calls run one after another; a call that timed out
 * still counts, so a late answer is not taken for the next call's. `close()`
 * removes the channel's directory.
 */
function trimmer(baseEnv = process.env) {
    const lib = build();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-trim-'));
    const done = path.join(dir, 'done');
    const lines = () => (fs.existsSync(done) ? fs.readFileSync(done, 'utf8').split('\n').filter(Boolean) : []);
    let sent = 0; // requests written, each answered by one line, in order
    let last = Promise.resolve();
    async function call(op, ms) {
        const end = Date.now() + ms;
        // Opening without blocking fails (ENXIO) until the thread waits to read.
        for (;;) {
            try {
                const fd = fs.openSync(path.join(dir, 'req'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
                try { fs.writeSync(fd, op); } finally { fs.closeSync(fd); }
                break;
            } catch (err) {
                if ((err.code !== 'ENXIO' && err.code !== 'ENOENT') || Date.now() > end) return null;
                await delay(20);
            }
        }
        const mine = sent++;
        for (;;) {
            const all = lines();
            if (all.length > mine) {
                const [released, system, inUse] = all[mine].split(' ').map(Number);
                if (![released, system, inUse].every(Number.isFinite)) throw new Error('malloc channel: unreadable answer ' + JSON.stringify(all[mine]) + ' (an old ' + lib + '?)');
                const known = (v) => (v < 0 ? null : v);
                return { released, system: known(system), inUse: known(inUse) };
            }
            if (Date.now() > end) return null;
            await delay(20);
        }
    }
    const queued = (op, ms) => {
        const run = last.then(() => call(op, ms));
        last = run.catch(() => null);
        return run;
    };
    return {
        env: { ...baseEnv, LD_PRELOAD: [lib, baseEnv.LD_PRELOAD].filter(Boolean).join(' '), WSRS_BENCH_TRIM_DIR: dir },
        trim: (ms = 30000) => queued('t', ms),
        stats: (ms = 30000) => queued('s', ms),
        close() {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    };
}

module.exports = { trimmer };
