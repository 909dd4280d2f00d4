//! The one bounded memo of this crate: a map that keeps its newest entries within a budget and
//! forgets the oldest first. Many services keep results they would otherwise compute again (points
//! hashed to the curve, decoded signatures and blocks, checks that passed, parsed rosters): what a
//! peer or a stranger can make a node compute, it must not make the node keep without bound. Each
//! entry weighs what its owner says (1 to count entries, its size in bytes to bound memory); an
//! entry heavier than the whole budget is not kept at all.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map bounded by the total weight of its entries, forgetting the oldest inserted first.
pub struct KeptMap<K, V> {
    entries: HashMap<K, (V, usize)>,
    /// Keys in insertion order, oldest first (the next to forget).
    order: VecDeque<K>,
    weight: usize,
    budget: usize,
}

impl<K: Hash + Eq + Clone, V> KeptMap<K, V> {
    /// An empty map that keeps entries of total weight at most `budget`.
    pub fn new(budget: usize) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), weight: 0, budget }
    }

    /// The value kept for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// The value kept for `key`, to change in place (its weight stays what it was).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    /// Whether a value is kept for `key`.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// Keeps `value` for `key`, counting one towards the budget (a map bounded by entries).
    pub fn insert(&mut self, key: K, value: V) -> bool {
        self.insert_weighing(key, value, 1)
    }

    /// Keeps `value` for `key` with weight `weight`, then forgets the oldest entries until the
    /// whole is within the budget. A key kept already gets the new value and weight and keeps its
    /// place. Returns whether the entry is kept: not when it alone weighs more than the budget
    /// (then no value is kept for `key`, not even an earlier one).
    pub fn insert_weighing(&mut self, key: K, value: V, weight: usize) -> bool {
        if weight > self.budget {
            self.forget(&key);
            return false;
        }
        match self.entries.insert(key.clone(), (value, weight)) {
            Some((_, old)) => self.weight -= old,
            None => self.order.push_back(key.clone()),
        }
        self.weight += weight;
        while self.weight > self.budget {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, w)) = self.entries.remove(&oldest) {
                self.weight -= w;
            }
        }
        self.entries.contains_key(&key)
    }

    /// Keeps `value` for `key` as the newest entry, whether or not the key was kept already: for
    /// marks renewed while they matter (a kept key otherwise keeps the place of its first insert,
    /// and would be the first to go however often it is renewed).
    pub fn renew(&mut self, key: K, value: V) -> bool {
        self.forget(&key);
        self.insert(key, value)
    }

    /// Forgets `key` (linear in the number of entries: for the rare removal only).
    fn forget(&mut self, key: &K) {
        if let Some((_, w)) = self.entries.remove(key) {
            self.weight -= w;
            self.order.retain(|k| k != key);
        }
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total weight of the entries kept.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.weight = 0;
    }
}

impl<K, V> std::fmt::Debug for KeptMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptMap")
            .field("entries", &self.entries.len())
            .field("weight", &self.weight)
            .field("budget", &self.budget)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::KeptMap;

    #[test]
    fn forgets_the_oldest_first_when_full() {
        let mut m = KeptMap::new(3);
        for k in 0..5u32 {
            assert!(m.insert(k, k * 10));
        }
        assert_eq!(m.len(), 3);
        assert!(!m.contains(&0) && !m.contains(&1));
        assert_eq!(m.get(&2), Some(&20));
        assert_eq!(m.get(&4), Some(&40));
    }

    #[test]
    fn a_key_inserted_again_keeps_its_place_and_takes_the_new_value() {
        let mut m = KeptMap::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("a", 3);
        assert_eq!(m.get("a"), Some(&3));
        assert_eq!(m.len(), 2);
        m.insert("c", 4);
        // "a" was inserted first: it goes first, although it was written last.
        assert!(!m.contains("a"));
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(m.get("c"), Some(&4));
    }

    #[test]
    fn weights_bound_the_whole_and_an_entry_over_the_budget_is_not_kept() {
        let mut m = KeptMap::new(100);
        assert!(m.insert_weighing(1, (), 60));
        assert!(m.insert_weighing(2, (), 30));
        assert_eq!(m.weight(), 90);
        assert!(m.insert_weighing(3, (), 20));
        assert!(!m.contains(&1), "the oldest goes to make room");
        assert_eq!(m.weight(), 50);
        assert!(!m.insert_weighing(4, (), 101));
        assert!(!m.contains(&4));
        assert_eq!(m.weight(), 50, "a refused entry displaces nothing");
        // Weighing a kept key again counts its new weight only.
        assert!(m.insert_weighing(2, (), 80));
        assert!(m.contains(&2) && m.contains(&3));
        assert_eq!(m.weight(), 100, "the budget is a bound, not a limit to stay under");
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.weight(), 0);
    }

    #[test]
    fn a_renewed_entry_is_the_newest_and_an_oversized_one_replaces_none() {
        let mut m = KeptMap::new(3);
        for k in 0..3u32 {
            m.insert(k, 0);
        }
        assert!(m.renew(0, 1), "renewed: now the newest");
        m.insert(3, 0);
        assert!(!m.contains(&1), "the oldest not renewed went");
        assert_eq!(m.get(&0), Some(&1));
        assert_eq!((m.len(), m.weight()), (3, 3));
        // A value too heavy to keep leaves no earlier value of its key behind.
        assert!(!m.insert_weighing(2, 9, 4));
        assert!(!m.contains(&2));
        assert_eq!((m.len(), m.weight()), (2, 2));
        m.insert(4, 0);
        assert!(m.contains(&0) && m.contains(&3) && m.contains(&4), "the room it left is used first");
        m.insert(5, 0);
        assert!(!m.contains(&0) && m.contains(&3), "then the oldest goes: 0, renewed before 3 came");
    }

    #[test]
    fn an_entry_reweighed_out_of_its_own_room_is_forgotten() {
        let mut m = KeptMap::new(10);
        m.insert_weighing(1, (), 5);
        m.insert_weighing(2, (), 5);
        // 1 grows to 9: 1 is the oldest, so it is what goes, and the insert says so.
        assert!(!m.insert_weighing(1, (), 9));
        assert!(!m.contains(&1) && m.contains(&2));
        assert_eq!(m.weight(), 5);
    }
}
