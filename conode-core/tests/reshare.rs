//! Beacon resharing on a LocalCluster (period 1 s): a chain goes from 4 to 5 members (a dealer
//! lies to the new member: it is complained about and left out, the honest dealers suffice) and
//! from 5 to 3 (a member of the old group is down and does not deal; the leader is the member that
//! joined in the first resharing). The chain hash and group key never change; every round across
//! both transitions is stored, chains, and verifies with the pure drand verifier from the chain
//! info drand clients read (`/info`); a member left out signs no more rounds and its old share's
//! partial is refused and does not verify against the new group.
//!
//! A leader that crashes between its Finish sends splits no group: with no Finish anywhere the
//! resharing aborts and the old group signs the transition round and after; with one member
//! holding it, it reaches every other (forwarded, or fetched by those it was not forwarded to) and
//! the whole new group signs from the transition round. The transition shows in `/status`,
//! `/metrics` and the node events.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::config::Roster;
use conode_core::events::NodeEvent;
use conode_core::services::beacon::messages::{InitRequest, PartialReply};
use conode_core::services::beacon::BeaconService;
use conode_core::services::dkg::reshare::{ReshareFetch, ReshareFinish, ReshareRequest, ReshareResponse};
use conode_core::services::dkg::Group;
use conode_core::verify::beacon::{digest, Beacon, ChainInfo, PreparedChain, Scheme};
use prost::Message;
use std::time::Duration;

fn beacon(cluster: &LocalCluster, i: usize) -> BeaconService {
    cluster.node(i).beacon().unwrap()
}

fn roster_of(cluster: &LocalCluster, nodes: &[usize]) -> Roster {
    Roster::new(nodes.iter().map(|i| cluster.roster().servers[*i].clone()).collect())
}

fn wait_round(cluster: &LocalCluster, i: usize, round: u64, secs: u64) -> Beacon {
    cluster
        .runtime()
        .block_on(beacon(cluster, i).wait_for_round(round, Duration::from_secs(secs)))
        .unwrap_or_else(|| panic!("member {i} did not store round {round}"))
}

fn reshare_call(
    cluster: &LocalCluster,
    leader: usize,
    nodes: &[usize],
    threshold: u32,
) -> Result<ReshareResponse, String> {
    // The operators of the other old members and of the new ones approve it; the leader's
    // operator asks for it.
    let members = roster_of(cluster, nodes).servers;
    let group = beacon(cluster, leader).group().ok_or("the leader runs no beacon group")?;
    for i in (0..cluster.len()).filter(|&i| i != leader && cluster.node(i).is_running()) {
        if group.index_of(&cluster.roster().servers[i].public).is_some() || nodes.contains(&i) {
            beacon(cluster, i).approve_reshare(&members, threshold).map_err(|e| e.to_string())?;
        }
    }
    let req = ReshareRequest {
        roster_toml: roster_of(cluster, nodes).to_toml(),
        threshold,
        phase_timeout_ms: 1500,
        transition_round: 0,
    };
    cluster.runtime().block_on(beacon(cluster, leader).reshare(req)).map_err(|e| e.to_string())
}

fn reshare(cluster: &LocalCluster, leader: usize, nodes: &[usize], threshold: u32) -> ReshareResponse {
    reshare_call(cluster, leader, nodes, threshold).unwrap_or_else(|e| panic!("reshare to {nodes:?}: {e}"))
}

/// Starts a 4-member chain (period 1 s, threshold 3) on members 0..4 of a 5-node cluster.
fn four_member_chain() -> LocalCluster {
    let cluster = start_four_member_chain();
    wait_round(&cluster, 0, 2, 10);
    cluster
}

