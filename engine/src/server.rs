//! State shared by every connection of one server: options, identity,
//! accounts and counters.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, Guard};

use crate::accounts::{self, Responses, Routing, GLOBAL_ACCOUNT};
use crate::auth::Authenticator;
use crate::client::{ConnSnapshot, SubRef};
use crate::cluster::Cluster;
use crate::internal::Event;
use crate::mapping::Mappings;
use crate::options::Options;
use crate::sublist::Sublist;

/// The nats-server release whose client-visible features natsd implements.
/// Clients gate features on this; natsd's own version travels in INFO `natsd`.
///
/// 2.11.0, because every feature the official clients gate on a release up to
/// 2.11 works: the 2.9 consumer create API and direct gets, 2.9.4's
/// simplified consumers, 2.10's multiple filters, metadata, `first_seq`,
/// subject transforms, compression and consumer limits, 2.11's batch direct
/// gets and priority groups. The one exception, 2.10's subject transforms on
/// stream sources, fails with sources themselves, which natsd lacks whatever
/// it announces (clients gate them on no release: they date from 2.2). Not
/// 2.12: its API level 2 (counters, atomic batch publish, message schedules)
/// is missing, as is 2.14's consumer reset.
pub const COMPAT_VERSION: &str = "2.11.0";
/// The JetStream API level of [`COMPAT_VERSION`] (INFO `api_lvl`, `$JS.API.INFO`
/// `api.level`): 1 is 2.11's (per-message TTLs, consumer pause, priority groups).
pub const JS_API_LEVEL: u32 = 1;
/// natsd's own version.
pub const NATSD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Account ids: unique in the process, so per-reactor caches can tell
/// accounts apart.
static NEXT_ACCOUNT_ID: AtomicU64 = AtomicU64::new(1);

/// An account: an isolated subject namespace.
pub struct Account {
    /// Account name (`$G` for the global account).
    pub name: String,
    /// Who is subscribed to what in this account.
    pub sublist: Sublist<SubRef>,
    id: u64,
    /// Its exports and imports (empty for an account that takes part in
    /// none), replaced as a whole by a config reload.
    routing: ArcSwap<Routing>,
    /// Whether it takes part in any export or import: the publish path of
    /// an account that does not reads only this flag.
    routed: AtomicBool,
    /// Rewritten replies of requests that reached this account's services.
    responses: Responses,
    /// Its subject mappings, replaced as a whole by a config reload.
    mappings: ArcSwap<Mappings>,
    /// Whether it has any: the publish path of an account without reads
    /// only this flag.
    mapped: AtomicBool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("name", &self.name).finish()
    }
}

impl Account {
    /// An empty account.
    pub fn new(name: &str) -> Self {
        Self::with_key(name, [0; 16])
    }

    /// An empty account whose service reply subjects derive from `key`.
    pub fn with_key(name: &str, key: [u8; 16]) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::new(),
            id: NEXT_ACCOUNT_ID.fetch_add(1, Ordering::Relaxed),
            routing: ArcSwap::from_pointee(Routing::default()),
            routed: AtomicBool::new(false),
            responses: Responses::new(key),
            mappings: ArcSwap::from_pointee(Mappings::default()),
            mapped: AtomicBool::new(false),
        }
    }

    /// The subject a client's publish to `subject` goes to when one of the
    /// account's mappings applies.
    pub fn map_subject(&self, subject: &[u8]) -> Option<String> {
        if !self.mapped.load(Ordering::Acquire) {
            return None;
        }
        self.mappings
            .load()
            .select(std::str::from_utf8(subject).ok()?)
    }

    /// Replace its mappings.
    fn set_mappings(&self, mappings: Mappings) {
        self.mapped.store(!mappings.is_empty(), Ordering::Release);
        self.mappings.store(Arc::new(mappings));
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its export/import table, if it takes part in any. Hold the guard
    /// only for one publish.
    #[inline]
    pub fn routing(&self) -> Option<Guard<Arc<Routing>>> {
        self.routed
            .load(Ordering::Acquire)
            .then(|| self.routing.load())
    }

    /// Replace its export/import table (`None`: it takes part in none).
    fn set_routing(&self, routing: Option<Routing>) {
        let routed = routing.is_some();
        self.routing.store(Arc::new(routing.unwrap_or_default()));
        self.routed.store(routed, Ordering::Release);
    }

    /// Pending service responses (rewritten replies) in this account.
    pub fn responses(&self) -> &Responses {
        &self.responses
    }
}

