//! The beacon service: once a DKG has given this node a share, at each round every member signs
//! its partial (threshold BLS, its share index), sends it to the others, and any member holding
//! `t` partials recovers the group signature (Lagrange), verifies it with the pure verifier
//! against the group key, stores it durably and serves it. Partials are checked one by one only
//! when that verification fails (see `partials`); invalid ones are rejected and counted. A member
//! that is behind catches up from its peers (`sync`) and verifies everything it receives; when
//! fewer than `t` members run, nothing is produced until enough come back, then the missed rounds
//! are produced in order (drand's catch-up).
//!
//! This file holds the handle ([`BeaconService`]), its [`Service`] impl (start and stop), its
//! public types and accessors; the work is done in the sibling modules.
//!
//! Client methods (`/Beacon/<Method>`, see `client`): `Init` (this node leads a DKG),
//! `DkgStatus`, `Latest`, `Round`, `Info`. HTTP routes: see [`super::http`].

use super::chain::{lock, Chain};
use super::store::ChainStore;
use crate::crypto::IdentityPublicKey;
use crate::network::{Network, PeerMessage};
use crate::services::dkg::protocol::Params;
use crate::services::dkg::{DkgError, DkgOutput, DkgService, Group};
use crate::services::metrics::{counter, counters, gauge, gauges, info, labels, Activity, RosterView, LAG_BUCKETS};
use crate::services::{stop_service, Service, ServiceContext, StartError, Tasks};
use crate::verify::beacon::{Beacon, ChainInfo};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Name of the client and peer service.
pub const SERVICE: &str = "Beacon";

/// The `/status` section of the group's transition (see `transition::TransitionStatus`).
pub const TRANSITION_SECTION: &str = "BeaconTransition";

/// How this node misbehaves in beacon rounds (fault injection for tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BeaconFault {
    #[default]
    None,
    /// Sends partials signed over another message (valid points, invalid signatures).
    InvalidPartials,
    /// Sends no partials at all.
    Silent,
    /// As a recoverer of a round, pushes a forged beacon of it (a valid point that is not the
    /// group's signature) instead of the one it recovered (and stored itself).
    ForgedPushes,
}

/// Delay between a round's scheduled time and its beacon being stored on this node.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RoundLatency {
    pub round: u64,
    pub ms: f64,
    /// Recovered here from partials (else received from a peer).
    pub recovered: bool,
}

/// Counters of this node's beacon activity.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BeaconStats {
    pub latest_round: u64,
    /// Beacons recovered here from partials.
    pub recovered: u64,
    /// Beacons received from peers (partial replies and sync), verified.
    pub received: u64,
    pub partials_received: u64,
    pub invalid_partials: u64,
    /// Beacons pushed by a round's recoverer that did not verify (or did not extend the chain).
    pub invalid_pushes: u64,
    /// Partials held now for the rounds after the latest stored one (at most one per member and
    /// open round).
    pub held_partials: usize,
    pub latencies: Vec<RoundLatency>,
}

/// The counters behind [`BeaconStats`].
pub(super) struct Stats {
    pub(super) recovered: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) partials_received: AtomicU64,
    pub(super) invalid_partials: AtomicU64,
    pub(super) invalid_pushes: AtomicU64,
    /// Share index → (partials received, partials invalid).
    pub(super) per_member: Mutex<std::collections::BTreeMap<u32, (u64, u64)>>,
    /// Delay between each round's time and its beacon stored here, in seconds.
    pub(super) lag: Histogram,
}

impl Stats {
    fn new() -> Self {
        Stats {
            recovered: AtomicU64::new(0),
            received: AtomicU64::new(0),
            partials_received: AtomicU64::new(0),
            invalid_partials: AtomicU64::new(0),
            invalid_pushes: AtomicU64::new(0),
            per_member: Mutex::new(Default::default()),
            lag: Histogram::new(LAG_BUCKETS.iter().copied()),
        }
    }

    /// A partial of member `index` was accepted for checking.
    pub(super) fn partial_received(&self, index: u32) {
        self.partials_received.fetch_add(1, Ordering::Relaxed);
        lock(&self.per_member).entry(index).or_default().0 += 1;
    }

    /// A partial of member `index` was rejected.
    pub(super) fn partial_invalid(&self, index: u32) {
        self.invalid_partials.fetch_add(1, Ordering::Relaxed);
        lock(&self.per_member).entry(index).or_default().1 += 1;
    }
}

