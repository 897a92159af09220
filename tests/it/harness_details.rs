//! What client libraries and their test harnesses read from a server besides the protocol: the
//! release it announces (INFO `version`, `api_lvl`, `--version`) and whether the features
//! clients gate on that release work; the ports file; the dual-stack listener; the log lines
//! for config errors, fatal start-up errors, signals and the JetStream banner; and the `-V`
//! protocol trace. Each is checked against natsd, and against the reference nats-server where
//! it applies.

use std::path::Path;

use bytes::Bytes;
use natsd_tests::{RawConn, Server, TempDir};
use serde_json::{json, Value};

use crate::{connect, next_msg, WAIT};

/// The nats-server release natsd announces.
const ANNOUNCED: &str = "2.11.0";

/// A raw JetStream API request; the reply parsed as JSON.
async fn request(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let msg = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: request timed out"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&msg.payload).expect("JSON reply")
}

/// Panics with the reply when it carries a JetStream API error.
fn ok(bin: &std::path::Path, what: &str, reply: Value) -> Value {
    assert!(reply.get("error").is_none(), "{bin:?}: {what}: {reply}");
    reply
}

#[test]
fn info_announces_the_release_and_its_api_level() {
    let server = Server::natsd(&[]);
    let info = RawConn::connect_only(&server.addr()).read_info();
    assert_eq!(info["version"], ANNOUNCED, "{info}");
    assert_eq!(info["api_lvl"], 1, "{info}");
    assert_eq!(info["natsd"], env!("CARGO_PKG_VERSION"), "{info}");
    if let Some(reference) = Server::reference(&[]) {
        let info = RawConn::connect_only(&reference.addr()).read_info();
        assert!(info["api_lvl"].as_u64().is_some_and(|l| l >= 1), "{info}");
    }
}

#[test]
fn version_flag_prints_nats_servers_line_first() {
    let out = std::process::Command::new(natsd_tests::natsd_bin())
        .arg("--version")
        .output()
        .expect("run natsd --version");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().next(),
        Some(format!("nats-server: v{ANNOUNCED}").as_str())
    );
    if let Some(bin) = natsd_tests::reference_bin() {
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .expect("run nats-server --version");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("nats-server: v"), "{text}");
    }
}

/// The features nats.js gates on 2.10.0 and 2.11.0 (`core/src/semver.ts`), which natsd's
/// announcement lets clients use: stream metadata, `first_seq`, subject transforms,
/// compression, consumer limits; consumers with several filters and metadata through the
/// named create API; batch direct gets; priority groups; consumer pause; per-message TTLs.
#[tokio::test]
async fn features_clients_gate_on_the_announced_release_work() {
    let js = Server::natsd_and_reference_js();
    for server in &js.servers {
        let bin = server.bin();
        let client = connect(&server.url()).await;
        let created = ok(
            bin,
            "stream create",
            request(
                &client,
                "$JS.API.STREAM.CREATE.S",
                json!({
                    "name": "S", "subjects": ["in.>"], "storage": "file",
                    "metadata": {"owner": "tests"}, "first_seq": 10,
                    "subject_transform": {"src": "in.>", "dest": "st.>"},
                    "compression": "s2", "consumer_limits": {"max_ack_pending": 50},
                    "allow_direct": true, "allow_msg_ttl": true,
                }),
            )
            .await,
        );
        assert_eq!(created["config"]["metadata"]["owner"], "tests", "{bin:?}");
        assert_eq!(created["config"]["compression"], "s2", "{bin:?}");
        assert_eq!(created["state"]["first_seq"], 10, "{bin:?}");

        for (subject, ttl) in [("in.a", None), ("in.b", Some("1h"))] {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(ttl) = ttl {
                headers.insert("Nats-TTL", ttl);
            }
            let ack = tokio::time::timeout(
                WAIT,
                client.request_with_headers(subject.to_string(), headers, Bytes::from("x")),
            )
            .await
            .expect("publish timed out")
            .expect("publish");
            let ack: Value = serde_json::from_slice(&ack.payload).expect("JSON ack");
            assert!(ack.get("error").is_none(), "{bin:?}: {ack}");
        }

        // A batch direct get: both messages under their transformed subjects, then EOB.
        let inbox = client.new_inbox();
        let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
        client
            .publish_with_reply(
                "$JS.API.DIRECT.GET.S",
                inbox,
                Bytes::from(json!({"seq": 10, "batch": 5}).to_string()),
            )
            .await
            .expect("direct get");
        let subjects: Vec<String> = [next_msg(&mut sub).await, next_msg(&mut sub).await]
            .iter()
            .map(|m| {
                let h = m.headers.as_ref().expect("direct get headers");
                h.get("Nats-Subject").expect("Nats-Subject").to_string()
            })
            .collect();
        assert_eq!(subjects, ["st.a", "st.b"], "{bin:?}");
        let eob = next_msg(&mut sub).await;
        assert_eq!(
            eob.status.map(|s| s.as_u16()),
            Some(204),
            "{bin:?}: batch ends with EOB"
        );

        let consumer = ok(
            bin,
            "consumer create",
            request(
                &client,
                "$JS.API.CONSUMER.CREATE.S.C",
                json!({
                    "stream_name": "S", "action": "create",
                    "config": {
                        "name": "C", "durable_name": "C", "ack_policy": "explicit",
                        "filter_subjects": ["st.a", "st.b"], "metadata": {"k": "v"},
                        "priority_groups": ["g"], "priority_policy": "pinned_client",
                    },
                }),
            )
            .await,
        );
        assert_eq!(
            consumer["config"]["filter_subjects"],
            json!(["st.a", "st.b"]),
            "{bin:?}"
        );
        assert_eq!(consumer["config"]["metadata"]["k"], "v", "{bin:?}");
        assert_eq!(consumer["config"]["max_ack_pending"], 50, "{bin:?}");
        assert_eq!(consumer["num_pending"], 2, "{bin:?}");

        let paused = ok(
            bin,
            "consumer pause",
            request(
                &client,
                "$JS.API.CONSUMER.PAUSE.S.C",
                json!({"pause_until": "2999-01-01T00:00:00Z"}),
            )
            .await,
        );
        assert_eq!(paused["paused"], true, "{bin:?}: {paused}");
    }
}

