//! The hardened edge as an operator sees it, on real `conode server` processes: strangers on the
//! node port cannot grow the node's memory or get peer-protocol answers, a flood of slow clients
//! does not stop `/ok` answering, a client-port TLS key that does not match its certificate stops
//! the start, and the limits come from private.toml's `[Limits]`.

use super::support::{conode, fails, Servers};
use conode_core::config::{NodeConfig, ServerIdentity};
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::frame::{self, Envelope, WIRE_VERSION};
use conode_core::network::tls::TlsIdentity;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn set_limits(private: &std::path::Path, table: &str) {
    let text = std::fs::read_to_string(private).unwrap();
    super::support::write_private(private, &format!("{text}\n[Limits]\n{table}\n"));
    NodeConfig::load(private).expect("limits parse");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A TLS connection to a node port with a fresh (unknown) identity.
async fn stranger_conn(
    target: &ServerIdentity,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = TlsIdentity::new(&IdentityKeyPair::generate()).unwrap();
    let cfg = tls.client_config(target.public).unwrap();
    let tcp = tokio::net::TcpStream::connect(target.address.host_port()).await?;
    let name = rustls::pki_types::ServerName::try_from("conode").unwrap();
    tokio_rustls::TlsConnector::from(Arc::<rustls::ClientConfig>::clone(&cfg)).connect(name, tcp).await
}

/// A frame of `declared` bytes whose first bytes route it to `service/protocol` (a request).
fn frame_start(declared: usize, service: &str, protocol: &str) -> Vec<u8> {
    let env = Envelope {
        version: WIRE_VERSION,
        kind: frame::Kind::Request as u32,
        id: 1,
        service: service.into(),
        protocol: protocol.into(),
        ..Default::default()
    };
    let mut out = (declared as u32).to_be_bytes().to_vec();
    let body = prost::Message::encode_to_vec(&env);
    out.extend_from_slice(&body);
    // The payload field (7, length-delimited) that claims the rest.
    let rest = declared - body.len();
    out.push(0x3a);
    let mut n = rest - 1 - varint_len(rest as u64);
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    out
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn one_node() -> (Servers, ServerIdentity) {
    let s = Servers::setup(1);
    let roster = conode_core::config::Roster::load(&s.roster).unwrap();
    let me = roster.servers[0].clone();
    (s, me)
}

#[test]
fn strangers_large_frames_do_not_grow_memory() {
    let (mut s, target) = one_node();
    s.start(0);
    let pid = s.pid(0);
    let rt = runtime();
    let before = rss_kib(pid);
    // The peak is sampled while the strangers send and hold their connections.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let held = rt.block_on(async {
        // 40 strangers each declare 16 MiB frames (junk and introductions) and send 15 MiB.
        let mut sends = Vec::new();
        for i in 0..40 {
            let target = target.clone();
            sends.push(tokio::spawn(async move {
                let Ok(mut c) = stranger_conn(&target).await else { return (0usize, None) };
                let (service, protocol) = if i % 2 == 0 { ("Cosi", "Announce") } else { ("Junk", "X") };
                let declared = if i % 4 < 2 { (16 << 20) - 1 } else { 6 << 20 };
                if c.write_all(&frame_start(declared, service, protocol)).await.is_err() {
                    return (0, None);
                }
                let chunk = vec![0u8; 64 * 1024];
                let mut sent = 0usize;
                let deadline = Instant::now() + Duration::from_secs(20);
                while sent < 15 << 20 && Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_secs(2), c.write_all(&chunk)).await {
                        Ok(Ok(())) => sent += chunk.len(),
                        _ => break,
                    }
                }
                // Keep the connection (and whatever the node holds for it) open.
                (sent, Some(c))
            }));
        }
        let mut total = 0;
        let mut held = Vec::new();
        for t in sends {
            if let Ok((sent, c)) = t.await {
                total += sent;
                held.extend(c);
            }
        }
        eprintln!("strangers pushed {} MiB in total", total >> 20);
        // Let the node take in what is still buffered before the peak is read.
        tokio::time::sleep(Duration::from_millis(500)).await;
        held
    });
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    drop(held);
    eprintln!("node RSS: {} MiB before, peak {} MiB during the stranger flood", before >> 10, peak >> 10);
    assert!(peak < before + 96 * 1024, "RSS grew from {before} KiB to {peak} KiB");
    // The node still serves its clients.
    assert!(super::support::http_ok(&s.nodes[0].client));
}

