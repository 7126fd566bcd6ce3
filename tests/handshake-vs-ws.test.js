'use strict';
//! The same raw upgrade requests, each a valid one with one thing changed, sent over
//! loopback to a websocket-listener in Node-RED and to core's own `ws` server (the
//! `ws` that @node-red/nodes uses, set up as core sets it up, on a plain Node HTTP
//! server): both answer alike, except for the differences the README documents.
//! Node's HTTP parser sits in front of both, so this also covers what it decides
//! (the Connection header, method spelling, duplicate headers joined with ", ").
//! src/handshake/props.rs tests the Rust validation itself, with generated requests.

const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const net = require('net');
const path = require('path');
const helper = require('node-red-node-test-helper');
const wsNode = require('../nodes/websocket.js');
const { within } = require('./support');

helper.init(require('./node-red-under-test').runtime);

const coreWsDir = path.dirname(require.resolve('@node-red/nodes/package.json'));
const CoreWs = require(require.resolve('ws', { paths: [coreWsDir] }));
const coreWsVersion = require(require.resolve('ws/package.json', { paths: [coreWsDir] })).version;

const PATH = '/ws/hs';
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/**
 * Each case: what changes in a valid request, and the outcome expected from both
 * servers, or from each ({ours, core}) where they differ on purpose. An outcome is
 * the status, plus the subprotocol answered after a 101 ("101 chat").
 * In `set`, a header value null removes it; an array sends the header once per value.
 */
