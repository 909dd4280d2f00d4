//! Batch verification of many beacons of one chain, for light clients that check a lot of rounds
//! at once (a phone catching up, an auditor). One by one, every beacon costs two pairings. All
//! beacons of a chain are signed by the same group key, so with random 64-bit weights `r_i`
//!
//! `e(Σ r_i·σ_i, g) == e(Σ r_i·H(m_i), pk)`
//!
//! checks them all with two multi-scalar multiplications (Pippenger) and one two-pair pairing
//! check; a forged beacon passes only with probability 2⁻⁶⁴ (the weights are secret, fresh per
//! call). Every signature is decoded and group-checked first, as one-by-one verification does.
//! When a batch fails it is halved until the bad beacons are found, and those get the error that
//! one-by-one verification gives, so the results are always the same as [`PreparedChain::verify`]
//! on every beacon.

use super::{digest, Beacon, BeaconError, PreparedChain};
use crate::crypto::bls::{neg_g1, neg_g2, pairings_product_is_one};
use blst::*;

/// Below this many beacons a batch is not worth it: they are verified one by one.
const SMALLEST_BATCH: usize = 4;

/// Verifies every beacon in `beacons` against `chain`; the result at `i` is the one
/// [`PreparedChain::verify`] gives for `beacons[i]`.
pub fn verify_beacons(chain: &PreparedChain, beacons: &[Beacon]) -> Vec<Result<(), BeaconError>> {
    let mut results: Vec<Option<Result<(), BeaconError>>> = vec![None; beacons.len()];
    // Decode and group-check; anything wrong there gets its one-by-one error right away.
    let mut items = Vec::with_capacity(beacons.len());
    for (i, b) in beacons.iter().enumerate() {
        match Item::decode(chain, b) {
            Some(item) => items.push((i, item)),
            None => results[i] = Some(chain.verify(b)),
        }
    }
    let mut rng = rand::thread_rng();
    check(chain, beacons, &items, &mut results, &mut rng);
    results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
}

