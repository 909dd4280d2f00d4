//! The service framework: what a service gets from the node (`ServiceContext`) and how it exposes
//! client methods (`ClientRegistry`, served at `/<Service>/<Method>` on the client port) and peer
//! protocols (registered on the `Network`).

pub mod beacon;
pub mod cosi;
pub mod dkg;
pub mod skipchain;
pub mod status;

use crate::config::NodeConfig;
use crate::network::Network;
use crate::storage::Storage;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Why a client request failed; the message is sent to the client.
#[derive(Debug, thiserror::Error, Clone)]
pub enum ServiceError {
    #[error("unknown method {service}/{method}")]
    UnknownMethod { service: String, method: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
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
    pub started: Instant,
    /// `ws` or `wss`, depending on whether the client port has TLS.
    pub client_scheme: &'static str,
}
