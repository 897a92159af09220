//! JetStream message stores for natsd.
//!
//! This crate owns the [`Store`] trait and its two backends: [`MemStore`] (messages in memory)
//! and [`FileStore`] (checksummed records in fixed-size block files, sealed blocks read through
//! memory maps, an index rebuilt from the blocks on open). It owns per-stream limits
//! (`max_msgs`, `max_bytes`, `max_age`, `max_msgs_per_subject`, `max_msg_size`, discard
//! old/new), byte accounting as nats-server 2.9.10 reports it, crash recovery, and optional
//! per-block snappy compression and ChaCha20-Poly1305 or AES-256-GCM encryption of the file store.
//!
//! It never opens sockets, never starts threads and never reads the clock: the caller's stream
//! stage thread drives a store, passes message timestamps (ns since the Unix epoch) into
//! [`Store::store_msg`] and the current time into [`Store::expire`].
//!
//! Call contract: one owner calls a store from one thread (`&mut self`). A stored message is
//! durable against a process crash once [`Store::flush`] returns `Ok` after it (its record has
//! been written to the file: the file store writes a batch of messages with one `write`);
//! every other change is written before its call returns. Everything is durable against power
//! loss after [`Store::sync`], or at each flush with [`FileStoreConfig::sync_always`]. A
//! caller acknowledges stored messages only after the flush that follows them succeeded.
//!
//! A write that fails leaves no trace: the records it carried are cut off the file and undone
//! in the store, and never written later; [`Store::last_seq`] then says which messages are
//! stored (see [`Store::flush`]). The store goes on working once the disk has room. A sequence
//! once written is never assigned again, even when a block's tail is lost (the file store
//! keeps its last sequence apart from the blocks); [`Store::skip_to`] lets a caller that knows
//! of higher sequences (consumer state) raise it.
//!
//! ```
//! use natsd_storage::{MemStore, Store, StoreLimits};
//! let mut s = MemStore::new(StoreLimits::default());
//! let (seq, _) = s.store_msg("orders.1", b"", b"hello", 1).unwrap();
//! assert_eq!(seq, 1);
//! assert_eq!(s.load_last_msg("orders.*").unwrap().msg, b"hello");
//! assert_eq!(s.state().bytes, 8 + 5 + 16);
//! ```
#![deny(unsafe_code)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod disk;
mod error;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod faults;
mod filestore;
mod index;
mod lastseq;
mod memstore;
mod mmap;
#[cfg(test)]
mod model_tests;
mod raftlog;
mod seqmap;
#[cfg(test)]
mod store_tests;
mod subject;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
#[cfg(any(test, feature = "_fuzz"))]
pub use filestore::fuzzing;
pub use filestore::{Cipher, EncryptionKey, FileStore, FileStoreConfig};
pub use memstore::MemStore;
pub use raftlog::RaftFileLog;
pub use subject::subject_matches;

use std::collections::BTreeMap;
use std::sync::Arc;

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMsg {
    /// The subject it was published to.
    pub subject: String,
    /// Raw header block (`NATS/1.0\r\n...`), empty when there are none.
    pub hdr: Vec<u8>,
    /// Payload.
    pub msg: Vec<u8>,
    /// Stream sequence.
    pub seq: u64,
    /// Timestamp, ns since the Unix epoch, as given by the caller.
    pub ts: i64,
}

/// What happens when a limit would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    /// Evict the oldest messages (nats-server `discard: old`, the default).
    #[default]
    Old,
    /// Refuse the new message (nats-server `discard: new`).
    New,
}

/// Per-stream limits. Zero means unlimited for every numeric field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreLimits {
    /// Maximum number of messages.
    pub max_msgs: u64,
    /// Maximum stream bytes, counted as [`StreamState::bytes`] counts them.
    pub max_bytes: u64,
    /// Maximum age in ns; enforced by [`Store::expire`].
    pub max_age_ns: u64,
    /// Maximum messages kept per subject; the oldest of the subject is evicted.
    pub max_msgs_per_subject: u64,
    /// Maximum size of subject + headers + payload.
    pub max_msg_size: u64,
    /// Discard policy for `max_msgs` and `max_bytes`.
    pub discard: Discard,
    /// With [`Discard::New`], also refuse a message whose subject is at `max_msgs_per_subject`.
    pub discard_new_per_subject: bool,
}

/// Summary of a stream's contents (nats-server `StreamState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamState {
    /// Messages stored.
    pub msgs: u64,
    /// Bytes, as nats-server counts them for this storage type.
    pub bytes: u64,
    /// First sequence (last + 1 after a purge, 0 for a new stream).
    pub first_seq: u64,
    /// Timestamp of the first message, 0 when empty.
    pub first_ts: i64,
    /// Last sequence ever assigned (kept through removals and purges).
    pub last_seq: u64,
    /// Timestamp of the last message.
    pub last_ts: i64,
    /// Distinct subjects stored.
    pub num_subjects: u64,
    /// Sequences between first and last that hold no message.
    pub num_deleted: u64,
    /// The deleted sequences, filled only by [`Store::state_with_deleted`].
    pub deleted: Option<Vec<u64>>,
}

/// Per-subject summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubjectState {
    /// Messages stored on the subject.
    pub msgs: u64,
    /// Its first sequence.
    pub first: u64,
    /// Its last sequence.
    pub last: u64,
}

