//! # switchboard-async-std
//!
//! **async-std is discontinued:** its maintainers stopped it in 2025 and point to smol. New code
//! should use [`switchboard-smol`](https://docs.rs/switchboard-smol), which runs the very same
//! driver; this crate is kept working for applications already on async-std.
//!
//! Runs any Switchboard machine on async-std. This crate only plugs async-std (its tasks, its
//! timer, its TCP and Unix types) into the runtime-neutral driver of [`switchboard_rt`]:
//! [`AsyncStd`] implements [`Runtime`], and connect, listen, serve (also with connections by
//! id: [`Connections`]), UDP, multicast and the driver itself come from [`RuntimeExt`], the same
//! code every adapter runs. async-std's `UdpSocket` offers no poll-based readiness, so UDP goes
//! through async-io's `Async` — the reactor async-std itself runs on.
//!
//! A packet-frame echo over TCP on loopback:
//!
//! ```
//! use switchboard_async_std::proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_async_std::{AsyncStd, RuntimeExt};
//!
//! #[async_std::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let packets = || PacketConnection::new(FramingConfig::default());
//!     let listener = AsyncStd.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     async_std::task::spawn(AsyncStd.serve(listener, move |_| packets(), |conn| async move {
//!         while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!             let _ = conn.send(Command::Send(frame)).await;
//!         }
//!     }));
//!
//!     let conn = AsyncStd.connect(addr, packets()).await?;
//!     conn.send(Command::SendBody("hello".into())).await?;
//!     let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!     assert_eq!(&echo[4..], b"hello");
//!     conn.join().await?; // closes gracefully: everything queued is written first
//!     Ok(())
//! }
//! ```
//!
//! The same exchange encrypted: both ends opened from connection specs, whose `crypto=` option
//! picks the cipher (STAGE `ALGO/MODE/PADDING=key` or the sealed `AES-256-GCM=key`):
//!
//! ```
//! use switchboard_async_std::proto::stage::{Command, Event};
//! use switchboard_async_std::{AsyncStd, RuntimeExt};
//!
//! #[async_std::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = "packet=64k,64k&crypto=AES/CFB/NoPadding=secret";
//!     let listener = AsyncStd.listen_spec(&format!("tcp://127.0.0.1:0?{options}"))?;
//!     let port = listener.local_addr()?.port();
//!     async_std::task::spawn(listener.serve(|conn| async move {
//!         while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!             let _ = conn.send(Command::SendBody(frame.slice(4..))).await; // decrypted in, encrypted out
//!         }
//!     }));
//!
//!     let conn = AsyncStd.connect_spec(&format!("tcp://127.0.0.1:{port}?{options}")).await?;
//!     conn.send(Command::SendBody("hello".into())).await?;
//!     let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!     assert_eq!(&echo[4..], b"hello");
//!     conn.join().await?;
//!     Ok(())
//! }
//! ```
//!
//! Typed message frames, request/response:
//!
//! ```
//! use switchboard_async_std::proto::message::{Command, Event, MessageConfig, MessageConnection};
//! use switchboard_async_std::{AsyncStd, RuntimeExt};
//!
//! #[async_std::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
//!     let listener = AsyncStd.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     async_std::task::spawn(AsyncStd.serve(listener, move |_| messages(), |conn| async move {
//!         while let Some(Ok(Event::Request { id, payload })) = conn.recv().await {
//!             let _ = conn.send(Command::Respond { id, payload }).await;
//!         }
//!     }));
//!
//!     let conn = AsyncStd.connect(addr, messages()).await?;
//!     conn.send(Command::Request { payload: "ping".into(), timeout: None }).await?;
//!     let Some(Ok(Event::Response { id: 1, payload })) = conn.recv().await else { panic!("no response") };
//!     assert_eq!(payload, "ping");
//!     conn.join().await?;
//!     Ok(())
//! }
//! ```
//!
//! A KCOM5 transfer ([`kcom`]: the originals' defaults are `::1`, port 13600, 150 s):
//!
//! ```
//! use switchboard_async_std::kcom::{self, KcomListener, KcomOptions};
//! use switchboard_async_std::AsyncStd;
//!
//! #[async_std::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = KcomOptions::new().ipv4(true).port(0); // port 0: the system picks one
//!     let listener = KcomListener::bind(&AsyncStd, &options)?;
//!     let options = options.port(listener.port());
//!     let sender = async_std::task::spawn(listener.send("hello", "some data"));
//!
//!     let (msg, data) = kcom::receive(&AsyncStd, &options).await?;
//!     assert_eq!((msg.as_str(), &data[..]), ("hello", &b"some data"[..]));
//!     sender.await?;
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use switchboard_proto::Instant as MachineInstant;
use switchboard_rt::clock::wall_to_std;

