'use strict';
// The Rust load generator (bench/loadgen): built once, then run as child
// processes that report JSON lines on stdout. Every run is bounded by a timer
// that kills that child (by its own PID) if it outlives its schedule.

const path = require('path');
const { spawn, execFileSync } = require('child_process');

const dir = path.join(__dirname, '..', 'loadgen');
const bin = path.join(dir, 'target', 'release', 'websocket-rs-loadgen');
const live = new Set();

/** Builds the load generator if needed (cargo: a no-op when it is up to date). */
function build() {
    execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', path.join(dir, 'Cargo.toml'), '--target-dir', path.join(dir, 'target')], { stdio: ['ignore', 'inherit', 'inherit'] });
}

function toArgs(mode, opts) {
    const args = [mode];
    for (const [k, v] of Object.entries(opts)) {
        if (v !== undefined && v !== null) args.push('--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()), String(v));
    }
    return args;
}

/**
 * Starts `mode` and calls `onEvent(event)` for each JSON line, synchronously as
 * it arrives (the window's edges are sampled there). Returns {pid, done, release}:
 * `done` resolves with the `result` event, or with null once the process ends
 * without one if `resultless`; `release()` closes its stdin (hold and serve wait for it).
 */
function start(mode, opts, { onEvent = () => {}, timeoutMs, resultless = false } = {}) {
    const child = spawn(bin, toArgs(mode, opts), { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let buffered = '';
    let result = null;
    let stderr = '';
    let failure = null;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => { stderr = (stderr + s).slice(-4000); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s) => {
        buffered += s;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            let ev;
            try {
                ev = JSON.parse(line);
            } catch (err) {
                continue;
            }
            if (ev.event === 'result') result = ev;
            try {
                onEvent(ev);
            } catch (err) {
                failure = failure || err;
            }
        }
    });
    child.stdin.on('error', () => { /* the child may exit before reading it */ });
    const timer = setTimeout(() => {
        failure = failure || new Error('loadgen ' + mode + ' still running after ' + timeoutMs + ' ms');
        child.kill('SIGKILL');
    }, timeoutMs);
    const done = new Promise((resolve, reject) => {
        child.once('error', (err) => { failure = failure || err; });
        child.once('close', (code, signal) => {
            clearTimeout(timer);
            live.delete(child);
            if (failure) return reject(failure);
            if (code !== 0) return reject(new Error('loadgen ' + mode + ' exited with ' + (signal || code) + ': ' + stderr.trim()));
            if (!result && !resultless) return reject(new Error('loadgen ' + mode + ' gave no result: ' + stderr.trim()));
            resolve(result);
        });
    });
    return { pid: child.pid, done, release: () => child.stdin.end(), stderr: () => stderr };
}

/**
 * Starts a mode whose events can be awaited by name: {pid, next(name), done, release}.
 * `next` also finds an event that came before it was called; it fails if the
 * process ends first (bounded by the run's own timer).
 */
function session(mode, opts, timeoutMs) {
    const seen = [];
    const waiting = [];
    const run = start(mode, opts, {
        timeoutMs,
        resultless: true,
        onEvent: (ev) => {
            seen.push(ev);
            waiting.forEach((w) => w(ev));
        }
    });
    run.done.catch(() => {}); // observed through next() and by the caller
    const next = (name) => new Promise((resolve, reject) => {
        const found = seen.find((ev) => ev.event === name);
        if (found) return resolve(found);
        waiting.push((ev) => { if (ev.event === name) resolve(ev); });
        run.done.then(() => reject(new Error('loadgen ' + mode + ' ended before "' + name + '": ' + run.stderr().trim())), reject);
    });
    return { ...run, next };
}

/** Kills every load generator still running (on an aborted bench). */
function killAll() {
    for (const child of live) child.kill('SIGKILL');
}

module.exports = { build, start, session, killAll, bin };
