//! Authentication and permissions through async-nats: users (plain and bcrypt passwords),
//! tokens, nkeys, per-user publish/subscribe permissions with queue and deny forms, and
//! `no_auth_user`. Each case runs against natsd and, where it is installed, the Go nats-server
//! with the same config file, and both must show the client the same thing.

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use bytes::Bytes;
use natsd_tests::{RawConn, Server};
use tokio::sync::mpsc;

use crate::{drain_ready, next_msg, round_trip, WAIT};

/// crypt_blowfish (Openwall) test vector: the bcrypt hash of `U*U`.
const BCRYPT_U_STAR_U: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

/// A user key pair made from fixed bytes: (seed, public key).
fn user_key(raw: u8) -> (String, String) {
    let kp = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [raw; 32]).expect("key pair");
    (kp.seed().expect("seed"), kp.public_key())
}

/// The INFO a new connection gets.
fn info_of(server: &Server) -> serde_json::Value {
    RawConn::connect_only(&server.addr()).read_info()
}

fn name(server: &Server) -> String {
    format!("{:?}", server.kind())
}

/// Connect with these options (no reconnects), bounded by [`WAIT`]; events go to the receiver.
async fn try_connect(
    url: &str,
    opts: ConnectOptions,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<Event>), async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = opts.max_reconnects(Some(1)).event_callback(move |event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(event);
        }
    });
    let client = tokio::time::timeout(WAIT, opts.connect(url))
        .await
        .unwrap_or_else(|_| panic!("connect to {url} timed out"))?;
    Ok((client, rx))
}

async fn must_connect(
    server: &Server,
    opts: ConnectOptions,
) -> (async_nats::Client, mpsc::UnboundedReceiver<Event>) {
    try_connect(&server.url(), opts)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", name(server)))
}

async fn must_fail(server: &Server, opts: ConnectOptions) {
    match try_connect(&server.url(), opts).await {
        Ok(_) => panic!("{}: connect should have been refused", name(server)),
        Err(e) => assert_eq!(
            e.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{}: {e}",
            name(server)
        ),
    }
}

fn user(u: &str, p: &str) -> ConnectOptions {
    ConnectOptions::with_user_and_password(u.into(), p.into())
}

/// The next server error (`-ERR`) the client reported, bounded by [`WAIT`].
async fn next_server_error(server: &Server, events: &mut mpsc::UnboundedReceiver<Event>) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::ServerError(ServerError::Other(text)))) => return text,
            Ok(Some(Event::ServerError(e))) => return e.to_string(),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{}: event channel closed", name(server)),
            Err(_) => panic!("{}: no server error within {WAIT:?}", name(server)),
        }
    }
}

/// No server error is pending (call after a round trip).
fn no_server_error(server: &Server, events: &mut mpsc::UnboundedReceiver<Event>) {
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, Event::ServerError(_)),
            "{}: unexpected {event:?}",
            name(server)
        );
    }
}

#[tokio::test]
async fn users_with_plain_and_bcrypt_passwords() {
    let conf = format!(
        "authorization {{\n  users: [\n    {{user: alice, password: pa}}\n    {{user: bob, password: \"{BCRYPT_U_STAR_U}\"}}\n  ]\n}}\n"
    );
    for server in Server::natsd_and_reference(&conf) {
        let info = info_of(&server);
        assert_eq!(info["auth_required"], true, "{}", name(&server));
        assert!(info.get("nonce").is_none(), "{}", name(&server));
        let (alice, _) = must_connect(&server, user("alice", "pa")).await;
        round_trip(&alice).await;
        let (bob, _) = must_connect(&server, user("bob", "U*U")).await;
        round_trip(&bob).await;
        // A second bcrypt login (natsd answers it from its verification cache).
        let (bob2, _) = must_connect(&server, user("bob", "U*U")).await;
        round_trip(&bob2).await;
        must_fail(&server, user("alice", "wrong")).await;
        must_fail(&server, user("bob", BCRYPT_U_STAR_U)).await;
        must_fail(&server, user("carol", "pa")).await;
        must_fail(&server, ConnectOptions::new()).await;
        must_fail(&server, ConnectOptions::with_token("pa".into())).await;
    }
}

