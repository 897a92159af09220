//! Limits: many subscriptions, max_payload, slow consumers.

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::client::PublishErrorKind;
use bytes::Bytes;
use natsd_tests::{show, Server};

use crate::{connect, next_msg, round_trip, WAIT};

const CONNECT_QUIET: &str = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";

#[test]
fn hundred_thousand_subscriptions_on_one_connection() {
    const SUBS: usize = 100_000;
    const TARGET: usize = 77_777;
    let server = Server::natsd(&[]);
    let mut subscriber = server.raw();
    let mut lines = String::with_capacity(SUBS * 24 + CONNECT_QUIET.len());
    lines.push_str(CONNECT_QUIET);
    for i in 0..SUBS {
        writeln!(lines, "SUB many.{i} {i}\r").expect("write to String");
    }
    assert!(subscriber.send(lines));
    assert_eq!(
        show(&subscriber.ping_pong_within(Duration::from_secs(20))),
        ""
    );
    let mut publisher = server.raw();
    assert!(publisher.send(format!("{CONNECT_QUIET}PUB many.{TARGET} 2\r\nhi\r\n")));
    assert_eq!(show(&publisher.ping_pong()), "");
    assert_eq!(
        show(&subscriber.ping_pong()),
        format!("MSG many.{TARGET} {TARGET} 2\r\nhi\r\n")
    );
}

#[tokio::test]
async fn payload_of_exactly_max_payload_is_accepted() {
    let server = Server::natsd(&[]);
    let client = connect(&server.url()).await;
    let max = client.server_info().max_payload;
    assert_eq!(max, 1_048_576, "default max_payload");
    let mut sub = client.subscribe("big").await.expect("subscribe");
    round_trip(&client).await;
    client
        .publish("big", Bytes::from(vec![7u8; max]))
        .await
        .expect("publish max_payload bytes");
    round_trip(&client).await;
    let msg = next_msg(&mut sub).await;
    assert_eq!(msg.payload.len(), max);
    assert!(msg.payload.iter().all(|&b| b == 7));
    let err = client
        .publish("big", Bytes::from(vec![7u8; max + 1]))
        .await
        .expect_err("async-nats refuses max_payload + 1 from INFO");
    assert_eq!(err.kind(), PublishErrorKind::MaxPayloadExceeded);
}

#[test]
fn payload_one_byte_over_max_payload_is_rejected() {
    let server = Server::natsd(&[]);
    let mut conn = server.raw();
    assert!(conn.send(format!("{CONNECT_QUIET}SUB big 1\r\n")));
    assert_eq!(show(&conn.ping_pong()), "");
    assert!(conn.send(b"PUB big 1048577\r\n"));
    let got = conn.expect_closed(Duration::from_secs(5));
    assert_eq!(show(&got), "-ERR 'Maximum Payload Violation'\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_publisher_keeps_going() {
    const CHUNK: usize = 64 * 1024;
    const COUNT: usize = 1_024;
    // A short write_deadline: nats-server 2.9.10 marks the consumer slow at max_pending but
    // only completes the close once its blocked socket write times out.
    let conf = "max_pending: 1048576\nwrite_deadline: \"1s\"\n";
    let server = Server::natsd_with_config(conf, &[]);
    let mut slow = server.raw();
    assert!(slow.send(format!("{CONNECT_QUIET}SUB flood 1\r\n")));
    assert_eq!(show(&slow.ping_pong()), "");

    let publisher = connect(&server.url()).await;
    let payload = Bytes::from(vec![b'z'; CHUNK]);
    let flood = async {
        for _ in 0..COUNT {
            publisher
                .publish("flood", payload.clone())
                .await
                .expect("publish");
        }
        publisher.flush().await.expect("flush");
    };
    tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("a slow consumer must not block the publisher");

    let received = tokio::task::block_in_place(|| slow.read_to_close(Duration::from_secs(15)));
    assert!(slow.is_closed(), "slow consumer still connected");
    assert!(
        received.len() < CHUNK * COUNT,
        "slow consumer got everything ({} bytes) and was not cut off",
        received.len()
    );
    assert!(
        server.log_contents().contains("Slow Consumer"),
        "log:\n{}",
        server.log_contents()
    );

    let observer = connect(&server.url()).await;
    let mut after = observer.subscribe("after").await.expect("subscribe");
    round_trip(&observer).await;
    publisher
        .publish("after", Bytes::from_static(b"still here"))
        .await
        .expect("publish after the slow consumer");
    tokio::time::timeout(WAIT, publisher.flush())
        .await
        .expect("flush timed out")
        .expect("flush");
    assert_eq!(next_msg(&mut after).await.payload, "still here");
}
