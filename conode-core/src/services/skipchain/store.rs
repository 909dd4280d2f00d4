//! Durable storage of skipchains in the node's sled database: blocks by hash, the hash of each
//! (chain, index), and the newest index per chain. Each new block is one atomic, durable commit
//! (block, its index entry, the newest index and the sources' new forward links together), after
//! which the store emits one `BlockStored` node event per new block, in commit order. The same
//! commit records when the chain's newest block arrived here (wall clock, kept across restarts):
//! the vote rules open a slot's views with the time since (see `votes::reachable_view`).

use super::observe::unix_ms;
use crate::events::{EventBus, NodeEvent};
use crate::kept::KeptMap;
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::verify::skipchain::{BlockRoster, SkipBlock, MAX_BLOCK_BYTES};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The roster field of an encoded `SkipBlock` (tag 8) alone; decoding skips the other fields.
#[derive(Clone, PartialEq, prost::Message)]
struct RosterOfBlock {
    #[prost(message, optional, tag = "8")]
    roster: Option<BlockRoster>,
}

#[derive(Clone)]
pub struct ChainStore {
    storage: Storage,
    blocks: ServiceTree,
    index: ServiceTree,
    latest: ServiceTree,
    /// By chain id: the index of its newest block and when it arrived (Unix ms), 16 bytes.
    arrived: ServiceTree,
    /// Where `BlockStored` events go, when set.
    events: Option<EventBus>,
    /// One commit at a time, so each new block is announced once and in commit order.
    commit: Arc<Mutex<()>>,
    /// Bumped by every change through this store (and its clones): readers that derive state
    /// from the chains (the membership service's tick) skip their work while it stands still.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Genesis blocks decoded lately, without their forward links (see [`ChainStore::genesis`]),
    /// by chain id, weighed by their encoded sizes.
    geneses: Arc<Mutex<KeptMap<Vec<u8>, Arc<SkipBlock>>>>,
    /// Fault injection (tests): arrivals are recorded this many ms before the clock's time.
    arrivals_early_ms: Arc<std::sync::atomic::AtomicU64>,
}

/// Encoded bytes of geneses kept decoded: thousands of usual ones (a roster and owners), however
/// large the blocks a stranger could make a node store.
const GENESES_KEPT_BYTES: usize = 16 << 20;
/// A genesis larger than this is decoded at every call rather than kept.
const GENESIS_KEPT_MAX: usize = 256 << 10;

