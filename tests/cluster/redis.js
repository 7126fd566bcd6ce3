'use strict';
// A real redis-server (Debian's, installed by .ci/setup) for the cluster tests:
// on a loopback port the tests choose, no persistence, stopped by its PID.
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
 * Starts redis-server on `port`; resolves once it answers PING (bounded). With
 * `tls` ({cert, key, ca} PEM): TLS only on that port, client certificates not asked.
 */
async function startRedis(port, { tls } = {}) {
    const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    let tlsArgs = [];
    let dir = null;
    if (tls) {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrs-redis-tls-'));
        for (const k of ['cert', 'key', 'ca']) fs.writeFileSync(path.join(dir, k + '.pem'), tls[k]);
        args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no',
            '--tls-cert-file', path.join(dir, 'cert.pem'), '--tls-key-file', path.join(dir, 'key.pem'),
            '--tls-ca-cert-file', path.join(dir, 'ca.pem'));
        tlsArgs = ['--tls', '--cacert', path.join(dir, 'ca.pem')];
    } else {
        args.push('--port', String(port));
    }
    const child = spawn('redis-server', args, {
        stdio: ['ignore', 'pipe', 'pipe']
    });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    let exited = null;
    const exit = new Promise((resolve) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
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

module.exports = { startRedis, ping };
