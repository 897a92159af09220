//! One reactor: a mio `Poll`, the connections it owns, their timers, and an
//! inbox other threads use to hand it new connections and flush requests.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use natsd_engine::client::{ClientConn, CloseReason, ConnSnapshot, Context, Output};
use natsd_engine::internal::Event;
use natsd_engine::options::RouteUrl;
use natsd_engine::outbound::{Outbound, Owner, Taken};
use natsd_engine::route::{RouteConn, RouteSnapshot};
use natsd_engine::server::Server;
use rustls::ServerConfig;

use crate::tls::Tls;

const WAKER: Token = Token(usize::MAX);
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;
/// Per connection and turn: stop reading after this much so one busy
/// publisher cannot starve the others; the rest is read next turn.
const READ_BUDGET: usize = 256 * 1024;
/// How long a publisher that filled a receiver past half its `max_pending`
/// is not read (nats-server's fast-producer stall): the receiver's reactor
/// drains meanwhile, and nothing is dropped.
const STALL_PAUSE: Duration = Duration::from_millis(2);
/// A writer buffer bigger than this is released once drained.
const WBUF_KEEP: usize = 1024 * 1024;
/// Plaintext read from a TLS session per step: one full TLS record.
const TLS_READ: usize = 16 * 1024;

/// What other threads send a reactor.
pub enum Cmd {
    /// A freshly accepted (or, for a route, dialed) connection.
    Accept(TcpStream, SocketAddr, Kind),
    /// Outbound queues of this reactor's connections that have data.
    Flush(Vec<Arc<Outbound>>),
    /// Reply with a snapshot of every live connection (monitoring).
    Snapshot(Sender<Vec<ConnSnapshot>>),
    /// Reply with a snapshot of every route (monitoring).
    Routes(Sender<Vec<RouteSnapshot>>),
    /// The cluster's client URLs changed: send clients a new INFO.
    ClusterInfo,
    /// Flush and close every connection, then exit.
    Shutdown,
    /// The configuration was reloaded: re-check every connection; new TLS
    /// handshakes use this server config (certificates re-read).
    Reload(Option<Arc<ServerConfig>>),
    /// A server event for the system stage (reactors ignore it); boxed,
    /// so the commands sent per message stay small.
    Event(Box<Event>),
    /// Lame-duck mode: tell clients (INFO `ldm`), then close them one by
    /// one between `grace_end` and `end`.
    LameDuck {
        /// When the first connection closes.
        grace_end: Instant,
        /// When the last connection closes.
        end: Instant,
    },
}

/// How other threads reach a reactor or a stage (a stage blocks on its
/// channel and needs no waker).
#[derive(Clone)]
pub struct ReactorHandle {
    tx: Sender<Cmd>,
    waker: Option<Arc<Waker>>,
    load: Arc<Load>,
}

/// What a reactor or stage reports of its load (for `/varz`).
#[derive(Debug, Default)]
pub struct Load {
    /// A reactor's live connections.
    pub connections: AtomicUsize,
    /// A stage's handled deliveries since start.
    pub handled: AtomicU64,
}

impl ReactorHandle {
    /// The handle of a stage that receives on `tx`'s channel.
    pub fn for_stage(tx: Sender<Cmd>, load: Arc<Load>) -> Self {
        ReactorHandle {
            tx,
            waker: None,
            load,
        }
    }

    /// Commands waiting in its inbox.
    pub fn inbox(&self) -> usize {
        self.tx.len()
    }

    /// Its load counters.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// Queue a command and wake the reactor.
    pub fn send(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_ok() {
            if let Some(Err(e)) = self.waker.as_ref().map(|w| w.wake()) {
                log::error!("Could not wake a reactor: {e}");
            }
        }
    }
}

/// What kind of connection a socket carries.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A client, on the client port.
    Client,
    /// A route: accepted on the cluster port (`solicited: None`) or dialed.
    Route {
        /// The URL dialed.
        solicited: Option<RouteUrl>,
        /// Learned by gossip rather than configured.
        implicit: bool,
    },
}

