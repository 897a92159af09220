//! The monitoring port under hostile or odd HTTP: slow clients must never lock out `/healthz`,
//! and the protocol-level answers (status lines for malformed requests, head size limit) are
//! nats-server 2.15.1's, checked against it where it is installed (`NATS_SERVER_BIN`).
//!
//! nats-server's monitoring `http.Server` has a 5 s `ReadHeaderTimeout` (its TLS handshake
//! gets the same) and Go's 1 MiB `MaxHeaderBytes`; requests that break HTTP/1.x get Go's
//! `net/http` error answers.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use natsd_tests::{Kind, Server};

use crate::monitor::{http_port, https_get, logged_port, tls_block, HTTPS_MONITOR};
use crate::WAIT;

/// nats-server's monitoring `ReadHeaderTimeout`.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Slow connections held open against the monitor at once (twice natsd's old cap).
const SLOW_CONNS: usize = 64;
/// How long a probe may take while the slow connections are open.
const PROBE_MAX: Duration = Duration::from_secs(1);

/// natsd and, where installed, nats-server, each monitoring on a random port.
fn servers(args: &[&str]) -> Vec<Server> {
    let mut all = vec![Server::natsd(args)];
    all.extend(Server::reference(args));
    all
}

/// Send `request` on a fresh connection and read until the server closes it.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to monitor");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(request).expect("write request");
    let mut got = Vec::new();
    // A reset after the answer (the server closing with input unread) still leaves the answer.
    let _ = s.read_to_end(&mut got);
    got
}

fn status_line(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split("\r\n").next().unwrap_or_default().to_string()
}

/// Every server answers `request` with `expected` as its status line; the replies' bodies.
fn assert_status(request: &[u8], expected: &str) -> Vec<(Kind, Vec<u8>)> {
    let mut replies = Vec::new();
    for server in servers(&["-m", "-1"]) {
        let reply = exchange(http_port(&server), request);
        assert_eq!(
            status_line(&reply),
            expected,
            "{:?}: {}",
            server.kind(),
            String::from_utf8_lossy(&reply[..reply.len().min(300)])
        );
        let body = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or_else(Vec::new, |at| reply[at + 4..].to_vec());
        replies.push((server.kind(), body));
    }
    replies
}

/// Go's mux matches `/varz` exactly: `/varz/` falls through to the root handler's 404.
#[test]
fn trailing_slash_is_not_found() {
    for (kind, body) in assert_status(
        b"GET /varz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 404 Not Found",
    ) {
        assert_eq!(body, b"404 page not found\n", "{kind:?}");
    }
}

/// HTTP/1.1 requires `Host` (RFC 9112 section 3.2); Go refuses a request without it.
#[test]
fn http11_without_host_is_bad_request() {
    for (kind, body) in assert_status(
        b"GET /varz HTTP/1.1\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 400 Bad Request: missing required Host header",
    ) {
        assert_eq!(
            body, b"400 Bad Request: missing required Host header",
            "{kind:?}"
        );
    }
    // HTTP/1.0 has no Host header and is served, with a 1.0 status line.
    assert_status(b"GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK");
}

/// A well-formed version other than 1.x is 505, a malformed one 400, as Go.
#[test]
fn unknown_http_version_is_505() {
    assert_status(
        b"GET /varz HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version",
    );
    assert_status(
        b"GET /varz HTTP/x\r\nHost: x\r\n\r\n",
        "HTTP/1.1 400 Bad Request",
    );
}

/// The head limit is Go's 1 MiB `MaxHeaderBytes` (plus the 4 KiB its reader allows over it):
/// a 100 KB query string is served, a head past the limit is 431.
#[test]
fn large_heads_are_served_up_to_go_limit() {
    let query = format!(
        "GET /varz?x={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_status(query.as_bytes(), "HTTP/1.1 200 OK");
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(1_000_000)
    );
    assert_status(header.as_bytes(), "HTTP/1.1 200 OK");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(1_100_000)
    );
    assert_status(
        huge.as_bytes(),
        "HTTP/1.1 431 Request Header Fields Too Large",
    );
}

/// One slow client: a socket that gets one byte of `bytes` per round.
struct Slow {
    sock: TcpStream,
    opened: Instant,
    closed: Option<Instant>,
}

