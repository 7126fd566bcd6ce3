'use strict';
// Warnings about what peers do (protocol errors, oversized messages, failed
// connections...) are rate-limited per config node, so that one misbehaving peer
// cannot flood the Node-RED log: the first LIMIT of a window are logged, the rest
// counted and reported in one line when the window ends (or the node closes).

const LIMIT = 10;
const WINDOW_MS = 60 * 1000;

/**
 * `warn(text)` logs one warning; `summarize(count, seconds)` logs the summary of
 * `count` warnings that were not logged.
 */
function limiter(warn, summarize, { limit = LIMIT, windowMs = WINDOW_MS } = {}) {
    let started = -Infinity;
    let logged = 0;
    let dropped = 0;
    let timer = null;

    function endWindow() {
        clearTimeout(timer);
        timer = null;
        started = -Infinity;
        if (dropped > 0) {
            const count = dropped;
            dropped = 0;
            summarize(count, Math.round(windowMs / 1000));
        }
    }

    return {
        warn(text) {
            const now = Date.now();
            if (timer === null && now - started >= windowMs) {
                started = now;
                logged = 0;
            }
            if (logged < limit) {
                logged++;
                warn(text);
                return;
            }
            dropped++;
            if (timer === null) {
                timer = setTimeout(endWindow, Math.max(0, started + windowMs - now));
                if (timer.unref) timer.unref();
            }
        },
        /** The node is closing: report what was not logged now. */
        close: endWindow
    };
}

module.exports = { limiter, LIMIT, WINDOW_MS };
