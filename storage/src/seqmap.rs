//! Dense sequence-keyed collections for the index.
//!
//! Stream sequences are assigned in order and removed mostly from the front, so the index keeps
//! them in ring buffers addressed by `seq - base` instead of ordered trees: appending is a push,
//! lookups are an offset, and there is no per-node allocation. [`SeqMap`] holds one slot per
//! recent sequence (a removed one in the middle leaves an empty slot, and stragglers of a
//! sparse ring move to a tree); [`SeqList`] holds a subject's ascending sequences and forgets
//! removed ones lazily.

use std::collections::{BTreeMap, VecDeque};

/// Sequence → value. Recent sequences live in a ring of slots addressed by `seq - base` (the
/// first and last slot always occupied); when the ring gets sparse (a few old messages kept
/// while many after them were removed, as in a work queue with one stuck message), its oldest
/// entries move to an ordered tree, so memory follows the live entries, not the sequence range.
pub(crate) struct SeqMap<E> {
    /// Entries below `base`.
    sparse: BTreeMap<u64, E>,
    base: u64,
    slots: VecDeque<Option<E>>,
    /// Occupied slots.
    dense: usize,
}

/// A ring longer than this must be at least half full (small in tests, so they reach the tree).
#[cfg(not(test))]
const DENSE_MIN: usize = 1024;
#[cfg(test)]
const DENSE_MIN: usize = 8;

