//! How many rounds this node leads at once, bounded by the work they bring. A round costs its
//! members' signatures plus the root's own work (`n + ROOT_WORK` units, as the leaf deadlines
//! count it); the rounds in flight together hold at most [`Admission::capacity`] units (256 per
//! core: about 120 ms of signing on this project's 2-core test machines, well inside the 200 ms
//! a leaf is given at least). Beyond that, rounds wait their turn, first come first served,
//! instead of starting: each round in flight then set its deadlines for about the work that is
//! really in flight. Without the bound, rounds asked for one by one faster than they complete
//! (many clients, a busy application) all started, each set short deadlines for the few rounds
//! it saw, and then shared the machines with hundreds more: every member looked hung, links were
//! closed as dead, and almost every round failed. A round that cannot start within its level
//! timeout fails with [`CosiError::Busy`] (the client is told when to try again); one that
//! arrives when the queue already holds [`QUEUE_FACTOR`] times the capacity fails so at once.

use super::outcome::CosiError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Units of work the rounds in flight may hold together, per core.
const UNITS_PER_CORE: usize = 256;
/// Rounds wait while the queue holds at most this many times the capacity (a bound on the memory
/// a flood of requests takes; their level timeout bounds their wait); later ones are refused.
const QUEUE_FACTOR: usize = 32;

/// The bound on the rounds this node leads at once.
pub(super) struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    /// Units of the rounds waiting for a slot.
    waiting: AtomicUsize,
    /// Rounds refused for being over the bound (`conode_cosi_rounds_busy`).
    refused: prometheus_client::metrics::counter::Counter,
}

/// A round's place among those in flight, held while it runs.
pub(super) struct Admitted {
    _slots: OwnedSemaphorePermit,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |c| c.get()) * UNITS_PER_CORE)
    }
}

impl Admission {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            waiting: AtomicUsize::new(0),
            refused: Default::default(),
        }
    }

    /// Rounds refused for being over the bound.
    pub(super) fn refused(&self) -> &prometheus_client::metrics::counter::Counter {
        &self.refused
    }

    /// Waits (at most `wait`) until a round of `units` units fits beside those in flight. A round
    /// larger than the capacity runs alone.
    pub(super) async fn admit(&self, units: usize, wait: Duration) -> Result<Admitted, CosiError> {
        let units = units.clamp(1, self.capacity);
        // The common case: room at once, no queue.
        if let Ok(permit) = self.slots.clone().try_acquire_many_owned(units as u32) {
            return Ok(Admitted { _slots: permit });
        }
        let queued = self.waiting.fetch_add(units, Ordering::AcqRel);
        let _unqueue = Unqueue(&self.waiting, units);
        if queued > self.capacity * QUEUE_FACTOR {
            return Err(self.busy(queued, Duration::ZERO));
        }
        match tokio::time::timeout(wait, self.slots.clone().acquire_many_owned(units as u32)).await {
            Ok(Ok(permit)) => Ok(Admitted { _slots: permit }),
            // The semaphore is never closed; a closed one means the node is going away.
            Ok(Err(_)) => Err(CosiError::Stopped),
            Err(_) => Err(self.busy(self.waiting.load(Ordering::Acquire), wait)),
        }
    }

    fn busy(&self, queued: usize, waited: Duration) -> CosiError {
        self.refused.inc();
        // What a refused client is told to wait: the time a leaf is given per unit queued.
        let retry_after = super::timing::PER_MEMBER
            .saturating_mul(queued.min(u32::MAX as usize) as u32)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        CosiError::Busy { capacity: self.capacity, queued, waited, retry_after }
    }
}

/// Takes a round's units off the queue when it stops waiting (admitted, refused or dropped).
struct Unqueue<'a>(&'a AtomicUsize, usize);

impl Drop for Unqueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_beyond_the_capacity_wait_their_turn_and_a_long_queue_is_refused() {
        let a = Admission::new(100);
        let wait = Duration::from_secs(5);
        let first = a.admit(60, wait).await.unwrap();
        let _second = a.admit(40, wait).await.unwrap();
        // Full: the next one waits, and starts as soon as the first ends.
        let third = a.admit(50, wait);
        tokio::pin!(third);
        assert!(futures_util::poll!(third.as_mut()).is_pending());
        assert_eq!(a.waiting.load(Ordering::Acquire), 50);
        drop(first);
        let _third = third.await.unwrap();
        assert_eq!(a.waiting.load(Ordering::Acquire), 0);
        // A round larger than the capacity waits for all of it, and then runs alone.
        let big = a.admit(1_000, Duration::from_millis(20)).await;
        assert!(matches!(big, Err(CosiError::Busy { waited, .. }) if waited == Duration::from_millis(20)));
        assert_eq!(a.waiting.load(Ordering::Acquire), 0, "a refused round leaves the queue");
        // A queue already 32 times the capacity refuses at once, telling when to try again.
        let queued: Vec<_> = (0..33).map(|_| Box::pin(a.admit(100, wait))).collect();
        let mut queued = queued;
        for q in &mut queued {
            assert!(futures_util::poll!(q.as_mut()).is_pending());
        }
        match a.admit(10, wait).await {
            Err(busy @ CosiError::Busy { .. }) => {
                let CosiError::Busy { queued, waited, retry_after, capacity } = busy else { unreachable!() };
                assert_eq!((queued, waited, capacity), (3_300, Duration::ZERO, 100));
                assert_eq!(retry_after, Duration::from_secs(5), "at most 5 s");
                // A client of `/Cosi/Sign` is told the node is unavailable, and when to try again.
                let wire = crate::services::ServiceError::from(busy).to_wire();
                assert_eq!(wire.code, crate::client_api::ErrorCode::Unavailable);
                assert_eq!(wire.number("retry_after_ms"), Some(5_000));
                assert!(wire.message.starts_with("busy: "), "{}", wire.message);
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert_eq!(a.refused().get(), 2);
        drop(queued);
        assert_eq!(a.waiting.load(Ordering::Acquire), 0, "dropped waiters leave the queue");
    }
}
