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
//!
//! What is left per beacon (decoding and group-checking its signature, hashing its digest to the
//! curve: about 300 µs on G2) is independent from beacon to beacon, so a large batch spreads it
//! over the machine's cores (plain scoped threads: the verifier stays free of any runtime), and
//! runs the two sums side by side. With one thread the same code runs on the caller alone.

use super::{digest, Beacon, BeaconError, PreparedChain};
use crate::crypto::bls::{neg_g1, neg_g2, pairings_product_is_one};
use blst::*;

/// Below this many beacons a batch is not worth it: they are verified one by one.
const SMALLEST_BATCH: usize = 4;

/// Beacons a thread takes at least: below, the work stays on the calling thread (a thread costs
/// tens of microseconds; one beacon's decoding and hashing about 300 µs on G2).
const BEACONS_PER_THREAD: usize = 16;

/// Verifies every beacon in `beacons` against `chain`; the result at `i` is the one
/// [`PreparedChain::verify`] gives for `beacons[i]`. Large batches use the machine's cores for the
/// per-beacon work (decoding, group checks, hashing to the curve) and the two sums; see
/// [`verify_beacons_with_threads`] to choose how many.
pub fn verify_beacons(chain: &PreparedChain, beacons: &[Beacon]) -> Vec<Result<(), BeaconError>> {
    // Where the platform cannot tell (or has no threads, as wasm32), one.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    verify_beacons_with_threads(chain, beacons, cores)
}

/// [`verify_beacons`] on at most `threads` threads (the calling one included; 0 and 1 both mean
/// the calling thread alone). Results do not depend on it.
pub fn verify_beacons_with_threads(
    chain: &PreparedChain,
    beacons: &[Beacon],
    threads: usize,
) -> Vec<Result<(), BeaconError>> {
    if chain.scheme.signatures_on_g1() {
        verify_on::<OnG1>(chain, beacons, threads)
    } else {
        verify_on::<OnG2>(chain, beacons, threads)
    }
}

/// [`verify_beacons_with_threads`] for a chain whose signatures are on `G`.
fn verify_on<G: SignatureGroup>(
    chain: &PreparedChain,
    beacons: &[Beacon],
    threads: usize,
) -> Vec<Result<(), BeaconError>> {
    let mut results: Vec<Option<Result<(), BeaconError>>> = vec![None; beacons.len()];
    // Decode, group-check and hash; anything wrong there gets its one-by-one error right away.
    let decoded = in_parallel(beacons, threads, |chunk| decode_all::<G>(chain, chunk));
    let mut items = Vec::with_capacity(beacons.len());
    for (i, item) in decoded.into_iter().enumerate() {
        match item {
            Some(item) => items.push((i, item)),
            None => results[i] = Some(chain.verify(&beacons[i])),
        }
    }
    let mut rng = rand::thread_rng();
    check::<G>(chain, beacons, &items, &mut results, &mut rng, threads);
    results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
}

/// `work` over consecutive chunks of `items`, on up to `threads` threads (one chunk each), the
/// outputs concatenated in order. A thread the system refuses leaves its chunk to the caller.
fn in_parallel<T: Sync, R: Send>(items: &[T], threads: usize, work: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let threads = threads.min(items.len() / BEACONS_PER_THREAD).max(1);
    if threads == 1 {
        return work(items);
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        // The calling thread takes the first chunk itself.
        let own = chunks.next().unwrap_or(&[]);
        let spawned: Vec<_> =
            chunks.map(|c| (c, std::thread::Builder::new().spawn_scoped(scope, move || work(c)).ok())).collect();
        let mut out = work(own);
        for (c, handle) in spawned {
            match handle.map(|h| h.join()) {
                Some(Ok(part)) => out.extend(part),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => out.extend(work(c)),
            }
        }
        out
    })
}

