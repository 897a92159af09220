//! The cluster: which routes this server has, what local interest it has
//! told them about, and the facts routes gossip (peers' route and client
//! URLs).
//!
//! Routes are connections like clients ([`crate::route::RouteConn`] is
//! their machine); this module is what they share. Local interest is
//! counted per account, subject and queue group: a plain subject is
//! announced (`RS+`) when its first local subscription appears and
//! withdrawn (`RS-`) when its last one goes; a queue group is announced
//! again with its new weight (its number of local members) at every
//! change. A route that registers gets the whole table first, under the
//! same lock as later changes, so no change falls between the two.
//!
//! The driver gives the cluster [`Hooks`]: how to wake the owner of an
//! outbound queue written from here, how to dial a route, and how to tell
//! clients that the cluster's client URLs changed.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::{Bytes, BytesMut};
use natsd_proto::route::{encode, QueueWeight, RemoteSub, RemoteUnsub, RouteInfo};

use crate::options::{ClusterOptions, RouteUrl};
use crate::outbound::Outbound;

/// Wakes the owner of an outbound queue.
pub type WakeHook = Box<dyn Fn(&Arc<Outbound>) + Send + Sync>;

/// What the driver does for the cluster.
pub struct Hooks {
    /// Wake the owner of an outbound queue that got bytes.
    pub wake: WakeHook,
    /// Connect to a route (a new attempt; the driver retries as [`Dial`]
    /// says).
    pub dial: Box<dyn Fn(Dial) + Send + Sync>,
    /// The client URLs of the cluster changed: send clients a new INFO.
    pub client_urls_changed: Box<dyn Fn() + Send + Sync>,
}

/// A route to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Where.
    pub url: RouteUrl,
    /// Learned from a peer (gossip), not configured: retried only
    /// `connect_retries` times.
    pub implicit: bool,
    /// A route to it just closed: wait a moment before the first attempt.
    pub again: bool,
}

/// A registered route, as the cluster keeps it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The route connection's id.
    pub cid: u64,
    /// Its outbound queue.
    pub out: Arc<Outbound>,
    /// The peer's server name.
    pub name: String,
    /// The peer's route URL (INFO `ip`), passed on to other peers.
    pub route_url: String,
    /// The peer's client URLs (INFO `connect_urls`).
    pub client_urls: Vec<String>,
    /// The URL this server dialed, for a solicited route.
    pub solicited: Option<RouteUrl>,
    /// A duplicate of this route was refused: should this one close too
    /// (the peer refused this one as its duplicate), dial the peer again,
    /// so the pair does not end up with no route at all.
    pub retry: bool,
}

/// Why a route could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// There is already a route to that server.
    Duplicate,
}

type Interest = HashMap<(Bytes, Option<Bytes>), u32>;

#[derive(Default)]
struct State {
    routes: HashMap<String, Peer>,
    /// Account name → (subject, queue) → local subscriptions.
    local: HashMap<String, Interest>,
    /// Route URLs being dialed or connected (solicited), so gossip does
    /// not dial them twice.
    dialing: HashSet<RouteUrl>,
}

/// The cluster state of one server.
pub struct Cluster {
    opts: ClusterOptions,
    server_id: String,
    server_name: String,
    name: Mutex<String>,
    dynamic: AtomicBool,
    /// `nats-route://host:port/`: what peers are told to dial.
    route_url: OnceLock<String>,
    state: Mutex<State>,
    hooks: OnceLock<Hooks>,
}

impl Cluster {
    /// The cluster of server `server_id`; `random_name` is used when the
    /// options give no name (nats-server's dynamic cluster name).
    pub fn new(
        opts: ClusterOptions,
        server_id: &str,
        server_name: &str,
        random_name: String,
    ) -> Self {
        let dynamic = opts.name.is_none();
        Cluster {
            name: Mutex::new(opts.name.clone().unwrap_or(random_name)),
            dynamic: AtomicBool::new(dynamic),
            opts,
            server_id: server_id.to_string(),
            server_name: server_name.to_string(),
            route_url: OnceLock::new(),
            state: Mutex::new(State::default()),
            hooks: OnceLock::new(),
        }
    }

