//! Server options: what flags and the config file set.
//!
//! Field names follow nats-server's config keys, so a reader can map each to
//! its `nats-server.conf` key or flag. [`Options::apply_conf`] maps a parsed
//! [`conf::Map`] onto them; command-line flags are applied afterwards by the
//! caller, so they override the file, as in nats-server.
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conf::{self, ConfError, Entry, ErrorKind, Map, Value};

/// Default client port.
pub const DEFAULT_PORT: u16 = 4222;
/// Default listen host.
pub const DEFAULT_HOST: &str = "0.0.0.0";

/// Everything the server is told at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `host`/`net`/`-a`: interface to listen on.
    pub host: String,
    /// `port`/`-p`: client port; 0 picks a random port (`-p -1` on the command line).
    pub port: u16,
    /// `server_name`/`-n`: defaults to the server id.
    pub server_name: Option<String>,
    /// `client_advertise`: host:port advertised to clients.
    pub client_advertise: Option<String>,
    /// `--user`: single-user auth.
    pub user: Option<String>,
    /// `--pass`: single-user auth.
    pub pass: Option<String>,
    /// `--auth`: token auth.
    pub token: Option<String>,
    /// `authorization.timeout`: time a client has to send CONNECT when auth is on.
    pub auth_timeout: Duration,
    /// `max_payload`.
    pub max_payload: usize,
    /// `max_control_line`.
    pub max_control_line: usize,
    /// `max_pending`: outbound bytes pending per client before it is a slow consumer.
    pub max_pending: usize,
    /// `max_connections`.
    pub max_connections: usize,
    /// `max_subscriptions` per client; 0 = unlimited.
    pub max_subscriptions: usize,
    /// `ping_interval`.
    pub ping_interval: Duration,
    /// `ping_max`: outstanding PINGs before `Stale Connection`.
    pub ping_max: u32,
    /// `write_deadline`: a write blocked this long closes the client as a slow consumer.
    pub write_deadline: Duration,
    /// `debug`/`-D`.
    pub debug: bool,
    /// `trace`/`-V`.
    pub trace: bool,
    /// `logtime`/`-T`.
    pub logtime: bool,
    /// `logtime_utc`.
    pub logtime_utc: bool,
    /// `log_file`/`-l`.
    pub log_file: Option<PathBuf>,
    /// `pid_file`/`-P`.
    pub pid_file: Option<PathBuf>,
    /// `ports_file_dir`.
    pub ports_file_dir: Option<PathBuf>,
    /// natsd-specific: number of reactor threads; 0 = one per core.
    pub reactors: usize,
    /// `max_closed_clients`: closed connections remembered for monitoring.
    pub max_closed_clients: usize,
    /// `-c`: the configuration file, if any.
    pub config_file: Option<PathBuf>,
    /// `log_size_limit`/`logfile_size_limit`/`--log_size_limit`: bytes before
    /// the log file is rotated; 0 = never. Kept, not acted on yet.
    pub log_size_limit: i64,
    /// `lame_duck_duration`: kept for lame-duck mode.
    pub lame_duck_duration: Duration,
    /// `lame_duck_grace_period`: kept for lame-duck mode.
    pub lame_duck_grace_period: Duration,
    /// `no_auth_user`: kept for multi-user auth.
    pub no_auth_user: Option<String>,
    /// `system_account`/`system`: kept for accounts.
    pub system_account: Option<String>,
    /// `http`/`https` host part: kept for monitoring.
    pub http_host: Option<String>,
    /// `http_port`/`monitor_port`/`http` port part; 0 = off, -1 = random. Kept for monitoring.
    pub http_port: i32,
    /// `https_port`/`https` port part; 0 = off. Kept for monitoring.
    pub https_port: i32,
    /// `http_base_path`: kept for monitoring.
    pub http_base_path: Option<String>,
    /// `store_dir`: kept for JetStream.
    pub store_dir: Option<PathBuf>,
    /// Config blocks accepted but not acted on yet (`tls`, `accounts`,
    /// `jetstream`, `cluster`, ...), as written, for the issues that use them.
    pub conf_blocks: Vec<Entry>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            server_name: None,
            client_advertise: None,
            user: None,
            pass: None,
            token: None,
            auth_timeout: Duration::from_secs(2),
            max_payload: 1024 * 1024,
            max_control_line: 4096,
            max_pending: 64 * 1024 * 1024,
            max_connections: 64 * 1024,
            max_subscriptions: 0,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            write_deadline: Duration::from_secs(10),
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            pid_file: None,
            ports_file_dir: None,
            reactors: 0,
            max_closed_clients: 10_000,
            config_file: None,
            log_size_limit: 0,
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            no_auth_user: None,
            system_account: None,
            http_host: None,
            http_port: 0,
            https_port: 0,
            http_base_path: None,
            store_dir: None,
            conf_blocks: Vec::new(),
        }
    }
}

