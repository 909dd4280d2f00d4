//! The node-to-node signing round. The root sends an `Announce` to each sub-leader naming the
//! leaves it must ask; every node checks the statement with the hook of the round's purpose, signs
//! it, and sub-leaders return the sum of their group's partials with a mask, unverified. Only the
//! root verifies: the total, once. When it fails, each group's aggregate is checked; the members
//! a bad aggregate claims are asked again directly and their partials checked one by one, so the
//! culprit (a member with a bad partial, or else the sub-leader that added up wrongly) is found,
//! excluded and reported. A sub-leader that fails (no answer, error) has its leaves asked
//! directly by the root. The root verifies the final signature before returning it.
//!
//! Liveness: members the transport knows to be down (refused, unreachable, or hung until a probe
//! sees them back) are left out of the tree and reported at once, unless the round cannot reach
//! its threshold without them (then they are asked directly, as leaves of the root). Deadlines
//! come from `timing` (a multiple of the observed healthy answer time, bounded by the level
//! timeout). The root stops waiting once the outcome is decided (threshold met, or no longer
//! reachable) plus a short grace for stragglers; what is still outstanding then is reported as
//! timed out and finishes in the background, teaching the transport which peers hang.

use super::aggregate::{self, Contribution};
use super::early_signing::MAX_EARLY_STATEMENT;
use super::fault::CosiFault;
use super::inline_signing::MAX_INLINE_STATEMENT;
use super::messages::{bounded_reason, Announce, Exclusion as WireExclusion, Reply, MAX_EXTRA, MAX_STATEMENT};
use super::outcome::{CosiError, Exclusion, ExclusionKind, PartialAggregate, SignOutcome, SignReport};
use super::roster::RoundRoster;
use super::service::{Shared, SignedOn};
use super::timing::{Outstanding, RoundTiming, ROOT_WORK};
use super::tree::{self, Group};
use crate::config::ServerIdentity;
use crate::config::COSI_SERVICE;
use crate::crypto::checked_once;
use crate::crypto::pool::{self, Priority, Submitter};
use crate::crypto::BlsSignature;
use crate::network::{NetError, Network, PeerMessage, NET_SERVICE};
use crate::services::Tasks;
use crate::verify::cosi::{Mask, Policy};
use crate::verify::skipchain_batch::pairing_fingerprint;
use futures_util::{FutureExt, StreamExt};
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Protocol name of the announcement (and its reply) on the node-to-node port.
pub const PROTOCOL_ANNOUNCE: &str = "Announce";
/// A root preparing a roster asks each sub-leader to open its links to its leaves: an
/// `Announce` without a statement (nothing is signed), answered once the leaves were pinged.
/// Nodes without it answer "unknown cosi protocol"; the warm-up is best effort.
pub const PROTOCOL_WARM_UP: &str = "WarmUp";
/// Longest purpose name.
const MAX_PURPOSE: usize = 256;
/// Bounds of the per-level timeout a peer may ask for.
pub const MIN_LEVEL_TIMEOUT: Duration = Duration::from_millis(50);
pub const MAX_LEVEL_TIMEOUT: Duration = Duration::from_secs(120);

pub fn clamp_timeout(d: Duration) -> Duration {
    d.clamp(MIN_LEVEL_TIMEOUT, MAX_LEVEL_TIMEOUT)
}

/// Shortest time the root waits for stragglers once a round's outcome is decided (beyond the
/// network round trip: see [`straggler_grace`]).
const GRACE_MIN: Duration = Duration::from_millis(25);
/// Across a network, the stragglers still get at least this long once the threshold is met.
const GRACE_AFTER_NETWORK: Duration = Duration::from_millis(1);

/// How the answers came in until the threshold was met: the first one `first` after the
/// announcements went out, `answered` groups (sub-leaders or leaves of the root) in all, `open`
/// groups still outstanding.
#[derive(Clone, Copy, Debug)]
struct Arrivals {
    first: Duration,
    answered: usize,
    open: usize,
}

/// How long the root still waits for stragglers once the threshold is met, `elapsed` after it sent
/// the announcements, when `rtt` is the least round-trip time measured to the members.
///
/// Without a round trip to speak of (loopback), the stragglers get as long again as the round took
/// so far, at least `GRACE_MIN`: there, answers come as the machines get through the signing, and
/// a late one is as likely as an early one. Across a network every answer pays the round trip at
/// the same time, so it is not counted: the stragglers get as long again as the round took beyond
/// it, or the time the outstanding groups take at the rate the answers have been arriving (the
/// paths' jitter and the members' signing spread them), whichever is longer. That is their
/// expected arrival; one that is later has most likely lost a packet (TCP retransmits it 200 ms
/// or more later), and the round ends without that member, about when a round without loss
/// does, instead of a round trip later. Never less than `GRACE_AFTER_NETWORK`, never more than
/// without the RTT.
fn straggler_grace(elapsed: Duration, arrivals: Option<Arrivals>, rtt: Option<Duration>) -> Duration {
    let full = elapsed.max(GRACE_MIN);
    let rtt = rtt.unwrap_or_default().min(elapsed);
    let at_rate = match arrivals {
        Some(a) if a.answered >= 2 => {
            let spread = elapsed.saturating_sub(a.first);
            spread.mul_f64(a.open as f64 / (a.answered - 1) as f64)
        }
        _ => full,
    };
    full.saturating_sub(rtt).max(at_rate).max(GRACE_AFTER_NETWORK).min(full)
}

/// Error text of a node that does not know the roster an announcement names.
const UNKNOWN_ROSTER: &str = "unknown roster";

/// The announcements one node sends in a round: the same statement for everyone, each with the
/// sparse roster its receiver needs (sender, receiver, the receiver's children: see
/// `Announce.positions`), so no one but the root handles the whole roster.
#[derive(Clone)]
struct Payload {
    /// The shared part (no roster, children or positions), encoded once.
    short: Arc<Vec<u8>>,
    roster: Arc<RoundRoster>,
    sender: usize,
}

impl Payload {
    /// `ann` must carry no roster members, children or positions.
    fn new(ann: &Announce, roster: &Arc<RoundRoster>, sender: usize) -> Self {
        Self { short: Arc::new(ann.encode_to_vec()), roster: roster.clone(), sender }
    }

    /// The announcement for `receiver`, who must ask `children` (protobuf concatenation: the
    /// shared part, then the receiver's own fields).
    fn to(&self, receiver: usize, children: &[usize]) -> Vec<u8> {
        let mut entries = Vec::with_capacity(children.len() + 2);
        let mut positions = Vec::with_capacity(children.len() + 2);
        for i in [self.sender, receiver].into_iter().chain(children.iter().copied()) {
            if let Some(m) = self.roster.member(i) {
                entries.push(m.clone());
                positions.push(i as u32);
            }
        }
        let own = Announce {
            roster: entries,
            children: children.iter().map(|&c| c as u32).collect(),
            positions,
            roster_size: self.roster.len() as u32,
            ..Default::default()
        };
        let own = own.encode_to_vec();
        let mut out = Vec::with_capacity(self.short.len() + own.len());
        out.extend_from_slice(&self.short);
        out.extend_from_slice(&own);
        out
    }
}

