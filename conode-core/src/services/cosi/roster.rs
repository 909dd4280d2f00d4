//! The roster of a round in the form the protocol uses: members, cosi keys, its wire form, and a
//! small per-node cache so repeated rounds over the same roster skip decoding.
//!
//! - A roster given locally (the root's) has every member's cosi key decoded and its proof of
//!   possession checked: all of them as one batch (`crypto::verify_pops`), once per roster and
//!   node, remembered durably by roster id (a restart does not check them again).
//! - A roster received from a peer is only indexed: nothing of a member is decoded until the round
//!   needs it (a sub-leader dials its children; nobody but the root verifies).
//! - A sparse roster (what the root and sub-leaders send) holds only the entries its receiver
//!   needs (sender, receiver, the receiver's children) with their roster positions, so that no
//!   node but the root handles all n members: a cold round costs O(n) in all, not O(n²).

use super::messages::{Member, MAX_ROSTER};
use crate::config::{NodeAddress, Roster, ServerIdentity, COSI_SERVICE};
use crate::crypto::{sha256, BlsPublicKey, BlsSignature, IdentityPublicKey, PopCache};
use crate::kept::KeptMap;
use crate::storage::ServiceTree;
use prost::Message;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{debug, warn};

/// Name of the sled tree of checked rosters: roster id → sha256 of the PoPs that were checked.
pub const CHECKED_ROSTERS_TREE: &str = "CosiCheckedRosters";

/// A roster of a round (whole, or sparse: some entries with their positions).
pub struct RoundRoster {
    /// sha256 over the wire form; names the roster in the cache (as claimed by the sender for a
    /// sparse roster, which is never cached).
    pub id: [u8; 32],
    /// Roster size.
    size: usize,
    members: Vec<Member>,
    /// Roster index of each entry of `members` (empty: `members` is the whole roster).
    positions: Vec<usize>,
    servers: Vec<OnceLock<Result<ServerIdentity, String>>>,
    /// Cosi keys, decoded and PoP-checked: only for a roster given locally (empty otherwise).
    pub keys: Vec<BlsPublicKey>,
}

impl RoundRoster {
    pub fn len(&self) -> usize {
        self.size
    }

    /// Where member `i` is in `members`.
    fn entry(&self, i: usize) -> Option<usize> {
        if self.positions.is_empty() {
            (i < self.members.len()).then_some(i)
        } else {
            self.positions.iter().position(|&p| p == i)
        }
    }

    fn position(&self, entry: usize) -> usize {
        self.positions.get(entry).copied().unwrap_or(entry)
    }

    /// Index of the member with identity `key`.
    pub fn index_of(&self, key: &IdentityPublicKey) -> Option<usize> {
        self.members.iter().position(|m| m.public.as_slice() == key.as_bytes()).map(|k| self.position(k))
    }

    /// Whether member `i` is known here (always, for a whole roster).
    pub fn knows(&self, i: usize) -> bool {
        self.entry(i).is_some()
    }

    /// The wire entry of member `i`.
    pub fn member(&self, i: usize) -> Option<&Member> {
        self.entry(i).map(|k| &self.members[k])
    }

    /// Whether member `i` publishes `key` as its cosi key.
    pub fn has_cosi_key(&self, i: usize, key: &BlsPublicKey) -> bool {
        self.member(i).is_some_and(|m| m.cosi_public.as_slice() == key.to_bytes().as_slice())
    }

    /// Member `i` (decoded on first use; an error names what is wrong with it).
    pub fn server(&self, i: usize) -> Result<&ServerIdentity, String> {
        let k = self.entry(i).ok_or_else(|| format!("no roster member #{i} known here"))?;
        self.servers[k].get_or_init(|| decode_member(i, &self.members[k])).as_ref().map_err(|e| e.clone())
    }

    /// Identity key of member `i`, when it decodes.
    pub fn public(&self, i: usize) -> Option<IdentityPublicKey> {
        self.server(i).ok().map(|s| s.public)
    }
}

