//! Skipchains: the cothority's tamper-evident log. Blocks are accepted by the roster, linked forward
//! by collective signatures at several levels, stored durably on every member, and served with
//! O(log n) proofs that the pure verifier ([`crate::verify::skipchain`]) checks.
//!
//! ## No forks: two-phase appends with durable votes (Tendermint-style, on collective signatures)
//!
//! Any member may propose the next block of a chain (the owner's client picks one). An append is:
//! 1. **Prepare**: the roster of the latest block cosigns `prepare(chain, index, view, block hash)`
//!    (purpose `SkipchainPrepare`). More than two thirds make a *prepare certificate*.
//! 2. **Commit**: the source rosters cosign the forward links to the block; a member signs only
//!    with a valid prepare certificate and *locks* on the block. In the v2 link format the
//!    statement names the block alone (`sha256("conode-skipchain-commit-v2" ‖ hash)`; the hash
//!    covers its chain, index, roster and back links), so one round per source roster (usually
//!    one) signs every level. Members that refuse v2 (older code) make the proposer fall back to
//!    one v1 round per level (statement `sha256(from ‖ to [‖ new roster])`); one whose refusal
//!    comes after the round refuses the block, and gets its links signed again in v1 by the
//!    members that hold it (`older_members`; a link to a block the member holds endorses no
//!    other block). The commit slot is (chain, index): a member locks on one block per index,
//!    whatever the levels or format.
//!
//! Each member keeps, per (chain, index), durably and before its signature leaves it (`votes`):
//! the highest view it prepared in and for which block, and its lock (view, proposal, certificate),
//! until the chain has grown `votes::SETTLED_DEPTH` (16) blocks past the slot: a member votes only
//! at the slot after its newest block, so the record of a slot whose block it holds is never read
//! by the rules again, and forgetting it keeps members from storing every block twice.
//! It prepares at most one block per view and never in an older view; while locked it prepares
//! another block only with that block's certificate from a view above its lock; it commits only
//! for a certificate of a view ≥ every view it prepared in and ≥ its lock (never two blocks in one
//! view). With at most f = ⌊(n−1)/3⌋ faulty members, a committed block X has f+1 honest members
//! locked on it, no certificate for another block can form in that or any later view, so no second
//! forward link from the same source and level (nor a v2 signature of another block of that
//! index) can be signed: no fork.
//!
//! **Fast appends (v4 links)**: in view 1 the roster signs the block's *fast statement*
//! (`ForwardLink::fast_message`: the block and the roster's id) instead of its prepare message.
//! Signed by every member, that prepare is final and is itself the block's forward link at every
//! level (when every source block has that roster; otherwise the links get their round): one
//! round per append instead of two. More than two thirds is a prepare certificate as any other,
//! and the commit round follows. Why it is safe: a member
//! that prepared X in view 1 prepares another block in a later view only with that block's
//! certificate or with signed statements of view 1 (`FirstViewStatement`, asked with the slot
//! state) by f+1 members that name something other than X; when every member prepared X, only
//! the f faulty ones can say so, and by induction no certificate of another block forms in a later
//! view. A proposer whose view failed re-proposes, after the highest lock, a block more than f
//! members prepared in view 1 (a block every member prepared is the only one: the others have f
//! statements at most); its content comes from the members' records. A member that says it
//! prepared nothing in view 1 records that first (and only once the view had 200 ms, when a member
//! of the slot's roster asks), and never prepares there; one restored from a backup does not know
//! (`votes::fence`), gives no statement, and needs statements against every other block.
//! `votes_model` checks these rules for members that know their votes (its Byzantine member says
//! "nothing", the statement that helps most against a block); restored members are unit-tested.
//!
//! **No wedging**: conflicting proposals may leave members prepared or locked on different blocks.
//! When a view fails, the proposer asks the members for their slot state (`Slot` peer protocol),
//! moves to a view above every prepared one, and re-proposes the highest-view locked block (with
//! its certificate as justification) instead of its own — that block may already be committed
//! (in its own views, see below).
//! Once contention stops, one proposer gets every honest member to prepare and commit. A client
//! whose block lost gets a `conflict` error. (The proposer is whichever member the client calls;
//! there is no forwarding to a single leader: views settle contention instead.)
//!
//! **Views open with time**: a member prepares only in a view its slot has reached, one opening
//! every millisecond after the slot's previous block arrived at the member (recorded with the
//! block, so a restart changes nothing; a day's worth for blocks stored by versions before the
//! record), or one above the view of the proposal's certificate
//! (`votes::reachable_view`). A member that got the previous block late (left out of its rounds
//! and push, or down) and is asked for a view not open at it yet asks the members when the block
//! arrived at them and adopts the (f+1)-th earliest answer if earlier (`arrivals`): liars cannot
//! move it before an honest member saw the block. Honest proposers use a few views per append, 100 ms or more
//! apart (or wait for their own window, below), and never meet the limit. Without it, a Byzantine proposer could ask members to
//! prepare a real block in the highest view they take part in and leave it there: they would then
//! refuse every later view, and with f+1 of them pushed the slot would be stuck for good. Now a
//! member's view is at most the slot's age in milliseconds: reaching the bound takes thousands of
//! years. Proposers ignore members' reports of views not open anywhere yet (lies), and so does a
//! restored node's fence.
//!
//! **Views are owned**: the first `votes::UNOWNED_VIEWS` (2,000) views of a slot are every
//! proposer's, so honest proposers contending for a slot settle it as quickly as before. Later
//! views come in windows of `votes::VIEW_WINDOW` (one second), owned by the roster's members in turn
//! from a member drawn per slot, and a prepare request in such a view carries the owner's identity
//! signature. A proposer whose view failed past the first ones goes on in its own next window
//! (waiting up to n seconds for it to open). Without owners, a Byzantine member could race the
//! honest proposers to each newly opened view (members refuse views below one they prepared in,
//! and commit nothing of a view below one they prepared in), holding the slot as long as it liked;
//! with them, an honest proposer's window is the newest open one for a second, which no other
//! member can pass, and its two rounds fit in it (a few round trips: members up to ~250 ms apart). Members running code from before owners send views past the first ones
//! unsigned: upgraded members refuse those, so during a rolling upgrade an old member settles
//! contention only within the first views.
//!
//! **Batched rounds**: appends of different chains that wait at one proposer for the same roster
//! share their rounds (`batched`): one prepare round over a batch statement of their prepare
//! messages, one forward-link round over the v3 statement of their blocks. Members check each
//! proposal of a batch as if alone and record the same per-slot votes; a batch that fails or that
//! a member refuses falls back to rounds of one append, so the rules above decide alone.
//!
//! - `messages`: client and peer wire messages; `owner`: the owner-signed `Append`.
//! - `evidence`: conflicting forward links, and prepares of two blocks in one view (which a
//!   proposer compares after a failed view), kept against the members that signed both.
//! - `arrivals`: when a slot's previous block arrived, as the members saw it (a member that got
//!   it late opens views as they do).
//! - `votes`: the durable per-slot votes and locks; `votes_model`: an exhaustive check of their rules.
//! - `store`: durable sled storage.
//! - `rosters`: block rosters checked once (keys, PoPs) and remembered.
//! - `verified`: prepare certificates and owner signatures verified once per node.
//! - `subscribe`: `/Skipchain/Subscribe`, a chain's blocks streamed to a client.
//! - `service`: create/append/get/update, the prepare and commit hooks, propagation and catch-up;
//!   `batched` (a child of it): the rounds several chains' appends share; `older_members` (another
//!   child): members running code from before v2 links, during a rolling upgrade.

mod arrivals;
mod evidence;
pub mod messages;
mod observe;
mod owner;
mod rosters;
mod service;
pub mod store;
mod subscribe;
mod verified;
mod votes;
#[cfg(test)]
mod votes_model;

pub use observe::Phase;
pub use service::{
    block_roster, config_roster, CatchUpFault, Governor, SkipchainError, SkipchainService, COMMIT_BATCH_PURPOSE,
    COMMIT_PURPOSE, PREPARE_BATCH_PURPOSE, PREPARE_PURPOSE, RACES_TO_NEWEST_VIEW, RECOVERY_SECTION, SKIPCHAIN_SERVICE,
};
pub use votes::{owner_of_view, MAX_VIEW, SETTLED_DEPTH, UNOWNED_VIEWS, VIEW_WINDOW};
