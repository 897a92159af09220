//! One stream: its configuration, its store, and the publish path
//! (expectation headers, de-duplication, roll-ups, limits) with
//! nats-server's pub acks and errors.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use natsd_proto::headers;
use natsd_storage::{EncryptionKey, FileStore, FileStoreConfig, MemStore, Store, StoredMsg};
use serde::{Deserialize, Serialize};

use super::api::{time_json, ApiError};
use super::config::{Compression, Retention, Storage, StreamConfig};
use super::consumers::Slot;
use super::limits::Quota;
use super::ttl::{self, Ttls};
use crate::consumer::{self, StoreSource, StreamFacts};
use crate::transform::SubjectTransform;

/// What a stream needs from the server to open its store.
pub struct StoreParams<'a> {
    /// The stream's directory (file streams).
    pub dir: &'a Path,
    /// fsync after every write.
    pub sync_always: bool,
    /// The key file streams are encrypted with (memory streams never are).
    pub key: Option<EncryptionKey>,
}

/// `meta.inf`: what a file stream's directory remembers besides messages.
#[derive(Serialize, Deserialize)]
struct Meta {
    config: StreamConfig,
    created: i64,
}

/// A stream.
pub struct Stream {
    /// Its normalized configuration.
    pub cfg: StreamConfig,
    /// Creation time, ns since the epoch.
    pub created: i64,
    store: Box<dyn Store + Send>,
    /// Its subscriptions on its subjects.
    pub sids: Vec<u64>,
    /// Its directory (file streams only).
    dir: Option<PathBuf>,
    /// `Nats-Msg-Id` -> sequence, within the duplicate window.
    dedup: HashMap<String, u64>,
    /// (timestamp, id), oldest first, to age `dedup` out.
    dedup_order: VecDeque<(i64, String)>,
    /// The last stored message's `Nats-Msg-Id`.
    last_msg_id: String,
    /// `last_msg_id` as of the last successful write: what a failed write
    /// puts back.
    written_msg_id: String,
    /// The last sequence known written: consumers read no further, so they
    /// never deliver what a failed write takes back.
    written_seq: u64,
    /// The highest sequence handed out: a store whose last sequence falls
    /// below it rolled back a failed write ([`Stream::take_rollback`]).
    handed: u64,
    /// The refusal of the last failed write, for the messages it took back.
    refusal: Option<Vec<u8>>,
    /// Its consumers by name.
    pub consumers: BTreeMap<Arc<str>, Slot>,
    /// `subject_transform`, compiled.
    input: Option<SubjectTransform>,
    /// `republish`, compiled, with `headers_only`.
    republish: Option<(SubjectTransform, bool)>,
    /// Per-message TTLs (streams with `allow_msg_ttl`).
    ttls: Option<Ttls>,
    /// Messages the stream's own ageing removed, for the consumers.
    evicted: Vec<(u64, Arc<str>)>,
}

/// The stream's store as its consumers read it.
pub type Source<'a> = StoreSource<'a, dyn Store + Send>;

/// What a publish did: the pub ack (or error) JSON, and the sequence it
/// stored with whether a roll-up purged older messages.
pub struct Published {
    /// The reply's body.
    pub ack: Vec<u8>,
    /// `(sequence, rolled up)` when the message was stored.
    pub stored: Option<(u64, bool)>,
    /// The sequence of the message this one duplicates (`Nats-Msg-Id`).
    pub duplicate_of: Option<u64>,
    /// The subject it was stored under when `subject_transform` changed it.
    pub transformed: Option<String>,
    /// The message to publish again (`republish`).
    pub republish: Option<Republish>,
}

/// A stored message going out again (`republish`).
pub struct Republish {
    /// The destination subject.
    pub subject: String,
    /// The message's headers with the stream's added.
    pub hdr: Vec<u8>,
    /// The payload (empty with `headers_only`).
    pub payload: Vec<u8>,
}

/// A subject delete marker the stream stored while ageing messages.
pub struct Marker {
    /// Its subject.
    pub subject: String,
    /// What storing it did.
    pub published: Published,
}

/// Map a store error to nats-server's publish error.
fn store_error(e: &natsd_storage::Error) -> ApiError {
    use natsd_storage::Error as E;
    match e {
        E::MaxMsgs => ApiError::store_failed("maximum messages exceeded"),
        E::MaxBytes => ApiError::store_failed("maximum bytes exceeded"),
        E::MaxMsgsPerSubject => ApiError::store_failed("maximum messages per subject exceeded"),
        E::MsgTooLarge { .. } | E::TooLarge { .. } => ApiError::store_failed("message too large"),
        other => ApiError::store_failed(&other.to_string()),
    }
}

fn new_store(cfg: &StreamConfig, params: &StoreParams) -> Result<Box<dyn Store + Send>, String> {
    let limits = cfg.store_limits();
    Ok(match cfg.storage {
        Storage::Memory => Box::new(MemStore::new(limits)),
        Storage::File => {
            let fs = FileStore::open(
                params.dir.join("msgs"),
                FileStoreConfig {
                    sync_always: params.sync_always,
                    limits,
                    compress: cfg.compression == Compression::S2,
                    encryption_key: params.key.clone(),
                    ..FileStoreConfig::default()
                },
            )
            .map_err(|e| e.to_string())?;
            for problem in fs.recovery_report() {
                log::warn!("JetStream stream '{}' recovery: {problem}", cfg.name);
            }
            Box::new(fs)
        }
    })
}

impl Stream {
    /// Create a new stream. File streams get their directory and `meta.inf`.
    pub fn create(cfg: StreamConfig, created: i64, params: &StoreParams) -> Result<Self, String> {
        let dir = (cfg.storage == Storage::File).then(|| params.dir.to_path_buf());
        if let Some(dir) = &dir {
            // A stale directory of a stream deleted while we were down.
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut store = new_store(&cfg, params)?;
        if cfg.first_seq > 1 {
            store.compact(cfg.first_seq).map_err(|e| e.to_string())?;
        }
        let s = Stream::with_store(cfg, created, store, dir);
        s.write_meta()?;
        Ok(s)
    }

    /// Open a file stream left by an earlier run from its directory, `params.dir`.
    pub fn restore(params: &StoreParams, now_ns: i64) -> Result<Self, String> {
        let dir = params.dir;
        let meta = std::fs::read(dir.join("meta.inf")).map_err(|e| e.to_string())?;
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| e.to_string())?;
        let store = new_store(&meta.config, params)?;
        let mut s = Stream::with_store(meta.config, meta.created, store, Some(dir.to_path_buf()));
        s.rebuild_dedup(now_ns);
        s.rebuild_ttls();
        Ok(s)
    }

