//! natsd integration tests: one binary, a module per area (STYLE.md section 6).
//!
//! Every test starts its own server (natsd by default; `NATSD_BIN` picks another binary, e.g.
//! `/usr/sbin/nats-server` to check the tests themselves) and bounds every wait.

mod accounts;
mod auth;
mod cluster;
mod consumers;
mod differential;
mod direct_get;
mod encryption;
mod faults;
mod fuzz_corpus;
mod harness;
mod harness_details;
mod http_faults;
mod jetstream;
mod js_details;
mod js_release;
mod js_validation;
mod limits;
mod mappings;
mod monitor;
mod pubsub;
mod reconnect;
mod reload_accounts;
mod route_wire;
mod signals;
mod stream_features;
mod sys;
mod tls;

use std::time::Duration;

use async_nats::{Message, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

/// Upper bound for any single wait in a behaviour test.
pub const WAIT: Duration = Duration::from_secs(5);

/// Publishes to JetStream and waits for the pub ack; its sequence. Bounded by [`WAIT`].
pub async fn publish_acked(
    js: &async_nats::jetstream::Context,
    subject: impl Into<String>,
    body: impl Into<Bytes>,
) -> u64 {
    tokio::time::timeout(WAIT, async {
        js.publish(subject.into(), body.into())
            .await
            .expect("publish")
            .await
            .expect("ack")
            .sequence
    })
    .await
    .expect("publish timed out")
}

/// Connects an async-nats client, bounded by [`WAIT`].
pub async fn connect(url: &str) -> async_nats::Client {
    tokio::time::timeout(WAIT, async_nats::connect(url))
        .await
        .unwrap_or_else(|_| panic!("connect to {url} timed out"))
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Connects as `user` with password `user`, bounded by [`WAIT`].
pub async fn login(server: &natsd_tests::Server, user: &str) -> async_nats::Client {
    tokio::time::timeout(
        WAIT,
        async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
            .connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("{:?}: connect as {user}: {e}", server.bin()))
}

/// Flushes the client's write buffer, bounded by [`WAIT`]. In async-nats 0.51 this is not a
/// server round trip; use [`round_trip`] to know the server has processed earlier commands.
pub async fn flush(client: &async_nats::Client) {
    tokio::time::timeout(WAIT, client.flush())
        .await
        .expect("flush timed out")
        .expect("flush");
}

/// A round trip through the server on this client's connection: subscribes to a fresh inbox,
/// publishes to it and waits for the message. Afterwards the server has processed every earlier
/// command of this client, and every message it sent this client before has been dispatched to
/// its subscription. Needs echo on.
pub async fn round_trip(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client.publish(inbox, Bytes::new()).await.expect("publish");
    flush(client).await;
    next_msg(&mut sub).await;
    sub.unsubscribe().await.expect("unsubscribe");
}

/// The subscription's next message, bounded by [`WAIT`].
pub async fn next_msg(sub: &mut Subscriber) -> Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("no message within the timeout")
        .expect("subscription ended")
}

/// Messages already delivered to the subscription, without waiting. Call it after a
/// [`round_trip`] on the subscriber's connection.
pub fn drain_ready(sub: &mut Subscriber) -> Vec<Message> {
    let mut out = Vec::new();
    // `unconstrained`: tokio's cooperative budget would otherwise report Pending after ~128
    // ready messages.
    while let Some(Some(msg)) = tokio::task::unconstrained(sub.next()).now_or_never() {
        out.push(msg);
    }
    out
}
