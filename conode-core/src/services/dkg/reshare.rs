//! Resharing a running beacon group's secret to a new group, as a state machine without I/O (the
//! beacon service's `transition_protocol` drives it over the network). Old members deal a
//! polynomial whose constant term is their old share (signed like DKG deals, see
//! [`super::protocol`]); each new member checks every deal against the old public polynomial and
//! answers with signed responses; the qualified dealers are those every new member approved with the
//! same signed commitments, computed by each member from the same signed responses; the first
//! old-threshold of them (by old index) make the new shares and public polynomial (Lagrange at 0),
//! whose constant term must be the old group key. The math is in [`crate::crypto::threshold`].

use super::group::{key_group, Group, GroupNode, Reshared};
use super::messages::{status, Deal, Member, ResponseEntry, Responses};
use super::protocol::{commit_hash, commit_message, minimum_threshold, share_message, MAX_PHASE, MIN_PHASE};
use crate::config::NodeAddress;
use crate::crypto::threshold::{check_reshare, combine_reshares, AnyPubPoly, PriPoly, PubPoly, Scalar};
use crate::crypto::threshold::{Point, ThresholdError};
use crate::crypto::{sha256, IdentityKeyPair, IdentityPublicKey};
pub use crate::wire::reshare::{
    ReshareConfig, ReshareDone, ReshareFetch, ReshareFinish, ReshareGo, ResharePrepare, ReshareRequest, ReshareResponse,
};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Peer service name of the resharing protocol.
pub const SERVICE: &str = "Reshare";

/// Protocol names inside the `Reshare` service.
pub mod protocol {
    pub const PREPARE: &str = "Prepare";
    pub const GO: &str = "Go";
    pub const DEAL: &str = "Deal";
    pub const RESPONSES: &str = "Responses";
    pub const FINISH: &str = "Finish";
    pub const FETCH: &str = "Fetch";
}

/// Longest old group file accepted in a configuration.
pub const MAX_GROUP_TOML: usize = 256 * 1024;

/// Why a resharing step failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReshareError {
    #[error("invalid resharing configuration: {0}")]
    Config(String),
    #[error("resharing message from {0}: {1}")]
    Malformed(String, String),
    #[error("resharing message from {0}: bad signature")]
    BadSignature(String),
    #[error("only {have} old members deal, {need} (the old threshold) needed")]
    NotEnoughDealers { have: usize, need: usize },
    #[error("only {have} dealers qualified, {need} (the old threshold) needed")]
    NotEnoughQualified { have: usize, need: usize },
    #[error("new member {0} sent no responses")]
    MissingResponses(u32),
    #[error("resharing failed: {0}")]
    Math(#[from] ThresholdError),
    #[error("{0}")]
    Refused(String),
}

/// The session id of a configuration.
pub fn session_id(config: &ReshareConfig) -> [u8; 32] {
    sha256(&[b"conode-reshare-v1", &config.encode_to_vec()])
}

/// A checked configuration with everything decoded.
#[derive(Clone, Debug)]
pub struct ReshareParams {
    pub session: [u8; 32],
    pub config: ReshareConfig,
    pub old: Group,
    /// New members' identity keys and addresses, by new share index.
    pub members: Vec<IdentityPublicKey>,
    pub addresses: Vec<NodeAddress>,
    pub threshold: usize,
    pub phase: Duration,
    pub leader: IdentityPublicKey,
}

fn member_key(i: usize, m: &Member) -> Result<(IdentityPublicKey, NodeAddress), ReshareError> {
    let k = IdentityPublicKey::from_bytes(&m.public).map_err(|e| ReshareError::Config(format!("member {i}: {e}")))?;
    let a = NodeAddress::parse(&m.address).map_err(|e| ReshareError::Config(format!("member {i}: {e}")))?;
    if m.description.len() > super::messages::MAX_TEXT {
        return Err(ReshareError::Config(format!("member {i}: description too long")));
    }
    Ok((k, a))
}

