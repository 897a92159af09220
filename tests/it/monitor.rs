//! The HTTP monitoring endpoints, over real HTTP with real clients connected.
//!
//! Servers start with `-m -1` (a random monitoring port, as nats-server
//! 2.9.10 allows) and the port is read from the `Starting http monitor on`
//! log line. Where nats-server is installed, the key sets of `/varz`,
//! `/connz`, `/subsz` and `/healthz` are compared with its answers.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use bytes::Bytes;
use natsd_tests::Server;
use serde_json::Value;

use crate::{connect, round_trip, WAIT};

const HTTP_MONITOR: &str = "Starting http monitor on ";

/// The monitoring port from the server's log.
pub(crate) fn http_port(server: &Server) -> u16 {
    let log = server.log_contents();
    let line = log
        .lines()
        .find(|l| l.contains(HTTP_MONITOR))
        .unwrap_or_else(|| panic!("no `{HTTP_MONITOR}` line in log:\n{log}"));
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// One HTTP answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.body))
    }
}

/// Send raw request bytes and read the reply to the end (`Connection: close`).
fn raw_request(port: u16, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to monitor");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(request).expect("write request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read reply");
    parse_reply(&String::from_utf8_lossy(&buf))
}

fn parse_reply(text: &str) -> Reply {
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(port: u16, target: &str) -> Reply {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_request(port, req.as_bytes())
}

pub(crate) fn get_json(port: u16, target: &str) -> Value {
    let r = get(port, target);
    assert_eq!(r.status, 200, "{target}: {}", r.body);
    r.json()
}

/// Poll `target` until `done` holds for its JSON, bounded by [`WAIT`]. Async
/// so the client's connection task keeps running meanwhile.
async fn wait_json(port: u16, target: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get_json(port, target);
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn natsd_with_monitor() -> (Server, u16) {
    let server = Server::natsd(&["-m", "-1"]);
    let port = http_port(&server);
    (server, port)
}

#[tokio::test]
async fn varz_counts_messages_and_connections() {
    let (server, port) = natsd_with_monitor();
    let client = connect(&server.url()).await;
    let mut sub = client.subscribe("count.me").await.expect("subscribe");
    round_trip(&client).await;
    let before = get_json(port, "/varz");
    for _ in 0..10 {
        client
            .publish("count.me", Bytes::from_static(b"12345"))
            .await
            .expect("publish");
    }
    round_trip(&client).await;
    for _ in 0..10 {
        crate::next_msg(&mut sub).await;
    }
    let v = get_json(port, "/varz");
    let delta = |k: &str| v[k].as_u64().expect(k) - before[k].as_u64().expect(k);
    // Ten publishes plus the round trip's one.
    assert_eq!(delta("in_msgs"), 11);
    assert_eq!(delta("out_msgs"), 11);
    assert_eq!(delta("in_bytes"), 50);
    assert_eq!(v["connections"], 1);
    assert_eq!(v["total_connections"], 1);
    assert_eq!(v["port"], server.port());
    assert_eq!(v["http_port"], -1);
    assert!(v["subscriptions"].as_u64().expect("subscriptions") >= 1);
    assert!(v["mem"].as_i64().expect("mem") > 0);
    assert!(v["start"].as_str().expect("start").ends_with('Z'));
    assert!(v["natsd"]["reactors"].as_u64().expect("reactors") >= 1);
    let load = v["natsd"]["reactor_load"].as_array().expect("reactor_load");
    let conns: u64 = load
        .iter()
        .map(|r| r["connections"].as_u64().unwrap())
        .sum();
    assert_eq!(conns, 1, "{load:?}");
    let stages = v["natsd"]["stages"].as_array().expect("stages");
    assert!(stages.iter().any(|s| s["name"] == "sys"), "{stages:?}");
    assert!(v["http_req_stats"]["/varz"].as_u64().expect("req stats") >= 2);
}

#[tokio::test]
async fn connz_lists_clients_subscriptions_and_closed_reasons() {
    let (server, port) = natsd_with_monitor();
    let client = ConnectOptions::new()
        .name("monitor-test")
        .connect(server.url())
        .await
        .expect("connect");
    let sub_a = client.subscribe("mon.a").await.expect("subscribe");
    let sub_b = client
        .queue_subscribe("mon.b", "workers".into())
        .await
        .expect("queue subscribe");
    round_trip(&client).await;

    let c = get_json(port, "/connz?subs=1");
    assert_eq!(c["num_connections"], 1);
    assert_eq!(c["total"], 1);
    assert_eq!(c["limit"], 1024);
    let conn = &c["connections"][0];
    let cid = conn["cid"].as_u64().expect("cid");
    assert_eq!(conn["name"], "monitor-test");
    assert_eq!(conn["lang"], "rust");
    assert!(!conn["version"].as_str().expect("version").is_empty());
    assert_eq!(conn["kind"], "Client");
    assert_eq!(conn["ip"], "127.0.0.1");
    let subs: Vec<&str> = conn["subscriptions_list"]
        .as_array()
        .expect("subscriptions_list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(subs.contains(&"mon.a"), "{subs:?}");
    assert!(subs.contains(&"mon.b"), "{subs:?}");

    let d = get_json(port, "/connz?subs=detail");
    let details = d["connections"][0]["subscriptions_list_detail"]
        .as_array()
        .expect("detail");
    let queued = details
        .iter()
        .find(|s| s["subject"] == "mon.b")
        .expect("mon.b detail");
    assert_eq!(queued["qgroup"], "workers");
    assert_eq!(queued["cid"], cid);

    let one = get_json(port, &format!("/connz?cid={cid}"));
    assert_eq!(one["connections"][0]["cid"], cid);
    assert_eq!(get_json(port, "/connz?cid=999999")["num_connections"], 0);

    let s = get_json(port, "/subsz");
    assert!(s["num_subscriptions"].as_u64().expect("num_subscriptions") >= 2);
    assert!(
        s.get("server_id").is_none(),
        "2.9.10 omits it without a list"
    );
    let t = get_json(port, "/subsz?subs=1&test=mon.a");
    assert_eq!(t["subscriptions_list"][0]["subject"], "mon.a");
    assert_eq!(t["subscriptions_list"][0]["account"], "$G");

    drop(sub_a);
    drop(sub_b);
    client.drain().await.expect("drain");
    let closed = wait_json(port, "/connz?state=closed", |v| v["total"] == 1).await;
    let gone = &closed["connections"][0];
    assert_eq!(closed["total"], 1, "{closed:#}");
    assert_eq!(gone["cid"], cid);
    assert_eq!(gone["reason"], "Client Closed");
    assert!(gone["stop"].is_string());
    let any = get_json(port, "/connz?state=any&sort=uptime");
    assert_eq!(any["total"], 1);
}

#[test]
fn bad_requests_get_go_errors_not_crashes() {
    let (_server, port) = natsd_with_monitor();
    let r = get(port, "/connz?sort=bad");
    assert_eq!(r.status, 400);
    assert_eq!(r.body, "invalid sorting option: bad");
    assert!(r
        .header("Content-Type")
        .expect("content type")
        .starts_with("text/plain"));
    assert_eq!(get(port, "/connz?state=nope").status, 400);
    assert_eq!(get(port, "/connz?limit=x").status, 400);
    assert_eq!(get(port, "/subsz?test=a.*").status, 400);
    assert_eq!(get(port, "/nope").status, 404);
    assert_eq!(raw_request(port, b"\x01\x02garbage\r\n\r\n").status, 400);
    // Past Go's 1 MiB MaxHeaderBytes (and the 4 KiB its reader allows over it).
    let huge = format!(
        "GET /varz HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(1_100_000)
    );
    assert_eq!(raw_request(port, huge.as_bytes()).status, 431);
    // Still serving after all that.
    let h = get(port, "/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.body, r#"{"status":"ok"}"#);
    assert_eq!(h.header("Content-Type"), Some("application/json"));
    assert_eq!(get(port, "/healthz?js-enabled-only=true").status, 200);
    assert_eq!(get(port, "/healthz?js-server-only=1").status, 200);
}

#[test]
fn every_endpoint_answers_with_its_shape() {
    let (_server, port) = natsd_with_monitor();
    let index = get(port, "/");
    assert_eq!(index.status, 200);
    assert!(index.body.contains("varz"));
    assert_eq!(get_json(port, "/routez")["num_routes"], 0);
    assert!(get_json(port, "/routez")["routes"].is_array());
    assert!(get_json(port, "/gatewayz")["outbound_gateways"].is_object());
    assert!(get_json(port, "/leafz")["leafs"].is_null());
    let acc = get_json(port, "/accountz");
    assert_eq!(acc["accounts"][0], "$G");
    assert_eq!(
        get_json(port, "/accountz?acc=$G")["account_detail"]["account_name"],
        "$G"
    );
    assert_eq!(get(port, "/accountz?acc=nope").status, 400);
    assert!(get_json(port, "/accstatz")["account_statz"].is_array());
    assert_eq!(
        get_json(port, "/accstatz?unused=1")["account_statz"][0]["acc"],
        "$G"
    );
    assert_eq!(get_json(port, "/jsz")["disabled"], true);
    assert!(get_json(port, "/subscriptionsz")["num_subscriptions"].is_u64());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_server, port) = natsd_with_monitor();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    assert_eq!(buf.matches("HTTP/1.1 200 OK").count(), 2, "{buf}");
}

#[test]
fn base_path_prefixes_every_endpoint() {
    let server = Server::natsd_with_config("http_base_path: /mon\n", &["-m", "-1"]);
    let port = http_port(&server);
    assert_eq!(get(port, "/varz").status, 404);
    assert_eq!(get_json(port, "/mon/varz")["http_base_path"], "/mon");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (server, port) = natsd_with_monitor();
    let client = connect(&server.url()).await;
    client
        .publish("m.x", Bytes::from_static(b"hi"))
        .await
        .expect("publish");
    round_trip(&client).await;
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("Content-Type")
        .expect("content type")
        .starts_with("text/plain; version=0.0.4"));
    let mut values = std::collections::HashMap::new();
    for line in r.body.lines() {
        if line.starts_with('#') || line.is_empty() {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            assert!(
                parts.len() >= 3 && matches!(parts[1], "HELP" | "TYPE"),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("value");
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        values.entry(name.to_string()).or_insert(v);
    }
    assert_eq!(values["gnatsd_varz_connections"], 1.0);
    assert!(values["gnatsd_varz_in_msgs"] >= 2.0);
    assert!(values["gnatsd_varz_out_msgs"] >= 1.0);
    assert!(values.contains_key("gnatsd_varz_subscriptions"));
    assert!(values.contains_key("gnatsd_varz_slow_consumers"));
    assert!(values.contains_key("gnatsd_connz_in_msgs"));
}

/// Every key path of a JSON value (objects recursively, the first element
/// of arrays), without values.
pub(crate) fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}/{k}");
                out.insert(p.clone());
                key_paths(v, &p, out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                key_paths(first, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Runs the same workload against a server and returns the JSON of each
/// compared endpoint.
async fn workload(server: &Server) -> Vec<(String, Value)> {
    let port = http_port(server);
    let client = ConnectOptions::new()
        .name("shape")
        .connect(server.url())
        .await
        .expect("connect");
    let _sub = client.subscribe("shape.a").await.expect("subscribe");
    round_trip(&client).await;
    let mut out = Vec::new();
    for target in [
        "/varz",
        "/connz",
        "/connz?subs=detail",
        "/connz?subs=1",
        "/subsz",
        "/healthz",
        "/routez",
        "/gatewayz",
        "/leafz",
        "/accstatz?unused=1",
    ] {
        out.push((target.to_string(), get_json(port, target)));
    }
    out
}

#[tokio::test]
async fn key_sets_match_nats_server() {
    let Some(reference) = Server::reference(&["-m", "-1"]) else {
        return;
    };
    let server = Server::natsd(&["-m", "-1"]);
    if reference.bin() == server.bin() {
        return;
    }
    let ours = workload(&server).await;
    let theirs = workload(&reference).await;
    for ((target, a), (_, b)) in ours.iter().zip(&theirs) {
        let (mut ka, mut kb) = (BTreeSet::new(), BTreeSet::new());
        key_paths(a, "", &mut ka);
        key_paths(b, "", &mut kb);
        // natsd's own figures live under `natsd`; nothing else may differ, but for the fields
        // nats-server 2.15.1 has and natsd does not have yet.
        ka.retain(|k| !k.starts_with("/natsd"));
        kb.retain(|k| !reference_only(target, k));
        assert_eq!(ka, kb, "{target}: natsd {a:#} vs nats-server {b:#}");
    }
}

/// Monitoring fields nats-server 2.15.1 sends and natsd (as 2.9.10) does not: `(endpoint,
/// key path)`, the path covering what is under it.
const REFERENCE_ONLY: &[(&str, &str)] = &[
    ("/accstatz", "/account_statz[]/name"),
    ("/accstatz", "/account_statz[]/num_subscriptions"),
    ("/accstatz", "/account_statz[]/received/gateways"),
    ("/accstatz", "/account_statz[]/received/leafs"),
    ("/accstatz", "/account_statz[]/received/routes"),
    ("/accstatz", "/account_statz[]/sent/gateways"),
    ("/accstatz", "/account_statz[]/sent/leafs"),
    ("/accstatz", "/account_statz[]/sent/routes"),
    ("/subsz", "/server_id"),
    ("/subsz", "/now"),
    ("/subsz", "/total"),
    ("/subsz", "/offset"),
    ("/subsz", "/limit"),
    ("/varz", "/config_digest"),
    ("/varz", "/disk_io_wait_stats"),
    ("/varz", "/feature_flags"),
    ("/varz", "/git_commit"),
    ("/varz", "/in_client_bytes"),
    ("/varz", "/in_client_msgs"),
    ("/varz", "/out_client_bytes"),
    ("/varz", "/out_client_msgs"),
    ("/varz", "/slow_consumer_stats"),
    ("/varz", "/stale_connection_stats"),
    ("/varz", "/stale_connections"),
    ("/varz", "/stalled_clients"),
];

fn reference_only(target: &str, path: &str) -> bool {
    REFERENCE_ONLY.iter().any(|(endpoint, known)| {
        target.starts_with(endpoint) && (path == *known || path.starts_with(&format!("{known}/")))
    })
}

pub(crate) const HTTPS_MONITOR: &str = "Starting https monitor on ";

fn cert_path(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("certs")
        .join(name)
        .display()
        .to_string()
}

/// A `tls {}` block with the test server certificate, plus `extra` lines.
pub(crate) fn tls_block(extra: &str) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{extra}\n}}\n",
        cert_path("server-cert.pem"),
        cert_path("server-key.pem")
    )
}

/// The port from the log line starting with `prefix`.
pub(crate) fn logged_port(server: &Server, prefix: &str) -> u16 {
    let log = server.log_contents();
    let line = log
        .lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in log:\n{log}"));
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// A TLS client trusting only the test CA.
fn tls_client() -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_path("ca.pem")).expect("read ca.pem") {
        roots.add(cert.expect("parse ca.pem")).expect("add CA");
    }
    // ring explicitly: async-nats brings a second provider into this crate.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// GET `target` over TLS (server name `localhost`), reading to the end.
pub(crate) fn https_get(port: u16, target: &str) -> Reply {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(tls_client(), name).expect("TLS client");
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect to https monitor");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).expect("write request");
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf)
        .expect("read reply to close_notify");
    parse_reply(&String::from_utf8_lossy(&buf))
}

