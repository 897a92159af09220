//! Accounts: exports, imports and the routing tables built from them.
//!
//! An account is an isolated subject namespace with its own sublist. An
//! account *exports* a stream (messages published in it may be seen by
//! other accounts) or a service (requests from other accounts may reach its
//! responders); another account *imports* them. nats-server's rules:
//!
//! - a stream import `{stream: {account: A, subject: s}, prefix: p}` (or
//!   `to: t`) delivers every message published in `A` on a subject matched
//!   by `s` to the importer's subscribers, on `p.<subject>` (or on `t`);
//! - a service import `{service: {account: A, subject: s}, to: t}` sends a
//!   request published in the importer on `t` (default `s`) to `A` on `s`,
//!   with its reply rewritten to a fresh `_R_.<prefix>.<id>` subject in `A`
//!   whose responses travel back to the original reply in the importer;
//!   the request carries a `Nats-Request-Info` header naming the importer.
//!
//! [`check_config`] validates a configuration (exports exist and allow the
//! importer, no cycles) with nats-server's error texts; [`Routing`] is the
//! per-account table the publish path consults, and only accounts that take
//! part in an export or import have one, so plain accounts pay one pointer
//! check per message.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use crate::server::Account;
use crate::subject::{has_wildcard, is_fwc, is_pwc, is_valid_subject, subject_matches, tokens};

/// The global account every connection without an account lands in.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// The system account's name unless `system_account` names another.
pub const SYSTEM_ACCOUNT: &str = "$SYS";

/// Prefix of the reply subjects service imports create (`isServiceReply`).
pub const SERVICE_REPLY_PREFIX: &[u8] = b"_R_.";

/// Header a service import adds to the request (nats-server `ClientInfoHdr`).
pub const REQUEST_INFO_HEADER: &str = "Nats-Request-Info";

/// How long a pending service response may wait (nats-server's
/// `DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD`).
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);

/// Pending responses an account keeps before it first prunes expired ones.
const RESPONSES_PRUNE_AT: usize = 1024;

/// Cycle searches stop this deep, as nats-server's do.
const MAX_CYCLE_SEARCH_DEPTH: usize = 1024;

/// How many responses a service export answers a request with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseType {
    /// One response, then the reply mapping is gone.
    #[default]
    Singleton,
    /// Any number of responses until the threshold passes without one.
    Stream,
    /// Like `Stream`; an empty message ends it.
    Chunked,
}

/// What an export offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// `{stream: subject}`.
    Stream,
    /// `{service: subject}`.
    Service,
}

/// One entry of an account's `exports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// Stream or service.
    pub kind: ExportKind,
    /// The subject filter exported.
    pub subject: String,
    /// `accounts: [...]`: who may import; `None` = public.
    pub accounts: Option<Vec<String>>,
    /// `response_type` (services only).
    pub response_type: ResponseType,
    /// `response_threshold` (services only).
    pub response_threshold: Option<Duration>,
}

/// One entry of an account's `imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportConfig {
    /// `{stream: {account, subject}, prefix | to}`.
    Stream {
        /// The exporting account.
        account: String,
        /// The subject (filter) imported.
        subject: String,
        /// `prefix`: prepended to the subject.
        prefix: Option<String>,
        /// `to`: the subject it appears on here.
        to: Option<String>,
    },
    /// `{service: {account, subject}, to, share}`.
    Service {
        /// The exporting account.
        account: String,
        /// The subject requests go to in the exporting account.
        subject: String,
        /// The subject requests are published on here (default `subject`).
        to: String,
        /// `share`: the request info header carries the requester's details.
        share: bool,
    },
}

/// One configured account (`accounts { NAME: {...} }`). Its users live in
/// [`Options::users`](crate::options::Options) with their account named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountConfig {
    /// The account name.
    pub name: String,
    /// `nkey`: the account's public nkey, if given.
    pub nkey: Option<String>,
    /// `exports`.
    pub exports: Vec<ExportConfig>,
    /// `imports`.
    pub imports: Vec<ImportConfig>,
    /// `jetstream: enabled` (or a limits map).
    pub jetstream: bool,
    /// The limits of `jetstream { ... }` (none limited otherwise).
    pub jetstream_limits: crate::options::JsAccountLimits,
    /// `mappings`: subject mappings of the account's publishes.
    pub mappings: Vec<crate::mapping::MappingConfig>,
}

// ---------------------------------------------------------------------------
// Subject relations (nats-server's isSubsetMatch and SubjectsCollide).