impl ReshareParams {
    /// Checks a configuration: sizes, keys, the old group file and its members, the threshold,
    /// the phase length, the leader (an old member).
    pub fn new(config: ReshareConfig) -> Result<Self, ReshareError> {
        let n = config.members.len();
        if n == 0 || n > super::messages::MAX_MEMBERS || config.old_members.len() > super::messages::MAX_MEMBERS {
            return Err(ReshareError::Config(format!("new group of {n} members")));
        }
        if config.old_group_toml.len() > MAX_GROUP_TOML || config.nonce.len() > 64 {
            return Err(ReshareError::Config("old group file or nonce too large".into()));
        }
        let old = Group::from_toml(&config.old_group_toml).map_err(ReshareError::Config)?;
        let mut members = Vec::with_capacity(n);
        let mut addresses = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        for (i, m) in config.members.iter().enumerate() {
            let (k, a) = member_key(i, m)?;
            if !seen.insert(k) {
                return Err(ReshareError::Config(format!("member {i}: duplicate key")));
            }
            members.push(k);
            addresses.push(a);
        }
        let listed: Vec<IdentityPublicKey> = config
            .old_members
            .iter()
            .enumerate()
            .map(|(i, m)| member_key(i, m).map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        let in_group: Vec<IdentityPublicKey> = old.nodes.iter().map(|n| n.public).collect();
        if listed != in_group {
            return Err(ReshareError::Config("old members differ from the old group file".into()));
        }
        let t = config.threshold as usize;
        if t < minimum_threshold(n) || t > n {
            return Err(ReshareError::Config(format!(
                "threshold {t} for {n} members (allowed {}..={n})",
                minimum_threshold(n)
            )));
        }
        let phase = Duration::from_millis(config.phase_timeout_ms);
        if !(MIN_PHASE..=MAX_PHASE).contains(&phase) {
            return Err(ReshareError::Config(format!("phase timeout {phase:?} outside {MIN_PHASE:?}..={MAX_PHASE:?}")));
        }
        let leader =
            IdentityPublicKey::from_bytes(&config.leader).map_err(|e| ReshareError::Config(format!("leader: {e}")))?;
        if old.index_of(&leader).is_none() {
            return Err(ReshareError::Config("the leader is not a member of the old group".into()));
        }
        if config.transition_round < 2 {
            return Err(ReshareError::Config("transition round must be at least 2".into()));
        }
        Ok(Self { session: session_id(&config), config, old, members, addresses, threshold: t, phase, leader })
    }

    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// This node's new share index, if it is in the new group.
    pub fn new_index(&self, key: &IdentityPublicKey) -> Option<u32> {
        self.members.iter().position(|k| k == key).map(|i| i as u32)
    }

    /// The old threshold (how many dealers are needed).
    pub fn old_threshold(&self) -> usize {
        self.old.threshold as usize
    }

    /// The identity of new member `i` as a network peer.
    pub fn new_member(&self, i: u32) -> Option<GroupNode> {
        let m = self.config.members.get(i as usize)?;
        Some(GroupNode {
            index: i,
            public: self.members[i as usize],
            address: self.addresses[i as usize].clone(),
            description: m.description.clone(),
        })
    }

    /// The new group once its public polynomial is known.
    pub fn new_group(&self, public_poly: AnyPubPoly, qualified: Vec<u32>) -> Group {
        Group {
            scheme: self.old.scheme,
            beacon_id: self.old.beacon_id.clone(),
            period: self.old.period,
            genesis_time: self.old.genesis_time,
            threshold: self.threshold as u32,
            nodes: (0..self.n() as u32).filter_map(|i| self.new_member(i)).collect(),
            qualified,
            public_poly,
            session: self.session,
            reshare: Some(Reshared {
                genesis_seed: self.old.genesis_seed(),
                transition_round: self.config.transition_round,
            }),
        }
    }
}

/// An old member's deals: a random polynomial of the new degree with its old share as constant
/// term, one signed deal per new member. `corrupt_for`: new indices that get a wrong (but signed)
/// share (fault injection for tests).
pub fn make_deals(
    p: &ReshareParams,
    identity: &IdentityKeyPair,
    old_index: u32,
    old_share: &Scalar,
    corrupt_for: &BTreeSet<u32>,
) -> Vec<Deal> {
    let poly = PriPoly::with_secret(*old_share, p.threshold, &mut rand::rngs::OsRng);
    let commitments = AnyPubPoly::commit(&poly, key_group(p.old.scheme)).to_bytes();
    let hash = commit_hash(&commitments);
    let session = p.session.to_vec();
    let commit_sig = identity.sign(&commit_message(&session, old_index, &hash)).to_vec();
    (0..p.n() as u32)
        .filter_map(|r| {
            let mut s = poly.share(r).ok()?;
            if corrupt_for.contains(&r) {
                s = s.add(&Scalar::one());
            }
            let share = s.to_bytes().to_vec();
            let share_sig = identity.sign(&share_message(&session, old_index, r, &hash, &share)).to_vec();
            Some(Deal {
                session: session.clone(),
                dealer: old_index,
                recipient: r,
                commitments: commitments.clone(),
                commit_sig: commit_sig.clone(),
                share,
                share_sig,
            })
        })
        .collect()
}

/// A deal as its recipient judged it: the DKG's own record of a received deal.
type Judged = super::protocol::Received;

/// A new member's side of one resharing: the deals it received and its responses.
pub struct Recipient {
    params: ReshareParams,
    identity: IdentityKeyPair,
    me: u32,
    dealers: BTreeSet<u32>,
    deals: BTreeMap<u32, Judged>,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient(new index {}, {} deals)", self.me, self.deals.len())
    }
}

