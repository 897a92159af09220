//! Binding listeners and the ports file, as nats-server does them.
//!
//! Go's `net.Listen("tcp", "0.0.0.0:4222")` opens one IPv6 socket with `IPV6_V6ONLY` off when
//! the host is a wildcard, so a nats-server on its default host also takes IPv6 clients;
//! [`bind`] does the same. The ports file (`--ports_file_dir`) lists, for a wildcard listener,
//! every address of every interface, in Go's order (by interface, IPv4 before IPv6).
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `host:port` as nats-server does: a wildcard host (`0.0.0.0` or `::`) listens on
/// IPv4 and IPv6 alike, falling back to IPv4 alone where the machine has no IPv6.
pub(crate) fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address"))?;
    if addr.ip().is_unspecified() {
        let dual = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        match listen(dual, false) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(_) => {
                return listen(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                    true,
                )
            }
        }
    }
    listen(addr, true)
}

fn listen(addr: SocketAddr, only_v6: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(only_v6)?;
    }
    // As std's and Go's listeners: a restarted server rebinds its port at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // The kernel caps the backlog at `net.core.somaxconn`, which is what Go asks for.
    socket.listen(i32::MAX)?;
    Ok(socket.into())
}

/// Go's `net.JoinHostPort`: an IPv6 host goes in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The URLs a listener bound at `local` is reached at, as nats-server's ports file lists them:
/// every interface address for a wildcard, else the bound address.
pub(crate) fn urls(scheme: &str, local: SocketAddr) -> Vec<String> {
    let ips = if local.ip().is_unspecified() {
        interface_addrs()
    } else {
        vec![local.ip()]
    };
    ips.into_iter()
        .map(|ip| {
            format!(
                "{scheme}://{}",
                join_host_port(&ip.to_string(), local.port())
            )
        })
        .collect()
}

/// The `host:port`s clients are told (INFO `connect_urls`): the
/// `client_advertise` address, else every non-loopback interface address
/// for a wildcard listener (loopback when there is none), else the bound
/// address.
pub(crate) fn connect_urls(advertise: Option<&str>, local: SocketAddr) -> Vec<String> {
    if let Some(adv) = advertise {
        return vec![adv.to_string()];
    }
    let ips: Vec<IpAddr> = if local.ip().is_unspecified() {
        let all = interface_addrs();
        let outside: Vec<IpAddr> = all.iter().copied().filter(|ip| !ip.is_loopback()).collect();
        if outside.is_empty() {
            all
        } else {
            outside
        }
    } else {
        vec![local.ip()]
    };
    ips.into_iter()
        .map(|ip| join_host_port(&ip.to_string(), local.port()))
        .collect()
}

/// The host peers dial for a listener bound at `local`: the bound address,
/// or for a wildcard the first non-loopback IPv4 interface address
/// (127.0.0.1 when there is none).
pub(crate) fn advertised_host(local: SocketAddr) -> String {
    if !local.ip().is_unspecified() {
        return local.ip().to_string();
    }
    interface_addrs()
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
}

/// Every address of every interface, by interface index, each interface's IPv4 addresses
/// before its IPv6 ones (Go's `net.Interfaces` then `Addrs`; getifaddrs lists all IPv4
/// addresses first, so a stable sort by index gives the same order).
fn interface_addrs() -> Vec<IpAddr> {
    let mut found: Vec<(u32, IpAddr)> = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list it allocated, or fails and leaves it null.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` points at a sockaddr whose family says which struct it is.
        let ip = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
        let index = unsafe { libc::if_nametoindex(CStr::from_ptr(ifa.ifa_name).as_ptr()) };
        found.push((index, ip));
    }
    // SAFETY: `head` came from getifaddrs and is freed once; nothing points into it any more.
    unsafe { libc::freeifaddrs(head) };
    found.sort_by_key(|(index, _)| *index);
    found.into_iter().map(|(_, ip)| ip).collect()
}

/// The listeners a ports file describes (nats-server's `Ports`; natsd has no cluster,
/// profiling or WebSocket listener yet).
pub(crate) struct Ports {
    /// The client listener, and whether it requires TLS (`tls://` URLs).
    pub client: (SocketAddr, bool),
    /// The monitoring listener, and whether it serves HTTPS.
    pub monitoring: Option<(SocketAddr, bool)>,
}

impl Ports {
    /// The file's JSON, in nats-server's field order.
    fn json(&self) -> String {
        let list = |urls: Vec<String>| {
            let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
            format!("[{}]", quoted.join(","))
        };
        let (addr, tls) = self.client;
        let mut json = format!(
            "{{\"nats\":{}",
            list(urls(if tls { "tls" } else { "nats" }, addr))
        );
        if let Some((addr, https)) = self.monitoring {
            let urls = urls(if https { "https" } else { "http" }, addr);
            json.push_str(&format!(",\"monitoring\":{}", list(urls)));
        }
        json.push('}');
        json
    }
}

/// Writes `<dir>/<program>_<pid>.ports`, named as nats-server names it: after the base name
/// of `argv[0]` (so a natsd started as `nats-server` writes `nats-server_<pid>.ports`).
/// Returns the path to remove at shutdown.
pub(crate) fn write_ports_file(dir: &Path, ports: &Ports) -> Option<PathBuf> {
    let program = std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "natsd".to_string());
    let path = dir.join(format!("{program}_{}.ports", std::process::id()));
    match std::fs::write(&path, ports.json()) {
        Ok(()) => Some(path),
        Err(e) => {
            log::error!("Error writing ports file ({}): {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_joined_as_go() {
        assert_eq!(join_host_port("0.0.0.0", 4222), "0.0.0.0:4222");
        assert_eq!(join_host_port("::", 4222), "[::]:4222");
        assert_eq!(join_host_port("localhost", 1), "localhost:1");
    }

    #[test]
    fn wildcard_lists_loopback_of_both_families_first() {
        let urls = urls("nats", "0.0.0.0:7".parse().unwrap());
        assert_eq!(urls.first().map(String::as_str), Some("nats://127.0.0.1:7"));
        let specific = super::urls("http", "127.0.0.1:8".parse().unwrap());
        assert_eq!(specific, ["http://127.0.0.1:8"]);
    }

    #[test]
    fn ports_json_as_nats_server() {
        let ports = Ports {
            client: ("127.0.0.1:4222".parse().unwrap(), true),
            monitoring: Some(("[::1]:8222".parse().unwrap(), false)),
        };
        assert_eq!(
            ports.json(),
            r#"{"nats":["tls://127.0.0.1:4222"],"monitoring":["http://[::1]:8222"]}"#
        );
    }

    #[test]
    fn wildcard_listener_takes_ipv6_and_ipv4() {
        let listener = bind("0.0.0.0", 0).expect("bind");
        let port = listener.local_addr().unwrap().port();
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client");
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            std::net::TcpStream::connect(("::1", port)).expect("IPv6 client");
        }
    }
}
