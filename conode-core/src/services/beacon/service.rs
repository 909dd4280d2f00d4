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
use crate::services::dkg::{DkgError, DkgOutput, DkgService, Group};
use crate::services::{stop_service, MetricsWriter, Service, ServiceContext, StartError, Tasks};
use crate::verify::beacon::{Beacon, ChainInfo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Name of the client and peer service.
pub const SERVICE: &str = "Beacon";

/// How this node misbehaves in beacon rounds (fault injection for tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BeaconFault {
    #[default]
    None,
    /// Sends partials signed over another message (valid points, invalid signatures).
    InvalidPartials,
    /// Sends no partials at all.
    Silent,
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
    pub latencies: Vec<RoundLatency>,
}

/// The counters behind [`BeaconStats`].
pub(super) struct Stats {
    pub(super) recovered: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) partials_received: AtomicU64,
    pub(super) invalid_partials: AtomicU64,
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
                stats: Stats {
                    recovered: AtomicU64::new(0),
                    received: AtomicU64::new(0),
                    partials_received: AtomicU64::new(0),
                    invalid_partials: AtomicU64::new(0),
                },
            }),
        };
        // The DKG hands its result over here; a node with a chain takes part in no other DKG.
        let weak = Arc::downgrade(&svc.inner);
        dkg.on_complete(Arc::new(move |out: &DkgOutput| match weak.upgrade() {
            Some(inner) => BeaconService { inner }.install(out),
            None => Err("beacon service stopped".into()),
        }));
        let weak = Arc::downgrade(&svc.inner);
        dkg.set_guard(Arc::new(move || match weak.upgrade() {
            Some(inner) if inner.store.as_ref().is_some_and(|s| s.has_group()) => Err(DkgError::HasGroup),
            Some(inner) if inner.store.is_none() => Err(DkgError::Failed("beacon storage unavailable".into())),
            _ => Ok(()),
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
            Arc::new(move |w: &mut MetricsWriter| {
                if let Some(inner) = weak.upgrade() {
                    BeaconService { inner }.write_metrics(w);
                }
            }),
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
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "beacon: stored group not usable"),
            }
        }
        Ok(svc)
    }

    async fn stop(&self) {
        self.inner.ctx.metrics.remove(SERVICE);
        stop_service(&self.inner.ctx, SERVICE).await;
    }
}

impl BeaconService {
    pub(super) fn tasks(&self) -> &Tasks {
        &self.inner.ctx.tasks
    }

    fn write_metrics(&self, w: &mut MetricsWriter) {
        let s = self.stats();
        w.metric("conode_beacon_latest_round", "gauge", "Newest beacon round stored.", s.latest_round);
        w.metric("conode_beacon_recovered_total", "counter", "Beacons recovered here from partials.", s.recovered);
        w.metric("conode_beacon_received_total", "counter", "Verified beacons received from peers.", s.received);
        w.metric("conode_beacon_partials_received_total", "counter", "Partials received.", s.partials_received);
        w.metric("conode_beacon_invalid_partials_total", "counter", "Partials rejected.", s.invalid_partials);
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
        let (latest_round, latencies) = match self.chain() {
            Some(c) => (c.latest(), lock(&c.latencies).iter().copied().collect()),
            None => (0, Vec::new()),
        };
        BeaconStats {
            latest_round,
            recovered: s.recovered.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            partials_received: s.partials_received.load(Ordering::Relaxed),
            invalid_partials: s.invalid_partials.load(Ordering::Relaxed),
            latencies,
        }
    }
}