/// The new member's result: its share, the new public polynomial and who dealt.
#[derive(Clone)]
pub struct ReshareResult {
    pub group: Group,
    pub index: u32,
    pub share: Scalar,
}

impl fmt::Debug for ReshareResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReshareResult(index {}, qualified {:?})", self.index, self.group.qualified)
    }
}

fn responses_message(r: &Responses) -> Vec<u8> {
    let mut c = r.clone();
    c.signature.clear();
    [b"conode-reshare-responses-v1".as_slice(), &c.encode_to_vec()].concat()
}

impl Recipient {
    pub fn new(params: ReshareParams, identity: IdentityKeyPair) -> Result<Self, ReshareError> {
        let me = params
            .new_index(&identity.public())
            .ok_or_else(|| ReshareError::Config("this node is not in the new group".into()))?;
        Ok(Self { params, identity, me, dealers: BTreeSet::new(), deals: BTreeMap::new() })
    }

    pub fn me(&self) -> u32 {
        self.me
    }

    /// The dealers the leader announced (`Go`), old share indices of the old group.
    pub fn set_dealers(&mut self, dealers: &[u32]) -> Result<(), ReshareError> {
        let set: BTreeSet<u32> = dealers.iter().copied().collect();
        if set.len() != dealers.len() || set.iter().any(|d| self.params.old.node(*d).is_none()) {
            return Err(ReshareError::Malformed("leader".into(), "dealer list".into()));
        }
        if set.len() < self.params.old_threshold() {
            return Err(ReshareError::NotEnoughDealers { have: set.len(), need: self.params.old_threshold() });
        }
        self.dealers = set;
        Ok(())
    }

    pub fn have_all_deals(&self) -> bool {
        !self.dealers.is_empty() && self.dealers.iter().all(|d| self.deals.contains_key(d))
    }

