//! Runnable examples: see `src/bin/`.
//!
//! * `framing_demo`: a STAGE packet-framing echo server on loopback driven by
//!   `switchboard-std`, several clients (some coalescing with a commit timer) and a text-filter
//!   connection, every echo verified, and a short report.
//! * `event_loop`: a machine driven by a hand-written single-threaded event loop over
//!   non-blocking std sockets (`mio` for readiness, `Inline` for every decision, no runtime).
//!
//! The heart of `event_loop`, without the sockets: an
//! [`Inline`](switchboard_proto::driver::Inline) takes the application's commands, says when to
//! write and read, and hands out events, while your loop does the I/O.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use switchboard_proto::driver::Inline;
//! use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
//! use switchboard_proto::Instant;
//!
//! let now = Instant::ZERO;
//! let machine = PacketConnection::new(FramingConfig::default());
//! let mut inline = Inline::new(now, machine, 16 * 1024, Duration::from_secs(1));
//! inline.send(now, Command::SendBody(Bytes::from_static(b"ping"))).unwrap();
//! assert!(inline.has_writes(now));
//! let wire: Vec<u8> = inline.writes().chunks().flatten().copied().collect(); // what a socket write would take
//! inline.writes().advance(wire.len());
//!
//! // As if the peer echoed it: the read goes straight into the receive buffer.
//! inline.read_buffer()[..wire.len()].copy_from_slice(&wire);
//! inline.on_read(now, wire.len(), false);
//! let Some(Ok(Event::Frame(frame))) = inline.next(now) else { panic!("no frame") };
//! assert_eq!(&frame[4..], b"ping");
//! ```
#![forbid(unsafe_code)]
