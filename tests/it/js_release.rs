//! JetStream and `$SYS` details of nats-server 2.15.1 (issue 18), each run against natsd and,
//! when installed, the reference server, asserting what both do: a republished message is
//! stored by a stream that captures its subject (and two streams republishing into each other
//! stop at the 64 KiB header limit); shutdown answers waiting pull requests `409 Server
//! Shutdown`; a `no_wait` request blocked by `max_ack_pending` waits for acks and ends with
//! `404 No Messages`; `$SYS.REQ.USER.INFO` answers any client; a request through a service
//! import into a stream gets its pub ack alone; streams and consumers carry the version
//! metadata (`_nats.ver`, `_nats.level`, `_nats.req.level`).

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::{show, Kind, Server, TempDir};
use serde_json::{json, Value};

use crate::monitor::key_paths;
use crate::{connect, WAIT};

/// natsd and, when installed, the reference, each with `conf` and JetStream on a store of its
/// own; the stores live as long as the returned directories.
fn js_with_config(conf: &str) -> (Vec<Server>, [TempDir; 2]) {
    let stores = [TempDir::new(), TempDir::new()];
    let dir = |i: usize| stores[i].path().display().to_string();
    let mut servers = vec![Server::natsd_with_config(conf, &["-js", "-sd", &dir(0)])];
    servers.extend(Server::reference_with_config(
        &["-js", "-sd", &dir(1)],
        Some(conf),
    ));
    (servers, stores)
}

/// Connects as `user` with password `user`.
async fn login(server: &Server, user: &str) -> Client {
    tokio::time::timeout(
        WAIT,
        ConnectOptions::with_user_and_password(user.into(), user.into()).connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("{:?}: connect as {user}: {e}", server.bin()))
}

/// Sends a request and returns its JSON reply.
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

/// The next message on `sub` within `wait`, or `None`.
async fn within(sub: &mut Subscriber, wait: Duration) -> Option<Message> {
    tokio::time::timeout(wait, sub.next()).await.ok().flatten()
}

/// A status message's code and description.
fn status(m: &Message) -> (u16, String) {
    let code = m.status.map_or(0, |s| s.as_u16());
    (code, m.description.clone().unwrap_or_default())
}

/// A header of `m` (empty when absent).
fn header(m: &Message, name: &str) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// `stream`'s message count once it stopped changing (two reads 300 ms apart agree).
async fn settled_count(client: &Client, stream: &str) -> u64 {
    let subject = format!("$JS.API.STREAM.INFO.{stream}");
    let mut last = u64::MAX;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = api_ok(client, &subject, json!({})).await["state"]["messages"]
            .as_u64()
            .unwrap_or_default();
        if n == last {
            return n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} never settled"
        );
        last = n;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A stream whose subjects capture another stream's republish subject stores the
/// republished messages, headers and all: KV and stream pipelines are built on this.
#[tokio::test]
async fn a_republished_message_is_stored_by_the_stream_that_captures_it() {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.SRC",
            json!({"name": "SRC", "subjects": ["src.>"], "storage": "memory",
                   "republish": {"src": "src.>", "dest": "dst.>"}}),
        )
        .await;
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.DST",
            json!({"name": "DST", "subjects": ["dst.>"], "storage": "memory"}),
        )
        .await;
        for i in 0..3 {
            api_ok(&client, &format!("src.{i}"), json!(format!("m{i}"))).await;
        }
        assert_eq!(settled_count(&client, "DST").await, 3, "{:?}", server.bin());
        let stream = async_nats::jetstream::new(client.clone())
            .get_stream("DST")
            .await
            .expect("stream DST");
        let got = stream
            .get_last_raw_message_by_subject("dst.2")
            .await
            .expect("the republished message");
        let h = |name: &str| got.headers.get(name).map(|v| v.to_string());
        assert_eq!(h("Nats-Stream").as_deref(), Some("SRC"));
        assert_eq!(h("Nats-Subject").as_deref(), Some("src.2"));
        assert_eq!(h("Nats-Sequence").as_deref(), Some("3"));
        assert_eq!(&got.payload[..], b"\"m2\"");
    }
}

