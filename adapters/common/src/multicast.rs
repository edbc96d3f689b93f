//! IPv4 and IPv6 multicast through `socket2`: join and leave groups, pick the outgoing
//! interface, and make a socket that receives a group (several may share one port).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::SocketOptions;

/// Which network interface a multicast membership or send uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Interface {
    /// Let the kernel choose (the default route's interface).
    #[default]
    Any,
    /// The IPv4 interface with this address (IPv4 groups only).
    V4(Ipv4Addr),
    /// The interface with this index (IPv6; IPv4 memberships on Linux, Android and FreeBSD).
    Index(u32),
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

/// Join `group` on `interface`.
pub fn join(socket: &SockRef<'_>, group: IpAddr, interface: Interface) -> io::Result<()> {
    membership(socket, group, interface, true)
}

/// Leave `group` on `interface` (the same interface it was joined on).
pub fn leave(socket: &SockRef<'_>, group: IpAddr, interface: Interface) -> io::Result<()> {
    membership(socket, group, interface, false)
}

fn membership(socket: &SockRef<'_>, group: IpAddr, interface: Interface, join: bool) -> io::Result<()> {
    check_group(group)?;
    match (group, interface) {
        (IpAddr::V4(g), Interface::Any) => v4(socket, g, Ipv4Addr::UNSPECIFIED, join),
        (IpAddr::V4(g), Interface::V4(i)) => v4(socket, g, i, join),
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        (IpAddr::V4(g), Interface::Index(n)) => {
            let iface = socket2::InterfaceIndexOrAddress::Index(n);
            if join {
                socket.join_multicast_v4_n(&g, &iface)
            } else {
                socket.leave_multicast_v4_n(&g, &iface)
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        (IpAddr::V4(_), Interface::Index(_)) => Err(invalid("IPv4 membership by interface index is Linux-only")),
        (IpAddr::V6(g), Interface::Any) => v6(socket, g, 0, join),
        (IpAddr::V6(g), Interface::Index(n)) => v6(socket, g, n, join),
        (IpAddr::V6(_), Interface::V4(_)) => Err(invalid("an IPv6 group needs an interface index")),
    }
}

fn v4(socket: &SockRef<'_>, group: Ipv4Addr, iface: Ipv4Addr, join: bool) -> io::Result<()> {
    if join {
        socket.join_multicast_v4(&group, &iface)
    } else {
        socket.leave_multicast_v4(&group, &iface)
    }
}

fn v6(socket: &SockRef<'_>, group: std::net::Ipv6Addr, index: u32, join: bool) -> io::Result<()> {
    if join {
        socket.join_multicast_v6(&group, index)
    } else {
        socket.leave_multicast_v6(&group, index)
    }
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

/// A non-blocking UDP socket that receives `group` on `port` (0 = any free port; read it back
/// with `local_addr`) through `interface`. Address and port reuse are on so several sockets,
/// in this process or others, can receive the same group. `options` apply before binding.
pub fn receiver(group: IpAddr, port: u16, interface: Interface, options: &SocketOptions) -> io::Result<UdpSocket> {
    check_group(group)?;
    let domain = if group.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let mut options = options.clone();
    options.reuseaddr.get_or_insert(true);
    #[cfg(unix)]
    options.reuseport.get_or_insert(true);
    options.apply(&socket)?;
    if group.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Binding the unspecified address (not the group) works everywhere; the membership is what
    // selects the group's datagrams.
    let any: IpAddr =
        if group.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    socket.bind(&SocketAddr::new(any, port).into())?;
    join(&SockRef::from(&socket), group, interface)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A non-blocking UDP socket bound to an ephemeral port that sends to multicast groups out of
/// `interface`, with loopback delivery on (so members on this host receive it too).
pub fn sender(ipv6: bool, interface: Interface, options: &SocketOptions) -> io::Result<UdpSocket> {
    let (domain, any): (Domain, IpAddr) = if ipv6 {
        (Domain::IPV6, std::net::Ipv6Addr::UNSPECIFIED.into())
    } else {
        (Domain::IPV4, Ipv4Addr::UNSPECIFIED.into())
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    options.apply(&socket)?;
    set_outgoing(&SockRef::from(&socket), ipv6, interface, true)?;
    socket.bind(&SocketAddr::new(any, 0).into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
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