/// Server-wide counters. Message counters live per connection and are
/// folded in here when a connection closes, so the publish path touches no
/// shared cache line.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients connected now.
    pub connections: AtomicUsize,
    /// Clients accepted since start.
    pub total_connections: AtomicU64,
    /// Clients closed as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Clients closed as stale (no PONG).
    pub stale_connections: AtomicU64,
    /// Messages received from closed connections (live ones keep their own).
    pub closed_in_msgs: AtomicU64,
    /// Payload bytes received from closed connections.
    pub closed_in_bytes: AtomicU64,
    /// Messages sent to closed connections.
    pub closed_out_msgs: AtomicU64,
    /// Payload bytes sent to closed connections.
    pub closed_out_bytes: AtomicU64,
}

/// JetStream totals over the JetStream-enabled accounts, refreshed by the
/// JetStream stage shortly after each change; read by `/jsz` and `/varz`.
#[derive(Debug, Default)]
pub struct JetStreamStats {
    /// Bytes in memory streams.
    pub memory: AtomicU64,
    /// Bytes in file streams.
    pub storage: AtomicU64,
    /// Accounts with JetStream.
    pub accounts: AtomicU64,
    /// Streams.
    pub streams: AtomicU64,
    /// Consumers of all streams.
    pub consumers: AtomicU64,
    /// Messages in all streams.
    pub messages: AtomicU64,
    /// Bytes in all streams.
    pub bytes: AtomicU64,
    /// `$JS.API` requests served.
    pub api_total: AtomicU64,
    /// `$JS.API` requests answered with an error.
    pub api_errors: AtomicU64,
}

/// One server's shared state.
pub struct Server {
    opts: ArcSwap<Options>,
    server_id: String,
    server_name: String,
    next_cid: AtomicU64,
    /// The global account `$G`.
    pub global: Arc<Account>,
    /// Every account by name, `$G` and the system account included. A
    /// reload stores a new map in which the accounts that stay are the
    /// same `Arc`s (their sublists, clients and internal clients live on).
    accounts: ArcSwap<HashMap<String, Arc<Account>>>,
    /// Counters.
    pub stats: ServerStats,
    /// JetStream figures for monitoring (kept by the JetStream stage).
    pub jetstream: JetStreamStats,
    next_sub_id: AtomicU64,
    /// The client port actually bound (`-p -1` binds a random one).
    client_port: AtomicU16,
    closed: Mutex<VecDeque<ConnSnapshot>>,
    auth: ArcSwap<Authenticator>,
    nonce_seed: [u8; 32],
    nonce_counter: AtomicU64,
    /// Where connection events go (the system stage), once io sets it.
    events: OnceLock<EventSink>,
    /// Routes to the other servers of the cluster, when `cluster {}` is on.
    cluster: Option<Arc<Cluster>>,
    /// The `host:port`s clients reach this server at (set by io once the
    /// listener is bound).
    client_urls: OnceLock<Vec<String>>,
}

/// Receives the server's [`Event`]s.
pub type EventSink = Box<dyn Fn(Event) + Send + Sync>;

