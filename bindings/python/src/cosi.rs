//! `CollectiveSignature`: what a signing round returns to Python (in-process from a LocalCluster or
//! over a client port), with the report of who signed and why the others are missing.

use crate::config::PyRoster;
use crate::verify::check_cosi;
use conode_core::services::cosi::messages::{Exclusion as WireExclusion, SignResponse};
use conode_core::services::cosi::{Exclusion, SignOutcome};
use pyo3::prelude::*;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A collective signature of `message`: the aggregate BLS signature (96 bytes) and the
/// participation mask (bit i = roster index i, least significant bit first), with the round's
/// report. Check it with `conode.verify_cosi(...)` or `.verify(roster)`.
#[pyclass(module = "conode", name = "CollectiveSignature", frozen)]
pub struct PyCollectiveSignature {
    message: Vec<u8>,
    signature: Vec<u8>,
    mask: Vec<u8>,
    /// Roster indices in the mask.
    #[pyo3(get)]
    signed: Vec<usize>,
    /// Members whose verification hook refused the statement.
    #[pyo3(get)]
    refused: Vec<usize>,
    /// Members that did not answer in time (down, unreachable or slow).
    #[pyo3(get)]
    timed_out: Vec<usize>,
    /// Members that sent an invalid partial signature.
    #[pyo3(get)]
    invalid: Vec<usize>,
    /// Why each missing member is missing, by roster index.
    #[pyo3(get)]
    reasons: BTreeMap<usize, String>,
    /// Number of signers the policy required.
    #[pyo3(get)]
    required: usize,
}

impl PyCollectiveSignature {
    pub fn from_outcome(message: &[u8], out: SignOutcome) -> Self {
        let r = out.report;
        let idx = |l: &[Exclusion]| l.iter().map(|e| e.index).collect::<Vec<_>>();
        let reasons =
            r.refused.iter().chain(&r.timed_out).chain(&r.invalid).map(|e| (e.index, e.reason.clone())).collect();
        Self {
            message: message.to_vec(),
            signature: out.signature.to_bytes().to_vec(),
            mask: out.mask,
            signed: r.signed.clone(),
            refused: idx(&r.refused),
            timed_out: idx(&r.timed_out),
            invalid: idx(&r.invalid),
            reasons,
            required: r.required,
        }
    }

    pub fn from_response(message: &[u8], resp: SignResponse) -> Self {
        let idx = |l: &[WireExclusion]| l.iter().map(|e| e.index as usize).collect::<Vec<_>>();
        let reasons = resp
            .refused
            .iter()
            .chain(&resp.timed_out)
            .chain(&resp.invalid)
            .map(|e| (e.index as usize, e.reason.clone()))
            .collect();
        Self {
            message: message.to_vec(),
            signed: resp.signed.iter().map(|&i| i as usize).collect(),
            refused: idx(&resp.refused),
            timed_out: idx(&resp.timed_out),
            invalid: idx(&resp.invalid),
            reasons,
            required: resp.required as usize,
            signature: resp.signature,
            mask: resp.mask,
        }
    }
}

#[pymethods]
impl PyCollectiveSignature {
    /// The signed statement.
    #[getter]
    fn message(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.message)
    }

    /// The aggregate BLS12-381 signature (96 bytes, G2 compressed).
    #[getter]
    fn signature(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.signature)
    }

    /// The participation mask: `ceil(n / 8)` bytes, bit i (LSB first) = roster index i signed.
    #[getter]
    fn mask(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.mask)
    }

    /// Every roster index not in the signature (refused, timed out or invalid), sorted.
    #[getter]
    fn missing(&self) -> Vec<usize> {
        self.reasons.keys().copied().collect()
    }

    /// Checks the signature against `roster` (same as `conode.verify_cosi`); raises VerifyError.
    #[pyo3(signature = (roster, threshold = None))]
    fn verify(&self, py: Python<'_>, roster: &PyRoster, threshold: Option<usize>) -> PyResult<()> {
        check_cosi(py, &self.message, &self.signature, &self.mask, &roster.inner, threshold)
    }

    fn __repr__(&self) -> String {
        format!(
            "CollectiveSignature(signed={} of required {}, missing={:?})",
            self.signed.len(),
            self.required,
            self.missing()
        )
    }
}
