'use strict';
// Echo benchmark: the same flow on core Node-RED and on ours, alternating, in
// the same run; prints medians and ratios (ours / core). Loopback only; each
// load run is bounded by --seconds.
//
//   node bench/run.js [--rounds 3] [--seconds 5] [--conns 16] [--inflight 16] [--size 64]

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { root } = require('../scripts/userdir');
const { startNodeRed: start } = require('../tests/nodered');
const { parseOptions } = require('./options');

const args = parseOptions({ rounds: 3, seconds: 5, conns: 16, inflight: 16, size: 64 }, process.argv.slice(2));

const ECHO_FLOW = [
    { id: 'bench-tab', type: 'tab', label: 'bench' },
    { id: 'bench-l', type: 'websocket-listener', path: '/bench/echo', wholemsg: 'false' },
    { id: 'bench-in', type: 'websocket in', z: 'bench-tab', server: 'bench-l', client: '', wires: [['bench-out']] },
    { id: 'bench-out', type: 'websocket out', z: 'bench-tab', server: 'bench-l', client: '', wires: [] }
];

function cpuSeconds(pid) {
    const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, USER_HZ = 100
}

/** Node-RED with the echo flow: 'core' is plain Node-RED, 'ours' loads this package. */
async function startNodeRed(variant) {
    const nr = await start({
        withPackage: variant === 'ours',
        flows: ECHO_FLOW,
        settings: { logging: { console: { level: 'warn' } } },
        stderr: 'inherit',
        prefix: 'wsrs-bench-' + variant + '-'
    }).catch((err) => {
        throw new Error(variant + ': Node-RED did not start: ' + err.message);
    });
    await new Promise((r) => setTimeout(r, 300));
    return nr;
}

function loadgen(url) {
    const bin = path.join(__dirname, 'loadgen', 'target', 'release', 'websocket-rs-loadgen');
    const out = execFileSync(bin, ['echo', '--url', url, '--conns', args.conns, '--inflight', args.inflight, '--size', args.size, '--seconds', args.seconds].map(String), { encoding: 'utf8', timeout: (args.seconds + 30) * 1000 });
    return JSON.parse(out.trim().split('\n').pop());
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function main() {
    execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', path.join(__dirname, 'loadgen', 'Cargo.toml')], { stdio: 'inherit' });
    if (!fs.existsSync(path.join(root, 'native'))) throw new Error('build the addon first: npm run build');
    const results = { core: [], ours: [] };
    for (let round = 0; round < args.rounds; round++) {
        for (const variant of round % 2 ? ['ours', 'core'] : ['core', 'ours']) {
            const nr = await startNodeRed(variant);
            try {
                loadgen('ws://127.0.0.1:' + nr.port + '/bench/echo'); // warm-up is the first second of a short run
                const cpu0 = cpuSeconds(nr.child.pid);
                const r = loadgen('ws://127.0.0.1:' + nr.port + '/bench/echo');
                r.cpu = cpuSeconds(nr.child.pid) - cpu0;
                r.cpuPerMsgUs = r.msgs ? (r.cpu / r.msgs) * 1e6 : 0;
                results[variant].push(r);
                console.error(variant + ' round ' + (round + 1) + ': ' + Math.round(r.rate) + ' msgs/s, p99 ' + r.p99_us + ' µs, errors ' + r.errors);
            } finally {
                await nr.stop(); // SIGINT (SIGKILL after 10 s), user dir removed
            }
        }
    }
    const row = (name, key, fmt) => {
        const c = median(results.core.map((r) => r[key]));
        const o = median(results.ours.map((r) => r[key]));
        return '| ' + name + ' | ' + fmt(c) + ' | ' + fmt(o) + ' | ' + (c ? (o / c).toFixed(2) : '-') + ' |';
    };
    const int = (x) => String(Math.round(x));
    console.log('echo, ' + args.conns + ' connections × ' + args.inflight + ' in flight, ' + args.size + ' B, ' + args.seconds + ' s × ' + args.rounds + ' rounds (medians)');
    console.log('| metric | core | ours | ours / core |');
    console.log('| --- | --- | --- | --- |');
    console.log(row('round trips / s', 'rate', int));
    console.log(row('p50 latency (µs)', 'p50_us', int));
    console.log(row('p99 latency (µs)', 'p99_us', int));
    console.log(row('Node-RED CPU µs / msg', 'cpuPerMsgUs', (x) => x.toFixed(2)));
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
