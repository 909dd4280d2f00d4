//! The randomness beacon from Python: `ChainInfo` (drand's `/info`), `Beacon` (one round, drand's
//! `/public/{round}` JSON) and `BeaconChain` (a chain started on a LocalCluster by a DKG).

use crate::cluster::PyLocalCluster;
use crate::errors::{NotFoundError, VerifyError};
use conode_core::services::beacon::{beacon_json, info_json, BeaconService};
use conode_core::verify::beacon::{Beacon, BeaconError, ChainInfo};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// Maps an error of parsing drand JSON: integrity failures (chain hash, randomness, group key)
/// are VerifyError, malformed input ValueError.
pub fn parse_error(e: BeaconError) -> PyErr {
    match e {
        BeaconError::ChainHashMismatch { .. }
        | BeaconError::RandomnessMismatch { .. }
        | BeaconError::InvalidPoint { .. }
        | BeaconError::Length { .. }
        | BeaconError::ZeroPeriod => PyErr::new::<VerifyError, _>(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// The public description of a drand-compatible chain: what a client needs to verify its
/// beacons. `ChainInfo.from_json(text)` reads drand's `/info` (v1 and v2 shapes) and checks the
/// chain hash and the group key.
#[pyclass(module = "conode", name = "ChainInfo", frozen)]
#[derive(Clone)]
pub struct PyChainInfo {
    pub inner: ChainInfo,
}

#[pymethods]
impl PyChainInfo {
    /// Parses drand's `/info` JSON. Raises VerifyError when the chain hash does not match the
    /// fields or the group key is not a valid point, ValueError for malformed JSON.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        ChainInfo::from_drand_json(text).map(|inner| Self { inner }).map_err(parse_error)
    }

    /// drand's v1 `/info` JSON.
    fn to_json(&self) -> String {
        info_json(&self.inner)
    }

    /// Group public key (compressed: 48 bytes for pedersen-bls-chained, 96 for the G1-signature
    /// schemes).
    #[getter]
    fn public_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.inner.public_key)
    }

    /// Seconds between rounds.
    #[getter]
    fn period(&self) -> u32 {
        self.inner.period
    }

    /// UNIX time (seconds) of round 1.
    #[getter]
    fn genesis_time(&self) -> i64 {
        self.inner.genesis_time
    }

    /// The genesis seed (drand's groupHash).
    #[getter]
    fn genesis_seed(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.inner.genesis_seed)
    }

    /// drand scheme id: "pedersen-bls-chained", "bls-unchained-g1-rfc9380", ...
    #[getter]
    fn scheme(&self) -> &'static str {
        self.inner.scheme.id()
    }

    #[getter]
    fn beacon_id(&self) -> String {
        self.inner.beacon_id.clone()
    }

    /// drand's chain hash (hex).
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash_hex()
    }

    /// The latest round due at UNIX time `unix_time` (0 before genesis).
    fn round_at(&self, unix_time: f64) -> u64 {
        self.inner.latest_round(unix_time.floor() as i64)
    }

    /// UNIX time at which `round` is due (None if it does not fit).
    fn time_of_round(&self, round: u64) -> Option<i64> {
        self.inner.time_of_round(round)
    }

    /// Verifies a beacon of this chain; raises VerifyError with the reason.
    fn verify(&self, py: Python<'_>, beacon: &PyBeacon) -> PyResult<()> {
        check_beacon(py, &self.inner, &beacon.inner)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyChainInfo>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        let h = self.inner.hash();
        u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }

    fn __repr__(&self) -> String {
        format!(
            "ChainInfo(scheme={:?}, period={}, genesis_time={}, hash={:?})",
            self.inner.scheme.id(),
            self.inner.period,
            self.inner.genesis_time,
            self.inner.hash_hex()
        )
    }
}

/// Verifies `beacon` under `info` with the GIL released (a pairing check).
pub fn check_beacon(py: Python<'_>, info: &ChainInfo, beacon: &Beacon) -> PyResult<()> {
    py.detach(|| info.verify(beacon)).map_err(|e| PyErr::new::<VerifyError, _>(e.to_string()))
}

/// One beacon round: its signature and, for chained schemes, the previous round's signature.
/// `randomness` is sha256(signature).
#[pyclass(module = "conode", name = "Beacon", frozen)]
pub struct PyBeacon {
    pub inner: Beacon,
}

