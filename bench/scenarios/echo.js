'use strict';
// Echo: `websocket in` → `websocket out` replying to the sender; C connections
// each keep 16 messages in flight. Throughput, latency and Node-RED CPU per message.

const { windowed } = require('../lib/measure');
const { int, fixed } = require('../lib/stats');

module.exports = {
    id: 'echo',
    title: 'Echo',
    variants: ['core', 'ours', 'ceiling'],
    what: 'Round trips per second through `websocket in` → `websocket out` (reply to the sender), C connections × 16 messages in flight (binary), closed loop: each connection sends one message per echo it gets, those for the echoes it can read without waiting in one write ' +
        '("a write per message": each in its own write, as a client sending each message on its own). ' +
        'CPU is the whole server process (Node-RED: JS thread and Rust workers) per round trip, and the load generator\'s (one thread, on the same machine). The ceiling is the plain tokio-tungstenite echo server.',

    cases(o) {
        const shapes = o.smoke ? [[16, 64], [64, 4096], [16, 64, 'per-message']] : [[16, 64], [64, 64], [16, 4096], [64, 4096], [16, 64, 'per-message']];
        return shapes.map(([conns, size, writes]) => ({
            id: 'echo-' + conns + '-' + size + (writes ? '-' + writes : ''),
            label: conns + ' connections, ' + o.sizeLabel(size) + (writes ? ', a write per message' : ''),
            conns,
            size,
            writes
        }));
    },

    async measure(ctx, c, variant) {
        const t = ctx.target(variant, '/bench/echo', '/echo');
        const r = await windowed('echo', { url: t.url, conns: c.conns, inflight: 16, size: c.size, writes: c.writes, warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
        return {
            rate: r.result.rate,
            p50: r.result.p50_us,
            p99: r.result.p99_us,
            cpuUs: r.result.msgs ? (r.serverCpu / r.result.msgs) * 1e6 : null,
            loadgenUs: r.result.msgs ? (r.loadgenCpu / r.result.msgs) * 1e6 : null
        };
    },

    show: (m) => int(m.rate) + ' msgs/s, p99 ' + int(m.p99) + ' µs',

    table(rows) {
        const out = ['| case | core msgs/s | ours msgs/s | ceiling msgs/s | ours ÷ core (target ≥ 2) | ours ÷ ceiling | p99 µs core / ours / ceiling | server CPU µs/msg core / ours / ceiling | load generator CPU µs/msg core / ours / ceiling |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            out.push('| ' + [c.label, int(m.core.rate), int(m.ours.rate), int(m.ceiling.rate), r.fmt('vsCore'), r.fmt('vsCeiling'),
                [m.core.p99, m.ours.p99, m.ceiling.p99].map(int).join(' / '),
                [m.core.cpuUs, m.ours.cpuUs, m.ceiling.cpuUs].map(fixed(2)).join(' / '),
                [m.core.loadgenUs, m.ours.loadgenUs, m.ceiling.loadgenUs].map(fixed(2)).join(' / ')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'vsCore', label: 'echo ' + c.label + ': msgs/s ours ÷ core', value: m.ours.rate / m.core.rate, target: { op: '>=', value: 2 } },
        { key: 'vsCeiling', label: 'echo ' + c.label + ': msgs/s ours ÷ ceiling', value: m.ours.rate / m.ceiling.rate, ceiling: true }
    ]
};
