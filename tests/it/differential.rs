//! Raw-protocol transcripts run against natsd and, when installed, the Go nats-server.
//!
//! Each case asserts two things: natsd's normalized transcript equals the reference server's
//! (when one is on PATH), and it equals the bytes nats-server 2.9.10 was observed to send
//! (FEATURES.md "Observed on nats-server 2.9.10"), so the truth holds on machines without Go.

use natsd_tests::{run_transcript, send, sync, Server, Step, Transcript};
use serde_json::Value;

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    conf: Option<&'static str>,
    steps: Vec<Step>,
    /// Observed on nats-server 2.9.10, after normalization.
    want: &'static str,
    /// Per connection: closed by the server.
    want_closed: &'static [bool],
}

fn steps<const N: usize>(parts: [&[Step]; N]) -> Vec<Step> {
    parts.concat()
}

fn run_case(case: &Case) -> Transcript {
    let server = match case.conf {
        Some(conf) => Server::natsd_with_config(conf, case.args),
        None => Server::natsd(case.args),
    };
    let got = run_transcript(&server.addr(), &case.steps);
    eprintln!(
        "{} on {}: closed={:?}\n{:?}",
        case.name,
        server.bin().display(),
        got.closed,
        got.out
    );
    if let Some(reference) = Server::reference_with_config(case.args, case.conf) {
        if reference.bin() != server.bin() {
            let want = run_transcript(&reference.addr(), &case.steps);
            assert_eq!(
                got.out, want.out,
                "{}: replies differ from nats-server",
                case.name
            );
            assert_eq!(
                got.closed, want.closed,
                "{}: close differs from nats-server",
                case.name
            );
            assert_eq!(
                got.info, want.info,
                "{}: INFO differs from nats-server",
                case.name
            );
        }
    }
    assert_eq!(
        got.out, case.want,
        "{}: replies differ from 2.9.10",
        case.name
    );
    assert_eq!(
        got.closed, case.want_closed,
        "{}: close differs from 2.9.10",
        case.name
    );
    got
}

const CONNECT_QUIET: &str = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
const CONNECT_HEADERS: &str =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n";

#[test]
fn info_shape_on_connect() {
    let case = Case {
        name: "info_shape_on_connect",
        args: &[],
        conf: None,
        steps: sync().to_vec(),
        want: "PONG\r\n",
        want_closed: &[false],
    };
    let got = run_case(&case);
    let info = got.info.expect("INFO on connect");
    let keys: Vec<&str> = info
        .as_object()
        .expect("INFO is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    // nats-server omits empty fields (auth_required, tls_*, jetstream); `api_lvl` is 2.11's;
    // the reference's `git_commit` and `xkey` are normalized away (`INFO_REFERENCE_ONLY`).
    let want = [
        "api_lvl",
        "client_id",
        "client_ip",
        "go",
        "headers",
        "host",
        "max_payload",
        "port",
        "proto",
        "server_id",
        "server_name",
        "version",
    ];
    assert_eq!(keys, want, "INFO keys: {info}");
    assert_eq!(info["proto"], Value::from(1));
    assert_eq!(info["headers"], Value::from(true));
    assert_eq!(info["max_payload"], Value::from(1_048_576));
}

macro_rules! transcript {
    ($name:ident, args: $args:expr, conf: $conf:expr, steps: [$($step:expr),* $(,)?], want: $want:expr, closed: $closed:expr $(,)?) => {
        #[test]
        fn $name() {
            run_case(&Case {
                name: stringify!($name),
                args: $args,
                conf: $conf,
                steps: steps([$(&$step[..]),*]),
                want: $want,
                want_closed: $closed,
            });
        }
    };
}

transcript!(connect_verbose_ok,
    args: &[], conf: None,
    steps: [[send("CONNECT {\"verbose\":true,\"pedantic\":false}\r\n")], sync()],
    want: "+OK\r\nPONG\r\n", closed: &[false]);

transcript!(ping_pong,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET)], sync(), sync()],
    want: "PONG\r\nPONG\r\n", closed: &[false]);

transcript!(sub_pub_msg_exact_bytes,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET),
             send("SUB foo 1\r\nSUB foo.* 2\r\nPUB foo 5\r\nhello\r\nPUB foo.bar reply.to 5\r\nworld\r\nPUB foo 0\r\n\r\n")],
            sync()],
    want: "MSG foo 1 5\r\nhello\r\nMSG foo.bar 2 reply.to 5\r\nworld\r\nMSG foo 1 0\r\n\r\nPONG\r\n", closed: &[false]);

transcript!(hpub_hmsg_exact_bytes,
    args: &[], conf: None,
    steps: [[send(CONNECT_HEADERS),
             send("SUB foo 1\r\nHPUB foo 24 26\r\nNATS/1.0\r\nA: 1\r\nA: 2\r\n\r\nhi\r\nHPUB foo rep 12 12\r\nNATS/1.0\r\n\r\n\r\n")],
            sync()],
    want: "HMSG foo 1 24 26\r\nNATS/1.0\r\nA: 1\r\nA: 2\r\n\r\nhi\r\nHMSG foo 1 rep 12 12\r\nNATS/1.0\r\n\r\n\r\nPONG\r\n", closed: &[false]);

transcript!(unsub_with_max,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET),
             send("SUB foo 7\r\nUNSUB 7 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\n")],
            sync()],
    want: "MSG foo 7 1\r\na\r\nMSG foo 7 1\r\nb\r\nPONG\r\n", closed: &[false]);

transcript!(unsub_max_already_reached_removes_at_once,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET),
             send("SUB foo 1\r\nPUB foo 1\r\na\r\n")], sync(),
            [send("UNSUB 1 1\r\nPUB foo 1\r\nb\r\n")], sync()],
    want: "MSG foo 1 1\r\na\r\nPONG\r\nPONG\r\n", closed: &[false]);

