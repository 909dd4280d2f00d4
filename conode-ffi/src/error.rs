//! Status codes, the per-thread last error message, and the guard every export runs inside: it
//! turns errors into codes and catches panics so none crosses into C.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Success.
pub const CONODE_OK: i32 = 0;
/// A required pointer argument was NULL.
pub const CONODE_ERR_NULL: i32 = 1;
/// An argument was malformed (not UTF-8, bad hex, out of range...).
pub const CONODE_ERR_INVALID: i32 = 2;
/// A config or roster file/string was rejected (the message names file and field).
pub const CONODE_ERR_CONFIG: i32 = 3;
/// The node is already running / not running.
pub const CONODE_ERR_STATE: i32 = 4;
/// Network, storage or runtime failure.
pub const CONODE_ERR_RUNTIME: i32 = 5;
/// A signature, proof or beacon did not verify.
pub const CONODE_ERR_VERIFY: i32 = 6;
/// An internal error (a caught panic). The handle involved should not be used further.
pub const CONODE_ERR_PANIC: i32 = 99;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// An error on its way to C.
pub(crate) struct FfiError {
    pub code: i32,
    pub message: String,
}

impl FfiError {
    pub fn new(code: i32, message: impl ToString) -> Self {
        Self { code, message: message.to_string() }
    }
}

#[cfg(feature = "node")]
impl From<conode_core::NodeError> for FfiError {
    fn from(e: conode_core::NodeError) -> Self {
        use conode_core::NodeError as E;
        let code = match &e {
            E::AlreadyRunning | E::NotRunning | E::BlockingInAsync => CONODE_ERR_STATE,
            E::Config(_) | E::ClientTls(_) => CONODE_ERR_CONFIG,
            _ => CONODE_ERR_RUNTIME,
        };
        Self::new(code, e)
    }
}

impl From<conode_core::config::ConfigError> for FfiError {
    fn from(e: conode_core::config::ConfigError) -> Self {
        Self::new(CONODE_ERR_CONFIG, e)
    }
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(c));
}

/// Runs `f` behind the panic boundary and maps its outcome to a status code. SIGPIPE is blocked on
/// the caller's thread meanwhile: a C host does not ignore it, and `f` may write to sockets.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), FfiError>) -> i32 {
    let _shield = conode_core::sigpipe::Shield::new();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CONODE_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error: {what}"));
            CONODE_ERR_PANIC
        }
    }
}

/// Fails with CONODE_ERR_NULL naming the argument when `p` is NULL.
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Result<(), FfiError> {
    if p.is_null() {
        Err(FfiError::new(CONODE_ERR_NULL, format!("argument `{name}` is NULL")))
    } else {
        Ok(())
    }
}

/// The message of the last failed call on this thread, or NULL if none failed yet. Valid until the
/// next failing call on the same thread; do not free it.
#[no_mangle]
pub extern "C" fn conode_last_error_message() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ref().map(|c| c.as_ptr()).unwrap_or(std::ptr::null()))
}

/// The library version as a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn conode_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}
