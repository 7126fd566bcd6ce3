'use strict';
// Every benchmark scenario in one command: core Node-RED, Node-RED with this
// package and, where it applies, a plain tokio-tungstenite server (the ceiling),
// measured side by side in each round, alternating which goes first (ingest also
// runs Node-RED fed without transport, the limit, in each Node-RED around its
// flood); medians of the rounds, ratios, results.json and chart.svg. Loopback
// only; every run is bounded and stops by itself.
//
//   npm run bench [-- --rounds 3] [--seconds 5] [--warmup 1] [--settle 1] [--only echo,latency,ingest,fanout,idle]
//                 [--cases idle-5000-] [--smoke] [--out DIR] [--write-results]

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync, execFileSync } = require('child_process');
const loadgen = require('./lib/loadgen');
const nodered = require('./lib/nodered');
const { fdLimits, machine, loadavg } = require('./lib/proc');
const { median, int } = require('./lib/stats');
const report = require('./lib/report');
const { svg } = require('./chart');
const { delay } = require('./lib/measure');

const root = path.join(__dirname, '..');

/** Runs this script again with the descriptor soft limit raised to the hard one (children inherit it). */
function raiseFdLimit() {
    const { soft, hard } = fdLimits();
    if (soft >= hard || process.env.WSRS_BENCH_FDS_RAISED) return;
    const nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8'));
    const to = Math.min(hard, nrOpen);
    const r = spawnSync('/bin/sh', ['-c', 'ulimit -n "$0" && exec "$@"', String(to), process.execPath, __filename, ...process.argv.slice(2)], {
        stdio: 'inherit',
        env: { ...process.env, WSRS_BENCH_FDS_RAISED: '1' }
    });
    process.exit(r.status === null ? 1 : r.status);
}

function parseArgs(argv) {
    const o = { rounds: 3, seconds: 5, warmup: 1, settle: 1, only: null, cases: null, smoke: false, out: null, writeResults: false };
    const numbers = ['rounds', 'seconds', 'warmup', 'settle'];
    for (let i = 0; i < argv.length; i++) {
        const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
        if (key === 'smoke' || key === 'writeResults') {
            o[key] = true;
        } else if (numbers.includes(key) || key === 'only' || key === 'cases' || key === 'out') {
            const v = argv[++i];
            if (v === undefined) throw new Error(argv[i - 1] + ' needs a value');
            o[key] = numbers.includes(key) ? Number(v) : v;
            if (numbers.includes(key) && !(o[key] >= 0)) throw new Error(argv[i - 1] + ' needs a number');
        } else {
            throw new Error('unknown option ' + argv[i]);
        }
    }
    if (o.smoke) {
        const given = new Set(argv.map((a) => a.replace(/^--/, '')));
        for (const [k, v] of Object.entries({ rounds: 1, seconds: 0.5, warmup: 0.25, settle: 0.3 })) if (!given.has(k)) o[k] = v;
    }
    o.rounds = Math.max(1, Math.round(o.rounds));
    o.sizeLabel = (size) => (size >= 1024 && size % 1024 === 0 ? size / 1024 + ' KiB' : size + ' B');
    const ids = report.SCENARIOS.map((s) => s.id);
    o.scenarios = o.only ? o.only.split(',').map((s) => s.trim()).filter(Boolean) : ids;
    for (const id of o.scenarios) if (!ids.includes(id)) throw new Error('unknown scenario ' + id + ' (' + ids.join(', ') + ')');
    if (o.smoke && o.writeResults) throw new Error('--smoke results are not measurements: no --write-results');
    if (o.cases && o.writeResults) throw new Error('--cases leaves cases out: no --write-results');
    o.casePrefixes = o.cases ? o.cases.split(',').map((s) => s.trim()).filter(Boolean) : null;
    return o;
}

const rotate = (xs, n) => xs.map((_, i) => xs[(i + n) % xs.length]);
const log = (s) => process.stderr.write(s + '\n');

function meta(o, started) {
    const git = (...args) => { try { return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim(); } catch (err) { return ''; } };
    const coreWs = require(require.resolve('ws/package.json', { paths: [path.dirname(require.resolve('@node-red/nodes/package.json', { paths: [root] }))] })).version;
    const args = process.argv.slice(2).join(' ');
    return {
        date: started.toISOString().slice(0, 10),
        commit: git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--', 'src', 'nodes', 'index.js') ? ' (with uncommitted changes)' : ''),
        machine: machine(),
        node: process.version,
        nodeRed: require(require.resolve('node-red/package.json', { paths: [root] })).version,
        coreWs,
        command: 'npm run bench' + (args ? ' -- ' + args : ''),
        rounds: o.rounds,
        seconds: o.seconds,
        warmup: o.warmup,
        smoke: o.smoke,
        scenarios: o.scenarios,
        // The addon's worker threads, when set rather than chosen from the core count.
        workers: process.env.WSRS_WORKERS || undefined
    };
}

