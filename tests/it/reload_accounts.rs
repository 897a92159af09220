//! SIGHUP reload of the `accounts {}` block: accounts added and removed, users moved between
//! accounts, imports added and removed, the system account and JetStream accounts kept. Each
//! case runs against natsd and, where it is installed, nats-server 2.9.10 with the same files,
//! except where natsd refuses what it cannot apply (said at the test).

use std::fs;

use async_nats::{ConnectOptions, RequestErrorKind};
use bytes::Bytes;
use natsd_tests::{normalize_stream, show, Kind, RawConn, Server, TempDir};

use crate::{drain_ready, next_msg, round_trip, WAIT};

/// Rewrites the config file with `conf`, sends SIGHUP and waits until the server says the
/// reload is done: nats-server logs `Reloaded server configuration` once it has re-checked
/// every client; natsd logs `Reloaded: <what>` once the new accounts are in place and every
/// reactor has been told to re-check its clients.
fn reload(server: &Server, conf: &str) {
    let done = match server.kind() {
        Kind::Reference => "Reloaded server configuration",
        Kind::UnderTest => "Reloaded: ",
    };
    reload_until(server, conf, done);
}

/// [`reload`] that waits for `pattern` to appear once more in the log.
fn reload_until(server: &Server, conf: &str, pattern: &str) {
    let before = server.log_contents().matches(pattern).count();
    fs::write(server.config_path(), conf).expect("rewrite config");
    server.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    while server.log_contents().matches(pattern).count() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}: no {pattern:?} after SIGHUP\n{}",
            server.bin(),
            server.log_contents()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

async fn login(server: &Server, user: &str) -> async_nats::Client {
    try_login(server, user)
        .await
        .unwrap_or_else(|e| panic!("{:?}: connect as {user}: {e}", server.bin()))
}

/// Connects as `user` (password = user name).
async fn try_login(server: &Server, user: &str) -> Result<async_nats::Client, String> {
    tokio::time::timeout(
        WAIT,
        ConnectOptions::with_user_and_password(user.into(), user.into()).connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .map_err(|e| e.to_string())
}

/// A raw connection logged in as `user`, with a round trip done.
fn raw_login(server: &Server, user: &str) -> RawConn {
    let mut conn = server.raw();
    conn.send(format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\n"
    ));
    assert_eq!(show(&conn.ping_pong()), "", "{:?}: {user}", server.bin());
    conn
}

const BASE: &str = r#"
accounts: {
  A: {
    users: [{user: a, password: a}, {user: m, password: m}]
    exports: [{stream: "ev.>"}, {service: "help"}]
  }
  B: { users: [{user: b, password: b}] }
  R: { users: [{user: r, password: r}] }
}
"#;

/// BASE with a new account N, R removed (with its user), m moved from A to B, and B
/// importing A's stream (under `in`) and service.
const CHANGED: &str = r#"
accounts: {
  A: {
    users: [{user: a, password: a}]
    exports: [{stream: "ev.>"}, {service: "help"}]
  }
  B: {
    users: [{user: b, password: b}, {user: m, password: m}]
    imports: [
      {stream: {account: A, subject: "ev.>"}, prefix: "in"}
      {service: {account: A, subject: "help"}}
    ]
  }
  N: { users: [{user: n, password: n}] }
}
"#;

#[tokio::test]
async fn added_account_logs_in_isolated_and_staying_accounts_keep_their_subscriptions() {
    for server in Server::natsd_and_reference(BASE) {
        let name = server.bin().to_owned();
        assert!(try_login(&server, "n").await.is_err(), "{name:?}: no N yet");
        let a = login(&server, "a").await;
        let mut on_a = a.subscribe("same").await.unwrap();
        round_trip(&a).await;

        reload(&server, CHANGED);
        let n = login(&server, "n").await;
        let mut on_n = n.subscribe("same").await.unwrap();
        round_trip(&n).await;
        n.publish("same", Bytes::from_static(b"from n"))
            .await
            .unwrap();
        round_trip(&n).await;
        assert_eq!(next_msg(&mut on_n).await.payload, "from n", "{name:?}");
        round_trip(&a).await;
        assert!(drain_ready(&mut on_a).is_empty(), "{name:?}: N is isolated");
        // A's subscription made before the reload still works.
        a.publish("same", Bytes::from_static(b"from a"))
            .await
            .unwrap();
        round_trip(&a).await;
        assert_eq!(next_msg(&mut on_a).await.payload, "from a", "{name:?}");
        round_trip(&n).await;
        assert!(drain_ready(&mut on_n).is_empty(), "{name:?}: A is isolated");
    }
}

