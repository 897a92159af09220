//! JetStream streams through async-nats's `jetstream` module (and raw requests where the exact
//! JSON matters): the stream API, publish acks and their errors, limits, persistence across
//! restarts and `kill -9`.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, StorageType},
};
use async_nats::{ConnectOptions, HeaderMap};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use natsd_tests::{RawConn, Server, TempDir};
use serde_json::{json, Value};

use crate::{connect, login, WAIT};

fn js_server(store: &TempDir) -> Server {
    let dir = store.path().display().to_string();
    Server::natsd(&["-js", "-sd", &dir])
}

fn mem_config(name: &str, subjects: &[&str]) -> Config {
    Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: StorageType::Memory,
        ..Default::default()
    }
}

/// A raw request; the reply parsed as JSON.
async fn request(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let msg = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .expect("request timed out")
    .expect("request");
    serde_json::from_slice(&msg.payload).expect("JSON reply")
}

/// A raw publish with headers to a stream subject; the pub ack parsed as JSON.
pub(crate) async fn publish_raw(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    let msg = tokio::time::timeout(
        WAIT,
        client.request_with_headers(subject.to_string(), h, Bytes::from_static(b"data")),
    )
    .await
    .expect("publish timed out")
    .expect("publish");
    serde_json::from_slice(&msg.payload).expect("JSON ack")
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &str) -> u64 {
    crate::publish_acked(js, subject, payload.to_string()).await
}

#[tokio::test]
async fn info_reports_jetstream_and_account() {
    let store = TempDir::new();
    let server = js_server(&store);
    let info = RawConn::connect_only(&server.addr()).read_info();
    assert_eq!(info["jetstream"], true);
    assert!(server.log_contents().contains("Starting JetStream"));
    assert!(server
        .log_contents()
        .contains(&store.path().join("jetstream").display().to_string()));
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(mem_config("A", &["a.>"]))
        .await
        .expect("create");
    publish(&js, "a.1", "hello").await;
    let account = js.query_account().await.expect("account info");
    assert_eq!(account.streams, 1);
    assert_eq!(account.consumers, 0);
    // nats-server's memory-store size: subject + headers + payload + 16.
    assert_eq!(account.memory, 3 + 5 + 16);
    assert_eq!(account.storage, 0);
    assert_eq!(account.limits.max_streams, None);
    let raw = request(&client, "$JS.API.INFO", "").await;
    assert_eq!(
        raw["type"],
        "io.nats.jetstream.api.v1.account_info_response"
    );
    assert_eq!(raw["limits"]["max_memory"], -1);
    // create and query_account (this request is counted once answered, as 2.15.1); none failed.
    assert_eq!(raw["api"], json!({"level": 1, "total": 2, "errors": 0}));
}

#[tokio::test]
async fn without_jetstream_the_flag_is_off() {
    let server = Server::natsd(&[]);
    let info = RawConn::connect_only(&server.addr()).read_info();
    assert!(info.get("jetstream").is_none());
}

#[tokio::test]
async fn create_info_update_delete() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js
        .create_stream(Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into()],
            max_messages: 100,
            ..Default::default()
        })
        .await
        .expect("create");
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.config.name, "ORDERS");
    assert_eq!(info.config.subjects, ["orders.*"]);
    assert_eq!(info.config.max_messages, 100);
    assert_eq!(info.config.max_bytes, -1);
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.num_replicas, 1);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(info.state.messages, 0);
    // The same config again is fine; a different one is refused.
    js.create_stream(Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.*".into()],
        max_messages: 100,
        ..Default::default()
    })
    .await
    .expect("idempotent create");
    let raw = request(
        &client,
        "$JS.API.STREAM.CREATE.ORDERS",
        r#"{"name":"ORDERS","subjects":["other"]}"#,
    )
    .await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}})
    );
    // Overlapping subjects across streams.
    let raw = request(
        &client,
        "$JS.API.STREAM.CREATE.OTHER",
        r#"{"name":"OTHER","subjects":["orders.new"]}"#,
    )
    .await;
    assert_eq!(raw["error"]["err_code"], 10065);
    // Name in the subject must match the body.
    let raw = request(&client, "$JS.API.STREAM.CREATE.X", r#"{"name":"Y"}"#).await;
    assert_eq!(raw["error"]["err_code"], 10056);
    let raw = request(&client, "$JS.API.STREAM.CREATE.X", "{not json").await;
    assert_eq!(raw["error"]["err_code"], 10025);
    // Update: limits may change, storage may not.
    let updated = js
        .update_stream(Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into(), "returns.*".into()],
            max_messages: 5,
            ..Default::default()
        })
        .await
        .expect("update");
    assert_eq!(updated.config.max_messages, 5);
    assert_eq!(updated.config.subjects, ["orders.*", "returns.*"]);
    assert_eq!(publish(&js, "returns.1", "r").await, 1);
    let raw = request(
        &client,
        "$JS.API.STREAM.UPDATE.ORDERS",
        r#"{"name":"ORDERS","subjects":["orders.*"],"storage":"memory"}"#,
    )
    .await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_update_response","error":{"code":500,"err_code":10052,"description":"stream configuration update can not change storage type"}})
    );
    let raw = request(&client, "$JS.API.STREAM.UPDATE.NOPE", r#"{"name":"NOPE"}"#).await;
    assert_eq!(raw["error"]["err_code"], 10059);
    // Delete.
    assert!(js.delete_stream("ORDERS").await.expect("delete").success);
    let raw = request(&client, "$JS.API.STREAM.INFO.ORDERS", "").await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}})
    );
    assert!(js.get_stream("ORDERS").await.is_err());
    assert!(!store.path().join("jetstream/$G/streams/ORDERS").exists());
}

