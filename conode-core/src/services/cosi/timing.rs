//! Deadlines of a signing round that follow how long healthy rounds take on this node, so that a
//! hung member costs a small multiple of the usual answer time instead of the fixed per-level
//! timeout. The caller's level timeout stays the upper bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::crypto::IdentityPublicKey;
use crate::sync::lock;

/// A member gets this many times the smoothed answer time before it is given up on.
const MULTIPLE: u32 = 6;
/// Never wait less than this for one level (scheduling noise on a loaded machine).
pub(super) const FLOOR: Duration = Duration::from_millis(200);
/// A late sub-leader's leaves are asked directly no sooner than this after its own leaf deadline.
const HEDGE_MARGIN_MIN: Duration = Duration::from_millis(100);
/// Deadline of a level before any answer was observed.
const NO_HISTORY: Duration = Duration::from_millis(800);
/// Whatever the history (it may come from rounds over small rosters), a leaf gets at least this
/// much per roster member and per round this node leads at the time: in k rounds over n members
/// the machines sign k × n times, and on a machine running many members (a test cluster), or
/// with many rounds at once, a leaf's turn may come late. 2 ms is about four BLS signatures.
pub(super) const PER_MEMBER: Duration = Duration::from_millis(2);
/// The root's own work in a round (hashing the statement, its signature, the two halves of the
/// check of the total: about four signatures), in [`PER_MEMBER`]s: with rounds at once on one
/// machine, it queues before later rounds' leaves too.
pub(super) const ROOT_WORK: usize = 2;

#[derive(Default)]
struct Ewma(Option<Duration>, Option<RoundKey>);

/// The round a deadline was last widened for (its random id).
type RoundKey = [u8; 16];

fn round_key(round_id: &[u8]) -> RoundKey {
    let mut k = [0u8; 16];
    let n = round_id.len().min(16);
    k[..n].copy_from_slice(&round_id[..n]);
    k
}

impl Ewma {
    fn observe(&mut self, d: Duration) {
        self.0 = Some(match self.0 {
            Some(old) => (old * 7 + d) / 8,
            None => d,
        });
    }
    /// A member did not answer in time in round `round_id`: maybe the machine is slower than
    /// the history says, so widen the next deadlines a little (healthy answers pull them back).
    /// Once per round: a round where k members hang is one piece of evidence, not k (with
    /// every member hung, as in a partition, per-member widening grew the deadlines
    /// geometrically from round to round).
    fn missed(&mut self, round_id: &[u8]) {
        let key = round_key(round_id);
        if self.1 == Some(key) {
            return;
        }
        self.1 = Some(key);
        if let Some(old) = self.0 {
            self.0 = Some((old * 3 / 2).min(Duration::from_secs(30)));
        }
    }
    fn deadline(&self) -> Duration {
        self.0.map(|e| (e * MULTIPLE).max(FLOOR)).unwrap_or(NO_HISTORY)
    }
}

/// Smoothed answer times of leaves (one partial) and of sub-leaders (a group's aggregate), the
/// members that still owe the answer to a round that ended without them, and how often the tree
/// was repaired by asking members directly (counters for `/metrics`).
#[derive(Default)]
pub(super) struct RoundTiming {
    leaf: Mutex<Ewma>,
    group: Mutex<Ewma>,
    /// Answers a finished round stopped waiting for, still outstanding, by member. One link
    /// carries a member's answers in order (TCP), so while it owes one, a newer one cannot
    /// arrive before it: such a member is not waited for once a round's threshold is met.
    behind: Mutex<HashMap<IdentityPublicKey, usize>>,
    /// Late sub-leaders whose leaves the root decided to ask directly too (`conode_cosi_hedges`).
    hedges: prometheus_client::metrics::counter::Counter,
    /// Members asked directly, their sub-leader late, failed or caught adding up wrongly
    /// (`conode_cosi_leaves_asked_directly`).
    leaves_asked_directly: prometheus_client::metrics::counter::Counter,
    /// Rounds this node leads at the moment (see [`RoundTiming::leading`]).
    leading: AtomicUsize,
    /// Their work: members plus [`ROOT_WORK`] each.
    leading_units: AtomicUsize,
}

