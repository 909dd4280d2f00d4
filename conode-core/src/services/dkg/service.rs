//! The DKG service on a node: the `Dkg` peer protocol (prepare, go, deal, responses,
//! justification, done), one session at a time, phases driven by deadlines that end early once
//! every expected message is in, echo of responses and justifications so every honest node sees
//! the same complaints, and a hand-over of the result (group + share) to whoever registered a
//! completion hook (the beacon service), before `Done` goes to the leader.
//!
//! The leader is the node a client asked to start the DKG (`/Beacon/Init`): it proposes the
//! configuration, keeps the members that accept, tells them to go, and collects their results.

use super::group::{key_group, Group, GroupNode};
use super::messages::{self as m, protocol as proto};
use super::protocol::{Disqualification, Dkg, DkgError, Params};
use crate::config::ServerIdentity;
use crate::crypto::threshold::Scalar;
use crate::crypto::IdentityKeyPair;
use crate::network::{Network, PeerMessage};
use crate::services::{stop_service, Service, ServiceContext, StartError, Tasks};
use crate::storage::ServiceTree;
use crate::verify::beacon::Scheme;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Name of the peer service.
pub const SERVICE: &str = "Dkg";
/// Storage tree of DKG transcripts.
pub const TREE: &str = "dkg";
/// Longest wait for a member to accept the proposal.
const PREPARE_TIMEOUT_MAX: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn short(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(6)])
}

/// What a finished DKG hands over: the group and this node's secret share.
pub struct DkgOutput {
    pub group: Group,
    pub index: u32,
    pub share: Scalar,
    pub disqualified: Vec<Disqualification>,
}

impl fmt::Debug for DkgOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkgOutput")
            .field("index", &self.index)
            .field("disqualified", &self.disqualified)
            .finish_non_exhaustive()
    }
}

/// Called (synchronously, before `Done` is sent) when a DKG succeeded on this node; an error
/// makes the DKG fail here.
pub type CompletionHook = Arc<dyn Fn(&DkgOutput) -> Result<(), String> + Send + Sync>;
/// Asked before taking part in a DKG (e.g. "no chain yet").
pub type Guard = Arc<dyn Fn() -> Result<(), DkgError> + Send + Sync>;

/// Progress of the current (or last) DKG on this node.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DkgStatus {
    pub session: String,
    pub phase: String,
    pub leader: bool,
    pub elapsed_ms: u64,
    pub finished: bool,
    pub error: Option<String>,
    pub log: Vec<String>,
}

/// A member's answer to the leader's `Done` collection.
#[derive(Clone, Debug)]
pub struct Confirmation {
    pub index: u32,
    /// Same group hash as the leader's.
    pub agrees: bool,
    pub detail: String,
}

/// What the leader reports to the client.
#[derive(Clone, Debug)]
pub struct DkgReport {
    pub group: Group,
    pub disqualified: Vec<Disqualification>,
    /// Members that did not accept the proposal, with the reason.
    pub absent: Vec<(u32, String)>,
    pub confirmations: Vec<Confirmation>,
    pub log: Vec<String>,
}

struct Slot {
    params: Params,
    me: u32,
    leader: bool,
    dkg: Mutex<Dkg>,
    notify: Notify,
    started: AtomicBool,
    finished: AtomicBool,
    created: Instant,
    status: Mutex<DkgStatus>,
    dones: Mutex<BTreeMap<u32, m::Done>>,
}

impl Slot {
    fn log(&self, phase: Option<&str>, line: String) {
        info!(session = %short(&self.params.session), "DKG: {line}");
        let mut s = lock(&self.status);
        if let Some(p) = phase {
            s.phase = p.to_string();
        }
        let ms = self.created.elapsed().as_millis() as u64;
        s.elapsed_ms = ms;
        s.log.push(format!("[{ms:>6} ms] {line}"));
    }

    fn server_identity(&self, i: u32) -> Option<ServerIdentity> {
        let p = &self.params;
        Some(ServerIdentity {
            address: p.addresses.get(i as usize)?.clone(),
            public: *p.members.get(i as usize)?,
            description: p.config.members.get(i as usize).map(|m| m.description.clone()).unwrap_or_default(),
            url: None,
            services: BTreeMap::new(),
        })
    }

    /// Waits until `cond` holds or `deadline`; returns whether it holds.
    async fn wait_until(&self, deadline: Instant, cond: impl Fn(&Dkg) -> bool) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&lock(&self.dkg)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}

