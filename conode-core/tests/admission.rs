//! Peer admission on the node port: a stranger (a valid TLS identity in no roster the node knows)
//! gets only introductions (a reachability ping) within a few slots and short deadlines; once a
//! roster names it, it is served in full.

use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::AddressOverrides;
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::{NetError, NetSettings, Network};
use conode_core::services::Tasks;
use std::time::{Duration, Instant};

fn stranger() -> (Network, Tasks) {
    let tasks = Tasks::new();
    let s = NetSettings { dial_timeout: Duration::from_secs(2), ..NetSettings::default() };
    (Network::new(IdentityKeyPair::generate(), s, AddressOverrides::default(), tasks.clone()).unwrap(), tasks)
}

#[test]
fn strangers_get_pings_only_until_a_roster_names_them() {
    let cluster = LocalCluster::new(2).unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    let node0 = cluster.node(0).network().unwrap();
    cluster.runtime().block_on(async {
        let (net, tasks) = stranger();
        net.ping(&peer0, Duration::from_secs(5)).await.unwrap();
        let req = b"\x0a\x20".iter().copied().chain([0u8; 32]).collect::<Vec<u8>>();
        let err =
            net.request(&peer0, "Skipchain", "Latest", &[], req.clone(), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, NetError::Closed { .. }), "a stranger got an answer: {err}");
        let err = net.request(&peer0, "Beacon", "Partial", &[], vec![], Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, NetError::Closed { .. }), "a stranger got an answer: {err}");
        // Named by a roster: served in full (an answer, here "chain unknown").
        node0.admit([net.public_key()]);
        let reply = net.request(&peer0, "Skipchain", "Latest", &[], req, Duration::from_secs(5)).await;
        assert!(reply.is_ok(), "{reply:?}");
        tasks.stop(Duration::from_secs(2)).await;
    });
}

