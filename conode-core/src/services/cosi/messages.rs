//! Wire messages of collective signing: the client API (`/Cosi/Sign`) and the node-to-node
//! `Announce` / `Reply` of a signing round. The types are generated from `proto/cosi.proto` (see
//! [`crate::wire`]); this module re-exports them with the limits and helpers that go with them.
//! Decoding is bounded by the frame / WebSocket limits; the counts inside are checked by the
//! protocol before use.

pub use crate::wire::common::Exclusion;
pub use crate::wire::cosi::{Announce, Member, Reply, SignRequest, SignResponse};

/// Longest statement a round accepts (a service signs a hash or a block header, not bulk data).
pub const MAX_STATEMENT: usize = 1024 * 1024;
/// Largest extra data passed to a verification hook.
pub const MAX_EXTRA: usize = 4 * 1024 * 1024;
/// Largest roster a round accepts.
pub const MAX_ROSTER: usize = 4096;
/// Longest reason string kept from a peer.
pub const MAX_REASON: usize = 200;

/// Cuts a reason to `MAX_REASON` bytes (on a char boundary).
pub fn bounded_reason(s: &str) -> String {
    if s.len() <= MAX_REASON {
        return s.to_string();
    }
    let mut end = MAX_REASON;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
