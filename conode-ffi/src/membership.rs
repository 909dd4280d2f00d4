//! Membership by vote on a local cluster handle, for C programs: make the network chain, start a
//! node that asks to join, propose a removal, vote, and read a node's state. The same calls as
//! Python's `LocalCluster.create_network/add_node/remove_node/vote/node_state` (both wrap
//! `conode_core::cluster::LocalCluster`).

use crate::cluster::{check_index, not_running, ConodeCluster};
use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID, CONODE_ERR_RUNTIME, CONODE_ERR_STATE};
use crate::strings::{handle_mut, handle_ref, read_bytes, read_opt_str, write_opt, write_string, write_value};
use crate::verify::CONODE_HASH_LEN;
use conode_core::cluster::ClusterError;
use conode_core::services::membership::rules::RuleError;
use conode_core::services::membership::MembershipError;
use std::ffi::c_char;
use std::time::Duration;

fn membership_error(e: ClusterError) -> FfiError {
    match e {
        ClusterError::Node { index, .. } => not_running(index),
        ClusterError::Membership(e @ MembershipError::Rule(_)) => {
            // A forged, duplicate or non-member ballot, an invalid proposal: refused.
            let code = if matches!(e, MembershipError::Rule(RuleError::Invalid(_))) {
                CONODE_ERR_INVALID
            } else {
                CONODE_ERR_STATE
            };
            FfiError::new(code, format!("membership: {e}"))
        }
        ClusterError::Membership(e @ (MembershipError::NoNetwork | MembershipError::Closed { .. })) => {
            FfiError::new(CONODE_ERR_STATE, format!("membership: {e}"))
        }
        ClusterError::Membership(e @ MembershipError::UnknownProposal(_)) => {
            FfiError::new(CONODE_ERR_INVALID, format!("membership: {e}"))
        }
        e => FfiError::new(CONODE_ERR_RUNTIME, format!("membership: {e}")),
    }
}

fn write_id(out: *mut u8, id: &[u8]) -> Result<(), FfiError> {
    let id: [u8; CONODE_HASH_LEN] = id.try_into().map_err(|_| {
        FfiError::new(CONODE_ERR_RUNTIME, format!("an id of {} bytes, expected {CONODE_HASH_LEN}", id.len()))
    })?;
    // SAFETY: the caller guarantees `out` is valid for CONODE_HASH_LEN bytes (checked non-NULL).
    unsafe { write_value(out.cast::<[u8; CONODE_HASH_LEN]>(), id) };
    Ok(())
}

/// Founds the network of the cluster's roster (membership by vote): node `index` makes the network
/// chain, then every other running node of the roster founds it too (a node follows a network only
/// with its operator's consent). `threshold`: yes votes a proposal needs (0: more than two thirds).
/// On success `out_network` (32 bytes) receives the network id.
///
/// # Safety
/// `cluster` is a live cluster handle; `out_network` is valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_network_create(
    cluster: *const ConodeCluster,
    index: usize,
    threshold: u32,
    out_network: *mut u8,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out_network, "out_network")?;
        check_index(c, index)?;
        let id = c.inner.create_network(index, threshold).map_err(membership_error)?;
        write_id(out_network, &id)
    })
}

/// Starts one more node and has it ask to join the network through node 0, with `node_data` (a
/// JSON object, or NULL). Returns once a member answered (within `timeout_ms`): `*out_index` (may
/// be NULL) is the new node's index in the cluster, `out_proposal` (32 bytes) the id of the
/// `add_node` proposal the members vote on. The node is `Pending` until it passes.
///
/// # Safety
/// `cluster` is a live cluster handle not used by another thread during the call; `node_data` is
/// NULL or a NUL-terminated string; `out_index` is NULL or valid for a write; `out_proposal` is
/// valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_add_node(
    cluster: *mut ConodeCluster,
    node_data: *const c_char,
    timeout_ms: u64,
    out_index: *mut usize,
    out_proposal: *mut u8,
) -> i32 {
    guard(|| {
        let c = handle_mut(cluster, "cluster")?;
        let node_data = read_opt_str(node_data, "node_data")?.unwrap_or("");
        non_null(out_proposal, "out_proposal")?;
        let (index, proposal) =
            c.inner.add_node(node_data, Duration::from_millis(timeout_ms)).map_err(membership_error)?;
        write_id(out_proposal, &proposal)?;
        write_opt(out_index, index);
        Ok(())
    })
}

/// Proposes removing node `index` from the network, signed by node `proposer`. On success
/// `out_proposal` (32 bytes) receives the proposal id.
///
/// # Safety
/// `cluster` is a live cluster handle; `out_proposal` is valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_remove_node(
    cluster: *const ConodeCluster,
    index: usize,
    proposer: usize,
    out_proposal: *mut u8,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out_proposal, "out_proposal")?;
        check_index(c, index)?;
        check_index(c, proposer)?;
        let id = c.inner.remove_node(index, proposer).map_err(membership_error)?;
        write_id(out_proposal, &id)
    })
}

/// Node `voter` votes yes (`approve` ≠ 0) or no on `proposal` (32 bytes) with its identity key,
/// once the proposal reached it (within `timeout_ms`). On success `*out_state` is the proposal's
/// state after the ballot: "open", "accepted" (its roster block is appended) or "rejected"; free
/// it with conode_string_free. A second ballot by one member fails with CONODE_ERR_STATE. With a
/// beacon running, an accepted roster change reshares its group to the new roster (same chain hash
/// and group key) a few periods later: see conode_cluster_beacon_group.
///
/// # Safety
/// `cluster` is a live cluster handle; `proposal` is valid for `proposal_len` bytes; `out_state`
/// is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_vote(
    cluster: *const ConodeCluster,
    proposal: *const u8,
    proposal_len: usize,
    voter: usize,
    approve: i32,
    timeout_ms: u64,
    out_state: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        let proposal = read_bytes(proposal, proposal_len, "proposal")?;
        non_null(out_state, "out_state")?;
        if proposal.len() != CONODE_HASH_LEN {
            return Err(FfiError::new(
                CONODE_ERR_INVALID,
                format!("argument `proposal`: {} bytes, a proposal id has {CONODE_HASH_LEN}", proposal.len()),
            ));
        }
        check_index(c, voter)?;
        let state =
            c.inner.vote(proposal, voter, approve != 0, Duration::from_millis(timeout_ms)).map_err(membership_error)?;
        write_string(out_state, state)
    })
}

/// Node `index`'s membership state: "Initialized", "Pending", "Trusted", "PartOfNetwork" or
/// "Retired". Free `*out_state` with conode_string_free.
///
/// # Safety
/// `cluster` is a live cluster handle; `out_state` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_node_state(
    cluster: *const ConodeCluster,
    index: usize,
    out_state: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out_state, "out_state")?;
        check_index(c, index)?;
        let state = c.inner.node_state(index).map_err(membership_error)?;
        write_string(out_state, state.as_str().to_string())
    })
}
