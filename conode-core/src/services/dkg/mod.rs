//! Distributed key generation (Pedersen / Joint-Feldman over BLS12-381) among a roster: deal,
//! response/complaint and justification phases with timeouts, evidence-based disqualification,
//! and the group file it produces. The beacon service starts it (`/Beacon/Init`) and consumes its
//! result (group key and this node's share).

pub mod group;
pub mod messages;
pub mod protocol;
mod service;

pub use group::{key_group, Group, GroupNode};
pub use protocol::{minimum_threshold, Disqualification, DkgError};
pub use service::{
    scheme_key_group, CompletionHook, Confirmation, DkgOutput, DkgReport, DkgService, DkgStatus, Guard, SERVICE, TREE,
};