/// Checks `items` as one batch; on failure, each half as a batch, down to one-by-one.
fn check<G: SignatureGroup>(
    chain: &PreparedChain,
    beacons: &[Beacon],
    items: &[(usize, Item<G::Affine>)],
    results: &mut [Option<Result<(), BeaconError>>],
    rng: &mut impl rand::RngCore,
    threads: usize,
) {
    if items.len() < SMALLEST_BATCH {
        for (i, _) in items {
            results[*i] = Some(chain.verify(&beacons[*i]));
        }
        return;
    }
    if batch_holds::<G>(chain, items, rng, threads) {
        for (i, _) in items {
            results[*i] = Some(Ok(()));
        }
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    check::<G>(chain, beacons, left, results, rng, threads);
    check::<G>(chain, beacons, right, results, rng, threads);
}

/// A beacon's signature, decoded and group-checked, and its digest hashed to the curve (done once,
/// so that the halves of a failed batch do not hash again); both on the chain's signature group.
#[derive(Clone, Copy)]
struct Item<A> {
    sig: A,
    hash: A,
}

/// The digest of `b` when its form is right (round, previous signature, length); `None` sends it
/// to the one-by-one path, which names what is wrong.
fn well_formed_digest(chain: &PreparedChain, b: &Beacon) -> Option<[u8; 32]> {
    let scheme = chain.scheme;
    if b.round == 0
        || (scheme.is_chained() && b.previous_signature.is_none())
        || b.signature.len() != scheme.signature_len()
    {
        return None;
    }
    Some(digest(scheme, b.round, b.previous_signature.as_deref()))
}

/// [`Item`]s of `beacons` (in order; `None` for a beacon with anything wrong in its form or its
/// signature's encoding or group). The message points are made affine together (one inversion).
fn decode_all<G: SignatureGroup>(chain: &PreparedChain, beacons: &[Beacon]) -> Vec<Option<Item<G::Affine>>> {
    let dst = chain.scheme.dst();
    let decoded: Vec<Option<(G::Affine, G::Point)>> = beacons
        .iter()
        .map(|b| {
            let msg = well_formed_digest(chain, b)?;
            let sig = G::decode(&b.signature)?;
            Some((sig, G::hash(&msg, dst)))
        })
        .collect();
    let hashes: Vec<G::Point> = decoded.iter().flatten().map(|(_, hash)| *hash).collect();
    let mut affine = G::all_to_affine(&hashes).into_iter();
    decoded.into_iter().map(|d| d.and_then(|(sig, _)| affine.next().map(|hash| Item { sig, hash }))).collect()
}

/// Whether the random linear combination of `items` verifies under the chain's key. The two sums
/// run side by side when `threads` allows and the batch is large enough.
fn batch_holds<G: SignatureGroup>(
    chain: &PreparedChain,
    items: &[(usize, Item<G::Affine>)],
    rng: &mut impl rand::RngCore,
    threads: usize,
) -> bool {
    // Non-zero 64-bit weights, little-endian as blst reads scalars.
    let weights: Vec<u8> = items
        .iter()
        .flat_map(|_| {
            let w = rng.next_u64() | 1;
            w.to_le_bytes()
        })
        .collect();
    let (sigs, hashes): (Vec<G::Affine>, Vec<G::Affine>) = items.iter().map(|(_, it)| (it.sig, it.hash)).unzip();
    let side_by_side = threads > 1 && items.len() >= 2 * BEACONS_PER_THREAD;
    let (sum_sig, sum_hash) = sums(side_by_side, &sigs, &hashes, &weights, G::msm);
    G::pairing_holds(chain.key, G::to_affine(&sum_sig), G::to_affine(&sum_hash))
}

/// The weighted sums of `sigs` and of `hashes` (one weight of 8 bytes per point in `weights`), on
/// two threads when `side_by_side` (the calling thread sums the hashes); one after the other
/// otherwise, or when the system refuses a thread.
fn sums<P: Sync, S: Send>(
    side_by_side: bool,
    sigs: &[P],
    hashes: &[P],
    weights: &[u8],
    msm: fn(&[P], &[u8]) -> S,
) -> (S, S) {
    if !side_by_side {
        return (msm(sigs, weights), msm(hashes, weights));
    }
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().spawn_scoped(scope, move || msm(sigs, weights));
        let sum_hashes = msm(hashes, weights);
        let sum_sigs = match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => msm(sigs, weights),
        };
        (sum_sigs, sum_hashes)
    })
}

