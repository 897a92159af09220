//! The memory store: messages in a `BTreeMap` by sequence with a per-subject index.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::index::{Entry, Index, PurgePlan, SizeRule};
use crate::{Error, Result, Store, StoreLimits, StoredMsg, StreamState, SubjectState};

struct MemEntry {
    subject: Arc<str>,
    /// Headers then payload in one allocation (memory per message is an issue 6 target).
    data: Box<[u8]>,
    hdr_len: u32,
    ts: i64,
    size: u64,
}

impl Entry for MemEntry {
    fn subject(&self) -> &Arc<str> {
        &self.subject
    }
    fn ts(&self) -> i64 {
        self.ts
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// A [`Store`] that keeps messages in memory (nats-server `storage: memory`).
///
/// Bytes are counted as nats-server 2.9.10 counts memory streams:
/// subject + headers + payload + 16 per message.
pub struct MemStore {
    idx: Index<MemEntry>,
    limits: StoreLimits,
    closed: bool,
}

impl MemStore {
    /// An empty memory store with `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        Self::with_rule(limits, SizeRule::Memory)
    }

    /// A memory store that counts bytes as the file store does; the reference model in tests.
    #[doc(hidden)]
    pub fn with_file_accounting(limits: StoreLimits) -> Self {
        Self::with_rule(limits, SizeRule::File)
    }

    fn with_rule(limits: StoreLimits, rule: SizeRule) -> Self {
        MemStore {
            idx: Index::new(rule),
            limits,
            closed: false,
        }
    }

    fn open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn get(&self, seq: u64) -> Result<StoredMsg> {
        let e = self
            .idx
            .msgs
            .get(&seq)
            .ok_or_else(|| self.idx.missing(seq))?;
        Ok(StoredMsg {
            subject: e.subject.to_string(),
            hdr: e.data[..e.hdr_len as usize].to_vec(),
            msg: e.data[e.hdr_len as usize..].to_vec(),
            seq,
            ts: e.ts,
        })
    }

    fn enforce(&mut self, subject: Option<&str>) {
        while let Some(v) = self.idx.victim(&self.limits, subject) {
            self.idx.note_evicted(v);
            self.idx.remove(v);
        }
    }
}

impl Store for MemStore {
    fn last_seq(&self) -> u64 {
        self.idx.last_seq
    }

    fn store_raw_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        seq: u64,
        ts_ns: i64,
    ) -> Result<()> {
        self.open()?;
        if seq <= self.idx.last_seq {
            return Err(Error::BadSequence {
                seq,
                last: self.idx.last_seq,
            });
        }
        Index::<MemEntry>::check_size(&self.limits, subject, hdr, msg)?;
        let size = self.idx.rule.size(subject, hdr, msg);
        self.idx.check_new(&self.limits, subject, size)?;
        let hdr_len = u32::try_from(hdr.len()).map_err(|_| Error::TooLarge { what: "headers" })?;
        let mut data = Vec::with_capacity(hdr.len() + msg.len());
        data.extend_from_slice(hdr);
        data.extend_from_slice(msg);
        let e = MemEntry {
            subject: self.idx.intern(subject),
            data: data.into_boxed_slice(),
            hdr_len,
            ts: ts_ns,
            size,
        };
        self.idx.insert(seq, e);
        self.enforce(Some(subject));
        Ok(())
    }

    fn load_msg(&self, seq: u64) -> Result<StoredMsg> {
        self.get(seq)
    }

    fn load_last_msg(&self, filter: &str) -> Result<StoredMsg> {
        self.get(self.idx.last_for(filter).ok_or(Error::Eof)?)
    }

    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Result<StoredMsg> {
        self.get(self.idx.next_for(filter, start_seq).ok_or(Error::Eof)?)
    }

    fn seq_from_time(&self, ts_ns: i64) -> u64 {
        self.idx.seq_from_time(ts_ns)
    }

    fn multi_last_seqs(&self, filters: &[String], max_seq: u64, limit: usize) -> Option<Vec<u64>> {
        self.idx.multi_last_seqs(filters, max_seq, limit)
    }

    fn remove_msg(&mut self, seq: u64) -> Result<()> {
        self.open()?;
        match self.idx.remove(seq) {
            Some(_) => Ok(()),
            None => Err(self.idx.missing(seq)),
        }
    }

    fn erase_msg(&mut self, seq: u64) -> Result<()> {
        self.remove_msg(seq)
    }

    fn purge(&mut self) -> Result<u64> {
        self.open()?;
        let floor = self.idx.last_seq + 1;
        let ts = self.idx.last_ts;
        Ok(self.idx.compact_floor(floor, ts).len() as u64)
    }

    fn purge_ex(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64> {
        self.open()?;
        match self.idx.purge_plan(filter, seq, keep) {
            None => Ok(0),
            Some(PurgePlan::Purge) => self.purge(),
            Some(PurgePlan::Compact(s)) => self.compact(s),
            Some(PurgePlan::Remove(seqs)) => Ok(seqs
                .iter()
                .filter(|&&s| self.idx.remove(s).is_some())
                .count() as u64),
        }
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        self.open()?;
        if seq == 0 {
            return self.purge();
        }
        let ts = self.idx.last_ts;
        Ok(self.idx.compact_floor(seq, ts).len() as u64)
    }

    fn truncate(&mut self, seq: u64) -> Result<()> {
        self.open()?;
        if seq != 0 && seq >= self.idx.last_seq {
            return Ok(());
        }
        let ts = self.idx.truncate_ts(seq);
        self.idx.truncate(seq, ts);
        Ok(())
    }

    fn state(&self) -> StreamState {
        self.idx.state(false)
    }

    fn state_with_deleted(&self) -> StreamState {
        self.idx.state(true)
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<String, SubjectState> {
        self.idx.subjects_state(filter)
    }

    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64 {
        self.idx.num_pending(start_seq, filter, last_per_subject)
    }

    fn update_config(&mut self, limits: StoreLimits) -> Result<()> {
        self.open()?;
        self.limits = limits;
        self.enforce(None);
        Ok(())
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        self.open()?;
        let mut n = 0;
        while let Some(s) = self.idx.expired(&self.limits, now_ns) {
            self.idx.note_evicted(s);
            self.idx.remove(s);
            n += 1;
        }
        Ok(n)
    }

    fn take_evicted(&mut self) -> Vec<(u64, Arc<str>)> {
        std::mem::take(&mut self.idx.evicted)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.idx.next_expiry(&self.limits)
    }

    fn skip_to(&mut self, seq: u64, ts_ns: i64) -> Result<()> {
        self.open()?;
        self.idx.advance_last(seq, ts_ns);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.open()
    }

    fn stop(&mut self) -> Result<()> {
        self.closed = true;
        Ok(())
    }
}
