//! TLS for the client port from `WebSocketTLSCertificate` / `WebSocketTLSCertificateKey` (PEM). The
//! files are watched and a renewed certificate is used for new connections without a restart; a
//! broken replacement is logged and the previous certificate stays in use.

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
    let fingerprint = [cert_pem, key_pem].concat();
    Ok((CertifiedKey::new(chain, signing), fingerprint))
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
                    tracing::warn!(error = %e, "client port: new TLS certificate not usable yet, keeping the previous one");
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
