'use strict';
// A loopback TCP relay between one Node-RED and redis-server, so that a test
// can cut that one instance's link while Redis and the others carry on.

const net = require('net');

/** Relays connections on a free loopback port to `targetPort`; resolves once listening. */
async function startProxy(targetPort) {
    const sockets = new Set();
    const track = (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
    };
    const relay = (client) => {
        track(client);
        const upstream = net.connect(targetPort, '127.0.0.1');
        track(upstream);
        client.pipe(upstream).on('close', () => client.destroy());
        upstream.pipe(client).on('close', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
    };
    let server = null;
    const listen = (port) => new Promise((resolve, reject) => {
        server = net.createServer(relay);
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve(server.address().port));
    });
    const port = await listen(0);
    return {
        port,
        /** Drops every relayed connection and refuses new ones. */
        async cut() {
            const closed = new Promise((resolve) => server.close(resolve));
            for (const s of sockets) s.destroy();
            await closed;
        },
        /** Accepts connections again, on the same port. */
        resume: () => listen(port),
        stop() {
            for (const s of sockets) s.destroy();
            if (server.listening) server.close();
        }
    };
}

module.exports = { startProxy };