#[test]
fn strangers_get_no_peer_protocol_answers() {
    let (mut s, target) = one_node();
    s.start(0);
    runtime().block_on(async {
        let mut c = stranger_conn(&target).await.unwrap();
        let env = Envelope {
            version: WIRE_VERSION,
            kind: frame::Kind::Request as u32,
            id: 9,
            service: "Skipchain".into(),
            protocol: "Latest".into(),
            payload: vec![0x0a, 0x00],
            ..Default::default()
        };
        c.write_all(&frame::encode(&env)).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await.expect("not closed").unwrap_or(0);
        assert_eq!(n, 0, "a stranger got an answer");
        // The reachability ping still works for strangers (conode check).
        let net_tasks = conode_core::services::Tasks::new();
        let net = conode_core::network::Network::new(
            IdentityKeyPair::generate(),
            Default::default(),
            Default::default(),
            net_tasks.clone(),
        )
        .unwrap();
        net.ping(&target, Duration::from_secs(10)).await.unwrap();
        net_tasks.stop(Duration::from_secs(2)).await;
    });
}

#[test]
fn slow_clients_do_not_stop_ok() {
    let (mut s, _) = one_node();
    set_limits(
        &s.nodes[0].private,
        "ClientHeaderTimeoutMs = 1000\nClientMaxConnectionsPerAddress = 200\nMaxOpenFiles = 4096",
    );
    s.start(0);
    let client: std::net::SocketAddr = s.nodes[0].client.parse().unwrap();
    runtime().block_on(async {
        // 600 connections from 127.0.0.1 that send half a request and stall.
        let mut slow = Vec::new();
        for _ in 0..600 {
            if let Ok(mut c) = tokio::net::TcpStream::connect(client).await {
                let _ = c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await;
                slow.push(c);
            }
        }
        // /ok from another address answers quickly throughout.
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let start = Instant::now();
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let mut c = sock.connect(client).await.unwrap();
            c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut resp = Vec::new();
            tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut resp)).await.unwrap().unwrap();
            assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
            worst = worst.max(start.elapsed());
        }
        eprintln!("slowest /ok during the flood: {worst:?}");
        assert!(worst < Duration::from_millis(100), "/ok took {worst:?}");
        // The stalled connections are closed by the header deadline (or refused at the cap).
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut slow {
            let mut buf = [0u8; 512];
            let left = deadline.saturating_duration_since(Instant::now());
            let closed = matches!(tokio::time::timeout(left, c.read(&mut buf)).await, Ok(Ok(_) | Err(_)));
            assert!(closed, "a slow client was kept past the header deadline");
        }
    });
}

#[test]
fn mismatched_client_tls_pair_is_refused_at_start() {
    let s = Servers::setup(1);
    let folder = &s.nodes[0].folder;
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(folder.join("cert.pem"), a.cert.pem()).unwrap();
    super::support::write_private(&folder.join("key.pem"), &b.key_pair.serialize_pem());
    let private = &s.nodes[0].private;
    let text = std::fs::read_to_string(private).unwrap();
    let text = format!(
        "WebSocketTLSCertificate = \"{}\"\nWebSocketTLSCertificateKey = \"{}\"\n{text}",
        folder.join("cert.pem").display(),
        folder.join("key.pem").display()
    );
    super::support::write_private(private, &text);
    let err = fails(conode().arg("-c").arg(private).args(["server", "--allow-root"]));
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[test]
fn zero_limits_are_refused() {
    let s = Servers::setup(1);
    let private = &s.nodes[0].private;
    let text = std::fs::read_to_string(private).unwrap();
    super::support::write_private(private, &format!("{text}\n[Limits]\nClientIdleTimeoutMs = 0\n"));
    let err = fails(conode().arg("-c").arg(private).args(["server", "--allow-root"]));
    assert!(err.contains("Limits.ClientIdleTimeoutMs"), "{err}");
}
