//! Node storage: one sled database at `<data dir>/<id>.db`, one tree per service. `put` returns only
//! after the write is flushed to disk, so a service acknowledges nothing it could lose in a crash.
//! The number of entries is counted once at open and then kept up to date by every write, so the
//! status service reads it without scanning the database.
//!
//! A hot backup ([`Storage::snapshot`]) reads a point-in-time view of every tree while writes go
//! on: from its start, each write first records the value it replaces (copy-on-write journal), and
//! the reader uses those recorded values instead of what it finds, so it sees the database as it
//! was when the snapshot began.

#[path = "storage_group_commit.rs"]
mod group_commit;

use group_commit::GroupCommit;
use sled::Transactional;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("a backup of this database is already running")]
    SnapshotBusy,
    /// A write that would replace what the store must keep (e.g. another block at an index).
    #[error("refused: {0}")]
    Refused(String),
}

/// Handle on the node database (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    db: sled::Db,
    path: PathBuf,
    counters: Arc<Counters>,
}

/// Entries of the whole database, and the last size on disk (re-read at most once a second).
struct Counters {
    entries: AtomicI64,
    opened: Instant,
    size: AtomicU64,
    size_read_ms: AtomicU64,
    /// Names of the services' trees; re-read when a tree is opened.
    trees: std::sync::RwLock<Option<Arc<Vec<String>>>>,
    /// Writes hold it shared from checking the journal to applying the write; a snapshot takes it
    /// exclusively to start journaling, so no write straddles the snapshot's start.
    gate: std::sync::RwLock<()>,
    /// The values writes replaced since the running snapshot began (`None`: no snapshot runs).
    journal: std::sync::Mutex<Option<Journal>>,
    /// Concurrent durable writes share their flushes.
    group: GroupCommit,
}

impl Counters {
    /// Returns once every write made before the call is on disk (one flush shared by the
    /// concurrent callers).
    fn durable(&self, db: &sled::Db) -> Result<(), StorageError> {
        self.group.sync(|| db.flush().map(|_| ()))?;
        Ok(())
    }
}

/// The running snapshot's view: where its reader is, and the values that writes ahead of it
/// replaced.
struct Journal {
    /// The trees it reads, in order (trees created later are not part of it).
    names: Vec<Vec<u8>>,
    /// The last (tree index, key) the reader has emitted.
    cursor: Option<(usize, Vec<u8>)>,
    /// (tree, key) → the value at the snapshot's start (`None`: absent then).
    before: Before,
}

/// (tree, key) → value at the snapshot's start.
type Before = std::collections::HashMap<(Vec<u8>, Vec<u8>), Option<Vec<u8>>>;

impl Journal {
    /// Records the value `key` of `tree` has now, unless the reader is already past it (it has
    /// emitted the value itself) or it was recorded before.
    fn record(&mut self, tree: &sled::Tree, key: &[u8]) -> Result<(), StorageError> {
        let Some(index) = self.names.iter().position(|n| n.as_slice() == tree.name().as_ref()) else {
            return Ok(());
        };
        if let Some((ci, ck)) = &self.cursor {
            if index < *ci || (index == *ci && key <= ck.as_slice()) {
                return Ok(());
            }
        }
        let slot = (tree.name().to_vec(), key.to_vec());
        if let std::collections::hash_map::Entry::Vacant(e) = self.before.entry(slot) {
            e.insert(tree.get(key)?.map(|v| v.to_vec()));
        }
        Ok(())
    }
}

impl Counters {
    /// Runs `write` (which changes `keys` of `tree`), first recording their values for a running
    /// snapshot.
    fn write<'k, R>(
        &self,
        tree: &sled::Tree,
        keys: impl IntoIterator<Item = &'k [u8]>,
        write: impl FnOnce() -> R,
    ) -> Result<R, StorageError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = journal.as_mut() {
            for k in keys {
                j.record(tree, k)?;
            }
        } else {
            drop(journal);
        }
        Ok(write())
    }
}

/// What a snapshot read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Entries per tree.
    pub trees: std::collections::BTreeMap<String, u64>,
}

/// How long a size on disk is reused.
const SIZE_REFRESH: Duration = Duration::from_secs(1);

/// A key and its value, as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A service's own key space.
#[derive(Clone)]
pub struct ServiceTree {
    tree: sled::Tree,
    db: sled::Db,
    counters: Arc<Counters>,
}

