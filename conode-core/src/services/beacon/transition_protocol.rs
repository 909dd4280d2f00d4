//! Resharing a running beacon group over the node port (peer service `Reshare`, messages in
//! `proto/reshare.proto`; the math and checks are in [`crate::services::dkg::reshare`]). The
//! leader, a member of the running group asked by `/Beacon/Reshare` (or by the membership service
//! after a roster change), picks the transition round `T` (the first round at least two phases
//! and two periods away), proposes the resharing to the old and new members (`Prepare`), tells
//! those that accepted to go with the old members that deal (`Go`); each dealer records durably
//! that it deals in the session, then sends each new member its signed re-share (`Deal`); each new
//! member checks them against the old public polynomial and sends its signed responses to the
//! leader (`Responses`); the leader hands every member all responses (`Finish`, signed by the
//! leader), from which each computes the same qualified dealers. A new member combines its new
//! share and the new group (same key, same genesis seed, transition round `T`) and stages it
//! durably; an old member left out records that it signs no round from `T` on. The switch itself
//! is in `transition`.
//!
//! A leader may crash between its Finish sends. So a member that gets a valid Finish (the
//! leader's signature makes it self-verifying; anyone may carry it) first forwards it to every
//! other participant, then applies it; a member that got `Go` but no Finish asks the others for
//! theirs (`Fetch`) from two phases after `Go` on. A Finish is applied only until round `T`'s time
//! minus a margin (half a period, at least 250 ms), and the leader sends it only until twice that
//! margin before: a member with no Finish by then aborts, keeping its old group, which goes on
//! signing `T` and after. So when one honest member got it in time, every honest member reachable
//! within the margin does, and when none did, none stages.

use super::chain::lock;
use super::round_loop::{round_time_ms, unix_now_ms};
use super::service::BeaconService;
use super::store::Share;
use crate::config::{Roster, ServerIdentity};
use crate::crypto::IdentityPublicKey;
use crate::network::PeerMessage;
use crate::services::dkg::messages::{Deal, Member, Responses};
use crate::services::dkg::minimum_threshold;
use crate::services::dkg::reshare::{
    check_finish, make_deals, protocol as proto, qualified, sign_finish, Recipient, ReshareConfig, ReshareDone,
    ReshareError, ReshareFetch, ReshareFinish, ReshareGo, ReshareParams, ResharePrepare, ReshareRequest,
    ReshareResponse, SERVICE,
};
use crate::services::ServiceError;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Default length of a resharing phase.
pub const DEFAULT_PHASE_MS: u64 = 10_000;
/// Longest wait for a member to accept.
const PREPARE_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// How long before round `T`'s time a member still applies a Finish (half a period, at least
/// 250 ms); the leader sends it only until twice that before.
pub(super) fn finish_margin_ms(period_secs: u32) -> i64 {
    (500 * i64::from(period_secs)).max(250)
}

/// The `Instant` of a UNIX time in milliseconds (now when it is past).
fn instant_at(unix_ms: i64) -> Instant {
    Instant::now() + Duration::from_millis((unix_ms - unix_now_ms()).max(0) as u64)
}

/// One resharing session on this node.
pub(crate) struct Session {
    params: ReshareParams,
    /// This node's old share index, if it deals.
    old_index: Option<u32>,
    recipient: Option<Mutex<Recipient>>,
    dealers: Mutex<Vec<u32>>,
    /// At the leader: each new member's responses.
    responses: Mutex<BTreeMap<u32, Responses>>,
    /// The valid Finish this node applies (taken before applying: forwarded and served from here).
    finish: Mutex<Option<ReshareFinish>>,
    /// How the Finish came (from the leader, forwarded by, fetched from).
    finish_via: Mutex<String>,
    done: Mutex<Option<ReshareDone>>,
    notify: Notify,
    started: AtomicBool,
    created: Instant,
    log: Mutex<Vec<String>>,
}

impl Session {
    /// Round `T`'s time (UNIX ms).
    fn t_ms(&self) -> i64 {
        round_time_ms(&self.params.old.chain_info(), self.params.config.transition_round).unwrap_or(0)
    }

    /// Until when (UNIX ms) a member applies a Finish.
    fn finish_cutoff_ms(&self) -> i64 {
        self.t_ms() - finish_margin_ms(self.params.old.period)
    }

    /// Every participant but `except`: the old group's nodes, then the new members, once each.
    fn participants(&self, except: &IdentityPublicKey) -> Vec<ServerIdentity> {
        let p = &self.params;
        let mut out: Vec<ServerIdentity> = Vec::new();
        for si in p
            .old
            .nodes
            .iter()
            .map(|n| n.server_identity())
            .chain((0..p.n() as u32).filter_map(|i| p.new_member(i).map(|n| n.server_identity())))
        {
            if si.public != *except && !out.iter().any(|e| e.public == si.public) {
                out.push(si);
            }
        }
        out
    }

    fn is_participant(&self, key: &IdentityPublicKey) -> bool {
        self.params.old.index_of(key).is_some() || self.params.new_index(key).is_some()
    }

    /// What this node knows of the session, for the status page and metrics.
    pub(super) fn summary(&self) -> (String, Option<ReshareDone>, String) {
        (hex::encode(self.params.session), lock(&self.done).clone(), lock(&self.finish_via).clone())
    }

    pub(super) fn params(&self) -> &ReshareParams {
        &self.params
    }

