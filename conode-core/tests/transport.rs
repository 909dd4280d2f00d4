//! Hostile or broken peers on the node port: a wrong key, plaintext, an oversized frame, a
//! half-open connection. Each is rejected or timed out, and the node keeps serving the others.

use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::{AddressOverrides, NodeAddress, NodeConfig};
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::{NetSettings, Network};
use conode_core::services::Tasks;
use conode_core::{NodeBuilder, NodeError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A dialing-only transport; its connections end when the returned task set is cancelled (dropping
/// it does not cancel).
fn client_net(settings: NetSettings) -> (Network, Tasks) {
    let tasks = Tasks::new();
    (Network::new(IdentityKeyPair::generate(), settings, AddressOverrides::default(), tasks.clone()).unwrap(), tasks)
}

fn quick() -> NetSettings {
    NetSettings {
        handshake_timeout: Duration::from_millis(500),
        dial_timeout: Duration::from_millis(500),
        ..NetSettings::default()
    }
}

#[test]
fn wrong_key_is_rejected() {
    let cluster = LocalCluster::new(2).unwrap();
    let mut impostor = cluster.roster().servers[0].clone();
    impostor.public = IdentityKeyPair::generate().public(); // expect another key at node 0's address
    let good = cluster.roster().servers[1].clone();
    cluster.runtime().block_on(async {
        let (net, _stop) = client_net(quick());
        let err = net.ping(&impostor, Duration::from_secs(2)).await.unwrap_err().to_string();
        assert!(err.contains("expected") && err.contains(&impostor.public.to_hex()), "{err}");
        net.ping(&good, Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn plaintext_oversized_and_half_open_connections_are_dropped() {
    let mut opts = ClusterOptions::new(2);
    opts.net =
        NetSettings { handshake_timeout: Duration::from_millis(400), max_frame: 64 * 1024, ..NetSettings::default() };
    let cluster = LocalCluster::with_options(opts).unwrap();
    let addr = cluster.node(0).node_addr().unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    cluster.runtime().block_on(async {
        // Plaintext on the TLS port: the node answers with a TLS alert or closes.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("plaintext connection not closed")
            .unwrap_or(0);
        assert!(n == 0 || buf[0] == 0x15, "expected a TLS alert or close, got {:?}", &buf[..n]);

        // Half-open: connect and never send; closed after the handshake timeout.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("half-open connection kept open")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(start.elapsed() >= Duration::from_millis(300));

        // Oversized frame from an authenticated peer: connection dropped, node still serves.
        let (net, _stop) = client_net(NetSettings::default());
        net.ping(&peer0, Duration::from_secs(5)).await.unwrap();
        let err =
            net.request(&peer0, "Net", "Ping", &[], vec![0u8; 128 * 1024], Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        net.ping(&peer0, Duration::from_secs(5)).await.unwrap();
    });
    // Node 1 still reaches node 0.
    let net1 = cluster.node(1).network().unwrap();
    cluster.runtime().block_on(net1.ping(&peer0, Duration::from_secs(5))).unwrap();
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, "busy");
    let mut node = NodeBuilder::new(config).data_dir(dir.path()).build().unwrap();
    let err = node.start().unwrap_err();
    assert!(matches!(err, NodeError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!node.is_running());
}

#[test]
fn address_overrides_redirect_dials() {
    let cluster = LocalCluster::new(1).unwrap();
    let mut member = cluster.roster().servers[0].clone();
    let real = member.address.clone();
    member.address = NodeAddress { host: "unreachable.invalid".into(), port: 1 };
    cluster.runtime().block_on(async {
        let (net, _stop) = client_net(quick());
        assert!(net.ping(&member, Duration::from_millis(800)).await.is_err());
        let mut o = AddressOverrides::default();
        o.insert(member.public, real);
        let (net, _stop2) = client_net(quick());
        net.set_overrides(o);
        net.ping(&member, Duration::from_secs(5)).await.unwrap();
    });
}

/// A member at a port nothing listens on (dials are refused), and that port.
fn refusing_peer() -> (conode_core::config::ServerIdentity, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let peer = conode_core::config::ServerIdentity {
        address: NodeAddress { host: "127.0.0.1".into(), port },
        public: IdentityKeyPair::generate().public(),
        description: "nothing listens".into(),
        url: None,
        services: Default::default(),
    };
    (peer, port)
}

/// Settings whose dial backoff (5 s at first) and probes outlast a test.
fn slow_backoff() -> NetSettings {
    NetSettings {
        backoff_min: Duration::from_secs(5),
        backoff_max: Duration::from_secs(10),
        probe_interval: Duration::from_secs(60),
        ..quick()
    }
}

/// Failed dials of `peer` that `net` counted.
fn dial_failures(net: &Network, peer: &conode_core::config::ServerIdentity) -> u64 {
    net.health().report().iter().find(|r| r.peer == peer.public).map_or(0, |r| r.dial_failures)
}

/// `conode_network_dial_failures` counts dials that failed, once each: requests that fail on the
/// dial backoff (no dial made) return the last dial's error and do not count again.
#[test]
fn each_failed_dial_counts_once() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (peer, port) = refusing_peer();
        let (net, _stop) = client_net(slow_backoff());
        let failures = || dial_failures(&net, &peer);
        for attempt in 0..3 {
            let err = net.ping(&peer, Duration::from_millis(300)).await.unwrap_err().to_string();
            assert!(err.contains(&port.to_string()), "attempt {attempt}: the error names the address: {err}");
            assert_eq!(failures(), 1, "attempt {attempt}: one dial was made");
        }
        assert!(net.health().down(&peer.public).is_some(), "a refused dial marks the peer down");
    });
}

/// A request told to dial a down peer now (`request_redial_now`: the last chance of a round that
/// cannot go on without it) dials at once, even while another request waits out the peer's dial
/// backoff: that one waits without holding the dial. Before, it held it for the whole backoff,
/// and a proposer's query of the members' slots waited up to its 2 s timeout for a member that
/// refuses at once: with a member down, every contended append cost seconds.
#[test]
fn a_request_told_to_redial_now_does_not_wait_behind_another_requests_backoff() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (peer, port) = refusing_peer();
        let (net, _stop) = client_net(slow_backoff());
        let failures = || dial_failures(&net, &peer);
        net.ping(&peer, Duration::from_millis(300)).await.unwrap_err();
        assert_eq!(failures(), 1);
        // A patient request: it waits for the backoff (5 s) to end before it dials again.
        let patient = net.request(&peer, "Status", "Request", &[], Vec::new(), Duration::from_secs(30));
        tokio::pin!(patient);
        assert!(futures_util::poll!(patient.as_mut()).is_pending());
        let t = Instant::now();
        let err = net
            .request_redial_now(&peer, "Status", "Request", &[], Vec::new(), Duration::from_secs(3))
            .await
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < Duration::from_secs(1), "the redial took {:?}: {err}", t.elapsed());
        assert!(err.contains(&port.to_string()) && err.contains("refused"), "{err}");
        assert_eq!(failures(), 2, "the redial dialed");
        // The patient request is still waiting (its backoff is not over): no dial of its own yet.
        assert!(futures_util::poll!(patient.as_mut()).is_pending());
        assert_eq!(failures(), 2);
    });
}