fn decode_member(i: usize, m: &Member) -> Result<ServerIdentity, String> {
    let public =
        IdentityPublicKey::from_bytes(&m.public).map_err(|e| format!("roster member #{i}: identity key: {e}"))?;
    let address = NodeAddress::parse(&m.address).map_err(|e| format!("roster member #{i}: address: {e}"))?;
    Ok(ServerIdentity {
        address,
        public,
        description: String::new(),
        url: None,
        // Only the address and identity are needed to dial; keys are in `keys`.
        services: Default::default(),
    })
}

fn wire_id(wire: &[Member]) -> [u8; 32] {
    // Length-delimited encodings: unambiguous, whatever the peer put in the fields.
    let encoded: Vec<Vec<u8>> = wire.iter().map(prost::Message::encode_length_delimited_to_vec).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(|e| e.as_slice()).collect();
    sha256(&parts)
}

/// Digest of a roster's PoPs (in roster order), stored beside its id once they all verified.
fn pops_digest(pops: &[&BlsSignature]) -> [u8; 32] {
    let bytes: Vec<[u8; 96]> = pops.iter().map(|p| p.to_bytes()).collect();
    let parts: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    sha256(&parts)
}

/// Decoded rosters (by wire id) of one node, the node's checked proofs of possession (shared
/// with the other services that load rosters), and the durable record of checked rosters.
pub struct RosterCache {
    rosters: Mutex<KeptMap<[u8; 32], Arc<RoundRoster>>>,
    pops: PopCache,
    /// Rosters whose PoPs all verified (none when the node has no storage for it).
    checked: Option<ServiceTree>,
}

/// Bytes of roster entries the cache keeps (a roster weighs its members' encoded size, so 32
/// announcements of the largest rosters a stranger may send cannot make it hold 6 MiB each).
const CACHED_ROSTER_BYTES: usize = 16 << 20;

use crate::sync::lock;

impl Default for RosterCache {
    /// A cache that remembers nothing across restarts.
    fn default() -> Self {
        Self::new(None)
    }
}

impl RosterCache {
    /// A cache that remembers checked rosters in `checked` across restarts.
    pub fn new(checked: Option<ServiceTree>) -> Self {
        Self { rosters: Mutex::new(KeptMap::new(CACHED_ROSTER_BYTES)), pops: PopCache::default(), checked }
    }

    /// A roster seen before, by id.
    pub fn get(&self, id: &[u8]) -> Option<Arc<RoundRoster>> {
        let id: [u8; 32] = id.try_into().ok()?;
        lock(&self.rosters).get(&id).cloned()
    }

    fn remember(&self, r: Arc<RoundRoster>) {
        let weight = 256 + r.members.iter().map(|m| 64 + m.encoded_len()).sum::<usize>();
        lock(&self.rosters).insert_weighing(r.id, r, weight);
    }

    /// The node's checked proofs of possession.
    pub fn pops(&self) -> &PopCache {
        &self.pops
    }

    /// Whether `for_roster` may have to check proofs of possession (slow: run it off the
    /// runtime's workers then).
    pub fn needs_pop_checks(&self, roster: &Roster) -> bool {
        roster
            .servers
            .iter()
            .filter_map(|s| s.services.get(COSI_SERVICE))
            .any(|svc| !self.pops.is_checked(&svc.public, &svc.pop))
    }

    /// Whether the roster `id` with these PoPs was checked before (possibly before a restart).
    fn checked_before(&self, id: &[u8; 32], digest: &[u8; 32]) -> bool {
        match self.checked.as_ref().map(|t| t.get(id)) {
            Some(Ok(Some(v))) => v.as_slice() == digest,
            Some(Err(e)) => {
                warn!(error = %e, "cosi: reading the checked rosters failed; checking the PoPs again");
                false
            }
            _ => false,
        }
    }

    /// A roster given by a local caller (the root): every member must publish a cosi key whose
    /// proof of possession verifies (checked as one batch, once per roster).
    pub fn for_roster(&self, roster: &Roster) -> Result<Arc<RoundRoster>, String> {
        self.local(roster, true)
    }

