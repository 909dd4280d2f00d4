//! Client TLS trust: a node whose client port is served with a certificate from a private CA (or a
//! self-signed one) is reachable by the core client only when that CA is named; without it the
//! handshake fails with the issuer named, and `ws://` stays plain while `wss://` is never plain.

use conode_core::api::client::{Client, Trust};
use conode_core::client_api::ClientUrl;
use conode_core::cluster::allocate_port_pair;
use conode_core::config::{NodeAddress, NodeConfig};
use conode_core::{Node, NodeBuilder};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::Path;
use std::time::Duration;

/// A private CA and a `localhost` certificate it signed; returns the CA's PEM.
fn private_ca(dir: &Path) -> String {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "conode test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    ca.pem()
}

fn tls_node(dir: &Path) -> Node {
    let (node_l, client_l) = allocate_port_pair().unwrap();
    let port = node_l.local_addr().unwrap().port();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, "tls");
    config.ws_tls_certificate = Some(dir.join("cert.pem"));
    config.ws_tls_certificate_key = Some(dir.join("key.pem"));
    let mut node = NodeBuilder::new(config).data_dir(dir).listeners(node_l, client_l).build().unwrap();
    node.start().unwrap();
    node
}

fn client(node: &Node, scheme: &str, trust: Trust) -> Client {
    let url = ClientUrl::parse(&format!("{scheme}://localhost:{}", node.client_addr().unwrap().port())).unwrap();
    Client::new(url, Duration::from_secs(10)).with_trust(trust)
}

#[test]
fn private_ca_is_trusted_only_when_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = private_ca(dir.path());
    let mut node = tls_node(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Public and platform roots only: the private issuer is unknown, over WebSocket and HTTP.
    let err = rt.block_on(client(&node, "wss", Trust::system()).status()).unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = rt.block_on(client(&node, "https", Trust::system()).http_get("/ok")).unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // Naming the CA: both sides of the port work.
    let trust = Trust::from_pem(ca.as_bytes(), "ca.pem").unwrap();
    let status = rt.block_on(client(&node, "wss", trust.clone()).status()).unwrap();
    assert!(status.serveridentity.is_some());
    assert!(rt.block_on(client(&node, "https", trust.clone()).http_get("/ok")).is_ok());

    // A plain URL to the TLS port is not upgraded silently, and fails.
    assert!(rt.block_on(client(&node, "ws", trust).status()).is_err());
    node.stop().unwrap();
}

#[test]
fn self_signed_server_certificate_can_be_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    let mut node = tls_node(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(rt.block_on(client(&node, "wss", Trust::system()).status()).is_err());
    let trust = Trust::from_pem(ck.cert.pem().as_bytes(), "self-signed.pem").unwrap();
    assert!(rt.block_on(client(&node, "wss", trust.clone()).status()).is_ok());
    // The pin is for the names in the certificate: another name for the same host is refused.
    let url = ClientUrl::parse(&format!("wss://127.0.0.1:{}", node.client_addr().unwrap().port())).unwrap();
    let err = rt.block_on(Client::new(url, Duration::from_secs(10)).with_trust(trust).status()).unwrap_err();
    assert!(err.to_string().contains("NotValidForName") || err.to_string().contains("name"), "{err}");
    node.stop().unwrap();
}
