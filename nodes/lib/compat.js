'use strict';
// For code that reaches into core's config nodes (other nodes, tests): `isServer`;
// the config node's own 'opened' / 'closed' / 'erro' events, as core emits them;
// and a listener's `server`, an EventEmitter whose 'connection' event gives a
// socket-like object per session (protocol, readyState, send, close, terminate,
// and 'message' / 'close' events), as core's `ws` server does. Nothing of the
// last is built unless something listens for 'connection'.

const { EventEmitter } = require('events');
const commands = require('./commands');

const OPEN = 1;
const CLOSED = 3;

/** One session, seen as core's `ws` socket. */
class SessionSocket extends EventEmitter {
    constructor(config, session, protocol) {
        super();
        this.config = config;
        this.session = session;
        this.id = config.sessionId(session);
        this.protocol = protocol || '';
        this.readyState = OPEN;
    }

    /** Text or binary (a Buffer), queued as a reply; `cb(err)` as `ws` calls it. */
    send(data, options, cb) {
        if (typeof options === 'function') cb = options;
        if (this.readyState !== OPEN) {
            const err = new Error('WebSocket is not open');
            if (typeof cb === 'function') return process.nextTick(cb, err);
            throw err;
        }
        this.config.queueSend(this.session, Buffer.isBuffer(data) ? data : String(data));
        if (typeof cb === 'function') process.nextTick(cb);
    }

    close(code, reason) {
        if (this.readyState !== OPEN) return;
        code = code === undefined ? 1000 : code;
        reason = reason === undefined ? '' : String(reason);
        if (!commands.closeCodeAllowed(code) || Buffer.byteLength(reason) > 123) {
            // As `ws` does for a code or reason that may not be sent.
            throw new TypeError('invalid close code or reason');
        }
        const request = { room: null, join: null, leave: null, rooms: false, close: { code, reason } };
        commands.queue(this.config, { _session: { type: 'websocket', id: this.id } }, request, undefined);
    }

    terminate() {
        this.close(1001);
    }
}

/** Sets up `isServer` and the lazy `server` of a config node. */
function init(node, isServer) {
    node.isServer = isServer;
    node.compatSockets = null;
    if (!isServer) return;
    let server = null;
    Object.defineProperty(node, 'server', {
        configurable: true,
        enumerable: false,
        get() {
            if (!server) {
                server = new EventEmitter();
                server.clients = new Set();
                // Sockets are made for sessions that open once something listens.
                server.on('newListener', (event) => {
                    if (event === 'connection' && !node.compatSockets) node.compatSockets = new Map();
                });
                node.compatServer = server;
            }
            return server;
        }
    });
}

/** Emits `event` on the config node, with `make()`'s object, only if something listens. */
function tell(node, event, make) {
    if (typeof node.listenerCount === 'function' && node.listenerCount(event) > 0) node.emit(event, make());
}

/** A session opened (`protocol` as negotiated). */
function opened(node, session, protocol, count) {
    tell(node, 'opened', () => ({ count: node.isServer ? count : '', id: node.sessionId(session) }));
    if (!node.compatSockets) return;
    const socket = new SessionSocket(node, session, protocol);
    node.compatSockets.set(session, socket);
    node.compatServer.clients.add(socket);
    node.compatServer.emit('connection', socket, { url: node.fullPath, headers: {} });
}

/** A message from `session`: false unless a socket wanted it. */
function message(node, session, data, isBinary) {
    const socket = node.compatSockets && node.compatSockets.get(session);
    if (socket) socket.emit('message', data, isBinary);
}

function closed(node, session, code, count) {
    tell(node, 'closed', () => ({ count: node.isServer ? count : '', id: node.sessionId(session) }));
    const socket = node.compatSockets && node.compatSockets.get(session);
    if (!socket) return;
    node.compatSockets.delete(session);
    node.compatServer.clients.delete(socket);
    socket.readyState = CLOSED;
    socket.emit('close', code, '');
}

function errored(node, session, text) {
    tell(node, 'erro', () => ({ err: new Error(text), id: node.sessionId(session) }));
}

module.exports = { init, opened, message, closed, errored, SessionSocket };
