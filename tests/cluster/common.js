'use strict';
// What the cluster tests share: the flow every instance runs (clients drive it
// with text commands), a client that keeps what it gets, and waits on markers.
// Every "nothing else arrived" is read off a marker sent after it on the same
// path: what came before the marker is all there was.

const { WebSocket, delay, until, within } = require('../support');

const WAIT = 10000;

// The tests count one warning per outage, and make several a minute: the
// Node-RED processes started with this environment log each one. (Not set on
// this process: a mocha test of the once-a-minute rule may share it.)
const ENV = { ...process.env, WSRS_TEST_CLUSTER_LOG_EVERY: '0' };

/** cmd|arg|arg: bcast|text, room|name|text, join|name, whoami, to|id|text, multi|id,id|text. */
const FUNC = `
const [cmd, a, b] = String(msg.payload).split('|');
switch (cmd) {
case 'bcast': delete msg._session; msg.payload = a; return msg;
case 'room': delete msg._session; msg.websocket = { room: [a] }; msg.payload = b; return msg;
case 'join': msg.websocket = { join: [a] }; delete msg.payload; return msg;
case 'whoami': msg.payload = 'id|' + msg._session.id; return msg;
case 'to': msg._session = { type: 'websocket', id: a }; msg.payload = b; return msg;
case 'multi': msg._session = a.split(',').map((id) => ({ type: 'websocket', id })); msg.payload = b; return msg;
}
return null;`;

/** The flow of every instance; `cluster` adds properties to the cluster node (mode, retention). */
function flow(redisPort, version = 1, cluster = {}) {
    return [
        { id: 'tab', type: 'tab', label: 'cluster' },
        { id: 'cl', type: 'websocket-cluster', url: 'redis://127.0.0.1:' + redisPort, prefix: 'wsrs-test:', ...cluster },
        { id: 'l', type: 'websocket-listener', path: '/ws/c', wholemsg: 'false', cluster: 'cl' },
        { id: 'in', type: 'websocket in', z: 'tab', server: 'l', wires: [['fn']] },
        { id: 'fn', type: 'function', z: 'tab', name: 'v' + version, func: FUNC, outputs: 1, wires: [['out']] },
        { id: 'out', type: 'websocket out', z: 'tab', server: 'l' }
    ];
}

/** A client of `path` that keeps every text it receives, in order: in `got`
 * (which tests take from) and in `all` (never taken from). */
async function client(nr, path = '/ws/c') {
    const ws = new WebSocket(nr.wsUrl + path);
    ws.got = [];
    ws.all = [];
    ws.on('message', (d) => {
        ws.got.push(d.toString());
        ws.all.push(d.toString());
    });
    ws.on('error', () => {});
    await within(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
    }), WAIT, 'a connection');
    return ws;
}

/** What `ws` got before `marker`, once the marker came (bounded); taken off its list. */
async function upTo(ws, marker) {
    await until(() => ws.got.includes(marker), 'marker ' + marker, WAIT);
    const at = ws.got.indexOf(marker);
    const before = ws.got.slice(0, at);
    ws.got = ws.got.slice(at + 1);
    return before;
}

/** The session id of `ws` (its listener replies "id|..."), which also means
 * every request it made before has been run. */
async function whoami(ws) {
    ws.send('whoami');
    await until(() => ws.got.some((t) => t.startsWith('id|')), 'whoami', WAIT);
    const i = ws.got.findIndex((t) => t.startsWith('id|'));
    const id = ws.got[i].slice(3);
    ws.got.splice(i, 1);
    return id;
}

let markers = 0;
const marker = () => 'end' + ++markers;
let probes = 0;

/** Until a broadcast from `from` reaches `to` (the link is up): one probe every
 * 200 ms, each starting "probe", sent as `say(probe)` (FUNC's bcast by default). */
async function probeUntil(from, to, what, say = (probe) => 'bcast|' + probe) {
    let sentAt = 0;
    const sent = [];
    await until(() => {
        if (Date.now() - sentAt >= 200) {
            sent.push('probe' + ++probes);
            from.send(say(sent[sent.length - 1]));
            sentAt = Date.now();
        }
        return sent.some((p) => to.got.includes(p));
    }, what, 20000);
    // Probes sent more than once are not part of any test.
    await delay(200);
}

/** Until a broadcast from each instance reaches a client of the next one; then clears every list. */
async function linked(clients) {
    for (let i = 0; i < clients.length; i++) {
        await probeUntil(clients[i][0], clients[(i + 1) % clients.length][0], 'instance ' + i + ' linked');
    }
    for (const c of clients.flat()) c.got = [];
}

/** Sends "bcast|0", "bcast|1", ... from `ws`, 5 ms apart (bounded: 4 000), until
 * `stop()`; `n` is how many it has sent. */
function numbered(ws) {
    const s = { n: 0, stopped: false };
    s.done = (async () => {
        while (!s.stopped && s.n < 4000) {
            ws.send('bcast|' + s.n++);
            await delay(5);
        }
    })();
    s.stop = () => {
        s.stopped = true;
        return s.done;
    };
    return s;
}

/** How many times `re` occurs in `nr`'s log. */
const count = (nr, re) => (nr.output().match(new RegExp(re.source, 'g')) || []).length;

/** Numbers 0..n-1. */
const upToN = (n) => Array.from({ length: n }, (_, i) => i);

module.exports = { ENV, WAIT, flow, client, upTo, whoami, marker, probeUntil, linked, count, upToN, numbered };
