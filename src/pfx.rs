//! PKCS#12 (.p12/.pfx) bundles, as Node-RED 5's `tls-config` hands them over:
//! read the way Node.js reads its `pfx` option, so the same bundle means the same
//! thing to core and to us.

use crate::error::{Error, Result};
use p12_keystore::Pkcs12Archive;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What a bundle holds, in the roles Node gives them.
pub struct Bundle {
    /// The certificate that goes with the key, then every other certificate of the
    /// bundle: the chain presented to the server.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Bundle {
    /// The certificates besides the key's own. Node trusts these too (they are the
    /// bundle's CA chain), in addition to the CAs it trusts anyway.
    pub fn cas(&self) -> &[CertificateDer<'static>] {
        &self.chain[1..]
    }
}

pub fn decode(der: &[u8], passphrase: &str) -> Result<Bundle> {
    let archive = Pkcs12Archive::from_pkcs12(der, passphrase).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => {
            Error::Tls("PKCS#12 bundle: wrong passphrase (or a damaged file)".into())
        }
        other => Error::Tls(format!("PKCS#12 bundle could not be read ({other}); check the file and its passphrase")),
    })?;
    let key = archive.keys.first().ok_or_else(|| Error::Tls("PKCS#12 bundle holds no private key".into()))?;
    if archive.certs.is_empty() {
        return Err(Error::Tls("PKCS#12 bundle holds no certificate".into()));
    }
    // The key's certificate carries the same local key id; without ids, the first
    // certificate (as OpenSSL picks it when Node loads a bundle).
    let key_id = key.local_key_id.as_ref().map(|k| k.as_ref());
    let own = archive.certs.iter().position(|c| key_id.is_some() && c.local_key_id.as_deref() == key_id).unwrap_or(0);
    let mut chain = vec![CertificateDer::from(archive.certs[own].cert.as_der().to_vec())];
    for (i, bag) in archive.certs.iter().enumerate() {
        if i != own {
            chain.push(CertificateDer::from(bag.cert.as_der().to_vec()));
        }
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.as_der().to_vec()));
    Ok(Bundle { chain, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_bundle_is_a_clear_error() {
        for bad in [&b""[..], b"not a bundle", &[0x30, 0x03, 0x02, 0x01, 0x03]] {
            let e = decode(bad, "secret").err().expect("accepted garbage");
            assert_eq!(e.code(), "ERR_WSRS_TLS");
            assert!(e.to_string().starts_with("PKCS#12 bundle"), "{e}");
        }
    }
}
