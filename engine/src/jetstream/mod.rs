//! JetStream: streams and the `$JS.API`, as one [`Service`] on one stage
//! thread (the API and every stream's publishes for now).
//!
//! Per account the service's internal client subscribes to `$JS.API.>`
//! (and `$JS.<domain>.API.>` with a domain). Accounts without JetStream get
//! nats-server's "JetStream not enabled for account" error. Each stream
//! subscribes to its subjects in its account; a publish is stored and
//! acknowledged to its reply subject. File streams live in
//! `<store_dir>/jetstream/<account>/streams/<name>/` (`meta.inf` holds the
//! configuration, `msgs/` the block store) and are restored at start.
//!
//! The service reads no clock: wall time is derived from the
//! (`Instant`, wall time) pair it was built with and the `now` it is given.
mod api;
mod config;
mod consumers;
mod direct;
mod limits;
mod stream;
mod ttl;
pub(crate) mod versioning;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use data_encoding::BASE64;
use natsd_storage::{Cipher, EncryptionKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::internal::{Delivery, Internal, Service};
use crate::options::{JetStreamOptions, JsAccountLimits, Options};
use crate::server::{Account, Server};
use api::{kind, parse_request, ApiError};
use config::{Storage, StreamConfig};
use limits::{Quota, Reserved};
use stream::{StoreParams, Stream};

/// How soon after a change the monitoring totals are refreshed.
const STATS_DELAY: Duration = Duration::from_millis(100);
/// Request bytes served per batch (at least one request): the rest wait
/// for the next batch, after the publishes that came meanwhile.
const API_SLICE_BYTES: usize = 256 * 1024;

/// `<store_dir>/jetstream` (default `<tmp>/nats/jetstream`), as nats-server
/// places its JetStream store.
pub fn store_root(opts: &Options) -> PathBuf {
    opts.store_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("nats"))
        .join("jetstream")
}

/// The store key of file stream `stream` in `account` when `jetstream { key }`
/// is set: SHA-256 over the configured secret, the account name and the
/// stream name, each preceded by its length (u64, little-endian) so that no two
/// triples hash the same input. Every stream gets its own key, and the
/// configured secret alone opens it again.
fn stream_key(opts: &JetStreamOptions, account: &str, stream: &str) -> Option<EncryptionKey> {
    let secret = opts.key.as_deref()?;
    let mut h = Sha256::new();
    for part in [secret, account, stream] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    Some(EncryptionKey {
        cipher: opts.cipher,
        key: h.finalize().into(),
    })
}

/// Account `name`'s JetStream limits: those of its `jetstream { ... }`
/// block, none for `jetstream: enabled` and for `$G`.
fn limits_for(opts: &Options, name: &str) -> JsAccountLimits {
    opts.accounts
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.jetstream_limits)
        .unwrap_or_default()
}

/// Whether account `name` has JetStream: the accounts configured with
/// `jetstream: enabled`, or `$G` when none is.
pub fn enabled_for(opts: &Options, name: &str) -> bool {
    if !opts.jetstream.enabled
        || name
            == opts
                .system_account
                .as_deref()
                .unwrap_or(crate::accounts::SYSTEM_ACCOUNT)
    {
        return false;
    }
    if opts.accounts.iter().any(|a| a.jetstream) {
        opts.accounts.iter().any(|a| a.jetstream && a.name == name)
    } else {
        name == crate::accounts::GLOBAL_ACCOUNT
    }
}

/// The JetStream API level `$JS.API.INFO` reports: 1, nats-server 2.11's
/// (per-message TTLs, consumer pause, priority groups; clients check it
/// before using them).
const API_LEVEL: u32 = crate::server::JS_API_LEVEL;
/// nats-server's `JSApiNamesLimit`.
const NAMES_LIMIT: usize = 1024;
/// nats-server's `JSApiListLimit`.
const LIST_LIMIT: usize = 256;

/// What a subscription of the service is for.
#[derive(Debug, Clone)]
enum Target {
    /// The API of account `.0`; `.1` is the length of the prefix before the
    /// operation (`$JS.API.` or `$JS.<domain>.API.`).
    Api(usize, usize),
    /// Stream `.1` of account `.0`.
    Stream(usize, Arc<str>),
    /// `$JS.ACK.>` of account `.0`.
    Ack(usize),
    /// `$JS.FC.>` of account `.0`.
    FlowControl(usize),
}

struct JsAccount {
    account: Arc<Account>,
    enabled: bool,
    limits: JsAccountLimits,
    streams: BTreeMap<String, Stream>,
    api_total: u64,
    api_errors: u64,
}

/// The JetStream service.
pub struct JetStream {
    server: Arc<Server>,
    opts: JetStreamOptions,
    /// `<store_dir>/jetstream`.
    root: PathBuf,
    start: Instant,
    start_ns: i64,
    accounts: Vec<JsAccount>,
    subs: HashMap<u64, Target>,
    next_sync: Option<Instant>,
    /// When to refresh the monitoring totals (set by a change).
    stats_due: Option<Instant>,
    /// When to look at push consumers' deliver subjects next.
    interest_due: Option<Instant>,
    /// When to write changed consumer state.
    persist_due: Option<Instant>,
    /// Pub acks held until the end of the stage's batch, in arrival order:
    /// the stores write the batch's messages first (one write per stream).
    held: Vec<HeldAck>,
    /// Streams (account, name) that stored messages in this batch.
    dirty: Vec<(usize, Arc<str>)>,
    /// What follows each message stored in this batch (republish, delivery
    /// to the consumers), done once its stream's write succeeded.
    stored: Vec<Stored>,
    /// Confirmations of acks (sent with a reply subject) held until the
    /// consumer's state with the ack is written.
    confirms: Vec<consumers::Confirm>,
    /// API requests waiting their turn: served at the end of a batch, up to
    /// [`API_SLICE_BYTES`] of requests at a time, so a flood of large
    /// requests cannot hold up the publishes queued behind them.
    api_queue: VecDeque<ApiRequest>,
    /// A consumer's outputs, between the machine and the fabric (reused).
    outs: Vec<crate::consumer::Output>,
    /// Names of the consumers an input goes to (reused).
    names: Vec<Arc<str>>,
}

