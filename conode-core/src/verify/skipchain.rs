//! Skipchain blocks and light-client proofs, pure (no runtime). A block is accepted by its roster and
//! linked forward at several levels by collective signatures of the *previous* block's roster, so a
//! client holding only a trusted genesis id can jump to the newest block in O(log n) hops.
//!
//! Heights follow cothority: block i has height 1 + (how often `base_height` divides i), capped at
//! `maximum_height`; the genesis has the maximum height. Back link h of block i points to block
//! `i - base^h`; forward link h of block j points to block `j + base^h`.

use crate::crypto::{sha256, BlsPublicKey, IdentityPublicKey};
use crate::verify::batch_tree::statement_of_path;
use crate::verify::cosi::{self, Policy};
use prost::Message;

/// The block types, generated from `proto/skipchain.proto` (see [`crate::wire`]).
pub use crate::wire::skipchain::{BlockRoster, CollectiveSignature, ForwardLink, RosterEntry, SkipBlock};

impl BlockRoster {
    /// Id of the roster: sha256 over every member's identity and cosi key, in order.
    pub fn id(&self) -> [u8; 32] {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(self.members.len() * 2);
        for m in &self.members {
            parts.push(&m.identity);
            parts.push(&m.cosi_key);
        }
        sha256(&parts)
    }

    /// Decoded cosi keys (each checked to be a valid G1 point).
    pub fn cosi_keys(&self) -> Result<Vec<BlsPublicKey>, ProofError> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                BlsPublicKey::from_bytes(&m.cosi_key)
                    .map_err(|e| ProofError::Malformed(format!("roster member {i} cosi key: {e}")))
            })
            .collect()
    }

    /// Decoded identity keys.
    pub fn identities(&self) -> Result<Vec<IdentityPublicKey>, ProofError> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                IdentityPublicKey::from_bytes(&m.identity)
                    .map_err(|e| ProofError::Malformed(format!("roster member {i} identity: {e}")))
            })
            .collect()
    }
}

/// `ForwardLink::format` of a link whose statement names its source and target
/// ([`ForwardLink::message`]): the default, absent on the wire, the format of every older link.
pub const LINK_FORMAT_V1: u32 = 0;
/// `ForwardLink::format` of a link whose statement names only its target
/// ([`ForwardLink::commit_message`]): one collective signature serves every level of a block
/// whose source blocks share a roster.
pub const LINK_FORMAT_V2: u32 = 2;
/// `ForwardLink::format` of a link signed in a round that served several blocks (of different
/// chains) at once: the roster signed the root of their v2 statements' Merkle tree
/// ([`crate::verify::batch_tree`]), and the link holds its statement's position and path.
pub const LINK_FORMAT_V3: u32 = 3;
/// `ForwardLink::format` of a link that is the view-1 prepare of its target signed by every member
/// of the roster that prepared it ([`ForwardLink::fast_message`]): no other block can be committed
/// at that index, so the append needed one round instead of two. Valid only with a full mask, and
/// only from a source block whose roster is that roster (the statement names it).
pub const LINK_FORMAT_V4: u32 = 4;
/// Domain of the v4 statement: its preimage (24 + 32 + 32 = 88 bytes) has the length of no v1 (64
/// or 96), v2 (58) or v3 (72) one.
const FAST_DOMAIN: &[u8] = b"conode-skipchain-fast-v4";
/// Domain of the v2 statement. Its preimage (26 + 32 bytes) never has the length of a v1 one (64
/// or 96 bytes, the endpoints being checked block hashes), so no v1 signature is a v2 one.
const COMMIT_V2_DOMAIN: &[u8] = b"conode-skipchain-commit-v2";
/// Domain of the v3 statement: it differs from the v2 domain at its 25th byte, and its preimage
/// (32 + 8 + 32 = 72 bytes) has the length of no v1 (64 or 96) or v2 (58) one.
pub const COMMIT_BATCH_DOMAIN: &[u8] = b"conode-skipchain-commit-batch-v3";