#[tokio::test]
async fn single_user_with_bcrypt_password() {
    let conf = format!("authorization {{ user: admin, password: \"{BCRYPT_U_STAR_U}\" }}\n");
    for server in Server::natsd_and_reference(&conf) {
        let (c, _) = must_connect(&server, user("admin", "U*U")).await;
        round_trip(&c).await;
        must_fail(&server, user("admin", "U*V")).await;
        must_fail(&server, user("root", "U*U")).await;
    }
}

#[tokio::test]
async fn plain_and_bcrypt_tokens() {
    for (conf, good) in [
        ("authorization { token: s3cr3t }\n".to_string(), "s3cr3t"),
        (
            format!("authorization {{ token: \"{BCRYPT_U_STAR_U}\" }}\n"),
            "U*U",
        ),
    ] {
        for server in Server::natsd_and_reference(&conf) {
            let (c, _) = must_connect(&server, ConnectOptions::with_token(good.into())).await;
            round_trip(&c).await;
            must_fail(&server, ConnectOptions::with_token("nope".into())).await;
            must_fail(&server, ConnectOptions::new()).await;
        }
    }
}

#[tokio::test]
async fn nkey_users_sign_the_nonce() {
    let (seed, public) = user_key(1);
    let conf = format!(
        "authorization {{\n  users: [\n    {{nkey: {public}, permissions: {{publish: \"_INBOX.>\", subscribe: \"_INBOX.>\"}}}}\n    {{user: a, password: b}}\n  ]\n}}\n"
    );
    for server in Server::natsd_and_reference(&conf) {
        let info = info_of(&server);
        let nonce = info["nonce"].as_str().expect("INFO has a nonce");
        assert_eq!(nonce.len(), 15, "{}: {nonce}", name(&server));
        assert!(nonce
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let second = info_of(&server);
        assert_ne!(second["nonce"], info["nonce"], "{}", name(&server));
        let (c, mut events) = must_connect(&server, ConnectOptions::with_nkey(seed.clone())).await;
        round_trip(&c).await;
        // Its permissions apply.
        c.publish("elsewhere", Bytes::new()).await.expect("publish");
        let err = next_server_error(&server, &mut events).await;
        assert!(
            err.contains("Permissions Violation for Publish to \"elsewhere\""),
            "{}: {err}",
            name(&server)
        );
        // Password users still work next to nkey users.
        let (c, _) = must_connect(&server, user("a", "b")).await;
        round_trip(&c).await;
        // Another key pair is refused.
        must_fail(&server, ConnectOptions::with_nkey(user_key(2).0)).await;
    }
}

const PERMS_CONF: &str = r#"
authorization {
  users: [
    {user: admin, password: a}
    {user: limited, password: l, permissions: {
      publish: {allow: ["allowed.>", "_INBOX.>"], deny: "allowed.secret"}
      subscribe: {allow: ["allowed.>", "_INBOX.>", "q.sub work", "events.>"], deny: ["events.secret"]}
    }}
  ]
}
"#;

#[tokio::test]
async fn publish_permissions_are_enforced() {
    for server in Server::natsd_and_reference(PERMS_CONF) {
        let (admin, _) = must_connect(&server, user("admin", "a")).await;
        let mut watch = admin.subscribe(">").await.expect("subscribe");
        round_trip(&admin).await;
        drain_ready(&mut watch);
        let (limited, mut events) = must_connect(&server, user("limited", "l")).await;
        for subject in ["forbidden", "allowed.secret"] {
            limited
                .publish(subject, Bytes::new())
                .await
                .expect("publish");
            let err = next_server_error(&server, &mut events).await;
            assert_eq!(
                err,
                format!("Permissions Violation for Publish to \"{subject}\""),
                "{}",
                name(&server)
            );
        }
        limited
            .publish("allowed.ok", Bytes::from_static(b"hi"))
            .await
            .expect("publish");
        round_trip(&limited).await;
        no_server_error(&server, &mut events);
        let msg = next_msg(&mut watch).await;
        assert_eq!(msg.subject.as_str(), "allowed.ok", "{}", name(&server));
        round_trip(&admin).await;
        let rest: Vec<String> = drain_ready(&mut watch)
            .into_iter()
            .map(|m| m.subject.to_string())
            .filter(|s| !s.starts_with("_INBOX."))
            .collect();
        assert!(
            rest.is_empty(),
            "{}: forbidden publishes got through: {rest:?}",
            name(&server)
        );
    }
}

#[tokio::test]
async fn subscribe_permissions_and_queue_groups() {
    for server in Server::natsd_and_reference(PERMS_CONF) {
        let (admin, _) = must_connect(&server, user("admin", "a")).await;
        let (limited, mut events) = must_connect(&server, user("limited", "l")).await;
        let _denied = limited.subscribe("forbidden").await.expect("subscribe");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Subscription to \"forbidden\"",
            "{}",
            name(&server)
        );
        let _q = limited
            .queue_subscribe("q.sub", "other".into())
            .await
            .expect("subscribe");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Subscription to \"q.sub\" using queue \"other\"",
            "{}",
            name(&server)
        );
        // Without a queue the queue-only entry does not allow it either.
        let _plain = limited.subscribe("q.sub").await.expect("subscribe");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Subscription to \"q.sub\"",
            "{}",
            name(&server)
        );
        let mut work = limited
            .queue_subscribe("q.sub", "work".into())
            .await
            .expect("subscribe");
        round_trip(&limited).await;
        no_server_error(&server, &mut events);
        admin
            .publish("q.sub", Bytes::from_static(b"job"))
            .await
            .expect("publish");
        round_trip(&admin).await;
        let msg = next_msg(&mut work).await;
        assert_eq!(msg.payload, Bytes::from_static(b"job"), "{}", name(&server));
    }
}

