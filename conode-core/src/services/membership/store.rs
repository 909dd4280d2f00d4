//! What the membership service keeps in its sled tree, durably before it answers: this node's
//! state (and, for a joiner, its join request, so a restart while pending keeps it), proposals,
//! ballots and their outcomes, and the join requests members received.

use super::messages::{Ballot, JoinRequest, Proposal};
use crate::storage::{ServiceTree, Storage, StorageError};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The membership state of a node, as CCF names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// The service has not read its state yet (never reported by a running node).
    Uninitialized,
    /// Running, in no network and not joining one.
    Initialized,
    /// Sent a join request; waits for the members' vote.
    Pending,
    /// Voted in (its add_node block exists); catching up on the network chain.
    Trusted,
    /// In the roster of the newest network block it holds.
    PartOfNetwork,
    /// Was part of the network and was removed.
    Retired,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Uninitialized => "Uninitialized",
            NodeState::Initialized => "Initialized",
            NodeState::Pending => "Pending",
            NodeState::Trusted => "Trusted",
            NodeState::PartOfNetwork => "PartOfNetwork",
            NodeState::Retired => "Retired",
        }
    }
}

/// A joiner's request in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRecord {
    /// Client URL of the member asked first.
    pub target_url: String,
    /// Hex genesis id of the network.
    pub network: String,
    pub node_data: String,
    /// Hex identity key of the member the request went to (once sent).
    pub sent_to: Option<String>,
    /// Hex id of the add_node proposal made for it.
    pub proposal: Option<String>,
    /// Why the members refused it, once they did.
    pub refused: Option<String>,
}

/// This node's membership record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub state: NodeState,
    /// Hex genesis id of the network chain this node follows.
    pub network: Option<String>,
    /// Unix ms of the last state change.
    pub since_ms: u64,
    pub join: Option<JoinRecord>,
    /// Hex id of the network this node's operator founded (`MembershipService::create_network`):
    /// besides a join, the only network chain this node follows when it is in none.
    #[serde(default)]
    pub founding: Option<String>,
}

/// Where a proposal ended (absent: still open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// "accepted", "rejected", "failed" or "expired".
    pub state: String,
    pub reason: String,
    /// The network block that applied it (accepted).
    pub index: Option<u64>,
}

pub const TREE: &str = "Membership";

#[derive(Clone)]
pub struct MembershipStore {
    tree: ServiceTree,
    /// The ids under `open/`, read from the tree once and kept in step by the writes below: the
    /// service reviews them ten times a second, and a scan of sled each time cost an idle node
    /// more than all else it does.
    open: Arc<Mutex<Option<Vec<Vec<u8>>>>>,
    /// Join writes and `forget_closed`'s removal of joins, one at a time: a join request taken
    /// while old ones are forgotten is not forgotten with them.
    joins: Arc<Mutex<()>>,
}

/// A join's source for per-source limits (see [`crate::network::admission::source_key`]).
use crate::network::admission::{network_prefix, source_key};

