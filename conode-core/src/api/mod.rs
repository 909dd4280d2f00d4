//! The client port (node port + 1): WebSocket `/<Service>/<Method>` with protobuf bodies, plain HTTP
//! routes (`/ok`, `/status`, `/metrics`, a status page at `/`), optional TLS reloaded from its files, and a small client for it.

pub mod client;
pub mod edge;
mod operator;
pub mod rate;
mod server;
pub mod subscribe;
pub mod tls_reload;
pub mod trust;

pub use operator::{metrics_text, status_page};
pub use server::{serve, ApiState};
