//! An exhaustive check of the vote rules (`votes::prepare_rule`, `votes::commit_rule`, the code
//! the nodes run): every interleaving of prepares and commits by 3 honest members and 1 Byzantine
//! member (which counts for every certificate and every commit) over 2 blocks and views 1..=3, with
//! every possible justification, with views opening one by one as time passes (a prepare names
//! an open view, or one above its justification's), and with the fast path: a member may say it
//! prepared nothing in view 1 (closing view 1 to it), and prepares in later views carry every
//! statement of view 1 the members have made (the Byzantine member's: "nothing", the statement
//! that helps most). Safety property: never are two different blocks final at one slot, final
//! being committed (by more than two thirds) or prepared in view 1 by every member (fast). Also checked: some state commits a block (the rules are not
//! vacuous), and from a state where members are locked on different blocks a block can still be
//! committed (no wedge).
//!
//! Forgetting a settled slot's record (`votes::settle`) needs no state here: a member forgets only
//! the records of slots where it holds the block (16 below its newest), and it never votes at such
//! a slot again (a proposal for an index it holds is refused before the rules are asked). That is
//! a member that stops acting at the slot, which every interleaving checked here allows.

use super::messages::{PrepareCertificate, Proposal, SlotState};
use super::votes::{commit_rule, prepare_rule, FirstViewVote, PrepareSlot};
use crate::verify::skipchain::SkipBlock;
use std::collections::{HashSet, VecDeque};

const HONEST: usize = 3;
const VIEWS: usize = 3;
const VALUES: [u8; 2] = [1, 2];
/// n = 4, f = 1: a certificate or a commit needs 3 members.
const QUORUM: usize = 3;

/// What each honest member did: per view (index 1..=VIEWS), the value prepared and committed
/// (0 = nothing); whether it said it prepared nothing in view 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Member {
    prepared: [u8; VIEWS + 1],
    committed: [u8; VIEWS + 1],
    closed: bool,
}

/// The honest members, and the highest view open at the slot (time passing opens the next).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct World {
    members: [Member; HONEST],
    open: usize,
}

impl Default for World {
    fn default() -> Self {
        Self { members: Default::default(), open: 1 }
    }
}

fn hash(value: u8) -> Vec<u8> {
    vec![value; 4]
}

impl Member {
    /// The durable state a node would hold after these actions.
    fn slot_state(&self) -> SlotState {
        let mut s = SlotState::default();
        for v in 1..=VIEWS {
            if self.prepared[v] != 0 {
                s.prepared_view = v as u64;
                s.prepared_hash = hash(self.prepared[v]);
            }
        }
        for v in 1..=VIEWS {
            if self.committed[v] != 0 {
                s.locked = Some(proposal(self.committed[v], v as u64));
            }
        }
        if self.prepared[1] != 0 {
            s.first_view = Some(proposal(self.prepared[1], 1));
        }
        s.first_view_closed = self.closed;
        s
    }

    /// What it says it prepared in view 1, if it has said or can say it without acting.
    fn statement(&self) -> Option<Vec<u8>> {
        if self.prepared[1] != 0 {
            Some(hash(self.prepared[1]))
        } else if self.closed || self.prepared.iter().any(|&p| p != 0) {
            Some(Vec::new())
        } else {
            None
        }
    }
}

/// The statements of view 1 a proposer can gather: every honest member's that has one, and the
/// Byzantine member's "nothing".
fn closure(w: &World) -> Vec<FirstViewVote> {
    let honest = w
        .members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some(FirstViewVote { member: i as u32, hash: m.statement()? }));
    honest.chain(std::iter::once(FirstViewVote { member: HONEST as u32, hash: Vec::new() })).collect()
}

fn proposal(value: u8, view: u64) -> Proposal {
    Proposal {
        block: Some(SkipBlock { hash: hash(value), ..Default::default() }),
        view,
        prepared: Some(PrepareCertificate { view, block_hash: hash(value), ..Default::default() }),
        ..Default::default()
    }
}

/// A certificate of `value` in `view` exists: the Byzantine member plus enough honest ones.
fn certified(w: &World, view: usize, value: u8) -> bool {
    1 + w.members.iter().filter(|m| m.prepared[view] == value).count() >= QUORUM
}

fn fast(w: &World, value: u8) -> bool {
    w.members.iter().all(|m| m.prepared[1] == value)
}

fn committed(w: &World, value: u8) -> bool {
    (1..=VIEWS).any(|v| 1 + w.members.iter().filter(|m| m.committed[v] == value).count() >= QUORUM) || fast(w, value)
}

