'use strict';
// Fan-out: N subscribers on a listener; a function node broadcasts messages made
// inside Node-RED through `websocket out` (no _session: every client). The load
// generator counts the frames all subscribers receive; Node-RED's CPU is sampled
// over the same window.

const { windowed } = require('../lib/measure');
const { int, fixed } = require('../lib/stats');

/**
 * Broadcasts the publisher may have ahead of the subscribers' acknowledgements:
 * about 64 Ki frames and 128 MiB in flight over all subscribers, enough to keep
 * every link busy between two acknowledgements (1 ms apart) without letting
 * queues grow without bound. (The byte cap was 32 MiB: at 1 000 subscribers and
 * 4 KiB that allowed 8 broadcasts in flight where every other case had 64 or
 * more, and on loopback the window decides how many frames a write carries, for
 * core as for us: bench/RESULTS.md, "Fan-out profile".)
 */
function window(subs, size) {
    const frames = Math.min(65536, (128 << 20) / size);
    return Math.max(2, Math.min(1024, Math.floor(frames / subs)));
}

module.exports = {
    id: 'fanout',
    title: 'Fan-out',
    variants: ['core', 'ours', 'ceiling'],
    what: 'N subscribers on a listener; a function node publishes text messages made inside Node-RED to `websocket out` without `_session` (a broadcast), in bursts of up to 64 per event-loop turn. ' +
        'The publisher stays at most a window of broadcasts (about 64 Ki frames, at most 128 MiB, over all subscribers) ahead of what the subscribers have received, acknowledged by the load generator every millisecond, so queues stay bounded while the server is saturated. ' +
        'Frames/s are counted by the load generator over all subscribers; frames per CPU-second divide them by the server process\'s CPU time (JS thread and workers) over the same window. ' +
        'The load generator\'s own CPU use is shown so that a saturated generator would be seen. The ceiling is the plain tokio-tungstenite server, framing each broadcast once per subscriber.',

    cases(o) {
        const shapes = o.smoke ? [[10, 64], [50, 4096]] : [[100, 64], [1000, 64], [100, 4096], [1000, 4096]];
        return shapes.map(([subs, size]) => ({ id: 'fanout-' + subs + '-' + size, label: subs + ' subscribers, ' + o.sizeLabel(size), subs, size }));
    },

    async measure(ctx, c, variant) {
        const t = ctx.target(variant, '/bench/fanout', '/fanout');
        const r = await windowed('subscribe', { url: t.url, conns: c.subs, size: c.size, window: window(c.subs, c.size), warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
        return {
            rate: r.result.rate,
            perCpu: r.serverCpu > 0 ? r.result.frames / r.serverCpu : null,
            serverLoad: r.serverCpu / r.seconds,
            loadgenLoad: r.loadgenCpu / r.seconds
        };
    },

    show: (m) => int(m.rate) + ' frames/s, ' + int(m.perCpu) + ' per CPU-s (server ' + m.serverLoad.toFixed(2) + ' CPU, loadgen ' + m.loadgenLoad.toFixed(2) + ' CPU)',

    table(rows) {
        const v = ['core', 'ours', 'ceiling'];
        const out = ['| case | frames/s core / ours / ceiling | ours ÷ core (target ≥ 3) | frames per CPU-s core / ours / ceiling | ours ÷ core (target ≥ 5) | ours ÷ ceiling (frames/s) | server CPU core / ours / ceiling | loadgen CPU core / ours / ceiling |', '| --- | --- | --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            out.push('| ' + [c.label, v.map((k) => int(m[k].rate)).join(' / '), r.fmt('rate'), v.map((k) => int(m[k].perCpu)).join(' / '), r.fmt('perCpu'), r.fmt('vsCeiling'),
                v.map((k) => fixed(2)(m[k].serverLoad)).join(' / '), v.map((k) => fixed(2)(m[k].loadgenLoad)).join(' / ')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'rate', label: 'fan-out ' + c.label + ': frames/s ours ÷ core', value: m.ours.rate / m.core.rate, target: { op: '>=', value: 3 } },
        { key: 'perCpu', label: 'fan-out ' + c.label + ': frames per CPU-s ours ÷ core', value: m.ours.perCpu / m.core.perCpu, target: { op: '>=', value: 5 } },
        { key: 'vsCeiling', label: 'fan-out ' + c.label + ': frames/s ours ÷ ceiling', value: m.ours.rate / m.ceiling.rate, ceiling: true }
    ]
};
