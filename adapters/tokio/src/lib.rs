//! # switchboard-tokio
//!
//! Runs any Switchboard machine on tokio. This crate only plugs tokio into the runtime-neutral
//! driver of [`switchboard_rt`]: [`Tokio`] implements [`Runtime`] (timer, spawn, sockets) and
//! everything else — connect, listen, serve (also with connections by id: [`Connections`]),
//! UDP, multicast, the driver itself — comes from [`RuntimeExt`], the same code every adapter
//! runs.
//!
//! A packet-frame echo over TCP on loopback:
//!
//! ```
//! use switchboard_tokio::proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_tokio::{RuntimeExt, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let packets = || PacketConnection::new(FramingConfig::default());
//!     let listener = Tokio.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     tokio::spawn(Tokio.serve(listener, move |_| packets(), |conn| async move {
//!         while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!             let _ = conn.send(Command::Send(frame)).await;
//!         }
//!     }));
//!
//!     let conn = Tokio.connect(addr, packets()).await?;
//!     conn.send(Command::SendBody("hello".into())).await?;
//!     let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!     assert_eq!(&echo[4..], b"hello");
//!     conn.join().await?; // closes gracefully: everything queued is written first
//!     Ok(())
//! }
//! ```
//!
//! The fastest way, with no driver task and no channels: [`Direct`] runs the machine inside
//! your own task (`serve_direct` gives each connection one task):
//!
//! ```
//! use switchboard_tokio::proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_tokio::{DriverConfig, RuntimeExt, SocketOptions, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let packets = || PacketConnection::new(FramingConfig::packet(64 * 1024, 64 * 1024));
//!     let listener = Tokio.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let (options, config) = (SocketOptions::new(), DriverConfig::default());
//!     tokio::spawn(Tokio.serve_direct(listener, options.clone(), config.clone(), move |_| packets(), |mut conn| async move {
//!         while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!             let _ = conn.send(Command::Send(frame)).await;
//!         }
//!     }));
//!
//!     let mut conn = Tokio.connect_direct(addr, options, config, packets()).await?;
//!     for i in 0..1000u32 {
//!         conn.send(Command::SendBody(i.to_le_bytes().to_vec().into())).await?; // coalesced
//!     }
//!     for i in 0..1000u32 {
//!         let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!         assert_eq!(&echo[4..], i.to_le_bytes());
//!     }
//!     conn.close_and_join().await?;
//!     Ok(())
//! }
//! ```
//!
//! The same exchange encrypted: both ends opened from connection specs, whose `crypto=` option
//! picks the cipher (STAGE `ALGO/MODE/PADDING=key` or the sealed `AES-256-GCM=key`):
//!
//! ```
//! use switchboard_tokio::proto::stage::{Command, Event};
//! use switchboard_tokio::{RuntimeExt, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = "packet=64k,64k&crypto=AES/CFB/NoPadding=secret";
//!     let listener = Tokio.listen_spec(&format!("tcp://127.0.0.1:0?{options}"))?;
//!     let port = listener.local_addr()?.port();
//!     tokio::spawn(listener.serve(|conn| async move {
//!         while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
//!             let _ = conn.send(Command::SendBody(frame.slice(4..))).await; // decrypted in, encrypted out
//!         }
//!     }));
//!
//!     let conn = Tokio.connect_spec(&format!("tcp://127.0.0.1:{port}?{options}")).await?;
//!     conn.send(Command::SendBody("hello".into())).await?;
//!     let Some(Ok(Event::Frame(echo))) = conn.recv().await else { panic!("no echo") };
//!     assert_eq!(&echo[4..], b"hello");
//!     conn.join().await?;
//!     Ok(())
//! }
//! ```
//!
//! The seed broker's `f(id)` and `close(id)`: `serve_tracked` gives every connection an id and
//! keeps it reachable through a [`Connections`] registry until its driver finishes:
//!
//! ```
//! use switchboard_tokio::proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_tokio::{Connections, DriverConfig, RuntimeExt, SocketOptions, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let packets = || PacketConnection::new(FramingConfig::default());
//!     let listener = Tokio.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let broker = Connections::new();
//!     // Each new connection's id, for whoever addresses connections by id.
//!     let (ids_tx, mut ids) = tokio::sync::mpsc::unbounded_channel();
//!     let (options, config) = (SocketOptions::new(), DriverConfig::default());
//!     tokio::spawn(Tokio.serve_tracked(listener, broker.clone(), options, config, move |_| packets(), move |id, conn| {
//!         let _ = ids_tx.send(id);
//!         async move { while conn.recv().await.is_some() {} } // hold the connection until it ends
//!     }));
//!
//!     let conn = Tokio.connect(addr, packets()).await?;
//!     let id = ids.recv().await.expect("the server accepted it");
//!     broker.get(id).expect("registered").send(Command::SendBody("from the broker".into())).await?;
//!     let Some(Ok(Event::Frame(frame))) = conn.recv().await else { panic!("nothing sent") };
//!     assert_eq!(&frame[4..], b"from the broker");
//!     assert!(broker.close(id));
//!     assert!(conn.recv().await.is_none(), "closed by id");
//!     conn.join().await?;
//!     Ok(())
//! }
//! ```
//!
//! Typed message frames, request/response:
//!
//! ```
//! use switchboard_tokio::proto::message::{Command, Event, MessageConfig, MessageConnection};
//! use switchboard_tokio::{RuntimeExt, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
//!     let listener = Tokio.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     tokio::spawn(Tokio.serve(listener, move |_| messages(), |conn| async move {
//!         while let Some(Ok(Event::Request { id, payload })) = conn.recv().await {
//!             let _ = conn.send(Command::Respond { id, payload }).await;
//!         }
//!     }));
//!
//!     let conn = Tokio.connect(addr, messages()).await?;
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
//! use switchboard_tokio::kcom::{self, KcomListener, KcomOptions};
//! use switchboard_tokio::Tokio;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = KcomOptions::new().ipv4(true).port(0); // port 0: the system picks one
//!     let listener = KcomListener::bind(&Tokio, &options)?;
//!     let options = options.port(listener.port());
//!     let sender = tokio::spawn(listener.send("hello", "some data"));
//!
//!     let (msg, data) = kcom::receive(&Tokio, &options).await?;
//!     assert_eq!((msg.as_str(), &data[..]), ("hello", &b"some data"[..]));
//!     sender.await??;
//!     Ok(())
//! }
//! ```
//!
//! The same API as `switchboard_std::kcom` (see [`switchboard_rt::kcom`]), streaming too:
//! `send_from` reads a chunk at a time and `receive_to` writes as the data arrives, so memory
//! stays at a few MiB whatever the size. Their readers and writers are `futures-io`'s; a tokio
//! one (a `tokio::fs::File`, say) goes in through [`TokioStream`]. Progress callbacks are
//! optional:
//!
//! ```
//! use switchboard_tokio::kcom::{self, KcomListener, KcomOptions};
//! use switchboard_tokio::{Tokio, TokioStream};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = KcomOptions::new().ipv4(true).port(0);
//!     let listener = KcomListener::bind(&Tokio, &options)?;
//!     let options = options.port(listener.port());
//!     let source = TokioStream(&b"streamed data"[..]); // any tokio::io::AsyncRead
//!     let sender = tokio::spawn(listener.send_from("file.bin", 13, source, None));
//!
//!     let mut sink = TokioStream(Vec::new()); // any tokio::io::AsyncWrite
//!     let mut last = (0, 0);
//!     let mut progress = |done, total| last = (done, total);
//!     let header = kcom::receive_to(&Tokio, &options, &mut sink, Some(&mut progress)).await?;
//!     sender.await??;
//!     assert_eq!((header.msg.as_str(), &sink.0[..], last), ("file.bin", &b"streamed data"[..], (13, 13)));
//!     Ok(())
//! }
//! ```
//!
//! The router hub (WIRE §5, [`router`]) and two clients: one broadcasts, the other hears it.
//!
//! ```
//! use switchboard_tokio::proto::router::{ClientCommand, ClientConfig, ClientEvent, FromHub, Hello, Hub, HubConfig};
//! use switchboard_tokio::router::{self, HubSettings};
//! use switchboard_tokio::{DriverConfig, OsEntropy, RuntimeExt, SocketOptions, Tokio};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = Tokio.listen("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let hub = Hub::new(HubConfig::default(), Box::new(OsEntropy));
//!     let (hub, accept) = router::serve_hub(Tokio, listener, hub, HubSettings::default())?;
//!     tokio::spawn(accept);
//!
//!     let join = |name: &str| {
//!         let config = ClientConfig::new(router::message_config(), Hello::new(name, "demo"));
//!         router::connect(Tokio, addr, config, SocketOptions::new(), DriverConfig::default())
//!     };
//!     let alice = join("alice").await?;
//!     let Some(Ok(ClientEvent::Welcome { unique, .. })) = alice.recv().await else { panic!("no welcome") };
//!     let bob = join("bob").await?;
//!     let Some(Ok(ClientEvent::Welcome { clients, .. })) = bob.recv().await else { panic!("no welcome") };
//!     assert_eq!(clients[0].name, "alice");
//!
//!     alice.send(ClientCommand::broadcast("hi", bson::doc! { "n": 1 })).await?;
//!     let Some(Ok(ClientEvent::Hub(FromHub::Op { from, op, .. }))) = bob.recv().await else { panic!("no op") };
//!     assert_eq!((from, op.as_str()), (unique, "hi"));
//!     assert_eq!(hub.len(), 2);
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use switchboard_proto::Instant as MachineInstant;
use switchboard_rt::clock::wall_to_std;

