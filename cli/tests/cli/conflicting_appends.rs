//! Issue 13's fork test as real processes: four `conode server`s; in every trial the owner sends
//! two different appends for the same index to two different members at once, over their client
//! ports, and now and then one member is killed with SIGKILL and later restarted. No two different
//! blocks may ever be acknowledged for one index, every member must end up with the same block at
//! every index, and the chain must go on once the contention stops. Seeded like the in-process
//! test (`CONODE_SAFETY_SEED`, `CONODE_SAFETY_TRIALS`; CI default 12 trials).

use crate::support::{conode, json, owner_key, Servers};
use conode_core::api::client::Client;
use conode_core::client_api::ClientUrl;
use conode_core::services::skipchain::messages::{Append, GetBlock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn client(servers: &Servers, i: usize) -> Client {
    Client::new(ClientUrl::parse(&servers.url(i)).unwrap(), Duration::from_secs(20))
}

#[test]
fn conflicting_appends_to_server_processes_never_fork() {
    let seed = std::env::var("CONODE_SAFETY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let trials: u64 = std::env::var("CONODE_SAFETY_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    eprintln!("conflicting appends to processes: CONODE_SAFETY_SEED={seed} CONODE_SAFETY_TRIALS={trials}");
    let mut rng = StdRng::seed_from_u64(seed);
    let n = 4;
    let mut servers = Servers::setup(n);
    servers.start_all();
    let (key, genesis_hex) = servers.create_chain();
    let genesis = hex::decode(&genesis_hex).unwrap();
    let owner = owner_key(&key);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut acknowledged: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut down: Option<usize> = None;
    let mut next = 1u64;
    let mut refused = 0u64;
    for trial in 0..trials {
        if rng.gen_bool(0.25) {
            match down.take() {
                Some(i) => servers.start(i),
                None => {
                    let i = rng.gen_range(0..n);
                    servers.sigkill(i);
                    down = Some(i);
                }
            }
        }
        let up: Vec<usize> = (0..n).filter(|i| Some(*i) != down).collect();
        let (a, b) = (up[rng.gen_range(0..up.len())], up[rng.gen_range(0..up.len())]);
        let calls: Vec<_> = [(a, 0), (b, 1)]
            .into_iter()
            .map(|(at, j)| {
                let data = format!("trial {trial} proposal {j}").into_bytes();
                let append = Append::signed(&owner, &genesis, next, data, None).unwrap();
                let c = client(&servers, at);
                async move { c.append(&append).await }
            })
            .collect();
        for result in rt.block_on(futures_util::future::join_all(calls)) {
            match result {
                Ok(block) => {
                    if let Some(prior) = acknowledged.insert(block.index, block.hash.clone()) {
                        assert_eq!(prior, block.hash, "seed {seed}: two blocks acknowledged at index {}", block.index);
                    }
                }
                Err(_) => refused += 1,
            }
        }
        // The next index: after the newest block any running member holds (a block may have been
        // committed without either client getting it acknowledged, e.g. both lost the race).
        let newest = up.iter().filter_map(|&i| rt.block_on(client(&servers, i).update_chain(&genesis)).ok());
        next = newest.filter_map(|proof| proof.last().map(|b| b.index)).max().unwrap_or(next - 1).max(next - 1) + 1;
    }
    if let Some(i) = down.take() {
        servers.start(i);
    }
    // Contention over: the chain goes on (the CLI finds the next index itself).
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let out = conode()
            .args(["skipchain", "append", "--data", "after the storm"])
            .arg("--genesis")
            .arg(hex::encode(&genesis))
            .arg("--roster")
            .arg(&servers.roster)
            .arg("--key")
            .arg(&key)
            .output()
            .unwrap();
        if out.status.success() {
            break json(&String::from_utf8_lossy(&out.stdout))["index"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "seed {seed}: the chain is stuck: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    // Every member holds the same block at every index (waiting for the restarted ones to catch up).
    for index in 1..=last {
        let mut hashes = Vec::new();
        for i in 0..n {
            let get = GetBlock { hash: vec![], genesis: genesis.clone(), index };
            let deadline = Instant::now() + Duration::from_secs(30);
            let block = loop {
                match rt.block_on(client(&servers, i).block(&get)) {
                    Ok(b) => break b,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "seed {seed}: member {i} lacks block {index}: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            };
            hashes.push(block.hash);
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "seed {seed}: members disagree at index {index}: fork");
        if let Some(acked) = acknowledged.get(&index) {
            assert_eq!(acked, &hashes[0], "seed {seed}: acknowledged block {index} is not the chain's");
        }
    }
    eprintln!(
        "{} blocks, {} acknowledged under contention, {refused} appends refused or lost the race, no fork",
        last + 1,
        acknowledged.len()
    );
    assert!(acknowledged.len() as u64 >= trials / 3, "seed {seed}: too few appends went through: {acknowledged:?}");
}
