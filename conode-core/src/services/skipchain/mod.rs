//! Skipchains: the cothority's tamper-evident log. Blocks are accepted by the roster, linked forward
//! by collective signatures at several levels, stored durably on every member, and served with
//! O(log n) proofs that the pure verifier ([`crate::verify::skipchain`]) checks.
//!
//! - `messages`: client and peer wire messages; `owner`: the owner-signed `Append`.
//! - `store`: durable sled storage.
//! - `rosters`: block rosters checked once (keys, PoPs) and remembered.
//! - `service`: create/append/get/update, the cosi verification hook, propagation and catch-up.

pub mod messages;
mod owner;
mod rosters;
mod service;
pub mod store;
mod votes;

pub use service::{block_roster, config_roster, SkipchainError, SkipchainService, SKIPCHAIN_SERVICE};