/// Sends an announcement to `peer`.
async fn announce(
    network: &Network,
    peer: &ServerIdentity,
    payload: Vec<u8>,
    round_id: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    // A member known to be down (asked only when the round needs it) must not cost a backoff wait.
    network.request_fail_fast(peer, COSI_SERVICE, PROTOCOL_ANNOUNCE, round_id, payload, timeout).await
}

/// What one asked member (a leaf) contributed.
#[allow(clippy::large_enum_variant)] // short-lived, moved a few times per round
enum Answer {
    Signed(Contribution),
    Excluded(ExclusionKind, String),
}

/// Signs `message` with this node's cosi key on the process's crypto pool (see
/// [`crate::crypto::pool`]): the runtime's workers stay free for the round's messages while the
/// signature is computed, so announcements keep flowing down the tree and replies up it while
/// the members of one process (or a busy node) sign. Returns the uncompressed signature (192
/// bytes: the aggregator adds it without a square root to decompress it). `asked_by` is the
/// peer whose announcement it answers (this node's own key for a round it leads): the pool
/// takes turns between them, so one that floods this node waits behind its own backlog.
async fn sign_on_pool(
    config: &Arc<crate::config::NodeConfig>,
    message: Vec<u8>,
    asked_by: Submitter,
) -> Result<Vec<u8>, String> {
    let config = config.clone();
    pool::run_for(Priority::Normal, asked_by, move || sign_here(&config, &message)).await.map_err(|e| e.to_string())?
}

/// Signs `message` with this node's cosi key on the calling thread (see [`sign_on_pool`]).
fn sign_here(config: &crate::config::NodeConfig, message: &[u8]) -> Result<Vec<u8>, String> {
    let key = config.cosi_key().ok_or("this node has no `Cosi` key")?;
    Ok(key.sign(message).raw().serialize().to_vec())
}

/// This node's own partial signature (raw, uncompressed) for an announcement from `asked_by`,
/// or why it refuses. A `leaf` has no fan-out to keep flowing while it signs.
async fn own_partial(
    shared: &Shared,
    roster: &RoundRoster,
    me: usize,
    ann: &Announce,
    fault: CosiFault,
    leaf: bool,
    asked_by: Submitter,
) -> Result<Vec<u8>, String> {
    let (statement, purpose, extra) = (&ann.statement[..], &ann.purpose[..], &ann.extra[..]);
    if fault == CosiFault::Refuse {
        return Err("refused (fault injection)".into());
    }
    let key = shared.config.cosi_key().ok_or("this node has no `Cosi` key")?;
    if !roster.has_cosi_key(me, &key.public()) {
        return Err("the roster lists another `Cosi` key for this node".into());
    }
    let to_sign = match fault {
        CosiFault::Garbage => None,
        CosiFault::WrongMessage | CosiFault::LateWrongMessage(_) => Some(CosiFault::tampered_statement(statement)),
        _ => Some(statement.to_vec()),
    };
    let hooks = &shared.hooks;
    let allow_open = shared.config.allow_open_signing;
    if leaf && statement.len() <= MAX_INLINE_STATEMENT && hooks.is_quick(purpose, allow_open) {
        // Nothing to overlap: check, then sign on this worker within its budget (see
        // `inline_signing`). The worker first looks at the network once more: busy with a row of
        // signatures, it would otherwise see new messages only every few dozen tasks.
        hooks.check(purpose, statement, extra, allow_open)?;
        return match to_sign {
            Some(message) if shared.inline_signing.reserve() => {
                tokio::task::yield_now().await;
                let signed = sign_here(&shared.config, &message)?;
                shared.signed_on(SignedOn::Worker);
                Ok(signed)
            }
            Some(message) => {
                let signed = sign_on_pool(&shared.config, message, asked_by).await?;
                shared.signed_on(SignedOn::PoolAfterCheck);
                Ok(signed)
            }
            None => Ok(CosiFault::garbage()),
        };
    }
    let to_sign_is_some = to_sign.is_some();
    let signing = async move {
        match to_sign {
            Some(message) => sign_on_pool(&shared.config, message, asked_by).await,
            None => Ok(CosiFault::garbage()),
        }
    };
    let mut signing = std::pin::pin!(signing);
    // The signature is computed on the crypto pool while the hook checks the statement and
    // records it durably; it leaves this node only once the hook passed (see `early_signing`).
    let signs_early = to_sign_is_some
        && statement.len() <= MAX_EARLY_STATEMENT
        && hooks.knows(purpose, allow_open)
        && !hooks.on_hold()
        && shared.early_signing.reserve();
    let early = if signs_early { Some(futures_util::poll!(signing.as_mut())) } else { None };
    if let Err(refused) = hooks.check(purpose, statement, extra, allow_open) {
        if early.is_some() {
            shared.early_signing.wasted();
        }
        return Err(refused);
    }
    if early.is_some() {
        shared.early_signing.used();
    }
    let signed = match early {
        Some(std::task::Poll::Ready(signed)) => signed,
        _ => signing.await,
    }?;
    if to_sign_is_some {
        shared.signed_on(if signs_early { SignedOn::PoolWhileChecking } else { SignedOn::PoolAfterCheck });
    }
    Ok(signed)
}

/// Interprets a leaf's answer to an announcement.
fn leaf_answer(n: usize, i: usize, result: Result<Vec<u8>, NetError>) -> Answer {
    let bytes = match result {
        Ok(b) => b,
        Err(NetError::Remote { message, .. }) => {
            return Answer::Excluded(ExclusionKind::Refused, bounded_reason(&message))
        }
        Err(e) => return Answer::Excluded(ExclusionKind::TimedOut, bounded_reason(&e.to_string())),
    };
    let invalid = |r: &str| Answer::Excluded(ExclusionKind::Invalid, r.to_string());
    let Ok(reply) = Reply::decode(bytes.as_slice()) else {
        return invalid("undecodable reply");
    };
    let mask = match Mask::from_bytes(n, &reply.mask) {
        Ok(m) => m,
        Err(e) => return Answer::Excluded(ExclusionKind::Invalid, format!("bad mask: {e}")),
    };
    if mask.is_empty() {
        let reason = reply
            .refused
            .iter()
            .find(|e| e.index as usize == i)
            .map(|e| bounded_reason(&e.reason))
            .unwrap_or_else(|| "refused without a reason".into());
        return Answer::Excluded(ExclusionKind::Refused, reason);
    }
    if mask.count() != 1 || !mask.contains(i) {
        return invalid("reply claims signatures of other members");
    }
    match aggregate::decode_sig(&reply.signature) {
        Some(sig) => Answer::Signed(Contribution { from: i, mask, sig }),
        None => invalid("partial signature does not decode"),
    }
}

