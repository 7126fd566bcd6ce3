'use strict';
// One load generator run against one server, with the server's and the load
// generator's CPU sampled at the edges of the measuring window.

const loadgen = require('./loadgen');
const { cpuSeconds } = require('./proc');

/**
 * Runs loadgen `mode` with `args` against a server process `serverPid`.
 * `onEdge('start' | 'end')` is called at each edge too (for counters read over HTTP).
 * Resolves with {result, serverCpu, loadgenCpu, seconds} (CPU in CPU-seconds over the window).
 */
async function windowed(mode, args, serverPid, onEdge = () => {}) {
    const marks = {};
    let run = null;
    const bound = ((args.warmup || 0) + (args.seconds || 0) + 60) * 1000;
    run = loadgen.start(mode, args, {
        timeoutMs: bound,
        onEvent: (ev) => {
            if (ev.event !== 'start' && ev.event !== 'end') return;
            marks[ev.event] = { server: cpuSeconds(serverPid), loadgen: cpuSeconds(run.pid), at: process.hrtime.bigint() };
            onEdge(ev.event);
        }
    });
    const result = await run.done;
    if (!marks.start || !marks.end) throw new Error('loadgen ' + mode + ' reported no window');
    if (result.errors) throw new Error('loadgen ' + mode + ': ' + result.errors + ' connection(s) failed: ' + run.stderr().trim());
    return {
        result,
        serverCpu: marks.end.server - marks.start.server,
        loadgenCpu: marks.end.loadgen - marks.start.loadgen,
        seconds: Number(marks.end.at - marks.start.at) / 1e9
    };
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { windowed, delay };