    /// The cluster options the server started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Install the driver's hooks (once).
    pub fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
    }

    /// Set the URL peers dial (once the route listener is bound).
    pub fn set_route_url(&self, host: &str, port: u16) {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let _ = self.route_url.set(format!("nats-route://{host}:{port}/"));
    }

    /// The bound route port, once known.
    pub fn port(&self) -> Option<u16> {
        self.route_url.get().map(|u| url_port(u))
    }

    /// The cluster's name.
    pub fn name(&self) -> String {
        lock(&self.name).clone()
    }

    /// Whether the name was generated (no `cluster { name }`), so a peer's
    /// configured name may replace it.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic.load(Ordering::Relaxed)
    }

    /// A peer with a configured name joined a cluster whose name was
    /// generated here: adopt it, as nats-server does. False when the
    /// names conflict (both configured, or ours configured).
    pub fn reconcile_name(&self, theirs: &str, their_dynamic: bool) -> bool {
        let mut name = lock(&self.name);
        if *name == theirs {
            return true;
        }
        // A configured name wins over a generated one; of two generated
        // names the greater one wins (the other side adopts it).
        if self.dynamic.load(Ordering::Relaxed) && (!their_dynamic || name.as_str() < theirs) {
            *name = theirs.to_string();
            if !their_dynamic {
                self.dynamic.store(false, Ordering::Relaxed);
            }
            return true;
        }
        false
    }

    /// The route INFO this server sends.
    pub fn info(&self, headers: bool, max_payload: i32, client_urls: Vec<String>) -> RouteInfo {
        RouteInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name.clone(),
            version: crate::server::COMPAT_VERSION.to_string(),
            proto: 3,
            go: "go1.24".into(),
            host: self.opts.host.clone(),
            port: self.route_url.get().map_or(0, |u| url_port(u)),
            headers,
            auth_required: self.opts.user.is_some(),
            max_payload,
            // As nats-server: only an advertised address is sent; peers
            // take the address a route comes from otherwise.
            ip: if self.opts.advertise.is_some() {
                self.route_url.get().cloned().unwrap_or_default()
            } else {
                String::new()
            },
            cluster: self.name(),
            cluster_dynamic: self.is_dynamic(),
            connect_urls: if self.opts.no_advertise {
                Vec::new()
            } else {
                client_urls
            },
            compression: "off".into(),
            lnoc: true,
            lnocu: true,
            ..RouteInfo::default()
        }
    }

    /// The routes this server has now, by remote server id.
    pub fn peers(&self) -> Vec<(String, Peer)> {
        let state = lock(&self.state);
        let mut peers: Vec<_> = state
            .routes
            .iter()
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        peers.sort_by_key(|(_, p)| p.cid);
        peers
    }

    /// Whether a route to server `id` is registered.
    pub fn has_route(&self, id: &str) -> bool {
        lock(&self.state).routes.contains_key(id)
    }

    /// The other servers' client URLs (for client INFO `connect_urls`),
    /// unless `no_advertise`.
    pub fn peer_client_urls(&self) -> Vec<String> {
        if self.opts.no_advertise {
            return Vec::new();
        }
        let state = lock(&self.state);
        let mut urls: Vec<String> = state
            .routes
            .values()
            .flat_map(|p| p.client_urls.iter().cloned())
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// Dial every configured route (at start).
    pub fn solicit_configured(&self) {
        for url in self.opts.routes.clone() {
            self.dial(url, false);
        }
    }

    /// Ask the driver to connect to `url` unless it is already being
    /// dialed or connected.
    pub fn dial(&self, url: RouteUrl, implicit: bool) {
        if !lock(&self.state).dialing.insert(url.clone()) {
            return;
        }
        if let Some(hooks) = self.hooks.get() {
            (hooks.dial)(Dial {
                url,
                implicit,
                again: false,
            });
        }
    }

    /// A solicited route to `url` closed: dial it again after a pause (it
    /// stays in the dialing set).
    pub fn redial(&self, url: RouteUrl, implicit: bool) {
        if let Some(hooks) = self.hooks.get() {
            (hooks.dial)(Dial {
                url,
                implicit,
                again: true,
            });
        }
    }

    /// A dial of `url` ended for good (given up, or its route closed and
    /// will not be retried): gossip may dial it again.
    pub fn dial_ended(&self, url: &RouteUrl) {
        lock(&self.state).dialing.remove(url);
    }

    /// A peer's INFO named another server (gossip): dial it if this server
    /// has no route to it.
    pub fn learned(&self, info: &RouteInfo) {
        if info.server_id == self.server_id || info.ip.is_empty() || self.has_route(&info.server_id)
        {
            return;
        }
        match RouteUrl::parse(&info.ip) {
            Ok(url) => self.dial(url, true),
            Err(e) => log::debug!("Ignoring gossiped route {:?}: {e}", info.ip),
        }
    }

    /// Register a route to server `id`: it gets the whole local interest,
    /// the other routes hear about it (so they connect to it too), and
    /// clients learn its client URLs. `Err` for a second route to the same
    /// server.
    pub fn register(&self, id: &str, peer: Peer, gossip: &RouteInfo) -> Result<(), RegisterError> {
        let mut wakes = Vec::new();
        let urls_changed = {
            let mut state = lock(&self.state);
            if let Some(existing) = state.routes.get_mut(id) {
                existing.retry = true;
                return Err(RegisterError::Duplicate);
            }
            let mut buf = BytesMut::new();
            for (account, interest) in &state.local {
                for ((subject, queue), &n) in interest {
                    encode::rs_sub(&mut buf, &remote_sub(account, subject, queue.as_ref(), n));
                }
            }
            push(&peer.out, &buf, &mut wakes);
            let mut info = BytesMut::new();
            encode::info(&mut info, &gossip.to_json());
            for other in state.routes.values() {
                push(&other.out, &info, &mut wakes);
            }
            let changed = !peer.client_urls.is_empty();
            state.routes.insert(id.to_string(), peer);
            changed
        };
        self.wake_all(&wakes);
        if urls_changed && !self.opts.no_advertise {
            if let Some(hooks) = self.hooks.get() {
                (hooks.client_urls_changed)();
            }
        }
        Ok(())
    }

    /// A registered route closed: forget it (only if `cid` is the route
    /// registered for `id`). Returns the URL to dial again, for a
    /// solicited route.
    pub fn unregister(&self, id: &str, cid: u64) -> Option<Peer> {
        let removed = {
            let mut state = lock(&self.state);
            match state.routes.get(id) {
                Some(p) if p.cid == cid => state.routes.remove(id),
                _ => None,
            }
        };
        if removed.as_ref().is_some_and(|p| !p.client_urls.is_empty()) && !self.opts.no_advertise {
            if let Some(hooks) = self.hooks.get() {
                (hooks.client_urls_changed)();
            }
        }
        removed
    }

    /// A registered peer sent a new INFO: keep its client URLs.
    pub fn update_client_urls(&self, id: &str, cid: u64, urls: Vec<String>) {
        let changed = {
            let mut state = lock(&self.state);
            match state.routes.get_mut(id) {
                Some(p) if p.cid == cid && p.client_urls != urls => {
                    p.client_urls = urls;
                    true
                }
                _ => false,
            }
        };
        if changed && !self.opts.no_advertise {
            if let Some(hooks) = self.hooks.get() {
                (hooks.client_urls_changed)();
            }
        }
    }

    /// One local subscription of `account` to `subject` (queue `queue`)
    /// was added (`added`) or removed: tell the routes when the interest
    /// they know changes.
    pub fn local_interest(
        &self,
        account: &str,
        subject: &Bytes,
        queue: Option<&Bytes>,
        added: bool,
    ) {
        self.local_interests(account, std::iter::once((subject, queue)), added);
    }

    /// [`local_interest`](Self::local_interest) for many subscriptions of
    /// one account (a closing connection's): one lock, and one write per
    /// route for all the announcements.
    pub fn local_interests<'a>(
        &self,
        account: &str,
        subs: impl IntoIterator<Item = (&'a Bytes, Option<&'a Bytes>)>,
        added: bool,
    ) {
        let mut wakes = Vec::new();
        {
            let mut state = lock(&self.state);
            if !state.local.contains_key(account) {
                state.local.insert(account.to_string(), Interest::default());
            }
            let mut buf = BytesMut::new();
            let interest = state.local.get_mut(account).expect("inserted above");
            for (subject, queue) in subs {
                let key = (subject.clone(), queue.cloned());
                let before = interest.get(&key).copied().unwrap_or(0);
                if before == 0 && !added {
                    continue;
                }
                let n = if added { before + 1 } else { before - 1 };
                if n == 0 {
                    interest.remove(&key);
                } else {
                    interest.insert(key, n);
                }
                // A plain subject is announced on its first subscriber and
                // withdrawn after its last; a queue group at every change.
                if queue.is_none() && n > 1 || queue.is_none() && n == 1 && !added {
                    continue;
                }
                if n == 0 {
                    encode::rs_unsub(
                        &mut buf,
                        &RemoteUnsub {
                            account: Some(account.as_bytes()),
                            subject: &subject[..],
                            queue: queue.map(|q| &q[..]),
                        },
                    );
                } else {
                    encode::rs_sub(&mut buf, &remote_sub(account, subject, queue, n));
                }
            }
            if interest.is_empty() {
                state.local.remove(account);
            }
            for peer in state.routes.values() {
                push(&peer.out, &buf, &mut wakes);
            }
        }
        self.wake_all(&wakes);
    }

    /// How many routes are registered.
    pub fn route_count(&self) -> usize {
        lock(&self.state).routes.len()
    }

    fn wake_all(&self, wakes: &[Arc<Outbound>]) {
        if let Some(hooks) = self.hooks.get() {
            for out in wakes {
                (hooks.wake)(out);
            }
        }
    }

    /// The server's own id.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }
}

