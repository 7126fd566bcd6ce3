'use strict';
// A client that stops reading while the flow broadcasts 10 MB/s (100 × 100 KiB a
// second) to it and to one client that reads: Node-RED's RSS over time, core vs
// ours in the same run. Core buffers without bound; ours closes the slow client at
// its queue cap (256 MiB by default) and gives the memory back.
//
//   node bench/slow-reader.js [--seconds 40]

const fs = require('fs');
const net = require('net');
const WebSocket = require('ws');
const { startNodeRed } = require('../tests/nodered');
const { upgradeRequest } = require('../tests/faults/frames');
const { parseOptions } = require('./options');

const args = parseOptions({ seconds: 40 }, process.argv.slice(2));

const FLOW = [
    { id: 'slow-tab', type: 'tab', label: 'feed' },
    { id: 'slow-l', type: 'websocket-listener', path: '/bench/feed', wholemsg: 'false' },
    { id: 'slow-tick', type: 'inject', z: 'slow-tab', props: [{ p: 'payload' }], repeat: '0.01', once: true, onceDelay: 0.1, payload: '', payloadType: 'date', wires: [['slow-fn']] },
    { id: 'slow-fn', type: 'function', z: 'slow-tab', func: 'msg.payload = Buffer.alloc(102400, msg.payload % 256);\nreturn msg;', outputs: 1, wires: [['slow-out']] },
    { id: 'slow-out', type: 'websocket out', z: 'slow-tab', server: 'slow-l', client: '', wires: [] }
];

const rssMiB = (pid) => Number(fs.readFileSync('/proc/' + pid + '/status', 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(withPackage) {
    const nr = await startNodeRed({ withPackage, flows: FLOW, settings: { logging: { console: { level: 'info' } } }, prefix: 'wsrs-slow-' });
    const fast = new WebSocket(nr.wsUrl + '/bench/feed');
    const slow = net.connect(nr.port, '127.0.0.1');
    try {
        let received = 0;
        fast.on('message', (d) => { received += d.length; });
        await new Promise((resolve, reject) => { fast.once('open', resolve); fast.once('error', reject); });
        slow.on('error', () => {});
        slow.write(upgradeRequest('127.0.0.1:' + nr.port, '/bench/feed'));
        await delay(200);
        slow.pause(); // never reads again
        const start = rssMiB(nr.child.pid);
        const series = [];
        let peak = start;
        for (let s = 1; s <= args.seconds; s++) {
            await delay(1000);
            const now = rssMiB(nr.child.pid);
            peak = Math.max(peak, now);
            if (s % 10 === 0) series.push(Math.round(now - start));
        }
        return { growth: series, peak: Math.round(peak - start), end: Math.round(rssMiB(nr.child.pid) - start), fastMiB: Math.round(received / 1048576) };
    } finally {
        fast.terminate();
        slow.destroy();
        await nr.stop();
    }
}

async function main() {
    const core = await measure(false);
    const ours = await measure(true);
    console.log('RSS growth (MiB) while a client stops reading a 10 MB/s broadcast, every 10 s for ' + args.seconds + ' s:');
    console.log('  core: ' + core.growth.join(', ') + ' (peak +' + core.peak + ', end +' + core.end + '; the reading client got ' + core.fastMiB + ' MiB)');
    console.log('  ours: ' + ours.growth.join(', ') + ' (peak +' + ours.peak + ', end +' + ours.end + '; the reading client got ' + ours.fastMiB + ' MiB)');
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
