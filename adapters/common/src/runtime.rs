//! The small interface an async runtime implements so the one generic driver can run on it.
//!
//! Modelled on quinn's `Runtime`: a timer that can be re-armed, a way to spawn a task, and the
//! runtime's own socket types behind a few traits. Everything else — the driver loop, the
//! accept loop, socket options, multicast — is written once in this crate over these traits.
//!
//! Streams use the runtime-neutral [`futures_io::AsyncRead`] / [`futures_io::AsyncWrite`]
//! (with real vectored writes). Datagram sockets use readiness plus non-blocking `try_*` calls,
//! because not every runtime offers a poll-based `recv_from`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use socket2::SockRef;
use switchboard_proto::Instant;

use crate::SocketOptions;

/// A one-shot timer that can be re-armed without allocating. Times are the machines'
/// [`Instant`]s on the runtime's clock ([`Runtime::now`]).
pub trait Timer: Send + Unpin + 'static {
    /// Fire at `at` instead (earlier or later than before).
    fn reset(&mut self, at: Instant);
    /// Ready once the time set last has come.
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Gives the operating-system socket behind a runtime's socket type, so options, shutdown and
/// multicast membership are handled once here through `socket2`. Every type that exposes its
/// descriptor (`AsFd`; `AsSocket` on Windows) has it.
#[cfg(unix)]
pub trait SocketRef: std::os::fd::AsFd + Sized {
    /// The socket, borrowed.
    fn socket_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

#[cfg(unix)]
impl<T: std::os::fd::AsFd> SocketRef for T {}

/// Gives the operating-system socket behind a runtime's socket type (see the Unix version).
#[cfg(windows)]
pub trait SocketRef: std::os::windows::io::AsSocket + Sized {
    /// The socket, borrowed.
    fn socket_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsSocket> SocketRef for T {}

/// A byte stream the driver can run a machine over (TCP, Unix, or anything that looks alike).
pub trait ByteStream: AsyncRead + AsyncWrite + SocketRef + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + SocketRef + Unpin + Send + 'static> ByteStream for T {}

/// A listening socket of some runtime.
pub trait Listener: Send + Sync + 'static {
    /// The streams it accepts.
    type Stream: ByteStream;
    /// The address type of its peers.
    type Addr: Send + 'static;
    /// Wait for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send;
    /// The address it listens on.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

/// A non-blocking UDP socket registered with a runtime's reactor.
///
/// The driver calls `try_*` first and waits for readiness only when it got `WouldBlock`, the
/// pattern every reactor supports (tokio clears its readiness in `try_*`; async-io re-arms in
/// `poll_*_ready`).
pub trait DatagramSocket: SocketRef + Send + Sync + 'static {
    /// Ready when a datagram may be waiting.
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a datagram may be sent.
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Receive one datagram now, or `WouldBlock`.
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Send one datagram now, or `WouldBlock`.
    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket_ref().local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))
    }

    /// Join a multicast group (see [`crate::multicast::join`]).
    fn join_multicast(&self, group: std::net::IpAddr, interface: crate::multicast::Interface) -> io::Result<()> {
        crate::multicast::join(&self.socket_ref(), group, interface)
    }

    /// Leave a multicast group (see [`crate::multicast::leave`]).
    fn leave_multicast(&self, group: std::net::IpAddr, interface: crate::multicast::Interface) -> io::Result<()> {
        crate::multicast::leave(&self.socket_ref(), group, interface)
    }
}

impl<T: DatagramSocket> DatagramSocket for std::sync::Arc<T> {
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_recv_ready(cx)
    }
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_send_ready(cx)
    }
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        (**self).try_recv_from(buf)
    }
    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        (**self).try_send_to(buf, to)
    }
}

/// An async runtime: timers, tasks and its socket types. Implemented by `switchboard-tokio`,
/// `switchboard-smol` and `switchboard-async-std`; everything else is generic over it (see
/// [`RuntimeExt`](crate::RuntimeExt)).
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The runtime's timer.
    type Timer: Timer;
    /// A connected TCP stream.
    type Tcp: ByteStream;
    /// A TCP listener.
    type TcpListener: Listener<Stream = Self::Tcp, Addr = SocketAddr>;
    /// A connected Unix stream.
    #[cfg(unix)]
    type Unix: ByteStream;
    /// A Unix listener.
    #[cfg(unix)]
    type UnixListener: Listener<Stream = Self::Unix, Addr = std::os::unix::net::SocketAddr>;
    /// A UDP socket.
    type Udp: DatagramSocket;

    /// The current time on this runtime's clock, in the machines' terms. Every driver reads
    /// time here and nowhere else, so a runtime with a virtual clock (a simulator) runs the
    /// same drivers and applications unchanged. Default: the wall clock
    /// ([`wall_now`](crate::clock::wall_now)).
    fn now(&self) -> Instant {
        crate::clock::wall_now()
    }
    /// A timer firing at `at` on this runtime's clock ([`now`](Self::now)).
    fn timer(&self, at: Instant) -> Self::Timer;
    /// Run `future` as a task of its own.
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F);
    /// Connect a TCP stream with `options` applied before `connect` (buffer sizes shape the
    /// handshake): register [`sockets::tcp_connecting`](crate::sockets::tcp_connecting) and
    /// wait until it is writable, then check `take_error`.
    fn tcp_connect(
        &self,
        addr: SocketAddr,
        options: &SocketOptions,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
    /// Register a bound, listening, non-blocking std listener with the reactor.
    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Self::TcpListener>;
    /// Connect a Unix stream.
    #[cfg(unix)]
    fn unix_connect(&self, path: std::path::PathBuf) -> impl Future<Output = io::Result<Self::Unix>> + Send;
    /// Register a bound, non-blocking std Unix listener with the reactor.
    #[cfg(unix)]
    fn unix_listener(&self, listener: std::os::unix::net::UnixListener) -> io::Result<Self::UnixListener>;
    /// Register a bound, non-blocking std UDP socket with the reactor.
    fn udp(&self, socket: std::net::UdpSocket) -> io::Result<Self::Udp>;
}

/// Wait until `at` on runtime `rt`'s clock.
pub async fn sleep_until<R: Runtime>(rt: &R, at: Instant) {
    let mut timer = rt.timer(at);
    std::future::poll_fn(|cx| timer.poll_fire(cx)).await
}

/// Wait for `duration` on runtime `rt`'s clock.
pub async fn sleep_for<R: Runtime>(rt: &R, duration: Duration) {
    sleep_until(rt, rt.now().saturating_add(duration)).await
}
