'use strict';
// Carries a socket that cannot be handed to Rust (a TLS socket when Node-RED
// serves HTTPS, or one without a descriptor) through the addon's byte bridge
// (src/bridge.rs), with back-pressure both ways.

/** How long a socket whose session is over may take to finish closing. */
const CLOSE_GRACE_MS = 5000;

/**
 * `open(onOutput)` starts the Rust side (Listener.bridge) and returns the bridge,
 * or null when the handshake was refused (the caller answered it). Returns the
 * bridge or null.
 *
 * Output: each chunk is written to the socket and reported back with
 * `bridge.written(n)` once the socket has taken it (write() returned true, or
 * after 'drain'). Rust hands out at most its window of unreported bytes, so a
 * peer that stops reading stops the session's output, whose own queue cap then
 * closes it (1008), as for a handed-over socket.
 */
function carry(socket, open, graceMs = CLOSE_GRACE_MS) {
    let bridge = null;
    let unreported = 0;
    let draining = false;
    let reportScheduled = false;

    function report() {
        reportScheduled = false;
        if (draining || unreported === 0 || !bridge) return;
        const n = unreported;
        unreported = 0;
        bridge.written(n);
    }

    function onDrain() {
        draining = false;
        report();
    }

    // Runs as the addon's callback: it must not throw.
    function onOutput(kind, chunk) {
        try {
            if (kind === 1 && !Buffer.isBuffer(chunk)) {
                // The addon could not allocate the chunk (out of memory): its bytes
                // are lost, so the connection cannot go on.
                socket.destroy();
            } else if (kind === 1) {
                unreported += chunk.length;
                if (!socket.write(chunk) && socket.writable) {
                    if (!draining) {
                        draining = true;
                        socket.once('drain', onDrain);
                    }
                } else if (!reportScheduled) {
                    // One report per event-loop turn, not one call per chunk.
                    reportScheduled = true;
                    setImmediate(report);
                }
            } else if (kind === 2) {
                socket.resume();
            } else {
                finish();
            }
        } catch (err) {
            socket.destroy();
        }
    }

    /** The session is over: end the socket, and destroy it if it does not close in time. */
    function finish() {
        if (socket.destroyed) return;
        socket.end();
        const timer = setTimeout(() => socket.destroy(), graceMs);
        if (timer.unref) timer.unref();
        socket.once('close', () => clearTimeout(timer));
    }

    bridge = open(onOutput);
    if (!bridge) return null;
    socket.on('data', (chunk) => {
        if (!bridge.push(chunk)) socket.pause();
    });
    // Also stops Rust waiting on output that a closed socket will never take.
    socket.on('end', () => bridge.end());
    socket.on('close', () => bridge.end());
    socket.on('error', () => socket.destroy());
    socket.resume();
    return bridge;
}

module.exports = { carry, CLOSE_GRACE_MS };
