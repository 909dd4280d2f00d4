//! Partial signatures of a round and the members' share keys that check them. A member needs `t`
//! valid partials to recover a beacon; checking each one with its own pairing as it arrives made
//! every member spend n−1 pairings per round. Instead partials are held unchecked (only their form
//! is checked on arrival), the beacon is recovered from `t` of them and verified once; each partial
//! is checked on its own only when that fails (to drop and report the bad one), or, for partials
//! that were not needed, a little after the round (see the beacon service).

use crate::services::dkg::Group;
use crate::verify::beacon::PreparedChain;
use std::collections::BTreeMap;

/// A partial held for a round.
#[derive(Clone)]
pub(crate) struct HeldPartial {
    /// The digest it claims to sign (a chained round's digest depends on the previous signature).
    pub digest: [u8; 32],
    pub partial: Vec<u8>,
    /// Checked against the sender's share key (our own partial is, by construction).
    pub checked: bool,
}

/// Partials received for one round, by share index.
pub(crate) type PartialsOfRound = BTreeMap<u32, HeldPartial>;

/// The members' public share keys, decoded once.
pub(crate) struct ShareKeys {
    prepared: BTreeMap<u32, PreparedChain>,
    signatures_on_g1: bool,
}

impl ShareKeys {
    pub fn new(group: &Group) -> Result<Self, String> {
        let mut prepared = BTreeMap::new();
        for n in &group.nodes {
            let pk = group.public_poly.public_share_bytes(n.index).map_err(|e| e.to_string())?;
            prepared.insert(n.index, PreparedChain::from_public_key(group.scheme, &pk).map_err(|e| e.to_string())?);
        }
        Ok(ShareKeys { prepared, signatures_on_g1: group.scheme.signatures_on_g1() })
    }

    /// Whether `partial` decodes as a point of the scheme's signature group (cheap: on the curve;
    /// the subgroup is checked when the partial is verified).
    pub fn decodes(&self, partial: &[u8]) -> bool {
        if self.signatures_on_g1 {
            blst::min_sig::Signature::from_bytes(partial).is_ok()
        } else {
            blst::min_pk::Signature::from_bytes(partial).is_ok()
        }
    }

    /// One partial on its own.
    pub fn check_one(&self, index: u32, digest: &[u8], partial: &[u8]) -> bool {
        self.prepared.get(&index).is_some_and(|k| k.verify_message(digest, partial).is_ok())
    }
}
