//! The node: `NodeBuilder` (from files or in-memory config) → `Node::start()` → running →
//! `stop()` (graceful: stop accepting, stop the services in reverse order, cancel and await every
//! task, flush and close storage). The node owns its services' typed handles (`node.cosi()`, …)
//! while it runs. It owns a tokio runtime unless the embedder hands one in; the blocking methods
//! refuse to run inside a runtime worker.

use crate::api::{self, tls_reload::ReloadingCert, ApiState};
use crate::config::{AddressOverrides, ConfigError, NodeConfig, ServerIdentity};
use crate::network::{NetError, NetSettings, Network};
use crate::services::beacon::BeaconService;
use crate::services::cosi::CosiService;
use crate::services::dkg::DkgService;
use crate::services::membership::MembershipService;
use crate::services::skipchain::SkipchainService;
use crate::services::status::StatusService;
use crate::services::{self, ClientRegistry, Service, ServiceContext, StartError, Tasks, STOP_GRACE};
use crate::storage::{Storage, StorageError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node is already running")]
    AlreadyRunning,
    #[error("node is not running")]
    NotRunning,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Network(#[from] NetError),
    #[error("{what} {addr}: cannot listen: {reason}")]
    Bind { what: &'static str, addr: String, reason: String },
    #[error("client port TLS: {0}")]
    ClientTls(String),
    #[error(transparent)]
    Service(#[from] StartError),
    #[error("cannot create the node's runtime: {0}")]
    Runtime(String),
    #[error("blocking node call made inside an async runtime; use the *_async method")]
    BlockingInAsync,
}

/// Configures a node before it starts.
pub struct NodeBuilder {
    config: NodeConfig,
    data_dir: Option<PathBuf>,
    overrides: AddressOverrides,
    net: NetSettings,
    runtime: Option<Handle>,
    listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
    cert_reload_interval: Duration,
    event_capacity: usize,
}

impl NodeBuilder {
    /// From an in-memory config.
    pub fn new(config: NodeConfig) -> Self {
        Self {
            net: NetSettings::from_limits(&config.limits),
            config,
            data_dir: None,
            overrides: AddressOverrides::default(),
            runtime: None,
            listeners: None,
            cert_reload_interval: Duration::from_secs(1),
            event_capacity: crate::events::DEFAULT_EVENT_CAPACITY,
        }
    }

    /// From private.toml; also reads `overrides.toml` beside it when present.
    pub fn from_file(private_toml: &Path) -> Result<Self, NodeError> {
        let config = NodeConfig::load(private_toml)?;
        let dir = private_toml.parent().unwrap_or(Path::new("."));
        let overrides = AddressOverrides::load_optional(&dir.join("overrides.toml"))?;
        let mut b = Self::new(config);
        b.overrides = overrides;
        Ok(b)
    }

    /// Where `<id>.db` lives (default: `DataDir` of the config, else the OS data dir).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    pub fn overrides(mut self, o: AddressOverrides) -> Self {
        self.overrides = o;
        self
    }
    pub fn net_settings(mut self, s: NetSettings) -> Self {
        self.net = s;
        self
    }
    /// Run on the embedder's runtime instead of an own one.
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }
    /// Use already-bound listeners (node port, client port) for the first start.
    pub fn listeners(mut self, node: std::net::TcpListener, client: std::net::TcpListener) -> Self {
        self.listeners = Some((node, client));
        self
    }
    /// How often the client-port certificate files are checked for changes.
    pub fn cert_reload_interval(mut self, d: Duration) -> Self {
        self.cert_reload_interval = d;
        self
    }

    /// How many events each subscriber of [`Node::events`] may hold before it lags (default
    /// [`crate::events::DEFAULT_EVENT_CAPACITY`]).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n;
        self
    }

    pub fn build(self) -> Result<Node, NodeError> {
        let (handle, owned_runtime) = match self.runtime {
            Some(h) => (h, None),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("conode")
                    .on_thread_start(crate::sigpipe::block_in_this_thread)
                    .enable_all()
                    .build()
                    .map_err(|e| NodeError::Runtime(e.to_string()))?;
                (rt.handle().clone(), Some(rt))
            }
        };
        let data_dir = self
            .data_dir
            .or_else(|| self.config.data_dir.clone())
            .unwrap_or_else(crate::config::paths::default_data_dir);
        Ok(Node {
            config: Arc::new(self.config),
            data_dir,
            overrides: self.overrides,
            net: self.net,
            handle,
            owned_runtime,
            listeners: self.listeners,
            cert_reload_interval: self.cert_reload_interval,
            running: None,
            last_tasks: None,
            events: crate::events::EventBus::new(self.event_capacity),
        })
    }
}

