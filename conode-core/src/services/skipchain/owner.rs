//! What a chain's owner sends to append a block: built once here for every face (CLI, C,
//! Python, tests), so the signed message cannot differ between them.

use super::messages::{append_message, Append};
use super::service::{block_roster, SkipchainError};
use crate::config::Roster;
use crate::crypto::IdentityKeyPair;

impl Append {
    /// An append of `data` at `index` of the chain `genesis`, signed by `owner`. With
    /// `new_roster`, this block and the later ones are kept by that roster.
    pub fn signed(
        owner: &IdentityKeyPair,
        genesis: &[u8],
        index: u64,
        data: Vec<u8>,
        new_roster: Option<&Roster>,
    ) -> Result<Append, SkipchainError> {
        let roster_id = new_roster.map(block_roster).transpose()?.map(|r| r.id());
        let msg = append_message(genesis, index, &data, roster_id.as_ref());
        Ok(Append {
            genesis: genesis.to_vec(),
            index,
            data,
            new_roster_toml: new_roster.map(Roster::to_toml).unwrap_or_default(),
            owner: owner.public().as_bytes().to_vec(),
            signature: owner.sign(&msg).to_vec(),
        })
    }
}
