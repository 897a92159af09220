//! Authentication and permissions.
//!
//! [`Authenticator`] is built once from [`Options`] (and rebuilt on reload);
//! a connection asks it to check CONNECT and gets an [`Identity`]: who the
//! client is and what it may publish and subscribe to.
//!
//! What it checks, in nats-server's order: an nkey (when nkey users exist
//! and CONNECT names one), then the `users` list (with `no_auth_user` for a
//! CONNECT without credentials), then a token, then the single
//! `user`/`pass`. Passwords and tokens written as bcrypt hashes
//! (`$2a$`, `$2b$`, `$2x$`, `$2y$` and a two-digit cost) are verified with
//! bcrypt; others are compared in constant time.
//!
//! With `tls { verify_and_map: true }` and a `users` list, the user comes
//! from the client certificate ([`TlsPeer`]) instead of CONNECT, tried in
//! nats-server 2.9.10's order: each SAN email, DNS name and URI as a user
//! name; then the subject as an RFC 4514 DN against every user name that
//! parses as one (in order, then in any order); then Go's string form of the
//! subject with its domain components appended; then that string alone.
//! As there, the mapped user's configured password (usually none) must
//! still equal CONNECT's.
//!
//! bcrypt costs tens of milliseconds per check. Successful checks are
//! remembered per (hash, password) pair, as a SHA-256 digest and never the
//! password itself, in a bounded set, so a reconnect storm of valid clients
//! pays the cost once per credential and not once per connection.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_encoding::{BASE64, BASE64URL_NOPAD};
use natsd_proto::info::ConnectInfo;
use sha2::{Digest, Sha256};

use crate::accounts::GLOBAL_ACCOUNT;
use crate::options::Options;
use crate::subject::{has_wildcard, is_fwc, is_pwc, subject_matches, tokens};

/// Successful bcrypt checks remembered per [`Authenticator`].
const BCRYPT_CACHE_MAX: usize = 1024;

/// Reply subjects a [`ResponseTracker`] keeps before it first prunes spent
/// and expired ones (nats-server's `replyPermLimit`). After a prune the
/// next one waits until the live set has doubled, so pruning stays
/// amortized constant time per request.
const REPLY_TRACK_PRUNE_AT: usize = 4096;

/// Hard bound on tracked reply subjects: past it the oldest are dropped.
const REPLY_TRACK_MAX: usize = 64 * 1024;

/// Why a CONNECT was refused (the client gets `-ERR 'Authorization Violation'`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials matched.
    BadCredentials,
    /// An nkey user sent no signature, one that is not base64, or one that
    /// does not verify against the nonce.
    BadSignature,
    /// The user may not connect over this kind of connection
    /// (`allowed_connection_types`).
    ConnectionTypeNotAllowed,
    /// `verify_and_map`: no certificate, or none of its names is a user.
    CertificateNotMapped,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthError::BadCredentials => "authentication failed",
            AuthError::BadSignature => "nkey signature missing or not verified",
            AuthError::ConnectionTypeNotAllowed => "connection type not allowed for this user",
            AuthError::CertificateNotMapped => "no user found for the client certificate",
        })
    }
}

impl std::error::Error for AuthError {}

/// One attribute of a certificate subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnAttr {
    /// The attribute type's OID, dotted (`2.5.4.3` for CN).
    pub oid: String,
    /// Its value, when it is a string type; `None` otherwise.
    pub value: Option<String>,
}

/// What `verify_and_map` reads from a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeer {
    /// SAN rfc822Name entries.
    pub emails: Vec<String>,
    /// SAN dNSName entries.
    pub dns: Vec<String>,
    /// SAN uniformResourceIdentifier entries.
    pub uris: Vec<String>,
    /// The subject's RDNs in certificate (DER) order, each a set of attributes.
    pub subject: Vec<Vec<DnAttr>>,
}

/// Attribute names nats-server uses for a certificate subject, by OID.
const DN_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
    ("0.9.2342.19200300.100.1.25", "DC"),
];

fn dn_name(oid: &str) -> Option<&'static str> {
    DN_NAMES.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n)
}

/// A distinguished name: RDNs, each a set of (type, value) pairs.
type Dn = Vec<Vec<(String, String)>>;

impl TlsPeer {
    /// The subject as a DN in RFC 4514 order (last RDN first), or `None`
    /// when an attribute has a type without a name or a value that is not
    /// a string (nats-server then skips the DN comparison).
    fn dn(&self) -> Option<Dn> {
        self.subject
            .iter()
            .rev()
            .filter(|rdn| !rdn.is_empty())
            .map(|rdn| {
                rdn.iter()
                    .rev()
                    .map(|a| Some((dn_name(&a.oid)?.to_string(), a.value.clone()?)))
                    .collect()
            })
            .collect()
    }

