//! Where a leaf computes its partial signature. Handing a signature to the crypto pool costs two
//! thread wake-ups and, with more busy threads than cores (every member of a process signing at
//! once), context switches: measured at 256 members in one process, about 850 context switches
//! a round through the pool against about 140 without it, and a few per cent of the round's CPU.
//! The hand-off pays where the runtime's worker has better things to do meanwhile: a sub-leader
//! keeps its fan-out flowing, a member with a slow hook runs it while the pool signs
//! (`early_signing`). A leaf whose hook is quick (`hooks::QUICK_HOOK`) has neither, so it checks
//! the statement and then signs on its own worker, after one yield so that the worker polls the
//! network first (a worker that runs task after task polls it only every few dozen tasks).
//!
//! A worker that signs serves nothing else for the signature's time (about half a millisecond).
//! Whoever can announce could keep the workers signing, so signing there draws on a node-wide
//! budget: at most `REFILL_PER_SEC` signatures a second (about a fifth of one worker's time),
//! sustained; beyond that the leaf signs on the pool as a sub-leader does. A statement longer
//! than `MAX_INLINE_STATEMENT` (hashing it alone takes as long as a signature) goes to the pool.

use crate::token_bucket::Budget;
use std::time::Instant;

/// Longest statement a leaf signs on its worker: the node's own protocols sign digests and
/// short messages; an announcement may carry up to a MiB.
pub(super) const MAX_INLINE_STATEMENT: usize = 1024;
/// Signatures a node's workers may compute in a burst.
const CAPACITY: f64 = 64.0;
/// Signatures a node's workers may compute per second, sustained.
const REFILL_PER_SEC: f64 = 400.0;

/// The node's budget of signatures computed on its runtime's workers (see the module doc).
pub(super) struct InlineSigning {
    budget: Budget,
}

impl Default for InlineSigning {
    fn default() -> Self {
        Self { budget: Budget::new(REFILL_PER_SEC, CAPACITY) }
    }
}

impl InlineSigning {
    /// Takes a token for one signature on this worker; false when the budget is spent (sign on
    /// the crypto pool instead).
    pub(super) fn reserve(&self) -> bool {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> bool {
        self.budget.take_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn signing_on_the_workers_is_bounded_per_second() {
        let inline = InlineSigning::default();
        let t0 = Instant::now();
        let burst = (0..1000).take_while(|_| inline.reserve_at(t0)).count();
        assert_eq!(burst, CAPACITY as usize);
        assert!(!inline.reserve_at(t0), "beyond the burst, the pool signs");
        // A tenth of a second later, a tenth of the rate.
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..1000).take_while(|_| inline.reserve_at(later)).count();
        assert_eq!(refilled, (REFILL_PER_SEC / 10.0) as usize);
    }
}
