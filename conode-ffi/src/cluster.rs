//! Local cluster handles for tests: N nodes in one process on loopback, stop/restart single nodes,
//! and the services driven through them — a collective signature, skipchain create/append/proof —
//! so C programs get real inputs for the verifiers.

use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID, CONODE_ERR_RUNTIME, CONODE_ERR_STATE};
use crate::strings::{
    free_handle, handle_mut, handle_ref, read_bytes, write_bytes, write_handle, write_opt, write_string, write_value,
};
use crate::verify::{CONODE_COSI_SIGNATURE_LEN, CONODE_HASH_LEN};
use conode_core::cluster::{ClusterError, LocalCluster};
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::cosi::{Policy, OPEN_SIGNING_PURPOSE};
use conode_core::services::skipchain::{SkipchainError, SkipchainService};
use conode_core::verify::skipchain_wire::Proof;
use prost::Message;
use std::collections::HashMap;
use std::ffi::c_char;

/// N conodes running in this process.
pub struct ConodeCluster {
    pub(crate) inner: LocalCluster,
    /// Owner keys of the skipchains created through this handle, by genesis id.
    owners: HashMap<Vec<u8>, IdentityKeyPair>,
}

pub(crate) fn check_index(c: &ConodeCluster, index: usize) -> Result<(), FfiError> {
    if index >= c.inner.len() {
        return Err(FfiError::new(
            CONODE_ERR_INVALID,
            format!("node index {index} out of range (cluster of {})", c.inner.len()),
        ));
    }
    Ok(())
}

pub(crate) fn not_running(index: usize) -> FfiError {
    FfiError::new(CONODE_ERR_STATE, format!("node {index} is not running"))
}

fn skipchain_service(c: &ConodeCluster, index: usize) -> Result<SkipchainService, FfiError> {
    check_index(c, index)?;
    c.inner.node(index).skipchain().map_err(|_| not_running(index))
}

impl From<SkipchainError> for FfiError {
    fn from(e: SkipchainError) -> Self {
        let code = match &e {
            SkipchainError::UnknownChain(_) | SkipchainError::UnknownBlock(_) | SkipchainError::Invalid(_) => {
                CONODE_ERR_INVALID
            }
            _ => CONODE_ERR_RUNTIME,
        };
        FfiError::new(code, format!("skipchain: {e}"))
    }
}

fn hash_arg(hash: &[u8], name: &str) -> Result<(), FfiError> {
    if hash.len() != CONODE_HASH_LEN {
        return Err(FfiError::new(
            CONODE_ERR_INVALID,
            format!("argument `{name}`: {} bytes, a block hash has {CONODE_HASH_LEN}", hash.len()),
        ));
    }
    Ok(())
}

/// Starts `n` (≥ 1) nodes on loopback. They allow open signing (conode_cluster_sign).
///
/// # Safety
/// `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_new(n: usize, out: *mut *mut ConodeCluster) -> i32 {
    guard(|| {
        non_null(out, "out")?;
        if n == 0 {
            return Err(FfiError::new(CONODE_ERR_INVALID, "a cluster needs at least one node"));
        }
        write_handle(out, ConodeCluster { inner: LocalCluster::new(n)?, owners: HashMap::new() });
        Ok(())
    })
}

/// Number of nodes.
///
/// # Safety
/// `cluster` is a live cluster handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_size(cluster: *const ConodeCluster, out: *mut usize) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        write_value(out, c.inner.len());
        Ok(())
    })
}

/// The roster as TOML (`[[servers]]`). Free with conode_string_free.
///
/// # Safety
/// `cluster` is a live cluster handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_roster_toml(cluster: *const ConodeCluster, out: *mut *mut c_char) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        write_string(out, c.inner.roster().to_toml())
    })
}

/// Client-port URL of node `index` (must be running). Free with conode_string_free.
///
/// # Safety
/// `cluster` is a live cluster handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_client_url(
    cluster: *const ConodeCluster,
    index: usize,
    out: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        check_index(c, index)?;
        let url = c.inner.client_url(index).ok_or_else(|| not_running(index))?;
        write_string(out, url)
    })
}

/// Stops node `index`.
///
/// # Safety
/// `cluster` is a live cluster handle not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_stop_node(cluster: *mut ConodeCluster, index: usize) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        check_index(c, index)?;
        Ok(c.inner.stop(index)?)
    })
}

/// Restarts node `index` on its ports with its database.
///
/// # Safety
/// `cluster` is a live cluster handle not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_restart_node(cluster: *mut ConodeCluster, index: usize) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        check_index(c, index)?;
        Ok(c.inner.restart(index)?)
    })
}

