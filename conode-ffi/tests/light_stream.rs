//! The light client's blocking subscriptions (what Kotlin and Swift call `nextBlock` /
//! `nextBeacon`) against a LocalCluster: blocks arrive verified and in order from the genesis,
//! a quiet chain times out with nothing, the subscription survives a node restart without gaps,
//! and beacons arrive verified from the round asked for.

use conode::light_client::ConodeClient;
use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::beacon::messages::InitRequest;
use prost::Message;
use std::time::Duration;

#[test]
fn next_block_and_next_beacon_verify_and_survive_a_restart() {
    let mut c = LocalCluster::new(4).unwrap();
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"g".to_vec()).unwrap();
    for _ in 1..=3 {
        c.append(0, &owner, &genesis.hash, b"x".to_vec()).unwrap();
    }
    let client = ConodeClient::new(c.client_url(1).unwrap(), 5000).unwrap();
    let sub = client.clone().subscribe_blocks(hex::encode(&genesis.hash)).unwrap();
    let mut got = Vec::new();
    for _ in 0..=3 {
        got.push(sub.next_block(10_000).unwrap().expect("a block").index);
    }
    assert!(sub.next_block(200).unwrap().is_none(), "nothing new: times out");
    c.stop(1).unwrap();
    c.append(0, &owner, &genesis.hash, b"while down".to_vec()).unwrap();
    c.restart(1).unwrap();
    c.append(0, &owner, &genesis.hash, b"after".to_vec()).unwrap();
    while got.len() < 6 {
        if let Some(b) = sub.next_block(10_000).unwrap() {
            assert_eq!(b.genesis, hex::encode(&genesis.hash));
            got.push(b.index);
        }
    }
    assert_eq!(got, (0..=5).collect::<Vec<_>>());

    let bad = client.clone().subscribe_blocks("zz".into());
    assert!(bad.is_err());

    let req = InitRequest {
        roster_toml: c.roster().to_toml(),
        scheme: "bls-unchained-g1-rfc9380".into(),
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
    let hash = c.node(0).beacon().unwrap().chain_info().unwrap().hash_hex();
    let beacons = client.subscribe_beacons(Some(hash.clone()), 1).unwrap();
    for round in 1..=2 {
        let b = beacons.next_beacon(20_000).unwrap().expect("a beacon");
        assert_eq!((b.round, b.chain_hash.as_str()), (round, hash.as_str()));
    }
}
