'use strict';
//! Faults and hostile peers against a real Node-RED with this package: each test
//! does damage on loopback, checks that the flow keeps serving well-behaved clients
//! meanwhile, and that Node-RED's descriptors, threads and resident memory come back
//! to the baseline taken before (margins in resources.js). Bounded and self-stopping.

const assert = require('assert');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const { startNodeRed } = require('../nodered');
const { WebSocket, delay, until, within, clientPool } = require('../support');
const { sample, backToBaseline, show } = require('./resources');
const { upgradeRequest, frame, closeCodeIn } = require('./frames');

const TAB_A = 'fa17000000000001';
const TAB_B = 'fa17000000000002';
const TAB_FEED = 'fa17000000000003';

/** An echo listener (`websocket in` → `websocket out`) on `wsPath`, on tab `z`. */
function echo(z, id, wsPath, extra = {}) {
    return [
        { id: id + 'l', type: 'websocket-listener', path: wsPath, wholemsg: 'false', ...extra },
        { id: id + 'i', type: 'websocket in', z, name: '', server: id + 'l', client: '', x: 100, y: 100, wires: [[id + 'o']] },
        { id: id + 'o', type: 'websocket out', z, name: '', server: id + 'l', client: '', x: 300, y: 100, wires: [] }
    ];
}

/** The per-client queue cap of /ws/feed: small, so a slow reader reaches it in seconds. */
const FEED_CAP_MIB = 32;

/** `feed`: false, or the queue policy of /ws/feed ('close' or 'drop'). */
function flows({ generation = 0, feed = false } = {}) {
    const tab = (id, label) => ({ id, type: 'tab', label, disabled: false, info: '', env: [] });
    const all = [
        // The redeploy test changes the /ws/echo listener (and so its in and out nodes)
        // every generation; nothing on tab B changes.
        tab(TAB_A, 'faults'),
        ...echo(TAB_A, 'fa17a00000000e', '/ws/echo', { generation }),
        ...echo(TAB_A, 'fa17a00000000h', '/ws/hb', { hb: '1' }),
        tab(TAB_B, 'steady'),
        ...echo(TAB_B, 'fa17b00000000s', '/ws/steady')
    ];
    if (feed) {
        // 100 broadcasts of 100 KiB a second: 10 MB/s to every client of /ws/feed,
        // each numbered in its first 4 bytes.
        all.push(tab(TAB_FEED, 'feed'),
            { id: 'fa17c0000000fl', type: 'websocket-listener', path: '/ws/feed', wholemsg: 'false', limQueue: String(FEED_CAP_MIB), limPolicy: feed },
            { id: 'fa17c0000000ti', type: 'inject', z: TAB_FEED, name: '', props: [{ p: 'payload' }], repeat: '0.01', crontab: '', once: true, onceDelay: 0.1, topic: '', payload: '', payloadType: 'date', x: 100, y: 100, wires: [['fa17c0000000fn']] },
            { id: 'fa17c0000000fn', type: 'function', z: TAB_FEED, name: '', func: 'const n = context.get(\'n\') || 0;\ncontext.set(\'n\', n + 1);\nmsg.payload = Buffer.alloc(102400, n % 256);\nmsg.payload.writeUInt32BE(n, 0);\nreturn msg;', outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 250, y: 100, wires: [['fa17c0000000fo']] },
            { id: 'fa17c0000000fo', type: 'websocket out', z: TAB_FEED, name: '', server: 'fa17c0000000fl', client: '', x: 400, y: 100, wires: [] });
    }
    return all;
}

