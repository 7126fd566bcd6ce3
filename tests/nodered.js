'use strict';
// A real Node-RED (node-red/red.js) as a child process on a free loopback port,
// for the end-to-end tests and the benchmark.
//
//   const nr = await startNodeRed({ withPackage: true, settings: {}, flows: [], https: { key, cert, ca } });
//   nr.port, nr.url ('http(s)://127.0.0.1:PORT'), nr.wsUrl ('ws(s)://...'), nr.ca, nr.child, nr.userDir
//   nr.output()                 everything Node-RED printed so far (stdout + stderr)
//   nr.exited()                 null while running, else {code, signal}; nr.exitPromise resolves with it
//   await nr.request(method, path, {headers, body, ms})   -> {status, text, json()}
//   await nr.deploy(flows, type = 'full')                 waits until Node-RED started what it deployed
//   await nr.stop({signal = 'SIGINT', ms = 10000})        signal, then SIGKILL if still running; removes the user dir
//
// `withPackage: true` loads this package from the user dir the way a user installs
// it (scripts/userdir.js) with the core websocket nodes excluded; `false` is a
// plain core Node-RED. Only the child started here is ever signalled.

const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { root, prepareUserDir } = require('../scripts/userdir');
const { delay } = require('./support');

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** Settings every instance gets; `settings` given to startNodeRed override them key by key. */
function baseSettings(port) {
    return {
        uiHost: '127.0.0.1',
        uiPort: port,
        flowFile: 'flows.json',
        credentialSecret: false,
        logging: { console: { level: 'info', metrics: false, audit: false } },
        // English logs whatever the machine's locale: startNodeRed and deploy read them.
        lang: 'en-US',
        telemetry: { enabled: false, updateNotification: false },
        editorTheme: { tours: false }
    };
}

/**
 * One HTTP(S) request to Node-RED's admin API, on its own connection (nothing is
 * kept alive to hold either process open), bounded by `ms`.
 */
function request(base, ca, method, urlPath, { headers = {}, body, ms = 5000 } = {}) {
    const url = new URL(urlPath, base);
    const mod = url.protocol === 'https:' ? https : http;
    const hdrs = { ...headers, Connection: 'close' };
    if (body !== undefined) hdrs['Content-Length'] = Buffer.byteLength(body);
    return new Promise((resolve, reject) => {
        let timer = null;
        const req = mod.request(url, { method, headers: hdrs, agent: false, ca }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', fail);
            res.on('aborted', () => fail(new Error('response aborted')));
            res.on('end', () => {
                clearTimeout(timer);
                const text = Buffer.concat(chunks).toString('utf8');
                resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) });
            });
        });
        function fail(err) {
            clearTimeout(timer);
            reject(err);
        }
        timer = setTimeout(() => {
            req.destroy(new Error('timed out after ' + ms + ' ms: ' + method + ' ' + urlPath));
        }, ms);
        req.on('error', fail);
        req.end(body);
    });
}

/**
 * Starts Node-RED and resolves once its admin API answers `GET /flows` and it has
 * started its flows (or said which node types they miss), when its log shows that.
 *
 * - withPackage: load @websocket-rs/node-red (core 22-websocket.js excluded), or plain core.
 * - settings: merged over the base settings (shallow; `nodesExcludes` is ours when withPackage).
 * - flows: written as the flow file before start (an array or a JSON string).
 * - https: {key, cert[, ca]}: serve HTTPS with key/cert; `ca` is what clients trust.
 * - settingsCode: JavaScript appended to settings.js, for settings that are code
 *   (e.g. `module.exports.webSocketNodeVerifyClient = (info, cb) => cb(true);`).
 * - stderr: 'pipe' (collected into output(), default) or 'inherit'.
 * - prefix: temp dir name prefix; startMs: how long to wait for the admin API and
 *   the flows to start.
 * - userDir: use this user dir (the caller installed the package there) and keep it on stop.
 * - env: the child's environment (default: this process's).
 * - nodeArgs: options for node itself, before red.js (e.g. ['--cpu-prof']).
 */
