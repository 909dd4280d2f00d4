//! The Pedersen / Joint-Feldman DKG as a state machine without I/O: the service feeds it messages
//! and asks it, at the end of each phase, what to send next. Deal → response (approval or
//! complaint) → justification → qualified set, group polynomial and this node's share.
//!
//! Accountability: deals and commitments are signed with the dealer's Ed25519 identity key, so a
//! complaint carrying a bad deal is evidence every node checks for itself; approvals carry the
//! dealer-signed hash of the commitments received, so two signed commitment sets of one dealer
//! (equivocation) are evidence too; a dealer with an unanswered "no deal" complaint is
//! disqualified. Every node evaluates the same rules on the messages it holds.

use super::messages::{status, Deal, DkgConfig, Justification, JustifiedShare, ResponseEntry, Responses};
use crate::config::NodeAddress;
use crate::crypto::threshold::{AnyPubPoly, KeyGroup, PriPoly, Scalar};
use crate::crypto::{sha256, IdentityKeyPair, IdentityPublicKey};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

/// Shortest and longest phase accepted.
pub const MIN_PHASE: Duration = Duration::from_millis(100);
pub const MAX_PHASE: Duration = Duration::from_secs(600);

/// Why a DKG step failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DkgError {
    #[error("invalid DKG configuration: {0}")]
    Config(String),
    #[error("this node is not in the DKG roster")]
    NotMember,
    #[error("unknown or finished DKG session")]
    UnknownSession,
    #[error("message from {0}: malformed: {1}")]
    Malformed(String, String),
    #[error("message from {0}: bad signature")]
    BadSignature(String),
    #[error("only {have} of {need} required members take part")]
    NotEnoughParticipants { have: usize, need: usize },
    #[error("only {have} dealers qualified, {need} needed")]
    NotEnoughQualified { have: usize, need: usize },
    #[error("the computed share does not match the group polynomial")]
    ShareMismatch,
    #[error("a DKG is already running on this node")]
    Busy,
    #[error("this node already has a beacon chain; reset it first (`conode reset`)")]
    HasGroup,
    #[error(
        "this node already dealt in DKG session {0} (before a restart); it will not deal again in it, \
         start a new DKG"
    )]
    AlreadyDealt(String),
    /// This node's operator did not approve this DKG (see the beacon's `approval`).
    #[error("{0}")]
    NotApproved(String),
    #[error("{0}")]
    Failed(String),
}

/// A validated configuration with everything decoded.
#[derive(Clone, Debug)]
pub struct Params {
    pub session: [u8; 32],
    pub config: DkgConfig,
    pub members: Vec<IdentityPublicKey>,
    pub addresses: Vec<NodeAddress>,
    pub key_group: KeyGroup,
    pub threshold: usize,
    pub phase: Duration,
}

/// drand's minimum threshold for `n` members: ⌊n/2⌋ + 1.
pub fn minimum_threshold(n: usize) -> usize {
    n / 2 + 1
}

/// The session id of a configuration.
pub fn session_id(config: &DkgConfig) -> [u8; 32] {
    sha256(&[b"conode-dkg-v1", &config.encode_to_vec()])
}

impl Params {
    /// Checks a configuration: sizes, keys, addresses, scheme, threshold, period, phase length.
    pub fn new(config: DkgConfig, key_group_of: impl Fn(&str) -> Option<KeyGroup>) -> Result<Self, DkgError> {
        super::messages::check_config(&config).map_err(DkgError::Config)?;
        let n = config.members.len();
        let mut members = Vec::with_capacity(n);
        let mut addresses = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        for (i, m) in config.members.iter().enumerate() {
            let k =
                IdentityPublicKey::from_bytes(&m.public).map_err(|e| DkgError::Config(format!("member {i}: {e}")))?;
            if !seen.insert(k) {
                return Err(DkgError::Config(format!("member {i}: duplicate key")));
            }
            members.push(k);
            addresses.push(NodeAddress::parse(&m.address).map_err(|e| DkgError::Config(format!("member {i}: {e}")))?);
        }
        let key_group = key_group_of(&config.scheme)
            .ok_or_else(|| DkgError::Config(format!("unknown scheme `{}`", config.scheme)))?;
        let t = config.threshold as usize;
        if t < minimum_threshold(n) || t > n {
            return Err(DkgError::Config(format!(
                "threshold {t} for {n} members (allowed {}..={n})",
                minimum_threshold(n)
            )));
        }
        if config.period_secs == 0 {
            return Err(DkgError::Config("period must be at least 1 s".into()));
        }
        let phase = Duration::from_millis(config.phase_timeout_ms);
        if !(MIN_PHASE..=MAX_PHASE).contains(&phase) {
            return Err(DkgError::Config(format!("phase timeout {phase:?} outside {MIN_PHASE:?}..={MAX_PHASE:?}")));
        }
        Ok(Self { session: session_id(&config), config, members, addresses, key_group, threshold: t, phase })
    }

