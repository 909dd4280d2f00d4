//! The cosi service on one node: its state (hooks, options, fault injection, roster cache), the
//! handle other services use to run rounds from Rust (`CosiService::sign`), the peer handler, and
//! the client method `/Cosi/Sign` (refused unless the node allows open signing).

use super::fault::CosiFault;
use super::hooks::{HookRegistry, VerifyHook, OPEN_SIGNING_PURPOSE};
use super::messages::{Exclusion as WireExclusion, SignRequest, SignResponse, MAX_STATEMENT};
use super::outcome::{CosiError, Exclusion, SignOutcome};
use super::protocol;
use super::roster::RosterCache;
use crate::config::{NodeConfig, Roster, COSI_SERVICE};
use crate::crypto::IdentityPublicKey;
use crate::events::NodeEvent;
use crate::network::{Network, PeerMessage};
use crate::services::metrics::{self, labels, seconds_histogram_family, CounterFamily, HistogramFamily, RosterView};
use crate::services::{stop_service, Service, ServiceContext, ServiceError, StartError, Tasks};
use crate::verify::cosi::Policy;
use prometheus_client::registry::{Registry, Unit};
use prost::Message;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest roster TOML text a client may send (a few thousand members).
pub use crate::services::parsed_rosters::MAX_ROSTER_TOML;

/// Tunables of the cosi service.
#[derive(Clone, Debug)]
pub struct CosiOptions {
    /// How long a node waits for the level below it; the root waits twice as long for a
    /// sub-leader (which waits for its leaves).
    pub level_timeout: Duration,
}

impl Default for CosiOptions {
    fn default() -> Self {
        Self { level_timeout: Duration::from_secs(5) }
    }
}

/// State shared by the handlers of one node.
pub(super) struct Shared {
    pub(super) config: Arc<NodeConfig>,
    pub(super) network: Network,
    /// The service's own child set of tasks (rounds spawn their fan-out through it).
    pub(super) tasks: Tasks,
    ctx: ServiceContext,
    pub(super) hooks: HookRegistry,
    pub(super) rosters: RosterCache,
    /// Observed answer times, for the round deadlines.
    pub(super) timing: Arc<super::timing::RoundTiming>,
    /// The bound on the rounds this node leads at once.
    pub(super) admission: super::admission::Admission,
    fault: RwLock<CosiFault>,
    /// Per purpose, how many more rounds this node leaves unanswered (see `silence_rounds`).
    silent_rounds: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    options: RwLock<CosiOptions>,
    default_roster: RwLock<Option<Roster>>,
    /// Rosters of `/Cosi/Sign` requests parsed and checked lately, by the hash of their TOML text:
    /// a client that sends the same roster again costs one hash, not n key decodings and a PoP batch.
    parsed_rosters: crate::services::parsed_rosters::ParsedRosters,
    /// Rounds this node led, by purpose: count, failures, latency (for `/metrics`).
    rounds: CounterFamily,
    round_failures: CounterFamily,
    round_latency: HistogramFamily,
    /// Members excluded from rounds this node led for an invalid (partial or aggregate) signature.
    invalid_signatures: prometheus_client::metrics::counter::Counter,
    /// The budget of signatures made while the hook checks the statement (see `early_signing`).
    pub(super) early_signing: super::early_signing::EarlySigning,
    /// The budget of signatures leaves compute on the runtime's workers (see `inline_signing`).
    pub(super) inline_signing: super::inline_signing::InlineSigning,
    /// Where this node computed the partial signatures it gave for rounds others led (for `/metrics`).
    partials: [prometheus_client::metrics::counter::Counter; 3],
}

/// Where a member computed the partial signature it gave for a round another node led.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SignedOn {
    /// On the runtime's worker, after the (quick) hook approved (see `inline_signing`).
    Worker,
    /// On the crypto pool, after the hook approved.
    PoolAfterCheck,
    /// On the crypto pool while the hook checked (see `early_signing`).
    PoolWhileChecking,
}

impl SignedOn {
    const ALL: [SignedOn; 3] = [SignedOn::Worker, SignedOn::PoolAfterCheck, SignedOn::PoolWhileChecking];

    /// The `/metrics` label value.
    fn label(self) -> &'static str {
        match self {
            SignedOn::Worker => "worker",
            SignedOn::PoolAfterCheck => "pool_after_check",
            SignedOn::PoolWhileChecking => "pool_while_checking",
        }
    }
}

