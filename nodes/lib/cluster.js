'use strict';
// The websocket-cluster config node: one link to Redis that listeners share, so
// that their broadcasts, room publishes and replies reach sessions held by other
// Node-RED instances (README, "Several Node-RED instances"). The work is in
// Rust (src/cluster.rs); here are the node, its warning and the status shown.

const addon = require('./addon');
const { tlsOptions } = require('./client-options');

/** A disconnection (and its reconnection) is logged at most this often, in ms;
 * the cluster tests, which make several outages a minute, set 0. */
const WARN_EVERY = /^\d+$/.test(process.env.WSRS_TEST_CLUSTER_LOG_EVERY || '')
    ? Number(process.env.WSRS_TEST_CLUSTER_LOG_EVERY)
    : 60000;

const CLUSTER_ID = /^([0-9a-f]{12})-([0-9a-f]{1,8})$/;

/** `<instance>-<hex>` as [instance, session number], or null for any other id. */
function parseId(id) {
    const m = typeof id === 'string' ? CLUSTER_ID.exec(id) : null;
    const n = m ? parseInt(m[2], 16) : 0;
    return n > 0 ? [m[1], n] : null;
}

/** `url` without its user-info (`redis://user:pw@host` → `redis://host`): what
 * logs show. Credentials belong in the node's Username and Password fields. */
function withoutUserInfo(url) {
    return String(url || '').trim().replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}

/** The retention field as a whole number of entries, or undefined for the default. */
function retentionOf(v) {
    const n = Number(String(v === undefined ? '' : v).trim() || NaN);
    return Number.isInteger(n) && n > 0 && n <= 0xffffffff ? n : undefined;
}

module.exports = function (RED) {
    function WebSocketClusterNode(n) {
        RED.nodes.createNode(this, n);
        this.url = n.url;
        // Logged in every disconnected/reconnected line: never with a password.
        this.shownUrl = withoutUserInfo(n.url);
        this.prefix = n.prefix;
        this.mode = n.mode === 'streams' ? 'streams' : 'pubsub';
        this.connected = false;
        this.warned = false;
        this.logged = false;
        this.lastWarned = -Infinity;
        this.closed = false;
        this.listeners = new Set();
        this.native = null;
        const creds = this.credentials || {};
        try {
            const tls = tlsOptions(RED, n.tls);
            this.native = new (addon.load().Cluster)({
                url: String(n.url || '').trim(),
                username: creds.username || undefined,
                password: creds.password || undefined,
                ca: tls && tls.ca,
                cert: tls && tls.cert,
                key: tls && tls.key,
                verify: tls ? tls.verify : undefined,
                prefix: typeof n.prefix === 'string' ? n.prefix : 'nr-ws:',
                mode: this.mode,
                retention: retentionOf(n.retention)
            }, (kind, detail) => this.onEvent(kind, detail));
            this.instance = addon.load().instanceId();
        } catch (err) {
            this.error(RED._('websocket.cluster.failed', { message: err.message }));
        }
        this.on('close', (removed, done) => {
            this.closed = true;
            if (this.native) this.native.close();
            this.native = null;
            this.listeners.clear();
            done();
        });
    }

    Object.assign(WebSocketClusterNode.prototype, {
        /** From the addon: the link's changes, and what was lost (each once per outage). */
        onEvent(kind, detail) {
            // Runs as the addon's callback: it must not throw.
            try {
                // Calls queued before close() may still come: nothing to say then.
                if (this.closed) return;
                if (kind === 'connected' || kind === 'disconnected') this.onState(kind === 'connected', detail);
                else if (kind === 'lost') this.warn(RED._('websocket.cluster.lost', { path: detail }));
                else if (kind === 'trimmed') this.warn(RED._('websocket.cluster.trimmed', { path: detail }));
                else if (kind === 'dropped') this.warn(RED._('websocket.cluster.dropped', { reason: detail }));
                else if (kind === 'roomstoolong') this.warn(RED._('websocket.cluster.rooms-too-long'));
                else if (kind === 'toolarge') {
                    const [size, limit] = String(detail).split(' ');
                    this.warn(RED._('websocket.cluster.too-large', { size, limit }));
                }
            } catch (err) {
                // Nothing to do: a warning lost is not worth a crash.
            }
        },

        /** Milliseconds, for the log's rate (tests replace it). */
        clock() {
            return Date.now();
        },

        onState(connected, reason) {
            try {
                this.connected = connected;
                if (connected) {
                    // Said only of an outage whose start was logged.
                    if (this.warned && this.logged) this.log(RED._('websocket.cluster.reconnected', { url: this.shownUrl }));
                    this.warned = false;
                    this.logged = false;
                    this.status({ fill: 'green', shape: 'dot', text: 'common.status.connected' });
                } else {
                    // One warning per outage, and at most one a minute: a link
                    // that keeps dropping does not fill the log.
                    if (!this.warned) {
                        const now = this.clock();
                        this.logged = !(now - this.lastWarned < WARN_EVERY);
                        if (this.logged) {
                            this.lastWarned = now;
                            this.warn(RED._('websocket.cluster.disconnected', { url: this.shownUrl, reason }));
                        }
                    }
                    this.warned = true;
                    this.status({ fill: 'red', shape: 'ring', text: 'common.status.disconnected' });
                }
                for (const l of this.listeners) l.showStatus();
            } catch (err) {
                // Nothing to do: the next change is reported anew.
            }
        },

        /** A listener's status, with the cluster's state when its link is down. */
        decorate(status) {
            if (this.connected) return status || {};
            const off = RED._('websocket.cluster.status-off');
            const s = status || {};
            const text = s.fill === 'green' && typeof s.text === 'string' ? s.text + ' · ' + off : off;
            return Object.assign({}, s, { fill: 'yellow', shape: 'ring', text });
        },

        /** Sends `data` to the sessions of other instances among `ids`. */
        sendRemote(listener, ids, data) {
            if (!this.native || !listener.native) return;
            const byInstance = new Map();
            for (const id of ids) {
                const parsed = parseId(id);
                if (parsed === null || parsed[0] === this.instance) continue;
                const [instance, n] = parsed;
                if (!byInstance.has(instance)) byInstance.set(instance, new Set());
                // A session named twice gets it once, as a local one.
                byInstance.get(instance).add(n);
            }
            if (byInstance.size === 0) return;
            // What the turn queued before (a broadcast, a room publish) goes to
            // Redis first, so that each session gets a flow's sends in order.
            listener.flushOutbox();
            for (const [instance, sessions] of byInstance) {
                listener.native.sendRemote(instance, [...sessions], data);
            }
        },

        /** `listener` (started) joins the cluster: ids, traffic and status. */
        attach(listener) {
            if (!this.native || !listener.native) return;
            listener.native.attachCluster(this.native, listener.fullPath);
            listener.keyPrefix = this.instance + '-';
            listener.cluster = this;
            this.listeners.add(listener);
            listener.showStatus();
        },

        detach(listener) {
            this.listeners.delete(listener);
        }
    });

    RED.nodes.registerType('websocket-cluster', WebSocketClusterNode, {
        credentials: { username: { type: 'text' }, password: { type: 'password' } }
    });
};
