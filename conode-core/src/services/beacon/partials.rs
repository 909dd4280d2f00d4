//! Partial signatures of a round: receiving them, holding them, recovering the beacon from them.
//! A member needs `t` valid partials to recover a beacon; checking each one with its own pairing
//! as it arrives made every member spend n−1 pairings per round. Instead partials are held
//! unchecked (only their form is checked on arrival), the beacon is recovered from `t` of them and
//! verified once; each partial is checked on its own only when that fails (to drop and report the
//! bad one), or, for partials that were not needed, a little after the round (see `audit`).
//!
//! Not every member recovers every round: members send their partial to the round's
//! [`recoverers`] only (two members, rotating with the round), who recover at once and push the
//! verified beacon to the others, who verify it (one pairing check instead of decompressing
//! partials, a multi-scalar multiplication and the same check). That is 4(n − 1) messages per
//! round instead of n(n − 1), and 2 recoveries instead of n. A member that is not a recoverer of
//! the round waits for that beacon at most a [`holdoff_ms`] after the round's time; then it sends
//! its partial to every member and recovers on its own from the partials it gets (the previous
//! protocol): a silent or slow pair of recoverers costs a round that delay, never the beacon.
//! Across a wide-area network (a median round-trip time to the other members of at least
//! [`WIDE_AREA_RTT`]) the extra hop through a recoverer costs more than recovering locally, so a
//! member there sends its partial to everyone and recovers at once ([`uses_recoverers`]).
//!
//! The decisions are pure and tested here with real threshold keys: which rounds a partial may
//! be held for ([`classify`]), which partials a recovery uses ([`Pool::candidates`]), one recovery
//! attempt with its fallback to checking partials one by one ([`attempt_recovery`]), who recovers
//! when ([`recoverers`], [`waits_for_push`]).

use super::chain::{lock, Chain};
use super::messages as m;
use super::messages::protocol as proto;
use super::round_loop::unix_now_ms;
use super::service::BeaconService;
use super::service::SERVICE;
use super::store::{to_packet, Share};
use crate::crypto::threshold::{lagrange_coefficients, recover_point_with, Point, Scalar, SigGroup, G1, G2};
use crate::crypto::IdentityPublicKey;
use crate::kept::KeptMap;
use crate::services::dkg::Group;
use crate::verify::beacon::{digest, Beacon, BeaconError, PreparedChain, Scheme};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// Partials are kept for rounds up to this far ahead of the latest stored one.
pub(super) const WINDOW: u64 = 64;

/// A partial held for a round.
#[derive(Clone)]
pub(crate) struct HeldPartial {
    /// The digest it claims to sign (a chained round's digest depends on the previous signature).
    pub digest: [u8; 32],
    pub partial: Vec<u8>,
    /// Checked against the sender's share key (our own partial is, by construction).
    pub checked: bool,
    /// `partial` decoded on arrival (on the curve, not yet in the subgroup: see
    /// [`ShareKeys::decode`]), so that a recovery does not decode it again.
    pub point: Option<SigPoint>,
}

/// A partial signature decoded in the scheme's signature group.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SigPoint {
    G1(G1),
    G2(G2),
}

/// Partials received for one round, by share index.
pub(crate) type PartialsOfRound = BTreeMap<u32, HeldPartial>;

/// The members' public share keys, decoded once.
pub(crate) struct ShareKeys {
    prepared: BTreeMap<u32, PreparedChain>,
    signatures_on_g1: bool,
    /// The same keys as points, for batch checks: in G2 when signatures are on G1, else in G1.
    keys_g1: BTreeMap<u32, G1>,
    keys_g2: BTreeMap<u32, G2>,
    dst: &'static [u8],
    /// Lagrange coefficients of the last index sets recovered from (the first `t` members to
    /// answer are often the same ones, round after round).
    lagrange: Mutex<KeptMap<Vec<u32>, Vec<Scalar>>>,
    /// The group key, in the key group.
    group_key: GroupKey,
    /// The last messages (digests, under `dst`) hashed to the curve: a member hashes a round's
    /// digest to sign its partial, then again to verify the round's beacon (and, at a recoverer,
    /// to audit the partials): once per round is enough.
    hashed: Mutex<KeptMap<[u8; 32], Hashed>>,
}

/// Index sets whose Lagrange coefficients are kept.
const LAGRANGE_CACHE: usize = 8;
/// Digests whose hash to the curve is kept (the round being produced, the next one, and the
/// previous one, whose left-over partials are audited a little after it).
const HASHED_CACHE: usize = 4;

/// The group's public key.
#[derive(Clone, Copy)]
enum GroupKey {
    /// Signatures on G2.
    G1(G1),
    /// Signatures on G1.
    G2(G2),
}

/// A digest hashed to the signature group: what a partial signature of it needs (`H·share`) and
/// what a verification of a signature of it needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hashed {
    G1(G1),
    G2(G2),
}

impl ShareKeys {
    pub fn new(group: &Group) -> Result<Self, String> {
        let mut prepared = BTreeMap::new();
        let (mut keys_g1, mut keys_g2) = (BTreeMap::new(), BTreeMap::new());
        let on_g1 = group.scheme.signatures_on_g1();
        for n in &group.nodes {
            let pk = group.public_poly.public_share_bytes(n.index).map_err(|e| e.to_string())?;
            prepared.insert(n.index, PreparedChain::from_public_key(group.scheme, &pk).map_err(|e| e.to_string())?);
            if on_g1 {
                keys_g2.insert(n.index, G2::from_bytes(&pk).map_err(|e| e.to_string())?);
            } else {
                keys_g1.insert(n.index, G1::from_bytes(&pk).map_err(|e| e.to_string())?);
            }
        }
        let gk = group.public_key();
        let group_key = if on_g1 {
            GroupKey::G2(G2::from_bytes(&gk).map_err(|e| e.to_string())?)
        } else {
            GroupKey::G1(G1::from_bytes(&gk).map_err(|e| e.to_string())?)
        };
        Ok(ShareKeys {
            prepared,
            signatures_on_g1: on_g1,
            keys_g1,
            keys_g2,
            dst: group.scheme.dst(),
            lagrange: Mutex::new(KeptMap::new(LAGRANGE_CACHE)),
            group_key,
            hashed: Mutex::new(KeptMap::new(HASHED_CACHE)),
        })
    }

    /// `digest` hashed to the signature group under the scheme's DST; from the cache when it was
    /// hashed recently (the cache is this chain's, so keyed by the exact digest under the one DST
    /// of its scheme).
    pub fn hashed(&self, digest: &[u8; 32]) -> Hashed {
        if let Some(h) = lock(&self.hashed).get(digest) {
            return *h;
        }
        let h = self.hash_round(digest);
        lock(&self.hashed).insert(*digest, h);
        h
    }

    /// [`Self::hashed`] computed, without the cache.
    pub fn hash_round(&self, digest: &[u8; 32]) -> Hashed {
        if self.signatures_on_g1 {
            Hashed::G1(G1::hash_to(digest, self.dst))
        } else {
            Hashed::G2(G2::hash_to(digest, self.dst))
        }
    }

    /// This member's partial signature of `digest` with its share (`H(digest)·share`).
    pub fn sign(&self, share: &Scalar, digest: &[u8; 32]) -> Vec<u8> {
        match self.hashed(digest) {
            Hashed::G1(h) => h.mul(share).to_bytes(),
            Hashed::G2(h) => h.mul(share).to_bytes(),
        }
    }

