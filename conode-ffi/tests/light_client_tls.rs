//! The uniffi light client behind a private CA: `ConodeClient::with_ca` reaches a node whose client
//! port has a certificate from that CA (over wss and https), `new` (public roots) does not, and a
//! PEM without a certificate is refused up front.

use conode::light::LightError;
use conode::light_client::ConodeClient;
use conode_core::cluster::allocate_port_pair;
use conode_core::config::{NodeAddress, NodeConfig};
use conode_core::NodeBuilder;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

#[test]
fn with_ca_trusts_the_private_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "light client test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();

    let (node_l, client_l) = allocate_port_pair().unwrap();
    let port = node_l.local_addr().unwrap().port();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, "tls");
    config.ws_tls_certificate = Some(dir.path().join("cert.pem"));
    config.ws_tls_certificate_key = Some(dir.path().join("key.pem"));
    let mut node = NodeBuilder::new(config).data_dir(dir.path()).listeners(node_l, client_l).build().unwrap();
    node.start().unwrap();
    let url = format!("wss://localhost:{}", node.client_addr().unwrap().port());
    let unknown = "00".repeat(32);

    // Public roots only: the TLS handshake fails, on both transports.
    let plain = ConodeClient::new(url.clone(), 5000).unwrap();
    match plain.latest_block(unknown.clone()) {
        Err(LightError::Network { reason }) => assert!(reason.contains("UnknownIssuer"), "{reason}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert!(matches!(plain.chain_info(), Err(LightError::Network { .. })));
    // With the CA: the node answers (it has no such block and no beacon chain: server errors).
    let trusting = ConodeClient::with_ca(url, 5000, ca.pem()).unwrap();
    assert!(matches!(trusting.latest_block(unknown), Err(LightError::ServerError { .. })));
    assert!(matches!(trusting.chain_info(), Err(LightError::ServerError { .. })));
    assert!(matches!(
        ConodeClient::with_ca("wss://localhost:1".into(), 5000, "no pem here".into()),
        Err(LightError::InvalidInput { .. })
    ));
    node.stop().unwrap();
}
