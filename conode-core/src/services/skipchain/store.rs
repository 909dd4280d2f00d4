//! Durable storage of skipchains in the node's sled database: blocks by hash, the hash of each
//! (chain, index), and the newest index per chain. Each new block is one atomic, durable commit
//! (block, its index entry, the newest index and the sources' new forward links together), after
//! which the store emits one `BlockStored` node event per new block, in commit order.

use crate::events::{EventBus, NodeEvent};
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::verify::skipchain::SkipBlock;
use prost::Message;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct ChainStore {
    storage: Storage,
    blocks: ServiceTree,
    index: ServiceTree,
    latest: ServiceTree,
    /// Where `BlockStored` events go, when set.
    events: Option<EventBus>,
    /// One commit at a time, so each new block is announced once and in commit order.
    commit: Arc<Mutex<()>>,
    /// Bumped by every change through this store (and its clones): readers that derive state
    /// from the chains (the membership service's tick) skip their work while it stands still.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Notified with every bump of `generation` (its waiters at that moment).
    changed: Arc<tokio::sync::Notify>,
}

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
            events: None,
            commit: Arc::new(Mutex::new(())),
            generation: Default::default(),
            changed: Default::default(),
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

    pub fn block_at(&self, genesis: &[u8], index: u64) -> Option<SkipBlock> {
        let hash = self.index.get(&index_key(genesis, index)).ok().flatten()?;
        self.block(&hash)
    }

    /// Index of the newest block of `genesis`, if the chain is known.
    pub fn latest_index(&self, genesis: &[u8]) -> Option<u64> {
        let v = self.latest.get(genesis).ok().flatten()?;
        Some(u64::from_be_bytes(v.as_slice().try_into().ok()?))
    }

    pub fn latest(&self, genesis: &[u8]) -> Option<SkipBlock> {
        self.block_at(genesis, self.latest_index(genesis)?)
    }

    /// Every chain this node holds.
    pub fn chains(&self) -> Vec<Vec<u8>> {
        self.latest.scan_prefix(&[]).map(|(k, _)| k).collect()
    }

    /// Stores a new block (the chain's next one) and the updated source blocks in one atomic,
    /// durable commit.
    pub fn store(&self, block: &SkipBlock, updated_sources: &[SkipBlock]) -> Result<(), StorageError> {
        let genesis = block.chain_id().to_vec();
        let encoded: Vec<Vec<u8>> = updated_sources.iter().map(|s| s.encode_to_vec()).collect();
        let block_bytes = block.encode_to_vec();
        let index_entry = index_key(&genesis, block.index);
        let latest_bytes = block.index.to_be_bytes();
        let mut writes: Vec<(&ServiceTree, &[u8], &[u8])> = updated_sources
            .iter()
            .zip(&encoded)
            .map(|(s, bytes)| (&self.blocks, s.hash.as_slice(), bytes.as_slice()))
            .collect();
        writes.push((&self.blocks, &block.hash, &block_bytes));
        writes.push((&self.index, &index_entry, &block.hash));
        let _one = crate::sync::lock(&self.commit);
        if self.latest_index(&genesis).is_none_or(|l| block.index > l) {
            writes.push((&self.latest, &genesis, &latest_bytes));
        }
        let new = self.index.get(&index_entry).ok().flatten().is_none_or(|h| h != block.hash);
        let committed = self.storage.commit(&writes);
        self.bump();
        committed?;
        if let (true, Some(bus)) = (new, &self.events) {
            bus.emit(NodeEvent::BlockStored { chain: genesis, index: block.index, hash: block.hash.clone() });
        }
        Ok(())
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

    /// Notified after every change through this store (see `generation`).
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Drops every chain (for `conode reset`).
    pub fn clear(&self) -> Result<(), StorageError> {
        self.blocks.clear()?;
        self.index.clear()?;
        let cleared = self.latest.clear();
        self.bump();
        cleared
    }
}