    pub fn n(&self) -> usize {
        self.members.len()
    }
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// sha256 of a commitment list.
pub fn commit_hash(commitments: &[Vec<u8>]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![b"conode-dkg-commits-v1"];
    let lens: Vec<[u8; 4]> = commitments.iter().map(|c| be32(c.len() as u32)).collect();
    for (c, l) in commitments.iter().zip(&lens) {
        parts.push(l);
        parts.push(c);
    }
    sha256(&parts)
}

/// What a dealer signs about its commitments.
pub fn commit_message(session: &[u8], dealer: u32, hash: &[u8]) -> Vec<u8> {
    [b"conode-dkg-commit-v1".as_slice(), session, &be32(dealer), hash].concat()
}

/// What a dealer signs about one recipient's share.
pub fn share_message(session: &[u8], dealer: u32, recipient: u32, hash: &[u8], share: &[u8]) -> Vec<u8> {
    [b"conode-dkg-share-v1".as_slice(), session, &be32(dealer), &be32(recipient), hash, share].concat()
}

fn responses_message(r: &Responses) -> Vec<u8> {
    let mut c = r.clone();
    c.signature.clear();
    [b"conode-dkg-responses-v1".as_slice(), &c.encode_to_vec()].concat()
}

fn justification_message(j: &Justification) -> Vec<u8> {
    let mut c = j.clone();
    c.signature.clear();
    [b"conode-dkg-justification-v1".as_slice(), &c.encode_to_vec()].concat()
}

/// Why a dealer was excluded, with the signed messages that prove it.
#[derive(Clone, PartialEq, Eq)]
pub struct Disqualification {
    pub dealer: u32,
    pub reason: String,
    /// Encoded evidence (a `Responses` carrying the bad deal, conflicting signed hashes, …).
    pub evidence: Vec<Vec<u8>>,
}

impl fmt::Debug for Disqualification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Disqualification({}: {}, {} evidence items)", self.dealer, self.reason, self.evidence.len())
    }
}

/// Whether both of a deal's signatures (over its commitments, whose hash is `hash`, and over the
/// recipient's share) are by `key`, its dealer's identity (a DKG deal or a resharing one).
pub(crate) fn deal_signed(key: &IdentityPublicKey, deal: &Deal, hash: &[u8; 32]) -> bool {
    key.verify(&commit_message(&deal.session, deal.dealer, hash), &deal.commit_sig).is_ok()
        && key
            .verify(&share_message(&deal.session, deal.dealer, deal.recipient, hash, &deal.share), &deal.share_sig)
            .is_ok()
}

/// A deal held by its recipient.
#[derive(Clone)]
pub enum Received {
    Good {
        commits: AnyPubPoly,
        hash: [u8; 32],
        sig: Vec<u8>,
        share: Scalar,
    },
    /// Signed by the dealer but wrong: the deal is the evidence.
    Bad {
        deal: Deal,
        reason: String,
    },
}

/// What a bad-deal complaint's evidence shows.
enum Evidence {
    /// The dealer signed a wrong deal.
    Proven(String),
    /// Not signed by the dealer (or not about this complainer): the complaint counts as "no deal".
    Unattributable,
    /// The deal is fine: the complaint is unfounded.
    Fine([u8; 32], Vec<u8>),
}

/// The outcome of the response phase at this node.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub disqualified: BTreeMap<u32, Disqualification>,
    /// Dealer → recipients whose "no deal" complaint it must answer.
    pub pending: BTreeMap<u32, BTreeSet<u32>>,
    /// Dealer → the (single) signed commitment hash seen for it.
    pub claims: BTreeMap<u32, [u8; 32]>,
}

/// The result of a successful DKG at one node. Debug never shows the share.
#[derive(Clone)]
pub struct DkgResult {
    pub qualified: Vec<u32>,
    pub disqualified: Vec<Disqualification>,
    pub group_poly: AnyPubPoly,
    pub index: u32,
    pub share: Scalar,
}

impl fmt::Debug for DkgResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkgResult")
            .field("qualified", &self.qualified)
            .field("disqualified", &self.disqualified)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn mismatch(recipient: u32) -> String {
    format!("share for member {recipient} does not match the signed commitments")
}

/// Decodes a deal's commitments (each point checked) and share; the reason when they are wrong.
fn decode_deal(group: KeyGroup, threshold: usize, deal: &Deal) -> Result<(AnyPubPoly, Scalar), String> {
    if deal.commitments.len() != threshold {
        return Err(format!("{} commitments instead of {threshold}", deal.commitments.len()));
    }
    let commits = AnyPubPoly::from_bytes(group, &deal.commitments).map_err(|e| format!("invalid commitments: {e}"))?;
    let share = Scalar::from_bytes(&deal.share).map_err(|e| format!("invalid share encoding: {e}"))?;
    Ok((commits, share))
}

/// Deals (signatures already checked) whose content is to be checked, away from the DKG's lock.
pub struct DealBatch {
    key_group: KeyGroup,
    threshold: usize,
    recipient: u32,
    deals: Vec<Deal>,
}

/// The outcome of [`DealBatch::check`], by dealer.
pub struct CheckedDeals(Vec<(u32, Received)>);

