//! The `natsd` binary's exit codes and output, for the paths that stop before
//! the server starts.
use std::process::{Command, Output};

fn natsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natsd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run natsd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

#[test]
fn version() {
    let out = natsd(&["-v"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!(
            "nats-server: v2.11.0\nnatsd: v{}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn help() {
    let out = natsd(&["-h"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("\nUsage: natsd [options]\n\nServer Options:\n"));
}

#[test]
fn unknown_flag() {
    let out = natsd(&["-xyz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.starts_with("flag provided but not defined: -xyz\n\nUsage: natsd [options]\n"));
}

fn temp_conf(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("natsd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write conf");
    path.display().to_string()
}

/// As nats-server 2.9.10 `-t -c`: the verdict on stderr, exit 0 or 1.
#[test]
fn check_config_file() {
    let good = temp_conf("good.conf", "port: 4333\nauthorization { token: t }\n");
    let out = natsd(&["-t", "-c", &good]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!("natsd: configuration file {good} is valid\n")
    );
    let bad = temp_conf("bad.conf", "port: 4333\nfoo: 1\n");
    let out = natsd(&["-t", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("natsd: {bad}:2:1: unknown field \"foo\"\n")
    );
}

#[test]
fn missing_config_file() {
    let out = natsd(&["-c", "/nonexistent/natsd.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "natsd: open /nonexistent/natsd.conf: no such file or directory\n"
    );
}

/// `[pid] 2006/01/02 15:04:05.000000 [LBL] message`: returns (pid, label, message).
fn split_line(line: &str) -> (u32, &str, &str) {
    let (pid, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once("] "))
        .expect("[pid] prefix");
    let (time, rest) = rest.split_at(26);
    let shape: String = time
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999/99/99 99:99:99.999999", "time in {line:?}");
    let (label, message) = rest
        .strip_prefix(" [")
        .and_then(|r| r.split_once("] "))
        .expect("[LBL] after the time");
    (pid.parse().expect("numeric pid"), label, message)
}

#[test]
fn log_file_lines_have_nats_server_shape() {
    let dir = std::env::temp_dir();
    let log = dir.join(format!("natsd-cli-test-{}.log", std::process::id()));
    let conf = dir.join(format!("natsd-cli-test-{}.conf", std::process::id()));
    std::fs::write(&conf, "gateway {}\n").unwrap();
    let _ = std::fs::remove_file(&log);
    let out = natsd(&[
        "-c",
        conf.to_str().unwrap(),
        "-p",
        "-1",
        "-l",
        log.to_str().unwrap(),
        "-P",
        "/nonexistent-dir/natsd.pid",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "with -l nothing goes to stderr");
    let contents = std::fs::read_to_string(&log).expect("log file");
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_file(&conf).unwrap();
    let lines: Vec<_> = contents.lines().map(split_line).collect();
    assert_eq!(lines.len(), 2, "{contents}");
    assert_eq!(lines[0].0, lines[1].0);
    assert_eq!(lines[0].1, "WRN");
    assert_eq!(lines[0].2, "gateway is not supported yet, ignoring it");
    assert_eq!(lines[1].1, "FTL");
    assert!(lines[1]
        .2
        .starts_with("Could not write pidfile: /nonexistent-dir/natsd.pid: "));
}

#[test]
fn no_logtime() {
    let out = natsd(&["-T=false", "-P", "/nonexistent-dir/natsd.pid"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let (pid, line) = err.split_once(' ').unwrap();
    assert!(pid.starts_with('[') && pid.ends_with(']'));
    assert!(line.starts_with("[FTL] Could not write pidfile: "), "{err}");
}
