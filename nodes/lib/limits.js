'use strict';
// The "Limits" properties of websocket-listener and websocket-client, read into
// what the addon takes. A blank property is the default, which is how the nodes
// behaved before the property existed, so a flow from core runs as it always did.
// The editor (websocket.html) checks the same grammar before a deploy; a value
// that is still unusable here (a hand-edited flow) is ignored with a warning.

const url = require('url');

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const UNITS = { b: 1, k: KiB, kib: KiB, m: MiB, mib: MiB, g: GiB, gib: GiB };
/** Timers in the addon are u32 milliseconds: a little over 49 days. */
const MAX_MS = 0xffffffff;

/** Property names: a `lim` prefix that no core websocket property has or is likely to get. */
const PROPS = Object.freeze({
    maxMessage: 'limMsg',
    maxQueue: 'limQueue',
    policy: 'limPolicy',
    handshake: 'limHandshake',
    idle: 'limIdle',
    maxConnections: 'limConns',
    origins: 'limOrigins'
});

/** Effective values of blank properties. 0 means "no limit". */
const DEFAULTS = Object.freeze({
    maxMessageBytes: 100 * MiB,
    maxQueueBytes: 256 * MiB,
    queuePolicy: 'close',
    listenerHandshakeMs: 0,
    clientHandshakeMs: 30000,
    idleTimeoutMs: 0,
    maxConnections: 0,
    origins: Object.freeze([])
});

function blank(v) {
    return v === undefined || v === null || String(v).trim() === '';
}

/** "32" (MiB), "0.5", "64 KiB", "1G", "4096 B": bytes, or NaN. */
function parseSize(v) {
    const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(String(v));
    const unit = m && (m[2] === '' ? MiB : UNITS[m[2].toLowerCase()]);
    const bytes = unit ? Math.round(Number(m[1]) * unit) : NaN;
    return bytes >= 1 ? bytes : NaN;
}

/** A positive number of seconds, as milliseconds (at least 1), or NaN. */
function parseSeconds(v) {
    const text = String(v).trim();
    if (!/^(\d+(\.\d+)?|\.\d+)$/.test(text) || Number(text) <= 0) return NaN;
    return Math.min(MAX_MS, Math.max(1, Math.round(Number(text) * 1000)));
}

function parseCount(v) {
    const text = String(v).trim();
    return /^\d{1,9}$/.test(text) && Number(text) >= 1 ? Number(text) : NaN;
}

const DEFAULT_PORTS = { http: '80', https: '443', ws: '80', wss: '443' };

/**
 * An origin as a browser sends it: lower-case scheme and host (IDNs in punycode),
 * no default port, no path. `null` (sandboxed pages, files) is kept as is.
 * Returns null for anything else.
 */
function normalizeOrigin(text) {
    const t = String(text).trim();
    if (t.toLowerCase() === 'null') return 'null';
    const m = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[^\s/:?#[\]@]+)(?::(\d{1,5}))?\/?$/i.exec(t);
    if (!m) return null;
    const scheme = m[1].toLowerCase();
    let host = m[2].toLowerCase();
    if (/[^\x00-\x7f]/.test(host)) {
        host = url.domainToASCII(host);
        if (!host) return null;
    }
    const port = m[3] === undefined ? '' : String(Number(m[3]));
    if (Number(port) > 65535) return null;
    return scheme + '://' + host + (port === '' || DEFAULT_PORTS[scheme] === port ? '' : ':' + port);
}

/** A comma-separated allow-list: normalized origins, or null if an entry is not one. */
function parseOrigins(v) {
    const list = [];
    for (const entry of String(v).split(',')) {
        if (entry.trim() === '') continue;
        const origin = normalizeOrigin(entry);
        if (origin === null) return null;
        if (!list.includes(origin)) list.push(origin);
    }
    return list;
}

/**
 * An empty list allows every origin, as core. So does a request without an
 * Origin header: browsers always send one, and the list is there to keep other
 * sites' pages out; non-browser clients (curl, `ws`, a websocket-client) send none.
 */
function originAllowed(list, origin) {
    if (list.length === 0 || origin === undefined) return true;
    const normal = normalizeOrigin(origin);
    return normal !== null && list.includes(normal);
}

/**
 * The limits of config node properties `n`, for a listener (`isListener`) or a
 * client: {maxMessageBytes, maxQueueBytes, queuePolicy, handshakeMs, idleTimeoutMs,
 * maxConnections, origins}. `warn(prop, value)` hears of each unusable value.
 */
function limitsOf(n, isListener, warn) {
    function read(prop, parse, fallback) {
        const v = n[prop];
        if (blank(v)) return fallback;
        const parsed = parse(v);
        if (parsed === null || Number.isNaN(parsed)) {
            warn(prop, v);
            return fallback;
        }
        return parsed;
    }
    const policy = (v) => (String(v).trim() === 'close' || String(v).trim() === 'drop' ? String(v).trim() : null);
    return {
        maxMessageBytes: read(PROPS.maxMessage, parseSize, DEFAULTS.maxMessageBytes),
        maxQueueBytes: read(PROPS.maxQueue, parseSize, DEFAULTS.maxQueueBytes),
        queuePolicy: read(PROPS.policy, policy, DEFAULTS.queuePolicy),
        handshakeMs: read(PROPS.handshake, parseSeconds, isListener ? DEFAULTS.listenerHandshakeMs : DEFAULTS.clientHandshakeMs),
        idleTimeoutMs: read(PROPS.idle, parseSeconds, DEFAULTS.idleTimeoutMs),
        maxConnections: isListener ? read(PROPS.maxConnections, parseCount, DEFAULTS.maxConnections) : 0,
        origins: isListener ? read(PROPS.origins, parseOrigins, DEFAULTS.origins) : DEFAULTS.origins
    };
}

/** Bytes for a log line: "32 MiB", "512 KiB", "100 B". */
function formatSize(bytes) {
    for (const [unit, size] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]]) {
        if (bytes >= size) return +(bytes / size).toFixed(2) + ' ' + unit;
    }
    return bytes + ' B';
}

module.exports = { PROPS, DEFAULTS, limitsOf, parseSize, parseSeconds, parseCount, normalizeOrigin, parseOrigins, originAllowed, formatSize };