/// Five nodes; a chained beacon of the first four (threshold 3, 1 s rounds) is being set up.
fn start_four_member_chain() -> LocalCluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = LocalCluster::new(5).unwrap();
    let init = InitRequest {
        roster_toml: roster_of(&cluster, &[0, 1, 2, 3]).to_toml(),
        scheme: Scheme::PedersenBlsChained.id().into(),
        period_secs: 1,
        threshold: 3,
        phase_timeout_ms: 1500,
        genesis_delay_ms: 2000,
        ..Default::default()
    };
    cluster.approve_beacon(&init).unwrap();
    let url = cluster.client_url(0).unwrap();
    let call = client::call(&url, "Beacon", "Init", init.encode_to_vec(), Duration::from_secs(60));
    cluster.runtime().block_on(call).unwrap();
    cluster
}

fn http_get(cluster: &LocalCluster, i: usize, path: &str) -> String {
    let base = cluster.client_url(i).unwrap().replace("ws://", "http://");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::get(format!("{base}{path}")).await.unwrap().text().await.unwrap() })
}

/// The value of the sample `name` (exact series text) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// The beacon transition events queued on `events`.
fn transition_events(events: &mut conode_core::events::EventSubscriber) -> Vec<conode_core::events::NodeEvent> {
    std::iter::from_fn(|| events.try_next()).filter(|e| e.kind().starts_with("beacon_transition")).collect()
}

/// Every round 1..=latest stored on member `i` verifies with `info` and chains; returns latest.
fn verify_stored_chain(cluster: &LocalCluster, i: usize, info: &ChainInfo) -> u64 {
    let b = beacon(cluster, i);
    let latest = b.stats().latest_round;
    let mut prev = info.genesis_seed.clone();
    for r in 1..=latest {
        let bc = b.get(r).unwrap_or_else(|| panic!("member {i} lacks round {r} (latest {latest})"));
        info.verify(&bc).unwrap_or_else(|e| panic!("member {i} round {r}: {e}"));
        assert_eq!(bc.previous_signature.as_deref(), Some(prev.as_slice()), "member {i} round {r} does not chain");
        prev = bc.signature.clone();
    }
    latest
}

/// drand's chain info as a drand client reads it from member `i`'s `/info`.
fn drand_info(cluster: &LocalCluster, i: usize) -> ChainInfo {
    let base = cluster.client_url(i).unwrap().replace("ws://", "http://");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = rt.block_on(async { reqwest::get(format!("{base}/info")).await.unwrap().text().await.unwrap() });
    ChainInfo::from_drand_json(&body).unwrap_or_else(|e| panic!("/info of member {i}: {e}: {body}"))
}

