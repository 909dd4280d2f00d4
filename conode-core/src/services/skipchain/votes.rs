//! What this member has signed for each (chain, index), kept durably so that it never signs two
//! different blocks for one slot, even across a crash and restart (see the module doc of
//! `skipchain` for the protocol). The record is written (and flushed) before the hook lets the
//! signature leave the node, and forgotten once the chain has grown [`SETTLED_DEPTH`] blocks past
//! the slot here.
//!
//! Rules, per slot:
//! - prepare only in a view the slot has reached (`reachable_view`): views open one per
//!   millisecond from when the slot's previous block arrived here, or one above a certificate's;
//! - prepare at most one block per view, never in a view below one already prepared in;
//! - while locked on a block, prepare another only with a prepare certificate of that other block
//!   from a view above the lock (the lock may then be moved);
//! - sign a forward link (commit) only for a block with a prepare certificate of a view at least
//!   the lock's and at least every view it prepared in (a member that moved on to a later view
//!   never commits in an earlier one), and lock on it.
//! - fast appends (a view-1 prepare every member signed is final): having prepared a block X in
//!   view 1, prepare another block in a later view only with a certificate of that block, or a
//!   *closure*: signed statements of what they prepared in view 1 by f+1 members, none of them X
//!   (one of them is honest and did not prepare X, so X was not prepared by every member). A
//!   member that said it prepared nothing in view 1 never prepares there; one restored from a
//!   backup (what it prepared in view 1 unknown) neither, and needs a closure against every block
//!   but the proposed one.

use super::messages::{FirstViewStatement, PrepareCertificate, Proposal, SlotState};
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::sync::lock;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A vote this member will not cast, and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VoteRefused {
    #[error("already prepared another block at this index in view {view}")]
    PreparedOther { view: u64 },
    #[error("view {view} is below view {prepared} already prepared in")]
    OldView { view: u64, prepared: u64 },
    #[error("locked on another block at this index (view {lock_view}); no later certificate for this one")]
    Locked { lock_view: u64 },
    #[error("locked in view {lock_view}, not below the certificate's view {view}")]
    LockAbove { lock_view: u64, view: u64 },
    #[error("already prepared in view {prepared}, above the certificate's view {view}")]
    MovedOn { prepared: u64, view: u64 },
    #[error("cannot record the vote: {0}")]
    Storage(String),
    #[error("a batch names the slot of index {index} twice")]
    SlotTwice { index: u64 },
    #[error("view {view} is above the highest view a member takes part in ({MAX_VIEW})")]
    ViewTooHigh { view: u64 },
    #[error("view {view} is not open yet at this slot (views up to {reachable} are; one opens every millisecond)")]
    NotOpenYet { view: u64, reachable: u64 },
    #[error("said it prepares nothing in view 1 at this slot (or does not know what it prepared there)")]
    FirstViewClosed,
    #[error(
        "prepared another block in view 1 and the proposal shows neither a certificate of this one nor \
         statements of f+1 members that they prepared something else there"
    )]
    FirstViewUnclosed,
}

/// What a member said it prepared in view 1 of a slot, its signature verified by the caller: the
/// block's hash, or empty for nothing (see `FirstViewStatement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstViewVote {
    pub member: u32,
    pub hash: Vec<u8>,
}

/// What a member's durable state says it prepared in view 1 of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FirstView {
    /// Nothing, and it never will (it prepared in a later view, or said so).
    Nothing,
    /// Nothing yet: view 1 is still open to it.
    Open,
    /// This block.
    Block(Vec<u8>),
    /// Unknown (restored from a backup).
    Unknown,
}

/// What `state` says its member prepared in view 1.
pub(crate) fn first_view(state: &SlotState) -> FirstView {
    if state.first_view_unknown {
        return FirstView::Unknown;
    }
    if let Some(block) = state.first_view.as_ref().and_then(|p| p.block.as_ref()) {
        return FirstView::Block(block.hash.clone());
    }
    if state.first_view_closed {
        return FirstView::Nothing;
    }
    match state.prepared_view {
        0 => FirstView::Open,
        // A record from before fast appends kept no `first_view`.
        1 if !state.prepared_hash.is_empty() && !is_fence(&state.prepared_hash) => {
            FirstView::Block(state.prepared_hash.clone())
        }
        // A fence (placeholder block) is set with `first_view_unknown` where it matters.
        1 if is_fence(&state.prepared_hash) => FirstView::Nothing,
        _ => FirstView::Nothing,
    }
}

/// Whether the verified statements `closure` show that no block but `keep` was prepared in view
/// 1 by every member of a roster tolerating `faults` faulty members: for the block `suspect` (for
/// every block but `keep` when `None`), f+1 distinct members said they prepared something else
/// there (one of them is honest).
pub(crate) fn rules_out(closure: &[FirstViewVote], faults: usize, keep: &[u8], suspect: Option<&[u8]>) -> bool {
    let mut said: std::collections::BTreeMap<u32, Vec<&[u8]>> = std::collections::BTreeMap::new();
    for v in closure {
        said.entry(v.member).or_default().push(&v.hash);
    }
    // Members that said something other than `x` (and never `x`: an honest member says one thing).
    let others = |x: &[u8]| said.values().filter(|hashes| hashes.iter().all(|h| *h != x)).count();
    match suspect {
        Some(x) => others(x) > faults,
        None => {
            // A block nobody named has every member against it; a named one, all but its own.
            said.len() > faults
                && closure.iter().filter(|v| !v.hash.is_empty() && v.hash != keep).all(|v| others(&v.hash) > faults)
        }
    }
}

/// The highest view a member prepares in: far above the failed views a slot ever sees (each
/// costs a round and a growing pause), and far enough below `u64::MAX` that the next view after
/// any honest member's (`prepared_view + 1`) stays in range. A Byzantine proposer asking for a
/// view near `u64::MAX` (or a member reporting one) cannot make the views overflow or wrap.
pub const MAX_VIEW: u64 = 1 << 48;

/// How fast a slot's views open: one per this time since the slot's previous block arrived.
/// Honest proposers use a few views per append, each after a pause of 100 ms or more, so
/// they never meet the limit; a Byzantine proposer naming views far ahead (to push members to
/// views no honest proposer follows them to, and ultimately to [`MAX_VIEW`]) is refused: at this
/// rate reaching `MAX_VIEW` takes thousands of years.
pub const VIEW_OPENS_EVERY: Duration = Duration::from_millis(1);