/// Asks every leaf in `leaves` (in parallel) and returns their answers.
async fn ask_leaves(
    network: Network,
    timing: Arc<RoundTiming>,
    roster: Arc<RoundRoster>,
    leaves: Vec<usize>,
    payload: Payload,
    round_id: Vec<u8>,
    timeout: Duration,
) -> Vec<(usize, Answer)> {
    let n = roster.len();
    let asks = leaves.into_iter().map(|i| {
        let (network, roster, payload, round_id) = (network.clone(), roster.clone(), payload.clone(), round_id.clone());
        let timing = timing.clone();
        async move {
            let server = match roster.server(i) {
                Ok(s) => s,
                Err(e) => return (i, Answer::Excluded(ExclusionKind::Invalid, bounded_reason(&e))),
            };
            // A member known to be down is asked only as a last chance: it teaches nothing
            // about how long healthy members take.
            let known_down = network.health().down(&server.public).is_some();
            let start = Instant::now();
            let r = announce(&network, server, payload.to(i, &[]), &round_id, timeout).await;
            tracing::trace!(leaf = i, after = ?start.elapsed(), ?timeout, err = ?r.as_ref().err(), "cosi: leaf asked");
            match &r {
                Ok(_) => timing.leaf_answered(start.elapsed()),
                Err(NetError::Timeout { .. }) if !known_down => timing.leaf_missed(&round_id),
                Err(_) => {}
            }
            (i, leaf_answer(n, i, r))
        }
    });
    futures_util::future::join_all(asks).await
}

/// Why a member known to be down was not asked.
fn down_reason(d: &crate::network::health::DownInfo) -> String {
    bounded_reason(&format!("known down for {:.1?}, not asked: {}", d.since.elapsed(), d.reason))
}

fn wire_exclusion(index: usize, reason: String) -> WireExclusion {
    WireExclusion { index: index as u32, reason: bounded_reason(&reason) }
}

/// Handles an announcement from a peer: sign, collect the children, answer with the aggregate.
pub(super) async fn handle_peer(shared: Arc<Shared>, msg: PeerMessage) -> Result<Vec<u8>, String> {
    let warm_up = msg.protocol == PROTOCOL_WARM_UP;
    if msg.protocol != PROTOCOL_ANNOUNCE && !warm_up {
        return Err(format!("unknown cosi protocol `{}`", msg.protocol));
    }
    let mut ann = Announce::decode(msg.payload.as_slice()).map_err(|e| format!("undecodable announcement: {e}"))?;
    if ann.statement.len() > MAX_STATEMENT || ann.extra.len() > MAX_EXTRA || ann.purpose.len() > MAX_PURPOSE {
        return Err("announcement exceeds the size limits".into());
    }
    let roster = if !ann.positions.is_empty() {
        let (entries, positions) = (std::mem::take(&mut ann.roster), std::mem::take(&mut ann.positions));
        shared.rosters.sparse(&ann.roster_id, ann.roster_size as usize, entries, positions)?
    } else if ann.roster.is_empty() {
        let short = hex::encode(&ann.roster_id[..ann.roster_id.len().min(8)]);
        shared.rosters.get(&ann.roster_id).ok_or_else(|| format!("{UNKNOWN_ROSTER} {short}"))?
    } else {
        let r = shared.rosters.for_wire(std::mem::take(&mut ann.roster))?;
        if !ann.roster_id.is_empty() && ann.roster_id != r.id {
            return Err("the roster id does not match the roster".into());
        }
        r
    };
    let n = roster.len();
    if roster.index_of(&msg.from).is_none() {
        return Err("the request comes from a node outside the roster".into());
    }
    let me = roster.index_of(&shared.network.public_key()).ok_or("this node is not in the roster")?;
    let root = ann.root as usize;
    if root >= n || root == me {
        return Err(format!("bad root index {root}"));
    }
    let mut children: Vec<usize> = std::mem::take(&mut ann.children).into_iter().map(|c| c as usize).collect();
    let mut seen = HashSet::new();
    if children.iter().any(|&c| c >= n || c == me || c == root || !seen.insert(c) || !roster.knows(c)) {
        return Err("bad list of children".into());
    }
    // Children this node knows to be down are reported at once instead of waited for.
    let health = shared.network.health();
    let mut reply = Reply::default();
    children.retain(|&c| match roster.public(c).and_then(|k| health.down(&k)) {
        Some(d) => {
            reply.timed_out.push(wire_exclusion(c, down_reason(&d)));
            false
        }
        None => true,
    });
    let timeout = clamp_timeout(Duration::from_millis(ann.timeout_ms));
    let fault = shared.fault();
    if fault == CosiFault::Silent || (!warm_up && shared.takes_silent_round(&ann.purpose)) {
        tokio::time::sleep(timeout * 2 + Duration::from_secs(1)).await;
        return Err("silent (fault injection)".into());
    }
    if let (CosiFault::Slow(delay) | CosiFault::LateWrongMessage(delay), false) = (fault, warm_up) {
        tokio::time::sleep(delay).await;
    }
    if warm_up {
        // Open the links to the children (pings also measure them); nothing is signed.
        let pings = children.iter().filter_map(|&c| roster.server(c).ok()).map(|s| shared.network.ping(s, timeout));
        let answered = futures_util::future::join_all(pings).await.iter().filter(|r| r.is_ok()).count();
        debug!(children = children.len(), answered, "cosi: links to the leaves warmed up");
        return Ok(Vec::new());
    }
    // Ask the children first so that they sign while we do.
    let fanout = (!children.is_empty()).then(|| {
        ann.roster_id = roster.id.to_vec();
        ann.roster_size = 0;
        let payload = Payload::new(&ann, &roster, me);
        shared.tasks.spawn(ask_leaves(
            shared.network.clone(),
            shared.timing.clone(),
            roster.clone(),
            children.clone(),
            payload,
            msg.round_id.clone(),
            timeout,
        ))
    });
    // A sub-leader signs on the crypto pool: the fan-out task sends meanwhile.
    let asked_by = Submitter::new(*msg.from.as_bytes());
    let own = own_partial(&shared, &roster, me, &ann, fault, fanout.is_none(), asked_by).await;
    let Some(fanout) = fanout else {
        // A leaf: just the own partial, sent as is.
        match own {
            Ok(sig) => {
                reply.signature = sig;
                reply.mask = Mask::from_indices(n, [me]).into_bytes();
            }
            Err(reason) => {
                reply.mask = Mask::new(n).into_bytes();
                reply.refused.push(wire_exclusion(me, reason));
            }
        }
        return Ok(reply.encode_to_vec());
    };
    let answers = match fanout.await {
        Ok(Some(a)) => a,
        Ok(None) => return Err("node stopping".into()),
        Err(e) => {
            warn!(error = %e, "cosi: collecting the children failed");
            Vec::new()
        }
    };
    let mut contribs = Vec::new();
    for (i, a) in answers {
        match a {
            Answer::Signed(c) => contribs.push(c),
            Answer::Excluded(ExclusionKind::Refused, r) => reply.refused.push(wire_exclusion(i, r)),
            Answer::Excluded(ExclusionKind::TimedOut, r) => reply.timed_out.push(wire_exclusion(i, r)),
            Answer::Excluded(ExclusionKind::Invalid, r) => reply.invalid.push(wire_exclusion(i, r)),
        }
    }
    let mut trusted = Vec::new();
    match own {
        Ok(bytes) if fault == CosiFault::Garbage => {
            // A broken aggregator: claims everything, sends noise.
            let mut mask = Mask::from_indices(n, [me]);
            for c in &contribs {
                mask.union_with(&c.mask);
            }
            reply.signature = bytes;
            reply.mask = mask.into_bytes();
            return Ok(reply.encode_to_vec());
        }
        Ok(bytes) => match aggregate::decode_sig(&bytes) {
            Some(sig) => trusted.push(Contribution { from: me, mask: Mask::from_indices(n, [me]), sig }),
            None => return Err("own signature does not decode".into()),
        },
        Err(reason) => reply.refused.push(wire_exclusion(me, reason)),
    }
    // No verification here: the root verifies the total once, and only when it fails does it
    // look into the groups to find who sent a bad partial.
    match aggregate::combine(n, trusted.iter().chain(contribs.iter())) {
        Some((sig, mask)) => {
            reply.signature = sig.serialize().to_vec();
            reply.mask = mask.into_bytes();
        }
        None => reply.mask = Mask::new(n).into_bytes(),
    }
    Ok(reply.encode_to_vec())
}

