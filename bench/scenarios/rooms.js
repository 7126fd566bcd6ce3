'use strict';
// Rooms (issue 13): N subscribers in 10 rooms, each joining one as it connects; a
// function node publishes to the rooms in turn. Ours: the listener keeps the
// rooms in Rust (msg.websocket.join, msg.websocket.room). Core: what a core flow
// does today, a Status node and a function node keeping the members of each room
// in context, and one msg per member with its _session. 'ours-fn' runs that core
// flow on this package, to tell the transport's share from the rooms'.

const { windowed } = require('../lib/measure');
const { ROOMS } = require('../lib/nodered');
const { int, fixed } = require('../lib/stats');

/** Publishes ahead of the acknowledgements: about 64 Ki frames (at most 32 MiB) in flight. */
function window(subs, size) {
    const frames = Math.min(65536, (32 << 20) / size);
    return Math.max(2 * ROOMS, Math.min(16384, Math.floor(frames / Math.max(1, subs / ROOMS))));
}

const VARIANTS = ['core', 'ours-fn', 'ours'];

module.exports = {
    id: 'rooms',
    title: 'Room publishes',
    variants: VARIANTS,
    what: 'N subscribers on a listener, each put in one of 10 rooms as it connects (round robin); a function node publishes text messages made inside Node-RED to the rooms in turn, in bursts of up to 64 publishes per event-loop turn, each reaching the 1/10 of the subscribers in its room. ' +
        'Ours: the listener keeps the rooms (connection events → `msg.websocket.join`; each publish one msg with `msg.websocket.room`). ' +
        'Core: a Status node sees connects and disconnects, a function node keeps each room\'s members in flow context, and the publisher sends one msg per member with its `_session`; `ours-fn` is that same core flow on this package. ' +
        'Flow control, counting and CPU sampling as in fan-out (an acknowledged broadcast stands for 10 room publishes).',

    cases(o) {
        const shapes = o.smoke ? [[50, 64]] : [[1000, 64], [1000, 4096]];
        return shapes.map(([subs, size]) => ({ id: 'rooms-' + subs + '-' + size, label: subs + ' subscribers in ' + ROOMS + ' rooms, ' + o.sizeLabel(size), subs, size }));
    },

    async measure(ctx, c, variant) {
        const t = ctx.target(variant === 'core' ? 'core' : 'ours', variant === 'ours' ? '/bench/rooms' : '/bench/rooms-fn');
        const r = await windowed('subscribe', { url: t.url, conns: c.subs, size: c.size, window: window(c.subs, c.size), warmup: ctx.opts.warmup, seconds: ctx.opts.seconds }, t.pid);
        return {
            rate: r.result.rate,
            perCpu: r.serverCpu > 0 ? r.result.frames / r.serverCpu : null,
            serverCpu: r.serverCpu,
            serverLoad: r.serverCpu / r.seconds,
            loadgenLoad: r.loadgenCpu / r.seconds
        };
    },

    show: (m) => int(m.rate) + ' frames/s, ' + int(m.perCpu) + ' per CPU-s (server ' + m.serverLoad.toFixed(2) + ' CPU, loadgen ' + m.loadgenLoad.toFixed(2) + ' CPU)',

    table(rows) {
        const out = ['| case | delivered frames/s core / ours-fn / ours | ours ÷ core | frames per Node-RED CPU-s core / ours-fn / ours | ours ÷ core | ours ÷ ours-fn (frames per CPU-s) | Node-RED CPU-s per s core / ours-fn / ours | loadgen CPU core / ours-fn / ours |', '| --- | --- | --- | --- | --- | --- | --- | --- |'];
        for (const { c, m, r } of rows) {
            out.push('| ' + [c.label, VARIANTS.map((k) => int(m[k].rate)).join(' / '), r.fmt('rate'), VARIANTS.map((k) => int(m[k].perCpu)).join(' / '), r.fmt('perCpu'), r.fmt('vsFn'),
                VARIANTS.map((k) => fixed(2)(m[k].serverLoad)).join(' / '), VARIANTS.map((k) => fixed(2)(m[k].loadgenLoad)).join(' / ')].join(' | ') + ' |');
        }
        return out;
    },

    ratios: (c, m) => [
        { key: 'rate', label: 'rooms ' + c.label + ': frames/s ours ÷ core', value: m.ours.rate / m.core.rate },
        { key: 'perCpu', label: 'rooms ' + c.label + ': frames per CPU-s ours ÷ core', value: m.ours.perCpu / m.core.perCpu },
        { key: 'vsFn', label: 'rooms ' + c.label + ': frames per CPU-s ours ÷ ours-fn', value: m.ours.perCpu / m['ours-fn'].perCpu }
    ]
};
