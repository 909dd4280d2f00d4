//! The membership service: creates the network chain, takes proposals and ballots (from clients
//! and, as gossip, from the other members), appends the roster block of a proposal that passed
//! (through the skipchain, whose governor hook makes every member of the outgoing roster check the
//! vote before it cosigns), answers join requests, and moves this node through its states. A join
//! request is the one thing a stranger may send the node port (besides its status poll). What
//! gossip missed (this node was down or cut off) it fetches from the other members (`Sync`: at
//! start, every `SYNC_PERIOD` from one in turn, and on a ballot for an unknown proposal).

use super::messages::*;
use super::rules::{self, RuleError, Tally};
use super::store::{JoinRecord, MembershipStore, NodeRecord, NodeState, Outcome};
use crate::api::client::Client;
use crate::config::{Roster, ServerIdentity};
use crate::crypto::IdentityPublicKey;
use crate::network::{NetError, PeerMessage};
use crate::services::skipchain::messages::Append;
use crate::services::skipchain::{config_roster, Governor, SkipchainError, SkipchainService};
use crate::services::{stop_service, Service, ServiceContext, ServiceError, StartError};
use crate::storage::StorageError;
use crate::verify::cosi::Policy;
use crate::verify::skipchain::{height_for, level_distance, verify_proof, SkipBlock};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Service name (client methods, peer protocol).
pub const MEMBERSHIP_SERVICE: &str = "Membership";
/// How often the service reviews its state, open proposals and a pending join.
const TICK: Duration = Duration::from_millis(100);
/// The tick of a node in no network and with no join under way: nothing but its operator founding
/// or joining a network (a state change, which wakes the tick at once) can give it work.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// A member that saw a proposal pass appends its block itself when the member that received the
/// deciding ballot did not within this time (it may have crashed).
const FALLBACK_APPEND: Duration = Duration::from_secs(2);
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client's vote waits for the other members' ballots when its own does not pass the
/// proposal here (they may not have been gossiped here yet).
const BALLOT_GATHER_WAIT: Duration = Duration::from_secs(1);
/// Deliveries of a proposal or ballot to one member before giving up (it may catch the outcome
/// from the chain later).
const GOSSIP_ATTEMPTS: u32 = 3;
/// How long a member that cannot append itself waits for another to append a passed proposal.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(30);
/// Join requests a member keeps open at most (strangers cannot fill its disk): fewer than the
/// add_node proposals one member may have open (`MAX_OPEN_ADD_NODES_PER_PROPOSER`), so that its
/// operator can still propose a newcomer directly while strangers hold every join slot.
pub const MAX_JOINS: usize = MAX_OPEN_ADD_NODES_PER_PROPOSER - 16;
const _: () = assert!(MAX_JOINS < MAX_OPEN_ADD_NODES_PER_PROPOSER, "join slots leave room for the operator");
/// Open join requests one network (IPv4 /24, IPv6 /48) may have at a member: a stranger holding
/// many addresses of one network fills no more than this of the member's `MAX_JOINS`.
pub const MAX_OPEN_JOINS_PER_NETWORK: usize = 16;
/// Open join requests one source (IPv4 address, IPv6 /64) may have at a time: a stranger that
/// makes fresh identities cannot fill the store and lock honest joiners out.
pub const MAX_OPEN_JOINS_PER_SOURCE: usize = 4;

/// Whether a proposal adds a node (the pool join requests fill).
fn is_add_node(p: &Proposal) -> bool {
    matches!(p.action.as_ref().and_then(|a| a.kind.as_ref()), Some(action::Kind::AddNode(_)))
}

/// Why the client port's `CreateNetwork` is refused: founding needs each founder's consent.
pub const FOUNDING_IS_LOCAL: &str = "founding a network is an operator action on each founding node: \
    `conode -c private.toml network create --roster …` (the node's local admin channel), or \
    `MembershipService::create_network` in an embedding application";
/// Default time between a pending joiner's polls.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// How often a member asks another member (in turn) for the open proposals and ballots it may
/// have missed while down or cut off; it asks every member once when it starts.
pub const SYNC_PERIOD: Duration = Duration::from_secs(5);
/// Open proposals one sync answer carries at most (newest first), and its largest size.
const MAX_SYNC_PROPOSALS: usize = 64;
const MAX_SYNC_REPLY: usize = 4 << 20;
/// Open proposals a member keeps at most per proposer, add_node ones aside: a member (or a lying
/// peer replaying old ones) cannot fill its disk, nor keep the others from proposing (its own
/// removal above all).
pub const MAX_OPEN_PROPOSALS_PER_PROPOSER: usize = 64;
/// Open add_node proposals a member keeps at most per proposer. Members propose add_node for the
/// join requests strangers send them; in a pool of their own, per proposer, such proposals never
/// crowd out the others (a removal, a threshold change), nor one member's joins another's.
pub const MAX_OPEN_ADD_NODES_PER_PROPOSER: usize = 64;
/// How long an add_node proposal stays open without passing (from its signed `created` time):
/// members make one for every join request a stranger sends, so join slots a flood filled free
/// themselves within a day (a stranger may send more then, within the limits per source and
/// network; its operator's own add-node proposals are no different: one not voted within a day
/// is proposed again). A passed proposal is not applied once it expired (beyond the skew
/// `MAX_CREATED_AHEAD` between clocks): the members' governor check refuses its block.
pub const ADD_NODE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// How long any other proposal stays open without passing: a week for the members to vote.
pub const PROPOSAL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How far ahead of this node's clock a proposal's `created` may be (clocks differ): a proposal
/// from further ahead would stay open for longer than its lifetime.
pub const MAX_CREATED_AHEAD: Duration = Duration::from_secs(10 * 60);
/// How long closed proposals (not accepted) and the join requests they answered are kept after
/// they were made: listed for operators and joiners a while, then forgotten (see
/// `MembershipStore::forget_closed`). Longer than any lifetime, so a forgotten proposal sent
/// again is refused as expired.
pub const CLOSED_KEPT: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const _: () = assert!(CLOSED_KEPT.as_secs() > PROPOSAL_LIFETIME.as_secs() + MAX_CREATED_AHEAD.as_secs());
/// How often a member looks for closed proposals and join requests to forget.
const FORGET_CLOSED_EVERY: Duration = Duration::from_secs(60 * 60);
/// The outcome of a proposal that did not pass within its lifetime.
const EXPIRED: &str = "expired";

/// When proposal `p` expires (unix ms) unless it passed: its `created` plus its lifetime.
pub fn expires_ms(p: &Proposal) -> u64 {
    let lifetime = if is_add_node(p) { ADD_NODE_LIFETIME } else { PROPOSAL_LIFETIME };
    p.created.saturating_add(lifetime.as_millis() as u64)
}

/// Why proposal `p` cannot be taken now (`now`: unix ms): made too far ahead of this node's clock,
/// or expired already.
fn check_lifetime(p: &Proposal, now: u64) -> Result<(), MembershipError> {
    let ahead = MAX_CREATED_AHEAD.as_millis() as u64;
    if p.created > now.saturating_add(ahead) {
        return Err(MembershipError::Conflict(format!(
            "the proposal's `created` time is {} s ahead of this node's clock (at most {} s): check the proposer's clock",
            (p.created - now) / 1000,
            ahead / 1000
        )));
    }
    if now >= expires_ms(p) {
        return Err(MembershipError::Conflict(format!(
            "the proposal expired {} s ago (made {} s ago; proposals stay open {} h, add_node ones {} h): propose it again",
            (now - expires_ms(p)) / 1000,
            now.saturating_sub(p.created) / 1000,
            PROPOSAL_LIFETIME.as_secs() / 3600,
            ADD_NODE_LIFETIME.as_secs() / 3600
        )));
    }
    Ok(())
}

/// Whether passed proposal `p` may still be applied at `now` (Unix ms): not once it expired by
/// more than the skew between clocks (`MAX_CREATED_AHEAD`).
fn still_applicable(p: &Proposal, now: u64) -> Result<(), String> {
    let late = now.saturating_sub(expires_ms(p));
    if late > MAX_CREATED_AHEAD.as_millis() as u64 {
        return Err(format!("the proposal it applies expired {} s ago: propose it again", late / 1000));
    }
    Ok(())
}