/// What a stream advisory reports.
#[derive(Debug, Clone, Copy)]
enum StreamAction {
    Create,
    Modify,
    Delete,
}

/// A pub ack waiting for its stream's write.
struct HeldAck {
    acc: usize,
    /// Index into `dirty` of the stream that stored the message (or the one
    /// it duplicates), and the sequence the ack names.
    stored_in: Option<(usize, u64)>,
    reply: Bytes,
    ack: Vec<u8>,
}

/// A `$JS.API` request waiting in [`JetStream::api_queue`].
struct ApiRequest {
    acc: usize,
    /// The subject after the API prefix, e.g. `STREAM.INFO.foo`.
    op: String,
    reply: Bytes,
    msg: Delivery,
}

/// A message stored in this batch whose republish and delivery wait for
/// its stream's write: nothing reaches a consumer or a republish subject
/// that a failed write could take back.
struct Stored {
    acc: usize,
    /// Index into `dirty` of its stream.
    dirty: usize,
    /// The subject it was published on.
    subject: Bytes,
    published: stream::Published,
}

/// An API reply: optional header block and body.
struct Reply {
    headers: Option<Vec<u8>>,
    body: Vec<u8>,
    error: bool,
}

impl Reply {
    fn json(body: Vec<u8>) -> Self {
        Reply {
            headers: None,
            body,
            error: false,
        }
    }

    fn error(kind: &str, err: &ApiError) -> Self {
        Reply {
            headers: None,
            body: api::error_response(kind, err),
            error: true,
        }
    }

    fn status(line: &str) -> Self {
        Reply {
            headers: Some(format!("NATS/1.0 {line}\r\n\r\n").into_bytes()),
            body: Vec::new(),
            error: true,
        }
    }

    /// What a requester gets when nobody serves the subject.
    fn no_responders() -> Self {
        Self::status("503")
    }
}

impl JetStream {
    /// The service for `server`, started at `start` (wall time
    /// `start_wall`). Creates the store directory and logs nats-server's
    /// JetStream banner.
    pub fn new(
        server: Arc<Server>,
        start: Instant,
        start_wall: SystemTime,
    ) -> std::io::Result<Self> {
        let all = server.options();
        let opts = all.jetstream.clone();
        let root = store_root(&all);
        std::fs::create_dir_all(&root)?;
        let start_ns = start_wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let size = |n: i64| match u64::try_from(n) {
            Ok(n) => friendly_bytes(n),
            Err(_) => "unlimited".to_string(),
        };
        log::info!("Starting JetStream");
        log::info!("---------------- JETSTREAM ----------------");
        log::info!("  Max Memory:      {}", size(opts.max_memory));
        log::info!("  Max Storage:     {}", size(opts.max_store));
        log::info!("  Store Directory: {:?}", root.display().to_string());
        if let Some(domain) = &opts.domain {
            log::info!("  Domain:          {domain}");
        }
        if opts.key.is_some() {
            // nats-server's names for its `StoreCipher`s.
            let cipher = match opts.cipher {
                Cipher::ChaCha20Poly1305 => "ChaCha20-Poly1305",
                Cipher::Aes256Gcm => "AES-GCM",
            };
            log::info!("  Encryption:      {cipher}");
        }
        log::info!("  API Level:       {API_LEVEL}");
        log::info!("-------------------------------------------");
        let system = server.system_account();
        let accounts = server
            .accounts()
            .into_iter()
            .filter(|a| !Arc::ptr_eq(a, &system))
            .map(|account| JsAccount {
                enabled: enabled_for(&all, &account.name),
                limits: limits_for(&all, &account.name),
                account,
                streams: BTreeMap::new(),
                api_total: 0,
                api_errors: 0,
            })
            .collect();
        Ok(JetStream {
            server,
            opts,
            root,
            start,
            start_ns,
            accounts,
            subs: HashMap::new(),
            next_sync: None,
            stats_due: None,
            interest_due: None,
            persist_due: None,
            held: Vec::new(),
            dirty: Vec::new(),
            stored: Vec::new(),
            confirms: Vec::new(),
            api_queue: VecDeque::new(),
            outs: Vec::new(),
            names: Vec::new(),
        })
    }

    fn now_ns(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.start).as_nanos();
        self.start_ns
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    fn instant_of(&self, ns: i64) -> Instant {
        let ahead = u64::try_from(ns.saturating_sub(self.start_ns)).unwrap_or(0);
        self.start + Duration::from_nanos(ahead)
    }

    fn stream_dir(&self, account: &str, stream: &str) -> PathBuf {
        self.root.join(account).join("streams").join(stream)
    }

    fn domain(&self) -> Option<&str> {
        self.opts.domain.as_deref()
    }

    /// Subscribe a stream's subjects in its account.
    fn subscribe_stream(&mut self, now: Instant, net: &mut Internal, acc: usize, name: &str) {
        let account = self.accounts[acc].account.clone();
        let Some(stream) = self.accounts[acc].streams.get_mut(name) else {
            return;
        };
        for sid in stream.sids.drain(..) {
            net.unsubscribe(sid);
            self.subs.remove(&sid);
        }
        for subject in stream.cfg.subjects.clone() {
            match net.subscribe(now, &account, &subject, None) {
                Ok(sid) => {
                    stream.sids.push(sid);
                    self.subs.insert(sid, Target::Stream(acc, Arc::from(name)));
                }
                Err(e) => log::error!(
                    "JetStream stream '{} > {name}' could not subscribe to {subject}: {e}",
                    account.name
                ),
            }
        }
    }

    /// Open the file streams an earlier run left in this account's directory.
    fn restore_streams(&mut self, now: Instant, net: &mut Internal, acc: usize) {
        let dir = self
            .root
            .join(&self.accounts[acc].account.name)
            .join("streams");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let now_ns = self.now_ns(now);
        for path in dirs {
            // The directory is named after the stream (see `stream_dir`).
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let params = StoreParams {
                dir: &path,
                sync_always: self.opts.sync_always,
                key: stream_key(
                    &self.opts,
                    &self.accounts[acc].account.name,
                    name.as_deref().unwrap_or_default(),
                ),
            };
            match Stream::restore(&params, now_ns) {
                Ok(mut stream) => {
                    stream.skip_to(consumers::saved_stream_seq(&stream), now_ns);
                    let name = stream.cfg.name.clone();
                    let st = stream.state();
                    log::info!(
                        "  Restored {} messages for stream '{} > {name}'",
                        st.msgs,
                        self.accounts[acc].account.name
                    );
                    self.accounts[acc].streams.insert(name.clone(), stream);
                    self.restore_consumers(now, acc, &name);
                    self.subscribe_stream(now, net, acc, &name);
                }
                Err(e) => log::warn!("  Error restoring stream from {}: {e}", path.display()),
            }
        }
    }

