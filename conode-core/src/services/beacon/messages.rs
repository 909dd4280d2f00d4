//! Wire messages of the randomness beacon, hand-written prost structs mirrored in
//! `proto/beacon.proto`: the client API (`/Beacon/Init`, `/Beacon/DkgStatus`, `/Beacon/Latest`,
//! `/Beacon/Round`, `/Beacon/Info`) and the node-to-node `Partial` and `Sync` exchanges.
//! Decoding is bounded by the frame / WebSocket limits; lengths and counts are checked before use.

/// Most beacons sent in one sync reply.
pub const MAX_SYNC: u32 = 1000;
/// Longest roster text accepted by `/Beacon/Init`.
pub const MAX_ROSTER_TOML: usize = 1024 * 1024;

/// Peer protocol names inside the `Beacon` service.
pub mod protocol {
    pub const PARTIAL: &str = "Partial";
    pub const SYNC: &str = "Sync";
}

/// `/Beacon/Init`: run a DKG among a roster (this node leads) and start a chain.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InitRequest {
    /// Roster as TOML (`[[servers]]` entries); this node must be a member.
    #[prost(string, tag = "1")]
    pub roster_toml: String,
    /// drand scheme id; empty: `pedersen-bls-chained`.
    #[prost(string, tag = "2")]
    pub scheme: String,
    /// Seconds between rounds (≥ 1).
    #[prost(uint32, tag = "3")]
    pub period_secs: u32,
    /// 0: ⌊n/2⌋ + 1.
    #[prost(uint32, tag = "4")]
    pub threshold: u32,
    /// Length of each DKG phase; 0: 10 s.
    #[prost(uint64, tag = "5")]
    pub phase_timeout_ms: u64,
    /// UNIX time of round 1; 0: now + `genesis_delay_ms` (rounded up to a second).
    #[prost(int64, tag = "6")]
    pub genesis_time: i64,
    /// 0: four phases plus one period.
    #[prost(uint64, tag = "7")]
    pub genesis_delay_ms: u64,
    /// drand beacon id; empty: `default`.
    #[prost(string, tag = "8")]
    pub beacon_id: String,
}

/// A member left out, and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exclusion {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `/Beacon/Init` reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InitResponse {
    /// The group file.
    #[prost(string, tag = "1")]
    pub group_toml: String,
    /// drand's chain info JSON (what `/info` serves).
    #[prost(string, tag = "2")]
    pub info_json: String,
    #[prost(string, tag = "3")]
    pub chain_hash: String,
    #[prost(uint32, repeated, tag = "4")]
    pub qualified: Vec<u32>,
    /// Dealers disqualified, with the reason (the evidence stays in the nodes' transcripts).
    #[prost(message, repeated, tag = "5")]
    pub disqualified: Vec<Exclusion>,
    /// Members that did not take part.
    #[prost(message, repeated, tag = "6")]
    pub absent: Vec<Exclusion>,
    /// Participants that reported the same group as the leader (the leader included).
    #[prost(uint32, tag = "7")]
    pub confirmed: u32,
    #[prost(uint32, tag = "8")]
    pub participants: u32,
    /// Progress log of the leader.
    #[prost(string, repeated, tag = "9")]
    pub log: Vec<String>,
}

/// `/Beacon/DkgStatus` request (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DkgStatusRequest {}

/// Progress of the current or last DKG on the node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DkgStatusResponse {
    #[prost(string, tag = "1")]
    pub session: String,
    #[prost(string, tag = "2")]
    pub phase: String,
    #[prost(uint64, tag = "3")]
    pub elapsed_ms: u64,
    #[prost(bool, tag = "4")]
    pub finished: bool,
    #[prost(string, tag = "5")]
    pub error: String,
    #[prost(string, repeated, tag = "6")]
    pub log: Vec<String>,
}

/// `/Beacon/Latest` request (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LatestRequest {}

/// `/Beacon/Round` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RoundRequest {
    #[prost(uint64, tag = "1")]
    pub round: u64,
}

/// `/Beacon/Info` request (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {}

/// `/Beacon/Info` reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    /// drand's chain info JSON.
    #[prost(string, tag = "1")]
    pub info_json: String,
    #[prost(string, tag = "2")]
    pub group_toml: String,
}

/// One beacon (client replies and sync).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BeaconPacket {
    #[prost(uint64, tag = "1")]
    pub round: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
    /// Chained schemes: the previous signature (the genesis seed for round 1).
    #[prost(bytes = "vec", tag = "3")]
    pub previous_signature: Vec<u8>,
    /// sha256(signature) (informational; clients recompute it).
    #[prost(bytes = "vec", tag = "4")]
    pub randomness: Vec<u8>,
}

/// Node → node: this member's partial signature of a round.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialBeacon {
    #[prost(uint64, tag = "1")]
    pub round: u64,
    /// The previous signature the partial was made over (chained schemes).
    #[prost(bytes = "vec", tag = "2")]
    pub previous_signature: Vec<u8>,
    /// Share index of the signer.
    #[prost(uint32, tag = "3")]
    pub index: u32,
    /// Compressed partial signature.
    #[prost(bytes = "vec", tag = "4")]
    pub partial: Vec<u8>,
}

/// Reply to a partial: the beacon of that round when the receiver already has it, and the
/// receiver's latest round (a lagging sender then syncs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialReply {
    #[prost(message, optional, tag = "1")]
    pub beacon: Option<BeaconPacket>,
    #[prost(uint64, tag = "2")]
    pub latest_round: u64,
}

/// Node → node: "send me your beacons from `from_round` on".
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncRequest {
    #[prost(uint64, tag = "1")]
    pub from_round: u64,
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// Consecutive beacons starting at the requested round.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncReply {
    #[prost(message, repeated, tag = "1")]
    pub beacons: Vec<BeaconPacket>,
}