/// How often sled's background thread cleans segments (see `Storage::open`).
const BACKGROUND_FLUSH_MS: u64 = 10_000;
/// How long `Storage::open` waits for a lock that a just-closed handle of this process still holds.
const LOCK_WAIT: Duration = Duration::from_secs(2);
impl Storage {
    /// Opens (or creates) `<dir>/<node_id>.db`.
    pub fn open(dir: &Path, node_id: &str) -> Result<Self, StorageError> {
        let path = dir.join(format!("{node_id}.db"));
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Open { path: path.clone(), message: e.to_string() })?;
        // Every write here is flushed before it returns (`durable`), so sled's periodic flusher
        // only has its segment cleaning (and an fsync) left to do: every 10 s is plenty, and an
        // idle node (a thousand of them in one test process) wakes for it ten times less often.
        let config =
            sled::Config::new().path(&path).cache_capacity(8 * 1024 * 1024).flush_every_ms(Some(BACKGROUND_FLUSH_MS));
        // A database this process has just closed (a restore, a restart) may still be held for a
        // moment while sled's background threads let go of its lock: wait a little for it.
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("could not acquire lock") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(StorageError::Open { path: path.clone(), message: e.to_string() }),
            }
        };
        // The one scan: every later count follows the writes.
        let entries: usize = user_trees(&db).iter().filter_map(|t| db.open_tree(t).ok()).map(|t| t.len()).sum();
        let counters = Arc::new(Counters {
            entries: AtomicI64::new(entries as i64),
            opened: Instant::now(),
            size: AtomicU64::new(db.size_on_disk().unwrap_or(0)),
            size_read_ms: AtomicU64::new(0),
            trees: std::sync::RwLock::new(None),
            gate: std::sync::RwLock::new(()),
            journal: std::sync::Mutex::new(None),
            group: GroupCommit::default(),
        });
        Ok(Self { db, path, counters })
    }

    /// The tree of a service (created on first use).
    pub fn tree(&self, service: &str) -> Result<ServiceTree, StorageError> {
        let tree = self.db.open_tree(service)?;
        *self.counters.trees.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(ServiceTree { tree, db: self.db.clone(), counters: self.counters.clone() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `writes` (each: tree, key, value) as one atomic step across trees of this database and
    /// returns once it is durable: after a crash either all of them are there or none.
    pub fn commit(&self, writes: &[(&ServiceTree, &[u8], &[u8])]) -> Result<(), StorageError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        // sled wants each tree once: map every write to its tree's slot.
        let mut trees: Vec<sled::Tree> = Vec::new();
        let mut slots = Vec::with_capacity(writes.len());
        for (t, _, _) in writes {
            let slot = match trees.iter().position(|x| x.name() == t.tree.name()) {
                Some(i) => i,
                None => {
                    trees.push(t.tree.clone());
                    trees.len() - 1
                }
            };
            slots.push(slot);
        }
        let mut keys_of: Vec<Vec<&[u8]>> = vec![Vec::new(); trees.len()];
        for ((_, k, _), &slot) in writes.iter().zip(&slots) {
            keys_of[slot].push(k);
        }
        let _gate = self.counters.gate.read().unwrap_or_else(|p| p.into_inner());
        {
            let mut journal = self.counters.journal.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(j) = journal.as_mut() {
                for (tree, keys) in trees.iter().zip(&keys_of) {
                    for k in keys {
                        j.record(tree, k)?;
                    }
                }
            }
        }
        let result: Result<i64, TransactionError<()>> = trees.as_slice().transaction(|tx| {
            let mut new = 0i64;
            for ((_, k, v), &slot) in writes.iter().zip(&slots) {
                if tx[slot].insert(*k, *v).map_err(ConflictableTransactionError::from)?.is_none() {
                    new += 1;
                }
            }
            Ok(new)
        });
        match result {
            Ok(new) => {
                self.counters.entries.fetch_add(new, Ordering::Relaxed);
            }
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => {
                return Err(sled::Error::Unsupported("transaction aborted".into()).into());
            }
        }
        drop(_gate);
        self.counters.durable(&self.db)
    }

    /// Flushes every pending write to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.counters.durable(&self.db)
    }

    /// Bytes the database takes on disk (cheap: no scan of the entries).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Statistics for the status service: counters, no scan of the entries.
    pub fn stats(&self) -> StorageStats {
        let c = &self.counters;
        let now_ms = c.opened.elapsed().as_millis() as u64;
        let size_on_disk =
            if now_ms.saturating_sub(c.size_read_ms.load(Ordering::Relaxed)) >= SIZE_REFRESH.as_millis() as u64 {
                let size = self.db.size_on_disk().unwrap_or(0);
                c.size.store(size, Ordering::Relaxed);
                c.size_read_ms.store(now_ms, Ordering::Relaxed);
                size
            } else {
                c.size.load(Ordering::Relaxed)
            };
        StorageStats {
            path: self.path.display().to_string(),
            size_on_disk,
            trees: self.tree_names().to_vec(),
            entries: c.entries.load(Ordering::Relaxed).max(0) as usize,
        }
    }
}