/// The ports file's JSON with each server's own ports replaced by `PORT`/`MPORT`.
fn ports_file(server: &Server, dir: &Path, program: &str) -> Value {
    let pid = std::fs::read_to_string(server.pid_file()).expect("pid file");
    let path = dir.join(format!("{program}_{}.ports", pid.trim()));
    // nats-server writes the file from a goroutine once its listeners are up.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.is_empty() => break text,
            got if std::time::Instant::now() >= deadline => {
                panic!("{:?}: {}: {got:?}", server.bin(), path.display())
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    };
    let mut json: Value = serde_json::from_str(&text).expect("ports file JSON");
    let monitor = json["monitoring"][0]
        .as_str()
        .and_then(|u| u.rsplit(':').next())
        .expect("a monitoring URL")
        .to_string();
    for (key, port, shown) in [
        ("nats", server.port().to_string(), "PORT"),
        ("monitoring", monitor, "MPORT"),
    ] {
        for url in json[key].as_array_mut().expect("a URL list") {
            let replaced = url
                .as_str()
                .expect("a URL")
                .replace(&format!(":{port}"), &format!(":{shown}"));
            *url = Value::from(replaced);
        }
    }
    json
}

/// `--ports_file_dir`: `<argv[0] base name>_<pid>.ports` with every interface address for a
/// wildcard host, as nats-server 2.15.1 writes it; removed at shutdown.
#[test]
fn ports_file_named_and_filled_as_nats_server() {
    let dir = TempDir::new();
    let ports_dir = dir.path().display().to_string();
    let args = ["-a", "0.0.0.0", "-m", "-1", "--ports_file_dir", &ports_dir];
    let natsd = Server::natsd(&args);
    let ours = ports_file(&natsd, dir.path(), "natsd");
    assert_eq!(ours["nats"][0], "nats://127.0.0.1:PORT", "{ours}");
    assert_eq!(ours["monitoring"][0], "http://127.0.0.1:MPORT", "{ours}");
    // Started under nats-server's name, natsd names the file after it.
    let alias = dir.path().join("bin");
    std::fs::create_dir_all(&alias).expect("bin dir");
    std::os::unix::fs::symlink(natsd_tests::natsd_bin(), alias.join("nats-server"))
        .expect("symlink");
    let aliased = Server::with_bin(alias.join("nats-server"), &args);
    assert_eq!(ports_file(&aliased, dir.path(), "nats-server"), ours);
    if let Some(reference) = Server::reference(&args) {
        assert_eq!(ports_file(&reference, dir.path(), "nats-server"), ours);
    }
    let pid = std::fs::read_to_string(natsd.pid_file()).expect("pid file");
    drop(natsd);
    let gone = dir.path().join(format!("natsd_{}.ports", pid.trim()));
    assert!(!gone.exists(), "{} left behind", gone.display());
}

/// On the wildcard host (nats-server's default) the listener takes IPv6 clients too, as Go's
/// dual-stack listener does.
#[test]
fn wildcard_host_serves_ipv6_clients() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("NOTE: no IPv6 loopback on this machine; dual-stack check skipped");
        return;
    }
    let mut servers = vec![Server::natsd(&["-a", "0.0.0.0"])];
    servers.extend(Server::reference(&["-a", "0.0.0.0"]));
    for server in &servers {
        let mut conn = RawConn::connect(&format!("[::1]:{}", server.port()));
        assert!(conn.ping_pong().is_empty(), "{:?}", server.bin());
    }
}

/// The binaries to check: natsd, then the reference when it is installed.
fn binaries() -> Vec<std::path::PathBuf> {
    let mut all = vec![natsd_tests::natsd_bin()];
    all.extend(natsd_tests::reference_bin());
    all
}

