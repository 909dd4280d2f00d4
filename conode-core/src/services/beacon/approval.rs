//! Who may make this node start a beacon group or reshare its group.
//!
//! A DKG gives this node a group for good (another needs `conode reset`), and a group whose
//! threshold strangers hold lets them know every round in advance: a node takes part in a DKG, as
//! its leader or a member, only when its operator approved exactly that group (members,
//! threshold, scheme, period), as drand's operators each run `drand share`. `/Beacon/Init` on
//! the client port only says "go" to a group the leader's operator approved.
//!
//! A resharing hands the group's secret to new members, so one old member (or a client of its
//! port) must never be able to start one alone: an old member takes part only in a resharing to
//! members its own operator approved (with that threshold), or to the roster its membership
//! network decided by vote (with the default threshold). Without this rule a single Byzantine
//! member could reshare the group to nodes it runs and learn the group key. A new member takes
//! part on the same terms: a group is for good, and it must not be one that strangers made it
//! hold.

use super::chain::lock;
use super::service::BeaconService;
use crate::config::{Roster, ServerIdentity};
use crate::crypto::IdentityPublicKey;
use crate::services::dkg::minimum_threshold;
use crate::services::dkg::protocol::{DkgError, Params};
use crate::services::dkg::reshare::{ReshareError, ReshareParams, ReshareRequest};
use crate::services::ServiceError;
use crate::verify::beacon::Scheme;
use futures_util::future::BoxFuture;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Whether this node's network decided exactly these members (its newest roster has exactly
/// these identity keys), catching the network chain up once when it does not look so yet.
pub type MembersDecided = Arc<dyn Fn(Vec<IdentityPublicKey>) -> BoxFuture<'static, bool> + Send + Sync>;

/// Refusal a client of the client port gets for `/Beacon/Reshare`.
pub const RESHARING_IS_LOCAL: &str = "resharing a beacon group is an operator action: each old member's operator \
     approves the new roster on its own node (`conode -c private.toml beacon reshare --roster new.toml \
     [--approve-only]`, through the admin socket), or the members' network decides it by vote";

/// How a member's operator approves a beacon group (the refusal of an unapproved DKG says it).
pub const HOW_TO_APPROVE_INIT: &str = "each member's operator approves the group on its own node first: \
     `conode -c private.toml beacon approve --roster group.toml --period P [--scheme S] [--threshold T]` \
     (through the admin socket), then `conode beacon init` with the same roster and options starts it";

/// A beacon group this node's operator approved: its members' keys, threshold, scheme, period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InitApproval {
    members: BTreeSet<[u8; 32]>,
    threshold: usize,
    scheme: String,
    period_secs: u32,
}

/// What [`BeaconService::approve_init`] recorded, with its defaults filled in (also the admin
/// channel's answer to `approve-beacon`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovedGroup {
    pub members: usize,
    pub threshold: usize,
    pub scheme: String,
    pub period_secs: u32,
}

/// A resharing this node's operator approved: the new members' keys and the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ReshareApproval {
    members: BTreeSet<[u8; 32]>,
    threshold: usize,
}

fn key_set(keys: impl IntoIterator<Item = IdentityPublicKey>) -> BTreeSet<[u8; 32]> {
    keys.into_iter().map(|k| *k.as_bytes()).collect()
}

/// The threshold `threshold` stands for among `n` members (0: the minimum), if allowed.
fn checked_threshold(threshold: u32, n: usize) -> Result<usize, ServiceError> {
    let threshold = if threshold == 0 { minimum_threshold(n) } else { threshold as usize };
    if threshold < minimum_threshold(n) || threshold > n {
        return Err(ServiceError::BadRequest(format!(
            "threshold {threshold} for {n} members (allowed {}..={n})",
            minimum_threshold(n)
        )));
    }
    Ok(threshold)
}

impl BeaconService {
    /// Records that this node's operator approves a beacon group of exactly `members` with
    /// `threshold` signatures per round (0: the minimum, ⌊n/2⌋+1), scheme `scheme` (empty: the
    /// default, pedersen-bls-chained) and a round every `period_secs`; any member may lead its
    /// DKG. Replaces an earlier approval; used up once this node holds a group.
    pub fn approve_init(
        &self,
        members: &[ServerIdentity],
        threshold: u32,
        scheme: &str,
        period_secs: u32,
    ) -> Result<ApprovedGroup, ServiceError> {
        let n = members.len();
        let keys = key_set(members.iter().map(|m| m.public));
        if n == 0 || keys.len() != n {
            return Err(ServiceError::BadRequest("a beacon group needs members, each listed once".into()));
        }
        if !keys.contains(self.inner.me.as_bytes()) {
            return Err(ServiceError::BadRequest("this node is not in the roster".into()));
        }
        let threshold = checked_threshold(threshold, n)?;
        let scheme = if scheme.is_empty() {
            Scheme::PedersenBlsChained
        } else {
            Scheme::from_id(scheme).map_err(|e| ServiceError::BadRequest(e.to_string()))?
        };
        if period_secs == 0 {
            return Err(ServiceError::BadRequest("period must be at least 1 s".into()));
        }
        if self.inner.store.as_ref().is_some_and(|s| s.has_group()) {
            return Err(ServiceError::Refused(DkgError::HasGroup.to_string()));
        }
        let approval = InitApproval { members: keys, threshold, scheme: scheme.id().to_string(), period_secs };
        *lock(&self.inner.init_approved) = Some(approval);
        Ok(ApprovedGroup { members: n, threshold, scheme: scheme.id().to_string(), period_secs })
    }

