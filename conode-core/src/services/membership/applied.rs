//! Which proposals the network chain applied, and at which index. A stored block never changes,
//! so each is read once. The tick reviews every open proposal ten times a second, and the
//! governor checks every proposed block: scanning the whole chain for each (as they did) cost
//! more the older the network, up to a whole core with a full pool of proposals on a long chain.

use super::messages::proposal_id;
use super::rules;
use crate::services::skipchain::store::ChainStore;
use std::collections::HashMap;

/// The proposals applied by the blocks of one chain read so far.
#[derive(Default)]
pub(super) struct AppliedIndex {
    chain: Vec<u8>,
    /// The blocks up to this index are read.
    read_to: u64,
    at: HashMap<Vec<u8>, u64>,
}

impl AppliedIndex {
    /// Reads the blocks of `chain` stored since the last call: all of them after another chain,
    /// or when the store holds fewer blocks than were read (it was replaced).
    pub(super) fn follow(&mut self, store: &ChainStore, chain: &[u8]) -> &Self {
        let latest = store.latest_index(chain).unwrap_or(0);
        if self.chain != chain || latest < self.read_to {
            *self = Self { chain: chain.to_vec(), ..Self::default() };
        }
        while self.read_to < latest {
            let Some(block) = store.block_at(chain, self.read_to + 1) else { break };
            if let Some(p) = rules::config_of(&block).and_then(|c| c.passed?.proposal) {
                self.at.insert(proposal_id(&p).to_vec(), block.index);
            }
            self.read_to += 1;
        }
        self
    }

    /// The index of the block that applied proposal `id`, if one did.
    pub(super) fn index_of(&self, id: &[u8]) -> Option<u64> {
        self.at.get(id).copied()
    }

    /// Every applied proposal with its block's index.
    pub(super) fn all(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.at.iter().map(|(id, i)| (id.as_slice(), *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::membership::messages::{NetworkConfig, PassedProposal, Proposal, NETWORK_KIND};
    use crate::storage::Storage;
    use crate::verify::skipchain::{ForwardLink, SkipBlock};
    use prost::Message as _;

    const CHAIN: [u8; 32] = [9; 32];

    fn proposal(created: u64) -> Proposal {
        Proposal { network: CHAIN.to_vec(), created, ..Default::default() }
    }

    /// Block `index` of the chain, applying `applies` (a network block) or holding other data.
    fn block(index: u64, applies: Option<&Proposal>) -> SkipBlock {
        let data = match applies {
            Some(p) => NetworkConfig {
                kind: NETWORK_KIND.into(),
                passed: Some(PassedProposal { proposal: Some(p.clone()), ballots: vec![] }),
                ..Default::default()
            }
            .encode_to_vec(),
            None => b"not a network block".to_vec(),
        };
        SkipBlock { index, hash: vec![index as u8; 32], genesis_id: CHAIN.to_vec(), data, ..Default::default() }
    }

    fn store_chain(store: &ChainStore, blocks: &[SkipBlock]) {
        for (i, b) in blocks.iter().enumerate() {
            let mut links = vec![];
            if i > 0 {
                let mut prev = blocks[i - 1].clone();
                prev.forward_links =
                    vec![ForwardLink { from: prev.hash.clone(), to: b.hash.clone(), ..Default::default() }];
                links.push(prev);
            }
            store.store(b, &links).unwrap();
        }
    }

    #[test]
    fn each_block_is_read_once_and_a_replaced_store_or_another_chain_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "applied-test").unwrap()).unwrap();
        let (p, q) = (proposal(1), proposal(2));
        let (pid, qid) = (proposal_id(&p), proposal_id(&q));
        let mut blocks = vec![block(0, None), block(1, None), block(2, Some(&p))];
        store_chain(&store, &blocks);
        let mut index = AppliedIndex::default();
        assert_eq!(index.follow(&store, &CHAIN).index_of(&pid), Some(2));
        assert_eq!((index.read_to, index.index_of(&qid)), (2, None));

        // A later block applying `q` is read, and only it: what was read stays as it was.
        index.at.insert(b"marker".to_vec(), 1);
        blocks.push(block(3, Some(&q)));
        store_chain(&store, &blocks[2..]);
        index.follow(&store, &CHAIN);
        assert_eq!((index.index_of(&pid), index.index_of(&qid), index.read_to), (Some(2), Some(3), 3));
        assert_eq!(index.index_of(b"marker"), Some(1), "blocks read before are not read again");
        assert_eq!(index.all().count(), 3);

        // Another chain, or a store holding fewer blocks than were read: read from scratch.
        assert_eq!(index.follow(&store, b"another chain").all().count(), 0);
        index.follow(&store, &CHAIN);
        assert_eq!(index.index_of(b"marker"), None);
        let dir2 = tempfile::tempdir().unwrap();
        let shorter = ChainStore::open(&Storage::open(dir2.path(), "applied-test").unwrap()).unwrap();
        store_chain(&shorter, &blocks[..2]);
        let index = index.follow(&shorter, &CHAIN);
        assert_eq!((index.index_of(&pid), index.read_to), (None, 1));
    }
}