/// Two streams that republish into each other's subjects loop as in nats-server (it checks
/// only a stream's own subjects against its republish destination) until the copied headers
/// pass 64 KiB: the message that would pass it is refused (10097), and both stores hold the
/// same 101 messages on each server. A stream republishing into its own subjects is refused.
#[tokio::test]
async fn streams_republishing_into_each_other_stop_at_the_header_limit() {
    let js = Server::natsd_and_reference_js();
    let mut counts = Vec::new();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        let own = api(
            &client,
            "$JS.API.STREAM.CREATE.SELF",
            json!({"name": "SELF", "subjects": ["x.>"], "republish": {"src": ">", "dest": "x.y.>"}}),
        )
        .await;
        assert_eq!(own["error"]["err_code"], 10052, "{own}");
        assert_eq!(
            own["error"]["description"],
            "stream configuration for republish destination forms a cycle"
        );
        for (name, from, to) in [("A", "a.>", "b.>"), ("B", "b.>", "a.>")] {
            api_ok(
                &client,
                &format!("$JS.API.STREAM.CREATE.{name}"),
                json!({"name": name, "subjects": [from], "storage": "memory",
                       "republish": {"src": ">", "dest": to}}),
            )
            .await;
        }
        api_ok(&client, "a.1", json!("hello")).await;
        let (a, b) = (
            settled_count(&client, "A").await,
            settled_count(&client, "B").await,
        );
        counts.push((a, b));
        // What the last hop would have stored is refused for its headers.
        let big = "x".repeat(70_000);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Big", big.as_str());
        let ack = tokio::time::timeout(
            WAIT,
            client.request_with_headers("a.big", headers, Bytes::new()),
        )
        .await
        .expect("ack in time")
        .expect("ack");
        let ack: Value = serde_json::from_slice(&ack.payload).expect("JSON ack");
        assert_eq!(ack["error"]["err_code"], 10097, "{ack}");
        assert_eq!(
            ack["error"]["description"],
            "header size exceeds maximum allowed of 64k"
        );
    }
    assert_eq!(counts[0], (101, 101));
    assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
}

/// At shutdown every waiting pull request gets `409 Server Shutdown` with the messages and
/// bytes it still wanted, so its client asks again instead of waiting for its expiry.
#[tokio::test]
async fn shutdown_answers_waiting_pull_requests() {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.S",
            json!({"name": "S", "subjects": ["s.>"]}),
        )
        .await;
        for c in ["C", "D"] {
            api_ok(
                &client,
                &format!("$JS.API.CONSUMER.CREATE.S.{c}"),
                json!({"stream_name": "S", "config": {"durable_name": c, "ack_policy": "explicit"}}),
            )
            .await;
        }
        api_ok(&client, "s.a", json!("x")).await;
        let mut raw = server.raw();
        raw.send("CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB in.* 1\r\n");
        for (consumer, inbox, req) in [
            (
                "C",
                "in.1",
                json!({"batch": 3, "expires": 30_000_000_000u64}),
            ),
            (
                "C",
                "in.2",
                json!({"batch": 5, "max_bytes": 1000, "expires": 30_000_000_000u64}),
            ),
            ("D", "in.3", json!({"batch": 7})),
        ] {
            let body = req.to_string();
            raw.send(format!(
                "PUB $JS.API.CONSUMER.MSG.NEXT.S.{consumer} {inbox} {}\r\n{body}\r\n",
                body.len()
            ));
        }
        // Each consumer delivers the one message to its first request; all three wait.
        let got = raw.read_until(b"MSG s.a 1 $JS.ACK.S.C.", WAIT);
        assert!(got.is_ok(), "{:?}", got.map_err(|e| show(&e)));
        let mut waiting = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while waiting < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "requests not waiting"
            );
            waiting = 0;
            for c in ["C", "D"] {
                let info =
                    api_ok(&client, &format!("$JS.API.CONSUMER.INFO.S.{c}"), json!({})).await;
                waiting += info["num_waiting"].as_u64().unwrap_or_default();
            }
        }
        server.signal("TERM");
        let got = show(&raw.read_to_close(WAIT));
        let mut answers: Vec<&str> = got
            .split("HMSG ")
            .filter(|m| m.contains("Server Shutdown"))
            .collect();
        answers.sort_unstable();
        assert_eq!(
            answers,
            [
                "in.1 1 81 81\r\nNATS/1.0 409 Server Shutdown\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 0\r\n\r\n\r\n",
                "in.2 1 84 84\r\nNATS/1.0 409 Server Shutdown\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 1000\r\n\r\n\r\n",
                "in.3 1 81 81\r\nNATS/1.0 409 Server Shutdown\r\nNats-Pending-Messages: 6\r\nNats-Pending-Bytes: 0\r\n\r\n\r\n",
            ],
            "{:?}: {got}",
            server.bin()
        );
    }
}

