//! drand-compatible randomness beacon: after a DKG (see [`crate::services::dkg`]) the roster
//! produces one threshold-BLS signature per period in drand's format (`pedersen-bls-chained`,
//! `bls-unchained-g1-rfc9380` and drand's other schemes), stores it durably, serves it over drand's
//! HTTP API and `/Beacon/*`, and catches up after outages. `bench` measures it.

#[cfg(feature = "cluster")]
pub mod bench;
pub mod http;
pub mod messages;
mod partials;
mod service;
pub mod store;

/// drand's JSON writers live with the verifier's parsers; re-exported here for the node's callers.
pub use crate::verify::beacon::{beacon_json, info_json};
pub use service::{unix_now_ms, BeaconFault, BeaconService, BeaconStats, RoundLatency, DEFAULT_PHASE_MS, SERVICE};
