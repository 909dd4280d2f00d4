//! Strings across the boundary: reading C strings (NUL-checked, UTF-8-checked) and handing out
//! library-owned strings that C frees with `conode_string_free`.

use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID};
use std::ffi::{c_char, CStr, CString};

/// Reads a required C string argument.
pub(crate) fn read_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    non_null(p, name)?;
    // SAFETY: non-NULL and, per the API contract, NUL-terminated and valid for the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::new(CONODE_ERR_INVALID, format!("argument `{name}` is not UTF-8")))
}

/// Reads an optional C string argument (NULL = None).
pub(crate) fn read_opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        Ok(None)
    } else {
        read_str(p, name).map(Some)
    }
}

/// Reads a required byte buffer (`len` may be 0 with any pointer, including NULL).
#[allow(dead_code)] // used by the verifier exports
pub(crate) fn read_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(p, name)?;
    // SAFETY: non-NULL and, per the API contract, valid for `len` bytes during the call.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes a new library-owned string into `out`.
pub(crate) fn write_string(out: *mut *mut c_char, s: String) -> Result<(), FfiError> {
    let c = CString::new(s).map_err(|_| FfiError::new(CONODE_ERR_INVALID, "string contains NUL"))?;
    // SAFETY: `out` was NULL-checked by the caller.
    unsafe { *out = c.into_raw() };
    Ok(())
}

/// Writes a boxed handle into `out`.
pub(crate) fn write_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: `out` was NULL-checked by the caller.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Frees a string returned by this library. NULL is ignored.
#[no_mangle]
pub extern "C" fn conode_string_free(s: *mut c_char) {
    let _ = guard(|| {
        if !s.is_null() {
            // SAFETY: `s` came from CString::into_raw in this library.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}

/// Borrows a handle mutably after a NULL check.
pub(crate) fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, FfiError> {
    non_null(p, name)?;
    // SAFETY: non-NULL and, per the API contract, a live handle from this library used by one thread.
    Ok(unsafe { &mut *p })
}

/// Borrows a handle after a NULL check.
pub(crate) fn handle_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, FfiError> {
    non_null(p, name)?;
    // SAFETY: as for handle_mut.
    Ok(unsafe { &*p })
}

/// Frees a boxed handle; NULL is ignored.
pub(crate) fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: `p` came from Box::into_raw in this library and is freed once.
        drop(unsafe { Box::from_raw(p) });
    }
}
