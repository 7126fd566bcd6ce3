'use strict';
//! A flow's sends reach a session of another instance in the order the flow made
//! them, whatever their kind: a broadcast then a reply, a reply then a broadcast,
//! a room publish then a multicast (two real Node-RED processes, one redis-server).

const assert = require('assert');
const { delay, until } = require('../support');
const { startNodeRed, freePort } = require('../nodered');
const { startRedis } = require('./redis');
const { WAIT, client, whoami } = require('./common');

/** "whoami" answers the id; "join|room"; "seq|id" sends four msgs of four kinds to id, in order. */
const FUNC = `
const [cmd, a] = String(msg.payload).split('|');
if (cmd === 'whoami') return { payload: 'id|' + msg._session.id, _session: msg._session };
if (cmd === 'join') return { websocket: { join: [a] }, _session: msg._session };
if (cmd === 'seq') {
    const to = { type: 'websocket', id: a };
    node.send({ payload: '1 broadcast' });
    node.send({ payload: '2 reply', _session: to });
    node.send({ payload: '3 room', websocket: { room: ['r'] } });
    node.send({ payload: '4 multicast', _session: [to, to] });
    node.send({ payload: '5 broadcast' });
}
return null;`;

function flow(redisPort) {
    return [
        { id: 'tab', type: 'tab', label: 'order' },
        { id: 'cl', type: 'websocket-cluster', url: 'redis://127.0.0.1:' + redisPort, prefix: 'wsrs-order:' },
        { id: 'l', type: 'websocket-listener', path: '/ws/o', wholemsg: 'false', cluster: 'cl' },
        { id: 'in', type: 'websocket in', z: 'tab', server: 'l', wires: [['fn']] },
        { id: 'fn', type: 'function', z: 'tab', func: FUNC, outputs: 1, wires: [['out']] },
        { id: 'out', type: 'websocket out', z: 'tab', server: 'l' }
    ];
}

describe('cluster: the order of a flow\'s sends to a session of another instance', function () {
    this.timeout(60000);
    let redis = null;
    const nrs = [];
    const clients = [];

    before(async function () {
        redis = await startRedis(await freePort());
        for (let i = 0; i < 2; i++) {
            const nr = await startNodeRed({ withPackage: true, flows: flow(redis.port), prefix: 'wsrs-order-' + i + '-' });
            nrs.push(nr);
            clients.push(await client(nr, '/ws/o'));
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

    it('is kept: broadcast, reply, room publish, multicast, broadcast arrive as sent', async function () {
        const [a, b] = clients;
        b.send('join|r');
        const id = await whoami(b);
        // Until the link is up: a's instance reaches b with a reply.
        let sentAt = 0;
        await until(() => {
            if (Date.now() - sentAt >= 200) {
                a.send('seq|' + id);
                sentAt = Date.now();
            }
            return b.got.includes('5 broadcast');
        }, 'the instances linked', 20000);
        await delay(500);
        b.got = [];
        a.send('seq|' + id);
        await until(() => b.got.includes('5 broadcast'), 'the last of the five', WAIT);
        assert.deepStrictEqual(b.got, ['1 broadcast', '2 reply', '3 room', '4 multicast', '5 broadcast']);
    });
});