/// One round this node leads (its units of work), counted while it lives (see
/// [`RoundTiming::leading`]).
pub(super) struct Leading(Arc<RoundTiming>, usize);

impl Drop for Leading {
    fn drop(&mut self) {
        self.0.leading.fetch_sub(1, Ordering::AcqRel);
        self.0.leading_units.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// A request of a round that may end before its answer arrives: [`Outstanding::finish`] when the
/// answer (or the failure) comes, [`RoundTiming::abandon`] when the round stops waiting for it.
/// Both are remembered (bit flags): a group the round gave up on stays given up on after its
/// sub-leader's request ends.
#[derive(Default)]
pub(super) struct Outstanding(AtomicU8);

const FINISHED: u8 = 1;
const ABANDONED: u8 = 2;

impl Outstanding {
    /// Whether the round stopped waiting for this request (before or after it ended).
    pub(super) fn abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) & ABANDONED != 0
    }

    pub(super) fn finish(&self, timing: &RoundTiming, member: &IdentityPublicKey) {
        if self.0.fetch_or(FINISHED, Ordering::AcqRel) == ABANDONED {
            timing.caught_up(member);
        }
    }
}

impl RoundTiming {
    /// A late sub-leader's leaves were asked directly (see [`Self::hedge_after`]).
    pub(super) fn hedged(&self) {
        self.hedges.inc();
    }
    /// How many times this node, leading rounds, asked a late sub-leader's leaves directly.
    pub(super) fn hedges(&self) -> &prometheus_client::metrics::counter::Counter {
        &self.hedges
    }
    /// `leaves` members were asked directly (their sub-leader was late, failed, or sent a bad
    /// aggregate).
    pub(super) fn asked_directly(&self, leaves: usize) {
        self.leaves_asked_directly.inc_by(leaves as u64);
    }
    /// How many members this node, leading rounds, asked directly.
    pub(super) fn leaves_asked_directly(&self) -> &prometheus_client::metrics::counter::Counter {
        &self.leaves_asked_directly
    }
    pub(super) fn leaf_answered(&self, d: Duration) {
        lock(&self.leaf).observe(d);
    }
    pub(super) fn group_answered(&self, d: Duration) {
        lock(&self.group).observe(d);
    }
    /// A leaf that was not known to be down did not answer in round `round_id` (members known
    /// to be down are asked only as a last chance: their silence says nothing about how long
    /// healthy members take, and must not widen the deadlines).
    pub(super) fn leaf_missed(&self, round_id: &[u8]) {
        lock(&self.leaf).missed(round_id);
    }
    /// A sub-leader that was not known to be down did not answer in round `round_id`.
    pub(super) fn group_missed(&self, round_id: &[u8]) {
        lock(&self.group).missed(round_id);
    }

    /// The round stopped waiting for `req` to `member` (a no-op if its answer came already).
    pub(super) fn abandon(&self, req: &Outstanding, member: &IdentityPublicKey) {
        *lock(&self.behind).entry(*member).or_default() += 1;
        // Undone at once when the answer came already, or when the round gave up on this
        // request before (two places may: only the first counts).
        if req.0.fetch_or(ABANDONED, Ordering::AcqRel) != 0 {
            self.caught_up(member);
        }
    }

    fn caught_up(&self, member: &IdentityPublicKey) {
        let mut behind = lock(&self.behind);
        if let Some(c) = behind.get_mut(member) {
            *c -= 1;
            if *c == 0 {
                behind.remove(member);
            }
        }
    }

    /// Whether `member` still owes the answer to a round that ended without it.
    pub(super) fn is_behind(&self, member: &IdentityPublicKey) -> bool {
        lock(&self.behind).contains_key(member)
    }