fn key(prefix: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

impl MembershipStore {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self { tree: storage.tree(TREE)?, open: Default::default(), joins: Default::default() })
    }

    pub fn record(&self) -> Option<NodeRecord> {
        let v = self.tree.get(b"node").ok()??;
        serde_json::from_slice(&v).ok()
    }

    pub fn set_record(&self, r: &NodeRecord) -> Result<(), StorageError> {
        let v = serde_json::to_vec(r).unwrap_or_default();
        self.tree.put(b"node", &v)
    }

    /// Stores a proposal, open (listed by [`Self::open_ids`] until it has an outcome).
    pub fn put_proposal(&self, id: &[u8], p: &Proposal) -> Result<(), StorageError> {
        let mut open = crate::sync::lock(&self.open);
        self.tree.put_batch(&[(&key("p/", &[id]), &p.encode_to_vec()), (&key("open/", &[id]), &[])])?;
        if let Some(ids) = open.as_mut().filter(|ids| !ids.iter().any(|i| i == id)) {
            ids.push(id.to_vec());
            ids.sort();
        }
        Ok(())
    }

    /// Ids of the proposals without an outcome (what the periodic review looks at), in key order.
    pub fn open_ids(&self) -> Vec<Vec<u8>> {
        let mut open = crate::sync::lock(&self.open);
        open.get_or_insert_with(|| self.tree.scan_prefix(b"open/").map(|(k, _)| k[5..].to_vec()).collect()).clone()
    }

    pub fn proposal(&self, id: &[u8]) -> Option<Proposal> {
        Proposal::decode(self.tree.get(&key("p/", &[id])).ok()??.as_slice()).ok()
    }

    /// Every proposal, by id.
    pub fn proposals(&self) -> Vec<(Vec<u8>, Proposal)> {
        self.tree
            .scan_prefix(b"p/")
            .filter_map(|(k, v)| Some((k[2..].to_vec(), Proposal::decode(v.as_slice()).ok()?)))
            .collect()
    }

    pub fn put_ballot(&self, b: &Ballot) -> Result<(), StorageError> {
        self.tree.put(&key("b/", &[&b.proposal_id, &b.member]), &b.encode_to_vec())
    }

    pub fn ballot(&self, id: &[u8], member: &[u8]) -> Option<Ballot> {
        Ballot::decode(self.tree.get(&key("b/", &[id, member])).ok()??.as_slice()).ok()
    }

    pub fn ballots(&self, id: &[u8]) -> Vec<Ballot> {
        self.tree.scan_prefix(&key("b/", &[id])).filter_map(|(_, v)| Ballot::decode(v.as_slice()).ok()).collect()
    }

    pub fn set_outcome(&self, id: &[u8], o: &Outcome) -> Result<(), StorageError> {
        let mut open = crate::sync::lock(&self.open);
        self.tree.put(&key("o/", &[id]), &serde_json::to_vec(o).unwrap_or_default())?;
        // Forgotten first: should the removal fail, the next read scans the tree again.
        *open = None;
        self.tree.remove(&key("open/", &[id]))
    }

    pub fn outcome(&self, id: &[u8]) -> Option<Outcome> {
        serde_json::from_slice(&self.tree.get(&key("o/", &[id])).ok()??).ok()
    }

    /// A join request received from node `identity` (connected from `source`), with the proposal
    /// made for it (none yet when the governance members are separate keys).
    pub fn put_join(
        &self,
        identity: &[u8],
        source: Option<std::net::IpAddr>,
        req: &JoinRequest,
        proposal: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        let _one = crate::sync::lock(&self.joins);
        let by_source = key("js/", &[&source_key(source), identity]);
        let (j, jp) = (key("j/", &[identity]), key("jp/", &[identity]));
        let request = req.encode_to_vec();
        match proposal {
            Some(p) => self.tree.put_batch(&[(&j, &request), (&jp, p), (&by_source, &[])]),
            None => {
                // A new request replaces an old one (a removed node joining again); it waits
                // for a governance member from now on (see `unproposed_join_expired`).
                self.tree.remove(&jp)?;
                let received = super::service::now_ms().to_be_bytes();
                let jt = key("jt/", &[identity]);
                self.tree.put_batch(&[(&j, &request), (&by_source, &[]), (&jt, &received)])
            }
        }
    }

    /// Whether this node holds a join request of node `identity`.
    pub fn has_join(&self, identity: &[u8]) -> bool {
        self.tree.get(&key("j/", &[identity])).ok().flatten().is_some()
    }

    /// The join request of node `identity`, if this node holds one.
    pub fn join_request(&self, identity: &[u8]) -> Option<JoinRequest> {
        JoinRequest::decode(self.tree.get(&key("j/", &[identity])).ok()??.as_slice()).ok()
    }

    /// Forgets what closed (not accepted) and was made more than `keep_ms` before `now` (Unix
    /// ms): such proposals with their outcome and ballots (by their signed `created`), the join
    /// requests they answered, and join requests that waited that long for a governance member
    /// (by when they came; those kept by versions that did not record it stay). Strangers' joins
    /// and proposals nobody voted for would otherwise pile up for as long as the network lives.
    /// `keep_ms` must exceed every proposal's lifetime: a forgotten proposal sent again is then
    /// refused as expired, not taken as new. Removals are not flushed; each record's key that
    /// finds it (`p/`, `j/`) goes last, so what a crash keeps is found and forgotten by the next
    /// call. Returns (proposals, join requests) forgotten.
    pub fn forget_closed(&self, now: u64, keep_ms: u64) -> Result<(usize, usize), StorageError> {
        let old = |created: u64| created.saturating_add(keep_ms) < now;
        let closed = |id: &[u8]| self.outcome(id).is_some_and(|o| o.state != "accepted");
        let mut proposals = 0;
        for (id, p) in self.proposals() {
            if closed(&id) && old(p.created) {
                let mut keys: Vec<Vec<u8>> = self.tree.scan_prefix(&key("b/", &[&id])).map(|(k, _)| k).collect();
                keys.extend([key("open/", &[&id]), key("o/", &[&id]), key("p/", &[&id])]);
                for k in keys {
                    self.tree.forget(&k)?;
                }
                *crate::sync::lock(&self.open) = None;
                proposals += 1;
            }
        }
        let _one = crate::sync::lock(&self.joins);
        let mut gone = std::collections::HashSet::new();
        for (k, _) in self.tree.scan_prefix(b"j/") {
            let identity = &k[2..];
            let done = match self.join_proposal(identity) {
                // Its proposal forgotten above (or lost), or closed and old.
                Some(pid) => self.proposal(&pid).is_none_or(|p| closed(&pid) && old(p.created)),
                None => self
                    .tree
                    .get(&key("jt/", &[identity]))
                    .ok()
                    .flatten()
                    .is_some_and(|t| old(u64::from_be_bytes(t.as_slice().try_into().unwrap_or([u8::MAX; 8])))),
            };
            if done {
                gone.insert(identity.to_vec());
            }
        }
        if gone.is_empty() {
            return Ok((proposals, 0));
        }
        // By source (the identity ends the key) first, the request itself last.
        for (k, _) in self.tree.scan_prefix(b"js/") {
            if k.get(3 + 16..).is_some_and(|id| gone.contains(id)) {
                self.tree.forget(&k)?;
            }
        }
        for identity in &gone {
            for k in [key("jt/", &[identity]), key("jp/", &[identity]), key("j/", &[identity])] {
                self.tree.forget(&k)?;
            }
        }
        Ok((proposals, gone.len()))
    }

    /// Whether node `identity`'s join request, kept for the separate governance members, waited
    /// longer than an add_node proposal stays open (`ADD_NODE_LIFETIME`) without one of them
    /// proposing it: its slot is free, and the joiner is told so. (Requests kept by versions
    /// that did not record the time wait as before.)
    pub fn unproposed_join_expired(&self, identity: &[u8]) -> bool {
        let Some(received) = self.tree.get(&key("jt/", &[identity])).ok().flatten() else { return false };
        let received = u64::from_be_bytes(received.as_slice().try_into().unwrap_or([0; 8]));
        let lifetime = super::service::ADD_NODE_LIFETIME.as_millis() as u64;
        super::service::now_ms() >= received.saturating_add(lifetime)
    }

    /// Join requests this node holds that no proposal answers yet (and that have not expired), by
    /// identity.
    pub fn unproposed_joins(&self) -> Vec<(Vec<u8>, JoinRequest)> {
        self.tree
            .scan_prefix(b"j/")
            .filter(|(k, _)| self.join_proposal(&k[2..]).is_none() && !self.unproposed_join_expired(&k[2..]))
            .filter_map(|(k, v)| Some((k[2..].to_vec(), JoinRequest::decode(v.as_slice()).ok()?)))
            .collect()
    }

    /// Records proposal `proposal` (an add_node) as the answer to node `identity`'s join request.
    pub fn link_join(&self, identity: &[u8], proposal: &[u8]) -> Result<(), StorageError> {
        let _one = crate::sync::lock(&self.joins);
        self.tree.put(&key("jp/", &[identity]), proposal)
    }

    /// Join requests from `source` whose proposal is still open.
    pub fn open_joins_from(&self, source: Option<std::net::IpAddr>) -> usize {
        let prefix = key("js/", &[&source_key(source)]);
        self.tree.scan_prefix(&prefix).filter(|(k, _)| self.is_open_join(&k[prefix.len()..])).count()
    }

    /// Join requests from the network of `source` (IPv4 /24, IPv6 /48) whose proposal is open.
    pub fn open_joins_from_network(&self, source: Option<std::net::IpAddr>) -> usize {
        let prefix = key("js/", &[&network_prefix(source)]);
        self.tree.scan_prefix(&prefix).filter(|(k, _)| k.len() > 3 + 16 && self.is_open_join(&k[3 + 16..])).count()
    }

    /// Whether node `identity`'s join request waits: not proposed yet, or its proposal is open.
    fn is_open_join(&self, identity: &[u8]) -> bool {
        if !self.has_join(identity) {
            return false;
        }
        match self.join_proposal(identity) {
            Some(pid) => self.outcome(&pid).is_none(),
            None => !self.unproposed_join_expired(identity),
        }
    }

    pub fn join_proposal(&self, identity: &[u8]) -> Option<Vec<u8>> {
        self.tree.get(&key("jp/", &[identity])).ok()?
    }

    /// Join requests still waiting: not proposed yet, or whose proposal is open (closed ones do
    /// not count against the members' limit, so a long-lived network keeps taking joins).
    pub fn open_joins(&self) -> usize {
        self.tree.scan_prefix(b"j/").filter(|(k, _)| self.is_open_join(&k[2..])).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_joins_are_counted_by_source_and_by_network() {
        let dir = tempfile::tempdir().unwrap();
        let store = MembershipStore::open(&Storage::open(dir.path(), "membership-test").unwrap()).unwrap();
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let joins = [
            ("10.1.2.3", b"a"),
            ("10.1.2.4", b"b"),
            ("10.1.3.4", b"c"),
            ("2001:db8:1:2::1", b"d"),
            ("2001:db8:1:3::1", b"e"),
            ("2001:db8:2:2::1", b"f"),
        ];
        for (source, identity) in joins {
            store.put_join(identity, ip(source), &JoinRequest::default(), None).unwrap();
        }
        assert_eq!(store.open_joins_from(ip("10.1.2.3")), 1);
        assert_eq!(store.open_joins_from_network(ip("10.1.2.200")), 2, "one /24");
        assert_eq!(store.open_joins_from_network(ip("10.1.3.1")), 1);
        assert_eq!(store.open_joins_from_network(ip("::ffff:10.1.2.9")), 2, "IPv4-mapped is IPv4");
        assert_eq!(store.open_joins_from(ip("2001:db8:1:2::99")), 1, "one /64");
        assert_eq!(store.open_joins_from_network(ip("2001:db8:1:ffff::1")), 2, "one /48");
        assert_eq!(store.open_joins_from_network(ip("2001:db8:2::1")), 1);
        assert_eq!(store.open_joins_from_network(None), 0);
        // An IPv6 source in ::/48 is no network of IPv4 sources (their keys share the first bytes).
        assert_eq!(store.open_joins_from_network(ip("::1")), 0);
        assert_eq!(store.open_joins_from_network(ip("::10.1.2.3")), 0);
        // A join whose proposal closed is no longer open.
        store.link_join(b"a", b"p-a").unwrap();
        let outcome = Outcome { state: "rejected".into(), reason: String::new(), index: None };
        store.set_outcome(b"p-a", &outcome).unwrap();
        assert_eq!(store.open_joins_from_network(ip("10.1.2.200")), 1);
        assert_eq!(store.open_joins(), 5);
    }

    #[test]
    fn join_requests_no_member_proposes_expire_after_the_add_node_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let store = MembershipStore::open(&Storage::open(dir.path(), "membership-test").unwrap()).unwrap();
        let ip = Some("10.1.2.3".parse::<std::net::IpAddr>().unwrap());
        for identity in [b"a", b"b"] {
            store.put_join(identity, ip, &JoinRequest::default(), None).unwrap();
        }
        assert_eq!((store.open_joins(), store.open_joins_from(ip), store.unproposed_joins().len()), (2, 2, 2));
        // `a` came in a lifetime ago (as its record says): its slot is free, it is listed no more.
        let lifetime = super::super::service::ADD_NODE_LIFETIME.as_millis() as u64;
        let then = (super::super::service::now_ms() - lifetime - 1).to_be_bytes();
        store.tree.put(&key("jt/", &[b"a"]), &then).unwrap();
        assert!(store.unproposed_join_expired(b"a") && !store.unproposed_join_expired(b"b"));
        assert_eq!((store.open_joins(), store.open_joins_from(ip), store.open_joins_from_network(ip)), (1, 1, 1));
        assert_eq!(store.unproposed_joins().iter().map(|(id, _)| id.as_slice()).collect::<Vec<_>>(), [b"b"]);
        // Sent again, it waits anew; one kept by an older version (no time) waits as before.
        store.put_join(b"a", ip, &JoinRequest::default(), None).unwrap();
        assert_eq!(store.open_joins(), 2);
        store.tree.remove(&key("jt/", &[b"b"])).unwrap();
        assert!(!store.unproposed_join_expired(b"b"));
    }

    #[test]
    fn proposals_and_joins_closed_long_ago_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = MembershipStore::open(&Storage::open(dir.path(), "membership-test").unwrap()).unwrap();
        let ip = Some("10.1.2.3".parse::<std::net::IpAddr>().unwrap());
        let (now, keep) = (1_000_000_000u64, 1_000u64);
        let closed = |state: &str| Outcome { state: state.into(), reason: String::new(), index: None };
        // (id, created, outcome, joiner)
        type Case<'a> = (&'a [u8], u64, Option<&'a str>, &'a [u8]);
        let cases: [Case<'_>; 5] = [
            (b"old-rejected", now - 2 * keep, Some("rejected"), b"j-old-rejected"),
            (b"old-expired", now - 2 * keep, Some("expired"), b"j-old-expired"),
            (b"old-accepted", now - 2 * keep, Some("accepted"), b"j-old-accepted"),
            (b"old-open", now - 2 * keep, None, b"j-old-open"),
            (b"new-rejected", now - keep / 2, Some("rejected"), b"j-new-rejected"),
        ];
        for (id, created, outcome, joiner) in cases {
            store.put_proposal(id, &Proposal { created, ..Default::default() }).unwrap();
            store
                .put_ballot(&Ballot { proposal_id: id.to_vec(), member: b"m".to_vec(), ..Default::default() })
                .unwrap();
            if let Some(state) = outcome {
                store.set_outcome(id, &closed(state)).unwrap();
            }
            store.put_join(joiner, ip, &JoinRequest::default(), Some(id)).unwrap();
        }
        // A join request no governance member proposed, waiting since long ago, and a recent one.
        store.put_join(b"j-unproposed-old", ip, &JoinRequest::default(), None).unwrap();
        store.tree.put(&key("jt/", &[b"j-unproposed-old"]), &(now - 2 * keep).to_be_bytes()).unwrap();
        store.put_join(b"j-unproposed-new", ip, &JoinRequest::default(), None).unwrap();
        store.tree.put(&key("jt/", &[b"j-unproposed-new"]), &(now - keep / 2).to_be_bytes()).unwrap();

        assert_eq!(store.forget_closed(now, keep).unwrap(), (2, 3));
        let kept: Vec<Vec<u8>> = store.proposals().into_iter().map(|(id, _)| id).collect();
        assert_eq!(kept, [b"new-rejected".to_vec(), b"old-accepted".to_vec(), b"old-open".to_vec()]);
        assert!(store.ballots(b"old-rejected").is_empty() && store.outcome(b"old-expired").is_none());
        assert_eq!(store.ballots(b"new-rejected").len(), 1);
        for gone in [b"j-old-rejected".as_slice(), b"j-old-expired", b"j-unproposed-old"] {
            assert!(!store.has_join(gone) && store.join_proposal(gone).is_none(), "{gone:?}");
        }
        for kept in [b"j-old-accepted".as_slice(), b"j-old-open", b"j-new-rejected", b"j-unproposed-new"] {
            assert!(store.has_join(kept), "{kept:?}");
        }
        // The by-source entries went with them: the source's open joins are counted as before.
        assert_eq!(store.tree.scan_prefix(b"js/").count(), 4);
        assert_eq!(store.open_joins_from(ip), 1, "only j-old-open's proposal is open");
        // A by-source entry left without its request (a crash between removals) counts for nothing.
        store.tree.forget(&key("j/", &[b"j-old-open"])).unwrap();
        assert_eq!(store.open_joins_from(ip), 0);
        assert_eq!(store.forget_closed(now, keep).unwrap(), (0, 0));
    }

    #[test]
    fn open_ids_follow_the_writes_and_match_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "membership-test").unwrap();
        let store = MembershipStore::open(&storage).unwrap();
        assert!(store.open_ids().is_empty());
        for id in [b"b-proposal".as_slice(), b"a-proposal", b"c-proposal", b"a-proposal"] {
            store.put_proposal(id, &Proposal::default()).unwrap();
        }
        let want: Vec<Vec<u8>> = vec![b"a-proposal".to_vec(), b"b-proposal".to_vec(), b"c-proposal".to_vec()];
        assert_eq!(store.open_ids(), want);
        let outcome = Outcome { state: "accepted".into(), reason: String::new(), index: Some(1) };
        store.set_outcome(b"b-proposal", &outcome).unwrap();
        store.put_proposal(b"d-proposal", &Proposal::default()).unwrap();
        let want: Vec<Vec<u8>> = vec![b"a-proposal".to_vec(), b"c-proposal".to_vec(), b"d-proposal".to_vec()];
        assert_eq!(store.open_ids(), want);
        // What another handle reads from the tree itself is the same.
        assert_eq!(MembershipStore::open(&storage).unwrap().open_ids(), want);
    }
}
