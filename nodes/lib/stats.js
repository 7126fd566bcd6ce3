'use strict';
// Live counters of the config nodes (issue 14): the addon's, read on demand with
// one call, plus the refusals JS decides itself (origin list, verifyClient). The
// admin endpoint (lib/admin.js) and the opt-in rich status read them here.


/** Every live config node of ours in this process, by id. */
const nodes = new Map();

/** A session whose queue holds this share of its cap is marked in the editor. */
const NEAR_CAP = 0.8;

function init(node) {
    node.refusals = { origin: 0, verify: 0, verifyTimeout: 0 };
    nodes.set(node.id, node);
}

function forget(node) {
    if (nodes.get(node.id) === node) nodes.delete(node.id);
}

/** Counts a refusal JS made: 'origin', 'verify' or 'verifyTimeout'. */
function refused(node, why) {
    node.refusals[why]++;
}

function zero() {
    return {
        connections: 0, peak: 0, opens: 0, closes: {}, msgsIn: 0, msgsOut: 0, bytesIn: 0, bytesOut: 0,
        queuedBytes: 0, queuedPeak: 0, dropped: 0, queueFull: 0, refusedTooMany: 0, refusedHandshake: 0, refusedAuth: 0,
        connectFailed: 0
    };
}

/** What needs a look: a queue near its cap, drops, closes for a full queue, refusals. */
function attentionOf(s, node, topQueued) {
    const marks = [];
    const cap = node.limits && node.limits.maxQueueBytes;
    if (cap && topQueued >= cap * NEAR_CAP) marks.push('queue-near-cap');
    if (s.dropped > 0) marks.push('drops');
    if (s.queueFull > 0) marks.push('queue-full');
    const refusals = s.refusedTooMany + s.refusedAuth + s.refusedOrigin + s.refusedVerify + s.refusedVerifyTimeout;
    if (refusals > 0) marks.push('refusals');
    if (s.connectFailed > 0) marks.push('connect-failed');
    return marks;
}

/** One config node's figures, as the endpoint returns them. */
function statsOf(node) {
    let s = zero();
    let topQueued = 0;
    if (node.native) {
        try {
            s = node.native.stats();
            if (node.isListener) {
                const top = node.native.sessions({ sort: 'queued', limit: 1 }).sessions[0];
                topQueued = top ? top.queuedBytes : 0;
            } else {
                topQueued = s.queuedBytes;
            }
        } catch (err) {
            // Closing meanwhile: shown as zeros.
        }
    }
    // A listener with a cluster: what other instances did not get (the cluster
    // node's count, shared by the listeners that name it).
    const cl = node.isListener && node.cluster && node.cluster.native;
    if (cl) {
        try {
            s.cluster = { id: node.cluster.id, connected: cl.connected, dropped: cl.dropped, tooLarge: cl.tooLarge };
        } catch (err) {
            // Closing meanwhile: left out.
        }
    }
    const r = node.refusals;
    Object.assign(s, { refusedOrigin: r.origin, refusedVerify: r.verify, refusedVerifyTimeout: r.verifyTimeout });
    return Object.assign({
        id: node.id,
        type: node.type,
        name: node.name || '',
        kind: node.isListener ? 'listener' : 'client',
        path: node.isListener ? node.fullPath || node.path : clientTarget(node.path),
        running: !!node.native,
        maxQueueBytes: node.limits ? node.limits.maxQueueBytes : 0,
        maxConnections: node.limits ? node.limits.maxConnections || 0 : 0,
        attention: attentionOf(s, node, topQueued)
    }, s);
}

/** A client's URL without credentials: no userinfo, and no query (it may hold a token). */
function clientTarget(url) {
    return typeof url === 'string' ? url.replace(/\/\/[^/@]*@/, '//').replace(/[?#].*$/, '') : '';
}

function all() {
    return [...nodes.values()].map(statsOf);
}

/** A page of a listener's sessions (most queued first by default), ids as `_session.id`. */
function sessionsOf(node, sort, limit) {
    if (!node.native) return { total: 0, sessions: [] };
    const list = node.isListener ? node.native.sessions({ sort, limit }) : node.native.sessions();
    for (const s of list.sessions) {
        s.id = node.sessionId(s.id);
    }
    return list;
}

module.exports = { nodes, init, forget, refused, statsOf, all, sessionsOf, NEAR_CAP };
