//! The node-to-node port: pinned mutual TLS, length-prefixed envelopes, one reused connection per
//! peer (dialed on demand, or accepted from the peer), reconnect with backoff, DNS resolution at
//! every dial, address overrides, and request/response on top for services. Link health: every
//! request feeds [`health::PeerHealth`] (refused or unreachable peers are down at once, peers
//! that do not answer on a live link are down after the caller's deadline), down peers are probed
//! in the background until they answer, an idle link is pinged, a link on which a request timed
//! out is checked with a ping and closed (and later redialled) when that fails too, and the newest
//! connection of a peer carries our requests.

pub mod admission;
pub mod frame;
pub mod health;
pub mod socks;
pub mod tls;

use crate::config::{AddressOverrides, ServerIdentity};
use crate::crypto::{IdentityKeyPair, IdentityPublicKey};
use crate::services::Tasks;
use frame::{Envelope, FrameError, Kind, WIRE_VERSION};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Built-in service answering reachability checks.
pub const NET_SERVICE: &str = "Net";
/// How an error reply that refuses a request for the per-peer cap begins.
const BUSY_PREFIX: &str = "busy: ";

#[derive(Debug, thiserror::Error, Clone)]
pub enum NetError {
    #[error("peer {peer} ({address}): cannot connect: {reason}")]
    Dial { peer: String, address: String, reason: String },
    #[error("peer {peer}: timed out after {after:?} waiting for {what}")]
    Timeout { peer: String, what: String, after: Duration },
    #[error("peer {peer}: connection closed")]
    Closed { peer: String },
    #[error("peer {peer} answered with an error: {message}")]
    Remote { peer: String, message: String },
    /// The peer had too many of this node's requests running (its per-peer cap): a transient
    /// refusal, to be treated like a slow peer rather than a final answer.
    #[error("peer {peer} is busy: {message}")]
    Busy { peer: String, message: String },
    #[error("network is shut down")]
    Shutdown,
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Tunables of the node-to-node transport.
#[derive(Clone, Debug)]
pub struct NetSettings {
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A link with nothing received for this long is pinged (`ZERO`: never).
    pub idle_ping: Duration,
    /// Shortest wait for the ping that checks a link (after idleness or a timed-out request);
    /// the wait is 8 round trips when that is longer.
    pub link_check: Duration,
    /// First interval of the background probe of a down peer (it grows to 1 s).
    pub probe_interval: Duration,
    /// A down peer outside the rosters this node works with (one only others' introductions
    /// named, or only dialed for them) is probed this long at most; then what is known of it is
    /// forgotten and its next request tries it afresh. Members of the node's own rosters are
    /// probed until they answer.
    pub probe_give_up: Duration,
    /// A peer connection on which nothing arrives for this long (and nothing is awaited) is closed.
    pub idle_timeout: Duration,
    /// Deadline to receive a whole frame once its length arrived.
    pub frame_timeout: Duration,
    /// Connections of peers outside every known roster served at once (introductions only).
    pub max_strangers: usize,
    /// Bytes of frames from strangers held at once, all strangers together.
    pub stranger_memory: usize,
    /// Idle and frame deadline of a stranger's connection.
    pub stranger_timeout: Duration,
    /// Requests of one admitted peer's connection handled at once; more are answered with an
    /// error at once (see [`Network::refused_requests`]).
    pub peer_requests_in_flight: usize,
    /// Bytes of one connection's requests held by running handlers (one request at a time is
    /// served whatever its size).
    pub peer_request_memory: usize,
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            max_frame: frame::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(20),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            idle_ping: Duration::from_secs(1),
            link_check: Duration::from_secs(1),
            probe_interval: Duration::from_millis(100),
            probe_give_up: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(60),
            max_strangers: 16,
            stranger_memory: 16 << 20,
            stranger_timeout: Duration::from_secs(10),
            peer_requests_in_flight: 1024,
            peer_request_memory: 64 << 20,
        }
    }
}

