//! Helpers for natsd's integration tests.
//!
//! [`Server`] starts a server binary as a child process with the flags the nats.rs
//! `nats-server` test helper uses (`-a 127.0.0.1 -p -1 -l <dir>/server.log -P <dir>/server.pid`)
//! and finds its port in the log file, exactly as that helper does. The same harness starts
//! either natsd (the default) or the Go `nats-server`, so every test can be checked against the
//! reference: `NATSD_BIN=/usr/sbin/nats-server cargo test -p natsd-tests`.
//!
//! [`RawConn`] is a blocking raw TCP client for exact-byte checks, and [`run_transcript`] replays
//! a list of [`Step`]s and returns a [`Transcript`] whose INFO fields and version-specific bytes
//! are normalized, so transcripts from natsd and nats-server can be compared byte for byte.
//!
//! Environment:
//! - `NATSD_BIN`: server binary under test, relative to the workspace root (default: the newest of the workspace's
//!   `target/release/natsd` and `target/debug/natsd`, also under `CARGO_TARGET_DIR`).
//! - `NATS_SERVER_BIN`: reference nats-server (default: the pinned 2.15.1 that `.ci/run` installs
//!   under `$HOME/.cache/natsd-ref/2.15.1/`, then `nats-server` on `PATH`, then
//!   `/usr/sbin/nats-server`); differential checks are skipped when none is found.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// How long a server may take to print `Server is ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server may take after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wait for an expected reply on a raw connection.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// The log line nats-server prints once the client listener is up (the nats.rs harness greps it).
const LISTENING: &str = "Listening for client connections on ";
const READY: &str = "Server is ready";

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `natsd-tests-<pid>-<n>-<nanos>` under [`std::env::temp_dir`].
    pub fn new() -> TempDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("natsd-tests-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Which implementation a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The binary under test (`NATSD_BIN` or the workspace build).
    UnderTest,
    /// The Go reference nats-server.
    Reference,
}

/// JetStream servers with their store directories ([`Server::natsd_and_reference_js`]).
#[derive(Debug)]
pub struct JsServers {
    /// natsd, then the reference when installed.
    pub servers: Vec<Server>,
    _stores: [TempDir; 2],
}

/// A running server process; killed (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    bin: PathBuf,
    args: Vec<String>,
    kind: Kind,
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    restarts: u32,
}

impl Server {
    /// Starts the server under test with extra nats-server-compatible `args`.
    pub fn natsd(args: &[&str]) -> Server {
        Server::start(natsd_bin(), args, Kind::UnderTest, None)
    }

    /// Starts `bin` as the server under test (a natsd under another name, say).
    pub fn with_bin(bin: PathBuf, args: &[&str]) -> Server {
        Server::start(bin, args, Kind::UnderTest, None)
    }

    /// Starts the server under test with a config file holding `conf` (passed as `-c`).
    pub fn natsd_with_config(conf: &str, args: &[&str]) -> Server {
        Server::start(natsd_bin(), args, Kind::UnderTest, Some(conf))
    }

    /// natsd with `conf`, then nats-server with the same file when it is
    /// installed: for tests that check both servers behave alike.
    pub fn natsd_and_reference(conf: &str) -> Vec<Server> {
        let mut all = vec![Server::natsd_with_config(conf, &[])];
        if let Some(reference) = Server::reference_with_config(&[], Some(conf)) {
            if reference.bin() != all[0].bin() {
                all.push(reference);
            }
        }
        all
    }

    /// natsd with JetStream on a fresh store, then nats-server likewise when it is installed;
    /// the stores live as long as the returned [`JsServers`].
    pub fn natsd_and_reference_js() -> JsServers {
        let stores = [TempDir::new(), TempDir::new()];
        let dir = |i: usize| stores[i].path().display().to_string();
        let mut servers = vec![Server::natsd(&["-js", "-sd", &dir(0)])];
        servers.extend(Server::reference(&["-js", "-sd", &dir(1)]));
        JsServers {
            servers,
            _stores: stores,
        }
    }

    /// Starts the reference nats-server, or returns `None` (after printing a note) when it is
    /// not installed.
    pub fn reference(args: &[&str]) -> Option<Server> {
        Server::reference_with_config(args, None)
    }

