//! The hand-over of a chain from one beacon group to the next at an agreed round `T` (the
//! transition round of a resharing, see `transition_protocol`): the old group produces the rounds
//! before `T`, the new one `T` and after. The group key does not change, so every beacon, before or
//! after `T`, verifies against the same chain info; only who signs changes.
//!
//! On a member of both groups the new group and share are staged durably and take over as soon as
//! round `T − 1` is stored (`after_stored`); partials of rounds `≥ T` that arrive before that are
//! kept and replayed then. A new member holds the new group from the start but signs no round
//! before `T`: it syncs those from the old group (`follow`). A member left out signs no round from
//! `T` on, and the new group refuses its partials (it is not in the group any more).

use super::chain::{lock, Chain};
use super::messages as m;
use super::round_loop::retry_interval;
use super::service::{BeaconService, Inner};
use super::store::Share;
use crate::config::ServerIdentity;
use crate::crypto::IdentityPublicKey;
use crate::services::dkg::Group;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tracing::{info, warn};

/// Most early partials (of rounds after the transition) kept until the switch.
const MAX_EARLY: usize = 1024;

/// A new group and share waiting for their transition round.
pub(super) struct Next {
    pub(super) round: u64,
    pub(super) group: Group,
    pub(super) share: Share,
}

/// The transition state of a node's beacon service.
#[derive(Default)]
pub(crate) struct TransitionState {
    /// The resharing session running on this node, if any (see `transition_protocol`).
    pub(super) session: Mutex<Option<Arc<super::transition_protocol::Session>>>,
    pub(super) next: Mutex<Option<Next>>,
    /// Partials of rounds from the transition on, received before the switch.
    pub(super) early: Mutex<Vec<(IdentityPublicKey, m::PartialBeacon)>>,
    /// Where a new member syncs the rounds before its group's first one (the old group).
    pub(super) sources: Mutex<Vec<ServerIdentity>>,
    /// The roster the group should be reshared to (after a membership change).
    pub(super) wanted: Mutex<Option<crate::config::Roster>>,
    /// Fault injection: new indices this node's re-share deals are corrupt for.
    pub(super) corrupt_for: Mutex<BTreeSet<u32>>,
}

impl BeaconService {
    /// Stages a new group and share (already stored durably) to take over at its transition round.
    pub(super) fn stage_next(&self, chain: &Arc<Chain>, group: Group, share: Share) {
        let round = group.first_round();
        self.inner.network.admit(group.nodes.iter().map(|n| n.public));
        chain.stop_at.store(round, Ordering::SeqCst);
        *lock(&self.inner.transition.next) = Some(Next { round, group, share });
        info!(round, "beacon: resharing agreed; the new group takes over at round {round}");
        if chain.latest() + 1 >= round {
            self.after_stored(chain, chain.latest());
        }
    }

    /// Called once a beacon of `chain` is stored: switches to the staged group when the round
    /// before its transition round is in.
    pub(super) fn after_stored(&self, chain: &Chain, round: u64) {
        let next = {
            let mut next = lock(&self.inner.transition.next);
            match next.as_ref() {
                Some(n) if round + 1 >= n.round => {}
                _ => return,
            }
            if !self.chain().is_some_and(|c| std::ptr::eq(Arc::as_ptr(&c), chain)) {
                return;
            }
            match next.take() {
                Some(n) => n,
                None => return,
            }
        };
        self.switch(chain, next);
    }

    fn switch(&self, old: &Chain, next: Next) {
        let Some(store) = self.inner.store.as_ref() else { return };
        if let Err(e) = store.promote_next(&next.group, &next.share) {
            warn!(error = %e, "beacon: could not store the reshared group; staying with the old one");
            *lock(&self.inner.transition.next) = Some(next);
            return;
        }
        let last = store.last().ok().flatten();
        let round = next.round;
        // Watchers of the latest round (clients waiting, subscribers) keep following the chain.
        let started = Chain::new(next.group, next.share, last).and_then(|mut c| {
            let latest = c.latest();
            c.latest = old.latest.clone();
            c.latest.send_replace(latest);
            self.run_chain_of(c)
        });
        if let Err(e) = started {
            warn!(error = %e, "beacon: the reshared group cannot run");
            return;
        }
        info!(round, "beacon: switched to the reshared group at round {round}");
        let early = std::mem::take(&mut *lock(&self.inner.transition.early));
        if let (false, Some(chain)) = (early.is_empty(), self.chain()) {
            let this = self.clone();
            self.tasks().spawn(async move {
                for (from, p) in early {
                    let _ = this.on_partial(&chain, &from, p).await;
                }
            });
        }
    }

