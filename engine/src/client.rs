//! The client connection machine (sans-IO).
//!
//! One [`ClientConn`] per client connection. It owns the read buffer and the
//! protocol parser, applies each op (auth, limits, subscriptions, publishes)
//! and writes every frame for its own client into its [`Outbound`] queue.
//! Publishing delivers straight into the receivers' outbound queues; the
//! receivers that need a wake-up are collected in the reactor's [`Context`].
//!
//! # Drain rule
//!
//! After [`handle_read`](ClientConn::handle_read),
//! [`handle_timeout`](ClientConn::handle_timeout) or
//! [`close`](ClientConn::close), the caller:
//! 1. calls [`poll_output`](ClientConn::poll_output) until `None` (a
//!    [`Output::Close`] means: flush what is queued, then drop the socket);
//! 2. wakes the owners of every outbound queue in [`Context::wakes`];
//! 3. asks [`poll_timeout`](ClientConn::poll_timeout) when to call
//!    `handle_timeout` next.
//!
//! Time is always an argument; the machine never reads a clock.
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use natsd_proto::info::{ConnectInfo, ServerInfo};
use natsd_proto::{encode, ClientOpParser, ClientOpRef, Limits};

use crate::accounts::{self, PendingResponse, Routing};
use crate::auth::{Permissions, ResponseTracker, TlsPeer, UserAccount};
use crate::conn::{read_ops, Turn};
use crate::deliver::{self, Msg, Sender};
use crate::internal::Event;
use crate::outbound::{Outbound, Owner, Pushed};
use crate::server::{Account, Server, COMPAT_VERSION, JS_API_LEVEL, NATSD_VERSION};
use crate::subject;
use crate::sublist::{MatchCache, MatchResult, SubValue};
use crate::trace;

/// A subscription as the sublist stores it.
pub type SubRef = Arc<Subscription>;

/// One client subscription.
#[derive(Debug)]
pub struct Subscription {
    key: u64,
    /// The client's subscription id.
    pub sid: Bytes,
    /// Subject filter.
    pub subject: Bytes,
    /// Queue group, if any.
    pub queue: Option<Bytes>,
    /// Where deliveries go.
    pub client: Arc<Outbound>,
    /// The subscriber's permissions (deliveries it may not see are skipped).
    pub(crate) perms: Option<Arc<Permissions>>,
    /// The subscriber's `allow_responses` tracker: replies delivered here
    /// may be answered.
    pub(crate) responses: Option<Arc<ResponseTracker>>,
    /// Auto-unsubscribe limit; 0 = none.
    pub(crate) max: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) removed: AtomicBool,
    /// Interest a route announced (`RS+`): deliveries are `RMSG`s to the
    /// route, not `MSG`s.
    route: bool,
    /// A route's queue interest: the number of members behind it.
    weight: AtomicU32,
    /// With tracing on: the subscriber's trace prefix, for `->> [MSG ...]`.
    pub(crate) trace: Option<Arc<str>>,
}

impl SubValue for SubRef {
    fn key(&self) -> u64 {
        self.key
    }
}

impl Subscription {
    /// Interest a route announced: `subject` (queue `queue`, `weight`
    /// members) of the peer behind `route`.
    pub(crate) fn remote(
        key: u64,
        subject: Bytes,
        queue: Option<Bytes>,
        weight: u32,
        route: Arc<Outbound>,
    ) -> Self {
        Subscription {
            key,
            sid: Bytes::new(),
            subject,
            queue,
            client: route,
            perms: None,
            responses: None,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            route: true,
            weight: AtomicU32::new(weight),
            trace: None,
        }
    }

    /// The sublist key.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Whether this is a route's interest.
    pub fn is_route(&self) -> bool {
        self.route
    }

    /// A route's queue weight (members behind the interest).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

/// Why a connection closed. `Display` gives nats-server's reason text (as
/// `/connz` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the socket.
    ClientClosed,
    /// Bad credentials, or an op before CONNECT on an auth server.
    AuthenticationViolation,
    /// No CONNECT within the auth timeout.
    AuthenticationTimeout,
    /// The client broke the protocol.
    ProtocolViolation,
    /// A payload over `max_payload`.
    MaxPayloadExceeded,
    /// A control line over `max_control_line`.
    MaxControlLineExceeded,
    /// Over `max_connections`.
    MaxConnectionsExceeded,
    /// Too many PINGs without a PONG.
    StaleConnection,
    /// Outbound bytes over `max_pending`.
    SlowConsumerPendingBytes,
    /// A write blocked longer than `write_deadline`.
    SlowConsumerWriteDeadline,
    /// The TLS handshake failed or timed out.
    TlsHandshakeFailure,
    /// Reading from the socket failed.
    ReadError,
    /// Writing to the socket failed.
    WriteError,
    /// The server is shutting down.
    ServerShutdown,
    /// A second route to a server this one already has a route to (or a
    /// route to itself).
    DuplicateRoute,
    /// A route from a server of another cluster.
    ClusterNameConflict,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::ClientClosed => "Client Closed",
            CloseReason::AuthenticationViolation => "Authentication Failure",
            CloseReason::AuthenticationTimeout => "Authentication Timeout",
            CloseReason::ProtocolViolation => "Protocol Violation",
            CloseReason::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            CloseReason::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            CloseReason::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            CloseReason::StaleConnection => "Stale Connection",
            CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            CloseReason::TlsHandshakeFailure => "TLS Handshake Failure",
            CloseReason::ReadError => "Read Error",
            CloseReason::WriteError => "Write Error",
            CloseReason::ServerShutdown => "Server Shutdown",
            CloseReason::DuplicateRoute => "Duplicate Route",
            CloseReason::ClusterNameConflict => "Cluster Name Conflict",
        })
    }
}

/// What the machine asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Flush what is queued (best effort), then close the socket.
    Close(CloseReason),
}

/// Per-reactor state shared by the connections it drives: the match cache
/// and the outbound queues that need their owner woken.
pub struct Context {
    /// One match cache per account seen on this reactor (most use one).
    caches: Vec<(u64, MatchCache<SubRef>)>,
    /// Outbound queues that received their first frame since their last
    /// flush. The driver wakes each owner once and clears the list.
    pub wakes: Vec<Arc<Outbound>>,
    /// Set when a delivery found its receiver more than half full: the
    /// driver pauses reading the publishing connection for a moment
    /// (nats-server's fast-producer stall). The driver clears it.
    pub stall: bool,
    rng: u64,
}

impl Context {
    /// A context; `seed` drives queue-member selection.
    pub fn new(seed: u64) -> Self {
        Context {
            caches: Vec::new(),
            wakes: Vec::new(),
            stall: false,
            rng: seed | 1,
        }
    }

    /// The match cache for the account with id `account`.
    #[inline]
    pub(crate) fn cache(&mut self, account: u64) -> &mut MatchCache<SubRef> {
        let i = match self.caches.iter().position(|(id, _)| *id == account) {
            Some(i) => i,
            None => {
                self.caches.push((account, MatchCache::new(4096)));
                self.caches.len() - 1
            }
        };
        &mut self.caches[i].1
    }

    /// Drop the match caches of accounts the server no longer has (after
    /// a config reload removed them). The caches of accounts that stay are
    /// still right: a cache holds only its account's own sublist matches
    /// (never import results) and follows that sublist's generation.
    pub fn forget_removed_accounts(&mut self, server: &Server) {
        let live: Vec<u64> = server.accounts().iter().map(|a| a.id()).collect();
        self.caches.retain(|(id, _)| live.contains(id));
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64: cheap, good enough to spread queue deliveries.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    pub(crate) fn wake_if(&mut self, pushed: Pushed, out: &Arc<Outbound>) {
        if matches!(pushed, Pushed::Wake { .. } | Pushed::SlowConsumer) {
            self.wakes.push(out.clone());
        }
    }
}

/// How the client identified itself in CONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    /// `name`.
    pub name: String,
    /// `lang`.
    pub lang: String,
    /// `version`.
    pub version: String,
}

