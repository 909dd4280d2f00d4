//! `conode bench skipchain`: appends per second on real clusters, and the time and hop count of
//! verifying a proof from genesis to the head of a long chain (the light-client cost); and append
//! latency with members stopped or hung against the healthy latency (`--down`, `--hung`, `--table`).

use anyhow::{Context, Result};
use conode_core::cluster::LocalCluster;
use conode_core::config::SkipchainLinks;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::skipchain::messages::Append;
use conode_core::services::skipchain::{Phase, SkipchainService};
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::{level_distance, verify_link_with_keys, verify_proof, SkipBlock, LINK_FORMAT_V4};
use conode_core::verify::skipchain_batch::{verify_links_with_keys, LinkToCheck};
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

pub fn run(
    sizes: &[usize],
    appends: u64,
    chain: u64,
    clients: &[usize],
    links: &[String],
    proposers: Option<usize>,
    batch: &[String],
) -> Result<()> {
    let batching = batch
        .iter()
        .map(|b| match b.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(anyhow::anyhow!("--batch: `{other}` is neither on nor off")),
        })
        .collect::<Result<Vec<bool>>>()?;
    anyhow::ensure!(proposers != Some(0), "--proposers: at least one member must take appends");
    let formats = links
        .iter()
        .map(|l| match l.as_str() {
            "v1" => Ok(SkipchainLinks::V1),
            "v2" => Ok(SkipchainLinks::V3),
            "v4" => Ok(SkipchainLinks::V4),
            other => Err(anyhow::anyhow!("--links: unknown forward-link format `{other}` (v1, v2 or v4)")),
        })
        .collect::<Result<Vec<SkipchainLinks>>>()?;
    for &n in sizes {
        for &k in clients {
            for &links in &formats {
                for &batched in &batching {
                    let setup = Setup { links, batched, proposers: proposers.unwrap_or(n).min(n) };
                    rate(n, appends, k.max(1), setup)?;
                }
            }
        }
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
    outln!(
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

/// Slices of an append-rate run (each followed by its BLS floor).
const SLICES: u64 = 5;

/// How the proposers of an append-rate run sign.
#[derive(Clone, Copy)]
struct Setup {
    /// What the members sign (`V3`: two rounds per append, `V4`: the fast path too).
    links: SkipchainLinks,
    /// Appends of different chains at one proposer share rounds.
    batched: bool,
    /// Chain k is appended through member k mod `proposers`.
    proposers: usize,
}

/// Appends per second with `clients` concurrent clients, each on its own chain through member
/// k mod `proposers`, `appends` in all; prints the rate and where an append's time went (per
/// phase: the proposer's rounds, its store and its wait for the members' stores; the members'
/// hooks), and how many appends the batched rounds served.
fn rate(n: usize, appends: u64, clients: usize, setup: Setup) -> Result<()> {
    let c = LocalCluster::new(n)?;
    for i in 0..n {
        let svc = c.node(i).skipchain().context("skipchain service")?;
        svc.set_links(setup.links);
        svc.set_batched_rounds(setup.batched);
    }
    // With batched rounds a proposer signs the links of several chains' blocks at once (v3).
    let links = match (setup.links, setup.batched) {
        (SkipchainLinks::V1, _) => "v1",
        (SkipchainLinks::V4, _) => "v4",
        (_, false) => "v2",
        (_, true) => "v3",
    };
    let mut chains = Vec::with_capacity(clients);
    for k in 0..clients {
        let svc = c.node(k % setup.proposers).skipchain().context("skipchain service")?;
        let owner = IdentityKeyPair::generate();
        let genesis = c.runtime().block_on(svc.create_chain(c.roster(), 2, 16, vec![owner.public()], vec![]))?;
        // One append first: the rosters are checked and the connections made before the clock runs.
        append(&svc, c.runtime(), &owner, &genesis, 1)?;
        chains.push((svc, owner, genesis));
    }
    let (first_svc, first_genesis) = (chains[0].0.clone(), chains[0].2.clone());
    let before = phase_totals(&c, n)?;
    let batched_before = batched_totals(&c, n)?;
    let per_client = appends.div_ceil(clients as u64);
    anyhow::ensure!(per_client > 0, "--appends: no appends to time");
    // The appends run in slices, each followed by the BLS floor timed on the blocks it appended:
    // both see the same machine load, so a slice's CPU per append against its floor holds
    // when the shared machine's speed drifts during the run.
    let slices = SLICES.min(per_client);
    let (mut secs, mut cpu_ms) = (0.0, 0.0);
    let (mut floors, mut ratios) = (Vec::with_capacity(slices as usize), Vec::with_capacity(slices as usize));
    let mut shared_ratios = Vec::with_capacity(slices as usize);
    let mut next = 2;
    for slice in 0..slices {
        let end = 2 + per_client * (slice + 1) / slices;
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let runs = chains.iter().map(|(svc, owner, genesis)| async move {
            for i in next..end {
                let req = Append::signed(owner, &genesis.hash, i, i.to_be_bytes().to_vec(), None)?;
                svc.append(req).await.with_context(|| format!("append {i}"))?;
            }
            anyhow::Ok(())
        });
        for r in c.runtime().block_on(futures_util::future::join_all(runs)) {
            r?;
        }
        secs += start.elapsed().as_secs_f64();
        // The members still storing the slice's last blocks belong to its CPU, not to the floor.
        wait_until_stored(&c, n, chains.iter().map(|(_, _, g)| g), end - 1)?;
        let slice_cpu_ms = (cpu_seconds() - cpu0) * 1e3;
        cpu_ms += slice_cpu_ms;
        let floor = bls_floor(&c, n, &first_svc, &first_genesis, next..end)?;
        let slice_cpu_per_append = slice_cpu_ms / ((end - next) * clients as u64) as f64;
        ratios.push(slice_cpu_per_append / floor.ms);
        shared_ratios.push(slice_cpu_per_append / floor.shared_ms);
        floors.push(floor);
        next = end;
    }
    let total = per_client * clients as u64;
    let batched_after = batched_totals(&c, n)?;
    let (rounds, served) = (batched_after.0 - batched_before.0, batched_after.1 - batched_before.1);
    // Each append goes through two rounds (prepare, links): its share is over both.
    let batched =
        (rounds, if rounds == 0 { 0.0 } else { served as f64 / rounds as f64 }, served as f64 / (2 * total) as f64);
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1) as f64;
    floors.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    ratios.sort_by(|a, b| a.total_cmp(b));
    shared_ratios.sort_by(|a, b| a.total_cmp(b));
    // The median slice's floor (its mean height and link rounds with it).
    let floor = &floors[floors.len() / 2];
    let ratio_to_floor = ratios[ratios.len() / 2];
    // On a shared machine the wall-clock rate follows the other load; the CPU time per append
    // does not, and the cores over it bound the rate this machine reaches when idle.
    outln!(
        "{}",
        serde_json::json!({ "bench": "skipchain_appends", "nodes": n, "chains": clients, "links": links,
            "appends": total,
            "appends_per_sec": total as f64 / secs, "cpu_ms_per_append": cpu_ms / total as f64,
            "cpu_bound_appends_per_sec": cores * 1e3 * total as f64 / cpu_ms,
            "bls_floor_ms_per_append": floor.ms, "bls_bound_appends_per_sec": cores * 1e3 / floor.ms,
            "ratio_cpu_to_bls_floor": ratio_to_floor,
            "shared_bls_floor_ms_per_append": floor.shared_ms,
            "ratio_cpu_to_shared_bls_floor": shared_ratios[shared_ratios.len() / 2],
            "mean_height": floor.mean_height, "link_rounds_per_append": floor.link_rounds,
            "proposers": setup.proposers, "batch": if setup.batched { "on" } else { "off" },
            "batched_rounds": batched.0, "appends_per_batched_round": batched.1,
            "share_in_batched_rounds": batched.2 })
    );
    let after = phase_totals(&c, n)?;
    let mut breakdown = serde_json::Map::new();
    breakdown.insert("bench".into(), "skipchain_append_breakdown".into());
    breakdown.insert("nodes".into(), n.into());
    breakdown.insert("chains".into(), clients.into());
    breakdown.insert("links".into(), links.into());
    breakdown.insert("append_ms".into(), (secs * 1e3 * clients as f64 / total as f64).into());
    for ((phase, calls0, secs0), (_, calls1, secs1)) in before.into_iter().zip(after) {
        let calls = calls1 - calls0;
        let ms = if calls == 0 { 0.0 } else { (secs1 - secs0) * 1e3 / calls as f64 };
        breakdown.insert(format!("{}_ms", phase.name()), ms.into());
        breakdown.insert(format!("{}_per_append", phase.name()), (calls as f64 / total as f64).into());
    }
    outln!("{}", serde_json::Value::Object(breakdown));
    Ok(())
}

/// Batched rounds the members led so far, and the appends they served.
fn batched_totals(c: &LocalCluster, n: usize) -> Result<(u64, u64)> {
    let mut totals = (0, 0);
    for i in 0..n {
        let (rounds, appends) = c.node(i).skipchain().context("skipchain service")?.batched_rounds();
        totals = (totals.0 + rounds, totals.1 + appends);
    }
    Ok(totals)
}

/// The BLS work an append needs at the least under the protocol, timed single-threaded here on
/// blocks of the chain just built (so with its real mix of heights).
struct Floor {
    /// With every member checking on its own, as members on machines of their own do between them.
    ms: f64,
    /// In one process: every distinct pairing check once (a member storing links finds the check
    /// its round's root made among the process's passed checks). A looser lower bound: decoding
    /// and key sums are still paid per member.
    shared_ms: f64,
    mean_height: f64,
    /// Forward-link rounds per append (distinct link signatures of a block): the mean height
    /// with v1 links, 1 with v2 links (one per source roster).
    link_rounds: f64,
}

/// Times, on up to 64 blocks of `genesis` (the first of `blocks_of`): a BLS signature of a link, one link verified
/// on its own (decode + aggregate check: the cost of a root's or a certificate's check) and all of
/// a block's links verified as a member storing it does. The floor per append with n members and
/// r link rounds (v1: r = the block's height h, one per level; v2: one per source roster,
/// usually one) is n(1+r) signatures (prepare + links, by every member), 1+r root checks, n−1
/// certificate checks and n−1 link checks of a stored block, less the 1+r hashes to G2 of each
/// member's checks (a member verifies statements it signed itself with the points it hashed then).
/// With v4 links (the fast path) the prepare is the link: r = 0 and no certificate checks. That is
/// the floor of members on machines of their own; in one process the certificates and the stored
/// links are the totals the roots checked, so the shared floor is n(1+r) signatures and 1+r root
/// checks.
fn bls_floor(
    c: &LocalCluster,
    n: usize,
    svc: &SkipchainService,
    genesis: &SkipBlock,
    blocks_of: std::ops::Range<u64>,
) -> Result<Floor> {
    let key = c.node(0).config().cosi_key().cloned().context("node 0 has no cosi key")?;
    let st = svc.store();
    let (mut sign, mut single, mut stored, mut heights, mut blocks) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut hash = 0.0;
    let mut rounds = 0.0;
    let mut certificate_checks = 0.0;
    for i in blocks_of.clone().take(64) {
        let block = st.block_at(&genesis.hash, i).context("appended block missing")?;
        let mut levels = Vec::new();
        for h in 0..block.height as usize {
            let src = st.block_at(&genesis.hash, i - level_distance(block.base_height, h)).context("source block")?;
            let link = src.forward_links.get(h).cloned().context("forward link missing")?;
            let keys = src.roster.as_ref().context("roster")?.cosi_keys().map_err(anyhow::Error::msg)?;
            levels.push((src, link, keys));
        }
        let checks: Vec<LinkToCheck<'_>> =
            levels.iter().map(|(src, link, keys)| LinkToCheck { from: src, to: &block, link, keys }).collect();
        let t = Instant::now();
        let signature = key.sign(&block.hash);
        sign += t.elapsed().as_secs_f64();
        std::hint::black_box(signature);
        let t = Instant::now();
        std::hint::black_box(conode_core::crypto::bls::hash_to_g2(&block.hash));
        hash += t.elapsed().as_secs_f64();
        let (src, link, keys) = &levels[0];
        let t = Instant::now();
        verify_link_with_keys(src, &block, link, Policy::Default, keys).map_err(anyhow::Error::msg)?;
        single += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for r in verify_links_with_keys(&checks, Policy::Default) {
            r.map_err(anyhow::Error::msg)?;
        }
        stored += t.elapsed().as_secs_f64();
        heights += block.height as f64;
        let mut signatures: Vec<_> = levels.iter().map(|(_, link, _)| link.signature.clone()).collect();
        signatures.dedup();
        let fast = levels.iter().all(|(_, link, _)| link.format == LINK_FORMAT_V4);
        rounds += if fast { 0.0 } else { signatures.len() as f64 };
        certificate_checks += if fast { 0.0 } else { 1.0 };
        blocks += 1.0;
    }
    anyhow::ensure!(blocks > 0.0, "no appended block to time");
    let (sign, single, stored, hash) = (sign / blocks, single / blocks, stored / blocks, hash / blocks);
    let (h, r, certificates) = (heights / blocks, rounds / blocks, certificate_checks / blocks);
    let n = n as f64;
    let shared_ms = 1e3 * (n * (1.0 + r) * sign + (1.0 + r) * single);
    let ms = shared_ms + 1e3 * (n - 1.0) * (certificates * single + stored - (1.0 + r) * hash);
    Ok(Floor { ms, shared_ms, mean_height: h, link_rounds: r })
}

/// Waits (at most 30 s) until every member holds block `index` of every chain of `genesis`.
fn wait_until_stored<'a>(
    c: &LocalCluster,
    n: usize,
    genesis: impl Iterator<Item = &'a SkipBlock> + Clone,
    index: u64,
) -> Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    for i in 0..n {
        let store = c.node(i).skipchain().context("skipchain service")?.store().clone();
        for g in genesis.clone() {
            while store.latest_index(&g.hash).is_none_or(|l| l < index) {
                anyhow::ensure!(Instant::now() < deadline, "member {i} did not store block {index} within 30 s");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    Ok(())
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Phase totals summed over the members: (phase, calls, seconds).
fn phase_totals(c: &LocalCluster, n: usize) -> Result<Vec<(Phase, u64, f64)>> {
    let mut sum: Vec<(Phase, u64, f64)> = Phase::ALL.iter().map(|&p| (p, 0, 0.0)).collect();
    for i in 0..n {
        for (slot, (_, calls, secs)) in
            sum.iter_mut().zip(c.node(i).skipchain().context("skipchain service")?.append_phases())
        {
            slot.1 += calls;
            slot.2 += secs;
        }
    }
    Ok(sum)
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
