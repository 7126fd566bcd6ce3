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

    it('never writes a later batch over a payload the flow holds', async function () {
        // Batch Buffers are lent back to the addon for later batches; a binary
        // payload from 4 KiB up is a view of its batch and must keep its bytes.
        await helper.load(wsNode, [
            { id: 'listener', type: 'websocket-listener', path: '/ws/in', wholemsg: 'false' },
            { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
            { id: 'sink', type: 'helper' }
        ]);
        ws = await connect(wsUrl(helper, '/ws/in'));
        const total = 2000;
        // Views (4 KiB), copies (100 B) and strings, mixed, each with its number in every byte's place.
        const make = (i) => (i % 3 === 2 ? 't' + i : Buffer.alloc(i % 3 === 0 ? 4096 : 100, i % 251));
        const kept = [];
        const arrived = new Promise((resolve) => {
            helper.getNode('sink').on('input', (msg) => {
                kept.push(msg.payload);
                if (kept.length === total) resolve();
            });
        });
        for (let i = 0; i < total; i++) ws.send(make(i));
        await within(arrived, 20000, 'all ' + total + ' msgs');
        // Later batches have arrived and been read by now: check every payload kept.
        for (let i = 0; i < total; i++) {
            assert.ok(Buffer.isBuffer(make(i)) ? make(i).equals(kept[i]) : make(i) === kept[i], 'payload ' + i + ' changed');
        }
    });
});
