//! The round loop of one node: wait for each round's time, sign and send this node's partial,
//! wait for the beacon, retry when it does not come. On a LAN (`partials::uses_recoverers`) a
//! partial goes first to the round's two recoverers only (see `partials::recoverers`), who push
//! the beacon to everyone; it goes to every member when that beacon has not come by the end of
//! the hold-off, on every retry, and always across a wide-area network. When to do what is
//! decided by pure functions of the chain info, the latest stored round and the clock
//! ([`next_step`], [`needs_catch_up`],
//! [`retry_interval`]), so the timing is tested without a network or a runtime; [`run_chain`]
//! only carries those decisions out.

use super::chain::{lock, Chain};
use super::messages::{self as m, protocol as proto};
use super::partials::{sign_partial_bytes, HeldPartial};
use super::service::{BeaconService, Inner, SERVICE};
use super::store::from_packet;
use super::sync::catch_up_from_all;
use super::BeaconFault;
use crate::crypto::pool::Priority;
use crate::verify::beacon::{digest, ChainInfo};
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::{debug, warn};

/// Longest sleep between two looks at the clock while no round is due.
const MAX_NAP: Duration = Duration::from_secs(2);

/// Milliseconds since the UNIX epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The time (ms since the UNIX epoch) `round` is due, if representable.
pub(super) fn round_time_ms(info: &ChainInfo, round: u64) -> Option<i64> {
    info.time_of_round(round).and_then(|s| s.checked_mul(1000))
}

/// What the round loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// `round` (the one after the latest stored) is not due yet: sleep `nap` (until its time, at
    /// most [`MAX_NAP`]) or until a beacon is stored, then look again.
    Wait { round: u64, nap: Duration },
    /// `round` is due: sign and send this node's partial, then wait for the beacon at most
    /// `give_up_after`; if it is not stored by then, look again (which signs the round again).
    Sign { round: u64, give_up_after: Duration },
}

/// The loop's decision at `now_ms`, the latest stored round being `latest`. A node behind by
/// several rounds signs the next one at once (the missed rounds are produced in order).
pub(super) fn next_step(info: &ChainInfo, latest: u64, now_ms: i64) -> Step {
    let due = info.latest_round(now_ms.div_euclid(1000));
    let round = latest + 1;
    if latest >= due {
        let wait = round_time_ms(info, round)
            .map(|t| Duration::from_millis(t.saturating_sub(now_ms).clamp(1, 3_600_000) as u64))
            .unwrap_or(Duration::from_secs(60));
        return Step::Wait { round, nap: wait.min(MAX_NAP) };
    }
    Step::Sign { round, give_up_after: retry_interval(info.period) }
}

/// Whether a starting node is more than one round behind and first catches up from its peers.
pub(super) fn needs_catch_up(info: &ChainInfo, latest: u64, now_ms: i64) -> bool {
    latest + 1 < info.latest_round(now_ms.div_euclid(1000))
}

/// How long a signed round is waited for before it is signed and sent again: half a period,
/// between 250 ms and 3 s.
pub(super) fn retry_interval(period_secs: u32) -> Duration {
    Duration::from_millis((u64::from(period_secs) * 500).clamp(250, 3000))
}

/// The round loop of one node: waits for each round's time, signs and sends its partial, waits
/// for the beacon (or retries), catches up when behind. Ends when the node stops.
pub(super) async fn run_chain(weak: Weak<Inner>, chain: Arc<Chain>) {
    // Catch up first if the chain moved on while this node was away.
    if needs_catch_up(&chain.info, chain.latest(), unix_now_ms()) {
        catch_up_from_all(&weak, &chain).await;
    }
    // The last round signed (a second try goes to every member).
    let mut signed = None;
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let this = BeaconService { inner };
        if !this.alive(&chain) {
            break;
        }
        let step = next_step(&chain.info, chain.latest(), unix_now_ms());
        let notified = chain.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (round, give_up_after) = match step {
            Step::Wait { nap, .. } => {
                drop(this);
                // Wake at the round's time, or early when something was stored, to re-check.
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = &mut notified => {}
                }
                continue;
            }
            Step::Sign { round, give_up_after } => (round, give_up_after),
        };
        if !chain.signs(round) {
            drop(this);
            if round < chain.first_round {
                // A new member of a reshared group: the rounds before its group's are synced.
                BeaconService::follow(&weak, &chain).await;
                continue;
            }
            debug!(round, "beacon: this share signs no more rounds (group handed over)");
            break;
        }
        let first_try = signed != Some(round);
        signed = Some(round);
        this.sign_and_send(&chain, round, !first_try).await;
        // Not a recoverer of the round: when its recoverers' beacon has not come by the end of
        // the hold-off and a recoverer is in trouble (its request failed, or it is behind), send
        // the partial to every member and recover from the partials held (and from those
        // arriving after). Recoverers that took the partial and are not behind are waited for
        // until the retry: a loaded group is not made to send n² partials.
        let mut fallback = this
            .recovery_wait_ms(&chain, round)
            .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms).min(give_up_after));
        drop(this);
        let deadline = tokio::time::Instant::now() + give_up_after;
        loop {
            if chain.latest() >= round {
                break;
            }
            let now = tokio::time::Instant::now();
            if fallback.is_some_and(|at| at <= now) && chain.recoverer_trouble.load(Ordering::SeqCst) == round {
                fallback = None;
                if let Some(inner) = weak.upgrade() {
                    BeaconService { inner }.sign_and_send(&chain, round, true).await;
                }
                continue;
            }
            let wake = fallback.filter(|at| *at > now).unwrap_or(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep_until(wake) => {}
                _ = &mut notified => {}
            }
            notified.set(chain.notify.notified());
            notified.as_mut().enable();
        }
        if chain.latest() < round {
            debug!(round, "beacon: round not complete yet, retrying");
        }
    }
    debug!(chain = %hex::encode(chain.chain_hash), "beacon: round loop ended");
}

