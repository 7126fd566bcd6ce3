'use strict';
// The benchmark harness in its smoke mode (`npm run bench -- --smoke`): every
// scenario for about a second, one round, small counts, its output written to a
// temporary directory. It asserts that the bench completed and measured
// something on every variant, never how fast: this keeps the bench from rotting.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { fit } = require('../bench/scenarios/idle');
const { rows } = require('../bench/chart');
const report = require('../bench/lib/report');

const BENCH = path.join(__dirname, '..', 'bench', 'bench.js');
const SCENARIOS = ['echo', 'latency', 'ingest', 'fanout', 'rooms', 'idle'];
// The measurement each scenario cannot do without, per variant.
const MEASURED = { echo: ['rate', 'p99'], latency: ['rate', 'p99'], ingest: ['rate', 'cpuUs', 'limitRate', 'limitCpuUs'], fanout: ['rate', 'perCpu'], rooms: ['rate', 'perCpu'], idle: ['held'] };

/** Runs the bench to its end, bounded: SIGTERM (it stops what it started), then SIGKILL. */
function runBench(args, ms) {
    return new Promise((resolve) => {
        const child = spawn(process.execPath, [BENCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (s) => { stdout += s; });
        child.stderr.on('data', (s) => { stderr += s; });
        const term = setTimeout(() => child.kill('SIGTERM'), ms);
        const kill = setTimeout(() => child.kill('SIGKILL'), ms + 20000);
        child.on('close', (code, signal) => {
            clearTimeout(term);
            clearTimeout(kill);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

describe('bench: npm run bench -- --smoke', function () {
    const committed = ['results.json', 'chart.svg'].map((f) => path.join(__dirname, '..', 'bench', f));
    const stamp = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : null);
    let out = null;
    let run = null;
    let results = null;
    let before0 = null;

    before(async function () {
        // A clean clone builds bench/loadgen first (cargo, release; cached afterwards).
        this.timeout(420000);
        out = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-bench-smoke-test-'));
        before0 = committed.map(stamp);
        run = await runBench(['--smoke', '--out', out], 360000);
        if (run.code === 0) results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    });

    after(function () {
        if (out) fs.rmSync(out, { recursive: true, force: true });
    });

    it('completes, writing results.json and chart.svg to --out, not over the committed ones', function () {
        assert.strictEqual(run.code, 0, 'bench exited with ' + (run.signal || run.code) + ':\n' + run.stderr.slice(-3000));
        assert.ok(fs.statSync(path.join(out, 'chart.svg')).size > 0);
        assert.deepStrictEqual(committed.map(stamp), before0);
        assert.strictEqual(results.meta.smoke, true);
    });

    it('runs every scenario, each case on every variant, with non-zero measurements', function () {
        assert.deepStrictEqual(results.scenarios.map((s) => s.id), SCENARIOS);
        for (const sc of results.scenarios) {
            assert.ok(sc.cases.length > 0, sc.id + ' has no case');
            for (const c of sc.cases) {
                const variants = Object.keys(c.runs);
                assert.ok(variants.includes('core') && variants.includes('ours'), c.id + ': ' + variants);
                for (const v of variants) {
                    for (const key of MEASURED[sc.id]) {
                        const value = c.runs[v][0][key];
                        assert.ok(Number.isFinite(value) && value > 0, c.id + ' ' + v + ' ' + key + ' = ' + value);
                    }
                }
                for (const r of c.ratios) assert.ok(Number.isFinite(r.value), c.id + ' ' + r.key + ' = ' + r.value);
            }
        }
        const variants = (id) => Object.keys(results.scenarios.find((s) => s.id === id).cases[0].runs).sort();
        assert.deepStrictEqual(variants('echo'), ['ceiling', 'core', 'ours']);
        assert.deepStrictEqual(variants('fanout'), ['ceiling', 'core', 'ours']);
        assert.deepStrictEqual(variants('ingest'), ['core', 'ours']);
        assert.deepStrictEqual(variants('rooms'), ['core', 'ours', 'ours-fn']);
        assert.ok(Number.isFinite(results.scenarios.find((s) => s.id === 'idle').cases[0].medians.ours.perConn));
    });

    it('prints a table per scenario and the targets', function () {
        for (const title of ['### Echo', '### Latency', '### Ingest', '### Fan-out', '### Room publishes', '### Idle memory', '### Targets']) {
            assert.ok(run.stdout.includes(title), title + ' missing from:\n' + run.stdout);
        }
    });

    it('charts a bar per ratio, with the reference line and each target marked', function () {
        const svg = fs.readFileSync(path.join(out, 'chart.svg'), 'utf8');
        const drawn = rows(results);
        const ratios = results.scenarios.flatMap((s) => s.cases.flatMap((c) => c.ratios));
        assert.strictEqual(drawn.length, ratios.length);
        assert.strictEqual((svg.match(/<rect x=/g) || []).length, drawn.length);
        assert.strictEqual((svg.match(/<path d=/g) || []).length, drawn.filter((r) => r.target !== null).length);
        assert.ok(svg.includes('stroke="#000" stroke-width="1.5"'), 'no reference line at 1');
    });

    it('holds no more idle connections than fit the descriptor limit, and says so', function () {
        assert.deepStrictEqual(fit(5000, 20000, 40), { held: 5000, note: '' });
        assert.deepStrictEqual(fit(50000, 20000, 40), {
            held: 19000,
            note: '50 000 requested, 19 000 held: hard limit of descriptors per process is 20000 here'
        });
        assert.strictEqual(fit(50000, 1024, 40).held, 0);
    });
});

describe('bench: ingest results saved before the limit ran in each Node-RED', function () {
    it('are refused with a clear error, not shown with blank limits under the new method', function () {
        const ingest = require('../bench/scenarios/ingest');
        const old = { core: { rate: 1, cpuUs: 1, busy: 1 }, ours: { rate: 1, cpuUs: 1, busy: 1 }, limit: { rate: 1, cpuUs: 1, busy: 1 } };
        assert.throws(() => ingest.table([{ c: { label: 'x' }, m: old, r: { fmt: () => '1' } }]), /rerun the ingest scenario/);
        const now = { core: { ...old.core, limitRate: 1, limitBefore: 1, limitAfter: 1, limitCpuUs: 1 }, ours: { ...old.ours, limitRate: 1, limitBefore: 1, limitAfter: 1, limitCpuUs: 1 } };
        assert.strictEqual(ingest.table([{ c: { label: 'x' }, m: now, r: { fmt: () => '1' } }]).length, 3);
    });
});

describe('bench: a later run of some scenarios in place of a full run\'s (report.js --replace)', function () {
    const meta = (over) => ({ date: '2026-12-01', commit: 'aaa1111', machine: { cpus: 2, cpuModel: 'X', memGiB: 1, os: 'Y', kernel: 'Z' }, node: 'v20', nodeRed: '4.1.8', coreWs: '7.5.10',
        command: 'npm run bench -- --rounds 3', rounds: 3, seconds: 5, warmup: 1, smoke: false, loadavgStart: [1, 1, 1], loadavgEnd: [1, 1, 1], duration: '1 s in all', ...over });
    const idleCase = (id, perConn) => ({ id, label: id, count: 5000, size: 64,
        medians: { core: { perConn: 4096, held: 5000, note: '' }, ours: { perConn, held: 5000, note: '' } },
        ratios: [{ key: 'mem', label: 'idle ' + id, value: perConn / 4096, target: { op: '<=', value: 1 / 3 } }] });
    const echoCase = { id: 'echo-16-64', label: 'e', medians: { core: { rate: 1, p99: 1, cpuUs: 1 }, ours: { rate: 2, p99: 1, cpuUs: 1 }, ceiling: { rate: 3, p99: 1, cpuUs: 1 } },
        ratios: [{ key: 'vsCore', label: 'echo', value: 2, target: { op: '>=', value: 2 } }, { key: 'vsCeiling', label: 'echo c', value: 0.6, ceiling: true }] };
    const full = { meta: meta(), scenarios: [{ id: 'echo', cases: [echoCase] }, { id: 'idle', cases: [idleCase('idle-5000-64', 1024), idleCase('idle-5000-4096', 2048)] }] };
    const idleAgain = { id: 'idle', cases: [idleCase('idle-5000-64', 512), idleCase('idle-5000-4096', 1536)] };
    const later = { meta: meta({ command: 'npm run bench -- --only idle --out /tmp/x', date: '2099-01-01', commit: 'bbb2222' }), scenarios: [idleAgain] };

    it('takes the later scenarios, keeps the others, and says so in the header without the output directory', function () {
        const merged = report.replaceScenarios(full, later);
        assert.deepStrictEqual(merged.scenarios.map((sc) => sc.id), ['echo', 'idle']);
        assert.strictEqual(merged.scenarios[1], idleAgain);
        assert.strictEqual(merged.scenarios[0], full.scenarios[0]);
        const text = report.text(merged);
        assert.match(text, /- Idle memory from a later run, which replaced those figures: `npm run bench -- --only idle` on 2099-01-01, commit bbb2222, 3 round\(s\)/);
        assert.match(text, /\| idle idle-5000-64 \| 0\.13 \|/);
    });

    it('keeps of an earlier later run only the scenarios the new one did not replace', function () {
        const both = { meta: meta({ command: 'npm run bench -- --only echo,idle', commit: 'ccc3333' }), scenarios: [{ id: 'echo', cases: [echoCase] }, idleAgain] };
        const merged = report.replaceScenarios(report.replaceScenarios(full, both), later);
        assert.deepStrictEqual(merged.meta.reruns.map((r) => [r.commit, r.titles]), [['ccc3333', ['Echo']], ['bbb2222', ['Idle memory']]]);
        assert.strictEqual(report.replaceScenarios(merged, later).meta.reruns.length, 2);
    });

    it('refuses a smoke run, a run with cases left out, and one on another machine or version', function () {
        assert.throws(() => report.replaceScenarios(full, { ...later, meta: { ...later.meta, smoke: true } }), /smoke/);
        assert.throws(() => report.replaceScenarios(full, { ...later, scenarios: [{ id: 'idle', cases: [idleCase('idle-5000-64', 512)] }] }), /lacks idle-5000-4096/);
        assert.throws(() => report.replaceScenarios(full, { ...later, meta: { ...later.meta, nodeRed: '5.0.0' } }), /differs in nodeRed/);
    });
});