/// Exclusions gathered by the root, by roster index (a later verdict replaces an earlier one).
#[derive(Default)]
struct Exclusions(BTreeMap<usize, (ExclusionKind, String)>);

impl Exclusions {
    fn set(&mut self, i: usize, kind: ExclusionKind, reason: String) {
        self.0.insert(i, (kind, reason));
    }
}

/// What the root learnt from one group.
struct GroupResult {
    group: Group,
    /// The sub-leader's aggregate, when it answered properly.
    aggregate: Option<Contribution>,
    /// Partials of leaves asked directly (the sub-leader failed).
    leaves: Vec<Contribution>,
    exclusions: Vec<(usize, ExclusionKind, String)>,
}

/// A sub-leader's aggregate (if anyone signed) and the exclusions it reported.
type GroupReply = (Option<Contribution>, Vec<(usize, ExclusionKind, String)>);

/// Checks a sub-leader's reply: its mask must stay within its group.
fn parse_group_reply(n: usize, group: &Group, bytes: &[u8]) -> Result<GroupReply, String> {
    let reply = Reply::decode(bytes).map_err(|_| "undecodable reply".to_string())?;
    let mask = Mask::from_bytes(n, &reply.mask).map_err(|e| format!("bad mask: {e}"))?;
    let members: HashSet<usize> = group.members().collect();
    if mask.indices().iter().any(|i| !members.contains(i)) {
        return Err("its aggregate claims members outside its group".into());
    }
    let aggregate = if mask.is_empty() {
        None
    } else {
        let sig = aggregate::decode_sig(&reply.signature).ok_or("its aggregate signature does not decode")?;
        Some(Contribution { from: group.leader, mask: mask.clone(), sig })
    };
    let mut exclusions = Vec::new();
    let lists = [
        (ExclusionKind::Refused, &reply.refused),
        (ExclusionKind::TimedOut, &reply.timed_out),
        (ExclusionKind::Invalid, &reply.invalid),
    ];
    for (kind, list) in lists {
        for e in list.iter().take(members.len()) {
            let i = e.index as usize;
            if members.contains(&i) && !mask.contains(i) {
                let reason = if i == group.leader {
                    bounded_reason(&e.reason)
                } else {
                    format!("{} (reported by #{})", bounded_reason(&e.reason), group.leader)
                };
                exclusions.push((i, kind, reason));
            }
        }
    }
    Ok((aggregate, exclusions))
}

/// Deadlines of one round: for a leaf's partial, and for a sub-leader's aggregate.
#[derive(Clone, Copy)]
struct Deadlines {
    leaf: Duration,
    group: Duration,
}

/// Asks one sub-leader for its group; if it fails, asks the group's leaves directly.
///
/// A sub-leader that is late (no answer by the time a healthy group, or one that gave up on a
/// hung leaf, answers: see [`RoundTiming::hedge_after`]) may hang: its leaves are then asked
/// directly too, while its answer is still awaited. Whichever comes first is used: the
/// sub-leader's aggregate, or the leaves' partials without the sub-leader's own (only when at
/// least one of them signed). A hung sub-leader so costs its leaves a little more than one leaf
/// deadline instead of the whole group deadline. The leaves of a late but healthy sub-leader
/// sign twice; signing the same statement again changes nothing.
#[allow(clippy::too_many_arguments)]
async fn run_group(
    network: Network,
    tasks: Tasks,
    timing: Arc<RoundTiming>,
    roster: Arc<RoundRoster>,
    group: Group,
    payload: Payload,
    leaf_payload: Payload,
    round_id: Vec<u8>,
    deadlines: Deadlines,
    outstanding: Arc<Outstanding>,
) -> GroupResult {
    let n = roster.len();
    let leader = group.leader;
    // The sub-leader waits up to `deadlines.leaf` for its leaves, then answers.
    let wait = if group.leaves.is_empty() { deadlines.leaf } else { deadlines.group };
    let start = Instant::now();
    let ask_directly = || {
        let (network, timing, roster) = (network.clone(), timing.clone(), roster.clone());
        let (leaves, payload, round_id) = (group.leaves.clone(), leaf_payload.clone(), round_id.clone());
        async move {
            // Counted when the leaves are really asked (a sub-leader that answers at once wins
            // the hedge's race before this runs).
            timing.asked_directly(leaves.len());
            ask_leaves(network, timing, roster, leaves, payload, round_id, deadlines.leaf).await
        }
        .boxed()
    };
    let server = match roster.server(leader) {
        Ok(server) => server.clone(),
        Err(e) => {
            debug!(leader, reason = %e, "cosi: sub-leader unknown, asking its leaves directly");
            let answers = ask_directly().await;
            return from_leaves(group, (leader, ExclusionKind::Refused, bounded_reason(&e)), answers);
        }
    };
    let known_down = network.health().down(&server.public).is_some();
    // A task of its own: when the leaves answer first, the request still runs to its end, so
    // the transport learns whether the sub-leader is down (as for any request), and the
    // sub-leader owes an answer (is "behind") until then.
    let mut ask = {
        let (network, server, round_id) = (network.clone(), server.clone(), round_id.clone());
        let (timing, outstanding) = (timing.clone(), outstanding.clone());
        let payload = payload.to(leader, &group.leaves);
        tasks.spawn(async move {
            // Settled however the request ends (also if the task is cancelled or panics).
            let _settle = Settle { outstanding, timing, member: server.public };
            announce(&network, &server, payload, &round_id, wait).await
        })
    };
    // A sub-leader that still owes an earlier round's answer (it hangs, or its link is behind)
    // will not answer this one first: its leaves are asked directly at once too. Otherwise the
    // round after one that gave up on it would wait for it again, until the transport marks it
    // down.
    let hedge = (!group.leaves.is_empty())
        .then(|| if timing.is_behind(&server.public) { Duration::ZERO } else { timing.hedge_after(deadlines.leaf) })
        .filter(|h| *h < wait);
    let answer = hedged(&mut ask, hedge, &outstanding, &timing, &ask_directly, leader, start).await;
    let took = start.elapsed();
    let learn_from = |heard| learn(&timing, &round_id, &group, known_down, took, deadlines.leaf, heard);
    let (reply, direct) = match answer {
        SubLeaderAnswer::Overtaken(answers) => {
            learn_from(Heard::Late);
            timing.abandon(&outstanding, &server.public);
            debug!(leader, after = ?took, "cosi: the leaves of a late sub-leader answered first");
            let reason = "no answer by the time its leaves answered the root directly".to_string();
            return from_leaves(group, (leader, ExclusionKind::TimedOut, reason), answers);
        }
        SubLeaderAnswer::Replied { reply, direct } => (reply, direct),
    };
    let parsed = reply.map(|bytes| parse_group_reply(n, &group, &bytes));
    learn_from(match &parsed {
        Ok(reply) => Heard::Reply(reply.as_ref().ok().map(|(_, exclusions)| exclusions.as_slice())),
        Err(NetError::Timeout { .. }) => Heard::Late,
        Err(_) => Heard::Failed,
    });
    let (kind, reason) = match parsed {
        Ok(Ok((aggregate, exclusions))) => return GroupResult { group, aggregate, leaves: Vec::new(), exclusions },
        Ok(Err(reason)) => (ExclusionKind::Invalid, format!("sub-leader reply: {reason}")),
        Err(NetError::Remote { message, .. }) => (ExclusionKind::Refused, bounded_reason(&message)),
        Err(e) => (ExclusionKind::TimedOut, bounded_reason(&e.to_string())),
    };
    debug!(leader, %kind, %reason, after = ?start.elapsed(), "cosi: sub-leader failed, asking its leaves directly");
    let answers = match direct {
        Some(asked) => asked.await,
        // The round no longer waits for this group: its leaves would sign for nothing.
        None if outstanding.abandoned() => Vec::new(),
        None => ask_directly().await,
    };
    from_leaves(group, (leader, kind, reason), answers)
}