#[tokio::test]
async fn subscribe_deny_under_allowed_wildcard_filters_deliveries() {
    for server in Server::natsd_and_reference(PERMS_CONF) {
        let (admin, _) = must_connect(&server, user("admin", "a")).await;
        let (limited, mut events) = must_connect(&server, user("limited", "l")).await;
        // Accepted: the wildcard is allowed; the denied subject is filtered instead.
        let mut sub = limited.subscribe("events.*").await.expect("subscribe");
        round_trip(&limited).await;
        no_server_error(&server, &mut events);
        for subject in [
            "events.secret",
            "events.public",
            "events.secret",
            "events.other",
        ] {
            admin.publish(subject, Bytes::new()).await.expect("publish");
        }
        round_trip(&admin).await;
        assert_eq!(next_msg(&mut sub).await.subject.as_str(), "events.public");
        assert_eq!(next_msg(&mut sub).await.subject.as_str(), "events.other");
        round_trip(&limited).await;
        assert!(drain_ready(&mut sub).is_empty(), "{}", name(&server));
        // Subscribing to the denied subject itself is a violation.
        let _denied = limited.subscribe("events.secret").await.expect("subscribe");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Subscription to \"events.secret\"",
            "{}",
            name(&server)
        );
    }
}

#[tokio::test]
async fn default_permissions_apply_to_users_without_their_own() {
    let conf = r#"
authorization {
  default_permissions: {publish: ["_INBOX.>", "pub.ok"], subscribe: "_INBOX.>"}
  users: [
    {user: plain, password: p}
    {user: own, password: o, permissions: {publish: ">", subscribe: ">"}}
  ]
}
"#;
    for server in Server::natsd_and_reference(conf) {
        let (plain, mut events) = must_connect(&server, user("plain", "p")).await;
        plain
            .publish("pub.ok", Bytes::new())
            .await
            .expect("publish");
        plain
            .publish("pub.no", Bytes::new())
            .await
            .expect("publish");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(err, "Permissions Violation for Publish to \"pub.no\"");
        let (own, mut events) = must_connect(&server, user("own", "o")).await;
        own.publish("pub.no", Bytes::new()).await.expect("publish");
        round_trip(&own).await;
        no_server_error(&server, &mut events);
    }
}

#[tokio::test]
async fn no_auth_user_applies_to_clients_without_credentials() {
    let conf = r#"
no_auth_user: anon
authorization {
  users: [
    {user: anon, password: x, permissions: {publish: ["open.>", "_INBOX.>"], subscribe: "_INBOX.>"}}
    {user: admin, password: y}
  ]
}
"#;
    for server in Server::natsd_and_reference(conf) {
        let (anon, mut events) = must_connect(&server, ConnectOptions::new()).await;
        round_trip(&anon).await;
        anon.publish("open.door", Bytes::new())
            .await
            .expect("publish");
        anon.publish("closed.door", Bytes::new())
            .await
            .expect("publish");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Publish to \"closed.door\"",
            "{}",
            name(&server)
        );
        // Credentials, when given, are still checked.
        let (admin, mut events) = must_connect(&server, user("admin", "y")).await;
        admin
            .publish("closed.door", Bytes::new())
            .await
            .expect("publish");
        round_trip(&admin).await;
        no_server_error(&server, &mut events);
        must_fail(&server, user("admin", "x")).await;
    }
}