    fn with_store(
        cfg: StreamConfig,
        created: i64,
        store: Box<dyn Store + Send>,
        dir: Option<PathBuf>,
    ) -> Self {
        let written_seq = store.last_seq();
        Stream {
            input: cfg.input_transform(),
            republish: cfg.republish_transform(),
            ttls: cfg.allow_msg_ttl.then(Ttls::default),
            cfg,
            created,
            store,
            sids: Vec::new(),
            dir,
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            last_msg_id: String::new(),
            written_msg_id: String::new(),
            written_seq,
            handed: written_seq,
            refusal: None,
            consumers: BTreeMap::new(),
            evicted: Vec::new(),
        }
    }

    /// Re-learn the TTLs of the stored messages (after a restart): one
    /// pass over the stream, for streams with `allow_msg_ttl` only.
    fn rebuild_ttls(&mut self) {
        let Some(ttls) = &mut self.ttls else {
            return;
        };
        let mut seq = self.store.state().first_seq;
        while let Ok(m) = self.store.load_next_msg(">", seq) {
            ttls.note(m.seq, m.ts, ttl::stored_ttl(&m.hdr));
            seq = m.seq + 1;
        }
        // Check the ages at once; the pass sets the real time.
        ttls.age_due = (self.cfg.max_age > 0).then_some(i64::MIN);
    }

