//! `conode bench verify-beacons`: batch verification of many beacons of one chain (what a light
//! client catching up does) against verifying them one by one, per scheme and batch size, in the
//! same run. Prints one JSON line per (scheme, rounds): the batch on the machine's cores (what
//! `verify_beacons` does) and on the calling thread alone, each against one-by-one verification
//! on one thread.

use anyhow::Result;
use conode_core::verify::beacon::{
    public_key_from_secret, sign_round, verify_beacons_with_threads, Beacon, PreparedChain, Scheme,
};
use std::time::Instant;

/// A chain of `n` beacons signed with a fresh random key.
fn chain(scheme: Scheme, n: usize) -> Result<(PreparedChain, Vec<Beacon>)> {
    let mut sk = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut sk[1..]);
    let pk = public_key_from_secret(scheme, &sk)?;
    let prepared = PreparedChain::from_public_key(scheme, &pk)?;
    let mut prev: Option<Vec<u8>> = scheme.is_chained().then(|| vec![1u8; 32]);
    let mut out = Vec::with_capacity(n);
    for round in 1..=n as u64 {
        let signature = sign_round(scheme, &sk, round, prev.as_deref())?;
        out.push(Beacon { round, signature: signature.clone(), previous_signature: prev.clone() });
        if scheme.is_chained() {
            prev = Some(signature);
        }
    }
    Ok((prepared, out))
}

pub fn run(sizes: &[usize], schemes: &[String]) -> Result<()> {
    for id in schemes {
        let scheme = Scheme::from_id(id)?;
        for &n in sizes {
            let (prepared, beacons) = chain(scheme, n)?;
            // Repeat small sizes so each timing covers at least ~1,000 beacons.
            let reps = (1000 / n.max(1)).max(1);
            let t = Instant::now();
            for _ in 0..reps {
                for b in &beacons {
                    prepared.verify(b)?;
                }
            }
            let single = t.elapsed().as_secs_f64() / (reps * n) as f64;
            let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
            let batch = |threads: usize| -> Result<f64> {
                let t = Instant::now();
                for _ in 0..reps {
                    let results = verify_beacons_with_threads(&prepared, &beacons, threads);
                    anyhow::ensure!(results.iter().all(|r| r.is_ok()), "a good beacon failed batch verification");
                }
                Ok(t.elapsed().as_secs_f64() / (reps * n) as f64)
            };
            let one_thread = batch(1)?;
            let all_cores = batch(cores)?;
            outln!(
                "{}",
                serde_json::json!({
                    "bench": "verify_beacons",
                    "scheme": scheme.id(),
                    "rounds": n,
                    "threads": cores,
                    "one_by_one_us_per_beacon": single * 1e6,
                    "batch_us_per_beacon": all_cores * 1e6,
                    "speedup": single / all_cores,
                    "batch_one_thread_us_per_beacon": one_thread * 1e6,
                    "speedup_one_thread": single / one_thread,
                })
            );
        }
    }
    Ok(())
}
