//! JetStream consumers through async-nats's `jetstream` module: pull (`fetch`, `messages`),
//! push and ordered push consumers, acks, NAK and ack-wait redelivery, `max_deliver` with its
//! advisory, interest and workqueue retention, durable state across a restart, and the
//! key-value and object store APIs that clients build on streams and consumers.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, pull, push, AckPolicy},
    kv,
    stream::{Config, RetentionPolicy, StorageType},
    AckKind,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use natsd_tests::{Server, TempDir};

use crate::{connect, WAIT};

fn js_server(store: &TempDir) -> Server {
    let dir = store.path().display().to_string();
    Server::natsd(&["-js", "-sd", &dir])
}

fn stream_config(name: &str, subjects: &[&str], storage: StorageType) -> Config {
    Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage,
        ..Default::default()
    }
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &str) -> u64 {
    crate::publish_acked(js, subject, payload.to_string()).await
}

/// Fetch up to `n` messages (waiting at most `expires`).
async fn fetch(
    consumer: &consumer::Consumer<pull::Config>,
    n: usize,
    expires: Duration,
) -> Vec<jetstream::Message> {
    let batch = consumer
        .fetch()
        .max_messages(n)
        .expires(expires)
        .messages()
        .await
        .expect("fetch");
    collect(batch).await
}

/// Every message of a fetched batch (it ends at its expiry or when full).
async fn collect(batch: pull::Batch) -> Vec<jetstream::Message> {
    tokio::time::timeout(WAIT, batch.try_collect::<Vec<_>>())
        .await
        .expect("fetch timed out")
        .expect("fetch messages")
}

async fn ack(m: &jetstream::Message) {
    tokio::time::timeout(WAIT, m.double_ack())
        .await
        .expect("ack timed out")
        .expect("ack");
}

fn stream_seq(m: &jetstream::Message) -> u64 {
    m.info().expect("ack reply").stream_sequence
}

async fn pull_durable(
    stream: &jetstream::stream::Stream,
    name: &str,
    cfg: pull::Config,
) -> consumer::Consumer<pull::Config> {
    tokio::time::timeout(
        WAIT,
        stream.create_consumer(pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: AckPolicy::Explicit,
            ..cfg
        }),
    )
    .await
    .expect("create consumer timed out")
    .expect("create consumer")
}

#[tokio::test]
async fn pull_fetch_acks_and_info_numbers() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream_config("P", &["p.*"], StorageType::Memory))
        .await
        .expect("stream");
    for i in 1..=10 {
        publish(&js, &format!("p.{}", i % 2), &format!("m{i}")).await;
    }
    let mut c = pull_durable(&stream, "D", pull::Config::default()).await;
    let msgs = fetch(&c, 4, Duration::from_secs(1)).await;
    let got: Vec<(String, String, u64)> = msgs
        .iter()
        .map(|m| {
            (
                m.subject.to_string(),
                String::from_utf8_lossy(&m.payload).into_owned(),
                stream_seq(m),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("p.1".to_string(), "m1".to_string(), 1),
            ("p.0".into(), "m2".into(), 2),
            ("p.1".into(), "m3".into(), 3),
            ("p.0".into(), "m4".into(), 4),
        ]
    );
    assert_eq!(msgs[3].info().unwrap().pending, 6);
    ack(&msgs[0]).await;
    ack(&msgs[1]).await;
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.name, "D");
    assert_eq!(info.num_pending, 6);
    assert_eq!(info.num_ack_pending, 2);
    assert_eq!(info.delivered.stream_sequence, 4);
    assert_eq!(info.delivered.consumer_sequence, 4);
    assert_eq!(info.ack_floor.stream_sequence, 2);
    assert_eq!(info.ack_floor.consumer_sequence, 2);
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(js.query_account().await.expect("account").consumers, 1);

    // The continuous pull stream picks up where fetch stopped.
    let mut messages = c.messages().await.expect("messages");
    for want in 5..=10u64 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("message timed out")
            .expect("stream open")
            .expect("message");
        assert_eq!(stream_seq(&m), want);
        m.ack().await.expect("ack");
    }
    drop(messages);
    ack(&msgs[2]).await;
    ack(&msgs[3]).await;
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 10);

    let mut stream = js.get_stream("P").await.expect("stream");
    assert_eq!(
        stream.info().await.expect("info").state.consumer_count,
        1,
        "stream info counts the consumer"
    );
    let names: Vec<String> = stream.consumer_names().try_collect().await.expect("names");
    assert_eq!(names, ["D"]);
    stream.delete_consumer("D").await.expect("delete");
    assert!(stream.consumer_info("D").await.is_err());
    assert_eq!(stream.info().await.expect("info").state.consumer_count, 0);
}

