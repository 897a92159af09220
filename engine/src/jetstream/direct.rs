//! `$JS.API.DIRECT.GET.<stream>[.<subject>]` (ADR-31): a stream's messages
//! read without the API's JSON envelope, as nats-server 2.11+ serves them.
//!
//! - One message: `seq`, `last_by_subj`, `next_by_subj` (from `seq`),
//!   `start_time`, or the subject after the stream name. The reply is the
//!   message itself with `Nats-Stream`, `Nats-Subject`, `Nats-Sequence` and
//!   `Nats-Time-Stamp` added to its headers.
//! - A batch (`batch` not 0, with `seq`, `start_time` and/or `next_by_subj`,
//!   bounded by `max_bytes` or else the server's `max_pending`): one reply
//!   per message, which also carries `Nats-Num-Pending` (matching messages
//!   left after it) and `Nats-Last-Sequence` (the previous reply's sequence,
//!   0 first), then `NATS/1.0 204 EOB` with the same two headers.
//! - Multi-last (`multi_last` filters, up to `up_to_seq` or `up_to_time`,
//!   from `seq`, capped by `batch` and the byte bound): the last message of
//!   each matching subject in sequence order, with the batch headers, then
//!   an EOB that adds `Nats-UpTo-Sequence`. Past 1024 subjects the answer
//!   is `413 Too Many Results`.
//!
//! Failures are status-only replies: `408` for an empty, malformed or
//! contradictory request, `404 Message Not Found` (`404 No Results` for
//! multi-last) when nothing matches, `503` without a responder.
use natsd_storage::{Store, StoredMsg};

use super::api::{self, MsgGetRequest};
use super::JetStream;
use crate::internal::Internal;

/// nats-server's cap on the subjects of one `multi_last` answer.
const MULTI_LAST_MAX: usize = 1024;

/// Where the messages of an answer go: (headers, payload).
type Sink<'a> = dyn FnMut(Option<&[u8]>, &[u8]) + 'a;

fn status(line: &str) -> Vec<u8> {
    format!("NATS/1.0 {line}\r\n\r\n").into_bytes()
}

/// Answers with a status only; it is always a failure.
fn fail(send: &mut Sink<'_>, line: &str) -> bool {
    send(Some(&status(line)), b"");
    true
}

impl JetStream {
    /// Answers `$JS.API.DIRECT.GET.<rest>` on `reply`, one publish per
    /// message. Returns whether the answer was a failure status.
    pub(super) fn direct_get(
        &self,
        now: std::time::Instant,
        net: &mut Internal,
        acc: usize,
        rest: &str,
        body: &[u8],
        reply: &[u8],
    ) -> bool {
        let a = &self.accounts[acc];
        let mut send = |hdr: Option<&[u8]>, payload: &[u8]| {
            net.publish(now, &a.account, reply, None, hdr, payload);
        };
        let (name, key) = match rest.split_once('.') {
            Some((name, key)) => (name, Some(key)),
            None => (rest, None),
        };
        // Without JetStream or `allow_direct` nobody serves the subject.
        let stream = a
            .streams
            .get(name)
            .filter(|s| a.enabled && s.cfg.allow_direct);
        let Some(s) = stream else {
            return fail(&mut send, "503");
        };
        let req = match parse(key, body) {
            Ok(req) => req,
            Err(line) => return fail(&mut send, line),
        };
        let max_pending = i64::try_from(self.server.options().max_pending).unwrap_or(i64::MAX);
        answer(s.store(), &s.cfg.name, &req, max_pending, &mut send)
    }
}