/// How many partial signatures a node gave, as a member of rounds others led, by where it computed
/// them (see [`CosiService::partial_signatures`]). Those its hook refused are not given (see
/// [`CosiService::early_signatures_wasted`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartialSignatureCounts {
    /// On a runtime worker: a leaf whose hook is quick, within the node's budget for that.
    pub on_worker: u64,
    /// On the crypto pool after the check: a quick hook's leaf beyond that budget, a long
    /// statement, or a slow hook without early-signing budget left.
    pub on_pool_after_check: u64,
    /// On the crypto pool while the hook checked (sub-leaders, slow hooks).
    pub on_pool_while_checking: u64,
}

impl Shared {
    /// Counts one partial signature given, computed `on` a place.
    pub(super) fn signed_on(&self, on: SignedOn) {
        self.partials[on as usize].inc();
    }

    pub(super) fn invalid_signature(&self) {
        self.invalid_signatures.inc();
    }

    pub(super) fn fault(&self) -> CosiFault {
        *self.fault.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node stays silent in this round of `purpose` (and counts it).
    pub(super) fn takes_silent_round(&self, purpose: &str) -> bool {
        let mut left = self.silent_rounds.lock().unwrap_or_else(|p| p.into_inner());
        match left.get_mut(purpose) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Handle on a node's cosi service (cheap to clone). Other services run rounds through it.
#[derive(Clone)]
pub struct CosiService {
    shared: Arc<Shared>,
}

impl CosiService {
    /// Signatures this node made while its hook checked an announced statement, and the hook
    /// then refused (they never left the node; see `early_signing`).
    pub fn early_signatures_wasted(&self) -> u64 {
        self.shared.early_signing.wasted_count()
    }

    /// Where this node computed the partial signatures it gave as a member of rounds others led.
    pub fn partial_signatures(&self) -> PartialSignatureCounts {
        let count = |on: SignedOn| self.shared.partials[on as usize].get();
        PartialSignatureCounts {
            on_worker: count(SignedOn::Worker),
            on_pool_after_check: count(SignedOn::PoolAfterCheck),
            on_pool_while_checking: count(SignedOn::PoolWhileChecking),
        }
    }

    /// Registers (or replaces) the verification hook of `purpose` on this node: the node signs a
    /// statement of that purpose only when the hook returns `Ok`. `Cosi` (open signing) is reserved.
    pub fn hook(&self, purpose: &str, hook: VerifyHook) -> Result<(), CosiError> {
        self.shared.hooks.set(purpose, hook).map_err(CosiError::BadRequest)
    }

    /// This node signs nothing (any purpose) until [`Self::release_signing`]; refusals say `reason`.
    pub fn hold_signing(&self, reason: &str) {
        self.shared.hooks.hold(reason);
    }

    pub fn release_signing(&self) {
        self.shared.hooks.release();
    }

    pub fn remove_hook(&self, purpose: &str) {
        self.shared.hooks.remove(purpose);
    }

    /// Makes this node misbehave in later rounds (tests, benchmarks).
    pub fn set_fault(&self, fault: CosiFault) {
        *self.shared.fault.write().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    pub fn fault(&self) -> CosiFault {
        self.shared.fault()
    }

    /// How many times this node, leading rounds, asked a late sub-leader's leaves directly
    /// (`conode_cosi_hedges`).
    pub fn hedges(&self) -> u64 {
        self.shared.timing.hedges().get()
    }

    /// How many members this node, leading rounds, asked directly because their sub-leader was
    /// late, failed or sent a bad aggregate (`conode_cosi_leaves_asked_directly`).
    pub fn leaves_asked_directly(&self) -> u64 {
        self.shared.timing.leaves_asked_directly().get()
    }

    /// Fault injection (tests): this node answers none of the next `rounds` rounds of `purpose`
    /// it is asked to sign in, as the `Silent` fault does for every round: a member that is slow
    /// in one phase of a protocol and answers again in the next.
    pub fn silence_rounds(&self, purpose: &str, rounds: usize) {
        self.shared.silent_rounds.lock().unwrap_or_else(|p| p.into_inner()).insert(purpose.to_string(), rounds);
    }

    /// The rounds of `purpose` this node is still to stay silent in (see `silence_rounds`).
    pub fn silent_rounds_left(&self, purpose: &str) -> usize {
        self.shared.silent_rounds.lock().unwrap_or_else(|p| p.into_inner()).get(purpose).copied().unwrap_or(0)
    }

    pub fn options(&self) -> CosiOptions {
        self.shared.options.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_options(&self, options: CosiOptions) {
        *self.shared.options.write().unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// The roster `/Cosi/Sign` uses when a request carries none. Called on a runtime, it is
    /// prepared for signing in the background (see [`Self::prepare`]).
    pub fn set_default_roster(&self, roster: Option<Roster>) {
        if let Some(r) = &roster {
            self.shared.network.admit(r.servers.iter().map(|m| m.public));
        }
        if let (Some(r), Ok(_)) = (&roster, tokio::runtime::Handle::try_current()) {
            let (this, r) = (self.clone(), r.clone());
            self.shared.tasks.spawn(async move {
                if let Err(e) = this.prepare(&r).await {
                    tracing::warn!(error = %e, "cosi: the default roster cannot be used");
                }
            });
        }
        *self.shared.default_roster.write().unwrap_or_else(|p| p.into_inner()) = roster;
    }

    /// A roster this node will sign with became known (loaded, set as the default, handed over by
    /// a chain): check its proofs of possession now, as one batch off the runtime's workers, and
    /// open the links this node uses as the root of a round over it (its sub-leaders), so that
    /// the first round pays neither. Returns once both are done; fails only for a bad roster.
    /// Must be called on the node's runtime.
    pub async fn prepare(&self, roster: &Roster) -> Result<(), CosiError> {
        let rr = if self.shared.rosters.needs_pop_checks(roster) {
            let (shared, r) = (self.shared.clone(), roster.clone());
            match self.shared.tasks.spawn_blocking(move || shared.rosters.for_roster(&r)).await {
                Ok(Ok(rr)) => rr,
                Ok(Err(e)) => return Err(CosiError::BadRoster(e)),
                Err(e) => return Err(CosiError::BadRoster(format!("checking the roster failed: {e}"))),
            }
        } else {
            self.shared.rosters.for_roster(roster).map_err(CosiError::BadRoster)?
        };
        self.shared.network.admit(roster.servers.iter().map(|m| m.public));
        protocol::warm_up(&self.shared, &rr, self.options().level_timeout).await;
        Ok(())
    }

    /// The proofs of possession this node has checked (shared with the services that load rosters).
    pub fn checked_pops(&self) -> crate::crypto::PopCache {
        self.shared.rosters.pops().clone()
    }

    /// The identity of the node this service runs on.
    pub fn node_key(&self) -> IdentityPublicKey {
        self.shared.network.public_key()
    }

    /// Runs a round with this node as root: the members of `roster` check `statement` with their
    /// hook for `purpose` (given `extra`), and the result meets `policy` and verified here.
    /// Must be called on the node's runtime.
    pub async fn sign(
        &self,
        roster: &Roster,
        statement: &[u8],
        purpose: &str,
        extra: &[u8],
        policy: Policy,
    ) -> Result<SignOutcome, CosiError> {
        let timeout = self.options().level_timeout;
        self.sign_with_timeout(roster, statement, purpose, extra, policy, timeout).await
    }

    /// `sign` with an explicit per-level timeout.
    pub async fn sign_with_timeout(
        &self,
        roster: &Roster,
        statement: &[u8],
        purpose: &str,
        extra: &[u8],
        policy: Policy,
        level_timeout: Duration,
    ) -> Result<SignOutcome, CosiError> {
        // New keys need pairings (their PoPs): they run off the runtime's workers while the round
        // runs, and the outcome is returned only once every PoP verified.
        let (rr, pop_check) = if self.shared.rosters.needs_pop_checks(roster) {
            let rr = self.shared.rosters.unchecked(roster).map_err(CosiError::BadRoster)?;
            let (shared, roster) = (self.shared.clone(), roster.clone());
            let tasks = shared.tasks.clone();
            (rr, Some(tasks.spawn_blocking(move || shared.rosters.for_roster(&roster).map(|_| ()))))
        } else {
            (self.shared.rosters.for_roster(roster).map_err(CosiError::BadRoster)?, None)
        };
        // The members of a roster this node signs for are served on its node port.
        self.shared.network.admit(roster.servers.iter().map(|m| m.public));
        let start = std::time::Instant::now();
        let outcome = protocol::run_root(
            self.shared.clone(),
            rr,
            statement.to_vec(),
            purpose.to_string(),
            extra.to_vec(),
            policy,
            level_timeout,
        )
        .await;
        let outcome = match pop_check {
            None => outcome,
            Some(check) => match check.await {
                Ok(Ok(())) => outcome,
                Ok(Err(e)) => Err(CosiError::BadRoster(e)),
                Err(e) => Err(CosiError::BadRoster(format!("checking the roster failed: {e}"))),
            },
        };
        // Purposes are the services' own names (a client's request uses the service's purpose).
        let l = labels(&[("purpose", if self.shared.hooks.knows(purpose, true) { purpose } else { "other" })]);
        self.shared.rounds.get_or_create(&l).inc();
        if outcome.is_err() {
            self.shared.round_failures.get_or_create(&l).inc();
        }
        self.shared.round_latency.get_or_create(&l).observe(start.elapsed().as_secs_f64());
        self.shared.ctx.events.emit(match &outcome {
            Ok(o) => NodeEvent::CosiRoundSigned {
                purpose: purpose.to_string(),
                statement_hash: crate::crypto::sha256(&[statement]),
                signers: o.report.signed.len(),
                n: o.report.n,
            },
            Err(e) => NodeEvent::CosiRoundFailed { purpose: purpose.to_string(), reason: e.to_string() },
        });
        outcome
    }
}

impl Service for CosiService {
    const NAME: &'static str = COSI_SERVICE;
    type Deps = ();

    /// Registers the peer protocol and `/Cosi/Sign`.
    fn start(ctx: &ServiceContext, _: ()) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let shared = Arc::new(Shared {
            config: ctx.config.clone(),
            network: ctx.network.clone(),
            tasks: ctx.tasks.clone(),
            ctx: ctx.clone(),
            hooks: HookRegistry::default(),
            rosters: RosterCache::new(match ctx.storage.tree(super::roster::CHECKED_ROSTERS_TREE) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "cosi: no durable record of checked rosters");
                    None
                }
            }),
            timing: Default::default(),
            admission: Default::default(),
            early_signing: Default::default(),
            inline_signing: Default::default(),
            fault: RwLock::new(CosiFault::None),
            silent_rounds: Default::default(),
            options: RwLock::new(CosiOptions::default()),
            default_roster: RwLock::new(None),
            parsed_rosters: crate::services::parsed_rosters::ParsedRosters::new(PARSED_ROSTERS_KEPT),
            rounds: Default::default(),
            round_failures: Default::default(),
            round_latency: seconds_histogram_family(),
            invalid_signatures: Default::default(),
            partials: Default::default(),
        });
        let weak = Arc::downgrade(&shared);
        ctx.metrics.add(
            COSI_SERVICE,
            Arc::new(move |reg: &mut Registry| {
                let Some(s) = weak.upgrade() else { return };
                reg.register("conode_cosi_rounds", "Cosi rounds this node led, by purpose", s.rounds.clone());
                reg.register(
                    "conode_cosi_round_failures",
                    "Cosi rounds this node led that failed, by purpose",
                    s.round_failures.clone(),
                );
                reg.register(
                    "conode_cosi_hedges",
                    "Late sub-leaders whose leaves this node, leading a round, asked directly",
                    s.timing.hedges().clone(),
                );
                reg.register(
                    "conode_cosi_leaves_asked_directly",
                    "Members this node, leading a round, asked directly: their sub-leader was late, failed or added up wrongly",
                    s.timing.leaves_asked_directly().clone(),
                );
                reg.register(
                    "conode_cosi_rounds_busy",
                    "Rounds this node was asked to lead and refused: as many as it can lead at once were running, and the round could not start within its level timeout or the queue was full",
                    s.admission.refused().clone(),
                );
                reg.register(
                    "conode_cosi_invalid_signatures",
                    "Members excluded from rounds this node led for an invalid signature",
                    s.invalid_signatures.clone(),
                );
                let partials = CounterFamily::default();
                for on in SignedOn::ALL {
                    partials.get_or_create(&labels(&[("on", on.label())])).inc_by(s.partials[on as usize].get());
                }
                reg.register(
                    "conode_cosi_partial_signatures",
                    "Partial signatures this node gave for rounds others led, by where it computed them: on a runtime worker after a quick hook, on the crypto pool after the hook, or on the pool while the hook checked",
                    partials,
                );
                metrics::counter(
                    reg,
                    "conode_cosi_early_signatures_wasted",
                    "Partial signatures computed while the hook checked the statement, which the hook then refused",
                    s.early_signing.wasted_count(),
                );
                reg.register_with_unit(
                    "conode_cosi_round_duration",
                    "Time of the cosi rounds this node led, by purpose",
                    Unit::Seconds,
                    s.round_latency.clone(),
                );
            }),
        );
        let weak = Arc::downgrade(&shared);
        ctx.status.add_rosters(
            COSI_SERVICE,
            Arc::new(move || {
                let Some(s) = weak.upgrade() else { return Vec::new() };
                let roster = s.default_roster.read().unwrap_or_else(|p| p.into_inner()).clone();
                roster
                    .map(|r| RosterView {
                        id: format!("cosi:{}", hex::encode(r.id())),
                        name: "default roster".into(),
                        kind: "cosi".into(),
                        members: r.servers,
                        facts: Default::default(),
                        activity: Vec::new(),
                    })
                    .into_iter()
                    .collect()
            }),
        );
        let s = shared.clone();
        ctx.network.register(
            COSI_SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let s = s.clone();
                Box::pin(async move { protocol::handle_peer(s, msg).await })
            }),
        );
        let s = shared.clone();
        ctx.clients.register(
            COSI_SERVICE,
            Arc::new(move |method, body| {
                let s = s.clone();
                Box::pin(async move { client_request(s, method, body).await })
            }),
        );
        Ok(CosiService { shared })
    }

