//! Benchmark of collective signing: a `LocalCluster` per size (real TLS, one process), R rounds from
//! node 0, p50/p99 latency, compared in the same run with
//! - the physical limit of a round: the n BLS signatures divided by the cores, plus one aggregate
//!   verification (what any BLS-CoSi round must do, whatever its protocol);
//! - the tree limit: the CPU work of this protocol's round (the n signatures, decoding and adding
//!   every partial at the sub-leaders and the root, the root's one verification), divided by the
//!   cores.
//!
//! Rounds and limit measurements alternate (both see the same machine load); after each
//! measurement one round runs unmeasured, so that the measured ones find the cluster at work.
//!
//! It also reports the first (cold) round against the warm ones, the tree shape the root chose,
//! and the memory per node.

use super::aggregate::{self, Contribution};
use super::tree;
use crate::cluster::LocalCluster;
use crate::crypto::BlsKeyPair;
use crate::verify::cosi::{Mask, Policy};
use std::time::{Duration, Instant};

/// Figures of one cluster size.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    pub nodes: usize,
    pub rounds: usize,
    /// Median latency of a round, as seen by the caller of `CosiService::sign`.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// n signatures / cores + one aggregate verification, measured in this run.
    pub physical_limit_ms: f64,
    /// CPU time of this protocol's round divided by the cores.
    pub tree_limit_ms: f64,
    pub ratio_p50_to_physical: f64,
    /// The physical limit with the n signatures timed on all cores at once (each core signing
    /// its share), not one core's time divided by the cores: what this machine's cores give
    /// together (on shared or virtual cores, less than the sum of each alone).
    pub physical_limit_parallel_ms: f64,
    pub ratio_p50_to_physical_parallel: f64,
    /// One core's signing time divided by the cores, against the wall time of all cores signing
    /// at once: 1.0 when the cores add up perfectly.
    pub parallel_signing_efficiency: f64,
    pub ratio_p50_to_tree: f64,
    /// The first round on a fresh cluster, once the root prepared the roster (see
    /// `prepare_ms`): the sub-leaders still dial their leaves.
    pub first_round_ms: f64,
    /// The root's preparation of the roster when it became known (its PoP batch check and the
    /// links to its sub-leaders); before it existed, the first round paid for it.
    pub prepare_ms: f64,
    pub ratio_first_to_p50: f64,
    /// CPU time the whole process (all nodes) spent per measured round (10 ms resolution).
    pub process_cpu_ms_per_round: f64,
    /// That CPU time against the tree's CPU work (not divided by the cores): the protocol's
    /// overhead in CPU, independent of what else the machine runs.
    pub ratio_process_cpu_to_tree_cpu: f64,
    /// Depth and fan-out of the root's tree (from n and the measured round-trip time).
    pub depth: usize,
    pub fanout: usize,
    pub rtt_us: Option<f64>,
    pub cores: usize,
    /// Resident memory of the process divided by the nodes, after the rounds.
    pub rss_per_node_kib: u64,
    /// Where the nodes ran.
    pub processes: &'static str,
    /// The machine's 1-minute load average when the size finished (other work competes for the
    /// cores the limits assume).
    pub load_avg_1m: f64,
}

/// Runs the benchmark for each size in `nodes` with `rounds` measured rounds each. Panics with a
/// message when a cluster cannot start or a round fails (see [`try_run_bench`]).
pub fn run_bench(nodes: &[usize], rounds: usize) -> Vec<BenchResult> {
    match try_run_bench(nodes, rounds) {
        Ok(r) => r,
        Err(e) => panic!("cosi bench: {e}"),
    }
}

