//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! corpus replay test (`engine/tests/fuzz_corpus.rs`). Each checks
//! properties, not just "no panic".
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use natsd_proto::route::{route_limits, RouteOpParser};
use natsd_proto::{Limits, ServerOpParser};

use crate::client::{ClientConn, Context};
use crate::options::Options;
use crate::outbound::Owner;
use crate::route::RouteConn;
use crate::server::Server;

/// Drive one client connection with arbitrary bytes, with a second
/// connection subscribed to everything.
///
/// Input layout: byte 0 picks the chunk size (1..=64), byte 1 picks options
/// (bit 0: token auth, bit 1: tiny max_pending), the rest is the client's
/// byte stream. Checked:
/// - everything the server writes to either client parses as server ops;
/// - a connection the machine closed asks its driver to close it, once;
/// - closing both connections leaves no subscription and no connection.
pub fn client_conn(now: Instant, data: &[u8]) {
    let (Some(&chunk), Some(&flags)) = (data.first(), data.get(1)) else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;
    let stream = &data[2..];
    let opts = Options {
        token: (flags & 1 != 0).then(|| "s3cr3t".to_string()),
        max_pending: if flags & 2 != 0 { 512 } else { 64 * 1024 },
        max_payload: 4096,
        max_control_line: 512,
        ping_interval: Duration::from_secs(1),
        ..Options::default()
    };
    let server = Arc::new(Server::new(opts, [9u8; 32]));
    let mut ctx = Context::new(42);
    let mut watcher = new_conn(&server, now, 0);
    watcher.handle_bytes(
        now,
        &mut ctx,
        b"CONNECT {\"verbose\":false,\"headers\":true,\"auth_token\":\"s3cr3t\"}\r\nSUB > 1\r\nSUB > q 2\r\n",
    );
    let mut subject = new_conn(&server, now, 1);
    let mut t = now;
    for piece in stream.chunks(chunk) {
        subject.handle_bytes(t, &mut ctx, piece);
        t += Duration::from_millis(300);
        subject.handle_timeout(t);
        watcher.handle_timeout(t);
        assert_server_ops(&subject);
        assert_server_ops(&watcher);
        ctx.wakes.clear();
    }
    let mut closes = 0;
    while let Some(out) = subject.poll_output() {
        let crate::client::Output::Close(_) = out;
        closes += 1;
    }
    assert!(closes <= 1, "one close request per connection");
    assert_eq!(closes == 1, subject.is_closed());
    subject.close(crate::client::CloseReason::ClientClosed);
    watcher.close(crate::client::CloseReason::ClientClosed);
    assert_eq!(server.global.sublist.count(), 0, "subscriptions leaked");
    assert_eq!(server.stats.connections.load(Ordering::Relaxed), 0);
}

fn new_conn(server: &Arc<Server>, now: Instant, slot: usize) -> ClientConn {
    let cid = server.next_cid();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 4000 + slot as u16));
    ClientConn::new(server.clone(), now, peer, Owner { reactor: 0, slot }, cid)
}

/// Whatever the connection was sent must parse as server ops.
fn assert_server_ops(conn: &ClientConn) {
    let mut buf = BytesMut::new();
    conn.outbound().take(&mut buf);
    conn.outbound().written(buf.len());
    let mut parser = ServerOpParser::new(Limits {
        max_control_line: 64 * 1024,
        max_payload: 64 * 1024 * 1024,
    });
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("server wrote bytes that do not parse: {e}"),
        }
    }
    assert!(buf.is_empty(), "server wrote a partial frame: {buf:?}");
}