    /// Whether `signature` is the group's signature of `digest` (decoded, in the subgroup, not
    /// the identity, and `e(sig, g) == e(H(digest), group key)`), with the digest's hash from
    /// [`Self::hashed`].
    pub fn verifies_group(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        match (self.hashed(digest), self.group_key) {
            (Hashed::G1(h), GroupKey::G2(pk)) => {
                G1::from_bytes_on_curve(signature).is_ok_and(|s| G1::verify_hashed(&pk, &h, &s))
            }
            (Hashed::G2(h), GroupKey::G1(pk)) => {
                G2::from_bytes_on_curve(signature).is_ok_and(|s| G2::verify_hashed(&pk, &h, &s))
            }
            _ => false,
        }
    }

    /// Verifies `beacon` against the group key (`prepared`, the chain's pure verifier): the same
    /// checks as [`PreparedChain::verify`], with the round's digest hashed once per round (see
    /// [`Self::hashed`]). When the fast check fails, the pure verifier decides and names the
    /// error.
    pub fn verify_beacon(&self, prepared: &PreparedChain, beacon: &Beacon) -> Result<(), BeaconError> {
        let scheme = prepared.scheme();
        let complete = beacon.round != 0 && (!scheme.is_chained() || beacon.previous_signature.is_some());
        if complete && self.verifies_group(&beacon.digest(scheme), &beacon.signature) {
            return Ok(());
        }
        prepared.verify(beacon)
    }

    /// The Lagrange coefficients at 0 of `indices` (in that order), from the cache when this set
    /// was recovered from recently.
    pub fn coefficients(&self, indices: &[u32]) -> Result<Vec<Scalar>, String> {
        if let Some(l) = lock(&self.lagrange).get(indices) {
            return Ok(l.clone());
        }
        let l = lagrange_coefficients(indices).map_err(|e| e.to_string())?;
        lock(&self.lagrange).insert(indices.to_vec(), l.clone());
        Ok(l)
    }

    /// Lagrange recovery of the group signature from these partials (all of them: `t`), with
    /// cached coefficients. The result must be verified (with the subgroup check): the partials
    /// are decoded without theirs, which that check covers. (The node recovers from held
    /// partials; the benchmark times this.)
    #[cfg(feature = "cluster")]
    pub fn recover(&self, partials: &[(u32, Vec<u8>)]) -> Result<Vec<u8>, String> {
        let held: Vec<(u32, &[u8], Option<SigPoint>)> =
            partials.iter().map(|(i, b)| (*i, b.as_slice(), None)).collect();
        self.recover_from(&held)
    }

    /// [`Self::recover`] from held partials, with the points decoded on arrival.
    pub fn recover_held(&self, used: &[(u32, HeldPartial)]) -> Result<Vec<u8>, String> {
        let held: Vec<(u32, &[u8], Option<SigPoint>)> =
            used.iter().map(|(i, h)| (*i, h.partial.as_slice(), h.point)).collect();
        self.recover_from(&held)
    }

    fn recover_from(&self, partials: &[(u32, &[u8], Option<SigPoint>)]) -> Result<Vec<u8>, String> {
        fn go<P: Point>(
            keys: &ShareKeys,
            partials: &[(u32, &[u8], Option<SigPoint>)],
            decoded: fn(SigPoint) -> Option<P>,
        ) -> Result<Vec<u8>, String> {
            let pts: Vec<P> = partials
                .iter()
                .map(|(_, b, p)| p.and_then(decoded).map_or_else(|| P::from_bytes_on_curve(b), Ok))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let idx: Vec<u32> = partials.iter().map(|(i, _, _)| *i).collect();
            let lambdas = keys.coefficients(&idx)?;
            recover_point_with(&pts, &lambdas).map(|p| p.to_bytes()).map_err(|e| e.to_string())
        }
        if self.signatures_on_g1 {
            go::<G1>(self, partials, |p| if let SigPoint::G1(p) = p { Some(p) } else { None })
        } else {
            go::<G2>(self, partials, |p| if let SigPoint::G2(p) = p { Some(p) } else { None })
        }
    }

    /// Partials of one message checked together: with secret random 64-bit weights `rᵢ`,
    /// `e(Σ rᵢ·σᵢ, g) == e(H(m), Σ rᵢ·pkᵢ)` — one pairing check for the whole batch instead of
    /// one per partial. When the batch fails, each partial is checked on its own. Returns the
    /// verdict of each (index, partial), in order.
    pub fn check_batch(&self, digest: &[u8; 32], items: &[(u32, Vec<u8>)]) -> Vec<(u32, bool)> {
        let holds = match (items.len(), self.hashed(digest)) {
            (0, _) => true,
            (1, _) => false,
            (_, Hashed::G1(h)) => batch_holds::<G1>(&self.keys_g2, &h, items),
            (_, Hashed::G2(h)) => batch_holds::<G2>(&self.keys_g1, &h, items),
        };
        if holds {
            return items.iter().map(|(i, _)| (*i, true)).collect();
        }
        items.iter().map(|(i, p)| (*i, self.check_one(*i, digest, p))).collect()
    }

    /// Whether `partial` decodes as a point of the scheme's signature group (on the curve; the
    /// subgroup is checked when the partial is verified). Used by the benchmark.
    #[cfg(feature = "cluster")]
    pub fn decodes(&self, partial: &[u8]) -> bool {
        self.decode(partial).is_some()
    }

    /// `partial` as a point of the scheme's signature group: on the curve and not the identity
    /// (the subgroup is checked when the partial, or the signature recovered from it, is verified).
    pub fn decode(&self, partial: &[u8]) -> Option<SigPoint> {
        if self.signatures_on_g1 {
            G1::from_bytes_on_curve(partial).ok().map(SigPoint::G1)
        } else {
            G2::from_bytes_on_curve(partial).ok().map(SigPoint::G2)
        }
    }

    /// One partial on its own.
    pub fn check_one(&self, index: u32, digest: &[u8], partial: &[u8]) -> bool {
        self.prepared.get(&index).is_some_and(|k| k.verify_message(digest, partial).is_ok())
    }
}

/// `e(Σ rᵢ·σᵢ, g) == e(H(digest), Σ rᵢ·pkᵢ)` with fresh non-zero 64-bit weights (`hashed` is
/// `H(digest)`). Every partial is decoded with its subgroup check, so no small-order part can
/// cancel out. Both sums are one Pippenger multi-scalar multiplication of 64-bit weights.
fn batch_holds<S: SigGroup>(keys: &BTreeMap<u32, S::Key>, hashed: &S, items: &[(u32, Vec<u8>)]) -> bool {
    let mut pks = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut weights = Vec::with_capacity(items.len());
    for (i, bytes) in items {
        let (Some(key), Ok(s)) = (keys.get(i), S::from_bytes(bytes)) else { return false };
        pks.push(*key);
        sigs.push(s);
        weights.push(loop {
            let v = rand::random::<u64>();
            if v != 0 {
                break v;
            }
        });
    }
    let pk = <S::Key as Point>::multi_mul_u64(&pks, &weights);
    let sig = S::multi_mul_u64(&sigs, &weights);
    S::verify_hashed(&pk, hashed, &sig)
}

/// The partials held for the rounds after the latest stored one: round → share index → partial.
#[derive(Default)]
pub(crate) struct Pool {
    rounds: BTreeMap<u64, PartialsOfRound>,
}

impl Pool {
    /// This node's own partial of `round` (replaces one held for its index).
    pub fn keep_own(&mut self, round: u64, index: u32, own: HeldPartial) {
        self.rounds.entry(round).or_default().insert(index, own);
    }

    /// A member's partial of `round`; the first one held for its index stays.
    pub fn offer(&mut self, round: u64, index: u32, held: HeldPartial) {
        self.rounds.entry(round).or_default().entry(index).or_insert(held);
    }

