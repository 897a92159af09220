//! The HTTP monitoring listener (`-m/--http_port`, `http: host:port`), or
//! HTTPS (`-ms/--https_port`, `https: host:port`) with the server's `tls {}`
//! certificate, as nats-server: never both, and HTTPS without TLS configured
//! stops the server at start. Monitoring never asks for client certificates,
//! even when clients must present one (`verify`), as nats-server.
//!
//! ```text
//!            ┌──────────── http-monitor (one mio loop) ────────────┐
//! accept ──► │ TLS handshake ─► read head ─► parse ──► [jobs] ─────┼──► http-worker × WORKERS
//!            │ (all connections, non-blocking, one deadline each)  │     monitor.respond()
//! socket ◄── │ write answer ◄──────────────────────── [answers] ◄──┼──── + waker
//!            └─────────────────────────────────────────────────────┘
//! ```
//!
//! One thread (`http-monitor`) owns the listener and every connection on a
//! mio event loop; none of this runs on a reactor. It does the TLS handshake
//! (rustls, non-blocking), reads and parses request heads, and writes
//! answers. Only a whole request goes to the small pool of `http-worker`
//! threads, which build the answer (`natsd_engine::monitor`, which may wait
//! on the reactors' connection snapshots) and hand the bytes back. A slow
//! client therefore costs the loop a few bytes, never a thread, and cannot
//! keep `/healthz` from being answered.
//!
//! Every connection has one deadline, as nats-server's monitoring
//! `http.Server` (`ReadHeaderTimeout`): the TLS handshake and then the request
//! head must each arrive within [`HEAD_TIMEOUT`] (a keep-alive connection's
//! next head from its first byte); bytes do not extend it. A head cut off by
//! the deadline gets Go's `400 Bad Request`, a connection that sent nothing a
//! bare close. An idle keep-alive connection closes after [`IDLE_TIMEOUT`], an
//! answer the client does not read after [`WRITE_TIMEOUT`]. At [`MAX_CONNS`]
//! a new connection displaces the one that has waited longest for its
//! request; memory for unanswered request bytes is bounded by
//! [`MAX_BUFFERED_BYTES`].
//!
//! Each connection speaks HTTP/1.x as Go's `net/http` does: request line
//! parsed here, headers with `httparse`, the head up to [`MAX_HEAD_BYTES`]
//! (Go's limit; more is 431), HTTP/1.1 without `Host` is 400, a version other
//! than 1.x is 505, keep-alive unless the client says `Connection: close` or
//! speaks HTTP/1.0 without `Connection: keep-alive`, a request body up to
//! [`MAX_BODY_BYTES`] read and ignored. Requests refused here get Go's error
//! answer (the reason in the status line and the body) and a close, never a
//! panic. The endpoints themselves (JSON models, query parsing, sorting,
//! paging) are `natsd_engine::monitor`; this module only moves bytes and
//! reads the process figures from `/proc`.
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use natsd_engine::client::ConnSnapshot;
use natsd_engine::monitor::{Clock, Monitor, ProcessStats, Response, Source};
use natsd_engine::server::Server;
use rustls::{ServerConfig, ServerConnection};

use crate::ServerHandle;

/// Open monitoring connections. Past it, a new connection closes the one
/// that has waited longest for its request; it is refused only when every
/// connection has a request being answered.
const MAX_CONNS: usize = 4096;
/// Request line plus headers: Go's `http.Server` limit, the `MaxHeaderBytes`
/// nats-server sets (1 MiB) plus the 4 KiB Go's reader allows beyond it.
const MAX_HEAD_BYTES: usize = (1 << 20) + 4096;
/// A request body is read and dropped; larger ones are refused.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Unanswered request bytes held across all connections. Past it the
/// connection holding the most is closed, so [`MAX_CONNS`] heads of
/// [`MAX_HEAD_BYTES`] cannot exhaust memory.
const MAX_BUFFERED_BYTES: usize = 64 << 20;
/// nats-server's monitoring `ReadHeaderTimeout` (`startMonitoring`); Go
/// bounds the TLS handshake by the same value.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// An answer not written within this long closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for each reactor's connection snapshots.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a refused connection drains input before it closes.
const LINGER: Duration = Duration::from_millis(500);
/// Threads that build answers. Few: a request holds the monitor's lock
/// while it is answered, and the loop, not a worker, waits on clients.
const WORKERS: usize = 4;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// A read buffer with more spare room than this is shrunk once its request
/// is taken, so one large request does not pin memory on an idle connection.
const KEEP_CAPACITY: usize = 64 * 1024;
/// Linux `USER_HZ`: the unit of `/proc/self/stat` CPU times.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens count up from here and are never reused.
const FIRST_CONN: usize = 2;

