//! The blocking byte streams the stream driver runs over.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use switchboard_rt::SocketOptions;

/// A blocking stream socket the driver can read, write (vectored), clone into a reader and a
/// writer half, and shut down. Implemented for [`TcpStream`] and, on Unix,
/// [`UnixStream`](std::os::unix::net::UnixStream); implement it for any other socket-like stream.
pub trait BlockingStream: Read + Write + Send + Sized + 'static {
    /// Another handle to the same socket (`dup`), used by the reader and writer threads.
    fn try_clone(&self) -> io::Result<Self>;

    /// Shut down one or both directions. Used to send EOF after the last write, and to wake the
    /// reader thread when the driver stops.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// Switch non-blocking mode (used by [`Direct`](crate::Direct), which waits in `poll(2)`).
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;

    /// Apply socket options. TCP-only options are skipped where they do not apply.
    fn apply(&self, options: &SocketOptions) -> io::Result<()>;

    /// The peer's address, when the transport has an IP one.
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
}

impl BlockingStream for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }

    fn apply(&self, options: &SocketOptions) -> io::Result<()> {
        options.apply(self)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        TcpStream::peer_addr(self).ok()
    }
}

#[cfg(unix)]
impl BlockingStream for std::os::unix::net::UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        std::os::unix::net::UnixStream::try_clone(self)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        std::os::unix::net::UnixStream::shutdown(self, how)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_nonblocking(self, nonblocking)
    }

    fn apply(&self, options: &SocketOptions) -> io::Result<()> {
        options.apply(self)
    }
}

/// A connected pair of Unix stream sockets, each with `options` applied: an in-process transport
/// for tests and for wiring two machines together without the network.
#[cfg(unix)]
pub fn socketpair(
    options: &SocketOptions,
) -> io::Result<(std::os::unix::net::UnixStream, std::os::unix::net::UnixStream)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    options.apply(&a)?;
    options.apply(&b)?;
    Ok((a, b))
}
