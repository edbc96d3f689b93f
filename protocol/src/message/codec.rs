//! The message frame codec (WIRE.md §4).
//!
//! ```text
//!  0        4      5            13
//! +--------+------+------------+-----------------+
//! | header | type | id (u64 LE)| payload         |
//! +--------+------+------------+-----------------+
//!  header: u32 LE total length incl. itself (bits 0..30, >= 13), bit 31 = encrypted
//! ```
//!
//! Encoding writes a *plain* frame; bit 31 and the ciphertext are the cipher layer's business
//! (the packet connection seals bytes 4..end). Decoding takes a plain frame, as the packet
//! connection hands it on after opening it, and slices the payload out of it without a copy.

use bytes::{BufMut, Bytes, BytesMut};

use super::Error;
use crate::stage::{self, Header, HEADER_LEN};

/// Bytes before the payload: the 4-byte header, the type byte and the 8-byte id. Also the
/// shortest valid message frame.
pub const PREFIX_LEN: usize = HEADER_LEN + 1 + 8;

/// The longest frame a STAGE header's 31 length bits can describe (WIRE.md §2).
const MAX_FRAME_LEN: usize = 0x7FFF_FFFF;

/// The type byte at offset 4.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum MessageKind {
    /// Asks the peer for an answer; carries a fresh id (1, 2, 3, … per connection and direction).
    Request = 0,
    /// Answers the request with the same id.
    Response = 1,
    /// One-way; carries id 0.
    Notification = 2,
    /// Keep-alive; the id is the sender's heartbeat sequence number.
    Heartbeat = 3,
    /// Answers the request with the same id with a failure (UTF-8 text payload), or reports a
    /// failure unrelated to any request with id 0.
    Error = 4,
}

impl MessageKind {
    /// Every kind, in type-byte order.
    pub const ALL: [MessageKind; 5] = [
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::Notification,
        MessageKind::Heartbeat,
        MessageKind::Error,
    ];

    /// The kind a type byte names, if any.
    pub fn from_byte(byte: u8) -> Option<MessageKind> {
        MessageKind::ALL.get(usize::from(byte)).copied()
    }

    /// The type byte.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for MessageKind {
    type Error = Error;

    fn try_from(byte: u8) -> Result<Self, Error> {
        MessageKind::from_byte(byte).ok_or(Error::UnknownKind { byte })
    }
}

/// One typed message: a kind, an id and an opaque payload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// What the message is.
    pub kind: MessageKind,
    /// Request id, the answered request's id, 0 for notifications, or a heartbeat sequence.
    pub id: u64,
    /// The payload; after [`Message::decode`], a slice of the received frame.
    pub payload: Bytes,
}

impl Message {
    /// A message of any kind.
    pub fn new(kind: MessageKind, id: u64, payload: Bytes) -> Self {
        Message { kind, id, payload }
    }

    /// A request with id `id`.
    pub fn request(id: u64, payload: Bytes) -> Self {
        Self::new(MessageKind::Request, id, payload)
    }

    /// The answer to request `id`.
    pub fn response(id: u64, payload: Bytes) -> Self {
        Self::new(MessageKind::Response, id, payload)
    }

    /// A notification (id 0).
    pub fn notification(payload: Bytes) -> Self {
        Self::new(MessageKind::Notification, 0, payload)
    }

    /// Heartbeat number `seq`, with an empty payload.
    pub fn heartbeat(seq: u64) -> Self {
        Self::new(MessageKind::Heartbeat, seq, Bytes::new())
    }

    /// An error answering request `id` (0: no particular request) with `text`.
    pub fn error(id: u64, text: &str) -> Self {
        Self::new(MessageKind::Error, id, Bytes::copy_from_slice(text.as_bytes()))
    }

    /// Size of this message's frame, header included.
    pub fn encoded_len(&self) -> usize {
        PREFIX_LEN + self.payload.len()
    }

    /// Append this message's plain frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        encode_message(self.kind, self.id, &self.payload, out)
    }

    /// This message's plain frame as one buffer.
    pub fn to_frame(&self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// Read a message from one whole plain frame, header included. The payload is a slice of
    /// `frame` (no copy).
    pub fn decode(frame: Bytes) -> Result<Message, Error> {
        let len = frame.len();
        if len < PREFIX_LEN {
            return Err(Error::FrameTooShort { len });
        }
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&frame[..HEADER_LEN]);
        let header = Header::from_bytes(head);
        if header.encrypted {
            return Err(Error::EncryptedFrame);
        }
        if header.len != len {
            return Err(Error::LengthMismatch { announced: header.len, actual: len });
        }
        let kind = MessageKind::try_from(frame[HEADER_LEN])?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&frame[HEADER_LEN + 1..PREFIX_LEN]);
        Ok(Message { kind, id: u64::from_le_bytes(id), payload: frame.slice(PREFIX_LEN..) })
    }

    /// The payload of an error message read as UTF-8 text.
    pub fn error_text(&self) -> Result<&str, Error> {
        core::str::from_utf8(&self.payload).map_err(|_| Error::InvalidErrorText { id: self.id })
    }
}

/// Append the plain frame of a message made of these parts to `out`, copying `payload` once.
///
/// Fails (the caller's fault) if the frame would not fit the header's 31 length bits.
pub fn encode_message(kind: MessageKind, id: u64, payload: &[u8], out: &mut BytesMut) -> Result<(), Error> {
    let len = PREFIX_LEN.saturating_add(payload.len());
    if len > MAX_FRAME_LEN {
        return Err(Error::Stage(stage::Error::OutgoingTooLarge { len, max: MAX_FRAME_LEN }));
    }
    out.reserve(len);
    out.put_slice(&Header { len, encrypted: false }.to_bytes());
    out.put_u8(kind.as_byte());
    out.put_u64_le(id);
    out.put_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_wire_md() {
        let frame = Message::response(0x0102, Bytes::from_static(b"ok")).to_frame().unwrap();
        assert_eq!(&frame[..], b"\x0f\x00\x00\x00\x01\x02\x01\x00\x00\x00\x00\x00\x00ok");
        assert_eq!(Message::decode(frame).unwrap().payload, Bytes::from_static(b"ok"));
    }

    #[test]
    fn kinds_round_trip_through_their_byte() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::from_byte(kind.as_byte()), Some(kind));
        }
        assert_eq!(MessageKind::try_from(5), Err(Error::UnknownKind { byte: 5 }));
    }
}
