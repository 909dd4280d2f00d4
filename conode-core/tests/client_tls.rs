//! TLS on the client port: served from the configured files, reloaded when they change (a new client
//! sees the new certificate while the node keeps running), and a clear error for unreadable files.

use conode_core::cluster::allocate_port_pair;
use conode_core::config::{NodeAddress, NodeConfig};
use conode_core::{NodeBuilder, NodeError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // Write the key first and the certificate last, as a renewal tool would.
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    ck.cert.der().to_vec()
}

/// Accepts any certificate: the test inspects what the server presented.
#[derive(Debug)]
struct AcceptAny;
impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

async fn presented_cert(addr: std::net::SocketAddr) -> Vec<u8> {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn certificate_is_reloaded_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let (node_l, client_l) = allocate_port_pair().unwrap();
    let port = node_l.local_addr().unwrap().port();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, "tls");
    config.ws_tls_certificate = Some(dir.path().join("cert.pem"));
    config.ws_tls_certificate_key = Some(dir.path().join("key.pem"));
    let mut node = NodeBuilder::new(config)
        .data_dir(dir.path())
        .listeners(node_l, client_l)
        .cert_reload_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    node.start().unwrap();
    let url = node.client_url().unwrap();
    assert!(url.starts_with("wss://"), "{url}");
    let addr = node.client_addr().unwrap();
    let rt = node.runtime_handle();
    assert_eq!(rt.block_on(presented_cert(addr)), first);

    let second = write_cert(dir.path());
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if rt.block_on(presented_cert(addr)) == second {
            break;
        }
        assert!(Instant::now() < deadline, "new certificate not served in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken replacement is ignored: the last good certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let later = Instant::now() + Duration::from_millis(400);
    while Instant::now() < later {
        assert_eq!(rt.block_on(presented_cert(addr)), second);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(node.is_running());
    node.stop().unwrap();
}

#[test]
fn unreadable_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port: 0 }, "tls");
    config.ws_tls_certificate = Some(dir.path().join("missing.pem"));
    config.ws_tls_certificate_key = Some(dir.path().join("key.pem"));
    let (node_l, client_l) = allocate_port_pair().unwrap();
    let mut node = NodeBuilder::new(config).data_dir(dir.path()).listeners(node_l, client_l).build().unwrap();
    let err = node.start().unwrap_err();
    assert!(matches!(err, NodeError::ClientTls(_)), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

fn start_with(dir: &Path) -> Result<conode_core::Node, NodeError> {
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port: 0 }, "tls");
    config.ws_tls_certificate = Some(dir.join("cert.pem"));
    config.ws_tls_certificate_key = Some(dir.join("key.pem"));
    let (node_l, client_l) = allocate_port_pair().unwrap();
    let mut node = NodeBuilder::new(config)
        .data_dir(dir)
        .listeners(node_l, client_l)
        .cert_reload_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    node.start()?;
    Ok(node)
}

#[test]
fn key_not_matching_the_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("key.pem"), other.key_pair.serialize_pem()).unwrap();
    let err = start_with(dir.path()).err().expect("a mismatched pair was accepted");
    assert!(matches!(err, NodeError::ClientTls(_)), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn expired_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    let err = start_with(dir.path()).err().expect("an expired certificate was accepted");
    assert!(matches!(err, NodeError::ClientTls(_)), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn mismatched_replacement_keeps_the_previous_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let node = start_with(dir.path()).unwrap();
    let addr = node.client_addr().unwrap();
    let rt = node.runtime_handle();
    // A new certificate whose key is not the one beside it: refused, the old pair stays.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), other.cert.pem()).unwrap();
    let later = Instant::now() + Duration::from_millis(500);
    while Instant::now() < later {
        assert_eq!(rt.block_on(presented_cert(addr)), first);
        std::thread::sleep(Duration::from_millis(50));
    }
}