    /// `round` is stored: its partials and those of earlier rounds are of no more use. Returns
    /// those held for `round` itself (for the audit of the unchecked ones).
    pub fn forget_up_to(&mut self, round: u64) -> PartialsOfRound {
        let of_round = self.rounds.remove(&round).unwrap_or_default();
        self.rounds.retain(|r, _| *r > round);
        of_round
    }

    /// Marks partials of `round` checked: those a verified recovery used (they need no audit).
    pub fn mark_checked(&mut self, round: u64, indices: &[u32]) {
        if let Some(of_round) = self.rounds.get_mut(&round) {
            for i in indices {
                if let Some(h) = of_round.get_mut(i) {
                    h.checked = true;
                }
            }
        }
    }

    /// Drops every partial of `round` (recovery from them failed for good).
    pub fn drop_round(&mut self, round: u64) {
        self.rounds.remove(&round);
    }

    /// Whether a partial of member `index` for `round` is held.
    pub fn holds(&self, round: u64, index: u32) -> bool {
        self.rounds.get(&round).is_some_and(|m| m.contains_key(&index))
    }

    /// How many partials are held, all rounds together.
    pub fn len(&self) -> usize {
        self.rounds.values().map(BTreeMap::len).sum()
    }

    /// How many partials of `round` over `digest` are held.
    pub fn count(&self, round: u64, digest: &[u8; 32]) -> usize {
        self.rounds.get(&round).map_or(0, |m| m.values().filter(|h| &h.digest == digest).count())
    }

    /// With at least `t` partials of `round` over `digest` (from distinct members, by
    /// construction), the `t` a recovery uses (checked ones first, then by index) and the others.
    /// Partials over another digest (another previous signature) are left out.
    pub fn candidates(&self, round: u64, digest: &[u8; 32], t: usize) -> Option<(Used, Unused)> {
        let mut held: Vec<(u32, HeldPartial)> = self
            .rounds
            .get(&round)
            .map(|m| m.iter().filter(|(_, h)| &h.digest == digest).map(|(i, h)| (*i, h.clone())).collect())
            .unwrap_or_default();
        if held.len() < t {
            return None;
        }
        held.sort_by_key(|(i, h)| (!h.checked, *i));
        let unused = held.split_off(t);
        Some((held, unused))
    }

    /// Applies one-by-one checks of partials of `round`: the invalid ones leave the pool, the valid
    /// ones are marked checked. Returns the invalid indices (in `verdicts` order), or `None` when
    /// `round` is no longer held (nothing to apply).
    pub fn apply_verdicts(&mut self, round: u64, verdicts: &[(u32, bool)]) -> Option<Vec<u32>> {
        let of_round = self.rounds.get_mut(&round)?;
        let mut invalid = Vec::new();
        for &(i, valid) in verdicts {
            if valid {
                if let Some(h) = of_round.get_mut(&i) {
                    h.checked = true;
                }
            } else {
                of_round.remove(&i);
                invalid.push(i);
            }
        }
        Some(invalid)
    }

    /// The rounds held, in order.
    #[cfg(test)]
    pub fn rounds(&self) -> Vec<u64> {
        self.rounds.keys().copied().collect()
    }

    /// The share indices held for `round` and whether each is checked.
    #[cfg(test)]
    pub fn held(&self, round: u64) -> Vec<(u32, bool)> {
        self.rounds.get(&round).map(|m| m.iter().map(|(i, h)| (*i, h.checked)).collect()).unwrap_or_default()
    }
}

/// The partials a recovery uses, by share index.
pub(crate) type Used = Vec<(u32, HeldPartial)>;
/// The partials of the round it did not need.
pub(crate) type Unused = Vec<(u32, HeldPartial)>;

/// Where a received partial's round stands against this node's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// Round 0 is the genesis: it has no signature.
    RoundZero,
    /// Its round is stored already: answered with the beacon, and audited.
    Late,
    /// Its round's time has not come (one round of clock skew is allowed).
    NotDue,
    /// Beyond the window of rounds held: this node is far behind and catches up instead.
    BeyondWindow,
    /// Held for recovery.
    Held,
}

/// Where a partial of `round` stands when `latest` is stored and `due` is the latest round due.
pub(super) fn classify(round: u64, latest: u64, due: u64) -> Arrival {
    if round == 0 {
        Arrival::RoundZero
    } else if round <= latest {
        Arrival::Late
    } else if round > due.saturating_add(1) {
        Arrival::NotDue
    } else if round > latest + WINDOW {
        Arrival::BeyondWindow
    } else {
        Arrival::Held
    }
}

/// Members that recover each round at once; the others wait for their beacon first.
pub(super) const RECOVERERS: usize = 2;
/// In groups smaller than this, every member recovers every round at once.
pub(super) const DESIGNATED_FROM: usize = 4;
/// Shortest wait for the recoverers' beacon.
pub(super) const MIN_HOLDOFF_MS: i64 = 50;

/// The share indices (of the group's `indices`, sorted) that recover `round` at once: two
/// members half the group apart, rotating with the round, so that no member does it every round
/// and a down member delays at most the rounds it was chosen for; every member in small groups.
pub(super) fn recoverers(indices: &[u32], round: u64) -> Vec<u32> {
    let n = indices.len();
    if n < DESIGNATED_FROM {
        return indices.to_vec();
    }
    let first = (round % n as u64) as usize;
    (0..RECOVERERS).map(|k| indices[(first + k * n / RECOVERERS) % n]).collect()
}

/// Median round-trip time to the other members from which a member sends its partial to every
/// member and recovers on its own: the hop through a recoverer then costs more latency (half a
/// round trip) than the recovery's CPU (a few ms) it saves.
pub(super) const WIDE_AREA_RTT: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether a member leaves recovery to each round's recoverers, given the round-trip times it
/// measured to the other members: yes on a LAN or loopback (and before any is measured), no when
/// their median is at least [`WIDE_AREA_RTT`].
pub(super) fn uses_recoverers(rtts: &[std::time::Duration]) -> bool {
    if rtts.is_empty() {
        return true;
    }
    let mut v = rtts.to_vec();
    v.sort();
    v[v.len() / 2] < WIDE_AREA_RTT
}

/// How long (ms after the round's time) a member that is not a recoverer of a round waits for
/// the recoverers' beacon before recovering on its own: twice the median of its recent rounds'
/// latencies (the beacon normally comes within one), at least [`MIN_HOLDOFF_MS`], at most a
/// quarter period; an eighth of the period before any round was measured.
pub(super) fn holdoff_ms(period_secs: u32, recent_ms: &[f64]) -> i64 {
    let period = i64::from(period_secs.max(1)) * 1000;
    let cap = (period / 4).max(MIN_HOLDOFF_MS);
    if recent_ms.is_empty() {
        return (period / 8).clamp(MIN_HOLDOFF_MS, cap);
    }
    let mut v = recent_ms.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    ((2.0 * v[v.len() / 2]) as i64).clamp(MIN_HOLDOFF_MS, cap)
}

/// Whether a member leaves the recovery of a round to its recoverers for now: `Some(ms)` still to
/// wait when it is not one of them and the hold-off after the round's time has not passed.
/// Rounds long past (catching up) are recovered at once.
pub(super) fn waits_for_push(designated: bool, round_time_ms: Option<i64>, holdoff: i64, now_ms: i64) -> Option<u64> {
    if designated {
        return None;
    }
    let until = round_time_ms?.saturating_add(holdoff);
    (now_ms < until).then(|| (until - now_ms) as u64)
}

/// The recoverers' pushes of one round accepted so far (one verification per recoverer).
#[derive(Default)]
pub(crate) struct Pushes {
    round: u64,
    from: Vec<u32>,
}

