//! Monitoring: nats-server's HTTP endpoints (`/varz`, `/connz`, `/subsz`,
//! ...) as pure functions, plus a Prometheus `/metrics` page.
//!
//! The `io` crate owns the socket; it parses the request line and hands the
//! target to [`Monitor::respond`] together with a [`Source`] (the running
//! server: shared state, live connection snapshots, process figures) and the
//! current time. Nothing here reads a clock: `now` (monotonic) and `wall_now`
//! (wall clock) come in, and every `Instant` in a snapshot is turned into a
//! wall time by its distance from `now`.
//!
//! Field names, types, defaults and 400 texts follow nats-server 2.9.10's
//! `server/monitor.go` (checked against the live binary): JSON is indented
//! by two spaces except `/healthz`, times are RFC 3339 with nanoseconds,
//! durations in `uptime`/`idle` use nats-server's `1d2h3m4s` style, and Go
//! floats print without a fraction when they are whole.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::client::ConnSnapshot;
use crate::route::RouteSnapshot;
use crate::server::{Server, COMPAT_VERSION, NATSD_VERSION};
use crate::subject;

/// nats-server's default page size for `/connz` and `/subsz`.
pub const DEFAULT_LIST_SIZE: usize = 1024;

/// The global account's name.
const GLOBAL_ACCOUNT: &str = "$G";

/// What the monitor reads from a running server. `io` implements it; tests
/// implement it over hand-made snapshots.
pub trait Source {
    /// The shared server state.
    fn server(&self) -> &Server;
    /// Snapshots of the live connections (order does not matter).
    fn connections(&self) -> Vec<ConnSnapshot>;
    /// Process figures for `/varz`.
    fn process(&self) -> ProcessStats;
    /// Reactor and stage load (natsd-specific).
    fn load(&self) -> Load;
    /// Snapshots of the routes (none on a server without a cluster).
    fn routes(&self) -> Vec<RouteSnapshot> {
        Vec::new()
    }
}

/// What the reactors and stages are carrying now (natsd's `/varz` key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// One entry per reactor thread.
    pub reactors: Vec<ReactorLoad>,
    /// One entry per stage thread.
    pub stages: Vec<StageLoad>,
}

/// One reactor's load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactorLoad {
    /// Reactor index.
    pub id: usize,
    /// Client connections it owns.
    pub connections: usize,
    /// Commands (accepts, flush wake-ups, ...) waiting in its inbox.
    pub inbox: usize,
}

/// One stage's load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageLoad {
    /// Thread name (`sys`, `jetstream`).
    pub name: String,
    /// Commands waiting in its inbox (its queue depth).
    pub inbox: usize,
    /// Messages it has handled since start.
    pub handled: u64,
}

/// Process figures the `io` side measures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub mem: i64,
    /// CPU use in percent of one core, since the previous sample.
    pub cpu: f64,
    /// Available cores.
    pub cores: usize,
}

/// One HTTP answer: status, content type and body. `io` adds the framing
/// headers (`Date`, `Content-Length`, `Connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    fn json(body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A plain-text error as nats-server writes it (status + message).
    pub fn error(status: u16, msg: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: msg.into().into_bytes(),
        }
    }

    /// Go's `http.NotFound`.
    pub fn not_found() -> Response {
        let mut r = Response::error(404, "404 page not found\n");
        r.headers.push(("X-Content-Type-Options", "nosniff"));
        r
    }
}

/// A refused query: HTTP status and nats-server's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// HTTP status (400).
    pub status: u16,
    /// Body text, as nats-server writes it.
    pub msg: String,
}

fn bad_request(msg: String) -> QueryError {
    QueryError { status: 400, msg }
}

/// Current time in both clocks, and the server's start in both. Every
/// `Instant` is converted to wall time through its distance from the start,
/// so a connection's `start` reads the same in every response.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now.
    pub wall_now: SystemTime,
    /// When the server started (monotonic).
    pub start: Instant,
    /// When the server started (wall clock).
    pub start_wall: SystemTime,
}