/// The group of a chain's signatures, and what a batch needs of blst on it: one implementation
/// per group, so the batch above is written once.
trait SignatureGroup {
    type Affine: Copy + Send + Sync;
    type Point: Copy + Send + Sync;
    /// A compressed signature decoded: on the curve, not the point at infinity, in the group.
    fn decode(bytes: &[u8]) -> Option<Self::Affine>;
    /// `msg` hashed to the group under `dst`.
    fn hash(msg: &[u8], dst: &[u8]) -> Self::Point;
    /// `points` made affine together (one inversion).
    fn all_to_affine(points: &[Self::Point]) -> Vec<Self::Affine>;
    fn to_affine(point: &Self::Point) -> Self::Affine;
    /// `Σ wᵢ·Pᵢ` with 64-bit little-endian weights (8 bytes each; Pippenger, one thread). Points
    /// without a weight are left out.
    fn msm(points: &[Self::Affine], weights: &[u8]) -> Self::Point;
    /// Whether the sum of signatures is the signature of the sum of message points under `key`
    /// (false for a key on the wrong group).
    fn pairing_holds(key: super::GroupKey, sum_sig: Self::Affine, sum_hash: Self::Affine) -> bool;
}

/// Signatures on G2, key on G1 (the chained and unchained `pedersen-bls` schemes).
struct OnG2;
/// Signatures on G1, key on G2 (the `bls-unchained-on-g1` schemes, such as quicknet).
struct OnG1;

impl SignatureGroup for OnG2 {
    type Affine = blst_p2_affine;
    type Point = blst_p2;

    fn decode(bytes: &[u8]) -> Option<blst_p2_affine> {
        let bytes: &[u8; 96] = bytes.try_into().ok()?;
        let mut sig = blst_p2_affine::default();
        // SAFETY: a 96-byte input (a compressed G2 point) and a live output.
        let ok = unsafe {
            blst_p2_uncompress(&mut sig, bytes.as_ptr()) == BLST_ERROR::BLST_SUCCESS
                && !blst_p2_affine_is_inf(&sig)
                && blst_p2_affine_in_g2(&sig)
        };
        ok.then_some(sig)
    }

    fn hash(msg: &[u8], dst: &[u8]) -> blst_p2 {
        let mut h = blst_p2::default();
        // SAFETY: valid pointers and lengths.
        unsafe { blst_hash_to_g2(&mut h, msg.as_ptr(), msg.len(), dst.as_ptr(), dst.len(), [].as_ptr(), 0) };
        h
    }

    fn all_to_affine(points: &[blst_p2]) -> Vec<blst_p2_affine> {
        let mut out = vec![blst_p2_affine::default(); points.len()];
        // SAFETY: `out` has one slot per point; blst reads `[ptr, null]` as one array.
        unsafe {
            let list: [*const blst_p2; 2] = [points.as_ptr(), std::ptr::null()];
            blst_p2s_to_affine(out.as_mut_ptr(), list.as_ptr(), points.len());
        }
        out
    }

    fn to_affine(point: &blst_p2) -> blst_p2_affine {
        let mut out = blst_p2_affine::default();
        // SAFETY: live locals.
        unsafe { blst_p2_to_affine(&mut out, point) };
        out
    }

    fn msm(points: &[blst_p2_affine], weights: &[u8]) -> blst_p2 {
        let n = points.len().min(weights.len() / 8);
        let mut out = blst_p2::default();
        // SAFETY: blst reads `n` points and `n` 8-byte scalars (both slices hold that many) through
        // `[ptr, null]` arrays, and writes the scratch space it sized itself.
        unsafe {
            let mut scratch = vec![0 as limb_t; blst_p2s_mult_pippenger_scratch_sizeof(n).div_ceil(8)];
            let p: [*const blst_p2_affine; 2] = [points.as_ptr(), std::ptr::null()];
            let s: [*const u8; 2] = [weights.as_ptr(), std::ptr::null()];
            blst_p2s_mult_pippenger(&mut out, p.as_ptr(), n, s.as_ptr(), 64, scratch.as_mut_ptr());
        }
        out
    }

    fn pairing_holds(key: super::GroupKey, sum_sig: blst_p2_affine, sum_hash: blst_p2_affine) -> bool {
        let super::GroupKey::G1(pk) = key else { return false };
        // e(g1, Σσ) == e(pk, ΣH), as e(−g1, Σσ)·e(pk, ΣH) == 1 (one multi-pairing).
        pairings_product_is_one(&[neg_g1(), pk.into()], &[sum_sig, sum_hash])
    }
}

impl SignatureGroup for OnG1 {
    type Affine = blst_p1_affine;
    type Point = blst_p1;