/// One subscription as monitoring shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubSnapshot {
    /// Subject filter.
    pub subject: Bytes,
    /// Queue group.
    pub queue: Option<Bytes>,
    /// Subscription id.
    pub sid: Bytes,
    /// Messages delivered.
    pub msgs: u64,
    /// Auto-unsubscribe limit (0 = none).
    pub max: u64,
}

/// A connection's state at one instant, for monitoring (`/connz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// Client id.
    pub cid: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// When it was accepted.
    pub started: Instant,
    /// Last time the client sent something.
    pub last_activity: Instant,
    /// Round trip of the first PING the server sent, once its PONG came.
    pub rtt: Option<Duration>,
    /// Bytes queued or being written to it.
    pub pending_bytes: usize,
    /// Messages received from it.
    pub in_msgs: u64,
    /// Payload bytes received from it.
    pub in_bytes: u64,
    /// Messages delivered to it.
    pub out_msgs: u64,
    /// Payload bytes delivered to it.
    pub out_bytes: u64,
    /// `name`, `lang`, `version` from CONNECT.
    pub meta: ClientMeta,
    /// Account name.
    pub account: String,
    /// The user it authenticated as, if any.
    pub user: Option<String>,
    /// Its subscriptions.
    pub subs: Vec<SubSnapshot>,
    /// When and why it closed, for closed connections.
    pub closed: Option<(Instant, CloseReason)>,
}

const FIRST_PING_MAX: Duration = Duration::from_secs(2);
const READ_BUF_MIN: usize = 512;
/// How many imports a message may cross (re-exported imports chain); the
/// account loader refuses cycles, this bounds what it cannot see.
const MAX_IMPORT_HOPS: usize = 8;
/// Queued bytes past which deliveries to an internal client ask their
/// publishers to stall.
const INTERNAL_STALL_AT: usize = 8 * 1024 * 1024;

/// The server side of one client connection. See the module docs for the
/// drain rule.
pub struct ClientConn {
    server: Arc<Server>,
    account: Arc<Account>,
    out: Arc<Outbound>,
    cid: u64,
    peer: SocketAddr,
    parser: ClientOpParser,
    rbuf: BytesMut,
    connected: bool,
    /// A server-internal client (see [`ClientConn::internal`]).
    internal: bool,
    closed: Option<CloseReason>,
    verbose: bool,
    pedantic: bool,
    echo: bool,
    headers: bool,
    no_responders: bool,
    meta: ClientMeta,
    user: Option<String>,
    perms: Option<Arc<Permissions>>,
    /// Replies this client may answer (`allow_responses`).
    responses: Option<Arc<ResponseTracker>>,
    nonce: String,
    /// CONNECT's `protocol`: 1 = the client takes async INFO (lame duck).
    protocol: i64,
    /// The CONNECT that authenticated this client, re-checked on reload.
    connect: Option<ConnectInfo>,
    subs: HashMap<Bytes, SubRef>,
    pings_out: u32,
    /// When the PING that measures the round trip was sent.
    ping_sent_at: Option<Instant>,
    rtt: Option<Duration>,
    first_ping_done: bool,
    next_ping: Instant,
    last_in: Instant,
    auth_deadline: Option<Instant>,
    in_msgs: u64,
    in_bytes: u64,
    outputs: VecDeque<Output>,
    started: Instant,
    /// The verified TLS client certificate's names, for `verify_and_map`.
    tls_peer: Option<TlsPeer>,
    /// With tracing on: what follows `ip:port - cid:N - ` in this client's
    /// trace lines once CONNECT named it (see [`trace::client_tag`]).
    trace_tag: String,
}

impl ClientConn {
    /// A new connection accepted at `now` from `peer`; queues the INFO.
    pub fn new(
        server: Arc<Server>,
        now: Instant,
        peer: SocketAddr,
        owner: Owner,
        cid: u64,
    ) -> Self {
        let opts = server.options();
        let out = Outbound::new(cid, owner, opts.max_pending);
        let account = server.global.clone();
        let mut conn = Self::build(server, now, peer, out, account);
        let auth = conn.server.authenticator();
        conn.auth_deadline = auth.required().then(|| now + opts.auth_timeout);
        if auth.wants_nonce() {
            conn.nonce = conn.server.new_nonce();
        }
        let stats = &conn.server.stats;
        let live = stats.connections.fetch_add(1, Ordering::Relaxed) + 1;
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        log::debug!("{}Client connection created", conn.log_prefix());
        let info = conn.info_json(false);
        conn.push_own(info.len() + 8, |b| encode::info(b, &info));
        if live > opts.max_connections {
            conn.send_err("maximum connections exceeded");
            conn.close(CloseReason::MaxConnectionsExceeded);
        }
        conn
    }

    /// An internal client of the server in `account` (nats-server's
    /// SYSTEM/JETSTREAM clients): connected from the start, no INFO, no
    /// keep-alive, not counted as a connection, headers on, no echo. Its
    /// outbound queue never drops a delivery; its driver (a stage) reads
    /// the `MSG`/`HMSG` frames queued there.
    pub fn internal(
        server: Arc<Server>,
        now: Instant,
        account: Arc<Account>,
        owner: Owner,
        cid: u64,
    ) -> Self {
        let out = Outbound::new_internal(cid, owner, INTERNAL_STALL_AT);
        out.set_headers(true);
        let peer = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut conn = Self::build(server, now, peer, out, account);
        conn.internal = true;
        conn.connected = true;
        conn.verbose = false;
        conn.pedantic = false;
        conn.echo = false;
        conn.headers = true;
        conn.parser.set_limits(Limits {
            max_control_line: usize::MAX,
            max_payload: usize::MAX,
        });
        conn
    }

    fn build(
        server: Arc<Server>,
        now: Instant,
        peer: SocketAddr,
        out: Arc<Outbound>,
        account: Arc<Account>,
    ) -> Self {
        let opts = server.options();
        let limits = Limits {
            max_control_line: opts.max_control_line,
            max_payload: opts.max_payload,
        };
        ClientConn {
            account,
            cid: out.cid(),
            out,
            peer,
            parser: ClientOpParser::new(limits),
            rbuf: BytesMut::with_capacity(READ_BUF_MIN),
            connected: false,
            internal: false,
            closed: None,
            // Until CONNECT says otherwise, nats-server treats a client as
            // verbose, pedantic and echoing (Go's defaultOpts).
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
            meta: ClientMeta::default(),
            user: None,
            perms: None,
            responses: None,
            nonce: String::new(),
            protocol: 0,
            connect: None,
            subs: HashMap::new(),
            pings_out: 0,
            ping_sent_at: None,
            rtt: None,
            first_ping_done: false,
            // As nats-server: a full interval until CONNECT, which brings
            // the (short) first PING forward.
            next_ping: now + opts.ping_interval,
            last_in: now,
            auth_deadline: None,
            in_msgs: 0,
            in_bytes: 0,
            outputs: VecDeque::new(),
            started: now,
            tls_peer: None,
            trace_tag: String::new(),
            server,
        }
    }

    fn info_json(&self, ldm: bool) -> Vec<u8> {
        let opts = self.server.options();
        let info = ServerInfo {
            server_id: self.server.id().to_string(),
            server_name: self.server.name().to_string(),
            version: COMPAT_VERSION.to_string(),
            proto: 1,
            go: "go1.19.8".to_string(),
            host: opts.host.clone(),
            port: self.server.client_port(),
            headers: true,
            auth_required: self.server.authenticator().info_auth_required(),
            tls_required: opts.tls,
            tls_verify: opts.tls_verify,
            nonce: self.nonce.clone(),
            max_payload: i32::try_from(opts.max_payload).unwrap_or(i32::MAX),
            jetstream: opts.jetstream.enabled,
            domain: opts.jetstream.domain.clone().unwrap_or_default(),
            client_id: self.cid,
            client_ip: self.peer.ip().to_string(),
            natsd: NATSD_VERSION.to_string(),
            ldm,
            api_lvl: JS_API_LEVEL,
            connect_urls: self.server.connect_urls(),
            ..ServerInfo::default()
        };
        // Serializing a struct of strings, numbers and bools cannot fail.
        serde_json::to_vec(&info).unwrap_or_default()
    }