impl Options {
    /// Whether clients must authenticate.
    pub fn auth_required(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }
}

/// Everything wrong with a configuration, as nats-server reports it:
/// warnings (deprecated forms that still work) first, then errors, one a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfErrors {
    pub warnings: Vec<ConfError>,
    pub errors: Vec<ConfError>,
}

impl ConfErrors {
    /// No errors (there may be warnings).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<ConfError> for ConfErrors {
    fn from(e: ConfError) -> Self {
        ConfErrors {
            warnings: Vec::new(),
            errors: vec![e],
        }
    }
}

impl fmt::Display for ConfErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.warnings.iter().chain(&self.errors);
        for (i, e) in all.enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfErrors {}

/// Top-level keys accepted and kept in [`Options::conf_blocks`] but not acted on yet.
const KEPT_KEYS: &[&str] = &[
    "jetstream",
    "cluster",
    "gateway",
    "leafnodes",
    "leaf",
    "websocket",
    "ws",
    "mqtt",
    "server_tags",
    "mappings",
    "maps",
];

impl Options {
    /// Defaults, then the file at `path`. Returns the options and the
    /// warnings, or everything wrong with the file.
    pub fn from_conf_file(path: &Path) -> Result<(Options, Vec<ConfError>), ConfErrors> {
        let mut opts = Options::default();
        let warnings = opts.apply_conf_file(path)?;
        Ok((opts, warnings))
    }

    /// Read and apply the file at `path` over these options; sets
    /// [`Options::config_file`].
    pub fn apply_conf_file(&mut self, path: &Path) -> Result<Vec<ConfError>, ConfErrors> {
        let map = conf::parse_file(path)?;
        self.config_file = Some(path.to_path_buf());
        let report = self.apply_conf(&map);
        if report.is_ok() {
            Ok(report.warnings)
        } else {
            Err(report)
        }
    }

    /// Apply a parsed configuration's top-level keys. Keys are matched without
    /// case, with nats-server's aliases; an unknown key is an error unless some
    /// `$variable` used it. Every entry is checked, so all errors are reported.
    pub fn apply_conf(&mut self, map: &Map) -> ConfErrors {
        let mut report = ConfErrors::default();
        for entry in map.entries() {
            if let Err(e) = self.apply_entry(entry, &mut report.warnings) {
                report.errors.push(e);
            }
        }
        report
    }

