//! The blocking byte streams the stream driver runs over.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;

use switchboard_rt::{SocketOptions, SocketRef};

/// A stream socket the drivers read and write (vectored, non-blocking), wait on in `poll(2)`
/// (hence [`AsFd`]) and shut down. Implemented for [`TcpStream`] and, on Unix,
/// [`UnixStream`](std::os::unix::net::UnixStream); implement it for any other socket-like stream.
pub trait BlockingStream: Read + Write + AsFd + Send + Sized + 'static {
    /// Another handle to the same socket (`dup`).
    fn try_clone(&self) -> io::Result<Self>;

    /// Shut down one or both directions. Used to send EOF after the last write.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// Switch non-blocking mode (the drivers wait in `poll(2)`).
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

/// A listening socket [`serve`](crate::serve) can accept [`BlockingStream`]s from. Implemented
/// for [`TcpListener`] and, on Unix, [`UnixListener`](std::os::unix::net::UnixListener).
///
/// The accept loop switches the listener to non-blocking mode and waits for it in `poll(2)`
/// (hence [`SocketRef`]: the descriptor), so [`Server::shutdown`](crate::Server::shutdown) can
/// wake it without connecting to it.
pub trait BlockingListener: SocketRef + Send + 'static {
    /// The connections it accepts.
    type Stream: BlockingStream;
    /// Its own and its peers' addresses: [`SocketAddr`] for TCP,
    /// [`std::os::unix::net::SocketAddr`] for Unix.
    type Addr: Clone + fmt::Debug + Send + 'static;

    /// Accept one connection (returns [`io::ErrorKind::WouldBlock`] in non-blocking mode when none
    /// is waiting).
    fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)>;

    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Switch non-blocking mode.
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;
}

impl BlockingListener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        TcpListener::set_nonblocking(self, nonblocking)
    }
}

#[cfg(unix)]
impl BlockingListener for std::os::unix::net::UnixListener {
    type Stream = std::os::unix::net::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)> {
        std::os::unix::net::UnixListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        std::os::unix::net::UnixListener::local_addr(self)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        std::os::unix::net::UnixListener::set_nonblocking(self, nonblocking)
    }
}

/// A TCP or Unix socket address: what a server opened from a spec
/// ([`serve_spec`](crate::serve_spec)), which may be either, listens on and accepts from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket address (a path, or unnamed for a client that did not bind one).
    #[cfg(unix)]
    Unix(std::os::unix::net::SocketAddr),
}

impl Addr {
    /// The TCP address, if it is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            Addr::Unix(_) => None,
        }
    }

    /// The Unix socket address, if it is one.
    #[cfg(unix)]
    pub fn unix(&self) -> Option<&std::os::unix::net::SocketAddr> {
        match self {
            Addr::Unix(addr) => Some(addr),
            Addr::Tcp(_) => None,
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        Addr::Tcp(addr)
    }
}

#[cfg(unix)]
impl From<std::os::unix::net::SocketAddr> for Addr {
    fn from(addr: std::os::unix::net::SocketAddr) -> Self {
        Addr::Unix(addr)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "tcp://{addr}"),
            #[cfg(unix)]
            Addr::Unix(addr) => match addr.as_pathname() {
                Some(path) => write!(f, "unix://{}", path.display()),
                // Unnamed, or a Linux abstract name: std's Debug says which.
                None => write!(f, "unix:{addr:?}"),
            },
        }
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
