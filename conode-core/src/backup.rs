//! The backup file of a node's database: one stream that holds a point-in-time copy of every tree
//! and a manifest (node id, version, time, per-tree counts, SHA-256), written by `conode backup`
//! through the admin channel and read back by `conode restore`, which refuses anything corrupt,
//! truncated or foreign before it touches a database.
//!
//! Layout (all integers big-endian):
//! ```text
//! "CONODE-BACKUP\x00\x01\n"                       magic + format 1 (16 bytes)
//! { 0x01 | u16 tree_len | tree | u32 key_len | key | u32 value_len | value }*   entries
//! 0x00                                            end of entries
//! manifest JSON | u32 manifest_len | "CNBKEND\n"  manifest; its `sha256` covers every byte before it
//! ```

use crate::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"CONODE-BACKUP\x00\x01\n";
const END: &[u8; 8] = b"CNBKEND\n";
/// The format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Bounds on what a reader accepts (the file may be anything).
const MAX_TREE_NAME: usize = 256;
const MAX_KEY: usize = 64 * 1024;
const MAX_VALUE: usize = 256 * 1024 * 1024;
const MAX_MANIFEST: usize = 1024 * 1024;

/// What a backup says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `hex(sha256(ed25519 public key))`: whose database this is.
    pub node_id: String,
    /// The conode version that wrote it.
    pub version: String,
    /// Seconds since the Unix epoch when the snapshot began.
    pub created_unix: u64,
    /// Entries per tree.
    pub trees: BTreeMap<String, u64>,
    pub entries: u64,
    /// Hex SHA-256 of every byte before the manifest.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
    #[error("not a conode backup (bad magic: {0})")]
    NotABackup(String),
    #[error("corrupt backup: {0}")]
    Corrupt(String),
    #[error("backup of node {found}, not of this node ({expected})")]
    Foreign { found: String, expected: String },
    #[error("{0} exists; give --force to replace it (the old database is kept beside it)")]
    Exists(PathBuf),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io { what: what.to_string(), reason: e.to_string() }
}

/// Writes a stream while hashing it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.inner.write_all(bytes).map_err(io("writing the backup"))
    }
}

/// Writes a hot snapshot of `storage` into `out`; `progress` gets (entries written, entries at the
/// start). Returns the manifest (also written at the end of the stream) and the bytes written.
pub fn write_backup<W: Write>(
    storage: &Storage,
    node_id: &str,
    out: W,
    progress: impl FnMut(u64, u64),
) -> Result<(Manifest, u64), BackupError> {
    let created_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut w = Hashing { inner: out, hash: Sha256::new(), bytes: 0 };
    w.put(MAGIC)?;
    let counts = storage.snapshot(
        |tree, key, value| -> Result<(), BackupError> {
            if tree.len() > MAX_TREE_NAME || key.len() > MAX_KEY || value.len() > MAX_VALUE {
                return Err(BackupError::Corrupt(format!("entry of tree {tree} is beyond the format's bounds")));
            }
            w.put(&[1])?;
            w.put(&(tree.len() as u16).to_be_bytes())?;
            w.put(tree.as_bytes())?;
            w.put(&(key.len() as u32).to_be_bytes())?;
            w.put(key)?;
            w.put(&(value.len() as u32).to_be_bytes())?;
            w.put(value)
        },
        progress,
    )?;
    w.put(&[0])?;
    let manifest = Manifest {
        format: FORMAT,
        node_id: node_id.to_string(),
        version: crate::VERSION.to_string(),
        created_unix,
        entries: counts.trees.values().sum(),
        trees: counts.trees,
        sha256: hex::encode(w.hash.clone().finalize()),
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| BackupError::Corrupt(e.to_string()))?;
    w.put(&json)?;
    w.put(&(json.len() as u32).to_be_bytes())?;
    w.put(END)?;
    w.inner.flush().map_err(io("writing the backup"))?;
    Ok((manifest, w.bytes))
}

/// Reads with a running hash.
struct Reading<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Reading<R> {
    fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, BackupError> {
        let mut buf = Vec::new();
        (&mut self.inner).take(n as u64).read_to_end(&mut buf).map_err(io("reading the backup"))?;
        if buf.len() != n {
            return Err(BackupError::Corrupt(format!("truncated in {what}")));
        }
        self.hash.update(&buf);
        Ok(buf)
    }