struct Inner {
    identity: IdentityKeyPair,
    network: Network,
    /// The context this service started with (its own child set of tasks).
    ctx: ServiceContext,
    tree: ServiceTree,
    current: Mutex<Option<Arc<Slot>>>,
    hooks: RwLock<Vec<CompletionHook>>,
    guard: RwLock<Option<Guard>>,
    corrupt_for: Mutex<BTreeSet<u32>>,
}

/// Handle on a node's DKG service (cheap to clone).
#[derive(Clone)]
pub struct DkgService {
    inner: Arc<Inner>,
}

impl Service for DkgService {
    const NAME: &'static str = SERVICE;
    type Deps = ();

    /// Opens the transcript tree and registers the `Dkg` peer protocol.
    fn start(ctx: &ServiceContext, _: ()) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let tree = ctx.storage.tree(TREE).map_err(|e| StartError { service: SERVICE, reason: e.to_string() })?;
        let svc = DkgService {
            inner: Arc::new(Inner {
                identity: ctx.config.identity.clone(),
                network: ctx.network.clone(),
                ctx: ctx.clone(),
                tree,
                current: Mutex::new(None),
                hooks: RwLock::new(Vec::new()),
                guard: RwLock::new(None),
                corrupt_for: Mutex::new(BTreeSet::new()),
            }),
        };
        let s = svc.clone();
        ctx.network.register(
            SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move { s.handle(msg).await.map_err(|e| e.to_string()) })
            }),
        );
        Ok(svc)
    }

    async fn stop(&self) {
        stop_service(&self.inner.ctx, SERVICE).await;
    }
}

impl DkgService {
    fn tasks(&self) -> &Tasks {
        &self.inner.ctx.tasks
    }

