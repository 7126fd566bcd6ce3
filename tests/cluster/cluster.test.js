'use strict';
//! Broadcasts, room publishes and replies across three real Node-RED processes
//! sharing one real redis-server (issue 15). Clients drive each flow with text
//! commands (see FLOW). Every "nothing else arrived" is read off a marker sent
//! after it on the same path: what came before the marker is all there was.

const assert = require('assert');
const { WebSocket, delay, until, within } = require('../support');
const { startNodeRed, freePort } = require('../nodered');
const { startRedis } = require('./redis');

const WAIT = 10000;

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

function flow(redisPort, version = 1) {
    return [
        { id: 'tab', type: 'tab', label: 'cluster' },
        { id: 'cl', type: 'websocket-cluster', url: 'redis://127.0.0.1:' + redisPort, prefix: 'wsrs-test:' },
        { id: 'l', type: 'websocket-listener', path: '/ws/c', wholemsg: 'false', cluster: 'cl' },
        { id: 'in', type: 'websocket in', z: 'tab', server: 'l', wires: [['fn']] },
        { id: 'fn', type: 'function', z: 'tab', name: 'v' + version, func: FUNC, outputs: 1, wires: [['out']] },
        { id: 'out', type: 'websocket out', z: 'tab', server: 'l' }
    ];
}

