//! How long a DKG phase waits for the messages it expects, and how a missed message is retried.
//! A fixed wait (the configured phase timeout) is right for a handful of members and wrong for
//! 64: the work of a phase grows with the group (every member creates n deals, checks n deals,
//! reads n responses) and, when members share machines (or one process, as in a benchmark),
//! with the group size over the cores. So a phase's first window is
//! `RTT margin + SAFETY × measured cost of this node's own part × n / cores`, never less than the
//! configured phase timeout (the operator's floor) and never more than [`MAX_PHASE`]. A phase
//! still ends as soon as every expected message is in.
//!
//! A member whose message is missing at the end of the window is not excluded at once: the
//! window is retried with exponential backoff ([`extension`]) — at least once, and again as long
//! as messages still arrived in the previous window — and senders retry failed sends with
//! backoff ([`send_backoff`]) until the phase is over. Pure functions, tested here.

use super::protocol::MAX_PHASE;
use std::time::Duration;

/// Margin for round trips and scheduling on top of the measured work.
pub const RTT_MARGIN: Duration = Duration::from_millis(500);
/// Multiple of the estimated work a window allows.
pub const SAFETY: u32 = 3;
/// Extra windows (with backoff) a phase waits for missing members when they make progress.
pub const MAX_RETRIES: u32 = 3;

/// The deadlines of one DKG at this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The configured phase timeout: the shortest window.
    pub floor: Duration,
    /// Members taking part.
    pub n: usize,
    /// Cores of this machine.
    pub cores: usize,
}

impl Timing {
    pub fn new(floor: Duration, n: usize) -> Self {
        let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
        Self { floor, n, cores }
    }

    /// The first window of a phase whose own part took `measured` at this node: the others do
    /// the same work, at worst all on this node's cores.
    pub fn window(&self, measured: Duration) -> Duration {
        let share = (self.n.max(1) as f64 / self.cores.max(1) as f64).max(1.0);
        let work = measured.mul_f64(share).saturating_mul(SAFETY);
        (RTT_MARGIN + work).clamp(self.floor, MAX_PHASE.max(self.floor))
    }

    /// What a sender keeps retrying a message of a phase for: the first window and every retry.
    pub fn give_up_after(&self, window: Duration) -> Duration {
        (0..=MAX_RETRIES).map(|k| extension(window, k)).sum()
    }
}

/// The length of the `k`-th window of a phase (0 is the first one): the first retry waits as
/// long as the first window, each further one twice as long as the one before.
pub fn extension(window: Duration, k: u32) -> Duration {
    window.saturating_mul(1 << k.saturating_sub(1).min(16))
}

/// Whether a phase waits another window for missing messages after `retries` extra windows,
/// `progress` telling whether a message arrived during the last one.
pub fn retry_again(retries: u32, progress: bool) -> bool {
    retries == 0 || (progress && retries < MAX_RETRIES)
}

/// The pause before the `attempt`-th resend of a failed message (1 is the first resend):
/// 100 ms doubling, at most 2 s.
pub fn send_backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.saturating_sub(1).min(5))).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_grow_with_the_group_and_the_measured_cost() {
        let t = |n, cores| Timing { floor: Duration::from_millis(100), n, cores };
        let cost = Duration::from_millis(200);
        // 16 members on 2 cores: 0.5 s + 3 × 0.2 s × 8.
        assert_eq!(t(16, 2).window(cost), Duration::from_millis(500 + 4800));
        assert!(t(64, 2).window(cost) > t(32, 2).window(cost));
        assert!(t(32, 2).window(cost) > t(32, 2).window(cost / 2));
        // More cores than members: the members' own cost, not less.
        assert_eq!(t(4, 16).window(cost), Duration::from_millis(500 + 600));
        // The configured phase is the floor, MAX_PHASE the ceiling.
        let slow = Timing { floor: Duration::from_secs(10), n: 4, cores: 2 };
        assert_eq!(slow.window(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(t(64, 1).window(Duration::from_secs(100)), MAX_PHASE);
    }

    #[test]
    fn missing_members_are_retried_with_backoff_then_given_up() {
        let w = Duration::from_secs(1);
        assert_eq!((0..4).map(|k| extension(w, k)).collect::<Vec<_>>(), [1, 1, 2, 4].map(Duration::from_secs).to_vec());
        // Always one retry; more only while messages keep arriving.
        assert!(retry_again(0, false));
        assert!(!retry_again(1, false));
        assert!(retry_again(1, true) && retry_again(2, true));
        assert!(!retry_again(MAX_RETRIES, true));
        let t = Timing { floor: w, n: 4, cores: 2 };
        assert_eq!(t.give_up_after(w), Duration::from_secs(8));
        assert_eq!(send_backoff(1), Duration::from_millis(100));
        assert_eq!(send_backoff(3), Duration::from_millis(400));
        assert_eq!(send_backoff(30), Duration::from_secs(2));
    }
}