/// How long a slot counts as open when this node does not know when its previous block arrived
/// (stored by a version from before arrivals were recorded): long enough that no honest view is
/// refused, short enough that `MAX_VIEW` stays out of reach. The store records the slot as opened
/// that long ago when it is first asked, so its views go on opening from there.
pub const UNKNOWN_SLOT_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Views a member's report may name above the views open here and still be believed: members'
/// clocks differ (and their blocks arrive at different times) by less than this many
/// milliseconds; a higher report is a lie, which a proposer following it (or a fence adopting it)
/// would take to a view no member opens for long.
pub const REPORT_SLACK_VIEWS: u64 = 10_000;

/// The highest view a prepare at a slot may name now: the views opened since the slot's previous
/// block arrived (`age`), and one above the view of a verified `justification` (a certificate
/// shows that view reached by more than two thirds).
pub(super) fn reachable_view(age: Duration, justification: Option<&PrepareCertificate>) -> u64 {
    let opened = (age.as_nanos() / VIEW_OPENS_EVERY.as_nanos()).min(MAX_VIEW as u128) as u64;
    (1 + opened).max(view_of(justification).saturating_add(1)).min(MAX_VIEW)
}

/// The first views of a slot are every proposer's: honest proposers contending for a slot settle
/// it within a few of them (each after a pause of 100 ms or more), as before views had owners.
pub const UNOWNED_VIEWS: u64 = 2_000;

/// Views above [`UNOWNED_VIEWS`] come in windows of this many (as many milliseconds, at one view
/// per [`VIEW_OPENS_EVERY`]), each owned by one member of the slot's roster, in roster order from
/// a member drawn per slot: only the owner proposes in them (members check its signature). A
/// Byzantine member racing the honest proposers to each newly opened view (so that members refuse
/// theirs as old) is then held to its own windows: while an honest member's window is the newest
/// open one, no other member can ask for a later view, and the honest proposer's two rounds fit
/// in its second (a few round trips: members up to ~250 ms apart, as across continents). Honest
/// contention stays within the first views; only a proposer whose view failed past them (a racer
/// at work) waits for its window: up to n seconds.
pub const VIEW_WINDOW: u64 = 1_000;

/// The roster index of the member owning `view` at slot `index` of chain `genesis`, whose
/// roster has `members` members (none for the first views, which are anyone's).
pub fn owner_of_view(genesis: &[u8], index: u64, members: usize, view: u64) -> Option<usize> {
    ViewOwners::of_slot(genesis, index, members).owner(view)
}

/// Who owns the views of one slot (see [`VIEW_WINDOW`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct ViewOwners {
    members: u64,
    /// The roster index owning the first window.
    first: u64,
}

impl ViewOwners {
    /// The owners of slot `index` of chain `genesis`, whose roster has `members` members.
    pub(super) fn of_slot(genesis: &[u8], index: u64, members: usize) -> Self {
        let members = members.max(1) as u64;
        let digest = crate::crypto::sha256(&[b"conode-skipchain-view-owners-v1", genesis, &index.to_be_bytes()]);
        let first = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % members;
        Self { members, first }
    }

    fn window(view: u64) -> u64 {
        (view - UNOWNED_VIEWS - 1) / VIEW_WINDOW
    }

    /// The roster index of the member owning `view` (none for the first views).
    pub(super) fn owner(&self, view: u64) -> Option<usize> {
        (view > UNOWNED_VIEWS).then(|| ((Self::window(view) + self.first) % self.members) as usize)
    }

    /// The first window at or after `window` that member `me` owns.
    fn own_window_from(&self, window: u64, me: usize) -> u64 {
        let n = self.members;
        let residue = (me as u64 % n + n - self.first) % n;
        window.saturating_add((residue + n - window % n) % n)
    }

    /// The first view above `after` that member `me` may propose in.
    pub(super) fn next_own(&self, after: u64, me: usize) -> u64 {
        let first = after.saturating_add(1);
        if self.owner(first).is_none_or(|owner| owner == me) {
            return first;
        }
        let own = self.own_window_from(Self::window(first) + 1, me);
        own.saturating_mul(VIEW_WINDOW).saturating_add(UNOWNED_VIEWS + 1)
    }

    /// The newest view open at `open` that member `me` may propose in.
    pub(super) fn newest_own(&self, open: u64, me: usize) -> u64 {
        if self.owner(open).is_none_or(|owner| owner == me) {
            return open;
        }
        let n = self.members;
        let window = Self::window(open);
        let back = ((window + self.first) % n + n - me as u64 % n) % n;
        match window.checked_sub(back) {
            Some(own) => UNOWNED_VIEWS + (own + 1) * VIEW_WINDOW,
            None => UNOWNED_VIEWS,
        }
    }
}

/// The highest of the views members report having prepared in that can be true when views up to
/// `open_here` are open at this node: reports above it by more than [`REPORT_SLACK_VIEWS`] (or at
/// [`MAX_VIEW`]) are ignored; 0 for none.
pub(super) fn highest_view(reported: impl IntoIterator<Item = u64>, open_here: u64) -> u64 {
    let credible = open_here.saturating_add(REPORT_SLACK_VIEWS).min(MAX_VIEW - 1);
    reported.into_iter().filter(|v| *v <= credible).max().unwrap_or(0)
}

/// How many blocks a chain grows past a slot before this node forgets its vote record there. A
/// member votes at a slot only while it holds the slot's previous block and not the slot's own
/// (the proposal must be its next block), so the record of a slot whose block it holds is never
/// consulted by the rules again. Without forgetting, every member would keep a second copy of
/// every block (the lock holds the proposal) for as long as the chain lives. Recent slots are
/// kept so that a proposer a few blocks behind still learns, from the members' reports, which
/// block they locked on.
pub const SETTLED_DEPTH: u64 = 16;

/// The durable votes of one node (cheap to clone).
#[derive(Clone)]
pub struct Votes {
    tree: ServiceTree,
    /// Check-and-record is one step per node.
    guard: Arc<Mutex<()>>,
}