/// Drive one route (accepted on the cluster port) with arbitrary bytes, with
/// a local client subscribed to everything (plain and in a queue group).
///
/// Input layout: byte 0 picks the chunk size (1..=64), byte 1 bit 0
/// prepends a valid CONNECT and INFO (so the rest reaches the registered
/// route's ops), bit 1 requires cluster credentials; the rest is the
/// peer's byte stream. Checked:
/// - everything the server writes to the route parses as route ops, and
///   everything it writes to the client as server ops;
/// - a closed route asks its driver to close it, once;
/// - closing the route takes all of its interest out of the sublist and
///   out of the cluster.
pub fn route_conn(now: Instant, data: &[u8]) {
    let (Some(&chunk), Some(&flags)) = (data.first(), data.get(1)) else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;
    let mut cluster = crate::options::ClusterOptions {
        name: Some("fz".into()),
        port: 6222,
        ..Default::default()
    };
    if flags & 2 != 0 {
        cluster.user = Some("r".into());
        cluster.pass = Some("p".into());
    }
    let opts = Options {
        max_payload: 4096,
        max_control_line: 512,
        ping_interval: Duration::from_secs(1),
        cluster,
        ..Options::default()
    };
    let server = Arc::new(Server::new(opts, [7u8; 32]));
    let Some(cluster) = server.cluster().cloned() else {
        panic!("a cluster is configured");
    };
    let mut ctx = Context::new(7);
    let mut watcher = new_conn(&server, now, 0);
    watcher.handle_bytes(
        now,
        &mut ctx,
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB > 1\r\nSUB > q 2\r\n",
    );
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 6000));
    let owner = Owner {
        reactor: 0,
        slot: 9,
    };
    let cid = server.next_cid();
    let mut route = RouteConn::new(
        server.clone(),
        cluster.clone(),
        now,
        peer,
        owner,
        cid,
        None,
        false,
    );
    let mut stream = Vec::new();
    if flags & 1 != 0 {
        stream.extend_from_slice(
            b"CONNECT {\"user\":\"r\",\"pass\":\"p\",\"cluster\":\"fz\"}\r\nINFO {\"server_id\":\"NPEER\",\"cluster\":\"fz\",\"port\":7222}\r\n",
        );
    }
    stream.extend_from_slice(&data[2..]);
    let mut t = now;
    for piece in stream.chunks(chunk) {
        route.handle_bytes(t, &mut ctx, piece);
        t += Duration::from_millis(300);
        route.handle_timeout(t);
        assert_route_ops(route.outbound());
        assert_server_ops(&watcher);
        ctx.wakes.clear();
    }
    let mut closes = 0;
    while let Some(out) = route.poll_output() {
        let crate::client::Output::Close(_) = out;
        closes += 1;
    }
    assert!(closes <= 1, "one close request per route");
    assert_eq!(closes == 1, route.is_closed());
    route.close(crate::client::CloseReason::ClientClosed);
    let routed: usize = server.accounts().iter().map(|a| a.sublist.count()).sum();
    assert_eq!(routed, 2, "only the client's two subscriptions remain");
    assert!(
        cluster.peers().is_empty(),
        "a closed route left the cluster"
    );
    watcher.close(crate::client::CloseReason::ClientClosed);
}

/// Whatever the server wrote to a route must parse as route ops.
fn assert_route_ops(out: &crate::outbound::Outbound) {
    let mut buf = BytesMut::new();
    out.take(&mut buf);
    out.written(buf.len());
    let mut parser = RouteOpParser::new(
        route_limits(64 * 1024),
        natsd_proto::route::RouteDialect::default(),
    );
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("server wrote route bytes that do not parse: {e}"),
        }
    }
    assert!(
        buf.is_empty(),
        "server wrote a partial route frame: {buf:?}"
    );
}

/// The NATS conf parser on arbitrary text (invalid UTF-8 is cut at the
/// first bad byte, as a file reader would refuse it). Checked: parsing never
/// panics and is deterministic, an error names a position inside the text,
/// and a parsed tree maps onto options without panicking.
pub fn conf_parse(data: &[u8]) {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.valid_up_to();
            // `valid_up_to` marks the longest valid UTF-8 prefix.
            std::str::from_utf8(&data[..valid]).unwrap_or_default()
        }
    };
    let first = crate::conf::parse(text);
    let second = crate::conf::parse(text);
    assert_eq!(
        first.as_ref().err().map(ToString::to_string),
        second.as_ref().err().map(ToString::to_string),
        "parsing is deterministic"
    );
    match first {
        Ok(map) => {
            let mut opts = Options::default();
            let _ = opts.apply_conf(&map);
        }
        Err(e) => {
            // Line breaks the lexer may count: \n, and \r on its own.
            let lines = text.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 1;
            if let Some(at) = &e.at {
                assert!(
                    at.line as usize <= lines,
                    "error line {} past the text ({lines} lines): {e}",
                    at.line
                );
            }
        }
    }
}

/// A stream in a `Vec` for [`consumer`]; `None` marks a removed message.
struct FuzzSource {
    msgs: Vec<Option<crate::consumer::SourceMsg>>,
}

impl FuzzSource {
    fn live(&self) -> impl Iterator<Item = &crate::consumer::SourceMsg> {
        self.msgs.iter().flatten()
    }
}

