//! Python bindings of conode: `import conode`.
//!
//! This crate is the native part `conode._conode`; the Python package (`python/conode`) re-exports
//! it and carries the typed stubs. Every call that blocks (starting/stopping nodes, file I/O,
//! client requests) releases the GIL. No Rust panic is meant to reach Python; if one does, pyo3
//! turns it into `pyo3_runtime.PanicException`.

mod beacon;
mod client;
mod cluster;
mod config;
mod cosi;
mod errors;
mod events;
mod keys;
mod node;
mod skipchain;
mod status;
mod verify;

use pyo3::prelude::*;

/// Sends the library's log to stderr. `level` is the CLI's `-d`: 0 warnings, 1 info, 2 conode
/// debug, 3 debug, 4 conode trace, 5 trace; `RUST_LOG` overrides it. Returns False when logging
/// was set up already in this process (the first setting stays).
#[pyfunction]
#[pyo3(signature = (level = 1))]
fn enable_logging(level: u8) -> bool {
    let filter = match level {
        0 => "warn",
        1 => "info",
        2 => "info,conode_core=debug,conode=debug",
        3 => "debug",
        4 => "debug,conode_core=trace",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init().is_ok()
}

#[pymodule]
#[pyo3(name = "_conode")]
fn conode_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", conode_core::VERSION)?;
    errors::register(m)?;
    m.add_class::<config::PyNodeConfig>()?;
    m.add_class::<config::PyMember>()?;
    m.add_class::<config::PyRoster>()?;
    m.add_class::<node::PyNode>()?;
    m.add_class::<cluster::PyLocalCluster>()?;
    m.add_class::<keys::PyIdentityKey>()?;
    m.add_class::<cosi::PyCollectiveSignature>()?;
    m.add_class::<skipchain::PySkipBlock>()?;
    m.add_class::<beacon::PyChainInfo>()?;
    m.add_class::<beacon::PyBeacon>()?;
    m.add_class::<beacon::PyBeaconChain>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<events::PyEvents>()?;
    m.add_function(wrap_pyfunction!(status::status, m)?)?;
    m.add_function(wrap_pyfunction!(enable_logging, m)?)?;
    verify::register(m)?;
    Ok(())
}