/// The connection machine of one socket, by kind. The reactor drives both
/// through the same calls; what only clients have (TLS peers, reload,
/// lame duck, `/connz`) is asked of the client machine alone.
// Not boxed: the client variant is the common one, and a box would cost
// every client op an indirection to save a few hundred bytes per route.
#[allow(clippy::large_enum_variant)]
enum Machine {
    Client(ClientConn),
    Route(RouteConn),
}

impl Machine {
    fn read_buffer(&mut self) -> &mut BytesMut {
        match self {
            Machine::Client(m) => m.read_buffer(),
            Machine::Route(m) => m.read_buffer(),
        }
    }

    fn handle_read(&mut self, now: Instant, ctx: &mut Context) {
        match self {
            Machine::Client(m) => m.handle_read(now, ctx),
            Machine::Route(m) => m.handle_read(now, ctx),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::Client(m) => m.handle_timeout(now),
            Machine::Route(m) => m.handle_timeout(now),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::Client(m) => m.poll_timeout(),
            Machine::Route(m) => m.poll_timeout(),
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        match self {
            Machine::Client(m) => m.poll_output(),
            Machine::Route(m) => m.poll_output(),
        }
    }

    fn close(&mut self, reason: CloseReason) {
        match self {
            Machine::Client(m) => m.close(reason),
            Machine::Route(m) => m.close(reason),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Machine::Client(m) => m.is_closed(),
            Machine::Route(m) => m.is_closed(),
        }
    }

    fn outbound(&self) -> &Arc<Outbound> {
        match self {
            Machine::Client(m) => m.outbound(),
            Machine::Route(m) => m.outbound(),
        }
    }

    fn cid(&self) -> u64 {
        match self {
            Machine::Client(m) => m.cid(),
            Machine::Route(m) => m.cid(),
        }
    }

    fn log_prefix(&self) -> String {
        match self {
            Machine::Client(m) => m.log_prefix(),
            Machine::Route(m) => m.log_prefix(),
        }
    }

    fn client(&mut self) -> Option<&mut ClientConn> {
        match self {
            Machine::Client(m) => Some(m),
            Machine::Route(_) => None,
        }
    }
}

struct Conn {
    stream: TcpStream,
    machine: Machine,
    wbuf: BytesMut,
    read_size: usize,
    write_blocked_since: Option<Instant>,
    /// The TLS session between the socket and the machine, when TLS is on.
    tls: Option<Box<Tls>>,
    /// The deadline this connection has in the timer heap, if any.
    scheduled: Option<Instant>,
    in_flush_list: bool,
    in_read_list: bool,
    /// Lame-duck mode: when this connection is closed.
    close_at: Option<Instant>,
    /// Fast-producer stall: not read before this instant.
    read_paused_until: Option<Instant>,
}

pub struct Reactor {
    id: usize,
    poll: Poll,
    rx: Receiver<Cmd>,
    server: Arc<Server>,
    tls_config: Option<Arc<ServerConfig>>,
    load: Arc<Load>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    ctx: Context,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    flush_list: Vec<usize>,
    read_list: Vec<usize>,
    remote: Vec<Vec<Arc<Outbound>>>,
    shutting_down: bool,
}

impl Reactor {
    pub fn new(
        id: usize,
        server: Arc<Server>,
        tls_config: Option<Arc<ServerConfig>>,
    ) -> io::Result<(Self, ReactorHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let load = Arc::new(Load::default());
        let seed = (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Ok((
            Reactor {
                id,
                poll,
                rx,
                server,
                tls_config,
                load: load.clone(),
                conns: Vec::new(),
                free: Vec::new(),
                ctx: Context::new(seed),
                timers: BinaryHeap::new(),
                flush_list: Vec::new(),
                read_list: Vec::new(),
                remote: Vec::new(),
                shutting_down: false,
            },
            ReactorHandle {
                tx,
                waker: Some(waker),
                load: load.clone(),
            },
        ))
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn run(mut self, peers: Arc<[ReactorHandle]>) {
        self.remote = (0..peers.len()).map(|_| Vec::new()).collect();
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.read_list.is_empty() {
                self.timers
                    .peek()
                    .map(|Reverse((t, _, _))| t.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("Reactor {} poll failed: {e}", self.id);
                    return;
                }
            }
            let now = Instant::now();
            for slot in std::mem::take(&mut self.read_list) {
                if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                    c.in_read_list = false;
                    self.read(slot, now);
                }
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.drain_inbox(now);
                    continue;
                }
                let slot = ev.token().0;
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(slot, now);
                }
                if ev.is_writable() {
                    self.want_flush(slot);
                }
            }
            self.run_timers(now);
            self.dispatch_wakes(&peers);
            self.flush_all(now);
            if self.shutting_down {
                self.close_all(now);
                return;
            }
        }
    }

    fn drain_inbox(&mut self, now: Instant) {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Accept(stream, peer, kind) => self.accept(stream, peer, kind, now),
                Cmd::Flush(outs) => {
                    for out in outs {
                        self.flush_request(&out);
                    }
                }
                Cmd::Snapshot(reply) => {
                    let snaps = self
                        .conns
                        .iter()
                        .flatten()
                        .filter_map(|c| match &c.machine {
                            Machine::Client(m) => Some(m.snapshot(None)),
                            Machine::Route(_) => None,
                        })
                        .collect();
                    // The asker may have given up waiting; nothing to do then.
                    let _ = reply.send(snaps);
                }
                Cmd::Routes(reply) => {
                    let snaps = self
                        .conns
                        .iter()
                        .flatten()
                        .filter_map(|c| match &c.machine {
                            Machine::Route(m) if !m.is_closed() => Some(m.snapshot()),
                            _ => None,
                        })
                        .collect();
                    let _ = reply.send(snaps);
                }
                Cmd::ClusterInfo => {
                    for slot in 0..self.conns.len() {
                        if let Some(m) = self.conns[slot].as_mut().and_then(|c| c.machine.client())
                        {
                            m.send_cluster_info();
                            self.want_flush(slot);
                        }
                    }
                }
                Cmd::Shutdown => self.shutting_down = true,
                Cmd::Reload(tls) => {
                    self.tls_config = tls;
                    self.ctx.forget_removed_accounts(&self.server);
                    for slot in 0..self.conns.len() {
                        if let Some(m) = self.conns[slot].as_mut().and_then(|c| c.machine.client())
                        {
                            m.reauthorize();
                            self.after_input(slot, now);
                        }
                    }
                }
                Cmd::LameDuck { grace_end, end } => self.lame_duck(grace_end, end, now),
                Cmd::Event(_) => {}
            }
        }
    }

    fn accept(&mut self, mut stream: TcpStream, peer: SocketAddr, kind: Kind, now: Instant) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("{peer} - could not register connection: {e}");
            self.free.push(slot);
            return;
        }
        let owner = Owner {
            reactor: self.id,
            slot,
        };
        let cid = self.server.next_cid();
        let mut wbuf = BytesMut::new();
        let (machine, tls) = match (kind, self.server.cluster()) {
            (
                Kind::Route {
                    solicited,
                    implicit,
                },
                Some(cluster),
            ) => {
                let route = RouteConn::new(
                    self.server.clone(),
                    cluster.clone(),
                    now,
                    peer,
                    owner,
                    cid,
                    solicited,
                    implicit,
                );
                (Machine::Route(route), None)
            }
            _ => {
                let mut machine = ClientConn::new(self.server.clone(), now, peer, owner, cid);
                let tls = match &self.tls_config {
                    None => None,
                    Some(config) => {
                        self.start_tls(config, &mut stream, &mut machine, &mut wbuf, now)
                    }
                };
                (Machine::Client(machine), tls)
            }
        };
        self.load.connections.fetch_add(1, Ordering::Relaxed);
        self.conns[slot] = Some(Conn {
            stream,
            machine,
            wbuf,
            read_size: READ_MIN,
            write_blocked_since: None,
            tls,
            scheduled: None,
            in_flush_list: false,
            in_read_list: false,
            close_at: None,
            read_paused_until: None,
        });
        self.after_input(slot, now);
    }

    /// A new TLS session for an accepted connection. Unless
    /// `handshake_first`, the INFO the machine queued goes out in plaintext
    /// first, as nats-server sends it; the client starts the handshake after.
    fn start_tls(
        &self,
        config: &Arc<ServerConfig>,
        stream: &mut TcpStream,
        machine: &mut ClientConn,
        wbuf: &mut BytesMut,
        now: Instant,
    ) -> Option<Box<Tls>> {
        let opts = self.server.options();
        let tls = match Tls::new(config, now + opts.tls_timeout) {
            Ok(tls) => tls,
            Err(e) => {
                log::error!("{}TLS setup failed: {e}", machine.log_prefix());
                machine.close(CloseReason::ReadError);
                return None;
            }
        };
        if !opts.tls_handshake_first && !machine.is_closed() {
            let _ = machine.outbound().take(wbuf);
            // A fresh socket's send buffer takes a few hundred bytes of INFO
            // at once; if it does not, the client could never see the INFO
            // before TLS bytes, so give up on it.
            match write_out(stream, wbuf, machine.outbound()) {
                Ok(true) => {}
                Ok(false) => {
                    log::debug!("{}Could not send INFO before TLS", machine.log_prefix());
                    machine.close(CloseReason::WriteError);
                }
                Err(e) => {
                    log::debug!("{}Error writing to client: {e}", machine.log_prefix());
                    machine.close(CloseReason::WriteError);
                }
            }
        }
        Some(tls)
    }

    fn read(&mut self, slot: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if c.read_paused_until.is_some_and(|t| now < t) {
            // Stalled behind a full receiver: the timer resumes reading.
            return;
        }
        c.read_paused_until = None;
        let mut total = 0usize;
        loop {
            let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if c.machine.is_closed() {
                break;
            }
            if c.tls.is_some() {
                self.read_tls(slot, now);
                return;
            }
            let want = c.read_size;
            let buf = c.machine.read_buffer();
            let len = buf.len();
            buf.resize(len + want, 0);
            match c.stream.read(&mut buf[len..]) {
                Ok(0) => {
                    buf.truncate(len);
                    c.machine.close(CloseReason::ClientClosed);
                    break;
                }
                Ok(n) => {
                    buf.truncate(len + n);
                    if n == want {
                        c.read_size = (want * 2).min(READ_MAX);
                    } else if n < want / 4 {
                        c.read_size = (want / 2).max(READ_MIN);
                    }
                    self.ctx.stall = false;
                    c.machine.handle_read(now, &mut self.ctx);
                    total += n;
                    if self.ctx.stall {
                        c.read_paused_until = Some(now + STALL_PAUSE);
                        break;
                    }
                    if total >= READ_BUDGET {
                        if !c.in_read_list {
                            c.in_read_list = true;
                            self.read_list.push(slot);
                        }
                        break;
                    }
                    // A short read drained the socket's receive queue. epoll
                    // (edge-triggered) reports every later arrival as a new
                    // event, so the read that would only say WouldBlock is
                    // skipped: one syscall less per event.
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    buf.truncate(len);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    buf.truncate(len);
                }
                Err(e) => {
                    buf.truncate(len);
                    log::debug!("{}Error reading from client: {e}", c.machine.log_prefix());
                    c.machine.close(CloseReason::ReadError);
                    break;
                }
            }
        }
        self.after_input(slot, now);
    }

    /// [`read`](Self::read) through the TLS session: socket records into
    /// rustls, decrypted plaintext into the machine's read buffer.
    fn read_tls(&mut self, slot: usize, now: Instant) {
        let mut total = 0usize;
        loop {
            let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if c.machine.is_closed() {
                break;
            }
            let Some(tls) = c.tls.as_mut() else {
                break;
            };
            match tls.conn.read_tls(&mut c.stream) {
                Ok(0) => {
                    c.machine.close(CloseReason::ClientClosed);
                    break;
                }
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}Error reading from client: {e}", c.machine.log_prefix());
                    c.machine.close(CloseReason::ReadError);
                    break;
                }
            }
            let was_handshaking = tls.conn.is_handshaking();
            if let Err(e) = tls.conn.process_new_packets() {
                if was_handshaking {
                    log::error!("{}TLS handshake error: {e}", c.machine.log_prefix());
                } else {
                    log::debug!("{}TLS error: {e}", c.machine.log_prefix());
                }
                // Bytes that are not TLS at all (a plain-text client) get a
                // bare close, as from nats-server; a TLS peer gets rustls's
                // alert so it can say why.
                tls.silent = matches!(e, rustls::Error::InvalidMessage(_));
                c.machine.close(if was_handshaking {
                    CloseReason::TlsHandshakeFailure
                } else {
                    CloseReason::ReadError
                });
                break;
            }
            if was_handshaking && !tls.conn.is_handshaking() {
                tls.deadline = None;
                log::debug!("{}{}", c.machine.log_prefix(), tls.describe());
                if let (Some(peer), Some(m)) = (tls.peer(), c.machine.client()) {
                    m.set_tls_peer(peer);
                }
            }
            let buf = c.machine.read_buffer();
            let mut got = 0usize;
            let mut eof = false;
            loop {
                let len = buf.len();
                buf.resize(len + TLS_READ, 0);
                match tls.conn.reader().read(&mut buf[len..]) {
                    Ok(0) => {
                        buf.truncate(len);
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        buf.truncate(len + n);
                        got += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        buf.truncate(len);
                        break;
                    }
                    Err(e) => {
                        buf.truncate(len);
                        log::debug!("{}Error reading from client: {e}", c.machine.log_prefix());
                        eof = true;
                        break;
                    }
                }
            }
            if got > 0 {
                self.ctx.stall = false;
                c.machine.handle_read(now, &mut self.ctx);
                if self.ctx.stall {
                    c.read_paused_until = Some(now + STALL_PAUSE);
                    break;
                }
            }
            if eof {
                c.machine.close(CloseReason::ClientClosed);
                break;
            }
            if total >= READ_BUDGET {
                if !c.in_read_list {
                    c.in_read_list = true;
                    self.read_list.push(slot);
                }
                break;
            }
        }
        self.after_input(slot, now);
    }

    /// After any input: act on outputs, flush what the client is owed, and
    /// re-arm its timer.
    fn after_input(&mut self, slot: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut close = None;
        while let Some(out) = c.machine.poll_output() {
            match out {
                Output::Close(reason) => close = Some(reason),
            }
        }
        if close.is_some() {
            self.finish(slot, now);
            return;
        }
        self.want_flush(slot);
        self.schedule(slot, now);
    }

    fn schedule(&mut self, slot: usize, now: Instant) {
        let write_deadline = self.server.options().write_deadline;
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let wd = c.write_blocked_since.map(|t| t + write_deadline);
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut next = earliest(c.machine.poll_timeout(), wd);
        if let Some(tls) = &c.tls {
            next = earliest(next, tls.deadline);
        }
        next = earliest(next, c.close_at);
        next = earliest(next, c.read_paused_until);
        if let Some(t) = next {
            if c.scheduled.is_none_or(|s| t < s) {
                c.scheduled = Some(t.max(now));
                self.timers
                    .push(Reverse((t.max(now), slot, c.machine.cid())));
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let write_deadline = self.server.options().write_deadline;
        while let Some(Reverse((t, slot, cid))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if c.machine.cid() != cid || c.scheduled != Some(t) {
                continue;
            }
            c.scheduled = None;
            if c.read_paused_until.is_some_and(|t| now >= t) {
                self.read(slot, now);
                continue;
            }
            if c.close_at.is_some_and(|t| now >= t) {
                c.machine.close(CloseReason::ServerShutdown);
            } else if c
                .tls
                .as_ref()
                .and_then(|t| t.deadline)
                .is_some_and(|d| now >= d)
            {
                log::error!("{}TLS handshake timeout", c.machine.log_prefix());
                c.machine.close(CloseReason::TlsHandshakeFailure);
            } else if c
                .write_blocked_since
                .is_some_and(|since| now >= since + write_deadline)
            {
                log::info!(
                    "{}Slow Consumer Detected: WriteDeadline of {:?} exceeded",
                    c.machine.log_prefix(),
                    write_deadline
                );
                c.machine.close(CloseReason::SlowConsumerWriteDeadline);
            } else {
                c.machine.handle_timeout(now);
            }
            self.after_input(slot, now);
        }
    }

    /// Send every client the lame-duck INFO and spread their closes evenly
    /// over `grace_end..end` (nats-server closes clients gradually so they
    /// do not all reconnect elsewhere at once).
    fn lame_duck(&mut self, grace_end: Instant, end: Instant, now: Instant) {
        let live: Vec<usize> = (0..self.conns.len())
            .filter(|&s| self.conns[s].is_some())
            .collect();
        let span = end.saturating_duration_since(grace_end);
        let n = live.len().max(1) as u32;
        for (i, slot) in live.into_iter().enumerate() {
            if let Some(c) = self.conns[slot].as_mut() {
                match &mut c.machine {
                    Machine::Client(m) => {
                        m.enter_lame_duck();
                        c.close_at = Some(grace_end + span * i as u32 / n);
                    }
                    // Routes stay until the server stops.
                    Machine::Route(m) => m.enter_lame_duck(),
                }
            }
            self.after_input(slot, now);
        }
    }

    fn want_flush(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !c.in_flush_list {
                c.in_flush_list = true;
                self.flush_list.push(slot);
            }
        }
    }

    fn flush_request(&mut self, out: &Arc<Outbound>) {
        let slot = out.owner().slot;
        let same = self
            .conns
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| Arc::ptr_eq(c.machine.outbound(), out));
        if same {
            self.want_flush(slot);
        }
    }

    /// Hand every outbound queue that got its first frame this turn to its
    /// owner: ours go on the flush list, others are batched per reactor and
    /// sent with one wake-up each.
    fn dispatch_wakes(&mut self, peers: &[ReactorHandle]) {
        let wakes = std::mem::take(&mut self.ctx.wakes);
        for out in &wakes {
            let owner = out.owner().reactor;
            if owner == self.id {
                self.flush_request(out);
            } else {
                self.remote[owner].push(out.clone());
            }
        }
        self.ctx.wakes = wakes;
        self.ctx.wakes.clear();
        for (r, batch) in self.remote.iter_mut().enumerate() {
            if !batch.is_empty() {
                peers[r].send(Cmd::Flush(std::mem::take(batch)));
            }
        }
    }

    fn flush_all(&mut self, now: Instant) {
        let list = std::mem::take(&mut self.flush_list);
        for &slot in &list {
            self.flush(slot, now);
        }
        let mut list = list;
        list.clear();
        if self.flush_list.is_empty() {
            self.flush_list = list;
        }
    }

    fn flush(&mut self, slot: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        c.in_flush_list = false;
        if let Some(tls) = c.tls.as_mut().filter(|t| t.conn.is_handshaking()) {
            // Handshake records only: what the machine queued waits for the
            // session (with handshake_first that includes the INFO).
            if let Err(e) = write_tls_records(&mut tls.conn, &mut c.stream) {
                log::debug!("{}Error writing to client: {e}", c.machine.log_prefix());
                c.machine.close(CloseReason::WriteError);
                self.after_input(slot, now);
            }
            return;
        }
        if let Taken::Closed(reason) = c.machine.outbound().take(&mut c.wbuf) {
            // Closed by someone else (a slow consumer): what it did not read
            // is dropped, as nats-server does. Logged here, where the
            // client's address is known.
            if reason == CloseReason::SlowConsumerPendingBytes {
                log::info!(
                    "{}Slow Consumer Detected: MaxPending of {} Exceeded",
                    c.machine.log_prefix(),
                    self.server.options().max_pending
                );
            }
            c.machine.close(reason);
            self.after_input(slot, now);
            return;
        }
        let written = match c.tls.as_mut() {
            None => write_out(&mut c.stream, &mut c.wbuf, c.machine.outbound()),
            Some(tls) => write_out_tls(
                &mut tls.conn,
                &mut c.stream,
                &mut c.wbuf,
                c.machine.outbound(),
            ),
        };
        match written {
            Ok(true) => {
                c.write_blocked_since = None;
                if c.wbuf.capacity() > WBUF_KEEP {
                    c.wbuf = BytesMut::new();
                }
            }
            Ok(false) => {
                if c.write_blocked_since.is_none() {
                    c.write_blocked_since = Some(now);
                    self.schedule(slot, now);
                }
            }
            Err(e) => {
                log::debug!("{}Error writing to client: {e}", c.machine.log_prefix());
                c.machine.close(CloseReason::WriteError);
                self.after_input(slot, now);
            }
        }
    }

    /// Drop a closed connection: a last non-blocking write of what it is
    /// owed (e.g. the `-ERR`), then the socket.
    fn finish(&mut self, slot: usize, now: Instant) {
        let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.load.connections.fetch_sub(1, Ordering::Relaxed);
        match &c.machine {
            Machine::Client(m) => {
                let snap = m.snapshot(Some(now));
                if m.is_connected() && self.server.wants_events() {
                    self.server.emit(Event::Disconnected(snap.clone()));
                }
                self.server.record_closed(snap);
            }
            // A route settled its cluster business when it closed.
            Machine::Route(_) => {}
        }
        let _ = c.machine.outbound().take(&mut c.wbuf);
        match c.tls.as_mut() {
            None => {
                let _ = write_out(&mut c.stream, &mut c.wbuf, c.machine.outbound());
            }
            Some(tls) if tls.silent => {}
            Some(tls) => {
                if !tls.conn.is_handshaking() {
                    let _ = write_out_tls(
                        &mut tls.conn,
                        &mut c.stream,
                        &mut c.wbuf,
                        c.machine.outbound(),
                    );
                    tls.conn.send_close_notify();
                }
                let _ = write_tls_records(&mut tls.conn, &mut c.stream);
            }
        }
        let _ = c.stream.flush();
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        self.free.push(slot);
    }

    fn close_all(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            if let Some(c) = self.conns[slot].as_mut() {
                c.machine.close(CloseReason::ServerShutdown);
                self.after_input(slot, now);
            }
        }
    }
}

/// Write `wbuf` until it is empty (true) or the socket would block (false).
fn write_out(stream: &mut TcpStream, wbuf: &mut BytesMut, out: &Outbound) -> io::Result<bool> {
    while !wbuf.is_empty() {
        match stream.write(wbuf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                wbuf.advance(n);
                out.written(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Hand `wbuf` to the TLS session and write its records until both are
/// empty (true) or the socket would block (false). Bytes count as written
/// once rustls has taken them; rustls buffers at most its buffer limit.
fn write_out_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    wbuf: &mut BytesMut,
    out: &Outbound,
) -> io::Result<bool> {
    loop {
        let mut progress = false;
        while !wbuf.is_empty() {
            let n = tls.writer().write(wbuf)?;
            if n == 0 {
                break;
            }
            wbuf.advance(n);
            out.written(n);
            progress = true;
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if wbuf.is_empty() {
            return Ok(true);
        }
        if !progress {
            // rustls takes no plaintext and has nothing to send: the session
            // can no longer carry data (e.g. it was closed).
            return Err(io::Error::other("TLS session does not accept data"));
        }
    }
}

/// Write the records rustls has queued (handshake messages, alerts) until
/// none are left (true) or the socket would block (false).
fn write_tls_records(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