impl CheckedDeals {
    /// The dealers whose deal was bad, with the reason.
    pub fn bad(&self) -> Vec<(u32, String)> {
        self.0
            .iter()
            .filter_map(|(d, r)| match r {
                Received::Bad { reason, .. } => Some((*d, reason.clone())),
                Received::Good { .. } => None,
            })
            .collect()
    }
}

impl DealBatch {
    pub fn len(&self) -> usize {
        self.deals.len()
    }
    pub fn is_empty(&self) -> bool {
        self.deals.is_empty()
    }

    /// Decodes every deal once and checks all shares against their commitments in one batch
    /// ([`super::batch::bad_shares`]); a failing batch is checked deal by deal to name the bad
    /// dealers.
    pub fn check(self) -> CheckedDeals {
        let mut out = Vec::with_capacity(self.deals.len());
        let mut decoded = Vec::with_capacity(self.deals.len());
        for deal in self.deals {
            match decode_deal(self.key_group, self.threshold, &deal) {
                Ok((commits, share)) => decoded.push((deal, commits, share)),
                Err(reason) => {
                    tracing::warn!(dealer = deal.dealer, %reason, "DKG: received a bad deal");
                    out.push((deal.dealer, Received::Bad { deal, reason }));
                }
            }
        }
        let items: Vec<(u32, &AnyPubPoly, Scalar)> = decoded.iter().map(|(d, c, s)| (d.dealer, c, *s)).collect();
        let bad: BTreeSet<u32> = super::batch::bad_shares(self.recipient, &items).into_iter().collect();
        for (deal, commits, share) in decoded {
            let dealer = deal.dealer;
            if bad.contains(&dealer) {
                let reason = mismatch(self.recipient);
                tracing::warn!(dealer, %reason, "DKG: received a bad deal");
                out.push((dealer, Received::Bad { deal, reason }));
            } else {
                let hash = commit_hash(&deal.commitments);
                out.push((dealer, Received::Good { commits, hash, sig: deal.commit_sig, share }));
            }
        }
        CheckedDeals(out)
    }
}

/// One node's DKG state.
pub struct Dkg {
    pub params: Params,
    identity: IdentityKeyPair,
    me: u32,
    participants: BTreeSet<u32>,
    poly: PriPoly,
    my_commits: AnyPubPoly,
    my_commit_bytes: Vec<Vec<u8>>,
    my_hash: [u8; 32],
    my_commit_sig: Vec<u8>,
    deals: BTreeMap<u32, Received>,
    /// Deals whose signatures were checked, waiting for the batch check of their shares.
    unchecked: BTreeMap<u32, Deal>,
    /// Dealer → commitment hashes seen (in deals and signed approvals): an approval of a hash
    /// not in here is news, echoed to every member.
    seen: BTreeMap<u32, BTreeSet<[u8; 32]>>,
    /// (dealer, commitment hash, signature) triples whose signature was verified.
    verified_claims: HashSet<(u32, [u8; 32], Vec<u8>)>,
    responses: BTreeMap<u32, Responses>,
    justifications: BTreeMap<u32, Justification>,
    /// Test knob: deals to these recipients carry a corrupted (but signed) share.
    corrupt_for: BTreeSet<u32>,
}

impl Dkg {
    /// Starts a DKG as member `identity` (must be in the roster).
    pub fn new(params: Params, identity: IdentityKeyPair) -> Result<Self, DkgError> {
        let me = params.members.iter().position(|k| *k == identity.public()).ok_or(DkgError::NotMember)? as u32;
        let poly = PriPoly::random(params.threshold, &mut rand::rngs::OsRng);
        let my_commits = AnyPubPoly::commit(&poly, params.key_group);
        let my_commit_bytes = my_commits.to_bytes();
        let my_hash = commit_hash(&my_commit_bytes);
        let my_commit_sig = identity.sign(&commit_message(&params.session, me, &my_hash)).to_vec();
        Ok(Self {
            participants: (0..params.n() as u32).collect(),
            params,
            identity,
            me,
            poly,
            my_commits,
            my_commit_bytes,
            my_hash,
            deals: BTreeMap::new(),
            unchecked: BTreeMap::new(),
            seen: BTreeMap::from([(me, BTreeSet::from([my_hash]))]),
            verified_claims: HashSet::from([(me, my_hash, my_commit_sig.clone())]),
            my_commit_sig,
            responses: BTreeMap::new(),
            justifications: BTreeMap::new(),
            corrupt_for: BTreeSet::new(),
        })
    }

    pub fn me(&self) -> u32 {
        self.me
    }
    pub fn participants(&self) -> &BTreeSet<u32> {
        &self.participants
    }

    /// Restricts the DKG to the members that accepted (the leader's `Go`).
    pub fn set_participants(&mut self, list: &[u32]) -> Result<(), DkgError> {
        let set: BTreeSet<u32> = list.iter().copied().collect();
        if set.len() != list.len() || set.iter().any(|i| *i as usize >= self.params.n()) || !set.contains(&self.me) {
            return Err(DkgError::Malformed("leader".into(), "participant list".into()));
        }
        if set.len() < self.params.threshold {
            return Err(DkgError::NotEnoughParticipants { have: set.len(), need: self.params.threshold });
        }
        self.participants = set;
        Ok(())
    }

