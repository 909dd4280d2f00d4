//! One token bucket: tokens that refill at a steady rate up to a burst, taken one per costly act.
//! The client port's per-source request limits (`api::rate`) and a cosi member's budget of early
//! signatures (`services::cosi::early_signing`) both count with it. The rate and the burst are the
//! owner's (passed in), so a table of many buckets keeps two numbers per bucket. A single
//! node-wide budget with its own rate and burst (the cosi members' budgets of early signatures and
//! of signatures on the runtime's workers) is a [`Budget`].

use std::sync::Mutex;
use std::time::Instant;

/// Tokens and when they were last counted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A bucket holding `burst` tokens at `now`.
    pub(crate) fn full(burst: f64, now: Instant) -> Self {
        Self { tokens: burst, at: now }
    }

    /// Adds what refilled since the last count at `per_second`, up to `burst`. A caller that read
    /// the clock before another one counted (and took the lock after it) counts no time twice.
    pub(crate) fn refill(&mut self, now: Instant, per_second: f64, burst: f64) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + gained).min(burst);
        self.at = self.at.max(now);
    }

    /// Refills, then takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant, per_second: f64, burst: f64) -> bool {
        self.refill(now, per_second, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives a taken token back (the act it paid for cost nothing after all), up to `burst`.
    pub(crate) fn give_back(&mut self, burst: f64) {
        self.tokens = (self.tokens + 1.0).min(burst);
    }

    /// Tokens after the last count (a fraction of one while refilling).
    pub(crate) fn tokens(&self) -> f64 {
        self.tokens
    }

    /// Whether the bucket would be full at `now`: then it is no different from a fresh one.
    pub(crate) fn is_full_at(&self, now: Instant, per_second: f64, burst: f64) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_second >= burst
    }
}

/// One bucket shared by a whole node, with its rate and burst: taken from by any thread.
pub(crate) struct Budget {
    bucket: Mutex<TokenBucket>,
    per_second: f64,
    burst: f64,
}

impl Budget {
    /// A full budget of `burst` tokens, refilled at `per_second`.
    pub(crate) fn new(per_second: f64, burst: f64) -> Self {
        Self { bucket: Mutex::new(TokenBucket::full(burst, Instant::now())), per_second, burst }
    }

    /// Takes one token if there is one at `now`.
    pub(crate) fn take_at(&self, now: Instant) -> bool {
        crate::sync::lock(&self.bucket).take(now, self.per_second, self.burst)
    }

    /// Gives a taken token back (see [`TokenBucket::give_back`]).
    pub(crate) fn give_back(&self) {
        crate::sync::lock(&self.bucket).give_back(self.burst);
    }
}
