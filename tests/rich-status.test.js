'use strict';
//! The opt-in rich status ("12 clients · 3.2k msg/s"): off by default (core's
//! text), on it counts clients and shows msgs/s from the addon's counters.

const assert = require('assert');
const sinon = require('sinon');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const richStatus = require('../nodes/lib/rich-status');
const { connect, wsUrl, until } = require('./support');

helper.init(require('./node-red-under-test').runtime);

describe('rich status', function () {
    describe('with a stand-in config node and a fake clock', function () {
        let clock;
        beforeEach(() => { clock = sinon.useFakeTimers({ now: 1000000, toFake: ['setInterval', 'clearInterval', 'Date'] }); });
        afterEach(() => clock.restore());

        function standIn(isListener) {
            const shown = [];
            let total = 0;
            const node = {
                isListener, count: 12, statusNodes: new Set([{ status: (s) => shown.push(s.text) }]), lastStatus: null,
                native: { stats: () => ({ msgsIn: total, msgsOut: total }) },
                // As the config node's (lib/endpoint.js): the steady part, no event.
                showStatus() {
                    const { event, _session, ...steady } = this.lastStatus;
                    for (const n of this.statusNodes) n.status(steady);
                }
            };
            const RED = { _: (key, o) => key + JSON.stringify(o) };
            return { node, RED, shown, add: (n) => { total += n; } };
        }

        it('shows the clients and the msgs/s in and out of the last interval, and only changes', function () {
            const { node, RED, shown, add } = standIn(true);
            node.lastStatus = richStatus.decorate(node, { fill: 'green', shape: 'dot', text: 'connected 12' }, RED);
            assert.strictEqual(node.lastStatus.text, 'websocket.status.rich{"count":12,"rate":"0"}');
            add(3200); // in and out: 6400 in 2 s
            clock.tick(richStatus.RATE_MS);
            assert.deepStrictEqual(shown, ['websocket.status.rich{"count":12,"rate":"3.2k"}']);
            clock.tick(richStatus.RATE_MS); // nothing new: 0 msg/s, one more change
            clock.tick(richStatus.RATE_MS); // still 0: no change, no status
            assert.deepStrictEqual(shown.slice(1), ['websocket.status.rich{"count":12,"rate":"0"}']);
            richStatus.stop(node);
            add(100);
            clock.tick(richStatus.RATE_MS * 2);
            assert.strictEqual(shown.length, 2, 'stopped');
        });

        it('leaves a status that is not "connected" as it is', function () {
            const { node, RED } = standIn(false);
            const red = { fill: 'red', shape: 'ring', text: 'common.status.error' };
            assert.strictEqual(richStatus.decorate(node, red, RED), red);
            assert.strictEqual(node.rich, undefined, 'no timer for a status that is not shown rich');
            const green = richStatus.decorate(node, { fill: 'green', text: 'x' }, RED);
            assert.strictEqual(green.text, 'websocket.status.rich-client{"rate":"0"}');
            richStatus.stop(node);
        });

        it('writes rates compactly', function () {
            assert.deepStrictEqual([0, 12.4, 999, 3200, 45600, 1.5e6, 2.5e7].map(richStatus.compact),
                ['0', '12', '999', '3.2k', '46k', '1.5M', '25M']);
        });
    });

    describe('in Node-RED', function () {
        const clients = [];
        before(() => helper.startServer());
        after(() => helper.stopServer());
        afterEach(async function () {
            for (const ws of clients.splice(0)) ws.terminate();
            await helper.unload();
        });

        async function statusWith(extra) {
            await helper.load(wsNode, [
                { id: 'listener', type: 'websocket-listener', path: '/ws/rich', wholemsg: 'false', ...extra },
                { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [[]] }
            ]);
            const node = helper.getNode('in');
            const spy = node.status; // the helper spies on it
            for (let i = 0; i < 2; i++) clients.push(await connect(wsUrl(helper, '/ws/rich')));
            await until(() => spy.getCalls().filter((c) => c.args[0].event === 'connect').length === 2, 'two connects shown');
            return spy.lastCall.args[0].text;
        }

        it('is off by default: the status is core\'s', async function () {
            // The test helper loads no message catalog: the text is the key.
            assert.strictEqual(await statusWith({}), 'websocket.status.connected');
        });

        it('on, shows the clients and msg/s', async function () {
            assert.strictEqual(await statusWith({ richStatus: true }), 'websocket.status.rich');
        });
    });
});
