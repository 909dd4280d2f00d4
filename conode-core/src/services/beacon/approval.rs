//! Who may make this node's beacon group reshare. A resharing hands the group's secret to new
//! members, so one old member (or a client of its port) must never be able to start one alone: an
//! old member takes part only in a resharing to members its own operator approved (with that
//! threshold), or to the roster its membership network decided by vote (with the default
//! threshold). Without this rule a single Byzantine member could reshare the group to nodes it
//! runs and learn the group key.

use super::chain::lock;
use super::service::BeaconService;
use crate::config::{Roster, ServerIdentity};
use crate::crypto::IdentityPublicKey;
use crate::services::dkg::minimum_threshold;
use crate::services::dkg::reshare::{ReshareError, ReshareParams, ReshareRequest};
use crate::services::ServiceError;
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

/// A resharing this node's operator approved: the new members' keys and the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ReshareApproval {
    members: BTreeSet<[u8; 32]>,
    threshold: usize,
}

fn key_set(keys: impl IntoIterator<Item = IdentityPublicKey>) -> BTreeSet<[u8; 32]> {
    keys.into_iter().map(|k| *k.as_bytes()).collect()
}

impl BeaconService {
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
        let threshold = if threshold == 0 { minimum_threshold(n) } else { threshold as usize };
        if threshold < minimum_threshold(n) || threshold > n {
            return Err(ServiceError::BadRequest(format!(
                "threshold {threshold} for {n} members (allowed {}..={n})",
                minimum_threshold(n)
            )));
        }
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
