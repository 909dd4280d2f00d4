//! What several integration tests share: readiness polls with a deadline (never bare sleeps).
//! Each test file that needs it declares `mod support;` and uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Polls `ok` every 20 ms until it holds; fails naming `what` once `within` has passed.
pub fn wait_until(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `get` every 20 ms until it returns `want`; fails naming `what` and the last value
/// seen once `within` has passed.
pub fn wait_for<T: PartialEq + std::fmt::Debug>(within: Duration, what: &str, want: T, mut get: impl FnMut() -> T) {
    let deadline = Instant::now() + within;
    loop {
        let has = get();
        if has == want {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what} (wants {want:?}, has {has:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}