/// Whether every subject `sub` matches is also matched by `filter`.
pub fn is_subset_match(sub: &str, filter: &str) -> bool {
    let sub: Vec<&[u8]> = tokens(sub.as_bytes()).collect();
    let mut n = 0;
    for (i, f) in tokens(filter.as_bytes()).enumerate() {
        n = i + 1;
        let Some(&s) = sub.get(i) else {
            return false;
        };
        if is_fwc(f) {
            return true;
        }
        if is_fwc(s) {
            return false;
        }
        if is_pwc(s) {
            if !is_pwc(f) {
                return false;
            }
            continue;
        }
        if !is_pwc(f) && s != f {
            return false;
        }
    }
    sub.len() == n
}

/// Whether some subject matches both filters.
pub fn subjects_collide(a: &str, b: &str) -> bool {
    let a: Vec<&[u8]> = tokens(a.as_bytes()).collect();
    let b: Vec<&[u8]> = tokens(b.as_bytes()).collect();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), _) if is_fwc(x) => return true,
            (_, Some(y)) if is_fwc(y) => return true,
            (Some(x), Some(y)) => {
                if !is_pwc(x) && !is_pwc(y) && x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------
// Subject mapping.

/// How an import turns a matched subject into the subject it is delivered
/// on (nats-server's import transforms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMap {
    /// The subject unchanged.
    Same,
    /// Always this literal subject.
    Literal(Vec<u8>),
    /// `prefix.` + the subject.
    Prefix(Vec<u8>),
    /// Destination tokens with references to the source's wildcards.
    Transform(Vec<DestToken>),
}

/// One token of a [`SubjectMap::Transform`] destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestToken {
    /// A literal token.
    Literal(Vec<u8>),
    /// The n-th (0-based) `*` token of the source subject.
    Wildcard(usize),
    /// Everything the source's `>` matched.
    Rest,
}

impl SubjectMap {
    /// The mapping from filter `from` to destination `to` (nats-server:
    /// `*` in `to` refers to the source wildcards in order, `$N` and
    /// `{{wildcard(N)}}` to the N-th; a trailing `>` to the `>` tail).
    pub fn new(from: &str, to: &str) -> Result<SubjectMap, String> {
        if from == to {
            return Ok(SubjectMap::Same);
        }
        if !has_wildcard(from.as_bytes()) {
            return Ok(SubjectMap::Literal(to.as_bytes().to_vec()));
        }
        let pwcs = tokens(from.as_bytes()).filter(|t| is_pwc(t)).count();
        let src_fwc = tokens(from.as_bytes()).any(is_fwc);
        let mut out = Vec::new();
        let mut next_star = 0;
        for t in to.split('.') {
            let reference = t
                .strip_prefix('$')
                .or_else(|| {
                    t.strip_prefix("{{wildcard(")
                        .and_then(|r| r.strip_suffix(")}}"))
                })
                .map(str::trim);
            if t == "*" {
                next_star += 1;
                if next_star > pwcs {
                    return Err(format!("too many wildcards in {to:?} for {from:?}"));
                }
                out.push(DestToken::Wildcard(next_star - 1));
            } else if t == ">" {
                if !src_fwc {
                    return Err(format!("{to:?} has '>' but {from:?} does not"));
                }
                out.push(DestToken::Rest);
            } else if let Some(n) = reference.and_then(|r| r.parse::<usize>().ok()) {
                if n == 0 || n > pwcs {
                    return Err(format!("wildcard index {n} out of range in {to:?}"));
                }
                out.push(DestToken::Wildcard(n - 1));
            } else {
                out.push(DestToken::Literal(t.as_bytes().to_vec()));
            }
        }
        Ok(SubjectMap::Transform(out))
    }