#[tokio::test]
async fn nak_ack_wait_and_max_deliver() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(stream_config("R", &["r"], StorageType::Memory))
        .await
        .expect("stream");
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.R.C")
        .await
        .expect("sub");
    publish(&js, "r", "once").await;
    let c = pull_durable(
        &stream,
        "C",
        pull::Config {
            ack_wait: Duration::from_millis(300),
            max_deliver: 3,
            ..Default::default()
        },
    )
    .await;
    // NAK: redelivered at once.
    let m = fetch(&c, 1, Duration::from_secs(1)).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].info().unwrap().delivered, 1);
    m[0].ack_with(AckKind::Nak(None)).await.expect("nak");
    let m = fetch(&c, 1, Duration::from_secs(1)).await;
    assert_eq!(m.len(), 1);
    assert_eq!(stream_seq(&m[0]), 1);
    assert_eq!(m[0].info().unwrap().delivered, 2);
    // Not acked: redelivered once the ack wait ran out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = fetch(&c, 1, Duration::from_secs(1)).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].info().unwrap().delivered, 3);
    // The third delivery was the last one: no fourth, and the advisory (nats-server sends it
    // when the next request finds the message past max_deliver).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = fetch(&c, 1, Duration::from_millis(500)).await;
    assert!(m.is_empty(), "no fourth delivery");
    let adv = tokio::time::timeout(Duration::from_secs(2), advisories.next())
        .await
        .expect("max deliveries advisory")
        .expect("sub open");
    let adv: serde_json::Value = serde_json::from_slice(&adv.payload).expect("json");
    assert_eq!(adv["type"], "io.nats.jetstream.advisory.v1.max_deliver");
    assert_eq!(adv["stream_seq"], 1);
    assert_eq!(adv["deliveries"], 3);
}