    fn apply_entry(
        &mut self,
        entry: &Entry,
        warnings: &mut Vec<ConfError>,
    ) -> Result<(), ConfError> {
        let at = &entry.key_at;
        let key = entry.key.to_ascii_lowercase();
        match key.as_str() {
            "listen" => {
                let (host, port) = host_port(entry)?;
                if let Some(host) = host {
                    self.host = host;
                }
                self.port = client_port(entry, port)?;
            }
            "host" | "net" => self.host = string(entry)?,
            "port" => self.port = client_port(entry, int(entry)?)?,
            "server_name" => self.server_name = Some(string(entry)?),
            "client_advertise" => self.client_advertise = Some(string(entry)?),
            "max_payload" | "max_control_line" => {
                let n = int(entry)?;
                if n > i64::from(i32::MAX) {
                    return Err(invalid(at, format!("{} value is too big", entry.key)));
                }
                let n = non_negative(entry, n)?;
                if key == "max_payload" {
                    self.max_payload = n;
                } else {
                    self.max_control_line = n;
                }
            }
            "max_closed_clients" => self.max_closed_clients = non_negative(entry, int(entry)?)?,
            "max_pending" => self.max_pending = non_negative(entry, int(entry)?)?,
            "max_connections" | "max_conn" => {
                self.max_connections = non_negative(entry, int(entry)?)?
            }
            "max_subscriptions" | "max_subs" => {
                self.max_subscriptions = non_negative(entry, int(entry)?)?
            }
            "ping_interval" => self.ping_interval = duration(entry, warnings)?,
            "write_deadline" => self.write_deadline = duration(entry, warnings)?,
            "ping_max" => {
                let n = int(entry)?;
                self.ping_max = u32::try_from(n)
                    .map_err(|_| invalid(at, format!("ping_max value {n} is out of range")))?;
            }
            "debug" => self.debug = boolean(entry)?,
            "trace" | "trace_verbose" => self.trace = boolean(entry)?,
            "logtime" => self.logtime = boolean(entry)?,
            "logtime_utc" => self.logtime_utc = boolean(entry)?,
            "log_file" | "logfile" => self.log_file = Some(PathBuf::from(string(entry)?)),
            "pid_file" | "pidfile" => self.pid_file = Some(PathBuf::from(string(entry)?)),
            "ports_file_dir" => self.ports_file_dir = Some(PathBuf::from(string(entry)?)),
            "log_size_limit" | "logfile_size_limit" => self.log_size_limit = int(entry)?,
            "lame_duck_duration" => {
                let d = go_duration(entry)?;
                if d < Duration::from_secs(30) {
                    return Err(invalid(
                        at,
                        format!(
                            "invalid lame_duck_duration of {}, minimum is 30 seconds",
                            string(entry)?
                        ),
                    ));
                }
                self.lame_duck_duration = d;
            }
            "lame_duck_grace_period" => self.lame_duck_grace_period = go_duration(entry)?,
            "no_auth_user" => self.no_auth_user = Some(string(entry)?),
            "system_account" | "system" => self.system_account = Some(string(entry)?),
            "authorization" => self.apply_authorization(entry)?,
            "http" | "https" => {
                let (host, port) = host_port(entry)?;
                let port = i32::try_from(port)
                    .map_err(|_| invalid(at, format!("port {port} is out of range")))?;
                self.http_host = host;
                if key == "http" {
                    self.http_port = port;
                } else {
                    self.https_port = port;
                }
            }
            "http_port" | "monitor_port" | "https_port" => {
                let n = int(entry)?;
                let port = i32::try_from(n)
                    .map_err(|_| invalid(at, format!("port {n} is out of range")))?;
                if key == "https_port" {
                    self.https_port = port;
                } else {
                    self.http_port = port;
                }
            }
            "http_base_path" => self.http_base_path = Some(string(entry)?),
            "store_dir" | "storedir" => self.store_dir = Some(PathBuf::from(string(entry)?)),
            // Ignoring these would run a server less protected than its
            // file says (no TLS, no account isolation): refuse instead.
            k @ ("tls" | "accounts") => {
                return Err(invalid(
                    at,
                    format!("{} is not supported yet", conf::go_quote(k)),
                ))
            }
            k if KEPT_KEYS.contains(&k) => {
                self.conf_blocks.retain(|e| !e.key.eq_ignore_ascii_case(k));
                self.conf_blocks.push(entry.clone());
            }
            _ if entry.used_as_variable => {}
            _ => {
                return Err(ConfError::new(
                    at,
                    ErrorKind::UnknownField(entry.key.clone()),
                ))
            }
        }
        Ok(())
    }