/** A client that keeps every text it receives, in order. */
async function client(nr) {
    const ws = new WebSocket(nr.wsUrl + '/ws/c');
    ws.got = [];
    ws.on('message', (d) => ws.got.push(d.toString()));
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

describe('cluster: three Node-RED instances through one redis-server', function () {
    this.timeout(60000);
    let redis = null;
    let redisPort = 0;
    const nrs = [];
    const clients = [];

    async function connectAll() {
        clients.length = 0;
        for (const nr of nrs) clients.push([await client(nr), await client(nr)]);
    }

    /** Until a broadcast from each instance reaches a client of the next one (the links are up). */
    async function linked() {
        for (let i = 0; i < nrs.length; i++) {
            const from = clients[i][0];
            const to = clients[(i + 1) % nrs.length][0];
            const probe = 'probe' + i + '.' + Date.now();
            let sentAt = 0;
            await until(() => {
                // One probe every 200 ms until one comes across.
                if (Date.now() - sentAt >= 200) {
                    from.send('bcast|' + probe);
                    sentAt = Date.now();
                }
                return to.got.includes(probe);
            }, 'instance ' + i + ' linked', 20000);
            // Probes sent more than once are not part of any test.
            await delay(200);
        }
        for (const c of clients.flat()) c.got = [];
    }

    before(async function () {
        redisPort = await freePort();
        redis = await startRedis(redisPort);
        for (let i = 0; i < 3; i++) {
            nrs.push(await startNodeRed({ withPackage: true, flows: flow(redisPort), prefix: 'wsrs-cluster-' + i + '-' }));
        }
        await connectAll();
        await linked();
    });

    after(async function () {
        for (const c of clients.flat()) c.terminate();
        for (const nr of nrs) {
            if (process.env.E2E_LOG) console.log(nr.output());
            await nr.stop({ signal: 'SIGKILL', ms: 5000 });
        }
        if (redis) await redis.stop();
    });

    it('gives each session an id that names its instance, unique across the cluster', async function () {
        const ids = [];
        for (const pair of clients) for (const c of pair) ids.push(await whoami(c));
        for (const id of ids) assert.match(id, /^[0-9a-f]{12}-[0-9a-f]+$/);
        assert.strictEqual(new Set(ids).size, 6, ids.join(' '));
        const instances = ids.map((id) => id.slice(0, 12));
        assert.strictEqual(new Set(instances).size, 3, 'three instances');
        assert.strictEqual(instances[0], instances[1], 'two sessions of one instance');
    });

    it('delivers a broadcast made on any instance to every session on every instance, exactly once', async function () {
        for (let from = 0; from < 3; from++) {
            const end = marker();
            clients[from][1].send('bcast|hello' + from);
            clients[from][1].send('bcast|' + end);
            for (const c of clients.flat()) {
                assert.deepStrictEqual(await upTo(c, end), ['hello' + from]);
            }
        }
    });

    it('delivers a room publish to the members on every instance, and to no one else', async function () {
        // Members: the first client of instances 0 and 2; whoami: their joins have run.
        for (const c of [clients[0][0], clients[2][0]]) {
            c.send('join|lobby');
            await whoami(c);
        }
        const end = marker();
        clients[1][1].send('room|lobby|hi room');
        clients[1][1].send('bcast|' + end);
        for (const [i, pair] of clients.entries()) {
            for (const [j, c] of pair.entries()) {
                const member = j === 0 && i !== 1;
                assert.deepStrictEqual(await upTo(c, end), member ? ['hi room'] : [], 'instance ' + i + ' client ' + j);
            }
        }
    });

    it('routes a reply to a session of another instance there, and a multicast to each owner', async function () {
        const target = await whoami(clients[2][1]);
        const other = await whoami(clients[1][0]);
        const end = marker();
        clients[0][0].send('to|' + target + '|just you');
        clients[0][0].send('multi|' + [target, other].join(',') + '|you two');
        clients[0][0].send('to|' + target.slice(0, 13) + 'ffffff|nobody');
        clients[0][0].send('bcast|' + end);
        for (const [i, pair] of clients.entries()) {
            for (const [j, c] of pair.entries()) {
                const expected = i === 2 && j === 1 ? ['just you', 'you two'] : i === 1 && j === 0 ? ['you two'] : [];
                assert.deepStrictEqual(await upTo(c, end), expected, 'instance ' + i + ' client ' + j);
            }
        }
    });

    it('keeps local delivery going through a Redis restart, warns once, and resumes on its own (Pub/Sub shows the gap)', async function () {
        const [a, b] = [clients[0][0], clients[1][0]];
        const warnings = () => (nrs[0].output().match(/Cluster disconnected from/g) || []).length;
        const before = warnings();
        let n = 0;
        let stop = false;
        const sender = (async () => {
            // Bounded: at most 4 000 numbers, 5 ms apart.
            while (!stop && n < 4000) {
                a.send('bcast|' + n++);
                await delay(5);
            }
        })();
        await until(() => b.got.length >= 50, 'the stream across', WAIT);
        await redis.stop();
        const cutAt = n;
        // Local delivery carries on meanwhile.
        await until(() => a.got.length >= cutAt + 100, 'local delivery while Redis is down', WAIT);
        await until(() => warnings() > before, 'the warning', WAIT);
        await delay(1000);
        redis = await startRedis(redisPort);
        // Resumed without a redeploy: numbers sent after the restart reach b.
        const restartedAt = n;
        await until(() => b.got.some((t) => Number(t) > restartedAt), 'the stream across again', 20000);
        stop = true;
        await sender;
        const end = marker();
        a.send('bcast|' + end);
        const atA = (await upTo(a, end)).map(Number);
        const atB = (await upTo(b, end)).map(Number);
        // a (local) got every number once, in order; b got them in order, none
        // twice, with the outage's numbers missing (at most once).
        assert.deepStrictEqual(atA, Array.from({ length: n }, (_, i) => i));
        assert.deepStrictEqual(atB, [...atB].sort((x, y) => x - y));
        assert.strictEqual(new Set(atB).size, atB.length, 'no duplicates');
        const missing = n - atB.length;
        assert.ok(missing > 0 && atB.includes(n - 1) && atB.includes(0), 'a gap in the middle: ' + missing + ' of ' + n + ' missing');
        assert.strictEqual(warnings(), before + 1, 'one warning for the outage');
        assert.match(nrs[0].output(), /Cluster connected again/);
        for (const c of clients.flat()) c.got = [];
    });

    it('works again after a redeploy, with no delivery doubled', async function () {
        const closes = clients[1].map((c) => new Promise((resolve) => c.once('close', resolve)));
        await nrs[1].deploy(flow(redisPort, 2));
        await within(Promise.all(closes), WAIT, 'the redeployed listener closing its sessions');
        clients[1] = [await client(nrs[1]), await client(nrs[1])];
        await linked();
        for (let from = 0; from < 3; from++) {
            const end = marker();
            clients[from][0].send('bcast|again' + from);
            clients[from][0].send('bcast|' + end);
            for (const c of clients.flat()) {
                assert.deepStrictEqual(await upTo(c, end), ['again' + from]);
            }
        }
    });
});
