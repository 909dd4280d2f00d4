//! Signature checks an append repeats, done once. The commit hook runs once per level of an
//! append and every run needs the same prepare certificate verified (a pairing check); the
//! levels' rounds run at once, so without care each level verifies it again, concurrently.
//!
//! [`VerifiedOnce`] remembers, by a digest of the *exact bytes* checked (every input
//! length-prefixed), the checks that passed lately, and lets concurrent callers of one check wait
//! for the one that runs it instead of repeating it. Only a check that passed is remembered: a
//! different roster, slot, view, block, signature or mask is another digest and is checked on its
//! own; a failed check is never remembered, so a later caller runs it again.
//!
//! The pairing checks under those (a link's or a certificate's collective signature) go through
//! [`all_hold_once`], and the owner's signature of an append through `check_owner` (in `service`),
//! which share them with the whole process (see
//! [`crate::crypto::checked_once::process`]): the total a cosi root verified is not verified
//! again by the members of the same process that store its links.

use super::messages::{certified_statement, PrepareCertificate};
use crate::crypto::checked_once;
pub(super) use crate::crypto::checked_once::VerifiedOnce;
use crate::crypto::{sha256, BlsPublicKey, BlsSignature};
use crate::kept::KeptMap;
use crate::services::cosi::Policy;
use crate::verify::cosi::CosiVerifyError;
use crate::verify::skipchain::BlockRoster;
use crate::verify::skipchain_batch::{all_hold, collective_check, PairingCheck, Pairings};
use prost::Message;
use std::sync::Mutex;

/// The digest of a check: sha256 of its parts, each prefixed by its length (so no two different
/// lists of parts share an encoding).
pub(super) fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut tagged = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        tagged.extend_from_slice(&(part.len() as u64).to_be_bytes());
        tagged.extend_from_slice(part);
    }
    sha256(&[&tagged])
}

/// Signatures decoded lately (per node), by their exact bytes. The blocks of a batched round carry
/// one signature (the round's, over the root of the batch's tree): a member storing them decodes
/// it, with its group check, once instead of at every block. Decoding is a function of the bytes,
/// so a kept signature is what decoding again would give; an encoding that fails is not kept.
pub(super) struct DecodedSignatures {
    by_bytes: Mutex<KeptMap<Vec<u8>, BlsSignature>>,
}

/// Signatures kept: a few batched rounds' worth (one signature per round and link level).
const SIGNATURES_KEPT: usize = 64;

impl Default for DecodedSignatures {
    fn default() -> Self {
        Self { by_bytes: Mutex::new(KeptMap::new(SIGNATURES_KEPT)) }
    }
}

impl DecodedSignatures {
    /// `bytes` decoded by `decode` (the first time), or as kept.
    pub(super) fn get(&self, bytes: &[u8], decode: impl FnOnce(&[u8]) -> Option<BlsSignature>) -> Option<BlsSignature> {
        if let Some(sig) = crate::sync::lock(&self.by_bytes).get(bytes) {
            return Some(*sig);
        }
        let sig = decode(bytes)?;
        crate::sync::lock(&self.by_bytes).insert(bytes.to_vec(), sig);
        Some(sig)
    }
}

/// Whether every check of `checks` holds (what [`all_hold`] says), each run at most once in the
/// process: checks that passed lately are skipped; one left runs single-flight (the blocks of
/// one batch, or the members of one process storing the same links, wait for it instead of
/// repeating it); several left run as one batch, remembered when it holds.
pub(super) fn all_hold_once(checks: Vec<PairingCheck>) -> bool {
    let passed = checked_once::process();
    let unknown: Vec<(PairingCheck, [u8; 32])> =
        checks.into_iter().map(|c| (c, c.fingerprint())).filter(|(_, key)| !passed.passed(key)).collect();
    match unknown.as_slice() {
        [] => true,
        [(one, key)] => passed.check(*key, || if one.holds() { Ok(()) } else { Err(()) }).is_ok(),
        several => {
            let hold = all_hold(&several.iter().map(|(c, _)| *c).collect::<Vec<_>>());
            if hold {
                several.iter().for_each(|(_, key)| passed.remember(*key));
            }
            hold
        }
    }
}