impl ForwardLink {
    /// What the roster signs in a v1 link: sha256(From ‖ To [‖ NewRoster id]).
    pub fn message(from: &[u8], to: &[u8], new_roster: Option<&[u8]>) -> [u8; 32] {
        match new_roster {
            Some(r) => sha256(&[from, to, r]),
            None => sha256(&[from, to]),
        }
    }

    /// What the roster signs in a v2 link to the block `to` (its hash):
    /// sha256("conode-skipchain-commit-v2" ‖ To). The target's hash covers its chain, index,
    /// roster and back links, so the statement commits to the block's place in the chain.
    pub fn commit_message(to: &[u8]) -> [u8; 32] {
        sha256(&[COMMIT_V2_DOMAIN, to])
    }

    /// What every member of the roster `roster_id` signs to prepare the block `to` in view 1, and
    /// the statement of a v4 link to it from a block with that roster:
    /// sha256("conode-skipchain-fast-v4" ‖ To ‖ roster id).
    pub fn fast_message(to: &[u8], roster_id: &[u8; 32]) -> [u8; 32] {
        sha256(&[FAST_DOMAIN, to, roster_id])
    }

    /// The policy a link is verified under: the caller's, but all of the source roster's `members`
    /// for a v4 link (a view-1 prepare is final only when every member signed it).
    pub fn policy(&self, policy: Policy, members: usize) -> Policy {
        match self.format {
            LINK_FORMAT_V4 => Policy::Threshold(members.max(1)),
            _ => policy,
        }
    }

    /// What the roster signed for this v3 link: the batch statement its target's v2 statement,
    /// position and path lead to (see [`crate::verify::batch_tree`]); or why the link's batch
    /// fields cannot be one.
    pub fn batch_message(&self) -> Result<[u8; 32], String> {
        statement_of_path(
            COMMIT_BATCH_DOMAIN,
            &Self::commit_message(&self.to),
            self.batch_index as usize,
            self.batch_size as usize,
            &self.batch_path,
        )
    }
}

/// The level at which `b` links back to `a`: `b.back_link_ids[level] == a.hash` with
/// `base_height^level == b.index − a.index`.
pub fn back_link_level(a: &SkipBlock, b: &SkipBlock) -> Option<usize> {
    let distance = b.index.checked_sub(a.index).filter(|d| *d > 0)?;
    (0..b.back_link_ids.len())
        .find(|&level| level_distance(b.base_height, level) == distance)
        .filter(|&level| b.back_link_ids[level] == a.hash)
}

/// The statement `link` from `a` to `b` must be signed over (its endpoints already checked to be
/// `a` and `b`), or why the link cannot be valid in its format.
pub(crate) fn link_statement(a: &SkipBlock, b: &SkipBlock, link: &ForwardLink) -> Result<[u8; 32], String> {
    if link.format != LINK_FORMAT_V3 && (!link.batch_path.is_empty() || link.batch_index != 0 || link.batch_size != 0) {
        return Err(format!("a link of format {} carries a batch", link.format));
    }
    let linked_back = || {
        back_link_level(a, b)
            .map(|_| ())
            .ok_or_else(|| "the target block does not link back to the source block".to_string())
    };
    match link.format {
        LINK_FORMAT_V1 => Ok(ForwardLink::message(&link.from, &link.to, link.new_roster.as_deref())),
        LINK_FORMAT_V2 => linked_back().map(|_| ForwardLink::commit_message(&link.to)),
        LINK_FORMAT_V3 => linked_back().and_then(|_| link.batch_message()),
        LINK_FORMAT_V4 => {
            let roster = a.roster.as_ref().ok_or_else(|| "source block has no roster".to_string())?;
            linked_back().map(|_| ForwardLink::fast_message(&link.to, &roster.id()))
        }
        other => Err(format!("unknown link format {other}")),
    }
}