    /// Counts a round over `n` members this node starts leading until the returned guard is
    /// dropped: the rounds led at once share the machines' signing time, and the leaf deadlines
    /// grow with their work (`n + ROOT_WORK` each; `admission` bounds it).
    pub(super) fn leading(self: &Arc<Self>, n: usize) -> Leading {
        let units = n.saturating_add(ROOT_WORK);
        self.leading.fetch_add(1, Ordering::AcqRel);
        self.leading_units.fetch_add(units, Ordering::AcqRel);
        Leading(self.clone(), units)
    }

    /// How long to wait for one leaf's partial in a round over `n` members (before any leaf
    /// answered, a whole group's answer time bounds it), with the other rounds this node leads
    /// at the moment ([`Self::leading`]) queued before it.
    pub(super) fn leaf_deadline(&self, level_timeout: Duration, n: usize) -> Duration {
        let leaf = lock(&self.leaf).0;
        let group = lock(&self.group).0;
        let rounds = self.leading.load(Ordering::Acquire);
        let size = if rounds <= 1 { n } else { self.leading_units.load(Ordering::Acquire) };
        let size = PER_MEMBER.saturating_mul(size.min(u32::MAX as usize) as u32);
        Ewma(leaf.or(group), None).deadline().max(size).min(level_timeout)
    }

    /// When a sub-leader that has not answered yet is late enough that its leaves are asked
    /// directly too. A healthy group has answered by its usual deadline (as in
    /// [`Self::group_deadline`]); one whose sub-leader gave up on a hung leaf answers after `leaf`
    /// (counted from when the announcement reached it) plus a group's round trip and handling:
    /// twice the usual answer time of a group (before any group answered, of a leaf), and at
    /// least `HEDGE_MARGIN_MIN` (scheduling noise, and the guess when nothing was observed).
    pub(super) fn hedge_after(&self, leaf: Duration) -> Duration {
        let usual = lock(&self.group).0.or(lock(&self.leaf).0);
        let margin = usual.map_or(HEDGE_MARGIN_MIN, |u| (u * 2).max(HEDGE_MARGIN_MIN));
        Ewma(usual, None).deadline().max(leaf + margin)
    }