/// Collectively signs `message` with the whole roster, node `index` running the round; at least
/// `threshold` members must sign (0: the default `n - floor((n-1)/3)`). On success
/// `out_signature` (96 bytes, CONODE_COSI_SIGNATURE_LEN) receives the aggregate signature and
/// `*out_mask` / `*out_mask_len` the participation mask (free with conode_bytes_free).
/// CONODE_ERR_RUNTIME when too few members signed (the message says who is missing and why).
///
/// # Safety
/// `cluster` is a live cluster handle; `message` is valid for `message_len` bytes;
/// `out_signature` is valid for 96 bytes; `out_mask` and `out_mask_len` are valid for writes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn conode_cluster_sign(
    cluster: *const ConodeCluster,
    index: usize,
    message: *const u8,
    message_len: usize,
    threshold: usize,
    out_signature: *mut u8,
    out_mask: *mut *mut u8,
    out_mask_len: *mut usize,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        let message = read_bytes(message, message_len, "message")?;
        non_null(out_signature, "out_signature")?;
        non_null(out_mask, "out_mask")?;
        non_null(out_mask_len, "out_mask_len")?;
        check_index(c, index)?;
        let service = c.inner.node(index).cosi().map_err(|_| not_running(index))?;
        let policy = Policy::from_threshold(Some(threshold).filter(|t| *t > 0));
        let outcome = c
            .inner
            .runtime()
            .block_on(service.sign(c.inner.roster(), message, OPEN_SIGNING_PURPOSE, &[], policy))
            .map_err(|e| FfiError::new(CONODE_ERR_RUNTIME, format!("collective signing: {e}")))?;
        write_value(out_signature.cast::<[u8; CONODE_COSI_SIGNATURE_LEN]>(), outcome.signature.to_bytes());
        write_bytes(out_mask, out_mask_len, outcome.mask);
        Ok(())
    })
}

/// Creates a skipchain on the whole roster, node `index` leading, with `data` in its genesis block
/// (`base_height` ≥ 2, `maximum_height` in 1..=32). The handle generates and keeps the owner key, so
/// conode_cluster_skipchain_append can extend the chain. On success `out_genesis` (32 bytes)
/// receives the genesis id.
///
/// # Safety
/// `cluster` is a live cluster handle not used by another thread during the call; `data` is valid
/// for `data_len` bytes; `out_genesis` is valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_skipchain_create(
    cluster: *mut ConodeCluster,
    index: usize,
    base_height: u32,
    maximum_height: u32,
    data: *const u8,
    data_len: usize,
    out_genesis: *mut u8,
) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        let data = read_bytes(data, data_len, "data")?;
        non_null(out_genesis, "out_genesis")?;
        let service = skipchain_service(c, index)?;
        let owner = IdentityKeyPair::generate();
        let genesis = c.inner.runtime().block_on(service.create_chain(
            c.inner.roster(),
            base_height,
            maximum_height,
            vec![owner.public()],
            data.to_vec(),
        ))?;
        let mut id = [0u8; CONODE_HASH_LEN];
        id.copy_from_slice(&genesis.hash);
        c.owners.insert(genesis.hash, owner);
        write_value(out_genesis.cast::<[u8; CONODE_HASH_LEN]>(), id);
        Ok(())
    })
}

/// Appends a block with `data` to a skipchain created through this handle, node `index` leading.
/// On success `*out_index` (may be NULL) is the new block's index.
///
/// # Safety
/// `cluster` is a live cluster handle; `genesis` and `data` are valid for their lengths;
/// `out_index` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_skipchain_append(
    cluster: *const ConodeCluster,
    index: usize,
    genesis: *const u8,
    genesis_len: usize,
    data: *const u8,
    data_len: usize,
    out_index: *mut u64,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        let genesis = read_bytes(genesis, genesis_len, "genesis")?;
        let data = read_bytes(data, data_len, "data")?;
        hash_arg(genesis, "genesis")?;
        let owner = c.owners.get(genesis).ok_or_else(|| {
            FfiError::new(CONODE_ERR_INVALID, "genesis: not a skipchain created through this cluster handle")
        })?;
        check_index(c, index)?;
        let block = c.inner.append(index, owner, genesis, data.to_vec()).map_err(|e| match e {
            ClusterError::Node { .. } => not_running(index),
            ClusterError::Skipchain(SkipchainError::UnknownChain(_)) => {
                FfiError::new(CONODE_ERR_INVALID, format!("node {index} does not hold this skipchain"))
            }
            ClusterError::Skipchain(e) => e.into(),
            e => FfiError::new(CONODE_ERR_RUNTIME, e.to_string()),
        })?;
        write_opt(out_index, block.index);
        Ok(())
    })
}

/// The shortest proof from block `from` (32 bytes, e.g. the genesis id) to the newest block, as node
/// `index` answers `/Skipchain/GetUpdateChain`: the protobuf `Proof` that
/// conode_verify_skipchain_proof checks. Free `*out_proof` with conode_bytes_free.
///
/// # Safety
/// `cluster` is a live cluster handle; `from` is valid for `from_len` bytes; `out_proof` and
/// `out_proof_len` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_skipchain_proof(
    cluster: *const ConodeCluster,
    index: usize,
    from: *const u8,
    from_len: usize,
    out_proof: *mut *mut u8,
    out_proof_len: *mut usize,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        let from = read_bytes(from, from_len, "from")?;
        non_null(out_proof, "out_proof")?;
        non_null(out_proof_len, "out_proof_len")?;
        hash_arg(from, "from")?;
        let blocks = skipchain_service(c, index)?.update_chain(from)?;
        write_bytes(out_proof, out_proof_len, Proof { blocks }.encode_to_vec());
        Ok(())
    })
}

/// Stops every node and frees the cluster. NULL is ignored.
///
/// # Safety
/// `cluster` is NULL or a cluster handle that is not used again.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_free(cluster: *mut ConodeCluster) {
    let _ = guard(|| {
        free_handle(cluster);
        Ok(())
    });
}
