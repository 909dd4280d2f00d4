//! The beacon service: once a DKG has given this node a share, at each round every member signs
//! its partial (threshold BLS, its share index), sends it to the others, and any member holding
//! `t` partials recovers the group signature (Lagrange), verifies it with the pure verifier
//! against the group key, stores it durably and serves it. Partials are checked one by one only
//! when that verification fails (see `partials`); invalid ones are rejected and counted. A member that is behind catches up from its peers (sync) and verifies everything it
//! receives; when fewer than `t` members run, nothing is produced until enough come back, then
//! the missed rounds are produced in order (drand's catch-up).
//!
//! Client methods (`/Beacon/<Method>`): `Init` (this node leads a DKG), `DkgStatus`, `Latest`,
//! `Round`, `Info`. HTTP routes: see [`super::http`].

use super::messages::{self as m, protocol as proto};
use super::partials::{HeldPartial, PartialsOfRound, ShareKeys};
use super::store::{from_packet, to_packet, ChainStore, Share};
use crate::config::{Roster, ServerIdentity};
use crate::crypto::threshold::{recover_point, Point, G1, G2};
use crate::crypto::IdentityPublicKey;
use crate::network::{Network, PeerMessage};
use crate::services::dkg::{self, messages as dm, DkgError, DkgOutput, DkgService, Group};
use crate::services::{stop_service, MetricsWriter, Service, ServiceContext, ServiceError, StartError, Tasks};
use crate::verify::beacon::{digest, info_json, Beacon, ChainInfo, PreparedChain, Scheme};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

/// Name of the client and peer service.
pub const SERVICE: &str = "Beacon";
/// Partials are kept for rounds up to this far ahead of the latest stored one.
const WINDOW: u64 = 64;
/// Default length of a DKG phase.
pub const DEFAULT_PHASE_MS: u64 = 10_000;
/// How many recent production latencies are kept.
const LATENCY_HISTORY: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since the UNIX epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

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

/// A running chain: the group, this node's share and the in-memory round state.
pub(crate) struct Chain {
    group: Group,
    info: ChainInfo,
    chain_hash: [u8; 32],
    prepared: PreparedChain,
    share: Share,
    share_keys: ShareKeys,
    latest: watch::Sender<u64>,
    latest_sig: Mutex<Vec<u8>>,
    /// round → share index → partial.
    pool: Mutex<BTreeMap<u64, PartialsOfRound>>,
    /// Late partials already audited: (round, share index).
    audited: Mutex<BTreeSet<(u64, u32)>>,
    /// One `advance` at a time, so that a partial is never checked twice.
    advancing: tokio::sync::Mutex<()>,
    append: tokio::sync::Mutex<()>,
    notify: Notify,
    latencies: Mutex<VecDeque<RoundLatency>>,
    syncing: AtomicBool,
}

impl Chain {
    fn new(group: Group, share: Share, last: Option<Beacon>) -> Result<Self, String> {
        let info = group.chain_info();
        let prepared = info.prepare().map_err(|e| e.to_string())?;
        if !group.public_poly.verify_share(share.index, &share.scalar) || group.node(share.index).is_none() {
            return Err("the stored share does not belong to the group".into());
        }
        let share_keys = ShareKeys::new(&group)?;
        let (round, sig) = match last {
            Some(b) => (b.round, b.signature),
            None => (0, info.genesis_seed.clone()),
        };
        Ok(Self {
            chain_hash: info.hash(),
            info,
            prepared,
            share,
            share_keys,
            latest: watch::channel(round).0,
            latest_sig: Mutex::new(sig),
            pool: Mutex::new(BTreeMap::new()),
            audited: Mutex::new(BTreeSet::new()),
            advancing: tokio::sync::Mutex::new(()),
            append: tokio::sync::Mutex::new(()),
            notify: Notify::new(),
            latencies: Mutex::new(VecDeque::new()),
            syncing: AtomicBool::new(false),
            group,
        })
    }
    fn scheme(&self) -> Scheme {
        self.group.scheme
    }
    fn latest(&self) -> u64 {
        *self.latest.borrow()
    }
    fn threshold(&self) -> usize {
        self.group.threshold as usize
    }
    /// The previous signature the next round signs over (chained schemes).
    fn prev_for_next(&self) -> Option<Vec<u8>> {
        self.scheme().is_chained().then(|| lock(&self.latest_sig).clone())
    }
    fn peers(&self) -> Vec<(u32, ServerIdentity)> {
        self.group
            .nodes
            .iter()
            .filter(|n| n.index != self.share.index)
            .map(|n| (n.index, n.server_identity()))
            .collect()
    }
    fn round_time_ms(&self, round: u64) -> Option<i64> {
        self.info.time_of_round(round).and_then(|s| s.checked_mul(1000))
    }
}

