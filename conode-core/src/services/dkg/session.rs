//! One DKG session on this node (a [`Slot`]): its parameters and protocol state, its status and
//! log as clients see them, and waiting until the messages a phase expects are in. Only one session
//! runs at a time; [`DkgService::new_slot`] refuses a second one unless the first is over or stale.

use super::messages as m;
use super::protocol::{Dkg, DkgError, Params};
use super::service::DkgService;
use super::timing::Timing;
use crate::config::ServerIdentity;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::info;

/// Longest wait for a member to accept the proposal.
pub(super) const PREPARE_TIMEOUT_MAX: Duration = Duration::from_secs(10);

pub(super) use crate::sync::lock;

/// The first bytes of a session id, for logs.
fn short(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(6)])
}

/// Where the record "this node dealt in session S" lives in the DKG tree. It is written durably
/// before the first deal leaves the node: a node that restarts in the middle of a DKG would pick a
/// new secret polynomial and could send a recipient two different deals for one session (the
/// DKG's equivocation); with the record it refuses the session instead and is left out of it.
pub(super) fn dealt_key(session: &[u8]) -> Vec<u8> {
    [b"dealt/".as_slice(), session].concat()
}

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

/// One DKG session on this node: its parameters, the protocol state, its progress, and what
/// wakes the phases waiting for messages.
pub(super) struct Slot {
    pub(super) params: Params,
    pub(super) me: u32,
    pub(super) leader: bool,
    pub(super) dkg: Mutex<Dkg>,
    pub(super) notify: Notify,
    pub(super) started: AtomicBool,
    pub(super) finished: AtomicBool,
    pub(super) created: Instant,
    pub(super) status: Mutex<DkgStatus>,
    pub(super) dones: Mutex<BTreeMap<u32, m::Done>>,
    /// The node's event bus (phase changes are announced there).
    pub(super) events: crate::events::EventBus,
    /// Fault injection (tests) in effect for this session.
    pub(super) faults: Faults,
    /// This node's deadlines (set when the phases start).
    timing: Mutex<Option<Timing>>,
    /// The current phase's first window, in ms (senders retry within it and its retries).
    window_ms: AtomicU64,
}

/// Fault injection for tests: a slow dealer, a member that takes part but never answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// This node's deals are first sent after this delay.
    pub deal_delay: Duration,
    /// This node accepts the proposal and the start, then sends nothing (no deals, responses,
    /// justifications, echoes or result).
    pub mute: bool,
}

impl Slot {
    pub(super) fn log(&self, phase: Option<&str>, line: String) {
        info!(session = %short(&self.params.session), "DKG: {line}");
        let mut s = lock(&self.status);
        if let Some(p) = phase.filter(|p| *p != s.phase) {
            s.phase = p.to_string();
            self.events
                .emit(crate::events::NodeEvent::DkgPhaseChanged { session: self.params.session, phase: p.to_string() });
        }
        let ms = self.created.elapsed().as_millis() as u64;
        s.elapsed_ms = ms;
        s.log.push(format!("[{ms:>6} ms] {line}"));
    }

    pub(super) fn set_timing(&self, t: Timing) {
        *lock(&self.timing) = Some(t);
    }

    /// This node's deadlines (from the configured phase until the phases start).
    pub(super) fn timing(&self) -> Timing {
        lock(&self.timing).unwrap_or_else(|| Timing::new(self.params.phase, self.params.n()))
    }

    pub(super) fn set_window(&self, w: Duration) {
        self.window_ms.store(w.as_millis() as u64, Ordering::SeqCst);
    }

    /// The current phase's first window.
    pub(super) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.load(Ordering::SeqCst))
    }

    pub(super) fn server_identity(&self, i: u32) -> Option<ServerIdentity> {
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
    pub(super) async fn wait_until(&self, deadline: Instant, cond: impl Fn(&Dkg) -> bool) -> bool {
        crate::sync::wait_notified(&self.notify, deadline, || cond(&lock(&self.dkg))).await
    }
}

