//! Faults operators meet, on a real natsd: a torn or damaged block file, a full disk,
//! `kill -9` while a durable consumer acks. Each test is the regression test of a defect found
//! by a fault-injection pass; what natsd promises is in docs/COMPATIBILITY.md, "Durability and
//! faults".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream::Config};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::{Server, TempDir};

use crate::{connect, publish_acked, WAIT};

fn js_server(store: &Path, conf: Option<&str>) -> Server {
    match conf {
        Some(conf) => Server::natsd_with_config(conf, &[]),
        None => Server::natsd(&["-js", "-sd", &store.display().to_string()]),
    }
}

/// The block files of stream `name` in account `$G` (`<index>.blk` anywhere under its
/// directory), in index order.
fn block_files(store: &Path, name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<(u64, PathBuf)>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Some(n) = p
                .file_name()
                .and_then(|n| n.to_str()?.strip_suffix(".blk")?.parse().ok())
            {
                out.push((n, p));
            }
        }
    }
    let mut blocks = Vec::new();
    walk(
        &store.join(format!("jetstream/$G/streams/{name}")),
        &mut blocks,
    );
    blocks.sort();
    blocks.into_iter().map(|(_, p)| p).collect()
}

fn payload(tag: &str, i: u64) -> Bytes {
    Bytes::from(format!("{tag}-{i}-{}", "p".repeat((i % 40) as usize)))
}

async fn durable(
    stream: &jetstream::stream::Stream,
    name: &str,
) -> jetstream::consumer::PullConsumer {
    stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.into()),
                ack_wait: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .await
        .expect("consumer")
}

/// Fetch what the consumer has now (waiting up to `expires`), acking each with a confirmed
/// ack; returns the stream sequences and payloads.
async fn fetch_and_confirm(
    c: &jetstream::consumer::PullConsumer,
    max: usize,
    expires: Duration,
) -> Vec<(u64, Bytes)> {
    let mut batch = c
        .fetch()
        .max_messages(max)
        .expires(expires)
        .messages()
        .await
        .expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(expires + WAIT, batch.next())
        .await
        .expect("fetch timed out")
    {
        let m = m.expect("message");
        let seq = m.info().expect("ack info").stream_sequence;
        tokio::time::timeout(WAIT, m.double_ack())
            .await
            .expect("ack timed out")
            .expect("ack confirmed");
        got.push((seq, m.payload.clone()));
    }
    got
}

/// Defect: a torn last block made natsd hand out sequence numbers again; a durable consumer's
/// ack floor already covered the first new message, which was never delivered although its
/// publish was acknowledged. The sequence must go on from the highest ever assigned, the lost
/// one counted as deleted.
#[tokio::test]
async fn torn_last_block_never_reuses_a_sequence() {
    torn_last_block(false).await;
}

/// The same with the store's own record of its last sequence gone too: the durable
/// consumer's saved state (it acknowledged sequence 100) keeps the sequence from going back.
#[tokio::test]
async fn torn_last_block_without_the_last_seq_file_falls_back_to_consumer_state() {
    torn_last_block(true).await;
}

async fn torn_last_block(remove_last_seq_file: bool) {
    let store = TempDir::new();
    let mut server = js_server(store.path(), None);
    {
        let js = jetstream::new(connect(&server.url()).await);
        let stream = js
            .create_stream(Config {
                name: "T".into(),
                subjects: vec!["t.>".into()],
                ..Default::default()
            })
            .await
            .expect("create");
        for i in 1..=100 {
            assert_eq!(
                publish_acked(&js, format!("t.{i}"), payload("old", i)).await,
                i
            );
        }
        let c = durable(&stream, "D").await;
        let got = fetch_and_confirm(&c, 100, Duration::from_secs(1)).await;
        assert_eq!(got.len(), 100);
    }
    server.restart_after(|| {
        let last = block_files(store.path(), "T").pop().expect("a block file");
        let len = std::fs::metadata(&last).expect("stat").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .expect("open block");
        f.set_len(len - 50).expect("cut the block");
        if remove_last_seq_file {
            let state = last.with_file_name("last.seq");
            std::fs::remove_file(&state)
                .unwrap_or_else(|e| panic!("remove {}: {e}", state.display()));
        }
    });
    let js = jetstream::new(connect(&server.url()).await);
    let mut seqs = Vec::new();
    for i in 1..=3 {
        seqs.push(publish_acked(&js, format!("t.new.{i}"), payload("new", i)).await);
    }
    assert_eq!(seqs, [101, 102, 103], "sequences were handed out again");
    let mut stream = js.get_stream("T").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.last_sequence, 103);
    assert!(
        info.state.deleted_count.unwrap_or(0) >= 1,
        "{:?}",
        info.state
    );
    let c = durable(&stream, "D").await;
    let got = fetch_and_confirm(&c, 10, Duration::from_millis(500)).await;
    let want: Vec<(u64, Bytes)> = (1..=3).map(|i| (100 + i, payload("new", i))).collect();
    assert_eq!(got, want, "every acknowledged publish reaches the consumer");
}