    /// A deal from `from` (the TLS-authenticated sender). Unsigned deals are refused; signed but
    /// wrong ones are kept as evidence of a bad dealer.
    pub fn receive_deal(&mut self, from: &IdentityPublicKey, deal: Deal) -> Result<(), ReshareError> {
        let who = format!("old member {}", deal.dealer);
        let p = &self.params;
        if deal.session != p.session {
            return Err(ReshareError::Malformed(who, "another session".into()));
        }
        // A deal may overtake the leader's `Go` here: any old member may deal; only those of
        // `Go` are answered about.
        let key = match p.old.node(deal.dealer) {
            Some(n) if &n.public == from => n.public,
            _ => return Err(ReshareError::Malformed(who, "deal not sent by its dealer".into())),
        };
        if deal.recipient != self.me {
            return Err(ReshareError::Malformed(who, "deal for another recipient".into()));
        }
        if deal.commitments.len() > super::messages::MAX_MEMBERS {
            return Err(ReshareError::Malformed(who, "too many commitments".into()));
        }
        if self.deals.contains_key(&deal.dealer) {
            return Ok(());
        }
        let hash = commit_hash(&deal.commitments);
        if !super::protocol::deal_signed(&key, &deal, &hash) {
            return Err(ReshareError::BadSignature(who));
        }
        let judged = match self.check(&deal) {
            Ok((commits, share)) => Judged::Good { commits, hash, sig: deal.commit_sig.clone(), share },
            Err(reason) => {
                tracing::warn!(dealer = deal.dealer, %reason, "reshare: received a bad deal");
                Judged::Bad { deal: deal.clone(), reason }
            }
        };
        self.deals.insert(deal.dealer, judged);
        Ok(())
    }

    /// Whether a signed deal is right: the new degree, its constant term the dealer's old public
    /// share, the share on its commitments.
    fn check(&self, deal: &Deal) -> Result<(AnyPubPoly, Scalar), String> {
        let p = &self.params;
        if deal.commitments.len() != p.threshold {
            return Err(format!("{} commitments instead of {}", deal.commitments.len(), p.threshold));
        }
        let group = p.old.public_poly.group();
        let commits = AnyPubPoly::from_bytes(group, &deal.commitments).map_err(|e| format!("commitments: {e}"))?;
        let share = Scalar::from_bytes(&deal.share).map_err(|e| format!("share: {e}"))?;
        check_one(&p.old.public_poly, deal.dealer, &commits, self.me, &share).map_err(|e| e.to_string())?;
        Ok((commits, share))
    }

    /// The complaints so far: dealers without a deal or with a bad one, and why.
    pub fn complaints(&self) -> Vec<(u32, String)> {
        self.dealers
            .iter()
            .filter_map(|d| match self.deals.get(d) {
                None => Some((*d, "no deal".to_string())),
                Some(Judged::Bad { reason, .. }) => Some((*d, format!("bad deal: {reason}"))),
                Some(Judged::Good { .. }) => None,
            })
            .collect()
    }

    /// This node's signed responses about every dealer.
    pub fn make_responses(&self) -> Responses {
        let entries = self
            .dealers
            .iter()
            .map(|&d| match self.deals.get(&d) {
                Some(Judged::Good { hash, sig, .. }) => ResponseEntry {
                    dealer: d,
                    status: status::APPROVE,
                    commit_hash: hash.to_vec(),
                    commit_sig: sig.clone(),
                    evidence: None,
                },
                Some(Judged::Bad { deal, .. }) => ResponseEntry {
                    dealer: d,
                    status: status::BAD_DEAL,
                    evidence: Some(deal.clone()),
                    ..Default::default()
                },
                None => ResponseEntry { dealer: d, status: status::NO_DEAL, ..Default::default() },
            })
            .collect();
        let mut r = Responses { session: self.params.session.to_vec(), from: self.me, entries, signature: vec![] };
        r.signature = self.identity.sign(&responses_message(&r)).to_vec();
        r
    }

    /// The new share and group from the qualified dealers (see [`qualified`]).
    pub fn finish(&self, qualified: &[u32]) -> Result<ReshareResult, ReshareError> {
        let t = self.params.old_threshold();
        if qualified.len() < t {
            return Err(ReshareError::NotEnoughQualified { have: qualified.len(), need: t });
        }
        let mut used = Vec::with_capacity(t);
        for d in &qualified[..t] {
            match self.deals.get(d) {
                Some(Judged::Good { commits, share, .. }) => used.push((*d, commits.clone(), *share)),
                _ => return Err(ReshareError::Refused(format!("no valid deal of qualified dealer {d} here"))),
            }
        }
        let (share, poly) = combine_any(&self.params.old.public_poly, self.me, &used)?;
        if poly.public_key_bytes() != self.params.old.public_key() {
            return Err(ReshareError::Math(ThresholdError::KeyChanged));
        }
        let group = self.params.new_group(poly, qualified[..t].to_vec());
        Ok(ReshareResult { group, index: self.me, share })
    }
}