impl Server {
    /// A server with these options. `seed` is 32 random bytes from the
    /// caller (engine reads no entropy itself): it makes the server id.
    pub fn new(opts: Options, seed: [u8; 32]) -> Self {
        // The id is public and the seed also keys the nonces, so the id
        // comes from a one-way hash of the seed, never the seed itself.
        let server_id = crate::nkey::encode_public(
            crate::nkey::PREFIX_SERVER,
            &crate::auth::derive_key(&seed, b"natsd server id v1"),
        );
        let server_name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| server_id.clone());
        let accounts = build_accounts(&opts, &seed, &HashMap::new());
        let cluster = opts.cluster.enabled().then(|| {
            let key = crate::auth::derive_key(&seed, b"natsd cluster name v1");
            let random: String = key.iter().take(11).map(|b| format!("{b:02X}")).collect();
            Arc::new(Cluster::new(
                opts.cluster.clone(),
                &server_id,
                &server_name,
                random,
            ))
        });
        let global = accounts
            .get(GLOBAL_ACCOUNT)
            .cloned()
            .unwrap_or_else(|| Arc::new(Account::new(GLOBAL_ACCOUNT)));
        Server {
            auth: ArcSwap::from_pointee(Authenticator::new(&opts)),
            opts: ArcSwap::from_pointee(opts),
            server_id,
            server_name,
            // nats-server's internal clients take the first ids; its first
            // client gets cid 4 on 2.9.10 (FEATURES.md, monitoring).
            next_cid: AtomicU64::new(4),
            global,
            accounts: ArcSwap::from_pointee(accounts),
            stats: ServerStats::default(),
            jetstream: JetStreamStats::default(),
            next_sub_id: AtomicU64::new(1),
            client_port: AtomicU16::new(0),
            closed: Mutex::new(VecDeque::new()),
            nonce_seed: seed,
            nonce_counter: AtomicU64::new(0),
            events: OnceLock::new(),
            cluster,
            client_urls: OnceLock::new(),
        }
    }

    /// Record where clients reach this server (once, by the driver).
    pub fn set_client_urls(&self, urls: Vec<String>) {
        let _ = self.client_urls.set(urls);
    }

    /// Where clients reach this server (`host:port` each).
    pub fn client_urls(&self) -> Vec<String> {
        self.client_urls.get().cloned().unwrap_or_default()
    }

    /// INFO `connect_urls` for clients: in a cluster, this server's and
    /// every peer's client URLs (unless `no_advertise`); empty otherwise.
    pub fn connect_urls(&self) -> Vec<String> {
        match &self.cluster {
            Some(cluster) if !cluster.options().no_advertise => {
                let mut urls = self.client_urls();
                for url in cluster.peer_client_urls() {
                    if !urls.contains(&url) {
                        urls.push(url);
                    }
                }
                urls
            }
            _ => Vec::new(),
        }
    }

    /// The cluster, when this server has routes configured.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The system account (`system_account`, default `$SYS`).
    pub fn system_account(&self) -> Arc<Account> {
        let opts = self.options();
        let name = opts
            .system_account
            .as_deref()
            .unwrap_or(accounts::SYSTEM_ACCOUNT);
        // build_accounts always creates it; a reload cannot rename it.
        self.accounts
            .load()
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.global.clone())
    }

    /// Send connection events to `sink` from now on (set once; later calls
    /// are ignored).
    pub fn set_event_sink(&self, sink: EventSink) {
        let _ = self.events.set(sink);
    }

    /// Whether anyone listens for events (saves building them otherwise).
    pub fn wants_events(&self) -> bool {
        self.events.get().is_some()
    }

    /// Hand `event` to the sink, if there is one.
    pub fn emit(&self, event: Event) {
        if let Some(sink) = self.events.get() {
            sink(event);
        }
    }

    /// The account named `name`.
    pub fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts.load().get(name).cloned()
    }

    /// Every account, sorted by name.
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut all: Vec<_> = self.accounts.load().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The options the server runs with now (a reload replaces them).
    pub fn options(&self) -> Arc<Options> {
        self.opts.load_full()
    }

    /// Apply reloaded options: refuses (and changes nothing) when a setting
    /// that cannot change while running differs, as nats-server refuses a
    /// reload that changes the listen port. On success returns the names of
    /// the settings that changed; live connections are re-checked by the
    /// caller (`ClientConn::reauthorize`).
    ///
    /// Accounts are applied as nats-server applies them: an account that
    /// stays keeps its state (the same [`Account`]), a new one starts
    /// empty, a removed one leaves the registry (its clients are closed by
    /// their re-check, their users being gone), and every account's
    /// export/import table is built again.
    pub fn reload(&self, new: Options) -> Result<Vec<&'static str>, String> {
        let old = self.options();
        let system = |o: &Options| {
            o.system_account
                .clone()
                .unwrap_or_else(|| accounts::SYSTEM_ACCOUNT.to_string())
        };
        let fixed: [(&str, bool); 7] = [
            ("host", old.host != new.host),
            ("port", old.port != new.port),
            ("server_name", old.server_name != new.server_name),
            ("http_port", old.http_port != new.http_port),
            ("store_dir", old.store_dir != new.store_dir),
            ("tls", old.tls != new.tls),
            ("system_account", system(&old) != system(&new)),
        ];
        if let Some((name, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "config reload not supported for {}",
                name.to_uppercase()
            ));
        }
        if let Some(name) = jetstream_change(&old, &new) {
            return Err(format!(
                "config reload not supported for JETSTREAM: account {name:?} would change whether it has JetStream"
            ));
        }
        let candidates: [(&'static str, bool); 17] = [
            (
                "authorization",
                old.user != new.user
                    || old.pass != new.pass
                    || old.token != new.token
                    || old.users != new.users
                    || old.nkeys != new.nkeys
                    || old.default_permissions != new.default_permissions
                    || old.no_auth_user != new.no_auth_user
                    || old.auth_timeout != new.auth_timeout,
            ),
            ("debug", old.debug != new.debug),
            ("trace", old.trace != new.trace),
            ("logtime", old.logtime != new.logtime),
            ("log_file", old.log_file != new.log_file),
            ("max_payload", old.max_payload != new.max_payload),
            (
                "max_control_line",
                old.max_control_line != new.max_control_line,
            ),
            ("max_pending", old.max_pending != new.max_pending),
            (
                "max_connections",
                old.max_connections != new.max_connections,
            ),
            (
                "max_subscriptions",
                old.max_subscriptions != new.max_subscriptions,
            ),
            ("ping_interval", old.ping_interval != new.ping_interval),
            ("ping_max", old.ping_max != new.ping_max),
            ("write_deadline", old.write_deadline != new.write_deadline),
            ("pid_file", old.pid_file != new.pid_file),
            ("accounts", old.accounts != new.accounts),
            ("mappings", old.mappings != new.mappings),
            (
                "tls",
                old.tls_cert != new.tls_cert
                    || old.tls_key != new.tls_key
                    || old.tls_ca_cert != new.tls_ca_cert
                    || old.tls_verify != new.tls_verify
                    || old.tls_map != new.tls_map
                    || old.tls_timeout != new.tls_timeout
                    || old.tls_min_version != new.tls_min_version
                    || old.tls_handshake_first != new.tls_handshake_first,
            ),
        ];
        let changed = candidates
            .iter()
            .filter(|(_, c)| *c)
            .map(|(n, _)| *n)
            .collect();
        // Accounts before the authenticator: a client that authenticates
        // into a new account must find it.
        self.accounts.store(Arc::new(build_accounts(
            &new,
            &self.nonce_seed,
            &self.accounts.load(),
        )));
        self.auth.store(Arc::new(Authenticator::new(&new)));
        self.opts.store(Arc::new(new));
        Ok(changed)
    }

    /// Server id (an nkey public key starting with `N`).
    pub fn id(&self) -> &str {
        &self.server_id
    }

    /// Server name (the id unless `server_name` is set).
    pub fn name(&self) -> &str {
        &self.server_name
    }

    /// Record the client port the listener bound (INFO `port`).
    pub fn set_client_port(&self, port: u16) {
        self.client_port.store(port, Ordering::Relaxed);
    }

    /// The client port clients see in INFO: the bound one once known.
    pub fn client_port(&self) -> u16 {
        match self.client_port.load(Ordering::Relaxed) {
            0 => self.options().port,
            p => p,
        }
    }

    /// A fresh client id.
    pub fn next_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh subscription key (unique across the server).
    pub fn next_sub_id(&self) -> u64 {
        self.next_sub_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Remember a closed connection for `/connz?state=closed` (a ring of
    /// `max_closed_clients`, oldest dropped first).
    pub fn record_closed(&self, snap: ConnSnapshot) {
        let cap = self.options().max_closed_clients;
        if cap == 0 {
            return;
        }
        let mut ring = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        while ring.len() >= cap {
            ring.pop_front();
        }
        ring.push_back(snap);
    }

    /// The remembered closed connections, oldest first.
    pub fn closed_connections(&self) -> Vec<ConnSnapshot> {
        let ring = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().cloned().collect()
    }

    /// The current authenticator (replaced on config reload).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.auth.load_full()
    }

    /// A fresh nonce for a connection's INFO (nkey challenge): 15
    /// base64url characters, as nats-server sends, derived from the secret
    /// `nonce_seed` and a counter so that no two connections get the same
    /// one and none can be predicted from the ones before.
    pub fn new_nonce(&self) -> String {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        crate::auth::derive_nonce(&self.nonce_seed, n)
    }
}