    /// Makes this node's deals to `recipient` corrupt (fault injection for tests).
    pub fn corrupt_deals_to(&mut self, recipient: u32) {
        self.corrupt_for.insert(recipient);
    }

    fn name(&self, i: u32) -> String {
        format!("member {i}")
    }

    /// The deals to send, one per other participant.
    pub fn deals(&self) -> Vec<Deal> {
        let session = self.params.session.to_vec();
        self.participants
            .iter()
            .filter(|r| **r != self.me)
            .filter_map(|&r| {
                let mut share = self.poly.share(r).ok()?;
                if self.corrupt_for.contains(&r) {
                    share = share.add(&Scalar::one());
                }
                let share = share.to_bytes().to_vec();
                let share_sig =
                    self.identity.sign(&share_message(&session, self.me, r, &self.my_hash, &share)).to_vec();
                Some(Deal {
                    session: session.clone(),
                    dealer: self.me,
                    recipient: r,
                    commitments: self.my_commit_bytes.clone(),
                    commit_sig: self.my_commit_sig.clone(),
                    share,
                    share_sig,
                })
            })
            .collect()
    }

    /// Checks the dealer's signatures on a deal and whether its content is right for `recipient`.
    fn check_deal(&self, deal: &Deal) -> Evidence {
        let Some(key) = self.params.members.get(deal.dealer as usize) else {
            return Evidence::Unattributable;
        };
        if deal.session != self.params.session {
            return Evidence::Unattributable;
        }
        let hash = commit_hash(&deal.commitments);
        let signed = key.verify(&commit_message(&deal.session, deal.dealer, &hash), &deal.commit_sig).is_ok()
            && key
                .verify(&share_message(&deal.session, deal.dealer, deal.recipient, &hash, &deal.share), &deal.share_sig)
                .is_ok();
        if !signed {
            return Evidence::Unattributable;
        }
        let (commits, share) = match decode_deal(self.params.key_group, self.params.threshold, deal) {
            Ok(x) => x,
            Err(reason) => return Evidence::Proven(reason),
        };
        if !commits.verify_share(deal.recipient, &share) {
            return Evidence::Proven(mismatch(deal.recipient));
        }
        Evidence::Fine(hash, deal.commit_sig.clone())
    }

    /// Whether `sig` is `dealer`'s signature on commitment hash `hash` (checked once, then
    /// remembered: every approval of an honest dealer carries the same pair).
    fn claim_ok(&self, dealer: u32, hash: &[u8; 32], sig: &[u8]) -> bool {
        if self.verified_claims.contains(&(dealer, *hash, sig.to_vec())) {
            return true;
        }
        let key = &self.params.members[dealer as usize];
        key.verify(&commit_message(&self.params.session, dealer, hash), sig).is_ok()
    }

    /// Takes the deals received since the last call, to be checked (outside any lock) by
    /// [`DealBatch::check`] and handed back to [`Dkg::apply_checked`].
    pub fn take_unchecked(&mut self) -> DealBatch {
        DealBatch {
            key_group: self.params.key_group,
            threshold: self.params.threshold,
            recipient: self.me,
            deals: std::mem::take(&mut self.unchecked).into_values().collect(),
        }
    }

    /// Stores the outcome of a [`DealBatch::check`].
    pub fn apply_checked(&mut self, checked: CheckedDeals) {
        for (dealer, received) in checked.0 {
            self.deals.entry(dealer).or_insert(received);
        }
    }

    /// Checks the deals received and not checked yet, in place.
    pub fn check_pending(&mut self) {
        if !self.unchecked.is_empty() {
            let batch = self.take_unchecked();
            self.apply_checked(batch.check());
        }
    }

    /// Stores a deal sent to this node by `from` (the TLS-authenticated sender).
    pub fn receive_deal(&mut self, from: &IdentityPublicKey, deal: Deal) -> Result<(), DkgError> {
        let who = self.name(deal.dealer);
        if deal.session != self.params.session {
            return Err(DkgError::UnknownSession);
        }
        if self.params.members.get(deal.dealer as usize) != Some(from) || !self.participants.contains(&deal.dealer) {
            return Err(DkgError::Malformed(who, "deal not sent by its dealer, or dealer not participating".into()));
        }
        if deal.recipient != self.me || deal.dealer == self.me {
            return Err(DkgError::Malformed(who, "deal for another recipient".into()));
        }
        if self.deals.contains_key(&deal.dealer) || self.unchecked.contains_key(&deal.dealer) {
            // First deal wins; a second one is ignored.
            return Ok(());
        }
        if deal.commitments.len() > self.params.n() {
            return Err(DkgError::Malformed(who, "too many commitments".into()));
        }
        // Only the (cheap) signatures now: the commitments and the share are checked with the
        // other deals in one batch at the end of the deal phase.
        let key = &self.params.members[deal.dealer as usize];
        let hash = commit_hash(&deal.commitments);
        if !deal_signed(key, &deal, &hash) {
            return Err(DkgError::BadSignature(who));
        }
        self.verified_claims.insert((deal.dealer, hash, deal.commit_sig.clone()));
        self.seen.entry(deal.dealer).or_default().insert(hash);
        self.unchecked.insert(deal.dealer, deal);
        Ok(())
    }

