//! Accounts through async-nats: isolation, stream export/import with a prefix, service
//! export/import (request/reply across accounts), private exports and account users. Each case
//! runs against natsd and, where it is installed, the Go nats-server with the same config.

use std::path::{Path, PathBuf};
use std::process::Command;

use async_nats::ConnectOptions;
use bytes::Bytes;
use natsd_tests::Server;

use crate::{drain_ready, next_msg, round_trip, WAIT};

const CONF: &str = r#"
accounts: {
  A: {
    users: [{user: a, password: pa}]
    exports: [
      {stream: "events.>"}
      {service: "help"}
      {service: "private.svc", accounts: [C]}
    ]
  }
  B: {
    users: [{user: b, password: pb}]
    imports: [
      {stream: {account: A, subject: "events.>"}, prefix: "fromA"}
      {service: {account: A, subject: "help"}, to: "ask"}
    ]
  }
  C: {
    users: [{user: c, password: pc}]
  }
}
"#;

async fn login(server: &Server, user: &str, pass: &str) -> async_nats::Client {
    tokio::time::timeout(
        WAIT,
        ConnectOptions::with_user_and_password(user.into(), pass.into()).connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

#[tokio::test]
async fn accounts_are_isolated() {
    for server in Server::natsd_and_reference(CONF) {
        let a = login(&server, "a", "pa").await;
        let c = login(&server, "c", "pc").await;
        let mut on_a = a.subscribe("same").await.unwrap();
        let mut on_c = c.subscribe("same").await.unwrap();
        round_trip(&a).await;
        round_trip(&c).await;
        c.publish("same", Bytes::from_static(b"from c"))
            .await
            .unwrap();
        round_trip(&c).await;
        round_trip(&a).await;
        assert_eq!(next_msg(&mut on_c).await.payload, "from c");
        assert!(drain_ready(&mut on_a).is_empty(), "{:?}", server.bin());
    }
}

#[tokio::test]
async fn stream_import_with_prefix() {
    for server in Server::natsd_and_reference(CONF) {
        let a = login(&server, "a", "pa").await;
        let b = login(&server, "b", "pb").await;
        let c = login(&server, "c", "pc").await;
        let mut on_b = b.subscribe("fromA.events.>").await.unwrap();
        let mut on_b_plain = b.subscribe("events.>").await.unwrap();
        let mut on_c = c.subscribe("fromA.>").await.unwrap();
        round_trip(&b).await;
        round_trip(&c).await;
        a.publish("events.one", Bytes::from_static(b"1"))
            .await
            .unwrap();
        round_trip(&a).await;
        let m = next_msg(&mut on_b).await;
        assert_eq!(
            (m.subject.as_str(), &m.payload[..]),
            ("fromA.events.one", &b"1"[..])
        );
        round_trip(&b).await;
        round_trip(&c).await;
        assert!(drain_ready(&mut on_b_plain).is_empty());
        assert!(drain_ready(&mut on_c).is_empty());
        // Publishing in the importer does not flow back.
        let mut on_a = a.subscribe("fromA.>").await.unwrap();
        round_trip(&a).await;
        b.publish("fromA.events.two", Bytes::new()).await.unwrap();
        round_trip(&b).await;
        round_trip(&a).await;
        assert!(drain_ready(&mut on_a).is_empty());
    }
}

#[tokio::test]
async fn service_import_request_reply() {
    for server in Server::natsd_and_reference(CONF) {
        let a = login(&server, "a", "pa").await;
        let b = login(&server, "b", "pb").await;
        let mut svc = a.subscribe("help").await.unwrap();
        round_trip(&a).await;
        let responder = tokio::spawn({
            let a = a.clone();
            async move {
                let req = next_msg(&mut svc).await;
                let reply = req.reply.clone().expect("request has a reply");
                assert!(reply.starts_with("_R_."), "{reply}");
                let info = req
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Request-Info").map(|v| v.to_string()))
                    .expect("request info header");
                let info: serde_json::Value = serde_json::from_str(&info).unwrap();
                assert_eq!(info["acc"], "B");
                let mut body = b"re: ".to_vec();
                body.extend_from_slice(&req.payload);
                a.publish(reply, body.into()).await.unwrap();
                a.flush().await.unwrap();
            }
        });
        let resp = tokio::time::timeout(WAIT, b.request("ask", Bytes::from_static(b"hi")))
            .await
            .expect("request timed out")
            .expect("request");
        assert_eq!(resp.payload, "re: hi");
        responder.await.unwrap();
    }
}

#[tokio::test]
async fn users_land_in_their_account() {
    for server in Server::natsd_and_reference(CONF) {
        // Same subject in B and C: only the publisher's own account sees it.
        let b = login(&server, "b", "pb").await;
        let b2 = login(&server, "b", "pb").await;
        let c = login(&server, "c", "pc").await;
        let mut on_b2 = b2.subscribe("x").await.unwrap();
        let mut on_c = c.subscribe("x").await.unwrap();
        round_trip(&b2).await;
        round_trip(&c).await;
        b.publish("x", Bytes::new()).await.unwrap();
        round_trip(&b).await;
        next_msg(&mut on_b2).await;
        round_trip(&c).await;
        assert!(drain_ready(&mut on_c).is_empty());
    }
}

/// `-t -c FILE`: the exit status and what was printed.
fn check_config(bin: &Path, conf: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "natsd-acc-{}-{}",
        std::process::id(),
        bin.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(bin)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run server");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn private_export_refuses_unlisted_importer() {
    let conf = r#"
accounts: {
  A: { exports: [{service: "svc", accounts: [C]}] }
  B: { imports: [{service: {account: A, subject: "svc"}}] }
  C: {}
}
"#;
    let mut bins = vec![natsd_tests::natsd_bin()];
    if Path::new("/usr/sbin/nats-server").exists() {
        bins.push(PathBuf::from("/usr/sbin/nats-server"));
    }
    for bin in bins {
        let (ok, text) = check_config(&bin, conf);
        assert!(!ok, "{}: {text}", bin.display());
        assert!(
            text.contains("Error adding service import \"svc\": service import not authorized"),
            "{}: {text}",
            bin.display()
        );
    }
    let (ok, text) = check_config(&natsd_tests::natsd_bin(), CONF);
    assert!(ok, "{text}");
}

/// Imports re-exported through a middle account: C imports from B what B
/// imports from A. nats-server 2.9.10 routes the service request (and its
/// response) through B, but does not pass a streamed message on to C.
const CHAIN: &str = r#"
accounts: {
  A: {
    users: [{user: a, password: pa}]
    exports: [{service: "svc"}, {stream: "ev.>"}]
  }
  B: {
    users: [{user: b, password: pb}]
    imports: [
      {service: {account: A, subject: "svc"}}
      {stream: {account: A, subject: "ev.>"}}
    ]
    exports: [{service: "svc"}, {stream: "ev.>"}]
  }
  C: {
    users: [{user: c, password: pc}]
    imports: [
      {service: {account: B, subject: "svc"}}
      {stream: {account: B, subject: "ev.>"}}
    ]
  }
}
"#;

#[tokio::test]
async fn imports_chain_through_a_middle_account() {
    for server in Server::natsd_and_reference(CHAIN) {
        let a = login(&server, "a", "pa").await;
        let c = login(&server, "c", "pc").await;
        let mut svc = a.subscribe("svc").await.unwrap();
        let mut events = c.subscribe("ev.>").await.unwrap();
        round_trip(&a).await;
        round_trip(&c).await;
        let responder = {
            let a = a.clone();
            tokio::spawn(async move {
                let req = next_msg(&mut svc).await;
                let reply = req.reply.expect("request has a reply subject");
                a.publish(
                    reply,
                    Bytes::from(format!("re: {}", String::from_utf8_lossy(&req.payload))),
                )
                .await
                .unwrap();
                a.flush().await.unwrap();
            })
        };
        let answer = tokio::time::timeout(WAIT, c.request("svc", Bytes::from_static(b"hi")))
            .await
            .unwrap_or_else(|_| panic!("{:?}: request timed out", server.bin()))
            .unwrap_or_else(|e| panic!("{:?}: request failed: {e}", server.bin()));
        assert_eq!(answer.payload, "re: hi", "{:?}", server.bin());
        responder.await.unwrap();
        let b = login(&server, "b", "pb").await;
        let mut in_b = b.subscribe("ev.>").await.unwrap();
        round_trip(&b).await;
        a.publish("ev.1", Bytes::from_static(b"e1")).await.unwrap();
        round_trip(&a).await;
        assert_eq!(
            next_msg(&mut in_b).await.payload,
            "e1",
            "{:?}",
            server.bin()
        );
        round_trip(&c).await;
        assert!(drain_ready(&mut events).is_empty(), "{:?}", server.bin());
    }
}
