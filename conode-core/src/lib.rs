//! conode-core: the collective-authority node as a library.
//!
//! Without the default `runtime` feature only [`crypto`], [`verify`] and [`wire`] (the protobuf
//! messages, generated from `proto/`) compile: that is the pure light-client part (no tokio, no
//! sled, no sockets). With it: config, storage, the pinned-TLS network, the client port, services
//! and the [`node::Node`] lifecycle; `cluster` adds [`cluster::LocalCluster`].

pub mod client_api;
pub mod crypto;
pub mod kept;
pub mod sigpipe;
pub mod sync;
pub mod verify;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod admin;
#[cfg(feature = "runtime")]
pub mod api;
#[cfg(feature = "runtime")]
pub mod backup;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod events;
#[cfg(feature = "runtime")]
pub mod network;
#[cfg(feature = "runtime")]
pub mod node;
#[cfg(feature = "runtime")]
pub mod services;
#[cfg(feature = "runtime")]
pub mod storage;
#[cfg(feature = "runtime")]
mod token_bucket;

#[cfg(feature = "runtime")]
pub use node::{Node, NodeBuilder, NodeError};

/// Version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
