//! Typed message frames (WIRE.md §4): request, response, notification, heartbeat and error
//! frames carried as STAGE packet frames, with request/response correlation and heartbeats.
//!
//! ```text
//! | u32 LE header (len incl. itself, bit 31 encrypted) | type u8 | id u64 LE | payload |
//! ```
//!
//! - [`codec`]: [`MessageKind`], [`Message`], encoding into a plain frame and zero-copy decoding.
//! - [`ids`]: [`RequestIds`], per-connection request ids 1, 2, 3, … (never 0).
//! - [`correlation`]: [`Correlation`], pending requests and their deadlines.
//! - [`connection`]: [`MessageConnection`], the machine. It is built on a
//!   [`PacketConnection`](crate::stage::PacketConnection), so the IN/OUT limits, output
//!   coalescing, `expire` and cipher streams are the packet layer's, unchanged.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use switchboard_proto::machine::drain;
//! use switchboard_proto::message::{Command, Event, MessageConfig, MessageConnection};
//! use switchboard_proto::{Input, Instant, Machine};
//!
//! let now = Instant::ZERO;
//! let mut client = MessageConnection::new(MessageConfig::default()).unwrap();
//! let mut server = MessageConnection::new(MessageConfig::default()).unwrap();
//!
//! let id = client.request(now, Bytes::from_static(b"ping"), None).unwrap();
//! let mut wire = BytesMut::from(&drain(&mut client, now).wire()[..]);
//! server.handle_input(now, Input::Stream(&mut wire)).unwrap();
//! let request = drain(&mut server, now).events;
//! assert_eq!(request, [Event::Request { id, payload: Bytes::from_static(b"ping") }]);
//!
//! server.handle_input(now, Input::Command(Command::Respond { id, payload: Bytes::from_static(b"pong") })).unwrap();
//! let mut wire = BytesMut::from(&drain(&mut server, now).wire()[..]);
//! client.handle_input(now, Input::Stream(&mut wire)).unwrap();
//! assert_eq!(drain(&mut client, now).events, [Event::Response { id, payload: Bytes::from_static(b"pong") }]);
//! ```

pub mod codec;
pub mod connection;
pub mod correlation;
mod error;
pub mod ids;

pub use codec::{encode_message, Message, MessageKind, PREFIX_LEN};
pub use connection::{Command, ErrorPayload, Event, MessageConfig, MessageConnection, DEFAULT_MAX_PENDING};
pub use correlation::{Completion, Correlation};
pub use error::Error;
pub use ids::RequestIds;