pub use switchboard_proto as proto;
/// KCOM5 transfers on this runtime (see [`switchboard_rt::kcom`]).
pub use switchboard_rt::kcom;
/// The router hub (WIRE §5) and its clients on this runtime (see [`switchboard_rt::router`]).
pub use switchboard_rt::router;
pub use switchboard_rt::{
    multicast, Commands, Connection, Connections, DatagramSocket, Delivery, Direct, Drivable, DriverConfig,
    DriverError, DriverStats, Events, Listener, OsEntropy, Runtime, RuntimeExt, SendError, SocketOptions, SocketRef,
    SpecConnectError, SpecListener,
};

/// async-std, as a [`Runtime`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

/// async-std's `sleep`, made again when the deadline moves (the driver re-arms rarely: only
/// when a deadline comes earlier than the one set, or the timer fired).
pub struct AsyncStdTimer(Pin<Box<dyn Future<Output = ()> + Send>>);

impl std::fmt::Debug for AsyncStdTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AsyncStdTimer")
    }
}

fn sleep_until(at: MachineInstant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async_std::task::sleep(wall_to_std(at).saturating_duration_since(StdInstant::now())))
}

impl switchboard_rt::Timer for AsyncStdTimer {
    fn reset(&mut self, at: MachineInstant) {
        self.0 = sleep_until(at);
    }

    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// An async-std TCP listener.
#[derive(Debug)]
pub struct TcpListener(pub async_std::net::TcpListener);

impl TcpListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Listener for TcpListener {
    type Stream = async_std::net::TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// An async-std Unix listener.
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixListener(pub async_std::os::unix::net::UnixListener);

#[cfg(unix)]
impl Listener for UnixListener {
    type Stream = async_std::os::unix::net::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The UDP socket on the async-io reactor, shared with the other async-io adapter.
pub use switchboard_rt::async_io_udp::UdpSocket;

impl Runtime for AsyncStd {
    type Timer = AsyncStdTimer;
    type Tcp = async_std::net::TcpStream;
    type TcpListener = TcpListener;
    #[cfg(unix)]
    type Unix = async_std::os::unix::net::UnixStream;
    #[cfg(unix)]
    type UnixListener = UnixListener;
    type Udp = UdpSocket;

    fn timer(&self, at: MachineInstant) -> AsyncStdTimer {
        AsyncStdTimer(sleep_until(at))
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(future));
    }

    async fn tcp_connect(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<Self::Tcp> {
        // async-std's own connect takes no options: connect on async-io, the reactor async-std
        // runs on, and hand the connected socket over.
        let stream = switchboard_rt::sockets::async_io_tcp_connect(addr, options).await?;
        Ok(stream.into_inner()?.into())
    }

    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener(listener.into()))
    }

    #[cfg(unix)]
    async fn unix_connect(&self, path: std::path::PathBuf) -> io::Result<Self::Unix> {
        async_std::os::unix::net::UnixStream::connect(path).await
    }

    #[cfg(unix)]
    fn unix_listener(&self, listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener(listener.into()))
    }

    fn udp(&self, socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::new(socket)
    }
}