impl crate::consumer::MsgSource for FuzzSource {
    fn state(&self) -> crate::consumer::SourceState {
        let last_seq = self.msgs.len() as u64;
        crate::consumer::SourceState {
            msgs: self.live().count() as u64,
            first_seq: match self.live().next() {
                Some(m) => m.seq,
                None if last_seq == 0 => 0,
                None => last_seq + 1,
            },
            last_seq,
        }
    }
    fn load_msg(&self, seq: u64) -> Option<crate::consumer::SourceMsg> {
        self.msgs
            .get(usize::try_from(seq).ok()?.checked_sub(1)?)?
            .clone()
    }
    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Option<crate::consumer::SourceMsg> {
        self.live()
            .find(|m| m.seq >= start_seq && fuzz_match(filter, &m.subject))
            .cloned()
    }
    fn load_last_msg(&self, filter: &str) -> Option<crate::consumer::SourceMsg> {
        self.live()
            .filter(|m| fuzz_match(filter, &m.subject))
            .last()
            .cloned()
    }
    fn num_pending(&self, start_seq: u64, filter: &str, _last_per_subject: bool) -> u64 {
        self.live()
            .filter(|m| m.seq >= start_seq && fuzz_match(filter, &m.subject))
            .count() as u64
    }
    fn last_seqs(&self, filter: &str) -> Vec<u64> {
        let mut last = std::collections::BTreeMap::new();
        for m in self.live().filter(|m| fuzz_match(filter, &m.subject)) {
            last.insert(m.subject.clone(), m.seq);
        }
        last.into_values().collect()
    }
}

fn fuzz_match(filter: &str, subject: &str) -> bool {
    filter.is_empty() || crate::subject::subject_matches(filter.as_bytes(), subject.as_bytes())
}

