//! Locking a std mutex the same way everywhere: a poisoned lock (a holder panicked) is recovered
//! instead of spreading the panic, because every structure guarded in this crate is consistent
//! between statements.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