    /// [`Self::for_roster`] without the PoP checks (and not cached): for a first round that runs
    /// while the PoPs are checked beside it, whose outcome waits for that check.
    pub fn unchecked(&self, roster: &Roster) -> Result<Arc<RoundRoster>, String> {
        self.local(roster, false)
    }

    fn local(&self, roster: &Roster, check_pops: bool) -> Result<Arc<RoundRoster>, String> {
        if roster.is_empty() {
            return Err("the roster is empty".into());
        }
        if roster.len() > MAX_ROSTER {
            return Err(format!("the roster has {} members, at most {MAX_ROSTER} are supported", roster.len()));
        }
        let mut wire = Vec::with_capacity(roster.len());
        let mut keys = Vec::with_capacity(roster.len());
        let mut pops = Vec::with_capacity(roster.len());
        let mut seen = HashSet::new();
        for (i, s) in roster.servers.iter().enumerate() {
            if !seen.insert(s.public) {
                return Err(format!("roster member #{i} ({}) appears twice", s.public));
            }
            let svc = s
                .services
                .get(COSI_SERVICE)
                .ok_or_else(|| format!("roster member #{i} ({}) publishes no `{COSI_SERVICE}` key", s.public))?;
            keys.push(svc.public);
            pops.push(&svc.pop);
            wire.push(Member {
                public: s.public.as_bytes().to_vec(),
                address: s.address.to_string(),
                cosi_public: svc.public.to_bytes().to_vec(),
            });
        }
        let id = wire_id(&wire);
        let pairs: Vec<(&BlsPublicKey, &BlsSignature)> = keys.iter().zip(pops.iter().copied()).collect();
        if let Some(r) = self.get(&id) {
            // The usual case: the same roster as in the last round, all its PoPs checked.
            if r.keys.len() == r.len() && pairs.iter().all(|(k, p)| self.pops.is_checked(k, p)) {
                return Ok(r);
            }
        }
        let digest = pops_digest(&pops);
        if check_pops && self.checked_before(&id, &digest) {
            self.pops.mark_checked(&pairs);
        } else if check_pops {
            let fresh = pairs.iter().filter(|(k, p)| !self.pops.is_checked(k, p)).count();
            let verdicts = self.pops.check_all(&pairs);
            if let Some((i, e)) = verdicts.iter().enumerate().find_map(|(i, v)| v.as_ref().err().map(|e| (i, e))) {
                let s = &roster.servers[i];
                return Err(format!("roster member #{i} ({}): `{COSI_SERVICE}` key: {e}", s.public));
            }
            if let Some(tree) = &self.checked {
                if let Err(e) = tree.put(&id, &digest) {
                    warn!(error = %e, "cosi: could not record the checked roster");
                }
            }
            debug!(members = roster.len(), fresh, "cosi: proofs of possession checked");
        }
        let r = Arc::new(RoundRoster {
            id,
            size: wire.len(),
            positions: Vec::new(),
            servers: roster.servers.iter().map(|s| OnceLock::from(Ok(s.clone()))).collect(),
            members: wire,
            keys,
        });
        if check_pops {
            self.remember(r.clone());
        }
        Ok(r)
    }

    /// A sparse roster received from a peer: `entries[k]` is member `positions[k]` of a roster of
    /// `size` members. Checked for form only, never cached.
    pub fn sparse(
        &self,
        id: &[u8],
        size: usize,
        entries: Vec<Member>,
        positions: Vec<u32>,
    ) -> Result<Arc<RoundRoster>, String> {
        if size == 0 || size > MAX_ROSTER {
            return Err(format!("a roster of {size} members is not supported (at most {MAX_ROSTER})"));
        }
        if entries.len() != positions.len() || entries.len() > size {
            return Err("the roster entries do not match their positions".into());
        }
        let positions: Vec<usize> = positions.into_iter().map(|p| p as usize).collect();
        let mut seen_pos = HashSet::with_capacity(positions.len());
        if positions.iter().any(|&p| p >= size || !seen_pos.insert(p)) {
            return Err("bad roster positions".into());
        }
        let mut seen = HashSet::with_capacity(entries.len());
        for (k, m) in entries.iter().enumerate() {
            if m.public.len() != 32 || !seen.insert(m.public.as_slice()) {
                return Err(format!("roster member #{}: bad or repeated identity key", positions[k]));
            }
        }
        Ok(Arc::new(RoundRoster {
            id: id.try_into().unwrap_or([0; 32]),
            size,
            servers: (0..entries.len()).map(|_| OnceLock::new()).collect(),
            members: entries,
            positions,
            keys: Vec::new(),
        }))
    }

