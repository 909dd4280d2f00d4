//! The DKG service on a node: the `Dkg` peer protocol (prepare, go, deal, responses,
//! justification, done), one session at a time, phases driven by deadlines that end early once
//! every expected message is in, echo of responses and justifications so every honest node sees
//! the same complaints, and a hand-over of the result (group + share) to whoever registered a
//! completion hook (the beacon service), before `Done` goes to the leader.
//!
//! The leader is the node a client asked to start the DKG (`/Beacon/Init`): it proposes the
//! configuration, keeps the members that accept, tells them to go, and collects their results.
//!
//! This file holds the handle ([`DkgService`]), its [`Service`] impl (start and stop), the
//! completion hooks and the guard; the work is done in `session`, `leader`, `phases` and `peer`.

use super::group::{key_group, Group};
use super::protocol::{Disqualification, DkgError, Params};
use super::session::{lock, DkgStatus, Slot};
use crate::crypto::threshold::Scalar;
use crate::crypto::IdentityKeyPair;
use crate::network::{Network, PeerMessage};
use crate::services::{stop_service, Service, ServiceContext, StartError, Tasks};
use crate::storage::ServiceTree;
use crate::verify::beacon::Scheme;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

/// Name of the peer service.
pub const SERVICE: &str = "Dkg";
/// Storage tree of DKG transcripts.
pub const TREE: &str = "dkg";

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
/// Asked before taking part in (or leading) the DKG `Params` describe: e.g. "no chain yet", "its
/// operator approved this group".
pub type Guard = Arc<dyn Fn(&Params) -> Result<(), DkgError> + Send + Sync>;

/// What the handles share.
pub(super) struct Inner {
    pub(super) identity: IdentityKeyPair,
    pub(super) network: Network,
    /// The context this service started with (its own child set of tasks).
    pub(super) ctx: ServiceContext,
    pub(super) tree: ServiceTree,
    pub(super) current: Mutex<Option<Arc<Slot>>>,
    pub(super) hooks: RwLock<Vec<CompletionHook>>,
    pub(super) guard: RwLock<Option<Guard>>,
    pub(super) corrupt_for: Mutex<BTreeSet<u32>>,
    pub(super) faults: Mutex<super::session::Faults>,
}

/// Handle on a node's DKG service (cheap to clone).
#[derive(Clone)]
pub struct DkgService {
    pub(super) inner: Arc<Inner>,
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
                faults: Mutex::new(Default::default()),
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
    pub(super) fn tasks(&self) -> &Tasks {
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

    /// Fault injection (tests): this node's deals are first sent `delay` after dealing starts,
    /// in every DKG started after this call.
    pub fn delay_deals(&self, delay: std::time::Duration) {
        lock(&self.inner.faults).deal_delay = delay;
    }

    /// Fault injection (tests): this node accepts DKG proposals and starts, then sends nothing.
    pub fn mute(&self) {
        lock(&self.inner.faults).mute = true;
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

    pub(super) fn check_guard(&self, params: &Params) -> Result<(), DkgError> {
        let g = self.inner.guard.read().unwrap_or_else(|p| p.into_inner()).clone();
        match g {
            Some(g) => g(params),
            None => Ok(()),
        }
    }
}

/// Which group holds the keys of a scheme id.
pub fn scheme_key_group(id: &str) -> Option<crate::crypto::threshold::KeyGroup> {
    Scheme::from_id(id).ok().map(key_group)
}
