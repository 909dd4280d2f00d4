//! The node-to-node port: pinned mutual TLS, length-prefixed envelopes, one reused connection per
//! peer (dialed on demand, or accepted from the peer), reconnect with backoff, DNS resolution at
//! every dial, address overrides, and request/response on top for services.

pub mod admission;
pub mod frame;
pub mod tls;

use crate::config::{AddressOverrides, NodeAddress, ServerIdentity};
use crate::crypto::{IdentityKeyPair, IdentityPublicKey};
use crate::services::Tasks;
use frame::{Envelope, FrameError, Kind, WIRE_VERSION};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info, warn};

/// Built-in service answering reachability checks.
pub const NET_SERVICE: &str = "Net";

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
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            max_frame: frame::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(60),
            max_strangers: 16,
            stranger_memory: 16 << 20,
            stranger_timeout: Duration::from_secs(10),
        }
    }
}

/// A message delivered to a service handler.
pub struct PeerMessage {
    pub from: IdentityPublicKey,
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
}

struct Pending {
    conn_id: u64,
    reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
}

struct Backoff {
    next_try: Instant,
    delay: Duration,
    last_error: NetError,
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
    /// Peers served in full; everyone else gets the strangers' budget.
    admission: admission::Admission,
    /// Connection tasks; cancelled when the node stops.
    tasks: Tasks,
}