/// Checks `items` as one batch; on failure, each half as a batch, down to one-by-one.
fn check(
    chain: &PreparedChain,
    beacons: &[Beacon],
    items: &[(usize, Item)],
    results: &mut [Option<Result<(), BeaconError>>],
    rng: &mut impl rand::RngCore,
) {
    if items.len() < SMALLEST_BATCH {
        for (i, _) in items {
            results[*i] = Some(chain.verify(&beacons[*i]));
        }
        return;
    }
    if batch_holds(chain, items, rng) {
        for (i, _) in items {
            results[*i] = Some(Ok(()));
        }
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    check(chain, beacons, left, results, rng);
    check(chain, beacons, right, results, rng);
}

/// A beacon's signature, decoded and group-checked, and the digest it must sign.
#[derive(Clone, Copy)]
enum Item {
    /// Signature on G2 (key on G1).
    OnG2 { sig: blst_p2_affine, msg: [u8; 32] },
    /// Signature on G1 (key on G2).
    OnG1 { sig: blst_p1_affine, msg: [u8; 32] },
}

impl Item {
    /// `None` when anything is wrong with the beacon's form (the one-by-one path reports it).
    fn decode(chain: &PreparedChain, b: &Beacon) -> Option<Item> {
        let scheme = chain.scheme;
        if b.round == 0
            || (scheme.is_chained() && b.previous_signature.is_none())
            || b.signature.len() != scheme.signature_len()
        {
            return None;
        }
        let msg = digest(scheme, b.round, b.previous_signature.as_deref());
        // SAFETY: the signature has the compressed length of its group (checked above); the
        // outputs are plain structs owned here.
        unsafe {
            if scheme.signatures_on_g1() {
                let mut sig = blst_p1_affine::default();
                let ok = blst_p1_uncompress(&mut sig, b.signature.as_ptr()) == BLST_ERROR::BLST_SUCCESS
                    && !blst_p1_affine_is_inf(&sig)
                    && blst_p1_affine_in_g1(&sig);
                ok.then_some(Item::OnG1 { sig, msg })
            } else {
                let mut sig = blst_p2_affine::default();
                let ok = blst_p2_uncompress(&mut sig, b.signature.as_ptr()) == BLST_ERROR::BLST_SUCCESS
                    && !blst_p2_affine_is_inf(&sig)
                    && blst_p2_affine_in_g2(&sig);
                ok.then_some(Item::OnG2 { sig, msg })
            }
        }
    }
}

/// Whether the random linear combination of `items` verifies under the chain's key.
fn batch_holds(chain: &PreparedChain, items: &[(usize, Item)], rng: &mut impl rand::RngCore) -> bool {
    // Non-zero 64-bit weights, little-endian as blst reads scalars.
    let weights: Vec<u8> = items
        .iter()
        .flat_map(|_| {
            let w = rng.next_u64() | 1;
            w.to_le_bytes()
        })
        .collect();
    let dst = chain.scheme.dst();
    match chain.key {
        super::GroupKey::G1(pk) => {
            let sigs: Vec<blst_p2_affine> = items
                .iter()
                .filter_map(|(_, it)| match it {
                    Item::OnG2 { sig, .. } => Some(*sig),
                    Item::OnG1 { .. } => None,
                })
                .collect();
            let hashes: Vec<blst_p2> = items
                .iter()
                .map(|(_, it)| {
                    let msg = match it {
                        Item::OnG2 { msg, .. } | Item::OnG1 { msg, .. } => msg,
                    };
                    let mut h = blst_p2::default();
                    // SAFETY: valid pointers and lengths.
                    unsafe {
                        blst_hash_to_g2(&mut h, msg.as_ptr(), msg.len(), dst.as_ptr(), dst.len(), [].as_ptr(), 0)
                    };
                    h
                })
                .collect();
            if sigs.len() != items.len() {
                return false;
            }
            let pk: blst_p1_affine = pk.into();
            // SAFETY: every slice has `items.len()` elements; blst reads `[ptr, null]` as one array.
            unsafe {
                let mut hash_affines = vec![blst_p2_affine::default(); hashes.len()];
                let hp: [*const blst_p2; 2] = [hashes.as_ptr(), std::ptr::null()];
                blst_p2s_to_affine(hash_affines.as_mut_ptr(), hp.as_ptr(), hashes.len());
                let sum_sig = msm_p2(&sigs, &weights);
                let sum_hash = msm_p2(&hash_affines, &weights);
                // e(g1, Σσ) == e(pk, ΣH), as e(−g1, Σσ)·e(pk, ΣH) == 1 (one multi-pairing).
                let (mut sum_sig_a, mut sum_hash_a) = (blst_p2_affine::default(), blst_p2_affine::default());
                blst_p2_to_affine(&mut sum_sig_a, &sum_sig);
                blst_p2_to_affine(&mut sum_hash_a, &sum_hash);
                pairings_product_is_one(&[neg_g1(), pk], &[sum_sig_a, sum_hash_a])
            }
        }
        super::GroupKey::G2(pk) => {
            let sigs: Vec<blst_p1_affine> = items
                .iter()
                .filter_map(|(_, it)| match it {
                    Item::OnG1 { sig, .. } => Some(*sig),
                    Item::OnG2 { .. } => None,
                })
                .collect();
            let hashes: Vec<blst_p1> = items
                .iter()
                .map(|(_, it)| {
                    let msg = match it {
                        Item::OnG2 { msg, .. } | Item::OnG1 { msg, .. } => msg,
                    };
                    let mut h = blst_p1::default();
                    // SAFETY: valid pointers and lengths.
                    unsafe {
                        blst_hash_to_g1(&mut h, msg.as_ptr(), msg.len(), dst.as_ptr(), dst.len(), [].as_ptr(), 0)
                    };
                    h
                })
                .collect();
            if sigs.len() != items.len() {
                return false;
            }
            let pk: blst_p2_affine = pk.into();
            // SAFETY: every slice has `items.len()` elements; blst reads `[ptr, null]` as one array.
            unsafe {
                let mut hash_affines = vec![blst_p1_affine::default(); hashes.len()];
                let hp: [*const blst_p1; 2] = [hashes.as_ptr(), std::ptr::null()];
                blst_p1s_to_affine(hash_affines.as_mut_ptr(), hp.as_ptr(), hashes.len());
                let sum_sig = msm_p1(&sigs, &weights);
                let sum_hash = msm_p1(&hash_affines, &weights);
                // e(Σσ, g2) == e(ΣH, pk), as e(Σσ, −g2)·e(ΣH, pk) == 1 (one multi-pairing).
                let (mut sum_sig_a, mut sum_hash_a) = (blst_p1_affine::default(), blst_p1_affine::default());
                blst_p1_to_affine(&mut sum_sig_a, &sum_sig);
                blst_p1_to_affine(&mut sum_hash_a, &sum_hash);
                pairings_product_is_one(&[sum_sig_a, sum_hash_a], &[neg_g2(), pk])
            }
        }
    }
}

/// `Σ wᵢ·Pᵢ` on G2 with 64-bit little-endian weights (Pippenger, one thread).
///
/// # Safety
/// `weights` holds 8 bytes per point.
unsafe fn msm_p2(points: &[blst_p2_affine], weights: &[u8]) -> blst_p2 {
    let mut scratch = vec![0 as limb_t; blst_p2s_mult_pippenger_scratch_sizeof(points.len()).div_ceil(8)];
    let p: [*const blst_p2_affine; 2] = [points.as_ptr(), std::ptr::null()];
    let s: [*const u8; 2] = [weights.as_ptr(), std::ptr::null()];
    let mut out = blst_p2::default();
    blst_p2s_mult_pippenger(&mut out, p.as_ptr(), points.len(), s.as_ptr(), 64, scratch.as_mut_ptr());
    out
}

/// `Σ wᵢ·Pᵢ` on G1 with 64-bit little-endian weights (Pippenger, one thread).
///
/// # Safety
/// `weights` holds 8 bytes per point.
unsafe fn msm_p1(points: &[blst_p1_affine], weights: &[u8]) -> blst_p1 {
    let mut scratch = vec![0 as limb_t; blst_p1s_mult_pippenger_scratch_sizeof(points.len()).div_ceil(8)];
    let p: [*const blst_p1_affine; 2] = [points.as_ptr(), std::ptr::null()];
    let s: [*const u8; 2] = [weights.as_ptr(), std::ptr::null()];
    let mut out = blst_p1::default();
    blst_p1s_mult_pippenger(&mut out, p.as_ptr(), points.len(), s.as_ptr(), 64, scratch.as_mut_ptr());
    out
}

#[cfg(test)]
mod tests {
    use super::super::{public_key_from_secret, sign_round, Scheme};
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A chain of `n` beacons signed with a random key, and the prepared chain.
    fn chain(scheme: Scheme, n: u64) -> (PreparedChain, Vec<Beacon>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(n);
        let mut sk = [0u8; 32];
        rng.fill(&mut sk[1..]);
        let pk = public_key_from_secret(scheme, &sk).unwrap();
        let prepared = PreparedChain::from_public_key(scheme, &pk).unwrap();
        let mut prev: Option<Vec<u8>> = scheme.is_chained().then(|| vec![7u8; 32]);
        let mut out = Vec::new();
        for round in 1..=n {
            let signature = sign_round(scheme, &sk, round, prev.as_deref()).unwrap();
            let previous_signature = if scheme.is_chained() { prev.clone() } else { None };
            out.push(Beacon { round, signature: signature.clone(), previous_signature });
            if scheme.is_chained() {
                prev = Some(signature);
            }
        }
        (prepared, out)
    }

    fn one_by_one(chain: &PreparedChain, beacons: &[Beacon]) -> Vec<Result<(), BeaconError>> {
        beacons.iter().map(|b| chain.verify(b)).collect()
    }

    #[test]
    fn good_chains_verify_in_one_batch_for_both_schemes() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let (prepared, beacons) = chain(scheme, 40);
            let results = verify_beacons(&prepared, &beacons);
            assert!(results.iter().all(|r| r.is_ok()), "{scheme}: {results:?}");
            assert!(verify_beacons(&prepared, &[]).is_empty());
        }
    }

    #[test]
    fn tampered_beacons_get_the_one_by_one_errors_and_nothing_else_fails() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let (prepared, mut beacons) = chain(scheme, 64);
            let other = chain(scheme, 65).1;
            // A valid signature of another key, one of another round, a wrong round number,
            // garbage bytes, a wrong length, round 0, and a swapped pair.
            beacons[3].signature = other[3].signature.clone();
            beacons[10].signature = beacons[11].signature.clone();
            beacons[20].round += 1000;
            beacons[30].signature = vec![0xab; scheme.signature_len()];
            beacons[40].signature.pop();
            beacons[50].round = 0;
            let (a, b) = (beacons[60].signature.clone(), beacons[61].signature.clone());
            beacons[60].signature = b;
            beacons[61].signature = a;
            let batch = verify_beacons(&prepared, &beacons);
            let single = one_by_one(&prepared, &beacons);
            assert_eq!(format!("{batch:?}"), format!("{single:?}"), "{scheme}");
            let bad: Vec<usize> = batch.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
            assert_eq!(bad, vec![3, 10, 20, 30, 40, 50, 60, 61], "{scheme}");
        }
    }

    #[test]
    fn a_signature_moved_between_rounds_cannot_hide_in_a_batch() {
        // Two wrong signatures whose errors could cancel in an unweighted sum: swapped pairs.
        let (prepared, mut beacons) = chain(Scheme::BlsUnchainedG1Rfc9380, 16);
        let (a, b) = (beacons[5].signature.clone(), beacons[6].signature.clone());
        beacons[5].signature = b;
        beacons[6].signature = a;
        let results = verify_beacons(&prepared, &beacons);
        assert!(results[5].is_err() && results[6].is_err());
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 2);
    }

    #[test]
    fn the_weighted_check_itself_accepts_good_batches_and_refuses_one_bad_signature() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let (prepared, mut beacons) = chain(scheme, 12);
            let items = |beacons: &[Beacon]| -> Vec<(usize, Item)> {
                beacons.iter().enumerate().map(|(i, b)| (i, Item::decode(&prepared, b).unwrap())).collect()
            };
            let mut rng = rand::thread_rng();
            assert!(batch_holds(&prepared, &items(&beacons), &mut rng), "{scheme}");
            // A valid point that is not the right signature (another round's).
            beacons[7].signature = beacons[2].signature.clone();
            assert!(!batch_holds(&prepared, &items(&beacons), &mut rng), "{scheme}");
        }
    }
}
