//! Peer and link health for the node-to-node transport. It exists so that a dead member costs one
//! round trip, not a timeout on every request: the transport records what every request taught it
//! (refused dial, reply timed out, round-trip time), rounds ask it which members to skip, and a
//! background probe (one application ping at a time per down peer) brings a peer back once it
//! answers again. Peers that went quiet on a live connection (hung, not refusing) are held down a
//! little longer after each relapse, so a member that answers pings but not requests cannot slow
//! every round. Also sets TCP keepalive and `TCP_USER_TIMEOUT` on node sockets (Linux).

use crate::crypto::IdentityPublicKey;
use crate::events::{EventBus, NodeEvent};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Hold-down after the first timeout of a peer that still answers pings; doubled per relapse.
const HOLD_MIN: Duration = Duration::from_millis(250);
const HOLD_MAX: Duration = Duration::from_secs(10);
/// Relapse count is forgotten after this long without a timeout.
const STRIKES_FORGET: Duration = Duration::from_secs(60);

/// Why a peer is considered down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownInfo {
    pub since: Instant,
    /// The last failure, for reports and logs.
    pub reason: String,
    /// It accepted the request but did not answer in time (as opposed to refusing or being
    /// unreachable).
    pub hung: bool,
}

#[derive(Default)]
struct PeerState {
    /// Smoothed round-trip time of pings.
    rtt: Option<Duration>,
    down: Option<DownInfo>,
    /// Timeouts in a row (each doubles the hold-down).
    strikes: u32,
    last_timeout: Option<Instant>,
    hold_until: Option<Instant>,
    probing: bool,
    /// Failed dials, and requests unanswered on a live connection, since the node started.
    dial_failures: u64,
    timeouts: u64,
}

/// What `/metrics` and the status page show of one peer.
#[derive(Clone, Debug)]
pub struct PeerReport {
    pub peer: IdentityPublicKey,
    pub rtt: Option<Duration>,
    pub down: Option<DownInfo>,
    pub dial_failures: u64,
    pub timeouts: u64,
}

/// What the transport knows about every peer it talked to (shared by all services of a node).
#[derive(Default)]
pub struct PeerHealth {
    peers: Mutex<HashMap<IdentityPublicKey, PeerState>>,
    /// Where peer-down and peer-up events go (the node's bus), once set.
    events: OnceLock<EventBus>,
}

impl PeerHealth {
    /// Reports peers going down and coming back on `bus` from now on (first call wins).
    pub(super) fn set_events(&self, bus: EventBus) {
        let _ = self.events.set(bus);
    }

    fn emit(&self, event: NodeEvent) {
        if let Some(bus) = self.events.get() {
            bus.emit(event);
        }
    }

    /// `Some` when `peer` is known to be down (skip it until the probe sees it back).
    pub fn down(&self, peer: &IdentityPublicKey) -> Option<DownInfo> {
        lock(&self.peers).get(peer).and_then(|p| p.down.clone())
    }

    /// Every peer known to be down.
    pub fn down_peers(&self) -> Vec<(IdentityPublicKey, DownInfo)> {
        lock(&self.peers).iter().filter_map(|(k, p)| p.down.clone().map(|d| (*k, d))).collect()
    }

    /// Every peer this node has a record of.
    pub fn report(&self) -> Vec<PeerReport> {
        lock(&self.peers)
            .iter()
            .map(|(k, p)| PeerReport {
                peer: *k,
                rtt: p.rtt,
                down: p.down.clone(),
                dial_failures: p.dial_failures,
                timeouts: p.timeouts,
            })
            .collect()
    }

    /// Smoothed ping round-trip time, when measured.
    pub fn rtt(&self, peer: &IdentityPublicKey) -> Option<Duration> {
        lock(&self.peers).get(peer).and_then(|p| p.rtt)
    }

    /// A ping answered after `rtt`.
    pub(super) fn record_rtt(&self, peer: &IdentityPublicKey, rtt: Duration) {
        let mut peers = lock(&self.peers);
        let p = peers.entry(*peer).or_default();
        p.rtt = Some(match p.rtt {
            Some(old) => (old * 7 + rtt) / 8,
            None => rtt,
        });
    }

    /// The peer answered something. Clears `down` unless it is held down after hanging; returns
    /// whether it came back.
    pub(super) fn record_ok(&self, peer: &IdentityPublicKey) -> bool {
        {
            let mut peers = lock(&self.peers);
            let Some(p) = peers.get_mut(peer) else { return false };
            if p.down.is_none() || p.hold_until.is_some_and(|t| Instant::now() < t) {
                return false;
            }
            p.down = None;
            p.hold_until = None;
        }
        self.emit(NodeEvent::PeerUp { peer: *peer });
        true
    }