/// Drive one consumer with a random sequence of stream events (stores and
/// removals), acks of every kind (some forged), pull requests, push interest
/// changes, pauses and resumes (`CONSUMER.PAUSE`) and time.
///
/// Input layout: byte 0 picks the config (bits 0-1 ack policy, bit 2 push,
/// bit 3 filter `f.a`, bit 4 backoff, bits 5-6 max_ack_pending 0 (default)
/// or 1..3, bit 7 max_deliver 3), byte 1 the priority policy of a pull
/// consumer (mod 4: none, overflow, pinned_client, prioritized; group `A`),
/// then one op per 3 bytes. Checked after every op:
/// - nothing is delivered while the consumer is paused;
/// - outstanding acks never exceed `max_ack_pending`;
/// - a sequence acknowledged (it left pending by an ack) is never delivered again;
/// - consumer sequences of deliveries strictly increase, and the delivered
///   and ack floor sequences of info never go down;
/// - every matching message is exactly one of: not yet delivered
///   (`num_pending`), awaiting an ack, acknowledged, retired at
///   `max_deliver` or removed from the stream (acks none: delivered counts
///   as acknowledged);
/// - the cached pending count equals a recount from the stream.
pub fn consumer(now: Instant, data: &[u8]) {
    use std::collections::BTreeSet;

    use bytes::Bytes;

    use crate::consumer::{
        parse_ack_reply, AckPolicy, Consumer, ConsumerConfig, Input, PriorityPolicy, Retention,
        ServerLimits, SourceMsg, StreamFacts,
    };

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&prio, ops)) = rest.split_first() else {
        return;
    };
    let ack_policy = match flags & 3 {
        0 => AckPolicy::None,
        1 => AckPolicy::All,
        _ => AckPolicy::Explicit,
    };
    let is_push = flags & 4 != 0;
    let filter = if flags & 8 != 0 { "f.a" } else { "" };
    let mut cfg = ConsumerConfig {
        durable_name: "C".into(),
        ack_policy,
        filter_subject: filter.into(),
        ack_wait: Duration::from_secs(2),
        ..ConsumerConfig::default()
    };
    if is_push {
        cfg.deliver_subject = "out".into();
    }
    if flags & 16 != 0 && ack_policy != AckPolicy::None {
        cfg.backoff = vec![Duration::from_secs(1), Duration::from_secs(3)];
    }
    let map = i64::from((flags >> 5) & 3);
    if map > 0 && ack_policy != AckPolicy::None {
        cfg.max_ack_pending = map;
    }
    if flags & 128 != 0 {
        cfg.max_deliver = 3;
    }
    if !is_push {
        cfg.priority_policy = match prio % 4 {
            0 => PriorityPolicy::None,
            1 => PriorityPolicy::Overflow,
            2 => PriorityPolicy::PinnedClient,
            _ => PriorityPolicy::Prioritized,
        };
        if cfg.priority_policy != PriorityPolicy::None {
            cfg.priority_groups = vec!["A".into()];
        }
    }
    let facts = StreamFacts {
        subjects: vec!["f.>".into()],
        retention: Retention::Interest,
        replicas: 1,
        ..StreamFacts::default()
    };
    let mut src = FuzzSource { msgs: Vec::new() };
    let Ok(mut c) = Consumer::new(
        "S",
        "C",
        cfg,
        &facts,
        &ServerLimits::default(),
        now,
        1_000_000_000,
        None,
        &src,
    ) else {
        return;
    };
    let max_ack_pending = c.config().max_ack_pending;
    let mut t = now;
    let mut delivered: Vec<(String, u64)> = Vec::new();
    let mut acked = BTreeSet::new();
    let mut retired = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut all_matching = BTreeSet::new();
    let mut last_cseq = 0;
    let mut last_info = (0u64, 0u64, 0u64, 0u64);
    for op in ops.chunks(3) {
        let (kind, a, b) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        let input = match kind % 8 {
            0 | 1 => {
                let subject = if a & 1 == 0 { "f.a" } else { "f.b" };
                let seq = src.msgs.len() as u64 + 1;
                src.msgs.push(Some(SourceMsg {
                    seq,
                    subject: subject.into(),
                    hdr: Bytes::new(),
                    payload: Bytes::from(vec![b'x'; usize::from(b % 16)]),
                    ts: 1_000_000_000 + seq as i64,
                }));
                Some(Input::Stored {
                    seq,
                    subject: subject.into(),
                })
            }
            2 | 3 => delivered
                .get(usize::from(a) % delivered.len().max(1))
                .map(|(reply, _)| {
                    let body: &[u8] = match b % 9 {
                        0 | 1 => b"+ACK",
                        2 => b"-NAK",
                        3 => br#"-NAK {"delay":1500000000}"#,
                        4 => b"+WPI",
                        5 => b"+TERM why",
                        6 => b"+NXT 2",
                        7 => b"",
                        _ => b"?",
                    };
                    Input::Ack {
                        info: parse_ack_reply(reply).map(|(_, _, r)| r),
                        reply: (a & 1 == 1).then(|| "ackr".to_string()),
                        body: Bytes::from_static(body),
                    }
                }),
            4 if a & 0x80 != 0 => {
                let i = usize::from(b) % src.msgs.len().max(1);
                src.msgs.get_mut(i).and_then(Option::take).map(|m| {
                    removed.insert(m.seq);
                    Input::Removed {
                        seq: m.seq,
                        subject: m.subject,
                    }
                })
            }
            4 => Some(Input::Ack {
                info: parse_ack_reply(&format!("$JS.ACK.S.C.1.{}.{}.0.0", a % 32, b % 32))
                    .map(|(_, _, r)| r),
                reply: None,
                body: Bytes::from_static(if b & 1 == 0 { b"+ACK" } else { b"-NAK" }),
            }),
            5 => {
                let body = match a % 8 {
                    4 | 5 => format!(
                        r#"{{"batch":{},"expires":2000000000,"group":"A","min_pending":{},"min_ack_pending":{},"priority":{}}}"#,
                        b % 5 + 1,
                        b % 4,
                        (b >> 2) % 3,
                        (b >> 4) % 10
                    ),
                    6 => format!(
                        r#"{{"batch":{},"expires":2000000000,"group":"A","id":"{}"}}"#,
                        b % 5 + 1,
                        c.info(t, &src)
                            .priority_groups
                            .first()
                            .filter(|_| b & 1 == 0)
                            .map_or("old", |g| g.pinned_client_id.as_str())
                    ),
                    0 | 7 => format!("{}", b % 5 + 1),
                    1 => format!(r#"{{"batch":{},"no_wait":true}}"#, b % 5 + 1),
                    2 => format!(
                        r#"{{"batch":{},"expires":{}}}"#,
                        b % 5 + 1,
                        (u64::from(b) + 1) * 50_000_000
                    ),
                    _ => format!(
                        r#"{{"batch":{},"max_bytes":{}}}"#,
                        b % 5 + 1,
                        u64::from(b) * 4
                    ),
                };
                Some(Input::Next {
                    reply: format!("r{}", a % 3),
                    body: Bytes::from(body),
                })
            }
            6 if a & 0x40 != 0 => {
                c.unpin(t, "A", &src);
                None
            }
            6 if a & 0x80 != 0 => {
                // Pause for up to ~5 s of the consumer's wall clock, or resume.
                let wall = 1_000_000_000 + (t - now).as_nanos() as i64;
                let until =
                    (b != 0).then(|| crate::consumer::ns_rfc3339(wall + i64::from(b) * 20_000_000));
                c.pause(t, until, &src);
                None
            }
            6 => Some(Input::Interest(a & 1 == 1)),
            _ => None,
        };
        match input {
            Some(i) => c.handle_input(t, i, &src),
            None if kind % 8 == 6 => {}
            None => {
                let end = t + Duration::from_millis(u64::from(a) * 20 + u64::from(b));
                while let Some(at) = c.poll_timeout().filter(|at| *at <= end) {
                    t = t.max(at);
                    c.handle_timeout(t, &src);
                    consumer_outputs(
                        &mut c,
                        t,
                        &mut delivered,
                        &mut acked,
                        &mut retired,
                        &mut last_cseq,
                    );
                }
                t = end;
                c.handle_timeout(t, &src);
            }
        }
        consumer_outputs(
            &mut c,
            t,
            &mut delivered,
            &mut acked,
            &mut retired,
            &mut last_cseq,
        );
        let state = c.state();
        if ack_policy != AckPolicy::None && max_ack_pending > 0 {
            assert!(
                state.pending.len() as i64 <= max_ack_pending,
                "{} pending over max_ack_pending {max_ack_pending}",
                state.pending.len()
            );
        }
        let cached = c.cached_num_pending();
        let info = c.info(t, &src);
        assert_eq!(cached, info.num_pending, "cached num_pending drifted");
        let now_info = (
            info.delivered.consumer_seq,
            info.delivered.stream_seq,
            info.ack_floor.consumer_seq,
            info.ack_floor.stream_seq,
        );
        assert!(
            now_info.0 >= last_info.0,
            "delivered consumer_seq went down"
        );
        assert!(now_info.1 >= last_info.1, "delivered stream_seq went down");
        assert!(
            now_info.2 >= last_info.2,
            "ack floor consumer_seq went down"
        );
        assert!(now_info.3 >= last_info.3, "ack floor stream_seq went down");
        last_info = now_info;
        let matching: BTreeSet<u64> = all_matching
            .iter()
            .copied()
            .chain(
                src.live()
                    .filter(|m| fuzz_match(filter, &m.subject))
                    .map(|m| m.seq),
            )
            .collect();
        all_matching.clone_from(&matching);
        let done: BTreeSet<u64> = acked
            .union(&retired)
            .chain(removed.iter())
            .copied()
            .filter(|s| matching.contains(s))
            .collect();
        for s in state.pending.keys() {
            assert!(
                !done.contains(s),
                "{s} pending after it was acked or retired"
            );
        }
        assert_eq!(
            info.num_pending + state.pending.len() as u64 + done.len() as u64,
            matching.len() as u64,
            "messages lost or counted twice: pending {:?} done {done:?} info {info:?}",
            state.pending
        );
    }
}