    /// The connection's client id.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// The shared outbound queue (the io layer writes it to the socket).
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.out
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Whether the client has been accepted (CONNECT passed).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The account the connection is bound to.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Internal clients: subscribe as if `SUB subject [queue] sid` arrived.
    /// `Err` carries nats-server's error text.
    pub fn subscribe(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        sid: &[u8],
    ) -> Result<(), String> {
        let before = self.subs.len();
        let had = self.subs.contains_key(sid);
        self.process_sub(subject, queue, sid);
        if had || self.subs.len() > before {
            Ok(())
        } else {
            Err(format!(
                "subscription to {:?} refused",
                String::from_utf8_lossy(subject)
            ))
        }
    }

    /// Internal clients: `UNSUB sid`.
    pub fn unsubscribe(&mut self, sid: &[u8]) {
        self.process_unsub(sid, None);
    }

    /// Internal clients: deliver a message routed by `to` (a push
    /// consumer's deliver subject, a pull request's reply) but shown to the
    /// receivers under `subject`, as nats-server delivers JetStream
    /// consumer messages. Stays in this account.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver_as(
        &mut self,
        now: Instant,
        ctx: &mut Context,
        to: &[u8],
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        let result = self.account.sublist.matches(to);
        let msg = Msg {
            subject,
            reply,
            headers,
            payload,
        };
        self.deliver_all(now, ctx, &self.account, &result, &msg);
    }

    /// `name`, `lang`, `version` from CONNECT.
    pub fn meta(&self) -> &ClientMeta {
        &self.meta
    }

    /// Messages and payload bytes received from this client.
    pub fn in_counts(&self) -> (u64, u64) {
        (self.in_msgs, self.in_bytes)
    }

    /// When the connection was accepted.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The connection's state now; `closed_at` is when it closed, for a
    /// closed connection.
    pub fn snapshot(&self, closed_at: Option<Instant>) -> ConnSnapshot {
        let (out_msgs, out_bytes) = self.out.out_counts();
        ConnSnapshot {
            cid: self.cid,
            peer: self.peer,
            started: self.started,
            last_activity: self.last_in,
            rtt: self.rtt,
            pending_bytes: self.out.pending(),
            in_msgs: self.in_msgs,
            in_bytes: self.in_bytes,
            out_msgs,
            out_bytes,
            meta: self.meta.clone(),
            account: self.account.name.clone(),
            user: self.user.clone(),
            subs: self
                .subs
                .values()
                .filter(|s| self.closed.is_some() || !s.removed.load(Ordering::Relaxed))
                .map(|s| SubSnapshot {
                    subject: s.subject.clone(),
                    queue: s.queue.clone(),
                    sid: s.sid.clone(),
                    msgs: s.delivered(),
                    max: s.max.load(Ordering::Relaxed),
                })
                .collect(),
            closed: closed_at.zip(self.closed),
        }
    }

    /// The buffer the driver reads socket bytes into; call
    /// [`handle_read`](Self::handle_read) after appending.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// Convenience for tests and fuzzing: append `bytes` and process them.
    pub fn handle_bytes(&mut self, now: Instant, ctx: &mut Context, bytes: &[u8]) {
        self.rbuf.extend_from_slice(bytes);
        self.handle_read(now, ctx);
    }

    /// Process every complete op in the read buffer.
    pub fn handle_read(&mut self, now: Instant, ctx: &mut Context) {
        if self.closed.is_some() {
            self.rbuf.clear();
            return;
        }
        self.last_in = now;
        // Ops borrow the read buffer (no copies, no reference counts), so it
        // is moved out of `self` while they are applied.
        let mut buf = std::mem::take(&mut self.rbuf);
        read_ops(&mut buf, |bytes| match self.parser.parse_ref(bytes) {
            Err(e) => {
                log::debug!("{}Client parser ERROR: {e}", self.log_prefix());
                if let Some(text) = e.client_error() {
                    self.send_err(text);
                }
                let reason = match e {
                    natsd_proto::ParseError::MaxPayload => CloseReason::MaxPayloadExceeded,
                    natsd_proto::ParseError::MaxControlLine => CloseReason::MaxControlLineExceeded,
                    _ => CloseReason::ProtocolViolation,
                };
                self.close(reason);
                Turn::Stop
            }
            Ok(step) => {
                if let Some(op) = step.op {
                    self.apply(now, ctx, op);
                }
                if self.closed.is_some() {
                    Turn::Stop
                } else {
                    Turn::Consumed(step.consumed)
                }
            }
        });
        self.rbuf = buf;
        self.shrink_read_buffer();
    }

    fn shrink_read_buffer(&mut self) {
        // An idle connection gives back a buffer that grew under load.
        if self.rbuf.is_empty() && self.rbuf.capacity() > 64 * 1024 {
            self.rbuf = BytesMut::with_capacity(READ_BUF_MIN);
        }
    }

    fn apply(&mut self, now: Instant, ctx: &mut Context, op: ClientOpRef<'_>) {
        if trace::enabled() && !self.internal {
            self.trace_in(&op);
        }
        if !self.connected && self.auth_deadline.is_some() && !matches!(op, ClientOpRef::Connect(_))
        {
            self.auth_violation();
            return;
        }
        match op {
            ClientOpRef::Connect(json) => self.process_connect(now, json),
            ClientOpRef::Pub {
                subject,
                reply,
                payload,
            } => self.publish(now, ctx, subject, reply, None, payload),
            ClientOpRef::HPub {
                subject,
                reply,
                headers,
                payload,
            } => {
                if !self.headers {
                    log::debug!(
                        "{}Client sent HPUB without header support",
                        self.log_prefix()
                    );
                    self.close(CloseReason::ProtocolViolation);
                    return;
                }
                self.publish(now, ctx, subject, reply, Some(headers), payload)
            }
            ClientOpRef::Sub {
                subject,
                queue,
                sid,
            } => self.process_sub(subject, queue, sid),
            ClientOpRef::Unsub { sid, max } => self.process_unsub(sid, max),
            ClientOpRef::Ping => {
                self.trace_out("PONG");
                self.push_own(6, encode::pong);
            }
            ClientOpRef::Pong => {
                self.pings_out = 0;
                if let Some(sent) = self.ping_sent_at.take() {
                    self.rtt = Some(now.saturating_duration_since(sent));
                }
            }
        }
    }

    fn process_connect(&mut self, now: Instant, json: &[u8]) {
        let ci: ConnectInfo = match serde_json::from_slice(json) {
            Ok(ci) => ci,
            Err(e) => {
                log::debug!("{}Client CONNECT parse error: {e}", self.log_prefix());
                self.close(CloseReason::ProtocolViolation);
                return;
            }
        };
        let identity = match self.server.authenticator().check_with_peer(
            &ci,
            self.nonce.as_bytes(),
            self.tls_peer.as_ref(),
        ) {
            Ok(identity) => identity,
            Err(e) => {
                log::debug!("{}{e}", self.log_prefix());
                self.auth_violation();
                return;
            }
        };
        if ci.protocol < 0 || ci.protocol > 1 {
            self.send_err("invalid client protocol");
            self.close(CloseReason::ProtocolViolation);
            return;
        }
        if ci.no_responders && !ci.headers {
            self.send_err("no responders requires headers support");
            self.close(CloseReason::ProtocolViolation);
            return;
        }
        self.verbose = ci.verbose;
        self.pedantic = ci.pedantic;
        self.echo = ci.echo;
        self.headers = ci.headers;
        self.no_responders = ci.no_responders;
        self.protocol = ci.protocol;
        self.out.set_headers(ci.headers);
        self.meta = ClientMeta {
            name: ci.name.clone(),
            lang: ci.lang.clone(),
            version: ci.version.clone(),
        };
        if let Err(name) = self.join_account(identity.account.as_deref()) {
            log::error!("{}Account {name:?} not found", self.log_prefix());
            self.auth_violation();
            return;
        }
        self.user = identity.user;
        self.responses = identity
            .permissions
            .as_ref()
            .and_then(|p| p.allow_responses())
            .map(|r| Arc::new(ResponseTracker::new(r)));
        self.perms = identity.permissions;
        self.connected = true;
        if trace::enabled() {
            self.trace_tag = trace::client_tag(
                &ci.version,
                &ci.lang,
                &ci.name,
                &self.account.name,
                &ci.user,
            );
        }
        self.connect = Some(ci);
        self.auth_deadline = None;
        self.last_in = now;
        self.next_ping = now + self.server.options().ping_interval.min(FIRST_PING_MAX);
        self.ok();
        if self.server.wants_events() {
            self.server.emit(Event::Connected(self.snapshot(None)));
        }
    }

    fn auth_violation(&mut self) {
        log::error!("{}Authorization Error", self.log_prefix());
        self.send_err("Authorization Violation");
        self.close(CloseReason::AuthenticationViolation);
    }

    fn process_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        if !subject::is_valid_subject(subject) {
            self.send_err("Invalid Subject");
            return;
        }
        if let Some(q) = queue {
            if !subject::is_valid_queue(q) {
                self.send_err("Invalid Queue Name");
                return;
            }
        }
        if let Some(perms) = &self.perms {
            if !perms.can_subscribe(subject, queue) {
                let text = sub_violation_text(subject, queue);
                log::error!("{}Subscription Violation - {text}", self.log_prefix());
                self.send_err(&text);
                return;
            }
        }
        if self.subs.contains_key(sid) {
            // nats-server ignores a SUB that reuses a live sid.
            self.ok();
            return;
        }
        let max_subs = self.server.options().max_subscriptions;
        if max_subs > 0 && self.subs.len() >= max_subs {
            self.send_err("maximum subscriptions exceeded");
            return;
        }
        // Copies, not slices of the read buffer: a long-lived slice would pin
        // the whole buffer it came from.
        let sid = Bytes::copy_from_slice(sid);
        let sub = Arc::new(Subscription {
            key: self.server.next_sub_id(),
            sid: sid.clone(),
            subject: Bytes::copy_from_slice(subject),
            queue: queue.map(Bytes::copy_from_slice),
            client: self.out.clone(),
            perms: self.perms.clone(),
            responses: self.responses.clone(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            route: false,
            weight: AtomicU32::new(0),
            trace: (trace::enabled() && !self.internal).then(|| Arc::from(self.trace_prefix())),
        });
        if let Err(e) = deliver::insert_local(&self.server, &self.account, &sub) {
            log::debug!("{}Sublist insert failed: {e}", self.log_prefix());
            self.send_err("Invalid Subject");
            return;
        }
        self.subs.insert(sid, sub);
        self.ok();
    }

    fn process_unsub(&mut self, sid: &[u8], max: Option<u64>) {
        let Some(sub) = self.subs.get(sid).cloned() else {
            self.ok();
            return;
        };
        match max {
            Some(n) if n > 0 && sub.delivered() < n => {
                sub.max.store(n, Ordering::Relaxed);
                // A delivery racing with this store may have pushed the
                // count to the limit already.
                if sub.delivered() >= n {
                    self.remove_sub(&sub);
                }
            }
            _ => self.remove_sub(&sub),
        }
        self.ok();
    }

    fn remove_sub(&mut self, sub: &SubRef) {
        self.trace_delsub(&sub.sid);
        self.subs.remove(&sub.sid);
        if !sub.removed.swap(true, Ordering::AcqRel) {
            deliver::remove_local(&self.server, &self.account, sub);
        }
    }

    /// A publish, from the wire (`PUB`/`HPUB`) or from an internal
    /// client: permissions, delivery to every matching subscription
    /// (receivers to wake land in `ctx`), imports, no-responders.
    pub fn publish(
        &mut self,
        now: Instant,
        ctx: &mut Context,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        self.in_msgs += 1;
        self.in_bytes += (payload.len() + headers.map_or(0, <[u8]>::len)) as u64;
        // Account mappings apply to clients' publishes before anything else,
        // permissions included (nats-server maps as the message is parsed).
        let mapped = if self.internal {
            None
        } else {
            self.account.map_subject(subject)
        };
        let subject = mapped.as_deref().map_or(subject, str::as_bytes);
        if let Some(perms) = &self.perms {
            let as_response = || {
                self.responses
                    .as_ref()
                    .is_some_and(|t| t.allows(subject, now))
            };
            if !perms.can_publish(subject) && !as_response() {
                self.publish_violation(format!(
                    "Permissions Violation for Publish to \"{}\"",
                    String::from_utf8_lossy(subject)
                ));
                return;
            }
        }
        if let Some(reply) = reply.filter(|r| accounts::is_reserved_reply(r)) {
            self.publish_violation(format!(
                "Permissions Violation for Publish with Reply of \"{}\"",
                String::from_utf8_lossy(reply)
            ));
            return;
        }
        if self.pedantic && !subject::is_valid_publish_subject(subject) {
            // nats-server reports it and still delivers the message.
            self.send_err("Invalid Publish Subject");
        }
        self.ok();
        // A stage publishes mostly to unique reply subjects (pub acks, API
        // answers), which would only churn a cache.
        let result = if self.internal {
            Arc::new(self.account.sublist.matches(subject))
        } else {
            ctx.cache(self.account.id())
                .get(&self.account.sublist, subject)
        };
        let msg = Msg {
            subject,
            reply,
            headers,
            payload,
        };
        let mut delivered = self.deliver_all(now, ctx, &self.account, &result, &msg);
        if let Some(routing) = self.account.routing() {
            delivered |= self.route_across_accounts(now, ctx, &self.account, &routing, &msg, 0);
        }
        if !delivered && self.no_responders {
            if let Some(reply) = reply {
                self.send_no_responders(ctx, subject, reply);
            }
        }
    }

    /// A refused publish: logged and reported, the connection stays open.
    fn publish_violation(&mut self, text: String) {
        log::error!("{}Publish Violation - {text}", self.log_prefix());
        self.send_err(&text);
    }

    /// Deliver to what `result` (matched in `acc`) holds; true if anyone
    /// took it.
    #[inline]
    fn deliver_all(
        &self,
        now: Instant,
        ctx: &mut Context,
        acc: &Account,
        result: &MatchResult<SubRef>,
        msg: &Msg<'_>,
    ) -> bool {
        let sender = Sender {
            server: &self.server,
            cid: self.cid,
            echo: self.echo,
            from_route: None,
        };
        deliver::deliver_all(&sender, now, ctx, acc, result, msg)
    }

    /// Deliver `msg` in account `acc` (reached through a service import or
    /// a response, `hops` imports away from the publisher), then follow
    /// `acc`'s own routes: an account may re-export a service it imports.
    /// True if anyone took it.
    fn publish_in(
        &self,
        now: Instant,
        ctx: &mut Context,
        acc: &Arc<Account>,
        msg: &Msg<'_>,
        hops: usize,
    ) -> bool {
        let result = acc.sublist.matches(msg.subject);
        let mut delivered = self.deliver_all(now, ctx, acc, &result, msg);
        if let Some(routing) = acc.routing().filter(|_| hops < MAX_IMPORT_HOPS) {
            delivered |= self.route_across_accounts(now, ctx, acc, &routing, msg, hops + 1);
        }
        delivered
    }

    /// Stream imports, service imports and service responses of a message
    /// published in account `acc` (see [`accounts`]); `hops` counts the
    /// imports already crossed.
    #[cold]
    fn route_across_accounts(
        &self,
        now: Instant,
        ctx: &mut Context,
        acc: &Arc<Account>,
        routing: &Routing,
        msg: &Msg<'_>,
        hops: usize,
    ) -> bool {
        let mut delivered = false;
        for route in routing.streams_for(msg.subject) {
            let Some(importer) = route.importer.upgrade() else {
                continue;
            };
            let subject = route.map.apply(&route.filter, msg.subject);
            let m = Msg {
                subject: &subject,
                ..*msg
            };
            // A streamed message stops in the importer: nats-server 2.9.10
            // does not pass it on through the importer's own exports.
            let result = importer.sublist.matches(&subject);
            delivered |= self.deliver_all(now, ctx, &importer, &result, &m);
        }
        for route in routing.services_for(msg.subject) {
            let Some(exporter) = route.exporter.upgrade() else {
                continue;
            };
            let subject = route.map.apply(&route.filter, msg.subject);
            let reply = msg.reply.map(|reply| {
                exporter.responses().add(
                    now,
                    PendingResponse {
                        account: Arc::downgrade(acc),
                        reply: reply.to_vec(),
                        response_type: route.response_type,
                        threshold: route.threshold,
                        expires: now + route.threshold,
                    },
                )
            });
            let info = self.request_info(route.share);
            let headers = accounts::set_header(msg.headers, accounts::REQUEST_INFO_HEADER, &info);
            let m = Msg {
                subject: &subject,
                reply: reply.as_deref(),
                headers: Some(&headers),
                payload: msg.payload,
            };
            let took = self.publish_in(now, ctx, &exporter, &m, hops);
            if !took {
                if let Some(r) = &reply {
                    exporter.responses().remove(r);
                }
            }
            // nats-server 2.9.10 counts the import itself as a receiver.
            delivered = true;
        }
        if routing.exports_services {
            let last = msg.payload.is_empty() && msg.headers.is_none();
            if let Some(p) = acc.responses().take(now, msg.subject, last) {
                if let Some(requester) = p.account.upgrade() {
                    let m = Msg {
                        subject: &p.reply,
                        reply: None,
                        ..*msg
                    };
                    if !self.publish_in(now, ctx, &requester, &m, hops) {
                        acc.responses().remove(msg.subject);
                    }
                    delivered = true;
                }
            }
        }
        delivered
    }

    /// The `Nats-Request-Info` value of a request this client sends through
    /// a service import.
    fn request_info(&self, share: bool) -> String {
        let ip = self.peer.ip().to_string();
        let server = self.server.name().to_string();
        let detail = share.then(|| accounts::RequestDetail {
            host: &ip,
            cid: self.cid,
            user: self.user.as_deref().unwrap_or(""),
            name: &self.meta.name,
            lang: &self.meta.lang,
            version: &self.meta.version,
            server: &server,
        });
        accounts::request_info_json(&self.account.name, detail.as_ref())
    }

    /// Move to the account an identity names (`None` = `$G`); `Err` with
    /// the name when no such account exists. Subscriptions made before
    /// (possible only without auth) move along.
    fn join_account(&mut self, name: Option<&str>) -> Result<(), String> {
        let name = name.unwrap_or(accounts::GLOBAL_ACCOUNT);
        if self.account.name == name {
            return Ok(());
        }
        let Some(acc) = self.server.account(name) else {
            return Err(name.to_string());
        };
        let old = std::mem::replace(&mut self.account, acc);
        for sub in self.subs.values() {
            if !sub.removed.load(Ordering::Acquire)
                && deliver::remove_local(&self.server, &old, sub)
            {
                // The subject was accepted once; it is still valid.
                let _ = deliver::insert_local(&self.server, &self.account, sub);
            }
        }
        Ok(())
    }

    /// A request nobody received: answer with a 503 status on the
    /// requester's own plain subscription to the reply subject (ADR-4,
    /// nats-server no-responders).
    fn send_no_responders(&mut self, ctx: &mut Context, subject: &[u8], reply: &[u8]) {
        let result = ctx
            .cache(self.account.id())
            .get(&self.account.sublist, reply);
        let Some(sub) = result.plain.iter().find(|s| s.client.cid() == self.cid) else {
            return;
        };
        let hdr = natsd_proto::headers::no_responders(Some(subject));
        let sid = sub.sid.clone();
        self.push_own(hdr.len() * 2 + reply.len() + 32, |b| {
            encode::hmsg(b, reply, &sid, None, &hdr, &[])
        });
    }

    /// Timers: auth timeout and PING keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() || self.internal {
            return;
        }
        if let Some(deadline) = self.auth_deadline {
            if now >= deadline {
                log::error!("{}Authentication Timeout", self.log_prefix());
                self.send_err("Authentication Timeout");
                self.close(CloseReason::AuthenticationTimeout);
                return;
            }
        }
        if now >= self.next_ping {
            let interval = self.server.options().ping_interval;
            self.next_ping = now + interval;
            // A client that talked to us recently is alive: no PING needed.
            if self.first_ping_done && now < self.last_in + interval {
                return;
            }
            self.first_ping_done = true;
            if self.pings_out >= self.server.options().ping_max {
                self.server
                    .stats
                    .stale_connections
                    .fetch_add(1, Ordering::Relaxed);
                log::debug!("{}Stale Client Connection - Closing", self.log_prefix());
                self.send_err("Stale Connection");
                self.close(CloseReason::StaleConnection);
                return;
            }
            self.pings_out += 1;
            if self.rtt.is_none() && self.ping_sent_at.is_none() {
                self.ping_sent_at = Some(now);
            }
            self.trace_out("PING");
            self.push_own(6, encode::ping);
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() || self.internal {
            return None;
        }
        Some(match self.auth_deadline {
            Some(d) => d.min(self.next_ping),
            None => self.next_ping,
        })
    }

    /// The next thing the driver must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Close the connection (idempotent): remove its subscriptions, release
    /// its connection slot and ask the driver to drop the socket.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        self.out.mark_closed(reason);
        // The map itself stays: a closed connection's snapshot lists them.
        let items: Vec<_> = self
            .subs
            .values()
            .filter(|s| !s.removed.swap(true, Ordering::AcqRel))
            .map(|s| {
                self.trace_delsub(&s.sid);
                (s.subject.clone(), s.queue.clone(), s.key)
            })
            .collect();
        if !items.is_empty() {
            self.account.sublist.remove_batch(&items);
            if let Some(cluster) = self.server.cluster() {
                let subs = items
                    .iter()
                    .map(|(subject, queue, _)| (subject, queue.as_ref()));
                cluster.local_interests(&self.account.name, subs, false);
            }
        }
        if self.internal {
            self.outputs.push_back(Output::Close(reason));
            return;
        }
        let stats = &self.server.stats;
        let (out_msgs, out_bytes) = self.out.out_counts();
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        stats
            .closed_in_msgs
            .fetch_add(self.in_msgs, Ordering::Relaxed);
        stats
            .closed_in_bytes
            .fetch_add(self.in_bytes, Ordering::Relaxed);
        stats.closed_out_msgs.fetch_add(out_msgs, Ordering::Relaxed);
        stats
            .closed_out_bytes
            .fetch_add(out_bytes, Ordering::Relaxed);
        log::debug!("{}Client connection closed: {reason}", self.log_prefix());
        self.outputs.push_back(Output::Close(reason));
    }

    fn ok(&mut self) {
        if self.verbose {
            self.push_own(5, encode::ok);
        }
    }

    fn send_err(&mut self, text: &str) {
        self.push_own(text.len() + 10, |b| encode::err(b, text.as_bytes()));
    }

    fn push_own(&mut self, size: usize, f: impl FnOnce(&mut BytesMut)) {
        // Our own control frames never trip max_pending on their own: they
        // are tiny, and a client that does not read is caught by publishers.
        let _ = self.out.push_with(size, 0, 0, f);
    }

    /// After a config reload: check this client's CONNECT against the new
    /// authenticator, as nats-server does on reload. A client whose user
    /// is gone or now belongs to another account is closed without a word
    /// (it reconnects into its new account, or fails to log in); one whose
    /// credentials no longer pass is closed with `Authorization Violation`;
    /// otherwise its new permissions apply at once, and subscriptions they
    /// no longer allow are removed. New limits apply to what it sends next.
    pub fn reauthorize(&mut self) {
        let opts = self.server.options();
        self.parser.set_limits(Limits {
            max_control_line: opts.max_control_line,
            max_payload: opts.max_payload,
        });
        let Some(ci) = self.connect.as_ref().filter(|_| self.closed.is_none()) else {
            return;
        };
        let auth = self.server.authenticator();
        let moved = match auth.user_account(ci) {
            UserAccount::Unnamed => false,
            UserAccount::Unknown => true,
            UserAccount::In(name) => name != self.account.name,
        };
        if moved {
            log::debug!(
                "{}reload: user removed or moved to another account",
                self.log_prefix()
            );
            self.close(CloseReason::ClientClosed);
            return;
        }
        match auth.check_with_peer(ci, self.nonce.as_bytes(), self.tls_peer.as_ref()) {
            Err(e) => {
                log::debug!("{}reload: {e}", self.log_prefix());
                self.auth_violation();
            }
            Ok(identity)
                if identity
                    .account
                    .as_deref()
                    .unwrap_or(accounts::GLOBAL_ACCOUNT)
                    != self.account.name =>
            {
                log::debug!("{}reload: now in another account", self.log_prefix());
                self.close(CloseReason::ClientClosed);
            }
            Ok(identity) => {
                self.user = identity.user;
                self.responses = identity
                    .permissions
                    .as_ref()
                    .and_then(|p| p.allow_responses())
                    .map(|r| Arc::new(ResponseTracker::new(r)));
                self.perms = identity.permissions;
                let Some(perms) = self.perms.clone() else {
                    return;
                };
                let refused: Vec<SubRef> = self
                    .subs
                    .values()
                    .filter(|s| !perms.can_subscribe(&s.subject, s.queue.as_deref()))
                    .cloned()
                    .collect();
                for sub in refused {
                    let text = sub_violation_text(&sub.subject, sub.queue.as_deref());
                    log::info!("{}reload: removed subscription: {text}", self.log_prefix());
                    self.remove_sub(&sub);
                }
            }
        }
    }

    /// Lame-duck mode: tell a client that takes async INFO (CONNECT
    /// `protocol` 1) that this server is going away (`ldm: true`, ADR-5), so
    /// it can reconnect elsewhere before it is closed.
    pub fn enter_lame_duck(&mut self) {
        if self.closed.is_none() && self.protocol >= 1 {
            let info = self.info_json(true);
            self.push_own(info.len() + 8, |b| encode::info(b, &info));
        }
    }

    /// The cluster's client URLs changed: a client that takes async INFO
    /// gets the new `connect_urls`, so it can fail over to the other
    /// servers.
    pub fn send_cluster_info(&mut self) {
        if self.closed.is_none() && self.connected && !self.internal && self.protocol >= 1 {
            let info = self.info_json(false);
            self.push_own(info.len() + 8, |b| encode::info(b, &info));
        }
    }

    /// The prefix of this client's trace lines.
    fn trace_prefix(&self) -> String {
        format!("{}{}", self.log_prefix(), self.trace_tag)
    }

    /// `<<- [OP args]` (and the payload line) for an op the client sent.
    #[cold]
    fn trace_in(&self, op: &ClientOpRef<'_>) {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let opt = |b: Option<&[u8]>| b.map(|b| format!(" {}", text(b))).unwrap_or_default();
        let (line, body) = match op {
            ClientOpRef::Connect(json) => (format!("CONNECT {}", trace::redact(&text(json))), None),
            ClientOpRef::Pub {
                subject,
                reply,
                payload,
            } => (
                format!("PUB {}{} {}", text(subject), opt(*reply), payload.len()),
                Some(*payload),
            ),
            ClientOpRef::HPub {
                subject,
                reply,
                headers,
                payload,
            } => (
                format!(
                    "HPUB {}{} {} {}",
                    text(subject),
                    opt(*reply),
                    headers.len(),
                    headers.len() + payload.len()
                ),
                None,
            ),
            ClientOpRef::Sub {
                subject,
                queue,
                sid,
            } => (
                format!("SUB {}{} {}", text(subject), opt(*queue), text(sid)),
                None,
            ),
            ClientOpRef::Unsub { sid, max } => (
                match max {
                    Some(n) => format!("UNSUB {} {n}", text(sid)),
                    None => format!("UNSUB {}", text(sid)),
                },
                None,
            ),
            ClientOpRef::Ping => ("PING".to_string(), None),
            ClientOpRef::Pong => ("PONG".to_string(), None),
        };
        let prefix = match op {
            ClientOpRef::Connect(_) => self.log_prefix(),
            _ => self.trace_prefix(),
        };
        log::trace!("{prefix}<<- [{line}]");
        if let ClientOpRef::HPub {
            headers, payload, ..
        } = op
        {
            let mut all = headers.to_vec();
            all.extend_from_slice(payload);
            trace_payload(&prefix, "<<-", &all);
        } else if let Some(body) = body {
            trace_payload(&prefix, "<<-", body);
        }
    }

    /// `->> [OP]` for a control op sent to the client.
    fn trace_out(&self, op: &str) {
        if trace::enabled() && !self.internal {
            log::trace!("{}->> [{op}]", self.trace_prefix());
        }
    }

    /// `<-> [DELSUB sid]`: a subscription went away.
    fn trace_delsub(&self, sid: &[u8]) {
        if trace::enabled() && !self.internal {
            log::trace!(
                "{}<-> [DELSUB {}]",
                self.trace_prefix(),
                String::from_utf8_lossy(sid)
            );
        }
    }

    /// nats-server's connection prefix for log lines: `ip:port - cid:N - `.
    pub fn log_prefix(&self) -> String {
        format!("{} - cid:{} - ", self.peer, self.cid)
    }

    /// The client's verified TLS certificate, read once the handshake is
    /// done; CONNECT is then checked against it (`verify_and_map`).
    pub fn set_tls_peer(&mut self, peer: TlsPeer) {
        self.tls_peer = Some(peer);
    }
}

