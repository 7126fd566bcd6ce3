//! TLS for client connections, from the material of a Node-RED `tls-config` node:
//! CA (replaces the default roots, as in Node), client certificate and key,
//! "verify server certificate", server name and ALPN.

use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM certificates to trust instead of the built-in roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate chain.
    pub cert: Option<Vec<u8>>,
    /// PEM private key (unencrypted: JS decrypts a passphrase-protected key first).
    pub key: Option<Vec<u8>>,
    /// Check the server's certificate (on unless the user turns it off).
    pub verify: bool,
    /// Name to send (SNI) and verify instead of the URL's host.
    pub servername: Option<String>,
    pub alpn: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{what}: not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = if opts.verify {
        let mut roots = RootCertStore::empty();
        match &opts.ca {
            Some(pem) => {
                for c in certs(pem, "CA certificate")? {
                    roots.add(c).map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| Error::Tls(format!("private key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| Error::Tls(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(Error::Tls("a client certificate needs both a certificate and a private key".into())),
    };
    if let Some(alpn) = opts.alpn.as_deref().filter(|a| !a.is_empty()) {
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(Arc::new(config))
}

pub fn server_name(host: &str, opts: &TlsOptions) -> Result<ServerName<'static>> {
    let name = opts.servername.as_deref().filter(|s| !s.is_empty()).unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|_| Error::InvalidArgument(format!("invalid TLS server name: {name}")))
}

/// "Verify server certificate" off: any certificate is accepted, but the
/// handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_material_is_a_clear_error() {
        let bad = TlsOptions { ca: Some(b"not a pem".to_vec()), verify: true, ..Default::default() };
        let e = client_config(&bad).unwrap_err();
        assert!(e.to_string().contains("CA certificate"), "{e}");
        let half = TlsOptions { cert: Some(b"x".to_vec()), verify: true, ..Default::default() };
        assert!(client_config(&half).is_err());
    }

    #[test]
    fn defaults_build_and_names_resolve() {
        assert!(client_config(&TlsOptions { verify: true, ..Default::default() }).is_ok());
        assert!(client_config(&TlsOptions { verify: false, ..Default::default() }).is_ok());
        assert!(server_name("127.0.0.1", &TlsOptions::default()).is_ok());
        let o = TlsOptions { servername: Some("example.org".into()), ..Default::default() };
        assert_eq!(server_name("127.0.0.1", &o).unwrap().to_str(), "example.org");
    }
}
