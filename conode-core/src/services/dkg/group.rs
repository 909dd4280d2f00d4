//! The output of a DKG that everyone may see: the group file, in the spirit of drand's
//! `group.toml` (threshold, period, genesis time and seed, scheme, beacon id, the members with their
//! share index, and the group's public polynomial). The hash of a DKG's group is the chain's genesis
//! seed; a group made by resharing (see [`Reshared`]) keeps the seed of the chain it continues, so
//! the chain hash does not change, and carries its own content hash beside it.

use crate::config::{NodeAddress, ServerIdentity};
use crate::crypto::threshold::{AnyPubPoly, KeyGroup};
use crate::crypto::{sha256, IdentityPublicKey};
use crate::verify::beacon::{is_default_beacon_id, ChainInfo, Scheme};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key group of a scheme's public keys (the signatures live in the other group).
pub fn key_group(scheme: Scheme) -> KeyGroup {
    if scheme.signatures_on_g1() {
        KeyGroup::G2
    } else {
        KeyGroup::G1
    }
}

/// A member of the group (a DKG participant) and its share index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupNode {
    pub index: u32,
    pub public: IdentityPublicKey,
    pub address: NodeAddress,
    pub description: String,
}

impl GroupNode {
    /// Enough of a roster entry to reach the member over the node network.
    pub fn server_identity(&self) -> ServerIdentity {
        ServerIdentity {
            address: self.address.clone(),
            public: self.public,
            description: self.description.clone(),
            url: None,
            services: BTreeMap::new(),
        }
    }
}

/// What a group made by resharing carries beside its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reshared {
    /// The genesis seed of the chain (from its first group), kept so that the chain hash stays.
    pub genesis_seed: [u8; 32],
    /// The first round this group produces (the rounds before are the previous group's).
    pub transition_round: u64,
}

/// The public result of a DKG (or of a resharing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub scheme: Scheme,
    pub beacon_id: String,
    pub period: u32,
    pub genesis_time: i64,
    pub threshold: u32,
    /// Participants, by share index.
    pub nodes: Vec<GroupNode>,
    /// Dealers whose polynomial makes up the group key.
    pub qualified: Vec<u32>,
    pub public_poly: AnyPubPoly,
    /// DKG (or resharing) session id.
    pub session: [u8; 32],
    /// Set when this group took over a running chain by resharing.
    pub reshare: Option<Reshared>,
}

#[derive(Serialize, Deserialize)]
struct RawGroup {
    #[serde(rename = "Threshold")]
    threshold: u32,
    #[serde(rename = "Period")]
    period: String,
    #[serde(rename = "GenesisTime")]
    genesis_time: i64,
    #[serde(rename = "GenesisSeed")]
    genesis_seed: String,
    #[serde(rename = "SchemeID")]
    scheme: String,
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ChainHash")]
    chain_hash: String,
    #[serde(rename = "Session")]
    session: String,
    /// Reshared groups only: the first round the group produces, and the hash of its content
    /// (the GenesisSeed being the chain's, from its first group).
    #[serde(rename = "TransitionRound", default, skip_serializing_if = "is_zero")]
    transition_round: u64,
    #[serde(rename = "GroupHash", default, skip_serializing_if = "String::is_empty")]
    group_hash: String,
    #[serde(rename = "Qualified")]
    qualified: Vec<u32>,
    #[serde(rename = "Nodes")]
    nodes: Vec<RawNode>,
    #[serde(rename = "PublicKey")]
    public_key: RawPublicKey,
}

#[derive(Serialize, Deserialize)]
struct RawNode {
    #[serde(rename = "Index")]
    index: u32,
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Description", default)]
    description: String,
}