    /// Adds a hook run when a DKG succeeds on this node.
    pub fn on_complete(&self, hook: CompletionHook) {
        self.inner.hooks.write().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    /// Sets the check made before taking part in a DKG.
    pub fn set_guard(&self, guard: Guard) {
        *self.inner.guard.write().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    }

    /// Fault injection (tests): this node's deals to member `recipient` carry a wrong share,
    /// signed as usual, in every DKG started after this call.
    pub fn corrupt_deals_to(&self, recipient: u32) {
        lock(&self.inner.corrupt_for).insert(recipient);
    }

    /// Progress of the current or last DKG.
    pub fn status(&self) -> Option<DkgStatus> {
        lock(&self.inner.current).as_ref().map(|s| {
            let mut st = lock(&s.status).clone();
            if !st.finished {
                st.elapsed_ms = s.created.elapsed().as_millis() as u64;
            }
            st
        })
    }

    fn check_guard(&self) -> Result<(), DkgError> {
        let g = self.inner.guard.read().unwrap_or_else(|p| p.into_inner()).clone();
        match g {
            Some(g) => g(),
            None => Ok(()),
        }
    }

    /// Installs a new session unless one is running.
    fn new_slot(&self, params: Params, leader: bool) -> Result<Arc<Slot>, DkgError> {
        self.check_guard()?;
        let mut cur = lock(&self.inner.current);
        if let Some(s) = cur.as_ref() {
            let stale =
                !s.started.load(Ordering::SeqCst) && s.created.elapsed() > 2 * s.params.phase + PREPARE_TIMEOUT_MAX;
            if !s.finished.load(Ordering::SeqCst) && !stale {
                return Err(DkgError::Busy);
            }
        }
        let mut dkg = Dkg::new(params.clone(), self.inner.identity.clone())?;
        for r in lock(&self.inner.corrupt_for).iter() {
            dkg.corrupt_deals_to(*r);
        }
        let slot = Arc::new(Slot {
            me: dkg.me(),
            params,
            leader,
            dkg: Mutex::new(dkg),
            notify: Notify::new(),
            started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            created: Instant::now(),
            status: Mutex::new(DkgStatus { leader, ..Default::default() }),
            dones: Mutex::new(BTreeMap::new()),
        });
        lock(&slot.status).session = hex::encode(slot.params.session);
        *cur = Some(slot.clone());
        Ok(slot)
    }

    fn slot_for(&self, session: &[u8]) -> Result<Arc<Slot>, DkgError> {
        lock(&self.inner.current)
            .as_ref()
            .filter(|s| s.params.session.as_slice() == session && !s.finished.load(Ordering::SeqCst))
            .cloned()
            .ok_or(DkgError::UnknownSession)
    }

    async fn handle(&self, msg: PeerMessage) -> Result<Vec<u8>, DkgError> {
        let from = msg.from;
        let bad = |e: prost::DecodeError| DkgError::Malformed(from.to_hex()[..16].to_string(), e.to_string());
        let ack = m::Ack {}.encode_to_vec();
        match msg.protocol.as_str() {
            proto::PREPARE => {
                let p = m::Prepare::decode(msg.payload.as_slice()).map_err(bad)?;
                let config = p.config.ok_or_else(|| DkgError::Config("no configuration".into()))?;
                let params = Params::new(config, scheme_key_group)?;
                if params.members.get(params.config.leader as usize) != Some(&from) {
                    return Err(DkgError::Config("proposal not sent by its leader".into()));
                }
                if self.slot_for(&params.session).is_ok() {
                    return Ok(ack);
                }
                let slot = self.new_slot(params, false)?;
                slot.log(
                    Some("prepare"),
                    format!(
                        "accepted the proposal of member {} ({} members, threshold {}, {})",
                        slot.params.config.leader,
                        slot.params.n(),
                        slot.params.threshold,
                        slot.params.config.scheme
                    ),
                );
                // Forget the session if the leader never says go.
                let weak = Arc::downgrade(&slot);
                let wait = 2 * slot.params.phase + PREPARE_TIMEOUT_MAX;
                self.tasks().spawn(async move {
                    tokio::time::sleep(wait).await;
                    if let Some(s) = weak.upgrade() {
                        if !s.started.load(Ordering::SeqCst) && !s.finished.swap(true, Ordering::SeqCst) {
                            s.log(Some("failed"), "the leader never started the DKG; session dropped".into());
                            lock(&s.status).error = Some("leader never started".into());
                            lock(&s.status).finished = true;
                        }
                    }
                });
                Ok(ack)
            }
            proto::GO => {
                let go = m::Go::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&go.session)?;
                if slot.params.members.get(slot.params.config.leader as usize) != Some(&from) {
                    return Err(DkgError::Config("go not sent by the leader".into()));
                }
                if go.participants.len() > m::MAX_MEMBERS {
                    return Err(DkgError::Malformed("leader".into(), "participants".into()));
                }
                lock(&slot.dkg).set_participants(&go.participants)?;
                if !slot.started.swap(true, Ordering::SeqCst) {
                    let (net, weak, tasks) =
                        (self.inner.network.clone(), Arc::downgrade(&self.inner), self.tasks().clone());
                    self.tasks().spawn(async move {
                        let _ = drive(slot, net, tasks, weak).await;
                    });
                }
                Ok(ack)
            }
            proto::DEAL => {
                let deal = m::Deal::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&deal.session)?;
                lock(&slot.dkg).receive_deal(&from, deal)?;
                slot.notify.notify_waiters();
                Ok(ack)
            }
            proto::RESPONSES => {
                let r = m::Responses::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&r.session)?;
                let origin = r.from;
                let new = lock(&slot.dkg).receive_responses(r)?;
                slot.notify.notify_waiters();
                if new {
                    echo(&slot, &self.inner.network, self.tasks(), proto::RESPONSES, msg.payload, origin, &from);
                }
                Ok(ack)
            }
            proto::JUSTIFICATION => {
                let j = m::Justification::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&j.session)?;
                let origin = j.dealer;
                let new = lock(&slot.dkg).receive_justification(j)?;
                slot.notify.notify_waiters();
                if new {
                    echo(&slot, &self.inner.network, self.tasks(), proto::JUSTIFICATION, msg.payload, origin, &from);
                }
                Ok(ack)
            }
            proto::DONE => {
                let d = m::Done::decode(msg.payload.as_slice()).map_err(bad)?;
                // Done may arrive after the leader's own session finished: look it up directly.
                let slot = lock(&self.inner.current)
                    .as_ref()
                    .filter(|s| s.params.session.as_slice() == d.session.as_slice() && s.leader)
                    .cloned()
                    .ok_or(DkgError::UnknownSession)?;
                if slot.params.members.get(d.from as usize) != Some(&from)
                    || d.group_hash.len() > 64
                    || d.error.len() > 1024
                {
                    return Err(DkgError::Malformed(from.to_hex()[..16].to_string(), "done".into()));
                }
                lock(&slot.dones).insert(d.from, d);
                slot.notify.notify_waiters();
                Ok(ack)
            }
            other => Err(DkgError::Malformed(from.to_hex()[..16].to_string(), format!("unknown protocol `{other}`"))),
        }
    }

    /// Runs a DKG as its leader: proposes `config` to its members, keeps those that accept,
    /// runs the phases and waits for the others' results.
    pub async fn run_leader(&self, mut config: m::DkgConfig) -> Result<DkgReport, DkgError> {
        let me = config
            .members
            .iter()
            .position(|mm| mm.public.as_slice() == self.inner.identity.public().as_bytes())
            .ok_or(DkgError::NotMember)? as u32;
        config.leader = me;
        if config.nonce.is_empty() {
            config.nonce = rand::random::<[u8; 16]>().to_vec();
        }
        let params = Params::new(config, scheme_key_group)?;
        let slot = self.new_slot(params, true)?;
        let p = &slot.params;
        slot.log(
            Some("prepare"),
            format!(
                "leading a DKG of {} members, threshold {}, scheme {}, period {} s; proposing",
                p.n(),
                p.threshold,
                p.config.scheme,
                p.config.period_secs
            ),
        );
        let prepare = m::Prepare { config: Some(p.config.clone()) }.encode_to_vec();
        let timeout = p.phase.min(PREPARE_TIMEOUT_MAX);
        let asks = (0..p.n() as u32).filter(|i| *i != me).filter_map(|i| {
            let si = slot.server_identity(i)?;
            let (net, body, sid) = (self.inner.network.clone(), prepare.clone(), p.session);
            Some(async move { (i, net.request(&si, SERVICE, proto::PREPARE, &sid, body, timeout).await) })
        });
        let mut participants = vec![me];
        let mut absent = Vec::new();
        for (i, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(_) => participants.push(i),
                Err(e) => absent.push((i, e.to_string())),
            }
        }
        participants.sort_unstable();
        absent.sort();
        for (i, why) in &absent {
            slot.log(None, format!("member {i} does not take part: {why}"));
        }
        if participants.len() < p.threshold {
            let e = DkgError::NotEnoughParticipants { have: participants.len(), need: p.threshold };
            finish_failed(&slot, &e);
            return Err(e);
        }
        slot.log(None, format!("{} of {} members take part: {:?}", participants.len(), p.n(), participants));
        if let Err(e) = lock(&slot.dkg).set_participants(&participants) {
            finish_failed(&slot, &e);
            return Err(e);
        }
        let go = m::Go { session: p.session.to_vec(), participants: participants.clone() }.encode_to_vec();
        let gos = participants.iter().copied().filter(|i| *i != me).filter_map(|i| {
            let si = slot.server_identity(i)?;
            let (net, body, sid) = (self.inner.network.clone(), go.clone(), p.session);
            Some(async move { (i, net.request(&si, SERVICE, proto::GO, &sid, body, timeout).await) })
        });
        for (i, answer) in futures_util::future::join_all(gos).await {
            if let Err(e) = answer {
                slot.log(None, format!("member {i} did not start: {e}"));
            }
        }
        slot.started.store(true, Ordering::SeqCst);
        let outcome =
            drive(slot.clone(), self.inner.network.clone(), self.tasks().clone(), Arc::downgrade(&self.inner)).await;
        let (group, disqualified) = outcome?;
        // Collect the others' results.
        let others: BTreeSet<u32> = participants.iter().copied().filter(|i| *i != me).collect();
        let deadline = Instant::now() + slot.params.phase.max(Duration::from_secs(2));
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if others.iter().all(|i| lock(&slot.dones).contains_key(i)) || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let seed = group.genesis_seed();
        let dones = lock(&slot.dones).clone();
        let confirmations: Vec<Confirmation> = others
            .iter()
            .map(|i| match dones.get(i) {
                Some(d) if d.group_hash.as_slice() == seed.as_slice() => {
                    Confirmation { index: *i, agrees: true, detail: "same group".into() }
                }
                Some(d) if !d.error.is_empty() => {
                    Confirmation { index: *i, agrees: false, detail: format!("failed: {}", d.error) }
                }
                Some(_) => Confirmation { index: *i, agrees: false, detail: "computed a different group".into() },
                None => Confirmation { index: *i, agrees: false, detail: "no result in time".into() },
            })
            .collect();
        let agreeing = confirmations.iter().filter(|c| c.agrees).count() + 1;
        slot.log(Some("done"), format!("{agreeing} of {} participants confirmed the same group", participants.len()));
        let log = lock(&slot.status).log.clone();
        Ok(DkgReport { group, disqualified, absent, confirmations, log })
    }
}