/// Largest block accepted by decoders.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;

/// The height of block `index` (genesis: `maximum_height`).
pub fn height_for(index: u64, base_height: u32, maximum_height: u32) -> u32 {
    let max = maximum_height.max(1);
    if index == 0 {
        return max;
    }
    if base_height < 2 {
        return 1;
    }
    let base = u64::from(base_height);
    let mut height = 1;
    let mut step = base;
    while height < max && index.is_multiple_of(step) {
        height += 1;
        match step.checked_mul(base) {
            Some(s) => step = s,
            None => break,
        }
    }
    height
}

/// `base^level`, saturating.
pub fn level_distance(base_height: u32, level: usize) -> u64 {
    u64::from(base_height.max(1)).saturating_pow(level as u32)
}

impl SkipBlock {
    /// The genesis id of the chain this block belongs to.
    pub fn chain_id(&self) -> &[u8] {
        if self.index == 0 {
            &self.hash
        } else {
            &self.genesis_id
        }
    }

    /// Recomputes the hash over the block's content (including the roster's service keys).
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut parts: Vec<Vec<u8>> = vec![
            b"conode-skipblock-v1".to_vec(),
            self.index.to_be_bytes().to_vec(),
            self.height.to_be_bytes().to_vec(),
            self.maximum_height.to_be_bytes().to_vec(),
            self.base_height.to_be_bytes().to_vec(),
            (self.back_link_ids.len() as u64).to_be_bytes().to_vec(),
        ];
        for b in &self.back_link_ids {
            parts.push((b.len() as u64).to_be_bytes().to_vec());
            parts.push(b.clone());
        }
        parts.push((self.genesis_id.len() as u64).to_be_bytes().to_vec());
        parts.push(self.genesis_id.clone());
        parts.push((self.data.len() as u64).to_be_bytes().to_vec());
        parts.push(self.data.clone());
        let roster = self.roster.clone().unwrap_or_default();
        parts.push((roster.members.len() as u64).to_be_bytes().to_vec());
        for m in &roster.members {
            parts.push(m.identity.clone());
            parts.push(m.cosi_key.clone());
        }
        parts.push((self.owners.len() as u64).to_be_bytes().to_vec());
        for o in &self.owners {
            parts.push(o.clone());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        sha256(&refs)
    }

    /// Decodes a block, bounded in size.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(ProofError::Malformed(format!("block of {} bytes exceeds {MAX_BLOCK_BYTES}", bytes.len())));
        }
        SkipBlock::decode(bytes).map_err(|e| ProofError::Malformed(format!("undecodable block: {e}")))
    }

    /// Checks the block's own consistency: hash, height, back-link count, roster presence.
    pub fn check_self(&self) -> Result<(), ProofError> {
        if self.compute_hash().as_slice() != self.hash.as_slice() {
            return Err(ProofError::BadHash { index: self.index });
        }
        if self.height != height_for(self.index, self.base_height, self.maximum_height) {
            return Err(ProofError::Malformed(format!(
                "block {}: height {} does not follow base/maximum height",
                self.index, self.height
            )));
        }
        let expected_back = if self.index == 0 { 0 } else { self.height as usize };
        if self.back_link_ids.len() != expected_back {
            return Err(ProofError::Malformed(format!(
                "block {}: {} back links, expected {expected_back}",
                self.index,
                self.back_link_ids.len()
            )));
        }
        if self.roster.as_ref().is_none_or(|r| r.members.is_empty()) {
            return Err(ProofError::Malformed(format!("block {} has no roster", self.index)));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("block {index}: hash does not match its content")]
    BadHash { index: u64 },
    #[error("proof does not start at the trusted block")]
    WrongStart,
    #[error("block {index} belongs to another chain")]
    WrongChain { index: u64 },
    #[error("no forward link from block {from} to block {to}")]
    MissingLink { from: u64, to: u64 },
    #[error("forward link from block {from} to block {to}: {reason}")]
    BadLink { from: u64, to: u64, reason: String },
    #[error("empty proof")]
    Empty,
}

