'use strict';
// Which Node-RED the tests run against: the package directory named by
// WSRS_NODE_RED (tests/run-node-red-5.js sets it), else the node-red devDependency.
//
//   const nodeRed = require('./node-red-under-test');
//   helper.init(nodeRed.runtime)   the runtime module (node-red's "main")
//   nodeRed.redJs                  red.js, what the e2e tests start as a child process
//   nodeRed.dir, nodeRed.version   the package directory and its version
//   nodeRed.expected               {nodeRed, node}: the versions this run must be on
//                                  (WSRS_NODE_RED_VERSION / WSRS_NODE_VERSION, else
//                                  the pinned devDependency and this process's Node)
//
// With WSRS_NODE_RED set, `node-red` and `@node-red/*` required from files under
// tests/ (and by node-red-node-test-helper, if this module is loaded first) are
// resolved in that installation too, so that a test never mixes in parts of the
// devDependency (e.g. `require('@node-red/util').events` must be the runtime's).

const fs = require('fs');
const Module = require('module');
const path = require('path');

const testsDir = __dirname;
const mainPkg = require('../package.json');

const fromEnv = process.env.WSRS_NODE_RED;
const dir = fromEnv ? path.resolve(fromEnv) : path.dirname(require.resolve('node-red/package.json'));
const pkgFile = path.join(dir, 'package.json');
if (!fs.existsSync(pkgFile)) {
    throw new Error('WSRS_NODE_RED=' + fromEnv + ': no Node-RED package there (' + pkgFile + ' missing)');
}
const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
if (pkg.name !== 'node-red') {
    throw new Error(pkgFile + ' is ' + pkg.name + ', not node-red');
}

const expected = {
    nodeRed: process.env.WSRS_NODE_RED_VERSION || mainPkg.devDependencies['node-red'],
    node: process.env.WSRS_NODE_VERSION ? 'v' + process.env.WSRS_NODE_VERSION.replace(/^v/, '') : process.version
};
if (pkg.version !== expected.nodeRed) {
    throw new Error('Node-RED in ' + dir + ' is ' + pkg.version + ', this run expects ' + expected.nodeRed);
}
if (process.version !== expected.node) {
    throw new Error('running on Node ' + process.version + ', this run expects ' + expected.node);
}

if (fromEnv) {
    // Loaded after the test helper, the helper would already hold the devDependency's runtime.
    const early = Object.keys(require.cache).find((f) => f.includes(path.sep + 'node-red-node-test-helper' + path.sep));
    if (early) {
        throw new Error('tests/node-red-under-test.js must load before node-red-node-test-helper (' + early + '); run through tests/run-node-red-5.js');
    }
    const helperDir = path.dirname(require.resolve('node-red-node-test-helper/package.json')) + path.sep;
    // A file of `top`'s own, not of a package installed beneath it.
    const within = (file, top) => file.startsWith(top) && !file.includes(path.sep + 'node_modules' + path.sep, top.length - 1);
    const ours = (file) => typeof file === 'string' && (within(file, testsDir + path.sep) || within(file, helperDir));
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, parent, ...rest) {
        if ((request === 'node-red' || /^(node-red|@node-red)\//.test(request)) && parent && ours(parent.filename)) {
            const file = resolve.call(this, request, parent, false, { paths: [dir] });
            // Node searches every node_modules above `dir` too: never let a module
            // missing from the Node-RED under test come from the devDependency.
            if (!file.startsWith(path.dirname(dir) + path.sep)) {
                throw new Error(request + ' resolved outside the Node-RED under test (' + dir + '): ' + file);
            }
            return file;
        }
        return resolve.call(this, request, parent, ...rest);
    };
}

module.exports = {
    dir,
    version: pkg.version,
    runtime: path.join(dir, pkg.main),
    redJs: path.join(dir, 'red.js'),
    expected
};