    fn handle_api(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        op: &str,
        msg: &Delivery,
    ) -> Reply {
        let tokens: Vec<&str> = op.split('.').collect();
        let body = &msg.payload[..];
        let enabled = self.accounts[acc].enabled;
        let (k, stream_name) = match tokens.as_slice() {
            ["INFO"] => (kind::ACCOUNT_INFO, None),
            ["STREAM", "CREATE", s] => (kind::STREAM_CREATE, Some(*s)),
            ["STREAM", "UPDATE", s] => (kind::STREAM_UPDATE, Some(*s)),
            ["STREAM", "DELETE", s] => (kind::STREAM_DELETE, Some(*s)),
            ["STREAM", "INFO", s] => (kind::STREAM_INFO, Some(*s)),
            ["STREAM", "NAMES"] => (kind::STREAM_NAMES, None),
            ["STREAM", "LIST"] => (kind::STREAM_LIST, None),
            ["STREAM", "PURGE", s] => (kind::STREAM_PURGE, Some(*s)),
            ["STREAM", "MSG", "GET", s] => (kind::MSG_GET, Some(*s)),
            ["STREAM", "MSG", "DELETE", s] => (kind::MSG_DELETE, Some(*s)),
            ["CONSUMER", ..] => return self.consumer_api(now, net, acc, &tokens, body),
            ["STREAM", "LEADER", "STEPDOWN", _] => {
                // nats-server without a cluster refuses before any other check.
                return Reply::error(kind::STREAM_LEADER_STEPDOWN, &ApiError::cluster_required());
            }
            _ => return Reply::no_responders(),
        };
        if !enabled {
            return Reply::error(k, &ApiError::not_enabled_for_account());
        }
        let result = match tokens.as_slice() {
            ["INFO"] => Ok(self.account_info(acc)),
            ["STREAM", "NAMES"] => self.stream_names(now, acc, body, false),
            ["STREAM", "LIST"] => self.stream_names(now, acc, body, true),
            ["STREAM", "CREATE", _] => {
                self.stream_create(now, net, acc, stream_name.unwrap_or(""), body)
            }
            ["STREAM", "UPDATE", _] => {
                self.stream_update(now, net, acc, stream_name.unwrap_or(""), body)
            }
            _ => self.stream_op(now, net, acc, &tokens, stream_name.unwrap_or(""), body),
        };
        match result {
            Ok(v) => Reply::json(api::response(k, &v)),
            Err(e) => Reply::error(k, &e),
        }
    }

    fn account_info(&self, acc: usize) -> serde_json::Value {
        let a = &self.accounts[acc];
        let l = &a.limits;
        let mut info = serde_json::json!({
            "memory": self.usage(Some(acc), Storage::Memory),
            "storage": self.usage(Some(acc), Storage::File),
            "reserved_memory": self.reserved(Some(acc), Storage::Memory, ""),
            "reserved_storage": self.reserved(Some(acc), Storage::File, ""),
            "streams": a.streams.len(),
            "consumers": a.streams.values().map(|s| s.consumers.len()).sum::<usize>(),
            "limits": {
                "max_memory": l.max_memory,
                "max_storage": l.max_store,
                "max_streams": l.max_streams,
                "max_consumers": l.max_consumers,
                "max_ack_pending": l.max_ack_pending,
                "memory_max_stream_bytes": l.memory_max_stream_bytes,
                "storage_max_stream_bytes": l.store_max_stream_bytes,
                "max_bytes_required": l.max_bytes_required,
            },
            "api": {"level": API_LEVEL, "total": a.api_total, "errors": a.api_errors},
        });
        if let Some(d) = self.domain() {
            info["domain"] = d.into();
        }
        info
    }

    /// The streams of account `acc`, or of every account.
    fn streams_of(&self, acc: Option<usize>) -> impl Iterator<Item = &Stream> {
        let accounts = match acc {
            Some(i) => std::slice::from_ref(&self.accounts[i]),
            None => &self.accounts[..],
        };
        accounts.iter().flat_map(|a| a.streams.values())
    }

    /// Tell stream `name`'s consumers about the messages its limits or
    /// `max_age` removed (before anything stored after them).
    fn feed_evicted(&mut self, now: Instant, net: &mut Internal, acc: usize, name: &str) {
        let Some(s) = self.accounts[acc].streams.get_mut(name) else {
            return;
        };
        let evicted = s.take_evicted();
        if s.consumers.is_empty() {
            return;
        }
        for (seq, subject) in evicted {
            self.stream_removed(now, net, acc, name, seq, subject.to_string());
        }
    }

    /// Bytes held by the streams of `storage` in account `acc`, or in the
    /// whole server.
    fn usage(&self, acc: Option<usize>, storage: Storage) -> u64 {
        self.streams_of(acc)
            .filter(|s| s.cfg.storage == storage)
            .map(Stream::bytes)
            .sum()
    }

    /// The `max_bytes` reserved by the streams of `storage` (those that set
    /// it) in account `acc` or in the whole server, leaving out stream
    /// `except`.
    fn reserved(&self, acc: Option<usize>, storage: Storage, except: &str) -> i64 {
        self.streams_of(acc)
            .filter(|s| s.cfg.storage == storage && s.cfg.max_bytes > 0 && s.cfg.name != except)
            .map(|s| s.cfg.max_bytes)
            .sum()
    }