    /// Whether a deal arrived from every other participant (checked or not).
    pub fn have_all_deals(&self) -> bool {
        self.participants
            .iter()
            .filter(|d| **d != self.me)
            .all(|d| self.deals.contains_key(d) || self.unchecked.contains_key(d))
    }

    /// How many deals arrived (checked or not).
    pub fn deals_count(&self) -> usize {
        self.deals.len() + self.unchecked.len()
    }

    /// This node's signed responses (also stored as received from itself). Deals not checked
    /// yet are checked first.
    pub fn make_responses(&mut self) -> Responses {
        self.check_pending();
        let entries = self
            .participants
            .iter()
            .filter(|d| **d != self.me)
            .map(|&d| match self.deals.get(&d) {
                Some(Received::Good { hash, sig, .. }) => ResponseEntry {
                    dealer: d,
                    status: status::APPROVE,
                    commit_hash: hash.to_vec(),
                    commit_sig: sig.clone(),
                    evidence: None,
                },
                Some(Received::Bad { deal, .. }) => ResponseEntry {
                    dealer: d,
                    status: status::BAD_DEAL,
                    commit_hash: Vec::new(),
                    commit_sig: Vec::new(),
                    evidence: Some(deal.clone()),
                },
                None => ResponseEntry {
                    dealer: d,
                    status: status::NO_DEAL,
                    commit_hash: Vec::new(),
                    commit_sig: Vec::new(),
                    evidence: None,
                },
            })
            .collect();
        let mut r = Responses { session: self.params.session.to_vec(), from: self.me, entries, signature: Vec::new() };
        r.signature = self.identity.sign(&responses_message(&r)).to_vec();
        self.responses.insert(self.me, r.clone());
        r
    }

    /// Stores another participant's responses; `Ok(true)` when they are new and carry news that
    /// every member must see alike (a complaint, or an approval of a commitment hash this node
    /// has not seen for that dealer): those are echoed. Approvals of the hash everyone holds
    /// change no member's evaluation, so echoing them (n³ messages) is not needed.
    pub fn receive_responses(&mut self, r: Responses) -> Result<bool, DkgError> {
        let who = self.name(r.from);
        if r.session != self.params.session {
            return Err(DkgError::UnknownSession);
        }
        if !self.participants.contains(&r.from) {
            return Err(DkgError::Malformed(who, "not a participant".into()));
        }
        if self.responses.contains_key(&r.from) {
            return Ok(false);
        }
        if r.entries.len() > self.params.n() {
            return Err(DkgError::Malformed(who, "too many entries".into()));
        }
        let mut dealers = BTreeSet::new();
        for e in &r.entries {
            if !dealers.insert(e.dealer) || e.dealer as usize >= self.params.n() || e.dealer == r.from {
                return Err(DkgError::Malformed(who, "bad dealer in entries".into()));
            }
        }
        let key = &self.params.members[r.from as usize];
        key.verify(&responses_message(&r), &r.signature).map_err(|_| DkgError::BadSignature(who))?;
        let mut news = false;
        for e in &r.entries {
            if e.status != status::APPROVE {
                news = true;
                continue;
            }
            let Ok(h) = <[u8; 32]>::try_from(e.commit_hash.as_slice()) else { continue };
            if !self.claim_ok(e.dealer, &h, &e.commit_sig) {
                continue;
            }
            self.verified_claims.insert((e.dealer, h, e.commit_sig.clone()));
            news |= self.seen.entry(e.dealer).or_default().insert(h);
        }
        self.responses.insert(r.from, r);
        Ok(news)
    }

    pub fn have_all_responses(&self) -> bool {
        self.participants.iter().all(|p| self.responses.contains_key(p))
    }

    pub fn justifications_count(&self) -> usize {
        self.justifications.len()
    }

    pub fn responses_count(&self) -> usize {
        self.responses.len()
    }