/// The services of a running node, started in dependency order and stopped in reverse.
#[derive(Clone)]
pub struct Services {
    pub status: StatusService,
    pub cosi: CosiService,
    pub skipchain: SkipchainService,
    pub dkg: DkgService,
    pub beacon: BeaconService,
    pub membership: MembershipService,
}

impl Services {
    /// Starts every service, each after the ones it depends on. On failure the caller cancels the
    /// node's tasks and clears the registries, which ends the services already started.
    fn start(ctx: &ServiceContext) -> Result<Self, StartError> {
        let status = StatusService::start(ctx, ())?;
        let cosi = CosiService::start(ctx, ())?;
        let skipchain = SkipchainService::start(ctx, cosi.clone())?;
        let dkg = DkgService::start(ctx, ())?;
        let beacon = BeaconService::start(ctx, dkg.clone())?;
        let membership = MembershipService::start(ctx, skipchain.clone())?;
        // A roster change this node appends reshares the beacon group it runs.
        let b = beacon.clone();
        membership.on_roster_change(std::sync::Arc::new(move |roster| b.reshare_on_roster_change(roster)));
        // An old member of the beacon group takes part in a resharing its network decided.
        beacon.set_members_decided(membership.decided_members_check());
        Ok(Self { status, cosi, skipchain, dkg, beacon, membership })
    }

    async fn stop(&self) {
        self.membership.stop().await;
        self.beacon.stop().await;
        self.dkg.stop().await;
        self.skipchain.stop().await;
        self.cosi.stop().await;
        self.status.stop().await;
    }
}

struct Running {
    /// Every task of this run; the node's services and ports run in children of it.
    tasks: Tasks,
    /// The accept loops of both ports (stopped first).
    accepting: Tasks,
    ctx: ServiceContext,
    services: Services,
    node_addr: SocketAddr,
    client_addr: SocketAddr,
}

/// A conode. Dropping a running node stops it.
pub struct Node {
    config: Arc<NodeConfig>,
    data_dir: PathBuf,
    overrides: AddressOverrides,
    net: NetSettings,
    handle: Handle,
    /// The runtime the node created for itself, when the embedder handed none in.
    owned_runtime: Option<Runtime>,
    listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
    cert_reload_interval: Duration,
    running: Option<Running>,
    /// The tasks of the current or last run (to check that a stopped node left nothing running).
    last_tasks: Option<Tasks>,
    /// Lives as long as the node, across restarts.
    events: crate::events::EventBus,
}

fn bind_addr(config: &NodeConfig) -> String {
    config.listen_address.clone().unwrap_or_else(|| config.address.host_port())
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|e| NodeError::Bind { what, addr: addr.to_string(), reason: e.to_string() })
}

fn adopt(what: &'static str, l: std::net::TcpListener) -> Result<TcpListener, NodeError> {
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    l.set_nonblocking(true).and_then(|_| TcpListener::from_std(l)).map_err(|e| NodeError::Bind {
        what,
        addr,
        reason: e.to_string(),
    })
}

