//! `Events`: a subscription to one node's events for Python (`node.events()`,
//! `cluster.events(i)`). Each event is a dict: `{"kind": "block_stored", "chain": "…", "index": 3,
//! "hash": "…", "time_us": …}` (bytes in hex, `time_us` when the node emitted it; the kinds are
//! the C header's). It is an iterator (blocking, GIL
//! released while waiting) and an async iterator (waits in the event loop's default executor in
//! short slices, so a cancelled task or a closing loop never leaves a thread blocked), and has
//! `next_event(timeout)`. A subscriber that falls more than the queue capacity behind gets one
//! `{"kind": "lagged", "missed": n}` event.

use conode_core::events::EventSubscriber;
use pyo3::exceptions::{PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long one executor wait of the async iterator lasts before it hands control back.
const ASYNC_SLICE: Duration = Duration::from_millis(250);

/// A subscription to a node's events (from the moment it was taken; it survives the node's
/// restarts and ends once the node object is closed or collected).
#[pyclass(module = "conode", name = "Events", frozen)]
pub struct PyEvents {
    inner: Mutex<EventSubscriber>,
    closed: AtomicBool,
}

impl PyEvents {
    pub(crate) fn new(sub: EventSubscriber) -> Self {
        Self { inner: Mutex::new(sub), closed: AtomicBool::new(false) }
    }

    /// Waits up to `timeout` (None: as long as it takes) with the GIL released; the event as JSON
    /// text, or None on timeout or once the node is gone (then `closed` is set).
    fn wait(&self, py: Python<'_>, timeout: Option<Duration>) -> Option<String> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let got = py.detach(|| {
            let mut sub = conode_core::sync::lock(&self.inner);
            match timeout {
                Some(t) => match sub.next_event_timed(t) {
                    Some(e) => Some(Some(e)),
                    None if sub.is_closed() => None,
                    None => Some(None),
                },
                None => loop {
                    if let Some(e) = sub.next_event_timed(Duration::from_secs(3600)) {
                        break Some(Some(e));
                    }
                    if sub.is_closed() {
                        break None;
                    }
                },
            }
        });
        match got {
            Some(e) => e.map(|e| e.to_json().to_string()),
            None => {
                self.closed.store(true, Ordering::SeqCst);
                None
            }
        }
    }
}

fn to_dict(py: Python<'_>, json: String) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
}

fn duration(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t.min(1e9)))),
        Some(t) => Err(PyValueError::new_err(format!("timeout must be a non-negative number of seconds, got {t}"))),
    }
}

#[pymethods]
impl PyEvents {
    /// The next event as a dict, waiting up to `timeout` seconds (None: until one comes); None on
    /// timeout or once the node is gone.
    #[pyo3(signature = (timeout = None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        self.wait(py, duration(timeout)?).map(|j| to_dict(py, j)).transpose()
    }

    /// True once the node is gone: no event will come any more.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Events queued and not yet taken.
    #[getter]
    fn queued(&self) -> usize {
        conode_core::sync::lock(&self.inner).queued()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Blocks (GIL released) until the next event; ends once the node is gone.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.wait(py, None).map(|j| to_dict(py, j)).transpose()
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// An awaitable of the next event (see the class doc).
    fn __anext__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
        let py = slf.py();
        py.import("conode._aio")?.getattr("next_event")?.call1((slf,))
    }

    /// One short wait for the async iterator: the event, None when nothing came in this slice,
    /// StopAsyncIteration once the node is gone.
    fn _wait_slice(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.wait(py, Some(ASYNC_SLICE)) {
            Some(j) => to_dict(py, j).map(Some),
            None if self.closed.load(Ordering::SeqCst) => Err(PyStopAsyncIteration::new_err(())),
            None => Ok(None),
        }
    }

    fn __repr__(&self) -> String {
        format!("<conode.Events queued={} closed={}>", self.queued(), self.closed())
    }
}