    /// Applies the rules to the responses and justifications held.
    pub fn evaluate(&self) -> Evaluation {
        let mut ev = Evaluation::default();
        let session = &self.params.session;
        for &d in &self.participants {
            let key = &self.params.members[d as usize];
            // Signed commitment hashes seen for d, with where they came from.
            let mut claims: BTreeMap<[u8; 32], Vec<u8>> = BTreeMap::new();
            if d == self.me {
                claims.insert(self.my_hash, self.my_commit_sig.clone());
            }
            if let Some(Received::Good { hash, sig, .. }) = self.deals.get(&d) {
                claims.insert(*hash, sig.clone());
            }
            let mut no_deal = BTreeSet::new();
            let mut proven: Option<(String, Vec<u8>)> = None;
            for (&r, resp) in &self.responses {
                let Some(e) = resp.entries.iter().find(|e| e.dealer == d) else { continue };
                match e.status {
                    status::APPROVE => {
                        if let Ok(h) = <[u8; 32]>::try_from(e.commit_hash.as_slice()) {
                            if self.claim_ok(d, &h, &e.commit_sig) {
                                claims.insert(h, e.commit_sig.clone());
                            }
                        }
                    }
                    status::BAD_DEAL => match e
                        .evidence
                        .as_ref()
                        .map(|deal| (deal.recipient == r && deal.dealer == d, self.check_deal(deal)))
                    {
                        Some((true, Evidence::Proven(reason))) => {
                            if proven.is_none() {
                                proven = Some((format!("bad deal to member {r}: {reason}"), resp.encode_to_vec()));
                            }
                        }
                        Some((true, Evidence::Fine(h, sig))) => {
                            tracing::warn!(complainer = r, dealer = d, "DKG: unfounded bad-deal complaint ignored");
                            claims.insert(h, sig);
                        }
                        _ => {
                            no_deal.insert(r);
                        }
                    },
                    // NO_DEAL and unknown statuses: the dealer has to answer in public.
                    _ => {
                        no_deal.insert(r);
                    }
                }
            }
            if let Some(j) = self.justifications.get(&d) {
                let h = commit_hash(&j.commitments);
                if key.verify(&commit_message(session, d, &h), &j.commit_sig).is_ok() {
                    claims.insert(h, j.commit_sig.clone());
                }
            }
            if let Some((reason, evidence)) = proven {
                ev.disqualified.insert(d, Disqualification { dealer: d, reason, evidence: vec![evidence] });
                continue;
            }
            if claims.len() > 1 {
                let evidence = claims.iter().map(|(h, s)| [h.as_slice(), s].concat()).collect();
                ev.disqualified.insert(
                    d,
                    Disqualification {
                        dealer: d,
                        reason: format!("equivocation: signed {} different commitment sets", claims.len()),
                        evidence,
                    },
                );
                continue;
            }
            if let Some((h, _)) = claims.iter().next() {
                ev.claims.insert(d, *h);
            }
            if !no_deal.is_empty() {
                ev.pending.insert(d, no_deal);
            }
        }
        ev
    }

    /// The justification this node must publish, if complaints against it are pending.
    pub fn make_justification(&self, ev: &Evaluation) -> Option<Justification> {
        let recipients = ev.pending.get(&self.me)?;
        let shares = recipients
            .iter()
            .filter_map(|&r| Some(JustifiedShare { recipient: r, share: self.poly.share(r).ok()?.to_bytes().to_vec() }))
            .collect();
        let mut j = Justification {
            session: self.params.session.to_vec(),
            dealer: self.me,
            commitments: self.my_commit_bytes.clone(),
            commit_sig: self.my_commit_sig.clone(),
            shares,
            signature: Vec::new(),
        };
        j.signature = self.identity.sign(&justification_message(&j)).to_vec();
        Some(j)
    }

    /// Stores a dealer's justification; `Ok(true)` when it is new or answers more complaints
    /// than the one held (to be echoed).
    pub fn receive_justification(&mut self, j: Justification) -> Result<bool, DkgError> {
        let who = self.name(j.dealer);
        if j.session != self.params.session {
            return Err(DkgError::UnknownSession);
        }
        if !self.participants.contains(&j.dealer) {
            return Err(DkgError::Malformed(who, "not a participant".into()));
        }
        if j.shares.len() > self.params.n() || j.commitments.len() > self.params.n() {
            return Err(DkgError::Malformed(who, "too many entries".into()));
        }
        let key = &self.params.members[j.dealer as usize];
        key.verify(&justification_message(&j), &j.signature).map_err(|_| DkgError::BadSignature(who))?;
        let better = self.justifications.get(&j.dealer).is_none_or(|old| j.shares.len() > old.shares.len());
        if better {
            self.justifications.insert(j.dealer, j);
        }
        Ok(better)
    }

    /// Whether every pending complaint has a justification from its dealer (not checked yet).
    pub fn justifications_complete(&self, ev: &Evaluation) -> bool {
        ev.pending.iter().filter(|(d, _)| !ev.disqualified.contains_key(d)).all(|(d, rs)| {
            self.justifications.get(d).is_some_and(|j| rs.iter().all(|r| j.shares.iter().any(|s| s.recipient == *r)))
        })
    }

