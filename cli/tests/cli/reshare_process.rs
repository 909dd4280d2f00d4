//! Beacon resharing with real processes: four `conode server`s run a beacon (1 s period) and a
//! network chain; a fifth joins by `conode vote` while a client appends to a skipchain and rounds
//! go on, and the appender of the roster change reshares the beacon group to the five. Every round
//! from 1 through the transition verifies under the unchanged `/info` (pure verifier, and `conode
//! beacon get --verify`), none is missing, and every append succeeds. A member killed with SIGKILL
//! comes back in the same state and keeps signing; a removed member retires and its partials no
//! longer count (with it and one member of the new group up, the chain stalls).

use crate::support::{
    append_loop, conode, http_get, json, ok, owner_key, propose_remove, run, wait_until, write_private, Servers,
};
use conode_core::verify::beacon::{Beacon, ChainInfo};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn get_json(servers: &Servers, i: usize, path: &str) -> serde_json::Value {
    let (code, body) = http_get(&servers.nodes[i].client, path).unwrap_or_else(|| panic!("node {i}: no answer"));
    assert_eq!(code, 200, "node {i} {path}: {body}");
    json(&body)
}

fn state(servers: &Servers, i: usize) -> String {
    http_get(&servers.nodes[i].client, "/node/state")
        .map(|(_, b)| json(&b)["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Node `i`'s latest stored round (0 when it has none or does not answer).
fn latest(servers: &Servers, i: usize) -> u64 {
    match http_get(&servers.nodes[i].client, "/public/latest") {
        Some((200, body)) => json(&body)["round"].as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// How many members the beacon group node `i` currently runs has (its status page's view).
fn group_size(servers: &Servers, i: usize) -> usize {
    let Some((200, body)) = http_get(&servers.nodes[i].client, "/roster/status") else { return 0 };
    let status = json(&body);
    let views = status["rosters"].as_array().cloned().unwrap_or_default();
    views.iter().find(|v| v["kind"] == "beacon").and_then(|v| v["members"].as_array().map(|m| m.len())).unwrap_or(0)
}

/// `conode -c <node i> vote id yes`, retried while node i has not received the proposal yet.
fn vote_yes(servers: &Servers, i: usize, id: &str) -> serde_json::Value {
    let mut out = None;
    wait_until("the proposal reaches the voter", Duration::from_secs(20), || {
        let o = conode().arg("-c").arg(&servers.nodes[i].private).args(["vote", id, "yes"]).output().unwrap();
        if o.status.success() {
            out = Some(json(&String::from_utf8_lossy(&o.stdout)));
            return true;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("unknown proposal"), "vote by node {i} failed: {err}");
        false
    });
    out.unwrap()
}

/// Waits until node `i` stored round `round` (or later).
fn wait_round(servers: &Servers, i: usize, round: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while latest(servers, i) < round {
        assert!(Instant::now() < deadline, "node {i}: round {round} not stored in time\n{}", servers.log(i));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches rounds 1..=last from node `i` and checks each with the pure verifier under `info`, and
/// that each chains on the one before (chained scheme): none missing, none replaced.
fn verify_rounds(servers: &Servers, i: usize, info: &ChainInfo, last: u64) {
    let mut previous: Option<Vec<u8>> = None;
    for round in 1..=last {
        let (code, body) = http_get(&servers.nodes[i].client, &format!("/public/{round}"))
            .unwrap_or_else(|| panic!("node {i}: no answer for round {round}"));
        assert_eq!(code, 200, "node {i}: round {round} missing: {body}");
        let beacon = Beacon::from_drand_json(&body).unwrap_or_else(|e| panic!("round {round}: {e}: {body}"));
        assert_eq!(beacon.round, round);
        info.verify(&beacon).unwrap_or_else(|e| panic!("node {i}: round {round} does not verify: {e}"));
        if let Some(p) = &previous {
            assert_eq!(beacon.previous_signature.as_ref(), Some(p), "round {round} does not chain on {}", round - 1);
        }
        previous = Some(beacon.signature);
    }
}

/// The roster file of members `which`.
fn roster_of(servers: &Servers, which: &[usize], name: &str) -> PathBuf {
    let mut text = String::new();
    for &i in which {
        text.push_str(&std::fs::read_to_string(servers.nodes[i].folder.join("public.toml")).unwrap());
        text.push('\n');
    }
    let path = servers.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn join_by_vote_reshares_the_beacon_while_appends_and_rounds_go_on() {
    let started = Instant::now();
    let mut servers = Servers::setup(5);
    let roster4 = roster_of(&servers, &[0, 1, 2, 3], "roster4.toml");
    for i in 0..4 {
        servers.start(i);
    }
    crate::support::approve_beacon(servers.nodes[..4].iter().map(|n| &n.private), &roster4, &["--period", "1"]);
    let out = ok(conode()
        .args(["beacon", "init", "--period", "1", "--phase-timeout", "1", "--genesis-delay", "1", "--node", "0"])
        .arg("--roster")
        .arg(&roster4));
    let chain_hash = out.lines().find_map(|l| l.strip_prefix("chain hash: ")).expect("chain hash printed").trim();
    let chain_hash = chain_hash.to_string();
    let info_text = get_json(&servers, 0, "/info").to_string();
    let info = ChainInfo::from_drand_json(&info_text).unwrap();
    assert_eq!(info.hash_hex(), chain_hash);

    let mut network = String::new();
    for i in 0..4 {
        let private = &servers.nodes[i].private;
        let founded = json(&ok(conode().arg("-c").arg(private).args(["network", "create", "--roster"]).arg(&roster4)));
        network = founded["network"].as_str().unwrap().to_string();
    }
    for i in 0..4 {
        wait_until("founders part of the network", Duration::from_secs(20), || state(&servers, i) == "PartOfNetwork");
    }

    // A skipchain of the founders, appended to in a loop through node 0 from now on.
    let key = servers.path("owner.toml");
    let chain = json(&ok(conode().args(["skipchain", "create", "--roster"]).arg(&roster4).arg("--key").arg(&key)));
    let genesis = hex::decode(chain["genesis"].as_str().unwrap()).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (url, g, k, a, s) = (servers.url(0), genesis.clone(), owner_key(&key), acked.clone(), stop.clone());
        std::thread::spawn(move || append_loop(url, g, k, s, move |i, _| a.store(i, Ordering::SeqCst)))
    };
    wait_round(&servers, 0, 2, Duration::from_secs(20));

    // The fifth node asks to join through [Join]; three of four founders vote yes.
    let mut private = std::fs::read_to_string(&servers.nodes[4].private).unwrap();
    private
        .push_str(&format!("\n[Join]\nTarget = \"{}\"\nNetwork = \"{network}\"\nRetryTimeout = 0.2\n", servers.url(1)));
    write_private(&servers.nodes[4].private, &private);
    servers.start(4);
    let mut id = String::new();
    wait_until("a proposal for the joiner", Duration::from_secs(20), || {
        let listed = ok(conode().arg("-c").arg(&servers.nodes[0].private).arg("proposals"));
        id = listed.lines().next().map(|l| json(l)["id"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
        !id.is_empty()
    });
    let before_vote = latest(&servers, 0);
    for i in 0..3 {
        vote_yes(&servers, i, &id);
    }
    wait_until("the joiner is part of the network", Duration::from_secs(20), || state(&servers, 4) == "PartOfNetwork");

    // The appender of the roster block reshares; node 0 switches to the five-member group at the
    // transition round (it has stored the round before it then).
    wait_until("node 0 runs the five-member beacon group", Duration::from_secs(30), || group_size(&servers, 0) == 5);
    let switched = latest(&servers, 0);
    assert!(switched > before_vote, "the transition came before any round after the vote");
    // Two rounds of the new group, on every member (the joiner syncs the rounds before it joined).
    for i in 0..5 {
        wait_round(&servers, i, switched + 2, Duration::from_secs(15));
    }
    let early = appender.is_finished();
    stop.store(true, Ordering::SeqCst);
    let ended = appender.join().unwrap();
    assert!(!early, "the append loop ended early: {ended}\n{}", servers.log(0));
    assert_eq!(ended, "stopped", "an append failed during the join");
    assert!(acked.load(Ordering::SeqCst) >= 3, "only {} appends", acked.load(Ordering::SeqCst));

    // Same chain and group key on every member; every round from 1 through the transition verifies.
    let last = switched + 2;
    for i in [0, 4] {
        assert_eq!(ChainInfo::from_drand_json(&get_json(&servers, i, "/info").to_string()).unwrap(), info);
        verify_rounds(&servers, i, &info, last);
    }
    for round in [switched, last] {
        let o = run(conode()
            .args(["beacon", "get", &round.to_string(), "--verify", "--chain-hash", &chain_hash, "--url"])
            .arg(servers.url(4)));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains(&format!("verified: round {round}")), "{err}");
    }
    eprintln!(
        "join + resharing done at round {switched}, {} appends, {:?}",
        acked.load(Ordering::SeqCst),
        started.elapsed()
    );

    // SIGKILL of a member after the transition: it comes back in the same state and group.
    servers.sigkill(2);
    servers.start(2);
    assert_eq!(state(&servers, 2), "PartOfNetwork");
    assert_eq!(group_size(&servers, 2), 5, "node 2 lost the new group\n{}", servers.log(2));
    wait_round(&servers, 2, latest(&servers, 0), Duration::from_secs(10));

    // Remove founder 1 (4 of 5 yes): it retires and the group reshares to the other four.
    let proposed = propose_remove(&servers, 4, 1);
    let rid = proposed["id"].as_str().unwrap().to_string();
    for i in [4, 0, 2, 3] {
        vote_yes(&servers, i, &rid);
    }
    wait_until("node 1 retired", Duration::from_secs(20), || state(&servers, 1) == "Retired");
    wait_until("node 0 runs the four-member beacon group", Duration::from_secs(30), || group_size(&servers, 0) == 4);
    let switched2 = latest(&servers, 0);
    wait_round(&servers, 0, switched2 + 1, Duration::from_secs(10));

    // With node 3 gone, the group {0, 2, 4} is exactly the threshold: rounds go on only because the
    // restarted node 2 and the joiner sign.
    servers.sigkill(3);
    let now = latest(&servers, 0);
    wait_round(&servers, 0, now + 2, Duration::from_secs(10));

    // With node 2 gone too, only 0 and 4 of the group run: the retired node 1's partials would make
    // a threshold of the old five-member group, but they no longer count, so no round is made.
    servers.sigkill(2);
    let stalled = latest(&servers, 0);
    let until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < until {
        assert!(latest(&servers, 0) <= stalled + 1, "a round was made without a threshold of the new group");
        std::thread::sleep(Duration::from_millis(100));
    }
    let final_round = latest(&servers, 0);
    verify_rounds(&servers, 0, &info, final_round);
    eprintln!("removal resharing at round {switched2}; test took {:?}", started.elapsed());
}