impl Pushes {
    /// Whether the push of `round` by `index` is the first one (and now counted).
    pub fn first(&mut self, round: u64, index: u32) -> bool {
        if self.round != round {
            *self = Pushes { round, from: Vec::new() };
        }
        if self.from.contains(&index) {
            return false;
        }
        self.from.push(index);
        true
    }
}

/// The outcome of one recovery attempt of a round.
pub(super) enum Attempt {
    /// Fewer than `t` partials of the round over its digest.
    NotEnough,
    /// Recovered and verified against the group key; `unused` are the partials not needed.
    Recovered { beacon: Beacon, unused: Unused },
    /// The recovered signature did not verify; the unchecked partials used were checked one by
    /// one and the `invalid` ones dropped (the valid ones are now marked checked): try again.
    Rejected { invalid: Vec<u32> },
    /// Recovery from checked partials only failed: the round's partials were dropped.
    CheckedFailed,
}

/// One recovery attempt of `round` (signing `prev`, for chained schemes) from the partials in
/// `pool`. The pool is locked only to read and update it, never during the pairings.
pub(super) fn attempt_recovery(
    pool: &Mutex<Pool>,
    keys: &ShareKeys,
    prepared: &PreparedChain,
    scheme: Scheme,
    t: usize,
    round: u64,
    prev: Option<Vec<u8>>,
) -> Attempt {
    let msg = digest(scheme, round, prev.as_deref());
    let Some((used, unused)) = lock(pool).candidates(round, &msg, t) else { return Attempt::NotEnough };
    let beacon = keys
        .recover_held(&used)
        .map(|signature| Beacon { round, signature, previous_signature: prev })
        .ok()
        .filter(|b| keys.verify_beacon(prepared, b).is_ok());
    if let Some(beacon) = beacon {
        let used: Vec<u32> = used.iter().map(|(i, _)| *i).collect();
        lock(pool).mark_checked(round, &used);
        return Attempt::Recovered { beacon, unused };
    }
    // A bad partial among those used: find it.
    let used_unchecked: Vec<(u32, Vec<u8>)> =
        used.iter().filter(|(_, h)| !h.checked).map(|(i, h)| (*i, h.partial.clone())).collect();
    if used_unchecked.is_empty() {
        lock(pool).drop_round(round);
        return Attempt::CheckedFailed;
    }
    let verdicts: Vec<(u32, bool)> =
        used_unchecked.into_iter().map(|(i, p)| (i, keys.check_one(i, &msg, &p))).collect();
    let invalid = lock(pool).apply_verdicts(round, &verdicts).unwrap_or_default();
    Attempt::Rejected { invalid }
}

/// A partial signature of `msg` with the share, in the scheme's signature group.
pub(super) fn sign_partial_bytes(scheme: Scheme, share: &Share, msg: &[u8]) -> Vec<u8> {
    if scheme.signatures_on_g1() {
        crate::crypto::threshold::sign_partial::<G1>(&share.scalar, msg, scheme.dst()).to_bytes()
    } else {
        crate::crypto::threshold::sign_partial::<G2>(&share.scalar, msg, scheme.dst()).to_bytes()
    }
}

impl BeaconService {
    /// A member's partial (peer protocol `Partial`): held if its round is open, then recovery is
    /// tried; answered with the round's beacon when this node has it.
    pub(super) async fn on_partial(
        &self,
        chain: &Arc<Chain>,
        from: &IdentityPublicKey,
        p: m::PartialBeacon,
    ) -> Result<m::PartialReply, String> {
        let index = chain.group.index_of(from).ok_or("sender is not a member of the group")?;
        if p.index != index {
            return Err("partial for another member's index".into());
        }
        let latest = chain.latest();
        let reply =
            |b: Option<Beacon>| m::PartialReply { beacon: b.as_ref().map(to_packet), latest_round: chain.latest() };
        let due = chain.info.latest_round(unix_now_ms().div_euclid(1000));
        match classify(p.round, latest, due) {
            Arrival::RoundZero => return Err("round 0 has no signature".into()),
            Arrival::Late => {
                self.audit_late(chain, index, &p);
                return Ok(reply(self.get(p.round)));
            }
            Arrival::NotDue => return Err(format!("round {} is not due yet", p.round)),
            Arrival::BeyondWindow => {
                // Far behind: catch up from this peer instead.
                self.spawn_sync(chain.clone(), from);
                return Ok(reply(None));
            }
            Arrival::Held => {}
        }
        self.inner.stats.partial_received(index);
        let prev = if chain.scheme().is_chained() {
            if p.round == latest + 1 {
                let ours = lock(&chain.latest_sig).clone();
                if p.previous_signature != ours {
                    self.inner.stats.partial_invalid(index);
                    return Err(format!("partial of round {} over another previous signature", p.round));
                }
                Some(ours)
            } else {
                Some(p.previous_signature.clone())
            }
        } else {
            None
        };
        if lock(&chain.pool).holds(p.round, index) {
            // The first partial of a member for a round stays (see `Pool::offer`): a repeat (a
            // retry, or a flood) costs no decoding and no recovery attempt.
            return Ok(reply(self.get(p.round)));
        }
        let msg = digest(chain.scheme(), p.round, prev.as_deref());
        // Only the form is checked now; the signature with the others of the round (see above).
        let Some(point) = chain.share_keys.decode(&p.partial) else {
            self.inner.stats.partial_invalid(index);
            warn!(from = index, round = p.round, "beacon: invalid partial rejected");
            return Err(format!("invalid partial signature for round {}: not a signature point", p.round));
        };
        let held = HeldPartial { digest: msg, partial: p.partial, checked: false, point: Some(point) };
        lock(&chain.pool).offer(p.round, index, held);
        self.advance(chain).await;
        Ok(reply(self.get(p.round)))
    }

    /// Recovers and stores as many consecutive rounds as the partials held allow. With `t`
    /// partials of the next round held, the beacon is recovered from `t` of them (checked ones
    /// first) and verified once against the group key: one pairing check per round instead of one
    /// per partial. Only when it does not verify are the unchecked partials used checked one by
    /// one, and the bad ones dropped and counted. Unused unchecked partials are audited later.
    pub(super) async fn advance(&self, chain: &Arc<Chain>) {
        let _one = chain.advancing.lock().await;
        loop {
            let round = chain.latest() + 1;
            if self.recovery_wait_ms(chain, round).is_some() {
                // The round loop wakes when the wait is over (see `run_chain`).
                return;
            }
            let prev = chain.prev_for_next();
            let msg = digest(chain.scheme(), round, prev.as_deref());
            if lock(&chain.pool).count(round, &msg) < chain.threshold() {
                return;
            }
            // The pairings run on the crypto pool, off the runtime's workers.
            let c = chain.clone();
            let attempt = crate::crypto::pool::run(crate::crypto::pool::Priority::Urgent, move || {
                if c.latest() >= round {
                    // Stored meanwhile (a recoverer's push): nothing to recover.
                    return Attempt::NotEnough;
                }
                attempt_recovery(&c.pool, &c.share_keys, &c.prepared, c.scheme(), c.threshold(), round, prev)
            })
            .await;
            let Ok(attempt) = attempt else {
                return warn!(round, "beacon: recovery job lost");
            };
            let (beacon, unused) = match attempt {
                Attempt::NotEnough => return,
                Attempt::CheckedFailed => {
                    warn!(round, "beacon: recovery from checked partials failed");
                    return;
                }
                Attempt::Rejected { invalid } => {
                    for i in invalid {
                        self.inner.stats.partial_invalid(i);
                        warn!(from = i, round, "beacon: invalid partial rejected");
                    }
                    continue;
                }
                Attempt::Recovered { beacon, unused } => (beacon, unused),
            };
            // The unused partials are audited when the round is stored (see `stored`).
            drop(unused);
            let push = self.is_recoverer(chain, round).then(|| beacon.clone());
            match self.append(chain, beacon, true).await {
                Ok(true) => {
                    self.inner.stats.recovered.fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = push {
                        self.push_beacon(chain, &b);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(round, error = %e, "beacon: recovered signature not stored");
                    lock(&chain.pool).drop_round(round);
                    return;
                }
            }
        }
    }
}

impl BeaconService {
    /// Whether this node is one of `round`'s recoverers.
    pub(super) fn is_recoverer(&self, chain: &Chain, round: u64) -> bool {
        recoverers(&chain.indices, round).contains(&chain.share.index)
    }

