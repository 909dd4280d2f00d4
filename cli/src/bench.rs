//! `conode bench …`: benchmarks that print one JSON object per line (machine-readable). Speed and
//! memory goals are checked here, never in timed unit tests.

use anyhow::{Context, Result};
use conode_core::cluster::LocalCluster;
use conode_core::services::cosi::bench::{DegradedResult, FaultCount};
use conode_core::services::status::messages::StatusRequest;
use futures_util::{SinkExt, StreamExt};
use prost::Message;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Node start-to-ready time, idle RSS per node, status requests per second over WebSocket.
    Node {
        /// Cluster sizes to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,50")]
        nodes: Vec<usize>,
        /// Status requests per measurement.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// Concurrent WebSocket clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Entries written to node 0's database before measuring (status reports their count).
        #[arg(long, default_value_t = 10_000)]
        entries: usize,
        /// Generate the status load in this process instead of a separate one.
        #[arg(long)]
        in_process_load: bool,
    },
    /// The load generator of `bench node`: status requests over `clients` WebSockets to `url`;
    /// prints {"status_requests_per_sec": …}.
    StatusLoad {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
    },
    /// Collective signing round latency p50/p99 and the CPU limit measured in the same run; with
    /// `--down`/`--hung`/`--table`, healthy against degraded latency instead.
    Cosi {
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// Spread each roster over this many processes on loopback (each a cluster of about n/K
        /// nodes; the first one's node 0 is the root), for rosters one process cannot hold.
        #[arg(long)]
        hosts: Option<usize>,
        #[command(flatten)]
        degraded: Degraded,
    },
    /// One process of `bench cosi --hosts`: starts this many nodes, prints their roster and serves
    /// until its stdin closes.
    #[command(hide = true)]
    CosiHost {
        #[arg(long)]
        nodes: usize,
    },
    /// Hot backup of a node with a long skipchain and beacon chain: time and size, appends per
    /// second with and without a backup running, recovery time of the restored node.
    Backup {
        /// Skipchain blocks appended before the backup.
        #[arg(long, default_value_t = 10_000)]
        blocks: u64,
        /// Beacon rounds stored before the backup.
        #[arg(long, default_value_t = 10_000)]
        rounds: u64,
        /// Seconds of each append-rate window (without, then with backups running).
        #[arg(long, default_value_t = 10.0)]
        window: f64,
    },
    /// Skipchain appends per second, and light verification of a long chain's proof.
    Skipchain {
        /// Roster sizes for the append rate.
        #[arg(long, value_delimiter = ',', default_value = "4,7")]
        nodes: Vec<usize>,
        /// Appends measured per roster size.
        #[arg(long, default_value_t = 300)]
        appends: u64,
        /// Length of the chain whose proof is verified (built with 4 nodes).
        #[arg(long, default_value_t = 10_000)]
        chain: u64,
        /// Concurrent clients, each appending to its own chain through its own member (chain k
        /// through member k mod n, or k mod --proposers), comma-separated: one append-rate line per
        /// count.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        chains: Vec<usize>,
        /// Members the clients append through (the first P; default: every member). With 1, all
        /// chains' appends reach one proposer, whose appends of different chains share rounds.
        #[arg(long)]
        proposers: Option<usize>,
        /// Whether proposers batch the appends of different chains into shared rounds,
        /// comma-separated, one append-rate line each, in turn (e.g. `off,on,off,on`).
        #[arg(long, value_delimiter = ',', default_value = "on")]
        batch: Vec<String>,
        /// Forward-link formats the proposers sign, comma-separated, one append-rate line each, in
        /// turn (e.g. `v2,v4,v2,v4` for an A/B comparison): v4 = the fast path (a view-1 prepare
        /// every member signed is the link: one round per append), v2 = two rounds per append (the
        /// links of all levels in one), v1 = one link round per level (as before v2).
        #[arg(long, value_delimiter = ',', default_value = "v4")]
        links: Vec<String>,
        #[command(flatten)]
        degraded: Degraded,
    },
    /// Batch verification of many beacons of one chain against one by one (per beacon, both schemes).
    VerifyBeacons {
        /// Beacons per batch (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        rounds: Vec<usize>,
        /// drand schemes (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "pedersen-bls-chained,bls-unchained-g1-rfc9380")]
        scheme: Vec<String>,
    },
    /// Membership: a network grows from --from to --to nodes one join at a time; per join, the
    /// time from the deciding ballot to the joiner being PartOfNetwork.
    Membership {
        #[arg(long, default_value_t = 4)]
        from: usize,
        #[arg(long, default_value_t = 7)]
        to: usize,
        /// Also run a beacon chain that reshares at each join, and measure the time from the
        /// deciding ballot to the first round of the reshared group.
        #[arg(long)]
        beacon: bool,
    },
    /// Beacon latency from the period tick to the beacon being served, and verifications per second
    /// of the pure verifier against raw blst, from the same run.
    Beacon {
        /// Member counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "7")]
        members: Vec<usize>,
        /// Rounds (of 1 s) measured per member count.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// drand schemes (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "pedersen-bls-chained,bls-unchained-g1-rfc9380")]
        scheme: Vec<String>,
        /// Beacon verifications timed per verifier.
        #[arg(long, default_value_t = 2000)]
        verifications: usize,
    },
}