    /// Whether a stream of `cfg` may reserve `add` more bytes (its
    /// `max_bytes` on create, the growth on update); `old_max_bytes` is
    /// the stream's reservation before an update.
    fn check_reservation(
        &self,
        acc: usize,
        cfg: &StreamConfig,
        add: i64,
        old_max_bytes: Option<i64>,
    ) -> Result<(), ApiError> {
        let reserved = Reserved {
            account: self.reserved(Some(acc), cfg.storage, &cfg.name) + old_max_bytes.unwrap_or(0),
            server: self.reserved(None, cfg.storage, ""),
        };
        let server_max = limits::server_max(cfg.storage, self.opts.max_memory, self.opts.max_store);
        limits::check_reservation(&self.accounts[acc].limits, server_max, cfg, add, reserved)
    }

    /// What a publish to a stream of `storage` in account `acc` may use.
    /// Costs a pass over the streams only when a limit is set.
    fn quota(&self, acc: usize, storage: Storage, stream: &str, max_payload: usize) -> Quota {
        let server_max = limits::server_max(storage, self.opts.max_memory, self.opts.max_store);
        let server_full =
            u64::try_from(server_max).is_ok_and(|max| self.usage(None, storage) > max);
        let account = limits::account_max(&self.accounts[acc].limits, storage).map(|max| {
            let others = self.accounts[acc]
                .streams
                .values()
                .filter(|s| s.cfg.storage == storage && s.cfg.name != stream)
                .map(Stream::bytes)
                .sum();
            limits::AccountRoom { max, others }
        });
        Quota {
            max_payload,
            server_full,
            account,
        }
    }

