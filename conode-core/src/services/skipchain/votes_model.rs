//! An exhaustive check of the vote rules (`votes::prepare_rule`, `votes::commit_rule`, the code
//! the nodes run): every interleaving of prepares and commits by 3 honest members and 1 Byzantine
//! member (which counts for every certificate and every commit) over 2 blocks and views 1..=3, with
//! every possible justification, with views opening one by one as time passes (a prepare names
//! an open view, or one above its justification's). Safety property: never are two different blocks committed (each by
//! more than two thirds) at one slot. Also checked: some state commits a block (the rules are not
//! vacuous), and from a state where members are locked on different blocks a block can still be
//! committed (no wedge).
//!
//! Forgetting a settled slot's record (`votes::settle`) needs no state here: a member forgets only
//! the records of slots where it holds the block (16 below its newest), and it never votes at such
//! a slot again (a proposal for an index it holds is refused before the rules are asked). That is
//! a member that stops acting at the slot, which every interleaving checked here allows.

use super::messages::{PrepareCertificate, Proposal, SlotState};
use super::votes::{commit_rule, prepare_rule, PrepareSlot};
use crate::verify::skipchain::SkipBlock;
use std::collections::{HashSet, VecDeque};

const HONEST: usize = 3;
const VIEWS: usize = 3;
const VALUES: [u8; 2] = [1, 2];
/// n = 4, f = 1: a certificate or a commit needs 3 members.
const QUORUM: usize = 3;

/// What each honest member did: per view (index 1..=VIEWS), the value prepared and committed
/// (0 = nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Member {
    prepared: [u8; VIEWS + 1],
    committed: [u8; VIEWS + 1],
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
        s
    }
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

fn committed(w: &World, value: u8) -> bool {
    (1..=VIEWS).any(|v| 1 + w.members.iter().filter(|m| m.committed[v] == value).count() >= QUORUM)
}

fn successors(w: &World) -> Vec<World> {
    let mut out = Vec::new();
    if w.open < VIEWS {
        out.push(World { open: w.open + 1, ..*w });
    }
    for i in 0..HONEST {
        let state = w.members[i].slot_state();
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
    while let Some(w) = queue.pop_front() {
        let (a, b) = (committed(&w, VALUES[0]), committed(&w, VALUES[1]));
        assert!(!(a && b), "two blocks committed at one slot: {:?}", w.members.map(|m| (m.prepared, m.committed)));
        any_commit |= a || b;
        for next in successors(&w) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
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
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([split]);
    seen.insert(split);
    let mut can_commit = false;
    while let Some(w) = queue.pop_front() {
        if committed(&w, VALUES[0]) || committed(&w, VALUES[1]) {
            can_commit = true;
            break;
        }
        for next in successors(&w) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    assert!(can_commit, "the split wedges the slot");
}
