//! Locking a std mutex the same way everywhere: a poisoned lock (a holder panicked) is recovered
//! instead of spreading the panic, because every structure guarded in this crate is consistent
//! between statements. Also: waiting on a `Notify` with a deadline, and running blocking work
//! from inside a task without stalling the runtime's other tasks ([`may_block`]).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until `cond` holds or `deadline` passes, waking at each `notify` (registered before
/// `cond` is read, so no wake-up is lost); returns whether `cond` holds.
#[cfg(feature = "runtime")]
pub async fn wait_notified(
    notify: &tokio::sync::Notify,
    deadline: std::time::Instant,
    cond: impl Fn() -> bool,
) -> bool {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// Runs `f`, which may block for long (a flush to a slow disk, an embedder's hook), from inside a
/// task: on a multi-threaded tokio runtime in `block_in_place`, so that the worker's other tasks
/// move to another thread instead of waiting behind it; elsewhere (a current-thread runtime, no
/// runtime) as a plain call.
#[cfg(feature = "runtime")]
pub fn may_block<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