fn key(genesis: &[u8], index: u64) -> Vec<u8> {
    let mut k = genesis.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn view_of(cert: Option<&PrepareCertificate>) -> u64 {
    cert.map_or(0, |c| c.view)
}

impl Votes {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self { tree: storage.tree("skipchain.votes")?, guard: Arc::new(Mutex::new(())) })
    }

    /// The slot's state (empty when nothing was signed). An unreadable record reads as a lock on
    /// nothing would be unsafe, so it is reported as an error.
    pub fn state(&self, genesis: &[u8], index: u64) -> Result<SlotState, VoteRefused> {
        match self.tree.get(&key(genesis, index)).map_err(|e| VoteRefused::Storage(e.to_string()))? {
            None => Ok(SlotState::default()),
            Some(bytes) => SlotState::decode(bytes.as_slice()).map_err(|e| VoteRefused::Storage(e.to_string())),
        }
    }

    fn save(&self, genesis: &[u8], index: u64, state: &SlotState) -> Result<(), VoteRefused> {
        self.tree.put(&key(genesis, index), &state.encode_to_vec()).map_err(|e| VoteRefused::Storage(e.to_string()))
    }

    /// The hash part of [`Self::first_view_answer`] (what the rules' tests check).
    #[cfg(test)]
    pub fn first_view_statement(
        &self,
        genesis: &[u8],
        index: u64,
        close: bool,
    ) -> Result<Option<Vec<u8>>, VoteRefused> {
        Ok(self.first_view_answer(genesis, index, close)?.map(|(hash, _)| hash))
    }

    /// What this member says it prepared in view 1 of the slot (a block's hash, or empty for
    /// nothing), for its signed statement, with the statement kept in the record if any (see
    /// [`Self::keep_slot_signatures`]); `None` when it does not know (restored from a backup), or
    /// has prepared nothing there yet and may not `close` view 1 now. Saying "nothing" closes view
    /// 1 to it, durably, before the answer leaves.
    pub fn first_view_answer(
        &self,
        genesis: &[u8],
        index: u64,
        close: bool,
    ) -> Result<Option<FirstViewAnswer>, VoteRefused> {
        let _one = lock(&self.guard);
        let mut state = self.state(genesis, index)?;
        let hash = match first_view(&state) {
            FirstView::Block(hash) => hash,
            FirstView::Nothing => Vec::new(),
            FirstView::Unknown => return Ok(None),
            FirstView::Open if !close => return Ok(None),
            FirstView::Open => {
                state.first_view_closed = true;
                self.save(genesis, index, &state)?;
                Vec::new()
            }
        };
        Ok(Some((hash, state.first_view_statement)))
    }

    /// Keeps the signatures this member gave in its slot state (see the `Slot` peer protocol), so
    /// that each is made once, however often or in whatever order peers ask: its prepare signed
    /// again as the prepare message of (`view`, `hash`), when the record still names that prepare
    /// (given while it does, see [`kept_prepare_signature`]); its statement of view 1, which never
    /// changes once given. Not part of the vote: the rules never read them.
    pub fn keep_slot_signatures(
        &self,
        genesis: &[u8],
        index: u64,
        prepared: Option<(u64, &[u8], &[u8])>,
        statement: Option<&FirstViewStatement>,
    ) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        let mut state = self.state(genesis, index)?;
        if state == SlotState::default() {
            // No record (none yet, or settled): nothing to keep a signature with.
            return Ok(());
        }
        let before = state.clone();
        if let Some((view, hash, signature)) = prepared {
            if state.prepared_view == view && state.prepared_hash == hash {
                state.prepared_signature = signature.to_vec();
                state.prepared_signature_of = prepared_tag(genesis, index, view, hash).to_vec();
            }
        }
        let kept = state.first_view_statement.as_ref();
        let new =
            |st: &&FirstViewStatement| kept.is_none_or(|k| k.block_hash != st.block_hash || k.member != st.member);
        if let Some(st) = statement.filter(new) {
            state.first_view_statement = Some(st.clone());
        }
        if state != before {
            self.save(genesis, index, &state)?;
        }
        Ok(())
    }

    /// Records a prepare unless the rules forbid it (the slot's `justification` verified by the
    /// caller: a certificate of the block `hash`).
    pub fn prepare(&self, slot: &PrepareSlot<'_>) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        let state = self.state(slot.genesis, slot.index)?;
        let next = prepare_rule(&state, slot)?;
        if next != state {
            self.save(slot.genesis, slot.index, &next)?;
        }
        Ok(())
    }

    /// Records the lock before this member signs a forward link of the proposal's block (whose
    /// `prepared` certificate the caller verified).
    pub fn commit(&self, genesis: &[u8], index: u64, proposal: &Proposal) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        let state = self.state(genesis, index)?;
        let next = commit_rule(&state, proposal)?;
        if next != state {
            self.save(genesis, index, &next)?;
        }
        Ok(())
    }
}

impl Votes {
    /// Forgets the vote record of the slot [`SETTLED_DEPTH`] below block `newest` of `genesis`,
    /// which this node has just stored durably (with its forward links). The removal is not
    /// flushed: one that a crash undoes leaves a record [`Self::settle_all`] removes later.
    pub fn settle(&self, genesis: &[u8], newest: u64) -> Result<(), VoteRefused> {
        let Some(index) = newest.checked_sub(SETTLED_DEPTH) else { return Ok(()) };
        // Under the guard: a signature kept at once (see `keep_slot_signatures`) cannot bring
        // the record back.
        let _one = lock(&self.guard);
        self.tree.forget(&key(genesis, index)).map_err(|e| VoteRefused::Storage(e.to_string()))
    }

