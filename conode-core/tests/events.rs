//! Node events and client streaming on LocalClusters: every subscriber sees each stored block and
//! beacon round once and in order; a stopped member shows as peer-down then peer-up; a subscriber
//! that does not keep up gets `Lagged`; `/Skipchain/Subscribe` and `/Beacon/Subscribe` deliver
//! verified items, survive a node restart by resubscribing from the next index without gaps, and
//! drop a client that stops reading (the node's memory does not grow with it).

use conode_core::api::client::Client;
use conode_core::api::subscribe::{subscribe_blocks, BeaconWatcher, BlockWatcher};
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::{NodeAddress, NodeConfig, Roster};
use conode_core::crypto::IdentityKeyPair;
use conode_core::events::{EventSubscriber, NodeEvent};
use conode_core::services::beacon::messages::InitRequest;
use conode_core::services::skipchain::messages::Append;
use conode_core::verify::beacon::Scheme;
use conode_core::verify::cosi::Policy;
use conode_core::NodeBuilder;
use prost::Message;
use std::time::{Duration, Instant};

/// Takes events until `done` says so (or fails after `secs`); returns them all.
fn collect_until(sub: &mut EventSubscriber, secs: u64, mut done: impl FnMut(&NodeEvent) -> bool) -> Vec<NodeEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; events so far: {out:?}");
        if let Some(e) = sub.next_event(left) {
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

fn blocks_of(events: &[NodeEvent], genesis: &[u8]) -> Vec<(u64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::BlockStored { chain, index, hash } if chain == genesis => Some((*index, hash.clone())),
            _ => None,
        })
        .collect()
}

fn client(c: &LocalCluster, i: usize) -> Client {
    Client::parse(&c.client_url(i).unwrap(), Duration::from_secs(10)).unwrap()
}

fn start_beacon(c: &LocalCluster) {
    let req = InitRequest {
        roster_toml: c.roster().to_toml(),
        scheme: Scheme::PedersenBlsChained.id().into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms: 2000,
        beacon_id: String::new(),
    };
    c.approve_beacon(&req).unwrap();
    let url = c.client_url(0).unwrap();
    c.runtime()
        .block_on(conode_core::api::client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60)))
        .unwrap();
}

#[test]
fn appends_and_beacon_rounds_arrive_in_order_once_per_subscriber_and_stream_verified() {
    let c = LocalCluster::new(3).unwrap();
    // Two subscribers on the leader, one on a member that receives blocks pushed by the leader.
    let mut subs = [c.node(0).events(), c.node(0).events(), c.node(1).events()];
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap();
    const N: u64 = 40;
    for i in 1..=N {
        c.append(0, &owner, &genesis.hash, format!("block {i}").into_bytes()).unwrap();
    }
    let store = c.node(0).skipchain().unwrap().store().clone();
    let expected: Vec<(u64, Vec<u8>)> = (0..=N).map(|i| (i, store.block_at(&genesis.hash, i).unwrap().hash)).collect();
    for (k, sub) in subs.iter_mut().enumerate() {
        let events = collect_until(sub, 30, |e| matches!(e, NodeEvent::BlockStored { index, .. } if *index == N));
        assert_eq!(blocks_of(&events, &genesis.hash), expected, "subscriber {k}: each block once, in order");
        if k < 2 {
            let signed = events.iter().filter(|e| matches!(e, NodeEvent::CosiRoundSigned { .. })).count();
            // A fast append's prepare is its link: one round (two when a member is slow).
            assert!(signed as u64 >= N, "leader: a round or two per append, saw {signed}");
        }
        assert!(!events.iter().any(|e| matches!(e, NodeEvent::Lagged { .. })));
    }

    // The same blocks over the client port, verified one by one from the genesis block.
    let mut watcher = BlockWatcher::from_genesis(client(&c, 1), &genesis.hash);
    for i in 0..=N {
        let b = c.runtime().block_on(watcher.next()).unwrap();
        assert_eq!((b.index, b.hash.clone()), expected[i as usize]);
    }

    // Beacon rounds: DKG phases, then rounds 1, 2, 3, … once each on every subscriber.
    start_beacon(&c);
    let info = c.node(0).beacon().unwrap().chain_info().unwrap();
    let mut beacons = BeaconWatcher::new(client(&c, 2), &info, 1).unwrap();
    for (k, sub) in subs.iter_mut().enumerate() {
        let events = collect_until(sub, 60, |e| matches!(e, NodeEvent::BeaconRoundStored { round, .. } if *round == 4));
        let rounds: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::BeaconRoundStored { chain_hash, round } => {
                    assert_eq!(chain_hash, &info.hash());
                    Some(*round)
                }
                _ => None,
            })
            .collect();
        assert_eq!(rounds, vec![1, 2, 3, 4], "subscriber {k}");
        let phases: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::DkgPhaseChanged { phase, .. } => Some(phase.as_str()),
                _ => None,
            })
            .collect();
        let at = |p: &str| phases.iter().position(|q| *q == p);
        assert!(
            at("deal") < at("response") && at("response") < at("justification") && at("deal").is_some(),
            "subscriber {k}: DKG phases in order: {phases:?}"
        );
    }
    for round in 1..=4 {
        let b = c.runtime().block_on(beacons.next()).unwrap();
        assert_eq!(b.round, round, "verified beacons in order from the requested round");
    }
}

