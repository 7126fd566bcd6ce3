//! TLS for client connections, from the material of a Node-RED `tls-config` node:
//! CA (replaces the default trust, as in Node), client certificate and key, the CAs
//! of a PKCS#12 bundle (JS decodes it), "verify server certificate", server name and
//! ALPN. Without a CA, a client trusts what Node.js trusts by default (`DefaultTrust`).

use crate::error::{Error, Result};
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// PEM certificates to trust instead of the default trust.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate chain.
    pub cert: Option<Vec<u8>>,
    /// PEM private key (unencrypted: JS decrypts a passphrase-protected key first).
    pub key: Option<Vec<u8>>,
    /// PEM certificates trusted besides `ca` or the default trust: the other
    /// certificates of a PKCS#12 bundle, which Node trusts too.
    pub extra_ca: Option<Vec<u8>>,
    /// Check the server's certificate (on unless the user turns it off).
    pub verify: bool,
    /// Name to send (SNI) and verify instead of the URL's host.
    pub servername: Option<String>,
    pub alpn: Option<String>,
}

/// Verification is on unless turned off explicitly.
impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { ca: None, cert: None, key: None, extra_ca: None, verify: true, servername: None, alpn: None }
    }
}

/// The CAs a client trusts when no `tls-config` CA replaces them: Node's defaults.
#[derive(Clone, Debug, Default)]
pub struct DefaultTrust {
    /// The certificates JS listed as what Node trusts (its bundled Mozilla list or
    /// not, the system store, NODE_EXTRA_CA_CERTS). None: Mozilla's list (webpki-roots).
    pub listed: Option<Arc<RootCertStore>>,
    /// Also OpenSSL's certificate files (SSL_CERT_FILE, SSL_CERT_DIR, else the
    /// system's), as Node with `--use-openssl-ca`. Read on Linux only.
    pub openssl_store: bool,
}

impl DefaultTrust {
    /// From JS's PEM list. Certificates Node could not load are skipped, as Node skips them.
    pub fn from_pem(pem: &[u8], openssl_store: bool) -> Self {
        DefaultTrust { listed: Some(parsed(pem)), openssl_store }
    }

    /// These CAs and `more`.
    fn roots(&self, more: &[CertificateDer<'static>]) -> Arc<RootCertStore> {
        let listed = match &self.listed {
            Some(roots) => roots.clone(),
            None => Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        };
        let mut more = more.to_vec();
        if self.openssl_store {
            // Read at each start, as Node reads OpenSSL's files for each new context.
            more.extend(openssl_store());
        }
        if more.is_empty() {
            return listed;
        }
        let mut roots = (*listed).clone();
        roots.add_parsable_certificates(more);
        Arc::new(roots)
    }
}

/// Every client gets the same list from JS (~150 certificates, ~200 KB): it is
/// parsed once, and a client start only compares it with the last one.
fn parsed(pem: &[u8]) -> Arc<RootCertStore> {
    static LAST: Mutex<Option<(Vec<u8>, Arc<RootCertStore>)>> = Mutex::new(None);
    let mut last = LAST.lock();
    if let Some((bytes, roots)) = &*last {
        if bytes.as_slice() == pem {
            return roots.clone();
        }
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem).filter_map(|c| c.ok()));
    let roots = Arc::new(roots);
    *last = Some((pem.to_vec(), roots.clone()));
    roots
}

#[cfg(target_os = "linux")]
fn openssl_store() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

#[cfg(not(target_os = "linux"))]
fn openssl_store() -> Vec<CertificateDer<'static>> {
    Vec::new()
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

pub fn client_config(opts: &TlsOptions, trust: &DefaultTrust) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = if opts.verify {
        // One that cannot be a trust anchor is skipped rather than failing the client.
        let extra: Vec<_> = opts
            .extra_ca
            .as_deref()
            .map_or_else(Vec::new, |pem| CertificateDer::pem_slice_iter(pem).filter_map(|c| c.ok()).collect());
        let roots = match &opts.ca {
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for c in certs(pem, "CA certificate")? {
                    roots.add(c).map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
                }
                roots.add_parsable_certificates(extra);
                Arc::new(roots)
            }
            None => trust.roots(&extra),
        };
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
        let bad = TlsOptions { ca: Some(b"not a pem".to_vec()), ..Default::default() };
        let e = client_config(&bad, &DefaultTrust::default()).unwrap_err();
        assert!(e.to_string().contains("CA certificate"), "{e}");
        let half = TlsOptions { cert: Some(b"x".to_vec()), ..Default::default() };
        assert!(client_config(&half, &DefaultTrust::default()).is_err());
    }

    #[test]
    fn default_trust_is_what_js_lists_else_mozilla() {
        let mozilla = DefaultTrust::default().roots(&[]);
        assert_eq!(mozilla.len(), webpki_roots::TLS_SERVER_ROOTS.len());
        let listed = DefaultTrust::from_pem(b"no certificate here", false);
        assert!(listed.roots(&[]).is_empty(), "a list from JS replaces Mozilla's, and garbage in it is skipped");
    }

    #[test]
    fn defaults_build_and_names_resolve() {
        let trust = DefaultTrust::default();
        assert!(TlsOptions::default().verify, "verification must be the default");
        assert!(client_config(&TlsOptions::default(), &trust).is_ok());
        assert!(client_config(&TlsOptions { verify: false, ..Default::default() }, &trust).is_ok());
        assert!(server_name("127.0.0.1", &TlsOptions::default()).is_ok());
        let o = TlsOptions { servername: Some("example.org".into()), ..Default::default() };
        assert_eq!(server_name("127.0.0.1", &o).unwrap().to_str(), "example.org");
    }
}