/// What every worker shares.
struct Shared {
    src: LiveSource,
    monitor: Mutex<Monitor>,
    started: Instant,
    started_wall: SystemTime,
}

/// Bind the monitoring port from the options, log it as nats-server does
/// and start serving. `None` when monitoring is off. Errors read as
/// nats-server's fatal start-up line (`Can't start monitoring: ...`).
pub(crate) fn start(
    handle: ServerHandle,
    client_port: u16,
    started: Instant,
    started_wall: SystemTime,
) -> io::Result<Option<SocketAddr>> {
    start_inner(handle, client_port, started, started_wall)
        .map_err(|e| io::Error::new(e.kind(), format!("Can't start monitoring: {e}")))
}

fn start_inner(
    handle: ServerHandle,
    client_port: u16,
    started: Instant,
    started_wall: SystemTime,
) -> io::Result<Option<SocketAddr>> {
    let opts = handle.server().options();
    if opts.http_port != 0 && opts.https_port != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "can't specify both HTTP ({}) and HTTPs ({}) ports",
                opts.http_port, opts.https_port
            ),
        ));
    }
    let (scheme, port, tls) = match (opts.http_port, opts.https_port) {
        (0, 0) => return Ok(None),
        (0, https) => (
            "https",
            https,
            Some(monitor_tls_config(&opts)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS cert and key required for HTTPS",
                )
            })?),
        ),
        (http, _) => ("http", http, None),
    };
    let port = match port {
        -1 => 0,
        p => u16::try_from(p).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid {scheme} port {p}"),
            )
        })?,
    };
    let host = opts
        .http_host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| opts.host.clone());
    let listener = std::net::TcpListener::bind((host.as_str(), port))
        .map_err(|e| io::Error::new(e.kind(), format!("can't listen to the monitor port: {e}")))?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    log::info!("Starting {scheme} monitor on {host}:{}", local.port());
    let monitor = Monitor::new(opts.http_base_path.as_deref(), &host, client_port);
    let shared = Arc::new(Shared {
        src: LiveSource::new(handle, started),
        monitor: Mutex::new(monitor),
        started,
        started_wall,
    });
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    // A connection has at most one request out at a time, so neither queue
    // holds more than MAX_CONNS.
    let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(MAX_CONNS);
    let (answer_tx, answers) = crossbeam_channel::bounded::<Answer>(MAX_CONNS);
    for _ in 0..WORKERS {
        let (shared, jobs, answers, waker) = (
            shared.clone(),
            job_rx.clone(),
            answer_tx.clone(),
            waker.clone(),
        );
        std::thread::Builder::new()
            .name("http-worker".into())
            .spawn(move || work(&shared, &jobs, &answers, &waker))?;
    }
    let event_loop = Loop {
        poll,
        listener,
        tls,
        conns: HashMap::new(),
        next_token: FIRST_CONN,
        deadlines: BTreeSet::new(),
        buffered: 0,
        jobs,
        answers,
    };
    std::thread::Builder::new()
        .name("http-monitor".into())
        .spawn(move || event_loop.run())?;
    Ok(Some(local))
}

/// The server's TLS config for the monitor, `None` without `tls {}`: the
/// same certificate, versions and ciphers, but no client certificate asked
/// for (nats-server clears `ClientAuth` for monitoring).
fn monitor_tls_config(
    opts: &natsd_engine::options::Options,
) -> io::Result<Option<Arc<ServerConfig>>> {
    let mut opts = opts.clone();
    opts.tls_verify = false;
    crate::tls::server_config(&opts)
}

/// A whole request, for a worker to answer.
struct Job {
    token: usize,
    head: Head,
}

/// A worker's answer: the response bytes, ready to write.
struct Answer {
    token: usize,
    bytes: Vec<u8>,
    keep_alive: bool,
}