/// Which group holds the keys of a scheme id.
pub fn scheme_key_group(id: &str) -> Option<crate::crypto::threshold::KeyGroup> {
    Scheme::from_id(id).ok().map(key_group)
}

fn finish_failed(slot: &Slot, e: &DkgError) {
    slot.finished.store(true, Ordering::SeqCst);
    slot.log(Some("failed"), format!("DKG failed: {e}"));
    let mut s = lock(&slot.status);
    s.finished = true;
    s.error = Some(e.to_string());
}

/// Forwards a signed broadcast message once to every participant that may not have it.
fn echo(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    protocol: &'static str,
    payload: Vec<u8>,
    origin: u32,
    via: &crate::crypto::IdentityPublicKey,
) {
    let targets: Vec<u32> = lock(&slot.dkg)
        .participants()
        .iter()
        .copied()
        .filter(|i| *i != slot.me && *i != origin && slot.params.members.get(*i as usize) != Some(via))
        .collect();
    broadcast(slot, network, tasks, protocol, payload, &targets);
}

fn broadcast(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    protocol: &'static str,
    payload: Vec<u8>,
    targets: &[u32],
) {
    for &i in targets {
        let Some(si) = slot.server_identity(i) else { continue };
        let (net, body, sid, timeout) = (network.clone(), payload.clone(), slot.params.session, slot.params.phase);
        tasks.spawn(async move {
            if let Err(e) = net.request(&si, SERVICE, protocol, &sid, body, timeout).await {
                tracing::debug!(to = i, %protocol, error = %e, "DKG: send failed");
            }
        });
    }
}