/// The answers of a group's leaves asked directly by the root (a boxed [`ask_leaves`]).
type DirectAnswers = futures_util::future::BoxFuture<'static, Vec<(usize, Answer)>>;

/// How a sub-leader's request ended, as the root sees it.
enum SubLeaderAnswer {
    /// It answered, or failed, on its own. `direct` holds its leaves' answers when they were
    /// asked meanwhile (it was late).
    Replied { reply: Result<Vec<u8>, NetError>, direct: Option<DirectAnswers> },
    /// It was late, and its leaves, asked directly, answered first (at least one signed).
    Overtaken(Vec<(usize, Answer)>),
}

/// Waits for the sub-leader's request `ask`. Once it is late (after `hedge`, when a healthy
/// group would have answered), its leaves are asked directly too, unless the round no longer
/// waits for this group (their signatures would be wasted work). The first useful answer is
/// used, the sub-leader's preferred: the leaves' win only if one of them signed.
async fn hedged(
    ask: &mut tokio::task::JoinHandle<Option<Result<Vec<u8>, NetError>>>,
    hedge: Option<Duration>,
    outstanding: &Outstanding,
    timing: &RoundTiming,
    ask_directly: &impl Fn() -> DirectAnswers,
    leader: usize,
    start: Instant,
) -> SubLeaderAnswer {
    let replied = |joined, direct| SubLeaderAnswer::Replied { reply: joined_reply(leader, joined), direct };
    let Some(hedge) = hedge else { return replied((&mut *ask).await, None) };
    match tokio::time::timeout(hedge, &mut *ask).await {
        Ok(joined) => return replied(joined, None),
        Err(_) if outstanding.abandoned() => return replied((&mut *ask).await, None),
        Err(_) => {}
    }
    debug!(leader, after = ?start.elapsed(), "cosi: sub-leader late, its leaves are asked directly too");
    timing.hedged();
    let mut leaves = ask_directly();
    tokio::select! {
        biased;
        joined = &mut *ask => replied(joined, Some(leaves)),
        answers = &mut leaves => {
            if answers.iter().any(|(_, a)| matches!(a, Answer::Signed(_))) {
                return SubLeaderAnswer::Overtaken(answers);
            }
            // None of them signed: the sub-leader may still bring its own partial.
            replied((&mut *ask).await, Some(futures_util::future::ready(answers).boxed()))
        }
    }
}

/// The reply of a sub-leader's request task.
fn joined_reply(
    leader: usize,
    joined: Result<Option<Result<Vec<u8>, NetError>>, tokio::task::JoinError>,
) -> Result<Vec<u8>, NetError> {
    match joined {
        Ok(Some(reply)) => reply,
        Ok(None) => Err(NetError::Shutdown),
        Err(e) => Err(NetError::Remote { peer: format!("#{leader}"), message: format!("internal error: {e}") }),
    }
}

/// What the root heard from a group's sub-leader (or lone leaf), for the round timing.
enum Heard<'a> {
    /// An answer, with the exclusions it reported when it parsed.
    Reply(Option<&'a [(usize, ExclusionKind, String)]>),
    /// No answer in time (also: its leaves, asked directly, answered first).
    Late,
    /// Any other failure (refused, unreachable, shutting down): says nothing about timing.
    Failed,
}

/// Teaches `timing` how long groups and leaves take, from one group of round `round_id`.
/// Members known to be down say nothing about healthy ones. A sub-leader that reports a
/// silent leaf may have waited its leaf deadline: that is not how long a group takes, and
/// learning it would let one hung member stretch every later round's group deadline (and the
/// hedge) far past the usual time. One that answered before that deadline did not wait (it
/// reported leaves it knew to be down at once), and is learned.
fn learn(
    timing: &RoundTiming,
    round_id: &[u8],
    group: &Group,
    known_down: bool,
    took: Duration,
    leaf_deadline: Duration,
    heard: Heard,
) {
    let sub_leader = !group.leaves.is_empty();
    match heard {
        Heard::Reply(_) if !sub_leader => timing.leaf_answered(took),
        Heard::Reply(Some(exclusions)) => {
            let silent_leaf = exclusions.iter().any(|(_, k, _)| *k == ExclusionKind::TimedOut);
            if !silent_leaf || took < leaf_deadline {
                timing.group_answered(took);
            }
        }
        Heard::Reply(None) | Heard::Failed => {}
        Heard::Late if known_down => {}
        Heard::Late if sub_leader => timing.group_missed(round_id),
        Heard::Late => timing.leaf_missed(round_id),
    }
}

/// Marks a sub-leader's request as finished when dropped (see [`Outstanding::finish`]).
struct Settle {
    outstanding: Arc<Outstanding>,
    timing: Arc<RoundTiming>,
    member: crate::crypto::IdentityPublicKey,
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.outstanding.finish(&self.timing, &self.member);
    }
}

/// A group's result made of its leaves' own answers, the sub-leader excluded for `leader_exclusion`.
fn from_leaves(
    group: Group,
    leader_exclusion: (usize, ExclusionKind, String),
    answers: Vec<(usize, Answer)>,
) -> GroupResult {
    let mut result = GroupResult { group, aggregate: None, leaves: Vec::new(), exclusions: vec![leader_exclusion] };
    for (i, a) in answers {
        match a {
            Answer::Signed(c) => result.leaves.push(c),
            Answer::Excluded(k, r) => result.exclusions.push((i, k, r)),
        }
    }
    result
}

