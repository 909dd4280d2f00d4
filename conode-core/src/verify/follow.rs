//! Following a skipchain item by item (the `/Skipchain/Subscribe` stream): each new block is
//! accepted only when its hash matches its content, it belongs to the followed chain, it is the
//! next index, and the forward link that comes with it is signed by the previous block's roster.
//! Pure (no runtime), like the rest of `verify`, so light clients use it as is.

use super::cosi::Policy;
use super::skipchain::{verify_link, ForwardLink, ProofError, SkipBlock};

/// The state of a client following one chain: the newest block it verified.
#[derive(Clone, Debug)]
pub struct BlockFollower {
    genesis: Vec<u8>,
    last: Option<SkipBlock>,
    policy: Policy,
}

impl BlockFollower {
    /// Follows the chain `genesis` from its first block (the genesis block, whose hash is its id).
    pub fn from_genesis_id(genesis: &[u8]) -> Self {
        Self { genesis: genesis.to_vec(), last: None, policy: Policy::Default }
    }

    /// Follows on from `trusted` (a block verified before, e.g. the end of a proof).
    pub fn from_trusted(trusted: SkipBlock) -> Self {
        Self { genesis: trusted.chain_id().to_vec(), last: Some(trusted), policy: Policy::Default }
    }

    /// The id of the followed chain.
    pub fn genesis(&self) -> &[u8] {
        &self.genesis
    }

    /// The newest verified block.
    pub fn last(&self) -> Option<&SkipBlock> {
        self.last.as_ref()
    }

    /// The index the next item must have.
    pub fn next_index(&self) -> u64 {
        self.last.as_ref().map_or(0, |b| b.index + 1)
    }

    /// Verifies the next block with the link to it and makes it the newest one.
    pub fn accept(&mut self, block: SkipBlock, link: Option<&ForwardLink>) -> Result<&SkipBlock, ProofError> {
        block.check_self()?;
        if block.chain_id() != self.genesis.as_slice() {
            return Err(ProofError::WrongChain { index: block.index });
        }
        if block.index != self.next_index() {
            return Err(ProofError::Malformed(format!("expected block {}, got {}", self.next_index(), block.index)));
        }
        if let Some(prev) = &self.last {
            let link = link.ok_or(ProofError::MissingLink { from: prev.index, to: block.index })?;
            verify_link(prev, &block, link, self.policy)?;
        }
        Ok(self.last.insert(block))
    }
}
