'use strict';
//! Example 06 as shipped (but for its Redis and client ports), deployed on two
//! real Node-RED processes sharing one real redis-server: what a client says on
//! one instance is heard by the clients of both, once each.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { until } = require('../support');
const { startNodeRed, freePort } = require('../nodered');
const { startRedis } = require('./redis');
const { WAIT, client, probeUntil } = require('./common');

const FILE = path.join(__dirname, '..', '..', 'examples', '06 - Broadcast across instances.json');
function example(redisPort, nrPort) {
    return JSON.parse(fs.readFileSync(FILE, 'utf8')
        .replace(/redis:\/\/127\.0\.0\.1:6379/g, 'redis://127.0.0.1:' + redisPort)
        .replace(/ws:\/\/127\.0\.0\.1:1880\//g, 'ws://127.0.0.1:' + nrPort + '/'));
}

describe('example 06 on two Node-RED instances and one redis-server', function () {
    this.timeout(60000);
    let redis = null;
    const nrs = [];
    const clients = [];

    before(async function () {
        redis = await startRedis(await freePort());
        for (let i = 0; i < 2; i++) {
            const nr = await startNodeRed({ withPackage: true, prefix: 'wsrs-example06-' + i + '-' });
            nrs.push(nr);
            await nr.deploy(example(redis.port, nr.port));
            clients.push(await client(nr, '/ws/shout'));
        }
    });

    after(async function () {
        for (const c of clients) c.terminate();
        for (const nr of nrs) {
            if (process.env.E2E_LOG) console.log(nr.output());
            await nr.stop();
        }
        if (redis) await redis.stop();
    });

    it('carries a shout made on either instance to the clients of both, once each', async function () {
        const [a, b] = clients;
        // Until the links are up: a probe from a's instance heard on b's (and a's own, locally).
        await probeUntil(a, b, 'the instances linked', (probe) => probe);
        a.got = [];
        b.got = [];
        a.send('from a');
        b.send('from b');
        await until(() => a.got.length >= 2 && b.got.length >= 2, 'both shouts at both clients', WAIT);
        // The marker, sent after both, arrives after them: anything doubled would be before it.
        a.send('end');
        await until(() => a.got.includes('end') && b.got.includes('end'), 'the marker', WAIT);
        for (const c of [a, b]) {
            assert.deepStrictEqual(c.got.filter((t) => t !== 'end').sort(), ['from a', 'from b'], c.got.join(','));
        }
    });
});
