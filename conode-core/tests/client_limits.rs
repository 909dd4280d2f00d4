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
