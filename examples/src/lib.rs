//! Runnable examples: see `src/bin/`.
//!
//! * `framing_demo`: a STAGE packet-framing echo server on loopback driven by
//!   `switchboard-std`, several clients (some coalescing with a commit timer) and a text-filter
//!   connection, every echo verified, and a short report.
//! * `event_loop`: a machine driven by a hand-written single-threaded event loop over
//!   non-blocking std sockets (`mio` for readiness, `Pump` for the bookkeeping, no runtime).
//!
//! The heart of `event_loop`, without the sockets: a [`Pump`](switchboard_proto::driver::Pump)
//! keeps a machine's write queue and deadline while your loop does the I/O.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use switchboard_proto::driver::Pump;
//! use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_proto::{Input, Instant};
//!
//! let mut pump = Pump::new(PacketConnection::new(FramingConfig::default()));
//! let now = Instant::ZERO;
//! pump.input(now, Input::Command(Command::SendBody(Bytes::from_static(b"ping"))), |_| {}).unwrap();
//! let wire: Vec<u8> = pump.writes().chunks().flatten().copied().collect(); // what a socket write would take
//! let n = wire.len();
//! pump.writes().advance(n);
//!
//! let mut rx = BytesMut::from(&wire[..]); // as if the peer echoed it
//! let mut frames = Vec::new();
//! pump.input(now, Input::Stream(&mut rx), |Event::Frame(f)| frames.push(f)).unwrap();
//! assert_eq!(&frames[0][4..], b"ping");
//! ```
#![forbid(unsafe_code)]
