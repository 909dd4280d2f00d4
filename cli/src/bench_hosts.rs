//! `conode bench cosi --hosts K`: one roster spread over K processes on loopback, each hosting a
//! `LocalCluster` of about n/K nodes (`conode bench cosi-host`), for rosters one process cannot
//! hold (4,096 members need more open files than one process may have here). The rounds are asked
//! of the first member's client port, with the whole roster in the request, as a user would; the
//! first host's node 0 is the root.
//!
//! The physical limit of a round is measured in this process as in the one-process bench: the n
//! BLS signatures divided by the cores, plus one verification of the round's aggregate.

use anyhow::{bail, Context, Result};
use conode_core::api::client::Client;
use conode_core::client_api::ClientUrl;
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::BlsKeyPair;
use conode_core::services::cosi::messages::SignRequest;
use conode_core::services::cosi::{verify, Policy};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Figures of one roster size spread over several processes.
#[derive(Debug, serde::Serialize)]
pub struct HostsResult {
    pub nodes: usize,
    pub hosts: usize,
    pub rounds: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub physical_limit_ms: f64,
    pub ratio_p50_to_physical: f64,
    /// The physical limit with the n signatures timed on all cores at once (see `bench cosi`).
    pub physical_limit_parallel_ms: f64,
    pub ratio_p50_to_physical_parallel: f64,
    pub first_round_ms: f64,
    pub ratio_first_to_p50: f64,
    /// Time until every host had started its nodes.
    pub start_ms: f64,
    /// The root's preparation of the roster before the first round (PoP batch check, links).
    pub prepare_ms: f64,
    /// Resident memory of all host processes after the rounds, divided by the nodes.
    pub rss_per_node_kib: u64,
    pub cores: usize,
    pub processes: &'static str,
    pub load_avg_1m: f64,
}

/// The hidden `conode bench cosi-host`: starts `nodes` nodes, prints the roster's TOML between
/// marker lines on stdout, then serves until its stdin closes (the bench ends or dies). A whole
/// roster sent on stdin between the same markers becomes node 0's default roster, so that the
/// rounds need not carry (and the root need not parse and check) thousands of members each time.
pub fn host(nodes: usize) -> Result<()> {
    raise_open_files();
    let cluster =
        LocalCluster::with_options(ClusterOptions::new(nodes)).with_context(|| format!("starting {nodes} nodes"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", ROSTER_BEGIN)?;
    out.write_all(cluster.roster().to_toml().as_bytes())?;
    writeln!(out, "\n{}", ROSTER_END)?;
    out.flush()?;
    drop(out);
    // Serve until the parent closes our stdin.
    let mut roster = String::new();
    let mut inside = false;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        match line.as_str() {
            ROSTER_BEGIN => inside = true,
            ROSTER_END if inside => {
                inside = false;
                let whole = Roster::from_toml_str(Path::new("<whole roster>"), &roster)
                    .map_err(|e| anyhow::anyhow!("the whole roster: {e}"))?;
                let cosi = cluster.node(0).cosi().context("node 0 runs no cosi")?;
                // What a root does when it learns a roster (PoP batch, links to its sub-leaders and
                // theirs to their leaves), timed apart from the first round as `bench cosi` does.
                let t = Instant::now();
                cluster.runtime().block_on(cosi.prepare(&whole)).map_err(|e| anyhow::anyhow!("preparing: {e}"))?;
                let prepared = t.elapsed();
                cosi.set_default_roster(Some(whole));
                roster.clear();
                outln!("{ROSTER_END} {}", prepared.as_micros());
            }
            _ if inside => {
                roster.push_str(&line);
                roster.push('\n');
            }
            _ => {}
        }
    }
    drop(cluster);
    Ok(())
}

const ROSTER_BEGIN: &str = "-- roster begin --";
const ROSTER_END: &str = "-- roster end --";

/// Raises the soft open-file limit to the hard one: every node holds listeners, database files
/// and connections.
fn raise_open_files() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}

