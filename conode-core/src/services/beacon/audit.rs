//! Audits of partials that were not needed: a partial that arrives after its round is stored, or
//! one left over when the beacon was recovered from others, is of no use to the chain, but a member
//! sending bad ones should show up in the stats and logs. Each (round, member) is checked once, a
//! quarter period later, off the critical path of the next rounds; [`Audited`] remembers which
//! were, for the last few rounds only. The partials of one round waiting for their audit are
//! checked together in one batch ([`super::partials::ShareKeys::check_batch`]): with 64 members
//! one pairing per unneeded partial would be 30 pairings per member and round (the batch is one
//! multi-pairing check with 64-bit random weights, two Pippenger sums; when it fails each partial
//! is checked on its own, to name the bad ones). Partials reach the round's two recoverers only
//! (see `partials`), so each round every member's partial is either used by a verified recovery
//! or audited, at both recoverers: up to [`AUDIT_SAMPLE`] unneeded partials per round and member
//! are audited (all of them in groups of up to 64, t ≥ n/2), a uniform random sample of them
//! beyond, so that the work per member and round stays bounded (a member can hold at most one
//! partial per member and round anyway). When the recoverers fail and every member sends its
//! partial to every other, each member audits those it does not need, as before.

use super::chain::{lock, Chain};
use super::messages as m;
use super::service::BeaconService;
use crate::verify::beacon::digest;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Unneeded partials audited per round at most (a random sample of them).
pub(crate) const AUDIT_SAMPLE: usize = 32;

/// The (round, share index) pairs already audited, for the last rounds.
#[derive(Default)]
pub(crate) struct Audited {
    seen: BTreeSet<(u64, u32)>,
    /// Partials waiting for their audit, by (round, digest): a uniform sample of at most
    /// [`AUDIT_SAMPLE`], with the number offered so far.
    pending: BTreeMap<(u64, [u8; 32]), (Sample, usize)>,
}

/// Partials sampled for an audit: (share index, partial).
type Sample = Vec<(u32, Vec<u8>)>;

impl Audited {
    /// Whether (round, index) was not audited yet (and now is). Pairs of rounds more than two
    /// before `latest` are forgotten: partials that old are not audited at all.
    pub fn first(&mut self, round: u64, index: u32, latest: u64) -> bool {
        let fresh = self.seen.insert((round, index));
        self.seen.retain(|(r, _)| r + 2 >= latest);
        fresh
    }

    /// Offers a partial for the audit of (round, digest), kept in a uniform random sample of at
    /// most [`AUDIT_SAMPLE`] (reservoir sampling); true when it is the first one offered (the
    /// caller schedules the audit).
    pub fn queue(&mut self, round: u64, digest: [u8; 32], index: u32, partial: Vec<u8>) -> bool {
        let (sample, offered) = self.pending.entry((round, digest)).or_default();
        *offered += 1;
        if sample.len() < AUDIT_SAMPLE {
            sample.push((index, partial));
        } else {
            let k = rand::random::<u64>() as usize % *offered;
            if k < AUDIT_SAMPLE {
                sample[k] = (index, partial);
            }
        }
        *offered == 1
    }

