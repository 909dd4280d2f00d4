//! Light-client verification from Python over `conode_core::verify`: collective signatures,
//! skipchain proofs from a trusted block, and drand-compatible beacons.
//!
//! Conventions, so the module stays uniform:
//! - plain functions (`#[pyfunction]`), named `verify_<thing>`, taking `bytes` and a `Roster` or
//!   the objects the rest of the module returns (`SkipBlock`, `ChainInfo`, `Beacon`);
//! - return `None` (or the verified payload) on success, raise `VerifyError` with the library's
//!   reason when the check fails, and `ValueError` for input that cannot be decoded at all;
//! - the pairing checks run with the GIL released (`py.detach`): they take milliseconds.

use crate::beacon::{check_beacon, PyBeacon, PyChainInfo};
use crate::config::PyRoster;
use crate::errors::VerifyError;
use crate::skipchain::{blocks_of, PySkipBlock};
use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::BlsPublicKey;
use conode_core::verify::beacon::{Beacon, ChainInfo};
use conode_core::verify::cosi::{self, Policy};
use conode_core::verify::skipchain::verify_proof;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// The cosi keys of a roster in order; ValueError naming a member without one.
fn cosi_keys(roster: &Roster) -> PyResult<Vec<BlsPublicKey>> {
    roster.service_keys(COSI_SERVICE).map_err(|e| PyValueError::new_err(format!("roster: {e}")))
}

/// Checks a collective signature (shared by `verify_cosi` and `CollectiveSignature.verify`).
pub fn check_cosi(
    py: Python<'_>,
    message: &[u8],
    signature: &[u8],
    mask: &[u8],
    roster: &Roster,
    threshold: Option<usize>,
) -> PyResult<()> {
    let keys = cosi_keys(roster)?;
    // A threshold the roster cannot meet is a mistake of the caller, not a bad signature.
    Policy::from_threshold(threshold).required(keys.len()).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.detach(|| cosi::verify(message, signature, mask, &keys, Policy::from_threshold(threshold)))
        .map_err(|e| PyErr::new::<VerifyError, _>(format!("collective signature: {e}")))
}

/// Verifies a collective signature: `signature` (96 bytes) aggregates the BLS signatures of
/// `message` by the members of `roster` set in `mask`, and they are at least `threshold` (default
/// n − ⌊(n − 1) / 3⌋). Raises VerifyError with the reason.
#[pyfunction]
#[pyo3(signature = (message, signature, mask, roster, threshold = None))]
fn verify_cosi(
    py: Python<'_>,
    message: Cow<'_, [u8]>,
    signature: Cow<'_, [u8]>,
    mask: Cow<'_, [u8]>,
    roster: &PyRoster,
    threshold: Option<usize>,
) -> PyResult<()> {
    check_cosi(py, &message, &signature, &mask, &roster.inner, threshold)
}

/// Verifies a skipchain proof: `proof[0]` is the trusted block (hash `trusted`, usually the
/// genesis id), and each block is linked to the next by a forward link collectively signed by the
/// earlier block's roster (at least `threshold` signers, default n − ⌊(n − 1) / 3⌋). Returns the
/// newest block. Raises VerifyError with the reason.
#[pyfunction]
#[pyo3(signature = (trusted, proof, threshold = None))]
fn verify_skipchain(
    py: Python<'_>,
    trusted: Cow<'_, [u8]>,
    proof: Vec<Bound<'_, PySkipBlock>>,
    threshold: Option<usize>,
) -> PyResult<PySkipBlock> {
    let blocks = blocks_of(&proof);
    check_skipchain(py, &trusted, &blocks, threshold)
}

/// Verifies blocks as a proof from `trusted`; returns the newest.
pub fn check_skipchain(
    py: Python<'_>,
    trusted: &[u8],
    blocks: &[conode_core::verify::skipchain::SkipBlock],
    threshold: Option<usize>,
) -> PyResult<PySkipBlock> {
    py.detach(|| verify_proof(trusted, blocks, Policy::from_threshold(threshold)).cloned())
        .map(|inner| PySkipBlock { inner })
        .map_err(|e| PyErr::new::<VerifyError, _>(format!("skipchain proof: {e}")))
}

/// A chain description given from Python: a `ChainInfo` or drand's `/info` JSON text.
#[derive(FromPyObject)]
enum InfoArg<'py> {
    Info(Bound<'py, PyChainInfo>),
    Json(String),
}

/// A beacon given from Python: a `Beacon` or drand's beacon JSON text.
#[derive(FromPyObject)]
enum BeaconArg<'py> {
    Beacon(Bound<'py, PyBeacon>),
    Json(String),
}

/// Verifies a beacon of a drand-compatible chain (every drand scheme: pedersen-bls-chained,
/// bls-unchained-g1-rfc9380, ...). `info` is a ChainInfo or drand's `/info` JSON, `beacon` a
/// Beacon or drand's `/public/{round}` JSON. Returns the beacon; raises VerifyError with the
/// reason (ValueError for JSON that cannot be read).
#[pyfunction]
fn verify_beacon(py: Python<'_>, info: InfoArg<'_>, beacon: BeaconArg<'_>) -> PyResult<PyBeacon> {
    let info: ChainInfo = match info {
        InfoArg::Info(i) => i.get().inner.clone(),
        InfoArg::Json(t) => ChainInfo::from_drand_json(&t).map_err(crate::beacon::parse_error)?,
    };
    let beacon: Beacon = match beacon {
        BeaconArg::Beacon(b) => b.get().inner.clone(),
        BeaconArg::Json(t) => Beacon::from_drand_json(&t).map_err(crate::beacon::parse_error)?,
    };
    check_beacon(py, &info, &beacon)?;
    Ok(PyBeacon { inner: beacon })
}

/// Verifies many beacons of one chain at once (a client catching up, an auditor): `beacons` is a
/// list of Beacon or drand beacon JSON texts. Batch verification (random linear combination, one
/// pairing check) gives the same verdicts as `verify_beacon` on each, several times faster for
/// long runs. Returns one entry per beacon: None when it verified, else why not. Raises
/// ValueError for JSON that cannot be read. The GIL is released while verifying.
#[pyfunction]
fn verify_beacons(py: Python<'_>, info: InfoArg<'_>, beacons: Vec<BeaconArg<'_>>) -> PyResult<Vec<Option<String>>> {
    let info: ChainInfo = match info {
        InfoArg::Info(i) => i.get().inner.clone(),
        InfoArg::Json(t) => ChainInfo::from_drand_json(&t).map_err(crate::beacon::parse_error)?,
    };
    let mut parsed = Vec::with_capacity(beacons.len());
    for b in beacons {
        parsed.push(match b {
            BeaconArg::Beacon(b) => b.get().inner.clone(),
            BeaconArg::Json(t) => Beacon::from_drand_json(&t).map_err(crate::beacon::parse_error)?,
        });
    }
    let prepared = conode_core::verify::beacon::PreparedChain::new(&info)
        .map_err(|e| PyErr::new::<crate::errors::VerifyError, _>(e.to_string()))?;
    let verdicts = py.detach(|| conode_core::verify::beacon::verify_beacons(&prepared, &parsed));
    Ok(verdicts.into_iter().map(|v| v.err().map(|e| e.to_string())).collect())
}

/// Adds the verification functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify_cosi, m)?)?;
    m.add_function(wrap_pyfunction!(verify_skipchain, m)?)?;
    m.add_function(wrap_pyfunction!(verify_beacon, m)?)?;
    m.add_function(wrap_pyfunction!(verify_beacons, m)?)?;
    Ok(())
}