    fn log(&self, line: String) {
        info!(session = %hex::encode(&self.params.session[..6]), "reshare: {line}");
        let ms = self.created.elapsed().as_millis();
        lock(&self.log).push(format!("[{ms:>6} ms] {line}"));
    }

    fn over(&self) -> bool {
        lock(&self.done).is_some()
            || (!self.started.load(Ordering::SeqCst)
                && self.created.elapsed() > 2 * self.params.phase + PREPARE_TIMEOUT_MAX)
            || self.created.elapsed() > 6 * self.params.phase + PREPARE_TIMEOUT_MAX
    }

    /// Waits until `cond` holds or `deadline`.
    async fn wait_until(&self, deadline: Instant, cond: impl Fn(&Session) -> bool) -> bool {
        crate::sync::wait_notified(&self.notify, deadline, || cond(self)).await
    }
}

fn member_of(s: &ServerIdentity) -> Member {
    Member { public: s.public.as_bytes().to_vec(), address: s.address.to_string(), description: s.description.clone() }
}

fn refused(e: ReshareError) -> ServiceError {
    match e {
        ReshareError::Config(_) => ServiceError::BadRequest(e.to_string()),
        ReshareError::Refused(_) => ServiceError::Refused(e.to_string()),
        e => ServiceError::Failed(e.to_string()),
    }
}

