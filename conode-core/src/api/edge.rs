//! What keeps the client port answering under a flood: a cap on connections (in total and per
//! source address) taken at accept, a record of each connection's last traffic so idle ones are
//! closed, back-off when accepting fails (e.g. out of file descriptors), and raising the process'
//! open-files soft limit at start.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connections served at once, in total and per source address.
pub struct ConnLimiter {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was refused at accept.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerAddress,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_address, open: Mutex::new((0, HashMap::new())) })
    }

    /// A place for a connection from `ip`, released when the guard drops.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refused> {
        let mut open = crate::sync::lock(&self.open);
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        let n = open.1.entry(ip).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        open.0 += 1;
        Ok(ConnGuard { limiter: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        crate::sync::lock(&self.open).0
    }
}

/// One admitted connection; dropping it frees its place.
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = crate::sync::lock(&self.limiter.open);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// When a connection last moved bytes (milliseconds since it was accepted).
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self { start: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Completes once no byte moved for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// A connection's byte stream that records its traffic and holds its place in the limiter for as
/// long as it lives (an upgraded WebSocket keeps it).
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
    _guard: ConnGuard,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Activity, guard: ConnGuard) -> Self {
        Self { inner, activity, _guard: guard }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Exponential back-off after failed accepts (out of file descriptors: waiting lets connections
/// close instead of spinning on the error and flooding the log).
pub struct AcceptBackoff {
    delay: Duration,
    failures: u64,
}

impl AcceptBackoff {
    const MIN: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        Self { delay: Self::MIN, failures: 0 }
    }

    /// Records a failure; returns how long to wait and whether to log it (the first, then every
    /// 100th).
    pub fn failed(&mut self) -> (Duration, bool) {
        self.failures += 1;
        let d = self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
        (d, self.failures == 1 || self.failures.checked_rem(100) == Some(0))
    }

    pub fn succeeded(&mut self) {
        self.delay = Self::MIN;
        self.failures = 0;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Raises the soft limit of open files towards `target` (never above the hard limit) once per
/// process; returns the soft limit in force afterwards.
// `rlim_t` is not u64 on every Unix.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files(target: u64) -> Option<u64> {
    #[cfg(unix)]
    {
        static DONE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        *DONE.get_or_init(|| {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes into the struct we own.
            if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
                tracing::warn!(error = %io::Error::last_os_error(), "cannot read the open-files limit");
                return None;
            }
            let before = lim.rlim_cur as u64;
            let want = (target as libc::rlim_t).min(lim.rlim_max);
            if want > lim.rlim_cur {
                let new = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
                // SAFETY: setrlimit reads the struct we own.
                if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
                    tracing::info!(
                        before,
                        now = want as u64,
                        hard = lim.rlim_max as u64,
                        "raised the open-files limit"
                    );
                    return Some(want as u64);
                }
                tracing::warn!(error = %io::Error::last_os_error(), before, "cannot raise the open-files limit");
            } else {
                tracing::info!(limit = before, hard = lim.rlim_max as u64, "open-files limit");
            }
            Some(before)
        })
    }
    #[cfg(not(unix))]
    {
        let _ = target;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_total_and_per_address() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = l.try_admit(a).unwrap();
        let _g2 = l.try_admit(a).unwrap();
        assert_eq!(l.try_admit(a).err(), Some(Refused::PerAddress));
        let _g3 = l.try_admit(b).unwrap();
        assert_eq!(l.try_admit(b).err(), Some(Refused::Total));
        drop(g1);
        assert_eq!(l.open(), 2);
        l.try_admit(a).unwrap();
    }

    #[test]
    fn backoff_grows_and_logs_rarely() {
        let mut b = AcceptBackoff::new();
        let (d1, log1) = b.failed();
        let (d2, log2) = b.failed();
        assert!(d2 > d1 && log1 && !log2);
        for _ in 0..20 {
            assert!(b.failed().0 <= AcceptBackoff::MAX);
        }
        b.succeeded();
        assert_eq!(b.failed().0, AcceptBackoff::MIN);
    }
}