    /// Checks a justification against the pending complaints; returns the revealed share for this
    /// node if there is one.
    fn check_justification(
        &self,
        d: u32,
        recipients: &BTreeSet<u32>,
        claim: Option<&[u8; 32]>,
    ) -> Result<(AnyPubPoly, Option<Scalar>), String> {
        let j = self.justifications.get(&d).ok_or_else(|| {
            format!("did not answer the no-deal complaints of members {:?}", recipients.iter().collect::<Vec<_>>())
        })?;
        let h = commit_hash(&j.commitments);
        let key = &self.params.members[d as usize];
        if key.verify(&commit_message(&self.params.session, d, &h), &j.commit_sig).is_err() {
            return Err("justification with unsigned commitments".into());
        }
        if claim.is_some_and(|c| *c != h) {
            return Err("justification with other commitments than approved".into());
        }
        if j.commitments.len() != self.params.threshold {
            return Err("justification with a wrong number of commitments".into());
        }
        let commits =
            AnyPubPoly::from_bytes(self.params.key_group, &j.commitments).map_err(|e| format!("justification: {e}"))?;
        let mut mine = None;
        for r in recipients {
            let s = j
                .shares
                .iter()
                .find(|s| s.recipient == *r)
                .ok_or_else(|| format!("justification lacks the share of member {r}"))?;
            let share = Scalar::from_bytes(&s.share).map_err(|e| format!("justification: {e}"))?;
            if !commits.verify_share(*r, &share) {
                return Err(format!("justified share of member {r} does not match the commitments"));
            }
            if *r == self.me {
                mine = Some(share);
            }
        }
        Ok((commits, mine))
    }

