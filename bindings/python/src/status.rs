//! Status of a node: in-process (`Node.status()`, `LocalCluster.status(i)`) and over a conode's
//! client port (`conode.status(url)`, `/Status/Request` like the Go cothority's clients).
//! Both give the same shape: `{section: {key: value}}` with an added "ServerIdentity" section.

use crate::errors::{client_error, network_error, ConodeError};
use conode_core::api::client;
use conode_core::config::ServerIdentity;
use conode_core::services::status::messages::{public_of, server_identity_id, StatusRequest, StatusResponse};
use conode_core::services::status::status_map;
use conode_core::services::ServiceContext;
use prost::Message;
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Section → key → value.
pub type StatusDict = BTreeMap<String, BTreeMap<String, String>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn identity_section(si: &ServerIdentity) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert("Public".into(), si.public.to_hex());
    s.insert("ID".into(), hex(&server_identity_id(&si.public)));
    s.insert("Address".into(), si.address.to_string());
    s.insert("Description".into(), si.description.clone());
    if let Some(url) = &si.url {
        s.insert("URL".into(), url.clone());
    }
    s
}

/// The status of a running node read in-process.
pub fn local_status(ctx: &ServiceContext, si: &ServerIdentity) -> StatusDict {
    let mut map = status_map(ctx);
    map.insert("ServerIdentity".into(), identity_section(si));
    map
}

/// One runtime for every client call made from Python (created on first use, one worker).
pub(crate) fn client_runtime() -> Result<&'static Runtime, String> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("conode-client")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot create the client runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// A duration given in seconds from Python: finite and positive (or zero when `allow_zero`), else
/// ValueError.
pub(crate) fn seconds(value: f64, allow_zero: bool) -> PyResult<Duration> {
    let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
    if !ok {
        let what = if allow_zero { "a non-negative" } else { "a positive" };
        return Err(pyo3::exceptions::PyValueError::new_err(format!("timeout must be {what} number of seconds")));
    }
    Ok(Duration::from_secs_f64(value.min(1e9)))
}

pub(crate) enum StatusFailure {
    Runtime(String),
    Client(client::ClientError),
    Reply { url: String, reason: String },
}

pub(crate) fn fetch_status(url: &str, timeout: Duration, trust: &client::Trust) -> Result<StatusDict, StatusFailure> {
    let rt = client_runtime().map_err(StatusFailure::Runtime)?;
    let reply = rt
        .block_on(client::call_with(trust, url, "Status", "Request", StatusRequest {}.encode_to_vec(), timeout))
        .map_err(StatusFailure::Client)?;
    let bad =
        |reason: String| StatusFailure::Reply { url: format!("{}/Status/Request", url.trim_end_matches('/')), reason };
    let resp = StatusResponse::decode(reply.as_slice()).map_err(|e| bad(format!("undecodable status reply: {e}")))?;
    let mut map: StatusDict =
        resp.status.into_iter().map(|(section, s)| (section, s.field.into_iter().collect())).collect();
    if let Some(si) = resp.serveridentity {
        let public = public_of(&si).map_err(bad)?;
        let mut s = BTreeMap::new();
        s.insert("Public".into(), public.to_hex());
        s.insert("ID".into(), hex(&si.id));
        s.insert("Address".into(), si.address);
        s.insert("Description".into(), si.description);
        if let Some(u) = si.url {
            s.insert("URL".into(), u);
        }
        map.insert("ServerIdentity".into(), s);
    }
    Ok(map)
}

/// Asks a running conode for its status over its client port (`/Status/Request`).
///
/// `client_url` is the base URL of the client port, like `ws://127.0.0.1:7771` (see
/// `Node.client_url`, `Member.client_url`). Returns `{section: {key: value}}`: "Generic", "Db",
/// "Conode" as the node reports them and "ServerIdentity" ("Public" is the hex key the node
/// answered with). Raises NetworkError (with `.url`) when the node cannot be reached, does not
/// answer within `timeout` seconds or answers garbage. `cacert` names a PEM file of CA certificates
/// trusted for `wss://`/`https://` besides the platform's store (ConfigError if unusable).
#[pyfunction]
#[pyo3(signature = (client_url, timeout = 10.0, cacert = None))]
pub fn status(
    py: Python<'_>,
    client_url: &str,
    timeout: f64,
    cacert: Option<std::path::PathBuf>,
) -> PyResult<StatusDict> {
    let timeout = seconds(timeout, false)?;
    let trust = trust_of(py, cacert.as_deref())?;
    let url = client_url.to_string();
    py.detach(|| fetch_status(&url, timeout, &trust)).map_err(|e| status_failure(py, e))
}

/// The trust anchors of a `cacert=` argument (ConfigError naming the file when unusable).
pub(crate) fn trust_of(py: Python<'_>, cacert: Option<&std::path::Path>) -> PyResult<client::Trust> {
    client::Trust::from_optional_file(cacert)
        .map_err(|e| crate::errors::config_value_error(py, "cacert", e.to_string()))
}

/// The exception of a failed status request.
pub(crate) fn status_failure(py: Python<'_>, e: StatusFailure) -> PyErr {
    match e {
        StatusFailure::Runtime(e) => PyErr::new::<ConodeError, _>(e),
        StatusFailure::Client(e) => client_error(py, &e),
        StatusFailure::Reply { url, reason } => network_error(py, format!("{url}: {reason}"), Some(url)),
    }
}