    async fn stop(&self) {
        self.shared.ctx.metrics.remove(COSI_SERVICE);
        self.shared.ctx.status.remove(COSI_SERVICE);
        stop_service(&self.shared.ctx, COSI_SERVICE).await;
    }
}

impl From<CosiError> for ServiceError {
    fn from(e: CosiError) -> Self {
        match e {
            CosiError::Refused(r) => ServiceError::Refused(r),
            e @ (CosiError::BadRoster(_)
            | CosiError::NotInRoster(_)
            | CosiError::KeyMismatch(_)
            | CosiError::Policy(_)
            | CosiError::BadRequest(_)) => ServiceError::BadRequest(e.to_string()),
            ref e @ CosiError::ThresholdNotReached { signed, required, n, ref missing, .. } => {
                ServiceError::Threshold {
                    signed,
                    required,
                    n,
                    missing: missing.iter().map(|(_, x)| x.index).collect(),
                    message: e.to_string(),
                }
            }
            CosiError::Stopped => ServiceError::Unavailable(e.to_string()),
            CosiError::Busy { retry_after, .. } => {
                ServiceError::RateLimited { retry_after_ms: retry_after.as_millis(), message: e.to_string() }
            }
            e => ServiceError::Failed(e.to_string()),
        }
    }
}

