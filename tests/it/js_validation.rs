//! JetStream API validation as nats-server 2.15.1 answers it: each request goes over raw NATS
//! (subjects and names may hold bytes a client library refuses) to natsd and, when installed,
//! to the reference server, and the `error` objects (code, err_code, description) must be the
//! ones in the table, which are what 2.15.1 replies. Also: a `STREAM.CREATE` with 60,000
//! subjects does not stall the JetStream stage.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;
use natsd_tests::{RawConn, Server, TempDir};
use serde_json::{json, Value};

use crate::connect;

/// How long one API request may take to be answered.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// A raw client that sends API requests and reads their replies.
struct Api {
    conn: RawConn,
}

impl Api {
    fn connect(server: &Server) -> Api {
        let mut conn = RawConn::connect(&server.addr());
        conn.send("CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _v.reply 1\r\n");
        conn.ping_pong();
        Api { conn }
    }

    /// Publishes `body` to `subject` with a reply subject and returns the reply as JSON.
    fn request(&mut self, subject: &str, body: &str) -> Value {
        let head = format!("PUB {subject} _v.reply {}\r\n", body.len());
        self.conn
            .send([head.as_bytes(), body.as_bytes(), b"\r\n"].concat());
        loop {
            let line = self
                .conn
                .read_until(b"\r\n", REPLY_WAIT)
                .unwrap_or_else(|got| panic!("no reply to {subject:?}; got {got:?}"));
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.starts_with("PING") {
                self.conn.send("PONG\r\n");
                continue;
            }
            let args: Vec<&str> = line.split_whitespace().collect();
            let size = |i: usize| -> usize { args[i].parse().expect("size") };
            let (headers, total) = match args[0] {
                "MSG" => (0, size(args.len() - 1)),
                "HMSG" => (size(args.len() - 2), size(args.len() - 1)),
                other => panic!("unexpected {other:?} for {subject:?}"),
            };
            let payload = self
                .conn
                .read_exact_bytes(total + 2, REPLY_WAIT)
                .expect("reply payload");
            return serde_json::from_slice(&payload[headers..total]).expect("JSON reply");
        }
    }
}

/// What a request must get.
enum Expect {
    /// No `error` in the reply.
    Done,
    /// This `error`: code, err_code, description.
    Error(u16, u16, &'static str),
    /// A `NAMES`/`LIST` page: these fields (a `LIST` page's infos shown as names).
    Page(Value),
}

/// The outcome of a reply, in the terms of [`Expect`].
fn outcome(reply: &Value, expect: &Expect) -> Value {
    match expect {
        Expect::Page(_) => {
            let streams = match &reply["streams"] {
                Value::Array(items) => items
                    .iter()
                    .map(|s| s.get("config").map_or(s, |c| &c["name"]).clone())
                    .collect(),
                other => other.clone(),
            };
            json!({
                "error": reply.get("error"), "total": reply["total"], "offset": reply["offset"],
                "limit": reply["limit"], "streams": streams,
            })
        }
        _ => reply.get("error").cloned().unwrap_or(Value::Null),
    }
}

fn expected(expect: &Expect) -> Value {
    match expect {
        Expect::Done => Value::Null,
        Expect::Error(code, err_code, description) => {
            json!({"code": code, "err_code": err_code, "description": description})
        }
        Expect::Page(page) => {
            let mut page = page.clone();
            page["error"] = Value::Null;
            page
        }
    }
}

/// Runs `cases` in order against natsd and the reference (when installed), each on a fresh
/// JetStream server, and checks every reply against the table.
fn check_cases(cases: &[(&str, &str, Expect)]) {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let mut api = Api::connect(server);
        for (subject, body, expect) in cases {
            let reply = api.request(subject, body);
            assert_eq!(
                outcome(&reply, expect),
                expected(expect),
                "{:?}: {subject:?} {body}\nreply: {reply}",
                server.bin()
            );
        }
    }
}

const CREATE_S: (&str, &str, Expect) = (
    "$JS.API.STREAM.CREATE.S",
    r#"{"name":"S","subjects":["s.>"]}"#,
    Expect::Done,
);