/// The request of a direct get, checked as nats-server checks it; the
/// error is the status line of the refusal. `key` is the subject appended
/// to the stream name, which stands for `last_by_subj` and allows no other
/// selector.
fn parse(key: Option<&str>, body: &[u8]) -> Result<MsgGetRequest, &'static str> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    let read = |body| api::parse_body::<MsgGetRequest>(body).map_err(|_| "408 Malformed Request");
    if let Some(key) = key {
        let mut req = if empty {
            MsgGetRequest::default()
        } else {
            read(body)?
        };
        if key.is_empty()
            || !req.last_by_subj.is_empty()
            || !req.next_by_subj.is_empty()
            || !req.multi_last.is_empty()
            || req.seq != 0
            || req.batch != 0
            || req.start_time.is_some()
            || req.up_to_seq != 0
            || req.up_to_time.is_some()
        {
            return Err("408 Bad Request");
        }
        req.last_by_subj = key.to_string();
        return Ok(req);
    }
    if empty {
        return Err("408 Empty Request");
    }
    let req = read(body)?;
    let seq = req.seq > 0;
    let last = !req.last_by_subj.is_empty();
    let next = !req.next_by_subj.is_empty();
    let multi = !req.multi_last.is_empty();
    let start = req.start_time.is_some();
    if !seq && !last && !next && !multi && !start {
        return Err("408 Empty Request");
    }
    // A batch never goes with `last_by_subj`.
    if (seq && (last || start))
        || (last && (start || next || multi || req.batch > 0))
        || (next && multi)
        || (req.up_to_seq > 0 && req.up_to_time.is_some())
    {
        return Err("408 Bad Request");
    }
    Ok(req)
}