fn remote_sub<'a>(
    account: &'a str,
    subject: &'a Bytes,
    queue: Option<&'a Bytes>,
    n: u32,
) -> RemoteSub<&'a [u8]> {
    RemoteSub {
        account: Some(account.as_bytes()),
        subject: &subject[..],
        queue: queue.map(|q| QueueWeight {
            name: &q[..],
            weight: n,
        }),
    }
}

fn push(out: &Arc<Outbound>, bytes: &[u8], wakes: &mut Vec<Arc<Outbound>>) {
    if bytes.is_empty() {
        return;
    }
    let pushed = out.push_with(bytes.len(), 0, 0, |b| b.extend_from_slice(bytes));
    if matches!(
        pushed,
        crate::outbound::Pushed::Wake { .. } | crate::outbound::Pushed::SlowConsumer
    ) {
        wakes.push(out.clone());
    }
}

fn url_port(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Owner;

    fn cluster() -> Cluster {
        Cluster::new(ClusterOptions::default(), "S1", "n1", "rand".into())
    }

    fn peer(cid: u64) -> Peer {
        Peer {
            cid,
            out: Outbound::new(
                cid,
                Owner {
                    reactor: 0,
                    slot: cid as usize,
                },
                1 << 20,
            ),
            name: format!("p{cid}"),
            route_url: String::new(),
            client_urls: vec![format!("127.0.0.1:{cid}")],
            solicited: None,
            retry: false,
        }
    }

    fn drain(out: &Outbound) -> String {
        let mut buf = BytesMut::new();
        let _ = out.take(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn plain_interest_is_announced_on_first_and_withdrawn_on_last() {
        let c = cluster();
        let p = peer(7);
        c.register("S2", p.clone(), &RouteInfo::default()).unwrap();
        let foo = Bytes::from_static(b"foo");
        c.local_interest("$G", &foo, None, true);
        c.local_interest("$G", &foo, None, true);
        c.local_interest("$G", &foo, None, false);
        assert_eq!(drain(&p.out), "RS+ $G foo\r\n");
        c.local_interest("$G", &foo, None, false);
        assert_eq!(drain(&p.out), "RS- $G foo\r\n");
    }

    #[test]
    fn queue_weight_follows_members_and_a_new_route_gets_the_table() {
        let c = cluster();
        let foo = Bytes::from_static(b"foo");
        let q = Bytes::from_static(b"q");
        c.local_interest("A", &foo, Some(&q), true);
        c.local_interest("A", &foo, Some(&q), true);
        let first = peer(1);
        c.register("S2", first.clone(), &RouteInfo::default())
            .unwrap();
        assert_eq!(drain(&first.out), "RS+ A foo q 2\r\n");
        c.local_interest("A", &foo, Some(&q), false);
        assert_eq!(drain(&first.out), "RS+ A foo q 1\r\n");
        c.local_interest("A", &foo, Some(&q), false);
        assert_eq!(drain(&first.out), "RS- A foo q\r\n");
    }

    #[test]
    fn a_second_route_to_one_server_is_refused_and_others_hear_of_a_new_one() {
        let c = cluster();
        let a = peer(1);
        c.register("S2", a.clone(), &RouteInfo::default()).unwrap();
        assert_eq!(
            c.register("S2", peer(2), &RouteInfo::default()),
            Err(RegisterError::Duplicate)
        );
        let gossip = RouteInfo {
            server_id: "S3".into(),
            ip: "nats-route://127.0.0.1:3/".into(),
            ..RouteInfo::default()
        };
        c.register("S3", peer(3), &gossip).unwrap();
        assert!(drain(&a.out).starts_with("INFO {\"server_id\":\"S3\""));
        assert_eq!(c.peer_client_urls(), ["127.0.0.1:1", "127.0.0.1:3"]);
        assert!(c.unregister("S2", 2).is_none(), "not the registered route");
        assert!(c.unregister("S2", 1).is_some());
        assert!(!c.has_route("S2"));
    }

    #[test]
    fn generated_names_give_way_to_configured_ones() {
        let c = cluster();
        assert!(c.is_dynamic());
        assert!(c.reconcile_name("prod", false));
        assert_eq!(c.name(), "prod");
        assert!(!c.is_dynamic());
        assert!(!c.reconcile_name("other", false));
    }
}
