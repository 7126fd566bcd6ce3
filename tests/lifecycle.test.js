'use strict';
//! Redeploys with live connections leave nothing behind: descriptors and
//! threads return to their baseline (listener and client mode).

const assert = require('assert');
const fs = require('fs');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { connect, nextMessage, closed, wsUrl, until } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const threadCount = () => fs.readdirSync('/proc/self/task').length;

function flow(port) {
    return [
        { id: 'l', type: 'websocket-listener', path: '/ws/life', wholemsg: 'false' },
        { id: 'in', type: 'websocket in', server: 'l', client: '', wires: [['out']] },
        { id: 'out', type: 'websocket out', server: 'l', client: '' },
        // a client of the same Node-RED, so client mode is redeployed too
        { id: 'c', type: 'websocket-client', path: 'ws://127.0.0.1:' + port + '/ws/life', tls: '', wholemsg: 'false', hb: '1', subprotocol: '', headers: [] },
        { id: 'cin', type: 'websocket in', server: '', client: 'c', wires: [] }
    ];
}

describe('lifecycle', function () {
    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(() => helper.unload());

    async function cycle(port) {
        await helper.load(wsNode, flow(port));
        const clients = [];
        for (let i = 0; i < 5; i++) clients.push(await connect(wsUrl(helper, '/ws/life')));
        await until(() => helper.getNode('c').count === 1, 'client node connected');
        const echo = nextMessage(clients[0]);
        clients[0].send('still here');
        assert.strictEqual((await echo).data.toString(), 'still here');
        const codes = Promise.all(clients.map(closed));
        await helper.unload();
        for (const { code } of await codes) assert.strictEqual(code, 1001);
    }

    it('returns descriptors and threads to baseline after 30 redeploys with connected clients', async function () {
        this.timeout(60000);
        if (!fs.existsSync('/proc/self/fd')) this.skip();
        const port = new URL(helper.url()).port;
        await cycle(port); // warm up: runtime threads, lazy allocations
        const fds = fdCount();
        const threads = threadCount();
        for (let i = 0; i < 30; i++) await cycle(port);
        await until(() => fdCount() <= fds, 'descriptors back to ' + fds + ' (now ' + fdCount() + ')', 5000);
        // tokio's blocking pool (DNS look-ups) may keep a few idle threads for 10 s.
        assert.ok(threadCount() <= threads + 4, 'threads ' + threadCount() + ' vs baseline ' + threads);
    });
});
