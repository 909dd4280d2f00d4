//! Distributed key generation (Pedersen / Joint-Feldman over BLS12-381) among a roster: deal,
//! response/complaint and justification phases with timeouts, evidence-based disqualification,
//! and the group file it produces. The beacon service starts it (`/Beacon/Init`) and consumes its
//! result (group key and this node's share).
//!
//! Modules, by phase:
//! - [`protocol`]: the DKG math and state machine (pure: deals, responses, justifications,
//!   disqualification, finalization);
//! - [`group`]: the group file a DKG produces;
//! - `service`: the [`DkgService`] handle, its start and stop, completion hooks and guard;
//! - `session`: one DKG session's state (the slot), its status and log, waiting for messages;
//! - `leader`: proposing a DKG, starting it, collecting the members' results;
//! - `phases`: deal, response, justification, finalization and hand-over at each participant;
//! - `peer`: the `Dkg` peer protocol handler;
//! - `batch`: checking all shares received against their commitments in one batch;
//! - `timing`: phase deadlines from the group size and measured costs, retries with backoff;
//! - [`reshare`]: resharing the group secret to a new group (pure: deals, checks, qualified set);
//! - [`messages`]: the wire messages.

mod batch;
pub mod group;
mod leader;
pub mod messages;
mod peer;
mod phases;
pub mod protocol;
pub mod reshare;
mod service;
mod session;
mod timing;

pub use group::{key_group, Group, GroupNode, Reshared};
pub use leader::{Confirmation, DkgReport};
pub use protocol::{minimum_threshold, Disqualification, DkgError};
pub use service::{scheme_key_group, CompletionHook, DkgOutput, DkgService, Guard, SERVICE, TREE};
pub use session::DkgStatus;
