//! natsd's reactors: the only crate with sockets and threads.
//!
//! [`run`] binds the client listener, starts one reactor thread per core
//! (or `Options::reactors`) and accepts on the calling thread, handing each
//! new connection to a reactor round-robin. A reactor owns its connections
//! for their whole life: it reads, drives the engine's `ClientConn`, and
//! writes the connection's outbound queue. Publishes on one reactor wake the
//! reactors owning the receivers once per poll turn, not once per message.
//!
//! SIGINT and SIGTERM stop the server gracefully: stop accepting, flush and
//! close every client, exit.
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use natsd_engine::client::ConnSnapshot;
use natsd_engine::internal::{Event, Service};
use natsd_engine::options::Options;
use natsd_engine::server::{Server, COMPAT_VERSION, NATSD_VERSION};
use natsd_engine::sys::SysService;

mod cluster;
mod http;
mod listen;
mod reactor;
mod stage;
mod tls;

use reactor::{Cmd, Kind, ReactorHandle};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const ROUTE_LISTENER: Token = Token(2);

/// What other threads (monitoring) use to look at a running server.
#[derive(Clone)]
pub struct ServerHandle {
    server: Arc<Server>,
    reactors: Arc<[ReactorHandle]>,
    /// The stages by thread name, once they are built.
    stages: Arc<OnceLock<Vec<(&'static str, ReactorHandle)>>>,
}

impl ServerHandle {
    fn new(server: Arc<Server>, reactors: Arc<[ReactorHandle]>) -> Self {
        ServerHandle {
            server,
            reactors,
            stages: Arc::new(OnceLock::new()),
        }
    }

    /// Each reactor's connections and inbox, each stage's inbox and
    /// handled deliveries (natsd's `/varz` figures).
    pub fn load(&self) -> natsd_engine::monitor::Load {
        use natsd_engine::monitor::{ReactorLoad, StageLoad};
        use std::sync::atomic::Ordering::Relaxed;
        natsd_engine::monitor::Load {
            reactors: self
                .reactors
                .iter()
                .enumerate()
                .map(|(id, r)| ReactorLoad {
                    id,
                    connections: r.load().connections.load(Relaxed),
                    inbox: r.inbox(),
                })
                .collect(),
            stages: self
                .stages
                .get()
                .into_iter()
                .flatten()
                .map(|(name, h)| StageLoad {
                    name: (*name).to_string(),
                    inbox: h.inbox(),
                    handled: h.load().handled.load(Relaxed),
                })
                .collect(),
        }
    }

    /// The shared server state.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// A snapshot of every live connection, gathered from each reactor
    /// (waits at most `timeout` per reactor; a busy reactor's connections
    /// are left out rather than blocking the caller).
    pub fn connections(&self, timeout: Duration) -> Vec<ConnSnapshot> {
        let mut all = Vec::new();
        let replies: Vec<_> = self
            .reactors
            .iter()
            .map(|r| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                r.send(Cmd::Snapshot(tx));
                rx
            })
            .collect();
        for rx in replies {
            if let Ok(mut snaps) = rx.recv_timeout(timeout) {
                all.append(&mut snaps);
            }
        }
        all
    }

    /// A snapshot of every route, gathered as [`connections`](Self::connections).
    pub fn routes(&self, timeout: Duration) -> Vec<natsd_engine::route::RouteSnapshot> {
        let replies: Vec<_> = self
            .reactors
            .iter()
            .map(|r| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                r.send(Cmd::Routes(tx));
                rx
            })
            .collect();
        replies
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(timeout).ok())
            .flatten()
            .collect()
    }
}

/// A hook that acts on the options in force and may fail with a message.
pub type OptionsHook = Box<dyn Fn(&Options) -> Result<(), String> + Send>;

/// What the caller supplies so signals can act on what io does not own:
/// the configuration sources and the log file.
pub struct Hooks {
    /// SIGHUP: build the options again (config file, then command-line
    /// overrides) for a reload.
    pub reload: Box<dyn Fn() -> Result<Options, String> + Send>,
    /// SIGUSR1: reopen the log file (after log rotation), with the options
    /// in force.
    pub reopen_log: OptionsHook,
    /// After a successful reload: apply the new options to logging.
    pub apply_log_options: Box<dyn Fn(&Options) + Send>,
}

