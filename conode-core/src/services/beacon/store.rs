//! Durable beacon state in sled: the tree `beacon` holds the group file and this node's share (the
//! share is never logged nor shown in Debug), the tree `beacon_chain` holds the beacons keyed by
//! big-endian round so the last key is the latest round. Writes return once flushed.

use super::messages::BeaconPacket;
use crate::crypto::threshold::Scalar;
use crate::services::dkg::Group;
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::verify::beacon::Beacon;
use prost::Message;
use std::fmt;

/// Tree of the group and share.
pub const TREE: &str = "beacon";
/// Tree of the beacons.
pub const CHAIN_TREE: &str = "beacon_chain";
const GROUP_KEY: &[u8] = b"group";
const SHARE_KEY: &[u8] = b"share";
/// A resharing's group and share for this node, waiting for their transition round.
const NEXT_GROUP_KEY: &[u8] = b"next_group";
const NEXT_SHARE_KEY: &[u8] = b"next_share";
/// The round from which this node, left out of a resharing, no longer signs (u64 big-endian).
const RETIRE_KEY: &[u8] = b"retire_at";
/// The resharing session this node takes part in (until its Finish or abort), so that a restart
/// resumes it: its configuration, the leader's Go, each deal received (`reshare/deal/<dealer>`).
const RESHARE_PREFIX: &[u8] = b"reshare/";
const RESHARE_CONFIG_KEY: &[u8] = b"reshare/config";
const RESHARE_GO_KEY: &[u8] = b"reshare/go";
const RESHARE_DEAL_PREFIX: &[u8] = b"reshare/deal/";

/// A stored resharing session: configuration, Go, deals (encoded messages).
pub type StoredReshare = (Vec<u8>, Option<Vec<u8>>, Vec<zeroize::Zeroizing<Vec<u8>>>);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

/// This node's secret share of the group key. Wiped on drop; Debug shows only the index.
#[derive(Clone)]
pub struct Share {
    pub index: u32,
    pub scalar: Scalar,
    /// The DKG session it belongs to (must match the group's).
    pub session: [u8; 32],
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share(index {})", self.index)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.scalar.wipe();
    }
}

impl Share {
    fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(68));
        v.extend_from_slice(&self.index.to_be_bytes());
        v.extend_from_slice(&self.scalar.to_bytes());
        v.extend_from_slice(&self.session);
        v
    }
    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |r: &str| StoreError::Corrupt { what: "share", reason: r.to_string() };
        if b.len() != 68 {
            return Err(corrupt("wrong length"));
        }
        let index = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let scalar = Scalar::from_bytes(&b[4..36]).map_err(|e| corrupt(&e.to_string()))?;
        let mut session = [0u8; 32];
        session.copy_from_slice(&b[36..68]);
        Ok(Share { index, scalar, session })
    }
}

/// Encodes a beacon for storage and the wire.
pub fn to_packet(b: &Beacon) -> BeaconPacket {
    BeaconPacket {
        round: b.round,
        signature: b.signature.clone(),
        previous_signature: b.previous_signature.clone().unwrap_or_default(),
        randomness: b.randomness().to_vec(),
    }
}

/// Decodes a beacon packet (no verification).
pub fn from_packet(p: BeaconPacket) -> Beacon {
    Beacon {
        round: p.round,
        signature: p.signature,
        previous_signature: if p.previous_signature.is_empty() { None } else { Some(p.previous_signature) },
    }
}

/// The beacon state of one node.
#[derive(Clone)]
pub struct ChainStore {
    meta: ServiceTree,
    chain: ServiceTree,
}

