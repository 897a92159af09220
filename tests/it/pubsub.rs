//! Core publish/subscribe behaviour through the official async-nats client.

use std::collections::HashSet;

use async_nats::{ConnectOptions, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::Server;

use crate::{connect, drain_ready, flush, next_msg, round_trip, WAIT};

#[tokio::test]
async fn publish_reaches_subscriber() {
    let server = Server::natsd(&[]);
    let sub_client = connect(&server.url()).await;
    let mut sub = sub_client.subscribe("greet.joe").await.expect("subscribe");
    round_trip(&sub_client).await;
    let pub_client = connect(&server.url()).await;
    pub_client
        .publish("greet.joe", Bytes::from_static(b"hello"))
        .await
        .expect("publish");
    pub_client
        .publish_with_reply("greet.joe", "inbox.1", Bytes::from_static(b"again"))
        .await
        .expect("publish");
    round_trip(&pub_client).await;
    let first = next_msg(&mut sub).await;
    assert_eq!(first.subject.as_str(), "greet.joe");
    assert_eq!(first.payload, "hello");
    assert_eq!(first.reply, None);
    let second = next_msg(&mut sub).await;
    assert_eq!(second.payload, "again");
    assert_eq!(second.reply.as_deref(), Some("inbox.1"));
}

#[tokio::test]
async fn wildcards_match_tokens_and_tails() {
    let server = Server::natsd(&[]);
    let client = connect(&server.url()).await;
    let mut star = client.subscribe("a.*.c").await.expect("subscribe");
    let mut tail = client.subscribe("a.>").await.expect("subscribe");
    round_trip(&client).await;
    for subject in ["a.b.c", "a.x.c", "a.b", "a.b.c.d", "a", "b.b.c"] {
        client
            .publish(subject, Bytes::from(subject))
            .await
            .expect("publish");
    }
    round_trip(&client).await;
    let star_got: Vec<String> = drain_ready(&mut star)
        .into_iter()
        .map(|m| m.subject.to_string())
        .collect();
    let tail_got: Vec<String> = drain_ready(&mut tail)
        .into_iter()
        .map(|m| m.subject.to_string())
        .collect();
    assert_eq!(star_got, ["a.b.c", "a.x.c"]);
    assert_eq!(tail_got, ["a.b.c", "a.x.c", "a.b", "a.b.c.d"]);
}

#[tokio::test]
async fn queue_group_delivers_each_message_once() {
    const N: usize = 300;
    let server = Server::natsd(&[]);
    let sub_client = connect(&server.url()).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            sub_client
                .queue_subscribe("work", "workers".to_string())
                .await
                .expect("queue subscribe"),
        );
    }
    let mut plain = sub_client.subscribe("work").await.expect("subscribe");
    round_trip(&sub_client).await;
    let pub_client = connect(&server.url()).await;
    for i in 0..N {
        pub_client
            .publish("work", Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    round_trip(&pub_client).await;
    round_trip(&sub_client).await;
    let mut seen = HashSet::new();
    for (k, member) in members.iter_mut().enumerate() {
        let got = drain_ready(member);
        assert!(!got.is_empty(), "queue member {k} got nothing of {N}");
        for msg in got {
            let text = String::from_utf8(msg.payload.to_vec()).expect("utf8");
            assert!(seen.insert(text.clone()), "message {text} delivered twice");
        }
    }
    assert_eq!(seen.len(), N, "every message once across the group");
    assert_eq!(
        drain_ready(&mut plain).len(),
        N,
        "plain subscriber gets all"
    );
}

#[tokio::test]
async fn request_reply() {
    let server = Server::natsd(&[]);
    let responder = connect(&server.url()).await;
    let mut service = responder.subscribe("svc.echo").await.expect("subscribe");
    round_trip(&responder).await;
    let task = tokio::spawn(async move {
        for _ in 0..3 {
            let Some(req) = service.next().await else {
                return;
            };
            let reply = req.reply.expect("request carries a reply subject");
            let mut answer = b"re: ".to_vec();
            answer.extend_from_slice(&req.payload);
            responder
                .publish(reply, Bytes::from(answer))
                .await
                .expect("respond");
        }
        responder.flush().await.expect("flush");
    });
    let client = connect(&server.url()).await;
    for i in 0..3 {
        let resp = tokio::time::timeout(
            WAIT,
            client.request("svc.echo", Bytes::from(format!("q{i}"))),
        )
        .await
        .expect("request timed out")
        .expect("request");
        assert_eq!(resp.payload, format!("re: q{i}"));
    }
    tokio::time::timeout(WAIT, task)
        .await
        .expect("responder finished")
        .expect("responder task");
}

#[tokio::test]
async fn headers_round_trip() {
    let server = Server::natsd(&[]);
    let client = connect(&server.url()).await;
    let mut sub = client.subscribe("h").await.expect("subscribe");
    round_trip(&client).await;
    let mut headers = HeaderMap::new();
    headers.insert("X-One", "1");
    headers.append("X-Multi", "first");
    headers.append("X-Multi", "second");
    client
        .publish_with_headers("h", headers, Bytes::from_static(b"body"))
        .await
        .expect("publish");
    client
        .publish_with_headers("h", HeaderMap::new(), Bytes::new())
        .await
        .expect("publish");
    round_trip(&client).await;
    let msg = next_msg(&mut sub).await;
    assert_eq!(msg.payload, "body");
    let got = msg.headers.expect("headers arrive");
    assert_eq!(got.get("X-One").map(|v| v.as_str()), Some("1"));
    let multi: Vec<&str> = got.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, ["first", "second"]);
    let empty = next_msg(&mut sub).await;
    assert!(empty.payload.is_empty());
}

