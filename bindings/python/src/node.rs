//! `Node`: one conode owned by Python, on its own tokio runtime.

use crate::config::{PyMember, PyNodeConfig};
use crate::errors::{closed, config_error, node_error};
use crate::status::{local_status, StatusDict};
use conode_core::{Node, NodeBuilder};
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::path::PathBuf;
use std::sync::Mutex;

/// Locks a mutex, recovering the data if a previous holder panicked (the node's own state stays
/// consistent: every method leaves it valid before it can panic).
pub use conode_core::sync::lock;

/// A conode. `start()` returns once both ports accept connections; `stop()` is graceful (stop
/// accepting, end connections, flush the database). As a context manager it starts on entry and
/// stops on exit. A running node that is garbage-collected is stopped too.
///
/// The node is locked during each call, so it can be shared between threads; every blocking call
/// releases the GIL.
#[pyclass(module = "conode", name = "Node", frozen)]
pub struct PyNode {
    // Option: None once `close()`d.
    inner: Mutex<Option<Node>>,
    config: PyNodeConfig,
}

impl PyNode {
    /// Runs `f` on the node with the GIL released (waiting for the lock does not hold the GIL).
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Node) -> T + Send) -> PyResult<T> {
        py.detach(|| lock(&self.inner).as_mut().map(f)).ok_or_else(|| closed("node"))
    }
}

/// Drops a value that may block (stopping nodes) with the GIL released when possible. During
/// interpreter shutdown the GIL cannot be handed over; then it is dropped in place (nothing else
/// runs at that point anyway).
pub fn drop_without_gil<T: Send>(value: T) {
    let mut slot = Some(value);
    Python::try_attach(|py| {
        let v = slot.take();
        py.detach(move || drop(v));
    });
    drop(slot);
}

impl Drop for PyNode {
    fn drop(&mut self) {
        // A garbage-collected running node stops gracefully, without holding the GIL.
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(node) = inner {
            if node.is_running() {
                drop_without_gil(node);
            }
        }
    }
}

#[pymethods]
impl PyNode {
    /// A node from a config. Its database `<node_id>.db` lives in `data_dir` (default: the
    /// config's `DataDir`, else the OS data folder). The node is not started.
    #[new]
    #[pyo3(signature = (config, data_dir = None))]
    fn new(py: Python<'_>, config: &PyNodeConfig, data_dir: Option<PathBuf>) -> PyResult<Self> {
        let cfg = config.inner.clone();
        let node = py.detach(move || {
            let mut b = NodeBuilder::new(cfg);
            if let Some(d) = data_dir {
                b = b.data_dir(d);
            }
            b.build()
        });
        let node = node.map_err(|e| node_error(py, e))?;
        Ok(Self { config: PyNodeConfig { inner: (**node.config()).clone() }, inner: Mutex::new(Some(node)) })
    }

    /// A node from private.toml (and `overrides.toml` beside it, when present).
    #[classmethod]
    #[pyo3(signature = (private_toml, data_dir = None))]
    fn from_file(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        private_toml: PathBuf,
        data_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let node = py.detach(move || {
            let mut b = NodeBuilder::from_file(&private_toml)?;
            if let Some(d) = data_dir {
                b = b.data_dir(d);
            }
            b.build()
        });
        let node = node.map_err(|e| match e {
            conode_core::NodeError::Config(c) => config_error(py, &c),
            other => node_error(py, other),
        })?;
        Ok(Self { config: PyNodeConfig { inner: (**node.config()).clone() }, inner: Mutex::new(Some(node)) })
    }

    /// Starts the node; returns when both ports accept connections. Raises AlreadyRunningError
    /// when running, NetworkError when a port cannot be bound, StorageError when the database
    /// cannot be opened.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.start())?.map_err(|e| node_error(py, e))
    }

    /// Stops the node gracefully and waits for it. Raises NotRunningError when not running.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.stop())?.map_err(|e| node_error(py, e))
    }

    /// Stops the node if it runs and releases its runtime; the object cannot be used afterwards.
    fn close(&self, py: Python<'_>) {
        // Dropping stops a running node (blocking): do it without the GIL.
        py.detach(|| drop(lock(&self.inner).take()));
    }

    #[getter]
    fn is_running(&self, py: Python<'_>) -> bool {
        self.with(py, |n| n.is_running()).unwrap_or(false)
    }

    /// A new subscription to this node's events, from now on (it survives stop and start):
    /// iterate it (`for e in node.events()`, or `async for`), or call `next_event(timeout)`.
    fn events(&self, py: Python<'_>) -> PyResult<crate::events::PyEvents> {
        self.with(py, |n| crate::events::PyEvents::new(n.events()))
    }

    /// `ws://host:port` of the client port while running, else None.
    #[getter]
    fn client_url(&self, py: Python<'_>) -> Option<String> {
        self.with(py, |n| n.client_url()).ok().flatten()
    }

    /// `host:port` the node port is bound to while running, else None.
    #[getter]
    fn node_addr(&self, py: Python<'_>) -> Option<String> {
        self.with(py, |n| n.node_addr().map(|a| a.to_string())).ok().flatten()
    }

    #[getter]
    fn data_dir(&self, py: Python<'_>) -> PyResult<PathBuf> {
        self.with(py, |n| n.data_dir().to_path_buf())
    }

    /// The node's config (a copy).
    #[getter]
    fn config(&self) -> PyNodeConfig {
        PyNodeConfig { inner: self.config.inner.clone() }
    }

    #[getter]
    fn public_key(&self) -> String {
        self.config.inner.identity.public().to_hex()
    }

    #[getter]
    fn node_id(&self) -> String {
        self.config.inner.node_id()
    }

    #[getter]
    fn address(&self) -> String {
        self.config.inner.address.to_string()
    }

    /// The roster entry of this node.
    fn member(&self) -> PyMember {
        PyMember::from_identity(0, &self.config.inner.server_identity())
    }

    /// The node's status, read in-process: `{section: {key: value}}` with the sections of
    /// `/Status/Request` ("Generic", "Db", "Conode") plus "ServerIdentity" ("Public", "Address",
    /// ...). Raises NotRunningError when not running.
    fn status(&self, py: Python<'_>) -> PyResult<StatusDict> {
        self.with(py, |n| n.context().map(|ctx| local_status(ctx, &n.server_identity())))?
            .ok_or_else(|| node_error(py, conode_core::NodeError::NotRunning))
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        // Stopped inside the block already: nothing to do.
        let stopped = self.with(py, |n| if n.is_running() { n.stop().map(|_| ()) } else { Ok(()) });
        // Err: closed inside the block, nothing to stop.
        if let Ok(r) = stopped {
            r.map_err(|e| node_error(py, e))?;
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = match self.with(py, |n| n.client_url()) {
            Ok(Some(url)) => format!("running, client_url={url:?}"),
            Ok(None) => "stopped".to_string(),
            Err(_) => "closed".to_string(),
        };
        format!("Node(address={:?}, public_key={:?}, {state})", self.address(), self.public_key())
    }
}