/// Runs the three phases at this node and hands the result over. Returns the group and the
/// disqualifications.
async fn drive(
    slot: Arc<Slot>,
    network: Network,
    tasks: Tasks,
    weak: Weak<Inner>,
) -> Result<(Group, Vec<Disqualification>), DkgError> {
    let result = drive_inner(&slot, &network, &tasks, &weak).await;
    let done = match &result {
        Ok((g, _)) => m::Done {
            session: slot.params.session.to_vec(),
            from: slot.me,
            group_hash: g.genesis_seed().to_vec(),
            error: String::new(),
        },
        Err(e) => {
            finish_failed(&slot, e);
            m::Done {
                session: slot.params.session.to_vec(),
                from: slot.me,
                group_hash: Vec::new(),
                error: e.to_string(),
            }
        }
    };
    if result.is_ok() {
        slot.finished.store(true, Ordering::SeqCst);
        lock(&slot.status).finished = true;
    }
    let leader = slot.params.config.leader;
    if leader != slot.me {
        if let Some(si) = slot.server_identity(leader) {
            if let Err(e) = network
                .request(&si, SERVICE, proto::DONE, &slot.params.session, done.encode_to_vec(), slot.params.phase)
                .await
            {
                warn!(error = %e, "DKG: could not report the result to the leader");
            }
        }
    }
    result
}

