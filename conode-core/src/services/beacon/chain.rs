//! The state of one running chain on this node (its group, this node's share, the latest stored
//! round and signature, the partials held and the recent latencies), how a chain is loaded (from
//! a DKG result or from storage), and the one path by which a beacon joins it: [`append`]
//! verifies and stores the next beacon, [`stored`] does the bookkeeping once it is durable.
//! Every other part of the service (round loop, partials, sync) goes through these.
//!
//! [`append`]: BeaconService::append
//! [`stored`]: BeaconService::stored

use super::audit::Audited;
use super::partials::{Pool, Pushes, ShareKeys};
use super::round_loop::{round_time_ms, run_chain, unix_now_ms};
use super::service::BeaconService;
use super::store::Share;
use super::RoundLatency;
use crate::config::ServerIdentity;
use crate::services::dkg::{DkgOutput, Group};
use crate::verify::beacon::{Beacon, ChainInfo, PreparedChain, Scheme};
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};
use tracing::{debug, info};

/// How many recent production latencies are kept.
const LATENCY_HISTORY: usize = 256;

pub(super) use crate::sync::lock;

/// A running chain: the group, this node's share and the in-memory round state.
pub(crate) struct Chain {
    pub(super) group: Group,
    pub(super) info: ChainInfo,
    pub(super) chain_hash: [u8; 32],
    pub(super) prepared: PreparedChain,
    pub(super) share: Share,
    pub(super) share_keys: ShareKeys,
    /// The group's share indices, sorted (who recovers which round: `partials::recoverers`).
    pub(super) indices: Vec<u32>,
    /// Pushed beacons of the next round accepted so far.
    pub(super) pushes: Mutex<Pushes>,
    /// The last round one of whose recoverers did not take this node's partial or was behind.
    pub(super) recoverer_trouble: std::sync::atomic::AtomicU64,
    pub(super) latest: watch::Sender<u64>,
    pub(super) latest_sig: Mutex<Vec<u8>>,
    /// Partials of the rounds after the latest stored one.
    pub(super) pool: Mutex<Pool>,
    /// Late partials already audited.
    pub(super) audited: Mutex<Audited>,
    /// One `advance` at a time, so that a partial is never checked twice.
    pub(super) advancing: tokio::sync::Mutex<()>,
    pub(super) append: tokio::sync::Mutex<()>,
    pub(super) notify: Notify,
    pub(super) latencies: Mutex<VecDeque<RoundLatency>>,
    pub(super) syncing: AtomicBool,
    /// The first round this node's group signs (the rounds before are synced, never signed).
    pub(super) first_round: u64,
    /// The first round this node no longer signs (its group hands over by resharing, or it left
    /// the group); `u64::MAX` while no transition is agreed.
    pub(super) stop_at: std::sync::atomic::AtomicU64,
}