#[test]
fn stopped_member_gives_peer_down_then_peer_up() {
    let mut c = LocalCluster::new(4).unwrap();
    let down = c.node(3).server_identity().public;
    let mut sub = c.node(0).events();
    c.stop(3).unwrap();
    // A round touches every member: the stopped one refuses the connection.
    c.sign(0, b"round with a member down", Policy::Default, Some(Duration::from_secs(2))).unwrap();
    let events = collect_until(&mut sub, 20, |e| matches!(e, NodeEvent::PeerDown { peer, .. } if *peer == down));
    assert!(!events.iter().any(|e| matches!(e, NodeEvent::PeerUp { peer } if *peer == down)));
    c.restart(3).unwrap();
    let events = collect_until(&mut sub, 30, |e| matches!(e, NodeEvent::PeerUp { peer } if *peer == down));
    let downs = events.iter().filter(|e| matches!(e, NodeEvent::PeerDown { peer, .. } if *peer == down)).count();
    assert_eq!(downs, 0, "no second peer-down before the peer-up: {events:?}");
    // A subscriber taken while the node was stopped sees the node's own lifecycle too.
    let mut life = c.node(3).events();
    c.stop(3).unwrap();
    c.restart(3).unwrap();
    let events = collect_until(&mut life, 10, |e| matches!(e, NodeEvent::NodeStarted { .. }));
    assert!(matches!(events.first(), Some(NodeEvent::NodeStopping)), "{events:?}");
}

#[test]
fn subscriber_that_falls_behind_gets_lagged_then_the_newest_events() {
    let mut opts = ClusterOptions::new(3);
    opts.event_capacity = 8;
    let c = LocalCluster::with_options(opts).unwrap();
    let mut slow = c.node(1).events();
    let mut fast = c.node(1).events();
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"g".to_vec()).unwrap();
    const N: u64 = 20;
    let mut seen = Vec::new();
    for _ in 1..=N {
        let b = c.append(0, &owner, &genesis.hash, b"x".to_vec()).unwrap();
        // The fast subscriber keeps up: it never lags.
        let events =
            collect_until(&mut fast, 20, |e| matches!(e, NodeEvent::BlockStored { index, .. } if *index == b.index));
        assert!(!events.iter().any(|e| matches!(e, NodeEvent::Lagged { .. })));
        seen.extend(blocks_of(&events, &genesis.hash).into_iter().map(|(i, _)| i));
    }
    assert_eq!(seen, (0..=N).collect::<Vec<_>>());
    assert!(slow.queued() <= 8, "a subscriber never holds more than the capacity");
    let Some(NodeEvent::Lagged { missed }) = slow.next_event(Duration::ZERO) else {
        panic!("the slow subscriber must be told it lagged")
    };
    assert!(missed >= N + 1 - 8, "missed {missed}");
    let rest: Vec<NodeEvent> = std::iter::from_fn(|| slow.next_event(Duration::ZERO)).collect();
    assert!(rest.len() <= 8);
    assert_eq!(blocks_of(&rest, &genesis.hash).last().map(|b| b.0), Some(N), "the newest events are kept");
}

