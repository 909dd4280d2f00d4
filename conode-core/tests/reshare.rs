//! Beacon resharing on a LocalCluster (period 1 s): a chain goes from 4 to 5 members (a dealer
//! lies to the new member: it is complained about and left out, the honest dealers suffice) and
//! from 5 to 3 (a member of the old group is down and does not deal; the leader is the member that
//! joined in the first resharing). The chain hash and group key never change; every round across
//! both transitions is stored, chains, and verifies with the pure drand verifier from the chain
//! info drand clients read (`/info`); a member left out signs no more rounds and its old share's
//! partial is refused and does not verify against the new group.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::config::Roster;
use conode_core::services::beacon::messages::{InitRequest, PartialReply};
use conode_core::services::beacon::BeaconService;
use conode_core::services::dkg::reshare::{ReshareRequest, ReshareResponse};
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

fn reshare(cluster: &LocalCluster, leader: usize, nodes: &[usize], threshold: u32) -> ReshareResponse {
    let req = ReshareRequest {
        roster_toml: roster_of(cluster, nodes).to_toml(),
        threshold,
        phase_timeout_ms: 1500,
        transition_round: 0,
    };
    let url = cluster.client_url(leader).unwrap();
    let call = client::call(&url, "Beacon", "Reshare", req.encode_to_vec(), Duration::from_secs(30));
    let reply = cluster.runtime().block_on(call).unwrap_or_else(|e| panic!("reshare to {nodes:?}: {e}"));
    ReshareResponse::decode(reply.as_slice()).unwrap()
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut cluster = LocalCluster::new(5).unwrap();
    let init = InitRequest {
        roster_toml: roster_of(&cluster, &[0, 1, 2, 3]).to_toml(),
        scheme: Scheme::PedersenBlsChained.id().into(),
        period_secs: 1,
        threshold: 3,
        phase_timeout_ms: 1500,
        genesis_delay_ms: 2000,
        ..Default::default()
    };
    let url = cluster.client_url(0).unwrap();
    let call = client::call(&url, "Beacon", "Init", init.encode_to_vec(), Duration::from_secs(60));
    cluster.runtime().block_on(call).unwrap();
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
}