/// Least time between two syncs triggered by a ballot for an unknown proposal.
const TRIGGERED_SYNC_GAP: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("this node follows no network")]
    NoNetwork,
    #[error("unknown proposal {0}")]
    UnknownProposal(String),
    #[error("proposal {id} is {state} already")]
    Closed { id: String, state: String },
    #[error("{0}")]
    Conflict(String),
    #[error("join: {0}")]
    Join(String),
    #[error("sync: {0}")]
    Sync(String),
    #[error("skipchain: {0}")]
    Skipchain(#[from] SkipchainError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl From<MembershipError> for ServiceError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::Rule(RuleError::Invalid(m)) => ServiceError::BadRequest(m),
            e @ MembershipError::Rule(_) => ServiceError::Refused(e.to_string()),
            e @ MembershipError::UnknownProposal(_) => ServiceError::NotFound(e.to_string()),
            e @ (MembershipError::Closed { .. } | MembershipError::Conflict(_)) => {
                ServiceError::Conflict(e.to_string())
            }
            e @ MembershipError::NoNetwork => ServiceError::Unavailable(e.to_string()),
            e => ServiceError::Failed(e.to_string()),
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn short(k: &[u8]) -> String {
    hex::encode(&k[..k.len().min(8)])
}

/// A joiner's view of the network it asked to join (from a verified proof), kept in memory.
#[derive(Clone)]
struct JoinTarget {
    members: Vec<ServerIdentity>,
    next_poll: Instant,
}

struct Shared {
    ctx: ServiceContext,
    skipchain: SkipchainService,
    store: MembershipStore,
    record: Mutex<NodeRecord>,
    /// Proposals seen passing, and when (a member appends after `FALLBACK_APPEND`).
    passed_at: Mutex<HashMap<Vec<u8>, Instant>>,
    /// The network chain's newest index when `accept_applied_expired` last looked.
    applied_checked_at: Mutex<Option<u64>>,
    /// The proposals the network chain (and any other governed chain) applied, read once per
    /// block.
    applied: Mutex<super::applied::AppliedIndexes>,
    /// When `forget_closed` last ran.
    forgot_closed_at: Mutex<Option<Instant>>,
    /// One append of the network chain at a time from this node.
    appending: tokio::sync::Mutex<()>,
    join_target: Mutex<Option<JoinTarget>>,
    retry: Mutex<Duration>,
    /// When this node reached `PartOfNetwork` (for measurements).
    joined_at: Mutex<Option<Instant>>,
    /// Called with the new roster when this node appended a roster change (the beacon reshares).
    roster_hooks: Mutex<Vec<RosterHook>>,
    /// When this node last asked the members for open proposals (None: not yet in this run),
    /// the member it asks next, and the last sync a ballot for an unknown proposal triggered.
    sync: Mutex<SyncState>,
    /// What the tick last followed the network chain from: the chain store's generation, this
    /// node's record, and when (see `tick`).
    followed: Mutex<Option<(u64, NodeRecord, Instant)>>,
    /// Held while this node founds a network: two founding requests at once see each other.
    founding: tokio::sync::Mutex<()>,
    /// Wakes the tick at once (a state change).
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct SyncState {
    last: Option<Instant>,
    next: usize,
    triggered: Option<Instant>,
    running: bool,
    /// Proposals and ballots learned through syncs in this run (for tests and the status page).
    learned: u64,
    /// No periodic syncs (tests that need a member to miss ballots); triggered ones still run.
    periodic_paused: bool,
}

/// Called with the new roster after this node appended a block that changes it.
pub type RosterHook = Arc<dyn Fn(crate::config::Roster) + Send + Sync>;

/// Handle on a node's membership service (cheap to clone).
#[derive(Clone)]
pub struct MembershipService {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Service for MembershipService {
    const NAME: &'static str = MEMBERSHIP_SERVICE;
    type Deps = SkipchainService;

    fn start(ctx: &ServiceContext, skipchain: SkipchainService) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let err = |e: StorageError| StartError { service: MEMBERSHIP_SERVICE, reason: e.to_string() };
        let store = MembershipStore::open(&ctx.storage).map_err(err)?;
        let stored = store.record();
        let mut record = stored.clone().unwrap_or(NodeRecord {
            state: NodeState::Initialized,
            network: None,
            since_ms: now_ms(),
            join: None,
            founding: None,
        });
        // A join decides what a node follows (a record stored before that rule may hold the
        // network the node retired from beside its join).
        if record.join.is_some() {
            record.network = None;
        }
        if stored.as_ref() != Some(&record) {
            store.set_record(&record).map_err(err)?;
        }
        let svc = MembershipService {
            shared: Arc::new(Shared {
                ctx: ctx.clone(),
                skipchain: skipchain.clone(),
                store,
                record: Mutex::new(record),
                passed_at: Default::default(),
                applied_checked_at: Default::default(),
                applied: Default::default(),
                forgot_closed_at: Default::default(),
                appending: Default::default(),
                join_target: Default::default(),
                retry: Mutex::new(DEFAULT_RETRY),
                joined_at: Default::default(),
                roster_hooks: Default::default(),
                sync: Default::default(),
                followed: Default::default(),
                founding: Default::default(),
                wake: tokio::sync::Notify::new(),
            }),
        };
        // The governor lives in the skipchain service: a weak reference, so that it does not keep
        // this service (and the database) alive after the node stops.
        let weak: Weak<Shared> = Arc::downgrade(&svc.shared);
        skipchain.add_governor(Governor {
            governs: Arc::new(|genesis: &SkipBlock| rules::config_of(genesis).is_some()),
            check: Arc::new(move |prev: &SkipBlock, next: &SkipBlock| match weak.upgrade() {
                Some(shared) => MembershipService { shared }.check_block(prev, next),
                None => Err("membership service stopped".into()),
            }),
        });
        let s = svc.clone();
        ctx.network.register(
            MEMBERSHIP_SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move { s.handle_peer(msg).await })
            }),
        );
        let s = svc.clone();
        ctx.clients.register(
            MEMBERSHIP_SERVICE,
            Arc::new(move |method, body| {
                let s = s.clone();
                Box::pin(async move { s.client_request(method, body).await })
            }),
        );
        ctx.http.add_router(super::http::router(svc.clone()));
        let weak = Arc::downgrade(&svc.shared);
        ctx.status.add(
            MEMBERSHIP_SERVICE,
            Arc::new(move || {
                let mut m = std::collections::BTreeMap::new();
                if let Some(shared) = weak.upgrade() {
                    let s = MembershipService { shared };
                    let r = s.record();
                    m.insert("State".into(), r.state.as_str().into());
                    m.insert("Network".into(), r.network.unwrap_or_default());
                    if let Some((b, cfg)) = s.latest() {
                        m.insert("NetworkIndex".into(), b.index.to_string());
                        m.insert("RosterSize".into(), b.roster.map(|r| r.members.len()).unwrap_or(0).to_string());
                        m.insert("Members".into(), cfg.members.len().to_string());
                        m.insert("MembersFollowRoster".into(), cfg.members_follow_roster.to_string());
                    }
                    m.insert("OpenProposals".into(), s.open_count().to_string());
                    m.insert("Synced".into(), s.synced().to_string());
                }
                m
            }),
        );
        let s = svc.clone();
        let token = ctx.tasks.token().clone();
        ctx.tasks.spawn(async move {
            loop {
                // Registered before the tick looks, so a change during it is not missed.
                let woken = s.shared.wake.notified();
                let started = tokio::time::Instant::now();
                s.tick().await;
                // An idle node sleeps longer: only its operator (a state change) gives it work.
                let idle = s.idle();
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(if idle { IDLE_TICK } else { TICK }) => {}
                    _ = woken => {}
                }
                // At most one tick per `TICK`, however often blocks are stored.
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep_until(started + TICK) => {}
                }
            }
        });
        Ok(svc)
    }

    async fn stop(&self) {
        self.shared.ctx.status.remove(MEMBERSHIP_SERVICE);
        stop_service(&self.shared.ctx, MEMBERSHIP_SERVICE).await;
    }
}

impl MembershipService {
    /// This node's membership record (state, network, join in progress).
    pub fn record(&self) -> NodeRecord {
        lock(&self.shared.record).clone()
    }

    pub fn node_id(&self) -> String {
        self.shared.ctx.config.node_id()
    }

    /// Unix ms when this node started.
    pub fn started_ms(&self) -> u64 {
        now_ms().saturating_sub(self.shared.ctx.started.elapsed().as_millis() as u64)
    }

    /// The `Recovery` status section of a node restored from a backup (None otherwise): whether it
    /// still catches up from a quorum before it signs (see `skipchain::recovery`).
    pub fn recovery(&self) -> Option<std::collections::BTreeMap<String, String>> {
        let sections = self.shared.ctx.status.sections();
        sections.into_iter().find(|(name, _)| name == crate::services::skipchain::RECOVERY_SECTION).map(|(_, s)| s)
    }

    pub fn state(&self) -> NodeState {
        lock(&self.shared.record).state
    }

    /// Adds a hook called with the new roster each time this node appends a roster change.
    pub fn on_roster_change(&self, hook: RosterHook) {
        lock(&self.shared.roster_hooks).push(hook);
    }

    /// Whether the newest roster of the network this node is part of has exactly the identity
    /// keys `members` (in any order), after catching the network chain up once when it does not
    /// yet: a roster change the members appended lately may not have reached this node. The beacon
    /// service asks it before it takes part in a resharing (`beacon::approval`).
    pub async fn network_decided(&self, members: &[IdentityPublicKey]) -> bool {
        let wanted: HashSet<[u8; 32]> = members.iter().map(|k| *k.as_bytes()).collect();
        let decided = |this: &Self| {
            this.state() == NodeState::PartOfNetwork
                && this.latest().and_then(|(block, _)| block.roster).is_some_and(|r| {
                    r.members.len() == members.len()
                        && wanted.len() == members.len()
                        && r.members
                            .iter()
                            .all(|m| <[u8; 32]>::try_from(m.identity.as_slice()).is_ok_and(|k| wanted.contains(&k)))
                })
        };
        if decided(self) {
            return true;
        }
        match self.network() {
            Some(net) if self.state() == NodeState::PartOfNetwork => {
                self.shared.skipchain.catch_up_chain(&net).await > 0 && decided(self)
            }
            _ => false,
        }
    }