/// Defect: an ack confirmation (the reply to an ack sent with a reply subject, "ack sync")
/// went out before the consumer's state was written, which happened once a second: after
/// `kill -9` every confirmed ack was redelivered.
#[tokio::test]
async fn confirmed_acks_survive_kill_9() {
    let store = TempDir::new();
    let mut server = js_server(store.path(), None);
    {
        let js = jetstream::new(connect(&server.url()).await);
        let stream = js
            .create_stream(Config {
                name: "A".into(),
                subjects: vec!["a.>".into()],
                ..Default::default()
            })
            .await
            .expect("create");
        for i in 1..=50 {
            publish_acked(&js, format!("a.{i}"), payload("a", i)).await;
        }
        let c = durable(&stream, "D").await;
        let got = fetch_and_confirm(&c, 50, Duration::from_secs(1)).await;
        assert_eq!(got.len(), 50);
        server.signal("KILL");
    }
    server.restart();
    let js = jetstream::new(connect(&server.url()).await);
    let stream = js.get_stream("A").await.expect("stream");
    let mut c = durable(&stream, "D").await;
    let info = c.info().await.expect("consumer info");
    assert_eq!(info.ack_floor.stream_sequence, 50, "{info:?}");
    assert_eq!(info.num_ack_pending, 0);
    // Longer than ack_wait: anything the server thought unacked would come back.
    let again = fetch_and_confirm(&c, 50, Duration::from_millis(1500)).await;
    assert!(
        again.is_empty(),
        "confirmed acks redelivered: {:?}",
        again.len()
    );
}