transcript!(unknown_op,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("FOO bar\r\n"), Step::Closed]],
    want: "-ERR 'Unknown Protocol Operation'\r\n", closed: &[true]);

transcript!(bad_subject_on_sub,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("SUB foo..bar 1\r\n")], sync(),
            [send("SUB foo.>.bar 2\r\n")], sync()],
    want: "-ERR 'Invalid Subject'\r\nPONG\r\n-ERR 'Invalid Subject'\r\nPONG\r\n", closed: &[false]);

transcript!(payload_too_big,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("PUB foo 1048577\r\n"), Step::Closed]],
    want: "-ERR 'Maximum Payload Violation'\r\n", closed: &[true]);

transcript!(payload_longer_than_declared,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("PUB foo 2\r\nabc\r\n"), Step::Closed]],
    want: "-ERR 'Unknown Protocol Operation'\r\n", closed: &[true]);

transcript!(control_line_too_long,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), Step::Send(long_sub_line()), Step::Closed]],
    want: "-ERR 'maximum control line exceeded'\r\n", closed: &[true]);

transcript!(pub_with_bad_size,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("PUB foo abc\r\n"), Step::Closed]],
    want: "", closed: &[true]);

transcript!(pub_with_negative_size,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("PUB foo -1\r\n"), Step::Closed]],
    want: "", closed: &[true]);

transcript!(auth_failure_wrong_password,
    args: &["--user", "a", "--pass", "b"], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"x\"}\r\n"), Step::Closed]],
    want: "-ERR 'Authorization Violation'\r\n", closed: &[true]);

transcript!(auth_success,
    args: &["--user", "a", "--pass", "b"], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"b\"}\r\n")], sync()],
    want: "PONG\r\n", closed: &[false]);

transcript!(auth_token_failure,
    args: &["--auth", "tok"], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"auth_token\":\"nope\"}\r\n"), Step::Closed]],
    want: "-ERR 'Authorization Violation'\r\n", closed: &[true]);

transcript!(ping_before_connect_on_auth_server,
    args: &["--user", "a", "--pass", "b"], conf: None,
    steps: [[send("PING\r\n"), Step::Closed]],
    want: "-ERR 'Authorization Violation'\r\n", closed: &[true]);

transcript!(no_responders_status,
    args: &[], conf: None,
    steps: [[send(CONNECT_HEADERS), send("SUB rep 1\r\nPUB nobody rep 2\r\nhi\r\n")], sync()],
    want: "HMSG rep 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nPONG\r\n", closed: &[false]);

transcript!(no_responders_without_headers_is_refused,
    args: &[], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"no_responders\":true}\r\n"), Step::Closed]],
    want: "-ERR 'no responders requires headers support'\r\n", closed: &[true]);

transcript!(verbose_before_connect,
    args: &[], conf: None,
    steps: [[send("SUB foo 1\r\nUNSUB 1\r\n")], sync()],
    want: "+OK\r\n+OK\r\nPONG\r\n", closed: &[false]);

transcript!(echo_false,
    args: &[], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB foo 1\r\n")], sync(),
            [Step::Conn(1), send(CONNECT_QUIET), send("SUB foo 2\r\n")], sync(),
            [Step::Conn(0), send("PUB foo 2\r\nhi\r\n")], sync(),
            [Step::Conn(1)], sync()],
    want: "PONG\r\n#1\r\nPONG\r\n#0\r\nPONG\r\n#1\r\nMSG foo 2 2\r\nhi\r\nPONG\r\n", closed: &[false, false]);

transcript!(hpub_to_non_headers_subscriber,
    args: &[], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB foo 1\r\n")], sync(),
            [Step::Conn(1), send(CONNECT_HEADERS),
             send("HPUB foo reply 12 15\r\nNATS/1.0\r\n\r\nabc\r\n")], sync(),
            [Step::Conn(0)], sync()],
    want: "PONG\r\n#1\r\nPONG\r\n#0\r\nMSG foo 1 reply 3\r\nabc\r\nPONG\r\n", closed: &[false, false]);

transcript!(hpub_without_headers_in_connect,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n"), Step::Closed]],
    want: "", closed: &[true]);

transcript!(pedantic_publish_to_wildcard,
    args: &[], conf: None,
    steps: [[send("CONNECT {\"verbose\":false,\"pedantic\":true}\r\nSUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\n")],
            sync()],
    want: "-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 2\r\nhi\r\nPONG\r\n", closed: &[false]);

transcript!(non_pedantic_wildcard_publish_is_literal,
    args: &[], conf: None,
    steps: [[send(CONNECT_QUIET), send("SUB foo.* 1\r\nSUB foo.bar 2\r\nPUB foo.* 2\r\nhi\r\n")],
            sync()],
    want: "MSG foo.* 1 2\r\nhi\r\nPONG\r\n", closed: &[false]);

transcript!(small_max_payload_from_config,
    args: &[], conf: Some("max_payload: 16\n"),
    steps: [[send(CONNECT_QUIET), send("SUB foo 1\r\nPUB foo 16\r\n0123456789abcdef\r\n")], sync(),
            [send("PUB foo 17\r\n"), Step::Closed]],
    want: "MSG foo 1 16\r\n0123456789abcdef\r\nPONG\r\n-ERR 'Maximum Payload Violation'\r\n", closed: &[true]);

/// `SUB <5000 x's> 1`: longer than the default 4096-byte max_control_line.
fn long_sub_line() -> Vec<u8> {
    format!("SUB {} 1\r\n", "x".repeat(5000)).into_bytes()
}
