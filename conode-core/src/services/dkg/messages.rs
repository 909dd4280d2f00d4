//! Wire messages of the distributed key generation, generated from `proto/dkg.proto` (see
//! [`crate::wire`]) and re-exported here with the limits, protocol names and status codes that go
//! with them. Node-to-node only (service `Dkg`); the client starts a DKG with `/Beacon/Init` (see
//! `services::beacon::messages`).
//!
//! Decoding is bounded by the frame limit; every count and length inside is checked by
//! [`check_config`] and the protocol before use, so garbage is rejected, never a panic.

pub use crate::wire::dkg::{
    Ack, Deal, DkgConfig, Done, Go, Justification, JustifiedShare, Member, Prepare, ResponseEntry, Responses,
};

/// Largest roster a DKG accepts.
pub const MAX_MEMBERS: usize = 1024;
/// Longest beacon id.
pub const MAX_BEACON_ID: usize = 64;
/// Longest address / description kept from a member entry.
pub const MAX_TEXT: usize = 512;

/// Protocol names inside the `Dkg` service.
pub mod protocol {
    pub const PREPARE: &str = "Prepare";
    pub const GO: &str = "Go";
    pub const DEAL: &str = "Deal";
    pub const RESPONSES: &str = "Responses";
    pub const JUSTIFICATION: &str = "Justification";
    pub const DONE: &str = "Done";
}

/// Status of one dealer in a response.
pub mod status {
    /// A valid deal was received; `commit_hash`/`commit_sig` say which commitments.
    pub const APPROVE: u32 = 1;
    /// No deal arrived in time: the dealer must publish a justification.
    pub const NO_DEAL: u32 = 2;
    /// The deal was signed but wrong: `evidence` carries it.
    pub const BAD_DEAL: u32 = 3;
}

/// Checks the sizes inside a configuration (not its semantics).
pub fn check_config(c: &DkgConfig) -> Result<(), String> {
    let n = c.members.len();
    if n == 0 || n > MAX_MEMBERS {
        return Err(format!("roster of {n} members (1..={MAX_MEMBERS} allowed)"));
    }
    if c.beacon_id.len() > MAX_BEACON_ID {
        return Err("beacon id too long".into());
    }
    if c.nonce.len() > 64 {
        return Err("nonce too long".into());
    }
    for (i, m) in c.members.iter().enumerate() {
        if m.public.len() != 32 || m.address.len() > MAX_TEXT || m.description.len() > MAX_TEXT {
            return Err(format!("member {i}: malformed entry"));
        }
    }
    if c.leader as usize >= n {
        return Err("leader index outside the roster".into());
    }
    Ok(())
}
