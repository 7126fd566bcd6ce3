'use strict';
// Cross-instance broadcast against local broadcast, in one run (issue 15): one
// redis-server and two Node-RED processes with this package. Each runs two
// listeners, /ws/b on a Pub/Sub cluster node and /ws/s on a Streams one; A's
// flow sends every broadcast of its publisher to both. S subscribers on A's
// /ws/b get them locally, S on B's /ws/b through Pub/Sub and S on B's /ws/s
// through a Redis Stream: same broadcasts, same run, so the rows differ only
// by the way across.
//
//   node bench/cluster.js [--subs 50] [--rate 2000] [--seconds 5] [--burst 20000]
//
// Phase 1 (latency): --rate broadcasts a second for --seconds, each carrying its
// send time; p50/p99 from send to receipt, per side. Phase 2 (throughput): --burst
// broadcasts sent at once; frames delivered per second per side, from the first
// send to the last receipt. Everything is bounded; all processes started here are
// stopped by PID.

const { WebSocket, delay, until } = require('../tests/support');
const { startNodeRed, freePort } = require('../tests/nodered');
const { startRedis } = require('../tests/cluster/redis');

function arg(name, dflt) {
    const i = process.argv.indexOf('--' + name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const SUBS = arg('subs', 50);
const RATE = arg('rate', 2000);
const SECONDS = arg('seconds', 5);
const BURST = arg('burst', 20000);

function flow(redisPort) {
    const url = 'redis://127.0.0.1:' + redisPort;
    return [
        { id: 'tab', type: 'tab', label: 'bench' },
        { id: 'cl', type: 'websocket-cluster', url, prefix: 'bench:' },
        { id: 'cs', type: 'websocket-cluster', url, prefix: 'bench-s:', mode: 'streams' },
        { id: 'l', type: 'websocket-listener', path: '/ws/b', wholemsg: 'false', cluster: 'cl' },
        { id: 'ls', type: 'websocket-listener', path: '/ws/s', wholemsg: 'false', cluster: 'cs' },
        { id: 'in', type: 'websocket in', z: 'tab', server: 'l', wires: [['fn']] },
        { id: 'fn', type: 'function', z: 'tab', func: 'delete msg._session; return msg;', outputs: 1, wires: [['out', 'outs']] },
        { id: 'out', type: 'websocket out', z: 'tab', server: 'l' },
        { id: 'outs', type: 'websocket out', z: 'tab', server: 'ls' }
    ];
}

function open(url) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
    });
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

function pct(sorted, p) {
    return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

async function main() {
    const redisPort = await freePort();
    const redis = await startRedis(redisPort);
    const nrs = [];
    const all = [];
    try {
        for (let i = 0; i < 2; i++) nrs.push(await startNodeRed({ withPackage: true, flows: flow(redisPort), prefix: 'wsrs-bench-cluster-' }));
        const side = [];
        for (const url of [nrs[0].wsUrl + '/ws/b', nrs[1].wsUrl + '/ws/b', nrs[1].wsUrl + '/ws/s']) {
            const subs = [];
            for (let i = 0; i < SUBS; i++) subs.push(await open(url));
            all.push(...subs);
            side.push({ subs, lat: [], count: 0, last: 0 });
        }
        const pub = await open(nrs[0].wsUrl + '/ws/b');
        all.push(pub);
        for (const s of side) {
            for (const ws of s.subs) {
                ws.on('message', (d) => {
                    const t = now();
                    const text = d.toString();
                    s.count++;
                    s.last = t;
                    if (text.startsWith('L')) s.lat.push(t - Number(text.slice(1)));
                });
            }
        }
        // Linked: a probe crosses.
        await until(() => {
            pub.send('probe');
            return side[1].count > 0 && side[2].count > 0;
        }, 'the cluster link', 20000);
        await delay(500);
        for (const s of side) s.count = 0;

        // Phase 1: paced, with send times.
        const total = RATE * SECONDS;
        const start = now();
        for (let i = 0; i < total; i++) {
            const due = start + (i * 1000) / RATE;
            const wait = due - now();
            if (wait > 1) await delay(wait);
            pub.send('L' + now().toFixed(3));
        }
        await until(() => side.every((s) => s.lat.length >= total * SUBS), 'phase 1 deliveries', 60000).catch(() => {});
        const rows = side.map((s) => {
            const l = s.lat.slice().sort((a, b) => a - b);
            return { got: s.lat.length, p50: pct(l, 0.5), p99: pct(l, 0.99) };
        });

        // Phase 2: a burst, as fast as the publisher's socket takes it.
        for (const s of side) s.count = 0;
        const t0 = now();
        for (let i = 0; i < BURST; i++) pub.send('B' + i);
        await until(() => side.every((s) => s.count >= BURST * SUBS), 'phase 2 deliveries', 120000).catch(() => {});
        const rates = side.map((s) => ({ got: s.count, perSec: s.count / ((s.last - t0) / 1000) }));

        const fmt = (n) => Math.round(n).toLocaleString('en-US').replace(/,/g, ' ');
        console.log(`\n${SUBS} subscribers per row; latency phase ${RATE}/s for ${SECONDS} s; burst ${BURST}.\n`);
        console.log('| delivery | frames delivered (latency phase) | p50 ms | p99 ms | burst: frames delivered | burst: frames/s |');
        console.log('| --- | --- | --- | --- | --- | --- |');
        ['local (instance A)', 'cross-instance, Pub/Sub (A → Redis → B)', 'cross-instance, Streams (A → Redis → B)'].forEach((name, i) => {
            console.log(`| ${name} | ${fmt(rows[i].got)} of ${fmt(total * SUBS)} | ${rows[i].p50.toFixed(2)} | ${rows[i].p99.toFixed(2)} | ${fmt(rates[i].got)} of ${fmt(BURST * SUBS)} | ${fmt(rates[i].perSec)} |`);
        });
    } finally {
        for (const ws of all) ws.terminate();
        for (const nr of nrs) await nr.stop({ signal: 'SIGKILL', ms: 5000 });
        await redis.stop();
    }
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
