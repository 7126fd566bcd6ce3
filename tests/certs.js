'use strict';
// A throw-away CA and a server certificate for 127.0.0.1 / localhost, made in
// process, for the wss:// and HTTPS tests.

const forge = require('node-forge');

function makeCert({ subject, issuer, issuerKey, keys, isCa, altNames }) {
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    // DER wants the shortest positive INTEGER: an odd-length hex string gave a leading
    // 0x00 byte in half of them, which strict DER parsers refuse as "illegal padding".
    cert.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(8));
    cert.validity.notBefore = new Date(Date.now() - 60 * 1000);
    cert.validity.notAfter = new Date(Date.now() + 24 * 3600 * 1000);
    cert.setSubject([{ name: 'commonName', value: subject }]);
    cert.setIssuer([{ name: 'commonName', value: issuer }]);
    const ext = [{ name: 'basicConstraints', cA: isCa, critical: true }];
    if (isCa) {
        ext.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
    } else {
        ext.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
        ext.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
        ext.push({ name: 'subjectAltName', altNames });
    }
    cert.setExtensions(ext);
    cert.sign(issuerKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(cert);
}

/** {ca, cert, key}: PEM strings; the cert is valid for 127.0.0.1 and localhost, as a
 *  server and as a client certificate. */
function makeCerts() {
    const caKeys = forge.pki.rsa.generateKeyPair(2048);
    const ca = makeCert({ subject: 'websocket-rs test CA', issuer: 'websocket-rs test CA', issuerKey: caKeys.privateKey, keys: caKeys, isCa: true });
    const keys = forge.pki.rsa.generateKeyPair(2048);
    const cert = makeCert({
        subject: 'localhost', issuer: 'websocket-rs test CA', issuerKey: caKeys.privateKey, keys, isCa: false,
        altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }]
    });
    return { ca, cert, key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** The same key, encrypted with `passphrase` (legacy PEM encryption, as openssl writes it). */
function encryptKey(pem, passphrase) {
    return forge.pki.encryptRsaPrivateKey(forge.pki.privateKeyFromPem(pem), passphrase, { algorithm: 'aes256' });
}

/**
 * A PKCS#12 bundle (Buffer) of `certs.key` with `certs.cert` and then `certs.ca`, as
 * `openssl pkcs12 -export` makes one; `algorithm`: '3des' (legacy) or 'aes256'.
 */
function toPkcs12(certs, passphrase, algorithm = 'aes256') {
    const key = forge.pki.privateKeyFromPem(certs.key);
    const chain = [certs.cert, certs.ca].map((pem) => forge.pki.certificateFromPem(pem));
    const asn1 = forge.pkcs12.toPkcs12Asn1(key, chain, passphrase, { algorithm });
    return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

module.exports = { makeCerts, encryptKey, toPkcs12 };
