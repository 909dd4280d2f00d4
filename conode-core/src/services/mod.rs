//! The service framework: what a service gets from the node (`ServiceContext`), the shape every
//! service has (`Service`: started with the context and its dependencies, stopped with `stop()`),
//! and how it exposes client methods (`ClientRegistry`, served at `/<Service>/<Method>` on the
//! client port), HTTP routes, metrics and peer protocols (registered on the `Network`).
//!
//! To add a service, copy the smallest one (`status`): a `start` that registers its handlers and
//! spawns its tasks through `ctx.tasks`, a `stop` that removes the handlers and stops those tasks,
//! and one line in `node.rs` that starts it after its dependencies.

pub mod beacon;
pub mod cosi;
pub mod dkg;
pub mod membership;
pub mod metrics;
pub mod parsed_rosters;
pub mod skipchain;
pub mod status;
pub mod tasks;

pub use crate::client_api::{ErrorCode, WireError};
pub use metrics::{MetricsRegistry, StatusRegistry};
pub use tasks::Tasks;

use crate::config::NodeConfig;
use crate::network::Network;
use crate::storage::Storage;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Why a client request failed. It crosses the client port as a [`WireError`]: a stable code, the
/// details a client needs (e.g. which members are missing), and this text.
#[derive(Debug, thiserror::Error, Clone)]
pub enum ServiceError {
    #[error("unknown method {service}/{method}")]
    UnknownMethod { service: String, method: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// Too few members took part (`missing`: roster indices).
    #[error("{message}")]
    Threshold { signed: usize, required: usize, n: usize, missing: Vec<usize>, message: String },
    /// Conflicts with the node's state (a DKG is running, a chain exists).
    #[error("{0}")]
    Conflict(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The client's source is over its rate for this request; it may try again after
    /// `retry_after_ms` (field `retry_after_ms` of the `unavailable` code on the wire).
    #[error("{message}")]
    RateLimited { retry_after_ms: u128, message: String },
    #[error("{0}")]
    Failed(String),
}

impl ServiceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::UnknownMethod { .. } => ErrorCode::UnknownMethod,
            ServiceError::BadRequest(_) => ErrorCode::BadRequest,
            ServiceError::Refused(_) => ErrorCode::Refused,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Threshold { .. } => ErrorCode::Threshold,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::Unavailable(_) | ServiceError::RateLimited { .. } => ErrorCode::Unavailable,
            ServiceError::Failed(_) => ErrorCode::Internal,
        }
    }

    /// The form that crosses the client port.
    pub fn to_wire(&self) -> WireError {
        let e = WireError::new(self.code(), self.to_string());
        match self {
            ServiceError::Threshold { signed, required, n, missing, .. } => {
                let missing: Vec<String> = missing.iter().map(usize::to_string).collect();
                e.with("signed", signed).with("required", required).with("n", n).with("missing", missing.join(","))
            }
            ServiceError::RateLimited { retry_after_ms, .. } => e.with("retry_after_ms", retry_after_ms),
            _ => e,
        }
    }
}

pub type ClientFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, ServiceError>> + Send>>;
/// Handles one client request: `(method, protobuf body)` → protobuf reply.
pub type ClientHandler = Arc<dyn Fn(String, Vec<u8>) -> ClientFuture + Send + Sync>;

/// Client-facing methods of every service, by service name.
#[derive(Clone, Default)]
pub struct ClientRegistry {
    map: Arc<RwLock<HashMap<String, ClientHandler>>>,
}

impl ClientRegistry {
    pub fn register(&self, service: &str, handler: ClientHandler) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(service.to_string(), handler);
    }
    pub fn get(&self, service: &str) -> Option<ClientHandler> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(service).cloned()
    }
    /// Forgets the handler of `service` (when it stops).
    pub fn unregister(&self, service: &str) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(service);
    }
    /// Forgets every handler (on stop).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
    /// Sorted names of the registered services.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        v.sort();
        v
    }
}