impl Node {
    pub fn config(&self) -> &Arc<NodeConfig> {
        &self.config
    }
    pub fn server_identity(&self) -> ServerIdentity {
        self.config.server_identity()
    }
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The runtime the node runs on.
    pub fn runtime_handle(&self) -> Handle {
        self.handle.clone()
    }
    /// Bound node-to-node address (when running).
    pub fn node_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|r| r.node_addr)
    }
    /// Bound client-port address (when running).
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|r| r.client_addr)
    }
    /// `ws://` or `wss://` base URL of the client port (when running).
    pub fn client_url(&self) -> Option<String> {
        self.running.as_ref().map(|r| format!("{}://{}", r.ctx.client_scheme, r.client_addr))
    }
    /// The services' shared context (when running).
    pub fn context(&self) -> Option<&ServiceContext> {
        self.running.as_ref().map(|r| &r.ctx)
    }
    pub fn network(&self) -> Option<Network> {
        self.running.as_ref().map(|r| r.ctx.network.clone())
    }

    /// A new subscription to the node's events (running or not; it survives restarts): an async
    /// stream ([`EventSubscriber::recv`](crate::events::EventSubscriber::recv),
    /// [`into_stream`](crate::events::EventSubscriber::into_stream)) and a blocking
    /// [`next_event(timeout)`](crate::events::EventSubscriber::next_event).
    pub fn events(&self) -> crate::events::EventSubscriber {
        self.events.subscribe()
    }

    /// The node's event bus.
    pub fn event_bus(&self) -> &crate::events::EventBus {
        &self.events
    }

    /// The services of the running node.
    pub fn services(&self) -> Result<&Services, NodeError> {
        self.running.as_ref().map(|r| &r.services).ok_or(NodeError::NotRunning)
    }
    pub fn status(&self) -> Result<StatusService, NodeError> {
        Ok(self.services()?.status.clone())
    }
    pub fn cosi(&self) -> Result<CosiService, NodeError> {
        Ok(self.services()?.cosi.clone())
    }
    pub fn skipchain(&self) -> Result<SkipchainService, NodeError> {
        Ok(self.services()?.skipchain.clone())
    }
    pub fn dkg(&self) -> Result<DkgService, NodeError> {
        Ok(self.services()?.dkg.clone())
    }
    pub fn beacon(&self) -> Result<BeaconService, NodeError> {
        Ok(self.services()?.beacon.clone())
    }
    pub fn membership(&self) -> Result<MembershipService, NodeError> {
        Ok(self.services()?.membership.clone())
    }

    /// Tasks of the current (or, once stopped, the last) run that are still running: 0 after
    /// `stop()` returned.
    pub fn running_tasks(&self) -> usize {
        self.last_tasks.as_ref().map_or(0, Tasks::running)
    }

    /// Starts the node and returns once both ports accept connections.
    pub fn start(&mut self) -> Result<(), NodeError> {
        if self.running.is_some() {
            return Err(NodeError::AlreadyRunning);
        }
        let handle = self.handle.clone();
        if Handle::try_current().is_ok() {
            return Err(NodeError::BlockingInAsync);
        }
        let running = handle.block_on(self.launch())?;
        self.last_tasks = Some(running.tasks.clone());
        self.running = Some(running);
        Ok(())
    }

    /// Starts the node from async code (must run on the node's runtime).
    pub async fn start_async(&mut self) -> Result<(), NodeError> {
        if self.running.is_some() {
            return Err(NodeError::AlreadyRunning);
        }
        let running = self.launch().await?;
        self.last_tasks = Some(running.tasks.clone());
        self.running = Some(running);
        Ok(())
    }

    async fn launch(&mut self) -> Result<Running, NodeError> {
        let started = Instant::now();
        let config = self.config.clone();
        let (node_l, client_l) = match self.listeners.take() {
            Some((n, c)) => (adopt("node port", n)?, adopt("client port", c)?),
            None => {
                let addr = bind_addr(&config);
                let node_l = bind("node port", &addr).await?;
                let client_addr = match crate::config::NodeAddress::parse(&addr) {
                    // Port 0 (embedding, tests): both ports are ephemeral; ask the node for them.
                    Ok(a) if a.port == 0 => a.host_port(),
                    Ok(a) => a.client_host_port(),
                    Err(reason) => return Err(NodeError::Bind { what: "client port", addr, reason }),
                };
                let client_l = bind("client port", &client_addr).await?;
                (node_l, client_l)
            }
        };
        let node_addr = node_l.local_addr().map_err(|e| NodeError::Bind {
            what: "node port",
            addr: String::new(),
            reason: e.to_string(),
        })?;
        let client_addr = client_l.local_addr().map_err(|e| NodeError::Bind {
            what: "client port",
            addr: String::new(),
            reason: e.to_string(),
        })?;
        let tasks = Tasks::new();
        let accepting = tasks.child();
        let client_tls = match (&config.ws_tls_certificate, &config.ws_tls_certificate_key) {
            (Some(cert), Some(key)) => {
                let (resolver, fp) = ReloadingCert::new(cert, key).map_err(|e| NodeError::ClientTls(e.to_string()))?;
                tasks.spawn(resolver.clone().watch(fp, self.cert_reload_interval));
                Some(api::tls_reload::server_config(resolver).map_err(NodeError::ClientTls)?)
            }
            _ => None,
        };
        let storage = open_storage(&self.data_dir, &config.node_id()).await?;
        let mut overrides = self.overrides.clone();
        overrides.set_anonymous(config.anonymous);
        let network = Network::new(config.identity.clone(), self.net.clone(), overrides, tasks.clone())?;
        network.set_events(self.events.clone());
        let ctx = ServiceContext {
            config: config.clone(),
            network: network.clone(),
            storage,
            clients: ClientRegistry::default(),
            http: services::HttpRegistry::default(),
            metrics: services::MetricsRegistry::default(),
            status: services::StatusRegistry::default(),
            tasks: tasks.clone(),
            started,
            client_scheme: if client_tls.is_some() { "wss" } else { "ws" },
            events: self.events.clone(),
            streams: Default::default(),
        };
        let services = match Services::start(&ctx) {
            Ok(s) => s,
            Err(e) => {
                tasks.stop(STOP_GRACE).await;
                release(&ctx);
                return Err(e.into());
            }
        };
        admit_known_rosters(&services, &network);
        let backups = crate::admin::BackupObserver { stats: Default::default(), events: ctx.events.clone() };
        let stats = backups.stats.clone();
        ctx.metrics.add(
            "node",
            std::sync::Arc::new(move |reg| {
                use std::sync::atomic::Ordering::Relaxed;
                let runs = stats.runs.load(Relaxed);
                crate::services::metrics::counter(reg, "conode_backup_runs", "Hot backups served.", runs);
                let failed = stats.failures.load(Relaxed);
                crate::services::metrics::counter(reg, "conode_backup_failures", "Hot backups that failed.", failed);
            }),
        );
        let (membership, beacon) = (services.membership.clone(), services.beacon.clone());
        crate::admin::serve(
            &self.data_dir,
            &config.node_id(),
            ctx.storage.clone(),
            membership,
            beacon,
            &tasks,
            backups,
        );
        network.serve(node_l, &accepting);
        api::serve(
            client_l,
            ApiState { ctx: ctx.clone(), clients: ctx.clients.clone() },
            client_tls,
            &accepting,
            &tasks,
        );
        info!(id = %&config.node_id()[..16], %node_addr, %client_addr, "node started in {:?}", started.elapsed());
        self.events.emit(crate::events::NodeEvent::NodeStarted {
            node_addr: node_addr.to_string(),
            client_addr: client_addr.to_string(),
        });
        Ok(Running { tasks, accepting, ctx, services, node_addr, client_addr })
    }

    /// Stops the node gracefully and waits for it.
    pub fn stop(&mut self) -> Result<(), NodeError> {
        let running = self.running.take().ok_or(NodeError::NotRunning)?;
        if Handle::try_current().is_ok() {
            self.running = Some(running);
            return Err(NodeError::BlockingInAsync);
        }
        self.handle.block_on(shutdown(running));
        Ok(())
    }

    /// Stops the node from async code.
    pub async fn stop_async(&mut self) -> Result<(), NodeError> {
        let running = self.running.take().ok_or(NodeError::NotRunning)?;
        shutdown(running).await;
        Ok(())
    }
}

