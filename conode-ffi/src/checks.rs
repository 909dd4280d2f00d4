//! The verifier calls shared by the C exports and the uniffi light surface: decode the inputs, run
//! conode-core's pure verifiers (`conode_core::verify`), and sort every failure into a bad roster, a
//! malformed input, or an input that decoded but does not verify — so both front doors agree on what
//! is an error of the caller and what is a forgery.

use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::BlsPublicKey;
use conode_core::verify::beacon::{verify_beacons, Beacon, BeaconError, ChainInfo, PreparedChain};
use conode_core::verify::cosi::{self, CosiVerifyError, Mask, Policy};
use conode_core::verify::skipchain::{verify_proof, SkipBlock};
use conode_core::verify::skipchain_wire::decode_proof;
use std::path::Path;

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckError {
    /// The roster was rejected (the message names the field).
    Roster(String),
    /// An input could not be decoded, or an argument is out of range.
    Input(String),
    /// The input decoded but does not verify.
    Failed(String),
}

impl CheckError {
    pub fn message(&self) -> &str {
        match self {
            CheckError::Roster(m) | CheckError::Input(m) | CheckError::Failed(m) => m,
        }
    }
}

/// Parses a roster (`[[servers]]` TOML), checking every key and proof of possession.
pub(crate) fn roster(roster_toml: &str) -> Result<Roster, CheckError> {
    Roster::from_toml_str(Path::new("roster"), roster_toml).map_err(|e| CheckError::Roster(e.to_string()))
}

/// The members' collective-signing keys in roster order; every member must publish one.
pub(crate) fn cosi_keys(roster: &Roster) -> Result<Vec<BlsPublicKey>, CheckError> {
    roster.service_keys(COSI_SERVICE).map_err(|e| CheckError::Roster(format!("roster: {e}")))
}

/// What a verified collective signature tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CosiChecked {
    /// Roster indices of the signers.
    pub signers: Vec<usize>,
    /// Signers the policy required.
    pub required: usize,
    pub roster_size: usize,
}

/// Verifies a collective signature of `message` by `roster_toml`'s members under `policy`.
pub(crate) fn cosi(
    roster_toml: &str,
    message: &[u8],
    signature: &[u8],
    mask: &[u8],
    policy: Policy,
) -> Result<CosiChecked, CheckError> {
    let keys = cosi_keys(&roster(roster_toml)?)?;
    let n = keys.len();
    cosi::verify(message, signature, mask, &keys, policy).map_err(|e| match e {
        CosiVerifyError::BadPolicy(_) | CosiVerifyError::EmptyRoster => CheckError::Input(e.to_string()),
        e => CheckError::Failed(format!("collective signature: {e}")),
    })?;
    let required = policy.required(n).map_err(|e| CheckError::Input(e.to_string()))?;
    let signers = Mask::from_bytes(n, mask).map_err(|e| CheckError::Failed(e.to_string()))?.indices();
    Ok(CosiChecked { signers, required, roster_size: n })
}

/// A verified skipchain proof: its newest block and the number of forward links followed.
#[derive(Debug, Clone)]
pub(crate) struct ProofChecked {
    pub latest: SkipBlock,
    pub hops: usize,
}

/// A 32-byte hash given as hex (block hashes, genesis ids).
pub(crate) fn hash_hex(hex_str: &str, what: &str) -> Result<Vec<u8>, CheckError> {
    let bytes = hex::decode(hex_str.trim()).map_err(|e| CheckError::Input(format!("{what}: not hex: {e}")))?;
    check_hash_len(&bytes, what)?;
    Ok(bytes)
}

pub(crate) fn check_hash_len(bytes: &[u8], what: &str) -> Result<(), CheckError> {
    if bytes.len() != 32 {
        return Err(CheckError::Input(format!("{what}: {} bytes, a block hash has 32", bytes.len())));
    }
    Ok(())
}

/// Verifies an encoded skipchain `Proof` starting at the trusted block `trusted_hash` (the genesis
/// id or any block already trusted), every link signed by the previous block's roster (default
/// policy).
pub(crate) fn skipchain(trusted_hash: &[u8], proof: &[u8]) -> Result<ProofChecked, CheckError> {
    check_hash_len(trusted_hash, "trusted block hash")?;
    let blocks = decode_proof(proof).map_err(|e| CheckError::Input(format!("skipchain proof: {e}")))?;
    skipchain_blocks(trusted_hash, blocks)
}

