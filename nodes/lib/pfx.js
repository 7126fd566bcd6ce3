'use strict';
// PKCS#12 (.p12/.pfx) bundles, as Node-RED 5's tls-config hands them over, read the
// way Node.js reads its `pfx` option: the key, the certificate that goes with it,
// and the bundle's other certificates, which are presented with it and trusted too.
// Decoded here (node-forge) into the PEM the addon already takes, so that none of
// its eight binaries carries a PKCS#12 reader.

/** Loaded on first use: most flows have no bundle, and node-forge is large. */
let forge = null;

const tlsError = (message) => Object.assign(new Error(message), { code: 'ERR_WSRS_TLS' });

/** What node-forge says when the passphrase is wrong (or the file damaged). */
const WRONG_PASSPHRASE = /MAC could not be verified|wrong password|Failed to decrypt/;

function decode(asn1, passphrase) {
    try {
        return forge.pkcs12.pkcs12FromAsn1(asn1, false, passphrase);
    } catch (err) {
        // The MAC and the older ciphers take the passphrase as characters, AES (PBES2)
        // as its UTF-8 bytes, as OpenSSL does; node-forge takes one string for both. So
        // beyond ASCII, once the MAC has passed, the contents are decrypted again.
        if (passphrase && /[^\x00-\x7f]/.test(passphrase) && !/MAC could not be verified/.test(err.message)) {
            const withoutMac = Object.assign({}, asn1, { value: asn1.value.slice(0, 2) });
            try {
                return forge.pkcs12.pkcs12FromAsn1(withoutMac, false, forge.util.encodeUtf8(passphrase));
            } catch (e) { /* the first error says more */ }
        }
        if (WRONG_PASSPHRASE.test(err.message)) throw tlsError('PKCS#12 bundle: wrong passphrase (or a damaged file)');
        throw tlsError('PKCS#12 bundle could not be read (' + err.message + '); check the file and its passphrase');
    }
}

/**
 * A bundle without a passphrase may have been sealed with an empty one or with
 * none, which PKCS#12 tells apart; OpenSSL (so Node) tries both.
 */
function open(asn1, passphrase) {
    if (passphrase) return decode(asn1, passphrase);
    try {
        return decode(asn1, '');
    } catch (err) {
        return decode(asn1, null);
    }
}

const der = (asn1) => forge.asn1.toDer(asn1).getBytes();
const pem = (type, bytes) => '-----BEGIN ' + type + '-----\n' +
    Buffer.from(bytes, 'binary').toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n') +
    '-----END ' + type + '-----\n';
const keyId = (bag) => (bag.attributes.localKeyId || [])[0];

/**
 * `{cert, key, ca}` as PEM: the key's certificate then the bundle's others, the key
 * as PKCS#8, and the others alone (to trust). Throws ERR_WSRS_TLS errors.
 */
function readPfx(bundle, passphrase) {
    if (!forge) forge = require('node-forge');
    let asn1;
    try {
        asn1 = forge.asn1.fromDer(Buffer.from(bundle).toString('binary'), { strict: false });
    } catch (err) {
        throw tlsError('PKCS#12 bundle could not be read (' + err.message + '); check the file');
    }
    const p12 = open(asn1, passphrase ? String(passphrase) : '');
    const keys = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]
        .concat(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag]);
    const certs = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag];
    if (keys.length === 0) throw tlsError('PKCS#12 bundle holds no private key');
    if (certs.length === 0) throw tlsError('PKCS#12 bundle holds no certificate');
    const key = keys[0];
    // The key's certificate carries the same local key id; without ids, the first
    // certificate (as OpenSSL picks it when Node loads a bundle).
    const id = keyId(key);
    const own = Math.max(0, id === undefined ? 0 : certs.findIndex((c) => keyId(c) === id));
    // A key or certificate type node-forge cannot parse (EC, Ed25519) comes as ASN.1.
    const certPem = (bag) => pem('CERTIFICATE', der(bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1));
    const keyInfo = key.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key.key)) : key.asn1;
    const others = certs.filter((c, i) => i !== own).map(certPem);
    return {
        cert: [certPem(certs[own])].concat(others).join(''),
        key: pem('PRIVATE KEY', der(keyInfo)),
        ca: others.length ? others.join('') : undefined
    };
}

module.exports = { readPfx };
