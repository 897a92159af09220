//! JetStream encryption at rest: `jetstream { key, cipher }` as nats-server 2.9.10 reads them.
//! Each test runs natsd and, when installed, nats-server with the same config file.

use std::fs;
use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, stream::Config};
use bytes::Bytes;
use futures::TryStreamExt;
use natsd_tests::{Kind, Server, TempDir};

use crate::{connect, WAIT};

/// A payload no store format would produce by chance.
const MARKER: &str = "plaintext-marker-7f3a9c";
const MSGS: u64 = 40;

fn conf(store: &Path, key: &str, cipher: Option<&str>) -> String {
    let cipher = cipher.map(|c| format!(", cipher: {c}")).unwrap_or_default();
    format!(
        "jetstream {{ store_dir: {:?}, key: {key:?}{cipher} }}\n",
        store.display().to_string()
    )
}

/// Every file under a `msgs` directory below `dir`.
fn msg_files(dir: &Path, under_msgs: bool, out: &mut Vec<PathBuf>) {
    for ent in fs::read_dir(dir).expect("read store dir") {
        let path = ent.expect("dir entry").path();
        if path.is_dir() {
            let msgs = under_msgs || path.file_name().is_some_and(|n| n == "msgs");
            msg_files(&path, msgs, out);
        } else if under_msgs {
            out.push(path);
        }
    }
}

async fn create_and_fill(server: &Server) {
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    js.create_stream(Config {
        name: "SECRETS".into(),
        subjects: vec!["sec.>".into()],
        ..Default::default()
    })
    .await
    .expect("create file stream");
    for i in 1..=MSGS {
        js.publish(format!("sec.{i}"), Bytes::from(format!("{MARKER}-{i}")))
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

async fn assert_served(server: &Server) {
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let mut stream = js.get_stream("SECRETS").await.expect("stream is back");
    assert_eq!(stream.info().await.expect("info").state.messages, MSGS);
    for seq in [1, MSGS / 2, MSGS] {
        let m = stream.get_raw_message(seq).await.expect("get");
        assert_eq!(m.payload, format!("{MARKER}-{seq}"));
    }
}

async fn assert_not_served(server: &Server) {
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    let names: Vec<String> = js.stream_names().try_collect().await.expect("names");
    assert!(names.is_empty(), "{:?} served {names:?}", server.kind());
}

/// natsd with a store under `store/natsd`, then nats-server (when installed) with one under
/// `store/nats-server`, each with `key` and `cipher`.
fn servers(store: &Path, key: &str, cipher: Option<&str>) -> Vec<(Server, PathBuf)> {
    let dir = store.join("natsd");
    let natsd = Server::natsd_with_config(&conf(&dir, key, cipher), &[]);
    let mut all = vec![(natsd, dir)];
    let dir = store.join("nats-server");
    if let Some(reference) = Server::reference_with_config(&[], Some(&conf(&dir, key, cipher))) {
        if reference.bin() != all[0].0.bin() {
            all.push((reference, dir));
        }
    }
    all
}

/// Restart `server` with the config file rewritten to `text`.
fn restart_with(server: &mut Server, text: &str) {
    fs::write(server.config_path(), text).expect("rewrite config");
    server.restart();
}

/// natsd's message when a stream's store does not open: the stream's directory and the cause.
fn assert_restore_failed(server: &Server, cause: &str) {
    assert!(
        server.wait_for_log("Error restoring stream from ", WAIT),
        "{}",
        server.log_contents()
    );
    let log = server.log_contents();
    let line = log
        .lines()
        .find(|l| l.contains("Error restoring stream from "))
        .unwrap_or_default();
    assert!(line.contains("/streams/SECRETS"), "{line}");
    assert!(line.contains(cause), "{line}");
}

/// `key` alone (nats-server's default cipher is ChaCha) and `cipher: aes`: the banner names
/// the cipher, messages come back after a restart, no payload is on disk in the clear, and
/// another key does not serve the stream while the right one still does.
#[tokio::test]
async fn file_streams_are_encrypted_at_rest() {
    for (cipher, banner, other) in [
        (None, "ChaCha20-Poly1305", "aes"),
        (Some("aes"), "AES-GCM", "chachapoly"),
    ] {
        let store = TempDir::new();
        for (mut server, sub) in servers(store.path(), "s3cr3t", cipher) {
            let kind = server.kind();
            let line = format!("  Encryption:      {banner}");
            assert!(server.log_contents().contains(&line), "{kind:?}: {line}");

            create_and_fill(&server).await;
            server.restart();
            assert_served(&server).await;

            let mut files = Vec::new();
            msg_files(&sub, false, &mut files);
            assert!(!files.is_empty(), "{kind:?}: no message files");
            for f in &files {
                let bytes = fs::read(f).expect("read store file");
                assert!(
                    !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                    "{kind:?}: plaintext in {}",
                    f.display()
                );
            }

            restart_with(&mut server, &conf(&sub, "another key", cipher));
            if kind == Kind::UnderTest {
                assert_restore_failed(&server, "does not decrypt with the configured key");
            }
            assert_not_served(&server).await;

            // natsd refuses the other cipher (nats-server 2.9.10 converts the stream instead).
            if kind == Kind::UnderTest {
                restart_with(&mut server, &conf(&sub, "s3cr3t", Some(other)));
                assert_restore_failed(&server, "is encrypted with");
                assert_not_served(&server).await;
            }

            // Nothing was changed on disk by the refused opens.
            restart_with(&mut server, &conf(&sub, "s3cr3t", cipher));
            assert_served(&server).await;
        }
    }
}

/// nats-server's `Unknown cipher type: "<value>"`, at the `cipher` key's position, stops
/// the start (`-t` checks the file the same way).
#[test]
fn unknown_cipher_is_a_config_error() {
    let dir = TempDir::new();
    let conf = dir.path().join("bad.conf");
    fs::write(&conf, "jetstream {\n  key: k\n  cipher:    rot13\n}\n").expect("write conf");
    let mut bins = vec![natsd_tests::natsd_bin()];
    if Path::new("/usr/sbin/nats-server").exists() {
        bins.push(PathBuf::from("/usr/sbin/nats-server"));
    }
    for bin in bins {
        let out = std::process::Command::new(&bin)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run server");
        assert!(!out.status.success(), "{}", bin.display());
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let want = format!("{}:3:3: Unknown cipher type: \"rot13\"", conf.display());
        assert!(text.contains(&want), "{}: {text}", bin.display());
    }
}
