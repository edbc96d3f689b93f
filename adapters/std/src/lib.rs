//! # switchboard-std
//!
//! The blocking driver: runs any Switchboard [`Machine`](switchboard_proto::Machine) over a std
//! [`TcpStream`](std::net::TcpStream), [`UnixStream`](std::os::unix::net::UnixStream) (any
//! [`BlockingStream`]) or [`UdpSocket`](std::net::UdpSocket), with plain threads and no runtime.
//!
//! | entry point | runs | events go to |
//! |---|---|---|
//! | [`Direct`] (Unix) | on this thread, no extra threads or channels: the fastest | [`Direct::recv`] / iteration; commands via [`Direct::send`] |
//! | [`spawn`] / [`connect`] / [`spawn_datagram`] | on a new thread | [`Events`] (an iterator); commands via [`Handle`] |
//! | [`run`] / [`run_datagram`] | on this thread | a callback `FnMut(Notice, &mut Control)` |
//! | [`serve`] (TCP, Unix: any [`BlockingListener`]) / [`serve_spec`] | one thread per accepted connection | a [`Session`] per connection; by id ([`Control::id`]) through [`Server::connection`] / [`Server::close`] / [`Server::signal`] |
//!
//! ## Design
//!
//! Every stream driver here is one shell over [`Inline`](switchboard_proto::driver::Inline),
//! the I/O-free connection core: it decides when to read, write, drain, pause and linger, and
//! the shell does the non-blocking reads, vectored writes and `poll(2)` waits it asks for.
//! [`Direct`] runs that shell on the caller's thread. The threaded drivers ([`spawn`], [`run`],
//! [`serve`]) run the same shell on **one thread per connection**, which also waits on an
//! eventfd that the application's [`Handle`]s (a command, a close) and [`Events`] (room again)
//! ring, only while the driver sleeps. Frames are slices of the receive buffer (zero-copy in)
//! and the machine's own `Bytes` go to `writev` (zero-copy out). A connection that read nothing
//! for a second gives its receive buffer back.
//!
//! **Backpressure and bounds.** While the bytes queued for the socket reach the machine's
//! [`write_budget`](switchboard_proto::Machine::write_budget), the driver takes nothing from
//! the command channel ([`Handle::send`] blocks) and hands a callback no further event, so
//! its replies cannot pile up either; reads that make the machine transmit stop. Reads that
//! only produce events go on (holding at most
//! [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD)), so two peers that each send
//! faster than the other reads do not wait on each other forever. With [`spawn`], at most
//! [`Settings::events`] notices wait for the application; while they do, the driver stops
//! reading. [`serve`] runs at most [`Settings::max_connections`] connections and closes the
//! excess at once.
//!
//! **Graceful close.** [`Handle::close`], [`Control::close`] or dropping every [`Handle`] feeds
//! the machine `Input::Close` after every command sent before it. When the machine has finished and
//! everything it transmitted is written, the driver shuts down the write side (the peer sees
//! EOF), drains what the peer still sends until its EOF or the [linger](Settings::linger) time,
//! and closes. Nothing the driver accepted is dropped, unless the peer stops reading for the
//! whole linger time: then [`DriverError::Unflushed`] says how much.
//!
//! **The peer's EOF.** The driver feeds it at once; the machine reports every event before it
//! and then goes read-closed, still taking commands. With [`spawn`]/[`connect`] the
//! [`Events`] end there and the connection stays open for the application's answers until it
//! closes or drops its handles; with [`run`]/[`serve`] the handler has answered every event on
//! the driver thread already, so the driver closes.
//!
//! **Results.** `run` and [`DriverThread::join`] return `Ok(())` for a clean end, or a
//! [`DriverError`] saying who was wrong: the machine's own error (its
//! [`Blame`](switchboard_proto::Blame) tells peer from caller), or the socket's I/O error.
//! Commands the machine refuses arrive as [`Notice::Refused`] and the connection goes on.
//!
//! The datagram driver has a reader thread and a driver thread that sends itself (UDP sends
//! do not wait for the peer). Socket helpers for binding with options and joining IPv4/IPv6
//! multicast groups are in [`switchboard_rt::net`], re-exported as [`net`], with the seed's
//! `broker.aton` that resolves host names ([`net::aton`]) and `broker.ifaddr`
//! ([`net::interfaces`]).
//!
//! ## Example: a STAGE packet echo over TCP on loopback
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use bytes::Bytes;
//! use switchboard_proto::stage::{Command, Error, Event, FramingConfig, PacketConnection};
//! use switchboard_std::{serve, spawn, Control, Notice, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = FramingConfig::packet(8192, 0);
//!
//! // The server: every frame that arrives is sent back as it is (header included).
//! let server = serve(
//!     TcpListener::bind("127.0.0.1:0")?,
//!     Settings::packet(),
//!     move |_peer| PacketConnection::new(config),
//!     |_peer| {
//!         |notice: Notice<Event, Error>, control: &mut Control<Command>| {
//!             if let Notice::Event(Event::Frame(frame)) = notice {
//!                 control.send(Command::Send(frame));
//!             }
//!         }
//!     },
//! )?;
//!
//! // The client: a machine on its own thread, driven through a handle.
//! let stream = TcpStream::connect(server.local_addr())?;
//! let mut client = spawn(stream, PacketConnection::new(config), Settings::packet())?;
//! for word in ["alpha", "beta", "gamma"] {
//!     client.handle.send(Command::SendBody(Bytes::from(word)))?;
//! }
//! let echoes: Vec<Bytes> = (&mut client.events)
//!     .filter_map(Notice::event)
//!     .take(3)
//!     .map(|Event::Frame(frame)| frame.slice(4..))
//!     .collect();
//! assert_eq!(echoes, ["alpha", "beta", "gamma"]);
//!
//! // Dropping the handle closes gracefully; both ends finish cleanly.
//! client.close_and_join()?;
//! server.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! ## Example: typed message frames, request/response, with [`Direct`]
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use std::thread;
//! use switchboard_proto::message::{Command, Event, MessageConfig, MessageConnection};
//! use switchboard_std::{Direct, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
//! let settings = Settings::new;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//!
//! // The server answers every request with its own payload, until the client closes.
//! let server = thread::spawn(move || {
//!     let (stream, _) = listener.accept().unwrap();
//!     let mut conn = Direct::new(stream, messages(), settings()).unwrap();
//!     while let Some(Ok(event)) = conn.recv() {
//!         if let Event::Request { id, payload } = event {
//!             conn.send(Command::Respond { id, payload }).unwrap();
//!         }
//!     }
//! });
//!
//! let mut client = Direct::new(TcpStream::connect(addr)?, messages(), settings())?;
//! client.send(Command::Request { payload: "ping".into(), timeout: None })?;
//! let Some(Ok(Event::Response { id: 1, payload })) = client.recv() else { panic!("no response") };
//! assert_eq!(payload, "ping");
//! client.close_and_join()?;
//! server.join().unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! Encrypted connections from STAGE specs are in [`connect_spec`] / [`serve_spec`]; KCOM5
//! one-shot transfers in [`kcom`], the blocking form of the async adapters' API
//! (`switchboard_rt::kcom`): the same names, options and errors, streaming from any `Read` and
//! into any `Write`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod conn;
mod datagram;
#[cfg(unix)]
mod direct;
mod error;
mod handle;
pub mod kcom;
mod server;
mod spec;
mod stream;
mod transport;

pub use datagram::{run_datagram, spawn_datagram};
#[cfg(unix)]
pub use direct::{Direct, SendError};
pub use error::DriverError;
pub use handle::{Closed, Control, DriverThread, Events, Handle, Notice, Running, Settings, Stats, TrySendError};
pub use server::{serve, Server, Session};
pub use spec::{bind_spec, connect_spec, connect_spec_with, serve_spec};
pub use stream::{connect, run, spawn};
/// The protocol crate, re-exported so examples need one dependency.
pub use switchboard_proto as proto;
pub use switchboard_rt::SpecConnectError;
#[cfg(unix)]
pub use transport::socketpair;
pub use transport::{Addr, BlockingListener, BlockingStream};

/// The shared runtime glue, re-exported: socket options, the socket helpers, name resolution
/// ([`net::aton`]) and interface addresses ([`net::interfaces`]).
pub use switchboard_rt::{net, Multicast, MulticastInterface, SocketOptions};