    /// Whether this node sends its partials to the rounds' recoverers only (and waits for their
    /// beacon), from the round-trip times it measured to the group's other members.
    pub(super) fn sends_to_recoverers(&self, chain: &Chain) -> bool {
        let health = self.inner.network.health();
        let rtts: Vec<std::time::Duration> =
            chain.peers().iter().filter_map(|(_, si)| health.rtt(&si.public)).collect();
        uses_recoverers(&rtts)
    }

    /// `Some(ms)` while this node leaves the recovery of `round` to its recoverers.
    pub(super) fn recovery_wait_ms(&self, chain: &Chain, round: u64) -> Option<u64> {
        if !self.sends_to_recoverers(chain) {
            return None;
        }
        let recent: Vec<f64> = lock(&chain.latencies).iter().rev().take(16).map(|l| l.ms).collect();
        let holdoff = holdoff_ms(chain.info.period, &recent);
        waits_for_push(self.is_recoverer(chain, round), chain.round_time_ms(round), holdoff, unix_now_ms())
    }

    /// Sends a beacon this node recovered as one of its round's recoverers to the other members
    /// (peer protocol `Recovered`), so that they verify it instead of recovering it.
    fn push_beacon(&self, chain: &Arc<Chain>, beacon: &Beacon) {
        let body = match *lock(&self.inner.fault) {
            super::BeaconFault::None => to_packet(beacon).encode_to_vec(),
            super::BeaconFault::ForgedPushes => {
                let other = digest(chain.scheme(), beacon.round.wrapping_add(1_000_000), None);
                let signature = sign_partial_bytes(chain.scheme(), &chain.share, &other);
                to_packet(&Beacon { signature, ..beacon.clone() }).encode_to_vec()
            }
            _ => return,
        };
        let round = beacon.round;
        let timeout = super::round_loop::retry_interval(chain.info.period);
        for (i, si) in push_order(chain.peers(), chain.share.index) {
            let (net, body) = (self.inner.network.clone(), body.clone());
            self.tasks().spawn(async move {
                if let Err(e) = net.request(&si, SERVICE, proto::RECOVERED, &round.to_be_bytes(), body, timeout).await {
                    debug!(to = i, round, error = %e, "beacon: recovered beacon not delivered");
                }
            });
        }
    }