#[tokio::test]
async fn auth_timeout_closes_a_silent_client() {
    let conf = "authorization { user: a, password: b, timeout: 0.5 }\n";
    for server in Server::natsd_and_reference(conf) {
        let mut raw = RawConn::connect_only(&server.addr());
        let info = raw.read_info();
        assert_eq!(info["auth_required"], true);
        let bytes = raw.expect_closed(Duration::from_secs(3));
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("-ERR 'Authentication Timeout'"),
            "{}: {text}",
            name(&server)
        );
    }
}

#[tokio::test]
async fn no_auth_user_info_omits_auth_required() {
    let conf = "no_auth_user: a\nauthorization { users: [{user: a, password: b}] }\n";
    for server in Server::natsd_and_reference(conf) {
        let info = info_of(&server);
        assert!(
            info.get("auth_required").is_none(),
            "{}: {info}",
            name(&server)
        );
    }
}

#[tokio::test]
async fn allow_responses_lets_a_service_answer_once() {
    let conf = r#"
authorization {
  users: [
    {user: client, password: c}
    {user: svc, password: s, permissions: {subscribe: ["svc.>", "_INBOX.>"], publish: "_INBOX.>", allow_responses: true}}
    {user: svc2, password: s, permissions: {subscribe: ["svc2.>", "_INBOX.>"], publish: "_INBOX.>", allow_responses: {max: 2}}}
  ]
}
"#;
    for server in Server::natsd_and_reference(conf) {
        let (client, _) = must_connect(&server, user("client", "c")).await;
        let (svc, mut events) = must_connect(&server, user("svc", "s")).await;
        let mut requests = svc.subscribe("svc.echo").await.expect("subscribe");
        round_trip(&svc).await;
        // The requester's reply subject is not an _INBOX one here.
        let mut replies = client.subscribe("answers.>").await.expect("subscribe");
        round_trip(&client).await;
        client
            .publish_with_reply("svc.echo", "answers.1", Bytes::from_static(b"q"))
            .await
            .expect("publish");
        round_trip(&client).await;
        let req = next_msg(&mut requests).await;
        let reply = req.reply.expect("reply subject");
        assert_eq!(reply.as_str(), "answers.1");
        for _ in 0..2 {
            svc.publish(reply.clone(), Bytes::from_static(b"a"))
                .await
                .expect("publish");
        }
        // The first answer passes; the second exceeds max (1).
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(
            err,
            "Permissions Violation for Publish to \"answers.1\"",
            "{}",
            name(&server)
        );
        assert_eq!(next_msg(&mut replies).await.subject.as_str(), "answers.1");
        // A subject no request named is refused.
        svc.publish("answers.2", Bytes::new())
            .await
            .expect("publish");
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(err, "Permissions Violation for Publish to \"answers.2\"");
        round_trip(&client).await;
        assert!(drain_ready(&mut replies).is_empty(), "{}", name(&server));

        // max: 2 allows two answers to one request.
        let (svc2, mut events) = must_connect(&server, user("svc2", "s")).await;
        let mut requests = svc2.subscribe("svc2.echo").await.expect("subscribe");
        round_trip(&svc2).await;
        client
            .publish_with_reply("svc2.echo", "answers.3", Bytes::new())
            .await
            .expect("publish");
        round_trip(&client).await;
        let reply = next_msg(&mut requests).await.reply.expect("reply");
        for _ in 0..3 {
            svc2.publish(reply.clone(), Bytes::new())
                .await
                .expect("publish");
        }
        let err = next_server_error(&server, &mut events).await;
        assert_eq!(err, "Permissions Violation for Publish to \"answers.3\"");
        round_trip(&client).await;
        let got = drain_ready(&mut replies);
        assert_eq!(got.len(), 2, "{}", name(&server));
    }
}
