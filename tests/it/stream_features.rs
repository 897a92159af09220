//! Stream features around the publish path: `republish` (against nats-server 2.9.10 where it
//! has them), `subject_transform`, per-message TTLs (`allow_msg_ttl`, `Nats-TTL`) and subject
//! delete markers through async-nats's stream and KV APIs.

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self, kv,
    stream::{Config, Republish, StorageType, SubjectTransform},
};
use bytes::Bytes;
use natsd_tests::{Server, TempDir};

use crate::jetstream::publish_raw;
use crate::{connect, next_msg};

fn js_server(store: &TempDir) -> Server {
    let dir = store.path().display().to_string();
    Server::natsd(&["-js", "-sd", &dir])
}

fn header<'a>(msg: &'a async_nats::Message, key: &str) -> Option<&'a str> {
    msg.headers.as_ref()?.get(key).map(|v| v.as_str())
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn republish_as_nats_server() {
    let stores = [TempDir::new(), TempDir::new()];
    let mut servers = vec![js_server(&stores[0])];
    let dir = stores[1].path().display().to_string();
    servers.extend(Server::reference(&["-js", "-sd", &dir]));
    let mut seen = Vec::new();
    for server in &servers {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client.clone());
        let cycle = js
            .create_stream(Config {
                name: "C".into(),
                subjects: vec!["c.>".into()],
                republish: Some(Republish {
                    source: ">".into(),
                    destination: "c.x.>".into(),
                    headers_only: false,
                }),
                ..Default::default()
            })
            .await
            .expect_err("a cycle is refused");
        js.create_stream(Config {
            name: "O".into(),
            subjects: vec!["orders.*".into()],
            storage: StorageType::Memory,
            republish: Some(Republish {
                source: "orders.*".into(),
                destination: "repub.$1".into(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await
        .expect("create");
        js.create_stream(Config {
            name: "H".into(),
            subjects: vec!["heads".into()],
            storage: StorageType::Memory,
            republish: Some(Republish {
                source: "heads".into(),
                destination: "repub.heads".into(),
                headers_only: true,
            }),
            ..Default::default()
        })
        .await
        .expect("create");
        let mut sub = client.subscribe("repub.>").await.expect("subscribe");
        publish_raw(&client, "orders.1", &[("X", "y")]).await;
        publish_raw(&client, "orders.2", &[]).await;
        publish_raw(&client, "orders.1", &[]).await;
        publish_raw(&client, "heads", &[]).await;
        let mut got = Vec::new();
        for _ in 0..4 {
            let m = next_msg(&mut sub).await;
            let h = |k| header(&m, k).unwrap_or("-").to_string();
            got.push(format!(
                "{} {:?} stream={} subject={} seq={} last={} size={} x={}",
                m.subject,
                m.payload,
                h("Nats-Stream"),
                h("Nats-Subject"),
                h("Nats-Sequence"),
                h("Nats-Last-Sequence"),
                h("Nats-Msg-Size"),
                h("X"),
            ));
        }
        seen.push((cycle.to_string(), got));
    }
    let (cycle, got) = &seen[0];
    assert!(
        cycle.contains("republish destination forms a cycle"),
        "{cycle}"
    );
    assert_eq!(
        got,
        &[
            "repub.1 b\"data\" stream=O subject=orders.1 seq=1 last=0 size=- x=y",
            "repub.2 b\"data\" stream=O subject=orders.2 seq=2 last=0 size=- x=-",
            "repub.1 b\"data\" stream=O subject=orders.1 seq=3 last=1 size=- x=-",
            "repub.heads b\"\" stream=H subject=heads seq=1 last=0 size=4 x=-",
        ]
    );
    if let Some(reference) = seen.get(1) {
        assert_eq!(&seen[0], reference, "natsd vs nats-server 2.9.10");
    }
}

#[tokio::test]
async fn subject_transform_stores_under_the_new_subject() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let err = js
        .create_stream(Config {
            name: "BAD".into(),
            subjects: vec!["bad.*".into()],
            subject_transform: Some(SubjectTransform {
                source: "bad.*".into(),
                destination: "b.$2".into(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("index out of range");
    assert!(
        err.to_string().contains(
            "stream transform: invalid mapping destination: wildcard index out of range in $2"
        ),
        "{err}"
    );
    let stream = js
        .create_stream(Config {
            name: "T".into(),
            subjects: vec!["in.>".into()],
            subject_transform: Some(SubjectTransform {
                source: "in.*.*".into(),
                destination: "st.{{wildcard(2)}}.$1".into(),
            }),
            republish: Some(Republish {
                source: "st.>".into(),
                destination: "out.>".into(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await
        .expect("create");
    let mut sub = client.subscribe("out.>").await.expect("subscribe");
    let ack = publish_raw(&client, "in.a.b", &[]).await;
    assert_eq!(ack["seq"], 1, "{ack}");
    // Not matching the transform's source: stored as published.
    assert_eq!(publish_raw(&client, "in.x", &[]).await["seq"], 2);
    let m = stream
        .get_last_raw_message_by_subject("st.b.a")
        .await
        .expect("stored under the transformed subject");
    assert_eq!(m.sequence, 1);
    let m = stream
        .get_last_raw_message_by_subject("in.x")
        .await
        .expect("untransformed");
    assert_eq!(m.sequence, 2);
    let r = next_msg(&mut sub).await;
    assert_eq!(r.subject.as_str(), "out.b.a");
    assert_eq!(header(&r, "Nats-Subject"), Some("st.b.a"));
    assert!(header(&r, "Nats-Time-Stamp").is_some());
}

#[tokio::test]
async fn message_ttls_and_never() {
    let store = TempDir::new();
    let mut server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    js.create_stream(Config {
        name: "PLAIN".into(),
        subjects: vec!["plain".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let refused = publish_raw(&client, "plain", &[("Nats-TTL", "5s")]).await;
    assert_eq!(refused["error"]["err_code"], 10166, "{refused}");
    assert_eq!(
        refused["error"]["description"],
        "per-message TTL is disabled"
    );
    let stream = js
        .create_stream(Config {
            name: "TTL".into(),
            subjects: vec!["t.*".into()],
            allow_message_ttl: true,
            max_age: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("create");
    assert!(stream.cached_info().config.allow_message_ttl);
    let invalid = publish_raw(&client, "t.bad", &[("Nats-TTL", "10ms")]).await;
    assert_eq!(invalid["error"]["err_code"], 10165, "{invalid}");
    assert_eq!(
        publish_raw(&client, "t.never", &[("Nats-TTL", "never")]).await["seq"],
        1
    );
    assert_eq!(publish_raw(&client, "t.aged", &[]).await["seq"], 2);
    assert_eq!(
        publish_raw(&client, "t.short", &[("Nats-TTL", "1")]).await["seq"],
        3
    );
    // A TTL longer than max_age does not keep a message.
    assert_eq!(
        publish_raw(&client, "t.long", &[("Nats-TTL", "1m")]).await["seq"],
        4
    );
    // `never` survives a restart (file store: rebuilt from the headers).
    drop(client);
    server.restart();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream("TTL").await.expect("stream");
    let gone = eventually(Duration::from_secs(6), || {
        let stream = stream.clone();
        async move {
            let mut stream = stream;
            stream.info().await.map(|i| i.state.messages).unwrap_or(0) == 1
        }
    })
    .await;
    let info = stream.info().await.expect("info");
    assert!(
        gone,
        "only the never-expiring message stays: {:?}",
        info.state
    );
    assert_eq!(info.state.first_sequence, 1);
    let m = stream.get_raw_message(1).await.expect("never expires");
    assert_eq!(m.subject.as_str(), "t.never");
}

#[tokio::test]
async fn kv_limit_markers_and_ttl_keys() {
    let store = TempDir::new();
    let server = js_server(&store);
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let kv = js
        .create_key_value(kv::Config {
            bucket: "B".into(),
            history: 5,
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .expect("a KV with limit markers");
    let info = js
        .get_stream("KV_B")
        .await
        .expect("stream")
        .cached_info()
        .clone();
    assert!(info.config.allow_message_ttl);
    assert_eq!(
        info.config.subject_delete_marker_ttl,
        Some(Duration::from_secs(1))
    );
    kv.create_with_ttl("k", Bytes::from_static(b"v"), Duration::from_secs(1))
        .await
        .expect("create with a TTL");
    kv.put("stays", Bytes::from_static(b"s"))
        .await
        .expect("put");
    assert_eq!(
        kv.get("k").await.expect("get"),
        Some(Bytes::from_static(b"v"))
    );
    // The key expires and a marker (read as a purge) takes its place, then
    // the marker expires too.
    let marked = eventually(Duration::from_secs(5), || {
        let kv = kv.clone();
        async move {
            matches!(
                kv.entry("k").await,
                Ok(Some(kv::Entry {
                    operation: kv::Operation::Purge,
                    ..
                }))
            )
        }
    })
    .await;
    assert!(marked, "a delete marker replaced the expired key");
    assert_eq!(kv.get("k").await.expect("get"), None);
    let cleared = eventually(Duration::from_secs(5), || {
        let kv = kv.clone();
        async move { matches!(kv.entry("k").await, Ok(None)) }
    })
    .await;
    assert!(cleared, "the marker expired after its own TTL");
    assert_eq!(
        kv.get("stays").await.expect("get"),
        Some(Bytes::from_static(b"s"))
    );
    // Once the key is gone it can be created again.
    kv.create("k", Bytes::from_static(b"again"))
        .await
        .expect("create again");
}
