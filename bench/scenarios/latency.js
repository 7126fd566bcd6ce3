'use strict';
// Latency at the same offered load: the echo flow driven open loop at a fixed
// rate (half of core's measured maximum at that size), so that every server gets
// the same load and the percentiles compare queueing, not throughput.

const { windowed } = require('../lib/measure');
const { int } = require('../lib/stats');

const CONNS = 16;

/**
 * Half of core's closed-loop echo rate at `size` in this round (the echo scenario
 * measured it minutes before; else it is measured now): the load follows what
 * the shared machine gives from round to round, and is the same for every server
 * within a round.
 */
async function offeredRate(ctx, size) {
    const key = ctx.round + ':' + size;
    ctx.offered = ctx.offered || {};
    if (!ctx.offered[key]) {
        let max = ctx.valuesOf('echo-' + CONNS + '-' + size, 'core', 'rate')[ctx.round];
        if (!max) {
            const t = ctx.target('core', '/bench/echo', '/echo');
            const r = await windowed('echo', { url: t.url, conns: CONNS, inflight: 16, size, warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
            max = r.result.rate;
        }
        ctx.offered[key] = Math.max(100, Math.round(max / 2));
        ctx.log('latency at ' + size + ' B: offered load ' + int(ctx.offered[key]) + ' msgs/s (half of core\'s echo maximum ' + int(max) + ' in this round)');
    }
    return ctx.offered[key];
}

module.exports = {
    id: 'latency',
    title: 'Latency at the same offered load',
    variants: ['core', 'ours', 'ceiling'],
    what: 'The echo flow driven open loop: ' + CONNS + ' connections send on a fixed schedule totalling half of core\'s echo maximum at that size measured in the same round (the same rate for every server within a round). ' +
        'Latency runs from each message\'s scheduled send time to its echo, so a server that falls behind shows its queueing. Messages unanswered 2 s after the window are counted, not timed. ' +
        'A server that did not keep up (achieved below offered, or messages unanswered) was overloaded at that moment, and its percentiles are queueing.',

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
        const out = ['| case | offered msgs/s | achieved msgs/s core / ours / ceiling | p50 µs core / ours / ceiling | p99 µs core / ours / ceiling | p99 ours ÷ core (target ≤ 1) | unanswered core / ours / ceiling |', '| --- | --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            const v = ['core', 'ours', 'ceiling'];
            const all = (key) => v.map((k) => int(m[k][key])).join(' / ');
            out.push('| ' + [c.label, int(m.core.offered), all('rate'), all('p50'), all('p99'), r.fmt('p99'), all('unanswered')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'p99', label: 'latency ' + c.label + ': p99 ours ÷ core', invLabel: 'latency ' + c.label + ': p99 core ÷ ours', value: m.ours.p99 / m.core.p99, target: { op: '<=', value: 1 } }
    ]
};