async fn drive_inner(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    weak: &Weak<Inner>,
) -> Result<(Group, Vec<Disqualification>), DkgError> {
    let p = &slot.params;
    let phase = p.phase;
    let start = Instant::now();
    let participants: Vec<u32> = lock(&slot.dkg).participants().iter().copied().collect();
    let others: Vec<u32> = participants.iter().copied().filter(|i| *i != slot.me).collect();

    // Phase 1: deals, point to point.
    slot.log(Some("deal"), format!("phase 1/3 (deal): dealing shares to {} participants", others.len()));
    let deals = lock(&slot.dkg).deals();
    for deal in deals {
        let Some(si) = slot.server_identity(deal.recipient) else { continue };
        let (net, sid, to) = (network.clone(), p.session, deal.recipient);
        let body = deal.encode_to_vec();
        tasks.spawn(async move {
            if let Err(e) = net.request(&si, SERVICE, proto::DEAL, &sid, body, phase).await {
                warn!(to, error = %e, "DKG: deal not delivered");
            }
        });
    }
    slot.wait_until(start + phase, |d| d.have_all_deals()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Phase 2: responses, broadcast and echoed.
    let responses = lock(&slot.dkg).make_responses();
    let complaints: Vec<String> = responses
        .entries
        .iter()
        .filter(|e| e.status != m::status::APPROVE)
        .map(|e| {
            format!(
                "{} against member {}",
                if e.status == m::status::BAD_DEAL { "bad deal" } else { "no deal" },
                e.dealer
            )
        })
        .collect();
    slot.log(
        Some("response"),
        format!(
            "phase 2/3 (response): {} of {} deals valid{}",
            others.len() - complaints.len(),
            others.len(),
            if complaints.is_empty() { String::new() } else { format!("; complaints: {}", complaints.join(", ")) }
        ),
    );
    broadcast(slot, network, tasks, proto::RESPONSES, responses.encode_to_vec(), &others);
    slot.wait_until(start + 2 * phase, |d| d.have_all_responses()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Phase 3: justifications for "no deal" complaints, if any.
    let ev = lock(&slot.dkg).evaluate();
    let mut answered = 0usize;
    if let Some(j) = lock(&slot.dkg).make_justification(&ev) {
        answered = j.shares.len();
        broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &others);
    }
    slot.log(
        Some("justification"),
        format!(
            "phase 3/3 (justification): {} responses, {} dealers disqualified, {} with complaints to answer",
            lock(&slot.dkg).responses_count(),
            ev.disqualified.len(),
            ev.pending.len()
        ),
    );
    if !ev.pending.is_empty() {
        let deadline = start + 3 * phase;
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (complete, j) = {
                let d = lock(&slot.dkg);
                let ev = d.evaluate();
                (d.justifications_complete(&ev), d.make_justification(&ev))
            };
            if let Some(j) = j {
                if j.shares.len() > answered {
                    answered = j.shares.len();
                    broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &others);
                }
            }
            if complete || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    let result = lock(&slot.dkg).finalize()?;
    for d in &result.disqualified {
        slot.log(
            None,
            format!("member {} disqualified as dealer: {} ({} evidence items)", d.dealer, d.reason, d.evidence.len()),
        );
    }
    let nodes: Vec<GroupNode> = participants
        .iter()
        .map(|&i| GroupNode {
            index: i,
            public: p.members[i as usize],
            address: p.addresses[i as usize].clone(),
            description: p.config.members[i as usize].description.clone(),
        })
        .collect();
    let scheme = Scheme::from_id(&p.config.scheme).map_err(|e| DkgError::Config(e.to_string()))?;
    let group = Group {
        scheme,
        beacon_id: p.config.beacon_id.clone(),
        period: p.config.period_secs,
        genesis_time: p.config.genesis_time,
        threshold: p.threshold as u32,
        nodes,
        qualified: result.qualified.clone(),
        public_poly: result.group_poly.clone(),
        session: p.session,
    };
    let out = DkgOutput {
        group: group.clone(),
        index: result.index,
        share: result.share,
        disqualified: result.disqualified.clone(),
    };
    let inner = weak.upgrade().ok_or_else(|| DkgError::Failed("node stopped".into()))?;
    let hooks = inner.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
    for h in hooks {
        h(&out).map_err(DkgError::Failed)?;
    }
    save_transcript(&inner.tree, &group, &result.disqualified);
    drop(inner);
    slot.log(
        Some("done"),
        format!(
            "done: {} qualified dealers, group key {}…, chain hash {}",
            group.qualified.len(),
            &hex::encode(group.public_key())[..16],
            group.chain_info().hash_hex()
        ),
    );
    Ok((group, result.disqualified))
}

/// Keeps the public outcome (group file, disqualifications with evidence) for inspection.
fn save_transcript(tree: &ServiceTree, group: &Group, disq: &[Disqualification]) {
    let record = serde_json::json!({
        "group": group.to_toml(),
        "disqualified": disq.iter().map(|d| serde_json::json!({
            "dealer": d.dealer,
            "reason": d.reason,
            "evidence": d.evidence.iter().map(hex::encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let key = format!("session/{}", hex::encode(group.session));
    if let Err(e) = tree.put(key.as_bytes(), record.to_string().as_bytes()) {
        warn!(error = %e, "DKG: could not store the transcript");
    }
}
