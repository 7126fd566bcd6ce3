'use strict';
// Markdown from results.json: the run's header, a table per scenario, the
// targets, and the generated blocks of bench/RESULTS.md and README.md.

const fs = require('fs');
const path = require('path');
const { fixed } = require('./stats');

const SCENARIOS = ['echo', 'latency', 'ingest', 'fanout', 'rooms', 'idle'].map((id) => require('../scenarios/' + id));

function verdict(r) {
    if (!r.target || r.value === null) return '';
    return (r.target.op === '>=' ? r.value >= r.target.value : r.value <= r.target.value) ? 'yes' : 'no';
}

function targetText(t) {
    return t ? (t.op === '>=' ? '≥ ' : '≤ ') + (Math.abs(t.value - 1 / 3) < 1e-9 ? '⅓' : String(t.value)) : '';
}

/** Ratio entries of a case by key, with fmt(key) for the tables. */
function ratioView(ratios) {
    const byKey = Object.fromEntries(ratios.map((r) => [r.key, r]));
    return { fmt: (key) => (byKey[key] && byKey[key].value !== null ? fixed(2)(byKey[key].value) : '-') };
}

/** "load average a, b, c at the start, ... at the end (1, 5 and 15 min)", from what the run recorded. */
function loads(meta) {
    const at = [['loadavgStart', 'at the start'], ['loadavgEnd', 'at the end']].filter(([k]) => meta[k]).map(([k, when]) => meta[k].join(', ') + ' ' + when);
    return at.length ? 'load average ' + at.join(', ') + ' (1, 5 and 15 min)' : 'load average not recorded';
}

function header(meta) {
    const m = meta.machine;
    return [
        '- Date: ' + meta.date + '; commit ' + meta.commit + '.',
        '- Machine: ' + m.cpus + ' × ' + m.cpuModel + ', ' + m.memGiB + ' GiB, ' + m.os + ' (kernel ' + m.kernel + '); ' + loads(meta) + '.',
        '- Node ' + meta.node + ', Node-RED ' + meta.nodeRed + ' (core nodes on `ws` ' + meta.coreWs + '), load generator and ceiling server `bench/loadgen` (tokio-tungstenite; one worker thread for the load, two for the server, which has no JS thread beside it)' + (meta.workers ? '; `WSRS_WORKERS=' + meta.workers + '` set for ours' : '') + '.',
        '- Command: `' + meta.command + '`: ' + meta.rounds + ' round(s), ' + meta.warmup + ' s warm-up + ' + meta.seconds + ' s measured per run; figures are medians of the rounds, ratios the medians of each round\'s own ratio (the variants of a round run back to back); ' + meta.duration + '.',
        ...(meta.reruns || []).map((r) => '- ' + r.titles.join(', ') + ' from a later run, which replaced those figures: `' + shownCommand(r.command) + '` on ' + r.date + ', commit ' + r.commit + ', ' + r.rounds + ' round(s), ' + loads(r) + ', ' + r.duration + '.')
    ].join('\n');
}

/** A run's command as the documents show it: without where it wrote its output. */
const shownCommand = (command) => command.replace(/\s+--out\s+\S+/, '');

/**
 * `results` with the scenarios that `rerun` measured taken from it, and the rerun
 * noted in the header (a scenario measured again after a change to its method,
 * without running every other one again). The rerun must cover every case of a
 * scenario it replaces, on the same machine and versions.
 */
function replaceScenarios(results, rerun) {
    if (rerun.meta.smoke) throw new Error('a smoke run\'s results are not measurements');
    for (const key of ['machine', 'node', 'nodeRed', 'coreWs']) {
        if (JSON.stringify(rerun.meta[key]) !== JSON.stringify(results.meta[key])) throw new Error('the later run differs in ' + key + ': not comparable');
    }
    const scenarios = [...results.scenarios];
    for (const sc of rerun.scenarios) {
        const at = scenarios.findIndex((s) => s.id === sc.id);
        if (at < 0) {
            scenarios.push(sc);
            continue;
        }
        const missing = scenarios[at].cases.map((c) => c.id).filter((id) => !sc.cases.some((c) => c.id === id));
        if (missing.length) throw new Error('the later run of ' + sc.id + ' lacks ' + missing.join(', ') + ': run every case of it');
        scenarios[at] = sc;
    }
    const m = rerun.meta;
    const titles = rerun.scenarios.map((sc) => SCENARIOS.find((s) => s.id === sc.id).title);
    const note = { titles, command: m.command, date: m.date, commit: m.commit, rounds: m.rounds, loadavgStart: m.loadavgStart, loadavgEnd: m.loadavgEnd, duration: m.duration };
    // An earlier rerun keeps only the scenarios this one did not replace.
    const reruns = (results.meta.reruns || [])
        .map((r) => ({ ...r, titles: r.titles.filter((t) => !titles.includes(t)) }))
        .filter((r) => r.titles.length);
    return { ...results, meta: { ...results.meta, reruns: [...reruns, note] }, scenarios };
}