    /// Forgets every record of a slot [`SETTLED_DEPTH`] or more below its chain's newest block
    /// here (`newest_of`; chains it does not hold keep theirs): records written by versions
    /// before [`Self::settle`], or whose removal a crash undid. Returns how many it removed.
    pub fn settle_all(&self, newest_of: impl Fn(&[u8]) -> Option<u64>) -> Result<u64, VoteRefused> {
        let mut removed = 0u64;
        let mut newest_here: Option<(Vec<u8>, Option<u64>)> = None;
        for k in self.tree.keys() {
            let Some(split) = k.len().checked_sub(8) else { continue };
            let (genesis, index) = k.split_at(split);
            let index = u64::from_be_bytes(index.try_into().unwrap_or_default());
            // Keys are sorted by chain: its newest block is looked up once per chain.
            if newest_here.as_ref().is_none_or(|(g, _)| g != genesis) {
                newest_here = Some((genesis.to_vec(), newest_of(genesis)));
            }
            let newest = newest_here.as_ref().and_then(|(_, n)| *n);
            if newest.is_some_and(|n| index.saturating_add(SETTLED_DEPTH) <= n) {
                let _one = lock(&self.guard);
                self.tree.forget(&k).map_err(|e| VoteRefused::Storage(e.to_string()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// How many slots this node keeps a vote record of (all chains).
    pub fn records(&self) -> usize {
        self.tree.len()
    }
}

/// A prepare to record: the slot, the view and block, the justification (verified by the
/// caller), the highest view the slot has reached here ([`reachable_view`]), the proposal (kept
/// when the view is 1), the members' statements of view 1 it carries (verified by the caller)
/// and the faults the slot's roster tolerates.
#[derive(Clone, Copy)]
pub struct PrepareSlot<'a> {
    pub genesis: &'a [u8],
    pub index: u64,
    pub view: u64,
    pub hash: &'a [u8],
    pub justification: Option<&'a PrepareCertificate>,
    pub reachable: u64,
    pub proposal: Option<&'a Proposal>,
    pub closure: &'a [FirstViewVote],
    pub faults: usize,
}

impl Votes {
    /// Records the prepares of a batched round: every slot's rule is checked first, and the
    /// votes are written in one durable write; none is recorded when one is refused.
    pub fn prepare_all(&self, slots: &[PrepareSlot<'_>]) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        self.record_all(
            slots.iter().map(|slot| {
                (slot.genesis, slot.index, Box::new(move |st: &SlotState| prepare_rule(st, slot)) as Rule<'_>)
            }),
        )
    }

    /// Records the locks of a batched forward-link round (each proposal's certificate verified by
    /// the caller): all rules first, then one durable write; none when one is refused.
    pub fn commit_all(&self, proposals: &[&Proposal]) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        self.record_all(proposals.iter().map(|&p| {
            let (genesis, index) = p.block.as_ref().map_or((&[][..], 0), |b| (b.genesis_id.as_slice(), b.index));
            (genesis, index, Box::new(move |st: &SlotState| commit_rule(st, p)) as Rule<'_>)
        }))
    }

    /// Applies each slot's rule to its state and writes the changed states at once (the caller
    /// holds the guard).
    fn record_all<'a>(&self, slots: impl Iterator<Item = (&'a [u8], u64, Rule<'a>)>) -> Result<(), VoteRefused> {
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (genesis, index, rule) in slots {
            // Each rule sees the stored state: two votes of one slot would both pass against it.
            if !seen.insert(key(genesis, index)) {
                return Err(VoteRefused::SlotTwice { index });
            }
            let state = self.state(genesis, index)?;
            let next = rule(&state)?;
            if next != state {
                writes.push((key(genesis, index), next.encode_to_vec()));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let entries: Vec<(&[u8], &[u8])> = writes.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        self.tree.put_batch(&entries).map_err(|e| VoteRefused::Storage(e.to_string()))
    }
}

/// A vote rule applied to one slot's state.
type Rule<'a> = Box<dyn Fn(&SlotState) -> Result<SlotState, VoteRefused> + 'a>;

impl Votes {
    /// Recovery after a restore (votes since the backup may be lost): records, for the slot
    /// `index`, a prepare in `view` of no real block (so this member prepares only in later views,
    /// and commits only with a certificate of at least that view) and adopts `lock` (a lock a
    /// member reported, its certificate verified by the caller) when it is above its own.
    pub fn fence(&self, genesis: &[u8], index: u64, view: u64, adopted: Option<Proposal>) -> Result<(), VoteRefused> {
        let _one = lock(&self.guard);
        let mut state = self.state(genesis, index)?;
        // Anything prepared in view 1 since the backup is lost (a view-1 block kept, or view 1
        // left behind, stays true).
        match first_view(&state) {
            FirstView::Open => state.first_view_unknown = true,
            FirstView::Block(hash) => keep_first_view(&mut state, &hash),
            _ => {}
        }
        if view > state.prepared_view || state.prepared_hash.is_empty() {
            state.prepared_view = state.prepared_view.max(view);
            state.prepared_hash = FENCE_HASH.to_vec();
        }
        if let Some(l) = adopted {
            if state.locked.as_ref().is_none_or(|own| l.view > own.view) {
                state.locked = Some(l);
            }
        }
        self.save(genesis, index, &state)
    }
}

/// What a member says it prepared in view 1 of a slot (a block's hash, or empty for nothing), with
/// the signed statement of it kept in the record, if any.
pub type FirstViewAnswer = (Vec<u8>, Option<FirstViewStatement>);

/// What names the prepare a kept signature signs (`SlotState.prepared_signature_of`).
fn prepared_tag(genesis: &[u8], index: u64, view: u64, hash: &[u8]) -> [u8; 32] {
    crate::crypto::sha256(&[&super::messages::prepare_message(genesis, index, view, hash)])
}

/// This member's kept signature of the prepare its record names, if it has one (see
/// [`Votes::keep_slot_signatures`]): never a signature of another prepare, whatever version
/// rewrote the record since.
fn kept_prepare_signature(genesis: &[u8], index: u64, state: &SlotState) -> Option<Vec<u8>> {
    let named = prepared_tag(genesis, index, state.prepared_view, &state.prepared_hash);
    let kept = !state.prepared_signature.is_empty() && state.prepared_signature_of == named;
    (kept && state.prepared_view > 0 && !is_fence(&state.prepared_hash)).then(|| state.prepared_signature.clone())
}

/// A member's vote record `state` as its slot state goes out: with the kept signature of the
/// prepare it names, if any ([`kept_prepare_signature`]), and without what names it.
pub(crate) fn as_slot_reply(genesis: &[u8], index: u64, mut state: SlotState) -> SlotState {
    state.prepared_signature = kept_prepare_signature(genesis, index, &state).unwrap_or_default();
    state.prepared_signature_of.clear();
    state
}

/// The "block" a fence prepared: no block hashes to it.
const FENCE_HASH: [u8; 32] = [0xfe; 32];

/// Whether a prepared hash is a fence's placeholder (never signed: not evidence of anything).
pub(super) fn is_fence(hash: &[u8]) -> bool {
    hash == FENCE_HASH
}

/// The prepare rule: the slot state after preparing the slot's block in its view, or why not.
pub(crate) fn prepare_rule(state: &SlotState, slot: &PrepareSlot<'_>) -> Result<SlotState, VoteRefused> {
    let PrepareSlot { view, hash, justification, reachable, proposal, closure, faults, .. } = *slot;
    if view > MAX_VIEW {
        return Err(VoteRefused::ViewTooHigh { view });
    }
    // A view this member prepared in stays open to it (the same block again is allowed below).
    if view > reachable.max(state.prepared_view) {
        return Err(VoteRefused::NotOpenYet { view, reachable });
    }
    if !state.prepared_hash.is_empty() {
        if view < state.prepared_view {
            return Err(VoteRefused::OldView { view, prepared: state.prepared_view });
        }
        if view == state.prepared_view {
            return if state.prepared_hash == hash {
                Ok(state.clone())
            } else {
                Err(VoteRefused::PreparedOther { view })
            };
        }
    }
    if let Some(locked) = &state.locked {
        let lock_view = locked.view;
        let same = locked.block.as_ref().is_some_and(|b| b.hash == hash);
        let justified = justification.is_some_and(|c| c.block_hash == hash && c.view > lock_view && c.view < view);
        if !same && !justified {
            return Err(VoteRefused::Locked { lock_view });
        }
    }
    let first = first_view(state);
    if view == 1 && matches!(first, FirstView::Nothing | FirstView::Unknown) {
        return Err(VoteRefused::FirstViewClosed);
    }
    if view >= 2 {
        let certified = justification.is_some_and(|c| c.block_hash == hash && c.view < view);
        let closed = match &first {
            FirstView::Block(x) if x.as_slice() != hash => rules_out(closure, faults, hash, Some(x)),
            FirstView::Unknown => rules_out(closure, faults, hash, None),
            _ => true,
        };
        if !certified && !closed {
            return Err(VoteRefused::FirstViewUnclosed);
        }
    }
    let mut next = state.clone();
    if let FirstView::Block(x) = &first {
        // A record from before fast appends: its view-1 block outlives the view it names.
        keep_first_view(&mut next, x);
    }
    next.prepared_view = view;
    next.prepared_hash = hash.to_vec();
    if view == 1 && next.first_view.is_none() {
        // Kept to be proposed again by whoever finds f+1 members prepared it in view 1.
        let kept = proposal.map(|p| Proposal {
            justification: None,
            prepared: None,
            closure: Vec::new(),
            proposer_signature: Vec::new(),
            level: 0,
            ..p.clone()
        });
        next.first_view = kept;
        keep_first_view(&mut next, hash);
    }
    Ok(next)
}

/// Records `hash` as the block of view 1 in `state` when only `prepared_hash` says so (a record
/// from before fast appends, about to name a later view).
fn keep_first_view(state: &mut SlotState, hash: &[u8]) {
    if state.first_view.is_none() {
        state.first_view = Some(Proposal {
            block: Some(crate::verify::skipchain::SkipBlock { hash: hash.to_vec(), ..Default::default() }),
            ..Default::default()
        });
    }
}

/// The commit rule: the slot state after locking on the proposal's block (whose `prepared`
/// certificate gives the view), or why not.
pub(crate) fn commit_rule(state: &SlotState, proposal: &Proposal) -> Result<SlotState, VoteRefused> {
    let view = view_of(proposal.prepared.as_ref());
    let hash = proposal.block.as_ref().map(|b| b.hash.clone()).unwrap_or_default();
    if state.prepared_view > view {
        return Err(VoteRefused::MovedOn { prepared: state.prepared_view, view });
    }
    if let Some(locked) = &state.locked {
        let same = locked.block.as_ref().is_some_and(|b| b.hash == hash);
        if same && locked.view >= view {
            return Ok(state.clone());
        }
        if locked.view >= view {
            return Err(VoteRefused::LockAbove { lock_view: locked.view, view });
        }
    }
    // Keep what is needed to re-propose the block (not the level of this round).
    let mut kept = proposal.clone();
    kept.level = 0;
    kept.view = view;
    kept.justification = None;
    kept.closure.clear();
    let mut next = state.clone();
    next.locked = Some(kept);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::skipchain::SkipBlock;

    fn votes() -> (tempfile::TempDir, Votes) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "votes-test").unwrap();
        (dir, Votes::open(&storage).unwrap())
    }

    fn proposal(hash: &[u8], view: u64) -> Proposal {
        Proposal {
            block: Some(SkipBlock { hash: hash.to_vec(), ..Default::default() }),
            prepared: Some(PrepareCertificate { view, block_hash: hash.to_vec(), ..Default::default() }),
            view,
            ..Default::default()
        }
    }

    /// A prepare in a slot whose views are all open (the other rules alone decide).
    fn prep(
        v: &Votes,
        genesis: &[u8],
        index: u64,
        view: u64,
        hash: &[u8],
        justification: Option<&PrepareCertificate>,
    ) -> Result<(), VoteRefused> {
        v.prepare(&PrepareSlot {
            genesis,
            index,
            view,
            hash,
            justification,
            reachable: MAX_VIEW,
            proposal: None,
            closure: &[],
            faults: 1,
        })
    }

    fn cert(hash: &[u8], view: u64) -> PrepareCertificate {
        PrepareCertificate { view, block_hash: hash.to_vec(), ..Default::default() }
    }

    #[test]
    fn one_block_per_view_and_never_back() {
        let (_d, v) = votes();
        prep(&v, b"g", 1, 1, b"A", None).unwrap();
        prep(&v, b"g", 1, 1, b"A", None).unwrap();
        assert_eq!(prep(&v, b"g", 1, 1, b"B", None), Err(VoteRefused::PreparedOther { view: 1 }));
        // Another block in a later view (with a certificate of it: A prepared in view 1).
        prep(&v, b"g", 1, 2, b"B", Some(&cert(b"B", 1))).unwrap();
        assert_eq!(prep(&v, b"g", 1, 1, b"A", None), Err(VoteRefused::OldView { view: 1, prepared: 2 }));
        // Another slot is independent.
        prep(&v, b"g", 2, 1, b"C", None).unwrap();
    }

    /// A prepare in a slot whose views are all open, with statements of view 1.
    fn prep_closed(v: &Votes, view: u64, hash: &[u8], closure: &[FirstViewVote]) -> Result<(), VoteRefused> {
        let proposal =
            Proposal { block: Some(SkipBlock { hash: hash.to_vec(), ..Default::default() }), ..Default::default() };
        v.prepare(&PrepareSlot {
            genesis: b"g",
            index: 1,
            view,
            hash,
            justification: None,
            reachable: MAX_VIEW,
            proposal: Some(&proposal),
            closure,
            faults: 1,
        })
    }

    fn said(member: u32, hash: &[u8]) -> FirstViewVote {
        FirstViewVote { member, hash: hash.to_vec() }
    }

    /// The signatures a member gives in its slot state are kept with the vote: its prepare's is
    /// given while the record names that prepare (not after a later one), its statement of view 1
    /// for good.
    #[test]
    fn slot_signatures_are_kept_while_the_record_names_what_they_sign() {
        let (_d, v) = votes();
        prep(&v, b"g", 1, 1, b"A", None).unwrap();
        v.keep_slot_signatures(b"g", 1, Some((2, b"A", b"other view")), None).unwrap();
        v.keep_slot_signatures(b"g", 1, Some((1, b"B", b"other block")), None).unwrap();
        let kept = || kept_prepare_signature(b"g", 1, &v.state(b"g", 1).unwrap());
        assert_eq!(kept(), None, "a signature of another prepare");
        v.keep_slot_signatures(b"g", 1, Some((1, b"A", b"sig A1")), None).unwrap();
        assert_eq!(kept().as_deref(), Some(&b"sig A1"[..]));
        // The same prepare again keeps it; a later one (or a record an older version rewrote for
        // one: the signature left in it) does not name it.
        prep(&v, b"g", 1, 1, b"A", None).unwrap();
        assert_eq!(kept().as_deref(), Some(&b"sig A1"[..]));
        prep(&v, b"g", 1, 2, b"B", Some(&cert(b"B", 1))).unwrap();
        assert_eq!(kept(), None, "given past its prepare");
        let mut older = v.state(b"g", 1).unwrap();
        older.prepared_signature_of.clear();
        assert_eq!(kept_prepare_signature(b"g", 1, &older), None, "a signature without what it names");
        v.keep_slot_signatures(b"g", 1, Some((2, b"B", b"sig B2")), None).unwrap();
        assert_eq!(kept().as_deref(), Some(&b"sig B2"[..]));
        // A fence's prepare names no block: nothing is given.
        v.fence(b"g", 1, 3, None).unwrap();
        assert_eq!(kept(), None);
        // The statement of view 1: the first is kept, another signature of it is not.
        let said = FirstViewStatement { member: 1, block_hash: b"A".to_vec(), signature: b"st".to_vec() };
        v.keep_slot_signatures(b"g", 1, None, Some(&said)).unwrap();
        let again = FirstViewStatement { signature: b"other".to_vec(), ..said.clone() };
        v.keep_slot_signatures(b"g", 1, None, Some(&again)).unwrap();
        assert_eq!(v.state(b"g", 1).unwrap().first_view_statement, Some(said));
        // Settled, the record is gone, and keeping a signature does not bring it back.
        v.settle(b"g", 1 + SETTLED_DEPTH).unwrap();
        v.keep_slot_signatures(b"g", 1, Some((2, b"B", b"sig")), None).unwrap();
        assert_eq!(v.state(b"g", 1).unwrap(), SlotState::default());
    }

    #[test]
    fn a_block_prepared_in_view_1_is_left_only_for_a_certificate_or_f_plus_1_other_statements() {
        let (_d, v) = votes();
        prep_closed(&v, 1, b"A", &[]).unwrap();
        let state = v.state(b"g", 1).unwrap();
        assert_eq!(first_view(&state), FirstView::Block(b"A".to_vec()));
        assert_eq!(state.first_view.unwrap().block.unwrap().hash, b"A", "the proposal is kept");
        // Without statements, or with f of them, B is refused in view 2.
        assert_eq!(prep_closed(&v, 2, b"B", &[]), Err(VoteRefused::FirstViewUnclosed));
        assert_eq!(prep_closed(&v, 2, b"B", &[said(1, b"")]), Err(VoteRefused::FirstViewUnclosed));
        // Statements naming A do not count; one member said twice counts once.
        let with_a = [said(0, b"A"), said(2, b"A"), said(1, b"B"), said(1, b"")];
        assert_eq!(prep_closed(&v, 2, b"B", &with_a), Err(VoteRefused::FirstViewUnclosed));
        // A again needs nothing.
        prep_closed(&v, 2, b"A", &[]).unwrap();
        // f+1 members that prepared something else (or nothing) in view 1: B may be prepared.
        prep_closed(&v, 3, b"B", &[said(1, b""), said(3, b"C"), said(0, b"A")]).unwrap();
        // The statement it gives: A, whatever it did later.
        assert_eq!(v.first_view_statement(b"g", 1, true).unwrap(), Some(b"A".to_vec()));
    }

    #[test]
    fn saying_nothing_in_view_1_closes_it_and_a_restored_member_knows_nothing() {
        let (_d, v) = votes();
        // Not yet allowed to close view 1: no statement, nothing recorded.
        assert_eq!(v.first_view_statement(b"g", 1, false).unwrap(), None);
        assert_eq!(v.state(b"g", 1).unwrap(), SlotState::default());
        assert_eq!(v.first_view_statement(b"g", 1, true).unwrap(), Some(Vec::new()));
        assert!(v.state(b"g", 1).unwrap().first_view_closed, "recorded before the answer leaves");
        assert_eq!(prep_closed(&v, 1, b"A", &[]), Err(VoteRefused::FirstViewClosed));
        prep_closed(&v, 2, b"A", &[]).unwrap();
        // Having prepared in view 2 only, it says nothing (and it never prepares in view 1).
        let (_d, w) = votes();
        prep_closed(&w, 2, b"A", &[]).unwrap();
        assert_eq!(w.first_view_statement(b"g", 1, true).unwrap(), Some(Vec::new()));
        // A restored member whose record shows nothing of view 1: unknown. It gives no
        // statement, never prepares in view 1, and a later view needs f+1 statements against every
        // other block.
        let (_d, r) = votes();
        // (Fenced in view 0: no member reported a view; its own view-1 rule alone refuses.)
        r.fence(b"g", 1, 0, None).unwrap();
        assert_eq!(first_view(&r.state(b"g", 1).unwrap()), FirstView::Unknown);
        assert_eq!(r.first_view_statement(b"g", 1, true).unwrap(), None);
        assert_eq!(prep_closed(&r, 1, b"A", &[]), Err(VoteRefused::FirstViewClosed));
        assert_eq!(prep_closed(&r, 2, b"A", &[]), Err(VoteRefused::FirstViewUnclosed));
        // C named by two members: not ruled out.
        let split = [said(0, b"C"), said(1, b"C"), said(2, b"")];
        assert_eq!(prep_closed(&r, 2, b"A", &split), Err(VoteRefused::FirstViewUnclosed));
        prep_closed(&r, 2, b"A", &[said(0, b"C"), said(1, b""), said(2, b"A")]).unwrap();
        // A member that said both A and something else counts for neither.
        let (_d, e) = votes();
        prep_closed(&e, 1, b"A", &[]).unwrap();
        let equivocated = [said(1, b"A"), said(1, b""), said(3, b"")];
        assert_eq!(prep_closed(&e, 2, b"B", &equivocated), Err(VoteRefused::FirstViewUnclosed));
        // A record from before fast appends (view 1 in `prepared_*` only) keeps its view-1 block
        // when it moves on, and when it is fenced.
        for fence in [false, true] {
            let (_d, o) = votes();
            o.save(b"g", 1, &SlotState { prepared_view: 1, prepared_hash: b"A".to_vec(), ..Default::default() })
                .unwrap();
            if fence {
                o.fence(b"g", 1, 5, None).unwrap();
            } else {
                prep_closed(&o, 2, b"B", &[said(1, b""), said(2, b"C")]).unwrap();
            }
            assert_eq!(o.first_view_statement(b"g", 1, true).unwrap(), Some(b"A".to_vec()), "fenced: {fence}");
        }
        // A fenced member that had prepared A in view 1 keeps knowing it.
        let (_d, k) = votes();
        prep_closed(&k, 1, b"A", &[]).unwrap();
        k.fence(b"g", 1, 3, None).unwrap();
        assert_eq!(first_view(&k.state(b"g", 1).unwrap()), FirstView::Block(b"A".to_vec()));
    }

    #[test]
    fn a_lock_is_left_only_for_a_later_certificate() {
        let (_d, v) = votes();
        prep(&v, b"g", 1, 1, b"A", None).unwrap();
        v.commit(b"g", 1, &proposal(b"A", 1)).unwrap();
        assert_eq!(prep(&v, b"g", 1, 3, b"B", None), Err(VoteRefused::Locked { lock_view: 1 }));
        // A certificate of B from view 1 (not above the lock) does not help.
        assert_eq!(prep(&v, b"g", 1, 3, b"B", Some(&cert(b"B", 1))), Err(VoteRefused::Locked { lock_view: 1 }));
        // The locked block may be prepared again in a later view.
        prep(&v, b"g", 1, 3, b"A", None).unwrap();
        // B with a certificate from view 4 (above the lock, below the proposal's view 5).
        prep(&v, b"g", 1, 5, b"B", Some(&cert(b"B", 4))).unwrap();
        // Having prepared in view 5, it commits nothing of an earlier view.
        assert_eq!(v.commit(b"g", 1, &proposal(b"B", 4)), Err(VoteRefused::MovedOn { prepared: 5, view: 4 }));
        // A commit of view 5 moves the lock to B.
        v.commit(b"g", 1, &proposal(b"B", 5)).unwrap();
        v.commit(b"g", 1, &proposal(b"B", 5)).unwrap();
        // Never two blocks committed in one view.
        assert_eq!(v.commit(b"g", 1, &proposal(b"A", 5)), Err(VoteRefused::LockAbove { lock_view: 5, view: 5 }));
        let state = v.state(b"g", 1).unwrap();
        assert_eq!(state.locked.unwrap().block.unwrap().hash, b"B");
    }

    #[test]
    fn views_stay_far_from_overflow() {
        let (_d, v) = votes();
        assert_eq!(prep(&v, b"g", 1, u64::MAX, b"A", None), Err(VoteRefused::ViewTooHigh { view: u64::MAX }));
        assert_eq!(prep(&v, b"g", 1, MAX_VIEW + 1, b"A", None), Err(VoteRefused::ViewTooHigh { view: MAX_VIEW + 1 }));
        assert!(v.state(b"g", 1).unwrap().prepared_hash.is_empty(), "nothing recorded");
        prep(&v, b"g", 1, MAX_VIEW, b"A", None).unwrap();
        // The highest credible report: lies at or above the bound, or far above the views open
        // here, ignored.
        let open = MAX_VIEW;
        assert_eq!(highest_view([3, 2], open), 3);
        assert_eq!(highest_view([u64::MAX, MAX_VIEW + 1, MAX_VIEW, MAX_VIEW - 1, 2], open), MAX_VIEW - 1);
        assert_eq!(highest_view([], open), 0);
        assert_eq!(highest_view([REPORT_SLACK_VIEWS + 100, 7], 100), REPORT_SLACK_VIEWS + 100);
        assert_eq!(highest_view([REPORT_SLACK_VIEWS + 101, 7], 100), 7, "a report no member can have made");
    }

    #[test]
    fn views_open_with_time_or_a_certificate() {
        let (_d, v) = votes();
        let just_now = Duration::ZERO;
        // A slot whose previous block just arrived: view 1 (and a few more) at once, a far view
        // not, nor the bound.
        let reachable = reachable_view(just_now, None);
        assert_eq!(reachable, 1);
        let slot = |view, reachable| PrepareSlot {
            genesis: b"g",
            index: 1,
            view,
            hash: b"A",
            justification: None,
            reachable,
            proposal: None,
            closure: &[],
            faults: 1,
        };
        assert_eq!(v.prepare(&slot(MAX_VIEW, reachable)), Err(VoteRefused::NotOpenYet { view: MAX_VIEW, reachable }));
        assert_eq!(v.prepare(&slot(1_000_000, reachable)), Err(VoteRefused::NotOpenYet { view: 1_000_000, reachable }));
        assert!(v.state(b"g", 1).unwrap().prepared_hash.is_empty(), "nothing recorded");
        v.prepare(&slot(1, reachable)).unwrap();
        // Views open with time: one per VIEW_OPENS_EVERY.
        assert_eq!(reachable_view(VIEW_OPENS_EVERY * 5000, None), 5001);
        assert_eq!(reachable_view(Duration::from_secs(u64::MAX), None), MAX_VIEW);
        // An unknown arrival counts a day: far below the bound.
        let unknown = reachable_view(UNKNOWN_SLOT_AGE, None);
        assert_eq!(unknown, 1 + (UNKNOWN_SLOT_AGE.as_nanos() / VIEW_OPENS_EVERY.as_nanos()) as u64);
        assert!(unknown < MAX_VIEW / 1_000_000);
        // A certificate shows its view reached: one more is open.
        assert_eq!(reachable_view(just_now, Some(&cert(b"A", 500_000))), 500_001);
        assert_eq!(reachable_view(just_now, Some(&cert(b"A", u64::MAX))), MAX_VIEW);
        // A view this member prepared in stays open to it (same block again).
        let (_d, w) = votes();
        w.prepare(&slot(40, 40)).unwrap();
        w.prepare(&slot(40, 1)).unwrap();
        assert_eq!(w.prepare(&slot(41, 1)), Err(VoteRefused::NotOpenYet { view: 41, reachable: 1 }));
    }

    #[test]
    fn views_above_the_first_ones_are_owned_in_windows_in_roster_order() {
        let (u, w) = (UNOWNED_VIEWS, VIEW_WINDOW);
        let owners = ViewOwners { members: 4, first: 2 };
        assert_eq!(owners.owner(1), None);
        assert_eq!(owners.owner(u), None);
        assert_eq!(owners.owner(u + 1), Some(2));
        assert_eq!(owners.owner(u + w), Some(2));
        assert_eq!(owners.owner(u + w + 1), Some(3));
        assert_eq!(owners.owner(u + 2 * w + 1), Some(0));
        assert_eq!(owners.owner(u + 4 * w + 1), Some(2));
        // The next own view: the first views are anyone's, then the member's own windows.
        assert_eq!(owners.next_own(0, 3), 1);
        assert_eq!(owners.next_own(7, 0), 8);
        assert_eq!(owners.next_own(u, 2), u + 1);
        assert_eq!(owners.next_own(u, 3), u + w + 1);
        assert_eq!(owners.next_own(u + w + 5, 3), u + w + 6, "inside its own window");
        assert_eq!(owners.next_own(u + 2 * w, 3), u + 5 * w + 1, "its window just ended");
        assert_eq!(owners.next_own(u, 1), u + 3 * w + 1);
        assert_eq!(owners.next_own(u64::MAX, 0), u64::MAX);
        for (after, me, n, first) in [(0, 0, 1, 0), (u + 7, 2, 3, 1), (12_345, 5, 7, 6), (MAX_VIEW, 1, 4, 3)] {
            let o = ViewOwners { members: n, first };
            let v = o.next_own(after, me);
            assert!(v > after && o.owner(v).is_none_or(|x| x == me), "{after} {me} {n}: {v}");
            assert!((after + 1..v).all(|x| o.owner(x).is_some_and(|x| x != me)), "{after} {me} {n}");
        }
        // The newest open own view.
        assert_eq!(owners.newest_own(10, 1), 10, "the first views are anyone's");
        assert_eq!(owners.newest_own(u + 7, 2), u + 7);
        assert_eq!(owners.newest_own(u + 7, 1), u, "its first window is not open yet");
        assert_eq!(owners.newest_own(u + 5 * w + 7, 3), u + 5 * w + 7);
        assert_eq!(owners.newest_own(u + 5 * w + 7, 2), u + 5 * w);
        for (open, me, n, first) in [(50_000, 0, 4, 1), (50_000, 3, 4, 0), (777_777, 6, 7, 4)] {
            let o = ViewOwners { members: n, first };
            let v = o.newest_own(open, me);
            assert!(v <= open && o.owner(v) == Some(me));
            assert!((v + 1..=open).all(|x| o.owner(x) != Some(me)));
        }
        // The first owner is drawn per slot, from the members.
        let drawn: std::collections::HashSet<u64> =
            (0..64).map(|i| ViewOwners::of_slot(b"chain", i, 4).first).collect();
        assert_eq!(drawn.len(), 4, "every member first now and then");
        assert!(ViewOwners::of_slot(b"chain", 9, 1).first == 0);
    }

    #[test]
    fn votes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), "votes-test").unwrap();
            prep(&Votes::open(&storage).unwrap(), b"g", 7, 2, b"A", None).unwrap();
        }
        let storage = Storage::open(dir.path(), "votes-test").unwrap();
        let v = Votes::open(&storage).unwrap();
        assert_eq!(prep(&v, b"g", 7, 2, b"B", None), Err(VoteRefused::PreparedOther { view: 2 }));
    }