    /// `authorization { user, pass, token, timeout }`: replaces what an earlier
    /// block set, as in nats-server.
    fn apply_authorization(&mut self, entry: &Entry) -> Result<(), ConfError> {
        let Value::Map(map) = &entry.value.value else {
            return Err(wrong_type(entry, "map[string]interface {}"));
        };
        let (mut user, mut pass, mut token) = (None, None, None);
        let mut timeout = Duration::from_secs(2);
        for e in map.entries() {
            match e.key.to_ascii_lowercase().as_str() {
                "user" | "username" => user = Some(string(e)?),
                "pass" | "password" => pass = Some(string(e)?),
                "token" => token = Some(string(e)?),
                "timeout" => {
                    // nats-server: a number of seconds, anything else means 1.
                    let secs = match e.value.value {
                        Value::Int(n) => n as f64,
                        Value::Float(f) => f,
                        _ => 1.0,
                    };
                    timeout = Duration::try_from_secs_f64(secs).map_err(|_| {
                        invalid(&e.key_at, format!("invalid authorization timeout {secs}"))
                    })?;
                }
                k @ ("users" | "default_permission" | "default_permissions" | "permissions") => {
                    return Err(invalid(
                        &e.key_at,
                        format!("authorization {} is not supported yet", conf::go_quote(k)),
                    ))
                }
                _ if e.used_as_variable => {}
                _ => {
                    return Err(ConfError::new(
                        &e.key_at,
                        ErrorKind::UnknownField(e.key.clone()),
                    ))
                }
            }
        }
        let empty = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
        if (!empty(&user) || !empty(&pass)) && !empty(&token) {
            return Err(invalid(
                &entry.key_at,
                "Cannot have a user/pass and token".into(),
            ));
        }
        self.user = user.filter(|s| !s.is_empty());
        self.pass = pass.filter(|s| !s.is_empty());
        self.token = token.filter(|s| !s.is_empty());
        self.auth_timeout = timeout;
        Ok(())
    }
}

fn invalid(at: &conf::Loc, msg: String) -> ConfError {
    ConfError::new(at, ErrorKind::Invalid(msg))
}

/// nats-server turns a wrong type into Go's interface-conversion panic text;
/// this names the key instead.
fn wrong_type(entry: &Entry, want: &str) -> ConfError {
    invalid(
        &entry.key_at,
        format!(
            "interface conversion: {} is {}, not {want}",
            conf::go_quote(&entry.key),
            entry.value.value.type_name()
        ),
    )
}

fn int(entry: &Entry) -> Result<i64, ConfError> {
    match entry.value.value {
        Value::Int(n) => Ok(n),
        _ => Err(wrong_type(entry, "int64")),
    }
}

fn string(entry: &Entry) -> Result<String, ConfError> {
    match &entry.value.value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(wrong_type(entry, "string")),
    }
}

fn boolean(entry: &Entry) -> Result<bool, ConfError> {
    match entry.value.value {
        Value::Bool(b) => Ok(b),
        _ => Err(wrong_type(entry, "bool")),
    }
}

fn non_negative(entry: &Entry, n: i64) -> Result<usize, ConfError> {
    usize::try_from(n).map_err(|_| {
        invalid(
            &entry.key_at,
            format!("{} value can not be negative", entry.key),
        )
    })
}

/// nats-server's client port rule: -1 is random (0 to the OS), 0 the default.
fn client_port(entry: &Entry, port: i64) -> Result<u16, ConfError> {
    match port {
        -1 => Ok(0),
        0 => Ok(DEFAULT_PORT),
        _ => u16::try_from(port).map_err(|_| {
            invalid(
                &entry.key_at,
                format!("port {port} is out of range (-1 for random, or 0..=65535)"),
            )
        }),
    }
}