    /// What happens to a partial before the usual handling: `Some(reply)` when it is settled here
    /// (a round before this group's first: answered from storage; a round after the transition:
    /// kept for the next group, or refused on a member that leaves).
    pub(super) fn route_partial(
        &self,
        chain: &Arc<Chain>,
        from: &IdentityPublicKey,
        p: &m::PartialBeacon,
    ) -> Option<Result<m::PartialReply, String>> {
        let reply = |beacon| Some(Ok(m::PartialReply { beacon, latest_round: chain.latest() }));
        if p.round < chain.first_round {
            return reply(self.get(p.round).as_ref().map(super::store::to_packet));
        }
        let stop = chain.stop_at.load(Ordering::SeqCst);
        if p.round < stop {
            return None;
        }
        if lock(&self.inner.transition.next).is_some() {
            let mut early = lock(&self.inner.transition.early);
            if early.len() < MAX_EARLY {
                early.push((*from, p.clone()));
            }
            return reply(None);
        }
        Some(Err(format!("this node signs no round from {stop} on (it left the beacon group)")))
    }

    /// Restores a staged transition or a retirement after a restart.
    pub(super) fn resume_transition(&self) {
        let (Some(store), Some(chain)) = (self.inner.store.as_ref(), self.chain()) else { return };
        match store.retire_at() {
            Ok(Some(r)) => chain.stop_at.store(r, Ordering::SeqCst),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "beacon: stored retirement not usable"),
        }
        match store.load_next() {
            Ok(Some((g, _))) if g == chain.group => {
                if let Err(e) = store.drop_next() {
                    warn!(error = %e, "beacon: could not drop the promoted group");
                }
            }
            Ok(Some((g, s))) => self.stage_next(&chain, g, s),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "beacon: staged group not usable"),
        }
    }

    /// One step of a member that signs no round before its group's first one: syncs the next
    /// rounds from the old group (and its own), then, if nothing came, waits a little.
    pub(super) async fn follow(weak: &Weak<Inner>, chain: &Arc<Chain>) {
        let Some(inner) = weak.upgrade() else { return };
        let this = BeaconService { inner };
        let before = chain.latest();
        let mut sources = lock(&this.inner.transition.sources).clone();
        for (_, si) in chain.peers() {
            if !sources.iter().any(|s| s.public == si.public) {
                sources.push(si);
            }
        }
        for si in sources {
            let synced = tokio::time::timeout(Duration::from_secs(3), this.sync_from(chain, &si)).await;
            if matches!(synced, Ok(Ok(n)) if n > 0) && chain.latest() + 1 >= chain.first_round {
                break;
            }
        }
        let nap = retry_interval(chain.info.period) / 2;
        drop(this);
        if chain.latest() == before {
            tokio::time::sleep(nap).await;
        }
    }
}

impl BeaconService {
    /// Fault injection (tests): this node's partial of `round` over `previous_signature`, signed
    /// with its share even when it no longer signs (a member left out of a resharing that tries to
    /// contribute anyway).
    pub fn partial_anyway(&self, round: u64, previous_signature: Option<Vec<u8>>) -> Option<m::PartialBeacon> {
        let chain = self.chain()?;
        let prev = previous_signature.filter(|_| chain.scheme().is_chained());
        let msg = crate::verify::beacon::digest(chain.scheme(), round, prev.as_deref());
        let partial = super::partials::sign_partial_bytes(chain.scheme(), &chain.share, &msg);
        Some(m::PartialBeacon {
            round,
            previous_signature: prev.unwrap_or_default(),
            index: chain.share.index,
            partial,
        })
    }
}
