//! Wire messages of the skipchain service: client requests at `/Skipchain/<Method>` and the
//! node-to-node `Store` / `GetBlocks` / `Latest` protocols (see proto/skipchain.proto).

use crate::crypto::sha256;
use crate::verify::skipchain::{ForwardLink, SkipBlock};

/// `/Skipchain/CreateChain`: a genesis block for `roster_toml`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateChain {
    #[prost(string, tag = "1")]
    pub roster_toml: String,
    #[prost(uint32, tag = "2")]
    pub base_height: u32,
    #[prost(uint32, tag = "3")]
    pub maximum_height: u32,
    /// Ed25519 keys (32 bytes each) allowed to append.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub owners: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
}

/// `/Skipchain/Append`: a new block, signed by an owner over [`append_message`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Append {
    #[prost(bytes = "vec", tag = "1")]
    pub genesis: Vec<u8>,
    /// Index of the block to create (latest + 1): prevents replays.
    #[prost(uint64, tag = "2")]
    pub index: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    /// A new roster (TOML) for this and later blocks; empty keeps the current one.
    #[prost(string, tag = "4")]
    pub new_roster_toml: String,
    #[prost(bytes = "vec", tag = "5")]
    pub owner: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    pub signature: Vec<u8>,
}

/// What an owner signs to append: sha256(tag ‖ genesis ‖ index ‖ sha256(data) ‖ new roster id).
pub fn append_message(genesis: &[u8], index: u64, data: &[u8], new_roster_id: Option<&[u8; 32]>) -> [u8; 32] {
    let data_hash = sha256(&[data]);
    let roster: &[u8] = new_roster_id.map(|r| r.as_slice()).unwrap_or(&[]);
    sha256(&[b"conode-skipchain-append-v1", genesis, &index.to_be_bytes(), &data_hash, roster])
}

/// `/Skipchain/GetBlock`: by hash, or by (genesis, index) when `hash` is empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBlock {
    #[prost(bytes = "vec", tag = "1")]
    pub hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub genesis: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub index: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockReply {
    #[prost(message, optional, tag = "1")]
    pub block: Option<SkipBlock>,
}

/// `/Skipchain/GetUpdateChain`: the shortest proof from `from` to the newest block.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetUpdateChain {
    #[prost(bytes = "vec", tag = "1")]
    pub from: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Proof {
    #[prost(message, repeated, tag = "1")]
    pub blocks: Vec<SkipBlock>,
}

/// A forward link with the level it sits at in its source block.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LevelLink {
    #[prost(uint32, tag = "1")]
    pub level: u32,
    #[prost(message, optional, tag = "2")]
    pub link: Option<ForwardLink>,
}

/// A block with the forward links that point to it (one per level below its height).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkedBlock {
    #[prost(message, optional, tag = "1")]
    pub block: Option<SkipBlock>,
    #[prost(message, repeated, tag = "2")]
    pub incoming: Vec<LevelLink>,
}

/// Peer `GetBlocks`: blocks `from_index..` of a chain, with their incoming links.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBlocks {
    #[prost(bytes = "vec", tag = "1")]
    pub genesis: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub from_index: u64,
    #[prost(uint32, tag = "3")]
    pub max: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Blocks {
    #[prost(message, repeated, tag = "1")]
    pub blocks: Vec<LinkedBlock>,
}

/// Peer `Latest`: the newest index a member holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Latest {
    #[prost(bytes = "vec", tag = "1")]
    pub genesis: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    #[prost(bool, tag = "3")]
    pub known: bool,
}

/// Extra data of a cosi round for a forward link: the proposed block and the owner's authorization.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Proposal {
    #[prost(message, optional, tag = "1")]
    pub block: Option<SkipBlock>,
    #[prost(uint32, tag = "2")]
    pub level: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub owner: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub owner_signature: Vec<u8>,
}
