//! Wire messages of the skipchain service: client requests at `/Skipchain/<Method>` and the
//! node-to-node `Store` / `GetBlocks` / `Latest` protocols. The types are generated from
//! `proto/skipchain.proto` (see [`crate::wire`]; blocks and proofs are re-exported by
//! [`crate::verify::skipchain`] too); this module re-exports them with the append signature helper.

use crate::crypto::sha256;

pub use crate::wire::skipchain::{
    Append, BlockReply, Blocks, CreateChain, Equivocation, GetBlock, GetBlocks, GetUpdateChain, Latest, LevelLink,
    LinkedBlock, PrepareCertificate, PrepareEquivocation, Proof, Proposal, SlotQuery, SlotState,
};
pub use crate::wire::skipchain::{BlockItem, SubscribeBlocks};

/// What a roster signs to prepare a block: sha256(tag ‖ genesis ‖ index ‖ view ‖ block hash).
pub fn prepare_message(genesis: &[u8], index: u64, view: u64, block_hash: &[u8]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-prepare-v1", genesis, &index.to_be_bytes(), &view.to_be_bytes(), block_hash])
}

/// What an owner signs to append: sha256(tag ‖ genesis ‖ index ‖ sha256(data) ‖ new roster id).
pub fn append_message(genesis: &[u8], index: u64, data: &[u8], new_roster_id: Option<&[u8; 32]>) -> [u8; 32] {
    let data_hash = sha256(&[data]);
    let roster: &[u8] = new_roster_id.map(|r| r.as_slice()).unwrap_or(&[]);
    sha256(&[b"conode-skipchain-append-v1", genesis, &index.to_be_bytes(), &data_hash, roster])
}