impl Clock {
    /// The wall time of `t`.
    pub fn wall(&self, t: Instant) -> SystemTime {
        if t >= self.start {
            self.start_wall + t.duration_since(self.start)
        } else {
            self.start_wall - self.start.duration_since(t)
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting helpers: Go's time, duration and float encodings.

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split_unix(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = -(d.as_secs() as i64);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// RFC 3339 in UTC with nanoseconds, trailing zeros trimmed (Go's
/// `time.RFC3339Nano`, which is how `time.Time` marshals to JSON).
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, nanos) = split_unix(t);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// An HTTP `Date` header value (RFC 7231 IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (secs, _) = split_unix(t);
    let days = secs.div_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let sod = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// nats-server's `myUptime`: whole seconds as `1y2d3h4m5s`, leading zero
/// units left out.
pub fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hrs) = (secs / 60, secs / 3600);
    let (days, yrs) = (hrs / 24, hrs / 24 / 365);
    if yrs > 0 {
        format!(
            "{yrs}y{}d{}h{}m{}s",
            days % 365,
            hrs % 24,
            mins % 60,
            secs % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hrs % 24, mins % 60, secs % 60)
    } else if hrs > 0 {
        format!("{hrs}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Go's float encoding: whole numbers without a fraction (`2`, not `2.0`).
/// Go's `time.Duration.String()`: `0s`, `750ns`, `1.5µs`, `1.234ms`,
/// `2.5s`, `1m30s`, `2h0m0s`.
pub fn go_duration(d: Duration) -> String {
    fn with_fraction(value: u128, unit: u128, digits: usize, suffix: &str) -> String {
        let whole = value / unit;
        let frac = format!("{:0digits$}", value % unit);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            format!("{whole}{suffix}")
        } else {
            format!("{whole}.{frac}{suffix}")
        }
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".to_string(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => with_fraction(ns, 1_000, 3, "µs"),
        1_000_000..=999_999_999 => with_fraction(ns, 1_000_000, 6, "ms"),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m) = (secs / 3600, secs % 3600 / 60);
            let s = with_fraction(ns % 60_000_000_000, 1_000_000_000, 9, "s");
            match (h, m) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

fn go_float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_i64(0)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Query strings.

/// A parsed query string: Go's `url.Values`, first value wins on `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding with `+` as space (Go's `QueryUnescape`); `None` on a
/// bad escape.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = unhex(*b.get(i + 1)?)?;
                let lo = unhex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl Query {
    /// Parse `a=1&b=2`. Pairs with a bad escape are skipped, as Go's
    /// `URL.Query` does.
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Some((unescape(k)?, unescape(v)?))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`, or `""`.
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Go's `strconv.ParseBool` with nats-server's 400 text.
    pub fn bool(&self, key: &str) -> Result<bool, QueryError> {
        match self.get(key) {
            "" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            v => Err(bad_request(format!(
                "Error decoding boolean for '{key}': strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v)
            ))),
        }
    }

    /// Go's `strconv.Atoi` with nats-server's 400 text.
    pub fn int(&self, key: &str) -> Result<i64, QueryError> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        v.parse::<i64>()
            .map_err(|e| int_error(key, "int", "strconv.Atoi", v, &e))
    }

    /// Go's `strconv.ParseUint` with nats-server's 400 text.
    pub fn uint(&self, key: &str) -> Result<u64, QueryError> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        if v.starts_with('+') {
            return Err(bad_request(format!(
                "Error decoding uint64 for '{key}': strconv.ParseUint: parsing {}: invalid syntax",
                go_quote(v)
            )));
        }
        v.parse::<u64>()
            .map_err(|e| int_error(key, "uint64", "strconv.ParseUint", v, &e))
    }
}

fn int_error(
    key: &str,
    what: &str,
    func: &str,
    v: &str,
    e: &std::num::ParseIntError,
) -> QueryError {
    use std::num::IntErrorKind;
    let why = match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    bad_request(format!(
        "Error decoding {what} for '{key}': {func}: parsing {}: {why}",
        go_quote(v)
    ))
}

/// Go's `%q` for the strings we echo (ASCII escapes only).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// /connz

/// `/connz?sort=`: nats-server's `SortOpt` values (plus `rtt`, which newer
/// nats-server releases accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOpt {
    /// `cid` (default).
    Cid,
    /// `start`: same order as `cid`.
    Start,
    /// `subs`, most first.
    Subs,
    /// `pending`, most first.
    Pending,
    /// `msgs_to`, most first.
    MsgsTo,
    /// `msgs_from`, most first.
    MsgsFrom,
    /// `bytes_to`, most first.
    BytesTo,
    /// `bytes_from`, most first.
    BytesFrom,
    /// `last` activity, latest first.
    Last,
    /// `idle`: last activity minus start, largest first (as nats-server).
    Idle,
    /// `uptime`, shortest first.
    Uptime,
    /// `stop` time, latest first (closed connections only).
    Stop,
    /// `reason`, alphabetical (closed connections only).
    Reason,
    /// `rtt`, largest first.
    Rtt,
}

impl SortOpt {
    /// Parse a `sort=` value; `""` is `cid`.
    pub fn parse(s: &str) -> Result<SortOpt, QueryError> {
        Ok(match s {
            "" | "cid" => SortOpt::Cid,
            "start" => SortOpt::Start,
            "subs" => SortOpt::Subs,
            "pending" => SortOpt::Pending,
            "msgs_to" => SortOpt::MsgsTo,
            "msgs_from" => SortOpt::MsgsFrom,
            "bytes_to" => SortOpt::BytesTo,
            "bytes_from" => SortOpt::BytesFrom,
            "last" => SortOpt::Last,
            "idle" => SortOpt::Idle,
            "uptime" => SortOpt::Uptime,
            "stop" => SortOpt::Stop,
            "reason" => SortOpt::Reason,
            "rtt" => SortOpt::Rtt,
            other => return Err(bad_request(format!("invalid sorting option: {other}"))),
        })
    }
}

/// Which connections `/connz` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Live connections (default).
    Open,
    /// Remembered closed connections.
    Closed,
    /// Both.
    Any,
}

/// `/connz` query options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnzOptions {
    /// Sort order.
    pub sort: SortOpt,
    /// `auth`: show `authorized_user` and `account`.
    pub auth: bool,
    /// `subs=true`: subject list.
    pub subs: bool,
    /// `subs=detail`: subscription details.
    pub subs_detail: bool,
    /// `offset`.
    pub offset: usize,
    /// `limit` (default 1024).
    pub limit: usize,
    /// `cid`: one connection (0 = all).
    pub cid: u64,
    /// `state`.
    pub state: ConnState,
    /// `user` filter.
    pub user: String,
    /// `acc` filter.
    pub acc: String,
    /// `mqtt_client` filter (no MQTT clients yet: a non-empty value matches none).
    pub mqtt_client: String,
}

impl Default for ConnzOptions {
    fn default() -> Self {
        ConnzOptions {
            sort: SortOpt::Cid,
            auth: false,
            subs: false,
            subs_detail: false,
            offset: 0,
            limit: DEFAULT_LIST_SIZE,
            cid: 0,
            state: ConnState::Open,
            user: String::new(),
            acc: String::new(),
            mqtt_client: String::new(),
        }
    }
}

impl ConnzOptions {
    /// Parse `/connz` query parameters with nats-server's checks and texts.
    pub fn from_query(q: &Query) -> Result<ConnzOptions, QueryError> {
        let sort_raw = q.get("sort");
        let auth = q.bool("auth")?;
        let subs_detail = q.get("subs").eq_ignore_ascii_case("detail");
        let subs = !subs_detail && q.bool("subs")?;
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let cid = q.uint("cid")?;
        let state = match q.get("state").to_ascii_lowercase().as_str() {
            "" | "open" => ConnState::Open,
            "closed" => ConnState::Closed,
            "any" | "all" => ConnState::Any,
            _ => {
                return Err(bad_request(format!(
                    "Error decoding state for {}",
                    q.get("state")
                )))
            }
        };
        let sort = SortOpt::parse(sort_raw)?;
        if sort == SortOpt::Stop && state != ConnState::Closed {
            return Err(bad_request(
                "sort by stop only valid on closed connections".into(),
            ));
        }
        if sort == SortOpt::Reason && state != ConnState::Closed {
            return Err(bad_request(
                "sort by reason only valid on closed connections".into(),
            ));
        }
        let mut limit = if limit <= 0 {
            DEFAULT_LIST_SIZE
        } else {
            usize::try_from(limit).unwrap_or(usize::MAX)
        };
        if cid > 0 {
            limit = 1;
        }
        Ok(ConnzOptions {
            sort,
            auth,
            subs,
            subs_detail,
            offset: usize::try_from(offset.max(0)).unwrap_or(usize::MAX),
            limit,
            cid,
            state,
            user: q.get("user").to_string(),
            acc: q.get("acc").to_string(),
            mqtt_client: q.get("mqtt_client").to_string(),
        })
    }
}

/// `/connz`.
#[derive(Debug, Clone, Serialize)]
pub struct Connz {
    /// `server_id`.
    pub server_id: String,
    /// `now`.
    pub now: String,
    /// `num_connections`: entries on this page.
    pub num_connections: usize,
    /// `total`: connections matching the state (and account) filter.
    pub total: usize,
    /// `offset`.
    pub offset: usize,
    /// `limit`.
    pub limit: usize,
    /// `connections`.
    pub connections: Vec<ConnInfo>,
}

/// One connection in `/connz`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    /// `cid`.
    pub cid: u64,
    /// `kind`: `Client`.
    pub kind: &'static str,
    /// `type`: `nats`.
    #[serde(rename = "type")]
    pub conn_type: &'static str,
    /// `ip`.
    pub ip: String,
    /// `port`.
    pub port: u16,
    /// `start`.
    pub start: String,
    /// `last_activity`.
    pub last_activity: String,
    /// `stop` (closed connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    /// `reason` (closed connections).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `rtt`: the round trip of the first PING/PONG, in Go's duration
    /// format; `0s` before it, as nats-server.
    pub rtt: String,
    /// `uptime`.
    pub uptime: String,
    /// `idle`.
    pub idle: String,
    /// `pending_bytes`.
    pub pending_bytes: usize,
    /// `in_msgs`.
    pub in_msgs: u64,
    /// `out_msgs`.
    pub out_msgs: u64,
    /// `in_bytes`.
    pub in_bytes: u64,
    /// `out_bytes`.
    pub out_bytes: u64,
    /// `subscriptions`: count.
    pub subscriptions: usize,
    /// `name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `lang`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    /// `version`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `authorized_user` (with `auth`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    /// `account` (with `auth`, when not `$G`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// `subscriptions_list` (with `subs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    /// `subscriptions_list_detail` (with `subs=detail`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    #[serde(skip)]
    sort_start: Instant,
    #[serde(skip)]
    sort_last: Instant,
    #[serde(skip)]
    sort_rtt: Duration,
    #[serde(skip)]
    sort_stop: Option<Instant>,
}

/// One subscription in `/connz?subs=detail` and `/subsz?subs=1`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubDetail {
    /// `account` (only in `/subsz`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// `subject`.
    pub subject: String,
    /// `qgroup`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub qgroup: String,
    /// `sid`.
    pub sid: String,
    /// `msgs`: delivered so far.
    pub msgs: u64,
    /// `max`: auto-unsubscribe limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// `cid`.
    pub cid: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn sub_details(c: &ConnSnapshot, with_account: bool) -> Vec<SubDetail> {
    c.subs
        .iter()
        .map(|s| SubDetail {
            account: if with_account {
                c.account.clone()
            } else {
                String::new()
            },
            subject: String::from_utf8_lossy(&s.subject).into_owned(),
            qgroup: s
                .queue
                .as_ref()
                .map(|q| String::from_utf8_lossy(q).into_owned())
                .unwrap_or_default(),
            sid: String::from_utf8_lossy(&s.sid).into_owned(),
            msgs: s.msgs,
            max: s.max,
            cid: c.cid,
        })
        .collect()
}

fn conn_info(c: &ConnSnapshot, opts: &ConnzOptions, clock: &Clock) -> ConnInfo {
    // A closed connection's figures are frozen at its close, as nats-server
    // fills a closed client's ConnInfo when it closes.
    let at = c.closed.as_ref().map_or(clock.now, |(t, _)| *t);
    let mut subs_detail = Vec::new();
    let mut subs_list = Vec::new();
    if opts.subs_detail {
        subs_detail = sub_details(c, false);
    } else if opts.subs {
        subs_list = c
            .subs
            .iter()
            .map(|s| String::from_utf8_lossy(&s.subject).into_owned())
            .collect();
    }
    let (authorized_user, account) = if opts.auth {
        (
            c.user.clone().unwrap_or_default(),
            if c.account == GLOBAL_ACCOUNT {
                String::new()
            } else {
                c.account.clone()
            },
        )
    } else {
        (String::new(), String::new())
    };
    ConnInfo {
        cid: c.cid,
        kind: "Client",
        conn_type: "nats",
        ip: c.peer.ip().to_string(),
        port: c.peer.port(),
        start: rfc3339(clock.wall(c.started)),
        last_activity: rfc3339(clock.wall(c.last_activity)),
        stop: c.closed.as_ref().map(|(t, _)| rfc3339(clock.wall(*t))),
        reason: c
            .closed
            .as_ref()
            .map(|(_, r)| r.to_string())
            .unwrap_or_default(),
        rtt: go_duration(c.rtt.unwrap_or_default()),
        uptime: uptime(at.saturating_duration_since(c.started)),
        idle: uptime(at.saturating_duration_since(c.last_activity)),
        pending_bytes: c.pending_bytes,
        in_msgs: c.in_msgs,
        out_msgs: c.out_msgs,
        in_bytes: c.in_bytes,
        out_bytes: c.out_bytes,
        subscriptions: c.subs.len(),
        name: c.meta.name.clone(),
        lang: c.meta.lang.clone(),
        version: c.meta.version.clone(),
        authorized_user,
        account,
        subscriptions_list: subs_list,
        subscriptions_list_detail: subs_detail,
        sort_start: c.started,
        sort_last: c.last_activity,
        sort_rtt: c.rtt.unwrap_or_default(),
        sort_stop: c.closed.as_ref().map(|(t, _)| *t),
    }
}

fn sort_conns(list: &mut [ConnInfo], sort: SortOpt, now: Instant) {
    use std::cmp::Reverse;
    match sort {
        SortOpt::Cid | SortOpt::Start => list.sort_by_key(|c| c.cid),
        SortOpt::Subs => list.sort_by_key(|c| Reverse(c.subscriptions)),
        SortOpt::Pending => list.sort_by_key(|c| Reverse(c.pending_bytes)),
        SortOpt::MsgsTo => list.sort_by_key(|c| Reverse(c.out_msgs)),
        SortOpt::MsgsFrom => list.sort_by_key(|c| Reverse(c.in_msgs)),
        SortOpt::BytesTo => list.sort_by_key(|c| Reverse(c.out_bytes)),
        SortOpt::BytesFrom => list.sort_by_key(|c| Reverse(c.in_bytes)),
        SortOpt::Last => list.sort_by_key(|c| Reverse(c.sort_last)),
        SortOpt::Idle => {
            list.sort_by_key(|c| Reverse(c.sort_last.saturating_duration_since(c.sort_start)))
        }
        SortOpt::Uptime => list.sort_by_key(|c| {
            c.sort_stop
                .unwrap_or(now)
                .saturating_duration_since(c.sort_start)
        }),
        SortOpt::Stop => list.sort_by_key(|c| Reverse(c.sort_stop)),
        SortOpt::Reason => list.sort_by(|a, b| a.reason.cmp(&b.reason)),
        SortOpt::Rtt => list.sort_by_key(|c| Reverse(c.sort_rtt)),
    }
}

/// Build `/connz` from live and closed snapshots.
pub fn connz(
    server_id: &str,
    open: &[ConnSnapshot],
    closed: &[ConnSnapshot],
    opts: &ConnzOptions,
    clock: &Clock,
) -> Connz {
    let acc_ok = |c: &&ConnSnapshot| opts.acc.is_empty() || c.account == opts.acc;
    let mut candidates: Vec<&ConnSnapshot> = Vec::new();
    if matches!(opts.state, ConnState::Open | ConnState::Any) {
        candidates.extend(open.iter().filter(acc_ok));
    }
    if matches!(opts.state, ConnState::Closed | ConnState::Any) {
        candidates.extend(closed.iter().filter(acc_ok));
    }
    let total = candidates.len();
    let mut list: Vec<ConnInfo> = candidates
        .into_iter()
        .filter(|c| opts.cid == 0 || c.cid == opts.cid)
        .filter(|c| opts.user.is_empty() || c.user.as_deref() == Some(opts.user.as_str()))
        .filter(|_| opts.mqtt_client.is_empty())
        .map(|c| conn_info(c, opts, clock))
        .collect();
    sort_conns(&mut list, opts.sort, clock.now);
    let lo = opts.offset.min(list.len());
    let hi = opts.offset.saturating_add(opts.limit).min(list.len());
    let page: Vec<ConnInfo> = list.drain(lo..hi).collect();
    Connz {
        server_id: server_id.to_string(),
        now: rfc3339(clock.wall_now),
        num_connections: page.len(),
        total,
        offset: opts.offset,
        limit: opts.limit,
        connections: page,
    }
}

// ---------------------------------------------------------------------------
// /subsz

/// nats-server's `SublistStats` JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SublistStatsJson {
    /// `num_subscriptions`.
    pub num_subscriptions: usize,
    /// `num_cache`: natsd's match caches are per reactor and not counted.
    pub num_cache: usize,
    /// `num_inserts`.
    pub num_inserts: u64,
    /// `num_removes`.
    pub num_removes: u64,
    /// `num_matches`.
    pub num_matches: u64,
    /// `cache_hit_rate`.
    #[serde(serialize_with = "go_float")]
    pub cache_hit_rate: f64,
    /// `max_fanout`.
    pub max_fanout: usize,
    /// `avg_fanout`.
    #[serde(serialize_with = "go_float")]
    pub avg_fanout: f64,
}

fn sublist_stats(server: &Server) -> SublistStatsJson {
    account_sublist_stats(&server.global)
}

fn account_sublist_stats(acc: &crate::server::Account) -> SublistStatsJson {
    let st = acc.sublist.stats();
    SublistStatsJson {
        num_subscriptions: st.num_subscriptions,
        num_inserts: st.num_inserts,
        num_removes: st.num_removes,
        num_matches: st.num_matches,
        ..SublistStatsJson::default()
    }
}

/// `/subsz` with a subscription list.
#[derive(Debug, Clone, Serialize)]
pub struct Subsz {
    /// `server_id`.
    pub server_id: String,
    /// `now`.
    pub now: String,
    /// The sublist counters, inline.
    #[serde(flatten)]
    pub stats: SublistStatsJson,
    /// `total`: entries on this page (as nats-server 2.9.10 counts it).
    pub total: usize,
    /// `offset`.
    pub offset: usize,
    /// `limit`.
    pub limit: usize,
    /// `subscriptions_list`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<SubDetail>,
}

/// `/subsz` query options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubszOptions {
    /// `subs`: list subscriptions.
    pub subs: bool,
    /// `offset`.
    pub offset: usize,
    /// `limit`.
    pub limit: usize,
    /// `test`: only subscriptions a publish on this subject reaches.
    pub test: Option<String>,
    /// `acc`: one account.
    pub acc: String,
}

impl SubszOptions {
    /// Parse `/subsz` query parameters with nats-server's checks and texts.
    pub fn from_query(q: &Query) -> Result<SubszOptions, QueryError> {
        let subs = q.bool("subs")?;
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let test = match q.get("test") {
            "" => None,
            t if subject::is_valid_literal_subject(t.as_bytes()) => Some(t.to_string()),
            t => {
                return Err(bad_request(format!(
                    "invalid test subject, must be valid publish subject: {t}"
                )))
            }
        };
        Ok(SubszOptions {
            subs,
            offset: usize::try_from(offset.max(0)).unwrap_or(usize::MAX),
            limit: if limit <= 0 {
                DEFAULT_LIST_SIZE
            } else {
                usize::try_from(limit).unwrap_or(usize::MAX)
            },
            test,
            acc: q.get("acc").to_string(),
        })
    }
}

/// nats-server's `Subsz` for these options: the counters, and the page of
/// subscriptions with `subs` (`total` counts the page, as 2.9.10 does). The
/// `$SYS` SUBSZ request answers with this whole shape.
pub fn subsz_model(
    server: &Server,
    open: &[ConnSnapshot],
    opts: &SubszOptions,
    clock: &Clock,
) -> Subsz {
    let stats = if opts.acc.is_empty() || opts.acc == server.global.name {
        sublist_stats(server)
    } else {
        SublistStatsJson::default()
    };
    let mut page = Vec::new();
    if opts.subs {
        let mut conns: Vec<&ConnSnapshot> = open
            .iter()
            .filter(|c| opts.acc.is_empty() || c.account == opts.acc)
            .collect();
        conns.sort_by_key(|c| c.cid);
        let details: Vec<SubDetail> = conns
            .into_iter()
            .flat_map(|c| sub_details(c, true))
            .filter(|d| {
                opts.test
                    .as_ref()
                    .is_none_or(|t| subject::subject_matches(d.subject.as_bytes(), t.as_bytes()))
            })
            .collect();
        let lo = opts.offset.min(details.len());
        let hi = opts.offset.saturating_add(opts.limit).min(details.len());
        page = details[lo..hi].to_vec();
    }
    Subsz {
        server_id: server.id().to_string(),
        now: rfc3339(clock.wall_now),
        stats,
        total: page.len(),
        offset: opts.offset,
        limit: opts.limit,
        subscriptions_list: page,
    }
}

/// `/subsz` body: the counters alone unless the list has entries (as
/// nats-server 2.9.10's HTTP handler prints it).
pub fn subsz(
    server: &Server,
    open: &[ConnSnapshot],
    opts: &SubszOptions,
    clock: &Clock,
) -> Vec<u8> {
    let model = subsz_model(server, open, opts, clock);
    if model.subscriptions_list.is_empty() {
        pretty(&model.stats)
    } else {
        pretty(&model)
    }
}

// ---------------------------------------------------------------------------
// /varz

/// An empty object (`cluster`, `gateway`, ... in `/varz` until they exist).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Empty {}

/// `jetstream` in `/varz`: `{}` when JetStream is off, else its config and
/// stats (nats-server's `JetStreamVarz`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VarzJetStream {
    /// `config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<JsConfig>,
    /// `stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<JsStats>,
}

/// nats-server's `JetStreamConfig` as monitoring shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JsConfig {
    /// `max_memory` (-1: not set).
    pub max_memory: i64,
    /// `max_storage` (-1: not set).
    pub max_storage: i64,
    /// `store_dir`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub store_dir: String,
    /// `sync_interval` in ns.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub sync_interval: i64,
    /// `sync_always`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sync_always: bool,
    /// `domain`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// nats-server's `JetStreamStats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JsStats {
    /// `memory`.
    pub memory: u64,
    /// `storage`.
    pub storage: u64,
    /// `reserved_memory`.
    pub reserved_memory: u64,
    /// `reserved_storage`.
    pub reserved_storage: u64,
    /// `accounts`.
    pub accounts: u64,
    /// `ha_assets`.
    pub ha_assets: u64,
    /// `api`.
    pub api: JsApi,
}

