//! The pure verifiers for C: collective signatures, skipchain proofs and drand beacons. None of them
//! needs a node or the network. Results: CONODE_OK when the input verifies, CONODE_ERR_VERIFY when it
//! decodes but does not verify, CONODE_ERR_INVALID / CONODE_ERR_CONFIG for malformed input or roster.

use crate::checks::{self, CheckError};
use crate::error::{guard, non_null, FfiError, CONODE_ERR_CONFIG, CONODE_ERR_INVALID, CONODE_ERR_VERIFY};
use crate::strings::{read_bytes, read_opt_bytes, read_str, write_opt, write_string};
use conode_core::verify::cosi::Policy;
use std::ffi::c_char;

/// Length of a block hash / genesis id (sha256).
pub const CONODE_HASH_LEN: usize = 32;
/// Length of a beacon's randomness (sha256 of its signature).
pub const CONODE_RANDOMNESS_LEN: usize = 32;
/// Length of a collective signature (compressed BLS12-381 G2 point).
pub const CONODE_COSI_SIGNATURE_LEN: usize = 96;

impl From<CheckError> for FfiError {
    fn from(e: CheckError) -> Self {
        let code = match &e {
            CheckError::Roster(_) => CONODE_ERR_CONFIG,
            CheckError::Input(_) => CONODE_ERR_INVALID,
            CheckError::Failed(_) => CONODE_ERR_VERIFY,
        };
        FfiError::new(code, e.message())
    }
}

/// Verifies a collective (BLS-CoSi) signature: `signature` (96 bytes) is the aggregate signature of
/// `message` by the members of `roster_toml` (`[[servers]]` TOML) set in `mask` (bit i = roster
/// index i, LSB first, ceil(n/8) bytes), and they are at least `threshold` (0: the default
/// `n - floor((n-1)/3)`). On success `*out_signers` (may be NULL) is the number of signers.
/// CONODE_ERR_VERIFY when it does not verify, CONODE_ERR_CONFIG for a bad roster,
/// CONODE_ERR_INVALID for a threshold above the roster size.
///
/// # Safety
/// Strings are NUL-terminated; each buffer is valid for its length (NULL allowed for length 0);
/// `out_signers` is NULL or valid for a write.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn conode_verify_cosi(
    roster_toml: *const c_char,
    message: *const u8,
    message_len: usize,
    signature: *const u8,
    signature_len: usize,
    mask: *const u8,
    mask_len: usize,
    threshold: usize,
    out_signers: *mut usize,
) -> i32 {
    guard(|| {
        let roster = read_str(roster_toml, "roster_toml")?;
        let message = read_bytes(message, message_len, "message")?;
        let signature = read_bytes(signature, signature_len, "signature")?;
        let mask = read_bytes(mask, mask_len, "mask")?;
        let policy = Policy::from_threshold((threshold > 0).then_some(threshold));
        let checked = checks::cosi(roster, message, signature, mask, policy)?;
        write_opt(out_signers, checked.signers.len());
        Ok(())
    })
}

/// Verifies a skipchain proof (the protobuf `Proof` that `/Skipchain/GetUpdateChain` returns): its
/// first block is the trusted block `trusted_hash` (32 bytes: the genesis id or any block already
/// trusted) and each block is linked to the next by a forward link collectively signed by the
/// earlier block's roster. On success `*out_latest_index` and `out_latest_hash` (32 bytes) describe
/// the newest block; both may be NULL. CONODE_ERR_VERIFY when the proof does not verify,
/// CONODE_ERR_INVALID when it does not decode.
///
/// # Safety
/// Each buffer is valid for its length; `out_latest_index` is NULL or valid for a write;
/// `out_latest_hash` is NULL or valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_verify_skipchain_proof(
    trusted_hash: *const u8,
    trusted_hash_len: usize,
    proof: *const u8,
    proof_len: usize,
    out_latest_index: *mut u64,
    out_latest_hash: *mut u8,
) -> i32 {
    guard(|| {
        let trusted = read_bytes(trusted_hash, trusted_hash_len, "trusted_hash")?;
        let proof = read_bytes(proof, proof_len, "proof")?;
        let checked = checks::skipchain(trusted, proof)?;
        let mut hash = [0u8; CONODE_HASH_LEN];
        hash.copy_from_slice(&checked.latest.hash);
        write_opt(out_latest_index, checked.latest.index);
        write_opt(out_latest_hash.cast::<[u8; CONODE_HASH_LEN]>(), hash);
        Ok(())
    })
}

