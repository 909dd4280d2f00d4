//! TLS for the client port from `WebSocketTLSCertificate` / `WebSocketTLSCertificateKey` (PEM). The
//! files are watched and a renewed certificate is used for new connections without a restart; a
//! broken replacement is logged and the previous certificate stays in use. A pair is refused (at
//! start: the node does not start) when the key does not match the certificate, the certificate
//! has expired or is not yet valid, or the key is of a type rustls cannot sign with.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
}

/// Loads a PEM certificate chain and key into a rustls `CertifiedKey`.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<(CertifiedKey, Vec<u8>), CertError> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| CertError::Read { file: p.to_path_buf(), reason: e.to_string() });
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let invalid = |p: &Path, r: String| CertError::Invalid { file: p.to_path_buf(), reason: r };
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "no CERTIFICATE block".into()));
    }
    let der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| invalid(key, format!("bad PEM: {e}")))?
        .ok_or_else(|| invalid(key, "no PRIVATE KEY block".into()))?;
    let signing = crate::network::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| invalid(key, format!("unusable key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // The key cannot tell its public half: the handshake would show a mismatch; nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(invalid(key, format!("the key does not match the certificate {}", cert.display())));
        }
        Err(e) => return Err(invalid(cert, format!("unusable certificate: {e}"))),
    }
    check_validity(cert, &certified.cert[0], std::time::SystemTime::now())?;
    let fingerprint = [cert_pem, key_pem].concat();
    Ok((certified, fingerprint))
}

/// Refuses a certificate outside its validity period at `now`.
pub fn check_validity(
    file: &Path,
    der: &rustls::pki_types::CertificateDer<'_>,
    now: std::time::SystemTime,
) -> Result<(), CertError> {
    let invalid = |r: String| CertError::Invalid { file: file.to_path_buf(), reason: r };
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| invalid(format!("unparsable certificate: {e}")))?;
    let now = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let validity = parsed.validity();
    if validity.not_after.timestamp() < now {
        return Err(invalid(format!("the certificate expired on {}", validity.not_after)));
    }
    if validity.not_before.timestamp() > now {
        return Err(invalid(format!("the certificate is not valid before {}", validity.not_before)));
    }
    Ok(())
}

/// A certificate resolver whose certificate is replaced when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl ReloadingCert {
    /// Loads the files now (errors name the file) and returns the resolver.
    pub fn new(cert_path: &Path, key_path: &Path) -> Result<(Arc<Self>, Vec<u8>), CertError> {
        let (ck, fp) = load_certified_key(cert_path, key_path)?;
        Ok((
            Arc::new(Self {
                current: RwLock::new(Arc::new(ck)),
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
            }),
            fp,
        ))
    }

    /// Watches the files every `interval` until `shutdown`; swaps in a changed, valid pair.
    pub async fn watch(self: Arc<Self>, mut fingerprint: Vec<u8>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let (c, k) = (self.cert_path.clone(), self.key_path.clone());
            let changed = match (std::fs::read(&c), std::fs::read(&k)) {
                (Ok(a), Ok(b)) => [a, b].concat() != fingerprint,
                _ => false,
            };
            if !changed {
                continue;
            }
            match load_certified_key(&c, &k) {
                Ok((ck, fp)) => {
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
                    fingerprint = fp;
                    tracing::info!(file = %c.display(), "client port: TLS certificate reloaded");
                }
                Err(e) => {
                    // Files may be mid-rewrite: try again next tick, keep serving the old one.
                    tracing::warn!(error = %e, "client port: new TLS certificate refused, keeping the previous one");
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A rustls server config serving the reloading certificate (TLS 1.2 and 1.3, HTTP/1.1).
pub fn server_config(resolver: Arc<ReloadingCert>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(crate::network::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
