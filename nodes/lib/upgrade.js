'use strict';
// Routes upgrade requests on Node-RED's own HTTP server to listener nodes and
// hands each connection to the Rust transport. Paths that are not ours are left
// alone: other handlers (the editor's own websocket) share the event.

const http = require('http');

/** fullPath -> listener config node, across every Node-RED server in the process. */
const routes = new Map();
const attached = new WeakSet();

function attach(server) {
    if (server && !attached.has(server)) {
        server.on('upgrade', onUpgrade);
        attached.add(server);
    }
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The path of a request target, as core's `url.parse(req.url).pathname` gives it:
 * query and fragment cut off, the scheme and authority of an absolute-form target
 * ("http://host:1880/ws/echo") too, and nothing else changed: no dot segment
 * resolved, no percent-decoding, no case folding (and, unlike core, a backslash
 * stays one). So only a target naming a deployed listener's path exactly reaches it.
 */
function pathOf(url) {
    let path = url.replace(ABSOLUTE_FORM, '');
    if (path.length !== url.length && !path.startsWith('/')) path = '/' + path;
    const end = path.search(/[?#]/);
    return end >= 0 ? path.slice(0, end) : path;
}

function onUpgrade(req, socket, head) {
    const listener = routes.get(pathOf(req.url));
    if (listener) {
        listener.acceptUpgrade(req, socket, head);
    }
}

/** Refuse a handshake with an HTTP status, as `ws` does. */
function refuse(socket, code, message, headers) {
    if (socket.destroyed) return;
    const text = message || http.STATUS_CODES[code] || 'Error';
    let head = 'HTTP/1.1 ' + code + ' ' + (http.STATUS_CODES[code] || 'Error') + '\r\n' +
        'Connection: close\r\nContent-Type: text/plain\r\nContent-Length: ' + Buffer.byteLength(text) + '\r\n';
    for (const name of Object.keys(headers || {})) {
        head += name + ': ' + headers[name] + '\r\n';
    }
    socket.once('finish', () => socket.destroy());
    socket.end(head + '\r\n' + text);
}

/**
 * Applies settings.webSocketNodeVerifyClient (same signature as `ws`'s
 * verifyClient, as core uses it), then calls `proceed()` or refuses. While an
 * asynchronous verifier runs, the socket stops reading so that no byte the
 * client sends meanwhile lands in JS and is lost to the handover. With
 * `timeoutMs`, a verifier that has not answered by then is not waited for: the
 * client gets 503 (the server could not decide in time, which is not the
 * client's fault, as 408 would say) and `onTimeout()` is called.
 */
function verify(verifyClient, req, socket, proceed, { timeoutMs = 0, onTimeout, onRefuse } = {}) {
    const refused = onRefuse || (() => {});
    if (typeof verifyClient !== 'function') {
        return proceed();
    }
    const info = {
        origin: originOf(req),
        secure: !!(req.socket.authorized || req.socket.encrypted),
        req
    };
    if (verifyClient.length === 2) {
        stopReading(socket);
        let timer = null;
        let settled = false;
        const settle = () => {
            if (settled) return false;
            settled = true;
            clearTimeout(timer);
            socket.off('close', settle);
            return true;
        };
        // Gone meanwhile (the client left, or Node-RED's inboundWebSocketTimeout).
        socket.once('close', settle);
        if (timeoutMs > 0) {
            timer = setTimeout(() => {
                if (!settle()) return;
                if (onTimeout) onTimeout();
                refuse(socket, 503, 'The WebSocket handshake could not be completed in time');
            }, timeoutMs);
        }
        verifyClient(info, (ok, code, message, headers) => {
            if (!settle()) return;
            if (ok) proceed();
            else {
                refused();
                refuse(socket, code || 401, message, headers);
            }
        });
        return;
    }
    if (verifyClient(info)) proceed();
    else {
        refused();
        refuse(socket, 401);
    }
}

/** The Origin a browser sent (`Sec-WebSocket-Origin` in protocol version 8); undefined if none. */
function originOf(req) {
    const version = +req.headers['sec-websocket-version'];
    return req.headers[version === 8 ? 'sec-websocket-origin' : 'origin'];
}

/**
 * Stops reading while the handshake is pending. A plain TCP socket stops libuv
 * itself (its descriptor goes to Rust, and whatever Node already buffered is
 * collected by takeBuffered). A socket that will be bridged (TLS, or one without
 * a descriptor) stays with JS, so it is only paused as a stream: what arrives meanwhile waits in its buffer, and
 * reading resumes normally later. Stopping its handle under the stream would
 * leave the stream believing a read is still pending, and it would never read
 * again.
 */
function stopReading(socket) {
    if (descriptorOf(socket) < 0) {
        // Bridged (TLS, or no descriptor as on Windows): stays a JS stream.
        socket.pause();
        return;
    }
    const handle = socket._handle;
    if (handle && typeof handle.readStop === 'function') {
        handle.readStop();
    }
}

/** The descriptor of a plain TCP socket, or -1 where a handover is not possible. */
function descriptorOf(socket) {
    if (process.platform === 'win32' || socket.encrypted) return -1;
    const handle = socket._handle;
    return handle && typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : -1;
}

/** `head` plus whatever Node buffered since, so nothing the client sent is lost. */
function takeBuffered(socket, head) {
    if (socket.readableLength > 0) {
        const rest = socket.read();
        if (rest) return Buffer.concat([head, rest]);
    }
    return head;
}

/** "address:port" of the peer (IPv6 in brackets), for the live view's session list. */
function remoteOf(socket) {
    const a = socket && socket.remoteAddress;
    if (!a) return '';
    return (a.includes(':') ? '[' + a + ']' : a) + ':' + socket.remotePort;
}

function requestInfo(req) {
    const h = req.headers;
    return {
        method: req.method || '',
        upgrade: h.upgrade || '',
        key: h['sec-websocket-key'] || '',
        version: h['sec-websocket-version'] || '',
        protocol: h['sec-websocket-protocol'] || '',
        remote: remoteOf(req.socket)
    };
}

module.exports = { routes, attach, pathOf, verify, originOf, refuse, stopReading, descriptorOf, takeBuffered, requestInfo };