/// `kill -9` at random points while a publisher and a durable consumer (confirmed acks) run:
/// after each restart every acknowledged publish is there with its bytes, no confirmed ack
/// is redelivered, and sequences go on past every one handed out.
#[tokio::test]
async fn kill_9_loop_with_a_confirming_consumer() {
    let store = TempDir::new();
    let mut server = js_server(store.path(), None);
    {
        let js = jetstream::new(connect(&server.url()).await);
        js.create_stream(Config {
            name: "L".into(),
            subjects: vec!["l.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    }
    let mut published: Vec<(u64, Bytes)> = Vec::new();
    let mut confirmed: Vec<u64> = Vec::new();
    let mut rng = crate::jetstream::Rng::new();
    for round in 0..3u64 {
        let client = connect(&server.url()).await;
        let js = jetstream::new(client);
        let stream = js.get_stream("L").await.expect("stream");
        let c = durable(&stream, "D").await;
        let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
        let (ctx, mut crx) = tokio::sync::mpsc::unbounded_channel();
        let pjs = js.clone();
        let publisher = tokio::spawn(async move {
            for i in 0u64.. {
                let body = payload(&format!("r{round}"), i);
                let Ok(ack) = pjs.publish(format!("l.{}", i % 5), body.clone()).await else {
                    return;
                };
                let Ok(ack) = ack.await else { return };
                if ptx.send((ack.sequence, body)).is_err() {
                    return;
                }
            }
        });
        let consumer = tokio::spawn(async move {
            loop {
                let Ok(mut batch) = c
                    .fetch()
                    .max_messages(20)
                    .expires(Duration::from_millis(200))
                    .messages()
                    .await
                else {
                    return;
                };
                while let Some(Ok(m)) = batch.next().await {
                    let Ok(info) = m.info().map(|i| i.stream_sequence) else {
                        return;
                    };
                    if m.double_ack().await.is_err() {
                        return;
                    }
                    if ctx.send(info).is_err() {
                        return;
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        server.signal("KILL");
        let _ = tokio::time::timeout(WAIT, publisher).await;
        consumer.abort();
        while let Ok(p) = prx.try_recv() {
            published.push(p);
        }
        while let Ok(s) = crx.try_recv() {
            confirmed.push(s);
        }
        server.restart();
        let js = jetstream::new(connect(&server.url()).await);
        let stream = js.get_stream("L").await.expect("stream after kill -9");
        for (seq, body) in &published {
            let m = stream
                .get_raw_message(*seq)
                .await
                .unwrap_or_else(|e| panic!("round {round}: acknowledged seq {seq} lost: {e}"));
            assert_eq!(&m.payload, body, "round {round}: seq {seq}");
        }
        let highest = published.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let next = publish_acked(&js, "l.probe", Bytes::from_static(b"probe")).await;
        assert!(
            next > highest,
            "round {round}: seq {next} handed out again (highest {highest})"
        );
        published.push((next, Bytes::from_static(b"probe")));
        let c = durable(&stream, "D").await;
        let floor = c
            .clone()
            .info()
            .await
            .expect("consumer info")
            .ack_floor
            .stream_sequence;
        let mut sorted = confirmed.clone();
        sorted.sort_unstable();
        // Confirmed acks form a prefix of the stream here (one consumer, in order): the floor
        // covers every one of them.
        let contiguous = sorted
            .iter()
            .enumerate()
            .take_while(|(i, s)| **s == *i as u64 + 1)
            .count() as u64;
        assert!(
            floor >= contiguous,
            "round {round}: ack floor {floor} below {contiguous} confirmed acks"
        );
    }
    assert!(!published.is_empty() && !confirmed.is_empty());
}

/// A flipped byte in the middle of a sealed block: the damaged record is reported in the log
/// and skipped, every other message comes back with its bytes, and new sequences go on.
#[tokio::test]
async fn a_flipped_byte_loses_one_record_not_the_stream() {
    let store = TempDir::new();
    let mut server = js_server(store.path(), None);
    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    {
        let js = jetstream::new(connect(&server.url()).await);
        js.create_stream(Config {
            name: "C".into(),
            subjects: vec!["c.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
        // 64 KiB messages: 200 of them fill more than one 8 MiB block.
        for i in 1..=200u64 {
            let mut body = big.to_vec();
            body[..8].copy_from_slice(&i.to_le_bytes());
            publish_acked(&js, format!("c.{i}"), Bytes::from(body)).await;
        }
    }
    server.restart_after(|| {
        let blocks = block_files(store.path(), "C");
        assert!(
            blocks.len() >= 2,
            "expected a sealed block, have {blocks:?}"
        );
        let first = &blocks[0];
        let mut bytes = std::fs::read(first).expect("read block");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(first, bytes).expect("write block");
    });
    assert!(
        server.wait_for_log("[WRN]", WAIT),
        "the damage is reported:\n{}",
        server.log_contents()
    );
    let js = jetstream::new(connect(&server.url()).await);
    let stream = js.get_stream("C").await.expect("stream");
    let mut lost = 0;
    for i in 1..=200u64 {
        match stream.get_raw_message(i).await {
            Ok(m) => assert_eq!(&m.payload[..8], &i.to_le_bytes(), "seq {i}"),
            Err(_) => lost += 1,
        }
    }
    assert_eq!(lost, 1, "one record damaged, one lost");
    assert_eq!(
        publish_acked(&js, "c.next", Bytes::from_static(b"n")).await,
        201
    );
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `2m`) on `dir`; `None`, with a note, when this machine
    /// does not let us (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("NOTE: cannot mount a tmpfs (not root?); disk-full test skipped");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Defect: with the store on a full file system, publishes were answered `503 / 10077`, yet
/// the same messages were on disk once space was freed: a client that retried stored them
/// twice. A refused publish must leave no trace, an acknowledged one must be there, and the
/// server goes on storing once there is room, without a restart.
#[tokio::test]
async fn a_full_disk_refuses_what_it_does_not_store() {
    let dir = TempDir::new();
    let mnt = dir.path().join("store");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let Some(fs) = Tmpfs::mount(&mnt, "2m") else {
        return;
    };
    let conf = format!(
        "jetstream {{ store_dir: {:?}, max_file_store: 1GB }}\n",
        mnt.display().to_string()
    );
    let mut server = js_server(&mnt, Some(&conf));
    let js = jetstream::new(connect(&server.url()).await);
    js.create_stream(Config {
        name: "F".into(),
        subjects: vec!["f.>".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let body = Bytes::from(vec![b'f'; 8 * 1024]);
    let mut i = 0u64;
    // Windows of concurrent publishes (so failures hit whole batches) until the disk has
    // refused a good number; bounded.
    while refused.len() < 40 && i < 2000 {
        let mut window = Vec::new();
        for _ in 0..32 {
            i += 1;
            let id = format!("m-{i}");
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", id.as_str());
            let ack = js
                .publish_with_headers(format!("f.{i}"), h, body.clone())
                .await
                .expect("publish");
            window.push((id, ack));
        }
        for (id, ack) in window {
            match tokio::time::timeout(WAIT, ack)
                .await
                .expect("ack timed out")
            {
                Ok(a) => acked.push((a.sequence, id)),
                Err(e) => {
                    assert!(e.to_string().contains("space"), "{e}");
                    refused.push(id);
                }
            }
        }
    }
    assert!(
        refused.len() >= 40,
        "the disk never filled ({} acked)",
        acked.len()
    );
    assert!(!acked.is_empty());
    fs.resize("64m");
    let after = {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", "after");
        tokio::time::timeout(WAIT, async {
            js.publish_with_headers("f.after", h, body.clone())
                .await
                .expect("publish")
                .await
        })
        .await
        .expect("ack timed out")
        .expect("stored once there is room")
        .sequence
    };
    acked.push((after, "after".into()));
    server.restart();
    let js = jetstream::new(connect(&server.url()).await);
    let mut stream = js.get_stream("F").await.expect("stream");
    let info = stream.info().await.expect("info");
    let mut found = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            found.push((seq, id));
        }
    }
    for id in &refused {
        assert!(
            !found.iter().any(|(_, f)| f == id),
            "refused publish {id} was stored"
        );
    }
    for a in &acked {
        assert!(found.contains(a), "acknowledged {a:?} lost");
    }
    assert_eq!(
        found.len(),
        acked.len(),
        "stored exactly what was acknowledged"
    );
    drop(server);
}

/// nats-server sends no PING before the client's CONNECT (its first PING comes a full
/// `ping_interval` after the connection, and CONNECT brings it forward to ~2 s).
#[test]
fn no_ping_before_connect() {
    let servers = [Some(Server::natsd(&[])), Server::reference(&[])];
    for server in servers.iter().flatten() {
        let mut raw = natsd_tests::RawConn::connect_only(&server.addr());
        let got = raw.read_to_close(Duration::from_millis(3500));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("INFO "), "{:?}: {text}", server.kind());
        assert!(
            !text.contains("PING"),
            "{:?}: PING before CONNECT: {text}",
            server.kind()
        );
    }
}

/// The slow-consumer line names the client as every other client line does
/// (`ip:port - cid:N - `), as nats-server's does.
#[test]
fn slow_consumer_line_names_the_client() {
    let servers = [
        Some(Server::natsd_with_config("max_pending: 1MB\n", &[])),
        Server::reference_with_config(&[], Some("max_pending: 1MB\n")),
    ];
    for server in servers.iter().flatten() {
        let mut sub = server.raw();
        sub.send("CONNECT {\"verbose\":false}\r\nSUB slow 1\r\n");
        sub.ping_pong();
        let mut publisher = server.raw();
        publisher.send("CONNECT {\"verbose\":false}\r\n");
        let chunk = format!("PUB slow 65536\r\n{}\r\n", "s".repeat(65536));
        // Up to 64 MiB, well past max_pending plus what the sockets buffer.
        for _ in 0..1024 {
            if !publisher.send(&chunk) || server.log_contents().contains("Slow Consumer Detected") {
                break;
            }
        }
        assert!(
            server.wait_for_log("Slow Consumer Detected: MaxPending of", WAIT),
            "{:?}: no slow consumer line:\n{}",
            server.kind(),
            server.log_contents()
        );
        let log = server.log_contents();
        let line = log
            .lines()
            .find(|l| l.contains("Slow Consumer Detected: MaxPending of"))
            .expect("the line");
        let (_, after_level) = line
            .split_once("] ")
            .and_then(|(_, r)| r.split_once("] "))
            .expect("a log line");
        assert!(
            after_level.starts_with("127.0.0.1:") && after_level.contains(" - cid:"),
            "{:?}: {line}",
            server.kind()
        );
    }
}