/// A down peer that no roster of this node names (only dialed, as the children an announcement
/// names are) is probed for `probe_give_up` at most and then forgotten, so made-up members cost
/// no probe forever; a member of the node's own rosters is probed until it answers. A forgotten
/// peer's next request tries it afresh.
#[test]
fn probes_of_peers_outside_the_nodes_rosters_give_up() {
    let cluster = LocalCluster::new(1).unwrap();
    let unreachable = |what: &str| {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        conode_core::config::ServerIdentity {
            address: NodeAddress { host: "127.0.0.1".into(), port },
            public: IdentityKeyPair::generate().public(),
            description: what.into(),
            url: None,
            services: Default::default(),
        }
    };
    let (made_up, member) = (unreachable("made up"), unreachable("member"));
    let settings = NetSettings {
        probe_interval: Duration::from_millis(20),
        probe_give_up: Duration::from_millis(300),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        ..quick()
    };
    cluster.runtime().block_on(async {
        let (net, _stop) = client_net(settings);
        net.admit([member.public]);
        for p in [&made_up, &member] {
            assert!(net.ping(p, Duration::from_millis(300)).await.is_err());
            assert!(net.health().down(&p.public).is_some());
        }
        assert!(net.is_admitted(&made_up.public) && !net.admission().is_kept(&made_up.public));
        let known =
            |p: &conode_core::config::ServerIdentity| net.health().report().into_iter().find(|r| r.peer == p.public);
        let deadline = Instant::now() + Duration::from_secs(20);
        while known(&made_up).is_some() {
            assert!(Instant::now() < deadline, "the probe of a made-up peer never gave up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The member is still down and still probed: its dial failures keep growing.
        let failures = known(&member).expect("the member was forgotten").dial_failures;
        assert!(net.health().down(&member.public).is_some());
        while known(&member).map_or(0, |r| r.dial_failures) <= failures {
            assert!(Instant::now() < deadline, "the member is no longer probed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The forgotten peer is tried afresh on its next request.
        let err = net.ping(&made_up, Duration::from_millis(300)).await.unwrap_err().to_string();
        assert!(err.contains(&made_up.address.port.to_string()), "{err}");
        assert!(net.health().down(&made_up.public).is_some());
    });
}