/// The reply headers for `m`: its own (none with `no_hdr`) plus the direct
/// get ones, and with `batch` (pending, previous sequence) the batch ones.
fn headers(m: &StoredMsg, stream: &str, batch: Option<(u64, u64)>) -> Vec<u8> {
    let mut h = match m.hdr.strip_suffix(b"\r\n") {
        Some(open) if !open.is_empty() => open.to_vec(),
        _ => b"NATS/1.0\r\n".to_vec(),
    };
    let mut add = |k: &str, v: &str| h.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    add("Nats-Stream", stream);
    add("Nats-Subject", &m.subject);
    add("Nats-Sequence", &m.seq.to_string());
    add("Nats-Time-Stamp", &api::time_json(m.ts));
    if let Some((pending, previous)) = batch {
        add("Nats-Num-Pending", &pending.to_string());
        add("Nats-Last-Sequence", &previous.to_string());
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// What a message counts against `max_bytes`: subject, stored headers and
/// payload.
fn size(m: &StoredMsg) -> i64 {
    i64::try_from(m.subject.len() + m.hdr.len() + m.msg.len()).unwrap_or(i64::MAX)
}

/// Serves a checked request from `store` of stream `stream`, handing each
/// reply to `send`. `max_pending` bounds a batch without `max_bytes`.
/// Returns whether the answer was a failure status.
fn answer(
    store: &dyn Store,
    stream: &str,
    req: &MsgGetRequest,
    max_pending: i64,
    send: &mut Sink<'_>,
) -> bool {
    let max_bytes = if req.max_bytes == 0 {
        max_pending
    } else {
        req.max_bytes
    };
    if !req.multi_last.is_empty() {
        return multi_last(store, stream, req, max_bytes, send);
    }
    let mut seq = req.start_time.map_or(req.seq, |t| store.seq_from_time(t));
    let filter = req.next_by_subj.as_str();
    let is_batch = req.batch != 0;
    // Without a batch one message; a negative batch sends none, only the EOB.
    let count = if is_batch { req.batch.max(0) } else { 1 };
    let mut pending = if is_batch {
        store.num_pending(seq, filter, false)
    } else {
        0
    };
    let (mut previous, mut sent_bytes) = (0, 0);
    for i in 0..count {
        let loaded = if seq > 0 && filter.is_empty() {
            if is_batch {
                // Steps over deleted sequences.
                store.load_next_msg("", seq)
            } else {
                store.load_msg(seq)
            }
        } else if !filter.is_empty() {
            store.load_next_msg(filter, seq)
        } else {
            store.load_last_msg(&req.last_by_subj)
        };
        let m = match loaded {
            Ok(m) => m,
            // A batch that ran out after its first message still ends with EOB.
            Err(_) if i > 0 => break,
            Err(_) => return fail(send, "404 Message Not Found"),
        };
        seq = m.seq + 1;
        // nats-server counts the pending messages down only for replies
        // that carry headers: with `no_hdr` the EOB repeats the first count.
        let hdr = (!req.no_hdr).then(|| {
            let batch = is_batch.then(|| {
                pending = pending.saturating_sub(1);
                (pending, previous)
            });
            headers(&m, stream, batch)
        });
        previous = m.seq;
        send(hdr.as_deref(), &m.msg);
        sent_bytes += size(&m);
        if sent_bytes >= max_bytes {
            break;
        }
    }
    if is_batch {
        let eob = format!(
            "NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {previous}\r\n\r\n"
        );
        send(Some(eob.as_bytes()), b"");
    }
    false
}

/// The `multi_last` answer: each matching subject's last message up to the
/// ceiling, ascending, from `seq` on. nats-server always adds the headers
/// here, whatever `no_hdr` says.
fn multi_last(
    store: &dyn Store,
    stream: &str,
    req: &MsgGetRequest,
    max_bytes: i64,
    send: &mut Sink<'_>,
) -> bool {
    let state = store.state();
    let mut up_to = req.up_to_seq;
    if let Some(t) = req.up_to_time {
        // The ceiling is the last message before the time.
        let first_after = store.seq_from_time(t);
        if first_after <= state.first_seq {
            return fail(send, "404 No Results");
        }
        up_to = first_after - 1;
    }
    if up_to == 0 {
        up_to = state.last_seq;
    }
    let Some(seqs) = store.multi_last_seqs(&req.multi_last, up_to, MULTI_LAST_MAX) else {
        return fail(send, "413 Too Many Results");
    };
    if seqs.is_empty() {
        return fail(send, "404 No Results");
    }
    // Counted over every result, those below `seq` included.
    let mut pending = seqs.len() as u64;
    let (mut previous, mut sent_bytes, mut sent) = (0, 0, 0);
    for seq in seqs {
        pending -= 1;
        if seq < req.seq {
            continue;
        }
        let Ok(m) = store.load_msg(seq) else {
            return fail(send, "404 Message Not Found");
        };
        send(
            Some(&headers(&m, stream, Some((pending, previous)))),
            &m.msg,
        );
        previous = m.seq;
        sent_bytes += size(&m);
        sent += 1;
        if sent_bytes >= max_bytes || (req.batch > 0 && sent >= req.batch) {
            break;
        }
    }
    let eob = format!(
        "NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {previous}\r\nNats-UpTo-Sequence: {up_to}\r\n\r\n"
    );
    send(Some(eob.as_bytes()), b"");
    false
}

#[cfg(test)]
mod tests {
    use natsd_storage::{MemStore, StoreLimits};

    use super::*;

    /// ns of `2024-01-01T00:00:0<i>Z`.
    const T0: i64 = 1_704_067_200_000_000_000;
    const SEC: i64 = 1_000_000_000;

    /// A store holding `subjects` in order, message `i` (from 0) stored at
    /// `T0 + i` seconds with payload `m<seq>`.
    fn store(subjects: &[&str]) -> MemStore {
        let mut s = MemStore::new(StoreLimits::default());
        for (i, subj) in subjects.iter().enumerate() {
            let payload = format!("m{}", i + 1);
            s.store_msg(subj, b"", payload.as_bytes(), T0 + i as i64 * SEC)
                .unwrap();
        }
        s
    }

    fn req(json: &str) -> MsgGetRequest {
        parse(None, json.as_bytes()).unwrap()
    }

    /// The replies as (header block, payload) text, and the failure flag.
    fn run(s: &MemStore, r: &MsgGetRequest, max_pending: i64) -> (Vec<(String, String)>, bool) {
        let mut out = Vec::new();
        let failed = answer(s, "S", r, max_pending, &mut |h, p| {
            out.push((
                String::from_utf8_lossy(h.unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(p).into_owned(),
            ));
        });
        (out, failed)
    }

    fn time(i: i64) -> String {
        api::time_json(T0 + i * SEC)
    }

    fn batch_hdr(subj: &str, seq: u64, pending: u64, last: u64) -> String {
        format!(
            "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: {subj}\r\nNats-Sequence: {seq}\r\n\
             Nats-Time-Stamp: {}\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n\r\n",
            time(seq as i64 - 1)
        )
    }

    fn eob(pending: u64, last: u64) -> (String, String) {
        (
            format!("NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n\r\n"),
            String::new(),
        )
    }

    /// nats-server `processDirectGetRequest` and
    /// `processDirectGetLastBySubjectRequest`: which requests are refused
    /// with which 408.
    #[test]
    fn refusals_as_nats_server() {
        for (key, body, want) in [
            (None, "", "408 Empty Request"),
            (None, "{}", "408 Empty Request"),
            (None, r#"{"batch":5}"#, "408 Empty Request"),
            (None, "{", "408 Malformed Request"),
            (None, r#"{"seq":-1}"#, "408 Malformed Request"),
            (
                None,
                r#"{"start_time":"yesterday"}"#,
                "408 Malformed Request",
            ),
            (None, r#"{"seq":1,"last_by_subj":"a"}"#, "408 Bad Request"),
            (
                None,
                r#"{"seq":1,"start_time":"2024-01-01T00:00:00Z"}"#,
                "408 Bad Request",
            ),
            (
                None,
                r#"{"last_by_subj":"a","start_time":"2024-01-01T00:00:00Z"}"#,
                "408 Bad Request",
            ),
            (
                None,
                r#"{"last_by_subj":"a","next_by_subj":"a"}"#,
                "408 Bad Request",
            ),
            (None, r#"{"last_by_subj":"a","batch":2}"#, "408 Bad Request"),
            (
                None,
                r#"{"last_by_subj":"a","multi_last":["a"]}"#,
                "408 Bad Request",
            ),
            (
                None,
                r#"{"next_by_subj":"a","multi_last":["a"]}"#,
                "408 Bad Request",
            ),
            (
                None,
                r#"{"multi_last":["a"],"up_to_seq":3,"up_to_time":"2024-01-01T00:00:00Z"}"#,
                "408 Bad Request",
            ),
            (Some("a"), r#"{"seq":1}"#, "408 Bad Request"),
            (Some("a"), r#"{"batch":1}"#, "408 Bad Request"),
            (Some("a"), r#"{"up_to_seq":1}"#, "408 Bad Request"),
            (
                Some("a"),
                r#"{"start_time":"2024-01-01T00:00:00Z"}"#,
                "408 Bad Request",
            ),
            (Some("a"), "{", "408 Malformed Request"),
            (Some(""), "", "408 Bad Request"),
        ] {
            assert_eq!(
                parse(key, body.as_bytes()).err(),
                Some(want),
                "{key:?} {body}"
            );
        }
        for body in [
            r#"{"seq":2,"next_by_subj":"a.*","batch":3,"max_bytes":10}"#,
            r#"{"start_time":"2024-01-01T00:00:00Z","next_by_subj":"a","batch":3}"#,
            r#"{"multi_last":["a.>"],"up_to_time":"2024-01-01T00:00:00Z","batch":2,"seq":4}"#,
        ] {
            assert!(parse(None, body.as_bytes()).is_ok(), "{body}");
        }
        let keyed = parse(Some("a.b"), br#"{"no_hdr":true}"#).unwrap();
        assert_eq!(keyed.last_by_subj, "a.b");
        assert!(keyed.no_hdr);
    }

    /// A single get keeps nats-server's reply: the message's own headers
    /// first, the four direct-get headers appended, no batch headers.
    #[test]
    fn single_get_appends_direct_headers() {
        let mut s = store(&["a"]);
        s.store_msg("b", b"NATS/1.0\r\nX: 1\r\n\r\n", b"hi", T0 + SEC)
            .unwrap();
        let (out, failed) = run(&s, &req(r#"{"seq":2}"#), 1 << 20);
        assert!(!failed);
        assert_eq!(
            out,
            vec![(
                format!(
                    "NATS/1.0\r\nX: 1\r\nNats-Stream: S\r\nNats-Subject: b\r\nNats-Sequence: 2\r\nNats-Time-Stamp: {}\r\n\r\n",
                    time(1)
                ),
                "hi".to_string()
            )]
        );
        let (out, failed) = run(&s, &req(r#"{"seq":3}"#), 1 << 20);
        assert!(failed);
        assert_eq!(out[0].0, "NATS/1.0 404 Message Not Found\r\n\r\n");
        let (out, _) = run(&s, &parse(Some("a"), b"").unwrap(), 1 << 20);
        assert_eq!(out[0].1, "m1");
    }

    /// ADR-31 batch from a sequence: deleted sequences are stepped over, the
    /// pending count falls with each reply, and the EOB repeats the last
    /// reply's figures.
    #[test]
    fn batch_from_seq_counts_down_and_ends_with_eob() {
        let mut s = store(&["a", "b", "a", "c", "a"]);
        s.remove_msg(3).unwrap();
        let (out, failed) = run(&s, &req(r#"{"seq":2,"batch":2}"#), 1 << 20);
        assert!(!failed);
        assert_eq!(
            out,
            vec![
                (batch_hdr("b", 2, 2, 0), "m2".into()),
                (batch_hdr("c", 4, 1, 2), "m4".into()),
                eob(1, 4),
            ]
        );
        // A batch larger than what is left stops at the end.
        let (out, _) = run(&s, &req(r#"{"seq":4,"batch":10}"#), 1 << 20);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], eob(0, 5));
        // Nothing at or after the start: a plain 404, no EOB.
        let (out, failed) = run(&s, &req(r#"{"seq":6,"batch":10}"#), 1 << 20);
        assert!(failed);
        assert_eq!(
            out,
            vec![(
                "NATS/1.0 404 Message Not Found\r\n\r\n".into(),
                String::new()
            )]
        );
    }

    /// A batch by `next_by_subj` (wildcards allowed) stops once `max_bytes`
    /// (or the server's `max_pending` without it) is reached, counting
    /// subject + headers + payload.
    #[test]
    fn batch_by_subject_bounded_by_bytes() {
        let s = store(&["x.1", "y", "x.2", "x.3", "x.4"]);
        let (out, _) = run(&s, &req(r#"{"next_by_subj":"x.*","batch":10}"#), 1 << 20);
        let seqs: Vec<&str> = out.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(seqs, ["m1", "m3", "m4", "m5", ""]);
        assert_eq!(out[4], eob(0, 5));
        // Each message is 3 + 2 bytes: the second reaches 10.
        let (out, _) = run(
            &s,
            &req(r#"{"next_by_subj":"x.*","batch":10,"max_bytes":10}"#),
            1 << 20,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[1], (batch_hdr("x.2", 3, 2, 1), "m3".into()));
        assert_eq!(out[2], eob(2, 3));
        let (out, _) = run(&s, &req(r#"{"seq":3,"next_by_subj":"x.*","batch":10}"#), 5);
        assert_eq!(
            out,
            vec![(batch_hdr("x.2", 3, 2, 0), "m3".into()), eob(2, 3)]
        );
    }

    /// `start_time`: the first message at or after the time, alone or as a
    /// batch start; past the newest message there is none.
    #[test]
    fn start_time_finds_first_at_or_after() {
        let s = store(&["a", "b", "a", "b"]);
        let at = |i: i64| api::time_json(T0 + i * SEC - SEC / 2);
        let (out, _) = run(
            &s,
            &req(&format!(r#"{{"start_time":"{}"}}"#, at(2))),
            1 << 20,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, "m3");
        assert!(!out[0].0.contains("Nats-Num-Pending"));
        let body = format!(
            r#"{{"start_time":"{}","next_by_subj":"b","batch":5}}"#,
            at(1)
        );
        let (out, _) = run(&s, &req(&body), 1 << 20);
        assert_eq!(
            out,
            vec![
                (batch_hdr("b", 2, 1, 0), "m2".into()),
                (batch_hdr("b", 4, 0, 2), "m4".into()),
                eob(0, 4),
            ]
        );
        let (_, failed) = run(
            &s,
            &req(&format!(r#"{{"start_time":"{}"}}"#, at(5))),
            1 << 20,
        );
        assert!(failed);
    }

    /// nats-server adds no headers with `no_hdr`, so it does not count the
    /// pending messages down either: the EOB reports the starting count.
    #[test]
    fn batch_without_headers_keeps_first_pending_count() {
        let s = store(&["a", "b", "c"]);
        let (out, _) = run(&s, &req(r#"{"seq":1,"batch":2,"no_hdr":true}"#), 1 << 20);
        assert_eq!(
            out,
            vec![
                (String::new(), "m1".into()),
                (String::new(), "m2".into()),
                eob(3, 2),
            ]
        );
    }

    /// ADR-31 multi-last: the last message per matching subject up to the
    /// ceiling, in sequence order, then the EOB with `Nats-UpTo-Sequence`.
    #[test]
    fn multi_last_up_to_seq_and_time() {
        let s = store(&["a.1", "a.2", "b", "a.1", "a.2", "a.1"]);
        let eobm = |pending: u64, last: u64, up_to: u64| {
            (
                format!(
                    "NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\nNats-UpTo-Sequence: {up_to}\r\n\r\n"
                ),
                String::new(),
            )
        };
        let (out, failed) = run(
            &s,
            &req(r#"{"multi_last":["a.*","b"],"no_hdr":true}"#),
            1 << 20,
        );
        assert!(!failed);
        assert_eq!(
            out,
            vec![
                (batch_hdr("b", 3, 2, 0), "m3".into()),
                (batch_hdr("a.2", 5, 1, 3), "m5".into()),
                (batch_hdr("a.1", 6, 0, 5), "m6".into()),
                eobm(0, 6, 6),
            ]
        );
        let (out, _) = run(&s, &req(r#"{"multi_last":["a.*"],"up_to_seq":4}"#), 1 << 20);
        assert_eq!(
            out,
            vec![
                (batch_hdr("a.2", 2, 1, 0), "m2".into()),
                (batch_hdr("a.1", 4, 0, 2), "m4".into()),
                eobm(0, 4, 4),
            ]
        );
        // Up to a time: the last message before it is the ceiling.
        let body = format!(
            r#"{{"multi_last":["a.*"],"up_to_time":"{}"}}"#,
            api::time_json(T0 + 3 * SEC)
        );
        let (out, _) = run(&s, &req(&body), 1 << 20);
        assert_eq!(out.last(), Some(&eobm(0, 2, 3)));
        let body = format!(
            r#"{{"multi_last":["a.*"],"up_to_time":"{}"}}"#,
            api::time_json(T0)
        );
        let (out, failed) = run(&s, &req(&body), 1 << 20);
        assert!(failed);
        assert_eq!(
            out,
            vec![("NATS/1.0 404 No Results\r\n\r\n".into(), String::new())]
        );
        let (out, _) = run(&s, &req(r#"{"multi_last":["c.>"]}"#), 1 << 20);
        assert_eq!(out[0].0, "NATS/1.0 404 No Results\r\n\r\n");
    }

    /// `batch` caps a multi-last answer and `seq` resumes it (ADR-31's
    /// pagination cursor); the pending count covers the whole result set.
    #[test]
    fn multi_last_paged_with_batch_and_seq() {
        let s = store(&["a", "b", "c", "d"]);
        let (out, _) = run(&s, &req(r#"{"multi_last":[">"],"batch":2}"#), 1 << 20);
        assert_eq!(out.len(), 3);
        assert!(out[2]
            .0
            .contains("Nats-Num-Pending: 2\r\nNats-Last-Sequence: 2\r\n"));
        let (out, _) = run(
            &s,
            &req(r#"{"multi_last":[">"],"batch":2,"seq":3}"#),
            1 << 20,
        );
        assert_eq!(out[0], (batch_hdr("c", 3, 1, 0), "m3".into()));
        assert_eq!(out[1], (batch_hdr("d", 4, 0, 3), "m4".into()));
        assert!(out[2]
            .0
            .contains("Nats-Num-Pending: 0\r\nNats-Last-Sequence: 4\r\n"));
    }

    /// More than 1024 subjects: `413 Too Many Results`, nothing else.
    #[test]
    fn multi_last_over_the_limit() {
        let subjects: Vec<String> = (0..=MULTI_LAST_MAX).map(|i| format!("k.{i}")).collect();
        let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let s = store(&refs);
        let (out, failed) = run(&s, &req(r#"{"multi_last":["k.*"]}"#), 1 << 30);
        assert!(failed);
        assert_eq!(
            out,
            vec![(
                "NATS/1.0 413 Too Many Results\r\n\r\n".into(),
                String::new()
            )]
        );
        let (out, failed) = run(
            &s,
            &req(r#"{"multi_last":["k.*"],"up_to_seq":1024}"#),
            1 << 30,
        );
        assert!(!failed);
        assert_eq!(out.len(), MULTI_LAST_MAX + 1);
    }
}
