'use strict';
//! rediss://: the cluster's link to a real redis-server speaking TLS only, with
//! the tls-config's CA, with verification turned off, and (the control) refused
//! without the CA.

const assert = require('assert');
const addon = require('../../index.js');
const { makeCerts } = require('../certs');
const { freePort } = require('../nodered');
const { until } = require('../support');
const { startRedis } = require('./redis');

describe('cluster: rediss:// to a real redis-server', function () {
    this.timeout(30000);
    let redis = null;
    let certs = null;
    const open = [];

    before(async function () {
        certs = makeCerts();
        redis = await startRedis(await freePort(), { tls: certs });
    });

    after(async function () {
        for (const c of open) c.close();
        if (redis) await redis.stop();
    });

    /** The events a cluster to our Redis with `options` reports (at least one). */
    async function link(options) {
        const states = [];
        const cluster = new addon.Cluster({ url: 'rediss://127.0.0.1:' + redis.port, prefix: 'tls:', ...options }, (kind, detail) => states.push([kind, detail]));
        open.push(cluster);
        await until(() => states.length > 0, 'a state', 10000);
        return states;
    }

    it('connects with the CA of its tls-config', async function () {
        assert.strictEqual((await link({ ca: certs.ca }))[0][0], 'connected');
    });

    it('connects with verification turned off, and no CA', async function () {
        assert.strictEqual((await link({ verify: false }))[0][0], 'connected');
    });

    it('is refused without the CA (verification on)', async function () {
        const [kind, why] = (await link({}))[0];
        assert.strictEqual(kind, 'disconnected');
        assert.match(why, /certificate|UnknownIssuer|tls/i);
    });
});