/// Degraded runs: the same operations with members stopped or hung, against a healthy phase on the
/// same cluster (p50/p99 and their ratios, one JSON line per run).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Degraded {
    /// Members stopped in the degraded phase (connections refused): a number, `f` or `f+1`.
    #[arg(long)]
    pub down: Option<FaultCount>,
    /// Members hung in the degraded phase (they accept requests and never answer; the `Silent`
    /// fault of in-process clusters): a number, `f` or `f+1`.
    #[arg(long)]
    pub hung: Option<FaultCount>,
    /// For each size: f down, f hung and f+1 down (each against its own healthy phase).
    #[arg(long)]
    pub table: bool,
    /// Every member a `conode server` process, called over its client port; a hung member is
    /// stopped with SIGSTOP (instead of nodes in this process with the `Silent` fault).
    #[arg(long)]
    pub processes: bool,
}

impl Degraded {
    pub fn is_set(&self) -> bool {
        self.table || self.down.is_some() || self.hung.is_some()
    }

    /// (down, hung) of every degraded run for a cluster of `n`.
    pub fn runs(&self, n: usize) -> Vec<(usize, usize)> {
        if self.table {
            return vec![(FaultCount::F.of(n), 0), (0, FaultCount::F.of(n)), (FaultCount::FPlusOne.of(n), 0)];
        }
        vec![(self.down.map_or(0, |k| k.of(n)), self.hung.map_or(0, |k| k.of(n)))]
    }
}

/// Prints a degraded result as one JSON line.
pub fn print_degraded(r: &DegradedResult) {
    outln!("{}", serde_json::json!(r));
}

/// Resident set size of this process in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Node { nodes, requests, clients, entries, in_process_load } => {
            bench_node(&nodes, requests, clients, entries, in_process_load)
        }
        BenchCommand::StatusLoad { url, requests, clients } => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let rps = rt.block_on(status_rps(&url, requests, clients))?;
            outln!("{}", serde_json::json!({ "status_requests_per_sec": rps }));
            Ok(())
        }
        BenchCommand::Cosi { hosts: Some(_), degraded, .. } if degraded.is_set() => {
            anyhow::bail!("--hosts measures healthy rounds only: leave out --down, --hung and --table")
        }
        BenchCommand::Cosi { nodes, rounds, degraded, .. } if degraded.is_set() => {
            for &n in &nodes {
                for (down, hung) in degraded.runs(n) {
                    let r = if degraded.processes {
                        crate::bench_processes::cosi(n, rounds, down, hung)?
                    } else {
                        conode_core::services::cosi::bench::run_degraded(n, rounds, down, hung)
                            .map_err(anyhow::Error::msg)?
                    };
                    print_degraded(&r);
                }
            }
            Ok(())
        }
        BenchCommand::Cosi { nodes, rounds, hosts: Some(hosts), .. } => {
            for &n in &nodes {
                let r = crate::bench_hosts::cosi(n, hosts, rounds)?;
                outln!("{}", serde_json::json!({ "bench": "cosi", "result": r }));
            }
            Ok(())
        }
        BenchCommand::CosiHost { nodes } => crate::bench_hosts::host(nodes),
        BenchCommand::Cosi { nodes, rounds, .. } => {
            for r in conode_core::services::cosi::bench::try_run_bench(&nodes, rounds).map_err(anyhow::Error::msg)? {
                outln!("{}", serde_json::json!({ "bench": "cosi", "result": r }));
            }
            Ok(())
        }
        BenchCommand::Skipchain { nodes, appends, degraded, .. } if degraded.is_set() => {
            crate::bench_skipchain::run_degraded(&nodes, appends as usize, &degraded)
        }
        BenchCommand::Skipchain { nodes, appends, chain, chains, links, proposers, batch, .. } => {
            crate::bench_skipchain::run(&nodes, appends, chain, &chains, &links, proposers, &batch)
        }
        BenchCommand::VerifyBeacons { rounds, scheme } => crate::bench_verify::run(&rounds, &scheme),
        BenchCommand::Backup { blocks, rounds, window } => crate::bench_backup::run(blocks, rounds, window),
        BenchCommand::Membership { from, to, beacon } => {
            for sample in conode_core::services::membership::bench::join_latency_with(from, to, beacon)
                .map_err(anyhow::Error::msg)?
            {
                outln!("{}", serde_json::to_string(&sample)?);
            }
            Ok(())
        }
        BenchCommand::Beacon { members, rounds, scheme, verifications } => {
            crate::beacon::bench(&members, rounds, &scheme, verifications)
        }
    }
}