/// `api` of [`JsStats`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct JsApi {
    /// `total`.
    pub total: u64,
    /// `errors`.
    pub errors: u64,
}

/// The JetStream config and stats of `server`, when JetStream is on.
fn jetstream_figures(server: &Server) -> Option<(JsConfig, JsStats)> {
    let opts = server.options();
    if !opts.jetstream.enabled {
        return None;
    }
    let js = &server.jetstream;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let config = JsConfig {
        max_memory: opts.jetstream.max_memory,
        max_storage: opts.jetstream.max_store,
        store_dir: crate::jetstream::store_root(&opts).display().to_string(),
        sync_interval: i64::try_from(opts.jetstream.sync_interval.as_nanos()).unwrap_or(i64::MAX),
        sync_always: opts.jetstream.sync_always,
        domain: opts.jetstream.domain.clone().unwrap_or_default(),
    };
    let stats = JsStats {
        memory: get(&js.memory),
        storage: get(&js.storage),
        accounts: get(&js.accounts),
        api: JsApi {
            total: get(&js.api_total),
            errors: get(&js.api_errors),
        },
        ..JsStats::default()
    };
    Some((config, stats))
}

/// natsd-specific figures in `/varz` (key `natsd`).
#[derive(Debug, Clone, Serialize)]
pub struct NatsdVarz {
    /// natsd's own version.
    pub version: String,
    /// Reactor threads.
    pub reactors: usize,
    /// Clients closed as stale (no PONG).
    pub stale_connections: u64,
    /// Per-reactor connections and inbox depth.
    pub reactor_load: Vec<ReactorLoad>,
    /// Per-stage queue depth and messages handled.
    pub stages: Vec<StageLoad>,
}

