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

use crate::options::Options;
use crate::subject::{has_wildcard, is_fwc, is_pwc, subject_matches, tokens};

/// Successful bcrypt checks remembered per [`Authenticator`].
const BCRYPT_CACHE_MAX: usize = 1024;

/// Reply subjects a [`ResponseTracker`] keeps before it prunes spent and
/// expired ones (nats-server's `replyPermLimit`).
const REPLY_TRACK_PRUNE_AT: usize = 4096;

/// Hard bound on tracked reply subjects: past it the oldest are dropped.
const REPLY_TRACK_MAX: usize = 2 * REPLY_TRACK_PRUNE_AT;

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
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthError::BadCredentials => "authentication failed",
            AuthError::BadSignature => "nkey signature missing or not verified",
            AuthError::ConnectionTypeNotAllowed => "connection type not allowed for this user",
        })
    }
}

impl std::error::Error for AuthError {}

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
    replies: Mutex<HashMap<Box<[u8]>, Reply>>,
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
            replies: Mutex::new(HashMap::new()),
        }
    }

    /// A message with reply subject `reply` was delivered to the client at
    /// `now`. A repeated reply subject starts over.
    pub fn record(&self, reply: &[u8], now: Instant) {
        if reply.is_empty() {
            return;
        }
        let mut replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        replies.insert(reply.into(), Reply { at: now, sent: 0 });
        if replies.len() > REPLY_TRACK_PRUNE_AT {
            self.prune(&mut replies, now);
        }
    }

    /// May the client publish a response to `subject` at `now`? Counts the
    /// response when it may.
    pub fn allows(&self, subject: &[u8], now: Instant) -> bool {
        let mut replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
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
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).len()
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
        if replies.len() > REPLY_TRACK_MAX {
            // Still too many live ones (no expiry configured): keep the
            // newest half of the bound.
            let mut ages: Vec<Instant> = replies.values().map(|r| r.at).collect();
            ages.sort_unstable();
            let cut = ages[replies.len() - REPLY_TRACK_MAX / 2];
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
    bcrypt_ok: Mutex<HashSet<[u8; 32]>>,
}

impl Authenticator {
    /// Build from options.
    pub fn new(opts: &Options) -> Self {
        let account =
            |secret: Option<String>, perms: &Option<Permissions>, types: &[String]| Credential {
                secret,
                permissions: perms.clone().map(|p| Arc::new(p.normalized())),
                allowed_connection_types: types.to_vec(),
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
                    );
                    (u.username.clone(), acc)
                })
                .collect(),
            nkeys: opts
                .nkeys
                .iter()
                .map(|u| {
                    let acc = account(None, &u.permissions, &u.allowed_connection_types);
                    (u.nkey.clone(), acc)
                })
                .collect(),
            no_auth_user: opts.no_auth_user.clone(),
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
                })
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        Err(AuthError::BadCredentials)
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
