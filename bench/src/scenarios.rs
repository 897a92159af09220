//! The scenarios: publisher and subscriber threads, request/reply and idle
//! connections, each producing a [`Report`].
//!
//! Threads: one per publisher (plus a reader thread for its PINGs, PONGs and
//! `-ERR`s, which sleeps in `read`), one per subscriber, and the calling
//! thread as coordinator. Clients block in socket calls, so a waiting client
//! costs no CPU the server could use.
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use natsd_proto::{encode, ServerOp};

use crate::conn::{is_timeout, wait_op, Auth, Conn, ConnError, Reader, READ_CHUNK_BYTES};
use crate::hist::Histogram;
use crate::opts::{Scenario, ServerUrl};
use crate::procfs;
use crate::report::{IdleUsage, Latency, Rate, Report, ServerUsage, Spread};

/// Publishers write this much per `write` (as `nats bench`'s buffered writer).
const PUB_BATCH_BYTES: usize = 64 * 1024;
/// How often blocked readers look at the stop flag.
const READ_POLL: Duration = Duration::from_millis(100);
/// How often the coordinator samples counters.
const COORD_TICK: Duration = Duration::from_millis(20);
/// Bound on a publisher's final PING/PONG flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Runs shorter than this print no progress line.
const PROGRESS_AFTER: Duration = Duration::from_secs(3);
/// Bound on one request's reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Read size for idle connections: they only ever see PONG.
const IDLE_CHUNK_BYTES: usize = 512;

/// A counter on its own cache line, so that threads updating neighbours do
/// not contend.
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

/// Everything a run needs, resolved from the options.
pub struct Ctx {
    pub scenario: Scenario,
    pub url: ServerUrl,
    pub auth: Auth,
    pub msgs: u64,
    pub duration: Duration,
    pub size: usize,
    pub pubs: usize,
    pub subs: usize,
    pub subject: String,
    pub conns: usize,
    pub hold: Duration,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
    /// The other servers of a cluster: their CPU is added to the server's.
    pub peer_pids: Vec<u32>,
    /// Where subscribers connect, round-robin (the publishers' server when empty).
    pub sub_urls: Vec<ServerUrl>,
    pub progress: bool,
    /// JetStream scenarios: where the stream stores.
    pub storage: crate::js::Storage,
    /// `js-async`: pub acks in flight; `js-consume`: messages per pull request.
    pub window: usize,
    /// `js-consume`: a consumer with `ack_policy` none.
    pub no_ack: bool,
    /// `js-consume`: an ordered push consumer instead of a pull consumer.
    pub push: bool,
    /// `js-consume`: a durable push consumer with explicit acks instead of a pull consumer.
    pub push_ack: bool,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report, String> {
    match ctx.scenario {
        Scenario::Reqrep => reqrep(ctx),
        Scenario::Idle => idle(ctx),
        Scenario::Queue => flow(ctx, true),
        Scenario::Pub | Scenario::Pubsub | Scenario::Fanout | Scenario::Fanin => flow(ctx, false),
        Scenario::JsSync => crate::js::js_pub(ctx, true),
        Scenario::JsAsync => crate::js::js_pub(ctx, false),
        Scenario::JsConsume => crate::js::js_consume(ctx),
    }
}

pub(crate) fn connect(ctx: &Ctx, name: &str, chunk: usize) -> Result<Conn, String> {
    connect_to(ctx, &ctx.url, name, chunk)
}

fn connect_to(ctx: &Ctx, url: &ServerUrl, name: &str, chunk: usize) -> Result<Conn, String> {
    let conn = Conn::connect(url, &ctx.auth, name, chunk)
        .map_err(|e| format!("{name}: connecting to {url}: {e}"))?;
    if ctx.size > usize::try_from(conn.info.max_payload).unwrap_or(0) {
        return Err(format!(
            "--size {} exceeds the server's max_payload {}",
            ctx.size, conn.info.max_payload
        ));
    }
    Ok(conn)
}

pub(crate) fn server_version(conn: &Conn) -> String {
    if conn.info.natsd.is_empty() {
        conn.info.version.clone()
    } else {
        format!("natsd {} ({})", conn.info.natsd, conn.info.version)
    }
}

pub(crate) fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The server's CPU time (with a cluster's other servers') at the start of
/// the measured phase.
pub(crate) struct Usage {
    pid: Option<u32>,
    peers: Vec<u32>,
    cpu_before: Result<u64, String>,
}

/// CPU time of `pid` and `peers` together.
fn cpu_us(pid: u32, peers: &[u32]) -> Result<u64, String> {
    let mut total = procfs::cpu_us(pid)?;
    for &p in peers {
        total += procfs::cpu_us(p)?;
    }
    Ok(total)
}

impl Usage {
    pub(crate) fn start(ctx: &Ctx) -> Usage {
        let pid = ctx.server_pid;
        Usage {
            pid,
            peers: ctx.peer_pids.clone(),
            cpu_before: pid.map_or(Ok(0), |p| cpu_us(p, &ctx.peer_pids)),
        }
    }