/// A stream's subjects: overlaps found as nats-server finds them (subject by subject, naming
/// the first later subject that overlaps), and what is no overlap.
#[test]
fn stream_subject_overlaps() {
    check_cases(&[
        (
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.a","t.b","t.a"]}"#,
            Expect::Error(500, 10052, r#"subject "t.a" overlaps with "t.a""#),
        ),
        (
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.a.>","t.b","t.a.x","t.b"]}"#,
            Expect::Error(500, 10052, r#"subject "t.a.>" overlaps with "t.a.x""#),
        ),
        (
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.a","t.b.>","t..c","t.b.c"]}"#,
            Expect::Error(500, 10052, r#"subject "t.b.>" overlaps with "t.b.c""#),
        ),
        (
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.*","t.>"]}"#,
            Expect::Error(500, 10052, r#"subject "t.*" overlaps with "t.>""#),
        ),
        (
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.*.bar","t.baz.*"]}"#,
            Expect::Error(500, 10052, r#"subject "t.*.bar" overlaps with "t.baz.*""#),
        ),
        (
            "$JS.API.STREAM.CREATE.H",
            r#"{"name":"H","subjects":["hello","hello.>"]}"#,
            Expect::Done,
        ),
        (
            "$JS.API.STREAM.CREATE.J",
            r#"{"name":"J","subjects":["$JS"]}"#,
            Expect::Done,
        ),
        (
            "$JS.API.STREAM.CREATE.K",
            r#"{"name":"K","subjects":["hello.x"]}"#,
            Expect::Error(400, 10065, "subjects overlap with an existing stream"),
        ),
        (
            "$JS.API.STREAM.CREATE.K",
            r#"{"name":"K","subjects":[">"],"no_ack":true,"num_replicas":3}"#,
            Expect::Error(500, 10052, "capturing all subjects requires replicas of 1"),
        ),
    ]);
}

/// Stream names, replicas and the checks nats-server makes on a create request before its
/// configuration.
#[test]
fn stream_create_and_update_checks() {
    check_cases(&[
        CREATE_S,
        (
            "$JS.API.STREAM.CREATE.X",
            r#"{"name":"X","num_replicas":3}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        // Before the overlap with S.
        (
            "$JS.API.STREAM.CREATE.X",
            r#"{"name":"X","subjects":["s.x"],"num_replicas":3}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            "$JS.API.STREAM.UPDATE.S",
            r#"{"name":"S","subjects":["s.>"],"num_replicas":3}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            "$JS.API.STREAM.CREATE.a/b",
            r#"{"name":"a/b"}"#,
            Expect::Error(400, 10128, "Stream name can not contain path separators"),
        ),
        (
            "$JS.API.STREAM.CREATE.a\\b",
            r#"{"name":"a\\b"}"#,
            Expect::Error(400, 10128, "Stream name can not contain path separators"),
        ),
        (
            "$JS.API.STREAM.UPDATE.a/b",
            r#"{"name":"a/b"}"#,
            Expect::Error(
                500,
                10052,
                r"stream name is required and can not contain '.', '*', '>', '\', '/'",
            ),
        ),
        (
            "$JS.API.STREAM.CREATE.a*",
            r#"{"name":"a*"}"#,
            Expect::Error(
                500,
                10052,
                r"stream name is required and can not contain '.', '*', '>', '\', '/'",
            ),
        ),
        (
            "$JS.API.STREAM.CREATE.n\0b",
            r#"{"name":"n\u0000b"}"#,
            Expect::Error(500, 10049, "error creating store for stream"),
        ),
        (
            "$JS.API.STREAM.CREATE.m\0b",
            r#"{"name":"m\u0000b","storage":"memory"}"#,
            Expect::Done,
        ),
        (
            "$JS.API.STREAM.CREATE.D",
            r#"{"name":"D","mirror_direct":true,"num_replicas":3}"#,
            Expect::Error(
                500,
                10052,
                "stream has no mirror but does have mirror direct",
            ),
        ),
        (
            "$JS.API.STREAM.CREATE.D",
            r#"{"name":"D","sealed":true}"#,
            Expect::Error(
                500,
                10052,
                "stream configuration for create can not be sealed",
            ),
        ),
        (
            "$JS.API.STREAM.UPDATE.S",
            r#"{"name":"S","subjects":["s.>"],"mirror_direct":true}"#,
            Expect::Done,
        ),
    ]);
}

/// `STREAM.NAMES` and `STREAM.LIST` paging as nats-server pages.
#[test]
fn stream_names_and_list_pages() {
    let page = |total: u64, offset: u64, limit: u64, streams: Value| {
        Expect::Page(json!({"total": total, "offset": offset, "limit": limit, "streams": streams}))
    };
    check_cases(&[
        ("$JS.API.STREAM.NAMES", "", page(0, 0, 1024, Value::Null)),
        ("$JS.API.STREAM.LIST", "", page(0, 0, 256, json!([]))),
        CREATE_S,
        (
            "$JS.API.STREAM.NAMES",
            r#"{"offset":-1}"#,
            page(1, 0, 1024, json!(["S"])),
        ),
        (
            "$JS.API.STREAM.LIST",
            r#"{"offset":-5}"#,
            page(1, 0, 256, json!(["S"])),
        ),
        (
            "$JS.API.STREAM.NAMES",
            r#"{"offset":5}"#,
            page(1, 1, 1024, Value::Null),
        ),
        (
            "$JS.API.STREAM.LIST",
            r#"{"offset":5}"#,
            page(1, 1, 256, json!([])),
        ),
        ("$JS.API.STREAM.NAMES", "x", page(1, 0, 1024, json!(["S"]))),
        (
            "$JS.API.STREAM.NAMES",
            r#"{"subject":"s"}"#,
            page(0, 0, 1024, Value::Null),
        ),
    ]);
}

/// Consumer creation: the request checks in nats-server's order (10017 before the name/durable
/// mismatch, 10074 before the stream is looked up), names, and filters that may overlap but
/// not contain one another.
#[test]
fn consumer_create_checks() {
    check_cases(&[
        CREATE_S,
        (
            "$JS.API.STREAM.CREATE.M",
            r#"{"name":"M","subjects":["mm"],"storage":"memory"}"#,
            Expect::Done,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.c1",
            r#"{"stream_name":"S","config":{"name":"c1","num_replicas":3}}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.NOPE.c1",
            r#"{"stream_name":"NOPE","config":{"name":"c1","num_replicas":3}}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.c1",
            r#"{"stream_name":"S","config":{"name":"c1","num_replicas":3,"flow_control":true,"deliver_subject":"dd"}}"#,
            Expect::Error(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.c1",
            r#"{"stream_name":"S","config":{"name":"c1","durable_name":"c2"}}"#,
            Expect::Error(
                400,
                10017,
                "consumer name in subject does not match durable name in request",
            ),
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.S.c1",
            r#"{"stream_name":"S","config":{"durable_name":"c2","name":"c3"}}"#,
            Expect::Error(
                400,
                10017,
                "consumer name in subject does not match durable name in request",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.c\0d",
            r#"{"stream_name":"S","config":{"name":"c\u0000d"}}"#,
            Expect::Error(500, 10012, "error creating store for consumer"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"name":"c\u0000d"}}"#,
            Expect::Error(500, 10012, "error creating store for consumer"),
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.S.c\0d",
            r#"{"stream_name":"S","config":{"durable_name":"c\u0000d"}}"#,
            Expect::Error(500, 10012, "error creating store for consumer"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.M.c\0d",
            r#"{"stream_name":"M","config":{"name":"c\u0000d"}}"#,
            Expect::Done,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"name":"c/d"}}"#,
            Expect::Error(400, 10127, "Consumer name can not contain path separators"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"name":"a*"}}"#,
            Expect::Error(
                500,
                10052,
                r"consumer name can not contain '.', '*', '>', '\', '/'",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.c1.s.x",
            r#"{"stream_name":"S","config":{"name":"c1","filter_subjects":["s.x"]}}"#,
            Expect::Error(
                400,
                10137,
                "consumer with multiple subject filters cannot use subject based API",
            ),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.f1",
            r#"{"stream_name":"S","config":{"name":"f1","filter_subjects":["s.a.*","s.*.b"]}}"#,
            Expect::Done,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.f2",
            r#"{"stream_name":"S","config":{"name":"f2","filter_subjects":["s.a.*","s.a.b"]}}"#,
            Expect::Error(400, 10138, "consumer subject filters cannot overlap"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.f3",
            r#"{"stream_name":"S","config":{"name":"f3","filter_subjects":["s.a","s.>.b"]}}"#,
            Expect::Error(400, 10138, "consumer subject filters cannot overlap"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.f4",
            r#"{"stream_name":"S","config":{"name":"f4","filter_subjects":["s.a.>","s..b"]}}"#,
            Expect::Error(500, 10052, "invalid subject"),
        ),
    ]);
}

/// A `STREAM.CREATE` with 60,000 subjects (about 900 KB) is answered within seconds, and while
/// it is handled a publisher on another stream keeps getting its pub acks, each within 2 s.
/// (nats-server 2.15.1 takes over 100 s on this request: natsd only.)
#[tokio::test]
async fn big_stream_create_does_not_stall_pub_acks() {
    let store = TempDir::new();
    let server = Server::natsd(&["-js", "-sd", &store.path().display().to_string()]);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: "P".into(),
        subjects: vec!["p".into()],
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("stream P");

    let publisher = connect(&server.url()).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks = tokio::spawn({
        let done = done.clone();
        async move {
            let mut slowest = Duration::ZERO;
            let mut count = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let ack = tokio::time::timeout(
                    Duration::from_secs(2),
                    publisher.request("p", Bytes::from_static(b"x")),
                )
                .await
                .unwrap_or_else(|_| panic!("no pub ack within 2 s (after {count} acks)"))
                .expect("pub ack");
                let ack: Value = serde_json::from_slice(&ack.payload).expect("JSON ack");
                assert_eq!(ack["stream"], "P", "{ack}");
                slowest = slowest.max(sent.elapsed());
                count += 1;
            }
            (count, slowest)
        }
    });
    // Let the publisher get going before the big request arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let subjects: Vec<String> = (0..60_000).map(|i| format!("big.{i:05}.x")).collect();
    let body = json!({"name": "BIG", "subjects": subjects, "storage": "memory"}).to_string();
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(15),
        client.request("$JS.API.STREAM.CREATE.BIG", Bytes::from(body)),
    )
    .await
    .expect("STREAM.CREATE with 60,000 subjects not answered within 15 s")
    .expect("request");
    let took = started.elapsed();
    let reply: Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
    assert!(reply.get("error").is_none(), "{}", reply["error"]);
    assert_eq!(
        reply["config"]["subjects"].as_array().map(Vec::len),
        Some(60_000)
    );
    // Keep publishing a little past the create, then stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (count, slowest) = acks.await.expect("publisher");
    assert!(
        count > 5,
        "only {count} pub acks while the create ran ({took:?})"
    );
    eprintln!("60,000-subject create answered in {took:?}; {count} pub acks, slowest {slowest:?}");
}

/// A workqueue consumer with 30,000 filters, then a second one: each create is answered within
/// seconds (its own filters and the partition against the other consumer's are checked without
/// comparing every pair; natsd took 155 s for a first consumer of 40,000 filters).
#[test]
fn many_consumer_filters_are_checked_quickly() {
    let store = TempDir::new();
    let server = Server::natsd(&["-js", "-sd", &store.path().display().to_string()]);
    let mut api = Api::connect(&server);
    let stream =
        json!({"name": "WQ", "subjects": ["wq.>"], "retention": "workqueue", "storage": "memory"});
    let reply = api.request("$JS.API.STREAM.CREATE.WQ", &stream.to_string());
    assert!(reply.get("error").is_none(), "{reply}");
    for (name, clash) in [("A", None), ("B", None), ("C", Some("wq.B.7"))] {
        let mut filters: Vec<String> = (0..30_000).map(|i| format!("wq.{name}.{i}")).collect();
        filters.extend(clash.map(String::from));
        let body = json!({"stream_name": "WQ", "config": {
            "durable_name": name, "ack_policy": "explicit", "filter_subjects": filters,
        }});
        let started = Instant::now();
        let reply = api.request(
            &format!("$JS.API.CONSUMER.CREATE.WQ.{name}"),
            &body.to_string(),
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );
        match clash {
            None => assert!(reply.get("error").is_none(), "{name}: {}", reply["error"]),
            Some(_) => assert_eq!(
                reply["error"],
                json!({"code": 400, "err_code": 10100,
                       "description": "filtered consumer not unique on workqueue stream"}),
                "{name}"
            ),
        }
    }
}
