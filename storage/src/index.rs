//! The in-memory index shared by both backends: sequence → entry, per-subject sequence sets,
//! counts and bounds, and the limit and purge decisions that depend only on them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::seqmap::{SeqList, SeqMap};

use crate::subject::{has_wildcard, is_all, subject_matches};
use crate::{Discard, Error, Result, StoreLimits, StreamState, SubjectState};

/// How stream bytes are counted, matching what nats-server 2.9.10 reports per storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeRule {
    /// File storage: 22 + subject + payload + 8, plus 4 + headers when there are headers.
    File,
    /// Memory storage: subject + headers + payload + 16.
    Memory,
}

impl SizeRule {
    pub(crate) fn size(self, subject: &str, hdr: &[u8], msg: &[u8]) -> u64 {
        let (s, h, m) = (subject.len() as u64, hdr.len() as u64, msg.len() as u64);
        match self {
            SizeRule::File => 22 + s + m + 8 + if h > 0 { 4 + h } else { 0 },
            SizeRule::Memory => s + h + m + 16,
        }
    }
}

/// What an index entry must expose.
pub(crate) trait Entry {
    fn subject(&self) -> &Arc<str>;
    fn ts(&self) -> i64;
    fn size(&self) -> u64;
}

/// What `purge_ex` turns into.
pub(crate) enum PurgePlan {
    Purge,
    Compact(u64),
    Remove(Vec<u64>),
}

/// Whether two interned subjects are the same.
fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Whether `seq` is stored on `subject`.
fn holds<E: Entry>(msgs: &SeqMap<E>, subject: &Arc<str>, seq: u64) -> bool {
    msgs.get(&seq).is_some_and(|e| same(e.subject(), subject))
}

/// The first and last sequences and their timestamps, saved before a change so that undoing
/// it can put them back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    first_seq: u64,
    first_ts: i64,
    last_seq: u64,
    last_ts: i64,
}

pub(crate) struct Index<E> {
    pub(crate) msgs: SeqMap<E>,
    pub(crate) subjects: HashMap<Arc<str>, SeqList>,
    pub(crate) bytes: u64,
    pub(crate) first_seq: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_seq: u64,
    pub(crate) last_ts: i64,
    pub(crate) rule: SizeRule,
    /// Messages removed by limits or age since the owner last took them.
    pub(crate) evicted: Vec<(u64, Arc<str>)>,
}