fn bench_node(sizes: &[usize], requests: usize, clients: usize, entries: usize, in_process: bool) -> Result<()> {
    if sizes.len() > 1 {
        // One fresh process per size: freed memory is not returned to the OS, so measuring several
        // sizes in one process would skew the RSS figures.
        let exe = std::env::current_exe()?;
        for n in sizes {
            let status = std::process::Command::new(&exe)
                .args([
                    "bench",
                    "node",
                    "--nodes",
                    &n.to_string(),
                    "--requests",
                    &requests.to_string(),
                    "--clients",
                    &clients.to_string(),
                    "--entries",
                    &entries.to_string(),
                ])
                .args(in_process.then_some("--in-process-load"))
                .status()?;
            anyhow::ensure!(status.success(), "bench for {n} nodes failed");
        }
        return Ok(());
    }
    for &n in sizes {
        let before = rss_kib();
        let t0 = Instant::now();
        let cluster = LocalCluster::new(n).context("starting the cluster")?;
        let url0 = cluster.client_url(0).context("node 0 not running")?;
        // Ready = the client port of the last node answers.
        let last = cluster.client_url(n - 1).context("node not running")?;
        cluster.runtime().block_on(wait_ok(&last))?;
        let start_to_ready = t0.elapsed();
        // Let background work settle, then measure idle memory.
        std::thread::sleep(Duration::from_millis(500));
        let idle_rss = rss_kib().saturating_sub(before);
        fill_db(&cluster, entries)?;
        let cpu_before = cpu_time();
        let rps = if in_process {
            cluster.runtime().block_on(status_rps(&url0, requests, clients))?
        } else {
            external_status_rps(&url0, requests, clients)?
        };
        // With the load in another process, this process' CPU time is the node's.
        let node_cpu_us = (cpu_time() - cpu_before).as_secs_f64() * 1e6 / requests as f64;
        outln!(
            "{}",
            serde_json::json!({
                "bench": "node",
                "nodes": n,
                "start_to_ready_ms_total": start_to_ready.as_secs_f64() * 1e3,
                "start_to_ready_ms_per_node": start_to_ready.as_secs_f64() * 1e3 / n as f64,
                "idle_rss_kib_per_node": idle_rss / n as u64,
                "status_requests_per_sec": rps,
                "status_clients": clients,
                "db_entries_filled": entries,
                "load_in_process": in_process,
                "node_cpu_us_per_status_request": (!in_process).then_some(node_cpu_us),
            })
        );
        drop(cluster);
    }
    Ok(())
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Writes `entries` small entries to node 0's database (one batch).
fn fill_db(cluster: &LocalCluster, entries: usize) -> Result<()> {
    if entries == 0 {
        return Ok(());
    }
    let ctx = cluster.node(0).context().context("node 0 not running")?;
    let tree = ctx.storage.tree("bench.fill")?;
    let kv: Vec<(Vec<u8>, Vec<u8>)> = (0..entries as u64).map(|i| (i.to_be_bytes().to_vec(), vec![0u8; 64])).collect();
    let refs: Vec<(&[u8], &[u8])> = kv.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    tree.put_batch(&refs)?;
    Ok(())
}

/// Runs the load generator as another process (`bench status-load`) and reads its result.
fn external_status_rps(url: &str, requests: usize, clients: usize) -> Result<f64> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "status-load", "--url", url])
        .args(["--requests", &requests.to_string(), "--clients", &clients.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "load generator failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("load generator output")?;
    v["status_requests_per_sec"].as_f64().context("no status_requests_per_sec in the load generator's output")
}

async fn wait_ok(ws_base: &str) -> Result<()> {
    let http = ws_base.replacen("ws://", "http://", 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{http}/ok")).await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{http}/ok did not answer in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Status requests per second with `clients` persistent WebSockets.
async fn status_rps(base: &str, requests: usize, clients: usize) -> Result<f64> {
    let per_client = requests.div_ceil(clients.max(1));
    let body = StatusRequest {}.encode_to_vec();
    let mut sockets = Vec::new();
    for _ in 0..clients.max(1) {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{base}/Status/Request")).await?;
        sockets.push(ws);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in sockets {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                ws.send(WsMessage::Binary(body.clone())).await?;
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(_))) => {}
                    other => anyhow::bail!("unexpected reply {other:?}"),
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_client * clients.max(1)) as f64 / start.elapsed().as_secs_f64())
}
