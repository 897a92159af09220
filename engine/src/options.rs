//! Server options: what flags and the config file set.
//!
//! Field names follow nats-server's config keys, so a reader can map each to
//! its `nats-server.conf` key or flag. [`Options::apply_conf`] maps a parsed
//! [`conf::Map`] onto them; command-line flags are applied afterwards by the
//! caller, so they override the file, as in nats-server.
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::accounts::{
    self as accounts_mod, AccountConfig, ExportConfig, ExportKind, ImportConfig, ResponseType,
    GLOBAL_ACCOUNT,
};
use crate::auth::{self, NkeyUser, Permissions, ResponsePermission, SubjectPermission, User};
use crate::conf::{self, ConfError, Entry, ErrorKind, Item, Map, Value};
use crate::mapping::{MapDest, MappingConfig, Mappings};
use crate::subject;
use natsd_storage::Cipher;

mod cluster;
pub use cluster::{ClusterOptions, RouteUrl, DEFAULT_ROUTE_PORT};

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
    /// `authorization.users` entries with a user name.
    pub users: Vec<User>,
    /// `authorization.users` entries with an nkey.
    pub nkeys: Vec<NkeyUser>,
    /// `authorization.default_permissions` (also `permissions`): already
    /// copied into every user without its own, as nats-server does.
    pub default_permissions: Option<Permissions>,
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
    /// `no_auth_user`: the user a client without credentials becomes.
    pub no_auth_user: Option<String>,
    /// `system_account`/`system`: the system account's name.
    pub system_account: Option<String>,
    /// `accounts {}`: the configured accounts (their users are in
    /// [`Options::users`]/[`Options::nkeys`] with `account` set).
    pub accounts: Vec<AccountConfig>,
    /// Top-level `mappings {}`: the global account's subject mappings.
    pub mappings: Vec<crate::mapping::MappingConfig>,
    /// `http`/`https` host part: kept for monitoring.
    pub http_host: Option<String>,
    /// `http_port`/`monitor_port`/`http` port part; 0 = off, -1 = random. Kept for monitoring.
    pub http_port: i32,
    /// `https_port`/`https` port part; 0 = off. Kept for monitoring.
    pub https_port: i32,
    /// `http_base_path`: kept for monitoring.
    pub http_base_path: Option<String>,
    /// `store_dir`/`jetstream.store_dir`/`-sd`: JetStream's storage
    /// directory (streams live under `<store_dir>/jetstream`).
    pub store_dir: Option<PathBuf>,
    /// `jetstream`/`-js`: JetStream and its limits.
    pub jetstream: JetStreamOptions,
    /// `cluster {}` and the cluster flags: routes to other servers.
    pub cluster: ClusterOptions,
    /// `tls {}`/`--tls`/`--tlsverify`: clients must speak TLS (`tls_required` in INFO).
    pub tls: bool,
    /// `tls.verify` (or `verify_and_map`)/`--tlsverify`: clients must present a
    /// certificate signed by `tls_ca_cert`.
    pub tls_verify: bool,
    /// `tls.verify_and_map`: verify as `tls_verify`, and take the client's
    /// user from its certificate (SAN or subject) instead of CONNECT.
    pub tls_map: bool,
    /// `tls.cert_file`/`--tlscert`: the server's certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// `tls.key_file`/`--tlskey`: the server's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// `tls.ca_file`/`--tlscacert`: CAs that client certificates must chain to.
    pub tls_ca_cert: Option<PathBuf>,
    /// `tls.timeout`: time a client has to finish the TLS handshake (default 2 s).
    pub tls_timeout: Duration,
    /// `tls.handshake_first`: TLS handshake before INFO instead of after it.
    pub tls_handshake_first: bool,
    /// `tls.min_version`: lowest TLS version accepted (default 1.2).
    pub tls_min_version: TlsVersion,
    /// natsd: whether `authorization.timeout` was given. If not and TLS is on,
    /// [`Options::set_baseline`] makes the auth timeout `tls_timeout` + 1 s, as
    /// nats-server does.
    pub auth_timeout_set: bool,
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
            users: Vec::new(),
            nkeys: Vec::new(),
            default_permissions: None,
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
            accounts: Vec::new(),
            mappings: Vec::new(),
            http_host: None,
            http_port: 0,
            https_port: 0,
            http_base_path: None,
            store_dir: None,
            jetstream: JetStreamOptions::default(),
            cluster: ClusterOptions::default(),
            tls: false,
            tls_verify: false,
            tls_map: false,
            tls_cert: None,
            tls_key: None,
            tls_ca_cert: None,
            tls_timeout: Duration::from_secs(2),
            tls_handshake_first: false,
            tls_min_version: TlsVersion::V1_2,
            auth_timeout_set: false,
            conf_blocks: Vec::new(),
        }
    }
}

impl Options {
    /// Defaults that depend on other options, applied once flags and file
    /// are both in (nats-server's `setBaselineOptions`): with TLS on and no
    /// `authorization.timeout`, the auth timeout is the TLS timeout + 1 s.
    pub fn set_baseline(&mut self) {
        if self.tls && !self.auth_timeout_set {
            self.auth_timeout = self.tls_timeout + Duration::from_secs(1);
        }
    }
}

