//! Shape of a signing round: the root talks to ⌊√n⌋ sub-leaders, each collecting the partials of an
//! equal share of the remaining members (its leaves). Two hops, and no node handles more than about
//! √n messages, which keeps the latency of one round close to that of its slowest path.

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
    if n < 2 || root >= n {
        return Vec::new();
    }
    let others: Vec<usize> = (1..n).map(|k| (root + k) % n).filter(|&i| include(i)).collect();
    if others.is_empty() {
        return Vec::new();
    }
    let m = (isqrt(others.len() + 1)).clamp(1, others.len());
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
}