impl super::DkgService {
    /// Whether this node dealt in resharing (or DKG) session `session` before (a restart included).
    pub fn has_dealt(&self, session: &[u8]) -> bool {
        self.inner.tree.get(&super::session::dealt_key(session)).ok().flatten().is_some()
    }

    /// Records durably, before the first deal leaves, that this node deals in `session`: a node
    /// restarted mid-way would deal another polynomial (two different deals to one recipient).
    pub async fn record_dealt(&self, session: &[u8]) -> Result<(), ReshareError> {
        self.inner
            .tree
            .put_async(&super::session::dealt_key(session), b"")
            .await
            .map_err(|e| ReshareError::Refused(format!("could not record the deal durably: {e}")))
    }
}

fn finish_message(f: &ReshareFinish) -> Vec<u8> {
    let mut c = f.clone();
    c.signature.clear();
    [b"conode-reshare-finish-v1".as_slice(), &c.encode_to_vec()].concat()
}

/// The leader's `Finish`: every new member's responses and the dealers of `Go`, signed by the
/// leader so that any participant can forward it and no one can forge or alter it.
pub fn sign_finish(
    p: &ReshareParams,
    leader: &IdentityKeyPair,
    dealers: &[u32],
    responses: Vec<Responses>,
) -> ReshareFinish {
    let mut f = ReshareFinish { session: p.session.to_vec(), responses, dealers: dealers.to_vec(), signature: vec![] };
    f.signature = leader.sign(&finish_message(&f)).to_vec();
    f
}

/// Checks a `Finish` (from the leader or forwarded by anyone): this session, signed by this
/// session's leader, dealers old share indices (no repeats), every new member's valid responses.
/// Returns the qualified dealers (the same on every member, see [`qualified`]).
pub fn check_finish(p: &ReshareParams, f: &ReshareFinish) -> Result<Vec<u32>, ReshareError> {
    let who = || "leader".to_string();
    if f.session != p.session {
        return Err(ReshareError::Malformed(who(), "finish of another session".into()));
    }
    if f.dealers.len() > p.old.nodes.len()
        || f.dealers.iter().collect::<BTreeSet<_>>().len() != f.dealers.len()
        || f.dealers.iter().any(|d| p.old.node(*d).is_none())
    {
        return Err(ReshareError::Malformed(who(), "finish dealers".into()));
    }
    if f.responses.len() > p.n() {
        return Err(ReshareError::Malformed(who(), "too many responses".into()));
    }
    p.leader.verify(&finish_message(f), &f.signature).map_err(|_| ReshareError::BadSignature(who()))?;
    qualified(p, &f.dealers, &f.responses)
}

/// Checks every new member's signed responses (exactly one each) and returns the qualified dealers,
/// sorted: those every new member approved, with one and the same commitment hash signed by the
/// dealer. Deterministic: every member holding the same responses computes the same set.
pub fn qualified(p: &ReshareParams, dealers: &[u32], responses: &[Responses]) -> Result<Vec<u32>, ReshareError> {
    if responses.len() > p.n() {
        return Err(ReshareError::Malformed("leader".into(), "too many responses".into()));
    }
    let mut by_member: BTreeMap<u32, &Responses> = BTreeMap::new();
    for r in responses {
        let who = format!("new member {}", r.from);
        let key = p.members.get(r.from as usize).ok_or_else(|| ReshareError::Malformed(who.clone(), "index".into()))?;
        if r.session != p.session || r.entries.len() > super::messages::MAX_MEMBERS {
            return Err(ReshareError::Malformed(who, "responses".into()));
        }
        key.verify(&responses_message(r), &r.signature).map_err(|_| ReshareError::BadSignature(who.clone()))?;
        if by_member.insert(r.from, r).is_some() {
            return Err(ReshareError::Malformed(who, "two responses".into()));
        }
    }
    if let Some(missing) = (0..p.n() as u32).find(|i| !by_member.contains_key(i)) {
        return Err(ReshareError::MissingResponses(missing));
    }
    let mut out = Vec::new();
    for &d in dealers.iter().collect::<BTreeSet<_>>() {
        let Some(node) = p.old.node(d) else { continue };
        let mut hashes = BTreeSet::new();
        let all = by_member.values().all(|r| {
            r.entries.iter().find(|e| e.dealer == d).is_some_and(|e| {
                let ok = e.status == status::APPROVE
                    && <[u8; 32]>::try_from(e.commit_hash.as_slice())
                        .is_ok_and(|h| node.public.verify(&commit_message(&p.session, d, &h), &e.commit_sig).is_ok());
                if ok {
                    hashes.insert(e.commit_hash.clone());
                }
                ok
            })
        });
        if all && hashes.len() == 1 {
            out.push(d);
        }
    }
    Ok(out)
}