#[test]
fn strangers_have_few_slots_and_short_deadlines() {
    let mut opts = ClusterOptions::new(1);
    opts.net = NetSettings { max_strangers: 1, stranger_timeout: Duration::from_millis(500), ..NetSettings::default() };
    let cluster = LocalCluster::with_options(opts).unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    let node0 = cluster.node(0).network().unwrap();
    cluster.runtime().block_on(async {
        let (a, ta) = stranger();
        let (b, tb) = stranger();
        a.ping(&peer0, Duration::from_secs(5)).await.unwrap();
        // A holds the only slot: B is closed at once.
        let err = b.ping(&peer0, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, NetError::Closed { .. } | NetError::Timeout { .. }), "{err}");
        // A's idle connection is closed after the strangers' deadline, which frees the slot.
        let deadline = Instant::now() + Duration::from_secs(10);
        while node0.admission().free_stranger_slots() == 0 {
            assert!(Instant::now() < deadline, "idle stranger kept its slot");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.connection_count() > 0 {
            assert!(Instant::now() < deadline, "idle stranger connection kept open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.ping(&peer0, Duration::from_secs(5)).await.unwrap();
        ta.stop(Duration::from_secs(2)).await;
        tb.stop(Duration::from_secs(2)).await;
    });
}

#[test]
fn idle_peer_links_are_closed() {
    let mut opts = ClusterOptions::new(2);
    opts.net = NetSettings { idle_timeout: Duration::from_millis(300), ..NetSettings::default() };
    let cluster = LocalCluster::with_options(opts).unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    let (net0, net1) = (cluster.node(0).network().unwrap(), cluster.node(1).network().unwrap());
    net0.admit([net1.public_key()]);
    cluster.runtime().block_on(async {
        net1.ping(&peer0, Duration::from_secs(5)).await.unwrap();
        assert_eq!(net1.connection_count(), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while net0.connection_count() + net1.connection_count() > 0 {
            assert!(Instant::now() < deadline, "idle link kept open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The next request dials again.
        net1.ping(&peer0, Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn a_roster_a_node_signs_for_admits_its_members_and_survives_restart_through_its_chains() {
    let mut cluster = LocalCluster::new(4).unwrap();
    let keys: Vec<_> = cluster.roster().servers.iter().map(|s| s.public).collect();
    for i in 1..4 {
        let net = cluster.node(i).network().unwrap();
        assert!(!net.is_admitted(&keys[0]), "node {i} knew the roster before any request");
    }
    // The roster arrives with the request only. The root admits all of it; a member learns from its
    // (sparse) announcement the entries it carries: the sender and the member's own children.
    cluster.sign(0, b"admit me", conode_core::verify::Policy::Default, None).unwrap();
    let net0 = cluster.node(0).network().unwrap();
    assert!(keys.iter().all(|k| net0.is_admitted(k)), "the root did not admit the signing roster");
    for i in 1..4 {
        let net = cluster.node(i).network().unwrap();
        let others = (0..4).filter(|&j| j != i && net.is_admitted(&keys[j])).count();
        assert!(others >= 1, "node {i} admitted nobody who announced to it");
    }
    // A stored chain's roster is admitted again after a restart.
    let owner = IdentityKeyPair::generate();
    cluster.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap();
    cluster.stop(2).unwrap();
    cluster.restart(2).unwrap();
    let net = cluster.node(2).network().unwrap();
    assert!(keys.iter().all(|k| net.is_admitted(k)), "restarted node forgot its chain's roster");
}

/// A known peer gets at most `peer_requests_in_flight` handlers running at once on a node: the
/// requests beyond are answered "busy" at once (counted), other peers are served meanwhile, and
/// the slots come back when the handlers end.
#[test]
fn a_peer_cannot_run_unbounded_handlers_on_a_node() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut opts = ClusterOptions::new(1);
    opts.net = NetSettings { peer_requests_in_flight: 4, ..NetSettings::default() };
    let cluster = LocalCluster::with_options(opts).unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    let node0 = cluster.node(0).network().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (r, m, gate) = (running.clone(), most.clone(), release.clone());
    node0.register(
        "Slow",
        Arc::new(move |msg| {
            let (r, m, gate) = (r.clone(), m.clone(), gate.clone());
            Box::pin(async move {
                if msg.protocol == "Quick" {
                    return Ok(b"quick".to_vec());
                }
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await.map_err(|e| e.to_string())?.forget();
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(b"done".to_vec())
            })
        }),
    );
    cluster.runtime().block_on(async {
        let (a, ta) = stranger();
        let (b, tb) = stranger();
        node0.admit([a.public_key(), b.public_key()]);
        let t = Duration::from_secs(10);
        let flood = tokio::spawn({
            let (a, peer0) = (a.clone(), peer0.clone());
            async move {
                let calls = (0..50).map(|_| a.request(&peer0, "Slow", "Hold", &[], vec![0; 1024], t));
                futures_util::future::join_all(calls).await
            }
        });
        // 46 of A's requests are refused at once while 4 handlers hold.
        let deadline = Instant::now() + t;
        while node0.refused_requests() < 46 || running.load(Ordering::SeqCst) < 4 {
            assert!(
                Instant::now() < deadline,
                "refused {}, running {}",
                node0.refused_requests(),
                running.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another peer is served meanwhile; A itself is refused while at the cap.
        let reply = b.request(&peer0, "Slow", "Quick", &[], vec![], t).await.unwrap();
        assert_eq!(reply, b"quick");
        let err = a.request(&peer0, "Slow", "Quick", &[], vec![], t).await.unwrap_err();
        assert!(matches!(err, NetError::Busy { .. }), "{err}");
        // Pings are never capped: the link stays checked.
        a.ping(&peer0, t).await.unwrap();
        release.add_permits(4);
        let results = flood.await.unwrap();
        let done = results.iter().filter(|r| r.as_deref().ok() == Some(b"done".as_slice())).count();
        let busy = results.iter().filter(|r| matches!(r, Err(NetError::Busy { .. }))).count();
        assert_eq!((done, busy), (4, 46), "{results:?}");
        assert_eq!(most.load(Ordering::SeqCst), 4, "more handlers ran at once than allowed");
        assert_eq!(node0.refused_requests(), 47);
        // The slots came back.
        assert_eq!(a.request(&peer0, "Slow", "Quick", &[], vec![], t).await.unwrap(), b"quick");
        ta.stop(Duration::from_secs(2)).await;
        tb.stop(Duration::from_secs(2)).await;
    });
}

/// The bytes of one peer's running requests are capped too; a request larger than the cap is
/// still served when nothing else of that peer runs.
#[test]
fn a_peer_cannot_hold_unbounded_request_memory_on_a_node() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut opts = ClusterOptions::new(1);
    opts.net = NetSettings { peer_request_memory: 8 << 10, ..NetSettings::default() };
    let cluster = LocalCluster::with_options(opts).unwrap();
    let peer0 = cluster.roster().servers[0].clone();
    let node0 = cluster.node(0).network().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (r, gate) = (running.clone(), release.clone());
    node0.register(
        "Slow",
        Arc::new(move |_msg| {
            let (r, gate) = (r.clone(), gate.clone());
            Box::pin(async move {
                r.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.map_err(|e| e.to_string())?.forget();
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(b"done".to_vec())
            })
        }),
    );
    cluster.runtime().block_on(async {
        let (a, ta) = stranger();
        node0.admit([a.public_key()]);
        let t = Duration::from_secs(10);
        let first = tokio::spawn({
            let (a, peer0) = (a.clone(), peer0.clone());
            async move { a.request(&peer0, "Slow", "Hold", &[], vec![1; 5 << 10], t).await }
        });
        let deadline = Instant::now() + t;
        while running.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first request never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A second 5 KiB request would hold more than 8 KiB: refused at once.
        let err = a.request(&peer0, "Slow", "Hold", &[], vec![2; 5 << 10], t).await.unwrap_err();
        assert!(matches!(err, NetError::Busy { .. }) && err.to_string().contains("bytes"), "{err}");
        release.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), b"done");
        // Alone, a request larger than the cap is served.
        release.add_permits(1);
        assert_eq!(a.request(&peer0, "Slow", "Hold", &[], vec![3; 20 << 10], t).await.unwrap(), b"done");
        ta.stop(Duration::from_secs(2)).await;
    });
}