    /// The destination for `subject` (which the source filter `from` matched).
    pub fn apply(&self, from: &[u8], subject: &[u8]) -> Vec<u8> {
        match self {
            SubjectMap::Same => subject.to_vec(),
            SubjectMap::Literal(s) => s.clone(),
            SubjectMap::Prefix(p) => {
                let mut v = Vec::with_capacity(p.len() + 1 + subject.len());
                v.extend_from_slice(p);
                v.push(b'.');
                v.extend_from_slice(subject);
                v
            }
            SubjectMap::Transform(dest) => {
                let mut stars: Vec<&[u8]> = Vec::new();
                let mut rest: &[u8] = b"";
                let mut offset = 0;
                let mut src = tokens(subject);
                for f in tokens(from) {
                    if is_fwc(f) {
                        rest = subject.get(offset..).unwrap_or_default();
                        break;
                    }
                    let Some(t) = src.next() else { break };
                    offset += t.len() + 1;
                    if is_pwc(f) {
                        stars.push(t);
                    }
                }
                let mut v = Vec::with_capacity(subject.len() + 16);
                for (i, d) in dest.iter().enumerate() {
                    if i > 0 {
                        v.push(b'.');
                    }
                    match d {
                        DestToken::Literal(l) => v.extend_from_slice(l),
                        DestToken::Wildcard(n) => {
                            v.extend_from_slice(stars.get(*n).copied().unwrap_or_default())
                        }
                        DestToken::Rest => v.extend_from_slice(rest),
                    }
                }
                v
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration checks.

/// A validation failure, in nats-server's words.
pub type CheckError = String;

#[derive(Default)]
struct AddedImports<'a> {
    /// account → (local subject, exporter, subject in exporter) per service import.
    services: HashMap<&'a str, Vec<(String, &'a str, String)>>,
    /// account → (exporter, local subject `to`, source subject) per stream import.
    streams: HashMap<&'a str, Vec<(&'a str, String, String)>>,
}

/// Check the exports and imports of `accounts` as nats-server does when it
/// loads them: exports name defined accounts; imports name a defined
/// account whose export covers the subject and allows the importer; stream
/// prefixes are literal; nothing forms a cycle. Errors in nats-server's
/// text; an empty list means all is well.
pub fn check_config(accounts: &[AccountConfig]) -> Vec<CheckError> {
    let mut errors = Vec::new();
    let by_name: HashMap<&str, &AccountConfig> =
        accounts.iter().map(|a| (a.name.as_str(), a)).collect();
    for kind in [ExportKind::Stream, ExportKind::Service] {
        for acc in accounts {
            for e in acc.exports.iter().filter(|e| e.kind == kind) {
                for name in e.accounts.iter().flatten() {
                    if !by_name.contains_key(name.as_str()) {
                        let what = match kind {
                            ExportKind::Stream => "stream",
                            ExportKind::Service => "service",
                        };
                        errors.push(format!("{name:?} account not defined for {what} export"));
                    }
                }
            }
        }
    }
    let mut added = AddedImports::default();
    for acc in accounts {
        for imp in &acc.imports {
            let ImportConfig::Stream {
                account,
                subject,
                prefix,
                to,
            } = imp
            else {
                continue;
            };
            let Some(exp) = by_name.get(account.as_str()) else {
                errors.push(format!("{account:?} account not defined for stream import"));
                continue;
            };
            let fail = |e: &str| format!("Error adding stream import {subject:?}: {e}");
            if !export_allows(exp, ExportKind::Stream, subject, &acc.name) {
                errors.push(fail("stream import not authorized"));
                continue;
            }
            let local = match (prefix, to) {
                (Some(p), _) => {
                    if has_wildcard(p.as_bytes()) {
                        errors.push(fail("stream import prefix can not contain wildcard tokens"));
                        continue;
                    }
                    format!("{}.{subject}", p.trim_end_matches('.'))
                }
                (None, Some(t)) => t.clone(),
                (None, None) => subject.clone(),
            };
            if stream_cycle(&by_name, &added, account, &local, &acc.name) {
                errors.push(fail("import forms a cycle"));
                continue;
            }
            if let Err(e) = SubjectMap::new(subject, &local) {
                errors.push(format!(
                    "Error adding stream import {subject:?}: failed to create mapping transform for stream import subject {subject:?} to {local:?}: {e}"
                ));
                continue;
            }
            let list = added.streams.entry(acc.name.as_str()).or_default();
            if list.iter().any(|(a, _, s)| a == account && s == subject) {
                errors.push(fail("stream import already exists"));
                continue;
            }
            list.push((account.as_str(), local, subject.clone()));
        }
    }
    for acc in accounts {
        for imp in &acc.imports {
            let ImportConfig::Service {
                account,
                subject,
                to,
                ..
            } = imp
            else {
                continue;
            };
            let Some(exp) = by_name.get(account.as_str()) else {
                errors.push(format!(
                    "{account:?} account not defined for service import"
                ));
                continue;
            };
            let fail = |e: &str| format!("Error adding service import {subject:?}: {e}");
            if !is_valid_subject(subject.as_bytes()) || !is_valid_subject(to.as_bytes()) {
                errors.push(fail("invalid subject"));
                continue;
            }
            if !export_allows(exp, ExportKind::Service, subject, &acc.name) {
                errors.push(fail("service import not authorized"));
                continue;
            }
            let mut visited = HashSet::from([acc.name.as_str()]);
            if service_cycle(&added, account, to, &mut visited) {
                errors.push(fail("import forms a cycle"));
                continue;
            }
            added.services.entry(acc.name.as_str()).or_default().push((
                to.clone(),
                account.as_str(),
                subject.clone(),
            ));
        }
    }
    errors
}

/// The export of `exp` that covers `subject` for importer `importer`, if
/// it allows it (nats-server's `checkStreamExportApproved` and
/// `checkServiceExportApproved`: an exact subject first, then any export
/// the subject is a subset of).
fn export_allows(exp: &AccountConfig, kind: ExportKind, subject: &str, importer: &str) -> bool {
    if !is_valid_subject(subject.as_bytes()) {
        return false;
    }
    let allowed = |e: &ExportConfig| match &e.accounts {
        None => true,
        Some(list) => list.iter().any(|a| a == importer),
    };
    let mut of_kind = exp.exports.iter().filter(|e| e.kind == kind);
    if let Some(e) = of_kind.clone().find(|e| e.subject == subject) {
        return allowed(e);
    }
    of_kind
        .find(|e| is_subset_match(subject, &e.subject))
        .is_some_and(allowed)
}

fn find_export<'a>(
    exp: &'a AccountConfig,
    kind: ExportKind,
    subject: &str,
) -> Option<&'a ExportConfig> {
    let of_kind = || exp.exports.iter().filter(move |e| e.kind == kind);
    of_kind()
        .find(|e| e.subject == subject)
        .or_else(|| of_kind().find(|e| is_subset_match(subject, &e.subject)))
}

