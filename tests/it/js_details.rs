//! JetStream details where natsd follows nats-server 2.15.1: each test runs against natsd
//! and, when installed, the reference server, and asserts what both do. A deleted stream
//! ends its consumers' waiting pull requests; `$JS.API.INFO` counts the requests answered
//! before it; a message past `max_deliver` still counts as redelivered; a stream update
//! refuses consumer limits its consumers exceed.

use std::time::Duration;

use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::{Server, TempDir};
use serde_json::{json, Value};

use crate::{connect, WAIT};

/// natsd with JetStream in `store`, then the reference server (when installed).
fn servers(store: &TempDir, reference: bool) -> Option<Server> {
    let dir = store.path().display().to_string();
    let args = ["-js", "-sd", dir.as_str()];
    if reference {
        Server::reference(&args)
    } else {
        Some(Server::natsd(&args))
    }
}

/// Runs `check` on natsd and on the reference server (when installed), each with a fresh
/// store and client.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for reference in [false, true] {
        let store = TempDir::new();
        let Some(server) = servers(&store, reference) else {
            continue;
        };
        let client = connect(&server.url()).await;
        check(client).await;
        drop(server);
    }
}

/// Sends an API request and returns its JSON reply.
async fn api(client: &Client, subject: &str, body: Value) -> Value {
    let reply = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject} timed out"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

/// Sends an API request that must succeed and returns its reply.
async fn api_ok(client: &Client, subject: &str, body: Value) -> Value {
    let reply = api(client, subject, body).await;
    assert!(reply.get("error").is_none(), "{subject}: {reply}");
    reply
}

/// Publishes into a stream and waits for its ack.
async fn store(client: &Client, subject: &str, payload: &str) {
    api_ok(client, subject, Value::String(payload.into())).await;
}

/// Sends a pull request for consumer `stream > consumer` with `inbox` as its reply.
async fn pull(client: &Client, stream: &str, consumer: &str, inbox: &str, req: Value) {
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox.to_string(),
            Bytes::from(req.to_string()),
        )
        .await
        .expect("pull request");
    client.flush().await.expect("flush");
}

/// The next message on `sub`, within `wait`.
async fn next_within(sub: &mut Subscriber, wait: Duration, what: &str) -> Message {
    tokio::time::timeout(wait, sub.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {wait:?}"))
        .expect("subscription open")
}

/// A status reply's code and description.
fn status(m: &Message) -> (u16, String) {
    let code = m.status.map_or(0, |s| s.as_u16());
    (code, m.description.clone().unwrap_or_default())
}

/// Deleting a stream answers its consumers' waiting pull requests with `409 Consumer
/// Deleted` at once, as deleting the consumer does, instead of leaving them to expire.
#[tokio::test]
async fn stream_delete_ends_waiting_pulls() {
    on_both(|client| async move {
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.D",
            json!({"name": "D", "subjects": ["d"], "storage": "memory"}),
        )
        .await;
        api_ok(
            &client,
            "$JS.API.CONSUMER.CREATE.D.C",
            json!({"stream_name": "D", "config": {"durable_name": "C", "ack_policy": "explicit"}}),
        )
        .await;
        let mut inbox = client.subscribe("pull.inbox").await.expect("subscribe");
        pull(
            &client,
            "D",
            "C",
            "pull.inbox",
            json!({"batch": 5, "expires": 30_000_000_000u64}),
        )
        .await;
        // The request is waiting once info counts it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let info = api_ok(&client, "$JS.API.CONSUMER.INFO.D.C", json!({})).await;
            if info["num_waiting"] == 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pull never waiting: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        api_ok(&client, "$JS.API.STREAM.DELETE.D", json!({})).await;
        let m = next_within(
            &mut inbox,
            Duration::from_secs(2),
            "pull after stream delete",
        )
        .await;
        assert_eq!(status(&m), (409, "Consumer Deleted".into()));
    })
    .await;
}

/// `api.total` in `$JS.API.INFO` counts the API requests answered before it, not itself.
#[tokio::test]
async fn account_info_counts_requests_before_it() {
    on_both(|client| async move {
        let first = api_ok(&client, "$JS.API.INFO", json!({})).await;
        let second = api_ok(&client, "$JS.API.INFO", json!({})).await;
        assert_eq!(first["api"]["total"], 0, "{first}");
        assert_eq!(second["api"]["total"], 1, "{second}");
    })
    .await;
}

/// After a message's last allowed delivery (`max_deliver`, redelivered at `ack_wait`) and
/// that delivery's ack wait passing, it still counts in `num_redelivered`.
#[tokio::test]
async fn redelivered_counts_the_last_delivery() {
    on_both(|client| async move {
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.R",
            json!({"name": "R", "subjects": ["r"], "storage": "memory"}),
        )
        .await;
        store(&client, "r", "x").await;
        api_ok(
            &client,
            "$JS.API.CONSUMER.CREATE.R.C",
            json!({"stream_name": "R", "config": {
                "durable_name": "C", "ack_policy": "explicit", "max_deliver": 2,
                "ack_wait": 300_000_000u64}}),
        )
        .await;
        let mut inbox = client.subscribe("rd.inbox").await.expect("subscribe");
        pull(
            &client,
            "R",
            "C",
            "rd.inbox",
            json!({"batch": 2, "expires": 3_000_000_000u64}),
        )
        .await;
        for _ in 0..2 {
            let m = next_within(&mut inbox, WAIT, "delivery").await;
            assert_eq!(status(&m).0, 0, "{m:?}");
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let info = api_ok(&client, "$JS.API.CONSUMER.INFO.R.C", json!({})).await;
        assert_eq!(info["num_redelivered"], 1, "{info}");
    })
    .await;
}

/// A stream update whose `consumer_limits` an existing consumer exceeds is refused, naming
/// the consumers in the way; limits they keep to are accepted.
#[tokio::test]
async fn consumer_limits_update_checks_consumers() {
    on_both(|client| async move {
        let stream = json!({"name": "L", "subjects": ["l"], "storage": "memory"});
        api_ok(&client, "$JS.API.STREAM.CREATE.L", stream.clone()).await;
        for (name, pending) in [("BIG", 1000), ("SMALL", 5)] {
            api_ok(
                &client,
                &format!("$JS.API.CONSUMER.CREATE.L.{name}"),
                json!({"stream_name": "L", "config": {
                    "durable_name": name, "ack_policy": "explicit", "max_ack_pending": pending}}),
            )
            .await;
        }
        let mut update = stream.clone();
        update["consumer_limits"] = json!({"max_ack_pending": 10});
        let reply = api(&client, "$JS.API.STREAM.UPDATE.L", update.clone()).await;
        assert_eq!(
            reply["error"],
            json!({"code": 500, "err_code": 10069,
                "description": "change to limits violates consumers: BIG"}),
            "{reply}"
        );
        update["consumer_limits"] = json!({"max_ack_pending": 1000});
        api_ok(&client, "$JS.API.STREAM.UPDATE.L", update).await;
    })
    .await;
}
