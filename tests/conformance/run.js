'use strict';
// `npm run conformance`: the Autobahn TestSuite (wstest) against a real Node-RED,
// both sides, cases 1-10.
//
//   fuzzingclient (server side): wstest dials the echo flow's listener.
//   fuzzingserver (client side): a websocket-client node dials wstest's
//     /runCase?case=N, one case per deploy, and echoes what it gets.
//
// Usage: node tests/conformance/run.js [server|client] [--cases 6.4.*,3.2]
// Prints one summary line per side, and exits non-zero on any FAILED case, any
// case without a result, or (for the full set) fewer than MIN_OK cases OK.
// Reports (HTML and JSON) are left in tests/conformance/reports/.

const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const WebSocket = require('ws');
const { startNodeRed, freePort } = require('../nodered');
const { ECHO_FLOW, crashLines } = require('../flows');
const { delay, within } = require('../support');

const HERE = __dirname;
const PYTHON = path.join(HERE, '.wstest', 'env', 'bin', 'python');
const REPORTS = path.join(HERE, 'reports');
const AGENT = 'websocket-rs';
const MIN_OK = 296;
// 12.* and 13.* test permessage-deflate, which we do not offer (as core's
// listener, we negotiate no extension); every other case is in.
const ALL_CASES = ['1.*', '2.*', '3.*', '4.*', '5.*', '6.*', '7.*', '9.*', '10.*'];
// The slowest case (9.x, 16 MiB round trips) takes seconds; this bounds a hung one.
const CASE_MS = 120000;
const RUN_MS = 30 * 60000;

function parseArgs(argv) {
    const opts = { sides: ['server', 'client'], cases: null };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--cases') opts.cases = argv[++i].split(',').filter(Boolean);
        else if (argv[i] === 'server' || argv[i] === 'client') opts.sides = [argv[i]];
        else throw new Error('unknown argument: ' + argv[i]);
    }
    return opts;
}

