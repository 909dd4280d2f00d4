//! The client port's limits from `[Limits]`: a WebSocket message above the limit is answered with
//! close code 1009, an idle WebSocket is closed, connections per address are capped.

use conode_core::cluster::allocate_port_pair;
use conode_core::config::{NodeAddress, NodeConfig};
use conode_core::NodeBuilder;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

fn node(limits: impl FnOnce(&mut conode_core::config::Limits)) -> (conode_core::Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port: 0 }, "limits");
    limits(&mut config.limits);
    let (node_l, client_l) = allocate_port_pair().unwrap();
    let mut node = NodeBuilder::new(config).data_dir(dir.path()).listeners(node_l, client_l).build().unwrap();
    node.start().unwrap();
    (node, dir)
}

#[test]
fn oversized_message_is_closed_with_1009() {
    let (node, _dir) = node(|l| l.client_max_message = 64 * 1024);
    let url = format!("{}/Status/Request", node.client_url().unwrap());
    node.runtime_handle().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // A small request is served.
        ws.send(Message::Binary(vec![])).await.unwrap();
        assert!(matches!(ws.next().await, Some(Ok(Message::Binary(_)))));
        let (mut tx, mut rx) = ws.split();
        // The node may close before the whole message is sent: the send's result does not matter.
        let sending = tokio::spawn(async move { tx.send(Message::Binary(vec![0u8; 1 << 20])).await.is_ok() });
        let code = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = rx.next().await {
                if let Ok(Message::Close(Some(f))) = m {
                    return Some(u16::from(f.code));
                }
                if m.is_err() {
                    return None;
                }
            }
            None
        })
        .await
        .expect("no close frame");
        assert_eq!(code, Some(1009));
        let _ = sending.await;
    });
}

#[test]
fn idle_websocket_is_closed() {
    let (node, _dir) = node(|l| l.client_idle_timeout = Duration::from_millis(300));
    let url = format!("{}/Status/Request", node.client_url().unwrap());
    node.runtime_handle().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("idle socket kept open");
        assert!(matches!(m, Some(Ok(Message::Close(_))) | None | Some(Err(_))), "{m:?}");
    });
}

#[test]
fn connections_per_address_are_capped() {
    let (node, _dir) = node(|l| l.client_max_connections_per_address = 2);
    let addr = node.client_addr().unwrap();
    node.runtime_handle().block_on(async {
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The third is accepted by the kernel and closed by the node at once.
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.expect("third connection kept");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    });
}

/// Status code of `GET path` sent from `local` (a loopback address of its own), and its
/// `Retry-After` header.
async fn get_from(local: &str, addr: std::net::SocketAddr, path: &str) -> (u16, Option<String>) {
    let (status, retry, _) = get_with_body(local, addr, path).await;
    (status, retry)
}

/// `get_from` with the whole reply (headers and body).
async fn get_with_body(local: &str, addr: std::net::SocketAddr, path: &str) -> (u16, Option<String>, String) {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&reply).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: ").or_else(|| l.strip_prefix("Retry-After: ")))
        .map(|v| v.trim().to_string());
    (status, retry, text)
}