impl<E: Entry> Index<E> {
    pub(crate) fn new(rule: SizeRule) -> Self {
        Index {
            msgs: SeqMap::new(),
            subjects: HashMap::new(),
            bytes: 0,
            first_seq: 0,
            first_ts: 0,
            last_seq: 0,
            last_ts: 0,
            rule,
            evicted: Vec::new(),
        }
    }

    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            first_seq: self.first_seq,
            first_ts: self.first_ts,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
        }
    }

    /// Put back bounds saved by [`Index::bounds`] (undoing the changes made since).
    pub(crate) fn set_bounds(&mut self, b: Bounds) {
        self.first_seq = b.first_seq;
        self.first_ts = b.first_ts;
        self.last_seq = b.last_seq;
        self.last_ts = b.last_ts;
    }

    /// The eviction of `seq` was undone: forget its newest note if the owner has not taken it.
    pub(crate) fn unevict(&mut self, seq: u64) {
        if let Some(i) = self.evicted.iter().rposition(|(s, _)| *s == seq) {
            self.evicted.remove(i);
        }
    }

    /// Record that `seq` is about to be removed by a limit or its age.
    pub(crate) fn note_evicted(&mut self, seq: u64) {
        if let Some(e) = self.msgs.get(&seq) {
            self.evicted.push((seq, e.subject().clone()));
        }
    }

    /// The shared `Arc` for `subject`, so entries of one subject share one allocation.
    pub(crate) fn intern(&self, subject: &str) -> Arc<str> {
        match self.subjects.get_key_value(subject) {
            Some((k, _)) => k.clone(),
            None => Arc::from(subject),
        }
    }

    pub(crate) fn insert(&mut self, seq: u64, e: E) {
        let ts = e.ts();
        let subject = e.subject().clone();
        self.bytes += e.size();
        let listed = match self.msgs.insert(seq, e) {
            Some(old) => {
                // Replaying a record twice must not double count.
                self.bytes -= old.size();
                let same_subject = same(old.subject(), &subject);
                if !same_subject {
                    self.unlink_subject(old.subject());
                }
                same_subject
            }
            None => false,
        };
        if !listed {
            self.subjects
                .entry(subject)
                .or_insert_with(SeqList::new)
                .insert(seq);
        }
        if self.msgs.len() == 1 || seq < self.first_seq {
            self.first_seq = seq;
            self.first_ts = ts;
        }
        if seq >= self.last_seq {
            self.last_seq = seq;
            self.last_ts = ts;
        }
    }

    /// A message on `subject` is no longer stored (already gone from `msgs`).
    fn unlink_subject(&mut self, subject: &Arc<str>) {
        let msgs = &self.msgs;
        if let Some(list) = self.subjects.get_mut(subject) {
            list.remove(|s| holds(msgs, subject, s));
            if list.is_empty() {
                self.subjects.remove(subject);
            }
        }
    }

    fn unlink(&mut self, e: &E) {
        self.bytes -= e.size();
        self.unlink_subject(e.subject());
    }

    fn fix_first(&mut self) {
        match self.msgs.first_key_value() {
            Some((s, e)) => {
                self.first_seq = s;
                self.first_ts = e.ts();
            }
            None => {
                self.first_seq = self.last_seq + 1;
                self.first_ts = 0;
            }
        }
    }

    pub(crate) fn remove(&mut self, seq: u64) -> Option<E> {
        let e = self.msgs.remove(&seq)?;
        self.unlink(&e);
        if seq <= self.first_seq {
            self.fix_first();
        }
        Some(e)
    }

    /// Remove everything below `seq`; past the end the stream restarts at `seq`.
    pub(crate) fn compact_floor(&mut self, seq: u64, last_ts: i64) -> Vec<(u64, E)> {
        let out = self.msgs.drain_below(seq);
        for (_, e) in &out {
            self.unlink(e);
        }
        if seq > self.last_seq + 1 {
            self.last_seq = seq - 1;
            self.last_ts = last_ts;
        }
        self.fix_first();
        out
    }

    /// Remove everything after `seq`; `seq == 0` resets to a new stream.
    pub(crate) fn truncate(&mut self, seq: u64, last_ts: i64) -> Vec<(u64, E)> {
        let out = self.msgs.drain_above(seq);
        for (_, e) in &out {
            self.unlink(e);
        }
        if seq == 0 {
            self.first_seq = 0;
            self.first_ts = 0;
            self.last_seq = 0;
            self.last_ts = 0;
        } else {
            self.last_seq = seq;
            self.last_ts = last_ts;
            self.fix_first();
        }
        out
    }

    /// The timestamp `truncate(seq)` leaves as `last_ts`.
    pub(crate) fn truncate_ts(&self, seq: u64) -> i64 {
        self.msgs.get(&seq).map_or(self.last_ts, |e| e.ts())
    }

    /// Move `last_seq` forward without a message (a sequence marker on replay).
    pub(crate) fn advance_last(&mut self, seq: u64, ts: i64) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.last_ts = ts;
            if self.msgs.is_empty() {
                self.first_seq = seq + 1;
                self.first_ts = 0;
            }
        }
    }

    pub(crate) fn state(&self, with_deleted: bool) -> StreamState {
        let msgs = self.msgs.len() as u64;
        let num_deleted = if msgs == 0 {
            0
        } else {
            (self.last_seq - self.first_seq + 1) - msgs
        };
        let deleted = with_deleted.then(|| {
            let mut d = Vec::with_capacity(num_deleted as usize);
            let mut next = self.first_seq;
            for s in self.msgs.keys_from(0) {
                d.extend(next..s);
                next = s + 1;
            }
            if msgs > 0 {
                d.extend(next..=self.last_seq);
            }
            d
        });
        StreamState {
            msgs,
            bytes: self.bytes,
            first_seq: self.first_seq,
            first_ts: if msgs == 0 { 0 } else { self.first_ts },
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_subjects: self.subjects.len() as u64,
            num_deleted,
            deleted,
        }
    }

    fn matching<'a>(
        &'a self,
        filter: &'a str,
    ) -> Box<dyn Iterator<Item = (&'a Arc<str>, &'a SeqList)> + 'a> {
        if !has_wildcard(filter) && !filter.is_empty() {
            Box::new(self.subjects.get_key_value(filter).into_iter())
        } else {
            Box::new(
                self.subjects
                    .iter()
                    .filter(move |(s, _)| is_all(filter) || subject_matches(filter, s)),
            )
        }
    }

    pub(crate) fn subjects_state(&self, filter: &str) -> BTreeMap<String, SubjectState> {
        self.matching(filter)
            .filter_map(|(s, set)| {
                Some((
                    s.to_string(),
                    SubjectState {
                        msgs: set.len() as u64,
                        first: set.first()?,
                        last: set.last()?,
                    },
                ))
            })
            .collect()
    }

    pub(crate) fn last_for(&self, filter: &str) -> Option<u64> {
        if is_all(filter) {
            return self.msgs.last_key_value().map(|(s, _)| s);
        }
        self.matching(filter)
            .filter_map(|(_, set)| set.last())
            .max()
    }

    pub(crate) fn next_for(&self, filter: &str, start: u64) -> Option<u64> {
        if is_all(filter) {
            return self.msgs.keys_from(start).next();
        }
        self.matching(filter)
            .filter_map(|(subject, set)| set.from(start).find(|&s| holds(&self.msgs, subject, s)))
            .min()
    }

    /// The first live sequence whose timestamp is at or after `ts`, or `last_seq + 1`.
    /// Timestamps grow with sequences, so this is a binary search over the sequence range;
    /// each probe steps to the next live sequence to cross interior deletes.
    pub(crate) fn seq_from_time(&self, ts: i64) -> u64 {
        let past_end = self.last_seq + 1;
        if self.msgs.is_empty() {
            return past_end;
        }
        let live_at_or_after = |probe: u64| self.msgs.keys_from(probe).next();
        let reached = |probe: u64| {
            live_at_or_after(probe)
                .and_then(|s| self.msgs.get(&s))
                .is_none_or(|e| e.ts() >= ts)
        };
        let (mut lo, mut hi) = (self.first_seq, past_end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        live_at_or_after(lo).unwrap_or(past_end)
    }

    /// For each subject matching any of `filters`, its last sequence at or below `max_seq`;
    /// ascending, without duplicates. `None` as soon as there are more than `limit`.
    pub(crate) fn multi_last_seqs(
        &self,
        filters: &[String],
        max_seq: u64,
        limit: usize,
    ) -> Option<Vec<u64>> {
        let mut seen: HashMap<&Arc<str>, u64> = HashMap::new();
        for filter in filters {
            for (subject, set) in self.matching(filter) {
                if seen.contains_key(subject) {
                    continue;
                }
                let last = match set.last() {
                    Some(l) if l <= max_seq => Some(l),
                    _ => set
                        .below(max_seq.saturating_add(1))
                        .rev()
                        .find(|&s| holds(&self.msgs, subject, s)),
                };
                if let Some(seq) = last {
                    seen.insert(subject, seq);
                    if seen.len() > limit {
                        return None;
                    }
                }
            }
        }
        let mut seqs: Vec<u64> = seen.into_values().collect();
        seqs.sort_unstable();
        Some(seqs)
    }

    pub(crate) fn num_pending(&self, start: u64, filter: &str, last_per_subject: bool) -> u64 {
        if is_all(filter) && !last_per_subject {
            if start <= self.first_seq {
                return self.msgs.len() as u64;
            }
            return self.msgs.keys_from(start).count() as u64;
        }
        self.matching(filter)
            .map(|(subject, set)| {
                if last_per_subject {
                    u64::from(set.last().is_some_and(|l| l >= start))
                } else if start <= set.first().unwrap_or(0) {
                    set.len() as u64
                } else {
                    set.from(start)
                        .filter(|&s| holds(&self.msgs, subject, s))
                        .count() as u64
                }
            })
            .sum()
    }

    pub(crate) fn purge_plan(&self, filter: &str, seq: u64, keep: u64) -> Option<PurgePlan> {
        if is_all(filter) {
            if keep == 0 && seq == 0 {
                return Some(PurgePlan::Purge);
            }
            if seq > 1 {
                return Some(PurgePlan::Compact(seq));
            }
            if keep > 0 {
                let n = self.msgs.len() as u64;
                if keep >= n {
                    return None;
                }
                return Some(PurgePlan::Compact(self.last_seq - keep + 1));
            }
            return None;
        }
        let mut seqs: Vec<u64> = self
            .matching(filter)
            .flat_map(|(subject, set)| {
                let hi = if seq > 1 { seq } else { u64::MAX };
                set.below(hi).filter(|&s| holds(&self.msgs, subject, s))
            })
            .collect();
        seqs.sort_unstable();
        if keep > 0 {
            // Keep the newest `keep` matching messages overall (nats-server counts the filtered
            // total, not per subject).
            let total = self.num_pending(0, filter, false);
            if keep >= total {
                return None;
            }
            seqs.truncate((total - keep) as usize);
        }
        Some(PurgePlan::Remove(seqs))
    }

    /// Discard-new checks before storing a message of `size` on `subject`.
    pub(crate) fn check_new(&self, l: &StoreLimits, subject: &str, size: u64) -> Result<()> {
        if l.discard != Discard::New {
            return Ok(());
        }
        let at_subject_limit = l.max_msgs_per_subject > 0
            && self
                .subjects
                .get(subject)
                .is_some_and(|s| s.len() as u64 >= l.max_msgs_per_subject);
        if at_subject_limit && l.discard_new_per_subject {
            return Err(Error::MaxMsgsPerSubject);
        }
        // At the subject limit the store replaces the subject's oldest message, so the totals
        // do not grow (nats-server lets those through).
        if l.max_msgs > 0 && self.msgs.len() as u64 >= l.max_msgs && !at_subject_limit {
            return Err(Error::MaxMsgs);
        }
        if l.max_bytes > 0 && self.bytes + size > l.max_bytes {
            let freed = if at_subject_limit {
                self.subjects
                    .get(subject)
                    .and_then(SeqList::first)
                    .and_then(|f| self.msgs.get(&f))
                    .map_or(0, |e| e.size())
            } else {
                0
            };
            if freed < size {
                return Err(Error::MaxBytes);
            }
        }
        Ok(())
    }

    /// The next message to evict after storing on `subject`, if any limit is exceeded.
    pub(crate) fn victim(&self, l: &StoreLimits, subject: Option<&str>) -> Option<u64> {
        if l.max_msgs_per_subject > 0 {
            if let Some(subject) = subject {
                if let Some(set) = self.subjects.get(subject) {
                    if set.len() as u64 > l.max_msgs_per_subject {
                        return set.first();
                    }
                }
            } else if let Some(first) = self
                .subjects
                .values()
                .filter(|s| s.len() as u64 > l.max_msgs_per_subject)
                .filter_map(SeqList::first)
                .min()
            {
                return Some(first);
            }
        }
        let over_msgs = l.max_msgs > 0 && self.msgs.len() as u64 > l.max_msgs;
        let over_bytes = l.max_bytes > 0 && self.bytes > l.max_bytes;
        if over_msgs || over_bytes {
            return self.msgs.first_key_value().map(|(s, _)| s);
        }
        None
    }

    /// The oldest message if it is older than `max_age` at `now_ns`.
    pub(crate) fn expired(&self, l: &StoreLimits, now_ns: i64) -> Option<u64> {
        if l.max_age_ns == 0 {
            return None;
        }
        let min = now_ns.saturating_sub(i64::try_from(l.max_age_ns).unwrap_or(i64::MAX));
        self.msgs
            .first_key_value()
            .filter(|(_, e)| e.ts() <= min)
            .map(|(s, _)| s)
    }

    /// When the oldest message reaches `max_age`.
    pub(crate) fn next_expiry(&self, l: &StoreLimits) -> Option<i64> {
        if l.max_age_ns == 0 {
            return None;
        }
        let age = i64::try_from(l.max_age_ns).unwrap_or(i64::MAX);
        self.msgs
            .first_key_value()
            .map(|(_, e)| e.ts().saturating_add(age))
    }

    /// Refuse sizes over `max_msg_size`.
    pub(crate) fn check_size(l: &StoreLimits, subject: &str, hdr: &[u8], msg: &[u8]) -> Result<()> {
        let size = (subject.len() + hdr.len() + msg.len()) as u64;
        if l.max_msg_size > 0 && size > l.max_msg_size {
            return Err(Error::MsgTooLarge {
                size,
                max: l.max_msg_size,
            });
        }
        Ok(())
    }

    /// `Eof` past the end, `NotFound` otherwise.
    pub(crate) fn missing(&self, seq: u64) -> Error {
        if seq > self.last_seq {
            Error::Eof
        } else {
            Error::NotFound { seq }
        }
    }
}