    /// A roster received from a peer, only indexed (see the module doc). PoPs and keys are the
    /// root's business: the final signature is only ever accepted against a PoP-checked roster.
    pub fn for_wire(&self, wire: Vec<Member>) -> Result<Arc<RoundRoster>, String> {
        if wire.is_empty() {
            return Err("the roster is empty".into());
        }
        if wire.len() > MAX_ROSTER {
            return Err(format!("the roster has {} members, at most {MAX_ROSTER} are supported", wire.len()));
        }
        let id = wire_id(&wire);
        if let Some(r) = self.get(&id) {
            return Ok(r);
        }
        let mut seen = HashSet::with_capacity(wire.len());
        for (i, m) in wire.iter().enumerate() {
            if m.public.len() != 32 {
                return Err(format!("roster member #{i}: identity key of {} bytes", m.public.len()));
            }
            if !seen.insert(m.public.as_slice()) {
                return Err(format!("roster member #{i} ({}) appears twice", hex::encode(&m.public)));
            }
        }
        let r = Arc::new(RoundRoster {
            id,
            size: wire.len(),
            positions: Vec::new(),
            servers: (0..wire.len()).map(|_| OnceLock::new()).collect(),
            members: wire,
            keys: Vec::new(),
        });
        self.remember(r.clone());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::crypto::BlsKeyPair;
    use crate::storage::Storage;

    fn roster(n: usize) -> Roster {
        Roster::new(
            (0..n)
                .map(|i| {
                    let addr = NodeAddress { host: "127.0.0.1".into(), port: 7000 + i as u16 };
                    NodeConfig::generate(addr, format!("n{i}")).server_identity()
                })
                .collect(),
        )
    }

    #[test]
    fn a_bad_pop_among_many_is_named_and_never_cached() {
        let mut r = roster(24);
        let other = BlsKeyPair::generate();
        r.servers[17].services.get_mut(COSI_SERVICE).unwrap().pop = other.pop();
        let cache = RosterCache::default();
        let e = cache.for_roster(&r).err().unwrap();
        assert!(e.contains("roster member #17") && e.contains("proof of possession"), "{e}");
        assert!(cache.for_roster(&r).is_err(), "a failed roster is not remembered");
        // The good members' PoPs were remembered, the bad one was not.
        let svc = &r.servers[3].services[COSI_SERVICE];
        assert!(cache.pops().is_checked(&svc.public, &svc.pop));
        let bad = &r.servers[17].services[COSI_SERVICE];
        assert!(!cache.pops().is_checked(&bad.public, &bad.pop));
    }

    #[test]
    fn checked_rosters_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let r = roster(16);
        let id = {
            let storage = Storage::open(dir.path(), "node").unwrap();
            let cache = RosterCache::new(Some(storage.tree(CHECKED_ROSTERS_TREE).unwrap()));
            assert!(cache.needs_pop_checks(&r));
            let rr = cache.for_roster(&r).unwrap();
            assert!(!cache.needs_pop_checks(&r));
            rr.id
        };
        // A new cache on the reopened database: nothing checked in memory, the roster is on disk.
        let storage = Storage::open(dir.path(), "node").unwrap();
        let tree = storage.tree(CHECKED_ROSTERS_TREE).unwrap();
        assert!(tree.get(&id).unwrap().is_some());
        let cache = RosterCache::new(Some(tree.clone()));
        assert!(cache.needs_pop_checks(&r));
        assert_eq!(cache.for_roster(&r).unwrap().id, id);
        assert!(!cache.needs_pop_checks(&r), "the roster's PoPs count as checked");
        // The record holds for these PoPs only: the same keys with a wrong PoP are checked again.
        let mut bad = r.clone();
        let other = BlsKeyPair::generate();
        bad.servers[5].services.get_mut(COSI_SERVICE).unwrap().pop = other.pop();
        let fresh = RosterCache::new(Some(tree));
        assert!(fresh.for_roster(&bad).err().unwrap().contains("roster member #5"));
    }

