//! Batch verification of several forward links, as a member storing a new block has (one per
//! level, each by its source block's roster) or a light client checking a proof. One by one, each
//! link costs two Miller loops and a final exponentiation. With secret random 64-bit weights
//! `r_i`, fresh per call,
//!
//! `e(g1, Σ r_i·σ_i) == Π e(r_i·apk_i, H(m_i))`
//!
//! (σ_i the link's aggregate signature, apk_i the sum of the keys its mask names, m_i the link's
//! message) checks them all with one multi-pairing (n + 1 Miller loops, one final exponentiation);
//! a bad link passes only with probability 2⁻⁶⁴. Everything else a link must satisfy (endpoints,
//! declared roster change, mask and policy, signature encoding and group) is checked first, link
//! by link, as [`verify_link_with_keys`] does. A link that fails those, and every link of a batch
//! that fails, is verified one by one, so the results are always the ones
//! [`verify_link_with_keys`] gives for each link.

use super::cosi::{aggregate_key, Mask, Policy};
use super::skipchain::{verify_link_with_keys, ForwardLink, ProofError, SkipBlock};
use crate::crypto::bls::DST_SIG;
use crate::crypto::{BlsPublicKey, BlsSignature};
use blst::min_pk::{PublicKey, Signature};
use blst::{blst_scalar, BLST_ERROR};

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
pub fn verify_links_with_keys(links: &[LinkToCheck<'_>], policy: Policy) -> Vec<Result<(), ProofError>> {
    let one = |l: &LinkToCheck<'_>| verify_link_with_keys(l.from, l.to, l.link, policy, l.keys);
    let mut results: Vec<Option<Result<(), ProofError>>> = vec![None; links.len()];
    let mut batch = Vec::with_capacity(links.len());
    for (i, l) in links.iter().enumerate() {
        match parts(l, policy) {
            Some(p) => batch.push((i, p)),
            None => results[i] = Some(one(l)),
        }
    }
    // One link alone: its pairing check on the parts already decoded (not decoded again).
    let holds = match batch.as_slice() {
        [] => true,
        [(_, (msg, key, signature))] => key.verify(msg, signature),
        _ => batch_holds(&batch),
    };
    if holds {
        for (i, _) in &batch {
            results[*i] = Some(Ok(()));
        }
    } else {
        for (i, _) in &batch {
            results[*i] = Some(one(&links[*i]));
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Err(ProofError::Empty))).collect()
}

/// What the pairing check of a link needs: its message, its signers' aggregate key, its signature.
type Parts = ([u8; 32], BlsPublicKey, BlsSignature);

/// The [`Parts`] of a link; `None` when anything else about the link is wrong (the one-by-one
/// path says what).
fn parts(l: &LinkToCheck<'_>, policy: Policy) -> Option<Parts> {
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
    let n = l.keys.len();
    if n != a.roster.as_ref()?.members.len() {
        return None;
    }
    let required = policy.required(n).ok()?;
    let mask = Mask::from_bytes(n, &sig.mask).ok()?;
    if mask.count() < required {
        return None;
    }
    let signature = BlsSignature::from_bytes(&sig.signature).ok()?;
    let key = aggregate_key(&mask, l.keys)?;
    Some((ForwardLink::message(&link.from, &link.to, link.new_roster.as_deref()), key, signature))
}

/// The weighted check of the links in `batch` (true: every signature holds, except with
/// probability 2⁻⁶⁴).
fn batch_holds(batch: &[(usize, Parts)]) -> bool {
    let mut rng = rand::rngs::OsRng;
    let msgs: Vec<&[u8]> = batch.iter().map(|(_, (m, _, _))| m.as_slice()).collect();
    let pks: Vec<&PublicKey> = batch.iter().map(|(_, (_, k, _))| k.raw()).collect();
    let sigs: Vec<&Signature> = batch.iter().map(|(_, (_, _, s))| s.raw()).collect();
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
    use crate::verify::skipchain::{BlockRoster, CollectiveSignature, RosterEntry};

    struct Setup {
        keys: Vec<BlsPublicKey>,
        blocks: Vec<SkipBlock>,
        /// (source index, target index, link).
        links: Vec<(usize, usize, ForwardLink)>,
    }

    /// Blocks 0..=4 on one roster of 4; links 0→4, 2→4, 3→4 signed by `signers`.
    fn setup(signers: &[usize]) -> Setup {
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
        let blocks: Vec<SkipBlock> = (0..5u64)
            .map(|i| {
                let mut b =
                    SkipBlock { index: i, roster: Some(roster.clone()), data: vec![i as u8], ..Default::default() };
                b.hash = b.compute_hash().to_vec();
                b
            })
            .collect();
        let links = [0usize, 2, 3]
            .into_iter()
            .map(|src| {
                let msg = ForwardLink::message(&blocks[src].hash, &blocks[4].hash, None);
                let sigs: Vec<BlsSignature> = signers.iter().map(|&i| kps[i].sign(&msg)).collect();
                let agg = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
                let link = ForwardLink {
                    from: blocks[src].hash.clone(),
                    to: blocks[4].hash.clone(),
                    new_roster: None,
                    signature: Some(CollectiveSignature {
                        signature: agg.to_bytes().to_vec(),
                        mask: Mask::from_indices(4, signers.iter().copied()).into_bytes(),
                    }),
                };
                (src, 4, link)
            })
            .collect();
        Setup { keys: kps.iter().map(|k| k.public()).collect(), blocks, links }
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

    #[test]
    fn good_links_verify_as_one_batch() {
        let s = setup(&[0, 1, 2, 3]);
        let links = checks(&s, &s.links);
        assert!(parts(&links[0], Policy::Default).is_some());
        let batch: Vec<_> = links.iter().enumerate().map(|(i, l)| (i, parts(l, Policy::Default).unwrap())).collect();
        assert!(batch_holds(&batch));
        assert_eq!(verify_links_with_keys(&links, Policy::Default), vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(verify_links_with_keys(&links[..1], Policy::Default), vec![Ok(())]);
        assert!(verify_links_with_keys(&[], Policy::Default).is_empty());
    }

    #[test]
    fn a_tampered_link_is_found_with_the_one_by_one_error() {
        let s = setup(&[0, 1, 3]);
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
            let links = checks(&s, case);
            let expected = one_by_one(&links);
            assert!(expected.iter().any(|r| r.is_err()), "each case has a bad link");
            assert_eq!(verify_links_with_keys(&links, Policy::Default), expected);
            // Each link alone too (a block of height 1 has one link).
            for l in &links {
                assert_eq!(verify_links_with_keys(&[*l], Policy::Default), one_by_one(&[*l]));
            }
        }
        // The weighted check itself refuses a batch with one bad signature among good ones.
        let links = checks(&s, &cases[0]);
        let batch: Vec<_> = links.iter().enumerate().map(|(i, l)| (i, parts(l, Policy::Default).unwrap())).collect();
        assert!(!batch_holds(&batch));
    }
}
