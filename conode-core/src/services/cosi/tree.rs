//! Shape of a signing round: the root talks to m sub-leaders, each collecting the partials of an
//! equal share of the remaining members (its leaves); with m = n − 1 the tree is a star (depth 1).
//!
//! The shape follows n and the measured round-trip time (see [`shape`]): a level costs one round
//! trip, and the busiest node of a level handles its messages one after the other. Two levels of
//! √n cost 2·rtt + 2√n·c; a star costs rtt + n·c (c: handling one reply). On loopback a round trip
//! is cheap and two levels win from a few members; across a WAN the extra round trip costs more
//! than the root's handling of every reply, and the star wins.

use std::time::Duration;

/// Time to receive, decode and add one reply (measured on a 2-core machine: TLS record, protobuf,
/// uncompressed G2 point, mask).
pub const PER_REPLY: Duration = Duration::from_micros(30);

/// A star is taken only when the model says it saves at least this much: below it, the
/// difference is within the noise of the estimate (a ping on a busy machine, `PER_REPLY`), and
/// two levels spread the work (on loopback, the round trip is tens of µs: always two levels).
pub const STAR_MIN_GAIN: Duration = Duration::from_millis(1);

/// The depth (1 or 2) and fan-out (number of sub-leaders) for a root with `others` members below
/// it, given the round-trip time `rtt` (`None`: not measured yet; then two levels of √n, which
/// is never far from the best on a LAN).
pub fn shape(others: usize, rtt: Option<Duration>) -> (usize, usize) {
    let m = isqrt(others + 1).clamp(1, others.max(1));
    let depth = |m: usize| if m >= others { 1 } else { 2 };
    let Some(rtt) = rtt else { return (depth(m), m) };
    let rtt = rtt.as_secs_f64();
    let c = PER_REPLY.as_secs_f64();
    let star = rtt + others as f64 * c;
    let two = 2.0 * rtt + (m + others.div_ceil(m)) as f64 * c;
    if star + STAR_MIN_GAIN.as_secs_f64() < two {
        (1, others)
    } else {
        (depth(m), m)
    }
}

/// One sub-leader and the leaves it collects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub leader: usize,
    pub leaves: Vec<usize>,
}

impl Group {
    /// Every member of the group (leader first).
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.leader).chain(self.leaves.iter().copied())
    }
}

/// The groups below `root` for a roster of `n` members. Members are taken in roster order starting
/// after the root, so that rounds run by different roots spread the sub-leader work.
pub fn groups(n: usize, root: usize) -> Vec<Group> {
    groups_among(n, root, |_| true)
}

/// The groups below `root` of the members for which `include` holds (members known to be down
/// are left out, so none of them is a sub-leader and the tree routes around them).
pub fn groups_among(n: usize, root: usize, include: impl Fn(usize) -> bool) -> Vec<Group> {
    groups_shaped(n, root, include, None)
}

/// [`groups_among`] with the shape chosen for the round-trip time `rtt` (see [`shape`]).
pub fn groups_shaped(n: usize, root: usize, include: impl Fn(usize) -> bool, rtt: Option<Duration>) -> Vec<Group> {
    if n < 2 || root >= n {
        return Vec::new();
    }
    let others: Vec<usize> = (1..n).map(|k| (root + k) % n).filter(|&i| include(i)).collect();
    if others.is_empty() {
        return Vec::new();
    }
    let m = shape(others.len(), rtt).1.clamp(1, others.len());
    let base = others.len() / m;
    let extra = others.len() % m;
    let mut out = Vec::with_capacity(m);
    let mut at = 0;
    for g in 0..m {
        let size = base + usize::from(g < extra);
        let slice = &others[at..at + size];
        at += size;
        out.push(Group { leader: slice[0], leaves: slice[1..].to_vec() });
    }
    out
}

fn isqrt(n: usize) -> usize {
    let mut r = (n as f64).sqrt() as usize;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(groups(1, 0).is_empty());
        assert_eq!(groups(2, 0), vec![Group { leader: 1, leaves: vec![] }]);
        assert_eq!(groups(4, 0), vec![Group { leader: 1, leaves: vec![2] }, Group { leader: 3, leaves: vec![] }]);
        let g = groups(16, 0);
        assert_eq!(g.len(), 4);
        assert_eq!(g[0], Group { leader: 1, leaves: vec![2, 3, 4] });
        assert_eq!(g[3], Group { leader: 13, leaves: vec![14, 15] });
        let g = groups(64, 5);
        assert_eq!(g.len(), 8);
        let mut all: Vec<usize> = g.iter().flat_map(|g| g.members().collect::<Vec<_>>()).collect();
        all.sort();
        assert_eq!(all, (0..64).filter(|&i| i != 5).collect::<Vec<_>>());
        assert_eq!(g[0].leader, 6);
        for n in 2..200 {
            let g = groups(n, n / 2);
            assert_eq!(g.iter().map(|g| g.leaves.len() + 1).sum::<usize>(), n - 1);
        }
    }

    #[test]
    fn down_members_are_routed_around() {
        // Without 1 (a sub-leader when all are up) and 5.
        let g = groups_among(7, 0, |i| i != 1 && i != 5);
        let all: Vec<usize> = g.iter().flat_map(|g| g.members().collect::<Vec<_>>()).collect();
        assert_eq!(all, vec![2, 3, 4, 6]);
        assert_eq!(g, vec![Group { leader: 2, leaves: vec![3] }, Group { leader: 4, leaves: vec![6] }]);
        assert!(groups_among(4, 0, |_| false).is_empty());
        assert_eq!(groups_among(16, 0, |_| true), groups(16, 0));
    }

    #[test]
    fn shape_follows_the_round_trip_time() {
        // Loopback: two levels of about √n.
        assert_eq!(shape(1023, Some(Duration::from_micros(100))), (2, 32));
        assert_eq!(shape(63, None), (2, 8));
        assert_eq!(shape(3, None), (2, 2));
        assert_eq!(shape(1, Some(Duration::from_millis(100))), (1, 1));
        // A WAN round trip costs more than the root handling every reply: a star.
        assert_eq!(shape(63, Some(Duration::from_millis(100))), (1, 63));
        assert_eq!(shape(1023, Some(Duration::from_millis(100))), (1, 1023));
        // On loopback (tens of µs, even a few hundred on a busy machine): two levels.
        assert_eq!(shape(6, Some(Duration::from_micros(300))), (2, 2));
        assert_eq!(shape(63, Some(Duration::from_micros(900))), (2, 8));
        // In between, the size decides.
        let rtt = Some(Duration::from_millis(5));
        assert_eq!(shape(63, rtt).0, 1);
        assert_eq!(shape(4095, rtt).0, 2);
        let g = groups_shaped(64, 0, |_| true, Some(Duration::from_millis(100)));
        assert_eq!(g.len(), 63);
        assert!(g.iter().all(|g| g.leaves.is_empty()));
    }
}
