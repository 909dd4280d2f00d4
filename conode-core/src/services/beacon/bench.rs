//! Beacon benchmarks for `conode bench beacon` (machine-readable, serde-serializable results):
//! (a) latency from a round's scheduled tick to its beacon being served over drand's HTTP API,
//! on a local cluster; (b) beacon verifications per second with the pure verifier
//! (`verify::beacon`) against raw blst verification of the same beacons, in the same run.

use super::messages::InitRequest;
use super::{unix_now_ms, BeaconService};
use crate::api::client;
use crate::cluster::LocalCluster;
use crate::verify::beacon::{digest, Beacon, ChainInfo, Scheme};
use prost::Message;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("beacon: {0}")]
    Beacon(String),
}

/// Summary of millisecond samples.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub samples: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    pub fn of(mut v: Vec<f64>) -> Summary {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let at = |q: f64| if n == 0 { 0.0 } else { v[((n as f64 - 1.0) * q).round() as usize] };
        Summary {
            samples: n,
            min_ms: at(0.0),
            median_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: at(1.0),
            mean_ms: if n == 0 { 0.0 } else { v.iter().sum::<f64>() / n as f64 },
        }
    }
}

/// (a) Tick-to-served latency.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyBench {
    pub bench: &'static str,
    pub members: usize,
    pub threshold: u32,
    pub scheme: String,
    pub period_secs: u32,
    pub dkg_ms: f64,
    /// Round tick → the beacon's HTTP response at member 0 (a request waiting for the round).
    pub served: Summary,
    /// The same at the last member, asked at the same time. In one process the members verify a
    /// recoverer's beacon one after another on the shared cores, and the recoverers push it to
    /// the members in index order: member 0 is among the first, the last member among the last.
    pub served_last: Summary,
    /// Round tick → beacon stored, over all members.
    pub stored: Summary,
    /// Round tick → beacon stored at member 0 (whose HTTP API `served` measures).
    pub stored_member0: Summary,
    /// Where a round's CPU goes.
    pub cost: RoundCost,
}

/// Where a round's CPU goes: each step of one member's work, timed on its own in this run
/// (single-threaded, the members' real shares), against the CPU the whole process spent per
/// round while the latency was measured (all members, TLS, framing, storage, scheduling).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoundCost {
    /// Hashing the round to the curve and signing it with the share.
    pub sign_ms: f64,
    /// Decompression of the n − 1 partials a member receives: no longer on any path (only
    /// lengths are checked on arrival; the t partials a recovery uses are decoded by it).
    pub decode_arrivals_ms: f64,
    /// Lagrange recovery from t partials: decompression and one multi-scalar multiplication
    /// (coefficients cached for the index set).
    pub recover_ms: f64,
    /// The same with one scalar multiplication per partial (the previous recovery).
    pub recover_naive_ms: f64,
    /// Verifying the recovered beacon against the group key.
    pub verify_ms: f64,
    /// The audit of 8 partials that were not needed (one batch check), run after the round (by
    /// the two recoverers, of all n − t unneeded partials).
    pub audit_ms: f64,
    /// Hashing the round's digest to the curve: done once per member and round (cached), at
    /// signing.
    pub prepare_round_ms: f64,
    /// Signing with the round's hash already computed (`H·share`).
    pub sign_cached_ms: f64,
    /// Verifying the recovered beacon with the round's hash already computed.
    pub verify_cached_ms: f64,
    /// prepare_round + sign_cached + recover + verify_cached: the path of one of the round's
    /// recoverers.
    pub member_path_ms: f64,
    /// prepare_round + sign_cached + verify_cached: the path of a member that verifies the beacon
    /// a recoverer pushed.
    pub follower_path_ms: f64,
    /// member_path × recoverers + follower_path × the others: the cryptography of a round in
    /// this process (audits excluded).
    pub round_crypto_ms: f64,
    /// Beacons recovered per round, all members together (the others were pushed or replied).
    pub recoveries_per_round: f64,
    /// Process CPU per round while the latency was measured (audits included).
    pub process_cpu_per_round_ms: f64,
    /// round_crypto / process CPU per round.
    pub crypto_share: f64,
}

/// Mean milliseconds of `f` over `reps` runs.
fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

/// Lagrange recovery with one scalar multiplication per partial (what `recover_point` did
/// before it used one multi-scalar multiplication): the baseline of `recover_ms`.
fn recover_naive(scheme: Scheme, parts: &[(u32, Vec<u8>)]) -> Option<Vec<u8>> {
    use crate::crypto::threshold::{lagrange_coefficients, Point, G1, G2};
    fn go<P: Point>(parts: &[(u32, Vec<u8>)]) -> Option<Vec<u8>> {
        let idx: Vec<u32> = parts.iter().map(|(i, _)| *i).collect();
        let lambdas = lagrange_coefficients(&idx).ok()?;
        let mut acc = P::identity();
        for ((_, b), l) in parts.iter().zip(&lambdas) {
            acc = acc.add(&P::from_bytes_on_curve(b).ok()?.mul(l));
        }
        Some(acc.to_bytes())
    }
    if scheme.signatures_on_g1() {
        go::<G1>(parts)
    } else {
        go::<G2>(parts)
    }
}

