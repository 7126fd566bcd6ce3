'use strict';
// Shared helpers for the node tests: a real ws client against the helper's server.

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

/** Resolves with the next message: {data, isBinary}. */
function nextMessage(ws) {
    return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
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

function closed(ws) {
    return new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve({ code: -1 });
        ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
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

/** Polls `check` until it returns truthy (bounded). */
async function until(check, what, ms = 5000) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        const v = await check();
        if (v) return v;
        await delay(10);
    }
    throw new Error('timed out waiting for ' + what);
}

module.exports = { WebSocket, connect, nextMessage, messages, closed, received, wsUrl, delay, until };
