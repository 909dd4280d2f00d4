//! A LocalCluster of real nodes: every node reaches every other over pinned TLS, status over the
//! WebSocket (Go protobuf) and JSON, stop/restart of one node, and node lifecycle errors.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::services::status::messages::{public_of, server_identity_id, StatusRequest, StatusResponse};
use conode_core::NodeError;
use prost::Message;
use std::time::Duration;

#[test]
fn sixteen_nodes_reach_each_other_over_pinned_tls() {
    let cluster = LocalCluster::new(16).unwrap();
    let roster = cluster.roster().clone();
    let nets: Vec<_> = cluster.nodes().iter().map(|n| n.network().unwrap()).collect();
    let failures = cluster.runtime().block_on(async move {
        let mut tasks = Vec::new();
        for (i, net) in nets.iter().enumerate() {
            for (j, peer) in roster.servers.iter().enumerate() {
                if i == j {
                    continue;
                }
                let (net, peer) = (net.clone(), peer.clone());
                tasks.push(tokio::spawn(async move { (i, j, net.ping(&peer, Duration::from_secs(20)).await) }));
            }
        }
        let mut failures = Vec::new();
        for t in tasks {
            let (i, j, r) = t.await.unwrap();
            if let Err(e) = r {
                failures.push(format!("{i}->{j}: {e}"));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "unreachable pairs: {failures:?}");
    // Connections are reused: each node keeps at most one link per peer.
    for n in cluster.nodes() {
        let c = n.network().unwrap().connection_count();
        assert!((1..=15).contains(&c), "{c} connections");
    }
}

#[test]
fn status_over_websocket_protobuf_and_json() {
    let cluster = LocalCluster::new(2).unwrap();
    let url = cluster.client_url(0).unwrap();
    let si = cluster.node(0).server_identity();
    let (reply, json) = cluster.runtime().block_on(async {
        let reply = client::call(&url, "Status", "Request", StatusRequest {}.encode_to_vec(), Duration::from_secs(10))
            .await
            .unwrap();
        let http = url.replace("ws://", "http://");
        let json: serde_json::Value = reqwest::get(format!("{http}/status")).await.unwrap().json().await.unwrap();
        (reply, json)
    });
    let resp = StatusResponse::decode(reply.as_slice()).unwrap();
    let generic = &resp.status["Generic"].field;
    for key in
        ["Available_Services", "TX_bytes", "RX_bytes", "Uptime", "Host", "Port", "Description", "ConnType", "Version"]
    {
        assert!(generic.contains_key(key), "missing Generic.{key}");
    }
    assert!(generic["Available_Services"].contains("Status"));
    assert_eq!(generic["Port"], si.address.port.to_string());
    assert_eq!(generic["Description"], "local node 0");
    assert!(!resp.status["Db"].field.contains_key("Path"), "no filesystem path on a public endpoint");
    assert!(!json.to_string().contains(&*cluster.node(0).data_dir().to_string_lossy()), "{json}");
    assert_eq!(resp.status["Conode"].field["version"], conode_core::VERSION);
    let rsi = resp.serveridentity.unwrap();
    assert_eq!(&rsi.public[..8], b"ed.point");
    assert_eq!(public_of(&rsi).unwrap(), si.public);
    assert_eq!(rsi.id, server_identity_id(&si.public).to_vec());
    assert_eq!(rsi.address, si.address.to_string());
    assert_eq!(json["Generic"]["Description"], "local node 0");
    assert_eq!(json["Conode"]["id"], si.public.node_id());

    // Unknown method: the socket is closed with the service's reason.
    let err =
        cluster.runtime().block_on(client::call(&url, "Status", "Nope", vec![], Duration::from_secs(10))).unwrap_err();
    assert!(err.to_string().contains("unknown method Status/Nope"), "{err}");
    // Unknown service: HTTP 404 before the upgrade.
    let err =
        cluster.runtime().block_on(client::call(&url, "Nope", "Request", vec![], Duration::from_secs(10))).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn stop_and_restart_one_node() {
    let mut cluster = LocalCluster::new(3).unwrap();
    let roster = cluster.roster().clone();
    let net0 = cluster.node(0).network().unwrap();
    let rt = cluster.runtime().handle().clone();
    rt.block_on(net0.ping(&roster.servers[2], Duration::from_secs(10))).unwrap();
    cluster.stop(2).unwrap();
    assert!(matches!(cluster.stop(2), Err(NodeError::NotRunning)));
    let err = rt.block_on(net0.ping(&roster.servers[2], Duration::from_millis(800))).unwrap_err();
    assert!(err.to_string().contains(&roster.servers[2].public.to_hex()[..16]), "error names the peer: {err}");
    // The others keep serving.
    rt.block_on(net0.ping(&roster.servers[1], Duration::from_secs(10))).unwrap();
    cluster.restart(2).unwrap();
    assert!(matches!(cluster.restart(2), Err(NodeError::AlreadyRunning)));
    // Reconnects (after backoff) within the deadline.
    rt.block_on(net0.ping(&roster.servers[2], Duration::from_secs(15))).unwrap();
}

#[test]
fn metrics_and_status_page_for_operators() {
    let cluster = LocalCluster::new(2).unwrap();
    let http = cluster.client_url(0).unwrap().replace("ws://", "http://");
    let id = cluster.node(0).server_identity().public.node_id();
    // Make the nodes talk so that the byte counters move.
    let peer = cluster.node(1).server_identity();
    cluster.runtime().block_on(cluster.node(0).network().unwrap().ping(&peer, Duration::from_secs(10))).unwrap();
    let (metrics, content_type, page) = cluster.runtime().block_on(async {
        let resp = reqwest::get(format!("{http}/metrics")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let metrics = resp.text().await.unwrap();
        let page = reqwest::get(format!("{http}/")).await.unwrap().text().await.unwrap();
        (metrics, ct, page)
    });
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(metrics.contains(&format!("id=\"{id}\"")), "{metrics}");
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("conode_network_sent_bytes_total") > 0.0);
    assert!(value("conode_network_peer_connections") >= 1.0);
    assert!(value("conode_db_size_bytes") > 0.0);
    assert!(page.contains("fetch(\"/roster/status\"") && page.contains("name=\"viewport\""), "{page}");
    let roster: serde_json::Value = cluster
        .runtime()
        .block_on(async { reqwest::get(format!("{http}/roster/status")).await.unwrap().json().await.unwrap() });
    assert_eq!(roster["node"]["description"], "local node 0", "{roster}");
}
