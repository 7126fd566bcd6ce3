'use strict';
// Idle memory: N connections that each sent one message and had its echo, held
// open; the RSS growth of a freshly started Node-RED divided by the connections
// held. Clients are spread over loopback source addresses and, past one
// process's descriptor limit, over several load generator processes.

const loadgen = require('../lib/loadgen');
const { start } = require('../lib/nodered');
const { rss, openFds, fdLimits } = require('../lib/proc');
const { delay } = require('../lib/measure');
const { int, fixed, median } = require('../lib/stats');

/**
 * Samples wait this long after the connections are up: past Node-RED's
 * inboundWebSocketTimeout (5 s), for which its runtime keeps every upgraded
 * socket referenced, and past V8's memory reducer, which gives back the young
 * generation grown in the burst and compacts the old one some seconds after
 * allocation stops (measured here: 6 to 30 s). Before it, both variants' RSS still
 * holds the transients of 5 000 upgrades, which are not idle memory.
 */
// Past the addon's second trim after a burst (30 s), so that no round races it.
const SETTLE_MS = 35000;
/** The same for the baseline: Node-RED's start grows the young generation too. */
const BASE_SETTLE_MS = 10000;
/** RSS samples, 2 s apart after the settle; their median is taken. */
const SAMPLES = 3;

/** Descriptors left free in Node-RED beside its connections (files, pipes, the HTTP server's own). */
const MARGIN = 500;
const HOLD_SECONDS = 900;

/**
 * How many of `requested` connections one process with `baseFds` open and a hard
 * limit of `hard` descriptors can hold: all of them, or the largest thousand that fits.
 */
function fit(requested, hard, baseFds) {
    const room = hard - baseFds - MARGIN;
    if (requested <= room) return { held: requested, note: '' };
    const held = Math.max(0, Math.floor(room / 1000) * 1000);
    return { held, note: int(requested) + ' requested, ' + int(held) + ' held: hard limit of descriptors per process is ' + hard + ' here' };
}

/**
 * RSS once the process has settled: at least `ms` waited, then garbage collected
 * until V8's young generation is back to its size at start (at most 30 s more),
 * then the median of SAMPLES samples, each after a collection.
 */
async function settled(nr, ms, before = () => {}) {
    const start = Date.now();
    await delay(ms);
    for (;;) {
        await nr.gc();
        await delay(1000);
        const mem = await nr.memory();
        const young = mem.spaces.find((s) => s.space_name === 'new_space');
        if (!ms || young.space_size <= mem.newSpaceAtStart || Date.now() - start > ms + 30000) break;
    }
    await before();
    const samples = [rss(nr.pid)];
    while (ms && samples.length < SAMPLES) {
        await delay(1000);
        await nr.gc();
        await delay(1000);
        samples.push(rss(nr.pid));
    }
    return median(samples);
}

// A fresh /24 of source addresses per load generator process (127.100.0.0/10 and up),
// so that no run meets the ports a previous one left in TIME_WAIT.
let block = (process.pid * 7) % 16384;
function sourceBlock() {
    block = (block + 1) % 16384;
    return '127.' + (100 + (block >> 8)) + '.' + (block & 255) + '.1';
}