/// A worker: answer jobs until the loop is gone.
fn work(shared: &Shared, jobs: &Receiver<Job>, answers: &Sender<Answer>, waker: &Waker) {
    for job in jobs {
        let resp = respond(shared, &job.head.target);
        let answer = Answer {
            token: job.token,
            bytes: response_bytes(&resp, &job.head, SystemTime::now()),
            keep_alive: job.head.keep_alive,
        };
        if answers.send(answer).is_err() {
            return;
        }
        if let Err(e) = waker.wake() {
            log::error!("Could not wake the http monitor: {e}");
        }
    }
}

/// Whether a connection stays after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    Close,
}

/// The event loop: the listener, every connection and their deadlines.
struct Loop {
    poll: Poll,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    /// Each connection's deadline, earliest first; mirrors `Conn::deadline`.
    deadlines: BTreeSet<(Instant, usize)>,
    /// Sum of the connections' unanswered request bytes.
    buffered: usize,
    jobs: Sender<Job>,
    answers: Receiver<Answer>,
}

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self
                .deadlines
                .first()
                .map(|(at, _)| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("http monitor stopped: {e}");
                return;
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(token) => self.step(token, |c, jobs| c.drive(token, now, jobs)),
                }
            }
            while let Ok(answer) = self.answers.try_recv() {
                self.step(answer.token, |c, jobs| {
                    c.answer(answer.bytes, answer.keep_alive, now);
                    c.drive(answer.token, now, jobs)
                });
            }
            while let Some(&(at, token)) = self.deadlines.first() {
                if at > now {
                    break;
                }
                self.step(token, |c, jobs| c.expire(token, now, jobs));
            }
        }
    }

    /// Accept until the backlog is empty. On an error (out of descriptors)
    /// the rest wait for the next connection's readiness event.
    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => self.open(sock, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("Error accepting http monitor connection: {e}");
                    return;
                }
            }
        }
    }

    fn open(&mut self, mut sock: TcpStream, now: Instant) {
        if self.conns.len() >= MAX_CONNS && !self.evict_longest_waiting() {
            log::debug!("http monitor: every connection has a request out, closing a new one");
            return;
        }
        let tls = match &self.tls {
            None => None,
            Some(config) => match ServerConnection::new(config.clone()) {
                Ok(conn) => Some(Box::new(conn)),
                Err(e) => {
                    log::error!("http monitor TLS session: {e}");
                    return;
                }
            },
        };
        let token = self.next_token;
        self.next_token += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut sock, Token(token), interest)
        {
            log::error!("http monitor: could not register a connection: {e}");
            return;
        }
        let _ = sock.set_nodelay(true);
        let conn = Conn::new(sock, tls, now);
        if let Some(at) = conn.deadline {
            self.deadlines.insert((at, token));
        }
        self.conns.insert(token, conn);
    }

    /// Close the connection that has waited longest for a whole request
    /// (idle, or slow to send one); false when every connection has one out.
    fn evict_longest_waiting(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.waiting())
            .min_by_key(|(_, c)| c.since)
            .map(|(&token, _)| token);
        match victim {
            Some(token) => {
                log::debug!("http monitor: too many connections, closing the longest waiting");
                self.close(token);
                true
            }
            None => false,
        }
    }

    /// Run `f` on connection `token` (gone: nothing), then keep the loop's
    /// books: its deadline, the buffered total, and a close.
    fn step(&mut self, token: usize, f: impl FnOnce(&mut Conn, &Sender<Job>) -> Flow) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let (deadline, held) = (conn.deadline, conn.rbuf.len());
        let flow = f(conn, &self.jobs);
        if conn.deadline != deadline {
            if let Some(at) = deadline {
                self.deadlines.remove(&(at, token));
            }
            if let Some(at) = conn.deadline {
                self.deadlines.insert((at, token));
            }
        }
        self.buffered = self.buffered - held + conn.rbuf.len();
        if flow == Flow::Close {
            self.close(token);
        }
        while self.buffered > MAX_BUFFERED_BYTES {
            self.shed();
        }
    }

    /// Close the connection holding the most unanswered request bytes.
    fn shed(&mut self) {
        let largest = self.conns.iter().max_by_key(|(_, c)| c.rbuf.len());
        let Some((&token, _)) = largest else {
            return;
        };
        log::debug!("http monitor: too many request bytes held, closing the largest");
        self.close(token);
    }

    fn close(&mut self, token: usize) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        if let Some(at) = conn.deadline {
            self.deadlines.remove(&(at, token));
        }
        self.buffered -= conn.rbuf.len();
        let _ = self.poll.registry().deregister(&mut conn.sock);
    }
}

