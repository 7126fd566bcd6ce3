'use strict';
//! PKCS#12 bundles read in JS (nodes/lib/pfx.js) as Node.js reads its `pfx` option:
//! bundles written by OpenSSL 3 (tests/fixtures/pkcs12/make.sh) and by node-forge.
//! The connections they make are in tests/node-red-versions.test.js.

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tls = require('tls');
const { readPfx } = require('../nodes/lib/pfx');
const { makeCerts, toPkcs12 } = require('./certs');

const dir = path.join(__dirname, 'fixtures', 'pkcs12');
const fixture = (name) => fs.readFileSync(path.join(dir, name));
const text = (name) => fixture(name).toString('latin1');

/** Does Node.js itself take this bundle with this passphrase? */
function nodeTakes(pfx, passphrase) {
    try {
        tls.createSecureContext({ pfx, passphrase });
        return true;
    } catch (err) {
        return false;
    }
}

function assertRead(got, leafPem, caPem) {
    [leafPem, caPem] = [leafPem, caPem].map((pem) => pem.replace(/\r\n/g, '\n')); // node-forge writes CRLF
    assert.strictEqual(got.cert, leafPem + caPem, 'the key\'s certificate, then the others');
    assert.strictEqual(got.ca, caPem, 'the others, to trust');
    const leaf = new crypto.X509Certificate(leafPem);
    assert.ok(leaf.checkPrivateKey(crypto.createPrivateKey(got.key)), 'the key goes with the certificate');
    assert.match(got.key, /^-----BEGIN PRIVATE KEY-----\n/);
}

describe('PKCS#12 bundles, read in JS', function () {
    const openssl = [
        ['aes256.p12', 'secret', 'leaf.pem', 'AES-256, as OpenSSL 3 writes by default'],
        ['3des.p12', 'secret', 'leaf.pem', '3DES, the legacy scheme'],
        ['utf8-passphrase.p12', 'sécret', 'leaf.pem', 'AES-256 with a passphrase beyond ASCII'],
        ['no-passphrase.p12', undefined, 'leaf.pem', 'an empty passphrase'],
        ['ec.p12', 'secret', 'ec-leaf.pem', 'an EC key']
    ];
    for (const [file, passphrase, leaf, what] of openssl) {
        it('reads an OpenSSL 3 bundle: ' + what + ', as Node.js does', function () {
            assert.ok(nodeTakes(fixture(file), passphrase), 'Node.js takes it (the reference)');
            assertRead(readPfx(fixture(file), passphrase), text(leaf), text('ca.pem'));
        });
    }

    it('reads an OpenSSL 1.x bundle (RC2), which Node.js 20 and 22 refuse (their OpenSSL 3 leaves RC2 out)', function () {
        assertRead(readPfx(fixture('rc2.p12'), 'secret'), text('leaf.pem'), text('ca.pem'));
        assert.throws(() => readPfx(fixture('rc2.p12'), 'not the secret'), { code: 'ERR_WSRS_TLS', message: /wrong passphrase/ });
    });

    for (const algorithm of ['aes256', '3des']) {
        it('reads a node-forge bundle (' + algorithm + ')', function () {
            const certs = makeCerts();
            assertRead(readPfx(toPkcs12(certs, 'secret', algorithm), 'secret'), certs.cert, certs.ca);
        });
    }

    it('reads a bundle sealed with no passphrase at all (not even an empty one), as Node.js does', function () {
        const certs = makeCerts();
        const bundle = toPkcs12(certs, null, '3des');
        assert.ok(nodeTakes(bundle, undefined), 'Node.js takes it (the reference)');
        assertRead(readPfx(bundle, undefined), certs.cert, certs.ca);
        assertRead(readPfx(bundle, ''), certs.cert, certs.ca);
    });

    it('reports a wrong passphrase where Node.js refuses it too', function () {
        for (const [file] of openssl.filter(([, passphrase]) => passphrase)) {
            assert.strictEqual(nodeTakes(fixture(file), 'not the secret'), false, file);
            assert.throws(() => readPfx(fixture(file), 'not the secret'),
                { code: 'ERR_WSRS_TLS', message: 'PKCS#12 bundle: wrong passphrase (or a damaged file)' }, file);
        }
        assert.throws(() => readPfx(fixture('aes256.p12')), { code: 'ERR_WSRS_TLS', message: /wrong passphrase/ }, 'none given');
    });

    it('reports what is not a bundle clearly', function () {
        for (const bad of [Buffer.alloc(0), Buffer.from('not a bundle'), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x03])]) {
            assert.throws(() => readPfx(bad, 'secret'), { code: 'ERR_WSRS_TLS', message: /^PKCS#12 bundle could not be read/ });
        }
    });
});
