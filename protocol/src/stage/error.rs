//! The STAGE framing error type, shared by the stream and datagram machines.

use core::time::Duration;

use crate::crypto::CipherError;
use crate::fault::{Blame, Fault};

/// Everything that can go wrong in STAGE packet framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer's fault: the connection is finished ---
    /// A header announced a length below the header's own 4 bytes.
    #[error("peer announced a frame of {len} bytes; the minimum is 4")]
    LengthTooShort {
        /// The announced length.
        len: usize,
    },
    /// A header announced a frame longer than the inbound limit (IN).
    #[error("peer announced a frame of {len} bytes, over the inbound limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The configured inbound limit.
        max: usize,
    },
    /// A text line grew past the inbound limit without a newline.
    #[error("peer sent a line longer than the inbound limit of {max} bytes")]
    LineTooLong {
        /// The configured inbound limit.
        max: usize,
    },
    /// A frame arrived with bit 31 set but this connection has no cipher.
    #[error("peer sent an encrypted frame but no cipher is configured")]
    EncryptedWithoutCipher,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {buffered} bytes of an unfinished frame were buffered")]
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
    /// No inbound data for the `expire` time.
    #[error("no data from the peer for {idle:?}; connection expired")]
    Expired {
        /// The configured `expire` time.
        idle: Duration,
    },
    /// A datagram's header length differs from the datagram's size.
    #[error("datagram of {actual} bytes announces a frame of {announced}")]
    DatagramLengthMismatch {
        /// Length in the header.
        announced: usize,
        /// Size of the datagram.
        actual: usize,
    },
    /// A datagram too short to hold even a frame header.
    #[error("datagram of {len} bytes is too short to hold a 4-byte frame header")]
    DatagramTooShort {
        /// Size of the datagram.
        len: usize,
    },
    /// Encrypting or decrypting a frame failed.
    #[error("cipher: {0}")]
    Cipher(#[from] CipherError),

    // --- the caller's fault: the call was refused ---
    /// An outgoing frame is larger than the output buffer (OUT) or the header can describe.
    #[error("outgoing frame of {len} bytes exceeds the limit of {max}")]
    OutgoingTooLarge {
        /// The frame length.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// A whole frame handed to `Command::Send` has a header that does not match its length, or
    /// has bit 31 set (encryption is the cipher layer's job).
    #[error("frame handed to send announces {announced} bytes but is {actual} bytes long")]
    MalformedOutgoing {
        /// Length in the frame's header (bit 31 included if set).
        announced: u32,
        /// Actual length.
        actual: usize,
    },
    /// `Send` / `SendBody` on a datagram endpoint built without a default destination.
    #[error("no default destination: use SendTo / SendBodyTo")]
    NoDestination,
    /// An input this machine does not take (a stream buffer on a datagram endpoint, a datagram
    /// on a stream connection).
    #[error("this machine does not take {input} input")]
    UnexpectedInput {
        /// Which input was refused.
        input: &'static str,
    },
    /// Input after the connection finished.
    #[error("the connection is finished")]
    Finished,
}

impl Blame for Error {
    fn fault(&self) -> Fault {
        match self {
            Error::OutgoingTooLarge { .. }
            | Error::MalformedOutgoing { .. }
            | Error::NoDestination
            | Error::UnexpectedInput { .. }
            | Error::Finished => Fault::Caller,
            Error::Cipher(e) => e.fault(),
            _ => Fault::Peer,
        }
    }
}