/// What the handles share.
pub(super) struct Inner {
    pub(super) me: IdentityPublicKey,
    pub(super) network: Network,
    /// `None` when the storage trees could not be opened (the service then refuses everything).
    pub(super) store: Option<ChainStore>,
    /// The context this service started with (its own child set of tasks).
    pub(super) ctx: ServiceContext,
    pub(super) dkg: DkgService,
    pub(super) chain: RwLock<Option<Arc<Chain>>>,
    pub(super) fault: Mutex<BeaconFault>,
    pub(super) stats: Stats,
    /// Resharing and the hand-over to a new group (see `transition`).
    pub(super) transition: super::transition::TransitionState,
    /// The beacon group this node's operator approved, if any (see `approval`).
    pub(super) init_approved: Mutex<Option<super::approval::InitApproval>>,
}

/// Handle on a node's beacon service (cheap to clone).
#[derive(Clone)]
pub struct BeaconService {
    pub(super) inner: Arc<Inner>,
}

impl Service for BeaconService {
    const NAME: &'static str = SERVICE;
    type Deps = DkgService;

    /// Registers `/Beacon/*`, the peer protocol, the drand HTTP routes and the metrics, hooks into
    /// the DKG service, and resumes a stored chain.
    fn start(ctx: &ServiceContext, dkg: DkgService) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let store =
            ChainStore::open(&ctx.storage).map_err(|e| StartError { service: SERVICE, reason: e.to_string() })?;
        let svc = BeaconService {
            inner: Arc::new(Inner {
                me: ctx.config.identity.public(),
                network: ctx.network.clone(),
                store: Some(store),
                ctx: ctx.clone(),
                dkg: dkg.clone(),
                chain: RwLock::new(None),
                fault: Mutex::new(BeaconFault::None),
                stats: Stats::new(),
                transition: Default::default(),
                init_approved: Mutex::new(None),
            }),
        };
        // The DKG hands its result over here; a node with a chain takes part in no other DKG.
        let weak = Arc::downgrade(&svc.inner);
        dkg.on_complete(Arc::new(move |out: &DkgOutput| match weak.upgrade() {
            Some(inner) => BeaconService { inner }.install(out),
            None => Err("beacon service stopped".into()),
        }));
        let weak = Arc::downgrade(&svc.inner);
        dkg.set_guard(Arc::new(move |params: &Params| match weak.upgrade() {
            Some(inner) if inner.store.as_ref().is_some_and(|s| s.has_group()) => Err(DkgError::HasGroup),
            Some(inner) if inner.store.is_none() => Err(DkgError::Failed("beacon storage unavailable".into())),
            Some(inner) => BeaconService { inner }.check_init_approval(params),
            None => Ok(()),
        }));
        let s = svc.clone();
        ctx.clients.register(
            SERVICE,
            Arc::new(move |method, body| {
                let s = s.clone();
                Box::pin(async move { s.client(method, body).await })
            }),
        );
        let s = svc.clone();
        ctx.network.register(
            SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move { s.peer(msg).await })
            }),
        );
        svc.register_reshare();
        let s = svc.clone();
        ctx.streams.register(
            SERVICE,
            "Subscribe",
            Arc::new(move |body: Vec<u8>| super::subscribe::subscribe(&s, &body)),
        );
        ctx.http.add_router(super::http::router(svc.clone()));
        ctx.http.add_fallback(super::http::fallback(svc.clone()));
        let weak = Arc::downgrade(&svc.inner);
        ctx.metrics.add(
            SERVICE,
            Arc::new(move |reg: &mut Registry| {
                if let Some(inner) = weak.upgrade() {
                    BeaconService { inner }.write_metrics(reg);
                }
            }),
        );
        let weak = Arc::downgrade(&svc.inner);
        ctx.status.add(
            TRANSITION_SECTION,
            Arc::new(move || {
                weak.upgrade().map(|inner| BeaconService { inner }.transition_status().to_map()).unwrap_or_default()
            }),
        );
        let weak = Arc::downgrade(&svc.inner);
        ctx.status.add_rosters(
            SERVICE,
            Arc::new(move || weak.upgrade().map(|inner| BeaconService { inner }.roster_views()).unwrap_or_default()),
        );
        if let Some(store) = &svc.inner.store {
            match store.load() {
                Ok(Some((group, share))) => {
                    let last = store.last().unwrap_or_else(|e| {
                        warn!(error = %e, "beacon: cannot read the latest beacon");
                        None
                    });
                    if let Err(e) = svc.start_chain(group, share, last) {
                        warn!(error = %e, "beacon: stored chain not usable");
                    }
                    svc.resume_transition();
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "beacon: stored group not usable"),
            }
        }
        svc.resume_reshare();
        Ok(svc)
    }

    async fn stop(&self) {
        self.inner.ctx.metrics.remove(SERVICE);
        self.inner.ctx.status.remove(SERVICE);
        self.inner.ctx.status.remove(TRANSITION_SECTION);
        stop_service(&self.inner.ctx, SERVICE).await;
    }
}