#[test]
fn block_stream_resumes_after_a_node_restart_without_gaps() {
    let mut c = LocalCluster::new(4).unwrap();
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap();
    for _ in 1..=5 {
        c.append(0, &owner, &genesis.hash, b"before".to_vec()).unwrap();
    }
    let mut watcher = BlockWatcher::from_genesis(client(&c, 1), &genesis.hash);
    let mut got = Vec::new();
    for _ in 0..=5 {
        got.push(c.runtime().block_on(watcher.next()).unwrap().index);
    }
    c.stop(1).unwrap();
    for _ in 6..=10 {
        c.append(0, &owner, &genesis.hash, b"while down".to_vec()).unwrap();
    }
    c.restart(1).unwrap();
    for _ in 6..=10 {
        got.push(c.runtime().block_on(watcher.next()).unwrap().index);
    }
    for _ in 11..=12 {
        c.append(0, &owner, &genesis.hash, b"after".to_vec()).unwrap();
    }
    for _ in 11..=12 {
        got.push(c.runtime().block_on(watcher.next()).unwrap().index);
    }
    assert_eq!(got, (0..=12).collect::<Vec<_>>(), "every block once, in order, across the restart");
}

#[test]
fn stream_subscriber_that_stops_reading_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (node_l, client_l) = conode_core::cluster::allocate_port_pair().unwrap();
    let port = node_l.local_addr().unwrap().port();
    let mut config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, "single");
    config.limits.client_idle_timeout = Duration::from_secs(1);
    let mut node = NodeBuilder::new(config).data_dir(tmp.path()).listeners(node_l, client_l).build().unwrap();
    node.start().unwrap();
    let rt = node.runtime_handle();
    let chains = node.skipchain().unwrap();
    let owner = IdentityKeyPair::generate();
    let roster = Roster::new(vec![node.server_identity()]);
    let genesis = rt.block_on(chains.create_chain(&roster, 2, 12, vec![owner.public()], vec![])).unwrap();
    // 24 MiB of blocks: more than the kernel buffers between a reader that stops and the node.
    const N: u64 = 24;
    for i in 1..=N {
        let append = Append::signed(&owner, &genesis.hash, i, vec![i as u8; 1 << 20], None).unwrap();
        rt.block_on(chains.append(append)).unwrap();
    }
    let before = node.event_bus().subscribers();
    let url = node.client_url().unwrap();
    let mut sub = rt
        .block_on(subscribe_blocks(&Client::parse(&url, Duration::from_secs(10)).unwrap(), &genesis.hash, 0))
        .unwrap();
    // The subscription holds one bus subscriber while it runs…
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.event_bus().subscribers() == before {
        assert!(Instant::now() < deadline, "subscription never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // …and the node lets it go once the client took nothing for the idle timeout.
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.event_bus().subscribers() > before {
        assert!(Instant::now() < deadline, "a client that reads nothing was not dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reading now gives what was already in flight, then the end: never the whole chain.
    let mut items = 0;
    let end = loop {
        match rt.block_on(sub.next()) {
            Ok(Some(_)) => items += 1,
            other => break other,
        }
    };
    assert!(items < N + 1, "read {items} items: the stream was not cut");
    if let Err(e) = end {
        // When the close frame made it through, it names the reason.
        if let Some(code) = e.code() {
            assert_eq!(code, conode_core::client_api::ErrorCode::Unavailable, "{e}");
            assert!(e.to_string().contains(conode_core::api::subscribe::TOO_SLOW), "{e}");
        }
    }
    node.stop().unwrap();
}