#[derive(Serialize, Deserialize)]
struct RawPublicKey {
    #[serde(rename = "Coefficients")]
    coefficients: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Group {
    /// The group key (`C₀`), compressed.
    pub fn public_key(&self) -> Vec<u8> {
        self.public_poly.public_key_bytes()
    }

    /// The genesis seed: the content hash of the chain's first group (kept by resharing).
    pub fn genesis_seed(&self) -> [u8; 32] {
        match &self.reshare {
            Some(r) => r.genesis_seed,
            None => self.content_hash(),
        }
    }

    /// The first round this group produces (1 for a DKG's group).
    pub fn first_round(&self) -> u64 {
        self.reshare.map_or(1, |r| r.transition_round.max(1))
    }

    /// A hash of everything in the group file (drand's group hash, computed with sha256 instead of
    /// blake2b over our own member encoding); for a reshared group, its transition round too.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut parts: Vec<Vec<u8>> = vec![b"conode-beacon-group-v1".to_vec()];
        let mut nodes = self.nodes.clone();
        nodes.sort_by_key(|n| n.index);
        for n in &nodes {
            parts.push(n.index.to_le_bytes().to_vec());
            parts.push(n.public.as_bytes().to_vec());
            let a = n.address.to_string();
            parts.push((a.len() as u32).to_le_bytes().to_vec());
            parts.push(a.into_bytes());
        }
        parts.push(self.threshold.to_le_bytes().to_vec());
        parts.push((self.genesis_time as u64).to_le_bytes().to_vec());
        parts.push(self.period.to_le_bytes().to_vec());
        let coeffs = self.public_poly.to_bytes();
        let refs: Vec<&[u8]> = coeffs.iter().map(|c| c.as_slice()).collect();
        parts.push(sha256(&refs).to_vec());
        parts.push(self.scheme.id().as_bytes().to_vec());
        if !is_default_beacon_id(&self.beacon_id) {
            parts.push(self.beacon_id.as_bytes().to_vec());
        }
        parts.push(self.session.to_vec());
        if let Some(r) = &self.reshare {
            parts.push(b"reshared".to_vec());
            parts.push(r.transition_round.to_le_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        sha256(&refs)
    }

    /// What clients need to verify the chain (drand's chain info).
    pub fn chain_info(&self) -> ChainInfo {
        ChainInfo {
            public_key: self.public_key(),
            period: self.period,
            genesis_time: self.genesis_time,
            genesis_seed: self.genesis_seed().to_vec(),
            scheme: self.scheme,
            beacon_id: self.beacon_id.clone(),
        }
    }

    pub fn node(&self, index: u32) -> Option<&GroupNode> {
        self.nodes.iter().find(|n| n.index == index)
    }

    pub fn index_of(&self, key: &IdentityPublicKey) -> Option<u32> {
        self.nodes.iter().find(|n| &n.public == key).map(|n| n.index)
    }

    /// The group file (TOML).
    pub fn to_toml(&self) -> String {
        let raw = RawGroup {
            threshold: self.threshold,
            period: format!("{}s", self.period),
            genesis_time: self.genesis_time,
            genesis_seed: hex::encode(self.genesis_seed()),
            scheme: self.scheme.id().to_string(),
            id: self.beacon_id.clone(),
            chain_hash: self.chain_info().hash_hex(),
            session: hex::encode(self.session),
            transition_round: self.reshare.map_or(0, |r| r.transition_round),
            group_hash: if self.reshare.is_some() { hex::encode(self.content_hash()) } else { String::new() },
            qualified: self.qualified.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| RawNode {
                    index: n.index,
                    address: n.address.to_string(),
                    key: n.public.to_hex(),
                    description: n.description.clone(),
                })
                .collect(),
            public_key: RawPublicKey { coefficients: self.public_poly.to_bytes().iter().map(hex::encode).collect() },
        };
        toml::to_string(&raw).unwrap_or_default()
    }

    /// Parses and checks a group file (points, scheme, threshold, and that the stated seed and
    /// chain hash match the content).
    pub fn from_toml(text: &str) -> Result<Group, String> {
        let raw: RawGroup = toml::from_str(text).map_err(|e| format!("group file: {e}"))?;
        let scheme = Scheme::from_id(&raw.scheme).map_err(|e| e.to_string())?;
        let period: u32 = raw
            .period
            .strip_suffix('s')
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("group file: Period `{}` is not like \"30s\"", raw.period))?;
        let coeffs: Vec<Vec<u8>> = raw
            .public_key
            .coefficients
            .iter()
            .map(|c| hex::decode(c).map_err(|e| format!("group file: coefficient: {e}")))
            .collect::<Result<_, _>>()?;
        let public_poly =
            AnyPubPoly::from_bytes(key_group(scheme), &coeffs).map_err(|e| format!("group file: public key: {e}"))?;
        if public_poly.threshold() != raw.threshold as usize {
            return Err("group file: Threshold differs from the number of coefficients".into());
        }
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for n in &raw.nodes {
            nodes.push(GroupNode {
                index: n.index,
                public: IdentityPublicKey::from_hex(&n.key)
                    .map_err(|e| format!("group file: node {}: {e}", n.index))?,
                address: NodeAddress::parse(&n.address).map_err(|e| format!("group file: node {}: {e}", n.index))?,
                description: n.description.clone(),
            });
        }
        let session: [u8; 32] = hex::decode(&raw.session)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or("group file: Session is not 32 hex bytes")?;
        let mut g = Group {
            scheme,
            beacon_id: raw.id,
            period,
            genesis_time: raw.genesis_time,
            threshold: raw.threshold,
            nodes,
            qualified: raw.qualified,
            public_poly,
            session,
            reshare: None,
        };
        if raw.transition_round > 0 {
            let seed: [u8; 32] = hex::decode(&raw.genesis_seed)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or("group file: GenesisSeed is not 32 hex bytes")?;
            g.reshare = Some(Reshared { genesis_seed: seed, transition_round: raw.transition_round });
            if hex::encode(g.content_hash()) != raw.group_hash.to_lowercase() {
                return Err("group file: GroupHash does not match its content".into());
            }
        } else if !raw.group_hash.is_empty() {
            return Err("group file: GroupHash without TransitionRound".into());
        } else if hex::encode(g.genesis_seed()) != raw.genesis_seed.to_lowercase() {
            return Err("group file: GenesisSeed does not match its content".into());
        }
        if g.chain_info().hash_hex() != raw.chain_hash.to_lowercase() {
            return Err("group file: ChainHash does not match its content".into());
        }
        Ok(g)
    }
}

