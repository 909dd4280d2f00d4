//! Node events for embedders: what happens inside a running node (a block stored, a beacon round,
//! a peer going down, …) as one typed enum, delivered pull-style. Every subscriber has its own
//! bounded queue (the bus capacity); a subscriber that falls further behind than that gets one
//! [`NodeEvent::Lagged`] with the number of events it missed instead of growing the node's memory.
//! Nothing ever waits for a subscriber: emitting is a non-blocking push.
//!
//! Each event is emitted at the one place the thing happens (the skipchain store's commit, the
//! beacon's "stored" bookkeeping, the transport's peer health, …), through the [`EventBus`] that
//! the node creates once and hands to its services in the `ServiceContext`. The bus belongs to the
//! `Node`, so a subscription survives a stop and a restart of the node.
//!
//! To add an event, add a variant to [`NodeEvent`] (the enum is `#[non_exhaustive]`) and a line
//! in [`NodeEvent::kind`] and [`NodeEvent::to_json`].

use crate::crypto::IdentityPublicKey;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;

/// Events a subscriber may hold before it lags, unless the node is built with another capacity.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Something that happened inside a node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node accepts connections on both ports.
    NodeStarted { node_addr: String, client_addr: String },
    /// The node began to stop (no event of this run follows its services' last ones).
    NodeStopping,
    /// This node's transport found `peer` down (refused, unreachable, or `hung`: no answer on a
    /// live link).
    PeerDown { peer: IdentityPublicKey, reason: String, hung: bool },
    /// A peer that was down answers again.
    PeerUp { peer: IdentityPublicKey },
    /// A cosi round led by this node produced a collective signature.
    CosiRoundSigned { purpose: String, statement_hash: [u8; 32], signers: usize, n: usize },
    /// A cosi round led by this node failed.
    CosiRoundFailed { purpose: String, reason: String },
    /// A skipchain block became durable on this node (created, appended, pushed or caught up).
    BlockStored { chain: Vec<u8>, index: u64, hash: Vec<u8> },
    /// A beacon round became durable on this node.
    BeaconRoundStored { chain_hash: [u8; 32], round: u64 },
    /// A DKG session at this node entered a new phase (`deal`, `response`, `justification`,
    /// `done`, `failed`, …).
    DkgPhaseChanged { session: [u8; 32], phase: String },
    /// A beacon resharing was agreed here: from `round` on the group of `members` members signs
    /// (`in_new_group`: this node holds a staged share of it; else it leaves at `round`).
    BeaconTransitionStaged { session: [u8; 32], round: u64, members: u32, in_new_group: bool },
    /// This node's beacon chain is now signed by the reshared group (from `round` on).
    BeaconTransitionSwitched { round: u64, members: u32 },
    /// A beacon resharing ended here without a Finish in time: the current group goes on
    /// signing `round` and after.
    BeaconTransitionAborted { session: [u8; 32], round: u64, reason: String },
    /// This node holds evidence that `member` signed two forward links from one block at one level.
    Equivocation { chain: Vec<u8>, index: u64, level: u32, member: IdentityPublicKey },
    /// This node holds evidence that `member` prepared two different blocks at one index in one view.
    PrepareEquivocation { chain: Vec<u8>, index: u64, view: u64, member: IdentityPublicKey },
    /// A hot backup through the admin channel finished: `entries` entries, `bytes` bytes.
    BackupFinished { entries: u64, bytes: u64, millis: u64 },
    /// This subscriber fell behind: `missed` events were dropped from its queue.
    Lagged { missed: u64 },
}

