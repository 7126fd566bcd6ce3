'use strict';
//! What a wss:// client trusts without a tls-config CA: what Node.js trusts, in real
//! Node-RED processes started with NODE_EXTRA_CA_CERTS, --use-openssl-ca and
//! --use-system-ca; a tls-config CA replaces it; an https:// proxy is verified
//! against it too. Servers and proxies are in this process, on loopback.

const assert = require('assert');
const fs = require('fs');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const tlsNode = require('@node-red/nodes/core/network/05-tls.js');
const { WebSocket, until } = require('./support');
const { startNodeRed } = require('./nodered');
const { makeCerts } = require('./certs');
const { usesOpensslStore, defaultTrust } = require('../nodes/lib/trust');

helper.init(require('./node-red-under-test').runtime);

/** A wss server (certificate of `certs`) that records the paths clients reached. */
async function wssServer(certs) {
    const srv = https.createServer({ cert: certs.cert, key: certs.key });
    const wss = new WebSocket.Server({ server: srv });
    const s = { paths: [], port: 0 };
    wss.on('connection', (ws, req) => s.paths.push(req.url));
    s.close = () => new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => srv.close(() => resolve()));
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    s.port = srv.address().port;
    return s;
}

/** An https:// CONNECT proxy (certificate of `certs`) that tunnels to loopback. */
async function httpsProxy(certs) {
    const p = { connects: [], tlsErrors: 0 };
    const srv = https.createServer({ cert: certs.cert, key: certs.key });
    srv.on('tlsClientError', () => p.tlsErrors++);
    srv.on('connect', (req, socket, head) => {
        p.connects.push(req.url);
        const port = Number(req.url.split(':').pop());
        const up = net.connect(port, '127.0.0.1', () => {
            socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
            if (head.length) up.write(head);
            socket.pipe(up).pipe(socket);
        });
        up.on('error', () => socket.destroy());
        socket.on('error', () => up.destroy());
    });
    p.close = () => new Promise((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    p.url = 'https://localhost:' + srv.address().port;
    return p;
}

/** A client named `name` on `url` (with tls-config `tlsId`) and the in node that makes it connect on 5.0. */
function clientTo(name, url, tlsId = '') {
    return [
        { id: 'c-' + name, type: 'websocket-client', name, path: url, tls: tlsId, wholemsg: 'false', hb: '0', subprotocol: '', headers: [] },
        { id: 'i-' + name, type: 'websocket in', name: '', server: '', client: 'c-' + name, wires: [] }
    ];
}

/** The warnings Node-RED logged for client `name`. */
function warningsOf(output, name) {
    return output.split('\n').filter((l) => l.includes('[websocket-client:' + name + ']')).join('\n');
}

/** Waits until client `name` warned with `re`; a timeout shows what it did log. */
async function refused(nr, name, re, what) {
    try {
        await until(() => re.test(warningsOf(nr.output(), name)), what, 20000);
    } catch (err) {
        err.message += '\n' + (warningsOf(nr.output(), name) || nr.output());
        throw err;
    }
}

/** The environment of a child Node-RED: this one's, without TLS or proxy settings of its own. */
function childEnv(extra) {
    const env = { ...process.env };
    for (const k of ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'NODE_USE_SYSTEM_CA', 'SSL_CERT_FILE', 'SSL_CERT_DIR']) delete env[k];
    for (const k of Object.keys(env)) if (/_proxy$/i.test(k)) delete env[k];
    return { ...env, ...extra };
}

describe('TLS trust without a tls-config CA (as Node.js)', function () {
    this.timeout(60000);
    let a; // a CA and a localhost certificate it issued
    let b;
    let c;
    let dir;
    const servers = [];
    const children = [];

    before(function () {
        a = makeCerts();
        b = makeCerts();
        c = makeCerts();
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-trust-'));
        for (const [name, certs] of Object.entries({ a, b, c })) fs.writeFileSync(path.join(dir, name + '.pem'), certs.ca);
    });
    after(async function () {
        for (const nr of children.splice(0)) await nr.stop({ signal: 'SIGKILL', ms: 5000 });
        for (const s of servers.splice(0)) await s.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    async function serve(certs) {
        const s = await wssServer(certs);
        servers.push(s);
        return s;
    }

    async function nodeRed(env, flows) {
        const onTab = flows.map((n) => (n.type === 'websocket in' ? { ...n, z: 'tab' } : n));
        const nr = await startNodeRed({ withPackage: true, prefix: 'wsrs-trust-nr-', env: childEnv(env), flows: [{ id: 'tab', type: 'tab', label: 'trust' }, ...onTab] });
        children.push(nr);
        return nr;
    }

    it('trusts the CAs in NODE_EXTRA_CA_CERTS; a tls-config CA replaces them; SSL_CERT_FILE alone is not trusted', async function () {
        const sa = await serve(a);
        const sc = await serve(c);
        const nr = await nodeRed({ NODE_EXTRA_CA_CERTS: path.join(dir, 'a.pem'), SSL_CERT_FILE: path.join(dir, 'c.pem') }, [
            ...clientTo('extra', 'wss://localhost:' + sa.port + '/extra'),
            ...clientTo('replaced', 'wss://localhost:' + sa.port + '/replaced', 'tls-b'),
            { id: 'tls-b', type: 'tls-config', name: '', cert: '', key: '', ca: path.join(dir, 'b.pem'), certname: '', keyname: '', caname: '', servername: '', verifyservercert: true },
            ...clientTo('unflagged', 'wss://localhost:' + sc.port + '/unflagged')
        ]);
        await until(() => sa.paths.includes('/extra'), 'the client trusting NODE_EXTRA_CA_CERTS to connect', 20000);
        await refused(nr, 'replaced', /invalid peer certificate/, 'the tls-config CA to refuse the server');
        await refused(nr, 'unflagged', /invalid peer certificate/, 'SSL_CERT_FILE without --use-openssl-ca to be ignored');
        assert.deepStrictEqual(sa.paths, ['/extra']);
        assert.deepStrictEqual(sc.paths, []);
    });

    it('trusts OpenSSL\'s files with --use-openssl-ca, also for an https:// proxy', async function () {
        if (process.platform !== 'linux') this.skip(); // the addon reads OpenSSL's files on Linux only
        const sa = await serve(a);
        const sc = await serve(c);
        const proxy = await httpsProxy(c);
        servers.push(proxy);
        const nr = await nodeRed({ NODE_OPTIONS: '--use-openssl-ca', SSL_CERT_FILE: path.join(dir, 'c.pem'), wss_proxy: proxy.url }, [
            ...clientTo('openssl', 'wss://localhost:' + sc.port + '/openssl'),
            ...clientTo('untrusted', 'wss://localhost:' + sa.port + '/untrusted')
        ]);
        await until(() => sc.paths.includes('/openssl'), 'the client trusting OpenSSL\'s files to connect through the proxy', 20000);
        assert.ok(proxy.connects.includes('localhost:' + sc.port), 'tunnelled: ' + proxy.connects);
        await refused(nr, 'untrusted', /invalid peer certificate/, 'a CA in neither to be refused');
        assert.deepStrictEqual(sa.paths, []);
    });

    it('trusts the system store with --use-system-ca (Node.js 22.15 and later)', async function () {
        if (!process.allowedNodeEnvironmentFlags.has('--use-system-ca')) this.skip();
        const sc = await serve(c);
        await nodeRed({ NODE_OPTIONS: '--use-system-ca', SSL_CERT_FILE: path.join(dir, 'c.pem') },
            clientTo('system', 'wss://localhost:' + sc.port + '/system'));
        await until(() => sc.paths.includes('/system'), 'the client trusting the system store to connect', 20000);
    });

    describe('in this process', function () {
        before(() => helper.startServer());
        after(() => helper.stopServer());
        afterEach(() => helper.unload());

        it('verifies an https:// proxy even when the tls-config turns verification off for the server', async function () {
            const sa = await serve(a);
            const proxy = await httpsProxy(a); // a's CA is not trusted here
            servers.push(proxy);
            process.env.wss_proxy = proxy.url;
            try {
                const flow = [...clientTo('via-proxy', 'wss://localhost:' + sa.port + '/via-proxy', 'tls-off'),
                    { id: 'tls-off', type: 'tls-config', name: '', cert: '', key: '', ca: '', servername: '', verifyservercert: false }];
                await helper.load([wsNode, tlsNode], flow);
                await until(() => proxy.tlsErrors > 0, 'the proxy to see a refused TLS handshake');
                const warned = () => helper.log().args.map((x) => String(x[0].msg)).join('\n');
                await until(() => /proxy: .*UnknownIssuer/.test(warned()), 'a warning naming the proxy');
                assert.deepStrictEqual(proxy.connects, [], 'a tunnel was asked for over an unverified proxy');
                assert.deepStrictEqual(sa.paths, []);
            } finally {
                delete process.env.wss_proxy;
            }
        });
    });

    describe('which CAs JS lists for the addon', function () {
        const proc = (execArgv, env = {}, defines = []) => ({ execArgv, env, config: { target_defaults: { defines } } });
        const tlsApi = { rootCertificates: ['BUNDLED'] };

        it('detects --use-openssl-ca from flags, NODE_OPTIONS and a Node built to default to it', function () {
            assert.strictEqual(usesOpensslStore(proc([])), false);
            assert.strictEqual(usesOpensslStore(proc(['--use-openssl-ca'])), true);
            assert.strictEqual(usesOpensslStore(proc([], { NODE_OPTIONS: '--max-old-space-size=100 --use-openssl-ca' })), true);
            assert.strictEqual(usesOpensslStore(proc([], {}, ['NODE_OPENSSL_CERT_STORE'])), true);
            assert.strictEqual(usesOpensslStore(proc(['--use-bundled-ca'], {}, ['NODE_OPENSSL_CERT_STORE'])), false);
        });

        it('lists the bundled CAs and NODE_EXTRA_CA_CERTS where Node cannot list them itself, warning about an unreadable file', function () {
            const warnings = [];
            const warn = (w) => warnings.push(w);
            const extra = path.join(dir, 'a.pem');
            assert.deepStrictEqual(defaultTrust(warn, proc([], { NODE_EXTRA_CA_CERTS: extra }), tlsApi),
                { ca: 'BUNDLED\n' + a.ca.trim(), opensslStore: false });
            assert.deepStrictEqual(defaultTrust(warn, proc(['--use-openssl-ca'], { NODE_EXTRA_CA_CERTS: extra }), tlsApi),
                { ca: a.ca.trim(), opensslStore: true });
            assert.deepStrictEqual(warnings, []);
            assert.deepStrictEqual(defaultTrust(warn, proc([], { NODE_EXTRA_CA_CERTS: path.join(dir, 'missing.pem') }), tlsApi),
                { ca: 'BUNDLED', opensslStore: false });
            assert.match(warnings.join('\n'), /NODE_EXTRA_CA_CERTS: ignoring .*missing\.pem/);
        });

        it('takes Node\'s own list where Node has one (22.15 and later)', function () {
            const listing = { ...tlsApi, getCACertificates: (type) => (type === 'default' ? ['NODE', 'DEFAULTS'] : []) };
            assert.deepStrictEqual(defaultTrust(() => {}, proc([]), listing), { ca: 'NODE\nDEFAULTS', opensslStore: false });
        });
    });
});
