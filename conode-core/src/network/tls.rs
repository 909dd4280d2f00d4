//! Pinned mutual TLS 1.3 for the node-to-node port. Each node presents a self-signed certificate
//! for its Ed25519 identity key; there is no CA. A dialer accepts the peer only if the certificate
//! carries the key the roster says it should; a listener accepts any Ed25519 certificate and
//! reports the key, which services then check against their rosters.

use crate::crypto::{IdentityKeyPair, IdentityPublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// OID 1.3.101.112 (id-Ed25519).
const ED25519_OID: &str = "1.3.101.112";

/// The process-wide rustls provider (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's certificate and key, derived from its identity key.
pub struct TlsIdentity {
    pub cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    pub fn new(identity: &IdentityKeyPair) -> Result<Self, String> {
        let pkcs8 = identity.to_pkcs8_der().map_err(|e| e.to_string())?;
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| format!("TLS key: {e}"))?;
        let mut params =
            rcgen::CertificateParams::new(vec!["conode".to_string()]).map_err(|e| format!("TLS certificate: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, identity.public().to_hex());
        let cert = params.self_signed(&key_pair).map_err(|e| format!("TLS certificate: {e}"))?;
        Ok(Self { cert: cert.der().clone(), key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec())) })
    }

    /// Server side: TLS 1.3 only, client certificate mandatory.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(AnyEd25519Client))
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(cfg))
    }

    /// Client side: accept the server only if it presents `expected`.
    pub fn client_config(&self, expected: IdentityPublicKey) -> Result<Arc<rustls::ClientConfig>, String> {
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServer { expected }))
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(cfg))
    }
}

/// The Ed25519 key inside a certificate.
pub fn ed25519_key_of(cert: &CertificateDer<'_>) -> Result<IdentityPublicKey, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("unparsable certificate: {e}"))?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err(format!("certificate key is not Ed25519 (algorithm {})", spki.algorithm.algorithm.to_id_string()));
    }
    IdentityPublicKey::from_bytes(&spki.subject_public_key.data).map_err(|e| e.to_string())
}

fn verify13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
}

fn schemes() -> Vec<SignatureScheme> {
    vec![SignatureScheme::ED25519]
}

fn general(e: String) -> rustls::Error {
    rustls::Error::General(e)
}

#[derive(Debug)]
struct PinnedServer {
    expected: IdentityPublicKey,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = ed25519_key_of(end_entity).map_err(general)?;
        if got != self.expected {
            return Err(general(format!("peer presented key {got}, expected {}", self.expected)));
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _m: &[u8],
        _c: &CertificateDer<'_>,
        _d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(general("TLS 1.2 is not allowed".into()))
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

#[derive(Debug)]
struct AnyEd25519Client;

impl ClientCertVerifier for AnyEd25519Client {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _i: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        ed25519_key_of(end_entity).map_err(general)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _m: &[u8],
        _c: &CertificateDer<'_>,
        _d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(general("TLS 1.2 is not allowed".into()))
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn certificate_carries_identity_key() {
        let id = IdentityKeyPair::generate();
        let tls = TlsIdentity::new(&id).unwrap();
        assert_eq!(ed25519_key_of(&tls.cert).unwrap(), id.public());
        tls.server_config().unwrap();
        tls.client_config(id.public()).unwrap();
    }
}