    pub(crate) fn finish(self, delivered: u64, errors: &mut Vec<String>) -> Option<ServerUsage> {
        let pid = self.pid?;
        let read = || -> Result<ServerUsage, String> {
            let cpu_us = cpu_us(pid, &self.peers)?.saturating_sub(self.cpu_before?);
            Ok(ServerUsage {
                cpu_us,
                cpu_us_per_msg: cpu_us as f64 / delivered.max(1) as f64,
                rss_kib: procfs::rss_kib(pid)?,
            })
        };
        read().map_err(|e| errors.push(e)).ok()
    }
}

/// Prints a progress line on stderr once a second, after the first 3 s.
pub(crate) struct Progress {
    enabled: bool,
    label: &'static str,
    start: Instant,
    next: Instant,
    last_count: u64,
    last_at: Instant,
}

impl Progress {
    pub(crate) fn new(enabled: bool, label: &'static str, start: Instant) -> Progress {
        Progress {
            enabled,
            label,
            start,
            next: start + PROGRESS_AFTER,
            last_count: 0,
            last_at: start,
        }
    }

    pub(crate) fn tick(&mut self, now: Instant, sent: u64, received: u64) {
        if !self.enabled || now < self.next {
            return;
        }
        let count = sent.max(received);
        let secs = (now - self.last_at).as_secs_f64().max(1e-9);
        let per_sec = (count - self.last_count.min(count)) as f64 / secs;
        self.last_count = count;
        self.last_at = now;
        eprintln!(
            "{} {:>5.1}s sent {} received {} ({:.0} msgs/s)",
            self.label,
            (now - self.start).as_secs_f64(),
            sent,
            received,
            per_sec
        );
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }
}

/// Subscribers on other servers of a cluster: wait until the publishers'
/// server routes to each of them. Each subscriber adds a probe subscription
/// after its bench subscription; interest crosses a route in order, so once
/// a probe published here reaches it, the bench subject does too. The probe
/// is then removed, and what it still brings is read before the PONG.
fn until_routed(ctx: &Ctx, subs: &mut [Conn]) -> Result<(), String> {
    const PROBE_WAIT: Duration = Duration::from_secs(15);
    let mut prober = connect(ctx, "bench-probe", 4096)?;
    let deadline = Instant::now() + PROBE_WAIT;
    for (i, sub) in subs.iter_mut().enumerate() {
        let probe = format!("_BENCH_PROBE.{}.{i}", std::process::id());
        let mut out = BytesMut::new();
        encode::sub(&mut out, probe.as_bytes(), None, b"2");
        sub.writer
            .write_all(&out)
            .map_err(|e| format!("sub {i}: {e}"))?;
        sub.flush(Duration::from_secs(10))
            .map_err(|e| format!("sub {i}: {e}"))?;
        let mut msg = BytesMut::new();
        encode::pub_msg(&mut msg, probe.as_bytes(), None, b"probe");
        loop {
            prober
                .writer
                .write_all(&msg)
                .map_err(|e| format!("probe: {e}"))?;
            let got = wait_op(&mut sub.reader, Instant::now() + READ_POLL, "probe");
            if matches!(got, Ok(ServerOp::Msg { .. })) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "sub {i}: no route carried messages within {PROBE_WAIT:?}"
                ));
            }
        }
        sub.writer
            .write_all(b"UNSUB 2\r\n")
            .map_err(|e| format!("sub {i}: {e}"))?;
        sub.flush(Duration::from_secs(10))
            .map_err(|e| format!("sub {i}: {e}"))?;
    }
    Ok(())
}

