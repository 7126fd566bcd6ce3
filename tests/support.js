'use strict';
// Shared helpers for the node tests: a real ws client against the helper's server.

const net = require('net');
const tls = require('tls');
const WebSocket = require('ws');

/** Opens a ws client and resolves once it is open. */
function connect(url, protocols, options) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, protocols, options);
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error('HTTP ' + res.statusCode), { statusCode: res.statusCode })));
    });
}

/** Rejects if `promise` has not settled within `ms`. */
function within(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((resolve, reject) => {
            timer = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms waiting for ' + what)), ms);
        })
    ]).finally(() => clearTimeout(timer));
}

/**
 * `promise` bounded by `options.ms` when given, else as is. An options object, not
 * a bare number, so that point-free use (`clients.map(closed)`, which passes the
 * index second) stays unbounded.
 */
function bounded(promise, options, what) {
    const ms = options && typeof options === 'object' ? options.ms : undefined;
    return typeof ms === 'number' ? within(promise, ms, what) : promise;
}

/** Resolves with the next message: {data, isBinary}; rejects after `ms` if given ({ms}). */
function nextMessage(ws, options) {
    return bounded(new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary }))), options, 'a message');
}

/** Collects `n` messages. */
function messages(ws, n) {
    return new Promise((resolve) => {
        const got = [];
        const on = (data, isBinary) => {
            got.push({ data, isBinary });
            if (got.length === n) {
                ws.off('message', on);
                resolve(got);
            }
        };
        ws.on('message', on);
    });
}

/** Resolves with {code, reason} once `ws` has closed ({code: -1} if it already had); rejects after `ms` if given ({ms}). */
function closed(ws, options) {
    return bounded(new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve({ code: -1, reason: '' });
        ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }), options, 'the connection to close');
}

/** Resolves with the next `count` msgs a helper node receives. */
function received(node, count = 1) {
    return new Promise((resolve) => {
        const got = [];
        node.on('input', (msg) => {
            got.push(msg);
            if (got.length === count) resolve(count === 1 ? got[0] : got);
        });
    });
}

function wsUrl(helper, path) {
    return helper.url().replace(/^http/, 'ws') + path;
}

function delay(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns truthy (bounded by `ms`; checked at least once). */
async function until(check, what, ms = 5000) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await check();
        if (v) return v;
        if (Date.now() > end) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
        await delay(10);
    }
}

/**
 * ws clients of one server, tracked so that a test's leftovers can be closed:
 * `connect(path, ms)` resolves once open (bounded), `connectOverTcp(path, ms)`
 * likewise with {ws, tcp}, `tcp` being the TCP socket under the client (under its
 * TLS socket on wss://, which cannot reset itself), so that a test can send an
 * RST; `track(ws)` adopts a client made elsewhere, `closeAll()` closes every one
 * (closing handshake where open, bounded, then terminate). `options` go to every
 * `new WebSocket` (e.g. `ca`).
 */
function clientPool(base, options = {}) {
    const sockets = [];
    function track(ws) {
        sockets.push(ws);
        ws.on('error', () => {}); // failures show up as close/timeouts in the assertions
        return ws;
    }
    function opened(ws, urlPath, ms) {
        return within(new Promise((resolve, reject) => {
            ws.once('open', () => resolve(ws));
            ws.once('error', (err) => reject(new Error('connecting to ' + urlPath + ': ' + err.message)));
            ws.once('unexpected-response', (req, res) => reject(new Error('HTTP ' + res.statusCode + ' on ' + urlPath)));
        }), ms, 'a connection to ' + urlPath);
    }
    function connect(urlPath, ms = 5000, protocols) {
        return opened(track(new WebSocket(base() + urlPath, protocols, options)), urlPath, ms);
    }
    async function connectOverTcp(urlPath, ms = 5000) {
        const url = base() + urlPath;
        let tcp = null;
        const createConnection = (opts) => {
            tcp = net.connect(Number(opts.port), opts.host);
            return url.startsWith('wss:') ? tls.connect({ ...opts, socket: tcp }) : tcp;
        };
        const ws = await opened(track(new WebSocket(url, undefined, { ...options, createConnection })), urlPath, ms);
        return { ws, tcp };
    }
    async function closeAll() {
        const all = sockets.splice(0);
        await Promise.all(all.map((ws) => {
            if (ws.readyState !== WebSocket.OPEN) return null;
            const done = within(new Promise((resolve) => ws.once('close', resolve)), 1000, 'close').catch(() => {});
            ws.close(1000);
            return done;
        }));
        for (const ws of all) {
            try {
                ws.terminate();
            } catch (err) { /* already gone */ }
        }
    }
    return { connect, connectOverTcp, track, closeAll };
}

/** Every status `node` is given from now on (it still shows them). */
function statusLog(node) {
    const log = [];
    const orig = node.status.bind(node);
    node.status = (s) => {
        log.push(s);
        orig(s);
    };
    return log;
}

/** Every msg a (helper) node receives from now on. */
function collect(node) {
    const got = [];
    node.on('input', (msg) => got.push(msg));
    return got;
}

module.exports = { WebSocket, connect, nextMessage, messages, closed, received, wsUrl, delay, until, within, clientPool, statusLog, collect };
