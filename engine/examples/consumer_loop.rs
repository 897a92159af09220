//! The JetStream consumer machine driven by a plain loop, without sockets, threads or a real
//! clock: the loop owns time (an `Instant` it advances by hand), the stream (a `MemStore`) and
//! the subscriber, and it prints what the consumer asks it to deliver.
//!
//! A push consumer with explicit acks and a one-second ack wait. An order is published every
//! half second; the subscriber acks each delivery except the first delivery of `orders.2`,
//! which the consumer therefore delivers again once its ack wait has passed.
//!
//! Run with `cargo run -p natsd-engine --example consumer_loop`.
use std::time::{Duration, Instant};

use bytes::Bytes;
use natsd_engine::consumer::{
    parse_ack_reply, AckPolicy, Consumer, ConsumerConfig, Input, Output, ServerLimits, StoreSource,
    StreamFacts,
};
use natsd_storage::{MemStore, Store, StoreLimits};

/// The fake clock's tick.
const TICK: Duration = Duration::from_millis(250);
/// Wall-clock time at the start, ns since the Unix epoch (2023-11-14T22:13:20Z).
const WALL0: i64 = 1_700_000_000_000_000_000;

fn main() {
    let mut stream = MemStore::new(StoreLimits::default());
    let facts = StreamFacts {
        subjects: vec!["orders.>".into()],
        replicas: 1,
        ..StreamFacts::default()
    };
    let config = ConsumerConfig {
        durable_name: "shipping".into(),
        deliver_subject: "deliver.shipping".into(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(1),
        ..ConsumerConfig::default()
    };
    let t0 = origin();
    let mut consumer = Consumer::new(
        "ORDERS",
        "shipping",
        config,
        &facts,
        &ServerLimits::default(),
        t0,
        WALL0,
        None,
        &StoreSource::new(&stream),
    )
    .expect("a valid consumer config");
    consumer.handle_input(t0, Input::Interest(true), &StoreSource::new(&stream));

    for tick in 0..16u32 {
        let now = t0 + TICK * tick;
        let elapsed_ms = (now - t0).as_millis();
        if tick % 2 == 0 && tick < 10 {
            let subject = format!("orders.{}", tick / 2 + 1);
            let ts = WALL0 + (now - t0).as_nanos() as i64;
            let (seq, _) = stream
                .store_msg(&subject, b"", b"one order", ts)
                .expect("the memory store takes the message");
            println!("{elapsed_ms:>5} ms  stored   {subject} as seq {seq}");
            let stored = Input::Stored { seq, subject };
            consumer.handle_input(now, stored, &StoreSource::new(&stream));
        }
        if consumer.poll_timeout().is_some_and(|due| due <= now) {
            consumer.handle_timeout(now, &StoreSource::new(&stream));
        }
        while let Some(out) = consumer.poll_output() {
            let Output::Deliver(d) = out else {
                continue;
            };
            let ack = d.subject != "orders.2" || d.delivered > 1;
            println!(
                "{elapsed_ms:>5} ms  deliver  {} to {} (stream seq {}, consumer seq {}, delivery {}){}",
                d.subject,
                d.to,
                d.stream_seq,
                d.consumer_seq,
                d.delivered,
                if ack { ", acked" } else { ", not acked" },
            );
            if ack {
                let input = Input::Ack {
                    info: parse_ack_reply(&d.reply).map(|(_, _, info)| info),
                    reply: None,
                    body: Bytes::from_static(b"+ACK"),
                };
                consumer.handle_input(now, input, &StoreSource::new(&stream));
            }
        }
    }
    let state = consumer.state();
    println!(
        "done: delivered up to stream seq {}, ack floor {}, {} awaiting an ack",
        state.delivered.stream_seq,
        state.ack_floor.stream_seq,
        state.pending.len()
    );
}

/// Any instant serves as the origin; from there the loop owns time.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}
