'use strict';
// The opt-in richer status under the nodes of a config node with `richStatus`:
// "12 clients · 3.2k msg/s" (messages in and out per second) in place of core's
// "connected 12". Off by default: the status then stays as core's. On, the rate
// is read from the addon's counters every RATE_MS and the status is set again
// only when its text changes (a Status node sees each such change).

const RATE_MS = 2000;

/** 3200 -> "3.2k", 12 -> "12", 1.5e6 -> "1.5M". */
function compact(n) {
    if (n < 1000) return String(Math.round(n));
    if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + 'k';
    return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + 'M';
}

function text(node, RED) {
    const rate = compact(node.rich ? node.rich.rate : 0);
    return node.isListener
        ? RED._('websocket.status.rich', { count: node.count, rate })
        : RED._('websocket.status.rich-client', { rate });
}

/** The status to show for `status` (a connected one gets the rich text). */
function decorate(node, status, RED) {
    if (!status || status.fill !== 'green' || !node.native) return status;
    start(node, RED);
    return Object.assign({}, status, { text: text(node, RED) });
}

function start(node, RED) {
    if (node.rich) return;
    const total = () => {
        try {
            const s = node.native.stats();
            return s.msgsIn + s.msgsOut;
        } catch (err) {
            return 0;
        }
    };
    const rich = { rate: 0, last: total(), at: Date.now(), timer: null };
    rich.timer = setInterval(() => {
        try {
            if (!node.native || !node.lastStatus || node.lastStatus.fill !== 'green') return;
            const now = Date.now();
            const t = total();
            // Never below 0: a session ending between two reads can dip the totals.
            rich.rate = Math.max(0, ((t - rich.last) * 1000) / Math.max(1, now - rich.at));
            rich.last = t;
            rich.at = now;
            const shown = text(node, RED);
            if (shown !== node.lastStatus.text) {
                const { event, _session, ...steady } = node.lastStatus;
                node.lastStatus = Object.assign(steady, { text: shown });
                node.showStatus();
            }
        } catch (err) {
            // A status is not worth an uncaught exception.
        }
    }, RATE_MS);
    if (rich.timer.unref) rich.timer.unref();
    node.rich = rich;
}

function stop(node) {
    if (node.rich) clearInterval(node.rich.timer);
    node.rich = null;
}

module.exports = { decorate, stop, compact, RATE_MS };
