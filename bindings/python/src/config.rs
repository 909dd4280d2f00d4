//! `NodeConfig` (private.toml), `Roster` (public.toml / roster files) and `Member` (one roster entry).

use crate::errors::{config_error, config_value_error};
use conode_core::config::{NodeAddress, NodeConfig, Roster, ServerIdentity, COSI_SERVICE};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

/// The client-port URL of a member: its advertised `URL` (http(s) → ws(s)), else
/// `ws://host:port+1`.
pub fn client_base(si: &ServerIdentity) -> String {
    match &si.url {
        Some(u) => u.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1),
        None => format!("ws://{}", si.address.client_host_port()),
    }
}

/// A node's configuration: its keys, address and options (the content of private.toml).
/// `repr()` never shows secrets.
#[pyclass(module = "conode", name = "NodeConfig", frozen)]
pub struct PyNodeConfig {
    pub inner: NodeConfig,
}

#[pymethods]
impl PyNodeConfig {
    /// Fresh keys for a node reachable at `tls://host:port` (client port `port + 1`). Port 0 lets
    /// the system pick both ports when the node starts (then `Node.client_url` tells them).
    #[staticmethod]
    #[pyo3(signature = (host, port, description = ""))]
    fn generate(py: Python<'_>, host: &str, port: u16, description: &str) -> PyResult<Self> {
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            return Err(config_value_error(py, "Address", format!("`{host}` is not a host name or IP address")));
        }
        let address = NodeAddress { host: host.to_string(), port };
        // Key generation is fast (no blocking I/O): no need to release the GIL.
        Ok(Self { inner: NodeConfig::generate(address, description) })
    }

    /// Loads and checks private.toml. Refuses a file readable by group or others (it holds the
    /// secret keys). Raises ConfigError naming the file (and field).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| NodeConfig::load(&path)).map(|inner| Self { inner }).map_err(|e| config_error(py, &e))
    }

    /// Parses private.toml text; `origin` names it in error messages.
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<string>"))]
    fn from_toml(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        NodeConfig::from_toml_str(Path::new(origin), text).map(|inner| Self { inner }).map_err(|e| config_error(py, &e))
    }

    /// The private.toml text (contains the secret keys).
    fn to_toml(&self) -> String {
        self.inner.to_toml()
    }

    /// Writes private.toml with mode 0600, atomically. Refuses to replace an existing file unless
    /// `overwrite` is true.
    #[pyo3(signature = (path, overwrite = false))]
    fn save(&self, py: Python<'_>, path: PathBuf, overwrite: bool) -> PyResult<()> {
        py.detach(|| self.inner.save(&path, overwrite)).map_err(|e| config_error(py, &e))
    }

    /// The public.toml text of this node (one `[[servers]]` entry); a roster is the concatenation
    /// of such entries.
    fn public_toml(&self) -> String {
        Roster::new(vec![self.inner.server_identity()]).to_toml()
    }

    /// Hex Ed25519 public key (the node's identity).
    #[getter]
    fn public_key(&self) -> String {
        self.inner.identity.public().to_hex()
    }

    /// hex(sha256(public key)): names the node's database.
    #[getter]
    fn node_id(&self) -> String {
        self.inner.node_id()
    }

    /// `tls://host:port`.
    #[getter]
    fn address(&self) -> String {
        self.inner.address.to_string()
    }

    #[getter]
    fn description(&self) -> String {
        self.inner.description.clone()
    }

    /// Hex BLS12-381 public key of the Cosi service (collective signing, skipchains).
    #[getter]
    fn cosi_public(&self) -> Option<String> {
        self.inner.cosi_key().map(|k| k.public().to_hex())
    }

    /// Whether any client may use `/Cosi/Sign`.
    #[getter]
    fn allow_open_signing(&self) -> bool {
        self.inner.allow_open_signing
    }

    /// The roster entry of this node.
    fn member(&self) -> PyMember {
        PyMember::from_identity(0, &self.inner.server_identity())
    }

    fn __repr__(&self) -> String {
        format!(
            "NodeConfig(address={:?}, public_key={:?}, description={:?})",
            self.inner.address.to_string(),
            self.inner.identity.public().to_hex(),
            self.inner.description
        )
    }
}

/// One roster member (the public half of a node's config).
#[pyclass(module = "conode", name = "Member", frozen, get_all)]
#[derive(Clone)]
pub struct PyMember {
    /// Position in the roster (bit `index` of collective-signature masks).
    pub index: usize,
    /// Hex Ed25519 public key.
    pub public_key: String,
    /// hex(sha256(public key)).
    pub node_id: String,
    /// `tls://host:port`.
    pub address: String,
    pub description: String,
    /// Advertised public URL of the client port, if any.
    pub url: Option<String>,
    /// `ws://host:port+1` (or the URL turned into ws/wss).
    pub client_url: String,
    /// Hex BLS public key of the Cosi service, if published.
    pub cosi_public: Option<String>,
}

impl PyMember {
    pub fn from_identity(index: usize, si: &ServerIdentity) -> Self {
        Self {
            index,
            public_key: si.public.to_hex(),
            node_id: si.public.node_id(),
            address: si.address.to_string(),
            description: si.description.clone(),
            url: si.url.clone(),
            client_url: client_base(si),
            cosi_public: si.service_key(COSI_SERVICE).map(|k| k.to_hex()),
        }
    }
}

#[pymethods]
impl PyMember {
    /// The fields as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("index", self.index)?;
        d.set_item("public_key", &self.public_key)?;
        d.set_item("node_id", &self.node_id)?;
        d.set_item("address", &self.address)?;
        d.set_item("description", &self.description)?;
        d.set_item("url", &self.url)?;
        d.set_item("client_url", &self.client_url)?;
        d.set_item("cosi_public", &self.cosi_public)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Member(index={}, address={:?}, public_key={:?}, client_url={:?})",
            self.index, self.address, self.public_key, self.client_url
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyMember>() {
            Ok(o) => {
                let o = o.get();
                o.index == self.index && o.public_key == self.public_key && o.address == self.address
            }
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.index, &self.public_key, &self.address).hash(&mut h);
        h.finish()
    }
}

/// An ordered list of members, checked on load (keys, addresses, proofs of possession,
/// duplicates).
#[pyclass(module = "conode", name = "Roster", frozen)]
pub struct PyRoster {
    pub inner: Roster,
}

#[pymethods]
impl PyRoster {
    /// Loads a roster file (or a single public.toml).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| Roster::load(&path)).map(|inner| Self { inner }).map_err(|e| config_error(py, &e))
    }

    /// Parses roster TOML (`[[servers]]` entries); `origin` names it in error messages.
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<string>"))]
    fn from_toml(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        Roster::from_toml_str(Path::new(origin), text).map(|inner| Self { inner }).map_err(|e| config_error(py, &e))
    }

    fn to_toml(&self) -> String {
        self.inner.to_toml()
    }

    #[getter]
    fn members(&self) -> Vec<PyMember> {
        members_of(&self.inner)
    }

    /// Hex sha256 over every member's identity and Cosi key: a stable id of the roster.
    #[getter]
    fn id(&self) -> String {
        conode_hex(&self.inner.id())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("Roster({} members, id={:?})", self.inner.len(), conode_hex(&self.inner.id()))
    }
}

pub fn members_of(roster: &Roster) -> Vec<PyMember> {
    roster.servers.iter().enumerate().map(|(i, si)| PyMember::from_identity(i, si)).collect()
}

fn conode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