/// Answers a plain HTTP GET on a two-segment path `/<a>/<b>` that is not a WebSocket upgrade
/// (e.g. drand's `/{chainhash}/info`); `None` passes it on.
pub type HttpFallback = Arc<dyn Fn(&str, &str) -> Option<axum::response::Response> + Send + Sync>;

/// Plain HTTP routes that services add to the client port (drand's API, operator pages).
#[derive(Clone, Default)]
pub struct HttpRegistry {
    routers: Arc<RwLock<Vec<axum::Router>>>,
    fallbacks: Arc<RwLock<Vec<HttpFallback>>>,
}

impl HttpRegistry {
    /// Adds routes; they are merged into the client port's router when the node starts serving.
    /// Static paths win over the `/<Service>/<Method>` WebSocket route.
    pub fn add_router(&self, router: axum::Router) {
        self.routers.write().unwrap_or_else(|p| p.into_inner()).push(router);
    }
    pub fn add_fallback(&self, f: HttpFallback) {
        self.fallbacks.write().unwrap_or_else(|p| p.into_inner()).push(f);
    }
    pub(crate) fn routers(&self) -> Vec<axum::Router> {
        self.routers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn fallback(&self, a: &str, b: &str) -> Option<axum::response::Response> {
        let fallbacks = self.fallbacks.read().unwrap_or_else(|p| p.into_inner()).clone();
        fallbacks.iter().find_map(|f| f(a, b))
    }
    /// Forgets every route (on stop).
    pub fn clear(&self) {
        self.routers.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.fallbacks.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// What every service receives when the node starts.
#[derive(Clone)]
pub struct ServiceContext {
    pub config: Arc<NodeConfig>,
    pub network: Network,
    pub storage: Storage,
    pub clients: ClientRegistry,
    /// Plain HTTP routes of the client port.
    pub http: HttpRegistry,
    /// Sources of `/metrics`.
    pub metrics: MetricsRegistry,
    /// Service sections of `/status` and `/Status/Request`.
    pub status: StatusRegistry,
    /// Spawner and stop signal: the node's, or a service's own child set (see [`Self::for_service`]).
    pub tasks: Tasks,
    pub started: Instant,
    /// `ws` or `wss`, depending on whether the client port has TLS.
    pub client_scheme: &'static str,
    /// The node's event bus (see [`crate::events`]).
    pub events: crate::events::EventBus,
    /// Streaming client methods (`/Skipchain/Subscribe`, …; see [`crate::api::subscribe`]).
    pub streams: crate::api::subscribe::StreamRegistry,
}

impl ServiceContext {
    /// The context a service starts with: the same node, with its own child set of tasks that its
    /// `stop()` cancels.
    pub fn for_service(&self) -> Self {
        Self { tasks: self.tasks.child(), ..self.clone() }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[error("service {service}: {reason}")]
pub struct StartError {
    pub service: &'static str,
    pub reason: String,
}

/// How long a stopping service waits for its tasks before it gives up on them.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The shape every service has. The node starts services in dependency order, keeps their typed
/// handles while it runs (`node.cosi()`, …) and stops them in reverse order.
pub trait Service: Clone + Send + Sync + Sized + 'static {
    /// Name on the client port (`/<NAME>/<Method>`) and in the peer protocol.
    const NAME: &'static str;
    /// The handles of the services this one uses (`()` for none).
    type Deps;
    /// Registers the service's handlers and starts its tasks (through `ctx.tasks`).
    fn start(ctx: &ServiceContext, deps: Self::Deps) -> Result<Self, StartError>;
    /// Removes the handlers, cancels the service's tasks and waits for them.
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

/// The common part of `Service::stop`: unregisters `name` from the peer and client ports and
/// stops the service's tasks (logging any that did not end in time).
pub async fn stop_service(ctx: &ServiceContext, name: &str) {
    ctx.network.unregister(name);
    ctx.clients.unregister(name);
    ctx.streams.unregister(name);
    let left = ctx.tasks.stop(STOP_GRACE).await;
    if left > 0 {
        tracing::warn!(service = name, left, "tasks did not stop in time");
    }
}
