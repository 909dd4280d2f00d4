//! The randomness beacon on a local cluster handle, for C programs: start a chain by a DKG, wait
//! for a round, and reshare the group to other nodes of the cluster (same chain hash and group
//! key). The same calls as Python's `LocalCluster.start_beacon/beacon_reshare` (both wrap
//! `conode_core::cluster::LocalCluster`). Rounds are drand JSON, for conode_verify_beacon_json.

use crate::cluster::{check_index, not_running, ConodeCluster};
use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID, CONODE_ERR_RUNTIME, CONODE_ERR_STATE};
use crate::strings::{handle_ref, read_opt_str, write_opt, write_string};
use conode_core::cluster::ClusterError;
use conode_core::services::beacon::beacon_json;
use conode_core::services::beacon::messages::InitRequest;
use conode_core::services::ServiceError;
use conode_core::verify::beacon::Scheme;
use std::ffi::c_char;
use std::time::Duration;

fn beacon_error(e: ClusterError) -> FfiError {
    match e {
        ClusterError::Node { index, .. } => not_running(index),
        ClusterError::Service(e @ ServiceError::BadRequest(_)) => {
            FfiError::new(CONODE_ERR_INVALID, format!("beacon: {e}"))
        }
        ClusterError::Service(e @ (ServiceError::Refused(_) | ServiceError::Conflict(_))) => {
            FfiError::new(CONODE_ERR_STATE, format!("beacon: {e}"))
        }
        e => FfiError::new(CONODE_ERR_RUNTIME, format!("beacon: {e}")),
    }
}

/// Starts a drand-compatible beacon chain on the cluster's roster, led by node `index`: a DKG
/// (phases of at most `phase_timeout_ms`, ending early when everyone answered), round 1 due one
/// period after it, then one round every `period_secs`. `scheme` is a drand scheme id, or NULL for
/// "pedersen-bls-chained". Returns once the DKG is done; `*out_info_json` (may be NULL) receives
/// drand's chain info JSON (what `/info` serves; free it with conode_string_free). A node runs one
/// chain: a second start fails with CONODE_ERR_STATE.
///
/// # Safety
/// `cluster` is a live cluster handle; `scheme` is NULL or a NUL-terminated string;
/// `out_info_json` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_beacon_start(
    cluster: *const ConodeCluster,
    index: usize,
    scheme: *const c_char,
    period_secs: u32,
    phase_timeout_ms: u64,
    out_info_json: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        check_index(c, index)?;
        let scheme = read_opt_str(scheme, "scheme")?.unwrap_or("pedersen-bls-chained");
        let scheme = Scheme::from_id(scheme).map_err(|e| FfiError::new(CONODE_ERR_INVALID, format!("scheme: {e}")))?;
        if period_secs == 0 {
            return Err(FfiError::new(CONODE_ERR_INVALID, "period_secs must be at least 1"));
        }
        let phase_ms = phase_timeout_ms.max(1);
        let req = InitRequest {
            roster_toml: c.inner.roster().to_toml(),
            scheme: scheme.id().to_string(),
            period_secs,
            threshold: 0,
            phase_timeout_ms: phase_ms,
            genesis_time: 0,
            genesis_delay_ms: 1000 * u64::from(period_secs),
            beacon_id: String::new(),
        };
        let resp = c.inner.start_beacon(index, req).map_err(beacon_error)?;
        if !out_info_json.is_null() {
            write_string(out_info_json, resp.info_json)?;
        }
        Ok(())
    })
}

/// Beacon `round` as node `index` stores it, waiting up to `timeout_ms` for it: on success
/// `*out_beacon_json` is drand's beacon JSON (free it with conode_string_free). CONODE_ERR_STATE
/// when the round is not there in time (or the node runs no chain).
///
/// # Safety
/// `cluster` is a live cluster handle; `out_beacon_json` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_beacon_round(
    cluster: *const ConodeCluster,
    index: usize,
    round: u64,
    timeout_ms: u64,
    out_beacon_json: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out_beacon_json, "out_beacon_json")?;
        check_index(c, index)?;
        let beacon = c.inner.beacon_round(index, round, Duration::from_millis(timeout_ms)).map_err(beacon_error)?;
        let beacon = beacon.ok_or_else(|| {
            FfiError::new(CONODE_ERR_STATE, format!("node {index}: round {round} not available within {timeout_ms} ms"))
        })?;
        write_string(out_beacon_json, beacon_json(&beacon))
    })
}

/// Reshares the beacon group node `leader` runs (it must be a member) to the cluster's nodes
/// `members` (`members_len` indices), keeping the chain, its hash and its group key: drand's
/// resharing, as `conode beacon reshare`. `threshold` 0: ⌊n/2⌋+1; `phase_timeout_ms` 0: 10 s;
/// `transition_round` 0: the first round at least two phases and two periods away. Returns once
/// the new members agreed; `*out_transition_round` (may be NULL) is the first round the new group
/// produces. A roster change voted on the network chain (conode_cluster_vote) reshares by itself.
/// CONODE_ERR_STATE when the group refuses (no chain, leader not a member, a transition already
/// agreed, a member that did not accept), CONODE_ERR_INVALID for bad arguments.
///
/// # Safety
/// `cluster` is a live cluster handle; `members` is valid for `members_len` reads;
/// `out_transition_round` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_beacon_reshare(
    cluster: *const ConodeCluster,
    leader: usize,
    members: *const usize,
    members_len: usize,
    threshold: u32,
    phase_timeout_ms: u64,
    transition_round: u64,
    out_transition_round: *mut u64,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        check_index(c, leader)?;
        if members_len == 0 {
            return Err(FfiError::new(CONODE_ERR_INVALID, "argument `members`: no member"));
        }
        non_null(members, "members")?;
        // SAFETY: non-NULL and, per this function's contract, valid for `members_len` reads.
        let members = unsafe { std::slice::from_raw_parts(members, members_len) };
        for &m in members {
            check_index(c, m)?;
        }
        let resp = c
            .inner
            .beacon_reshare(leader, members, threshold, Duration::from_millis(phase_timeout_ms), transition_round)
            .map_err(beacon_error)?;
        write_opt(out_transition_round, resp.transition_round);
        Ok(())
    })
}

/// The beacon group node `index` currently runs: `*out_size` members, `*out_threshold` partial
/// signatures per round, `*out_transition_round` its first round when it took over by resharing
/// (0: the DKG's group); each out-param may be NULL. A reshared group replaces the old one on a
/// member when the round before the transition is stored, so polling this tells when a
/// resharing (by hand or after a vote) took effect. CONODE_ERR_STATE when the node runs no chain.
///
/// # Safety
/// `cluster` is a live cluster handle; each out-param is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_beacon_group(
    cluster: *const ConodeCluster,
    index: usize,
    out_size: *mut usize,
    out_threshold: *mut u32,
    out_transition_round: *mut u64,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        check_index(c, index)?;
        let g = c
            .inner
            .beacon_group(index)
            .map_err(beacon_error)?
            .ok_or_else(|| FfiError::new(CONODE_ERR_STATE, format!("node {index} runs no beacon chain")))?;
        write_opt(out_size, g.size);
        write_opt(out_threshold, g.threshold);
        write_opt(out_transition_round, g.transition_round.unwrap_or(0));
        Ok(())
    })
}