function tables(results) {
    const out = [];
    for (const sc of results.scenarios) {
        const mod = SCENARIOS.find((s) => s.id === sc.id);
        out.push('### ' + mod.title, '', mod.what, '');
        out.push(...mod.table(sc.cases.map((c) => ({ c, m: c.medians, r: ratioView(c.ratios) }))), '');
    }
    return out.join('\n');
}

function targets(results) {
    const rows = ['| ratio | measured | target | met |', '| --- | --- | --- | --- |'];
    for (const sc of results.scenarios) {
        for (const c of sc.cases) {
            for (const r of c.ratios) {
                if (!r.target && !r.ceiling) continue;
                rows.push('| ' + [r.label, fixed(2)(r.value), r.target ? targetText(r.target) : '(ceiling)', verdict(r)].join(' | ') + ' |');
            }
        }
    }
    return rows.join('\n');
}

/** Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in `file`. */
function writeBlock(file, name, text) {
    const open = '<!-- bench:' + name + ' -->';
    const close = '<!-- /bench:' + name + ' -->';
    const src = fs.readFileSync(file, 'utf8');
    const a = src.indexOf(open);
    const b = src.indexOf(close);
    if (a < 0 || b < a) throw new Error(file + ' has no ' + open + ' … ' + close + ' block');
    fs.writeFileSync(file, src.slice(0, a + open.length) + '\n' + text.trim() + '\n' + src.slice(b));
}

/** The whole report: header, tables and targets. */
function text(results) {
    return [header(results.meta), '', tables(results), '### Targets', '', targets(results), ''].join('\n');
}

/** Rewrites the generated blocks of bench/RESULTS.md and README.md from `results`. */
function writeDocs(results) {
    const m = results.meta;
    if (m.smoke) throw new Error('a smoke run\'s results are not measurements: not written into the documents');
    const bench = path.join(__dirname, '..');
    writeBlock(path.join(bench, 'RESULTS.md'), 'results', text(results));
    const reruns = (m.reruns || []).map((r) => '; ' + r.titles.join(', ') + ' from a later run of ' + r.rounds + ' rounds (`' + shownCommand(r.command) + '`, ' + r.date + ')').join('');
    const when = 'Last run: ' + m.date + ', ' + m.machine.cpus + ' cores (' + m.machine.cpuModel + '), Node ' + m.node + ', Node-RED ' + m.nodeRed +
        ', medians of ' + m.rounds + ' rounds (`' + m.command + '`' + reruns + '):';
    writeBlock(path.join(bench, '..', 'README.md'), 'summary', when + '\n\n' + targets(results));
}

module.exports = { text, targets, writeDocs, replaceScenarios, SCENARIOS };

// `node bench/lib/report.js [results.json]`: the documents again from saved results.
// `node bench/lib/report.js --replace OTHER/results.json`: bench/results.json with
// the scenarios of that run (e.g. `npm run bench -- --only idle --out OTHER`) in
// place of its own, then its chart and the documents.
if (require.main === module) {
    const saved = path.join(__dirname, '..', 'results.json');
    const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
    if (process.argv[2] === '--replace') {
        if (!process.argv[3]) throw new Error('usage: node bench/lib/report.js --replace DIR/results.json');
        const merged = replaceScenarios(read(saved), read(process.argv[3]));
        const chart = require('../chart').svg(merged);
        writeDocs(merged); // first: it refuses what it cannot write, before anything else is
        fs.writeFileSync(saved, JSON.stringify(merged, null, 1) + '\n');
        fs.writeFileSync(path.join(__dirname, '..', 'chart.svg'), chart);
        console.log('replaced ' + merged.meta.reruns[merged.meta.reruns.length - 1].titles.join(', ') + ' in ' + saved + ', chart.svg and the documents');
    } else {
        const file = process.argv[2] || saved;
        writeDocs(read(file));
        console.log('rewrote the generated blocks of bench/RESULTS.md and README.md from ' + file);
    }
}
