//! Wire messages of the skipchain service: client requests at `/Skipchain/<Method>` and the
//! node-to-node `Store` / `GetBlocks` / `Latest` protocols. The types are generated from
//! `proto/skipchain.proto` (see [`crate::wire`]; blocks and proofs are re-exported by
//! [`crate::verify::skipchain`] too); this module re-exports them with the append signature helper.

use crate::crypto::sha256;
use crate::verify::batch_tree::statement_of_path;

pub use crate::wire::skipchain::{
    Append, BlockReply, Blocks, CreateChain, Equivocation, GetBlock, GetBlocks, GetUpdateChain, Latest, LevelLink,
    LinkedBlock, PrepareCertificate, PrepareEquivocation, Proof, Proposal, ProposalBatch, SlotQuery, SlotState,
};
pub use crate::wire::skipchain::{BlockItem, SubscribeBlocks};

/// What a roster signs to prepare a block: sha256(tag ‖ genesis ‖ index ‖ view ‖ block hash).
pub fn prepare_message(genesis: &[u8], index: u64, view: u64, block_hash: &[u8]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-prepare-v1", genesis, &index.to_be_bytes(), &view.to_be_bytes(), block_hash])
}

/// What the member owning a view (2 or later) signs with its identity key to propose in it:
/// sha256(tag ‖ the prepare message).
pub fn proposer_message(prepare: &[u8; 32]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-proposer-v1", prepare])
}

/// Domain of a batched prepare round's statement (see [`certified_statement`]).
pub const PREPARE_BATCH_DOMAIN: &[u8] = b"conode-skipchain-prepare-batch-v1";

/// The statement the roster signed for `cert` at (genesis, index): the prepare message of its
/// view and block, or, for a certificate of a batched round, the batch statement that message,
/// the certificate's position and its path lead to (see [`crate::verify::batch_tree`]).
pub fn certified_statement(genesis: &[u8], index: u64, cert: &PrepareCertificate) -> Result<[u8; 32], String> {
    let own = prepare_message(genesis, index, cert.view, &cert.block_hash);
    if cert.batch_size == 0 && cert.batch_index == 0 && cert.batch_path.is_empty() {
        Ok(own)
    } else {
        let (i, n) = (cert.batch_index as usize, cert.batch_size as usize);
        statement_of_path(PREPARE_BATCH_DOMAIN, &own, i, n, &cert.batch_path)
    }
}

/// What an owner signs to append: sha256(tag ‖ genesis ‖ index ‖ sha256(data) ‖ new roster id).
pub fn append_message(genesis: &[u8], index: u64, data: &[u8], new_roster_id: Option<&[u8; 32]>) -> [u8; 32] {
    let data_hash = sha256(&[data]);
    let roster: &[u8] = new_roster_id.map(|r| r.as_slice()).unwrap_or(&[]);
    sha256(&[b"conode-skipchain-append-v1", genesis, &index.to_be_bytes(), &data_hash, roster])
}