impl Storage {
    /// Reads every service tree as it was when the call began, while writes go on, handing each
    /// entry to `visit` (tree, key, value); `progress` gets (entries read, entries at the start).
    /// One snapshot at a time: a second one fails with `SnapshotBusy`.
    pub fn snapshot<E: From<StorageError>>(
        &self,
        mut visit: impl FnMut(&str, &[u8], &[u8]) -> Result<(), E>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<SnapshotCounts, E> {
        let names = {
            let _gate = self.counters.gate.write().unwrap_or_else(|p| p.into_inner());
            let mut journal = self.counters.journal.lock().unwrap_or_else(|p| p.into_inner());
            if journal.is_some() {
                return Err(StorageError::SnapshotBusy.into());
            }
            let names = user_trees(&self.db);
            *journal = Some(Journal {
                names: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
                cursor: None,
                before: Default::default(),
            });
            names
        };
        // Journaling stops however the reading ends.
        struct Stop<'a>(&'a Counters);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                *self.0.journal.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        let _stop = Stop(&self.counters);
        let total = self.counters.entries.load(Ordering::Relaxed).max(0) as u64;
        let mut counts = SnapshotCounts::default();
        let mut done = 0u64;
        for (index, name) in names.iter().enumerate() {
            let tree = self.db.open_tree(name).map_err(StorageError::from)?;
            let mut count = 0u64;
            let mut from_journal = std::collections::HashSet::new();
            for item in tree.iter() {
                let (k, v) = item.map_err(StorageError::from)?;
                let recorded = {
                    let mut journal = self.counters.journal.lock().unwrap_or_else(|p| p.into_inner());
                    journal.as_mut().and_then(|j| {
                        // From here on, writes to this key are behind the reader: not recorded.
                        j.cursor = Some((index, k.to_vec()));
                        j.before.get(&(tree.name().to_vec(), k.to_vec())).cloned()
                    })
                };
                let value = match recorded {
                    // Written since the start: the value then, or nothing if it was new.
                    Some(old) => {
                        from_journal.insert(k.to_vec());
                        old
                    }
                    None => Some(v.to_vec()),
                };
                if let Some(value) = value {
                    visit(name, &k, &value)?;
                    count += 1;
                    done += 1;
                    if done.is_multiple_of(1024) {
                        progress(done, total);
                    }
                }
            }
            // Entries removed since the start.
            let removed: Vec<(Vec<u8>, Vec<u8>)> = {
                let journal = self.counters.journal.lock().unwrap_or_else(|p| p.into_inner());
                journal
                    .as_ref()
                    .map(|j| {
                        j.before
                            .iter()
                            .filter(|((t, k), old)| {
                                t == tree.name().as_ref() && old.is_some() && !from_journal.contains(k)
                            })
                            .filter_map(|((_, k), old)| old.clone().map(|o| (k.clone(), o)))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for (k, v) in removed {
                visit(name, &k, &v)?;
                count += 1;
                done += 1;
            }
            counts.trees.insert(name.clone(), count);
        }
        progress(done, total.max(done));
        Ok(counts)
    }

    fn tree_names(&self) -> Arc<Vec<String>> {
        if let Some(t) = self.counters.trees.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return t.clone();
        }
        let names = Arc::new(user_trees(&self.db));
        *self.counters.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(names.clone());
        names
    }
}

/// Names of the services' trees (not sled's own).
fn user_trees(db: &sled::Db) -> Vec<String> {
    db.tree_names()
        .into_iter()
        .filter_map(|n| String::from_utf8(n.to_vec()).ok())
        .filter(|n| !n.starts_with("__sled"))
        .collect()
}

/// Numbers shown under the `Db` status key.
#[derive(Clone, Debug)]
pub struct StorageStats {
    pub path: String,
    pub size_on_disk: u64,
    pub trees: Vec<String>,
    pub entries: usize,
}

impl ServiceTree {
    /// Stores `value` and returns once it is durable.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let old = self.counters.write(&self.tree, [key], || self.tree.insert(key, value))??;
        self.counted(old.is_none(), 1);
        self.counters.durable(&self.db)
    }

    /// Stores several entries atomically and durably.
    pub fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        let mut new = std::collections::HashSet::new();
        for (k, v) in entries {
            if !self.tree.contains_key(k)? {
                new.insert(*k);
            }
            batch.insert(*k, *v);
        }
        self.counters.write(&self.tree, entries.iter().map(|(k, _)| *k), || self.tree.apply_batch(batch))??;
        self.counted(true, new.len() as i64);
        self.counters.durable(&self.db)
    }

