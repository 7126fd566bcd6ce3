'use strict';
// Prepares a Node-RED user directory that loads this package the way a user's
// does: node_modules/@websocket-rs/node-red is a link to the package (what
// `npm install <path>` makes), plus our settings and, if absent, a flow.

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');

function prepareUserDir(userDir, flowFile) {
    const scope = path.join(userDir, 'node_modules', '@websocket-rs');
    fs.mkdirSync(scope, { recursive: true });
    const link = path.join(scope, 'node-red');
    try {
        fs.lstatSync(link);
    } catch (err) {
        fs.symlinkSync(root, link, 'dir');
    }
    const pkg = path.join(userDir, 'package.json');
    if (!fs.existsSync(pkg)) {
        fs.writeFileSync(pkg, JSON.stringify({
            name: 'node-red-project', private: true,
            dependencies: { '@websocket-rs/node-red': 'file:' + root }
        }, null, 2) + '\n');
    }
    const flows = path.join(userDir, 'flows.json');
    if (flowFile && !fs.existsSync(flows)) {
        fs.copyFileSync(flowFile, flows);
    }
}

module.exports = { root, prepareUserDir };
