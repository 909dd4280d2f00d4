//! What a light client exchanges with a conode's skipchain service, without the runtime: the
//! `/Skipchain/GetUpdateChain` request and its `Proof` reply (generated from
//! `proto/skipchain.proto`; the same types `services::skipchain::messages` re-exports), and the
//! bounded decoding of a proof into the blocks [`super::skipchain::verify_proof`] checks.

use super::skipchain::{ProofError, SkipBlock, MAX_BLOCK_BYTES};
use prost::Message;

/// `GetUpdateChain` asks for the shortest proof from block `from` (a trusted block, usually the
/// genesis) to the newest block of its chain; the reply is a `Proof`: blocks in chain order, the
/// first being `from`, each linked to the next.
pub use crate::wire::skipchain::{GetUpdateChain, Proof};

/// Most blocks a proof may hold: one hop per level, at most 32 levels, for the longest chains.
pub const MAX_PROOF_BLOCKS: usize = 4096;
/// Largest encoded proof accepted by [`decode_proof`].
pub const MAX_PROOF_BYTES: usize = 4 * MAX_BLOCK_BYTES;

/// Decodes an encoded [`Proof`], bounded in size and block count. Verification is separate.
pub fn decode_proof(bytes: &[u8]) -> Result<Vec<SkipBlock>, ProofError> {
    if bytes.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed(format!("proof of {} bytes exceeds {MAX_PROOF_BYTES}", bytes.len())));
    }
    let proof = Proof::decode(bytes).map_err(|e| ProofError::Malformed(format!("undecodable proof: {e}")))?;
    if proof.blocks.len() > MAX_PROOF_BLOCKS {
        return Err(ProofError::Malformed(format!(
            "proof of {} blocks exceeds {MAX_PROOF_BLOCKS}",
            proof.blocks.len()
        )));
    }
    if proof.blocks.is_empty() {
        return Err(ProofError::Empty);
    }
    Ok(proof.blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_bounds() {
        let block = SkipBlock { index: 3, data: b"x".to_vec(), ..Default::default() };
        let bytes = Proof { blocks: vec![block.clone()] }.encode_to_vec();
        assert_eq!(decode_proof(&bytes).unwrap(), vec![block]);
        assert_eq!(decode_proof(&Proof::default().encode_to_vec()), Err(ProofError::Empty));
        assert!(matches!(decode_proof(&[0x0a, 0xff, 0xff]), Err(ProofError::Malformed(_))));
        let req = GetUpdateChain { from: vec![1; 32] };
        assert_eq!(GetUpdateChain::decode(req.encode_to_vec().as_slice()).unwrap(), req);
    }
}
