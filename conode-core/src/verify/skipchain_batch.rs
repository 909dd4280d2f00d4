//! Batch verification of several forward links, as a member storing a new block has (one per
//! level, each by its source block's roster) or a light client checking a proof. One by one, each
//! link costs two Miller loops and a final exponentiation. With secret random 64-bit weights
//! `r_i`, fresh per call,
//!
//! `e(g1, Σ r_i·σ_i) == Π e(r_i·apk_i, H(m_i))`
//!
//! (σ_i the link's aggregate signature, apk_i the sum of the keys its mask names, m_i the link's
//! message) checks them all with one multi-pairing (n + 1 Miller loops, one final exponentiation);
//! a bad link passes only with probability 2⁻⁶⁴. Links that need the very same pairing check (one
//! statement, signature, mask and key set: the levels of one block in the v2 link format, signed
//! in one round) are one term. Everything else a link must satisfy (endpoints, declared roster
//! change, format and back link, mask and policy, signature encoding and group) is checked first,
//! link by link, as [`verify_link_with_keys`] does. A link that fails those, and every link of a batch
//! that fails, is verified one by one, so the results are always the ones
//! [`verify_link_with_keys`] gives for each link.

use super::cosi::{aggregate_key, CosiVerifyError, Mask, Policy};
use super::skipchain::{
    link_statement, verify_link_with_keys, CollectiveSignature, ForwardLink, ProofError, SkipBlock,
};
use crate::crypto::bls::{hash_to_g2, neg_g1, pairings_product_is_one, DST_SIG};
use crate::crypto::{BlsPublicKey, BlsSignature};
use blst::min_pk::{PublicKey, Signature};
use blst::{blst_p2_affine, blst_scalar, BLST_ERROR};

/// One forward link to check: from block `from` to block `to`, with the cosi keys of `from`'s
/// roster (decoded and PoP-checked, in roster order).
#[derive(Clone, Copy)]
pub struct LinkToCheck<'a> {
    pub from: &'a SkipBlock,
    pub to: &'a SkipBlock,
    pub link: &'a ForwardLink,
    pub keys: &'a [BlsPublicKey],
}

/// Verifies every link of `links` under `policy`; the result at `i` is
/// `verify_link_with_keys(links[i].from, links[i].to, links[i].link, policy, links[i].keys)`.
/// Links with the same statement, signature, mask and keys (the levels of one block in the v2
/// format, signed in one round) share one pairing check.
pub fn verify_links_with_keys(links: &[LinkToCheck<'_>], policy: Policy) -> Vec<Result<(), ProofError>> {
    let one = |l: &LinkToCheck<'_>| verify_link_with_keys(l.from, l.to, l.link, policy, l.keys);
    let (mut results, batch) = plan(links, policy, &decode_signature);
    // One check alone: its pairing on the parts already decoded (not decoded again).
    let holds = match batch.as_slice() {
        [] => true,
        [c] => c.key.verify(&c.msg, &c.signature),
        _ => batch_holds(&batch),
    };
    for c in &batch {
        for &i in &c.links {
            results[i] = Some(if holds { Ok(()) } else { one(&links[i]) });
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Err(ProofError::Empty))).collect()
}

/// [`verify_links_with_keys`], with the statements' points on G2 from `points` (a node's
/// [`crate::crypto::BlsKeyPair::message_point`]: it hashed the statements it signed) instead of
/// hashed again; `points(m)` must be [`hash_to_g2`]`(m)`. The same results.
pub fn verify_links_with_points(
    links: &[LinkToCheck<'_>],
    policy: Policy,
    pairings: &Pairings<'_>,
) -> Vec<Result<(), ProofError>> {
    let one = |l: &LinkToCheck<'_>| verify_link_with_keys(l.from, l.to, l.link, policy, l.keys);
    let (mut results, batch) = plan(links, policy, pairings.signature);
    let checks: Vec<PairingCheck> = batch
        .iter()
        .map(|c| PairingCheck { point: (pairings.point)(&c.msg), key: c.key, signature: c.signature })
        .collect();
    let holds = (pairings.all_hold)(checks);
    for c in &batch {
        for &i in &c.links {
            results[i] = Some(if holds { Ok(()) } else { one(&links[i]) });
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Err(ProofError::Empty))).collect()
}

/// Where a verifier gets the points of statements on G2 (`point(m)` must be [`hash_to_g2`]`(m)`),
/// has pairing checks done (`all_hold(checks)` must be [`all_hold`]`(&checks)`, e.g. batched
/// with other callers' checks) and signatures decoded (`signature(bytes)` must be
/// [`decode_signature`]`(bytes)`, e.g. kept for the next blocks of a batched round, which carry the
/// same signature).
pub struct Pairings<'a> {
    pub point: &'a dyn Fn(&[u8]) -> blst_p2_affine,
    pub all_hold: &'a dyn Fn(Vec<PairingCheck>) -> bool,
    pub signature: &'a dyn Fn(&[u8]) -> Option<BlsSignature>,
}

impl Pairings<'static> {
    /// Points hashed here, checks done here, signatures decoded here.
    pub fn direct() -> Self {
        Pairings { point: &point_of, all_hold: &all_hold_owned, signature: &decode_signature }
    }
}

