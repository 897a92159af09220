//! The HTTP monitoring listener (`-m/--http_port`, `http: host:port`), or
//! HTTPS (`-ms/--https_port`, `https: host:port`) with the server's `tls {}`
//! certificate, as nats-server: never both, and HTTPS without TLS configured
//! stops the server at start. Monitoring never asks for client certificates,
//! even when clients must present one (`verify`), as nats-server.
//!
//! One acceptor thread (`http-monitor`) and a thread per open HTTP
//! connection, at most [`MAX_CONNS`] at once; none of this runs on a
//! reactor. Over HTTPS each connection thread wraps its socket in a blocking
//! rustls stream (the handshake runs on its first read, bounded by the same
//! timeouts) and serves it the same way. Each connection speaks HTTP/1.1:
//! request line and headers parsed with `httparse` (bounded to
//! [`MAX_HEAD_BYTES`]), keep-alive unless the client says `Connection: close`
//! or speaks HTTP/1.0, a request body up to [`MAX_BODY_BYTES`] read and
//! ignored. Bad requests get 400 and a close, never a panic. The endpoints themselves (JSON models, query parsing,
//! sorting, paging) are `natsd_engine::monitor`; this module only moves
//! bytes and reads the process figures from `/proc`.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use natsd_engine::client::ConnSnapshot;
use natsd_engine::monitor::{Clock, Monitor, ProcessStats, Response, Source};
use natsd_engine::server::Server;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::ServerHandle;

/// Open HTTP connections served at once; more get 503 and a close.
const MAX_CONNS: usize = 32;
/// Request line plus headers.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A request body is read and dropped; larger ones are refused.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// An idle keep-alive connection, or a client that stops mid-request, is
/// closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A response write blocked this long closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for each reactor's connection snapshots.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a refused connection drains input before it closes.
const LINGER: Duration = Duration::from_millis(500);
/// Linux `USER_HZ`: the unit of `/proc/self/stat` CPU times.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// What every HTTP connection thread shares.
struct Shared {
    src: LiveSource,
    monitor: Mutex<Monitor>,
    active: AtomicUsize,
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
    let listener = TcpListener::bind((host.as_str(), port))
        .map_err(|e| io::Error::new(e.kind(), format!("can't listen to the monitor port: {e}")))?;
    let local = listener.local_addr()?;
    log::info!("Starting {scheme} monitor on {host}:{}", local.port());
    let monitor = Monitor::new(opts.http_base_path.as_deref(), &host, client_port);
    let shared = Arc::new(Shared {
        src: LiveSource::new(handle, started),
        monitor: Mutex::new(monitor),
        started,
        started_wall,
        active: AtomicUsize::new(0),
    });
    std::thread::Builder::new()
        .name("http-monitor".into())
        .spawn(move || accept_loop(listener, shared, tls))?;
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

/// A monitoring connection: plain TCP or TLS over it.
trait Conn: Read + Write {
    /// The socket underneath, for timeouts and shutdown.
    fn tcp(&self) -> &TcpStream;
    /// End the session cleanly before the socket closes (TLS `close_notify`,
    /// without which clients see a truncated stream).
    fn close_notify(&mut self) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    fn close_notify(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    fn close_notify(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<ServerConfig>>) {
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("Error accepting http monitor connection: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNS {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            if tls.is_some() {
                // A 503 over TLS needs a handshake, which would stall this
                // acceptor on a slow client: close instead.
                log::debug!("too many https monitor connections, closing a new one");
                continue;
            }
            let busy = Response::error(503, "too many monitoring connections\n");
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = write_response(&mut stream, &busy, false, false);
            continue;
        }
        let conn_shared = shared.clone();
        let conn_tls = tls.clone();
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let served = match conn_tls {
                    None => serve(stream, &conn_shared),
                    Some(config) => ServerConnection::new(config)
                        .map_err(io::Error::other)
                        .and_then(|conn| serve(StreamOwned::new(conn, stream), &conn_shared)),
                };
                if let Err(e) = served {
                    log::debug!("http monitor connection: {e}");
                }
                conn_shared.active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            log::error!("Could not start an http monitor thread: {e}");
        }
    }
}

