'use strict';
// `npm start`: Node-RED on http://127.0.0.1:1880 with this package, the core
// websocket nodes excluded and the echo flow deployed (user dir: .node-red-user).

const path = require('path');
const { spawn } = require('child_process');
const { root, prepareUserDir } = require('./userdir');

const userDir = process.env.NODE_RED_USER_DIR || path.join(root, '.node-red-user');
prepareUserDir(userDir, path.join(root, 'examples', '01 - Echo server and client.json'));

const red = require.resolve('node-red/red.js');
const child = spawn(process.execPath, [red, '--userDir', userDir, '--settings', path.join(__dirname, 'settings.js')], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => child.kill(sig));
}
child.on('exit', (code, signal) => process.exit(code === null ? (signal ? 1 : 0) : code));
