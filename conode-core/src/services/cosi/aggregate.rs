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
pub fn check(
    statement: &[u8],
    keys: &[BlsPublicKey],
    trusted: &[Contribution],
    untrusted: Vec<Contribution>,
) -> Checked {
    if untrusted.is_empty() {
        return Checked { valid: untrusted, invalid: Vec::new(), verified_as_one: false };
    }
    let n = keys.len();
    if let Some((sig, mask)) = combine(n, trusted.iter().chain(untrusted.iter())) {
        if verify(statement, &sig, &mask, keys) {
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
        let r = check(msg, &keys, std::slice::from_ref(&own), vec![c(1, msg), c(2, msg)]);
        assert!(r.verified_as_one && r.valid.len() == 2);
        let r = check(msg, &keys, std::slice::from_ref(&own), vec![c(1, msg), c(2, b"other"), c(3, msg)]);
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
}