#[tokio::test]
async fn names_and_list_with_filter_and_paging() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    for (name, subj) in [("B", "b.>"), ("A", "a.>"), ("C", "c.x")] {
        js.create_stream(mem_config(name, &[subj]))
            .await
            .expect("create");
    }
    // The client hands pages out in its own order; the server's order is checked raw below.
    let mut names: Vec<String> = js.stream_names().try_collect().await.expect("names");
    names.sort();
    assert_eq!(names, ["A", "B", "C"]);
    let infos: Vec<_> = js.streams().try_collect().await.expect("list");
    let mut listed: Vec<&str> = infos.iter().map(|i| i.config.name.as_str()).collect();
    listed.sort_unstable();
    assert_eq!(listed, ["A", "B", "C"]);
    let raw = request(&client, "$JS.API.STREAM.NAMES", r#"{"subject":"b.1"}"#).await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_names_response","total":1,"offset":0,"limit":1024,"streams":["B"]})
    );
    let raw = request(&client, "$JS.API.STREAM.NAMES", "").await;
    assert_eq!(raw["streams"], json!(["A", "B", "C"]));
    let raw = request(&client, "$JS.API.STREAM.NAMES", r#"{"offset":2}"#).await;
    assert_eq!(raw["streams"], json!(["C"]));
    assert_eq!(raw["total"], 3);
    let raw = request(&client, "$JS.API.STREAM.LIST", r#"{"offset":1}"#).await;
    assert_eq!(raw["limit"], 256);
    assert_eq!(raw["streams"].as_array().unwrap().len(), 2);
    assert_eq!(raw["streams"][0]["config"]["name"], "B");
    let raw = request(&client, "$JS.API.STREAM.NAMES", r#"{"subject":"zzz"}"#).await;
    assert_eq!(raw["streams"], Value::Null);
}

#[tokio::test]
async fn publish_acks_get_and_direct_get() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(Config {
            allow_direct: true,
            ..mem_config("KV", &["kv.>"])
        })
        .await
        .expect("create");
    for (i, (subj, payload)) in [("kv.a", "1"), ("kv.b", "2"), ("kv.a", "3"), ("kv.c", "4")]
        .iter()
        .enumerate()
    {
        assert_eq!(publish(&js, subj, payload).await, i as u64 + 1);
    }
    // The ack JSON itself.
    let ack = publish_raw(&client, "kv.d", &[]).await;
    assert_eq!(ack, json!({"stream":"KV","seq":5}));
    let m = stream.get_raw_message(2).await.expect("get 2");
    assert_eq!((m.subject.as_str(), m.sequence), ("kv.b", 2));
    assert_eq!(m.payload, "2");
    let m = stream
        .get_last_raw_message_by_subject("kv.a")
        .await
        .expect("last kv.a");
    assert_eq!((m.sequence, &m.payload[..]), (3, &b"3"[..]));
    let m = stream
        .get_next_raw_message_by_subject("kv.c")
        .await
        .expect("next kv.c");
    assert_eq!(m.sequence, 4);
    let m = stream.direct_get(3).await.expect("direct get");
    assert_eq!((m.subject.as_str(), &m.payload[..]), ("kv.a", &b"3"[..]));
    assert_eq!(m.headers.get("Nats-Stream").map(|v| v.as_str()), Some("KV"));
    let m = stream
        .direct_get_last_for_subject("kv.b")
        .await
        .expect("direct last");
    assert_eq!(m.sequence, 2);
    assert!(stream.direct_get(99).await.is_err());
    let raw = request(&client, "$JS.API.STREAM.MSG.GET.KV", r#"{"seq":99}"#).await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,"err_code":10037,"description":"no message found"}})
    );
    let raw = request(&client, "$JS.API.STREAM.MSG.GET.KV", r#"{"seq":1}"#).await;
    assert_eq!(raw["message"]["subject"], "kv.a");
    assert_eq!(raw["message"]["data"], "MQ==");
    assert!(raw["message"].get("hdrs").is_none());
    let raw = request(&client, "$JS.API.STREAM.MSG.GET.KV", r#"{}"#).await;
    assert_eq!(raw["error"]["err_code"], 10003);
    // Delete a message, then it is gone and counted as deleted.
    assert!(stream.delete_message(2).await.expect("delete msg"));
    assert!(stream.get_raw_message(2).await.is_err());
    let raw = request(&client, "$JS.API.STREAM.MSG.DELETE.KV", r#"{"seq":2}"#).await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","error":{"code":400,"err_code":10043,"description":"sequence 2 not found"}})
    );
    let raw = request(
        &client,
        "$JS.API.STREAM.MSG.DELETE.KV",
        r#"{"seq":4,"no_erase":true}"#,
    )
    .await;
    assert_eq!(raw["success"], true);
    let raw = request(
        &client,
        "$JS.API.STREAM.INFO.KV",
        r#"{"deleted_details":true,"subjects_filter":"kv.*"}"#,
    )
    .await;
    assert_eq!(raw["state"]["messages"], 3);
    assert_eq!(raw["state"]["num_deleted"], 2);
    assert_eq!(raw["state"]["deleted"], json!([2, 4]));
    assert_eq!(raw["state"]["subjects"], json!({"kv.a": 2, "kv.d": 1}));
    assert_eq!(raw["state"]["first_seq"], 1);
    assert_eq!(raw["state"]["last_seq"], 5);
}

#[tokio::test]
async fn purge_with_filter_keep_and_seq() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js
        .create_stream(mem_config("P", &["p.*"]))
        .await
        .expect("create");
    for i in 0..10 {
        publish(&js, if i % 2 == 0 { "p.even" } else { "p.odd" }, "x").await;
    }
    let r = stream
        .purge()
        .filter("p.even")
        .keep(1)
        .await
        .expect("purge");
    assert_eq!((r.success, r.purged), (true, 4));
    // Left: 2 4 6 8 10 (odd) and 9 (even); below 4 only 2 remains.
    let r = stream.purge().sequence(4).await.expect("purge seq");
    assert_eq!(r.purged, 1);
    assert_eq!(stream.info().await.expect("info").state.messages, 5);
    let raw = request(&client, "$JS.API.STREAM.PURGE.P", r#"{"seq":5,"keep":1}"#).await;
    assert_eq!(raw["error"]["err_code"], 10003);
    let r = stream.purge().await.expect("purge all");
    assert_eq!(r.purged, 5);
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 0);
    assert_eq!(info.state.first_sequence, 11);
    assert_eq!(publish(&js, "p.odd", "after").await, 11);
}

#[tokio::test]
async fn dedup_and_expected_headers() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(mem_config("D", &["d.*"]))
        .await
        .expect("create");
    let ack = publish_raw(&client, "d.1", &[("Nats-Msg-Id", "one")]).await;
    assert_eq!(ack, json!({"stream":"D","seq":1}));
    let ack = publish_raw(&client, "d.1", &[("Nats-Msg-Id", "one")]).await;
    assert_eq!(ack, json!({"stream":"D","seq":1,"duplicate":true}));
    let ack = js
        .send_publish(
            "d.2",
            jetstream::message::PublishMessage::build()
                .message_id("one")
                .payload(Bytes::from_static(b"x")),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert!(ack.duplicate);
    assert_eq!(ack.sequence, 1);
    let ack = publish_raw(&client, "d.2", &[("Nats-Expected-Stream", "OTHER")]).await;
    assert_eq!(
        ack,
        json!({"error":{"code":400,"err_code":10060,"description":"expected stream does not match"},"stream":"D","seq":0})
    );
    let ack = publish_raw(&client, "d.2", &[("Nats-Expected-Last-Sequence", "7")]).await;
    assert_eq!(ack["error"]["err_code"], 10071);
    assert_eq!(ack["error"]["description"], "wrong last sequence: 1");
    let ack = publish_raw(&client, "d.2", &[("Nats-Expected-Last-Sequence", "1")]).await;
    assert_eq!(ack["seq"], 2);
    let ack = publish_raw(
        &client,
        "d.1",
        &[("Nats-Expected-Last-Subject-Sequence", "2")],
    )
    .await;
    assert_eq!(ack["error"]["description"], "wrong last sequence: 1");
    let ack = publish_raw(
        &client,
        "d.1",
        &[("Nats-Expected-Last-Subject-Sequence", "1")],
    )
    .await;
    assert_eq!(ack["seq"], 3);
    let ack = publish_raw(&client, "d.3", &[("Nats-Expected-Last-Msg-Id", "one")]).await;
    assert_eq!(
        ack["error"],
        json!({"code":400,"err_code":10070,"description":"wrong last msg ID: "})
    );
    publish_raw(&client, "d.3", &[("Nats-Msg-Id", "two")]).await;
    let ack = publish_raw(&client, "d.3", &[("Nats-Expected-Last-Msg-Id", "two")]).await;
    assert_eq!(ack["seq"], 5);
    // Roll-ups are refused unless allowed.
    let ack = publish_raw(&client, "d.3", &[("Nats-Rollup", "sub")]).await;
    assert_eq!(ack["error"]["err_code"], 10111);
}

#[tokio::test]
async fn rollups_replace_a_subject_or_everything() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js
        .create_stream(Config {
            allow_rollup: true,
            ..mem_config("R", &["r.*"])
        })
        .await
        .expect("create");
    for subj in ["r.a", "r.a", "r.b"] {
        publish(&js, subj, "x").await;
    }
    publish_raw(&client, "r.a", &[("Nats-Rollup", "sub")]).await;
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 2);
    publish_raw(&client, "r.c", &[("Nats-Rollup", "all")]).await;
    let info = stream.info().await.expect("info").clone();
    assert_eq!((info.state.messages, info.state.first_sequence), (1, 5));
    let ack = publish_raw(&client, "r.c", &[("Nats-Rollup", "bogus")]).await;
    assert_eq!(
        ack["error"]["description"],
        "rollup value invalid: \"bogus\""
    );
}

