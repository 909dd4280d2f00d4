//! A delaying TCP relay for the WAN simulation (the kernels here have no netem qdisc). It listens in
//! the root namespace, one port per member, and forwards each connection to that member, holding
//! every chunk read for the one-way delay ± jitter in each direction. TCP hides loss from the
//! application, so a lost chunk is one delivered a retransmission timeout late; later chunks wait
//! behind it, in order, as TCP's in-order delivery makes them (head-of-line blocking). The link's
//! settings are shared by every connection and may change between measurements.

use rand::Rng;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// One-way delay, jitter (uniform in ±jitter) and chunk loss of every relayed direction.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability that a chunk is lost (then delivered `rto` later).
    pub loss: f64,
    /// The retransmission time of a lost chunk (Linux: at least 200 ms).
    pub rto: Duration,
}

impl Link {
    /// The time a chunk read now spends in the relay.
    fn hold(&self) -> Duration {
        let mut rng = rand::thread_rng();
        let jitter = self.jitter.as_secs_f64();
        let spread = if jitter > 0.0 { rng.gen_range(-jitter..=jitter) } else { 0.0 };
        let mut hold = (self.delay.as_secs_f64() + spread).max(0.0);
        if self.loss > 0.0 && rng.gen_bool(self.loss.min(1.0)) {
            hold += self.rto.as_secs_f64();
        }
        Duration::from_secs_f64(hold)
    }
}

/// The settings every relay of a test reads, changeable while they run.
pub type SharedLink = Arc<RwLock<Link>>;

fn current(link: &SharedLink) -> Link {
    *link.read().unwrap_or_else(|p| p.into_inner())
}

/// Listens on `ip`:0 and relays every connection to `target` through `link`; returns the port.
pub async fn spawn(ip: &str, target: SocketAddr, link: SharedLink) -> std::io::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let link = link.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                tokio::spawn(pump(ir, ow, link.clone()));
                tokio::spawn(pump(or, iw, link));
            });
        }
    });
    Ok(port)
}

/// Copies `from` to `to`, each chunk held as the link says, in order.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: SharedLink) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut last = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // In order: a chunk never overtakes the one before it.
        let at = (Instant::now() + current(&link).hold()).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_late_and_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let target = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = echo.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let link = Arc::new(RwLock::new(Link {
                delay: Duration::from_millis(40),
                jitter: Duration::from_millis(10),
                loss: 0.0,
                rto: Duration::from_millis(200),
            }));
            let port = spawn("127.0.0.1", target, link.clone()).await.unwrap();
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            c.set_nodelay(true).unwrap();
            let start = Instant::now();
            let mut got = Vec::new();
            for i in 0..20u8 {
                c.write_all(&[i]).await.unwrap();
            }
            while got.len() < 20 {
                let mut buf = [0u8; 64];
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            let rtt = start.elapsed();
            assert_eq!(got, (0..20u8).collect::<Vec<_>>(), "reordered");
            // Two one-way delays of 40 ± 10 ms, plus a little.
            assert!(rtt >= Duration::from_millis(60) && rtt < Duration::from_millis(200), "{rtt:?}");
            // Every chunk lost: one retransmission time more each way.
            link.write().unwrap().loss = 1.0;
            link.write().unwrap().jitter = Duration::ZERO;
            let start = Instant::now();
            c.write_all(b"x").await.unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(c.read(&mut buf).await.unwrap(), 1);
            let rtt = start.elapsed();
            assert!(rtt >= Duration::from_millis(480) && rtt < Duration::from_millis(700), "{rtt:?}");
        });
    }
}