/// A `no_wait` request that got messages and is then blocked by `max_ack_pending` is not at
/// the end of the stream: it waits for acks (nats-server does not end one-shot requests
/// blocked by the ack limit), gets the rest as they are acked, and at the end of the stream
/// ends with `404 No Messages`, as any `no_wait` request that got something.
#[tokio::test]
async fn no_wait_request_blocked_by_max_ack_pending_waits_for_acks() {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.S",
            json!({"name": "S", "subjects": ["s.>"], "storage": "memory"}),
        )
        .await;
        api_ok(
            &client,
            "$JS.API.CONSUMER.CREATE.S.C",
            json!({"stream_name": "S", "config": {"durable_name": "C", "ack_policy": "explicit",
                   "max_ack_pending": 2}}),
        )
        .await;
        for i in 0..3 {
            api_ok(&client, &format!("s.{i}"), json!(i)).await;
        }
        let mut inbox = client.subscribe("pull.in").await.expect("subscribe");
        client
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.S.C",
                "pull.in",
                Bytes::from(json!({"batch": 10, "no_wait": true}).to_string()),
            )
            .await
            .expect("pull");
        let mut got = Vec::new();
        while let Some(m) = within(&mut inbox, Duration::from_millis(1500)).await {
            got.push(m);
        }
        let subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(
            subjects,
            ["s.0", "s.1"],
            "{:?}: blocked, not ended",
            server.bin()
        );
        for m in &got {
            let reply = m.reply.clone().expect("ack subject");
            client
                .publish(reply, Bytes::from("+ACK"))
                .await
                .expect("ack");
        }
        let last = within(&mut inbox, WAIT).await.expect("the third message");
        assert_eq!(last.subject.as_str(), "s.2");
        let end = within(&mut inbox, WAIT)
            .await
            .expect("the end of the request");
        assert_eq!(
            status(&end),
            (404, "No Messages".into()),
            "{:?}",
            server.bin()
        );
        assert_eq!(header(&end, "Nats-Pending-Messages"), "");
    }
}

/// A `no_wait` request with an expiry that gets one message when it arrives ends with `404 No
/// Messages` at the end of the stream (nats-server 2.15.1; earlier releases sent `408`).
#[tokio::test]
async fn no_wait_request_that_got_messages_ends_with_no_messages() {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.S",
            json!({"name": "S", "subjects": ["s.>"], "storage": "memory"}),
        )
        .await;
        api_ok(
            &client,
            "$JS.API.CONSUMER.CREATE.S.C",
            json!({"stream_name": "S", "config": {"durable_name": "C", "ack_policy": "explicit"}}),
        )
        .await;
        let mut inbox = client.subscribe("pull.in").await.expect("subscribe");
        client
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.S.C",
                "pull.in",
                Bytes::from(
                    json!({"batch": 3, "no_wait": true, "expires": 5_000_000_000u64}).to_string(),
                ),
            )
            .await
            .expect("pull");
        crate::round_trip(&client).await;
        api_ok(&client, "s.a", json!("x")).await;
        let m = within(&mut inbox, WAIT).await.expect("the message");
        assert_eq!(m.subject.as_str(), "s.a");
        let end = within(&mut inbox, WAIT).await.expect("the end");
        assert_eq!(
            status(&end),
            (404, "No Messages".into()),
            "{:?}",
            server.bin()
        );
    }
}

const USERS: &str = r#"
system_account: SYS
accounts {
  A: { users: [{user: a, password: a, permissions: {
         publish: {allow: ["foo.>", "$SYS.REQ.USER.INFO", "_INBOX.>"], deny: ["foo.secret"]},
         subscribe: {deny: ["secret.>"]},
         allow_responses: {max: 3, expires: "5s"}}}] }
  B: { users: [{user: b, password: b}, {user: r, password: r, permissions: {subscribe: {allow: ["_INBOX.>"]}, publish: ["$SYS.REQ.USER.INFO"], allow_responses: true}}] }
  SYS: { users: [{user: sys, password: sys}] }
}
"#;

/// `data` of a `USER.INFO` answer with its lists sorted (nats-server lists permissions in
/// its sublist's order).
fn sorted(mut v: Value) -> Value {
    match &mut v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.drain(..).map(sorted).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(m) => {
            for (_, x) in m.iter_mut() {
                *x = sorted(x.take());
            }
            v
        }
        _ => v,
    }
}