#[tokio::test]
async fn push_and_ordered_push_consumers() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(stream_config("S", &["s.>"], StorageType::File))
        .await
        .expect("stream");
    for i in 1..=5 {
        publish(&js, &format!("s.{i}"), &format!("v{i}")).await;
    }
    let push: consumer::Consumer<push::Config> = stream
        .create_consumer(push::Config {
            durable_name: Some("PUSH".into()),
            deliver_subject: client.new_inbox(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("push consumer");
    let mut msgs = push.messages().await.expect("messages");
    for want in 1..=5u64 {
        let m = tokio::time::timeout(WAIT, msgs.next())
            .await
            .expect("push message timed out")
            .expect("open")
            .expect("message");
        assert_eq!(stream_seq(&m), want);
        assert_eq!(m.subject.as_str(), format!("s.{want}"));
        m.ack().await.expect("ack");
    }
    publish(&js, "s.6", "v6").await;
    let m = tokio::time::timeout(WAIT, msgs.next())
        .await
        .expect("live push message")
        .expect("open")
        .expect("message");
    assert_eq!(m.payload, "v6");
    m.double_ack().await.expect("ack");
    let mut push = push;
    let info = push.info().await.expect("info").clone();
    assert_eq!(info.delivered.stream_sequence, 6);
    assert_eq!(info.ack_floor.stream_sequence, 6);
    assert!(info.push_bound);

    let ordered: consumer::Consumer<push::OrderedConfig> = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: "s.>".into(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut msgs = ordered.messages().await.expect("ordered messages");
    let mut seen = Vec::new();
    for _ in 0..6 {
        let m = tokio::time::timeout(WAIT, msgs.next())
            .await
            .expect("ordered message timed out")
            .expect("open")
            .expect("message");
        seen.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(seen, ["v1", "v2", "v3", "v4", "v5", "v6"]);
}

#[tokio::test]
async fn workqueue_and_interest_retention() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let wq = js
        .create_stream(Config {
            retention: RetentionPolicy::WorkQueue,
            ..stream_config("W", &["w.*"], StorageType::Memory)
        })
        .await
        .expect("workqueue stream");
    let a = pull_durable(
        &wq,
        "A",
        pull::Config {
            filter_subject: "w.a".into(),
            ..Default::default()
        },
    )
    .await;
    let err = wq
        .create_consumer(pull::Config {
            durable_name: Some("ALL".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect_err("second unfiltered consumer");
    assert!(
        err.to_string().contains("multiple non-filtered consumers"),
        "{err}"
    );
    let err = wq
        .create_consumer(pull::Config {
            durable_name: Some("A2".into()),
            ack_policy: AckPolicy::Explicit,
            filter_subject: "w.a".into(),
            ..Default::default()
        })
        .await
        .expect_err("overlapping consumer");
    assert!(err.to_string().contains("not unique"), "{err}");
    pull_durable(
        &wq,
        "B",
        pull::Config {
            filter_subject: "w.b".into(),
            ..Default::default()
        },
    )
    .await;
    for s in ["w.a", "w.a", "w.b", "w.a"] {
        publish(&js, s, "job").await;
    }
    let jobs = fetch(&a, 10, Duration::from_millis(500)).await;
    assert_eq!(jobs.iter().map(stream_seq).collect::<Vec<_>>(), [1, 2, 4]);
    for j in &jobs {
        ack(j).await;
    }
    let mut wq = js.get_stream("W").await.expect("stream");
    let st = wq.info().await.expect("info").state.clone();
    assert_eq!(
        (st.messages, st.first_sequence),
        (1, 3),
        "acked jobs removed"
    );

    let interest = js
        .create_stream(Config {
            retention: RetentionPolicy::Interest,
            ..stream_config("I", &["i"], StorageType::File)
        })
        .await
        .expect("interest stream");
    publish(&js, "i", "nobody listens").await;
    let x = pull_durable(&interest, "X", pull::Config::default()).await;
    let y = pull_durable(&interest, "Y", pull::Config::default()).await;
    publish(&js, "i", "one").await;
    publish(&js, "i", "two").await;
    let mut interest = js.get_stream("I").await.expect("stream");
    assert_eq!(interest.info().await.expect("info").state.messages, 2);
    for m in fetch(&x, 2, Duration::from_millis(500)).await {
        ack(&m).await;
    }
    assert_eq!(
        interest.info().await.expect("info").state.messages,
        2,
        "Y still needs them"
    );
    let ys = fetch(&y, 2, Duration::from_millis(500)).await;
    assert_eq!(ys.len(), 2);
    ack(&ys[0]).await;
    assert_eq!(interest.info().await.expect("info").state.messages, 1);
    // Deleting the last consumer that needs a message removes it.
    interest.delete_consumer("Y").await.expect("delete");
    let st = interest.info().await.expect("info").state.clone();
    assert_eq!((st.messages, st.last_sequence), (0, 3));
}

#[tokio::test]
async fn durable_consumer_survives_restart() {
    let store = TempDir::new();
    let mut server = js_server(&store);
    {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client);
        let stream = js
            .create_stream(stream_config("F", &["f"], StorageType::File))
            .await
            .expect("stream");
        for i in 1..=5 {
            publish(&js, "f", &format!("m{i}")).await;
        }
        let c = pull_durable(&stream, "DUR", pull::Config::default()).await;
        let msgs = fetch(&c, 3, Duration::from_secs(1)).await;
        assert_eq!(msgs.len(), 3);
        ack(&msgs[0]).await;
        ack(&msgs[1]).await;
    }
    server.restart();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let stream = js.get_stream("F").await.expect("stream is back");
    let mut c: consumer::Consumer<pull::Config> =
        stream.get_consumer("DUR").await.expect("consumer is back");
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.ack_floor.stream_sequence, 2);
    assert_eq!(info.delivered.stream_sequence, 3);
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.num_pending, 2);
    let msgs = fetch(&c, 2, Duration::from_secs(1)).await;
    assert_eq!(msgs.iter().map(stream_seq).collect::<Vec<_>>(), [4, 5]);
    for m in &msgs {
        ack(m).await;
    }
    // State is written within a second: after that even `kill -9` keeps these acks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("KILL");
    server.restart();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let stream = js.get_stream("F").await.expect("stream after kill -9");
    let mut c: consumer::Consumer<pull::Config> = stream
        .get_consumer("DUR")
        .await
        .expect("consumer after kill -9");
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.delivered.stream_sequence, 5);
    assert_eq!(info.ack_floor.stream_sequence, 2, "3 is still pending");
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.num_pending, 0);
}

#[tokio::test]
async fn key_value_bucket() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let kv = js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .expect("bucket");
    assert_eq!(kv.put("a", "1".into()).await.expect("put"), 1);
    assert_eq!(kv.put("b", "x".into()).await.expect("put"), 2);
    assert_eq!(kv.get("a").await.expect("get"), Some(Bytes::from("1")));
    assert_eq!(kv.update("a", "2".into(), 1).await.expect("update"), 3);
    assert!(
        kv.update("a", "3".into(), 1).await.is_err(),
        "stale revision"
    );
    let entry = kv.entry("a").await.expect("entry").expect("some");
    assert_eq!((entry.revision, entry.value), (3, Bytes::from("2")));
    kv.delete("b").await.expect("delete");
    assert_eq!(kv.get("b").await.expect("get"), None);
    let mut keys: Vec<String> = kv
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("k");
    keys.sort();
    assert_eq!(keys, ["a"]);
    let history: Vec<kv::Entry> = kv
        .history("a")
        .await
        .expect("history")
        .try_collect()
        .await
        .expect("entries");
    let values: Vec<(u64, Bytes)> = history.into_iter().map(|e| (e.revision, e.value)).collect();
    assert_eq!(values, [(1, Bytes::from("1")), (3, Bytes::from("2"))]);
    let mut watch = kv.watch("a").await.expect("watch");
    kv.put("a", "4".into()).await.expect("put");
    let e = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("watch timed out")
        .expect("open")
        .expect("entry");
    assert_eq!((e.key.as_str(), e.revision), ("a", 5));
    assert_eq!(e.value, Bytes::from("4"));
}