struct PubResult {
    sent: u64,
    elapsed: Duration,
    start: Instant,
    end: Instant,
    errors: Vec<String>,
}

struct SubResult {
    received: u64,
    /// When the read that brought the last message returned.
    last: Option<Instant>,
    error: Option<String>,
}

/// Publishers and subscribers on one subject: pub, pubsub, fanout, fanin and
/// (with `queue`) one queue group.
fn flow(ctx: &Ctx, queue: bool) -> Result<Report, String> {
    if ctx.pubs == 0 {
        return Err("need at least one publisher".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::with_capacity(ctx.subs);
    let mut version = String::new();
    for i in 0..ctx.subs {
        let name = format!("bench-sub-{i}");
        let mut conn = match ctx.sub_urls.get(i % ctx.sub_urls.len().max(1)) {
            Some(url) => connect_to(ctx, url, &name, READ_CHUNK_BYTES)?,
            None => connect(ctx, &name, READ_CHUNK_BYTES)?,
        };
        let mut out = BytesMut::new();
        let group = queue.then_some(&b"bench-q"[..]);
        encode::sub(&mut out, ctx.subject.as_bytes(), group, b"1");
        conn.writer
            .write_all(&out)
            .and_then(|()| conn.reader.set_timeout(READ_POLL))
            .map_err(|e| format!("sub {i}: {e}"))?;
        // PING after SUB: once PONG is back, the subscription is registered.
        conn.flush(Duration::from_secs(10))
            .map_err(|e| format!("sub {i}: {e}"))?;
        version = server_version(&conn);
        subs.push(conn);
    }
    let mut pubs = Vec::with_capacity(ctx.pubs);
    for i in 0..ctx.pubs {
        let conn = connect(ctx, &format!("bench-pub-{i}"), 4096)?;
        version = server_version(&conn);
        pubs.push(conn);
    }
    if !ctx.sub_urls.is_empty() {
        until_routed(ctx, &mut subs)?;
    }

    let usage = Usage::start(ctx);
    let start = Instant::now();
    let deadline = start + ctx.duration;
    let sub_counters: Vec<Arc<Counter>> = (0..ctx.subs).map(|_| Arc::default()).collect();
    let pub_counters: Vec<Arc<Counter>> = (0..ctx.pubs).map(|_| Arc::default()).collect();
    let sub_threads: Vec<JoinHandle<SubResult>> = subs
        .into_iter()
        .zip(&sub_counters)
        .map(|(conn, counter)| {
            let (counter, stop) = (counter.clone(), stop.clone());
            thread::spawn(move || run_sub(conn, &counter, &stop))
        })
        .collect();
    let per_pub = ctx.msgs / ctx.pubs as u64;
    let extra = ctx.msgs % ctx.pubs as u64;
    let body = payload(ctx.size);
    let pub_threads: Vec<JoinHandle<PubResult>> = pubs
        .into_iter()
        .zip(&pub_counters)
        .enumerate()
        .map(|(i, (conn, counter))| {
            let count = per_pub.saturating_add(u64::from((i as u64) < extra));
            let (counter, stop) = (counter.clone(), stop.clone());
            let mut batch = BytesMut::new();
            encode::pub_msg(&mut batch, ctx.subject.as_bytes(), None, &body);
            thread::spawn(move || run_pub(conn, &batch, count, deadline, &counter, &stop))
        })
        .collect();

    let mut progress = Progress::new(ctx.progress, ctx.scenario.name(), start);
    let sum = |cs: &[Arc<Counter>]| cs.iter().map(|c| c.0.load(Ordering::Relaxed)).sum::<u64>();
    let fan = if queue { 1 } else { ctx.subs as u64 };
    let mut expected: Option<u64> = None;
    let mut last_received = 0;
    let mut last_progress = Instant::now();
    loop {
        thread::sleep(COORD_TICK);
        let now = Instant::now();
        let (sent, received) = (sum(&pub_counters), sum(&sub_counters));
        progress.tick(now, sent, received);
        if received != last_received {
            last_received = received;
            last_progress = now;
        }
        if expected.is_none() && pub_threads.iter().all(|t| t.is_finished()) {
            expected = Some(sent * fan);
            last_progress = now;
        }
        // Every subscriber's connection ended: nothing more can arrive, and
        // the publishers are told to stop.
        if ctx.subs > 0 && sub_threads.iter().all(|t| t.is_finished()) {
            break;
        }
        let Some(exp) = expected else { continue };
        if received >= exp || now - last_progress >= ctx.drain_timeout {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);

    let mut errors = Vec::new();
    let mut pub_results = Vec::new();
    for (i, t) in pub_threads.into_iter().enumerate() {
        match t.join() {
            Ok(r) => {
                errors.extend(r.errors.iter().map(|e| format!("pub {i}: {e}")));
                pub_results.push(r);
            }
            Err(_) => errors.push(format!("pub {i}: thread panicked")),
        }
    }
    let mut sub_results = Vec::new();
    for (i, t) in sub_threads.into_iter().enumerate() {
        match t.join() {
            Ok(r) => {
                if let Some(e) = &r.error {
                    errors.push(format!("sub {i}: {e} (slow consumer?)"));
                }
                sub_results.push(r);
            }
            Err(_) => errors.push(format!("sub {i}: thread panicked")),
        }
    }
    let sent: u64 = pub_results.iter().map(|r| r.sent).sum();
    let received: u64 = sub_results.iter().map(|r| r.received).sum();
    let expected = sent * fan;
    if received < expected {
        errors.push(format!(
            "{} messages not received (no progress for {:.1} s, or subscribers gone)",
            expected - received,
            ctx.drain_timeout.as_secs_f64()
        ));
    }
    let delivered = if ctx.subs == 0 { sent } else { received };
    let server_usage = usage.finish(delivered, &mut errors);

    let publish = match (
        pub_results.iter().map(|r| r.start).min(),
        pub_results.iter().map(|r| r.end).max(),
    ) {
        (Some(a), Some(b)) => Some(Rate::new(sent, ctx.size, b - a)),
        _ => None,
    };
    let pub_rates: Vec<Rate> = pub_results
        .iter()
        .map(|r| Rate::new(r.sent, ctx.size, r.elapsed))
        .collect();
    // Subscribers are timed from the start of publishing to their last
    // message: robust when a short run arrives in a single read.
    let window = |last: Option<Instant>| last.map_or(Duration::ZERO, |l| l - start);
    let subscribe = (ctx.subs > 0).then(|| {
        let last = sub_results.iter().filter_map(|r| r.last).max();
        Rate::new(received, ctx.size, window(last))
    });
    let sub_rates: Vec<Rate> = sub_results
        .iter()
        .map(|r| Rate::new(r.received, ctx.size, window(r.last)))
        .collect();
    Ok(Report {
        scenario: ctx.scenario.name(),
        server: ctx.url.to_string(),
        server_version: version,
        size: ctx.size,
        pubs: ctx.pubs,
        subs: ctx.subs,
        sent,
        expected,
        received,
        lost: expected.saturating_sub(received),
        delivered,
        publish,
        subscribe,
        publish_spread: Spread::of(&pub_rates),
        subscribe_spread: Spread::of(&sub_rates),
        latency_us: None,
        server_usage,
        idle: None,
        stored_rss_per_msg: None,
        errors,
    })
}

/// Writes `count` copies of the encoded PUB in 64 KiB writes until done or
/// `deadline`, then flushes with PING/PONG. A reader thread answers the
/// server's PINGs (through `ping_due`) and collects `-ERR`s.
fn run_pub(
    conn: Conn,
    one: &[u8],
    count: u64,
    deadline: Instant,
    counter: &Counter,
    stop: &AtomicBool,
) -> PubResult {
    let Conn {
        reader, mut writer, ..
    } = conn;
    let per_batch = (PUB_BATCH_BYTES / one.len()).max(1);
    let batch = one.repeat(per_batch);
    let ping_due = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (pong_tx, pong_rx) = mpsc::channel();
    let reader_thread = {
        let (ping_due, done) = (ping_due.clone(), done.clone());
        thread::spawn(move || pub_reader(reader, &ping_due, &done, &pong_tx))
    };
    let mut errors = Vec::new();
    let start = Instant::now();
    // A server that stops reading must not hold the run past its bound.
    let give_up = || Instant::now() >= deadline || stop.load(Ordering::Relaxed);
    let mut sent = 0u64;
    let mut clean = writer.set_write_timeout(Some(READ_POLL)).is_ok();
    while clean && sent < count && !give_up() {
        let n = (count - sent).min(per_batch as u64) as usize;
        let bytes = &batch[..n * one.len()];
        match write_bounded(&mut writer, bytes, give_up) {
            Ok(w) => {
                sent += (w / one.len()) as u64;
                if w < bytes.len() {
                    errors.push("stopped mid-write at the time bound: server not reading".into());
                    clean = false;
                }
            }
            Err(e) => {
                errors.push(format!("write: {e}"));
                clean = false;
            }
        }
        counter.0.store(sent, Ordering::Relaxed);
        if clean && ping_due.swap(false, Ordering::Relaxed) {
            match write_bounded(&mut writer, b"PONG\r\n", give_up) {
                Ok(6) => {}
                Ok(_) => clean = false,
                Err(e) => {
                    errors.push(format!("write: {e}"));
                    clean = false;
                }
            }
        }
    }
    if clean {
        let flush_by = Instant::now() + FLUSH_TIMEOUT;
        let flushed = write_bounded(&mut writer, b"PING\r\n", || Instant::now() >= flush_by)
            .map_err(|e| e.to_string())
            .and_then(|w| match w {
                6 => Ok(()),
                _ => Err("could not write the final flush PING".to_string()),
            })
            .and_then(|_| {
                pong_rx
                    .recv_timeout(FLUSH_TIMEOUT)
                    .map_err(|_| "no PONG to the final flush".to_string())
            });
        if let Err(e) = flushed {
            errors.push(e);
        }
    }
    let end = Instant::now();
    done.store(true, Ordering::Relaxed);
    match reader_thread.join() {
        Ok(mut e) => errors.append(&mut e),
        Err(_) => errors.push("reader thread panicked".into()),
    }
    PubResult {
        sent,
        elapsed: end - start,
        start,
        end,
        errors,
    }
}

/// Writes `buf` through write timeouts until done or `give_up()`; returns
/// the bytes written (fewer than `buf.len()` only when it gave up).
fn write_bounded(
    w: &mut TcpStream,
    buf: &[u8],
    give_up: impl Fn() -> bool,
) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match w.write(&buf[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => {
                if give_up() {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn pub_reader(
    mut reader: Reader,
    ping_due: &AtomicBool,
    done: &AtomicBool,
    pong_tx: &mpsc::Sender<()>,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = reader.set_timeout(READ_POLL) {
        errors.push(e.to_string());
        return errors;
    }
    loop {
        loop {
            match reader.next_buffered() {
                Ok(Some(ServerOp::Ping)) => ping_due.store(true, Ordering::Relaxed),
                Ok(Some(ServerOp::Pong)) => {
                    // The publisher may have given up waiting; nothing to do then.
                    let _ = pong_tx.send(());
                }
                Ok(Some(ServerOp::Err(t))) => {
                    errors.push(format!("-ERR '{}'", String::from_utf8_lossy(&t)))
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    errors.push(e.to_string());
                    return errors;
                }
            }
        }
        if done.load(Ordering::Relaxed) {
            return errors;
        }
        if let Err(e) = reader.fill() {
            if !done.load(Ordering::Relaxed) {
                errors.push(e.to_string());
            }
            return errors;
        }
    }
}

/// Counts messages until told to stop or the connection ends.
fn run_sub(conn: Conn, counter: &Counter, stop: &AtomicBool) -> SubResult {
    let Conn {
        mut reader,
        mut writer,
        ..
    } = conn;
    let mut r = SubResult {
        received: 0,
        last: None,
        error: None,
    };
    let mut server_errors = Vec::new();
    let mut read_at = Instant::now();
    loop {
        let before = r.received;
        loop {
            match reader.next_buffered() {
                Ok(Some(ServerOp::Msg { .. } | ServerOp::HMsg { .. })) => r.received += 1,
                Ok(Some(ServerOp::Ping)) => {
                    if let Err(e) = writer.write_all(b"PONG\r\n") {
                        r.error = Some(ConnError::from(e).to_string());
                        return r;
                    }
                }
                Ok(Some(ServerOp::Err(t))) => {
                    server_errors.push(format!("-ERR '{}'", String::from_utf8_lossy(&t)))
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    r.error = Some(e.to_string());
                    return r;
                }
            }
        }
        if r.received != before {
            r.last = Some(read_at);
            counter.0.store(r.received, Ordering::Relaxed);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match reader.fill() {
            Ok(true) => read_at = Instant::now(),
            Ok(false) => {}
            Err(e) => {
                server_errors.push(e.to_string());
                break;
            }
        }
    }
    if !server_errors.is_empty() {
        r.error = Some(server_errors.join("; "));
    }
    r
}

/// Sequential request/reply round trips against one echoing replier.
fn reqrep(ctx: &Ctx) -> Result<Report, String> {
    let mut replier = connect(ctx, "bench-replier", READ_CHUNK_BYTES)?;
    let mut requester = connect(ctx, "bench-requester", READ_CHUNK_BYTES)?;
    let inbox = format!("_INBOX.{}", ctx.subject);
    let mut out = BytesMut::new();
    encode::sub(&mut out, ctx.subject.as_bytes(), None, b"1");
    replier
        .writer
        .write_all(&out)
        .map_err(|e| format!("replier: {e}"))?;
    replier
        .flush(Duration::from_secs(10))
        .map_err(|e| format!("replier: {e}"))?;
    out.clear();
    encode::sub(&mut out, inbox.as_bytes(), None, b"1");
    requester
        .writer
        .write_all(&out)
        .map_err(|e| format!("requester: {e}"))?;
    requester
        .flush(Duration::from_secs(10))
        .map_err(|e| format!("requester: {e}"))?;
    let version = server_version(&requester);
    replier
        .reader
        .set_timeout(READ_POLL)
        .map_err(|e| e.to_string())?;
    requester
        .reader
        .set_timeout(READ_POLL)
        .map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let replier_thread = {
        let stop = stop.clone();
        thread::spawn(move || run_replier(replier, &stop))
    };
    let mut request = BytesMut::new();
    encode::pub_msg(
        &mut request,
        ctx.subject.as_bytes(),
        Some(inbox.as_bytes()),
        &payload(ctx.size),
    );
    let usage = Usage::start(ctx);
    let mut hist = Histogram::default();
    let mut errors = Vec::new();
    let start = Instant::now();
    let deadline = start + ctx.duration;
    let mut progress = Progress::new(ctx.progress, "reqrep", start);
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut now = start;
    while sent < ctx.msgs && now < deadline {
        let t0 = Instant::now();
        if let Err(e) = requester.writer.write_all(&request) {
            errors.push(format!("requester write: {e}"));
            break;
        }
        sent += 1;
        match await_reply(&mut requester, t0 + REQUEST_TIMEOUT) {
            Ok(()) => {
                now = Instant::now();
                received += 1;
                hist.record(u64::try_from((now - t0).as_nanos()).unwrap_or(u64::MAX));
            }
            Err(e) => {
                errors.push(format!("requester: {e}"));
                break;
            }
        }
        progress.tick(now, sent, received);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    match replier_thread.join() {
        Ok(Some(e)) => errors.push(format!("replier: {e}")),
        Ok(None) => {}
        Err(_) => errors.push("replier: thread panicked".into()),
    }
    // Each round trip is two deliveries: the request to the replier and the
    // reply to the requester.
    let delivered = 2 * received;
    let server_usage = usage.finish(delivered, &mut errors);
    Ok(Report {
        scenario: "reqrep",
        server: ctx.url.to_string(),
        server_version: version,
        size: ctx.size,
        pubs: 1,
        subs: 1,
        sent,
        expected: sent,
        received,
        lost: sent - received,
        delivered,
        publish: Some(Rate::new(sent, ctx.size, elapsed)),
        subscribe: Some(Rate::new(received, ctx.size, elapsed)),
        publish_spread: None,
        subscribe_spread: None,
        latency_us: Some(Latency::from_ns(&hist)),
        server_usage,
        idle: None,
        stored_rss_per_msg: None,
        errors,
    })
}

/// Reads until a MSG arrives (the reply), answering PINGs.
fn await_reply(conn: &mut Conn, deadline: Instant) -> Result<(), ConnError> {
    loop {
        while let Some(op) = conn.reader.next_buffered()? {
            match op {
                ServerOp::Msg { .. } | ServerOp::HMsg { .. } => return Ok(()),
                ServerOp::Ping => conn.writer.write_all(b"PONG\r\n")?,
                ServerOp::Err(t) => {
                    return Err(ConnError::Server(String::from_utf8_lossy(&t).into()))
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(ConnError::Timeout("a reply"));
        }
        conn.reader.fill()?;
    }
}

/// Echoes every request's payload to its reply subject, one write per read.
fn run_replier(conn: Conn, stop: &AtomicBool) -> Option<String> {
    let Conn {
        mut reader,
        mut writer,
        ..
    } = conn;
    let mut out = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match reader.next_buffered() {
                Ok(Some(ServerOp::Msg {
                    reply: Some(reply),
                    payload,
                    ..
                })) => encode::pub_msg(&mut out, &reply, None, &payload),
                Ok(Some(ServerOp::Ping)) => encode::pong(&mut out),
                Ok(Some(ServerOp::Err(t))) => {
                    return Some(format!("-ERR '{}'", String::from_utf8_lossy(&t)))
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Some(e.to_string()),
            }
        }
        if !out.is_empty() {
            if let Err(e) = writer.write_all(&out) {
                return Some(e.to_string());
            }
            out.clear();
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(e) = reader.fill() {
            return Some(e.to_string());
        }
    }
}

/// Opens `conns` connections (CONNECT + PING/PONG each), holds them, and
/// reports the server's RSS growth per connection.
fn idle(ctx: &Ctx) -> Result<Report, String> {
    let mut errors = Vec::new();
    let rss_before = match ctx.server_pid.map(procfs::rss_kib).transpose() {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let start = Instant::now();
    let mut held = Vec::with_capacity(ctx.conns);
    let mut version = String::new();
    for i in 0..ctx.conns {
        match connect(ctx, &format!("bench-idle-{i}"), IDLE_CHUNK_BYTES) {
            Ok(c) => {
                version = server_version(&c);
                held.push(c);
            }
            Err(e) => {
                errors.push(format!("after {i} connections: {e}"));
                break;
            }
        }
    }
    let connect_elapsed = start.elapsed();
    thread::sleep(ctx.hold);
    let mut closed = 0;
    for c in &mut held {
        // Still connected? A PING/PONG proves the server kept each one.
        if c.flush(Duration::from_secs(5)).is_err() {
            closed += 1;
        }
    }
    if closed > 0 {
        errors.push(format!(
            "{closed} idle connections were closed by the server"
        ));
    }
    let rss_after = match ctx.server_pid.map(procfs::rss_kib).transpose() {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let n = held.len();
    drop(held);
    let idle = Some(IdleUsage {
        conns: n,
        connect_secs: connect_elapsed.as_secs_f64(),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_conn_kib: rss_before
            .zip(rss_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / n.max(1) as f64),
    });
    Ok(Report {
        scenario: "idle",
        server: ctx.url.to_string(),
        server_version: version,
        size: 0,
        pubs: 0,
        subs: 0,
        sent: 0,
        expected: 0,
        received: 0,
        lost: 0,
        delivered: 0,
        publish: None,
        subscribe: None,
        publish_spread: None,
        subscribe_spread: None,
        latency_us: None,
        server_usage: None,
        idle,
        stored_rss_per_msg: None,
        errors,
    })
}
