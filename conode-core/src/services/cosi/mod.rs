//! Collective signing (BLS-CoSi): the roster signs a statement together and one aggregate BLS
//! signature plus a participation mask proves that enough of it agreed.
//!
//! - `tree`: the shape of a round (root → sub-leaders → leaves, or a star), chosen from n and the
//!   measured round-trip time.
//! - `protocol`: the node-to-node round, with per-level timeouts and re-asking of failed subtrees;
//!   members known to be down are routed around and the root returns once the outcome is decided.
//! - `timing`: deadlines that follow the observed healthy answer time.
//! - `admission`: the bound on the rounds a node leads at once (by the signatures they need);
//!   later rounds wait their turn.
//! - `aggregate`: optimistic aggregation: sub-leaders only add up, the root verifies the total once
//!   and looks into the groups (down to the culprit) only when it fails.
//! - `roster`: rosters of a round; the root checks a roster's proofs of possession as one batch,
//!   once, remembered durably.
//! - `hooks`: per-purpose verification hooks; there is no open signing oracle unless the node's
//!   config sets `allow_open_signing`.
//! - `early_signing`, `inline_signing`: where and when a member signs: on the crypto pool while
//!   a slow hook runs, or after a quick hook on its own worker, each within a node-wide budget.
//! - `service`: the handle (`CosiService::sign`) and the client method `/Cosi/Sign`.
//! - `fault`: fault injection for tests.
//!
//! Verifying a collective signature needs none of this: see [`crate::verify::cosi`].

mod admission;
mod aggregate;
#[cfg(feature = "cluster")]
pub mod bench;
mod early_signing;
pub mod fault;
pub mod hooks;
mod inline_signing;
pub mod messages;
pub mod outcome;
mod protocol;
mod roster;
mod service;
mod timing;
pub mod tree;

pub use crate::verify::cosi::{verify, CosiVerifyError, Mask, Policy};
pub use fault::CosiFault;
pub use hooks::{VerifyHook, OPEN_SIGNING_PURPOSE};
pub use outcome::{CosiError, Exclusion, ExclusionKind, PartialAggregate, SignOutcome, SignReport};
pub use protocol::{MAX_LEVEL_TIMEOUT, MIN_LEVEL_TIMEOUT, PROTOCOL_ANNOUNCE};
pub use service::{CosiOptions, CosiService, PartialSignatureCounts, MAX_ROSTER_TOML};
