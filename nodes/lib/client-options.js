'use strict';
// Builds the addon's client options from a websocket-client config node, its
// tls-config node and Node-RED's settings, the way core reads them.

const crypto = require('crypto');
const { limitsOf } = require('./limits');
const { nodeTrust } = require('./trust');
const { readPfx } = require('./pfx');

function text(v) {
    return v === undefined || v === null || v === '' ? undefined : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** A passphrase-protected key is decrypted here; Rust takes plain PKCS#8. */
function plainKey(key, passphrase) {
    if (!key) return undefined;
    if (!passphrase) return text(key);
    return crypto.createPrivateKey({ key, passphrase, format: 'pem' }).export({ type: 'pkcs8', format: 'pem' });
}

/** Core's header list: [{keyType, keyValue, valueType, valueValue}]. */
function headerPairs(RED, node, headers) {
    const pairs = [];
    for (const h of Array.isArray(headers) ? headers : []) {
        const name = h.keyType === 'other' ? h.keyValue : h.keyType;
        let value;
        if (h.valueType === 'other') value = h.valueValue;
        else if (h.valueType === 'env') value = RED.util.evaluateNodeProperty(h.valueValue, 'env', node);
        else value = h.valueType;
        if (name && value) pairs.push([String(name), String(value)]);
    }
    return pairs;
}

function tlsOptions(RED, tlsId) {
    const tlsNode = tlsId ? RED.nodes.getNode(tlsId) : null;
    if (!tlsNode) return undefined;
    const o = tlsNode.addTLSOptions({});
    // Node-RED 5's tls-config can hold a PKCS#12 bundle instead of PEM (its
    // passphrase is the bundle's then).
    const pfx = o.pfx ? readPfx(o.pfx, o.passphrase) : undefined;
    return {
        ca: text(o.ca),
        cert: pfx ? pfx.cert : text(o.cert),
        key: pfx ? pfx.key : plainKey(o.key, o.passphrase),
        extraCa: pfx ? pfx.ca : undefined,
        // As Node: only an explicit false turns verification off.
        verify: o.rejectUnauthorized !== false,
        servername: text(o.servername),
        alpn: Array.isArray(o.ALPNProtocols) ? text(o.ALPNProtocols[0]) : undefined
    };
}

function proxyOptions(settings) {
    const p = settings.proxyOptions || {};
    const mode = process.env.NR_PROXY_MODE === 'legacy' || process.env.NR_PROXY_MODE === 'strict' ? process.env.NR_PROXY_MODE : p.mode;
    return {
        legacy: mode === 'legacy',
        lowerCaseOnly: p.lowerCaseOnly === true,
        favourUpperCase: p.favourUpperCase === true,
        excludeNpm: p.excludeNpm === true
    };
}

/** A blank or unusable setting is the default; the addon raises a tiny one to its minimum. */
function number(v, fallback) {
    if (v === undefined || v === null || String(v).trim() === '') return fallback;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? Math.round(n) : fallback;
}

/** A node's delay in seconds (blank: none, so the setting applies) as milliseconds. */
function seconds(v) {
    const text = v === undefined || v === null ? '' : String(v).trim();
    // As the editor validates it; anything else leaves the setting in force.
    if (!/^(\d+(\.\d+)?|\.\d+)$/.test(text) || Number(text) <= 0) return undefined;
    return Math.min(Math.round(Number(text) * 1000), 0xffffffff);
}

/** `limits` as read by lib/limits.js (by default from `n`, bad values ignored). */
function clientOptions(RED, node, n, heartbeatMs, subprotocols, limits = limitsOf(n, false, () => {})) {
    return {
        url: n.path,
        subprotocols,
        headers: headerPairs(RED, node, n.headers),
        heartbeatMs,
        tls: tlsOptions(RED, n.tls),
        trust: nodeTrust((text) => node.warn(text)),
        proxy: proxyOptions(RED.settings),
        reconnect: n.reconnect !== 'off',
        connectAtStart: n.connectOn !== 'request',
        reconnectMs: seconds(n.rcDelay) ?? number(RED.settings.websocketClientReconnectDelay, 3000),
        reconnectMaxMs: seconds(n.rcMaxDelay) ?? number(RED.settings.websocketClientReconnectMaxDelay, 60000),
        connectTimeoutMs: limits.handshakeMs,
        idleTimeoutMs: limits.idleTimeoutMs,
        maxMessageBytes: limits.maxMessageBytes,
        maxQueueBytes: limits.maxQueueBytes,
        queuePolicy: limits.queuePolicy
    };
}

module.exports = { clientOptions, headerPairs, plainKey, seconds, tlsOptions };