    fn decode(bytes: &[u8]) -> Option<blst_p1_affine> {
        let bytes: &[u8; 48] = bytes.try_into().ok()?;
        let mut sig = blst_p1_affine::default();
        // SAFETY: a 48-byte input (a compressed G1 point) and a live output.
        let ok = unsafe {
            blst_p1_uncompress(&mut sig, bytes.as_ptr()) == BLST_ERROR::BLST_SUCCESS
                && !blst_p1_affine_is_inf(&sig)
                && blst_p1_affine_in_g1(&sig)
        };
        ok.then_some(sig)
    }

    fn hash(msg: &[u8], dst: &[u8]) -> blst_p1 {
        let mut h = blst_p1::default();
        // SAFETY: valid pointers and lengths.
        unsafe { blst_hash_to_g1(&mut h, msg.as_ptr(), msg.len(), dst.as_ptr(), dst.len(), [].as_ptr(), 0) };
        h
    }

    fn all_to_affine(points: &[blst_p1]) -> Vec<blst_p1_affine> {
        let mut out = vec![blst_p1_affine::default(); points.len()];
        // SAFETY: as in `OnG2::all_to_affine`.
        unsafe {
            let list: [*const blst_p1; 2] = [points.as_ptr(), std::ptr::null()];
            blst_p1s_to_affine(out.as_mut_ptr(), list.as_ptr(), points.len());
        }
        out
    }

    fn to_affine(point: &blst_p1) -> blst_p1_affine {
        let mut out = blst_p1_affine::default();
        // SAFETY: live locals.
        unsafe { blst_p1_to_affine(&mut out, point) };
        out
    }

    fn msm(points: &[blst_p1_affine], weights: &[u8]) -> blst_p1 {
        let n = points.len().min(weights.len() / 8);
        let mut out = blst_p1::default();
        // SAFETY: as in `OnG2::msm`.
        unsafe {
            let mut scratch = vec![0 as limb_t; blst_p1s_mult_pippenger_scratch_sizeof(n).div_ceil(8)];
            let p: [*const blst_p1_affine; 2] = [points.as_ptr(), std::ptr::null()];
            let s: [*const u8; 2] = [weights.as_ptr(), std::ptr::null()];
            blst_p1s_mult_pippenger(&mut out, p.as_ptr(), n, s.as_ptr(), 64, scratch.as_mut_ptr());
        }
        out
    }

    fn pairing_holds(key: super::GroupKey, sum_sig: blst_p1_affine, sum_hash: blst_p1_affine) -> bool {
        let super::GroupKey::G2(pk) = key else { return false };
        // e(Σσ, g2) == e(ΣH, pk), as e(Σσ, −g2)·e(ΣH, pk) == 1 (one multi-pairing).
        pairings_product_is_one(&[sum_sig, sum_hash], &[neg_g2(), pk.into()])
    }
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
            // The same verdicts whatever the threads (chunks of 64, 32 and 22 beacons, each holding
            // some of the tampered ones).
            for threads in [0, 1, 2, 3] {
                let spread = verify_beacons_with_threads(&prepared, &beacons, threads);
                assert_eq!(format!("{spread:?}"), format!("{single:?}"), "{scheme}, {threads} threads");
            }
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
            // Enough beacons for the two sums to run side by side on two threads.
            let (prepared, mut beacons) = chain(scheme, 2 * BEACONS_PER_THREAD as u64 + 8);
            fn weighted<G: SignatureGroup>(prepared: &PreparedChain, beacons: &[Beacon], threads: usize) -> bool {
                let items: Vec<_> =
                    decode_all::<G>(prepared, beacons).into_iter().map(|it| it.unwrap()).enumerate().collect();
                batch_holds::<G>(prepared, &items, &mut rand::thread_rng(), threads)
            }
            let holds = |beacons: &[Beacon], threads: usize| match scheme.signatures_on_g1() {
                true => weighted::<OnG1>(&prepared, beacons, threads),
                false => weighted::<OnG2>(&prepared, beacons, threads),
            };
            for threads in [1, 2] {
                assert!(holds(&beacons, threads), "{scheme}");
            }
            // A valid point that is not the right signature (another round's).
            beacons[7].signature = beacons[2].signature.clone();
            for threads in [1, 2] {
                assert!(!holds(&beacons, threads), "{scheme}");
            }
        }
    }
}