    /// [`Self::approve_init`] of an `/Beacon/Init` request's roster and options (the admin
    /// channel's form).
    pub fn approve_init_request(&self, req: &super::messages::InitRequest) -> Result<ApprovedGroup, ServiceError> {
        if req.roster_toml.len() > super::messages::MAX_ROSTER_TOML {
            return Err(ServiceError::BadRequest("roster too large".into()));
        }
        let roster = Roster::from_toml_str(std::path::Path::new("roster_toml"), &req.roster_toml)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        self.approve_init(&roster.servers, req.threshold, &req.scheme, req.period_secs)
    }

    /// Whether this node takes part in (or leads) the DKG `p` describes: its operator approved
    /// exactly that group.
    pub(super) fn check_init_approval(&self, p: &Params) -> Result<(), DkgError> {
        let wanted = InitApproval {
            members: key_set(p.members.iter().copied()),
            threshold: p.threshold,
            scheme: p.config.scheme.clone(),
            period_secs: p.config.period_secs,
        };
        if lock(&self.inner.init_approved).as_ref() == Some(&wanted) {
            return Ok(());
        }
        // The point first: a client port's error reaches the client in 123 bytes.
        Err(DkgError::NotApproved(format!(
            "beacon group not approved on this node: every member's operator runs `conode beacon approve` first \
             ({} members, threshold {}, scheme {}, period {} s); {HOW_TO_APPROVE_INIT}",
            p.n(),
            p.threshold,
            p.config.scheme,
            p.config.period_secs
        )))
    }

    /// This node now holds a group: no DKG is approved any more.
    pub(super) fn init_approval_used(&self) {
        *lock(&self.inner.init_approved) = None;
    }

    /// Records that this node's operator approves a resharing of its group to exactly `members`
    /// with `threshold` signatures per round (0: the minimum, ⌊n/2⌋+1), led by any old member.
    /// Replaces an earlier approval; a transition to these members, once staged, uses it up.
    /// Returns the threshold approved.
    pub fn approve_reshare(&self, members: &[ServerIdentity], threshold: u32) -> Result<usize, ServiceError> {
        let n = members.len();
        if n == 0 {
            return Err(ServiceError::BadRequest("a resharing needs at least one new member".into()));
        }
        let keys = key_set(members.iter().map(|m| m.public));
        if keys.len() != n {
            return Err(ServiceError::BadRequest("a new member is listed twice".into()));
        }
        let threshold = checked_threshold(threshold, n)?;
        *lock(&self.inner.transition.approved) = Some(ReshareApproval { members: keys, threshold });
        Ok(threshold)
    }

    /// [`Self::approve_reshare`] of a request's roster and threshold (the admin channel's form).
    pub fn approve_reshare_request(&self, req: &ReshareRequest) -> Result<(usize, usize), ServiceError> {
        if req.roster_toml.len() > super::messages::MAX_ROSTER_TOML {
            return Err(ServiceError::BadRequest("roster too large".into()));
        }
        let roster = Roster::from_toml_str(std::path::Path::new("roster_toml"), &req.roster_toml)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let threshold = self.approve_reshare(&roster.servers, req.threshold)?;
        Ok((roster.len(), threshold))
    }

    /// Where this node learns whether its network decided a roster (set by the node, from the
    /// membership service).
    pub fn set_members_decided(&self, check: MembersDecided) {
        *lock(&self.inner.transition.decided) = Some(check);
    }

    /// Whether an old member of the group takes part in the resharing `p` proposed by a peer:
    /// its operator approved exactly these members and threshold, or its network decided these
    /// members and the threshold is the default one.
    pub(super) async fn check_approval(&self, p: &ReshareParams) -> Result<(), ReshareError> {
        let keys = key_set(p.members.iter().copied());
        let wanted = ReshareApproval { members: keys, threshold: p.threshold };
        if lock(&self.inner.transition.approved).as_ref() == Some(&wanted) {
            return Ok(());
        }
        if p.threshold == minimum_threshold(p.n()) {
            let decided = lock(&self.inner.transition.decided).clone();
            if let Some(check) = decided {
                if check(p.members.clone()).await {
                    return Ok(());
                }
            }
        }
        Err(ReshareError::Refused(format!(
            "a resharing to {} members with threshold {} that this node's operator did not approve and its \
             network did not decide",
            p.n(),
            p.threshold
        )))
    }

    /// A transition to `members` was staged: the approval of it is used up.
    pub(super) fn approval_used(&self, members: &[IdentityPublicKey]) {
        let keys = key_set(members.iter().copied());
        let mut approved = lock(&self.inner.transition.approved);
        if approved.as_ref().is_some_and(|a| a.members == keys) {
            *approved = None;
        }
    }
}
