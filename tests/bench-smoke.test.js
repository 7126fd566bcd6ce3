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
const MEASURED = { echo: ['rate', 'p99'], latency: ['rate', 'p99'], ingest: ['rate', 'cpuUs'], fanout: ['rate', 'perCpu'], rooms: ['rate', 'perCpu'], idle: ['held'] };

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
        assert.deepStrictEqual(variants('ingest'), ['core', 'limit', 'ours']);
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

    it('takes the scenarios of a later run in place of a full run\'s, and says so in the header', function () {
        assert.ok(results, 'the smoke run gave no results');
        const full = { ...results, meta: { ...results.meta, smoke: false } };
        const idle = full.scenarios.find((sc) => sc.id === 'idle');
        const again = { ...idle, cases: idle.cases.map((c) => ({ ...c, note: 'again' })) };
        const later = { meta: { ...full.meta, command: 'npm run bench -- --only idle', date: '2099-01-01', commit: 'abc1234' }, scenarios: [again] };
        const merged = report.replaceScenarios(full, later);
        assert.deepStrictEqual(merged.scenarios.map((sc) => sc.id), full.scenarios.map((sc) => sc.id));
        assert.strictEqual(merged.scenarios.find((sc) => sc.id === 'idle'), again);
        assert.strictEqual(merged.scenarios.find((sc) => sc.id === 'echo'), full.scenarios.find((sc) => sc.id === 'echo'));
        assert.match(report.text(merged), /- Idle memory from a later run, which replaced those figures: `npm run bench -- --only idle` on 2099-01-01, commit abc1234/);
        // A second rerun of the same scenario replaces the first one's note.
        assert.strictEqual(report.replaceScenarios(merged, later).meta.reruns.length, 1);
        assert.throws(() => report.replaceScenarios(full, { ...later, meta: { ...later.meta, smoke: true } }), /smoke/);
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
