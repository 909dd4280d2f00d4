//! Batch checking of proofs of possession, for cold rounds over a large roster. One by one, a PoP
//! costs two Miller loops and a final exponentiation. With secret random 64-bit weights `r_i`,
//! fresh per call,
//!
//! `e(g1, Σ r_i·π_i) == Π e(r_i·pk_i, H(pk_i))`
//!
//! checks them all with one multi-pairing (n + 1 Miller loops, one final exponentiation, spread
//! over blst's threads); a bad PoP passes only with probability 2⁻⁶⁴. Keys and PoPs are already
//! group-checked when decoded (`BlsPublicKey`, `BlsSignature`), as one-by-one checking requires.
//! A failing batch is halved until the bad PoPs are found, so the verdicts are always those of
//! [`BlsPublicKey::verify_pop`] on each pair.

use super::bls::DST_POP;
use super::{BlsPublicKey, BlsSignature, CryptoError};
use blst::min_pk::{PublicKey, Signature};
use blst::{blst_scalar, BLST_ERROR};

/// Below this many pairs a batch is not worth it: they are checked one by one.
const SMALLEST_BATCH: usize = 4;

/// Checks the PoP of every `(key, pop)` pair; the result at `i` is `pairs[i].0.verify_pop(pairs[i].1)`.
pub fn verify_pops(pairs: &[(&BlsPublicKey, &BlsSignature)]) -> Vec<Result<(), CryptoError>> {
    let mut results: Vec<Option<Result<(), CryptoError>>> = vec![None; pairs.len()];
    let idx: Vec<usize> = (0..pairs.len()).collect();
    check(pairs, &idx, &mut results, &mut rand::rngs::OsRng);
    results.into_iter().map(|r| r.unwrap_or(Err(CryptoError::BadPop))).collect()
}

fn check(
    pairs: &[(&BlsPublicKey, &BlsSignature)],
    idx: &[usize],
    results: &mut [Option<Result<(), CryptoError>>],
    rng: &mut impl rand::RngCore,
) {
    if idx.len() < SMALLEST_BATCH {
        for &i in idx {
            results[i] = Some(pairs[i].0.verify_pop(pairs[i].1));
        }
        return;
    }
    if batch_holds(pairs, idx, rng) {
        for &i in idx {
            results[i] = Some(Ok(()));
        }
        return;
    }
    let (left, right) = idx.split_at(idx.len() / 2);
    check(pairs, left, results, rng);
    check(pairs, right, results, rng);
}

/// The weighted check of the pairs at `idx` (true: every PoP holds, except with probability 2⁻⁶⁴).
fn batch_holds(pairs: &[(&BlsPublicKey, &BlsSignature)], idx: &[usize], rng: &mut impl rand::RngCore) -> bool {
    let msgs: Vec<[u8; 48]> = idx.iter().map(|&i| pairs[i].0.to_bytes()).collect();
    let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    let pks: Vec<&PublicKey> = idx.iter().map(|&i| pairs[i].0.raw()).collect();
    let sigs: Vec<&Signature> = idx.iter().map(|&i| pairs[i].1.raw()).collect();
    let rands: Vec<blst_scalar> = idx
        .iter()
        .map(|_| {
            let mut b = [0u8; 32];
            // Non-zero 64-bit weights (a zero weight would drop its pair from the check).
            let mut w = 0u64;
            while w == 0 {
                w = rng.next_u64();
            }
            b[..8].copy_from_slice(&w.to_le_bytes());
            blst_scalar { b }
        })
        .collect();
    // Keys and PoPs were group-checked when decoded.
    Signature::verify_multiple_aggregate_signatures(&msg_refs, DST_POP, &pks, false, &sigs, false, &rands, 64)
        == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlsKeyPair;

    fn roster(n: usize) -> (Vec<BlsPublicKey>, Vec<BlsSignature>) {
        let kps: Vec<BlsKeyPair> = (0..n).map(|_| BlsKeyPair::generate()).collect();
        (kps.iter().map(|k| k.public()).collect(), kps.iter().map(|k| k.pop()).collect())
    }

    fn one_by_one(pairs: &[(&BlsPublicKey, &BlsSignature)]) -> Vec<Result<(), CryptoError>> {
        pairs.iter().map(|(k, p)| k.verify_pop(p)).collect()
    }

    #[test]
    fn good_roster_passes() {
        let (keys, pops) = roster(40);
        let pairs: Vec<_> = keys.iter().zip(&pops).collect();
        assert!(verify_pops(&pairs).iter().all(|r| r.is_ok()));
        assert!(verify_pops(&[]).is_empty());
    }

    #[test]
    fn bad_pops_among_many_are_found_with_one_by_one_verdicts() {
        let (keys, mut pops) = roster(50);
        let other = BlsKeyPair::generate();
        // Another key's PoP, a swapped pair, and a signature of the key under the wrong tag.
        pops[7] = other.pop();
        pops.swap(20, 21);
        let kp = BlsKeyPair::generate();
        let mut keys = keys;
        keys[33] = kp.public();
        pops[33] = kp.sign(&kp.public().to_bytes());
        let pairs: Vec<_> = keys.iter().zip(&pops).collect();
        let batch = verify_pops(&pairs);
        assert_eq!(batch, one_by_one(&pairs));
        let bad: Vec<usize> = (0..50).filter(|&i| batch[i].is_err()).collect();
        assert_eq!(bad, vec![7, 20, 21, 33]);
        assert!(batch.iter().filter(|r| r.is_err()).all(|r| *r == Err(CryptoError::BadPop)));
    }

    #[test]
    fn weighted_check_refuses_a_batch_with_one_bad_pop() {
        let (keys, mut pops) = roster(8);
        pops[3] = pops[4];
        let pairs: Vec<_> = keys.iter().zip(&pops).collect();
        let idx: Vec<usize> = (0..8).collect();
        assert!(!batch_holds(&pairs, &idx, &mut rand::thread_rng()));
        let good: Vec<usize> = vec![0, 1, 2, 5, 6, 7];
        assert!(batch_holds(&pairs, &good, &mut rand::thread_rng()));
    }
}
