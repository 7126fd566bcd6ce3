'use strict';
//! Authentication at the handshake, per listener (issue 13): a shared token or a
//! JWT (HS256, RS256, ES256), from `Authorization: Bearer` or a query parameter,
//! checked in Rust. Real `ws` clients over loopback against a real Node-RED (test
//! helper); JWTs are signed here with Node's crypto.

const assert = require('assert');
const crypto = require('crypto');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { WebSocket, connect, nextMessage, wsUrl, until, within, collect } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const b64url = (data) => Buffer.from(data).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A compact JWS of `claims`, signed with `key` (a secret for HS256, a private KeyObject otherwise). */
function jwt(claims, alg, key) {
    const data = b64url(JSON.stringify({ alg, typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims));
    let signature;
    if (alg === 'HS256') signature = crypto.createHmac('sha256', key).update(data).digest();
    else if (alg === 'RS256') signature = crypto.sign('sha256', Buffer.from(data), key);
    else signature = crypto.sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' });
    return data + '.' + b64url(signature);
}

const RSA = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const EC = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (pair) => pair.publicKey.export({ type: 'spki', format: 'pem' });

function flow(listener) {
    return [
        { id: 'listener', type: 'websocket-listener', path: '/ws/auth', wholemsg: 'false', ...listener },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', events: true, outputs: 2, wires: [['out'], ['events']] },
        { id: 'events', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

/** Resolves with the HTTP status of a refused handshake (and its headers); rejects if it opened. */
function refusal(path, options) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl(helper, path), options);
        ws.once('open', () => {
            ws.terminate();
            reject(new Error('the handshake succeeded'));
        });
        ws.once('unexpected-response', (req, res) => {
            let body = '';
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        });
        ws.once('error', () => { /* follows unexpected-response */ });
    });
}