/// Times each step of a round with the members' chains (see [`RoundCost`]).
fn round_cost(
    services: &[BeaconService],
    process_cpu_per_round_ms: f64,
    recoveries_per_round: f64,
) -> Result<RoundCost, BenchError> {
    use super::partials::{recoverers, sign_partial_bytes};
    let chains: Vec<_> = services.iter().filter_map(|s| s.chain()).collect();
    let c0 = chains.first().ok_or_else(|| BenchError::Beacon("no chain".into()))?;
    let (scheme, t, n) = (c0.scheme(), c0.threshold(), chains.len());
    // A round far ahead, over the latest signature: the same work as a real round.
    let round = c0.latest() + 1000;
    let prev = c0.prev_for_next();
    let msg = digest(scheme, round, prev.as_deref());
    let reps = 5;
    let mut partials = Vec::new();
    let sign_ms = time_ms(reps, || {
        partials = chains.iter().map(|c| (c.share.index, sign_partial_bytes(scheme, &c.share, &msg))).collect();
    }) / n as f64;
    let mut decoded = 0;
    let decode_arrivals_ms = time_ms(reps, || {
        decoded = partials[1..].iter().filter(|(_, p)| c0.share_keys.decodes(p)).count();
    });
    if decoded + 1 != n {
        return Err(BenchError::Beacon("a partial does not decode".into()));
    }
    let used = &partials[..t.min(partials.len())];
    let mut signature = Vec::new();
    let recover_ms = time_ms(reps, || signature = c0.share_keys.recover(used).unwrap_or_default());
    let mut naive = None;
    let recover_naive_ms = time_ms(reps, || naive = recover_naive(scheme, used));
    if naive.as_ref() != Some(&signature) {
        return Err(BenchError::Beacon("the two recoveries disagree".into()));
    }
    let beacon = Beacon { round, signature, previous_signature: prev };
    let mut verified = false;
    let verify_ms = time_ms(reps, || verified = c0.prepared.verify(&beacon).is_ok());
    if !verified {
        return Err(BenchError::Beacon("the recovered beacon does not verify".into()));
    }
    let sample: Vec<(u32, Vec<u8>)> = partials.iter().skip(t).take(8).cloned().collect();
    let audit_ms = time_ms(reps, || {
        c0.share_keys.check_batch(&msg, &sample);
    });
    // What a member does now: hash the round once, then sign and verify with it.
    let prepare_round_ms = time_ms(reps, || {
        c0.share_keys.hash_round(&msg);
    });
    c0.share_keys.hashed(&msg);
    let mut cached = Vec::new();
    let sign_cached_ms = time_ms(reps, || cached = c0.share_keys.sign(&c0.share.scalar, &msg));
    if cached != partials[0].1 {
        return Err(BenchError::Beacon("the cached signing disagrees".into()));
    }
    let verify_cached_ms = time_ms(reps, || verified = c0.share_keys.verify_beacon(&c0.prepared, &beacon).is_ok());
    if !verified {
        return Err(BenchError::Beacon("the recovered beacon does not verify (cached)".into()));
    }
    let member_path_ms = prepare_round_ms + sign_cached_ms + recover_ms + verify_cached_ms;
    let follower_path_ms = prepare_round_ms + sign_cached_ms + verify_cached_ms;
    let k = recoverers(&c0.indices, round).len();
    let round_crypto_ms = member_path_ms * k as f64 + follower_path_ms * n.saturating_sub(k) as f64;
    Ok(RoundCost {
        sign_ms,
        decode_arrivals_ms,
        recover_ms,
        recover_naive_ms,
        verify_ms,
        audit_ms,
        prepare_round_ms,
        sign_cached_ms,
        verify_cached_ms,
        member_path_ms,
        follower_path_ms,
        round_crypto_ms,
        recoveries_per_round,
        process_cpu_per_round_ms,
        crypto_share: if process_cpu_per_round_ms > 0.0 { round_crypto_ms / process_cpu_per_round_ms } else { 0.0 },
    })
}

/// (b) Verifications per second.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyBench {
    pub bench: &'static str,
    pub scheme: String,
    pub verifications: usize,
    /// `PreparedChain::verify` of the pure verifier (digest, decode, group check, pairing).
    pub verifier_per_sec: f64,
    /// blst `Signature::uncompress` + `verify` of the same digests (the floor).
    pub raw_blst_per_sec: f64,
    /// verifier / raw.
    pub ratio: f64,
}