/// Both servers serve `/varz` over HTTPS on `-ms -1` with the `tls {}`
/// certificate, and only HTTPS: no plain http monitor, and plain HTTP on the
/// port gets no answer.
#[test]
fn https_monitor_serves_varz_over_tls() {
    let conf = tls_block("");
    let mut servers = vec![Server::natsd_with_config(&conf, &["-ms", "-1"])];
    servers.extend(Server::reference_with_config(&["-ms", "-1"], Some(&conf)));
    for server in servers {
        let who = format!("{:?}", server.kind());
        let port = logged_port(&server, HTTPS_MONITOR);
        assert!(
            !server.log_contents().contains(HTTP_MONITOR),
            "{who}: http monitor started too"
        );
        let r = https_get(port, "/varz");
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        let v = r.json();
        assert_eq!(v["port"], server.port(), "{who}");
        assert_eq!(v["https_port"], -1, "{who}");
        assert_eq!(v["http_port"], 0, "{who}");
        assert_eq!(https_get(port, "/healthz").json()["status"], "ok", "{who}");

        let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        plain.set_read_timeout(Some(WAIT)).expect("timeout");
        plain
            .write_all(b"GET /varz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("write");
        let mut buf = Vec::new();
        let _ = plain.read_to_end(&mut buf);
        assert!(
            !String::from_utf8_lossy(&buf).contains("server_id"),
            "{who}: plain HTTP answered on the https port"
        );
    }
}

/// `verify: true` makes clients present certificates, but the monitor asks
/// for none (nats-server clears client auth for monitoring).
#[test]
fn https_monitor_asks_no_client_certificate() {
    let conf = tls_block(&format!(
        "  ca_file: \"{}\"\n  verify: true",
        cert_path("ca.pem")
    ));
    let mut servers = vec![Server::natsd_with_config(&conf, &["-ms", "-1"])];
    servers.extend(Server::reference_with_config(&["-ms", "-1"], Some(&conf)));
    for server in servers {
        let port = logged_port(&server, HTTPS_MONITOR);
        let r = https_get(port, "/varz");
        assert_eq!(r.status, 200, "{:?}: {}", server.kind(), r.body);
    }
}

/// Start a server binary expected to stop at once; its output.
fn failed_start(bin: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run server");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{}: started\n{text}", bin.display());
    text
}

/// As nats-server: `-ms` without TLS, or both `-m` and `-ms`, stops the start
/// with the same fatal line.
#[test]
fn https_monitor_refuses_to_start_without_tls_or_with_http() {
    let mut bins = vec![natsd_tests::natsd_bin()];
    let reference = std::path::PathBuf::from("/usr/sbin/nats-server");
    if reference.exists() {
        bins.push(reference);
    }
    let conf_dir = natsd_tests::TempDir::new();
    let conf = conf_dir.path().join("tls.conf");
    std::fs::write(&conf, tls_block("")).expect("write conf");
    let conf = conf.display().to_string();
    for bin in &bins {
        let text = failed_start(bin, &["-ms", "-1"]);
        assert!(
            text.contains("[FTL] Can't start monitoring: TLS cert and key required for HTTPS"),
            "{}: {text}",
            bin.display()
        );
        let text = failed_start(bin, &["-c", &conf, "-m", "-1", "-ms", "18443"]);
        assert!(
            text.contains(
                "[FTL] Can't start monitoring: can't specify both HTTP (-1) and HTTPs (18443) ports"
            ),
            "{}: {text}",
            bin.display()
        );
    }
}