/// [`run_bench`] returning errors instead of panicking.
pub fn try_run_bench(nodes: &[usize], rounds: usize) -> Result<Vec<BenchResult>, String> {
    let mut out = Vec::new();
    for &n in nodes {
        out.push(bench_size(n, rounds.max(1))?);
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// User + system CPU time of this process so far (Linux; zero elsewhere).
pub(crate) fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return Duration::ZERO };
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Resident memory of this process (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench_size(n: usize, rounds: usize) -> Result<BenchResult, String> {
    if n == 0 {
        return Err("a cluster needs at least one node".into());
    }
    let cluster = LocalCluster::new(n).map_err(|e| format!("cannot start {n} nodes: {e}"))?;
    let svc = cluster.node(0).cosi().map_err(|e| format!("node 0: {e}"))?;
    let roster = cluster.roster().clone();
    let rt = cluster.runtime();
    let round = |i: usize| {
        let statement = format!("cosi bench round {i}").into_bytes();
        let t = Instant::now();
        let r = rt.block_on(svc.sign(&roster, &statement, super::OPEN_SIGNING_PURPOSE, &[], Policy::Default));
        (t.elapsed(), r)
    };
    // The roster becomes known to the root (as when it is loaded or set as the default): its
    // PoPs are checked and the links to the sub-leaders opened before any round.
    let t = Instant::now();
    rt.block_on(svc.prepare(&roster)).map_err(|e| format!("{n} nodes, preparing the roster: {e}"))?;
    let prepare = t.elapsed();
    // The first round is still cold (the sub-leaders' links to their leaves, the members'
    // rosters); one more warms up.
    let mut first = Duration::ZERO;
    for i in 0..2 {
        let (d, r) = round(usize::MAX - i);
        if i == 0 {
            first = d;
        }
        let out = r.map_err(|e| format!("{n} nodes, warm-up round: {e}"))?;
        if out.report.signed.len() != n {
            return Err(format!(
                "{n} nodes, warm-up round {i}: only {} signed: {:?}",
                out.report.signed.len(),
                out.report.missing()
            ));
        }
    }
    let keys: Vec<BlsKeyPair> = cluster
        .nodes()
        .iter()
        .map(|node| node.config().cosi_key().cloned().ok_or("a node has no cosi key"))
        .collect::<Result<_, _>>()?;
    let rtt = cluster
        .node(0)
        .network()
        .and_then(|net| roster.servers.iter().skip(1).filter_map(|s| net.health().rtt(&s.public)).take(32).min());
    let (depth, fanout) = tree::shape(n.saturating_sub(1), rtt);
    let groups = tree::groups_shaped(n, 0, |_| true, rtt);
    // Rounds and limit measurements alternate, so that both see the same machine load.
    let mut lat = Vec::with_capacity(rounds);
    let (mut phys, mut treew) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let (mut phys_parallel, mut efficiency) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut cpu_rounds = Duration::ZERO;
    for i in 0..rounds {
        let cpu0 = process_cpu();
        let (d, r) = round(i);
        cpu_rounds += process_cpu().saturating_sub(cpu0);
        let out = r.map_err(|e| format!("{n} nodes, round {i}: {e}"))?;
        if out.report.signed.len() != n {
            tracing::warn!(nodes = n, round = i, signed = out.report.signed.len(), "cosi bench: not every node signed");
        }
        lat.push(d);
        let work = cpu_work(&keys, &groups, i);
        phys.push(work.physical);
        treew.push(work.tree_cpu);
        phys_parallel.push(work.physical_parallel);
        efficiency.push(work.parallel_efficiency);
        // The measurement (a burst of signing on every core, outside the cluster) leaves the
        // caches and the runtime's workers to it: the next round ran 5-10 ms slower at n = 64
        // (a fifth to a third of the rounds, against a tenth with rounds back to back). One
        // round runs unmeasured, so the figures are of a cluster at work, not of one woken up
        // after the bench's own work.
        let (_, r) = round(usize::MAX / 2 - i);
        r.map_err(|e| format!("{n} nodes, round {i} (after the measurement, unmeasured): {e}"))?;
    }
    lat.sort();
    phys.sort();
    treew.sort();
    phys_parallel.sort();
    efficiency.sort_by(|a, b| a.total_cmp(b));
    let physical_parallel = phys_parallel[phys_parallel.len() / 2];
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let physical = phys[phys.len() / 2];
    // The CPU the process spent per round, against the tree's CPU work (single-threaded): how
    // much work the protocol adds, whatever else runs on the machine.
    let cpu_per_round = cpu_rounds / rounds as u32;
    let tree_cpu = treew[treew.len() / 2];
    let tree_limit = treew[treew.len() / 2] / cores as u32;
    let p50 = percentile(&lat, 50.0);
    let ratio = |a: Duration, b: Duration| if b.is_zero() { 0.0 } else { a.as_secs_f64() / b.as_secs_f64() };
    Ok(BenchResult {
        nodes: n,
        rounds,
        p50_ms: ms(p50),
        p99_ms: ms(percentile(&lat, 99.0)),
        physical_limit_ms: ms(physical),
        tree_limit_ms: ms(tree_limit),
        ratio_p50_to_physical: ratio(p50, physical),
        physical_limit_parallel_ms: ms(physical_parallel),
        ratio_p50_to_physical_parallel: ratio(p50, physical_parallel),
        parallel_signing_efficiency: efficiency[efficiency.len() / 2],
        ratio_p50_to_tree: ratio(p50, tree_limit),
        first_round_ms: ms(first),
        prepare_ms: ms(prepare),
        ratio_first_to_p50: ratio(first, p50),
        process_cpu_ms_per_round: ms(cpu_per_round),
        ratio_process_cpu_to_tree_cpu: ratio(cpu_per_round, tree_cpu),
        depth,
        fanout,
        rtt_us: rtt.map(|d| d.as_secs_f64() * 1e6),
        cores,
        rss_per_node_kib: rss_kib() / n as u64,
        processes: "one",
        load_avg_1m: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0),
    })
}

/// One round's cryptography measured with node 0 as root (see [`CpuWork`]).
struct CpuWork {
    /// The n signatures timed on one core, divided by the cores, plus the one aggregate
    /// verification.
    physical: Duration,
    /// The n signatures timed on all cores at once, plus the one aggregate verification.
    physical_parallel: Duration,
    /// One core's signing time over the cores, against the wall time of all cores at once.
    parallel_efficiency: f64,
    /// The tree's CPU work (the signatures, every partial decoded from its uncompressed form and
    /// added at its sub-leader, every group aggregate decoded and added at the root, one
    /// verification), not divided by the cores.
    tree_cpu: Duration,
}

fn cpu_work(keys: &[BlsKeyPair], groups: &[tree::Group], run: usize) -> CpuWork {
    let n = keys.len();
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let pubs: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let statement = format!("cpu limit run {run}").into_bytes();
    // Each key keeps the points of statements it hashed: the parallel run signs another one. The
    // order alternates, so that what the round left running weighs on both alike.
    let all_cores = format!("cpu limit run {run}, all cores").into_bytes();
    let parallel = run.is_multiple_of(2).then(|| parallel_signing(keys, &all_cores, cores));
    let t = Instant::now();
    let partials: Vec<[u8; 192]> = keys.iter().map(|k| k.sign(&statement).raw().serialize()).collect();
    let signing = t.elapsed();
    let parallel = parallel.unwrap_or_else(|| parallel_signing(keys, &all_cores, cores));
    let decode = |i: usize, mask: Mask, bytes: &[u8]| Contribution {
        from: i,
        mask,
        sig: aggregate::decode_sig(bytes).expect("own signature"),
    };
    let t = Instant::now();
    let mut top = vec![decode(0, Mask::from_indices(n, [0]), &partials[0])];
    for g in groups {
        let contribs: Vec<Contribution> =
            g.members().map(|i| decode(i, Mask::from_indices(n, [i]), &partials[i])).collect();
        if g.leaves.is_empty() {
            top.extend(contribs);
            continue;
        }
        let (sig, mask) = aggregate::combine(n, contribs.iter()).expect("non-empty group");
        top.push(decode(g.leader, mask, &sig.serialize()));
    }
    let (sig, mask) = aggregate::combine(n, top.iter()).expect("root partial");
    let adding = t.elapsed();
    let t = Instant::now();
    assert!(aggregate::verify(&statement, &sig, &mask, &pubs));
    let verifying = t.elapsed();
    let per_core = signing / cores as u32;
    CpuWork {
        physical: per_core + verifying,
        physical_parallel: parallel + verifying,
        parallel_efficiency: if parallel.is_zero() { 0.0 } else { per_core.as_secs_f64() / parallel.as_secs_f64() },
        tree_cpu: signing + adding + verifying,
    }
}

/// Wall time of every key of `keys` signing `statement`, the keys split over `cores` threads
/// that sign at once.
pub fn parallel_signing(keys: &[BlsKeyPair], statement: &[u8], cores: usize) -> Duration {
    on_all_cores(keys.len(), cores, |i| {
        std::hint::black_box(keys[i].sign(statement));
    })
}

/// Wall time of `job(0..n)` split over `cores` threads that run at once (each a contiguous share).
pub fn on_all_cores(n: usize, cores: usize, job: impl Fn(usize) + Sync) -> Duration {
    let share = n.div_ceil(cores.max(1)).max(1);
    let job = &job;
    let t = Instant::now();
    std::thread::scope(|s| {
        for start in (0..n).step_by(share) {
            s.spawn(move || (start..(start + share).min(n)).for_each(job));
        }
    });
    t.elapsed()
}

/// How many members a degraded run takes out: a number, or `f` (= ⌊(n−1)/3⌋, what the default
/// policy tolerates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCount {
    Exactly(usize),
    F,
    /// f + 1: one more than the policy tolerates.
    FPlusOne,
}

