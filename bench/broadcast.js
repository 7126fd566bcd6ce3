'use strict';
// CPU cost of one broadcast to N live sessions, split by thread: the JS thread
// (what Node-RED's flows feel) and the Rust workers. Uses the addon directly;
// the clients run in a child process. Loopback only; bounded by --count.
//
//   node bench/broadcast.js [--sessions 1000] [--count 200] [--size 64]

const fs = require('fs');
const http = require('http');
const { fork } = require('child_process');

const { parseOptions } = require('./options');

const argv = process.argv.slice(2);
let args;
if (argv[0] === 'clients') {
    runClients(argv[1], Number(argv[2]));
} else {
    args = parseOptions({ sessions: 1000, count: 200, size: 64 }, argv);
    main();
}

function runClients(url, n) {
    const WebSocket = require('ws');
    let open = 0;
    let got = 0;
    const sockets = [];
    for (let i = 0; i < n; i++) {
        const ws = new WebSocket(url);
        sockets.push(ws);
        ws.on('open', () => { if (++open === n) process.send('ready'); });
        ws.on('message', () => { got++; });
    }
    process.on('message', (m) => {
        if (m === 'count') process.send({ got });
        if (m === 'bye') {
            sockets.forEach((s) => s.terminate());
            process.exit(0);
        }
    });
}

/** CPU time (µs) of this process's threads whose name matches `pick`. */
function threadCpu(pick) {
    let total = 0;
    for (const tid of fs.readdirSync('/proc/self/task')) {
        const dir = '/proc/self/task/' + tid;
        if (!pick(tid, fs.readFileSync(dir + '/comm', 'utf8').trim())) continue;
        const stat = fs.readFileSync(dir + '/stat', 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        total += (Number(f[11]) + Number(f[12])) * 10000; // clock ticks of 10 ms
    }
    return total;
}

function main() {
    const { Listener } = require('..');
    const listener = new Listener({}, () => {});
    const server = http.createServer();
    server.on('upgrade', (req, socket, head) => {
        const h = req.headers;
        socket._handle.readStop();
        listener.adopt(socket._handle.fd, head, { method: req.method, upgrade: h.upgrade, key: h['sec-websocket-key'], version: h['sec-websocket-version'], protocol: h['sec-websocket-protocol'] || '' });
        socket.destroy();
    });
    server.listen(0, '127.0.0.1', () => {
        const child = fork(__filename, ['clients', 'ws://127.0.0.1:' + server.address().port + '/', String(args.sessions)]);
        child.on('message', async (m) => {
            if (m !== 'ready') return;
            const payload = 'x'.repeat(args.size);
            const js = () => threadCpu((tid) => Number(tid) === process.pid);
            const rust = () => threadCpu((tid, name) => name === 'websocket-rs');
            const js0 = js();
            const rust0 = rust();
            for (let i = 0; i < args.count; i++) {
                listener.sendMany(new Uint32Array([0]), [payload]);
                await new Promise((r) => setTimeout(r, 5));
            }
            await new Promise((r) => setTimeout(r, 1000));
            const jsPer = (js() - js0) / args.count;
            const rustPer = (rust() - rust0) / args.count;
            child.send('count');
            child.once('message', ({ got }) => {
                console.log('broadcast to ' + args.sessions + ' sessions, ' + args.size + ' B, ' + args.count + ' times: ' +
                    'JS thread ' + jsPer.toFixed(0) + ' µs CPU per broadcast (includes the pacing timers), ' +
                    'Rust workers ' + rustPer.toFixed(0) + ' µs (' + (rustPer / args.sessions).toFixed(2) + ' µs per frame); ' +
                    'frames delivered ' + got + ' of ' + args.count * args.sessions);
                child.send('bye');
                listener.close().then(() => process.exit(got === args.count * args.sessions ? 0 : 1));
            });
        });
    });
}