/// Collect a consumer's outputs for [`consumer`]'s checks.
fn consumer_outputs(
    c: &mut crate::consumer::Consumer,
    t: Instant,
    delivered: &mut Vec<(String, u64)>,
    acked: &mut std::collections::BTreeSet<u64>,
    retired: &mut std::collections::BTreeSet<u64>,
    last_cseq: &mut u64,
) {
    use crate::consumer::{AdvisoryKind, Output};
    let paused = !c.pause_remaining(t).is_zero();
    while let Some(out) = c.poll_output() {
        match out {
            Output::Deliver(d) => {
                assert!(!paused, "{} delivered while paused", d.stream_seq);
                assert!(
                    !acked.contains(&d.stream_seq),
                    "{} delivered after it was acked",
                    d.stream_seq
                );
                assert!(
                    d.consumer_seq > *last_cseq,
                    "consumer sequence not increasing"
                );
                assert!(
                    !retired.contains(&d.stream_seq),
                    "{} delivered after max_deliver",
                    d.stream_seq
                );
                *last_cseq = d.consumer_seq;
                delivered.push((d.reply, d.stream_seq));
            }
            Output::Acked { first, last } => {
                assert!(first <= last);
                acked.extend(first..=last);
            }
            Output::Advisory(a) if a.kind == AdvisoryKind::MaxDeliveries => {
                retired.insert(a.stream_seq);
            }
            _ => {}
        }
    }
}