/// Both results of one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BeaconBench {
    pub latency: LatencyBench,
    pub verify: VerifyBench,
}

/// A plain HTTP/1.1 GET; returns (status, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Starts a cluster of `members` and runs a DKG with period `period_secs`; returns the cluster,
/// the DKG duration and the chain info once round 1 exists everywhere.
pub fn cluster_with_chain(
    members: usize,
    scheme: Scheme,
    period_secs: u32,
) -> Result<(LocalCluster, Duration, ChainInfo), BenchError> {
    let cluster = LocalCluster::new(members).map_err(|e| BenchError::Cluster(e.to_string()))?;
    let url = cluster.client_url(0).ok_or_else(|| BenchError::Cluster("node 0 not running".into()))?;
    let req = InitRequest {
        roster_toml: cluster.roster().to_toml(),
        scheme: scheme.id().into(),
        period_secs,
        threshold: 0,
        phase_timeout_ms: 3000,
        genesis_time: 0,
        // The DKG's work grows with n² in one process; a genesis after it avoids a catch-up.
        genesis_delay_ms: 2500 + 7 * (members * members) as u64,
        beacon_id: String::new(),
    };
    cluster.approve_beacon(&req).map_err(|e| BenchError::Beacon(e.to_string()))?;
    let t0 = Instant::now();
    cluster
        .runtime()
        .block_on(client::call(&url, super::SERVICE, "Init", req.encode_to_vec(), Duration::from_secs(600)))
        .map_err(|e| BenchError::Beacon(e.to_string()))?;
    let dkg = t0.elapsed();
    let services: Vec<BeaconService> = cluster.nodes().iter().filter_map(|n| n.beacon().ok()).collect();
    let info = services
        .first()
        .and_then(|s| s.chain_info())
        .ok_or_else(|| BenchError::Beacon("no chain after the DKG".into()))?;
    for s in &services {
        cluster
            .runtime()
            .block_on(s.wait_for_round(1, Duration::from_secs(30)))
            .ok_or_else(|| BenchError::Beacon("round 1 was not produced".into()))?;
    }
    // If the DKG ended after the genesis, the chain catches up first: wait until every member is
    // at the round due by the clock (measuring a chain that is behind would measure its backlog).
    let caught_up = Instant::now() + Duration::from_secs(120);
    loop {
        let due = info.latest_round(unix_now_ms().div_euclid(1000)).max(1);
        if services.iter().all(|s| s.stats().latest_round >= due) {
            break;
        }
        if Instant::now() > caught_up {
            return Err(BenchError::Beacon(format!("the chain did not catch up with the clock (round {due})")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((cluster, dkg, info))
}

/// (a) on `members` nodes over `rounds` rounds of `period_secs`.
pub fn bench_latency(
    members: usize,
    rounds: usize,
    scheme: Scheme,
    period_secs: u32,
) -> Result<(LatencyBench, Vec<Beacon>, ChainInfo), BenchError> {
    let (cluster, dkg, info) = cluster_with_chain(members, scheme, period_secs)?;
    let addr = cluster.node(0).client_addr().ok_or_else(|| BenchError::Cluster("node 0 not running".into()))?;
    let last = members.saturating_sub(1);
    let addr_last =
        cluster.node(last).client_addr().ok_or_else(|| BenchError::Cluster(format!("node {last} not running")))?;
    let services: Vec<BeaconService> = cluster.nodes().iter().filter_map(|n| n.beacon().ok()).collect();
    let threshold = services[0].group().map(|g| g.threshold).unwrap_or(0);
    let cpu_before = crate::services::cosi::bench::process_cpu();
    let recovered = || services.iter().map(|s| s.stats().recovered).sum::<u64>();
    let recovered_before = recovered();
    // The client has its own runtime on this thread, as a client of a real node is its own
    // process: on the cluster's runtime its socket would be read only when one of the nodes'
    // busy workers polled for I/O, which would measure the client's queue, not the node's.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Cluster(format!("client runtime: {e}")))?;
    let (served, served_last) = client_rt.block_on(async {
        let (mut served, mut served_last) = (Vec::new(), Vec::new());
        let first = services[0].stats().latest_round + 2;
        for r in first..first + rounds as u64 {
            let tick_ms = info.time_of_round(r).unwrap_or(0) * 1000;
            // Ask shortly before the tick; the server holds the request until the round exists.
            let ask = tick_ms - 300 - unix_now_ms();
            if ask > 0 {
                tokio::time::sleep(Duration::from_millis(ask as u64)).await;
            }
            let path = format!("/public/{r}");
            // Each answer is timed as it arrives.
            let timed = |a| {
                let path = path.clone();
                async move {
                    let got = http_get(a, &path).await;
                    (got, unix_now_ms())
                }
            };
            let ((got, at), (got_last, at_last)) = tokio::join!(timed(addr), timed(addr_last));
            for (got, who) in [(got, "member 0"), (got_last, "the last member")] {
                let (status, _) = got.map_err(|e| BenchError::Beacon(format!("{who}: {e}")))?;
                if status != 200 {
                    return Err(BenchError::Beacon(format!("round {r} at {who}: HTTP {status}")));
                }
            }
            served.push((at - tick_ms) as f64);
            served_last.push((at_last - tick_ms) as f64);
        }
        Ok((served, served_last))
    })?;
    let cpu_per_round = (crate::services::cosi::bench::process_cpu() - cpu_before).as_secs_f64() * 1e3 / rounds as f64;
    let first = services[0].stats().latest_round.saturating_sub(rounds as u64) + 1;
    let stored_member0: Vec<f64> =
        services[0].stats().latencies.into_iter().filter(|l| l.round >= first).map(|l| l.ms).collect();
    let recoveries = (recovered() - recovered_before) as f64 / rounds as f64;
    let cost = round_cost(&services, cpu_per_round, recoveries)?;
    let stored: Vec<f64> = services
        .iter()
        .flat_map(|s| s.stats().latencies.into_iter().filter(|l| l.round >= first).map(|l| l.ms).collect::<Vec<_>>())
        .collect();
    let latest = services[0].stats().latest_round;
    let beacons: Vec<Beacon> = (1..=latest).filter_map(|r| services[0].get(r)).collect();
    Ok((
        LatencyBench {
            bench: "beacon-latency",
            members,
            threshold,
            scheme: scheme.id().into(),
            period_secs,
            dkg_ms: dkg.as_secs_f64() * 1e3,
            served: Summary::of(served),
            served_last: Summary::of(served_last),
            stored: Summary::of(stored),
            stored_member0: Summary::of(stored_member0),
            cost,
        },
        beacons,
        info,
    ))
}

/// (b) on the given beacons (cycled) for `verifications` verifications each way.
pub fn bench_verify(info: &ChainInfo, beacons: &[Beacon], verifications: usize) -> Result<VerifyBench, BenchError> {
    if beacons.is_empty() {
        return Err(BenchError::Beacon("no beacon to verify".into()));
    }
    let prepared = info.prepare().map_err(|e| BenchError::Beacon(e.to_string()))?;
    let t = Instant::now();
    for i in 0..verifications {
        prepared.verify(&beacons[i % beacons.len()]).map_err(|e| BenchError::Beacon(e.to_string()))?;
    }
    let verifier = verifications as f64 / t.elapsed().as_secs_f64();
    let scheme = info.scheme;
    let dst = scheme.dst();
    let digests: Vec<[u8; 32]> =
        beacons.iter().map(|b| digest(scheme, b.round, b.previous_signature.as_deref())).collect();
    let ok = blst::BLST_ERROR::BLST_SUCCESS;
    let t = Instant::now();
    if scheme.signatures_on_g1() {
        let pk =
            blst::min_sig::PublicKey::uncompress(&info.public_key).map_err(|e| BenchError::Beacon(format!("{e:?}")))?;
        for i in 0..verifications {
            let k = i % beacons.len();
            let sig = blst::min_sig::Signature::uncompress(&beacons[k].signature)
                .map_err(|e| BenchError::Beacon(format!("{e:?}")))?;
            if sig.verify(true, &digests[k], dst, &[], &pk, false) != ok {
                return Err(BenchError::Beacon("raw verify failed".into()));
            }
        }
    } else {
        let pk =
            blst::min_pk::PublicKey::uncompress(&info.public_key).map_err(|e| BenchError::Beacon(format!("{e:?}")))?;
        for i in 0..verifications {
            let k = i % beacons.len();
            let sig = blst::min_pk::Signature::uncompress(&beacons[k].signature)
                .map_err(|e| BenchError::Beacon(format!("{e:?}")))?;
            if sig.verify(true, &digests[k], dst, &[], &pk, false) != ok {
                return Err(BenchError::Beacon("raw verify failed".into()));
            }
        }
    }
    let raw = verifications as f64 / t.elapsed().as_secs_f64();
    Ok(VerifyBench {
        bench: "beacon-verify",
        scheme: scheme.id().into(),
        verifications,
        verifier_per_sec: verifier,
        raw_blst_per_sec: raw,
        ratio: verifier / raw,
    })
}

/// Runs (a) with `members` nodes and (b) on the beacons it produced.
pub fn run(members: usize, rounds: usize, scheme: Scheme, verifications: usize) -> Result<BeaconBench, BenchError> {
    let (latency, beacons, info) = bench_latency(members, rounds, scheme, 1)?;
    let verify = bench_verify(&info, &beacons, verifications)?;
    Ok(BeaconBench { latency, verify })
}