/// [`skipchain`] for decoded blocks.
pub(crate) fn skipchain_blocks(trusted_hash: &[u8], blocks: Vec<SkipBlock>) -> Result<ProofChecked, CheckError> {
    let latest = verify_proof(trusted_hash, &blocks, Policy::Default)
        .map_err(|e| CheckError::Failed(format!("skipchain proof: {e}")))?
        .clone();
    Ok(ProofChecked { latest, hops: blocks.len().saturating_sub(1) })
}

/// Parses drand `/info` JSON (v1 or v2 shape), checking its chain hash and group key.
pub(crate) fn chain_info(json: &str) -> Result<ChainInfo, CheckError> {
    ChainInfo::from_drand_json(json).map_err(|e| CheckError::Input(format!("chain info: {e}")))
}

/// Checks that `info` is the chain pinned by `chain_hash_hex`.
pub(crate) fn pinned(info: &ChainInfo, chain_hash_hex: &str) -> Result<(), CheckError> {
    let want =
        hex::decode(chain_hash_hex.trim()).map_err(|e| CheckError::Input(format!("chain hash: not hex: {e}")))?;
    if want.len() != 32 {
        return Err(CheckError::Input(format!("chain hash: {} bytes, expected 32", want.len())));
    }
    let got = info.hash();
    if got.as_slice() != want.as_slice() {
        return Err(CheckError::Failed(format!(
            "chain info: its chain hash is {}, not the trusted {}",
            hex::encode(got),
            chain_hash_hex.trim().to_ascii_lowercase()
        )));
    }
    Ok(())
}

fn beacon_failed(e: BeaconError) -> CheckError {
    CheckError::Failed(format!("beacon: {e}"))
}

/// Parses drand beacon JSON (`/public/{round}`) and verifies it under `info`.
pub(crate) fn beacon_json(info: &ChainInfo, json: &str) -> Result<Beacon, CheckError> {
    let beacon = Beacon::from_drand_json(json).map_err(|e| match e {
        BeaconError::RandomnessMismatch { .. } => beacon_failed(e),
        e => CheckError::Input(format!("beacon: {e}")),
    })?;
    info.verify(&beacon).map_err(beacon_failed)?;
    Ok(beacon)
}

/// A beacon's round, and `Ok` or why it does not verify.
pub(crate) type BeaconVerdict = (u64, Result<(), String>);

/// Parses a JSON array of drand beacons (`/public/{round}` objects) and verifies them all at once
/// (batch verification: the same verdicts as one by one, several times faster). Returns, per
/// beacon, `Ok` or why it does not verify; a beacon that cannot be read fails the whole call.
pub(crate) fn beacons_json(info: &ChainInfo, json: &str) -> Result<Vec<BeaconVerdict>, CheckError> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| CheckError::Input(format!("beacons: not a JSON array: {e}")))?;
    let mut parsed = Vec::with_capacity(items.len());
    let mut early: Vec<Option<String>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match Beacon::from_drand_json(&item.to_string()) {
            Ok(b) => {
                parsed.push(b);
                early.push(None);
            }
            Err(e @ BeaconError::RandomnessMismatch { .. }) => {
                // Readable, but its randomness is not sha256(signature): it does not verify.
                let round = item.get("round").and_then(|r| r.as_u64()).unwrap_or(0);
                parsed.push(Beacon { round, signature: vec![], previous_signature: None });
                early.push(Some(format!("beacon: {e}")));
            }
            Err(e) => return Err(CheckError::Input(format!("beacons[{i}]: {e}"))),
        }
    }
    let prepared = PreparedChain::new(info).map_err(|e| CheckError::Input(format!("chain info: {e}")))?;
    let verdicts = verify_beacons(&prepared, &parsed);
    Ok(parsed
        .iter()
        .zip(verdicts)
        .zip(early)
        .map(|((b, v), early)| match early {
            Some(e) => (b.round, Err(e)),
            None => (b.round, v.map_err(|e| format!("beacon: {e}"))),
        })
        .collect())
}

/// Verifies the signature of `round` under `info` (the previous signature is needed by chained
/// schemes only).
pub(crate) fn beacon_round(
    info: &ChainInfo,
    round: u64,
    signature: &[u8],
    previous_signature: Option<&[u8]>,
) -> Result<Beacon, CheckError> {
    let beacon =
        Beacon { round, signature: signature.to_vec(), previous_signature: previous_signature.map(<[u8]>::to_vec) };
    info.verify(&beacon).map_err(beacon_failed)?;
    Ok(beacon)
}