impl FaultCount {
    pub fn of(self, n: usize) -> usize {
        let f = n.saturating_sub(1) / 3;
        match self {
            FaultCount::Exactly(k) => k,
            FaultCount::F => f,
            FaultCount::FPlusOne => f + 1,
        }
    }
}

impl std::str::FromStr for FaultCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f" => Ok(FaultCount::F),
            "f+1" => Ok(FaultCount::FPlusOne),
            k => k.parse().map(FaultCount::Exactly).map_err(|_| format!("`{k}`: expected a number, `f` or `f+1`")),
        }
    }
}

/// Healthy against degraded latency of one cluster size.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DegradedResult {
    pub bench: &'static str,
    pub nodes: usize,
    pub rounds: usize,
    /// Members stopped (connections refused).
    pub down: usize,
    /// Members hung (the `Silent` fault: they accept the request and never answer).
    pub hung: usize,
    pub healthy_p50_ms: f64,
    pub healthy_p99_ms: f64,
    pub degraded_p50_ms: f64,
    pub degraded_p99_ms: f64,
    /// The first degraded round (the one that finds out who is down).
    pub degraded_first_ms: f64,
    pub ratio_p50: f64,
    pub ratio_p99: f64,
    /// Degraded rounds that failed (expected when more than f members are out), and the median
    /// time to their error.
    pub failures: usize,
    pub failure_p50_ms: f64,
}