/// `listen`/`http`: a port, or `host:port` split as Go's `net.SplitHostPort`.
fn host_port(entry: &Entry) -> Result<(Option<String>, i64), ConfError> {
    let at = &entry.key_at;
    match &entry.value.value {
        Value::Int(port) => Ok((None, *port)),
        Value::String(s) => {
            let bad_addr = || {
                invalid(
                    at,
                    format!("could not parse address string {}", conf::go_quote(s)),
                )
            };
            let (host, port) = if let Some(rest) = s.strip_prefix('[') {
                let (host, after) = rest.split_once(']').ok_or_else(bad_addr)?;
                (host, after.strip_prefix(':').ok_or_else(bad_addr)?)
            } else {
                let (host, port) = s.rsplit_once(':').ok_or_else(bad_addr)?;
                if host.contains(':') {
                    return Err(bad_addr());
                }
                (host, port)
            };
            let port = port.parse::<i64>().map_err(|_| {
                invalid(at, format!("could not parse port {}", conf::go_quote(port)))
            })?;
            Ok((Some(host.to_string()), port))
        }
        other => Err(invalid(
            at,
            format!("expected port or host:port, got {}", other.type_name()),
        )),
    }
}

/// `ping_interval`/`write_deadline`: a Go duration; an integer is seconds
/// with nats-server's warning.
fn duration(entry: &Entry, warnings: &mut Vec<ConfError>) -> Result<Duration, ConfError> {
    let field = entry.key.to_ascii_lowercase();
    if let Value::Int(_) = entry.value.value {
        warnings.push(ConfError::new(
            &entry.key_at,
            ErrorKind::InvalidUse {
                reason: format!("{field} should be converted to a duration"),
                field: field.clone(),
            },
        ));
    }
    match conf::duration_of(&entry.value.value) {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(invalid(
            &entry.key_at,
            format!("error parsing {field}: {e}"),
        )),
        None => Err(wrong_type(entry, "string")),
    }
}

