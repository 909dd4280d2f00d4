//! `Client`: talks to a running conode over its client port, like an app would: status, open
//! collective signing, skipchain blocks and proofs over WebSocket (`/<Service>/<Method>`, protobuf),
//! and the beacon over drand's HTTP API. Every call blocks on the binding's client runtime with
//! the GIL released.

use crate::beacon::{check_beacon, PyBeacon, PyChainInfo};
use crate::config::PyRoster;
use crate::cosi::PyCollectiveSignature;
use crate::errors::{client_error, network_error, ConodeError, VerifyError};
use crate::skipchain::PySkipBlock;
use crate::status::{client_runtime, fetch_status, seconds, status_failure, trust_of, StatusDict};
use crate::verify::check_skipchain;
use conode_core::api::client;
use conode_core::client_api::ClientUrl;
use conode_core::services::cosi::messages::{SignRequest, SignResponse};
use conode_core::services::skipchain::messages::{BlockReply, GetBlock, GetUpdateChain, Proof};
use conode_core::verify::beacon::{Beacon, BeaconError, ChainInfo};
use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// A client of one conode's client port. `url` is its base URL: `ws://host:port` (as
/// `Member.client_url` gives it), `wss://`, or the `http(s)://` form. Each call fails with
/// NetworkError (`.url` set) when the node cannot be reached or does not answer within `timeout`
/// seconds; errors the node reports map to RefusedError, ThresholdError, NotFoundError. `cacert`
/// names a PEM file of CA certificates trusted for `wss://`/`https://` besides the platform's store.
#[pyclass(module = "conode", name = "Client", frozen)]
pub struct PyClient {
    /// The core client (one URL type, the error codes); calls block on the binding's runtime.
    client: client::Client,
    /// `ws(s)://host:port`, no trailing slash.
    ws: String,
    /// `http(s)://host:port`, no trailing slash.
    http: String,
}