#[tokio::test]
async fn limits_and_discard_policies() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    // max_msgs with discard old keeps the newest.
    let mut old = js
        .create_stream(Config {
            max_messages: 3,
            ..mem_config("OLD", &["old"])
        })
        .await
        .expect("create");
    for i in 1..=5 {
        publish(&js, "old", &i.to_string()).await;
    }
    let info = old.info().await.expect("info").clone();
    assert_eq!((info.state.messages, info.state.first_sequence), (3, 3));
    // Discard new refuses with nats-server's error.
    js.create_stream(Config {
        max_messages: 2,
        discard: DiscardPolicy::New,
        ..mem_config("NEW", &["new"])
    })
    .await
    .expect("create");
    publish(&js, "new", "1").await;
    publish(&js, "new", "2").await;
    let ack = publish_raw(&client, "new", &[]).await;
    assert_eq!(
        ack,
        json!({"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"NEW","seq":0})
    );
    // Per subject, with discard new per subject.
    let mut per = js
        .create_stream(Config {
            max_messages_per_subject: 2,
            ..mem_config("PER", &["per.*"])
        })
        .await
        .expect("create");
    for subj in ["per.a", "per.a", "per.a", "per.b"] {
        publish(&js, subj, "x").await;
    }
    let info = per.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 3);
    js.create_stream(Config {
        max_messages_per_subject: 1,
        discard: DiscardPolicy::New,
        discard_new_per_subject: true,
        ..mem_config("PERNEW", &["pn.*"])
    })
    .await
    .expect("create");
    publish(&js, "pn.a", "x").await;
    let ack = publish_raw(&client, "pn.a", &[]).await;
    assert_eq!(
        ack["error"]["description"],
        "maximum messages per subject exceeded"
    );
    assert_eq!(publish_raw(&client, "pn.b", &[]).await["seq"], 2);
    // max_bytes with discard new.
    js.create_stream(Config {
        max_bytes: 100,
        discard: DiscardPolicy::New,
        ..mem_config("BYTES", &["bytes"])
    })
    .await
    .expect("create");
    let mut refused = None;
    for _ in 0..10 {
        let ack = publish_raw(&client, "bytes", &[]).await;
        if ack.get("error").is_some() {
            refused = Some(ack);
            break;
        }
    }
    assert_eq!(
        refused.expect("refused before 10 messages")["error"]["description"],
        "maximum bytes exceeded"
    );
    // max_msg_size.
    js.create_stream(Config {
        max_message_size: 8,
        ..mem_config("SIZE", &["size"])
    })
    .await
    .expect("create");
    let err = js
        .publish("size", Bytes::from_static(b"123456789"))
        .await
        .expect("publish")
        .await
        .expect_err("too big");
    assert!(
        err.to_string()
            .contains("message size exceeds maximum allowed"),
        "{err}"
    );
    assert_eq!(publish(&js, "size", "12345678").await, 1);
}

