'use strict';
// Connecting a websocket-client on demand: a msg to its `websocket out` node with
// `msg.websocket.connect` (true, or {url, headers}) or `msg.websocket.disconnect`.
// Namespaced under msg.websocket so that no msg of an existing flow is taken for one.

/**
 * The request a msg carries, or null if it is an ordinary msg:
 * {connect: true, url?, headers?: [[name, value]]} or {disconnect: true}.
 * Throws (a node error for the msg) on a malformed one.
 */
function requestOf(msg) {
    const ws = msg.websocket;
    if (!ws || typeof ws !== 'object' || (!ws.connect && !ws.disconnect)) return null;
    if (ws.connect && ws.disconnect) {
        throw new Error('msg.websocket asks to connect and to disconnect at once');
    }
    if (ws.disconnect) return { disconnect: true };
    const c = ws.connect === true ? {} : ws.connect;
    if (typeof c !== 'object' || Array.isArray(c)) {
        throw new Error('msg.websocket.connect must be true or an object {url, headers}');
    }
    const request = { connect: true };
    if (c.url !== undefined) {
        if (typeof c.url !== 'string' || !/^wss?:\/\//i.test(c.url)) {
            throw new Error('msg.websocket.connect.url must be a ws:// or wss:// URL');
        }
        request.url = c.url;
    }
    if (c.headers !== undefined) {
        if (!c.headers || typeof c.headers !== 'object' || Array.isArray(c.headers)) {
            throw new Error('msg.websocket.connect.headers must be an object of header names and values');
        }
        request.headers = Object.entries(c.headers)
            .filter(([, value]) => value !== undefined && value !== null)
            .map(([name, value]) => [name, String(value)]);
    }
    return request;
}

module.exports = { requestOf };