    /// Like [`Server::reference`], with an optional config file holding `conf`.
    pub fn reference_with_config(args: &[&str], conf: Option<&str>) -> Option<Server> {
        match reference_bin() {
            Some(bin) => Some(Server::start(bin, args, Kind::Reference, conf)),
            None => {
                eprintln!("NOTE: no reference nats-server (NATS_SERVER_BIN, ~/.cache/natsd-ref, PATH); reference comparison skipped");
                None
            }
        }
    }

    fn start(bin: PathBuf, extra: &[&str], kind: Kind, conf: Option<&str>) -> Server {
        let dir = TempDir::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(conf) = conf {
            let path = dir.path().join("server.conf");
            fs::write(&path, conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            args.push("-c".into());
            args.push(path.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server {
            bin,
            args,
            kind,
            dir,
            child: None,
            port: 0,
            restarts: 0,
        };
        server.spawn(None);
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self, port: Option<u16>) {
        let log = self.log_path();
        let pid = self.dir.path().join("server.pid");
        let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-l"])
            .arg(&log)
            .arg("-P")
            .arg(&pid)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if let Some(found) = listening_port(&text) {
                if text.contains(READY) {
                    self.port = found;
                    self.child = Some(child);
                    return;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                panic!(
                    "{} {:?} exited with {status} before it was ready\nstderr:\n{stderr}\nlog:\n{text}",
                    self.bin.display(),
                    self.args
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {:?} did not log `{LISTENING}<addr>` and `{READY}` within {START_TIMEOUT:?}\nlog:\n{text}",
                    self.bin.display(),
                    self.args
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The config file passed as `-c` (tests rewrite it before a reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.conf")
    }

    /// The `-l` log file.
    pub fn dir_log_path(&self) -> PathBuf {
        self.log_path()
    }

    /// The `-P` pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("server.pid")
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits until the log contains `pattern`; false after `timeout`.
    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_contents().contains(pattern) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the server process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Stops the server and starts it again on the same port and with the same arguments.
    pub fn restart(&mut self) {
        self.restart_after(|| {});
    }

    /// [`Server::restart`], running `between` while the server is down (to
    /// damage its store, say).
    pub fn restart_after(&mut self, between: impl FnOnce()) {
        self.stop();
        between();
        self.restarts += 1;
        let old = self.log_path();
        let kept = self
            .dir
            .path()
            .join(format!("server.log.{}", self.restarts));
        let _ = fs::rename(&old, &kept);
        let port = self.port;
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        self.spawn(Some(port));
        assert_eq!(self.port, port, "server came back on another port");
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, for raw TCP.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Which implementation this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The binary that runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The current log file's contents (since the last start).
    pub fn log_contents(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Opens a raw TCP connection and reads the server's INFO.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.addr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses the port from `Listening for client connections on <host>:<port>` in a log.
pub fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains(LISTENING))?;
    let addr = &line[line.find(LISTENING)? + LISTENING.len()..];
    addr.trim().rsplit(':').next()?.parse().ok()
}

/// The natsd binary under test (`NATSD_BIN`, else the newest workspace build).
pub fn natsd_bin() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    if let Some(bin) = std::env::var_os("NATSD_BIN") {
        // cargo runs tests in the package directory; a relative path means the workspace root.
        return workspace.join(bin);
    }
    let mut roots = vec![workspace.join("target")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        roots.push(if t.is_absolute() {
            t
        } else {
            workspace.join(t)
        });
    }
    let newest = roots
        .iter()
        .flat_map(|r| [r.join("release/natsd"), r.join("debug/natsd")])
        .filter_map(|p| {
            let modified = fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max_by_key(|(modified, _)| *modified);
    match newest {
        Some((_, p)) => p,
        None => panic!(
            "no natsd binary: build it first (`cargo build --release --bin natsd`) or set \
             NATSD_BIN; looked in {roots:?}"
        ),
    }
}

/// The nats-server release the differential tests compare with.
pub const REFERENCE_VERSION: &str = "2.15.1";

/// Where `.ci/run` installs the reference release (a Python venv holding the
/// `nats-server-bin` package): `$HOME/.cache/natsd-ref/<version>/bin/nats-server`.
pub fn pinned_reference_bin() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(
        PathBuf::from(home)
            .join(".cache/natsd-ref")
            .join(REFERENCE_VERSION)
            .join("bin/nats-server"),
    )
}

/// The reference nats-server: `NATS_SERVER_BIN`, else the pinned release `.ci/run` installs
/// ([`pinned_reference_bin`]), else `nats-server` on `PATH`, `/usr/sbin`, `/usr/local/sbin`.
pub fn reference_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    pinned_reference_bin()
        .into_iter()
        .chain(
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
                .map(|d| d.join("nats-server")),
        )
        .find(|p| p.is_file())
}

/// A blocking raw TCP client connection.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Everything received and not yet consumed by [`RawConn::read_until`].
    buf: Vec<u8>,
    closed: bool,
}

impl RawConn {
    /// Connects without reading anything.
    pub fn connect_only(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        RawConn {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Connects and reads the INFO line.
    pub fn connect(addr: &str) -> RawConn {
        let mut conn = RawConn::connect_only(addr);
        conn.read_info();
        conn
    }

    /// Reads the next line, which must be `INFO {json} \r\n`, and returns the JSON.
    pub fn read_info(&mut self) -> Value {
        let line = self
            .read_until(b"\r\n", REPLY_TIMEOUT)
            .unwrap_or_else(|got| panic!("no INFO line; got {:?}", show(&got)));
        parse_info(&line).unwrap_or_else(|| panic!("not an INFO line: {:?}", show(&line)))
    }

    /// Writes all of `bytes`; false when the peer has gone.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> bool {
        self.stream.write_all(bytes.as_ref()).is_ok()
    }

    /// True once EOF (or a reset) has been read.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads once with a deadline, appending to the buffer. False on timeout or close.
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        self.stream
            .set_read_timeout(Some(deadline - now))
            .expect("set read timeout");
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Reads until `pattern` has arrived and returns everything up to and including it.
    /// On timeout or close, returns `Err` with everything received so far (consumed).
    pub fn read_until(&mut self, pattern: &[u8], timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = find(&self.buf, pattern) {
                let rest = self.buf.split_off(at + pattern.len());
                return Ok(std::mem::replace(&mut self.buf, rest));
            }
            if !self.fill(deadline) && (self.closed || Instant::now() >= deadline) {
                return Err(std::mem::take(&mut self.buf));
            }
        }
    }

    /// Reads until at least `n` bytes are buffered and returns exactly `n` of them.
    pub fn read_exact_bytes(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            if !self.fill(deadline) && (self.closed || Instant::now() >= deadline) {
                return Err(std::mem::take(&mut self.buf));
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Reads whatever arrives until the peer closes or `timeout` passes; returns all of it.
    pub fn read_to_close(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while !self.closed && Instant::now() < deadline {
            self.fill(deadline);
        }
        std::mem::take(&mut self.buf)
    }

    /// Waits for the server to close the connection; returns what it sent meanwhile.
    /// Panics if it is still open after `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<u8> {
        let got = self.read_to_close(timeout);
        assert!(
            self.closed,
            "connection still open after {timeout:?}; received {:?}",
            show(&got)
        );
        got
    }

    /// Sends `PING` and reads through the `PONG` (within [`REPLY_TIMEOUT`]); returns what came
    /// before the PONG, through [`normalize_stream`] (so a server-initiated PING is dropped).
    /// Payloads sent before it must not contain `PONG\r\n`.
    pub fn ping_pong(&mut self) -> Vec<u8> {
        self.ping_pong_within(REPLY_TIMEOUT)
    }

    /// [`RawConn::ping_pong`] with its own timeout, for steps the server may take long over.
    pub fn ping_pong_within(&mut self, timeout: Duration) -> Vec<u8> {
        assert!(self.send(b"PING\r\n"), "write PING");
        let mut got = self
            .read_until(b"PONG\r\n", timeout)
            .unwrap_or_else(|got| panic!("no PONG within {timeout:?}; got {:?}", show(&got)));
        got.truncate(got.len() - 6);
        normalize_stream(&got)
    }

    /// Stops writing; the server sees EOF.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as text for assertion messages and transcripts.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// INFO fields whose values differ between servers, runs or implementations.
pub const INFO_VOLATILE: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "go",
    "git_commit",
    "host",
    "port",
    "client_id",
    "client_ip",
    "nonce",
    "api_lvl",
];

/// INFO fields only natsd sends; removed before comparing.
pub const INFO_NATSD_ONLY: &[&str] = &["natsd"];

/// INFO fields only the reference sends, removed before comparing: `git_commit` is its build's
/// commit (natsd has none to report) and `xkey` the server's curve key for encrypted auth
/// callout requests, which natsd does not implement.
pub const INFO_REFERENCE_ONLY: &[&str] = &["git_commit", "xkey"];

/// Parses `INFO {json} \r\n` (the trailing space and CRLF are optional).
pub fn parse_info(line: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(line).ok()?;
    let json = text.strip_prefix("INFO ")?.trim_end();
    serde_json::from_str(json).ok()
}

/// Blanks [`INFO_VOLATILE`] values (to `null`) and drops [`INFO_NATSD_ONLY`] and
/// [`INFO_REFERENCE_ONLY`] keys, keeping the key set and every other value.
pub fn normalize_info(mut info: Value) -> Value {
    if let Some(map) = info.as_object_mut() {
        for key in INFO_VOLATILE {
            if let Some(v) = map.get_mut(*key) {
                *v = Value::Null;
            }
        }
        for key in INFO_NATSD_ONLY.iter().chain(INFO_REFERENCE_ONLY) {
            map.remove(*key);
        }
    }
    info
}

/// One step of a raw-protocol transcript.
#[derive(Debug, Clone)]
pub enum Step {
    /// Make connection `n` the active one, opening it (and reading its INFO) if it is new.
    /// Connection 0 is open from the start; later ones must be opened in order.
    Conn(usize),
    /// Write these bytes on the active connection.
    Send(Vec<u8>),
    /// Read until these bytes arrive (or [`REPLY_TIMEOUT`] passes, or the peer closes).
    Expect(Vec<u8>),
    /// Read until the server closes the active connection (or [`REPLY_TIMEOUT`] passes).
    Closed,
}

/// `Step::Send` from text.
pub fn send(text: &str) -> Step {
    Step::Send(text.as_bytes().to_vec())
}

/// `Step::Expect` from text.
pub fn expect(text: &str) -> Step {
    Step::Expect(text.as_bytes().to_vec())
}

/// `PING`, then read through `PONG`: proves every earlier reply has arrived.
pub fn sync() -> [Step; 2] {
    [send("PING\r\n"), expect("PONG\r\n")]
}

/// What the server sent during a transcript, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Connection 0's INFO, through [`normalize_info`].
    pub info: Option<Value>,
    /// Everything received after each connection's INFO, through [`normalize_stream`]. When a
    /// step switches connections, a `#<n>\r\n` marker line is added first.
    pub out: String,
    /// Per connection, whether the server closed it.
    pub closed: Vec<bool>,
}

/// Connects to `addr`, reads INFO, runs `steps` and returns the normalized transcript.
pub fn run_transcript(addr: &str, steps: &[Step]) -> Transcript {
    fn open(addr: &str) -> (RawConn, Option<Value>) {
        let mut conn = RawConn::connect_only(addr);
        let first = conn.read_until(b"\r\n", REPLY_TIMEOUT).unwrap_or_default();
        let info = parse_info(&first).map(normalize_info);
        (conn, info)
    }
    let (first, info) = open(addr);
    let mut conns = vec![first];
    let mut active = 0;
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Conn(n) => {
                assert!(*n <= conns.len(), "open connection {} first", conns.len());
                if *n == conns.len() {
                    conns.push(open(addr).0);
                }
                active = *n;
                out.extend(format!("#{n}\r\n").into_bytes());
            }
            Step::Send(bytes) => {
                conns[active].send(bytes);
            }
            Step::Expect(pattern) => match conns[active].read_until(pattern, REPLY_TIMEOUT) {
                Ok(got) | Err(got) => out.extend(got),
            },
            Step::Closed => out.extend(conns[active].read_to_close(REPLY_TIMEOUT)),
        }
    }
    out.append(&mut conns[active].buf);
    Transcript {
        info,
        out: show(&normalize_stream(&out)),
        closed: conns.iter().map(RawConn::is_closed).collect(),
    }
}

/// Normalizes server output for comparison across servers and versions:
/// - every INFO line becomes `INFO <normalized json>\r\n` (keys sorted by serde_json), except
///   the INFO with `connect_info: true` that nats-server 2.12+ sends after a `protocol: 1`
///   CONNECT, which is dropped (natsd announces 2.11, which does not send it);
/// - server-initiated `PING\r\n` is dropped (its timing is not part of any transcript);
/// - in a no-responders status (`NATS/1.0 503`), the `Nats-Subject` header that 2.10+ adds
///   is dropped and the HMSG sizes are recomputed, so 2.9.10 and newer servers compare equal.
pub fn normalize_stream(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let Some(eol) = find(rest, b"\r\n") else {
            out.extend_from_slice(rest);
            break;
        };
        let line = &rest[..eol + 2];
        if line == b"PING\r\n" {
            rest = &rest[eol + 2..];
            continue;
        }
        if line.starts_with(b"INFO ") {
            match parse_info(line) {
                Some(v) if v["connect_info"] == true => {}
                Some(v) => {
                    out.extend_from_slice(b"INFO ");
                    out.extend_from_slice(normalize_info(v).to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(line),
            }
            rest = &rest[eol + 2..];
            continue;
        }
        if let Some((frame_len, normalized)) = normalize_hmsg(rest, eol) {
            out.extend_from_slice(&normalized);
            rest = &rest[frame_len..];
            continue;
        }
        let payload_len = msg_payload_len(line);
        let frame_len = (eol + 2 + payload_len.map_or(0, |n| n + 2)).min(rest.len());
        out.extend_from_slice(&rest[..frame_len]);
        rest = &rest[frame_len..];
    }
    out
}

/// For `MSG ... <n>\r\n`, the payload size.
fn msg_payload_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let args = text.strip_prefix("MSG ")?;
    args.split_whitespace().last()?.parse().ok()
}

/// For a complete HMSG frame at the start of `buf` (control line ends at `eol`), returns the
/// frame's length and its normalized bytes.
fn normalize_hmsg(buf: &[u8], eol: usize) -> Option<(usize, Vec<u8>)> {
    let text = std::str::from_utf8(&buf[..eol]).ok()?;
    let args: Vec<&str> = text.strip_prefix("HMSG ")?.split(' ').collect();
    if args.len() < 4 {
        return None;
    }
    let total: usize = args[args.len() - 1].parse().ok()?;
    let hdr_len: usize = args[args.len() - 2].parse().ok()?;
    let body_start = eol + 2;
    let frame_len = body_start + total + 2;
    if buf.len() < frame_len || hdr_len > total {
        return None;
    }
    let headers = &buf[body_start..body_start + hdr_len];
    let payload = &buf[body_start + hdr_len..body_start + total];
    let mut kept = Vec::with_capacity(headers.len());
    let no_responders = headers.starts_with(b"NATS/1.0 503");
    for line in headers.split_inclusive(|&b| b == b'\n') {
        if no_responders && line.starts_with(b"Nats-Subject:") {
            continue;
        }
        kept.extend_from_slice(line);
    }
    let head = &args[..args.len() - 2];
    let mut out = format!(
        "HMSG {} {} {}\r\n",
        head.join(" "),
        kept.len(),
        kept.len() + payload.len()
    )
    .into_bytes();
    out.extend_from_slice(&kept);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Some((frame_len, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_from_go_log_line() {
        let log = "[1] 2026/11/22 03:18:00.000001 [INF] Starting nats-server\n\
                   [1] 2026/11/22 03:18:00.000002 [INF] Listening for client connections on 127.0.0.1:41234\n\
                   [1] 2026/11/22 03:18:00.000003 [INF] Server is ready\n";
        assert_eq!(listening_port(log), Some(41234));
        assert_eq!(listening_port("nothing"), None);
    }

    #[test]
    fn no_responders_subject_header_is_normalized_away() {
        let old = b"HMSG r 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
        let new = b"HMSG r 1 33 33\r\nNATS/1.0 503\r\nNats-Subject: q\r\n\r\n\r\n";
        assert_eq!(normalize_stream(old), old.to_vec());
        assert_eq!(normalize_stream(new), old.to_vec());
    }

    #[test]
    fn msg_payload_is_not_parsed_as_ops() {
        let raw = b"MSG a 1 6\r\nPING\r\n\r\nPING\r\n+OK\r\n";
        assert_eq!(
            show(&normalize_stream(raw)),
            "MSG a 1 6\r\nPING\r\n\r\n+OK\r\n"
        );
    }

    #[test]
    fn connect_info_reply_is_dropped() {
        let raw = b"PONG\r\nINFO {\"connect_info\":true,\"remote_account\":\"A\"} \r\n+OK\r\n";
        assert_eq!(show(&normalize_stream(raw)), "PONG\r\n+OK\r\n");
    }

    #[test]
    fn info_volatile_fields_blanked() {
        let info =
            parse_info(b"INFO {\"server_id\":\"X\",\"max_payload\":5,\"natsd\":\"0.1\",\"xkey\":\"X\",\"api_lvl\":5} \r\n")
                .expect("valid INFO");
        let n = normalize_info(info);
        assert_eq!(
            n.to_string(),
            r#"{"api_lvl":null,"max_payload":5,"server_id":null}"#
        );
    }
}