use tokio::io::{AsyncRead as TokioRead, AsyncWrite as TokioWrite, ReadBuf};

pub use switchboard_proto as proto;
/// KCOM5 transfers on this runtime (see [`switchboard_rt::kcom`]; readers and writers are
/// `futures-io`'s: wrap tokio's in [`TokioStream`]).
pub use switchboard_rt::kcom;
/// The router hub (WIRE §5) and its clients on this runtime (see [`switchboard_rt::router`]).
pub use switchboard_rt::router;
pub use switchboard_rt::{
    multicast, Commands, Connection, Connections, DatagramSocket, Delivery, Direct, Drivable, DriverConfig,
    DriverError, DriverStats, Events, Listener, OsEntropy, Runtime, RuntimeExt, SendError, SocketOptions, SocketRef,
    SpecConnectError, SpecListener,
};

/// The tokio runtime, as a [`Runtime`]. Use it inside a tokio runtime (it spawns with
/// `tokio::spawn` and registers sockets with the current reactor).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

/// tokio's `Sleep`, re-armed in place.
#[derive(Debug)]
pub struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl switchboard_rt::Timer for TokioTimer {
    fn reset(&mut self, at: MachineInstant) {
        self.0.as_mut().reset(wall_to_std(at).into());
    }

    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// A tokio stream seen through the runtime-neutral `futures-io` traits (vectored writes
/// included; closing shuts the write side down).
#[derive(Debug)]
pub struct TokioStream<T>(pub T);

impl<T: TokioRead + Unpin> futures_io::AsyncRead for TokioStream<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: TokioWrite + Unpin> futures_io::AsyncWrite for TokioStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(unix)]
impl<T: std::os::fd::AsFd> std::os::fd::AsFd for TokioStream<T> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsSocket> std::os::windows::io::AsSocket for TokioStream<T> {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.as_socket()
    }
}

