//! Command-line options and the server URL.
use std::fmt;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Hard cap on a run's measured phase when `--duration` is not given.
pub const DURATION_MAX_DEFAULT: Duration = Duration::from_secs(60);
/// Message count when neither `--msgs` nor `--duration` is given.
pub const MSGS_DEFAULT: u64 = 1_000_000;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Publishers only, no subscriber: how fast the server takes PUBs.
    Pub,
    /// One publisher, one subscriber.
    Pubsub,
    /// One publisher, N subscribers on the same subject (each gets every message).
    Fanout,
    /// N publishers, one subscriber.
    Fanin,
    /// One publisher, N subscribers in one queue group (each message to one of them).
    Queue,
    /// Sequential request/reply round trips against one echoing replier.
    Reqrep,
    /// N idle connections: the server's resident memory per connection.
    Idle,
    /// JetStream: publish into a fresh stream, waiting for each pub ack.
    JsSync,
    /// JetStream: publish into a fresh stream with `--window` acks in flight.
    JsAsync,
    /// JetStream: store `--msgs` messages, then read them back through a
    /// durable pull consumer (`--window` per request), acking each unless
    /// `--no-ack`; or, with `--push`, through an ordered push consumer; or,
    /// with `--push-ack`, through a durable push consumer acking each.
    JsConsume,
}

impl Scenario {
    /// The scenario's name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pub => "pub",
            Scenario::Pubsub => "pubsub",
            Scenario::Fanout => "fanout",
            Scenario::Fanin => "fanin",
            Scenario::Queue => "queue",
            Scenario::Reqrep => "reqrep",
            Scenario::Idle => "idle",
            Scenario::JsSync => "js-sync",
            Scenario::JsAsync => "js-async",
            Scenario::JsConsume => "js-consume",
        }
    }

    /// Publishers and subscribers when `--pubs`/`--subs` are not given.
    pub fn default_clients(self) -> (usize, usize) {
        match self {
            Scenario::Pub | Scenario::JsSync | Scenario::JsAsync => (1, 0),
            Scenario::JsConsume => (0, 1),
            Scenario::Pubsub | Scenario::Reqrep => (1, 1),
            Scenario::Fanout | Scenario::Queue => (1, 4),
            Scenario::Fanin => (4, 1),
            Scenario::Idle => (0, 0),
        }
    }
}

/// natsd-bench: a load generator for NATS servers (natsd, nats-server, ...).
///
/// Every run is bounded by a message count and a duration and targets only
/// the server given.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Opts {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Server URL: nats://[user:pass@|token@]host[:port].
    #[arg(long, short = 's', default_value = "nats://127.0.0.1:4222")]
    pub server: String,
    /// Messages to publish in total (split across publishers); for reqrep,
    /// round trips. Default 1,000,000 unless only --duration is given.
    #[arg(long, short = 'n')]
    pub msgs: Option<u64>,
    /// Stop publishing after this many seconds (default cap: 60).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Number of publishers (default by scenario).
    #[arg(long)]
    pub pubs: Option<usize>,
    /// Number of subscribers (default by scenario).
    #[arg(long)]
    pub subs: Option<usize>,
    /// Subject to use (default: a fresh `bench.<pid>.<n>`).
    #[arg(long)]
    pub subject: Option<String>,
    /// Connections for the idle scenario.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Seconds to hold idle connections before measuring memory.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// JetStream scenarios: the stream's storage.
    #[arg(long, value_enum, default_value = "file")]
    pub storage: crate::js::Storage,
    /// js-async: pub acks in flight; js-consume: messages per pull request.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// js-consume: the consumer does not ask for acks (`ack_policy` none).
    #[arg(long)]
    pub no_ack: bool,
    /// js-consume: read through an ordered push consumer (ephemeral, no acks, flow control
    /// and idle heartbeats, as the clients' ordered consumers) instead of pulling.
    #[arg(long)]
    pub push: bool,
    /// js-consume: read through a durable push consumer with explicit acks, flow control and
    /// idle heartbeats (as a client's `Subscribe` with those options), acking each message.
    #[arg(long, conflicts_with = "push")]
    pub push_ack: bool,
    /// User name.
    #[arg(long)]
    pub user: Option<String>,
    /// Password.
    #[arg(long)]
    pub password: Option<String>,
    /// Authentication token.
    #[arg(long)]
    pub token: Option<String>,
    /// Use TLS (not supported yet: reports an error).
    #[arg(long)]
    pub tls: bool,
    /// Seconds without progress after publishers finish before the missing
    /// messages are reported lost.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// Server process id: report its CPU per delivered message and its RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Subscribers connect to these servers (comma-separated URLs, round-robin) instead of
    /// `--server`: a cluster run, publishers on one node and subscribers on others. The run
    /// starts once every subscriber's node is routed to.
    #[arg(long, value_delimiter = ',')]
    pub sub_server: Vec<String>,
    /// The cluster's other server process ids (comma-separated): their CPU is added to
    /// `--server-pid`'s.
    #[arg(long, value_delimiter = ',')]
    pub peer_pids: Vec<u32>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print a CSV header and one row.
    #[arg(long)]
    pub csv: bool,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl Opts {
    /// The message bound and time bound of the measured phase.
    pub fn bounds(&self) -> Result<(u64, Duration), String> {
        let duration = match self.duration {
            None => DURATION_MAX_DEFAULT,
            Some(d) if d.is_finite() && d > 0.0 => Duration::from_secs_f64(d),
            Some(d) => return Err(format!("--duration must be positive, got {d}")),
        };
        let msgs = match (self.msgs, self.duration) {
            (Some(0), _) => return Err("--msgs must be at least 1".into()),
            (Some(n), _) => n,
            (None, Some(_)) => u64::MAX,
            (None, None) => MSGS_DEFAULT,
        };
        Ok((msgs, duration))
    }

    /// Publishers and subscribers for this run.
    pub fn clients(&self) -> (usize, usize) {
        let (p, s) = self.scenario.default_clients();
        (self.pubs.unwrap_or(p), self.subs.unwrap_or(s))
    }
}

