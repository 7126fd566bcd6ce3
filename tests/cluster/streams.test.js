'use strict';
//! The Streams (recovery) mode of the cluster (issue 15), with real Node-RED
//! processes and a real redis-server that writes every command to its
//! append-only file: a restart in the middle of a paced stream of broadcasts
//! loses nothing and doubles nothing; a new instance replays no history; a
//! stream lost in a restart without persistence is warned of, not waited on;
//! a redeploy doubles nothing. Clients drive each flow as in cluster.test.js.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { delay, until, within } = require('../support');
const { startNodeRed, freePort } = require('../nodered');
const { startRedis, cli } = require('./redis');
const { startProxy } = require('./proxy');
const { ENV, WAIT, flow, client, upTo, marker, probeUntil, linked, count, upToN, numbered } = require('./common');

const STREAMS = { mode: 'streams', retention: '10000' };

describe('cluster, Streams mode: Node-RED instances through one persistent redis-server', function () {
    this.timeout(90000);
    let redis = null;
    let redisPort = 0;
    let dir = '';
    // Instance 1 reaches Redis through it, so that its link alone can be cut.
    let proxy = null;
    const nrs = [];
    const clients = [];
    const portOf = (i) => (i === 1 ? proxy.port : redisPort);

    const start = async (i) => {
        nrs[i] = await startNodeRed({ withPackage: true, flows: flow(portOf(i), 1, STREAMS), prefix: 'wsrs-streams-' + i + '-', env: ENV });
        clients[i] = [await client(nrs[i]), await client(nrs[i])];
    };

    before(async function () {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-redis-'));
        redisPort = await freePort();
        redis = await startRedis(redisPort, { aof: path.join(dir, 'aof') });
        proxy = await startProxy(redisPort);
        for (let i = 0; i < 2; i++) await start(i);
        await linked(clients);
    });

    after(async function () {
        for (const c of clients.flat()) c.terminate();
        for (const nr of nrs) {
            if (process.env.E2E_LOG) console.log(nr.output());
            await nr.stop({ signal: 'SIGKILL', ms: 5000 });
        }
        if (proxy) proxy.stop();
        if (redis) await redis.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    /** From the first client of each instance in turn: a broadcast, then a
     * marker; every client gets exactly the broadcast before the marker. */
    async function eachOnce(word) {
        for (let from = 0; from < clients.length; from++) {
            const end = marker();
            clients[from][0].send('bcast|' + word + from);
            clients[from][0].send('bcast|' + end);
            for (const [i, pair] of clients.entries()) {
                for (const [j, c] of pair.entries()) {
                    assert.deepStrictEqual(await upTo(c, end), [word + from], 'instance ' + i + ' client ' + j);
                }
            }
        }
    }

    it('delivers a broadcast made on any instance to every session on every instance, exactly once', async function () {
        await eachOnce('hello');
    });

    it('loses nothing and doubles nothing across a Redis restart: every client gets every number once, in order', async function () {
        const [a, b] = [clients[0][0], clients[1][0]];
        const warned = () => count(nrs[0], /Cluster disconnected from/) + count(nrs[1], /Cluster disconnected from/);
        const before = warned();
        const sender = numbered(a);
        await until(() => b.got.length >= 50, 'the stream across', WAIT);
        await redis.stop();
        const cutAt = sender.n;
        // Local delivery carries on meanwhile, and both instances notice.
        await until(() => a.got.length >= cutAt + 100, 'local delivery while Redis is down', WAIT);
        await until(() => warned() >= before + 2, 'the warnings', WAIT);
        const down = sender.n;
        await delay(1000);
        assert.ok(sender.n > down, 'sent during the outage too');
        redis = await startRedis(redisPort, { aof: path.join(dir, 'aof') });
        const restartedAt = sender.n;
        await until(() => b.got.some((t) => Number(t) > restartedAt), 'the stream across again', 20000);
        await sender.stop();
        const end = marker();
        a.send('bcast|' + end);
        for (const [i, pair] of clients.entries()) {
            for (const [j, c] of pair.entries()) {
                const got = (await upTo(c, end)).map(Number);
                assert.deepStrictEqual(got, upToN(sender.n), 'instance ' + i + ' client ' + j + ': ' + (sender.n - got.length) + ' missing or extra');
            }
        }
        assert.match(nrs[1].output(), /Cluster connected again/);
        assert.doesNotMatch(nrs[0].output() + nrs[1].output(), /stream of \S+ is gone|no longer in the stream|publishes dropped/);
    });

    it('replays to an instance what it missed while its own link was cut, in order, none twice', async function () {
        // Redis and instance 0 carry on: the entries wait in the stream for instance 1.
        const [a, b] = [clients[0][0], clients[1][0]];
        const warnings = () => count(nrs[1], /Cluster disconnected from/);
        const before = warnings();
        const sender = numbered(a);
        await until(() => b.got.length >= 50, 'the stream across', WAIT);
        await proxy.cut();
        await until(() => warnings() > before, 'the warning', WAIT);
        const cutAt = sender.n;
        await until(() => sender.n >= cutAt + 100, 'numbers sent while instance 1 is cut off', WAIT);
        await proxy.resume();
        const resumedAt = sender.n;
        await until(() => b.got.some((t) => Number(t) > resumedAt), 'the stream across again', 20000);
        await sender.stop();
        const end = marker();
        a.send('bcast|' + end);
        for (const [i, pair] of clients.entries()) {
            for (const [j, c] of pair.entries()) {
                const got = (await upTo(c, end)).map(Number);
                assert.deepStrictEqual(got, upToN(sender.n), 'instance ' + i + ' client ' + j + ': ' + (sender.n - got.length) + ' missing or extra');
            }
        }
    });

    it('replays no history to an instance that joins later, even with clients waiting for its link', async function () {
        // The link is down while the new instance starts and its clients connect:
        // when it comes up, the stream holds thousands of entries they never saw.
        await redis.stop();
        await start(2);
        redis = await startRedis(redisPort, { aof: path.join(dir, 'aof') });
        const fresh = clients[2];
        await probeUntil(clients[0][0], fresh[0], 'the new instance linked');
        await linked(clients);
        // Positive control: the new instance's clients do get what comes now.
        for (const c of fresh) c.got = [];
        await eachOnce('now');
        for (const c of fresh) {
            assert.ok(c.all.every((t) => !/^\d+$/.test(t)), 'old numbers replayed: ' + c.all.filter((t) => /^\d+$/.test(t)).length);
        }
    });

    it('warns of a stream lost in a restart without persistence and reads on from its new start', async function () {
        // An entry far in the future (as if Redis's clock had gone back after
        // the restart): without the check, every instance would wait for ids
        // beyond it, and nothing would come across again.
        await cli(redisPort, ['XADD', 'wsrs-test:/ws/c', '9999999999999-0', 'q', '0', 'm', 'not a message']);
        await eachOnce('before');
        const lost = () => nrs.map((nr) => count(nr, /stream of \/ws\/c is gone/));
        assert.deepStrictEqual(lost(), [0, 0, 0]);
        await redis.stop();
        redis = await startRedis(redisPort, { dir: path.join(dir) });
        await until(() => lost().every((k) => k === 1), 'a warning on each instance', 20000);
        await linked(clients);
        await eachOnce('after');
        assert.deepStrictEqual(lost(), [1, 1, 1], 'one warning each');
    });

    it('works again after a redeploy, with no delivery doubled', async function () {
        const closes = clients[1].map((c) => new Promise((resolve) => c.once('close', resolve)));
        await nrs[1].deploy(flow(portOf(1), 2, STREAMS));
        await within(Promise.all(closes), WAIT, 'the redeployed listener closing its sessions');
        clients[1] = [await client(nrs[1]), await client(nrs[1])];
        await linked(clients);
        await eachOnce('again');
    });
});