function ensureWstest() {
    const r = spawnSync('bash', [path.join(HERE, 'setup.sh')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('wstest setup failed (tests/conformance/setup.sh)');
}

/** Starts wstest in `mode` with `spec`; its output goes to <outdir>.log. */
function startWstest(mode, spec, extra = []) {
    fs.mkdirSync(spec.outdir, { recursive: true });
    const specFile = spec.outdir + '.spec.json';
    fs.writeFileSync(specFile, JSON.stringify(spec, null, 2));
    const log = fs.openSync(spec.outdir + '.log', 'w');
    const child = spawn(PYTHON, [path.join(HERE, 'wstest_loopback.py'), '-m', mode, '-s', specFile, ...extra], {
        cwd: HERE,
        stdio: ['ignore', log, log]
    });
    fs.closeSync(log);
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let done = false;
    exited.then(() => { done = true; });
    const waitExit = (ms) => within(exited, ms, 'wstest to end').catch(() => {});
    return {
        exited,
        running: () => !done,
        /** Waits up to `ms` for it to end by itself, then signals it (only this child). */
        async stop(ms) {
            if (!done) await waitExit(ms);
            if (!done) child.kill('SIGTERM');
            if (!done) await waitExit(5000);
            if (!done) child.kill('SIGKILL');
            return exited;
        }
    };
}

/** Close behaviours that pass: wstest's OK, or INFORMATIONAL (no verdict). */
const CLOSE_PASSES = new Set(['OK', 'INFORMATIONAL']);

/**
 * Counts the behaviours in a wstest report index, and lists the cases not OK:
 * those whose behaviour is not OK, and those whose close behaviour does not pass
 * (WRONG CODE, UNCLEAN...), counted in `badClose` even when the behaviour is OK.
 */
function summarize(outdir, expected) {
    const index = JSON.parse(fs.readFileSync(path.join(outdir, 'index.json'), 'utf8'))[AGENT] || {};
    const counts = { OK: 0, 'NON-STRICT': 0, FAILED: 0, INFORMATIONAL: 0, UNIMPLEMENTED: 0 };
    const notOk = [];
    let badClose = 0;
    for (const [id, r] of Object.entries(index)) {
        counts[r.behavior] = (counts[r.behavior] || 0) + 1;
        const closeFails = !CLOSE_PASSES.has(r.behaviorClose);
        if (closeFails) badClose++;
        if (r.behavior !== 'OK' || closeFails) {
            notOk.push(id + ' ' + r.behavior + (r.behaviorClose !== 'OK' ? ' (close ' + r.behaviorClose + ')' : ''));
        }
    }
    const missing = expected === undefined ? 0 : Math.max(0, expected - Object.keys(index).length);
    return { counts, badClose, notOk: notOk.sort(byCaseId), total: Object.keys(index).length, missing };
}

/** Whether a side's summary fails the run (`full`: the whole case set was run). */
function sideFails(s, full) {
    return s.counts.FAILED > 0 || s.badClose > 0 || s.missing > 0 || (full && s.counts.OK < MIN_OK) ||
        s.notOk.some((n) => n.startsWith('no result'));
}

function byCaseId(a, b) {
    const pa = a.split(' ')[0].split('.').map(Number);
    const pb = b.split(' ')[0].split('.').map(Number);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
        if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
    }
    return 0;
}

/** One control request to the fuzzing server: resolves with the first message, if any. */
function control(port, query, ms) {
    return within(new Promise((resolve, reject) => {
        const ws = new WebSocket('ws://127.0.0.1:' + port + query);
        let first;
        ws.on('message', (data) => { if (first === undefined) first = JSON.parse(data.toString()); });
        ws.on('close', () => resolve(first));
        ws.on('error', reject);
    }), ms, 'wstest ' + query);
}

function assertNodeRedHealthy(nr) {
    if (nr.exited()) throw new Error('Node-RED exited during the run: ' + JSON.stringify(nr.exited()) + '\n' + nr.output());
    const crashes = crashLines(nr.output());
    if (crashes.length) throw new Error('Node-RED reported a crash:\n' + crashes.join('\n'));
}

/** fuzzingclient: wstest dials the echo flow's listener. */
async function serverSide(cases) {
    const outdir = path.join(REPORTS, 'server');
    fs.rmSync(outdir, { recursive: true, force: true });
    const nr = await startNodeRed({ flows: ECHO_FLOW, prefix: 'wsrs-autobahn-' });
    try {
        const spec = {
            outdir,
            servers: [{ agent: AGENT, url: nr.wsUrl + '/ws/echo' }],
            cases,
            'exclude-cases': [],
            'exclude-agent-cases': {}
        };
        const wstest = startWstest('fuzzingclient', spec);
        const ended = await wstest.stop(RUN_MS);
        if (ended.code !== 0) throw new Error('wstest fuzzingclient ended with ' + JSON.stringify(ended) + '; see ' + outdir + '.log');
        assertNodeRedHealthy(nr);
    } finally {
        fs.writeFileSync(outdir + '.node-red.log', nr.output());
        await nr.stop();
    }
    return summarize(outdir);
}

/** A websocket-client that echoes: `websocket in` → `websocket out` on the client. */
function clientEchoFlow(url) {
    return [
        { id: 'ab0tab', type: 'tab', label: 'Autobahn', disabled: false, info: '', env: [] },
        { id: 'ab0in', type: 'websocket in', z: 'ab0tab', name: '', server: '', client: 'ab0client', x: 200, y: 100, wires: [['ab0out']] },
        { id: 'ab0out', type: 'websocket out', z: 'ab0tab', name: '', server: '', client: 'ab0client', x: 400, y: 100, wires: [] },
        { id: 'ab0client', type: 'websocket-client', path: url, tls: '', wholemsg: 'false', hb: '0', subprotocol: '', headers: [] }
    ];
}

/** fuzzingserver: one deploy per case of a client that dials /runCase?case=N. */
async function clientSide(cases) {
    const outdir = path.join(REPORTS, 'client');
    fs.rmSync(outdir, { recursive: true, force: true });
    const port = await freePort();
    const spec = { url: 'ws://127.0.0.1:' + port, outdir, cases, 'exclude-cases': [], 'exclude-agent-cases': {} };
    const wstest = startWstest('fuzzingserver', spec, ['-u', '0']);
    let nr = null;
    let count = 0;
    const unfinished = [];
    try {
        const until = Date.now() + 30000;
        for (;;) {
            try {
                count = await control(port, '/getCaseCount', 5000);
                break;
            } catch (err) {
                if (!wstest.running() || Date.now() > until) throw new Error('wstest fuzzingserver did not start: ' + err.message + '; see ' + outdir + '.log');
                await delay(200);
            }
        }
        // A case ends with the server closing: the next deploy replaces the client
        // long before it would redial the same case.
        nr = await startNodeRed({
            flows: [],
            prefix: 'wsrs-autobahn-',
            settings: { websocketClientReconnectDelay: 60000, websocketClientReconnectMaxDelay: 60000 }
        });
        const deadline = Date.now() + RUN_MS;
        for (let n = 1; n <= count && Date.now() < deadline; n++) {
            const status = control(port, '/getCaseStatus?case=' + n + '&agent=' + AGENT, CASE_MS);
            status.catch(() => {});
            await nr.deploy(clientEchoFlow('ws://127.0.0.1:' + port + '/runCase?case=' + n + '&agent=' + AGENT));
            try {
                await status;
            } catch (err) {
                unfinished.push(n);
            }
        }
        await nr.deploy([]);
        assertNodeRedHealthy(nr);
        // wstest stops right after writing the reports, often before its close
        // handshake is through: the reports are what counts, not how this ends.
        await control(port, '/updateReports?agent=' + AGENT + '&shutdownOnComplete=true', 60000).catch(() => {});
        await wstest.stop(30000);
    } finally {
        if (nr) {
            fs.writeFileSync(outdir + '.node-red.log', nr.output());
            await nr.stop();
        }
        await wstest.stop(0);
    }
    const summary = summarize(outdir, count);
    if (unfinished.length) summary.notOk.push('no result in time for case number(s) ' + unfinished.join(', '));
    return summary;
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    ensureWstest();
    const cases = opts.cases || ALL_CASES;
    const lines = [];
    let failed = false;
    for (const side of opts.sides) {
        const t0 = Date.now();
        const s = side === 'server' ? await serverSide(cases) : await clientSide(cases);
        const secs = Math.round((Date.now() - t0) / 1000);
        const c = s.counts;
        const line = 'Autobahn ' + (side === 'server' ? 'fuzzingclient (server side)' : 'fuzzingserver (client side)') + ': ' +
            c.OK + ' OK, ' + c['NON-STRICT'] + ' NON-STRICT, ' + c.FAILED + ' FAILED, ' + c.INFORMATIONAL + ' INFORMATIONAL, ' +
            c.UNIMPLEMENTED + ' UNIMPLEMENTED, ' + s.badClose + ' bad close (' + s.total + ' cases, ' + secs + ' s)';
        console.log(line);
        for (const n of s.notOk) console.log('    ' + n);
        lines.push(line);
        if (sideFails(s, !opts.cases)) failed = true;
    }
    console.log('\n' + lines.join('\n'));
    if (failed) {
        console.log('conformance: FAILED (any FAILED case, a close behaviour other than OK or INFORMATIONAL, a case without a result, or fewer than ' + MIN_OK + ' OK on a side)');
    }
    process.exit(failed ? 1 : 0);
}

if (require.main === module) {
    main().catch((err) => {
        console.error(err && err.stack ? err.stack : err);
        process.exit(1);
    });
}

module.exports = { summarize, sideFails, AGENT };
