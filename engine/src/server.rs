//! State shared by every connection of one server: options, identity,
//! accounts and counters.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::auth::Authenticator;
use crate::client::{ConnSnapshot, SubRef};
use crate::options::Options;
use crate::sublist::Sublist;

/// The nats-server release whose client-visible features natsd implements.
/// Clients gate features on this; natsd's own version travels in INFO `natsd`.
pub const COMPAT_VERSION: &str = "2.9.0";
/// natsd's own version.
pub const NATSD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An account: an isolated subject namespace.
pub struct Account {
    /// Account name (`$G` for the global account).
    pub name: String,
    /// Who is subscribed to what in this account.
    pub sublist: Sublist<SubRef>,
}

impl Account {
    /// An empty account.
    pub fn new(name: &str) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::new(),
        }
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

/// One server's shared state.
pub struct Server {
    opts: Options,
    server_id: String,
    server_name: String,
    next_cid: AtomicU64,
    /// The global account `$G`.
    pub global: Arc<Account>,
    /// Counters.
    pub stats: ServerStats,
    next_sub_id: AtomicU64,
    closed: Mutex<VecDeque<ConnSnapshot>>,
    auth: ArcSwap<Authenticator>,
    nonce_seed: [u8; 32],
    nonce_counter: AtomicU64,
}

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
        Server {
            auth: ArcSwap::from_pointee(Authenticator::new(&opts)),
            opts,
            server_id,
            server_name,
            // nats-server's internal clients take the first ids; its first
            // client gets cid 4 on 2.9.10 (FEATURES.md, monitoring).
            next_cid: AtomicU64::new(4),
            global: Arc::new(Account::new("$G")),
            stats: ServerStats::default(),
            next_sub_id: AtomicU64::new(1),
            closed: Mutex::new(VecDeque::new()),
            nonce_seed: seed,
            nonce_counter: AtomicU64::new(0),
        }
    }

    /// The options the server runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Server id (an nkey public key starting with `N`).
    pub fn id(&self) -> &str {
        &self.server_id
    }

    /// Server name (the id unless `server_name` is set).
    pub fn name(&self) -> &str {
        &self.server_name
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
        let cap = self.opts.max_closed_clients;
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
