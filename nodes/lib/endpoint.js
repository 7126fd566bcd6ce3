'use strict';
// Behaviour shared by both config node types (websocket-listener and
// websocket-client): the in/out nodes that hang off them, status, and turning
// event batches from the addon into msgs.

const { KIND, forEachEvent, binaryPayload, isView } = require('./batch');
const messages = require('./messages');
const events = require('./events');
const commands = require('./commands');
const warnings = require('./warnings');
const { formatSize } = require('./limits');
const stats = require('./stats');
const richStatus = require('./rich-status');
const compat = require('./compat');

/** A client whose messages are being dropped is reported at most this often. */
const DROP_REPORT_MS = 10 * 1000;
/** After a batch of events that could not be made (out of memory), the next try. */
const PULL_RETRY_MS = 100;
/**
 * A batch Buffer up to this size is lent back to the addon to hold a later batch
 * (batches are capped at 256 events and 256 KiB, a lone large message aside):
 * reusing it spares an allocation per batch and glibc's growing and trimming of
 * its heap around each (page faults on the JS thread). A larger one is let go.
 */
const SPARE_MAX = 4 + 16 * 256 + 256 * 1024;

module.exports = function (RED) {
    /** Sets up the shared state on a freshly created config node. */
    function init(node, n) {
        node.wholemsg = n.wholemsg === 'true';
        // An array, replaced (not changed in place) when a node comes or goes: the
        // per-msg loop needs no iterator, and a delivery under way keeps its list.
        node.inputNodes = [];
        node.statusNodes = new Set();
        node.count = 0;
        node.closing = false;
        node.native = null;
        node.failure = null;
        node.lastStatus = null;
        node.lastWarning = null;
        node.peerWarnings = warnings.limiter(
            (text) => node.warn(RED._('websocket.errors.connect-error') + text),
            (count, seconds) => node.warn(RED._('websocket.errors.more-errors', { count, seconds })));
        node.sendWarnings = warnings.limiter(
            (text) => node.warn(text),
            (count, seconds) => node.warn(RED._('websocket.errors.more-not-connected', { count, seconds })));
        // Messages dropped by the queue policy "drop" for live sessions: in all
        // (for counters), and per session {total, reported, at, timer} for the warnings.
        node.dropped = 0;
        node.drops = new Map();
        // Live session numbers. Only numbers (small integers, no strings): an idle
        // connection's whole footprint in the JS heap is its entry here.
        node.live = new Set();
        // In a cluster, ids start with this instance's id (lib/cluster.js).
        node.keyPrefix = '';
        node.cluster = null;
        node.visitEvent = visitEvent.bind(node);
        node.onBatch = onBatch.bind(node);
        node.pullBatch = pullBatch.bind(node);
        node.batchFailed = batchFailed.bind(node);
        node.pullFailed = false;
        // A batch Buffer nothing else views, and whether the batch being read has
        // handed a view of itself to the flow (then it is never lent back).
        node.spare = null;
        node.viewed = false;
        // Outbound sends of one event-loop turn cross into the addon together.
        node.outTargets = [];
        node.outPayloads = [];
        node.flushScheduled = false;
        node.flushOutbox = flushOutbox.bind(node);
        // A turn with requests beyond sends crosses as one program (lib/commands.js).
        node.outProgram = null;
        node.outNames = null;
        events.init(node);
        stats.init(node);
        // "12 clients · 3.2k msg/s" under the nodes, opt-in (lib/rich-status.js).
        node.richStatus = n.richStatus === true || n.richStatus === 'true';
        node.rich = null;
    }

    function flushOutbox() {
        this.flushScheduled = false;
        if (this.outProgram) return commands.flush(this, RED);
        if (this.outTargets.length === 0) return;
        const targets = new Uint32Array(this.outTargets);
        const payloads = this.outPayloads;
        this.outTargets = [];
        this.outPayloads = [];
        if (!this.native) return;
        try {
            const queued = this.native.sendMany(targets, payloads);
            // A reply to a session that is gone is silently nothing (as core); a
            // client with no connection drops what it is given, and says so (core
            // warns on each such send; these are rate-limited).
            if (!this.isListener && queued < targets.length && this.count === 0) {
                this.sendWarnings.warn(RED._('websocket.errors.not-connected', { count: targets.length - queued }));
            }
        } catch (err) {
            this.warn(RED._('websocket.errors.send-error') + err.message);
        }
    }

    /**
     * The addon calls this with the first batch of events that arrive after none
     * were waiting; the rest are pulled one batch per event-loop turn, each after
     * Node-RED has delivered the msgs of the one before (in setImmediate), so that
     * a backlog does not pile up as setImmediate callbacks. In place of a batch the
     * addon may give an Error: it could not allocate the batch's Buffer (out of
     * memory), and the events wait in the addon for the next pull.
     */
    function onBatch(buf) {
        // Runs as the addon's callback: an exception here would stop Node-RED.
        if (this.closing) return;
        if (!Buffer.isBuffer(buf)) {
            this.batchFailed(buf);
            return;
        }
        this.pullFailed = false;
        this.viewed = false;
        try {
            forEachEvent(buf, this.visitEvent);
        } catch (err) {
            this.error(err);
        }
        if (this.viewed) {
            // A payload in the flow is a view of this memory: never written again.
            if (buf === this.spare) this.spare = null;
        } else if (buf.length <= SPARE_MAX && (!this.spare || buf.length >= this.spare.length)) {
            this.spare = buf;
        }
        setImmediate(this.pullBatch);
    }

    /** A batch could not be made: say so once, and try again rather than stall. */
    function batchFailed(err) {
        try {
            if (!this.pullFailed) this.error(err instanceof Error ? err : new Error(String(err)));
        } catch (e) {
            // Logging failed too: retrying matters more.
        }
        this.pullFailed = true;
        setTimeout(this.pullBatch, PULL_RETRY_MS);
    }

    function pullBatch() {
        if (this.closing || !this.native) return;
        let buf;
        try {
            buf = this.native.pull(this.spare);
        } catch (err) {
            // Not lent again: a spare the addon could not take must not stall every retry.
            this.spare = null;
            buf = err;
        }
        if (buf !== null) this.onBatch(buf);
    }

    function visitEvent(kind, session, buf, start, end, extra) {
        switch (kind) {
            case KIND.TEXT: {
                // All ASCII (extra 1, checked in Rust): the same string, by a plain copy.
                const text = buf.toString(extra === 1 ? 'latin1' : 'utf8', start, end);
                if (this.compatSockets) compat.message(this, session, text, false);
                this.deliver(text, session);
                break;
            }
            case KIND.BINARY: {
                const data = binaryPayload(buf, start, end);
                if (isView(start, end)) this.viewed = true;
                if (this.compatSockets) compat.message(this, session, data, true);
                this.deliver(data, session);
                break;
            }
            case KIND.OPEN: {
                this.lastWarning = null;
                this.live.add(session);
                this.count++;
                this.setStatus(connectedStatus(this, 'connect', session));
                compat.opened(this, session, buf.toString('latin1', start, start + extra), this.count);
                break;
            }
            case KIND.CLOSE:
                this.count = Math.max(0, this.count - 1);
                this.setStatus(this.count > 0 && this.isListener
                    ? connectedStatus(this, 'disconnect', session)
                    : { fill: 'red', shape: 'ring', text: 'common.status.disconnected', event: 'disconnect', _session: sessionOf(this, session) });
                this.reportDrops(session, true);
                this.live.delete(session);
                compat.closed(this, session, extra, this.count);
                break;
            case KIND.DROPPED:
                this.noteDrops(session, extra);
                break;
            case KIND.ERROR: {
                this.setStatus({ fill: 'red', shape: 'ring', text: 'common.status.error', event: 'error', _session: sessionOf(this, session) });
                // A client retrying a server that stays down logs its error once,
                // not on every attempt; the status shows each one.
                const text = buf.toString('utf8', start, end);
                if (this.isListener || text !== this.lastWarning) {
                    this.peerWarnings.warn(text);
                }
                this.lastWarning = this.isListener ? null : text;
                compat.errored(this, session, text);
                break;
            }
            case KIND.CONNECTING:
                this.setStatus({ fill: 'yellow', shape: 'ring', text: 'common.status.connecting' });
                break;
            case KIND.IDLE:
                // A client waiting for a connect message (or with reconnecting off).
                this.setStatus({ fill: 'grey', shape: 'ring', text: 'common.status.not-connected' });
                break;
        }
        if (kind === KIND.OPEN || kind === KIND.CLOSE || kind === KIND.ERROR || kind === KIND.ROOMS) {
            events.onEvent(this, kind, session, buf, start, end, extra);
        }
    }

    function sessionOf(node, session) {
        return { type: 'websocket', id: node.sessionId(session) };
    }

    function connectedStatus(node, event, session) {
        // Core shows a count for listeners and none for a client connection.
        const count = node.isListener ? node.count : '';
        return {
            fill: 'green', shape: 'dot',
            text: RED._('websocket.status.connected', { count }),
            event, _session: sessionOf(node, session)
        };
    }

    const methods = {
        /**
         * Queues `data` for session `target` (0: every session of a listener, or
         * the live connection of a client); sent, in order, at the end of this
         * event-loop turn in one call.
         */
        queueSend(target, data) {
            this.outTargets.push(target);
            this.outPayloads.push(data);
            if (this.outProgram) this.outProgram.push(commands.OP.SEND, target, this.outPayloads.length - 1);
            this.scheduleFlush();
        },

        scheduleFlush() {
            if (!this.flushScheduled) {
                this.flushScheduled = true;
                setImmediate(this.flushOutbox);
            }
        },

        /** Sends to the session a msg came from; silently nothing if it is gone. */
        reply(id, data) {
            const session = this.sessionNumber(id);
            if (this.live.has(session)) {
                this.queueSend(session, data);
            } else if (this.cluster) {
                this.cluster.sendRemote(this, [id], data);
            }
        },

        broadcast(data) {
            this.queueSend(0, data);
        },

        /** The `_session.id` flows see for a session number (with a cluster: `<instance>-<hex>`). */
        sessionId(session) {
            return this.keyPrefix + messages.sessionKey(session);
        },

        /**
         * The session number a `_session.id` of this node names, or -1 (another
         * instance's, or not an id). A bare number stays local: a session that
         * came before the cluster was attached has one.
         */
        sessionNumber(id) {
            const local = this.keyPrefix !== '' && typeof id === 'string' && id.startsWith(this.keyPrefix);
            return messages.sessionNumber(local ? id.slice(this.keyPrefix.length) : id);
        },

        deliver(data, session) {
            const msg = messages.inboundMsg(data, this.wholemsg, this.sessionId(session));
            const list = this.inputNodes;
            for (let i = 0; i < list.length; i++) {
                try {
                    list[i].send(msg);
                } catch (err) {
                    this.error(RED._('websocket.errors.send-error') + ' ' + err.toString());
                }
            }
        },

        /**
         * Counts drops of a live session (the addon reports them before its close)
         * and warns of them at once, or at the end of the session's 10 s window,
         * so that the last count is logged even if the drops stop and it stays.
         */
        noteDrops(session, count) {
            if (!this.live.has(session)) return;
            this.dropped += count;
            const d = this.drops.get(session) || { total: 0, reported: 0, at: -Infinity, timer: null };
            d.total += count;
            this.drops.set(session, d);
            const wait = d.at + DROP_REPORT_MS - Date.now();
            if (wait <= 0) {
                this.reportDrops(session, false);
            } else if (!d.timer) {
                d.timer = setTimeout(() => {
                    d.timer = null;
                    try {
                        if (!this.closing) this.reportDrops(session, false);
                    } catch (err) {
                        this.error(err);
                    }
                }, wait);
                if (d.timer.unref) d.timer.unref();
            }
        },

        /** Warns of a session's drops not reported yet; `ended`: it closed, forget it. */
        reportDrops(session, ended) {
            const d = this.drops.get(session);
            if (!d) return;
            if (ended) {
                this.drops.delete(session);
                clearTimeout(d.timer);
                d.timer = null;
            }
            if (d.total === d.reported) return;
            d.reported = d.total;
            d.at = Date.now();
            this.peerWarnings.warn(RED._('websocket.errors.dropped', {
                count: d.total,
                session: this.sessionId(session),
                cap: formatSize(this.limits.maxQueueBytes)
            }));
        },

        setStatus(status) {
            if (this.richStatus) status = richStatus.decorate(this, status, RED);
            this.lastStatus = status;
            const shown = this.cluster ? this.cluster.decorate(status) : status;
            for (const n of this.statusNodes) {
                n.status(shown);
            }
        },

        registerInputNode(node) {
            if (!this.inputNodes.includes(node)) this.inputNodes = [...this.inputNodes, node];
        },

        removeInputNode(node) {
            this.inputNodes = this.inputNodes.filter((n) => n !== node);
        },

        /** An in or out node shows this config node's status until it closes. */
        watchStatus(node) {
            this.statusNodes.add(node);
            if (this.failure) {
                const noAddon = this.failure.code === 'ERR_WSRS_ADDON_LOAD';
                node.status({ fill: 'red', shape: 'ring', text: noAddon ? 'websocket.status.addon-missing' : 'common.status.error' });
                node.error(noAddon ? RED._('websocket.errors.addon-load', { message: this.failure.message }) : this.failure.message);
            } else if (this.lastStatus || this.cluster) {
                node.status(this.steadyStatus());
            }
        },

        /** The status shown now, without the event that set it (a Status node would read it as a new one). */
        steadyStatus() {
            const { event, _session, ...steady } = this.lastStatus || {};
            return this.cluster ? this.cluster.decorate(steady) : steady;
        },

        /** Shows the steady status again: the cluster's link changed, or the rich text did. */
        showStatus() {
            const shown = this.steadyStatus();
            for (const n of this.statusNodes) n.status(shown);
        },

        unwatchStatus(node) {
            this.statusNodes.delete(node);
        },

        /** The addon could not be loaded or refused the configuration. */
        fail(err) {
            this.failure = err;
            this.error(err.code === 'ERR_WSRS_ADDON_LOAD'
                ? RED._('websocket.errors.addon-load', { message: err.message })
                : err.message);
            for (const n of this.statusNodes) {
                n.status({ fill: 'red', shape: 'ring', text: 'common.status.error' });
            }
        },

        /** Closes the native side (1001 to every peer), then calls done. */
        closeNative(done) {
            this.flushOutbox();
            this.closing = true;
            stats.forget(this);
            richStatus.stop(this);
            // Counts not logged yet are logged now, as the warnings' summary is.
            for (const session of [...this.drops.keys()]) this.reportDrops(session, true);
            this.peerWarnings.close();
            this.sendWarnings.close();
            this.inputNodes = [];
            this.statusNodes.clear();
            const native = this.native;
            this.native = null;
            this.spare = null;
            if (!native) {
                return done();
            }
            native.close(1001).then(() => done(), (err) => {
                this.warn(err.message);
                done();
            });
        }
    };

    return { init, methods };
};
