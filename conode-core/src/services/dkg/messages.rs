//! Wire messages of the distributed key generation, hand-written prost structs mirrored in
//! `proto/beacon.proto`. Node-to-node only (service `Dkg`); the client starts a DKG with
//! `/Beacon/Init` (see `services::beacon::messages`).
//!
//! Decoding is bounded by the frame limit; every count and length inside is checked by
//! [`check_config`] and the protocol before use, so garbage is rejected, never a panic.

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

/// A roster member as carried in a DKG configuration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Member {
    /// Ed25519 identity key (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub public: Vec<u8>,
    /// `tls://host:port`.
    #[prost(string, tag = "2")]
    pub address: String,
    #[prost(string, tag = "3")]
    pub description: String,
}

/// What the leader proposes. The session id is `sha256("conode-dkg-v1" ‖ encoding)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DkgConfig {
    /// The roster; share index i is member i (evaluation point i + 1).
    #[prost(message, repeated, tag = "1")]
    pub members: Vec<Member>,
    #[prost(uint32, tag = "2")]
    pub threshold: u32,
    /// drand scheme id (`pedersen-bls-chained`, `bls-unchained-g1-rfc9380`).
    #[prost(string, tag = "3")]
    pub scheme: String,
    #[prost(uint32, tag = "4")]
    pub period_secs: u32,
    /// UNIX time of round 1.
    #[prost(int64, tag = "5")]
    pub genesis_time: i64,
    #[prost(string, tag = "6")]
    pub beacon_id: String,
    /// Length of each of the three phases.
    #[prost(uint64, tag = "7")]
    pub phase_timeout_ms: u64,
    /// Roster index of the leader (collects `Done`).
    #[prost(uint32, tag = "8")]
    pub leader: u32,
    /// Fresh randomness so two DKGs with the same parameters get different sessions.
    #[prost(bytes = "vec", tag = "9")]
    pub nonce: Vec<u8>,
}

/// Leader → member: "take part in this DKG".
#[derive(Clone, PartialEq, prost::Message)]
pub struct Prepare {
    #[prost(message, optional, tag = "1")]
    pub config: Option<DkgConfig>,
}

/// Leader → participant: start dealing; `participants` are the members that accepted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Go {
    #[prost(bytes = "vec", tag = "1")]
    pub session: Vec<u8>,
    #[prost(uint32, repeated, tag = "2")]
    pub participants: Vec<u32>,
}

/// Dealer → one recipient, point to point: its share and the dealer's commitments, both signed
/// with the dealer's identity key so that a bad deal is evidence anyone can check.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Deal {
    #[prost(bytes = "vec", tag = "1")]
    pub session: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub dealer: u32,
    #[prost(uint32, tag = "3")]
    pub recipient: u32,
    /// Feldman commitments, compressed points of the scheme's key group (t of them).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub commitments: Vec<Vec<u8>>,
    /// Dealer's Ed25519 signature of the commitments (see `protocol::commit_message`).
    #[prost(bytes = "vec", tag = "5")]
    pub commit_sig: Vec<u8>,
    /// The share `f(recipient + 1)`, 32 bytes big-endian.
    #[prost(bytes = "vec", tag = "6")]
    pub share: Vec<u8>,
    /// Dealer's Ed25519 signature of (session, dealer, recipient, commitments hash, share).
    #[prost(bytes = "vec", tag = "7")]
    pub share_sig: Vec<u8>,
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

/// One dealer's status as seen by the responder.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseEntry {
    #[prost(uint32, tag = "1")]
    pub dealer: u32,
    #[prost(uint32, tag = "2")]
    pub status: u32,
    /// sha256 of the commitments received from the dealer (approvals).
    #[prost(bytes = "vec", tag = "3")]
    pub commit_hash: Vec<u8>,
    /// The dealer's signature of those commitments (approvals).
    #[prost(bytes = "vec", tag = "4")]
    pub commit_sig: Vec<u8>,
    /// The signed bad deal (complaints of kind BAD_DEAL).
    #[prost(message, optional, tag = "5")]
    pub evidence: Option<Deal>,
}

/// A participant's responses about every other dealer, signed; broadcast and echoed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    #[prost(bytes = "vec", tag = "1")]
    pub session: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub from: u32,
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<ResponseEntry>,
    /// Ed25519 signature of the encoding with this field empty.
    #[prost(bytes = "vec", tag = "4")]
    pub signature: Vec<u8>,
}

/// A share revealed in public to answer a "no deal" complaint.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JustifiedShare {
    #[prost(uint32, tag = "1")]
    pub recipient: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub share: Vec<u8>,
}

/// A dealer's answer to the "no deal" complaints against it, signed; broadcast and echoed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Justification {
    #[prost(bytes = "vec", tag = "1")]
    pub session: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub dealer: u32,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub commitments: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "4")]
    pub commit_sig: Vec<u8>,
    #[prost(message, repeated, tag = "5")]
    pub shares: Vec<JustifiedShare>,
    /// Ed25519 signature of the encoding with this field empty.
    #[prost(bytes = "vec", tag = "6")]
    pub signature: Vec<u8>,
}

/// Participant → leader: finished, with the hash of the group it computed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Done {
    #[prost(bytes = "vec", tag = "1")]
    pub session: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub from: u32,
    /// Empty when the DKG failed on that node.
    #[prost(bytes = "vec", tag = "3")]
    pub group_hash: Vec<u8>,
    #[prost(string, tag = "4")]
    pub error: String,
}

/// Empty acknowledgement.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {}

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