impl ChainStore {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self { meta: storage.tree(TREE)?, chain: storage.tree(CHAIN_TREE)? })
    }

    pub fn has_group(&self) -> bool {
        matches!(self.meta.get(GROUP_KEY), Ok(Some(_)))
    }

    /// The stored group and share, if a DKG completed on this node.
    pub fn load(&self) -> Result<Option<(Group, Share)>, StoreError> {
        let (Some(g), Some(s)) = (self.meta.get(GROUP_KEY)?, self.meta.get(SHARE_KEY)?) else {
            return Ok(None);
        };
        let s = zeroize::Zeroizing::new(s);
        let text =
            String::from_utf8(g).map_err(|_| StoreError::Corrupt { what: "group", reason: "not UTF-8".into() })?;
        let group = Group::from_toml(&text).map_err(|reason| StoreError::Corrupt { what: "group", reason })?;
        let share = Share::decode(&s)?;
        if share.session != group.session {
            return Err(StoreError::Corrupt { what: "share", reason: "belongs to another DKG".into() });
        }
        Ok(Some((group, share)))
    }

    /// Stores a new group and share atomically and durably.
    pub fn install(&self, group: &Group, share: &Share) -> Result<(), StoreError> {
        let text = group.to_toml();
        let enc = share.encode();
        self.meta.put_batch(&[(GROUP_KEY, text.as_bytes()), (SHARE_KEY, enc.as_slice())])?;
        Ok(())
    }

    /// Stores the group and share a resharing gave this node, to take over at the group's
    /// transition round (the current ones stay until then).
    pub fn stage_next(&self, group: &Group, share: &Share) -> Result<(), StoreError> {
        let text = group.to_toml();
        let enc = share.encode();
        self.meta.put_batch(&[(NEXT_GROUP_KEY, text.as_bytes()), (NEXT_SHARE_KEY, enc.as_slice())])?;
        Ok(())
    }

    /// The staged group and share, if any.
    pub fn load_next(&self) -> Result<Option<(Group, Share)>, StoreError> {
        let (Some(g), Some(s)) = (self.meta.get(NEXT_GROUP_KEY)?, self.meta.get(NEXT_SHARE_KEY)?) else {
            return Ok(None);
        };
        let s = zeroize::Zeroizing::new(s);
        let text =
            String::from_utf8(g).map_err(|_| StoreError::Corrupt { what: "next group", reason: "not UTF-8".into() })?;
        let group = Group::from_toml(&text).map_err(|reason| StoreError::Corrupt { what: "next group", reason })?;
        let share = Share::decode(&s)?;
        if share.session != group.session {
            return Err(StoreError::Corrupt { what: "next share", reason: "belongs to another group".into() });
        }
        Ok(Some((group, share)))
    }

    /// Makes the staged group and share the current ones (a crash between the two writes leaves
    /// the staged copy equal to the current one, which [`Self::drop_next`] then removes).
    pub fn promote_next(&self, group: &Group, share: &Share) -> Result<(), StoreError> {
        self.install(group, share)?;
        self.drop_next()
    }

    /// Forgets a staged group and share.
    pub fn drop_next(&self) -> Result<(), StoreError> {
        self.meta.remove(NEXT_GROUP_KEY)?;
        self.meta.remove(NEXT_SHARE_KEY)?;
        Ok(())
    }

    /// Records that this node signs no round from `round` on (it left the group by resharing).
    pub fn set_retire(&self, round: u64) -> Result<(), StoreError> {
        self.meta.put(RETIRE_KEY, &round.to_be_bytes())?;
        Ok(())
    }

    /// Forgets this node's share (a member that left the group, once it signed its last round):
    /// a restart runs no chain from it and never signs with it again.
    pub fn erase_share(&self) -> Result<(), StoreError> {
        self.meta.remove(SHARE_KEY)?;
        Ok(())
    }

    /// Records the resharing session this node takes part in (encoded configuration), replacing
    /// any other.
    pub fn save_reshare(&self, config: &[u8]) -> Result<(), StoreError> {
        self.drop_reshare()?;
        self.meta.put(RESHARE_CONFIG_KEY, config)?;
        Ok(())
    }

    /// Records the leader's Go (encoded) of the stored session.
    pub fn save_reshare_go(&self, go: &[u8]) -> Result<(), StoreError> {
        self.meta.put(RESHARE_GO_KEY, go)?;
        Ok(())
    }

    /// Records a deal (encoded) received in the stored session.
    pub fn save_reshare_deal(&self, dealer: u32, deal: &[u8]) -> Result<(), StoreError> {
        self.meta.put(&[RESHARE_DEAL_PREFIX, &dealer.to_be_bytes()].concat(), deal)?;
        Ok(())
    }

    /// The stored resharing session, if any.
    pub fn load_reshare(&self) -> Result<Option<StoredReshare>, StoreError> {
        let Some(config) = self.meta.get(RESHARE_CONFIG_KEY)? else { return Ok(None) };
        let go = self.meta.get(RESHARE_GO_KEY)?;
        let deals = self.meta.scan_prefix(RESHARE_DEAL_PREFIX).map(|(_, v)| zeroize::Zeroizing::new(v)).collect();
        Ok(Some((config, go, deals)))
    }

    /// Forgets the stored resharing session (it ended here).
    pub fn drop_reshare(&self) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = self.meta.scan_prefix(RESHARE_PREFIX).map(|(k, _)| k).collect();
        for k in keys {
            self.meta.remove(&k)?;
        }
        Ok(())
    }

    /// The round from which this node no longer signs, if it left the group.
    pub fn retire_at(&self) -> Result<Option<u64>, StoreError> {
        match self.meta.get(RETIRE_KEY)? {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt { what: "retire round", reason: "not 8 bytes".into() }),
        }
    }

    fn key(round: u64) -> [u8; 8] {
        round.to_be_bytes()
    }

    pub async fn put_beacon(&self, b: &Beacon) -> Result<(), StoreError> {
        let mut p = to_packet(b);
        p.randomness.clear();
        self.chain.put_async(&Self::key(b.round), &p.encode_to_vec()).await?;
        Ok(())
    }

    /// Stores consecutive beacons atomically (catch-up).
    pub fn put_beacons(&self, bs: &[Beacon]) -> Result<(), StoreError> {
        let enc: Vec<([u8; 8], Vec<u8>)> = bs
            .iter()
            .map(|b| {
                let mut p = to_packet(b);
                p.randomness.clear();
                (Self::key(b.round), p.encode_to_vec())
            })
            .collect();
        let refs: Vec<(&[u8], &[u8])> = enc.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        self.chain.put_batch(&refs)?;
        Ok(())
    }

    fn decode(v: &[u8]) -> Result<Beacon, StoreError> {
        BeaconPacket::decode(v)
            .map(from_packet)
            .map_err(|e| StoreError::Corrupt { what: "beacon", reason: e.to_string() })
    }

    pub fn get(&self, round: u64) -> Result<Option<Beacon>, StoreError> {
        self.chain.get(&Self::key(round))?.map(|v| Self::decode(&v)).transpose()
    }

    pub fn last(&self) -> Result<Option<Beacon>, StoreError> {
        self.chain.last()?.map(|(_, v)| Self::decode(&v)).transpose()
    }

    /// Up to `count` consecutive stored beacons from `from`.
    pub fn range(&self, from: u64, count: u32) -> Result<Vec<Beacon>, StoreError> {
        let mut out = Vec::new();
        for r in from..from.saturating_add(u64::from(count)) {
            match self.get(r)? {
                Some(b) => out.push(b),
                None => break,
            }
        }
        Ok(out)
    }

    pub fn beacon_count(&self) -> usize {
        self.chain.len()
    }
}

/// Drops the beacon chain, the group, the share and the DKG transcripts of a node's database
/// (`conode reset`); the node's keys (private.toml) are untouched.
pub fn reset(storage: &Storage) -> Result<(), StorageError> {
    storage.tree(CHAIN_TREE)?.clear()?;
    storage.tree(TREE)?.clear()?;
    storage.tree(crate::services::dkg::TREE)?.clear()?;
    storage.flush()
}
