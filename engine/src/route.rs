//! The route connection machine (sans-IO): one [`RouteConn`] per route, a
//! connection to another server of the cluster (natsd or nats-server).
//!
//! It has the client machine's shape and drain rule (see
//! [`crate::client`]): bytes arrive through [`RouteConn::read_buffer`] and
//! [`RouteConn::handle_read`], timers through [`RouteConn::handle_timeout`],
//! and everything for the peer goes into the route's [`Outbound`] queue,
//! which publishers on any reactor write `RMSG`s into.
//!
//! # Handshake
//!
//! The accepting side sends its `INFO` at once; the soliciting side sends
//! `CONNECT` (credentials, cluster name) and its `INFO`. A route is
//! registered with the [`Cluster`] when the peer's `INFO` arrives: a route
//! to this server itself, a second route to the same peer, or a peer of
//! another cluster is closed. Once registered the route gets this server's
//! whole local interest; later `INFO`s on it are updates from the peer, or
//! gossip about other servers (which this server then dials).
//!
//! # Interest and messages
//!
//! `RS+`/`LS+` put a route subscription into the account's sublist (a
//! repeated `RS+` only updates a queue weight), `RS-`/`LS-` take it out.
//! `RMSG`/`HMSG`/`LMSG` are delivered to local subscribers only, and to one
//! local member of each queue group the message names.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use natsd_proto::route::{
    encode, route_limits, RemoteSub, RemoteUnsub, RouteConnect, RouteDialect, RouteInfo,
    RouteOpParser, RouteOpRef, RoutedMsg,
};

use crate::client::{CloseReason, Context, Output, SubRef, Subscription};
use crate::cluster::{Cluster, Peer, RegisterError};
use crate::conn::{read_ops, Turn};
use crate::deliver::{self, Msg, Sender};
use crate::options::RouteUrl;
use crate::outbound::{Outbound, Owner};
use crate::server::{Account, Server};
use crate::subject;

/// nats-server never lets a route go longer than this between PINGs.
const ROUTE_MAX_PING_INTERVAL: Duration = Duration::from_secs(30);
/// The first PING after registration (it measures the round trip).
const FIRST_PING: Duration = Duration::from_secs(1);
const READ_BUF_MIN: usize = 4096;

type RouteSubKey = (Arc<str>, Bytes, Option<Bytes>);

/// The peer, once its INFO arrived.
#[derive(Debug, Clone)]
struct Remote {
    id: String,
    name: String,
}

/// One route as monitoring shows it (`/routez`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// Connection id (`rid`).
    pub rid: u64,
    /// The peer's server id.
    pub remote_id: String,
    /// The peer's server name.
    pub remote_name: String,
    /// Whether this server dialed it.
    pub did_solicit: bool,
    /// Whether it was configured (not learned by gossip).
    pub is_configured: bool,
    /// Peer address.
    pub peer: SocketAddr,
    /// When it was accepted or dialed.
    pub started: Instant,
    /// Last time the peer sent something.
    pub last_activity: Instant,
    /// Round trip of the first PING.
    pub rtt: Option<Duration>,
    /// Bytes queued to it.
    pub pending_bytes: usize,
    /// Messages and payload bytes received from it.
    pub in_msgs: u64,
    /// Payload bytes received.
    pub in_bytes: u64,
    /// Messages sent to it.
    pub out_msgs: u64,
    /// Payload bytes sent.
    pub out_bytes: u64,
    /// Its interest: account and subject (queue groups after a blank).
    pub subs: Vec<String>,
}

/// The server side of one route. See the module docs.
pub struct RouteConn {
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    out: Arc<Outbound>,
    cid: u64,
    peer: SocketAddr,
    /// The URL dialed, for a route this server solicited.
    solicited: Option<RouteUrl>,
    /// Learned by gossip rather than configured.
    implicit: bool,
    parser: RouteOpParser,
    rbuf: BytesMut,
    got_connect: bool,
    remote: Option<Remote>,
    registered: bool,
    /// Closed for a reason that a new attempt would not change.
    no_reconnect: bool,
    /// The peer turned out to be this server.
    to_self: bool,
    subs: HashMap<RouteSubKey, (Arc<Account>, SubRef)>,
    pings_out: u32,
    ping_sent_at: Option<Instant>,
    rtt: Option<Duration>,
    next_ping: Instant,
    last_in: Instant,
    auth_deadline: Option<Instant>,
    closed: Option<CloseReason>,
    outputs: VecDeque<Output>,
    in_msgs: u64,
    in_bytes: u64,
    started: Instant,
}