async function measure(ctx, c, variant) {
    const nr = await start(variant, { trim: true });
    const holders = [];
    const hold = (conns) => {
        const h = loadgen.session('hold', { url: nr.url('/bench/echo'), conns, size: c.size, srcBase: sourceBlock(), srcCount: 8, maxSeconds: HOLD_SECONDS }, (HOLD_SECONDS + 60) * 1000);
        holders.push(h);
        return h.next('ready');
    };
    try {
        const { hard } = fdLimits();
        const { held: want, note } = fit(c.count, hard, openFds(nr.pid));
        if (note) ctx.log(variant + ': ' + note);
        await hold(1); // the path's first connection is part of the baseline
        // The baseline without the free heap glibc still holds from Node-RED's start,
        // in both variants: the addon's own trims after a burst return it, and it
        // would be counted as memory the connections do not use (in one run ours
        // came out at -0.1 KiB per connection at 5 000). A round that cannot trim
        // one of them cannot be compared, so it stops the bench.
        const before = await settled(nr, ctx.opts.smoke ? 0 : BASE_SETTLE_MS, async () => {
            if (!(await nr.trim())) throw new Error(variant + ': malloc_trim(0) was not called in Node-RED for the idle baseline within 30 s (bench/lib/trim-preload.c, preloaded)');
        });
        const perProcess = Math.min(10000, hard - 200);
        const parts = [];
        for (let left = want; left > 0; left -= perProcess) parts.push(hold(Math.min(perProcess, left)));
        const ready = await Promise.all(parts);
        const held = ready.reduce((s, r) => s + r.held, 0);
        const errors = ready.reduce((s, r) => s + r.errors, 0);
        if (errors) ctx.log(variant + ': ' + errors + ' of ' + want + ' connections failed, first: ' + ready.find((r) => r.errors).first_error);
        if (!held) throw new Error(variant + ': no connection held');
        const after = await settled(nr, ctx.opts.smoke ? 0 : SETTLE_MS);
        return { perConn: (after - before) / held, held, requested: c.count, failed: errors, note };
    } finally {
        // Clients first (each on its own addresses), so that stopping Node-RED waits for no close handshake.
        for (const h of holders) h.release();
        await Promise.all(holders.map((h) => h.done.catch(() => null)));
        await nr.stop();
    }
}

module.exports = {
    id: 'idle',
    title: 'Idle memory',
    variants: ['core', 'ours'],
    fresh: true,
    fit,
    what: 'A freshly started Node-RED with the echo flow; N connections each send one message, get its echo and stay open, idle. ' +
        'Memory per connection is the growth of the Node-RED process\'s RSS divided by the connections held, both taken once the process has settled: 10 s after the first connection (the baseline, taken after a `malloc_trim(0)` called in both through a small library the bench preloads into Node-RED, so that the free heap glibc holds from Node-RED\'s start, which the addon\'s own trims after a burst would return, is not counted as memory the connections freed) and 35 s after the N are up (not trimmed by the bench: ours trims its heap itself 2 s and 30 s after a burst of connections, core never does), ' +
        'past Node-RED\'s inboundWebSocketTimeout (5 s, for which its runtime keeps each upgraded socket referenced) and past V8\'s memory reducer (which gives back the young generation and compacts the old one some seconds after a burst); ' +
        'then garbage collected until V8\'s young generation is back to its size at start, and the median of 3 samples 2 s apart, each after a collection. The same for both. ' +
        'Clients use 8 loopback source addresses per load generator process and at most 10 000 connections per process. ' +
        'A count that does not fit in Node-RED\'s descriptor limit is run at the largest thousand that does, and says so.',

    cases(o) {
        const shapes = o.smoke ? [[200, 64]] : [[5000, 64], [5000, 4096], [50000, 64], [50000, 4096]];
        return shapes.map(([count, size]) => ({ id: 'idle-' + count + '-' + size, label: int(count) + ' connections, ' + o.sizeLabel(size), count, size }));
    },

    measure,

    show: (m) => fixed(1)(m.perConn / 1024) + ' KiB per connection, ' + int(m.held) + ' held',

    table(rows) {
        const out = ['| case | held core / ours | core KiB per connection | ours KiB per connection | ours ÷ core (target ≤ 0.33) | note |', '| --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            const failed = m.core.failed || m.ours.failed ? ' (failed: ' + int(m.core.failed) + ' / ' + int(m.ours.failed) + ')' : '';
            out.push('| ' + [c.label, int(m.core.held) + ' / ' + int(m.ours.held) + failed, fixed(1)(m.core.perConn / 1024), fixed(1)(m.ours.perConn / 1024), r.fmt('mem'), m.ours.note || m.core.note || ''].join(' | ') + ' |');
        }
        return out;
    },

    ratios(c, m) {
        const held = Math.min(m.core.held, m.ours.held);
        const label = 'idle ' + c.label + (held < c.count ? ' (' + int(held) + ' held)' : '');
        return [{ key: 'mem', label: label + ': RSS per connection ours ÷ core', invLabel: label + ': RSS per connection core ÷ ours', value: m.ours.perConn / m.core.perConn, target: { op: '<=', value: 1 / 3 } }];
    }
};
