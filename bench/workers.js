'use strict';
// One tokio worker against two (WSRS_WORKERS) on the echo flow: a fresh Node-RED
// with this package per round and worker count, the counts alternating which goes
// first; msgs/s (medians and every round) and server CPU per echo (medians).
//
//   node bench/workers.js [--rounds 3] [--seconds 5] [--workers 2]

const nodered = require('./lib/nodered');
const loadgen = require('./lib/loadgen');
const { windowed, delay } = require('./lib/measure');
const { median, int } = require('./lib/stats');
const { parseOptions } = require('./options');

const args = parseOptions({ rounds: 3, seconds: 5, workers: 2 }, process.argv.slice(2));
const CASES = [[16, 64], [64, 64], [16, 4096]];
if (args.workers < 2 || args.workers > 64) throw new Error('--workers: 2 to 64, compared with one');

async function main() {
    loadgen.build();
    const counts = ['1', String(args.workers)];
    const runs = {};
    for (let round = 0; round < args.rounds; round++) {
        for (const workers of round % 2 ? [...counts].reverse() : counts) {
            const nr = await nodered.start('ours', { env: { ...process.env, WSRS_WORKERS: workers } });
            try {
                for (const [conns, size] of CASES) {
                    const r = await windowed('echo', { url: nr.url('/bench/echo'), conns, inflight: 16, size, warmup: 1, seconds: args.seconds }, nr.pid);
                    const key = conns + ' connections, ' + size + ' B';
                    ((runs[key] ||= {})[workers] ||= []).push({ rate: r.result.rate, cpuUs: (r.serverCpu / r.result.msgs) * 1e6 });
                    await delay(1000);
                }
            } finally {
                await nr.stop();
            }
        }
    }
    console.log('| echo | workers | msgs/s (median; rounds) | server CPU µs/msg | ÷ one worker |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const [key, byCount] of Object.entries(runs)) {
        const one = median(byCount['1'].map((x) => x.rate));
        for (const workers of counts) {
            const rows = byCount[workers];
            const rate = median(rows.map((x) => x.rate));
            console.log('| ' + [key, workers, int(rate) + ' (' + rows.map((x) => int(x.rate)).join(', ') + ')',
                median(rows.map((x) => x.cpuUs)).toFixed(2), (rate / one).toFixed(2)].join(' | ') + ' |');
        }
    }
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