impl BeaconService {
    /// Whether `chain` is still this running node's chain.
    pub(super) fn alive(&self, chain: &Arc<Chain>) -> bool {
        !self.tasks().is_cancelled() && self.chain().is_some_and(|c| Arc::ptr_eq(&c, chain))
    }

    /// Signs this node's partial of `round` (the next one), keeps it and sends it to the round's
    /// recoverers, or to every other member when `to_all`.
    ///
    /// One value per slot holds here without a durable record: a partial is a deterministic BLS
    /// signature with this node's share, of `round` alone (unchained) or of `round` and the stored
    /// round before it (chained), and a round is stored only once its group signature verified.
    /// That signature is unique (threshold BLS), so this node can only ever sign one message per
    /// round, before or after a crash; there is no second value it could be tricked into signing.
    pub(super) async fn sign_and_send(&self, chain: &Arc<Chain>, round: u64, to_all: bool) {
        if round != chain.latest() + 1 || !chain.signs(round) {
            return;
        }
        let prev = chain.prev_for_next();
        let msg = digest(chain.scheme(), round, prev.as_deref());
        let c = chain.clone();
        let Ok(partial) =
            crate::crypto::pool::run(Priority::Normal, move || c.share_keys.sign(&c.share.scalar, &msg)).await
        else {
            return warn!(round, "beacon: signing the partial failed");
        };
        if round != chain.latest() + 1 {
            // Stored while this node signed: nothing left to send.
            return;
        }
        let own = HeldPartial { digest: msg, partial: partial.clone(), checked: true, point: None };
        lock(&chain.pool).keep_own(round, chain.share.index, own);
        let fault = *lock(&self.inner.fault);
        let sent = match fault {
            BeaconFault::None | BeaconFault::ForgedPushes => partial,
            BeaconFault::Silent => return self.advance(chain).await,
            BeaconFault::InvalidPartials => {
                let other = digest(chain.scheme(), round.wrapping_add(1_000_000), prev.as_deref());
                let c = chain.clone();
                crate::crypto::pool::run(Priority::Normal, move || sign_partial_bytes(c.scheme(), &c.share, &other))
                    .await
                    .unwrap_or_default()
            }
        };
        let body = m::PartialBeacon {
            round,
            previous_signature: prev.unwrap_or_default(),
            index: chain.share.index,
            partial: sent,
        }
        .encode_to_vec();
        let timeout = retry_interval(chain.info.period).max(Duration::from_secs(1));
        let recoverers = super::partials::recoverers(&chain.indices, round);
        let to_all = to_all || !self.sends_to_recoverers(chain);
        for (i, si) in chain.peers().into_iter().filter(|(i, _)| to_all || recoverers.contains(i)) {
            let (net, body, svc, chain) =
                (self.inner.network.clone(), body.clone(), Arc::downgrade(&self.inner), chain.clone());
            let recoverer = recoverers.contains(&i);
            self.tasks().spawn(async move {
                // A recoverer that does not take the partial, or is behind, cannot recover the
                // round: the others fall back to sending to everyone (see `run_chain`).
                let trouble = |chain: &Chain| {
                    if recoverer && !to_all {
                        chain.recoverer_trouble.store(round, Ordering::SeqCst);
                        chain.notify.notify_waiters();
                    }
                };
                match net.request(&si, SERVICE, proto::PARTIAL, &round.to_be_bytes(), body, timeout).await {
                    Ok(reply) => {
                        let Some(inner) = svc.upgrade() else { return };
                        let this = BeaconService { inner };
                        let Ok(reply) = m::PartialReply::decode(reply.as_slice()) else { return trouble(&chain) };
                        if reply.beacon.is_none() && reply.latest_round + 1 < round {
                            trouble(&chain);
                        }
                        if let Some(b) = reply.beacon {
                            let b = from_packet(b);
                            if b.round == chain.latest() + 1 {
                                match this.append(&chain, b, false).await {
                                    Ok(true) => {
                                        this.inner.stats.received.fetch_add(1, Ordering::Relaxed);
                                        this.advance(&chain).await;
                                    }
                                    Ok(false) => {}
                                    Err(e) => warn!(from = i, error = %e, "beacon: peer sent an invalid beacon"),
                                }
                            }
                        }
                        if reply.latest_round > chain.latest() + 1 {
                            this.spawn_sync(chain.clone(), &si.public);
                        }
                    }
                    Err(e) => {
                        debug!(to = i, round, error = %e, "beacon: partial not delivered");
                        trouble(&chain);
                    }
                }
            });
        }
        // Sent first, so that the others are not kept waiting while this node recovers.
        self.advance(chain).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::beacon::Scheme;

    const GENESIS: i64 = 1_700_000_000;

    fn info(period: u32) -> ChainInfo {
        ChainInfo {
            public_key: Vec::new(),
            period,
            genesis_time: GENESIS,
            genesis_seed: vec![0; 32],
            scheme: Scheme::PedersenBlsChained,
            beacon_id: String::new(),
        }
    }

    /// ms since the epoch of round `r`'s time plus `plus_ms`.
    fn at(info: &ChainInfo, r: u64, plus_ms: i64) -> i64 {
        round_time_ms(info, r).unwrap() + plus_ms
    }

    #[test]
    fn before_genesis_waits_for_round_one() {
        let i = info(3);
        // Long before genesis: nap capped.
        assert_eq!(next_step(&i, 0, (GENESIS - 3600) * 1000), Step::Wait { round: 1, nap: MAX_NAP });
        // 700 ms before genesis: wake exactly at round 1's time.
        assert_eq!(next_step(&i, 0, GENESIS * 1000 - 700), Step::Wait { round: 1, nap: Duration::from_millis(700) });
        assert!(!needs_catch_up(&i, 0, GENESIS * 1000 - 700));
    }

    #[test]
    fn a_due_round_is_signed_and_given_up_after_half_a_period() {
        let i = info(3);
        // At round 1's time (genesis) round 1 is due.
        assert_eq!(
            next_step(&i, 0, GENESIS * 1000),
            Step::Sign { round: 1, give_up_after: Duration::from_millis(1500) }
        );
        // Round 5 stored, round 6 due since 1 ms: sign 6.
        assert_eq!(next_step(&i, 5, at(&i, 6, 1)), Step::Sign { round: 6, give_up_after: Duration::from_millis(1500) });
        // Still not stored after giving up: the same decision, so the round is signed again.
        assert_eq!(
            next_step(&i, 5, at(&i, 6, 1600)),
            Step::Sign { round: 6, give_up_after: Duration::from_millis(1500) }
        );
    }

    #[test]
    fn after_storing_waits_until_the_next_round_time() {
        let i = info(3);
        // Round 6 stored 200 ms after its time: wait 2.8 s, capped at the 2 s nap.
        assert_eq!(next_step(&i, 6, at(&i, 6, 200)), Step::Wait { round: 7, nap: MAX_NAP });
        // 1.5 s before round 7: wait exactly that.
        assert_eq!(next_step(&i, 6, at(&i, 7, -1500)), Step::Wait { round: 7, nap: Duration::from_millis(1500) });
        // At round 7's time: sign it.
        assert!(matches!(next_step(&i, 6, at(&i, 7, 0)), Step::Sign { round: 7, .. }));
        // Ahead of the clock (a peer's beacon, clock skew): never a zero nap.
        assert_eq!(next_step(&i, 8, at(&i, 7, 0)), Step::Wait { round: 9, nap: MAX_NAP });
        assert_eq!(next_step(&i, 7, at(&i, 8, -1)), Step::Wait { round: 8, nap: Duration::from_millis(1) });
    }

    #[test]
    fn behind_signs_the_next_missing_round_and_catches_up_first() {
        let i = info(3);
        let now = at(&i, 100, 10);
        // Back after an outage at round 40: produce 41 now, in order.
        assert!(matches!(next_step(&i, 40, now), Step::Sign { round: 41, .. }));
        assert!(needs_catch_up(&i, 40, now));
        // One round behind is the normal case, not a catch-up.
        assert!(!needs_catch_up(&i, 99, now));
        assert!(!needs_catch_up(&i, 100, now));
        assert!(needs_catch_up(&i, 98, now));
    }

    #[test]
    fn retry_interval_is_half_a_period_within_bounds() {
        assert_eq!(retry_interval(0), Duration::from_millis(250));
        assert_eq!(retry_interval(1), Duration::from_millis(500));
        assert_eq!(retry_interval(3), Duration::from_millis(1500));
        assert_eq!(retry_interval(6), Duration::from_millis(3000));
        assert_eq!(retry_interval(30), Duration::from_millis(3000));
        assert_eq!(retry_interval(u32::MAX), Duration::from_millis(3000));
    }
}
