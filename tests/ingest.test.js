'use strict';
//! A backlog of inbound messages reaches the flow one batch per event-loop turn,
//! in order, in a real Node-RED (test helper) fed by a real `ws` client.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { connect, within, wsUrl } = require('./support');

helper.init(require('./node-red-under-test').runtime);

/** Events per batch (BATCH_MAX_EVENTS in src/inbox.rs). */
const BATCH = 256;

describe('inbound backlog', function () {
    let ws = null;
    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        if (ws) ws.terminate();
        ws = null;
        await helper.unload();
    });

    it('is delivered a batch per event-loop turn, in order, not all in one turn', async function () {
        await helper.load(wsNode, [
            { id: 'listener', type: 'websocket-listener', path: '/ws/in', wholemsg: 'false' },
            { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
            { id: 'sink', type: 'helper' }
        ]);
        ws = await connect(wsUrl(helper, '/ws/in'));
        const total = 40 * BATCH;
        // Counts the msgs that reach the flow between two turns of the event loop
        // (a setImmediate that re-arms itself runs once per turn), until all arrived.
        let inTurn = 0;
        let most = 0;
        let turns = 0;
        let got = 0;
        let outOfOrder = null;
        const arrived = new Promise((resolve) => {
            helper.getNode('sink').on('input', (msg) => {
                if (msg.payload !== 'm' + got && outOfOrder === null) outOfOrder = got + ': ' + msg.payload;
                inTurn++;
                if (++got === total) resolve();
            });
        });
        let ticking = true;
        (function tick() {
            most = Math.max(most, inTurn);
            inTurn = 0;
            turns++;
            if (ticking) setImmediate(tick);
        })();
        try {
            // Sent in one go: the listener reads them all while the flow catches up.
            for (let i = 0; i < total; i++) ws.send('m' + i);
            await within(arrived, 20000, 'all ' + total + ' msgs');
        } finally {
            ticking = false;
        }
        most = Math.max(most, inTurn);
        assert.strictEqual(outOfOrder, null, 'out of order at msg ' + outOfOrder);
        // A turn may see the batch pulled in the turn before and one more that woke it.
        assert.ok(most <= 2 * BATCH, most + ' msgs reached the flow in one turn (of ' + total + ', in ' + turns + ' turns)');
        assert.ok(turns >= total / (2 * BATCH), 'the control counted ' + turns + ' turns');
    });
});
