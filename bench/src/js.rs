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

/// Run `js-sync` (`window` 1) or `js-async`.
pub fn js_pub(ctx: &Ctx, sync: bool) -> Result<Report, String> {
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
    api(
        &mut conn,
        &format!("$JS.API.STREAM.CREATE.{stream}"),
        &format!("{inbox}.api"),
        config.to_string().as_bytes(),
    )
    .map_err(|e| format!("creating stream {stream}: {e}"))?;
    let version = server_version(&conn);
    let rss_before = ctx.server_pid.and_then(|p| crate::procfs::rss_kib(p).ok());

    let window = if sync { 1 } else { ctx.window.max(1) };
    let body = payload(ctx.size);
    let usage = Usage::start(ctx.server_pid);
    let mut hist = Histogram::default();
    let mut errors = Vec::new();
    let start = Instant::now();
    let deadline = start + ctx.duration;
    let mut progress = Progress::new(
        ctx.progress,
        if sync { "js-sync" } else { "js-async" },
        start,
    );
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut sent_at = std::collections::VecDeque::new();
    let mut last_ack = start;
    let window = window as u64;
    while acked < ctx.msgs {
        let now = Instant::now();
        let publishing = sent < ctx.msgs && now < deadline;
        if !publishing && acked == sent {
            break;
        }
        if publishing && sent - acked < window {
            out.clear();
            while sent < ctx.msgs && sent - acked < window {
                let reply = format!("{inbox}.{sent}");
                encode::pub_msg(
                    &mut out,
                    ctx.subject.as_bytes(),
                    Some(reply.as_bytes()),
                    &body,
                );
                sent += 1;
                if sync {
                    sent_at.push_back(Instant::now());
                }
            }
            if let Err(e) = conn.writer.write_all(&out) {
                errors.push(format!("write: {e}"));
                break;
            }
        }
        match next_acks(&mut conn, &mut errors) {
            Ok(0) => {
                if Instant::now() > last_ack + ACK_TIMEOUT {
                    errors.push(format!("{} pub acks missing", sent - acked));
                    break;
                }
            }
            Ok(n) => {
                acked += n;
                last_ack = Instant::now();
                for _ in 0..n {
                    if let Some(t0) = sent_at.pop_front() {
                        hist.record(u64::try_from((last_ack - t0).as_nanos()).unwrap_or(u64::MAX));
                    }
                }
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
        progress.tick(Instant::now(), sent, acked);
    }
    let elapsed = last_ack.saturating_duration_since(start);
    let server_usage = usage.finish(acked, &mut errors);
    let stored_rss_per_msg = match (rss_before, &server_usage) {
        (Some(before), Some(u)) if acked > 0 => {
            Some((u.rss_kib.saturating_sub(before) * 1024) as f64 / acked as f64)
        }
        _ => None,
    };
    if let Err(e) = api(
        &mut conn,
        &format!("$JS.API.STREAM.DELETE.{stream}"),
        &format!("{inbox}.api"),
        b"",
    ) {
        errors.push(format!("deleting stream {stream}: {e}"));
    }
    Ok(Report {
        scenario: if sync { "js-sync" } else { "js-async" },
        server: ctx.url.to_string(),
        server_version: version,
        size: ctx.size,
        pubs: 1,
        subs: 0,
        sent,
        expected: sent,
        received: acked,
        lost: sent - acked,
        delivered: acked,
        publish: Some(Rate::new(acked, ctx.size, elapsed)),
        subscribe: None,
        publish_spread: None,
        subscribe_spread: None,
        latency_us: sync.then(|| Latency::from_ns(&hist)),
        server_usage,
        idle: None,
        stored_rss_per_msg,
        errors,
    })
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
            Some(ServerOp::Msg { payload, .. }) | Some(ServerOp::HMsg { payload, .. }) => {
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
