//! The system account's service: nats-server's `$SYS` requests and events.
//!
//! It runs on a stage thread like any [`Service`] and works in the system
//! account through one internal client:
//!
//! - requests `$SYS.REQ.SERVER.PING[.<EP>]`, `$SYS.REQ.SERVER.<id>.<EP>`
//!   (EP: `STATSZ`, `VARZ`, `CONNZ`, `SUBSZ`, `HEALTHZ`, `JSZ`,
//!   `ACCOUNTZ`, `ROUTEZ`, `GATEWAYZ`, `LEAFZ`, `IDZ`) and
//!   `$SYS.REQ.ACCOUNT.<acc>.{CONNZ,SUBSZ,LEAFZ,INFO,STATZ,CONNS}`,
//!   `$SYS.REQ.ACCOUNT.PING.STATZ`, and `$SYS.REQ.USER.INFO` in every
//!   account (the requester's user, account and permissions: see
//!   [`SysService::user_info`]). A request body is empty or a JSON object
//!   of the endpoint's options (nats-server's `*EventOptions`) plus the
//!   event filter (`server_name`, `cluster`, `host`, `tags`, `domain`); a
//!   request whose filter does not match this server gets no answer. The
//!   monitoring endpoints themselves are [`crate::monitor`]'s: the JSON
//!   options become the endpoint's query string, so an answer is what the
//!   HTTP endpoint serves, wrapped in nats-server's `ServerAPIResponse`
//!   (`{"server":{..},"data":{..}}` or `"error":{"code","description"}`).
//! - events `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` (not for `$G`, as
//!   nats-server), the account's connection count (`AccountNumConns`) on
//!   `$SYS.ACCOUNT.<acc>.SERVER.CONNS` and the older
//!   `$SYS.SERVER.ACCOUNT.<acc>.CONNS` at each connect and disconnect and
//!   every 30 s while it has connections, the `$SYS.SERVER.<id>.STATSZ` heartbeat (first after
//!   250 ms, the interval doubling up to 30 s), `$SYS.SERVER.<id>.LAMEDUCK`
//!   and `$SYS.SERVER.<id>.SHUTDOWN`.
//!
//! JSON shapes and subjects follow nats-server 2.9.10's `server/events.go`
//! (`IDZ` and `LAMEDUCK` are 2.10's). Nothing here reads a clock: wall
//! times derive from the start pair given at construction and the `now`
//! the stage passes.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::accounts::GLOBAL_ACCOUNT;
use crate::auth::{Permissions, SubjectPermission};
use crate::client::{ConnSnapshot, SubRef};
use crate::internal::{Delivery, Event, Internal, Service};
use crate::monitor::{
    self, AccountStat, AccountStatz, Clock, DataStats, Monitor, Query, Source, SubszOptions,
};
use crate::server::{Account, Server, COMPAT_VERSION};

/// The first STATSZ heartbeat comes this soon after start ...
const STATSZ_FIRST: Duration = Duration::from_millis(250);
/// ... and the interval doubles up to this; account `CONNS` heartbeats
/// come at this interval too (nats-server's `eventsHBInterval`).
const EVENTS_HB: Duration = Duration::from_secs(30);

const CONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_connect";
const DISCONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_disconnect";
const ACCOUNT_CONNS_TYPE: &str = "io.nats.server.advisory.v1.account_connections";

/// A server endpoint, as the last token of its request subject names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `STATSZ` (and the bare `PING`).
    Statsz,
    /// `VARZ`.
    Varz,
    /// `CONNZ`.
    Connz,
    /// `SUBSZ`.
    Subsz,
    /// `HEALTHZ`.
    Healthz,
    /// `JSZ`.
    Jsz,
    /// `ACCOUNTZ`.
    Accountz,
    /// `ROUTEZ`.
    Routez,
    /// `GATEWAYZ`.
    Gatewayz,
    /// `LEAFZ`.
    Leafz,
    /// `IDZ`.
    Idz,
}

impl Endpoint {
    /// nats-server's options type for the endpoint's requests.
    fn go_type(self) -> &'static str {
        match self {
            Endpoint::Statsz => "StatszEventOptions",
            Endpoint::Varz => "VarzEventOptions",
            Endpoint::Connz => "ConnzEventOptions",
            Endpoint::Subsz => "SubszEventOptions",
            Endpoint::Healthz => "HealthzEventOptions",
            Endpoint::Jsz => "JszEventOptions",
            Endpoint::Accountz => "AccountzEventOptions",
            Endpoint::Routez => "RoutezEventOptions",
            Endpoint::Gatewayz => "GatewayzEventOptions",
            Endpoint::Leafz => "LeafzEventOptions",
            Endpoint::Idz => "IdzEventOptions",
        }
    }

    fn parse(token: &str) -> Option<Endpoint> {
        Some(match token {
            "STATSZ" => Endpoint::Statsz,
            "VARZ" => Endpoint::Varz,
            "CONNZ" => Endpoint::Connz,
            "SUBSZ" => Endpoint::Subsz,
            "HEALTHZ" => Endpoint::Healthz,
            "JSZ" => Endpoint::Jsz,
            "ACCOUNTZ" => Endpoint::Accountz,
            "ROUTEZ" => Endpoint::Routez,
            "GATEWAYZ" => Endpoint::Gatewayz,
            "LEAFZ" => Endpoint::Leafz,
            "IDZ" => Endpoint::Idz,
            _ => return None,
        })
    }
}

/// An account endpoint (`$SYS.REQ.ACCOUNT.<acc>.<EP>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountEndpoint {
    /// `CONNZ`: `/connz` of the account's connections.
    Connz,
    /// `SUBSZ`: `/subsz` listing the account's subscriptions.
    Subsz,
    /// `LEAFZ`: `/leafz` of the account.
    Leafz,
    /// `INFO`: the account's `/accountz` detail.
    Info,
    /// `STATZ`: the account's connection and traffic figures.
    Statz,
    /// `CONNS`: the `AccountNumConns` event, as an answer.
    Conns,
}

impl AccountEndpoint {
    /// nats-server's options type for the endpoint's requests.
    fn go_type(self) -> &'static str {
        match self {
            AccountEndpoint::Connz => "ConnzEventOptions",
            AccountEndpoint::Subsz => "SubszEventOptions",
            AccountEndpoint::Leafz => "LeafzEventOptions",
            AccountEndpoint::Info => "AccInfoEventOptions",
            AccountEndpoint::Statz => "AccountStatzEventOptions",
            AccountEndpoint::Conns => "accNumConnsReq",
        }
    }

    fn parse(token: &str) -> Option<AccountEndpoint> {
        Some(match token {
            "CONNZ" => AccountEndpoint::Connz,
            "SUBSZ" => AccountEndpoint::Subsz,
            "LEAFZ" => AccountEndpoint::Leafz,
            "INFO" => AccountEndpoint::Info,
            "STATZ" => AccountEndpoint::Statz,
            "CONNS" => AccountEndpoint::Conns,
            _ => return None,
        })
    }
}

/// A request this server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// To every server (`PING`) or to this one by id.
    Server(Endpoint),
    /// About one account.
    Account(String, AccountEndpoint),
    /// `$SYS.REQ.ACCOUNT.PING.STATZ`: every account's figures.
    AccountsStatz,
}

impl Request {
    /// nats-server's options type for the request's body.
    fn go_type(&self) -> &'static str {
        match self {
            Request::Server(ep) => ep.go_type(),
            Request::Account(_, ep) => ep.go_type(),
            Request::AccountsStatz => "AccountStatzEventOptions",
        }
    }

    /// IDZ and CONNS ignore the body: no filter, no error answers.
    fn takes_options(&self) -> bool {
        !matches!(
            self,
            Request::Server(Endpoint::Idz) | Request::Account(_, AccountEndpoint::Conns)
        )
    }
}

