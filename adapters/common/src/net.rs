//! Opening sockets with [`SocketOptions`] set at the right moment, and multicast membership.
//!
//! Some options only work before `bind` (`SO_REUSEADDR`, `SO_REUSEPORT`) or are best set before
//! `connect` (buffer sizes decide the TCP window scale in the handshake), so these helpers build
//! the socket with `socket2`, apply the options, and only then bind or connect. They return std
//! sockets in blocking mode; every async runtime can adopt those (`set_nonblocking(true)` and its
//! own `from_std`), so the same helpers serve every adapter.
//!
//! Two seed-000 broker calls that need the operating system live here too: [`aton`] (the
//! seed's `broker.aton`, resolving host names that
//! [`stage::aton`] leaves alone) and [`interfaces`] (the seed's
//! `broker.ifaddr`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use switchboard_proto::stage::{self, AddrError, Overrides};
use switchboard_proto::{Blame, Fault};

use crate::SocketOptions;

/// The listen backlog the helpers use (the common `SOMAXCONN` of Linux).
pub const DEFAULT_BACKLOG: i32 = 1024;

pub(crate) fn new_socket(addr: &SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    Socket::new(Domain::for_address(*addr), ty, Some(protocol))
}

/// Resolve `host:port` (a name or a literal address, IPv6 in brackets or not) to its addresses,
/// in the order the resolver gave them. Blocking: async adapters call it on a blocking thread.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{host} resolved to no address")));
    }
    Ok(addrs)
}

/// Why [`aton`] found no address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtonError {
    /// The text or an override is malformed (the caller's fault; the inner error names the part).
    #[error(transparent)]
    Addr(AddrError),
    /// The text names a host the resolver could not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name, as written.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
}

impl Blame for AtonError {
    fn fault(&self) -> Fault {
        match self {
            AtonError::Addr(e) => e.fault(),
            // The name may be fine and the resolver or the network down.
            AtonError::Resolve { .. } => Fault::Peer,
        }
    }
}

/// The socket addresses in `text`, with `overrides` applied to each: the seed's
/// `broker.aton(s, t)`, which answers with a list. Takes what
/// [`stage::aton`] takes (a spec, `IP:PORT`, a bare IP) and
/// also host names (`tcp://localhost:8081`, `example.org:80`), resolved here, blocking, in the
/// resolver's order; a literal address gives a list of one. Async adapters call it on a
/// blocking thread.
///
/// ```
/// use switchboard_proto::stage::Overrides;
/// use switchboard_rt::net::aton;
///
/// let addrs = aton("udp://224.0.0.1:8082", &Overrides::new()).unwrap();
/// assert_eq!(addrs, ["224.0.0.1:8082".parse().unwrap()]);
/// let local = aton("tcp://localhost:8081?packet=10k,40k", &Overrides::new().port(9000)).unwrap();
/// assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 9000));
/// ```
pub fn aton(text: &str, overrides: &Overrides) -> Result<Vec<SocketAddr>, AtonError> {
    let addrs = match stage::aton(text) {
        Ok(addr) => vec![addr],
        Err(AddrError::NeedsResolving { host, port }) => match resolve(&host, port) {
            Ok(addrs) => addrs,
            Err(source) => return Err(AtonError::Resolve { host, source }),
        },
        Err(e) => return Err(AtonError::Addr(e)),
    };
    addrs.into_iter().map(|addr| overrides.apply(addr).map_err(AtonError::Addr)).collect()
}

/// One network interface and the IP addresses assigned to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The device name (`lo`, `eth0`, …).
    pub name: String,
    /// The interface index: the scope id of its IPv6 link-local addresses (`None` where the
    /// system does not say).
    pub index: Option<u32>,
    /// Its addresses, IPv4 and IPv6 (link-local ones included), in the order the system lists
    /// them.
    pub addrs: Vec<IpAddr>,
}

