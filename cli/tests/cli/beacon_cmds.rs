//! `conode beacon approve` on each member and `conode beacon init` (the DKG; refused before the
//! approvals) and `conode beacon get … --verify` on three `conode server` processes with a 1 s
//! period, `conode beacon reshare` (approved by the other operators), then `conode reset`: refused
//! while the node runs, asks first, and drops the beacon state while private.toml stays byte for
//! byte.

use crate::support::{approve_beacon, conode, fails, json, ok, run, stdout, wait_until, Servers};
use conode_core::config::NodeConfig;
use conode_core::services::beacon::store::ChainStore;
use conode_core::storage::Storage;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// Whether node `i`'s database holds a beacon group (the node must be stopped).
fn has_group(servers: &Servers, i: usize) -> bool {
    let cfg = NodeConfig::load(&servers.nodes[i].private).unwrap();
    let storage = Storage::open(&servers.nodes[i].folder, &cfg.node_id()).unwrap();
    ChainStore::open(&storage).unwrap().has_group()
}

fn reset_with_answer(servers: &Servers, i: usize, answer: &str) -> std::process::Output {
    let mut child = conode()
        .arg("-c")
        .arg(&servers.nodes[i].private)
        .arg("reset")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn beacon_init_get_verify_then_reset_keeps_keys() {
    let mut servers = Servers::setup(3);
    servers.start_all();
    // Without its operators' approvals the group does not start.
    let init = |servers: &Servers| {
        let mut c = conode();
        c.args(["beacon", "init", "--period", "1", "--phase-timeout", "2", "--genesis-delay", "1", "--node", "1"]);
        c.arg("--roster").arg(&servers.roster);
        c
    };
    let err = fails(&mut init(&servers));
    assert!(err.contains("not approved on this node"), "{err}");
    let privates: Vec<_> = servers.nodes.iter().map(|n| n.private.clone()).collect();
    let err = fails(
        conode()
            .arg("-c")
            .arg(&privates[0])
            .args(["beacon", "approve", "--period", "0", "--roster"])
            .arg(&servers.roster),
    );
    assert!(err.contains("period"), "{err}");
    approve_beacon(&privates, &servers.roster, &["--period", "1"]);
    let out = ok(&mut init(&servers));
    assert!(out.contains("DKG done: 3 participants, 3 qualified dealers"), "{out}");
    let chain_hash =
        out.lines().find_map(|l| l.strip_prefix("chain hash: ")).expect("chain hash printed").trim().to_string();

    // Round 1 appears after the genesis time; every member serves it, verified against /info.
    let roster = servers.roster.clone();
    let get = |args: &[&str]| {
        let mut c = conode();
        c.arg("beacon").arg("get").args(args).arg("--roster").arg(&roster);
        c
    };
    wait_until("round 1", Duration::from_secs(20), || {
        run(&mut get(&["1", "--verify", "--node", "0"])).status.success()
    });
    for node in ["0", "1", "2"] {
        let o = run(&mut get(&["1", "--verify", "--node", node]));
        assert!(o.status.success(), "{}", crate::support::stderr(&o));
        // stdout is the beacon alone (one JSON document); the verification note goes to stderr.
        let beacon: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(beacon["round"], 1);
        let err = crate::support::stderr(&o);
        assert!(err.contains(&format!("verified: round 1 of chain {chain_hash}")), "{err}");
    }
    let o = run(&mut get(&["latest", "--verify", "--chain-hash", &chain_hash]));
    assert!(o.status.success() && crate::support::stderr(&o).contains("verified: round"), "{o:?}");
    serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap();
    let err = fails(&mut get(&["latest", "--node", "2", "--chain-hash", &"00".repeat(32)]));
    assert!(err.contains("serves chain"), "{err}");

    // `conode beacon reshare` (same three members, threshold 2 -> 3) goes through the admin
    // sockets: the leader's operator alone is refused (the others did not approve), a threshold
    // above the members is refused by name, and once the other two operators approved exactly
    // this resharing the leader's succeeds; the new group produces rounds that verify under the
    // unchanged chain hash.
    let reshare = |i: usize, extra: &[&str]| {
        let mut c = conode();
        c.arg("-c").arg(&servers.nodes[i].private).args(["beacon", "reshare", "--phase-timeout", "1", "--roster"]);
        c.arg(&roster).args(extra);
        c
    };
    let err = fails(&mut reshare(0, &["--threshold", "3"]));
    assert!(err.contains("did not accept"), "{err}");
    let err = fails(&mut reshare(1, &["--threshold", "4", "--approve-only"]));
    assert!(err.contains("threshold"), "{err}");
    for i in [1, 2] {
        let approved = json(&ok(&mut reshare(i, &["--threshold", "3", "--approve-only", "--json"])));
        assert_eq!((approved["members"].as_u64(), approved["threshold"].as_u64()), (Some(3), Some(3)));
    }
    let group_file = servers.path("group3.toml");
    let done = json(&ok(reshare(0, &["--threshold", "3", "--json", "--out"]).arg(&group_file)));
    assert_eq!(done["chain_hash"].as_str(), Some(chain_hash.as_str()), "{done}");
    assert_eq!(done["confirmed"].as_u64(), Some(3), "{done}");
    let group_text = std::fs::read_to_string(&group_file).unwrap();
    assert_eq!(done["group_toml"].as_str(), Some(group_text.as_str()));
    let after = done["transition_round"].as_u64().unwrap() + 1;
    wait_until("a round of the new group", Duration::from_secs(30), || {
        run(&mut get(&[&after.to_string(), "--verify", "--chain-hash", &chain_hash, "--node", "0"])).status.success()
    });
    for node in ["1", "2"] {
        let o = run(&mut get(&[&after.to_string(), "--verify", "--chain-hash", &chain_hash, "--node", node]));
        assert!(o.status.success(), "node {node}: {}", crate::support::stderr(&o));
    }

    // reset refuses while the node holds its database.
    let before = std::fs::read(&servers.nodes[0].private).unwrap();
    let o = reset_with_answer(&servers, 0, "y\n");
    assert!(!o.status.success(), "reset of a running node: {}", stdout(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stop the node first"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    servers.stop(0);
    assert!(has_group(&servers, 0));

    // It asks first: no answer or "n" changes nothing.
    for answer in ["", "n\n"] {
        let o = reset_with_answer(&servers, 0, answer);
        assert!(!o.status.success());
        assert!(stdout(&o).contains("Continue? [y/N]") && stdout(&o).contains("keys are kept"), "{}", stdout(&o));
        assert!(has_group(&servers, 0), "declined reset dropped the group");
    }
    let o = reset_with_answer(&servers, 0, "y\n");
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(!has_group(&servers, 0));
    assert_eq!(std::fs::read(&servers.nodes[0].private).unwrap(), before, "private.toml changed");

    // The node comes back with the same identity and no beacon chain.
    servers.start(0);
    let err = fails(&mut get(&["latest", "--node", "0"]));
    assert!(err.contains("HTTP"), "{err}");
    let check = ok(conode().arg("check").arg(&servers.roster).args(["--timeout", "5"]));
    assert!(check.contains("all 3 nodes ok"), "{check}");
}