/// One parsed request head.
struct Head {
    method: String,
    target: String,
    keep_alive: bool,
    body_len: usize,
    len: usize,
}

enum Parsed {
    Complete(Head),
    Partial,
    Bad(&'static str),
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad("too many headers"),
        Err(_) => return Parsed::Bad("malformed request"),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad("malformed request");
    };
    let mut keep_alive = version >= 1;
    let mut body_len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(n) => body_len = n,
                None => return Parsed::Bad("bad Content-Length"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad("request bodies with Transfer-Encoding are not accepted");
        }
    }
    if body_len > MAX_BODY_BYTES {
        return Parsed::Bad("request body too large");
    }
    Parsed::Complete(Head {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive,
        body_len,
        len,
    })
}

fn serve<S: Conn>(mut stream: S, shared: &Shared) -> io::Result<()> {
    stream.tcp().set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.tcp().set_write_timeout(Some(WRITE_TIMEOUT))?;
    let _ = stream.tcp().set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Read until one whole head (and its body) is buffered.
        let head = loop {
            match parse_head(&buf) {
                Parsed::Complete(h) if buf.len() >= h.len + h.body_len => break h,
                Parsed::Complete(_) => {}
                Parsed::Partial if buf.len() > MAX_HEAD_BYTES => {
                    let r = Response::error(431, "431 Request Header Fields Too Large\n");
                    return refuse(stream, &r);
                }
                Parsed::Partial => {}
                Parsed::Bad(why) => {
                    let r = Response::error(400, format!("400 Bad Request: {why}\n"));
                    return refuse(stream, &r);
                }
            }
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..head.len + head.body_len);
        let resp = respond(shared, &head.target);
        write_response(
            &mut stream,
            &resp,
            head.keep_alive,
            head.method.eq_ignore_ascii_case("HEAD"),
        )?;
        if !head.keep_alive {
            return stream.close_notify();
        }
    }
}

/// Answer a request we will not read to its end, then close without a
/// reset: stop writing, and drain what the client still sends for a moment
/// (closing with unread input makes the kernel send RST, which can destroy
/// the reply before the client reads it).
fn refuse<S: Conn>(mut stream: S, resp: &Response) -> io::Result<()> {
    write_response(&mut stream, resp, false, false)?;
    stream.close_notify()?;
    let mut tcp = stream.tcp();
    tcp.shutdown(std::net::Shutdown::Write)?;
    tcp.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    // The raw socket: what is left is only drained, never read as TLS.
    while drained < MAX_HEAD_BYTES + MAX_BODY_BYTES {
        match tcp.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
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
        _ => "Error",
    }
}

fn write_response(
    stream: &mut impl Write,
    resp: &Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nDate: {}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\n",
        resp.status,
        status_text(resp.status),
        resp.content_type,
        natsd_engine::monitor::http_date(SystemTime::now()),
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
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
        match parse_head(buf) {
            Parsed::Complete(h) => h,
            Parsed::Partial => panic!("partial"),
            Parsed::Bad(why) => panic!("bad: {why}"),
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(complete(b"GET /varz HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!complete(b"GET /varz HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET /varz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
    }

    #[test]
    fn partial_and_bad_heads() {
        assert!(matches!(
            parse_head(b"GET /varz HTTP/1.1\r\n"),
            Parsed::Partial
        ));
        assert!(matches!(
            parse_head(b"\x00\x01 nonsense\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad(_)
        ));
        let h = complete(b"POST /connz?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(h.body_len, 3);
        assert_eq!(h.target, "/connz?x=1");
    }

    #[test]
    fn proc_figures_are_readable() {
        assert!(rss_bytes() > 0);
        assert!(cpu_ticks().is_some());
    }
}