async function startNodeRed({ withPackage = true, settings = {}, settingsCode = '', flows = [], https: tls, stderr = 'pipe', prefix = 'wsrs-nodered-', startMs = 30000, userDir: givenUserDir, env, nodeArgs = [] } = {}) {
    // A given user dir (with the package installed by the caller) is kept on stop.
    const userDir = givenUserDir || fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const removeUserDir = () => givenUserDir || fs.rmSync(userDir, { recursive: true, force: true });
    let child = null;
    let out = '';
    let exited = null;
    let exitPromise = null;
    try {
        if (withPackage && !givenUserDir) prepareUserDir(userDir);
        const port = await freePort();
        const all = { ...baseSettings(port), ...settings };
        if (withPackage) {
            all.nodesExcludes = [...new Set([...(all.nodesExcludes || []), '22-websocket.js'])];
        }
        if (tls) all.https = { key: tls.key, cert: tls.cert };
        const flowText = typeof flows === 'string' ? flows : JSON.stringify(flows);
        fs.writeFileSync(path.join(userDir, all.flowFile), flowText);
        const settingsFile = path.join(userDir, 'settings.js');
        fs.writeFileSync(settingsFile, 'module.exports = ' + JSON.stringify(all, null, 2) + ';\n' + settingsCode + '\n');

        child = spawn(process.execPath, [...nodeArgs, require('./node-red-under-test').redJs, '--userDir', userDir, '--settings', settingsFile], {
            cwd: root,
            env: env || process.env,
            stdio: ['ignore', 'pipe', stderr === 'inherit' ? 'inherit' : 'pipe']
        });
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (s) => { out += s; });
        if (child.stderr) {
            child.stderr.setEncoding('utf8');
            child.stderr.on('data', (s) => { out += s; });
        }
        exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => {
            exited = { code, signal };
            resolve(exited);
        }));

        const scheme = tls ? 'https' : 'http';
        const url = scheme + '://127.0.0.1:' + port;
        const ca = tls && tls.ca;
        const api = (method, urlPath, opts) => request(url, ca, method, urlPath, opts);

        /** Until Node-RED's output from `from` on matches `pattern`; throws if it exits, or `timedOut()` when `until` passes. */
        const logged = async (pattern, from, until, whenExited, timedOut) => {
            while (!pattern.test(out.slice(from))) {
                if (exited) throw new Error('Node-RED exited ' + whenExited + ' (' + JSON.stringify(exited) + '):\n' + out);
                if (Date.now() > until) throw new Error(timedOut());
                await delay(20);
            }
        };

        const end = Date.now() + startMs;
        for (;;) {
            if (exited) {
                throw new Error('Node-RED exited early (' + JSON.stringify(exited) + '):\n' + out);
            }
            try {
                const res = await api('GET', '/flows', { ms: 2000 });
                // With adminAuth the API is up once it refuses a request without a token.
                if (res.status === 200 || (all.adminAuth && res.status === 401)) break;
            } catch (err) { /* not listening yet */ }
            if (Date.now() > end) {
                throw new Error('Node-RED admin API did not answer within ' + startMs + ' ms:\n' + out);
            }
            await delay(200);
        }
        // Node-RED listens before its flows have started (the runtime does not wait
        // for them): a client that connected now could find no listener on its path
        // yet, and be dropped by Node-RED's unhandled-upgrade timeout. Read off the
        // log, so only when it shows info: a caller logging less waits itself
        // (bench/lib/nodered.js polls its flow's HTTP endpoint).
        const level = (all.logging && all.logging.console && all.logging.console.level) || 'info';
        if (['info', 'debug', 'trace'].includes(level)) {
            await logged(/Started flows|Waiting for missing types/, 0, end, 'before its flows started', () => 'Node-RED did not start its flows within ' + startMs + ' ms:\n' + out);
        }

        const nr = {
            port,
            url,
            wsUrl: (tls ? 'wss' : 'ws') + '://127.0.0.1:' + port,
            ca,
            child,
            userDir,
            exitPromise,
            output: () => out,
            exited: () => exited,
            request: api,

            /** Deploys `flow` and waits until Node-RED has (re)started what it changed (needs log level info). */
            async deploy(flow, type = 'full', ms = 10000) {
                const mark = out.length;
                const body = typeof flow === 'string' ? flow : JSON.stringify(flow);
                const res = await api('POST', '/flows', {
                    headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': type },
                    body,
                    ms
                });
                if (res.status !== 200 && res.status !== 204) {
                    throw new Error('deploy answered ' + res.status + ': ' + res.text);
                }
                // The API answers once the old nodes are stopped; the new ones start after.
                await logged(/Started (flows|modified nodes|modified flows)/, mark, Date.now() + ms, 'during a deploy', () => 'timed out after ' + ms + ' ms waiting for Node-RED to start the deployed flow');
                return res;
            },

            /** Stops the child (signal, then SIGKILL after `ms`) and removes the user dir. */
            async stop({ signal = 'SIGINT', ms = 10000 } = {}) {
                await kill(child, () => exited, exitPromise, signal, ms);
                removeUserDir();
                return exited;
            }
        };
        return nr;
    } catch (err) {
        if (child) await kill(child, () => exited, exitPromise, 'SIGKILL', 5000);
        removeUserDir();
        throw err;
    }
}

/** Signals only `child` (the process started here), bounded; SIGKILL if it outlives `ms`. */
async function kill(child, exited, exitPromise, signal, ms) {
    if (exited()) return;
    const bounded = (t) => {
        let timer;
        return Promise.race([exitPromise, new Promise((r) => { timer = setTimeout(r, t); })]).finally(() => clearTimeout(timer));
    };
    try {
        child.kill(signal);
    } catch (err) { /* already gone */ }
    await bounded(ms);
    if (!exited()) {
        try {
            child.kill('SIGKILL');
        } catch (err) { /* already gone */ }
        await bounded(5000);
    }
}

module.exports = { startNodeRed, freePort, request };