#[tokio::test]
async fn object_store_multi_mib() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let bucket = js
        .create_object_store(jetstream::object_store::Config {
            bucket: "blobs".into(),
            ..Default::default()
        })
        .await
        .expect("object store");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut reader = &data[..];
    let info = bucket.put("big", &mut reader).await.expect("put");
    assert_eq!(info.size, data.len());
    let mut obj = bucket.get("big").await.expect("get");
    let mut back = Vec::new();
    tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut obj, &mut back),
    )
    .await
    .expect("read timed out")
    .expect("read");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object bytes round trip");
}

#[tokio::test]
async fn consumer_api_errors() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(stream_config("E", &["e"], StorageType::Memory))
        .await
        .expect("stream");
    let req = |subject: &str, body: &str| {
        let client = client.clone();
        let subject = subject.to_string();
        let body = body.to_string();
        async move {
            let m = tokio::time::timeout(WAIT, client.request(subject, body.into()))
                .await
                .expect("request timed out")
                .expect("request");
            serde_json::from_slice::<serde_json::Value>(&m.payload).expect("json")
        }
    };
    let r = req("$JS.API.CONSUMER.INFO.E.nope", "").await;
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.consumer_info_response");
    assert_eq!(r["error"]["err_code"], 10014);
    let r = req("$JS.API.CONSUMER.INFO.NOSTREAM.x", "").await;
    assert_eq!(r["error"]["err_code"], 10059);
    let r = req(
        "$JS.API.CONSUMER.DURABLE.CREATE.E.D1",
        r#"{"stream_name":"E","config":{"durable_name":"D2","ack_policy":"explicit"}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10017);
    let r = req(
        "$JS.API.CONSUMER.CREATE.E",
        r#"{"stream_name":"E","config":{"durable_name":"D","ack_policy":"explicit"}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10020);
    let r = req(
        "$JS.API.CONSUMER.CREATE.E.C",
        r#"{"stream_name":"E","config":{"ack_policy":"explicit","deliver_subject":"d.*"}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10079, "{r}");
    let r = req(
        "$JS.API.CONSUMER.CREATE.E.C",
        r#"{"stream_name":"E","config":{"ack_policy":"explicit"},"action":"update"}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10149);
    let r = req(
        "$JS.API.CONSUMER.CREATE.E.C",
        r#"{"stream_name":"E","config":{"ack_policy":"explicit"},"action":"create"}"#,
    )
    .await;
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.consumer_create_response"
    );
    assert_eq!(r["name"], "C");
    assert_eq!(r["config"]["ack_policy"], "explicit");
    let r = req(
        "$JS.API.CONSUMER.CREATE.E.C",
        r#"{"stream_name":"E","config":{"ack_policy":"explicit","max_deliver":4},"action":"create"}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10148);
    let r = req("$JS.API.CONSUMER.LIST.E", "").await;
    assert_eq!(r["total"], 1);
    assert_eq!(r["consumers"][0]["name"], "C");
    let r = req("$JS.API.CONSUMER.DELETE.E.C", "").await;
    assert_eq!(r["success"], true);
    let r = req("$JS.API.CONSUMER.NAMES.E", "").await;
    assert_eq!(r["total"], 0);
    let ephemeral = req(
        "$JS.API.CONSUMER.CREATE.E",
        r#"{"stream_name":"E","config":{"ack_policy":"explicit","deliver_policy":"all"}}"#,
    )
    .await;
    assert_eq!(ephemeral["name"].as_str().map(str::len), Some(8));
}

/// `jetstream { limits { max_ack_pending, max_request_batch, duplicate_window } }` and an
/// account's `max_ack_pending`, as nats-server 2.9.10 applies them (compared with it when it
/// is installed): consumer defaults and their ceilings (10121, 10125), the pull request past
/// `max_batch`, the streams' default duplicate window and its ceiling.
#[tokio::test]
async fn server_limits_bound_consumers_and_streams() {
    const CONF: &str = "jetstream { store_dir: STORE, limits { max_ack_pending: 50, max_request_batch: 10, duplicate_window: \"30s\" } }
accounts {
  A: { users: [{user: a, password: a}], jetstream: { max_ack_pending: 20 } }
  B: { users: [{user: b, password: b}], jetstream: enabled }
}
";
    let mut outcomes = Vec::new();
    let mut servers = Vec::new();
    for reference in [false, true] {
        let store = TempDir::new();
        let conf = CONF.replace("STORE", &format!("{:?}", store.path()));
        let server = if reference {
            match Server::reference_with_config(&[], Some(&conf)) {
                Some(s) => s,
                None => continue,
            }
        } else {
            Server::natsd_with_config(&conf, &[])
        };
        servers.push((server, store));
    }
    for (server, _store) in &servers {
        let mut seen = Vec::new();
        for user in ["a", "b"] {
            let client = tokio::time::timeout(
                WAIT,
                async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
                    .connect(server.url()),
            )
            .await
            .expect("connect timed out")
            .expect("connect");
            let r = api(
                &client,
                "$JS.API.STREAM.CREATE.L",
                r#"{"name":"L","subjects":["l"]}"#,
            )
            .await;
            seen.push(r["config"]["duplicate_window"].clone());
            let r = api(
                &client,
                "$JS.API.STREAM.CREATE.M",
                r#"{"name":"M","subjects":["m"],"duplicate_window":60000000000}"#,
            )
            .await;
            seen.push(r["error"].clone());
            let create = |name: &str, extra: &str| {
                (
                    format!("$JS.API.CONSUMER.CREATE.L.{name}"),
                    format!(
                        r#"{{"stream_name":"L","config":{{"durable_name":"{name}","ack_policy":"explicit"{extra}}}}}"#
                    ),
                )
            };
            let (subject, body) = create("D", "");
            let r = api(&client, &subject, &body).await;
            seen.push(r["config"]["max_ack_pending"].clone());
            seen.push(r["config"]["max_batch"].clone());
            for (name, extra) in [
                ("E", r#","max_ack_pending":30"#),
                ("F", r#","max_ack_pending":60"#),
                ("G", r#","max_batch":11"#),
                ("H", r#","max_batch":5"#),
            ] {
                let (subject, body) = create(name, extra);
                let r = api(&client, &subject, &body).await;
                seen.push(
                    r.get("error")
                        .cloned()
                        .unwrap_or(r["config"]["max_batch"].clone()),
                );
            }
            let mut inbox = client.subscribe("limits.inbox").await.expect("subscribe");
            client
                .publish_with_reply(
                    "$JS.API.CONSUMER.MSG.NEXT.L.D",
                    "limits.inbox",
                    r#"{"batch":11}"#.into(),
                )
                .await
                .expect("pull");
            let status = crate::next_msg(&mut inbox).await;
            seen.push(serde_json::json!([
                status.status.map(|s| s.as_u16()),
                status.description
            ]));
        }
        outcomes.push(seen);
    }
    let natsd: Vec<String> = outcomes[0].iter().map(|v| v.to_string()).collect();
    let limit_error = |code: u64, err_code: u64, description: &str| {
        serde_json::json!({"code": code, "err_code": err_code, "description": description})
            .to_string()
    };
    let dup = limit_error(
        500,
        10052,
        "duplicates window can not be larger then server limit of 30s",
    );
    let status = r#"[409,"Exceeded MaxRequestBatch of 10"]"#.to_string();
    let batch = limit_error(
        400,
        10125,
        "consumer max request batch exceeds server limit of 10",
    );
    let ack_pending = |n: u64| {
        limit_error(
            400,
            10121,
            &format!("consumer max ack pending exceeds system limit of {n}"),
        )
    };
    let expect = |account_limit: u64, e: String| {
        vec![
            "30000000000".to_string(),
            dup.clone(),
            account_limit.to_string(),
            "10".into(),
            e,
            ack_pending(50),
            batch.clone(),
            "5".into(),
            status.clone(),
        ]
    };
    // Account A: its max_ack_pending (20) is below the server's (50); B has the server's.
    assert_eq!(natsd[..9], expect(20, ack_pending(20)), "account A");
    assert_eq!(natsd[9..], expect(50, "10".into()), "account B");
    if let Some(reference) = outcomes.get(1) {
        assert_eq!(&outcomes[0], reference, "natsd vs nats-server 2.9.10");
    }
}

/// nats-server drops a waiting pull request once nobody subscribes to its reply: info no
/// longer counts it and a message stored afterwards is not delivered into the void (it stays
/// pending, undelivered, for the next request). Compared with nats-server 2.9.10.
#[tokio::test]
async fn pull_request_of_a_gone_requester_is_dropped() {
    let mut outcomes = Vec::new();
    for reference in [false, true] {
        let store = TempDir::new();
        let dir = store.path().display().to_string();
        let args = ["-js", "-sd", dir.as_str()];
        let server = if reference {
            match Server::reference(&args) {
                Some(s) => s,
                None => continue,
            }
        } else {
            Server::natsd(&args)
        };
        let client = connect(&server.url()).await;
        let js = jetstream::new(client.clone());
        let stream = js
            .create_stream(stream_config("W", &["w"], StorageType::Memory))
            .await
            .expect("stream");
        let mut c = pull_durable(&stream, "D", pull::Config::default()).await;
        let requester = connect(&server.url()).await;
        let mut inbox = requester.subscribe("gone.inbox").await.expect("subscribe");
        requester
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.W.D",
                "gone.inbox",
                r#"{"batch":1,"expires":30000000000}"#.into(),
            )
            .await
            .expect("pull");
        requester.flush().await.expect("flush");
        // Both servers take the request and the unsubscribe asynchronously.
        let waiting = waiting_becomes(&mut c, 1).await;
        inbox.unsubscribe().await.expect("unsubscribe");
        requester.flush().await.expect("flush");
        let after_unsubscribe = waiting_becomes(&mut c, 0).await;
        publish(&js, "w", "one").await;
        let info = c.info().await.expect("info").clone();
        let next = fetch(&c, 1, Duration::from_secs(1)).await;
        outcomes.push((
            waiting,
            after_unsubscribe,
            info.num_waiting,
            info.num_pending,
            info.num_ack_pending,
            info.delivered.stream_sequence,
            next.iter()
                .map(|m| m.info().expect("ack reply").delivered)
                .collect::<Vec<_>>(),
        ));
    }
    assert_eq!(outcomes[0], (true, true, 0, 1, 0, 0, vec![1]), "natsd");
    if let Some(reference) = outcomes.get(1) {
        assert_eq!(&outcomes[0], reference, "natsd vs nats-server 2.9.10");
    }
}

/// Whether the consumer's `num_waiting` reaches `n` within two seconds.
async fn waiting_becomes(c: &mut consumer::Consumer<pull::Config>, n: usize) -> bool {
    for _ in 0..100 {
        if c.info().await.expect("info").num_waiting == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A request to a `$JS.API` subject, answered as JSON.
async fn api(client: &async_nats::Client, subject: &str, body: &str) -> serde_json::Value {
    let m = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .expect("request timed out")
    .expect("request");
    serde_json::from_slice(&m.payload).expect("json")
}

/// nats-server 2.11 `CONSUMER.PAUSE` and `pause_until`: nothing is delivered
/// while paused, waiting pulls get their messages when the time passes, the
/// pause and resume advisories go out, info reports `paused`/`pause_remaining`.
#[tokio::test]
async fn pause_and_resume() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(stream_config("P", &["p"], StorageType::Memory))
        .await
        .expect("stream");
    publish(&js, "p", "one").await;
    publish(&js, "p", "two").await;
    let c = pull_durable(&stream, "PC", pull::Config::default()).await;
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.P.PC")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");

    let until = async_nats::datetime::add_std_duration(
        async_nats::datetime::now(),
        Duration::from_millis(2500),
    )
    .expect("time");
    let paused_at = tokio::time::Instant::now();
    let r = stream.pause_consumer("PC", until).await.expect("pause");
    assert!(r.paused);
    assert_eq!(r.pause_until.unix_timestamp(), until.unix_timestamp());
    assert!(r
        .pause_remaining
        .is_some_and(|d| d <= Duration::from_millis(2500)));
    let a = tokio::time::timeout(WAIT, advisories.next())
        .await
        .expect("pause advisory")
        .expect("advisory");
    let a: serde_json::Value = serde_json::from_slice(&a.payload).expect("json");
    assert_eq!(a["type"], "io.nats.jetstream.advisory.v1.consumer_pause");
    assert_eq!(
        (&a["stream"], &a["consumer"], &a["paused"]),
        (&"P".into(), &"PC".into(), &true.into())
    );

    let mut c = c;
    let info = c.info().await.expect("info").clone();
    assert!(info.paused);
    assert!(info.pause_remaining.is_some_and(|d| d > Duration::ZERO));
    assert!(info.config.pause_until.is_some());

    // Nothing comes while paused.
    assert!(fetch(&c, 2, Duration::from_millis(800)).await.is_empty());
    // A waiting pull gets both messages once the pause ends, not before.
    let got = fetch(&c, 2, Duration::from_secs(5)).await;
    assert_eq!(got.iter().map(stream_seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(paused_at.elapsed() >= Duration::from_millis(2400));
    for m in &got {
        ack(m).await;
    }
    let a = tokio::time::timeout(WAIT, advisories.next())
        .await
        .expect("unpause advisory")
        .expect("advisory");
    let a: serde_json::Value = serde_json::from_slice(&a.payload).expect("json");
    assert_eq!(a["paused"], false);
    let info = c.info().await.expect("info").clone();
    assert!(!info.paused);
    assert_eq!(info.pause_remaining, None);

    // Pause for a minute, then resume: delivery starts again at once.
    let far = async_nats::datetime::add_std_duration(
        async_nats::datetime::now(),
        Duration::from_secs(60),
    )
    .expect("time");
    assert!(
        stream
            .pause_consumer("PC", far)
            .await
            .expect("pause")
            .paused
    );
    publish(&js, "p", "three").await;
    assert!(fetch(&c, 1, Duration::from_millis(500)).await.is_empty());
    let r = stream.resume_consumer("PC").await.expect("resume");
    assert!(!r.paused);
    assert_eq!(r.pause_remaining, None);
    let got = fetch(&c, 1, Duration::from_secs(2)).await;
    assert_eq!(got.iter().map(stream_seq).collect::<Vec<_>>(), vec![3]);

    // Created paused through the config; an update keeps the pause.
    let c2 = pull_durable(
        &stream,
        "PC2",
        pull::Config {
            pause_until: Some(far),
            ..Default::default()
        },
    )
    .await;
    assert!(fetch(&c2, 1, Duration::from_millis(500)).await.is_empty());
    let updated = stream
        .update_consumer(pull::Config {
            durable_name: Some("PC2".into()),
            ack_policy: AckPolicy::Explicit,
            description: Some("updated".into()),
            ..Default::default()
        })
        .await
        .expect("update");
    let mut updated = updated;
    let info = updated.info().await.expect("info");
    assert!(info.paused);
    assert_eq!(info.config.description.as_deref(), Some("updated"));

    // Errors as nats-server's: unknown consumer / stream, bad JSON.
    let r = api(&client, "$JS.API.CONSUMER.PAUSE.P.nope", "{}").await;
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.consumer_pause_response"
    );
    assert_eq!(r["error"]["err_code"], 10014);
    let r = api(&client, "$JS.API.CONSUMER.PAUSE.NOPE.PC", "{}").await;
    assert_eq!(r["error"]["err_code"], 10059);
    let r = api(&client, "$JS.API.CONSUMER.PAUSE.P.PC", "{bad").await;
    assert_eq!(r["error"]["err_code"], 10025);
    let r = api(
        &client,
        "$JS.API.CONSUMER.PAUSE.P.PC",
        r#"{"pause_until":"tomorrow"}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10025);
    // A body that is not JSON is a resume, as nats-server reads it.
    let r = api(&client, "$JS.API.CONSUMER.PAUSE.P.PC2", "").await;
    assert_eq!(r["paused"], false);
    assert_eq!(r["pause_until"], "0001-01-01T00:00:00Z");
    assert!(r.get("pause_remaining").is_none());
}

/// A nats-server without a cluster answers both leader stepdown requests with
/// 10010 before looking at the stream or consumer (`jsStreamLeaderStepDownRequest`,
/// `jsConsumerLeaderStepDownRequest`).
#[tokio::test]
async fn leader_stepdown_without_cluster() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let r = api(&client, "$JS.API.CONSUMER.LEADER.STEPDOWN.S.C", "").await;
    assert_eq!(
        r,
        serde_json::json!({
            "type": "io.nats.jetstream.api.v1.consumer_leader_stepdown_response",
            "error": {"code": 503, "err_code": 10010, "description": "JetStream clustering support required"}
        })
    );
    let r = api(&client, "$JS.API.STREAM.LEADER.STEPDOWN.S", "").await;
    assert_eq!(
        r,
        serde_json::json!({
            "type": "io.nats.jetstream.api.v1.stream_leader_stepdown_response",
            "error": {"code": 503, "err_code": 10010, "description": "JetStream clustering support required"}
        })
    );
}

/// Priority groups through async-nats: `overflow` holds a request with
/// `min_pending` until the backlog reaches it; `pinned_client` delivers to one
/// pull stream with its `Nats-Pin-Id` while another waits, `UNPIN` releases
/// it, and the config checks answer nats-server's codes.
#[tokio::test]
async fn priority_groups_overflow_and_pinned_client() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(stream_config("G", &["g"], StorageType::Memory))
        .await
        .expect("stream");
    for i in 0..4 {
        publish(&js, "g", &format!("m{i}")).await;
    }

    let ov = pull_durable(
        &stream,
        "OV",
        pull::Config {
            priority_policy: consumer::PriorityPolicy::Overflow,
            priority_groups: vec!["A".into()],
            ..Default::default()
        },
    )
    .await;
    let batch = ov
        .fetch()
        .group("A")
        .min_pending(10)
        .max_messages(4)
        .expires(Duration::from_millis(700))
        .messages()
        .await
        .expect("fetch");
    let held = collect(batch).await;
    assert!(held.is_empty(), "4 pending is below min_pending 10");
    let batch = ov
        .fetch()
        .group("A")
        .min_pending(4)
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let got = collect(batch).await;
    assert_eq!(got.iter().map(stream_seq).collect::<Vec<_>>(), vec![1]);

    let mut pin = pull_durable(
        &stream,
        "PIN",
        pull::Config {
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["A".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        pin.cached_info().config.priority_timeout,
        Duration::from_secs(120)
    );
    let mut first = pin
        .stream()
        .group("A")
        .max_messages_per_batch(1)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("stream");
    let m = tokio::time::timeout(WAIT, first.next())
        .await
        .expect("pinned message timed out")
        .expect("message")
        .expect("message");
    let pin_id = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.to_string())
        .expect("Nats-Pin-Id");
    assert_eq!(pin_id.len(), 22);
    ack(&m).await;
    let info = pin.info().await.expect("info").clone();
    assert_eq!(info.priority_groups.len(), 1);
    assert_eq!(info.priority_groups[0].group, "A");
    assert_eq!(
        info.priority_groups[0].pinned_client_id.as_deref(),
        Some(pin_id.as_str())
    );
    assert!(info.priority_groups[0].pinned_ts.is_some());

    // A second client is on standby while the first holds the pin.
    let mut second = pin
        .stream()
        .group("A")
        .max_messages_per_batch(1)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("stream");
    let m = tokio::time::timeout(WAIT, first.next())
        .await
        .expect("pinned message timed out")
        .expect("message")
        .expect("message");
    ack(&m).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), second.next())
            .await
            .is_err(),
        "standby client got a message"
    );
    drop(first);

    // Unpinning a group the consumer lacks is 10160; the right one releases the pin.
    let err = stream
        .unpin_consumer("PIN", "B")
        .await
        .expect_err("unknown group");
    assert!(err.to_string().contains("10160"), "{err}");
    stream.unpin_consumer("PIN", "A").await.expect("unpin");
    let m = tokio::time::timeout(WAIT, second.next())
        .await
        .expect("standby message timed out")
        .expect("message")
        .expect("message");
    let pin2 = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.to_string())
        .expect("Nats-Pin-Id");
    assert_ne!(pin2, pin_id);

    // Config checks.
    let r = api(
        &client,
        "$JS.API.CONSUMER.CREATE.G.X",
        r#"{"stream_name":"G","config":{"ack_policy":"explicit","deliver_subject":"dx","priority_policy":"overflow","priority_groups":["A"]}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10178, "{r}");
    let r = api(
        &client,
        "$JS.API.CONSUMER.CREATE.G.X",
        r#"{"stream_name":"G","config":{"ack_policy":"explicit","priority_groups":["A"]}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10196, "{r}");
    let r = api(
        &client,
        "$JS.API.CONSUMER.CREATE.G.X",
        r#"{"stream_name":"G","config":{"ack_policy":"explicit","priority_policy":"pinned_client","priority_groups":["bad.name"]}}"#,
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10162, "{r}");
    let r = api(&client, "$JS.API.CONSUMER.UNPIN.G.PIN", r#"{"group":""}"#).await;
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.consumer_unpin_response"
    );
    assert_eq!(r["error"]["err_code"], 10025, "{r}");
    let r = api(&client, "$JS.API.CONSUMER.UNPIN.G.nope", r#"{"group":"A"}"#).await;
    assert_eq!(r["error"]["err_code"], 10014, "{r}");
}

/// Messages removed by stream limits reach the consumers, as in nats-server: `num_pending`
/// drops, a pending delivery of an evicted message is not redelivered, and a per-subject
/// limit (a KV history of 1) leaves the consumer counting only what is still stored.
#[tokio::test]
async fn limit_evictions_reach_consumers_as_nats_server() {
    let mut seen = Vec::new();
    for reference in [false, true] {
        let store = TempDir::new();
        let dir = store.path().display().to_string();
        let args = ["-js", "-sd", &dir];
        let server = if reference {
            match Server::reference(&args) {
                Some(s) => s,
                None => continue,
            }
        } else {
            Server::natsd(&args)
        };
        let js = jetstream::new(connect(&server.url()).await);
        let stream = js
            .create_stream(Config {
                max_messages: 5,
                max_messages_per_subject: 2,
                ..stream_config("EV", &["ev.*"], StorageType::File)
            })
            .await
            .expect("stream");
        let mut c = pull_durable(
            &stream,
            "D",
            pull::Config {
                ack_wait: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await;
        for i in 1..=3 {
            publish(&js, &format!("ev.{i}"), "a").await;
        }
        // Delivered (3 pending acks), never acked.
        let first = fetch(&c, 3, Duration::from_secs(1)).await;
        assert_eq!(first.iter().map(stream_seq).collect::<Vec<_>>(), [1, 2, 3]);
        // 4..=9: the stream keeps 5, so 1..=4 are evicted; ev.1 twice more evicts by subject.
        for subject in ["ev.4", "ev.5", "ev.1", "ev.1", "ev.6", "ev.7"] {
            publish(&js, subject, "b").await;
        }
        let info = c.info().await.expect("info").clone();
        let after = fetch(&c, 10, Duration::from_millis(900)).await;
        seen.push((
            info.num_pending,
            info.num_ack_pending,
            after.iter().map(stream_seq).collect::<Vec<_>>(),
        ));
        drop(server);
    }
    assert_eq!(seen[0], (5, 0, vec![5, 6, 7, 8, 9]), "natsd");
    if let Some(reference) = seen.get(1) {
        assert_eq!(&seen[0], reference, "natsd vs nats-server 2.9.10");
    }
}