    /// How long to wait for a sub-leader that itself waits up to `leaf` for its leaves.
    pub(super) fn group_deadline(&self, leaf: Duration, level_timeout: Duration) -> Duration {
        (leaf + lock(&self.group).deadline()).min(level_timeout * 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKeyPair;

    #[test]
    fn deadlines_follow_history_within_bounds() {
        let t = RoundTiming::default();
        let level = Duration::from_secs(5);
        assert_eq!(t.leaf_deadline(level, 16), NO_HISTORY);
        assert_eq!(t.hedge_after(FLOOR), NO_HISTORY, "no history: the guess");
        let (leaf, margin) = (Duration::from_secs(2), HEDGE_MARGIN_MIN);
        assert_eq!(t.hedge_after(leaf), leaf + margin, "after the leaf deadline and a margin");
        assert_eq!(t.leaf_deadline(Duration::from_millis(300), 16), Duration::from_millis(300), "level timeout caps");
        let g = RoundTiming::default();
        g.group_answered(Duration::from_millis(50));
        assert_eq!(g.leaf_deadline(level, 16), Duration::from_millis(300), "a group's answer time bounds a leaf's");
        for _ in 0..50 {
            t.leaf_answered(Duration::from_millis(100));
        }
        assert_eq!(t.leaf_deadline(level, 16), Duration::from_millis(600));
        for _ in 0..50 {
            t.leaf_answered(Duration::from_millis(2));
        }
        assert_eq!(t.leaf_deadline(level, 16), FLOOR);
        assert_eq!(t.leaf_deadline(level, 1024), PER_MEMBER * 1024, "large rosters get more time");
        assert_eq!(t.leaf_deadline(Duration::from_secs(1), 1024), Duration::from_secs(1));
        // Rounds led at once share the signing time: 100 rounds over 16 members.
        let t = Arc::new(t);
        let rounds: Vec<Leading> = (0..100).map(|_| t.leading(16)).collect();
        assert_eq!(t.leaf_deadline(level, 16), PER_MEMBER * (16 + ROOT_WORK as u32) * 100);
        let large = t.leading(400);
        assert_eq!(t.leaf_deadline(level, 16), PER_MEMBER * ((16 + ROOT_WORK as u32) * 100 + 402), "by their work");
        drop(large);
        assert_eq!(t.leaf_deadline(Duration::from_secs(1), 16), Duration::from_secs(1), "level timeout caps");
        drop(rounds);
        assert_eq!(t.leaf_deadline(level, 16), FLOOR, "back once they ended");
        assert_eq!(t.hedge_after(Duration::ZERO), FLOOR, "before any group answered, a leaf's time");
        assert_eq!(t.hedge_after(FLOOR), FLOOR + HEDGE_MARGIN_MIN);
        t.group_answered(Duration::from_millis(100));
        assert_eq!(t.hedge_after(FLOOR), Duration::from_millis(600), "a group's usual time");
        assert_eq!(
            t.hedge_after(Duration::from_secs(1)),
            Duration::from_millis(1200),
            "the leaf deadline and twice that"
        );
        assert_eq!(t.group_deadline(FLOOR, level), FLOOR + Duration::from_millis(600));
        t.group_missed(&[1; 16]);
        assert_eq!(t.group_deadline(FLOOR, level), FLOOR + Duration::from_millis(900));
        let short = Duration::from_millis(300);
        assert_eq!(t.group_deadline(short, short), short * 2, "twice the level timeout caps");
    }

    #[test]
    fn a_member_is_behind_while_it_owes_an_abandoned_answer() {
        let t = RoundTiming::default();
        let (a, b) = (IdentityKeyPair::generate().public(), IdentityKeyPair::generate().public());
        // Abandoned, then answered.
        let r1 = Outstanding::default();
        t.abandon(&r1, &a);
        assert!(t.is_behind(&a) && !t.is_behind(&b));
        // Two abandoned requests: behind until both are answered.
        let r2 = Outstanding::default();
        t.abandon(&r2, &a);
        r1.finish(&t, &a);
        assert!(t.is_behind(&a));
        r2.finish(&t, &a);
        assert!(!t.is_behind(&a));
        // Answered before the round gave up on it: never behind.
        let r3 = Outstanding::default();
        r3.finish(&t, &b);
        t.abandon(&r3, &b);
        assert!(!t.is_behind(&b));
        // Answered without being abandoned: nothing recorded.
        let r4 = Outstanding::default();
        r4.finish(&t, &b);
        assert!(!t.is_behind(&b));
        // A request the round gave up on stays given up on once it ends.
        assert!(r1.abandoned() && r3.abandoned() && !r4.abandoned());
        // Given up on twice (by its group and by the round), then answered: not behind.
        let r5 = Outstanding::default();
        t.abandon(&r5, &a);
        t.abandon(&r5, &a);
        assert!(t.is_behind(&a));
        r5.finish(&t, &a);
        assert!(!t.is_behind(&a), "one answer settles a request however often it was given up on");
    }

    #[test]
    fn misses_widen_the_deadline_once_per_round() {
        let t = RoundTiming::default();
        let level = Duration::from_secs(5);
        for _ in 0..8 {
            t.leaf_answered(Duration::from_millis(100));
        }
        assert_eq!(t.leaf_deadline(level, 4), Duration::from_millis(600));
        // Three members hang in one round: one widening (×1.5), not three (×3.4).
        for _ in 0..3 {
            t.leaf_missed(&[7; 16]);
        }
        assert_eq!(t.leaf_deadline(level, 4), Duration::from_millis(900));
        // The next round that misses someone widens again.
        t.leaf_missed(&[8; 16]);
        assert_eq!(t.leaf_deadline(level, 4), Duration::from_millis(1350));
        // Groups have their own record.
        t.group_answered(Duration::from_millis(100));
        t.group_missed(&[8; 16]);
        assert_eq!(t.group_deadline(FLOOR, level), FLOOR + Duration::from_millis(900));
    }
}