/// What `subject` asks of the server with id `server_id`; `None` for
/// subjects that are not requests to it.
pub fn parse_request(subject: &str, server_id: &str) -> Option<Request> {
    let tokens: Vec<&str> = subject.split('.').collect();
    match tokens.as_slice() {
        ["$SYS", "REQ", "SERVER", "PING"] => Some(Request::Server(Endpoint::Statsz)),
        ["$SYS", "REQ", "SERVER", target, ep] if *target == "PING" || *target == server_id => {
            Endpoint::parse(ep).map(Request::Server)
        }
        ["$SYS", "REQ", "ACCOUNT", "PING", "STATZ"] => Some(Request::AccountsStatz),
        ["$SYS", "REQ", "ACCOUNT", acc, ep] if !acc.is_empty() => {
            AccountEndpoint::parse(ep).map(|e| Request::Account(acc.to_string(), e))
        }
        _ => None,
    }
}

/// The subject any client asks for its own user and permissions on, in its
/// own account (nats-server imports it into every account).
const USER_INFO: &str = "$SYS.REQ.USER.INFO";

/// The subjects the service subscribes to (in the system account).
fn request_subjects(server_id: &str) -> [String; 4] {
    [
        "$SYS.REQ.SERVER.PING".to_string(),
        "$SYS.REQ.SERVER.PING.*".to_string(),
        format!("$SYS.REQ.SERVER.{server_id}.*"),
        "$SYS.REQ.ACCOUNT.*.*".to_string(),
    ]
}

// ---------------------------------------------------------------------------
// JSON bodies (nats-server's field names and order).

/// `ServerInfo`: who sent an event or answer.
#[derive(Debug, Clone, Serialize)]
struct ServerInfo {
    name: String,
    host: String,
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
    ver: &'static str,
    seq: u64,
    jetstream: bool,
    time: String,
}

#[derive(Debug, Clone, Serialize)]
struct ServerStats {
    start: String,
    mem: i64,
    cores: usize,
    #[serde(serialize_with = "go_float")]
    cpu: f64,
    connections: usize,
    total_connections: u64,
    active_accounts: usize,
    subscriptions: usize,
    sent: DataStats,
    received: DataStats,
    slow_consumers: u64,
    active_servers: usize,
}

#[derive(Debug, Clone, Serialize)]
struct ServerStatsMsg {
    server: ServerInfo,
    statsz: ServerStats,
}

#[derive(Debug, Clone, Serialize)]
struct ServerId<'a> {
    name: &'a str,
    host: &'a str,
    id: &'a str,
}

#[derive(Debug, Clone, Serialize)]
struct ApiError {
    code: u16,
    description: String,
}

#[derive(Debug, Clone, Serialize)]
struct ClientInfo {
    start: String,
    host: String,
    id: u64,
    acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ver: String,
    /// Go's `time.Duration`: nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    rtt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    kind: &'static str,
    client_type: &'static str,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// nats-server's `UserInfo`, the answer to `$SYS.REQ.USER.INFO` (`user_name`
/// and `expires` come from JWT claims, which natsd does not have).
#[derive(Debug, Clone, Serialize)]
struct UserInfo<'a> {
    user: &'a str,
    account: &'a str,
    account_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<PublicPermissions<'a>>,
}

/// nats-server's `Permissions` as `publicPermissions` shows a client's:
/// both directions always (empty when unrestricted), `responses` with
/// `allow_responses`.
#[derive(Debug, Clone, Serialize)]
struct PublicPermissions<'a> {
    publish: PublicSubjects<'a>,
    subscribe: PublicSubjects<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses: Option<PublicResponses>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct PublicSubjects<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    allow: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    deny: &'a [String],
}

/// `max` and `ttl` (Go's `time.Duration`, ns); -1 for no limit.
#[derive(Debug, Clone, Serialize)]
struct PublicResponses {
    max: i64,
    ttl: i64,
}

impl<'a> PublicPermissions<'a> {
    fn of(perms: &'a Permissions) -> Self {
        let side = |p: &'a Option<SubjectPermission>| {
            p.as_ref()
                .map_or_else(PublicSubjects::default, |p| PublicSubjects {
                    allow: p.allow.as_deref().unwrap_or_default(),
                    deny: &p.deny,
                })
        };
        PublicPermissions {
            publish: side(&perms.publish),
            subscribe: side(&perms.subscribe),
            responses: perms.allow_responses.map(|r| PublicResponses {
                max: r
                    .max_msgs
                    .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
                ttl: r
                    .expires
                    .map_or(-1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct ConnectEventMsg {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: ServerInfo,
    client: ClientInfo,
}

#[derive(Debug, Clone, Serialize)]
struct DisconnectEventMsg {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: ServerInfo,
    client: ClientInfo,
    sent: DataStats,
    received: DataStats,
    reason: String,
}

#[derive(Debug, Clone, Serialize)]
struct AccountNumConns {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: ServerInfo,
    #[serde(flatten)]
    stat: AccountStat,
}

/// Go prints a whole float without a fraction (`0`, not `0.0`).
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

/// `{"server":..,"data":..}` or `{"server":..,"error":..}` around a JSON
/// body the monitor built (whitespace removed, key order kept).
fn api_response(server: &ServerInfo, data: Result<&[u8], ApiError>) -> Vec<u8> {
    let mut out = b"{\"server\":".to_vec();
    out.extend_from_slice(&to_json(server));
    match data {
        Ok(body) => {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(&compact(body));
        }
        Err(e) => {
            out.extend_from_slice(b",\"error\":");
            out.extend_from_slice(&to_json(&e));
        }
    }
    out.push(b'}');
    out
}

/// `json` without the whitespace between tokens.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !b.is_ascii_whitespace() {
            out.push(b);
            in_string = b == b'"';
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Request options.

/// nats-server's `EventFilterOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    server_name: String,
    cluster: String,
    host: String,
    tags: Vec<String>,
    domain: String,
}

impl Filter {
    /// Whether a server with this name, host and JetStream domain (no
    /// cluster, no tags) is one the request is for, as nats-server's
    /// `filterRequest`: name and host must contain the fields given, the
    /// domain must equal it.
    pub fn matches(&self, name: &str, host: &str, domain: &str) -> bool {
        (self.server_name.is_empty() || name.contains(&self.server_name))
            && (self.host.is_empty() || host.contains(&self.host))
            && self.cluster.is_empty()
            && self.tags.is_empty()
            && (self.domain.is_empty() || self.domain == domain)
    }
}

/// A request body: empty, or a JSON object of options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    map: Map<String, Value>,
    /// The Go type nats-server decodes it into, for error texts.
    go_type: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Str,
}

/// How a JSON option becomes a query parameter: (JSON key, query key, type).
type Field = (&'static str, &'static str, Kind);

const CONNZ: &[Field] = &[
    ("sort", "sort", Kind::Str),
    ("auth", "auth", Kind::Bool),
    ("offset", "offset", Kind::Int),
    ("limit", "limit", Kind::Int),
    ("cid", "cid", Kind::Int),
    ("mqtt_client", "mqtt_client", Kind::Str),
    ("user", "user", Kind::Str),
    ("acc", "acc", Kind::Str),
];
const SUBSZ: &[Field] = &[
    ("offset", "offset", Kind::Int),
    ("limit", "limit", Kind::Int),
    ("subscriptions", "subs", Kind::Bool),
    ("account", "acc", Kind::Str),
    ("test", "test", Kind::Str),
];
const ACCOUNTZ: &[Field] = &[("account", "acc", Kind::Str)];
const HEALTHZ: &[Field] = &[
    ("js-enabled-only", "js-enabled-only", Kind::Bool),
    ("js-server-only", "js-server-only", Kind::Bool),
];
const JSZ: &[Field] = &[
    ("account", "acc", Kind::Str),
    ("accounts", "accounts", Kind::Bool),
    ("streams", "streams", Kind::Bool),
    ("consumer", "consumers", Kind::Bool),
    ("config", "config", Kind::Bool),
    ("leader_only", "leader-only", Kind::Bool),
    ("offset", "offset", Kind::Int),
    ("limit", "limit", Kind::Int),
];
const LEAFZ: &[Field] = &[
    ("subscriptions", "subs", Kind::Bool),
    ("account", "acc", Kind::Str),
];
const GATEWAYZ: &[Field] = &[
    ("name", "gw_name", Kind::Str),
    ("accounts", "accs", Kind::Bool),
    ("account_name", "acc_name", Kind::Str),
];

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Percent-encoding for a query value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Options {
    /// Parse a request body as Go's `json.Unmarshal` into `go_type` (the
    /// request's nats-server options type) does: an object or `null`;
    /// anything else is an error.
    pub fn parse(body: &[u8], go_type: &'static str) -> Result<Options, String> {
        let map = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(Value::Null) => Map::new(),
                Ok(other) => {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go value of type server.{go_type}",
                        json_kind(&other)
                    ))
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        Ok(Options { map, go_type })
    }

    /// Go's `json.Unmarshal` type error, for option `key`.
    fn type_error(&self, key: &str, want: &str, got: &Value) -> String {
        format!(
            "json: cannot unmarshal {} into Go struct field {}.{key} of type {want}",
            json_kind(got),
            self.go_type
        )
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.type_error(key, "string", v)),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.type_error(key, "bool", v)),
        }
    }

    fn int(&self, key: &str) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| self.type_error(key, "int", v)),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(self.type_error(key, "string", v)),
                })
                .collect(),
            Some(v) => Err(self.type_error(key, "[]string", v)),
        }
    }

    /// The event filter fields.
    pub fn filter(&self) -> Result<Filter, String> {
        Ok(Filter {
            server_name: self.str("server_name")?,
            cluster: self.str("cluster")?,
            host: self.str("host")?,
            tags: self.strings("tags")?,
            domain: self.str("domain")?,
        })
    }

    /// The query string for an endpoint whose options are `fields`:
    /// `forced` pairs first (they win, as the first value does), then
    /// every option set.
    fn query(&self, fields: &[Field], forced: &[(&str, &str)]) -> Result<String, String> {
        let mut pairs: Vec<(String, String)> = forced
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for &(json, key, kind) in fields {
            if forced.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let value = match kind {
                Kind::Str => self.str(json)?,
                Kind::Bool => match self.bool(json)? {
                    true => "true".to_string(),
                    false => String::new(),
                },
                Kind::Int => match self.int(json)? {
                    0 => String::new(),
                    n => n.to_string(),
                },
            };
            if !value.is_empty() {
                pairs.push((key.to_string(), value));
            }
        }
        Ok(pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", escape(v)))
            .collect::<Vec<_>>()
            .join("&"))
    }

    /// `subscriptions` / `subscriptions_detail` as the `subs` parameter.
    fn subs_param(&self) -> Result<Option<(&'static str, &'static str)>, String> {
        Ok(if self.bool("subscriptions_detail")? {
            Some(("subs", "detail"))
        } else if self.bool("subscriptions")? {
            Some(("subs", "true"))
        } else {
            None
        })
    }

    /// The `/routez` query.
    fn routez_query(&self) -> Result<String, String> {
        let subs: Vec<_> = self.subs_param()?.into_iter().collect();
        self.query(&[], &subs)
    }

    /// The `/connz` query: `state` is Go's `ConnState` number.
    fn connz_query(&self, forced: &[(&str, &str)]) -> Result<String, String> {
        let mut all: Vec<(&str, &str)> = forced.to_vec();
        all.extend(self.subs_param()?);
        match self.int("state")? {
            0 => {}
            1 => all.push(("state", "closed")),
            _ => all.push(("state", "all")),
        }
        self.query(CONNZ, &all)
    }
}