/// nats-server's `checkServiceImportsForCycles`, over the imports added so far.
fn service_cycle<'a>(
    added: &AddedImports<'a>,
    account: &'a str,
    from: &str,
    visited: &mut HashSet<&'a str>,
) -> bool {
    if visited.len() >= MAX_CYCLE_SEARCH_DEPTH {
        return true;
    }
    let mut from = from.to_string();
    for (local, dest, _) in added.services.get(account).into_iter().flatten() {
        if subjects_collide(&from, local) {
            if visited.contains(dest) {
                return true;
            }
            visited.insert(account);
            if is_subset_match(local, &from) {
                from = local.clone();
            }
            if service_cycle(added, dest, &from, visited) {
                return true;
            }
        }
    }
    false
}

/// nats-server's `checkStreamImportsForCycles`: starting in the exporter,
/// follow stream imports whose subjects collide with what is imported.
fn stream_cycle<'a>(
    by_name: &HashMap<&'a str, &'a AccountConfig>,
    added: &AddedImports<'a>,
    exporter: &'a str,
    to: &str,
    importer: &'a str,
) -> bool {
    fn walk<'a>(
        by_name: &HashMap<&'a str, &'a AccountConfig>,
        added: &AddedImports<'a>,
        account: &'a str,
        to: &str,
        visited: &mut HashSet<&'a str>,
    ) -> bool {
        if visited.len() >= MAX_CYCLE_SEARCH_DEPTH {
            return true;
        }
        let Some(acc) = by_name.get(account) else {
            return false;
        };
        let exports_it = acc
            .exports
            .iter()
            .any(|e| e.kind == ExportKind::Stream && is_subset_match(to, &e.subject));
        if !exports_it {
            return false;
        }
        let mut to = to.to_string();
        for (dest, local, _) in added.streams.get(account).into_iter().flatten() {
            if subjects_collide(&to, local) {
                if visited.contains(dest) {
                    return true;
                }
                visited.insert(account);
                if is_subset_match(local, &to) {
                    to = local.clone();
                }
                if walk(by_name, added, dest, &to, visited) {
                    return true;
                }
            }
        }
        false
    }
    let mut visited = HashSet::from([importer]);
    walk(by_name, added, exporter, to, &mut visited)
}

// ---------------------------------------------------------------------------
// Routing tables.

/// Messages published in an exporter on `filter` also go to `importer`.
#[derive(Debug)]
pub struct StreamRoute {
    /// Subject filter in the exporting account.
    pub filter: Vec<u8>,
    /// The importing account.
    pub importer: Weak<Account>,
    /// Exporter subject → importer subject.
    pub map: SubjectMap,
}