/// Marks the session failed with `e` (status, log).
pub(super) fn finish_failed(slot: &Slot, e: &DkgError) {
    slot.finished.store(true, Ordering::SeqCst);
    slot.log(Some("failed"), format!("DKG failed: {e}"));
    let mut s = lock(&slot.status);
    s.finished = true;
    s.error = Some(e.to_string());
}

impl DkgService {
    /// Installs a new session unless one is running.
    pub(super) fn new_slot(&self, params: Params, leader: bool) -> Result<Arc<Slot>, DkgError> {
        self.check_guard(&params)?;
        if self.inner.tree.get(&dealt_key(&params.session)).ok().flatten().is_some() {
            return Err(DkgError::AlreadyDealt(short(&params.session)));
        }
        let mut cur = lock(&self.inner.current);
        if let Some(s) = cur.as_ref() {
            let unstarted = !s.started.load(Ordering::SeqCst);
            let stale = unstarted && s.created.elapsed() > 2 * s.params.phase + PREPARE_TIMEOUT_MAX;
            // A proposal this node accepted as a member whose leader never said go (it found too
            // few members) gives way to a newer one instead of holding the node for minutes.
            let given_up = unstarted && !s.leader;
            if !s.finished.load(Ordering::SeqCst) && !stale && !given_up {
                return Err(DkgError::Busy);
            }
        }
        let params_phase_ms = params.phase.as_millis() as u64;
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
            events: self.inner.ctx.events.clone(),
            faults: *lock(&self.inner.faults),
            timing: Mutex::new(None),
            window_ms: AtomicU64::new(params_phase_ms),
        });
        lock(&slot.status).session = hex::encode(slot.params.session);
        *cur = Some(slot.clone());
        Ok(slot)
    }

    pub(super) fn slot_for(&self, session: &[u8]) -> Result<Arc<Slot>, DkgError> {
        lock(&self.inner.current)
            .as_ref()
            .filter(|s| s.params.session.as_slice() == session && !s.finished.load(Ordering::SeqCst))
            .cloned()
            .ok_or(DkgError::UnknownSession)
    }
}

#[cfg(all(test, feature = "cluster"))]
mod tests {
    use crate::cluster::LocalCluster;
    use crate::services::beacon::messages::InitRequest;
    use crate::verify::beacon::Scheme;
    use prost::Message;
    use std::time::Duration;

    #[test]
    fn a_member_never_deals_twice_in_one_session_even_after_a_restart() {
        let mut cluster = LocalCluster::new(4).unwrap();
        // Two of four dealers send bad deals: two qualify where three are needed, so the DKG
        // fails after every member dealt.
        cluster.node(2).dkg().unwrap().corrupt_deals_to(0);
        cluster.node(3).dkg().unwrap().corrupt_deals_to(0);
        let req = InitRequest {
            roster_toml: cluster.roster().to_toml(),
            scheme: Scheme::PedersenBlsChained.id().into(),
            period_secs: 1,
            phase_timeout_ms: 2000,
            genesis_delay_ms: 3_600_000,
            ..Default::default()
        };
        cluster.approve_beacon(&req).unwrap();
        let url = cluster.client_url(1).unwrap();
        let call = crate::api::client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60));
        let err = cluster.runtime().block_on(call).unwrap_err().to_string();
        assert!(err.contains("qualified"), "{err}");
        let params = super::lock(&cluster.node(0).dkg().unwrap().inner.current).as_ref().unwrap().params.clone();
        // Member 0 restarts, forgetting everything in memory, and is proposed the same session
        // again: it would deal a fresh secret polynomial, so it refuses.
        cluster.stop(0).unwrap();
        cluster.restart(0).unwrap();
        // (An approval lives in memory: its operator approves the group again.)
        cluster.beacon(0).unwrap().approve_init_request(&req).unwrap();
        let dkg = cluster.node(0).dkg().unwrap();
        let again = dkg.new_slot(params.clone(), false).err().expect("a second deal in one session");
        assert!(again.to_string().contains("already dealt in DKG session"), "{again}");
        // A member that never dealt in that session (a fresh node would) is not refused by it.
        dkg.inner.tree.remove(&super::dealt_key(&params.session)).unwrap();
        assert!(dkg.new_slot(params, false).is_ok());
    }
}
