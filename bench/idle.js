'use strict';
// Idle memory: N connections that each sent one message, held open; reports the
// Node-RED process's RSS growth per connection, core vs ours, alternating rounds.
//
//   node bench/idle.js [--conns 2000] [--rounds 3]

const fs = require('fs');
const WebSocket = require('ws');
const { startNodeRed } = require('../tests/nodered');
const { parseOptions } = require('./options');

const args = parseOptions({ conns: 2000, rounds: 3 }, process.argv.slice(2));

const FLOW = [
    { id: 'idle-tab', type: 'tab', label: 'idle' },
    { id: 'idle-l', type: 'websocket-listener', path: '/bench/idle', wholemsg: 'false' },
    { id: 'idle-in', type: 'websocket in', z: 'idle-tab', server: 'idle-l', client: '', wires: [['idle-out']] },
    { id: 'idle-out', type: 'websocket out', z: 'idle-tab', server: 'idle-l', client: '', wires: [] }
];

const rss = (pid) => Number(fs.readFileSync('/proc/' + pid + '/status', 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Opens a connection and waits for the echo of one message. */
function echoOnce(url, sockets) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        sockets.push(ws);
        const timer = setTimeout(() => reject(new Error('no echo within 10 s')), 10000);
        ws.on('open', () => ws.send('hello'));
        ws.once('message', () => { clearTimeout(timer); resolve(); });
        ws.on('error', reject);
    });
}

async function measure(withPackage) {
    const nr = await startNodeRed({ withPackage, flows: FLOW, settings: { logging: { console: { level: 'warn' } } }, prefix: 'wsrs-idle-' });
    const sockets = [];
    try {
        const url = nr.wsUrl + '/bench/idle';
        await echoOnce(url, sockets); // warm the path before the baseline
        await delay(500);
        const before = rss(nr.child.pid);
        for (let i = 0; i < args.conns; i += 100) {
            await Promise.all(Array.from({ length: Math.min(100, args.conns - i) }, () => echoOnce(url, sockets)));
        }
        await delay(1500);
        return (rss(nr.child.pid) - before) / args.conns;
    } finally {
        for (const ws of sockets) ws.terminate();
        await nr.stop();
    }
}

async function main() {
    const per = { core: [], ours: [] };
    for (let round = 0; round < args.rounds; round++) {
        for (const variant of round % 2 ? ['ours', 'core'] : ['core', 'ours']) {
            const bytes = await measure(variant === 'ours');
            per[variant].push(bytes);
            console.error(variant + ' round ' + (round + 1) + ': ' + (bytes / 1024).toFixed(1) + ' KiB/connection');
        }
    }
    const c = median(per.core);
    const o = median(per.ours);
    console.log('idle, ' + args.conns + ' connections (one echo each), ' + args.rounds + ' rounds (medians)');
    console.log('| metric | core | ours | ours / core |');
    console.log('| --- | --- | --- | --- |');
    console.log('| RSS growth per connection (KiB) | ' + (c / 1024).toFixed(1) + ' | ' + (o / 1024).toFixed(1) + ' | ' + (o / c).toFixed(2) + ' |');
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