/// `$SYS.REQ.USER.INFO` answers any authenticated client in its own account with its user,
/// account and permissions, as nats-server does; the answers' data are equal and the key sets
/// of the whole answers too (but the server block's fields natsd does not have yet).
#[tokio::test]
async fn user_info_answers_any_client() {
    let servers = Server::natsd_and_reference(USERS);
    let mut answers = Vec::new();
    for server in &servers {
        let mut mine = Vec::new();
        for user in ["a", "b", "r", "sys"] {
            let client = login(server, user).await;
            let v = api(&client, "$SYS.REQ.USER.INFO", json!(null)).await;
            mine.push(v);
        }
        answers.push(mine);
    }
    let data: Vec<Value> = answers[0]
        .iter()
        .map(|v| sorted(v["data"].clone()))
        .collect();
    assert_eq!(
        data[0],
        json!({"user": "a", "account": "A", "account_name": "A", "permissions": {
            "publish": {"allow": ["$SYS.REQ.USER.INFO", "_INBOX.>", "foo.>"], "deny": ["foo.secret"]},
            "subscribe": {"deny": ["secret.>"]},
            "responses": {"max": 3, "ttl": 5_000_000_000u64}}})
    );
    assert_eq!(
        data[1],
        json!({"user": "b", "account": "B", "account_name": "B"})
    );
    assert_eq!(
        data[2],
        json!({"user": "r", "account": "B", "account_name": "B", "permissions": {
            "publish": {"allow": ["$SYS.REQ.USER.INFO"]}, "subscribe": {"allow": ["_INBOX.>"]},
            "responses": {"max": 1, "ttl": 120_000_000_000u64}}})
    );
    assert_eq!(data[3]["account"], "SYS");
    let [ours, theirs] = answers.as_slice() else {
        return;
    };
    assert_eq!(servers[1].kind(), Kind::Reference);
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(sorted(a["data"].clone()), sorted(b["data"].clone()));
        let (mut ka, mut kb) = (BTreeSet::new(), BTreeSet::new());
        key_paths(a, "", &mut ka);
        key_paths(b, "", &mut kb);
        kb.retain(|k| !k.starts_with("/server/flags") && !k.starts_with("/server/feature_flags"));
        assert_eq!(ka, kb, "natsd {a:#} vs nats-server {b:#}");
    }
}

const SERVICE_INTO_STREAM: &str = r#"
accounts {
  A: { users: [{user: a, password: a}], jetstream: enabled, exports: [{service: "orders.>"}] }
  B: { users: [{user: b, password: b}], imports: [{service: {account: A, subject: "orders.>"}}] }
}
"#;

/// A request from another account through a service import whose exporter's subject is a
/// stream's gets the stream's pub ack and nothing else (no no-responders status first).
#[tokio::test]
async fn request_through_a_service_import_into_a_stream_gets_only_the_ack() {
    let (servers, _stores) = js_with_config(SERVICE_INTO_STREAM);
    for server in &servers {
        let a = login(server, "a").await;
        api_ok(
            &a,
            "$JS.API.STREAM.CREATE.O",
            json!({"name": "O", "subjects": ["orders.>"]}),
        )
        .await;
        let b = login(server, "b").await;
        let inbox = b.new_inbox();
        let mut replies = b.subscribe(format!("{inbox}.*")).await.expect("subscribe");
        for i in 1..=2 {
            b.publish_with_reply(
                format!("orders.{i}"),
                format!("{inbox}.{i}"),
                Bytes::from("x"),
            )
            .await
            .expect("request");
        }
        let mut got = Vec::new();
        while let Some(m) = within(&mut replies, Duration::from_millis(500)).await {
            got.push((m.subject.to_string(), m.status, m.payload));
        }
        let want: Vec<(String, Option<async_nats::StatusCode>, Bytes)> = (1..=2)
            .map(|i| {
                let ack = format!("{{\"stream\":\"O\",\"seq\":{i}}}");
                (format!("{inbox}.{i}"), None, Bytes::from(ack))
            })
            .collect();
        assert_eq!(got, want, "{:?}", server.bin());
        // And through the client's request API.
        let ack = tokio::time::timeout(WAIT, b.request("orders.3", Bytes::from("y")))
            .await
            .expect("in time")
            .expect("ack, not no responders");
        assert_eq!(&ack.payload[..], b"{\"stream\":\"O\",\"seq\":3}");
    }
}

/// The version metadata key `key` of a configuration, if any.
fn meta<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["config"]["metadata"][key].as_str()
}

