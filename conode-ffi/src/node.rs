//! Node handles: create from a config, start, stop, read status, free (a running node is stopped).

use crate::config::ConodeConfig;
use crate::error::{guard, non_null, FfiError, CONODE_ERR_STATE};
use crate::strings::{free_handle, handle_mut, handle_ref, read_opt_str, write_handle, write_string, write_value};
use conode_core::{Node, NodeBuilder};
use std::ffi::c_char;

/// A conode.
pub struct ConodeNode {
    pub(crate) inner: Node,
    /// The handle's own event subscription (conode_node_next_event).
    pub(crate) events: std::sync::Mutex<conode_core::events::EventSubscriber>,
}

/// Creates a stopped node from `config` (copied). `data_dir` may be NULL: then the config's DataDir
/// or the OS data dir holds the database.
///
/// # Safety
/// `config` is a live config handle; `data_dir` is NULL or NUL-terminated; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_new(
    config: *const ConodeConfig,
    data_dir: *const c_char,
    out: *mut *mut ConodeNode,
) -> i32 {
    guard(|| {
        let config = handle_ref(config, "config")?;
        let data_dir = read_opt_str(data_dir, "data_dir")?;
        non_null(out, "out")?;
        let mut b = NodeBuilder::new(config.inner.clone());
        if let Some(d) = data_dir {
            b = b.data_dir(d);
        }
        let inner = b.build()?;
        let events = std::sync::Mutex::new(inner.events());
        write_handle(out, ConodeNode { inner, events });
        Ok(())
    })
}

/// Starts the node; returns once both ports accept connections. CONODE_ERR_STATE if running.
///
/// # Safety
/// `node` is a live node handle not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn conode_node_start(node: *mut ConodeNode) -> i32 {
    guard(|| Ok(handle_mut(node, "node")?.inner.start()?))
}

/// Stops the node gracefully. CONODE_ERR_STATE if not running.
///
/// # Safety
/// `node` is a live node handle not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn conode_node_stop(node: *mut ConodeNode) -> i32 {
    guard(|| Ok(handle_mut(node, "node")?.inner.stop()?))
}

/// Writes whether the node is running.
///
/// # Safety
/// `node` is a live node handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_is_running(node: *const ConodeNode, out: *mut bool) -> i32 {
    guard(|| {
        let n = handle_ref(node, "node")?;
        non_null(out, "out")?;
        write_value(out, n.inner.is_running());
        Ok(())
    })
}

/// The client-port base URL (`ws://host:port`) of a running node. Free with conode_string_free.
///
/// # Safety
/// `node` is a live node handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_client_url(node: *const ConodeNode, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let n = handle_ref(node, "node")?;
        non_null(out, "out")?;
        let url = n.inner.client_url().ok_or_else(|| FfiError::new(CONODE_ERR_STATE, "node is not running"))?;
        write_string(out, url)
    })
}

/// The node's status (the `/status` JSON) of a running node. Free with conode_string_free.
///
/// # Safety
/// `node` is a live node handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_status_json(node: *const ConodeNode, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let n = handle_ref(node, "node")?;
        non_null(out, "out")?;
        let ctx = n.inner.context().ok_or_else(|| FfiError::new(CONODE_ERR_STATE, "node is not running"))?;
        let json = serde_json::to_string(&conode_core::services::status::status_map(ctx)).unwrap_or_default();
        write_string(out, json)
    })
}

/// Stops (if running) and frees a node. NULL is ignored.
///
/// # Safety
/// `node` is NULL or a node handle that is not used again.
#[no_mangle]
pub unsafe extern "C" fn conode_node_free(node: *mut ConodeNode) {
    let _ = guard(|| {
        free_handle(node);
        Ok(())
    });
}
