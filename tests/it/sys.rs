//! The system account through async-nats: `$SYS.REQ.SERVER.*` requests and
//! `$SYS.ACCOUNT.*` / `$SYS.SERVER.*` events, seen by a user of the system
//! account and hidden from other accounts. Where nats-server is installed the
//! same requests run against it and the JSON key sets are compared.

use std::collections::BTreeSet;

use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use natsd_tests::{Kind, Server};
use serde_json::Value;

use crate::monitor::key_paths;
use crate::{drain_ready, next_msg, round_trip, WAIT};

/// A named system account with a user, and an application account.
const CONF: &str = r#"
system_account: SYS
accounts {
  SYS { users [{user: admin, password: pa}] }
  APP { users [{user: app, password: pb}] }
}
"#;

async fn login(server: &Server, user: &str, pass: &str, name: &str) -> Client {
    tokio::time::timeout(
        WAIT,
        ConnectOptions::with_user_and_password(user.into(), pass.into())
            .name(name)
            .connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

/// Request `subject` with `body` and parse the JSON answer.
async fn ask(client: &Client, subject: &str, body: &str) -> Value {
    let msg = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: no answer"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&msg.payload).unwrap_or_else(|e| panic!("{subject}: {e}"))
}

fn json(msg: &async_nats::Message) -> Value {
    serde_json::from_slice(&msg.payload).expect("JSON event")
}

#[tokio::test]
async fn ping_varz_and_connz_by_id_report_live_figures() {
    let server = Server::natsd_with_config(CONF, &[]);
    let admin = login(&server, "admin", "pa", "admin").await;
    let app = login(&server, "app", "pb", "worker").await;
    for i in 0..5 {
        app.publish("work", Bytes::from(format!("m{i}")))
            .await
            .unwrap();
    }
    round_trip(&app).await;

    let statsz = ask(&admin, "$SYS.REQ.SERVER.PING", "").await;
    let id = admin.server_info().server_id;
    assert_eq!(statsz["server"]["id"], id.as_str());
    assert_eq!(statsz["statsz"]["connections"], 2);
    assert_eq!(statsz["statsz"]["total_connections"], 2);
    assert_eq!(statsz["statsz"]["active_accounts"], 2);
    // The app's 5 messages and its round trip, plus the admin's request.
    assert!(statsz["statsz"]["received"]["msgs"].as_u64() >= Some(7));

    let varz = ask(&admin, "$SYS.REQ.SERVER.PING.VARZ", "").await;
    assert_eq!(varz["data"]["server_id"], id.as_str());
    assert_eq!(varz["data"]["connections"], 2);
    assert_eq!(varz["data"]["system_account"], "SYS");
    assert!(varz["data"]["in_msgs"].as_u64() >= Some(7));

    let connz = ask(
        &admin,
        &format!("$SYS.REQ.SERVER.{id}.CONNZ"),
        r#"{"auth":true,"sort":"msgs_from"}"#,
    )
    .await;
    assert_eq!(connz["server"]["id"], id.as_str());
    let data = &connz["data"];
    assert_eq!(data["num_connections"], 2);
    let first = &data["connections"][0];
    assert_eq!(first["name"], "worker");
    assert_eq!(first["account"], "APP");
    assert_eq!(first["authorized_user"], "app");
    assert_eq!(first["in_msgs"], 6);
    assert_eq!(first["in_bytes"], 10);

    // Only the account's connections.
    let connz = ask(&admin, "$SYS.REQ.ACCOUNT.APP.CONNZ", "").await;
    assert_eq!(connz["data"]["num_connections"], 1);
    assert_eq!(connz["data"]["connections"][0]["name"], "worker");
    let statz = ask(&admin, "$SYS.REQ.ACCOUNT.APP.STATZ", "").await;
    assert_eq!(statz["data"]["account_statz"][0]["acc"], "APP");
    assert_eq!(statz["data"]["account_statz"][0]["conns"], 1);
    assert_eq!(statz["data"]["account_statz"][0]["received"]["msgs"], 6);

    // Another server's id or a filter for another server: no answer.
    let other = admin
        .request("$SYS.REQ.SERVER.NOTME.VARZ".to_string(), Bytes::new())
        .await;
    assert!(other.is_err(), "{other:?}");
    let mut inbox = admin.subscribe("filtered.reply").await.unwrap();
    admin
        .publish_with_reply(
            "$SYS.REQ.SERVER.PING.VARZ",
            "filtered.reply",
            Bytes::from_static(br#"{"server_name":"not-this-one"}"#),
        )
        .await
        .unwrap();
    admin
        .publish_with_reply("$SYS.REQ.SERVER.PING.IDZ", "filtered.reply", Bytes::new())
        .await
        .unwrap();
    let idz = json(&next_msg(&mut inbox).await);
    assert_eq!(idz["id"], id.as_str(), "the filtered VARZ sent nothing");
}

#[tokio::test]
async fn connect_and_disconnect_events_name_the_client() {
    for server in Server::natsd_and_reference(CONF) {
        let admin = login(&server, "admin", "pa", "admin").await;
        let mut connects = admin.subscribe("$SYS.ACCOUNT.*.CONNECT").await.unwrap();
        let mut disconnects = admin.subscribe("$SYS.ACCOUNT.*.DISCONNECT").await.unwrap();
        round_trip(&admin).await;

        let app = login(&server, "app", "pb", "second").await;
        // The admin's own CONNECT may still be on its way.
        let (subject, ev) = loop {
            let msg = next_msg(&mut connects).await;
            let ev = json(&msg);
            if ev["client"]["name"] != "admin" {
                break (msg.subject, ev);
            }
        };
        assert_eq!(subject.as_str(), "$SYS.ACCOUNT.APP.CONNECT");
        assert_eq!(ev["type"], "io.nats.server.advisory.v1.client_connect");
        assert_eq!(ev["client"]["acc"], "APP");
        assert_eq!(ev["client"]["name"], "second");
        assert_eq!(ev["client"]["user"], "app");
        assert_eq!(ev["client"]["lang"], "rust");
        assert_eq!(ev["server"]["id"], admin.server_info().server_id.as_str());

        app.publish("work", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        app.publish("work", Bytes::from_static(b"de"))
            .await
            .unwrap();
        app.drain().await.expect("drain");
        let ev = next_msg(&mut disconnects).await;
        assert_eq!(ev.subject.as_str(), "$SYS.ACCOUNT.APP.DISCONNECT");
        let ev = json(&ev);
        assert_eq!(ev["type"], "io.nats.server.advisory.v1.client_disconnect");
        assert_eq!(ev["client"]["name"], "second");
        assert_eq!(ev["reason"], "Client Closed", "{:?}", server.bin());
        assert_eq!(ev["sent"]["msgs"], 2);
        assert_eq!(ev["sent"]["bytes"], 5);
        assert!(ev["client"]["stop"].is_string());
        assert_ne!(ev["id"], Value::Null);
    }
}

#[tokio::test]
async fn statsz_heartbeats_and_answers_on_the_broadcast_subject() {
    for server in Server::natsd_and_reference(CONF) {
        let admin = login(&server, "admin", "pa", "admin").await;
        let id = admin.server_info().server_id;
        let mut statsz = admin
            .subscribe(format!("$SYS.SERVER.{id}.STATSZ"))
            .await
            .unwrap();
        round_trip(&admin).await;
        // A PING without a reply subject answers on the broadcast subject;
        // the heartbeat (every 30 s at most) may come first.
        admin
            .publish("$SYS.REQ.SERVER.PING", Bytes::new())
            .await
            .unwrap();
        let ev = json(&next_msg(&mut statsz).await);
        assert_eq!(ev["server"]["id"], id.as_str());
        assert_eq!(ev["statsz"]["connections"], 1);
        let seq = ev["server"]["seq"].as_u64().expect("seq");
        let later = json(&next_msg(&mut statsz).await);
        assert!(later["server"]["seq"].as_u64().expect("seq") > seq);
    }
}

#[tokio::test]
async fn the_default_system_account_takes_users_too() {
    let conf = r#"
accounts {
  $SYS { users [{user: admin, password: pa}] }
  APP { users [{user: app, password: pb}] }
}
"#;
    for server in Server::natsd_and_reference(conf) {
        let admin = login(&server, "admin", "pa", "admin").await;
        let varz = ask(&admin, "$SYS.REQ.SERVER.PING.VARZ", "").await;
        assert_eq!(varz["data"]["system_account"], "$SYS");
        assert_eq!(varz["data"]["connections"], 1);
    }
}

#[tokio::test]
async fn other_accounts_see_no_system_subjects() {
    for server in Server::natsd_and_reference(CONF) {
        let app = login(&server, "app", "pb", "nosy").await;
        let err = app
            .request("$SYS.REQ.SERVER.PING".to_string(), Bytes::new())
            .await
            .expect_err("no responders in APP");
        assert_eq!(
            err.kind(),
            async_nats::client::RequestErrorKind::NoResponders,
            "{:?}",
            server.bin()
        );
        let mut sys = app.subscribe("$SYS.>").await.unwrap();
        round_trip(&app).await;
        // The admin sees another APP client come and go ...
        let admin = login(&server, "admin", "pa", "admin").await;
        let mut events = admin.subscribe("$SYS.ACCOUNT.APP.*").await.unwrap();
        round_trip(&admin).await;
        let other = login(&server, "app", "pb", "other").await;
        other.drain().await.expect("drain");
        let mut seen = Vec::new();
        while !seen.iter().any(|s: &String| s.ends_with(".DISCONNECT")) {
            seen.push(next_msg(&mut events).await.subject.to_string());
        }
        assert!(seen.contains(&"$SYS.ACCOUNT.APP.CONNECT".to_string()));
        // ... the APP user sees none of it.
        round_trip(&app).await;
        assert!(drain_ready(&mut sys).is_empty(), "{:?}", server.bin());
    }
}

/// natsd only for LAMEDUCK: nats-server publishes it from 2.10 on.
#[tokio::test]
async fn lame_duck_and_shutdown_are_announced() {
    let server = Server::natsd_with_config(CONF, &[]);
    let admin = login(&server, "admin", "pa", "admin").await;
    let id = admin.server_info().server_id;
    let mut events = admin
        .subscribe(format!("$SYS.SERVER.{id}.*"))
        .await
        .unwrap();
    round_trip(&admin).await;
    server.signal("USR2");
    let ev = loop {
        let msg = next_msg(&mut events).await;
        if !msg.subject.ends_with(".STATSZ") {
            break msg;
        }
    };
    assert_eq!(ev.subject.as_str(), format!("$SYS.SERVER.{id}.LAMEDUCK"));
    assert_eq!(json(&ev)["id"], id.as_str());

    let server = Server::natsd_with_config(CONF, &[]);
    let admin = login(&server, "admin", "pa", "admin").await;
    let id = admin.server_info().server_id;
    let mut events = admin
        .subscribe(format!("$SYS.SERVER.{id}.SHUTDOWN"))
        .await
        .unwrap();
    round_trip(&admin).await;
    server.signal("TERM");
    let ev = json(&next_msg(&mut events).await);
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(ev["name"], id.as_str());
}

/// The same requests against a server; each answer's JSON with its label.
async fn sys_workload(server: &Server) -> Vec<(String, Value)> {
    let admin = login(server, "admin", "pa", "admin").await;
    let mut events = admin.subscribe("$SYS.ACCOUNT.APP.*").await.unwrap();
    round_trip(&admin).await;
    let app = login(server, "app", "pb", "shape").await;
    let _sub = app.subscribe("shape.a").await.unwrap();
    round_trip(&app).await;
    let mut out = vec![("CONNECT".to_string(), json(&next_msg(&mut events).await))];
    let id = admin.server_info().server_id;
    for (subject, body) in [
        ("$SYS.REQ.SERVER.PING".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.STATSZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.VARZ".to_string(), ""),
        (format!("$SYS.REQ.SERVER.{id}.CONNZ"), ""),
        (
            "$SYS.REQ.SERVER.PING.CONNZ".to_string(),
            r#"{"subscriptions_detail":true,"auth":true}"#,
        ),
        ("$SYS.REQ.SERVER.PING.SUBSZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.HEALTHZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.ROUTEZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.GATEWAYZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.LEAFZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.ACCOUNTZ".to_string(), ""),
        ("$SYS.REQ.SERVER.PING.SUBSZ".to_string(), r#"{"limit":"x"}"#),
        ("$SYS.REQ.ACCOUNT.APP.CONNZ".to_string(), ""),
        ("$SYS.REQ.ACCOUNT.APP.STATZ".to_string(), ""),
        ("$SYS.REQ.ACCOUNT.APP.CONNS".to_string(), ""),
        (
            "$SYS.REQ.ACCOUNT.PING.STATZ".to_string(),
            r#"{"include_unused":true}"#,
        ),
    ] {
        out.push((
            format!("{subject} {body}"),
            ask(&admin, &subject, body).await,
        ));
    }
    // Both servers measure the app's RTT with their first PING (about 2 s
    // after connect; nats-server also when monitoring asks): wait for it so
    // the DISCONNECT carries `rtt` on both.
    let deadline = tokio::time::Instant::now() + WAIT;
    while ask(&admin, "$SYS.REQ.ACCOUNT.APP.CONNZ", "").await["data"]["connections"][0]["rtt"]
        == "0s"
    {
        assert!(tokio::time::Instant::now() < deadline, "no RTT measured");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.drain().await.expect("drain");
    let disconnect = loop {
        let msg = next_msg(&mut events).await;
        if msg.subject.ends_with(".DISCONNECT") {
            break json(&msg);
        }
    };
    out.push(("DISCONNECT".to_string(), disconnect));
    out
}

#[tokio::test]
async fn key_sets_match_nats_server() {
    let servers = Server::natsd_and_reference(CONF);
    let [ours, theirs] = servers.as_slice() else {
        return;
    };
    assert_eq!(theirs.kind(), Kind::Reference);
    let a = sys_workload(ours).await;
    let b = sys_workload(theirs).await;
    for ((label, a), (_, b)) in a.iter().zip(&b) {
        let (mut ka, mut kb) = (BTreeSet::new(), BTreeSet::new());
        key_paths(a, "", &mut ka);
        key_paths(b, "", &mut kb);
        // natsd's own figures live under `natsd`; the fields nats-server 2.15.1 has and natsd
        // does not have yet are left out.
        ka.retain(|k| !k.starts_with("/data/natsd"));
        kb.retain(|k| {
            !REFERENCE_ONLY.iter().any(|(part, known)| {
                label.contains(part) && (k == known || k.starts_with(&format!("{known}/")))
            })
        });
        assert_eq!(ka, kb, "{label}: natsd {a:#} vs nats-server {b:#}");
    }
}

/// Key paths nats-server 2.15.1 sends in `$SYS` answers and events and natsd (as 2.9.10) does
/// not, each covering what is under it: the server block's `flags` and `feature_flags`, the
/// client's `name_tag`, STATSZ's client traffic and `gomaxprocs`, the newer VARZ fields, the
/// account statistics' name, subscription count and per-kind traffic, and HEALTHZ
/// `status_code`.
/// `(label part, key path)`; an empty label part stands for every answer.
const REFERENCE_ONLY: &[(&str, &str)] = &[
    ("", "/server/flags"),
    ("", "/server/feature_flags"),
    ("", "/client/name_tag"),
    ("", "/data/connections[]/name_tag"),
    ("", "/statsz/gomaxprocs"),
    ("", "/statsz/received_from_clients"),
    ("", "/statsz/sent_to_clients"),
    ("", "/data/config_digest"),
    ("", "/data/disk_io_wait_stats"),
    ("", "/data/feature_flags"),
    ("", "/data/git_commit"),
    ("", "/data/in_client_bytes"),
    ("", "/data/in_client_msgs"),
    ("", "/data/out_client_bytes"),
    ("", "/data/out_client_msgs"),
    ("", "/data/slow_consumer_stats"),
    ("", "/data/stale_connection_stats"),
    ("", "/data/stale_connections"),
    ("", "/data/stalled_clients"),
    ("CONNS", "/name"),
    ("CONNS", "/num_subscriptions"),
    ("", "/received/gateways"),
    ("", "/received/leafs"),
    ("", "/received/routes"),
    ("", "/sent/gateways"),
    ("", "/sent/leafs"),
    ("", "/sent/routes"),
    ("", "/data/account_statz[]/name"),
    ("", "/data/account_statz[]/num_subscriptions"),
    ("", "/data/account_statz[]/received/gateways"),
    ("", "/data/account_statz[]/received/leafs"),
    ("", "/data/account_statz[]/received/routes"),
    ("", "/data/account_statz[]/sent/gateways"),
    ("", "/data/account_statz[]/sent/leafs"),
    ("", "/data/account_statz[]/sent/routes"),
    ("HEALTHZ", "/data/status_code"),
];