#[test]
fn a_chain_reshares_4_to_5_to_3_keeping_its_hash_and_every_round() {
    let mut cluster = start_four_member_chain();
    let info = beacon(&cluster, 0).chain_info().unwrap();
    let first = beacon(&cluster, 0).group().unwrap();
    wait_round(&cluster, 0, 2, 10);

    // 4 → 5 (threshold 3 → 3), led by member 1; dealer 2 lies to the new member 4.
    beacon(&cluster, 2).corrupt_reshare_deals_to(4);
    let r1 = reshare(&cluster, 1, &[0, 1, 2, 3, 4], 3);
    let t1 = r1.transition_round;
    assert_eq!(r1.chain_hash, info.hash_hex());
    assert_eq!(r1.qualified, vec![0, 1, 3], "the lying dealer must be left out: {:?}", r1.log);
    assert_eq!(r1.confirmed, 5, "{:?}", r1.log);
    assert!(r1.log.iter().any(|l| l.contains("qualified dealers [0, 1, 3]")), "{:?}", r1.log);
    let g5 = Group::from_toml(&r1.group_toml).unwrap();
    assert_eq!((g5.nodes.len(), g5.threshold, g5.first_round()), (5, 3, t1));
    assert_eq!(g5.public_key(), first.public_key());
    assert_eq!(g5.genesis_seed(), first.genesis_seed());
    // The new member syncs the chain before t1 and signs from t1 on.
    for i in 0..5 {
        wait_round(&cluster, i, t1 + 2, 20);
        let b = beacon(&cluster, i);
        assert_eq!(b.chain_info().unwrap().hash(), info.hash(), "member {i}");
        assert_eq!(b.group().unwrap(), g5, "member {i} did not switch to the 5-member group");
    }
    assert_eq!(beacon(&cluster, 4).share_index(), Some(4));

    // 5 → 3 (threshold 3 → 2) with member 3 down (it does not deal), led by the new member 4.
    cluster.stop(3).unwrap();
    let r2 = reshare(&cluster, 4, &[4, 2, 0], 2);
    let t2 = r2.transition_round;
    assert!(t2 > t1 + 2);
    assert_eq!(r2.chain_hash, info.hash_hex());
    assert_eq!(r2.qualified.len(), 3, "{:?}", r2.log);
    assert!(!r2.qualified.contains(&3));
    assert_eq!(r2.confirmed, 3, "{:?}", r2.log);
    let g3 = Group::from_toml(&r2.group_toml).unwrap();
    assert_eq!((g3.nodes.len(), g3.threshold, g3.first_round()), (3, 2, t2));
    assert_eq!(g3.genesis_seed(), first.genesis_seed());
    for i in [0, 2, 4] {
        wait_round(&cluster, i, t2 + 3, 20);
        assert_eq!(beacon(&cluster, i).group().unwrap(), g3, "member {i} did not switch to the 3-member group");
    }
    assert_eq!(beacon(&cluster, 4).share_index(), Some(0));
    assert_eq!(beacon(&cluster, 0).share_index(), Some(2));

    // What a drand client sees: the same chain info (hash) from a member that joined late, and
    // every round from genesis through both transitions verifies and chains, none missing.
    let client_info = drand_info(&cluster, 4);
    assert_eq!(client_info.hash(), info.hash());
    for i in [0, 2, 4] {
        let latest = verify_stored_chain(&cluster, i, &client_info);
        assert!(latest >= t2 + 3);
    }

    // Member 1 was left out at t2: it signs no round from t2 on, the new group refuses its
    // partial, and its old share's partial does not verify against the new group's key share.
    let latest = beacon(&cluster, 0).stats().latest_round;
    assert!(beacon(&cluster, 1).stats().latest_round < latest, "a member left out kept producing");
    let prev = beacon(&cluster, 0).get(latest).unwrap().signature;
    let p = beacon(&cluster, 1).partial_anyway(latest + 1, Some(prev.clone())).unwrap();
    let old_index = p.index;
    let net = cluster.node(1).network().unwrap();
    let to = cluster.roster().servers[0].clone();
    let sent = cluster.runtime().block_on(net.request(
        &to,
        "Beacon",
        "Partial",
        &(latest + 1).to_be_bytes(),
        p.encode_to_vec(),
        Duration::from_secs(5),
    ));
    let err = sent.map(|r| PartialReply::decode(r.as_slice())).expect_err("the partial of a removed member");
    assert!(err.to_string().contains("not a member of the group"), "{err}");
    let msg = digest(Scheme::PedersenBlsChained, latest + 1, Some(&prev));
    for idx in 0..3 {
        let share_key = g3.public_poly.public_share_bytes(idx).unwrap();
        let k = PreparedChain::from_public_key(Scheme::PedersenBlsChained, &share_key).unwrap();
        assert!(k.verify_message(&msg, &p.partial).is_err(), "old share {old_index} still signs as new member {idx}");
    }
    let st = beacon(&cluster, 1).transition_status();
    assert_eq!((st.state.as_str(), st.round, st.new_members), ("retired", t2, 3), "{st:?}");

    assert!(beacon(&cluster, 1).signs_round(t2 - 1) && !beacon(&cluster, 1).signs_round(t2));

    // Once it stored its last round (t2 − 1), the removed member erased its share from disk: a
    // restart runs no chain from it (it cannot take its old share up again), keeps the rounds it
    // stored, and shows it left at t2.
    wait_round(&cluster, 1, t2 - 1, 10);
    cluster.stop(1).unwrap();
    cluster.restart(1).unwrap();
    let b1 = beacon(&cluster, 1);
    assert!(b1.group().is_none() && b1.share_index().is_none(), "a removed member resurrected its old share");
    assert!(!b1.signs_round(t2) && !b1.signs_round(latest + 1));
    assert!(b1.get(t2 - 1).is_some_and(|b| client_info.verify(&b).is_ok()));
    let st = b1.transition_status();
    assert_eq!((st.state.as_str(), st.round), ("retired", t2), "{st:?}");
}