impl BeaconService {
    pub(super) fn tasks(&self) -> &Tasks {
        &self.inner.ctx.tasks
    }

    fn write_metrics(&self, reg: &mut Registry) {
        let s = self.stats();
        let st = &self.inner.stats;
        gauge(reg, "conode_beacon_latest_round", "Newest beacon round stored.", s.latest_round as f64);
        counter(reg, "conode_beacon_recovered", "Beacons recovered here from partials.", s.recovered);
        counter(reg, "conode_beacon_received", "Verified beacons received from peers.", s.received);
        counter(reg, "conode_beacon_partials_received", "Partials received.", s.partials_received);
        counter(reg, "conode_beacon_invalid_partials", "Partials rejected.", s.invalid_partials);
        counter(reg, "conode_beacon_invalid_pushes", "Beacons pushed by a recoverer and rejected.", s.invalid_pushes);
        let per_member = lock(&st.per_member).clone();
        let member = |i: &u32| labels(&[("member", &i.to_string())]);
        counters(
            reg,
            "conode_beacon_member_partials_received",
            "Partials received from each group member (by share index).",
            per_member.iter().map(|(i, (r, _))| (member(i), *r)),
        );
        counters(
            reg,
            "conode_beacon_member_partials_invalid",
            "Partials of each group member (by share index) rejected as invalid.",
            per_member.iter().map(|(i, (_, bad))| (member(i), *bad)),
        );
        reg.register_with_unit(
            "conode_beacon_lag",
            "Delay between a round's scheduled time and its beacon stored here",
            Unit::Seconds,
            st.lag.clone(),
        );
        let ts = self.transition_status();
        gauge(
            reg,
            "conode_beacon_transition_round",
            "Round from which a reshared group takes over the beacon chain (0 when no transition is pending).",
            if ts.pending() { ts.round as f64 } else { 0.0 },
        );
        counter(
            reg,
            "conode_beacon_transitions",
            "Switches of this node's beacon chain to a reshared group since the node started.",
            self.transitions_completed(),
        );
        info(
            reg,
            "conode_beacon_transition_state",
            "State of the beacon group's transition here (none, running, staged, switched, retiring, retired, aborted, failed).",
            &[("state", &ts.state)],
        );
        let dkg = self.inner.dkg.status();
        let phase = match (&dkg, self.chain().is_some()) {
            (_, true) => "done".to_string(),
            (Some(d), _) if d.error.is_some() => "failed".to_string(),
            (Some(d), _) if d.finished => "done".to_string(),
            (Some(d), _) => d.phase.clone(),
            (None, _) => "none".to_string(),
        };
        info(
            reg,
            "conode_dkg_state",
            "State of this node's DKG (none, a phase name, done, failed).",
            &[("state", &phase)],
        );
        if let Some(c) = self.chain() {
            let chain = hex::encode(c.info.hash());
            let l = labels(&[("chain", &chain)]);
            gauges(
                reg,
                "conode_beacon_group_size",
                "Members of the beacon group.",
                [(l.clone(), c.group.nodes.len() as f64)],
            );
            gauges(
                reg,
                "conode_beacon_group_threshold",
                "Threshold of the beacon group.",
                [(l.clone(), c.threshold() as f64)],
            );
            gauges(
                reg,
                "conode_beacon_period_seconds",
                "Seconds between beacon rounds.",
                [(l.clone(), f64::from(c.info.period))],
            );
            gauges(
                reg,
                "conode_beacon_chain_last_round",
                "Newest round stored, per chain.",
                [(l.clone(), c.latest() as f64)],
            );
            let due = c.info.latest_round(unix_now_secs());
            gauges(
                reg,
                "conode_beacon_rounds_behind",
                "Rounds due but not stored here yet, per chain.",
                [(l, due.saturating_sub(c.latest()) as f64)],
            );
        }
    }