/// The interfaces whose name contains `name_contains` (all of them for `""`), each with its
/// addresses: the seed's `broker.ifaddr(s)`. Interfaces come in the order the system first lists
/// them; one without an IP address is not listed.
///
/// ```
/// let all = switchboard_rt::net::interfaces("").unwrap();
/// assert!(all.iter().all(|i| !i.addrs.is_empty()));
/// ```
pub fn interfaces(name_contains: &str) -> io::Result<Vec<Interface>> {
    let mut found: Vec<Interface> = Vec::new();
    for entry in if_addrs::get_if_addrs()? {
        if !entry.name.contains(name_contains) {
            continue;
        }
        let ip = entry.ip();
        match found.iter_mut().find(|i| i.name == entry.name) {
            Some(interface) => {
                if !interface.addrs.contains(&ip) {
                    interface.addrs.push(ip);
                }
            }
            None => found.push(Interface { name: entry.name, index: entry.index, addrs: vec![ip] }),
        }
    }
    Ok(found)
}

/// A TCP listener on `addr` with `options` applied before `bind` (so `reuseaddr` and `reuseport`
/// take effect). Accepted streams do not inherit every option: apply them again on accept.
pub fn listen_tcp(addr: SocketAddr, options: &SocketOptions) -> io::Result<TcpListener> {
    let socket = new_socket(&addr, Type::STREAM, Protocol::TCP)?;
    if addr.is_ipv6() {
        // `[::]` should mean IPv6 only; dual-stack behaviour differs between systems.
        socket.set_only_v6(true)?;
    }
    options.apply(&socket)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(DEFAULT_BACKLOG)?;
    Ok(socket.into())
}

/// A TCP stream connected to `addr`, with `options` applied before `connect`.
pub fn connect_tcp(addr: SocketAddr, options: &SocketOptions) -> io::Result<TcpStream> {
    let socket = new_socket(&addr, Type::STREAM, Protocol::TCP)?;
    options.apply(&socket)?;
    socket.connect(&SockAddr::from(addr))?;
    Ok(socket.into())
}

/// A UDP socket bound to `addr`, with `options` applied before `bind`.
pub fn bind_udp(addr: SocketAddr, options: &SocketOptions) -> io::Result<UdpSocket> {
    let socket = new_socket(&addr, Type::DGRAM, Protocol::UDP)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    options.apply(&socket)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket.into())
}

/// Which local interface carries a multicast group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MulticastInterface {
    /// Let the system choose (`INADDR_ANY` / interface index 0).
    #[default]
    Any,
    /// The IPv4 interface with this address (IPv4 groups only).
    V4(Ipv4Addr),
    /// The interface with this index (see `if_nametoindex`): IPv6 groups, and IPv4 memberships
    /// on Linux, Android and FreeBSD (an IPv4 *sending* interface is named by its address).
    Index(u32),
}

/// One multicast group membership, with the sending options that go with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multicast {
    /// The group address (`224.0.0.0/4` or `ff00::/8`).
    pub group: IpAddr,
    /// The interface to receive (and send) on.
    pub interface: MulticastInterface,
    /// Whether this host's own group sends loop back to its sockets (`None`: OS default, on).
    pub loopback: Option<bool>,
    /// Multicast TTL (IPv4) or hop limit (IPv6) for sends (`None`: OS default, 1).
    pub ttl: Option<u32>,
}

impl Multicast {
    /// Membership of `group` on the interface the system chooses.
    pub fn new(group: IpAddr) -> Self {
        Multicast { group, interface: MulticastInterface::Any, loopback: None, ttl: None }
    }

    /// Use this interface.
    pub fn interface(mut self, interface: MulticastInterface) -> Self {
        self.interface = interface;
        self
    }

    /// Loop this host's sends back to its own sockets, or not.
    pub fn loopback(mut self, on: bool) -> Self {
        self.loopback = Some(on);
        self
    }