/// `$G`, the configured accounts and the system account, with their
/// export/import tables. An account already in `current` is kept (same
/// `Arc`, new table); one that is not starts empty; one of `current` that
/// is no longer configured loses its table, so a client still in it until
/// its re-check reaches no other account.
fn build_accounts(
    opts: &Options,
    seed: &[u8; 32],
    current: &HashMap<String, Arc<Account>>,
) -> HashMap<String, Arc<Account>> {
    let key = |name: &str| {
        let mut label = b"natsd account replies v1 ".to_vec();
        label.extend_from_slice(name.as_bytes());
        let k = crate::auth::derive_key(seed, &label);
        let mut out = [0u8; 16];
        out.copy_from_slice(&k[..16]);
        out
    };
    let mut names: Vec<&str> = vec![GLOBAL_ACCOUNT];
    names.extend(opts.accounts.iter().map(|a| a.name.as_str()));
    // nats-server always has a system account (`$SYS` unless configured).
    names.push(
        opts.system_account
            .as_deref()
            .unwrap_or(accounts::SYSTEM_ACCOUNT),
    );
    let map: HashMap<String, Arc<Account>> = names
        .into_iter()
        .map(|n| {
            let acc = current
                .get(n)
                .cloned()
                .unwrap_or_else(|| Arc::new(Account::with_key(n, key(n))));
            (n.to_string(), acc)
        })
        .collect();
    for (name, acc) in &map {
        let configs = if name == GLOBAL_ACCOUNT {
            &opts.mappings[..]
        } else {
            opts.accounts
                .iter()
                .find(|a| &a.name == name)
                .map_or(&[][..], |a| &a.mappings[..])
        };
        // Checked when the file was read; a failure here leaves none.
        acc.set_mappings(Mappings::new(configs).unwrap_or_default());
    }
    let mut routing = accounts::build_routing(&opts.accounts, &|n| map.get(n).cloned());
    for (name, acc) in &map {
        acc.set_routing(routing.remove(name));
    }
    for (name, acc) in current {
        if !map.contains_key(name) {
            acc.set_routing(None);
        }
    }
    map
}

