//! The skipchain service: genesis creation, owner-signed appends whose forward links (all due
//! levels) are cosigned by the source blocks' rosters, durable storage on every member, proofs
//! (`GetUpdateChain`), and catch-up of members that were down or newly added.

use super::evidence::EvidenceLog;
use super::messages::*;
use super::observe::{Observed, Phase, Stored};
use super::rosters::CheckedRosters;
use super::store::ChainStore;
use super::verified::{
    all_hold_once, certificate_key, check_certificate, digest, roster_tag, DecodedSignatures, VerifiedOnce,
};
use super::votes::{FirstViewVote, PrepareSlot, Votes};

#[path = "batched.rs"]
mod batched;
pub use batched::{COMMIT_BATCH_PURPOSE, PREPARE_BATCH_PURPOSE};
#[path = "older_members.rs"]
mod older_members;
#[path = "recovery.rs"]
mod recovery;
use crate::config::{NodeAddress, Roster, ServerIdentity, ServicePublic, SkipchainLinks, COSI_SERVICE};
use crate::crypto::checked_once;
use crate::crypto::{bls, BlsPublicKey, BlsSignature, IdentityPublicKey, PopCache};
use crate::kept::KeptMap;
use crate::network::{NetError, Network, PeerMessage};
use crate::services::cosi::{self, CosiService, Mask, Policy};
use crate::services::metrics::{counter, counters, labels};
use crate::services::{stop_service, Service, ServiceContext, ServiceError, StartError};
use crate::verify::skipchain::{
    height_for, level_distance, BlockRoster, CollectiveSignature, ForwardLink, ProofError, RosterEntry, SkipBlock,
    LINK_FORMAT_V1, LINK_FORMAT_V2, LINK_FORMAT_V4,
};
use crate::verify::skipchain_batch::{
    decode_signature, point_of, verify_links_with_points, LinkToCheck, PairingCheck, Pairings,
};
use crate::verify::skipchain_wire::{MAX_PROOF_BLOCKS, MAX_PROOF_BYTES};
use prometheus_client::registry::Registry;
use prost::Message;
pub use recovery::RECOVERY_SECTION;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Service name (client methods, peer protocol, cosi purpose).
pub const SKIPCHAIN_SERVICE: &str = "Skipchain";
/// Largest batch a peer returns for catch-up.
const CATCH_UP_BATCH: u32 = 256;
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a catch-up waits on a member that stores it nothing before it asks another one too
/// (see `SkipchainService::fetch_hedged` and `single_flight`), and at least how long it waits on
/// the last f members to say how far the chain goes once the others have (`latest_of_members`).
/// Short enough that a member catching up when asked to prepare is ready for the proposer's later
/// views (about 1 s in all, see `MAX_VIEWS`); on a slow link it costs at most f more fetches of
/// the same blocks.
const CATCH_UP_HEDGE: Duration = Duration::from_millis(250);
/// How long an append waits for the members to confirm they stored the block.
const PROPAGATE_WAIT: Duration = Duration::from_secs(1);
/// How long a block a member did not confirm storing is offered to it again, with pauses from
/// `REDELIVER_PAUSE` doubling up to `REDELIVER_MAX_PAUSE`: a member cut off by a partition gets
/// the chain's newest block soon after the heal, without waiting for the next append.
const REDELIVER_FOR: Duration = Duration::from_secs(120);
const REDELIVER_PAUSE: Duration = Duration::from_millis(500);
const REDELIVER_MAX_PAUSE: Duration = Duration::from_secs(8);
/// At most one catch-up per chain in this interval is started by client reads naming an index
/// beyond this member's newest block, and at most one for all chains in `READ_CATCH_UP_ANY` (a
/// stranger cannot make it ask the members more often).
const READ_CATCH_UP_EVERY: Duration = Duration::from_secs(2);
const READ_CATCH_UP_ANY: Duration = Duration::from_millis(250);
/// Cosi purpose of the prepare round of an append.
pub const PREPARE_PURPOSE: &str = "SkipchainPrepare";
/// Cosi purpose of the forward-link (commit) round of one append: the service's name, which
/// members of every version know it by.
pub const COMMIT_PURPOSE: &str = SKIPCHAIN_SERVICE;
/// For [`SkipchainService::set_proposes_in_view`]: the newest view open at the proposer that it owns.
pub const RACES_TO_NEWEST_VIEW: u64 = u64::MAX;
/// Beyond its window's wait, how long a proposer waits at most for the view it chose to open
/// (reports it follows are credible up to `votes::REPORT_SLACK_VIEWS` ahead).
const REPORT_WAIT_SLACK_MS: u64 = super::votes::REPORT_SLACK_VIEWS;
/// Views an append tries before it gives up (each failed one asks the members what they hold).
const MAX_VIEWS: usize = 4;
/// The pause before the second view; doubled for each later one (randomized ±50 %).
const VIEW_PAUSE: Duration = Duration::from_millis(100);
/// How long after a slot's previous block arrived a member may say it prepared nothing in view 1
/// of the slot (which closes view 1 to it): a proposer asks after its view 1 failed, and retries
/// after a pause; a member of the roster asking earlier cannot end fast appends.
const FIRST_VIEW_OPEN_FOR: Duration = Duration::from_millis(200);
/// Rounds a forward link gets when only members that timed out kept it from its threshold, and
/// the time since its first round within which another is started.
const LINK_ROUND_ATTEMPTS: usize = 3;
const LINK_RETRY_WITHIN: Duration = Duration::from_secs(3);
/// How long the proposer waits for the members' slot states after a failed view.
const SLOT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a proposer signs the links of a roster level by level (v1) after members of it that
/// refused the v2 statement signed the v1 ones (they run older code); then it tries v2 again.
const LEGACY_LINKS_FOR: Duration = Duration::from_secs(60);
/// Rosters kept marked (links in v1, no batches, warmed): those marked least lately go first.
const ROSTER_MARKS_KEPT: usize = 1024;
/// Why the commit hook refuses a statement that is not the v1 statement it expects: what members
/// that predate v2 links answer to a v2 round (and what this code answers when it refuses one).
const NOT_THE_LINK: &str = "statement is not the forward link of the proposed block";
/// How a member running code from before fast appends refuses a fast prepare (the statement is
/// not the prepare message it expects).
const NOT_THE_PREPARE: &str = "statement is not the prepare message of the proposed block";
/// How a member whose `SkipchainLinks` is below v4 refuses a fast prepare.
const NO_FAST_PREPARES: &str = "this member signs no fast prepares";

/// Whether members refused a fast prepare round as members that make no v4 links do (older
/// code, or a `SkipchainLinks` below v4).
fn fast_refused(report: &cosi::SignReport) -> bool {
    report.refused.iter().any(|e| e.reason.contains(NOT_THE_PREPARE) || e.reason.contains(NO_FAST_PREPARES))
}

/// Rosters (by id) a proposer treats as holding members of older code, each for
/// [`LEGACY_LINKS_FOR`] from its latest mark; the newest [`ROSTER_MARKS_KEPT`] are kept.
struct RosterMarks(std::sync::Mutex<KeptMap<[u8; 32], std::time::Instant>>);

impl Default for RosterMarks {
    fn default() -> Self {
        Self(std::sync::Mutex::new(KeptMap::new(ROSTER_MARKS_KEPT)))
    }
}

impl RosterMarks {
    /// Marks `roster` from now for [`LEGACY_LINKS_FOR`].
    fn mark(&self, roster: [u8; 32]) {
        crate::sync::lock(&self.0).renew(roster, std::time::Instant::now() + LEGACY_LINKS_FOR);
    }

    /// Whether `roster` is marked now.
    fn marked(&self, roster: &[u8; 32]) -> bool {
        crate::sync::lock(&self.0).get(roster).is_some_and(|until| *until > std::time::Instant::now())
    }
}

/// A pause of `base` ±50 % at random, before a proposer tries a round again: proposers (or the
/// rounds of one) that failed together fall out of step.
fn jittered(base: Duration) -> Duration {
    let base = base.as_millis() as u64;
    Duration::from_millis(base / 2 + rand::random::<u64>() % base.max(1))
}

/// Whether a failed link round is worth another: only members that timed out kept it from its
/// threshold (the others, had they answered, could have reached it), and no member refused it as
/// code from before v2 links (those go to v1 rounds instead; see `sign_group`).
fn only_late_members_missing(report: &cosi::SignReport) -> bool {
    report.n.saturating_sub(report.refused.len() + report.invalid.len()) >= report.required
        && v2_refusers(report).is_empty()
}