/// A partial signature of `msg` with the share, in the scheme's signature group.
fn sign_partial_bytes(scheme: Scheme, share: &Share, msg: &[u8]) -> Vec<u8> {
    if scheme.signatures_on_g1() {
        crate::crypto::threshold::sign_partial::<G1>(&share.scalar, msg, scheme.dst()).to_bytes()
    } else {
        crate::crypto::threshold::sign_partial::<G2>(&share.scalar, msg, scheme.dst()).to_bytes()
    }
}

/// Lagrange recovery of the group signature from `t` partials. The result must be verified (with
/// the subgroup check): the partials are decoded without theirs, which that check covers.
fn recover_bytes(scheme: Scheme, partials: &[(u32, Vec<u8>)], t: usize) -> Result<Vec<u8>, String> {
    fn go<P: Point>(partials: &[(u32, Vec<u8>)], t: usize) -> Result<Vec<u8>, String> {
        let pts: Vec<(u32, P)> = partials
            .iter()
            .map(|(i, b)| P::from_bytes_on_curve(b).map(|p| (*i, p)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        recover_point(&pts, t).map(|p| p.to_bytes()).map_err(|e| e.to_string())
    }
    if scheme.signatures_on_g1() {
        go::<G1>(partials, t)
    } else {
        go::<G2>(partials, t)
    }
}

struct Stats {
    recovered: AtomicU64,
    received: AtomicU64,
    partials_received: AtomicU64,
    invalid_partials: AtomicU64,
}

struct Inner {
    me: IdentityPublicKey,
    network: Network,
    /// `None` when the storage trees could not be opened (the service then refuses everything).
    store: Option<ChainStore>,
    /// The context this service started with (its own child set of tasks).
    ctx: ServiceContext,
    dkg: DkgService,
    chain: RwLock<Option<Arc<Chain>>>,
    fault: Mutex<BeaconFault>,
    stats: Stats,
}

/// Handle on a node's beacon service (cheap to clone).
#[derive(Clone)]
pub struct BeaconService {
    inner: Arc<Inner>,
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
    fn tasks(&self) -> &Tasks {
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

    /// Stores a DKG result and starts producing beacons.
    fn install(&self, out: &DkgOutput) -> Result<(), String> {
        let store = self.inner.store.as_ref().ok_or("beacon storage unavailable")?;
        if store.has_group() {
            return Err("this node already has a beacon chain".into());
        }
        let share = Share { index: out.index, scalar: out.share, session: out.group.session };
        store.install(&out.group, &share).map_err(|e| e.to_string())?;
        self.start_chain(out.group.clone(), share, None)
    }

    fn start_chain(&self, group: Group, share: Share, last: Option<Beacon>) -> Result<(), String> {
        let chain = Arc::new(Chain::new(group, share, last)?);
        info!(
            chain = %hex::encode(chain.chain_hash),
            index = chain.share.index,
            latest = chain.latest(),
            scheme = %chain.scheme(),
            "beacon: chain loaded"
        );
        *self.inner.chain.write().unwrap_or_else(|p| p.into_inner()) = Some(chain.clone());
        let weak = Arc::downgrade(&self.inner);
        self.tasks().spawn(run_chain(weak, chain));
        Ok(())
    }

    async fn client(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
        let bad = |e: prost::DecodeError| ServiceError::BadRequest(e.to_string());
        match method.as_str() {
            "Init" => {
                let req = m::InitRequest::decode(body.as_slice()).map_err(bad)?;
                Ok(self.init(req).await?.encode_to_vec())
            }
            "DkgStatus" => {
                m::DkgStatusRequest::decode(body.as_slice()).map_err(bad)?;
                let s = self.inner.dkg.status().unwrap_or_default();
                Ok(m::DkgStatusResponse {
                    session: s.session,
                    phase: s.phase,
                    elapsed_ms: s.elapsed_ms,
                    finished: s.finished,
                    error: s.error.unwrap_or_default(),
                    log: s.log,
                }
                .encode_to_vec())
            }
            "Latest" => {
                m::LatestRequest::decode(body.as_slice()).map_err(bad)?;
                let b = self.latest().ok_or_else(|| ServiceError::Failed("no beacon yet".into()))?;
                Ok(to_packet(&b).encode_to_vec())
            }
            "Round" => {
                let req = m::RoundRequest::decode(body.as_slice()).map_err(bad)?;
                let b = self
                    .get(req.round)
                    .ok_or_else(|| ServiceError::Failed(format!("round {} is not available", req.round)))?;
                Ok(to_packet(&b).encode_to_vec())
            }
            "Info" => {
                m::InfoRequest::decode(body.as_slice()).map_err(bad)?;
                let c = self.chain().ok_or_else(|| ServiceError::Failed("no beacon chain on this node".into()))?;
                Ok(m::InfoResponse { info_json: info_json(&c.info), group_toml: c.group.to_toml() }.encode_to_vec())
            }
            _ => Err(ServiceError::UnknownMethod { service: SERVICE.into(), method }),
        }
    }

    /// `/Beacon/Init`: leads a DKG among the roster and reports the group.
    pub async fn init(&self, req: m::InitRequest) -> Result<m::InitResponse, ServiceError> {
        if req.roster_toml.len() > m::MAX_ROSTER_TOML {
            return Err(ServiceError::BadRequest("roster too large".into()));
        }
        if self.inner.store.as_ref().is_some_and(|s| s.has_group()) {
            return Err(ServiceError::Refused(DkgError::HasGroup.to_string()));
        }
        let roster = Roster::from_toml_str(std::path::Path::new("<request>"), &req.roster_toml)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if roster.index_of(&self.inner.me).is_none() {
            return Err(ServiceError::BadRequest("this node is not in the roster".into()));
        }
        let scheme = if req.scheme.is_empty() {
            Scheme::PedersenBlsChained
        } else {
            Scheme::from_id(&req.scheme).map_err(|e| ServiceError::BadRequest(e.to_string()))?
        };
        if req.period_secs == 0 {
            return Err(ServiceError::BadRequest("period must be at least 1 s".into()));
        }
        let n = roster.len();
        let threshold = if req.threshold == 0 { dkg::minimum_threshold(n) as u32 } else { req.threshold };
        let phase_ms = if req.phase_timeout_ms == 0 { DEFAULT_PHASE_MS } else { req.phase_timeout_ms };
        let now_ms = unix_now_ms();
        let genesis_time = if req.genesis_time > 0 {
            if req.genesis_time * 1000 <= now_ms {
                return Err(ServiceError::BadRequest("genesis time is in the past".into()));
            }
            req.genesis_time
        } else {
            let delay = if req.genesis_delay_ms == 0 {
                4 * phase_ms + u64::from(req.period_secs) * 1000
            } else {
                req.genesis_delay_ms
            };
            (now_ms + delay as i64 + 999) / 1000
        };
        let config = dm::DkgConfig {
            members: roster
                .servers
                .iter()
                .map(|s| dm::Member {
                    public: s.public.as_bytes().to_vec(),
                    address: s.address.to_string(),
                    description: s.description.clone(),
                })
                .collect(),
            threshold,
            scheme: scheme.id().to_string(),
            period_secs: req.period_secs,
            genesis_time,
            beacon_id: if req.beacon_id.is_empty() { "default".into() } else { req.beacon_id.clone() },
            phase_timeout_ms: phase_ms,
            leader: 0,
            nonce: Vec::new(),
        };
        let report = self.inner.dkg.run_leader(config).await.map_err(|e| match e {
            DkgError::Config(_) | DkgError::NotMember => ServiceError::BadRequest(e.to_string()),
            DkgError::Busy | DkgError::HasGroup => ServiceError::Refused(e.to_string()),
            e => ServiceError::Failed(e.to_string()),
        })?;
        let info = report.group.chain_info();
        let excl =
            |v: Vec<(u32, String)>| v.into_iter().map(|(index, reason)| m::Exclusion { index, reason }).collect();
        Ok(m::InitResponse {
            group_toml: report.group.to_toml(),
            info_json: info_json(&info),
            chain_hash: info.hash_hex(),
            qualified: report.group.qualified.clone(),
            disqualified: excl(report.disqualified.iter().map(|d| (d.dealer, d.reason.clone())).collect()),
            absent: excl(report.absent.clone()),
            confirmed: report.confirmations.iter().filter(|c| c.agrees).count() as u32 + 1,
            participants: report.group.nodes.len() as u32,
            log: report.log,
        })
    }

    async fn peer(&self, msg: PeerMessage) -> Result<Vec<u8>, String> {
        let chain = self.chain().ok_or("no beacon chain on this node")?;
        match msg.protocol.as_str() {
            proto::PARTIAL => {
                let p = m::PartialBeacon::decode(msg.payload.as_slice()).map_err(|e| e.to_string())?;
                self.on_partial(&chain, &msg.from, p).await.map(|r| r.encode_to_vec())
            }
            proto::SYNC => {
                let r = m::SyncRequest::decode(msg.payload.as_slice()).map_err(|e| e.to_string())?;
                let store = self.inner.store.as_ref().ok_or("no storage")?;
                let beacons = store.range(r.from_round.max(1), r.count.min(m::MAX_SYNC)).map_err(|e| e.to_string())?;
                Ok(m::SyncReply { beacons: beacons.iter().map(to_packet).collect() }.encode_to_vec())
            }
            other => Err(format!("unknown protocol `{other}`")),
        }
    }

    async fn on_partial(
        &self,
        chain: &Arc<Chain>,
        from: &IdentityPublicKey,
        p: m::PartialBeacon,
    ) -> Result<m::PartialReply, String> {
        let index = chain.group.index_of(from).ok_or("sender is not a member of the group")?;
        if p.index != index {
            return Err("partial for another member's index".into());
        }
        let latest = chain.latest();
        let reply =
            |b: Option<Beacon>| m::PartialReply { beacon: b.as_ref().map(to_packet), latest_round: chain.latest() };
        if p.round == 0 {
            return Err("round 0 has no signature".into());
        }
        if p.round <= latest {
            self.audit_late(chain, index, &p);
            return Ok(reply(self.get(p.round)));
        }
        let due = chain.info.latest_round(unix_now_ms().div_euclid(1000));
        if p.round > due.saturating_add(1) {
            return Err(format!("round {} is not due yet", p.round));
        }
        if p.round > latest + WINDOW {
            // Far behind: catch up from this peer instead.
            self.spawn_sync(chain.clone(), from);
            return Ok(reply(None));
        }
        self.inner.stats.partials_received.fetch_add(1, Ordering::Relaxed);
        let prev = if chain.scheme().is_chained() {
            if p.round == latest + 1 {
                let ours = lock(&chain.latest_sig).clone();
                if p.previous_signature != ours {
                    self.inner.stats.invalid_partials.fetch_add(1, Ordering::Relaxed);
                    return Err(format!("partial of round {} over another previous signature", p.round));
                }
                Some(ours)
            } else {
                Some(p.previous_signature.clone())
            }
        } else {
            None
        };
        let msg = digest(chain.scheme(), p.round, prev.as_deref());
        // Only the form is checked now; the signature with the others of the round (see `partials`).
        if !chain.share_keys.decodes(&p.partial) {
            self.inner.stats.invalid_partials.fetch_add(1, Ordering::Relaxed);
            warn!(from = index, round = p.round, "beacon: invalid partial rejected");
            return Err(format!("invalid partial signature for round {}: not a signature point", p.round));
        }
        let held = HeldPartial { digest: msg, partial: p.partial, checked: false };
        lock(&chain.pool).entry(p.round).or_default().entry(index).or_insert(held);
        self.advance(chain).await;
        Ok(reply(self.get(p.round)))
    }

    /// Recovers and stores as many consecutive rounds as the partials held allow. With `t`
    /// partials of the next round held, the beacon is recovered from `t` of them (checked ones
    /// first) and verified once against the group key: one pairing check per round instead of one
    /// per partial. Only when it does not verify are the unchecked partials used checked one by
    /// one, and the bad ones dropped and counted. Unused unchecked partials are audited later.
    async fn advance(&self, chain: &Arc<Chain>) {
        let _one = chain.advancing.lock().await;
        loop {
            let round = chain.latest() + 1;
            let prev = chain.prev_for_next();
            let msg = digest(chain.scheme(), round, prev.as_deref());
            let t = chain.threshold();
            let mut held: Vec<(u32, HeldPartial)> = lock(&chain.pool)
                .get(&round)
                .map(|m| m.iter().filter(|(_, h)| h.digest == msg).map(|(i, h)| (*i, h.clone())).collect())
                .unwrap_or_default();
            if held.len() < t {
                return;
            }
            held.sort_by_key(|(i, h)| (!h.checked, *i));
            let unused = held.split_off(t);
            let parts: Vec<(u32, Vec<u8>)> = held.iter().map(|(i, h)| (*i, h.partial.clone())).collect();
            let beacon = recover_bytes(chain.scheme(), &parts, t)
                .map(|signature| Beacon { round, signature, previous_signature: prev })
                .ok()
                .filter(|b| chain.prepared.verify(b).is_ok());
            let Some(beacon) = beacon else {
                // A bad partial among those used: find it.
                let used_unchecked: Vec<(u32, Vec<u8>)> =
                    held.iter().filter(|(_, h)| !h.checked).map(|(i, h)| (*i, h.partial.clone())).collect();
                if used_unchecked.is_empty() {
                    warn!(round, "beacon: recovery from checked partials failed");
                    lock(&chain.pool).remove(&round);
                    return;
                }
                self.check_each(chain, round, &msg, used_unchecked);
                continue;
            };
            match self.append(chain, beacon, true).await {
                Ok(true) => {
                    self.inner.stats.recovered.fetch_add(1, Ordering::Relaxed);
                    for (i, h) in unused.into_iter().filter(|(_, h)| !h.checked) {
                        self.audit_later(chain, i, round, msg, h.partial);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(round, error = %e, "beacon: recovered signature not stored");
                    lock(&chain.pool).remove(&round);
                    return;
                }
            }
        }
    }

    /// Checks `items` of `round` one by one: bad ones leave the pool and are counted, good ones
    /// are marked checked.
    fn check_each(&self, chain: &Chain, round: u64, msg: &[u8; 32], items: Vec<(u32, Vec<u8>)>) {
        let verdicts: Vec<(u32, bool)> =
            items.into_iter().map(|(i, p)| (i, chain.share_keys.check_one(i, msg, &p))).collect();
        let mut pool = lock(&chain.pool);
        let Some(of_round) = pool.get_mut(&round) else { return };
        for (i, valid) in verdicts {
            if valid {
                if let Some(h) = of_round.get_mut(&i) {
                    h.checked = true;
                }
            } else {
                of_round.remove(&i);
                self.inner.stats.invalid_partials.fetch_add(1, Ordering::Relaxed);
                warn!(from = i, round, "beacon: invalid partial rejected");
            }
        }
    }

    /// A partial that arrived after its round was stored, from a member that may be lagging.
    fn audit_late(&self, chain: &Arc<Chain>, index: u32, p: &m::PartialBeacon) {
        if p.round + 1 < chain.latest() || index == chain.share.index {
            return;
        }
        let Some(stored) = self.get(p.round) else { return };
        if chain.scheme().is_chained() && stored.previous_signature.as_deref() != Some(&p.previous_signature[..]) {
            if self.first_audit(chain, p.round, index) {
                self.inner.stats.invalid_partials.fetch_add(1, Ordering::Relaxed);
                warn!(from = index, round = p.round, "beacon: late partial over another previous signature");
            }
            return;
        }
        let msg = digest(chain.scheme(), p.round, stored.previous_signature.as_deref());
        self.audit_later(chain, index, p.round, msg, p.partial.clone());
    }

    /// Whether (round, index) was not audited yet (and now is); keeps the last rounds only.
    fn first_audit(&self, chain: &Chain, round: u64, index: u32) -> bool {
        let mut audited = lock(&chain.audited);
        let fresh = audited.insert((round, index));
        let latest = chain.latest();
        audited.retain(|(r, _)| r + 2 >= latest);
        fresh
    }

    /// A partial of a round already stored is of no use to it, but a member sending bad ones should
    /// show up in the stats and logs: it is checked once, a quarter period later, off the critical
    /// path of the next rounds.
    fn audit_later(&self, chain: &Arc<Chain>, index: u32, round: u64, msg: [u8; 32], partial: Vec<u8>) {
        if !self.first_audit(chain, round, index) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let chain = chain.clone();
        let delay = Duration::from_millis(u64::from(chain.info.period) * 250);
        let tasks = self.tasks().clone();
        self.tasks().spawn(async move {
            tokio::time::sleep(delay).await;
            let valid =
                tasks.spawn_blocking(move || chain.share_keys.check_one(index, &msg, &partial)).await.unwrap_or(true);
            if !valid {
                if let Some(inner) = inner.upgrade() {
                    inner.stats.invalid_partials.fetch_add(1, Ordering::Relaxed);
                }
                warn!(from = index, round, "beacon: invalid partial (audited after its round)");
            }
        });
    }

    /// Verifies and stores the next beacon. `Ok(false)`: already stored. `recovered`: recovered
    /// here by [`Self::advance`], which verified it already.
    async fn append(&self, chain: &Arc<Chain>, mut beacon: Beacon, recovered: bool) -> Result<bool, String> {
        let store = self.inner.store.as_ref().ok_or("no storage")?;
        let _g = chain.append.lock().await;
        let latest = chain.latest();
        if beacon.round <= latest {
            return Ok(false);
        }
        if beacon.round != latest + 1 {
            return Err(format!("round {} does not follow {latest}", beacon.round));
        }
        if chain.scheme().is_chained() {
            if beacon.previous_signature.as_deref() != Some(lock(&chain.latest_sig).as_slice()) {
                return Err(format!("round {} does not extend this chain", beacon.round));
            }
        } else {
            beacon.previous_signature = None;
        }
        if !recovered {
            chain.prepared.verify(&beacon).map_err(|e| e.to_string())?;
        }
        store.put_beacon(&beacon).await.map_err(|e| e.to_string())?;
        self.stored(chain, &beacon, recovered);
        Ok(true)
    }

    /// Bookkeeping after a beacon is durable.
    fn stored(&self, chain: &Chain, beacon: &Beacon, recovered: bool) {
        *lock(&chain.latest_sig) = beacon.signature.clone();
        chain.latest.send_replace(beacon.round);
        lock(&chain.pool).retain(|r, _| *r > beacon.round);
        if let Some(t) = chain.round_time_ms(beacon.round) {
            let ms = (unix_now_ms() - t) as f64;
            let mut l = lock(&chain.latencies);
            if l.len() == LATENCY_HISTORY {
                l.pop_front();
            }
            l.push_back(RoundLatency { round: beacon.round, ms, recovered });
        }
        debug!(round = beacon.round, recovered, "beacon: stored");
        chain.notify.notify_waiters();
    }

    /// Signs this node's partial of `round` (the next one), keeps it and sends it to the others.
    async fn sign_and_send(&self, chain: &Arc<Chain>, round: u64) {
        if round != chain.latest() + 1 {
            return;
        }
        let prev = chain.prev_for_next();
        let msg = digest(chain.scheme(), round, prev.as_deref());
        let partial = sign_partial_bytes(chain.scheme(), &chain.share, &msg);
        let own = HeldPartial { digest: msg, partial: partial.clone(), checked: true };
        lock(&chain.pool).entry(round).or_default().insert(chain.share.index, own);
        let fault = *lock(&self.inner.fault);
        let sent = match fault {
            BeaconFault::None => partial,
            BeaconFault::Silent => return self.advance(chain).await,
            BeaconFault::InvalidPartials => {
                let other = digest(chain.scheme(), round.wrapping_add(1_000_000), prev.as_deref());
                sign_partial_bytes(chain.scheme(), &chain.share, &other)
            }
        };
        let body = m::PartialBeacon {
            round,
            previous_signature: prev.unwrap_or_default(),
            index: chain.share.index,
            partial: sent,
        }
        .encode_to_vec();
        let timeout = retry_interval(chain).max(Duration::from_secs(1));
        for (i, si) in chain.peers() {
            let (net, body, svc, chain) =
                (self.inner.network.clone(), body.clone(), Arc::downgrade(&self.inner), chain.clone());
            self.tasks().spawn(async move {
                match net.request(&si, SERVICE, proto::PARTIAL, &round.to_be_bytes(), body, timeout).await {
                    Ok(reply) => {
                        let Some(inner) = svc.upgrade() else { return };
                        let this = BeaconService { inner };
                        let Ok(reply) = m::PartialReply::decode(reply.as_slice()) else { return };
                        if let Some(b) = reply.beacon {
                            let b = from_packet(b);
                            if b.round == chain.latest() + 1 {
                                match this.append(&chain, b, false).await {
                                    Ok(true) => {
                                        this.inner.stats.received.fetch_add(1, Ordering::Relaxed);
                                        this.advance(&chain).await;
                                    }
                                    Ok(false) => {}
                                    Err(e) => warn!(from = i, error = %e, "beacon: peer sent an invalid beacon"),
                                }
                            }
                        }
                        if reply.latest_round > chain.latest() + 1 {
                            this.spawn_sync(chain.clone(), &si.public);
                        }
                    }
                    Err(e) => debug!(to = i, round, error = %e, "beacon: partial not delivered"),
                }
            });
        }
        // Sent first, so that the others are not kept waiting while this node recovers.
        self.advance(chain).await;
    }

    /// Starts catching up from `peer` unless a sync is running.
    fn spawn_sync(&self, chain: Arc<Chain>, peer: &IdentityPublicKey) {
        let Some(si) = chain.group.index_of(peer).and_then(|i| chain.group.node(i)).map(|n| n.server_identity()) else {
            return;
        };
        if chain.syncing.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        self.tasks().spawn(async move {
            if let Some(inner) = weak.upgrade() {
                let this = BeaconService { inner };
                if let Err(e) = this.sync_from(&chain, &si).await {
                    debug!(error = %e, "beacon: sync failed");
                }
            }
            chain.syncing.store(false, Ordering::SeqCst);
        });
    }

    /// Fetches, verifies and stores the beacons `peer` has beyond ours. Returns how many.
    async fn sync_from(&self, chain: &Arc<Chain>, peer: &ServerIdentity) -> Result<u64, String> {
        let store = self.inner.store.as_ref().ok_or("no storage")?;
        let mut total = 0u64;
        loop {
            let from = chain.latest() + 1;
            let req = m::SyncRequest { from_round: from, count: m::MAX_SYNC }.encode_to_vec();
            let reply = self
                .inner
                .network
                .request(peer, SERVICE, proto::SYNC, &from.to_be_bytes(), req, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            let reply = m::SyncReply::decode(reply.as_slice()).map_err(|e| e.to_string())?;
            if reply.beacons.is_empty() || reply.beacons.len() > m::MAX_SYNC as usize {
                return Ok(total);
            }
            let full = reply.beacons.len() == m::MAX_SYNC as usize;
            let _g = chain.append.lock().await;
            let mut latest = chain.latest();
            let mut prev = lock(&chain.latest_sig).clone();
            let mut good = Vec::new();
            for b in reply.beacons.into_iter().map(from_packet) {
                if b.round <= latest {
                    continue;
                }
                let mut b = b;
                if b.round != latest + 1 {
                    break;
                }
                if chain.scheme().is_chained() {
                    if b.previous_signature.as_deref() != Some(prev.as_slice()) {
                        warn!(round = b.round, "beacon: synced beacon does not extend this chain");
                        break;
                    }
                } else {
                    b.previous_signature = None;
                }
                if let Err(e) = chain.prepared.verify(&b) {
                    warn!(round = b.round, error = %e, "beacon: synced beacon does not verify");
                    break;
                }
                latest = b.round;
                prev = b.signature.clone();
                good.push(b);
            }
            if good.is_empty() {
                return Ok(total);
            }
            store.put_beacons(&good).map_err(|e| e.to_string())?;
            for b in &good {
                self.stored(chain, b, false);
            }
            let n = good.len() as u64;
            total += n;
            self.inner.stats.received.fetch_add(n, Ordering::Relaxed);
            info!(from = good[0].round, to = latest, "beacon: caught up from a peer");
            drop(_g);
            if !full {
                return Ok(total);
            }
        }
    }

    fn alive(&self, chain: &Arc<Chain>) -> bool {
        !self.tasks().is_cancelled() && self.chain().is_some_and(|c| Arc::ptr_eq(&c, chain))
    }
}

fn retry_interval(chain: &Chain) -> Duration {
    Duration::from_millis((u64::from(chain.info.period) * 500).clamp(250, 3000))
}

/// The round loop of one node: waits for each round's time, signs and sends its partial, waits
/// for the beacon (or retries), catches up when behind. Ends when the node stops.
async fn run_chain(weak: Weak<Inner>, chain: Arc<Chain>) {
    // Catch up first if the chain moved on while this node was away.
    if let Some(inner) = weak.upgrade() {
        let this = BeaconService { inner };
        let due = chain.info.latest_round(unix_now_ms().div_euclid(1000));
        if chain.latest() + 1 < due {
            let peers = chain.peers();
            let tasks: Vec<_> = peers
                .into_iter()
                .map(|(_, si)| {
                    let (this, chain) = (this.clone(), chain.clone());
                    this.tasks().clone().spawn(async move {
                        tokio::time::timeout(Duration::from_secs(3), this.sync_from(&chain, &si)).await
                    })
                })
                .collect();
            drop(this);
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    let retry = retry_interval(&chain);
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let this = BeaconService { inner };
        if !this.alive(&chain) {
            break;
        }
        let now_ms = unix_now_ms();
        let due = chain.info.latest_round(now_ms.div_euclid(1000));
        let latest = chain.latest();
        let notified = chain.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if latest >= due {
            drop(this);
            let wait = chain
                .round_time_ms(latest + 1)
                .map(|t| Duration::from_millis((t - now_ms).clamp(1, 3_600_000) as u64))
                .unwrap_or(Duration::from_secs(60));
            // Wake at the round's time, or early when something was stored, to re-check.
            tokio::select! {
                _ = tokio::time::sleep(wait.min(Duration::from_secs(2))) => {}
                _ = &mut notified => {}
            }
            continue;
        }
        let round = latest + 1;
        this.sign_and_send(&chain, round).await;
        drop(this);
        let deadline = tokio::time::Instant::now() + retry;
        loop {
            if chain.latest() >= round {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut notified => {}
            }
            notified.set(chain.notify.notified());
            notified.as_mut().enable();
        }
        if chain.latest() < round {
            debug!(round, "beacon: round not complete yet, retrying");
        }
    }
    debug!(chain = %hex::encode(chain.chain_hash), "beacon: round loop ended");
}