/// A message delivered to a service handler.
pub struct PeerMessage {
    pub from: IdentityPublicKey,
    /// The IP address the connection comes from (per-source limits for strangers' requests).
    pub remote: Option<std::net::IpAddr>,
    pub protocol: String,
    pub round_id: Vec<u8>,
    pub payload: Vec<u8>,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;
/// A service's handler of peer requests: the reply payload, or an error sent back to the peer.
pub type PeerHandler = Arc<dyn Fn(PeerMessage) -> HandlerFuture + Send + Sync>;

struct Link {
    conn_id: u64,
    tx: mpsc::Sender<Vec<u8>>,
    ctl: Arc<LinkCtl>,
}

/// Shared by a connection's tasks: closing it, when it last received, whether a check runs.
struct LinkCtl {
    close: CancellationToken,
    /// Milliseconds since `Inner::epoch` of the last frame received.
    last_rx: AtomicU64,
    /// Milliseconds since `Inner::epoch` of the last reply (to a request of ours) received.
    last_reply_rx: AtomicU64,
    checking: AtomicBool,
}

/// What a connection's request handlers hold: how many run, and the bytes of their requests.
#[derive(Default)]
struct InFlight {
    count: AtomicU64,
    bytes: AtomicU64,
}

/// One running handler's share of [`InFlight`], given back however the handler ends.
struct InFlightGuard {
    of: Arc<InFlight>,
    bytes: u64,
}

impl InFlightGuard {
    fn hold(of: &Arc<InFlight>, bytes: u64) -> Self {
        of.count.fetch_add(1, Ordering::Relaxed);
        of.bytes.fetch_add(bytes, Ordering::Relaxed);
        Self { of: of.clone(), bytes }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.of.count.fetch_sub(1, Ordering::Relaxed);
        self.of.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A usable connection: its id, its writer's queue, its control block.
type LinkRef = (u64, mpsc::Sender<Vec<u8>>, Arc<LinkCtl>);

struct Pending {
    conn_id: u64,
    reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
}

struct Backoff {
    next_try: Instant,
    delay: Duration,
    last_error: NetError,
    /// When the last dial failed.
    failed_at: Instant,
}

/// How a request treats a peer whose dials failed lately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialing {
    /// Wait out the dial backoff (within the request's deadline), then dial.
    AfterBackoff,
    /// The peer is known down and its backoff runs: fail at once with the last dial error.
    FailFast,
    /// Dial once right away, whatever the backoff, unless a dial that failed after the request
    /// began already gave the answer.
    Now,
}

struct Inner {
    identity: IdentityKeyPair,
    tls: tls::TlsIdentity,
    acceptor: TlsAcceptor,
    settings: NetSettings,
    links: Mutex<HashMap<IdentityPublicKey, Link>>,
    dialing: Mutex<HashMap<IdentityPublicKey, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<IdentityPublicKey, Backoff>>,
    handlers: RwLock<HashMap<String, PeerHandler>>,
    pending: Mutex<HashMap<u64, Pending>>,
    overrides: RwLock<AddressOverrides>,
    next_id: AtomicU64,
    tx_bytes: AtomicU64,
    rx_bytes: AtomicU64,
    /// Requests answered with an error because their peer had too many in flight.
    refused_requests: AtomicU64,
    /// Each peer's running handlers, shared by all of its connections.
    in_flight: Mutex<HashMap<IdentityPublicKey, std::sync::Weak<InFlight>>>,
    /// How late (ms) the last keepalive timer fired: this process's scheduling lag. A link
    /// check waits for it too, so a saturated process does not take slow answers for dead
    /// links (and redial them, which saturates it more).
    lag_ms: AtomicU64,
    health: health::PeerHealth,
    epoch: Instant,
    /// Peers served in full; everyone else gets the strangers' budget.
    admission: admission::Admission,
    /// Connection tasks; cancelled when the node stops.
    tasks: Tasks,
}

/// Removes a request's pending entry however the request ends (also when its future is dropped).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.id);
    }
}

/// Longest background probe interval of a down peer.
const PROBE_MAX: Duration = Duration::from_secs(1);

/// Handle on the transport (cheap to clone).
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

/// This process's scheduling lag after a keepalive timer fired `late_ms` late, from the previous
/// value: a decaying maximum, so one late timer counts for a few rounds, not for good.
fn decayed_lag(before_ms: u64, late_ms: u64) -> u64 {
    late_ms.max(before_ms - before_ms / 4)
}

/// How long a link check waits for its ping: 8 round trips, and at least 4× this process's
/// scheduling lag (a saturated process answers late but is not gone), within
/// [`link_check`, the handshake timeout].
fn link_check_wait(rtt: Option<Duration>, lag_ms: u64, link_check: Duration, handshake: Duration) -> Duration {
    let lag = Duration::from_millis(lag_ms) * 4;
    rtt.map(|r| r * 8).unwrap_or_default().max(lag).clamp(link_check, handshake.max(link_check))
}

fn short(key: &IdentityPublicKey) -> String {
    key.to_hex()[..16].to_string()
}

use crate::sync::lock;

impl Network {
    /// A transport for `identity`. Its tasks run in `tasks`; it stops when they are cancelled.
    pub fn new(
        identity: IdentityKeyPair,
        settings: NetSettings,
        overrides: AddressOverrides,
        tasks: Tasks,
    ) -> Result<Self, NetError> {
        let tls = tls::TlsIdentity::new(&identity).map_err(NetError::Setup)?;
        let acceptor = TlsAcceptor::from(tls.server_config().map_err(NetError::Setup)?);
        let admission = admission::Admission::new(identity.public(), &settings);
        let net = Self {
            inner: Arc::new(Inner {
                identity,
                tls,
                acceptor,
                settings,
                links: Mutex::new(HashMap::new()),
                dialing: Mutex::new(HashMap::new()),
                backoff: Mutex::new(HashMap::new()),
                handlers: RwLock::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                overrides: RwLock::new(overrides),
                next_id: AtomicU64::new(1),
                tx_bytes: AtomicU64::new(0),
                rx_bytes: AtomicU64::new(0),
                refused_requests: AtomicU64::new(0),
                in_flight: Default::default(),
                lag_ms: AtomicU64::new(0),
                health: health::PeerHealth::default(),
                epoch: Instant::now(),
                admission,
                tasks,
            }),
        };
        net.register(NET_SERVICE, Arc::new(|msg: PeerMessage| Box::pin(async move { Ok(msg.payload) })));
        Ok(net)
    }

    pub fn public_key(&self) -> IdentityPublicKey {
        self.inner.identity.public()
    }

    pub fn settings(&self) -> &NetSettings {
        &self.inner.settings
    }

    /// Reports peers going down and coming back up as node events on `bus` (the node sets it
    /// once, when it starts).
    pub fn set_events(&self, bus: crate::events::EventBus) {
        self.inner.health.set_events(bus);
    }

    /// What this node knows about its peers (down, round-trip times).
    pub fn health(&self) -> &health::PeerHealth {
        &self.inner.health
    }

    /// Serves `keys` in full from now on (members of a roster this node works with).
    pub fn admit(&self, keys: impl IntoIterator<Item = IdentityPublicKey>) {
        let new = self.inner.admission.admit(keys);
        if new > 0 {
            debug!(new, total = self.inner.admission.len(), "peers admitted");
        }
    }