/// Where to connect and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The URL asked for TLS (`tls://`).
    pub tls: bool,
    /// User from `user:pass@`.
    pub user: Option<String>,
    /// Password from `user:pass@`.
    pub pass: Option<String>,
    /// Token from `token@`.
    pub token: Option<String>,
}

impl ServerUrl {
    /// `host:port` for `TcpStream::connect` (IPv6 bracketed).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls" } else { "nats" };
        write!(f, "{scheme}://{}", self.addr())
    }
}

/// Parses `[nats://|tls://][user:pass@|token@]host[:port][/]`, as the NATS
/// clients do; the port defaults to 4222.
pub fn parse_url(s: &str) -> Result<ServerUrl, String> {
    let (tls, rest) = match s.split_once("://") {
        None => (false, s),
        Some(("nats", r)) => (false, r),
        Some(("tls", r)) => (true, r),
        Some((scheme, _)) => return Err(format!("unsupported URL scheme {scheme:?} in {s:?}")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, pass, token) = match userinfo {
        None => (None, None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string()), None),
            None => (None, None, Some(u.to_string())),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(format!("junk after ']' in {s:?}")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in {s:?}"));
    }
    let port = match port {
        None => 4222,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("bad port {p:?} in {s:?}"))?,
    };
    Ok(ServerUrl {
        host: host.to_string(),
        port,
        tls,
        user,
        pass,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Opts {
        Opts::try_parse_from(std::iter::once("natsd-bench").chain(args.iter().copied()))
            .expect("valid args")
    }

    #[test]
    fn url_forms() {
        let u = parse_url("nats://127.0.0.1:4223").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 4223, false));
        assert_eq!(u.addr(), "127.0.0.1:4223");
        let u = parse_url("localhost").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("localhost", 4222));
        let u = parse_url("tls://h:1/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("h", 1, true));
        let u = parse_url("nats://[::1]:5000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.addr()),
            ("::1", 5000, "[::1]:5000".into())
        );
        assert_eq!(parse_url("[::1]").unwrap().port, 4222);
        assert_eq!(u.to_string(), "nats://[::1]:5000");
    }

    #[test]
    fn url_credentials() {
        let u = parse_url("nats://alice:s3cr@t@h:4222").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.pass.as_deref(), Some("s3cr@t"));
        assert_eq!(u.host, "h");
        let u = parse_url("nats://tok@h").unwrap();
        assert_eq!((u.token.as_deref(), u.user), (Some("tok"), None));
    }

    #[test]
    fn url_errors() {
        for bad in [
            "http://h:1",
            "nats://:4222",
            "nats://h:port",
            "nats://h:70000",
            "[::1",
            "[::1]x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_default_msgs_and_cap() {
        let o = opts(&["pubsub"]);
        assert_eq!(o.bounds().unwrap(), (MSGS_DEFAULT, DURATION_MAX_DEFAULT));
        let o = opts(&["pub", "--duration", "2.5"]);
        assert_eq!(o.bounds().unwrap(), (u64::MAX, Duration::from_millis(2500)));
        let o = opts(&["pub", "--msgs", "10", "--duration", "1"]);
        assert_eq!(o.bounds().unwrap(), (10, Duration::from_secs(1)));
        assert!(opts(&["pub", "--msgs", "0"]).bounds().is_err());
        assert!(opts(&["pub", "--duration", "0"]).bounds().is_err());
    }

    #[test]
    fn client_counts_by_scenario() {
        assert_eq!(opts(&["pub"]).clients(), (1, 0));
        assert_eq!(opts(&["fanout"]).clients(), (1, 4));
        assert_eq!(opts(&["fanin", "--pubs", "8"]).clients(), (8, 1));
        assert_eq!(opts(&["queue", "--subs", "3"]).clients(), (1, 3));
    }

    #[test]
    fn flags_parse() {
        let o = opts(&[
            "reqrep",
            "-s",
            "nats://h:1",
            "--size",
            "1024",
            "--json",
            "--server-pid",
            "42",
            "--user",
            "u",
            "--password",
            "p",
            "--token",
            "t",
            "--tls",
        ]);
        assert_eq!(o.scenario, Scenario::Reqrep);
        assert_eq!(
            (o.size, o.json, o.server_pid, o.tls),
            (1024, true, Some(42), true)
        );
        assert_eq!(o.server, "nats://h:1");
        assert!(Opts::try_parse_from(["natsd-bench", "pub", "--json", "--csv"]).is_err());
        assert!(Opts::try_parse_from(["natsd-bench", "nosuch"]).is_err());
    }
}