    /// A beacon pushed by one of its round's recoverers (peer protocol `Recovered`): verified and
    /// stored if it is the next round. At most one verification per recoverer and round; pushes
    /// of other rounds, or from other members, cost nothing (the round loop and sync catch up).
    pub(super) async fn on_recovered(
        &self,
        chain: &Arc<Chain>,
        from: &IdentityPublicKey,
        packet: m::BeaconPacket,
    ) -> Result<(), String> {
        let index = chain.group.index_of(from).ok_or("sender is not a member of the group")?;
        let beacon = super::store::from_packet(packet);
        if beacon.round != chain.latest() + 1 {
            return Ok(());
        }
        if !recoverers(&chain.indices, beacon.round).contains(&index) {
            return Err(format!("member {index} does not recover round {}", beacon.round));
        }
        if !lock(&chain.pushes).first(beacon.round, index) {
            return Ok(());
        }
        let round = beacon.round;
        match self.append(chain, beacon, false).await {
            Ok(true) => {
                self.inner.stats.received.fetch_add(1, Ordering::Relaxed);
                self.advance(chain).await;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                // A recoverer that lies cannot be waited for: the others fall back at the end of
                // the hold-off, as when it does not take their partials (see `run_chain`).
                self.inner.stats.invalid_pushes.fetch_add(1, Ordering::Relaxed);
                chain.recoverer_trouble.store(round, Ordering::SeqCst);
                chain.notify.notify_waiters();
                warn!(from = index, round, error = %e, "beacon: a recoverer pushed an invalid beacon");
                Err(e)
            }
        }
    }
}

/// The order a recoverer pushes its beacon in: the members after it in index order, then the
/// ones before it. The recoverers rotate with the round, so no member is always pushed first
/// (or last): in a busy process the verification queue follows the push order.
fn push_order<T>(mut peers: Vec<(u32, T)>, me: u32) -> Vec<(u32, T)> {
    peers.sort_by_key(|(i, _)| (*i < me, *i));
    peers
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn a_recoverer_pushes_to_the_members_after_it_first() {
        let peers: Vec<(u32, ())> = [0, 1, 2, 4, 5].iter().map(|i| (*i, ())).collect();
        let order = |me| push_order(peers.clone(), me).into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(order(3), vec![4, 5, 0, 1, 2]);
        assert_eq!(order(0), vec![0, 1, 2, 4, 5]);
        assert_eq!(order(6), vec![0, 1, 2, 4, 5]);
    }

    /// A group of `n` members with threshold `t` and every member's share, made from a real
    /// random polynomial (what a DKG hands over), so recovery below is real BLS.
    pub(in crate::services::beacon) fn group(scheme: Scheme, n: u32, t: u32) -> (Group, Vec<Share>) {
        let (group, scalars) = crate::services::dkg::group::test_group(scheme, n, t);
        let shares =
            scalars.into_iter().zip(0..).map(|(scalar, index)| Share { index, scalar, session: [7; 32] }).collect();
        (group, shares)
    }

    /// A member's partial of `round` as received (unchecked).
    fn held(scheme: Scheme, share: &Share, round: u64, prev: Option<&[u8]>) -> HeldPartial {
        let digest = digest(scheme, round, prev);
        HeldPartial { digest, partial: sign_partial_bytes(scheme, share, &digest), checked: false, point: None }
    }

    /// A well-formed partial that signs another message (a valid point, an invalid signature).
    fn bad(scheme: Scheme, share: &Share, round: u64, prev: Option<&[u8]>) -> HeldPartial {
        let mut h = held(scheme, share, round, prev);
        h.partial = sign_partial_bytes(scheme, share, &digest(scheme, round + 1_000_000, prev));
        h
    }

    struct Setup {
        scheme: Scheme,
        shares: Vec<Share>,
        keys: ShareKeys,
        prepared: PreparedChain,
        prev: Option<Vec<u8>>,
        pool: Mutex<Pool>,
    }

    impl Setup {
        fn new(scheme: Scheme, n: u32, t: u32) -> Setup {
            let (group, shares) = group(scheme, n, t);
            let info = group.chain_info();
            Setup {
                scheme,
                shares,
                keys: ShareKeys::new(&group).unwrap(),
                prepared: info.prepare().unwrap(),
                prev: scheme.is_chained().then(|| info.genesis_seed.clone()),
                pool: Mutex::new(Pool::default()),
            }
        }
        fn offer(&self, round: u64, i: u32, h: HeldPartial) {
            lock(&self.pool).offer(round, i, h);
        }
        fn good(&self, round: u64, i: u32) -> HeldPartial {
            held(self.scheme, &self.shares[i as usize], round, self.prev.as_deref())
        }
        fn bad(&self, round: u64, i: u32) -> HeldPartial {
            bad(self.scheme, &self.shares[i as usize], round, self.prev.as_deref())
        }
        fn attempt(&self, round: u64, t: usize) -> Attempt {
            attempt_recovery(&self.pool, &self.keys, &self.prepared, self.scheme, t, round, self.prev.clone())
        }
    }

    #[test]
    fn partials_decoded_on_arrival_recover_the_same_signature() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 5, 3);
            let plain: Vec<(u32, HeldPartial)> = (1..4).map(|i| (i, s.good(1, i))).collect();
            let decoded: Vec<(u32, HeldPartial)> = plain
                .iter()
                .map(|(i, h)| (*i, HeldPartial { point: s.keys.decode(&h.partial), ..h.clone() }))
                .collect();
            assert!(decoded.iter().all(|(_, h)| h.point.is_some()), "{scheme:?}");
            // A mix of decoded and not decoded partials, too.
            let mixed: Vec<(u32, HeldPartial)> = vec![decoded[0].clone(), plain[1].clone(), decoded[2].clone()];
            let bytes: Vec<(u32, Vec<u8>)> = plain.iter().map(|(i, h)| (*i, h.partial.clone())).collect();
            let want = s.keys.recover(&bytes).unwrap();
            assert_eq!(s.keys.recover_held(&decoded).unwrap(), want, "{scheme:?}");
            assert_eq!(s.keys.recover_held(&mixed).unwrap(), want, "{scheme:?}");
            let beacon = Beacon { round: 1, signature: want, previous_signature: s.prev.clone() };
            assert_eq!(s.prepared.verify(&beacon), Ok(()), "{scheme:?}");
            // The identity and points off the curve are refused on arrival.
            let mut identity = vec![0u8; s.good(1, 1).partial.len()];
            identity[0] = 0xc0;
            assert!(s.keys.decode(&identity).is_none(), "{scheme:?}");
            assert!(s.keys.decode(&[0xff; 3]).is_none(), "{scheme:?}");
        }
    }

    /// Signing and verifying with the round's hash computed once give the same partials and the
    /// same verdicts (and errors) as the pure verifier, on good and tampered beacons; the cache
    /// of hashed digests stays small.
    #[test]
    fn the_round_hashed_once_signs_and_verifies_as_before() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 5, 3);
            let msg = digest(scheme, 1, s.prev.as_deref());
            for share in &s.shares {
                assert_eq!(s.keys.sign(&share.scalar, &msg), sign_partial_bytes(scheme, share, &msg), "{scheme:?}");
            }
            let used: Vec<(u32, Vec<u8>)> = (0..3).map(|i| (i, s.good(1, i).partial)).collect();
            let good =
                Beacon { round: 1, signature: s.keys.recover(&used).unwrap(), previous_signature: s.prev.clone() };
            let mut cases = vec![good.clone()];
            let mut flipped = good.clone();
            let last = flipped.signature.len() - 1;
            flipped.signature[last] ^= 1;
            cases.push(flipped);
            // A partial: a valid point, not the group's signature.
            cases.push(Beacon { signature: s.good(1, 0).partial, ..good.clone() });
            cases.push(Beacon { round: 2, ..good.clone() });
            cases.push(Beacon { round: 0, ..good.clone() });
            cases.push(Beacon { previous_signature: Some(vec![9; 96]), ..good.clone() });
            cases.push(Beacon { previous_signature: None, ..good.clone() });
            cases.push(Beacon { signature: good.signature[1..].to_vec(), ..good.clone() });
            let mut identity = vec![0u8; good.signature.len()];
            identity[0] = 0xc0;
            cases.push(Beacon { signature: identity, ..good.clone() });
            cases.push(Beacon { signature: vec![0xff; good.signature.len()], ..good.clone() });
            for (k, b) in cases.iter().enumerate() {
                assert_eq!(s.keys.verify_beacon(&s.prepared, b), s.prepared.verify(b), "{scheme:?} case {k}");
            }
            assert_eq!(s.keys.verify_beacon(&s.prepared, &good), Ok(()), "{scheme:?}");
            let unchained_ok = !scheme.is_chained();
            assert_eq!(s.keys.verify_beacon(&s.prepared, &cases[5]).is_ok(), unchained_ok, "{scheme:?}");
            // The cache keeps the last few digests only.
            for r in 0..20 {
                s.keys.hashed(&digest(scheme, r, None));
            }
            assert_eq!(lock(&s.keys.hashed).len(), HASHED_CACHE);
            assert_eq!(s.keys.verify_beacon(&s.prepared, &good), Ok(()), "{scheme:?} after eviction");
        }
    }

    /// A member (or a lying one) flooding partials: of every round, only what `classify` lets in
    /// is held, one partial per member and round (the first), so the pool never holds more than
    /// members × open rounds, however many arrive; repeats are recognised before any decoding.
    #[test]
    fn a_flood_of_partials_holds_at_most_one_per_member_and_open_round() {
        let s = Setup::new(Scheme::BlsUnchainedG1Rfc9380, 5, 3);
        let (latest, due) = (10u64, 12u64);
        let mut pool = Pool::default();
        for k in 0..20_000u64 {
            let (round, index) = (k % 1000, ((k / 1000) % 5) as u32);
            if classify(round, latest, due) != Arrival::Held || pool.holds(round, index) {
                continue;
            }
            let mut h = s.good(round.max(1), index);
            // Later copies differ (a flood of forgeries): the first stays.
            h.partial[5] ^= (k / 5000) as u8;
            pool.offer(round, index, h);
        }
        // Rounds 11, 12 and 13 (one of clock skew) are open: 3 × 5 partials at most.
        assert_eq!(pool.rounds(), vec![11, 12, 13]);
        assert_eq!(pool.len(), 15);
        for r in 11..=13 {
            for i in 0..5 {
                assert!(pool.holds(r, i));
            }
        }
        let first = s.good(11, 1);
        let (used, _) = pool.candidates(11, &first.digest, 3).unwrap();
        assert!(used.iter().any(|(i, h)| *i == 1 && h.partial == first.partial), "the first partial stays");
        // Storing a round releases it and those before.
        pool.forget_up_to(12);
        assert_eq!(pool.len(), 5);
    }

    #[test]
    fn partials_are_held_only_in_the_window_of_open_rounds() {
        // latest 10, round 12 due: 11 and 12 (and one ahead for clock skew) are held.
        assert_eq!(classify(0, 10, 12), Arrival::RoundZero);
        assert_eq!(classify(9, 10, 12), Arrival::Late);
        assert_eq!(classify(10, 10, 12), Arrival::Late);
        assert_eq!(classify(11, 10, 12), Arrival::Held);
        assert_eq!(classify(13, 10, 12), Arrival::Held);
        assert_eq!(classify(14, 10, 12), Arrival::NotDue);
        // Far behind: up to WINDOW rounds ahead are held, beyond that the node syncs.
        assert_eq!(classify(10 + WINDOW, 10, 1000), Arrival::Held);
        assert_eq!(classify(11 + WINDOW, 10, 1000), Arrival::BeyondWindow);
        assert_eq!(classify(u64::MAX, 10, u64::MAX), Arrival::BeyondWindow);
        assert_eq!(classify(u64::MAX, 10, 1000), Arrival::NotDue);
    }

    #[test]
    fn storing_a_round_forgets_it_and_earlier_rounds() {
        let s = Setup::new(Scheme::PedersenBlsUnchained, 3, 2);
        for r in [4, 5, 6, 9] {
            s.offer(r, 1, s.good(r, 1));
        }
        lock(&s.pool).forget_up_to(5);
        assert_eq!(lock(&s.pool).rounds(), vec![6, 9]);
        lock(&s.pool).drop_round(9);
        assert_eq!(lock(&s.pool).rounds(), vec![6]);
    }

    #[test]
    fn the_first_partial_of_a_member_stays_but_our_own_replaces() {
        let s = Setup::new(Scheme::PedersenBlsUnchained, 3, 2);
        let first = s.good(1, 1);
        s.offer(1, 1, first.clone());
        s.offer(1, 1, s.bad(1, 1));
        let (used, _) = lock(&s.pool).candidates(1, &first.digest, 1).unwrap();
        assert_eq!(used[0].1.partial, first.partial);
        let mut own = s.good(1, 1);
        own.checked = true;
        lock(&s.pool).keep_own(1, 1, own);
        assert_eq!(lock(&s.pool).held(1), vec![(1, true)]);
    }

    #[test]
    fn recovery_needs_t_partials_from_distinct_members_over_the_same_digest() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 5, 3);
            assert!(matches!(s.attempt(1, 3), Attempt::NotEnough));
            s.offer(1, 4, s.good(1, 4));
            s.offer(1, 2, s.good(1, 2));
            // The same member again does not count twice.
            s.offer(1, 2, s.good(1, 2));
            assert!(matches!(s.attempt(1, 3), Attempt::NotEnough));
            // A partial over another previous signature does not count for this digest.
            let other_prev = Some(&[1u8; 96][..]).filter(|_| scheme.is_chained());
            if let Some(p) = other_prev {
                s.offer(1, 0, held(scheme, &s.shares[0], 1, Some(p)));
                assert!(matches!(s.attempt(1, 3), Attempt::NotEnough));
            }
            s.offer(1, 3, s.good(1, 3));
            let Attempt::Recovered { beacon, unused } = s.attempt(1, 3) else { panic!("not recovered") };
            assert_eq!(beacon.round, 1);
            assert_eq!(beacon.previous_signature, s.prev);
            assert_eq!(s.prepared.verify(&beacon), Ok(()));
            assert!(unused.is_empty());
            // Any t of the shares give the same (unique) group signature.
            let t = Setup { pool: Mutex::new(Pool::default()), ..s };
            for i in [0, 1, 3] {
                t.offer(1, i, t.good(1, i));
            }
            let Attempt::Recovered { beacon: again, .. } = t.attempt(1, 3) else { panic!("not recovered") };
            assert_eq!(again.signature, beacon.signature);
        }
    }

    #[test]
    fn checked_partials_are_used_first_and_the_rest_is_left_for_the_audit() {
        let s = Setup::new(Scheme::PedersenBlsChained, 5, 3);
        for i in 0..5 {
            s.offer(1, i, s.good(1, i));
        }
        let mut own = s.good(1, 4);
        own.checked = true;
        lock(&s.pool).keep_own(1, 4, own);
        let digest = s.good(1, 0).digest;
        let (used, unused) = lock(&s.pool).candidates(1, &digest, 3).unwrap();
        assert_eq!(used.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![4, 0, 1]);
        assert_eq!(unused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![2, 3]);
        let Attempt::Recovered { unused, .. } = s.attempt(1, 3) else { panic!("not recovered") };
        assert_eq!(unused.iter().map(|(i, h)| (*i, h.checked)).collect::<Vec<_>>(), vec![(2, false), (3, false)]);
        // The verified recovery covers the partials it used: only the others are left unchecked,
        // and storing the round hands exactly those to the audit.
        assert_eq!(lock(&s.pool).held(1), vec![(0, true), (1, true), (2, false), (3, false), (4, true)]);
        s.offer(2, 0, s.good(2, 0));
        let left = lock(&s.pool).forget_up_to(1);
        let unchecked: Vec<u32> = left.iter().filter(|(_, h)| !h.checked).map(|(i, _)| *i).collect();
        assert_eq!(unchecked, vec![2, 3]);
        assert_eq!(lock(&s.pool).rounds(), vec![2]);
    }

    #[test]
    fn two_recoverers_half_the_group_apart_rotate_with_the_round() {
        let idx: Vec<u32> = (0..32).collect();
        assert_eq!(recoverers(&idx, 0), vec![0, 16]);
        assert_eq!(recoverers(&idx, 33), vec![1, 17]);
        assert_eq!(recoverers(&idx, 31), vec![31, 15]);
        // Over n rounds every member recovers exactly twice.
        let mut times = vec![0; 32];
        for r in 100..132 {
            for i in recoverers(&idx, r) {
                times[i as usize] += 1;
            }
        }
        assert!(times.iter().all(|&c| c == 2), "{times:?}");
        // Indices with gaps (a reshared group), odd sizes: two distinct members of the group.
        let gaps = [2u32, 5, 6, 9, 11];
        for r in 0..20 {
            let rec = recoverers(&gaps, r);
            assert_eq!(rec.len(), 2);
            assert_ne!(rec[0], rec[1]);
            assert!(rec.iter().all(|i| gaps.contains(i)));
        }
        // Small groups: everyone recovers at once.
        assert_eq!(recoverers(&[0, 1, 2], 7), vec![0, 1, 2]);
        // Across a wide-area network everyone recovers at once; on a LAN, or before any round
        // trip is measured, the recoverers do.
        let ms = |v: &[u64]| v.iter().map(|m| std::time::Duration::from_millis(*m)).collect::<Vec<_>>();
        assert!(uses_recoverers(&[]));
        assert!(uses_recoverers(&ms(&[0, 1, 2, 150])));
        assert!(!uses_recoverers(&ms(&[100, 95, 110])));
        assert!(!uses_recoverers(&ms(&[1, 100, 100])));
        assert!(!uses_recoverers(&ms(&[10])));
        assert_eq!(recoverers(&[0, 1, 2, 3], 7).len(), 2);
    }

    #[test]
    fn others_wait_for_the_recoverers_within_bounds_then_recover() {
        // Before any measured round: an eighth of the period, within [50 ms, period / 4].
        assert_eq!(holdoff_ms(1, &[]), 125);
        assert_eq!(holdoff_ms(30, &[]), 3750);
        assert_eq!(holdoff_ms(0, &[]), 125);
        // Twice the median latency, bounded.
        assert_eq!(holdoff_ms(1, &[40.0, 60.0, 500.0]), 120);
        assert_eq!(holdoff_ms(1, &[5.0, 6.0, 7.0]), MIN_HOLDOFF_MS);
        assert_eq!(holdoff_ms(1, &[400.0, 900.0, 900.0]), 250);
        assert_eq!(holdoff_ms(3, &[f64::NAN, 2000.0, 2000.0]), 750);
        // A recoverer never waits; the others until round time + hold-off; old rounds not at all.
        assert_eq!(waits_for_push(true, Some(10_000), 100, 10_010), None);
        assert_eq!(waits_for_push(false, Some(10_000), 100, 10_010), Some(90));
        assert_eq!(waits_for_push(false, Some(10_000), 100, 10_100), None);
        assert_eq!(waits_for_push(false, Some(10_000), 100, 500_000), None);
        assert_eq!(waits_for_push(false, None, 100, 10_010), None);
    }

    #[test]
    fn one_push_per_recoverer_and_round_is_verified() {
        let mut p = Pushes::default();
        assert!(p.first(5, 1));
        assert!(!p.first(5, 1));
        assert!(p.first(5, 9));
        assert!(p.first(6, 1));
        assert!(!p.first(6, 1));
    }

    #[test]
    fn cached_lagrange_coefficients_recover_the_same_signature() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 9, 4);
            let d = digest(scheme, 3, s.prev.as_deref());
            let parts: Vec<(u32, Vec<u8>)> =
                (0..9).map(|i| (i, sign_partial_bytes(scheme, &s.shares[i as usize], &d))).collect();
            let sets: Vec<Vec<(u32, Vec<u8>)>> =
                (0..6).map(|k| (0..4).map(|j| parts[(k + 2 * j) % 9].clone()).collect()).collect();
            let first = s.keys.recover(&sets[0]).unwrap();
            let beacon = Beacon { round: 3, signature: first.clone(), previous_signature: s.prev.clone() };
            assert_eq!(s.prepared.verify(&beacon), Ok(()));
            for set in &sets {
                let idx: Vec<u32> = set.iter().map(|(i, _)| *i).collect();
                // Fresh, then cached: the same coefficients and the same (unique) signature.
                assert_eq!(s.keys.coefficients(&idx).unwrap(), lagrange_coefficients(&idx).unwrap());
                assert_eq!(s.keys.recover(set).unwrap(), first);
                assert_eq!(s.keys.recover(set).unwrap(), first);
                assert!(lock(&s.keys.lagrange).contains(&idx));
            }
            // The cache is bounded; the order of indices matters (coefficients follow it).
            for k in 0..LAGRANGE_CACHE as u32 + 3 {
                s.keys.coefficients(&[k, k + 1, k + 2, 20]).unwrap();
            }
            assert_eq!(lock(&s.keys.lagrange).len(), LAGRANGE_CACHE);
            let mut rev = sets[1].clone();
            rev.reverse();
            assert_eq!(s.keys.recover(&rev).unwrap(), first);
            // A partial that is no point fails the recovery (then each is checked on its own).
            let mut broken = sets[0].clone();
            broken[1].1 = vec![0; broken[1].1.len()];
            assert!(s.keys.recover(&broken).is_err());
            assert!(s.keys.coefficients(&[1, 2, 1]).is_err());
        }
    }

    #[test]
    fn a_bad_partial_is_found_dropped_and_recovery_then_succeeds() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 4, 3);
            s.offer(1, 0, s.good(1, 0));
            s.offer(1, 1, s.bad(1, 1));
            s.offer(1, 2, s.good(1, 2));
            s.offer(1, 3, s.good(1, 3));
            // 0, 1, 2 are used; 1 spoils the signature, so each is checked and 1 leaves.
            let Attempt::Rejected { invalid } = s.attempt(1, 3) else { panic!("bad partial not found") };
            assert_eq!(invalid, vec![1]);
            assert_eq!(lock(&s.pool).held(1), vec![(0, true), (2, true), (3, false)]);
            // The next attempt uses the checked ones and 3.
            let Attempt::Recovered { beacon, unused } = s.attempt(1, 3) else { panic!("not recovered") };
            assert_eq!(s.prepared.verify(&beacon), Ok(()));
            assert!(unused.is_empty());
        }
    }

    #[test]
    fn too_few_good_partials_leave_the_round_waiting() {
        let s = Setup::new(Scheme::PedersenBlsUnchained, 4, 3);
        s.offer(1, 0, s.good(1, 0));
        s.offer(1, 1, s.bad(1, 1));
        s.offer(1, 2, s.bad(1, 2));
        let Attempt::Rejected { invalid } = s.attempt(1, 3) else { panic!("bad partials not found") };
        assert_eq!(invalid, vec![1, 2]);
        assert!(matches!(s.attempt(1, 3), Attempt::NotEnough));
        // The good one is kept (checked) for when more arrive.
        assert_eq!(lock(&s.pool).held(1), vec![(0, true)]);
        s.offer(1, 2, s.good(1, 2));
        s.offer(1, 3, s.good(1, 3));
        assert!(matches!(s.attempt(1, 3), Attempt::Recovered { .. }));
    }

    #[test]
    fn checked_partials_that_do_not_recover_drop_the_round() {
        // Checked partials that cannot give the group signature (here: signed with shares of
        // another polynomial, marked checked as our own would be) are not checked again.
        let s = Setup::new(Scheme::PedersenBlsUnchained, 3, 2);
        let (_, strangers) = group(Scheme::PedersenBlsUnchained, 3, 2);
        for i in 0..2 {
            let mut h = held(s.scheme, &strangers[i as usize], 1, None);
            h.checked = true;
            s.offer(1, i, h);
        }
        assert!(matches!(s.attempt(1, 2), Attempt::CheckedFailed));
        assert!(lock(&s.pool).rounds().is_empty());
    }

    #[test]
    fn share_keys_check_each_member_and_the_form_of_partials() {
        let s = Setup::new(Scheme::BlsUnchainedG1Rfc9380, 3, 2);
        let good = s.good(1, 2);
        assert!(s.keys.check_one(2, &good.digest, &good.partial));
        // Someone else's key, another message, an unknown member.
        assert!(!s.keys.check_one(1, &good.digest, &good.partial));
        assert!(!s.keys.check_one(2, &[0; 32], &good.partial));
        assert!(!s.keys.check_one(9, &good.digest, &good.partial));
        assert!(s.keys.decodes(&good.partial));
        assert!(!s.keys.decodes(&[0u8; 48]));
        assert!(!s.keys.decodes(&good.partial[..47]));
    }

    #[test]
    fn a_batch_of_partials_with_one_bad_names_exactly_that_member() {
        for scheme in [Scheme::PedersenBlsChained, Scheme::BlsUnchainedG1Rfc9380] {
            let s = Setup::new(scheme, 7, 4);
            let digest = digest(scheme, 5, s.prev.as_deref());
            let mut items: Vec<(u32, Vec<u8>)> =
                (0..7).map(|i| (i, sign_partial_bytes(scheme, &s.shares[i as usize], &digest))).collect();
            assert!(s.keys.check_batch(&digest, &items).iter().all(|(_, ok)| *ok), "{scheme:?}");
            // Member 4 signs another round: a valid point, a wrong signature.
            items[4].1 = bad(scheme, &s.shares[4], 5, s.prev.as_deref()).partial;
            let verdicts = s.keys.check_batch(&digest, &items);
            assert_eq!(verdicts.iter().filter(|(_, ok)| !ok).map(|(i, _)| *i).collect::<Vec<_>>(), vec![4]);
            // Member 2's valid partial under member 3's index.
            items[4].1 = sign_partial_bytes(scheme, &s.shares[4], &digest);
            items[3].1 = items[2].1.clone();
            let verdicts = s.keys.check_batch(&digest, &items);
            assert_eq!(verdicts.iter().filter(|(_, ok)| !ok).map(|(i, _)| *i).collect::<Vec<_>>(), vec![3]);
            // Batch verdicts are exactly the one-by-one ones, on good and tampered batches (bad
            // signatures, non-points, wrong sizes, unknown members).
            items[3].1 = sign_partial_bytes(scheme, &s.shares[3], &digest);
            let one_by_one = |items: &[(u32, Vec<u8>)]| -> Vec<(u32, bool)> {
                items.iter().map(|(i, p)| (*i, s.keys.check_one(*i, &digest, p))).collect()
            };
            assert_eq!(s.keys.check_batch(&digest, &items), one_by_one(&items));
            assert!(one_by_one(&items).iter().all(|(_, ok)| *ok));
            let mut tampered = items.clone();
            tampered[0].1 = bad(scheme, &s.shares[0], 5, s.prev.as_deref()).partial;
            tampered[2].1 = vec![0; tampered[2].1.len()];
            tampered[5].1.truncate(10);
            tampered[6].0 = 99;
            assert_eq!(s.keys.check_batch(&digest, &tampered), one_by_one(&tampered));
            assert_eq!(
                s.keys
                    .check_batch(&digest, &tampered)
                    .iter()
                    .filter(|(_, ok)| !ok)
                    .map(|(i, _)| *i)
                    .collect::<Vec<_>>(),
                vec![0, 2, 5, 99]
            );
            assert_eq!(s.keys.check_batch(&digest, &items[..1]), one_by_one(&items[..1]));
        }
    }
}