impl PyClient {
    /// One WebSocket request; the reply bytes.
    fn call(&self, py: Python<'_>, service: &str, method: &str, body: Vec<u8>) -> PyResult<Vec<u8>> {
        let c = &self.client;
        let reply = py.detach(|| {
            let rt = client_runtime()?;
            Ok::<_, String>(rt.block_on(c.call(service, method, body)))
        });
        match reply {
            Err(e) => Err(PyErr::new::<ConodeError, _>(e)),
            Ok(Err(e)) => Err(client_error(py, &e)),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }

    /// NetworkError for a reply that does not decode.
    fn garbage(&self, py: Python<'_>, service: &str, method: &str, reason: impl std::fmt::Display) -> PyErr {
        let url = format!("{}/{service}/{method}", self.ws);
        network_error(py, format!("{url}: undecodable reply: {reason}"), Some(url))
    }

    /// GET `path` on the HTTP side of the client port; the body of a 200 reply (a 404 is
    /// NotFoundError, through the core client's error code).
    fn get(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        let c = &self.client;
        let result = py.detach(|| {
            let rt = client_runtime()?;
            Ok::<_, String>(rt.block_on(c.http_get(path)))
        });
        match result {
            Err(e) => Err(PyErr::new::<ConodeError, _>(e)),
            Ok(Err(e)) => Err(client_error(py, &e)),
            Ok(Ok(body)) => Ok(body),
        }
    }

    /// A drand JSON reply that cannot be used: integrity failures are VerifyError, the rest
    /// NetworkError (the node answered garbage).
    fn bad_json(&self, py: Python<'_>, path: &str, e: BeaconError) -> PyErr {
        let url = format!("{}{path}", self.http);
        match e {
            BeaconError::ChainHashMismatch { .. }
            | BeaconError::RandomnessMismatch { .. }
            | BeaconError::InvalidPoint { .. }
            | BeaconError::Length { .. }
            | BeaconError::ZeroPeriod => PyErr::new::<VerifyError, _>(format!("{url}: {e}")),
            e => network_error(py, format!("{url}: {e}"), Some(url)),
        }
    }

    fn beacon_at(&self, py: Python<'_>, path: &str, info: Option<&PyChainInfo>) -> PyResult<PyBeacon> {
        let body = self.get(py, path)?;
        let beacon = Beacon::from_drand_json(&body).map_err(|e| self.bad_json(py, path, e))?;
        if let Some(info) = info {
            check_beacon(py, &info.inner, &beacon)?;
        }
        Ok(PyBeacon { inner: beacon })
    }

    fn block(&self, py: Python<'_>, req: GetBlock) -> PyResult<PySkipBlock> {
        let reply = self.call(py, "Skipchain", "GetBlock", req.encode_to_vec())?;
        let reply = BlockReply::decode(reply.as_slice()).map_err(|e| self.garbage(py, "Skipchain", "GetBlock", e))?;
        let block = reply.block.ok_or_else(|| self.garbage(py, "Skipchain", "GetBlock", "no block in the reply"))?;
        Ok(PySkipBlock { inner: block })
    }
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (url, timeout = 10.0, cacert = None))]
    fn new(py: Python<'_>, url: &str, timeout: f64, cacert: Option<std::path::PathBuf>) -> PyResult<Self> {
        let timeout = seconds(timeout, false)?;
        let url = ClientUrl::parse(url).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let trust = trust_of(py, cacert.as_deref())?;
        let (ws, http) = (url.ws_base(), url.http_base());
        Ok(Self { client: client::Client::new(url, timeout).with_trust(trust), ws, http })
    }

    /// `ws(s)://host:port` of the node's client port.
    #[getter]
    fn url(&self) -> String {
        self.ws.clone()
    }

    /// `http(s)://host:port`: the same port, for drand's HTTP API.
    #[getter]
    fn http_url(&self) -> String {
        self.http.clone()
    }

    /// The per-call timeout in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.client.timeout().as_secs_f64()
    }

    /// The node's status (`/Status/Request`), as `conode.status(url)` returns it.
    fn status(&self, py: Python<'_>) -> PyResult<StatusDict> {
        let (url, timeout, trust) = (&self.ws, self.client.timeout(), self.client.trust());
        py.detach(|| fetch_status(url, timeout, trust)).map_err(|e| status_failure(py, e))
    }

    /// Asks the node to lead a collective signature of `message` (`/Cosi/Sign`; only nodes that
    /// allow open signing accept, else RefusedError). `roster` is the signing roster (default: the
    /// node's own default roster), `threshold` the signers required, `timeout` the per-level wait
    /// in seconds (default: the node's). Raises ThresholdError naming the missing members.
    #[pyo3(signature = (message, roster = None, threshold = None, timeout = None))]
    fn sign(
        &self,
        py: Python<'_>,
        message: Cow<'_, [u8]>,
        roster: Option<&PyRoster>,
        threshold: Option<u32>,
        timeout: Option<f64>,
    ) -> PyResult<PyCollectiveSignature> {
        if threshold == Some(0) {
            return Err(PyValueError::new_err("threshold must be at least 1"));
        }
        let level = timeout.map(|t| seconds(t, false)).transpose()?;
        let req = SignRequest {
            message: message.to_vec(),
            roster_toml: roster.map(|r| r.inner.to_toml()),
            threshold,
            timeout_ms: level.map(|l| (l.as_millis() as u64).max(1)),
        };
        let reply = self.call(py, "Cosi", "Sign", req.encode_to_vec())?;
        let resp = SignResponse::decode(reply.as_slice()).map_err(|e| self.garbage(py, "Cosi", "Sign", e))?;
        Ok(PyCollectiveSignature::from_response(&message, resp))
    }

    /// The skipchain block with id `hash` (`/Skipchain/GetBlock`). Raises NotFoundError.
    fn skipchain_block(&self, py: Python<'_>, hash: Cow<'_, [u8]>) -> PyResult<PySkipBlock> {
        self.block(py, GetBlock { hash: hash.into_owned(), genesis: vec![], index: 0 })
    }

    /// Block number `index` of the chain `genesis` (its genesis id). Raises NotFoundError.
    fn skipchain_block_at(&self, py: Python<'_>, genesis: Cow<'_, [u8]>, index: u64) -> PyResult<PySkipBlock> {
        self.block(py, GetBlock { hash: vec![], genesis: genesis.into_owned(), index })
    }

    /// The shortest proof from block `trusted` (usually the genesis id you trust) to the newest
    /// block (`/Skipchain/GetUpdateChain`). With `verify` (the default) the proof is checked
    /// before it is returned (VerifyError otherwise); the newest block is the last one.
    #[pyo3(signature = (trusted, *, verify = true, threshold = None))]
    fn skipchain_update(
        &self,
        py: Python<'_>,
        trusted: Cow<'_, [u8]>,
        verify: bool,
        threshold: Option<usize>,
    ) -> PyResult<Vec<PySkipBlock>> {
        let req = GetUpdateChain { from: trusted.to_vec() };
        let reply = self.call(py, "Skipchain", "GetUpdateChain", req.encode_to_vec())?;
        let proof = Proof::decode(reply.as_slice()).map_err(|e| self.garbage(py, "Skipchain", "GetUpdateChain", e))?;
        if verify {
            check_skipchain(py, &trusted, &proof.blocks, threshold)?;
        }
        Ok(proof.blocks.into_iter().map(|inner| PySkipBlock { inner }).collect())
    }

    /// The node's beacon chain (drand's `GET /info`), its chain hash and group key checked.
    fn beacon_info(&self, py: Python<'_>) -> PyResult<PyChainInfo> {
        let body = self.get(py, "/info")?;
        ChainInfo::from_drand_json(&body).map(|inner| PyChainInfo { inner }).map_err(|e| self.bad_json(py, "/info", e))
    }

    /// The latest beacon (`GET /public/latest`). With `info` (a ChainInfo you trust) it is
    /// verified before it is returned. Raises NotFoundError before round 1.
    #[pyo3(signature = (info = None))]
    fn beacon_latest(&self, py: Python<'_>, info: Option<&PyChainInfo>) -> PyResult<PyBeacon> {
        self.beacon_at(py, "/public/latest", info)
    }

    /// Beacon `round` (`GET /public/{round}`), verified with `info` when given. Raises
    /// NotFoundError for a round not produced (yet).
    #[pyo3(signature = (round, info = None))]
    fn beacon_round(&self, py: Python<'_>, round: u64, info: Option<&PyChainInfo>) -> PyResult<PyBeacon> {
        self.beacon_at(py, &format!("/public/{round}"), info)
    }

    fn __repr__(&self) -> String {
        format!("Client(url={:?}, timeout={})", self.ws, self.client.timeout().as_secs_f64())
    }
}
