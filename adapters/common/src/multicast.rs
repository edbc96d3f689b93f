//! IPv4 and IPv6 multicast for the async adapters: join and leave groups, pick the outgoing
//! interface, and make a socket that receives a group (several may share one port).
//!
//! Thin over [`crate::net`], where sockets are built and memberships changed for every
//! adapter, blocking or async; these return non-blocking sockets ready to register.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::SockRef;

use crate::net::{self, membership};
use crate::SocketOptions;

/// Which network interface a multicast membership or send uses.
pub use crate::net::MulticastInterface as Interface;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// Join `group` on `interface`.
pub fn join(socket: &SockRef<'_>, group: IpAddr, interface: Interface) -> io::Result<()> {
    membership(socket, group, interface, true)
}

/// Leave `group` on `interface` (the same interface it was joined on).
pub fn leave(socket: &SockRef<'_>, group: IpAddr, interface: Interface) -> io::Result<()> {
    membership(socket, group, interface, false)
}

/// Send this socket's multicast datagrams out of `interface`, with loopback delivery to local
/// members switched on or off.
pub fn set_outgoing(socket: &SockRef<'_>, ipv6: bool, interface: Interface, loopback: bool) -> io::Result<()> {
    if ipv6 {
        match interface {
            Interface::Any => socket.set_multicast_if_v6(0)?,
            Interface::Index(n) => socket.set_multicast_if_v6(n)?,
            Interface::V4(_) => return Err(invalid("an IPv6 socket needs an interface index")),
        }
        socket.set_multicast_loop_v6(loopback)
    } else {
        match interface {
            Interface::Any => socket.set_multicast_if_v4(&Ipv4Addr::UNSPECIFIED)?,
            Interface::V4(a) => socket.set_multicast_if_v4(&a)?,
            Interface::Index(_) => return Err(invalid("name an IPv4 sending interface by its address")),
        }
        socket.set_multicast_loop_v4(loopback)
    }
}

/// The wildcard address of one family.
fn wildcard(ipv6: bool) -> IpAddr {
    if ipv6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    }
}

/// A non-blocking UDP socket that receives `group` on `port` (0 = any free port; read it back
/// with `local_addr`) through `interface`. Address and port reuse are on so several sockets,
/// in this process or others, can receive the same group. `options` apply before binding.
pub fn receiver(group: IpAddr, port: u16, interface: Interface, options: &SocketOptions) -> io::Result<UdpSocket> {
    if !group.is_multicast() {
        return Err(invalid("not a multicast group address"));
    }
    let mut options = options.clone();
    options.reuseaddr.get_or_insert(true);
    #[cfg(unix)]
    options.reuseport.get_or_insert(true);
    // Binding the unspecified address (not the group) works everywhere; the membership is what
    // selects the group's datagrams.
    let socket = net::bind_udp(SocketAddr::new(wildcard(group.is_ipv6()), port), &options)?;
    join(&SockRef::from(&socket), group, interface)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking UDP socket bound to an ephemeral port that sends to multicast groups out of
/// `interface`, with loopback delivery on (so members on this host receive it too).
pub fn sender(ipv6: bool, interface: Interface, options: &SocketOptions) -> io::Result<UdpSocket> {
    let socket = net::bind_udp(SocketAddr::new(wildcard(ipv6), 0), options)?;
    set_outgoing(&SockRef::from(&socket), ipv6, interface, true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unicast_groups_and_mismatched_interfaces() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = SockRef::from(&socket);
        let err = join(&sock, "127.0.0.1".parse().unwrap(), Interface::Any).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = join(&sock, "ff02::1234".parse().unwrap(), Interface::V4(Ipv4Addr::LOCALHOST)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(receiver("10.0.0.1".parse().unwrap(), 0, Interface::Any, &SocketOptions::new()).is_err());
    }
}