/// One interface for both backends. Filters are NATS subject filters; `""` and `">"` mean all.
pub trait Store {
    /// The last sequence assigned (0 for a new stream); the next store gets one more.
    fn last_seq(&self) -> u64;
    /// Store a message at the next sequence; returns its sequence and timestamp.
    fn store_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        ts_ns: i64,
    ) -> Result<(u64, i64)> {
        let seq = self.last_seq() + 1;
        self.store_raw_msg(subject, hdr, msg, seq, ts_ns)?;
        Ok((seq, ts_ns))
    }
    /// Store a message at a given sequence, which must be after the last one (gaps become
    /// deleted sequences). For replicas applying a leader's log. Limits apply as for `store_msg`.
    fn store_raw_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        seq: u64,
        ts_ns: i64,
    ) -> Result<()>;
    /// Load the message at `seq`.
    fn load_msg(&self, seq: u64) -> Result<StoredMsg>;
    /// Load the last message whose subject matches `filter`.
    fn load_last_msg(&self, filter: &str) -> Result<StoredMsg>;
    /// Load the first message at or after `start_seq` whose subject matches `filter`.
    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Result<StoredMsg>;
    /// The sequence of the first message stored at or after `ts_ns` (ns since the epoch), or
    /// `last_seq + 1` when there is none (nats-server `GetSeqFromTime`).
    fn seq_from_time(&self, ts_ns: i64) -> u64;
    /// For each subject matching any of `filters`, the sequence of its last message at or below
    /// `max_seq`: ascending, each once. `None` when more than `limit` subjects have one
    /// (nats-server `MultiLastSeqs` and its `ErrTooManyResults`).
    fn multi_last_seqs(&self, filters: &[String], max_seq: u64, limit: usize) -> Option<Vec<u64>>;
    /// Remove the message at `seq`. `Eof` past the last sequence, `NotFound` if absent.
    fn remove_msg(&mut self, seq: u64) -> Result<()>;
    /// Remove the message at `seq` and make its bytes unrecoverable from the store's files.
    fn erase_msg(&mut self, seq: u64) -> Result<()>;
    /// Remove every message; `first_seq` becomes `last_seq + 1`. Returns the number removed.
    fn purge(&mut self) -> Result<u64>;
    /// nats-server `PurgeEx`: remove messages matching `filter` below `seq` (when `seq > 1`),
    /// keeping the newest `keep` matching messages (when `keep > 0`). With an all-subjects
    /// filter this is `purge`, `compact(seq)` or `compact(last_seq - keep + 1)`.
    fn purge_ex(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64>;
    /// Remove every message below `seq`; past the end, the stream restarts at `seq`.
    /// `compact(0)` is `purge`. Returns the number removed.
    fn compact(&mut self, seq: u64) -> Result<u64>;
    /// Remove every message after `seq`; `last_seq` becomes `seq`. `truncate(0)` resets the
    /// stream to new. A `seq` at or past the last sequence changes nothing.
    fn truncate(&mut self, seq: u64) -> Result<()>;
    /// Counts and bounds, without the deleted list.
    fn state(&self) -> StreamState;
    /// Counts and bounds with the deleted sequences listed.
    fn state_with_deleted(&self) -> StreamState;
    /// Per-subject counts and bounds for subjects matching `filter`.
    fn subjects_state(&self, filter: &str) -> BTreeMap<String, SubjectState>;
    /// Messages at or after `start_seq` matching `filter`; with `last_per_subject`, only the
    /// last message of each matching subject counts.
    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64;
    /// Replace the limits and enforce them now (evicting the oldest as needed, whatever the
    /// discard policy, as nats-server does on a config update).
    fn update_config(&mut self, limits: StoreLimits) -> Result<()>;
    /// Remove messages older than `max_age` at `now_ns`. Returns the number removed.
    fn expire(&mut self, now_ns: i64) -> Result<u64>;
    /// The messages (sequence, subject) that limits or age removed since the last call, in
    /// order: consumers are told about them. The store keeps them until taken.
    fn take_evicted(&mut self) -> Vec<(u64, Arc<str>)>;
    /// When the oldest message will be older than `max_age` (ns since the epoch), so the caller
    /// knows when to call [`Store::expire`]; `None` without `max_age` or messages.
    fn next_expiry(&self) -> Option<i64>;
    /// Raise the last sequence to `seq` (with timestamp `ts_ns`) when it is higher: the
    /// sequences in between count as deleted (`first_seq` moves to `seq + 1` only when the
    /// stream is empty, as after a purge) and the next message gets `seq + 1`. The file store
    /// makes this durable (fsynced) before it returns. For a caller that knows of sequences the
    /// store may have lost (consumer state that mentions a higher stream sequence), so none is
    /// assigned twice. A `seq` at or below the last sequence changes nothing.
    fn skip_to(&mut self, seq: u64, ts_ns: i64) -> Result<()>;
    /// Write the messages stored since the last successful write (with `sync_always`, also
    /// fsync them).
    ///
    /// On failure nothing of them is kept: every record not yet written is rolled back, from
    /// the files (cut back to the last good length), the index and the state (`msgs`, `bytes`,
    /// per-subject counts, `last_seq`/`last_ts`), and the removals their limits caused are
    /// undone; none of it is written later. After a failure [`Store::last_seq`] is the
    /// boundary: messages at or below it are stored, those above it were rolled back and their
    /// sequences will be assigned again. The store keeps working: the next store and flush are
    /// tried as usual (and succeed once the disk has room again).
    ///
    /// The same holds for every other call that writes: `store_msg` may write early (when
    /// enough records are waiting, a block is full or a mostly deleted block is compacted),
    /// and a removal, purge, compact, truncate, expire or limits update writes the pending
    /// records with its own markers. When such a write fails, the call returns the error,
    /// its own change is not applied, and the pending records are rolled back as above
    /// (`last_seq()` tells whether they were written before the failure).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Write and make everything stored so far durable against power loss.
    fn sync(&mut self) -> Result<()>;
    /// Flush and close. Later calls fail with `Closed`.
    fn stop(&mut self) -> Result<()>;
}
