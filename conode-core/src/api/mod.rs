//! The client port (node port + 1): WebSocket `/<Service>/<Method>` with protobuf bodies, plain HTTP
//! routes (`/ok`, `/status`), optional TLS reloaded from its files, and a small client for it.

pub mod client;
mod server;
pub mod tls_reload;

pub use server::{serve, ApiState};
