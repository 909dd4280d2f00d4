//! `conode bench backup`: the hot backup of a node holding a long skipchain and beacon chain — its
//! time and size, appends per second with and without a backup running (one run), and the time a
//! restored node takes to catch up and sign again. Prints one JSON line per measurement.

use anyhow::{bail, Context, Result};
use conode_core::admin::{request_backup, socket_path};
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::beacon::store::ChainStore;
use conode_core::services::skipchain::messages::Append;
use conode_core::verify::beacon::Beacon;
use conode_core::NodeBuilder;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(blocks: u64, rounds: u64, window: f64) -> Result<()> {
    let mut c = LocalCluster::with_options(ClusterOptions::new(4))?;
    let owner = IdentityKeyPair::generate();
    let leader = c.node(0).skipchain()?;
    let genesis =
        c.runtime().block_on(leader.create_chain(c.roster(), 4, 32, vec![owner.public()], b"bench".to_vec()))?;
    let started = Instant::now();
    for i in 1..=blocks {
        let req = Append::signed(&owner, &genesis.hash, i, format!("block {i}").into_bytes(), None)?;
        c.runtime().block_on(leader.append(req)).with_context(|| format!("append {i}"))?;
    }
    eprintln!("{blocks} blocks in {:.1} s", started.elapsed().as_secs_f64());
    // The beacon chain: `rounds` stored beacons of drand's chained scheme (96-byte signatures).
    let storage = c.node(1).context().context("node 1 not running")?.storage.clone();
    let beacons = ChainStore::open(&storage)?;
    let mut prev = vec![0u8; 96];
    let mut batch = Vec::new();
    for round in 1..=rounds {
        let signature: Vec<u8> = (0..96).map(|_| rand::random::<u8>()).collect();
        batch.push(Beacon { round, signature: signature.clone(), previous_signature: Some(prev) });
        prev = signature;
        if batch.len() == 1000 || round == rounds {
            beacons.put_beacons(&batch)?;
            batch.clear();
        }
    }
    drop((beacons, storage));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("node1.backup");
    let node1 = c.node(1);
    let socket = socket_path(node1.data_dir(), &node1.config().node_id());

    // Backup of an idle node.
    let t = Instant::now();
    let manifest = request_backup(&socket, std::io::BufWriter::new(std::fs::File::create(&file)?), |_, _| {})?;
    let took = t.elapsed();
    let size = std::fs::metadata(&file)?.len();
    outln!(
        "{}",
        json!({"bench": "backup", "blocks": blocks, "beacon_rounds": rounds, "entries": manifest.entries,
               "trees": manifest.trees, "bytes": size, "seconds": took.as_secs_f64(),
               "entries_per_sec": manifest.entries as f64 / took.as_secs_f64()})
    );

    // Appends per second over equal windows: without a backup, then with backups back to back.
    let next = Arc::new(AtomicU64::new(blocks + 1));
    let rate = |with_backup: bool| -> Result<(f64, u32)> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let task = {
            let (leader, owner, genesis, next, stop, done) =
                (leader.clone(), owner.clone(), genesis.clone(), next.clone(), stop.clone(), done.clone());
            c.runtime().spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.load(Ordering::SeqCst);
                    let Ok(req) = Append::signed(&owner, &genesis.hash, i, b"load".to_vec(), None) else { break };
                    if leader.append(req).await.is_ok() {
                        next.fetch_add(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        let t = Instant::now();
        let mut backups = 0;
        while t.elapsed().as_secs_f64() < window {
            if with_backup {
                let f = std::fs::File::create(dir.path().join("during.backup"))?;
                request_backup(&socket, std::io::BufWriter::new(f), |_, _| {})?;
                backups += 1;
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        c.runtime().block_on(task)?;
        Ok((done.load(Ordering::SeqCst) as f64 / secs, backups))
    };
    let (without, _) = rate(false)?;
    let (with, backups) = rate(true)?;
    outln!(
        "{}",
        json!({"bench": "appends_during_backup", "window_seconds": window, "appends_per_sec_without": without,
               "appends_per_sec_during_backup": with, "backups_during_window": backups,
               "ratio": if without > 0.0 { with / without } else { 0.0 }})
    );

    // Recovery: node 1 stopped, restored from the first backup on a new data dir, started again.
    let config = (**c.node(1).config()).clone();
    c.stop(1)?;
    let restored_dir = dir.path().join("restored");
    let t = Instant::now();
    conode_core::backup::restore(&file, &restored_dir, Some(&config.node_id()), false)?;
    let restore_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut node = NodeBuilder::new(config).data_dir(&restored_dir).runtime(c.runtime().handle().clone()).build()?;
    node.start()?;
    let state = |n: &conode_core::Node, key: &str| {
        n.context().and_then(|ctx| {
            ctx.status.sections().into_iter().find(|(s, _)| s == "Recovery").and_then(|(_, m)| m.get(key).cloned())
        })
    };
    while state(&node, "State").as_deref() != Some("caught up") {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("node 1 did not recover within 300 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    outln!(
        "{}",
        json!({"bench": "recovery", "restore_seconds": restore_secs, "start_to_signing_seconds": t.elapsed().as_secs_f64(),
               "recovery_seconds_reported": state(&node, "RecoverySeconds"),
               "blocks_behind_at_restore": next.load(Ordering::SeqCst) - 1 - blocks})
    );
    node.stop()?;
    Ok(())
}
