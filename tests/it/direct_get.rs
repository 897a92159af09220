//! JetStream direct gets in batches (ADR-31, nats-server 2.11+): `batch`, `max_bytes`,
//! `start_time`, `multi_last` with `up_to_seq` / `up_to_time`, the per-message batch headers
//! and the `204 EOB` status that ends a batch. async-nats 0.51 has no API for these, so the
//! requests are raw; the installed nats-server 2.9.10 predates them, so the expectations come
//! from nats-server's `getDirectRequest` / `getDirectMulti`.

use std::time::Duration;

use async_nats::jetstream::{self, stream::Config};
use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use natsd_tests::{RawConn, Server, TempDir};
use serde_json::Value;

use crate::{connect, drain_ready, next_msg, round_trip, WAIT};

fn js_server(store: &TempDir) -> Server {
    let dir = store.path().display().to_string();
    Server::natsd(&["-js", "-sd", &dir])
}

/// A memory stream `S` on `subjects` that serves direct gets.
async fn direct_stream(client: &async_nats::Client, subjects: &[&str]) -> jetstream::Context {
    let js = jetstream::new(client.clone());
    js.create_stream(Config {
        name: "S".into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: jetstream::stream::StorageType::Memory,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("create stream");
    js
}

/// Publishes `payload` to `subject` (with `headers`) and waits for the ack; returns the sequence.
async fn store(
    js: &jetstream::Context,
    subject: &str,
    headers: &[(&str, &str)],
    payload: &str,
) -> u64 {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    js.publish_with_headers(subject.to_string(), h, Bytes::from(payload.to_string()))
        .await
        .expect("publish")
        .await
        .expect("ack")
        .sequence
}

/// Sends `body` to `subject` and collects the replies through the first status message (the
/// EOB or a failure), then checks that nothing else follows.
async fn batch(client: &async_nats::Client, subject: &str, body: &str) -> Vec<Message> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(subject.to_string(), inbox, Bytes::from(body.to_string()))
        .await
        .expect("publish request");
    let mut out = Vec::new();
    loop {
        let m = next_msg(&mut sub).await;
        let done = m.status.is_some();
        out.push(m);
        if done {
            break;
        }
    }
    round_trip(client).await;
    assert!(drain_ready(&mut sub).is_empty(), "replies after the status");
    out
}

/// A direct get expected to answer one message and nothing else.
async fn one(client: &async_nats::Client, subject: &str, body: &str) -> Message {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(subject.to_string(), inbox, Bytes::from(body.to_string()))
        .await
        .expect("publish request");
    let m = next_msg(&mut sub).await;
    round_trip(client).await;
    assert!(drain_ready(&mut sub).is_empty(), "more than one reply");
    m
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

/// (status, description) of a status reply.
fn status(m: &Message) -> (u16, &str) {
    (
        m.status.expect("a status reply").as_u16(),
        m.description.as_deref().unwrap_or(""),
    )
}

/// A message reply as (subject, sequence, pending, previous sequence, payload).
fn entry(m: &Message) -> (&str, &str, Option<&str>, Option<&str>, &str) {
    assert!(m.status.is_none(), "a message, not a status: {m:?}");
    (
        header(m, "Nats-Subject").expect("Nats-Subject"),
        header(m, "Nats-Sequence").expect("Nats-Sequence"),
        header(m, "Nats-Num-Pending"),
        header(m, "Nats-Last-Sequence"),
        std::str::from_utf8(&m.payload).expect("utf-8 payload"),
    )
}

#[tokio::test]
async fn batch_by_subject_with_pending_counts_and_eob() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["kv.>"]).await;
    for (subject, payload) in [("kv.a", "1"), ("kv.b", "2"), ("kv.a", "3"), ("kv.b", "4")] {
        store(&js, subject, &[], payload).await;
    }
    store(&js, "kv.a", &[("X-Own", "yes")], "5").await;
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"seq":2,"next_by_subj":"kv.a","batch":5}"#,
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(entry(&got[0]), ("kv.a", "3", Some("1"), Some("0"), "3"));
    assert_eq!(entry(&got[1]), ("kv.a", "5", Some("0"), Some("3"), "5"));
    // The message's own headers stay, the direct-get ones are added.
    assert_eq!(header(&got[1], "X-Own"), Some("yes"));
    assert_eq!(header(&got[1], "Nats-Stream"), Some("S"));
    assert!(header(&got[1], "Nats-Time-Stamp").is_some());
    assert_eq!(status(&got[2]), (204, "EOB"));
    assert_eq!(header(&got[2], "Nats-Num-Pending"), Some("0"));
    assert_eq!(header(&got[2], "Nats-Last-Sequence"), Some("5"));
    assert!(got[2].payload.is_empty());

    // By sequence, with `max_bytes`: "kv.a" + "1" is 5 bytes, two reach 10.
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"seq":1,"batch":4,"max_bytes":10}"#,
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(entry(&got[0]), ("kv.a", "1", Some("4"), Some("0"), "1"));
    assert_eq!(entry(&got[1]), ("kv.b", "2", Some("3"), Some("1"), "2"));
    assert_eq!(header(&got[2], "Nats-Num-Pending"), Some("3"));
    assert_eq!(header(&got[2], "Nats-Last-Sequence"), Some("2"));

    // A deleted sequence is stepped over by a batch, but not by a single get.
    let stream = js.get_stream("S").await.expect("stream");
    assert!(stream.delete_message(2).await.expect("delete"));
    let got = batch(&client, "$JS.API.DIRECT.GET.S", r#"{"seq":2,"batch":1}"#).await;
    assert_eq!(entry(&got[0]), ("kv.a", "3", Some("2"), Some("0"), "3"));
    assert_eq!(header(&got[1], "Nats-Last-Sequence"), Some("3"));
    let m = one(&client, "$JS.API.DIRECT.GET.S", r#"{"seq":2}"#).await;
    assert_eq!(status(&m), (404, "Message Not Found"));
    // A single get has no batch headers.
    let m = one(&client, "$JS.API.DIRECT.GET.S", r#"{"seq":3}"#).await;
    assert_eq!(header(&m, "Nats-Sequence"), Some("3"));
    assert_eq!(header(&m, "Nats-Num-Pending"), None);
}

/// The exact bytes of a batch on the wire: each message's header block ends with the batch
/// headers, and the EOB is an empty message with a status line and two headers.
#[tokio::test]
async fn batch_and_eob_bytes_on_the_wire() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["w.>"]).await;
    for payload in ["a", "b", "c"] {
        store(&js, "w.x", &[], payload).await;
    }
    let mut raw = RawConn::connect(&server.addr());
    let body = r#"{"seq":2,"batch":5}"#;
    raw.send(format!(
        "CONNECT {{\"verbose\":false,\"headers\":true}}\r\nSUB r.1 1\r\nPUB $JS.API.DIRECT.GET.S r.1 {}\r\n{body}\r\n",
        body.len()
    ));
    let eob = "NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 3\r\n\r\n";
    let want_end = format!("HMSG r.1 1 {0} {0}\r\n{eob}\r\n", eob.len());
    let got = raw
        .read_until(want_end.as_bytes(), WAIT)
        .unwrap_or_else(|got| panic!("no EOB; got {}", String::from_utf8_lossy(&got)));
    let text = String::from_utf8(got).expect("utf-8");
    let msgs: Vec<&str> = text.split("HMSG ").filter(|m| !m.is_empty()).collect();
    assert_eq!(msgs.len(), 3, "{text}");
    for (m, (seq, pending, last, payload)) in msgs
        .iter()
        .zip([("2", "1", "0", "b"), ("3", "0", "2", "c")])
    {
        assert!(m.starts_with("r.1 1 "), "{m}");
        let block = m.split_once("\r\n").expect("control line").1;
        assert!(block.starts_with(&format!(
            "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: w.x\r\nNats-Sequence: {seq}\r\nNats-Time-Stamp: "
        )), "{m}");
        assert!(
            block.ends_with(&format!(
            "Z\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n\r\n{payload}\r\n"
        )),
            "{m}"
        );
    }
    assert_eq!(format!("HMSG {}", msgs[2]), want_end);
    assert!(raw.ping_pong().is_empty());
}

