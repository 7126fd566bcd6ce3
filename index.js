'use strict';
// Loads the native addon through napi-rs's generated loader (native/index.js),
// which picks native/websocket-rs.<platform>.node for this machine. When that
// fails, the error says which platform was looked for, what the package ships,
// and how to fix it. Errors from the addon carry `CODE: message`; `withCode`
// turns that into `err.code`, so callers can tell failures apart.

const fs = require('fs');
const path = require('path');
const { hostPlatform, cpuMismatch } = require('./nodes/lib/platform');

const NATIVE = path.join(__dirname, 'native');

/** The platforms with a binary in native/ (as napi-rs names them). */
function shippedPlatforms() {
    try {
        return fs.readdirSync(NATIVE)
            .map((f) => /^websocket-rs\.(.+)\.node$/.exec(f))
            .filter(Boolean)
            .map((m) => m[1])
            .sort();
    } catch (err) {
        return [];
    }
}

const BUILD_HINT = 'build it for this machine with "npm run build" in ' + __dirname +
    ' (needs Rust from https://rustup.rs), then restart Node-RED';

function fileFor(platform) {
    return path.join(NATIVE, 'websocket-rs.' + platform + '.node');
}

function addonError(text, platform, cause) {
    const e = new Error(text);
    e.code = 'ERR_WSRS_ADDON_LOAD';
    e.platform = platform;
    if (cause) e.cause = cause;
    return e;
}

/** After the loader failed: this platform's binary if it loads, else an error saying why and what to do. */
function fallback(cause) {
    if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH) {
        throw addonError('the addon named by NAPI_RS_NATIVE_LIBRARY_PATH could not be loaded (' + cause.message + ').', null, cause);
    }
    const platform = hostPlatform();
    const file = fileFor(platform);
    if (!fs.existsSync(file)) {
        const shipped = shippedPlatforms();
        throw addonError('there is no prebuilt addon for this platform (' + platform + ', Node.js ' + process.version + '); ' +
            'this package has ' + (shipped.length ? shipped.join(', ') : 'none') + '. To use it here, ' + BUILD_HINT + '.', platform, cause);
    }
    try {
        // The loader's libc check can disagree with ours; a binary that loads is the answer.
        return require(file);
    } catch (err) {
        throw addonError('the addon built for ' + platform + ' does not load here (' + err.message + '); ' + BUILD_HINT + '.', platform, err);
    }
}

if (process.arch === 'arm') {
    const platform = hostPlatform();
    const mismatch = cpuMismatch(fileFor(platform));
    if (mismatch) throw addonError(mismatch + '; ' + BUILD_HINT + '.', platform);
}
let binding;
try {
    binding = require('./native/index.js');
} catch (err) {
    binding = fallback(err);
}

const CODED = /^(ERR_WSRS_[A-Z_]+): /;

function withCode(err) {
    if (err && typeof err.message === 'string') {
        const m = CODED.exec(err.message);
        if (m) {
            err.code = m[1];
            err.message = err.message.slice(m[0].length);
        }
    }
    return err;
}

module.exports = { Listener: binding.Listener, Client: binding.Client, Cluster: binding.Cluster, instanceId: binding.instanceId, withCode };