describe('faults: a real Node-RED with this package, under damage', function () {
    this.timeout(180000);
    let nr = null;
    let base = null;
    const pool = clientPool(() => nr.wsUrl);
    const host = () => '127.0.0.1:' + nr.port;
    const pid = () => nr.child.pid;

    /** A well-behaved client's echo works (the positive control beside every fault). */
    async function echoWorks(urlPath = '/ws/echo') {
        const ws = await pool.connect(urlPath);
        const text = 'still serving ' + Math.random();
        const got = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
        ws.send(text);
        assert.strictEqual(await within(got, 5000, 'an echo'), text);
        ws.close();
    }

    /** A raw TCP connection to Node-RED that has completed the WebSocket handshake. */
    async function rawOpen(urlPath) {
        const socket = net.connect(nr.port, '127.0.0.1');
        // Chunks joined on demand: a slow reader catching up reads tens of MiB.
        const chunks = [];
        let length = 0;
        let joined = null;
        socket.on('data', (d) => {
            chunks.push(d);
            length += d.length;
            joined = null;
        });
        socket.on('error', () => {});
        const data = () => joined || (joined = Buffer.concat(chunks));
        const raw = { socket, data, length: () => length, closed: new Promise((resolve) => socket.once('close', resolve)) };
        await within(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'TCP connect');
        socket.write(upgradeRequest(host(), urlPath));
        await until(() => data().indexOf('\r\n\r\n') > 0, '101 on ' + urlPath, 5000);
        assert.match(data().toString('latin1', 0, 20), /^HTTP\/1\.1 101/);
        return raw;
    }

    before(async function () {
        nr = await startNodeRed({ withPackage: true, flows: flows(), prefix: 'wsrs-faults-' });
        // Warm up what runs once (runtime threads, lazy allocations, JIT), then settle.
        for (let i = 0; i < 20; i++) await echoWorks();
        await pool.closeAll();
        await delay(1000);
        base = sample(pid());
        console.log('      baseline: ' + show(base));
    });

    afterEach(async function () {
        await pool.closeAll();
    });

    after(async function () {
        if (nr) await nr.stop({ signal: 'SIGKILL', ms: 5000 });
    });

    async function settled(what) {
        const now = await backToBaseline(pid(), base, 20000);
        console.log('      after ' + what + ': ' + show(now));
    }

    it('clients killed with kill -9 mid-stream (100 connections)', async function () {
        const child = spawn(process.execPath, [path.join(__dirname, 'client-proc.js'), nr.wsUrl + '/ws/echo', '100', '50'], { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
            await within(new Promise((resolve) => child.stdout.on('data', (d) => d.toString().includes('ready') && resolve())), 15000, 'the clients to connect');
            await delay(1000); // mid-stream: 5000 messages a second in both directions
            assert.ok(sample(pid()).fds >= base.fds + 100, 'the 100 connections are open');
        } finally {
            child.kill('SIGKILL');
        }
        await echoWorks();
        await settled('kill -9');
    });

    it('half-open peers are found by the heartbeat and closed, while a live peer stays', async function () {
        const live = await pool.connect('/ws/hb'); // `ws` answers pings
        let liveClosed = false;
        live.on('close', () => { liveClosed = true; });
        const dead = [];
        for (let i = 0; i < 20; i++) dead.push(await rawOpen('/ws/hb')); // they read, but never answer a ping
        await within(Promise.all(dead.map((d) => d.closed)), 15000, 'the server to drop the silent peers');
        assert.strictEqual(liveClosed, false, 'the peer that answers pings was dropped too');
        await echoWorks('/ws/hb');
        live.close();
        await settled('half-open peers');
    });

    it('slowloris: upgrade requests trickled a byte a second never reach the listener and are cut off by the header timeout of the HTTP server', async function () {
        // The request head belongs to Node's HTTP server until it is complete (its
        // headersTimeout, 60 s, checked every 30 s); only a complete upgrade reaches us.
        const request = upgradeRequest(host(), '/ws/echo');
        const socks = [];
        for (let i = 0; i < 50; i++) {
            const socket = net.connect(nr.port, '127.0.0.1');
            socket.on('error', () => {});
            const entry = { socket, data: '', closed: false };
            socket.on('data', (d) => { entry.data += d.toString('latin1'); });
            socket.on('close', () => { entry.closed = true; });
            socks.push(entry);
        }
        let sent = 0;
        const trickle = setInterval(() => {
            // Never the whole head: the last byte is never sent.
            if (sent < request.length - 1) for (const e of socks) if (!e.closed) e.socket.write(request[sent]);
            sent++;
        }, 1000);
        try {
            const end = Date.now() + 100000;
            while (socks.some((e) => !e.closed)) {
                assert.ok(Date.now() < end, socks.filter((e) => !e.closed).length + ' trickling connections still open after 100 s');
                await echoWorks(); // the flow serves others all along
                await delay(2000);
            }
        } finally {
            clearInterval(trickle);
            for (const e of socks) e.socket.destroy();
        }
        assert.deepStrictEqual(socks.filter((e) => /^HTTP\/1\.1 101/.test(e.data)).length, 0, 'a trickled request was upgraded');
        await settled('50 slowloris connections');
    });

    it('malformed, oversized and invalid-UTF-8 frames get their close code; other sessions are unaffected', async function () {
        const steady = await pool.connect('/ws/echo');
        let steadyClosed = false;
        steady.on('close', () => { steadyClosed = true; });
        const cases = [
            ['unmasked frame', frame(1, Buffer.from('hi'), { masked: false }), 1002],
            ['reserved opcode', frame(3, Buffer.from('hi')), 1002],
            ['RSV1 without an extension', frame(1, Buffer.from('hi'), { rsv: 4 }), 1002],
            ['fragmented control frame', frame(9, Buffer.from('hi'), { fin: false }), 1002],
            ['continuation with nothing to continue', frame(0, Buffer.from('hi')), 1002],
            ['invalid UTF-8 text', frame(1, Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80])), 1007],
            ['frame announcing 200 MiB', frame(2, Buffer.alloc(0), { length: 200 << 20 }), 1009]
        ];
        for (let round = 0; round < 5; round++) {
            const raws = await Promise.all(cases.map(() => rawOpen('/ws/echo')));
            raws.forEach((r, i) => r.socket.write(cases[i][1]));
            await Promise.all(raws.map((r, i) => within(r.closed, 10000, cases[i][0] + ' to be closed')));
            raws.forEach((r, i) => assert.strictEqual(closeCodeIn(r.data()), cases[i][2], cases[i][0]));
            // The session that behaves keeps its echo all along.
            const got = new Promise((resolve) => steady.once('message', (d) => resolve(d.toString())));
            steady.send('round ' + round);
            assert.strictEqual(await within(got, 5000, 'the steady echo'), 'round ' + round);
        }
        assert.strictEqual(steadyClosed, false);
        steady.close();
        await settled('35 protocol errors');
    });

    it('10 000 connect/disconnect cycles', async function () {
        const workers = 20;
        const each = 500;
        let done = 0;
        await Promise.all(Array.from({ length: workers }, async (_, w) => {
            for (let i = 0; i < each; i++) {
                const ws = new WebSocket(nr.wsUrl + '/ws/echo');
                ws.on('error', () => {});
                await within(new Promise((resolve, reject) => {
                    ws.once('open', resolve);
                    ws.once('error', reject);
                }), 5000, 'connection ' + (w * each + i));
                if (i % 100 === 0) {
                    const got = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
                    ws.send('cycle ' + i);
                    assert.strictEqual(await within(got, 5000, 'an echo'), 'cycle ' + i);
                }
                const gone = new Promise((resolve) => ws.once('close', resolve));
                // Alternate clean closes and abrupt ones.
                if (i % 2) ws.close(1000);
                else ws.terminate();
                await within(gone, 5000, 'the close');
                done++;
            }
        }));
        assert.strictEqual(done, workers * each);
        await echoWorks();
        await settled('10 000 cycles');
    });

    it('a redeploy every second while 200 clients stream: in order and complete per connection, other tabs untouched', async function () {
        const steady = [];
        for (let i = 0; i < 20; i++) steady.push(await pool.connect('/ws/steady'));
        let steadyCloses = 0;
        for (const ws of steady) ws.on('close', () => steadyCloses++);

        let stopping = false;
        const problems = [];
        let lives = 0;
        let echoed = 0;
        let completed = 0;
        let open = 0;
        /**
         * One client: streams numbered messages; each life must get back a gapless,
         * ordered prefix of what it sent (a redeploy ends it with messages in flight),
         * and a life still open at the end, which stops sending and waits, all of it.
         */
        async function streamer(k) {
            while (!stopping) {
                let ws;
                try {
                    ws = await pool.connect('/ws/echo', 5000);
                } catch (err) {
                    await delay(50); // the listener is being redeployed
                    continue;
                }
                lives++;
                open++;
                ws.once('close', () => open--);
                let sent = 0;
                let next = 0;
                const tag = 'c' + k + 'l' + lives + ':';
                ws.on('message', (d) => {
                    const text = d.toString();
                    if (text !== tag + next) problems.push('expected ' + tag + next + ', got ' + text);
                    next++;
                    echoed++;
                });
                const ended = await new Promise((resolve) => {
                    const timer = setInterval(() => {
                        if (stopping || ws.readyState !== WebSocket.OPEN) {
                            clearInterval(timer);
                            return resolve(ws.readyState !== WebSocket.OPEN);
                        }
                        ws.send(tag + sent++);
                    }, 50);
                    ws.once('close', () => { clearInterval(timer); resolve(true); });
                });
                if (!ended) {
                    const closed = new Promise((resolve) => ws.once('close', resolve));
                    try {
                        await until(() => next === sent || ws.readyState !== WebSocket.OPEN, tag + ' its last echo', 10000);
                    } catch (err) {
                        problems.push(err.message);
                    }
                    if (ws.readyState === WebSocket.OPEN) {
                        if (next === sent) completed++;
                        else problems.push(tag + ' got ' + next + ' of ' + sent + ' echoes before its close');
                        ws.close();
                    }
                    await within(closed, 5000, 'the close').catch(() => ws.terminate());
                }
                if (next > sent) problems.push(tag + ' got ' + next + ' echoes for ' + sent + ' messages');
            }
        }
        const streams = Array.from({ length: 200 }, (_, k) => streamer(k));
        for (let g = 1; g <= 10; g++) {
            await delay(1000);
            await nr.deploy(flows({ generation: g }), 'flows');
        }
        // Every client back on the last generation, streaming for a second, then the end.
        await until(() => open === 200, 'all 200 clients to reconnect', 30000);
        await delay(1000);
        stopping = true;
        await within(Promise.all(streams), 20000, 'the streamers to stop');
        assert.deepStrictEqual(problems.slice(0, 5), []);
        console.log('      ' + completed + ' connections open at the end got every echo');
        assert.strictEqual(completed, 200, 'connections open and complete at the end');
        assert.ok(lives >= 200 * 5, 'clients reconnected after the redeploys (' + lives + ' connection lives)');
        assert.ok(echoed > 10000, 'echoes flowed (' + echoed + ')');
        assert.strictEqual(steadyCloses, 0, 'a session on the untouched tab was closed');
        for (const ws of steady) {
            const got = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
            ws.send('steady');
            assert.strictEqual(await within(got, 5000, 'the steady echo'), 'steady');
        }
        await pool.closeAll();
        await settled('10 redeploys under load');
    });

    /**
     * A client of /ws/feed that reads: {bytes(), closed(), gaps()}, `gaps` listing
     * every place its numbered messages were not consecutive.
     */
    async function feedReader() {
        const ws = await pool.connect('/ws/feed');
        const r = { bytes: 0, closed: false, last: -1, gaps: [] };
        ws.on('message', (d) => {
            r.bytes += d.length;
            const n = d.readUInt32BE(0);
            if (r.last >= 0 && n !== r.last + 1) r.gaps.push(r.last + ' then ' + n);
            r.last = n;
        });
        ws.on('close', () => { r.closed = true; });
        return r;
    }

    /** Peak RSS of Node-RED (KiB) while `run` runs, sampled every 100 ms. */
    async function peakRss(run) {
        let peak = 0;
        const sampler = setInterval(() => { peak = Math.max(peak, sample(pid()).rssKiB); }, 100);
        try {
            await run();
        } finally {
            clearInterval(sampler);
        }
        return peak;
    }

    function reportPeak(peak, fast) {
        const over = peak * 1024 - base.rssKiB * 1024;
        console.log('      peak RSS ' + Math.round(peak / 1024) + ' MiB, ' + Math.round(over / 1048576) + ' MiB over the baseline, cap ' + FEED_CAP_MIB + ' MiB; fast client got ' + Math.round(fast.bytes / 1048576) + ' MiB');
        assert.ok(over < (FEED_CAP_MIB << 20) + (128 << 20), 'RSS grew by ' + Math.round(over / 1048576) + ' MiB');
    }

    it('a client that stops reading while the flow broadcasts 10 MB/s: memory bounded by the queue cap (' + FEED_CAP_MIB + ' MiB), that client alone closed', async function () {
        await nr.deploy(flows({ feed: 'close' }), 'flows');
        try {
            const fast = await feedReader();
            const slow = await rawOpen('/ws/feed');
            slow.socket.pause(); // stops reading: the kernel buffers fill, then our queue
            // A socket that does not read does not see the server's FIN either: watch the
            // server's descriptors for the slow session going away, then read to confirm.
            const withSlow = sample(pid()).fds;
            const peak = await peakRss(() => until(() => sample(pid()).fds < withSlow, 'the slow reader to be dropped at the cap', 90000));
            slow.socket.resume();
            await within(slow.closed, 30000, 'the slow reader to see its connection end');
            // The close frame (1008) usually cannot reach it: it waits behind the data
            // that filled the peer's buffers, and the session gives it 1 s. When it
            // does arrive it must say 1008; the warning is logged either way.
            const code = closeCodeIn(slow.data());
            assert.ok(code === null || code === 1008, 'close code ' + code);
            console.log('      close frame at the slow client: ' + (code === null ? 'none (its buffers were full)' : code));
            await until(() => /peer too slow: send queue full/.test(nr.output()), 'the warning about the slow reader', 10000);
            reportPeak(peak, fast);
            assert.strictEqual(fast.closed, false, 'the client that reads was closed too');
            const before = fast.bytes;
            await until(() => fast.bytes > before + (10 << 20), 'the fast client to keep receiving', 10000);
            assert.deepStrictEqual(fast.gaps, [], 'the fast client missed messages');
        } finally {
            await nr.deploy(flows(), 'flows');
        }
        await pool.closeAll();
        await settled('the slow reader');
    });

    it('the same with the queue policy "drop": the slow client stays connected, its drops are counted and warned, memory stays bounded, the fast client gets everything', async function () {
        await nr.deploy(flows({ feed: 'drop' }), 'flows');
        try {
            const fast = await feedReader();
            const slow = await rawOpen('/ws/feed');
            slow.socket.pause();
            const withSlow = sample(pid()).fds;
            const warned = () => /messages dropped so far/.test(nr.output());
            const peak = await peakRss(async () => {
                await until(warned, 'a warning about dropped messages', 90000);
                await delay(10000); // dropping at 10 MB/s meanwhile
            });
            reportPeak(peak, fast);
            const counts = [...nr.output().matchAll(/full \(32 MiB\): (\d+) messages dropped so far/g)].map((m) => Number(m[1]));
            console.log('      drops warned: ' + counts.join(', '));
            assert.ok(counts.length >= 1 && counts[counts.length - 1] >= 1, nr.output().slice(-2000));
            assert.ok(sample(pid()).fds >= withSlow, 'the slow client was disconnected');
            // Still connected: reading again, it gets data frames and no close.
            const had = slow.length();
            slow.socket.resume();
            await until(() => slow.length() > had + ((FEED_CAP_MIB + 8) << 20), 'the slow client to read its queue and more', 30000);
            assert.strictEqual(closeCodeIn(slow.data()), null, 'the slow client got a close frame');
            assert.strictEqual(fast.closed, false, 'the client that reads was closed');
            assert.deepStrictEqual(fast.gaps, [], 'the fast client missed messages');
            assert.ok(fast.bytes > 64 << 20, 'the fast client got ' + fast.bytes + ' bytes');
        } finally {
            await nr.deploy(flows(), 'flows');
        }
        await pool.closeAll();
        await settled('the slow reader under "drop"');
    });
});
