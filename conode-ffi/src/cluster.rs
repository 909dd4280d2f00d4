//! Local cluster handles for tests: N nodes in one process on loopback, stop/restart single nodes.

use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID, CONODE_ERR_STATE};
use crate::strings::{free_handle, handle_mut, handle_ref, write_handle, write_string};
use conode_core::cluster::LocalCluster;
use std::ffi::c_char;

/// N conodes running in this process.
pub struct ConodeCluster {
    pub(crate) inner: LocalCluster,
}

fn check_index(c: &ConodeCluster, index: usize) -> Result<(), FfiError> {
    if index >= c.inner.len() {
        return Err(FfiError::new(
            CONODE_ERR_INVALID,
            format!("node index {index} out of range (cluster of {})", c.inner.len()),
        ));
    }
    Ok(())
}

/// Starts `n` (≥ 1) nodes on loopback.
#[no_mangle]
pub extern "C" fn conode_cluster_new(n: usize, out: *mut *mut ConodeCluster) -> i32 {
    guard(|| {
        non_null(out, "out")?;
        if n == 0 {
            return Err(FfiError::new(CONODE_ERR_INVALID, "a cluster needs at least one node"));
        }
        write_handle(out, ConodeCluster { inner: LocalCluster::new(n)? });
        Ok(())
    })
}

/// Number of nodes.
#[no_mangle]
pub extern "C" fn conode_cluster_size(cluster: *const ConodeCluster, out: *mut usize) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        // SAFETY: NULL-checked.
        unsafe { *out = c.inner.len() };
        Ok(())
    })
}

/// The roster as TOML (`[[servers]]`). Free with conode_string_free.
#[no_mangle]
pub extern "C" fn conode_cluster_roster_toml(cluster: *const ConodeCluster, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        write_string(out, c.inner.roster().to_toml())
    })
}

/// Client-port URL of node `index` (must be running). Free with conode_string_free.
#[no_mangle]
pub extern "C" fn conode_cluster_client_url(cluster: *const ConodeCluster, index: usize, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        check_index(c, index)?;
        let url = c
            .inner
            .client_url(index)
            .ok_or_else(|| FfiError::new(CONODE_ERR_STATE, format!("node {index} is not running")))?;
        write_string(out, url)
    })
}

/// Stops node `index`.
#[no_mangle]
pub extern "C" fn conode_cluster_stop_node(cluster: *mut ConodeCluster, index: usize) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        check_index(c, index)?;
        Ok(c.inner.stop(index)?)
    })
}

/// Restarts node `index` on its ports with its database.
#[no_mangle]
pub extern "C" fn conode_cluster_restart_node(cluster: *mut ConodeCluster, index: usize) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        check_index(c, index)?;
        Ok(c.inner.restart(index)?)
    })
}

/// Stops every node and frees the cluster. NULL is ignored.
#[no_mangle]
pub extern "C" fn conode_cluster_free(cluster: *mut ConodeCluster) {
    let _ = guard(|| {
        free_handle(cluster);
        Ok(())
    });
}
