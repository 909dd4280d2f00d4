//! Proofs of possession already checked on this node, shared by every service that loads rosters
//! (cosi rounds, skipchain block rosters): a PoP costs two pairings, and the same few rosters come
//! back in every round, so each (key, PoP) pair is checked once. Bounded; a failed check is never
//! remembered.

use super::{sha256, BlsPublicKey, BlsSignature, CryptoError};
use crate::kept::KeptMap;
use std::sync::{Arc, Mutex};

/// Pairs kept at most (the oldest checked are forgotten first).
const MAX_CHECKED: usize = 65536;

/// The (key, PoP) pairs that verified (cheap to clone; clones share the set).
#[derive(Clone, Debug)]
pub struct PopCache {
    checked: Arc<Mutex<KeptMap<[u8; 32], ()>>>,
}

impl Default for PopCache {
    fn default() -> Self {
        Self { checked: Arc::new(Mutex::new(KeptMap::new(MAX_CHECKED))) }
    }
}

fn tag(key: &BlsPublicKey, pop: &BlsSignature) -> [u8; 32] {
    sha256(&[&key.to_bytes(), &pop.to_bytes()])
}

impl PopCache {
    /// Whether `check` would have to run the pairings (slow: run it off the runtime's workers).
    pub fn is_checked(&self, key: &BlsPublicKey, pop: &BlsSignature) -> bool {
        crate::sync::lock(&self.checked).contains(&tag(key, pop))
    }

    /// Verifies the PoP of `key`, once per distinct pair.
    pub fn check(&self, key: &BlsPublicKey, pop: &BlsSignature) -> Result<(), CryptoError> {
        let t = tag(key, pop);
        if crate::sync::lock(&self.checked).contains(&t) {
            return Ok(());
        }
        key.verify_pop(pop)?;
        crate::sync::lock(&self.checked).insert(t, ());
        Ok(())
    }

    /// Verifies the PoPs of all `pairs` not checked before as one batch (see
    /// [`super::verify_pops`]); the result at `i` is what [`Self::check`] gives for `pairs[i]`.
    pub fn check_all(&self, pairs: &[(&BlsPublicKey, &BlsSignature)]) -> Vec<Result<(), CryptoError>> {
        let tags: Vec<[u8; 32]> = pairs.iter().map(|(k, p)| tag(k, p)).collect();
        let todo: Vec<usize> = {
            let checked = crate::sync::lock(&self.checked);
            (0..pairs.len()).filter(|&i| !checked.contains(&tags[i])).collect()
        };
        let mut out = vec![Ok(()); pairs.len()];
        if todo.is_empty() {
            return out;
        }
        let batch: Vec<(&BlsPublicKey, &BlsSignature)> = todo.iter().map(|&i| pairs[i]).collect();
        let verdicts = super::verify_pops(&batch);
        let mut checked = crate::sync::lock(&self.checked);
        for (&i, v) in todo.iter().zip(verdicts) {
            if v.is_ok() {
                checked.insert(tags[i], ());
            }
            out[i] = v;
        }
        out
    }

    /// Remembers pairs known to be good (a roster whose PoPs were checked before a restart).
    pub fn mark_checked(&self, pairs: &[(&BlsPublicKey, &BlsSignature)]) {
        let mut checked = crate::sync::lock(&self.checked);
        for (k, p) in pairs {
            checked.insert(tag(k, p), ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlsKeyPair;

    #[test]
    fn good_pops_are_remembered_and_bad_ones_never() {
        let cache = PopCache::default();
        let (a, b) = (BlsKeyPair::generate(), BlsKeyPair::generate());
        assert!(!cache.is_checked(&a.public(), &a.pop()));
        cache.check(&a.public(), &a.pop()).unwrap();
        assert!(cache.is_checked(&a.public(), &a.pop()));
        // b's PoP under a's key: refused now and later.
        assert_eq!(cache.check(&a.public(), &b.pop()), Err(CryptoError::BadPop));
        assert_eq!(cache.check(&a.public(), &b.pop()), Err(CryptoError::BadPop));
        assert!(cache.clone().is_checked(&a.public(), &a.pop()), "clones share the set");
    }

    #[test]
    fn check_all_batches_the_new_pairs_and_remembers_only_good_ones() {
        let cache = PopCache::default();
        let kps: Vec<BlsKeyPair> = (0..12).map(|_| BlsKeyPair::generate()).collect();
        let keys: Vec<BlsPublicKey> = kps.iter().map(|k| k.public()).collect();
        let mut pops: Vec<BlsSignature> = kps.iter().map(|k| k.pop()).collect();
        cache.check(&keys[0], &pops[0]).unwrap();
        pops[5] = kps[6].pop();
        let pairs: Vec<_> = keys.iter().zip(&pops).collect();
        let r = cache.check_all(&pairs);
        let one_by_one: Vec<_> = pairs.iter().map(|(k, p)| k.verify_pop(p)).collect();
        assert_eq!(r, one_by_one);
        assert!(r[5].is_err() && r.iter().filter(|v| v.is_err()).count() == 1);
        assert!(!cache.is_checked(&keys[5], &pops[5]));
        assert!(cache.is_checked(&keys[11], &pops[11]));
    }
}