impl Chain {
    pub(super) fn new(group: Group, share: Share, last: Option<Beacon>) -> Result<Self, String> {
        let info = group.chain_info();
        let prepared = info.prepare().map_err(|e| e.to_string())?;
        if !group.public_poly.verify_share(share.index, &share.scalar) || group.node(share.index).is_none() {
            return Err("the stored share does not belong to the group".into());
        }
        let share_keys = ShareKeys::new(&group)?;
        let (round, sig) = match last {
            Some(b) => (b.round, b.signature),
            None => (0, info.genesis_seed.clone()),
        };
        let mut indices: Vec<u32> = group.nodes.iter().map(|n| n.index).collect();
        indices.sort_unstable();
        Ok(Self {
            indices,
            pushes: Mutex::new(Pushes::default()),
            recoverer_trouble: std::sync::atomic::AtomicU64::new(0),
            chain_hash: info.hash(),
            info,
            prepared,
            share,
            share_keys,
            latest: watch::channel(round).0,
            latest_sig: Mutex::new(sig),
            pool: Mutex::new(Pool::default()),
            audited: Mutex::new(Audited::default()),
            advancing: tokio::sync::Mutex::new(()),
            append: tokio::sync::Mutex::new(()),
            notify: Notify::new(),
            latencies: Mutex::new(VecDeque::new()),
            syncing: AtomicBool::new(false),
            first_round: group.first_round(),
            stop_at: std::sync::atomic::AtomicU64::new(u64::MAX),
            group,
        })
    }
    pub(super) fn scheme(&self) -> Scheme {
        self.group.scheme
    }
    pub(super) fn latest(&self) -> u64 {
        *self.latest.borrow()
    }
    pub(super) fn threshold(&self) -> usize {
        self.group.threshold as usize
    }
    /// The previous signature the next round signs over (chained schemes).
    pub(super) fn prev_for_next(&self) -> Option<Vec<u8>> {
        self.scheme().is_chained().then(|| lock(&self.latest_sig).clone())
    }
    pub(super) fn peers(&self) -> Vec<(u32, ServerIdentity)> {
        self.group
            .nodes
            .iter()
            .filter(|n| n.index != self.share.index)
            .map(|n| (n.index, n.server_identity()))
            .collect()
    }
    pub(super) fn round_time_ms(&self, round: u64) -> Option<i64> {
        round_time_ms(&self.info, round)
    }
    /// Whether this node signs `round` with this chain's share (see `first_round`, `stop_at`).
    pub(super) fn signs(&self, round: u64) -> bool {
        round >= self.first_round && round < self.stop_at.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl BeaconService {
    /// Stores a DKG result and starts producing beacons.
    pub(super) fn install(&self, out: &DkgOutput) -> Result<(), String> {
        let store = self.inner.store.as_ref().ok_or("beacon storage unavailable")?;
        if store.has_group() {
            return Err("this node already has a beacon chain".into());
        }
        let share = Share { index: out.index, scalar: out.share, session: out.group.session };
        store.install(&out.group, &share).map_err(|e| e.to_string())?;
        self.init_approval_used();
        self.start_chain(out.group.clone(), share, None)
    }

    /// Makes `group` this node's chain and starts its round loop.
    pub(super) fn start_chain(&self, group: Group, share: Share, last: Option<Beacon>) -> Result<(), String> {
        self.run_chain_of(Chain::new(group, share, last)?)
    }

    /// Makes `chain` this node's chain and starts its round loop.
    pub(super) fn run_chain_of(&self, chain: Chain) -> Result<(), String> {
        let chain = Arc::new(chain);
        info!(
            chain = %hex::encode(chain.chain_hash),
            index = chain.share.index,
            latest = chain.latest(),
            scheme = %chain.scheme(),
            "beacon: chain loaded"
        );
        *self.inner.chain.write().unwrap_or_else(|p| p.into_inner()) = Some(chain.clone());
        let weak = Arc::downgrade(&self.inner);
        self.tasks().spawn(run_chain(weak, chain));
        Ok(())
    }

    /// Verifies and stores the next beacon. `Ok(false)`: already stored. `recovered`: recovered
    /// here by [`Self::advance`], which verified it already.
    pub(super) async fn append(&self, chain: &Arc<Chain>, mut beacon: Beacon, recovered: bool) -> Result<bool, String> {
        let store = self.inner.store.as_ref().ok_or("no storage")?;
        let _g = chain.append.lock().await;
        let latest = chain.latest();
        if beacon.round <= latest {
            return Ok(false);
        }
        if beacon.round != latest + 1 {
            return Err(format!("round {} does not follow {latest}", beacon.round));
        }
        if chain.scheme().is_chained() {
            if beacon.previous_signature.as_deref() != Some(lock(&chain.latest_sig).as_slice()) {
                return Err(format!("round {} does not extend this chain", beacon.round));
            }
        } else {
            beacon.previous_signature = None;
        }
        if !recovered {
            let (c, b) = (chain.clone(), beacon.clone());
            crate::crypto::pool::run(crate::crypto::pool::Priority::Urgent, move || {
                c.share_keys.verify_beacon(&c.prepared, &b)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        }
        store.put_beacon(&beacon).await.map_err(|e| e.to_string())?;
        self.stored(chain, &beacon, recovered);
        Ok(true)
    }

    /// Bookkeeping after a beacon is durable. The round's partials held and not checked (not
    /// used by a verified recovery) are audited a little later (see `audit`).
    pub(super) fn stored(&self, chain: &Arc<Chain>, beacon: &Beacon, recovered: bool) {
        *lock(&chain.latest_sig) = beacon.signature.clone();
        chain.latest.send_replace(beacon.round);
        let left = lock(&chain.pool).forget_up_to(beacon.round);
        if left.values().any(|h| !h.checked) {
            let msg = beacon.digest(chain.scheme());
            for (i, h) in left.into_iter().filter(|(_, h)| !h.checked && h.digest == msg) {
                self.audit_later(chain, i, beacon.round, msg, h.partial);
            }
        }
        if let Some(t) = chain.round_time_ms(beacon.round) {
            let ms = (unix_now_ms() - t) as f64;
            self.inner.stats.lag.observe(ms.max(0.0) / 1000.0);
            let mut l = lock(&chain.latencies);
            if l.len() == LATENCY_HISTORY {
                l.pop_front();
            }
            l.push_back(RoundLatency { round: beacon.round, ms, recovered });
        }
        debug!(round = beacon.round, recovered, "beacon: stored");
        self.after_stored(chain, beacon.round);
        self.inner
            .ctx
            .events
            .emit(crate::events::NodeEvent::BeaconRoundStored { chain_hash: chain.chain_hash, round: beacon.round });
        chain.notify.notify_waiters();
    }
}