/// Verifies a drand beacon given as JSON (`/public/{round}`: `round`, `signature`,
/// `previous_signature` for chained schemes, optional `randomness`) under the chain described by
/// `chain_info_json` (drand's `/info`; its chain hash, when present, is checked against its fields).
/// Supported schemes include `pedersen-bls-chained` and `bls-unchained-g1-rfc9380` (quicknet).
/// On success `*out_round` and `out_randomness` (32 bytes) may be NULL.
/// CONODE_ERR_VERIFY when the beacon does not verify, CONODE_ERR_INVALID when either JSON does
/// not decode.
///
/// # Safety
/// Strings are NUL-terminated; `out_round` is NULL or valid for a write; `out_randomness` is NULL
/// or valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_verify_beacon_json(
    chain_info_json: *const c_char,
    beacon_json: *const c_char,
    out_round: *mut u64,
    out_randomness: *mut u8,
) -> i32 {
    guard(|| {
        let info = checks::chain_info(read_str(chain_info_json, "chain_info_json")?)?;
        let beacon = checks::beacon_json(&info, read_str(beacon_json, "beacon_json")?)?;
        write_opt(out_round, beacon.round);
        write_opt(out_randomness.cast::<[u8; CONODE_RANDOMNESS_LEN]>(), beacon.randomness());
        Ok(())
    })
}

/// Verifies the signature of `round` under the chain described by `chain_info_json` (drand's
/// `/info`). `previous_signature` is required by chained schemes (NULL: none) and ignored by
/// unchained ones. On success `out_randomness` (32 bytes, may be NULL) receives sha256(signature).
///
/// # Safety
/// `chain_info_json` is NUL-terminated; each buffer is valid for its length; `out_randomness` is
/// NULL or valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_verify_beacon(
    chain_info_json: *const c_char,
    round: u64,
    signature: *const u8,
    signature_len: usize,
    previous_signature: *const u8,
    previous_signature_len: usize,
    out_randomness: *mut u8,
) -> i32 {
    guard(|| {
        let info = checks::chain_info(read_str(chain_info_json, "chain_info_json")?)?;
        let signature = read_bytes(signature, signature_len, "signature")?;
        let previous = read_opt_bytes(previous_signature, previous_signature_len, "previous_signature")?;
        let beacon = checks::beacon_round(&info, round, signature, previous)?;
        write_opt(out_randomness.cast::<[u8; CONODE_RANDOMNESS_LEN]>(), beacon.randomness());
        Ok(())
    })
}

/// Verifies many drand beacons of one chain at once: `beacons_json` is a JSON array of
/// `/public/{round}` objects (as drand serves them) and `chain_info_json` drand's `/info`. Batch
/// verification gives the same verdicts as conode_verify_beacon_json on each beacon, several times
/// faster for long runs. On return `out_ok[i]` is 1 when beacon `i` verified and 0 otherwise, and
/// `*out_verified` (may be NULL) the number that verified. Returns CONODE_OK when all verified,
/// CONODE_ERR_VERIFY when some did not (see `out_ok`; the message names the first), and
/// CONODE_ERR_INVALID when either JSON cannot be read or `out_ok_len` is smaller than the number
/// of beacons (nothing is written then).
///
/// # Safety
/// Strings are NUL-terminated; `out_ok` is valid for `out_ok_len` bytes; `out_verified` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_verify_beacons_json(
    chain_info_json: *const c_char,
    beacons_json: *const c_char,
    out_ok: *mut u8,
    out_ok_len: usize,
    out_verified: *mut usize,
) -> i32 {
    guard(|| {
        let info = checks::chain_info(read_str(chain_info_json, "chain_info_json")?)?;
        let verdicts = checks::beacons_json(&info, read_str(beacons_json, "beacons_json")?)?;
        if verdicts.len() > out_ok_len {
            return Err(FfiError::new(
                CONODE_ERR_INVALID,
                format!("out_ok has room for {out_ok_len} verdicts, {} beacons were given", verdicts.len()),
            ));
        }
        if !verdicts.is_empty() {
            non_null(out_ok, "out_ok")?;
            let ok = std::slice::from_raw_parts_mut(out_ok, verdicts.len());
            for (slot, (_, v)) in ok.iter_mut().zip(&verdicts) {
                *slot = u8::from(v.is_ok());
            }
        }
        let verified = verdicts.iter().filter(|(_, v)| v.is_ok()).count();
        write_opt(out_verified, verified);
        match verdicts.iter().find_map(|(round, v)| v.as_ref().err().map(|e| (round, e))) {
            Some((round, e)) => Err(FfiError::new(
                CONODE_ERR_VERIFY,
                format!(
                    "{} of {} beacons do not verify; first: round {round}: {e}",
                    verdicts.len() - verified,
                    verdicts.len()
                ),
            )),
            None => Ok(()),
        }
    })
}

/// The chain hash (64 hex characters) of the chain described by `chain_info_json` (drand's
/// `/info`), to pin a chain. Free with conode_string_free.
///
/// # Safety
/// `chain_info_json` is NUL-terminated; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_chain_info_hash(chain_info_json: *const c_char, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let json = read_str(chain_info_json, "chain_info_json")?;
        non_null(out, "out")?;
        let info = checks::chain_info(json)?;
        write_string(out, info.hash_hex())
    })
}
