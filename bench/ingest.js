'use strict';
// Ingest, a throwaway measuring script for issue 12 (the unified bench lives
// elsewhere): the same counting flow (`websocket in` → a function node that
// counts) fed by the loadgen's flood through core and through ours, and fed with
// no transport at all (bench/ingest-gen, Node-RED's own limit). Variants
// alternate within each round; prints medians, ratios and per-thread CPU.
// Loopback only; each load run is bounded by --seconds.
//
//   node bench/ingest.js [--rounds 3] [--seconds 4] [--conns 16] [--size 64]
//                        [--cpuprof 0] [--only 0]   (only, a sum of: 1 core, 2 ours, 4 limit, 8 base, 16 fresh)
//                        [--concurrent 0]
//
// --concurrent 1 runs the variants of a round at the same time, each fed over the
// same window: they then share the machine's CPUs, and whatever else runs on it,
// alike, so their ratios hold on a busy machine (rates are then per share).
//
// WSRS_INGEST_BASE=/path/to/another/copy/of/the/package adds the variant "base":
// that copy (with its own native/ binary) on the same flow, for before/after.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { startNodeRed } = require('../tests/nodered');
const { parseOptions } = require('./options');
const loadgen = require('./lib/loadgen');

const args = parseOptions({ rounds: 3, seconds: 4, conns: 16, size: 64, cpuprof: 0, only: 0, concurrent: 0 }, process.argv.slice(2));
const BASE = process.env.WSRS_INGEST_BASE;
// "fresh" is the limit with a payload decoded from bytes for each msg, as a transport must.
const VARIANTS = ['core', 'ours', 'limit', 'base', 'fresh'].filter((v, i) => (args.only ? args.only & (1 << i) : v !== 'fresh') && (v !== 'base' || BASE));
const WARMUP_MS = 1000;

// The count is sampled with its time by a timer inside Node-RED (timers run
// every loop turn, where an HTTP request waits behind a flood: core's does) and
// read after the run.
const SAMPLER = "const c = { n: 0, samples: [] };\nglobal.set('ingest', c);\n" +
    "const timer = setInterval(() => { c.samples.push([c.n, Date.now()]); if (c.samples.length > 3000) clearInterval(timer); }, 50);";
const counting = (feed) => [
    { id: 'ing-tab', type: 'tab', label: 'ingest' },
    ...feed,
    { id: 'ing-count', type: 'function', z: 'ing-tab', func: "global.get('ingest').n++;\nreturn null;", initialize: SAMPLER, outputs: 1, wires: [] },
    { id: 'ing-get', type: 'http in', z: 'ing-tab', url: '/bench/count', method: 'get', wires: [['ing-read']] },
    { id: 'ing-read', type: 'function', z: 'ing-tab', func: "msg.payload = global.get('ingest').samples;\nreturn msg;", outputs: 1, wires: [['ing-res']] },
    { id: 'ing-res', type: 'http response', z: 'ing-tab', wires: [] }
];
const FLOWS = {
    ws: counting([
        { id: 'ing-l', type: 'websocket-listener', path: '/bench/ingest', wholemsg: 'false' },
        { id: 'ing-in', type: 'websocket in', z: 'ing-tab', server: 'ing-l', client: '', wires: [['ing-count']] }
    ]),
    limit: counting([{ id: 'ing-gen', type: 'bench-ingest-gen', z: 'ing-tab', size: args.size, wires: [['ing-count']] }]),
    fresh: counting([{ id: 'ing-gen', type: 'bench-ingest-gen', z: 'ing-tab', size: args.size, fresh: true, wires: [['ing-count']] }])
};

/** CPU seconds per thread group (the JS (main) thread, Rust workers, the rest),
 * and context switches: the JS thread's involuntary ones (preempted), the Rust
 * workers' voluntary ones (parked, then woken). */
