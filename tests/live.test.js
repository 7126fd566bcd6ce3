'use strict';
//! The live view's counters and admin endpoint (issue 14) in a real Node-RED with
//! adminAuth: no token, no counters (401); a read-only user reads but may not
//! close (401, as Node-RED answers a missing permission); counters and the session list match a load the test drives; a
//! session closed through the endpoint closes that client; refusals are counted.

const assert = require('assert');
const bcrypt = require('bcryptjs');
const { WebSocket, nextMessage, closed, until, within } = require('./support');
const { startNodeRed } = require('./nodered');
const { ECHO_FLOW } = require('./flows');

const PASSWORD = 'live-test-password';
const WAIT = { ms: 5000 };

function flows() {
    const flow = JSON.parse(ECHO_FLOW);
    // A second listener that takes one client at a time, for the refusal count.
    flow.push({ id: 'live0000000one01', type: 'websocket-listener', path: '/ws/one', wholemsg: 'false', limConns: '1' });
    flow.push({ id: 'live0000000in001', type: 'websocket in', z: flow[0].id, name: '', server: 'live0000000one01', client: '', x: 230, y: 420, wires: [[]] });
    // One that takes pages from one origin only, for the count of refusals made in JS.
    flow.push({ id: 'live000000origin', type: 'websocket-listener', path: '/ws/origin', wholemsg: 'false', limOrigins: 'https://good.example' });
    flow.push({ id: 'live0000000in002', type: 'websocket in', z: flow[0].id, name: '', server: 'live000000origin', client: '', x: 230, y: 520, wires: [[]] });
    return flow;
}