/// sha256 of a block roster's encoding: the exact bytes of every member (keys, PoPs, addresses),
/// unlike the roster id (which covers the keys only).
pub(super) fn roster_tag(roster: &BlockRoster) -> [u8; 32] {
    sha256(&[&roster.encode_to_vec()])
}

/// The digest of a prepare certificate's check: the roster (its [`roster_tag`]), the statement
/// the certificate's signature must be over ([`certified_statement`]: it covers the slot, the view
/// and the block, and for a batched round the root of the batch's tree) and the signature with its
/// mask, exactly as given. The certificates of one batched round share their check.
pub(super) fn certificate_key(roster: &[u8; 32], statement: &[u8; 32], cert: &PrepareCertificate) -> [u8; 32] {
    let (signature, mask) = cert.signature.as_ref().map_or((&[][..], &[][..]), |s| (&s.signature[..], &s.mask[..]));
    digest(&[b"prepare-certificate", roster, statement, signature, mask])
}

/// Checks a prepare certificate: more than two thirds of the roster tagged `roster` (whose cosi
/// keys `keys` gives, in roster order) signed the prepare message of the certified block at `index`
/// in the certificate's view. Verified once per node (`cache`), by the exact bytes. `pairings`
/// gives the prepare message hashed to G2 (the node's own points: it hashed the message when it
/// signed it) and does the pairing check (batched with the node's other checks); the check is the
/// one `cosi::verify` makes.
pub(super) fn check_certificate(
    cache: &VerifiedOnce,
    roster: &[u8; 32],
    keys: impl FnOnce() -> Result<Vec<BlsPublicKey>, String>,
    pairings: &Pairings<'_>,
    (genesis, index, roster_id): (&[u8], u64, &[u8; 32]),
    cert: &PrepareCertificate,
) -> Result<(), String> {
    let sig = cert.signature.as_ref().ok_or("unsigned prepare certificate")?;
    let msg = certified_statement(genesis, index, roster_id, cert).map_err(|e| format!("prepare certificate: {e}"))?;
    cache.check(certificate_key(roster, &msg, cert), || {
        let keys = keys()?;
        let check = collective_check(&(pairings.point)(&msg), &sig.signature, &sig.mask, &keys, Policy::Default)
            .map_err(|e| format!("prepare certificate: {e}"))?;
        if (pairings.all_hold)(vec![check]) {
            Ok(())
        } else {
            Err(format!("prepare certificate: {}", CosiVerifyError::InvalidSignature))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::cosi;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pairing_checks_are_remembered_in_the_process_only_when_they_hold() {
        use crate::crypto::bls::hash_to_g2;
        // Fresh keys: the process's set is shared with the tests running beside this one.
        let check = |msg: &[u8], signed: &[u8]| {
            let kp = crate::crypto::BlsKeyPair::generate();
            PairingCheck { point: hash_to_g2(msg), key: kp.public(), signature: kp.sign(signed) }
        };
        let known = |c: &PairingCheck| checked_once::process().passed(&c.fingerprint());
        let (good, other_good, bad) = (check(b"m", b"m"), check(b"m2", b"m2"), check(b"m", b"not m"));
        assert!(!all_hold_once(vec![bad]));
        assert!(!known(&bad), "a check that failed is not remembered");
        assert!(!all_hold_once(vec![good, bad]), "a batch with a bad check fails");
        assert!(!known(&good), "nothing of a failed batch is remembered");
        assert!(all_hold_once(vec![good, other_good]));
        assert!(known(&good) && known(&other_good), "a batch that held is remembered, every check of it");
        // A remembered check is not run again: one remembered by its fingerprint passes as such
        // (only checks that held are ever remembered; this shows the pairing is skipped).
        let never_run = check(b"m3", b"not m3");
        checked_once::process().remember(never_run.fingerprint());
        assert!(all_hold_once(vec![never_run]));
        assert!(!all_hold_once(vec![never_run, check(b"m4", b"not m4")]), "only the remembered check is skipped");
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_ne!(digest(&[b"ab"]), digest(&[b"ab", b""]));
        assert_eq!(digest(&[b"ab", b"c"]), digest(&[b"ab", b"c"]));
        // A roster's tag covers every byte of it, not only the keys its id covers.
        let member = |address: &str| crate::verify::skipchain::RosterEntry {
            identity: vec![1; 32],
            cosi_key: vec![2; 48],
            address: address.into(),
            pop: vec![3; 96],
            description: String::new(),
        };
        let a = BlockRoster { members: vec![member("tls://a:1")] };
        let b = BlockRoster { members: vec![member("tls://b:1")] };
        assert_eq!(a.id(), b.id());
        assert_ne!(roster_tag(&a), roster_tag(&b));
    }

    /// A certificate of `signers` of `keys` over block `hash` in `view` at slot (g, 5).
    fn certificate(kps: &[crate::crypto::BlsKeyPair], signers: &[usize], view: u64, hash: &[u8]) -> PrepareCertificate {
        use crate::crypto::BlsSignature;
        let msg = crate::services::skipchain::messages::prepare_message(b"g", 5, view, hash);
        let sigs: Vec<BlsSignature> = signers.iter().map(|&i| kps[i].sign(&msg)).collect();
        let agg = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        PrepareCertificate {
            view,
            block_hash: hash.to_vec(),
            signature: Some(crate::wire::skipchain::CollectiveSignature {
                signature: agg.to_bytes().to_vec(),
                mask: cosi::Mask::from_indices(kps.len(), signers.iter().copied()).into_bytes(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_cached_certificate_never_vouches_for_another() {
        let kps: Vec<crate::crypto::BlsKeyPair> = (0..4).map(|_| crate::crypto::BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let other: Vec<BlsPublicKey> = (0..4).map(|_| crate::crypto::BlsKeyPair::generate().public()).collect();
        let cache = VerifiedOnce::default();
        let runs = AtomicUsize::new(0);
        let check = |roster: &[u8; 32], keys: &[BlsPublicKey], index: u64, cert: &PrepareCertificate| {
            check_certificate(
                &cache,
                roster,
                || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(keys.to_vec())
                },
                &Pairings::direct(),
                (b"g", index, &[1; 32]),
                cert,
            )
        };
        let good = certificate(&kps, &[0, 1, 3], 2, b"A");
        check(&[1; 32], &keys, 5, &good).unwrap();
        check(&[1; 32], &keys, 5, &good).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the second check is a hit");
        // Each of these differs from the cached one in one part and must be verified (and fail).
        let mut other_sig = good.clone();
        other_sig.signature.as_mut().unwrap().signature =
            certificate(&kps, &[0, 1, 2], 2, b"A").signature.unwrap().signature;
        let mut wider_mask = good.clone();
        wider_mask.signature.as_mut().unwrap().mask = cosi::Mask::from_indices(4, [0, 1, 2, 3]).into_bytes();
        let mut other_view = good.clone();
        other_view.view = 3;
        let mut other_block = good.clone();
        other_block.block_hash = b"B".to_vec();
        for bad in [&other_sig, &wider_mask, &other_view, &other_block] {
            assert!(check(&[1; 32], &keys, 5, bad).is_err());
        }
        assert!(check(&[1; 32], &keys, 6, &good).is_err(), "another slot");
        assert!(check(&[2; 32], &other, 5, &good).is_err(), "another roster");
        assert_eq!(runs.load(Ordering::SeqCst), 7);
        // Too few signers never pass, cached or not.
        let thin = certificate(&kps, &[0, 1], 2, b"A");
        assert!(check(&[1; 32], &keys, 5, &thin).unwrap_err().contains("prepare certificate"));
        assert!(check(&[1; 32], &keys, 5, &thin).is_err());
        let mut unsigned = good.clone();
        unsigned.signature = None;
        assert_eq!(check(&[1; 32], &keys, 5, &unsigned), Err("unsigned prepare certificate".to_string()));
    }

    #[test]
    fn the_certificates_of_one_batched_round_share_one_check_and_name_their_own_slot() {
        use crate::crypto::BlsSignature;
        use crate::services::skipchain::messages::{prepare_message, PREPARE_BATCH_DOMAIN};
        use crate::verify::batch_tree::batch_tree;
        let kps: Vec<crate::crypto::BlsKeyPair> = (0..4).map(|_| crate::crypto::BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let cache = VerifiedOnce::default();
        let runs = AtomicUsize::new(0);
        // One round prepared block A at slot (g, 5), B at (h, 9) and C at (k, 1), all in view 2.
        let messages =
            [prepare_message(b"g", 5, 2, b"A"), prepare_message(b"h", 9, 2, b"B"), prepare_message(b"k", 1, 2, b"C")];
        let (statement, paths) = batch_tree(PREPARE_BATCH_DOMAIN, &messages).unwrap();
        let sigs: Vec<BlsSignature> = [0, 1, 3].iter().map(|&i| kps[i].sign(&statement)).collect();
        let signature = crate::wire::skipchain::CollectiveSignature {
            signature: BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap().to_bytes().to_vec(),
            mask: cosi::Mask::from_indices(4, [0, 1, 3]).into_bytes(),
        };
        let cert = |hash: &[u8], position: usize| PrepareCertificate {
            view: 2,
            block_hash: hash.to_vec(),
            signature: Some(signature.clone()),
            batch_path: paths[position].iter().map(|h| h.to_vec()).collect(),
            batch_index: position as u32,
            batch_size: 3,
            fast: false,
        };
        let check = |genesis: &[u8], index: u64, c: &PrepareCertificate| {
            let keys = || {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(keys.clone())
            };
            check_certificate(&cache, &[1; 32], keys, &Pairings::direct(), (genesis, index, &[1; 32]), c)
        };
        check(b"g", 5, &cert(b"A", 0)).unwrap();
        check(b"h", 9, &cert(b"B", 1)).unwrap();
        check(b"k", 1, &cert(b"C", 2)).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the three slots' certificates are one check");
        // Another slot, block or position, or no batch at all: refused (each a check of its own).
        assert!(check(b"g", 6, &cert(b"A", 0)).is_err());
        assert!(check(b"h", 9, &cert(b"C", 1)).is_err());
        assert!(check(b"g", 5, &cert(b"A", 1)).is_err());
        let single = PrepareCertificate { batch_path: vec![], batch_index: 0, batch_size: 0, ..cert(b"A", 0) };
        assert!(check(b"g", 5, &single).is_err(), "the batch signature is not the single statement's");
        let alone = PrepareCertificate { batch_size: 1, ..cert(b"A", 0) };
        assert!(check(b"g", 5, &alone).unwrap_err().contains("2 to 64"));
    }

    #[test]
    fn a_signature_is_decoded_once_and_a_bad_encoding_every_time() {
        let kp = crate::crypto::BlsKeyPair::generate();
        let good = kp.sign(b"batch root").to_bytes();
        let kept = DecodedSignatures::default();
        let decodes = AtomicUsize::new(0);
        let decode = |b: &[u8]| {
            decodes.fetch_add(1, Ordering::SeqCst);
            BlsSignature::from_bytes(b).ok()
        };
        for _ in 0..3 {
            assert_eq!(kept.get(&good, decode), BlsSignature::from_bytes(&good).ok());
        }
        assert_eq!(decodes.load(Ordering::SeqCst), 1, "decoded at the first block only");
        let mut bad = good;
        bad[5] ^= 1;
        for _ in 0..2 {
            assert_eq!(kept.get(&bad, decode), None);
        }
        assert_eq!(decodes.load(Ordering::SeqCst), 3, "a bad encoding is never kept");
        for i in 0..SIGNATURES_KEPT as u32 {
            kept.get(&kp.sign(&i.to_be_bytes()).to_bytes(), decode);
        }
        kept.get(&good, decode);
        assert_eq!(decodes.load(Ordering::SeqCst), 3 + SIGNATURES_KEPT + 1, "the oldest is forgotten first");
    }
}