/// Requests published in an importer on `filter` go to `exporter`.
#[derive(Debug)]
pub struct ServiceRoute {
    /// Subject filter in the importing account.
    pub filter: Vec<u8>,
    /// The exporting account.
    pub exporter: Weak<Account>,
    /// Importer subject → exporter subject.
    pub map: SubjectMap,
    /// The export's response type.
    pub response_type: ResponseType,
    /// How long responses may take.
    pub threshold: Duration,
    /// `share`: detailed request info.
    pub share: bool,
}

/// One account's part in exports and imports, consulted on publish.
#[derive(Debug, Default)]
pub struct Routing {
    /// Stream imports of what this account publishes.
    pub streams: Vec<StreamRoute>,
    /// Service imports this account publishes requests to.
    pub services: Vec<ServiceRoute>,
    /// This account exports a service, so `_R_.` replies may be responses.
    pub exports_services: bool,
}

impl Routing {
    /// The stream routes whose filter matches `subject`.
    pub fn streams_for<'a>(&'a self, subject: &'a [u8]) -> impl Iterator<Item = &'a StreamRoute> {
        self.streams
            .iter()
            .filter(move |r| subject_matches(&r.filter, subject))
    }

    /// The service routes whose filter matches `subject`.
    pub fn services_for<'a>(&'a self, subject: &'a [u8]) -> impl Iterator<Item = &'a ServiceRoute> {
        self.services
            .iter()
            .filter(move |r| subject_matches(&r.filter, subject))
    }
}