impl BeaconService {
    /// Registers the `Reshare` peer protocol.
    pub(super) fn register_reshare(&self) {
        let s = self.clone();
        self.inner.network.register(
            SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move {
                    s.reshare_peer(msg.from, &msg.protocol, &msg.payload).await.map_err(|e| e.to_string())
                })
            }),
        );
    }

    /// Fault injection (tests): this node's re-share deals to new member `recipient` carry a wrong
    /// (but signed) share.
    pub fn corrupt_reshare_deals_to(&self, recipient: u32) {
        lock(&self.inner.transition.corrupt_for).insert(recipient);
    }

    fn session_for(&self, session: &[u8]) -> Result<Arc<Session>, ReshareError> {
        lock(&self.inner.transition.session)
            .as_ref()
            .filter(|s| s.params.session.as_slice() == session)
            .cloned()
            .ok_or_else(|| ReshareError::Refused("unknown resharing session".into()))
    }

    /// Answers a message of the `Reshare` peer protocol (the leader calls it for itself too).
    async fn reshare_peer(
        &self,
        from: IdentityPublicKey,
        protocol: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, ReshareError> {
        let who = || from.to_hex()[..16].to_string();
        let bad = |e: prost::DecodeError| ReshareError::Malformed(who(), e.to_string());
        match protocol {
            proto::PREPARE => {
                let p = ResharePrepare::decode(payload).map_err(bad)?;
                let params =
                    ReshareParams::new(p.config.ok_or_else(|| ReshareError::Config("no configuration".into()))?)?;
                if params.leader != from {
                    return Err(ReshareError::Config("proposal not sent by its leader".into()));
                }
                // Old members hand over the group's secret, new ones take a group for good
                // (with strangers holding a threshold of it, perhaps): each only with consent.
                self.check_approval(&params).await?;
                self.accept(params)?;
                Ok(Vec::new())
            }
            proto::GO => {
                let go = ReshareGo::decode(payload).map_err(bad)?;
                let s = self.session_for(&go.session)?;
                if s.params.leader != from || go.dealers.len() > crate::services::dkg::messages::MAX_MEMBERS {
                    return Err(ReshareError::Malformed(who(), "go not from the leader".into()));
                }
                if let Some(r) = &s.recipient {
                    lock(r).set_dealers(&go.dealers)?;
                }
                *lock(&s.dealers) = go.dealers.clone();
                if let Some(store) = self.inner.store.as_ref() {
                    store.save_reshare_go(payload).map_err(|e| ReshareError::Refused(format!("storage: {e}")))?;
                }
                if !s.started.swap(true, Ordering::SeqCst) {
                    let this = self.clone();
                    let watched = s.clone();
                    self.tasks().spawn(async move { this.watch_finish(watched, false).await });
                    let this = self.clone();
                    self.tasks().spawn(async move { this.run_member(s).await });
                }
                Ok(Vec::new())
            }
            proto::DEAL => {
                self.on_deal(&from, Deal::decode(payload).map_err(bad)?)?;
                Ok(Vec::new())
            }
            proto::RESPONSES => {
                self.on_responses(&from, Responses::decode(payload).map_err(bad)?)?;
                Ok(Vec::new())
            }
            proto::FINISH => {
                let f = ReshareFinish::decode(payload).map_err(bad)?;
                let s = self.session_for(&f.session)?;
                if !s.is_participant(&from) {
                    return Err(ReshareError::Malformed(who(), "finish from outside the session".into()));
                }
                let via = if from == s.params.leader {
                    "from the leader".to_string()
                } else {
                    format!("forwarded by {}", who())
                };
                Ok(self.on_finish(&s, f, &from, via).await?.encode_to_vec())
            }
            proto::FETCH => {
                let q = ReshareFetch::decode(payload).map_err(bad)?;
                let s = self.session_for(&q.session)?;
                if !s.is_participant(&from) {
                    return Err(ReshareError::Malformed(who(), "fetch from outside the session".into()));
                }
                let held = lock(&s.finish).as_ref().map(|f| f.encode_to_vec());
                held.ok_or_else(|| ReshareError::Refused("no Finish of this session here".into()))
            }
            other => Err(ReshareError::Malformed(who(), format!("unknown protocol `{other}`"))),
        }
    }

    fn on_deal(&self, from: &IdentityPublicKey, deal: Deal) -> Result<(), ReshareError> {
        let s = self.session_for(&deal.session)?;
        let r = s.recipient.as_ref().ok_or_else(|| ReshareError::Refused("not a new member".into()))?;
        let (dealer, bytes) = (deal.dealer, zeroize::Zeroizing::new(deal.encode_to_vec()));
        lock(r).receive_deal(from, deal)?;
        if let Some(store) = self.inner.store.as_ref() {
            // Kept until the session ends: a restart before the Finish still computes its share.
            store.save_reshare_deal(dealer, &bytes).map_err(|e| ReshareError::Refused(format!("storage: {e}")))?;
        }
        s.notify.notify_waiters();
        Ok(())
    }

    fn on_responses(&self, from: &IdentityPublicKey, r: Responses) -> Result<(), ReshareError> {
        let s = self.session_for(&r.session)?;
        if s.params.members.get(r.from as usize) != Some(from) || s.params.leader != self.inner.me {
            return Err(ReshareError::Malformed(
                from.to_hex()[..16].to_string(),
                "responses not from that new member".into(),
            ));
        }
        lock(&s.responses).entry(r.from).or_insert(r);
        s.notify.notify_waiters();
        Ok(())
    }

    /// Takes part in a resharing (checks this node's role and state) and installs its session.
    fn accept(&self, params: ReshareParams) -> Result<Arc<Session>, ReshareError> {
        let me = self.inner.me;
        let old_index = params.old.index_of(&me);
        let new_index = params.new_index(&me);
        if old_index.is_none() && new_index.is_none() {
            return Err(ReshareError::Refused("this node is in neither the old nor the new group".into()));
        }
        if self.inner.dkg.has_dealt(&params.session) {
            return Err(ReshareError::Refused("this node already dealt in this resharing session".into()));
        }
        let now = unix_now_ms();
        if round_time_ms(&params.old.chain_info(), params.config.transition_round).is_none_or(|t| t <= now) {
            return Err(ReshareError::Refused("the transition round is not in the future".into()));
        }
        if old_index.is_some() {
            let chain = self.chain().ok_or_else(|| ReshareError::Refused("no beacon chain on this node".into()))?;
            if chain.group != params.old {
                return Err(ReshareError::Refused("the old group is not this node's current beacon group".into()));
            }
            if chain.stop_at.load(Ordering::SeqCst) != u64::MAX || lock(&self.inner.transition.next).is_some() {
                return Err(ReshareError::Refused("a transition is already agreed on this node".into()));
            }
            if chain.latest() + 1 >= params.config.transition_round {
                return Err(ReshareError::Refused("the transition round is already due here".into()));
            }
        } else if self.inner.store.as_ref().is_none_or(|s| s.has_group()) {
            return Err(ReshareError::Refused(
                "this node already has a beacon chain (or no storage); reset it first".into(),
            ));
        }
        let mut cur = lock(&self.inner.transition.session);
        if let Some(s) = cur.as_ref() {
            if s.params.session == params.session {
                return Ok(s.clone());
            }
            // A session whose leader never said Go (it failed to gather the members, e.g. one
            // refused) holds nothing yet: a new proposal replaces it rather than wait it out.
            if !s.over() && s.started.load(Ordering::SeqCst) {
                return Err(ReshareError::Refused("a resharing is already running on this node".into()));
            }
        }
        let s = self.new_session(params)?;
        s.log(format!(
            "accepted: old index {:?}, new index {:?}, {} new members, threshold {}, transition round {}",
            old_index,
            new_index,
            s.params.n(),
            s.params.threshold,
            s.params.config.transition_round
        ));
        if let Some(store) = self.inner.store.as_ref() {
            // Durable before the leader hears the answer, so that a restart resumes the session.
            store
                .save_reshare(&s.params.config.encode_to_vec())
                .map_err(|e| ReshareError::Refused(format!("storage: {e}")))?;
        }
        *cur = Some(s.clone());
        Ok(s)
    }

    /// A session of `params` on this node (nothing checked, nothing installed).
    fn new_session(&self, params: ReshareParams) -> Result<Arc<Session>, ReshareError> {
        let me = self.inner.me;
        let old_index = params.old.index_of(&me);
        let recipient = match params.new_index(&me) {
            Some(_) => Some(Mutex::new(Recipient::new(params.clone(), self.inner.ctx.config.identity.clone())?)),
            None => None,
        };
        Ok(Arc::new(Session {
            params,
            old_index,
            recipient,
            dealers: Mutex::new(Vec::new()),
            responses: Mutex::new(BTreeMap::new()),
            finish: Mutex::new(None),
            finish_via: Mutex::new(String::new()),
            done: Mutex::new(None),
            notify: Notify::new(),
            started: AtomicBool::new(false),
            created: Instant::now(),
            log: Mutex::new(Vec::new()),
        }))
    }

    /// Forgets the stored session (it ended on this node).
    fn session_ended(&self) {
        if let Some(Err(e)) = self.inner.store.as_ref().map(|s| s.drop_reshare()) {
            warn!(error = %e, "reshare: could not forget the ended session");
        }
    }

    /// After a restart: resumes the resharing session this node took part in, if its Finish may
    /// still come (its deals back in, asking the others for the Finish at once); else forgets it
    /// (it aborted here: the current group goes on).
    pub(super) fn resume_reshare(&self) {
        let Some(store) = self.inner.store.as_ref() else { return };
        let (config, go, deals) = match store.load_reshare() {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "reshare: stored session not usable");
                return self.session_ended();
            }
        };
        let restore = || -> Result<Arc<Session>, ReshareError> {
            let bad = |e: prost::DecodeError| ReshareError::Malformed("storage".into(), e.to_string());
            let params = ReshareParams::new(ReshareConfig::decode(config.as_slice()).map_err(bad)?)?;
            let s = self.new_session(params)?;
            if let Some(go) = go {
                let go = ReshareGo::decode(go.as_slice()).map_err(bad)?;
                if go.session == s.params.session && go.dealers.len() <= s.params.old.nodes.len() {
                    if let Some(r) = &s.recipient {
                        lock(r).set_dealers(&go.dealers)?;
                    }
                    *lock(&s.dealers) = go.dealers;
                }
            }
            if let Some(r) = &s.recipient {
                for d in &deals {
                    let deal = Deal::decode(d.as_slice()).map_err(bad)?;
                    let Some(dealer) = s.params.old.node(deal.dealer).map(|n| n.public) else { continue };
                    lock(r).receive_deal(&dealer, deal)?;
                }
            }
            Ok(s)
        };
        match restore() {
            Ok(s) if unix_now_ms() < s.finish_cutoff_ms() => {
                s.log(format!("resumed after a restart with {} deals; asking for the Finish", deals.len()));
                s.started.store(true, Ordering::SeqCst);
                *lock(&self.inner.transition.session) = Some(s.clone());
                if s.recipient.is_some() && !lock(&s.dealers).is_empty() {
                    // In case the leader never got them (it keeps the first copy).
                    let (this, s) = (self.clone(), s.clone());
                    self.tasks().spawn(async move { this.answer_leader(&s, Instant::now()).await });
                }
                let this = self.clone();
                self.tasks().spawn(async move { this.watch_finish(s, true).await });
            }
            Ok(s) => {
                s.log("stored session too late to resume: the current group goes on".into());
                self.session_ended();
            }
            Err(e) => {
                warn!(error = %e, "reshare: stored session not usable");
                self.session_ended();
            }
        }
    }

    /// A participant after `Go`: deals (old member), then collects its deals and answers the
    /// leader (new member).
    async fn run_member(&self, s: Arc<Session>) {
        let start = Instant::now();
        let dealers = lock(&s.dealers).clone();
        if let Some(old) = s.old_index.filter(|i| dealers.contains(i)) {
            if let Err(e) = self.deal(&s, old).await {
                s.log(format!("could not deal: {e}"));
            }
        }
        self.answer_leader(&s, start + s.params.phase).await;
    }

    /// A new member: waits for its deals until `deals_until`, then sends the leader its signed
    /// responses.
    async fn answer_leader(&self, s: &Arc<Session>, deals_until: Instant) {
        let Some(r) = &s.recipient else { return };
        let dealers = lock(&s.dealers).clone();
        s.wait_until(deals_until, |s| s.recipient.as_ref().is_some_and(|r| lock(r).have_all_deals())).await;
        let (responses, complaints) = {
            let r = lock(r);
            (r.make_responses(), r.complaints())
        };
        s.log(format!(
            "{} of {} deals valid{}",
            dealers.len() - complaints.len(),
            dealers.len(),
            if complaints.is_empty() { String::new() } else { format!("; complaints: {complaints:?}") }
        ));
        let leader = s.params.leader;
        if leader == self.inner.me {
            if let Err(e) = self.on_responses(&leader, responses) {
                s.log(format!("own responses refused: {e}"));
            }
            return;
        }
        let Some(si) = s.params.old.index_of(&leader).and_then(|i| s.params.old.node(i)).map(|n| n.server_identity())
        else {
            return;
        };
        let body = responses.encode_to_vec();
        for _ in 0..3 {
            if lock(&s.done).is_some() {
                break;
            }
            match self
                .inner
                .network
                .request(&si, SERVICE, proto::RESPONSES, &s.params.session, body.clone(), s.params.phase)
                .await
            {
                Ok(_) => break,
                Err(e) => warn!(error = %e, "reshare: responses not delivered to the leader"),
            }
        }
    }

    /// Deals this node's re-shares (recorded durably first).
    async fn deal(&self, s: &Arc<Session>, old_index: u32) -> Result<(), ReshareError> {
        let chain = self.chain().ok_or_else(|| ReshareError::Refused("no beacon chain".into()))?;
        if chain.group != s.params.old || chain.share.index != old_index {
            return Err(ReshareError::Refused("this node's share is not of the old group".into()));
        }
        self.inner.dkg.record_dealt(&s.params.session).await?;
        let corrupt = lock(&self.inner.transition.corrupt_for).clone();
        let deals =
            make_deals(&s.params, &self.inner.ctx.config.identity.clone(), old_index, &chain.share.scalar, &corrupt);
        s.log(format!("dealing re-shares to {} new members", deals.len()));
        let me = self.inner.me;
        for deal in deals {
            let Some(node) = s.params.new_member(deal.recipient) else { continue };
            let body = deal.encode_to_vec();
            if node.public == me {
                if let Err(e) = self.on_deal(&me, deal) {
                    s.log(format!("own deal refused: {e}"));
                }
                continue;
            }
            let (net, sid, phase) = (self.inner.network.clone(), s.params.session, s.params.phase);
            self.tasks().spawn(async move {
                if let Err(e) = net.request(&node.server_identity(), SERVICE, proto::DEAL, &sid, body, phase).await {
                    warn!(to = node.index, error = %e, "reshare: deal not delivered");
                }
            });
        }
        Ok(())
    }

    /// A `Finish` (from the leader, forwarded, or fetched) on a participant: checked (a forged,
    /// altered or foreign one is refused and changes nothing), taken if none is yet and it is in
    /// time (else the session aborts), forwarded to every other participant but `from` (not by the
    /// leader, which sends it itself), then applied. Idempotent: a second copy gets the outcome.
    async fn on_finish(
        &self,
        s: &Arc<Session>,
        f: ReshareFinish,
        from: &IdentityPublicKey,
        via: String,
    ) -> Result<ReshareDone, ReshareError> {
        if let Some(d) = lock(&s.done).clone() {
            return Ok(d);
        }
        let q = check_finish(&s.params, &f)?;
        let taken = {
            let mut held = lock(&s.finish);
            let done = lock(&s.done).clone();
            if let Some(d) = done {
                return Ok(d);
            }
            if held.is_none() {
                if unix_now_ms() > s.finish_cutoff_ms() {
                    return Ok(self.abort(s, &mut lock(&s.done), "the Finish came too late"));
                }
                *held = Some(f.clone());
                *lock(&s.finish_via) = via.clone();
                true
            } else {
                false
            }
        };
        if !taken {
            // Another copy is being applied: its outcome.
            s.wait_until(Instant::now() + s.params.phase, |s| lock(&s.done).is_some()).await;
            return lock(&s.done).clone().ok_or_else(|| ReshareError::Refused("finish being applied".into()));
        }
        s.log(format!("valid Finish {via}"));
        if *from != s.params.leader || s.params.leader != self.inner.me {
            self.forward_finish(s, &f, from);
        }
        Ok(self.apply_finish(s, q))
    }

    /// Sends the Finish to every other participant but `from`, each in the background.
    fn forward_finish(&self, s: &Arc<Session>, f: &ReshareFinish, from: &IdentityPublicKey) {
        let only = lock(&self.inner.transition.forward_only_to).clone();
        let body = f.encode_to_vec();
        let timeout = s.params.phase;
        for si in s.participants(&self.inner.me) {
            if si.public == *from || only.as_ref().is_some_and(|o| !o.contains(&si.public)) {
                continue;
            }
            let (net, body, sid) = (self.inner.network.clone(), body.clone(), s.params.session);
            self.tasks().spawn(async move {
                if let Err(e) = net.request_fail_fast(&si, SERVICE, proto::FINISH, &sid, body, timeout).await {
                    warn!(to = %si.address, error = %e, "reshare: finish not forwarded");
                }
            });
        }
    }

    /// Ends a session that has no Finish: this node keeps its old group. `done` is the session's
    /// outcome slot (locked, after `finish`).
    fn abort(&self, s: &Session, done: &mut Option<ReshareDone>, why: &str) -> ReshareDone {
        if let Some(d) = done.as_ref() {
            return d.clone();
        }
        let t = s.params.config.transition_round;
        let error = format!(
            "aborted: {why} (Finish needed before round {t} minus {} ms)",
            finish_margin_ms(s.params.old.period)
        );
        s.log(format!("{error}; the current group goes on signing"));
        let d = ReshareDone { session: s.params.session.to_vec(), error: error.clone(), ..Default::default() };
        *done = Some(d.clone());
        self.session_ended();
        s.notify.notify_waiters();
        self.inner.ctx.events.emit(crate::events::NodeEvent::BeaconTransitionAborted {
            session: s.params.session,
            round: t,
            reason: error,
        });
        d
    }

    /// On a participant after `Go`: waits for the Finish; from two phases after `Go` (or twice
    /// the margin before `T`, whichever is first; at once with `ask_now`) asks the other participants for theirs, every
    /// quarter margin, until the cutoff; then aborts if it still has none.
    async fn watch_finish(&self, s: Arc<Session>, ask_now: bool) {
        let margin = finish_margin_ms(s.params.old.period);
        let cutoff = instant_at(s.finish_cutoff_ms());
        let ask_from = if ask_now {
            Instant::now()
        } else {
            (Instant::now() + 2 * s.params.phase).min(instant_at(s.t_ms() - 2 * margin))
        };
        let has_done = |s: &Session| lock(&s.done).is_some();
        if s.wait_until(ask_from, has_done).await {
            return;
        }
        let every = Duration::from_millis((margin / 4).max(50) as u64);
        let me = self.inner.me;
        let others = s.participants(&me);
        let body = ReshareFetch { session: s.params.session.to_vec() }.encode_to_vec();
        while Instant::now() < cutoff {
            if lock(&s.finish).is_none() {
                let asks = others.iter().map(|si| {
                    let (net, body, sid, si) = (self.inner.network.clone(), body.clone(), s.params.session, si.clone());
                    async move {
                        let r = net.request_fail_fast(&si, SERVICE, proto::FETCH, &sid, body, every).await;
                        (si, r)
                    }
                });
                for (si, answer) in futures_util::future::join_all(asks).await {
                    let Ok(bytes) = answer else { continue };
                    let Ok(f) = ReshareFinish::decode(bytes.as_slice()) else {
                        warn!(from = %si.address, "reshare: undecodable Finish fetched");
                        continue;
                    };
                    match self.on_finish(&s, f, &si.public, format!("fetched from {}", si.address)).await {
                        Ok(_) => break,
                        Err(e) => warn!(from = %si.address, error = %e, "reshare: fetched Finish refused"),
                    }
                }
            }
            if s.wait_until((Instant::now() + every).min(cutoff), has_done).await {
                return;
            }
        }
        let held = lock(&s.finish);
        if held.is_none() {
            self.abort(&s, &mut lock(&s.done), "no Finish came");
        }
    }

    /// Applies a checked Finish (`q`: its qualified dealers): the new share and group staged
    /// (new member) or the retirement recorded (old member left out).
    fn apply_finish(&self, s: &Arc<Session>, q: Vec<u32>) -> ReshareDone {
        let mut done = ReshareDone { session: s.params.session.to_vec(), ..Default::default() };
        match self.finish_inner(s, q) {
            Ok((q, hash)) => {
                self.approval_used(&s.params.members);
                done.qualified = q;
                done.group_hash = hash;
            }
            Err(e) => {
                s.log(format!("failed: {e}"));
                done.error = e.to_string();
            }
        }
        self.session_ended();
        *lock(&s.done) = Some(done.clone());
        s.notify.notify_waiters();
        done
    }

    fn finish_inner(&self, s: &Arc<Session>, q: Vec<u32>) -> Result<(Vec<u32>, Vec<u8>), ReshareError> {
        let p = &s.params;
        if q.len() < p.old_threshold() {
            return Err(ReshareError::NotEnoughQualified { have: q.len(), need: p.old_threshold() });
        }
        let store = self.inner.store.as_ref().ok_or_else(|| ReshareError::Refused("no storage".into()))?;
        let storage = |e: super::store::StoreError| ReshareError::Refused(format!("storage: {e}"));
        let t = p.config.transition_round;
        let Some(r) = &s.recipient else {
            // An old member left out: it signs no round from T on.
            store.set_retire(t).map_err(storage)?;
            if let Some(chain) = self.chain() {
                chain.stop_at.store(t, Ordering::SeqCst);
                self.retire_if_done(&chain, chain.latest());
            }
            s.log(format!("left out of the new group: signs no round from {t} on"));
            self.inner.ctx.events.emit(crate::events::NodeEvent::BeaconTransitionStaged {
                session: p.session,
                round: t,
                members: p.n() as u32,
                in_new_group: false,
            });
            return Ok((q, Vec::new()));
        };
        let result = lock(r).finish(&q)?;
        let share = Share { index: result.index, scalar: result.share, session: result.group.session };
        let hash = result.group.content_hash().to_vec();
        match self.chain().filter(|c| s.old_index.is_some() && c.group == p.old) {
            Some(chain) => {
                store.stage_next(&result.group, &share).map_err(storage)?;
                self.stage_next(&chain, result.group.clone(), share);
            }
            None => {
                store.install(&result.group, &share).map_err(storage)?;
                *lock(&self.inner.transition.sources) = p.old.nodes.iter().map(|n| n.server_identity()).collect();
                self.inner.network.admit(p.old.nodes.iter().chain(&result.group.nodes).map(|n| n.public));
                self.start_chain(result.group.clone(), share, None).map_err(ReshareError::Refused)?;
            }
        }
        s.log(format!(
            "new share {} of {} (threshold {}), dealers {:?}; producing from round {t}",
            result.index,
            p.n(),
            p.threshold,
            result.group.qualified
        ));
        self.inner.ctx.events.emit(crate::events::NodeEvent::BeaconTransitionStaged {
            session: p.session,
            round: t,
            members: p.n() as u32,
            in_new_group: true,
        });
        Ok((q, hash))
    }

    /// The operator's resharing of this node's beacon group to the roster given (the admin
    /// channel's `reshare`, never the client port): approves it here (see `approval`) and leads it.
    /// The other old members take part only where their operators approved it too.
    pub async fn reshare(&self, req: ReshareRequest) -> Result<ReshareResponse, ServiceError> {
        if req.roster_toml.len() > super::messages::MAX_ROSTER_TOML {
            return Err(ServiceError::BadRequest("roster too large".into()));
        }
        let roster = Roster::from_toml_str(std::path::Path::new("roster_toml"), &req.roster_toml)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        self.approve_reshare(&roster.servers, req.threshold)?;
        self.reshare_to(&roster.servers, req.threshold, req.phase_timeout_ms, req.transition_round).await
    }

    /// Leads a resharing of this node's beacon group to `members` (see the module doc).
    pub async fn reshare_to(
        &self,
        members: &[ServerIdentity],
        threshold: u32,
        phase_ms: u64,
        transition_round: u64,
    ) -> Result<ReshareResponse, ServiceError> {
        let chain = self.chain().ok_or_else(|| ServiceError::Refused("no beacon chain on this node".into()))?;
        let old = chain.group.clone();
        if old.index_of(&self.inner.me).is_none() {
            return Err(ServiceError::Refused("this node is not a member of the beacon group".into()));
        }
        let n = members.len();
        let threshold = if threshold == 0 { minimum_threshold(n) as u32 } else { threshold };
        let phase_ms = if phase_ms == 0 { DEFAULT_PHASE_MS } else { phase_ms };
        if phase_ms > super::client::MAX_PHASE_MS {
            return Err(ServiceError::BadRequest(format!("phase_timeout_ms above {}", super::client::MAX_PHASE_MS)));
        }
        let info = &chain.info;
        let margin_ms = 2 * phase_ms as i64 + 2 * 1000 * i64::from(info.period);
        // The first round whose time is at least `margin_ms` away.
        let auto = info.latest_round((unix_now_ms() + margin_ms + 999).div_euclid(1000) - 1) + 1;
        let t = if transition_round == 0 { auto.max(chain.latest() + 2) } else { transition_round };
        let config = ReshareConfig {
            members: members.iter().map(member_of).collect(),
            old_members: old.nodes.iter().map(|n| member_of(&n.server_identity())).collect(),
            old_group_toml: old.to_toml(),
            threshold,
            transition_round: t,
            phase_timeout_ms: phase_ms,
            leader: self.inner.me.as_bytes().to_vec(),
            nonce: rand::random::<[u8; 16]>().to_vec(),
        };
        let params = ReshareParams::new(config).map_err(refused)?;
        let s = self.accept(params).map_err(refused)?;
        let result = self.lead(&s).await;
        if let Err(e) = &result {
            s.log(format!("failed: {e}"));
            self.session_ended();
            let mut d = lock(&s.done);
            if d.is_none() {
                *d = Some(ReshareDone {
                    session: s.params.session.to_vec(),
                    error: e.to_string(),
                    ..Default::default()
                });
            }
        }
        let mut resp = result.map_err(refused)?;
        resp.log = lock(&s.log).clone();
        Ok(resp)
    }

    async fn lead(&self, s: &Arc<Session>) -> Result<ReshareResponse, ReshareError> {
        let p = &s.params;
        let me = self.inner.me;
        s.log(format!(
            "leading a resharing of {} members (threshold {}) to {} members (threshold {}), transition round {}",
            p.old.nodes.len(),
            p.old.threshold,
            p.n(),
            p.threshold,
            p.config.transition_round
        ));
        // Everyone involved, once: the old group's nodes, then the new members.
        let everyone = s.participants(&me);
        let prepare = ResharePrepare { config: Some(p.config.clone()) }.encode_to_vec();
        let timeout = p.phase.min(PREPARE_TIMEOUT_MAX);
        let asks = everyone.iter().map(|si| {
            let (net, body, sid, si) = (self.inner.network.clone(), prepare.clone(), p.session, si.clone());
            async move {
                let r = net.request(&si, SERVICE, proto::PREPARE, &sid, body, timeout).await;
                (si, r)
            }
        });
        let mut accepted: BTreeSet<IdentityPublicKey> = BTreeSet::from([me]);
        for (si, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(_) => {
                    accepted.insert(si.public);
                }
                Err(e) => s.log(format!("{} does not take part: {e}", si.address)),
            }
        }
        if let Some(i) = (0..p.n()).find(|i| !accepted.contains(&p.members[*i])) {
            return Err(ReshareError::Refused(format!("new member {i} ({}) did not accept", p.addresses[i])));
        }
        let dealers: Vec<u32> = p.old.nodes.iter().filter(|n| accepted.contains(&n.public)).map(|n| n.index).collect();
        if dealers.len() < p.old_threshold() {
            return Err(ReshareError::NotEnoughDealers { have: dealers.len(), need: p.old_threshold() });
        }
        s.log(format!("{} old members deal: {dealers:?}", dealers.len()));
        let go = ReshareGo { session: p.session.to_vec(), dealers: dealers.clone() }.encode_to_vec();
        let takers: Vec<ServerIdentity> = everyone.iter().filter(|si| accepted.contains(&si.public)).cloned().collect();
        let gos = takers.iter().map(|si| {
            let (net, body, sid, si) = (self.inner.network.clone(), go.clone(), p.session, si.clone());
            async move { (si.address.to_string(), net.request(&si, SERVICE, proto::GO, &sid, body, timeout).await) }
        });
        let go_start = Instant::now();
        let (_, local) = tokio::join!(futures_util::future::join_all(gos), self.reshare_peer(me, proto::GO, &go));
        local?;
        let n = p.n();
        let t = p.config.transition_round;
        // The leader sends the Finish only until twice the members' margin before T.
        let send_until_ms = s.t_ms() - 2 * finish_margin_ms(p.old.period);
        let until = (go_start + 2 * p.phase).min(instant_at(send_until_ms));
        s.wait_until(until, |s| lock(&s.responses).len() >= n).await;
        let responses: Vec<Responses> = lock(&s.responses).values().cloned().collect();
        let q = qualified(p, &dealers, &responses)?;
        s.log(format!("responses of {} new members; qualified dealers {q:?}", responses.len()));
        for r in &responses {
            let against: Vec<String> = r
                .entries
                .iter()
                .filter(|e| e.status != crate::services::dkg::messages::status::APPROVE)
                .map(|e| format!("{} ({})", e.dealer, if e.status == 2 { "no deal" } else { "bad deal" }))
                .collect();
            if !against.is_empty() {
                s.log(format!("new member {} complains against dealers {}", r.from, against.join(", ")));
            }
        }
        if q.len() < p.old_threshold() {
            return Err(ReshareError::NotEnoughQualified { have: q.len(), need: p.old_threshold() });
        }
        if unix_now_ms() > send_until_ms {
            return Err(ReshareError::Refused(format!("too late: round {t} is (almost) due")));
        }
        let signed = sign_finish(p, &self.inner.ctx.config.identity, &dealers, responses);
        let finish = signed.encode_to_vec();
        let finish_only_to = lock(&self.inner.transition.finish_only_to).clone();
        if let Some(only) = finish_only_to {
            // Fault injection: the leader sends the Finish to these members, then "crashes".
            for si in takers.iter().filter(|si| only.contains(&si.public)) {
                let r =
                    self.inner.network.request(si, SERVICE, proto::FINISH, &p.session, finish.clone(), timeout).await;
                s.log(format!("fault: Finish sent to {} only ({:?})", si.address, r.map(|_| ())));
            }
            let mut done = lock(&s.done);
            *done = Some(ReshareDone {
                session: p.session.to_vec(),
                error: "fault: the leader stopped".into(),
                ..Default::default()
            });
            return Err(ReshareError::Refused("fault: the leader stopped after a partial Finish".into()));
        }
        let fins = takers.iter().map(|si| {
            let (net, body, sid, si) = (self.inner.network.clone(), finish.clone(), p.session, si.clone());
            async move { (si.public, net.request(&si, SERVICE, proto::FINISH, &sid, body, timeout).await) }
        });
        let (answers, local) = tokio::join!(
            futures_util::future::join_all(fins),
            self.on_finish(s, signed, &me, "from the leader (this node)".into())
        );
        let mine = local?;
        if !mine.error.is_empty() {
            return Err(ReshareError::Refused(mine.error));
        }
        let mut hashes: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        if !mine.group_hash.is_empty() {
            *hashes.entry(mine.group_hash.clone()).or_default() += 1;
        }
        for (key, a) in answers {
            match a
                .map_err(|e| e.to_string())
                .and_then(|b| ReshareDone::decode(b.as_slice()).map_err(|e| e.to_string()))
            {
                Ok(d) if d.error.is_empty() => {
                    if !d.group_hash.is_empty() {
                        *hashes.entry(d.group_hash).or_default() += 1;
                    }
                }
                Ok(d) => s.log(format!("{}: {}", &key.to_hex()[..16], d.error)),
                Err(e) => s.log(format!("{}: no result: {e}", &key.to_hex()[..16])),
            }
        }
        let (group_hash, confirmed) =
            hashes.iter().max_by_key(|(_, c)| **c).map(|(h, c)| (h.clone(), *c)).unwrap_or_default();
        // The new group file is known here when the leader is a new member too.
        let group = self.next_or_current_group(&group_hash);
        if group.is_none() {
            s.log("the leader is not in the new group: no group file here".into());
        }
        s.log(format!("{confirmed} of {n} new members computed the same group; transition at round {t}"));
        Ok(ReshareResponse {
            group_toml: group.map(|g| g.to_toml()).unwrap_or_default(),
            transition_round: t,
            chain_hash: p.old.chain_info().hash_hex(),
            qualified: q[..p.old_threshold()].to_vec(),
            confirmed,
            participants: accepted.len() as u32,
            log: Vec::new(),
        })
    }

    /// The staged (or, once switched, current) group whose content hash is `hash`.
    fn next_or_current_group(&self, hash: &[u8]) -> Option<crate::services::dkg::Group> {
        if let Some(n) = lock(&self.inner.transition.next).as_ref() {
            if n.group.content_hash().as_slice() == hash {
                return Some(n.group.clone());
            }
        }
        self.chain().map(|c| c.group.clone()).filter(|g| g.content_hash().as_slice() == hash)
    }
}