#[tokio::test]
async fn max_age_expires_messages() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js
        .create_stream(Config {
            max_age: Duration::from_millis(300),
            ..mem_config("AGE", &["age"])
        })
        .await
        .expect("create");
    publish(&js, "age", "x").await;
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if stream.info().await.expect("info").state.messages == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message did not expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream.cached_info().state.last_sequence, 1);
}

#[tokio::test]
async fn sealed_and_deny_flags() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(Config {
        deny_delete: true,
        deny_purge: true,
        ..mem_config("S", &["s"])
    })
    .await
    .expect("create");
    publish(&js, "s", "x").await;
    let raw = request(&client, "$JS.API.STREAM.MSG.DELETE.S", r#"{"seq":1}"#).await;
    assert_eq!(raw["error"]["description"], "message delete not permitted");
    let raw = request(&client, "$JS.API.STREAM.PURGE.S", "").await;
    assert_eq!(raw["error"]["description"], "stream purge not permitted");
    js.update_stream(Config {
        deny_delete: true,
        deny_purge: true,
        sealed: true,
        ..mem_config("S", &["s"])
    })
    .await
    .expect("seal");
    let ack = publish_raw(&client, "s", &[]).await;
    assert_eq!(
        ack["error"],
        json!({"code":400,"err_code":10109,"description":"invalid operation on sealed stream"})
    );
    let raw = request(
        &client,
        "$JS.API.STREAM.UPDATE.S",
        r#"{"name":"S","subjects":["s"],"storage":"memory","deny_delete":true,"deny_purge":true}"#,
    )
    .await;
    assert_eq!(
        raw["error"]["description"],
        "stream configuration update can not unseal a sealed stream"
    );
}

#[tokio::test]
async fn consumer_api_answers_instead_of_hanging() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(mem_config("C", &["c"]))
        .await
        .expect("create");
    let raw = request(&client, "$JS.API.CONSUMER.INFO.C.dur", "").await;
    assert_eq!(raw["error"]["err_code"], 10014);
    let raw = request(&client, "$JS.API.CONSUMER.INFO.NOPE.dur", "").await;
    assert_eq!(raw["error"]["err_code"], 10059);
    let raw = request(&client, "$JS.API.CONSUMER.NAMES.C", "").await;
    assert_eq!(raw["total"], 0);
    let raw = request(
        &client,
        "$JS.API.CONSUMER.CREATE.C",
        r#"{"stream_name":"C","config":{}}"#,
    )
    .await;
    assert_eq!(
        raw["type"],
        "io.nats.jetstream.api.v1.consumer_create_response"
    );
    assert_eq!(raw["config"]["ack_policy"], "none");
    let name = raw["name"].as_str().expect("generated name").to_string();
    let raw = request(&client, "$JS.API.CONSUMER.NAMES.C", "").await;
    assert_eq!(raw["consumers"], json!([name]));
    // An unknown API subject gets no responders, as from nats-server.
    let err = client
        .request("$JS.API.NOPE", Bytes::new())
        .await
        .expect_err("no responders");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn accounts_without_jetstream_get_the_error() {
    let store = TempDir::new();
    let conf = format!(
        "jetstream {{ store_dir: {:?} }}\naccounts {{\n  JS: {{ jetstream: enabled, users: [{{user: a, password: a}}] }}\n  NOJS: {{ users: [{{user: b, password: b}}] }}\n}}\n",
        store.path().display().to_string()
    );
    let server = Server::natsd_with_config(&conf, &[]);
    let login = |user: &str| {
        ConnectOptions::with_user_and_password(user.into(), user.into()).connect(server.url())
    };
    let a = tokio::time::timeout(WAIT, login("a"))
        .await
        .expect("connect timed out")
        .expect("connect a");
    let b = tokio::time::timeout(WAIT, login("b"))
        .await
        .expect("connect timed out")
        .expect("connect b");
    let js = jetstream::new(a.clone());
    js.create_stream(mem_config("X", &["x"]))
        .await
        .expect("create in JS account");
    let raw = request(&b, "$JS.API.INFO", "").await;
    assert_eq!(
        raw,
        json!({"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":503,"err_code":10039,"description":"JetStream not enabled for account"}})
    );
    // Account isolation: b's publish on "x" is not stored in a's stream.
    b.publish("x", Bytes::from_static(b"b"))
        .await
        .expect("publish");
    crate::round_trip(&b).await;
    assert_eq!(publish(&js, "x", "a").await, 1);
}