describe('live view: counters and the admin endpoint under adminAuth', function () {
    let nr = null;
    const sockets = [];
    const api = (...args) => nr.request(...args);
    let adminToken = null;
    let viewerToken = null;

    async function token(username, scope) {
        const body = new URLSearchParams({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password: PASSWORD }).toString();
        const res = await api('POST', '/auth/token', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
        assert.strictEqual(res.status, 200, res.text);
        return res.json().access_token;
    }

    const get = (path, tok) => api('GET', path, { headers: tok ? { Authorization: 'Bearer ' + tok } : {} });
    const post = (path, tok, body = '{}') =>
        api('POST', path, { headers: Object.assign({ 'Content-Type': 'application/json' }, tok ? { Authorization: 'Bearer ' + tok } : {}), body });

    async function open(path) {
        const ws = new WebSocket(nr.wsUrl + path);
        sockets.push(ws);
        await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open ' + path);
        return ws;
    }

    async function listener(path) {
        const res = await get('/websocket-rs/stats', adminToken);
        assert.strictEqual(res.status, 200, res.text);
        return res.json().nodes.find((n) => n.path === path);
    }

    before(async function () {
        this.timeout(45000);
        const hash = bcrypt.hashSync(PASSWORD, 8);
        nr = await startNodeRed({
            withPackage: true,
            prefix: 'wsrs-live-',
            flows: flows(),
            settings: {
                adminAuth: {
                    type: 'credentials',
                    users: [
                        { username: 'admin', password: hash, permissions: '*' },
                        { username: 'viewer', password: hash, permissions: 'read' }
                    ]
                }
            }
        });
        adminToken = await token('admin', '*');
        viewerToken = await token('viewer', 'read');
    });

    after(async function () {
        this.timeout(15000);
        for (const ws of sockets) ws.terminate();
        if (nr) await nr.stop({ signal: 'SIGKILL', ms: 5000 });
    });

    it('refuses every route without a token (401) and serves them with one', async function () {
        assert.strictEqual((await get('/websocket-rs/stats')).status, 401);
        assert.strictEqual((await get('/websocket-rs/nodes/542f751e15337c46/sessions')).status, 401);
        assert.strictEqual((await post('/websocket-rs/nodes/542f751e15337c46/sessions/1/close')).status, 401);
        assert.strictEqual((await get('/websocket-rs/stats', 'not-a-token')).status, 401);
        const res = await get('/websocket-rs/stats', adminToken);
        assert.strictEqual(res.status, 200, res.text);
        const kinds = res.json().nodes.map((n) => n.kind + ' ' + n.path).sort();
        assert.deepStrictEqual(kinds, ['listener /ws/echo', 'listener /ws/one', 'listener /ws/origin']);
    });

    it('counts connections, messages and bytes as a load of 3 clients × 10 echoes ran', async function () {
        const clients = [await open('/ws/echo'), await open('/ws/echo'), await open('/ws/echo')];
        for (const ws of clients) {
            for (let i = 0; i < 10; i++) {
                ws.send('m' + i);
                assert.strictEqual(String((await nextMessage(ws, WAIT)).data), 'm' + i);
            }
        }
        const s = await listener('/ws/echo');
        assert.strictEqual(s.connections, 3);
        assert.strictEqual(s.peak, 3);
        assert.strictEqual(s.opens, 3);
        assert.strictEqual(s.msgsIn, 30);
        assert.strictEqual(s.msgsOut, 30);
        // "m0" masked from a client is 2 + 4 + 2 bytes on the wire, unmasked back 4.
        assert.strictEqual(s.bytesIn, 30 * 8);
        assert.strictEqual(s.bytesOut, 30 * 4);
        assert.strictEqual(s.queuedBytes, 0);
        assert.deepStrictEqual(s.attention, []);

        const res = await get('/websocket-rs/nodes/' + s.id + '/sessions?sort=in&limit=2', viewerToken);
        assert.strictEqual(res.status, 200, res.text);
        const list = res.json();
        assert.strictEqual(list.total, 3);
        assert.strictEqual(list.sessions.length, 2, 'capped at the limit');
        for (const row of list.sessions) {
            assert.match(row.remote, /^127\.0\.0\.1:\d+$/);
            assert.strictEqual(row.msgsIn, 10);
            assert.match(row.id, /^[0-9a-f]+$/);
            assert.ok(row.since <= Date.now() && row.since > Date.now() - 60000);
        }
        assert.strictEqual((await get('/websocket-rs/nodes/' + s.id + '/sessions?limit=0', adminToken)).status, 400);
        assert.strictEqual((await get('/websocket-rs/nodes/nope/sessions', adminToken)).status, 404);
    });

    it('closes the session named, for a user who may write, and counts the close', async function () {
        const s = await listener('/ws/echo');
        const ws = await open('/ws/echo');
        ws.send('whoami');
        await nextMessage(ws, WAIT);
        // The newest session is the one most recently connected: last by age.
        const rows = (await get('/websocket-rs/nodes/' + s.id + '/sessions?sort=since&limit=100', adminToken)).json().sessions;
        const mine = rows[rows.length - 1];
        const path = '/websocket-rs/nodes/' + s.id + '/sessions/' + mine.id + '/close';
        // Node-RED answers a permission it does not grant with 401, as for no token.
        assert.strictEqual((await post(path, viewerToken)).status, 401, 'read permission may not close');
        ws.send('still open');
        assert.strictEqual(String((await nextMessage(ws, WAIT)).data), 'still open');
        assert.strictEqual((await post('/websocket-rs/nodes/' + s.id + '/sessions/ffffffff/close', adminToken)).status, 404);
        // Not JSON (a cross-site form or text/plain POST): refused, and the session stays.
        const plain = await api('POST', path, { headers: { 'Content-Type': 'text/plain', Authorization: 'Bearer ' + adminToken }, body: '{}' });
        assert.strictEqual(plain.status, 415);
        ws.send('open after a text/plain close');
        assert.strictEqual(String((await nextMessage(ws, WAIT)).data), 'open after a text/plain close');
        const gone = closed(ws, WAIT);
        const res = await post(path, adminToken, JSON.stringify({ code: 4000, reason: 'bye' }));
        assert.strictEqual(res.status, 200, res.text);
        const { code, reason } = await gone;
        assert.deepStrictEqual([code, String(reason)], [4000, 'bye']);
        // The other clients are untouched (positive control: they still echo).
        sockets[0].send('still here');
        assert.strictEqual(String((await nextMessage(sockets[0], WAIT)).data), 'still here');
        await until(async () => (await listener('/ws/echo')).connections === 3, 'the close counted');
        const after = await listener('/ws/echo');
        assert.strictEqual(after.closes['4000'], 1);
        assert.strictEqual(after.opens, 4);
    });

    it('counts refusals at the connection limit and marks the listener for attention', async function () {
        await open('/ws/one');
        const refused = new WebSocket(nr.wsUrl + '/ws/one');
        sockets.push(refused);
        const status = await within(new Promise((resolve) => {
            refused.once('unexpected-response', (req, res) => resolve(res.statusCode));
            refused.once('error', () => {});
        }), 5000, 'the refusal');
        assert.strictEqual(status, 503);
        const s = await listener('/ws/one');
        assert.strictEqual(s.refusedTooMany, 1);
        assert.strictEqual(s.connections, 1);
        assert.ok(s.attention.includes('refusals'), JSON.stringify(s.attention));
    });

    it('counts a refusal by the origin list (made in JS) beside those of the addon', async function () {
        const refusedStatus = (origin) => {
            const ws = new WebSocket(nr.wsUrl + '/ws/origin', { headers: { Origin: origin } });
            sockets.push(ws);
            return within(new Promise((resolve) => {
                ws.once('open', () => resolve(101));
                ws.once('unexpected-response', (req, res) => resolve(res.statusCode));
                ws.once('error', () => {});
            }), 5000, 'an answer');
        };
        assert.strictEqual(await refusedStatus('https://evil.example'), 403);
        assert.strictEqual(await refusedStatus('https://good.example'), 101, 'the allowed origin gets in');
        const s = await listener('/ws/origin');
        assert.strictEqual(s.refusedOrigin, 1);
        assert.strictEqual(s.opens, 1);
        assert.ok(s.attention.includes('refusals'), JSON.stringify(s.attention));
    });
});