/// A signature decoded and checked to be in the group (`None`: not a valid encoding of one).
pub fn decode_signature(bytes: &[u8]) -> Option<BlsSignature> {
    BlsSignature::from_bytes(bytes).ok()
}

fn all_hold_owned(checks: Vec<PairingCheck>) -> bool {
    all_hold(&checks)
}

/// One pairing check e(g1, signature) = e(key, point): `signature` (group-checked when decoded)
/// signs the message hashed to `point` for `key` (a sum of PoP-checked keys).
#[derive(Clone, Copy)]
pub struct PairingCheck {
    pub point: blst_p2_affine,
    pub key: BlsPublicKey,
    pub signature: BlsSignature,
}

impl PairingCheck {
    /// Whether the check holds: e(key, point)·e(−g1, signature) = 1, one multi-pairing (two
    /// Miller loops sharing their squarings, one final exponentiation).
    pub fn holds(&self) -> bool {
        let pk: blst::blst_p1_affine = (*self.key.raw()).into();
        let sig: blst_p2_affine = (*self.signature.raw()).into();
        // SAFETY: pointers to live locals.
        if unsafe { blst::blst_p1_affine_is_inf(&pk) || blst::blst_p2_affine_is_inf(&sig) } {
            return false;
        }
        pairings_product_is_one(&[pk, neg_g1()], &[self.point, sig])
    }

    /// sha256 over the point (compressed), the key and the signature: checks with one fingerprint
    /// are the same check (a verifier may remember one that held, e.g. the shared signature of a
    /// batched round's links, met again at every block of the batch).
    pub fn fingerprint(&self) -> [u8; 32] {
        pairing_fingerprint(&self.point, &self.key.to_bytes(), &self.signature.to_bytes())
    }
}

/// [`PairingCheck::fingerprint`] of the check of `signature` (compressed) on `point` for `key`
/// (compressed), for callers that hold the parts (e.g. a cosi root that verified its total).
pub fn pairing_fingerprint(point: &blst_p2_affine, key: &[u8; 48], signature: &[u8; 96]) -> [u8; 32] {
    let mut compressed = [0u8; 96];
    // SAFETY: a 96-byte buffer (a compressed G2 point) and a live point.
    unsafe { blst::blst_p2_affine_compress(compressed.as_mut_ptr(), point) };
    crate::crypto::sha256(&[&compressed, key, signature])
}

/// Whether every check of `checks` holds (true for none): one alone directly, several with secret
/// random non-zero 64-bit weights r_i, fresh per call, as e(g1, Σ r_i·σ_i) = Π e(r_i·key_i, point_i)
/// — one multi-pairing (n + 1 Miller loops, one final exponentiation). A bad check among them
/// passes only with probability 2⁻⁶⁴.
pub fn all_hold(checks: &[PairingCheck]) -> bool {
    match checks {
        [] => true,
        [c] => c.holds(),
        _ => weighted_hold(checks),
    }
}