#[tokio::test]
async fn file_stream_survives_restart() {
    let store = TempDir::new();
    let mut server = js_server(&store);
    {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client.clone());
        js.create_stream(Config {
            name: "F".into(),
            subjects: vec!["f.*".into()],
            max_messages_per_subject: 10,
            description: Some("kept".into()),
            ..Default::default()
        })
        .await
        .expect("create");
        for i in 1..=20 {
            publish(&js, &format!("f.{}", i % 3), &format!("payload-{i}")).await;
        }
        publish_raw(&client, "f.x", &[("Nats-Msg-Id", "dedup-me")]).await;
        js.create_stream(mem_config("M", &["m"]))
            .await
            .expect("mem");
        publish(&js, "m", "gone").await;
    }
    server.restart();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream("F").await.expect("stream is back");
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.config.description.as_deref(), Some("kept"));
    assert_eq!(info.config.max_messages_per_subject, 10);
    assert_eq!(info.state.messages, 21);
    assert_eq!(info.state.last_sequence, 21);
    for seq in [1u64, 7, 20] {
        let m = stream.get_raw_message(seq).await.expect("get");
        assert_eq!(m.payload, format!("payload-{seq}"));
    }
    // The duplicate window survives too.
    let ack = publish_raw(&client, "f.x", &[("Nats-Msg-Id", "dedup-me")]).await;
    assert_eq!(ack, json!({"stream":"F","seq":21,"duplicate":true}));
    assert_eq!(publish(&js, "f.1", "next").await, 22);
    // Memory streams do not survive a restart (nor do they in nats-server).
    let names: Vec<String> = js.stream_names().try_collect().await.expect("names");
    assert_eq!(names, ["F"]);
}

