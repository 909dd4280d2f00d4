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