#[tokio::test]
async fn multi_last_up_to_seq_time_and_paging() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["m.>"]).await;
    for (subject, payload) in [
        ("m.a", "1"),
        ("m.b", "2"),
        ("m.c", "3"),
        ("m.a", "4"),
        ("m.b", "5"),
    ] {
        store(&js, subject, &[], payload).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["m.a","m.b"]}"#,
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(entry(&got[0]), ("m.a", "4", Some("1"), Some("0"), "4"));
    assert_eq!(entry(&got[1]), ("m.b", "5", Some("0"), Some("4"), "5"));
    assert_eq!(status(&got[2]), (204, "EOB"));
    assert_eq!(header(&got[2], "Nats-Num-Pending"), Some("0"));
    assert_eq!(header(&got[2], "Nats-Last-Sequence"), Some("5"));
    assert_eq!(header(&got[2], "Nats-UpTo-Sequence"), Some("5"));

    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["m.*"],"up_to_seq":3}"#,
    )
    .await;
    let seqs: Vec<&str> = got[..3].iter().map(|m| entry(m).1).collect();
    assert_eq!(seqs, ["1", "2", "3"]);
    assert_eq!(header(&got[3], "Nats-UpTo-Sequence"), Some("3"));

    // Paging: a batch of two, then resume after the last sequence seen.
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["m.*"],"batch":2}"#,
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(entry(&got[0]), ("m.c", "3", Some("2"), Some("0"), "3"));
    assert_eq!(entry(&got[1]), ("m.a", "4", Some("1"), Some("3"), "4"));
    assert_eq!(header(&got[2], "Nats-Num-Pending"), Some("1"));
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["m.*"],"batch":2,"seq":5}"#,
    )
    .await;
    assert_eq!(got.len(), 2);
    assert_eq!(entry(&got[0]), ("m.b", "5", Some("0"), Some("0"), "5"));

    // Up to the time of message 4: the ceiling is sequence 3.
    let t4 = header(
        &one(&client, "$JS.API.DIRECT.GET.S", r#"{"seq":4}"#).await,
        "Nats-Time-Stamp",
    )
    .expect("time stamp")
    .to_string();
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        &format!(r#"{{"multi_last":["m.a"],"up_to_time":"{t4}"}}"#),
    )
    .await;
    assert_eq!(entry(&got[0]).1, "1");
    assert_eq!(header(&got[1], "Nats-UpTo-Sequence"), Some("3"));
    // Before the first message there is nothing.
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["m.a"],"up_to_time":"2001-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(status(&got[0]), (404, "No Results"));
    let got = batch(&client, "$JS.API.DIRECT.GET.S", r#"{"multi_last":["x.>"]}"#).await;
    assert_eq!(status(&got[0]), (404, "No Results"));
}

/// nats-server answers at most 1024 subjects to one multi-last request.
#[tokio::test]
async fn multi_last_over_1024_subjects_is_413() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["k.>"]).await;
    for i in 0..1025 {
        client
            .publish(format!("k.{i}"), Bytes::from_static(b"v"))
            .await
            .expect("publish");
    }
    assert_eq!(store(&js, "k.0", &[], "last").await, 1026);
    let got = batch(&client, "$JS.API.DIRECT.GET.S", r#"{"multi_last":["k.*"]}"#).await;
    assert_eq!(got.len(), 1);
    assert_eq!(status(&got[0]), (413, "Too Many Results"));
    // Below the limit it answers, capped by `batch`.
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"multi_last":["k.1","k.2","k.0"],"batch":2}"#,
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(entry(&got[0]).1, "2");
    assert_eq!(entry(&got[1]).1, "3");
    assert_eq!(header(&got[2], "Nats-Num-Pending"), Some("1"));
    assert_eq!(header(&got[2], "Nats-UpTo-Sequence"), Some("1026"));
}

