'use strict';
// A real redis-server (Debian's, installed by .ci/setup) for the cluster tests:
// on a loopback port the tests choose, stopped by its PID; no persistence, or
// an append-only file in `dir` written at every command (so that a restart in
// the same dir finds every entry the last one acknowledged).
// Readiness is asked with redis-cli: the tests speak no Redis protocol either.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFile } = require('child_process');
const { delay } = require('../support');

function ping(port, tlsArgs = []) {
    return new Promise((resolve) => {
        execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...tlsArgs, 'ping'], { timeout: 2000 }, (err, out) => {
            resolve(!err && String(out).trim() === 'PONG');
        });
    });
}

/**
 * Starts redis-server on `port`; resolves once it answers PING (bounded).
 * `{ aof: dir }`: persistent (an append-only file in `dir`); `{ dir }`: its
 * working dir, from which nothing is loaded; `{ tls }` ({cert, key, ca} PEM):
 * TLS only on that port, client certificates not asked.
 */
async function startRedis(port, { aof, dir, tls } = {}) {
    if (aof) fs.mkdirSync(aof, { recursive: true });
    const persistence = aof
        ? ['--dir', aof, '--appendonly', 'yes', '--appendfsync', 'always']
        : (dir ? ['--dir', dir] : []).concat(['--appendonly', 'no']);
    const args = ['--bind', '127.0.0.1', '--save', ''].concat(persistence);
    let tlsArgs = [];
    let certDir = null;
    if (tls) {
        certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-redis-tls-'));
        for (const k of ['cert', 'key', 'ca']) fs.writeFileSync(path.join(certDir, k + '.pem'), tls[k]);
        args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no',
            '--tls-cert-file', path.join(certDir, 'cert.pem'), '--tls-key-file', path.join(certDir, 'key.pem'),
            '--tls-ca-cert-file', path.join(certDir, 'ca.pem'));
        tlsArgs = ['--tls', '--cacert', path.join(certDir, 'ca.pem')];
    } else {
        args.push('--port', String(port));
    }
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    let exited = null;
    const exit = new Promise((resolve) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
        resolve(exited);
    }));
    const end = Date.now() + 10000;
    while (!(await ping(port, tlsArgs))) {
        if (exited) throw new Error('redis-server exited: ' + JSON.stringify(exited) + '\n' + out);
        if (Date.now() > end) {
            child.kill('SIGKILL');
            throw new Error('redis-server did not answer within 10 s\n' + out);
        }
        await delay(50);
    }
    return {
        port,
        pid: child.pid,
        output: () => out,
        /** SIGTERM (SIGKILL after 5 s); resolves once it has exited. */
        async stop() {
            if (exited) return exited;
            child.kill('SIGTERM');
            const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 5000);
            await exit;
            clearTimeout(timer);
            return exited;
        }
    };
}

/** Runs `redis-cli` with `args` against `port`; resolves with its output (bounded). */
function cli(port, args) {
    return new Promise((resolve, reject) => {
        execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port)].concat(args), { timeout: 5000 }, (err, out) => {
            if (err) reject(err);
            else resolve(String(out).trim());
        });
    });
}

module.exports = { startRedis, ping, cli };