/// `/varz`.
#[derive(Debug, Clone, Serialize)]
pub struct Varz {
    /// `server_id`.
    pub server_id: String,
    /// `server_name`.
    pub server_name: String,
    /// `version`: the nats-server release natsd implements.
    pub version: String,
    /// `proto`.
    pub proto: u32,
    /// `go`: the toolchain (natsd: `rust`).
    pub go: String,
    /// `host`.
    pub host: String,
    /// `port`.
    pub port: u16,
    /// `auth_required`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    /// `max_connections`.
    pub max_connections: usize,
    /// `max_subscriptions`.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub max_subscriptions: usize,
    /// `ping_interval` in nanoseconds.
    pub ping_interval: i64,
    /// `ping_max`.
    pub ping_max: u32,
    /// `http_host`.
    pub http_host: String,
    /// `http_port` as configured (`-1` stays `-1`, as nats-server).
    pub http_port: i32,
    /// `http_base_path`.
    pub http_base_path: String,
    /// `https_port`.
    pub https_port: i32,
    /// `auth_timeout` in seconds.
    #[serde(serialize_with = "go_float")]
    pub auth_timeout: f64,
    /// `max_control_line`.
    pub max_control_line: usize,
    /// `max_payload`.
    pub max_payload: usize,
    /// `max_pending`.
    pub max_pending: usize,
    /// `cluster`.
    pub cluster: VarzCluster,
    /// `gateway`.
    pub gateway: Empty,
    /// `leaf`.
    pub leaf: Empty,
    /// `mqtt`.
    pub mqtt: Empty,
    /// `websocket`.
    pub websocket: Empty,
    /// `jetstream`.
    pub jetstream: VarzJetStream,
    /// `tls_timeout` in seconds.
    #[serde(serialize_with = "go_float")]
    pub tls_timeout: f64,
    /// `write_deadline` in nanoseconds.
    pub write_deadline: i64,
    /// `start`.
    pub start: String,
    /// `now`.
    pub now: String,
    /// `uptime`.
    pub uptime: String,
    /// `mem`: RSS bytes.
    pub mem: i64,
    /// `cores`.
    pub cores: usize,
    /// `gomaxprocs`: the cores natsd may use.
    pub gomaxprocs: usize,
    /// `cpu` percent.
    #[serde(serialize_with = "go_float")]
    pub cpu: f64,
    /// `connections`.
    pub connections: usize,
    /// `total_connections`.
    pub total_connections: u64,
    /// `routes`.
    pub routes: usize,
    /// `remotes`.
    pub remotes: usize,
    /// `leafnodes`.
    pub leafnodes: usize,
    /// `in_msgs`.
    pub in_msgs: u64,
    /// `out_msgs`.
    pub out_msgs: u64,
    /// `in_bytes`.
    pub in_bytes: u64,
    /// `out_bytes`.
    pub out_bytes: u64,
    /// `slow_consumers`.
    pub slow_consumers: u64,
    /// `subscriptions`.
    pub subscriptions: usize,
    /// `http_req_stats`: requests per endpoint path.
    pub http_req_stats: BTreeMap<String, u64>,
    /// `config_load_time`.
    pub config_load_time: String,
    /// `system_account`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// natsd-specific figures.
    pub natsd: NatsdVarz,
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// Message totals: closed connections' (folded into the server counters)
/// plus the live ones'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages received.
    pub in_msgs: u64,
    /// Bytes received.
    pub in_bytes: u64,
    /// Messages sent.
    pub out_msgs: u64,
    /// Bytes sent.
    pub out_bytes: u64,
}

/// Server-wide totals.
pub fn totals(server: &Server, open: &[ConnSnapshot]) -> Totals {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &server.stats;
    let mut t = Totals {
        in_msgs: s.closed_in_msgs.load(Relaxed),
        in_bytes: s.closed_in_bytes.load(Relaxed),
        out_msgs: s.closed_out_msgs.load(Relaxed),
        out_bytes: s.closed_out_bytes.load(Relaxed),
    };
    for c in open {
        t.in_msgs += c.in_msgs;
        t.in_bytes += c.in_bytes;
        t.out_msgs += c.out_msgs;
        t.out_bytes += c.out_bytes;
    }
    t
}

// ---------------------------------------------------------------------------
// The others.

/// `/routez` (nats-server's `Routez`).
#[derive(Debug, Clone, Serialize)]
struct Routez {
    server_id: String,
    server_name: String,
    now: String,
    num_routes: usize,
    routes: Vec<RouteInfoJson>,
}

/// One route in `/routez` (nats-server's `RouteInfo`).
#[derive(Debug, Clone, Serialize)]
struct RouteInfoJson {
    rid: u64,
    remote_id: String,
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    rtt: String,
    uptime: String,
    idle: String,
    pending_size: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    compression: &'static str,
}

