//! Signals on a running natsd: SIGHUP reload, SIGUSR1 log reopen, SIGUSR2
//! lame duck, and `natsd --signal`. Raw TCP, so what the client is sent can
//! be checked exactly.
use std::fs;
use std::process::Command;
use std::time::Duration;

use natsd_tests::{RawConn, Server};

const WAIT: Duration = Duration::from_secs(5);

fn users_conf(password: &str) -> String {
    format!("authorization {{ users: [ {{ user: a, password: {password} }} ] }}\n")
}

fn connect_as(server: &Server, pass: &str) -> RawConn {
    let mut conn = server.raw();
    conn.send(format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"user\":\"a\",\"pass\":\"{pass}\"}}\r\n"
    ));
    conn
}

#[test]
fn reload_closes_clients_whose_credentials_stopped_matching() {
    let server = Server::natsd_with_config(&users_conf("old"), &[]);
    let mut before = connect_as(&server, "old");
    assert_eq!(String::from_utf8_lossy(&before.ping_pong()), "");

    fs::write(server.config_path(), users_conf("new")).expect("rewrite config");
    server.signal("HUP");
    assert!(
        server.wait_for_log("Reloaded: authorization", WAIT),
        "{}",
        server.log_contents()
    );
    let rest = before.expect_closed(WAIT);
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'Authorization Violation'\r\n"
    );

    let mut after = connect_as(&server, "new");
    assert_eq!(String::from_utf8_lossy(&after.ping_pong()), "");
    let mut stale = connect_as(&server, "old");
    let refused = stale.expect_closed(WAIT);
    assert_eq!(
        String::from_utf8_lossy(&refused),
        "-ERR 'Authorization Violation'\r\n"
    );
}

#[test]
fn reload_refuses_a_server_name_change_and_keeps_serving() {
    // The harness passes `-p`, which overrides a port in the file (flags win,
    // on reload too), so the fixed setting changed here is the server name.
    let server = Server::natsd_with_config("server_name: a\nmax_payload: 1024\n", &[]);
    fs::write(server.config_path(), "server_name: b\nmax_payload: 2048\n").expect("rewrite");
    server.signal("HUP");
    assert!(
        server.wait_for_log("config reload not supported for SERVER_NAME", WAIT),
        "{}",
        server.log_contents()
    );
    let mut conn = RawConn::connect_only(&server.addr());
    let info = conn.read_info();
    assert_eq!(
        info["max_payload"], 1024,
        "a refused reload changes nothing"
    );
    conn.send("CONNECT {\"verbose\":false}\r\n");
    assert_eq!(String::from_utf8_lossy(&conn.ping_pong()), "");
}

#[test]
fn reload_applies_new_limits_to_new_clients() {
    let server = Server::natsd_with_config("max_payload: 1024\n", &[]);
    fs::write(server.config_path(), "max_payload: 2048\n").expect("rewrite");
    server.signal("HUP");
    assert!(server.wait_for_log("Reloaded: max_payload", WAIT));
    let mut conn = RawConn::connect_only(&server.addr());
    assert_eq!(conn.read_info()["max_payload"], 2048);
}

#[test]
fn sigusr1_reopens_the_log_file() {
    let server = Server::natsd(&[]);
    let log = server.dir_log_path();
    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).expect("rotate");
    server.signal("USR1");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline && !log.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.wait_for_log("File log re-opened", WAIT),
        "new log: {:?}",
        fs::read_to_string(&log)
    );
}

#[test]
fn lame_duck_sends_ldm_info_closes_clients_and_stops_accepting() {
    let mut server = Server::natsd_with_config(
        "lame_duck_grace_period: \"1s\"\nlame_duck_duration: \"30s\"\n",
        &[],
    );
    let mut conn = server.raw();
    conn.send("CONNECT {\"verbose\":false,\"protocol\":1}\r\n");
    assert_eq!(String::from_utf8_lossy(&conn.ping_pong()), "");
    server.signal("USR2");
    let got = conn
        .read_until(b"\r\n", WAIT)
        .expect("an INFO announcing lame duck mode");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("INFO {"), "{text}");
    assert!(text.contains("\"ldm\":true"), "{text}");
    assert!(server.wait_for_log("Entering lame duck mode", WAIT));
    // The only client is first in line: closed when the grace period ends.
    conn.expect_closed(WAIT);
    assert!(
        std::net::TcpStream::connect(server.addr()).is_err(),
        "the listener is closed in lame duck mode"
    );
    assert!(!server.has_exited(), "runs until lame_duck_duration ends");
}

#[test]
fn signal_flag_reloads_the_server_named_by_its_pid_file() {
    let server = Server::natsd_with_config("max_payload: 1024\n", &[]);
    fs::write(server.config_path(), "max_payload: 4096\n").expect("rewrite");
    let status = Command::new(server.bin())
        .arg("--signal")
        .arg(format!("reload={}", server.pid_file().display()))
        .status()
        .expect("run natsd --signal");
    assert!(status.success());
    assert!(
        server.wait_for_log("Reloaded: max_payload", WAIT),
        "{}",
        server.log_contents()
    );
}
