//! Non-blocking std sockets built by [`crate::net`] (through `socket2`, with
//! [`SocketOptions`] applied before they bind or connect), ready for any runtime to register
//! (`Runtime::tcp_listener`, `Runtime::tcp_connect`, `Runtime::udp`, …).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

use socket2::{Protocol, SockAddr, Type};

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

/// A non-blocking TCP socket with `options` applied and its connect to `addr` started; the
/// runtime registers it, waits until it is writable, then checks `take_error` (as its own
/// connect does). Buffer sizes must be set before `connect`: they decide the window scale and
/// first window the handshake advertises. Shrinking the receive buffer after that leaves the
/// peer with a segment size (half the largest window it saw) above every window it will get,
/// and a Linux sender then sends nothing until its persist timer (≥ 200 ms) probes.
pub fn tcp_connecting(addr: SocketAddr, options: &SocketOptions) -> io::Result<TcpStream> {
    let socket = net::new_socket(&addr, Type::STREAM, Protocol::TCP)?;
    options.apply(&socket)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
        // Windows: WSAEWOULDBLOCK.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// [`tcp_connecting`] on the async-io reactor (smol, async-std): connected, `options` applied.
#[cfg(feature = "async-io")]
pub async fn async_io_tcp_connect(addr: SocketAddr, options: &SocketOptions) -> io::Result<async_io::Async<TcpStream>> {
    let stream = async_io::Async::new(tcp_connecting(addr, options)?)?;
    stream.writable().await?;
    match stream.get_ref().take_error()? {
        None => Ok(stream),
        Some(e) => Err(e),
    }
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
