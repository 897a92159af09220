//! Client TLS through async-nats and raw TCP: TLS pub/sub, server and client certificate
//! checks, the plaintext INFO before the handshake, the handshake timeout, and
//! `handshake_first`, and `verify_and_map` (the user taken from the client certificate). Each case runs against natsd and, where it is installed, nats-server
//! 2.9.10 with the same config (or flags), and both must show the client the same thing.
//! Certificates are in `tests/certs` (see its README).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use bytes::Bytes;
use natsd_tests::{RawConn, Server};

use crate::{next_msg, round_trip, WAIT};

fn cert(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs")
        .join(name)
}

fn cert_str(name: &str) -> String {
    cert(name).display().to_string()
}

/// A `tls {}` block with the test server certificate, plus `extra` lines.
fn tls_conf(extra: &str) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{extra}\n}}\n",
        cert_str("server-cert.pem"),
        cert_str("server-key.pem")
    )
}

fn verify_conf() -> String {
    tls_conf(&format!(
        "  ca_file: \"{}\"\n  verify: true",
        cert_str("ca.pem")
    ))
}

fn name(server: &Server) -> String {
    format!("{:?} {}", server.kind(), server.bin().display())
}

fn trusting(root: &str) -> ConnectOptions {
    ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(cert(root))
        .connection_timeout(Duration::from_secs(3))
}

async fn try_connect(
    server: &Server,
    opts: ConnectOptions,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    tokio::time::timeout(WAIT, opts.connect(server.url()))
        .await
        .unwrap_or_else(|_| panic!("{}: connect timed out", name(server)))
}