/// The roster indices of the members that refused a link round as members that predate v2 links
/// do (their reason is [`NOT_THE_LINK`]).
fn v2_refusers(report: &cosi::SignReport) -> Vec<usize> {
    report.refused.iter().filter(|e| e.reason.contains(NOT_THE_LINK)).map(|e| e.index).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SkipchainError {
    #[error("unknown chain {0}")]
    UnknownChain(String),
    #[error("unknown block {0}")]
    UnknownBlock(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("this node is behind: it holds block {have}, needs {need}")]
    Behind { have: u64, need: u64 },
    /// Another block was (or had to be) committed at the index this append named.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("collective signing failed: {0}")]
    Cosi(#[from] cosi::CosiError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("network: {0}")]
    Network(#[from] NetError),
}

impl From<ProofError> for SkipchainError {
    fn from(e: ProofError) -> Self {
        SkipchainError::Invalid(e.to_string())
    }
}

/// Converts a config roster into the form stored in blocks.
pub fn block_roster(roster: &Roster) -> Result<BlockRoster, SkipchainError> {
    let members = roster
        .servers
        .iter()
        .map(|s| {
            let svc = s
                .services
                .get(COSI_SERVICE)
                .ok_or_else(|| SkipchainError::Invalid(format!("member {} has no {COSI_SERVICE} key", s.address)))?;
            Ok(RosterEntry {
                identity: s.public.as_bytes().to_vec(),
                cosi_key: svc.public.to_bytes().to_vec(),
                address: s.address.to_string(),
                pop: svc.pop.to_bytes().to_vec(),
                description: s.description.clone(),
            })
        })
        .collect::<Result<Vec<_>, SkipchainError>>()?;
    Ok(BlockRoster { members })
}

/// Converts a block's roster back to a config roster (checking every key and PoP).
pub fn config_roster(r: &BlockRoster) -> Result<Roster, SkipchainError> {
    config_roster_with(r, &PopCache::default())
}

/// `config_roster`, skipping the PoPs `pops` has checked already (and remembering the new ones).
/// The new ones are checked as one batch (`PopCache::check_all`); the error is the one a check
/// member by member gives (the first member, in roster order, with a bad field).
pub(super) fn config_roster_with(r: &BlockRoster, pops: &PopCache) -> Result<Roster, SkipchainError> {
    let inv = |i: usize, what: &str, e: String| SkipchainError::Invalid(format!("roster member {i} {what}: {e}"));
    let decoded: Vec<Result<(IdentityPublicKey, BlsPublicKey, BlsSignature), SkipchainError>> = r
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let public = IdentityPublicKey::from_bytes(&m.identity).map_err(|e| inv(i, "identity", e.to_string()))?;
            let key = BlsPublicKey::from_bytes(&m.cosi_key).map_err(|e| inv(i, "cosi key", e.to_string()))?;
            let pop = BlsSignature::from_bytes(&m.pop).map_err(|e| inv(i, "pop", e.to_string()))?;
            Ok((public, key, pop))
        })
        .collect();
    // Only up to the first member that does not decode: its error comes first anyway.
    let decodable = decoded.iter().take_while(|d| d.is_ok()).count();
    let pairs: Vec<(&BlsPublicKey, &BlsSignature)> =
        decoded[..decodable].iter().filter_map(|d| d.as_ref().ok()).map(|(_, k, p)| (k, p)).collect();
    let mut verdicts = pops.check_all(&pairs).into_iter();
    let mut servers = Vec::with_capacity(r.members.len());
    for (i, (m, d)) in r.members.iter().zip(decoded).enumerate() {
        let (public, key, pop) = d?;
        if let Some(Err(e)) = verdicts.next() {
            return Err(inv(i, "pop", e.to_string()));
        }
        let address = NodeAddress::parse(&m.address).map_err(|e| inv(i, "address", e))?;
        let mut services = BTreeMap::new();
        services.insert(COSI_SERVICE.to_string(), ServicePublic { suite: bls::SUITE.into(), public: key, pop });
        servers.push(ServerIdentity { address, public, description: m.description.clone(), url: None, services });
    }
    Ok(Roster::new(servers))
}

/// A block a member has yet to confirm: its index and the `Store` payload.
type PendingStore = (u64, Vec<u8>);

struct Shared {
    store: ChainStore,
    /// The context this service started with (its own child set of tasks).
    ctx: ServiceContext,
    network: Network,
    me: IdentityPublicKey,
    cosi: CosiService,
    /// Rosters of blocks, checked once.
    rosters: CheckedRosters,
    /// Prepare certificates verified lately (by their exact bytes): the hooks run once per level
    /// of an append, concurrently, and check the same ones each time. (The pairing checks under
    /// them, and owner signatures, are shared with the whole process: `checked_once`.)
    verified: VerifiedOnce,
    /// Link signatures decoded lately (the blocks of a batched round share one).
    decoded_signatures: DecodedSignatures,
    /// What this member prepared and locked per (chain, index), durably.
    votes: Votes,
    /// Conflicting forward links seen, kept against the members that signed both.
    evidence: EvidenceLog,
    /// On a node restored from a backup: the chains fenced so far (see `recovery`).
    fences: recovery::Fences,
    /// Fault injection (tests): this member signs every proposal and keeps no votes, as a
    /// Byzantine member that equivocates would.
    signs_anything: std::sync::atomic::AtomicBool,
    /// Fault injection (tests): this member refuses v2 forward-link statements and reads every
    /// link as v1, as a member running code from before them does.
    refuses_link_v2: std::sync::atomic::AtomicBool,
    /// What this proposer keeps of the links it signed again in v1 for members running older
    /// code (see `older_members`).
    relinks: older_members::Relinks,
    /// Fault injection (tests): this member refuses pushed blocks (`Store`), as one cut off from
    /// the proposer would miss them.
    refuses_store: std::sync::atomic::AtomicBool,
    /// Fault injection (tests): this member lies to members catching up (see
    /// [`SkipchainService::set_lies_in_catch_up`]).
    lies_in_catch_up: std::sync::atomic::AtomicBool,
    /// Fault injection (tests): this member handles each pushed block this long after it came
    /// (see [`SkipchainService::set_stores_late_by`]).
    stores_late_by_ms: std::sync::atomic::AtomicU64,
    /// Fault injection (tests): this member alters its record of view 1 in the slot states it
    /// gives (see [`SkipchainService::set_alters_first_view`]).
    alters_first_view: std::sync::atomic::AtomicBool,
    /// Fault injection (tests): how this member answers members catching up from it (see
    /// [`SkipchainService::set_catch_up_fault`]).
    catch_up_fault: std::sync::Mutex<Option<CatchUpFault>>,
    /// Fault injection (tests): the view this member, as a Byzantine proposer, asks for at once
    /// (0: off; see [`SkipchainService::set_proposes_in_view`]).
    proposes_in_view: std::sync::atomic::AtomicU64,
    /// The newest forward-link format this node signs (`SkipchainLinks`, see [`Shared::links`]).
    links: std::sync::RwLock<SkipchainLinks>,
    /// Rosters (by id) whose links this proposer signs in v1 until the instant given (see
    /// `LEGACY_LINKS_FOR`).
    legacy_links: RosterMarks,
    /// Rosters (by id) some of whose members refused a fast prepare: this proposer prepares for
    /// them as before fast appends until the instant given (see `LEGACY_LINKS_FOR`).
    slow_rosters: RosterMarks,
    /// One append at a time per chain: two concurrent appends would propose the same index.
    appending: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    /// One catch-up at a time per chain: after a partition heals every member's `Store` may
    /// trigger one; the later ones wait and then find little or nothing left to fetch.
    catching_up: FlightMap,
    /// Per (member, chain): the newest block that member did not confirm storing (index, `Store`
    /// payload). One background task per entry offers it again (see `REDELIVER_FOR`).
    redelivering: std::sync::Mutex<std::collections::HashMap<(IdentityPublicKey, Vec<u8>), PendingStore>>,
    /// Per chain: when a client read last started a catch-up (see `READ_CATCH_UP_EVERY`).
    read_catch_ups: std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::time::Instant>>,
    /// Catch-ups and arrival queries started by proposals (see `catch_up_in_background`,
    /// `learn_arrival`), by key: limited apart from client reads, so that a stranger's reads
    /// cannot hold them back.
    proposal_asks: std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::time::Instant>>,
    /// Rosters of `CreateChain` and of roster changes in `Append`, parsed off the workers.
    parsed_rosters: crate::services::parsed_rosters::ParsedRosters,
    /// Chains each client source may create (`Limits.ClientChainsPerMinute`): every member of a
    /// chain's roster stores it for good.
    chain_quota: crate::api::rate::RateLimiter,
    /// Counters, latencies and recent blocks for `/metrics` and the status page.
    observed: Observed,
    /// Appends waiting for a prepare round / a forward-link round shared with other chains', per
    /// roster (see `batched`).
    prepare_queue: batched::Queue<batched::PrepareItem>,
    links_queue: batched::Queue<batched::LinksItem>,
    /// Whether appends of different chains share rounds (`set_batched_rounds`; on by default).
    batched_rounds: std::sync::atomic::AtomicBool,
    /// Rosters (by id) whose members lack the batch hooks: one append per round until the instant.
    no_batch: std::sync::Mutex<KeptMap<[u8; 32], std::time::Instant>>,
    /// Fault injection (tests): this member answers batched rounds as code from before them does.
    refuses_batches: std::sync::atomic::AtomicBool,
    /// Ids of the rosters handed to cosi to prepare (see `warm_roster`), so each is handed once.
    warmed: std::sync::Mutex<KeptMap<[u8; 32], ()>>,
    /// BLS signatures made for slot states (each is then kept with the vote it signs).
    slot_signs: std::sync::atomic::AtomicU64,
    /// Chains whose appends another service authorises instead of the owners (the network chain).
    governors: std::sync::RwLock<Vec<Governor>>,
}

impl Shared {
    /// The newest forward-link format this node signs (see [`SkipchainService::set_links`]).
    pub(super) fn links(&self) -> SkipchainLinks {
        *self.links.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The authority over appends to some chains instead of their owners (e.g. the membership
/// service: the network chain changes by vote). On a chain it `governs` (judged by its genesis),
/// `check(prev, next)` replaces the owner check, on the proposer and in every member's prepare and
/// commit hooks.
#[derive(Clone)]
pub struct Governor {
    pub governs: Arc<dyn Fn(&SkipBlock) -> bool + Send + Sync>,
    pub check: GovernorCheck,
}

/// `check(prev, next)` of a [`Governor`]: why `next` may not follow `prev`.
pub type GovernorCheck = Arc<dyn Fn(&SkipBlock, &SkipBlock) -> Result<(), String> + Send + Sync>;

/// Handle on a node's skipchain service (cheap to clone).
#[derive(Clone)]
pub struct SkipchainService {
    shared: Arc<Shared>,
}

/// Whether work named by `key` that peers or clients can ask for is due, by the times in `last`:
/// at most once per `READ_CATCH_UP_EVERY` per key and, with `any`, once per `any` for all keys
/// (under the empty key). Records it when due.
fn limited_due(
    last: &std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::time::Instant>>,
    key: &[u8],
    any: Option<Duration>,
) -> bool {
    let mut last = crate::sync::lock(last);
    let now = std::time::Instant::now();
    let recent = |at: Option<&std::time::Instant>, within| at.is_some_and(|at| now.duration_since(*at) < within);
    if recent(last.get(key), READ_CATCH_UP_EVERY) || any.is_some_and(|any| recent(last.get(&[][..]), any)) {
        return false;
    }
    if last.len() >= 4096 {
        last.retain(|_, at| now.duration_since(*at) < READ_CATCH_UP_EVERY);
    }
    last.insert(key.to_vec(), now);
    if any.is_some() {
        last.insert(Vec::new(), now);
    }
    true
}

/// Offers `payload` (block `index` of `chain`) to `member` again in the background until it
/// confirms or `REDELIVER_FOR` passes. One task per (member, chain): a newer block replaces the
/// pending one, so a member that is down costs one retry loop per chain, not one per append.
fn redeliver(shared: &Arc<Shared>, member: ServerIdentity, chain: Vec<u8>, index: u64, payload: Vec<u8>) {
    offer_later(shared, member, chain, index, payload, false, true);
}

/// [`redeliver`], where the offer replaces a pending one of the same block too when `same_block`
/// (its links signed again for a member running older code, see `older_members`), and starts the
/// offering loop only when `start` (not after a relink the loop itself asked for: a loop that
/// gave up stays stopped).
fn offer_later(
    shared: &Arc<Shared>,
    member: ServerIdentity,
    chain: Vec<u8>,
    index: u64,
    payload: Vec<u8>,
    same_block: bool,
    start: bool,
) {
    let key = (member.public, chain);
    {
        let mut pending = crate::sync::lock(&shared.redelivering);
        if let Some(entry) = pending.get_mut(&key) {
            if index > entry.0 || (same_block && index == entry.0) {
                *entry = (index, payload);
            }
            return;
        }
        if !start {
            return;
        }
        pending.insert(key.clone(), (index, payload));
    }
    let weak = Arc::downgrade(shared);
    shared.ctx.tasks.spawn(async move {
        let mut started = tokio::time::Instant::now();
        let mut offered = None;
        let mut pause = REDELIVER_PAUSE;
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(REDELIVER_MAX_PAUSE);
            let Some(shared) = weak.upgrade() else { return };
            let Some((index, payload)) = crate::sync::lock(&shared.redelivering).get(&key).cloned() else {
                return;
            };
            if offered != Some(index) {
                // A newer block gets the whole window again.
                offered = Some(index);
                started = tokio::time::Instant::now();
            }
            let net = shared.network.clone();
            drop(shared);
            let offer = net.request(&member, SKIPCHAIN_SERVICE, "Store", &[], payload.clone(), PEER_TIMEOUT).await;
            let Some(shared) = weak.upgrade() else { return };
            let newer = crate::sync::lock(&shared.redelivering).get(&key).is_some_and(|entry| entry.0 > index);
            if let (Err(e), false) = (&offer, newer) {
                // A member running older code: the relink hands it what it can verify, and what
                // is then left to offer goes on here.
                older_members::relink_if_older(&shared, &member, e, &payload, older_members::AskedBy::OfferLoop);
            }
            let stored = offer.is_ok();
            let mut pending = crate::sync::lock(&shared.redelivering);
            let newer = pending.get(&key).is_some_and(|entry| entry.0 > index);
            if stored && !newer {
                pending.remove(&key);
                debug!(peer = %member.address, index, "member stored the block offered again");
                return;
            }
            if stored {
                pause = REDELIVER_PAUSE;
            } else if started.elapsed() > REDELIVER_FOR {
                pending.remove(&key);
                debug!(peer = %member.address, index, "member still does not store the block; it will catch up later");
                return;
            }
        }
    });
}

/// What a `GetBlocks` reply must be before any block of it is accepted: blocks of the chain
/// asked for, in order from the index asked for. A peer answering with another chain's genesis
/// (whose hash is not the id asked for) would otherwise have it stored, and the catch-up would
/// ask for the same index again and again.
fn check_fetched(genesis: &[u8], from_index: u64, items: &[LinkedBlock]) -> Result<(), SkipchainError> {
    for (offset, item) in items.iter().enumerate() {
        let block = item.block.as_ref().ok_or_else(|| SkipchainError::Invalid("GetBlocks reply: no block".into()))?;
        let index = from_index + offset as u64;
        if block.index != index || block.chain_id() != genesis {
            return Err(SkipchainError::Invalid(format!(
                "GetBlocks reply: block {} of chain {} where block {index} of chain {} was asked for",
                block.index,
                hex8(block.chain_id()),
                hex8(genesis)
            )));
        }
    }
    Ok(())
}

/// The lie of a member set to lie in catch-ups (fault injection): each block of a genesis-less
/// batch gets other data and its new hash, its back links and incoming links follow the forged
/// blocks before it, and every link keeps its real signature (which now signs another block).
fn forge(items: &mut [LinkedBlock]) {
    let mut renamed: std::collections::HashMap<Vec<u8>, Vec<u8>> = std::collections::HashMap::new();
    for item in items.iter_mut() {
        let Some(block) = item.block.as_mut().filter(|b| b.index > 0) else { continue };
        let real = block.hash.clone();
        block.data = format!("forged {}", block.index).into_bytes();
        for back in block.back_link_ids.iter_mut() {
            if let Some(forged) = renamed.get(back) {
                *back = forged.clone();
            }
        }
        block.hash = block.compute_hash().to_vec();
        for link in item.incoming.iter_mut().filter_map(|l| l.link.as_mut()) {
            link.to = block.hash.clone();
            if let Some(forged) = renamed.get(&link.from) {
                link.from = forged.clone();
            }
        }
        renamed.insert(real, block.hash.clone());
    }
}

/// Client rosters remembered parsed (see `parsed_rosters`).
const PARSED_ROSTERS_KEPT: usize = 16;

/// A catch-up's share of its chain's entry in `Shared::catching_up`. The entry goes with the last
/// share (the map holds one `Arc`, each share another), also when a catch-up is dropped
/// unfinished, so chains named by peers leave nothing behind.
struct FlightEntry<'a> {
    flights: &'a FlightMap,
    genesis: Vec<u8>,
    flight: Arc<tokio::sync::Mutex<()>>,
}

type FlightMap = std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>;

impl<'a> FlightEntry<'a> {
    fn join(flights: &'a FlightMap, genesis: &[u8]) -> Self {
        let flight = crate::sync::lock(flights).entry(genesis.to_vec()).or_default().clone();
        Self { flights, genesis: genesis.to_vec(), flight }
    }
}

impl Drop for FlightEntry<'_> {
    fn drop(&mut self) {
        let mut flights = crate::sync::lock(self.flights);
        let flight = std::mem::take(&mut self.flight);
        if flights.get(&self.genesis).is_some_and(|f| Arc::ptr_eq(f, &flight)) && Arc::strong_count(&flight) <= 2 {
            flights.remove(&self.genesis);
        }
        // This share goes while the map is locked: of two last shares dropped at once, the
        // second sees the first gone.
        drop(flight);
    }
}

/// Fault injection (tests, see [`SkipchainService::set_catch_up_fault`]): how a member answers
/// members catching up from it.
#[derive(Clone, Copy, Debug)]
pub enum CatchUpFault {
    /// A liar: it answers how far the chain goes (`Latest`) `latest_after` late, claiming 1,000
    /// blocks more than it holds (so it is asked first), and answers a request for blocks with
    /// none `empty_blocks_after` late, or (`None`) not at all: it holds it until the asker gives up.
    Liar { latest_after: Duration, empty_blocks_after: Option<Duration> },
    /// An honest member on a slow link: its blocks come `by` late.
    Slow { by: Duration },
}

fn hex8(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(8)])
}

impl SkipchainService {
    pub fn store(&self) -> &ChainStore {
        &self.shared.store
    }

