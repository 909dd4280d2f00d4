//! Light-client verification from Python: the place for `verify_*` functions over
//! `conode_core::verify` (collective signatures, skipchain proofs, beacons) as they land.
//!
//! Conventions for what goes here, so the module stays uniform:
//! - plain functions (`#[pyfunction]`), named `verify_<thing>`, taking `bytes` / hex `str` and a
//!   `Roster` (`crate::config::PyRoster`, `.inner` is the `conode_core::config::Roster`);
//! - return `None` (or the verified payload) on success, raise `VerifyError`
//!   (`crate::errors::VerifyError`) with the library's message when the check fails and
//!   `ConfigError` / `ValueError` for malformed input;
//! - release the GIL around the pairing checks (`py.detach(|| ...)`): they take milliseconds;
//! - add each function to `register` below, to `python/conode/__init__.py` (`__all__`) and to the
//!   stubs in `python/conode/_conode.pyi`, and a test in `tests/test_verify.py`.
//!
//! Fetch-and-verify helpers that talk to a conode belong here too: use
//! `crate::status::client_runtime()` (one shared runtime) to block on
//! `conode_core::api::client::call` inside `py.detach`, as `crate::status::status` does.

use pyo3::prelude::*;

/// Adds the verification functions to the module (none yet).
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