fn wire_list(list: &[Exclusion]) -> Vec<WireExclusion> {
    list.iter().map(|e| WireExclusion { index: e.index as u32, reason: e.reason.clone() }).collect()
}

/// Parsed `/Cosi/Sign` rosters kept (only valid ones are kept).
const PARSED_ROSTERS_KEPT: usize = 8;

async fn client_request(shared: Arc<Shared>, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
    if method != "Sign" {
        return Err(ServiceError::UnknownMethod { service: COSI_SERVICE.into(), method });
    }
    if !shared.config.allow_open_signing {
        return Err(ServiceError::Refused(
            "open signing is disabled on this node (it needs `AllowOpenSigning = true` in private.toml)".into(),
        ));
    }
    let req = SignRequest::decode(body.as_slice())
        .map_err(|e| ServiceError::BadRequest(format!("undecodable SignRequest: {e}")))?;
    if req.message.len() > MAX_STATEMENT {
        return Err(ServiceError::BadRequest(format!(
            "message of {} bytes exceeds the limit of {MAX_STATEMENT}",
            req.message.len()
        )));
    }
    let roster = match req.roster_toml.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        Some(text) => {
            shared.parsed_rosters.parse(&shared.tasks, "roster_toml", &text).await.map_err(ServiceError::BadRequest)?
        }
        None => shared.default_roster.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| {
            ServiceError::BadRequest("no roster: send one in `roster_toml` (this node has no default roster)".into())
        })?,
    };
    let policy = match req.threshold {
        None | Some(0) => Policy::Default,
        Some(t) => Policy::Threshold(t as usize),
    };
    let timeout = match req.timeout_ms {
        None | Some(0) => shared.options.read().unwrap_or_else(|p| p.into_inner()).level_timeout,
        Some(ms) => Duration::from_millis(ms),
    };
    let svc = CosiService { shared };
    let outcome = svc
        .sign_with_timeout(&roster, &req.message, OPEN_SIGNING_PURPOSE, &[], policy, timeout)
        .await
        .map_err(ServiceError::from)?;
    let r = &outcome.report;
    Ok(SignResponse {
        signature: outcome.signature.to_bytes().to_vec(),
        mask: outcome.mask.clone(),
        signed: r.signed.iter().map(|&i| i as u32).collect(),
        refused: wire_list(&r.refused),
        timed_out: wire_list(&r.timed_out),
        invalid: wire_list(&r.invalid),
        required: r.required as u32,
    }
    .encode_to_vec())
}
