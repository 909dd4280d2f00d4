//! Equivocation evidence: two valid forward links from one block at one level to different blocks.
//! With at most f faulty members this cannot happen (see the module doc); if it does, every member
//! in both collective signatures' masks provably signed both, and this node keeps the two links as
//! evidence against each of them, logs it, and counts it per member for `/status` and `/metrics`.

use super::messages::Equivocation;
use crate::config::Roster;
use crate::crypto::IdentityPublicKey;
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::verify::cosi::Mask;
use crate::verify::skipchain::ForwardLink;
use prost::Message;
use std::collections::BTreeMap;
use tracing::warn;

/// The evidence a node holds (cheap to clone).
#[derive(Clone)]
pub struct EvidenceLog {
    tree: ServiceTree,
    /// Where `Equivocation` events go, when set.
    events: Option<crate::events::EventBus>,
}

impl EvidenceLog {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self { tree: storage.tree("skipchain.evidence")?, events: None })
    }

    /// Announces every member accused from now on as a `NodeEvent::Equivocation` on `bus`.
    pub fn with_events(mut self, bus: crate::events::EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    /// Records `first` and `second` (both verified against `roster`, the source block's roster)
    /// against every member in both masks. Returns the accused members.
    pub fn record(
        &self,
        genesis: &[u8],
        index: u64,
        level: u32,
        roster: &Roster,
        first: &ForwardLink,
        second: &ForwardLink,
    ) -> Vec<IdentityPublicKey> {
        let signers = |l: &ForwardLink| {
            l.signature
                .as_ref()
                .and_then(|s| Mask::from_bytes(roster.len(), &s.mask).ok())
                .map(|m| m.indices())
                .unwrap_or_default()
        };
        let (a, b) = (signers(first), signers(second));
        let accused: Vec<IdentityPublicKey> =
            a.iter().filter(|i| b.contains(i)).filter_map(|&i| roster.servers.get(i)).map(|m| m.public).collect();
        for member in &accused {
            let record = Equivocation {
                genesis: genesis.to_vec(),
                index,
                level,
                first: Some(first.clone()),
                second: Some(second.clone()),
                member: member.as_bytes().to_vec(),
            };
            let mut key = member.as_bytes().to_vec();
            key.extend_from_slice(&crate::crypto::sha256(&[&record.encode_to_vec()]));
            if let Err(e) = self.tree.put(&key, &record.encode_to_vec()) {
                warn!(error = %e, "cannot store equivocation evidence");
            }
            warn!(
                member = %member,
                chain = %hex::encode(&genesis[..genesis.len().min(8)]),
                index,
                level,
                "EQUIVOCATION: this member signed two forward links from one block at one level"
            );
            if let Some(bus) = &self.events {
                bus.emit(crate::events::NodeEvent::Equivocation {
                    chain: genesis.to_vec(),
                    index,
                    level,
                    member: *member,
                });
            }
        }
        accused
    }

    /// Evidence records per member (hex key).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, _) in self.tree.scan_prefix(&[]) {
            if let Ok(key) = IdentityPublicKey::from_bytes(&k[..k.len().min(32)]) {
                *out.entry(key.to_hex()).or_insert(0) += 1;
            }
        }
        out
    }
}
