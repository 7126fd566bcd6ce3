'use strict';
//! A plain TCP connection without a usable descriptor (as on Windows) goes
//! through the byte bridge instead of the handover, with and without an
//! asynchronous webSocketNodeVerifyClient.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { connect, nextMessage, wsUrl } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const FLOW = [
    { id: 'listener', type: 'websocket-listener', path: '/ws/nofd', wholemsg: 'false' },
    { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['out']] },
    { id: 'out', type: 'websocket out', server: 'listener', client: '' }
];

/** Hides the descriptor of upgrade sockets on our path, as a platform without one would. */
function hideDescriptors(req, socket) {
    if (req.url.startsWith('/ws/nofd') && socket._handle) {
        Object.defineProperty(socket._handle, 'fd', { value: -1 });
    }
}

describe('plain TCP through the bridge (no descriptor)', function () {
    const clients = [];
    let saved;

    before(async function () {
        await helper.startServer();
        helper._server.prependListener('upgrade', hideDescriptors);
    });
    after(function () {
        helper._server.removeListener('upgrade', hideDescriptors);
        return helper.stopServer();
    });
    beforeEach(function () {
        saved = helper.settings();
    });
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        await helper.unload();
        helper._settings = saved; // settings() merges; only this restores the original
    });

    /** Loads the flow, counting the listener's handovers and bridges; echoes `text`. */
    async function echoes(text) {
        await helper.load(wsNode, FLOW);
        const native = helper.getNode('listener').native;
        const calls = { adopt: 0, bridge: 0 };
        for (const name of Object.keys(calls)) {
            const real = native[name];
            native[name] = function (...args) {
                calls[name]++;
                return real.apply(native, args);
            };
        }
        const ws = await connect(wsUrl(helper, '/ws/nofd'));
        clients.push(ws);
        const got = nextMessage(ws, { ms: 5000 });
        ws.send(text);
        assert.strictEqual((await got).data.toString(), text);
        assert.deepStrictEqual(calls, { adopt: 0, bridge: 1 }, 'the connection did not take the bridge');
    }

    it('echoes', async function () {
        await echoes('bridged without a descriptor');
    });

    it('echoes after an asynchronous verifier accepted', async function () {
        const verified = [];
        helper.settings({
            webSocketNodeVerifyClient: (info, done) => {
                verified.push(info.req.url);
                setTimeout(() => done(true), 30);
            }
        });
        await echoes('bridged after async verification');
        assert.deepStrictEqual(verified, ['/ws/nofd'], 'the asynchronous verifier did not run once');
    });

    it('refuses when an asynchronous verifier says no', async function () {
        helper.settings({ webSocketNodeVerifyClient: (info, done) => setTimeout(() => done(false, 403), 30) });
        await helper.load(wsNode, FLOW);
        await assert.rejects(connect(wsUrl(helper, '/ws/nofd')), { statusCode: 403 });
    });

    it('refuses past the connection limit with 503, as the handover does', async function () {
        await helper.load(wsNode, FLOW.map((n) => (n.id === 'listener' ? { ...n, limConns: '1' } : n)));
        const ws = await connect(wsUrl(helper, '/ws/nofd'));
        clients.push(ws);
        await assert.rejects(connect(wsUrl(helper, '/ws/nofd')), { statusCode: 503 });
        const got = nextMessage(ws, { ms: 5000 });
        ws.send('the first still echoes');
        assert.strictEqual((await got).data.toString(), 'the first still echoes');
    });
});
