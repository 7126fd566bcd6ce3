'use strict';
//! Where Node-RED 4.1 and 5.0 core differ, ours follows the core of the version it
//! runs on: when a websocket-client connects, and tls-config's newer certificate
//! kinds (5.0: PKCS#12 bundles, environment variables).

const assert = require('assert');
const https = require('https');
const helper = require('node-red-node-test-helper');
const nodeRed = require('./node-red-under-test');
const wsNode = require('../nodes/websocket.js');
const tlsNode = require('@node-red/nodes/core/network/05-tls.js');
const { WebSocket, received, delay, until } = require('./support');
const { makeCerts, toPkcs12 } = require('./certs');

helper.init(nodeRed.runtime);

/** On 4.1: a tls-config holding a PKCS#12 bundle, handed over as 5.0's addTLSOptions does. */
function pfxStandIn(RED) {
    function PfxTls(n) {
        RED.nodes.createNode(this, n);
        this.verifyservercert = n.verifyservercert;
    }
    PfxTls.prototype.addTLSOptions = function (opts) {
        if (this.credentials.p12data) opts.pfx = Buffer.from(this.credentials.p12data, 'base64');
        if (this.credentials.passphrase) opts.passphrase = this.credentials.passphrase;
        if (this.credentials.cadata) opts.ca = this.credentials.cadata; // no core tls-config adds one
        opts.rejectUnauthorized = this.verifyservercert;
        return opts;
    };
    RED.nodes.registerType('tls-config', PfxTls, { credentials: { p12data: { type: 'text' }, passphrase: { type: 'password' }, cadata: { type: 'text' } } });
}

const V5 = parseInt(nodeRed.version, 10) >= 5;

