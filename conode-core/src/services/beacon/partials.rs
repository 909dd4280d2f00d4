//! Partial signatures of a round: receiving them, holding them, recovering the beacon from them.
//! A member needs `t` valid partials to recover a beacon; checking each one with its own pairing
//! as it arrives made every member spend n−1 pairings per round. Instead partials are held
//! unchecked (only their form is checked on arrival), the beacon is recovered from `t` of them and
//! verified once; each partial is checked on its own only when that fails (to drop and report the
//! bad one), or, for partials that were not needed, a little after the round (see `audit`).
//!
//! The decisions are pure and tested here with real threshold keys: which rounds a partial may
//! be held for ([`classify`]), which partials a recovery uses ([`Pool::candidates`]), one recovery
//! attempt with its fallback to checking partials one by one ([`attempt_recovery`]).

use super::chain::{lock, Chain};
use super::messages as m;
use super::round_loop::unix_now_ms;
use super::service::BeaconService;
use super::store::{to_packet, Share};
use crate::crypto::threshold::{recover_point, Point, SigGroup, G1, G2};
use crate::crypto::IdentityPublicKey;
use crate::services::dkg::Group;
use crate::verify::beacon::{digest, Beacon, PreparedChain, Scheme};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tracing::warn;

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
        Ok(ShareKeys { prepared, signatures_on_g1: on_g1, keys_g1, keys_g2, dst: group.scheme.dst() })
    }

    /// Partials of one message checked together: with secret random 64-bit weights `rᵢ`,
    /// `e(Σ rᵢ·σᵢ, g) == e(H(m), Σ rᵢ·pkᵢ)` — one pairing check for the whole batch instead of
    /// one per partial. When the batch fails, each partial is checked on its own. Returns the
    /// verdict of each (index, partial), in order.
    pub fn check_batch(&self, digest: &[u8], items: &[(u32, Vec<u8>)]) -> Vec<(u32, bool)> {
        let holds = match items.len() {
            0 => true,
            1 => false,
            _ if self.signatures_on_g1 => batch_holds::<G1>(&self.keys_g2, self.dst, digest, items),
            _ => batch_holds::<G2>(&self.keys_g1, self.dst, digest, items),
        };
        if holds {
            return items.iter().map(|(i, _)| (*i, true)).collect();
        }
        items.iter().map(|(i, p)| (*i, self.check_one(*i, digest, p))).collect()
    }

    /// Whether `partial` decodes as a point of the scheme's signature group (cheap: on the curve;
    /// the subgroup is checked when the partial is verified).
    pub fn decodes(&self, partial: &[u8]) -> bool {
        if self.signatures_on_g1 {
            blst::min_sig::Signature::from_bytes(partial).is_ok()
        } else {
            blst::min_pk::Signature::from_bytes(partial).is_ok()
        }
    }

    /// One partial on its own.
    pub fn check_one(&self, index: u32, digest: &[u8], partial: &[u8]) -> bool {
        self.prepared.get(&index).is_some_and(|k| k.verify_message(digest, partial).is_ok())
    }
}

/// `e(Σ rᵢ·σᵢ, g) == e(H(digest), Σ rᵢ·pkᵢ)` with fresh non-zero 64-bit weights. Every partial
/// is decoded with its subgroup check, so no small-order part can cancel out.
fn batch_holds<S: SigGroup>(keys: &BTreeMap<u32, S::Key>, dst: &[u8], digest: &[u8], items: &[(u32, Vec<u8>)]) -> bool {
    let mut pk = <S::Key as Point>::identity();
    let mut sig = S::identity();
    for (i, bytes) in items {
        let (Some(key), Ok(s)) = (keys.get(i), S::from_bytes(bytes)) else { return false };
        let r = loop {
            let v = rand::random::<u64>();
            if v != 0 {
                break v;
            }
        };
        pk = pk.add(&key.mul_u64(r));
        sig = sig.add(&s.mul_u64(r));
    }
    S::verify(&pk, digest, dst, &sig)
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

    /// `round` is stored: its partials and those of earlier rounds are of no more use.
    pub fn forget_up_to(&mut self, round: u64) {
        self.rounds.retain(|r, _| *r > round);
    }

    /// Drops every partial of `round` (recovery from them failed for good).
    pub fn drop_round(&mut self, round: u64) {
        self.rounds.remove(&round);
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
    let parts: Vec<(u32, Vec<u8>)> = used.iter().map(|(i, h)| (*i, h.partial.clone())).collect();
    let beacon = recover_bytes(scheme, &parts, t)
        .map(|signature| Beacon { round, signature, previous_signature: prev })
        .ok()
        .filter(|b| prepared.verify(b).is_ok());
    if let Some(beacon) = beacon {
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

/// Lagrange recovery of the group signature from `t` partials. The result must be verified (with
/// the subgroup check): the partials are decoded without theirs, which that check covers.
pub(super) fn recover_bytes(scheme: Scheme, partials: &[(u32, Vec<u8>)], t: usize) -> Result<Vec<u8>, String> {
    fn go<P: Point>(partials: &[(u32, Vec<u8>)], t: usize) -> Result<Vec<u8>, String> {
        let pts: Vec<(u32, P)> = partials
            .iter()
            .map(|(i, b)| P::from_bytes_on_curve(b).map(|p| (*i, p)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        recover_point(&pts, t).map(|p| p.to_bytes()).map_err(|e| e.to_string())
    }
    if scheme.signatures_on_g1() {
        go::<G1>(partials, t)
    } else {
        go::<G2>(partials, t)
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
        let msg = digest(chain.scheme(), p.round, prev.as_deref());
        // Only the form is checked now; the signature with the others of the round (see above).
        if !chain.share_keys.decodes(&p.partial) {
            self.inner.stats.partial_invalid(index);
            warn!(from = index, round = p.round, "beacon: invalid partial rejected");
            return Err(format!("invalid partial signature for round {}: not a signature point", p.round));
        }
        let held = HeldPartial { digest: msg, partial: p.partial, checked: false };
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
            let prev = chain.prev_for_next();
            let attempt = attempt_recovery(
                &chain.pool,
                &chain.share_keys,
                &chain.prepared,
                chain.scheme(),
                chain.threshold(),
                round,
                prev,
            );
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
            let msg = beacon.digest(chain.scheme());
            match self.append(chain, beacon, true).await {
                Ok(true) => {
                    self.inner.stats.recovered.fetch_add(1, Ordering::Relaxed);
                    for (i, h) in unused.into_iter().filter(|(_, h)| !h.checked) {
                        self.audit_later(chain, i, round, msg, h.partial);
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

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
        HeldPartial { digest, partial: sign_partial_bytes(scheme, share, &digest), checked: false }
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
        }
    }
}