fn routez(src: &dyn Source, subs: bool, clock: &Clock) -> Routez {
    let mut routes: Vec<RouteInfoJson> = src
        .routes()
        .into_iter()
        .map(|r| RouteInfoJson {
            rid: r.rid,
            remote_id: r.remote_id,
            remote_name: r.remote_name,
            did_solicit: r.did_solicit,
            is_configured: r.is_configured,
            ip: r.peer.ip().to_string(),
            port: r.peer.port(),
            start: rfc3339(clock.wall(r.started)),
            last_activity: rfc3339(clock.wall(r.last_activity)),
            rtt: go_duration(r.rtt.unwrap_or_default()),
            uptime: uptime(clock.now.saturating_duration_since(r.started)),
            idle: uptime(clock.now.saturating_duration_since(r.last_activity)),
            pending_size: r.pending_bytes,
            in_msgs: r.in_msgs,
            out_msgs: r.out_msgs,
            in_bytes: r.in_bytes,
            out_bytes: r.out_bytes,
            subscriptions: r.subs.len(),
            subscriptions_list: subs.then_some(r.subs),
            compression: "off",
        })
        .collect();
    routes.sort_by_key(|r| r.rid);
    Routez {
        server_id: src.server().id().to_string(),
        server_name: src.server().name().to_string(),
        now: rfc3339(clock.wall_now),
        num_routes: routes.len(),
        routes,
    }
}

/// `cluster` in `/varz`: `{}` without a cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VarzCluster {
    /// `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// `cluster_port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_port: Option<i32>,
    /// `auth_timeout` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_timeout: Option<f64>,
    /// `urls`: the configured routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// `tls_timeout` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_timeout: Option<f64>,
}

fn varz_cluster(server: &Server) -> VarzCluster {
    let Some(cluster) = server.cluster() else {
        return VarzCluster::default();
    };
    let o = cluster.options();
    VarzCluster {
        name: Some(cluster.name()),
        addr: Some(o.host.clone()),
        cluster_port: Some(cluster.port().map_or(o.port, i32::from)),
        auth_timeout: Some(o.auth_timeout.as_secs_f64()),
        urls: o.routes.iter().map(|r| r.addr()).collect(),
        tls_timeout: Some(2.0),
    }
}

/// `/gatewayz`: no gateways until superclusters exist.
#[derive(Debug, Clone, Serialize)]
struct Gatewayz {
    server_id: String,
    now: String,
    outbound_gateways: BTreeMap<String, Empty>,
    inbound_gateways: BTreeMap<String, Empty>,
}

/// `/leafz`: no leafnodes yet (`leafs` is `null` when empty, as 2.9.10).
#[derive(Debug, Clone, Serialize)]
struct Leafz {
    server_id: String,
    now: String,
    leafnodes: usize,
    leafs: Option<Vec<Empty>>,
}

#[derive(Debug, Clone, Serialize)]
struct AccountInfo {
    account_name: String,
    update_time: String,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: usize,
    client_connections: usize,
    subscriptions: usize,
    sublist_stats: SublistStatsJson,
}

#[derive(Debug, Clone, Serialize)]
struct Accountz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    system_account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

/// Messages and payload bytes (nats-server's `DataStats`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct DataStats {
    pub(crate) msgs: u64,
    pub(crate) bytes: u64,
}

/// One account's figures (`/accstatz`, `$SYS` STATZ and CONNS).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountStat {
    pub(crate) acc: String,
    pub(crate) conns: usize,
    pub(crate) leafnodes: usize,
    pub(crate) total_conns: usize,
    pub(crate) sent: DataStats,
    pub(crate) received: DataStats,
    pub(crate) slow_consumers: u64,
}

/// `/accstatz` and the `$SYS` STATZ answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountStatz {
    pub(crate) server_id: String,
    pub(crate) now: String,
    pub(crate) account_statz: Vec<AccountStat>,
}

#[derive(Debug, Clone, Serialize)]
struct HealthStatus {
    status: &'static str,
}

/// `/jsz`: nats-server's `JSInfo` (the disabled shape when JetStream is off).
#[derive(Debug, Clone, Serialize)]
struct Jsz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    config: JsConfig,
    #[serde(flatten)]
    stats: JsStats,
    streams: u64,
    consumers: u64,
    messages: u64,
    bytes: u64,
}

// ---------------------------------------------------------------------------
// Routing.

/// The endpoints, by path after the base path.
const ENDPOINTS: &[&str] = &[
    "/varz",
    "/connz",
    "/routez",
    "/gatewayz",
    "/leafz",
    "/subsz",
    "/subscriptionsz",
    "/accountz",
    "/accstatz",
    "/jsz",
    "/healthz",
    "/metrics",
];

/// The monitor's own state: its base path and how many requests each
/// endpoint has had. One per HTTP listener; `io` keeps it behind a lock.
#[derive(Debug, Clone)]
pub struct Monitor {
    base_path: String,
    http_host: String,
    client_port: u16,
    req_stats: BTreeMap<String, u64>,
}

impl Monitor {
    /// A monitor serving under `http_base_path` (normalised as nats-server
    /// does: leading `/`, no trailing `/`); `http_host` is what `/varz`
    /// reports, `client_port` the client listener's bound port (`-p -1`
    /// picks one at start).
    pub fn new(http_base_path: Option<&str>, http_host: &str, client_port: u16) -> Monitor {
        let raw = http_base_path.unwrap_or("").trim_end_matches('/');
        let base_path = if raw.is_empty() || raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        Monitor {
            base_path,
            http_host: http_host.to_string(),
            client_port,
            req_stats: BTreeMap::new(),
        }
    }

    /// Requests served per endpoint path.
    pub fn req_stats(&self) -> &BTreeMap<String, u64> {
        &self.req_stats
    }

