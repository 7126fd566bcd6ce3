'use strict';
// What a websocket-client trusts when no tls-config CA replaces it: what Node.js
// trusts by default, since core's client is Node's own TLS. A server that core
// reaches, ours reaches; one that core refuses, ours refuses.

const fs = require('fs');
const tls = require('tls');

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Node's `--use-openssl-ca` (flag, NODE_OPTIONS, or a Node built to default to
 * it, as Linux distributions build theirs): OpenSSL's certificate files replace
 * the bundled Mozilla list. Node refuses both flags at once.
 */
function usesOpensslStore(proc) {
    const flags = proc.execArgv.concat(String(proc.env.NODE_OPTIONS || '').split(/\s+/));
    if (flags.includes('--use-openssl-ca')) return true;
    if (flags.includes('--use-bundled-ca')) return false;
    const defaults = proc.config && proc.config.target_defaults;
    return Array.isArray(defaults && defaults.defines) && defaults.defines.includes('NODE_OPENSSL_CERT_STORE');
}

/** NODE_EXTRA_CA_CERTS as Node reads it: a PEM file; one it cannot read is skipped with a warning. */
function extraCerts(env, warn) {
    const file = env.NODE_EXTRA_CA_CERTS;
    if (!file) return [];
    let text;
    try {
        text = fs.readFileSync(file, 'latin1');
    } catch (err) {
        warn('NODE_EXTRA_CA_CERTS: ignoring ' + file + ' (' + err.message + ')');
        return [];
    }
    const certs = text.match(PEM_CERT) || [];
    if (certs.length === 0) warn('NODE_EXTRA_CA_CERTS: ' + file + ' holds no PEM certificate');
    return certs;
}

/**
 * `{ca, opensslStore}` for the addon: `ca` lists Node's default CAs as PEM. Node
 * 22.15 and later lists them itself (bundled list unless the OpenSSL store replaces
 * it, the system store with --use-system-ca or NODE_USE_SYSTEM_CA=1, and
 * NODE_EXTRA_CA_CERTS as read at start-up); before that, they are the bundled list
 * and NODE_EXTRA_CA_CERTS. OpenSSL's files, which Node does not list, the addon
 * reads itself.
 */
function defaultTrust(warn, proc = process, tlsApi = tls) {
    const opensslStore = usesOpensslStore(proc);
    let certs = null;
    if (typeof tlsApi.getCACertificates === 'function') {
        try {
            certs = tlsApi.getCACertificates('default');
        } catch (err) {
            warn('the CA certificates Node.js trusts could not be listed (' + err.message + ')');
        }
    }
    if (!Array.isArray(certs)) {
        certs = (opensslStore ? [] : tlsApi.rootCertificates).concat(extraCerts(proc.env, warn));
    }
    return { ca: certs.join('\n'), opensslStore };
}

let processTrust = null;

/**
 * This process's default trust, worked out for the first client and kept, as Node
 * reads NODE_EXTRA_CA_CERTS and its flags once at start-up (a changed file needs a
 * restart, for core too). `warn` reports a NODE_EXTRA_CA_CERTS file it cannot use.
 */
function nodeTrust(warn) {
    if (!processTrust) {
        const { ca, opensslStore } = defaultTrust(warn);
        // As bytes: crossing into the addon then skips a UTF-8 check of ~200 KB per client.
        processTrust = { ca: Buffer.from(ca, 'latin1'), opensslStore };
    }
    return processTrust;
}

module.exports = { nodeTrust, defaultTrust, usesOpensslStore };
