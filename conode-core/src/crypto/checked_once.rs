//! Checks that passed, remembered so that they run once: a signature check is a pure function of
//! the exact bytes checked, so a check that passed once passes again, and callers that meet the
//! same check (the levels of one append, the blocks of one batch, the members of one cluster
//! checking the same collective signature) need not repeat a pairing that costs a millisecond.
//!
//! [`VerifiedOnce`] keys a check by a digest of everything it reads (the caller's job: a different
//! key, message, signature or mask must give a different digest), remembers only checks that
//! passed (a failure runs again next time), is bounded, and lets concurrent callers of one check
//! wait for the one that runs it instead of repeating it. [`process`] is the process's set of
//! passed checks that depend on nothing but their inputs: pairing checks, keyed by
//! [`crate::verify::skipchain_batch::PairingCheck::fingerprint`], and signature checks keyed by a
//! domain-separated digest of key, message and signature. Each is a statement of mathematics
//! (this signature, on this message, for this key), true for every node in the process, so the
//! members of a [`crate::cluster::LocalCluster`] (or any host running several nodes) check one
//! collective signature, or one owner's signature of an append, once between them. A host with
//! one node loses nothing by it: its own repeated checks are shared the same way.

use crate::kept::KeptMap;
use std::collections::HashSet;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

/// Checks a set remembers as passed by default: a few appends' worth of every chain a node
/// appends to.
const KEPT: usize = 512;
/// Checks the process remembers: every node's recent collective signatures and owner signatures
/// (a few per append or round), for a few hundred nodes in one process.
const PROCESS_KEPT: usize = 8192;
/// Longest a caller waits for another caller's run of the same check before it runs it itself
/// (a check takes about a millisecond; this only bounds a wait that should never be long).
const WAIT: Duration = Duration::from_millis(500);

static PROCESS: LazyLock<VerifiedOnce> = LazyLock::new(|| VerifiedOnce::with_capacity(PROCESS_KEPT));

/// The checks that passed in this process (see the module doc). Only a check that was run and
/// held may be remembered here (a cosi root's verified total, a member's verified link, an
/// owner's signature), by a key that covers every input of the check: every node of the process
/// trusts it. (Only the runtime's services remember anything.)
#[cfg(feature = "runtime")]
pub(crate) fn process() -> &'static VerifiedOnce {
    &PROCESS
}

/// Whether the check keyed `key` passed in this process lately (see [`process`]; read only: only
/// the library's own checks put anything there).
pub fn passed_in_process(key: &[u8; 32]) -> bool {
    PROCESS.passed(key)
}

struct State {
    passed: KeptMap<[u8; 32], ()>,
    running: HashSet<[u8; 32]>,
}

/// A bounded set of checks that passed, with single-flight runs (see the module doc).
pub struct VerifiedOnce {
    state: Mutex<State>,
    done: Condvar,
}

impl Default for VerifiedOnce {
    fn default() -> Self {
        Self::with_capacity(KEPT)
    }
}

impl VerifiedOnce {
    /// A set that remembers at most `kept` passed checks (the oldest are forgotten first).
    pub fn with_capacity(kept: usize) -> Self {
        let state = State { passed: KeptMap::new(kept), running: HashSet::new() };
        Self { state: Mutex::new(state), done: Condvar::new() }
    }

    /// Whether the check of `key` passed lately.
    pub fn passed(&self, key: &[u8; 32]) -> bool {
        crate::sync::lock(&self.state).passed.contains(key)
    }

    /// Remembers that the check of `key` passed, when the caller ran an equivalent check itself.
    pub fn remember(&self, key: [u8; 32]) {
        crate::sync::lock(&self.state).passed.insert(key, ());
    }

    /// Runs `check` unless the check of `key` passed lately; while another caller runs it, waits
    /// for that run (and runs it itself if that one failed or takes too long). A run that passes
    /// is remembered; a failure is returned and forgotten.
    pub fn check<E>(&self, key: [u8; 32], check: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        {
            let mut st = crate::sync::lock(&self.state);
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                if st.passed.contains(&key) {
                    return Ok(());
                }
                if !st.running.contains(&key) {
                    break;
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                st = self.done.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            st.running.insert(key);
        }
        // Ends the run (and wakes the waiters) even if `check` panics.
        struct Running<'a>(&'a VerifiedOnce, [u8; 32], bool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                let mut st = crate::sync::lock(&self.0.state);
                st.running.remove(&self.1);
                if self.2 {
                    st.passed.insert(self.1, ());
                }
                drop(st);
                self.0.done.notify_all();
            }
        }
        let mut run = Running(self, key, false);
        let r = check();
        run.2 = r.is_ok();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn key(parts: &[&[u8]]) -> [u8; 32] {
        crate::crypto::sha256(parts)
    }

    #[test]
    fn a_pass_is_remembered_a_failure_is_not_and_keys_are_exact() {
        let v = VerifiedOnce::default();
        let runs = AtomicUsize::new(0);
        let run = |ok: bool| {
            runs.fetch_add(1, Ordering::SeqCst);
            if ok {
                Ok(())
            } else {
                Err("bad")
            }
        };
        let a = key(&[b"roster", b"statement", b"sig"]);
        assert_eq!(v.check(a, || run(false)), Err("bad"));
        assert!(!v.passed(&a));
        assert_eq!(v.check(a, || run(true)), Ok(()));
        assert_eq!(v.check(a, || run(false)), Ok(()), "a passed check is not run again");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Another roster, statement or signature is another check.
        for other in [
            &[b"roster2" as &[u8], b"statement", b"sig"],
            &[b"roster", b"statement2", b"sig"],
            &[b"roster", b"statement", b"sig2"],
        ] {
            assert_eq!(v.check(key(other), || run(false)), Err("bad"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn the_set_is_bounded() {
        let v = VerifiedOnce::default();
        for i in 0..(KEPT as u64 + 10) {
            v.remember(key(&[&i.to_be_bytes()]));
        }
        assert!(!v.passed(&key(&[&0u64.to_be_bytes()])), "the oldest are forgotten");
        assert!(v.passed(&key(&[&(KEPT as u64 + 9).to_be_bytes()])));
        assert_eq!(crate::sync::lock(&v.state).passed.len(), KEPT);
    }

    #[test]
    fn concurrent_callers_of_one_check_run_it_once() {
        let v = Arc::new(VerifiedOnce::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let cert = key(&[b"cert"]);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (v, runs) = (v.clone(), runs.clone());
                std::thread::spawn(move || {
                    v.check(cert, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok::<(), ()>(())
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
