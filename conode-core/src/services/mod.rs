//! The service framework: what a service gets from the node (`ServiceContext`) and how it exposes
//! client methods (`ClientRegistry`, served at `/<Service>/<Method>` on the client port) and peer
//! protocols (registered on the `Network`).

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
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), handler);
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

/// What every service receives when the node starts.
#[derive(Clone)]
pub struct ServiceContext {
    pub config: Arc<NodeConfig>,
    pub network: Network,
    pub storage: Storage,
    pub clients: ClientRegistry,
    pub started: Instant,
    /// `ws` or `wss`, depending on whether the client port has TLS.
    pub client_scheme: &'static str,
}