fn check_one(
    old: &AnyPubPoly,
    dealer: u32,
    commits: &AnyPubPoly,
    new_index: u32,
    share: &Scalar,
) -> Result<(), ThresholdError> {
    match (old, commits) {
        (AnyPubPoly::G1(o), AnyPubPoly::G1(c)) => check_reshare(o, dealer, c, new_index, share),
        (AnyPubPoly::G2(o), AnyPubPoly::G2(c)) => check_reshare(o, dealer, c, new_index, share),
        _ => Err(ThresholdError::Point("commitments in the wrong group")),
    }
}

fn combine_any(
    old: &AnyPubPoly,
    new_index: u32,
    deals: &[(u32, AnyPubPoly, Scalar)],
) -> Result<(Scalar, AnyPubPoly), ThresholdError> {
    fn go<P: Point>(
        old: &PubPoly<P>,
        new_index: u32,
        deals: &[(u32, AnyPubPoly, Scalar)],
        pick: impl Fn(&AnyPubPoly) -> Option<&PubPoly<P>>,
    ) -> Result<(Scalar, PubPoly<P>), ThresholdError> {
        let d: Vec<(u32, PubPoly<P>, Scalar)> = deals
            .iter()
            .map(|(i, c, s)| pick(c).map(|c| (*i, c.clone(), *s)).ok_or(ThresholdError::Point("commitments group")))
            .collect::<Result<_, _>>()?;
        combine_reshares(old, new_index, &d)
    }
    match old {
        AnyPubPoly::G1(o) => {
            let (s, p) = go(o, new_index, deals, |c| if let AnyPubPoly::G1(c) = c { Some(c) } else { None })?;
            Ok((s, AnyPubPoly::G1(p)))
        }
        AnyPubPoly::G2(o) => {
            let (s, p) = go(o, new_index, deals, |c| if let AnyPubPoly::G2(c) = c { Some(c) } else { None })?;
            Ok((s, AnyPubPoly::G2(p)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::threshold::recover_secret;
    use crate::verify::beacon::Scheme;

    struct Setup {
        params: ReshareParams,
        old_ids: Vec<IdentityKeyPair>,
        old_shares: Vec<Scalar>,
        new_ids: Vec<IdentityKeyPair>,
    }

    fn setup(scheme: Scheme, old_n: u32, old_t: u32, new_n: usize, new_t: u32) -> Setup {
        let (mut old, old_shares) = super::super::group::test_group(scheme, old_n, old_t);
        let old_ids: Vec<IdentityKeyPair> = (0..old_n).map(|_| IdentityKeyPair::generate()).collect();
        for (n, id) in old.nodes.iter_mut().zip(&old_ids) {
            n.public = id.public();
        }
        let new_ids: Vec<IdentityKeyPair> = (0..new_n).map(|_| IdentityKeyPair::generate()).collect();
        let member = |k: &IdentityPublicKey, i: usize| Member {
            public: k.as_bytes().to_vec(),
            address: format!("tls://127.0.0.1:{}", 8000 + i),
            description: String::new(),
        };
        let config = ReshareConfig {
            members: new_ids.iter().enumerate().map(|(i, k)| member(&k.public(), i)).collect(),
            old_members: old.nodes.iter().map(|n| member(&n.public, 0)).collect(),
            old_group_toml: old.to_toml(),
            threshold: new_t,
            transition_round: 10,
            phase_timeout_ms: 1000,
            leader: old_ids[0].public().as_bytes().to_vec(),
            nonce: vec![1],
        };
        Setup { params: ReshareParams::new(config).unwrap(), old_ids, old_shares, new_ids }
    }

    /// Runs a resharing in memory with `dealers`; `corrupt[(dealer, recipient)]` deals are bad.
    fn run(s: &Setup, dealers: &[u32], corrupt: &[(u32, u32)]) -> (Vec<u32>, Vec<ReshareResult>) {
        let mut recipients: Vec<Recipient> =
            s.new_ids.iter().map(|id| Recipient::new(s.params.clone(), id.clone()).unwrap()).collect();
        for r in recipients.iter_mut() {
            r.set_dealers(dealers).unwrap();
        }
        for &d in dealers {
            let bad: BTreeSet<u32> = corrupt.iter().filter(|(x, _)| *x == d).map(|(_, r)| *r).collect();
            let deals = make_deals(&s.params, &s.old_ids[d as usize], d, &s.old_shares[d as usize], &bad);
            for deal in deals {
                let r = deal.recipient as usize;
                recipients[r].receive_deal(&s.old_ids[d as usize].public(), deal).unwrap();
            }
        }
        let responses: Vec<Responses> = recipients.iter().map(|r| r.make_responses()).collect();
        let q = qualified(&s.params, dealers, &responses).unwrap();
        let results = recipients.iter().map(|r| r.finish(&q).unwrap()).collect();
        (q, results)
    }

    #[test]
    fn honest_resharing_keeps_the_key_for_both_schemes() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = setup(scheme, 4, 3, 5, 3);
            let (q, results) = run(&s, &[0, 1, 3], &[]);
            assert_eq!(q, vec![0, 1, 3]);
            let g = &results[0].group;
            assert!(results.iter().all(|r| &r.group == g), "members computed different groups");
            assert_eq!(g.public_key(), s.params.old.public_key());
            assert_eq!(g.chain_info().hash(), s.params.old.chain_info().hash());
            assert_eq!(g.first_round(), 10);
            let new: Vec<(u32, Scalar)> = results.iter().map(|r| (r.index, r.share)).collect();
            let old: Vec<(u32, Scalar)> = (0..3).map(|i| (i, s.old_shares[i as usize])).collect();
            assert_eq!(recover_secret(&new[2..], 3).unwrap(), recover_secret(&old, 3).unwrap());
        }
    }

    #[test]
    fn a_lying_dealer_is_left_out_and_enough_honest_ones_suffice() {
        let s = setup(Scheme::PedersenBlsChained, 4, 3, 3, 2);
        // Dealer 2 sends member 1 a wrong share: member 1 complains, 2 is not qualified.
        let (q, results) = run(&s, &[0, 1, 2, 3], &[(2, 1)]);
        assert_eq!(q, vec![0, 1, 3]);
        assert_eq!(results[0].group.public_key(), s.params.old.public_key());
        // A dealer re-sharing a made-up secret is caught by every recipient.
        let mut r = Recipient::new(s.params.clone(), s.new_ids[0].clone()).unwrap();
        r.set_dealers(&[0, 1, 2]).unwrap();
        let liar = make_deals(&s.params, &s.old_ids[1], 1, &Scalar::from_u64(7), &BTreeSet::new());
        r.receive_deal(&s.old_ids[1].public(), liar[0].clone()).unwrap();
        assert_eq!(r.complaints().len(), 3);
        assert!(r.complaints()[1].1.contains("old public share"), "{:?}", r.complaints());
        // Too few honest dealers: not enough qualified.
        let responses = vec![r.make_responses()];
        assert!(matches!(qualified(&s.params, &[0, 1, 2], &responses), Err(ReshareError::MissingResponses(1))));
        assert!(matches!(r.finish(&[0, 2]), Err(ReshareError::NotEnoughQualified { have: 2, need: 3 })));
    }

    #[test]
    fn forged_deals_and_responses_are_refused() {
        let s = setup(Scheme::PedersenBlsChained, 4, 3, 3, 2);
        let mut r = Recipient::new(s.params.clone(), s.new_ids[0].clone()).unwrap();
        assert!(r.set_dealers(&[0, 1]).is_err());
        r.set_dealers(&[0, 1, 2]).unwrap();
        let mut deal = make_deals(&s.params, &s.old_ids[1], 1, &s.old_shares[1], &BTreeSet::new()).remove(0);
        // Sent by another member than its dealer; tampered.
        assert!(r.receive_deal(&s.old_ids[2].public(), deal.clone()).is_err());
        deal.share[31] ^= 1;
        assert!(matches!(r.receive_deal(&s.old_ids[1].public(), deal), Err(ReshareError::BadSignature(_))));
        let mut resp = r.make_responses();
        resp.entries[0].status = status::APPROVE;
        assert!(matches!(qualified(&s.params, &[0, 1, 2], &[resp]), Err(ReshareError::BadSignature(_))));
        // A configuration whose old members do not match its group file.
        let mut c = s.params.config.clone();
        c.old_members.pop();
        assert!(ReshareParams::new(c).is_err());
    }

    #[test]
    fn a_finish_must_be_the_leaders_of_this_session_and_unaltered() {
        let s = setup(Scheme::PedersenBlsChained, 4, 3, 3, 2);
        let dealers = [0, 1, 2];
        let mut recipients: Vec<Recipient> =
            s.new_ids.iter().map(|id| Recipient::new(s.params.clone(), id.clone()).unwrap()).collect();
        for r in recipients.iter_mut() {
            r.set_dealers(&dealers).unwrap();
        }
        for &d in &dealers {
            for deal in make_deals(&s.params, &s.old_ids[d as usize], d, &s.old_shares[d as usize], &BTreeSet::new()) {
                let r = deal.recipient as usize;
                recipients[r].receive_deal(&s.old_ids[d as usize].public(), deal).unwrap();
            }
        }
        let responses: Vec<Responses> = recipients.iter().map(|r| r.make_responses()).collect();
        let good = sign_finish(&s.params, &s.old_ids[0], &dealers, responses.clone());
        assert_eq!(check_finish(&s.params, &good).unwrap(), vec![0, 1, 2]);
        // Forged: signed by another old member (a forwarder making up its own Finish).
        let forged = sign_finish(&s.params, &s.old_ids[1], &dealers, responses.clone());
        assert!(matches!(check_finish(&s.params, &forged), Err(ReshareError::BadSignature(_))));
        // Altered in transit: a dealer dropped, a response dropped, a garbage signature.
        let mut fewer = good.clone();
        fewer.dealers.pop();
        assert!(matches!(check_finish(&s.params, &fewer), Err(ReshareError::BadSignature(_))));
        let mut missing = good.clone();
        missing.responses.pop();
        assert!(matches!(check_finish(&s.params, &missing), Err(ReshareError::BadSignature(_))));
        let mut garbage = good.clone();
        garbage.signature = vec![7; 3];
        assert!(check_finish(&s.params, &garbage).is_err());
        // Replayed into another session (same members, another nonce), even re-signed there by
        // the leader with the old session's responses: refused.
        let mut c = s.params.config.clone();
        c.nonce = vec![2];
        let other = ReshareParams::new(c).unwrap();
        assert!(matches!(check_finish(&other, &good), Err(ReshareError::Malformed(..))));
        let resigned = sign_finish(&other, &s.old_ids[0], &dealers, responses);
        assert!(check_finish(&other, &resigned).is_err());
        // Unknown or repeated dealers.
        let dup = sign_finish(&s.params, &s.old_ids[0], &[0, 0, 1], good.responses.clone());
        assert!(matches!(check_finish(&s.params, &dup), Err(ReshareError::Malformed(..))));
        let unknown = sign_finish(&s.params, &s.old_ids[0], &[0, 9], good.responses.clone());
        assert!(matches!(check_finish(&s.params, &unknown), Err(ReshareError::Malformed(..))));
    }
}
