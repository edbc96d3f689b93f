//! The STAGE frame header and the stream decoder (WIRE.md §2).
//!
//! ```text
//!  0                   31 32 ...
//! +----------------------+------------------------------+
//! | u32 LE header        | body (header.len - 4 bytes)  |
//! +----------------------+------------------------------+
//!  bits 0..30 = total frame length INCLUDING the header (>= 4); bit 31 = encrypted
//! ```

use bytes::{BufMut, BytesMut};

use super::Error;

/// Size of the frame header.
pub const HEADER_LEN: usize = 4;
/// Bit 31 of the header: the body is ciphertext.
pub const ENCRYPTED_FLAG: u32 = 0x8000_0000;
/// Bits 0..30 of the header: the frame length, header included.
pub const LENGTH_MASK: u32 = 0x7FFF_FFFF;
/// The longest frame the header can describe.
pub const MAX_FRAME_LEN: usize = LENGTH_MASK as usize;

/// A decoded frame header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// Total frame length, header included.
    pub len: usize,
    /// Whether the body is encrypted (bit 31).
    pub encrypted: bool,
}

impl Header {
    /// Read a header from its four wire bytes.
    pub fn from_bytes(bytes: [u8; 4]) -> Header {
        let raw = u32::from_le_bytes(bytes);
        Header { len: (raw & LENGTH_MASK) as usize, encrypted: raw & ENCRYPTED_FLAG != 0 }
    }

    /// The four wire bytes of this header. `len` must be at most [`MAX_FRAME_LEN`].
    pub fn to_bytes(self) -> [u8; 4] {
        debug_assert!(self.len <= MAX_FRAME_LEN);
        let flag = if self.encrypted { ENCRYPTED_FLAG } else { 0 };
        ((self.len as u32 & LENGTH_MASK) | flag).to_le_bytes()
    }

    /// Check this header against the inbound limit. Called as soon as the four bytes are in,
    /// so an oversized frame is refused before any of its body is buffered.
    pub fn validate(self, max_in: usize) -> Result<Header, Error> {
        if self.len < HEADER_LEN {
            return Err(Error::LengthTooShort { len: self.len });
        }
        if self.len > max_in {
            return Err(Error::FrameTooLarge { len: self.len, max: max_in });
        }
        Ok(self)
    }
}

/// Append a plain frame for `body` to `out`: the header, then the body.
///
/// Fails (the caller's fault) if the frame would not fit the header's 31 bits.
pub fn encode_frame(body: &[u8], out: &mut BytesMut) -> Result<(), Error> {
    let len = body.len() + HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(Error::OutgoingTooLarge { len, max: MAX_FRAME_LEN });
    }
    out.reserve(len);
    out.put_slice(&Header { len, encrypted: false }.to_bytes());
    out.put_slice(body);
    Ok(())
}

/// Splits complete frames off a receive buffer without copying them.
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    max_in: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_in` bytes (header included).
    pub fn new(max_in: usize) -> Self {
        FrameDecoder { max_in: max_in.min(MAX_FRAME_LEN) }
    }

    /// The inbound limit.
    pub fn max_in(&self) -> usize {
        self.max_in
    }

    /// Take the next complete frame off the front of `buf`, header included.
    ///
    /// `Ok(None)`: more input is needed (nothing was consumed). The returned `BytesMut` shares
    /// `buf`'s allocation; freeze it for a zero-copy `Bytes`, or decrypt it in place first.
    ///
    /// A header over the limit is refused as soon as its four bytes are in, before any of the
    /// body is buffered or any room is made for it.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<(Header, BytesMut)>, Error> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::from_bytes(*head).validate(self.max_in)?;
        if buf.len() < header.len {
            // Make room for the rest of this frame where that costs no allocation: frames split
            // off earlier may still be alive, and a real `reserve` would then copy the partial
            // frame into a fresh buffer. The driver's own `reserve` after draining (when those
            // frames are gone) reclaims the space in place instead.
            let _ = buf.try_reclaim(header.len - buf.len());
            return Ok(None);
        }
        Ok(Some((header, buf.split_to(header.len))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_flag() {
        let h = Header { len: 0x1d, encrypted: true };
        assert_eq!(h.to_bytes(), [0x1d, 0, 0, 0x80]);
        assert_eq!(Header::from_bytes(h.to_bytes()), h);
    }

    #[test]
    fn decoder_waits_then_splits() {
        let d = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&b"\x06\x00\x00\x00ab\x05\x00"[..]);
        let (h, f) = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((h.len, &f[..]), (6, &b"\x06\x00\x00\x00ab"[..]));
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 2, "a partial header stays in the buffer");
    }

    #[test]
    fn limits_checked_at_the_header() {
        let d = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&[17u8, 0, 0, 0][..]);
        assert!(matches!(d.decode(&mut buf), Err(Error::FrameTooLarge { len: 17, max: 16 })));
        let mut buf = BytesMut::from(&[3u8, 0, 0, 0][..]);
        assert!(matches!(d.decode(&mut buf), Err(Error::LengthTooShort { len: 3 })));
    }
}
