//! Proofs of possession already checked on this node, shared by every service that loads rosters
//! (cosi rounds, skipchain block rosters): a PoP costs two pairings, and the same few rosters come
//! back in every round, so each (key, PoP) pair is checked once. Bounded; a failed check is never
//! remembered.

use super::{sha256, BlsPublicKey, BlsSignature, CryptoError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Pairs kept at most (then the set starts over).
const MAX_CHECKED: usize = 65536;

/// The (key, PoP) pairs that verified (cheap to clone; clones share the set).
#[derive(Clone, Default, Debug)]
pub struct PopCache {
    checked: Arc<Mutex<HashSet<[u8; 32]>>>,
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
        let mut checked = crate::sync::lock(&self.checked);
        if checked.len() >= MAX_CHECKED {
            checked.clear();
        }
        checked.insert(t);
        Ok(())
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
}
