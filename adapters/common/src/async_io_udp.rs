//! The UDP socket of the runtimes built on `async-io`'s reactor (smol, and async-std, whose
//! own `UdpSocket` has no poll-based API). One copy serves both adapters.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use async_io::Async;

use crate::runtime::DatagramSocket;

/// A UDP socket registered with the `async-io` reactor.
#[derive(Debug)]
pub struct UdpSocket(pub Async<std::net::UdpSocket>);

impl UdpSocket {
    /// Register a std socket with the reactor (it is made non-blocking).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        Ok(UdpSocket(Async::new(socket)?))
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for UdpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for UdpSocket {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.get_ref().as_socket()
    }
}

impl DatagramSocket for UdpSocket {
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buf)
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }
}
