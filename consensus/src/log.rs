//! The in-memory log of one node: a snapshot point and the entries after it.

use std::collections::VecDeque;

use crate::types::{Entry, LogIndex, Term};

/// Entries after a snapshot point. `entries[k].index == snap_index + 1 + k`.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) snap_index: LogIndex,
    pub(crate) snap_term: Term,
    entries: VecDeque<Entry>,
}

impl Log {
    pub(crate) fn new(snap_index: LogIndex, snap_term: Term, entries: Vec<Entry>) -> Log {
        let log = Log {
            snap_index,
            snap_term,
            entries: entries.into(),
        };
        log.check();
        log
    }

    /// Entries are contiguous after the snapshot point; terms never decrease.
    fn check(&self) {
        let mut prev = (self.snap_index, self.snap_term);
        for e in &self.entries {
            assert_eq!(e.index, prev.0 + 1, "log entries must be contiguous");
            assert!(e.term >= prev.1, "log terms must not decrease");
            prev = (e.index, e.term);
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snap_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snap_term, |e| e.term)
    }

    /// The term at `index`, if the log still knows it (0 for index 0).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        self.get(index).map(|e| e.term)
    }

    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snap_index {
            return None;
        }
        self.entries.get((index - self.snap_index - 1) as usize)
    }

    /// Entries `from..=to`, both inside the log.
    pub(crate) fn slice(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        if from > to {
            return Vec::new();
        }
        assert!(from > self.snap_index, "slice below the snapshot");
        assert!(to <= self.last_index(), "slice past the end");
        let start = (from - self.snap_index - 1) as usize;
        self.entries
            .range(start..start + (to - from + 1) as usize)
            .cloned()
            .collect()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1);
        assert!(entry.term >= self.last_term());
        self.entries.push_back(entry);
    }

    /// Drops every entry at or after `index`.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        assert!(index > self.snap_index, "truncating into the snapshot");
        self.entries
            .truncate((index - self.snap_index - 1) as usize);
    }

    /// Moves the snapshot point to `index`, keeping the entries after it.
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        let term = self.term_at(index).expect("compaction point is in the log");
        let drop = (index - self.snap_index) as usize;
        self.entries.drain(..drop);
        self.snap_index = index;
        self.snap_term = term;
    }

    /// Replaces the whole log with a snapshot point.
    pub(crate) fn reset(&mut self, index: LogIndex, term: Term) {
        self.entries.clear();
        self.snap_index = index;
        self.snap_term = term;
    }
}
