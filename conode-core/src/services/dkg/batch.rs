//! Checking the shares a DKG member received against their dealers' commitments in one batch.
//! One by one, every deal costs a full scalar multiplication `sᵢ·G` besides the evaluation of
//! the dealer's public polynomial at the recipient, `Cᵢ(j)`. With secret random 64-bit weights
//! `rᵢ` all deals are checked at once with `(Σ rᵢ·sᵢ)·G == Σ rᵢ·Cᵢ(j)`: one full multiplication
//! and one 64-bit multiplication per deal. A wrong share passes with probability at most 2⁻⁶⁴
//! (the commitments are decoded with their subgroup check, so no small-order part can cancel).
//! When the batch fails, each deal is checked on its own to name the bad dealers.

use crate::crypto::threshold::{AnyPubPoly, Point, PubPoly, Scalar};
use rand::RngCore;

/// The dealers (in `items` order) whose share for `recipient` does not match their commitments.
/// `items` are (dealer, commitments, share).
pub fn bad_shares(recipient: u32, items: &[(u32, &AnyPubPoly, Scalar)]) -> Vec<u32> {
    let mut g1 = Vec::new();
    let mut g2 = Vec::new();
    for (d, c, s) in items {
        match c {
            AnyPubPoly::G1(p) => g1.push((*d, p, *s)),
            AnyPubPoly::G2(p) => g2.push((*d, p, *s)),
        }
    }
    let mut bad = bad_in(recipient, &g1);
    bad.extend(bad_in(recipient, &g2));
    let order: Vec<u32> = items.iter().map(|(d, _, _)| *d).filter(|d| bad.contains(d)).collect();
    order
}

fn bad_in<P: Point>(recipient: u32, items: &[(u32, &PubPoly<P>, Scalar)]) -> Vec<u32> {
    if items.is_empty() || batch_holds(recipient, items, &mut rand::rngs::OsRng) {
        return Vec::new();
    }
    items.iter().filter(|(_, c, s)| !c.verify_share(recipient, s)).map(|(d, _, _)| *d).collect()
}

/// `(Σ rᵢ·sᵢ)·G == Σ rᵢ·Cᵢ(recipient)` with fresh non-zero 64-bit weights from `rng`.
fn batch_holds<P: Point>(recipient: u32, items: &[(u32, &PubPoly<P>, Scalar)], rng: &mut impl RngCore) -> bool {
    let mut lhs = Scalar::zero();
    let mut rhs = P::identity();
    for (_, commits, share) in items {
        let r = loop {
            let v = rng.next_u64();
            if v != 0 {
                break v;
            }
        };
        let Ok(public) = commits.public_share(recipient) else { return false };
        lhs = lhs.add(&share.mul(&Scalar::from_u64(r)));
        rhs = rhs.add(&public.mul_u64(r));
    }
    P::generator().mul(&lhs) == rhs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::threshold::{KeyGroup, PriPoly};
    use rand::rngs::OsRng;

    fn dealers(n: usize, t: usize, group: KeyGroup) -> Vec<PriPoly> {
        let _ = group;
        (0..n).map(|_| PriPoly::random(t, &mut OsRng)).collect()
    }

    #[test]
    fn a_batch_with_one_bad_share_names_exactly_that_dealer() {
        for group in [KeyGroup::G1, KeyGroup::G2] {
            let polys = dealers(9, 5, group);
            let commits: Vec<AnyPubPoly> = polys.iter().map(|p| AnyPubPoly::commit(p, group)).collect();
            let recipient = 3;
            let mut shares: Vec<Scalar> = polys.iter().map(|p| p.share(recipient).unwrap()).collect();
            let items = |shares: &[Scalar]| -> Vec<(u32, &AnyPubPoly, Scalar)> {
                commits.iter().zip(shares).enumerate().map(|(i, (c, s))| (i as u32 + 10, c, *s)).collect()
            };
            assert!(bad_shares(recipient, &items(&shares)).is_empty(), "{group:?}: honest batch");
            // Dealer 16 (index 6) sends a share off by one.
            shares[6] = shares[6].add(&Scalar::one());
            assert_eq!(bad_shares(recipient, &items(&shares)), vec![16], "{group:?}");
            // Two bad ones, one of them a valid share for another recipient.
            shares[1] = polys[1].share(recipient + 1).unwrap();
            assert_eq!(bad_shares(recipient, &items(&shares)), vec![11, 16], "{group:?}");
        }
    }

    #[test]
    fn the_weighted_sum_catches_errors_that_cancel_without_weights() {
        // Shares off by +1 and −1: their plain sum still matches, the weighted one does not.
        let polys = dealers(2, 3, KeyGroup::G1);
        let commits: Vec<AnyPubPoly> = polys.iter().map(|p| AnyPubPoly::commit(p, KeyGroup::G1)).collect();
        let s0 = polys[0].share(0).unwrap().add(&Scalar::one());
        let s1 = polys[1].share(0).unwrap().sub(&Scalar::one());
        let items = vec![(0, &commits[0], s0), (1, &commits[1], s1)];
        assert_eq!(bad_shares(0, &items), vec![0, 1]);
    }
}
