//! `LocalCluster`: N conodes in this process on loopback, sharing one runtime.

use crate::config::{members_of, PyMember, PyRoster};
use crate::errors::{closed, node_error};
use crate::node::{drop_without_gil, lock};
use crate::status::{local_status, StatusDict};
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::Roster;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

/// N conodes in this process on 127.0.0.1, each on its own pair of free ports, sharing one tokio
/// runtime. The constructor returns when every node accepts connections. Use it as a context
/// manager (or call `close()`): closing stops every node and removes the temporary folder.
#[pyclass(module = "conode", name = "LocalCluster", frozen)]
pub struct PyLocalCluster {
    inner: Mutex<Option<LocalCluster>>,
    roster: Roster,
    dir: PathBuf,
}

impl PyLocalCluster {
    /// Runs `f` on the cluster with the GIL released.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut LocalCluster) -> T + Send) -> PyResult<T> {
        py.detach(|| lock(&self.inner).as_mut().map(f)).ok_or_else(|| closed("cluster"))
    }

    /// Python-style index (negative counts from the end) → position, or IndexError.
    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.roster.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!("node index {i} out of range for a cluster of {n}")));
        }
        Ok(j as usize)
    }
}

impl Drop for PyLocalCluster {
    fn drop(&mut self) {
        // A garbage-collected cluster stops its nodes without holding the GIL.
        if let Some(cluster) = self.inner.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            drop_without_gil(cluster);
        }
    }
}

#[pymethods]
impl PyLocalCluster {
    /// Starts `n` nodes. `allow_open_signing` lets clients use `/Cosi/Sign` (for tests);
    /// `worker_threads` is the size of the shared runtime. With `dir` the databases live there
    /// (and stay after `close()`), else in a temporary folder.
    #[new]
    #[pyo3(signature = (n, *, allow_open_signing = true, worker_threads = 2, dir = None))]
    fn new(
        py: Python<'_>,
        n: usize,
        allow_open_signing: bool,
        worker_threads: usize,
        dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        if n == 0 {
            return Err(PyValueError::new_err("a cluster needs at least one node"));
        }
        if worker_threads == 0 {
            return Err(PyValueError::new_err("worker_threads must be at least 1"));
        }
        let mut opts = ClusterOptions::new(n);
        opts.allow_open_signing = allow_open_signing;
        opts.worker_threads = worker_threads;
        let cluster = py
            .detach(move || match dir {
                Some(d) => LocalCluster::start_in(&d, opts),
                None => LocalCluster::with_options(opts),
            })
            .map_err(|e| node_error(py, e))?;
        Ok(Self {
            roster: cluster.roster().clone(),
            dir: cluster.dir().to_path_buf(),
            inner: Mutex::new(Some(cluster)),
        })
    }

    fn __len__(&self) -> usize {
        self.roster.len()
    }

    /// The members in roster order (static: a stopped node stays a member).
    #[getter]
    fn members(&self) -> Vec<PyMember> {
        members_of(&self.roster)
    }

    /// The roster.
    #[getter]
    fn roster(&self) -> PyRoster {
        PyRoster { inner: self.roster.clone() }
    }

    /// The roster as TOML (`[[servers]]` entries), as `conode check` and clients read it.
    #[getter]
    fn roster_toml(&self) -> String {
        self.roster.to_toml()
    }

    /// The folder holding the nodes' databases.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Stops node `i` (its ports close; the others keep running). Raises NotRunningError when it
    /// is stopped already.
    fn stop(&self, py: Python<'_>, i: isize) -> PyResult<()> {
        let i = self.index(i)?;
        self.with(py, |c| c.stop(i))?.map_err(|e| node_error(py, e))
    }

    /// Starts node `i` again on the same ports with the same database. Raises
    /// AlreadyRunningError when it runs.
    fn restart(&self, py: Python<'_>, i: isize) -> PyResult<()> {
        let i = self.index(i)?;
        self.with(py, |c| c.restart(i))?.map_err(|e| node_error(py, e))
    }

    /// `ws://127.0.0.1:port` of node `i`'s client port while it runs, else None.
    fn client_url(&self, py: Python<'_>, i: isize) -> PyResult<Option<String>> {
        let i = self.index(i)?;
        self.with(py, |c| c.client_url(i))
    }

    fn is_running(&self, py: Python<'_>, i: isize) -> PyResult<bool> {
        let i = self.index(i)?;
        self.with(py, |c| c.node(i).is_running())
    }

    /// Status of node `i` read in-process (same shape as `conode.status(url)`). Raises
    /// NotRunningError when it is stopped.
    fn status(&self, py: Python<'_>, i: isize) -> PyResult<StatusDict> {
        let i = self.index(i)?;
        self.with(py, |c| {
            let n = c.node(i);
            n.context().map(|ctx| local_status(ctx, &n.server_identity()))
        })?
        .ok_or_else(|| node_error(py, conode_core::NodeError::NotRunning))
    }

    /// Stops every node and removes the temporary folder. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(lock(&self.inner).take()));
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.with(py, |_| ()).is_err()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if slf.get().closed(slf.py()) {
            return Err(closed("cluster"));
        }
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.with(py, |c| c.nodes().iter().filter(|n| n.is_running()).count()) {
            Ok(running) => format!("LocalCluster({} nodes, {running} running, dir={:?})", self.roster.len(), self.dir),
            Err(_) => format!("LocalCluster({} nodes, closed)", self.roster.len()),
        }
    }
}
