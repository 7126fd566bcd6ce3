'use strict';
// What the live counters cost (issue 14): echo msgs/s through Node-RED with this
// package as built (counters on) against the same sources built with the cargo
// feature `no-stats` (their hot-path updates compiled out), loaded through napi-rs's
// NAPI_RS_NATIVE_LIBRARY_PATH (both builds made here, the same way). Alternating,
// one fresh Node-RED per run, medians.
//
//   node bench/counters.js [--rounds 5] [--seconds 5] [--warmup 1] [--conns 16] [--size 64]

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const loadgen = require('./lib/loadgen');
const nodered = require('./lib/nodered');
const { windowed, delay } = require('./lib/measure');
const { median } = require('./lib/stats');
const { parseOptions } = require('./options');

const o = parseOptions({ rounds: 5, seconds: 5, warmup: 1, conns: 16, size: 64 }, process.argv.slice(2));
const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(__dirname, 'out');
const log = (s) => process.stderr.write(s + '\n');

/**
 * Builds the addon (with the feature `no-stats`, or as shipped) into bench/out/:
 * both variants are built the same way from the same sources and loaded the same
 * way. Only this crate is rebuilt; its dependencies are cached.
 */
function build(noStats) {
    const name = noStats ? 'no-stats' : 'counters';
    log('building the addon: ' + name);
    const features = noStats ? ['--features', 'no-stats'] : [];
    const r = spawnSync('cargo', ['build', '--release', '--lib', ...features, '--message-format=json-render-diagnostics'],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new Error('cargo failed (exit ' + r.status + ')');
    let lib = null;
    for (const line of r.stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const m = JSON.parse(line);
        if (m.reason === 'compiler-artifact' && m.target.kind.includes('cdylib')) lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
    }
    if (!lib) throw new Error('cargo reported no library');
    fs.mkdirSync(OUT, { recursive: true });
    const to = path.join(OUT, 'websocket-rs-' + name + '.node');
    fs.copyFileSync(lib, to);
    return to;
}

async function run(env) {
    const nr = await nodered.start('ours', { env });
    try {
        // The binary the child really mapped, so a fallback cannot pass for the other build.
        const maps = fs.readFileSync('/proc/' + nr.pid + '/maps', 'utf8');
        if (!maps.includes(env.NAPI_RS_NATIVE_LIBRARY_PATH)) throw new Error('Node-RED did not load ' + env.NAPI_RS_NATIVE_LIBRARY_PATH);
        const r = await windowed('echo', { url: nr.url('/bench/echo'), conns: o.conns, inflight: 16, size: o.size, warmup: o.warmup, seconds: o.seconds }, nr.pid);
        return { rate: r.result.rate, cpuUs: r.result.msgs ? (r.serverCpu / r.result.msgs) * 1e6 : NaN };
    } finally {
        await nr.stop();
    }
}

async function main() {
    loadgen.build();
    const variants = {
        counters: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: build(false) },
        'no-stats': { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: build(true) }
    };
    const runs = { counters: [], 'no-stats': [] };
    for (let round = 0; round < o.rounds; round++) {
        const order = round % 2 ? ['no-stats', 'counters'] : ['counters', 'no-stats'];
        for (const v of order) {
            const m = await run(variants[v]);
            runs[v].push(m);
            log('round ' + (round + 1) + ' ' + v + ': ' + Math.round(m.rate) + ' msgs/s, ' + m.cpuUs.toFixed(2) + ' µs server CPU per msg');
            await delay(1000);
        }
    }
    const [on, off] = [runs.counters, runs['no-stats']];
    const ratio = (key) => on.map((m, i) => m[key] / off[i][key]);
    const med = (xs, key) => median(xs.map((m) => m[key]));
    const rounds = (xs) => ' (rounds: ' + xs.map((x) => x.toFixed(2)).join(', ') + ')';
    console.log('| case | msgs/s with / without counters | with ÷ without | server CPU µs per msg with / without | with ÷ without |');
    console.log('| --- | --- | --- | --- | --- |');
    console.log('| echo, ' + o.conns + ' connections × 16 in flight, ' + o.size + ' B | ' + Math.round(med(on, 'rate')) + ' / ' +
        Math.round(med(off, 'rate')) + ' | ' + median(ratio('rate')).toFixed(3) + rounds(ratio('rate')) + ' | ' +
        med(on, 'cpuUs').toFixed(2) + ' / ' + med(off, 'cpuUs').toFixed(2) + ' | ' + median(ratio('cpuUs')).toFixed(3) + rounds(ratio('cpuUs')) + ' |');
}

main().catch((err) => {
    log(err && err.stack ? err.stack : String(err));
    loadgen.killAll();
    process.exit(1);
});
