'use strict';
//! Broadcasts, room publishes and replies across three real Node-RED processes
//! sharing one real redis-server, in the default Pub/Sub mode (issue 15).
//! Clients drive each flow with text commands (common.js).

const assert = require('assert');
const { delay, until, within } = require('../support');
const { startNodeRed, freePort } = require('../nodered');
const { startRedis } = require('./redis');
const { ENV, WAIT, flow, client, upTo, whoami, marker, linked, count, upToN, numbered } = require('./common');

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

    before(async function () {
        redisPort = await freePort();
        redis = await startRedis(redisPort);
        for (let i = 0; i < 3; i++) {
            nrs.push(await startNodeRed({ withPackage: true, flows: flow(redisPort), prefix: 'wsrs-cluster-' + i + '-', env: ENV }));
        }
        await connectAll();
        await linked(clients);
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
        const warnings = () => count(nrs[0], /Cluster disconnected from/);
        const before = warnings();
        const sender = numbered(a);
        await until(() => b.got.length >= 50, 'the stream across', WAIT);
        await redis.stop();
        const cutAt = sender.n;
        // Local delivery carries on meanwhile.
        await until(() => a.got.length >= cutAt + 100, 'local delivery while Redis is down', WAIT);
        await until(() => warnings() > before, 'the warning', WAIT);
        await delay(1000);
        redis = await startRedis(redisPort);
        // Resumed without a redeploy: numbers sent after the restart reach b.
        const restartedAt = sender.n;
        await until(() => b.got.some((t) => Number(t) > restartedAt), 'the stream across again', 20000);
        await sender.stop();
        const end = marker();
        a.send('bcast|' + end);
        const atA = (await upTo(a, end)).map(Number);
        const atB = (await upTo(b, end)).map(Number);
        // a (local) got every number once, in order; b got them in order, none
        // twice, with the outage's numbers missing (at most once).
        assert.deepStrictEqual(atA, upToN(sender.n));
        assert.deepStrictEqual(atB, [...atB].sort((x, y) => x - y));
        assert.strictEqual(new Set(atB).size, atB.length, 'no duplicates');
        const missing = sender.n - atB.length;
        assert.ok(missing > 0 && atB.includes(sender.n - 1) && atB.includes(0), 'a gap in the middle: ' + missing + ' of ' + sender.n + ' missing');
        assert.strictEqual(warnings(), before + 1, 'one warning for the outage');
        assert.match(nrs[0].output(), /Cluster connected again/);
        for (const c of clients.flat()) c.got = [];
    });

    it('works again after a redeploy, with no delivery doubled', async function () {
        const closes = clients[1].map((c) => new Promise((resolve) => c.once('close', resolve)));
        await nrs[1].deploy(flow(redisPort, 2));
        await within(Promise.all(closes), WAIT, 'the redeployed listener closing its sessions');
        clients[1] = [await client(nrs[1]), await client(nrs[1])];
        await linked(clients);
        for (let from = 0; from < 3; from++) {
            const end = marker();
            clients[from][0].send('bcast|again' + from);
            clients[from][0].send('bcast|' + end);
            for (const c of clients.flat()) {
                assert.deepStrictEqual(await upTo(c, end), ['again' + from]);
            }
        }
    });

    it('works again after a "nodes" redeploy that changes only the listener (the cluster node keeps running)', async function () {
        // Only the listener changes (its name): Node-RED restarts it and its in/out
        // nodes, not the cluster node, which must now serve the new listener only.
        const nodes = flow(redisPort, 2);
        nodes.find((n) => n.id === 'l').name = 'changed';
        const closes = clients[2].map((c) => new Promise((resolve) => c.once('close', resolve)));
        await nrs[2].deploy(nodes, 'nodes');
        await within(Promise.all(closes), WAIT, 'the changed listener closing its sessions');
        clients[2] = [await client(nrs[2]), await client(nrs[2])];
        await linked(clients);
        const target = await whoami(clients[2][1]);
        for (let from = 0; from < 3; from++) {
            const end = marker();
            clients[from][0].send('bcast|nodes' + from);
            clients[from][0].send('bcast|' + end);
            for (const c of clients.flat()) {
                assert.deepStrictEqual(await upTo(c, end), ['nodes' + from]);
            }
        }
        // A reply from another instance reaches a session of the new listener.
        const end = marker();
        clients[0][0].send('to|' + target + '|to the new one');
        clients[0][0].send('bcast|' + end);
        assert.deepStrictEqual(await upTo(clients[2][1], end), ['to the new one']);
    });
});