describe('authentication at the handshake', function () {
    const clients = [];
    async function open(path, options) {
        const ws = await within(connect(wsUrl(helper, path), undefined, options), 5000, 'a connection');
        clients.push(ws);
        return ws;
    }
    async function echoes(ws) {
        const m = nextMessage(ws, { ms: 5000 });
        ws.send('ping');
        assert.strictEqual((await m).data.toString(), 'ping');
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        await helper.unload();
    });

    it('with a shared token: 401 without it or with a wrong one, in with it in the header or the query', async function () {
        await helper.load(wsNode, flow({ auth: 'token' }), { listener: { authToken: 's3cret' } });
        const events = collect(helper.getNode('events'));
        const listener = helper.getNode('listener');
        const warnings = [];
        const warn = listener.warn.bind(listener);
        listener.warn = (t) => { warnings.push(String(t)); warn(t); };

        const none = await within(refusal('/ws/auth'), 5000, 'the refusal');
        assert.strictEqual(none.status, 401);
        assert.strictEqual(none.headers['www-authenticate'], 'Bearer');
        const wrong = await within(refusal('/ws/auth', { headers: { Authorization: 'Bearer s3cre' } }), 5000, 'the refusal');
        assert.strictEqual(wrong.status, 401);
        assert.strictEqual(wrong.body, 'wrong token');
        assert.strictEqual((await refusal('/ws/auth?access_token=nope')).status, 401);
        await until(() => warnings.length === 3, 'a warning per refusal');
        assert.strictEqual(listener.native.stats().refusedAuth, 3, 'the refusals counted for the live view');
        assert.ok(warnings.every((w) => !/s3cre|nope/.test(w)), 'a warning shows a credential: ' + warnings.join(' | '));

        await echoes(await open('/ws/auth', { headers: { Authorization: 'Bearer s3cret' } }));
        await echoes(await open('/ws/auth?x=1&access_token=s3cret'));
        // Only the two let in reached the flow.
        await until(() => events.filter((m) => m.payload === 'connect').length === 2, 'two connects');
        const connects = events.filter((m) => m.payload === 'connect');
        assert.deepStrictEqual(connects.map((m) => m.websocket.identity), [{}, {}]);
        // The credential stays out of the flow; the rest of the request is there.
        assert.strictEqual(connects[0].websocket.headers.authorization, undefined);
        assert.ok(connects[0].websocket.headers.host, 'the other headers are there');
        assert.strictEqual(connects[1].websocket.url, '/ws/auth?x=1');
        assert.deepStrictEqual(connects[1].websocket.query, { x: '1' });
        assert.ok(!JSON.stringify(connects).includes('s3cret'), 'the token reached the flow');
    });

    it('reads the credential from the query parameter the node names', async function () {
        await helper.load(wsNode, flow({ auth: 'token', authParam: 'key' }), { listener: { authToken: 't' } });
        assert.strictEqual((await refusal('/ws/auth?access_token=t')).status, 401);
        await echoes(await open('/ws/auth?key=t'));
    });

    for (const [alg, signing, listener, credentials] of [
        ['HS256', 'shared secret', { auth: 'jwt', jwtAlg: 'HS256' }, { jwtSecret: 'hs-secret' }],
        ['RS256', RSA.privateKey, { auth: 'jwt', jwtAlg: 'RS256', jwtPem: pem(RSA) }, {}],
        ['ES256', EC.privateKey, { auth: 'jwt', jwtAlg: 'ES256', jwtPem: pem(EC) }, {}]
    ]) {
        it('with a ' + alg + ' JWT: its claims become the identity; expired, forged or missing: 401', async function () {
            const key = alg === 'HS256' ? 'hs-secret' : signing;
            await helper.load(wsNode, flow({ ...listener, jwtIss: 'issuer', jwtAud: 'ws' }), { listener: credentials });
            const events = collect(helper.getNode('events'));
            const claims = { sub: 'ada', roles: ['admin'], iss: 'issuer', aud: 'ws', exp: now() + 600 };
            const good = jwt(claims, alg, key);
            await echoes(await open('/ws/auth', { headers: { Authorization: 'Bearer ' + good } }));
            await until(() => events.length === 1, 'the connect event');
            assert.deepStrictEqual(events[0].websocket.identity, claims);
            await echoes(await open('/ws/auth?access_token=' + good));

            const other = alg === 'HS256' ? 'another secret' : crypto.generateKeyPairSync(alg === 'RS256' ? 'rsa' : 'ec',
                alg === 'RS256' ? { modulusLength: 2048 } : { namedCurve: 'P-256' }).privateKey;
            for (const [what, token] of [
                ['expired', jwt({ ...claims, exp: now() - 3600 }, alg, key)],
                ['another key', jwt(claims, alg, other)],
                ['another issuer', jwt({ ...claims, iss: 'someone' }, alg, key)],
                ['another audience', jwt({ ...claims, aud: 'elsewhere' }, alg, key)],
                ['alg none', b64url(JSON.stringify({ alg: 'none', typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims)) + '.'],
                ['garbage', 'a.b.c']
            ]) {
                const r = await within(refusal('/ws/auth', { headers: { Authorization: 'Bearer ' + token } }), 5000, what);
                assert.strictEqual(r.status, 401, what);
                assert.ok(/^invalid JWT/.test(r.body), what + ': ' + r.body);
            }
            assert.strictEqual((await refusal('/ws/auth')).status, 401, 'no credential');
            await until(() => events.length === 2, 'the second connect');
            assert.strictEqual(events.filter((m) => m.payload === 'connect').length, 2, 'a refused client reached the flow');
        });
    }

    it('a JWT signed with HS256 using the RS256 public key as its secret is refused (algorithm confusion)', async function () {
        await helper.load(wsNode, flow({ auth: 'jwt', jwtAlg: 'RS256', jwtPem: pem(RSA) }));
        const forged = jwt({ sub: 'x', exp: now() + 600 }, 'HS256', pem(RSA));
        assert.strictEqual((await refusal('/ws/auth', { headers: { Authorization: 'Bearer ' + forged } })).status, 401);
        await echoes(await open('/ws/auth', { headers: { Authorization: 'Bearer ' + jwt({ sub: 'x', exp: now() + 600 }, 'RS256', RSA.privateKey) } }));
    });

    it('keeps webSocketNodeVerifyClient working, before the credential is looked at', async function () {
        helper.settings({ webSocketNodeVerifyClient: (info) => info.req.headers['x-allowed'] === 'yes' });
        try {
            await helper.load(wsNode, flow({ auth: 'token' }), { listener: { authToken: 't' } });
            const byVerifier = await refusal('/ws/auth?access_token=t');
            assert.strictEqual(byVerifier.status, 401);
            assert.notStrictEqual(byVerifier.headers['www-authenticate'], 'Bearer', 'refused by the verifier, not the token check');
            assert.strictEqual((await refusal('/ws/auth', { headers: { 'X-Allowed': 'yes' } })).headers['www-authenticate'], 'Bearer');
            await echoes(await open('/ws/auth?access_token=t', { headers: { 'X-Allowed': 'yes' } }));
        } finally {
            helper.settings({});
        }
    });

    it('fails closed: a listener whose key is unusable answers 503 and logs why', async function () {
        await helper.load(wsNode, flow({ auth: 'jwt', jwtAlg: 'RS256', jwtPem: 'not a key' }));
        const listener = helper.getNode('listener');
        assert.ok(listener.failure && /RS256 key/.test(listener.failure.message), String(listener.failure && listener.failure.message));
        assert.strictEqual((await refusal('/ws/auth')).status, 503);
        await helper.unload();
        await helper.load(wsNode, flow({ auth: 'token' }));
        assert.ok(/token is empty/.test(helper.getNode('listener').failure.message));
        assert.strictEqual((await refusal('/ws/auth?access_token=')).status, 503);
    });
});