async function main() {
    raiseFdLimit();
    const o = parseArgs(process.argv.slice(2));
    const started = new Date();
    const loadavgStart = loadavg();
    const outDir = o.out ? path.resolve(o.out) : o.smoke ? fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-bench-smoke-')) : __dirname;
    fs.mkdirSync(outDir, { recursive: true });
    log('building the load generator (cargo, cached in bench/loadgen/target)');
    loadgen.build();
    if (!fs.readdirSync(path.join(root, 'native')).some((f) => f.endsWith('.node'))) throw new Error('no addon in native/: npm run build first');

    const scenarios = report.SCENARIOS.filter((s) => o.scenarios.includes(s.id));
    const wanted = (c) => !o.casePrefixes || o.casePrefixes.some((p) => c.id.startsWith(p));
    const cases = scenarios.map((sc) => ({ sc, list: sc.cases(o).filter(wanted) })).filter(({ list }) => list.length);
    const store = {};
    const live = { nr: {}, ceiling: null };
    const ctx = {
        opts: o,
        log,
        nr: live.nr,
        valuesOf: (caseId, variant, metric) => ((store[caseId] || {})[variant] || []).map((m) => m[metric]),
        target(variant, nrPath, ceilingPath) {
            if (variant === 'ceiling') return { url: 'ws://127.0.0.1:' + live.ceiling.port + ceilingPath, pid: live.ceiling.pid };
            return { url: live.nr[variant].url(nrPath), pid: live.nr[variant].pid };
        }
    };
    const stopLive = async () => {
        const stopping = Object.values(live.nr).map((nr) => nr.stop().catch(() => null));
        for (const k of Object.keys(live.nr)) delete live.nr[k];
        if (live.ceiling) {
            live.ceiling.release();
            stopping.push(live.ceiling.done.catch(() => null));
            live.ceiling = null;
        }
        await Promise.all(stopping);
    };
    const onSignal = (sig) => {
        log('bench: ' + sig + ', stopping what it started');
        loadgen.killAll();
        stopLive().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    for (let round = 0; round < o.rounds; round++) {
        ctx.round = round;
        const shared = scenarios.filter((s) => !s.fresh);
        try {
            if (shared.length) {
                log('round ' + (round + 1) + '/' + o.rounds + ': starting core and ours Node-RED and the ceiling server');
                const up = await Promise.allSettled(['core', 'ours'].map((v) => nodered.start(v).then((nr) => { live.nr[v] = nr; })));
                const failed = up.find((u) => u.status === 'rejected');
                if (failed) throw failed.reason; // what did start is stopped below
                live.ceiling = loadgen.session('serve', { threads: 2, maxSeconds: 7200 }, 7260 * 1000);
                live.ceiling.port = (await live.ceiling.next('listening')).port;
            }
            for (const { sc, list } of cases) {
                for (const [i, c] of list.entries()) {
                    for (const variant of rotate(sc.variants, round + i)) {
                        const m = await sc.measure(ctx, c, variant);
                        ((store[c.id] = store[c.id] || {})[variant] = store[c.id][variant] || []).push(m);
                        log('round ' + (round + 1) + ' ' + sc.id + ' ' + c.label + ' ' + variant + ': ' + sc.show(m));
                        await delay(o.settle * 1000); // the last run's connections wind down before the next
                    }
                }
                if (sc.id === shared[shared.length - 1]?.id) await stopLive();
            }
        } finally {
            await stopLive();
        }
    }

    const results = { meta: { ...meta(o, started), loadavgStart, loadavgEnd: loadavg(), duration: Math.round((Date.now() - started) / 1000) + ' s in all' }, scenarios: [] };
    for (const { sc, list } of cases) {
        const entry = { id: sc.id, title: sc.title, cases: [] };
        for (const c of list) {
            const medians = {};
            for (const v of sc.variants) {
                const runs = store[c.id][v];
                medians[v] = {};
                for (const key of Object.keys(runs[0])) {
                    medians[v][key] = typeof runs[0][key] === 'number' ? median(runs.map((r) => r[key])) : runs[runs.length - 1][key];
                }
            }
            // Each ratio is the median of the rounds' own ratios: within a round the variants
            // run back to back, so a machine whose load drifts between rounds skews them less.
            const perRound = store[c.id][sc.variants[0]].map((_, k) => sc.ratios(c, Object.fromEntries(sc.variants.map((v) => [v, store[c.id][v][k]]))));
            const ratios = sc.ratios(c, medians).map((r, i) => {
                const value = median(perRound.map((rs) => rs[i].value));
                return { ...r, value, rounds: perRound.map((rs) => (Number.isFinite(rs[i].value) ? rs[i].value : null)) };
            });
            entry.cases.push({ ...c, runs: store[c.id], medians, ratios });
        }
        results.scenarios.push(entry);
    }
    const mt = results.meta;
    process.stdout.write(report.text(results));
    fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 1) + '\n');
    fs.writeFileSync(path.join(outDir, 'chart.svg'), svg(results));
    log('wrote ' + path.join(outDir, 'results.json') + ' and chart.svg (' + mt.duration + ')');
    if (o.writeResults) {
        report.writeDocs(results);
        log('updated the generated blocks of bench/RESULTS.md and README.md');
    }
}

main().catch((err) => {
    log(err && err.stack ? err.stack : String(err));
    loadgen.killAll();
    process.exit(1);
});