    /// The beacon group, for the status page.
    fn roster_views(&self) -> Vec<RosterView> {
        let Some(c) = self.chain() else { return Vec::new() };
        let hash = hex::encode(c.info.hash());
        let now = unix_now_secs();
        let mut facts = std::collections::BTreeMap::new();
        facts.insert("chain_hash".to_string(), hash.clone());
        facts.insert("period_s".to_string(), c.info.period.to_string());
        facts.insert("threshold".to_string(), c.threshold().to_string());
        facts.insert("genesis_time".to_string(), c.info.genesis_time.to_string());
        facts.insert("scheme".to_string(), format!("{:?}", c.info.scheme));
        facts.insert("latest_round".to_string(), c.latest().to_string());
        facts.insert("current_round".to_string(), c.info.latest_round(now).to_string());
        let ts = self.transition_status();
        if ts.state != "none" {
            facts.insert("transition".to_string(), format!("{} at round {}", ts.state, ts.round));
            facts.insert("transition_members".to_string(), format!("{} → {}", ts.old_members, ts.new_members));
        }
        let activity = lock(&c.latencies)
            .iter()
            .rev()
            .take(5)
            .rev()
            .filter_map(|l| {
                let t = c.info.time_of_round(l.round)?;
                Some(Activity {
                    unix_ms: (t.max(0) as u64) * 1000 + l.ms.max(0.0) as u64,
                    text: format!(
                        "beacon round {} {} after {:.0} ms",
                        l.round,
                        if l.recovered { "recovered" } else { "received" },
                        l.ms
                    ),
                })
            })
            .collect();
        vec![RosterView {
            id: format!("beacon:{hash}"),
            name: format!("beacon group {}", &hash[..8]),
            kind: "beacon".into(),
            members: c.group.nodes.iter().map(|n| n.server_identity()).collect(),
            facts,
            activity,
        }]
    }

    /// The DKG service this beacon uses.
    pub fn dkg(&self) -> &DkgService {
        &self.inner.dkg
    }

    pub(crate) fn chain(&self) -> Option<Arc<Chain>> {
        self.inner.chain.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The chain's public description (drand's chain info), once a DKG has completed.
    pub fn chain_info(&self) -> Option<ChainInfo> {
        self.chain().map(|c| c.info.clone())
    }

    /// The group file of the chain.
    pub fn group(&self) -> Option<Group> {
        self.chain().map(|c| c.group.clone())
    }

    /// This node's share index in the group.
    pub fn share_index(&self) -> Option<u32> {
        self.chain().map(|c| c.share.index)
    }

    /// The latest stored beacon.
    pub fn latest(&self) -> Option<Beacon> {
        let c = self.chain()?;
        let r = c.latest();
        if r == 0 {
            return None;
        }
        self.get(r)
    }

    /// A stored beacon.
    pub fn get(&self, round: u64) -> Option<Beacon> {
        self.inner.store.as_ref()?.get(round).ok().flatten()
    }

    /// Latest stored round, updated as beacons are stored (`None` without a chain).
    pub fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        self.chain().map(|c| c.latest.subscribe())
    }

    /// Waits until `round` is stored (or `timeout`).
    pub async fn wait_for_round(&self, round: u64, timeout: Duration) -> Option<Beacon> {
        let mut rx = self.subscribe()?;
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= round)).await;
        self.get(round)
    }

    /// Fault injection (tests).
    pub fn set_fault(&self, fault: BeaconFault) {
        *lock(&self.inner.fault) = fault;
    }

    pub fn stats(&self) -> BeaconStats {
        let s = &self.inner.stats;
        let (latest_round, latencies, held_partials) = match self.chain() {
            Some(c) => (c.latest(), lock(&c.latencies).iter().copied().collect(), lock(&c.pool).len()),
            None => (0, Vec::new(), 0),
        };
        BeaconStats {
            latest_round,
            recovered: s.recovered.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            partials_received: s.partials_received.load(Ordering::Relaxed),
            invalid_partials: s.invalid_partials.load(Ordering::Relaxed),
            invalid_pushes: s.invalid_pushes.load(Ordering::Relaxed),
            held_partials,
            latencies,
        }
    }
}

/// Seconds since the UNIX epoch.
fn unix_now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
