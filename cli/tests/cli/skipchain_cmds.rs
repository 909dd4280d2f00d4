//! `conode skipchain create | append | get | update | verify` round trip against four `conode
//! server` processes: owner key file handling, appends (one with a roster change), blocks read back
//! from other members, proofs saved and verified offline, tampered proofs and non-owners refused.

use crate::support::{conode, fails, json, ok, wait_until, write_private, Servers};
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::skipchain::messages::Proof;
use prost::Message;
use std::process::Command;
use std::time::Duration;

fn sc(servers: &Servers, args: &[&str]) -> Command {
    let mut c = conode();
    c.arg("skipchain").args(args).arg("--roster").arg(&servers.roster);
    c
}

#[test]
fn skipchain_round_trip_with_owner_key() {
    let mut servers = Servers::setup(4);
    servers.start_all();
    let key = servers.path("owner.toml");
    let key_s = key.to_str().unwrap();

    // Open signing is off unless asked for.
    let err = fails(conode().args(["sign", "--message", "x"]).arg("--roster").arg(&servers.roster));
    assert!(err.contains("open signing is disabled"), "{err}");

    let created = json(&ok(&mut sc(
        &servers,
        &["create", "--key", key_s, "--base-height", "2", "--max-height", "4", "--data", "genesis"],
    )));
    assert_eq!(created["index"], 0);
    assert_eq!(created["key_created"], true);
    assert_eq!(created["members"], 4);
    let genesis = created["genesis"].as_str().unwrap().to_string();
    assert_eq!(genesis.len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let key_bytes = std::fs::read(&key).unwrap();

    // A second chain with the same key file reuses it.
    let second = json(&ok(&mut sc(&servers, &["create", "--key", key_s, "--node", "1"])));
    assert_eq!(second["key_created"], false);
    assert_eq!(second["owner"], created["owner"]);
    assert_ne!(second["genesis"], created["genesis"]);
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes, "the key file was rewritten");

    let mut hashes = vec![genesis.clone()];
    for i in 1..=5 {
        let out = json(&ok(&mut sc(
            &servers,
            &["append", "--key", key_s, "--genesis", &genesis, "--data", &format!("block {i}")],
        )));
        assert_eq!(out["index"], i, "{out}");
        assert_eq!(out["genesis"], genesis.as_str());
        hashes.push(out["hash"].as_str().unwrap().to_string());
    }

    // A group-readable key file is refused (and left alone).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = fails(&mut sc(&servers, &["append", "--key", key_s, "--genesis", &genesis, "--data", "nope"]));
        assert!(err.contains("owner.toml") && err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // A non-owner's append is refused by the cothority.
    let stranger = servers.path("stranger.toml");
    let k = IdentityKeyPair::generate();
    write_private(
        &stranger,
        &format!("Public = \"{}\"\nPrivate = \"{}\"\n", k.public().to_hex(), k.secret_hex().as_str()),
    );
    let err = fails(&mut sc(
        &servers,
        &["append", "--key", stranger.to_str().unwrap(), "--genesis", &genesis, "--data", "forged"],
    ));
    assert!(err.contains("not an owner"), "{err}");

    // Block 6 hands the chain to members 0..2 (the old roster signs the link).
    let three = servers.path("three.toml");
    let full = conode_core::config::Roster::load(&servers.roster).unwrap();
    conode_core::config::Roster::new(full.servers[..3].to_vec()).save(&three, false).unwrap();
    let out = json(&ok(sc(&servers, &["append", "--key", key_s, "--genesis", &genesis, "--data", "block 6"])
        .arg("--new-roster")
        .arg(&three)));
    assert_eq!((out["index"].as_u64(), out["roster_changed"].as_bool()), (Some(6), Some(true)), "{out}");
    hashes.push(out["hash"].as_str().unwrap().to_string());
    let out = json(&ok(&mut sc(&servers, &["append", "--key", key_s, "--genesis", &genesis, "--data", "block 7"])));
    assert_eq!(out["index"], 7);
    hashes.push(out["hash"].as_str().unwrap().to_string());

    // Every member holds the blocks (propagation may still be under way on a busy machine).
    let block = json(&ok(&mut sc(&servers, &["get", "--genesis", &genesis, "--index", "3"])));
    assert_eq!(block["data"], "block 3");
    assert_eq!(block["hash"], hashes[3].as_str());
    assert_eq!(block["roster"].as_array().unwrap().len(), 4);
    let by_hash = json(&ok(&mut sc(&servers, &["get", "--hash", &hashes[6]])));
    assert_eq!(by_hash["index"], 6);
    assert_eq!(by_hash["roster"].as_array().unwrap().len(), 3);
    wait_until("member 3 to store block 5", Duration::from_secs(10), || {
        let o = crate::support::run(&mut sc(&servers, &["get", "--genesis", &genesis, "--index", "5", "--node", "3"]));
        o.status.success() && json(&crate::support::stdout(&o))["hash"] == hashes[5].as_str()
    });
    let err = fails(&mut sc(&servers, &["get", "--genesis", &genesis, "--index", "99"]));
    assert!(err.contains("no such block"), "{err}");

    // A proof from genesis, saved and verified offline; then fetched and verified from another member.
    let proof_path = servers.path("proof.bin");
    let upd = json(&ok(sc(&servers, &["update", "--from", &genesis]).arg("--out").arg(&proof_path)));
    assert_eq!(upd["latest_index"], 7);
    assert_eq!(upd["latest_hash"], hashes[7].as_str());
    let hops = upd["hops"].as_u64().unwrap();
    assert!((1..=4).contains(&hops), "{upd}");
    let out = ok(conode().args(["skipchain", "verify", "--genesis", &genesis]).arg("--proof").arg(&proof_path));
    assert_eq!(out.trim(), format!("ok: block 7 ({hops} hops)"));
    wait_until("member 1 to serve the head", Duration::from_secs(10), || {
        let o = crate::support::run(&mut sc(&servers, &["verify", "--genesis", &genesis, "--node", "1"]));
        crate::support::stdout(&o).starts_with("ok: block 7 ")
    });

    // Tampered proofs are rejected: data of the head, a link signature, a wrong trusted genesis.
    let proof = Proof::decode(std::fs::read(&proof_path).unwrap().as_slice()).unwrap();
    let mut bad_data = proof.clone();
    bad_data.blocks.last_mut().unwrap().data = b"block 7, edited".to_vec();
    let mut bad_sig = proof.clone();
    let sig = bad_sig.blocks[0].forward_links.iter_mut().rev().find(|l| !l.to.is_empty()).unwrap();
    sig.signature.as_mut().unwrap().signature[50] ^= 1;
    for (name, bad) in [("data", bad_data), ("signature", bad_sig)] {
        let p = servers.path(&format!("bad-{name}.bin"));
        std::fs::write(&p, bad.encode_to_vec()).unwrap();
        let err = fails(conode().args(["skipchain", "verify", "--genesis", &genesis]).arg("--proof").arg(&p));
        assert!(err.contains("does NOT verify"), "{name}: {err}");
    }
    let err = fails(conode().args(["skipchain", "verify", "--genesis", &hashes[1]]).arg("--proof").arg(&proof_path));
    assert!(err.contains("trusted block"), "{err}");
}
