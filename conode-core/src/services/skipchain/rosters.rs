//! Block rosters turned into config rosters with every key decoded, remembered by the exact bytes of
//! the block roster. An append needs the roster of several blocks (each level's source, the
//! previous block, the propagation targets) and every member needs it again to store the block.
//! Proofs of possession are checked through the node's one PoP cache (shared with cosi), so each
//! is checked once per node whichever service sees it first; a roster's new ones as one batch.

use super::service::{config_roster_with, SkipchainError};
use crate::config::Roster;
use crate::crypto::sha256;
use crate::crypto::PopCache;
use crate::kept::KeptMap;
use crate::verify::skipchain::BlockRoster;
use prost::Message;
use std::sync::{Arc, Mutex};

/// Rosters kept at most (a chain rarely changes roster; many chains may share one).
const MAX_CACHED: usize = 64;

/// Checked rosters by sha256 of the block roster's encoding (so a changed address, key or PoP is a
/// different entry, checked on its own).
pub struct CheckedRosters {
    by_encoding: Mutex<KeptMap<[u8; 32], Arc<Roster>>>,
    pops: PopCache,
}

impl CheckedRosters {
    pub fn new(pops: PopCache) -> Self {
        Self { by_encoding: Mutex::new(KeptMap::new(MAX_CACHED)), pops }
    }

    /// `config_roster(r)`, computed once per distinct roster.
    pub fn get(&self, r: &BlockRoster) -> Result<Arc<Roster>, SkipchainError> {
        let tag = sha256(&[&r.encode_to_vec()]);
        if let Some(hit) = self.lock().get(&tag) {
            return Ok(hit.clone());
        }
        let checked = Arc::new(config_roster_with(r, &self.pops)?);
        self.lock().insert(tag, checked.clone());
        Ok(checked)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptMap<[u8; 32], Arc<Roster>>> {
        crate::sync::lock(&self.by_encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeAddress, NodeConfig};
    use crate::services::skipchain::block_roster;

    fn roster(n: usize) -> Roster {
        Roster::new(
            (0..n)
                .map(|i| {
                    let addr = NodeAddress::parse(&format!("tls://127.0.0.1:{}", 7000 + 2 * i)).unwrap();
                    NodeConfig::generate(addr, "t").server_identity()
                })
                .collect(),
        )
    }

    #[test]
    fn same_roster_is_checked_once_and_a_bad_pop_is_never_cached() {
        let cache = CheckedRosters::new(PopCache::default());
        let r = block_roster(&roster(3)).unwrap();
        let a = cache.get(&r).unwrap();
        let b = cache.get(&r).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.servers.len(), 3);
        // Another member's PoP under member 0's key: refused, now and on every later try.
        let mut bad = r.clone();
        bad.members[0].pop = r.members[1].pop.clone();
        for _ in 0..2 {
            let e = cache.get(&bad).unwrap_err().to_string();
            assert!(e.contains("roster member 0 pop"), "{e}");
        }
        // A bad PoP behind good new ones (batch checked) is named too, and the good ones are
        // remembered: the same roster with the PoP fixed needs no check of them.
        let fresh = CheckedRosters::new(PopCache::default());
        let mut late = block_roster(&roster(5)).unwrap();
        late.members[3].pop = late.members[4].pop.clone();
        let e = fresh.get(&late).unwrap_err().to_string();
        assert!(e.contains("roster member 3 pop"), "{e}");
        // A member whose key does not decode comes first when it is earlier in the roster.
        let mut both = late.clone();
        both.members[1].cosi_key = vec![1; 3];
        let e = fresh.get(&both).unwrap_err().to_string();
        assert!(e.contains("roster member 1 cosi key"), "{e}");
        // A changed address is another roster.
        let mut moved = r.clone();
        moved.members[2].address = "tls://127.0.0.1:9999".into();
        assert_eq!(cache.get(&moved).unwrap().servers[2].address.to_string(), "tls://127.0.0.1:9999");
    }
}