    /// Answer one request for `target` (path and query as on the request
    /// line). Never panics on any input.
    pub fn respond(&mut self, target: &str, src: &dyn Source, clock: &Clock) -> Response {
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let q = Query::parse(raw_query);
        let Some(rest) = path.strip_prefix(self.base_path.as_str()) else {
            return Response::not_found();
        };
        // Go's mux matches an endpoint exactly: `/varz/` is not `/varz`.
        let endpoint = match rest {
            "" => "/",
            p => p,
        };
        if endpoint != "/" && !ENDPOINTS.contains(&endpoint) {
            return Response::not_found();
        }
        *self.req_stats.entry(endpoint.to_string()).or_insert(0) += 1;
        let result = match endpoint {
            "/" => Ok(self.index()),
            "/varz" => Ok(Response::json(pretty(&self.varz(src, clock)))),
            "/connz" => ConnzOptions::from_query(&q).map(|opts| {
                let open = src.connections();
                let closed = src.server().closed_connections();
                let c = connz(src.server().id(), &open, &closed, &opts, clock);
                Response::json(pretty(&c))
            }),
            "/subsz" | "/subscriptionsz" => SubszOptions::from_query(&q).map(|opts| {
                let open = if opts.subs {
                    src.connections()
                } else {
                    Vec::new()
                };
                Response::json(subsz(src.server(), &open, &opts, clock))
            }),
            "/routez" => q
                .bool("subs")
                .map(|subs| Response::json(pretty(&routez(src, subs, clock)))),
            "/gatewayz" => q.bool("accs").map(|_| {
                Response::json(pretty(&Gatewayz {
                    server_id: src.server().id().to_string(),
                    now: rfc3339(clock.wall_now),
                    outbound_gateways: BTreeMap::new(),
                    inbound_gateways: BTreeMap::new(),
                }))
            }),
            "/leafz" => q.bool("subs").map(|_| {
                Response::json(pretty(&Leafz {
                    server_id: src.server().id().to_string(),
                    now: rfc3339(clock.wall_now),
                    leafnodes: 0,
                    leafs: None,
                }))
            }),
            "/accountz" => Ok(self.accountz(src, &q, clock)),
            "/accstatz" => q.bool("unused").map(|unused| {
                let open = src.connections();
                Response::json(pretty(&accstatz(src, &open, unused, clock)))
            }),
            "/jsz" => {
                let server = src.server();
                let js = &server.jetstream;
                let get =
                    |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                let (disabled, config, stats, counts) = match jetstream_figures(server) {
                    Some((config, stats)) => (
                        false,
                        config,
                        stats,
                        [
                            get(&js.streams),
                            get(&js.consumers),
                            get(&js.messages),
                            get(&js.bytes),
                        ],
                    ),
                    None => (
                        true,
                        JsConfig {
                            max_memory: 0,
                            max_storage: 0,
                            store_dir: String::new(),
                            sync_interval: 0,
                            sync_always: false,
                            domain: String::new(),
                        },
                        JsStats::default(),
                        [0; 4],
                    ),
                };
                let [streams, consumers, messages, bytes] = counts;
                Ok(Response::json(pretty(&Jsz {
                    server_id: server.id().to_string(),
                    now: rfc3339(clock.wall_now),
                    disabled,
                    config,
                    stats,
                    streams,
                    consumers,
                    messages,
                    bytes,
                })))
            }
            "/healthz" => healthz(&q),
            "/metrics" => Ok(Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: Vec::new(),
                body: self.metrics(src, clock).into_bytes(),
            }),
            _ => return Response::not_found(),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => Response::error(e.status, e.msg),
        };
        let callback = q.get("callback");
        if resp.status == 200 && resp.content_type == "application/json" && !callback.is_empty() {
            let mut body = Vec::with_capacity(resp.body.len() + callback.len() + 2);
            body.extend_from_slice(callback.as_bytes());
            body.push(b'(');
            body.extend_from_slice(&resp.body);
            body.push(b')');
            resp.body = body;
            resp.content_type = "application/javascript";
        }
        resp
    }

    fn path(&self, p: &str) -> String {
        format!("{}{p}", self.base_path)
    }

    fn index(&self) -> Response {
        let mut html = String::from(
            "<html lang=\"en\">\n<head>\n<title>natsd monitoring</title>\n</head>\n<body>\n",
        );
        let _ = writeln!(
            html,
            "<h1>natsd v{NATSD_VERSION} (nats-server v{COMPAT_VERSION} compatible)</h1>"
        );
        for (name, p) in [
            ("General", "/varz"),
            ("JetStream", "/jsz"),
            ("Connections", "/connz"),
            ("Accounts", "/accountz"),
            ("Account Stats", "/accstatz"),
            ("Subscriptions", "/subsz"),
            ("Routes", "/routez"),
            ("LeafNodes", "/leafz"),
            ("Gateways", "/gatewayz"),
            ("Health Probe", "/healthz"),
            ("Prometheus Metrics", "/metrics"),
        ] {
            let _ = writeln!(html, "<a href=.{}>{name}</a><br/>", self.path(p));
        }
        html.push_str("</body>\n</html>\n");
        Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: html.into_bytes(),
        }
    }

    /// `/varz` for `src` at `clock`.
    pub fn varz(&self, src: &dyn Source, clock: &Clock) -> Varz {
        use std::sync::atomic::Ordering::Relaxed;
        let server = src.server();
        let o = server.options();
        let open = src.connections();
        let t = totals(server, &open);
        let p = src.process();
        let start = rfc3339(clock.start_wall);
        Varz {
            server_id: server.id().to_string(),
            server_name: server.name().to_string(),
            version: COMPAT_VERSION.to_string(),
            proto: 1,
            go: "rust".to_string(),
            host: o.host.clone(),
            port: self.client_port,
            // What INFO says (no_auth_user leaves it out), as nats-server.
            auth_required: server.authenticator().info_auth_required(),
            max_connections: o.max_connections,
            max_subscriptions: o.max_subscriptions,
            ping_interval: nanos(o.ping_interval),
            ping_max: o.ping_max,
            http_host: self.http_host.clone(),
            http_port: o.http_port,
            http_base_path: self.base_path.clone(),
            https_port: o.https_port,
            auth_timeout: o.auth_timeout.as_secs_f64(),
            max_control_line: o.max_control_line,
            max_payload: o.max_payload,
            max_pending: o.max_pending,
            cluster: varz_cluster(server),
            gateway: Empty {},
            leaf: Empty {},
            mqtt: Empty {},
            websocket: Empty {},
            jetstream: jetstream_figures(src.server())
                .map(|(config, stats)| VarzJetStream {
                    config: Some(config),
                    stats: Some(stats),
                })
                .unwrap_or_default(),
            tls_timeout: 2.0,
            write_deadline: nanos(o.write_deadline),
            config_load_time: start.clone(),
            start,
            now: rfc3339(clock.wall_now),
            uptime: uptime(clock.now.saturating_duration_since(clock.start)),
            mem: p.mem,
            cores: p.cores,
            gomaxprocs: p.cores,
            cpu: p.cpu,
            connections: server.stats.connections.load(Relaxed),
            total_connections: server.stats.total_connections.load(Relaxed),
            routes: server.cluster().map_or(0, |c| c.route_count()),
            remotes: server.cluster().map_or(0, |c| c.route_count()),
            leafnodes: 0,
            in_msgs: t.in_msgs,
            out_msgs: t.out_msgs,
            in_bytes: t.in_bytes,
            out_bytes: t.out_bytes,
            slow_consumers: server.stats.slow_consumers.load(Relaxed),
            subscriptions: server.global.sublist.count(),
            http_req_stats: self.req_stats.clone(),
            system_account: server.system_account().name.clone(),
            natsd: {
                let load = src.load();
                NatsdVarz {
                    version: NATSD_VERSION.to_string(),
                    reactors: load.reactors.len(),
                    stale_connections: server.stats.stale_connections.load(Relaxed),
                    reactor_load: load.reactors,
                    stages: load.stages,
                }
            },
        }
    }

    fn accountz(&self, src: &dyn Source, q: &Query, clock: &Clock) -> Response {
        let server = src.server();
        let system_account = server.system_account().name.clone();
        let acc = q.get("acc");
        let mut body = Accountz {
            server_id: server.id().to_string(),
            now: rfc3339(clock.wall_now),
            system_account,
            accounts: Vec::new(),
            account_detail: None,
        };
        if acc.is_empty() {
            body.accounts = server.accounts().iter().map(|a| a.name.clone()).collect();
        } else if let Some(account) = server.account(acc) {
            let open = src.connections();
            body.account_detail = Some(AccountInfo {
                account_name: acc.to_string(),
                update_time: rfc3339(clock.start_wall),
                expired: false,
                complete: true,
                jetstream_enabled: crate::jetstream::enabled_for(&server.options(), acc),
                leafnode_connections: 0,
                client_connections: open.iter().filter(|c| c.account == acc).count(),
                subscriptions: account.sublist.count(),
                sublist_stats: account_sublist_stats(&account),
            });
        } else {
            return Response::error(400, format!("Account {acc} does not exist"));
        }
        Response::json(pretty(&body))
    }

    /// The Prometheus text page. Metric names follow
    /// prometheus-nats-exporter's (`gnatsd_varz_*`, `gnatsd_connz_*`,
    /// `gnatsd_subsz_*`), each labelled with `server_id`; README.md lists them.
    pub fn metrics(&self, src: &dyn Source, clock: &Clock) -> String {
        let v = self.varz(src, clock);
        let open = src.connections();
        let sl = sublist_stats(src.server());
        let id = prom_escape(&v.server_id);
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{server_id=\"{id}\"}} {value}");
        };
        let uptime_secs = clock
            .now
            .saturating_duration_since(clock.start)
            .as_secs_f64();
        let start_secs = split_unix(clock.start_wall).0 as f64;
        let gauges: [(&str, &str, &str, f64); 22] = [
            (
                "gnatsd_varz_connections",
                "gauge",
                "Current client connections",
                v.connections as f64,
            ),
            (
                "gnatsd_varz_total_connections",
                "counter",
                "Client connections accepted since start",
                v.total_connections as f64,
            ),
            (
                "gnatsd_varz_in_msgs",
                "counter",
                "Messages received from clients",
                v.in_msgs as f64,
            ),
            (
                "gnatsd_varz_out_msgs",
                "counter",
                "Messages sent to clients",
                v.out_msgs as f64,
            ),
            (
                "gnatsd_varz_in_bytes",
                "counter",
                "Payload bytes received from clients",
                v.in_bytes as f64,
            ),
            (
                "gnatsd_varz_out_bytes",
                "counter",
                "Payload bytes sent to clients",
                v.out_bytes as f64,
            ),
            (
                "gnatsd_varz_slow_consumers",
                "counter",
                "Clients closed as slow consumers",
                v.slow_consumers as f64,
            ),
            (
                "gnatsd_varz_subscriptions",
                "gauge",
                "Current subscriptions",
                v.subscriptions as f64,
            ),
            (
                "gnatsd_varz_routes",
                "gauge",
                "Current routes",
                v.routes as f64,
            ),
            (
                "gnatsd_varz_remotes",
                "gauge",
                "Current remote servers",
                0.0,
            ),
            (
                "gnatsd_varz_leafnodes",
                "gauge",
                "Current leafnode connections",
                0.0,
            ),
            (
                "gnatsd_varz_mem",
                "gauge",
                "Resident memory in bytes",
                v.mem as f64,
            ),
            (
                "gnatsd_varz_cpu",
                "gauge",
                "CPU use in percent of one core",
                v.cpu,
            ),
            (
                "gnatsd_varz_cores",
                "gauge",
                "Available cores",
                v.cores as f64,
            ),
            (
                "gnatsd_varz_max_connections",
                "gauge",
                "max_connections",
                v.max_connections as f64,
            ),
            (
                "gnatsd_varz_max_payload",
                "gauge",
                "max_payload in bytes",
                v.max_payload as f64,
            ),
            (
                "gnatsd_varz_max_pending",
                "gauge",
                "max_pending in bytes",
                v.max_pending as f64,
            ),
            (
                "gnatsd_varz_uptime_seconds",
                "gauge",
                "Seconds since the server started",
                uptime_secs,
            ),
            (
                "gnatsd_varz_start_time_seconds",
                "gauge",
                "Start time in Unix seconds",
                start_secs,
            ),
            (
                "gnatsd_connz_num_connections",
                "gauge",
                "Open client connections",
                open.len() as f64,
            ),
            (
                "gnatsd_subsz_num_subscriptions",
                "gauge",
                "Subscriptions in the sublist",
                sl.num_subscriptions as f64,
            ),
            (
                "gnatsd_subsz_num_matches",
                "counter",
                "Sublist matches",
                sl.num_matches as f64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            metric(name, kind, help, value);
        }
        metric(
            "gnatsd_subsz_num_inserts",
            "counter",
            "Sublist inserts",
            sl.num_inserts as f64,
        );
        metric(
            "gnatsd_subsz_num_removes",
            "counter",
            "Sublist removes",
            sl.num_removes as f64,
        );
        metric(
            "natsd_stale_connections",
            "counter",
            "Clients closed as stale (no PONG)",
            v.natsd.stale_connections as f64,
        );
        metric(
            "natsd_reactors",
            "gauge",
            "Reactor threads",
            v.natsd.reactors as f64,
        );
        let mut open = open;
        open.sort_by_key(|c| c.cid);
        type Field = fn(&ConnSnapshot) -> u64;
        let per_conn: [(&str, &str, &str, Field); 6] = [
            (
                "gnatsd_connz_in_msgs",
                "counter",
                "Messages received from this connection",
                |c| c.in_msgs,
            ),
            (
                "gnatsd_connz_out_msgs",
                "counter",
                "Messages sent to this connection",
                |c| c.out_msgs,
            ),
            (
                "gnatsd_connz_in_bytes",
                "counter",
                "Payload bytes received from this connection",
                |c| c.in_bytes,
            ),
            (
                "gnatsd_connz_out_bytes",
                "counter",
                "Payload bytes sent to this connection",
                |c| c.out_bytes,
            ),
            (
                "gnatsd_connz_pending_bytes",
                "gauge",
                "Bytes queued for this connection",
                |c| c.pending_bytes as u64,
            ),
            (
                "gnatsd_connz_subscriptions",
                "gauge",
                "Subscriptions of this connection",
                |c| c.subs.len() as u64,
            ),
        ];
        for (name, kind, help, f) in per_conn {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for c in &open {
                let _ = writeln!(
                    out,
                    "{name}{{server_id=\"{id}\",cid=\"{}\",name=\"{}\"}} {}",
                    c.cid,
                    prom_escape(&c.meta.name),
                    f(c)
                );
            }
        }
        out
    }
}