    /// The partials sampled for (round, digest).
    pub fn take(&mut self, round: u64, digest: &[u8; 32]) -> Vec<(u32, Vec<u8>)> {
        self.pending.remove(&(round, *digest)).map(|(s, _)| s).unwrap_or_default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Whether a late partial of `round` from member `index` is worth an audit when `latest` is
/// stored: not our own, and not older than the round before the latest.
pub(super) fn audits_late(round: u64, index: u32, latest: u64, own: u32) -> bool {
    round + 1 >= latest && index != own
}

impl BeaconService {
    /// A partial that arrived after its round was stored, from a member that may be lagging.
    pub(super) fn audit_late(&self, chain: &Arc<Chain>, index: u32, p: &m::PartialBeacon) {
        if !audits_late(p.round, index, chain.latest(), chain.share.index) {
            return;
        }
        let Some(stored) = self.get(p.round) else { return };
        if chain.scheme().is_chained() && stored.previous_signature.as_deref() != Some(&p.previous_signature[..]) {
            if self.first_audit(chain, p.round, index) {
                self.inner.stats.partial_invalid(index);
                warn!(from = index, round = p.round, "beacon: late partial over another previous signature");
            }
            return;
        }
        let msg = digest(chain.scheme(), p.round, stored.previous_signature.as_deref());
        self.audit_later(chain, index, p.round, msg, p.partial.clone());
    }

    /// Whether (round, index) was not audited yet (and now is); keeps the last rounds only.
    fn first_audit(&self, chain: &Chain, round: u64, index: u32) -> bool {
        let mut audited = lock(&chain.audited);
        audited.first(round, index, chain.latest())
    }

    /// Checks a partial of a round already stored once, a quarter period later, in one batch
    /// with the other partials of that round queued by then.
    pub(super) fn audit_later(&self, chain: &Arc<Chain>, index: u32, round: u64, msg: [u8; 32], partial: Vec<u8>) {
        if !self.first_audit(chain, round, index) {
            return;
        }
        if !lock(&chain.audited).queue(round, msg, index, partial) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let chain = chain.clone();
        let delay = Duration::from_millis(u64::from(chain.info.period) * 250);
        self.tasks().spawn(async move {
            tokio::time::sleep(delay).await;
            let batch = lock(&chain.audited).take(round, &msg);
            let verdicts = crate::crypto::pool::run(crate::crypto::pool::Priority::Background, move || {
                chain.share_keys.check_batch(&msg, &batch)
            })
            .await
            .unwrap_or_default();
            for (index, _) in verdicts.into_iter().filter(|(_, valid)| !valid) {
                if let Some(inner) = inner.upgrade() {
                    inner.stats.partial_invalid(index);
                }
                warn!(from = index, round, "beacon: invalid partial (audited after its round)");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_late_partial_is_audited_once() {
        let mut a = Audited::default();
        assert!(a.first(10, 1, 10));
        assert!(!a.first(10, 1, 10));
        assert!(!a.first(10, 1, 11));
        // Another member, another round: their own audits.
        assert!(a.first(10, 2, 11));
        assert!(a.first(11, 1, 11));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn audits_sample_at_most_a_few_partials_per_round() {
        let mut a = Audited::default();
        let d = [1; 32];
        assert!(a.queue(5, d, 0, vec![0]));
        for i in 1..40 {
            assert!(!a.queue(5, d, i, vec![i as u8]));
        }
        // Another round (or digest) has its own sample.
        assert!(a.queue(6, d, 0, vec![0]));
        let sample = a.take(5, &d);
        assert_eq!(sample.len(), AUDIT_SAMPLE);
        let mut idx: Vec<u32> = sample.iter().map(|(i, _)| *i).collect();
        idx.sort_unstable();
        idx.dedup();
        assert_eq!(idx.len(), AUDIT_SAMPLE, "distinct members");
        assert!(sample.iter().all(|(i, p)| p == &vec![*i as u8]));
        assert!(a.take(5, &d).is_empty());
        assert_eq!(a.take(6, &d).len(), 1);
    }

    #[test]
    fn audits_of_old_rounds_are_forgotten() {
        let mut a = Audited::default();
        assert!(a.first(10, 1, 10));
        assert!(a.first(11, 1, 11));
        // Latest 13: round 10 (more than two before) leaves, 11 stays.
        assert!(a.first(13, 1, 13));
        assert_eq!(a.len(), 2);
        assert!(!a.first(11, 1, 13));
    }

    #[test]
    fn only_recent_partials_of_others_are_audited() {
        // Our own partial never; the round before the latest and the latest yes; older no.
        assert!(!audits_late(10, 0, 10, 0));
        assert!(audits_late(10, 1, 10, 0));
        assert!(audits_late(9, 1, 10, 0));
        assert!(!audits_late(8, 1, 10, 0));
    }
}