function threadCpu(pid) {
    const out = { js: 0, rust: 0, other: 0, jsPreempt: 0, rustParks: 0 };
    for (const tid of fs.readdirSync('/proc/' + pid + '/task')) {
        let stat;
        try {
            stat = fs.readFileSync('/proc/' + pid + '/task/' + tid + '/stat', 'utf8');
        } catch (err) {
            continue; // the thread ended
        }
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const s = (Number(f[11]) + Number(f[12])) / 100;
        const group = tid === String(pid) ? 'js' : comm.startsWith('websocket-rs') ? 'rust' : 'other';
        out[group] += s;
        if (group !== 'other') {
            const status = fs.readFileSync('/proc/' + pid + '/task/' + tid + '/status', 'utf8');
            const switches = Number(status.match(group === 'js' ? /nonvoluntary_ctxt_switches:\s+(\d+)/ : /\nvoluntary_ctxt_switches:\s+(\d+)/)[1]);
            out[group === 'js' ? 'jsPreempt' : 'rustParks'] += switches;
        }
    }
    return out;
}
/** The JS thread's time running, waiting for a CPU, and sleeping (idle), ns. */
function jsSched(pid) {
    const [run, wait] = fs.readFileSync('/proc/' + pid + '/task/' + pid + '/schedstat', 'utf8').split(' ').map(Number);
    return { run, wait, at: process.hrtime.bigint() };
}
function schedShares(a, b) {
    const wall = Number(b.at - a.at);
    const run = (b.run - a.run) / wall;
    const wait = (b.wait - a.wait) / wall;
    return { run, wait, sleep: 1 - run - wait };
}
const minus = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - (b[k] || 0)]));
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function runLoadgen(url, seconds) {
    const argv = ['flood', '--url', url, '--conns', args.conns, '--size', args.size, '--seconds', seconds].map(String);
    const child = spawn(loadgen.bin, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    return new Promise((resolve) => child.on('exit', () => {
        clearTimeout(killer);
        try {
            resolve(JSON.parse(out.trim().split('\n').pop()));
        } catch (err) {
            resolve({ msgs: 0 });
        }
    }));
}

/** Node-RED for `variant` with the counting flow fed its way; not yet loaded. */
async function start(variant, round) {
    const nodeArgs = args.cpuprof ? ['--cpu-prof', '--cpu-prof-dir', path.join(__dirname, 'out', 'profiles'), '--cpu-prof-name', variant + '-' + round + '.cpuprofile'] : [];
    let userDir;
    if (variant === 'base') {
        // A user dir that installs the other copy the way scripts/userdir.js installs this one.
        userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-ingest-base-'));
        fs.mkdirSync(path.join(userDir, 'node_modules', '@websocket-rs'), { recursive: true });
        fs.symlinkSync(path.resolve(BASE), path.join(userDir, 'node_modules', '@websocket-rs', 'node-red'), 'dir');
        fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'base', private: true, dependencies: { '@websocket-rs/node-red': '*' } }));
    }
    try {
        const nr = await startNodeRed({
            withPackage: variant === 'ours' || variant === 'base',
            userDir,
            flows: FLOWS[variant] || FLOWS.ws,
            settings: { logging: { console: { level: 'info' } }, nodesDir: path.join(__dirname, 'ingest-gen') },
            stderr: 'inherit',
            prefix: 'wsrs-ingest-' + variant + '-',
            nodeArgs
        });
        return { variant, nr, userDir };
    } catch (err) {
        if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
        throw err;
    }
}

async function stop(run) {
    await run.nr.stop();
    if (run.userDir) fs.rmSync(run.userDir, { recursive: true, force: true });
}

const totalSeconds = () => args.seconds + WARMUP_MS / 1000 + 0.5;

/** Starts the feed (bounded by totalSeconds) of a started run. */
async function load(run) {
    if (run.variant === 'limit' || run.variant === 'fresh') {
        await run.nr.request('GET', '/bench/go?ms=' + Math.round(totalSeconds() * 1000));
        run.gen = delay(totalSeconds() * 1000);
    } else {
        run.gen = runLoadgen(run.nr.wsUrl + '/bench/ingest', totalSeconds());
    }
}

/** CPU and scheduling of a loaded run's process, now. */
const snapshot = (run) => ({ cpu: threadCpu(run.nr.child.pid), t: Date.now(), sched: jsSched(run.nr.child.pid) });

