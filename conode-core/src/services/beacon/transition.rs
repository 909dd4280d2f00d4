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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The resharing this node's operator approved, if any (see `approval`).
    pub(super) approved: Mutex<Option<super::approval::ReshareApproval>>,
    /// Whether this node's network decided a roster (see `approval`).
    pub(super) decided: Mutex<Option<super::approval::MembersDecided>>,
    /// Fault injection: new indices this node's re-share deals are corrupt for.
    pub(super) corrupt_for: Mutex<BTreeSet<u32>>,
    /// Fault injection: as leader, send the Finish to these members only, then stop.
    pub(super) finish_only_to: Mutex<Option<BTreeSet<IdentityPublicKey>>>,
    /// Fault injection: forward a Finish to these participants only.
    pub(super) forward_only_to: Mutex<Option<BTreeSet<IdentityPublicKey>>>,
    /// Transitions completed on this node since it started (switches to a reshared group).
    pub(super) completed: AtomicU64,
    /// This node left the group and erased its share from storage.
    pub(super) share_erased: AtomicBool,
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
        if chain.first_round > 1 && round + 1 == chain.first_round {
            // A new member's group signs from this round on (it had nothing to switch from).
            self.switched(chain.first_round, chain.group.nodes.len() as u32);
        }
        let next = {
            let mut next = lock(&self.inner.transition.next);
            match next.as_ref() {
                Some(n) if round + 1 >= n.round => {}
                Some(_) => return,
                None => {
                    drop(next);
                    self.retire_if_done(chain, round);
                    return;
                }
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
        let members = next.group.nodes.len() as u32;
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
        self.switched(round, members);
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

    /// A member that left the group, once the round before it stops is stored (it will never sign
    /// again): erases its share from storage, so that no restart takes it up again (and a stolen
    /// disk holds no share of the group key). The share in memory goes with the process.
    pub(super) fn retire_if_done(&self, chain: &Chain, round: u64) {
        let stop = chain.stop_at.load(Ordering::SeqCst);
        if stop == u64::MAX || round + 1 < stop || self.inner.transition.share_erased.load(Ordering::SeqCst) {
            return;
        }
        let Some(store) = self.inner.store.as_ref() else { return };
        if !matches!(store.retire_at(), Ok(Some(r)) if r == stop) {
            return;
        }
        match store.erase_share() {
            Ok(()) => {
                self.inner.transition.share_erased.store(true, Ordering::SeqCst);
                info!(round = stop, "beacon: left the group at round {stop}; share erased");
            }
            Err(e) => warn!(error = %e, "beacon: could not erase the share of a group this node left"),
        }
    }

    /// Counts and announces a switch to a reshared group at `round`.
    fn switched(&self, round: u64, members: u32) {
        self.inner.transition.completed.fetch_add(1, Ordering::SeqCst);
        self.inner.ctx.events.emit(crate::events::NodeEvent::BeaconTransitionSwitched { round, members });
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
            Ok(Some(r)) => {
                chain.stop_at.store(r, Ordering::SeqCst);
                self.retire_if_done(&chain, chain.latest());
            }
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

/// A node's view of its beacon group's transition, for the status page, `/status` and metrics.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct TransitionStatus {
    /// `none`, `running` (a resharing before its Finish), `staged` (agreed; the new group signs
    /// from `round`), `switched` (the reshared group signs since `round`), `retiring` / `retired`
    /// (this node left the group at `round`), `aborted` (no Finish in time: the old group goes
    /// on), `failed`.
    pub state: String,
    /// The transition round (0 with `none`).
    pub round: u64,
    /// The resharing session (hex), when this run of the node took part in it.
    pub session: String,
    /// Members of the group before and after (0 when unknown here).
    pub old_members: u32,
    pub new_members: u32,
    /// How this node got the Finish (from the leader, forwarded by, fetched from), or why it failed.
    pub detail: String,
}

impl TransitionStatus {
    /// Whether a transition is agreed and not yet done (its round is in the future of this node's
    /// chain).
    pub fn pending(&self) -> bool {
        matches!(self.state.as_str(), "staged" | "retiring")
    }

    /// The fields as the `/status` section `BeaconTransition` shows them.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("state", self.state.clone()),
            ("round", self.round.to_string()),
            ("session", self.session.clone()),
            ("old_members", self.old_members.to_string()),
            ("new_members", self.new_members.to_string()),
            ("detail", self.detail.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl BeaconService {
    /// This node's transition state (see [`TransitionStatus`]).
    pub fn transition_status(&self) -> TransitionStatus {
        let session = lock(&self.inner.transition.session).clone();
        let mut st = TransitionStatus { state: "none".into(), ..Default::default() };
        if let Some(s) = &session {
            let (id, done, via) = s.summary();
            st.session = id;
            st.round = s.params().config.transition_round;
            st.old_members = s.params().old.nodes.len() as u32;
            st.new_members = s.params().n() as u32;
            st.detail = match &done {
                Some(d) if !d.error.is_empty() => d.error.clone(),
                _ => via,
            };
            st.state = match &done {
                None => "running",
                Some(d) if d.error.starts_with("aborted") => "aborted",
                Some(d) if !d.error.is_empty() => "failed",
                Some(_) => "none",
            }
            .into();
        }
        let Some(chain) = self.chain() else {
            // A member that left a group and restarted runs no chain (its share is erased).
            if let (Some(Ok(Some(r))), false) =
                (self.inner.store.as_ref().map(|s| s.retire_at()), st.state == "running")
            {
                return TransitionStatus { state: "retired".into(), round: r, ..st };
            }
            return st;
        };
        let latest = chain.latest();
        // An agreed transition (staged, retiring, switched) is what the chain says; a later
        // resharing still running or aborted is shown over a switch done before it.
        let of_session = |round: u64| session.as_ref().is_some_and(|s| s.params().config.transition_round == round);
        let (state, round, old, new) = if let Some(n) = lock(&self.inner.transition.next).as_ref() {
            ("staged", n.round, chain.group.nodes.len() as u32, n.group.nodes.len() as u32)
        } else if chain.stop_at.load(Ordering::SeqCst) != u64::MAX {
            let stop = chain.stop_at.load(Ordering::SeqCst);
            let new = if of_session(stop) { st.new_members } else { 0 };
            let due = chain.round_time_ms(stop).is_some_and(|t| t <= super::round_loop::unix_now_ms());
            (if due { "retired" } else { "retiring" }, stop, chain.group.nodes.len() as u32, new)
        } else if chain.first_round > 1 && latest + 1 < chain.first_round {
            let old = if of_session(chain.first_round) { st.old_members } else { 0 };
            ("staged", chain.first_round, old, chain.group.nodes.len() as u32)
        } else if st.state != "none" || chain.first_round <= 1 {
            return st;
        } else {
            let old = if of_session(chain.first_round) { st.old_members } else { 0 };
            ("switched", chain.first_round, old, chain.group.nodes.len() as u32)
        };
        if !of_session(round) {
            st.session.clear();
            st.detail.clear();
        }
        TransitionStatus { state: state.into(), round, old_members: old, new_members: new, ..st }
    }

    /// Whether this node would sign `round` with its current share (false before its group's
    /// first round and from the round it leaves or hands over at).
    pub fn signs_round(&self, round: u64) -> bool {
        self.chain().is_some_and(|c| c.signs(round))
    }

    /// Transitions to a reshared group completed on this node since it started.
    pub fn transitions_completed(&self) -> u64 {
        self.inner.transition.completed.load(Ordering::SeqCst)
    }

    /// Fault injection (tests): as leader of a resharing, send the Finish to `members` only,
    /// then stop (a leader crashing between its Finish sends).
    pub fn reshare_finish_only_to(&self, members: impl IntoIterator<Item = IdentityPublicKey>) {
        *lock(&self.inner.transition.finish_only_to) = Some(members.into_iter().collect());
    }

    /// Fault injection (tests): forward a Finish to `members` only (the others must fetch it).
    pub fn reshare_forward_only_to(&self, members: impl IntoIterator<Item = IdentityPublicKey>) {
        *lock(&self.inner.transition.forward_only_to) = Some(members.into_iter().collect());
    }

    /// Clears the resharing faults above.
    pub fn clear_reshare_faults(&self) {
        *lock(&self.inner.transition.finish_only_to) = None;
        *lock(&self.inner.transition.forward_only_to) = None;
    }
}