#[test]
fn removed_and_moved_users_are_closed_without_an_error() {
    for server in Server::natsd_and_reference(BASE) {
        let name = server.bin().to_owned();
        let mut a = raw_login(&server, "a");
        let mut m = raw_login(&server, "m");
        let mut r = raw_login(&server, "r");
        reload(&server, CHANGED);
        for (who, conn) in [("m (moved to B)", &mut m), ("r (removed)", &mut r)] {
            let got = conn.expect_closed(WAIT);
            assert_eq!(show(&normalize_stream(&got)), "", "{name:?}: {who}");
        }
        assert_eq!(show(&a.ping_pong()), "", "{name:?}: a stays");

        // m logs in again, now in B; r no longer exists.
        let mut m = raw_login(&server, "m");
        let mut b = raw_login(&server, "b");
        m.send("SUB x 1\r\n");
        assert_eq!(show(&m.ping_pong()), "");
        b.send("PUB x 2\r\nhi\r\n");
        assert_eq!(show(&b.ping_pong()), "");
        assert_eq!(show(&m.ping_pong()), "MSG x 1 2\r\nhi\r\n", "{name:?}");
        let mut r = server.raw();
        r.send("CONNECT {\"verbose\":false,\"user\":\"r\",\"pass\":\"r\"}\r\nPING\r\n");
        assert_eq!(
            show(&r.expect_closed(WAIT)),
            "-ERR 'Authorization Violation'\r\n",
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn service_import_added_by_reload_answers_requests() {
    for server in Server::natsd_and_reference(BASE) {
        let name = server.bin().to_owned();
        let a = login(&server, "a").await;
        let b = login(&server, "b").await;
        let mut svc = a.subscribe("help").await.unwrap();
        round_trip(&a).await;
        let err = tokio::time::timeout(WAIT, b.request("help", Bytes::from_static(b"hi")))
            .await
            .expect("request timed out")
            .expect_err("B imports nothing yet");
        assert_eq!(err.kind(), RequestErrorKind::NoResponders, "{name:?}");

        reload(&server, CHANGED);
        let responder = tokio::spawn({
            let a = a.clone();
            async move {
                let req = next_msg(&mut svc).await;
                let reply = req.reply.expect("request has a reply");
                a.publish(reply, Bytes::from_static(b"re: hi"))
                    .await
                    .unwrap();
                a.flush().await.unwrap();
            }
        });
        let answer = tokio::time::timeout(WAIT, b.request("help", Bytes::from_static(b"hi")))
            .await
            .expect("request timed out")
            .unwrap_or_else(|e| panic!("{name:?}: request: {e}"));
        assert_eq!(answer.payload, "re: hi", "{name:?}");
        responder.await.unwrap();
    }
}

#[tokio::test]
async fn stream_import_follows_reloads_in_both_directions() {
    for server in Server::natsd_and_reference(BASE) {
        let name = server.bin().to_owned();
        let a = login(&server, "a").await;
        let b = login(&server, "b").await;
        let mut in_b = b.subscribe("in.ev.>").await.unwrap();
        round_trip(&b).await;
        let publish = |payload: &'static str| {
            let a = a.clone();
            async move {
                a.publish("ev.1", Bytes::from_static(payload.as_bytes()))
                    .await
                    .unwrap();
                round_trip(&a).await;
            }
        };
        publish("before").await;
        round_trip(&b).await;
        assert!(drain_ready(&mut in_b).is_empty(), "{name:?}: no import yet");

        reload(&server, CHANGED);
        publish("imported").await;
        let m = next_msg(&mut in_b).await;
        assert_eq!(
            (m.subject.as_str(), &m.payload[..]),
            ("in.ev.1", &b"imported"[..]),
            "{name:?}"
        );

        reload(&server, BASE);
        publish("after").await;
        round_trip(&b).await;
        assert!(
            drain_ready(&mut in_b).is_empty(),
            "{name:?}: import removed"
        );
    }
}

#[tokio::test]
async fn system_and_jetstream_accounts_keep_working_across_a_reload() {
    let store = TempDir::new();
    let conf = |extra: &str| {
        format!(
            "jetstream {{ store_dir: {:?} }}\nsystem_account: SYS\naccounts: {{\n  SYS: {{ users: [{{user: sys, password: sys}}] }}\n  JS: {{ jetstream: enabled, users: [{{user: js, password: js}}] }}\n{extra}}}\n",
            store.path().display().to_string()
        )
    };
    for server in Server::natsd_and_reference(&conf("")) {
        let name = server.bin().to_owned();
        let sys = login(&server, "sys").await;
        let js = login(&server, "js").await;
        let info = |client: async_nats::Client, subject: &'static str| async move {
            let msg = tokio::time::timeout(WAIT, client.request(subject, Bytes::new()))
                .await
                .expect("request timed out")
                .unwrap_or_else(|e| panic!("{subject}: {e}"));
            serde_json::from_slice::<serde_json::Value>(&msg.payload).expect("JSON")
        };
        let stream = serde_json::json!({"name": "S", "subjects": ["s"], "storage": "memory"});
        let created = tokio::time::timeout(
            WAIT,
            js.request("$JS.API.STREAM.CREATE.S", stream.to_string().into()),
        )
        .await
        .expect("create timed out")
        .expect("create");
        let created: serde_json::Value = serde_json::from_slice(&created.payload).unwrap();
        assert_eq!(created["config"]["name"], "S", "{name:?}: {created}");

        reload(&server, &conf("  N: { users: [{user: n, password: n}] }\n"));
        login(&server, "n").await;
        let statsz = info(sys.clone(), "$SYS.REQ.SERVER.PING").await;
        assert!(statsz["statsz"].is_object(), "{name:?}: {statsz}");
        let account = info(js.clone(), "$JS.API.INFO").await;
        assert_eq!(account["streams"], 1, "{name:?}: {account}");
        js.publish("s", Bytes::from_static(b"kept")).await.unwrap();
        round_trip(&js).await;
        let stream = info(js.clone(), "$JS.API.STREAM.INFO.S").await;
        assert_eq!(stream["state"]["messages"], 1, "{name:?}: {stream}");
    }
}

#[tokio::test]
async fn system_account_change_is_refused_and_nothing_changes() {
    let conf =
        |sys: &str| format!("{sys}accounts: {{ S: {{ users: [{{user: s, password: s}}] }} }}\n");
    for server in Server::natsd_and_reference(&conf("")) {
        let name = server.bin().to_owned();
        let with_new_user = conf("system_account: S\n").replace(
            "{user: s, password: s}",
            "{user: s, password: s}, {user: n, password: n}",
        );
        let refusal = "config reload not supported for ";
        reload_until(&server, &with_new_user, refusal);
        // nats-server names the field `SystemAccount`, natsd the key `SYSTEM_ACCOUNT`.
        let log = server.log_contents().to_lowercase().replace('_', "");
        assert!(
            log.contains("config reload not supported for systemaccount"),
            "{name:?}: {log}"
        );
        assert!(
            try_login(&server, "n").await.is_err(),
            "{name:?}: a refused reload changes nothing"
        );
        login(&server, "s").await;
    }
}

/// nats-server 2.9.10 enables or disables JetStream for an account on reload; natsd's
/// JetStream stage learns its accounts at start, so natsd refuses such a reload (and says so)
/// rather than half-apply it.
#[tokio::test]
async fn natsd_refuses_to_change_which_accounts_have_jetstream() {
    let store = TempDir::new();
    let conf = |b: &str| {
        format!(
            "jetstream {{ store_dir: {:?} }}\naccounts: {{\n  A: {{ jetstream: enabled, users: [{{user: a, password: a}}] }}\n  B: {{ {b}users: [{{user: b, password: b}}] }}\n}}\n",
            store.path().display().to_string()
        )
    };
    let server = Server::natsd_with_config(&conf(""), &[]);
    reload_until(
        &server,
        &conf("jetstream: enabled, "),
        "config reload not supported for JETSTREAM",
    );
    assert!(
        server
            .log_contents()
            .contains("account \"B\" would change whether it has JetStream"),
        "{}",
        server.log_contents()
    );
    let b = login(&server, "b").await;
    let msg = tokio::time::timeout(WAIT, b.request("$JS.API.INFO", Bytes::new()))
        .await
        .expect("request timed out")
        .expect("request");
    let info: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(info["error"]["err_code"], 10039, "{info}");
}

/// An account's `jetstream { ... }` limits follow a reload: raised `max_streams` lets a second
/// stream in.
#[tokio::test]
async fn account_jetstream_limits_follow_a_reload() {
    let store = TempDir::new();
    let conf = |max: u32| {
        format!(
            "jetstream {{ store_dir: {:?} }}\naccounts: {{\n  A: {{ jetstream: {{ max_streams: {max} }}, users: [{{user: a, password: a}}] }}\n}}\n",
            store.path().display().to_string()
        )
    };
    for server in Server::natsd_and_reference(&conf(1)) {
        let name = server.bin().to_owned();
        let a = login(&server, "a").await;
        let request = |subject: String, body: String| {
            let a = a.clone();
            async move {
                let msg = tokio::time::timeout(WAIT, a.request(subject, body.into()))
                    .await
                    .expect("request timed out")
                    .expect("request");
                serde_json::from_slice::<serde_json::Value>(&msg.payload).expect("JSON")
            }
        };
        let create = |n: &str| {
            let body = serde_json::json!({"name": n, "subjects": [n], "storage": "memory"});
            request(format!("$JS.API.STREAM.CREATE.{n}"), body.to_string())
        };
        assert_eq!(create("S1").await["config"]["name"], "S1");
        let refused = create("S2").await;
        assert_eq!(refused["error"]["err_code"], 10027, "{name:?}: {refused}");
        reload(&server, &conf(2));
        // The stage applies the reload after the reactors: poll, bounded.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let info = request("$JS.API.INFO".into(), String::new()).await;
            if info["limits"]["max_streams"] == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name:?}: limits not reloaded: {info}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(create("S2").await["config"]["name"], "S2", "{name:?}");
    }
}