/// Handle on the transport (cheap to clone).
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
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

    pub fn rx_bytes(&self) -> u64 {
        self.inner.rx_bytes.load(Ordering::Relaxed)
    }

    /// Number of live peer connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.inner.links).len()
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
            match self.inner.admission.stranger_slot() {
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

    /// Starts reader and writer tasks for an established connection and registers it, unless a
    /// live link to the peer exists already (both sides dialed at once): then this connection
    /// still serves what arrives on it, and requests go over the registered one.
    /// A stranger's connection (`stranger` holds its slot) is not used for requests.
    fn start_link(
        &self,
        peer: IdentityPublicKey,
        stream: tokio_rustls::TlsStream<TcpStream>,
        mut stranger: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let conn_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        if stranger.is_none() {
            let mut links = lock(&self.inner.links);
            let live = links.get(&peer).is_some_and(|l| !l.tx.is_closed());
            if !live {
                links.insert(peer, Link { conn_id, tx: tx.clone() });
            }
        }
        lock(&self.inner.backoff).remove(&peer);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let net = self.clone();
        self.inner.tasks.spawn(async move {
            while let Some(frame) = rx.recv().await {
                let n = frame.len() as u64;
                if let Err(e) = frame::write_frame(&mut writer, &frame).await {
                    debug!(peer = %short(&peer), error = %e, "write failed");
                    break;
                }
                net.inner.tx_bytes.fetch_add(n, Ordering::Relaxed);
            }
            use tokio::io::AsyncWriteExt;
            let _ = writer.shutdown().await;
        });
        let net = self.clone();
        self.inner.tasks.spawn(async move {
            // The writer lives as long as this reader holds a sender.
            let reply_tx = tx;
            let busy = Arc::new(AtomicU64::new(0));
            loop {
                let admitted = net.is_admitted(&peer);
                if admitted {
                    // Admitted meanwhile (an introduction named it): no longer a stranger.
                    stranger.take();
                }
                let s = &net.inner.settings;
                match admission::read_peer_frame(&mut reader, s, &net.inner.admission, admitted).await {
                    Ok((env, n, held)) => {
                        net.inner.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if admitted {
                            net.dispatch(peer, &reply_tx, env, &busy);
                        } else {
                            // One introduction at a time, its memory held until it is answered.
                            let reply = net.answer(peer, env).await;
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
            net.drop_link(peer, conn_id);
        });
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

    /// Whether a connection has handlers running or requests awaiting replies.
    fn link_busy(&self, conn_id: u64, handlers: &AtomicU64) -> bool {
        handlers.load(Ordering::Relaxed) > 0 || lock(&self.inner.pending).values().any(|p| p.conn_id == conn_id)
    }

    /// Runs the handler of a request and returns the encoded reply frame. When the service accepted
    /// an introduction, the roster it names (with the sender and this node in it) is admitted.
    async fn answer(&self, peer: IdentityPublicKey, env: Envelope) -> Vec<u8> {
        let named = admission::introduced_keys(&env.service, &env.protocol, &env.payload);
        let handler = self.inner.handlers.read().unwrap_or_else(|p| p.into_inner()).get(&env.service).cloned();
        let result = match handler {
            Some(h) => {
                h(PeerMessage {
                    from: peer,
                    protocol: env.protocol.clone(),
                    round_id: env.round_id.clone(),
                    payload: env.payload,
                })
                .await
            }
            None => Err(format!("no service `{}` on this node", env.service)),
        };
        if result.is_ok() && named.contains(&peer) && named.contains(&self.public_key()) {
            self.admit(named);
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
        reply_tx: &mpsc::Sender<Vec<u8>>,
        env: Envelope,
        busy: &Arc<AtomicU64>,
    ) {
        match env.kind() {
            Some(Kind::Request) => {
                let reply_tx = reply_tx.clone();
                let (net, busy) = (self.clone(), busy.clone());
                busy.fetch_add(1, Ordering::Relaxed);
                self.inner.tasks.spawn(async move {
                    let reply = net.answer(peer, env).await;
                    busy.fetch_sub(1, Ordering::Relaxed);
                    // The reply goes back on the connection the request came in on.
                    let _ = reply_tx.send(reply).await;
                });
            }
            Some(kind @ (Kind::Response | Kind::Error)) => {
                let pending = lock(&self.inner.pending).remove(&env.id);
                match pending {
                    Some(p) => {
                        let r = if kind == Kind::Response {
                            Ok(env.payload)
                        } else {
                            Err(NetError::Remote {
                                peer: short(&peer),
                                message: String::from_utf8_lossy(&env.payload).into_owned(),
                            })
                        };
                        let _ = p.reply.send(r);
                    }
                    None => debug!(peer = %short(&peer), id = env.id, "reply to unknown request"),
                }
            }
            None => warn!(peer = %short(&peer), kind = env.kind, "frame of unknown kind ignored"),
        }
    }

    /// The live link to `peer`, dialing it if needed (with backoff after failures).
    async fn link(&self, peer: &ServerIdentity, deadline: Instant) -> Result<(u64, mpsc::Sender<Vec<u8>>), NetError> {
        let key = peer.public;
        if let Some(l) = lock(&self.inner.links).get(&key) {
            if !l.tx.is_closed() {
                return Ok((l.conn_id, l.tx.clone()));
            }
        }
        let dial_lock = lock(&self.inner.dialing).entry(key).or_default().clone();
        // Another caller may be dialing (or backing off) with a later deadline: wait for it only
        // until our own deadline.
        let _guard = match tokio::time::timeout_at(deadline.into(), dial_lock.lock()).await {
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
        loop {
            if self.inner.tasks.is_cancelled() {
                return Err(NetError::Shutdown);
            }
            if let Some(l) = lock(&self.inner.links).get(&key) {
                if !l.tx.is_closed() {
                    return Ok((l.conn_id, l.tx.clone()));
                }
            }
            let waiting = lock(&self.inner.backoff).get(&key).map(|b| (b.next_try, b.last_error.clone()));
            if let Some((t, last_error)) = waiting {
                if t > deadline {
                    // Backing off past the caller's deadline: report why the last dial failed.
                    return Err(last_error);
                }
                tokio::time::sleep_until(t.into()).await;
            }
            match self.dial(peer).await {
                Ok(()) => continue,
                Err(e) => {
                    {
                        let s = &self.inner.settings;
                        let mut backoff = lock(&self.inner.backoff);
                        let b = backoff.entry(key).or_insert(Backoff {
                            next_try: Instant::now(),
                            delay: s.backoff_min / 2,
                            last_error: e.clone(),
                        });
                        b.delay = (b.delay * 2).clamp(s.backoff_min, s.backoff_max);
                        b.next_try = Instant::now() + b.delay;
                        b.last_error = e.clone();
                    }
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    debug!(error = %e, "dial failed, will retry");
                }
            }
        }
    }

    /// One dial attempt: resolve (DNS at every dial), TCP connect, TLS with the pinned key.
    async fn dial(&self, peer: &ServerIdentity) -> Result<(), NetError> {
        let address: NodeAddress = {
            let o = self.inner.overrides.read().unwrap_or_else(|p| p.into_inner());
            o.resolve(&peer.public, &peer.address).clone()
        };
        let err = |reason: String| NetError::Dial { peer: short(&peer.public), address: address.to_string(), reason };
        let s = &self.inner.settings;
        let addrs: Vec<_> = tokio::time::timeout(s.dial_timeout, tokio::net::lookup_host(address.host_port()))
            .await
            .map_err(|_| err("DNS lookup timed out".into()))?
            .map_err(|e| err(format!("DNS lookup: {e}")))?
            .collect();
        let mut last = err("no address to dial".into());
        for sa in addrs {
            let tcp = match tokio::time::timeout(s.dial_timeout, TcpStream::connect(sa)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    last = err(format!("{sa}: {e}"));
                    continue;
                }
                Err(_) => {
                    last = err(format!("{sa}: connect timed out"));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let cfg = self.inner.tls.client_config(peer.public).map_err(NetError::Setup)?;
            let name = rustls::pki_types::ServerName::try_from("conode").map_err(|e| NetError::Setup(e.to_string()))?;
            match tokio::time::timeout(s.handshake_timeout, TlsConnector::from(cfg).connect(name, tcp)).await {
                Ok(Ok(stream)) => {
                    info!(peer = %short(&peer.public), %sa, "connected");
                    self.start_link(peer.public, tokio_rustls::TlsStream::Client(stream), None);
                    return Ok(());
                }
                Ok(Err(e)) => last = err(format!("{sa}: TLS: {e}")),
                Err(_) => last = err(format!("{sa}: TLS handshake timed out")),
            }
        }
        warn!(error = %last, "dial failed");
        Err(last)
    }

    /// Sends a request to `peer`'s `service` and waits for its reply.
    pub async fn request(
        &self,
        peer: &ServerIdentity,
        service: &str,
        protocol: &str,
        round_id: &[u8],
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let start = Instant::now();
        let deadline = start + timeout;
        if !self.is_admitted(&peer.public) {
            // A peer this node talks to is one it serves.
            self.admit([peer.public]);
        }
        let (conn_id, tx) = self.link(peer, deadline).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, Pending { conn_id, reply: reply_tx });
        let env = Envelope {
            version: WIRE_VERSION,
            kind: Kind::Request as u32,
            id,
            service: service.to_string(),
            protocol: protocol.to_string(),
            round_id: round_id.to_vec(),
            payload,
        };
        if tx.send(frame::encode(&env)).await.is_err() {
            lock(&self.inner.pending).remove(&id);
            return Err(NetError::Closed { peer: short(&peer.public) });
        }
        match tokio::time::timeout_at(deadline.into(), reply_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NetError::Closed { peer: short(&peer.public) }),
            Err(_) => {
                lock(&self.inner.pending).remove(&id);
                Err(NetError::Timeout {
                    peer: short(&peer.public),
                    what: format!("{service}/{protocol}"),
                    after: timeout,
                })
            }
        }
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
        Ok(start.elapsed())
    }
}
