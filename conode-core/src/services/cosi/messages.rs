//! Wire messages of collective signing, hand-written prost structs mirrored in `proto/cosi.proto`:
//! the client API (`/Cosi/Sign`) and the node-to-node `Announce` / `Reply` of a signing round.
//! Decoding is bounded by the frame / WebSocket limits; the counts inside are checked by the
//! protocol before use.

/// Longest statement a round accepts (a service signs a hash or a block header, not bulk data).
pub const MAX_STATEMENT: usize = 1024 * 1024;
/// Largest extra data passed to a verification hook.
pub const MAX_EXTRA: usize = 4 * 1024 * 1024;
/// Largest roster a round accepts.
pub const MAX_ROSTER: usize = 4096;
/// Longest reason string kept from a peer.
pub const MAX_REASON: usize = 200;

/// `/Cosi/Sign` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignRequest {
    /// The statement to sign (signed as is).
    #[prost(bytes = "vec", tag = "1")]
    pub message: Vec<u8>,
    /// Roster as TOML text (`[[servers]]` entries, the content of a roster / public.toml file).
    /// Absent: the roster the node was given as its default (see `CosiService::set_default_roster`).
    #[prost(string, optional, tag = "2")]
    pub roster_toml: Option<String>,
    /// Required number of signers; absent or 0: `n − ⌊(n − 1) / 3⌋`.
    #[prost(uint32, optional, tag = "3")]
    pub threshold: Option<u32>,
    /// Per-level timeout in milliseconds; absent or 0: the node's default.
    #[prost(uint64, optional, tag = "4")]
    pub timeout_ms: Option<u64>,
}

/// A roster member left out of the signature, and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exclusion {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `/Cosi/Sign` response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignResponse {
    /// Aggregate BLS signature (96 bytes, G2 compressed).
    #[prost(bytes = "vec", tag = "1")]
    pub signature: Vec<u8>,
    /// Participation mask: bit i = roster index i, LSB-first, ceil(n/8) bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub mask: Vec<u8>,
    /// Roster indices of the signers.
    #[prost(uint32, repeated, tag = "3")]
    pub signed: Vec<u32>,
    /// Members whose verification hook refused the statement.
    #[prost(message, repeated, tag = "4")]
    pub refused: Vec<Exclusion>,
    /// Members that did not answer in time (down, unreachable or slow).
    #[prost(message, repeated, tag = "5")]
    pub timed_out: Vec<Exclusion>,
    /// Members that sent an invalid partial signature.
    #[prost(message, repeated, tag = "6")]
    pub invalid: Vec<Exclusion>,
    /// Number of signers the policy required.
    #[prost(uint32, tag = "7")]
    pub required: u32,
}

/// A roster member as carried in an announcement: enough to dial it and check its partial.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Member {
    /// Ed25519 identity key (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub public: Vec<u8>,
    /// `tls://host:port`.
    #[prost(string, tag = "2")]
    pub address: String,
    /// BLS cosi service key (48 bytes, G1 compressed).
    #[prost(bytes = "vec", tag = "3")]
    pub cosi_public: Vec<u8>,
}

/// Node-to-node: "sign this, and collect the partials of `children`".
#[derive(Clone, PartialEq, prost::Message)]
pub struct Announce {
    /// The roster; left out when the receiver is expected to know `roster_id` (it answers
    /// `unknown roster` otherwise, and the sender repeats the announcement with the roster).
    #[prost(message, repeated, tag = "1")]
    pub roster: Vec<Member>,
    /// Roster index of the node that runs the round.
    #[prost(uint32, tag = "2")]
    pub root: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub statement: Vec<u8>,
    /// Names the verification hook that must approve the statement.
    #[prost(string, tag = "4")]
    pub purpose: String,
    /// Passed to the hook with the statement.
    #[prost(bytes = "vec", tag = "5")]
    pub extra: Vec<u8>,
    /// Roster indices the receiver asks in turn (empty for a leaf).
    #[prost(uint32, repeated, tag = "6")]
    pub children: Vec<u32>,
    /// How long the receiver waits for each child, in milliseconds.
    #[prost(uint64, tag = "7")]
    pub timeout_ms: u64,
    /// sha256 over the length-delimited encodings of the roster members.
    #[prost(bytes = "vec", tag = "8")]
    pub roster_id: Vec<u8>,
}

/// Node-to-node: the aggregate of the partials the receiver collected.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// Aggregate signature of the members in `mask` (empty when nobody signed).
    #[prost(bytes = "vec", tag = "1")]
    pub signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub mask: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    pub refused: Vec<Exclusion>,
    #[prost(message, repeated, tag = "4")]
    pub timed_out: Vec<Exclusion>,
    #[prost(message, repeated, tag = "5")]
    pub invalid: Vec<Exclusion>,
}

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
