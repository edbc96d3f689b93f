//! # switchboard-proto
//!
//! Sans-IO protocol state machines: they do no I/O, read no clock, draw no randomness and spawn
//! nothing. Time arrives as an [`Instant`] value on every call, randomness through an injected
//! [`Entropy`] source, received bytes as a [`bytes::BytesMut`] the driver owns, and everything
//! going out is drained as [`Output`] values until the machine reports its next deadline.
//!
//! Every machine implements one trait, [`Machine`]; one generic driver per runtime (see the
//! `switchboard-std`, `switchboard-tokio`, … crates) runs any of them. The poll order is written
//! down in [`machine`] and in `docs/ARCHITECTURE.md`.
//!
//! The protocols, one module each (WIRE.md sections in brackets):
//! - [`kcom`]: KCOM5 one-shot transfers (§1);
//! - [`stage`]: STAGE packet, text and raw framing over streams and datagrams (§2);
//! - [`crypto`]: the cipher streams, STAGE profile and sealed profile (§3);
//! - [`message`]: typed message frames with request correlation and heartbeats (§4);
//! - `router` (with the `std` feature, which brings `bson`): the hub and client of the router
//!   protocol, riding on message frames (§5).
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use switchboard_proto::{Input, Instant, Machine, Output};
//! use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
//!
//! let now = Instant::ZERO;
//! let mut conn = PacketConnection::new(FramingConfig::packet(8192, 8192));
//!
//! // The application sends one frame: a body; the machine writes the header.
//! conn.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(b"hello")))).unwrap();
//! let mut wire = Vec::new();
//! while let Output::Transmit(bytes) = conn.poll_output(now) {
//!     wire.extend_from_slice(&bytes);
//! }
//! assert_eq!(wire, b"\x09\x00\x00\x00hello");
//!
//! // The same bytes arriving from the peer come back out as one frame, header included.
//! let mut received = BytesMut::from(&wire[..]);
//! conn.handle_input(now, Input::Stream(&mut received)).unwrap();
//! match conn.poll_output(now) {
//!     Output::Event(Event::Frame(frame)) => assert_eq!(&frame[4..], b"hello"),
//!     other => panic!("expected a frame, got {other:?}"),
//! }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod driver;
pub mod entropy;
pub mod fault;
pub mod machine;
pub mod time;

pub mod crypto;
pub mod kcom;
pub mod message;
#[cfg(feature = "std")]
pub mod router;
pub mod stage;

pub use entropy::{Entropy, SplitMix64};
pub use fault::{Blame, Fault};
pub use machine::{Input, Machine, Output};
pub use time::Instant;

/// `core::time::Duration`, re-exported: the one duration type every machine takes.
pub use core::time::Duration;
