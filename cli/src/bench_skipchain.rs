//! `conode bench skipchain`: appends per second on real clusters, and the time and hop count of
//! verifying a proof from genesis to the head of a long chain (the light-client cost); and append
//! latency with members stopped or hung against the healthy latency (`--down`, `--hung`, `--table`).

use anyhow::{Context, Result};
use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::skipchain::messages::Append;
use conode_core::services::skipchain::SkipchainService;
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::{verify_proof, SkipBlock};
use std::time::Instant;

fn append(
    svc: &SkipchainService,
    rt: &tokio::runtime::Runtime,
    owner: &IdentityKeyPair,
    genesis: &SkipBlock,
    index: u64,
) -> Result<()> {
    let req = Append::signed(owner, &genesis.hash, index, index.to_be_bytes().to_vec(), None)?;
    rt.block_on(svc.append(req)).with_context(|| format!("append {index}"))?;
    Ok(())
}

/// Builds a chain of `len` blocks on `n` nodes; returns (cluster, genesis, seconds spent appending).
fn build(n: usize, len: u64, base: u32) -> Result<(LocalCluster, SkipBlock, f64)> {
    let c = LocalCluster::new(n)?;
    let svc = c.node(0).skipchain().context("skipchain service")?;
    let owner = IdentityKeyPair::generate();
    let genesis = c.runtime().block_on(svc.create_chain(c.roster(), base, 16, vec![owner.public()], vec![]))?;
    let start = Instant::now();
    for i in 1..=len {
        append(&svc, c.runtime(), &owner, &genesis, i)?;
        if i % 1000 == 0 {
            eprintln!("  {i}/{len} blocks");
        }
    }
    Ok((c, genesis, start.elapsed().as_secs_f64()))
}

pub fn run(sizes: &[usize], appends: u64, chain: u64) -> Result<()> {
    for &n in sizes {
        let (_c, _g, secs) = build(n, appends, 2)?;
        println!(
            "{}",
            serde_json::json!({ "bench": "skipchain_appends", "nodes": n, "appends": appends, "appends_per_sec": appends as f64 / secs })
        );
    }
    eprintln!("building a {chain}-block chain on 4 nodes");
    let (c, genesis, _) = build(4, chain, 2)?;
    let svc = c.node(1).skipchain().context("skipchain service")?;
    let proof = svc.update_chain(&genesis.hash)?;
    let runs = 50;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let head = verify_proof(&genesis.hash, &proof, Policy::Default).map_err(anyhow::Error::msg)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(head.index == chain, "proof ends at {} not {chain}", head.index);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({
            "bench": "skipchain_light_verify",
            "chain_length": chain,
            "hops": proof.len() - 1,
            "verify_ms_p50": times[runs / 2],
            "verify_ms_max": times[runs - 1],
            "goal_ms": 25.0,
        })
    );
    Ok(())
}

/// Append latency through node 0, healthy then degraded, for every size and run of `degraded`.
pub fn run_degraded(sizes: &[usize], appends: usize, degraded: &crate::bench::Degraded) -> Result<()> {
    for &n in sizes {
        for (down, hung) in degraded.runs(n) {
            if degraded.processes {
                crate::bench::print_degraded(&crate::bench_processes::skipchain(n, appends, down, hung)?);
                continue;
            }
            let mut cluster = LocalCluster::new(n).map_err(|e| anyhow::anyhow!("cannot start {n} nodes: {e}"))?;
            let r = conode_core::services::cosi::bench::degraded_run(
                "skipchain_degraded",
                &mut cluster,
                appends,
                down,
                hung,
                |c: &LocalCluster| {
                    let owner = IdentityKeyPair::generate();
                    let genesis = c.create_chain(0, vec![owner.public()], vec![]).map_err(|e| e.to_string())?;
                    Ok((owner, genesis))
                },
                |c, (owner, genesis): &(IdentityKeyPair, SkipBlock), i| {
                    c.append(0, owner, &genesis.hash, i.to_be_bytes().to_vec()).map(|_| ()).map_err(|e| e.to_string())
                },
            )
            .map_err(anyhow::Error::msg)?;
            crate::bench::print_degraded(&r);
        }
    }
    Ok(())
}