impl NodeEvent {
    /// A stable short name (the `kind` of the JSON form).
    pub fn kind(&self) -> &'static str {
        match self {
            NodeEvent::NodeStarted { .. } => "node_started",
            NodeEvent::NodeStopping => "node_stopping",
            NodeEvent::PeerDown { .. } => "peer_down",
            NodeEvent::PeerUp { .. } => "peer_up",
            NodeEvent::CosiRoundSigned { .. } => "cosi_round_signed",
            NodeEvent::CosiRoundFailed { .. } => "cosi_round_failed",
            NodeEvent::BlockStored { .. } => "block_stored",
            NodeEvent::BeaconRoundStored { .. } => "beacon_round_stored",
            NodeEvent::DkgPhaseChanged { .. } => "dkg_phase_changed",
            NodeEvent::BeaconTransitionStaged { .. } => "beacon_transition_staged",
            NodeEvent::BeaconTransitionSwitched { .. } => "beacon_transition_switched",
            NodeEvent::BeaconTransitionAborted { .. } => "beacon_transition_aborted",
            NodeEvent::Equivocation { .. } => "equivocation",
            NodeEvent::PrepareEquivocation { .. } => "prepare_equivocation",
            NodeEvent::BackupFinished { .. } => "backup_finished",
            NodeEvent::Lagged { .. } => "lagged",
        }
    }

    /// The JSON form used by the C, Python and CLI faces: `{"kind": …, fields…}`, bytes in hex.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut v = match self {
            NodeEvent::NodeStarted { node_addr, client_addr } => {
                json!({ "node_addr": node_addr, "client_addr": client_addr })
            }
            NodeEvent::NodeStopping => json!({}),
            NodeEvent::PeerDown { peer, reason, hung } => {
                json!({ "peer": peer.to_hex(), "reason": reason, "hung": hung })
            }
            NodeEvent::PeerUp { peer } => json!({ "peer": peer.to_hex() }),
            NodeEvent::CosiRoundSigned { purpose, statement_hash, signers, n } => json!({
                "purpose": purpose, "statement_hash": hex::encode(statement_hash), "signers": signers, "n": n
            }),
            NodeEvent::CosiRoundFailed { purpose, reason } => json!({ "purpose": purpose, "reason": reason }),
            NodeEvent::BlockStored { chain, index, hash } => {
                json!({ "chain": hex::encode(chain), "index": index, "hash": hex::encode(hash) })
            }
            NodeEvent::BeaconRoundStored { chain_hash, round } => {
                json!({ "chain_hash": hex::encode(chain_hash), "round": round })
            }
            NodeEvent::DkgPhaseChanged { session, phase } => {
                json!({ "session": hex::encode(session), "phase": phase })
            }
            NodeEvent::BeaconTransitionStaged { session, round, members, in_new_group } => json!({
                "session": hex::encode(session), "round": round, "members": members, "in_new_group": in_new_group
            }),
            NodeEvent::BeaconTransitionSwitched { round, members } => json!({ "round": round, "members": members }),
            NodeEvent::BeaconTransitionAborted { session, round, reason } => {
                json!({ "session": hex::encode(session), "round": round, "reason": reason })
            }
            NodeEvent::Equivocation { chain, index, level, member } => json!({
                "chain": hex::encode(chain), "index": index, "level": level, "member": member.to_hex()
            }),
            NodeEvent::PrepareEquivocation { chain, index, view, member } => json!({
                "chain": hex::encode(chain), "index": index, "view": view, "member": member.to_hex()
            }),
            NodeEvent::BackupFinished { entries, bytes, millis } => {
                json!({ "entries": entries, "bytes": bytes, "millis": millis })
            }
            NodeEvent::Lagged { missed } => json!({ "missed": missed }),
        };
        if let Some(map) = v.as_object_mut() {
            map.insert("kind".into(), self.kind().into());
        }
        v
    }
}

/// An event with the time it was emitted (right after the thing happened, e.g. once the block
/// was durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    pub event: NodeEvent,
    pub at: SystemTime,
}

impl TimedEvent {
    fn now(event: NodeEvent) -> Self {
        Self { event, at: SystemTime::now() }
    }

    /// [`NodeEvent::to_json`] plus `time_us`: when it was emitted, in microseconds since the Unix
    /// epoch.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.event.to_json();
        let us = self.at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        if let Some(map) = v.as_object_mut() {
            map.insert("time_us".into(), us.into());
        }
        v
    }
}

/// The node's event channel (cheap to clone). Emitting never blocks and never fails.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<TimedEvent>,
    capacity: usize,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_EVENT_CAPACITY)
    }
}

impl EventBus {
    /// A bus whose subscribers each hold up to `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { tx: broadcast::channel(capacity).0, capacity }
    }

    /// Events a subscriber may hold before it lags.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hands `event` to every current subscriber (dropped when there is none).
    pub fn emit(&self, event: NodeEvent) {
        tracing::trace!(kind = event.kind(), "event");
        let _ = self.tx.send(TimedEvent::now(event));
    }

    /// A new subscriber: it sees every event emitted from now on.
    pub fn subscribe(&self) -> EventSubscriber {
        EventSubscriber { rx: self.tx.subscribe(), capacity: self.capacity, closed: false }
    }

    /// Current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// One subscriber's queue of events.
pub struct EventSubscriber {
    rx: broadcast::Receiver<TimedEvent>,
    capacity: usize,
    /// The bus is gone and every queued event was taken.
    closed: bool,
}

impl std::fmt::Debug for EventSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscriber").field("queued", &self.rx.len()).finish()
    }
}