    /// A request failed in a way that says the peer is down: it refused the connection or is
    /// unreachable (`hung == false`), or it did not answer on a live connection (`hung`). Returns
    /// true when the caller must start a probe for it (none is running).
    pub(super) fn record_failure(&self, peer: &IdentityPublicKey, hung: bool, reason: String) -> bool {
        let now = Instant::now();
        let mut peers = lock(&self.peers);
        let p = peers.entry(*peer).or_default();
        if hung {
            p.timeouts = p.timeouts.saturating_add(1);
        } else {
            p.dial_failures = p.dial_failures.saturating_add(1);
        }
        if hung {
            if p.last_timeout.is_some_and(|t| now.duration_since(t) > STRIKES_FORGET) {
                p.strikes = 0;
            }
            p.strikes = p.strikes.saturating_add(1);
            p.last_timeout = Some(now);
            let hold = HOLD_MIN.saturating_mul(1 << (p.strikes - 1).min(16)).min(HOLD_MAX);
            p.hold_until = Some(now + hold);
        }
        let went_down = match &mut p.down {
            Some(d) => {
                d.reason = reason;
                d.hung |= hung;
                None
            }
            None => {
                tracing::info!(peer = %super::short(peer), hung, %reason, "peer is down");
                p.down = Some(DownInfo { since: now, reason: reason.clone(), hung });
                Some(NodeEvent::PeerDown { peer: *peer, reason, hung })
            }
        };
        let start_probe = !std::mem::replace(&mut p.probing, true);
        drop(peers);
        if let Some(e) = went_down {
            self.emit(e);
        }
        start_probe
    }

    /// Drops all that is known of `peer` (its probe gave up): its next request tries it afresh.
    pub(super) fn forget(&self, peer: &IdentityPublicKey) {
        lock(&self.peers).remove(peer);
    }

    /// How long `peer` stays held down whatever the probe says.
    pub(super) fn hold_left(&self, peer: &IdentityPublicKey) -> Duration {
        lock(&self.peers)
            .get(peer)
            .and_then(|p| p.hold_until)
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// The probe of `peer` ended; returns false (and keeps it marked as probing) when the peer is
    /// down again, so the probe must go on.
    pub(super) fn probe_finished(&self, peer: &IdentityPublicKey) -> bool {
        let mut peers = lock(&self.peers);
        match peers.get_mut(peer) {
            Some(p) if p.down.is_some() => false,
            Some(p) => {
                p.probing = false;
                true
            }
            None => true,
        }
    }
}

/// TCP keepalive (idle 5 s, then every 2 s, 3 probes) and a 10 s `TCP_USER_TIMEOUT`, so the kernel
/// too gives up on a connection whose packets vanish. Best effort: failures are logged.
#[cfg(target_os = "linux")]
pub(super) fn tune_socket(tcp: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int, what: &str| {
        // SAFETY: `fd` is an open socket owned by `tcp` for the duration of the call, and the
        // option value is a live c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(option = what, error = %std::io::Error::last_os_error(), "setsockopt failed");
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 5, "TCP_KEEPIDLE");
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 2, "TCP_KEEPINTVL");
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3, "TCP_KEEPCNT");
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 10_000, "TCP_USER_TIMEOUT");
}

#[cfg(not(target_os = "linux"))]
pub(super) fn tune_socket(_tcp: &tokio::net::TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKeyPair;

    #[test]
    fn refused_peer_comes_back_on_the_first_answer_and_hung_peer_is_held() {
        let h = PeerHealth::default();
        let a = IdentityKeyPair::generate().public();
        assert!(h.down(&a).is_none());
        assert!(h.record_failure(&a, false, "refused".into()), "first failure starts a probe");
        assert!(!h.record_failure(&a, false, "refused".into()), "one probe at a time");
        assert!(h.down(&a).is_some());
        assert!(!h.probe_finished(&a), "still down: the probe goes on");
        assert!(h.record_ok(&a));
        assert!(h.down(&a).is_none());
        assert!(h.probe_finished(&a));

        let b = IdentityKeyPair::generate().public();
        h.record_failure(&b, true, "timed out".into());
        assert!(!h.record_ok(&b), "held down after hanging");
        assert!(h.hold_left(&b) > Duration::ZERO && h.hold_left(&b) <= HOLD_MIN);
        h.record_failure(&b, true, "timed out".into());
        assert!(h.hold_left(&b) > HOLD_MIN, "a relapse doubles the hold");
        assert!(h.down(&b).unwrap().hung);
    }
}