    /// Whether `key` is served in full.
    pub fn is_admitted(&self, key: &IdentityPublicKey) -> bool {
        self.inner.admission.is_admitted(key)
    }

    /// The admitted set and the strangers' budget.
    pub fn admission(&self) -> &admission::Admission {
        &self.inner.admission
    }

    /// Registers the handler of peer requests for `service`.
    pub fn register(&self, service: &str, handler: PeerHandler) {
        self.inner.handlers.write().unwrap_or_else(|p| p.into_inner()).insert(service.to_string(), handler);
    }

    /// Forgets the handler of `service` (when it stops, so its state can be dropped).
    pub fn unregister(&self, service: &str) {
        self.inner.handlers.write().unwrap_or_else(|p| p.into_inner()).remove(service);
    }

    /// Forgets every service handler (on stop, so the services' state can be dropped).
    pub fn clear_handlers(&self) {
        self.inner.handlers.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn set_overrides(&self, overrides: AddressOverrides) {
        *self.inner.overrides.write().unwrap_or_else(|p| p.into_inner()) = overrides;
    }

    pub fn tx_bytes(&self) -> u64 {
        self.inner.tx_bytes.load(Ordering::Relaxed)
    }

    /// Requests answered with an error because their peer had too many (or too large ones) in
    /// flight on its connection (`NetSettings::peer_requests_in_flight`, `peer_request_memory`).
    pub fn refused_requests(&self) -> u64 {
        self.inner.refused_requests.load(Ordering::Relaxed)
    }

    pub fn rx_bytes(&self) -> u64 {
        self.inner.rx_bytes.load(Ordering::Relaxed)
    }

    /// Closes the connection requests to `peer` use (the next request redials, e.g. after its
    /// address override changed). Requests waiting on it fail at once.
    pub fn disconnect(&self, peer: &IdentityPublicKey) {
        let link = lock(&self.inner.links).get(peer).map(|l| (l.conn_id, l.ctl.clone()));
        if let Some((conn_id, ctl)) = link {
            ctl.close.cancel();
            self.drop_link(*peer, conn_id);
        }
    }

    /// Number of live peer connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.inner.links).len()
    }

    /// The peers with a live connection.
    pub fn connected_peers(&self) -> Vec<IdentityPublicKey> {
        lock(&self.inner.links).keys().copied().collect()
    }

