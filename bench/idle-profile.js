'use strict';
// Where idle connections' memory goes, core and ours side by side: the idle
// scenario's method (a fresh Node-RED, one connection in the baseline, N more
// held), sampled at several times after the N are up, each sample after a
// garbage collection and a pause. Per connection, for each sample: RSS, its
// anonymous part, V8's heap (used and committed, per space), external and
// ArrayBuffer memory, and glibc's malloc (system and in-use bytes over all arenas,
// read through the library bench/lib/trim.js preloads).
//
//   node bench/idle-profile.js [--conns 5000] [--size 64] [--rounds 1] [--first 1] [--base 1]

const fs = require('fs');
const loadgen = require('./lib/loadgen');
const { start } = require('./lib/nodered');
const { rss } = require('./lib/proc');
const { delay } = require('./lib/measure');
const { median, fixed } = require('./lib/stats');
const { parseOptions } = require('./options');

// Samples after the connections are up: 'burst' 2 s after (gc and a pause, as the
// bench did until 2026-11-30), 'settled' at least 8 s after (past Node-RED's 5 s
// inboundWebSocketTimeout) and once V8 has shrunk its young generation, and 30 s after.
// 'trimmed' is '30 s' after a malloc_trim(0) (bench/lib/trim.js): what glibc holds free.
// The baseline is taken after one too, as in the idle scenario.
const MARKS = ['burst', 'settled', '30 s', 'trimmed'];
const MARK_AT = { burst: 2, settled: 8, '30 s': 30, trimmed: 30 };
const HOLD_SECONDS = 300;

let block = (process.pid * 11) % 16384;
const sourceBlock = () => {
    block = (block + 1) % 16384;
    return '127.' + (100 + (block >> 8)) + '.' + (block & 255) + '.1';
};

function smaps(pid) {
    const out = {};
    for (const line of fs.readFileSync('/proc/' + pid + '/smaps_rollup', 'utf8').split('\n')) {
        const m = line.match(/^(\w+):\s+(\d+) kB/);
        if (m) out[m[1]] = Number(m[2]) * 1024;
    }
    return out;
}

/**
 * Collects garbage and waits until V8 has given back the young generation it grew
 * (new space back to its size at start), which it does some seconds after a
 * burst of allocation; polled each second, for at most `maxMs`.
 */
async function settle(nr, maxMs) {
    const until = Date.now() + maxMs;
    for (;;) {
        await nr.gc();
        await delay(1000);
        const mem = await nr.memory();
        const young = mem.spaces.find((s) => s.space_name === 'new_space');
        if (young.space_size <= mem.newSpaceAtStart || Date.now() > until) return { mem, waited: Date.now() };
    }
}

async function sample(nr, maxMs) {
    const { mem } = maxMs ? await settle(nr, maxMs) : await settle(nr, 0);
    const space = (name) => mem.spaces.find((s) => s.space_name === name) || {};
    const status = fs.readFileSync('/proc/' + nr.pid + '/status', 'utf8');
    const m = (await nr.mallocStats()) || { system: null, inUse: null };
    return {
        rss: rss(nr.pid),
        anon: smaps(nr.pid).Anonymous,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        newSpace: space('new_space').physical_space_size,
        oldSpace: space('old_space').physical_space_size,
        otherSpaces: mem.spaces.filter((x) => x.space_name !== 'new_space' && x.space_name !== 'old_space').reduce((t, x) => t + x.physical_space_size, 0),
        external: mem.external,
        arrayBuffers: mem.arrayBuffers,
        mallocSystem: m.system,
        mallocInUse: m.inUse,
        threads: Number(status.match(/Threads:\s+(\d+)/)[1])
    };
}

async function profile(variant, o) {
    const nr = await start(variant, { trim: true });
    const holders = [];
    const hold = (conns) => {
        const h = loadgen.session('hold', { url: nr.url('/bench/echo'), conns, size: o.size, srcBase: sourceBlock(), srcCount: 8, maxSeconds: HOLD_SECONDS }, (HOLD_SECONDS + 60) * 1000);
        holders.push(h);
        return h.next('ready');
    };
    try {
        await hold(o.first);
        await delay(Math.max(0, o.base - 1) * 1000);
        // The baseline once settled and after a malloc_trim(0), as the idle scenario takes it.
        await settle(nr, 40000);
        if (!(await nr.trim())) throw new Error(variant + ': malloc_trim(0) was not called for the baseline within 30 s');
        const base = await sample(nr, 0);
        const ready = await hold(o.conns);
        if (ready.errors) throw new Error(variant + ': ' + ready.errors + ' connections failed');
        const up = Date.now();
        const marks = {};
        for (const s of MARKS) {
            await delay(Math.max(0, up + (MARK_AT[s] - 1) * 1000 - Date.now()));
            if (s === 'trimmed' && !(await nr.trim())) throw new Error(variant + ': malloc_trim(0) was not called within 30 s');
            const now = await sample(nr, s === 'settled' ? 40000 : 0);
            marks[s] = Object.fromEntries(Object.keys(now).map((k) => [k, now[k] === null || base[k] === null ? null : (now[k] - base[k]) / ready.held]));
        }
        return marks;
    } finally {
        for (const h of holders) h.release();
        await Promise.all(holders.map((h) => h.done.catch(() => null)));
        await nr.stop();
    }
}

async function main() {
    const o = parseOptions({ conns: 5000, size: 64, rounds: 1, first: 1, base: 1 }, process.argv.slice(2));
    loadgen.build();
    const runs = { core: [], ours: [] };
    for (let r = 0; r < o.rounds; r++) {
        for (const v of r % 2 ? ['ours', 'core'] : ['core', 'ours']) {
            runs[v].push(await profile(v, o));
            process.stderr.write('round ' + (r + 1) + ' ' + v + ' ' + JSON.stringify(runs[v][r]) + '\n');
        }
    }
    const keys = Object.keys(runs.core[0][MARKS[0]]);
    const kib = (x) => (x === null ? '-' : fixed(2)(x / 1024));
    const cell = (v, s, k) => (k === 'threads' ? fixed(4)(median(runs[v].map((m) => m[s][k]))) : kib(median(runs[v].map((m) => m[s][k]))));
    const lines = ['per connection, KiB (medians of ' + o.rounds + '), ' + o.conns + ' connections, ' + o.size + ' B; baseline and settled: once V8 has shrunk its young generation back',
        '| growth | ' + MARKS.map((s) => 'core ' + s + ' | ours ' + s).join(' | ') + ' |',
        '| --- | ' + MARKS.map(() => '--- | ---').join(' | ') + ' |'];
    for (const k of keys) lines.push('| ' + k + ' | ' + MARKS.map((s) => cell('core', s, k) + ' | ' + cell('ours', s, k)).join(' | ') + ' |');
    lines.push('ours ÷ core (RSS): ' + MARKS.map((s) => s + ' s ' + fixed(2)(median(runs.core.map((c, i) => runs.ours[i][s].rss / c[s].rss)))).join(', '));
    process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err) => {
    process.stderr.write((err && err.stack) || String(err));
    loadgen.killAll();
    process.exit(1);
});