impl BeaconService {
    /// The membership service appended a roster change on this node: if this node runs the beacon
    /// group, it reshares the group to the new roster (in the background, after any transition
    /// already agreed, retrying for a while; a later change replaces an earlier one).
    pub fn reshare_on_roster_change(&self, roster: Roster) {
        let Some(chain) = self.chain() else { return };
        if chain.group.index_of(&self.inner.me).is_none() {
            return;
        }
        let period_ms = 1000 * u64::from(chain.info.period);
        let phase_ms = period_ms.clamp(1000, DEFAULT_PHASE_MS);
        let weak = Arc::downgrade(&self.inner);
        *lock(&self.inner.transition.wanted) = Some(roster.clone());
        self.tasks().spawn(async move {
            for attempt in 0..60u32 {
                let Some(inner) = weak.upgrade() else { return };
                let this = BeaconService { inner };
                if lock(&this.inner.transition.wanted).as_ref().map(|r| r.id()) != Some(roster.id()) {
                    return;
                }
                let keys: Vec<_> = roster.servers.iter().map(|s| s.public).collect();
                let Some(chain) = this.chain() else { return };
                let current: Vec<_> = chain.group.nodes.iter().map(|n| n.public).collect();
                let pending = lock(&this.inner.transition.next).is_some();
                if current == keys && !pending {
                    return;
                }
                if chain.group.index_of(&this.inner.me).is_none() {
                    return;
                }
                if !pending {
                    match this.reshare_to(&roster.servers, 0, phase_ms, 0).await {
                        Ok(r) => {
                            info!(
                                round = r.transition_round,
                                members = keys.len(),
                                "beacon: resharing after a roster change"
                            );
                            return;
                        }
                        Err(e) => warn!(attempt, error = %e, "beacon: resharing after a roster change failed"),
                    }
                }
                drop(this);
                tokio::time::sleep(Duration::from_millis(period_ms.max(500))).await;
            }
        });
    }
}