    /// Fault injection (tests, benchmarks): makes this member Byzantine — it cosigns every
    /// prepare and forward link it is asked for, conflicting or not, records no votes, and hides
    /// every lock and prepare it has when a proposer asks for its slot state.
    pub fn set_signs_anything(&self, on: bool) {
        self.shared.signs_anything.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): makes this member run as code from before v2 forward links
    /// does: it refuses v2 statements (one signature for all levels of a block) but signs v1 links
    /// level by level, and it reads every link of a pushed or fetched block as a v1 link, so it
    /// refuses blocks whose links are v2 or v3 (see `older_members`).
    pub fn set_refuses_link_v2(&self, on: bool) {
        self.shared.refuses_link_v2.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): makes this member refuse the blocks members push to it (`Store`),
    /// as a member cut off from the proposer misses them; it still signs and catches up.
    pub fn set_refuses_store(&self, on: bool) {
        self.shared.refuses_store.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): makes this member a liar to members catching up: it claims to
    /// hold 1,000 blocks more than it does (`Latest`, so it is asked first) and answers `GetBlocks`
    /// with a forged history of the chain asked for (other data, the hashes and the links'
    /// targets made to match, the roster's signatures kept), and it reports to proposers and
    /// restored nodes asking for its slot state that it prepared in a view far ahead (just below
    /// `MAX_VIEW`). It still signs and stores as before.
    pub fn set_lies_in_catch_up(&self, on: bool) {
        self.shared.lies_in_catch_up.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): this member handles each pushed block (`Store`) `by` after it
    /// came (zero: at once), as a slow or distant member does.
    pub fn set_stores_late_by(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.shared.stores_late_by_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): makes this member a Byzantine member that feeds proposers after a
    /// failed view a record of what it prepared in view 1 that members refuse: the block as it
    /// was (its hash too), the owner's signature of it altered. Its statements stay true.
    pub fn set_alters_first_view(&self, on: bool) {
        self.shared.alters_first_view.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): makes this member a Byzantine proposer that pushes members'
    /// views: its appends ask for `view` at once (0: off, the usual views;
    /// [`RACES_TO_NEWEST_VIEW`]: the newest view open here that it owns, to be called again and
    /// again) and end after that one prepare round, whatever its outcome (no forward link is
    /// signed: a block prepared in a view ahead and left there).
    pub fn set_proposes_in_view(&self, view: u64) {
        self.shared.proposes_in_view.store(view, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): this node records the blocks it stores from now on as arrived `by`
    /// earlier than they did (as on a chain appended to long after its previous block): the
    /// views the next slots open with time without waiting for them, here and at a member that
    /// adopts this node's arrival (see `arrivals`).
    pub fn set_slots_aged(&self, by: Duration) {
        self.shared.store.set_arrivals_early(by);
    }

    /// Fault injection (tests): makes this member answer members catching up from it as `fault`
    /// says (`None`: as usual). It still signs and stores as before.
    pub fn set_catch_up_fault(&self, fault: Option<CatchUpFault>) {
        *crate::sync::lock(&self.shared.catch_up_fault) = fault;
    }

    fn catch_up_fault(&self) -> Option<CatchUpFault> {
        *crate::sync::lock(&self.shared.catch_up_fault)
    }

    fn lies_in_catch_up(&self) -> bool {
        self.shared.lies_in_catch_up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this node, as a proposer, lets appends of different chains that wait for the same
    /// roster share rounds (on by default; see `batched`): off for comparisons (`conode bench
    /// skipchain --batch off,on`).
    pub fn set_batched_rounds(&self, on: bool) {
        self.shared.batched_rounds.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection (tests): this member answers batched rounds as a member running code from
    /// before them does (no hook for their purposes).
    pub fn set_refuses_batches(&self, on: bool) {
        self.shared.refuses_batches.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Batched rounds (prepare and forward links) this node led, and the appends they served.
    pub fn batched_rounds(&self) -> (u64, u64) {
        self.shared.observed.batched_rounds()
    }

    /// The newest forward-link format this node signs from now on (as `SkipchainLinks` in
    /// private.toml sets it at start).
    /// With V1 this node, as a proposer, signs forward links level by level over the v1
    /// statements (one round per level, as before v2 links existed); with V2, one round per
    /// source roster; with V3, also one round for the appends of several chains (`conode bench
    /// skipchain --links` compares them).
    pub fn set_links(&self, links: SkipchainLinks) {
        *self.shared.links.write().unwrap_or_else(|p| p.into_inner()) = links;
    }

    /// Adds `governor`: the authority over appends to the chains it recognises (instead of their
    /// owners). Register it before the node serves peers (in the service's `start`).
    pub fn add_governor(&self, governor: Governor) {
        self.shared.governors.write().unwrap_or_else(|p| p.into_inner()).push(governor);
    }

    /// The governor of the chain of `genesis`, if any.
    fn governor(&self, genesis: &SkipBlock) -> Option<Governor> {
        let governors = self.shared.governors.read().unwrap_or_else(|p| p.into_inner());
        governors.iter().find(|g| (g.governs)(genesis)).cloned()
    }

    /// The highest view this member prepared a block in at slot `index` of chain `genesis` (0
    /// for none): what a proposer's slot query reads, for tests and diagnostics.
    pub fn prepared_view(&self, genesis: &[u8], index: u64) -> u64 {
        self.shared.votes.state(genesis, index).map_or(0, |st| st.prepared_view)
    }

    /// How many slots (of all chains) this member keeps a vote record of: the slots near each
    /// chain's head (see `votes::SETTLED_DEPTH`).
    pub fn vote_records(&self) -> usize {
        self.shared.votes.records()
    }

    /// Equivocation evidence records this node holds, per member (hex identity key).
    pub fn equivocations(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared.evidence.counts()
    }

    /// Where the time of appends went on this node: (phase, count, total seconds) per phase.
    pub fn append_phases(&self) -> Vec<(Phase, u64, f64)> {
        self.shared.observed.phases.snapshot()
    }

    fn byzantine(&self) -> bool {
        self.shared.signs_anything.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Creates a chain: a genesis block for `roster`, stored on every member. The genesis is a
    /// function of the arguments, so creating the same chain again returns the same block (and
    /// sends it to the members again).
    pub async fn create_chain(
        &self,
        roster: &Roster,
        base_height: u32,
        maximum_height: u32,
        owners: Vec<IdentityPublicKey>,
        data: Vec<u8>,
    ) -> Result<SkipBlock, SkipchainError> {
        let genesis = self.genesis_block(roster, base_height, maximum_height, owners, data)?;
        self.publish_genesis(&genesis, roster).await?;
        Ok(genesis)
    }

    /// The genesis block `create_chain` makes from these arguments, checked, neither stored nor
    /// sent (its hash is the chain's id).
    pub fn genesis_block(
        &self,
        roster: &Roster,
        base_height: u32,
        maximum_height: u32,
        owners: Vec<IdentityPublicKey>,
        data: Vec<u8>,
    ) -> Result<SkipBlock, SkipchainError> {
        if base_height < 2 || maximum_height == 0 || maximum_height > 32 {
            return Err(SkipchainError::Invalid("base height must be ≥ 2 and maximum height in 1..=32".into()));
        }
        if owners.is_empty() {
            return Err(SkipchainError::Invalid("a chain needs at least one owner".into()));
        }
        let broster = block_roster(roster)?;
        if roster.index_of(&self.shared.me).is_none() {
            return Err(SkipchainError::Refused("this node is not in the chain's roster".into()));
        }
        let mut genesis = SkipBlock {
            index: 0,
            height: height_for(0, base_height, maximum_height),
            maximum_height,
            base_height,
            back_link_ids: vec![],
            genesis_id: vec![],
            data,
            roster: Some(broster),
            owners: owners.iter().map(|o| o.as_bytes().to_vec()).collect(),
            hash: vec![],
            forward_links: vec![],
        };
        genesis.hash = genesis.compute_hash().to_vec();
        Ok(genesis)
    }

    /// Stores `genesis` (made by [`Self::genesis_block`]) unless it is held already, and sends it
    /// to the members of `roster`.
    pub async fn publish_genesis(&self, genesis: &SkipBlock, roster: &Roster) -> Result<(), SkipchainError> {
        if self.shared.store.block(&genesis.hash).is_none() && self.shared.store.store(genesis, &[])? {
            self.shared.observed.stored(genesis, Stored::Created);
            if let Some(r) = genesis.roster.as_ref() {
                self.warm_roster(r);
            }
        }
        self.propagate(genesis, vec![], roster, None).await;
        info!(chain = %hex8(&genesis.hash), members = roster.len(), "skipchain created");
        Ok(())
    }

    /// Appends a block signed by an owner; returns it once stored here and sent to the members.
    pub async fn append(&self, req: Append) -> Result<SkipBlock, SkipchainError> {
        let start = std::time::Instant::now();
        let r = self.append_inner(req).await;
        self.shared.observed.append_done(start.elapsed(), r.is_ok());
        r
    }

    async fn append_inner(&self, req: Append) -> Result<SkipBlock, SkipchainError> {
        let s = &self.shared;
        // The chain first: a lock entry exists only for a chain held here (so appends to made-up
        // chains leave nothing behind).
        let genesis = s
            .store
            .block(&req.genesis)
            .filter(|b| b.index == 0)
            .ok_or_else(|| SkipchainError::UnknownChain(hex8(&req.genesis)))?;
        let chain_lock = crate::sync::lock(&s.appending).entry(req.genesis.clone()).or_default().clone();
        // Held by this append and by the round tasks serving it (see `batched::ChainGuard`).
        let appending: batched::ChainGuard = Arc::new(chain_lock.lock_owned().await);
        let mut latest =
            s.store.latest(&req.genesis).ok_or_else(|| SkipchainError::UnknownChain(hex8(&req.genesis)))?;
        if req.index > latest.index + 1 && self.catch_up_chain(&req.genesis).await > 0 {
            // The client knows of blocks this member missed (it was cut off): fetch them first.
            latest = s.store.latest(&req.genesis).ok_or_else(|| SkipchainError::UnknownChain(hex8(&req.genesis)))?;
        }
        let new_roster = if req.new_roster_toml.trim().is_empty() {
            None
        } else {
            let r = s
                .parsed_rosters
                .parse(&s.ctx.tasks, "new_roster", &req.new_roster_toml)
                .await
                .map_err(SkipchainError::Invalid)?;
            Some(block_roster(&r)?)
        };
        let governor = self.governor(&genesis);
        if governor.is_none() {
            check_owner(&genesis, &req.owner, &req.signature, req.index, &req.data, new_roster.as_ref())?;
        }
        if req.index != latest.index + 1 {
            return Err(SkipchainError::Refused(format!(
                "append names index {}, the next block is {}",
                req.index,
                latest.index + 1
            )));
        }
        let roster = new_roster.or_else(|| latest.roster.clone()).unwrap_or_default();
        let index = req.index;
        let height = height_for(index, genesis.base_height, genesis.maximum_height);
        let mut sources = Vec::with_capacity(height as usize);
        for h in 0..height as usize {
            let src_index = index - level_distance(genesis.base_height, h);
            sources.push(
                s.store
                    .block_at(&req.genesis, src_index)
                    .ok_or_else(|| SkipchainError::Invalid(format!("missing block {src_index}")))?,
            );
        }
        let mut block = SkipBlock {
            index,
            height,
            maximum_height: genesis.maximum_height,
            base_height: genesis.base_height,
            back_link_ids: sources.iter().map(|b| b.hash.clone()).collect(),
            genesis_id: req.genesis.clone(),
            data: req.data.clone(),
            roster: Some(roster.clone()),
            owners: genesis.owners.clone(),
            hash: vec![],
            forward_links: vec![],
        };
        block.hash = block.compute_hash().to_vec();
        if let Some(g) = governor {
            (g.check)(&latest, &block).map_err(SkipchainError::Refused)?;
        }
        // Agree on the block of this index first (prepare), then sign its forward links (commit).
        let proposal = Proposal {
            block: Some(block.clone()),
            level: 0,
            owner: req.owner.clone(),
            owner_signature: req.signature.clone(),
            ..Default::default()
        };
        let prev_roster =
            latest.roster.clone().ok_or_else(|| SkipchainError::Invalid("latest block has no roster".into()))?;
        let requested = block.hash.clone();
        let phases = &s.observed.phases;
        let t = std::time::Instant::now();
        let agreed = self.prepare_batched(&appending, &latest, &prev_roster, proposal).await?;
        phases.add(Phase::Prepare, t.elapsed());
        if s.proposes_in_view.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(SkipchainError::Refused("left after the prepare round (fault injection)".into()));
        }
        let t = std::time::Instant::now();
        let block =
            agreed.block.clone().ok_or_else(|| SkipchainError::Invalid("prepared proposal without block".into()))?;
        let roster = block.roster.clone().unwrap_or_default();
        let links = match fast_links(&sources, &block, &agreed, &prev_roster) {
            Some(links) => links,
            None => self.sign_links_batched(&appending, &sources, &block, &agreed).await?,
        };
        phases.add(Phase::Links, t.elapsed());
        let mut incoming = Vec::with_capacity(links.len());
        let mut updated = Vec::with_capacity(links.len());
        for (level, (mut src, link)) in sources.into_iter().zip(links).enumerate() {
            set_link(&mut src, level, link.clone());
            incoming.push(LevelLink { level: level as u32, link: Some(link) });
            updated.push(src);
        }
        // The block is agreed (its links are signed): the members store it while this node does.
        // The client hears of it once this node's store and the awaited members' are all durable.
        let delivery = self.delivery_targets(&latest, &roster, &incoming);
        let deliveries = match &delivery {
            Ok((targets, signers)) => self.send_block(&block, incoming, targets, Some(signers)),
            Err(_) => Vec::new(),
        };
        let t = std::time::Instant::now();
        let new = s.store.store(&block, &updated)?;
        phases.add(Phase::Store, t.elapsed());
        self.settle_votes(&block);
        if latest.roster.as_ref().map(|r| r.id()) != block.roster.as_ref().map(|r| r.id()) {
            self.warm_roster(&roster);
        }
        if new {
            // (Not new: a member that proposed the same block again pushed it here first.)
            s.observed.stored(&block, Stored::Appended);
        }
        delivery?;
        let t = std::time::Instant::now();
        wait_for_deliveries(deliveries).await;
        phases.add(Phase::Propagate, t.elapsed());
        debug!(chain = %hex8(&req.genesis), index, height, "block appended");
        if block.hash != requested {
            return Err(SkipchainError::Conflict(format!(
                "another block ({}) had been prepared at index {index}; it is now committed there",
                hex8(&block.hash)
            )));
        }
        Ok(block)
    }

    /// Where a new block goes (the members of its roster and of the previous one, but this node)
    /// and whose stores an append waits for: the members that cosigned its level-0 link are up
    /// and sign the next block, so the append waits for them to store this one. New members must
    /// fetch the chain first; members that did not sign may be down. Both get the block in the
    /// background (or catch up later).
    fn delivery_targets(
        &self,
        latest: &SkipBlock,
        roster: &BlockRoster,
        incoming: &[LevelLink],
    ) -> Result<(Roster, Vec<IdentityPublicKey>), SkipchainError> {
        let s = &self.shared;
        let level0 = incoming.first().and_then(|l| l.link.as_ref()).and_then(|l| l.signature.as_ref());
        let prev_roster = s.rosters.get(latest.roster.as_ref().unwrap_or(roster))?;
        let signers: Vec<IdentityPublicKey> = level0
            .and_then(|sig| Mask::from_bytes(prev_roster.len(), &sig.mask).ok())
            .map(|mask| {
                mask.indices().into_iter().filter_map(|i| prev_roster.servers.get(i)).map(|m| m.public).collect()
            })
            .unwrap_or_default();
        let mut targets = Roster::clone(&*s.rosters.get(roster)?);
        for m in prev_roster.servers.iter().cloned() {
            if targets.index_of(&m.public).is_none() {
                targets.servers.push(m);
            }
        }
        Ok((targets, signers))
    }

    /// The prepare phase: gets a prepare certificate for `proposal`'s block at the next index from
    /// the roster of `latest`, trying later views when a view fails. After a failed view it asks
    /// the members what they prepared and locked: a block that some member locked on (with a valid
    /// certificate) may have been committed, so the highest-view one is proposed instead of
    /// ours. Returns the proposal that got its certificate (with `view` and `prepared` set).
    async fn prepare(
        &self,
        latest: &SkipBlock,
        prev_roster: &BlockRoster,
        mut proposal: Proposal,
    ) -> Result<Proposal, SkipchainError> {
        let s = &self.shared;
        let genesis = latest.chain_id().to_vec();
        let index = latest.index + 1;
        let signers = s.rosters.get(prev_roster)?;
        let own = s.votes.state(&genesis, index).map_err(|e| SkipchainError::Invalid(e.to_string()))?;
        if let Some(locked) =
            own.locked.clone().filter(|l| l.block.as_ref().map(|b| &b.hash) != proposal.block.as_ref().map(|b| &b.hash))
        {
            // This node itself is locked on another block: finish that one.
            proposal = Proposal { justification: locked.prepared.clone(), ..locked };
        }
        // Views past the first ones: this proposer's own (see `votes::VIEW_WINDOW`).
        let (me, members) = (signers.index_of(&s.me), signers.len());
        let owners = super::votes::ViewOwners::of_slot(&genesis, index, members);
        let own_view_after = |after: u64| match me {
            Some(i) => owners.next_own(after, i),
            None => after.saturating_add(1),
        };
        let ours = proposal.block.as_ref().is_some_and(|b| b.hash == own.prepared_hash);
        let forced = s.proposes_in_view.load(std::sync::atomic::Ordering::SeqCst);
        let mut view = match forced {
            // The same block again in the view this node prepared it in (a batch that failed, a
            // round cut short): no wait for a window.
            0 if ours && owners.owner(own.prepared_view).is_none_or(|o| Some(o) == me) => own.prepared_view,
            0 => own_view_after(own.prepared_view),
            RACES_TO_NEWEST_VIEW => owners.newest_own(self.open_views(&genesis, latest.index, None), me.unwrap_or(0)),
            forced => forced,
        };
        let mut last_error = None;
        // This proposer's failed views: what the members that answered signed (evidence material).
        let mut failed_views: Vec<PrepareCertificate> = Vec::new();
        for attempt in 0..MAX_VIEWS {
            if attempt > 0 {
                // A growing, randomized pause before a later view (as view-change timeouts do):
                // dueling proposers fall out of step, and members that others' rounds skip as
                // known down (e.g. one that just restarted) are seen back by their probes.
                tokio::time::sleep(jittered(VIEW_PAUSE * (1 << (attempt - 1)))).await;
            }
            if me.is_none() && owners.owner(view).is_some() {
                return Err(SkipchainError::Refused(format!(
                    "this node is not in the roster of the chain's newest block: it may propose only in \
                     the first views of a slot, and view {view} has an owner"
                )));
            }
            // This proposer's next window may not be open yet (here, nor at the members).
            let open = self.open_views(&genesis, latest.index, None);
            if view > open && forced == 0 {
                let wait = (view - open).min(super::votes::VIEW_WINDOW * members as u64 + REPORT_WAIT_SLACK_MS);
                tokio::time::sleep(super::votes::VIEW_OPENS_EVERY * wait as u32).await;
            }
            let hash = proposal.block.as_ref().map(|b| b.hash.clone()).unwrap_or_default();
            proposal.view = view;
            proposal.prepared = None;
            // View 1 is fast: signed by every member, the prepare is the block's forward link.
            let roster_id = prev_roster.id();
            proposal.fast = view == 1 && s.links() >= SkipchainLinks::V4 && !s.slow_rosters.marked(&roster_id);
            let mut statement = view_message(&genesis, index, &roster_id, view, proposal.fast, &hash);
            proposal.proposer_signature = match owners.owner(view) {
                Some(_) => s.ctx.config.identity.sign(&proposer_message(&statement)).to_vec(),
                None => Vec::new(),
            };
            let mut round =
                s.cosi.sign(&signers, &statement, PREPARE_PURPOSE, &proposal.encode_to_vec(), Policy::Default).await;
            let refusers = match &round {
                Ok(outcome) => fast_refused(&outcome.report),
                Err(cosi::CosiError::ThresholdNotReached { report, .. }) => fast_refused(report),
                Err(_) => false,
            };
            if proposal.fast && refusers {
                // Members that make no v4 links (older code, or configured so): this roster is
                // prepared as before fast appends for a while. View 1 again, not fast: a member
                // that signed the fast statement prepared this block in view 1 already.
                s.slow_rosters.mark(roster_id);
                if round.is_err() {
                    proposal.fast = false;
                    statement = view_message(&genesis, index, &roster_id, view, false, &hash);
                    round = s
                        .cosi
                        .sign(&signers, &statement, PREPARE_PURPOSE, &proposal.encode_to_vec(), Policy::Default)
                        .await;
                }
            }
            match round {
                Ok(outcome) => {
                    proposal.justification = None;
                    let cert = PrepareCertificate {
                        view,
                        block_hash: hash,
                        signature: Some(CollectiveSignature {
                            signature: outcome.signature.to_bytes().to_vec(),
                            mask: outcome.mask,
                        }),
                        fast: proposal.fast,
                        ..Default::default()
                    };
                    // The round verified this aggregate (with the keys of `signers`, the roster
                    // `prev_roster` checked, under the default policy) before returning it: this
                    // node's own commit hooks need not verify it again.
                    s.verified.remember(certificate_key(&roster_tag(prev_roster), &statement, &cert));
                    proposal.prepared = Some(cert);
                    return Ok(proposal);
                }
                Err(e @ (cosi::CosiError::ThresholdNotReached { .. } | cosi::CosiError::Refused(_))) => {
                    debug!(chain = %hex8(&genesis), index, view, error = %e, "prepare view failed");
                    if let cosi::CosiError::ThresholdNotReached { report, .. } = &e {
                        if let Some(partial) = &report.partial {
                            failed_views.push(PrepareCertificate {
                                view,
                                block_hash: hash.clone(),
                                signature: Some(CollectiveSignature {
                                    signature: partial.signature.clone(),
                                    mask: partial.mask.clone(),
                                }),
                                fast: proposal.fast,
                                ..Default::default()
                            });
                        }
                    }
                    last_error = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
            let states = self.slot_states(&genesis, index, &signers).await;
            self.check_prepares(&genesis, index, &signers, prev_roster, &failed_views, &states);
            if attempt == 0 {
                // This node may have missed the block at this index (its push never came, and
                // its proposer is gone): the members then refuse every view. Catch up meanwhile
                // (not waiting here for members that do not answer); the next failed view finds
                // the index taken.
                self.catch_up_in_background(b"proposing:", &genesis);
            }
            if s.store.latest_index(&genesis).is_some_and(|l| l >= index) {
                return Err(SkipchainError::Conflict(format!("index {index} was committed meanwhile")));
            }
            if states.len() < Policy::default_threshold(signers.len()) {
                // Fewer members than the threshold even answer: no later view can gather a
                // certificate now, so fail at once with the threshold error instead of trying.
                debug!(chain = %hex8(&genesis), index, answering = states.len(), "too few members answer");
                break;
            }
            if forced != 0 {
                break;
            }
            // Reports of views not open anywhere yet are lies: following one would take this
            // proposer (and the members) to a view no member opens for long.
            let open_here = self.open_views(&genesis, latest.index, None);
            let reported = super::votes::highest_view(states.iter().map(|(_, st)| st.prepared_view), open_here);
            if states
                .iter()
                .any(|(_, st)| st.prepared_view > open_here.saturating_add(super::votes::REPORT_SLACK_VIEWS))
            {
                // Liars, or the previous block came late here: in the latter case the members'
                // arrivals open this proposer's views for its next one.
                self.learn_arrival(&genesis, latest.index);
            }
            view = own_view_after(view.max(reported));
            let closure = self.closure_of(prev_roster, (&genesis, index), &states);
            let best_lock = states
                .iter()
                .cloned()
                .filter_map(|(_, st)| st.locked)
                .filter(|l| self.valid_lock(&genesis, index, prev_roster, l))
                .max_by_key(|l| l.view);
            if let Some(locked) = best_lock {
                let theirs = locked.block.as_ref().map(|b| b.hash.clone());
                if theirs != proposal.block.as_ref().map(|b| b.hash.clone()) {
                    info!(chain = %hex8(&genesis), index, view, "a member is locked on another block: proposing it");
                }
                proposal = Proposal { justification: locked.prepared.clone(), ..locked };
            } else if let Some(theirs) = self.fast_candidate(&closure, &states, signers.len()) {
                // More than f members prepared it in view 1: every member may have (it may be
                // final), and no other block can pass the members that did.
                if theirs.block.as_ref().map(|b| &b.hash) != proposal.block.as_ref().map(|b| &b.hash) {
                    info!(chain = %hex8(&genesis), index, view, "more than f members prepared another block in view 1: proposing it");
                }
                proposal = theirs;
            }
            proposal.closure = closure;
        }
        Err(last_error.map(SkipchainError::from).unwrap_or_else(|| SkipchainError::Invalid("no view tried".into())))
    }

    /// The members' statements of view 1 in their slot `states` (each member's own, as a member of
    /// the slot's roster `prev_roster`) whose signatures verify.
    fn closure_of(
        &self,
        prev_roster: &BlockRoster,
        slot: (&[u8], u64),
        states: &[(usize, SlotState)],
    ) -> Vec<FirstViewStatement> {
        let said: Vec<FirstViewStatement> = states
            .iter()
            .filter_map(|(i, st)| st.first_view_statement.clone().filter(|fv| fv.member as usize == *i))
            .collect();
        let verified = self.verified_closure(prev_roster, slot, &said).unwrap_or_default();
        verified.into_iter().cloned().collect()
    }

    /// The block more than f of `members` said (in `closure`, verified) they prepared in view 1 of
    /// the slot, as a proposal to make again: its content from a member's reported state (this
    /// node's own first, which comes last), checked as a member checks a proposal (a record a
    /// Byzantine member altered is passed over); none when no block has that many, or no member
    /// reported it whole.
    fn fast_candidate(
        &self,
        closure: &[FirstViewStatement],
        states: &[(usize, SlotState)],
        members: usize,
    ) -> Option<Proposal> {
        let faults = Policy::tolerated_faults(members);
        let hash = closure
            .iter()
            .filter(|st| !st.block_hash.is_empty())
            .map(|st| &st.block_hash)
            .find(|h| closure.iter().filter(|st| &&st.block_hash == h).count() > faults)?;
        states.iter().rev().filter_map(|(_, st)| st.first_view.as_ref()).find_map(|p| {
            let block = p.block.as_ref().filter(|b| &b.hash == hash)?;
            let candidate = Proposal {
                block: Some(block.clone()),
                owner: p.owner.clone(),
                owner_signature: p.owner_signature.clone(),
                ..Default::default()
            };
            self.check_block(&candidate).is_ok().then_some(candidate)
        })
    }

    /// Whether a lock reported by a member is backed by a valid prepare certificate of its block.
    fn valid_lock(&self, genesis: &[u8], index: u64, prev_roster: &BlockRoster, locked: &Proposal) -> bool {
        let (Some(block), Some(cert)) = (locked.block.as_ref(), locked.prepared.as_ref()) else { return false };
        block.check_self().is_ok()
            && block.genesis_id == genesis
            && block.index == index
            && cert.block_hash == block.hash
            && self.verify_certificate(prev_roster, genesis, index, cert).is_ok()
    }

    /// The slot states of the members (this node's own included), asked concurrently; members
    /// that do not answer in time are left out. Each state comes with the member's roster index.
    async fn slot_states(&self, genesis: &[u8], index: u64, roster: &Roster) -> Vec<(usize, SlotState)> {
        let s = &self.shared;
        let query = SlotQuery { genesis: genesis.to_vec(), index }.encode_to_vec();
        let asks = roster.servers.iter().enumerate().filter(|(_, m)| m.public != s.me).map(|(i, m)| {
            let (net, query, m) = (s.network.clone(), query.clone(), m.clone());
            async move {
                // Members known to be down are dialed once now: a stopped one refuses at once, one
                // that just restarted is back (no wait for the dial backoff or the probe).
                let reply =
                    net.request_redial_now(&m, SKIPCHAIN_SERVICE, "Slot", &[], query, SLOT_QUERY_TIMEOUT).await.ok()?;
                Some((i, SlotState::decode(reply.as_slice()).ok()?))
            }
        });
        let mut states: Vec<(usize, SlotState)> =
            futures_util::future::join_all(asks).await.into_iter().flatten().collect();
        if let (Ok(own), Some(i)) = (s.votes.state(genesis, index), roster.index_of(&s.me)) {
            let mut own = super::votes::as_slot_reply(genesis, index, own);
            own.first_view_statement = self.first_view_statement(genesis, index, None);
            states.push((i, own));
        }
        states
    }

    /// Holds every member that signed prepare messages of two different blocks in one view of
    /// this slot to it (see `evidence`): `seen` has this proposer's failed views' aggregates; the
    /// slot replies add the certificates of the members' locks and each member's own signature.
    fn check_prepares(
        &self,
        genesis: &[u8],
        index: u64,
        roster: &Roster,
        prev_roster: &BlockRoster,
        seen: &[PrepareCertificate],
        states: &[(usize, SlotState)],
    ) {
        let Ok(keys) = prev_roster.cosi_keys() else { return };
        let mut all = seen.to_vec();
        for (i, st) in states {
            all.extend(st.locked.as_ref().and_then(|l| l.prepared.clone()));
            if st.prepared_view > 0 && !st.prepared_signature.is_empty() {
                let mut mask = Mask::new(roster.len());
                mask.set(*i);
                all.push(PrepareCertificate {
                    view: st.prepared_view,
                    block_hash: st.prepared_hash.clone(),
                    signature: Some(CollectiveSignature {
                        signature: st.prepared_signature.clone(),
                        mask: mask.into_bytes(),
                    }),
                    ..Default::default()
                });
            }
        }
        if all.len() < 2 {
            return;
        }
        self.shared.evidence.record_prepares((genesis, index, &prev_roster.id()), roster, &keys, &all);
    }

    /// The forward links to `block` from `sources` (source of level h at position h): one cosi
    /// round per source roster over the v2 statement of the block, serving every level whose
    /// source has that roster (usually all: one round), the rounds at once. A roster whose members
    /// refuse the v2 statement (older code) signs its levels one round each, in v1.
    async fn sign_links(
        &self,
        sources: &[SkipBlock],
        block: &SkipBlock,
        agreed: &Proposal,
    ) -> Result<Vec<ForwardLink>, SkipchainError> {
        let mut groups: Vec<([u8; 32], Vec<usize>)> = Vec::new();
        for (level, src) in sources.iter().enumerate() {
            let id = src.roster.as_ref().map(|r| r.id()).unwrap_or_default();
            match groups.iter_mut().find(|(g, _)| *g == id) {
                Some((_, levels)) => levels.push(level),
                None => groups.push((id, vec![level])),
            }
        }
        let rounds = groups.iter().map(|(id, levels)| self.sign_group(sources, levels, id, block, agreed));
        let signed = futures_util::future::join_all(rounds).await;
        let mut links = vec![ForwardLink::default(); sources.len()];
        for ((_, levels), group) in groups.iter().zip(signed) {
            for (&level, link) in levels.iter().zip(group?) {
                links[level] = link;
            }
        }
        Ok(links)
    }

    /// The links of `levels` (whose sources have the roster `roster_id`): one v2 round, or, when
    /// members refuse it, one v1 round per level.
    async fn sign_group(
        &self,
        sources: &[SkipBlock],
        levels: &[usize],
        roster_id: &[u8; 32],
        block: &SkipBlock,
        agreed: &Proposal,
    ) -> Result<Vec<ForwardLink>, SkipchainError> {
        let s = &self.shared;
        let mut refused = Vec::new();
        let legacy = s.links() == SkipchainLinks::V1 || s.legacy_links.marked(roster_id);
        if !legacy {
            let group: Vec<&SkipBlock> = levels.iter().filter_map(|&l| sources.get(l)).collect();
            // Members that predate v2 refuse it. Even when the others reach the threshold, their
            // links would be ones those members cannot verify (they could not store the block):
            // then the levels are signed in v1 too, and the v2 signature is not used.
            refused = match self.sign_links_v2(&group, block, agreed).await {
                Ok((links, report)) if v2_refusers(&report).is_empty() => return Ok(links),
                Ok((_, report)) => v2_refusers(&report),
                Err(SkipchainError::Cosi(cosi::CosiError::ThresholdNotReached { report, .. }))
                    if !v2_refusers(&report).is_empty() =>
                {
                    v2_refusers(&report)
                }
                Err(e) => return Err(e),
            };
            debug!(
                chain = %hex8(&block.genesis_id),
                index = block.index,
                refused = refused.len(),
                "members refused the v2 forward-link statement: signing level by level"
            );
        }
        let rounds = levels.iter().filter_map(|&level| {
            let mut proposal = agreed.clone();
            proposal.level = level as u32;
            Some(self.sign_link(sources.get(level)?, block, proposal))
        });
        let links = futures_util::future::join_all(rounds).await.into_iter().collect::<Result<Vec<_>, _>>()?;
        // Members that refused v2 but signed v1 run older code: v1 for this roster for a while.
        let n = sources.get(levels[0]).and_then(|b| b.roster.as_ref()).map_or(0, |r| r.members.len());
        let signed_v1 = links
            .first()
            .and_then(|l| l.signature.as_ref())
            .and_then(|sig| Mask::from_bytes(n, &sig.mask).ok())
            .map(|m| m.indices())
            .unwrap_or_default();
        if refused.iter().any(|i| signed_v1.contains(i)) {
            self.sign_v1_for_a_while(*roster_id);
        }
        Ok(links)
    }

    /// One cosi round by the roster of `sources` (all with the same roster) over the v2 statement
    /// of `block`: the links from each source, sharing the collective signature, and the round's
    /// report.
    async fn sign_links_v2(
        &self,
        sources: &[&SkipBlock],
        block: &SkipBlock,
        agreed: &Proposal,
    ) -> Result<(Vec<ForwardLink>, cosi::SignReport), SkipchainError> {
        let src_roster = sources
            .first()
            .and_then(|b| b.roster.as_ref())
            .ok_or_else(|| SkipchainError::Invalid("source block without roster".into()))?;
        let block_roster = block.roster.as_ref().map(|r| r.id().to_vec()).unwrap_or_default();
        let new_roster = (src_roster.id().as_slice() != block_roster.as_slice()).then_some(block_roster);
        let statement = ForwardLink::commit_message(&block.hash);
        let mut proposal = agreed.clone();
        proposal.level = 0;
        let (signature, report) = self.cosign_link(src_roster, &statement, &proposal).await?;
        let links = sources
            .iter()
            .map(|src| ForwardLink {
                from: src.hash.clone(),
                to: block.hash.clone(),
                new_roster: new_roster.clone(),
                signature: Some(signature.clone()),
                format: LINK_FORMAT_V2,
                ..Default::default()
            })
            .collect();
        Ok((links, report))
    }

    /// One cosi round by `src_roster` over a forward-link `statement`, with `proposal` for the
    /// members' hooks: the collective signature and the round's report.
    async fn cosign_link(
        &self,
        src_roster: &BlockRoster,
        statement: &[u8],
        proposal: &Proposal,
    ) -> Result<(CollectiveSignature, cosi::SignReport), SkipchainError> {
        let roster = self.shared.rosters.get(src_roster)?;
        let extra = proposal.encode_to_vec();
        let (mut attempt, started) = (1, std::time::Instant::now());
        let outcome = loop {
            match self.shared.cosi.sign(&roster, statement, COMMIT_PURPOSE, &extra, Policy::Default).await {
                Ok(outcome) => break outcome,
                // The block has its prepare certificate (members lock on it when they sign its
                // link): members that were only late (a busy machine, a lost packet) get another
                // round instead of failing an append the roster agreed on. Signing the same link
                // again changes nothing at a member. Rounds that waited long for hung members are
                // not repeated (the chain's append lock is held meanwhile).
                Err(cosi::CosiError::ThresholdNotReached { report, .. })
                    if attempt < LINK_ROUND_ATTEMPTS
                        && started.elapsed() < LINK_RETRY_WITHIN
                        && only_late_members_missing(&report) =>
                {
                    debug!(
                        block = %hex8(proposal.block.as_ref().map_or(&[][..], |b| &b.hash)),
                        attempt,
                        timed_out = report.timed_out.len(),
                        "forward-link round: members timed out, again"
                    );
                    tokio::time::sleep(jittered(VIEW_PAUSE * attempt as u32)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let signature = CollectiveSignature { signature: outcome.signature.to_bytes().to_vec(), mask: outcome.mask };
        Ok((signature, outcome.report))
    }

    /// One cosi round by the roster of `src` over the v1 statement of the link from `src` to
    /// `block` (the level in `proposal`).
    async fn sign_link(
        &self,
        src: &SkipBlock,
        block: &SkipBlock,
        proposal: Proposal,
    ) -> Result<ForwardLink, SkipchainError> {
        let src_roster =
            src.roster.as_ref().ok_or_else(|| SkipchainError::Invalid("source block without roster".into()))?;
        let new_roster = (src_roster.id() != block.roster.as_ref().map(|r| r.id()).unwrap_or_default())
            .then(|| block.roster.as_ref().map(|r| r.id().to_vec()).unwrap_or_default());
        let statement = ForwardLink::message(&src.hash, &block.hash, new_roster.as_deref());
        let (signature, _) = self.cosign_link(src_roster, &statement, &proposal).await?;
        Ok(ForwardLink {
            from: src.hash.clone(),
            to: block.hash.clone(),
            new_roster,
            signature: Some(signature),
            format: LINK_FORMAT_V1,
            ..Default::default()
        })
    }

    /// Sends a stored block to every other member of `roster`. Waits at most `PROPAGATE_WAIT` for the
    /// acknowledgements of `wait_for` (every member when `None`); the other deliveries go on in the
    /// background (a member that misses a block catches up later), so a stopped member never holds
    /// up an append. A member that cannot verify the block's v2 or v3 links (older code) gets
    /// them signed again in v1 (see `older_members`).
    async fn propagate(
        &self,
        block: &SkipBlock,
        incoming: Vec<LevelLink>,
        roster: &Roster,
        wait_for: Option<&[IdentityPublicKey]>,
    ) {
        wait_for_deliveries(self.send_block(block, incoming, roster, wait_for)).await;
    }

    /// Starts sending `block` with its `incoming` links to every other member of `roster`;
    /// returns the deliveries to the members of `wait_for` (all when `None`), for
    /// [`wait_for_deliveries`]. Deliveries that fail are offered again later.
    fn send_block(
        &self,
        block: &SkipBlock,
        incoming: Vec<LevelLink>,
        roster: &Roster,
        wait_for: Option<&[IdentityPublicKey]>,
    ) -> Vec<tokio::task::JoinHandle<Option<()>>> {
        let payload = Arc::new(LinkedBlock { block: Some(block.clone()), incoming }.encode_to_vec());
        let (chain, index) = (block.chain_id().to_vec(), block.index);
        let mut awaited = Vec::new();
        for m in roster.servers.iter().filter(|m| m.public != self.shared.me).cloned() {
            let net = self.shared.network.clone();
            let payload = payload.clone();
            let awaited_member = wait_for.is_none_or(|keys| keys.contains(&m.public));
            let weak = Arc::downgrade(&self.shared);
            let chain = chain.clone();
            let deliver = async move {
                if let Err(e) = net.request(&m, SKIPCHAIN_SERVICE, "Store", &[], payload.to_vec(), PEER_TIMEOUT).await {
                    debug!(peer = %m.address, error = %e, "member did not store the block (offered again later)");
                    if let Some(shared) = weak.upgrade() {
                        if !older_members::relink_if_older(&shared, &m, &e, &payload, older_members::AskedBy::Push) {
                            redeliver(&shared, m, chain, index, payload.to_vec());
                        }
                    }
                }
            };
            let delivery = self.shared.ctx.tasks.spawn(deliver);
            if awaited_member {
                awaited.push(delivery);
            }
        }
        awaited
    }

    /// A roster this node signs with from now on (a new chain's, or a chain's new one): cosi
    /// checks its proofs of possession and opens the links of its rounds over it in the background
    /// ([`CosiService::prepare`]), so the first append on it pays neither. Once per roster id;
    /// only rosters this node is in (it leads and joins rounds only over those).
    fn warm_roster(&self, roster: &BlockRoster) {
        let s = &self.shared;
        if tokio::runtime::Handle::try_current().is_err()
            || !roster.members.iter().any(|m| m.identity.as_slice() == s.me.as_bytes())
        {
            return;
        }
        {
            let id = roster.id();
            let mut warmed = crate::sync::lock(&s.warmed);
            if warmed.contains(&id) {
                return;
            }
            warmed.insert(id, ());
        }
        // A weak reference, as the hooks hold: the task never keeps a stopped node's database open.
        let (weak, cosi, tasks, roster) =
            (Arc::downgrade(&self.shared), s.cosi.clone(), s.ctx.tasks.clone(), roster.clone());
        s.ctx.tasks.spawn(async move {
            // Decoding the keys checks the PoPs not yet checked (pairings): off the workers.
            let checked = tasks.spawn_blocking(move || weak.upgrade().map(|shared| shared.rosters.get(&roster))).await;
            match checked {
                Ok(Some(Ok(roster))) => {
                    if let Err(e) = cosi.prepare(&roster).await {
                        debug!(error = %e, "skipchain: cosi could not prepare a block roster");
                    }
                }
                Ok(None) => {}
                Ok(Some(Err(e))) => debug!(error = %e, "skipchain: a block roster does not check"),
                Err(e) => debug!(error = %e, "skipchain: checking a block roster failed"),
            }
        });
    }

    /// Shortest proof from `from` to the newest block: follow the highest forward link each time.
    /// A proof longer than a light client accepts (`MAX_PROOF_BLOCKS` blocks, `MAX_PROOF_BYTES`
    /// encoded; reached on chains with a low maximum height) ends early, at a block that still
    /// has a forward link: ask again from that block for the rest.
    pub fn update_chain(&self, from: &[u8]) -> Result<Vec<SkipBlock>, SkipchainError> {
        self.update_chain_within(from, MAX_PROOF_BLOCKS, MAX_PROOF_BYTES)
    }

    /// [`Self::update_chain`] with the bounds given (at least the block `from` is returned).
    pub fn update_chain_within(
        &self,
        from: &[u8],
        max_blocks: usize,
        max_bytes: usize,
    ) -> Result<Vec<SkipBlock>, SkipchainError> {
        let mut cur = self.shared.store.block(from).ok_or_else(|| SkipchainError::UnknownBlock(hex8(from)))?;
        // What each block adds to an encoded `Proof` (its bytes, a tag and a length of at most 10).
        let size = |b: &SkipBlock| b.encoded_len() + 11;
        let mut bytes = size(&cur);
        let mut proof = vec![cur.clone()];
        while let Some(link) = cur.forward_links.iter().rev().find(|l| !l.to.is_empty()) {
            if proof.len() >= max_blocks {
                break;
            }
            let next = self.shared.store.block(&link.to).ok_or_else(|| SkipchainError::UnknownBlock(hex8(&link.to)))?;
            bytes += size(&next);
            if bytes > max_bytes {
                break;
            }
            proof.push(next.clone());
            cur = next;
        }
        Ok(proof)
    }

    /// Verifies and stores a block pushed by a peer (or fetched while catching up).
    fn accept(&self, item: &LinkedBlock) -> Result<(), SkipchainError> {
        let s = &self.shared;
        let block = item.block.as_ref().ok_or_else(|| SkipchainError::Invalid("no block".into()))?;
        block.check_self()?;
        if block.index == 0 {
            if s.store.block(&block.hash).is_none() && s.store.store(block, &[])? {
                s.observed.stored(block, Stored::FromPeer);
                if let Some(r) = block.roster.as_ref() {
                    self.warm_roster(r);
                }
            }
            return Ok(());
        }
        let genesis = block.genesis_id.clone();
        let have =
            s.store.latest_index(&genesis).ok_or_else(|| SkipchainError::Behind { have: 0, need: block.index })?;
        if let Some(existing) = s.store.held_hash_at(&genesis, block.index) {
            if existing == block.hash {
                return Ok(());
            }
            if let Some(existing) = s.store.block(&existing) {
                self.check_equivocation(block, &existing, item);
                return Err(SkipchainError::Refused(format!("conflicting block at index {}", block.index)));
            }
        }
        if have + 1 != block.index {
            return Err(SkipchainError::Behind { have, need: block.index });
        }
        // The levels' sources and links, up to the first level that is wrong before any signature
        // check (as a level-by-level check would find it), then their signatures as one batch.
        let mut levels = Vec::with_capacity(block.height as usize);
        let mut structural = None;
        for h in 0..block.height as usize {
            let src_index = block.index - level_distance(block.base_height, h);
            let Some(src) = s.store.block_at(&genesis, src_index) else {
                structural = Some(SkipchainError::Invalid(format!("missing block {src_index}")));
                break;
            };
            if block.back_link_ids.get(h) != Some(&src.hash) {
                structural =
                    Some(SkipchainError::Invalid(format!("back link {h} does not point to block {src_index}")));
                break;
            }
            let Some(mut link) = item.incoming.iter().find(|l| l.level as usize == h).and_then(|l| l.link.clone())
            else {
                structural = Some(SkipchainError::Invalid(format!("missing forward link at level {h}")));
                break;
            };
            if s.refuses_link_v2.load(std::sync::atomic::Ordering::SeqCst) {
                link = older_members::as_read_before_v2(link);
            }
            levels.push((src, link));
        }
        self.verify_links(block, &levels)?;
        if let Some(e) = structural {
            return Err(e);
        }
        let mut updated = Vec::with_capacity(levels.len());
        for (h, (mut src, link)) in levels.into_iter().enumerate() {
            set_link(&mut src, h, link);
            updated.push(src);
        }
        if !s.store.store(block, &updated)? {
            // A concurrent caller (a push and a catch-up of the same block) stored it first.
            return Ok(());
        }
        s.observed.stored(block, Stored::FromPeer);
        self.settle_votes(block);
        let prev_roster = updated.first().and_then(|prev| prev.roster.as_ref()).map(|r| r.id());
        if let Some(r) = block.roster.as_ref().filter(|r| Some(r.id()) != prev_roster) {
            self.warm_roster(r);
        }
        Ok(())
    }

    /// After `block` was stored here: the vote record of the slot `votes::SETTLED_DEPTH` below
    /// it is no longer needed (this node never votes at the index of a block it holds).
    fn settle_votes(&self, block: &SkipBlock) {
        if let Err(e) = self.shared.votes.settle(&block.genesis_id, block.index) {
            debug!(chain = %hex8(&block.genesis_id), index = block.index, error = %e, "vote record not forgotten (the next start does)");
        }
    }

    /// Forgets, in the background, the vote records of slots settled before this start (see
    /// `votes::SETTLED_DEPTH`).
    fn settle_old_votes(&self) {
        let (votes, store) = (self.shared.votes.clone(), self.shared.store.clone());
        self.shared.ctx.tasks.spawn(async move {
            let sweep = tokio::task::spawn_blocking(move || votes.settle_all(|genesis| store.latest_index(genesis)));
            match sweep.await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => info!(records = removed, "forgot the vote records of settled slots"),
                Ok(Err(e)) => warn!(error = %e, "could not forget the vote records of settled slots"),
                Err(e) => warn!(error = %e, "the sweep of settled vote records stopped"),
            }
        });
    }

    /// A peer sent `block` for an index where this node holds `existing`: if both are linked from
    /// the same source block at the same level by valid forward links, keep the evidence. Levels
    /// whose links share their signatures (v2 links: one signature per block and roster) are one
    /// equivocation, recorded once.
    fn check_equivocation(&self, block: &SkipBlock, existing: &SkipBlock, item: &LinkedBlock) {
        let s = &self.shared;
        let mut recorded: Vec<(Option<CollectiveSignature>, Option<CollectiveSignature>)> = Vec::new();
        for incoming in &item.incoming {
            let level = incoming.level as usize;
            let Some(theirs) = incoming.link.as_ref() else { continue };
            if level >= block.height as usize || block.index < level_distance(block.base_height, level) {
                continue;
            }
            let src_index = block.index - level_distance(block.base_height, level);
            let Some(src) = s.store.block_at(&block.genesis_id, src_index) else { continue };
            let Some(ours) = src.forward_links.get(level).filter(|l| l.to == existing.hash) else { continue };
            let Some(Ok(roster)) = src.roster.as_ref().map(|r| s.rosters.get(r)) else { continue };
            let pair = (ours.signature.clone(), theirs.signature.clone());
            if recorded.contains(&pair) {
                continue;
            }
            let accused = s.evidence.record_conflict(
                &block.genesis_id,
                &src,
                level as u32,
                &roster,
                (existing, ours),
                (block, theirs),
            );
            if !accused.is_empty() {
                recorded.push(pair);
            }
        }
    }

    /// How many chains have an append or a catch-up lock entry now: at most the chains held plus
    /// those being caught up (appends to made-up chains and finished catch-ups leave none).
    pub fn lock_entries(&self) -> usize {
        crate::sync::lock(&self.shared.appending).len() + crate::sync::lock(&self.shared.catching_up).len()
    }

    /// Fetches and verifies what `peer` has beyond our newest block of `genesis`.
    pub async fn catch_up(&self, genesis: &[u8], peer: &ServerIdentity) -> Result<u64, SkipchainError> {
        self.single_flight(genesis, self.fetch_from(genesis, peer)).await
    }

    /// Runs `fetch` (a catch-up of `genesis`) after the one in flight for the chain, if any, so
    /// that the later ones find little or nothing left to fetch. It waits only while that one
    /// makes progress: after `CATCH_UP_HEDGE` without a block stored, `fetch` runs beside it
    /// (a peer that does not answer, as a liar may, holds up the others that long at most).
    async fn single_flight<T>(&self, genesis: &[u8], fetch: impl std::future::Future<Output = T>) -> T {
        let entry = FlightEntry::join(&self.shared.catching_up, genesis);
        let mut held = self.shared.store.latest_index(genesis);
        let single = loop {
            match tokio::time::timeout(CATCH_UP_HEDGE, entry.flight.lock()).await {
                Ok(single) => break Some(single),
                Err(_) => {
                    let now = self.shared.store.latest_index(genesis);
                    if now == held {
                        debug!(chain = %hex8(genesis), "the catch-up in flight makes no progress: another one runs beside it");
                        break None;
                    }
                    held = now;
                }
            }
        };
        let fetched = fetch.await;
        drop(single);
        fetched
    }

    /// The lock-free part of [`Self::catch_up`]: fetches in batches until `peer` has no more.
    async fn fetch_from(&self, genesis: &[u8], peer: &ServerIdentity) -> Result<u64, SkipchainError> {
        let mut fetched = 0;
        loop {
            let from_index = self.shared.store.latest_index(genesis).map(|i| i + 1).unwrap_or(0);
            let req = GetBlocks { genesis: genesis.to_vec(), from_index, max: CATCH_UP_BATCH };
            let reply = self
                .shared
                .network
                .request(peer, SKIPCHAIN_SERVICE, "GetBlocks", &[], req.encode_to_vec(), PEER_TIMEOUT)
                .await?;
            let blocks = Blocks::decode(reply.as_slice())
                .map_err(|e| SkipchainError::Invalid(format!("GetBlocks reply: {e}")))?;
            if blocks.blocks.is_empty() {
                break;
            }
            check_fetched(genesis, from_index, &blocks.blocks)?;
            for item in &blocks.blocks {
                self.accept(item)?;
                fetched += 1;
            }
            if blocks.blocks.len() < CATCH_UP_BATCH as usize {
                break;
            }
        }
        if fetched > 0 {
            info!(chain = %hex8(genesis), blocks = fetched, "caught up");
        }
        Ok(fetched)
    }

    /// Whether a client read of `index` on `genesis`, beyond this member's newest block of a
    /// chain it holds, should start a catch-up now (at most one per `READ_CATCH_UP_EVERY` per
    /// chain and one per `READ_CATCH_UP_ANY` for all).
    fn read_catch_up_due(&self, genesis: &[u8], index: u64) -> bool {
        let s = &self.shared;
        if s.store.latest_index(genesis).is_none_or(|newest| index <= newest) {
            return false;
        }
        // The empty key stands for "any chain" (no chain id is empty).
        let due = limited_due(&s.read_catch_ups, genesis, Some(READ_CATCH_UP_ANY));
        s.observed.read_catch_up(due);
        due
    }

    /// Whether a catch-up or an arrival query that a proposal asks for (`why`, on chain
    /// `genesis`) is due: at most once per `READ_CATCH_UP_EVERY` per reason and chain, apart from
    /// client reads. Only owner-signed proposals (or proposals of governed chains) ask.
    fn proposal_ask_due(&self, why: &[u8], genesis: &[u8]) -> bool {
        limited_due(&self.shared.proposal_asks, &[why, genesis].concat(), None)
    }

    /// Whether the owner of chain `genesis` signed the append of `block` (with or without a new
    /// roster: which one this node cannot tell without the blocks before it).
    fn owner_signed(&self, genesis: &SkipBlock, p: &Proposal, block: &SkipBlock) -> bool {
        let check =
            |roster| check_owner(genesis, &p.owner, &p.owner_signature, block.index, &block.data, roster).is_ok();
        check(None) || block.roster.as_ref().is_some_and(|r| check(Some(r)))
    }

    /// This member may have missed blocks the others hold (their proposer crashed while sending
    /// them, or withheld them): a proposal names a block beyond its next one (`why` = "behind:"),
    /// or its own proposal's first view failed ("proposing:"). Without them it refuses every
    /// later block, or proposes an index that is taken. Starts a catch-up in the background (at
    /// most one per chain and reason per `READ_CATCH_UP_EVERY`, apart from client reads) so that
    /// the next view finds it done; returns whether one started.
    fn catch_up_in_background(&self, why: &[u8], genesis: &[u8]) -> bool {
        if !self.proposal_ask_due(why, genesis) {
            return false;
        }
        let (svc, genesis) = (self.clone(), genesis.to_vec());
        self.shared.ctx.tasks.spawn(async move { svc.catch_up_chain(&genesis).await });
        true
    }

    /// (catch-ups started by client reads beyond this node's newest block, such reads that started
    /// none because one ran lately): what the limit on read catch-ups did.
    pub fn read_catch_ups(&self) -> (u64, u64) {
        self.shared.observed.read_catch_ups()
    }

    /// Asks the members of every known chain for newer blocks (on start).
    pub async fn catch_up_all(&self) {
        for genesis in self.shared.store.chains() {
            self.catch_up_chain(&genesis).await;
        }
    }

    /// Asks every other member of `genesis`'s latest roster (all at once) how far the chain goes and
    /// fetches what they have beyond our newest block, from the most advanced first (see
    /// [`Self::fetch_hedged`]). Used on start and when a client names an index beyond ours (this
    /// member was cut off while the others went on). Returns by how many blocks this node's chain
    /// grew meanwhile (pushed blocks included).
    pub async fn catch_up_chain(&self, genesis: &[u8]) -> u64 {
        let s = &self.shared;
        let Some(latest) = s.store.latest(genesis) else { return 0 };
        let Some(Ok(roster)) = latest.roster.as_ref().map(|r| s.rosters.get(r)) else { return 0 };
        let answers = self.latest_of_members(genesis, &roster, Duration::from_secs(3)).await;
        let mut ahead: Vec<(u64, ServerIdentity)> = answers.iter().map(|(m, l)| (l.index, m.clone())).collect();
        ahead.sort_by_key(|a| std::cmp::Reverse(a.0));
        let faulty = Policy::tolerated_faults(roster.len());
        let fetched = self.single_flight(genesis, self.fetch_hedged(genesis, ahead, faulty)).await;
        if fetched > 0 {
            // The newest block came late here: open the next slot's views as the members do.
            self.adopt_arrival(genesis, &answers);
        }
        fetched
    }

    /// Fetches from the `claimants` (members with the index each claims, highest first) what this
    /// node lacks. Any `faulty` of them may lie: one that claims far ahead and then does not
    /// answer would hold the catch-up for a whole peer timeout, one that answers with less than
    /// it claimed would end it with nothing. So:
    /// - when `CATCH_UP_HEDGE` passes with no block stored, as many more claimants are asked as
    ///   are running already (1, 2, 4…, at most `faulty` + 1 at once: one of them is honest);
    /// - a claimant that gave less than it claimed counts as failed (the next one is asked);
    /// - once this node holds what one of them claimed (whoever brought the blocks) and no one not
    ///   yet asked claims more, those still running get as long again as the catch-up took so far
    ///   (`CATCH_UP_HEDGE` at least, for a slow link, and four times it at most: the arrival is
    ///   adopted after), and more only while blocks keep coming.
    ///
    /// Returns by how many blocks this node's chain grew meanwhile.
    async fn fetch_hedged(&self, genesis: &[u8], claimants: Vec<(u64, ServerIdentity)>, faulty: usize) -> u64 {
        use futures_util::StreamExt as _;
        use tokio::time::Instant;
        let held = || self.shared.store.latest_index(genesis).unwrap_or(0);
        let (start, began) = (held(), Instant::now());
        let lowest_claim = claimants.iter().map(|(claim, _)| *claim).filter(|claim| *claim > start).min();
        let delivered = || lowest_claim.is_some_and(|claim| held() >= claim);
        let mut queue = std::collections::VecDeque::from(claimants);
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut to_ask = 1;
        // Once delivered: until when those still running are waited for, and what was held then.
        let mut winding_down: Option<(Instant, u64)> = None;
        loop {
            while to_ask > 0 && running.len() <= faulty {
                let Some((claim, member)) = queue.pop_front() else { break };
                if claim > held() {
                    running.push(async move {
                        let result = self.fetch_from(genesis, &member).await;
                        (member, claim, result)
                    });
                    to_ask -= 1;
                }
            }
            if running.is_empty() {
                break;
            }
            let more_claimed = || queue.iter().any(|(claim, _)| *claim > held());
            if winding_down.is_none() && delivered() && !more_claimed() {
                let grace = CATCH_UP_HEDGE.max(began.elapsed()).min(CATCH_UP_HEDGE * 4);
                winding_down = Some((Instant::now() + grace, held()));
            }
            let mark = held();
            let until = winding_down.map_or(Instant::now() + CATCH_UP_HEDGE, |(until, _)| until);
            to_ask = match tokio::time::timeout_at(until, running.next()).await {
                Err(_) => match winding_down {
                    Some((_, then)) if held() > then => {
                        winding_down = Some((Instant::now() + CATCH_UP_HEDGE, held()));
                        0
                    }
                    Some(_) => break,
                    None if held() > mark => 0,
                    // Nothing stored: ask more beside.
                    None => running.len().max(1),
                },
                Ok(None) => 1,
                Ok(Some((member, claim, Ok(_)))) => {
                    if held() < claim {
                        warn!(peer = %member.address, claimed = claim, holds = held(), "catch-up: a member gave less than it claimed");
                    }
                    usize::from(!delivered() || more_claimed())
                }
                Ok(Some((member, _, Err(e)))) => {
                    warn!(peer = %member.address, error = %e, "catch-up failed");
                    1
                }
            };
        }
        // Blocks the fetches dropped unfinished stored count too.
        held().saturating_sub(start)
    }

    /// What the other members of `roster` answer to `Latest` for `genesis` (those that know the
    /// chain and answer within `timeout`). Once all of them but f have answered or failed, the
    /// others get as long again as that took (`CATCH_UP_HEDGE` at least) and no more: a member
    /// that holds the question unanswered (hung, or a liar) does not hold the caller for the whole
    /// timeout.
    async fn latest_of_members(
        &self,
        genesis: &[u8],
        roster: &Roster,
        timeout: Duration,
    ) -> Vec<(ServerIdentity, Latest)> {
        use futures_util::StreamExt as _;
        let s = &self.shared;
        let mut asks: futures_util::stream::FuturesUnordered<_> = roster
            .servers
            .iter()
            .filter(|m| m.public != s.me)
            .cloned()
            .map(|m| async move {
                let req = Latest { genesis: genesis.to_vec(), ..Default::default() };
                let reply = s
                    .network
                    .request_fail_fast(&m, SKIPCHAIN_SERVICE, "Latest", &[], req.encode_to_vec(), timeout)
                    .await
                    .ok()?;
                let theirs = Latest::decode(reply.as_slice()).ok()?;
                theirs.known.then_some((m, theirs))
            })
            .collect();
        let faulty = Policy::tolerated_faults(roster.len());
        let enough = asks.len().saturating_sub(faulty);
        let (mut answers, mut came) = (Vec::new(), 0);
        let asked = tokio::time::Instant::now();
        let mut due = asked + timeout;
        while let Ok(Some(answer)) = tokio::time::timeout_at(due, asks.next()).await {
            answers.extend(answer);
            came += 1;
            if came == enough {
                // As long again as the others took (a slow link), a quarter second at least.
                due = due.min(tokio::time::Instant::now() + CATCH_UP_HEDGE.max(asked.elapsed()));
            }
        }
        answers
    }

    /// Adopts, for this node's newest block of `genesis`, the (f+1)-th earliest arrival among its
    /// own and the members' `answers` for that block (see `arrivals`) when it is earlier.
    fn adopt_arrival(&self, genesis: &[u8], answers: &[(ServerIdentity, Latest)]) {
        let s = &self.shared;
        let Some(latest) = s.store.latest(genesis) else { return };
        let Some(own) = s.store.arrival(genesis, latest.index) else { return };
        let Some(Ok(roster)) = latest.roster.as_ref().map(|r| s.rosters.get(r)) else { return };
        // One answer per member of the block's roster, for this very block.
        let mut seen = std::collections::HashSet::new();
        let reported: Vec<u64> = answers
            .iter()
            .filter(|(m, l)| l.index == latest.index && roster.index_of(&m.public).is_some() && seen.insert(m.public))
            .map(|(_, l)| l.arrived_unix_ms)
            .collect();
        let faulty = Policy::tolerated_faults(roster.len());
        let at = super::arrivals::adopted_arrival(own, &reported, faulty);
        if at < own && s.store.adopt_earlier_arrival(genesis, latest.index, at) {
            info!(
                chain = %hex8(genesis),
                index = latest.index,
                earlier_ms = own - at,
                "this block came late here: the next slot's views open from when the members got it"
            );
        }
    }

    /// Asked for a view of the slot after block `prev_index` that is not open here yet: in the
    /// background (at most once per chain per `READ_CATCH_UP_EVERY`, see `proposal_ask_due`),
    /// asks the members when that block arrived at them, in case it came late here (see
    /// `arrivals`).
    fn learn_arrival(&self, genesis: &[u8], prev_index: u64) {
        if !self.proposal_ask_due(b"arrival:", genesis) {
            return;
        }
        let (svc, genesis) = (self.clone(), genesis.to_vec());
        self.shared.ctx.tasks.spawn(async move {
            let s = &svc.shared;
            let Some(latest) = s.store.latest(&genesis).filter(|b| b.index == prev_index) else { return };
            let Some(Ok(roster)) = latest.roster.as_ref().map(|r| s.rosters.get(r)) else { return };
            let answers = svc.latest_of_members(&genesis, &roster, Duration::from_secs(1)).await;
            svc.adopt_arrival(&genesis, &answers);
        });
    }

    async fn handle_peer(&self, msg: PeerMessage) -> Result<Vec<u8>, String> {
        match msg.protocol.as_str() {
            "Store" => {
                if self.shared.refuses_store.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err("refusing pushed blocks (fault injection)".into());
                }
                let late = self.shared.stores_late_by_ms.load(std::sync::atomic::Ordering::SeqCst);
                if late > 0 {
                    tokio::time::sleep(Duration::from_millis(late)).await;
                }
                let item = LinkedBlock::decode(msg.payload.as_slice()).map_err(|e| format!("Store: {e}"))?;
                if let Some(genesis) = item.block.as_ref().filter(|b| b.index == 0) {
                    self.check_pushed_genesis(genesis, &msg.from)?;
                }
                let t = std::time::Instant::now();
                let accepted = self.accept(&item);
                self.shared.observed.phases.add(Phase::Accept, t.elapsed());
                match accepted {
                    Ok(()) => Ok(vec![]),
                    Err(SkipchainError::Behind { have, .. }) => {
                        let block = item.block.as_ref().ok_or("no block")?;
                        let sender = self
                            .sender_identity(block, &msg.from)
                            .ok_or("Store from a node outside the block's roster")?;
                        if have == 0
                            && self.shared.store.latest_index(block.chain_id()).is_none()
                            && self.sender_identity(block, &self.shared.me).is_none()
                        {
                            // A chain this node does not hold, in a block not naming it: nothing
                            // to catch up on (a peer would make it fetch and store any chain).
                            return Err(
                                "Store of a block of an unknown chain whose roster does not name this node".into()
                            );
                        }
                        self.catch_up(block.chain_id(), &sender).await.map_err(|e| e.to_string())?;
                        self.accept(&item).map(|_| vec![]).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            "GetBlocks" => {
                let req = GetBlocks::decode(msg.payload.as_slice()).map_err(|e| format!("GetBlocks: {e}"))?;
                match self.catch_up_fault() {
                    Some(CatchUpFault::Liar { empty_blocks_after: None, .. }) => {
                        tokio::time::sleep(PEER_TIMEOUT + Duration::from_secs(1)).await;
                        return Err("stalled (fault injection)".into());
                    }
                    Some(CatchUpFault::Liar { empty_blocks_after: Some(after), .. }) => {
                        tokio::time::sleep(after).await;
                        return Ok(Blocks::default().encode_to_vec());
                    }
                    Some(CatchUpFault::Slow { by }) => tokio::time::sleep(by).await,
                    None => {}
                }
                let st = &self.shared.store;
                let latest = st.latest_index(&req.genesis).ok_or("unknown chain")?;
                let max = u64::from(req.max.clamp(1, CATCH_UP_BATCH));
                let mut out = Blocks::default();
                let mut i = req.from_index;
                while i <= latest && (out.blocks.len() as u64) < max {
                    let Some(block) = st.block_at(&req.genesis, i) else { break };
                    let incoming = (0..if i == 0 { 0 } else { block.height as usize })
                        .filter_map(|h| {
                            let src = st.block_at(&req.genesis, i - level_distance(block.base_height, h))?;
                            let link = src.forward_links.get(h).cloned()?;
                            Some(LevelLink { level: h as u32, link: Some(link) })
                        })
                        .collect();
                    out.blocks.push(LinkedBlock { block: Some(block), incoming });
                    i += 1;
                }
                if self.lies_in_catch_up() {
                    forge(&mut out.blocks);
                }
                Ok(out.encode_to_vec())
            }
            "Slot" => {
                let req = SlotQuery::decode(msg.payload.as_slice()).map_err(|e| format!("Slot: {e}"))?;
                if self.byzantine() {
                    return Ok(SlotState::default().encode_to_vec());
                }
                let record = self.shared.votes.state(&req.genesis, req.index).map_err(|e| e.to_string())?;
                let mut state = super::votes::as_slot_reply(&req.genesis, req.index, record);
                let unsigned = state.prepared_signature.is_empty();
                if state.prepared_view > 0 && !super::votes::is_fence(&state.prepared_hash) && unsigned {
                    // Its prepare of that view and block, signed again as the prepare message
                    // (BLS is deterministic; a fast view 1 signed the fast statement of the same
                    // block): the proposer can hold a member that answers this to what it signed
                    // for other proposers. Kept with the vote: signed once per prepare.
                    let msg = prepare_message(&req.genesis, req.index, state.prepared_view, &state.prepared_hash);
                    if let Some(signature) = self.slot_signature(&msg) {
                        let prepared = (state.prepared_view, state.prepared_hash.as_slice(), signature.as_slice());
                        if let Err(e) =
                            self.shared.votes.keep_slot_signatures(&req.genesis, req.index, Some(prepared), None)
                        {
                            debug!(error = %e, "the signature of a slot state was not kept (signed again when asked)");
                        }
                        state.prepared_signature = signature.to_vec();
                    }
                }
                state.first_view_statement = self.first_view_statement(&req.genesis, req.index, Some(&msg.from));
                if self.lies_in_catch_up() {
                    state.prepared_view = super::votes::MAX_VIEW - 1;
                }
                if self.shared.alters_first_view.load(std::sync::atomic::Ordering::SeqCst) {
                    let signature = state.first_view.as_mut().and_then(|p| p.owner_signature.first_mut());
                    if let Some(byte) = signature {
                        *byte ^= 1;
                    }
                }
                Ok(state.encode_to_vec())
            }
            "Latest" => {
                let req = Latest::decode(msg.payload.as_slice()).map_err(|e| format!("Latest: {e}"))?;
                let liar = match self.catch_up_fault() {
                    Some(CatchUpFault::Liar { latest_after, .. }) => {
                        tokio::time::sleep(latest_after).await;
                        true
                    }
                    _ => false,
                };
                let mut index = self.shared.store.latest_index(&req.genesis);
                let mut arrived = index.and_then(|i| self.shared.store.arrival(&req.genesis, i)).unwrap_or(0);
                if self.lies_in_catch_up() {
                    index = index.map(|i| i + 1000);
                    arrived = 1;
                }
                if liar {
                    index = index.map(|i| i + 1000);
                }
                let known = index.is_some();
                Ok(Latest { genesis: req.genesis, index: index.unwrap_or(0), known, arrived_unix_ms: arrived }
                    .encode_to_vec())
            }
            other => Err(format!("unknown skipchain protocol `{other}`")),
        }
    }

    /// A genesis pushed by `from` is stored only when its roster names both this node and the
    /// sender (the creator of a chain is one of its members): a peer cannot make this node keep
    /// chains it has no part in.
    fn check_pushed_genesis(&self, genesis: &SkipBlock, from: &IdentityPublicKey) -> Result<(), String> {
        if self.shared.store.block(&genesis.hash).is_some() {
            return Ok(());
        }
        if self.sender_identity(genesis, &self.shared.me).is_none() {
            return Err("Store of a genesis whose roster does not name this node".into());
        }
        if self.sender_identity(genesis, from).is_none() {
            return Err("Store of a genesis whose roster does not name the sender".into());
        }
        Ok(())
    }

    /// The ServerIdentity of `key` from the block's roster (to dial it back for catch-up).
    fn sender_identity(&self, block: &SkipBlock, key: &IdentityPublicKey) -> Option<ServerIdentity> {
        let roster = self.shared.rosters.get(block.roster.as_ref()?).ok()?;
        roster.servers.iter().find(|m| &m.public == key).cloned()
    }

    /// What both hooks check of a proposed block: it is valid, it is the next block of a chain
    /// this node holds, its owner signed it, its back links are right. Returns the block before it.
    fn check_block(&self, p: &Proposal) -> Result<SkipBlock, String> {
        let block = p.block.as_ref().ok_or("proposal without block")?;
        block.check_self().map_err(|e| e.to_string())?;
        let st = &self.shared.store;
        let genesis = st.genesis(&block.genesis_id).ok_or("unknown chain")?;
        if block.base_height != genesis.base_height
            || block.maximum_height != genesis.maximum_height
            || block.owners != genesis.owners
        {
            return Err("block parameters differ from the genesis".into());
        }
        let latest = st.latest_index(&block.genesis_id).ok_or("unknown chain")?;
        if block.index != latest + 1 {
            // Only for a block its owner signed (anyone can send a proposal; governed chains'
            // checks need the blocks this node lacks).
            let behind = block.index > latest + 1
                && (self.governor(&genesis).is_some() || self.owner_signed(&genesis, p, block));
            let catching_up = behind && self.catch_up_in_background(b"behind:", &block.genesis_id);
            return Err(format!(
                "proposed block {} but this node holds up to {latest}{}",
                block.index,
                if catching_up { " (catching up)" } else { "" }
            ));
        }
        let new_roster = block.roster.as_ref().ok_or("no roster")?;
        let prev = st.block_at(&block.genesis_id, latest).ok_or("missing latest block")?;
        let changed = prev.roster.as_ref().map(|r| r.id()) != Some(new_roster.id());
        if changed {
            self.shared.rosters.get(new_roster).map_err(|e| e.to_string())?;
        }
        match self.governor(&genesis) {
            Some(g) => (g.check)(&prev, block)?,
            None => check_owner(
                &genesis,
                &p.owner,
                &p.owner_signature,
                block.index,
                &block.data,
                changed.then_some(new_roster),
            )
            .map_err(|e| e.to_string())?,
        }
        for (h, id) in block.back_link_ids.iter().enumerate() {
            let hash = st
                .held_hash_at(&block.genesis_id, block.index - level_distance(block.base_height, h))
                .ok_or("missing back-linked block")?;
            if &hash != id {
                return Err(format!("back link {h} is wrong"));
            }
        }
        Ok(prev)
    }

    /// The hook of the prepare round: a valid next block, and the vote rules (one block per view,
    /// locks) recorded durably before this node's signature leaves it.
    fn check_prepare(&self, statement: &[u8], extra: &[u8]) -> Result<(), String> {
        let p = Proposal::decode(extra).map_err(|e| format!("proposal: {e}"))?;
        if self.byzantine() {
            return Ok(());
        }
        let vote = self.prepare_vote(&p)?;
        if statement != vote.message {
            return Err("statement is not the prepare message of the proposed block".into());
        }
        let recorded = vote.record(&self.shared.votes);
        if recorded.is_err() && vote.view > vote.reachable {
            // Maybe the previous block came late here: the proposer's next view may pass.
            self.learn_arrival(&vote.genesis, vote.index - 1);
        }
        recorded
    }

    /// The highest view open here at the slot after block `prev_index` of chain `genesis` (see
    /// `votes::reachable_view`), with a verified `justification`'s.
    pub(super) fn open_views(
        &self,
        genesis: &[u8],
        prev_index: u64,
        justification: Option<&PrepareCertificate>,
    ) -> u64 {
        let age = self.shared.store.slot_age(genesis, prev_index, super::votes::UNKNOWN_SLOT_AGE);
        super::votes::reachable_view(age, justification)
    }

    /// What the prepare hooks check of one proposal, but the statement: a valid next block, a view,
    /// its justification (kept only if it verifies) and the statements of view 1 it carries (those
    /// that verify, when this member's rules need them). Returns the vote to record.
    fn prepare_vote<'p>(&self, p: &'p Proposal) -> Result<PrepareVote<'p>, String> {
        let prev = self.check_block(p)?;
        let block = p.block.as_ref().ok_or("proposal without block")?;
        self.fence_gate(&block.genesis_id)?;
        if p.view == 0 {
            return Err("view 0 is not a view".into());
        }
        let prev_roster = prev.roster.as_ref().ok_or("latest block without roster")?;
        if p.fast && p.view != 1 {
            return Err("only view 1 is fast".into());
        }
        let s = &self.shared;
        if p.fast
            && (s.refuses_link_v2.load(std::sync::atomic::Ordering::SeqCst)
                || s.refuses_batches.load(std::sync::atomic::Ordering::SeqCst))
        {
            // Fault injection: code from before fast appends expects the prepare message.
            return Err(NOT_THE_PREPARE.into());
        }
        if p.fast && s.links() < SkipchainLinks::V4 {
            // Its light clients check older links only: it makes no v4 link of its own prepare.
            return Err(format!("{NO_FAST_PREPARES} (its SkipchainLinks is below v4)"));
        }
        let roster_id = prev_roster.id();
        let message = view_message(&block.genesis_id, block.index, &roster_id, p.view, p.fast, &block.hash);
        // A view past the first ones is its owner's alone (see `votes::VIEW_WINDOW`).
        let owners = super::votes::ViewOwners::of_slot(&block.genesis_id, block.index, prev_roster.members.len());
        if let Some(owner) = owners.owner(p.view) {
            let roster = self.shared.rosters.get(prev_roster).map_err(|e| e.to_string())?;
            let member = roster.servers.get(owner).ok_or("the view's owner is not in the roster")?;
            if member.public.verify(&proposer_message(&message), &p.proposer_signature).is_err() {
                return Err(format!(
                    "view {} is for member {owner} ({}) to propose in; the proposal does not carry its signature",
                    p.view, member.address
                ));
            }
        }
        let justification = p.justification.clone().filter(|c| {
            c.block_hash == block.hash
                && self.verify_certificate(prev_roster, &block.genesis_id, block.index, c).is_ok()
        });
        let reachable = self.open_views(&block.genesis_id, prev.index, justification.as_ref());
        let closure = if p.view >= 2 && !p.closure.is_empty() && self.needs_closure(block) {
            let verified = self.verified_closure(prev_roster, (&block.genesis_id, block.index), &p.closure)?;
            verified.into_iter().map(|st| FirstViewVote { member: st.member, hash: st.block_hash.clone() }).collect()
        } else {
            Vec::new()
        };
        Ok(PrepareVote {
            message,
            genesis: block.genesis_id.clone(),
            index: block.index,
            view: p.view,
            hash: block.hash.clone(),
            reachable,
            justification,
            proposal: p,
            closure,
            faults: Policy::tolerated_faults(prev_roster.members.len()),
        })
    }

    /// Whether this member's rules ask a proposal of `block` in a later view for statements of view
    /// 1 (it prepared another block there, or does not know what it prepared).
    fn needs_closure(&self, block: &SkipBlock) -> bool {
        use super::votes::FirstView;
        match self.shared.votes.state(&block.genesis_id, block.index).map(|st| super::votes::first_view(&st)) {
            Ok(FirstView::Block(x)) => x != block.hash,
            Ok(FirstView::Unknown) => true,
            Ok(_) => false,
            Err(_) => true,
        }
    }

    /// The statements of view 1 in `closure` (for the slot `index` of `genesis`, by members of the
    /// slot's roster `prev_roster`) whose signatures verify. More statements than members is an
    /// error.
    fn verified_closure<'c>(
        &self,
        prev_roster: &BlockRoster,
        (genesis, index): (&[u8], u64),
        closure: &'c [FirstViewStatement],
    ) -> Result<Vec<&'c FirstViewStatement>, String> {
        if closure.len() > prev_roster.members.len() {
            return Err(format!("{} statements of view 1 from {} members", closure.len(), prev_roster.members.len()));
        }
        let roster = self.shared.rosters.get(prev_roster).map_err(|e| e.to_string())?;
        let keys = cosi_keys(&roster);
        let roster_id = prev_roster.id();
        // One statement per member is checked (an honest member makes one per slot).
        let mut seen = std::collections::HashSet::new();
        let candidates: Vec<(&FirstViewStatement, PairingCheck)> = closure
            .iter()
            .filter(|st| matches!(st.block_hash.len(), 0 | 32) && seen.insert(st.member))
            .filter_map(|st| {
                let key = *keys.get(st.member as usize)?;
                let signature = BlsSignature::from_bytes(&st.signature).ok()?;
                // Hashed here, not through the key's cache of points: the proposer chose these
                // messages, and they must not push out the points of what this node signed.
                let point = point_of(&first_view_message(genesis, index, &roster_id, &st.block_hash));
                Some((st, PairingCheck { point, key, signature }))
            })
            .collect();
        // All at once (one multi-pairing, shared with the process's other members checking the
        // same closure); when that fails, one by one, to keep the good ones.
        if all_hold_once(candidates.iter().map(|(_, check)| *check).collect()) {
            return Ok(candidates.into_iter().map(|(st, _)| st).collect());
        }
        Ok(candidates.into_iter().filter(|(_, check)| all_hold_once(vec![*check])).map(|(st, _)| st).collect())
    }

    /// This member's signed statement of what it prepared in view 1 at slot `index` of `genesis`
    /// (see `votes::Votes::first_view_statement`), as a member of the roster of block `index − 1`,
    /// for that roster's member `asker` (or itself); none where it does not hold that block, it or
    /// the asker is not in its roster (a stranger cannot close view 1 at members to slow appends
    /// down), or it does not know (restored from a backup, the chain not fenced yet).
    fn first_view_statement(
        &self,
        genesis: &[u8],
        index: u64,
        asker: Option<&IdentityPublicKey>,
    ) -> Option<FirstViewStatement> {
        let s = &self.shared;
        if !s.fences.fenced(genesis) {
            return None;
        }
        // The slot after this member's newest block only: a settled one needs no statement.
        let prev_index = index.checked_sub(1).filter(|&i| s.store.latest_index(genesis) == Some(i))?;
        // The roster alone: the block's data is not decoded for every asker.
        let roster = &s.store.roster_at(genesis, prev_index)?;
        if asker.is_some_and(|a| !roster.members.iter().any(|m| m.identity == a.as_bytes())) {
            return None;
        }
        let member = roster.members.iter().position(|m| m.identity == s.me.as_bytes())?;
        // No key, no statement (and view 1 stays open here).
        s.ctx.config.cosi_key()?;
        // View 1 is closed ("nothing") only once it had its time: a member asking at once (to keep
        // appends from being fast) gets no statement.
        let close = s.store.slot_age(genesis, prev_index, super::votes::UNKNOWN_SLOT_AGE) >= FIRST_VIEW_OPEN_FOR;
        // Given once, the statement is kept with the vote (it never changes).
        let (hash, kept) = s.votes.first_view_answer(genesis, index, close).ok()??;
        if let Some(st) = kept.filter(|st| st.block_hash == hash && st.member as usize == member) {
            return Some(st);
        }
        let msg = first_view_message(genesis, index, &roster.id(), &hash);
        let signature = self.slot_signature(&msg)?.to_vec();
        let statement = FirstViewStatement { member: member as u32, block_hash: hash, signature };
        if let Err(e) = s.votes.keep_slot_signatures(genesis, index, None, Some(&statement)) {
            debug!(error = %e, "the signature of a slot state was not kept (signed again when asked)");
        }
        Some(statement)
    }

    /// This member's signature of `msg` for a slot state (see `Votes::keep_slot_signatures`).
    fn slot_signature(&self, msg: &[u8]) -> Option<[u8; 96]> {
        let key = self.shared.ctx.config.cosi_key()?;
        self.shared.slot_signs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(key.sign(msg).to_bytes())
    }

    /// BLS signatures this member made for the slot states it gave (tests: a peer asking again
    /// and again gets the kept ones).
    pub fn slot_signs(&self) -> u64 {
        self.shared.slot_signs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The hook run before this node cosigns forward links (the commit): the statement is the v2
    /// statement of the proposed block (every level whose source has the round's roster: the
    /// back links were checked by `check_block`) or the v1 statement of its link at `level`; the
    /// block must carry a valid prepare certificate; the lock on it is recorded durably first.
    /// The commit slot is (chain, index): one block per index, whatever the levels.
    fn check_proposal(&self, statement: &[u8], extra: &[u8]) -> Result<(), String> {
        let p = Proposal::decode(extra).map_err(|e| format!("proposal: {e}"))?;
        if self.byzantine() {
            return Ok(());
        }
        if let Some(verdict) = self.relink_of_a_held_block(&p, statement) {
            return verdict;
        }
        let (prev, block) = self.next_block(&p)?;
        let v2 = statement == ForwardLink::commit_message(&block.hash)
            && !self.shared.refuses_link_v2.load(std::sync::atomic::Ordering::SeqCst);
        if !v2 && statement != self.v1_link_statement(block, p.level as usize)? {
            return Err(NOT_THE_LINK.into());
        }
        self.check_certified(&prev, &p)?;
        self.shared.votes.commit(&block.genesis_id, block.index, &p).map_err(|e| e.to_string())
    }

    /// What the commit hooks check of one proposal, but the statement: a valid next block (see
    /// `check_block`) with a valid prepare certificate. Returns the block.
    fn certified_block<'p>(&self, p: &'p Proposal) -> Result<&'p SkipBlock, String> {
        let (prev, block) = self.next_block(p)?;
        self.check_certified(&prev, p)?;
        Ok(block)
    }

    /// The proposal's block, a valid next block (see `check_block`) of a chain not fenced here,
    /// and the latest block before it. The cheap checks, before any signature is verified.
    fn next_block<'p>(&self, p: &'p Proposal) -> Result<(SkipBlock, &'p SkipBlock), String> {
        let prev = self.check_block(p)?;
        let block = p.block.as_ref().ok_or("proposal without block")?;
        self.fence_gate(&block.genesis_id)?;
        Ok((prev, block))
    }

    /// The proposal's block carries a valid prepare certificate (by the roster of `prev`).
    fn check_certified(&self, prev: &SkipBlock, p: &Proposal) -> Result<(), String> {
        let block = p.block.as_ref().ok_or("proposal without block")?;
        let cert = p.prepared.as_ref().ok_or("no prepare certificate")?;
        if cert.block_hash != block.hash {
            return Err("the prepare certificate is for another block".into());
        }
        let prev_roster = prev.roster.as_ref().ok_or("latest block without roster")?;
        self.verify_certificate(prev_roster, &block.genesis_id, block.index, cert)
    }
}

/// A cosi hook of this service: whether this node signs `statement` of a round (given its extra
/// data).
type HookCheck = fn(&SkipchainService, &[u8], &[u8]) -> Result<(), String>;

/// A prepare vote a hook checked, recorded once the statement checks too.
struct PrepareVote<'p> {
    message: [u8; 32],
    genesis: Vec<u8>,
    index: u64,
    view: u64,
    hash: Vec<u8>,
    justification: Option<PrepareCertificate>,
    /// The highest view open at the slot when the hook ran (`votes::reachable_view`).
    reachable: u64,
    proposal: &'p Proposal,
    /// The proposal's statements of view 1 that verified (when the rules need them).
    closure: Vec<FirstViewVote>,
    faults: usize,
}

impl PrepareVote<'_> {
    /// The vote as the vote rules take it.
    pub(super) fn slot(&self) -> PrepareSlot<'_> {
        PrepareSlot {
            genesis: &self.genesis,
            index: self.index,
            view: self.view,
            hash: &self.hash,
            justification: self.justification.as_ref(),
            reachable: self.reachable,
            proposal: Some(self.proposal),
            closure: &self.closure,
            faults: self.faults,
        }
    }

    /// Records the vote durably, unless the vote rules forbid it.
    fn record(&self, votes: &Votes) -> Result<(), String> {
        votes.prepare(&self.slot()).map_err(|e| e.to_string())
    }
}

/// The v4 links to `block` from `sources` (source of level h at position h) when its prepare
/// certificate in `agreed` is a fast one signed by every member of `prev_roster` (the roster of
/// the block before it) and every source has that roster; none otherwise (the links need a
/// round of their own).
fn fast_links(
    sources: &[SkipBlock],
    block: &SkipBlock,
    agreed: &Proposal,
    prev_roster: &BlockRoster,
) -> Option<Vec<ForwardLink>> {
    let cert = agreed.prepared.as_ref().filter(|c| c.fast && c.view == 1 && c.block_hash == block.hash)?;
    let signature = cert.signature.as_ref()?;
    let members = prev_roster.members.len();
    if Mask::from_bytes(members, &signature.mask).ok()?.count() != members {
        return None;
    }
    let prepared_by = prev_roster.id();
    let target = block.roster.as_ref()?.id();
    sources
        .iter()
        .map(|src| {
            let from = src.roster.as_ref()?.id();
            (from == prepared_by).then(|| ForwardLink {
                from: src.hash.clone(),
                to: block.hash.clone(),
                new_roster: (from != target).then(|| target.to_vec()),
                signature: Some(signature.clone()),
                format: LINK_FORMAT_V4,
                ..Default::default()
            })
        })
        .collect()
}

/// The cosi keys of a checked roster, in roster order.
fn cosi_keys(roster: &Roster) -> Vec<BlsPublicKey> {
    roster.servers.iter().filter_map(|m| m.services.get(COSI_SERVICE).map(|p| p.public)).collect()
}

impl SkipchainService {
    /// Checks a prepare certificate: more than two thirds of `roster` signed the prepare message.
    /// A certificate verified lately (same roster, slot, view, block, signature and mask) is not
    /// verified again, and concurrent checks of one certificate verify it once (`verified`).
    fn verify_certificate(
        &self,
        roster: &BlockRoster,
        genesis: &[u8],
        index: u64,
        cert: &PrepareCertificate,
    ) -> Result<(), String> {
        let keys = || Ok(cosi_keys(&*self.shared.rosters.get(roster).map_err(|e| e.to_string())?));
        let point = |m: &[u8]| self.point(m);
        let pairings = Pairings { point: &point, all_hold: &all_hold_once, ..Pairings::direct() };
        let slot = (genesis, index, &roster.id());
        check_certificate(&self.shared.verified, &roster_tag(roster), keys, &pairings, slot, cert)
    }

    /// `msg` hashed to G2, from this node's points of the statements it signed lately (see
    /// [`crate::crypto::BlsKeyPair::message_point`]): a member verifies the collective signature
    /// of a statement it signed itself without hashing it again.
    fn point(&self, msg: &[u8]) -> blst::blst_p2_affine {
        match self.shared.ctx.config.cosi_key() {
            Some(key) => key.message_point(msg),
            None => point_of(msg),
        }
    }

    /// Verifies the forward links `(source, link)` to `block` as one batch (see
    /// [`crate::verify::skipchain_batch`]), with the source rosters' keys from the checked rosters
    /// (decoded and group-checked once, not at every block). The error is the one of the first
    /// link, in the given order, that a check one by one refuses.
    fn verify_links(&self, block: &SkipBlock, levels: &[(SkipBlock, ForwardLink)]) -> Result<(), SkipchainError> {
        let mut keys = Vec::with_capacity(levels.len());
        for (src, _) in levels {
            let roster =
                src.roster.as_ref().ok_or_else(|| SkipchainError::Invalid("source block without roster".into()))?;
            keys.push(cosi_keys(&*self.shared.rosters.get(roster)?));
        }
        let checks: Vec<LinkToCheck<'_>> = levels
            .iter()
            .zip(&keys)
            .map(|((src, link), keys)| LinkToCheck { from: src, to: block, link, keys })
            .collect();
        let point = |m: &[u8]| self.point(m);
        // The links of a batched round's blocks share one pairing check, and the members of one
        // process store the same links: each check runs once in the process.
        let signature = |bytes: &[u8]| self.shared.decoded_signatures.get(bytes, decode_signature);
        let pairings = Pairings { point: &point, all_hold: &all_hold_once, signature: &signature };
        for r in verify_links_with_points(&checks, Policy::Default, &pairings) {
            r?;
        }
        Ok(())
    }
}

/// Checks that `owner` is an owner of the chain and signed this append. The signature check is
/// done once in the process (by the owner key, signature and signed message): every member of a
/// cluster in one process checks the same append.
fn check_owner(
    genesis: &SkipBlock,
    owner: &[u8],
    signature: &[u8],
    index: u64,
    data: &[u8],
    new_roster: Option<&BlockRoster>,
) -> Result<(), SkipchainError> {
    if !genesis.owners.iter().any(|o| o.as_slice() == owner) {
        return Err(SkipchainError::Refused("the signer is not an owner of this chain".into()));
    }
    let key = IdentityPublicKey::from_bytes(owner).map_err(|e| SkipchainError::Invalid(format!("owner key: {e}")))?;
    let roster_id = new_roster.map(|r| r.id());
    let msg = append_message(&genesis.hash, index, data, roster_id.as_ref());
    checked_once::process().check(digest(&[b"owner-signature", owner, signature, &msg]), || {
        key.verify(&msg, signature).map_err(|_| SkipchainError::Refused("the owner's signature does not verify".into()))
    })
}

/// Waits (at most `PROPAGATE_WAIT`) for the deliveries [`SkipchainService::send_block`] started;
/// those that take longer go on in the background (still tracked by the node).
async fn wait_for_deliveries(awaited: Vec<tokio::task::JoinHandle<Option<()>>>) {
    let _ = tokio::time::timeout(PROPAGATE_WAIT, futures_util::future::join_all(awaited)).await;
}

fn set_link(block: &mut SkipBlock, level: usize, link: ForwardLink) {
    if block.forward_links.len() <= level {
        block.forward_links.resize(level + 1, ForwardLink::default());
    }
    block.forward_links[level] = link;
}

fn bad(e: impl ToString) -> ServiceError {
    ServiceError::BadRequest(e.to_string())
}

fn failed(e: SkipchainError) -> ServiceError {
    match e {
        SkipchainError::Refused(m) => ServiceError::Refused(m),
        SkipchainError::Invalid(m) => ServiceError::BadRequest(m),
        e @ (SkipchainError::UnknownChain(_) | SkipchainError::UnknownBlock(_)) => {
            ServiceError::NotFound(e.to_string())
        }
        SkipchainError::Cosi(e) => ServiceError::from(e),
        other => ServiceError::Failed(other.to_string()),
    }
}

async fn client_request(svc: SkipchainService, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
    match method.as_str() {
        "CreateChain" => {
            if let Some(ip) = crate::api::rate::current_source() {
                svc.shared.chain_quota.take(ip).map_err(|wait| crate::api::rate::over_rate(ip, wait, "new chains"))?;
            }
            let req = CreateChain::decode(body.as_slice()).map_err(bad)?;
            let roster = svc
                .shared
                .parsed_rosters
                .parse(&svc.shared.ctx.tasks, "roster", &req.roster_toml)
                .await
                .map_err(bad)?;
            let owners = req
                .owners
                .iter()
                .map(|o| IdentityPublicKey::from_bytes(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            let block = svc
                .create_chain(&roster, req.base_height, req.maximum_height, owners, req.data)
                .await
                .map_err(failed)?;
            Ok(BlockReply { block: Some(block) }.encode_to_vec())
        }
        "Append" => {
            let req = Append::decode(body.as_slice()).map_err(bad)?;
            let block = svc.append(req).await.map_err(failed)?;
            Ok(BlockReply { block: Some(block) }.encode_to_vec())
        }
        "GetBlock" => {
            let req = GetBlock::decode(body.as_slice()).map_err(bad)?;
            let st = svc.store();
            let mut block =
                if req.hash.is_empty() { st.block_at(&req.genesis, req.index) } else { st.block(&req.hash) };
            if block.is_none() && req.hash.is_empty() && svc.read_catch_up_due(&req.genesis, req.index) {
                // The client knows of a block this member missed (it was cut off): fetch first.
                svc.catch_up_chain(&req.genesis).await;
                block = st.block_at(&req.genesis, req.index);
            }
            let block = block.ok_or_else(|| ServiceError::NotFound("no such block".into()))?;
            Ok(BlockReply { block: Some(block) }.encode_to_vec())
        }
        "GetUpdateChain" => {
            let req = GetUpdateChain::decode(body.as_slice()).map_err(bad)?;
            let blocks = svc.update_chain(&req.from).map_err(failed)?;
            Ok(Proof { blocks }.encode_to_vec())
        }
        other => Err(ServiceError::UnknownMethod { service: SKIPCHAIN_SERVICE.into(), method: other.into() }),
    }
}

impl Service for SkipchainService {
    const NAME: &'static str = SKIPCHAIN_SERVICE;
    type Deps = CosiService;

    /// Opens the chains, installs the verification hook in the cosi service, registers the peer
    /// protocol and `/Skipchain/*`, and starts catching up.
    fn start(ctx: &ServiceContext, cosi: CosiService) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let store = ChainStore::open(&ctx.storage)
            .map(|s| s.with_events(ctx.events.clone()))
            .map_err(|e| StartError { service: SKIPCHAIN_SERVICE, reason: e.to_string() })?;
        let votes =
            Votes::open(&ctx.storage).map_err(|e| StartError { service: SKIPCHAIN_SERVICE, reason: e.to_string() })?;
        let evidence = EvidenceLog::open(&ctx.storage)
            .map(|e| e.with_events(ctx.events.clone()))
            .map_err(|e| StartError { service: SKIPCHAIN_SERVICE, reason: e.to_string() })?;
        let fences = recovery::Fences::open(&ctx.storage)
            .map_err(|e| StartError { service: SKIPCHAIN_SERVICE, reason: e.to_string() })?;
        let svc = SkipchainService {
            shared: Arc::new(Shared {
                fences,
                store,
                ctx: ctx.clone(),
                network: ctx.network.clone(),
                me: ctx.config.identity.public(),
                cosi: cosi.clone(),
                rosters: CheckedRosters::new(cosi.checked_pops()),
                verified: Default::default(),
                decoded_signatures: Default::default(),
                votes,
                evidence: evidence.clone(),
                signs_anything: Default::default(),
                refuses_link_v2: Default::default(),
                relinks: Default::default(),
                refuses_store: Default::default(),
                lies_in_catch_up: Default::default(),
                catch_up_fault: Default::default(),
                proposes_in_view: Default::default(),
                links: std::sync::RwLock::new(ctx.config.skipchain_links),
                legacy_links: RosterMarks::default(),
                slow_rosters: RosterMarks::default(),
                appending: Default::default(),
                catching_up: Default::default(),
                redelivering: Default::default(),
                read_catch_ups: Default::default(),
                proposal_asks: Default::default(),
                parsed_rosters: crate::services::parsed_rosters::ParsedRosters::new(PARSED_ROSTERS_KEPT),
                chain_quota: {
                    let l = &ctx.config.limits;
                    crate::api::rate::RateLimiter::per_minute(
                        l.client_chains_per_minute,
                        l.client_chains_per_minute,
                        l.client_rate_limit_loopback,
                    )
                },
                observed: Observed::new(),
                prepare_queue: Default::default(),
                links_queue: Default::default(),
                batched_rounds: true.into(),
                no_batch: std::sync::Mutex::new(KeptMap::new(ROSTER_MARKS_KEPT)),
                refuses_batches: Default::default(),
                warmed: std::sync::Mutex::new(KeptMap::new(ROSTER_MARKS_KEPT)),
                slot_signs: Default::default(),
                alters_first_view: Default::default(),
                stores_late_by_ms: Default::default(),
                governors: Default::default(),
            }),
        };
        // The hooks live in the cosi service, which this service holds: a weak reference avoids a
        // cycle that would keep the database open after the node stops.
        let hooks: [(&str, Phase, HookCheck); 4] = [
            (COMMIT_PURPOSE, Phase::CommitHook, SkipchainService::check_proposal),
            (PREPARE_PURPOSE, Phase::PrepareHook, SkipchainService::check_prepare),
            (batched::PREPARE_BATCH_PURPOSE, Phase::PrepareHook, SkipchainService::check_prepare_batch),
            (batched::COMMIT_BATCH_PURPOSE, Phase::CommitHook, SkipchainService::check_commit_batch),
        ];
        for (purpose, phase, check) in hooks {
            let weak = Arc::downgrade(&svc.shared);
            let hook = move |statement: &[u8], extra: &[u8]| match weak.upgrade() {
                Some(shared) => {
                    let t = std::time::Instant::now();
                    let r = check(&SkipchainService { shared: shared.clone() }, statement, extra);
                    shared.observed.phases.add(phase, t.elapsed());
                    r
                }
                None => Err("skipchain service stopped".to_string()),
            };
            cosi.hook(purpose, Arc::new(hook))
                .map_err(|e| StartError { service: SKIPCHAIN_SERVICE, reason: e.to_string() })?;
        }
        let s = svc.clone();
        ctx.network.register(
            SKIPCHAIN_SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move { s.handle_peer(msg).await })
            }),
        );
        let s = svc.clone();
        ctx.clients.register(
            SKIPCHAIN_SERVICE,
            Arc::new(move |method, body| {
                let s = s.clone();
                Box::pin(async move { client_request(s, method, body).await })
            }),
        );
        let (store, bus) = (svc.shared.store.clone(), ctx.events.clone());
        ctx.streams.register(
            SKIPCHAIN_SERVICE,
            "Subscribe",
            Arc::new(move |body: Vec<u8>| super::subscribe::subscribe(&store, &bus, &body)),
        );
        let log = evidence.clone();
        let weak = Arc::downgrade(&svc.shared);
        ctx.metrics.add(
            SKIPCHAIN_SERVICE,
            Arc::new(move |reg: &mut Registry| {
                let counts = log.counts();
                counter(
                    reg,
                    "conode_skipchain_equivocations",
                    "Equivocation evidence records held (all members).",
                    counts.values().sum::<u64>(),
                );
                counters(
                    reg,
                    "conode_skipchain_member_equivocations",
                    "Equivocation evidence records held against each member.",
                    counts.into_iter().map(|(member, n)| (labels(&[("member", &member)]), n)),
                );
                if let Some(shared) = weak.upgrade() {
                    shared.observed.write_metrics(reg, &shared.store);
                }
            }),
        );
        let weak = Arc::downgrade(&svc.shared);
        ctx.status.add_rosters(
            SKIPCHAIN_SERVICE,
            Arc::new(move || weak.upgrade().map(|s| s.observed.roster_views(&s.store)).unwrap_or_default()),
        );
        let log = evidence;
        ctx.status.add(
            SKIPCHAIN_SERVICE,
            Arc::new(move || {
                let counts = log.counts();
                let mut section = std::collections::BTreeMap::new();
                section.insert("Equivocations".to_string(), counts.values().sum::<u64>().to_string());
                for (member, n) in counts {
                    section.insert(format!("Equivocations_{}", &member[..16]), n.to_string());
                }
                section
            }),
        );
        svc.start_recovery();
        svc.settle_old_votes();
        let s = svc.clone();
        ctx.tasks.spawn(async move { s.catch_up_all().await });
        Ok(svc)
    }