#[test]
fn a_leader_that_crashes_between_finish_sends_splits_no_group() {
    let mut cluster = four_member_chain();
    let info = beacon(&cluster, 0).chain_info().unwrap();
    let first = beacon(&cluster, 0).group().unwrap();
    let key = |i: usize| cluster.roster().servers[i].public;
    let mut events0 = cluster.node(0).events();

    // 1. The leader (member 1) sends its Finish to no one and stops: nobody stages; the resharing
    // aborts everywhere before T and the old group signs T and after, none missing.
    beacon(&cluster, 1).reshare_finish_only_to([]);
    let err = reshare_call(&cluster, 1, &[0, 1, 2, 3, 4], 3).expect_err("the faulty leader reports no success");
    assert!(err.contains("leader stopped"), "{err}");
    beacon(&cluster, 1).clear_reshare_faults();
    let st = beacon(&cluster, 0).transition_status();
    assert_eq!(st.state, "running", "{st:?}");
    assert_eq!((st.old_members, st.new_members), (4, 5));
    let t1 = st.round;
    // Members echoing garbage change nothing: a Finish not signed by the leader, bytes that are
    // no Finish, a Finish of an unknown session are refused; a Fetch finds no Finish.
    let net3 = cluster.node(3).network().unwrap();
    let to2 = cluster.roster().servers[2].clone();
    let session = hex::decode(&st.session).unwrap();
    let send = |protocol: &str, body: Vec<u8>| {
        let call = net3.request(&to2, "Reshare", protocol, &session, body, Duration::from_secs(5));
        cluster.runtime().block_on(call).map(|_| ()).map_err(|e| e.to_string())
    };
    let forged = ReshareFinish {
        session: session.clone(),
        dealers: vec![0, 2, 3],
        signature: vec![1; 64],
        ..Default::default()
    };
    let e = send("Finish", forged.encode_to_vec()).expect_err("a forged Finish");
    assert!(e.contains("bad signature"), "{e}");
    let e = send("Finish", vec![0xff; 40]).expect_err("garbage");
    assert!(e.contains("resharing message from"), "{e}");
    let e = send("Finish", ReshareFinish { session: vec![7; 32], ..forged.clone() }.encode_to_vec())
        .expect_err("unknown session");
    assert!(e.contains("unknown resharing session"), "{e}");
    let e = send("Fetch", ReshareFetch { session: session.clone() }.encode_to_vec()).expect_err("nothing to fetch");
    assert!(e.contains("no Finish"), "{e}");
    assert_eq!(beacon(&cluster, 2).transition_status().state, "running");
    for i in 0..4 {
        wait_round(&cluster, i, t1 + 1, 20);
        let st = beacon(&cluster, i).transition_status();
        assert!(st.state == "aborted" || i == 1, "member {i}: {st:?}");
        assert_eq!(beacon(&cluster, i).group().unwrap(), first, "member {i} left the old group");
    }
    assert!(beacon(&cluster, 4).group().is_none(), "the new member installed a group without a Finish");
    assert_eq!(beacon(&cluster, 4).transition_status().state, "aborted");
    let aborted = transition_events(&mut events0);
    assert!(
        matches!(aborted.as_slice(), [NodeEvent::BeaconTransitionAborted { round, .. }] if *round == t1),
        "{aborted:?}"
    );
    let status: serde_json::Value = serde_json::from_str(&http_get(&cluster, 2, "/status")).unwrap();
    assert_eq!(status["BeaconTransition"]["state"], "aborted", "{status}");
    assert_eq!(status["BeaconTransition"]["round"], t1.to_string(), "{status}");

    // 2. The leader sends its Finish to member 0 only and crashes; member 0 forwards it to
    // member 2 only, and member 2 to no one: members 3 (restarted meanwhile) and 4 must fetch it. Every member stages
    // the same new group and it signs from T on (the crashed leader's old share is not needed).
    beacon(&cluster, 1).reshare_finish_only_to([key(0)]);
    beacon(&cluster, 0).reshare_forward_only_to([key(2)]);
    for i in [2, 3, 4] {
        beacon(&cluster, i).reshare_forward_only_to([]);
    }
    let err = reshare_call(&cluster, 1, &[0, 1, 2, 3, 4], 3).expect_err("the faulty leader reports no success");
    assert!(err.contains("leader stopped"), "{err}");
    cluster.stop(1).unwrap();
    // Member 3 restarts before it has the Finish: it resumes the session from storage (its deals
    // included) and fetches the Finish.
    cluster.stop(3).unwrap();
    cluster.restart(3).unwrap();
    let st = beacon(&cluster, 0).transition_status();
    assert_eq!(st.state, "staged", "{st:?}");
    assert_eq!(st.detail, "from the leader");
    let t2 = st.round;
    assert!(t2 > t1 + 1);
    let m = http_get(&cluster, 0, "/metrics");
    assert_eq!(metric(&m, "conode_beacon_transition_round"), t2 as f64, "{m}");
    assert!(m.contains("conode_beacon_transition_state{state=\"staged\"} 1"), "{m}");
    let staged = transition_events(&mut events0);
    assert!(
        matches!(staged.as_slice(), [NodeEvent::BeaconTransitionStaged { round, members: 5, in_new_group: true, .. }] if *round == t2),
        "{staged:?}"
    );
    let mut group = None;
    for i in [0, 2, 3, 4] {
        wait_round(&cluster, i, t2 + 2, 20);
        let g = beacon(&cluster, i).group().unwrap();
        assert_eq!((g.nodes.len(), g.threshold, g.first_round()), (5, 3, t2), "member {i} did not switch");
        assert_eq!(g.public_key(), first.public_key());
        assert_eq!(*group.get_or_insert_with(|| g.clone()), g, "member {i} computed another group");
        let st = beacon(&cluster, i).transition_status();
        assert_eq!((st.state.as_str(), st.round, st.new_members), ("switched", t2, 5), "member {i}: {st:?}");
    }
    assert!(beacon(&cluster, 2).transition_status().detail.starts_with("forwarded by"));
    let st = beacon(&cluster, 3).transition_status();
    assert!(st.detail.starts_with("fetched from"), "member 3: {st:?}");
    // Member 4 fetches it too, unless member 3 (its forwarding fault gone with the restart)
    // forwarded it first.
    let st = beacon(&cluster, 4).transition_status();
    assert!(st.detail.starts_with("fetched from") || st.detail.starts_with("forwarded by"), "member 4: {st:?}");
    assert_eq!(beacon(&cluster, 4).share_index(), Some(4));
    // With the leader down, only the new group can have signed T and after: members 0, 2 and 3
    // hold no old share any more, and the old threshold is 3.
    let switched = transition_events(&mut events0);
    assert!(
        matches!(switched.as_slice(), [NodeEvent::BeaconTransitionSwitched { round, members: 5 }] if *round == t2),
        "{switched:?}"
    );
    let m = http_get(&cluster, 0, "/metrics");
    assert_eq!(metric(&m, "conode_beacon_transition_round"), 0.0, "{m}");
    assert_eq!(metric(&m, "conode_beacon_transitions_total"), 1.0, "{m}");
    let status: serde_json::Value = serde_json::from_str(&http_get(&cluster, 3, "/status")).unwrap();
    assert_eq!(status["BeaconTransition"]["state"], "switched", "{status}");
    assert_eq!(status["BeaconTransition"]["new_members"], "5", "{status}");

    // What a drand client sees: the same chain, every round across both T verifies and chains.
    let client_info = drand_info(&cluster, 4);
    assert_eq!(client_info.hash(), info.hash());
    for i in [0, 2, 3, 4] {
        assert!(verify_stored_chain(&cluster, i, &client_info) >= t2 + 2);
    }
}

