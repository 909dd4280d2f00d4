//! drand-compatible randomness beacon: after a DKG (see [`crate::services::dkg`]) the roster
//! produces one threshold-BLS signature per period in drand's format (`pedersen-bls-chained`,
//! `bls-unchained-g1-rfc9380` and drand's other schemes), stores it durably, serves it over drand's
//! HTTP API and `/Beacon/*`, and catches up after outages. `bench` measures it.
//!
//! Modules, by job:
//! - `service`: the [`BeaconService`] handle, its start and stop, stats and accessors;
//! - `chain`: the state of the running chain, loading it, and appending a beacon to it;
//! - `round_loop`: when to sign which round, when to give up and retry (pure, tested), and the
//!   loop that does it;
//! - `partials`: receiving partials, the pool of held partials, recovering and verifying a beacon
//!   from `t` of them, finding the bad one when that fails (pure, tested with real BLS);
//! - `audit`: checking once, after the round, the partials that were not needed;
//! - `sync`: catching up from peers and serving them;
//! - `subscribe`: `/Beacon/Subscribe`, new rounds streamed to a client;
//! - `peer`: the `Beacon` peer protocol (partials, sync) dispatch;
//! - `approval`: its operator's consent, without which a node neither starts a group (DKG) nor
//!   reshares one;
//! - `client`: the `/Beacon/<Method>` client dispatch and `/Beacon/Init`;
//! - `transition_protocol`: resharing the group (`/Beacon/Reshare`, peer service `Reshare`);
//! - `transition`: the hand-over to the reshared group at the agreed round;
//! - [`store`]: durable group, share and beacons; [`http`]: drand's HTTP API; [`messages`]: the
//!   wire messages. drand's JSON shapes are written by [`crate::verify::beacon`] (re-exported here).

mod approval;
mod audit;
#[cfg(feature = "cluster")]
pub mod bench;
mod chain;
mod client;
pub mod http;
pub mod messages;
mod partials;
mod peer;
mod round_loop;
mod service;
pub mod store;
mod subscribe;
mod sync;
mod transition;
mod transition_protocol;

/// drand's JSON writers live with the verifier's parsers; re-exported here for the node's callers.
pub use crate::verify::beacon::{beacon_json, info_json};
pub use approval::{ApprovedGroup, MembersDecided, HOW_TO_APPROVE_INIT, RESHARING_IS_LOCAL};
pub use client::DEFAULT_PHASE_MS;
pub use round_loop::unix_now_ms;
pub use service::{BeaconFault, BeaconService, BeaconStats, RoundLatency, SERVICE, TRANSITION_SECTION};
pub use transition::TransitionStatus;