    /// Accepts connections on `listener` until `accepting` (or the whole network) is cancelled.
    pub fn serve(&self, listener: TcpListener, accepting: &Tasks) {
        let net = self.clone();
        accepting.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, addr)) => {
                        let n = net.clone();
                        net.inner.tasks.spawn(async move { n.accept_one(tcp, addr).await });
                    }
                    Err(e) => {
                        warn!(error = %e, "node port: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }

    async fn accept_one(&self, tcp: TcpStream, addr: std::net::SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let timeout = self.inner.settings.handshake_timeout;
        let stream = match tokio::time::timeout(timeout, self.inner.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(remote = %addr, error = %e, "node port: TLS handshake failed");
                return;
            }
            Err(_) => {
                warn!(remote = %addr, ?timeout, "node port: no TLS handshake in time, closing");
                return;
            }
        };
        let key = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(tls::ed25519_key_of);
        let key = match key {
            Some(Ok(k)) => k,
            other => {
                warn!(remote = %addr, ?other, "node port: peer certificate without usable key");
                return;
            }
        };
        let stranger = if self.is_admitted(&key) {
            None
        } else {
            match self.inner.admission.stranger_slot(Some(addr.ip())) {
                Some(slot) => Some(slot),
                None => {
                    debug!(remote = %addr, peer = %short(&key), "node port: too many unknown peers, closing");
                    return;
                }
            }
        };
        debug!(remote = %addr, peer = %short(&key), known = stranger.is_none(), "node port: accepted");
        self.start_link(key, tokio_rustls::TlsStream::Server(stream), stranger);
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Starts reader, writer and keepalive tasks for an established connection and registers it
    /// as the link requests to the peer use. The newest connection wins: after a partition the
    /// peer's fresh dial replaces a link that may be dead; an older connection still serves what
    /// arrives on it (both sides may dial at once) until it closes or fails its idle ping.
    /// A stranger's connection (`stranger` holds its slot) is not used for requests.
    fn start_link(
        &self,
        peer: IdentityPublicKey,
        stream: tokio_rustls::TlsStream<TcpStream>,
        mut stranger: Option<admission::StrangerSlot>,
    ) {
        health::tune_socket(stream.get_ref().0);
        let remote = stream.get_ref().0.peer_addr().ok().map(|a| a.ip());
        let conn_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        let ctl = Arc::new(LinkCtl {
            close: self.inner.tasks.token().child_token(),
            last_rx: AtomicU64::new(self.now_ms()),
            last_reply_rx: AtomicU64::new(0),
            checking: AtomicBool::new(false),
        });
        if stranger.is_none() {
            lock(&self.inner.links).insert(peer, Link { conn_id, tx: tx.clone(), ctl: ctl.clone() });
        }
        lock(&self.inner.backoff).remove(&peer);
        if self.inner.health.record_ok(&peer) {
            info!(peer = %short(&peer), "peer is back (connected)");
        }
        let (mut reader, mut writer) = tokio::io::split(stream);
        let net = self.clone();
        let close = ctl.close.clone();
        self.inner.tasks.spawn(async move {
            // One registration with the token for the connection's life, not one per frame.
            let closed = close.cancelled();
            tokio::pin!(closed);
            loop {
                let frame = tokio::select! {
                    _ = &mut closed => break,
                    f = rx.recv() => match f { Some(f) => f, None => break },
                };
                // Counted before the write: the reply may be read before this task runs again.
                net.inner.tx_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
                if let Err(e) = frame::write_frame(&mut writer, &frame).await {
                    debug!(peer = %short(&peer), error = %e, "write failed");
                    break;
                }
            }
            close.cancel();
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
        });
        if !self.inner.settings.idle_ping.is_zero() {
            let net = self.clone();
            let (ctl, tx) = (ctl.clone(), tx.clone());
            self.inner.tasks.spawn(async move { net.keepalive(peer, conn_id, tx, ctl).await });
        }
        let net = self.clone();
        self.inner.tasks.spawn(async move {
            // The writer lives as long as this reader holds a sender.
            let reply_tx = tx;
            let busy = net.in_flight_of(peer);
            let closed = ctl.close.cancelled();
            tokio::pin!(closed);
            loop {
                let admitted = net.is_admitted(&peer);
                if admitted {
                    // Admitted meanwhile (an introduction named it): no longer a stranger.
                    stranger.take();
                }
                let s = &net.inner.settings;
                let read = tokio::select! {
                    _ = &mut closed => {
                        debug!(peer = %short(&peer), conn_id, "link closed locally");
                        break;
                    }
                    r = admission::read_peer_frame(&mut reader, s, &net.inner.admission, admitted) => r,
                };
                match read {
                    Ok((env, n, held)) => {
                        net.inner.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        let now = net.now_ms();
                        ctl.last_rx.store(now, Ordering::Relaxed);
                        if matches!(env.kind(), Some(Kind::Response | Kind::Error)) {
                            ctl.last_reply_rx.store(now, Ordering::Relaxed);
                        }
                        if admitted {
                            net.dispatch(peer, remote, &reply_tx, env, n, &busy);
                        } else {
                            // One introduction at a time, its memory held until it is answered.
                            let reply = net.answer(peer, remote, env).await;
                            drop(held);
                            if reply_tx.send(reply).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(FrameError::Idle(after)) if admitted && net.link_busy(conn_id, &busy) => {
                        debug!(peer = %short(&peer), ?after, "idle link kept: requests in flight");
                    }
                    Err(FrameError::Idle(after)) => {
                        debug!(peer = %short(&peer), ?after, known = admitted, "closing idle connection");
                        break;
                    }
                    Err(e @ FrameError::NotServed { .. }) => {
                        debug!(peer = %short(&peer), error = %e, "unknown peer refused");
                        break;
                    }
                    Err(FrameError::Closed) => {
                        debug!(peer = %short(&peer), "connection closed by peer");
                        break;
                    }
                    Err(e) => {
                        warn!(peer = %short(&peer), error = %e, "dropping connection");
                        break;
                    }
                }
            }
            ctl.close.cancel();
            net.drop_link(peer, conn_id);
        });
    }

    /// Pings the link whenever nothing arrived on it for `idle_ping`; closes it when the ping
    /// gets no answer.
    async fn keepalive(&self, peer: IdentityPublicKey, conn_id: u64, tx: mpsc::Sender<Vec<u8>>, ctl: Arc<LinkCtl>) {
        let idle = self.inner.settings.idle_ping;
        loop {
            let slept = Instant::now();
            tokio::select! {
                _ = ctl.close.cancelled() => return,
                _ = tokio::time::sleep(idle) => {}
            }
            // A decaying maximum: one late timer counts for a few rounds, not for good.
            let late = slept.elapsed().saturating_sub(idle).as_millis() as u64;
            let before = self.inner.lag_ms.load(Ordering::Relaxed);
            self.inner.lag_ms.store(decayed_lag(before, late), Ordering::Relaxed);
            let quiet = self.now_ms().saturating_sub(ctl.last_rx.load(Ordering::Relaxed));
            if quiet < idle.as_millis() as u64 {
                continue;
            }
            if !self.check_link(peer, conn_id, &tx, &ctl, "idle").await {
                return;
            }
        }
    }

    /// Pings `peer` over this very connection; closes the connection (its pending requests fail
    /// at once, the next request redials) when no answer comes in time. Returns whether it lives.
    async fn check_link(
        &self,
        peer: IdentityPublicKey,
        conn_id: u64,
        tx: &mpsc::Sender<Vec<u8>>,
        ctl: &LinkCtl,
        why: &str,
    ) -> bool {
        if ctl.checking.swap(true, Ordering::AcqRel) {
            return !ctl.close.is_cancelled();
        }
        let wait = link_check_wait(
            self.inner.health.rtt(&peer),
            self.inner.lag_ms.load(Ordering::Relaxed),
            self.inner.settings.link_check,
            self.inner.settings.handshake_timeout,
        );
        let nonce: [u8; 16] = rand::random();
        let start = Instant::now();
        let sent_ms = self.now_ms();
        let r = self.request_on(&peer, conn_id, tx, NET_SERVICE, "Ping", &[], nonce.to_vec(), wait).await;
        ctl.checking.store(false, Ordering::Release);
        match r {
            Ok(reply) if reply == nonce => {
                self.inner.health.record_rtt(&peer, start.elapsed());
                true
            }
            Ok(_) | Err(NetError::Remote { .. } | NetError::Busy { .. }) => true,
            // Replies to our requests arrived after the ping went out: both directions work and
            // the peer is slow to answer, not gone.
            Err(NetError::Timeout { .. }) if ctl.last_reply_rx.load(Ordering::Relaxed) > sent_ms => {
                debug!(peer = %short(&peer), conn_id, why, "link check unanswered but the link delivers; kept");
                true
            }
            Err(e) => {
                if !ctl.close.is_cancelled() {
                    warn!(peer = %short(&peer), conn_id, why, error = %e, "link check failed, closing the link");
                    ctl.close.cancel();
                    self.drop_link(peer, conn_id);
                }
                false
            }
        }
    }

    fn drop_link(&self, peer: IdentityPublicKey, conn_id: u64) {
        {
            let mut links = lock(&self.inner.links);
            if links.get(&peer).map(|l| l.conn_id) == Some(conn_id) {
                links.remove(&peer);
            }
        }
        let failed: Vec<Pending> = {
            let mut pending = lock(&self.inner.pending);
            let ids: Vec<u64> = pending.iter().filter(|(_, p)| p.conn_id == conn_id).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in failed {
            let _ = p.reply.send(Err(NetError::Closed { peer: short(&peer) }));
        }
    }

    /// The running handlers of `peer`, one count for all its connections (so a peer cannot get
    /// more by opening more). Entries of peers without a connection are dropped as the map grows.
    fn in_flight_of(&self, peer: IdentityPublicKey) -> Arc<InFlight> {
        let mut all = lock(&self.inner.in_flight);
        if let Some(live) = all.get(&peer).and_then(std::sync::Weak::upgrade) {
            return live;
        }
        let fresh = Arc::new(InFlight::default());
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|_, w| w.strong_count() > 0);
        }
        all.insert(peer, Arc::downgrade(&fresh));
        fresh
    }

    /// Whether a connection has handlers running or requests awaiting replies.
    fn link_busy(&self, conn_id: u64, handlers: &InFlight) -> bool {
        handlers.count.load(Ordering::Relaxed) > 0 || lock(&self.inner.pending).values().any(|p| p.conn_id == conn_id)
    }

    /// Runs the handler of a request and returns the encoded reply frame. When the service accepted
    /// an introduction, the roster it names (with the sender and this node in it) is admitted.
    async fn answer(&self, peer: IdentityPublicKey, remote: Option<std::net::IpAddr>, env: Envelope) -> Vec<u8> {
        let named = admission::introduced_keys(&env.service, &env.protocol, &env.payload);
        let handler = self.inner.handlers.read().unwrap_or_else(|p| p.into_inner()).get(&env.service).cloned();
        let result = match handler {
            Some(h) => {
                h(PeerMessage {
                    from: peer,
                    remote,
                    protocol: env.protocol.clone(),
                    round_id: env.round_id.clone(),
                    payload: env.payload,
                })
                .await
            }
            None => Err(format!("no service `{}` on this node", env.service)),
        };
        if result.is_ok() && named.contains(peer.as_bytes()) && named.contains(self.public_key().as_bytes()) {
            let new = self.inner.admission.admit_raw(named);
            if new > 0 {
                debug!(new, total = self.inner.admission.len(), "peers admitted");
            }
        }
        let (kind, payload) = match result {
            Ok(p) => (Kind::Response, p),
            Err(e) => (Kind::Error, e.into_bytes()),
        };
        frame::encode(&Envelope {
            version: WIRE_VERSION,
            kind: kind as u32,
            id: env.id,
            service: env.service,
            protocol: env.protocol,
            round_id: env.round_id,
            payload,
        })
    }

    fn dispatch(
        &self,
        peer: IdentityPublicKey,
        remote: Option<std::net::IpAddr>,
        reply_tx: &mpsc::Sender<Vec<u8>>,
        env: Envelope,
        size: usize,
        busy: &Arc<InFlight>,
    ) {
        match env.kind() {
            Some(Kind::Request) => {
                // Only this connection's reader adds to `busy`, so the check and the add agree.
                let s = &self.inner.settings;
                let (count, bytes) = (busy.count.load(Ordering::Relaxed), busy.bytes.load(Ordering::Relaxed));
                let over_memory = count > 0 && bytes.saturating_add(size as u64) > s.peer_request_memory as u64;
                let capped = env.service != NET_SERVICE;
                if capped && (count >= s.peer_requests_in_flight as u64 || over_memory) {
                    let refused = self.inner.refused_requests.fetch_add(1, Ordering::Relaxed);
                    if refused.is_power_of_two() {
                        warn!(peer = %short(&peer), in_flight = count, bytes, refused = refused + 1,
                            "peer has too many requests in flight; refusing more");
                    }
                    let reply = frame::encode(&Envelope {
                        version: WIRE_VERSION,
                        kind: Kind::Error as u32,
                        id: env.id,
                        service: env.service,
                        protocol: env.protocol,
                        round_id: env.round_id,
                        payload: format!(
                            "{BUSY_PREFIX}{count} requests ({bytes} bytes) of yours in flight here, at most {} ({} bytes)",
                            s.peer_requests_in_flight, s.peer_request_memory
                        )
                        .into_bytes(),
                    });
                    // A full writer queue drops the refusal: the requester times out instead.
                    let _ = reply_tx.try_send(reply);
                    return;
                }
                let reply_tx = reply_tx.clone();
                let net = self.clone();
                let held = capped.then(|| InFlightGuard::hold(busy, size as u64));
                self.inner.tasks.spawn(async move {
                    let reply = net.answer(peer, remote, env).await;
                    // The reply goes back on the connection the request came in on. The slot is
                    // held until it is queued: a peer that stops reading cannot pile up replies.
                    let _ = reply_tx.send(reply).await;
                    drop(held);
                });
            }
            Some(kind @ (Kind::Response | Kind::Error)) => {
                let pending = lock(&self.inner.pending).remove(&env.id);
                match pending {
                    Some(p) => {
                        let r = if kind == Kind::Response {
                            Ok(env.payload)
                        } else {
                            let message = String::from_utf8_lossy(&env.payload).into_owned();
                            match message.strip_prefix(BUSY_PREFIX) {
                                Some(m) => Err(NetError::Busy { peer: short(&peer), message: m.to_string() }),
                                None => Err(NetError::Remote { peer: short(&peer), message }),
                            }
                        };
                        let _ = p.reply.send(r);
                    }
                    None => debug!(peer = %short(&peer), id = env.id, "reply to unknown request"),
                }
            }
            None => warn!(peer = %short(&peer), kind = env.kind, "frame of unknown kind ignored"),
        }
    }

    /// The live link to `peer`, dialing it if needed (with backoff after failures, as `dialing`
    /// says).
    async fn link(&self, peer: &ServerIdentity, deadline: Instant, dialing: Dialing) -> Result<LinkRef, NetError> {
        let key = peer.public;
        if let Some(l) = self.live_link(&key) {
            return Ok(l);
        }
        let asked = Instant::now();
        let mut dial_now = dialing == Dialing::Now;
        if dialing == Dialing::FailFast && self.inner.health.down(&key).is_some() {
            let b = lock(&self.inner.backoff);
            if let Some(b) = b.get(&key).filter(|b| b.next_try > Instant::now()) {
                return Err(b.last_error.clone());
            }
        }
        let dial_lock = lock(&self.inner.dialing).entry(key).or_default().clone();
        loop {
            // Another caller may be dialing: wait for it only until our own deadline. Nobody
            // holds the lock while backing off, so a caller told to dial now (`request_redial_now`)
            // does not wait out another's backoff.
            let dialing_here = match tokio::time::timeout_at(deadline.into(), dial_lock.lock()).await {
                Ok(guard) => guard,
                Err(_) => {
                    let last_error = lock(&self.inner.backoff).get(&key).map(|b| b.last_error.clone());
                    return Err(last_error.unwrap_or_else(|| NetError::Timeout {
                        peer: short(&key),
                        what: "a connection".into(),
                        after: deadline.saturating_duration_since(Instant::now()),
                    }));
                }
            };
            if self.inner.tasks.is_cancelled() {
                return Err(NetError::Shutdown);
            }
            if let Some(l) = self.live_link(&key) {
                return Ok(l);
            }
            let waiting = lock(&self.inner.backoff).get(&key).map(|b| (b.next_try, b.failed_at, b.last_error.clone()));
            match waiting {
                // Another caller's dial failed while this one waited for the lock: that is the
                // fresh answer this request asked for.
                Some((_, failed_at, last_error)) if dial_now && failed_at >= asked => return Err(last_error),
                // Backing off past the caller's deadline: report why the last dial failed.
                Some((t, _, last_error)) if !dial_now && t > deadline => return Err(last_error),
                Some((t, _, _)) if !dial_now && t > Instant::now() => {
                    drop(dialing_here);
                    tokio::time::sleep_until(t.into()).await;
                    continue;
                }
                _ => {}
            }
            // The dial is bounded by the caller's deadline too (a peer that accepts and then says
            // nothing would otherwise hold the caller for the whole handshake timeout).
            let dialed = match tokio::time::timeout_at(deadline.into(), self.dial(peer)).await {
                Ok(r) => r,
                Err(_) => {
                    let address = peer.address.to_string();
                    let reason = "no connection before the request's deadline".to_string();
                    Err((NetError::Dial { peer: short(&key), address, reason }, false))
                }
            };
            dial_now = false;
            match dialed {
                Ok(()) => continue,
                Err((e, refused)) => {
                    {
                        let s = &self.inner.settings;
                        let mut backoff = lock(&self.inner.backoff);
                        let now = Instant::now();
                        let b = backoff.entry(key).or_insert(Backoff {
                            next_try: now,
                            delay: s.backoff_min / 2,
                            last_error: e.clone(),
                            failed_at: now,
                        });
                        b.delay = (b.delay * 2).clamp(s.backoff_min, s.backoff_max);
                        b.next_try = now + b.delay;
                        b.last_error = e.clone();
                        b.failed_at = now;
                    }
                    // Every failed dial counts once, and marks the peer down: rounds starting
                    // meanwhile skip it, whether or not a retry gets through (an answer marks it
                    // up again). Errors returned from the backoff above are not new failures.
                    if self.inner.health.record_failure(&key, false, e.to_string()) {
                        self.start_probe(peer.clone());
                    }
                    // Refused is a clear answer (nothing listens): no retry within this request.
                    if refused || Instant::now() >= deadline {
                        return Err(e);
                    }
                    debug!(error = %e, "dial failed, will retry");
                }
            }
        }
    }

    fn live_link(&self, key: &IdentityPublicKey) -> Option<LinkRef> {
        let links = lock(&self.inner.links);
        let l = links.get(key)?;
        (!l.tx.is_closed() && !l.ctl.close.is_cancelled()).then(|| (l.conn_id, l.tx.clone(), l.ctl.clone()))
    }

    /// One dial attempt: resolve (DNS at every dial), TCP connect, TLS with the pinned key.
    /// On failure, also whether every address refused the connection.
    async fn dial(&self, peer: &ServerIdentity) -> Result<(), (NetError, bool)> {
        let mut refused = false;
        self.dial_once(peer, &mut refused).await.map_err(|e| (e, refused))
    }

    async fn dial_once(&self, peer: &ServerIdentity, refused: &mut bool) -> Result<(), NetError> {
        let (address, route) = {
            let o = self.inner.overrides.read().unwrap_or_else(|p| p.into_inner());
            (o.resolve(&peer.public, &peer.address).clone(), o.route(&peer.public))
        };
        let err = |reason: String| NetError::Dial { peer: short(&peer.public), address: address.to_string(), reason };
        let s = &self.inner.settings;
        let mut last = err("no address to dial".into());
        let mut all_refused = false;
        match route {
            // Anonymous without a way to reach this member: never dial it directly.
            Err(reason) => last = err(reason),
            Ok(crate::config::Route::Socks5(proxy)) => {
                let via = format!("via SOCKS5 {proxy}");
                match tokio::time::timeout(s.dial_timeout, socks::connect(&proxy, &address.host, address.port)).await {
                    Ok(Ok(tcp)) => match self.tls_link(peer, tcp, &via).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = err(e),
                    },
                    Ok(Err(e)) => last = err(e),
                    Err(_) => last = err(format!("{via}: connect timed out")),
                }
            }
            Ok(crate::config::Route::Direct) => {
                let addrs: Vec<_> = tokio::time::timeout(s.dial_timeout, tokio::net::lookup_host(address.host_port()))
                    .await
                    .map_err(|_| err("DNS lookup timed out".into()))?
                    .map_err(|e| err(format!("DNS lookup: {e}")))?
                    .collect();
                all_refused = !addrs.is_empty();
                for sa in addrs {
                    let tcp = match tokio::time::timeout(s.dial_timeout, TcpStream::connect(sa)).await {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            all_refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                            last = err(format!("{sa}: {e}"));
                            continue;
                        }
                        Err(_) => {
                            all_refused = false;
                            last = err(format!("{sa}: connect timed out"));
                            continue;
                        }
                    };
                    match self.tls_link(peer, tcp, &sa.to_string()).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = err(e),
                    }
                    all_refused = false;
                }
            }
        }
        *refused = all_refused;
        if self.inner.health.down(&peer.public).is_some() {
            debug!(error = %last, "dial failed (peer known down)");
        } else {
            warn!(error = %last, "dial failed");
        }
        Err(last)
    }

    /// TLS with the pinned key over a connected stream, then the link; `via` names the route in
    /// errors and logs.
    async fn tls_link(&self, peer: &ServerIdentity, tcp: TcpStream, via: &str) -> Result<(), String> {
        let s = &self.inner.settings;
        let _ = tcp.set_nodelay(true);
        let cfg = self.inner.tls.client_config(peer.public).map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("conode").map_err(|e| e.to_string())?;
        // A dial's handshake is bounded like its connect: a peer that accepts and then goes
        // silent must not hold up recovery for the (longer) accept-side handshake timeout.
        let handshake = s.handshake_timeout.min(s.dial_timeout.max(Duration::from_millis(500)));
        match tokio::time::timeout(handshake, TlsConnector::from(cfg).connect(name, tcp)).await {
            Ok(Ok(stream)) => {
                info!(peer = %short(&peer.public), %via, "connected");
                self.start_link(peer.public, tokio_rustls::TlsStream::Client(stream), None);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("{via}: TLS: {e}")),
            Err(_) => Err(format!("{via}: TLS handshake timed out")),
        }
    }

    /// Sends a request to `peer`'s `service` and waits for its reply. What happens is recorded in
    /// the peer's health: a refused or unreachable peer is down at once; a peer that does not
    /// answer in time on a live link is down (hung) and the link is checked with a ping and closed
    /// when that fails too, so the next request redials instead of waiting for TCP.
    pub async fn request(
        &self,
        peer: &ServerIdentity,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        self.request_inner(peer, service, protocol, round_id, payload, timeout, Dialing::AfterBackoff).await
    }

    /// [`Self::request`] for rounds that must not wait on a dead peer: when `peer` is known to be
    /// down and its dial backoff runs, fail at once with the last dial error.
    pub async fn request_fail_fast(
        &self,
        peer: &ServerIdentity,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        self.request_inner(peer, service, protocol, round_id, payload, timeout, Dialing::FailFast).await
    }

    /// [`Self::request`] that dials a peer known to be down once right away, instead of waiting
    /// for its dial backoff or its probe: for the last chance of a round that cannot go on
    /// without it (a member that just restarted is back at once; a stopped one refuses at once).
    pub async fn request_redial_now(
        &self,
        peer: &ServerIdentity,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        self.request_inner(peer, service, protocol, round_id, payload, timeout, Dialing::Now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn request_inner(
        &self,
        peer: &ServerIdentity,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
        dialing: Dialing,
    ) -> Result<Vec<u8>, NetError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let key = peer.public;
        if !self.is_admitted(&key) {
            // A peer this node talks to is one it serves (in the bounded part: an announcement
            // may name the children to ask, and they may be made up).
            self.inner.admission.admit_raw([*key.as_bytes()]);
        }
        // A failed dial is recorded where it happens (`link`), once.
        let (conn_id, tx, ctl) = self.link(peer, deadline, dialing).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let r = self.request_on(&key, conn_id, &tx, service, protocol, round_id, payload, left).await;
        match &r {
            Ok(_) | Err(NetError::Remote { .. } | NetError::Busy { .. }) => {
                if self.inner.health.record_ok(&key) {
                    info!(peer = %short(&key), "peer is back");
                }
            }
            Err(NetError::Timeout { .. }) => {
                if self.inner.health.record_failure(
                    &key,
                    true,
                    format!("no answer to {service}/{protocol} in {timeout:?}"),
                ) {
                    self.start_probe(peer.clone());
                }
                let net = self.clone();
                self.inner
                    .tasks
                    .spawn(async move { net.check_link(key, conn_id, &tx, &ctl, "request timed out").await });
            }
            Err(_) => {}
        }
        r.map_err(|e| match e {
            NetError::Timeout { peer, what, .. } => NetError::Timeout { peer, what, after: timeout },
            e => e,
        })
    }

    /// One request over the connection `conn_id`.
    #[allow(clippy::too_many_arguments)]
    async fn request_on(
        &self,
        peer: &IdentityPublicKey,
        conn_id: u64,
        tx: &mpsc::Sender<Vec<u8>>,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, Pending { conn_id, reply: reply_tx });
        let _pending = PendingGuard { inner: &self.inner, id };
        let env = Envelope {
            version: WIRE_VERSION,
            kind: Kind::Request as u32,
            id,
            service: service.to_string(),
            protocol: protocol.to_string(),
            round_id: round_id.to_vec(),
            payload,
        };
        let sent = tokio::time::timeout(timeout, tx.send(frame::encode(&env))).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(NetError::Closed { peer: short(peer) }),
            Err(_) => {
                return Err(NetError::Timeout {
                    peer: short(peer),
                    what: format!("{service}/{protocol}"),
                    after: timeout,
                })
            }
        }
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NetError::Closed { peer: short(peer) }),
            Err(_) => {
                Err(NetError::Timeout { peer: short(peer), what: format!("{service}/{protocol}"), after: timeout })
            }
        }
    }

    /// Another member reported `peer` silent: check it ourselves with a ping (in the background);
    /// only our own failure to reach it marks it down, so a lying member cannot get others skipped.
    pub fn suspect(&self, peer: &ServerIdentity) {
        if self.inner.health.down(&peer.public).is_some() {
            return;
        }
        let (net, peer) = (self.clone(), peer.clone());
        self.inner.tasks.spawn(async move {
            let timeout = net.inner.settings.link_check;
            if let Err(e) = net.ping(&peer, timeout).await {
                debug!(peer = %short(&peer.public), error = %e, "suspected peer did not answer");
            }
        });
    }

    /// Pings a down peer in the background (through the node's tasks) until it answers again and
    /// any hold-down after hanging has passed; then rounds include it again.
    fn start_probe(&self, peer: ServerIdentity) {
        let net = self.clone();
        self.inner.tasks.spawn(async move {
            let key = peer.public;
            let mut wait = net.inner.settings.probe_interval;
            let give_up = Instant::now() + net.inner.settings.probe_give_up;
            loop {
                let hold = net.inner.health.hold_left(&key);
                tokio::time::sleep(wait.max(hold)).await;
                if net.inner.health.down(&key).is_none() && net.inner.health.probe_finished(&key) {
                    return;
                }
                if Instant::now() >= give_up && !net.inner.admission.is_kept(&key) {
                    // Down for long and in no roster of this node's own: maybe a made-up member.
                    net.inner.health.forget(&key);
                    lock(&net.inner.backoff).remove(&key);
                    lock(&net.inner.dialing).remove(&key);
                    debug!(peer = %short(&key), "down peer outside this node's rosters no longer probed");
                    return;
                }
                let timeout = net.inner.settings.link_check.max(net.inner.settings.dial_timeout);
                match net.ping(&peer, timeout).await {
                    Ok(rtt) => debug!(peer = %short(&key), ?rtt, "probe answered"),
                    Err(e) => debug!(peer = %short(&key), error = %e, "probe failed"),
                }
                if net.inner.health.down(&key).is_none() && net.inner.health.probe_finished(&key) {
                    return;
                }
                wait = (wait * 3 / 2).min(PROBE_MAX);
            }
        });
    }

    /// Round-trip check of `peer` over pinned TLS; returns the latency.
    pub async fn ping(&self, peer: &ServerIdentity, timeout: Duration) -> Result<Duration, NetError> {
        let start = Instant::now();
        let nonce: [u8; 16] = rand::random();
        let reply = self.request(peer, NET_SERVICE, "Ping", &[], nonce.to_vec(), timeout).await?;
        if reply != nonce {
            return Err(NetError::Remote {
                peer: short(&peer.public),
                message: "ping answered with wrong payload".into(),
            });
        }
        let rtt = start.elapsed();
        self.inner.health.record_rtt(&peer.public, rtt);
        Ok(rtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_timer_lengthens_link_checks_for_a_few_rounds() {
        let (check, handshake) = (Duration::from_millis(500), Duration::from_secs(10));
        // Quiet process: the minimum, or 8 round trips when those are longer.
        assert_eq!(link_check_wait(None, 0, check, handshake), check);
        assert_eq!(link_check_wait(Some(Duration::from_millis(200)), 0, check, handshake), Duration::from_millis(1600));
        // A timer that fired 700 ms late: checks wait 4× that, never beyond the handshake timeout.
        let lag = decayed_lag(0, 700);
        assert_eq!(link_check_wait(None, lag, check, handshake), Duration::from_millis(2800));
        assert_eq!(link_check_wait(None, 5_000, check, handshake), handshake);
        // On time again: the lag decays by a quarter per round, and a new spike wins at once.
        let mut lag = 800;
        let mut seen = vec![];
        for _ in 0..4 {
            lag = decayed_lag(lag, 0);
            seen.push(lag);
        }
        assert_eq!(seen, vec![600, 450, 338, 254]);
        assert_eq!(decayed_lag(lag, 900), 900);
        let mut lag = 1_000;
        for _ in 0..40 {
            lag = decayed_lag(lag, 0);
        }
        assert!(lag < 10, "the lag is forgotten: {lag}");
    }
}
