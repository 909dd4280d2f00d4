//! The status service: `/Status/Request` over WebSocket in the Go cothority's wire format, and the
//! same data as JSON over HTTP at `/status`.

pub mod messages;
mod service;

pub use service::{status_map, StatusMap, StatusService, SERVICE};
