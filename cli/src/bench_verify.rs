//! `conode bench verify-beacons`: batch verification of many beacons of one chain (what a light
//! client catching up does) against verifying them one by one, per scheme and batch size, in the
//! same run. Prints one JSON line per (scheme, rounds).

use anyhow::Result;
use conode_core::verify::beacon::{public_key_from_secret, sign_round, verify_beacons, Beacon, PreparedChain, Scheme};
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
            let t = Instant::now();
            for _ in 0..reps {
                let results = verify_beacons(&prepared, &beacons);
                anyhow::ensure!(results.iter().all(|r| r.is_ok()), "a good beacon failed batch verification");
            }
            let batch = t.elapsed().as_secs_f64() / (reps * n) as f64;
            outln!(
                "{}",
                serde_json::json!({
                    "bench": "verify_beacons",
                    "scheme": scheme.id(),
                    "rounds": n,
                    "one_by_one_us_per_beacon": single * 1e6,
                    "batch_us_per_beacon": batch * 1e6,
                    "speedup": single / batch,
                })
            );
        }
    }
    Ok(())
}