impl RouteConn {
    /// A route accepted on the cluster port (`solicited: None`) or dialed
    /// to `solicited`; queues this server's opening (INFO, and CONNECT
    /// when dialing).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        server: Arc<Server>,
        cluster: Arc<Cluster>,
        now: Instant,
        peer: SocketAddr,
        owner: Owner,
        cid: u64,
        solicited: Option<RouteUrl>,
        implicit: bool,
    ) -> Self {
        let opts = server.options();
        let out = Outbound::new(cid, owner, opts.max_pending);
        out.set_headers(true);
        let control = opts.max_control_line.max(4096);
        let mut conn = RouteConn {
            out,
            cid,
            peer,
            parser: RouteOpParser::new(route_limits(control), RouteDialect::default()),
            rbuf: BytesMut::with_capacity(READ_BUF_MIN),
            got_connect: false,
            remote: None,
            registered: false,
            no_reconnect: false,
            to_self: false,
            subs: HashMap::new(),
            pings_out: 0,
            ping_sent_at: None,
            rtt: None,
            next_ping: now + route_ping_interval(&server),
            last_in: now,
            auth_deadline: None,
            closed: None,
            outputs: VecDeque::new(),
            in_msgs: 0,
            in_bytes: 0,
            started: now,
            implicit,
            solicited,
            cluster,
            server,
        };
        if conn.solicited.is_some() {
            conn.send_connect();
        } else if conn.cluster.options().user.is_some() {
            conn.auth_deadline = Some(now + conn.cluster.options().auth_timeout);
        }
        conn.send_info();
        conn
    }

    fn send_connect(&mut self) {
        let url = self.solicited.clone().unwrap_or_else(|| RouteUrl {
            host: String::new(),
            port: 0,
            user: None,
            pass: None,
        });
        let connect = RouteConnect {
            echo: true,
            verbose: false,
            pedantic: false,
            user: url.user.clone().unwrap_or_default(),
            pass: url.pass.clone().unwrap_or_default(),
            headers: true,
            name: self.server.id().to_string(),
            cluster: self.cluster.name(),
            dynamic: self.cluster.is_dynamic(),
            lnoc: true,
            lnocu: true,
            ..RouteConnect::default()
        };
        let json = connect.to_json();
        self.push(json.len() + 16, |b| encode::connect(b, &json));
    }

    fn send_info(&mut self) {
        let json = self.our_info().to_json();
        self.push(json.len() + 16, |b| encode::info(b, &json));
    }

    fn our_info(&self) -> RouteInfo {
        let opts = self.server.options();
        self.cluster.info(
            true,
            i32::try_from(opts.max_payload).unwrap_or(i32::MAX),
            self.server.client_urls(),
        )
    }

    /// The connection id.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// The outbound queue.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.out
    }

    /// Whether it is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The buffer the driver reads socket bytes into.
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
        let mut buf = std::mem::take(&mut self.rbuf);
        read_ops(&mut buf, |bytes| match self.parser.parse_ref(bytes) {
            Err(e) => {
                log::error!("{}Route parser ERROR: {e}", self.log_prefix());
                if let Some(text) = e.peer_error() {
                    self.send_err(text);
                }
                self.close(CloseReason::ProtocolViolation);
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
        if self.rbuf.is_empty() && self.rbuf.capacity() > 256 * 1024 {
            self.rbuf = BytesMut::with_capacity(READ_BUF_MIN);
        }
    }

    fn apply(&mut self, now: Instant, ctx: &mut Context, op: RouteOpRef<'_>) {
        if self.auth_deadline.is_some() && !matches!(op, RouteOpRef::Connect(_)) {
            log::error!("{}Route sent {op:?} before CONNECT", self.log_prefix());
            self.auth_violation();
            return;
        }
        match op {
            RouteOpRef::Connect(json) => self.process_connect(json),
            RouteOpRef::Info(json) => self.process_info(json),
            RouteOpRef::Ping => self.push(6, encode::pong),
            RouteOpRef::Pong => {
                self.pings_out = 0;
                if let Some(sent) = self.ping_sent_at.take() {
                    self.rtt = Some(now.saturating_duration_since(sent));
                }
            }
            RouteOpRef::Ok => {}
            RouteOpRef::Err(text) => {
                log::error!(
                    "{}Remote error: {}",
                    self.log_prefix(),
                    String::from_utf8_lossy(text)
                );
                self.close(CloseReason::ClientClosed);
            }
            RouteOpRef::RSub(sub) | RouteOpRef::LSub { sub, .. } => self.remote_sub(sub),
            RouteOpRef::RUnsub(unsub) | RouteOpRef::LUnsub { unsub, .. } => {
                self.remote_unsub(unsub)
            }
            RouteOpRef::RMsg(msg) | RouteOpRef::LMsg { msg, .. } => self.routed_msg(now, ctx, msg),
        }
    }

    fn process_connect(&mut self, json: &[u8]) {
        let connect = match RouteConnect::from_json(json) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{}Route CONNECT parse error: {e}", self.log_prefix());
                self.close(CloseReason::ProtocolViolation);
                return;
            }
        };
        let opts = self.cluster.options();
        if let Some(user) = &opts.user {
            let pass = opts.pass.as_deref().unwrap_or("");
            if connect.user != *user || !crate::auth::password_matches(pass, &connect.pass) {
                self.auth_violation();
                return;
            }
        }
        if !self
            .cluster
            .reconcile_name(&connect.cluster, connect.dynamic)
        {
            let text = format!(
                "Rejecting connection, cluster name {:?} does not match {:?}",
                connect.cluster,
                self.cluster.name()
            );
            log::error!("{}{text}", self.log_prefix());
            self.send_err(&text);
            self.close(CloseReason::ClusterNameConflict);
            return;
        }
        self.got_connect = true;
        self.auth_deadline = None;
    }

    fn process_info(&mut self, json: &[u8]) {
        let mut info = match RouteInfo::from_json(json) {
            Ok(info) => info,
            Err(e) => {
                log::error!("{}Route INFO parse error: {e}", self.log_prefix());
                self.close(CloseReason::ProtocolViolation);
                return;
            }
        };
        // A peer without `cluster_advertise` leaves `ip` out: it is where
        // its INFO came from, at the route port it names (nats-server's rule,
        // also for gossip, which comes from the peer that forwards it).
        if info.ip.is_empty() && info.port != 0 {
            let host = match self.peer.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            info.ip = format!("nats-route://{host}:{}/", info.port);
        }
        if let Some(remote) = &self.remote {
            if info.server_id == remote.id {
                // A peer in lame-duck mode is no place to send clients.
                let urls = if info.ldm {
                    Vec::new()
                } else {
                    info.connect_urls
                };
                self.cluster.update_client_urls(&remote.id, self.cid, urls);
            } else {
                self.cluster.learned(&info);
            }
            return;
        }
        if info.server_id == self.server.id() {
            log::debug!(
                "{}Detected route to self, ignoring {:?}",
                self.log_prefix(),
                self.solicited
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            self.no_reconnect = true;
            self.to_self = true;
            self.close(CloseReason::DuplicateRoute);
            return;
        }
        if !info.cluster.is_empty()
            && !self
                .cluster
                .reconcile_name(&info.cluster, info.cluster_dynamic)
        {
            log::error!(
                "{}Rejecting route, cluster name {:?} does not match {:?}",
                self.log_prefix(),
                info.cluster,
                self.cluster.name()
            );
            self.close(CloseReason::ClusterNameConflict);
            return;
        }
        if !info.route_account.is_empty() {
            // A pool member pinned to one account: natsd keeps one route
            // per peer, as a server without pooling, and refuses it in
            // nats-server's words (the peer then stops dialing it).
            let text = format!(
                "Not possible to have a dedicated route for account {:?} between those servers",
                info.route_account
            );
            log::debug!("{}{text}", self.log_prefix());
            self.send_err(&text);
            self.no_reconnect = true;
            self.close(CloseReason::ProtocolViolation);
            return;
        }
        self.parser.set_dialect(RouteDialect {
            pinned: false,
            ls_unsub_origin: info.lnocu,
        });
        let remote = Remote {
            id: info.server_id.clone(),
            name: info.server_name.clone(),
        };
        let peer = Peer {
            cid: self.cid,
            out: self.out.clone(),
            name: remote.name.clone(),
            route_url: info.ip.clone(),
            client_urls: info.connect_urls.clone(),
            solicited: self.solicited.clone(),
            retry: false,
        };
        let gossip = RouteInfo {
            server_id: info.server_id.clone(),
            server_name: info.server_name.clone(),
            version: info.version.clone(),
            proto: info.proto,
            host: info.host.clone(),
            port: info.port,
            headers: info.headers,
            max_payload: info.max_payload,
            ip: info.ip.clone(),
            cluster: self.cluster.name(),
            lnoc: info.lnoc,
            lnocu: info.lnocu,
            ..RouteInfo::default()
        };
        self.remote = Some(remote);
        match self.cluster.register(&info.server_id, peer, &gossip) {
            Ok(()) => {
                self.registered = true;
                log::info!("{}Route connection created", self.log_prefix());
                self.next_ping = self.last_in + FIRST_PING;
            }
            Err(RegisterError::Duplicate) => {
                log::debug!(
                    "{}Detected duplicate remote route {:?}",
                    self.log_prefix(),
                    info.server_id
                );
                self.no_reconnect = true;
                self.close(CloseReason::DuplicateRoute);
            }
        }
    }

    fn remote_sub(&mut self, sub: RemoteSub<&[u8]>) {
        let Some(acc) = self.account(sub.account) else {
            return;
        };
        if !subject::is_valid_subject(sub.subject) {
            log::debug!(
                "{}Ignoring RS+ for invalid subject {:?}",
                self.log_prefix(),
                String::from_utf8_lossy(sub.subject)
            );
            return;
        }
        let weight = sub.queue.map_or(0, |q| q.weight.max(1));
        let key: RouteSubKey = (
            Arc::from(acc.name.as_str()),
            Bytes::copy_from_slice(sub.subject),
            sub.queue.map(|q| Bytes::copy_from_slice(q.name)),
        );
        if let Some((_, existing)) = self.subs.get(&key) {
            existing.set_weight(weight);
            return;
        }
        let s = Arc::new(Subscription::remote(
            self.server.next_sub_id(),
            key.1.clone(),
            key.2.clone(),
            weight,
            self.out.clone(),
        ));
        if acc
            .sublist
            .insert(&s.subject, s.queue.as_deref(), s.clone())
            .is_ok()
        {
            self.subs.insert(key, (acc, s));
        }
    }

    fn remote_unsub(&mut self, unsub: RemoteUnsub<&[u8]>) {
        let Some(acc) = self.account(unsub.account) else {
            return;
        };
        let key: RouteSubKey = (
            Arc::from(acc.name.as_str()),
            Bytes::copy_from_slice(unsub.subject),
            unsub.queue.map(Bytes::copy_from_slice),
        );
        if let Some((acc, s)) = self.subs.remove(&key) {
            acc.sublist.remove(&s.subject, s.queue.as_deref(), s.key());
        }
    }

    fn routed_msg(&mut self, now: Instant, ctx: &mut Context, msg: RoutedMsg<&[u8]>) {
        self.in_msgs += 1;
        self.in_bytes += msg.total_len() as u64;
        let Some(acc) = self.account(msg.account) else {
            return;
        };
        let result = ctx.cache(acc.id()).get(&acc.sublist, msg.subject);
        if result.is_empty() {
            return;
        }
        let sender = Sender {
            server: &self.server,
            cid: self.cid,
            echo: true,
            from_route: Some(msg.queues),
        };
        let m = Msg {
            subject: msg.subject,
            reply: msg.reply,
            headers: msg.headers,
            payload: msg.payload,
        };
        deliver::deliver_all(&sender, now, ctx, &acc, &result, &m);
    }

    /// The account an op names. An account this server does not have is
    /// ignored (its interest and messages have no one here).
    fn account(&self, name: Option<&[u8]>) -> Option<Arc<Account>> {
        let name = std::str::from_utf8(name?).ok()?;
        self.server.account(name)
    }

    fn auth_violation(&mut self) {
        log::error!("{}Authorization Error", self.log_prefix());
        self.send_err("Authorization Violation");
        self.no_reconnect = true;
        self.close(CloseReason::AuthenticationViolation);
    }

    /// Timers: CONNECT deadline and PING keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.auth_deadline.is_some_and(|d| now >= d) {
            log::error!("{}Authentication Timeout", self.log_prefix());
            self.send_err("Authentication Timeout");
            self.close(CloseReason::AuthenticationTimeout);
            return;
        }
        if now < self.next_ping {
            return;
        }
        self.next_ping = now + route_ping_interval(&self.server);
        if self.pings_out >= self.server.options().ping_max {
            log::error!("{}Stale Route Connection - Closing", self.log_prefix());
            self.send_err("Stale Connection");
            self.close(CloseReason::StaleConnection);
            return;
        }
        self.pings_out += 1;
        if self.rtt.is_none() && self.ping_sent_at.is_none() {
            self.ping_sent_at = Some(now);
        }
        self.push(6, encode::ping);
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
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

    /// Close the route (idempotent): drop the peer's interest, leave the
    /// cluster, and ask the driver to drop the socket.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        self.out.mark_closed(reason);
        for (acc, s) in self.subs.values() {
            acc.sublist.remove(&s.subject, s.queue.as_deref(), s.key());
        }
        self.subs.clear();
        let mut removed = None;
        if self.registered {
            if let Some(remote) = &self.remote {
                removed = self.cluster.unregister(&remote.id, self.cid);
            }
            log::info!("{}Router connection closed: {reason}", self.log_prefix());
        } else {
            log::debug!("{}Router connection closed: {reason}", self.log_prefix());
        }
        if reason != CloseReason::ServerShutdown {
            self.reconnect(removed);
        }
        self.outputs.push_back(Output::Close(reason));
    }

    /// After a close: a solicited route is dialed again unless it ended
    /// for a reason a new attempt would meet again; an accepted route whose
    /// duplicate this server refused is dialed at the peer's route URL (the
    /// peer may have refused this one as its own duplicate).
    fn reconnect(&self, removed: Option<Peer>) {
        match &self.solicited {
            Some(url) if !self.no_reconnect => self.cluster.redial(url.clone(), self.implicit),
            Some(url) if !self.to_self => self.cluster.dial_ended(url),
            Some(_) => {}
            None => {
                if let Some(peer) = removed.filter(|p| p.retry) {
                    if let Ok(url) = RouteUrl::parse(&peer.route_url) {
                        self.cluster.dial(url, true);
                    }
                }
            }
        }
    }

    /// Lame-duck mode: tell the peer (INFO `ldm`), so it stops telling
    /// clients about this server, as nats-server does.
    pub fn enter_lame_duck(&mut self) {
        if self.closed.is_some() || !self.registered {
            return;
        }
        let mut info = self.our_info();
        info.ldm = true;
        let json = info.to_json();
        self.push(json.len() + 16, |b| encode::info(b, &json));
    }

    /// The route's state now, for `/routez`.
    pub fn snapshot(&self) -> RouteSnapshot {
        let (out_msgs, out_bytes) = self.out.out_counts();
        let mut subs: Vec<String> = self
            .subs
            .keys()
            .map(|(acc, subject, queue)| {
                let subject = String::from_utf8_lossy(subject);
                match queue {
                    Some(q) => format!("{acc} {subject} {}", String::from_utf8_lossy(q)),
                    None => format!("{acc} {subject}"),
                }
            })
            .collect();
        subs.sort();
        let remote = self.remote.clone();
        RouteSnapshot {
            rid: self.cid,
            remote_id: remote.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
            remote_name: remote.map(|r| r.name).unwrap_or_default(),
            did_solicit: self.solicited.is_some(),
            is_configured: self.solicited.is_some() && !self.implicit,
            peer: self.peer,
            started: self.started,
            last_activity: self.last_in,
            rtt: self.rtt,
            pending_bytes: self.out.pending(),
            in_msgs: self.in_msgs,
            in_bytes: self.in_bytes,
            out_msgs,
            out_bytes,
            subs,
        }
    }

    /// nats-server's prefix for route log lines: `ip:port - rid:N - `.
    pub fn log_prefix(&self) -> String {
        format!("{} - rid:{} - ", self.peer, self.cid)
    }

    fn send_err(&mut self, text: &str) {
        self.push(text.len() + 10, |b| encode::err(b, text.as_bytes()));
    }

    fn push(&mut self, size: usize, f: impl FnOnce(&mut BytesMut)) {
        let _ = self.out.push_with(size, 0, 0, f);
    }
}

fn route_ping_interval(server: &Server) -> Duration {
    server.options().ping_interval.min(ROUTE_MAX_PING_INTERVAL)
}