    /// Ends the DKG: qualified dealers, group polynomial and this node's share.
    pub fn finalize(&self) -> Result<DkgResult, DkgError> {
        let mut ev = self.evaluate();
        let mut group: Option<AnyPubPoly> = None;
        let mut share = Scalar::zero();
        let mut qualified = Vec::new();
        for &d in &self.participants {
            if ev.disqualified.contains_key(&d) {
                continue;
            }
            let pending = ev.pending.get(&d).cloned().unwrap_or_default();
            let justified = if pending.is_empty() {
                None
            } else {
                match self.check_justification(d, &pending, ev.claims.get(&d)) {
                    Ok(x) => Some(x),
                    Err(reason) => {
                        let evidence = self.justifications.get(&d).map(|j| j.encode_to_vec()).into_iter().collect();
                        ev.disqualified.insert(d, Disqualification { dealer: d, reason, evidence });
                        continue;
                    }
                }
            };
            let (commits, s) = if d == self.me {
                (self.my_commits.clone(), self.poly.share(self.me).map_err(|e| DkgError::Failed(e.to_string()))?)
            } else {
                match (self.deals.get(&d), justified) {
                    (Some(Received::Good { commits, share, .. }), _) => (commits.clone(), *share),
                    (_, Some((commits, Some(s)))) => (commits, s),
                    _ => {
                        ev.disqualified.insert(
                            d,
                            Disqualification {
                                dealer: d,
                                reason: "no valid share for this node (deal missing and not justified)".into(),
                                evidence: vec![],
                            },
                        );
                        continue;
                    }
                }
            };
            group = Some(match group {
                None => commits,
                Some(g) => g.add(&commits).map_err(|e| DkgError::Failed(e.to_string()))?,
            });
            share = share.add(&s);
            qualified.push(d);
        }
        if qualified.len() < self.params.threshold {
            return Err(DkgError::NotEnoughQualified { have: qualified.len(), need: self.params.threshold });
        }
        let group_poly = group.ok_or(DkgError::NotEnoughQualified { have: 0, need: self.params.threshold })?;
        if !group_poly.verify_share(self.me, &share) {
            return Err(DkgError::ShareMismatch);
        }
        Ok(DkgResult {
            qualified,
            disqualified: ev.disqualified.into_values().collect(),
            group_poly,
            index: self.me,
            share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::Member;
    use super::*;
    use crate::crypto::threshold::{recover_secret, Point, G1};

    fn setup(n: usize, t: u32, group: KeyGroup) -> Vec<Dkg> {
        let ids: Vec<IdentityKeyPair> = (0..n).map(|_| IdentityKeyPair::generate()).collect();
        let config = DkgConfig {
            members: ids
                .iter()
                .enumerate()
                .map(|(i, k)| Member {
                    public: k.public().as_bytes().to_vec(),
                    address: format!("tls://127.0.0.1:{}", 7000 + 2 * i),
                    description: String::new(),
                })
                .collect(),
            threshold: t,
            scheme: "x".into(),
            period_secs: 1,
            genesis_time: 0,
            beacon_id: String::new(),
            phase_timeout_ms: 1000,
            leader: 0,
            nonce: vec![1, 2, 3],
        };
        ids.into_iter().map(|id| Dkg::new(Params::new(config.clone(), |_| Some(group)).unwrap(), id).unwrap()).collect()
    }

    /// Runs the phases in memory; `deliver(dealer, recipient)` decides which deals arrive.
    fn run(nodes: &mut [Dkg], deliver: impl Fn(u32, u32) -> bool) -> Vec<Result<DkgResult, DkgError>> {
        let keys: Vec<IdentityPublicKey> = nodes.iter().map(|n| n.identity.public()).collect();
        let all_deals: Vec<Deal> =
            nodes.iter().filter(|n| n.participants.contains(&n.me)).flat_map(|n| n.deals()).collect();
        for d in all_deals {
            if deliver(d.dealer, d.recipient) {
                let from = keys[d.dealer as usize];
                nodes[d.recipient as usize].receive_deal(&from, d).unwrap();
            }
        }
        let resps: Vec<Responses> = nodes.iter_mut().map(|n| n.make_responses()).collect();
        for n in nodes.iter_mut() {
            for r in &resps {
                if r.from != n.me {
                    n.receive_responses(r.clone()).unwrap();
                }
            }
            assert!(n.have_all_responses());
        }
        let justs: Vec<Justification> = nodes.iter().filter_map(|n| n.make_justification(&n.evaluate())).collect();
        for n in nodes.iter_mut() {
            for j in &justs {
                n.receive_justification(j.clone()).unwrap();
            }
            let ev = n.evaluate();
            assert!(n.justifications_complete(&ev));
        }
        nodes.iter().map(|n| n.finalize()).collect()
    }

    fn check_consistent(results: &[Result<DkgResult, DkgError>], t: usize) -> AnyPubPoly {
        let ok: Vec<&DkgResult> = results.iter().map(|r| r.as_ref().unwrap()).collect();
        for r in &ok {
            assert_eq!(r.group_poly, ok[0].group_poly);
            assert_eq!(r.qualified, ok[0].qualified);
        }
        // Any t shares recover the secret whose public key is the group key.
        let shares: Vec<(u32, Scalar)> = ok.iter().map(|r| (r.index, r.share)).collect();
        let secret = recover_secret(&shares[shares.len() - t..], t).unwrap();
        if let AnyPubPoly::G1(p) = &ok[0].group_poly {
            assert_eq!(G1::generator().mul(&secret), p.public_key());
        }
        ok[0].group_poly.clone()
    }

    #[test]
    fn honest_run_four_and_seven() {
        for (n, t) in [(4, 3), (7, 4)] {
            let mut nodes = setup(n, t, KeyGroup::G1);
            let res = run(&mut nodes, |_, _| true);
            let g = check_consistent(&res, t as usize);
            assert_eq!(g.threshold(), t as usize);
            assert!(res.iter().all(|r| r.as_ref().unwrap().disqualified.is_empty()));
        }
        let mut nodes = setup(4, 3, KeyGroup::G2);
        let res = run(&mut nodes, |_, _| true);
        check_consistent(&res, 3);
    }

    #[test]
    fn bad_deal_disqualifies_with_evidence() {
        let mut nodes = setup(5, 3, KeyGroup::G1);
        nodes[2].corrupt_deals_to(0);
        let res = run(&mut nodes, |_, _| true);
        check_consistent(&res, 3);
        for r in &res {
            let r = r.as_ref().unwrap();
            assert_eq!(r.qualified, vec![0, 1, 3, 4]);
            assert_eq!(r.disqualified.len(), 1);
            assert_eq!(r.disqualified[0].dealer, 2);
            assert!(r.disqualified[0].reason.contains("bad deal to member 0"), "{}", r.disqualified[0].reason);
            assert!(!r.disqualified[0].evidence.is_empty());
        }
    }

    #[test]
    fn missing_deal_is_justified() {
        let mut nodes = setup(4, 3, KeyGroup::G1);
        // Dealer 1's deal to 3 is lost: 3 complains, 1 reveals the share, nobody is excluded.
        let res = run(&mut nodes, |d, r| !(d == 1 && r == 3));
        check_consistent(&res, 3);
        assert!(res.iter().all(|r| r.as_ref().unwrap().qualified == vec![0, 1, 2, 3]));
    }

    #[test]
    fn absent_participant_excluded_up_front() {
        let mut nodes = setup(4, 3, KeyGroup::G1);
        let mut present: Vec<Dkg> = nodes.drain(..3).collect();
        for n in present.iter_mut() {
            n.set_participants(&[0, 1, 2]).unwrap();
        }
        let res = run(&mut present, |_, _| true);
        check_consistent(&res, 3);
        assert!(nodes[0].set_participants(&[0, 3]).is_err());
    }

    #[test]
    fn forged_messages_rejected() {
        let mut nodes = setup(4, 3, KeyGroup::G1);
        let keys: Vec<IdentityPublicKey> = nodes.iter().map(|n| n.identity.public()).collect();
        let mut deal = nodes[1].deals().into_iter().find(|d| d.recipient == 0).unwrap();
        // Sent by someone else than the dealer.
        assert!(nodes[0].receive_deal(&keys[2], deal.clone()).is_err());
        // Tampered share: signature no longer matches → not attributable.
        deal.share[31] ^= 1;
        assert!(matches!(nodes[0].receive_deal(&keys[1], deal.clone()), Err(DkgError::BadSignature(_))));
        let mut r = nodes[2].make_responses();
        r.entries[0].status = status::APPROVE;
        assert!(matches!(nodes[0].receive_responses(r), Err(DkgError::BadSignature(_))));
        let garbage =
            Responses { session: nodes[0].params.session.to_vec(), from: 3, entries: vec![], signature: vec![0; 3] };
        assert!(nodes[0].receive_responses(garbage).is_err());
    }
}