fn weighted_hold(checks: &[PairingCheck]) -> bool {
    let mut rng = rand::rngs::OsRng;
    let mut sum = blst::blst_p2::default();
    let mut keys = Vec::with_capacity(checks.len());
    for (i, c) in checks.iter().enumerate() {
        let mut w = 0u64;
        while w == 0 {
            w = rand::RngCore::next_u64(&mut rng);
        }
        let w = w.to_le_bytes();
        let pk: blst::blst_p1_affine = (*c.key.raw()).into();
        let sig: blst_p2_affine = (*c.signature.raw()).into();
        let (mut p1, mut wp1, mut p2, mut wp2) =
            (blst::blst_p1::default(), blst::blst_p1::default(), blst::blst_p2::default(), blst::blst_p2::default());
        let mut wpk = blst::blst_p1_affine::default();
        // SAFETY: pointers to live locals; the weight is 8 bytes, 64 bits as passed.
        unsafe {
            if blst::blst_p1_affine_is_inf(&pk) || blst::blst_p2_affine_is_inf(&sig) {
                return false;
            }
            blst::blst_p1_from_affine(&mut p1, &pk);
            blst::blst_p1_mult(&mut wp1, &p1, w.as_ptr(), 64);
            blst::blst_p1_to_affine(&mut wpk, &wp1);
            blst::blst_p2_from_affine(&mut p2, &sig);
            blst::blst_p2_mult(&mut wp2, &p2, w.as_ptr(), 64);
            if i == 0 {
                sum = wp2;
            } else {
                let prev = sum;
                blst::blst_p2_add_or_double(&mut sum, &prev, &wp2);
            }
        }
        keys.push(wpk);
    }
    let mut sum_affine = blst_p2_affine::default();
    // SAFETY: pointers to live locals.
    unsafe {
        blst::blst_p2_to_affine(&mut sum_affine, &sum);
        if blst::blst_p2_affine_is_inf(&sum_affine) {
            return false;
        }
    }
    // e(g1, Σ r_i·σ_i) = Π e(r_i·key_i, point_i), as one product with −g1: n + 1 Miller loops.
    let mut points: Vec<blst_p2_affine> = checks.iter().map(|c| c.point).collect();
    keys.push(neg_g1());
    points.push(sum_affine);
    pairings_product_is_one(&keys, &points)
}

/// [`crate::verify::cosi::verify`] of a statement given by its point on G2 (`point` must be
/// [`hash_to_g2`]`(statement)`): the same checks, in the same order, with the same errors.
pub fn verify_collective_with_point(
    point: &blst_p2_affine,
    signature: &[u8],
    mask: &[u8],
    keys: &[BlsPublicKey],
    policy: Policy,
) -> Result<(), CosiVerifyError> {
    collective_check(point, signature, mask, keys, policy)?
        .holds()
        .then_some(())
        .ok_or(CosiVerifyError::InvalidSignature)
}

/// Everything [`verify_collective_with_point`] checks but the pairing, and that pairing check.
pub fn collective_check(
    point: &blst_p2_affine,
    signature: &[u8],
    mask: &[u8],
    keys: &[BlsPublicKey],
    policy: Policy,
) -> Result<PairingCheck, CosiVerifyError> {
    let n = keys.len();
    let (mask, signature) = crate::verify::cosi::signers_and_signature(signature, mask, n, policy)?;
    if mask.roster_len() != n {
        return Err(CosiVerifyError::MaskLength { n, expected: Mask::byte_len(n), got: mask.as_bytes().len() });
    }
    let key = aggregate_key(&mask, keys).ok_or(CosiVerifyError::NotEnoughSigners { signers: 0, required: 1, n })?;
    Ok(PairingCheck { point: *point, key, signature })
}

/// The point of `msg` on G2, computed (no node's points at hand).
pub fn point_of(msg: &[u8]) -> blst_p2_affine {
    hash_to_g2(msg)
}

/// The results of the links that fail a check before the pairing (verified one by one), and the
/// pairing checks the others need, identical ones merged.
fn plan<'a>(
    links: &[LinkToCheck<'a>],
    policy: Policy,
    decode: &dyn Fn(&[u8]) -> Option<BlsSignature>,
) -> (Vec<Option<Result<(), ProofError>>>, Vec<Check<'a>>) {
    let one = |l: &LinkToCheck<'_>| verify_link_with_keys(l.from, l.to, l.link, policy, l.keys);
    let mut results: Vec<Option<Result<(), ProofError>>> = vec![None; links.len()];
    let mut batch: Vec<Check<'a>> = Vec::with_capacity(links.len());
    for (i, l) in links.iter().enumerate() {
        let Some((msg, sig)) = precheck(l) else {
            results[i] = Some(one(l));
            continue;
        };
        // The same check as one already in the batch: everything left to check (mask, policy,
        // signature, pairing) is a function of the statement, signature, mask and keys.
        if let Some(same) = batch.iter_mut().find(|c| {
            c.msg == msg
                && c.sig.signature == sig.signature
                && c.sig.mask == sig.mask
                && (std::ptr::eq(c.keys, l.keys) || c.keys == l.keys)
        }) {
            same.links.push(i);
            continue;
        }
        match parts(l.keys, sig, l.link.policy(policy, l.keys.len()), decode) {
            Some((key, signature)) => batch.push(Check { links: vec![i], msg, sig, keys: l.keys, key, signature }),
            None => results[i] = Some(one(l)),
        }
    }
    (results, batch)
}

