'use strict';
// Loads the native addon built by `npm run build` (napi-rs puts it and its loader
// in native/). Errors from the addon carry `CODE: message`; `withCode` turns that
// into `err.code`, so callers can tell failures apart.

let binding;
try {
    binding = require('./native/index.js');
} catch (err) {
    const e = new Error(
        'websocket-rs: the native addon could not be loaded (' + err.message + '). ' +
        'Build it with "npm run build" in ' + __dirname + ' (needs a Rust toolchain).'
    );
    e.code = 'ERR_WSRS_ADDON_LOAD';
    e.cause = err;
    throw e;
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
