//! Client reconnection across a server restart on the same port.

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;
use natsd_tests::Server;

use crate::{connect, next_msg, round_trip, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_server_restart() {
    let mut server = Server::natsd(&[]);
    let (events_tx, mut events) = mpsc::unbounded();
    let client = tokio::time::timeout(
        WAIT,
        ConnectOptions::new()
            .reconnect_delay_callback(|_| Duration::from_millis(50))
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.unbounded_send(event);
                }
            })
            .connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .expect("connect");
    let mut sub = client.subscribe("again").await.expect("subscribe");
    round_trip(&client).await;

    tokio::task::block_in_place(|| server.restart());

    let reconnected = async {
        let mut disconnected = false;
        while let Some(event) = events.next().await {
            match event {
                Event::Disconnected => disconnected = true,
                Event::Connected if disconnected => return,
                _ => {}
            }
        }
        panic!("event stream ended before reconnecting");
    };
    tokio::time::timeout(Duration::from_secs(10), reconnected)
        .await
        .expect("client did not reconnect within 10 s");
    round_trip(&client).await;

    let publisher = connect(&server.url()).await;
    publisher
        .publish("again", Bytes::from_static(b"back"))
        .await
        .expect("publish");
    round_trip(&publisher).await;
    assert_eq!(next_msg(&mut sub).await.payload, "back");
}