/// TLS protocol versions `tls.min_version` can name. nats-server refuses
/// anything below 1.2, and so does rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 (the default minimum).
    V1_2,
    /// TLS 1.3 only.
    V1_3,
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
    "gateway",
    "leafnodes",
    "leaf",
    "websocket",
    "ws",
    "mqtt",
    "server_tags",
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
        let mut accounts_entry = None;
        for entry in map.entries() {
            if entry.key.eq_ignore_ascii_case("accounts") {
                self.apply_accounts(entry, &mut report.errors);
                accounts_entry = Some(entry);
                continue;
            }
            if let Err(e) = self.apply_entry(entry, &mut report.warnings) {
                report.errors.push(e);
            }
        }
        if let Some(entry) = accounts_entry {
            self.check_accounts(entry, &mut report.errors);
        }
        if let Some(entry) = map
            .entries()
            .iter()
            .find(|e| e.key.eq_ignore_ascii_case("no_auth_user"))
        {
            if let Err(e) = self.check_no_auth_user(entry) {
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
            "tls" => self.apply_tls(entry, warnings)?,
            "jetstream" => self.apply_jetstream(entry, warnings)?,
            "cluster" => self.cluster.apply(entry)?,
            "mappings" | "maps" => self.mappings = parse_mappings(entry)?,
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

    /// `authorization { user, pass, token, timeout, users, default_permissions }`:
    /// replaces what an earlier block set, as in nats-server.
    fn apply_authorization(&mut self, entry: &Entry) -> Result<(), ConfError> {
        let Value::Map(map) = &entry.value.value else {
            return Err(wrong_type(entry, "map[string]interface {}"));
        };
        let (mut user, mut pass, mut token) = (None, None, None);
        let mut timeout = Duration::from_secs(2);
        let mut timeout_set = false;
        let mut users: Option<(Vec<User>, Vec<NkeyUser>)> = None;
        let mut default_permissions = None;
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
                    timeout_set = true;
                }
                "users" => users = Some(parse_users(e)?),
                "default_permission" | "default_permissions" | "permissions" => {
                    default_permissions = Some(parse_permissions(e)?)
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
        let (mut users, mut nkeys) = match users {
            Some(_) if !empty(&user) => {
                return Err(invalid(
                    &entry.key_at,
                    "Can not have a single user/pass and a users array".into(),
                ))
            }
            Some(_) if !empty(&token) => {
                return Err(invalid(
                    &entry.key_at,
                    "Can not have a token and a users array".into(),
                ))
            }
            Some(lists) => lists,
            None => (Vec::new(), Vec::new()),
        };
        let mut seen = std::collections::HashSet::new();
        for u in &users {
            if !seen.insert(u.username.as_str()) {
                return Err(invalid(
                    &entry.key_at,
                    format!("Duplicate user {} detected", conf::go_quote(&u.username)),
                ));
            }
        }
        for u in &nkeys {
            if !seen.insert(u.nkey.as_str()) {
                return Err(invalid(
                    &entry.key_at,
                    format!("Duplicate nkey {} detected", conf::go_quote(&u.nkey)),
                ));
            }
        }
        if let Some(default) = &default_permissions {
            for u in &mut users {
                u.permissions.get_or_insert_with(|| default.clone());
            }
            for u in &mut nkeys {
                u.permissions.get_or_insert_with(|| default.clone());
            }
        }
        self.user = user.filter(|s| !s.is_empty());
        self.pass = pass.filter(|s| !s.is_empty());
        self.token = token.filter(|s| !s.is_empty());
        self.auth_timeout = timeout;
        self.auth_timeout_set = timeout_set;
        // Users defined in `accounts {}` stay.
        self.users.retain(|u| u.account.is_some());
        self.users.extend(users);
        self.nkeys.retain(|u| u.account.is_some());
        self.nkeys.extend(nkeys);
        self.default_permissions = default_permissions;
        Ok(())
    }

    /// `tls { cert_file, key_file, ca_file, verify, timeout, handshake_first,
    /// min_version, cipher_suites, curve_preferences }`: replaces what an
    /// earlier block set. Keys natsd cannot honour are refused, never ignored,
    /// except the cipher and curve lists (see COMPATIBILITY.md).
    fn apply_tls(&mut self, entry: &Entry, warnings: &mut Vec<ConfError>) -> Result<(), ConfError> {
        let Value::Map(map) = &entry.value.value else {
            return Err(wrong_type(entry, "map[string]interface {}"));
        };
        let tls_err =
            |e: &Entry, msg: &str| invalid(&e.key_at, format!("error parsing tls config, {msg}"));
        let (mut cert, mut key, mut ca) = (None, None, None);
        let mut verify = false;
        let mut map_users = false;
        let mut timeout = Duration::from_secs(2);
        let mut handshake_first = false;
        let mut min_version = TlsVersion::V1_2;
        for e in map.entries() {
            let k = e.key.to_ascii_lowercase();
            match k.as_str() {
                "cert_file" | "key_file" | "ca_file" => {
                    let Value::String(s) = &e.value.value else {
                        return Err(tls_err(e, &format!("expected '{k}' to be filename")));
                    };
                    let path = Some(PathBuf::from(s));
                    match k.as_str() {
                        "cert_file" => cert = path,
                        "key_file" => key = path,
                        _ => ca = path,
                    }
                }
                "verify" => {
                    let Value::Bool(b) = e.value.value else {
                        return Err(tls_err(e, "expected 'verify' to be a boolean"));
                    };
                    verify = b;
                }
                "verify_and_map" => {
                    let Value::Bool(b) = e.value.value else {
                        return Err(tls_err(e, "expected 'verify_and_map' to be a boolean"));
                    };
                    verify = b;
                    map_users = b;
                }
                "verify_cert_and_check_known_urls" => {
                    return Err(invalid(
                        &e.key_at,
                        format!("tls {} is not supported yet", conf::go_quote(&k)),
                    ))
                }
                "insecure" => return Err(invalid(
                    &e.key_at,
                    "tls \"insecure\" is not supported (it only applies to outgoing connections)"
                        .into(),
                )),
                "timeout" => {
                    let secs = match &e.value.value {
                        Value::Int(n) => *n as f64,
                        Value::Float(f) => *f,
                        Value::String(s) => {
                            let ns = conf::parse_duration(s)
                                .map_err(|err| tls_err(e, &format!("'timeout' {err}")))?;
                            ns as f64 / 1e9
                        }
                        _ => return Err(tls_err(e, "'timeout' wrong type")),
                    };
                    // nats-server: zero means the default.
                    if secs != 0.0 {
                        timeout = Duration::try_from_secs_f64(secs)
                            .map_err(|_| tls_err(e, &format!("invalid 'timeout' {secs}")))?;
                    }
                }
                "handshake_first" | "first" | "immediate" => {
                    handshake_first = match &e.value.value {
                        Value::Bool(b) => *b,
                        Value::String(s) => match s.to_ascii_lowercase().as_str() {
                            "true" | "on" => true,
                            "false" | "off" => false,
                            _ => {
                                return Err(invalid(
                                    &e.key_at,
                                    format!(
                                        "field {} value {} is not supported (natsd takes true or false; no fallback to plain INFO)",
                                        conf::go_quote(&e.key),
                                        conf::go_quote(s)
                                    ),
                                ))
                            }
                        },
                        other => {
                            return Err(invalid(
                                &e.key_at,
                                format!(
                                    "field {} should be a boolean or a string, got {}",
                                    conf::go_quote(&e.key),
                                    other.type_name()
                                ),
                            ))
                        }
                    };
                }
                "min_version" => {
                    let Value::String(s) = &e.value.value else {
                        return Err(invalid(
                            &e.key_at,
                            format!("'min_version' wrong type: {}", e.value.value.type_name()),
                        ));
                    };
                    min_version = match s.as_str() {
                        "1.2" => TlsVersion::V1_2,
                        "1.3" => TlsVersion::V1_3,
                        "1.0" | "1.1" => {
                            return Err(invalid(
                                &e.key_at,
                                format!("unsupported TLS version: TLS {s}"),
                            ))
                        }
                        _ => return Err(invalid(&e.key_at, format!("unknown version: {s}"))),
                    };
                }
                "cipher_suites" | "curve_preferences" => {
                    // rustls's ring provider offers only modern suites and
                    // groups; a list naming them would mostly restate that.
                    warnings.push(ConfError::new(
                        &e.key_at,
                        ErrorKind::InvalidUse {
                            reason: format!("{k} is ignored: natsd uses rustls's safe defaults"),
                            field: k.clone(),
                        },
                    ));
                }
                _ if e.used_as_variable => {}
                _ => {
                    return Err(tls_err(
                        e,
                        &format!("unknown field [{}]", conf::go_quote(&e.key)),
                    ))
                }
            }
        }
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(invalid(
                    &entry.key_at,
                    "missing 'key_file' in TLS configuration".into(),
                ))
            }
            (None, Some(_)) | (None, None) => {
                return Err(invalid(
                    &entry.key_at,
                    "missing 'cert_file' in TLS configuration".into(),
                ))
            }
            (Some(_), Some(_)) => {}
        }
        if verify && ca.is_none() {
            return Err(invalid(
                &entry.key_at,
                "tls 'verify' needs 'ca_file' (natsd does not use the system CA pool)".into(),
            ));
        }
        self.tls = true;
        self.tls_cert = cert;
        self.tls_key = key;
        self.tls_ca_cert = ca;
        self.tls_verify = verify;
        self.tls_map = map_users;
        self.tls_timeout = timeout;
        self.tls_handshake_first = handshake_first;
        self.tls_min_version = min_version;
        Ok(())
    }

    /// nats-server refuses a `no_auth_user` that names no configured user.
    /// `accounts { NAME: { users, nkey, exports, imports, jetstream,
    /// default_permissions } }` or `accounts: [NAME, ...]`, with
    /// nats-server's errors; every error is reported.
    fn apply_accounts(&mut self, entry: &Entry, errors: &mut Vec<ConfError>) {
        self.accounts.clear();
        self.users.retain(|u| u.account.is_none());
        self.nkeys.retain(|u| u.account.is_none());
        let reserved = |name: &str, at: &conf::Loc| {
            invalid(
                at,
                format!("{} is a Reserved Account", conf::go_quote(name)),
            )
        };
        match &entry.value.value {
            Value::Array(items) => {
                for item in items {
                    let Value::String(name) = &item.value else {
                        errors.push(invalid(
                            &item.at,
                            format!(
                                "interface conversion: interface {{}} is {}, not string",
                                item.value.type_name()
                            ),
                        ));
                        continue;
                    };
                    if name == GLOBAL_ACCOUNT {
                        errors.push(reserved(name, &item.at));
                        continue;
                    }
                    if self.accounts.iter().any(|a| &a.name == name) {
                        errors.push(invalid(
                            &item.at,
                            format!("Duplicate Account Entry: {name}"),
                        ));
                        continue;
                    }
                    self.accounts.push(AccountConfig {
                        name: name.clone(),
                        ..AccountConfig::default()
                    });
                }
            }
            Value::Map(map) => {
                for e in map.entries() {
                    if e.used_as_variable {
                        continue;
                    }
                    let Value::Map(body) = &e.value.value else {
                        errors.push(invalid(
                            &e.key_at,
                            "Expected map entries for accounts".into(),
                        ));
                        continue;
                    };
                    if e.key == GLOBAL_ACCOUNT {
                        errors.push(reserved(&e.key, &e.key_at));
                        continue;
                    }
                    self.apply_account(&e.key, body, errors);
                }
            }
            _ => {}
        }
    }

    fn apply_account(&mut self, name: &str, body: &Map, errors: &mut Vec<ConfError>) {
        let mut acc = AccountConfig {
            name: name.to_string(),
            ..AccountConfig::default()
        };
        let mut users: Option<(Vec<User>, Vec<NkeyUser>, conf::Loc)> = None;
        let mut default_permissions = None;
        for e in body.entries() {
            let result = match e.key.to_ascii_lowercase().as_str() {
                "nkey" => match &e.value.value {
                    Value::String(k) if k.starts_with('A') && auth::is_valid_public_nkey(k) => {
                        acc.nkey = Some(k.clone());
                        Ok(())
                    }
                    v => Err(invalid(
                        &e.key_at,
                        format!(
                            "Not a valid public nkey for an account: {}",
                            match v {
                                Value::String(k) => conf::go_quote(k),
                                _ => format!("%!q({})", v.type_name()),
                            }
                        ),
                    )),
                },
                "imports" => parse_imports(e, errors).map(|i| acc.imports = i),
                "exports" => parse_exports(e, errors).map(|x| acc.exports = x),
                "jetstream" => account_jetstream(e).map(|(on, limits)| {
                    acc.jetstream = on;
                    acc.jetstream_limits = limits;
                }),
                "users" => parse_users(e).map(|(u, n)| users = Some((u, n, e.key_at.clone()))),
                "default_permissions" => {
                    parse_permissions(e).map(|p| default_permissions = Some(p))
                }
                "mappings" | "maps" => parse_mappings(e).map(|m| acc.mappings = m),
                // Refused, not ignored: a server running without them would
                // limit differently from what the file says.
                k @ ("limits" | "msg_trace") => Err(invalid(
                    &e.key_at,
                    format!("account {} is not supported yet", conf::go_quote(k)),
                )),
                _ if e.used_as_variable => Ok(()),
                _ => Err(ConfError::new(
                    &e.key_at,
                    ErrorKind::UnknownField(e.key.clone()),
                )),
            };
            if let Err(err) = result {
                errors.push(err);
            }
        }
        if let Some((mut users, mut nkeys, at)) = users {
            if !users.is_empty() || !nkeys.is_empty() {
                if self.user.is_some() {
                    errors.push(invalid(
                        &at,
                        "Can not have a single user/pass and accounts".into(),
                    ));
                } else if self.token.is_some() {
                    errors.push(invalid(&at, "Can not have a token and accounts".into()));
                }
            }
            for u in &mut users {
                if let Some(p) = &default_permissions {
                    u.permissions.get_or_insert_with(|| p.clone());
                }
                u.account = Some(name.to_string());
                if self.users.iter().any(|o| o.username == u.username)
                    || self.nkeys.iter().any(|o| o.nkey == u.username)
                {
                    errors.push(invalid(
                        &at,
                        format!("Duplicate user {} detected", conf::go_quote(&u.username)),
                    ));
                    continue;
                }
                self.users.push(u.clone());
            }
            for u in &mut nkeys {
                if let Some(p) = &default_permissions {
                    u.permissions.get_or_insert_with(|| p.clone());
                }
                u.account = Some(name.to_string());
                if self.nkeys.iter().any(|o| o.nkey == u.nkey)
                    || self.users.iter().any(|o| o.username == u.nkey)
                {
                    errors.push(invalid(
                        &at,
                        format!("Duplicate nkey {} detected", conf::go_quote(&u.nkey)),
                    ));
                    continue;
                }
                self.nkeys.push(u.clone());
            }
        }
        self.accounts.push(acc);
    }

    /// After the whole file: exports and imports refer to defined accounts
    /// and are allowed (nats-server checks them once every account is
    /// known, and only when nothing else was wrong).
    fn check_accounts(&self, entry: &Entry, errors: &mut Vec<ConfError>) {
        if !errors.is_empty() {
            return;
        }
        for msg in accounts_mod::check_config(&self.accounts) {
            errors.push(invalid(&entry.key_at, msg));
        }
    }

    fn check_no_auth_user(&self, entry: &Entry) -> Result<(), ConfError> {
        let Some(name) = &self.no_auth_user else {
            return Ok(());
        };
        if self.users.is_empty() {
            return Err(invalid(
                &entry.key_at,
                format!(
                    "no_auth_user: {} present, but users are not defined",
                    conf::go_quote(name)
                ),
            ));
        }
        if !self.users.iter().any(|u| &u.username == name) {
            return Err(invalid(
                &entry.key_at,
                format!(
                    "no_auth_user: {} not present as user in authorization block or account configuration",
                    conf::go_quote(name)
                ),
            ));
        }
        Ok(())
    }
}