/// Verifies a proof: blocks in order, the first being the trusted block (`trusted_hash`), each
/// linked to the next by a forward link signed by the earlier block's roster under `policy`.
/// Returns the last (newest) block.
pub fn verify_proof<'a>(
    trusted_hash: &[u8],
    proof: &'a [SkipBlock],
    policy: Policy,
) -> Result<&'a SkipBlock, ProofError> {
    let first = proof.first().ok_or(ProofError::Empty)?;
    first.check_self()?;
    if first.hash.as_slice() != trusted_hash {
        return Err(ProofError::WrongStart);
    }
    let chain = first.chain_id().to_vec();
    for pair in proof.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        b.check_self()?;
        if b.genesis_id != chain {
            return Err(ProofError::WrongChain { index: b.index });
        }
        if b.index <= a.index {
            return Err(ProofError::Malformed(format!("block {} follows block {}", b.index, a.index)));
        }
        let link = a
            .forward_links
            .iter()
            .find(|l| l.to == b.hash)
            .ok_or(ProofError::MissingLink { from: a.index, to: b.index })?;
        verify_link(a, b, link, policy)?;
    }
    Ok(proof.last().unwrap_or(first))
}

/// Verifies one forward link from `a` to `b`.
pub fn verify_link(a: &SkipBlock, b: &SkipBlock, link: &ForwardLink, policy: Policy) -> Result<(), ProofError> {
    let keys = a.roster.as_ref().map(|r| r.cosi_keys()).transpose()?.unwrap_or_default();
    verify_link_with_keys(a, b, link, policy, &keys)
}

/// [`verify_link`] with the source roster's cosi keys already decoded and checked (`keys`, in
/// roster order), as a node that keeps checked rosters has them.
pub fn verify_link_with_keys(
    a: &SkipBlock,
    b: &SkipBlock,
    link: &ForwardLink,
    policy: Policy,
    keys: &[BlsPublicKey],
) -> Result<(), ProofError> {
    let bad = |reason: String| ProofError::BadLink { from: a.index, to: b.index, reason };
    if link.from != a.hash || link.to != b.hash {
        return Err(bad("link endpoints do not match the blocks".into()));
    }
    let a_roster = a.roster.as_ref().ok_or_else(|| bad("source block has no roster".into()))?;
    let b_roster = b.roster.as_ref().ok_or_else(|| bad("target block has no roster".into()))?;
    let (a_id, b_id) = (a_roster.id(), b_roster.id());
    let expected_new = (a_id != b_id).then_some(b_id);
    if link.new_roster.as_deref() != expected_new.as_ref().map(|r| r.as_slice()) {
        return Err(bad("roster change not declared in the link".into()));
    }
    let sig = link.signature.as_ref().ok_or_else(|| bad("unsigned".into()))?;
    if keys.len() != a_roster.members.len() {
        return Err(bad("keys do not match the source roster".into()));
    }
    let msg = link_statement(a, b, link).map_err(bad)?;
    let policy = link.policy(policy, keys.len());
    cosi::verify(&msg, &sig.signature, &sig.mask, keys, policy).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_follow_cothority() {
        let h: Vec<u32> = (0..10).map(|i| height_for(i, 2, 4)).collect();
        assert_eq!(h, vec![4, 1, 2, 1, 3, 1, 2, 1, 4, 1]);
        assert_eq!(height_for(16, 2, 4), 4);
        assert_eq!(height_for(27, 3, 10), 4);
        assert_eq!(height_for(5, 1, 4), 1);
        assert_eq!(level_distance(4, 3), 64);
    }

    #[test]
    fn decoding_garbage_is_an_error() {
        assert!(SkipBlock::decode_bounded(&[0xff, 0xff, 0xff]).is_err());
    }
}
