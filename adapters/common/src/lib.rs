//! # switchboard-rt
//!
//! What every Switchboard runtime adapter shares, so none of them copies it: the wall clock
//! turned into the machines' [`Instant`](switchboard_proto::Instant) ([`Clock`]), the operating
//! system's random source ([`OsEntropy`]), the seed-001 socket options ([`SocketOptions`])
//! applied through `socket2`, and the [`net`] helpers that open sockets with those options set
//! at the right moment (before `bind` / `connect`) and manage multicast membership.
//!
//! ```
//! use switchboard_rt::{Clock, OsEntropy, SocketOptions};
//! use switchboard_proto::Entropy;
//!
//! let clock = Clock::new();
//! let t0 = clock.now();
//! assert!(clock.now() >= t0);
//!
//! let mut hello = [0u8; 3];
//! OsEntropy.fill(&mut hello);
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
//! SocketOptions::new().nodelay(true).apply(&stream).unwrap();
//! assert!(stream.nodelay().unwrap());
//! ```
//!
//! ## The async driver, written once
//!
//! Modelled on quinn's runtime layer: an async runtime implements the small [`Runtime`] trait
//! (a re-armable [`Timer`], `spawn`, and its TCP, Unix and UDP socket types behind
//! `futures-io` streams, [`Listener`] and [`DatagramSocket`]). Everything else is generic and
//! lives here: the stream and datagram drivers ([`async_driver`]), connect / listen / serve /
//! bind ([`RuntimeExt`]), served connections by id ([`Connections`], filled by
//! [`RuntimeExt::serve_tracked`]), `socket2` constructors with [`SocketOptions`] applied ([`sockets`]),
//! multicast membership ([`multicast`]), and the conformance matrix every adapter runs
//! (`testing`, behind the `testing` feature). `switchboard-tokio`, `switchboard-smol` and
//! `switchboard-async-std` hold only their runtime's trait impls.
//!
//! ## KCOM5, one vocabulary
//!
//! [`kcom`] holds what every KCOM5 API shares — [`kcom::KcomOptions`], [`kcom::KcomError`]
//! (whose [`Blame`](switchboard_proto::Blame) tells the peer's faults from the caller's), the
//! received pieces, and the building blocks in [`kcom::parts`] — and the async API itself
//! (`KcomListener`, `connect`, `send_from` from an `AsyncRead`, `receive_to` into an
//! `AsyncWrite`, …), which the async adapters re-export as their `kcom`. `switchboard-std`'s
//! blocking `kcom` has the same names on the same types.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Machine time on the wall clock, and the operating system's random source.
pub mod clock;
mod direct;
pub mod net;
mod options;

pub mod async_driver;
#[cfg(feature = "async-io")]
pub mod async_io_udp;
mod ext;
pub mod kcom;
pub mod multicast;
mod registry;
pub mod router;
pub mod runtime;
pub mod sockets;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;

pub use async_driver::{
    datagram_driver, stream_driver, Commands, Connection, Delivery, Done, Drivable, DriverConfig, DriverError,
    DriverStats, Events, Stats,
};
pub use clock::{Clock, OsEntropy};
pub use direct::{Direct, SendError};
pub use ext::RuntimeExt;
pub use net::{Multicast, MulticastInterface};
pub use options::{Keepalive, SocketOptions};
pub use registry::Connections;
pub use runtime::{ByteStream, DatagramSocket, Listener, Runtime, SocketRef, Timer};
pub use spec::{SpecConnectError, SpecListener};