async fn pub_sub_works(server: &Server, client: async_nats::Client) {
    let mut sub = client.subscribe("tls.test").await.expect("subscribe");
    round_trip(&client).await;
    client
        .publish("tls.test", Bytes::from_static(b"secret"))
        .await
        .expect("publish");
    let msg = next_msg(&mut sub).await;
    assert_eq!(
        msg.payload,
        Bytes::from_static(b"secret"),
        "{}",
        name(server)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_over_tls() {
    for server in Server::natsd_and_reference(&tls_conf("")) {
        let client = try_connect(&server, trusting("ca.pem"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        pub_sub_works(&server, client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_match_nats_server() {
    let (c, k) = (cert_str("server-cert.pem"), cert_str("server-key.pem"));
    let args = ["--tls", "--tlscert", c.as_str(), "--tlskey", k.as_str()];
    let mut all = vec![Server::natsd(&args)];
    if let Some(reference) = Server::reference(&args) {
        if reference.bin() != all[0].bin() {
            all.push(reference);
        }
    }
    for server in all {
        let info = RawConn::connect_only(&server.addr()).read_info();
        assert_eq!(info["tls_required"], true, "{}: {info}", name(&server));
        let client = try_connect(&server, trusting("ca.pem"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        pub_sub_works(&server, client).await;
    }
}

#[test]
fn info_says_tls_required_and_verify() {
    for server in Server::natsd_and_reference(&tls_conf("")) {
        let info = RawConn::connect_only(&server.addr()).read_info();
        assert_eq!(info["tls_required"], true, "{}: {info}", name(&server));
        assert!(
            info.get("tls_verify").is_none(),
            "{}: {info}",
            name(&server)
        );
    }
    for server in Server::natsd_and_reference(&verify_conf()) {
        let info = RawConn::connect_only(&server.addr()).read_info();
        assert_eq!(info["tls_required"], true, "{}: {info}", name(&server));
        assert_eq!(info["tls_verify"], true, "{}: {info}", name(&server));
    }
}

#[test]
fn plain_text_client_gets_info_then_a_close() {
    for server in Server::natsd_and_reference(&tls_conf("")) {
        let mut conn = RawConn::connect_only(&server.addr());
        conn.read_info();
        conn.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
        let got = conn.expect_closed(WAIT);
        assert!(got.is_empty(), "{}: got {got:?}", name(&server));
    }
}

#[test]
fn handshake_must_finish_within_the_tls_timeout() {
    for server in Server::natsd_and_reference(&tls_conf("  timeout: 0.5")) {
        let mut conn = RawConn::connect_only(&server.addr());
        conn.read_info();
        let start = Instant::now();
        let got = conn.expect_closed(WAIT);
        let took = start.elapsed();
        assert!(got.is_empty(), "{}: got {got:?}", name(&server));
        assert!(
            took < Duration::from_millis(1400),
            "{}: closed after {took:?}",
            name(&server)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_the_wrong_ca_fails() {
    for server in Server::natsd_and_reference(&tls_conf("")) {
        let result = try_connect(&server, trusting("other-ca.pem")).await;
        assert!(result.is_err(), "{}: connected", name(&server));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_requires_a_client_certificate_from_the_ca() {
    for server in Server::natsd_and_reference(&verify_conf()) {
        let none = try_connect(&server, trusting("ca.pem")).await;
        assert!(none.is_err(), "{}: connected without a cert", name(&server));
        let wrong = trusting("ca.pem")
            .add_client_certificate(cert("other-client-cert.pem"), cert("other-client-key.pem"));
        let wrong = try_connect(&server, wrong).await;
        assert!(
            wrong.is_err(),
            "{}: connected with a foreign cert",
            name(&server)
        );
        let good = trusting("ca.pem")
            .add_client_certificate(cert("client-cert.pem"), cert("client-key.pem"));
        let client = try_connect(&server, good)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        pub_sub_works(&server, client).await;
    }
}

/// `handshake_first` came after 2.9.10, so this runs against natsd only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_first_sends_nothing_before_the_handshake() {
    let server = Server::natsd_with_config(&tls_conf("  handshake_first: true"), &[]);
    let mut raw = RawConn::connect_only(&server.addr());
    let early = raw.read_to_close(Duration::from_millis(300));
    assert!(early.is_empty(), "got {early:?} before any handshake");
    let client = try_connect(&server, trusting("ca.pem").tls_first())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
    pub_sub_works(&server, client).await;
    // A client that waits for INFO first gets nothing, and gives up.
    let plain = try_connect(&server, trusting("ca.pem")).await;
    assert!(plain.is_err(), "connected without tls_first");
}

#[test]
fn unreadable_certificate_stops_the_start() {
    let conf = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        cert_str("missing.pem"),
        cert_str("server-key.pem")
    );
    let dir = natsd_tests::TempDir::new();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, conf).expect("write conf");
    let bin = Server::natsd(&[]).bin().to_path_buf();
    let out = std::process::Command::new(bin)
        .args(["-c", &path.display().to_string(), "-p", "-1"])
        .output()
        .expect("run natsd");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("missing.pem"), "{text}");
}

/// `verify_and_map` against clients signed by `ca`, with these `authorization.users` entries.
fn map_conf(ca: &str, users: &str) -> String {
    tls_conf(&format!(
        "  ca_file: \"{}\"\n  verify_and_map: true",
        cert_str(ca)
    )) + &format!("authorization {{\n  users: [\n{users}\n  ]\n}}\n")
}

/// Trusts the server and presents `client-cert.pem`/`client-key.pem` (or the `map-` pair).
fn with_client_cert(prefix: &str) -> ConnectOptions {
    trusting("ca.pem").add_client_certificate(
        cert(&format!("{prefix}client-cert.pem")),
        cert(&format!("{prefix}client-key.pem")),
    )
}

/// A quoted user name (DNs and URIs hold characters the config parser reads otherwise).
fn map_user(name: &str) -> String {
    format!("    {{user: \"{name}\"}}")
}

async fn map_must_fail(server: &Server, opts: ConnectOptions) {
    match try_connect(server, opts.max_reconnects(Some(1))).await {
        Ok(_) => panic!("{}: connect should have been refused", name(server)),
        Err(e) => assert_eq!(
            e.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{}: {e}",
            name(server)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_email_san_user_gets_its_permissions() {
    let users = "    {user: \"alice@example.com\", permissions: {publish: [\"tls.>\", \"_INBOX.>\"], subscribe: [\"tls.>\", \"_INBOX.>\"]}}";
    for server in Server::natsd_and_reference(&map_conf("ca.pem", users)) {
        let info = RawConn::connect_only(&server.addr()).read_info();
        assert_eq!(info["tls_verify"], true, "{}: {info}", name(&server));
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let opts = with_client_cert("").event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
        let client = try_connect(&server, opts)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        pub_sub_works(&server, client.clone()).await;
        let _denied = client.subscribe("secret.x").await.expect("subscribe");
        round_trip(&client).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let text = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::ServerError(ServerError::Other(text)))) => break text,
                Ok(Some(Event::ServerError(e))) => break e.to_string(),
                Ok(Some(_)) => continue,
                _ => panic!("{}: no permissions violation", name(&server)),
            }
        };
        assert!(
            text.to_lowercase().contains("permissions violation"),
            "{}: {text}",
            name(&server)
        );
        // Without a client certificate the handshake itself fails.
        let none = try_connect(&server, trusting("ca.pem")).await;
        assert!(none.is_err(), "{}: connected without a cert", name(&server));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_subject_dn_in_either_order() {
    for dn in ["CN=alice,O=natsd tests", "O=natsd tests,CN=alice"] {
        for server in Server::natsd_and_reference(&map_conf("ca.pem", &map_user(dn))) {
            let client = try_connect(&server, with_client_cert(""))
                .await
                .unwrap_or_else(|e| panic!("{} {dn}: {e}", name(&server)));
            pub_sub_works(&server, client).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_dns_uri_and_domain_components() {
    for user in [
        "bob.natsd.test",
        "spiffe://natsd.test/bob",
        "CN=bob,OU=map,O=natsd tests,DC=natsd,DC=org",
        "CN=bob,OU=map,O=natsd tests,DC=org,DC=natsd",
    ] {
        for server in Server::natsd_and_reference(&map_conf("map-ca.pem", &map_user(user))) {
            let client = try_connect(&server, with_client_cert("map-"))
                .await
                .unwrap_or_else(|e| panic!("{} {user}: {e}", name(&server)));
            pub_sub_works(&server, client).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_refuses_an_unmapped_certificate() {
    // The CN alone is not a name nats-server maps, nor is a partial DN; a user with a
    // password cannot log in with it either while the certificate maps to nobody.
    let users = [
        map_user("alice"),
        map_user("CN=alice"),
        "    {user: carol, password: pc}".to_string(),
    ]
    .join("\n");
    for server in Server::natsd_and_reference(&map_conf("ca.pem", &users)) {
        map_must_fail(&server, with_client_cert("")).await;
        let carol = with_client_cert("").user_and_password("carol".into(), "pc".into());
        map_must_fail(&server, carol).await;
    }
    // A mapped user's password, when it has one, must still come in CONNECT.
    let users = "    {user: \"alice@example.com\", password: pa}";
    for server in Server::natsd_and_reference(&map_conf("ca.pem", users)) {
        map_must_fail(&server, with_client_cert("")).await;
        let right = with_client_cert("").user_and_password("anyone".into(), "pa".into());
        let client = try_connect(&server, right)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        pub_sub_works(&server, client).await;
    }
}

/// SIGHUP re-reads the `tls {}` block: after the CA changes, a client
/// certificate from the new CA is accepted and one from the old CA refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_the_new_ca() {
    let other_verify = tls_conf(&format!(
        "  ca_file: \"{}\"\n  verify: true",
        cert_str("other-ca.pem")
    ));
    for server in Server::natsd_and_reference(&verify_conf()) {
        let old_client = || {
            trusting("ca.pem")
                .add_client_certificate(cert("client-cert.pem"), cert("client-key.pem"))
        };
        let new_client = || {
            trusting("ca.pem")
                .add_client_certificate(cert("other-client-cert.pem"), cert("other-client-key.pem"))
        };
        let kept = try_connect(&server, old_client())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", name(&server)));
        assert!(try_connect(&server, new_client()).await.is_err());
        std::fs::write(server.config_path(), &other_verify).expect("rewrite config");
        server.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(5);
        let client = loop {
            match try_connect(&server, new_client()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    panic!("{}: new CA not in force after reload: {e}", name(&server))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        pub_sub_works(&server, client).await;
        assert!(
            try_connect(&server, old_client()).await.is_err(),
            "{}: old CA still accepted",
            name(&server)
        );
        // A connection made before the reload stays up.
        kept.flush().await.expect("old connection still works");
    }
}