/// One pairing check of the batch: the links (indices) it stands for, their statement, signature
/// and source keys, and the decoded signers' aggregate key and signature.
struct Check<'a> {
    links: Vec<usize>,
    msg: [u8; 32],
    sig: &'a CollectiveSignature,
    keys: &'a [BlsPublicKey],
    key: BlsPublicKey,
    signature: BlsSignature,
}

/// The statement and signature of a link whose endpoints, declared roster change, format and key
/// count are right; `None` when any is wrong (the one-by-one path says what).
fn precheck<'a>(l: &LinkToCheck<'a>) -> Option<([u8; 32], &'a CollectiveSignature)> {
    let (a, b, link) = (l.from, l.to, l.link);
    if link.from != a.hash || link.to != b.hash {
        return None;
    }
    let (a_id, b_id) = (a.roster.as_ref()?.id(), b.roster.as_ref()?.id());
    let expected_new = (a_id != b_id).then_some(b_id);
    if link.new_roster.as_deref() != expected_new.as_ref().map(|r| r.as_slice()) {
        return None;
    }
    let sig = link.signature.as_ref()?;
    if l.keys.len() != a.roster.as_ref()?.members.len() {
        return None;
    }
    Some((link_statement(a, b, link).ok()?, sig))
}

/// The signers' aggregate key and the decoded signature of `sig` over `keys`; `None` when the
/// mask, the policy or the signature's encoding is wrong.
fn parts(
    keys: &[BlsPublicKey],
    sig: &CollectiveSignature,
    policy: Policy,
    decode: &dyn Fn(&[u8]) -> Option<BlsSignature>,
) -> Option<(BlsPublicKey, BlsSignature)> {
    let n = keys.len();
    let required = policy.required(n).ok()?;
    let mask = Mask::from_bytes(n, &sig.mask).ok()?;
    if mask.count() < required {
        return None;
    }
    let signature = decode(&sig.signature)?;
    let key = aggregate_key(&mask, keys)?;
    Some((key, signature))
}