/// A tiny deterministic PRNG (xorshift) seeded from the clock, for kill points.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let store = TempDir::new();
    let mut server = js_server(&store);
    let mut rng = Rng::new();
    let mut acked: Vec<(u64, String)> = Vec::new();
    {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client);
        js.create_stream(Config {
            name: "K".into(),
            subjects: vec!["k.*".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    }
    for round in 0..4 {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let publisher = tokio::spawn(async move {
            for i in 0u64.. {
                let payload = format!("round-{round}-msg-{i}-{}", "x".repeat((i % 50) as usize));
                let Ok(ack) = js
                    .publish(format!("k.{}", i % 7), Bytes::from(payload.clone()))
                    .await
                else {
                    return;
                };
                match ack.await {
                    Ok(ack) => {
                        if tx.send((ack.sequence, payload)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1500))).await;
        server.signal("KILL");
        let _ = tokio::time::timeout(WAIT, publisher).await;
        while let Ok(item) = rx.try_recv() {
            acked.push(item);
        }
        server.restart();
        let client = connect(&server.url()).await;
        let js = jetstream::new(client);
        let stream = js.get_stream("K").await.expect("stream after kill -9");
        let round_acks = acked.len();
        assert!(round_acks > 0, "round {round}: nothing was acknowledged");
        for (seq, payload) in &acked {
            let m = stream
                .get_raw_message(*seq)
                .await
                .unwrap_or_else(|e| panic!("round {round}: acked seq {seq} lost: {e}"));
            assert_eq!(&m.payload[..], payload.as_bytes(), "seq {seq}");
        }
    }
    assert!(server.log_contents().contains("Restored"));
}

#[tokio::test]
async fn key_value_bucket_works_on_streams() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "cfg".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("create bucket");
    assert_eq!(
        kv.put("a.b", Bytes::from_static(b"1")).await.expect("put"),
        1
    );
    assert_eq!(
        kv.put("a.b", Bytes::from_static(b"2")).await.expect("put"),
        2
    );
    kv.put("c", Bytes::from_static(b"3")).await.expect("put");
    assert_eq!(
        kv.get("a.b").await.expect("get"),
        Some(Bytes::from_static(b"2"))
    );
    let entry = kv.entry("a.b").await.expect("entry").expect("present");
    assert_eq!((entry.revision, &entry.value[..]), (2, &b"2"[..]));
    // create() refuses an existing key (expected last subject sequence).
    assert!(kv.create("c", Bytes::from_static(b"x")).await.is_err());
    assert_eq!(
        kv.update("c", Bytes::from_static(b"4"), 3)
            .await
            .expect("update"),
        4
    );
    kv.delete("c").await.expect("delete");
    assert_eq!(kv.get("c").await.expect("get deleted"), None);
    kv.purge("a.b").await.expect("purge key");
    assert_eq!(kv.get("a.b").await.expect("get purged"), None);
    let mut stream = js.get_stream("KV_cfg").await.expect("backing stream");
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.config.max_messages_per_subject, 3);
    assert!(info.config.allow_direct && info.config.allow_rollup);
    // The purge rolled a.b up into its delete marker; c keeps its history of 3.
    assert_eq!(info.state.messages, 4);
    assert_eq!(kv.get("missing").await.expect("get missing"), None);
}

#[tokio::test]
async fn domain_prefix_and_ack_domain() {
    let store = TempDir::new();
    let conf = format!(
        "jetstream {{ domain: hub, store_dir: {:?} }}\n",
        store.path().display().to_string()
    );
    let server = Server::natsd_with_config(&conf, &[]);
    let info = RawConn::connect_only(&server.addr()).read_info();
    assert_eq!(info["domain"], "hub");
    let client = connect(&server.url()).await;
    let js = jetstream::with_domain(client.clone(), "hub");
    js.create_stream(mem_config("D", &["d"]))
        .await
        .expect("create via domain");
    let ack = js
        .publish("d", Bytes::from_static(b"x"))
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!((ack.domain.as_str(), ack.sequence), ("hub", 1));
    let raw = request(&client, "$JS.hub.API.INFO", "").await;
    assert_eq!(
        (raw["domain"].as_str(), raw["streams"].as_u64()),
        (Some("hub"), Some(1))
    );
    let raw = request(&client, "$JS.API.STREAM.NAMES", "").await;
    assert_eq!(raw["streams"], json!(["D"]));
}

#[tokio::test]
async fn jsz_and_varz_report_jetstream() {
    let store = TempDir::new();
    let dir = store.path().display().to_string();
    let server = Server::natsd(&["-js", "-sd", &dir, "-m", "-1"]);
    let port = crate::monitor::http_port(&server);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    js.create_stream(mem_config("M", &["m"]))
        .await
        .expect("create");
    for _ in 0..3 {
        publish(&js, "m", "12345").await;
    }
    // Totals are refreshed shortly after a change.
    let deadline = tokio::time::Instant::now() + WAIT;
    let jsz = loop {
        let jsz = crate::monitor::get_json(port, "/jsz");
        if jsz["messages"] == 3 || tokio::time::Instant::now() > deadline {
            break jsz;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(jsz.get("disabled").is_none());
    assert_eq!(jsz["streams"], 1);
    assert_eq!(jsz["messages"], 3);
    assert_eq!(jsz["memory"], 3 * (1 + 5 + 16));
    assert_eq!(jsz["bytes"], 3 * (1 + 5 + 16));
    assert_eq!(jsz["storage"], 0);
    assert_eq!(jsz["accounts"], 1);
    assert_eq!(jsz["api"]["errors"], 0);
    assert_eq!(
        jsz["config"]["store_dir"],
        store.path().join("jetstream").display().to_string()
    );
    assert_eq!(jsz["config"]["sync_interval"], 120_000_000_000u64);
    let varz = crate::monitor::get_json(port, "/varz");
    assert_eq!(varz["jetstream"]["stats"]["memory"], 3 * (1 + 5 + 16));
    // Unset, the server limit is 75% of the machine's memory, as nats-server sets it.
    let mem_total: i64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert_eq!(
        varz["jetstream"]["config"]["max_memory"],
        mem_total * 1024 / 4 * 3
    );
    assert!(varz["jetstream"]["config"]["max_storage"].as_i64().unwrap() > 0);
    let accountz = crate::monitor::get_json(port, "/accountz?acc=$G");
    assert_eq!(accountz["account_detail"]["jetstream_enabled"], true);
    let accountz = crate::monitor::get_json(port, "/accountz?acc=$SYS");
    assert_eq!(accountz["account_detail"]["jetstream_enabled"], false);
}

/// natsd with `conf` (its `STORE` replaced by a store directory of its own),
/// then nats-server with the same file when it is installed.
fn natsd_and_reference_js(conf: &str) -> Vec<(Server, TempDir)> {
    let mut all = Vec::new();
    let store = TempDir::new();
    let with_store = |store: &TempDir| conf.replace("STORE", &format!("{:?}", store.path()));
    all.push((Server::natsd_with_config(&with_store(&store), &[]), store));
    let store = TempDir::new();
    if let Some(reference) = Server::reference_with_config(&[], Some(&with_store(&store))) {
        all.push((reference, store));
    }
    all
}

/// Server and account limits, as nats-server 2.9.10 enforces them (the
/// expected values were observed on it): stream creates and updates that
/// do not fit the reservations, `max_streams`, `max_consumers`,
/// `max_bytes_required` and the per-stream byte limits, publishes past the
/// account's limit (10002) and past the server's (10023), and the limits in
/// `$JS.API.INFO`.
#[tokio::test]
async fn account_and_server_limits_as_nats_server() {
    const CONF: &str = "jetstream { store_dir: STORE, max_memory_store: 1MB, max_file_store: 10MB }
accounts {
  A: { users: [{user: a, password: a}], jetstream: { max_mem: 100K, max_file: 1M, max_streams: 2, max_consumers: 1 } }
  B: { users: [{user: b, password: b}], jetstream: enabled }
  C: { users: [{user: c, password: c}], jetstream: { max_bytes_required: true, mem_max_stream_bytes: 1000, disk_max_stream_bytes: 2000, max_ack_pending: 7 } }
}
";
    let mut outcomes = Vec::new();
    for (server, _store) in natsd_and_reference_js(CONF) {
        let (a, b, c) = (
            login(&server, "a").await,
            login(&server, "b").await,
            login(&server, "c").await,
        );
        let mut seen = Vec::new();
        for client in [&a, &b, &c] {
            seen.push(request(client, "$JS.API.INFO", "").await["limits"].clone());
        }
        let error = |v: Value| v.get("error").cloned().unwrap_or(Value::Null);
        let create = |client: &async_nats::Client, name: &str, extra: &str| {
            let (client, name) = (client.clone(), name.to_string());
            let body = format!(r#"{{"name":"{name}","storage":"memory"{extra}}}"#);
            async move { request(&client, &format!("$JS.API.STREAM.CREATE.{name}"), &body).await }
        };
        for (client, name, extra) in [
            (&a, "S1", r#","max_bytes":200000"#),
            (&a, "S1", r#","max_bytes":50000"#),
            (&a, "S2", r#","max_bytes":60000"#),
            (&a, "S2", ""),
            (&a, "S3", r#","storage":"file""#),
            (&a, "S1", r#","max_bytes":50000"#),
            (&b, "T1", r#","max_bytes":2000000"#),
            (&b, "T1", r#","max_bytes":800000"#),
            (&b, "T2", r#","max_bytes":300000"#),
            (&b, "T3", ""),
            (&b, "T4", r#","storage":"file","max_bytes":11000000"#),
            (&c, "U1", r#","max_age":5"#),
            (&c, "U1", ""),
            (&c, "U1", r#","max_bytes":2000"#),
            (&c, "U1", r#","max_bytes":1000"#),
            (&c, "U2", r#","storage":"file","max_bytes":3000"#),
        ] {
            seen.push(error(create(client, name, extra).await));
        }
        for (client, body) in [
            (&a, r#"{"name":"S1","storage":"memory","max_bytes":200000}"#),
            (&a, r#"{"name":"S1","storage":"memory","max_bytes":40000}"#),
            (
                &b,
                r#"{"name":"T1","storage":"memory","max_bytes":1100000}"#,
            ),
            (&c, r#"{"name":"U1","storage":"memory"}"#),
        ] {
            let name = serde_json::from_str::<Value>(body).unwrap()["name"].clone();
            let subject = format!("$JS.API.STREAM.UPDATE.{}", name.as_str().unwrap());
            seen.push(error(request(client, &subject, body).await));
        }
        let consumer = r#"{"stream_name":"S1","config":{"ack_policy":"explicit"}}"#;
        for _ in 0..2 {
            seen.push(error(
                request(&a, "$JS.API.CONSUMER.CREATE.S1", consumer).await,
            ));
        }
        seen.push(error(request(&a, "$JS.API.STREAM.DELETE.S2", "").await));
        seen.push(error(create(&a, "S5", r#","max_consumers":5"#).await));
        seen.push(error(create(&a, "S5", r#","max_consumers":1"#).await));
        seen.push(error(create(&a, "S6", "").await));
        seen.push(error(request(&a, "$JS.API.STREAM.DELETE.S5", "").await));
        seen.push(error(create(&a, "S2", "").await));
        // A: 30018 bytes a message (subject + payload + 16); the fourth
        // passes the account's 100000.
        let publish = |client: &async_nats::Client, subject: &str, size: usize| {
            let (client, subject) = (client.clone(), subject.to_string());
            async move {
                let msg = tokio::time::timeout(
                    WAIT,
                    client.request(subject, Bytes::from(vec![b'x'; size])),
                )
                .await
                .expect("publish timed out")
                .expect("publish");
                serde_json::from_slice::<Value>(&msg.payload).expect("JSON ack")
            }
        };
        for _ in 0..4 {
            seen.push(publish(&a, "S2", 30_000).await);
        }
        seen.push(publish(&a, "S1", 30_000).await);
        // B: the server's 1 MiB of memory, A's 90054 bytes included.
        for _ in 0..10 {
            seen.push(publish(&b, "T3", 100_000).await);
        }
        seen.push(publish(&c, "U1", 400).await);
        for client in [&a, &b] {
            let info = request(client, "$JS.API.INFO", "").await;
            seen.push(json!([info["memory"], info["streams"], info["consumers"]]));
        }
        outcomes.push(seen);
    }
    let limits = |mem: i64, store: i64, streams: i64, consumers: i64| {
        json!({"max_memory": mem, "max_storage": store, "max_streams": streams,
            "max_consumers": consumers, "max_ack_pending": -1, "memory_max_stream_bytes": -1,
            "storage_max_stream_bytes": -1, "max_bytes_required": false})
    };
    let err = |code: u16, err_code: u16, description: &str| json!({"code": code, "err_code": err_code, "description": description});
    let memory = err(500, 10028, "insufficient memory resources available");
    let streams = err(400, 10027, "maximum number of streams reached");
    let consumers = err(400, 10026, "maximum consumers limit reached");
    let account = err(400, 10002, "resource limits exceeded for account");
    let ack = |stream: &str, seq: u64| json!({"stream": stream, "seq": seq});
    let nack = |stream: &str, e: &Value| json!({"error": e, "stream": stream, "seq": 0});
    let mut expected = vec![
        limits(100_000, 1_000_000, 2, 1),
        limits(-1, -1, -1, -1),
        json!({"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1,
            "max_ack_pending": 7, "memory_max_stream_bytes": 1000,
            "storage_max_stream_bytes": 2000, "max_bytes_required": true}),
        // creates
        memory.clone(),
        Value::Null,
        memory.clone(),
        Value::Null,
        streams.clone(),
        streams.clone(),
        memory.clone(),
        Value::Null,
        memory.clone(),
        Value::Null,
        err(500, 10047, "insufficient storage resources available"),
        err(500, 10052, "max age needs to be >= 100ms"),
        err(
            400,
            10113,
            "account requires a stream config to have max bytes set",
        ),
        err(
            400,
            10122,
            "stream max bytes exceeds account limit max stream bytes",
        ),
        Value::Null,
        err(
            400,
            10122,
            "stream max bytes exceeds account limit max stream bytes",
        ),
        // updates
        memory.clone(),
        Value::Null,
        memory.clone(),
        err(
            400,
            10113,
            "account requires a stream config to have max bytes set",
        ),
        // consumers, delete, max_consumers
        Value::Null,
        consumers.clone(),
        Value::Null,
        consumers,
        Value::Null,
        streams,
        Value::Null,
        Value::Null,
    ];
    expected.extend((1..=3).map(|seq| ack("S2", seq)));
    expected.push(nack("S2", &account));
    expected.push(nack("S1", &account));
    expected.extend((1..=10).map(|seq| ack("T3", seq)));
    expected.push(nack("U1", &err(503, 10023, "insufficient resources")));
    expected.push(json!([3 * 30_018, 2, 1]));
    expected.push(json!([10 * 100_018, 2, 0]));
    // Step 8, an identical re-create of S1 while A is at `max_streams`: 2.9.10 and natsd
    // answer 10027, nats-server 2.15.1 accepts it. Every other step agrees.
    const REFERENCE_DIFFERS: &[usize] = &[8];
    for (i, seen) in outcomes.iter().enumerate() {
        for (n, (got, want)) in seen.iter().zip(&expected).enumerate() {
            if i > 0 && REFERENCE_DIFFERS.contains(&n) {
                continue;
            }
            assert_eq!(got, want, "server {i}, step {n}");
        }
        assert_eq!(seen.len(), expected.len());
    }
}

/// The stream advisories and the API audit, compared with nats-server
/// 2.9.10 by subject and key set (ids and times differ; the order of
/// different subjects is not kept by nats-server): created once (not for
/// the same create again), updated on each successful update, deleted; an
/// audit for every API answer, with the request when there was one. natsd
/// leaves the client's `rtt` out; of the audit's `client`, only `acc` and
/// `server` are compared: nats-server 2.15.1 sends the whole client info
/// there (`client_type`, `host`, `id`, `kind`, `lang`, `start`, `ver` too),
/// natsd and 2.9.10 only those two.
#[tokio::test]
async fn stream_advisories_and_api_audit_as_nats_server() {
    const CONF: &str = "jetstream { store_dir: STORE }\n";
    let mut all = Vec::new();
    for (server, _store) in natsd_and_reference_js(CONF) {
        let client = connect(&server.url()).await;
        let mut events = client.subscribe("$JS.EVENT.>").await.expect("subscribe");
        crate::round_trip(&client).await;
        let cfg = r#"{"name":"EV","storage":"memory","subjects":["ev.>"]}"#;
        let updated = r#"{"name":"EV","storage":"memory","subjects":["ev.>"],"max_msgs":5}"#;
        let bad = r#"{"name":"EV","storage":"file","subjects":["ev.>"]}"#;
        for (subject, body) in [
            ("$JS.API.STREAM.CREATE.EV", cfg),
            ("$JS.API.STREAM.CREATE.EV", cfg),
            ("$JS.API.STREAM.UPDATE.EV", updated),
            ("$JS.API.STREAM.UPDATE.EV", bad),
            ("$JS.API.STREAM.DELETE.EV", ""),
        ] {
            request(&client, subject, body).await;
        }
        let mut seen = Vec::new();
        while let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(500), events.next()).await
        {
            let v: Value = serde_json::from_slice(&msg.payload).expect("JSON advisory");
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            keys.sort_unstable();
            let mut client_keys: Vec<&str> = v["client"]
                .as_object()
                .map(|c| {
                    c.keys()
                        .map(|k| k.as_str())
                        .filter(|k| ["acc", "server"].contains(k))
                        .collect()
                })
                .unwrap_or_default();
            client_keys.sort_unstable();
            let response: Value =
                serde_json::from_str(v["response"].as_str().unwrap_or("null")).unwrap();
            seen.push(json!([
                msg.subject.as_str(),
                v["type"],
                keys,
                client_keys,
                v["client"]["acc"],
                v["action"],
                v["subject"],
                response["type"],
                response["error"]["err_code"],
            ]));
        }
        seen.sort_by_key(|v| v.to_string());
        all.push(seen);
    }
    let action = |what: &str, action: &str| {
        json!([
            format!("$JS.EVENT.ADVISORY.STREAM.{what}.EV"),
            "io.nats.jetstream.advisory.v1.stream_action",
            ["action", "id", "stream", "timestamp", "type"],
            [],
            null,
            action,
            null,
            null,
            null
        ])
    };
    let audit = |op: &str, with_request: bool, kind: &str, err: Option<u16>| {
        let mut keys = vec!["client", "id"];
        if with_request {
            keys.push("request");
        }
        keys.extend(["response", "server", "subject", "timestamp", "type"]);
        json!([
            "$JS.EVENT.ADVISORY.API",
            "io.nats.jetstream.advisory.v1.api_audit",
            keys,
            ["acc", "server"],
            "$G",
            null,
            format!("$JS.API.STREAM.{op}.EV"),
            format!("io.nats.jetstream.api.v1.stream_{kind}_response"),
            err
        ])
    };
    let mut expected = vec![
        action("CREATED", "create"),
        action("UPDATED", "modify"),
        action("DELETED", "delete"),
        audit("CREATE", true, "create", None),
        audit("CREATE", true, "create", None),
        audit("UPDATE", true, "update", None),
        audit("UPDATE", true, "update", Some(10052)),
        audit("DELETE", false, "delete", None),
    ];
    expected.sort_by_key(|v| v.to_string());
    for (i, seen) in all.iter().enumerate() {
        assert_eq!(seen, &expected, "server {i}");
    }
}