    #[test]
    fn wire_rosters_are_indexed_without_decoding() {
        let r = roster(8);
        let checked = RosterCache::default().for_roster(&r).unwrap();
        let wire: Vec<Member> = checked.members.clone();
        let cache = RosterCache::default();
        let w = cache.for_wire(wire.clone()).unwrap();
        assert_eq!(w.id, checked.id);
        assert_eq!(w.index_of(&r.servers[6].public), Some(6));
        assert!(w.has_cosi_key(6, &r.servers[6].services[COSI_SERVICE].public));
        assert!(!w.has_cosi_key(5, &r.servers[6].services[COSI_SERVICE].public));
        assert_eq!(w.server(2).unwrap().address, r.servers[2].address);
        // A member that does not decode is an error when (and only when) it is needed.
        let mut broken = wire.clone();
        broken[3].address = "nonsense".into();
        let b = cache.for_wire(broken).unwrap();
        assert!(b.server(3).unwrap_err().contains("roster member #3"));
        assert!(b.server(4).is_ok());
        let mut dup = wire.clone();
        dup[1].public = dup[0].public.clone();
        assert!(cache.for_wire(dup).err().unwrap().contains("appears twice"));
    }

    #[test]
    fn wire_rosters_kept_are_bounded_in_bytes() {
        let cache = RosterCache::default();
        // Distinct rosters of the largest size, each member with a long address: far more bytes
        // than the budget if each were kept.
        let member = |r: usize, i: usize| Member {
            public: sha256(&[&r.to_le_bytes(), &i.to_le_bytes()]).to_vec(),
            address: format!("tls://{}:7000", "h".repeat(200)),
            ..Default::default()
        };
        for r in 0..40 {
            let wire: Vec<Member> = (0..MAX_ROSTER).map(|i| member(r, i)).collect();
            cache.for_wire(wire).unwrap();
        }
        let kept = lock(&cache.rosters);
        assert!(kept.weight() <= CACHED_ROSTER_BYTES, "{} bytes kept", kept.weight());
        assert!(kept.len() >= 2 && kept.len() < 40, "{} rosters kept", kept.len());
    }

    #[test]
    fn sparse_rosters_know_only_their_entries() {
        let r = roster(8);
        let checked = RosterCache::default().for_roster(&r).unwrap();
        let cache = RosterCache::default();
        let entries = vec![checked.members[0].clone(), checked.members[5].clone()];
        let s = cache.sparse(&checked.id, 8, entries.clone(), vec![0, 5]).unwrap();
        assert_eq!(s.len(), 8);
        assert_eq!(s.index_of(&r.servers[5].public), Some(5));
        assert_eq!(s.index_of(&r.servers[3].public), None);
        assert!(s.knows(0) && s.knows(5) && !s.knows(3));
        assert!(s.has_cosi_key(5, &r.servers[5].services[COSI_SERVICE].public));
        assert_eq!(s.server(5).unwrap().address, r.servers[5].address);
        assert!(s.server(3).is_err());
        assert!(cache.get(&checked.id).is_none(), "sparse rosters are not cached");
        assert!(cache.sparse(&checked.id, 8, entries.clone(), vec![0]).is_err());
        assert!(cache.sparse(&checked.id, 8, entries.clone(), vec![0, 8]).is_err());
        assert!(cache.sparse(&checked.id, 8, entries.clone(), vec![5, 5]).is_err());
        assert!(cache.sparse(&checked.id, 0, entries.clone(), vec![0, 5]).is_err());
        let same = vec![entries[0].clone(), entries[0].clone()];
        assert!(cache.sparse(&checked.id, 8, same, vec![0, 5]).is_err());
    }
}
