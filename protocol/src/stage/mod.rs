//! STAGE packet framing (WIRE.md §2): the frame codec, the stream connection machine, the
//! datagram machine and the connection-spec parser.
//!
//! A frame is a little-endian `u32` header (bits 0..30 = total length including the header,
//! bit 31 = encrypted) followed by its body. A BSON document is already a valid plain frame.

pub mod codec;
pub mod connection;
mod error;

pub use codec::{FrameDecoder, Header, HEADER_LEN};
pub use connection::{Command, Event, Filter, FramingConfig, PacketConnection};
pub use error::Error;