/// The host processes of one run; killed when dropped.
struct Hosts {
    children: Vec<Child>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Starts `hosts` processes holding `n` nodes in all; returns them, the whole roster's TOML (the
/// first host's node 0, the root, has it as its default roster) and the root's preparation time.
fn start_hosts(n: usize, hosts: usize) -> Result<(Hosts, String, Duration)> {
    let exe = std::env::current_exe().context("finding the conode binary")?;
    let mut running = Hosts { children: Vec::new() };
    for h in 0..hosts {
        let share = n / hosts + usize::from(h < n % hosts);
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "cosi-host", "--nodes", &share.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        crate::bench_processes::die_with_parent(&mut cmd);
        running.children.push(cmd.spawn().with_context(|| format!("starting host {h}"))?);
    }
    let mut roster = String::new();
    let mut readers = Vec::new();
    for (h, child) in running.children.iter_mut().enumerate() {
        let stdout = child.stdout.take().context("host stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut inside = false;
        loop {
            let Some(line) = lines.next() else { bail!("host {h} ended before printing its roster") };
            let line = line.with_context(|| format!("reading host {h}"))?;
            match line.as_str() {
                ROSTER_BEGIN => inside = true,
                ROSTER_END => break,
                _ if inside => {
                    roster.push_str(&line);
                    roster.push('\n');
                }
                _ => {}
            }
        }
        readers.push(lines);
    }
    let first = running.children.first_mut().context("no host")?;
    let stdin = first.stdin.as_mut().context("host 0 stdin")?;
    write!(stdin, "{ROSTER_BEGIN}\n{roster}\n{ROSTER_END}\n").context("sending the roster to host 0")?;
    stdin.flush()?;
    let prepared = match readers.first_mut().and_then(|r| r.next()) {
        Some(Ok(line)) => line
            .strip_prefix(ROSTER_END)
            .and_then(|us| us.trim().parse::<u64>().ok())
            .map(Duration::from_micros)
            .context("host 0 did not take the whole roster")?,
        _ => bail!("host 0 did not take the whole roster"),
    };
    Ok((running, roster, prepared))
}

/// Runs `rounds` rounds on a roster of `n` spread over `hosts` processes.
pub fn cosi(n: usize, hosts: usize, rounds: usize) -> Result<HostsResult> {
    if hosts == 0 || n < hosts {
        bail!("--hosts must be between 1 and the number of nodes ({n})");
    }
    let started = Instant::now();
    let (running, roster_toml, prepared) = start_hosts(n, hosts)?;
    let start_ms = ms(started.elapsed() - prepared);
    let roster = Roster::from_toml_str(Path::new("<hosts' roster>"), &roster_toml)
        .map_err(|e| anyhow::anyhow!("the hosts' roster: {e}"))?;
    if roster.len() != n {
        bail!("the hosts' roster has {} members, expected {n}", roster.len());
    }
    let keys: Vec<_> = roster.servers.iter().filter_map(|m| m.services.get(COSI_SERVICE).map(|p| p.public)).collect();
    let root = roster.servers.first().context("empty roster")?;
    let url = ClientUrl::parse(&format!("ws://{}", root.address.client_host_port())).map_err(anyhow::Error::msg)?;
    let client = Client::new(url, Duration::from_secs(120));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut last_round = None;
    let mut round = |i: usize| -> Result<Duration> {
        let message = format!("hosts bench round {i}").into_bytes();
        let req = SignRequest { message: message.clone(), timeout_ms: Some(30_000), ..Default::default() };
        let t = Instant::now();
        let reply = rt.block_on(client.sign(&req)).with_context(|| format!("round {i}"))?;
        let took = t.elapsed();
        verify(&message, &reply.signature, &reply.mask, &keys, Policy::Default)
            .with_context(|| format!("round {i}: the collective signature"))?;
        if reply.signed.len() != n {
            eprintln!("round {i}: {} of {n} signed", reply.signed.len());
        }
        last_round = Some((message, reply));
        Ok(took)
    };
    let first = round(0)?;
    round(1)?;
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        times.push(round(2 + i)?);
    }
    times.sort();
    let rss: u64 = running.children.iter().map(|c| rss_of(c.id())).sum();
    // The hosts are stopped first: thousands of idle nodes still keep their links alive, and that
    // work must not be counted in the limit.
    drop(running);
    // The physical limit, measured now that the rounds are over: n signatures over the cores plus
    // the aggregate verification timed on the last round's signature.
    let last_verify = match &last_round {
        Some((message, reply)) => {
            let v = Instant::now();
            verify(message, &reply.signature, &reply.mask, &keys, Policy::Default)?;
            v.elapsed()
        }
        None => Duration::ZERO,
    };
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let key = BlsKeyPair::generate();
    let t = Instant::now();
    for i in 0..n {
        let _ = key.sign(format!("physical limit {i}").as_bytes());
    }
    let physical = t.elapsed() / cores as u32 + last_verify;
    // The same n signatures (other statements: the key keeps the points it hashed) on all cores.
    let parallel = conode_core::services::cosi::bench::on_all_cores(n, cores, |i| {
        std::hint::black_box(key.sign(format!("physical limit, all cores {i}").as_bytes()));
    });
    let physical_parallel = parallel + last_verify;
    let p50 = percentile(&times, 50.0);
    Ok(HostsResult {
        nodes: n,
        hosts,
        rounds,
        p50_ms: ms(p50),
        p99_ms: ms(percentile(&times, 99.0)),
        physical_limit_ms: ms(physical),
        ratio_p50_to_physical: p50.as_secs_f64() / physical.as_secs_f64(),
        physical_limit_parallel_ms: ms(physical_parallel),
        ratio_p50_to_physical_parallel: p50.as_secs_f64() / physical_parallel.as_secs_f64(),
        first_round_ms: ms(first),
        ratio_first_to_p50: first.as_secs_f64() / p50.as_secs_f64(),
        start_ms,
        prepare_ms: ms(prepared),
        rss_per_node_kib: rss / n as u64,
        cores,
        processes: "several",
        load_avg_1m: load_avg(),
    })
}
