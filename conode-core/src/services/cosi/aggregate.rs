//! Aggregation of partial signatures with optimistic verification: add everything up and verify
//! once; only when that fails, check each contribution on its own to find and drop the bad ones.
//! Sub-leaders only add up (`combine`); the root alone verifies (`check`).
//! Works on raw blst points: partials are decoded without the (costly) subgroup check, which is
//! done once on the aggregate when it is verified.

use crate::crypto::bls::DST_SIG;
use crate::crypto::BlsPublicKey;
use crate::verify::cosi::Mask;
use blst::min_pk::{AggregatePublicKey, AggregateSignature, PublicKey, Signature};
use blst::BLST_ERROR;

/// A (possibly aggregate) signature claimed to be by the members of `mask`, sent by roster member
/// `from` (who is blamed when it does not verify).
#[derive(Clone, Debug)]
pub struct Contribution {
    pub from: usize,
    pub mask: Mask,
    pub sig: Signature,
}

/// Decodes a G2 signature, compressed (96 bytes) or uncompressed (192 bytes: no square root, which
/// is why partials and aggregates travel uncompressed). On-curve check only; the subgroup check
/// happens once, when the total is verified.
pub fn decode_sig(bytes: &[u8]) -> Option<Signature> {
    if bytes.len() != 96 && bytes.len() != 192 {
        return None;
    }
    Signature::from_bytes(bytes).ok()
}

/// Sum of signatures (`None` for an empty list).
pub fn sum_sigs(sigs: &[&Signature]) -> Option<Signature> {
    AggregateSignature::aggregate(sigs, false).ok().map(|a| a.to_signature())
}

/// Sum of the keys of the members set in `mask` (`None` when empty).
pub fn sum_keys(mask: &Mask, keys: &[BlsPublicKey]) -> Option<PublicKey> {
    let raws: Vec<&PublicKey> = mask.indices().into_iter().filter_map(|i| keys.get(i)).map(|k| k.raw()).collect();
    AggregatePublicKey::aggregate(&raws, false).ok().map(|a| a.to_public_key())
}

/// Verifies `sig` on `statement` for the members of `mask`, including the subgroup check.
pub fn verify(statement: &[u8], sig: &Signature, mask: &Mask, keys: &[BlsPublicKey]) -> bool {
    match sum_keys(mask, keys) {
        Some(pk) => sig.verify(true, statement, DST_SIG, &[], &pk, false) == BLST_ERROR::BLST_SUCCESS,
        None => false,
    }
}

/// The root's check of a round's total, half done while the members sign: the statement hashed
/// to G2 and the Miller loop of (that point, the key sum of the members expected to sign). What
/// is left when the total arrives for exactly those members is the subgroup check of the total,
/// one Miller loop and the final exponentiation; the hashing, the key sum and the other Miller
/// loop leave the end of the round, where nothing else runs beside them.
pub struct Prepared {
    mask: Mask,
    /// Σ keys of `mask`.
    key: blst::blst_p1_affine,
    /// Miller loop of (H(statement), Σ keys of `mask`).
    ml: blst::blst_fp12,
}

impl Prepared {
    /// [`Prepared::with_point`] of `statement` hashed here.
    #[cfg(test)]
    pub fn new(statement: &[u8], keys: &[BlsPublicKey], mask: Mask) -> Option<Self> {
        Self::with_point(&crate::crypto::bls::hash_to_g2(statement), keys, mask)
    }

    /// The check of the statement hashed to `point` (which must be its
    /// [`crate::crypto::bls::hash_to_g2`]: e.g. the point the root's key kept when it signed).
    /// `None` when the mask is empty or its keys add up to the point at infinity (then only the
    /// general [`verify`] decides, which refuses it).
    pub fn with_point(point: &blst::blst_p2_affine, keys: &[BlsPublicKey], mask: Mask) -> Option<Self> {
        let pk: blst::blst_p1_affine = sum_keys(&mask, keys)?.into();
        // SAFETY: a pointer to a live local.
        if unsafe { blst::blst_p1_affine_is_inf(&pk) } {
            return None;
        }
        let hash_affine = *point;
        let mut ml = blst::blst_fp12::default();
        // SAFETY: pointers to live locals.
        unsafe { blst::blst_miller_loop(&mut ml, &hash_affine, &pk) };
        Some(Self { mask, key: pk, ml })
    }