    /// [`Self::network_decided`] as the beacon service asks it, holding this service weakly (a
    /// stopped node's services are dropped).
    pub fn decided_members_check(&self) -> crate::services::beacon::MembersDecided {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move |members| {
            let weak = weak.clone();
            Box::pin(async move {
                match weak.upgrade() {
                    Some(shared) => MembershipService { shared }.network_decided(&members).await,
                    None => false,
                }
            })
        })
    }

    /// When this node last reached `PartOfNetwork` in this run.
    pub fn part_of_network_since(&self) -> Option<Instant> {
        *lock(&self.shared.joined_at)
    }

    /// The genesis id of the network chain this node follows.
    pub fn network(&self) -> Option<Vec<u8>> {
        lock(&self.shared.record).network.as_ref().and_then(|h| hex::decode(h).ok())
    }

    /// The newest network block this node holds, with its config.
    pub fn latest(&self) -> Option<(SkipBlock, NetworkConfig)> {
        let net = self.network()?;
        let b = self.shared.skipchain.store().latest(&net)?;
        let cfg = rules::config_of(&b)?;
        Some((b, cfg))
    }

    /// In no network, with no join under way and no open proposal: the tick slows to `IDLE_TICK`.
    fn idle(&self) -> bool {
        let rec = self.record();
        rec.network.is_none()
            && rec.join.as_ref().is_none_or(|j| j.refused.is_some())
            && matches!(rec.state, NodeState::Initialized | NodeState::Retired)
            && self.shared.store.open_ids().is_empty()
    }

    fn set_state(&self, state: NodeState, network: Option<String>, join: Option<Option<JoinRecord>>) {
        let changed = self.change_record(|r| {
            r.state = state;
            if network.is_some() {
                r.network = network;
            }
            if let Some(j) = join {
                r.join = j;
            }
        });
        if let Err(e) = changed {
            warn!(error = %e, "storing the membership state");
        }
    }

    /// Changes this node's record in one step and stores it (under the lock, so that records are
    /// stored in the order they were made); wakes the tick.
    fn change_record(&self, change: impl FnOnce(&mut NodeRecord)) -> Result<(), StorageError> {
        let stored = {
            let mut r = lock(&self.shared.record);
            let before = r.state;
            change(&mut r);
            if r.state != before {
                info!(from = before.as_str(), to = r.state.as_str(), "membership state");
                r.since_ms = now_ms();
                if r.state == NodeState::PartOfNetwork {
                    *lock(&self.shared.joined_at) = Some(Instant::now());
                }
            }
            self.shared.store.set_record(&r)
        };
        self.shared.wake.notify_one();
        stored
    }

    /// Founds a network of `roster` (this node must be in it) with this node's consent: makes the
    /// network chain's genesis (a function of the roster and the threshold, so every founder makes
    /// the same one), stores and sends it, and follows it. The governance members are the roster's
    /// identity keys.
    ///
    /// A node follows a network only with its operator's consent: this call (the embedder's, or the
    /// operator's through the local admin channel: `conode network create`), or a join. Each
    /// founder's operator founds on its own node; the others hold the genesis meanwhile without
    /// following it. Founding the network this node follows already returns its genesis.
    pub async fn create_network(&self, roster: &Roster, threshold: u32) -> Result<SkipBlock, MembershipError> {
        self.create_network_with_members(roster, threshold, &[]).await
    }

    /// [`Self::create_network`] governed by the separate member keys `members` (Ed25519 public
    /// keys, as CCF's consortium; empty: the roster's identity keys).
    pub async fn create_network_with_members(
        &self,
        roster: &Roster,
        threshold: u32,
        members: &[Vec<u8>],
    ) -> Result<SkipBlock, MembershipError> {
        if roster.index_of(&self.shared.ctx.config.identity.public()).is_none() {
            return Err(RuleError::Invalid("this node is not in the roster".into()).into());
        }
        let cfg = rules::genesis_config(roster, threshold, members)?;
        let owners = roster.servers.iter().map(|s| s.public).collect();
        let genesis = self.shared.skipchain.genesis_block(roster, 2, 12, owners, cfg.encode_to_vec())?;
        let _founding = self.shared.founding.lock().await;
        {
            let r = lock(&self.shared.record);
            // A retired node may found another network (or its old one again).
            let follows = r.network.as_ref().filter(|_| r.state != NodeState::Retired);
            match (follows, &r.join) {
                (Some(net), _) if *net == hex::encode(&genesis.hash) => return Ok(genesis),
                (Some(net), _) => {
                    return Err(MembershipError::Conflict(format!(
                        "this node is {} in network {net} already",
                        r.state.as_str()
                    )))
                }
                (None, Some(j)) if j.refused.is_none() => {
                    return Err(MembershipError::Conflict(format!(
                        "this node asked to join network {} (still {}): it founds no other network",
                        j.network,
                        r.state.as_str()
                    )))
                }
                _ => {}
            }
        }
        // The consent, with a refused join and a network it retired from forgotten.
        self.change_record(|r| {
            r.founding = Some(hex::encode(&genesis.hash));
            r.join = None;
            r.network = None;
            if r.state == NodeState::Retired {
                r.state = NodeState::Initialized;
            }
        })?;
        self.shared.skipchain.publish_genesis(&genesis, roster).await?;
        self.sync_network();
        info!(network = %short(&genesis.hash), members = roster.len(), "network founded");
        Ok(genesis)
    }

    /// [`Self::create_network_with_members`] from its wire form (the admin channel's request).
    pub async fn create_network_from(&self, req: &CreateNetwork) -> Result<SkipBlock, MembershipError> {
        let roster = Roster::from_toml_str(std::path::Path::new("roster_toml"), &req.roster_toml)
            .map_err(|e| RuleError::Invalid(e.to_string()))?;
        self.create_network_with_members(&roster, req.threshold, &req.members).await
    }

    /// Takes a signed proposal (from a client, or gossiped by a member); returns its status.
    pub async fn propose(&self, p: Proposal, gossip: bool) -> Result<ProposalStatus, MembershipError> {
        let net = self.network().ok_or(MembershipError::NoNetwork)?;
        let (block, cfg) = self.latest().ok_or(MembershipError::NoNetwork)?;
        let id = rules::check_proposal(&net, &cfg, &p)?;
        if self.shared.store.proposal(&id).is_some() {
            if gossip {
                return Err(MembershipError::Conflict(format!("proposal {} exists already", short(&id))));
            }
            return Ok(self.status_of(&id));
        }
        let roster = block.roster.clone().unwrap_or_default();
        rules::apply(&cfg, &roster, p.action.as_ref().ok_or_else(|| RuleError::Invalid("no action".into()))?)?;
        check_lifetime(&p, now_ms())?;
        self.check_room_for(&p)?;
        self.shared.store.put_proposal(&id, &p)?;
        // An add_node for a node whose join request this node holds answers that request.
        if let Some(action::Kind::AddNode(a)) = p.action.as_ref().and_then(|a| a.kind.as_ref()) {
            if let Ok(s) = rules::joining_server(a) {
                if self.shared.store.has_join(s.public.as_bytes()) {
                    self.shared.store.link_join(s.public.as_bytes(), &id)?;
                }
            }
        }
        info!(proposal = %short(&id), action = %describe(p.action.as_ref()), "proposal");
        if gossip {
            self.gossip("Proposal", p.encode_to_vec());
        }
        Ok(self.status_of(&id))
    }

    /// Whether proposal `p` fits in its pool of open proposals: by proposer, add_node ones
    /// (`MAX_OPEN_ADD_NODES_PER_PROPOSER`) and the others (`MAX_OPEN_PROPOSALS_PER_PROPOSER`).
    fn check_room_for(&self, p: &Proposal) -> Result<(), MembershipError> {
        let store = &self.shared.store;
        let kind = is_add_node(p);
        let (limit, what) = if kind {
            (MAX_OPEN_ADD_NODES_PER_PROPOSER, "add_node proposals")
        } else {
            (MAX_OPEN_PROPOSALS_PER_PROPOSER, "proposals (add_node aside)")
        };
        let now = now_ms();
        // Expired ones count no more (the next tick closes them).
        let same_pool = store
            .open_ids()
            .iter()
            .filter_map(|id| store.proposal(id))
            .filter(|o| o.proposer == p.proposer && is_add_node(o) == kind && now < expires_ms(o))
            .count();
        if same_pool >= limit {
            return Err(MembershipError::Conflict(format!(
                "{limit} {what} of member {} are open already; vote on them first",
                short(&p.proposer)
            )));
        }
        Ok(())
    }

    /// Takes a signed ballot. From a client (`gossip`): refused when the member voted already; the
    /// ballot goes to the other members, and when it passes the proposal this node appends its
    /// block before answering.
    pub async fn vote(&self, b: Ballot, gossip: bool) -> Result<ProposalStatus, MembershipError> {
        let net = self.network().ok_or(MembershipError::NoNetwork)?;
        let (_, cfg) = self.latest().ok_or(MembershipError::NoNetwork)?;
        let id = b.proposal_id.clone();
        if self.shared.store.proposal(&id).is_none() {
            // A proposal this node missed (it was down or cut off): ask the members for it.
            self.trigger_sync();
            return Err(MembershipError::UnknownProposal(short(&id)));
        }
        rules::check_ballot(&net, &cfg, &b)?;
        self.review(&id);
        if let Some(o) = self.shared.store.outcome(&id) {
            return Err(MembershipError::Closed { id: short(&id), state: o.state });
        }
        if let Some(old) = self.shared.store.ballot(&id, &b.member) {
            if !gossip && old == b {
                return Ok(self.status_of(&id));
            }
            return Err(RuleError::DuplicateBallot { member: short(&b.member), proposal: short(&id) }.into());
        }
        self.shared.store.put_ballot(&b)?;
        debug!(proposal = %short(&id), member = %short(&b.member), approve = b.approve, "ballot");
        let mut failure = None;
        if gossip {
            self.gossip("Ballot", b.encode_to_vec());
            if matches!(rules::tally(&cfg, &self.shared.store.ballots(&id)), Tally::Open { .. }) {
                // Ballots cast at other members may still be on their way here (gossip runs in
                // the background): the voter whose ballot completes the threshold would be told
                // "open" and the block would wait for the fallback append. Ask the members first.
                Box::pin(self.gather_ballots(&id)).await;
            }
            if matches!(rules::tally(&cfg, &self.shared.store.ballots(&id)), Tally::Passed { .. }) {
                if let Err(e) = self.finalize_anywhere(&id).await {
                    warn!(proposal = %short(&id), error = %e, "appending the passed proposal");
                    failure = Some(format!("passed; its block is not appended yet: {e}"));
                }
            }
        }
        self.review(&id);
        let mut status = self.status_of(&id);
        if let (Some(f), true) = (failure, status.state == "open") {
            status.reason = f;
        }
        Ok(status)
    }

    /// The status of every proposal this node knows, newest first.
    pub fn proposals(&self) -> Vec<ProposalStatus> {
        let mut all = self.shared.store.proposals();
        all.sort_by_key(|(_, p)| std::cmp::Reverse(p.created));
        all.iter().map(|(id, _)| self.status_of(id)).collect()
    }

    pub fn status_of(&self, id: &[u8]) -> ProposalStatus {
        let st = &self.shared.store;
        let p = st.proposal(id);
        let ballots = st.ballots(id);
        let cfg = self.latest().map(|(_, c)| c).unwrap_or_default();
        let (yes, no) = match rules::tally(&cfg, &ballots) {
            Tally::Open { yes, no } | Tally::Passed { yes, no } | Tally::Rejected { yes, no } => (yes, no),
        };
        let outcome = st.outcome(id);
        ProposalStatus {
            id: id.to_vec(),
            proposal: p,
            state: outcome.as_ref().map(|o| o.state.clone()).unwrap_or_else(|| "open".into()),
            yes,
            no,
            needed: rules::needed(&cfg),
            members: cfg.members.len() as u32,
            reason: outcome.map(|o| o.reason).unwrap_or_default(),
            ballots,
        }
    }

    /// Sends `payload` to every other member of the newest roster, in the background.
    fn gossip(&self, protocol: &'static str, payload: Vec<u8>) {
        let Some((block, _)) = self.latest() else { return };
        let Ok(roster) = block.roster.as_ref().map(config_roster).transpose() else { return };
        let me = self.shared.ctx.config.identity.public();
        for m in roster.into_iter().flat_map(|r| r.servers).filter(|m| m.public != me) {
            let (net, payload) = (self.shared.ctx.network.clone(), payload.clone());
            self.shared.ctx.tasks.spawn(async move {
                // A link opened while this node was a stranger to the peer (its join) may be
                // closed by the peer on the first request it reads in stranger mode: redial.
                // A ballot may overtake its proposal: send it again.
                for attempt in 1..=GOSSIP_ATTEMPTS {
                    match net.request(&m, MEMBERSHIP_SERVICE, protocol, &[], payload.clone(), PEER_TIMEOUT).await {
                        Ok(_) => return,
                        // Refused for good (a duplicate, a closed proposal): no point repeating.
                        Err(NetError::Remote { message, .. }) if !message.contains("unknown proposal") => {
                            debug!(peer = %m.address, %message, "membership gossip refused");
                            return;
                        }
                        // Not delivered, or a ballot that overtook its proposal: again, later.
                        Err(e) => {
                            debug!(peer = %m.address, error = %e, attempt, "membership gossip not delivered");
                            tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                        }
                    }
                }
            });
        }
    }

    /// The index of the network chain's block that applied proposal `id`, if one did.
    fn applied_at(&self, id: &[u8]) -> Option<u64> {
        let net = self.network()?;
        lock(&self.shared.applied).follow(self.shared.skipchain.store(), &net).index_of(id)
    }

    /// The governor's check (every member of the outgoing roster, before it cosigns).
    fn check_block(&self, prev: &SkipBlock, next: &SkipBlock) -> Result<(), String> {
        let st = self.shared.skipchain.store();
        // Fails closed: with a block up to `prev` missing here, any proposal counts as applied.
        let applied = |id: &[u8; 32]| {
            let mut indexes = lock(&self.shared.applied);
            let index = indexes.follow(st, next.chain_id());
            index.read_to() < prev.index || index.index_of(id).is_some_and(|i| i <= prev.index)
        };
        rules::check_block(prev, next, &applied).map_err(|e| e.to_string())?;
        // A proposal that expired (here, beyond the clocks' skew) is not applied late: operators
        // were told to propose it again.
        match rules::config_of(next).and_then(|c| c.passed?.proposal) {
            Some(p) => still_applicable(&p, now_ms()),
            None => Ok(()),
        }
    }

    /// The members that can append the next network block: in the newest roster and in the
    /// roster of every block the next one links back to (each forward link is a cosi round run by
    /// a member of its source block's roster).
    fn appenders(&self) -> Vec<ServerIdentity> {
        let (Some(net), Some((latest, _))) = (self.network(), self.latest()) else { return vec![] };
        let st = self.shared.skipchain.store();
        let index = latest.index + 1;
        let height = height_for(index, latest.base_height, latest.maximum_height) as usize;
        let sources: Vec<SkipBlock> = (0..height)
            .filter_map(|h| index.checked_sub(level_distance(latest.base_height, h)))
            .filter_map(|i| st.block_at(&net, i))
            .collect();
        let Ok(roster) = latest.roster.as_ref().map(config_roster).transpose() else { return vec![] };
        roster
            .into_iter()
            .flat_map(|r| r.servers)
            .filter(|m| {
                sources.iter().all(|b| {
                    b.roster.as_ref().is_some_and(|r| r.members.iter().any(|x| x.identity == m.public.as_bytes()))
                })
            })
            .collect()
    }

    /// Appends passed proposal `id` here when this node can, else through a member that can
    /// (it gets the proposal and the ballots with the request).
    async fn finalize_anywhere(&self, id: &[u8]) -> Result<u64, MembershipError> {
        let me = self.shared.ctx.config.identity.public();
        let appenders = self.appenders();
        if appenders.iter().any(|m| m.public == me) {
            return self.finalize(id).await.map(|b| b.index);
        }
        let (_, cfg) = self.latest().ok_or(MembershipError::NoNetwork)?;
        let p = self.shared.store.proposal(id).ok_or_else(|| MembershipError::UnknownProposal(short(id)))?;
        let passed =
            PassedProposal { proposal: Some(p), ballots: rules::passing_ballots(&cfg, &self.shared.store.ballots(id)) };
        let mut last = String::from("no member can append");
        for m in appenders {
            let req = passed.encode_to_vec();
            match self.shared.ctx.network.request(&m, MEMBERSHIP_SERVICE, "Finalize", &[], req, FINALIZE_TIMEOUT).await
            {
                Ok(reply) if reply.len() == 8 => {
                    let index = u64::from_be_bytes(reply.try_into().unwrap_or([0; 8]));
                    self.close(id, "accepted", "", Some(index));
                    return Ok(index);
                }
                Ok(_) => last = format!("{}: bad reply", m.address),
                Err(e) => last = format!("{}: {e}", m.address),
            }
        }
        Err(MembershipError::Conflict(last))
    }

    /// Appends the network block of passed proposal `id`.
    async fn finalize(&self, id: &[u8]) -> Result<SkipBlock, MembershipError> {
        let _one = self.shared.appending.lock().await;
        // The newest block is read before the applied proposals: a block stored in between (another
        // member appended it) then shows as applied, not as a proposal that no longer applies.
        let net = self.network().ok_or(MembershipError::NoNetwork)?;
        let (latest, cfg) = self.latest().ok_or(MembershipError::NoNetwork)?;
        if let Some(index) = self.applied_at(id) {
            self.close(id, "accepted", "", Some(index));
            return Err(MembershipError::Closed { id: short(id), state: "accepted".into() });
        }
        let p = self.shared.store.proposal(id).ok_or_else(|| MembershipError::UnknownProposal(short(id)))?;
        let ballots = rules::passing_ballots(&cfg, &self.shared.store.ballots(id));
        let roster = latest.roster.clone().unwrap_or_default();
        let action = p.action.clone().unwrap_or_default();
        let (mut new_cfg, new_roster) = match rules::apply(&cfg, &roster, &action) {
            Ok(x) => x,
            Err(e) => {
                self.close(id, "failed", &e.to_string(), None);
                return Err(e.into());
            }
        };
        new_cfg.passed = Some(PassedProposal { proposal: Some(p), ballots });
        let changed = new_roster.id() != roster.id();
        let new_roster = if changed { Some(config_roster(&new_roster)?) } else { None };
        let identity = &self.shared.ctx.config.identity;
        let append = Append::signed(identity, &net, latest.index + 1, new_cfg.encode_to_vec(), new_roster.as_ref())?;
        let block = self.shared.skipchain.append(append).await?;
        self.close(id, "accepted", "", Some(block.index));
        if changed {
            if let Some(Ok(roster)) = block.roster.as_ref().map(config_roster) {
                let hooks = lock(&self.shared.roster_hooks).clone();
                for h in hooks {
                    h(roster.clone());
                }
            }
        }
        info!(proposal = %short(id), index = block.index, "proposal applied to the network");
        Ok(block)
    }

    fn close(&self, id: &[u8], state: &str, reason: &str, index: Option<u64>) {
        // An outcome is final, but "expired" (by this node's clock) gives way to "accepted": the
        // chain applied it (another member's clock was behind, within the skew allowed).
        if self.shared.store.outcome(id).is_some_and(|o| o.state != EXPIRED || state != "accepted") {
            return;
        }
        let o = Outcome { state: state.into(), reason: reason.into(), index };
        if let Err(e) = self.shared.store.set_outcome(id, &o) {
            warn!(error = %e, "storing a proposal outcome");
        }
        lock(&self.shared.passed_at).remove(id);
    }

    /// Marks the proposals this node let expire that the network chain applied all the same as
    /// accepted.
    fn accept_applied_expired(&self) {
        let newest = self.network().and_then(|net| self.shared.skipchain.store().latest_index(&net));
        if std::mem::replace(&mut *lock(&self.shared.applied_checked_at), newest) == newest {
            return;
        }
        let Some(net) = self.network() else { return };
        let applied: Vec<(Vec<u8>, u64)> = {
            let mut index = lock(&self.shared.applied);
            index.follow(self.shared.skipchain.store(), &net).all().map(|(id, i)| (id.to_vec(), i)).collect()
        };
        let st = &self.shared.store;
        for (id, index) in applied {
            if st.outcome(&id).is_some_and(|o| o.state == EXPIRED) {
                self.close(&id, "accepted", "", Some(index));
            }
        }
    }

    /// Closes proposal `id` when it was applied, cannot pass or cannot apply any more; notes
    /// when it passed. Returns whether this node should append it now (fallback).
    fn review(&self, id: &[u8]) -> bool {
        let st = &self.shared.store;
        if st.outcome(id).is_some() {
            return false;
        }
        // Newest block first, then the applied proposals (see `finalize`): a block that applies
        // `id` stored between the two reads must not make `id` look as if it could not apply.
        let latest = self.latest();
        if let Some(index) = self.applied_at(id) {
            self.close(id, "accepted", "", Some(index));
            return false;
        }
        let (Some((block, cfg)), Some(p)) = (latest, st.proposal(id)) else { return false };
        let roster = block.roster.clone().unwrap_or_default();
        if let Err(e) = rules::apply(&cfg, &roster, &p.action.clone().unwrap_or_default()) {
            self.close(id, "failed", &e.to_string(), None);
            return false;
        }
        match rules::tally(&cfg, &st.ballots(id)) {
            Tally::Rejected { yes, no } => {
                self.close(id, "rejected", &format!("{no} no, {yes} yes: the threshold cannot be reached"), None);
                false
            }
            // A proposal that passed is applied whatever its age; an open one expires (its pool
            // slot, and a join request's slot, are free again).
            Tally::Open { yes, no } if now_ms() >= expires_ms(&p) => {
                let hours = (expires_ms(&p) - p.created) / 3_600_000;
                self.close(id, EXPIRED, &format!("not passed within {hours} h ({yes} yes, {no} no)"), None);
                false
            }
            Tally::Passed { .. } => {
                let mut passed = lock(&self.shared.passed_at);
                let since = *passed.entry(id.to_vec()).or_insert_with(Instant::now);
                since.elapsed() >= FALLBACK_APPEND
            }
            Tally::Open { .. } => false,
        }
    }

    /// The open proposals this node holds with their ballots, newest first, then those of `asked`
    /// (open at the asker; closed here, maybe) it holds; bounded in number and size (what a `Sync`
    /// answers).
    fn open_proposals(&self, asked: &[Vec<u8>]) -> OpenProposals {
        let st = &self.shared.store;
        let mut open: Vec<(Vec<u8>, Proposal)> =
            st.open_ids().into_iter().filter_map(|id| Some((id.clone(), st.proposal(&id)?))).collect();
        open.sort_by_key(|(_, p)| std::cmp::Reverse(p.created));
        open.truncate(MAX_SYNC_PROPOSALS);
        for id in asked.iter().take(MAX_SYNC_PROPOSALS) {
            if !open.iter().any(|(o, _)| o == id) {
                if let Some(p) = st.proposal(id) {
                    open.push((id.clone(), p));
                }
            }
        }
        let mut out = OpenProposals::default();
        let mut size = 0;
        for (id, p) in open {
            let item = OpenProposal { proposal: Some(p), ballots: st.ballots(&id) };
            size += item.encoded_len() + 8;
            if size > MAX_SYNC_REPLY {
                break;
            }
            out.proposals.push(item);
        }
        out
    }

    /// Asks `peer` for its open proposals and ballots and takes those whose signatures verify
    /// under this node's current network config, exactly as if they had been gossiped (the
    /// peer's tally is never read: this node counts the ballots itself). With `focus`, asks for
    /// that proposal only (beside the peer's newest open ones, which it always sends); otherwise
    /// for the open ones here. Returns how many proposals and ballots were new here.
    async fn sync_from(&self, peer: &ServerIdentity, focus: Option<&[u8]>) -> Result<u64, MembershipError> {
        let net = self.network().ok_or(MembershipError::NoNetwork)?;
        let open = match focus {
            Some(id) => vec![id.to_vec()],
            None => {
                let mut open = self.shared.store.open_ids();
                open.truncate(MAX_SYNC_PROPOSALS);
                open
            }
        };
        let req = SyncRequest { network: net, open }.encode_to_vec();
        let reply = self
            .shared
            .ctx
            .network
            .request(peer, MEMBERSHIP_SERVICE, "Sync", &[], req, PEER_TIMEOUT)
            .await
            .map_err(|e| MembershipError::Sync(format!("{}: {e}", peer.address)))?;
        if reply.len() > MAX_SYNC_REPLY {
            return Err(MembershipError::Sync(format!(
                "{}: answer of {} bytes, at most {MAX_SYNC_REPLY}",
                peer.address,
                reply.len()
            )));
        }
        let open = OpenProposals::decode(reply.as_slice())
            .map_err(|e| MembershipError::Sync(format!("{}: OpenProposals: {e}", peer.address)))?;
        let mut learned = 0;
        for item in open.proposals.into_iter().take(2 * MAX_SYNC_PROPOSALS) {
            let Some(p) = item.proposal else { continue };
            let id = proposal_id(&p);
            if self.shared.store.proposal(&id).is_none() {
                match self.propose(p, false).await {
                    Ok(_) => {
                        learned += 1;
                        // Counted as soon as it is visible (tests and the status page read both).
                        lock(&self.shared.sync).learned += 1;
                    }
                    Err(e) => {
                        debug!(peer = %peer.address, proposal = %short(&id), error = %e, "sync: proposal not taken");
                        continue;
                    }
                }
            }
            // One ballot per current member at most: padding from non-members cannot crowd out
            // the real ones, and each is checked by `vote` as a gossiped one would be.
            let members = self.latest().map(|(_, c)| c.members).unwrap_or_default();
            let mut seen = HashSet::new();
            for b in item.ballots {
                if b.proposal_id != id || !members.contains(&b.member) || !seen.insert(b.member.clone()) {
                    continue;
                }
                if self.shared.store.ballot(&id, &b.member).is_some() {
                    continue;
                }
                match self.vote(b, false).await {
                    Ok(_) => {
                        learned += 1;
                        lock(&self.shared.sync).learned += 1;
                    }
                    Err(MembershipError::Closed { .. }) => break,
                    Err(e) => {
                        debug!(peer = %peer.address, proposal = %short(&id), error = %e, "sync: ballot not taken")
                    }
                }
            }
        }
        if learned > 0 {
            info!(peer = %peer.address, learned, "membership sync: learned missed proposals and ballots");
        }
        Ok(learned)
    }

    /// Fetches the other members' ballots of proposal `id` at once (`sync_from` each, focused on
    /// it), for at most `BALLOT_GATHER_WAIT`: a member that is down or slow delays a vote that
    /// little.
    async fn gather_ballots(&self, id: &[u8]) {
        let peers = self.other_members();
        let asks = peers.iter().map(|peer| self.sync_from(peer, Some(id)));
        if tokio::time::timeout(BALLOT_GATHER_WAIT, futures_util::future::join_all(asks)).await.is_err() {
            debug!("gathering ballots before a tally: not every member answered in time");
        }
    }

    /// How many proposals are open here.
    pub fn open_count(&self) -> usize {
        self.shared.store.open_ids().len()
    }

    /// Proposals and ballots this node learned through syncs in this run.
    pub fn synced(&self) -> u64 {
        lock(&self.shared.sync).learned
    }

    /// The other nodes of the newest roster.
    fn other_members(&self) -> Vec<ServerIdentity> {
        let me = self.shared.ctx.config.identity.public();
        let Some((block, _)) = self.latest() else { return vec![] };
        match block.roster.as_ref().map(config_roster) {
            Some(Ok(r)) => r.servers.into_iter().filter(|m| m.public != me).collect(),
            _ => vec![],
        }
    }

    /// Starts a sync in the background unless one runs (or periodic ones are paused and this one
    /// was not `triggered`): with every other member (`all`), else with the next member in turn.
    fn start_sync(&self, all: bool, triggered: bool) {
        let peers = self.other_members();
        if peers.is_empty() {
            return;
        }
        let peers = {
            let mut st = lock(&self.shared.sync);
            if st.running || (st.periodic_paused && !triggered) {
                return;
            }
            st.running = true;
            st.last = Some(Instant::now());
            if all {
                peers
            } else {
                st.next = st.next.wrapping_add(1);
                vec![peers[st.next % peers.len()].clone()]
            }
        };
        let s = self.clone();
        self.shared.ctx.tasks.spawn(async move {
            for peer in peers {
                if let Err(e) = s.sync_from(&peer, None).await {
                    debug!(error = %e, "membership sync");
                }
            }
            lock(&s.shared.sync).running = false;
        });
    }

    /// Stops (or resumes) this node's periodic syncs: a test that needs a member to miss the
    /// ballots cast elsewhere. Syncs a ballot for an unknown proposal triggers still run.
    #[doc(hidden)]
    pub fn pause_periodic_sync(&self, paused: bool) {
        lock(&self.shared.sync).periodic_paused = paused;
    }

    /// Whether a sync is running now (tests wait for the last one after a pause).
    #[doc(hidden)]
    pub fn sync_running(&self) -> bool {
        lock(&self.shared.sync).running
    }

    /// A ballot for an unknown proposal came in: ask every member (at most once a second).
    fn trigger_sync(&self) {
        {
            let mut st = lock(&self.shared.sync);
            if st.triggered.is_some_and(|t| t.elapsed() < TRIGGERED_SYNC_GAP) {
                return;
            }
            st.triggered = Some(Instant::now());
        }
        self.start_sync(true, true);
    }

    /// Periodic work: follow the network chain (state changes, admission), fetch what was missed
    /// (every member at start, one in turn every `SYNC_PERIOD`), review open proposals, drive a
    /// pending join.
    async fn tick(&self) {
        // Follow the network chain when a block was stored or this node's record changed since
        // the last time, and every `SYNC_PERIOD` in case anything else did: an idle node no
        // longer scans its chains ten times a second.
        let seen = (self.shared.skipchain.store().generation(), self.record());
        let due = {
            let mut followed = lock(&self.shared.followed);
            let same =
                followed.as_ref().is_some_and(|(g, r, at)| *g == seen.0 && *r == seen.1 && at.elapsed() < SYNC_PERIOD);
            if !same {
                *followed = Some((seen.0, seen.1, Instant::now()));
            }
            !same
        };
        if due {
            self.sync_network();
            self.accept_applied_expired();
        }
        if self.state() == NodeState::PartOfNetwork {
            let last = lock(&self.shared.sync).last;
            match last {
                None => self.start_sync(true, false),
                Some(t) if t.elapsed() >= SYNC_PERIOD => self.start_sync(false, false),
                _ => {}
            }
        }
        let open = self.shared.store.open_ids();
        for id in open {
            let me = self.shared.ctx.config.identity.public();
            if self.review(&id) && self.appenders().iter().any(|m| m.public == me) {
                if let Err(e) = self.finalize(&id).await {
                    debug!(proposal = %short(&id), error = %e, "fallback append");
                }
                lock(&self.shared.passed_at).insert(id.clone(), Instant::now());
            }
        }
        self.drive_join().await;
        self.forget_closed();
    }

    /// Forgets, at most once per `FORGET_CLOSED_EVERY`, the proposals closed (not accepted) and
    /// made more than `CLOSED_KEPT` ago, and their join requests (see
    /// `MembershipStore::forget_closed`).
    fn forget_closed(&self) {
        {
            let mut last = lock(&self.shared.forgot_closed_at);
            if last.is_some_and(|at| at.elapsed() < FORGET_CLOSED_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.shared.store.forget_closed(now_ms(), CLOSED_KEPT.as_millis() as u64) {
            Ok((0, 0)) => {}
            Ok((proposals, joins)) => info!(proposals, joins, "forgot proposals and join requests closed long ago"),
            Err(e) => warn!(error = %e, "could not forget closed proposals"),
        }
    }

    /// Adopts the network chain this node is in, and moves its state with the newest roster.
    fn sync_network(&self) {
        let rec = self.record();
        let me = self.shared.ctx.config.identity.public();
        let st = self.shared.skipchain.store();
        let in_roster =
            |b: &SkipBlock| b.roster.as_ref().is_some_and(|r| r.members.iter().any(|m| m.identity == me.as_bytes()));
        let net = match (&rec.network, &rec.join) {
            (Some(n), _) => hex::decode(n).ok(),
            (None, Some(j)) => hex::decode(&j.network).ok().filter(|n| st.latest(n).is_some_and(|b| in_roster(&b))),
            // Only the network its operator founded: a genesis anyone may push (or a roster
            // change naming this node) makes no node follow a network it did not agree to.
            (None, None) => rec
                .founding
                .as_deref()
                .and_then(|f| hex::decode(f).ok())
                .filter(|n| st.latest(n).is_some_and(|b| in_roster(&b))),
        };
        let Some(net) = net else { return };
        let Some(latest) = st.latest(&net) else { return };
        if let Some(r) = &latest.roster {
            self.shared
                .ctx
                .network
                .admit(r.members.iter().filter_map(|m| IdentityPublicKey::from_bytes(&m.identity).ok()));
        }
        let here = in_roster(&latest);
        let net_hex = Some(hex::encode(&net));
        match (rec.state, here) {
            // A retired node that its members add again follows its network again, unless its
            // operator made it join or found another one since (which cleared its old network).
            (NodeState::Initialized | NodeState::Pending | NodeState::Trusted | NodeState::Retired, true) => {
                self.set_state(NodeState::PartOfNetwork, net_hex, Some(None));
                *lock(&self.shared.join_target) = None;
            }
            (NodeState::PartOfNetwork, false) => self.set_state(NodeState::Retired, net_hex, None),
            _ => {}
        }
    }

    /// Asks to join `network` through the member at `target_url`; the node is `Pending` until the
    /// members vote (the request survives restarts). `retry` is the time between polls.
    pub fn join(
        &self,
        target_url: &str,
        network: &[u8],
        node_data: &str,
        retry: Duration,
    ) -> Result<(), MembershipError> {
        let rec = self.record();
        if rec.network.is_some() && rec.state != NodeState::Retired {
            return Err(MembershipError::Conflict(format!(
                "this node is {} in network {}",
                rec.state.as_str(),
                rec.network.unwrap_or_default()
            )));
        }
        if let Some(j) = rec.join.as_ref().filter(|j| j.refused.is_none()) {
            if j.network == hex::encode(network) {
                *lock(&self.shared.retry) = retry;
                return Ok(()); // Still pending from before a restart: keep that request.
            }
        }
        if node_data.len() > rules::MAX_NODE_DATA {
            return Err(RuleError::Invalid(format!("node_data is above {} bytes", rules::MAX_NODE_DATA)).into());
        }
        if !node_data.is_empty() {
            serde_json::from_str::<serde_json::Value>(node_data)
                .map_err(|e| RuleError::Invalid(format!("node_data is not JSON: {e}")))?;
        }
        // Not while a founding runs: one of the two would be lost.
        let _founding = self
            .shared
            .founding
            .try_lock()
            .map_err(|_| MembershipError::Conflict("this node is founding a network".into()))?;
        *lock(&self.shared.retry) = retry;
        let join = JoinRecord {
            target_url: target_url.into(),
            network: hex::encode(network),
            node_data: node_data.into(),
            sent_to: None,
            proposal: None,
            refused: None,
        };
        // A retired node's old network (and an earlier founding) no longer hold it: the join
        // decides what it follows.
        self.change_record(|r| {
            r.state = NodeState::Pending;
            r.network = None;
            r.founding = None;
            r.join = Some(join);
        })?;
        Ok(())
    }

    /// The network's members, from a proof fetched at the target and verified from the genesis.
    async fn fetch_members(&self, j: &JoinRecord) -> Result<Vec<ServerIdentity>, MembershipError> {
        let net = hex::decode(&j.network).map_err(|e| MembershipError::Join(format!("network id: {e}")))?;
        let client = Client::parse(&j.target_url, PEER_TIMEOUT).map_err(|e| MembershipError::Join(e.to_string()))?;
        let proof = client.update_chain(&net).await.map_err(|e| MembershipError::Join(e.to_string()))?;
        let latest = verify_proof(&net, &proof, Policy::Default)
            .map_err(|e| MembershipError::Join(format!("the network chain does not verify: {e}")))?;
        if proof.first().and_then(rules::config_of).is_none() {
            return Err(MembershipError::Join("that chain is not a network chain".into()));
        }
        let roster = config_roster(latest.roster.as_ref().ok_or(MembershipError::NoNetwork)?)?;
        Ok(roster.servers)
    }

    async fn drive_join(&self) {
        let rec = self.record();
        let Some(j) = rec.join.clone().filter(|j| j.refused.is_none()) else { return };
        if !matches!(rec.state, NodeState::Pending | NodeState::Trusted) {
            return;
        }
        let target = lock(&self.shared.join_target).clone();
        if target.as_ref().is_some_and(|t| Instant::now() < t.next_poll) {
            return;
        }
        let retry = *lock(&self.shared.retry);
        let members = match target {
            Some(t) => t.members,
            None => match self.fetch_members(&j).await {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, target = %j.target_url, "join: cannot read the network");
                    *lock(&self.shared.join_target) =
                        Some(JoinTarget { members: vec![], next_poll: Instant::now() + retry });
                    return;
                }
            },
        };
        *lock(&self.shared.join_target) =
            Some(JoinTarget { members: members.clone(), next_poll: Instant::now() + retry });
        if members.is_empty() {
            *lock(&self.shared.join_target) = None;
            return;
        }
        let net = hex::decode(&j.network).unwrap_or_default();
        let me = self.shared.ctx.config.server_identity();
        let req = JoinRequest {
            network: net.clone(),
            public_toml: Roster::new(vec![me]).to_toml(),
            node_data: j.node_data.clone(),
        };
        // The member asked before first (it holds the proposal), then the others in order.
        let mut order: Vec<&ServerIdentity> = members.iter().collect();
        if let Some(sent) = &j.sent_to {
            order.sort_by_key(|m| m.public.to_hex() != *sent);
        }
        for m in order {
            let protocol = if j.sent_to.as_deref() == Some(&m.public.to_hex()) { "JoinStatus" } else { "Join" };
            let reply = self
                .shared
                .ctx
                .network
                .request(m, MEMBERSHIP_SERVICE, protocol, &[], req.encode_to_vec(), PEER_TIMEOUT)
                .await;
            let answer = match reply.map(|r| JoinAnswer::decode(r.as_slice())) {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    debug!(peer = %m.address, error = %e, "join: undecodable answer");
                    continue;
                }
                Err(e) => {
                    debug!(peer = %m.address, error = %e, "join: no answer");
                    continue;
                }
            };
            let mut j = j.clone();
            match answer.state.as_str() {
                "pending" => {
                    j.sent_to = Some(m.public.to_hex());
                    j.proposal = (!answer.proposal_id.is_empty()).then(|| hex::encode(&answer.proposal_id));
                    if self.record().join.as_ref() != Some(&j) {
                        self.set_state(NodeState::Pending, None, Some(Some(j)));
                    }
                }
                "trusted" => {
                    self.set_state(NodeState::Trusted, None, None);
                    if let Err(e) = self.shared.skipchain.catch_up(&net, m).await {
                        debug!(error = %e, "join: catching up on the network chain");
                    }
                    self.sync_network();
                }
                "refused" => {
                    warn!(reason = %answer.reason, "join refused");
                    j.refused = Some(answer.reason);
                    self.set_state(NodeState::Initialized, None, Some(Some(j)));
                }
                _ => {
                    // The member does not know the request (e.g. it lost it): ask again.
                    j.sent_to = None;
                    self.set_state(rec.state, None, Some(Some(j)));
                    continue;
                }
            }
            return;
        }
    }

    /// The answer to a join request or poll from `from`.
    fn join_answer(
        &self,
        from: &IdentityPublicKey,
        source: Option<std::net::IpAddr>,
        req: &JoinRequest,
        create: bool,
    ) -> Result<JoinAnswer, String> {
        let net = self.network().ok_or("this node follows no network")?;
        if req.network != net {
            return Err("this node is not in that network".into());
        }
        let (block, cfg) = self.latest().ok_or("this node follows no network")?;
        if block.roster.as_ref().is_some_and(|r| r.members.iter().any(|m| m.identity == from.as_bytes())) {
            return Ok(JoinAnswer { state: "trusted".into(), network_index: block.index, ..Default::default() });
        }
        let st = &self.shared.store;
        if let Some(pid) = st.join_proposal(from.as_bytes()) {
            match st.outcome(&pid) {
                Some(o) if o.state != "accepted" => {
                    if !create {
                        return Ok(JoinAnswer {
                            state: "refused".into(),
                            proposal_id: pid,
                            reason: format!("{}: {}", o.state, o.reason),
                            ..Default::default()
                        });
                    }
                }
                None => return Ok(JoinAnswer { state: "pending".into(), proposal_id: pid, ..Default::default() }),
                // Accepted, yet not in the roster (checked above): removed since. A new request
                // makes a new proposal; a poll learns its old one is gone.
                Some(_) => {}
            }
        } else if st.has_join(from.as_bytes()) {
            // Kept for the separate governance members, who have not proposed it yet.
            if !st.unproposed_join_expired(from.as_bytes()) {
                return Ok(JoinAnswer { state: "pending".into(), ..Default::default() });
            }
            if !create {
                let hours = ADD_NODE_LIFETIME.as_secs() / 3600;
                return Ok(JoinAnswer {
                    state: "refused".into(),
                    reason: format!("{EXPIRED}: no governance member proposed it within {hours} h"),
                    ..Default::default()
                });
            }
        }
        if !create {
            return Ok(JoinAnswer { state: "unknown".into(), ..Default::default() });
        }
        let add = AddNode { public_toml: req.public_toml.clone(), node_data: req.node_data.clone() };
        let server = rules::joining_server(&add).map_err(|e| e.to_string())?;
        if &server.public != from {
            return Err("the identity in public_toml is not the sender's".into());
        }
        if st.open_joins_from(source) >= MAX_OPEN_JOINS_PER_SOURCE {
            let from = source.map_or("an unknown address".to_string(), |ip| ip.to_string());
            return Err(format!(
                "too many open join requests from {from} ({MAX_OPEN_JOINS_PER_SOURCE}); wait until the members voted"
            ));
        }
        if st.open_joins_from_network(source) >= MAX_OPEN_JOINS_PER_NETWORK {
            let from = source.map_or("an unknown address".to_string(), |ip| ip.to_string());
            return Err(format!(
                "too many open join requests from the network of {from} ({MAX_OPEN_JOINS_PER_NETWORK}); \
                 wait until the members voted"
            ));
        }
        if st.open_joins() >= MAX_JOINS {
            return Err(format!("{MAX_JOINS} join requests are open at this member; wait until the members voted"));
        }
        let identity = &self.shared.ctx.config.identity;
        if !cfg.members.iter().any(|m| m == identity.public().as_bytes()) {
            if cfg.members_follow_roster {
                return Err("this node is not a governance member: send the request to a member".into());
            }
            // Separate governance members (as CCF's consortium): this node cannot propose; it
            // keeps the request (listed in /node/network/nodes) until a member proposes add_node
            // for it (`conode propose add-node --member-key`).
            st.put_join(from.as_bytes(), source, req, None).map_err(|e| e.to_string())?;
            info!(node = %short(from.as_bytes()), "join request kept until a governance member proposes add_node");
            return Ok(JoinAnswer { state: "pending".into(), ..Default::default() });
        }
        let p = Proposal::signed(identity, &net, action::Kind::AddNode(add), now_ms());
        let id = rules::check_proposal(&net, &cfg, &p).map_err(|e| e.to_string())?;
        // The members keep as many of this member's add_node proposals as this pool holds.
        self.check_room_for(&p).map_err(|e| e.to_string())?;
        let roster = block.roster.clone().unwrap_or_default();
        rules::apply(&cfg, &roster, p.action.as_ref().ok_or("no action")?).map_err(|e| e.to_string())?;
        st.put_proposal(&id, &p).map_err(|e| e.to_string())?;
        st.put_join(from.as_bytes(), source, req, Some(&id)).map_err(|e| e.to_string())?;
        info!(node = %short(from.as_bytes()), proposal = %short(&id), "join request: add_node proposed");
        self.gossip("Proposal", p.encode_to_vec());
        Ok(JoinAnswer { state: "pending".into(), proposal_id: id.to_vec(), ..Default::default() })
    }

    /// Whether `peer` is in the newest roster of the network.
    fn is_member_peer(&self, peer: &IdentityPublicKey) -> bool {
        self.latest()
            .and_then(|(b, _)| b.roster)
            .is_some_and(|r| r.members.iter().any(|m| m.identity == peer.as_bytes()))
    }

    async fn handle_peer(&self, msg: PeerMessage) -> Result<Vec<u8>, String> {
        match msg.protocol.as_str() {
            "Join" | "JoinStatus" => {
                let req = JoinRequest::decode(msg.payload.as_slice()).map_err(|e| format!("JoinRequest: {e}"))?;
                Ok(self.join_answer(&msg.from, msg.remote, &req, msg.protocol == "Join")?.encode_to_vec())
            }
            "Proposal" | "Ballot" => {
                // Only the network's roster gossips.
                if !self.is_member_peer(&msg.from) {
                    return Err("only members of the network's roster gossip proposals and ballots".into());
                }
                if msg.protocol == "Proposal" {
                    let p = Proposal::decode(msg.payload.as_slice()).map_err(|e| format!("Proposal: {e}"))?;
                    self.propose(p, false).await.map_err(|e| e.to_string())?;
                } else {
                    let b = Ballot::decode(msg.payload.as_slice()).map_err(|e| format!("Ballot: {e}"))?;
                    self.vote(b, false).await.map_err(|e| e.to_string())?;
                }
                Ok(vec![])
            }
            "Sync" => {
                if !self.is_member_peer(&msg.from) {
                    return Err("only members of the network's roster sync proposals".into());
                }
                let req = SyncRequest::decode(msg.payload.as_slice()).map_err(|e| format!("SyncRequest: {e}"))?;
                if Some(req.network) != self.network() {
                    return Err("this node is not in that network".into());
                }
                Ok(self.open_proposals(&req.open).encode_to_vec())
            }
            "Finalize" => {
                if !self.is_member_peer(&msg.from) {
                    return Err("only members of the network's roster ask for appends".into());
                }
                let passed = PassedProposal::decode(msg.payload.as_slice()).map_err(|e| format!("Finalize: {e}"))?;
                let p = passed.proposal.ok_or("Finalize without proposal")?;
                let id = proposal_id(&p);
                match self.propose(p, false).await {
                    Ok(_) | Err(MembershipError::Conflict(_)) => {}
                    // Refused because its block was just appended (it no longer applies): done.
                    Err(e) => {
                        return match self.applied_at(&id) {
                            Some(i) => Ok(i.to_be_bytes().to_vec()),
                            None => Err(e.to_string()),
                        }
                    }
                }
                for b in passed.ballots.into_iter().filter(|b| b.proposal_id == id) {
                    match self.vote(b, false).await {
                        Ok(_) | Err(MembershipError::Rule(RuleError::DuplicateBallot { .. })) => {}
                        Err(MembershipError::Closed { .. }) => break,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                match self.finalize(&id).await {
                    Ok(b) => Ok(b.index.to_be_bytes().to_vec()),
                    Err(e) => match self.applied_at(&id) {
                        Some(i) => Ok(i.to_be_bytes().to_vec()),
                        None => Err(e.to_string()),
                    },
                }
            }
            other => Err(format!("unknown membership protocol `{other}`")),
        }
    }

    async fn client_request(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
        let bad = |e: prost::DecodeError| ServiceError::BadRequest(e.to_string());
        match method.as_str() {
            "CreateNetwork" => {
                CreateNetwork::decode(body.as_slice()).map_err(bad)?;
                Err(ServiceError::Refused(FOUNDING_IS_LOCAL.into()))
            }
            "GetNetwork" => {
                GetNetwork::decode(body.as_slice()).map_err(bad)?;
                let (b, _) = self.latest().ok_or_else(|| ServiceError::from(MembershipError::NoNetwork))?;
                Ok(NetworkReply { network: b.chain_id().to_vec(), index: b.index, block: b.encode_to_vec() }
                    .encode_to_vec())
            }
            "Propose" => {
                let p = Proposal::decode(body.as_slice()).map_err(bad)?;
                Ok(self.propose(p, true).await?.encode_to_vec())
            }
            "Vote" => {
                let b = Ballot::decode(body.as_slice()).map_err(bad)?;
                Ok(self.vote(b, true).await?.encode_to_vec())
            }
            "GetProposals" => {
                GetProposals::decode(body.as_slice()).map_err(bad)?;
                Ok(Proposals { proposals: self.proposals() }.encode_to_vec())
            }
            _ => Err(ServiceError::UnknownMethod { service: MEMBERSHIP_SERVICE.into(), method }),
        }
    }

    /// Every node of the newest roster, and the joiners this node knows of (JSON for the operator).
    pub fn nodes_json(&self) -> serde_json::Value {
        let Some((b, cfg)) = self.latest() else { return serde_json::json!([]) };
        let mut seen = HashSet::new();
        let mut out = vec![];
        for m in b.roster.as_ref().map(|r| r.members.as_slice()).unwrap_or_default() {
            seen.insert(m.identity.clone());
            let data = cfg.node_data.iter().find(|d| d.identity == m.identity).map(|d| d.json.clone());
            out.push(serde_json::json!({
                "node_id": IdentityPublicKey::from_bytes(&m.identity).map(|k| k.node_id()).unwrap_or_default(),
                "public": hex::encode(&m.identity),
                "address": m.address,
                "description": m.description,
                "state": "PartOfNetwork",
                "member": cfg.members.contains(&m.identity),
                "node_data": data.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
            }));
        }
        for (_, p) in self.shared.store.proposals() {
            let Some(action::Kind::AddNode(a)) = p.action.and_then(|a| a.kind) else { continue };
            let Ok(s) = rules::joining_server(&a) else { continue };
            if self.shared.store.has_join(s.public.as_bytes())
                && self.shared.store.join_proposal(s.public.as_bytes()).is_none()
            {
                continue; // A newer request, not proposed yet: listed below.
            }
            if seen.insert(s.public.as_bytes().to_vec()) {
                let pid = self.shared.store.join_proposal(s.public.as_bytes());
                let state = pid.and_then(|id| self.shared.store.outcome(&id)).map_or("Pending", |o| {
                    if o.state == "accepted" {
                        "Retired"
                    } else {
                        "Refused"
                    }
                });
                out.push(serde_json::json!({
                    "node_id": s.public.node_id(),
                    "public": s.public.to_hex(),
                    "address": s.address.to_string(),
                    "description": s.description,
                    "state": state,
                    "member": false,
                    "node_data": serde_json::from_str::<serde_json::Value>(&a.node_data).ok(),
                }));
            }
        }
        // Join requests kept for separate governance members, who have not proposed them yet:
        // with the public.toml a member proposes (`conode propose add-node`).
        for (identity, req) in self.shared.store.unproposed_joins() {
            let add = AddNode { public_toml: req.public_toml.clone(), node_data: req.node_data.clone() };
            let Ok(s) = rules::joining_server(&add) else { continue };
            if seen.insert(identity) {
                out.push(serde_json::json!({
                    "node_id": s.public.node_id(),
                    "public": s.public.to_hex(),
                    "address": s.address.to_string(),
                    "description": s.description,
                    "state": "Pending",
                    "member": false,
                    "node_data": serde_json::from_str::<serde_json::Value>(&req.node_data).ok(),
                    "public_toml": req.public_toml,
                }));
            }
        }
        serde_json::Value::Array(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_proposals_are_refused_and_not_applied_beyond_the_clock_skew() {
        let day = ADD_NODE_LIFETIME.as_millis() as u64;
        let skew = MAX_CREATED_AHEAD.as_millis() as u64;
        let add = Proposal {
            created: 1_000_000_000,
            action: Some(Action { kind: Some(action::Kind::AddNode(AddNode::default())) }),
            ..Default::default()
        };
        let other = Proposal { created: 1_000_000_000, ..Default::default() };
        assert_eq!(expires_ms(&add), 1_000_000_000 + day);
        assert_eq!(expires_ms(&other), 1_000_000_000 + PROPOSAL_LIFETIME.as_millis() as u64);
        // Taken while open; refused once expired, or when made too far ahead of this clock.
        assert!(check_lifetime(&add, 1_000_000_000 + day - 1).is_ok());
        assert!(check_lifetime(&add, 1_000_000_000 + day).is_err());
        assert!(check_lifetime(&add, 1_000_000_000 - skew).is_ok());
        assert!(check_lifetime(&add, 1_000_000_000 - skew - 1).is_err());
        // A passed one is applied up to the skew after it expired, not later.
        assert!(still_applicable(&add, 1_000_000_000 + day + skew).is_ok());
        let late = still_applicable(&add, 1_000_000_000 + day + skew + 1_000).unwrap_err();
        assert!(late.contains("expired") && late.contains("propose it again"), "{late}");
        assert!(still_applicable(&other, 1_000_000_000 + day + skew + 1_000).is_ok());
    }
}