/// `lame_duck_*`: a Go duration string, not negative.
fn go_duration(entry: &Entry) -> Result<Duration, ConfError> {
    let field = entry.key.to_ascii_lowercase();
    let ns = conf::parse_duration(&string(entry)?)
        .map_err(|e| invalid(&entry.key_at, format!("error parsing {field}: {e}")))?;
    u64::try_from(ns).map(Duration::from_nanos).map_err(|_| {
        invalid(
            &entry.key_at,
            format!("invalid {field}, needs to be positive"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> (Options, ConfErrors) {
        let map = conf::parse_with(text, "t.conf", &mut conf::MemSource::default())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut opts = Options::default();
        let report = opts.apply_conf(&map);
        (opts, report)
    }

    fn ok(text: &str) -> Options {
        let (opts, report) = apply(text);
        assert!(report.errors.is_empty(), "{text}: {report}");
        opts
    }

    fn err(text: &str) -> String {
        let (_, report) = apply(text);
        assert!(!report.is_ok(), "{text}: expected an error");
        report.to_string()
    }

    #[test]
    fn real_world_file_maps_to_options() {
        let path = Path::new("testdata/conf/real_world.conf");
        let (o, warnings) = Options::from_conf_file(path).expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(o.config_file.as_deref(), Some(path));
        assert_eq!(o.server_name.as_deref(), Some("natsd-1"));
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4333));
        assert_eq!(o.http_port, 8222);
        assert_eq!(o.max_payload, 2 * 1024 * 1024);
        assert_eq!(o.max_pending, 64 * 1024 * 1024);
        assert_eq!(o.max_connections, 1000);
        assert_eq!(o.max_control_line, 4096);
        assert_eq!(o.ping_interval, Duration::from_secs(30));
        assert_eq!(o.ping_max, 3);
        assert_eq!(o.write_deadline, Duration::from_secs(5));
        assert!(!o.debug && !o.trace && o.logtime);
        assert_eq!(o.log_file, Some(PathBuf::from("/tmp/natsd.log")));
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/natsd.pid")));
        assert_eq!(o.user.as_deref(), Some("admin"));
        assert!(o.pass.as_deref().is_some_and(|p| p.starts_with("$2a$11$")));
        assert_eq!(o.auth_timeout, Duration::from_millis(1500));
        let kept: Vec<&str> = o.conf_blocks.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(kept, ["jetstream", "cluster"]);
    }

    #[test]
    fn keys_fold_case_and_take_aliases() {
        let o = ok("PORT: 1\nNet: h\nMax_Conn: 5\nmax_subs: 6\nlogfile: l\npidfile: p\nDEBUG: yes");
        assert_eq!((o.port, o.host.as_str()), (1, "h"));
        assert_eq!((o.max_connections, o.max_subscriptions), (5, 6));
        assert_eq!(o.log_file, Some(PathBuf::from("l")));
        assert_eq!(o.pid_file, Some(PathBuf::from("p")));
        assert!(o.debug);
        let o = ok("max_connections: 7\nmax_subscriptions: 8\nlog_file: a\npid_file: b\nhost: x");
        assert_eq!((o.max_connections, o.max_subscriptions), (7, 8));
        assert_eq!(o.host, "x");
    }

    #[test]
    fn listen_forms() {
        let o = ok("listen: 4555");
        assert_eq!((o.host.as_str(), o.port), (DEFAULT_HOST, 4555));
        let o = ok("listen: \"[::1]:4556\"");
        assert_eq!((o.host.as_str(), o.port), ("::1", 4556));
        assert_eq!(ok("port: -1").port, 0, "-1 is random");
        assert_eq!(ok("port: 0").port, DEFAULT_PORT);
        assert_eq!(
            err("listen: nohost"),
            "t.conf:1:1: could not parse address string \"nohost\""
        );
        assert_eq!(
            err("listen: \"h:x\""),
            "t.conf:1:1: could not parse port \"x\""
        );
        assert!(err("port: 70000").starts_with("t.conf:1:1: port 70000 is out of range"));
    }

    #[test]
    fn durations_strings_and_deprecated_seconds() {
        let o = ok("ping_interval: \"1h30m\"\nwrite_deadline: \"500ms\"");
        assert_eq!(o.ping_interval, Duration::from_secs(5400));
        assert_eq!(o.write_deadline, Duration::from_millis(500));
        let (o, report) = apply("ping_interval: 60");
        assert!(report.is_ok());
        assert_eq!(o.ping_interval, Duration::from_secs(60));
        // nats-server 2.9.10 prints exactly this warning (column aside).
        assert_eq!(
            report.to_string(),
            "t.conf:1:1: invalid use of field \"ping_interval\": ping_interval should be converted to a duration"
        );
        assert_eq!(
            err("ping_interval: \"1x\""),
            "t.conf:1:1: error parsing ping_interval: time: unknown unit \"x\" in duration \"1x\""
        );
    }

    #[test]
    fn authorization_block() {
        let o = ok("authorization { username: u, password: p, timeout: 3 }");
        assert_eq!(
            (o.user.as_deref(), o.pass.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(o.auth_timeout, Duration::from_secs(3));
        let o = ok("authorization { token: t }");
        assert_eq!(o.token.as_deref(), Some("t"));
        assert!(o.auth_required());
        assert_eq!(
            err("authorization {\n  user: u\n  token: t\n}"),
            "t.conf:1:1: Cannot have a user/pass and token"
        );
        assert_eq!(
            err("authorization {\n  usr: u\n}"),
            "t.conf:2:3: unknown field \"usr\""
        );
        assert!(err("authorization { users: [] }").contains("not supported yet"));
    }

    #[test]
    fn unknown_fields_are_all_reported_in_file_order() {
        assert_eq!(
            err("port: 1\nfoo: 1\n  Bar = \"x\"\n"),
            "t.conf:2:1: unknown field \"foo\"\nt.conf:3:3: unknown field \"Bar\""
        );
    }

    #[test]
    fn keys_used_as_variables_are_not_unknown() {
        let o = ok("PORT = 4999\nport = $PORT");
        assert_eq!(o.port, 4999);
    }

    #[test]
    fn accepted_keys_are_not_rejected() {
        let o = ok(concat!(
            "log_size_limit: 1MB\nlame_duck_duration: \"60s\"\nlame_duck_grace_period: \"5s\"\n",
            "no_auth_user: u\nsystem_account: SYS\nhttp: \"0.0.0.0:8222\"\n",
            "https_port: 8443\nmonitor_port: 8223\nhttp_base_path: /m\njetstream: enabled\nstore_dir: /s\n",
            "cluster {}\ngateway {}\nleafnodes {}\nwebsocket {}\nmqtt {}\nserver_tags: [a]\nmappings {}\n",
            "max_closed_clients: 5\nlogtime_utc: true\ntrace_verbose: true\ndebug_x_used = on\n",
            "client_advertise: \"h:1\"\nports_file_dir: /p\nmax_control_line: 1KB\nmax_payload: 2MB\n",
            "max_pending: 1MB\nping_max: 4\nlogtime: off\ndebug: $debug_x_used\ntrace: no\nserver_name: s\n",
        ));
        assert_eq!(o.log_size_limit, 1024 * 1024);
        assert_eq!(o.lame_duck_duration, Duration::from_secs(60));
        assert_eq!(o.lame_duck_grace_period, Duration::from_secs(5));
        assert_eq!(o.no_auth_user.as_deref(), Some("u"));
        assert_eq!(o.system_account.as_deref(), Some("SYS"));
        assert_eq!(
            (o.http_host.as_deref(), o.http_port),
            (Some("0.0.0.0"), 8223)
        );
        assert_eq!(o.https_port, 8443);
        assert_eq!(o.http_base_path.as_deref(), Some("/m"));
        assert_eq!(o.store_dir, Some(PathBuf::from("/s")));
        assert_eq!(o.max_closed_clients, 5);
        assert!(o.logtime_utc && o.debug && !o.trace && !o.logtime);
        assert_eq!((o.max_control_line, o.max_payload), (1024, 2 * 1024 * 1024));
        assert_eq!((o.max_pending, o.ping_max), (1024 * 1024, 4));
        assert_eq!(o.conf_blocks.len(), 8);
    }

    #[test]
    fn tls_and_accounts_are_refused_until_enforced() {
        assert_eq!(err("tls: {}"), "t.conf:1:1: \"tls\" is not supported yet");
        assert_eq!(
            err("\naccounts: { A: {} }"),
            "t.conf:2:1: \"accounts\" is not supported yet"
        );
    }

    #[test]
    fn value_errors_name_the_key_position() {
        assert_eq!(
            err("\n  port: \"abc\""),
            "t.conf:2:3: interface conversion: \"port\" is string, not int64"
        );
        assert_eq!(
            err("max_payload: 3GB"),
            "t.conf:1:1: max_payload value is too big"
        );
        assert_eq!(
            err("max_pending: -1"),
            "t.conf:1:1: max_pending value can not be negative"
        );
        assert_eq!(
            err("lame_duck_duration: \"10s\""),
            "t.conf:1:1: invalid lame_duck_duration of 10s, minimum is 30 seconds"
        );
        assert_eq!(
            err("lame_duck_grace_period: \"-1s\""),
            "t.conf:1:1: invalid lame_duck_grace_period, needs to be positive"
        );
    }

    #[test]
    fn missing_file_is_go_shaped() {
        let e = Options::from_conf_file(Path::new("testdata/conf/no-such.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "open testdata/conf/no-such.conf: no such file or directory"
        );
    }
}