    /// The sum of the keys of [`Self::mask`], compressed.
    pub fn key_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        // SAFETY: a 48-byte buffer (a compressed G1 point) and a live point.
        unsafe { blst::blst_p1_affine_compress(out.as_mut_ptr(), &self.key) };
        out
    }

    /// The members this check was prepared for.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The same verdict as [`verify`]`(statement, sig, self.mask(), keys)`: `sig` must be in the
    /// G2 subgroup, not the point at infinity, and e(g1, sig) = e(Σ keys, H(statement)).
    pub fn verify(&self, sig: &Signature) -> bool {
        let sig: blst::blst_p2_affine = (*sig).into();
        let mut gt = blst::blst_fp12::default();
        // SAFETY: pointers to live locals and to `self`.
        unsafe {
            if blst::blst_p2_affine_is_inf(&sig) || !blst::blst_p2_affine_in_g2(&sig) {
                return false;
            }
            blst::blst_aggregated_in_g2(&mut gt, &sig);
            blst::blst_fp12_finalverify(&self.ml, &gt)
        }
    }
}

/// The sum of `contribs` and the union of their masks (`None` when there is nothing).
pub fn combine<'a>(n: usize, contribs: impl IntoIterator<Item = &'a Contribution>) -> Option<(Signature, Mask)> {
    let mut mask = Mask::new(n);
    let mut sigs = Vec::new();
    for c in contribs {
        mask.union_with(&c.mask);
        sigs.push(&c.sig);
    }
    sum_sigs(&sigs).map(|s| (s, mask))
}

/// Result of checking contributions.
pub struct Checked {
    pub valid: Vec<Contribution>,
    pub invalid: Vec<Contribution>,
    /// The sum of `trusted` and `valid` was verified as one aggregate (the happy path).
    pub verified_as_one: bool,
}

