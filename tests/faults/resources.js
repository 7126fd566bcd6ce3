'use strict';
// What a process holds, read from /proc: open descriptors, threads, resident
// memory. The fault tests take a baseline of the Node-RED child, do damage, and
// wait (bounded) for it to come back within a stated margin.

const fs = require('fs');
const { delay } = require('../support');

/** {fds, threads, rssKiB} of process `pid`. */
function sample(pid) {
    const status = fs.readFileSync('/proc/' + pid + '/status', 'utf8');
    const field = (name) => Number((new RegExp('^' + name + ':\\s+(\\d+)', 'm').exec(status) || [])[1]);
    return { fds: fs.readdirSync('/proc/' + pid + '/fd').length, threads: field('Threads'), rssKiB: field('VmRSS') };
}

/** Margins the fault tests allow over the baseline once the damage is over. */
const MARGIN = {
    fds: 2, // a listening socket or an epoll set that Node opens lazily
    threads: 4, // tokio's blocking pool keeps idle threads for 10 s
    rssKiB: 48 * 1024 // V8 and the allocators keep some of what a burst used
};

function within(now, base) {
    return now.fds <= base.fds + MARGIN.fds && now.threads <= base.threads + MARGIN.threads &&
        now.rssKiB <= base.rssKiB + MARGIN.rssKiB;
}

const show = (s) => s.fds + ' fds, ' + s.threads + ' threads, ' + Math.round(s.rssKiB / 1024) + ' MiB';

/**
 * Waits up to `ms` for `pid` to be back within the margins of `base`; returns the
 * last sample, or throws with the figures.
 */
async function backToBaseline(pid, base, ms = 15000) {
    const end = Date.now() + ms;
    let now = sample(pid);
    while (!within(now, base)) {
        if (Date.now() > end) {
            throw new Error('not back to baseline after ' + ms + ' ms: ' + show(now) + ' against ' + show(base) +
                ' (margins ' + MARGIN.fds + ' fds, ' + MARGIN.threads + ' threads, ' + MARGIN.rssKiB / 1024 + ' MiB)');
        }
        await delay(200);
        now = sample(pid);
    }
    return now;
}

module.exports = { sample, backToBaseline, show, MARGIN };
