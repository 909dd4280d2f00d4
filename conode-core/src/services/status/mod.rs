//! The status service: `/Status/Request` over WebSocket in the Go cothority's wire format, and the
//! same data as JSON over HTTP at `/status`; the roster view of the status page at `/roster/status`
//! (see `roster`).

pub mod messages;
pub mod roster;
mod service;

pub use service::{status_map, StatusMap, StatusService, SERVICE};