    /// The subject as Go's `pkix.Name.ToRDNSequence().String()` writes it:
    /// only C, ST, L, STREET, POSTALCODE, O, OU, CN and SERIALNUMBER, in
    /// the reverse of that order, each type's values in one RDN.
    fn go_subject(&self) -> String {
        let attrs = || self.subject.iter().flatten();
        let values = |oid: &str| -> Vec<&str> {
            attrs()
                .filter(|a| a.oid == oid)
                .filter_map(|a| a.value.as_deref())
                .collect()
        };
        let last = |oid: &str| {
            let all = values(oid);
            all.last()
                .filter(|v| !v.is_empty())
                .map(|v| vec![*v])
                .unwrap_or_default()
        };
        let rdns = [
            ("C", values("2.5.4.6")),
            ("ST", values("2.5.4.8")),
            ("L", values("2.5.4.7")),
            ("STREET", values("2.5.4.9")),
            ("POSTALCODE", values("2.5.4.17")),
            ("O", values("2.5.4.10")),
            ("OU", values("2.5.4.11")),
            ("CN", last("2.5.4.3")),
            ("SERIALNUMBER", last("2.5.4.5")),
        ];
        rdns.iter()
            .rev()
            .filter(|(_, vals)| !vals.is_empty())
            .map(|(name, vals)| {
                vals.iter()
                    .map(|v| format!("{name}={}", go_escape(v)))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every string `DC` value as `DC=value`, in certificate order, joined
    /// with commas.
    fn domain_components(&self) -> String {
        self.subject
            .iter()
            .flatten()
            .filter(|a| a.oid == "0.9.2342.19200300.100.1.25")
            .filter_map(|a| a.value.as_ref().map(|v| format!("DC={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Go's escaping of a subject value in `RDNSequence.String`.
fn go_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (k, c) in v.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == v.len() - 1,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A user name read as an RFC 4514 DN (`CN=alice,O=acme`), or `None` when
/// it is not one.
fn parse_dn(s: &str) -> Option<Dn> {
    let mut dn: Dn = Vec::new();
    let mut rdn = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut typ = String::new();
        loop {
            match chars.next()? {
                '=' => break,
                c => typ.push(c),
            }
        }
        let typ = typ.trim().to_string();
        if typ.is_empty() {
            return None;
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut value: Vec<u8> = Vec::new();
        // Bytes of `value` that were escaped: trailing spaces among them stay.
        let mut kept = 0;
        let end = loop {
            match chars.next() {
                None => break None,
                Some(c @ (',' | ';' | '+')) => break Some(c),
                Some('\\') => {
                    let c = chars.next()?;
                    if c.is_ascii_hexdigit() {
                        let lo = chars.next()?.to_digit(16)?;
                        let hi = c.to_digit(16)?;
                        value.push(u8::try_from(hi * 16 + lo).ok()?);
                    } else {
                        let mut b = [0u8; 4];
                        value.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                    kept = value.len();
                }
                Some(c) => {
                    let mut b = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        };
        let unspaced = value.len() - value.iter().rev().take_while(|b| **b == b' ').count();
        value.truncate(unspaced.max(kept));
        let value = String::from_utf8(value).ok()?;
        rdn.push((typ, value));
        match end {
            Some('+') => {}
            Some(_) => dn.push(std::mem::take(&mut rdn)),
            None => {
                dn.push(rdn);
                return Some(dn);
            }
        }
    }
}

fn rdn_eq(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let has = |x: &[(String, String)], (t, v): &(String, String)| {
        x.iter()
            .any(|(xt, xv)| xt.eq_ignore_ascii_case(t) && xv == v)
    };
    a.len() == b.len() && a.iter().all(|p| has(b, p)) && b.iter().all(|p| has(a, p))
}

fn dn_eq(a: &Dn, b: &Dn) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| rdn_eq(x, y))
}

/// The same RDNs in any order.
fn dn_rdns_match(a: &Dn, b: &Dn) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = (0..b.len()).find(|&j| !used[j] && rdn_eq(x, &b[j]));
        if let Some(j) = found {
            used[j] = true;
        }
        found.is_some()
    })
}

/// Allow and deny lists for one direction (publish or subscribe).
///
/// `allow: None` allows everything; a deny entry wins over an allow entry.
/// Subscribe entries may be `"subject queue"`: they then apply to
/// subscriptions in a matching queue group only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    /// Subjects (wildcards allowed) this direction may use; `None` = all.
    pub allow: Option<Vec<String>>,
    /// Subjects refused even when allowed.
    pub deny: Vec<String>,
}

/// `allow_responses`: a client may publish to the reply subject of a
/// request delivered to it, up to `max_msgs` times within `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed per request; `None` = no limit (a negative `max`).
    pub max_msgs: Option<u64>,
    /// How long after delivery a response is allowed; `None` = no limit (a
    /// negative `expires`).
    pub expires: Option<Duration>,
}

impl Default for ResponsePermission {
    /// nats-server's defaults: one response within two minutes.
    fn default() -> Self {
        ResponsePermission {
            max_msgs: Some(1),
            expires: Some(Duration::from_secs(120)),
        }
    }
}

/// What a user may do. `None` lists mean "everything".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `publish`.
    pub publish: Option<SubjectPermission>,
    /// `subscribe`.
    pub subscribe: Option<SubjectPermission>,
    /// `allow_responses`. With it, a publish allow list that was not given
    /// becomes empty: only responses (and any `publish` allow) pass.
    pub allow_responses: Option<ResponsePermission>,
}

impl Permissions {
    /// Apply nats-server's rule for `allow_responses`: the blanket publish
    /// allow is turned off, so publishing is limited to what `publish`
    /// allows plus responses.
    pub fn normalized(mut self) -> Self {
        if self.allow_responses.is_some() {
            let publish = self.publish.get_or_insert_with(SubjectPermission::default);
            publish.allow.get_or_insert_with(Vec::new);
        }
        self
    }

    /// May this client publish to `subject`? This is the static check:
    /// when it says no and [`Permissions::allow_responses`] is set, the
    /// connection asks its [`ResponseTracker`].
    pub fn can_publish(&self, subject: &[u8]) -> bool {
        let Some(publish) = &self.publish else {
            return true;
        };
        if let Some(allow) = &publish.allow {
            if !allow.iter().any(|a| subject_matches(a.as_bytes(), subject)) {
                return false;
            }
        }
        !publish
            .deny
            .iter()
            .any(|d| subject_matches(d.as_bytes(), subject))
    }

    /// May this client subscribe to `subject` (in `queue`)?
    ///
    /// As nats-server: the subscription's subject is matched against each
    /// entry as if it were published (a `*` entry also covers a `foo.*`
    /// subscription). When queue-qualified entries match and the
    /// subscription has a queue, the queue entries decide; a plain entry
    /// never allows or denies a queue that queue entries name.
    pub fn can_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(sub) = &self.subscribe else {
            return true;
        };
        let queue = queue.filter(|q| !q.is_empty());
        let mut allowed = true;
        // nats-server ignores an empty subscribe allow list.
        if let Some(allow) = sub.allow.as_deref().filter(|a| !a.is_empty()) {
            let (plain, queue_hit) = match_entries(allow, subject, queue);
            allowed = match (queue, queue_hit) {
                (Some(_), Some(hit)) => hit,
                _ => plain,
            };
        }
        if allowed && !sub.deny.is_empty() {
            let (plain, queue_hit) = match_entries(&sub.deny, subject, queue);
            allowed = match (queue, queue_hit) {
                (Some(_), Some(hit)) => !hit,
                _ => !plain,
            };
        }
        allowed
    }

    /// May a message on `subject` be delivered to this client's
    /// subscription? A subscribe deny under an allowed wildcard filters
    /// deliveries, as nats-server does (it accepts `SUB foo.*` with
    /// `deny: foo.bar` and then drops messages on `foo.bar`).
    pub fn can_deliver(&self, subject: &[u8]) -> bool {
        let Some(sub) = &self.subscribe else {
            return true;
        };
        !sub.deny.iter().any(|d| {
            let (pattern, queue) = split_subject_queue(d);
            queue.is_none() && subject_matches(pattern.as_bytes(), subject)
        })
    }

    /// The dynamic reply permission, if any: the connection then records
    /// the reply subject of each message delivered to it in a
    /// [`ResponseTracker`] and lets a publish the static check refused
    /// through when the tracker allows it.
    pub fn allow_responses(&self) -> Option<ResponsePermission> {
        self.allow_responses
    }
}

/// `"subject queue"` → (`subject`, `Some(queue)`); a plain subject → (`subject`, `None`).
fn split_subject_queue(entry: &str) -> (&str, Option<&str>) {
    let mut fields = entry.split_ascii_whitespace();
    let subject = fields.next().unwrap_or("");
    (subject, fields.next())
}

/// Whether a plain entry matches `subject`, and, when `queue` is set and
/// queue entries match `subject`, whether one of them names `queue`.
fn match_entries(entries: &[String], subject: &[u8], queue: Option<&[u8]>) -> (bool, Option<bool>) {
    let mut plain = false;
    let mut queue_hit: Option<bool> = None;
    for entry in entries {
        let (pattern, entry_queue) = split_subject_queue(entry);
        if !subject_matches(pattern.as_bytes(), subject) {
            continue;
        }
        match (entry_queue, queue) {
            (None, _) => plain = true,
            (Some(eq), Some(q)) => {
                let hit = queue_matches(q, eq.as_bytes());
                queue_hit = Some(queue_hit.unwrap_or(false) || hit);
            }
            (Some(_), None) => {}
        }
    }
    (plain, queue_hit)
}

/// A subscription's queue against a permission's queue: equal, or inside
/// it when the permission's queue has wildcards (`v1.*` covers `v1.a`).
fn queue_matches(queue: &[u8], pattern: &[u8]) -> bool {
    queue == pattern || (has_wildcard(pattern) && is_subset_match(queue, pattern))
}

/// Is every subject `subject` can match also matched by `pattern`?
fn is_subset_match(subject: &[u8], pattern: &[u8]) -> bool {
    let mut subj = tokens(subject);
    let mut pat = tokens(pattern);
    loop {
        match (pat.next(), subj.next()) {
            (None, None) => return true,
            (Some(p), Some(_)) if is_fwc(p) => return true,
            (Some(p), Some(s)) => {
                if is_fwc(s) || (is_pwc(s) && !is_pwc(p)) {
                    return false;
                }
                if !is_pwc(p) && p != s {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The reply subjects a client with `allow_responses` may publish to.
///
/// The delivery path calls [`ResponseTracker::record`] for every message
/// with a reply subject delivered to the client; the publish path calls
/// [`ResponseTracker::allows`] when the static permissions refuse a
/// subject. Each allowed publish counts against `max_msgs`; an entry past
/// its count or its `expires` is forgotten, as in nats-server. Deliveries
/// come from other connections, so the state sits behind a mutex.
#[derive(Debug)]
pub struct ResponseTracker {
    perm: ResponsePermission,
    state: Mutex<Tracked>,
}

#[derive(Debug)]
struct Tracked {
    replies: HashMap<Box<[u8]>, Reply>,
    prune_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Reply {
    at: Instant,
    sent: u64,
}

impl ResponseTracker {
    /// An empty tracker with these limits.
    pub fn new(perm: ResponsePermission) -> Self {
        ResponseTracker {
            perm,
            state: Mutex::new(Tracked {
                replies: HashMap::new(),
                prune_at: REPLY_TRACK_PRUNE_AT,
            }),
        }
    }

    /// A message with reply subject `reply` was delivered to the client at
    /// `now`. A repeated reply subject starts over.
    pub fn record(&self, reply: &[u8], now: Instant) {
        if reply.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .replies
            .insert(reply.into(), Reply { at: now, sent: 0 });
        if state.replies.len() > state.prune_at {
            self.prune(&mut state.replies, now);
            state.prune_at = (2 * state.replies.len()).clamp(REPLY_TRACK_PRUNE_AT, REPLY_TRACK_MAX);
        }
    }

    /// May the client publish a response to `subject` at `now`? Counts the
    /// response when it may.
    pub fn allows(&self, subject: &[u8], now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let replies = &mut state.replies;
        let Some(reply) = replies.get_mut(subject) else {
            return false;
        };
        reply.sent += 1;
        let spent = self.perm.max_msgs.is_some_and(|max| reply.sent > max);
        let expired = self.is_expired(reply, now);
        if spent || expired {
            replies.remove(subject);
            return false;
        }
        true
    }

    /// Reply subjects tracked now.
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.replies.len()
    }

    /// Whether no reply subject is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_expired(&self, reply: &Reply, now: Instant) -> bool {
        self.perm
            .expires
            .is_some_and(|ttl| now.saturating_duration_since(reply.at) > ttl)
    }

    fn prune(&self, replies: &mut HashMap<Box<[u8]>, Reply>, now: Instant) {
        replies.retain(|_, r| {
            let spent = self.perm.max_msgs.is_some_and(|max| r.sent >= max);
            !spent && !self.is_expired(r, now)
        });
        if replies.len() >= REPLY_TRACK_MAX {
            // Still too many live ones: keep the newest half of the bound.
            let mut ages: Vec<Instant> = replies.values().map(|r| r.at).collect();
            ages.sort_unstable();
            // In range: len >= REPLY_TRACK_MAX > REPLY_TRACK_MAX / 2 > 0.
            let cut = ages[ages.len() - REPLY_TRACK_MAX / 2];
            replies.retain(|_, r| r.at >= cut);
        }
    }
}

/// Who a connection is, once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name or nkey it authenticated as.
    pub user: Option<String>,
    /// Its permissions; `None` = may do anything.
    pub permissions: Option<Arc<Permissions>>,
    /// The account it belongs to; `None` = the global account `$G`.
    pub account: Option<String>,
}

/// Where the user a CONNECT names lives now ([`Authenticator::user_account`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAccount<'a> {
    /// The CONNECT names no configured kind of user (no user name or nkey,
    /// or none of that kind is configured): only its credentials decide.
    Unnamed,
    /// The named user or nkey is not configured.
    Unknown,
    /// The named user belongs to this account.
    In(&'a str),
}

/// One entry of `authorization.users` with a user name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// `user`/`username`.
    pub username: String,
    /// `pass`/`password`: plain text or a bcrypt hash.
    pub password: String,
    /// `permissions`, or `default_permissions` when it has none.
    pub permissions: Option<Permissions>,
    /// `allowed_connection_types`, upper case; empty = all.
    pub allowed_connection_types: Vec<String>,
    /// The account it was defined in (`accounts { A: { users } }`); `None`
    /// for `authorization` users, who belong to `$G`.
    pub account: Option<String>,
}

/// One entry of `authorization.users` with an `nkey`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NkeyUser {
    /// The user's public nkey (`U...`).
    pub nkey: String,
    /// `permissions`, or `default_permissions` when it has none.
    pub permissions: Option<Permissions>,
    /// `allowed_connection_types`, upper case; empty = all.
    pub allowed_connection_types: Vec<String>,
    /// The account it was defined in; `None` = `$G`.
    pub account: Option<String>,
}

/// Connection types nats-server 2.9 knows (`allowed_connection_types`).
pub const CONNECTION_TYPES: &[&str] = &[
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
];

/// The connection type of a plain client connection.
const CONNECTION_TYPE_STANDARD: &str = "STANDARD";

/// A configured user, ready to check.
#[derive(Debug)]
struct Credential {
    secret: Option<String>,
    permissions: Option<Arc<Permissions>>,
    allowed_connection_types: Vec<String>,
    account: Option<String>,
}

impl Credential {
    fn allows_standard(&self) -> bool {
        self.allowed_connection_types.is_empty()
            || self
                .allowed_connection_types
                .iter()
                .any(|t| t == CONNECTION_TYPE_STANDARD)
    }
}

/// Checks credentials against the configured users, tokens and nkeys.
#[derive(Debug, Default)]
pub struct Authenticator {
    user: Option<(String, String)>,
    token: Option<String>,
    users: HashMap<String, Credential>,
    nkeys: HashMap<String, Credential>,
    no_auth_user: Option<String>,
    /// `tls.verify_and_map`: users come from client certificates.
    tls_map: bool,
    bcrypt_ok: Mutex<HashSet<[u8; 32]>>,
}

impl Authenticator {
    /// Build from options.
    pub fn new(opts: &Options) -> Self {
        let account = |secret: Option<String>,
                       perms: &Option<Permissions>,
                       types: &[String],
                       acc: &Option<String>| Credential {
            secret,
            permissions: perms.clone().map(|p| Arc::new(p.normalized())),
            allowed_connection_types: types.to_vec(),
            account: acc.clone(),
        };
        Authenticator {
            user: opts
                .user
                .clone()
                .map(|u| (u, opts.pass.clone().unwrap_or_default())),
            token: opts.token.clone(),
            users: opts
                .users
                .iter()
                .map(|u| {
                    let acc = account(
                        Some(u.password.clone()),
                        &u.permissions,
                        &u.allowed_connection_types,
                        &u.account,
                    );
                    (u.username.clone(), acc)
                })
                .collect(),
            nkeys: opts
                .nkeys
                .iter()
                .map(|u| {
                    let acc = account(
                        None,
                        &u.permissions,
                        &u.allowed_connection_types,
                        &u.account,
                    );
                    (u.nkey.clone(), acc)
                })
                .collect(),
            no_auth_user: opts.no_auth_user.clone(),
            tls_map: opts.tls_map,
            bcrypt_ok: Mutex::new(HashSet::new()),
        }
    }

    /// Whether clients must authenticate: a CONNECT must come first and
    /// within the auth timeout, and [`Authenticator::check`] decides.
    pub fn required(&self) -> bool {
        self.user.is_some()
            || self.token.is_some()
            || !self.users.is_empty()
            || !self.nkeys.is_empty()
    }

    /// What INFO says in `auth_required`. nats-server 2.9.10 leaves it out
    /// when `no_auth_user` is set (a client without credentials gets in as
    /// that user) though CONNECT is still checked.
    pub fn info_auth_required(&self) -> bool {
        self.required() && self.no_auth_user.is_none()
    }

    /// Whether INFO must carry a `nonce` (nkey users exist).
    pub fn wants_nonce(&self) -> bool {
        !self.nkeys.is_empty()
    }

    /// Check a CONNECT. `nonce` is what this connection's INFO carried.
    pub fn check(&self, ci: &ConnectInfo, nonce: &[u8]) -> Result<Identity, AuthError> {
        self.check_with_peer(ci, nonce, None)
    }

    /// [`check`](Self::check) for a client that may have presented a TLS
    /// certificate: with `verify_and_map` and users configured, the user is
    /// the one `peer` maps to and CONNECT's user name is ignored.
    pub fn check_with_peer(
        &self,
        ci: &ConnectInfo,
        nonce: &[u8],
        peer: Option<&TlsPeer>,
    ) -> Result<Identity, AuthError> {
        if !self.required() {
            return Ok(Identity::default());
        }
        if !self.nkeys.is_empty() && !ci.nkey.is_empty() {
            let account = self.nkeys.get(&ci.nkey).ok_or(AuthError::BadCredentials)?;
            if !account.allows_standard() {
                return Err(AuthError::ConnectionTypeNotAllowed);
            }
            if !verify_nkey_signature(&ci.nkey, nonce, &ci.sig) {
                return Err(AuthError::BadSignature);
            }
            return Ok(Identity {
                user: Some(ci.nkey.clone()),
                permissions: account.permissions.clone(),
                account: account.account.clone(),
            });
        }
        if !self.users.is_empty() && self.tls_map {
            let (name, account) = peer
                .and_then(|p| self.map_peer(p))
                .ok_or(AuthError::CertificateNotMapped)?;
            // nats-server 2.9.10 still compares the mapped user's password
            // (usually none) with CONNECT's.
            if !self.password_matches(account.secret.as_deref().unwrap_or(""), &ci.pass) {
                return Err(AuthError::BadCredentials);
            }
            return Ok(Identity {
                user: Some(name.to_string()),
                permissions: account.permissions.clone(),
                account: account.account.clone(),
            });
        }
        if !self.users.is_empty() {
            let anonymous = ci.user.is_empty() && ci.pass.is_empty() && ci.auth_token.is_empty();
            if let Some(name) = self.no_auth_user.as_ref().filter(|_| anonymous) {
                // The client is that user without a password check
                // (nats-server 2.9.10 compares the stored password with
                // itself, which fails for a bcrypt hash).
                if let Some(account) = self.users.get(name) {
                    if !account.allows_standard() {
                        return Err(AuthError::ConnectionTypeNotAllowed);
                    }
                    return Ok(Identity {
                        user: Some(name.clone()),
                        permissions: account.permissions.clone(),
                        account: account.account.clone(),
                    });
                }
            }
            if !ci.user.is_empty() {
                let account = self.users.get(&ci.user).ok_or(AuthError::BadCredentials)?;
                if !account.allows_standard() {
                    return Err(AuthError::ConnectionTypeNotAllowed);
                }
                let secret = account.secret.as_deref().unwrap_or("");
                if !self.password_matches(secret, &ci.pass) {
                    return Err(AuthError::BadCredentials);
                }
                return Ok(Identity {
                    user: Some(ci.user.clone()),
                    permissions: account.permissions.clone(),
                    account: account.account.clone(),
                });
            }
        }
        if let Some(token) = &self.token {
            return if self.password_matches(token, &ci.auth_token) {
                Ok(Identity::default())
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        if let Some((user, pass)) = &self.user {
            return if ct_eq(&ci.user, user) && self.password_matches(pass, &ci.pass) {
                Ok(Identity {
                    user: Some(user.clone()),
                    permissions: None,
                    account: None,
                })
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        Err(AuthError::BadCredentials)
    }

    /// The account of the user or nkey `ci` names, looked up by name
    /// without checking credentials: after a reload, nats-server closes a
    /// client whose user is gone or now belongs to another account
    /// (`clientHasMovedToDifferentAccount`) before it re-checks the rest.
    pub fn user_account(&self, ci: &ConnectInfo) -> UserAccount<'_> {
        let found = if !ci.nkey.is_empty() && !self.nkeys.is_empty() {
            self.nkeys.get(&ci.nkey)
        } else if !ci.user.is_empty() && !self.users.is_empty() && !self.tls_map {
            self.users.get(&ci.user)
        } else {
            return UserAccount::Unnamed;
        };
        match found {
            Some(c) => UserAccount::In(c.account.as_deref().unwrap_or(GLOBAL_ACCOUNT)),
            None => UserAccount::Unknown,
        }
    }

    /// The user a client certificate maps to (see the module docs for the
    /// order), among users allowed on plain client connections.
    fn map_peer(&self, peer: &TlsPeer) -> Option<(&str, &Credential)> {
        let by_name = |name: &str| {
            self.users
                .get_key_value(name)
                .filter(|(_, c)| c.allows_standard())
                .map(|(n, c)| (n.as_str(), c))
        };
        let sans = peer.emails.iter().chain(&peer.dns).chain(&peer.uris);
        if let Some(found) = sans.filter_map(|n| by_name(n)).next() {
            return Some(found);
        }
        if let Some(cert_dn) = peer.dn() {
            let parsed: Vec<(&str, &Credential, Dn)> = self
                .users
                .iter()
                .filter(|(_, c)| c.allows_standard())
                .filter_map(|(n, c)| Some((n.as_str(), c, parse_dn(n)?)))
                .collect();
            let exact = parsed.iter().find(|(_, _, dn)| dn_eq(dn, &cert_dn));
            let any_order = || parsed.iter().find(|(_, _, dn)| dn_rdns_match(dn, &cert_dn));
            if let Some((n, c, _)) = exact.or_else(any_order) {
                return Some((n, c));
            }
        }
        let subject = peer.go_subject();
        let dcs = peer.domain_components();
        if !dcs.is_empty() {
            if let Some(found) = by_name(&format!("{subject},{dcs}")) {
                return Some(found);
            }
        }
        by_name(&subject)
    }

    /// A configured password or token (plain or bcrypt) against what the
    /// client sent.
    fn password_matches(&self, stored: &str, given: &str) -> bool {
        if !is_bcrypt(stored) {
            return ct_eq(stored, given);
        }
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(stored.as_bytes());
            h.update([0u8]);
            h.update(given.as_bytes());
            h.finalize().into()
        };
        {
            let cache = self.bcrypt_ok.lock().unwrap_or_else(|e| e.into_inner());
            if cache.contains(&key) {
                return true;
            }
        }
        if !bcrypt::verify(given, stored).unwrap_or(false) {
            return false;
        }
        let mut cache = self.bcrypt_ok.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= BCRYPT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key);
        true
    }
}

/// A configured password (plain or bcrypt) against what a peer sent,
/// without the client path's cache (route CONNECTs are rare).
pub fn password_matches(stored: &str, given: &str) -> bool {
    if is_bcrypt(stored) {
        bcrypt::verify(given, stored).unwrap_or(false)
    } else {
        ct_eq(stored, given)
    }
}

/// nats-server's bcrypt test: `$2a$`, `$2b$`, `$2x$` or `$2y$`, two
/// digits of cost and `$`.
pub fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 7
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Whether `key` is a well-formed public nkey of any kind (valid checksum).
pub fn is_valid_public_nkey(key: &str) -> bool {
    nkeys::KeyPair::from_public_key(key).is_ok()
}

/// Whether `key` is a well-formed public user nkey (`U...`, valid checksum).
pub fn is_valid_user_nkey(key: &str) -> bool {
    key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()
}

/// Verify CONNECT `sig` (the ed25519 signature of the nonce, base64url
/// without padding or standard base64 with padding, as nats-server takes
/// it) against the public nkey.
pub fn verify_nkey_signature(nkey: &str, nonce: &[u8], sig: &str) -> bool {
    if sig.is_empty() {
        return false;
    }
    let raw = match BASE64URL_NOPAD.decode(sig.as_bytes()) {
        Ok(raw) => raw,
        Err(_) => match BASE64.decode(sig.as_bytes()) {
            Ok(raw) => raw,
            Err(_) => return false,
        },
    };
    match nkeys::KeyPair::from_public_key(nkey) {
        Ok(kp) => kp.verify(nonce, &raw).is_ok(),
        Err(_) => false,
    }
}

/// Raw bytes in a nonce (nats-server: 11, sent as 15 base64url characters).
pub const NONCE_RAW_BYTES: usize = 11;

/// The nonce for connection number `counter`: a keyed hash (SHA-256 over
/// the server's secret seed, a domain label and the counter) cut to
/// [`NONCE_RAW_BYTES`] and written in base64url without padding, the form
/// nats-server sends. Without the seed the next nonce cannot be guessed.
pub fn derive_nonce(seed: &[u8; 32], counter: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"natsd nonce v1");
    h.update(seed);
    h.update(counter.to_le_bytes());
    let digest = h.finalize();
    BASE64URL_NOPAD.encode(&digest[..NONCE_RAW_BYTES])
}

/// A 32-byte key derived one-way from `seed` for one purpose (`label`),
/// so keys for different purposes reveal nothing about each other or the
/// seed.
pub fn derive_key(seed: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label);
    h.update([0u8]);
    h.update(seed);
    h.finalize().into()
}

/// Constant-time comparison of secrets.
fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    // Tests own their clock: they read it once as a base and step it by hand.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::nkey::encode_public;

    /// nkey prefix byte of a user key: renders as a leading `U`.
    const PREFIX_USER: u8 = 20 << 3;

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn perms(
        pub_allow: Option<&[&str]>,
        pub_deny: &[&str],
        sub_allow: Option<&[&str]>,
        sub_deny: &[&str],
    ) -> Permissions {
        Permissions {
            publish: Some(SubjectPermission {
                allow: pub_allow.map(strings),
                deny: strings(pub_deny),
            }),
            subscribe: Some(SubjectPermission {
                allow: sub_allow.map(strings),
                deny: strings(sub_deny),
            }),
            allow_responses: None,
        }
    }

    fn connect(f: impl FnOnce(&mut ConnectInfo)) -> ConnectInfo {
        let mut ci = ConnectInfo::default();
        f(&mut ci);
        ci
    }

    fn user(name: &str, password: &str, permissions: Option<Permissions>) -> User {
        User {
            username: name.into(),
            password: password.into(),
            permissions,
            allowed_connection_types: Vec::new(),
            account: None,
        }
    }

    #[test]
    fn publish_allow_and_deny_with_wildcards_deny_wins() {
        let p = perms(
            Some(&["foo.*", "bar.>", "baz"]),
            &["foo.secret", "bar.x.>"],
            None,
            &[],
        );
        assert!(p.can_publish(b"foo.a"));
        assert!(p.can_publish(b"bar.a.b"));
        assert!(p.can_publish(b"baz"));
        assert!(p.can_publish(b"bar.x"));
        assert!(!p.can_publish(b"foo.secret"));
        assert!(!p.can_publish(b"bar.x.y"));
        assert!(!p.can_publish(b"foo.a.b"));
        assert!(!p.can_publish(b"qux"));
        // Deny alone: everything else is allowed.
        let p = perms(None, &[">"], None, &[]);
        assert!(!p.can_publish(b"a"));
        let p = perms(None, &["$SYS.>"], None, &[]);
        assert!(p.can_publish(b"a"));
        assert!(!p.can_publish(b"$SYS.REQ"));
        // No permissions at all.
        assert!(Permissions::default().can_publish(b"x"));
        assert!(Permissions::default().can_subscribe(b"x", Some(b"q")));
        assert!(Permissions::default().can_deliver(b"x"));
    }

    #[test]
    fn subscribe_matches_the_subscription_subject_as_nats_server_does() {
        let p = perms(None, &[], Some(&["foo.*", "bar.>"]), &["bar.secret"]);
        assert!(p.can_subscribe(b"foo.a", None));
        assert!(p.can_subscribe(b"foo.*", None));
        assert!(p.can_subscribe(b"bar.>", None));
        assert!(p.can_subscribe(b"bar.a.*", None));
        assert!(!p.can_subscribe(b"foo.a.b", None));
        assert!(!p.can_subscribe(b"baz", None));
        assert!(!p.can_subscribe(b"bar.secret", None));
        // A wildcard that covers a denied subject is accepted; deliveries
        // on the denied subject are filtered instead (FEATURES.md, 2.9.10).
        assert!(p.can_subscribe(b"bar.*", None));
        assert!(!p.can_deliver(b"bar.secret"));
        assert!(p.can_deliver(b"bar.public"));
        // An empty subscribe allow list is ignored, as nats-server does.
        let p = perms(None, &[], Some(&[]), &[]);
        assert!(p.can_subscribe(b"anything", None));
    }

    #[test]
    fn subscribe_queue_permissions() {
        // Allow: plain "foo", queue-qualified "bar q1" and "baz v1.*".
        let p = perms(None, &[], Some(&["foo", "bar q1", "baz v1.*"]), &[]);
        assert!(p.can_subscribe(b"foo", None));
        assert!(p.can_subscribe(b"foo", Some(b"any")));
        assert!(p.can_subscribe(b"bar", Some(b"q1")));
        assert!(!p.can_subscribe(b"bar", Some(b"q2")));
        assert!(!p.can_subscribe(b"bar", None));
        assert!(p.can_subscribe(b"baz", Some(b"v1.a")));
        assert!(!p.can_subscribe(b"baz", Some(b"v2.a")));
        assert!(!p.can_subscribe(b"baz", Some(b"v1.a.b")));
        // When queue entries match, they decide for a queue subscriber
        // even if a plain entry also matches.
        let p = perms(None, &[], Some(&["foo", "foo q1"]), &[]);
        assert!(p.can_subscribe(b"foo", Some(b"q1")));
        assert!(!p.can_subscribe(b"foo", Some(b"q2")));
        assert!(p.can_subscribe(b"foo", None));
        // Deny a queue group only.
        let p = perms(None, &[], None, &["foo q1"]);
        assert!(!p.can_subscribe(b"foo", Some(b"q1")));
        assert!(p.can_subscribe(b"foo", Some(b"q2")));
        assert!(p.can_subscribe(b"foo", None));
        // A queue deny never filters deliveries.
        assert!(p.can_deliver(b"foo"));
        // Deny wins over allow for queue subscribers too.
        let p = perms(None, &[], Some(&["foo q1"]), &["foo"]);
        assert!(!p.can_subscribe(b"foo", None));
        assert!(!p.can_subscribe(b"foo", Some(b"q2")));
    }

    #[test]
    fn queue_subset_matching() {
        assert!(queue_matches(b"q", b"q"));
        assert!(queue_matches(b"v1.a", b"v1.*"));
        assert!(queue_matches(b"v1.a.b", b"v1.>"));
        assert!(queue_matches(b"v1.*", b"v1.*"));
        assert!(!queue_matches(b"v1.>", b"v1.*"));
        assert!(!queue_matches(b"v1", b"v1.>"));
        assert!(!queue_matches(b"v2.a", b"v1.*"));
        // Without wildcards only equality counts.
        assert!(!queue_matches(b"v1.a", b"v1.b"));
    }

    #[test]
    fn allow_responses_turns_off_blanket_publish() {
        let p = Permissions {
            allow_responses: Some(ResponsePermission::default()),
            ..Permissions::default()
        }
        .normalized();
        assert!(!p.can_publish(b"anything"));
        assert_eq!(p.allow_responses(), Some(ResponsePermission::default()));
        // An explicit publish allow stays.
        let p = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(strings(&["ok"])),
                deny: Vec::new(),
            }),
            allow_responses: Some(ResponsePermission::default()),
            ..Permissions::default()
        }
        .normalized();
        assert!(p.can_publish(b"ok"));
        assert!(!p.can_publish(b"other"));
    }

    #[test]
    fn response_tracker_allows_max_responses_within_expiry() {
        let t0 = Instant::now();
        let t = ResponseTracker::new(ResponsePermission::default());
        assert!(!t.allows(b"_INBOX.1", t0));
        t.record(b"_INBOX.1", t0);
        assert!(t.allows(b"_INBOX.1", t0 + Duration::from_secs(1)));
        // Default max is one response.
        assert!(!t.allows(b"_INBOX.1", t0 + Duration::from_secs(1)));
        assert!(t.is_empty());

        let t = ResponseTracker::new(ResponsePermission {
            max_msgs: Some(2),
            expires: Some(Duration::from_secs(60)),
        });
        t.record(b"r", t0);
        assert!(t.allows(b"r", t0));
        assert!(t.allows(b"r", t0));
        assert!(!t.allows(b"r", t0));
        t.record(b"late", t0);
        assert!(!t.allows(b"late", t0 + Duration::from_secs(61)));
        assert_eq!(t.len(), 0);
        // A repeated request starts the count over.
        t.record(b"r", t0);
        assert!(t.allows(b"r", t0));
        t.record(b"r", t0);
        assert!(t.allows(b"r", t0));
        assert!(t.allows(b"r", t0));

        let t = ResponseTracker::new(ResponsePermission {
            max_msgs: None,
            expires: None,
        });
        t.record(b"r", t0);
        for _ in 0..100 {
            assert!(t.allows(b"r", t0 + Duration::from_secs(86_400)));
        }
    }

    #[test]
    fn response_tracker_stays_bounded() {
        let t0 = Instant::now();
        let t = ResponseTracker::new(ResponsePermission {
            max_msgs: None,
            expires: None,
        });
        for i in 0..(3 * REPLY_TRACK_MAX) {
            t.record(
                format!("r.{i}").as_bytes(),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(t.len() <= REPLY_TRACK_MAX);
        // The newest are kept.
        let last = format!("r.{}", 3 * REPLY_TRACK_MAX - 1);
        assert!(t.allows(last.as_bytes(), t0));
        // Expired and spent entries go first.
        let t = ResponseTracker::new(ResponsePermission::default());
        for i in 0..REPLY_TRACK_PRUNE_AT {
            t.record(format!("old.{i}").as_bytes(), t0);
        }
        t.record(b"new", t0 + Duration::from_secs(600));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn bcrypt_prefix_detection() {
        for yes in ["$2a$11$abc", "$2b$04$x", "$2x$10$", "$2y$12$z"] {
            assert!(is_bcrypt(yes), "{yes}");
        }
        for no in [
            "",
            "$2a$1$abc",
            "$2c$11$abc",
            "2a$11$abc",
            "$2a$11",
            "$2a$aa$x",
            "plain",
        ] {
            assert!(!is_bcrypt(no), "{no}");
        }
    }

    fn users_auth(users: Vec<User>) -> Authenticator {
        Authenticator::new(&Options {
            users,
            ..Options::default()
        })
    }

    #[test]
    fn bcrypt_known_vector_and_cache() {
        // crypt_blowfish (Openwall) test vector.
        let hash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        let auth = users_auth(vec![user("a", hash, None)]);
        let ok = connect(|c| {
            c.user = "a".into();
            c.pass = "U*U".into();
        });
        let bad = connect(|c| {
            c.user = "a".into();
            c.pass = "U*V".into();
        });
        assert_eq!(auth.check(&bad, b""), Err(AuthError::BadCredentials));
        assert!(auth.bcrypt_ok.lock().expect("lock").is_empty());
        assert_eq!(auth.check(&ok, b"").map(|i| i.user), Ok(Some("a".into())));
        assert_eq!(auth.bcrypt_ok.lock().expect("lock").len(), 1);
        // Second time from the cache; a wrong password still fails.
        assert!(auth.check(&ok, b"").is_ok());
        assert_eq!(auth.check(&bad, b""), Err(AuthError::BadCredentials));
        assert_eq!(auth.bcrypt_ok.lock().expect("lock").len(), 1);
    }

    #[test]
    fn bcrypt_hash_made_here_verifies_for_users_and_tokens() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = Authenticator::new(&Options {
            token: Some(hash.clone()),
            ..Options::default()
        });
        let tok = |t: &str| connect(|c| c.auth_token = t.into());
        assert!(auth.check(&tok("s3cret"), b"").is_ok());
        assert!(auth.check(&tok("s3cre"), b"").is_err());
        assert!(auth.check(&tok(&hash), b"").is_err());
        let auth = Authenticator::new(&Options {
            user: Some("u".into()),
            pass: Some(hash),
            ..Options::default()
        });
        let up = |u: &str, p: &str| {
            connect(|c| {
                c.user = u.into();
                c.pass = p.into();
            })
        };
        assert!(auth.check(&up("u", "s3cret"), b"").is_ok());
        assert!(auth.check(&up("v", "s3cret"), b"").is_err());
        assert!(auth.check(&up("u", "x"), b"").is_err());
    }

    #[test]
    fn users_with_plain_passwords_and_permissions() {
        let p = perms(Some(&["a"]), &[], None, &[]);
        let auth = users_auth(vec![
            user("alice", "pa", Some(p.clone())),
            user("bob", "pb", None),
        ]);
        assert!(auth.required());
        assert!(auth.info_auth_required());
        assert!(!auth.wants_nonce());
        let up = |u: &str, pw: &str| {
            connect(|c| {
                c.user = u.into();
                c.pass = pw.into();
            })
        };
        let id = auth.check(&up("alice", "pa"), b"").expect("alice");
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(id.permissions.as_deref(), Some(&p));
        let id = auth.check(&up("bob", "pb"), b"").expect("bob");
        assert_eq!(id.permissions, None);
        assert!(auth.check(&up("alice", "pb"), b"").is_err());
        assert!(auth.check(&up("carol", "pa"), b"").is_err());
        assert!(auth.check(&up("", ""), b"").is_err());
        assert!(auth
            .check(&connect(|c| c.auth_token = "pa".into()), b"")
            .is_err());
    }

    #[test]
    fn no_auth_user_gives_clients_without_credentials_an_identity() {
        let p = perms(Some(&["a"]), &[], None, &[]);
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let auth = Authenticator::new(&Options {
            users: vec![
                user("anon", &hash, Some(p.clone())),
                user("admin", "x", None),
            ],
            no_auth_user: Some("anon".into()),
            ..Options::default()
        });
        // CONNECT is still checked, but INFO does not ask for credentials.
        assert!(auth.required());
        assert!(!auth.info_auth_required());
        let id = auth.check(&ConnectInfo::default(), b"").expect("anonymous");
        assert_eq!(id.user.as_deref(), Some("anon"));
        assert_eq!(id.permissions.as_deref(), Some(&p));
        // Credentials, when sent, are checked as usual.
        let admin = connect(|c| {
            c.user = "admin".into();
            c.pass = "x".into();
        });
        assert_eq!(
            auth.check(&admin, b"").map(|i| i.user),
            Ok(Some("admin".into()))
        );
        let wrong = connect(|c| c.pass = "nope".into());
        assert!(auth.check(&wrong, b"").is_err());
        let token = connect(|c| c.auth_token = "t".into());
        assert!(auth.check(&token, b"").is_err());
    }

    #[test]
    fn connection_types_other_than_standard_are_refused() {
        let mut u = user("ws", "p", None);
        u.allowed_connection_types = strings(&["WEBSOCKET"]);
        let mut s = user("std", "p", None);
        s.allowed_connection_types = strings(&["STANDARD", "MQTT"]);
        let auth = users_auth(vec![u, s]);
        let up = |name: &str| {
            connect(|c| {
                c.user = name.into();
                c.pass = "p".into();
            })
        };
        assert_eq!(
            auth.check(&up("ws"), b""),
            Err(AuthError::ConnectionTypeNotAllowed)
        );
        assert!(auth.check(&up("std"), b"").is_ok());
    }

    #[test]
    fn no_auth_configured_lets_everyone_in() {
        let auth = Authenticator::new(&Options::default());
        assert!(!auth.required());
        assert!(!auth.info_auth_required());
        let ci = connect(|c| {
            c.user = "x".into();
            c.auth_token = "y".into();
        });
        assert_eq!(auth.check(&ci, b""), Ok(Identity::default()));
    }

    fn nkey_auth(nkey: &str, permissions: Option<Permissions>) -> Authenticator {
        Authenticator::new(&Options {
            nkeys: vec![NkeyUser {
                nkey: nkey.into(),
                permissions,
                allowed_connection_types: Vec::new(),
                account: None,
            }],
            ..Options::default()
        })
    }

    #[test]
    fn nkey_signature_of_the_nonce_is_verified() {
        let kp = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [7u8; 32]).expect("key");
        let pk = kp.public_key();
        assert!(is_valid_user_nkey(&pk));
        let p = perms(Some(&["x"]), &[], None, &[]);
        let auth = nkey_auth(&pk, Some(p.clone()));
        assert!(auth.required());
        assert!(auth.wants_nonce());
        let nonce = derive_nonce(&[3u8; 32], 0);
        let sig = kp.sign(nonce.as_bytes()).expect("sign");
        let with_sig = |s: String| {
            connect(|c| {
                c.nkey = pk.clone();
                c.sig = s;
            })
        };
        // base64url without padding (what clients send) and standard
        // base64 with padding are both accepted, as in nats-server.
        for encoded in [BASE64URL_NOPAD.encode(&sig), BASE64.encode(&sig)] {
            let id = auth
                .check(&with_sig(encoded), nonce.as_bytes())
                .expect("verified");
            assert_eq!(id.user.as_deref(), Some(pk.as_str()));
            assert_eq!(id.permissions.as_deref(), Some(&p));
        }
        let good = with_sig(BASE64URL_NOPAD.encode(&sig));
        let other_nonce = derive_nonce(&[3u8; 32], 1);
        assert_eq!(
            auth.check(&good, other_nonce.as_bytes()),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.check(&with_sig(String::new()), nonce.as_bytes()),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.check(&with_sig("!!not base64!!".into()), nonce.as_bytes()),
            Err(AuthError::BadSignature)
        );
        // A key that is not configured, or none at all, is refused.
        let stranger =
            nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [8u8; 32]).expect("key");
        let ci = connect(|c| {
            c.nkey = stranger.public_key();
            c.sig = BASE64URL_NOPAD.encode(&stranger.sign(nonce.as_bytes()).expect("sign"));
        });
        assert_eq!(
            auth.check(&ci, nonce.as_bytes()),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            auth.check(&ConnectInfo::default(), nonce.as_bytes()),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn nkey_rfc8032_vector() {
        // RFC 8032 section 7.1, TEST 1: the empty message.
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let sig = hex(concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ));
        let key: [u8; 32] = public.try_into().expect("32 bytes");
        let nkey = encode_public(PREFIX_USER, &key);
        assert!(is_valid_user_nkey(&nkey));
        assert!(verify_nkey_signature(
            &nkey,
            b"",
            &BASE64URL_NOPAD.encode(&sig)
        ));
        assert!(!verify_nkey_signature(
            &nkey,
            b"x",
            &BASE64URL_NOPAD.encode(&sig)
        ));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn nonces_look_like_nats_server_ones_and_never_repeat() {
        let seed = [5u8; 32];
        let mut seen = HashSet::new();
        for n in 0..1000 {
            let nonce = derive_nonce(&seed, n);
            // nats-server: 11 random bytes, base64url without padding.
            assert_eq!(nonce.len(), 15);
            assert!(nonce
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(
                BASE64URL_NOPAD.decode(nonce.as_bytes()).expect("b64").len(),
                NONCE_RAW_BYTES
            );
            assert!(seen.insert(nonce));
        }
        assert_eq!(derive_nonce(&seed, 7), derive_nonce(&seed, 7));
        assert_ne!(derive_nonce(&seed, 7), derive_nonce(&[6u8; 32], 7));
    }

    #[test]
    fn derived_keys_differ_by_label_and_hide_the_seed() {
        let seed = [9u8; 32];
        let a = derive_key(&seed, b"a");
        assert_ne!(a, derive_key(&seed, b"b"));
        assert_ne!(a, seed);
    }

    fn attr(oid: &str, value: &str) -> Vec<DnAttr> {
        vec![DnAttr {
            oid: oid.into(),
            value: Some(value.into()),
        }]
    }

    /// DC=org, DC=example, O=acme, OU=eng, CN=bob with the given SANs.
    fn bob(emails: &[&str], dns: &[&str]) -> TlsPeer {
        TlsPeer {
            emails: emails.iter().map(|s| s.to_string()).collect(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            uris: vec!["spiffe://acme/bob".into()],
            subject: vec![
                attr("0.9.2342.19200300.100.1.25", "org"),
                attr("0.9.2342.19200300.100.1.25", "example"),
                attr("2.5.4.10", "acme"),
                attr("2.5.4.11", "eng"),
                attr("2.5.4.3", "bob"),
            ],
        }
    }

    fn map_auth(names: &[&str]) -> Authenticator {
        Authenticator::new(&Options {
            users: names.iter().map(|n| user(n, "", None)).collect(),
            tls_map: true,
            ..Options::default()
        })
    }

    fn mapped(auth: &Authenticator, peer: &TlsPeer) -> Result<Option<String>, AuthError> {
        let ci = connect(|c| c.user = "x".into());
        auth.check_with_peer(&ci, b"", Some(peer)).map(|i| i.user)
    }

    #[test]
    fn tls_map_tries_emails_dns_uris_then_the_subject() {
        let peer = bob(&["bob@acme.io"], &["bob.acme.io"]);
        let who = |names: &[&str]| mapped(&map_auth(names), &peer);
        assert_eq!(
            who(&["bob@acme.io", "bob.acme.io"]),
            Ok(Some("bob@acme.io".into()))
        );
        assert_eq!(
            who(&["bob.acme.io", "spiffe://acme/bob"]),
            Ok(Some("bob.acme.io".into()))
        );
        assert_eq!(
            who(&["spiffe://acme/bob"]),
            Ok(Some("spiffe://acme/bob".into()))
        );
        assert_eq!(
            who(&["CN=bob,OU=eng,O=acme"]),
            Ok(Some("CN=bob,OU=eng,O=acme".into()))
        );
        let with_dcs = "CN=bob,OU=eng,O=acme,DC=org,DC=example";
        assert_eq!(who(&[with_dcs]), Ok(Some(with_dcs.into())));
        let ldap = "cn=bob, ou=eng, o=acme, dc=example, dc=org";
        assert_eq!(who(&[ldap]), Ok(Some(ldap.into())));
        let reordered = "DC=org,DC=example,O=acme,OU=eng,CN=bob";
        assert_eq!(who(&[reordered]), Ok(Some(reordered.into())));
        assert_eq!(who(&["bob"]), Err(AuthError::CertificateNotMapped));
        assert_eq!(who(&["CN=bob"]), Err(AuthError::CertificateNotMapped));
        let with_pass = Authenticator::new(&Options {
            users: vec![user("bob.acme.io", "pw", None)],
            tls_map: true,
            ..Options::default()
        });
        let ci = |pass: &str| connect(|c| c.pass = pass.into());
        assert!(with_pass
            .check_with_peer(&ci("pw"), b"", Some(&peer))
            .is_ok());
        assert_eq!(
            with_pass.check_with_peer(&ci(""), b"", Some(&peer)),
            Err(AuthError::BadCredentials)
        );
        let auth = map_auth(&["bob"]);
        let ci = connect(|c| c.user = "bob".into());
        assert_eq!(
            auth.check_with_peer(&ci, b"", None),
            Err(AuthError::CertificateNotMapped)
        );
    }

    #[test]
    fn tls_map_gives_the_users_permissions_and_account() {
        let p = perms(Some(&["a.>"]), &[], None, &[]);
        let auth = Authenticator::new(&Options {
            users: vec![User {
                account: Some("A".into()),
                ..user("bob@acme.io", "", Some(p.clone()))
            }],
            tls_map: true,
            ..Options::default()
        });
        let id = auth
            .check_with_peer(
                &ConnectInfo::default(),
                b"",
                Some(&bob(&["bob@acme.io"], &[])),
            )
            .expect("mapped");
        assert_eq!(id.user.as_deref(), Some("bob@acme.io"));
        assert_eq!(id.account.as_deref(), Some("A"));
        assert!(id
            .permissions
            .is_some_and(|q| q.can_publish(b"a.b") && !q.can_publish(b"b")));
    }

    #[test]
    fn tls_map_subject_strings_and_dns() {
        let peer = TlsPeer {
            subject: vec![
                attr("2.5.4.6", "US"),
                attr("2.5.4.3", "a,b"),
                attr("1.2.840.113549.1.9.1", "x@y"),
            ],
            ..TlsPeer::default()
        };
        assert_eq!(peer.go_subject(), "CN=a\\,b,C=US");
        assert_eq!(peer.dn(), None);
        assert_eq!(
            parse_dn("CN=a\\,b , C=US"),
            Some(vec![
                vec![("CN".to_string(), "a,b".to_string())],
                vec![("C".to_string(), "US".to_string())]
            ])
        );
        assert_eq!(parse_dn("cn=x+o=y").map(|d| d[0].len()), Some(2));
        assert_eq!(parse_dn("alice"), None);
        assert_eq!(parse_dn("=x"), None);
        assert_eq!(go_escape(" #a "), "\\ #a\\ ");
        assert_eq!(go_escape("#a"), "\\#a");
    }
}