#[pymethods]
impl PyBeacon {
    /// Parses drand's beacon JSON (`/public/{round}`). A `randomness` field must be
    /// sha256(signature) (else VerifyError); the signature itself is not checked here.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        Beacon::from_drand_json(text).map(|inner| Self { inner }).map_err(parse_error)
    }

    /// drand's beacon JSON.
    fn to_json(&self) -> String {
        beacon_json(&self.inner)
    }

    #[getter]
    fn round(&self) -> u64 {
        self.inner.round
    }

    #[getter]
    fn signature(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.inner.signature)
    }

    /// The previous round's signature (chained schemes; the genesis seed for round 1).
    #[getter]
    fn previous_signature(&self) -> Option<Cow<'_, [u8]>> {
        self.inner.previous_signature.as_deref().map(Cow::Borrowed)
    }

    /// sha256(signature): the random value of the round.
    #[getter]
    fn randomness(&self) -> Cow<'static, [u8]> {
        Cow::Owned(self.inner.randomness().to_vec())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyBeacon>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        let r = self.inner.randomness();
        u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]])
    }

    fn __repr__(&self) -> String {
        let r: String = self.inner.randomness().iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("Beacon(round={}, randomness={r}...)", self.inner.round)
    }
}

/// A beacon chain run by the members of a LocalCluster (from `LocalCluster.start_beacon`). Reads
/// the beacons stored by a running member.
#[pyclass(module = "conode", name = "BeaconChain", frozen)]
pub struct PyBeaconChain {
    pub cluster: Py<PyLocalCluster>,
    pub info: ChainInfo,
    pub group_toml: String,
    pub qualified: Vec<u32>,
}

impl PyBeaconChain {
    fn service(&self, py: Python<'_>, node: Option<isize>) -> PyResult<BeaconService> {
        self.cluster.get().beacon_service(py, node)
    }
}

#[pymethods]
impl PyBeaconChain {
    /// The chain's public description (what `/info` serves).
    #[getter]
    fn info(&self) -> PyChainInfo {
        PyChainInfo { inner: self.info.clone() }
    }

    /// The group file written by the DKG (TOML).
    #[getter]
    fn group_toml(&self) -> String {
        self.group_toml.clone()
    }

    /// Share indices of the dealers whose polynomials make up the group key.
    #[getter]
    fn qualified(&self) -> Vec<u32> {
        self.qualified.clone()
    }

    /// The latest beacon stored by member `node` (default: the first running member). Raises
    /// NotFoundError before round 1 is produced.
    #[pyo3(signature = (node = None))]
    fn latest(&self, py: Python<'_>, node: Option<isize>) -> PyResult<PyBeacon> {
        let svc = self.service(py, node)?;
        py.detach(|| svc.latest())
            .map(|inner| PyBeacon { inner })
            .ok_or_else(|| PyErr::new::<NotFoundError, _>("no beacon yet: round 1 is not produced"))
    }

    /// Beacon `round` from member `node`. With `timeout` (seconds), waits that long for a round
    /// that is not produced yet; raises NotFoundError when it is not there (in time).
    #[pyo3(signature = (round, timeout = None, node = None))]
    fn round(&self, py: Python<'_>, round: u64, timeout: Option<f64>, node: Option<isize>) -> PyResult<PyBeacon> {
        let svc = self.service(py, node)?;
        let wait = crate::status::seconds(timeout.unwrap_or(0.0), true)?;
        let found = py.detach(|| {
            if wait.is_zero() {
                return Ok(svc.get(round));
            }
            // Waiting needs only a watch channel and a timer: the shared client runtime does it,
            // so the cluster stays unlocked meanwhile.
            let rt = crate::status::client_runtime()?;
            Ok::<_, String>(rt.block_on(svc.wait_for_round(round, wait)))
        });
        let found = found.map_err(PyErr::new::<crate::errors::ConodeError, _>)?;
        found.map(|inner| PyBeacon { inner }).ok_or_else(|| {
            let due = self.info.time_of_round(round).map(|t| format!(" (due at UNIX time {t})")).unwrap_or_default();
            let waited = if wait.is_zero() { String::new() } else { format!(" after waiting {wait:?}") };
            PyErr::new::<NotFoundError, _>(format!("round {round} is not available{waited}{due}"))
        })
    }

    /// Verifies a beacon of this chain (same as `self.info.verify(beacon)`).
    fn verify(&self, py: Python<'_>, beacon: &PyBeacon) -> PyResult<()> {
        check_beacon(py, &self.info, &beacon.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "BeaconChain(scheme={:?}, period={}, hash={:?})",
            self.info.scheme.id(),
            self.info.period,
            self.info.hash_hex()
        )
    }
}