/// Streams and consumers store the API level their configuration needs (`_nats.req.level`),
/// and create, update and info answers add the server's version and API level (`_nats.ver`
/// as INFO's `version`, `_nats.level` as `$JS.API.INFO`'s level), which list entries and a
/// request cannot set; the required levels are the same on both servers.
#[tokio::test]
async fn streams_and_consumers_carry_version_metadata() {
    let js = Server::natsd_and_reference_js();
    let mut levels = Vec::new();
    for server in &js.servers {
        let client = connect(&server.url()).await;
        let version = client.server_info().version;
        let level = api_ok(&client, "$JS.API.INFO", json!({})).await["api"]["level"].to_string();
        let dynamic = |v: &Value, what: &str| {
            assert_eq!(meta(v, "_nats.ver"), Some(version.as_str()), "{what}: {v}");
            assert_eq!(meta(v, "_nats.level"), Some(level.as_str()), "{what}: {v}");
        };
        let mut mine = Vec::new();
        let plain = api_ok(
            &client,
            "$JS.API.STREAM.CREATE.S",
            json!({"name": "S", "subjects": ["s.>"], "storage": "memory",
                   "metadata": {"_nats.ver": "0.1", "_nats.level": "99", "_nats.req.level": "7", "k": "v"}}),
        )
        .await;
        dynamic(&plain, "create");
        assert_eq!(meta(&plain, "k"), Some("v"));
        mine.push(meta(&plain, "_nats.req.level").map(str::to_string));
        // The same create again is no different configuration.
        api_ok(
            &client,
            "$JS.API.STREAM.CREATE.S",
            json!({"name": "S", "subjects": ["s.>"], "storage": "memory", "metadata": {"k": "v"}}),
        )
        .await;
        let ttl = api_ok(
            &client,
            "$JS.API.STREAM.UPDATE.S",
            json!({"name": "S", "subjects": ["s.>"], "storage": "memory", "allow_msg_ttl": true}),
        )
        .await;
        dynamic(&ttl, "update");
        mine.push(meta(&ttl, "_nats.req.level").map(str::to_string));
        let info = api_ok(&client, "$JS.API.STREAM.INFO.S", json!({})).await;
        dynamic(&info, "info");
        let list = api_ok(&client, "$JS.API.STREAM.LIST", json!({})).await;
        let entry = json!({"config": list["streams"][0]["config"].clone()});
        assert_eq!(meta(&entry, "_nats.ver"), None, "list: {list}");
        assert_eq!(meta(&entry, "_nats.req.level"), Some("1"), "list: {list}");

        for (name, extra) in [
            ("C", json!({})),
            ("P", json!({"pause_until": "2099-01-01T00:00:00Z"})),
            (
                "G",
                json!({"priority_groups": ["g"], "priority_policy": "pinned_client"}),
            ),
        ] {
            let mut cfg = json!({"durable_name": name, "ack_policy": "explicit"});
            cfg.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let created = api_ok(
                &client,
                &format!("$JS.API.CONSUMER.CREATE.S.{name}"),
                json!({"stream_name": "S", "config": cfg, "action": "create"}),
            )
            .await;
            dynamic(&created, "consumer create");
            mine.push(meta(&created, "_nats.req.level").map(str::to_string));
            // An identical create is accepted.
            api_ok(
                &client,
                &format!("$JS.API.CONSUMER.CREATE.S.{name}"),
                json!({"stream_name": "S", "config": cfg, "action": "create"}),
            )
            .await;
        }
        api_ok(
            &client,
            "$JS.API.CONSUMER.PAUSE.S.C",
            json!({"pause_until": "2099-01-01T00:00:00Z"}),
        )
        .await;
        let info = api_ok(&client, "$JS.API.CONSUMER.INFO.S.C", json!({})).await;
        dynamic(&info, "consumer info");
        mine.push(meta(&info, "_nats.req.level").map(str::to_string));
        let list = api_ok(&client, "$JS.API.CONSUMER.LIST.S", json!({})).await;
        for c in list["consumers"].as_array().expect("consumers") {
            let entry = json!({"config": c["config"].clone()});
            assert_eq!(meta(&entry, "_nats.ver"), None, "list: {c}");
            assert!(meta(&entry, "_nats.req.level").is_some(), "list: {c}");
        }
        levels.push(mine);
    }
    let want: Vec<Option<String>> = ["0", "1", "0", "1", "1", "1"]
        .iter()
        .map(|l| Some(l.to_string()))
        .collect();
    for mine in &levels {
        assert_eq!(mine, &want);
    }
}
