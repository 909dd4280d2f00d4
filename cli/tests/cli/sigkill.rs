//! Issue 4's crash test as real processes: four `conode server`s, a client appending blocks in a
//! loop through node 0's client port, node 0 killed with SIGKILL in the middle of the appends and
//! restarted on the same config and database. Every block node 0 acknowledged must still be in its
//! own store (the other members are stopped first, so nothing can be re-fetched from them), and
//! the chain must verify from genesis. The same with six chains whose appends share batched rounds.

use crate::support::{append_loop, conode, http_get, json, ok, owner_key, run, stderr, stdout, Servers};
use conode_core::api::client;
use conode_core::services::skipchain::messages::{BlockReply, GetBlock};
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigkill_during_appends_loses_no_acknowledged_block() {
    let mut servers = Servers::setup(4);
    servers.start_all();
    let (key, genesis_hex) = servers.create_chain();
    let genesis = hex::decode(&genesis_hex).unwrap();

    // (index, hash) of every block the node acknowledged, shared with the append thread.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (url, g, k, a, s) = (servers.url(0), genesis.clone(), owner_key(&key), acked.clone(), stop.clone());
        std::thread::spawn(move || append_loop(url, g, k, s, move |i, h| a.lock().unwrap().push((i, h))))
    };
    // Let a few appends through, then kill node 0 while the loop keeps appending.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 12 {
        assert!(
            Instant::now() < deadline,
            "appends too slow: {} acknowledged\n{}",
            acked.lock().unwrap().len(),
            servers.log(0)
        );
        assert!(!appender.is_finished(), "the append loop ended early\n{}", servers.log(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    servers.sigkill(0);
    stop.store(true, Ordering::SeqCst);
    let ended = appender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 12, "{ended}");
    let last = acked.last().unwrap().0;
    eprintln!("node 0 acknowledged blocks 1..={last} before SIGKILL; the append loop ended with: {ended}");

    // Only node 0's own store can answer now.
    for i in 1..4 {
        servers.stop(i);
    }
    servers.start(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (index, hash) in &acked {
        let req = GetBlock { hash: vec![], genesis: genesis.clone(), index: *index };
        let reply = rt
            .block_on(client::call(
                &servers.url(0),
                "Skipchain",
                "GetBlock",
                req.encode_to_vec(),
                Duration::from_secs(10),
            ))
            .unwrap_or_else(|e| panic!("acknowledged block {index} lost after SIGKILL: {e}\n{}", servers.log(0)));
        let block = BlockReply::decode(reply.as_slice()).unwrap().block.unwrap();
        assert_eq!(&block.hash, hash, "block {index} changed");
        assert_eq!(block.data, format!("block {index}").into_bytes());
    }
    let out = ok(conode()
        .args(["skipchain", "verify", "--genesis", &genesis_hex, "--url", &servers.url(0)])
        .arg("--roster")
        .arg(&servers.roster));
    let head: u64 = out.trim().strip_prefix("ok: block ").and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(head >= last, "chain head {head} is behind the last acknowledged block {last}: {out}");

    // With the others back, the chain goes on from node 0's head.
    for i in 1..4 {
        servers.start(i);
    }
    let first = run(&mut append_cmd(&genesis_hex, &servers, &key));
    let (out, expected) = if first.status.success() {
        (stdout(&first), head + 1)
    } else {
        // The block node 0 was appending when it was killed may have been prepared by a quorum
        // (members locked on it): the chain then finishes that block at head + 1 first, never
        // another one there (no fork), and says so; the new data goes after it.
        let err = stderr(&first);
        assert!(err.contains(&format!("had been prepared at index {}", head + 1)), "{err}");
        (ok(&mut append_cmd(&genesis_hex, &servers, &key)), head + 2)
    };
    let next = json(&out);
    assert_eq!(next["index"].as_u64(), Some(expected), "{next}");
}

/// The same with appends of six chains through node 0 at once, each from its own client: they
/// share batched rounds (node 0's `/metrics` counts them before the kill). Every block node 0
/// acknowledged on any chain is in its own store after SIGKILL and restart, and every chain
/// verifies from genesis.
#[test]
fn sigkill_during_batched_appends_of_many_chains_loses_no_acknowledged_block() {
    let mut servers = Servers::setup(4);
    servers.start_all();
    let chains: Vec<(std::path::PathBuf, String)> =
        (0..6).map(|k| servers.create_chain_owned_by(&format!("owner-{k}.toml"))).collect();
    // (chain, index, hash) of every block node 0 acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = chains
        .iter()
        .enumerate()
        .map(|(k, (key, genesis_hex))| {
            let (url, g, key, a, s) =
                (servers.url(0), hex::decode(genesis_hex).unwrap(), owner_key(key), acked.clone(), stop.clone());
            std::thread::spawn(move || append_loop(url, g, key, s, move |i, h| a.lock().unwrap().push((k, i, h))))
        })
        .collect();
    let batched = |servers: &Servers| {
        http_get(&servers.nodes[0].client, "/metrics")
            .and_then(|(_, m)| {
                m.lines()
                    .find_map(|l| l.strip_prefix("conode_skipchain_batched_rounds_total ")?.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 || batched(&servers) == 0 {
        assert!(
            Instant::now() < deadline,
            "appends too slow or never batched: {} acknowledged, {} batched rounds\n{}",
            acked.lock().unwrap().len(),
            batched(&servers),
            servers.log(0)
        );
        assert!(loops.iter().all(|l| !l.is_finished()), "an append loop ended early\n{}", servers.log(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    servers.sigkill(0);
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("node 0 acknowledged {} blocks of {} chains before SIGKILL", acked.len(), chains.len());

    // Only node 0's own store can answer now.
    for i in 1..4 {
        servers.stop(i);
    }
    servers.start(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (k, index, hash) in &acked {
        let genesis = hex::decode(&chains[*k].1).unwrap();
        let req = GetBlock { hash: vec![], genesis, index: *index };
        let url = servers.url(0);
        let call = client::call(&url, "Skipchain", "GetBlock", req.encode_to_vec(), Duration::from_secs(10));
        let reply = rt.block_on(call).unwrap_or_else(|e| {
            panic!("acknowledged block {index} of chain {k} lost after SIGKILL: {e}\n{}", servers.log(0))
        });
        let block = BlockReply::decode(reply.as_slice()).unwrap().block.unwrap();
        assert_eq!(&block.hash, hash, "block {index} of chain {k} changed");
    }
    for (k, (_, genesis_hex)) in chains.iter().enumerate() {
        let last = acked.iter().filter(|(c, ..)| *c == k).map(|(_, i, _)| *i).max().unwrap_or(0);
        let out = ok(conode()
            .args(["skipchain", "verify", "--genesis", genesis_hex, "--url", &servers.url(0)])
            .arg("--roster")
            .arg(&servers.roster));
        let head: u64 = out
            .trim()
            .strip_prefix("ok: block ")
            .and_then(|r| r.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("chain {k}: `skipchain verify` printed {out}"));
        assert!(head >= last, "chain {k}: head {head} is behind its last acknowledged block {last}: {out}");
    }
}

fn append_cmd(genesis_hex: &str, servers: &Servers, key: &std::path::Path) -> std::process::Command {
    let mut cmd = conode();
    cmd.args(["skipchain", "append", "--genesis", genesis_hex, "--data", "after the crash"])
        .arg("--roster")
        .arg(&servers.roster)
        .arg("--key")
        .arg(key);
    cmd
}