/// Where a connection is in its request/answer cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// TLS handshake under way.
    Handshake,
    /// Keep-alive: waiting for the next request's first byte.
    Idle,
    /// Reading a request head and body.
    Head,
    /// A worker is answering; nothing is read meanwhile.
    Busy,
    /// Writing an answer, then this.
    Writing(After),
    /// Refused: output shut, input drained (this much so far) until EOF or
    /// the deadline, so the close sends no reset over the answer.
    Lingering(usize),
}

/// What follows a written answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
    Linger,
}

/// One monitoring connection.
struct Conn {
    sock: TcpStream,
    tls: Option<Box<ServerConnection>>,
    state: State,
    /// When `state` began (for eviction).
    since: Instant,
    /// When the current state times out.
    deadline: Option<Instant>,
    /// Request bytes received and not yet answered (plaintext).
    rbuf: Vec<u8>,
    /// How far `rbuf` has been searched for the end of the head.
    scanned: usize,
    /// A parsed head whose body is still arriving.
    pending: Option<(Head, usize)>,
    /// Answer bytes, and how many are written (over TLS: taken by rustls).
    out: Vec<u8>,
    out_at: usize,
    /// The peer has closed its side.
    eof: bool,
}

impl Conn {
    fn new(sock: TcpStream, tls: Option<Box<ServerConnection>>, now: Instant) -> Conn {
        let state = if tls.is_some() {
            State::Handshake
        } else {
            State::Head
        };
        Conn {
            sock,
            tls,
            state,
            since: now,
            deadline: Some(now + HEAD_TIMEOUT),
            rbuf: Vec::new(),
            scanned: 0,
            pending: None,
            out: Vec::new(),
            out_at: 0,
            eof: false,
        }
    }

    fn enter(&mut self, state: State, now: Instant, timeout: Option<Duration>) {
        self.state = state;
        self.since = now;
        self.deadline = timeout.map(|t| now + t);
    }

    /// Waiting for a whole request: what eviction may close.
    fn waiting(&self) -> bool {
        matches!(self.state, State::Handshake | State::Idle | State::Head)
    }

    /// Move as far as the socket allows: read, take a whole request, write.
    fn drive(&mut self, token: usize, now: Instant, jobs: &Sender<Job>) -> Flow {
        match self.advance(token, now, jobs) {
            Ok(flow) => flow,
            Err(e) => {
                log::debug!("http monitor connection: {e}");
                Flow::Close
            }
        }
    }

    fn advance(&mut self, token: usize, now: Instant, jobs: &Sender<Job>) -> io::Result<Flow> {
        loop {
            match self.state {
                State::Handshake | State::Idle | State::Head => self.fill()?,
                State::Lingering(drained) => self.drain(drained)?,
                State::Busy | State::Writing(_) => {}
            }
            let handshaken = self.tls.as_ref().is_none_or(|t| !t.is_handshaking());
            if self.state == State::Handshake && handshaken {
                self.enter(State::Head, now, Some(HEAD_TIMEOUT));
            }
            if self.state == State::Idle && !self.rbuf.is_empty() {
                self.enter(State::Head, now, Some(HEAD_TIMEOUT));
            }
            if self.state == State::Head {
                self.take_request(token, now, jobs);
            }
            let flushed = self.flush()?;
            match self.state {
                State::Handshake | State::Idle | State::Head | State::Lingering(_) if self.eof => {
                    return Ok(Flow::Close)
                }
                State::Writing(after) if flushed => match after {
                    After::KeepAlive => self.enter(State::Idle, now, Some(IDLE_TIMEOUT)),
                    After::Close => return Ok(Flow::Close),
                    After::Linger => {
                        self.sock.shutdown(Shutdown::Write)?;
                        self.enter(State::Lingering(0), now, Some(LINGER));
                    }
                },
                _ => return Ok(Flow::Open),
            }
        }
    }