/// Subject transforms and mappings on arbitrary source, destination and
/// subject (the input split at NUL bytes, lossy UTF-8). Checked: building
/// never panics; a built transform applies without panicking and, without
/// `{{random}}`, gives the same answer twice; a subject that does not match
/// the source is left alone; a plain `$N` destination only uses the
/// subject's own tokens; the same source and destination as a mapping
/// builds exactly when the transform does.
pub fn subject_transform(data: &[u8]) {
    use crate::mapping::{MapDest, MappingConfig, Mappings};
    use crate::transform::SubjectTransform;
    let mut parts = data.splitn(3, |&b| b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (src, dest, subject) = (next(), next(), next());
    let built = SubjectTransform::new(&src, &dest);
    let mapping = Mappings::new(&[MappingConfig {
        source: src.clone(),
        dests: vec![MapDest {
            subject: dest.clone(),
            weight: 100,
            cluster: None,
        }],
    }]);
    let src_ok = !src.is_empty() && crate::subject::is_valid_subject(src.as_bytes());
    if src_ok {
        assert_eq!(built.is_ok(), mapping.is_ok(), "{src:?} -> {dest:?}");
    }
    let Ok(t) = built else {
        return;
    };
    let out = t.apply(&subject);
    if !dest.to_ascii_lowercase().contains("random") {
        assert_eq!(out, t.apply(&subject), "deterministic");
    }
    let literal = crate::subject::is_valid_literal_subject(subject.as_bytes());
    let src = if src.is_empty() { ">" } else { src.as_str() };
    if !literal || !crate::subject::subject_matches(src.as_bytes(), subject.as_bytes()) {
        assert!(
            out.is_none() || (src == ">" && dest == ">"),
            "{subject:?} !~ {src:?}"
        );
    }
    if let (Some(out), Ok(m)) = (&out, &mapping) {
        if !dest.contains("{{") {
            assert_eq!(
                m.select(&subject).as_ref(),
                Some(out),
                "mapping = transform"
            );
            for token in out.split('.') {
                let from_dest = dest.split('.').any(|d| d == token);
                let from_subject = subject.split('.').any(|s| s == token);
                assert!(from_dest || from_subject, "{token:?} from nowhere");
            }
        }
    }
}

/// A sublist value for [`sublist`]: only its key.
#[derive(Clone, Debug)]
struct FuzzSub(u64);

impl crate::sublist::SubValue for FuzzSub {
    fn key(&self) -> u64 {
        self.0
    }
}

/// The subject picked by `b`: 1 to 4 tokens (low 2 bits) from `a`, `b`,
/// `*`, `>` and the empty token (base-5 digits of the rest), so the fuzzer
/// reaches wildcards, invalid subjects and published subjects holding `*`
/// or `>` as literal tokens.
fn fuzz_subject(b: u16) -> Vec<u8> {
    const TOKENS: [&[u8]; 5] = [b"a", b"b", b"*", b">", b""];
    let mut out = Vec::new();
    let mut digits = usize::from(b >> 2);
    for i in 0..=(b & 3) {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(TOKENS[digits % 5]);
        digits /= 5;
    }
    out
}

/// Naive matching for [`sublist`]'s reference model: token by token, `*`
/// takes one token and a final `>` one or more; an empty token in the
/// published subject matches nothing.
fn naive_match(filter: &[u8], subject: &[u8]) -> bool {
    let subject: Vec<&[u8]> = subject.split(|&c| c == b'.').collect();
    if subject.iter().any(|t| t.is_empty()) {
        return false;
    }
    let filter: Vec<&[u8]> = filter.split(|&c| c == b'.').collect();
    for (i, f) in filter.iter().enumerate() {
        match (*f, subject.get(i)) {
            (b">", Some(_)) => return i + 1 == filter.len(),
            (_, None) => return false,
            (b"*", Some(_)) => {}
            (f, Some(s)) if f == *s => {}
            _ => return false,
        }
    }
    filter.len() == subject.len()
}

/// Arbitrary inserts, removes (single and batched) and matches on a sublist,
/// each checked against a reference model: a vector of
/// (subject, queue, key) and [`naive_match`].
///
/// Input layout: one op per 4 bytes: kind (insert, remove, remove every
/// subscription with the key in one batch, match), subject (2 bytes, see
/// [`fuzz_subject`]), then queue (low 2 bits: none, `q1`, `q2`, `q.*`) and
/// key (high 6 bits). Checked after every op:
/// an insert is refused exactly when the subject is not a valid
/// subscription subject; a remove reports whether the model held the
/// subscription; the count equals the model's; a match returns the same
/// plain keys and the same queue groups (as multisets) as the model, from
/// the sublist and from a snapshot taken before the op, which must not
/// change.
pub fn sublist(data: &[u8]) {
    use bytes::Bytes;

    use crate::sublist::{MatchResult, Sublist, SublistError};

    type Model = Vec<(Vec<u8>, Option<Vec<u8>>, u64)>;
    /// Plain keys and queue groups (name, keys), sorted.
    type Matched = (Vec<u64>, Vec<(Vec<u8>, Vec<u64>)>);
    fn expect(model: &Model, subject: &[u8]) -> Matched {
        let mut plain = Vec::new();
        let mut groups: std::collections::BTreeMap<Vec<u8>, Vec<u64>> = Default::default();
        for (_, queue, key) in model.iter().filter(|e| naive_match(&e.0, subject)) {
            match queue {
                None => plain.push(*key),
                Some(q) => groups.entry(q.clone()).or_default().push(*key),
            }
        }
        plain.sort_unstable();
        let mut queues: Vec<_> = groups.into_iter().collect();
        queues.iter_mut().for_each(|(_, keys)| keys.sort_unstable());
        (plain, queues)
    }
    fn got(r: &MatchResult<FuzzSub>) -> Matched {
        let mut plain: Vec<u64> = r.plain.iter().map(|s| s.0).collect();
        plain.sort_unstable();
        let mut queues: Vec<(Vec<u8>, Vec<u64>)> = r
            .queues
            .iter()
            .map(|g| {
                let mut keys: Vec<u64> = g.members.iter().map(|s| s.0).collect();
                keys.sort_unstable();
                (g.name.to_vec(), keys)
            })
            .collect();
        queues.sort();
        (plain, queues)
    }

    let list = Sublist::<FuzzSub>::new();
    let mut model: Model = Vec::new();
    for op in data.chunks_exact(4) {
        let subject = fuzz_subject(u16::from_le_bytes([op[1], op[2]]));
        let queue: Option<&[u8]> = match op[3] & 3 {
            0 => None,
            1 => Some(b"q1"),
            2 => Some(b"q2"),
            _ => Some(b"q.*"),
        };
        let key = u64::from(op[3] >> 2);
        let before = list.snapshot();
        let before_expected = expect(&model, &subject);
        let entry = (subject.clone(), queue.map(<[u8]>::to_vec), key);
        match op[0] % 4 {
            0 => {
                let valid = crate::subject::is_valid_subject(&subject);
                match list.insert(&subject, queue, FuzzSub(key)) {
                    Ok(()) => {
                        assert!(valid, "{subject:?} accepted");
                        if !model.contains(&entry) {
                            model.push(entry);
                        }
                    }
                    Err(SublistError::InvalidSubject) => assert!(!valid, "{subject:?} refused"),
                    Err(e) => panic!("{e} for queue {queue:?}"),
                }
            }
            1 => {
                let held = model.iter().position(|e| *e == entry);
                assert_eq!(list.remove(&subject, queue, key), held.is_some());
                if let Some(i) = held {
                    model.swap_remove(i);
                }
            }
            2 => {
                let batch: Vec<(Bytes, Option<Bytes>, u64)> = model
                    .iter()
                    .filter(|e| e.2 == key)
                    .map(|(s, q, k)| (Bytes::from(s.clone()), q.clone().map(Bytes::from), *k))
                    .collect();
                assert_eq!(list.remove_batch(&batch), batch.len());
                model.retain(|e| e.2 != key);
            }
            _ => assert_eq!(got(&list.matches(&subject)), expect(&model, &subject)),
        }
        assert_eq!(list.count(), model.len(), "count");
        assert_eq!(
            got(&before.matches(&subject)),
            before_expected,
            "snapshot changed"
        );
        assert_eq!(
            got(&list.snapshot().matches(&subject)),
            expect(&model, &subject)
        );
    }
}
