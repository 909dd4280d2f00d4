//! Group commit for the node database: every durable write ends with a flush (an fsync), and
//! concurrent writers — appends of different chains, the votes of several rounds — share one flush
//! instead of queueing for one each. A writer takes a ticket after its write; the first writer to
//! find no flush running flushes for every ticket taken so far, the others wait for it (or for the
//! next one, when theirs came after it began). A flush never covers less than the writes before
//! its start, so a writer returns only once its own write is on disk.
//!
//! On a multi-threaded tokio runtime the wait and the flush run in `block_in_place`
//! (`sync::may_block`): the worker's other tasks move to another thread instead of stalling behind
//! the disk (a node's hooks write their votes synchronously, from inside the cosi rounds).

use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Tickets handed out (one per durable write).
    taken: u64,
    /// Every ticket up to this one is on disk.
    flushed: u64,
    /// A flush is running.
    flushing: bool,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    /// Returns once everything written before the call is on disk (`flush` writes it).
    pub(crate) fn sync<E>(&self, flush: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        crate::sync::may_block(|| self.sync_here(flush))
    }

    fn sync_here<E>(&self, flush: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let mut flush = Some(flush);
        let mut st = crate::sync::lock(&self.state);
        st.taken += 1;
        let mine = st.taken;
        loop {
            if st.flushed >= mine {
                return Ok(());
            }
            if !st.flushing {
                // Lead: one flush for every ticket taken until now (ours included).
                st.flushing = true;
                let covers = st.taken;
                drop(st);
                let Some(f) = flush.take() else { unreachable!("a writer leads at most one flush") };
                let result = f();
                st = crate::sync::lock(&self.state);
                st.flushing = false;
                if result.is_ok() {
                    st.flushed = st.flushed.max(covers);
                }
                self.done.notify_all();
                // A failed flush fails its leader; the waiters lead (and learn) on their own.
                return result;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn concurrent_writers_share_flushes_and_none_returns_early() {
        let gc = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        // What is "on disk": the count of writes made when the last flush began.
        let written = Arc::new(AtomicUsize::new(0));
        let durable = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, flushes, written, durable) = (gc.clone(), flushes.clone(), written.clone(), durable.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let me = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.sync(|| {
                            let upto = written.load(Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            flushes.fetch_add(1, Ordering::SeqCst);
                            durable.fetch_max(upto, Ordering::SeqCst);
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                        // Writes are numbered in order, so ours is on disk when the count is.
                        assert!(durable.load(Ordering::SeqCst) >= me, "returned before its write was flushed");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let f = flushes.load(Ordering::SeqCst);
        assert!(f < 160, "{f} flushes for 160 writes: none shared");
    }

    #[test]
    fn a_failed_flush_fails_its_writer_and_the_next_one_flushes_again() {
        let gc = GroupCommit::default();
        assert_eq!(gc.sync(|| Err::<(), _>("disk full")), Err("disk full"));
        let mut ran = false;
        gc.sync(|| {
            ran = true;
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(ran, "the next writer must flush itself");
    }
}