/// Runs a round with this node as root.
pub(super) async fn run_root(
    shared: Arc<Shared>,
    roster: Arc<RoundRoster>,
    statement: Vec<u8>,
    purpose: String,
    extra: Vec<u8>,
    policy: Policy,
    timeout: Duration,
) -> Result<SignOutcome, CosiError> {
    let n = roster.len();
    let required = policy.required(n).map_err(CosiError::Policy)?;
    if statement.len() > MAX_STATEMENT {
        return Err(CosiError::BadRequest(format!(
            "statement of {} bytes exceeds the limit of {MAX_STATEMENT}",
            statement.len()
        )));
    }
    if extra.len() > MAX_EXTRA {
        return Err(CosiError::BadRequest(format!(
            "extra data of {} bytes exceeds the limit of {MAX_EXTRA}",
            extra.len()
        )));
    }
    if purpose.len() > MAX_PURPOSE {
        return Err(CosiError::BadRequest("purpose name too long".into()));
    }
    let me = roster
        .index_of(&shared.network.public_key())
        .ok_or_else(|| CosiError::NotInRoster(shared.network.public_key().to_hex()[..16].to_string()))?;
    let key = shared.config.cosi_key().ok_or(CosiError::NoKey)?;
    if roster.keys[me] != key.public() {
        return Err(CosiError::KeyMismatch(me));
    }
    shared.hooks.check(&purpose, &statement, &extra, shared.config.allow_open_signing).map_err(CosiError::Refused)?;
    let timeout = clamp_timeout(timeout);
    // Beyond the work this node can lead at once, the round waits its turn (see `admission`).
    // A node told to stop ends the rounds still waiting at once, instead of handing each its turn.
    let _admitted = tokio::select! {
        biased;
        _ = shared.tasks.cancelled() => return Err(CosiError::Stopped),
        admitted = shared.admission.admit(n + ROOT_WORK, timeout) => admitted?,
    };
    let _leading = shared.timing.leading(n);
    // Rounds asked for together (a caller that starts many at once) are all counted before any
    // of them sets its deadlines: the first of them would otherwise see few others.
    tokio::task::yield_now().await;
    let round_id = rand::random::<[u8; 16]>().to_vec();
    let mut exclusions = Exclusions::default();
    // Members known to be down are left out of the tree, unless the others cannot reach the
    // threshold: then they are asked too (directly, as leaves of the root), since they may be back.
    let health = shared.network.health();
    let down: BTreeMap<usize, _> = (0..n)
        .filter(|&i| i != me)
        .filter_map(|i| roster.public(i).and_then(|k| health.down(&k)).map(|d| (i, d)))
        .collect();
    let rtt = measured_rtt(&roster, me, health);
    let mut groups = tree::groups_shaped(n, me, |i| !down.contains_key(&i), rtt);
    if n - down.len() >= required {
        for (&i, d) in &down {
            exclusions.set(i, ExclusionKind::TimedOut, down_reason(d));
        }
    } else {
        groups.extend(down.keys().map(|&i| Group { leader: i, leaves: Vec::new() }));
    }
    if !down.is_empty() {
        debug!(down = ?down.keys().collect::<Vec<_>>(), required, "cosi: members known to be down");
    }
    let leaf = shared.timing.leaf_deadline(timeout, n);
    let deadlines = Deadlines { leaf, group: shared.timing.group_deadline(leaf, timeout) };
    debug!(groups = groups.len(), ?rtt, leaf = ?deadlines.leaf, group = ?deadlines.group, "cosi: round deadlines");
    let base = Announce {
        roster: Vec::new(),
        roster_id: roster.id.to_vec(),
        root: me as u32,
        statement,
        purpose,
        extra,
        children: Vec::new(),
        timeout_ms: deadlines.leaf.as_millis() as u64,
        positions: Vec::new(),
        roster_size: 0,
    };
    let leaf_payload = Payload::new(&base, &roster, me);
    let mut tasks = Vec::with_capacity(groups.len());
    let requests: Vec<Arc<Outstanding>> = groups.iter().map(|_| Arc::default()).collect();
    for (g, req) in groups.iter().zip(&requests) {
        tasks.push(shared.tasks.spawn(run_group(
            shared.network.clone(),
            shared.tasks.clone(),
            shared.timing.clone(),
            roster.clone(),
            g.clone(),
            leaf_payload.clone(),
            leaf_payload.clone(),
            round_id.clone(),
            deadlines,
            req.clone(),
        )));
    }
    let statement = base.statement;
    // Our own partial and half of the check of the total (for the members asked), on the crypto
    // pool while the others sign; the group tasks send meanwhile.
    let expected = Mask::from_indices(n, std::iter::once(me).chain(groups.iter().flat_map(|g| g.members())));
    // The statement is hashed to G2 once, first: the root's key keeps the point, so its own
    // signature and the check's Miller loop (side by side on the pool) both start from it.
    let (msg, config) = (statement.clone(), shared.config.clone());
    let ours = Submitter::new(*shared.network.public_key().as_bytes());
    let point =
        pool::run_for(Priority::Normal, ours, move || config.cosi_key().map(|key| key.message_point(&msg))).await;
    let point = point.ok().flatten();
    let keys = roster.clone();
    let prepare = pool::run_for(Priority::Normal, ours, move || match point {
        Some(point) => aggregate::Prepared::with_point(&point, &keys.keys, expected),
        None => None,
    });
    let (own_bytes, prepared) = futures_util::join!(sign_on_pool(&shared.config, statement.clone(), ours), prepare);
    let own = Contribution {
        from: me,
        mask: Mask::from_indices(n, [me]),
        sig: aggregate::decode_sig(&own_bytes.map_err(CosiError::FinalVerify)?)
            .ok_or_else(|| CosiError::FinalVerify("own signature does not decode".into()))?,
    };
    let prepared = prepared.ok().flatten();
    let mut results = Vec::with_capacity(tasks.len());
    // Collect the groups as they answer, until the outcome is decided: the threshold is met, or
    // the members still outstanding cannot reach it any more. Then the stragglers get as long
    // again as the round took so far (at least `GRACE_MIN`; once the threshold is met, not
    // counting the network round trip: `straggler_grace`), and whoever has not answered by then
    // is reported as timed out (its request ends in the background).
    let started = Instant::now();
    let mut signed = 1; // our own partial
    let mut outstanding: usize = groups.iter().map(|g| g.leaves.len() + 1).sum();
    let mut open: Vec<bool> = vec![true; groups.len()];
    let mut grace_until: Option<Instant> = None;
    let mut first_answer: Option<Duration> = None;
    let mut answered = 0;
    let mut running: futures_util::stream::FuturesUnordered<_> =
        tasks.into_iter().enumerate().map(|(gi, t)| async move { (gi, t.await) }).collect();
    loop {
        let next = match grace_until {
            Some(t) => match tokio::time::timeout_at(t.into(), running.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => running.next().await,
        };
        let Some((gi, joined)) = next else { break };
        let g = &groups[gi];
        tracing::trace!(leader = g.leader, after = ?started.elapsed(), "cosi: group done");
        open[gi] = false;
        outstanding -= g.leaves.len() + 1;
        match joined {
            Ok(Some(r)) => {
                let count = r.aggregate.as_ref().map_or(0, |a| a.mask.count()) + r.leaves.len();
                if count > 0 {
                    first_answer.get_or_insert(started.elapsed());
                    answered += 1;
                }
                signed += count;
                results.push(r);
            }
            Ok(None) => return Err(CosiError::Stopped),
            Err(e) => {
                warn!(error = %e, "cosi: group task failed");
                for i in g.members() {
                    exclusions.set(i, ExclusionKind::TimedOut, "internal error while asking".into());
                }
            }
        }
        // A sub-leader that still owes the answer to an earlier round (its link is behind a lost
        // packet, or it hangs) cannot answer this one before that: once the threshold is met,
        // when only such groups are left, the round ends at once.
        let behind = |gi: usize| roster.public(groups[gi].leader).is_some_and(|k| shared.timing.is_behind(&k));
        if signed >= required && outstanding > 0 && (0..groups.len()).filter(|&gi| open[gi]).all(behind) {
            debug!(after = ?started.elapsed(), "cosi: only members still owing earlier answers are left");
            break;
        }
        if grace_until.is_none() && outstanding > 0 {
            if signed >= required {
                grace_until = Some(
                    Instant::now()
                        + straggler_grace(
                            started.elapsed(),
                            first_answer.map(|first| Arrivals {
                                first,
                                answered,
                                open: open.iter().filter(|o| **o).count(),
                            }),
                            rtt,
                        ),
                );
            } else if signed + outstanding < required {
                grace_until = Some(Instant::now() + started.elapsed().max(GRACE_MIN));
            }
        }
    }
    debug!(
        after = ?started.elapsed(),
        ?rtt,
        first = ?first_answer,
        signed,
        required,
        left_out = open.iter().zip(&groups).filter(|(o, _)| **o).map(|(_, g)| g.leaves.len() + 1).sum::<usize>(),
        "cosi: answers collected"
    );
    if rtt.is_none() {
        // The tree was shaped without a round-trip time: learn it for the next rounds, over the
        // links this round opened, once the round's work is done (a ping queued behind the
        // members' signing would measure their load, not the network); then open the links of
        // the tree it calls for (across a WAN, a star: the root's links to every member).
        let (background, warm_roster) = (shared.clone(), roster.clone());
        shared.tasks.spawn(async move { warm_up(&background, &warm_roster, deadlines.leaf).await });
    }
    for (g, req) in groups.iter().zip(&requests).zip(&open).filter(|(_, open)| **open).map(|(g, _)| g) {
        debug!(leader = g.leader, "cosi: outcome decided without this group");
        if let Some(k) = roster.public(g.leader) {
            shared.timing.abandon(req, &k);
        }
        for i in g.members() {
            exclusions.set(i, ExclusionKind::TimedOut, "no answer by the time the outcome was decided".into());
        }
    }
    let mut untrusted = Vec::new();
    for r in &mut results {
        for (i, k, reason) in r.exclusions.drain(..) {
            if k == ExclusionKind::TimedOut && i != r.group.leader && !down.contains_key(&i) {
                // A sub-leader found it silent: see for ourselves, so the next round can skip it.
                if let Ok(s) = roster.server(i) {
                    shared.network.suspect(s);
                }
            }
            exclusions.set(i, k, reason);
        }
        untrusted.extend(r.aggregate.take());
        untrusted.append(&mut r.leaves);
    }
    let trusted = [own];
    let checked = aggregate::check(&statement, &roster.keys, &trusted, untrusted, prepared.as_ref());
    let mut verified = checked.verified_as_one;
    let mut valid = checked.valid;
    // The total did not verify: the bad contributions are known (one check each). A bad group
    // aggregate is looked into: every member it claims is asked again, directly, and its partial
    // checked on its own. Those whose partial is bad are the culprits; if none is, the
    // sub-leader added up wrongly and is the culprit.
    let mut reask: Vec<(usize, Vec<usize>)> = Vec::new();
    for c in checked.invalid {
        if c.mask.count() > 1 || !c.mask.contains(c.from) {
            reask.push((c.from, c.mask.indices()));
        } else {
            blame(&shared, &mut exclusions, c.from, "partial signature does not verify".into());
        }
    }
    if !reask.is_empty() {
        let all: Vec<usize> = reask.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        shared.timing.asked_directly(all.len());
        let answers = ask_leaves(
            shared.network.clone(),
            shared.timing.clone(),
            roster.clone(),
            all,
            leaf_payload,
            round_id,
            deadlines.leaf,
        )
        .await;
        let mut again = Vec::new();
        for (i, a) in answers {
            match a {
                Answer::Signed(c) => again.push(c),
                Answer::Excluded(k, r) => exclusions.set(i, k, r),
            }
        }
        let checked = aggregate::check(&statement, &roster.keys, &[], again, None);
        let bad: HashSet<usize> = checked.invalid.iter().map(|c| c.from).collect();
        for &i in &bad {
            blame(
                &shared,
                &mut exclusions,
                i,
                "partial signature does not verify (found when its group's aggregate did not)".into(),
            );
        }
        let mut fresh = checked.valid;
        let proven: HashSet<usize> = fresh.iter().map(|c| c.from).collect();
        for (leader, members) in &reask {
            // Blamed only when every partial it claimed now verifies: a member that answers the
            // re-ask with garbage (a random point can decode) or not at all may be the one that
            // spoiled the sum, and an honest sub-leader must not be excluded for it.
            if members.iter().all(|i| proven.contains(i)) {
                // Every partial it claimed is good: it added them up wrongly.
                fresh.retain(|c| c.from != *leader);
                let why =
                    format!("its aggregate of {} signatures does not verify, every partial in it does", members.len());
                blame(&shared, &mut exclusions, *leader, why);
            }
        }
        valid.extend(fresh);
        verified = false;
    }
    let (sig, mask) = aggregate::combine(n, trusted.iter().chain(valid.iter()))
        .ok_or_else(|| CosiError::FinalVerify("nothing to aggregate".into()))?;
    let mut report = build_report(&roster, n, required, &mask, exclusions);
    if mask.count() < required {
        report.partial = Some(PartialAggregate { signature: sig.compress().to_vec(), mask: mask.clone().into_bytes() });
        let missing = report.missing().into_iter().map(|(k, e)| (k, e.clone())).collect();
        return Err(CosiError::ThresholdNotReached {
            signed: mask.count(),
            required,
            n,
            missing,
            report: Box::new(report),
        });
    }
    if !verified && !aggregate::verify(&statement, &sig, &mask, &roster.keys) {
        return Err(CosiError::FinalVerify("aggregate check failed".into()));
    }
    let compressed = sig.compress();
    // The total verified: the members of this process that check it again (storing the links it
    // signs) find it among the passed checks instead of running the pairing. (The sum of the
    // signers' keys is the prepared one when everyone expected signed.)
    let key = match prepared.as_ref().filter(|p| p.mask() == &mask) {
        Some(p) => Some(p.key_bytes()),
        None => aggregate::sum_keys(&mask, &roster.keys).map(|k| k.compress()),
    };
    if let (Some(point), Some(key)) = (point, key) {
        checked_once::process().remember(pairing_fingerprint(&point, &key, &compressed));
    }
    let signature = BlsSignature::from_bytes(&compressed).map_err(|e| CosiError::FinalVerify(e.to_string()))?;
    Ok(SignOutcome { signature, mask: mask.into_bytes(), report })
}

/// Opens the links of the tree this node would use as the root of a round over `roster`, so the
/// first round does not pay their dials and TLS handshakes: each sub-leader gets a `WarmUp`
/// (which opens the link to it) naming its leaves, and pings them before it answers. Leaf-only
/// groups get a ping. Best effort: failures only teach the transport who is down, as a round would.
pub(super) async fn warm_up(shared: &Shared, roster: &Arc<RoundRoster>, timeout: Duration) {
    let Some(me) = roster.index_of(&shared.network.public_key()) else { return };
    let health = shared.network.health();
    let n = roster.len();
    let up = |i: usize| roster.public(i).is_some_and(|k| health.down(&k).is_none());
    let mut rtt = measured_rtt(roster, me, health);
    if rtt.is_none() {
        // The shape follows the round-trip time: measure it first (a few members; the tree's
        // links to them are then open too).
        // The sub-leaders of the tree shaped without it (those a round over this roster
        // announced to, so they admit this node and keep the links).
        let leaders = tree::groups_shaped(n, me, up, None).into_iter().map(|g| g.leader).take(RTT_PROBES);
        probe_rtt(&shared.network, roster, leaders.collect(), timeout).await;
        rtt = measured_rtt(roster, me, health);
    }
    let groups = tree::groups_shaped(n, me, up, rtt);
    let base = Announce {
        roster_id: roster.id.to_vec(),
        root: me as u32,
        timeout_ms: timeout.as_millis() as u64,
        ..Default::default()
    };
    let payload = Payload::new(&base, roster, me);
    let asks = groups.iter().filter_map(|g| Some((g, roster.server(g.leader).ok()?))).map(|(g, s)| {
        let network = &shared.network;
        let body = payload.to(g.leader, &g.leaves);
        async move {
            if g.leaves.is_empty() {
                network.ping(s, timeout).await.map(|_| ())
            } else {
                network.request(s, COSI_SERVICE, PROTOCOL_WARM_UP, &[], body, timeout * 2).await.map(|_| ())
            }
        }
    });
    let answered = futures_util::future::join_all(asks).await.iter().filter(|r| r.is_ok()).count();
    debug!(sub_leaders = groups.len(), answered, "cosi: the tree's links warmed up");
}

/// Round-trip time to the other members as the transport measured it: the least among (up to
/// 32 of) them, since a busy machine adds its queueing delays to a ping and the least holds the
/// fewest of them.
fn measured_rtt(roster: &RoundRoster, me: usize, health: &crate::network::health::PeerHealth) -> Option<Duration> {
    let n = roster.len();
    (1..n).map(|k| (me + k) % n).filter_map(|i| roster.public(i)).filter_map(|k| health.rtt(&k)).take(32).min()
}

/// Members pinged to learn the round-trip time when none was measured yet.
const RTT_PROBES: usize = 3;

/// Learns the round-trip time to `members` (for the tree's shape): each is asked once to open
/// the link (dial and TLS handshake are no part of a round trip, and the transport's ping would
/// count them), then pinged over it, which records the RTT. Best effort.
async fn probe_rtt(network: &Network, roster: &RoundRoster, members: Vec<usize>, timeout: Duration) {
    let probes = members.into_iter().filter_map(|i| roster.server(i).ok()).map(|s| async move {
        let nonce: [u8; 16] = rand::random();
        if network.request(s, NET_SERVICE, "Ping", &[], nonce.to_vec(), timeout).await.is_ok() {
            let _ = network.ping(s, timeout).await;
        }
    });
    futures_util::future::join_all(probes).await;
}

/// Excludes member `i` for a bad signature, and reports it (log, metrics).
fn blame(shared: &Shared, exclusions: &mut Exclusions, i: usize, reason: String) {
    warn!(member = i, %reason, "cosi: member excluded for an invalid signature");
    shared.invalid_signature();
    exclusions.set(i, ExclusionKind::Invalid, reason);
}

fn build_report(
    roster: &RoundRoster,
    n: usize,
    required: usize,
    mask: &Mask,
    mut exclusions: Exclusions,
) -> SignReport {
    let mut report = SignReport { n, required, signed: mask.indices(), ..Default::default() };
    for i in 0..n {
        if mask.contains(i) {
            continue;
        }
        let (kind, reason) = exclusions.0.remove(&i).unwrap_or((ExclusionKind::TimedOut, "no answer reported".into()));
        let Some(public) = roster.public(i) else { continue };
        let e = Exclusion { index: i, public, reason };
        match kind {
            ExclusionKind::Refused => report.refused.push(e),
            ExclusionKind::TimedOut => report.timed_out.push(e),
            ExclusionKind::Invalid => report.invalid.push(e),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partials_signed_on_the_pool_are_the_keys_signatures() {
        let addr = crate::config::NodeAddress { host: "127.0.0.1".into(), port: 1 };
        let config = Arc::new(crate::config::NodeConfig::generate(addr, "pool signer"));
        let key = config.cosi_key().expect("generated with a cosi key").clone();
        let bytes = sign_on_pool(&config, b"statement".to_vec(), Submitter::ANYONE).await.expect("signed");
        assert_eq!(bytes.len(), 192, "uncompressed, for the aggregators");
        let sig = aggregate::decode_sig(&bytes).expect("decodes");
        let keys = [key.public()];
        assert!(aggregate::verify(b"statement", &sig, &Mask::from_indices(1, [0]), &keys));
        assert!(!aggregate::verify(b"another statement", &sig, &Mask::from_indices(1, [0]), &keys));
        assert_eq!(bytes, key.sign(b"statement").raw().serialize().to_vec());
        // A node without a cosi key refuses (no panic on the pool's thread).
        let mut keyless = (*config).clone();
        keyless.service_keys.clear();
        assert!(sign_on_pool(&Arc::new(keyless), b"statement".to_vec(), Submitter::ANYONE).await.is_err());
    }

    #[test]
    fn stragglers_wait_for_their_expected_arrival() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let arrivals = |first: u64, answered: usize, open: usize| Some(Arrivals { first: ms(first), answered, open });
        // No RTT known, or loopback: as long again as the round took, at least GRACE_MIN.
        assert_eq!(straggler_grace(ms(3), arrivals(1, 3, 1), None), GRACE_MIN);
        assert_eq!(straggler_grace(ms(300), arrivals(150, 5, 3), None), ms(300));
        assert_eq!(straggler_grace(ms(300), arrivals(150, 5, 3), Some(us(50))), ms(300) - us(50));
        assert_eq!(straggler_grace(ms(3), arrivals(2, 3, 1), Some(us(50))), GRACE_MIN - us(50));
        // Across a WAN: the round trip is not counted. 10 of 15 leaves answered from 95 to 104 ms
        // (one per ms): the other 5 are expected within 5 ms; the signing and queueing beyond
        // the RTT (6 ms) is longer here.
        assert_eq!(straggler_grace(ms(104), arrivals(95, 10, 5), Some(ms(98))), ms(6));
        assert_eq!(straggler_grace(ms(104), arrivals(95, 10, 5), Some(ms(101))), ms(5));
        assert_eq!(straggler_grace(ms(400), arrivals(390, 10, 5), Some(ms(100))), ms(300), "a CPU-bound round");
        // Never less than GRACE_AFTER_NETWORK (an RTT measured above this round's answers).
        assert_eq!(straggler_grace(ms(95), arrivals(95, 2, 13), Some(ms(100))), GRACE_AFTER_NETWORK);
        // No rate to go by (the root alone, or one answer): the full grace.
        assert_eq!(straggler_grace(ms(0), None, Some(ms(100))), GRACE_MIN);
        assert_eq!(straggler_grace(ms(120), arrivals(120, 1, 3), Some(ms(100))), ms(120));
        // Never longer than without the RTT.
        for (e, f, r) in [(0, 0, 0), (1, 0, 5), (30, 2, 1), (500, 100, 499), (104, 95, 98)] {
            let with = straggler_grace(ms(e), arrivals(f, 4, 2), Some(ms(r)));
            assert!(with <= straggler_grace(ms(e), arrivals(f, 4, 2), None));
        }
    }
}