/// `path?query`, or `path` alone for an empty query.
fn target(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

// ---------------------------------------------------------------------------
// Event ids.

/// nuid-shaped event ids (22 base-62 characters): a prefix from the seed,
/// then a counter, so ids never repeat in a process and differ between
/// processes.
#[derive(Debug, Clone)]
struct EventIds {
    prefix: String,
    n: u64,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^10: the counter's range.
const COUNTER_SPAN: u64 = 839_299_365_868_340_224;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl EventIds {
    fn new(seed: u64) -> Self {
        let mut state = seed;
        let prefix = (0..12)
            .map(|_| BASE62[(splitmix(&mut state) % 62) as usize] as char)
            .collect();
        EventIds {
            prefix,
            n: splitmix(&mut state) % COUNTER_SPAN,
        }
    }

    fn next(&mut self) -> String {
        self.n = (self.n + 1) % COUNTER_SPAN;
        let mut digits = [b'0'; 10];
        let mut v = self.n;
        for d in digits.iter_mut().rev() {
            *d = BASE62[(v % 62) as usize];
            v /= 62;
        }
        let mut id = self.prefix.clone();
        id.extend(digits.iter().map(|&b| b as char));
        id
    }
}

// ---------------------------------------------------------------------------
// The service.

/// What the service knows of an account from connect and disconnect
/// events.
#[derive(Debug, Clone, Default)]
struct Tracked {
    /// Connections now.
    conns: usize,
    /// Traffic of its closed connections (live ones are read from their
    /// snapshots when a request asks).
    sent: DataStats,
    received: DataStats,
    /// The next `CONNS` heartbeat, while it has connections.
    next_hb: Option<Instant>,
}

/// The `$SYS` service. See the module docs.
pub struct SysService {
    src: Box<dyn Source + Send>,
    start: Instant,
    start_wall: SystemTime,
    account: Option<Arc<Account>>,
    seq: u64,
    ids: EventIds,
    statsz_every: Duration,
    next_statsz: Option<Instant>,
    tracked: BTreeMap<String, Tracked>,
    /// The user of each connected client (from the connect events), for
    /// `USER.INFO`.
    users: HashMap<u64, Option<String>>,
    /// The subscriptions to `USER.INFO`, and the accounts they are in.
    user_info_sids: HashSet<u64>,
    user_info_accounts: Vec<Arc<Account>>,
}

impl SysService {
    /// A service reading the server through `src`; `start`/`start_wall`
    /// are the server's start in both clocks, `seed` makes its event ids.
    pub fn new(
        src: Box<dyn Source + Send>,
        start: Instant,
        start_wall: SystemTime,
        seed: u64,
    ) -> Self {
        SysService {
            src,
            start,
            start_wall,
            account: None,
            seq: 0,
            ids: EventIds::new(seed),
            statsz_every: STATSZ_FIRST,
            next_statsz: None,
            tracked: BTreeMap::new(),
            users: HashMap::new(),
            user_info_sids: HashSet::new(),
            user_info_accounts: Vec::new(),
        }
    }

    /// Subscribe to `USER.INFO` in every account not subscribed yet (all at
    /// start, the new ones after a reload).
    fn subscribe_user_info(&mut self, now: Instant, net: &mut Internal) {
        for account in self.server().accounts() {
            if self
                .user_info_accounts
                .iter()
                .any(|a| Arc::ptr_eq(a, &account))
            {
                continue;
            }
            match net.subscribe(now, &account, USER_INFO, None) {
                Ok(sid) => {
                    self.user_info_sids.insert(sid);
                    self.user_info_accounts.push(account);
                }
                Err(e) => log::error!("Error setting up user info service: {e}"),
            }
        }
    }

    /// `$SYS.REQ.USER.INFO`: the requester's user, account and permissions.
    /// The request carries no sender, so the requester is the one client
    /// that subscribes to its reply subject (a request's inbox); when that
    /// is not one client, the answer names the account alone.
    fn user_info(&mut self, now: Instant, msg: &Delivery, net: &mut Internal) {
        let Some(reply) = msg.reply.as_deref().filter(|r| !r.is_empty()) else {
            return;
        };
        let sub = requester(&msg.account, reply);
        let user = sub.as_ref().and_then(|s| self.user_of(s.client.cid()));
        let data = UserInfo {
            user: user.as_deref().unwrap_or_default(),
            account: &msg.account.name,
            account_name: &msg.account.name,
            permissions: sub
                .as_ref()
                .and_then(|s| s.perms.as_deref())
                .map(PublicPermissions::of),
        };
        let body = self.wrap(now, Ok(to_json(&data)));
        let Ok(reply) = std::str::from_utf8(reply) else {
            return;
        };
        net.publish(now, &msg.account, reply.as_bytes(), None, None, &body);
    }

    /// The user client `cid` authenticated as: known from its connect
    /// event, or (when the request overtook the event) from the reactors.
    fn user_of(&self, cid: u64) -> Option<String> {
        match self.users.get(&cid) {
            Some(user) => user.clone(),
            None => self
                .src
                .connections()
                .into_iter()
                .find(|c| c.cid == cid)
                .and_then(|c| c.user),
        }
    }

    fn server(&self) -> &Server {
        self.src.server()
    }

    fn clock(&self, now: Instant) -> Clock {
        let mut clock = Clock {
            now,
            wall_now: self.start_wall,
            start: self.start,
            start_wall: self.start_wall,
        };
        clock.wall_now = clock.wall(now);
        clock
    }

    fn server_info(&mut self, now: Instant) -> ServerInfo {
        self.seq += 1;
        let server = self.server();
        let opts = server.options();
        ServerInfo {
            name: server.name().to_string(),
            host: opts.host.clone(),
            id: server.id().to_string(),
            cluster: String::new(),
            domain: opts.jetstream.domain.clone().unwrap_or_default(),
            ver: COMPAT_VERSION,
            seq: self.seq,
            jetstream: opts.jetstream.enabled,
            time: monitor::rfc3339(self.clock(now).wall_now),
        }
    }

    fn send(&self, now: Instant, net: &mut Internal, subject: &str, body: &[u8]) {
        if let Some(acc) = &self.account {
            net.publish(now, acc, subject.as_bytes(), None, None, body);
        }
    }

    fn statsz(&mut self, now: Instant) -> Vec<u8> {
        use std::sync::atomic::Ordering::Relaxed;
        let open = self.src.connections();
        let process = self.src.process();
        let server = self.src.server();
        let totals = monitor::totals(server, &open);
        let mut accounts: Vec<&str> = open.iter().map(|c| c.account.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let stats = ServerStats {
            start: monitor::rfc3339(self.start_wall),
            mem: process.mem,
            cores: process.cores,
            cpu: process.cpu,
            connections: server.stats.connections.load(Relaxed),
            total_connections: server.stats.total_connections.load(Relaxed),
            active_accounts: accounts.len(),
            subscriptions: server.accounts().iter().map(|a| a.sublist.count()).sum(),
            sent: DataStats {
                msgs: totals.out_msgs,
                bytes: totals.out_bytes,
            },
            received: DataStats {
                msgs: totals.in_msgs,
                bytes: totals.in_bytes,
            },
            slow_consumers: server.stats.slow_consumers.load(Relaxed),
            active_servers: 1,
        };
        to_json(&ServerStatsMsg {
            server: self.server_info(now),
            statsz: stats,
        })
    }

    fn is_for_us(&self, filter: &Filter) -> bool {
        let server = self.server();
        let opts = server.options();
        let domain = opts.jetstream.domain.as_deref().unwrap_or("");
        filter.matches(server.name(), &opts.host, domain)
    }

    fn statsz_subject(&self) -> String {
        format!("$SYS.SERVER.{}.STATSZ", self.server().id())
    }

    /// A fresh monitor, so each answer is the endpoint alone (no request
    /// counts carried between requests). `base_path` is what `/varz`
    /// reports; requests to [`Monitor::respond`] are made without one.
    fn monitor(&self, base_path: Option<&str>) -> Monitor {
        let opts = self.server().options();
        let http_host = opts
            .http_host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| opts.host.clone());
        Monitor::new(base_path, &http_host, self.server().client_port())
    }

    /// Run a monitoring endpoint: its JSON body, or the error to answer.
    fn endpoint(&self, now: Instant, target: &str) -> Result<Vec<u8>, ApiError> {
        let resp = self
            .monitor(None)
            .respond(target, self.src.as_ref(), &self.clock(now));
        if resp.status == 200 {
            Ok(resp.body)
        } else {
            Err(ApiError {
                code: resp.status,
                description: String::from_utf8_lossy(&resp.body).trim_end().to_string(),
            })
        }
    }

    /// SUBSZ: nats-server's whole `Subsz` (the HTTP endpoint trims it to
    /// the counters when no subscription is listed).
    fn subsz(&self, now: Instant, query: &str) -> Result<Vec<u8>, ApiError> {
        let opts = SubszOptions::from_query(&Query::parse(query)).map_err(|e| ApiError {
            code: e.status,
            description: e.msg,
        })?;
        let open = if opts.subs {
            self.src.connections()
        } else {
            Vec::new()
        };
        let model = monitor::subsz_model(self.server(), &open, &opts, &self.clock(now));
        Ok(to_json(&model))
    }

    /// The JSON answer to `req` with options `opts`; `None` when nothing
    /// is to be sent.
    fn answer(&mut self, now: Instant, req: &Request, opts: &Options) -> Option<Vec<u8>> {
        match req {
            Request::Server(Endpoint::Statsz) => Some(self.statsz(now)),
            Request::Server(Endpoint::Idz) => {
                let server = self.server();
                let opts = server.options();
                Some(to_json(&ServerId {
                    name: server.name(),
                    host: &opts.host,
                    id: server.id(),
                }))
            }
            Request::Server(Endpoint::Varz) => {
                let base_path = self.server().options().http_base_path.clone();
                let varz = self
                    .monitor(base_path.as_deref())
                    .varz(self.src.as_ref(), &self.clock(now));
                Some(self.wrap(now, Ok(to_json(&varz))))
            }
            Request::Server(Endpoint::Subsz) => {
                let data = opts
                    .query(SUBSZ, &[])
                    .map_err(bad_request)
                    .and_then(|q| self.subsz(now, &q));
                Some(self.wrap(now, data))
            }
            Request::Server(Endpoint::Connz) => {
                self.via_monitor(now, "/connz", opts.connz_query(&[]))
            }
            Request::Server(Endpoint::Healthz) => {
                self.via_monitor(now, "/healthz", opts.query(HEALTHZ, &[]))
            }
            Request::Server(Endpoint::Jsz) => self.via_monitor(now, "/jsz", opts.query(JSZ, &[])),
            Request::Server(Endpoint::Accountz) => {
                self.via_monitor(now, "/accountz", opts.query(ACCOUNTZ, &[]))
            }
            Request::Server(Endpoint::Routez) => {
                self.via_monitor(now, "/routez", opts.routez_query())
            }
            Request::Server(Endpoint::Gatewayz) => {
                self.via_monitor(now, "/gatewayz", opts.query(GATEWAYZ, &[]))
            }
            Request::Server(Endpoint::Leafz) => {
                self.via_monitor(now, "/leafz", opts.query(LEAFZ, &[]))
            }
            Request::Account(acc, ep) => self.account_answer(now, acc, *ep, opts),
            Request::AccountsStatz => match self.accounts_statz(now, opts) {
                Ok(None) => None,
                Ok(Some(data)) => Some(self.wrap(now, Ok(data))),
                Err(e) => Some(self.wrap(now, Err(bad_request(e)))),
            },
        }
    }

    /// The answer of the monitoring endpoint at `path` for `query` (or the
    /// error in the request's options).
    fn via_monitor(
        &mut self,
        now: Instant,
        path: &str,
        query: Result<String, String>,
    ) -> Option<Vec<u8>> {
        let data = query
            .map_err(bad_request)
            .and_then(|q| self.endpoint(now, &target(path, &q)));
        Some(self.wrap(now, data))
    }

    fn wrap(&mut self, now: Instant, data: Result<Vec<u8>, ApiError>) -> Vec<u8> {
        let info = self.server_info(now);
        api_response(&info, data.as_deref().map_err(Clone::clone))
    }

    fn account_answer(
        &mut self,
        now: Instant,
        acc: &str,
        ep: AccountEndpoint,
        opts: &Options,
    ) -> Option<Vec<u8>> {
        let forced = [("acc", acc)];
        let data = match ep {
            AccountEndpoint::Connz => {
                return self.via_monitor(now, "/connz", opts.connz_query(&forced))
            }
            AccountEndpoint::Subsz => opts
                .query(SUBSZ, &[("acc", acc), ("subs", "true")])
                .map_err(bad_request)
                .and_then(|q| self.subsz(now, &q)),
            AccountEndpoint::Leafz => {
                return self.via_monitor(now, "/leafz", opts.query(LEAFZ, &forced))
            }
            AccountEndpoint::Info => self
                .endpoint(now, &format!("/accountz?acc={}", escape(acc)))
                .map(|body| account_detail(&body))
                .map_err(|e| ApiError {
                    code: 500,
                    description: e.description,
                }),
            AccountEndpoint::Statz => match opts.bool("include_unused") {
                Err(e) => Err(bad_request(e)),
                Ok(unused) => {
                    let open = self.src.connections();
                    let stat = self.account_stat(acc, &open)?;
                    if stat.conns == 0 && !unused {
                        return None;
                    }
                    Ok(to_json(&AccountStatz {
                        server_id: self.server().id().to_string(),
                        now: monitor::rfc3339(self.clock(now).wall_now),
                        account_statz: vec![stat],
                    }))
                }
            },
            AccountEndpoint::Conns => {
                let open = self.src.connections();
                let stat = self.account_stat(acc, &open)?;
                if stat.conns == 0 {
                    return None;
                }
                let msg = AccountNumConns {
                    kind: ACCOUNT_CONNS_TYPE,
                    id: self.ids.next(),
                    timestamp: monitor::rfc3339(self.clock(now).wall_now),
                    server: self.server_info(now),
                    stat,
                };
                return Some(to_json(&msg));
            }
        };
        Some(self.wrap(now, data))
    }

    /// One account's figures: its live connections and their traffic plus
    /// that of its closed ones; `None` for an account that does not exist.
    fn account_stat(&self, acc: &str, open: &[ConnSnapshot]) -> Option<AccountStat> {
        self.server().account(acc)?;
        let closed = self.tracked.get(acc).cloned().unwrap_or_default();
        let (mut conns, mut sent, mut received) = (0, closed.sent, closed.received);
        for c in open.iter().filter(|c| c.account == acc) {
            conns += 1;
            sent.msgs += c.out_msgs;
            sent.bytes += c.out_bytes;
            received.msgs += c.in_msgs;
            received.bytes += c.in_bytes;
        }
        Some(AccountStat {
            acc: acc.to_string(),
            conns,
            leafnodes: 0,
            total_conns: conns,
            sent,
            received,
            slow_consumers: 0,
        })
    }

    /// `$SYS.REQ.ACCOUNT.PING.STATZ`: the accounts named in `accounts`
    /// (all when empty) that have connections, or all of them with
    /// `include_unused`; `None` (no answer) when that leaves none.
    fn accounts_statz(&self, now: Instant, opts: &Options) -> Result<Option<Vec<u8>>, String> {
        let names = opts.strings("accounts")?;
        let unused = opts.bool("include_unused")?;
        let open = self.src.connections();
        let names: Vec<String> = if names.is_empty() {
            self.server()
                .accounts()
                .iter()
                .map(|a| a.name.clone())
                .collect()
        } else {
            names
        };
        let stats: Vec<AccountStat> = names
            .iter()
            .filter_map(|n| self.account_stat(n, &open))
            .filter(|s| unused || s.conns > 0)
            .collect();
        if stats.is_empty() && !unused {
            return Ok(None);
        }
        Ok(Some(to_json(&AccountStatz {
            server_id: self.server().id().to_string(),
            now: monitor::rfc3339(self.clock(now).wall_now),
            account_statz: stats,
        })))
    }

    /// `acc`'s `AccountNumConns` on both its subjects, from what the
    /// events told; schedules the next heartbeat while it has connections.
    fn send_conns(&mut self, now: Instant, net: &mut Internal, acc: &str) {
        let t = self.tracked.entry(acc.to_string()).or_default();
        t.next_hb = (t.conns > 0).then_some(now + EVENTS_HB);
        let stat = AccountStat {
            acc: acc.to_string(),
            conns: t.conns,
            leafnodes: 0,
            total_conns: t.conns,
            sent: t.sent,
            received: t.received,
            slow_consumers: 0,
        };
        let msg = AccountNumConns {
            kind: ACCOUNT_CONNS_TYPE,
            id: self.ids.next(),
            timestamp: monitor::rfc3339(self.clock(now).wall_now),
            server: self.server_info(now),
            stat,
        };
        let body = to_json(&msg);
        self.send(now, net, &format!("$SYS.SERVER.ACCOUNT.{acc}.CONNS"), &body);
        self.send(now, net, &format!("$SYS.ACCOUNT.{acc}.SERVER.CONNS"), &body);
    }

    fn client_info(&self, c: &ConnSnapshot, clock: &Clock, closed: bool) -> ClientInfo {
        ClientInfo {
            start: monitor::rfc3339(clock.wall(c.started)),
            host: c.peer.ip().to_string(),
            id: c.cid,
            acc: c.account.clone(),
            user: c.user.clone().unwrap_or_default(),
            name: c.meta.name.clone(),
            lang: c.meta.lang.clone(),
            ver: c.meta.version.clone(),
            rtt: if closed {
                c.rtt.map_or(0, |d| d.as_nanos() as u64)
            } else {
                0
            },
            stop: c
                .closed
                .as_ref()
                .map(|(t, _)| monitor::rfc3339(clock.wall(*t))),
            kind: "Client",
            client_type: "nats",
        }
    }

    fn connect_event(&mut self, now: Instant, c: &ConnSnapshot) -> Vec<u8> {
        let clock = self.clock(now);
        let msg = ConnectEventMsg {
            kind: CONNECT_TYPE,
            id: self.ids.next(),
            timestamp: monitor::rfc3339(clock.wall_now),
            server: self.server_info(now),
            client: self.client_info(c, &clock, false),
        };
        to_json(&msg)
    }

    fn disconnect_event(&mut self, now: Instant, c: &ConnSnapshot) -> Vec<u8> {
        let clock = self.clock(now);
        let stop = c.closed.as_ref().map_or(now, |(t, _)| *t);
        let msg = DisconnectEventMsg {
            kind: DISCONNECT_TYPE,
            id: self.ids.next(),
            timestamp: monitor::rfc3339(clock.wall(stop)),
            server: self.server_info(now),
            client: self.client_info(c, &clock, true),
            // From the client's side, as nats-server reports it.
            sent: DataStats {
                msgs: c.in_msgs,
                bytes: c.in_bytes,
            },
            received: DataStats {
                msgs: c.out_msgs,
                bytes: c.out_bytes,
            },
            reason: c
                .closed
                .as_ref()
                .map(|(_, r)| r.to_string())
                .unwrap_or_default(),
        };
        to_json(&msg)
    }
}

/// The one client (not a server-internal one) that subscribes to `reply` in
/// `account`: who sent a request with that reply subject.
fn requester(account: &Account, reply: &[u8]) -> Option<SubRef> {
    let found = account.sublist.matches(reply);
    let mut clients = found
        .plain
        .into_iter()
        .filter(|s| !crate::internal::is_internal_cid(s.client.cid()));
    let first = clients.next()?;
    clients
        .all(|s| s.client.cid() == first.client.cid())
        .then_some(first)
}

fn bad_request(description: String) -> ApiError {
    ApiError {
        code: 400,
        description,
    }
}

/// The `account_detail` object of an `/accountz?acc=` body.
fn account_detail(body: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("account_detail").map(Value::take))
        .map(|d| to_json(&d))
        .unwrap_or_else(|| b"{}".to_vec())
}

impl Service for SysService {
    fn start(&mut self, now: Instant, net: &mut Internal) {
        let account = net.server().system_account();
        for subject in request_subjects(self.server().id()) {
            if let Err(e) = net.subscribe(now, &account, &subject, None) {
                log::error!("Error setting up internal tracking: {e}");
            }
        }
        self.account = Some(account);
        self.subscribe_user_info(now, net);
        self.next_statsz = Some(now + STATSZ_FIRST);
    }

    fn reloaded(&mut self, now: Instant, net: &mut Internal) {
        self.subscribe_user_info(now, net);
    }

    fn handle_msg(&mut self, now: Instant, msg: Delivery, net: &mut Internal) {
        if self.user_info_sids.contains(&msg.sid) {
            self.user_info(now, &msg, net);
            return;
        }
        let Ok(subject) = std::str::from_utf8(&msg.subject) else {
            return;
        };
        let Some(req) = parse_request(subject, self.server().id()) else {
            return;
        };
        let reply = msg
            .reply
            .as_deref()
            .and_then(|r| std::str::from_utf8(r).ok())
            .map(str::to_string);
        // Only STATSZ answers without a reply: on its broadcast subject.
        let reply = match (reply, &req) {
            (Some(r), _) => r,
            (None, Request::Server(Endpoint::Statsz)) => self.statsz_subject(),
            (None, _) => return,
        };
        let opts = if req.takes_options() {
            let parsed = Options::parse(&msg.payload, req.go_type())
                .and_then(|opts| opts.filter().map(|filter| (opts, filter)));
            match parsed {
                Ok((_, filter)) if !self.is_for_us(&filter) => return,
                Ok((opts, _)) => opts,
                Err(e) => {
                    let body = self.wrap(now, Err(bad_request(e)));
                    self.send(now, net, &reply, &body);
                    return;
                }
            }
        } else {
            Options::default()
        };
        if let Some(body) = self.answer(now, &req, &opts) {
            self.send(now, net, &reply, &body);
        }
    }

    fn handle_event(&mut self, now: Instant, event: Event, net: &mut Internal) {
        let id = self.server().id().to_string();
        match event {
            Event::Connected(c) => {
                self.users.insert(c.cid, c.user.clone());
                self.tracked.entry(c.account.clone()).or_default().conns += 1;
                self.send_conns(now, net, &c.account);
                // nats-server reports no client of the global account.
                if c.account != GLOBAL_ACCOUNT {
                    let body = self.connect_event(now, &c);
                    let subject = format!("$SYS.ACCOUNT.{}.CONNECT", c.account);
                    self.send(now, net, &subject, &body);
                }
            }
            Event::Disconnected(c) => {
                self.users.remove(&c.cid);
                let t = self.tracked.entry(c.account.clone()).or_default();
                t.conns = t.conns.saturating_sub(1);
                t.sent.msgs += c.out_msgs;
                t.sent.bytes += c.out_bytes;
                t.received.msgs += c.in_msgs;
                t.received.bytes += c.in_bytes;
                self.send_conns(now, net, &c.account);
                if c.account != GLOBAL_ACCOUNT {
                    let body = self.disconnect_event(now, &c);
                    let subject = format!("$SYS.ACCOUNT.{}.DISCONNECT", c.account);
                    self.send(now, net, &subject, &body);
                }
            }
            Event::LameDuck => {
                let body = to_json(&self.server_info(now));
                self.send(now, net, &format!("$SYS.SERVER.{id}.LAMEDUCK"), &body);
            }
            Event::Shutdown => {
                let body = to_json(&self.server_info(now));
                self.send(now, net, &format!("$SYS.SERVER.{id}.SHUTDOWN"), &body);
                self.next_statsz = None;
                for t in self.tracked.values_mut() {
                    t.next_hb = None;
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant, net: &mut Internal) {
        if self.next_statsz.is_some_and(|at| at <= now) {
            let body = self.statsz(now);
            let subject = self.statsz_subject();
            self.send(now, net, &subject, &body);
            self.statsz_every = (self.statsz_every * 2).min(EVENTS_HB);
            self.next_statsz = Some(now + self.statsz_every);
        }
        let due: Vec<String> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.next_hb.is_some_and(|at| at <= now))
            .map(|(acc, _)| acc.clone())
            .collect();
        for acc in due {
            self.send_conns(now, net, &acc);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.tracked
            .values()
            .filter_map(|t| t.next_hb)
            .chain(self.next_statsz)
            .min()
    }
}

#[cfg(test)]
mod tests {
    // A test owns its clock: one real Instant as the starting point.
    #![allow(clippy::disallowed_methods)]
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::client::{ClientMeta, CloseReason};
    use crate::monitor::ProcessStats;

    #[test]
    fn request_subjects_parse() {
        let id = "NABC";
        let server = |ep| Some(Request::Server(ep));
        assert_eq!(
            parse_request("$SYS.REQ.SERVER.PING", id),
            server(Endpoint::Statsz)
        );
        assert_eq!(
            parse_request("$SYS.REQ.SERVER.PING.VARZ", id),
            server(Endpoint::Varz)
        );
        assert_eq!(
            parse_request("$SYS.REQ.SERVER.NABC.CONNZ", id),
            server(Endpoint::Connz)
        );
        assert_eq!(
            parse_request("$SYS.REQ.SERVER.NABC.IDZ", id),
            server(Endpoint::Idz)
        );
        // Another server's requests, unknown endpoints, odd shapes.
        assert_eq!(parse_request("$SYS.REQ.SERVER.NXYZ.CONNZ", id), None);
        assert_eq!(parse_request("$SYS.REQ.SERVER.PING.BOGUS", id), None);
        assert_eq!(parse_request("$SYS.REQ.SERVER.PING.VARZ.X", id), None);
        assert_eq!(parse_request("$SYS.REQ.SERVER", id), None);
        assert_eq!(
            parse_request("$SYS.REQ.ACCOUNT.APP.CONNZ", id),
            Some(Request::Account("APP".into(), AccountEndpoint::Connz))
        );
        assert_eq!(
            parse_request("$SYS.REQ.ACCOUNT.$G.CONNS", id),
            Some(Request::Account("$G".into(), AccountEndpoint::Conns))
        );
        assert_eq!(
            parse_request("$SYS.REQ.ACCOUNT.PING.STATZ", id),
            Some(Request::AccountsStatz)
        );
        assert_eq!(parse_request("$SYS.REQ.ACCOUNT.APP.CLAIMS", id), None);
        // Every subscribed subject is one the parser knows about.
        for s in request_subjects(id) {
            let concrete = s.replace("*.*", "APP.CONNZ").replace('*', "VARZ");
            assert!(parse_request(&concrete, id).is_some(), "{concrete}");
        }
    }

    #[test]
    fn filters_match_as_nats_server() {
        let f = |body: &str| {
            Options::parse(body.as_bytes(), "StatszEventOptions")
                .and_then(|o| o.filter())
                .expect("filter")
        };
        assert!(f("").matches("srv-a", "0.0.0.0", ""));
        assert!(f(r#"{"server_name":"a"}"#).matches("srv-a", "0.0.0.0", ""));
        assert!(!f(r#"{"server_name":"b"}"#).matches("srv-a", "0.0.0.0", ""));
        assert!(f(r#"{"host":"0.0"}"#).matches("srv-a", "0.0.0.0", ""));
        assert!(!f(r#"{"host":"10."}"#).matches("srv-a", "0.0.0.0", ""));
        // No cluster and no tags here: asking for one matches nothing.
        assert!(!f(r#"{"cluster":"c"}"#).matches("srv-a", "0.0.0.0", ""));
        assert!(!f(r#"{"tags":["t"]}"#).matches("srv-a", "0.0.0.0", ""));
        assert!(f(r#"{"domain":"hub"}"#).matches("srv-a", "0.0.0.0", "hub"));
        assert!(!f(r#"{"domain":"hub"}"#).matches("srv-a", "0.0.0.0", "leaf"));
        assert!(f("null").matches("x", "y", ""));
    }

    #[test]
    fn options_become_queries_with_go_errors() {
        let parse = |body: &str, ty| Options::parse(body.as_bytes(), ty);
        let o = parse(
            r#"{"sort":"in_msgs","auth":true,"subscriptions_detail":true,"limit":2,"state":1,"acc":"A B","offset":0}"#,
            "ConnzEventOptions",
        )
        .expect("parse");
        assert_eq!(
            o.connz_query(&[]).expect("query"),
            "subs=detail&state=closed&sort=in_msgs&auth=true&limit=2&acc=A%20B"
        );
        // Forced pairs come first and the body cannot override them.
        assert_eq!(
            o.connz_query(&[("acc", "$SYS")]).expect("query"),
            "acc=%24SYS&subs=detail&state=closed&sort=in_msgs&auth=true&limit=2"
        );
        let o = parse(r#"{"subscriptions":true,"state":2}"#, "ConnzEventOptions").unwrap();
        assert_eq!(o.connz_query(&[]).unwrap(), "subs=true&state=all");
        let o = parse(r#"{"accounts":true,"name":"g"}"#, "GatewayzEventOptions").unwrap();
        assert_eq!(o.query(GATEWAYZ, &[]).unwrap(), "gw_name=g&accs=true");
        assert_eq!(
            target("/routez", &Options::default().routez_query().unwrap()),
            "/routez"
        );
        let o = parse(r#"{"subscriptions":true}"#, "RoutezEventOptions").unwrap();
        assert_eq!(
            target("/routez", &o.routez_query().unwrap()),
            "/routez?subs=true"
        );
        let o = parse(r#"{"limit":"x"}"#, "SubszEventOptions").unwrap();
        assert_eq!(
            o.query(SUBSZ, &[]),
            Err(
                "json: cannot unmarshal string into Go struct field SubszEventOptions.limit of type int"
                    .to_string()
            )
        );
        assert_eq!(
            parse("[1]", "VarzEventOptions").unwrap_err(),
            "json: cannot unmarshal array into Go value of type server.VarzEventOptions"
        );
        assert!(parse("{", "VarzEventOptions").is_err());
        let o = parse(r#"{"tags":"t"}"#, "StatszEventOptions").unwrap();
        assert!(o.filter().is_err());
    }

    #[test]
    fn compact_keeps_strings_and_order() {
        let pretty = b"{\n  \"b\": \"a \\\" b\",\n  \"a\": [ 1, 2 ],\n  \"c\": \"x\\\\\"\n}";
        assert_eq!(
            compact(pretty),
            b"{\"b\":\"a \\\" b\",\"a\":[1,2],\"c\":\"x\\\\\"}".to_vec()
        );
        let v: Value = serde_json::from_slice(&compact(pretty)).expect("valid JSON");
        assert_eq!(v["b"], "a \" b");
    }

    #[test]
    fn event_ids_look_like_nuids_and_never_repeat() {
        let mut a = EventIds::new(1);
        let mut b = EventIds::new(2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for id in [a.next(), b.next()] {
                assert_eq!(id.len(), 22);
                assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
                assert!(seen.insert(id));
            }
        }
        // The counter wraps inside its ten digits.
        let mut w = EventIds::new(3);
        w.n = COUNTER_SPAN - 1;
        assert!(w.next().ends_with("0000000000"));
    }

    /// A server with an `APP` account and its system account, seen through
    /// hand-made connection snapshots.
    struct Fake {
        server: Arc<Server>,
        conns: Vec<ConnSnapshot>,
    }

    impl Source for Fake {
        fn server(&self) -> &Server {
            &self.server
        }
        fn connections(&self) -> Vec<ConnSnapshot> {
            self.conns.clone()
        }
        fn process(&self) -> ProcessStats {
            ProcessStats {
                mem: 1000,
                cpu: 1.5,
                cores: 2,
            }
        }
        fn load(&self) -> crate::monitor::Load {
            crate::monitor::Load::default()
        }
    }

    fn snapshot(start: Instant, cid: u64, account: &str, in_msgs: u64) -> ConnSnapshot {
        ConnSnapshot {
            cid,
            peer: "127.0.0.1:5000".parse().expect("addr"),
            started: start,
            last_activity: start,
            rtt: Some(Duration::from_micros(250)),
            pending_bytes: 0,
            in_msgs,
            in_bytes: in_msgs * 10,
            out_msgs: 1,
            out_bytes: 5,
            meta: ClientMeta {
                name: format!("c{cid}"),
                lang: "rust".into(),
                version: "1".into(),
            },
            account: account.into(),
            user: Some("u".into()),
            subs: Vec::new(),
            closed: None,
        }
    }

    struct Rig {
        start: Instant,
        sys: SysService,
        net: Internal,
        obs: Internal,
        account: Arc<Account>,
    }

    impl Rig {
        fn new(conns: impl Fn(Instant) -> Vec<ConnSnapshot>) -> Rig {
            let map = crate::conf::parse(
                "accounts { APP { users [{user: a, password: b}] } }\nserver_name: srv-a\n",
            )
            .expect("conf");
            let mut opts = crate::options::Options::default();
            assert!(opts.apply_conf(&map).is_ok());
            let server = Arc::new(Server::new(opts, [9; 32]));
            let start = Instant::now();
            let src = Fake {
                server: server.clone(),
                conns: conns(start),
            };
            let start_wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let mut sys = SysService::new(Box::new(src), start, start_wall, 7);
            let mut net = Internal::new(server.clone(), 10, 1);
            sys.start(start, &mut net);
            let account = server.system_account();
            let mut obs = Internal::new(server, 11, 2);
            obs.subscribe(start, &account, "_INBOX.>", None).unwrap();
            obs.subscribe(start, &account, "$SYS.ACCOUNT.>", None)
                .unwrap();
            obs.subscribe(start, &account, "$SYS.SERVER.>", None)
                .unwrap();
            Rig {
                start,
                sys,
                net,
                obs,
                account,
            }
        }

        /// Publish a request and hand what reached the service to it;
        /// returns every (subject, JSON) the observer got.
        fn request(&mut self, subject: &str, body: &str) -> Vec<(String, Value)> {
            let now = self.start + Duration::from_secs(1);
            self.obs.publish(
                now,
                &self.account,
                subject.as_bytes(),
                Some(b"_INBOX.r"),
                None,
                body.as_bytes(),
            );
            for d in self.net.take_deliveries() {
                self.sys.handle_msg(now, d, &mut self.net);
            }
            self.seen()
        }

        fn seen(&mut self) -> Vec<(String, Value)> {
            self.obs
                .take_deliveries()
                .into_iter()
                .map(|d| {
                    let subject = String::from_utf8_lossy(&d.subject).into_owned();
                    let v = serde_json::from_slice(&d.payload).expect("JSON body");
                    (subject, v)
                })
                .collect()
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn ping_answers_statsz_and_endpoints_in_the_envelope() {
        let mut rig = Rig::new(|s| vec![snapshot(s, 4, "APP", 3), snapshot(s, 5, "$G", 2)]);
        let got = rig.request("$SYS.REQ.SERVER.PING", "");
        assert_eq!(got.len(), 1);
        let (subject, v) = &got[0];
        assert_eq!(subject, "_INBOX.r");
        assert_eq!(keys(v), ["server", "statsz"]);
        assert_eq!(
            keys(&v["server"]),
            ["host", "id", "jetstream", "name", "seq", "time", "ver"]
        );
        assert_eq!(v["server"]["name"], "srv-a");
        assert_eq!(v["statsz"]["received"]["msgs"], 5);
        assert_eq!(v["statsz"]["active_accounts"], 2);
        assert_eq!(v["statsz"]["mem"], 1000);
        assert_eq!(v["statsz"]["start"], "2023-11-14T22:13:20Z");
        let first_seq = v["server"]["seq"].as_u64().expect("seq");

        let id = rig.sys.server().id().to_string();
        let got = rig.request(&format!("$SYS.REQ.SERVER.{id}.CONNZ"), r#"{"auth":true}"#);
        let v = &got[0].1;
        assert_eq!(keys(v), ["data", "server"]);
        assert_eq!(v["data"]["num_connections"], 2);
        assert_eq!(v["data"]["connections"][0]["account"], "APP");
        assert!(v["server"]["seq"].as_u64().expect("seq") > first_seq);

        // Account-scoped CONNZ sees only that account.
        let got = rig.request("$SYS.REQ.ACCOUNT.APP.CONNZ", r#"{"acc":"$G"}"#);
        assert_eq!(got[0].1["data"]["num_connections"], 1);
        assert_eq!(got[0].1["data"]["connections"][0]["cid"], 4);

        // A bad option answers 400; a filter for another server, nothing.
        let got = rig.request("$SYS.REQ.SERVER.PING.SUBSZ", r#"{"limit":"x"}"#);
        assert_eq!(keys(&got[0].1), ["error", "server"]);
        assert_eq!(got[0].1["error"]["code"], 400);
        assert!(rig
            .request("$SYS.REQ.SERVER.PING.VARZ", r#"{"server_name":"other"}"#)
            .is_empty());
        let got = rig.request("$SYS.REQ.SERVER.PING.VARZ", r#"{"server_name":"srv"}"#);
        assert_eq!(got[0].1["data"]["server_name"], "srv-a");
        assert_eq!(got[0].1["data"]["in_msgs"], 5);

        // SUBSZ answers nats-server's whole Subsz, list or not.
        let got = rig.request("$SYS.REQ.SERVER.PING.SUBSZ", "");
        assert_eq!(got[0].1["data"]["total"], 0);
        assert_eq!(got[0].1["data"]["limit"], 1024);
        assert!(got[0].1["data"].get("subscriptions_list").is_none());

        let got = rig.request("$SYS.REQ.SERVER.PING.IDZ", "garbage");
        assert_eq!(keys(&got[0].1), ["host", "id", "name"]);
        let got = rig.request("$SYS.REQ.SERVER.PING.HEALTHZ", "");
        assert_eq!(got[0].1["data"]["status"], "ok");
        let got = rig.request("$SYS.REQ.ACCOUNT.APP.INFO", "");
        assert_eq!(got[0].1["data"]["account_name"], "APP");
        assert_eq!(got[0].1["data"]["client_connections"], 1);
        let got = rig.request("$SYS.REQ.ACCOUNT.NOPE.INFO", "");
        assert_eq!(got[0].1["error"]["code"], 500);
    }

    #[test]
    fn account_statz_and_conns() {
        let mut rig = Rig::new(|s| vec![snapshot(s, 4, "APP", 3)]);
        let got = rig.request("$SYS.REQ.ACCOUNT.APP.STATZ", "");
        let stat = &got[0].1["data"]["account_statz"][0];
        assert_eq!(stat["acc"], "APP");
        assert_eq!(stat["conns"], 1);
        assert_eq!(stat["received"]["msgs"], 3);
        // An account without connections answers only with include_unused.
        assert!(rig.request("$SYS.REQ.ACCOUNT.$G.STATZ", "").is_empty());
        let got = rig.request("$SYS.REQ.ACCOUNT.$G.STATZ", r#"{"include_unused":true}"#);
        assert_eq!(got[0].1["data"]["account_statz"][0]["conns"], 0);
        let got = rig.request("$SYS.REQ.ACCOUNT.PING.STATZ", "");
        let list = got[0].1["data"]["account_statz"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        let got = rig.request("$SYS.REQ.ACCOUNT.PING.STATZ", r#"{"include_unused":true}"#);
        let list = got[0].1["data"]["account_statz"].as_array().unwrap();
        assert_eq!(list.len(), 3, "$G, $SYS, APP");
        let got = rig.request("$SYS.REQ.ACCOUNT.APP.CONNS", "");
        let v = &got[0].1;
        assert_eq!(v["type"], ACCOUNT_CONNS_TYPE);
        assert_eq!(v["acc"], "APP");
        assert_eq!(v["conns"], 1);
        assert!(rig.request("$SYS.REQ.ACCOUNT.$G.CONNS", "").is_empty());
    }

    #[test]
    fn connect_and_disconnect_events() {
        let mut rig = Rig::new(|_| Vec::new());
        let now = rig.start + Duration::from_secs(2);
        let mut c = snapshot(rig.start, 9, "APP", 4);
        rig.sys
            .handle_event(now, Event::Connected(c.clone()), &mut rig.net);
        let got = rig.seen();
        let subjects: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "$SYS.SERVER.ACCOUNT.APP.CONNS",
                "$SYS.ACCOUNT.APP.SERVER.CONNS",
                "$SYS.ACCOUNT.APP.CONNECT"
            ]
        );
        assert_eq!(got[0].1["conns"], 1);
        let ev = &got[2].1;
        assert_eq!(ev["type"], CONNECT_TYPE);
        assert_eq!(ev["client"]["acc"], "APP");
        assert_eq!(ev["client"]["name"], "c9");
        assert_eq!(ev["client"]["id"], 9);
        assert!(ev["client"].get("rtt").is_none());
        assert!(ev["client"].get("stop").is_none());
        // The account's CONNS heartbeat is due in 30 s.
        assert_eq!(rig.sys.tracked["APP"].next_hb, Some(now + EVENTS_HB));

        c.closed = Some((now, CloseReason::ClientClosed));
        rig.sys
            .handle_event(now, Event::Disconnected(c), &mut rig.net);
        let got = rig.seen();
        assert_eq!(got[0].1["conns"], 0);
        assert_eq!(got[0].1["received"]["msgs"], 4);
        assert_eq!(rig.sys.tracked["APP"].next_hb, None);
        let ev = &got[2].1;
        assert_eq!(got[2].0, "$SYS.ACCOUNT.APP.DISCONNECT");
        assert_eq!(ev["type"], DISCONNECT_TYPE);
        assert_eq!(ev["reason"], "Client Closed");
        assert_eq!(ev["sent"]["msgs"], 4);
        assert_eq!(ev["received"]["msgs"], 1);
        assert_eq!(ev["client"]["rtt"], 250_000);
        assert!(ev["client"]["stop"].is_string());
        assert_ne!(ev["id"], got[0].1["id"]);

        // The global account's clients are counted, not announced.
        let g = snapshot(rig.start, 10, "$G", 0);
        rig.sys.handle_event(now, Event::Connected(g), &mut rig.net);
        let got = rig.seen();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "$SYS.ACCOUNT.$G.SERVER.CONNS");
    }

    #[test]
    fn heartbeats_back_off_and_stop_at_shutdown() {
        let mut rig = Rig::new(|_| Vec::new());
        let id = rig.sys.server().id().to_string();
        let mut at = rig.sys.poll_timeout().expect("statsz timer");
        assert_eq!(at, rig.start + STATSZ_FIRST);
        let mut gaps = Vec::new();
        for _ in 0..9 {
            rig.sys.handle_timeout(at, &mut rig.net);
            let got = rig.seen();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, format!("$SYS.SERVER.{id}.STATSZ"));
            assert_eq!(got[0].1["statsz"]["connections"], 0);
            let next = rig.sys.poll_timeout().expect("statsz timer");
            gaps.push(next - at);
            at = next;
        }
        assert_eq!(gaps[0], Duration::from_millis(500));
        assert_eq!(*gaps.last().unwrap(), EVENTS_HB);
        // An account with connections heartbeats its CONNS too.
        let c = snapshot(rig.start, 4, "APP", 0);
        rig.sys.handle_event(at, Event::Connected(c), &mut rig.net);
        rig.seen();
        rig.sys.handle_timeout(at + EVENTS_HB, &mut rig.net);
        let subjects: Vec<String> = rig.seen().into_iter().map(|(s, _)| s).collect();
        assert!(subjects.contains(&"$SYS.ACCOUNT.APP.SERVER.CONNS".to_string()));
        rig.sys.handle_event(at, Event::LameDuck, &mut rig.net);
        rig.sys.handle_event(at, Event::Shutdown, &mut rig.net);
        let got = rig.seen();
        assert_eq!(got[0].0, format!("$SYS.SERVER.{id}.LAMEDUCK"));
        assert_eq!(got[1].0, format!("$SYS.SERVER.{id}.SHUTDOWN"));
        assert_eq!(got[1].1["id"], id.as_str());
        assert_eq!(rig.sys.poll_timeout(), None);
    }
}