#[tokio::test]
async fn start_time_in_direct_and_msg_get() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["t.>"]).await;
    for (subject, payload) in [("t.a", "1"), ("t.b", "2"), ("t.a", "3")] {
        store(&js, subject, &[("X-N", payload)], payload).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t2 = header(
        &one(&client, "$JS.API.DIRECT.GET.S", r#"{"seq":2}"#).await,
        "Nats-Time-Stamp",
    )
    .expect("time stamp")
    .to_string();
    let m = one(
        &client,
        "$JS.API.DIRECT.GET.S",
        &format!(r#"{{"start_time":"{t2}"}}"#),
    )
    .await;
    assert_eq!(entry(&m), ("t.b", "2", None, None, "2"));
    let m = one(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"start_time":"2001-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(entry(&m).1, "1");
    let m = one(
        &client,
        "$JS.API.DIRECT.GET.S",
        r#"{"start_time":"2200-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(status(&m), (404, "Message Not Found"));
    let got = batch(
        &client,
        "$JS.API.DIRECT.GET.S",
        &format!(r#"{{"start_time":"{t2}","next_by_subj":"t.a","batch":3}}"#),
    )
    .await;
    assert_eq!(got.len(), 2);
    assert_eq!(entry(&got[0]), ("t.a", "3", Some("0"), Some("0"), "3"));
    assert_eq!(header(&got[1], "Nats-Last-Sequence"), Some("3"));

    // STREAM.MSG.GET takes `start_time` (and `no_hdr`) too, but no batch.
    let get = |body: String| {
        let client = client.clone();
        async move {
            let msg = tokio::time::timeout(
                WAIT,
                client.request("$JS.API.STREAM.MSG.GET.S", Bytes::from(body)),
            )
            .await
            .expect("request timed out")
            .expect("request");
            serde_json::from_slice::<Value>(&msg.payload).expect("JSON reply")
        }
    };
    let r = get(format!(r#"{{"start_time":"{t2}","next_by_subj":"t.a"}}"#)).await;
    assert_eq!(r["message"]["seq"], 3);
    assert!(r["message"]["hdrs"].is_string());
    let r = get(format!(r#"{{"start_time":"{t2}","no_hdr":true}}"#)).await;
    assert_eq!(r["message"]["seq"], 2);
    assert!(r["message"].get("hdrs").is_none());
    for body in [
        r#"{"seq":1,"batch":2}"#.to_string(),
        r#"{"seq":1,"max_bytes":2}"#.to_string(),
        format!(r#"{{"seq":1,"start_time":"{t2}"}}"#),
        format!(r#"{{"last_by_subj":"t.a","start_time":"{t2}"}}"#),
        r#"{"multi_last":["t.a"]}"#.to_string(),
    ] {
        let r = get(body.clone()).await;
        assert_eq!(r["error"]["err_code"], 10003, "{body}: {r}");
    }
    // `multi_last` is ignored where a selector is given.
    let r = get(r#"{"seq":1,"multi_last":["t.b"]}"#.to_string()).await;
    assert_eq!(r["message"]["seq"], 1);
}

#[tokio::test]
async fn refusals_as_nats_server() {
    let dir = TempDir::new();
    let server = js_server(&dir);
    let client = connect(&server.url()).await;
    let js = direct_stream(&client, &["r.>"]).await;
    store(&js, "r.a", &[], "1").await;
    for (subject, body, want) in [
        ("$JS.API.DIRECT.GET.S", "", (408, "Empty Request")),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"batch":2}"#,
            (408, "Empty Request"),
        ),
        ("$JS.API.DIRECT.GET.S", "{", (408, "Malformed Request")),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"start_time":"soon"}"#,
            (408, "Malformed Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"last_by_subj":"r.a","batch":2}"#,
            (408, "Bad Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"next_by_subj":"r.a","multi_last":["r.a"]}"#,
            (408, "Bad Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"multi_last":["r.a"],"up_to_seq":1,"up_to_time":"2001-01-01T00:00:00Z"}"#,
            (408, "Bad Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S.r.a",
            r#"{"batch":2}"#,
            (408, "Bad Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S.r.a",
            r#"{"up_to_seq":2}"#,
            (408, "Bad Request"),
        ),
        (
            "$JS.API.DIRECT.GET.S",
            r#"{"seq":9,"batch":2}"#,
            (404, "Message Not Found"),
        ),
        ("$JS.API.DIRECT.GET.S.r.b", "", (404, "Message Not Found")),
        (
            "$JS.API.DIRECT.GET.NONE",
            r#"{"seq":1,"batch":2}"#,
            (503, ""),
        ),
    ] {
        let m = one(&client, subject, body).await;
        assert_eq!(status(&m), want, "{subject} {body}");
        assert!(m.payload.is_empty());
    }
    // The subject-appended form still takes `no_hdr`.
    let m = one(&client, "$JS.API.DIRECT.GET.S.r.a", r#"{"no_hdr":true}"#).await;
    assert!(m.headers.is_none());
    assert_eq!(m.payload, "1");
}
