//! A set of disjoint byte ranges: the parts of a database file that were
//! created by growing it and that nothing has written since (holes). Pure:
//! no I/O, no threads; [`crate::prewrite`] keeps one behind a lock.
//!
//! Ranges are half-open, `start..end`, and never empty or overlapping;
//! neighbouring ranges are merged so the set stays small (a file that
//! only grows keeps one range at its end, split only where the writer
//! jumped ahead).

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-empty, non-adjacent byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holes {
    /// start → end.
    ranges: BTreeMap<u64, u64>,
}

impl Holes {
    /// No holes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The lowest offset in any hole (`u64::MAX` if there is none): a
    /// write ending at or below it touches no hole.
    pub fn floor(&self) -> u64 {
        self.ranges.keys().next().copied().unwrap_or(u64::MAX)
    }

    /// The lowest hole.
    pub fn first(&self) -> Option<Range<u64>> {
        self.ranges.iter().next().map(|(&s, &e)| s..e)
    }

    /// Total bytes in holes.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// The holes, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().map(|(&s, &e)| s..e)
    }

    /// Adds `r` (merging with neighbours and overlaps).
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // Every range that overlaps or touches start..end is absorbed.
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Removes `r` (splitting a hole it falls inside). Returns whether it
    /// touched any hole.
    pub fn remove(&mut self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return false;
        }
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(..r.end)
            .rev()
            .take_while(|(_, &e)| e > r.start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for &(s, e) in &overlapping {
            self.ranges.remove(&s);
            if s < r.start {
                self.ranges.insert(s, r.start);
            }
            if e > r.end {
                self.ranges.insert(r.end, e);
            }
        }
        !overlapping.is_empty()
    }

    /// Drops everything at or above `len` (the file was shrunk).
    pub fn truncate(&mut self, len: u64) {
        self.remove(len..u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn growth_merges_and_writes_split() {
        let mut h = Holes::new();
        h.insert(100..200);
        h.insert(200..400);
        assert_eq!(h.ranges().collect::<Vec<_>>(), vec![100..400]);
        assert!(h.remove(150..160));
        assert_eq!(h.ranges().collect::<Vec<_>>(), vec![100..150, 160..400]);
        assert_eq!(h.floor(), 100);
        assert!(!h.remove(0..100));
        h.truncate(300);
        assert_eq!(h.ranges().collect::<Vec<_>>(), vec![100..150, 160..300]);
        assert_eq!(h.bytes(), 190);
        h.remove(0..u64::MAX);
        assert!(h.is_empty());
        assert_eq!(h.floor(), u64::MAX);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
        Truncate(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let span = || (0u64..64, 0u64..16);
        prop_oneof![
            span().prop_map(|(s, n)| Op::Insert(s, s + n)),
            span().prop_map(|(s, n)| Op::Remove(s, s + n)),
            (0u64..80).prop_map(Op::Truncate),
        ]
    }

    proptest! {
        /// The set equals a bitmap model after any sequence of operations,
        /// and stays canonical: sorted, non-empty, neither overlapping nor
        /// touching.
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec(op(), 0..40)) {
            let mut h = Holes::new();
            let mut model = [false; 96];
            for op in ops {
                match op {
                    Op::Insert(s, e) => {
                        h.insert(s..e);
                        for b in &mut model[s as usize..e as usize] { *b = true; }
                    }
                    Op::Remove(s, e) => {
                        let touched = model[s as usize..e as usize].iter().any(|&b| b);
                        prop_assert_eq!(h.remove(s..e), touched);
                        for b in &mut model[s as usize..e as usize] { *b = false; }
                    }
                    Op::Truncate(len) => {
                        h.truncate(len);
                        for b in &mut model[len as usize..] { *b = false; }
                    }
                }
                let mut from_set = [false; 96];
                let mut last_end = None;
                for r in h.ranges() {
                    prop_assert!(r.start < r.end);
                    if let Some(e) = last_end { prop_assert!(r.start > e); }
                    last_end = Some(r.end);
                    for b in &mut from_set[r.start as usize..r.end as usize] { *b = true; }
                }
                prop_assert_eq!(from_set, model);
                let floor = model.iter().position(|&b| b).map_or(u64::MAX, |i| i as u64);
                prop_assert_eq!(h.floor(), floor);
                prop_assert_eq!(h.bytes(), model.iter().filter(|&&b| b).count() as u64);
            }
        }
    }
}