/// The members of every roster this node stores (beacon group, the newest roster of each
/// skipchain) are served on the node port from the start; services admit rosters they learn later.
fn admit_known_rosters(services: &Services, network: &Network) {
    if let Some(group) = services.beacon.group() {
        network.admit(group.nodes.iter().map(|n| n.public));
    }
    let store = services.skipchain.store();
    for genesis in store.chains() {
        if let Some(roster) = store.latest(&genesis).and_then(|b| b.roster) {
            network.admit(
                roster.members.iter().filter_map(|m| crate::crypto::IdentityPublicKey::from_bytes(&m.identity).ok()),
            );
        }
    }
}

/// Opens the database, retrying briefly while a previous instance in this process releases it.
async fn open_storage(dir: &Path, id: &str) -> Result<Storage, NodeError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Storage::open(dir, id) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "database busy, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Stops accepting, stops the services in reverse order, cancels and awaits every remaining
/// task (connections), then flushes and releases the storage.
async fn shutdown(running: Running) {
    let Running { tasks, accepting, ctx, services, .. } = running;
    ctx.events.emit(crate::events::NodeEvent::NodeStopping);
    accepting.stop(STOP_GRACE).await;
    services.stop().await;
    let left = tasks.stop(STOP_GRACE).await;
    if left > 0 {
        warn!(left, "tasks still running after the node stopped");
    }
    if let Err(e) = ctx.storage.flush() {
        warn!(error = %e, "flushing storage on stop");
    }
    release(&ctx);
    info!(id = %&ctx.config.node_id()[..16], "node stopped");
}

/// Drops what the registries hold (handlers hold the services, which hold the storage), so the
/// database closes as soon as the last handle goes.
fn release(ctx: &ServiceContext) {
    ctx.network.clear_handlers();
    ctx.clients.clear();
    ctx.http.clear();
    ctx.streams.clear();
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            if Handle::try_current().is_ok() {
                // Cannot block here: cancel everything and let the tasks end on their own.
                running.ctx.events.emit(crate::events::NodeEvent::NodeStopping);
                running.tasks.token().cancel();
                release(&running.ctx);
            } else {
                self.handle.block_on(shutdown(running));
            }
        }
        if let Some(rt) = self.owned_runtime.take() {
            rt.shutdown_background();
        }
    }
}
