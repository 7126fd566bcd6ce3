'use strict';
//! Rooms kept in Rust (issue 13): 1 000 real `ws` clients in 10 rooms, joined
//! and published to from a flow; each gets exactly its rooms' messages, and rooms
//! empty themselves as their members leave.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { clientPool, wsUrl, until, within } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const SESSIONS = 1000;
const ROOMS = 10;
const PER_ROOM = 3;

const flow = [
    { id: 'listener', type: 'websocket-listener', path: '/ws/rooms', wholemsg: 'false' },
    { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [['sink']] },
    { id: 'sink', type: 'helper' },
    { id: 'out', type: 'websocket out', server: 'listener', client: '' }
];

describe('rooms', function () {
    this.timeout(60000);
    let pool;
    before(() => helper.startServer());
    after(() => helper.stopServer());
    beforeEach(() => {
        pool = clientPool(() => wsUrl(helper, ''));
    });
    afterEach(async function () {
        await pool.closeAll();
        await helper.unload();
    });

    /** Connects `n` clients; each says its number, so the flow learns its `_session`. */
    async function sessions(n) {
        const sink = helper.getNode('sink');
        const sessionOf = new Map();
        sink.on('input', (msg) => sessionOf.set(Number(msg.payload), msg._session));
        const clients = [];
        for (let i = 0; i < n; i += 100) {
            clients.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => pool.connect('/ws/rooms'))));
        }
        clients.forEach((ws, i) => ws.send(String(i)));
        await until(() => sessionOf.size === n, 'every client\'s first message', 20000);
        return clients.map((ws, i) => ({ ws, session: sessionOf.get(i), got: [] }));
    }

    function roomsOf(i) {
        return i < 100 ? ['room' + (i % ROOMS), 'extra'] : ['room' + (i % ROOMS)];
    }

    it('delivers to exactly the members of each room, 1 000 sessions in 10 rooms', async function () {
        await helper.load(wsNode, flow);
        const all = await sessions(SESSIONS);
        const out = helper.getNode('out');
        all.forEach((c, i) => out.receive({ _session: c.session, websocket: { join: roomsOf(i) } }));
        for (let k = 0; k < PER_ROOM; k++) {
            for (let r = 0; r < ROOMS; r++) out.receive({ payload: 'r' + r + '.' + k, websocket: { room: 'room' + r } });
        }
        // Two rooms at once: a member of both gets it once. `room` wins over `_session`.
        out.receive({ payload: 'multi', _session: all[5].session, websocket: { room: ['room3', 'extra'] } });
        // The end of every client's stream: what it got of the rooms came before.
        out.receive({ payload: 'end' });
        const ended = all.map((c) => within(new Promise((resolve) => c.ws.on('message', (d) => {
            const text = d.toString();
            if (text === 'end') resolve();
            else c.got.push(text);
        })), 20000, 'the end marker'));
        await Promise.all(ended);
        let delivered = 0;
        all.forEach((c, i) => {
            const expected = [];
            for (let k = 0; k < PER_ROOM; k++) expected.push('r' + (i % ROOMS) + '.' + k);
            if (i % ROOMS === 3 || i < 100) expected.push('multi');
            assert.deepStrictEqual(c.got, expected, 'session ' + i);
            delivered += c.got.length;
        });
        // 3 per session, and 'multi' to room3's 100 and extra's 90 others.
        assert.strictEqual(delivered, SESSIONS * PER_ROOM + 190);
        const sizes = helper.getNode('listener').native.rooms();
        assert.deepStrictEqual(Object.keys(sizes).sort(), ['extra', ...Array.from({ length: ROOMS }, (_, r) => 'room' + r)].sort());
        assert.ok(Object.values(sizes).every((n) => n === 100), JSON.stringify(sizes));
    });

    it('empties rooms as their members leave them or close', async function () {
        await helper.load(wsNode, flow);
        const all = await sessions(200);
        const out = helper.getNode('out');
        all.forEach((c, i) => out.receive({ _session: c.session, websocket: { join: roomsOf(i) } }));
        const native = helper.getNode('listener').native;
        await until(() => native.rooms().room0 === 20 && native.rooms().extra === 100, 'the joins');
        // Sessions 0-99 close: 'extra' goes, and each room keeps its 10 others.
        await Promise.all(all.slice(0, 100).map((c) => new Promise((resolve) => {
            c.ws.once('close', resolve);
            c.ws.close(1000);
        })));
        await until(() => native.rooms().extra === undefined && native.rooms().room0 === 10, 'the closed sessions leaving their rooms');
        // A leave takes one session out of one room.
        out.receive({ _session: all[100].session, websocket: { leave: 'room0' } });
        await until(() => native.rooms().room0 === 9, 'the leave');
        assert.strictEqual(native.rooms().room1, 10);
        // A publish reaches the members left, and no one who left (positive control: room1).
        const first = (ws) => within(new Promise((resolve) => ws.once('message', (d) => resolve(d.toString()))), 5000, 'a message');
        const [left, stayed] = [first(all[100].ws), first(all[110].ws)];
        out.receive({ payload: 'to room0', websocket: { room: 'room0' } });
        out.receive({ payload: 'to everyone' });
        assert.strictEqual(await left, 'to everyone');
        assert.strictEqual(await stayed, 'to room0');
        await pool.closeAll();
        await until(() => Object.keys(native.rooms()).length === 0, 'every room emptied');
    });
});