    /// Stores `value` and returns once it is durable (async: flush runs without blocking a worker).
    /// The flush runs on the runtime's blocking pool, not with sled's `flush_async`: that one
    /// flushes on sled's own small thread pool, where each flush waits for log writes queued on
    /// the same pool, so many concurrent flushes (many nodes in one process: 32 members of a DKG
    /// recording their deal at once) deadlock it.
    pub async fn put_async(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let old = self.counters.write(&self.tree, [key], || self.tree.insert(key, value))??;
        self.counted(old.is_none(), 1);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| sled::Error::ReportableBug(format!("flush task: {e}")))??;
        Ok(())
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Whether `key` has a value (nothing copied).
    pub fn contains(&self, key: &[u8]) -> Result<bool, StorageError> {
        Ok(self.tree.contains_key(key)?)
    }

    pub fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let old = self.counters.write(&self.tree, [key], || self.tree.remove(key))??;
        self.counted(old.is_some(), -1);
        self.counters.durable(&self.db)
    }

    /// Removes `key` without waiting for the removal to be durable: for entries that are only
    /// kept no longer than needed, whose return after a crash is harmless. A removal is never
    /// durable before the writes made durable ahead of it (sled's log is in order).
    pub fn forget(&self, key: &[u8]) -> Result<(), StorageError> {
        let old = self.counters.write(&self.tree, [key], || self.tree.remove(key))??;
        self.counted(old.is_some(), -1);
        Ok(())
    }

    /// Every key of this tree, in key order (the values are not read).
    pub fn keys(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.tree.iter().keys().filter_map(|r| r.ok()).map(|k| k.to_vec())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    fn counted(&self, changed: bool, delta: i64) {
        if changed {
            self.counters.entries.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Removes every entry of this tree (durably).
    pub fn clear(&self) -> Result<(), StorageError> {
        let before = self.tree.len() as i64;
        let keys: Vec<Vec<u8>> = self.tree.iter().keys().filter_map(Result::ok).map(|k| k.to_vec()).collect();
        self.counters.write(&self.tree, keys.iter().map(Vec::as_slice), || self.tree.clear())??;
        self.counted(true, -before);
        self.counters.durable(&self.db)
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Entry> + '_ {
        self.tree.scan_prefix(prefix).filter_map(|r| r.ok()).map(|(k, v)| (k.to_vec(), v.to_vec()))
    }

    /// The last entry in key order.
    pub fn last(&self) -> Result<Option<Entry>, StorageError> {
        Ok(self.tree.last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_roundtrip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), "abc").unwrap();
            let t = s.tree("svc").unwrap();
            t.put(b"k", b"v").unwrap();
            t.put_batch(&[(b"a", b"1"), (b"b", b"2")]).unwrap();
            assert_eq!(s.stats().entries, 3);
            // Overwrites do not count, removals and clears do.
            t.put(b"k", b"w").unwrap();
            t.put_batch(&[(b"a", b"9"), (b"c", b"3")]).unwrap();
            assert_eq!(s.stats().entries, 4);
            t.remove(b"c").unwrap();
            t.remove(b"c").unwrap();
            let other = s.tree("other").unwrap();
            s.commit(&[(&other, b"x", b"1"), (&t, b"k", b"2")]).unwrap();
            assert_eq!(s.stats().entries, 4);
            other.clear().unwrap();
            assert_eq!(s.stats().entries, 3);
        }
        let s = Storage::open(dir.path(), "abc").unwrap();
        let t = s.tree("svc").unwrap();
        assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(t.len(), 3);
        assert_eq!(s.stats().entries, 3);
        assert!(dir.path().join("abc.db").exists());
        assert_eq!(s.stats().trees, vec!["other".to_string(), "svc".to_string()]);
    }

    #[test]
    fn commit_spans_trees_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), "abc").unwrap();
            let (a, b) = (s.tree("a").unwrap(), s.tree("b").unwrap());
            s.commit(&[(&a, b"k1", b"1"), (&b, b"k2", b"2"), (&a, b"k3", b"3")]).unwrap();
        }
        let s = Storage::open(dir.path(), "abc").unwrap();
        let (a, b) = (s.tree("a").unwrap(), s.tree("b").unwrap());
        assert_eq!(a.get(b"k1").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(a.get(b"k3").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(b.get(b"k2").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!((a.len(), b.len()), (2, 1));
    }
}