    async fn stop(&self) {
        self.shared.ctx.metrics.remove(SKIPCHAIN_SERVICE);
        self.shared.ctx.status.remove(SKIPCHAIN_SERVICE);
        self.shared.ctx.status.remove(recovery::RECOVERY_SECTION);
        self.shared.cosi.remove_hook(COMMIT_PURPOSE);
        self.shared.cosi.remove_hook(PREPARE_PURPOSE);
        self.shared.cosi.remove_hook(batched::PREPARE_BATCH_PURPOSE);
        self.shared.cosi.remove_hook(batched::COMMIT_BATCH_PURPOSE);
        stop_service(&self.shared.ctx, SKIPCHAIN_SERVICE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linked(index: u64, hash: &[u8], genesis_id: &[u8]) -> LinkedBlock {
        let block = SkipBlock { index, hash: hash.to_vec(), genesis_id: genesis_id.to_vec(), ..Default::default() };
        LinkedBlock { block: Some(block), incoming: vec![] }
    }

    #[test]
    fn a_catch_up_takes_only_the_blocks_asked_for() {
        let g = [1u8; 32];
        let good = [linked(0, &g, &[]), linked(1, &[2; 32], &g), linked(2, &[3; 32], &g)];
        assert!(check_fetched(&g, 0, &good).is_ok());
        assert!(check_fetched(&g, 1, &good[1..]).is_ok());
        // Another chain's genesis under the id asked for, another chain's block, a gap, a block
        // other than the first asked for, an item without a block: each refused.
        let err = check_fetched(&g, 0, &[linked(0, &[5; 32], &[])]).unwrap_err().to_string();
        assert!(err.contains("block 0 of chain 0505"), "{err}");
        assert!(check_fetched(&g, 1, &[linked(1, &[2; 32], &[5; 32])]).is_err());
        assert!(check_fetched(&g, 0, &[good[0].clone(), good[2].clone()]).is_err());
        assert!(check_fetched(&g, 2, &good[1..]).is_err());
        assert!(check_fetched(&g, 0, &[LinkedBlock::default()]).is_err());
    }
}
