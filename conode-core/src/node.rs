//! The node: `NodeBuilder` (from files or in-memory config) → `Node::start()` → running →
//! `stop()` (graceful: stop accepting, end connections, flush storage). The node owns a tokio runtime
//! unless the embedder hands one in; the blocking methods refuse to run inside a runtime worker.

use crate::api::{self, tls_reload::ReloadingCert, ApiState};
use crate::config::{AddressOverrides, ConfigError, NodeConfig, ServerIdentity};
use crate::network::{NetError, NetSettings, Network};
use crate::services::{self, ClientRegistry, ServiceContext};
use crate::storage::{Storage, StorageError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

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
}

impl NodeBuilder {
    /// From an in-memory config.
    pub fn new(config: NodeConfig) -> Self {
        Self {
            config,
            data_dir: None,
            overrides: AddressOverrides::default(),
            net: NetSettings::default(),
            runtime: None,
            listeners: None,
            cert_reload_interval: Duration::from_secs(1),
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

    pub fn build(self) -> Result<Node, NodeError> {
        let (handle, owned_runtime) = match self.runtime {
            Some(h) => (h, None),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("conode")
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
        })
    }
}

struct Running {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ctx: ServiceContext,
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
        self.running = Some(running);
        Ok(())
    }

    /// Starts the node from async code (must run on the node's runtime).
    pub async fn start_async(&mut self) -> Result<(), NodeError> {
        if self.running.is_some() {
            return Err(NodeError::AlreadyRunning);
        }
        let running = self.launch().await?;
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
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let client_tls = match (&config.ws_tls_certificate, &config.ws_tls_certificate_key) {
            (Some(cert), Some(key)) => {
                let (resolver, fp) = ReloadingCert::new(cert, key).map_err(|e| NodeError::ClientTls(e.to_string()))?;
                tasks.push(tokio::spawn(resolver.clone().watch(fp, self.cert_reload_interval, shutdown_rx.clone())));
                Some(api::tls_reload::server_config(resolver).map_err(NodeError::ClientTls)?)
            }
            _ => None,
        };
        let storage = open_storage(&self.data_dir, &config.node_id()).await?;
        let network =
            Network::new(config.identity.clone(), self.net.clone(), self.overrides.clone(), shutdown_rx.clone())?;
        let ctx = ServiceContext {
            config: config.clone(),
            network: network.clone(),
            storage,
            clients: ClientRegistry::default(),
            http: services::HttpRegistry::default(),
            started,
            client_scheme: if client_tls.is_some() { "wss" } else { "ws" },
        };
        services::status::register(&ctx);
        services::dkg::register(&ctx);
        services::beacon::register(&ctx);
        services::cosi::register(&ctx);
        services::skipchain::register(&ctx);
        tasks.push(network.serve(node_l));
        tasks.push(api::serve(
            client_l,
            ApiState { ctx: ctx.clone(), clients: ctx.clients.clone() },
            client_tls,
            shutdown_rx,
        ));
        info!(id = %&config.node_id()[..16], %node_addr, %client_addr, "node started in {:?}", started.elapsed());
        Ok(Running { shutdown: shutdown_tx, tasks, ctx, node_addr, client_addr })
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

async fn shutdown(running: Running) {
    let Running { shutdown, tasks, ctx, .. } = running;
    let _ = shutdown.send(true);
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), t).await.is_err() {
            abort.abort();
        }
    }
    if let Err(e) = ctx.storage.flush() {
        tracing::warn!(error = %e, "flushing storage on stop");
    }
    // Handlers hold clones of the context: drop them so the database closes.
    ctx.network.clear_handlers();
    ctx.clients.clear();
    ctx.http.clear();
    info!(id = %&ctx.config.node_id()[..16], "node stopped");
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            if Handle::try_current().is_ok() {
                // Cannot block here: signal and let the tasks end on their own.
                let _ = running.shutdown.send(true);
                running.ctx.network.clear_handlers();
                running.ctx.clients.clear();
                running.ctx.http.clear();
            } else {
                self.handle.block_on(shutdown(running));
            }
        }
        if let Some(rt) = self.owned_runtime.take() {
            rt.shutdown_background();
        }
    }
}
