//! `conode skipchain watch` and `conode beacon watch` against an in-process LocalCluster: one
//! verified JSON line per block (from the genesis) and per round (from the round asked for), and
//! clear refusals for a malformed genesis id and a node serving another beacon chain.

use crate::support::{conode, wait_until};
use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::beacon::messages::InitRequest;
use prost::Message;
use std::time::Duration;

fn lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect()
}

/// Three nodes, the client URL of node 1, and a chain with an owner (its genesis only).
fn cluster_with_a_chain() -> (LocalCluster, String, IdentityKeyPair, conode_core::verify::skipchain::SkipBlock) {
    let c = LocalCluster::new(3).unwrap();
    let url = c.client_url(1).unwrap();
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap();
    (c, url, owner, genesis)
}

#[test]
fn watch_prints_one_verified_line_per_block_and_per_round() {
    let (c, url, owner, genesis) = cluster_with_a_chain();
    let mut hashes = vec![hex::encode(&genesis.hash)];
    for i in 1..=3 {
        hashes.push(hex::encode(c.append(0, &owner, &genesis.hash, format!("b{i}").into_bytes()).unwrap().hash));
    }
    let g = hex::encode(&genesis.hash);
    let out = conode().args(["skipchain", "watch", "--genesis", &g, "--count", "4", "--url", &url]).output().unwrap();
    let got = lines(&out);
    assert_eq!(got.len(), 4);
    for (i, l) in got.iter().enumerate() {
        assert_eq!(l["index"], i as u64);
        assert_eq!(l["hash"], hashes[i].as_str());
        assert_eq!(l["verified"], true);
    }
    let out = conode()
        .args(["skipchain", "watch", "--genesis", &g, "--from", "2", "--count", "2", "--url", &url])
        .output()
        .unwrap();
    let got = lines(&out);
    assert_eq!(got.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 3]);

    let out = conode().args(["skipchain", "watch", "--genesis", "abc", "--url", &url]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--genesis"), "{}", String::from_utf8_lossy(&out.stderr));

    let req = InitRequest {
        roster_toml: c.roster().to_toml(),
        scheme: "pedersen-bls-chained".into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms: 2000,
        beacon_id: String::new(),
    };
    c.approve_beacon(&req).unwrap();
    let leader = c.client_url(0).unwrap();
    c.runtime()
        .block_on(conode_core::api::client::call(
            &leader,
            "Beacon",
            "Init",
            req.encode_to_vec(),
            Duration::from_secs(60),
        ))
        .unwrap();
    let hash = c.node(0).beacon().unwrap().chain_info().unwrap().hash_hex();
    let out = conode()
        .args(["beacon", "watch", "--from", "1", "--count", "3", "--url", &url, "--chain-hash", &hash])
        .output()
        .unwrap();
    let got = lines(&out);
    assert_eq!(got.iter().map(|l| l["round"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(got.iter().all(|l| l["verified"] == true && l["chain_hash"] == hash.as_str()));

    let other = "00".repeat(32);
    let out = conode().args(["beacon", "watch", "--url", &url, "--chain-hash", &other]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not 0000"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A watch whose reader goes away (`conode skipchain watch … | head -3`) ends quietly, with exit 0,
/// at its next line (it used to end with "error: Broken pipe").
#[test]
fn watch_ends_quietly_when_its_reader_goes() {
    let (_c, url, _owner, genesis) = cluster_with_a_chain();
    let g = hex::encode(&genesis.hash);
    let mut child = conode()
        .args(["skipchain", "watch", "--genesis", &g, "--url", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    wait_until("the watch ends after its reader has gone", Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
}
