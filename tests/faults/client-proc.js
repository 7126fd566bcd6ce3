'use strict';
// A separate process of WebSocket clients, so a test can kill it with SIGKILL
// mid-stream: the kernel then resets or abandons its connections without any
// closing handshake, as when a device loses power.
//
//   node client-proc.js <ws url> <clients> <messages per second per client>
// Prints "ready" once every client is open, then sends numbered messages until killed;
// it stops by itself after 120 s in any case.

const WebSocket = require('ws');

const [url, count, rate] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let open = 0;
const sockets = [];
for (let i = 0; i < count; i++) {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.on('open', () => {
        if (++open === count) process.stdout.write('ready\n');
    });
    sockets.push(ws);
}
let n = 0;
setInterval(() => {
    for (const ws of sockets) {
        if (ws.readyState === WebSocket.OPEN) ws.send('message ' + n + ' ' + 'x'.repeat(200));
    }
    n++;
}, 1000 / rate);
setTimeout(() => process.exit(0), 120000).unref();