    fn write_meta(&self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let meta = Meta {
            config: self.cfg.clone(),
            created: self.created,
        };
        let body = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
        let tmp = dir.join("meta.inf.tmp");
        std::fs::write(&tmp, body).map_err(|e| e.to_string())?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join("meta.inf")).map_err(|e| e.to_string())
    }

    /// Re-learn the message ids inside the duplicate window from the store
    /// (after a restart), as nats-server does.
    fn rebuild_dedup(&mut self, now_ns: i64) {
        let cutoff = now_ns - self.cfg.duplicate_window;
        let state = self.store.state();
        let mut found = Vec::new();
        let mut seq = state.last_seq;
        while seq >= state.first_seq && seq > 0 {
            if let Ok(m) = self.store.load_msg(seq) {
                if m.ts < cutoff {
                    break;
                }
                if let Some(id) = msg_id(&m.hdr) {
                    found.push((m.ts, id, m.seq));
                }
            }
            seq -= 1;
        }
        for (ts, id, seq) in found.into_iter().rev() {
            self.last_msg_id.clone_from(&id);
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((ts, id));
        }
        self.written_msg_id.clone_from(&self.last_msg_id);
    }

    /// nats-server refuses new `consumer_limits` that existing consumers
    /// exceed (a `max_ack_pending` or `inactive_threshold` above a set
    /// limit), naming them, rather than leave consumers outside the limits.
    fn check_consumer_limits(&self, limits: &serde_json::Value) -> Result<(), ApiError> {
        let max_ack_pending = limits["max_ack_pending"].as_i64().unwrap_or(0);
        let inactive =
            std::time::Duration::from_nanos(limits["inactive_threshold"].as_u64().unwrap_or(0));
        let violators: Vec<&str> = self
            .consumers
            .iter()
            .filter(|(_, slot)| {
                let c = slot.c.config();
                (max_ack_pending > 0 && c.max_ack_pending > max_ack_pending)
                    || (!inactive.is_zero() && c.inactive_threshold > inactive)
            })
            .map(|(name, _)| &**name)
            .collect();
        if violators.is_empty() {
            return Ok(());
        }
        let text = format!(
            "change to limits violates consumers: {}",
            violators.join(", ")
        );
        Err(ApiError::new(500, 10069, &text))
    }

    /// Apply an updated (validated) configuration.
    pub fn update(&mut self, cfg: StreamConfig) -> Result<(), ApiError> {
        self.check_consumer_limits(&cfg.consumer_limits)?;
        self.store
            .update_config(cfg.store_limits())
            .map_err(|e| ApiError::new(500, 10069, &e.to_string()))?;
        self.input = cfg.input_transform();
        self.republish = cfg.republish_transform();
        if cfg.allow_msg_ttl && self.ttls.is_none() {
            self.ttls = Some(Ttls::default());
        }
        if let Some(t) = &mut self.ttls {
            // A new max_age: look again at once.
            t.age_due = (cfg.max_age > 0).then_some(i64::MIN);
        }
        self.cfg = cfg;
        self.write_meta().map_err(|e| ApiError::new(500, 10069, &e))
    }

    /// Stop the store and remove the stream's files.
    pub fn delete(mut self) -> Result<(), String> {
        let _ = self.store.stop();
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Flush and close (server shutdown).
    pub fn stop(&mut self) {
        if let Err(e) = self.store.stop() {
            log::error!("JetStream stream '{}' stop: {e}", self.cfg.name);
        }
    }

    /// fsync a file stream.
    /// The messages limits or `max_age` removed since the last call.
    pub fn take_evicted(&mut self) -> Vec<(u64, Arc<str>)> {
        let mut v = self.store.take_evicted();
        v.append(&mut self.evicted);
        v
    }

    /// Write the messages stored since the last flush. A failure rolls back
    /// what was not written; [`take_rollback`](Self::take_rollback) says
    /// from where.
    pub fn flush(&mut self) {
        match self.store.flush() {
            Ok(()) => {
                self.written_msg_id.clone_from(&self.last_msg_id);
                self.written_seq = self.store.last_seq();
            }
            Err(e) => self.write_failed(&e),
        }
    }

    /// Note a failed store write: its refusal, for the publishes it took back.
    fn write_failed(&mut self, e: &natsd_storage::Error) {
        log::error!("JetStream stream '{}' write: {e}", self.cfg.name);
        self.refusal = Some(nack(&self.cfg.name, store_error(e)).ack);
    }

    /// Whether a failed write took back messages this stream handed out
    /// since the last call: the last sequence still stored and the refusal
    /// their pub acks become. Every store write can fail (a store writes its
    /// pending messages before a removal's marker, or early when many are
    /// waiting), so the caller asks after each operation on the stream; the
    /// stream has already forgotten those messages (their ids, TTLs), and
    /// their sequences are handed out again, so a caller that holds acks
    /// must settle them before the stream stores more.
    pub fn take_rollback(&mut self) -> Option<(u64, Vec<u8>)> {
        let stored = self.store.last_seq();
        if stored >= self.handed {
            return None;
        }
        self.handed = stored;
        self.written_seq = self.written_seq.min(stored);
        self.forget_above(stored);
        let refusal = self.refusal.take().unwrap_or_else(|| {
            let e = natsd_storage::Error::Io(std::io::Error::other("write failed"));
            nack(&self.cfg.name, store_error(&e)).ack
        });
        Some((stored, refusal))
    }

    /// Never hand out `seq` or a sequence below it again: a second line of
    /// defence behind the store's own durable last sequence, for sequences
    /// its consumers' saved state mentions (the gap counts as deleted).
    pub fn skip_to(&mut self, seq: u64, now_ns: i64) {
        let last = self.store.last_seq();
        if seq <= last {
            return;
        }
        log::warn!(
            "JetStream stream '{}': consumers saw sequence {seq} but the store ends at {last}; \
             the missing messages are lost and their sequences will not be reused",
            self.cfg.name
        );
        match self.store.skip_to(seq, now_ns) {
            Ok(()) => {
                self.written_seq = self.store.last_seq();
                self.handed = self.written_seq;
            }
            Err(e) => log::error!("JetStream stream '{}' skip to {seq}: {e}", self.cfg.name),
        }
    }

    /// Forget what the stream learnt from messages above `seq`, which a
    /// failed write took back.
    fn forget_above(&mut self, seq: u64) {
        let before = self.dedup.len();
        self.dedup.retain(|_, s| *s <= seq);
        if self.dedup.len() != before {
            let dedup = &self.dedup;
            self.dedup_order.retain(|(_, id)| dedup.contains_key(id));
        }
        if let Some(t) = &mut self.ttls {
            t.forget_above(seq);
        }
        self.last_msg_id.clone_from(&self.written_msg_id);
    }

    pub fn sync(&mut self) {
        if self.cfg.storage == Storage::File {
            if let Err(e) = self.store.sync() {
                log::error!("JetStream stream '{}' sync: {e}", self.cfg.name);
            }
        }
    }

    /// Remove messages past `max_age` or their TTL (returns how many, and
    /// the subject delete markers stored in their place); forget message
    /// ids past the duplicate window.
    pub fn expire(&mut self, now_ns: i64) -> (u64, Vec<Marker>) {
        let mut removed = 0;
        let mut markers = Vec::new();
        if self.ttls.is_some() {
            removed = self.expire_ttls(now_ns, &mut markers);
        } else if self.cfg.max_age > 0 {
            match self.store.expire(now_ns) {
                Ok(n) => removed = n,
                Err(e) => log::error!("JetStream stream '{}' expire: {e}", self.cfg.name),
            }
        }
        let cutoff = now_ns - self.cfg.duplicate_window;
        while let Some((ts, _)) = self.dedup_order.front() {
            if *ts >= cutoff {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
        (removed, markers)
    }

    /// The stream's own ageing (with `allow_msg_ttl`): messages past their
    /// TTL, then messages past `max_age` that may expire.
    fn expire_ttls(&mut self, now_ns: i64, markers: &mut Vec<Marker>) -> u64 {
        let mut removed = 0;
        let due = self
            .ttls
            .as_mut()
            .map(|t| t.take_due(now_ns))
            .unwrap_or_default();
        for seq in due {
            if let Ok(m) = self.store.load_msg(seq) {
                removed += self.age_out(m, now_ns, markers);
            }
        }
        let age_due = self.ttls.as_ref().and_then(|t| t.age_due);
        if self.cfg.max_age > 0 && age_due.is_some_and(|at| at <= now_ns) {
            let cutoff = now_ns - self.cfg.max_age;
            let mut next = None;
            let mut seq = self.store.state().first_seq;
            while let Ok(m) = self.store.load_next_msg(">", seq) {
                seq = m.seq + 1;
                if self.ttls.as_ref().is_some_and(|t| t.is_never(m.seq)) {
                    continue;
                }
                if m.ts > cutoff {
                    next = Some(m.ts + self.cfg.max_age);
                    break;
                }
                removed += self.age_out(m, now_ns, markers);
            }
            if let Some(t) = &mut self.ttls {
                t.age_due = next;
            }
        }
        if !markers.is_empty() {
            if let Err(e) = self.store.flush() {
                log::error!("JetStream stream '{}' write: {e}", self.cfg.name);
            }
        }
        removed
    }

    /// Remove an aged message; with `subject_delete_marker_ttl`, the last
    /// message of its subject (not itself a marker) is replaced by a
    /// marker that rolls the subject up.
    fn age_out(&mut self, m: StoredMsg, now_ns: i64, markers: &mut Vec<Marker>) -> u64 {
        if let Some(t) = &mut self.ttls {
            t.forget(m.seq);
        }
        let last = || {
            self.store
                .subjects_state(&m.subject)
                .get(&m.subject)
                .is_some_and(|s| s.msgs == 1)
        };
        if self.cfg.subject_delete_marker_ttl > 0 && !ttl::is_marker(&m.hdr) && last() {
            let hdr = ttl::marker_header(self.cfg.subject_delete_marker_ttl);
            let quota = Quota {
                max_payload: usize::MAX,
                server_full: false,
                account: None,
            };
            let published = self.store_publish(&m.subject, &hdr, b"", now_ns, None, &quota);
            if published.stored.is_some() {
                markers.push(Marker {
                    subject: m.subject,
                    published,
                });
                return 1;
            }
        }
        match self.store.remove_msg(m.seq) {
            Ok(()) => {
                self.evicted.push((m.seq, Arc::from(m.subject.as_str())));
                1
            }
            Err(_) => 0,
        }
    }

    /// When [`expire`](Self::expire) has work next (ns since the epoch).
    pub fn next_expiry(&self) -> Option<i64> {
        let age = match &self.ttls {
            Some(t) => t.next(),
            None => self.store.next_expiry(),
        };
        let dedup = self
            .dedup_order
            .front()
            .map(|(ts, _)| ts + self.cfg.duplicate_window);
        match (age, dedup) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        }
    }

    /// The store's state.
    pub fn state(&self) -> natsd_storage::StreamState {
        self.store.state()
    }

    /// The store, as direct and message gets read it (what it took,
    /// written or not).
    pub fn store(&self) -> &(dyn Store + Send) {
        &*self.store
    }

    /// The store as a consumer reads it.
    pub fn source(&self) -> Source<'_> {
        StoreSource::written(&*self.store, self.written_seq)
    }

    /// The consumers and the store together (a consumer reads the store
    /// while it is driven).
    pub fn consumers_and_source(&mut self) -> (&mut BTreeMap<Arc<str>, Slot>, Source<'_>) {
        let src = StoreSource::written(&*self.store, self.written_seq);
        (&mut self.consumers, src)
    }

    /// The directory (file streams).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// What a consumer config is validated against.
    pub fn facts(&self) -> StreamFacts {
        let limits = &self.cfg.consumer_limits;
        StreamFacts {
            subjects: self.cfg.subjects.clone(),
            retention: match self.cfg.retention {
                Retention::Limits => consumer::Retention::Limits,
                Retention::Interest => consumer::Retention::Interest,
                Retention::Workqueue => consumer::Retention::WorkQueue,
            },
            replicas: self.cfg.num_replicas,
            max_msgs_per_subject: self.cfg.max_msgs_per_subject,
            consumer_max_ack_pending: limits["max_ack_pending"].as_i64().unwrap_or(0),
            consumer_inactive_threshold: std::time::Duration::from_nanos(
                limits["inactive_threshold"].as_u64().unwrap_or(0),
            ),
        }
    }

    /// The subject of the message at `seq`, if it is stored.
    pub fn subject_of(&self, seq: u64) -> Option<String> {
        self.store.load_msg(seq).ok().map(|m| m.subject)
    }

    /// Remove a message retention no longer keeps (acked by every
    /// interested consumer, or no consumer wants it).
    pub fn remove_retained(&mut self, seq: u64) {
        match self.store.remove_msg(seq) {
            Ok(()) | Err(natsd_storage::Error::NotFound { .. }) => {}
            Err(e) => log::error!("JetStream stream '{}' remove {seq}: {e}", self.cfg.name),
        }
    }

    /// Bytes the stream holds.
    pub fn bytes(&self) -> u64 {
        self.store.state().bytes
    }

    /// `StreamInfo` JSON (as a value so callers can add paging fields).
    pub fn info(
        &self,
        server_name: &str,
        now_ns: i64,
        deleted_details: bool,
        subjects_filter: &str,
        offset: usize,
    ) -> serde_json::Value {
        let st = if deleted_details {
            self.store.state_with_deleted()
        } else {
            self.store.state()
        };
        let mut state = serde_json::json!({
            "messages": st.msgs,
            "bytes": st.bytes,
            "first_seq": st.first_seq,
            "first_ts": time_json(st.first_ts),
            "last_seq": st.last_seq,
            "last_ts": time_json(st.last_ts),
        });
        let mut paging = None;
        if st.num_subjects > 0 {
            state["num_subjects"] = st.num_subjects.into();
        }
        if !subjects_filter.is_empty() {
            let all = self.store.subjects_state(subjects_filter);
            let total = all.len();
            let subjects: serde_json::Map<String, serde_json::Value> = all
                .into_iter()
                .skip(offset)
                .take(MAX_SUBJECT_DETAILS)
                .map(|(k, v)| (k, v.msgs.into()))
                .collect();
            if !subjects.is_empty() {
                state["subjects"] = subjects.into();
            }
            paging = Some((total, offset));
        }
        if st.num_deleted > 0 {
            state["num_deleted"] = st.num_deleted.into();
        }
        if let Some(deleted) = st.deleted.filter(|d| !d.is_empty()) {
            state["deleted"] = deleted.into();
        }
        state["consumer_count"] = self.consumers.len().into();
        let mut info = serde_json::json!({
            "config": self.cfg,
            "created": time_json(self.created),
            "state": state,
            "cluster": {"leader": server_name},
            "ts": time_json(now_ns),
        });
        if let Some((total, offset)) = paging {
            info["total"] = total.into();
            info["offset"] = offset.into();
            info["limit"] = MAX_SUBJECT_DETAILS.into();
        }
        info
    }

    /// How many consumers the stream may have (0 or less: any number): its
    /// `max_consumers`, or the account's when that is smaller or the
    /// stream sets none (nats-server applies a lowered account limit to
    /// existing streams too).
    pub fn max_consumers(&self, account_max: i64) -> i64 {
        let own = self.cfg.max_consumers;
        if own <= 0 || (account_max > 0 && account_max < own) {
            account_max
        } else {
            own
        }
    }

    /// Store a published message, or say why not: returns the pub ack (or
    /// error) JSON for the reply subject. `quota` holds the server's
    /// `max_payload` and what the server and the account still allow.
    pub fn publish(
        &mut self,
        subject: &str,
        hdr: Option<&[u8]>,
        msg: &[u8],
        now_ns: i64,
        domain: Option<&str>,
        quota: &Quota,
    ) -> Published {
        let transformed = self
            .input
            .as_ref()
            .and_then(|t| t.apply(subject))
            .filter(|t| t != subject);
        let mut published = self.store_publish(
            transformed.as_deref().unwrap_or(subject),
            hdr.unwrap_or_default(),
            msg,
            now_ns,
            domain,
            quota,
        );
        if published.stored.is_some() {
            published.transformed = transformed;
        }
        published
    }

    /// [`publish`](Self::publish) under the subject to store.
    fn store_publish(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        now_ns: i64,
        domain: Option<&str>,
        quota: &Quota,
    ) -> Published {
        let max_payload = quota.max_payload;
        if self.cfg.sealed {
            return nack(&self.cfg.name, ApiError::sealed());
        }
        let parsed = if hdr.is_empty() {
            None
        } else {
            headers::parse(hdr).ok()
        };
        let get = |key: &str| {
            parsed
                .as_ref()
                .and_then(|h| h.get(key))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(expected) = get("Nats-Expected-Stream") {
            if expected != self.cfg.name {
                return nack(
                    &self.cfg.name,
                    ApiError::new(400, 10060, "expected stream does not match"),
                );
            }
        }
        let ttl = get(ttl::TTL_HEADER).map(|v| ttl::parse_ttl(&v));
        if !self.cfg.allow_msg_ttl && ttl.is_some_and(|t| t.is_ok_and(|t| t != 0)) {
            return nack(
                &self.cfg.name,
                ApiError::new(400, 10166, "per-message TTL is disabled"),
            );
        }
        if let Some(expected) = get("Nats-Expected-Last-Subject-Sequence") {
            let subj = get("Nats-Expected-Last-Subject-Sequence-Subject")
                .unwrap_or_else(|| subject.to_string());
            let last = self.store.load_last_msg(&subj).map_or(0, |m| m.seq);
            if expected.parse::<u64>().ok() != Some(last) {
                return nack(&self.cfg.name, wrong_last_sequence(last));
            }
        }
        if let Some(expected) = get("Nats-Expected-Last-Sequence") {
            let last = self.store.last_seq();
            if expected.parse::<u64>().ok() != Some(last) {
                return nack(&self.cfg.name, wrong_last_sequence(last));
            }
        }
        let id = get("Nats-Msg-Id");
        if let Some(id) = &id {
            self.expire_ids(now_ns);
            if let Some(seq) = self.dedup.get(id) {
                return Published {
                    ack: ack(&self.cfg.name, domain, *seq, true),
                    stored: None,
                    duplicate_of: Some(*seq),
                    transformed: None,
                    republish: None,
                };
            }
        }
        if let Some(expected) = get("Nats-Expected-Last-Msg-Id") {
            if expected != self.last_msg_id {
                return nack(
                    &self.cfg.name,
                    ApiError::new(
                        400,
                        10070,
                        &format!("wrong last msg ID: {}", self.last_msg_id),
                    ),
                );
            }
        }
        let rollup = match get("Nats-Rollup") {
            None => None,
            Some(_) if !self.cfg.allow_rollup_hdrs || self.cfg.deny_purge => {
                return nack(
                    &self.cfg.name,
                    ApiError::new(500, 10111, "rollup not permitted"),
                );
            }
            Some(r) if r == "sub" || r == "all" => Some(r),
            Some(r) => {
                return nack(
                    &self.cfg.name,
                    ApiError::new(500, 10111, &format!("rollup value invalid: {r:?}")),
                )
            }
        };
        if hdr.len() > max_payload || msg.len() > max_payload - hdr.len() {
            return nack(&self.cfg.name, ApiError::message_too_big());
        }
        if let Ok(max) = usize::try_from(self.cfg.max_msg_size) {
            if hdr.len() > max || msg.len() > max - hdr.len() {
                return nack(&self.cfg.name, ApiError::message_too_big());
            }
        }
        if hdr.len() > MAX_HEADER_LEN {
            return nack(&self.cfg.name, ApiError::header_too_big());
        }
        if quota.server_full {
            return nack(&self.cfg.name, ApiError::insufficient_resources());
        }
        let mut ttl = match ttl {
            Some(Err(())) => {
                return nack(
                    &self.cfg.name,
                    ApiError::new(400, 10165, "invalid per-message TTL"),
                )
            }
            Some(Ok(t)) if self.cfg.allow_msg_ttl => t,
            _ => 0,
        };
        // A TTL shorter than the markers' could outlive its marker: raised
        // to it (one message per subject needs no marker of its own).
        let marker_secs = self.cfg.subject_delete_marker_ttl / 1_000_000_000;
        let raised;
        let hdr = if ttl > 0 && ttl < marker_secs && self.cfg.max_msgs_per_subject != 1 {
            ttl = marker_secs;
            raised = ttl::with_ttl(hdr, ttl);
            &raised[..]
        } else {
            hdr
        };
        let republish = self.republish.as_ref().and_then(|(t, headers_only)| {
            let dest = t.apply(subject)?;
            let last = self
                .store
                .subjects_state(subject)
                .get(subject)
                .map_or(0, |s| s.last);
            Some((dest, *headers_only, last))
        });
        let seq = match self.store.store_msg(subject, hdr, msg, now_ns) {
            Ok((seq, _)) => {
                self.handed = seq;
                seq
            }
            Err(e) => {
                log::debug!(
                    "JetStream failed to store a msg on stream '{}': {e}",
                    self.cfg.name
                );
                let refused = nack(&self.cfg.name, store_error(&e));
                // If it failed writing, it also took back what was waiting.
                self.refusal = Some(refused.ack.clone());
                return refused;
            }
        };
        if let Some(room) = quota.account {
            // Stored, then taken back: the sequence stays used, as in
            // nats-server.
            if room.others.saturating_add(self.store.state().bytes) > room.max {
                self.remove_retained(seq);
                return nack(&self.cfg.name, ApiError::account_resources_exceeded());
            }
        }
        match rollup.as_deref() {
            Some("sub") => {
                let _ = self.store.purge_ex(subject, 0, 1);
            }
            Some(_) => {
                let _ = self.store.compact(seq);
            }
            None => {}
        }
        self.last_msg_id = id.clone().unwrap_or_default();
        if let Some(id) = id {
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((now_ns, id));
        }
        if let Some(t) = &mut self.ttls {
            t.note(seq, now_ns, ttl);
            if t.age_due.is_none() && self.cfg.max_age > 0 && ttl >= 0 {
                t.age_due = Some(now_ns.saturating_add(self.cfg.max_age));
            }
        }
        let republish = republish.map(|(dest, headers_only, last)| {
            let facts = RepublishFacts {
                stream: &self.cfg.name,
                subject,
                seq,
                ts: now_ns,
                last,
                size: headers_only.then_some(msg.len()),
            };
            Republish {
                subject: dest,
                hdr: facts.header(hdr),
                payload: if headers_only {
                    Vec::new()
                } else {
                    msg.to_vec()
                },
            }
        });
        Published {
            ack: ack(&self.cfg.name, domain, seq, false),
            stored: Some((seq, rollup.is_some())),
            duplicate_of: None,
            transformed: None,
            republish,
        }
    }

    fn expire_ids(&mut self, now_ns: i64) {
        let cutoff = now_ns - self.cfg.duplicate_window;
        while self.dedup_order.front().is_some_and(|(ts, _)| *ts < cutoff) {
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }

    /// `STREAM.PURGE`: returns how many were removed.
    pub fn purge(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64, ApiError> {
        if self.cfg.sealed {
            return Err(ApiError::sealed());
        }
        if self.cfg.deny_purge {
            return Err(ApiError::new(500, 10110, "stream purge not permitted"));
        }
        if seq > 0 && keep > 0 {
            return Err(ApiError::bad_request());
        }
        let n = if filter.is_empty() && seq == 0 && keep == 0 {
            self.store.purge()
        } else {
            self.store.purge_ex(filter, seq, keep)
        };
        n.map_err(|e| ApiError::new(500, 10110, &e.to_string()))
    }

    /// `STREAM.MSG.DELETE`.
    pub fn delete_msg(&mut self, seq: u64, no_erase: bool) -> Result<(), ApiError> {
        if self.cfg.sealed {
            return Err(ApiError::sealed());
        }
        if self.cfg.deny_delete {
            return Err(ApiError::new(500, 10057, "message delete not permitted"));
        }
        let r = if no_erase {
            self.store.remove_msg(seq)
        } else {
            self.store.erase_msg(seq)
        };
        match r {
            Ok(()) => Ok(()),
            Err(natsd_storage::Error::NotFound { .. }) => Err(ApiError::new(
                400,
                10043,
                &format!("sequence {seq} not found"),
            )),
            Err(natsd_storage::Error::Eof) => Err(ApiError::new(500, 10057, "stream store EOF")),
            Err(e) => Err(ApiError::new(500, 10057, &e.to_string())),
        }
    }

    /// A message by sequence, last by subject, or next by subject from
    /// `seq` (nats-server's `MSG.GET` rules).
    pub fn get(&self, seq: u64, last_by: &str, next_by: &str) -> Result<StoredMsg, ApiError> {
        let r = if !last_by.is_empty() {
            self.store.load_last_msg(last_by)
        } else if !next_by.is_empty() {
            self.store.load_next_msg(next_by, seq)
        } else {
            self.store.load_msg(seq)
        };
        r.map_err(|_| ApiError::no_message_found())
    }
}

/// What the headers of a republished message say.
struct RepublishFacts<'a> {
    stream: &'a str,
    subject: &'a str,
    seq: u64,
    ts: i64,
    /// The subject's previous sequence (0 for its first message).
    last: u64,
    /// The payload size, with `headers_only`.
    size: Option<usize>,
}

impl RepublishFacts<'_> {
    /// The message's own header block (if any) with `Nats-Stream`,
    /// `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`,
    /// `Nats-Last-Sequence` and, with `headers_only`, `Nats-Msg-Size`
    /// appended, in nats-server's order.
    fn header(&self, hdr: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut out = if hdr.is_empty() {
            b"NATS/1.0\r\n".to_vec()
        } else {
            hdr.strip_suffix(b"\r\n").unwrap_or(hdr).to_vec()
        };
        let _ = write!(
            out,
            "Nats-Stream: {}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {}\r\nNats-Last-Sequence: {}\r\n",
            self.stream,
            self.subject,
            self.seq,
            time_json(self.ts),
            self.last
        );
        if let Some(size) = self.size {
            let _ = write!(out, "Nats-Msg-Size: {size}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The largest header block a stream stores (nats-server's `math.MaxUint16`
/// check). Each republish copies the stored headers and adds its own, so
/// two streams that republish into each other's subjects stop here, as in
/// nats-server: the message that would pass it is refused with 10097.
const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// nats-server's `JSMaxSubjectDetails`.
const MAX_SUBJECT_DETAILS: usize = 100_000;

fn wrong_last_sequence(last: u64) -> ApiError {
    ApiError::new(400, 10071, &format!("wrong last sequence: {last}"))
}

/// The pub ack `{"stream":"S",["domain":"D",]"seq":N[,"duplicate": true]}`, byte for byte
/// as nats-server writes it.
fn ack(stream: &str, domain: Option<&str>, seq: u64, duplicate: bool) -> Vec<u8> {
    use std::io::Write;
    // One buffer per ack: the quoted names are written straight into it.
    let mut ack = Vec::with_capacity(48 + stream.len());
    ack.extend_from_slice(b"{\"stream\":");
    json_str(&mut ack, stream);
    if let Some(d) = domain {
        ack.extend_from_slice(b",\"domain\":");
        json_str(&mut ack, d);
    }
    // nats-server writes the duplicate ack by hand, space included.
    let _ = if duplicate {
        write!(ack, ",\"seq\":{seq},\"duplicate\": true}}")
    } else {
        write!(ack, ",\"seq\":{seq}}}")
    };
    ack
}

/// `s` as a JSON string: copied between quotes when nothing in it needs
/// escaping (the usual stream name), else escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// The `Nats-Msg-Id` of a stored header block.
fn msg_id(hdr: &[u8]) -> Option<String> {
    if hdr.is_empty() {
        return None;
    }
    let h = headers::parse(hdr).ok()?;
    h.get("Nats-Msg-Id")
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A refused publish: the error pub ack for stream `name`.
fn nack(name: &str, e: ApiError) -> Published {
    Published {
        ack: super::api::to_json(&serde_json::json!({
            "error": e,
            "stream": name,
            "seq": 0,
        })),
        stored: None,
        duplicate_of: None,
        transformed: None,
        republish: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 MiB `max_payload`, nothing else limited.
    const QUOTA: Quota = Quota {
        max_payload: 1 << 20,
        server_full: false,
        account: None,
    };

    fn mem(json: &str) -> Stream {
        let cfg: StreamConfig = serde_json::from_str(json).unwrap();
        let cfg = cfg.normalize().map_err(|e| e.description).unwrap();
        let params = StoreParams {
            dir: Path::new("/nonexistent"),
            sync_always: false,
            key: None,
        };
        Stream::create(cfg, 1, &params).unwrap()
    }

    fn ack(s: &mut Stream, subj: &str, hdr: Option<&str>, now: i64) -> serde_json::Value {
        let p = s.publish(subj, hdr.map(str::as_bytes), b"x", now, None, &QUOTA);
        serde_json::from_slice(&p.ack).unwrap()
    }

    #[test]
    fn ack_names_are_json_strings() {
        for name in ["S", "ÆØ-stream", "we\"ird\\", "tab\there"] {
            let v: serde_json::Value =
                serde_json::from_slice(&super::ack(name, Some(name), 7, false)).unwrap();
            assert_eq!(
                (v["stream"].as_str(), v["domain"].as_str()),
                (Some(name), Some(name))
            );
        }
    }

    #[test]
    fn acks_dedup_and_expectations() {
        let mut s = mem(r#"{"name":"S","subjects":["a.*"],"storage":"memory"}"#);
        assert_eq!(
            ack(&mut s, "a.1", None, 10),
            serde_json::json!({"stream":"S","seq":1})
        );
        let id = Some("NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n");
        assert_eq!(ack(&mut s, "a.1", id, 11)["seq"], 2);
        let dup = ack(&mut s, "a.1", id, 12);
        assert_eq!(
            dup,
            serde_json::json!({"stream":"S","seq":2,"duplicate":true})
        );
        // Past the window the id is new again.
        let later = 12 + super::super::config::DEFAULT_DUPLICATE_WINDOW;
        assert_eq!(ack(&mut s, "a.1", id, later)["seq"], 3);
        let e = ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Expected-Last-Sequence: 1\r\n\r\n"),
            later,
        );
        assert_eq!(e["error"]["err_code"], 10071);
        assert_eq!(e["error"]["description"], "wrong last sequence: 3");
        let e = ack(
            &mut s,
            "a.2",
            Some("NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n"),
            later,
        );
        assert_eq!(e["seq"], 4);
        let e = ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Expected-Stream: T\r\n\r\n"),
            later,
        );
        assert_eq!(e["error"]["err_code"], 10060);
        let e = ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Expected-Last-Msg-Id: zz\r\n\r\n"),
            later,
        );
        assert_eq!(e["error"]["description"], "wrong last msg ID: ");
        let e = ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Rollup: sub\r\n\r\n"),
            later,
        );
        assert_eq!(e["error"]["err_code"], 10111);
    }

    /// As nats-server 2.9.10: a full server refuses before storing (10023);
    /// an account past its limit gets the message stored and taken back
    /// (10002), its sequence used.
    #[test]
    fn quota_refusals() {
        use super::super::limits::AccountRoom;
        let mut s = mem(r#"{"name":"S","storage":"memory"}"#);
        let full = Quota {
            server_full: true,
            ..QUOTA
        };
        let p = s.publish("S", None, b"x", 1, None, &full);
        let v: serde_json::Value = serde_json::from_slice(&p.ack).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"code":503,"err_code":10023,"description":"insufficient resources"},"stream":"S","seq":0})
        );
        assert_eq!(s.state().last_seq, 0);
        let room = |others| Quota {
            account: Some(AccountRoom { max: 100, others }),
            ..QUOTA
        };
        let p = s.publish("S", None, &[b'x'; 40], 1, None, &room(0));
        assert_eq!(p.stored.map(|(seq, _)| seq), Some(1));
        let p = s.publish("S", None, &[b'x'; 40], 1, None, &room(50));
        let v: serde_json::Value = serde_json::from_slice(&p.ack).unwrap();
        assert_eq!(v["error"]["err_code"], 10002);
        assert_eq!(v["error"]["code"], 400);
        assert!(p.stored.is_none());
        let st = s.state();
        assert_eq!((st.msgs, st.last_seq), (1, 2));
    }

    #[test]
    fn rollup_and_limits() {
        let mut s = mem(
            r#"{"name":"S","subjects":["a.*"],"storage":"memory","allow_rollup_hdrs":true,"max_msgs":3,"discard":"new"}"#,
        );
        ack(&mut s, "a.1", None, 1);
        ack(&mut s, "a.2", None, 1);
        ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Rollup: sub\r\n\r\n"),
            1,
        );
        assert_eq!(s.state().msgs, 2);
        ack(&mut s, "a.3", None, 1);
        let e = ack(&mut s, "a.4", None, 1);
        assert_eq!(e["error"]["description"], "maximum messages exceeded");
        assert_eq!(e["error"]["code"], 503);
        ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Rollup: all\r\n\r\n"),
            1,
        );
        assert_eq!(
            s.state().msgs,
            3,
            "refused: still at max_msgs with discard new"
        );
        s.purge("", 0, 0).unwrap();
        ack(
            &mut s,
            "a.1",
            Some("NATS/1.0\r\nNats-Rollup: all\r\n\r\n"),
            1,
        );
        assert_eq!(s.state().msgs, 1);
        let mut s = mem(r#"{"name":"S","storage":"memory","first_seq":100}"#);
        assert_eq!(ack(&mut s, "S", None, 1)["seq"], 100);
        assert_eq!(s.state().first_seq, 100);
        let mut s = mem(r#"{"name":"S","storage":"memory","max_msg_size":4}"#);
        let p = s.publish("S", None, b"12345", 1, None, &QUOTA);
        assert!(p.stored.is_none());
        let v: serde_json::Value = serde_json::from_slice(&p.ack).unwrap();
        assert_eq!(v["error"]["err_code"], 10054);
    }

    #[test]
    fn subject_transform_and_republish() {
        let mut s = mem(
            r#"{"name":"S","subjects":["in.*.*"],"storage":"memory","subject_transform":{"src":"in.*.*","dest":"st.$2.$1"},"republish":{"src":"st.>","dest":"out.>"}}"#,
        );
        let p = s.publish("in.a.b", None, b"one", 7, None, &QUOTA);
        assert_eq!(p.transformed.as_deref(), Some("st.b.a"));
        let r = p.republish.unwrap();
        assert_eq!(r.subject, "out.b.a");
        assert_eq!(r.payload, b"one");
        assert_eq!(
            String::from_utf8(r.hdr).unwrap(),
            format!(
                "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: st.b.a\r\nNats-Sequence: 1\r\nNats-Time-Stamp: {}\r\nNats-Last-Sequence: 0\r\n\r\n",
                time_json(7)
            )
        );
        let p = s.publish(
            "in.a.b",
            Some(b"NATS/1.0\r\nX: y\r\n\r\n"),
            b"two",
            8,
            None,
            &QUOTA,
        );
        let hdr = String::from_utf8(p.republish.unwrap().hdr).unwrap();
        assert!(
            hdr.starts_with("NATS/1.0\r\nX: y\r\nNats-Stream: S\r\n"),
            "{hdr}"
        );
        assert!(hdr.ends_with("Nats-Last-Sequence: 1\r\n\r\n"), "{hdr}");
        assert_eq!(s.get(0, "st.b.a", "").unwrap().msg, b"two");
        // headers_only: no payload, its size in a header.
        let mut s = mem(
            r#"{"name":"S","subjects":["a"],"storage":"memory","republish":{"src":"a","dest":"b","headers_only":true}}"#,
        );
        let r = s
            .publish("a", None, b"12345", 1, None, &QUOTA)
            .republish
            .unwrap();
        assert!(r.payload.is_empty());
        assert!(String::from_utf8(r.hdr)
            .unwrap()
            .ends_with("Nats-Msg-Size: 5\r\n\r\n"));
    }

    #[test]
    fn transform_and_republish_refusals() {
        let e = |json: &str| {
            serde_json::from_str::<StreamConfig>(json)
                .unwrap()
                .normalize()
                .unwrap_err()
        };
        let err =
            e(r#"{"name":"S","subjects":["a.*"],"subject_transform":{"src":"a.*","dest":"b.$2"}}"#);
        assert_eq!((err.code, err.err_code), (400, 10156));
        assert_eq!(
            err.description,
            "stream transform: invalid mapping destination: wildcard index out of range in $2"
        );
        let err =
            e(r#"{"name":"S","subjects":["a.*"],"subject_transform":{"src":"a..b","dest":"b"}}"#);
        assert_eq!(err.err_code, 10155);
        let err = e(r#"{"name":"S","subjects":["a.*"],"republish":{"src":"a.*","dest":"a.>"}}"#);
        assert_eq!(
            err.description,
            "stream configuration for republish destination forms a cycle"
        );
        let err = e(r#"{"name":"S","subjects":["a.*"],"republish":{"src":"b.*","dest":"c.>"}}"#);
        assert_eq!(
            err.description,
            "stream configuration for republish source is not valid subset of subjects"
        );
    }

    fn stored_seqs(s: &Stream) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seq = 0;
        while let Ok(m) = s.store.load_next_msg(">", seq) {
            out.push(m.seq);
            seq = m.seq + 1;
        }
        out
    }

    #[test]
    fn message_ttls_expire_and_never_outlives_max_age() {
        const S: i64 = 1_000_000_000;
        let ttl = |v: &str| format!("NATS/1.0\r\nNats-TTL: {v}\r\n\r\n");
        let mut s = mem(r#"{"name":"S","subjects":["a.*"],"storage":"memory"}"#);
        let p = s.publish("a.1", Some(ttl("5").as_bytes()), b"x", 0, None, &QUOTA);
        let v: serde_json::Value = serde_json::from_slice(&p.ack).unwrap();
        assert_eq!(v["error"]["err_code"], 10166);
        let mut s = mem(
            r#"{"name":"S","subjects":["a.*"],"storage":"memory","allow_msg_ttl":true,"max_age":10000000000}"#,
        );
        for (subject, value) in [("a.1", "2s"), ("a.2", "never"), ("a.3", "20"), ("a.4", "")] {
            let hdr = (!value.is_empty()).then(|| ttl(value));
            let p = s.publish(
                subject,
                hdr.as_deref().map(str::as_bytes),
                b"x",
                0,
                None,
                &QUOTA,
            );
            assert!(p.stored.is_some());
        }
        let p = s.publish("a.5", Some(ttl("100ms").as_bytes()), b"x", 0, None, &QUOTA);
        let v: serde_json::Value = serde_json::from_slice(&p.ack).unwrap();
        assert_eq!(v["error"]["err_code"], 10165);
        assert_eq!(s.next_expiry(), Some(2 * S));
        assert_eq!(s.expire(2 * S).0, 1);
        assert_eq!(stored_seqs(&s), [2, 3, 4]);
        // max_age takes a.3 and a.4 (a TTL longer than max_age does not
        // keep a message), never a.2.
        assert_eq!(s.next_expiry(), Some(10 * S));
        assert_eq!(s.expire(10 * S).0, 2);
        assert_eq!(stored_seqs(&s), [2]);
        let evicted: Vec<u64> = s.take_evicted().into_iter().map(|(q, _)| q).collect();
        assert_eq!(evicted, [1, 3, 4]);
        assert_eq!(s.next_expiry(), Some(20 * S), "a.3's stale deadline");
        assert_eq!(s.expire(20 * S).0, 0);
        assert_eq!(s.next_expiry(), None);
    }

    #[test]
    fn subject_delete_markers_replace_the_last_message() {
        const S: i64 = 1_000_000_000;
        let mut s = mem(
            r#"{"name":"S","subjects":["k.*"],"storage":"memory","max_age":5000000000,"subject_delete_marker_ttl":60000000000,"republish":{"src":"k.*","dest":"rp.$1"}}"#,
        );
        assert!(s.cfg.allow_msg_ttl && s.cfg.allow_rollup_hdrs);
        s.publish("k.a", None, b"1", 0, None, &QUOTA);
        s.publish("k.a", None, b"2", S, None, &QUOTA);
        s.publish("k.b", None, b"3", S, None, &QUOTA);
        // k.a's first message is not its last: removed plainly.
        let (n, markers) = s.expire(5 * S);
        assert_eq!((n, markers.len()), (1, 0));
        let (n, markers) = s.expire(6 * S);
        assert_eq!(n, 2);
        let subjects: Vec<&str> = markers.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["k.a", "k.b"]);
        // Markers are republished like any stored message.
        let r = markers[0].published.republish.as_ref().unwrap();
        assert_eq!(r.subject, "rp.a");
        assert!(String::from_utf8_lossy(&r.hdr).contains("Nats-Marker-Reason: MaxAge"));
        assert_eq!(stored_seqs(&s), [4, 5]);
        let m = s.get(0, "k.a", "").unwrap();
        assert!(m.msg.is_empty());
        assert_eq!(
            m.hdr,
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1m0s\r\nNats-Rollup: sub\r\n\r\n"
        );
        // The markers live a minute and leave no marker behind.
        let (n, markers) = s.expire(6 * S + 60 * S);
        assert_eq!((n, markers.len()), (2, 0));
        assert_eq!(s.state().msgs, 0);
        // Short TTLs are raised to the markers'.
        let p = s.publish(
            "k.c",
            Some(b"NATS/1.0\r\nNats-TTL: 2\r\n\r\n"),
            b"x",
            100 * S,
            None,
            &QUOTA,
        );
        let seq = p.stored.unwrap().0;
        assert_eq!(
            s.store.load_msg(seq).unwrap().hdr,
            b"NATS/1.0\r\nNats-TTL: 60\r\n\r\n"
        );
    }
}