/// A signal, as the acceptor acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGINT / SIGTERM: graceful stop.
    Stop,
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGUSR1: reopen the log file.
    Reopen,
    /// SIGUSR2: lame-duck mode.
    LameDuck,
}

/// Run a server with these options until it is told to stop (SIGINT/SIGTERM,
/// or the end of lame-duck mode).
pub fn run(opts: Options, hooks: Hooks) -> io::Result<()> {
    // Monitoring turns connection Instants into wall times relative to now;
    // `started` is the server's start for `/varz`.
    let started = std::time::Instant::now();
    let started_wall = std::time::SystemTime::now();
    // Certificates are read once, before anything listens: a bad file stops
    // the server at start, as in nats-server.
    let tls_config = tls::server_config(&opts)?;
    let server = Arc::new(Server::new(opts, random_seed()));
    let opts = server.options();
    log::info!("Starting nats-server");
    log::info!("  Version:  {COMPAT_VERSION} (natsd {NATSD_VERSION})");
    log::info!("  Git:      [not set]");
    log::info!("  Name:     {}", server.name());
    log::info!("  ID:       {}", server.id());
    if let Some(file) = &opts.config_file {
        log::info!("Using configuration file: {}", file.display());
    }

    let std_listener = listen::bind(&opts.host, opts.port)
        .map_err(|e| io::Error::new(e.kind(), format!("Error listening on port: {e}")))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    server.set_client_port(local.port());
    server.set_client_urls(listen::connect_urls(
        opts.client_advertise.as_deref(),
        local,
    ));
    let mut listener = Some(TcpListener::from_std(std_listener));

    let reactors = match opts.reactors {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut handles = Vec::with_capacity(reactors);
    let mut built = Vec::with_capacity(reactors);
    for id in 0..reactors {
        let (r, h) = reactor::Reactor::new(id, server.clone(), tls_config.clone())?;
        handles.push(h);
        built.push(r);
    }
    let reactor_handles: Arc<[ReactorHandle]> = handles.clone().into();
    let server_handle = ServerHandle::new(server.clone(), reactor_handles);
    // Stages come after the reactors in the wake table: a delivery to an
    // internal client wakes its stage exactly as it would wake a reactor.
    let mut stages = Vec::new();
    let mut stage_handles = Vec::new();
    for (k, (name, service)) in services(&server_handle, started)?.into_iter().enumerate() {
        let (stage, handle) = stage::Stage::new(reactors + k, server.clone(), service);
        if name == SYS_STAGE {
            let sink = handle.clone();
            server.set_event_sink(Box::new(move |ev| sink.send(Cmd::Event(Box::new(ev)))));
        }
        stage_handles.push((name, handle.clone()));
        handles.push(handle);
        stages.push((name, stage));
    }
    // Set once, here; nothing else sets it.
    let _ = server_handle.stages.set(stage_handles);
    let handles: Arc<[ReactorHandle]> = handles.into();
    let mut threads = Vec::with_capacity(reactors + stages.len());
    for r in built {
        let peers = handles.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("reactor-{}", r.id()))
                .spawn(move || r.run(peers))?,
        );
    }
    for (name, stage) in stages {
        let peers = handles.clone();
        threads.push(
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || stage.run(peers))?,
        );
    }

    let mut poll = Poll::new()?;
    poll.registry().register(
        listener.as_mut().ok_or(io::ErrorKind::NotFound)?,
        LISTENER,
        Interest::READABLE,
    )?;
    let mut route_listener = match server.cluster() {
        Some(cluster) => {
            let mut l = route_listener(cluster)?;
            poll.registry()
                .register(&mut l, ROUTE_LISTENER, Interest::READABLE)?;
            cluster::start(cluster, handles[..reactors].into())?;
            Some(l)
        }
        None => None,
    };
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (sig_tx, sig_rx) = crossbeam_channel::unbounded();
    spawn_signal_thread(sig_tx, waker.clone())?;

    // nats-server starts the monitor before it logs the client listener.
    let monitor = http::start(server_handle.clone(), local.port(), started, started_wall)?;
    log::info!(
        "Listening for client connections on {}",
        listen::join_host_port(&opts.host, local.port())
    );
    let ports_file = opts.ports_file_dir.as_deref().and_then(|dir| {
        let ports = listen::Ports {
            client: (local, opts.tls),
            monitoring: monitor.map(|addr| (addr, opts.http_port == 0)),
        };
        listen::write_ports_file(dir, &ports)
    });
    log::info!("Server is ready");
    if let Some(cluster) = server.cluster() {
        cluster.solicit_configured();
    }

    let mut events = Events::with_capacity(64);
    let mut next = 0usize;
    let mut lame_duck_end: Option<Instant> = None;
    'serve: loop {
        let timeout = lame_duck_end.map(|end| end.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if lame_duck_end.is_some_and(|end| Instant::now() >= end) {
            break 'serve;
        }
        while let Ok(signal) = sig_rx.try_recv() {
            match signal {
                // nats-server ignores SIGTERM while in lame-duck mode; it
                // ends by itself.
                Signal::Stop if lame_duck_end.is_some() => {}
                Signal::Stop => break 'serve,
                Signal::Reload => reload(&server, &hooks, &handles),
                Signal::Reopen => match (hooks.reopen_log)(&server.options()) {
                    Ok(()) => log::info!("File log re-opened"),
                    Err(e) => log::error!("Could not re-open the log file: {e}"),
                },
                Signal::LameDuck if lame_duck_end.is_some() => {}
                Signal::LameDuck => {
                    // Stop accepting: new clients are refused, not queued.
                    if let Some(mut l) = listener.take() {
                        let _ = poll.registry().deregister(&mut l);
                    }
                    let opts = server.options();
                    let now = Instant::now();
                    let grace_end = now + opts.lame_duck_grace_period;
                    let end = grace_end + opts.lame_duck_duration;
                    log::info!("Entering lame duck mode, stop accepting new clients");
                    server.emit(Event::LameDuck);
                    for h in handles.iter() {
                        h.send(Cmd::LameDuck { grace_end, end });
                    }
                    // A little slack so the last scheduled closes run first.
                    lame_duck_end = Some(end + Duration::from_millis(200));
                }
            }
        }
        for ev in events.iter() {
            let (l, kind) = match ev.token() {
                LISTENER => (listener.as_ref(), Kind::Client),
                ROUTE_LISTENER => (
                    route_listener.as_ref(),
                    Kind::Route {
                        solicited: None,
                        implicit: false,
                    },
                ),
                _ => continue,
            };
            let Some(l) = l else {
                continue;
            };
            loop {
                match l.accept() {
                    Ok((stream, peer)) => {
                        // The dual-stack listener reports IPv4 peers as
                        // `::ffff:a.b.c.d`; logs and /connz show them as IPv4,
                        // as nats-server does.
                        let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
                        // Small frames (PING/PONG, acks) must not wait for Nagle.
                        if let Err(e) = stream.set_nodelay(true) {
                            log::debug!("{peer} - set_nodelay failed: {e}");
                        }
                        handles[next % reactors].send(Cmd::Accept(stream, peer, kind.clone()));
                        next = next.wrapping_add(1);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        log::error!("Error accepting client connection: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
    }

    log::info!("Initiating Shutdown...");
    server.emit(Event::Shutdown);
    drop(listener);
    drop(route_listener.take());
    // Stages stop first, so what they publish last (the shutdown event)
    // is queued at the reactors before the reactors flush and close.
    let stage_threads = threads.split_off(reactors);
    for h in &handles[reactors..] {
        h.send(Cmd::Shutdown);
    }
    for t in stage_threads {
        if t.join().is_err() {
            log::error!("A stage thread panicked");
        }
    }
    for h in &handles[..reactors] {
        h.send(Cmd::Shutdown);
    }
    for t in threads {
        if t.join().is_err() {
            log::error!("A reactor thread panicked");
        }
    }
    if let Some(p) = ports_file {
        let _ = std::fs::remove_file(p);
    }
    log::info!("Server Exiting..");
    Ok(())
}

/// Bind the cluster port and tell the cluster the URL peers dial.
fn route_listener(cluster: &natsd_engine::cluster::Cluster) -> io::Result<TcpListener> {
    let opts = cluster.options();
    let port = u16::try_from(opts.port).unwrap_or(0);
    let l = listen::bind(&opts.host, port)
        .map_err(|e| io::Error::new(e.kind(), format!("Error listening on router port: {e}")))?;
    l.set_nonblocking(true)?;
    let local = l.local_addr()?;
    log::info!(
        "Listening for route connections on {}",
        listen::join_host_port(&opts.host, local.port())
    );
    match opts.advertise.as_deref() {
        Some(adv) => match adv.rsplit_once(':') {
            Some((host, p)) => cluster.set_route_url(host, p.parse().unwrap_or(local.port())),
            None => cluster.set_route_url(adv, local.port()),
        },
        None => {
            let host = listen::advertised_host(local);
            cluster.set_route_url(&host, local.port());
        }
    }
    Ok(TcpListener::from_std(l))
}

/// The thread name of the `$SYS` service's stage.
const SYS_STAGE: &str = "sys";

/// The services that run on stage threads, each with its thread name.
/// The system service ([`SYS_STAGE`]) also receives the server's events
/// (its stage is registered as the event sink by the caller of this list).
/// JetStream that cannot start stops the server, as in nats-server (`Can't start JetStream: ...`).
fn services(
    handle: &ServerHandle,
    started: Instant,
) -> io::Result<Vec<(&'static str, Box<dyn Service>)>> {
    let mut services: Vec<(&'static str, Box<dyn Service>)> = Vec::new();
    let sys_seed = u64::from_le_bytes(random_seed()[..8].try_into().unwrap_or_default());
    let sys_src = Box::new(http::LiveSource::new(handle.clone(), started));
    let started_wall = std::time::SystemTime::now() - started.elapsed();
    let sys = SysService::new(sys_src, started, started_wall, sys_seed);
    services.push((SYS_STAGE, Box::new(sys)));
    if handle.server().options().jetstream.enabled {
        let wall = std::time::SystemTime::now() - started.elapsed();
        match natsd_engine::jetstream::JetStream::new(handle.server().clone(), started, wall) {
            Ok(js) => services.push(("jetstream", Box::new(js))),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "Can't start JetStream: {}",
                        jetstream_error(&handle.server().options(), e)
                    ),
                ))
            }
        }
    }
    Ok(services)
}

/// nats-server's words for a store directory that is a file; other errors as they are.
fn jetstream_error(opts: &Options, e: io::Error) -> String {
    match &opts.store_dir {
        Some(dir) if dir.is_file() => "storage directory is not a directory".to_string(),
        _ => e.to_string(),
    }
}

/// SIGHUP: re-read the configuration and apply what may change live.
fn reload(server: &Arc<Server>, hooks: &Hooks, reactors: &[ReactorHandle]) {
    let new = match (hooks.reload)() {
        Ok(new) => new,
        Err(e) => {
            log::error!("Failed to reload server configuration: {e}");
            return;
        }
    };
    // Certificates are read again; a file that no longer loads refuses the
    // whole reload, as in nats-server.
    let tls_config = match tls::server_config(&new) {
        Ok(c) => c,
        Err(e) => {
            log::error!("Failed to reload server configuration: {e}");
            return;
        }
    };
    match server.reload(new) {
        Ok(changed) => {
            (hooks.apply_log_options)(&server.options());
            for r in reactors {
                r.send(Cmd::Reload(tls_config.clone()));
            }
            if changed.is_empty() {
                log::info!("Reloaded server configuration (no changes)");
            } else {
                log::info!("Reloaded: {}", changed.join(", "));
            }
        }
        Err(e) => log::error!("Failed to reload server configuration: {e}"),
    }
}

fn spawn_signal_thread(tx: Sender<Signal>, waker: Arc<Waker>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let (name, signal) = match sig {
                    SIGINT => ("interrupt", Signal::Stop),
                    SIGTERM => ("terminated", Signal::Stop),
                    SIGHUP => ("hangup", Signal::Reload),
                    SIGUSR1 => ("user defined signal 1", Signal::Reopen),
                    _ => ("user defined signal 2", Signal::LameDuck),
                };
                log::info!("Trapped \"{name}\" signal");
                if tx.send(signal).is_err() {
                    return;
                }
                if let Err(e) = waker.wake() {
                    log::error!("Could not wake the acceptor: {e}");
                }
            }
        })?;
    Ok(())
}

/// 32 bytes of entropy for the server identity.
fn random_seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    if from_os.is_err() {
        // No /dev/urandom: fall back to std's per-process random hash keys.
        use std::hash::{BuildHasher, RandomState};
        for (i, chunk) in seed.chunks_mut(8).enumerate() {
            let v = RandomState::new().hash_one(i);
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    seed
}