describe('Node-RED ' + nodeRed.version + ' specifics', function () {
    let certs;
    let server;
    let wss;
    const conns = [];

    before(async function () {
        certs = makeCerts();
        server = https.createServer({ cert: certs.cert, key: certs.key });
        wss = new WebSocket.Server({ server });
        wss.on('connection', (ws, req) => {
            ws.path = req.url; // '/control' for the control clients
            conns.push(ws);
        });
        await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
        await helper.startServer();
    });
    after(async function () {
        for (const c of wss.clients) c.terminate();
        await new Promise((resolve) => wss.close(() => server.close(() => resolve())));
        await helper.stopServer();
    });
    afterEach(async function () {
        await helper.unload();
        conns.length = 0;
    });

    const url = () => 'wss://localhost:' + server.address().port + '/';
    const client = (extra = {}) => ({ id: 'client', type: 'websocket-client', path: url(), tls: 'tls', wholemsg: 'false', hb: '0', subprotocol: '', headers: [], ...extra });
    const tls = (extra = {}) => ({ id: 'tls', type: 'tls-config', name: '', cert: '', key: '', ca: '', servername: '', verifyservercert: true, ...extra });
    const inNode = (extra = {}) => ({ id: 'in', type: 'websocket in', server: '', client: 'client', wires: [['sink']], ...extra });
    const sink = { id: 'sink', type: 'helper' };
    const caCreds = () => ({ tls: { cadata: certs.ca } });
    /** A client used by an enabled in node, dialling /control: it must connect meanwhile. */
    const control = (tlsId = 'tls') => [client({ id: 'control', path: url() + 'control', tls: tlsId }), inNode({ id: 'controlIn', client: 'control', wires: [] })];
    const at = (path) => conns.filter((c) => c.path === path).length;

    it(V5 ? 'connects a client only once an enabled in or out node uses it (as 5.0 core)'
        : 'connects a client when deployed, used or not (as 4.1 core)', async function () {
        await helper.load([wsNode, tlsNode], [client(), tls(), inNode({ d: true }), ...control()], caCreds());
        if (V5) {
            await delay(500);
            assert.strictEqual(at('/control'), 1, 'the control client did not connect in the same time');
            assert.strictEqual(at('/'), 0, 'a client whose only in node is disabled connected');
        } else {
            await until(() => at('/') === 1, 'the unused client connected');
        }
        await helper.unload();
        conns.length = 0;
        // Used by an enabled in node: connects on both (the positive control).
        await helper.load([wsNode, tlsNode], [client(), tls(), inNode(), sink], caCreds());
        await until(() => conns.length === 1, 'the used client connected');
        const got = received(helper.getNode('sink'));
        conns[0].send('used');
        assert.strictEqual((await got).payload, 'used');
        // Stopped (unload waits for it), the client can make no further connection.
        await helper.unload();
        assert.strictEqual(conns.length, 1, 'one connection, not one per node');
    });

    it('connects a client used only by an out node, and sends through it', async function () {
        await helper.load([wsNode, tlsNode], [client(), tls(), { id: 'out', type: 'websocket out', server: '', client: 'client' }], caCreds());
        await until(() => conns.length === 1, 'connected');
        const got = new Promise((resolve) => conns[0].once('message', (data) => resolve(data.toString())));
        helper.getNode('out').receive({ payload: 'from the out node' });
        assert.strictEqual(await got, 'from the out node');
    });

    describe('PKCS#12 bundles (5.0\'s tls-config; on 4.1, a stand-in handing them over as 5.0\'s does)', function () {
        const pfxTls = V5 ? tlsNode : pfxStandIn;

        /** A server that requires a client certificate issued by the test CA. */
        async function mutualTlsServer() {
            const srv = https.createServer({ cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true, rejectUnauthorized: true });
            const s = { conns: [], requests: [], refused: 0, srv };
            const w = new WebSocket.Server({ server: srv });
            w.on('connection', (ws, req) => { s.conns.push(ws); s.requests.push(req); });
            srv.on('tlsClientError', () => s.refused++);
            s.close = () => new Promise((resolve) => {
                for (const c of w.clients) c.terminate();
                w.close(() => srv.close(() => resolve()));
            });
            await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
            return s;
        }

        for (const algorithm of ['aes256', '3des']) {
            it('presents the certificate of a PKCS#12 bundle (' + algorithm + ') and trusts its CA chain', async function () {
                const s = await mutualTlsServer();
                try {
                    const p12 = toPkcs12(certs, 'secret', algorithm);
                    // No CA besides the bundle's: verifying the server needs the bundle's chain.
                    const port = s.srv.address().port;
                    await helper.load([wsNode, pfxTls], [client({ path: 'wss://localhost:' + port + '/p12' }), tls({ certType: 'pfx' }), inNode(), sink],
                        { tls: { p12data: p12.toString('base64'), passphrase: 'secret' } });
                    await until(() => s.conns.length === 1, 'mutual TLS connection');
                    const peer = s.requests[0].socket.getPeerCertificate();
                    assert.strictEqual(peer.subject.CN, 'localhost', 'the server saw the bundle\'s certificate');
                    assert.strictEqual(peer.issuer.CN, 'websocket-rs test CA');
                    const got = received(helper.getNode('sink'));
                    s.conns[0].send('over a PKCS#12 identity');
                    assert.strictEqual((await got).payload, 'over a PKCS#12 identity');
                } finally {
                    await s.close();
                }
            });
        }

        it('trusts a bundle\'s CA chain also beside a CA given with it', async function () {
            const s = await mutualTlsServer();
            try {
                const other = makeCerts().ca; // did not issue the server's certificate
                const port = s.srv.address().port;
                await helper.load([wsNode, pfxStandIn], [client({ path: 'wss://localhost:' + port + '/p12' }), tls({ certType: 'pfx' }), inNode(), sink],
                    { tls: { p12data: toPkcs12(certs, 'secret').toString('base64'), passphrase: 'secret', cadata: other } });
                await until(() => s.conns.length === 1, 'mutual TLS connection');
            } finally {
                await s.close();
            }
        });

        it('reports a wrong PKCS#12 passphrase as a node error, and does not connect', async function () {
            const p12 = toPkcs12(certs, 'secret');
            await helper.load([wsNode, pfxTls], [client(), tls({ certType: 'pfx' }), inNode(), sink],
                { tls: { p12data: p12.toString('base64'), passphrase: 'not the secret' } });
            const node = helper.getNode('client');
            assert.ok(node.failure, 'no failure recorded');
            assert.strictEqual(node.failure.code, 'ERR_WSRS_TLS');
            assert.match(node.failure.message, /PKCS#12 bundle: wrong passphrase/);
            assert.strictEqual(node.native, null, 'a client was started');
            const errors = helper.log().args.map((a) => a[0]).filter((o) => o && o.level === helper.log().ERROR && o.id === 'client');
            assert.ok(errors.some((o) => /wrong passphrase/.test(String(o.msg))), 'logged as a node error');
            // With the right passphrase the same bundle connects: the control for "did not connect".
            await helper.unload();
            await helper.load([wsNode, pfxTls], [client(), tls({ certType: 'pfx' }), inNode(), sink],
                { tls: { p12data: p12.toString('base64'), passphrase: 'secret' } });
            await until(() => conns.length === 1, 'connected with the right passphrase');
        });
    });

    describe('tls-config kinds new in 5.0', function () {
        beforeEach(function () {
            if (!V5) this.skip(); // 4.1's tls-config has only PEM files and text
        });

        it('connects with the CA taken from an environment variable', async function () {
            process.env.WSRS_TEST_CA = certs.ca;
            try {
                await helper.load([wsNode, tlsNode], [client(), tls({ certType: 'env', caEnv: 'WSRS_TEST_CA' }), inNode(), sink]);
                await until(() => conns.length === 1, 'connected');
                const got = received(helper.getNode('sink'));
                conns[0].send('via env CA');
                assert.strictEqual((await got).payload, 'via env CA');
            } finally {
                delete process.env.WSRS_TEST_CA;
            }
        });
    });
});
