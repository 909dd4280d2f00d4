//! Strings and byte buffers across the boundary: reading C strings (NUL-checked, UTF-8-checked) and
//! byte buffers, and handing out library-owned strings and buffers that C frees with
//! `conode_string_free` / `conode_bytes_free`.
//!
//! The helpers that dereference caller pointers are `unsafe fn`: their contract is the one the
//! header states for every export (pointers valid for the call, handles live and from this library).

use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID};
use std::ffi::{c_char, CStr, CString};

/// Reads a required C string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn read_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    non_null(p, name)?;
    // SAFETY: non-NULL and, per this function's contract, NUL-terminated and valid for 'a.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::new(CONODE_ERR_INVALID, format!("argument `{name}` is not UTF-8")))
}

/// Reads an optional C string argument (NULL = None).
///
/// # Safety
/// As for [`read_str`].
pub(crate) unsafe fn read_opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { read_str(p, name) }.map(Some)
    }
}

/// Reads a required byte buffer (`len` may be 0 with any pointer, including NULL).
///
/// # Safety
/// When `len > 0`, `p` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn read_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(p, name)?;
    // SAFETY: non-NULL and, per this function's contract, valid for `len` bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Reads an optional byte buffer: NULL is None (whatever `len`), otherwise as [`read_bytes`].
///
/// # Safety
/// As for [`read_bytes`].
pub(crate) unsafe fn read_opt_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<Option<&'a [u8]>, FfiError> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { read_bytes(p, len, name) }.map(Some)
    }
}

/// Writes a new library-owned string into `out`.
///
/// # Safety
/// `out` is non-NULL (checked by the caller) and valid for a pointer write.
pub(crate) unsafe fn write_string(out: *mut *mut c_char, s: String) -> Result<(), FfiError> {
    let c = CString::new(s).map_err(|_| FfiError::new(CONODE_ERR_INVALID, "string contains NUL"))?;
    // SAFETY: per this function's contract.
    unsafe { *out = c.into_raw() };
    Ok(())
}

/// Writes `value` into a caller-provided out-param.
///
/// # Safety
/// `out` is non-NULL (checked by the caller) and valid for a write of `T`.
pub(crate) unsafe fn write_value<T>(out: *mut T, value: T) {
    // SAFETY: per this function's contract.
    unsafe { out.write(value) };
}

/// Writes `value` into an optional out-param (ignored when NULL).
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, valid per this function's contract.
        unsafe { out.write(value) };
    }
}

/// Writes a new library-owned byte buffer into `out` / `out_len` (freed with `conode_bytes_free`).
///
/// # Safety
/// `out` and `out_len` are non-NULL (checked by the caller) and valid for writes.
pub(crate) unsafe fn write_bytes(out: *mut *mut u8, out_len: *mut usize, bytes: Vec<u8>) {
    let len = bytes.len();
    let ptr = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
    // SAFETY: per this function's contract.
    unsafe {
        *out = ptr;
        *out_len = len;
    }
}

/// Writes a boxed handle into `out`.
///
/// # Safety
/// `out` is non-NULL (checked by the caller) and valid for a pointer write.
pub(crate) unsafe fn write_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: per this function's contract.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Frees a string returned by this library. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string returned by this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn conode_string_free(s: *mut c_char) {
    let _ = guard(|| {
        if !s.is_null() {
            // SAFETY: `s` came from CString::into_raw in this library (caller's contract).
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}

/// Frees a byte buffer returned by this library with its length. NULL is ignored.
///
/// # Safety
/// `bytes` is NULL or a buffer returned by this library, with the length returned beside it, that
/// was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn conode_bytes_free(bytes: *mut u8, len: usize) {
    let _ = guard(|| {
        if !bytes.is_null() {
            // SAFETY: `bytes`/`len` came from Box<[u8]>::into_raw in `write_bytes` (caller's contract).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(bytes, len)) });
        }
        Ok(())
    });
}

/// Borrows a handle mutably after a NULL check.
///
/// # Safety
/// `p` is NULL or a live handle from this library, not used by another thread during `'a`.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, FfiError> {
    non_null(p, name)?;
    // SAFETY: non-NULL and live per this function's contract.
    Ok(unsafe { &mut *p })
}

/// Borrows a handle after a NULL check.
///
/// # Safety
/// `p` is NULL or a live handle from this library, not mutated during `'a`.
pub(crate) unsafe fn handle_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, FfiError> {
    non_null(p, name)?;
    // SAFETY: non-NULL and live per this function's contract.
    Ok(unsafe { &*p })
}

/// Frees a boxed handle; NULL is ignored.
///
/// # Safety
/// `p` is NULL or a handle from `write_handle` that is freed once.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per this function's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}