/** What a run did between two snapshots; waits for its feed to end first. */
async function result(run, a, b) {
    await run.gen;
    const samples = (await run.nr.request('GET', '/bench/count', { ms: 90000 })).json();
    const cpu = minus(b.cpu, a.cpu);
    const n = countAt(samples, b.t) - countAt(samples, a.t);
    const us = (x) => x / n * 1e6;
    return {
        rate: n / ((b.t - a.t) / 1000), js: us(cpu.js), rust: us(cpu.rust), other: us(cpu.other), all: us(cpu.js + cpu.rust + cpu.other),
        ...schedShares(a.sched, b.sched), preempt: cpu.jsPreempt / n * 1000, parks: cpu.rustParks / n * 1000
    };
}

/** Runs `variants` at the same time (each feed over the same window), or one after another. */
async function measure(variants, round) {
    const out = {};
    const groups = args.concurrent ? [variants] : variants.map((v) => [v]);
    for (const group of groups) {
        const runs = [];
        try {
            for (const v of group) runs.push(await start(v, round));
            await delay(300);
            await Promise.all(runs.map(load));
            await delay(WARMUP_MS);
            const a = runs.map(snapshot);
            await delay(args.seconds * 1000);
            const b = runs.map(snapshot);
            for (let i = 0; i < runs.length; i++) out[runs[i].variant] = await result(runs[i], a[i], b[i]);
        } finally {
            for (const r of runs) await stop(r);
        }
    }
    return out;
}

/** The count at time `t`, interpolated between the samples around it. */
function countAt(samples, t) {
    const i = samples.findIndex(([, ts]) => ts >= t);
    if (i <= 0) throw new Error('no count sampled around ' + t + ' (' + samples.length + ' samples)');
    const [[n0, t0], [n1, t1]] = [samples[i - 1], samples[i]];
    return n0 + (n1 - n0) * (t - t0) / Math.max(1, t1 - t0);
}

const pct = (x) => (x * 100).toFixed(0) + '%';
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function main() {
    loadgen.build();
    const results = Object.fromEntries(VARIANTS.map((v) => [v, []]));
    for (let round = 0; round < args.rounds; round++) {
        const order = round % 2 ? [...VARIANTS].reverse() : VARIANTS;
        const got = await measure(order, round);
        for (const v of order) {
            const r = got[v];
            results[v].push(r);
            console.error(v + ' round ' + (round + 1) + ': ' + Math.round(r.rate) + ' msgs/s; CPU µs per msg: JS ' + r.js.toFixed(2) + ', Rust ' + r.rust.toFixed(2) + ', other ' + r.other.toFixed(2) + '; JS thread running ' + pct(r.run) + ', waiting for a CPU ' + pct(r.wait) + ', idle ' + pct(r.sleep) + '; per 1000 msgs: JS preempted ' + r.preempt.toFixed(1) + ', Rust parks ' + r.parks.toFixed(1));
        }
    }
    const med = (v, k) => median(results[v].map((r) => r[k]));
    console.log('ingest, ' + args.conns + ' connections, ' + args.size + ' B text, ' + args.seconds + ' s × ' + args.rounds + ' rounds (medians)');
    console.log('| variant | msgs/s | CPU µs/msg: JS thread | Rust workers | other threads | whole process | JS thread: running | waiting for a CPU | idle |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const v of VARIANTS) {
        console.log('| ' + v + ' | ' + Math.round(med(v, 'rate')) + ' | ' + ['js', 'rust', 'other', 'all'].map((k) => med(v, k).toFixed(2)).join(' | ') +
            ' | ' + ['run', 'wait', 'sleep'].map((k) => pct(med(v, k))).join(' | ') + ' |');
    }
    // Ratios per round (same round, adjacent runs), then their median.
    const ratio = (a, b) => results[a] && results[b] ? median(results[a].map((r, i) => r.rate / results[b][i].rate)).toFixed(3) : '-';
    console.log('msgs/s: ours/core ' + ratio('ours', 'core') + ', ours/limit ' + ratio('ours', 'limit') + ', core/limit ' + ratio('core', 'limit') +
        (results.fresh ? ', ours/fresh ' + ratio('ours', 'fresh') + ', core/fresh ' + ratio('core', 'fresh') + ', fresh/limit ' + ratio('fresh', 'limit') : '') +
        (BASE ? ', ours/base ' + ratio('ours', 'base') + ', base/core ' + ratio('base', 'core') + ', base/limit ' + ratio('base', 'limit') : ''));
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
