'use strict';
// Latency at the same offered load: the echo flow driven open loop at a fixed
// rate (half of core's measured maximum at that size), so that every server gets
// the same load and the percentiles compare queueing, not throughput.

const { windowed } = require('../lib/measure');
const { int, median } = require('../lib/stats');

const CONNS = 16;

/** Half of core's closed-loop echo rate at `size`: from this run's echo results, else measured once. */
async function offeredRate(ctx, size) {
    ctx.offered = ctx.offered || {};
    if (!ctx.offered[size]) {
        let max = median(ctx.valuesOf('echo-' + CONNS + '-' + size, 'core', 'rate'));
        if (!max) {
            const t = ctx.target('core', '/bench/echo', '/echo');
            const r = await windowed('echo', { url: t.url, conns: CONNS, inflight: 16, size, warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
            max = r.result.rate;
        }
        ctx.offered[size] = Math.max(100, Math.round(max / 2));
        ctx.log('latency at ' + size + ' B: offered load ' + int(ctx.offered[size]) + ' msgs/s (half of core\'s echo maximum ' + int(max) + ')');
    }
    return ctx.offered[size];
}

module.exports = {
    id: 'latency',
    title: 'Latency at the same offered load',
    variants: ['core', 'ours', 'ceiling'],
    what: 'The echo flow driven open loop: ' + CONNS + ' connections send on a fixed schedule totalling half of core\'s measured echo maximum at that size (the same rate for every server in the run). ' +
        'Latency runs from each message\'s scheduled send time to its echo, so a server that falls behind shows its queueing. Messages unanswered 2 s after the window are counted, not timed.',

    cases(o) {
        return (o.smoke ? [64] : [64, 4096]).map((size) => ({ id: 'latency-' + size, label: CONNS + ' connections, ' + o.sizeLabel(size), size }));
    },

    async measure(ctx, c, variant) {
        const rate = await offeredRate(ctx, c.size);
        const t = ctx.target(variant, '/bench/echo', '/echo');
        const r = await windowed('echo', { url: t.url, conns: CONNS, size: c.size, rate, warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
        return { offered: rate, rate: r.result.rate, p50: r.result.p50_us, p99: r.result.p99_us, unanswered: r.result.sent - r.result.answered + r.result.skipped };
    },

    show: (m) => 'p50 ' + int(m.p50) + ' µs, p99 ' + int(m.p99) + ' µs at ' + int(m.rate) + ' msgs/s' + (m.unanswered ? ', ' + m.unanswered + ' unanswered' : ''),

    table(rows) {
        const out = ['| case | offered msgs/s | p50 µs core / ours / ceiling | p99 µs core / ours / ceiling | p99 ours ÷ core (target ≤ 1) | unanswered core / ours / ceiling |', '| --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            const v = ['core', 'ours', 'ceiling'];
            out.push('| ' + [c.label, int(m.core.offered), v.map((k) => int(m[k].p50)).join(' / '), v.map((k) => int(m[k].p99)).join(' / '), r.fmt('p99'), v.map((k) => int(m[k].unanswered)).join(' / ')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'p99', label: 'latency ' + c.label + ': p99 ours ÷ core', invLabel: 'latency ' + c.label + ': p99 core ÷ ours', value: m.ours.p99 / m.core.p99, target: { op: '<=', value: 1 } }
    ]
};