/// A tokio TCP listener.
#[derive(Debug)]
pub struct TcpListener(pub tokio::net::TcpListener);

impl TcpListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Listener for TcpListener {
    type Stream = TokioStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = self.0.accept().await?;
        Ok((TokioStream(stream), addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A tokio Unix listener.
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixListener(pub tokio::net::UnixListener);

#[cfg(unix)]
impl Listener for UnixListener {
    type Stream = TokioStream<tokio::net::UnixStream>;
    type Addr = std::os::unix::net::SocketAddr;

    async fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)> {
        let (stream, addr) = self.0.accept().await?;
        Ok((TokioStream(stream), addr.into()))
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr()?.into())
    }
}

/// A tokio UDP socket.
#[derive(Debug)]
pub struct UdpSocket(pub tokio::net::UdpSocket);

#[cfg(unix)]
impl std::os::fd::AsFd for UdpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for UdpSocket {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.as_socket()
    }
}

impl DatagramSocket for UdpSocket {
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_recv_ready(cx)
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_send_ready(cx)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.try_recv_from(buf)
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(buf, to)
    }
}

impl Runtime for Tokio {
    type Timer = TokioTimer;
    type Tcp = TokioStream<tokio::net::TcpStream>;
    type TcpListener = TcpListener;
    #[cfg(unix)]
    type Unix = TokioStream<tokio::net::UnixStream>;
    #[cfg(unix)]
    type UnixListener = UnixListener;
    type Udp = UdpSocket;

    fn timer(&self, at: MachineInstant) -> TokioTimer {
        TokioTimer(Box::pin(tokio::time::sleep_until(wall_to_std(at).into())))
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        tokio::spawn(future);
    }

    async fn tcp_connect(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<Self::Tcp> {
        let stream = tokio::net::TcpStream::from_std(switchboard_rt::sockets::tcp_connecting(addr, options)?)?;
        stream.writable().await?;
        match stream.take_error()? {
            None => Ok(TokioStream(stream)),
            Some(e) => Err(e),
        }
    }

    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener(tokio::net::TcpListener::from_std(listener)?))
    }

    #[cfg(unix)]
    async fn unix_connect(&self, path: std::path::PathBuf) -> io::Result<Self::Unix> {
        Ok(TokioStream(tokio::net::UnixStream::connect(path).await?))
    }

    #[cfg(unix)]
    fn unix_listener(&self, listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener(tokio::net::UnixListener::from_std(listener)?))
    }

    fn udp(&self, socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket(tokio::net::UdpSocket::from_std(socket)?))
    }
}
