//! Which TLS servers a client of the client port trusts (`wss://`, `https://`): the platform's trust
//! store (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`), the public webpki roots, and any CA the
//! user names (`--cacert FILE`, Python's `cacert=`, the uniffi client's PEM anchor). A certificate
//! given as an anchor that the server presents itself (a self-signed server certificate) is accepted
//! as an exact pin, as OpenSSL-based clients do. Plain `ws://`/`http://` never touch this.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Largest PEM file read as a trust anchor bundle.
const MAX_PEM_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: cannot read CA certificates: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{what}: no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    NoCertificate { what: String },
    #[error("{what}: certificate {index} is not usable as a trust anchor: {reason}")]
    BadCertificate { what: String, index: usize, reason: String },
    #[error("TLS client setup: {0}")]
    Setup(String),
}

/// Extra trust anchors beside the platform and public roots (empty: only those).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// The platform's and the public roots only.
    pub fn system() -> Self {
        Self::default()
    }

    /// Adds every certificate of a PEM bundle (`what` names it in errors).
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, TrustError> {
        let mut extra = Vec::new();
        for (index, item) in rustls_pemfile::certs(&mut &pem[..]).enumerate() {
            let cert =
                item.map_err(|e| TrustError::BadCertificate { what: what.to_string(), index, reason: e.to_string() })?;
            // Rejected early, with the file's name, rather than at the first connection.
            webpki_anchor_check(&cert).map_err(|reason| TrustError::BadCertificate {
                what: what.to_string(),
                index,
                reason,
            })?;
            extra.push(cert);
        }
        if extra.is_empty() {
            return Err(TrustError::NoCertificate { what: what.to_string() });
        }
        Ok(Self { extra })
    }

    /// Reads a PEM bundle from `path`.
    pub fn from_pem_file(path: &Path) -> Result<Self, TrustError> {
        use std::io::Read;
        let read = |e: std::io::Error| TrustError::Read { path: path.to_path_buf(), reason: e.to_string() };
        let mut bytes = Vec::new();
        std::fs::File::open(path).map_err(read)?.take(MAX_PEM_BYTES).read_to_end(&mut bytes).map_err(read)?;
        Self::from_pem(&bytes, &path.display().to_string())
    }

    /// `None` → system trust; `Some(path)` → system trust plus that file's CAs.
    pub fn from_optional_file(path: Option<&Path>) -> Result<Self, TrustError> {
        path.map(Self::from_pem_file).transpose().map(Option::unwrap_or_default)
    }

    /// Whether user-named anchors are present.
    pub fn has_extra(&self) -> bool {
        !self.extra.is_empty()
    }

    /// The rustls configuration clients use for `wss://` and `https://` (no ALPN: HTTP/1.1, which
    /// WebSocket needs and the drand routes are happy with).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TrustError> {
        if self.extra.is_empty() {
            static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
            return SYSTEM
                .get_or_init(|| build_config(&[]).map_err(|e| e.to_string()))
                .clone()
                .map_err(TrustError::Setup);
        }
        build_config(&self.extra)
    }
}

fn webpki_anchor_check(cert: &CertificateDer<'_>) -> Result<(), String> {
    let mut store = RootCertStore::empty();
    store.add(cert.clone()).map_err(|e| e.to_string())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The platform's trust store, read once per process (it honours SSL_CERT_FILE and SSL_CERT_DIR).
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("platform trust store: {e}");
        }
        found.certs
    })
}

fn build_config(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, TrustError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    roots.add_parsable_certificates(platform_roots().iter().cloned());
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| TrustError::Setup(e.to_string()))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TrustError::Setup(e.to_string()))?;
    let verifier = Arc::new(PinningVerifier { webpki, pinned: extra.to_vec() });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Web PKI verification, plus: a server certificate that is itself one of the user's anchors (a
/// self-signed certificate handed over as `--cacert`) is trusted when it names the host.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(e) => {
                if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
                    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                    rustls::client::verify_server_name(&parsed, server_name)?;
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_input() {
        let e = Trust::from_pem(b"not a pem", "ca.pem").unwrap_err();
        assert!(e.to_string().contains("ca.pem") && e.to_string().contains("no PEM"), "{e}");
        let e = Trust::from_pem_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let t = Trust::from_pem(cert.cert.pem().as_bytes(), "x").unwrap();
        assert!(t.has_extra());
        assert!(t.client_config().is_ok());
        assert!(!Trust::system().has_extra());
        assert!(Trust::system().client_config().is_ok());
    }
}