    /// nats-server's `stream_action` advisory on
    /// `$JS.EVENT.ADVISORY.STREAM.<CREATED|UPDATED|DELETED>.<stream>`, in
    /// the stream's account.
    fn stream_advisory(
        &self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        action: StreamAction,
    ) {
        #[derive(Serialize)]
        struct Advisory<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            id: String,
            timestamp: String,
            stream: &'a str,
            action: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            domain: Option<&'a str>,
        }
        let (what, action) = match action {
            StreamAction::Create => ("CREATED", "create"),
            StreamAction::Modify => ("UPDATED", "modify"),
            StreamAction::Delete => ("DELETED", "delete"),
        };
        let adv = Advisory {
            kind: "io.nats.jetstream.advisory.v1.stream_action",
            id: self.server.new_nonce(),
            timestamp: api::time_json(self.now_ns(now)),
            stream,
            action,
            domain: self.domain(),
        };
        let subject = format!("$JS.EVENT.ADVISORY.STREAM.{what}.{stream}");
        let account = &self.accounts[acc].account;
        net.publish(
            now,
            account,
            subject.as_bytes(),
            None,
            None,
            &api::to_json(&adv),
        );
    }

    /// nats-server's `api_audit` advisory on `$JS.EVENT.ADVISORY.API` after
    /// an API answer, in the requester's account (built only when someone
    /// listens). The client is named by its account only: natsd does not
    /// measure the `rtt` nats-server adds.
    fn api_audit(
        &self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        msg: &Delivery,
        response: &[u8],
    ) {
        const SUBJECT: &str = "$JS.EVENT.ADVISORY.API";
        let account = &self.accounts[acc].account;
        if account.sublist.matches(SUBJECT.as_bytes()).is_empty() {
            return;
        }
        #[derive(Serialize)]
        struct Client<'a> {
            acc: &'a str,
            server: &'a str,
        }
        #[derive(Serialize)]
        struct Audit<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            id: String,
            timestamp: String,
            server: &'a str,
            client: Client<'a>,
            subject: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "str::is_empty")]
            request: std::borrow::Cow<'a, str>,
            response: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            domain: Option<&'a str>,
        }
        let audit = Audit {
            kind: "io.nats.jetstream.advisory.v1.api_audit",
            id: self.server.new_nonce(),
            timestamp: api::time_json(self.now_ns(now)),
            server: self.server.name(),
            client: Client {
                acc: &account.name,
                server: self.server.name(),
            },
            subject: String::from_utf8_lossy(&msg.subject),
            request: String::from_utf8_lossy(&msg.payload),
            response: String::from_utf8_lossy(response),
            domain: self.domain(),
        };
        net.publish(
            now,
            account,
            SUBJECT.as_bytes(),
            None,
            None,
            &api::to_json(&audit),
        );
    }

    /// A create or update answer: the stream's info with the server's
    /// version metadata.
    fn stream_info(&self, acc: usize, name: &str, now: Instant) -> Option<serde_json::Value> {
        let s = self.accounts[acc].streams.get(name)?;
        let mut info = s.info(self.server.name(), self.now_ns(now), false, "", 0);
        versioning::add_dynamic(&mut info["config"]);
        Some(info)
    }

    fn stream_names(
        &self,
        now: Instant,
        acc: usize,
        body: &[u8],
        list: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let req: api::StreamListRequest = api::parse_object_request(body)?;
        let streams = &self.accounts[acc].streams;
        let matching: Vec<&Stream> = streams
            .values()
            .filter(|s| {
                req.subject.is_empty()
                    || s.cfg
                        .subjects
                        .iter()
                        .any(|subj| crate::consumer::subjects_collide(&req.subject, subj))
            })
            .collect();
        let limit = if list { LIST_LIMIT } else { NAMES_LIMIT };
        // nats-server: an offset past the end is the end.
        let offset = req.offset.min(matching.len());
        let page = matching.iter().skip(offset).take(limit);
        let items: Vec<serde_json::Value> = if list {
            let now_ns = self.now_ns(now);
            page.map(|s| s.info(self.server.name(), now_ns, false, "", 0))
                .collect()
        } else {
            page.map(|s| s.cfg.name.clone().into()).collect()
        };
        // nats-server: an empty page of names is `null`, of infos `[]`.
        let streams = if items.is_empty() && !list {
            serde_json::Value::Null
        } else {
            items.into()
        };
        Ok(serde_json::json!({
            "total": matching.len(),
            "offset": offset,
            "limit": limit,
            "streams": streams,
        }))
    }

    fn stream_create(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        name: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ApiError> {
        let cfg: StreamConfig = api::parse_body(body)?;
        if cfg.name != name {
            return Err(ApiError::stream_mismatch());
        }
        cfg.check_create_request()?;
        // nats-server checks the limits on the request as sent, before
        // its defaults and validation, and again after.
        let limits = &self.accounts[acc].limits;
        limits::check_streams(limits, self.accounts[acc].streams.len())?;
        self.check_reservation(acc, &cfg, cfg.max_bytes, None)?;
        let mut cfg = cfg.normalize_within(self.opts.limits.duplicate_window)?;
        limits::check_max_bytes(&self.accounts[acc].limits, &cfg)?;
        cfg.check_replicas_standalone()?;
        cfg.set_static_metadata();
        if let Some(existing) = self.accounts[acc].streams.get(name) {
            // The version metadata is no difference (nats-server's
            // `copyStreamMetadata`).
            let mut probe = cfg.clone();
            versioning::copy_required(&mut probe.metadata, &existing.cfg.metadata);
            if existing.cfg == probe {
                return self
                    .stream_info(acc, name, now)
                    .ok_or_else(ApiError::stream_not_found);
            }
            return Err(ApiError::new(
                400,
                10058,
                "stream name already in use with a different configuration",
            ));
        }
        self.check_reservation(acc, &cfg, cfg.max_bytes, None)?;
        if cfg.overlaps_any(self.accounts[acc].streams.values().map(|s| &s.cfg))? {
            return Err(ApiError::new(
                400,
                10065,
                "subjects overlap with an existing stream",
            ));
        }
        let dir = self.stream_dir(&self.accounts[acc].account.name, name);
        let params = StoreParams {
            dir: &dir,
            sync_always: self.opts.sync_always,
            key: stream_key(&self.opts, &self.accounts[acc].account.name, name),
        };
        let stream = Stream::create(cfg, self.now_ns(now), &params).map_err(|e| {
            log::warn!("Stream create failed for '{name}': {e}");
            ApiError::stream_store_create_failed()
        })?;
        self.accounts[acc].streams.insert(name.to_string(), stream);
        self.subscribe_stream(now, net, acc, name);
        self.stream_advisory(now, net, acc, name, StreamAction::Create);
        let mut info = self
            .stream_info(acc, name, now)
            .ok_or_else(ApiError::stream_not_found)?;
        info["did_create"] = true.into();
        Ok(info)
    }

    fn stream_update(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        name: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ApiError> {
        let cfg: StreamConfig = api::parse_body(body)?;
        // nats-server checks the configuration before the name in the subject.
        let mut cfg = cfg.normalize_within(self.opts.limits.duplicate_window)?;
        cfg.set_static_metadata();
        limits::check_max_bytes(&self.accounts[acc].limits, &cfg)?;
        if cfg.name != name {
            return Err(ApiError::stream_mismatch());
        }
        let old = self.accounts[acc]
            .streams
            .get(name)
            .ok_or_else(ApiError::stream_not_found)?;
        cfg.check_update(&old.cfg)?;
        // Only growth reserves more; the stream's old reservation counts
        // as the account's (as nats-server adds it, -1 included).
        let growth = (cfg.max_bytes - old.cfg.max_bytes).max(0);
        self.check_reservation(acc, &cfg, growth, Some(old.cfg.max_bytes))?;
        let streams = &mut self.accounts[acc].streams;
        let old = streams.get(name).ok_or_else(ApiError::stream_not_found)?;
        if cfg.overlaps_any(
            streams
                .values()
                .filter(|s| s.cfg.name != name)
                .map(|s| &s.cfg),
        )? {
            return Err(ApiError::new(
                400,
                10065,
                "subjects overlap with an existing stream",
            ));
        }
        let resubscribe = old.cfg.subjects != cfg.subjects;
        let stream = streams
            .get_mut(name)
            .ok_or_else(ApiError::stream_not_found)?;
        stream.update(cfg)?;
        self.feed_evicted(now, net, acc, name);
        if resubscribe {
            self.subscribe_stream(now, net, acc, name);
        }
        self.stream_advisory(now, net, acc, name, StreamAction::Modify);
        self.stream_info(acc, name, now)
            .ok_or_else(ApiError::stream_not_found)
    }

    /// The operations on one existing stream.
    fn stream_op(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        tokens: &[&str],
        name: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ApiError> {
        let server_name = self.server.name().to_string();
        let now_ns = self.now_ns(now);
        let streams = &mut self.accounts[acc].streams;
        if !streams.contains_key(name) {
            return Err(ApiError::stream_not_found());
        }
        match tokens {
            ["STREAM", "DELETE", _] => {
                let mut stream = streams
                    .remove(name)
                    .ok_or_else(ApiError::stream_not_found)?;
                for sid in &stream.sids {
                    net.unsubscribe(*sid);
                    self.subs.remove(sid);
                }
                self.stop_consumers(now, net, acc, name, &mut stream.consumers);
                stream.delete().map_err(|e| ApiError::new(500, 10050, &e))?;
                self.stream_advisory(now, net, acc, name, StreamAction::Delete);
                Ok(serde_json::json!({"success": true}))
            }
            ["STREAM", "INFO", _] => {
                let req: api::StreamInfoRequest = parse_request(body)?;
                let s = streams.get(name).ok_or_else(ApiError::stream_not_found)?;
                let mut info = s.info(
                    &server_name,
                    now_ns,
                    req.deleted_details,
                    &req.subjects_filter,
                    req.offset,
                );
                versioning::add_dynamic(&mut info["config"]);
                Ok(info)
            }
            ["STREAM", "PURGE", _] => {
                let req: api::PurgeRequest = parse_request(body)?;
                let s = streams
                    .get_mut(name)
                    .ok_or_else(ApiError::stream_not_found)?;
                let purged = s.purge(&req.filter, req.seq, req.keep)?;
                let filtered = !req.filter.is_empty() || req.seq > 0 || req.keep > 0;
                self.stream_purged(now, net, acc, name, filtered);
                Ok(serde_json::json!({"success": true, "purged": purged}))
            }
            ["STREAM", "MSG", "DELETE", _] => {
                let req: api::MsgDeleteRequest = api::parse_body(body)?;
                let s = streams
                    .get_mut(name)
                    .ok_or_else(ApiError::stream_not_found)?;
                let subject = s.subject_of(req.seq);
                s.delete_msg(req.seq, req.no_erase)?;
                if let Some(subject) = subject {
                    self.stream_removed(now, net, acc, name, req.seq, subject);
                }
                Ok(serde_json::json!({"success": true}))
            }
            ["STREAM", "MSG", "GET", _] => {
                let req: api::MsgGetRequest = api::parse_body(body)?;
                // nats-server's checks: no batch here; `seq`, `last_by_subj`
                // and `start_time` exclude each other, `next_by_subj` starts
                // at `seq` or `start_time`; the multi-last fields are ignored.
                let by_seq = req.seq > 0;
                let by_last = !req.last_by_subj.is_empty();
                let by_next = !req.next_by_subj.is_empty();
                let by_time = req.start_time.is_some();
                if req.batch > 0
                    || req.max_bytes > 0
                    || (by_seq && (by_last || by_time))
                    || (by_last && (by_time || by_next))
                    || !(by_seq || by_last || by_next || by_time)
                {
                    return Err(ApiError::bad_request());
                }
                let s = streams.get(name).ok_or_else(ApiError::stream_not_found)?;
                let seq = req
                    .start_time
                    .map_or(req.seq, |t| s.store().seq_from_time(t));
                let mut m = s.get(seq, &req.last_by_subj, &req.next_by_subj)?;
                if req.no_hdr {
                    m.hdr.clear();
                }
                #[derive(Serialize)]
                struct Msg {
                    subject: String,
                    seq: u64,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    hdrs: Option<String>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    data: Option<String>,
                    time: String,
                }
                let b64 = |v: &[u8]| (!v.is_empty()).then(|| BASE64.encode(v));
                let msg = Msg {
                    hdrs: b64(&m.hdr),
                    data: b64(&m.msg),
                    time: api::time_json(m.ts),
                    subject: m.subject,
                    seq: m.seq,
                };
                Ok(serde_json::json!({ "message": msg }))
            }
            _ => Err(ApiError::bad_request()),
        }
    }

    /// Fold every enabled account's figures into the server's
    /// [`JetStreamStats`](crate::server::JetStreamStats).
    fn publish_stats(&self) {
        let (mut memory, mut storage, mut streams, mut messages) = (0, 0, 0, 0);
        let mut consumers = 0;
        let (mut accounts, mut total, mut errors) = (0, 0, 0);
        for a in self.accounts.iter().filter(|a| a.enabled) {
            accounts += 1;
            total += a.api_total;
            errors += a.api_errors;
            for s in a.streams.values() {
                let st = s.state();
                streams += 1;
                consumers += s.consumers.len() as u64;
                messages += st.msgs;
                match s.cfg.storage {
                    Storage::Memory => memory += st.bytes,
                    Storage::File => storage += st.bytes,
                }
            }
        }
        let js = &self.server.jetstream;
        for (cell, v) in [
            (&js.memory, memory),
            (&js.storage, storage),
            (&js.accounts, accounts),
            (&js.streams, streams),
            (&js.consumers, consumers),
            (&js.messages, messages),
            (&js.bytes, memory + storage),
            (&js.api_total, total),
            (&js.api_errors, errors),
        ] {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Store a message published to a stream's subject; its ack and its
    /// follow-ups wait for the batch's write (`write_batch`).
    fn handle_publish(&mut self, now: Instant, acc: usize, name: &str, msg: Delivery) {
        let max_payload = self.server.options().max_payload;
        let now_ns = self.now_ns(now);
        let Some(storage) = self.accounts[acc].streams.get(name).map(|s| s.cfg.storage) else {
            return;
        };
        let quota = self.quota(acc, storage, name, max_payload);
        let domain = self.opts.domain.as_deref();
        let Some(stream) = self.accounts[acc].streams.get_mut(name) else {
            return;
        };
        let Ok(subject) = std::str::from_utf8(&msg.subject) else {
            return;
        };
        let mut published = stream.publish(
            subject,
            msg.headers.as_deref(),
            &msg.payload,
            now_ns,
            domain,
            &quota,
        );
        let no_ack = stream.cfg.no_ack;
        let seq = published
            .stored
            .map(|(seq, _)| seq)
            .or(published.duplicate_of);
        // A duplicate of a message stored in this batch is acked only if
        // that one's write succeeds.
        let dirty = match seq {
            Some(_) if published.stored.is_some() => Some(self.dirty_index(acc, name)),
            Some(_) => self
                .dirty
                .iter()
                .rposition(|(a, n)| *a == acc && **n == *name),
            None => None,
        };
        if let Some(reply) = msg.reply.filter(|r| !r.is_empty() && !no_ack) {
            self.held.push(HeldAck {
                acc,
                stored_in: dirty.zip(seq),
                reply,
                ack: std::mem::take(&mut published.ack),
            });
        }
        // Its evictions reach the consumers after the write (`write_batch`):
        // a failed write puts them back.
        if let (Some(dirty), Some(_)) = (dirty, published.stored) {
            self.stored.push(Stored {
                acc,
                dirty,
                subject: msg.subject,
                published,
            });
        }
    }

    /// Serve queued API requests, up to [`API_SLICE_BYTES`] of them.
    fn serve_api(&mut self, now: Instant, net: &mut Internal) {
        let mut budget = API_SLICE_BYTES;
        while let Some(req) = self.api_queue.pop_front() {
            let size = req.msg.payload.len() + req.op.len();
            let r = self.handle_api(now, net, req.acc, &req.op, &req.msg);
            // Counted once handled, as nats-server does: an `INFO` reply does
            // not count itself.
            let a = &mut self.accounts[req.acc];
            a.api_total += 1;
            if r.error {
                a.api_errors += 1;
            }
            let account = a.account.clone();
            net.publish(
                now,
                &account,
                &req.reply,
                None,
                r.headers.as_deref(),
                &r.body,
            );
            // Status replies are not API responses.
            if r.headers.is_none() {
                self.api_audit(now, net, req.acc, &req.msg, &r.body);
            }
            budget = budget.saturating_sub(size);
            if budget == 0 {
                break;
            }
        }
    }

    /// The index in `dirty` of a stream that stores in this batch.
    fn dirty_index(&mut self, acc: usize, name: &str) -> usize {
        // Mostly the stream of the previous publish: looked at first.
        match self
            .dirty
            .iter()
            .rposition(|(a, n)| *a == acc && **n == *name)
        {
            Some(i) => i,
            None => {
                self.dirty.push((acc, name.into()));
                self.dirty.len() - 1
            }
        }
    }

    /// A stored message's republish (sent before its pub ack, as
    /// nats-server does) and its delivery to the consumers.
    fn after_store(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        name: &str,
        subject: &str,
        published: stream::Published,
    ) {
        if let Some(r) = &published.republish {
            // Relayed: a stream whose subjects capture the republish
            // subject stores it (KV and stream pipelines rely on it).
            let account = &self.accounts[acc].account;
            net.publish_relayed(now, account, r.subject.as_bytes(), Some(&r.hdr), &r.payload);
        }
        if let Some(stored) = published.stored {
            let subject = published.transformed.as_deref().unwrap_or(subject);
            self.stream_stored(now, net, acc, name, stored, subject);
        }
    }

    /// Settle what failed writes took back: the held pub acks of those
    /// messages become refusals, and their republishes and deliveries are
    /// dropped. Called after every operation that may have written, before
    /// the stream hands the same sequences out again.
    fn settle_rollbacks(&mut self) {
        for (i, (acc, name)) in self.dirty.iter().enumerate() {
            let Some(s) = self.accounts[*acc].streams.get_mut(&**name) else {
                continue;
            };
            let Some((stored, refusal)) = s.take_rollback() else {
                continue;
            };
            let lost = |d: usize, seq: u64| d == i && seq > stored;
            for h in &mut self.held {
                if h.stored_in.is_some_and(|(d, seq)| lost(d, seq)) {
                    h.stored_in = None;
                    h.ack.clone_from(&refusal);
                }
            }
            self.stored.retain(|st| {
                st.published
                    .stored
                    .is_none_or(|(seq, _)| !lost(st.dirty, seq))
            });
        }
    }

    /// Write what the batch stored, then carry on from each message that
    /// is written (republish, consumers) and send the held pub acks, in
    /// arrival order: an acked message is in its stream's file, and a
    /// message a failed write took back is refused and seen by no one.
    fn write_batch(&mut self, now: Instant, net: &mut Internal) {
        for (acc, name) in &self.dirty {
            if let Some(stream) = self.accounts[*acc].streams.get_mut(&**name) {
                stream.flush();
            }
        }
        self.settle_rollbacks();
        let mut dirty = std::mem::take(&mut self.dirty);
        for (acc, name) in &dirty {
            self.feed_evicted(now, net, *acc, name);
        }
        let mut stored = std::mem::take(&mut self.stored);
        for st in stored.drain(..) {
            let name = dirty[st.dirty].1.clone();
            let subject = String::from_utf8_lossy(&st.subject);
            self.after_store(now, net, st.acc, &name, &subject, st.published);
        }
        self.stored = stored;
        for h in self.held.drain(..) {
            let account = &self.accounts[h.acc].account;
            net.publish(now, account, &h.reply, None, None, &h.ack);
        }
        dirty.clear();
        self.dirty = dirty;
    }
}

impl Service for JetStream {
    fn start(&mut self, now: Instant, net: &mut Internal) {
        let mut prefixes = vec!["$JS.API.".to_string()];
        if let Some(d) = self.domain() {
            prefixes.push(format!("$JS.{d}.API."));
        }
        for acc in 0..self.accounts.len() {
            let account = self.accounts[acc].account.clone();
            for prefix in &prefixes {
                match net.subscribe(now, &account, &format!("{prefix}>"), None) {
                    Ok(sid) => {
                        self.subs.insert(sid, Target::Api(acc, prefix.len()));
                    }
                    Err(e) => log::error!("JetStream API subscription failed: {e}"),
                }
            }
            if self.accounts[acc].enabled {
                for (subject, target) in [
                    ("$JS.ACK.>", Target::Ack(acc)),
                    ("$JS.FC.>", Target::FlowControl(acc)),
                ] {
                    match net.subscribe(now, &account, subject, None) {
                        Ok(sid) => {
                            self.subs.insert(sid, target);
                        }
                        Err(e) => log::error!("JetStream {subject} subscription failed: {e}"),
                    }
                }
                self.restore_streams(now, net, acc);
            }
        }
        if !self.opts.sync_always {
            self.next_sync = Some(now + self.opts.sync_interval);
        }
        self.publish_stats();
        log::info!("JetStream started");
    }

    fn handle_msg(&mut self, now: Instant, msg: Delivery, net: &mut Internal) {
        if self.stats_due.is_none() {
            self.stats_due = Some(now + STATS_DELAY);
        }
        match self.subs.get(&msg.sid).cloned() {
            Some(Target::Api(acc, prefix)) => {
                let Some(reply) = msg.reply.clone().filter(|r| !r.is_empty()) else {
                    return;
                };
                let op = String::from_utf8_lossy(msg.subject.get(prefix..).unwrap_or_default())
                    .into_owned();
                // Pull requests go to their consumer, not counted as API calls.
                if let Some(rest) = op.strip_prefix("CONSUMER.MSG.NEXT.") {
                    if let Some((stream, consumer)) = rest.split_once('.') {
                        self.handle_next(now, net, acc, stream, consumer, &msg);
                    }
                    return;
                }
                // Direct gets publish their replies themselves (a batch is
                // several messages) and are not API responses.
                if let Some(rest) = op.strip_prefix("DIRECT.GET.") {
                    self.accounts[acc].api_total += 1;
                    if self.direct_get(now, net, acc, rest, &msg.payload, &reply) {
                        self.accounts[acc].api_errors += 1;
                    }
                    return;
                }
                self.api_queue.push_back(ApiRequest {
                    acc,
                    op,
                    reply,
                    msg,
                });
            }
            Some(Target::Stream(acc, name)) => self.handle_publish(now, acc, &name, msg),
            Some(Target::Ack(acc)) => self.handle_ack(now, net, acc, msg),
            Some(Target::FlowControl(acc)) => self.handle_flow_control(now, net, acc, &msg),
            None => {}
        }
        if !self.dirty.is_empty() {
            self.settle_rollbacks();
        }
    }

    fn end_batch(&mut self, now: Instant, net: &mut Internal) {
        if !self.dirty.is_empty() || !self.held.is_empty() {
            self.write_batch(now, net);
        }
        if !self.api_queue.is_empty() {
            self.serve_api(now, net);
        }
        if !self.confirms.is_empty() {
            self.confirm_acks(now, net);
        }
    }

    /// Accounts' `jetstream { ... }` limits apply from the reload on (as
    /// for a new stream or publish; nothing stored is removed). Which
    /// accounts have JetStream cannot change by reload.
    fn reloaded(&mut self, _now: Instant, _net: &mut Internal) {
        let opts = self.server.options();
        for a in &mut self.accounts {
            let limits = limits_for(&opts, &a.account.name);
            if limits != a.limits {
                log::info!("JetStream limits of account {:?} reloaded", a.account.name);
                a.limits = limits;
            }
        }
    }

    fn shutdown(&mut self, now: Instant, net: &mut Internal) {
        self.signal_pull_consumers(now, net);
    }

    fn handle_timeout(&mut self, now: Instant, net: &mut Internal) {
        self.consumers_timeout(now, net);
        let now_ns = self.now_ns(now);
        let sync = self.next_sync.is_some_and(|at| at <= now);
        let mut expired = 0;
        let mut evicted = Vec::new();
        let mut markers = Vec::new();
        for (acc, a) in self.accounts.iter_mut().enumerate() {
            for (name, s) in &mut a.streams {
                let (n, m) = s.expire(now_ns);
                if n > 0 {
                    evicted.push((acc, name.clone()));
                }
                markers.extend(m.into_iter().map(|m| (acc, name.clone(), m)));
                expired += n;
                if sync {
                    s.sync();
                }
            }
        }
        for (acc, name) in evicted {
            self.feed_evicted(now, net, acc, &name);
        }
        for (acc, name, m) in markers {
            // Written and handed on at the end of the stage's batch, as a
            // publish is.
            if m.published.stored.is_some() {
                let dirty = self.dirty_index(acc, &name);
                self.stored.push(Stored {
                    acc,
                    dirty,
                    subject: Bytes::from(m.subject.into_bytes()),
                    published: m.published,
                });
            }
        }
        if !self.dirty.is_empty() {
            self.settle_rollbacks();
        }
        if expired > 0 && self.stats_due.is_none() {
            self.stats_due = Some(now + STATS_DELAY);
        }
        if sync {
            self.next_sync = Some(now + self.opts.sync_interval);
        }
        if self.stats_due.is_some_and(|at| at <= now) {
            self.stats_due = None;
            self.publish_stats();
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self
            .accounts
            .iter()
            .flat_map(|a| a.streams.values())
            .filter_map(Stream::next_expiry)
            .min()
            .map(|ns| self.instant_of(ns));
        // Requests left over from a batch are served on the next turn.
        let api = (!self.api_queue.is_empty()).then_some(self.start);
        [
            api,
            expiry,
            self.next_sync,
            self.stats_due,
            self.consumers_poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Drop for JetStream {
    /// The stage ends with the server: flush and close every store.
    fn drop(&mut self) {
        self.persist_consumers();
        for a in &mut self.accounts {
            for s in a.streams.values_mut() {
                s.sync();
                s.stop();
            }
        }
    }
}

/// nats-server's `friendlyBytes`, as its JetStream banner shows limits: bytes below 1 KiB,
/// else two decimals of the largest power of 1024 that fits (`64.00 MB`, `1.00 GB`).
fn friendly_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut exp = 0;
    while exp < UNITS.len() && n >= 1u64 << (10 * (exp + 1)) {
        exp += 1;
    }
    let scaled = n as f64 / (1u64 << (10 * exp)) as f64;
    format!("{scaled:.2} {}B", UNITS[exp - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::AccountConfig;

    #[test]
    fn banner_sizes_as_nats_server() {
        assert_eq!(friendly_bytes(64 << 20), "64.00 MB");
        assert_eq!(friendly_bytes(1 << 30), "1.00 GB");
        assert_eq!(friendly_bytes(1536), "1.50 KB");
        assert_eq!(friendly_bytes(1000), "1000 B");
        assert_eq!(friendly_bytes(u64::MAX), "16.00 EB");
    }

    #[test]
    fn which_accounts_have_jetstream() {
        let mut opts = Options::default();
        assert!(!enabled_for(&opts, "$G"));
        opts.jetstream.enabled = true;
        assert!(enabled_for(&opts, "$G"));
        assert!(!enabled_for(&opts, "$SYS"));
        opts.accounts = vec![
            AccountConfig {
                name: "A".into(),
                jetstream: true,
                ..AccountConfig::default()
            },
            AccountConfig {
                name: "B".into(),
                ..AccountConfig::default()
            },
        ];
        assert!(enabled_for(&opts, "A"));
        assert!(!enabled_for(&opts, "B"));
        assert!(!enabled_for(&opts, "$G"));
    }

    /// The derivation documented on `stream_key`, checked against a digest
    /// computed outside natsd (Python's hashlib over the same bytes).
    #[test]
    fn stream_keys_derive_from_secret_account_and_stream() {
        let mut opts = JetStreamOptions::default();
        assert!(stream_key(&opts, "$G", "ORDERS").is_none());
        opts.key = Some("s3cr3t".into());
        let k = stream_key(&opts, "$G", "ORDERS").unwrap();
        assert_eq!(k.cipher, Cipher::ChaCha20Poly1305);
        let hex: String = k.key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "1e2997931a3cd9d3c9c185d892c7817ca691103a2ed85a12d05457ee65ca6ec7"
        );
        let others = [
            stream_key(&opts, "$G", "ORDERS2").unwrap(),
            stream_key(&opts, "A", "ORDERS").unwrap(),
            // Lengths keep the parts apart: "$GO" + "RDERS" differs.
            stream_key(&opts, "$GO", "RDERS").unwrap(),
        ];
        assert!(others.iter().all(|o| o.key != k.key));
        opts.cipher = Cipher::Aes256Gcm;
        let aes = stream_key(&opts, "$G", "ORDERS").unwrap();
        assert_eq!((aes.cipher, aes.key), (Cipher::Aes256Gcm, k.key));
    }
}