impl<E> SeqMap<E> {
    pub(crate) fn new() -> Self {
        SeqMap {
            sparse: BTreeMap::new(),
            base: 0,
            slots: VecDeque::new(),
            dense: 0,
        }
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.sparse.len() + self.dense
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        let i = seq.checked_sub(self.base)?;
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    pub(crate) fn get(&self, seq: &u64) -> Option<&E> {
        if *seq < self.base {
            return self.sparse.get(seq);
        }
        self.slots.get(self.slot(*seq)?)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, seq: &u64) -> Option<&mut E> {
        if *seq < self.base {
            return self.sparse.get_mut(seq);
        }
        let i = self.slot(*seq)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Insert `e` at `seq`, returning what was there.
    pub(crate) fn insert(&mut self, seq: u64, e: E) -> Option<E> {
        if self.slots.is_empty() && self.sparse.last_key_value().is_none_or(|(&l, _)| l < seq) {
            self.base = seq;
        }
        if seq < self.base {
            let gap = (self.base - seq) as usize;
            if !self.sparse.is_empty() || gap > self.slots.len() + DENSE_MIN {
                return self.sparse.insert(seq, e);
            }
            for _ in 0..gap {
                self.slots.push_front(None);
            }
            self.base = seq;
        }
        let i = (seq - self.base) as usize;
        let grew = i > self.slots.len();
        while self.slots.len() <= i {
            self.slots.push_back(None);
        }
        let old = self.slots[i].replace(e);
        if old.is_none() {
            self.dense += 1;
        }
        if grew {
            self.rebalance();
        }
        old
    }

    pub(crate) fn remove(&mut self, seq: &u64) -> Option<E> {
        if *seq < self.base {
            return self.sparse.remove(seq);
        }
        let i = self.slot(*seq)?;
        let e = self.slots[i].take()?;
        self.dense -= 1;
        self.trim();
        self.rebalance();
        Some(e)
    }

    /// Drop empty slots at both ends.
    fn trim(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
        if self.slots.is_empty() && self.slots.capacity() > DENSE_MIN {
            self.slots = VecDeque::new();
        }
    }

    /// Move the oldest entries of a sparse ring to the tree until it is dense again.
    fn rebalance(&mut self) {
        while self.slots.len() > DENSE_MIN && self.dense * 2 < self.slots.len() {
            if let Some(Some(e)) = self.slots.pop_front() {
                self.dense -= 1;
                self.sparse.insert(self.base, e);
            }
            self.base += 1;
            self.trim();
        }
    }

    pub(crate) fn first_key_value(&self) -> Option<(u64, &E)> {
        if let Some((&k, e)) = self.sparse.first_key_value() {
            return Some((k, e));
        }
        self.slots.front()?.as_ref().map(|e| (self.base, e))
    }

    pub(crate) fn last_key_value(&self) -> Option<(u64, &E)> {
        match self.slots.back() {
            Some(Some(e)) => Some((self.base + self.slots.len() as u64 - 1, e)),
            _ => self.sparse.last_key_value().map(|(&k, e)| (k, e)),
        }
    }

    /// Live sequences at or after `start`, ascending.
    pub(crate) fn keys_from(&self, start: u64) -> impl Iterator<Item = u64> + '_ {
        let skip = start.saturating_sub(self.base).min(self.slots.len() as u64) as usize;
        let tree = self.sparse.range(start..).map(|(&k, _)| k);
        let ring = self
            .slots
            .range(skip..)
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(move |(i, _)| self.base + (skip + i) as u64);
        tree.chain(ring)
    }

    /// Remove every entry below `seq`, returning them in order.
    pub(crate) fn drain_below(&mut self, seq: u64) -> Vec<(u64, E)> {
        let keep = self.sparse.split_off(&seq);
        let mut out: Vec<(u64, E)> = std::mem::replace(&mut self.sparse, keep)
            .into_iter()
            .collect();
        let n = seq.saturating_sub(self.base).min(self.slots.len() as u64) as usize;
        let base = self.base;
        let before = out.len();
        out.extend(
            self.slots
                .drain(..n)
                .enumerate()
                .filter_map(|(i, e)| e.map(|e| (base + i as u64, e))),
        );
        self.base += n as u64;
        self.dense -= out.len() - before;
        self.trim();
        out
    }

    /// Remove every entry above `seq`, returning them in order.
    pub(crate) fn drain_above(&mut self, seq: u64) -> Vec<(u64, E)> {
        let mut out: Vec<(u64, E)> = self
            .sparse
            .split_off(&seq.saturating_add(1))
            .into_iter()
            .collect();
        let keep = (seq.saturating_add(1))
            .saturating_sub(self.base)
            .min(self.slots.len() as u64) as usize;
        let base = self.base + keep as u64;
        let before = out.len();
        out.extend(
            self.slots
                .drain(keep..)
                .enumerate()
                .filter_map(|(i, e)| e.map(|e| (base + i as u64, e))),
        );
        self.dense -= out.len() - before;
        self.trim();
        out
    }
}

/// A subject's sequences, ascending. Removal only counts: a removed sequence stays in the list
/// until it reaches an end or the list is compacted, so callers pass `live` to tell which
/// entries still hold (the index checks its [`SeqMap`]).
pub(crate) struct SeqList {
    seqs: VecDeque<u64>,
    live: usize,
}

impl SeqList {
    pub(crate) fn new() -> Self {
        SeqList {
            seqs: VecDeque::new(),
            live: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Add `seq` (not present); appending in order is the common case.
    pub(crate) fn insert(&mut self, seq: u64) {
        self.live += 1;
        if self.seqs.back().is_none_or(|&b| b < seq) {
            self.seqs.push_back(seq);
            return;
        }
        // Out of order (replay): keep the list sorted; a dead copy of the same sequence still
        // listed simply holds again.
        let i = self.seqs.partition_point(|&s| s < seq);
        if self.seqs.get(i) != Some(&seq) {
            self.seqs.insert(i, seq);
        }
    }

    /// `seq` was removed; `live` tells which listed sequences still hold.
    pub(crate) fn remove(&mut self, live: impl Fn(u64) -> bool) {
        self.live -= 1;
        while self.seqs.front().is_some_and(|&s| !live(s)) {
            self.seqs.pop_front();
        }
        while self.seqs.back().is_some_and(|&s| !live(s)) {
            self.seqs.pop_back();
        }
        if self.seqs.len() > 2 * self.live + 16 {
            self.seqs.retain(|&s| live(s));
        }
    }

    /// The first live sequence (the ends are always live).
    pub(crate) fn first(&self) -> Option<u64> {
        self.seqs.front().copied()
    }

    /// The last live sequence.
    pub(crate) fn last(&self) -> Option<u64> {
        self.seqs.back().copied()
    }

    /// Listed sequences at or after `start` (filter with `live`).
    pub(crate) fn from(&self, start: u64) -> impl Iterator<Item = u64> + '_ {
        let i = self.seqs.partition_point(|&s| s < start);
        self.seqs.range(i..).copied()
    }

    /// Listed sequences below `end` (filter with `live`).
    pub(crate) fn below(&self, end: u64) -> impl DoubleEndedIterator<Item = u64> + '_ {
        let i = self.seqs.partition_point(|&s| s < end);
        self.seqs.range(..i).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        DrainBelow(u64),
        DrainAbove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..200).prop_map(Op::Insert),
            3 => (0u64..200).prop_map(Op::Remove),
            1 => (0u64..200).prop_map(Op::DrainBelow),
            1 => (0u64..200).prop_map(Op::DrainAbove),
        ]
    }

    #[test]
    fn a_straggler_moves_to_the_tree_and_the_ring_stays_small() {
        let mut m: SeqMap<u64> = SeqMap::new();
        for s in 1..=10_000u64 {
            m.insert(s, s);
            if s > 21 {
                m.remove(&(s - 20));
            }
        }
        // 1 is kept forever (a stuck work-queue message); the ring holds only the recent 20.
        assert_eq!(m.len(), 21);
        assert!(
            m.slots.len() <= 2 * DENSE_MIN + 20,
            "ring of {}",
            m.slots.len()
        );
        assert_eq!(m.sparse.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(m.first_key_value(), Some((1, &1)));
        assert_eq!(m.last_key_value(), Some((10_000, &10_000)));
        assert_eq!(m.keys_from(0).take(2).collect::<Vec<_>>(), vec![1, 9_981]);
        assert_eq!(m.get(&1), Some(&1));
        assert_eq!(m.remove(&1), Some(1));
        assert_eq!(m.first_key_value(), Some((9_981, &9_981)));
    }

    proptest! {
        /// SeqMap and SeqList agree with ordered trees under any operations.
        #[test]
        fn behaves_as_ordered_trees(ops in proptest::collection::vec(op(), 0..300)) {
            let mut m: SeqMap<u64> = SeqMap::new();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut list = SeqList::new();
            let mut set: BTreeSet<u64> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(s) => {
                        prop_assert_eq!(m.insert(s, s * 10), model.insert(s, s * 10));
                        if set.insert(s) {
                            list.insert(s);
                        }
                    }
                    Op::Remove(s) => {
                        prop_assert_eq!(m.remove(&s), model.remove(&s));
                        if set.remove(&s) {
                            list.remove(|x| set.contains(&x));
                        }
                    }
                    Op::DrainBelow(s) => {
                        let keep = model.split_off(&s);
                        let gone: Vec<(u64, u64)> = std::mem::replace(&mut model, keep).into_iter().collect();
                        prop_assert_eq!(m.drain_below(s), gone.clone());
                        for (g, _) in gone {
                            set.remove(&g);
                            list.remove(|x| set.contains(&x));
                        }
                    }
                    Op::DrainAbove(s) => {
                        let gone: Vec<(u64, u64)> = model.split_off(&(s + 1)).into_iter().collect();
                        prop_assert_eq!(m.drain_above(s), gone.clone());
                        for (g, _) in gone {
                            set.remove(&g);
                            list.remove(|x| set.contains(&x));
                        }
                    }
                }
                prop_assert_eq!(m.len(), model.len());
                prop_assert_eq!(m.first_key_value().map(|(k, v)| (k, *v)), model.first_key_value().map(|(k, v)| (*k, *v)));
                prop_assert_eq!(m.last_key_value().map(|(k, v)| (k, *v)), model.last_key_value().map(|(k, v)| (*k, *v)));
                for probe in [0u64, 50, 100, 150, 199] {
                    prop_assert_eq!(m.get(&probe), model.get(&probe));
                    prop_assert_eq!(m.keys_from(probe).collect::<Vec<_>>(), model.range(probe..).map(|(k, _)| *k).collect::<Vec<_>>());
                    let live = |x: u64| set.contains(&x);
                    prop_assert_eq!(list.from(probe).filter(|&x| live(x)).collect::<Vec<_>>(), set.range(probe..).copied().collect::<Vec<_>>());
                    prop_assert_eq!(list.below(probe).filter(|&x| live(x)).collect::<Vec<_>>(), set.range(..probe).copied().collect::<Vec<_>>());
                }
                prop_assert_eq!(list.len(), set.len());
                prop_assert_eq!(list.first(), set.first().copied());
                prop_assert_eq!(list.last(), set.last().copied());
            }
        }
    }
}
