'use strict';
// Ingest: 16 connections send as fast as they can into `websocket in` → a
// function node that counts; the rate is counted inside Node-RED. The limit
// feeds the same counter with messages made inside Node-RED, no transport, in
// the same Node-RED just before and after each flood.

const { windowed, delay } = require('../lib/measure');
const { int, fixed } = require('../lib/stats');

const CONNS = 16;
/**
 * Messages sent per measured second, at most: what Node-RED must work off after a
 * run stays bounded. Well above what either transport takes in (about 100 000 msgs/s
 * on a 2-core Xeon), or a fast one would run out before the measured seconds end.
 */
const BUDGET = { 64: 300000, 4096: 150000 };

/**
 * Rate and CPU per message over the counter's busy period: from `warmup` after
 * its first note to its last one. A server that takes messages in faster than
 * its flow handles them keeps counting after the sender stops, so the period is
 * Node-RED's, not the sender's.
 */
function busy(notes, warmup) {
    if (notes.length < 2) throw new Error('fewer than two counter notes (' + notes.length + ')');
    const late = notes.filter(([, t]) => t >= notes[0][1] + warmup * 1000);
    const inside = late.length >= 2 ? late : notes;
    const [n0, t0, cpu0] = inside[0];
    const [n1, t1, cpu1] = inside[inside.length - 1];
    return { rate: ((n1 - n0) / Math.max(1, t1 - t0)) * 1000, cpuUs: ((cpu1 - cpu0) / (n1 - n0)) * 1e6, busy: (t1 - t0) / 1000 };
}

/** Reads the counter until it stops moving (bounded): every note since the previous read. */
async function drain(nr) {
    const until = Date.now() + 300000;
    const notes = [];
    let last = -1;
    while (Date.now() < until) {
        const r = await nr.count();
        notes.push(...r.notes);
        if (r.n === last) return notes;
        last = r.n;
        await delay(200);
    }
    throw new Error(nr.variant + ': the ingest backlog did not drain within 300 s');
}

module.exports = {
    id: 'ingest',
    title: 'Ingest',
    variants: ['core', 'ours'],
    what: CONNS + ' connections send text messages as fast as the server takes them into `websocket in` → a function node that counts in its context, for the warm-up and the measured seconds or until ' +
        int(BUDGET[64]) + ' (64 B) / ' + int(BUDGET[4096]) + ' (4 KiB) messages per measured second are sent. Every 256th message the counter notes the count, the time and the process\'s CPU time; ' +
        'the rate is taken over Node-RED\'s busy period, from the warm-up after its first note to its last, so a backlog it took in faster than it could handle is counted as it is worked off. ' +
        'The limit feeds the same counter with messages made inside Node-RED (a function node sending bursts of 256 per event-loop turn, shaped as `websocket in` makes them, calling `generateId` once per msg as Node.send does for a transport\'s msgs; ' +
        'unlike a transport\'s, they share one payload string and go through the function node\'s send): Node-RED\'s own ceiling for this flow. ' +
        'It runs in the same Node-RED as the transport, garbage collected first, for the warm-up and the measured seconds just before and again just after each flood (also garbage collected first), and the flood is compared with the mean of the two (the table shows the medians of the rounds\' means, and of the two runs): ' +
        'the machine\'s speed drifts over tens of seconds, and one Node-RED\'s limit is not another\'s (see the notes). The limit measured with this package loaded includes whatever the package costs Node-RED outside its transport; "limit ours ÷ core" shows that cost.',

    cases(o) {
        return (o.smoke ? [64] : [64, 4096]).map((size) => ({ id: 'ingest-' + size, label: CONNS + ' connections, ' + o.sizeLabel(size), size }));
    },

    // The limit runs in the same Node-RED just before and just after the flood, and the
    // flood is compared with their mean: the machine's speed drifts over tens of seconds
    // (bench/RESULTS.md, notes), and one process's limit is not another's (JIT and heap
    // history differ). Each run starts garbage collected, so none pays for the last's heap.
    async measure(ctx, c, variant) {
        const { warmup, seconds } = ctx.opts;
        const nr = ctx.nr[variant];
        const limit = async () => {
            await drain(nr);
            await nr.gc();
            await nr.limit(warmup + seconds, c.size);
            await delay((warmup + seconds) * 1000 + 200);
            return busy(await drain(nr), warmup);
        };
        const before = await limit();
        const maxMsgs = Math.round((BUDGET[c.size] || BUDGET[4096]) * seconds);
        await nr.gc();
        await windowed('flood', { url: nr.url('/bench/ingest'), conns: CONNS, size: c.size, maxMsgs, warmup, seconds }, nr.pid);
        const flood = busy(await drain(nr), warmup);
        const after = await limit();
        return { ...flood, limitRate: (before.rate + after.rate) / 2, limitBefore: before.rate, limitAfter: after.rate, limitCpuUs: (before.cpuUs + after.cpuUs) / 2 };
    },

    show: (m) => int(m.rate) + ' msgs/s counted over ' + m.busy.toFixed(1) + ' s; the limit ' + int(m.limitBefore) + ' before, ' + int(m.limitAfter) + ' after',

    table(rows) {
        if (rows.some(({ m }) => m.ours.limitRate === undefined)) {
            throw new Error('ingest results from before the limit was measured in each Node-RED (176b1c4): rerun the ingest scenario');
        }
        const out = ['| case | limit msgs/s core / ours: mean (before, after) | core msgs/s | ours msgs/s | ours ÷ core (target ≥ 1) | ours ÷ limit (target ≥ 0.9) | core ÷ limit | limit ours ÷ core | Node-RED CPU µs/msg limit in core / core / limit in ours / ours | busy s core / ours |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
        const lim = (v) => int(v.limitRate) + ' (' + int(v.limitBefore) + ', ' + int(v.limitAfter) + ')';
        for (const { c, m, r } of rows) {
            out.push('| ' + [c.label, lim(m.core) + ' / ' + lim(m.ours), int(m.core.rate), int(m.ours.rate), r.fmt('vsCore'), r.fmt('vsLimit'), r.fmt('coreVsLimit'), r.fmt('limitOursVsCore'),
                [m.core.limitCpuUs, m.core.cpuUs, m.ours.limitCpuUs, m.ours.cpuUs].map(fixed(2)).join(' / '), [m.core.busy, m.ours.busy].map(fixed(1)).join(' / ')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'vsCore', label: 'ingest ' + c.label + ': msgs/s ours ÷ core', value: m.ours.rate / m.core.rate, target: { op: '>=', value: 1 } },
        { key: 'vsLimit', label: 'ingest ' + c.label + ': msgs/s ours ÷ Node-RED limit', value: m.ours.rate / m.ours.limitRate, target: { op: '>=', value: 0.9 } },
        { key: 'coreVsLimit', label: 'ingest ' + c.label + ': msgs/s core ÷ Node-RED limit', value: m.core.rate / m.core.limitRate, reference: true },
        // What loading the package costs Node-RED itself (a lower limit would flatter ours ÷ limit).
        { key: 'limitOursVsCore', label: 'ingest ' + c.label + ': Node-RED limit with ours loaded ÷ in core', value: m.ours.limitRate / m.core.limitRate, reference: true }
    ]
};
