//! Routes on the io side: the dialer thread that connects to peers (and
//! retries), and the hooks through which the engine's cluster reaches the
//! reactors.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use natsd_engine::cluster::{Cluster, Dial, Hooks};
use natsd_engine::options::RouteUrl;

use crate::reactor::{Cmd, Kind, ReactorHandle};

/// nats-server's pause between attempts to connect a route.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed attempts between two error lines for the same route (the others
/// are debug lines), as nats-server's `reconnect_error_reports`.
const REPORT_EVERY: u32 = 60;

/// Install the cluster's hooks: wakes and client INFO go to the reactors,
/// dials to a dialer thread that hands connected sockets to the reactors.
pub(crate) fn start(cluster: &Arc<Cluster>, reactors: Arc<[ReactorHandle]>) -> std::io::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded::<Dial>();
    let dial_reactors = reactors.clone();
    let dial_cluster = cluster.clone();
    std::thread::Builder::new()
        .name("route-dialer".into())
        .spawn(move || dialer(&dial_cluster, &rx, &dial_reactors))?;
    let wake_reactors = reactors.clone();
    let info_reactors = reactors;
    cluster.set_hooks(Hooks {
        wake: Box::new(move |out| {
            if let Some(r) = wake_reactors.get(out.owner().reactor) {
                r.send(Cmd::Flush(vec![out.clone()]));
            }
        }),
        dial: dial_hook(tx),
        client_urls_changed: Box::new(move || {
            for r in info_reactors.iter() {
                r.send(Cmd::ClusterInfo);
            }
        }),
    });
    Ok(())
}

fn dial_hook(tx: Sender<Dial>) -> Box<dyn Fn(Dial) + Send + Sync> {
    Box::new(move |dial| {
        // The dialer only stops with the process.
        let _ = tx.send(dial);
    })
}

/// A dial waiting for its time.
struct Pending {
    dial: Dial,
    failures: u32,
}

/// Connect routes as they are asked for, one attempt at a time, retrying
/// explicit routes for ever and implicit ones `connect_retries` times.
fn dialer(cluster: &Cluster, rx: &crossbeam_channel::Receiver<Dial>, reactors: &[ReactorHandle]) {
    let mut next_reactor = 0usize;
    let mut seq = 0u64;
    let mut queue: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting: std::collections::HashMap<u64, Pending> = std::collections::HashMap::new();
    loop {
        let now = Instant::now();
        let wait = queue
            .peek()
            .map_or(Duration::from_secs(3600), |Reverse((t, _))| {
                t.saturating_duration_since(now)
            });
        match rx.recv_timeout(wait) {
            Ok(dial) => {
                let at = if dial.again { now + RETRY_DELAY } else { now };
                seq += 1;
                queue.push(Reverse((at, seq)));
                waiting.insert(seq, Pending { dial, failures: 0 });
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while let Some(&Reverse((t, id))) = queue.peek() {
            if t > now {
                break;
            }
            queue.pop();
            let Some(mut p) = waiting.remove(&id) else {
                continue;
            };
            match connect(&p.dial.url) {
                Ok((stream, peer)) => {
                    let n = next_reactor % reactors.len();
                    next_reactor = next_reactor.wrapping_add(1);
                    reactors[n].send(Cmd::Accept(
                        stream,
                        peer,
                        Kind::Route {
                            solicited: Some(p.dial.url),
                            implicit: p.dial.implicit,
                        },
                    ));
                }
                Err(e) => {
                    p.failures += 1;
                    let text = format!(
                        "Error trying to connect to route (attempt {}): {e}",
                        p.failures
                    );
                    if p.failures == 1 || p.failures.is_multiple_of(REPORT_EVERY) {
                        log::error!("{text}");
                    } else {
                        log::debug!("{text}");
                    }
                    let retries = cluster.options().connect_retries;
                    if p.dial.implicit && p.failures > retries {
                        log::debug!("Giving up on implicit route {}", p.dial.url);
                        cluster.dial_ended(&p.dial.url);
                        continue;
                    }
                    seq += 1;
                    queue.push(Reverse((Instant::now() + RETRY_DELAY, seq)));
                    waiting.insert(seq, p);
                }
            }
        }
    }
}

fn connect(url: &RouteUrl) -> std::io::Result<(mio::net::TcpStream, SocketAddr)> {
    let mut last = std::io::Error::other(format!("no address for {}", url.addr()));
    for addr in url.addr().to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                return Ok((mio::net::TcpStream::from_std(stream), addr));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
