//! `cluster { ... }` and the cluster flags: where this server listens for
//! routes, which routes it solicits, and how peers authenticate.
use std::time::Duration;

use super::{boolean, host_port, int, invalid, string, wrong_type};
use crate::conf::{ConfError, Entry, ErrorKind, Value};

/// nats-server's default route port, used when a route URL has none.
pub const DEFAULT_ROUTE_PORT: u16 = 6222;

/// The cluster configuration (nats-server's `ClusterOpts`). Routes are on when
/// [`ClusterOptions::port`] is not 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `name`/`--cluster_name`; without one the cluster picks a name (see
    /// `cluster_dynamic` in route INFO).
    pub name: Option<String>,
    /// `host`/`listen` host part/`--cluster` host: where routes are accepted.
    pub host: String,
    /// `port`/`listen`/`--cluster`: 0 = no cluster, -1 = a random port.
    pub port: i32,
    /// `cluster_advertise`/`advertise`/`--cluster_advertise`: the `host:port`
    /// peers are told to dial instead of the listen address.
    pub advertise: Option<String>,
    /// `no_advertise`/`--no_advertise`: do not tell clients about the other
    /// servers' client URLs.
    pub no_advertise: bool,
    /// `connect_retries`/`--connect_retries`: how many times an implicit
    /// (gossiped) route is retried after it fails; explicit routes are
    /// retried for ever.
    pub connect_retries: u32,
    /// `routes`/`--routes`: the routes to solicit.
    pub routes: Vec<RouteUrl>,
    /// `authorization { user }`: what a peer's CONNECT must carry.
    pub user: Option<String>,
    /// `authorization { password }`.
    pub pass: Option<String>,
    /// `authorization { timeout }`: time a peer has to send CONNECT.
    pub auth_timeout: Duration,
    /// `pool_size`: accepted; natsd keeps one connection per peer (a peer
    /// with pooling treats it as a server without, as nats-server does for
    /// servers before 2.10).
    pub pool_size: i32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: None,
            host: "0.0.0.0".into(),
            port: 0,
            advertise: None,
            no_advertise: false,
            connect_retries: 0,
            routes: Vec::new(),
            user: None,
            pass: None,
            auth_timeout: Duration::from_secs(2),
            pool_size: 0,
        }
    }
}

impl ClusterOptions {
    /// Whether this server takes part in a cluster.
    pub fn enabled(&self) -> bool {
        self.port != 0
    }

    /// `--cluster nats://[user:pass@]host:port`: listen there; credentials in
    /// the URL become the cluster's authorization, as in nats-server.
    pub fn set_listen_url(&mut self, text: &str) -> Result<(), String> {
        // Port -1 (or 0) asks for a random port, as nats-server's flag does.
        let url = match text.strip_suffix(":-1") {
            Some(head) => RouteUrl::parse(&format!("{head}:0"))?,
            None => RouteUrl::parse(text)?,
        };
        self.host = url.host;
        self.port = if url.port == 0 {
            -1
        } else {
            i32::from(url.port)
        };
        if url.user.is_some() {
            self.user = url.user;
            self.pass = url.pass;
        }
        Ok(())
    }

