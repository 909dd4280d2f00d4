//! The exception hierarchy and the mapping of the library's errors onto it.
//!
//! ```text
//! ConodeError                 base of everything raised by conode
//! ├── ConfigError             a config file or value is unusable (.file, .field)
//! ├── NetworkError            cannot listen / connect / talk to a conode (.url)
//! ├── StorageError            the node's database
//! ├── StateError              the call does not fit the object's state
//! │   ├── AlreadyRunningError
//! │   └── NotRunningError
//! └── VerifyError             a signature, proof or beacon does not verify
//! ```
//!
//! Every message is the library's own (it names the file, field, address or URL).

use conode_core::api::client::ClientError;
use conode_core::config::ConfigError as CoreConfigError;
use conode_core::NodeError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(conode, ConodeError, PyException, "Base class of every error raised by conode.");
create_exception!(
    conode,
    ConfigError,
    ConodeError,
    "A config file or value cannot be used. `file` names the file (or the origin given to \
     `NodeConfig.from_toml`) and `field` the offending field, when known."
);
create_exception!(
    conode,
    NetworkError,
    ConodeError,
    "Cannot listen on a port, connect to a conode or understand its reply. `url` is the client-port \
     URL when the error comes from a client call."
);
create_exception!(conode, StorageError, ConodeError, "The node's database cannot be opened or written.");
create_exception!(conode, StateError, ConodeError, "The call does not fit the state of the object.");
create_exception!(conode, AlreadyRunningError, StateError, "The node is already running.");
create_exception!(conode, NotRunningError, StateError, "The node is not running.");
create_exception!(
    conode,
    VerifyError,
    ConodeError,
    "A collective signature, skipchain proof or beacon does not verify."
);

/// Adds the exception classes to the module and gives the attribute-carrying ones class-level
/// defaults, so `e.file` / `e.url` also work on instances raised from Python code.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ConodeError", py.get_type::<ConodeError>())?;
    let config = py.get_type::<ConfigError>();
    config.setattr("file", py.None())?;
    config.setattr("field", py.None())?;
    m.add("ConfigError", config)?;
    let network = py.get_type::<NetworkError>();
    network.setattr("url", py.None())?;
    m.add("NetworkError", network)?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    m.add("AlreadyRunningError", py.get_type::<AlreadyRunningError>())?;
    m.add("NotRunningError", py.get_type::<NotRunningError>())?;
    m.add("VerifyError", py.get_type::<VerifyError>())?;
    Ok(())
}

/// Sets attributes on a freshly created exception; an attribute that cannot be set is left out
/// (the message still says everything).
fn with_attrs(py: Python<'_>, err: PyErr, attrs: &[(&str, Option<String>)]) -> PyErr {
    {
        let value = err.value(py);
        for (name, v) in attrs {
            let _ = value.setattr(*name, v.clone());
        }
    }
    err
}

/// A ConfigError with `file` and `field` set.
pub fn config_error(py: Python<'_>, e: &CoreConfigError) -> PyErr {
    let (file, field) = match e {
        CoreConfigError::Read { file, .. }
        | CoreConfigError::Parse { file, .. }
        | CoreConfigError::Permissions { file, .. }
        | CoreConfigError::Exists { file }
        | CoreConfigError::Write { file, .. } => (Some(file), None),
        CoreConfigError::Field { file, field, .. } => (Some(file), Some(field.clone())),
        // A variant added later: the message still names the file.
        #[allow(unreachable_patterns)]
        _ => (None, None),
    };
    let err = PyErr::new::<ConfigError, _>(e.to_string());
    with_attrs(py, err, &[("file", file.map(|f| f.display().to_string())), ("field", field)])
}

/// A ConfigError about a value given from Python (no file involved).
pub fn config_value_error(py: Python<'_>, field: &str, message: String) -> PyErr {
    let err = PyErr::new::<ConfigError, _>(message);
    with_attrs(py, err, &[("file", None), ("field", Some(field.to_string()))])
}

/// A NetworkError from the client-port client, with `url` set.
pub fn client_error(py: Python<'_>, e: &ClientError) -> PyErr {
    let url = match e {
        ClientError::Connect { url, .. }
        | ClientError::Timeout { url, .. }
        | ClientError::Service { url, .. }
        | ClientError::Protocol { url, .. } => Some(url.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    network_error(py, e.to_string(), url)
}

/// A NetworkError with an optional `url`.
pub fn network_error(py: Python<'_>, message: String, url: Option<String>) -> PyErr {
    with_attrs(py, PyErr::new::<NetworkError, _>(message), &[("url", url)])
}

/// Maps every `NodeError` variant onto the hierarchy.
pub fn node_error(py: Python<'_>, e: NodeError) -> PyErr {
    match e {
        NodeError::AlreadyRunning => PyErr::new::<AlreadyRunningError, _>(e.to_string()),
        NodeError::NotRunning => PyErr::new::<NotRunningError, _>(e.to_string()),
        NodeError::Config(c) => config_error(py, &c),
        NodeError::Storage(_) => PyErr::new::<StorageError, _>(e.to_string()),
        NodeError::Network(_) | NodeError::Bind { .. } => network_error(py, e.to_string(), None),
        // The certificate/key files of the client port.
        NodeError::ClientTls(_) => {
            let err = PyErr::new::<ConfigError, _>(e.to_string());
            with_attrs(py, err, &[("file", None), ("field", Some("WebSocketTLSCertificate".into()))])
        }
        NodeError::BlockingInAsync => PyErr::new::<StateError, _>(e.to_string()),
        NodeError::Runtime(_) => PyErr::new::<ConodeError, _>(e.to_string()),
        #[allow(unreachable_patterns)]
        _ => PyErr::new::<ConodeError, _>(e.to_string()),
    }
}

/// A StateError for an object that was closed.
pub fn closed(what: &str) -> PyErr {
    PyErr::new::<StateError, _>(format!("{what} is closed"))
}