    /// Set the TTL / hop limit of sends.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    fn v4_interface(&self) -> io::Result<Ipv4Addr> {
        match self.interface {
            MulticastInterface::Any => Ok(Ipv4Addr::UNSPECIFIED),
            MulticastInterface::V4(a) => Ok(a),
            MulticastInterface::Index(_) => Err(invalid("an IPv4 group needs an interface address, not an index")),
        }
    }

    fn v6_interface(&self) -> io::Result<u32> {
        match self.interface {
            MulticastInterface::Any => Ok(0),
            MulticastInterface::Index(i) => Ok(i),
            MulticastInterface::V4(_) => Err(invalid("an IPv6 group needs an interface index, not an IPv4 address")),
        }
    }

    fn check_group(&self) -> io::Result<()> {
        check_group(self.group)
    }

    /// Set the sending options (interface, loopback, TTL) on `socket` without joining: what a
    /// socket that only sends to the group needs.
    pub fn configure_sender<'s, S>(&self, socket: &'s S) -> io::Result<()>
    where
        SockRef<'s>: From<&'s S>,
    {
        self.check_group()?;
        let sock = SockRef::from(socket);
        match self.group {
            IpAddr::V4(_) => {
                let interface = self.v4_interface()?;
                if !interface.is_unspecified() {
                    sock.set_multicast_if_v4(&interface)?;
                }
                if let Some(on) = self.loopback {
                    sock.set_multicast_loop_v4(on)?;
                }
                if let Some(ttl) = self.ttl {
                    sock.set_multicast_ttl_v4(ttl)?;
                }
            }
            IpAddr::V6(_) => {
                let index = self.v6_interface()?;
                if index != 0 {
                    sock.set_multicast_if_v6(index)?;
                }
                if let Some(on) = self.loopback {
                    sock.set_multicast_loop_v6(on)?;
                }
                if let Some(hops) = self.ttl {
                    sock.set_multicast_hops_v6(hops)?;
                }
            }
        }
        Ok(())
    }

    /// Join the group on `socket` and set the sending options.
    pub fn join<'s, S>(&self, socket: &'s S) -> io::Result<()>
    where
        SockRef<'s>: From<&'s S>,
    {
        self.configure_sender(socket)?;
        membership(&SockRef::from(socket), self.group, self.interface, true)
    }

    /// Leave the group on `socket`.
    pub fn leave<'s, S>(&self, socket: &'s S) -> io::Result<()>
    where
        SockRef<'s>: From<&'s S>,
    {
        membership(&SockRef::from(socket), self.group, self.interface, false)
    }

    /// A UDP socket that receives the group's datagrams sent to `port`: bound to the wildcard
    /// address of the group's family with `SO_REUSEADDR` (and `SO_REUSEPORT` on Unix) so several
    /// receivers on one host can share the port, `options` applied, and the group joined.
    pub fn bind(&self, port: u16, options: &SocketOptions) -> io::Result<UdpSocket> {
        self.check_group()?;
        let wildcard: IpAddr = match self.group {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let mut shared = options.clone();
        shared.reuseaddr.get_or_insert(true);
        #[cfg(unix)]
        shared.reuseport.get_or_insert(true);
        let socket = bind_udp(SocketAddr::new(wildcard, port), &shared)?;
        self.join(&socket)?;
        Ok(socket)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

fn check_group(group: IpAddr) -> io::Result<()> {
    if group.is_multicast() {
        Ok(())
    } else {
        Err(invalid("not a multicast group address"))
    }
}

/// Join (`join`) or leave `group` on `interface`: the one place memberships are changed.
pub(crate) fn membership(
    socket: &SockRef<'_>,
    group: IpAddr,
    interface: MulticastInterface,
    join: bool,
) -> io::Result<()> {
    check_group(group)?;
    match (group, interface) {
        (IpAddr::V4(g), MulticastInterface::Any) => v4_membership(socket, g, Ipv4Addr::UNSPECIFIED, join),
        (IpAddr::V4(g), MulticastInterface::V4(i)) => v4_membership(socket, g, i, join),
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        (IpAddr::V4(g), MulticastInterface::Index(n)) => {
            let iface = socket2::InterfaceIndexOrAddress::Index(n);
            if join {
                socket.join_multicast_v4_n(&g, &iface)
            } else {
                socket.leave_multicast_v4_n(&g, &iface)
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        (IpAddr::V4(_), MulticastInterface::Index(_)) => {
            Err(invalid("IPv4 membership by interface index is Linux-only"))
        }
        (IpAddr::V6(g), MulticastInterface::Any) => v6_membership(socket, g, 0, join),
        (IpAddr::V6(g), MulticastInterface::Index(n)) => v6_membership(socket, g, n, join),
        (IpAddr::V6(_), MulticastInterface::V4(_)) => {
            Err(invalid("an IPv6 group needs an interface index, not an IPv4 address"))
        }
    }
}

fn v4_membership(socket: &SockRef<'_>, group: Ipv4Addr, iface: Ipv4Addr, join: bool) -> io::Result<()> {
    if join {
        socket.join_multicast_v4(&group, &iface)
    } else {
        socket.leave_multicast_v4(&group, &iface)
    }
}

fn v6_membership(socket: &SockRef<'_>, group: Ipv6Addr, index: u32, join: bool) -> io::Result<()> {
    if join {
        socket.join_multicast_v6(&group, index)
    } else {
        socket.leave_multicast_v6(&group, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn listen_connect_and_bind_apply_options() {
        let opts = SocketOptions::new().reuseaddr(true).nodelay(true);
        let listener = listen_tcp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        assert!(SockRef::from(&listener).reuse_address().unwrap());
        let mut client = connect_tcp(listener.local_addr().unwrap(), &opts).unwrap();
        assert!(client.nodelay().unwrap());
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");

        let udp = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        assert!(SockRef::from(&udp).reuse_address().unwrap());
    }

    #[test]
    fn resolve_accepts_literals_and_brackets() {
        assert_eq!(resolve("127.0.0.1", 80).unwrap(), ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        assert_eq!(resolve("[::1]", 81).unwrap(), ["[::1]:81".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn aton_resolves_names_and_passes_literals_through() {
        let none = Overrides::new();
        assert_eq!(aton("[::1]:81", &none).unwrap(), ["[::1]:81".parse::<SocketAddr>().unwrap()]);
        let local = aton("tcp://localhost:8081", &Overrides::new().port(7)).unwrap();
        assert!(!local.is_empty());
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 7), "{local:?}");
        let bad = aton("tcp://127.0.0.1:1?bogus", &none).unwrap_err();
        assert!(matches!(bad, AtonError::Addr(AddrError::Spec(_))));
        assert_eq!(bad.fault(), Fault::Caller);
        let scope = aton("127.0.0.1:1", &Overrides::new().scope_id(3)).unwrap_err();
        assert!(matches!(scope, AtonError::Addr(AddrError::ScopeOnIpv4 { scope_id: 3 })));
        // `.invalid` never resolves (RFC 6761).
        let unknown = aton("udp://no-such-host.invalid:1", &none).unwrap_err();
        assert!(matches!(&unknown, AtonError::Resolve { host, .. } if host == "no-such-host.invalid"));
        assert_eq!(unknown.fault(), Fault::Peer);
    }

    #[test]
    fn loopback_interface_has_127_0_0_1() {
        let all = interfaces("").unwrap();
        let Some(lo) = all.iter().find(|i| i.name == "lo") else {
            println!("skipped: this machine has no interface named lo ({all:?})");
            return;
        };
        assert!(lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{lo:?}");
        // The filter is a substring of the name.
        let filtered = interfaces("lo").unwrap();
        assert!(filtered.iter().any(|i| i.name == "lo"));
        assert!(filtered.iter().all(|i| i.name.contains("lo")));
        assert!(interfaces("no such device, surely").unwrap().is_empty());
    }

    #[test]
    fn refuses_non_group_addresses_and_mismatched_interfaces() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = Multicast::new("10.0.0.1".parse().unwrap()).join(&udp).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = Multicast::new("239.1.2.3".parse().unwrap())
            .interface(MulticastInterface::Index(1))
            .join(&udp)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
