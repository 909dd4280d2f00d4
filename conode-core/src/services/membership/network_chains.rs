//! Which of the chains a node holds are network chains, remembered per chain id. A node in no
//! network yet looks for the network chain it is a member of among every chain it holds, on every
//! tick after a block was stored. A chain's genesis never changes (its id is its hash), so whether
//! it opens a network is decided once per chain: without this, a node holding many chains decoded
//! every genesis ten times a second while it appended (quadratic in the chains over a run).

use std::collections::HashMap;

/// Whether each chain seen so far opens a network (its genesis holds a network config).
#[derive(Default)]
pub(super) struct NetworkChains {
    opens_network: HashMap<Vec<u8>, bool>,
}

impl NetworkChains {
    /// Whether chain `id` opens a network; `genesis_opens_network` reads its genesis and is called
    /// only the first time a chain is asked about (and again while its genesis cannot be read).
    pub(super) fn opens_network(&mut self, id: &[u8], genesis_opens_network: impl FnOnce() -> Option<bool>) -> bool {
        if let Some(known) = self.opens_network.get(id) {
            return *known;
        }
        match genesis_opens_network() {
            Some(opens) => {
                self.opens_network.insert(id.to_vec(), opens);
                opens
            }
            None => false,
        }
    }

    /// Forgets the chains the node no longer holds (`held` lists those it holds).
    pub(super) fn keep_only(&mut self, held: &[Vec<u8>]) {
        if self.opens_network.len() > held.len() {
            let held: std::collections::HashSet<&[u8]> = held.iter().map(|h| h.as_slice()).collect();
            self.opens_network.retain(|id, _| held.contains(id.as_slice()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_genesis_is_read_once_per_chain() {
        let mut chains = NetworkChains::default();
        let mut reads = 0;
        for _ in 0..3 {
            assert!(!chains.opens_network(b"plain", || {
                reads += 1;
                Some(false)
            }));
            assert!(chains.opens_network(b"network", || {
                reads += 1;
                Some(true)
            }));
        }
        assert_eq!(reads, 2, "each genesis is read the first time only");
    }

    #[test]
    fn an_unreadable_genesis_is_read_again_and_forgotten_chains_are_dropped() {
        let mut chains = NetworkChains::default();
        assert!(!chains.opens_network(b"late", || None));
        assert!(chains.opens_network(b"late", || Some(true)), "read again once it can be read");
        assert!(!chains.opens_network(b"other", || Some(false)));
        chains.keep_only(&[b"late".to_vec()]);
        assert_eq!(chains.opens_network.len(), 1);
        let mut read = false;
        chains.opens_network(b"other", || {
            read = true;
            Some(false)
        });
        assert!(read, "a forgotten chain is read again");
    }
}
