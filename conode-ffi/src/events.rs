//! Node events for C: `conode_node_next_event` takes the next event of a node as a JSON string
//! (`{"kind": "block_stored", "chain": "…", "index": 3, "hash": "…"}`; bytes in hex; the kinds are
//! listed in the header), waiting up to a timeout. Each node handle has its own subscription,
//! taken when the handle is created; `conode_node_events` / `conode_cluster_node_events` give
//! independent subscriptions (`ConodeEvents`) that another thread can wait on.

use crate::cluster::ConodeCluster;
use crate::error::{guard, non_null, FfiError, CONODE_ERR_INVALID};
use crate::node::ConodeNode;
use crate::strings::{free_handle, handle_ref, write_handle, write_string, write_value};
use conode_core::events::EventSubscriber;
use std::ffi::c_char;
use std::sync::Mutex;
use std::time::Duration;

/// An independent subscription to one node's events.
pub struct ConodeEvents {
    inner: Mutex<EventSubscriber>,
}

impl ConodeEvents {
    pub(crate) fn new(sub: EventSubscriber) -> Self {
        Self { inner: Mutex::new(sub) }
    }
}

/// Waits up to `timeout_ms` for the next event of `sub` and writes it to `out` as JSON, or NULL on
/// timeout.
///
/// # Safety
/// `out` is valid for a pointer write.
pub(crate) unsafe fn next_into(
    sub: &Mutex<EventSubscriber>,
    timeout_ms: u64,
    out: *mut *mut c_char,
) -> Result<(), FfiError> {
    non_null(out, "out")?;
    let event = conode_core::sync::lock(sub).next_event_timed(Duration::from_millis(timeout_ms));
    match event {
        // SAFETY: `out` checked non-NULL; valid for a write per this function's contract.
        Some(e) => unsafe { write_string(out, e.to_json().to_string()) },
        None => {
            // SAFETY: as above.
            unsafe { write_value(out, std::ptr::null_mut()) };
            Ok(())
        }
    }
}

/// Takes the next event of `node` (its own subscription, taken when the handle was created, so
/// no event of its start is missed), waiting up to `timeout_ms` milliseconds (0: only what is
/// queued). On success `*out` is a JSON object (free it with conode_string_free) or NULL when
/// no event came in time.
///
/// The JSON has a `kind`, `time_us` (when the node emitted it, microseconds since the Unix epoch)
/// and the event's fields (bytes in hex): `node_started` (`node_addr`,
/// `client_addr`), `node_stopping`, `peer_down` (`peer`, `reason`, `hung`), `peer_up` (`peer`),
/// `cosi_round_signed` (`purpose`, `statement_hash`, `signers`, `n`), `cosi_round_failed`
/// (`purpose`, `reason`), `block_stored` (`chain`, `index`, `hash`), `beacon_round_stored`
/// (`chain_hash`, `round`), `dkg_phase_changed` (`session`, `phase`),
/// `beacon_transition_staged` (`session`, `round`, `members`, `in_new_group`),
/// `beacon_transition_switched` (`round`, `members`), `beacon_transition_aborted` (`session`,
/// `round`, `reason`), `equivocation` (`chain`, `index`, `level`, `member`),
/// `prepare_equivocation` (`chain`, `index`, `view`, `member`), `backup_finished` (`entries`,
/// `bytes`, `millis`), and `lagged` (`missed`: events dropped because this subscriber
/// fell more than the queue capacity, 1024, behind). Unknown kinds may be added: skip them.
///
/// Not to be called while another thread starts, stops or frees the same handle; to wait on
/// another thread, use conode_node_events.
///
/// # Safety
/// `node` is a live node handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_next_event(
    node: *const ConodeNode,
    timeout_ms: u64,
    out: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let n = handle_ref(node, "node")?;
        // SAFETY: forwarded contract.
        unsafe { next_into(&n.events, timeout_ms, out) }
    })
}

/// A new, independent subscription to the events of `node` (from now on; it outlives stops and
/// restarts, and ends once the node handle is freed). Free it with conode_events_free.
///
/// # Safety
/// `node` is a live node handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_node_events(node: *const ConodeNode, out: *mut *mut ConodeEvents) -> i32 {
    guard(|| {
        let n = handle_ref(node, "node")?;
        non_null(out, "out")?;
        write_handle(out, ConodeEvents::new(n.inner.events()));
        Ok(())
    })
}

/// A new subscription to the events of cluster member `index` (from now on). Free it with
/// conode_events_free.
///
/// # Safety
/// `cluster` is a live cluster handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_cluster_node_events(
    cluster: *const ConodeCluster,
    index: usize,
    out: *mut *mut ConodeEvents,
) -> i32 {
    guard(|| {
        let c = handle_ref(cluster, "cluster")?;
        non_null(out, "out")?;
        if index >= c.inner.len() {
            return Err(FfiError::new(
                CONODE_ERR_INVALID,
                format!("node index {index} out of range (cluster of {})", c.inner.len()),
            ));
        }
        write_handle(out, ConodeEvents::new(c.inner.node(index).events()));
        Ok(())
    })
}

/// As conode_node_next_event, on an independent subscription. Safe to call from any one thread
/// at a time while the node is used elsewhere; NULL in `*out` on timeout, and for good once the
/// node handle was freed.
///
/// # Safety
/// `events` is a live events handle; `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn conode_events_next(
    events: *const ConodeEvents,
    timeout_ms: u64,
    out: *mut *mut c_char,
) -> i32 {
    guard(|| {
        let e = handle_ref(events, "events")?;
        // SAFETY: forwarded contract.
        unsafe { next_into(&e.inner, timeout_ms, out) }
    })
}

/// Frees a subscription (NULL is ignored).
///
/// # Safety
/// `events` is NULL or a live events handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn conode_events_free(events: *mut ConodeEvents) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(events) }
}