/// The first account whose JetStream enablement differs between `old` and
/// `new`: the JetStream stage learns its accounts at start.
fn jetstream_change(old: &Options, new: &Options) -> Option<String> {
    let names = std::iter::once(GLOBAL_ACCOUNT)
        .chain(old.accounts.iter().map(|a| a.name.as_str()))
        .chain(new.accounts.iter().map(|a| a.name.as_str()));
    names
        .into_iter()
        .find(|n| crate::jetstream::enabled_for(old, n) != crate::jetstream::enabled_for(new, n))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &str) -> Options {
        let map = crate::conf::parse(text).expect("conf");
        let mut opts = Options::default();
        let report = opts.apply_conf(&map);
        assert!(report.is_ok(), "{text}: {report}");
        opts
    }

    const BEFORE: &str = r#"
accounts {
  A { users [{user: a, password: a}], exports [{stream: "ev.>"}, {service: "svc"}] }
  B { users [{user: b, password: b}] }
  GONE { users [{user: g, password: g}] }
}
"#;

    const AFTER: &str = r#"
accounts {
  A { users [{user: a, password: a}], exports [{stream: "ev.>"}, {service: "svc"}] }
  B {
    users [{user: b, password: b}]
    imports [{stream: {account: A, subject: "ev.>"}, prefix: in}, {service: {account: A, subject: svc}}]
  }
  NEW { users [{user: n, password: n}] }
}
"#;

    #[test]
    fn reload_keeps_staying_accounts_adds_new_ones_and_drops_removed_ones() {
        let server = Server::new(opts(BEFORE), [3; 32]);
        let a = server.account("A").expect("A");
        let b = server.account("B").expect("B");
        let gone = server.account("GONE").expect("GONE");
        let sys = server.system_account();
        let changed = server.reload(opts(AFTER)).expect("reload");
        assert!(changed.contains(&"accounts"), "{changed:?}");
        assert!(Arc::ptr_eq(&server.account("A").expect("A"), &a));
        assert!(Arc::ptr_eq(&server.account("B").expect("B"), &b));
        assert!(Arc::ptr_eq(&server.system_account(), &sys));
        assert!(Arc::ptr_eq(
            &server.account(GLOBAL_ACCOUNT).expect("$G"),
            &server.global
        ));
        assert!(server.account("GONE").is_none());
        let new = server.account("NEW").expect("NEW");
        assert!(new.id() != gone.id() && new.id() != a.id());
        let names: Vec<String> = server.accounts().iter().map(|a| a.name.clone()).collect();
        assert_eq!(names, ["$G", "$SYS", "A", "B", "NEW"]);
    }

    #[test]
    fn reload_rebuilds_every_routing_table_against_the_new_registry() {
        let server = Server::new(opts(BEFORE), [3; 32]);
        let a = server.account("A").expect("A");
        let b = server.account("B").expect("B");
        let exports = a.routing().expect("A exports a service");
        assert!(exports.exports_services && exports.streams.is_empty());
        assert!(b.routing().is_none());

        server.reload(opts(AFTER)).expect("reload");
        let exporter = a.routing().expect("A routes");
        let route = exporter.streams_for(b"ev.x").next().expect("stream route");
        assert!(Arc::ptr_eq(&route.importer.upgrade().expect("B alive"), &b));
        let importer = b.routing().expect("B routes");
        let service = importer.services_for(b"svc").next().expect("service route");
        assert!(Arc::ptr_eq(
            &service.exporter.upgrade().expect("A alive"),
            &a
        ));

        server.reload(opts(BEFORE)).expect("reload back");
        assert!(a.routing().expect("A exports").streams.is_empty());
        assert!(b.routing().is_none(), "imports removed");
    }

    #[test]
    fn removed_account_loses_its_routes() {
        let server = Server::new(opts(AFTER), [3; 32]);
        let b = server.account("B").expect("B");
        assert!(b.routing().is_some());
        server
            .reload(opts(
                r#"accounts { A { users [{user: a, password: a}], exports [{stream: "ev.>"}] } }"#,
            ))
            .expect("reload");
        assert!(server.account("B").is_none());
        assert!(b.routing().is_none(), "a removed account routes nowhere");
        let a = server.account("A").expect("A");
        assert!(a.routing().is_none(), "its only importer is gone");
    }

    #[test]
    fn reload_refuses_a_system_account_change() {
        let conf = "accounts { S { users [{user: s, password: s}] } }\n";
        let server = Server::new(opts(conf), [3; 32]);
        let err = server
            .reload(opts(&format!("{conf}system_account: S\n")))
            .expect_err("system account is fixed");
        assert_eq!(err, "config reload not supported for SYSTEM_ACCOUNT");
        assert_eq!(server.system_account().name, "$SYS");
        assert!(server.options().system_account.is_none(), "nothing changed");
        // Naming the default explicitly is no change.
        server
            .reload(opts(&format!("{conf}system_account: \"$SYS\"\n")))
            .expect("same system account");
    }

    #[test]
    fn reload_refuses_to_change_which_accounts_have_jetstream() {
        let dir = std::env::temp_dir().join("natsd-server-reload-js");
        let js = |accounts: &str| {
            opts(&format!(
                "jetstream {{ store_dir: {:?} }}\naccounts {{ {accounts} }}\n",
                dir.display().to_string()
            ))
        };
        let server = Server::new(js("A { jetstream: enabled }, B {}"), [3; 32]);
        let err = server
            .reload(js("A { jetstream: enabled }, B { jetstream: enabled }"))
            .expect_err("B would gain JetStream");
        assert!(err.contains("JETSTREAM") && err.contains("\"B\""), "{err}");
        assert!(server.account("C").is_none());
        // Accounts without JetStream may come and go.
        server
            .reload(js("A { jetstream: enabled }, C {}"))
            .expect("no JetStream change");
        assert!(server.account("C").is_some() && server.account("B").is_none());
    }
}
