//! Keeps a peer that drops its connection from killing the host process with SIGPIPE.
//!
//! On Linux, a `writev` on a socket whose peer has gone raises SIGPIPE in the writing thread, and
//! the default action of SIGPIPE ends the process. The TLS and HTTP layers this library uses write
//! with `writev` (tokio-rustls, rustls, hyper). Rust programs, Python and the JVM ignore SIGPIPE,
//! so they only see the `EPIPE` error; a C, C++ or Swift host does not, and a member that
//! restarted at the wrong moment killed it (the C tests died with exit code 141 that way).
//!
//! The process-wide disposition belongs to the host, so the library leaves it alone. It blocks
//! SIGPIPE instead in the threads where it writes to sockets: the threads of the runtimes it
//! builds ([`block_in_this_thread`], run as their `on_thread_start`), and the caller's thread for
//! the length of a call into the C ABI or the uniffi exports ([`Shield`]). A blocked SIGPIPE raised
//! by a write stays pending on that thread and the write fails with `EPIPE`, which the caller
//! handles like any broken connection. Embedders that run a node on their own tokio runtime
//! (`NodeBuilder::runtime`) are Rust programs, which ignore SIGPIPE already.

/// Blocks SIGPIPE in the calling thread for good: for threads the library creates and owns.
pub fn block_in_this_thread() {
    #[cfg(unix)]
    imp::block();
}

/// Blocks SIGPIPE in the calling thread while it lives. On drop it discards a SIGPIPE that became
/// pending meanwhile (so the host never gets it) and unblocks SIGPIPE again if it was not blocked
/// before (the rest of the thread's mask is left as it is then). It stays on the thread that made
/// it (not `Send`); nested shields are dropped in reverse order, as scopes do.
#[must_use = "SIGPIPE is blocked only while the shield lives"]
pub struct Shield {
    #[cfg(unix)]
    state: imp::Saved,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Shield {
    pub fn new() -> Self {
        Self {
            #[cfg(unix)]
            state: imp::save_and_block(),
            _this_thread: std::marker::PhantomData,
        }
    }
}

impl Default for Shield {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        #[cfg(unix)]
        imp::restore(&self.state);
    }
}

#[cfg(unix)]
mod imp {
    use std::mem::MaybeUninit;

    /// Whether SIGPIPE was blocked in the thread before the shield, and whether it was pending
    /// then (the host's, not one of ours: it is left for the host).
    pub(super) struct Saved {
        was_blocked: bool,
        was_pending: bool,
    }

    fn sigpipe_set() -> libc::sigset_t {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given; sigaddset takes a valid signal.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
            set.assume_init()
        }
    }

    fn sigpipe_pending() -> bool {
        let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending fills the set; sigismember reads the initialised set.
        unsafe {
            libc::sigpending(pending.as_mut_ptr()) == 0 && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1
        }
    }

    pub(super) fn block() {
        let set = sigpipe_set();
        // SAFETY: a valid set; the old mask is not asked for.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }

    pub(super) fn save_and_block() -> Saved {
        let set = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: pthread_sigmask fills `old` with the current mask before adding SIGPIPE (it
        // cannot fail with SIG_BLOCK and a valid set); sigismember reads the filled set.
        let was_blocked = unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) == 0
                && libc::sigismember(old.as_ptr(), libc::SIGPIPE) == 1
        };
        Saved { was_blocked, was_pending: sigpipe_pending() }
    }

    pub(super) fn restore(saved: &Saved) {
        if !saved.was_pending && sigpipe_pending() {
            discard_pending();
        }
        if !saved.was_blocked {
            let set = sigpipe_set();
            // SAFETY: a valid set; only SIGPIPE is unblocked, the rest of the mask is kept.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        }
    }

    /// Takes the pending SIGPIPE off without waiting.
    fn discard_pending() {
        let set = sigpipe_set();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: a valid set, no info asked for, a zero timeout (returns at once).
            unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            // SIGPIPE is pending and blocked here, so sigwait returns at once.
            let mut sig = 0;
            // SAFETY: a valid set and a valid out pointer.
            unsafe { libc::sigwait(&set, &mut sig) };
        }
    }
}