impl EventSubscriber {
    /// The next event, waiting for it; `None` once the bus is gone (the node was dropped).
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        self.recv_timed().await.map(|t| t.event)
    }

    /// [`Self::recv`] with the time the event was emitted.
    pub async fn recv_timed(&mut self) -> Option<TimedEvent> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(TimedEvent::now(NodeEvent::Lagged { missed })),
            Err(broadcast::error::RecvError::Closed) => {
                self.closed = true;
                None
            }
        }
    }

    /// The next event if one is queued.
    pub fn try_next(&mut self) -> Option<NodeEvent> {
        self.try_next_timed().map(|t| t.event)
    }

    fn try_next_timed(&mut self) -> Option<TimedEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(TimedEvent::now(NodeEvent::Lagged { missed })),
            Err(broadcast::error::TryRecvError::Closed) => {
                self.closed = true;
                None
            }
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }

    /// Blocks the calling thread until the next event or `timeout` (`None` then, or when the node
    /// is gone). Needs no runtime; do not call it on an async runtime's worker with a long timeout.
    pub fn next_event(&mut self, timeout: Duration) -> Option<NodeEvent> {
        self.next_event_timed(timeout).map(|t| t.event)
    }

    /// [`Self::next_event`] with the time the event was emitted.
    pub fn next_event_timed(&mut self, timeout: Duration) -> Option<TimedEvent> {
        if let Some(e) = self.try_next_timed() {
            return Some(e);
        }
        if self.closed {
            return None;
        }
        block_on_timeout(self.recv_timed(), timeout).flatten()
    }

    /// True once the node is gone and every event was taken: nothing will come any more.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Events queued and not yet taken (at most the bus capacity: older ones are gone).
    pub fn queued(&self) -> usize {
        self.rx.len().min(self.capacity)
    }

    /// The subscription as an async stream (ends when the node is gone).
    pub fn into_stream(self) -> impl futures_util::Stream<Item = NodeEvent> + Send + Unpin + 'static {
        Box::pin(futures_util::stream::unfold(self, |mut s| async move { s.recv().await.map(|e| (e, s)) }))
    }
}

/// Wakes the thread that polls.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread until it completes or `timeout` passes (no runtime needed: the
/// future must only need wakers, as a broadcast receive does).
fn block_on_timeout<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now().checked_add(timeout);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
            None => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_gets_events_in_order_then_lagged_when_behind() {
        let bus = EventBus::new(4);
        let mut s = bus.subscribe();
        for round in 1..=3 {
            bus.emit(NodeEvent::BeaconRoundStored { chain_hash: [1; 32], round });
        }
        for round in 1..=3 {
            assert_eq!(s.next_event(Duration::ZERO), Some(NodeEvent::BeaconRoundStored { chain_hash: [1; 32], round }));
        }
        assert_eq!(s.next_event(Duration::from_millis(20)), None, "nothing queued: times out");
        for round in 4..=13 {
            bus.emit(NodeEvent::BeaconRoundStored { chain_hash: [1; 32], round });
        }
        assert_eq!(s.next_event(Duration::ZERO), Some(NodeEvent::Lagged { missed: 6 }));
        let rest: Vec<u64> = std::iter::from_fn(|| s.try_next())
            .map(|e| match e {
                NodeEvent::BeaconRoundStored { round, .. } => round,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(rest, vec![10, 11, 12, 13], "the newest `capacity` events are kept");
    }

    #[test]
    fn blocking_wait_wakes_on_an_event_from_another_thread() {
        let bus = EventBus::new(8);
        let mut s = bus.subscribe();
        let b = bus.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            b.emit(NodeEvent::NodeStopping);
        });
        let start = Instant::now();
        assert_eq!(s.next_event(Duration::from_secs(10)), Some(NodeEvent::NodeStopping));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().expect("emitter thread");
        drop(bus);
        assert_eq!(s.next_event(Duration::from_secs(1)), None, "bus gone: no more events");
    }

    #[test]
    fn json_form_names_the_kind_and_hex_encodes_bytes() {
        let e = NodeEvent::BlockStored { chain: vec![0xab; 2], index: 7, hash: vec![0xcd] };
        let j = e.to_json();
        assert_eq!(j["kind"], "block_stored");
        assert_eq!(j["chain"], "abab");
        assert_eq!(j["index"], 7);
        assert_eq!(j["hash"], "cd");
        assert_eq!(NodeEvent::Lagged { missed: 3 }.to_json()["missed"], 3);
        let backup = NodeEvent::BackupFinished { entries: 4, bytes: 100, millis: 7 }.to_json();
        assert_eq!((backup["kind"].as_str(), backup["entries"].as_u64()), (Some("backup_finished"), Some(4)));
        let staged =
            NodeEvent::BeaconTransitionStaged { session: [0xee; 32], round: 9, members: 5, in_new_group: false }
                .to_json();
        assert_eq!(staged["kind"], "beacon_transition_staged");
        assert_eq!((staged["round"].as_u64(), staged["in_new_group"].as_bool()), (Some(9), Some(false)));
        assert_eq!(staged["session"].as_str().map(str::len), Some(64));
        let switched = NodeEvent::BeaconTransitionSwitched { round: 9, members: 5 }.to_json();
        assert_eq!(
            (switched["kind"].as_str(), switched["members"].as_u64()),
            (Some("beacon_transition_switched"), Some(5))
        );
        let aborted =
            NodeEvent::BeaconTransitionAborted { session: [1; 32], round: 9, reason: "late".into() }.to_json();
        assert_eq!(
            (aborted["kind"].as_str(), aborted["reason"].as_str()),
            (Some("beacon_transition_aborted"), Some("late"))
        );
    }
}
