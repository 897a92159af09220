//! Server options: what flags and (later) the config file set.
//!
//! Field names follow nats-server's config keys, so a reader can map each to
//! its `nats-server.conf` key or flag.
use std::path::PathBuf;
use std::time::Duration;

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
        }
    }
}

impl Options {
    /// Whether clients must authenticate.
    pub fn auth_required(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }
}
