'use strict';
// A real redis-server (Debian's, installed by .ci/setup) for the cluster tests:
// on a loopback port the tests choose, no persistence, stopped by its PID.
// Readiness is asked with redis-cli: the tests speak no Redis protocol either.

const { spawn, execFile } = require('child_process');
const { delay } = require('../support');

function ping(port) {
    return new Promise((resolve) => {
        execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], { timeout: 2000 }, (err, out) => {
            resolve(!err && String(out).trim() === 'PONG');
        });
    });
}

/** Starts redis-server on `port`; resolves once it answers PING (bounded). */
async function startRedis(port) {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: ['ignore', 'pipe', 'pipe']
    });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    let exited = null;
    const exit = new Promise((resolve) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        resolve(exited);
    }));
    const end = Date.now() + 10000;
    while (!(await ping(port))) {
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
