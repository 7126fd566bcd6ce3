'use strict';
// `npm run test:node-red-5`: the whole JS suite (tests/run.js) on Node-RED 5 under
// Node 22, both pinned in tests/runtimes/package.json and installed from the npm
// registry into tests/runtimes/node_modules (git-ignored; npm's cache goes in there
// too) when missing or not the pinned versions. The tests find that Node-RED through
// WSRS_NODE_RED (tests/node-red-under-test.js); the versions are asserted by the
// suite as well (WSRS_NODE_RED_VERSION, WSRS_NODE_VERSION).

const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const runtimes = path.join(__dirname, 'runtimes');
const modules = path.join(runtimes, 'node_modules');
const nodeBin = path.join(modules, '.bin', 'node');
const nodeRedDir = path.join(modules, 'node-red');
const pins = JSON.parse(fs.readFileSync(path.join(runtimes, 'package.json'), 'utf8')).dependencies;

const INSTALL_MS = 10 * 60 * 1000;
const RUN_MS = 20 * 60 * 1000;
const rel = (p) => path.relative(root, p);

/** What is installed: {node: 'v22…' | null, nodeRed: '5…' | null}. */
function installed() {
    let node = null;
    let nodeRed = null;
    if (fs.existsSync(nodeBin)) {
        const r = spawnSync(nodeBin, ['--version'], { encoding: 'utf8', timeout: 30000 });
        if (r.status === 0) node = r.stdout.trim();
    }
    try {
        nodeRed = JSON.parse(fs.readFileSync(path.join(nodeRedDir, 'package.json'), 'utf8')).version;
    } catch (err) { /* not installed */ }
    return { node, nodeRed };
}

const matches = (have) => have.node === 'v' + pins.node && have.nodeRed === pins['node-red'];

function install() {
    // The npm running this script (npm run sets npm_execpath), else npm from PATH.
    const npmCli = process.env.npm_execpath;
    const [cmd, pre] = npmCli && /\.c?js$/.test(npmCli) ? [process.execPath, [npmCli]] : ['npm', []];
    const args = [...pre, 'ci', '--prefix', runtimes, '--cache', path.join(modules, '.npm-cache'), '--no-audit', '--no-fund'];
    console.log('Installing Node ' + pins.node + ' and Node-RED ' + pins['node-red'] + ' into ' + rel(modules) + ' (npm ci)');
    const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', timeout: INSTALL_MS });
    if (r.error || r.status !== 0) {
        throw new Error('npm ci --prefix ' + rel(runtimes) + ' failed: ' + (r.error ? r.error.message : 'exit ' + (r.status ?? r.signal)));
    }
}

function main() {
    let have = installed();
    if (!matches(have)) {
        install();
        have = installed();
        if (!matches(have)) {
            throw new Error('after npm ci, ' + rel(modules) + ' has Node ' + have.node + ' and Node-RED ' + have.nodeRed +
                ', not ' + pins.node + ' and ' + pins['node-red']);
        }
    }
    console.log('Node-RED ' + have.nodeRed + ' (' + rel(nodeRedDir) + ') on Node ' + have.node + ' (' + rel(nodeBin) + ')');

    const env = {
        ...process.env,
        WSRS_NODE_RED: nodeRedDir,
        WSRS_NODE_RED_VERSION: pins['node-red'],
        WSRS_NODE_VERSION: pins.node
    };
    // Preloaded so that node-red-node-test-helper, on require, already finds this Node-RED.
    const args = ['-r', path.join(__dirname, 'node-red-under-test.js'), path.join(__dirname, 'run.js')];
    // Its own process group, so that a stop also reaches the Node-RED processes it started.
    const child = spawn(nodeBin, args, { cwd: root, env, stdio: 'inherit', detached: true });
    const stop = (signal) => {
        try {
            process.kill(-child.pid, signal);
        } catch (err) { /* already gone */ }
    };
    let killTimer = null;
    const runTimer = setTimeout(() => {
        console.error('test run still going after ' + RUN_MS / 60000 + ' min: stopping its process group (pid ' + child.pid + ')');
        stop('SIGTERM');
        killTimer = setTimeout(() => stop('SIGKILL'), 10000);
    }, RUN_MS);
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => stop(sig));
    child.on('error', (err) => {
        clearTimeout(runTimer);
        console.error(err.message);
        process.exitCode = 1;
    });
    child.on('exit', (code, signal) => {
        clearTimeout(runTimer);
        clearTimeout(killTimer);
        process.exitCode = code === null ? 1 : code;
        if (signal) console.error('test run ended by ' + signal);
    });
}

try {
    main();
} catch (err) {
    console.error(err.message);
    process.exit(1);
}
