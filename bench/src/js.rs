//! JetStream publish scenarios: a fresh stream (file or memory), then
//! publishes that each wait for the server's pub ack — one at a time
//! (`js-sync`, with latency percentiles) or with a window of acks in flight
//! (`js-async`). The stream is deleted afterwards.
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use natsd_proto::{encode, ServerOp};

use crate::conn::Conn;
use crate::hist::Histogram;
use crate::report::{Latency, Rate, Report};
use crate::scenarios::{connect, payload, server_version, Ctx, Progress, Usage};

/// Bound on one API request or one pub ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads wait this long before checking the deadline again.
const READ_POLL: Duration = Duration::from_millis(100);

/// Where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Storage {
    /// File store (the server's sync policy applies: nats-server and natsd
    /// both sync on an interval by default).
    File,
    /// Memory store.
    Memory,
}

impl Storage {
    fn name(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }
}

/// A connection with a fresh stream on the run's subject.
struct Setup {
    conn: Conn,
    stream: String,
    inbox: String,
    version: String,
}

impl Setup {
    /// Connect, subscribe to the run's inbox and create the stream.
    fn new(ctx: &Ctx) -> Result<Setup, String> {
        let mut conn = connect(ctx, "bench-js", crate::conn::READ_CHUNK_BYTES)?;
        conn.reader
            .set_timeout(READ_POLL)
            .map_err(|e| e.to_string())?;
        let stream = stream_name(&ctx.subject);
        let inbox = format!("_INBOX.{stream}");
        let mut out = BytesMut::new();
        encode::sub(&mut out, format!("{inbox}.*").as_bytes(), None, b"1");
        conn.writer.write_all(&out).map_err(|e| e.to_string())?;
        let config = serde_json::json!({
            "name": stream,
            "subjects": [ctx.subject],
            "storage": ctx.storage.name(),
            "retention": "limits",
            "discard": "old",
            "num_replicas": 1,
        });
        let version = server_version(&conn);
        let mut setup = Setup {
            conn,
            stream,
            inbox,
            version,
        };
        setup
            .api(
                &format!("$JS.API.STREAM.CREATE.{}", setup.stream),
                config.to_string().as_bytes(),
            )
            .map_err(|e| format!("creating stream {}: {e}", setup.stream))?;
        Ok(setup)
    }

    fn api(&mut self, subject: &str, body: &[u8]) -> Result<(), String> {
        let reply = format!("{}.api", self.inbox);
        api(&mut self.conn, subject, &reply, body)
    }

    /// Delete the stream (a failure is recorded in `errors`).
    fn finish(mut self, errors: &mut Vec<String>) {
        let subject = format!("$JS.API.STREAM.DELETE.{}", self.stream);
        if let Err(e) = self.api(&subject, b"") {
            errors.push(format!("deleting stream {}: {e}", self.stream));
        }
    }
}

/// What publishing with acks achieved.
struct Published {
    sent: u64,
    acked: u64,
    /// When the last ack came.
    last_ack: Instant,
    /// Ack round trips, when measured.
    hist: Histogram,
}