/// Escape a Prometheus label value.
fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn healthz(q: &Query) -> Result<Response, QueryError> {
    q.bool("js-enabled")?;
    q.bool("js-enabled-only")?;
    q.bool("js-server-only")?;
    // Compact JSON, unlike the other endpoints (nats-server uses json.Marshal here).
    let body = serde_json::to_vec(&HealthStatus { status: "ok" }).unwrap_or_default();
    Ok(Response::json(body))
}

fn accstatz(src: &dyn Source, open: &[ConnSnapshot], unused: bool, clock: &Clock) -> AccountStatz {
    let server = src.server();
    let name = &server.global.name;
    let mut stats = Vec::new();
    let conns = open.iter().filter(|c| &c.account == name).count();
    if unused || conns != 0 {
        // Closed connections' traffic is folded into the server counters;
        // with one account those are the account's too.
        let t = totals(server, open);
        stats.push(AccountStat {
            acc: name.clone(),
            conns,
            leafnodes: 0,
            total_conns: conns,
            sent: DataStats {
                msgs: t.out_msgs,
                bytes: t.out_bytes,
            },
            received: DataStats {
                msgs: t.in_msgs,
                bytes: t.in_bytes,
            },
            slow_consumers: server
                .stats
                .slow_consumers
                .load(std::sync::atomic::Ordering::Relaxed),
        });
    }
    AccountStatz {
        server_id: server.id().to_string(),
        now: rfc3339(clock.wall_now),
        account_statz: stats,
    }
}

