//! Which proposals a governed chain (the network chain) applied, and at which index. A stored
//! block's data never changes, so each is read once. The tick reviews every open proposal ten
//! times a second, and the governor checks every proposed block: scanning the whole chain for
//! each (as they did) cost more the older the network, up to a whole core with a full pool of
//! proposals on a long chain.

use super::messages::proposal_id;
use super::rules;
use crate::services::skipchain::store::ChainStore;
use std::collections::HashMap;

/// Governed chains whose index is kept (besides the network chain there are rarely any).
const CHAINS_KEPT: usize = 8;

/// The index of each governed chain read lately.
#[derive(Default)]
pub(super) struct AppliedIndexes {
    /// Each chain's index and when it was last asked for (a count of calls).
    chains: HashMap<Vec<u8>, (u64, AppliedIndex)>,
    calls: u64,
}

impl AppliedIndexes {
    /// The index of `chain`, after reading its blocks stored since the last call. When more
    /// chains than `CHAINS_KEPT` are asked for, the one asked for least lately is forgotten: the
    /// network chain, asked for at every tick, stays.
    pub(super) fn follow(&mut self, store: &ChainStore, chain: &[u8]) -> &AppliedIndex {
        self.calls += 1;
        if !self.chains.contains_key(chain) && self.chains.len() >= CHAINS_KEPT {
            let oldest = self.chains.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.chains.remove(&oldest);
            }
        }
        let (used, index) = self.chains.entry(chain.to_vec()).or_default();
        *used = self.calls;
        index.follow(store, chain)
    }
}

/// The proposals applied by the blocks of one chain read so far.
#[derive(Default)]
pub(super) struct AppliedIndex {
    /// The blocks up to this index are read.
    read_to: u64,
    /// The first block that applied each proposal.
    at: HashMap<Vec<u8>, u64>,
    #[cfg(test)]
    blocks_read: u64,
}

impl AppliedIndex {
    /// Reads the blocks of `chain` stored since the last call; all of them again when the store
    /// holds fewer than were read (it was replaced). A block missing from the store (a damaged
    /// store) stops the reading there: it is tried again next time, and [`Self::read_to`] tells
    /// how far the answers are sure.
    fn follow(&mut self, store: &ChainStore, chain: &[u8]) -> &Self {
        let latest = store.latest_index(chain).unwrap_or(0);
        if latest < self.read_to {
            *self = Self::default();
        }
        while self.read_to < latest {
            let Some(block) = store.block_at(chain, self.read_to + 1) else { break };
            if let Some(p) = rules::config_of(&block).and_then(|c| c.passed?.proposal) {
                self.at.entry(proposal_id(&p).to_vec()).or_insert(block.index);
            }
            self.read_to += 1;
            #[cfg(test)]
            {
                self.blocks_read += 1;
            }
        }
        self
    }

    /// The blocks up to this index are read: answers about them are sure.
    pub(super) fn read_to(&self) -> u64 {
        self.read_to
    }

    /// The index of the first block that applied proposal `id`, if one did (among those read).
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
        let mut indexes = AppliedIndexes::default();
        let index = indexes.follow(&store, &CHAIN);
        assert_eq!((index.index_of(&pid), index.index_of(&qid)), (Some(2), None));
        assert_eq!((index.read_to(), index.blocks_read), (2, 2));

        // A later block applying `q` is read, and only it.
        blocks.push(block(3, Some(&q)));
        store_chain(&store, &blocks[2..]);
        let index = indexes.follow(&store, &CHAIN);
        assert_eq!((index.index_of(&pid), index.index_of(&qid)), (Some(2), Some(3)));
        assert_eq!((index.read_to(), index.blocks_read, index.all().count()), (3, 3, 2));
        // A proposal applied again later keeps the index of its first block.
        blocks.push(block(4, Some(&p)));
        store_chain(&store, &blocks[3..]);
        assert_eq!(indexes.follow(&store, &CHAIN).index_of(&pid), Some(2));

        // Another chain has an index of its own; the first one's is kept.
        assert_eq!(indexes.follow(&store, b"another chain").all().count(), 0);
        assert_eq!(indexes.follow(&store, &CHAIN).blocks_read, 4);

        // More chains than are kept: the one asked for least lately goes, not the network chain.
        for k in 0..CHAINS_KEPT as u8 {
            indexes.follow(&store, &[k; 32]);
            assert_eq!(indexes.follow(&store, &CHAIN).blocks_read, 4, "the chain asked for lately is kept");
        }
        assert_eq!(indexes.chains.len(), CHAINS_KEPT);

        // A store holding fewer blocks than were read (replaced): read from scratch.
        let dir2 = tempfile::tempdir().unwrap();
        let shorter = ChainStore::open(&Storage::open(dir2.path(), "applied-test").unwrap()).unwrap();
        store_chain(&shorter, &blocks[..2]);
        let index = indexes.follow(&shorter, &CHAIN);
        assert_eq!((index.index_of(&pid), index.read_to(), index.blocks_read), (None, 1, 1));
    }
}