#[test]
fn requests_per_source_are_rate_limited() {
    let (node, _dir) = node(|l| {
        l.client_requests_per_second = 2;
        l.client_request_burst = 5;
        l.client_rate_limit_loopback = true;
    });
    let addr = node.client_addr().unwrap();
    node.runtime_handle().block_on(async {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(get_from("127.0.0.1", addr, "/ok").await);
        }
        // The burst is served; then 429 with a Retry-After in whole seconds.
        assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
        let limited: Vec<_> = statuses[5..].iter().filter(|(s, _)| *s == 429).collect();
        assert!(!limited.is_empty(), "no request was limited: {statuses:?}");
        assert!(limited.iter().all(|(_, r)| r.as_deref() == Some("1")), "{limited:?}");
        // Another source has its own bucket.
        assert_eq!(get_from("127.0.0.2", addr, "/ok").await.0, 200);
        // The operator sees the refusals.
        let (status, _, metrics) = get_with_body("127.0.0.2", addr, "/metrics").await;
        assert_eq!(status, 200);
        let refused = metrics
            .lines()
            .find_map(|l| l.strip_prefix("conode_client_rate_limited_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(refused, Some(limited.len() as f64), "{metrics}");
        // The first source is served again once a token came back.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while get_from("127.0.0.1", addr, "/ok").await.0 != 200 {
            assert!(std::time::Instant::now() < deadline, "the source never got a token back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn websocket_messages_over_the_rate_close_with_retry_after() {
    let (node, _dir) = node(|l| {
        l.client_requests_per_second = 1;
        l.client_request_burst = 3;
        l.client_rate_limit_loopback = true;
    });
    let url = format!("{}/Status/Request", node.client_url().unwrap());
    node.runtime_handle().block_on(async {
        // The upgrade takes one token, messages the others (and one more a second): well before
        // the tenth message the socket is closed.
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let mut answered = 0;
        let frame = loop {
            assert!(answered < 10, "ten messages served at one per second after a burst of 3");
            ws.send(Message::Binary(vec![])).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no answer") {
                Some(Ok(Message::Binary(_))) => answered += 1,
                Some(Ok(Message::Close(Some(frame)))) => break frame,
                other => panic!("neither an answer nor a close: {other:?}"),
            }
        };
        assert!(answered >= 2, "the burst was not served: {answered}");
        assert_eq!(u16::from(frame.code), conode_core::client_api::WS_ERROR_CODE);
        let error = conode_core::client_api::WireError::from_close_reason(&frame.reason);
        assert_eq!(error.code, conode_core::client_api::ErrorCode::Unavailable, "{}", frame.reason);
        let wait = error.number("retry_after_ms").expect("retry_after_ms");
        assert!((1..=1000).contains(&wait), "{wait}");
    });
}

/// A reverse proxy on this machine (loopback, not limited itself) that names the client in
/// `X-Forwarded-For` has the requests counted against that client.
#[test]
fn a_local_proxys_clients_are_limited_by_their_own_address() {
    let (node, _dir) = node(|l| {
        l.client_requests_per_second = 1;
        l.client_request_burst = 2;
    });
    let addr = node.client_addr().unwrap();
    node.runtime_handle().block_on(async {
        use tokio::io::AsyncWriteExt;
        let forwarded = |client: &'static str| async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req =
                format!("GET /ok HTTP/1.1\r\nHost: node\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n");
            tcp.write_all(req.as_bytes()).await.unwrap();
            let mut reply = String::new();
            tcp.read_to_string(&mut reply).await.unwrap();
            reply.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0)
        };
        let statuses = [forwarded("192.0.2.7").await, forwarded("192.0.2.7").await, forwarded("192.0.2.7").await];
        assert_eq!(statuses, [200, 200, 429]);
        // Another client behind the same proxy has its own bucket; the proxy's own requests none.
        assert_eq!(forwarded("192.0.2.8").await, 200);
        for _ in 0..5 {
            assert_eq!(get_from("127.0.0.1", addr, "/ok").await.0, 200);
        }
    });
}

#[test]
fn loopback_clients_are_not_rate_limited_by_default() {
    let (node, _dir) = node(|l| {
        l.client_requests_per_second = 1;
        l.client_request_burst = 1;
    });
    let addr = node.client_addr().unwrap();
    node.runtime_handle().block_on(async {
        for _ in 0..20 {
            assert_eq!(get_from("127.0.0.1", addr, "/ok").await.0, 200);
        }
    });
}

/// Creating chains has its own, slower rate per source (every member stores a chain for good);
/// other requests of the same source are not held back by it, and in-process calls (an embedding
/// application) are not limited.
#[test]
fn chain_creations_per_source_are_limited() {
    use conode_core::api::client::{Client, ClientError};
    use conode_core::client_api::{ClientUrl, ErrorCode};
    use conode_core::config::Roster;
    use conode_core::services::skipchain::messages::CreateChain;
    let (node, _dir) = node(|l| {
        l.client_chains_per_minute = 2;
        l.client_rate_limit_loopback = true;
    });
    let client = Client::new(ClientUrl::parse(&node.client_url().unwrap()).unwrap(), Duration::from_secs(10));
    let roster = Roster::new(vec![node.server_identity()]);
    let owner = conode_core::crypto::IdentityKeyPair::generate();
    let req = |data: &str| CreateChain {
        roster_toml: roster.to_toml(),
        base_height: 2,
        maximum_height: 8,
        owners: vec![owner.public().as_bytes().to_vec()],
        data: data.as_bytes().to_vec(),
    };
    node.runtime_handle().block_on(async {
        client.create_chain(&req("one")).await.unwrap();
        client.create_chain(&req("two")).await.unwrap();
        let err = client.create_chain(&req("three")).await.unwrap_err();
        let ClientError::Service { error, .. } = &err else { panic!("not a service error: {err}") };
        assert_eq!(error.code, ErrorCode::Unavailable, "{err}");
        let wait = error.number("retry_after_ms").expect("retry_after_ms");
        assert!((1..=30_000).contains(&wait), "{wait}");
        assert!(error.message.contains("new chains"), "{err}");
        // The same source's other requests go on.
        client.call("Status", "Request", vec![]).await.unwrap();
    });
    let svc = node.skipchain().unwrap();
    let genesis =
        node.runtime_handle().block_on(svc.create_chain(&roster, 2, 8, vec![owner.public()], b"in-process".to_vec()));
    assert!(genesis.is_ok(), "{genesis:?}");
}