/// The members a degraded run takes out, root 0 excluded: the sub-leaders of root 0 first (the
/// worst place for a dead member), then the others from the end of the roster.
pub fn victims(n: usize, count: usize) -> Vec<usize> {
    let groups = tree::groups(n, 0);
    let mut out: Vec<usize> = groups.iter().map(|g| g.leader).collect();
    out.extend((1..n).rev().filter(|i| !groups.iter().any(|g| g.leader == *i)));
    out.truncate(count.min(n.saturating_sub(1)));
    out
}

/// Latency figures of a set of measured durations: (p50, p99) in ms.
pub fn p50_p99(mut lat: Vec<Duration>) -> (f64, f64) {
    lat.sort();
    (ms(percentile(&lat, 50.0)), ms(percentile(&lat, 99.0)))
}

/// What a degraded run does to the members it takes out: an in-process [`LocalCluster`] stops a
/// node (connections refused) and hangs one with the `Silent` fault; the CLI's process cluster
/// kills a `conode server` and stops one with SIGSTOP (the kernel still accepts connections and
/// acknowledges bytes, nothing answers).
pub trait Members {
    /// Members of the roster.
    fn size(&self) -> usize;
    fn take_down(&mut self, i: usize) -> Result<(), String>;
    fn hang(&mut self, i: usize) -> Result<(), String>;
}