/// A resharing hands the group's secret to the new members, so no single member (and no client of
/// a member's port) may start one: each old member deals only in a resharing its own operator
/// approved, to exactly those members with exactly that threshold (or one its network decided),
/// and a new member takes the group only on the same terms.
#[test]
fn a_resharing_needs_the_approval_of_the_old_members() {
    use conode_core::admin::{request_approve_reshare, request_reshare, socket_path};
    let cluster = four_member_chain();
    let members = roster_of(&cluster, &[0, 1, 2, 3, 4]).servers;
    let req = ReshareRequest {
        roster_toml: roster_of(&cluster, &[0, 1, 2, 3, 4]).to_toml(),
        threshold: 3,
        phase_timeout_ms: 1500,
        transition_round: 0,
    };
    let none_staged = |cluster: &LocalCluster| {
        for i in 0..5 {
            let st = beacon(cluster, i).transition_status();
            assert!(!["staged", "switched", "retiring"].contains(&st.state.as_str()), "member {i}: {st:?}");
        }
    };
    // The client port refuses it, whoever asks.
    let url = cluster.client_url(1).unwrap();
    let call = client::call(&url, "Beacon", "Reshare", req.encode_to_vec(), Duration::from_secs(30));
    let err = cluster.runtime().block_on(call).unwrap_err().to_string();
    assert!(err.contains("operator action"), "{err}");
    none_staged(&cluster);

    // Member 1's operator alone (or a Byzantine member 1) asks for it: the other old members
    // refuse to take part (every member of the new group must).
    let refused = |cluster: &LocalCluster| {
        let err = cluster.runtime().block_on(beacon(cluster, 1).reshare(req.clone())).unwrap_err().to_string();
        assert!(err.contains("did not accept"), "{err}");
        none_staged(cluster);
    };
    refused(&cluster);

    // Members 0, 2 and 3 approved the same members with another threshold: still refused.
    for i in [0, 2, 3] {
        beacon(&cluster, i).approve_reshare(&members, 4).unwrap();
    }
    refused(&cluster);
    // A threshold below the minimum or above the members is no approval at all.
    assert!(beacon(&cluster, 2).approve_reshare(&members, 2).is_err());
    assert!(beacon(&cluster, 2).approve_reshare(&members, 6).is_err());
    assert!(beacon(&cluster, 2).approve_reshare(&[members[0].clone(), members[0].clone()], 0).is_err());

    // Members 2 and 3 approve exactly this one, member 0 another roster: still refused.
    for i in [2, 3] {
        beacon(&cluster, i).approve_reshare(&members, 3).unwrap();
    }
    beacon(&cluster, 0).approve_reshare(&members[..4], 3).unwrap();
    refused(&cluster);

    // Through the admin sockets (what `conode beacon reshare [--approve-only]` sends): a bad
    // request is refused by name; member 0's operator approves it (threshold 0: the minimum, 3),
    // member 1's leads it, and the resharing goes through.
    let socket = |i: usize| socket_path(cluster.node(i).data_dir(), &cluster.node(i).config().node_id());
    let bad = ReshareRequest { roster_toml: "x".into(), ..req.clone() };
    let err = request_approve_reshare(&socket(0), &bad).unwrap_err().to_string();
    assert!(err.contains("roster_toml"), "{err}");
    let approved = request_approve_reshare(&socket(0), &ReshareRequest { threshold: 0, ..req.clone() }).unwrap();
    assert_eq!((approved.members, approved.threshold), (5, 3));
    // Every old member approved, but the new member 4 (a fresh node) did not: it stays out, so
    // no one takes the new group.
    let err = request_reshare(&socket(1), &req).unwrap_err().to_string();
    assert!(err.contains("did not accept"), "{err}");
    none_staged(&cluster);
    request_approve_reshare(&socket(4), &req).unwrap();
    let done = request_reshare(&socket(1), &req).unwrap();
    assert_eq!((done.participants, done.confirmed), (5, 5), "{done:?}");
    for i in 0..5 {
        let st = beacon(&cluster, i).transition_status();
        assert_eq!((st.state.as_str(), st.round), ("staged", done.transition_round), "member {i}: {st:?}");
    }
}