/// Build each account's [`Routing`] from checked configuration. `lookup`
/// finds an account by name; the result pairs each account that takes part
/// with its table.
pub fn build_routing(
    accounts: &[AccountConfig],
    lookup: &dyn Fn(&str) -> Option<std::sync::Arc<Account>>,
) -> HashMap<String, Routing> {
    let mut out: HashMap<String, Routing> = HashMap::new();
    let by_name: HashMap<&str, &AccountConfig> =
        accounts.iter().map(|a| (a.name.as_str(), a)).collect();
    for acc in accounts {
        if acc.exports.iter().any(|e| e.kind == ExportKind::Service) {
            out.entry(acc.name.clone()).or_default().exports_services = true;
        }
        let Some(me) = lookup(&acc.name) else {
            continue;
        };
        for imp in &acc.imports {
            match imp {
                ImportConfig::Stream {
                    account,
                    subject,
                    prefix,
                    to,
                } => {
                    let map = match (prefix, to) {
                        (Some(p), _) => {
                            SubjectMap::Prefix(p.trim_end_matches('.').as_bytes().to_vec())
                        }
                        (None, Some(t)) => match SubjectMap::new(subject, t) {
                            Ok(m) => m,
                            Err(_) => continue,
                        },
                        (None, None) => SubjectMap::Same,
                    };
                    out.entry(account.clone())
                        .or_default()
                        .streams
                        .push(StreamRoute {
                            filter: subject.as_bytes().to_vec(),
                            importer: std::sync::Arc::downgrade(&me),
                            map,
                        });
                }
                ImportConfig::Service {
                    account,
                    subject,
                    to,
                    share,
                } => {
                    let Some(exp) = lookup(account) else {
                        continue;
                    };
                    let export = by_name
                        .get(account.as_str())
                        .and_then(|a| find_export(a, ExportKind::Service, subject));
                    let Ok(map) = SubjectMap::new(to, subject) else {
                        continue;
                    };
                    out.entry(acc.name.clone())
                        .or_default()
                        .services
                        .push(ServiceRoute {
                            filter: to.as_bytes().to_vec(),
                            exporter: std::sync::Arc::downgrade(&exp),
                            map,
                            response_type: export.map(|e| e.response_type).unwrap_or_default(),
                            threshold: export
                                .and_then(|e| e.response_threshold)
                                .unwrap_or(DEFAULT_RESPONSE_THRESHOLD),
                            share: *share,
                        });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Pending service responses.

/// Where a response to a rewritten reply goes.
#[derive(Debug, Clone)]
pub struct PendingResponse {
    /// The requester's account.
    pub account: Weak<Account>,
    /// The requester's original reply subject.
    pub reply: Vec<u8>,
    /// How many responses are expected.
    pub response_type: ResponseType,
    /// How long to wait for (more) responses.
    pub threshold: Duration,
    /// When the mapping lapses.
    pub expires: Instant,
}

/// An exporter's map from rewritten replies to requesters.
#[derive(Debug)]
pub struct Responses {
    map: Mutex<HashMap<Vec<u8>, PendingResponse>>,
    len: AtomicUsize,
    prune_at: AtomicUsize,
    prefix: Vec<u8>,
    secret: u64,
    counter: AtomicU64,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut n: u64, len: usize, out: &mut Vec<u8>) {
    for _ in 0..len {
        out.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Responses {
    /// An empty map whose replies look like `_R_.<prefix>.<id>`; `key` is
    /// secret material (engine reads no entropy itself).
    pub fn new(key: [u8; 16]) -> Self {
        let (a, b) = key.split_at(8);
        let a = u64::from_le_bytes(a.try_into().unwrap_or_default());
        let secret = u64::from_le_bytes(b.try_into().unwrap_or_default());
        let mut prefix = SERVICE_REPLY_PREFIX.to_vec();
        base62(splitmix64(a), 6, &mut prefix);
        prefix.push(b'.');
        Responses {
            map: Mutex::new(HashMap::new()),
            len: AtomicUsize::new(0),
            prune_at: AtomicUsize::new(RESPONSES_PRUNE_AT),
            prefix,
            secret,
            counter: AtomicU64::new(0),
        }
    }

    /// Pending responses now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// No pending responses.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Register a request's reply; returns the reply subject to use in the
    /// exporting account.
    pub fn add(&self, now: Instant, pending: PendingResponse) -> Vec<u8> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut reply = self.prefix.clone();
        base62(splitmix64(n ^ self.secret), 11, &mut reply);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.prune_at.load(Ordering::Relaxed) {
            map.retain(|_, p| p.expires > now);
            self.prune_at
                .store((map.len() * 2).max(RESPONSES_PRUNE_AT), Ordering::Relaxed);
        }
        map.insert(reply.clone(), pending);
        self.len.store(map.len(), Ordering::Relaxed);
        reply
    }

    /// Forget a reply (the request reached nobody).
    pub fn remove(&self, reply: &[u8]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(reply);
        self.len.store(map.len(), Ordering::Relaxed);
    }

    /// The requester for a response published on `subject`, if it is a
    /// live rewritten reply. `last` says the response ends the exchange (an
    /// empty message); singleton mappings end after one response, others
    /// get their expiry pushed out.
    pub fn take(&self, now: Instant, subject: &[u8], last: bool) -> Option<PendingResponse> {
        if !subject.starts_with(&self.prefix) || self.is_empty() {
            return None;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.get_mut(subject)?;
        if p.expires <= now {
            map.remove(subject);
            self.len.store(map.len(), Ordering::Relaxed);
            return None;
        }
        if p.response_type == ResponseType::Singleton || last {
            let p = map.remove(subject);
            self.len.store(map.len(), Ordering::Relaxed);
            return p;
        }
        p.expires = now + p.threshold;
        Some(p.clone())
    }
}

/// The request-info JSON nats-server 2.9.10 puts in `Nats-Request-Info`:
/// `{"acc":"<importer>"}` (plus `rtt` once measured), or with `share` the
/// requester's details too.
pub fn request_info_json(acc: &str, detail: Option<&RequestDetail<'_>>) -> String {
    let mut m = serde_json::Map::new();
    if let Some(d) = detail {
        m.insert("host".into(), d.host.into());
        m.insert("id".into(), d.cid.into());
    }
    m.insert("acc".into(), acc.into());
    if let Some(d) = detail {
        let mut opt = |k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.into(), v.into());
            }
        };
        opt("user", d.user);
        opt("name", d.name);
        opt("lang", d.lang);
        opt("ver", d.version);
        opt("server", d.server);
        m.insert("kind".into(), "Client".into());
        m.insert("client_type".into(), "nats".into());
    }
    serde_json::Value::Object(m).to_string()
}

/// What `share: true` adds to the request info.
#[derive(Debug, Clone, Copy)]
pub struct RequestDetail<'a> {
    /// The requester's IP.
    pub host: &'a str,
    /// Its client id.
    pub cid: u64,
    /// Its user.
    pub user: &'a str,
    /// CONNECT `name`.
    pub name: &'a str,
    /// CONNECT `lang`.
    pub lang: &'a str,
    /// CONNECT `version`.
    pub version: &'a str,
    /// The server name.
    pub server: &'a str,
}

/// `headers` (a `NATS/1.0` block or none) with `key: value` set, replacing
/// an earlier value, as nats-server's `setHeader` does.
pub fn set_header(headers: Option<&[u8]>, key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.map_or(0, <[u8]>::len) + key.len() + value.len() + 16);
    match headers.filter(|h| h.len() > 2) {
        Some(h) => {
            // Drop the blank line that ends the block, then any old value.
            let body = h.strip_suffix(b"\r\n").unwrap_or(h);
            let mut lines = body.split(|&b| b == b'\n');
            if let Some(status) = lines.next() {
                out.extend_from_slice(status);
                out.push(b'\n');
            }
            for line in lines.filter(|l| !l.is_empty()) {
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                if name.eq_ignore_ascii_case(key.as_bytes()) {
                    continue;
                }
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        None => out.extend_from_slice(b"NATS/1.0\r\n"),
    }
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// nats-server's `isReservedReply`: reply subjects a client may not use.
pub fn is_reserved_reply(reply: &[u8]) -> bool {
    (reply.len() > 3 && reply.starts_with(SERVICE_REPLY_PREFIX))
        || (reply.len() > 8 && reply.starts_with(b"$JS.ACK."))
        || (reply.len() > 5 && reply.starts_with(b"$GNR."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(kind: ExportKind, subject: &str, accounts: Option<&[&str]>) -> ExportConfig {
        ExportConfig {
            kind,
            subject: subject.into(),
            accounts: accounts.map(|a| a.iter().map(|s| s.to_string()).collect()),
            response_type: ResponseType::Singleton,
            response_threshold: None,
        }
    }

    fn stream_import(account: &str, subject: &str, prefix: Option<&str>) -> ImportConfig {
        ImportConfig::Stream {
            account: account.into(),
            subject: subject.into(),
            prefix: prefix.map(Into::into),
            to: None,
        }
    }

    fn service_import(account: &str, subject: &str, to: &str) -> ImportConfig {
        ImportConfig::Service {
            account: account.into(),
            subject: subject.into(),
            to: to.into(),
            share: false,
        }
    }

    fn acc(name: &str, exports: Vec<ExportConfig>, imports: Vec<ImportConfig>) -> AccountConfig {
        AccountConfig {
            name: name.into(),
            nkey: None,
            exports,
            imports,
            ..AccountConfig::default()
        }
    }

    #[test]
    fn subset_and_collide() {
        assert!(is_subset_match("foo.bar", "foo.*"));
        assert!(is_subset_match("foo.*", "foo.>"));
        assert!(is_subset_match("foo.bar.baz", "foo.>"));
        assert!(!is_subset_match("foo.>", "foo.*"));
        assert!(!is_subset_match("foo.*", "foo.bar"));
        assert!(!is_subset_match("foo", "foo.bar"));
        assert!(is_subset_match("foo", "foo"));
        assert!(subjects_collide("foo.*", "*.bar"));
        assert!(subjects_collide("foo.>", "foo.bar.baz"));
        assert!(!subjects_collide("foo.bar", "foo.baz"));
        assert!(!subjects_collide("foo", "foo.bar"));
    }

    #[test]
    fn subject_maps() {
        let m = SubjectMap::new("a.*.c.*", "x.$2.$1").unwrap();
        assert_eq!(m.apply(b"a.*.c.*", b"a.1.c.2"), b"x.2.1");
        let m = SubjectMap::new("a.*", "b.*").unwrap();
        assert_eq!(m.apply(b"a.*", b"a.q"), b"b.q");
        let m = SubjectMap::new("a.>", "b.>").unwrap();
        assert_eq!(m.apply(b"a.>", b"a.q.r"), b"b.q.r");
        assert_eq!(
            SubjectMap::new("a.b", "c").unwrap().apply(b"a.b", b"a.b"),
            b"c"
        );
        assert_eq!(SubjectMap::new("a.*", "a.*").unwrap(), SubjectMap::Same);
        let p = SubjectMap::Prefix(b"imp".to_vec());
        assert_eq!(p.apply(b"a.>", b"a.b"), b"imp.a.b");
        assert!(SubjectMap::new("a.*", "b.*.*").is_err());
        assert!(SubjectMap::new("a.*", "b.>").is_err());
        let m = SubjectMap::new("a.*", "b.{{wildcard(1)}}").unwrap();
        assert_eq!(m.apply(b"a.*", b"a.z"), b"b.z");
    }

    #[test]
    fn public_and_private_exports() {
        let a = acc(
            "A",
            vec![
                export(ExportKind::Stream, "pub.>", None),
                export(ExportKind::Stream, "priv.>", Some(&["B"])),
                export(ExportKind::Service, "svc", Some(&["B"])),
            ],
            vec![],
        );
        let b = acc(
            "B",
            vec![],
            vec![
                stream_import("A", "pub.x", Some("a")),
                stream_import("A", "priv.>", None),
                service_import("A", "svc", "svc"),
            ],
        );
        let c = acc(
            "C",
            vec![],
            vec![
                stream_import("A", "pub.>", None),
                stream_import("A", "priv.x", None),
                service_import("A", "svc", "svc"),
                stream_import("A", "other", None),
            ],
        );
        assert_eq!(
            check_config(&[a, b, c]),
            vec![
                "Error adding stream import \"priv.x\": stream import not authorized",
                "Error adding stream import \"other\": stream import not authorized",
                "Error adding service import \"svc\": service import not authorized",
            ]
        );
    }

    #[test]
    fn undefined_accounts_and_bad_prefix() {
        let a = acc(
            "A",
            vec![
                export(ExportKind::Stream, "s", Some(&["Z"])),
                export(ExportKind::Service, "q", Some(&["Y"])),
                export(ExportKind::Stream, "t", None),
            ],
            vec![stream_import("X", "s", None), service_import("W", "q", "q")],
        );
        let b = acc("B", vec![], vec![stream_import("A", "t", Some("p.*"))]);
        assert_eq!(
            check_config(&[a, b]),
            vec![
                "\"Z\" account not defined for stream export",
                "\"Y\" account not defined for service export",
                "\"X\" account not defined for stream import",
                "Error adding stream import \"t\": stream import prefix can not contain wildcard tokens",
                "\"W\" account not defined for service import",
            ]
        );
    }

    #[test]
    fn cycles_are_refused() {
        let a = acc(
            "A",
            vec![export(ExportKind::Service, "q", None)],
            vec![service_import("B", "q", "q")],
        );
        let b = acc(
            "B",
            vec![export(ExportKind::Service, "q", None)],
            vec![service_import("A", "q", "q")],
        );
        assert_eq!(
            check_config(&[a, b]),
            vec!["Error adding service import \"q\": import forms a cycle"]
        );
        let a = acc(
            "A",
            vec![export(ExportKind::Stream, "s", None)],
            vec![stream_import("B", "s", None)],
        );
        let b = acc(
            "B",
            vec![export(ExportKind::Stream, "s", None)],
            vec![stream_import("A", "s", None)],
        );
        assert_eq!(
            check_config(&[a, b]),
            vec!["Error adding stream import \"s\": import forms a cycle"]
        );
        // A chain is fine.
        let a = acc("A", vec![export(ExportKind::Service, "q", None)], vec![]);
        let b = acc(
            "B",
            vec![export(ExportKind::Service, "q", None)],
            vec![service_import("A", "q", "q")],
        );
        let c = acc("C", vec![], vec![service_import("B", "q", "q")]);
        assert!(check_config(&[a, b, c]).is_empty());
    }

    #[test]
    fn responses_singleton_and_stream() {
        // Tests need one real starting instant.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let r = Responses::new([7; 16]);
        let pending = |rt| PendingResponse {
            account: Weak::new(),
            reply: b"_INBOX.1".to_vec(),
            response_type: rt,
            threshold: Duration::from_secs(1),
            expires: now + Duration::from_secs(1),
        };
        let one = r.add(now, pending(ResponseType::Singleton));
        let two = r.add(now, pending(ResponseType::Stream));
        assert!(one.starts_with(b"_R_."));
        assert_ne!(one, two);
        assert_eq!(r.len(), 2);
        assert!(r.take(now, &one, false).is_some());
        assert!(r.take(now, &one, false).is_none());
        assert!(r.take(now, &two, false).is_some());
        let later = now + Duration::from_millis(900);
        assert!(r.take(later, &two, false).is_some(), "expiry pushed out");
        assert!(r
            .take(later + Duration::from_secs(2), &two, false)
            .is_none());
        assert!(r.is_empty());
        assert!(r.take(now, b"foo", false).is_none());
    }

    #[test]
    fn headers_are_set_and_replaced() {
        assert_eq!(
            set_header(None, "K", "v"),
            b"NATS/1.0\r\nK: v\r\n\r\n".to_vec()
        );
        assert_eq!(
            set_header(Some(b"NATS/1.0\r\nA: 1\r\nK: old\r\n\r\n"), "K", "v"),
            b"NATS/1.0\r\nA: 1\r\nK: v\r\n\r\n".to_vec()
        );
        assert_eq!(request_info_json("B", None), "{\"acc\":\"B\"}".to_string());
    }

    #[test]
    fn reserved_replies() {
        assert!(is_reserved_reply(b"_R_.x"));
        assert!(is_reserved_reply(b"$JS.ACK.a"));
        assert!(!is_reserved_reply(b"_INBOX.x"));
    }
}