#[tokio::test]
async fn request_without_responders_fails_fast() {
    let server = Server::natsd(&[]);
    let client = connect(&server.url()).await;
    let err = tokio::time::timeout(WAIT, client.request("nobody.home", Bytes::new()))
        .await
        .expect("no-responders answer within the timeout")
        .expect_err("no responders is an error");
    assert_eq!(err.kind(), RequestErrorKind::NoResponders, "{err}");
}

#[tokio::test]
async fn unsubscribe_after_max_messages() {
    let server = Server::natsd(&[]);
    let client = connect(&server.url()).await;
    let mut sub = client.subscribe("auto").await.expect("subscribe");
    sub.unsubscribe_after(2).await.expect("unsubscribe_after");
    round_trip(&client).await;
    for i in 0..5 {
        client
            .publish("auto", Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    round_trip(&client).await;
    assert_eq!(next_msg(&mut sub).await.payload, "0");
    assert_eq!(next_msg(&mut sub).await.payload, "1");
    let after = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("subscription ends after its max");
    assert!(after.is_none(), "got a third message: {after:?}");
}

#[tokio::test]
async fn flush_sends_every_buffered_publish() {
    const N: usize = 2_000;
    let server = Server::natsd(&[]);
    let sub_client = connect(&server.url()).await;
    let mut sub = sub_client.subscribe("flush.>").await.expect("subscribe");
    round_trip(&sub_client).await;
    let client = connect(&server.url()).await;
    for i in 0..N {
        client
            .publish(format!("flush.{}", i % 7), Bytes::from_static(b"x"))
            .await
            .expect("publish");
    }
    flush(&client).await;
    for i in 0..N {
        let msg = next_msg(&mut sub).await;
        assert_eq!(msg.subject.as_str(), format!("flush.{}", i % 7));
    }
}

#[tokio::test]
async fn no_echo_suppresses_own_messages() {
    let server = Server::natsd(&[]);
    let quiet = tokio::time::timeout(WAIT, ConnectOptions::new().no_echo().connect(server.url()))
        .await
        .expect("connect timed out")
        .expect("connect");
    let other = connect(&server.url()).await;
    let mut own = quiet.subscribe("echo").await.expect("subscribe");
    let mut theirs = other.subscribe("echo").await.expect("subscribe");
    let mut marker = other.subscribe("marker").await.expect("subscribe");
    round_trip(&other).await;
    // The marker proves `quiet`'s SUB and earlier publish were processed: the server handles
    // one connection's commands in order.
    quiet
        .publish("echo", Bytes::from_static(b"mine"))
        .await
        .expect("publish");
    quiet
        .publish("marker", Bytes::new())
        .await
        .expect("publish");
    flush(&quiet).await;
    next_msg(&mut marker).await;
    assert_eq!(next_msg(&mut theirs).await.payload, "mine");
    other
        .publish("echo", Bytes::from_static(b"yours"))
        .await
        .expect("publish");
    flush(&other).await;
    assert_eq!(
        next_msg(&mut own).await.payload,
        "yours",
        "own message echoed"
    );
    assert_eq!(next_msg(&mut theirs).await.payload, "yours");
}
