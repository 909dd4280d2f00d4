//! The light-client surface exported through uniffi to Kotlin and Swift: roster parsing and the pure
//! verifiers (collective signatures, skipchain proofs from a trusted block, drand beacons of both
//! the chained and the quicknet scheme). The blocking client that fetches from a conode is in
//! `light_client`. Nothing here runs a node.
//!
//! Conventions: message payloads, signatures, masks, proofs and randomness are bytes; keys, block
//! hashes and chain hashes are lowercase hex strings (as rosters, the CLI and drand print them).

use crate::checks::{self, CheckError};
use conode_core::client_api::ErrorCode;
use conode_core::config::COSI_SERVICE;
use conode_core::verify::beacon::{Beacon, ChainInfo};
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::SkipBlock;

/// Why a light-client call failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum LightError {
    /// The input could not be decoded (the message names the field).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The input decoded but does not verify.
    #[error("verification failed: {reason}")]
    VerificationFailed { reason: String },
    /// The conode could not be reached, timed out or answered something undecodable.
    #[error("network: {reason}")]
    Network { reason: String },
    /// The conode answered with an error (e.g. it does not know the chain). `code` is the
    /// client port's stable error code (`not_found`, `refused`, `threshold`, … see the README).
    #[error("conode error: {reason}")]
    ServerError { code: String, reason: String },
}

impl LightError {
    pub(crate) fn invalid(m: impl ToString) -> Self {
        LightError::InvalidInput { reason: m.to_string() }
    }
    pub(crate) fn network(m: impl ToString) -> Self {
        LightError::Network { reason: m.to_string() }
    }
    pub(crate) fn server(code: ErrorCode, m: impl ToString) -> Self {
        LightError::ServerError { code: code.as_str().to_string(), reason: m.to_string() }
    }
}

impl From<CheckError> for LightError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Roster(reason) | CheckError::Input(reason) => LightError::InvalidInput { reason },
            CheckError::Failed(reason) => LightError::VerificationFailed { reason },
        }
    }
}

/// A roster member as apps see it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RosterMember {
    /// `tls://host:port` of the node port.
    pub address: String,
    /// Hex Ed25519 identity key.
    pub public_key: String,
    pub description: String,
    /// Public URL of the client port, if the member advertises one.
    pub url: Option<String>,
    /// Hex BLS12-381 (G1) key used for collective signatures, if published.
    pub cosi_public_key: Option<String>,
}

/// Parses a roster (`[[servers]]` TOML, the concatenation of public.toml files), checking every key
/// and proof of possession.
#[uniffi::export]
pub fn parse_roster(roster_toml: String) -> Result<Vec<RosterMember>, LightError> {
    Ok(checks::roster(&roster_toml)?
        .servers
        .into_iter()
        .map(|s| RosterMember {
            address: s.address.to_string(),
            public_key: s.public.to_hex(),
            cosi_public_key: s.service_key(COSI_SERVICE).map(|k| k.to_hex()),
            description: s.description,
            url: s.url,
        })
        .collect())
}

/// Version of the conode library.
#[uniffi::export]
pub fn library_version() -> String {
    conode_core::VERSION.to_string()
}

/// A collective signature that verified.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CosiVerification {
    /// Roster indices of the members that signed.
    pub signers: Vec<u32>,
    /// How many signers the policy required.
    pub required: u32,
    pub roster_size: u32,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Verifies a collective (BLS-CoSi) signature: `signature` (96 bytes) is the aggregate signature of
/// `message` by the members of `roster_toml` set in `mask` (bit i = roster index i, LSB first), and
/// there are at least `threshold` of them (`null`/`nil`: the default `n − ⌊(n − 1) / 3⌋`).
/// Throws `VerificationFailed` when it does not verify, `InvalidInput` for a bad roster or threshold.
#[uniffi::export]
pub fn verify_collective_signature(
    roster_toml: String,
    message: Vec<u8>,
    signature: Vec<u8>,
    mask: Vec<u8>,
    threshold: Option<u32>,
) -> Result<CosiVerification, LightError> {
    let policy = Policy::from_threshold(threshold.map(|t| t as usize));
    let checked = checks::cosi(&roster_toml, &message, &signature, &mask, policy)?;
    Ok(CosiVerification {
        signers: checked.signers.into_iter().map(u32_of).collect(),
        required: u32_of(checked.required),
        roster_size: u32_of(checked.roster_size),
    })
}

/// A member of a skipchain block's roster.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BlockRosterMember {
    /// Hex Ed25519 identity key.
    pub public_key: String,
    /// Hex BLS12-381 (G1) collective-signing key.
    pub cosi_public_key: String,
    /// `tls://host:port`.
    pub address: String,
    pub description: String,
}

/// The newest block of a verified skipchain proof.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifiedBlock {
    pub index: u64,
    /// Hex block hash.
    pub hash: String,
    /// Hex genesis id of the chain.
    pub genesis: String,
    pub data: Vec<u8>,
    /// The roster that holds this block (and signs its forward links).
    pub roster: Vec<BlockRosterMember>,
    /// Number of forward links the proof followed from the trusted block.
    pub hops: u32,
}