/// `<<- MSG_PAYLOAD: ["..."]` / `->> ...`; nothing for an empty payload.
pub(crate) fn trace_payload(prefix: &str, dir: &str, payload: &[u8]) {
    if !payload.is_empty() {
        log::trace!("{prefix}{dir} MSG_PAYLOAD: [{}]", trace::quote(payload));
    }
}

/// nats-server's text for a refused SUB.
fn sub_violation_text(subject: &[u8], queue: Option<&[u8]>) -> String {
    let subject = String::from_utf8_lossy(subject);
    match queue {
        Some(q) => format!(
            "Permissions Violation for Subscription to \"{subject}\" using queue \"{}\"",
            String::from_utf8_lossy(q)
        ),
        None => format!("Permissions Violation for Subscription to \"{subject}\""),
    }
}

#[cfg(test)]
mod tests {
    // The machine never reads a clock; a test needs one real Instant as its
    // starting point and moves time forward by hand from there.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::options::Options;
    use std::time::Duration;

    fn server(opts: Options) -> Arc<Server> {
        Arc::new(Server::new(opts, [1u8; 32]))
    }

    fn conn(server: &Arc<Server>, now: Instant) -> ClientConn {
        let cid = server.next_cid();
        let owner = Owner {
            reactor: 0,
            slot: cid as usize,
        };
        ClientConn::new(
            server.clone(),
            now,
            "127.0.0.1:5000".parse().unwrap(),
            owner,
            cid,
        )
    }