const CASES = [
    { name: 'a valid request', set: {}, both: '101' },
    { name: 'HTTP/1.0', http: '1.0', set: {}, both: '101' },
    // Connection: Node's parser emits 'upgrade' only with an "upgrade" token.
    { name: 'Connection token in a list', set: { Connection: 'keep-alive, Upgrade' }, both: '101' },
    { name: 'Connection in odd case', set: { Connection: 'uPgRaDe' }, both: '101' },
    { name: 'Connection twice', set: { Connection: ['keep-alive', 'Upgrade'] }, both: '101' },
    { name: 'Connection without upgrade', set: { Connection: 'keep-alive' }, both: '404' },
    { name: 'Connection missing', set: { Connection: null }, both: '404' },
    // Method: case-sensitive; Node refuses what is not an uppercase method.
    { name: 'POST', method: 'POST', set: { 'Content-Length': '0' }, both: '400' },
    { name: 'lowercase get', method: 'get', set: {}, both: '400' },
    // Upgrade
    { name: 'Upgrade in odd case', set: { Upgrade: 'WebSocket' }, both: '101' },
    { name: 'Upgrade with whitespace', set: { Upgrade: ' \twebsocket\t ' }, both: '101' },
    { name: 'Upgrade other protocol', set: { Upgrade: 'h2c' }, both: '400' },
    { name: 'Upgrade "websockets"', set: { Upgrade: 'websockets' }, both: '400' },
    { name: 'Upgrade missing', set: { Upgrade: null }, both: '404' },
    { name: 'Upgrade list with websocket', set: { Upgrade: 'h2c, websocket' }, ours: '101', core: '400' },
    { name: 'Upgrade twice', set: { Upgrade: ['websocket', 'websocket'] }, ours: '101', core: '400' },
    // Sec-WebSocket-Key: the base64 of 16 bytes.
    { name: 'key missing', set: { 'Sec-WebSocket-Key': null }, both: '400' },
    { name: 'key 23 chars', set: { 'Sec-WebSocket-Key': KEY.slice(1) }, both: '400' },
    { name: 'key of 17 bytes', set: { 'Sec-WebSocket-Key': crypto.randomBytes(17).toString('base64') }, both: '400' },
    { name: 'key with "=" inside', set: { 'Sec-WebSocket-Key': '=' + KEY.slice(1) }, both: '400' },
    { name: 'key with "-" (base64url)', set: { 'Sec-WebSocket-Key': '-' + KEY.slice(1) }, both: '400' },
    { name: 'key with inner space', set: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZ SBub25jZQ==' }, both: '400' },
    { name: 'key with trailing bits set', set: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZR==' }, both: '101' },
    { name: 'key with whitespace around', set: { 'Sec-WebSocket-Key': '  ' + KEY + '\t' }, both: '101' },
    { name: 'key twice', set: { 'Sec-WebSocket-Key': [KEY, KEY] }, both: '400' },
    // Sec-WebSocket-Version: RFC 6455 suggests 426 with the versions spoken.
    { name: 'version 8', set: { 'Sec-WebSocket-Version': '8' }, both: '101' },
    { name: 'version 12', set: { 'Sec-WebSocket-Version': '12' }, ours: '426', core: '400' },
    { name: 'version missing', set: { 'Sec-WebSocket-Version': null }, ours: '426', core: '400' },
    { name: 'version twice', set: { 'Sec-WebSocket-Version': ['13', '13'] }, ours: '426', core: '400' },
    { name: 'version 013', set: { 'Sec-WebSocket-Version': '013' }, ours: '426', core: '101' },
    { name: 'version 0xd', set: { 'Sec-WebSocket-Version': '0xd' }, ours: '426', core: '101' },
    // Sec-WebSocket-Protocol, none configured: the client's first choice, as core.
    { name: 'two subprotocols', set: { 'Sec-WebSocket-Protocol': 'chat, superchat' }, both: '101 chat' },
    { name: 'subprotocol header twice', set: { 'Sec-WebSocket-Protocol': ['chat', 'superchat'] }, both: '101 chat' },
    { name: 'subprotocol list with an empty element first', set: { 'Sec-WebSocket-Protocol': ', chat' }, ours: '101 chat', core: '101' },
    // Only the entry answered must be a token (it is echoed); the others are not looked at.
    { name: 'subprotocol list with a non-token after the first', set: { 'Sec-WebSocket-Protocol': 'chat, a b' }, both: '101 chat' },
    { name: 'subprotocol that is not a token first', set: { 'Sec-WebSocket-Protocol': '"chat", x' }, ours: '400', core: '101 "chat"' }
];

function requestText(c, port) {
    const headers = {
        Host: '127.0.0.1:' + port,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': KEY,
        'Sec-WebSocket-Version': '13',
        ...c.set
    };
    let text = (c.method || 'GET') + ' ' + PATH + ' HTTP/' + (c.http || '1.1') + '\r\n';
    for (const [name, value] of Object.entries(headers)) {
        for (const v of value === null ? [] : [].concat(value)) text += name + ': ' + v + '\r\n';
    }
    return text + '\r\n';
}

/** Sends `text`, resolves with the response head once it is complete. */
function exchange(port, text) {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    const head = new Promise((resolve, reject) => {
        socket.on('connect', () => socket.write(text));
        socket.on('data', (d) => {
            data = Buffer.concat([data, d]);
            const end = data.indexOf('\r\n\r\n');
            if (end >= 0) resolve(data.subarray(0, end).toString('latin1'));
        });
        socket.on('close', () => reject(new Error('closed without a response: ' + JSON.stringify(data.toString('latin1')))));
        socket.on('error', () => {});
    });
    return within(head, 5000, 'a response').finally(() => socket.destroy());
}

/** "101 <protocol>" or the status; a 101 with a wrong accept key fails. */
function outcome(head, key) {
    const lines = head.split('\r\n');
    const status = lines[0].split(' ')[1];
    const headers = {};
    for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    if (status !== '101') return status;
    const accept = crypto.createHash('sha1').update(key.trim() + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.strictEqual(headers['sec-websocket-accept'], accept, 'accept key in ' + JSON.stringify(head));
    return headers['sec-websocket-protocol'] ? '101 ' + headers['sec-websocket-protocol'] : '101';
}

describe('handshake: websocket-listener against core\'s ws ' + coreWsVersion, function () {
    let core;
    let corePort;

    before(async function () {
        await helper.startServer();
        await helper.load(wsNode, [
            { id: 'listener', type: 'websocket-listener', path: PATH, wholemsg: 'false' },
            { id: 'in', type: 'websocket in', server: 'listener', client: '', wires: [] }
        ]);
        // As 22-websocket.js sets it up; a plain request is answered 404 as Node-RED does.
        const wss = new CoreWs.Server({ noServer: true });
        wss.on('connection', (ws) => ws.terminate());
        core = http.createServer((req, res) => res.writeHead(404).end());
        core.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
        await new Promise((resolve) => core.listen(0, '127.0.0.1', resolve));
        corePort = core.address().port;
    });

    after(async function () {
        if (core) {
            core.closeAllConnections();
            await new Promise((resolve) => core.close(resolve));
        }
        await helper.unload();
        await helper.stopServer();
    });

    it('runs core\'s ws 7', function () {
        assert.strictEqual(coreWsVersion.split('.')[0], '7');
    });

    for (const c of CASES) {
        const want = c.both ? { ours: c.both, core: c.both } : { ours: c.ours, core: c.core };
        const title = c.both ? c.name + ': both ' + c.both : c.name + ': ours ' + c.ours + ', core ' + c.core;
        it(title, async function () {
            const ourPort = Number(new URL(helper.url()).port);
            const key = [].concat(c.set['Sec-WebSocket-Key'] || KEY)[0];
            const got = {
                ours: outcome(await exchange(ourPort, requestText(c, ourPort)), key),
                core: outcome(await exchange(corePort, requestText(c, corePort)), key)
            };
            assert.deepStrictEqual(got, want);
        });
    }
});
