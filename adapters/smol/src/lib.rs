//! # switchboard-smol
//!
//! Runs any Switchboard machine on smol. This crate only plugs smol (async-io's `Async<T>` and
//! `Timer`, smol's global executor) into the runtime-neutral driver of [`switchboard_rt`]:
//! [`Smol`] implements [`Runtime`], and connect, listen, serve (also with connections by id:
//! [`Connections`]), UDP, multicast and the driver itself come from [`RuntimeExt`], the same code
//! every adapter runs.
//!
//! A packet-frame echo over TCP on loopback:
//!
//! ```
//! use switchboard_smol::proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_smol::{RuntimeExt, Smol};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let packets = || PacketConnection::new(FramingConfig::default());
//!         let listener = Smol.listen("127.0.0.1:0")?;
//!         let addr = listener.local_addr()?;
//!         smol::spawn(Smol.serve(listener, move |_| packets(), |conn| async move {
//!             while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!                 let _ = conn.send(Command::Send(frame)).await;
//!             }
//!         }))
//!         .detach();
//!
//!         let conn = Smol.connect(addr, packets()).await?;
//!         conn.send(Command::SendBody("hello".into())).await?;
//!         let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!         assert_eq!(&echo[4..], b"hello");
//!         conn.join().await?; // closes gracefully: everything queued is written first
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The same exchange encrypted: both ends opened from connection specs, whose `crypto=` option
//! picks the cipher (STAGE `ALGO/MODE/PADDING=key` or the sealed `AES-256-GCM=key`):
//!
//! ```
//! use switchboard_smol::proto::stage::{Command, Event};
//! use switchboard_smol::{RuntimeExt, Smol};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let options = "packet=64k,64k&crypto=AES/CFB/NoPadding=secret";
//!         let listener = Smol.listen_spec(&format!("tcp://127.0.0.1:0?{options}"))?;
//!         let port = listener.local_addr()?.port();
//!         smol::spawn(listener.serve(|conn| async move {
//!             while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!                 let _ = conn.send(Command::SendBody(frame.slice(4..))).await; // decrypted in, encrypted out
//!             }
//!         })).detach();
//!
//!         let conn = Smol.connect_spec(&format!("tcp://127.0.0.1:{port}?{options}")).await?;
//!         conn.send(Command::SendBody("hello".into())).await?;
//!         let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!         assert_eq!(&echo[4..], b"hello");
//!         conn.join().await?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Typed message frames, request/response:
//!
//! ```
//! use switchboard_smol::proto::message::{Command, Event, MessageConfig, MessageConnection};
//! use switchboard_smol::{RuntimeExt, Smol};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
//!         let listener = Smol.listen("127.0.0.1:0")?;
//!         let addr = listener.local_addr()?;
//!         smol::spawn(Smol.serve(listener, move |_| messages(), |conn| async move {
//!             while let Some(Ok(Event::Request { id, payload })) = conn.recv().await {
//!                 let _ = conn.send(Command::Respond { id, payload }).await;
//!             }
//!         })).detach();
//!
//!         let conn = Smol.connect(addr, messages()).await?;
//!         conn.send(Command::Request { payload: "ping".into(), timeout: None }).await?;
//!         let Some(Ok(Event::Response { id: 1, payload })) = conn.recv().await else { panic!("no response") };
//!         assert_eq!(payload, "ping");
//!         conn.join().await?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! A KCOM5 transfer ([`kcom`]: the originals' defaults are `::1`, port 13600, 150 s):
//!
//! ```
//! use switchboard_smol::kcom::{self, KcomListener, KcomOptions};
//! use switchboard_smol::Smol;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let options = KcomOptions::new().ipv4(true).port(0); // port 0: the system picks one
//!         let listener = KcomListener::bind(&Smol, &options)?;
//!         let options = options.port(listener.port());
//!         let sender = smol::spawn(listener.send("hello", "some data"));
//!
//!         let (msg, data) = kcom::receive(&Smol, &options).await?;
//!         assert_eq!((msg.as_str(), &data[..]), ("hello", &b"some data"[..]));
//!         sender.await?;
//!         Ok(())
//!     })
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use switchboard_proto::Instant as MachineInstant;
use switchboard_rt::clock::wall_to_std;

use smol::Async;

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

/// smol, as a [`Runtime`]: tasks go to smol's global executor, sockets to async-io's reactor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

/// async-io's timer, re-armed in place.
#[derive(Debug)]
pub struct SmolTimer(smol::Timer);

impl switchboard_rt::Timer for SmolTimer {
    fn reset(&mut self, at: MachineInstant) {
        self.0.set_at(wall_to_std(at));
    }

    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A smol TCP listener.
#[derive(Debug)]
pub struct TcpListener(pub Async<std::net::TcpListener>);

impl TcpListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

impl Listener for TcpListener {
    type Stream = Async<std::net::TcpStream>;
    type Addr = SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A smol Unix listener.
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixListener(pub Async<std::os::unix::net::UnixListener>);

#[cfg(unix)]
impl Listener for UnixListener {
    type Stream = Async<std::os::unix::net::UnixStream>;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.get_ref().local_addr()
    }
}

/// The UDP socket on the async-io reactor, shared with the other async-io adapter.
pub use switchboard_rt::async_io_udp::UdpSocket;

impl Runtime for Smol {
    type Timer = SmolTimer;
    type Tcp = Async<std::net::TcpStream>;
    type TcpListener = TcpListener;
    #[cfg(unix)]
    type Unix = Async<std::os::unix::net::UnixStream>;
    #[cfg(unix)]
    type UnixListener = UnixListener;
    type Udp = UdpSocket;

    fn timer(&self, at: MachineInstant) -> SmolTimer {
        SmolTimer(smol::Timer::at(wall_to_std(at)))
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        smol::spawn(future).detach();
    }

    async fn tcp_connect(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<Self::Tcp> {
        switchboard_rt::sockets::async_io_tcp_connect(addr, options).await
    }

    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener(Async::new(listener)?))
    }

    #[cfg(unix)]
    async fn unix_connect(&self, path: std::path::PathBuf) -> io::Result<Self::Unix> {
        Async::<std::os::unix::net::UnixStream>::connect(path).await
    }

    #[cfg(unix)]
    fn unix_listener(&self, listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener(Async::new(listener)?))
    }

    fn udp(&self, socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::new(socket)
    }
}
