//! Catching up from peers (peer protocol `Sync`): a member that is behind (back after an outage,
//! or told by a peer's reply that the chain moved on) fetches the beacons a peer has beyond its
//! latest, verifies each one against the group key and the chain so far, and stores them; the
//! serving side answers from storage.

use super::chain::{lock, Chain};
use super::messages::{self as m, protocol as proto};
use super::service::{BeaconService, Inner, SERVICE};
use super::store::{from_packet, to_packet};
use crate::config::ServerIdentity;
use crate::crypto::IdentityPublicKey;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Catches up from every peer at once (a node starting behind), each for at most 3 s.
pub(super) async fn catch_up_from_all(weak: &Weak<Inner>, chain: &Arc<Chain>) {
    let Some(inner) = weak.upgrade() else { return };
    let this = BeaconService { inner };
    let tasks: Vec<_> = chain
        .peers()
        .into_iter()
        .map(|(_, si)| {
            let (this, chain) = (this.clone(), chain.clone());
            this.tasks()
                .clone()
                .spawn(async move { tokio::time::timeout(Duration::from_secs(3), this.sync_from(&chain, &si)).await })
        })
        .collect();
    // The handle is not held while waiting, so that a stopping node is not kept alive.
    drop(this);
    for t in tasks {
        let _ = t.await;
    }
}

impl BeaconService {
    /// Starts catching up from `peer` unless a sync is running.
    pub(super) fn spawn_sync(&self, chain: Arc<Chain>, peer: &IdentityPublicKey) {
        let Some(si) = chain.group.index_of(peer).and_then(|i| chain.group.node(i)).map(|n| n.server_identity()) else {
            return;
        };
        if chain.syncing.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        self.tasks().spawn(async move {
            if let Some(inner) = weak.upgrade() {
                let this = BeaconService { inner };
                if let Err(e) = this.sync_from(&chain, &si).await {
                    debug!(error = %e, "beacon: sync failed");
                }
            }
            chain.syncing.store(false, Ordering::SeqCst);
        });
    }

    /// Fetches, verifies and stores the beacons `peer` has beyond ours. Returns how many.
    pub(super) async fn sync_from(&self, chain: &Arc<Chain>, peer: &ServerIdentity) -> Result<u64, String> {
        let store = self.inner.store.as_ref().ok_or("no storage")?;
        let mut total = 0u64;
        loop {
            let from = chain.latest() + 1;
            let req = m::SyncRequest { from_round: from, count: m::MAX_SYNC }.encode_to_vec();
            let reply = self
                .inner
                .network
                .request(peer, SERVICE, proto::SYNC, &from.to_be_bytes(), req, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            let reply = m::SyncReply::decode(reply.as_slice()).map_err(|e| e.to_string())?;
            if reply.beacons.is_empty() || reply.beacons.len() > m::MAX_SYNC as usize {
                return Ok(total);
            }
            let full = reply.beacons.len() == m::MAX_SYNC as usize;
            let _g = chain.append.lock().await;
            let mut latest = chain.latest();
            let mut prev = lock(&chain.latest_sig).clone();
            let mut good = Vec::new();
            for b in reply.beacons.into_iter().map(from_packet) {
                if b.round <= latest {
                    continue;
                }
                let mut b = b;
                if b.round != latest + 1 {
                    break;
                }
                if chain.scheme().is_chained() {
                    if b.previous_signature.as_deref() != Some(prev.as_slice()) {
                        warn!(round = b.round, "beacon: synced beacon does not extend this chain");
                        break;
                    }
                } else {
                    b.previous_signature = None;
                }
                latest = b.round;
                prev = b.signature.clone();
                good.push(b);
            }
            // Verified on the crypto pool (behind the live rounds' urgent work, never behind
            // audits: a member that is behind must catch up); the beacons up to the first that
            // fails are kept.
            let c = chain.clone();
            let (good, bad) = crate::crypto::pool::run(crate::crypto::pool::Priority::Normal, move || {
                let mut ok = Vec::with_capacity(good.len());
                for b in good {
                    if let Err(e) = c.prepared.verify(&b) {
                        return (ok, Some((b.round, e)));
                    }
                    ok.push(b);
                }
                (ok, None)
            })
            .await
            .map_err(|e| e.to_string())?;
            if let Some((round, e)) = bad {
                warn!(round, error = %e, "beacon: synced beacon does not verify");
            }
            let Some(latest) = good.last().map(|b| b.round) else { return Ok(total) };
            store.put_beacons(&good).map_err(|e| e.to_string())?;
            for b in &good {
                self.stored(chain, b, false);
            }
            let n = good.len() as u64;
            total += n;
            self.inner.stats.received.fetch_add(n, Ordering::Relaxed);
            info!(from = good[0].round, to = latest, "beacon: caught up from a peer");
            drop(_g);
            if !full {
                return Ok(total);
            }
        }
    }

    /// Answers a peer's `Sync` request from storage.
    pub(super) fn serve_sync(&self, r: m::SyncRequest) -> Result<m::SyncReply, String> {
        let store = self.inner.store.as_ref().ok_or("no storage")?;
        let beacons = store.range(r.from_round.max(1), r.count.min(m::MAX_SYNC)).map_err(|e| e.to_string())?;
        Ok(m::SyncReply { beacons: beacons.iter().map(to_packet).collect() })
    }
}