    fn drain(c: &ClientConn) -> String {
        let mut b = BytesMut::new();
        c.outbound().take(&mut b);
        let n = b.len();
        c.outbound().written(n);
        String::from_utf8_lossy(&b).into_owned()
    }

    fn send(c: &mut ClientConn, ctx: &mut Context, now: Instant, bytes: &str) -> String {
        c.handle_bytes(now, ctx, bytes.as_bytes());
        drain(c)
    }

    const QUIET: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n";

    #[test]
    fn info_first_then_verbose_connect_gets_ok() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut c = conn(&s, now);
        let info = drain(&c);
        assert!(info.starts_with("INFO {\"server_id\":\"N"), "{info}");
        // nats-server 2.9.10 ends INFO with a space before CRLF.
        assert!(info.ends_with("} \r\n"), "{info}");
        assert!(info.contains("\"headers\":true"));
        assert!(!info.contains("auth_required"));
        assert_eq!(
            send(&mut c, &mut ctx, now, "CONNECT {\"verbose\":true}\r\n"),
            "+OK\r\n"
        );
        assert_eq!(send(&mut c, &mut ctx, now, "PING\r\n"), "PONG\r\n");
    }

    #[test]
    fn publish_reaches_subscriber_and_wakes_it_once() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = conn(&s, now);
        let mut b = conn(&s, now);
        drain(&a);
        drain(&b);
        send(&mut a, &mut ctx, now, QUIET);
        send(&mut b, &mut ctx, now, QUIET);
        assert_eq!(send(&mut a, &mut ctx, now, "SUB foo.* 1\r\n"), "");
        ctx.wakes.clear();
        b.handle_bytes(
            now,
            &mut ctx,
            b"PUB foo.bar r 5\r\nhello\r\nPUB foo.baz 0\r\n\r\n",
        );
        assert_eq!(ctx.wakes.len(), 1, "one wake per batch, not per message");
        assert_eq!(ctx.wakes[0].cid(), a.cid());
        assert_eq!(
            drain(&a),
            "MSG foo.bar 1 r 5\r\nhello\r\nMSG foo.baz 1 0\r\n\r\n"
        );
        assert_eq!(b.in_counts(), (2, 5));
    }

    #[test]
    fn queue_group_delivers_each_message_to_exactly_one_member() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(7);
        let mut members: Vec<_> = (0..3).map(|_| conn(&s, now)).collect();
        for (i, m) in members.iter_mut().enumerate() {
            send(m, &mut ctx, now, QUIET);
            send(m, &mut ctx, now, &format!("SUB q.> workers {i}\r\n"));
        }
        let mut p = conn(&s, now);
        send(&mut p, &mut ctx, now, QUIET);
        for _ in 0..300 {
            p.handle_bytes(now, &mut ctx, b"PUB q.x 1\r\nx\r\n");
        }
        let counts: Vec<usize> = members
            .iter()
            .map(|m| drain(m).matches("MSG").count())
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 300);
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    }

    #[test]
    fn wrong_token_is_an_authorization_violation() {
        let s = server(Options {
            token: Some("secret".into()),
            ..Options::default()
        });
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut c = conn(&s, now);
        assert!(drain(&c).contains("\"auth_required\":true"));
        let out = send(
            &mut c,
            &mut ctx,
            now,
            "CONNECT {\"auth_token\":\"nope\"}\r\n",
        );
        assert_eq!(out, "-ERR 'Authorization Violation'\r\n");
        assert_eq!(
            c.poll_output(),
            Some(Output::Close(CloseReason::AuthenticationViolation))
        );
        let mut ok = conn(&s, now);
        drain(&ok);
        let out = send(
            &mut ok,
            &mut ctx,
            now,
            "CONNECT {\"auth_token\":\"secret\",\"verbose\":false}\r\nPING\r\n",
        );
        assert_eq!(out, "PONG\r\n");
    }

    #[test]
    fn ping_before_connect_on_auth_server_is_a_violation() {
        let s = server(Options {
            user: Some("a".into()),
            pass: Some("b".into()),
            ..Options::default()
        });
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut c = conn(&s, now);
        drain(&c);
        assert_eq!(
            send(&mut c, &mut ctx, now, "PING\r\n"),
            "-ERR 'Authorization Violation'\r\n"
        );
        assert!(c.is_closed());
    }

    #[test]
    fn no_connect_within_auth_timeout_closes() {
        let s = server(Options {
            token: Some("t".into()),
            ..Options::default()
        });
        let now = Instant::now();
        let mut c = conn(&s, now);
        drain(&c);
        let t = c.poll_timeout().unwrap();
        assert_eq!(t, now + Duration::from_secs(2));
        c.handle_timeout(t);
        assert_eq!(drain(&c), "-ERR 'Authentication Timeout'\r\n");
        assert_eq!(
            c.poll_output(),
            Some(Output::Close(CloseReason::AuthenticationTimeout))
        );
    }

    #[test]
    fn no_ping_before_connect() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut c = conn(&s, now);
        drain(&c);
        assert_eq!(
            c.poll_timeout(),
            Some(now + Options::default().ping_interval)
        );
        c.handle_timeout(now + FIRST_PING_MAX);
        assert_eq!(drain(&c), "");
        let later = now + Duration::from_secs(10);
        send(&mut c, &mut ctx, later, QUIET);
        assert_eq!(c.poll_timeout(), Some(later + FIRST_PING_MAX));
    }

    #[test]
    fn first_ping_pong_measures_rtt() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut c = conn(&s, now);
        send(&mut c, &mut ctx, now, QUIET);
        assert_eq!(c.snapshot(None).rtt, None);
        let t = c.poll_timeout().unwrap();
        c.handle_timeout(t);
        assert_eq!(drain(&c), "PING\r\n");
        c.handle_bytes(t + Duration::from_millis(3), &mut ctx, b"PONG\r\n");
        assert_eq!(c.snapshot(None).rtt, Some(Duration::from_millis(3)));
    }

    #[test]
    fn unanswered_pings_make_a_stale_connection() {
        let s = server(Options {
            ping_interval: Duration::from_secs(1),
            ping_max: 2,
            ..Options::default()
        });
        let now = Instant::now();
        let mut c = conn(&s, now);
        drain(&c);
        let mut seen = String::new();
        for _ in 0..3 {
            let t = c.poll_timeout().unwrap();
            c.handle_timeout(t);
            seen.push_str(&drain(&c));
        }
        assert_eq!(seen, "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
        assert_eq!(
            c.poll_output(),
            Some(Output::Close(CloseReason::StaleConnection))
        );
    }

    #[test]
    fn slow_consumer_is_cut_off_and_publisher_keeps_going() {
        let s = server(Options {
            max_pending: 4096,
            ..Options::default()
        });
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut slow = conn(&s, now);
        send(&mut slow, &mut ctx, now, QUIET);
        send(&mut slow, &mut ctx, now, "SUB big 1\r\n");
        let mut p = conn(&s, now);
        send(&mut p, &mut ctx, now, QUIET);
        let payload = "x".repeat(1000);
        for _ in 0..10 {
            p.handle_bytes(
                now,
                &mut ctx,
                format!("PUB big 1000\r\n{payload}\r\n").as_bytes(),
            );
        }
        assert_eq!(
            slow.outbound().closed(),
            Some(CloseReason::SlowConsumerPendingBytes)
        );
        assert!(!p.is_closed());
        assert_eq!(send(&mut p, &mut ctx, now, "PING\r\n"), "PONG\r\n");
        assert_eq!(s.stats.slow_consumers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn publisher_is_asked_to_stall_before_a_receiver_becomes_slow() {
        let s = server(Options {
            max_pending: 8192,
            ..Options::default()
        });
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut sub = conn(&s, now);
        send(&mut sub, &mut ctx, now, QUIET);
        send(&mut sub, &mut ctx, now, "SUB s 1\r\n");
        let mut p = conn(&s, now);
        send(&mut p, &mut ctx, now, QUIET);
        let payload = "x".repeat(1000);
        let frame = format!("PUB s 1000\r\n{payload}\r\n");
        p.handle_bytes(now, &mut ctx, frame.as_bytes());
        assert!(!ctx.stall, "a receiver far from max_pending needs no stall");
        for _ in 0..4 {
            p.handle_bytes(now, &mut ctx, frame.as_bytes());
        }
        assert!(
            ctx.stall,
            "past half of max_pending the publisher should pause"
        );
        assert_eq!(
            sub.outbound().closed(),
            None,
            "stalling comes before cutting off"
        );
        ctx.stall = false;
        drain(&sub);
        p.handle_bytes(now, &mut ctx, frame.as_bytes());
        assert!(!ctx.stall, "a drained receiver lets the publisher run");
    }

    #[test]
    fn unsub_with_max_stops_after_that_many() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = conn(&s, now);
        send(&mut a, &mut ctx, now, QUIET);
        send(&mut a, &mut ctx, now, "SUB foo 9\r\nUNSUB 9 2\r\n");
        for _ in 0..5 {
            a.handle_bytes(now, &mut ctx, b"PUB foo 1\r\nx\r\n");
        }
        assert_eq!(drain(&a).matches("MSG foo 9 1").count(), 2);
        assert_eq!(s.global.sublist.count(), 0);
    }

    #[test]
    fn request_without_responders_gets_503() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = conn(&s, now);
        send(&mut a, &mut ctx, now, QUIET);
        let out = send(
            &mut a,
            &mut ctx,
            now,
            "SUB _INBOX.x 1\r\nPUB nobody _INBOX.x 0\r\n\r\n",
        );
        assert_eq!(
            out,
            "HMSG _INBOX.x 1 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n"
        );
    }

    #[test]
    fn echo_off_skips_own_messages() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = conn(&s, now);
        drain(&a);
        send(
            &mut a,
            &mut ctx,
            now,
            "CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB e 1\r\n",
        );
        assert_eq!(
            send(&mut a, &mut ctx, now, "PUB e 1\r\nx\r\nPING\r\n"),
            "PONG\r\n"
        );
    }

    #[test]
    fn close_removes_subscriptions() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = conn(&s, now);
        send(&mut a, &mut ctx, now, QUIET);
        send(&mut a, &mut ctx, now, "SUB a 1\r\nSUB b 2\r\nSUB c q 3\r\n");
        assert_eq!(s.global.sublist.count(), 3);
        a.close(CloseReason::ClientClosed);
        assert_eq!(s.global.sublist.count(), 0);
        assert_eq!(s.stats.connections.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn hpub_to_subscriber_without_headers_arrives_as_msg() {
        let s = server(Options::default());
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut plain = conn(&s, now);
        drain(&plain);
        send(
            &mut plain,
            &mut ctx,
            now,
            "CONNECT {\"verbose\":false}\r\nSUB h 1\r\n",
        );
        let mut p = conn(&s, now);
        send(&mut p, &mut ctx, now, QUIET);
        p.handle_bytes(now, &mut ctx, b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        assert_eq!(drain(&plain), "MSG h 1 2\r\nhi\r\n");
    }

    fn conf(text: &str) -> Options {
        let map = crate::conf::parse(text).expect("conf");
        let mut opts = Options::default();
        assert!(opts.apply_conf(&map).is_ok(), "{text}");
        opts
    }

    fn login(s: &Arc<Server>, ctx: &mut Context, now: Instant, user: &str) -> ClientConn {
        let mut c = conn(s, now);
        drain(&c);
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\nPING\r\n"
        );
        assert_eq!(send(&mut c, ctx, now, &connect), "PONG\r\n", "{user}");
        c
    }

    const TWO_ACCOUNTS: &str = r#"
accounts {
  A { users [{user: a, password: a}, {user: m, password: m}], exports [{stream: "ev.>"}] }
  B { users [{user: b, password: b}] }
  R { users [{user: r, password: r}] }
}
"#;

    #[test]
    fn reload_closes_users_that_moved_or_went_without_an_error() {
        let s = server(conf(TWO_ACCOUNTS));
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = login(&s, &mut ctx, now, "a");
        let mut m = login(&s, &mut ctx, now, "m");
        let mut r = login(&s, &mut ctx, now, "r");
        s.reload(conf(
            r#"accounts { A { users [{user: a, password: a}] }, B { users [{user: b, password: b}, {user: m, password: m}] } }"#,
        ))
        .expect("reload");
        for c in [&mut a, &mut m, &mut r] {
            c.reauthorize();
        }
        assert_eq!(a.poll_output(), None, "a stays in A");
        assert_eq!(send(&mut a, &mut ctx, now, "PING\r\n"), "PONG\r\n");
        for (name, c) in [("m moved to B", &mut m), ("r and R removed", &mut r)] {
            assert_eq!(drain(c), "", "{name}: closed without -ERR");
            assert_eq!(
                c.poll_output(),
                Some(Output::Close(CloseReason::ClientClosed)),
                "{name}"
            );
        }
        let m = login(&s, &mut ctx, now, "m");
        assert_eq!(m.account().name, "B");
    }

    #[test]
    fn reload_applies_imports_though_the_exporters_matches_are_cached() {
        let s = server(conf(TWO_ACCOUNTS));
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = login(&s, &mut ctx, now, "a");
        let mut b = login(&s, &mut ctx, now, "b");
        send(&mut a, &mut ctx, now, "SUB ev.> 1\r\n");
        send(&mut b, &mut ctx, now, "SUB in.ev.x 1\r\nSUB ev.x 2\r\n");
        let publish = |a: &mut ClientConn, ctx: &mut Context| {
            a.handle_bytes(now, ctx, b"PUB ev.x 2\r\nhi\r\n");
            drain(a)
        };
        assert_eq!(publish(&mut a, &mut ctx), "MSG ev.x 1 2\r\nhi\r\n");
        assert_eq!(drain(&b), "", "B imports nothing yet");

        let import = TWO_ACCOUNTS.replace(
            "B { users [{user: b, password: b}] }",
            r#"B { users [{user: b, password: b}], imports [{stream: {account: A, subject: "ev.>"}, prefix: in}] }"#,
        );
        s.reload(conf(&import)).expect("reload");
        ctx.forget_removed_accounts(&s);
        for c in [&mut a, &mut b] {
            c.reauthorize();
            assert_eq!(c.poll_output(), None);
        }
        assert_eq!(publish(&mut a, &mut ctx), "MSG ev.x 1 2\r\nhi\r\n");
        assert_eq!(drain(&b), "MSG in.ev.x 1 2\r\nhi\r\n", "import added");

        s.reload(conf(TWO_ACCOUNTS)).expect("reload back");
        assert_eq!(publish(&mut a, &mut ctx), "MSG ev.x 1 2\r\nhi\r\n");
        assert_eq!(drain(&b), "", "import removed");
    }

    #[test]
    fn reload_drops_the_match_caches_of_removed_accounts_only() {
        let s = server(conf(TWO_ACCOUNTS));
        let now = Instant::now();
        let mut ctx = Context::new(1);
        let mut a = login(&s, &mut ctx, now, "a");
        let mut r = login(&s, &mut ctx, now, "r");
        a.handle_bytes(now, &mut ctx, b"PUB x 0\r\n\r\n");
        r.handle_bytes(now, &mut ctx, b"PUB x 0\r\n\r\n");
        let ids = |ctx: &Context| ctx.caches.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        assert_eq!(ids(&ctx), [a.account().id(), r.account().id()]);
        s.reload(conf("accounts { A { users [{user: a, password: a}] } }"))
            .expect("reload");
        ctx.forget_removed_accounts(&s);
        assert_eq!(ids(&ctx), [a.account().id()]);
    }
}