/// The weighted check of the links in `batch` (true: every signature holds, except with
/// probability 2⁻⁶⁴).
fn batch_holds(batch: &[Check<'_>]) -> bool {
    let mut rng = rand::rngs::OsRng;
    let msgs: Vec<&[u8]> = batch.iter().map(|c| c.msg.as_slice()).collect();
    let pks: Vec<&PublicKey> = batch.iter().map(|c| c.key.raw()).collect();
    let sigs: Vec<&Signature> = batch.iter().map(|c| c.signature.raw()).collect();
    let rands: Vec<blst_scalar> = batch
        .iter()
        .map(|_| {
            let mut b = [0u8; 32];
            // Non-zero 64-bit weights (a zero weight would drop its link from the check).
            let mut w = 0u64;
            while w == 0 {
                w = rand::RngCore::next_u64(&mut rng);
            }
            b[..8].copy_from_slice(&w.to_le_bytes());
            blst_scalar { b }
        })
        .collect();
    // Keys are sums of PoP-checked keys; signatures were group-checked when decoded.
    Signature::verify_multiple_aggregate_signatures(&msgs, DST_SIG, &pks, false, &sigs, false, &rands, 64)
        == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlsKeyPair;
    use crate::verify::skipchain::{BlockRoster, RosterEntry, LINK_FORMAT_V1, LINK_FORMAT_V2, LINK_FORMAT_V4};

    /// (source index, target index, link).
    type Linked = (usize, usize, ForwardLink);

    struct Setup {
        kps: Vec<BlsKeyPair>,
        keys: Vec<BlsPublicKey>,
        blocks: Vec<SkipBlock>,
        /// (source index, target index, link).
        links: Vec<(usize, usize, ForwardLink)>,
    }

    /// The aggregate of `signers` over `msg`, as a collective signature.
    fn cosign(kps: &[BlsKeyPair], signers: &[usize], msg: &[u8]) -> CollectiveSignature {
        let sigs: Vec<BlsSignature> = signers.iter().map(|&i| kps[i].sign(msg)).collect();
        let agg = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        CollectiveSignature {
            signature: agg.to_bytes().to_vec(),
            mask: Mask::from_indices(kps.len(), signers.iter().copied()).into_bytes(),
        }
    }

    /// Blocks 0..=4 (base height 2) on one roster of 4, block 4 linking back to 3, 2 and 0; its
    /// links 0→4, 2→4, 3→4 signed by `signers`, in `format` (v2: one signature for all three).
    fn setup(signers: &[usize], format: u32) -> Setup {
        let kps: Vec<BlsKeyPair> = (0..4).map(|_| BlsKeyPair::generate()).collect();
        let roster = BlockRoster {
            members: kps
                .iter()
                .enumerate()
                .map(|(i, k)| RosterEntry {
                    identity: vec![i as u8; 32],
                    cosi_key: k.public().to_bytes().to_vec(),
                    address: format!("tls://127.0.0.1:{}", 7000 + i),
                    pop: k.pop().to_bytes().to_vec(),
                    description: String::new(),
                })
                .collect(),
        };
        let mut blocks: Vec<SkipBlock> = Vec::new();
        for i in 0..5u64 {
            let back_link_ids = match i {
                4 => vec![blocks[3].hash.clone(), blocks[2].hash.clone(), blocks[0].hash.clone()],
                _ => Vec::new(),
            };
            let mut b = SkipBlock {
                index: i,
                base_height: 2,
                back_link_ids,
                roster: Some(roster.clone()),
                data: vec![i as u8],
                ..Default::default()
            };
            b.hash = b.compute_hash().to_vec();
            blocks.push(b);
        }
        let v2 = cosign(&kps, signers, &ForwardLink::commit_message(&blocks[4].hash));
        let v4 = cosign(&kps, signers, &ForwardLink::fast_message(&blocks[4].hash, &roster.id()));
        let links = [0usize, 2, 3]
            .into_iter()
            .map(|src| {
                let signature = match format {
                    LINK_FORMAT_V1 => {
                        cosign(&kps, signers, &ForwardLink::message(&blocks[src].hash, &blocks[4].hash, None))
                    }
                    LINK_FORMAT_V4 => v4.clone(),
                    _ => v2.clone(),
                };
                let link = ForwardLink {
                    from: blocks[src].hash.clone(),
                    to: blocks[4].hash.clone(),
                    new_roster: None,
                    signature: Some(signature),
                    format,
                    ..Default::default()
                };
                (src, 4, link)
            })
            .collect();
        Setup { keys: kps.iter().map(|k| k.public()).collect(), kps, blocks, links }
    }

    fn checks<'a>(s: &'a Setup, links: &'a [(usize, usize, ForwardLink)]) -> Vec<LinkToCheck<'a>> {
        links
            .iter()
            .map(|(a, b, link)| LinkToCheck { from: &s.blocks[*a], to: &s.blocks[*b], link, keys: &s.keys })
            .collect()
    }

    fn one_by_one(links: &[LinkToCheck<'_>]) -> Vec<Result<(), ProofError>> {
        links.iter().map(|l| verify_link_with_keys(l.from, l.to, l.link, Policy::Default, l.keys)).collect()
    }

    /// Checks `case`: results as one by one, in a batch and alone; returns them.
    fn same_as_one_by_one(s: &Setup, case: &[(usize, usize, ForwardLink)]) -> Vec<Result<(), ProofError>> {
        let links = checks(s, case);
        let expected = one_by_one(&links);
        assert_eq!(verify_links_with_keys(&links, Policy::Default), expected);
        // Each link alone too (a block of height 1 has one link).
        for l in &links {
            assert_eq!(verify_links_with_keys(&[*l], Policy::Default), one_by_one(&[*l]));
        }
        expected
    }

    #[test]
    fn a_fast_link_needs_every_member_of_the_roster_that_prepared_the_block() {
        let all = setup(&[0, 1, 2, 3], LINK_FORMAT_V4);
        assert!(same_as_one_by_one(&all, &all.links).iter().all(|r| r.is_ok()));
        // More than two thirds is a prepare certificate, not a link; nor under a lower policy.
        let most = setup(&[0, 1, 3], LINK_FORMAT_V4);
        assert!(same_as_one_by_one(&most, &most.links).iter().all(|r| r.is_err()));
        let low = checks(&most, &most.links);
        assert!(verify_links_with_keys(&low, Policy::Threshold(1)).iter().all(|r| r.is_err()));
        // A full signature of the fast statement naming another roster (the source has this one).
        let mut other_roster = all.links.clone();
        let elsewhere = ForwardLink::fast_message(&all.blocks[4].hash, &[7; 32]);
        let forged = cosign(&all.kps, &[0, 1, 2, 3], &elsewhere);
        other_roster.iter_mut().for_each(|l| l.2.signature = Some(forged.clone()));
        assert!(same_as_one_by_one(&all, &other_roster).iter().all(|r| r.is_err()));
        // The v2 signature of every member read as a fast one, and the other way round.
        let v2 = setup(&[0, 1, 2, 3], LINK_FORMAT_V2);
        let mut as_v4 = v2.links.clone();
        as_v4.iter_mut().for_each(|l| l.2.format = LINK_FORMAT_V4);
        assert!(same_as_one_by_one(&v2, &as_v4).iter().all(|r| r.is_err()));
        let mut as_v2 = all.links.clone();
        as_v2.iter_mut().for_each(|l| l.2.format = LINK_FORMAT_V2);
        assert!(same_as_one_by_one(&all, &as_v2).iter().all(|r| r.is_err()));
        // A target that does not link back to the source.
        let mut unlinked = all.links.clone();
        unlinked.iter_mut().for_each(|l| l.0 = 1);
        unlinked.iter_mut().for_each(|l| l.2.from = all.blocks[1].hash.clone());
        assert!(same_as_one_by_one(&all, &unlinked).iter().all(|r| r.is_err()));
    }

    #[test]
    fn good_links_verify_as_one_batch() {
        for format in [LINK_FORMAT_V1, LINK_FORMAT_V2] {
            let s = setup(&[0, 1, 2, 3], format);
            let links = checks(&s, &s.links);
            let (early, batch) = plan(&links, Policy::Default, &decode_signature);
            assert!(early.iter().all(|r| r.is_none()));
            // v1: one term per level; v2: the three levels share one signature, one check.
            assert_eq!(batch.len(), if format == LINK_FORMAT_V1 { 3 } else { 1 });
            if format == LINK_FORMAT_V1 {
                assert!(batch_holds(&batch));
            }
            assert_eq!(verify_links_with_keys(&links, Policy::Default), vec![Ok(()), Ok(()), Ok(())]);
            assert_eq!(one_by_one(&links), vec![Ok(()), Ok(()), Ok(())]);
            assert_eq!(verify_links_with_keys(&links[..1], Policy::Default), vec![Ok(())]);
        }
        assert!(verify_links_with_keys(&[], Policy::Default).is_empty());
    }

    #[test]
    fn a_tampered_link_is_found_with_the_one_by_one_error() {
        let s = setup(&[0, 1, 3], LINK_FORMAT_V1);
        let sig_of = |i: usize| s.links[i].2.signature.clone().unwrap();
        let mut cases: Vec<Vec<(usize, usize, ForwardLink)>> = Vec::new();
        // Signatures of levels swapped: each is valid, for another message.
        let mut swapped = s.links.clone();
        swapped[1].2.signature = Some(sig_of(2));
        swapped[2].2.signature = Some(sig_of(1));
        cases.push(swapped);
        // A mask claiming one more signer.
        let mut wider = s.links.clone();
        wider[0].2.signature.as_mut().unwrap().mask = Mask::from_indices(4, [0, 1, 2, 3]).into_bytes();
        cases.push(wider);
        // Too few signers for the policy.
        let mut thin = s.links.clone();
        thin[2].2.signature.as_mut().unwrap().mask = Mask::from_indices(4, [0, 1]).into_bytes();
        cases.push(thin);
        // A signature that does not decode, one of the wrong length, and none.
        let mut garbage = s.links.clone();
        garbage[1].2.signature.as_mut().unwrap().signature = vec![0xab; 96];
        garbage[2].2.signature.as_mut().unwrap().signature = vec![1; 5];
        garbage[0].2.signature = None;
        cases.push(garbage);
        // Undeclared roster change, wrong endpoints.
        let mut declared = s.links.clone();
        declared[0].2.new_roster = Some(vec![7; 32]);
        declared[1].2.to = s.blocks[3].hash.clone();
        cases.push(declared);
        // Two links of a batch are bad, the third fine.
        let mut two = s.links.clone();
        two[0].2.signature = Some(sig_of(1));
        two[2].2.signature = Some(sig_of(0));
        cases.push(two);
        for case in &cases {
            let expected = same_as_one_by_one(&s, case);
            assert!(expected.iter().any(|r| r.is_err()), "each case has a bad link");
        }
        // The weighted check itself refuses a batch with one bad signature among good ones.
        let links = checks(&s, &cases[0]);
        let (_, batch) = plan(&links, Policy::Default, &decode_signature);
        assert_eq!(batch.len(), 3);
        assert!(!batch_holds(&batch));
    }

    #[test]
    fn formats_are_domain_separated() {
        let v1 = setup(&[0, 1, 2, 3], LINK_FORMAT_V1);
        let v2 = setup(&[0, 1, 2, 3], LINK_FORMAT_V2);
        let mut cases: Vec<(&Setup, Vec<Linked>)> = Vec::new();
        // A v1 signature relabelled v2, and a v2 one relabelled v1.
        let mut as_v2 = v1.links.clone();
        as_v2.iter_mut().for_each(|l| l.2.format = LINK_FORMAT_V2);
        cases.push((&v1, as_v2));
        let mut as_v1 = v2.links.clone();
        as_v1.iter_mut().for_each(|l| l.2.format = LINK_FORMAT_V1);
        cases.push((&v2, as_v1));
        // A format no verifier knows.
        let mut unknown = v2.links.clone();
        unknown[1].2.format = 1;
        cases.push((&v2, unknown));
        for (s, case) in &cases {
            let results = same_as_one_by_one(s, case);
            assert!(results.iter().any(|r| r.is_err()), "a relabelled link never verifies: {results:?}");
        }
        assert!(same_as_one_by_one(&v1, &cases[0].1).iter().all(|r| r.is_err()));
        assert!(same_as_one_by_one(&v2, &cases[1].1).iter().all(|r| r.is_err()));
        assert_eq!(same_as_one_by_one(&v2, &cases[2].1).iter().filter(|r| r.is_err()).count(), 1);
    }

    #[test]
    fn links_of_single_rounds_carry_no_batch_fields() {
        for format in [LINK_FORMAT_V1, LINK_FORMAT_V2] {
            let s = setup(&[0, 1, 2, 3], format);
            assert!(same_as_one_by_one(&s, &s.links).iter().all(|r| r.is_ok()));
            let with = |f: fn(&mut ForwardLink)| {
                let mut links = s.links.clone();
                f(&mut links[0].2);
                links
            };
            for case in
                [with(|l| l.batch_size = 2), with(|l| l.batch_index = 1), with(|l| l.batch_path = vec![vec![0; 32]])]
            {
                let results = same_as_one_by_one(&s, &case);
                assert!(results[0].as_ref().is_err_and(|e| e.to_string().contains("carries a batch")), "{results:?}");
            }
        }
    }

    #[test]
    fn a_v2_link_needs_the_target_to_link_back_to_its_source() {
        let s = setup(&[0, 1, 2, 3], LINK_FORMAT_V2);
        let good = s.links[0].2.clone();
        // Block 1 is not a back link of block 4 (distance 3 is no power of 2), block 4 does not link
        // to itself, and block 3 is no source at distance 2: the signature (over block 4 alone, by
        // the same roster) is valid, the link is not.
        for (src, dst) in [(1usize, 4usize), (4, 4), (1, 3)] {
            let link = ForwardLink { from: s.blocks[src].hash.clone(), to: s.blocks[dst].hash.clone(), ..good.clone() };
            let case = vec![(src, dst, link)];
            let results = same_as_one_by_one(&s, &case);
            assert!(results[0].is_err(), "{src} -> {dst}: {results:?}");
        }
        // A v2 signature over another block at the same index does not serve this one.
        let mut other = s.blocks[4].clone();
        other.data = b"other".to_vec();
        other.hash = other.compute_hash().to_vec();
        let forged = ForwardLink {
            to: other.hash.clone(),
            signature: Some(cosign(&s.kps, &[0, 1, 2, 3], &ForwardLink::commit_message(&s.blocks[4].hash))),
            ..good
        };
        assert!(verify_link_with_keys(&s.blocks[0], &other, &forged, Policy::Default, &s.keys).is_err());
    }

    #[test]
    fn pairing_checks_with_points_equal_one_by_one() {
        let kps: Vec<BlsKeyPair> = (0..4).map(|_| BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 32]).collect();
        let good: Vec<CollectiveSignature> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| cosign(&kps, if i % 2 == 0 { &[0, 1, 2, 3] } else { &[0, 2, 3] }, m))
            .collect();
        let check = |m: &[u8], c: &CollectiveSignature| {
            collective_check(&kps[1].message_point(m), &c.signature, &c.mask, &keys, Policy::Default).unwrap()
        };
        let checks: Vec<PairingCheck> = msgs.iter().zip(&good).map(|(m, c)| check(m, c)).collect();
        assert!(checks.iter().all(PairingCheck::holds));
        assert!(all_hold(&checks) && all_hold(&checks[..1]) && all_hold(&[]));
        // One bad item (a valid signature of another message) makes the batch fail, and only it
        // fails on its own.
        for bad in 0..checks.len() {
            let mut tampered = checks.clone();
            tampered[bad].signature = checks[(bad + 1) % checks.len()].signature;
            assert!(!all_hold(&tampered), "bad item {bad}");
            let failing: Vec<usize> = (0..tampered.len()).filter(|&i| !tampered[i].holds()).collect();
            assert_eq!(failing, vec![bad]);
        }
        // Two bad items that cancel out without weights (swapped signatures) do not pass.
        let mut swapped = checks.clone();
        swapped.swap(0, 1);
        assert!(all_hold(&swapped), "the same checks in another order");
        let mut crossed = checks.clone();
        let (s0, s1) = (crossed[0].signature, crossed[1].signature);
        crossed[0].signature = s1;
        crossed[1].signature = s0;
        assert!(!all_hold(&crossed));
        // The collective check with a point gives cosi::verify's verdict and error on good and
        // tampered inputs.
        let mut cases: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> =
            msgs.iter().zip(&good).map(|(m, c)| (m.clone(), c.signature.clone(), c.mask.clone())).collect();
        cases.push((msgs[0].clone(), good[1].signature.clone(), good[0].mask.clone()));
        cases.push((msgs[1].clone(), good[1].signature.clone(), Mask::from_indices(4, [0, 1, 2, 3]).into_bytes()));
        cases.push((msgs[1].clone(), good[1].signature.clone(), Mask::from_indices(4, [0, 2]).into_bytes()));
        cases.push((msgs[1].clone(), good[1].signature.clone(), vec![0xff]));
        cases.push((msgs[1].clone(), good[1].signature.clone(), vec![]));
        cases.push((msgs[1].clone(), vec![0xab; 96], good[1].mask.clone()));
        cases.push((msgs[1].clone(), vec![1; 5], good[1].mask.clone()));
        for (m, sig, mask) in &cases {
            let expected = super::super::cosi::verify(m, sig, mask, &keys, Policy::Default);
            let got = verify_collective_with_point(&point_of(m), sig, mask, &keys, Policy::Default);
            assert_eq!(got.map_err(|e| e.to_string()), expected.map_err(|e| e.to_string()), "{m:?}");
        }
        assert_eq!(
            cases
                .iter()
                .filter(|(m, s, k)| verify_collective_with_point(&point_of(m), s, k, &keys, Policy::Default).is_ok())
                .count(),
            5
        );
    }

    #[test]
    fn links_with_points_verify_as_with_keys() {
        for format in [LINK_FORMAT_V1, LINK_FORMAT_V2] {
            let s = setup(&[0, 1, 3], format);
            let mut bad = s.links.clone();
            bad[1].2.signature = s.links[0].2.signature.clone();
            bad[2].2.signature.as_mut().unwrap().mask = Mask::from_indices(4, [0, 1]).into_bytes();
            for case in [&s.links, &bad] {
                let links = checks(&s, case);
                let expected = verify_links_with_keys(&links, Policy::Default);
                assert_eq!(
                    verify_links_with_points(
                        &links,
                        Policy::Default,
                        &Pairings { point: &|m| s.kps[0].message_point(m), ..Pairings::direct() }
                    ),
                    expected
                );
                for l in &links {
                    assert_eq!(
                        verify_links_with_points(&[*l], Policy::Default, &Pairings::direct()),
                        one_by_one(&[*l])
                    );
                }
            }
        }
    }
}
