//! Requests per source on the client port: a token bucket per source (an IPv4 address, or the /64
//! of an IPv6 one, as the node port's stranger limits count them), so one host cannot make the
//! roster run cosi rounds, store chains or answer reads as fast as it can send them. Every HTTP
//! request and every WebSocket message takes a token; a source without one gets 429 (HTTP) or the
//! `unavailable` close with `retry_after_ms` (WebSocket). Loopback is not limited unless the
//! operator asks: behind a reverse proxy every client comes from it, and the proxy limits its
//! requests; a proxy on this machine that says whom it forwards (`X-Forwarded-For`, as the nginx
//! site in `deploy/` does) has each request counted against that client instead, so the messages
//! inside a proxied WebSocket (which the proxy does not count) are limited per client too.
//!
//! The table is bounded: buckets that refilled are dropped when it is full (a full bucket is a
//! fresh one), and when every one of `MAX_SOURCES` sources is still spending, newcomers share a
//! bucket per network (IPv4 /24, IPv6 /48: one holder of a /48 filling the table with its /64s
//! then starves only its own network), at most `MAX_NETWORKS` of them, and beyond that one
//! overflow bucket, until some refill.

use crate::network::admission::{network_prefix, source_key};
use crate::token_bucket::TokenBucket as Bucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources with a bucket at once.
pub const MAX_SOURCES: usize = 65_536;
/// Networks with a shared bucket at once, for newcomers while the sources' table is full.
pub const MAX_NETWORKS: usize = 4_096;
/// Least time between two sweeps of a full table (a sweep walks every bucket).
const SWEEP_GAP: Duration = Duration::from_secs(1);

/// The source of a client-port request, set per request (see [`request_source`]).
#[derive(Clone, Copy, Debug)]
pub struct Source(pub IpAddr);

tokio::task_local! {
    /// The source of the client request a service handler is serving (set by the client port
    /// around each WebSocket request), for limits of costly methods (see [`current_source`]).
    static REQUEST_SOURCE: IpAddr;
}

/// `wait` in whole milliseconds, rounded up (a client retrying then has its token).
pub fn ceil_ms(wait: Duration) -> u128 {
    wait.as_micros().div_ceil(1000).max(1)
}

/// The error of a request from `ip` over its rate of `what`, to retry after `wait`.
pub fn over_rate(ip: IpAddr, wait: Duration, what: &str) -> crate::services::ServiceError {
    let retry_after_ms = ceil_ms(wait);
    crate::services::ServiceError::RateLimited {
        retry_after_ms,
        message: format!("too many {what} from {ip}: retry after {retry_after_ms} ms"),
    }
}

/// Runs `f` (a service handler's future) as serving a request from `source`.
pub async fn with_source<F: std::future::Future>(source: IpAddr, f: F) -> F::Output {
    REQUEST_SOURCE.scope(source, f).await
}

/// The source of the client request being served, when called inside a handler the client port
/// runs (`None` for in-process calls: an embedding application, a benchmark).
pub fn current_source() -> Option<IpAddr> {
    REQUEST_SOURCE.try_with(|s| *s).ok()
}

