//! Wire messages of the randomness beacon: the client API (`/Beacon/Init`, `/Beacon/DkgStatus`,
//! `/Beacon/Latest`, `/Beacon/Round`, `/Beacon/Info`) and the node-to-node `Partial` and `Sync`
//! exchanges. The types are generated from `proto/beacon.proto` (see [`crate::wire`]); this module
//! re-exports them with the limits and protocol names that go with them.
//! Decoding is bounded by the frame / WebSocket limits; lengths and counts are checked before use.

pub use crate::wire::beacon::SubscribeBeacons;
pub use crate::wire::beacon::{
    BeaconPacket, DkgStatusRequest, DkgStatusResponse, InfoRequest, InfoResponse, InitRequest, InitResponse,
    LatestRequest, PartialBeacon, PartialReply, RoundRequest, SyncReply, SyncRequest,
};
pub use crate::wire::common::Exclusion;

/// Most beacons sent in one sync reply.
pub const MAX_SYNC: u32 = 1000;
/// Longest roster text accepted by `/Beacon/Init`.
pub const MAX_ROSTER_TOML: usize = 1024 * 1024;

/// Peer protocol names inside the `Beacon` service.
pub mod protocol {
    pub const PARTIAL: &str = "Partial";
    pub const SYNC: &str = "Sync";
    /// A beacon pushed by one of its round's recoverers (payload `BeaconPacket`, empty reply).
    pub const RECOVERED: &str = "Recovered";
}