/// Publish up to `n` messages to the run's subject with at most `window`
/// acks outstanding, until `deadline`.
fn publish_acked(
    ctx: &Ctx,
    setup: &mut Setup,
    n: u64,
    window: u64,
    deadline: Instant,
    progress: &mut Progress,
    errors: &mut Vec<String>,
) -> Published {
    let body = payload(ctx.size);
    let timed = window == 1;
    let mut p = Published {
        sent: 0,
        acked: 0,
        last_ack: Instant::now(),
        hist: Histogram::default(),
    };
    let mut sent_at = std::collections::VecDeque::new();
    let mut out = BytesMut::new();
    while p.acked < n {
        let publishing = p.sent < n && Instant::now() < deadline;
        if !publishing && p.acked == p.sent {
            break;
        }
        if publishing && p.sent - p.acked < window {
            out.clear();
            while p.sent < n && p.sent - p.acked < window {
                let reply = format!("{}.{}", setup.inbox, p.sent);
                encode::pub_msg(
                    &mut out,
                    ctx.subject.as_bytes(),
                    Some(reply.as_bytes()),
                    &body,
                );
                p.sent += 1;
                if timed {
                    sent_at.push_back(Instant::now());
                }
            }
            if let Err(e) = setup.conn.writer.write_all(&out) {
                errors.push(format!("write: {e}"));
                break;
            }
        }
        match next_acks(&mut setup.conn, errors) {
            Ok(0) => {
                if Instant::now() > p.last_ack + ACK_TIMEOUT {
                    errors.push(format!("{} pub acks missing", p.sent - p.acked));
                    break;
                }
            }
            Ok(k) => {
                p.acked += k;
                p.last_ack = Instant::now();
                for _ in 0..k {
                    if let Some(t0) = sent_at.pop_front() {
                        p.hist.record(
                            u64::try_from((p.last_ack - t0).as_nanos()).unwrap_or(u64::MAX),
                        );
                    }
                }
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        progress.tick(Instant::now(), p.sent, p.acked);
    }
    p
}

/// Run `js-sync` (`window` 1) or `js-async`.
pub fn js_pub(ctx: &Ctx, sync: bool) -> Result<Report, String> {
    let mut setup = Setup::new(ctx)?;
    let rss_before = ctx.server_pid.and_then(|p| crate::procfs::rss_kib(p).ok());
    let window = if sync { 1 } else { ctx.window.max(1) as u64 };
    let label = if sync { "js-sync" } else { "js-async" };
    let usage = Usage::start(ctx);
    let mut errors = Vec::new();
    let start = Instant::now();
    let mut progress = Progress::new(ctx.progress, label, start);
    let p = publish_acked(
        ctx,
        &mut setup,
        ctx.msgs,
        window,
        start + ctx.duration,
        &mut progress,
        &mut errors,
    );
    let elapsed = p.last_ack.saturating_duration_since(start);
    let server_usage = usage.finish(p.acked, &mut errors);
    let stored_rss_per_msg = match (rss_before, &server_usage) {
        (Some(before), Some(u)) if p.acked > 0 => {
            Some((u.rss_kib.saturating_sub(before) * 1024) as f64 / p.acked as f64)
        }
        _ => None,
    };
    let version = setup.version.clone();
    setup.finish(&mut errors);
    Ok(Report {
        scenario: label,
        server: ctx.url.to_string(),
        server_version: version,
        size: ctx.size,
        pubs: 1,
        subs: 0,
        sent: p.sent,
        expected: p.sent,
        received: p.acked,
        lost: p.sent - p.acked,
        delivered: p.acked,
        publish: Some(Rate::new(p.acked, ctx.size, elapsed)),
        subscribe: None,
        publish_spread: None,
        subscribe_spread: None,
        latency_us: sync.then(|| Latency::from_ns(&p.hist)),
        server_usage,
        idle: None,
        stored_rss_per_msg,
        errors,
    })
}

/// `js-consume`: store `--msgs` messages (not measured), then read them
/// back through a durable pull consumer, `--window` messages requested at
/// a time, acking each (`ack_policy` explicit) unless `--no-ack` (none).
pub fn js_consume(ctx: &Ctx) -> Result<Report, String> {
    let mut setup = Setup::new(ctx)?;
    let mut errors = Vec::new();
    let mut quiet = Progress::new(false, "js-consume", Instant::now());
    let stored = publish_acked(
        ctx,
        &mut setup,
        ctx.msgs,
        256,
        Instant::now() + ctx.duration,
        &mut quiet,
        &mut errors,
    );
    if stored.acked < ctx.msgs {
        setup.finish(&mut errors);
        return Err(format!(
            "stored only {} of {} messages: {}",
            stored.acked,
            ctx.msgs,
            errors.join("; ")
        ));
    }
    if ctx.push || ctx.push_ack {
        return consume_push(ctx, setup, stored.acked, errors);
    }
    let consumer = "BENCH";
    let config = serde_json::json!({
        "stream_name": setup.stream,
        "config": {
            "durable_name": consumer,
            "deliver_policy": "all",
            "ack_policy": if ctx.no_ack { "none" } else { "explicit" },
            "max_ack_pending": 20000,
        },
    });
    setup
        .api(
            &format!(
                "$JS.API.CONSUMER.DURABLE.CREATE.{}.{consumer}",
                setup.stream
            ),
            config.to_string().as_bytes(),
        )
        .map_err(|e| format!("creating consumer: {e}"))?;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{consumer}", setup.stream);
    let pull_reply = format!("{}.pull", setup.inbox);
    let batch = ctx.window.max(1) as u64;
    let request = format!("{{\"batch\":{batch},\"expires\":5000000000}}");

    let usage = Usage::start(ctx);
    let start = Instant::now();
    let deadline = start + ctx.duration;
    let mut progress = Progress::new(ctx.progress, "js-consume", start);
    let mut requested = 0u64;
    let mut received = 0u64;
    let mut last = start;
    let mut out = BytesMut::new();
    while received < ctx.msgs && Instant::now() < deadline {
        out.clear();
        // Two requests in flight: the next is asked for while one drains.
        while requested < ctx.msgs && requested - received < 2 * batch {
            encode::pub_msg(
                &mut out,
                next.as_bytes(),
                Some(pull_reply.as_bytes()),
                request.as_bytes(),
            );
            requested += batch;
        }
        let got = read_deliveries(&mut setup.conn, &mut out, ctx.no_ack);
        if !out.is_empty() {
            if let Err(e) = setup.conn.writer.write_all(&out) {
                errors.push(format!("write: {e}"));
                break;
            }
        }
        match got {
            Ok(Pulled { msgs: 0, expired }) => {
                // An expired request comes back with a 408: ask again.
                requested = requested.saturating_sub(expired * batch).max(received);
                if Instant::now() > last + ACK_TIMEOUT {
                    errors.push(format!("{} messages not delivered", ctx.msgs - received));
                    break;
                }
            }
            Ok(Pulled { msgs, expired }) => {
                received += msgs;
                requested = requested.saturating_sub(expired * batch).max(received);
                last = Instant::now();
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        progress.tick(Instant::now(), requested.min(ctx.msgs), received);
    }
    let scenario = if ctx.no_ack {
        "js-consume-noack"
    } else {
        "js-consume"
    };
    let read = Consumed {
        stored: stored.acked,
        received,
        elapsed: last.saturating_duration_since(start),
    };
    Ok(consume_report(ctx, scenario, setup, read, usage, errors))
}

/// What a consume run read.
struct Consumed {
    stored: u64,
    received: u64,
    elapsed: Duration,
}

/// A consume run's report; deletes the run's stream.
fn consume_report(
    ctx: &Ctx,
    scenario: &'static str,
    setup: Setup,
    read: Consumed,
    usage: Usage,
    mut errors: Vec<String>,
) -> Report {
    let Consumed {
        stored,
        received,
        elapsed,
    } = read;
    let server_usage = usage.finish(received, &mut errors);
    let version = setup.version.clone();
    setup.finish(&mut errors);
    Report {
        scenario,
        server: ctx.url.to_string(),
        server_version: version,
        size: ctx.size,
        pubs: 0,
        subs: 1,
        sent: stored,
        expected: stored,
        received,
        lost: stored - received.min(stored),
        delivered: received,
        publish: None,
        subscribe: Some(Rate::new(received, ctx.size, elapsed)),
        publish_spread: None,
        subscribe_spread: None,
        latency_us: None,
        server_usage,
        idle: None,
        stored_rss_per_msg: None,
        errors,
    }
}

/// `js-consume --push`: read the stored messages through an ordered push
/// consumer as the clients create one (ephemeral, `ack_policy` none, memory
/// state, flow control, idle heartbeats); `--push-ack`: through a durable
/// push consumer with explicit acks, flow control and idle heartbeats,
/// acking each message. Flow control requests are answered.
fn consume_push(
    ctx: &Ctx,
    mut setup: Setup,
    stored: u64,
    mut errors: Vec<String>,
) -> Result<Report, String> {
    // Nobody listens on the deliver subject until the consumer exists, so
    // no delivery arrives while the create request waits for its answer.
    let deliver = format!("_PUSH.{}", setup.stream);
    let (create, config) = if ctx.push_ack {
        let durable = "BENCHPUSH";
        (
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{}.{durable}", setup.stream),
            serde_json::json!({
                "stream_name": setup.stream,
                "config": {
                    "durable_name": durable,
                    "deliver_subject": deliver,
                    "deliver_policy": "all",
                    "ack_policy": "explicit",
                    "max_ack_pending": 20000,
                    "flow_control": true,
                    "idle_heartbeat": 5_000_000_000u64,
                },
            }),
        )
    } else {
        (
            format!("$JS.API.CONSUMER.CREATE.{}", setup.stream),
            serde_json::json!({
                "stream_name": setup.stream,
                "config": {
                    "deliver_subject": deliver,
                    "deliver_policy": "all",
                    "ack_policy": "none",
                    "replay_policy": "instant",
                    "flow_control": true,
                    "idle_heartbeat": 5_000_000_000u64,
                    "mem_storage": true,
                    "num_replicas": 1,
                    "inactive_threshold": 5_000_000_000u64,
                },
            }),
        )
    };
    let usage = Usage::start(ctx);
    let start = Instant::now();
    setup
        .api(&create, config.to_string().as_bytes())
        .map_err(|e| format!("creating push consumer: {e}"))?;
    let mut out = BytesMut::new();
    encode::sub(&mut out, deliver.as_bytes(), None, b"2");
    setup
        .conn
        .writer
        .write_all(&out)
        .map_err(|e| e.to_string())?;
    let deadline = start + ctx.duration;
    let mut progress = Progress::new(ctx.progress, "js-consume", start);
    let (mut received, mut last) = (0u64, start);
    while received < stored && Instant::now() < deadline {
        out.clear();
        let got = read_deliveries(&mut setup.conn, &mut out, !ctx.push_ack);
        if !out.is_empty() {
            if let Err(e) = setup.conn.writer.write_all(&out) {
                errors.push(format!("write: {e}"));
                break;
            }
        }
        match got {
            Ok(Pulled { msgs: 0, .. }) => {
                if Instant::now() > last + ACK_TIMEOUT {
                    errors.push(format!("{} messages not delivered", stored - received));
                    break;
                }
            }
            Ok(Pulled { msgs, .. }) => {
                received += msgs;
                last = Instant::now();
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        progress.tick(Instant::now(), stored, received);
    }
    let scenario = if ctx.push_ack {
        "js-consume-push-ack"
    } else {
        "js-consume-push"
    };
    let read = Consumed {
        stored,
        received,
        elapsed: last.saturating_duration_since(start),
    };
    Ok(consume_report(ctx, scenario, setup, read, usage, errors))
}

/// What one read of a pull consumer's deliveries brought.
struct Pulled {
    /// Messages delivered.
    msgs: u64,
    /// Pull requests that ended without filling (408 / 404 status).
    expired: u64,
}

/// Deliveries that arrived (buffered, or else one read); each message's
/// ack goes into `acks` unless `no_ack`.
fn read_deliveries(conn: &mut Conn, acks: &mut BytesMut, no_ack: bool) -> Result<Pulled, String> {
    let mut got = Pulled {
        msgs: 0,
        expired: 0,
    };
    for attempt in 0..2 {
        while let Some(op) = conn.reader.next_buffered().map_err(|e| e.to_string())? {
            match op {
                ServerOp::HMsg { headers, .. } if headers.starts_with(b"NATS/1.0 4") => {
                    got.expired += 1;
                }
                // Flow control asks for an empty reply; heartbeats carry none.
                ServerOp::HMsg {
                    headers,
                    reply: Some(reply),
                    ..
                } if headers.starts_with(b"NATS/1.0 1") => {
                    encode::pub_msg(acks, &reply, None, b"");
                }
                ServerOp::HMsg { headers, .. } if headers.starts_with(b"NATS/1.0 1") => {}
                ServerOp::Msg { reply, .. } | ServerOp::HMsg { reply, .. } => {
                    got.msgs += 1;
                    if let (false, Some(reply)) = (no_ack, reply) {
                        encode::pub_msg(acks, &reply, None, b"");
                    }
                }
                ServerOp::Ping => encode::pong(acks),
                ServerOp::Err(t) => return Err(format!("-ERR '{}'", String::from_utf8_lossy(&t))),
                _ => {}
            }
        }
        if got.msgs > 0 || got.expired > 0 || attempt == 1 {
            break;
        }
        conn.reader.fill().map_err(|e| format!("read: {e}"))?;
    }
    Ok(got)
}

/// Pub acks that arrived: the buffered ones, or else those of one read
/// (which waits up to the read timeout). Errors inside acks are recorded
/// in `errors` (the first few); a `-ERR` or a broken connection ends the run.
fn next_acks(conn: &mut Conn, errors: &mut Vec<String>) -> Result<u64, String> {
    let mut n = 0;
    for attempt in 0..2 {
        while let Some(op) = conn.reader.next_buffered().map_err(|e| e.to_string())? {
            match op {
                ServerOp::Msg { payload, .. } | ServerOp::HMsg { payload, .. } => {
                    if let Some(err) = ack_error(&payload) {
                        if errors.len() < 10 {
                            errors.push(format!("pub ack: {err}"));
                        }
                    }
                    n += 1;
                }
                ServerOp::Ping => conn
                    .writer
                    .write_all(b"PONG\r\n")
                    .map_err(|e| format!("write: {e}"))?,
                ServerOp::Err(t) => return Err(format!("-ERR '{}'", String::from_utf8_lossy(&t))),
                _ => {}
            }
        }
        if n > 0 || attempt == 1 {
            break;
        }
        conn.reader.fill().map_err(|e| format!("read: {e}"))?;
    }
    Ok(n)
}

/// A stream name from the subject: letters, digits, `_` and `-` only.
fn stream_name(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("BENCH_{clean}")
}

/// The `error.description` of an API answer or pub ack, if it has one.
fn ack_error(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return Some(format!("not JSON ({e})")),
    };
    let err = v.get("error")?;
    Some(
        err.get("description")
            .and_then(|d| d.as_str())
            .map_or_else(|| err.to_string(), str::to_string),
    )
}

/// One API request; `Err` with the server's error description.
fn api(conn: &mut Conn, subject: &str, reply: &str, body: &[u8]) -> Result<(), String> {
    let mut out = BytesMut::new();
    encode::pub_msg(&mut out, subject.as_bytes(), Some(reply.as_bytes()), body);
    conn.writer.write_all(&out).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        match conn.reader.next_buffered().map_err(|e| e.to_string())? {
            Some(ServerOp::Msg {
                subject, payload, ..
            })
            | Some(ServerOp::HMsg {
                subject, payload, ..
            }) if subject == reply.as_bytes() => {
                return match ack_error(&payload) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            Some(ServerOp::Ping) => conn
                .writer
                .write_all(b"PONG\r\n")
                .map_err(|e| e.to_string())?,
            Some(ServerOp::Err(t)) => return Err(String::from_utf8_lossy(&t).into_owned()),
            Some(_) => {}
            None => {
                if Instant::now() >= deadline {
                    return Err("no answer (is JetStream enabled?)".into());
                }
                conn.reader.fill().map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_valid() {
        assert_eq!(stream_name("bench.12.34"), "BENCH_bench_12_34");
        assert_eq!(stream_name("a>*b"), "BENCH_a__b");
    }

    #[test]
    fn ack_errors_are_found() {
        assert_eq!(ack_error(br#"{"stream":"S","seq":1}"#), None);
        assert_eq!(
            ack_error(br#"{"error":{"code":503,"description":"no space"}}"#).as_deref(),
            Some("no space")
        );
        assert!(ack_error(b"nope").is_some());
    }
}