/// An account's `exports: [{stream: s} | {service: s, response_type,
/// response_threshold}, accounts: [...]]`.
/// `mappings { <src>: <dest> | {dest, weight, cluster} | [ ... ] }` with
/// nats-server 2.9.10's checks and texts.
fn parse_mappings(entry: &Entry) -> Result<Vec<MappingConfig>, ConfError> {
    let Value::Map(map) = &entry.value.value else {
        return Err(invalid(
            &entry.key_at,
            format!(
                "Expected a map of subject mappings, got {}",
                entry.value.value.type_name()
            ),
        ));
    };
    let mut out = Vec::new();
    for e in map.entries() {
        if !crate::subject::is_valid_subject(e.key.as_bytes()) {
            return Err(invalid(
                &e.key_at,
                format!("Subject {} is not a valid subject", conf::go_quote(&e.key)),
            ));
        }
        let dests = match &e.value.value {
            Value::String(d) => vec![MapDest {
                subject: d.clone(),
                weight: 100,
                cluster: None,
            }],
            Value::Map(m) => vec![parse_map_dest(m, &e.value.at)?],
            Value::Array(items) => items
                .iter()
                .map(|item| match &item.value {
                    Value::Map(m) => parse_map_dest(m, &item.at),
                    _ => Err(invalid(
                        &item.at,
                        "Expected an entry for the mapping destination".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            v => {
                return Err(invalid(
                    &e.value.at,
                    format!("Unknown type {} for mapping destination", v.type_name()),
                ))
            }
        };
        let cfg = MappingConfig {
            source: e.key.clone(),
            dests,
        };
        if let Err(err) = Mappings::new(std::slice::from_ref(&cfg)) {
            let first = cfg.dests.first().map_or("", |d| d.subject.as_str());
            return Err(invalid(
                &e.value.at,
                format!(
                    "Error adding mapping for {} to {} : {err}",
                    conf::go_quote(&e.key),
                    conf::go_quote(first)
                ),
            ));
        }
        out.push(cfg);
    }
    Ok(out)
}

/// One `{dest, weight, cluster}` of a mapping.
fn parse_map_dest(map: &Map, at: &conf::Loc) -> Result<MapDest, ConfError> {
    let mut dest = MapDest {
        subject: String::new(),
        weight: 0,
        cluster: None,
    };
    let mut weighted = false;
    for e in map.entries() {
        match e.key.to_ascii_lowercase().as_str() {
            "dest" | "destination" => dest.subject = string(e)?,
            "cluster" => dest.cluster = Some(string(e)?),
            "weight" => {
                let w = match &e.value.value {
                    Value::String(w) => {
                        let w = w.strip_suffix('%').unwrap_or(w);
                        w.parse::<i64>().map_err(|_| {
                            invalid(
                                &e.value.at,
                                format!(
                                    "Invalid weight {} for mapping destination",
                                    conf::go_quote(w)
                                ),
                            )
                        })?
                    }
                    Value::Int(w) => *w,
                    v => {
                        return Err(invalid(
                            &e.value.at,
                            format!("Unknown entry type for weight of {}", v.type_name()),
                        ))
                    }
                };
                dest.weight = u8::try_from(w).ok().filter(|w| *w <= 100).ok_or_else(|| {
                    invalid(
                        &e.value.at,
                        format!("Invalid weight {w} for mapping destination"),
                    )
                })?;
                weighted = true;
            }
            _ => {
                return Err(invalid(
                    &e.key_at,
                    format!(
                        "Unknown field {} for mapping destination",
                        conf::go_quote(&e.key)
                    ),
                ))
            }
        }
    }
    if !weighted {
        return Err(invalid(
            at,
            format!(
                "Missing weight for mapping destination {}",
                conf::go_quote(&dest.subject)
            ),
        ));
    }
    Ok(dest)
}

fn parse_exports(
    entry: &Entry,
    errors: &mut Vec<ConfError>,
) -> Result<Vec<ExportConfig>, ConfError> {
    let Value::Array(items) = &entry.value.value else {
        return Err(invalid(
            &entry.key_at,
            format!(
                "Exports should be an array, got {}",
                &entry.value.value.type_name()
            ),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Map(map) = &item.value else {
            errors.push(invalid(
                &item.at,
                format!(
                    "Export Items should be a map with type entry, got {}",
                    &item.value.type_name()
                ),
            ));
            continue;
        };
        let mut kind: Option<(ExportKind, String)> = None;
        let mut accounts = None;
        let mut response_type = None;
        let mut threshold = None;
        for e in map.entries() {
            let key = e.key.to_ascii_lowercase();
            let at = &e.key_at;
            match key.as_str() {
                "stream" | "service" => {
                    let this = if key == "stream" {
                        ExportKind::Stream
                    } else {
                        ExportKind::Service
                    };
                    if let Some((other, _)) = &kind {
                        if *other != this {
                            let shown = match &e.value.value {
                                Value::String(s) => conf::go_quote(s),
                                v => format!("%!q({})", v.type_name()),
                            };
                            errors.push(invalid(
                                at,
                                match this {
                                    ExportKind::Stream => {
                                        format!("Detected stream {shown} but already saw a service")
                                    }
                                    ExportKind::Service => {
                                        format!("Detected service {shown} but already saw a stream")
                                    }
                                },
                            ));
                            continue;
                        }
                    }
                    let Value::String(s) = &e.value.value else {
                        errors.push(invalid(
                            at,
                            format!(
                                "Expected {key} name to be string, got {}",
                                e.value.value.type_name()
                            ),
                        ));
                        continue;
                    };
                    kind = Some((this, s.clone()));
                }
                "response" | "response_type" => {
                    if response_type.is_some() {
                        errors.push(invalid(at, "Duplicate response type definition".into()));
                        continue;
                    }
                    let Value::String(s) = &e.value.value else {
                        errors.push(invalid(
                            at,
                            format!(
                                "Expected response type to be string, got {}",
                                e.value.value.type_name()
                            ),
                        ));
                        continue;
                    };
                    response_type = Some((
                        match s.to_ascii_lowercase().as_str() {
                            "single" | "singleton" => ResponseType::Singleton,
                            "stream" => ResponseType::Stream,
                            "chunk" | "chunked" => ResponseType::Chunked,
                            _ => {
                                errors.push(invalid(
                                    at,
                                    format!("Unknown response type: {}", conf::go_quote(s)),
                                ));
                                continue;
                            }
                        },
                        at.clone(),
                    ));
                }
                "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                    if threshold.is_some() {
                        errors.push(invalid(at, "Duplicate response threshold detected".into()));
                        continue;
                    }
                    let Value::String(s) = &e.value.value else {
                        errors.push(invalid(
                            at,
                            format!(
                                "Expected response threshold to be a parseable time duration, got {}",
                                e.value.value.type_name()
                            ),
                        ));
                        continue;
                    };
                    match conf::parse_duration(s)
                        .ok()
                        .and_then(|ns| u64::try_from(ns).ok())
                    {
                        Some(ns) => threshold = Some((Duration::from_nanos(ns), at.clone())),
                        None => {
                            errors.push(invalid(
                                at,
                                format!(
                                    "Expected response threshold to be a parseable time duration, got {}",
                                    conf::go_quote(s)
                                ),
                            ));
                            continue;
                        }
                    }
                }
                "accounts" => {
                    let Value::Array(list) = &e.value.value else {
                        return Err(wrong_type(e, "[]interface {}"));
                    };
                    let mut names = Vec::new();
                    for n in list {
                        match &n.value {
                            Value::String(s) => names.push(s.clone()),
                            v => {
                                return Err(invalid(
                                    &n.at,
                                    format!(
                                        "interface conversion: interface {{}} is {}, not string",
                                        v.type_name()
                                    ),
                                ))
                            }
                        }
                    }
                    accounts = Some(names);
                }
                k @ ("latency" | "account_token_position" | "allow_trace") => {
                    errors.push(invalid(
                        at,
                        format!("export {} is not supported yet", conf::go_quote(k)),
                    ));
                }
                _ if e.used_as_variable => {}
                _ => errors.push(ConfError::new(at, ErrorKind::UnknownField(e.key.clone()))),
            }
        }
        let Some((kind, subject)) = kind else {
            continue;
        };
        if kind == ExportKind::Stream {
            for at in [
                response_type.as_ref().map(|r| &r.1),
                threshold.as_ref().map(|t| &t.1),
            ]
            .into_iter()
            .flatten()
            {
                errors.push(invalid(
                    at,
                    "Detected response directive on non-service".into(),
                ));
            }
        }
        out.push(ExportConfig {
            kind,
            subject,
            accounts,
            response_type: response_type.map(|r| r.0).unwrap_or_default(),
            response_threshold: threshold.map(|t| t.0),
        });
    }
    Ok(out)
}

/// An account's `imports: [{stream: {account, subject}, prefix | to},
/// {service: {account, subject}, to, share}]`.
fn parse_imports(
    entry: &Entry,
    errors: &mut Vec<ConfError>,
) -> Result<Vec<ImportConfig>, ConfError> {
    let Value::Array(items) = &entry.value.value else {
        return Err(invalid(
            &entry.key_at,
            format!(
                "Imports should be an array, got {}",
                &entry.value.value.type_name()
            ),
        ));
    };
    let mut out: Vec<ImportConfig> = Vec::new();
    for item in items {
        let Value::Map(map) = &item.value else {
            errors.push(invalid(
                &item.at,
                format!(
                    "Import Items should be a map with type entry, got {}",
                    &item.value.type_name()
                ),
            ));
            continue;
        };
        let mut what: Option<(ExportKind, String, String)> = None;
        let (mut prefix, mut to, mut share) = (None, None, false);
        let mut to_at = None;
        for e in map.entries() {
            let key = e.key.to_ascii_lowercase();
            let at = &e.key_at;
            match key.as_str() {
                "stream" | "service" => {
                    let this = if key == "stream" {
                        ExportKind::Stream
                    } else {
                        ExportKind::Service
                    };
                    if what.as_ref().is_some_and(|w| w.0 != this) {
                        errors.push(invalid(
                            at,
                            match this {
                                ExportKind::Stream => "Detected stream but already saw a service",
                                ExportKind::Service => "Detected service but already saw a stream",
                            }
                            .into(),
                        ));
                        continue;
                    }
                    let Value::Map(body) = &e.value.value else {
                        let label = if this == ExportKind::Stream {
                            "Stream"
                        } else {
                            "Service"
                        };
                        errors.push(invalid(
                            at,
                            format!(
                                "{label} entry should be an account map, got {}",
                                &e.value.value.type_name()
                            ),
                        ));
                        continue;
                    };
                    let (mut account, mut subject) = (String::new(), String::new());
                    for f in body.entries() {
                        match f.key.to_ascii_lowercase().as_str() {
                            "account" => account = string(f)?,
                            "subject" => subject = string(f)?,
                            _ if f.used_as_variable => {}
                            _ => errors.push(ConfError::new(
                                &f.key_at,
                                ErrorKind::UnknownField(f.key.clone()),
                            )),
                        }
                    }
                    if account.is_empty() || subject.is_empty() {
                        errors.push(invalid(at, "Expect an account name and a subject".into()));
                        continue;
                    }
                    what = Some((this, account, subject));
                }
                "prefix" => prefix = Some(string(e)?),
                "to" => {
                    to = Some(string(e)?);
                    to_at = Some(at.clone());
                }
                "share" => share = boolean(e)?,
                _ if e.used_as_variable => {}
                _ => errors.push(ConfError::new(at, ErrorKind::UnknownField(e.key.clone()))),
            }
        }
        let Some((kind, account, subject)) = what else {
            continue;
        };
        match kind {
            ExportKind::Stream => {
                let prefix = prefix.filter(|p| !p.is_empty());
                let to = to.filter(|t| !t.is_empty());
                if let (Some(_), Some(_), Some(at)) = (&prefix, &to, &to_at) {
                    errors.push(invalid(
                        at,
                        "Stream import can not have a 'prefix' and a 'to' property".into(),
                    ));
                    continue;
                }
                out.push(ImportConfig::Stream {
                    account,
                    subject,
                    prefix,
                    to,
                });
            }
            ExportKind::Service => {
                let to = to
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| subject.clone());
                let dup = out.iter().find_map(|i| match i {
                    ImportConfig::Service {
                        account,
                        subject,
                        to: t,
                        ..
                    } if *t == to => Some((account.clone(), subject.clone())),
                    _ => None,
                });
                if let Some((dup_acc, dup_sub)) = dup {
                    errors.push(invalid(
                        &item.at,
                        format!(
                            "Duplicate service import subject {}, previously used in import for account {}, subject {}",
                            conf::go_quote(&to),
                            conf::go_quote(&dup_acc),
                            conf::go_quote(&dup_sub)
                        ),
                    ));
                    continue;
                }
                out.push(ImportConfig::Service {
                    account,
                    subject,
                    to,
                    share,
                });
            }
        }
    }
    Ok(out)
}

/// `users: [ {user, password, permissions}, {nkey, permissions} ]`.
fn parse_users(entry: &Entry) -> Result<(Vec<User>, Vec<NkeyUser>), ConfError> {
    let Value::Array(items) = &entry.value.value else {
        return Err(invalid(
            &entry.key_at,
            format!(
                "Expected users field to be an array, got {}",
                entry.value.value.type_name()
            ),
        ));
    };
    let (mut users, mut nkeys) = (Vec::new(), Vec::new());
    for item in items {
        let Value::Map(map) = &item.value else {
            return Err(invalid(
                &item.at,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    item.value.type_name()
                ),
            ));
        };
        let (mut user, mut nkey) = (User::default(), NkeyUser::default());
        let mut permissions = None;
        let mut types = Vec::new();
        for e in map.entries() {
            match e.key.to_ascii_lowercase().as_str() {
                "nkey" => nkey.nkey = string(e)?,
                "user" | "username" => user.username = string(e)?,
                "pass" | "password" => user.password = string(e)?,
                "permission" | "permissions" | "authorization" => {
                    permissions = Some(parse_permissions(e)?)
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    types = parse_connection_types(e)?
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
        if nkey.nkey.is_empty() && user.username.is_empty() {
            return Err(invalid(&item.at, "User entry requires a user".into()));
        }
        if nkey.nkey.is_empty() {
            user.permissions = permissions;
            user.allowed_connection_types = types;
            users.push(user);
            continue;
        }
        if !auth::is_valid_user_nkey(&nkey.nkey) {
            return Err(invalid(
                &item.at,
                "Not a valid public nkey for a user".into(),
            ));
        }
        if !user.username.is_empty() || !user.password.is_empty() {
            return Err(invalid(
                &item.at,
                "Nkey users do not take usernames or passwords".into(),
            ));
        }
        nkey.permissions = permissions;
        nkey.allowed_connection_types = types;
        nkeys.push(nkey);
    }
    Ok((users, nkeys))
}

/// `allowed_connection_types`: a string or a list, checked and upper-cased.
fn parse_connection_types(entry: &Entry) -> Result<Vec<String>, ConfError> {
    let items: Vec<&Item> = match &entry.value.value {
        Value::Array(items) => items.iter().collect(),
        _ => vec![&entry.value],
    };
    let mut types = Vec::new();
    for item in items {
        let Value::String(s) = &item.value else {
            return Err(invalid(
                &item.at,
                format!(
                    "error parsing allowed connection types: unsupported type {}",
                    item.value.type_name()
                ),
            ));
        };
        let upper = s.to_ascii_uppercase();
        if !auth::CONNECTION_TYPES.contains(&upper.as_str()) {
            return Err(invalid(
                &item.at,
                format!("unknown connection type {}", conf::go_quote(s)),
            ));
        }
        types.push(upper);
    }
    Ok(types)
}

/// `permissions { publish, subscribe, allow_responses }`.
fn parse_permissions(entry: &Entry) -> Result<Permissions, ConfError> {
    let Value::Map(map) = &entry.value.value else {
        return Err(invalid(
            &entry.key_at,
            format!(
                "Expected permissions to be a map/struct, got {}",
                entry.value.value.type_name()
            ),
        ));
    };
    let mut p = Permissions::default();
    for e in map.entries() {
        match e.key.to_ascii_lowercase().as_str() {
            // Route terms: import is publish, export is subscribe.
            "pub" | "publish" | "import" => p.publish = parse_subject_permission(e)?,
            "sub" | "subscribe" | "export" => p.subscribe = parse_subject_permission(e)?,
            "publish_allow_responses" | "allow_responses" => {
                p.allow_responses = match &e.value.value {
                    Value::Bool(on) => on.then(ResponsePermission::default),
                    Value::Map(m) => Some(parse_allow_responses(m)?),
                    _ => {
                        return Err(invalid(
                            &e.value.at,
                            "error parsing response permissions, expected a boolean or a map"
                                .into(),
                        ))
                    }
                }
            }
            _ if e.used_as_variable => {}
            k => {
                return Err(invalid(
                    &e.key_at,
                    format!("Unknown field {} parsing permissions", conf::go_quote(k)),
                ))
            }
        }
    }
    Ok(p.normalized())
}

/// `publish`/`subscribe`: a subject, a list, or `{allow, deny}`. An empty
/// map or list allows everything, as in nats-server.
fn parse_subject_permission(entry: &Entry) -> Result<Option<SubjectPermission>, ConfError> {
    let Value::Map(map) = &entry.value.value else {
        let allow = perm_subjects(&entry.value)?;
        return Ok(Some(SubjectPermission {
            allow: (!allow.is_empty()).then_some(allow),
            deny: Vec::new(),
        }));
    };
    if map.entries().is_empty() {
        return Ok(None);
    }
    let mut p = SubjectPermission::default();
    for e in map.entries() {
        match e.key.to_ascii_lowercase().as_str() {
            "allow" => {
                let allow = perm_subjects(&e.value)?;
                p.allow = (!allow.is_empty()).then_some(allow);
            }
            "deny" => p.deny = perm_subjects(&e.value)?,
            _ if e.used_as_variable => {}
            k => {
                return Err(invalid(
                    &e.key_at,
                    format!(
                        "Unknown field name {} parsing subject permissions, only 'allow' or 'deny' are permitted",
                        conf::go_quote(k)
                    ),
                ))
            }
        }
    }
    Ok(Some(p))
}

/// A subject or a list of subjects; each may be `"subject queue"`.
fn perm_subjects(item: &Item) -> Result<Vec<String>, ConfError> {
    let subjects = match &item.value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                let Value::String(s) = &i.value else {
                    return Err(invalid(
                        &i.at,
                        "Subject in permissions array cannot be cast to string".into(),
                    ));
                };
                out.push(s.clone());
            }
            out
        }
        other => {
            return Err(invalid(
                &item.at,
                format!(
                    "Expected subject permissions to be a subject, or array of subjects, got {}",
                    other.type_name()
                ),
            ))
        }
    };
    for s in &subjects {
        if subject::is_valid_subject(s.as_bytes()) {
            continue;
        }
        let fields: Vec<&str> = s.split_ascii_whitespace().collect();
        let bad = match fields.as_slice() {
            [subj, _queue] if !subject::is_valid_subject(subj.as_bytes()) => subj,
            [_, _] => continue,
            _ => s.as_str(),
        };
        return Err(invalid(
            &item.at,
            format!("subject {} is not a valid subject", conf::go_quote(bad)),
        ));
    }
    Ok(subjects)
}

/// `allow_responses { max, expires }`: 0 keeps the default, a negative
/// value means no limit (nats-server).
fn parse_allow_responses(map: &Map) -> Result<ResponsePermission, ConfError> {
    let mut rp = ResponsePermission::default();
    for e in map.entries() {
        match e.key.to_ascii_lowercase().as_str() {
            "max" | "max_msgs" | "max_messages" | "max_responses" => {
                let n = int(e)?;
                if n < 0 {
                    rp.max_msgs = None;
                } else if n > 0 {
                    rp.max_msgs = Some(n.unsigned_abs());
                }
            }
            "expires" | "expiration" | "ttl" => {
                let Value::String(text) = &e.value.value else {
                    return Err(invalid(
                        &e.value.at,
                        "error parsing expires, not a duration string".into(),
                    ));
                };
                let ns = conf::parse_duration(text)
                    .map_err(|err| invalid(&e.value.at, format!("error parsing expires: {err}")))?;
                if ns < 0 {
                    rp.expires = None;
                } else if ns > 0 {
                    rp.expires = Some(Duration::from_nanos(ns.unsigned_abs()));
                }
            }
            _ if e.used_as_variable => {}
            k => {
                return Err(invalid(
                    &e.key_at,
                    format!("Unknown field {} parsing permissions", conf::go_quote(k)),
                ))
            }
        }
    }
    Ok(rp)
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

/// `jetstream { ... }` and `-js`: whether JetStream runs, and its server-wide
/// limits (nats-server's `JetStream*` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// `jetstream: enabled` / `-js`.
    pub enabled: bool,
    /// `max_memory_store`: bytes of memory streams; -1 = no limit set.
    pub max_memory: i64,
    /// `max_file_store`: bytes of file streams; -1 = no limit set.
    pub max_store: i64,
    /// `domain`.
    pub domain: Option<String>,
    /// `sync_interval`: how often file streams are fsynced (2 min).
    pub sync_interval: Duration,
    /// `sync_interval: always`: fsync after every message.
    pub sync_always: bool,
    /// `limits { ... }`.
    pub limits: JsServerLimits,
    /// `key` / `ek` / `encryption_key`: the secret file streams are encrypted
    /// with at rest; `None` (or an empty string) leaves them plain.
    pub key: Option<String>,
    /// `cipher`: the store cipher when `key` is set; ChaCha20-Poly1305 unless
    /// `aes` is named (nats-server's default is ChaCha).
    pub cipher: Cipher,
}

/// `jetstream { limits { ... } }`: server-wide bounds on consumers and
/// streams (nats-server's `JSLimitOpts`); 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsServerLimits {
    /// `max_ack_pending`: the default and ceiling of a consumer's `max_ack_pending`.
    pub max_ack_pending: i64,
    /// `max_request_batch`: the default and ceiling of a pull consumer's `max_batch`.
    pub max_request_batch: i64,
    /// `duplicate_window` in ns: the default and ceiling of a stream's duplicate window.
    pub duplicate_window: i64,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            enabled: false,
            max_memory: -1,
            max_store: -1,
            domain: None,
            sync_interval: Duration::from_secs(120),
            sync_always: false,
            limits: JsServerLimits::default(),
            key: None,
            cipher: Cipher::ChaCha20Poly1305,
        }
    }
}