/// A group of `n` members with threshold `t` made from a real random polynomial (what a DKG hands
/// over), with every member's secret share: for tests of the group file and of beacon recovery.
#[cfg(test)]
pub(crate) fn test_group(scheme: Scheme, n: u32, t: u32) -> (Group, Vec<crate::crypto::threshold::Scalar>) {
    use crate::crypto::threshold::PriPoly;
    use crate::crypto::IdentityKeyPair;
    let poly = PriPoly::random(t as usize, &mut rand::rngs::OsRng);
    let group = Group {
        scheme,
        beacon_id: "default".into(),
        period: 3,
        genesis_time: 1_700_000_000,
        threshold: t,
        nodes: (0..n)
            .map(|i| GroupNode {
                index: i,
                public: IdentityKeyPair::generate().public(),
                address: NodeAddress::parse(&format!("tls://127.0.0.1:{}", 7000 + i)).unwrap(),
                description: format!("n{i}"),
            })
            .collect(),
        qualified: (0..n).collect(),
        public_poly: AnyPubPoly::commit(&poly, key_group(scheme)),
        session: [7; 32],
        reshare: None,
    };
    let shares = (0..n).filter_map(|i| poly.share(i).ok()).collect();
    (group, shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_file_roundtrip() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let (g, _) = test_group(scheme, 3, 2);
            let text = g.to_toml();
            assert!(text.contains("SchemeID = \"") && text.contains("[[Nodes]]"), "{text}");
            let back = Group::from_toml(&text).unwrap();
            assert_eq!(back, g);
            assert_eq!(back.chain_info().public_key.len(), scheme.public_key_len());
            let tampered = text.replace("GenesisTime = 1700000000", "GenesisTime = 1700000001");
            assert!(Group::from_toml(&tampered).unwrap_err().contains("GenesisSeed"));
            assert!(Group::from_toml("garbage").is_err());
        }
    }

    #[test]
    fn a_reshared_group_keeps_the_chain_seed_and_still_validates() {
        let (first, _) = test_group(Scheme::PedersenBlsChained, 4, 3);
        let (mut next, _) = test_group(Scheme::PedersenBlsChained, 5, 3);
        next.public_poly = first.public_poly.clone();
        next.reshare = Some(Reshared { genesis_seed: first.genesis_seed(), transition_round: 42 });
        assert_eq!(next.genesis_seed(), first.genesis_seed());
        assert_eq!(next.chain_info().hash(), first.chain_info().hash());
        assert_ne!(next.content_hash(), first.content_hash());
        assert_eq!(next.first_round(), 42);
        assert_eq!(first.first_round(), 1);
        let text = next.to_toml();
        assert!(text.contains("TransitionRound = 42") && text.contains("GroupHash"), "{text}");
        assert_eq!(Group::from_toml(&text).unwrap(), next);
        // The content is covered by GroupHash, the seed by ChainHash.
        let moved = text.replace("TransitionRound = 42", "TransitionRound = 43");
        assert!(Group::from_toml(&moved).unwrap_err().contains("GroupHash"));
        let seed = hex::encode(first.genesis_seed());
        let other_seed = text.replace(&seed, &hex::encode([9u8; 32]));
        assert!(Group::from_toml(&other_seed).unwrap_err().contains("ChainHash"));
        // A first group cannot claim a GroupHash.
        let first_text = first.to_toml().replace("Qualified", "GroupHash = \"00\"\nQualified");
        assert!(Group::from_toml(&first_text).is_err());
    }
}
