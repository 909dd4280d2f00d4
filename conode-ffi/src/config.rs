//! Node configuration handles: from a private.toml path or string, or freshly generated.

use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID};
use crate::strings::{free_handle, handle_ref, read_str, write_handle, write_string};
use conode_core::config::{NodeAddress, NodeConfig};
use std::ffi::c_char;
use std::path::Path;

/// A node configuration (the content of private.toml).
pub struct ConodeConfig {
    pub(crate) inner: NodeConfig,
}

/// Loads private.toml from `path` (refused when group/world readable).
///
/// # Safety
/// `path` is NUL-terminated; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_config_from_file(path: *const c_char, out: *mut *mut ConodeConfig) -> i32 {
    guard(|| {
        let path = read_str(path, "path")?;
        non_null(out, "out")?;
        let inner = NodeConfig::load(Path::new(path))?;
        write_handle(out, ConodeConfig { inner });
        Ok(())
    })
}

/// Parses private.toml content from a string.
///
/// # Safety
/// `toml` is NUL-terminated; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_config_from_toml(toml: *const c_char, out: *mut *mut ConodeConfig) -> i32 {
    guard(|| {
        let text = read_str(toml, "toml")?;
        non_null(out, "out")?;
        let inner = NodeConfig::from_toml_str(Path::new("<toml string>"), text)?;
        write_handle(out, ConodeConfig { inner });
        Ok(())
    })
}

/// New keys for a node at `host:port` (port 0: both ports ephemeral, for tests and embedding).
///
/// # Safety
/// `host` and `description` are NUL-terminated; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_config_generate(
    host: *const c_char,
    port: u16,
    description: *const c_char,
    out: *mut *mut ConodeConfig,
) -> i32 {
    guard(|| {
        let host = read_str(host, "host")?;
        let description = read_str(description, "description")?;
        non_null(out, "out")?;
        let address =
            NodeAddress::parse(&format!("tls://{host}:{port}")).map_err(|e| FfiError::new(CONODE_ERR_INVALID, e))?;
        write_handle(out, ConodeConfig { inner: NodeConfig::generate(address, description) });
        Ok(())
    })
}

/// The private.toml text of `config` (contains secrets: handle with care). Free with conode_string_free.
///
/// # Safety
/// `config` is a live config handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_config_to_toml(config: *const ConodeConfig, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let c = handle_ref(config, "config")?;
        non_null(out, "out")?;
        write_string(out, c.inner.to_toml())
    })
}

/// The hex Ed25519 public key of `config`. Free with conode_string_free.
///
/// # Safety
/// `config` is a live config handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_config_public_key(config: *const ConodeConfig, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let c = handle_ref(config, "config")?;
        non_null(out, "out")?;
        write_string(out, c.inner.identity.public().to_hex())
    })
}

/// Frees a config. NULL is ignored.
///
/// # Safety
/// `config` is NULL or a config handle that is not used again.
#[no_mangle]
pub unsafe extern "C" fn conode_config_free(config: *mut ConodeConfig) {
    let _ = guard(|| {
        free_handle(config);
        Ok(())
    });
}
