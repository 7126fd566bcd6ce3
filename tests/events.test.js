'use strict';
//! Sessions in flows (issue 13): connection events on a `websocket in` node's
//! second output, multicast, and closing one session from a flow, against real
//! `ws` clients over loopback.

const assert = require('assert');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { connect, nextMessage, messages, closed, received, wsUrl, until, within, collect } = require('./support');

helper.init(require('./node-red-under-test').runtime);

function flow({ events = true, listener = {} } = {}) {
    return [
        { id: 'listener', type: 'websocket-listener', path: '/ws/ev', wholemsg: 'false', ...listener },
        { id: 'in', type: 'websocket in', server: 'listener', client: '', events, outputs: events ? 2 : 1, wires: [['sink'], ['events']] },
        { id: 'sink', type: 'helper' },
        { id: 'events', type: 'helper' },
        { id: 'out', type: 'websocket out', server: 'listener', client: '' }
    ];
}

describe('sessions in flows', function () {
    const clients = [];
    async function client(path = '/ws/ev', protocols, options) {
        const ws = await within(connect(wsUrl(helper, path), protocols, options), 5000, 'a connection');
        clients.push(ws);
        return ws;
    }

    /** A client and its `_session`, learnt from a message it sends to the flow. */
    async function identified(name) {
        const ws = await client();
        const got = received(helper.getNode('sink'));
        ws.send(name);
        const msg = await within(got, 5000, 'the message of ' + name);
        assert.strictEqual(msg.payload, name);
        return { ws, session: msg._session };
    }

    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async function () {
        for (const ws of clients.splice(0)) ws.terminate();
        await helper.unload();
    });

    it('emits connect with the request, data on output 1, then disconnect with code and reason', async function () {
        await helper.load(wsNode, flow({ listener: { subprotocol: 'chat' } }));
        const events = collect(helper.getNode('events'));
        const ws = await client('/ws/ev?room=a&x=1&x=2', ['chat'], { headers: { 'X-Test': 'yes' } });
        await until(() => events.length === 1, 'the connect event');
        const [connectMsg] = events;
        assert.strictEqual(connectMsg.payload, 'connect');
        assert.strictEqual(connectMsg._session.type, 'websocket');
        const w = connectMsg.websocket;
        assert.strictEqual(w.event, 'connect');
        assert.strictEqual(w.url, '/ws/ev?room=a&x=1&x=2');
        assert.strictEqual(w.path, '/ws/ev');
        assert.deepStrictEqual(w.query, { room: 'a', x: ['1', '2'] });
        assert.strictEqual(w.headers['x-test'], 'yes');
        assert.match(w.remoteAddress, /127\.0\.0\.1$/);
        assert.strictEqual(w.subprotocol, 'chat');
        // Data keeps to output 1, with the same session.
        const data = received(helper.getNode('sink'));
        ws.send('hello');
        const msg = await within(data, 5000, 'the data msg');
        assert.deepStrictEqual(msg._session, connectMsg._session);
        assert.strictEqual(msg.websocket, undefined);
        ws.close(4002, 'bye bye');
        await until(() => events.length === 2, 'the disconnect event');
        assert.deepStrictEqual(events.map((m) => m.payload), ['connect', 'disconnect']);
        assert.deepStrictEqual(events[1]._session, connectMsg._session);
        assert.deepStrictEqual(events[1].websocket, { event: 'disconnect', code: 4002, reason: 'bye bye' });
    });

    it('emits nothing on output 2 and keeps no request info without the option', async function () {
        await helper.load(wsNode, flow({ events: false }));
        const events = collect(helper.getNode('events'));
        const sink = collect(helper.getNode('sink'));
        const listener = helper.getNode('listener');
        const handed = [];
        const adopt = listener.native.adopt.bind(listener.native);
        listener.native.adopt = (fd, head, request) => {
            handed.push(request);
            return adopt(fd, head, request);
        };
        const a = await client();
        a.send('a');
        a.close(4000, 'x');
        await closed(a, { ms: 5000 });
        const b = await client();
        b.send('b');
        // Positive control: what b sent after a had gone arrived; no event did.
        await until(() => sink.length === 2, 'both data msgs');
        assert.deepStrictEqual(sink.map((m) => m.payload), ['a', 'b']);
        assert.strictEqual(events.length, 0);
        // Nothing about the request was gathered for Rust to hand back.
        assert.strictEqual(handed.length, 2);
        assert.ok(handed.every((r) => r.announce === undefined), JSON.stringify(handed));
        assert.strictEqual(listener.eventNodes.size, 0);
        assert.strictEqual(listener.announced.size, 0);
    });

    it('sends an array _session to each of its live sessions in one crossing, framed once', async function () {
        await helper.load(wsNode, flow());
        const a = await identified('a');
        const b = await identified('b');
        const c = await identified('c');
        const listener = helper.getNode('listener');
        const calls = [];
        const run = listener.native.run.bind(listener.native);
        listener.native.run = (ops, payloads, names) => {
            calls.push({ ops: [...ops], payloads: [...payloads] });
            return run(ops, payloads, names);
        };
        const [ga, gb, gc] = [messages(a.ws, 2), messages(b.ws, 2), messages(c.ws, 1)];
        const out = helper.getNode('out');
        // A session object, a plain id, one that has gone (skipped), and one named twice (sent once).
        out.receive({ payload: 'to a and b', _session: [a.session, b.session.id, { type: 'websocket', id: 'ffffffff' }, a.session] });
        out.receive({ payload: 'end' });
        const texts = async (p) => (await within(p, 5000, 'messages')).map((m) => m.data.toString());
        assert.deepStrictEqual(await texts(ga), ['to a and b', 'end']);
        assert.deepStrictEqual(await texts(gb), ['to a and b', 'end']);
        // c got the broadcast sent after the multicast, and nothing before it.
        assert.deepStrictEqual(await texts(gc), ['end']);
        assert.strictEqual(calls.length, 1, 'one crossing for the turn');
        assert.deepStrictEqual(calls[0].payloads, ['to a and b', 'end'], 'the multicast payload crosses once');
        assert.strictEqual(calls[0].ops[0], 2, 'a MULTICAST op');
    });

    it('closes one session with a code and reason after sending it the payload', async function () {
        await helper.load(wsNode, flow());
        const events = collect(helper.getNode('events'));
        const a = await identified('a');
        const b = await identified('b');
        const got = nextMessage(a.ws, { ms: 5000 });
        const end = closed(a.ws, { ms: 5000 });
        helper.getNode('out').receive({ payload: 'last', _session: a.session, websocket: { close: { code: 4000, reason: 'done' } } });
        assert.strictEqual((await got).data.toString(), 'last');
        assert.deepStrictEqual(await end, { code: 4000, reason: 'done' });
        // The flow hears the close as the client answered it.
        await until(() => events.some((m) => m.payload === 'disconnect'), 'the disconnect event');
        const bye = events.find((m) => m.payload === 'disconnect');
        assert.deepStrictEqual([bye._session, bye.websocket.code, bye.websocket.reason], [a.session, 4000, 'done']);
        // b stays connected (positive control: it still gets a broadcast).
        const still = nextMessage(b.ws, { ms: 5000 });
        helper.getNode('out').receive({ payload: 'still here' });
        assert.strictEqual((await still).data.toString(), 'still here');
        // `true` closes with 1000 and no reason; without a payload nothing else is sent.
        const endB = closed(b.ws, { ms: 5000 });
        helper.getNode('out').receive({ _session: [b.session], websocket: { close: true } });
        assert.deepStrictEqual(await endB, { code: 1000, reason: '' });
    });

    it('refuses a close code or reason that may not be sent, and sends nothing of that msg', async function () {
        await helper.load(wsNode, flow());
        const a = await identified('a');
        const out = helper.getNode('out');
        const errors = [];
        out.on('call:error', (call) => errors.push(call.args[0]));
        const got = [];
        a.ws.on('message', (d) => got.push(d.toString()));
        for (const close of [{ code: 1005 }, { code: 2999 }, { code: 5000 }, { code: 1000.5 }, { reason: 'x'.repeat(124) }, 'yes']) {
            out.receive({ payload: 'not sent', _session: a.session, websocket: { close } });
        }
        out.receive({ payload: 'not sent either', websocket: { join: 'r' } }); // join needs _session
        out.receive({ payload: 'ok', _session: a.session, websocket: { close: { code: 4999, reason: 'é'.repeat(61) } } });
        const end = await closed(a.ws, { ms: 5000 });
        assert.deepStrictEqual(end, { code: 4999, reason: 'é'.repeat(61) });
        // Positive control: the valid msg's payload arrived, and only it.
        assert.deepStrictEqual(got, ['ok']);
        assert.strictEqual(errors.length, 7, errors.join('\n'));
    });

    it('answers msg.websocket.rooms on the events output, after the joins and leaves of the same msg', async function () {
        await helper.load(wsNode, flow());
        const events = collect(helper.getNode('events'));
        const a = await identified('a');
        const out = helper.getNode('out');
        out.receive({ _session: a.session, websocket: { join: ['lobby', 'é'], rooms: true } });
        out.receive({ _session: [a.session], websocket: { leave: 'lobby', rooms: true } });
        await until(() => events.filter((m) => m.payload === 'rooms').length === 2, 'two listings');
        const listings = events.filter((m) => m.payload === 'rooms');
        assert.deepStrictEqual(listings.map((m) => m.websocket), [{ event: 'rooms', list: ['lobby', 'é'] }, { event: 'rooms', list: ['é'] }]);
        assert.deepStrictEqual(listings[0]._session, a.session);
        assert.deepStrictEqual(helper.getNode('listener').native.rooms(), { é: 1 });
        // Wired back to the out node (to tell the client its rooms), the event is no request.

        const errors = [];
        const error = out.error.bind(out);
        out.error = (e, m) => { errors.push(String(e)); error(e, m); };
        const told = messages(a.ws, 1);
        out.receive({ ...listings[0], payload: JSON.stringify(listings[0].websocket.list) });
        assert.deepStrictEqual((await within(told, 5000, 'the list')).map((m) => m.data.toString()), ['["lobby","é"]']);
        assert.deepStrictEqual(errors, []);
    });

    it('in whole-msg mode leaves a command object out of the JSON, and sends a command msg only with a payload', async function () {
        await helper.load(wsNode, flow({ listener: { wholemsg: 'true' } }));
        const ws = await client();
        const got = received(helper.getNode('sink'));
        ws.send(JSON.stringify({ payload: 'hi' }));
        const session = (await within(got, 5000, 'the msg'))._session;
        const texts = messages(ws, 2);
        const out = helper.getNode('out');
        out.receive({ _session: session, websocket: { join: 'lobby' }, topic: 'not sent: no payload' });
        out.receive({ payload: 'p', topic: 't', _session: session, websocket: { room: 'lobby' } });
        out.receive({ payload: 'q', _session: session, websocket: { event: 'connect' } });
        const [m1, m2] = (await within(texts, 5000, 'two messages')).map((m) => {
            const { _msgid, ...sent } = JSON.parse(m.data.toString());
            return sent;
        });
        assert.deepStrictEqual(m1, { payload: 'p', topic: 't' });
        // Not a command: sent as the msg holds it, as before.
        assert.deepStrictEqual(m2, { payload: 'q', websocket: { event: 'connect' } });
    });

    it('in whole-msg mode removes requests a peer wrote from the msg, so an echo flow never runs them', async function () {
        await helper.load(wsNode, flow({ listener: { wholemsg: 'true' } }));
        const peer = await client();
        const other = await client();
        const got = received(helper.getNode('sink'), 3);
        const otherGot = messages(other, 1);
        peer.send(JSON.stringify({ payload: 'a', websocket: { close: true } }));
        peer.send(JSON.stringify({ payload: 'b', websocket: { room: 'x', note: 'kept?' } }));
        peer.send(JSON.stringify({ payload: 'c', websocket: { note: 'not a request' } }));
        const msgs = await within(got, 5000, 'three msgs');
        assert.strictEqual(msgs[0].websocket, undefined);
        assert.strictEqual(msgs[1].websocket, undefined);
        assert.deepStrictEqual(msgs[2].websocket, { note: 'not a request' }, 'a websocket property without requests stays');
        // Passed straight on to the out node: a reply to the peer each, no close, no room publish.
        const echoes = messages(peer, 3);
        for (const m of msgs) helper.getNode('out').receive(m);
        const sent = (await within(echoes, 5000, 'three echoes')).map((m) => JSON.parse(m.data.toString()).payload);
        assert.deepStrictEqual(sent, ['a', 'b', 'c']);
        assert.strictEqual(peer.readyState, 1, 'the peer\'s own close request was not run');
        // Positive control that the other client receives what is meant for everyone.
        helper.getNode('out').receive({ payload: 'to all' });
        assert.strictEqual(JSON.parse((await within(otherGot, 5000, 'the broadcast'))[0].data.toString()).payload, 'to all');
    });

    it('emits connect and disconnect for a client connection, with the server\'s code and reason', async function () {
        const port = helper.url().split(':').pop();
        await helper.load(wsNode, [
            ...flow({ listener: { subprotocol: 'chat' } }),
            { id: 'client', type: 'websocket-client', path: 'ws://127.0.0.1:' + port + '/ws/ev', subprotocol: 'chat', wholemsg: 'false' },
            { id: 'cin', type: 'websocket in', server: '', client: 'client', events: true, outputs: 2, wires: [[], ['cevents']] },
            { id: 'cevents', type: 'helper' }
        ]);
        const serverEvents = collect(helper.getNode('events'));
        const clientEvents = collect(helper.getNode('cevents'));
        await until(() => clientEvents.length === 1 && serverEvents.length === 1, 'both connect events');
        assert.strictEqual(clientEvents[0].payload, 'connect');
        assert.deepStrictEqual(clientEvents[0].websocket,
            { event: 'connect', url: 'ws://127.0.0.1:' + port + '/ws/ev', subprotocol: 'chat' });
        helper.getNode('out').receive({ _session: serverEvents[0]._session, websocket: { close: { code: 4100, reason: 'go' } } });
        await until(() => clientEvents.length >= 2, 'the client\'s disconnect event');
        assert.deepStrictEqual([clientEvents[1].payload, clientEvents[1].websocket],
            ['disconnect', { event: 'disconnect', code: 4100, reason: 'go' }]);
        assert.deepStrictEqual(clientEvents[1]._session, clientEvents[0]._session);
    });
});
