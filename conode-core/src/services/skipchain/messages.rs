//! Wire messages of the skipchain service: client requests at `/Skipchain/<Method>` and the
//! node-to-node `Store` / `GetBlocks` / `Latest` protocols. The types are generated from
//! `proto/skipchain.proto` (see [`crate::wire`]; blocks and proofs are re-exported by
//! [`crate::verify::skipchain`] too); this module re-exports them with the append signature helper.

use crate::crypto::sha256;
use crate::verify::batch_tree::statement_of_path;

pub use crate::wire::skipchain::{
    Append, BlockReply, Blocks, CreateChain, Equivocation, FirstViewStatement, GetBlock, GetBlocks, GetUpdateChain,
    Latest, LevelLink, LinkedBlock, PrepareCertificate, PrepareEquivocation, Proof, Proposal, ProposalBatch, SlotQuery,
    SlotState,
};
pub use crate::wire::skipchain::{BlockItem, SubscribeBlocks};

/// What a roster signs to prepare a block: sha256(tag ‖ genesis ‖ index ‖ view ‖ block hash).
pub fn prepare_message(genesis: &[u8], index: u64, view: u64, block_hash: &[u8]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-prepare-v1", genesis, &index.to_be_bytes(), &view.to_be_bytes(), block_hash])
}

/// The statement a member of the roster `roster_id` signs of what it prepared in view 1 at
/// (genesis, index): the block `hash`, or nothing (and never will) for an empty hash:
/// sha256(tag ‖ genesis ‖ index ‖ roster id ‖ hash). It names its slot, so that a statement made
/// at another slot (or chain) cannot stand for one made at this one.
pub fn first_view_message(genesis: &[u8], index: u64, roster_id: &[u8; 32], hash: &[u8]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-first-view-v4", genesis, &index.to_be_bytes(), roster_id, hash])
}

/// What the roster `roster_id` signs to prepare `block_hash` at (genesis, index) in `view`: the
/// fast statement in a fast view 1 (see `Proposal.fast`), the prepare message otherwise.
pub fn view_message(genesis: &[u8], index: u64, roster_id: &[u8; 32], view: u64, fast: bool, hash: &[u8]) -> [u8; 32] {
    if fast {
        crate::verify::skipchain::ForwardLink::fast_message(hash, roster_id)
    } else {
        prepare_message(genesis, index, view, hash)
    }
}

/// What the member owning a view (2 or later) signs with its identity key to propose in it:
/// sha256(tag ‖ the prepare message).
pub fn proposer_message(prepare: &[u8; 32]) -> [u8; 32] {
    sha256(&[b"conode-skipchain-proposer-v1", prepare])
}

/// Domain of a batched prepare round's statement (see [`certified_statement`]).
pub const PREPARE_BATCH_DOMAIN: &[u8] = b"conode-skipchain-prepare-batch-v1";

/// The statement the roster `roster_id` signed for `cert` at (genesis, index): the prepare message
/// of its view and block (the fast statement of the block for a fast certificate, of view 1
/// only), or, for a certificate of a batched round, the batch statement that message, the
/// certificate's position and its path lead to (see [`crate::verify::batch_tree`]).
pub fn certified_statement(
    genesis: &[u8],
    index: u64,
    roster_id: &[u8; 32],
    cert: &PrepareCertificate,
) -> Result<[u8; 32], String> {
    let own = view_message(genesis, index, roster_id, cert.view, cert.fast, &cert.block_hash);
    let batched = !(cert.batch_size == 0 && cert.batch_index == 0 && cert.batch_path.is_empty());
    if cert.fast && (cert.view != 1 || batched) {
        return Err("a fast certificate is of view 1 and of one block".into());
    }
    if !batched {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_of_view_1_names_its_chain_slot_roster_and_block() {
        let base = first_view_message(b"chain", 3, &[1; 32], &[7; 32]);
        assert_ne!(base, first_view_message(b"other", 3, &[1; 32], &[7; 32]), "chain");
        assert_ne!(base, first_view_message(b"chain", 2, &[1; 32], &[7; 32]), "index");
        assert_ne!(base, first_view_message(b"chain", 3, &[2; 32], &[7; 32]), "roster");
        assert_ne!(base, first_view_message(b"chain", 3, &[1; 32], &[8; 32]), "block");
        assert_ne!(base, first_view_message(b"chain", 3, &[1; 32], &[]), "nothing");
        // Neither a fast statement nor a prepare message of the block.
        assert_ne!(base, crate::verify::skipchain::ForwardLink::fast_message(&[7; 32], &[1; 32]));
        assert_ne!(base, prepare_message(b"chain", 3, 1, &[7; 32]));
    }
}