    /// `--routes a,b,c`: replaces the routes the file gave.
    pub fn set_routes(&mut self, list: &str) -> Result<(), String> {
        self.routes = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(RouteUrl::parse)
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Apply a `cluster { ... }` block.
    pub(super) fn apply(&mut self, entry: &Entry) -> Result<(), ConfError> {
        let Value::Map(map) = &entry.value.value else {
            return Err(wrong_type(entry, "map[string]interface {}"));
        };
        for e in map.entries() {
            let at = &e.key_at;
            match e.key.to_ascii_lowercase().as_str() {
                "name" => {
                    let name = string(e)?;
                    if name.contains(' ') {
                        return Err(invalid(
                            at,
                            "cluster name cannot contain spaces or new lines".into(),
                        ));
                    }
                    self.name = Some(name);
                }
                "listen" => {
                    let (host, port) = host_port(e)?;
                    if let Some(host) = host {
                        self.host = host;
                    }
                    self.port = route_port(e, port)?;
                }
                "host" | "net" => self.host = string(e)?,
                "port" => self.port = route_port(e, int(e)?)?,
                "cluster_advertise" | "advertise" => self.advertise = Some(string(e)?),
                "no_advertise" => self.no_advertise = boolean(e)?,
                "connect_retries" => {
                    self.connect_retries = u32::try_from(int(e)?)
                        .map_err(|_| invalid(at, "connect_retries can not be negative".into()))?
                }
                "pool_size" => {
                    self.pool_size = i32::try_from(int(e)?)
                        .map_err(|_| invalid(at, "pool_size is out of range".into()))?
                }
                "routes" => {
                    let Value::Array(items) = &e.value.value else {
                        return Err(wrong_type(e, "[]interface {}"));
                    };
                    let mut routes = Vec::with_capacity(items.len());
                    for item in items {
                        let Value::String(s) = &item.value else {
                            return Err(invalid(&item.at, "route URL must be a string".into()));
                        };
                        routes.push(RouteUrl::parse(s).map_err(|err| {
                            invalid(&item.at, format!("error parsing route url [{s:?}]: {err}"))
                        })?);
                    }
                    self.routes = routes;
                }
                "authorization" => self.apply_authorization(e)?,
                // Route compression is negotiated per route; natsd answers
                // "off", which every nats-server accepts.
                "compression" => {}
                "tls" | "permissions" | "accounts" => {
                    return Err(invalid(
                        at,
                        format!("cluster {} is not supported yet", e.key),
                    ))
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfError::new(at, ErrorKind::UnknownField(e.key.clone()))),
            }
        }
        Ok(())
    }

    fn apply_authorization(&mut self, entry: &Entry) -> Result<(), ConfError> {
        let Value::Map(map) = &entry.value.value else {
            return Err(wrong_type(entry, "map[string]interface {}"));
        };
        for e in map.entries() {
            match e.key.to_ascii_lowercase().as_str() {
                "user" | "username" => self.user = Some(string(e)?),
                "pass" | "password" => self.pass = Some(string(e)?),
                "timeout" => {
                    let secs = match e.value.value {
                        Value::Int(n) => n as f64,
                        Value::Float(f) => f,
                        _ => 1.0,
                    };
                    self.auth_timeout = Duration::try_from_secs_f64(secs).map_err(|_| {
                        invalid(&e.key_at, format!("invalid authorization timeout {secs}"))
                    })?;
                }
                "users" | "token" | "nkeys" => {
                    return Err(invalid(
                        &e.key_at,
                        format!("Cluster authorization does not allow \"{}\"", e.key),
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
        Ok(())
    }
}

fn route_port(entry: &Entry, port: i64) -> Result<i32, ConfError> {
    match port {
        -1 => Ok(-1),
        _ => u16::try_from(port).map(i32::from).map_err(|_| {
            invalid(
                &entry.key_at,
                format!("port {port} is out of range (-1 for random, or 0..=65535)"),
            )
        }),
    }
}

/// A route URL: `nats-route://[user[:pass]@]host[:port]` (any scheme is
/// accepted, as nats-server's `url.Parse` does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port; [`DEFAULT_ROUTE_PORT`] when the URL has none.
    pub port: u16,
    /// User for the peer's cluster authorization.
    pub user: Option<String>,
    /// Password for the peer's cluster authorization.
    pub pass: Option<String>,
}

impl RouteUrl {
    /// Parse a route URL.
    pub fn parse(text: &str) -> Result<RouteUrl, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if !scheme.is_empty() => rest,
            _ => return Err(format!("missing protocol scheme in {text:?}")),
        };
        let rest = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, pass) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("invalid host in {text:?}"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in {text:?}"));
        }
        let port = match port {
            None | Some("") => DEFAULT_ROUTE_PORT,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("invalid port {p:?} in {text:?}"))?,
        };
        Ok(RouteUrl {
            host: host.to_string(),
            port,
            user,
            pass,
        })
    }

    /// `host:port` to dial (IPv6 in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for RouteUrl {
    /// As nats-server logs and shows it: credentials left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nats-route://{}", self.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls_parse_as_nats_server_reads_them() {
        let u = RouteUrl::parse("nats-route://ruser:T0pS3cr3t@127.0.0.1:6223").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_deref(),
                u.pass.as_deref()
            ),
            ("127.0.0.1", 6223, Some("ruser"), Some("T0pS3cr3t"))
        );
        assert_eq!(u.to_string(), "nats-route://127.0.0.1:6223");
        let u = RouteUrl::parse("nats://[::1]:7000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        assert_eq!(u.addr(), "[::1]:7000");
        assert_eq!(
            RouteUrl::parse("nats://h").unwrap().port,
            DEFAULT_ROUTE_PORT
        );
        assert!(RouteUrl::parse("127.0.0.1:6222").is_err());
        assert!(RouteUrl::parse("nats://h:port").is_err());
    }

    #[test]
    fn listen_url_sets_host_port_and_credentials() {
        let mut c = ClusterOptions::default();
        assert!(!c.enabled());
        c.set_listen_url("nats://u:p@127.0.0.1:6222").unwrap();
        assert!(c.enabled());
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6222));
        assert_eq!(
            (c.user.as_deref(), c.pass.as_deref()),
            (Some("u"), Some("p"))
        );
        c.set_routes("nats://a:1, nats://b:2,").unwrap();
        c.set_listen_url("nats://127.0.0.1:-1").unwrap();
        assert_eq!(c.port, -1);
        assert_eq!(c.routes.len(), 2);
    }
}