fn index_key(genesis: &[u8], index: u64) -> Vec<u8> {
    let mut k = genesis.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

impl ChainStore {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self {
            storage: storage.clone(),
            blocks: storage.tree("skipchain.blocks")?,
            index: storage.tree("skipchain.index")?,
            latest: storage.tree("skipchain.latest")?,
            arrived: storage.tree("skipchain.arrived")?,
            events: None,
            commit: Arc::new(Mutex::new(())),
            generation: Default::default(),
            geneses: Arc::new(Mutex::new(KeptMap::new(GENESES_KEPT_BYTES))),
            arrivals_early_ms: Default::default(),
        })
    }

    /// Announces every block stored from now on as a [`NodeEvent::BlockStored`] on `bus`.
    pub fn with_events(mut self, bus: EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    pub fn block(&self, hash: &[u8]) -> Option<SkipBlock> {
        let bytes = self.blocks.get(hash).ok().flatten()?;
        SkipBlock::decode_bounded(&bytes).ok()
    }

    /// The genesis block of chain `id` without its forward links, its hash checked: the fields
    /// its hash covers (all that an append's checks read: owners, heights, data, the roster's
    /// keys) are fixed by the chain id, so it is decoded once and shared, where `block(id)`
    /// decodes it (with the links it gained) at every call. The checks of every append read it.
    pub fn genesis(&self, id: &[u8]) -> Option<Arc<SkipBlock>> {
        if let Some(g) = crate::sync::lock(&self.geneses).get(id) {
            return Some(g.clone());
        }
        let bytes = self.blocks.get(id).ok().flatten()?;
        let mut genesis = SkipBlock::decode_bounded(&bytes).ok()?;
        if genesis.index != 0 || genesis.hash != id || genesis.check_self().is_err() {
            return None;
        }
        genesis.forward_links.clear();
        let genesis = Arc::new(genesis);
        if bytes.len() <= GENESIS_KEPT_MAX {
            crate::sync::lock(&self.geneses).insert_weighing(id.to_vec(), genesis.clone(), bytes.len());
        }
        Some(genesis)
    }

    pub fn block_at(&self, genesis: &[u8], index: u64) -> Option<SkipBlock> {
        self.block(&self.hash_at(genesis, index)?)
    }

    /// The roster of block `index` of chain `genesis`, decoded alone: the block's other fields
    /// (its data, up to the block limit) are passed over, not decoded. What
    /// `block_at(..).and_then(|b| b.roster)` gives, for checks that read the roster only (a peer's
    /// query answered per member of the roster).
    pub fn roster_at(&self, genesis: &[u8], index: u64) -> Option<BlockRoster> {
        let bytes = self.blocks.get(&self.hash_at(genesis, index)?).ok().flatten()?;
        // Bounded as `SkipBlock::decode_bounded` is: a record over the limit gives nothing.
        if bytes.len() > MAX_BLOCK_BYTES {
            return None;
        }
        RosterOfBlock::decode(bytes.as_ref()).ok()?.roster
    }

    /// The hash of block `index` of chain `genesis` (no block decoded).
    pub fn hash_at(&self, genesis: &[u8], index: u64) -> Option<Vec<u8>> {
        self.index.get(&index_key(genesis, index)).ok().flatten()
    }

    /// The hash of block `index` of chain `genesis` when that block is held (its bytes are
    /// there; none decoded): what `block_at(..).map(|b| b.hash)` gives on an undamaged store.
    pub fn held_hash_at(&self, genesis: &[u8], index: u64) -> Option<Vec<u8>> {
        self.hash_at(genesis, index).filter(|h| self.blocks.contains(h).unwrap_or(false))
    }

    /// Index of the newest block of `genesis`, if the chain is known.
    pub fn latest_index(&self, genesis: &[u8]) -> Option<u64> {
        let v = self.latest.get(genesis).ok().flatten()?;
        Some(u64::from_be_bytes(v.as_slice().try_into().ok()?))
    }

    /// Fault injection (tests): blocks stored from now on count as arrived `by` earlier than they
    /// did (as on a chain appended to long after its previous block), here and in what this node
    /// tells the members (see `arrivals`).
    pub fn set_arrivals_early(&self, by: Duration) {
        self.arrivals_early_ms.store(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// The time an arrival now is recorded as (Unix ms): the clock's, but under fault injection.
    fn arrival_now(&self) -> u64 {
        unix_ms().saturating_sub(self.arrivals_early_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// How long ago the block at `index`, the newest of chain `genesis`, arrived here. A block
    /// whose arrival was not recorded (stored by a version from before the record) counts as
    /// arrived `unknown` ago, and that is recorded now, so its age goes on growing; so is an
    /// arrival ahead of the clock (the clock was set back), as arrived now.
    pub fn slot_age(&self, genesis: &[u8], index: u64, unknown: Duration) -> Duration {
        let now = unix_ms();
        let recorded = self.arrived.get(genesis).ok().flatten().and_then(|v| {
            let (i, at) = v.split_first_chunk::<8>()?;
            Some((u64::from_be_bytes(*i), u64::from_be_bytes(at.try_into().ok()?)))
        });
        match recorded {
            Some((i, at)) if i == index && at <= now => Duration::from_millis(now - at),
            Some((i, _)) if i == index => {
                self.record_arrival_if_newest(genesis, index, self.arrival_now());
                Duration::ZERO
            }
            _ => {
                let at = self.arrival_now().saturating_sub(unknown.as_millis() as u64);
                self.record_arrival_if_newest(genesis, index, at);
                unknown
            }
        }
    }

    /// Records that block `index` arrived `at_ms`, if it is still the newest of `genesis` (under
    /// the commit lock: a block stored meanwhile keeps the arrival its commit wrote).
    fn record_arrival_if_newest(&self, genesis: &[u8], index: u64, at_ms: u64) {
        let _one = crate::sync::lock(&self.commit);
        if self.latest_index(genesis) == Some(index) {
            self.record_arrival(genesis, index, at_ms);
        }
    }

    /// When block `index`, the newest of chain `genesis`, arrived here (Unix ms), if recorded.
    pub fn arrival(&self, genesis: &[u8], index: u64) -> Option<u64> {
        let v = self.arrived.get(genesis).ok().flatten()?;
        let (i, at) = v.split_first_chunk::<8>()?;
        (u64::from_be_bytes(*i) == index).then(|| u64::from_be_bytes(at.try_into().unwrap_or_default()))
    }

    /// Records that block `index`, the newest of chain `genesis`, arrived `at_ms` (Unix ms) when
    /// that is earlier than recorded (see `arrivals::adopted_arrival`); nothing for a block that
    /// is not the newest.
    pub fn adopt_earlier_arrival(&self, genesis: &[u8], index: u64, at_ms: u64) -> bool {
        let _one = crate::sync::lock(&self.commit);
        if self.latest_index(genesis) != Some(index) || self.arrival(genesis, index).is_some_and(|own| own <= at_ms) {
            return false;
        }
        self.record_arrival(genesis, index, at_ms);
        true
    }

    /// Records (not flushed: a record lost in a crash is made again) when block `index` arrived.
    fn record_arrival(&self, genesis: &[u8], index: u64, at_ms: u64) {
        let value = [index.to_be_bytes(), at_ms.to_be_bytes()].concat();
        if let Err(e) = self.arrived.put(genesis, &value) {
            tracing::debug!(error = %e, "cannot record a block's arrival");
        }
    }

    pub fn latest(&self, genesis: &[u8]) -> Option<SkipBlock> {
        self.block_at(genesis, self.latest_index(genesis)?)
    }

    /// Every chain this node holds.
    pub fn chains(&self) -> Vec<Vec<u8>> {
        self.latest.scan_prefix(&[]).map(|(k, _)| k).collect()
    }

    /// Stores a new block (the chain's next one) and the updated source blocks in one atomic,
    /// durable commit. Forward links are never lost: a block already stored keeps the links it
    /// has where the given copy has none (a concurrent store of the same blocks, e.g. a pushed
    /// block and a catch-up, may have added links since the caller read its copies). Returns
    /// whether the block is new here (false: it was held, and only links were added).
    pub fn store(&self, block: &SkipBlock, updated_sources: &[SkipBlock]) -> Result<bool, StorageError> {
        let genesis = block.chain_id().to_vec();
        let index_entry = index_key(&genesis, block.index);
        let latest_bytes = block.index.to_be_bytes();
        let _one = crate::sync::lock(&self.commit);
        // Under the commit lock, so no other store comes between the merge and the write.
        let encoded: Vec<Vec<u8>> = updated_sources.iter().map(|s| self.with_stored_links(s).encode_to_vec()).collect();
        let block_bytes = self.with_stored_links(block).encode_to_vec();
        let mut writes: Vec<(&ServiceTree, &[u8], &[u8])> = updated_sources
            .iter()
            .zip(&encoded)
            .map(|(s, bytes)| (&self.blocks, s.hash.as_slice(), bytes.as_slice()))
            .collect();
        writes.push((&self.blocks, &block.hash, &block_bytes));
        writes.push((&self.index, &index_entry, &block.hash));
        let newest = self.latest_index(&genesis).is_none_or(|l| block.index > l);
        let arrival: Vec<u8> = [latest_bytes, self.arrival_now().to_be_bytes()].concat();
        if newest {
            writes.push((&self.latest, &genesis, &latest_bytes));
            writes.push((&self.arrived, &genesis, &arrival));
        }
        let held = self.index.get(&index_entry)?;
        if let Some(other) = held.as_ref().filter(|h| **h != block.hash) {
            // No path stores two blocks at one index (members refuse a proposal for an index
            // they hold, and a peer's conflicting block is kept as evidence, not stored): should
            // one try, the chain this node holds stays as it is.
            return Err(StorageError::Refused(format!(
                "block {} of chain {} is held already with another hash ({} here, {} offered)",
                block.index,
                hex::encode(&genesis[..genesis.len().min(8)]),
                hex::encode(&other[..other.len().min(8)]),
                hex::encode(&block.hash[..block.hash.len().min(8)]),
            )));
        }
        let new = held.is_none();
        let committed = self.storage.commit(&writes);
        self.bump();
        committed?;
        if let (true, Some(bus)) = (new, &self.events) {
            bus.emit(NodeEvent::BlockStored { chain: genesis, index: block.index, hash: block.hash.clone() });
        }
        Ok(new)
    }

    /// `block` with the forward links of its stored copy (if any) at the levels where it has
    /// none: what is stored is only ever added to.
    fn with_stored_links<'a>(&self, block: &'a SkipBlock) -> std::borrow::Cow<'a, SkipBlock> {
        let Some(stored) = self.block(&block.hash) else { return std::borrow::Cow::Borrowed(block) };
        let missing = |level: usize| block.forward_links.get(level).is_none_or(|l| l.to.is_empty());
        if !stored.forward_links.iter().enumerate().any(|(level, l)| !l.to.is_empty() && missing(level)) {
            return std::borrow::Cow::Borrowed(block);
        }
        let mut merged = block.clone();
        if merged.forward_links.len() < stored.forward_links.len() {
            merged.forward_links.resize(stored.forward_links.len(), Default::default());
        }
        for (level, link) in stored.forward_links.into_iter().enumerate() {
            if !link.to.is_empty() && missing(level) {
                merged.forward_links[level] = link;
            }
        }
        std::borrow::Cow::Owned(merged)
    }

    /// Replaces a stored block (to add forward links), durably.
    pub fn update(&self, block: &SkipBlock) -> Result<(), StorageError> {
        let written = self.blocks.put(&block.hash, &block.encode_to_vec());
        self.bump();
        written
    }

    /// How many changes went through this store since it was opened (see `generation`).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Drops every chain (for `conode reset`).
    pub fn clear(&self) -> Result<(), StorageError> {
        self.blocks.clear()?;
        self.index.clear()?;
        self.arrived.clear()?;
        let cleared = self.latest.clear();
        crate::sync::lock(&self.geneses).clear();
        self.bump();
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::skipchain::ForwardLink;

    fn block(index: u64, hash: u8) -> SkipBlock {
        SkipBlock { index, hash: vec![hash; 32], genesis_id: vec![0; 32], ..Default::default() }
    }

    fn linked(mut b: SkipBlock, to: &SkipBlock) -> SkipBlock {
        b.forward_links = vec![ForwardLink { from: b.hash.clone(), to: to.hash.clone(), ..Default::default() }];
        b
    }

    #[test]
    fn the_roster_of_a_stored_block_is_read_alone_and_is_the_blocks() {
        use crate::verify::skipchain::RosterEntry;
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let member = |i: u8| RosterEntry {
            identity: vec![i; 32],
            cosi_key: vec![i; 48],
            address: format!("tls://10.0.0.{i}:7770"),
            pop: vec![i; 96],
            description: format!("member {i}"),
        };
        let roster = BlockRoster { members: (1..=4).map(member).collect() };
        let mut b0 = block(0, 0);
        b0.roster = Some(roster.clone());
        // Fields on both sides of the roster's tag, a large one among them.
        b0.data = vec![7; 1 << 20];
        b0.owners = vec![vec![9; 32]];
        b0.forward_links = vec![ForwardLink { from: b0.hash.clone(), to: vec![1; 32], ..Default::default() }];
        store.store(&b0, &[]).unwrap();
        assert_eq!(store.roster_at(&[0; 32], 0), Some(roster));
        assert_eq!(store.roster_at(&[0; 32], 0), store.block_at(&[0; 32], 0).unwrap().roster);
        let b1 = block(1, 1);
        store.store(&b1, &[]).unwrap();
        assert_eq!(store.roster_at(&[0; 32], 1), None, "a block without roster");
        assert_eq!(store.roster_at(&[0; 32], 2), None, "a block not held");
    }

    #[test]
    fn another_block_at_a_held_index_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let (b0, b1, other) = (block(0, 0), block(1, 1), block(1, 7));
        assert!(store.store(&b0, &[]).unwrap(), "new");
        assert!(store.store(&b1, &[linked(b0.clone(), &b1)]).unwrap(), "new");
        let err = store.store(&other, &[linked(b0.clone(), &other)]).unwrap_err().to_string();
        assert!(err.contains("held already with another hash"), "{err}");
        assert_eq!(store.held_hash_at(&[0; 32], 1), Some(b1.hash.clone()));
        assert!(store.block(&other.hash).is_none());
        assert_eq!(store.block(&b0.hash).unwrap().forward_links[0].to, b1.hash, "the source's link is kept");
        // The same block again is fine (links are merged), and not new.
        assert!(!store.store(&b1, &[]).unwrap());
    }

    #[test]
    fn the_arrival_of_each_chains_newest_block_is_kept_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let chain = [0u8; 32];
        let (b0, b1) = (block(0, 0), block(1, 1));
        let day = Duration::from_secs(86_400);
        {
            let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
            store.store(&b0, &[]).unwrap();
            assert!(store.slot_age(&chain, 0, day) < Duration::from_secs(60), "the genesis just arrived");
            store.store(&b1, &[linked(b0.clone(), &b1)]).unwrap();
            // Asked about a block that is no longer the newest: unknown, and nothing recorded.
            assert_eq!(store.slot_age(&chain, 0, day), day);
            // An older block stored again changes nothing.
            store.store(&b0, &[]).unwrap();
            assert!(store.slot_age(&chain, 1, day) < Duration::from_secs(60));
        }
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let age = store.slot_age(&chain, 1, day);
        assert!(age < Duration::from_secs(60), "kept across a reopen: {age:?}");
        // No record (a block stored by an older version): a day, recorded, and growing from there.
        store.arrived.clear().unwrap();
        assert_eq!(store.slot_age(&chain, 1, day), day);
        let later = store.slot_age(&chain, 1, day);
        assert!(later >= day && later < day + Duration::from_secs(60), "{later:?}");
        // An arrival ahead of the clock (set back since): now.
        store.record_arrival(&chain, 1, unix_ms() + 3_600_000);
        assert_eq!(store.slot_age(&chain, 1, day), Duration::ZERO);
        assert!(store.slot_age(&chain, 1, day) < Duration::from_secs(60), "recorded as arrived now");
        store.clear().unwrap();
        assert_eq!(store.slot_age(&chain, 1, day), day);
    }

    #[test]
    fn a_late_store_of_older_copies_keeps_the_forward_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let (b0, b1, b2) = (block(0, 0), block(1, 1), block(2, 2));
        store.store(&b0, &[]).unwrap();
        store.store(&b1, &[linked(b0.clone(), &b1)]).unwrap();
        store.store(&b2, &[linked(b1.clone(), &b2)]).unwrap();
        // A second, slower store of block 1 (a pushed copy checked while a catch-up stored
        // blocks 1 and 2) writes copies read before block 2 came.
        store.store(&b1, std::slice::from_ref(&b0)).unwrap();
        let link_of = |b: &SkipBlock| store.block(&b.hash).unwrap().forward_links.first().map(|l| l.to.clone());
        assert_eq!(link_of(&b1), Some(b2.hash.clone()), "block 1 lost its link to block 2");
        assert_eq!(link_of(&b0), Some(b1.hash.clone()), "the genesis lost its link to block 1");
        assert_eq!(store.latest_index(&b0.hash), Some(2));
        // A link the copy brings is added to what is stored.
        let mut two_levels = linked(b0.clone(), &b1);
        two_levels.forward_links.push(ForwardLink { to: b2.hash.clone(), ..Default::default() });
        store.store(&b2, &[two_levels]).unwrap();
        let stored = store.block(&b0.hash).unwrap();
        assert_eq!(stored.forward_links.iter().map(|l| l.to.clone()).collect::<Vec<_>>(), vec![b1.hash, b2.hash]);
    }

    /// A genesis whose hash and shape check (`check_self`), with `data`.
    fn genesis(data: Vec<u8>) -> SkipBlock {
        use crate::verify::skipchain::{height_for, BlockRoster, RosterEntry};
        let roster = BlockRoster { members: vec![RosterEntry { identity: vec![7; 32], ..Default::default() }] };
        let mut g = SkipBlock { base_height: 2, maximum_height: 3, roster: Some(roster), data, ..Default::default() };
        g.height = height_for(0, 2, 3);
        g.hash = g.compute_hash().to_vec();
        g.check_self().unwrap();
        g
    }

    #[test]
    fn a_genesis_is_kept_without_its_links_checked_bounded_and_forgotten_on_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let g = genesis(b"chain".to_vec());
        let b1 = SkipBlock { index: 1, hash: vec![1; 32], genesis_id: g.hash.clone(), ..Default::default() };
        assert!(store.genesis(&g.hash).is_none(), "an unknown chain has no genesis");
        store.store(&g, &[]).unwrap();
        let first = store.genesis(&g.hash).unwrap();
        store.store(&b1, &[linked(g.clone(), &b1)]).unwrap();
        let kept = store.genesis(&g.hash).unwrap();
        assert!(Arc::ptr_eq(&first, &kept), "decoded once");
        assert!(kept.forward_links.is_empty(), "the links it gained are not part of it");
        assert_eq!(*kept, SkipBlock { forward_links: vec![], ..store.block(&g.hash).unwrap() });
        assert!(store.genesis(&b1.hash).is_none(), "block 1 is no genesis");
        assert_eq!(store.hash_at(&g.hash, 1), Some(b1.hash.clone()));
        assert_eq!(store.held_hash_at(&g.hash, 1), Some(b1.hash.clone()));
        // A damaged store: the index names block 1, whose bytes are gone. It is not held.
        store.blocks.remove(&b1.hash).unwrap();
        assert_eq!(store.hash_at(&g.hash, 1), Some(b1.hash.clone()));
        assert_eq!(store.held_hash_at(&g.hash, 1), None, "an index entry without its block is not a held block");
        // A stored genesis whose hash does not check (a damaged or forged copy) is none.
        let mut forged = genesis(b"forged".to_vec());
        forged.data = b"changed after hashing".to_vec();
        store.store(&forged, &[]).unwrap();
        assert!(store.genesis(&forged.hash).is_none(), "a genesis whose hash does not check");
        // A large genesis is decoded at every call, not kept.
        let large = genesis(vec![1; GENESIS_KEPT_MAX + 1]);
        store.store(&large, &[]).unwrap();
        assert!(!Arc::ptr_eq(&store.genesis(&large.hash).unwrap(), &store.genesis(&large.hash).unwrap()));
        store.clear().unwrap();
        assert!(store.genesis(&g.hash).is_none(), "a cleared store keeps no genesis");
        assert_eq!(store.hash_at(&g.hash, 1), None);
    }

    #[test]
    fn geneses_kept_stay_within_their_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&Storage::open(dir.path(), "store-test").unwrap()).unwrap();
        let count = 2 * GENESES_KEPT_BYTES / GENESIS_KEPT_MAX;
        let ids: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut data = vec![0; GENESIS_KEPT_MAX - 512];
                data[..8].copy_from_slice(&(i as u64).to_be_bytes());
                let g = genesis(data);
                store.store(&g, &[]).unwrap();
                assert!(store.genesis(&g.hash).is_some());
                g.hash
            })
            .collect();
        let kept = crate::sync::lock(&store.geneses);
        assert!(kept.weight() <= GENESES_KEPT_BYTES, "{} bytes kept", kept.weight());
        assert!(kept.len() < count && !kept.contains(&ids[0]), "the oldest went first");
        assert!(kept.contains(&ids[count - 1]));
    }
}
