//! STAGE packet framing (WIRE.md §2): the frame codec, the stream connection machine, the
//! datagram machine and the connection-spec parser.
//!
//! | module         | what                                                   | machine states |
//! |----------------|--------------------------------------------------------|----------------|
//! | [`codec`]      | the u32 header, [`encode_frame`], [`FrameDecoder`]     | —              |
//! | [`connection`] | [`PacketConnection`]: TCP / Unix / QUIC-stream framing with packet, text or raw filters, OUT coalescing, commit and expire timers | Open → Ending → Done |
//! | [`datagram`]   | [`PacketDatagram`]: UDP (and multicast), one frame per datagram; bad datagrams are dropped, not fatal | Open → Ending → Done |
//! | [`spec`]       | [`ConnectionSpec`]: `tcp://0.0.0.0:8081?packet=10k,40k&expire=30000` and friends | —  |
//! | [`addr`]       | [`ntoa`] / [`aton`]: socket addresses to text and back (the seed's `broker.ntoa` / `broker.aton`) | — |
//!
//! A frame is a little-endian `u32` header (bits 0..30 = total length including the header,
//! bit 31 = encrypted) followed by its body. A BSON document is already a valid plain frame.
//!
//! ```
//! use switchboard_proto::stage::{ConnectionSpec, PacketConnection};
//!
//! let spec: ConnectionSpec = "tcp://[::1]:8081?bson=1m:1m&expire=30000".parse().unwrap();
//! let conn = PacketConnection::new(spec.framing_config());
//! assert_eq!(conn.config().max_in, 1024 * 1024);
//! ```

pub mod addr;
pub mod codec;
pub mod connection;
pub mod datagram;
mod error;
pub mod spec;

pub use addr::{aton, aton_with, ntoa, AddrError, AddrParts, Family, Overrides};
pub use codec::{encode_frame, FrameDecoder, Header, HEADER_LEN, MAX_FRAME_LEN};
pub use connection::{Command, Event, Filter, FramingConfig, PacketConnection, DEFAULT_LIMIT};
pub use datagram::{DatagramCommand, DatagramEvent, PacketDatagram};
pub use error::Error;
pub use spec::{parse_size, Address, ConnectionSpec, Scheme, SpecError};