fn successors(w: &World) -> Vec<World> {
    let mut out = Vec::new();
    if w.open < VIEWS {
        out.push(World { open: w.open + 1, ..*w });
    }
    let statements = closure(w);
    for i in 0..HONEST {
        let state = w.members[i].slot_state();
        // Say "nothing" for view 1 (it then never prepares there); one that prepared in a later
        // view says it without recording anything.
        if w.members[i].prepared.iter().all(|&p| p == 0) && !w.members[i].closed {
            let mut next = *w;
            next.members[i].closed = true;
            out.push(next);
        }
        for view in 1..=VIEWS {
            for value in VALUES {
                // Prepare, without and with every certificate of this value from an earlier view.
                let certs = (1..view).filter(|&c| certified(w, c, value));
                let justifications = std::iter::once(None).chain(certs.map(Some));
                for j in justifications {
                    let cert =
                        j.map(|c| PrepareCertificate { view: c as u64, block_hash: hash(value), ..Default::default() });
                    let reachable = w.open.max(j.map_or(0, |c| c + 1)) as u64;
                    let h = hash(value);
                    let slot = PrepareSlot {
                        genesis: b"g",
                        index: 1,
                        view: view as u64,
                        hash: &h,
                        justification: cert.as_ref(),
                        reachable,
                        proposal: None,
                        closure: &statements,
                        faults: 1,
                    };
                    if w.members[i].prepared[view] == 0 && prepare_rule(&state, &slot).is_ok() {
                        let mut next = *w;
                        next.members[i].prepared[view] = value;
                        out.push(next);
                    }
                }
                // Commit, with the certificate of this view.
                if w.members[i].committed[view] == 0
                    && certified(w, view, value)
                    && commit_rule(&state, &proposal(value, view as u64)).is_ok()
                {
                    let mut next = *w;
                    next.members[i].committed[view] = value;
                    out.push(next);
                }
            }
        }
    }
    out
}

/// Every state reachable from `start`; panics at the first state that commits two blocks.
fn explore(start: World) -> (usize, bool) {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([start]);
    seen.insert(start);
    let mut any_commit = false;
    let mut fast_then_more = false;
    while let Some(w) = queue.pop_front() {
        let (a, b) = (committed(&w, VALUES[0]), committed(&w, VALUES[1]));
        // A fast block whose members went on to later views (the rules were tested past it).
        fast_then_more |= VALUES.iter().any(|&v| fast(&w, v)) && w.members.iter().all(|m| m.prepared[2] != 0);
        assert!(!(a && b), "two blocks committed at one slot: {:?}", w.members.map(|m| (m.prepared, m.committed)));
        any_commit |= a || b;
        for next in successors(&w) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    assert!(fast_then_more, "no fast block is followed by later views: the fast rules went untested");
    (seen.len(), any_commit)
}

#[test]
fn no_two_blocks_are_ever_committed_at_one_slot() {
    let (states, any_commit) = explore(World::default());
    assert!(any_commit, "no state commits a block: the rules are vacuous");
    eprintln!("vote rules: {states} reachable states checked, agreement holds");
    assert!(states > 1000, "suspiciously small state space: {states}");
}

#[test]
fn members_locked_on_different_blocks_can_still_commit() {
    // Member 0 locked on A in view 1, member 1 on B in view 2 (member 2 prepared both): neither
    // block is committed, and each locked member refuses the other's block without a later
    // certificate.
    let (a, b) = (VALUES[0], VALUES[1]);
    let mut split = World { open: 2, ..Default::default() };
    let m = &mut split.members;
    m[0].prepared[1] = a;
    m[0].committed[1] = a;
    m[2].prepared[1] = a;
    m[1].prepared[2] = b;
    m[2].prepared[2] = b;
    m[1].committed[2] = b;
    assert!(!committed(&split, a) && !committed(&split, b));
    let can_commit = reaches(split, |w| committed(w, a) || committed(w, b));
    assert!(can_commit, "the split wedges the slot");
}

/// Whether some state reachable from `start` is a `goal`.
fn reaches(start: World, goal: impl Fn(&World) -> bool) -> bool {
    let mut seen = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(w) = queue.pop_front() {
        if goal(&w) {
            return true;
        }
        for next in successors(&w) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    false
}

#[test]
fn members_split_in_view_1_can_still_commit() {
    // View 1 split between A and B with the third member silent: no block is fast, and the
    // statements of view 1 let a later view gather every member.
    let (a, b) = (VALUES[0], VALUES[1]);
    let mut split = World { open: 2, ..Default::default() };
    split.members[0].prepared[1] = a;
    split.members[1].prepared[1] = b;
    assert!(!committed(&split, a) && !committed(&split, b));
    let committed_later = |w: &World| {
        (2..=VIEWS)
            .any(|v| VALUES.iter().any(|&x| w.members.iter().filter(|m| m.committed[v] == x).count() + 1 >= QUORUM))
    };
    assert!(reaches(split, committed_later), "the view-1 split wedges the slot");
}