impl Slow {
    fn open(port: u16) -> Slow {
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect slow client");
        sock.set_nonblocking(true).expect("nonblocking");
        Slow {
            sock,
            opened: Instant::now(),
            closed: None,
        }
    }

    /// Send one more byte unless the server has closed the connection; note when it did.
    fn dribble(&mut self, byte: u8) {
        if self.closed.is_some() {
            return;
        }
        let mut sink = [0u8; 4096];
        let gone = loop {
            match self.sock.read(&mut sink) {
                // A server may answer (Go writes 400) before it closes.
                Ok(n) if n > 0 => continue,
                Ok(_) => break true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        if gone || self.sock.write(&[byte]).is_err() {
            self.closed = Some(Instant::now());
        }
    }
}

/// Hold [`SLOW_CONNS`] connections open on `port`, each sent one byte of `bytes` about every
/// second (never a whole request), while `probe` runs every 200 ms. Every probe must answer 200
/// within [`PROBE_MAX`]; every slow connection must be closed by the server after
/// [`HEAD_TIMEOUT`] and soon after it, not refused at once.
fn slow_loris(who: &str, port: u16, bytes: &[u8], probe: impl Fn(&str) -> u16) {
    let mut slow: Vec<Slow> = (0..SLOW_CONNS).map(|_| Slow::open(port)).collect();
    let started = Instant::now();
    let end = started + HEAD_TIMEOUT + Duration::from_secs(4);
    let mut next_byte = started;
    let mut sent = 0usize;
    let mut probes = 0usize;
    while Instant::now() < end {
        if Instant::now() >= next_byte {
            let byte = bytes[sent.min(bytes.len() - 1)];
            for s in &mut slow {
                s.dribble(byte);
            }
            sent += 1;
            next_byte += Duration::from_secs(1);
        }
        for target in ["/healthz", "/varz"] {
            let asked = Instant::now();
            let status = probe(target);
            let took = asked.elapsed();
            assert_eq!(status, 200, "{who}: {target} while slow clients are open");
            assert!(took < PROBE_MAX, "{who}: {target} took {took:?}");
            probes += 1;
        }
        thread::sleep(Duration::from_millis(200));
    }
    for s in &mut slow {
        s.dribble(b'x');
    }
    assert!(probes >= 20, "{who}: only {probes} probes ran");
    for (i, s) in slow.iter().enumerate() {
        let closed = s.closed.unwrap_or_else(|| {
            panic!(
                "{who}: slow connection {i} still open after {:?}",
                s.opened.elapsed()
            )
        });
        let after = closed - s.opened;
        assert!(
            after >= HEAD_TIMEOUT - Duration::from_millis(500),
            "{who}: slow connection {i} closed after only {after:?}"
        );
        assert!(
            after <= HEAD_TIMEOUT + Duration::from_millis(2500),
            "{who}: slow connection {i} closed only after {after:?}"
        );
    }
}

/// A GET's status on a fresh plain connection (a liveness probe).
fn probe_http(port: u16, target: &str) -> u16 {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let reply = exchange(port, req.as_bytes());
    status_line(&reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// 64 connections that send one header byte a second keep neither `/healthz` nor `/varz` from
/// answering, and each is closed once the 5 s head deadline passes (a byte does not extend it).
#[test]
fn slow_headers_do_not_lock_out_monitoring() {
    let head = b"GET /varz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    thread::scope(|scope| {
        for server in servers(&["-m", "-1"]) {
            scope.spawn(move || {
                let port = http_port(&server);
                let who = format!("{:?}", server.kind());
                slow_loris(&who, port, head, |t| probe_http(port, t));
            });
        }
    });
}

/// The same over HTTPS, where the slow clients never finish the TLS handshake: the handshake is
/// bounded by the same deadline and stalls no one else.
#[test]
fn slow_tls_handshakes_do_not_lock_out_monitoring() {
    // The start of a TLS 1.2 ClientHello record, never completed.
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let conf = tls_block("");
    let mut servers = vec![Server::natsd_with_config(&conf, &["-ms", "-1"])];
    servers.extend(Server::reference_with_config(&["-ms", "-1"], Some(&conf)));
    thread::scope(|scope| {
        for server in servers {
            scope.spawn(move || {
                let port = logged_port(&server, HTTPS_MONITOR);
                let who = format!("{:?}", server.kind());
                slow_loris(&who, port, &hello, |t| https_get(port, t).status);
            });
        }
    });
}