    /// Read what the socket holds into `rbuf`, up to one request's limits.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; READ_CHUNK];
        while !self.eof && self.rbuf.len() <= MAX_HEAD_BYTES + MAX_BODY_BYTES {
            let read = match self.tls.as_mut() {
                None => self
                    .sock
                    .read(&mut chunk)
                    .inspect(|&n| self.rbuf.extend_from_slice(&chunk[..n])),
                Some(tls) => read_tls(tls, &mut self.sock, &mut self.rbuf),
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read and drop input on a refused connection, up to a body's worth.
    fn drain(&mut self, mut drained: usize) -> io::Result<()> {
        let mut sink = [0u8; READ_CHUNK];
        while !self.eof {
            match self.sock.read(&mut sink) {
                Ok(0) => self.eof = true,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if drained > MAX_BODY_BYTES {
                self.eof = true;
            }
        }
        self.state = State::Lingering(drained);
        Ok(())
    }

    /// Hand a whole request to the workers, or refuse a bad one.
    fn take_request(&mut self, token: usize, now: Instant, jobs: &Sender<Job>) {
        let (head, len) = match self.pending.take() {
            Some(pending) => pending,
            None => {
                let Some(end) = self.head_end() else {
                    if self.rbuf.len() > MAX_HEAD_BYTES {
                        self.refuse(Refusal::TOO_LARGE, now);
                    }
                    return;
                };
                if end > MAX_HEAD_BYTES {
                    return self.refuse(Refusal::TOO_LARGE, now);
                }
                match parse_head(&self.rbuf[..end]) {
                    Ok(head) => {
                        let len = end + head.body_len;
                        (head, len)
                    }
                    Err(refusal) => return self.refuse(refusal, now),
                }
            }
        };
        if self.rbuf.len() < len {
            self.pending = Some((head, len));
            return;
        }
        self.rbuf.drain(..len);
        self.scanned = 0;
        if self.rbuf.capacity() > KEEP_CAPACITY {
            self.rbuf.shrink_to(KEEP_CAPACITY);
        }
        self.enter(State::Busy, now, None);
        if jobs.try_send(Job { token, head }).is_err() {
            log::error!("http monitor: the workers' queue is full");
            self.refuse(Refusal::UNAVAILABLE, now);
        }
    }

    /// The end of the head in `rbuf` (an empty line, CRLF or bare LF as Go
    /// accepts), searching only bytes not searched before.
    fn head_end(&mut self) -> Option<usize> {
        let from = self.scanned.saturating_sub(2);
        self.scanned = self.rbuf.len();
        let buf = &self.rbuf;
        (from..buf.len())
            .filter(|&i| buf[i] == b'\n')
            .find_map(|i| match &buf[i + 1..] {
                [b'\n', ..] => Some(i + 2),
                [b'\r', b'\n', ..] => Some(i + 3),
                _ => None,
            })
    }

    /// Answer `refusal` as Go does and close after it.
    fn refuse(&mut self, refusal: Refusal, now: Instant) {
        log::debug!("http monitor: refused a request: {}", refusal.text());
        self.rbuf = Vec::new();
        self.pending = None;
        self.set_out(refusal.bytes(), After::Linger, now);
    }

    /// A worker's answer arrived.
    fn answer(&mut self, bytes: Vec<u8>, keep_alive: bool, now: Instant) {
        let after = if keep_alive {
            After::KeepAlive
        } else {
            After::Close
        };
        self.set_out(bytes, after, now);
    }

    fn set_out(&mut self, bytes: Vec<u8>, after: After, now: Instant) {
        self.out = bytes;
        self.out_at = 0;
        self.enter(State::Writing(after), now, Some(WRITE_TIMEOUT));
    }

    /// The connection's deadline passed.
    fn expire(&mut self, token: usize, now: Instant, jobs: &Sender<Job>) -> Flow {
        let cut_off = self.state == State::Head && !self.rbuf.is_empty();
        if !cut_off {
            log::debug!(
                "http monitor: closing a connection at its deadline ({:?})",
                self.state
            );
            return Flow::Close;
        }
        // Go answers a head the deadline cut off with a bare 400.
        self.refuse(Refusal::BAD, now);
        self.drive(token, now, jobs)
    }

    /// Write what is pending (answer bytes, TLS records); true when all of
    /// it is on the socket. Over TLS, a last answer ends with `close_notify`,
    /// without which clients see a truncated stream.
    fn flush(&mut self) -> io::Result<bool> {
        let last = matches!(self.state, State::Writing(After::Close | After::Linger));
        let Some(tls) = self.tls.as_mut() else {
            while self.out_at < self.out.len() {
                match self.sock.write(&self.out[self.out_at..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.out_at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.out = Vec::new();
            self.out_at = 0;
            return Ok(true);
        };
        loop {
            let had = self.out_at < self.out.len();
            while self.out_at < self.out.len() {
                let n = tls.writer().write(&self.out[self.out_at..])?;
                if n == 0 {
                    break;
                }
                self.out_at += n;
            }
            if had && self.out_at == self.out.len() && last {
                tls.send_close_notify();
            }
            if !tls.wants_write() {
                if self.out_at < self.out.len() {
                    return Err(io::Error::other("TLS session does not accept data"));
                }
                self.out = Vec::new();
                self.out_at = 0;
                return Ok(true);
            }
            match tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One read of TLS records from `sock`; their plaintext goes to `rbuf`.
/// `Ok(0)` at the end of the stream (TCP or `close_notify`).
fn read_tls(
    tls: &mut ServerConnection,
    sock: &mut TcpStream,
    rbuf: &mut Vec<u8>,
) -> io::Result<usize> {
    let n = tls.read_tls(sock)?;
    if n == 0 {
        return Ok(0);
    }
    let state = tls.process_new_packets().map_err(|e| {
        // Queue-and-send rustls's alert, so the peer can say why.
        let _ = tls.write_tls(sock);
        io::Error::new(io::ErrorKind::InvalidData, e)
    })?;
    let plain = state.plaintext_bytes_to_read();
    let closed = state.peer_has_closed();
    if plain > 0 {
        let at = rbuf.len();
        rbuf.resize(at + plain, 0);
        tls.reader().read_exact(&mut rbuf[at..])?;
    }
    Ok(if closed && plain == 0 { 0 } else { n })
}

/// One parsed request head.
#[derive(Debug)]
struct Head {
    head_only: bool,
    target: String,
    /// The minor version of HTTP/1.x.
    minor: u8,
    keep_alive: bool,
    body_len: usize,
}

/// A request refused before it reaches the monitor, answered as Go's
/// `net/http` does: status, and the reason after it when Go gives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    status: u16,
    why: Option<&'static str>,
}

impl Refusal {
    const BAD: Refusal = Refusal::bad(None);
    const TOO_LARGE: Refusal = Refusal {
        status: 431,
        why: None,
    };
    const UNAVAILABLE: Refusal = Refusal {
        status: 503,
        why: None,
    };

    const fn bad(why: Option<&'static str>) -> Refusal {
        Refusal { status: 400, why }
    }

    /// `400 Bad Request: missing required Host header`.
    fn text(&self) -> String {
        let mut text = format!("{} {}", self.status, status_text(self.status));
        if let Some(why) = self.why {
            text.push_str(": ");
            text.push_str(why);
        }
        text
    }

    /// Go writes the text as status line and body, nothing else.
    fn bytes(&self) -> Vec<u8> {
        let text = self.text();
        format!(
            "HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{text}"
        )
        .into_bytes()
    }
}

/// A whole head (through its empty line), as Go's `net/http` reads it.
fn parse_head(head: &[u8]) -> Result<Head, Refusal> {
    let line_end = head.iter().position(|&b| b == b'\n').ok_or(Refusal::BAD)?;
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| Refusal::BAD)?;
    let (method, rest) = line.split_once(' ').ok_or(Refusal::BAD)?;
    let (target, version) = rest.split_once(' ').ok_or(Refusal::BAD)?;
    let (major, minor) = http_version(version).ok_or(Refusal::BAD)?;
    if method.is_empty() || !method.bytes().all(is_token_byte) || !target.starts_with('/') {
        return Err(Refusal::BAD);
    }
    let rest = &head[line_end + 1..];
    let mut headers = vec![httparse::EMPTY_HEADER; rest.iter().filter(|&&b| b == b'\n').count()];
    let headers = match httparse::parse_headers(rest, &mut headers) {
        Ok(httparse::Status::Complete((_, headers))) => headers,
        Err(httparse::Error::HeaderName) => {
            return Err(Refusal::bad(Some("invalid header name")));
        }
        Ok(httparse::Status::Partial) | Err(_) => return Err(Refusal::BAD),
    };
    let mut keep_alive = minor >= 1;
    let mut body_len = 0usize;
    let mut hosts = 0usize;
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Refusal::BAD)?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refusal::bad(Some(
                "request bodies with Transfer-Encoding are not accepted",
            )));
        }
    }
    if body_len > MAX_BODY_BYTES {
        return Err(Refusal::bad(Some("request body too large")));
    }
    // Go checks the version after reading the head, and Host after that.
    if major != 1 {
        return Err(Refusal {
            status: 505,
            why: Some("unsupported protocol version"),
        });
    }
    if minor >= 1 && hosts == 0 {
        return Err(Refusal::bad(Some("missing required Host header")));
    }
    if hosts > 1 {
        return Err(Refusal::BAD);
    }
    Ok(Head {
        head_only: method == "HEAD",
        target: target.to_string(),
        minor,
        keep_alive,
        body_len,
    })
}

/// `HTTP/M.m` with one digit each, as Go's `ParseHTTPVersion`.
fn http_version(version: &str) -> Option<(u8, u8)> {
    match version.strip_prefix("HTTP/")?.as_bytes() {
        &[major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// An RFC 9110 token character (method names).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What the engine's monitor reads through: the running server.
pub(crate) struct LiveSource {
    handle: ServerHandle,
    cpu: Mutex<CpuSampler>,
}

impl LiveSource {
    /// The running server behind `handle`, started at `started`.
    pub(crate) fn new(handle: ServerHandle, started: Instant) -> Self {
        LiveSource {
            handle,
            cpu: Mutex::new(CpuSampler::new(started)),
        }
    }
}

impl Source for LiveSource {
    fn server(&self) -> &Server {
        self.handle.server()
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        self.handle.connections(SNAPSHOT_TIMEOUT)
    }

    fn routes(&self) -> Vec<natsd_engine::route::RouteSnapshot> {
        self.handle.routes(SNAPSHOT_TIMEOUT)
    }

    fn process(&self) -> ProcessStats {
        let cpu = self
            .cpu
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(Instant::now());
        ProcessStats {
            mem: rss_bytes(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn load(&self) -> natsd_engine::monitor::Load {
        self.handle.load()
    }
}

fn respond(shared: &Shared, target: &str) -> Response {
    let clock = Clock {
        now: Instant::now(),
        wall_now: SystemTime::now(),
        start: shared.started,
        start_wall: shared.started_wall,
    };
    let mut monitor = shared.monitor.lock().unwrap_or_else(|e| e.into_inner());
    monitor.respond(target, &shared.src, &clock)
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The whole answer to `head`. As Go: an HTTP/1.0 request gets an HTTP/1.0
/// status line and `Connection: keep-alive` when it stays open; an HTTP/1.1
/// one gets `Connection: close` when it does not.
fn response_bytes(resp: &Response, head: &Head, now: SystemTime) -> Vec<u8> {
    let version = if head.minor == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut out = format!(
        "{version} {} {}\r\nContent-Type: {}\r\nDate: {}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\n",
        resp.status,
        status_text(resp.status),
        resp.content_type,
        natsd_engine::monitor::http_date(now),
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    match (head.minor, head.keep_alive) {
        (0, true) => out.push_str("Connection: keep-alive\r\n"),
        (0, false) | (_, true) => {}
        (_, false) => out.push_str("Connection: close\r\n"),
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head.head_only {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// Resident set size from `/proc/self/status` (`VmRSS`, in kB); 0 where
/// there is no procfs.
fn rss_bytes() -> i64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User plus system CPU time of this process, in clock ticks
/// (`/proc/self/stat` fields 14 and 15).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it are fixed.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU percent between samples, as nats-server's `/varz` `cpu` (percent of
/// one core; over 100 when several cores are busy).
struct CpuSampler {
    last_at: Instant,
    last_ticks: u64,
    last_pct: f64,
}

impl CpuSampler {
    fn new(started: Instant) -> CpuSampler {
        CpuSampler {
            last_at: started,
            last_ticks: 0,
            last_pct: 0.0,
        }
    }

    fn sample(&mut self, now: Instant) -> f64 {
        let Some(ticks) = cpu_ticks() else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(self.last_at).as_secs_f64();
        // Samples closer than a few ticks apart would be mostly rounding.
        if elapsed < 0.1 {
            return self.last_pct;
        }
        let used = ticks.saturating_sub(self.last_ticks) as f64 / CLOCK_TICKS_PER_SEC;
        let pct = (used / elapsed * 1000.0).round() / 10.0;
        self.last_at = now;
        self.last_ticks = ticks;
        self.last_pct = pct;
        pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Head {
        parse_head(buf).unwrap_or_else(|r| panic!("refused: {}", r.text()))
    }

    fn refused(buf: &[u8]) -> String {
        match parse_head(buf) {
            Ok(h) => panic!("accepted: {h:?}"),
            Err(r) => r.text(),
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(complete(b"GET /varz HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!complete(b"GET /varz HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET /varz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").keep_alive);
    }

    /// Status texts as nats-server 2.15.1 (Go `net/http`) writes them.
    #[test]
    fn refusals_read_as_go() {
        assert_eq!(refused(b"\x00\x01 nonsense\r\n\r\n"), "400 Bad Request");
        assert_eq!(
            refused(b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            "400 Bad Request"
        );
        assert_eq!(
            refused(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "400 Bad Request"
        );
        assert_eq!(
            refused(b"GET / HTTP/x\r\nHost: x\r\n\r\n"),
            "400 Bad Request"
        );
        assert_eq!(
            refused(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
            "505 HTTP Version Not Supported: unsupported protocol version"
        );
        assert_eq!(
            refused(b"GET /varz HTTP/1.1\r\n\r\n"),
            "400 Bad Request: missing required Host header"
        );
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
            "400 Bad Request"
        );
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"),
            "400 Bad Request: invalid header name"
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"),
            "400 Bad Request"
        );
        assert!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .starts_with("400 Bad Request: ")
        );
        let bytes = Refusal::bad(Some("missing required Host header")).bytes();
        assert_eq!(
            bytes,
            b"HTTP/1.1 400 Bad Request: missing required Host header\r\n\
              Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
              400 Bad Request: missing required Host header"
        );
    }

    #[test]
    fn accepted_heads() {
        let h = complete(b"POST /connz?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.body_len, 3);
        assert_eq!(h.target, "/connz?x=1");
        // Go accepts any HTTP/1.x, bare LF line ends, and an empty Host.
        assert_eq!(complete(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").minor, 2);
        assert!(complete(b"GET / HTTP/1.1\nHost: x\n\n").keep_alive);
        assert!(complete(b"HEAD / HTTP/1.1\r\nHost:\r\n\r\n").head_only);
    }

    #[test]
    fn response_version_and_connection_follow_the_request() {
        let resp = Response::error(404, "404 page not found\n");
        let text = |req: &[u8]| {
            String::from_utf8(response_bytes(
                &resp,
                &complete(req),
                SystemTime::UNIX_EPOCH,
            ))
            .expect("utf8")
        };
        let one_oh = text(b"GET / HTTP/1.0\r\n\r\n");
        assert!(one_oh.starts_with("HTTP/1.0 404 Not Found\r\n"), "{one_oh}");
        assert!(!one_oh.contains("Connection:"), "{one_oh}");
        let kept = text(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(kept.contains("\r\nConnection: keep-alive\r\n"), "{kept}");
        let closed = text(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(closed.starts_with("HTTP/1.1 404"), "{closed}");
        assert!(closed.contains("\r\nConnection: close\r\n"), "{closed}");
        assert!(closed.ends_with("\r\n\r\n404 page not found\n"), "{closed}");
    }

    /// The end of a head is found whatever the reads' boundaries, scanning
    /// each byte a bounded number of times.
    #[test]
    fn head_end_across_reads() {
        for req in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"[..],
            &b"GET / HTTP/1.1\nHost: x\n\nrest"[..],
        ] {
            let want = req.len() - 4;
            for cut in 0..req.len() {
                let (sock, _) = loopback_pair();
                let mut conn = Conn::new(sock, None, Instant::now());
                conn.rbuf.extend_from_slice(&req[..cut]);
                let first = conn.head_end();
                conn.rbuf.extend_from_slice(&req[cut..]);
                let found = first.or_else(|| conn.head_end());
                assert_eq!(found, Some(want), "cut at {cut}");
            }
        }
    }

    /// A connected mio socket and its peer.
    fn loopback_pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (sock, _) = listener.accept().expect("accept");
        (TcpStream::from_std(sock), peer)
    }

    #[test]
    fn proc_figures_are_readable() {
        assert!(rss_bytes() > 0);
        assert!(cpu_ticks().is_some());
    }
}