#[cfg(test)]
mod tests {
    // Tests own the clock: one Instant::now() per test as the origin.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        let d = Duration::from_nanos;
        assert_eq!(go_duration(d(0)), "0s");
        assert_eq!(go_duration(d(750)), "750ns");
        assert_eq!(go_duration(d(1_500)), "1.5µs");
        assert_eq!(go_duration(d(1_234_000)), "1.234ms");
        assert_eq!(go_duration(d(2_000_000)), "2ms");
        assert_eq!(go_duration(d(2_500_000_000)), "2.5s");
        assert_eq!(go_duration(d(90_000_000_000)), "1m30s");
        assert_eq!(go_duration(d(7_200_000_000_000)), "2h0m0s");
    }
    use crate::client::{ClientMeta, CloseReason, SubSnapshot};
    use crate::options::Options;
    use bytes::Bytes;

    struct Fake {
        server: Server,
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
                mem: 1 << 20,
                cpu: 1.5,
                cores: 4,
            }
        }
        fn load(&self) -> Load {
            Load {
                reactors: (0..2)
                    .map(|id| ReactorLoad {
                        id,
                        connections: 1,
                        inbox: 0,
                    })
                    .collect(),
                stages: vec![StageLoad {
                    name: "sys".into(),
                    inbox: 3,
                    handled: 7,
                }],
            }
        }
    }

    fn clock(start: Instant) -> Clock {
        Clock {
            now: start + Duration::from_secs(3725),
            wall_now: UNIX_EPOCH + Duration::from_secs(1_700_003_725),
            start,
            start_wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn conn(start: Instant, cid: u64, subs: usize, in_msgs: u64) -> ConnSnapshot {
        ConnSnapshot {
            cid,
            peer: "127.0.0.1:5000".parse().expect("addr"),
            started: start + Duration::from_secs(cid),
            last_activity: start + Duration::from_secs(cid * 10),
            rtt: Some(Duration::from_micros(cid * 100)),
            pending_bytes: 0,
            in_msgs,
            in_bytes: in_msgs * 10,
            out_msgs: 0,
            out_bytes: 0,
            meta: ClientMeta {
                name: format!("c{cid}"),
                lang: "rust".into(),
                version: "1".into(),
            },
            account: "$G".into(),
            user: cid.is_multiple_of(2).then(|| "alice".to_string()),
            subs: (0..subs)
                .map(|i| SubSnapshot {
                    subject: Bytes::from(format!("s.{cid}.{i}")),
                    queue: None,
                    sid: Bytes::from(i.to_string()),
                    msgs: 0,
                    max: 0,
                })
                .collect(),
            closed: None,
        }
    }

    fn get(m: &mut Monitor, src: &Fake, target: &str, clk: &Clock) -> (u16, serde_json::Value) {
        let r = m.respond(target, src, clk);
        let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status, v)
    }

    #[test]
    fn go_time_and_duration_formats() {
        // As Go's time.RFC3339Nano: trailing zeros trimmed.
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        // nats-server myUptime.
        assert_eq!(uptime(Duration::from_millis(999)), "0s");
        assert_eq!(uptime(Duration::from_secs(62)), "1m2s");
        assert_eq!(uptime(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(uptime(Duration::from_secs(86_400 + 1)), "1d0h0m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn query_parsing_and_go_errors() {
        let q = Query::parse("a=1&b=x%20y&c=+z&bad=%zz&a=2");
        assert_eq!(q.get("a"), "1");
        assert_eq!(q.get("b"), "x y");
        assert_eq!(q.get("c"), " z");
        assert_eq!(q.get("bad"), "");
        assert_eq!(q.get("missing"), "");
        assert_eq!(Query::parse("subs=T").bool("subs"), Ok(true));
        assert_eq!(
            Query::parse("subs=yes").bool("subs").map_err(|e| e.msg),
            Err("Error decoding boolean for 'subs': strconv.ParseBool: parsing \"yes\": invalid syntax".to_string())
        );
        assert_eq!(
            Query::parse("limit=x").int("limit").map_err(|e| e.msg),
            Err(
                "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"
                    .to_string()
            )
        );
        assert_eq!(
            Query::parse("cid=-1").uint("cid").map_err(|e| e.status),
            Err(400)
        );
        assert_eq!(
            ConnzOptions::from_query(&Query::parse("sort=bogus")).map_err(|e| e.msg),
            Err("invalid sorting option: bogus".to_string())
        );
        assert_eq!(
            ConnzOptions::from_query(&Query::parse("sort=stop")).map_err(|e| e.msg),
            Err("sort by stop only valid on closed connections".to_string())
        );
        assert_eq!(
            ConnzOptions::from_query(&Query::parse("state=nope")).map_err(|e| e.msg),
            Err("Error decoding state for nope".to_string())
        );
        let o = ConnzOptions::from_query(&Query::parse(
            "subs=detail&limit=0&offset=-3&state=ALL&cid=7",
        ))
        .expect("opts");
        assert!(o.subs_detail);
        assert!(!o.subs);
        assert_eq!(
            (o.offset, o.limit, o.cid, o.state),
            (0, 1, 7, ConnState::Any)
        );
        assert_eq!(
            SubszOptions::from_query(&Query::parse("test=a.*")).map_err(|e| e.msg),
            Err("invalid test subject, must be valid publish subject: a.*".to_string())
        );
        for key in [
            "cid",
            "start",
            "subs",
            "pending",
            "msgs_to",
            "msgs_from",
            "bytes_to",
            "bytes_from",
            "last",
            "idle",
            "uptime",
            "rtt",
        ] {
            assert!(SortOpt::parse(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn connz_sorts_pages_and_filters() {
        let start = Instant::now();
        let clk = clock(start);
        let open = vec![
            conn(start, 4, 1, 30),
            conn(start, 5, 3, 10),
            conn(start, 6, 2, 20),
        ];
        let cids = |opts: &ConnzOptions| -> Vec<u64> {
            connz("S", &open, &[], opts, &clk)
                .connections
                .iter()
                .map(|c| c.cid)
                .collect()
        };
        let by = |q: &str| ConnzOptions::from_query(&Query::parse(q)).expect("opts");
        assert_eq!(cids(&by("")), [4, 5, 6]);
        assert_eq!(cids(&by("sort=subs")), [5, 6, 4]);
        assert_eq!(cids(&by("sort=msgs_from")), [4, 6, 5]);
        assert_eq!(cids(&by("sort=last")), [6, 5, 4]);
        assert_eq!(cids(&by("sort=uptime")), [6, 5, 4]);
        assert_eq!(cids(&by("sort=rtt")), [6, 5, 4]);
        assert_eq!(cids(&by("offset=1&limit=1")), [5]);
        assert_eq!(cids(&by("offset=9")), Vec::<u64>::new());
        assert_eq!(cids(&by("cid=6")), [6]);
        assert_eq!(cids(&by("user=alice")), [4, 6]);
        assert_eq!(cids(&by("acc=OTHER")), Vec::<u64>::new());
        let page = connz("S", &open, &[], &by("limit=2"), &clk);
        assert_eq!((page.total, page.num_connections, page.limit), (3, 2, 2));
        let c = &page.connections[0];
        assert_eq!(c.start, "2023-11-14T22:13:24Z");
        assert_eq!(c.uptime, "1h2m1s");
        assert_eq!(c.rtt, "400µs");
        assert!(c.subscriptions_list.is_empty());
        let subs = connz("S", &open, &[], &by("subs=1&cid=5"), &clk);
        assert_eq!(
            subs.connections[0].subscriptions_list,
            ["s.5.0", "s.5.1", "s.5.2"]
        );
    }

    #[test]
    fn closed_connections_keep_reason_and_stop() {
        let start = Instant::now();
        let clk = clock(start);
        let mut a = conn(start, 4, 1, 1);
        a.closed = Some((
            start + Duration::from_secs(100),
            CloseReason::SlowConsumerPendingBytes,
        ));
        let mut b = conn(start, 5, 1, 1);
        b.closed = Some((start + Duration::from_secs(50), CloseReason::ClientClosed));
        let closed = [a, b];
        let opts =
            ConnzOptions::from_query(&Query::parse("state=closed&sort=reason")).expect("opts");
        let c = connz("S", &[], &closed, &opts, &clk);
        assert_eq!(c.connections[0].reason, "Client Closed");
        assert_eq!(c.connections[1].reason, "Slow Consumer (Pending Bytes)");
        assert_eq!(c.connections[1].uptime, "1m36s");
        assert_eq!(
            c.connections[1].stop.as_deref(),
            Some("2023-11-14T22:15:00Z")
        );
        let opts = ConnzOptions::from_query(&Query::parse("state=closed&sort=stop")).expect("opts");
        assert_eq!(connz("S", &[], &closed, &opts, &clk).connections[0].cid, 4);
        let any = ConnzOptions::from_query(&Query::parse("state=any")).expect("opts");
        assert_eq!(
            connz("S", &[conn(start, 6, 0, 0)], &closed, &any, &clk).total,
            3
        );
    }

    #[test]
    fn endpoints_route_and_count() {
        let start = Instant::now();
        let clk = clock(start);
        let src = Fake {
            server: Server::new(Options::default(), [7; 32]),
            conns: vec![conn(start, 4, 2, 5)],
        };
        let mut m = Monitor::new(Some("mon/"), "0.0.0.0", 4222);
        assert_eq!(m.respond("/varz", &src, &clk).status, 404);
        let (status, v) = get(&mut m, &src, "/mon/varz", &clk);
        assert_eq!(status, 200);
        assert_eq!(v["in_msgs"], 5);
        assert_eq!(v["uptime"], "1h2m5s");
        assert_eq!(v["cpu"], 1.5);
        assert_eq!(v["http_base_path"], "/mon");
        assert_eq!(v["natsd"]["reactors"], 2);
        assert_eq!(v["natsd"]["reactor_load"][1]["connections"], 1);
        assert_eq!(v["natsd"]["stages"][0]["name"], "sys");
        assert_eq!(v["natsd"]["stages"][0]["inbox"], 3);
        assert_eq!(v["natsd"]["stages"][0]["handled"], 7);
        assert_eq!(v["http_req_stats"]["/varz"], 1);
        let (status, v) = get(&mut m, &src, "/mon/subsz", &clk);
        assert_eq!(status, 200);
        assert!(v.get("server_id").is_none());
        let (_, v) = get(&mut m, &src, "/mon/subsz?subs=1&test=s.4.1", &clk);
        assert_eq!(v["total"], 1);
        assert_eq!(v["subscriptions_list"][0]["subject"], "s.4.1");
        let h = m.respond("/mon/healthz", &src, &clk);
        assert_eq!(h.body, b"{\"status\":\"ok\"}");
        assert_eq!(m.respond("/mon/connz?sort=x", &src, &clk).status, 400);
        assert_eq!(m.respond("/mon/nope", &src, &clk).status, 404);
        assert_eq!(m.respond("/mon/accountz?acc=X", &src, &clk).status, 400);
        let (_, v) = get(&mut m, &src, "/mon/accountz?acc=$G", &clk);
        assert_eq!(v["account_detail"]["client_connections"], 1);
        let (_, v) = get(&mut m, &src, "/mon/accstatz", &clk);
        assert_eq!(v["account_statz"][0]["received"]["msgs"], 5);
        let (_, v) = get(&mut m, &src, "/mon/leafz", &clk);
        assert!(v["leafs"].is_null());
        let j = m.respond("/mon/varz?callback=cb", &src, &clk);
        assert_eq!(j.content_type, "application/javascript");
        assert!(j.body.starts_with(b"cb({"));
        let idx = m.respond("/mon", &src, &clk);
        assert!(String::from_utf8_lossy(&idx.body).contains("href=./mon/connz"));
        let metrics = String::from_utf8(m.respond("/mon/metrics", &src, &clk).body).expect("utf8");
        assert!(metrics.contains("# TYPE gnatsd_varz_in_msgs counter"));
        assert!(metrics.contains("gnatsd_connz_in_msgs{server_id=\""));
        assert_eq!(m.req_stats().get("/varz"), Some(&2));
    }

    #[test]
    fn respond_never_panics_on_odd_targets() {
        let start = Instant::now();
        let clk = clock(start);
        let src = Fake {
            server: Server::new(Options::default(), [1; 32]),
            conns: Vec::new(),
        };
        let mut m = Monitor::new(None, "h", 4222);
        for t in [
            "",
            "?",
            "/connz?%",
            "/connz?limit=99999999999999999999",
            "/subsz?offset=-1&limit=-1&subs=1",
            "//varz",
            "/connz?cid=%ff%fe",
            "/varz/",
        ] {
            let r = m.respond(t, &src, &clk);
            assert!(matches!(r.status, 200 | 400 | 404), "{t}: {}", r.status);
        }
    }
}
