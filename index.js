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

/** Why the loader found nothing usable for `platform`, and what to do. */
function describeFailure(cause, platform, file) {
    if (!fs.existsSync(file)) {
        const shipped = shippedPlatforms();
        return 'there is no prebuilt addon for this platform (' + platform + ', Node.js ' + process.version + '); ' +
            'this package has ' + (shipped.length ? shipped.join(', ') : 'none') + '. To use it here, ' + BUILD_HINT + '.';
    }
    try {
        require(file);
    } catch (err) {
        return 'the addon built for ' + platform + ' does not load here (' + err.message + '); ' + BUILD_HINT + '.';
    }
    return 'the native addon could not be loaded (' + cause.message + ').';
}

function addonError(text, platform, cause) {
    const e = new Error(text);
    e.code = 'ERR_WSRS_ADDON_LOAD';
    e.platform = platform;
    if (cause) e.cause = cause;
    return e;
}

const platform = hostPlatform();
const file = path.join(NATIVE, 'websocket-rs.' + platform + '.node');
const mismatch = cpuMismatch(file);
if (mismatch) {
    throw addonError(mismatch + '; ' + BUILD_HINT + '.', platform);
}
let binding;
try {
    binding = require('./native/index.js');
} catch (err) {
    throw addonError(describeFailure(err, platform, file), platform, err);
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

module.exports = { Listener: binding.Listener, Client: binding.Client, withCode };