    fn len(&mut self, width: usize, max: usize, what: &str) -> Result<usize, BackupError> {
        let b = self.exact(width, what)?;
        let n = b.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize);
        if n > max {
            return Err(BackupError::Corrupt(format!("{what} length {n} above the bound {max}")));
        }
        Ok(n)
    }
}

/// Reads a backup, handing each entry (tree, key, value) to `entry`, and checks it whole: magic,
/// bounds, checksum, per-tree counts, and (with `expected_node`) that it belongs to that node.
/// Nothing is trusted until this returns `Ok`, so callers stage what `entry` gets.
pub fn read_backup<R: Read>(
    input: R,
    expected_node: Option<&str>,
    mut entry: impl FnMut(&str, Vec<u8>, Vec<u8>) -> Result<(), BackupError>,
) -> Result<Manifest, BackupError> {
    let mut r = Reading { inner: input, hash: Sha256::new() };
    let magic = r.exact(MAGIC.len(), "magic").map_err(|_| BackupError::NotABackup("file too short".into()))?;
    if magic[..14] != MAGIC[..14] {
        return Err(BackupError::NotABackup(String::from_utf8_lossy(&magic[..14]).into_owned()));
    }
    if magic != MAGIC {
        return Err(BackupError::Corrupt(format!("format {} (this conode reads format {FORMAT})", magic[14])));
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        match r.exact(1, "entry tag")?[0] {
            0 => break,
            1 => {
                let n = r.len(2, MAX_TREE_NAME, "tree name")?;
                let tree = String::from_utf8(r.exact(n, "tree name")?)
                    .map_err(|_| BackupError::Corrupt("tree name is not UTF-8".into()))?;
                let n = r.len(4, MAX_KEY, "key")?;
                let key = r.exact(n, "key")?;
                let n = r.len(4, MAX_VALUE, "value")?;
                let value = r.exact(n, "value")?;
                *counts.entry(tree.clone()).or_default() += 1;
                entry(&tree, key, value)?;
            }
            t => return Err(BackupError::Corrupt(format!("unknown entry tag {t}"))),
        }
    }
    let digest = hex::encode(r.hash.clone().finalize());
    // The rest: manifest JSON, its length, the end marker.
    let mut tail = Vec::new();
    (&mut r.inner).take((MAX_MANIFEST + 12) as u64 + 1).read_to_end(&mut tail).map_err(io("reading the backup"))?;
    if tail.len() < 12 || tail.len() > MAX_MANIFEST + 12 || &tail[tail.len() - 8..] != END {
        return Err(BackupError::Corrupt("truncated or missing manifest".into()));
    }
    let n =
        u32::from_be_bytes([tail[tail.len() - 12], tail[tail.len() - 11], tail[tail.len() - 10], tail[tail.len() - 9]])
            as usize;
    if n != tail.len() - 12 {
        return Err(BackupError::Corrupt("manifest length does not match".into()));
    }
    let manifest: Manifest =
        serde_json::from_slice(&tail[..n]).map_err(|e| BackupError::Corrupt(format!("manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Corrupt(format!("manifest format {}", manifest.format)));
    }
    if manifest.sha256 != digest {
        return Err(BackupError::Corrupt(format!(
            "checksum mismatch (manifest {}, content {digest})",
            manifest.sha256
        )));
    }
    let nonzero: BTreeMap<String, u64> =
        manifest.trees.iter().filter(|(_, c)| **c > 0).map(|(k, v)| (k.clone(), *v)).collect();
    if nonzero != counts || manifest.entries != counts.values().sum::<u64>() {
        return Err(BackupError::Corrupt("per-tree counts do not match the entries".into()));
    }
    if let Some(expected) = expected_node {
        if manifest.node_id != expected {
            return Err(BackupError::Foreign { found: manifest.node_id.clone(), expected: expected.to_string() });
        }
    }
    Ok(manifest)
}

/// The tree a restored database carries until the node has caught up from a quorum of its peers
/// (see [`crate::services::recovery`]).
pub const RECOVERY_TREE: &str = "node.recovery";
pub const RECOVERY_KEY: &[u8] = b"restored";

/// Restores `file` as `<data_dir>/<node_id>.db`: read and checked whole into a staging database
/// beside it first, then moved into place; an existing database is replaced only with `force` (and
/// kept as `<id>.db.before-restore-<time>`). The restored database is marked as restored, so the
/// node signs nothing before it has caught up. Returns the manifest and the database path.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    expected_node: Option<&str>,
    force: bool,
) -> Result<(Manifest, PathBuf), BackupError> {
    let f = std::fs::File::open(file).map_err(io(&file.display().to_string()))?;
    std::fs::create_dir_all(data_dir).map_err(io(&data_dir.display().to_string()))?;
    let staging = data_dir.join(format!(".restore-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging.display().to_string()))?;
    }
    let result = restore_into(std::io::BufReader::new(f), &staging, expected_node);
    let (manifest, staged) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let target = data_dir.join(format!("{}.db", manifest.node_id));
    if target.exists() {
        if !force {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(BackupError::Exists(target));
        }
        let aside = data_dir.join(format!("{}.db.before-restore-{}", manifest.node_id, manifest_now()));
        std::fs::rename(&target, &aside).map_err(io(&target.display().to_string()))?;
    }
    std::fs::rename(&staged, &target).map_err(io(&target.display().to_string()))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok((manifest, target))
}

fn manifest_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Entries of one staged batch, by tree.
type TreeBatch<'a> = BTreeMap<&'a str, Vec<(&'a [u8], &'a [u8])>>;

fn restore_into<R: Read>(
    input: R,
    staging: &Path,
    expected_node: Option<&str>,
) -> Result<(Manifest, PathBuf), BackupError> {
    // The node id is known only at the end: stage under a fixed name, renamed by the caller.
    let storage = Storage::open(staging, "staged")?;
    let mut trees: BTreeMap<String, crate::storage::ServiceTree> = BTreeMap::new();
    let mut batch: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    let flush = |trees: &mut BTreeMap<String, crate::storage::ServiceTree>,
                 batch: &mut Vec<(String, Vec<u8>, Vec<u8>)>|
     -> Result<(), BackupError> {
        let mut by_tree: TreeBatch<'_> = BTreeMap::new();
        for (t, k, v) in batch.iter() {
            by_tree.entry(t.as_str()).or_default().push((k, v));
        }
        for (t, entries) in by_tree {
            if !trees.contains_key(t) {
                trees.insert(t.to_string(), storage.tree(t)?);
            }
            if let Some(tree) = trees.get(t) {
                tree.put_batch(&entries)?;
            }
        }
        batch.clear();
        Ok(())
    };
    let manifest = read_backup(input, expected_node, |t, k, v| {
        if t == RECOVERY_TREE {
            return Ok(());
        }
        batch.push((t.to_string(), k, v));
        if batch.len() >= 4096 {
            flush(&mut trees, &mut batch)?;
        }
        Ok(())
    })?;
    flush(&mut trees, &mut batch)?;
    // Restored: sign nothing before catching up (the value: when the backup was taken).
    storage.tree(RECOVERY_TREE)?.put(RECOVERY_KEY, &manifest.created_unix.to_be_bytes())?;
    storage.flush()?;
    let path = storage.path().to_path_buf();
    drop(trees);
    drop(storage);
    Ok((manifest, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Storage {
        let s = Storage::open(dir, "node").unwrap();
        let a = s.tree("a").unwrap();
        for i in 0u32..3000 {
            a.put_batch(&[(&i.to_be_bytes(), format!("v{i}").as_bytes())]).unwrap();
        }
        s.tree("b").unwrap().put(b"k", b"v").unwrap();
        s
    }

    #[test]
    fn snapshot_is_point_in_time_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample(dir.path());
        let (a, b) = (s.tree("a").unwrap(), s.tree("b").unwrap());
        let mut seen: BTreeMap<(String, Vec<u8>), Vec<u8>> = BTreeMap::new();
        let mut wrote = false;
        let counts = s
            .snapshot(
                |t, k, v| -> Result<(), StorageError> {
                    if !wrote {
                        // Writes during the snapshot: overwrite, insert, remove, in two trees.
                        a.put(&5u32.to_be_bytes(), b"changed").unwrap();
                        a.put(&2999u32.to_be_bytes(), b"changed too").unwrap();
                        a.put(b"zzz-new", b"new").unwrap();
                        b.remove(b"k").unwrap();
                        s.commit(&[(&a, &7u32.to_be_bytes(), b"x"), (&b, b"new", b"y")]).unwrap();
                        wrote = true;
                    }
                    seen.insert((t.to_string(), k.to_vec()), v.to_vec());
                    Ok(())
                },
                |_, _| {},
            )
            .unwrap();
        assert_eq!(counts.trees.get("a"), Some(&3000));
        assert_eq!(counts.trees.get("b"), Some(&1), "{:?}", seen.keys().filter(|(t, _)| t == "b").collect::<Vec<_>>());
        assert_eq!(seen.len(), 3001);
        assert_eq!(seen[&("a".to_string(), 5u32.to_be_bytes().to_vec())], b"v5");
        assert_eq!(seen[&("a".to_string(), 2999u32.to_be_bytes().to_vec())], b"v2999");
        assert_eq!(seen[&("a".to_string(), 7u32.to_be_bytes().to_vec())], b"v7");
        assert_eq!(seen[&("b".to_string(), b"k".to_vec())], b"v");
        assert!(!seen.contains_key(&("a".to_string(), b"zzz-new".to_vec())));
        // The writes themselves happened.
        assert_eq!(a.get(&5u32.to_be_bytes()).unwrap().unwrap(), b"changed");
        assert!(b.get(b"k").unwrap().is_none());
        // And the journal is off again: a second snapshot sees the new state.
        let mut n = 0;
        s.snapshot(
            |_, _, _| -> Result<(), StorageError> {
                n += 1;
                Ok(())
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!(n, 3000 + 1 + 1);
    }

    #[test]
    fn backup_roundtrip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample(&dir.path().join("src"));
        let mut file = Vec::new();
        let (manifest, bytes) = write_backup(&s, "node", &mut file, |_, _| {}).unwrap();
        assert_eq!(bytes as usize, file.len());
        assert_eq!(manifest.entries, 3001);
        let path = dir.path().join("b.backup");
        std::fs::write(&path, &file).unwrap();

        let out = dir.path().join("out");
        let (m, db) = restore(&path, &out, Some("node"), false).unwrap();
        assert_eq!(m, manifest);
        assert_eq!(db, out.join("node.db"));
        {
            let r = Storage::open(&out, "node").unwrap();
            assert_eq!(r.tree("a").unwrap().len(), 3000);
            assert_eq!(r.tree("b").unwrap().get(b"k").unwrap().unwrap(), b"v");
            assert!(r.tree(RECOVERY_TREE).unwrap().get(RECOVERY_KEY).unwrap().is_some());
        }
        // Never over an existing database without force; with force, the old one is kept aside.
        let e = restore(&path, &out, Some("node"), false).unwrap_err();
        assert!(matches!(e, BackupError::Exists(_)), "{e}");
        restore(&path, &out, Some("node"), true).unwrap();
        assert!(std::fs::read_dir(&out).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("before-restore")));

        // Foreign, not a backup, flipped byte, truncated: refused, nothing written.
        let other = dir.path().join("other");
        let e = restore(&path, &other, Some("someone-else"), false).unwrap_err();
        assert!(matches!(e, BackupError::Foreign { .. }), "{e}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"hello world, not a backup at all").unwrap();
        assert!(matches!(restore(&bad, &other, None, false).unwrap_err(), BackupError::NotABackup(_)));
        let mut flipped = file.clone();
        flipped[file.len() / 2] ^= 0x40;
        std::fs::write(&bad, &flipped).unwrap();
        let e = restore(&bad, &other, None, false).unwrap_err();
        assert!(matches!(e, BackupError::Corrupt(_)), "{e}");
        for cut in [20, file.len() / 3, file.len() - 5] {
            std::fs::write(&bad, &file[..cut]).unwrap();
            assert!(matches!(restore(&bad, &other, None, false).unwrap_err(), BackupError::Corrupt(_)), "cut {cut}");
        }
        assert!(!other.join("someone-else.db").exists() && !other.join("node.db").exists());
    }
}