/// The source a request from `peer` is counted against: `peer`, or, when `peer` is loopback (a
/// reverse proxy on this machine), the address the proxy appended last to `X-Forwarded-For` (a
/// client can put anything before it, not that entry). Other peers' headers are not trusted.
pub fn request_source(peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    if !peer.to_canonical().is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

struct Table {
    buckets: HashMap<[u8; 16], Bucket>,
    /// Newcomers' buckets by network, while `buckets` is full.
    networks: HashMap<Vec<u8>, Bucket>,
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

/// Token buckets of the client port's sources.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    limit_loopback: bool,
    max_sources: usize,
    table: Mutex<Table>,
    refused: AtomicU64,
}

impl RateLimiter {
    /// `per_second` requests sustained and `burst` at once, per source.
    pub fn new(per_second: u32, burst: u32, limit_loopback: bool) -> Self {
        Self::with_max_sources(f64::from(per_second.max(1)), burst, limit_loopback, MAX_SOURCES)
    }

    /// `per_minute` sustained and `burst` at once, per source (for costly requests).
    pub fn per_minute(per_minute: u32, burst: u32, limit_loopback: bool) -> Self {
        Self::with_max_sources(f64::from(per_minute.max(1)) / 60.0, burst, limit_loopback, MAX_SOURCES)
    }

    fn with_max_sources(per_second: f64, burst: u32, limit_loopback: bool, max_sources: usize) -> Self {
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        Self {
            per_second,
            burst,
            limit_loopback,
            max_sources,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                networks: HashMap::new(),
                overflow: Bucket::full(burst, now),
                last_sweep: None,
            }),
            refused: AtomicU64::new(0),
        }
    }

    /// Takes a token for a request from `ip`; when there is none, how long until there is.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        if ip.to_canonical().is_loopback() && !self.limit_loopback {
            return Ok(());
        }
        self.take_at(ip, Instant::now())
    }

    fn take_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = source_key(Some(ip));
        let mut table = crate::sync::lock(&self.table);
        if !table.buckets.contains_key(&key) && table.buckets.len() >= self.max_sources {
            self.sweep(&mut table, now);
        }
        let fresh = Bucket::full(self.burst, now);
        let max_networks = (self.max_sources / 16).clamp(1, MAX_NETWORKS);
        let table = &mut *table;
        let bucket = if table.buckets.len() < self.max_sources || table.buckets.contains_key(&key) {
            table.buckets.entry(key).or_insert(fresh)
        } else {
            // Only while the sources' table is full (the network's key is built for these alone).
            let network = network_prefix(Some(ip));
            if table.networks.len() < max_networks || table.networks.contains_key(&network) {
                table.networks.entry(network).or_insert(fresh)
            } else {
                &mut table.overflow
            }
        };
        if bucket.take(now, self.per_second, self.burst) {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(Duration::from_secs_f64((1.0 - bucket.tokens()) / self.per_second))
    }

    /// Drops the buckets that refilled since their last request (at most once per `SWEEP_GAP`).
    fn sweep(&self, table: &mut Table, now: Instant) {
        if table.last_sweep.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_GAP) {
            return;
        }
        table.last_sweep = Some(now);
        let (per_second, burst) = (self.per_second, self.burst);
        let spending = |b: &Bucket| !b.is_full_at(now, per_second, burst);
        table.buckets.retain(|_, b| spending(b));
        table.networks.retain(|_, b| spending(b));
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Sources with a bucket now.
    pub fn sources(&self) -> usize {
        crate::sync::lock(&self.table).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10, 5, false);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.take_at(ip("192.0.2.1"), t0).is_ok());
        }
        let wait = limiter.take_at(ip("192.0.2.1"), t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        // Another source is not held back by the first one.
        assert!(limiter.take_at(ip("192.0.2.2"), t0).is_ok());
        // One token back after a tenth of a second, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.take_at(ip("192.0.2.1"), t1).is_ok());
        assert!(limiter.take_at(ip("192.0.2.1"), t1).is_err());
        // Idle for long, the bucket holds its burst, no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limiter.take_at(ip("192.0.2.1"), t2).is_ok());
        }
        assert!(limiter.take_at(ip("192.0.2.1"), t2).is_err());
    }

    #[test]
    fn a_local_proxy_names_the_source_and_no_one_else_does() {
        let headers = |values: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            h
        };
        let proxy = ip("127.0.0.1");
        // The entry the proxy appended (the last one) counts, not what the client put first.
        assert_eq!(request_source(proxy, &headers(&["10.9.9.9, 192.0.2.7"])), ip("192.0.2.7"));
        assert_eq!(request_source(proxy, &headers(&["10.9.9.9", "2001:db8::5"])), ip("2001:db8::5"));
        assert_eq!(request_source(ip("::1"), &headers(&["192.0.2.7"])), ip("192.0.2.7"));
        // Nothing usable: the proxy itself (exempt as loopback).
        assert_eq!(request_source(proxy, &headers(&[])), proxy);
        assert_eq!(request_source(proxy, &headers(&["not an address"])), proxy);
        // A remote peer cannot choose its source.
        assert_eq!(request_source(ip("198.51.100.9"), &headers(&["192.0.2.7"])), ip("198.51.100.9"));
    }

    #[test]
    fn a_late_clock_reading_counts_no_time_twice() {
        let limiter = RateLimiter::new(10, 1, false);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.take_at(ip("192.0.2.1"), t1).is_ok());
        // A request that read the clock earlier (t0) comes second: it gains nothing and does not
        // move the bucket's time back, so the next at t1 gains nothing either.
        assert!(limiter.take_at(ip("192.0.2.1"), t0).is_err());
        assert!(limiter.take_at(ip("192.0.2.1"), t1).is_err());
    }

    #[test]
    fn an_ipv6_host_is_one_source_per_64() {
        let limiter = RateLimiter::new(1, 2, false);
        let t0 = Instant::now();
        assert!(limiter.take_at(ip("2001:db8:0:1::1"), t0).is_ok());
        assert!(limiter.take_at(ip("2001:db8:0:1::ffff"), t0).is_ok());
        assert!(limiter.take_at(ip("2001:db8:0:1:abcd::2"), t0).is_err(), "same /64, same bucket");
        assert!(limiter.take_at(ip("2001:db8:0:2::1"), t0).is_ok(), "another /64");
    }

    #[test]
    fn a_per_minute_rate_refills_slowly() {
        let limiter = RateLimiter::per_minute(6, 1, false);
        let t0 = Instant::now();
        assert!(limiter.take_at(ip("192.0.2.1"), t0).is_ok());
        let wait = limiter.take_at(ip("192.0.2.1"), t0).unwrap_err();
        assert!(wait > Duration::from_millis(9_900) && wait <= Duration::from_secs(10), "{wait:?}");
        assert!(limiter.take_at(ip("192.0.2.1"), t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn the_source_is_known_inside_a_handler_only() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(current_source(), None);
        let inside = rt.block_on(with_source(ip("192.0.2.9"), async { current_source() }));
        assert_eq!(inside, Some(ip("192.0.2.9")));
    }

    #[test]
    fn loopback_is_limited_only_when_asked() {
        let open = RateLimiter::new(1, 1, false);
        for _ in 0..100 {
            assert!(open.take(ip("127.0.0.1")).is_ok());
            assert!(open.take(ip("::1")).is_ok());
            assert!(open.take(ip("::ffff:127.0.0.1")).is_ok());
        }
        let limited = RateLimiter::new(1, 1, true);
        assert!(limited.take(ip("127.0.0.1")).is_ok());
        assert!(limited.take(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_newcomers_share_a_bucket_per_network() {
        let limiter = RateLimiter::with_max_sources(1.0, 2, false, 4);
        let t0 = Instant::now();
        for i in 1..=4 {
            assert!(limiter.take_at(ip(&format!("192.0.2.{i}")), t0).is_ok());
        }
        // Every bucket is still spending: newcomers of one network share a bucket of the same size.
        assert!(limiter.take_at(ip("198.51.100.1"), t0).is_ok());
        assert!(limiter.take_at(ip("198.51.100.2"), t0).is_ok());
        assert!(limiter.take_at(ip("198.51.100.3"), t0).is_err(), "the network's bucket is spent");
        assert_eq!(limiter.sources(), 4);
        // Once the first ones refilled (one second at one per second), they make room.
        let t1 = t0 + Duration::from_secs(2);
        assert!(limiter.take_at(ip("198.51.100.3"), t1).is_ok());
        assert_eq!(limiter.sources(), 1, "refilled buckets are dropped, the newcomer has its own");
        // Held sources keep their state: a spent one stays spent.
        assert!(limiter.take_at(ip("198.51.100.3"), t1).is_ok());
        assert!(limiter.take_at(ip("198.51.100.3"), t1).is_err());
    }

    #[test]
    fn one_holder_of_a_48_filling_the_table_starves_only_its_own_network() {
        let limiter = RateLimiter::with_max_sources(1.0, 2, false, 64);
        let t0 = Instant::now();
        // The attacker's /64s of one /48 take every source bucket, then its newcomers share its
        // network's bucket until it is spent.
        for i in 0..80 {
            let _ = limiter.take_at(ip(&format!("2001:db8:aa:{i:x}::1")), t0);
            let _ = limiter.take_at(ip(&format!("2001:db8:aa:{i:x}::1")), t0);
        }
        assert_eq!(limiter.sources(), 64);
        assert!(limiter.take_at(ip("2001:db8:aa:ffff::1"), t0).is_err(), "the attacker's network is spent");
        // Honest newcomers of other networks are served.
        assert!(limiter.take_at(ip("2001:db8:bb::1"), t0).is_ok());
        assert!(limiter.take_at(ip("2001:db8:cc:1::1"), t0).is_ok());
        assert!(limiter.take_at(ip("203.0.113.5"), t0).is_ok());
        // Past `max_sources / 16` networks (4 here), newcomers share the overflow bucket.
        assert!(limiter.take_at(ip("2001:db8:dd::1"), t0).is_ok());
        assert!(limiter.take_at(ip("2001:db8:ee::1"), t0).is_ok());
        assert!(limiter.take_at(ip("2001:db8:ff::1"), t0).is_err(), "the overflow bucket is spent");
    }
}