    #[test]
    fn records_of_settled_slots_are_forgotten_and_recent_ones_kept() {
        let (_dir, v) = votes();
        let (chain, other) = ([7u8; 32], [9u8; 32]);
        for index in 1..=40 {
            prep(&v, &chain, index, 1, b"x", None).unwrap();
            v.commit(&chain, index, &proposal(b"x", 1)).unwrap();
        }
        prep(&v, &other, 3, 1, b"y", None).unwrap();
        assert_eq!(v.records(), 41);
        // Block 40 stored: the slot SETTLED_DEPTH below it goes; the others stay for the sweep.
        v.settle(&chain, 40).unwrap();
        assert_eq!(v.state(&chain, 40 - SETTLED_DEPTH).unwrap(), SlotState::default());
        assert_ne!(v.state(&chain, 39 - SETTLED_DEPTH).unwrap(), SlotState::default());
        // Early blocks settle nothing; forgetting what is gone already is no error.
        v.settle(&chain, SETTLED_DEPTH - 1).unwrap();
        v.settle(&chain, 40).unwrap();
        assert_eq!(v.records(), 40);
        // The sweep: every slot SETTLED_DEPTH or more below the chain's newest block; a chain
        // not held here keeps its records.
        let removed = v.settle_all(|g| (g == chain).then_some(40)).unwrap();
        assert_eq!(removed, 40 - SETTLED_DEPTH - 1);
        for index in 1..=40 {
            let kept = v.state(&chain, index).unwrap() != SlotState::default();
            assert_eq!(kept, index > 40 - SETTLED_DEPTH, "slot {index}");
        }
        assert_ne!(v.state(&other, 3).unwrap(), SlotState::default());
        assert_eq!(v.settle_all(|g| (g == chain).then_some(40)).unwrap(), 0);
        // Recent slots still vote by their records: another block is refused.
        assert!(prep(&v, &chain, 40, 1, b"z", None).is_err());
    }
}
