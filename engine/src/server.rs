//! State shared by every connection of one server: options, identity,
//! accounts and counters.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;

use crate::accounts::{self, Responses, Routing, GLOBAL_ACCOUNT};
use crate::auth::Authenticator;
use crate::client::{ConnSnapshot, SubRef};
use crate::internal::Event;
use crate::options::Options;
use crate::sublist::Sublist;

/// The nats-server release whose client-visible features natsd implements.
/// Clients gate features on this; natsd's own version travels in INFO `natsd`.
pub const COMPAT_VERSION: &str = "2.9.0";
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
    /// Its exports and imports, set once when the server is built; unset
    /// for an account that takes part in none (the publish path checks
    /// only this).
    routing: OnceLock<Routing>,
    /// Rewritten replies of requests that reached this account's services.
    responses: Responses,
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
            routing: OnceLock::new(),
            responses: Responses::new(key),
        }
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its export/import table, if it takes part in any.
    #[inline]
    pub fn routing(&self) -> Option<&Routing> {
        self.routing.get()
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
    /// Every account by name, `$G` included.
    accounts: HashMap<String, Arc<Account>>,
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
        let accounts = build_accounts(&opts, &seed);
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
            accounts,
            stats: ServerStats::default(),
            jetstream: JetStreamStats::default(),
            next_sub_id: AtomicU64::new(1),
            client_port: AtomicU16::new(0),
            closed: Mutex::new(VecDeque::new()),
            nonce_seed: seed,
            nonce_counter: AtomicU64::new(0),
            events: OnceLock::new(),
        }
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
    pub fn account(&self, name: &str) -> Option<&Arc<Account>> {
        self.accounts.get(name)
    }

    /// Every account, sorted by name.
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut all: Vec<_> = self.accounts.values().cloned().collect();
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
    pub fn reload(&self, new: Options) -> Result<Vec<&'static str>, String> {
        let old = self.options();
        let fixed: [(&str, bool); 6] = [
            ("host", old.host != new.host),
            ("port", old.port != new.port),
            ("server_name", old.server_name != new.server_name),
            ("http_port", old.http_port != new.http_port),
            ("store_dir", old.store_dir != new.store_dir),
            ("tls", old.tls != new.tls),
        ];
        if let Some((name, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "config reload not supported for {}",
                name.to_uppercase()
            ));
        }
        let candidates: [(&'static str, bool); 15] = [
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
/// export/import tables.
fn build_accounts(opts: &Options, seed: &[u8; 32]) -> HashMap<String, Arc<Account>> {
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
        .map(|n| (n.to_string(), Arc::new(Account::with_key(n, key(n)))))
        .collect();
    let routing = accounts::build_routing(&opts.accounts, &|n| map.get(n).cloned());
    for (name, table) in routing {
        if let Some(acc) = map.get(&name) {
            // Each account is new here: its table cannot be set yet.
            let _ = acc.routing.set(table);
        }
    }
    map
}