pub(crate) fn verified_block(block: SkipBlock, hops: usize) -> VerifiedBlock {
    let roster = block
        .roster
        .as_ref()
        .map(|r| {
            r.members
                .iter()
                .map(|m| BlockRosterMember {
                    public_key: hex::encode(&m.identity),
                    cosi_public_key: hex::encode(&m.cosi_key),
                    address: m.address.clone(),
                    description: m.description.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    VerifiedBlock {
        index: block.index,
        hash: hex::encode(&block.hash),
        genesis: hex::encode(block.chain_id()),
        data: block.data,
        roster,
        hops: u32_of(hops),
    }
}

/// Verifies a skipchain proof (the protobuf `Proof` of `/Skipchain/GetUpdateChain`) that starts at
/// the trusted block `trusted_hash` (hex: the genesis id, or any block already verified), each block
/// linked to the next by a forward link collectively signed by the earlier block's roster.
/// Returns the newest block.
#[uniffi::export]
pub fn verify_skipchain_proof(trusted_hash: String, proof: Vec<u8>) -> Result<VerifiedBlock, LightError> {
    let trusted = checks::hash_hex(&trusted_hash, "trusted hash")?;
    let checked = checks::skipchain(&trusted, &proof)?;
    Ok(verified_block(checked.latest, checked.hops))
}

/// The description of a drand chain: everything needed to verify its beacons.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DrandChainInfo {
    /// Hex group public key (G1 for `pedersen-*`, G2 for `bls-unchained-*`).
    pub public_key: String,
    /// Seconds between rounds.
    pub period: u32,
    /// UNIX time (seconds) of round 1.
    pub genesis_time: i64,
    /// Hex genesis seed.
    pub genesis_seed: String,
    /// drand scheme id, e.g. `pedersen-bls-chained` or `bls-unchained-g1-rfc9380`.
    pub scheme: String,
    pub beacon_id: String,
    /// Hex chain hash: pin it to recognize the chain later.
    pub chain_hash: String,
}

pub(crate) fn chain_record(info: &ChainInfo) -> DrandChainInfo {
    DrandChainInfo {
        public_key: hex::encode(&info.public_key),
        period: info.period,
        genesis_time: info.genesis_time,
        genesis_seed: hex::encode(&info.genesis_seed),
        scheme: info.scheme.id().to_string(),
        beacon_id: info.beacon_id.clone(),
        chain_hash: info.hash_hex(),
    }
}

/// A beacon that verified.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifiedBeacon {
    pub round: u64,
    pub signature: Vec<u8>,
    /// The previous round's signature (chained schemes).
    pub previous_signature: Option<Vec<u8>>,
    /// sha256(signature): the round's random value.
    pub randomness: Vec<u8>,
    /// Hex chain hash of the chain it verified under.
    pub chain_hash: String,
}

pub(crate) fn beacon_record(info: &ChainInfo, beacon: Beacon) -> VerifiedBeacon {
    VerifiedBeacon {
        round: beacon.round,
        randomness: beacon.randomness().to_vec(),
        signature: beacon.signature,
        previous_signature: beacon.previous_signature,
        chain_hash: info.hash_hex(),
    }
}

/// Parses drand's `/info` JSON (v1 or v2 shape), checking that its chain hash matches its fields and
/// that the group key is valid.
#[uniffi::export]
pub fn parse_chain_info(chain_info_json: String) -> Result<DrandChainInfo, LightError> {
    Ok(chain_record(&checks::chain_info(&chain_info_json)?))
}

/// Verifies a beacon given as drand JSON (`/public/{round}`) under the chain described by
/// `chain_info_json` (drand's `/info`).
#[uniffi::export]
pub fn verify_beacon(chain_info_json: String, beacon_json: String) -> Result<VerifiedBeacon, LightError> {
    let info = checks::chain_info(&chain_info_json)?;
    let beacon = checks::beacon_json(&info, &beacon_json)?;
    Ok(beacon_record(&info, beacon))
}

/// Verifies the signature of `round` under the chain described by `chain_info_json`;
/// `previous_signature` is required by chained schemes and ignored by unchained ones.
#[uniffi::export]
pub fn verify_beacon_round(
    chain_info_json: String,
    round: u64,
    signature: Vec<u8>,
    previous_signature: Option<Vec<u8>>,
) -> Result<VerifiedBeacon, LightError> {
    let info = checks::chain_info(&chain_info_json)?;
    let beacon = checks::beacon_round(&info, round, &signature, previous_signature.as_deref())?;
    Ok(beacon_record(&info, beacon))
}

/// The verdict on one beacon of a batch.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BeaconVerdict {
    pub round: u64,
    pub verified: bool,
    /// Why it does not verify (None when it does).
    pub error: Option<String>,
}

/// Verifies many beacons of one chain at once (a light client catching up): `beacons_json` is a
/// JSON array of drand `/public/{round}` objects. Batch verification gives the same verdicts as
/// `verify_beacon` on each, several times faster for long runs. Fails only when an input cannot
/// be read; forgeries are reported per beacon.
#[uniffi::export]
pub fn verify_beacons(chain_info_json: String, beacons_json: String) -> Result<Vec<BeaconVerdict>, LightError> {
    let info = checks::chain_info(&chain_info_json)?;
    Ok(checks::beacons_json(&info, &beacons_json)?
        .into_iter()
        .map(|(round, v)| BeaconVerdict { round, verified: v.is_ok(), error: v.err() })
        .collect())
}