/// A configuration syntax error, as nats-server prints it, and a non-zero exit.
#[test]
fn config_syntax_error_reads_as_nats_servers() {
    let dir = TempDir::new();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "port: 4222\nfoo {\n  bar: 1\n").expect("write conf");
    for bin in binaries() {
        let out = std::process::Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run the server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(": Parse error on line 4: 'Unexpected EOF processing map.'"),
            "{bin:?}: {stderr}"
        );
        assert!(!out.status.success(), "{bin:?}");
    }
}

/// The child's exit status, or `None` (after killing it) when it still runs after
/// [`natsd_tests::START_TIMEOUT`].
fn wait_exit(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + natsd_tests::START_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A JetStream store directory that is a file stops the server: `[FTL]`, exit code 1.
#[test]
fn store_dir_that_is_a_file_is_fatal() {
    let dir = TempDir::new();
    let file = dir.path().join("store");
    std::fs::write(&file, "not a directory").expect("write file");
    for bin in binaries() {
        let log = dir.path().join("server.log");
        let _ = std::fs::remove_file(&log);
        let mut child = std::process::Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(&file)
            .arg("-l")
            .arg(&log)
            .spawn()
            .expect("run the server");
        let status = wait_exit(&mut child);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{bin:?}: {text}");
        assert!(
            text.contains("[FTL] Can't start JetStream: storage directory is not a directory"),
            "{bin:?}: {text}"
        );
    }
}

/// `Using configuration file: <path>` at start, the JetStream limits as `64.00 MB`, and
/// `Trapped "terminated" signal` on SIGTERM.
#[test]
fn startup_banner_and_signal_lines() {
    let store = TempDir::new();
    let conf = format!(
        "jetstream {{ max_memory_store: 64MB, max_file_store: 1GB, store_dir: {:?} }}\n",
        store.path()
    );
    for server in Server::natsd_and_reference(&conf) {
        let log = server.log_contents();
        let using = format!(
            "[INF] Using configuration file: {}",
            server.config_path().display()
        );
        assert!(log.contains(&using), "{:?}: {log}", server.bin());
        assert!(
            log.contains("[INF]   Max Memory:      64.00 MB"),
            "{:?}: {log}",
            server.bin()
        );
        assert!(
            log.contains("[INF]   Max Storage:     1.00 GB"),
            "{:?}: {log}",
            server.bin()
        );
        server.signal("TERM");
        assert!(
            server.wait_for_log("[INF] Trapped \"terminated\" signal", WAIT),
            "{:?}: {}",
            server.bin(),
            server.log_contents()
        );
    }
}

/// `--cluster_listen` is taken (nats.rs's cluster harness passes it).
#[test]
fn cluster_listen_flag_is_accepted() {
    let server = Server::natsd(&["--cluster_listen", "nats://127.0.0.1:-1"]);
    assert!(server.raw().ping_pong().is_empty());
}

/// The `[TRC]` lines of a server's log, from `<<-`/`->>`/`<->` on, with each line's
/// `ip:port - cid:N - ` replaced by `cid - ` (the rest is compared as is).
fn trace_lines(server: &Server) -> Vec<String> {
    server
        .log_contents()
        .lines()
        .filter_map(|l| l.split_once("[TRC] ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(" - cid:"))
        .map(|(_, rest)| {
            let (_, tail) = rest.split_once(" - ").unwrap_or(("", rest));
            format!("cid - {tail}")
        })
        .collect()
}

#[test]
fn protocol_trace_reads_as_nats_servers() {
    let mut servers = vec![Server::natsd(&["-V"])];
    servers.extend(Server::reference(&["-V"]));
    let mut traces = Vec::new();
    for server in &servers {
        let mut c = RawConn::connect_only(&server.addr());
        c.read_info();
        c.send(concat!(
            "CONNECT {\"verbose\":false,\"name\":\"me\",\"lang\":\"python\",\"version\":\"1.2.3\",",
            "\"user\":\"u\",\"pass\":\"secret\",\"headers\":true}\r\n",
            "SUB foo 1\r\nSUB bar q 2\r\nPUB foo r 5\r\nhello\r\n",
            "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB empty 0\r\n\r\nUNSUB 1\r\n"
        ));
        c.ping_pong();
        c.shutdown_write();
        c.read_to_close(WAIT);
        assert!(
            server.wait_for_log("DELSUB 2", WAIT),
            "{}",
            server.log_contents()
        );
        traces.push(trace_lines(server));
    }
    let natsd = &traces[0];
    assert!(
        natsd.iter().any(|l| l.contains("\"pass\":\"[REDACTED]\"")),
        "{natsd:#?}"
    );
    assert!(!natsd.iter().any(|l| l.contains("secret")));
    assert!(natsd.contains(&"cid - \"v1.2.3:python:me\" - \"$G/user:u\" - ->> MSG_PAYLOAD: [\"NATS/1.0\\r\\n\\r\\nhi\"]".to_string()), "{natsd:#?}");
    if let Some(reference) = traces.get(1) {
        assert_eq!(natsd, reference);
    }
}