/// Splits `untrusted` into valid and invalid contributions. `trusted` ones (our own partial) are
/// added to the optimistic aggregate but never blamed. Masks must be disjoint (callers ensure it).
/// `prepared` checks the total when it covers exactly its members.
pub fn check(
    statement: &[u8],
    keys: &[BlsPublicKey],
    trusted: &[Contribution],
    untrusted: Vec<Contribution>,
    prepared: Option<&Prepared>,
) -> Checked {
    if untrusted.is_empty() {
        return Checked { valid: untrusted, invalid: Vec::new(), verified_as_one: false };
    }
    let n = keys.len();
    if let Some((sig, mask)) = combine(n, trusted.iter().chain(untrusted.iter())) {
        let ok = match prepared {
            Some(p) if p.mask() == &mask => p.verify(&sig),
            _ => verify(statement, &sig, &mask, keys),
        };
        if ok {
            return Checked { valid: untrusted, invalid: Vec::new(), verified_as_one: true };
        }
    }
    // Someone sent a bad partial: find out who, one by one.
    let (valid, invalid) = untrusted.into_iter().partition(|c| verify(statement, &c.sig, &c.mask, keys));
    Checked { valid, invalid, verified_as_one: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlsKeyPair;

    #[test]
    fn finds_the_bad_partial() {
        let kps: Vec<BlsKeyPair> = (0..5).map(|_| BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let msg = b"m";
        let c = |i: usize, m: &[u8]| Contribution {
            from: i,
            mask: Mask::from_indices(5, [i]),
            sig: decode_sig(&kps[i].sign(m).to_bytes()).unwrap(),
        };
        let own = c(0, msg);
        let r = check(msg, &keys, std::slice::from_ref(&own), vec![c(1, msg), c(2, msg)], None);
        assert!(r.verified_as_one && r.valid.len() == 2);
        let r = check(msg, &keys, std::slice::from_ref(&own), vec![c(1, msg), c(2, b"other"), c(3, msg)], None);
        assert!(!r.verified_as_one);
        assert_eq!(r.invalid.iter().map(|c| c.from).collect::<Vec<_>>(), vec![2]);
        let (sig, mask) = combine(5, std::iter::once(&own).chain(r.valid.iter())).unwrap();
        assert_eq!(mask.indices(), vec![0, 1, 3]);
        assert!(verify(msg, &sig, &mask, &keys));
        assert!(decode_sig(&[0u8; 96]).is_none());
        let raw = kps[1].sign(msg).raw().serialize();
        let back = decode_sig(&raw).unwrap();
        assert_eq!(back.compress(), kps[1].sign(msg).to_bytes());
        assert!(decode_sig(&raw[..191]).is_none());
    }

    #[test]
    fn a_prepared_check_gives_the_same_verdicts() {
        let kps: Vec<BlsKeyPair> = (0..6).map(|_| BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let msg = b"prepared";
        let sig_of = |m: &[u8], who: &[usize]| {
            let sigs: Vec<Signature> = who.iter().map(|&i| decode_sig(&kps[i].sign(m).to_bytes()).unwrap()).collect();
            sum_sigs(&sigs.iter().collect::<Vec<_>>()).unwrap()
        };
        let all = [0, 1, 2, 3, 4, 5];
        let p = Prepared::new(msg, &keys, Mask::from_indices(6, all)).unwrap();
        let cases = [
            (sig_of(msg, &all), true),
            (sig_of(b"other", &all), false),
            (sig_of(msg, &[0, 1, 2, 3, 4]), false),
            (sig_of(msg, &[0, 1, 2, 3, 4, 5, 5]), false),
            // The point at infinity, and a point on the curve outside the G2 subgroup.
            (Signature::from(blst::blst_p2_affine::default()), false),
            (outside_g2(), false),
        ];
        for (sig, good) in &cases {
            assert_eq!(p.verify(sig), *good);
            assert_eq!(verify(msg, sig, p.mask(), &keys), *good);
        }
        // check() uses it only for its exact mask, and finds the same culprit.
        let c = |i: usize, m: &[u8]| Contribution {
            from: i,
            mask: Mask::from_indices(6, [i]),
            sig: decode_sig(&kps[i].sign(m).to_bytes()).unwrap(),
        };
        let own = [c(0, msg)];
        let r = check(msg, &keys, &own, (1..6).map(|i| c(i, msg)).collect(), Some(&p));
        assert!(r.verified_as_one && r.valid.len() == 5);
        let r = check(msg, &keys, &own, vec![c(1, msg), c(2, b"x"), c(3, msg), c(4, msg), c(5, msg)], Some(&p));
        assert_eq!(r.invalid.iter().map(|c| c.from).collect::<Vec<_>>(), vec![2]);
        let r = check(msg, &keys, &own, vec![c(1, msg), c(3, msg)], Some(&p));
        assert!(r.verified_as_one && r.valid.len() == 2, "another mask: the general check");
        // Keys adding up to the point at infinity: nothing is prepared.
        let a: blst::blst_p1_affine = (*keys[0].raw()).into();
        let mut neg = blst::blst_p1_affine::default();
        // SAFETY: live locals.
        unsafe {
            let mut p1 = blst::blst_p1::default();
            blst::blst_p1_from_affine(&mut p1, &a);
            blst::blst_p1_cneg(&mut p1, true);
            blst::blst_p1_to_affine(&mut neg, &p1);
        }
        let neg = BlsPublicKey::from_bytes(&blst::min_pk::PublicKey::from(neg).compress()).unwrap();
        assert!(Prepared::new(msg, &[keys[0], neg], Mask::from_indices(2, [0, 1])).is_none());
        assert!(Prepared::new(msg, &keys, Mask::new(6)).is_none());
    }

    /// A point on the curve but outside the G2 subgroup: (x, √(x³ + 4(1 + i))) for the first
    /// small x where the root exists (the cofactor is huge: such a point is not in G2).
    fn outside_g2() -> Signature {
        let fp = |v: u64| {
            let mut out = blst::blst_fp::default();
            // SAFETY: a live local; six limbs read from a six-limb array.
            unsafe { blst::blst_fp_from_uint64(&mut out, [v, 0, 0, 0, 0, 0].as_ptr()) };
            out
        };
        for x0 in 1..1000 {
            let x = blst::blst_fp2 { fp: [fp(x0), fp(0)] };
            let b = blst::blst_fp2 { fp: [fp(4), fp(4)] };
            let (mut x2, mut x3, mut rhs, mut y) = Default::default();
            // SAFETY: live locals.
            unsafe {
                blst::blst_fp2_sqr(&mut x2, &x);
                blst::blst_fp2_mul(&mut x3, &x2, &x);
                blst::blst_fp2_add(&mut rhs, &x3, &b);
                if blst::blst_fp2_sqrt(&mut y, &rhs) {
                    let p = blst::blst_p2_affine { x, y };
                    assert!(blst::blst_p2_affine_on_curve(&p) && !blst::blst_p2_affine_in_g2(&p));
                    return Signature::from(p);
                }
            }
        }
        unreachable!("some small x is on the curve")
    }
}
