//! Non-blocking std sockets built by [`crate::net`] (through `socket2`, with
//! [`SocketOptions`] applied before they bind), ready for any runtime to register
//! (`Runtime::tcp_listener`, `Runtime::udp`, …).

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};

use crate::{net, SocketOptions};

/// Try `bind` on each address `addr` resolves to; the last error if none works.
fn each_addr<T>(addr: impl ToSocketAddrs, mut bind: impl FnMut(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match bind(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")))
}

/// A listening, non-blocking TCP socket on `addr` ([`net::listen_tcp`]). `SO_REUSEADDR` is on
/// unless `options` turn it off (so a restarted server can bind at once).
pub fn tcp_listener(addr: impl ToSocketAddrs, options: &SocketOptions) -> io::Result<TcpListener> {
    let mut options = options.clone();
    options.reuseaddr.get_or_insert(true);
    each_addr(addr, |addr| {
        let listener = net::listen_tcp(addr, &options)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
}

/// A bound, non-blocking UDP socket on `addr` ([`net::bind_udp`]).
pub fn udp_socket(addr: impl ToSocketAddrs, options: &SocketOptions) -> io::Result<UdpSocket> {
    each_addr(addr, |addr| {
        let socket = net::bind_udp(addr, options)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    })
}

/// A listening, non-blocking Unix socket at `path` (which must not exist yet).
#[cfg(unix)]
pub fn unix_listener(
    path: impl AsRef<std::path::Path>,
    options: &SocketOptions,
) -> io::Result<std::os::unix::net::UnixListener> {
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    options.apply(&listener)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