impl Options {
    /// `jetstream: true|enabled|disabled` or `jetstream { ... }`, as
    /// nats-server's `parseJetStream` reads it.
    fn apply_jetstream(
        &mut self,
        entry: &Entry,
        warnings: &mut Vec<ConfError>,
    ) -> Result<(), ConfError> {
        let at = &entry.value.at;
        match &entry.value.value {
            Value::Bool(b) => self.jetstream.enabled = *b,
            Value::String(s) => {
                self.jetstream.enabled = match s.to_ascii_lowercase().as_str() {
                    "enabled" | "enable" => true,
                    "disabled" | "disable" => false,
                    _ => {
                        return Err(invalid(
                            at,
                            format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                        ))
                    }
                }
            }
            Value::Map(map) => {
                let mut enable = true;
                for e in map.entries() {
                    match e.key.to_ascii_lowercase().as_str() {
                        "store" | "store_dir" | "storedir" => {
                            if self.store_dir.is_some() {
                                return Err(invalid(
                                    &e.value.at,
                                    "Duplicate 'store_dir' configuration".into(),
                                ));
                            }
                            self.store_dir = Some(PathBuf::from(string(e)?));
                        }
                        "sync" | "sync_interval" => match &e.value.value {
                            Value::String(v) if v.eq_ignore_ascii_case("always") => {
                                self.jetstream.sync_always = true;
                            }
                            _ => self.jetstream.sync_interval = duration(e, warnings)?,
                        },
                        "max_memory_store" | "max_mem_store" | "max_mem" => {
                            self.jetstream.max_memory = storage_size(e, "max_mem_store")?
                        }
                        "max_file_store" | "max_file" => {
                            self.jetstream.max_store = storage_size(e, "max_file_store")?
                        }
                        "domain" => self.jetstream.domain = Some(string(e)?),
                        "enable" | "enabled" => enable = boolean(e)?,
                        "strict" => {
                            boolean(e)?;
                        }
                        "limits" => self.jetstream.limits = jetstream_limits(e)?,
                        "key" | "ek" | "encryption_key" => {
                            self.jetstream.key = Some(string(e)?).filter(|k| !k.is_empty());
                        }
                        "cipher" => {
                            let name = string(e)?;
                            self.jetstream.cipher = match name.to_ascii_lowercase().as_str() {
                                "chacha" | "chachapoly" => Cipher::ChaCha20Poly1305,
                                "aes" => Cipher::Aes256Gcm,
                                _ => {
                                    return Err(invalid(
                                        &e.key_at,
                                        format!("Unknown cipher type: {}", conf::go_quote(&name)),
                                    ))
                                }
                            };
                        }
                        // nats-server's other keys: refused, not ignored, as
                        // the server would not do what the file says.
                        k @ ("prev_key"
                        | "prev_ek"
                        | "prev_encryption_key"
                        | "extension_hint"
                        | "tpm"
                        | "unique_tag"
                        | "max_outstanding_catchup"
                        | "max_buffered_size"
                        | "max_buffered_msgs"
                        | "request_queue_limit"
                        | "info_queue_limit"
                        | "meta_compact"
                        | "meta_compact_size"
                        | "meta_compact_sync"
                        | "max_concurrent_io") => {
                            return Err(invalid(
                                &e.key_at,
                                format!("jetstream {} is not supported yet", conf::go_quote(k)),
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
                self.jetstream.enabled = enable;
            }
            _ => return Err(wrong_type(entry, "map[string]interface {}")),
        }
        Ok(())
    }
}

/// `jetstream { limits { ... } }` with nats-server's keys
/// (`parseJetStreamLimits`); the block replaces earlier limits as a whole.
fn jetstream_limits(entry: &Entry) -> Result<JsServerLimits, ConfError> {
    let Value::Map(map) = &entry.value.value else {
        return Err(invalid(
            &entry.value.at,
            format!(
                "Expected a map to define JetStreamLimits, got {}",
                entry.value.value.type_name()
            ),
        ));
    };
    let mut limits = JsServerLimits::default();
    for e in map.entries() {
        match e.key.to_ascii_lowercase().as_str() {
            "max_ack_pending" => limits.max_ack_pending = int(e)?,
            "max_request_batch" => limits.max_request_batch = int(e)?,
            "duplicate_window" => {
                limits.duplicate_window =
                    conf::parse_duration(&string(e)?).map_err(|err| invalid(&e.value.at, err))?;
            }
            // nats-server counts replicated streams and consumers against it;
            // a server without a cluster has none.
            "max_ha_assets" => {
                int(e)?;
            }
            // Newer nats-server's atomic batch publish limits.
            "batch" => {
                return Err(invalid(
                    &e.key_at,
                    "jetstream limits \"batch\" is not supported yet".into(),
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
    Ok(limits)
}

/// nats-server's `getStorageSize`: an integer (the conf parser already
/// applied `K`/`MB`/`GiB` suffixes) or a string such as `"1G"`.
fn storage_size(entry: &Entry, what: &str) -> Result<i64, ConfError> {
    match &entry.value.value {
        Value::Int(n) => Ok(*n),
        Value::String(s) => {
            let bad = || invalid(&entry.value.at, format!("{what} {s:?} is not a valid size"));
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let n: i64 = t[..split].parse().map_err(|_| bad())?;
            let mult: i64 = match t[split..].to_ascii_uppercase().as_str() {
                "" => 1,
                "K" | "KB" => 1 << 10,
                "M" | "MB" => 1 << 20,
                "G" | "GB" => 1 << 30,
                "T" | "TB" => 1 << 40,
                _ => return Err(bad()),
            };
            n.checked_mul(mult).ok_or_else(bad)
        }
        _ => Err(wrong_type(entry, "int64")),
    }
}

/// An account's JetStream limits (nats-server's `JetStreamAccountLimits`):
/// -1 (or, for the byte sizes of one stream, 0 or less) means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsAccountLimits {
    /// `max_memory`/`max_mem`: bytes of memory streams.
    pub max_memory: i64,
    /// `max_store`/`max_file`: bytes of file streams.
    pub max_store: i64,
    /// `max_streams`.
    pub max_streams: i64,
    /// `max_consumers`: consumers per stream.
    pub max_consumers: i64,
    /// `max_ack_pending`: the default and ceiling of consumers.
    pub max_ack_pending: i64,
    /// `mem_max_stream_bytes`: the largest `max_bytes` of a memory stream.
    pub memory_max_stream_bytes: i64,
    /// `disk_max_stream_bytes`: the largest `max_bytes` of a file stream.
    pub store_max_stream_bytes: i64,
    /// `max_bytes_required`: every stream must set `max_bytes`.
    pub max_bytes_required: bool,
}

impl Default for JsAccountLimits {
    /// nats-server's dynamic limits: nothing limited.
    fn default() -> Self {
        JsAccountLimits {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            store_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// An account's `jetstream`: `enabled`/`disabled`, a bool, or a limits map
/// (which enables it), with nats-server's keys (`parseJetStreamForAccount`).
fn account_jetstream(entry: &Entry) -> Result<(bool, JsAccountLimits), ConfError> {
    let mut limits = JsAccountLimits::default();
    let on = match &entry.value.value {
        Value::Bool(b) => *b,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "enable" => true,
            "disabled" | "disable" => false,
            _ => {
                return Err(invalid(
                    &entry.value.at,
                    format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                ))
            }
        },
        Value::Map(map) => {
            for e in map.entries() {
                let size = || match e.value.value {
                    Value::Int(n) => Ok(n),
                    _ => Err(invalid(
                        &e.value.at,
                        format!(
                            "Expected a parseable size for {}, got {}",
                            conf::go_quote(&e.key),
                            e.value.value.type_name()
                        ),
                    )),
                };
                match e.key.to_ascii_lowercase().as_str() {
                    "max_memory" | "max_mem" | "mem" | "memory" => limits.max_memory = size()?,
                    "max_store" | "max_file" | "max_disk" | "store" | "disk" => {
                        limits.max_store = size()?
                    }
                    "max_streams" | "streams" => limits.max_streams = size()?,
                    "max_consumers" | "consumers" => limits.max_consumers = size()?,
                    "max_ack_pending" => limits.max_ack_pending = size()?,
                    "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                        limits.memory_max_stream_bytes = size()?
                    }
                    "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                        limits.store_max_stream_bytes = size()?
                    }
                    "max_bytes_required" | "max_stream_bytes" | "max_bytes" => {
                        let Value::Bool(b) = e.value.value else {
                            return Err(invalid(
                                &e.value.at,
                                format!(
                                    "Expected a parseable bool for {}, got {}",
                                    conf::go_quote(&e.key),
                                    e.value.value.type_name()
                                ),
                            ));
                        };
                        limits.max_bytes_required = b;
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
            true
        }
        _ => return Err(wrong_type(entry, "map[string]interface {}")),
    };
    Ok((on, limits))
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
        assert!(o.conf_blocks.is_empty());
        assert_eq!(o.cluster.name.as_deref(), Some("c1"));
        assert_eq!((o.cluster.host.as_str(), o.cluster.port), ("0.0.0.0", 6222));
        assert_eq!(o.cluster.routes[0].addr(), "127.0.0.1:6223");
        assert!(o.jetstream.enabled);
    }

    #[test]
    fn mappings_top_level_and_per_account() {
        let o = ok(concat!(
            "mappings { foo: bar, \"o.*.*\": \"x.$2.$1\",\n",
            " w: [{destination: w.a, weight: \"40%\"}, {dest: w.b, weight: 60, cluster: c}] }\n",
            "accounts { A: { mappings: { s: {dest: t, weight: 100} } } }\n",
        ));
        let sources: Vec<&str> = o.mappings.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(sources, ["foo", "o.*.*", "w"]);
        assert_eq!(o.mappings[2].dests[0].weight, 40);
        assert_eq!(o.mappings[2].dests[1].cluster.as_deref(), Some("c"));
        assert_eq!(o.accounts[0].mappings[0].dests[0].subject, "t");
        assert!(err("mappings { \"a..b\": c }").contains("Subject \"a..b\" is not a valid subject"));
        assert!(err("mappings { a: [{dest: b}] }")
            .contains("Missing weight for mapping destination \"b\""));
        assert!(err("mappings { a: [{dest: b, weight: 101}] }")
            .contains("Invalid weight 101 for mapping destination"));
        assert!(err("mappings { a: [{dest: b, weight: 10, x: 1}] }")
            .contains("Unknown field \"x\" for mapping destination"));
        let e = err("mappings { \"a.*\": \"b.$2\" }");
        assert!(
            e.contains("Error adding mapping for \"a.*\" to \"b.$2\" : invalid mapping destination: wildcard index out of range in $2"),
            "{e}"
        );
        let e = err("mappings { a: [{dest: b, weight: 60}, {dest: c, weight: 50}] }");
        assert!(e.contains("total weight needs to be <= 100"), "{e}");
    }

    #[test]
    fn jetstream_block() {
        let o = ok(concat!(
            "jetstream {\n store_dir: /data\n max_memory_store: 1GB\n max_file_store: \"2G\"\n",
            " domain: hub\n sync_interval: \"10s\"\n}\n",
        ));
        assert!(o.jetstream.enabled);
        assert_eq!(o.store_dir, Some(PathBuf::from("/data")));
        assert_eq!(o.jetstream.max_memory, 1 << 30);
        assert_eq!(o.jetstream.max_store, 2 << 30);
        assert_eq!(o.jetstream.domain.as_deref(), Some("hub"));
        assert_eq!(o.jetstream.sync_interval, Duration::from_secs(10));
        assert!(!o.jetstream.sync_always);
        let o = ok("jetstream { enabled: false, sync: always }");
        assert!(!o.jetstream.enabled && o.jetstream.sync_always);
        assert!(ok("jetstream: true").jetstream.enabled);
        assert!(!ok("jetstream: disabled").jetstream.enabled);
        assert!(!ok("port: 1").jetstream.enabled);
        let o =
            ok("accounts { A: { jetstream: enabled }, B: { jetstream: { max_mem: 1M } }, C: {} }");
        let on: Vec<bool> = o.accounts.iter().map(|a| a.jetstream).collect();
        assert_eq!(on, [true, true, false]);
        assert_eq!(o.accounts[0].jetstream_limits, JsAccountLimits::default());
        assert_eq!(o.accounts[1].jetstream_limits.max_memory, 1_000_000);
    }

    /// nats-server's `parseJetStreamForAccount` keys and aliases; a key
    /// left out stays unlimited.
    #[test]
    fn account_jetstream_limits() {
        let o = ok(
            "accounts { A: { jetstream: { max_mem: 1K, max_file: 2KB, max_streams: 3, \
                    max_consumers: 4, max_ack_pending: 5, mem_max_stream_bytes: 6, \
                    disk_max_stream_bytes: 7, max_bytes_required: true } } }",
        );
        let l = o.accounts[0].jetstream_limits;
        assert_eq!(
            (
                l.max_memory,
                l.max_store,
                l.max_streams,
                l.max_consumers,
                l.max_ack_pending
            ),
            (1000, 2048, 3, 4, 5)
        );
        assert_eq!(
            (l.memory_max_stream_bytes, l.store_max_stream_bytes),
            (6, 7)
        );
        assert!(l.max_bytes_required);
        let l =
            ok("accounts { A: { jetstream: { memory: 1, store: 2, streams: 3, consumers: 4 } } }")
                .accounts[0]
                .jetstream_limits;
        assert_eq!(
            (l.max_memory, l.max_store, l.max_streams, l.max_consumers),
            (1, 2, 3, 4)
        );
        assert_eq!(l.max_ack_pending, -1);
        assert!(!l.max_bytes_required);
        assert_eq!(
            err("accounts { A: { jetstream: { max_mem: \"lots\" } } }"),
            "t.conf:1:39: Expected a parseable size for \"max_mem\", got string"
        );
        assert_eq!(
            err("accounts { A: { jetstream: { max_bytes: 1 } } }"),
            "t.conf:1:41: Expected a parseable bool for \"max_bytes\", got int64"
        );
        assert!(err("accounts { A: { jetstream: { bogus: 1 } } }").contains("unknown field"));
    }

    /// nats-server's `parseJetStreamLimits` keys (2.9.10's four; newer
    /// servers' `batch` is refused).
    #[test]
    fn jetstream_server_limits() {
        let o = ok(concat!(
            "jetstream { limits { max_ack_pending: 100, max_request_batch: 10, ",
            "duplicate_window: \"30s\", max_ha_assets: 2 } }",
        ));
        let l = o.jetstream.limits;
        assert_eq!((l.max_ack_pending, l.max_request_batch), (100, 10));
        assert_eq!(l.duplicate_window, 30_000_000_000);
        assert_eq!(
            ok("jetstream {}").jetstream.limits,
            JsServerLimits::default()
        );
        assert_eq!(
            err("jetstream { limits: 1 }"),
            "t.conf:1:21: Expected a map to define JetStreamLimits, got int64"
        );
        assert_eq!(
            err("jetstream { limits { duplicate_window: \"soon\" } }"),
            "t.conf:1:40: time: invalid duration \"soon\""
        );
        assert!(err("jetstream { limits { max_request_batch: \"x\" } }")
            .contains("interface conversion"));
        assert!(err("jetstream { limits { batch { max_msgs: 1 } } }").contains("not supported"));
        assert!(err("jetstream { limits { bogus: 1 } }").contains("unknown field"));
    }

    /// nats-server 2.9.10 `parseJetStream`: `key`, `ek` and `encryption_key`
    /// name the secret; `cipher` takes chacha, chachapoly or aes in any case,
    /// ChaCha when absent. An unknown cipher is reported at the key's position
    /// (observed: `nats-server -t` says `:3:3:` for `  cipher:    rot13`).
    #[test]
    fn jetstream_encryption_key_and_cipher() {
        let o = ok("jetstream { key: s3cr3t }");
        assert_eq!(o.jetstream.key.as_deref(), Some("s3cr3t"));
        assert_eq!(o.jetstream.cipher, Cipher::ChaCha20Poly1305);
        for k in ["ek", "encryption_key", "KEY"] {
            let o = ok(&format!("jetstream {{ {k}: \"x y\" }}"));
            assert_eq!(o.jetstream.key.as_deref(), Some("x y"));
        }
        assert_eq!(ok("jetstream { key: \"\" }").jetstream.key, None);
        assert_eq!(ok("jetstream {}").jetstream.key, None);
        for (name, want) in [
            ("chacha", Cipher::ChaCha20Poly1305),
            ("ChaChaPoly", Cipher::ChaCha20Poly1305),
            ("aes", Cipher::Aes256Gcm),
            ("AES", Cipher::Aes256Gcm),
        ] {
            let o = ok(&format!("jetstream {{ key: k, cipher: {name} }}"));
            assert_eq!(o.jetstream.cipher, want, "{name}");
        }
        assert_eq!(
            err("jetstream { cipher: \"AES-GCM\" }"),
            "t.conf:1:13: Unknown cipher type: \"AES-GCM\""
        );
    }

    #[test]
    fn jetstream_block_errors() {
        let (_, r) = apply("jetstream: maybe");
        assert_eq!(
            r.errors[0].to_string(),
            "t.conf:1:12: Expected 'enabled' or 'disabled' for string value, got 'maybe'"
        );
        let (_, r) = apply("jetstream {\n bogus: 1\n}");
        assert!(r.errors[0]
            .to_string()
            .starts_with("t.conf:2:2: unknown field"));
        let (_, r) = apply("store_dir: /a\njetstream { store_dir: /b }");
        assert!(r.errors[0]
            .to_string()
            .ends_with("Duplicate 'store_dir' configuration"));
        let (_, r) = apply("jetstream {\n cipher: des\n}");
        assert_eq!(
            r.errors[0].to_string(),
            "t.conf:2:2: Unknown cipher type: \"des\""
        );
        let (_, r) = apply("jetstream {\n prev_key: k\n}");
        assert_eq!(
            r.errors[0].to_string(),
            "t.conf:2:2: jetstream \"prev_key\" is not supported yet"
        );
        let (_, r) = apply("jetstream { max_file_store: \"12Q\" }");
        assert_eq!(r.errors.len(), 1);
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
        assert!(crate::auth::Authenticator::new(&o).required());
        assert_eq!(
            err("authorization {\n  user: u\n  token: t\n}"),
            "t.conf:1:1: Cannot have a user/pass and token"
        );
        assert_eq!(
            err("authorization {\n  usr: u\n}"),
            "t.conf:2:3: unknown field \"usr\""
        );
        // `users: []` turns no auth on, but still conflicts with a single user.
        assert!(!crate::auth::Authenticator::new(&ok("authorization { users: [] }")).required());
        assert_eq!(
            err("authorization { user: a, users: [] }"),
            "t.conf:1:1: Can not have a single user/pass and a users array"
        );
        assert_eq!(
            err("authorization { token: a, users: [] }"),
            "t.conf:1:1: Can not have a token and a users array"
        );
    }

    const NKEY_USER: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";

    fn perms_of(o: &Options, user: &str) -> Permissions {
        o.users
            .iter()
            .find(|u| u.username == user)
            .and_then(|u| u.permissions.clone())
            .unwrap_or_else(|| panic!("{user} has no permissions"))
    }

    fn allow_deny(allow: Option<&[&str]>, deny: &[&str]) -> Option<SubjectPermission> {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Some(SubjectPermission {
            allow: allow.map(strings),
            deny: strings(deny),
        })
    }

    #[test]
    fn users_with_passwords_and_nkeys() {
        let o = ok(&format!(
            "authorization {{\n users: [\n  {{user: a, password: pa}}\n  {{username: b, pass: \"$2a$11$x\"}}\n  {{nkey: {NKEY_USER}}}\n ]\n timeout: 1\n}}"
        ));
        assert!(crate::auth::Authenticator::new(&o).required());
        let names: Vec<(&str, &str)> = o
            .users
            .iter()
            .map(|u| (u.username.as_str(), u.password.as_str()))
            .collect();
        assert_eq!(names, [("a", "pa"), ("b", "$2a$11$x")]);
        assert_eq!(o.nkeys.len(), 1);
        assert_eq!(o.nkeys[0].nkey, NKEY_USER);
        assert!(o.users.iter().all(|u| u.permissions.is_none()));
    }

    #[test]
    fn bad_user_entries_are_refused_as_nats_server_does() {
        assert_eq!(
            err("authorization { users: [ {password: p} ] }"),
            "t.conf:1:26: User entry requires a user"
        );
        assert!(err("authorization { users: [ {nkey: UABC} ] }")
            .ends_with("Not a valid public nkey for a user"));
        // A valid key of another kind (an account key) is refused too.
        assert!(err(
            "authorization { users: [ {nkey: ADXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4} ] }"
        )
        .ends_with("Not a valid public nkey for a user"));
        assert!(err(&format!(
            "authorization {{ users: [ {{nkey: {NKEY_USER}, user: x}} ] }}"
        ))
        .ends_with("Nkey users do not take usernames or passwords"));
        assert!(err("authorization { users: [ {user: a}, {user: a} ] }")
            .ends_with("Duplicate user \"a\" detected"));
        assert!(err(&format!(
            "authorization {{ users: [ {{nkey: {NKEY_USER}}}, {{nkey: {NKEY_USER}}} ] }}"
        ))
        .ends_with(&format!("Duplicate nkey \"{NKEY_USER}\" detected")));
        assert!(err("authorization { users: a }")
            .ends_with("Expected users field to be an array, got string"));
        assert!(err("authorization { users: [ a ] }")
            .ends_with("Expected user entry to be a map/struct, got string"));
        assert_eq!(
            err("authorization {\n users: [ {user: a, nope: 1} ]\n}"),
            "t.conf:2:21: unknown field \"nope\""
        );
    }

    #[test]
    fn permissions_every_form() {
        let o = ok(concat!(
            "authorization { users: [\n",
            " {user: s, permissions: {publish: \"a.>\", subscribe: \"b\"}}\n",
            " {user: l, permissions: {pub: [\"a\", \"b.*\"], sub: [\"c\", \"d q\"]}}\n",
            " {user: m, permissions: {publish: {allow: [\">\"], deny: \"secret.>\"}, subscribe: {deny: [\"x\"]}}}\n",
            " {user: e, permissions: {publish: [], subscribe: {}}}\n",
            " {user: r, permissions: {subscribe: \"req\", allow_responses: true}}\n",
            " {user: t, permissions: {publish: \"p\", allow_responses: {max: 5, expires: \"1m\"}}}\n",
            " {user: u, permissions: {import: \"i\", export: \"x\", publish_allow_responses: {max: -1, ttl: \"-1s\"}}}\n",
            " {user: z, permissions: {allow_responses: false}}\n",
            "] }",
        ));
        let p = perms_of(&o, "s");
        assert_eq!(p.publish, allow_deny(Some(&["a.>"]), &[]));
        assert_eq!(p.subscribe, allow_deny(Some(&["b"]), &[]));
        let p = perms_of(&o, "l");
        assert_eq!(p.publish, allow_deny(Some(&["a", "b.*"]), &[]));
        assert_eq!(p.subscribe, allow_deny(Some(&["c", "d q"]), &[]));
        let p = perms_of(&o, "m");
        assert_eq!(p.publish, allow_deny(Some(&[">"]), &["secret.>"]));
        assert_eq!(p.subscribe, allow_deny(None, &["x"]));
        // An empty list or map allows everything (nats-server leaves it nil).
        let p = perms_of(&o, "e");
        assert_eq!(p.publish, allow_deny(None, &[]));
        assert_eq!(p.subscribe, None);
        assert!(p.can_publish(b"anything"));
        // allow_responses turns the blanket publish allow off.
        let p = perms_of(&o, "r");
        assert_eq!(p.allow_responses, Some(ResponsePermission::default()));
        assert_eq!(
            ResponsePermission::default(),
            ResponsePermission {
                max_msgs: Some(1),
                expires: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(p.publish, allow_deny(Some(&[]), &[]));
        assert!(!p.can_publish(b"anything"));
        let p = perms_of(&o, "t");
        assert_eq!(
            p.allow_responses,
            Some(ResponsePermission {
                max_msgs: Some(5),
                expires: Some(Duration::from_secs(60))
            })
        );
        assert_eq!(p.publish, allow_deny(Some(&["p"]), &[]));
        let p = perms_of(&o, "u");
        assert_eq!(p.publish, allow_deny(Some(&["i"]), &[]));
        assert_eq!(p.subscribe, allow_deny(Some(&["x"]), &[]));
        assert_eq!(
            p.allow_responses,
            Some(ResponsePermission {
                max_msgs: None,
                expires: None
            })
        );
        let p = perms_of(&o, "z");
        assert_eq!(p, Permissions::default());
    }

    #[test]
    fn default_permissions_apply_to_users_without_their_own() {
        for key in ["default_permissions", "default_permission", "permissions"] {
            let o = ok(&format!(
                "authorization {{\n {key}: {{publish: \"d\"}}\n users: [{{user: a}}, {{user: b, permissions: {{publish: \"own\"}}}}, {{nkey: {NKEY_USER}}}]\n}}"
            ));
            assert_eq!(perms_of(&o, "a").publish, allow_deny(Some(&["d"]), &[]));
            assert_eq!(perms_of(&o, "b").publish, allow_deny(Some(&["own"]), &[]));
            let nk = o.nkeys[0].permissions.clone().expect("default applied");
            assert_eq!(nk.publish, allow_deny(Some(&["d"]), &[]));
            assert!(o.default_permissions.is_some());
        }
        // Order in the block does not matter.
        let o = ok("authorization { users: [{user: a}], default_permissions: {subscribe: s} }");
        assert_eq!(perms_of(&o, "a").subscribe, allow_deny(Some(&["s"]), &[]));
    }

    #[test]
    fn bad_permissions_are_refused() {
        let bad = |perm: &str| {
            err(&format!(
                "authorization {{ users: [{{user: a, permissions: {perm}}}] }}"
            ))
        };
        assert!(bad("x").ends_with("Expected permissions to be a map/struct, got string"));
        assert!(bad("{publish: {allow: a, only: b}}").ends_with(
            "Unknown field name \"only\" parsing subject permissions, only 'allow' or 'deny' are permitted"
        ));
        assert!(bad("{publsh: a}").ends_with("Unknown field \"publsh\" parsing permissions"));
        assert!(bad("{publish: [1]}")
            .ends_with("Subject in permissions array cannot be cast to string"));
        assert!(bad("{publish: 1}").ends_with(
            "Expected subject permissions to be a subject, or array of subjects, got int64"
        ));
        assert!(bad("{publish: \"a..b\"}").ends_with("subject \"a..b\" is not a valid subject"));
        assert!(bad("{subscribe: \"a..b q\"}").ends_with("subject \"a..b\" is not a valid subject"));
        assert!(bad("{subscribe: \"a q r\"}").ends_with("subject \"a q r\" is not a valid subject"));
        assert!(bad("{allow_responses: 1}")
            .ends_with("error parsing response permissions, expected a boolean or a map"));
        assert!(bad("{allow_responses: {expires: 5}}")
            .ends_with("error parsing expires, not a duration string"));
        assert!(bad("{allow_responses: {expires: \"5x\"}}")
            .contains("error parsing expires: time: unknown unit"));
        assert!(bad("{allow_responses: {maximum: 5}}")
            .ends_with("Unknown field \"maximum\" parsing permissions"));
    }

    #[test]
    fn allowed_connection_types_are_checked_and_upper_cased() {
        let o = ok("authorization { users: [{user: a, allowed_connection_types: [standard, \"WEBSOCKET\"]}] }");
        assert_eq!(
            o.users[0].allowed_connection_types,
            ["STANDARD", "WEBSOCKET"]
        );
        let o = ok("authorization { users: [{user: a, clients: mqtt}] }");
        assert_eq!(o.users[0].allowed_connection_types, ["MQTT"]);
        assert!(
            err("authorization { users: [{user: a, connection_types: [bogus]}] }")
                .ends_with("unknown connection type \"bogus\"")
        );
    }

    #[test]
    fn no_auth_user_must_name_a_user() {
        let o = ok("no_auth_user: a\nauthorization { users: [{user: a}] }");
        assert_eq!(o.no_auth_user.as_deref(), Some("a"));
        assert_eq!(
            err("no_auth_user: a"),
            "t.conf:1:1: no_auth_user: \"a\" present, but users are not defined"
        );
        assert_eq!(
            err("authorization { users: [{user: b}] }\nno_auth_user: a"),
            "t.conf:2:1: no_auth_user: \"a\" not present as user in authorization block or account configuration"
        );
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
            "no_auth_user: u\nauthorization { users: [{user: u}] }\n",
            "system_account: SYS\nhttp: \"0.0.0.0:8222\"\n",
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
        assert_eq!(
            o.conf_blocks.len(),
            5,
            "cluster and mappings are applied, not kept"
        );
        assert!(o.jetstream.enabled);
    }

    #[test]
    fn accounts_with_users_exports_and_imports() {
        let o = ok(concat!(
            "authorization { users: [{user: g, password: p}] }\n",
            "accounts: {\n",
            "  A: { users: [{user: a, password: p}], exports: [{stream: \"pub.>\"}, ",
            "{service: \"svc.*\", response_type: stream, response_threshold: \"5s\", accounts: [B]}] }\n",
            "  B: { users: [{user: b, password: p}], imports: [",
            "{stream: {account: A, subject: \"pub.>\"}, prefix: from_a}, ",
            "{service: {account: A, subject: \"svc.x\"}, to: \"ask\", share: true}] }\n",
            "}\n",
        ));
        assert_eq!(o.accounts.len(), 2);
        let user = |n: &str| o.users.iter().find(|u| u.username == n).unwrap();
        assert_eq!(user("g").account, None);
        assert_eq!(user("a").account.as_deref(), Some("A"));
        assert_eq!(user("b").account.as_deref(), Some("B"));
        let a = &o.accounts[0];
        assert_eq!(a.exports[1].response_type, ResponseType::Stream);
        assert_eq!(
            a.exports[1].response_threshold,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            a.exports[1].accounts.as_deref(),
            Some(&["B".to_string()][..])
        );
        assert_eq!(
            o.accounts[1].imports,
            vec![
                ImportConfig::Stream {
                    account: "A".into(),
                    subject: "pub.>".into(),
                    prefix: Some("from_a".into()),
                    to: None
                },
                ImportConfig::Service {
                    account: "A".into(),
                    subject: "svc.x".into(),
                    to: "ask".into(),
                    share: true
                },
            ]
        );
        let o = ok("accounts: [A, B]");
        assert_eq!(o.accounts.len(), 2);
    }

    #[test]
    fn account_errors() {
        assert_eq!(
            err("accounts: { $G: {} }"),
            "t.conf:1:13: \"$G\" is a Reserved Account"
        );
        assert_eq!(
            err("accounts: [A, A]"),
            "t.conf:1:15: Duplicate Account Entry: A"
        );
        assert_eq!(
            err("accounts: { A: 1 }"),
            "t.conf:1:13: Expected map entries for accounts"
        );
        assert_eq!(
            err("accounts: { A: { users: [{user: x}] }, B: { users: [{user: x}] } }"),
            "t.conf:1:45: Duplicate user \"x\" detected"
        );
        assert_eq!(
            err("accounts: { A: { foo: 1 } }"),
            "t.conf:1:18: unknown field \"foo\""
        );
        assert_eq!(
            err("accounts: { A: { exports: [{stream: s, response_type: stream}] } }"),
            "t.conf:1:40: Detected response directive on non-service"
        );
        assert_eq!(
            err("accounts: { A: { exports: [{service: s, response_type: x}] } }"),
            "t.conf:1:41: Unknown response type: \"x\""
        );
        assert_eq!(
            err("accounts: { A: { imports: [{stream: {account: B}}] } }"),
            "t.conf:1:29: Expect an account name and a subject"
        );
        assert_eq!(
            err("accounts: { A: { imports: [{stream: {account: B, subject: s}, prefix: p, to: t}] } }"),
            "t.conf:1:74: Stream import can not have a 'prefix' and a 'to' property"
        );
        assert_eq!(
            err(concat!(
                "accounts: { A: { exports: [{stream: s, accounts: [C]}] }, ",
                "B: { imports: [{stream: {account: A, subject: s}}] }, C: {} }"
            )),
            "t.conf:1:1: Error adding stream import \"s\": stream import not authorized"
        );
        assert_eq!(
            err("authorization { token: t }\naccounts: { A: { users: [{user: a}] } }"),
            "t.conf:2:18: Can not have a token and accounts"
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

    #[test]
    fn tls_block_maps_to_options() {
        let (o, report) = apply(
            "tls {\n cert_file: \"s.pem\"\n key_file: 'k.pem'\n ca_file: ca.pem\n verify: true\n timeout: 0.5\n handshake_first: true\n min_version: \"1.3\"\n}",
        );
        assert!(report.is_ok(), "{report}");
        assert!(o.tls);
        assert!(o.tls_verify);
        assert!(!o.tls_map);
        assert_eq!(o.tls_cert, Some(PathBuf::from("s.pem")));
        assert_eq!(o.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(o.tls_ca_cert, Some(PathBuf::from("ca.pem")));
        assert_eq!(o.tls_timeout, Duration::from_millis(500));
        assert!(o.tls_handshake_first);
        assert_eq!(o.tls_min_version, TlsVersion::V1_3);
    }

    #[test]
    fn tls_timeout_forms_and_auth_timeout_baseline() {
        // As nats-server's getDefaultAuthTimeout: TLS timeout + 1 s unless set.
        let (o, report) =
            apply("tls { cert_file: c, key_file: k, ca_file: ca, verify_and_map: true }");
        assert!(report.is_ok(), "{report}");
        assert!(o.tls_verify && o.tls_map);
        let (mut o, report) = apply("tls { cert_file: c, key_file: k, timeout: \"3s\" }");
        assert!(report.is_ok(), "{report}");
        assert_eq!(o.tls_timeout, Duration::from_secs(3));
        o.set_baseline();
        assert_eq!(o.auth_timeout, Duration::from_secs(4));
        let (mut o, _) = apply("tls { cert_file: c, key_file: k, timeout: 2 }");
        o.set_baseline();
        assert_eq!(o.auth_timeout, Duration::from_secs(3));
        let (mut o, report) =
            apply("authorization { timeout: 1 }\ntls { cert_file: c, key_file: k }");
        assert!(report.is_ok(), "{report}");
        o.set_baseline();
        assert_eq!(o.auth_timeout, Duration::from_secs(1));
        let mut o = Options::default();
        o.set_baseline();
        assert_eq!(o.auth_timeout, Duration::from_secs(2));
    }

    #[test]
    fn tls_errors() {
        assert_eq!(
            err("tls { key_file: k }"),
            "t.conf:1:1: missing 'cert_file' in TLS configuration"
        );
        assert_eq!(
            err("tls { cert_file: c }"),
            "t.conf:1:1: missing 'key_file' in TLS configuration"
        );
        assert!(err("tls { cert_file: c, key_file: k, verify: true }").contains("'ca_file'"));
        assert!(
            err("tls { cert_file: c, key_file: k, verify_cert_and_check_known_urls: true }")
                .contains("is not supported yet")
        );
        assert!(
            err("tls { cert_file: c, key_file: k, verify_and_map: true }").contains("'ca_file'")
        );
        assert!(err("tls { cert_file: c, key_file: k, insecure: true }").contains("insecure"));
        assert!(err("tls { cert_file: c, key_file: k, bogus: 1 }")
            .contains("error parsing tls config, unknown field [\"bogus\"]"));
        assert!(
            err("tls { cert_file: c, key_file: k, min_version: \"1.1\" }")
                .contains("unsupported TLS version")
        );
        assert!(
            err("tls { cert_file: c, key_file: k, handshake_first: auto }")
                .contains("not supported")
        );
        assert!(err("tls { cert_file: 1, key_file: k }")
            .contains("expected 'cert_file' to be filename"));
    }

    #[test]
    fn tls_cipher_lists_are_warnings() {
        let (o, report) = apply(
            "tls { cert_file: c, key_file: k, cipher_suites: [\"TLS_AES_128_GCM_SHA256\"], curve_preferences: [\"X25519\"] }",
        );
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.warnings.len(), 2);
        assert!(o.tls);
    }
}
