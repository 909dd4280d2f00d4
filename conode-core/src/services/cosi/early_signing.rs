//! How much signing ahead of the checks a node allows. A member signs an announced statement on
//! the crypto pool while its verification hook checks the statement and records it durably (the
//! skipchain's votes wait for a flush), so the round does not pay the two one after the other.
//! The signature leaves the node only once the hook passed; when the hook refuses, the signature
//! was computed for nothing. Whoever can announce could make a node sign for nothing at will, so
//! early signing draws on a node-wide budget: each early signature takes a token, one the hook
//! approved gives it back, and a refused one keeps it, while tokens come back at a fixed rate.
//! Announcements that fail their checks therefore cost at most `REFILL_PER_SEC` wasted signatures
//! a second (well under 1 % of a core); beyond that the node signs after the check, as it would
//! without early signing. Only announcements a hook could approve at all (a known purpose, no
//! hold, a short statement) are signed early.

use crate::token_bucket::Budget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Early signatures that may be awaiting their hook's verdict or wasted at once.
const CAPACITY: f64 = 64.0;
/// Wasted early signatures the budget absorbs per second, sustained.
const REFILL_PER_SEC: f64 = 8.0;
/// Longest statement signed early: the statements of the node's own protocols are digests and
/// short messages; hashing a long one to G2 for nothing is not worth the overlap.
pub(super) const MAX_EARLY_STATEMENT: usize = 1024;

/// The node's budget of early signatures (see the module doc).
pub(super) struct EarlySigning {
    budget: Budget,
    wasted: AtomicU64,
}

impl Default for EarlySigning {
    fn default() -> Self {
        Self { budget: Budget::new(REFILL_PER_SEC, CAPACITY), wasted: AtomicU64::new(0) }
    }
}

impl EarlySigning {
    /// Takes a token for one early signature; false when the budget is spent (sign after the
    /// check instead).
    pub(super) fn reserve(&self) -> bool {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> bool {
        self.budget.take_at(now)
    }

    /// The hook approved the statement signed early: its token comes back.
    pub(super) fn used(&self) {
        self.budget.give_back();
    }

    /// The hook refused the statement signed early: its token stays spent.
    pub(super) fn wasted(&self) {
        self.wasted.fetch_add(1, Ordering::Relaxed);
    }

    /// Early signatures the hooks refused so far.
    pub(super) fn wasted_count(&self) -> u64 {
        self.wasted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refused_early_signatures_are_bounded_and_approved_ones_cost_nothing() {
        let e = EarlySigning::default();
        let t0 = Instant::now();
        // Approved ones give their token back: any number of them, one after another.
        for _ in 0..1000 {
            assert!(e.reserve_at(t0));
            e.used();
        }
        // Refused ones spend the budget, then the node signs after the check.
        let spent = (0..1000).take_while(|_| e.reserve_at(t0)).count();
        assert_eq!(spent, CAPACITY as usize);
        assert!(!e.reserve_at(t0));
        // Tokens come back at the refill rate: a quarter of a second later, two.
        let later = t0 + Duration::from_millis(250);
        assert!(e.reserve_at(later) && e.reserve_at(later));
        assert!(!e.reserve_at(later));
        // In flight at once: at most the capacity, even when all would be approved.
        let full = t0 + Duration::from_secs(60);
        let in_flight = (0..1000).take_while(|_| e.reserve_at(full)).count();
        assert_eq!(in_flight, CAPACITY as usize);
    }
}
