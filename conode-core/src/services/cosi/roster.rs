//! The roster of a round in the form the protocol uses: decoded members and cosi keys, its wire
//! form, and a small per-node cache so repeated rounds over the same roster skip decoding (and,
//! at the root, proof-of-possession checks).

use super::messages::{Announce, Member, MAX_ROSTER};
use crate::config::{NodeAddress, Roster, ServerIdentity, COSI_SERVICE};
use crate::crypto::{sha256, BlsPublicKey, IdentityPublicKey, PopCache};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A roster whose members all publish a valid cosi key.
pub struct RoundRoster {
    /// sha256 over the wire form; names the roster in the cache.
    pub id: [u8; 32],
    pub servers: Vec<ServerIdentity>,
    pub keys: Vec<BlsPublicKey>,
    /// The encoding of `Announce { roster }` alone: appended to an announcement without roster,
    /// it makes one with the roster (protobuf concatenation).
    pub wire_bytes: Vec<u8>,
}

fn round_roster(id: [u8; 32], servers: Vec<ServerIdentity>, keys: Vec<BlsPublicKey>, wire: Vec<Member>) -> RoundRoster {
    let wire_bytes = prost::Message::encode_to_vec(&Announce { roster: wire, ..Default::default() });
    RoundRoster { id, servers, keys, wire_bytes }
}

impl RoundRoster {
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn index_of(&self, key: &IdentityPublicKey) -> Option<usize> {
        self.servers.iter().position(|s| &s.public == key)
    }
}

fn wire_id(wire: &[Member]) -> [u8; 32] {
    // Length-delimited encodings: unambiguous, whatever the peer put in the fields.
    let encoded: Vec<Vec<u8>> = wire.iter().map(prost::Message::encode_length_delimited_to_vec).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(|e| e.as_slice()).collect();
    sha256(&parts)
}

/// Decoded rosters (by wire id) of one node, and the node's checked proofs of possession (shared
/// with the other services that load rosters).
#[derive(Default)]
pub struct RosterCache {
    rosters: Mutex<HashMap<[u8; 32], Arc<RoundRoster>>>,
    pops: PopCache,
}

const MAX_CACHED_ROSTERS: usize = 32;

use crate::sync::lock;

impl RosterCache {
    /// A roster seen before, by id.
    pub fn get(&self, id: &[u8]) -> Option<Arc<RoundRoster>> {
        let id: [u8; 32] = id.try_into().ok()?;
        lock(&self.rosters).get(&id).cloned()
    }

    fn remember(&self, r: Arc<RoundRoster>) {
        let mut map = lock(&self.rosters);
        if map.len() >= MAX_CACHED_ROSTERS && !map.contains_key(&r.id) {
            map.clear();
        }
        map.insert(r.id, r);
    }

    /// The node's checked proofs of possession.
    pub fn pops(&self) -> &PopCache {
        &self.pops
    }

    /// Whether `for_roster` would have to check proofs of possession (slow: run it off the
    /// runtime's workers then).
    pub fn needs_pop_checks(&self, roster: &Roster) -> bool {
        roster
            .servers
            .iter()
            .filter_map(|s| s.services.get(COSI_SERVICE))
            .any(|svc| !self.pops.is_checked(&svc.public, &svc.pop))
    }

    /// A roster given by a local caller (the root): every member must publish a cosi key whose
    /// proof of possession verifies (checked once per key).
    pub fn for_roster(&self, roster: &Roster) -> Result<Arc<RoundRoster>, String> {
        if roster.is_empty() {
            return Err("the roster is empty".into());
        }
        if roster.len() > MAX_ROSTER {
            return Err(format!("the roster has {} members, at most {MAX_ROSTER} are supported", roster.len()));
        }
        let mut wire = Vec::with_capacity(roster.len());
        let mut keys = Vec::with_capacity(roster.len());
        let mut seen = HashSet::new();
        for (i, s) in roster.servers.iter().enumerate() {
            if !seen.insert(s.public) {
                return Err(format!("roster member #{i} ({}) appears twice", s.public));
            }
            let svc = s
                .services
                .get(COSI_SERVICE)
                .ok_or_else(|| format!("roster member #{i} ({}) publishes no `{COSI_SERVICE}` key", s.public))?;
            let kb = svc.public.to_bytes();
            self.pops
                .check(&svc.public, &svc.pop)
                .map_err(|e| format!("roster member #{i} ({}): `{COSI_SERVICE}` key: {e}", s.public))?;
            keys.push(svc.public);
            wire.push(Member {
                public: s.public.as_bytes().to_vec(),
                address: s.address.to_string(),
                cosi_public: kb.to_vec(),
            });
        }
        let id = wire_id(&wire);
        let r = Arc::new(round_roster(id, roster.servers.clone(), keys, wire));
        self.remember(r.clone());
        Ok(r)
    }

    /// A roster received from a peer. Keys are decoded and group-checked; PoPs are the root's
    /// business (the final signature is only ever accepted against a PoP-checked roster).
    pub fn for_wire(&self, wire: &[Member]) -> Result<Arc<RoundRoster>, String> {
        if wire.is_empty() {
            return Err("the roster is empty".into());
        }
        if wire.len() > MAX_ROSTER {
            return Err(format!("the roster has {} members, at most {MAX_ROSTER} are supported", wire.len()));
        }
        let id = wire_id(wire);
        if let Some(r) = self.get(&id) {
            return Ok(r);
        }
        let mut servers = Vec::with_capacity(wire.len());
        let mut keys = Vec::with_capacity(wire.len());
        let mut seen = HashSet::new();
        for (i, m) in wire.iter().enumerate() {
            let public = IdentityPublicKey::from_bytes(&m.public)
                .map_err(|e| format!("roster member #{i}: identity key: {e}"))?;
            if !seen.insert(public) {
                return Err(format!("roster member #{i} ({public}) appears twice"));
            }
            let address = NodeAddress::parse(&m.address).map_err(|e| format!("roster member #{i}: address: {e}"))?;
            let key =
                BlsPublicKey::from_bytes(&m.cosi_public).map_err(|e| format!("roster member #{i}: cosi key: {e}"))?;
            keys.push(key);
            servers.push(ServerIdentity {
                address,
                public,
                description: String::new(),
                url: None,
                // Only the address and identity are needed to dial; keys are in `keys`.
                services: Default::default(),
            });
        }
        let r = Arc::new(round_roster(id, servers, keys, wire.to_vec()));
        self.remember(r.clone());
        Ok(r)
    }
}