impl Members for LocalCluster {
    fn size(&self) -> usize {
        self.len()
    }

    fn take_down(&mut self, i: usize) -> Result<(), String> {
        self.stop(i).map_err(|e| format!("stopping node {i}: {e}"))
    }

    fn hang(&mut self, i: usize) -> Result<(), String> {
        self.node(i).cosi().map_err(|e| format!("node {i}: {e}"))?.set_fault(super::CosiFault::Silent);
        Ok(())
    }
}

/// Runs `rounds` measured operations healthy, then takes out `down` (stopped) and `hung` members
/// and runs `rounds` more; `op(cluster, i)` is one measured operation. Used by the cosi and the
/// skipchain benchmarks, in process and with real processes.
pub fn degraded_run<C: Members, S>(
    bench: &'static str,
    cluster: &mut C,
    rounds: usize,
    down: usize,
    hung: usize,
    setup: impl FnOnce(&C) -> Result<S, String>,
    op: impl Fn(&C, &S, usize) -> Result<(), String>,
) -> Result<DegradedResult, String> {
    let n = cluster.size();
    let state = setup(cluster)?;
    let op = |cluster: &C, i: usize| op(cluster, &state, i);
    for i in 0..3 {
        op(cluster, usize::MAX - i).map_err(|e| format!("{n} nodes, warm-up: {e}"))?;
    }
    let mut healthy = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        op(cluster, i).map_err(|e| format!("{n} nodes, healthy round {i}: {e}"))?;
        healthy.push(t.elapsed());
    }
    let out = victims(n, down + hung);
    for &i in &out[..down.min(out.len())] {
        cluster.take_down(i)?;
    }
    for &i in out.iter().skip(down) {
        cluster.hang(i)?;
    }
    let (mut degraded, mut failed) = (Vec::with_capacity(rounds), Vec::new());
    for i in 0..rounds {
        let t = Instant::now();
        match op(cluster, rounds + i) {
            Ok(()) => degraded.push(t.elapsed()),
            Err(e) => {
                tracing::debug!(error = %e, "degraded round failed");
                failed.push(t.elapsed());
            }
        }
    }
    let first = degraded.first().or(failed.first()).copied().unwrap_or_default();
    let (h50, h99) = p50_p99(healthy);
    let (d50, d99) = p50_p99(degraded);
    let (f50, _) = p50_p99(failed.clone());
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(DegradedResult {
        bench,
        nodes: n,
        rounds,
        down,
        hung,
        healthy_p50_ms: h50,
        healthy_p99_ms: h99,
        degraded_p50_ms: d50,
        degraded_p99_ms: d99,
        degraded_first_ms: ms(first),
        ratio_p50: ratio(d50, h50),
        ratio_p99: ratio(d99, h99),
        failures: failed.len(),
        failure_p50_ms: f50,
    })
}

/// Cosi rounds from node 0 (default policy), healthy then with `down` + `hung` members out.
pub fn run_degraded(n: usize, rounds: usize, down: usize, hung: usize) -> Result<DegradedResult, String> {
    let mut cluster = LocalCluster::new(n).map_err(|e| format!("cannot start {n} nodes: {e}"))?;
    degraded_run(
        "cosi_degraded",
        &mut cluster,
        rounds,
        down,
        hung,
        |_| Ok(()),
        |cluster: &LocalCluster, _: &(), i| {
            let svc = cluster.node(0).cosi().map_err(|e| e.to_string())?;
            let statement = format!("cosi degraded bench round {i}").into_bytes();
            let roster = cluster.roster();
            let signing = svc.sign(roster, &statement, super::OPEN_SIGNING_PURPOSE, &[], Policy::Default);
            cluster.runtime().block_on(signing).map(|_| ()).map_err(|e| e.to_string())
        },
    )
}
