'use strict';
// Node-RED's websocket nodes, with the transport in Rust. Same type names and
// properties as core; this file only maps Node-RED's node API onto the addon.

const addon = require('./lib/addon');
const upgrade = require('./lib/upgrade');
const bridge = require('./lib/bridge');
const messages = require('./lib/messages');
const { clientOptions } = require('./lib/client-options');
const limits = require('./lib/limits');
const events = require('./lib/events');
const commands = require('./lib/commands');
const clientControl = require('./lib/client-control');
const auth = require('./lib/auth');
const compat = require('./lib/compat');
const { authOptions } = auth;
const stats = require('./lib/stats');

const WS_URL = /^wss?:\/\//i;

module.exports = function (RED) {
    const endpoint = require('./lib/endpoint')(RED);
    require('./lib/admin').register(RED);

    function heartbeatMs(hb) {
        const seconds = parseFloat(hb);
        return seconds > 0 ? Math.round(seconds * 1000) : 0;
    }

    function splitList(text) {
        return typeof text === 'string' ? text.split(',').map((s) => s.trim()).filter(Boolean) : [];
    }

    /** Reads the config node's limits; an unusable value is ignored with a warning. */
    function readLimits(node, n, isListener) {
        node.limits = limits.limitsOf(n, isListener, (prop, value) =>
            node.warn(RED._('websocket.errors.bad-limit', { prop, value: String(value) })));
        return node.limits;
    }

    function withCode(err) {
        try {
            return addon.load().withCode(err);
        } catch (e) {
            return err;
        }
    }

    // ---- websocket-listener -------------------------------------------------

    function WebSocketListenerNode(n) {
        RED.nodes.createNode(this, n);
        endpoint.init(this, n);
        this.path = n.path;
        this.isListener = true;
        this.on('close', (removed, done) => this.shutdown(done));
        compat.init(this, !WS_URL.test(this.path || ''));
        if (WS_URL.test(this.path || '')) {
            // Core treats a listener whose path is a ws:// URL as a client.
            Object.assign(this, clientMethods);
            readLimits(this, n, false);
            this.startClient(n);
            return;
        }
        let root = RED.settings.httpNodeRoot || '/';
        if (!root.endsWith('/')) root += '/';
        const path = this.path || '';
        this.fullPath = root + (path.startsWith('/') ? path.slice(1) : path);
        if (upgrade.routes.has(this.fullPath)) {
            this.error(RED._('websocket.errors.duplicate-path', { path: this.path }));
            return;
        }
        // The path is claimed even when the listener cannot start, so that a
        // client gets an HTTP error rather than silence.
        upgrade.routes.set(this.fullPath, this);
        upgrade.attach(RED.server);
        const lim = readLimits(this, n, true);
        try {
            this.native = new (addon.load().Listener)({
                heartbeatMs: heartbeatMs(n.hb),
                subprotocols: splitList(n.subprotocol),
                maxMessageBytes: lim.maxMessageBytes,
                maxQueueBytes: lim.maxQueueBytes,
                queuePolicy: lim.queuePolicy,
                idleTimeoutMs: lim.idleTimeoutMs,
                maxConnections: lim.maxConnections,
                auth: authOptions(n, this.credentials)
            }, this.onBatch);
            this.authOn = !!n.auth;
            this.authParam = (typeof n.authParam === 'string' && n.authParam.trim()) || 'access_token';
        } catch (err) {
            this.fail(withCode(err));
        }
        this.joinCluster(n.cluster);
    }

    Object.assign(WebSocketListenerNode.prototype, endpoint.methods, {
        acceptUpgrade(req, socket, head) {
            if (!this.admitOrigin(req, socket)) return;
            const timeoutMs = this.limits.handshakeMs;
            upgrade.verify(RED.settings.webSocketNodeVerifyClient, req, socket,
                () => this.proceed(req, socket, head), {
                    timeoutMs,
                    onTimeout: () => {
                        stats.refused(this, 'verifyTimeout');
                        this.peerWarnings.warn(RED._('websocket.errors.verify-timeout', { seconds: timeoutMs / 1000 }));
                    },
                    onRefuse: () => stats.refused(this, 'verify')
                });
        },

        /** False (and the client refused with 403) if its origin is not allowed. */
        admitOrigin(req, socket) {
            const origin = upgrade.originOf(req);
            if (limits.originAllowed(this.limits.origins, origin)) return true;
            stats.refused(this, 'origin');
            this.peerWarnings.warn(RED._('websocket.errors.origin-refused', { origin: String(origin) }));
            upgrade.refuse(socket, 403, 'Origin not allowed');
            return false;
        },

        /**
         * Verified. An asynchronous verifier may have outlived a redeploy: the
         * listener now serving the path, if another, takes the client (its own
         * origin list applies).
         */
        proceed(req, socket, head) {
            const current = upgrade.routes.get(this.fullPath);
            if (current && current !== this) {
                if (current.admitOrigin(req, socket)) current.handOver(req, socket, head);
                return;
            }
            this.handOver(req, socket, head);
        },

        /** Gives the connection to Rust: by descriptor for plain TCP. */
        handOver(req, socket, head) {
            if (socket.destroyed) return;
            if (!this.native || this.closing) {
                return upgrade.refuse(socket, 503, this.failure
                    ? 'This WebSocket listener could not start (' + (this.failure.code || 'error') + '); the Node-RED log says why.'
                    : undefined);
            }
            const fd = upgrade.descriptorOf(socket);
            if (fd < 0) {
                return this.bridge(req, socket, head);
            }
            upgrade.stopReading(socket);
            const data = upgrade.takeBuffered(socket, head);
            if (this.startSession(socket, () => this.native.adopt(fd, data, this.requestInfo(req, socket)))) {
                // Rust owns a duplicate of the descriptor now. destroy() only closes
                // ours; end() would send a FIN on Rust's connection.
                socket.destroy();
            }
        },

        /**
         * Runs `start` (an adopt or bridge call). Returns its result, or null when
         * the handshake was refused: Rust then wrote nothing and the HTTP answer it
         * returned is written here (or 503 if the call failed).
         */
        startSession(socket, start) {
            let result;
            try {
                result = start();
            } catch (err) {
                this.warn(withCode(err).message);
                upgrade.refuse(socket, 503);
                return null;
            }
            if (typeof result === 'string') {
                if (result.startsWith('HTTP/1.1 503 ')) {
                    // The only 503 the addon answers: the connection limit.
                    this.peerWarnings.warn(RED._('websocket.errors.too-many', { max: this.limits.maxConnections }));
                } else if (result.startsWith('HTTP/1.1 401 ')) {
                    // The body says why (never the credential).
                    const why = result.slice(result.indexOf('\r\n\r\n') + 4);
                    this.peerWarnings.warn(RED._('websocket.errors.unauthorized', { reason: why }));
                }
                socket.once('finish', () => socket.destroy());
                socket.end(result);
                return null;
            }
            return result;
        },

        /**
         * A TLS socket (Node-RED on HTTPS) cannot be handed over: its bytes are
         * carried between the socket and the Rust session (lib/bridge.js).
         */
        bridge(req, socket, head) {
            const data = upgrade.takeBuffered(socket, head);
            bridge.carry(socket, (onOutput) =>
                this.startSession(socket, () => this.native.bridge(data, this.requestInfo(req, socket), onOutput)));
        },

        /** The request as the addon takes it; with the connect info if a node wants events. */
        requestInfo(req, socket) {
            const info = upgrade.requestInfo(req);
            if (this.eventNodes.size > 0) info.announce = events.connectInfo(req, socket, this.authOn ? { param: this.authParam } : null);
            // Something listens on `server` (lib/compat.js): the open event brings the subprotocol.
            else if (this.compatSockets) info.announce = '{}';
            if (this.authOn) {
                info.authorization = req.headers.authorization || '';
                info.url = req.url || '';
            }
            return info;
        },

        /**
         * Blank: no cluster (as core). Config nodes may start in any order, so
         * one not there yet is looked for again once this turn's nodes exist.
         */
        joinCluster(id, retried) {
            if (!id || !this.native || this.closing) return;
            const cluster = RED.nodes.getNode(id);
            if (cluster && cluster.attach) {
                try {
                    cluster.attach(this);
                } catch (err) {
                    this.error(withCode(err).message);
                }
            } else if (!retried) {
                setImmediate(() => this.joinCluster(id, true));
            } else {
                this.error(RED._('websocket.cluster.missing'));
            }
        },

        shutdown(done) {
            if (upgrade.routes.get(this.fullPath) === this) {
                upgrade.routes.delete(this.fullPath);
            }
            if (this.cluster) this.cluster.detach(this);
            this.closeNative(done);
        }
    });

    RED.nodes.registerType('websocket-listener', WebSocketListenerNode, { credentials: auth.CREDENTIALS });
    require('./lib/cluster')(RED);

    // ---- websocket-client ---------------------------------------------------

    /** Client behaviour, also used by a websocket-listener whose path is a URL. */
    const clientMethods = {
        isListener: false,

        startClient(n) {
            // Node-RED 5's core connects a client only once an enabled in or out
            // node uses it (node-red#5533), so that one whose nodes are all
            // disabled stays idle; use() starts it then. Under 4.x, as core there,
            // it connects when deployed.
            if (parseInt(RED.settings.version, 10) >= 5 && !this.used) {
                this.pendingClient = n;
                return;
            }
            try {
                const options = clientOptions(RED, this, n, heartbeatMs(n.hb), splitList(n.subprotocol), this.limits);
                this.native = new (addon.load().Client)(options, this.onBatch);
            } catch (err) {
                this.fail(withCode(err));
            }
        },

        /** Serves a msg.websocket connect or disconnect request (lib/client-control.js). */
        request(req) {
            this.use();
            if (!this.native) {
                throw new Error(this.failure ? this.failure.message : RED._('websocket.errors.not-started'));
            }
            if (req.disconnect) this.native.disconnect();
            else this.native.connect(req.url, req.headers);
        },

        /** An in or out node uses this client: starts it if it is waiting for that. */
        use() {
            this.used = true;
            const n = this.pendingClient;
            this.pendingClient = null;
            if (n && !this.closing) this.startClient(n);
        },

        shutdown(done) {
            this.closeNative(done);
        }
    };

    function WebSocketClientNode(n) {
        RED.nodes.createNode(this, n);
        endpoint.init(this, n);
        compat.init(this, false);
        this.path = n.path;
        this.on('close', (removed, done) => this.shutdown(done));
        readLimits(this, n, false);
        this.startClient(n);
    }

    Object.assign(WebSocketClientNode.prototype, endpoint.methods, clientMethods);

    RED.nodes.registerType('websocket-client', WebSocketClientNode, {
        settings: {
            websocketClientReconnectDelay: { value: 3000, exportable: false },
            websocketClientReconnectMaxDelay: { value: 60000, exportable: false }
        }
    });

    // ---- websocket in / websocket out ---------------------------------------

    function configOf(node, n) {
        node.server = n.client ? n.client : n.server;
        node.serverConfig = RED.nodes.getNode(node.server);
        if (!node.serverConfig) {
            node.error(RED._('websocket.errors.missing-conf'));
        } else if (node.serverConfig.use) {
            node.serverConfig.use();
        }
        return node.serverConfig;
    }

    function WebSocketInNode(n) {
        RED.nodes.createNode(this, n);
        // Connect, disconnect and error as msgs on a second output (opt-in).
        this.events = n.events === true;
        const config = configOf(this, n);
        if (config) {
            config.registerInputNode(this);
            config.watchStatus(this);
            if (this.events) events.register(config, this);
        }
        this.on('close', () => {
            if (config) {
                config.removeInputNode(this);
                config.unwatchStatus(this);
                events.unregister(config, this);
            }
            this.status({});
        });
    }
    RED.nodes.registerType('websocket in', WebSocketInNode);

    function WebSocketOutNode(n) {
        RED.nodes.createNode(this, n);
        const config = configOf(this, n);
        if (!config) {
            return;
        }
        config.watchStatus(this);
        this.on('input', (msg, send, done) => {
            if (!config.isListener) {
                // A connect or disconnect request is served, not sent.
                try {
                    const req = clientControl.requestOf(msg);
                    if (req) {
                        config.request(req);
                        return done();
                    }
                } catch (err) {
                    return done(err);
                }
            }
            let data;
            let cmd = null;
            try {
                if (commands.hasCommand(msg)) {
                    if (!config.isListener) throw new Error(RED._('websocket.errors.listener-only'));
                    cmd = commands.parse(msg);
                }
                // A msg with commands sends only a payload it has (whole or not).
                const sends = !cmd || Object.prototype.hasOwnProperty.call(msg, 'payload');
                data = sends ? messages.outboundData(msg, config.wholemsg, RED.util.ensureString, !!cmd) : undefined;
            } catch (err) {
                return done(err);
            }
            try {
                if (cmd) {
                    commands.queue(config, msg, cmd, data);
                } else if (data !== undefined) {
                    sendPlain(config, msg._session, data);
                }
            } catch (err) {
                this.warn(RED._('websocket.errors.send-error') + withCode(err).message);
            }
            done();
        });
        this.on('close', () => {
            config.unwatchStatus(this);
            this.status({});
        });
    }
    RED.nodes.registerType('websocket out', WebSocketOutNode);

    /** A msg without commands: to its session(s), else to everyone. */
    function sendPlain(config, session, data) {
        if (Array.isArray(session)) {
            const ids = commands.sessionIds(session);
            if (config.isListener) return commands.multicast(config, ids, data);
            // A client has one connection: sent once if it is among them.
            const live = ids.find((id) => config.live.has(config.sessionNumber(id)));
            if (live !== undefined) config.reply(live, data);
        } else if (session && session.type === 'websocket') {
            config.reply(session.id, data);
        } else {
            config.broadcast(data);
        }
    }
};
