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
//! ├── VerifyError             a signature, proof or beacon does not verify
//! ├── RefusedError            a conode refused the request (.url)
//! ├── ThresholdError          too few members took part (.missing, .signed, .required, .url)
//! └── NotFoundError           no such chain, block or round (yet) (.url)
//! ```
//!
//! Every message is the library's own (it names the file, field, address or URL). Errors that come
//! back over the client port carry a stable code (decoded once by the core client): the class is
//! chosen from that code, never from the text.

use conode_core::api::client::ClientError;
use conode_core::client_api::ErrorCode;
use conode_core::config::ConfigError as CoreConfigError;
use conode_core::services::cosi::CosiError;
use conode_core::services::skipchain::SkipchainError;
use conode_core::NodeError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
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
create_exception!(
    conode,
    RefusedError,
    ConodeError,
    "A conode refused the request: the signer is not an owner of the chain, open signing is \
     disabled, the owner's signature does not verify, ... `url` is set when the refusal came over \
     a client port."
);
create_exception!(
    conode,
    ThresholdError,
    ConodeError,
    "Too few members signed: `missing` lists the roster indices of the members not in the \
     signature (down, refused or invalid), `signed` and `required` count signers when known."
);
create_exception!(
    conode,
    NotFoundError,
    ConodeError,
    "The chain, block or beacon round does not exist on the node (or not yet)."
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
    let refused = py.get_type::<RefusedError>();
    refused.setattr("url", py.None())?;
    m.add("RefusedError", refused)?;
    let threshold = py.get_type::<ThresholdError>();
    threshold.setattr("url", py.None())?;
    threshold.setattr("missing", pyo3::types::PyTuple::empty(py))?;
    threshold.setattr("signed", py.None())?;
    threshold.setattr("required", py.None())?;
    m.add("ThresholdError", threshold)?;
    let not_found = py.get_type::<NotFoundError>();
    not_found.setattr("url", py.None())?;
    m.add("NotFoundError", not_found)?;
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

/// An error of the client-port client, with `url` set: a service error becomes the exception of
/// its stable code (RefusedError, ThresholdError, NotFoundError, ValueError, StateError), everything
/// else NetworkError. No message text is parsed.
pub fn client_error(py: Python<'_>, e: &ClientError) -> PyErr {
    let url = e.url().map(str::to_string);
    let message = e.to_string();
    let ClientError::Service { error, .. } = e else {
        return network_error(py, message, url);
    };
    match error.code {
        ErrorCode::Refused => with_attrs(py, PyErr::new::<RefusedError, _>(message), &[("url", url)]),
        ErrorCode::NotFound => with_attrs(py, PyErr::new::<NotFoundError, _>(message), &[("url", url)]),
        ErrorCode::Threshold => threshold_error(
            py,
            message,
            error.numbers("missing"),
            error.number("signed"),
            error.number("required"),
            url,
        ),
        ErrorCode::BadRequest | ErrorCode::UnknownMethod => PyValueError::new_err(message),
        ErrorCode::Conflict => PyErr::new::<StateError, _>(message),
        ErrorCode::Unavailable | ErrorCode::Internal => network_error(py, message, url),
    }
}

/// A ThresholdError with its attributes.
pub fn threshold_error(
    py: Python<'_>,
    message: String,
    missing: Vec<usize>,
    signed: Option<usize>,
    required: Option<usize>,
    url: Option<String>,
) -> PyErr {
    let err = PyErr::new::<ThresholdError, _>(message);
    {
        let value = err.value(py);
        if let Ok(t) = pyo3::types::PyTuple::new(py, missing) {
            let _ = value.setattr("missing", t);
        }
        let _ = value.setattr("signed", signed);
        let _ = value.setattr("required", required);
        let _ = value.setattr("url", url);
    }
    err
}

/// Maps an in-process collective-signing failure.
pub fn cosi_error(py: Python<'_>, e: CosiError) -> PyErr {
    cosi_error_in(py, e, "")
}

/// `cosi_error` with `context` put in front of the message.
fn cosi_error_in(py: Python<'_>, e: CosiError, context: &str) -> PyErr {
    let message = format!("{context}{e}");
    match e {
        CosiError::ThresholdNotReached { signed, required, missing, .. } => {
            let idx = missing.iter().map(|(_, x)| x.index).collect();
            threshold_error(py, message, idx, Some(signed), Some(required), None)
        }
        CosiError::Refused(_) => PyErr::new::<RefusedError, _>(message),
        CosiError::BadRoster(_) | CosiError::KeyMismatch(_) | CosiError::NotInRoster(_) | CosiError::NoKey => {
            let err = PyErr::new::<ConfigError, _>(message);
            with_attrs(py, err, &[("file", None), ("field", Some("roster".into()))])
        }
        CosiError::Policy(_) | CosiError::BadRequest(_) => PyValueError::new_err(message),
        #[allow(unreachable_patterns)]
        _ => PyErr::new::<ConodeError, _>(message),
    }
}

/// Maps an in-process skipchain failure.
pub fn skipchain_error(py: Python<'_>, e: SkipchainError) -> PyErr {
    match e {
        SkipchainError::UnknownChain(_) | SkipchainError::UnknownBlock(_) => {
            PyErr::new::<NotFoundError, _>(e.to_string())
        }
        SkipchainError::Refused(_) => PyErr::new::<RefusedError, _>(e.to_string()),
        SkipchainError::Invalid(_) => PyValueError::new_err(e.to_string()),
        // The forward link of an append could not be signed: say so in front of the reason.
        SkipchainError::Cosi(c) => cosi_error_in(py, c, "collective signing failed: "),
        SkipchainError::Storage(_) => PyErr::new::<StorageError, _>(e.to_string()),
        SkipchainError::Network(_) => network_error(py, e.to_string(), None),
        SkipchainError::Behind { .. } => PyErr::new::<StateError, _>(e.to_string()),
        #[allow(unreachable_patterns)]
        _ => PyErr::new::<ConodeError, _>(e.to_string()),
    }
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
