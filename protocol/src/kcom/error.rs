use core::fmt;
use core::time::Duration;

use crate::fault::{Blame, Fault};

/// Which part of the exchange was being read when the stream ended early.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Part {
    /// The receiver's 8-byte hello (read by the sender).
    Hello,
    /// The sender's 8-byte echo of the hello (read by the receiver).
    Echo,
    /// The u32 message length.
    MessageLength,
    /// The message text.
    Message,
    /// The u64 data length.
    DataLength,
    /// The data blob.
    Data,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Hello => "hello",
            Part::Echo => "echo",
            Part::MessageLength => "message length",
            Part::Message => "message",
            Part::DataLength => "data length",
            Part::Data => "data",
        })
    }
}

/// Everything that can go wrong in a KCOM5 transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer's fault: the transfer is finished ---
    /// The receiver's hello does not start with `KCOM5`.
    #[error("peer's hello {got:02x?} does not start with \"KCOM5\"")]
    BadMagic {
        /// The 8 bytes that arrived.
        got: [u8; 8],
    },
    /// The sender did not echo the hello byte for byte.
    #[error("sender echoed {got:02x?}, but the hello sent was {sent:02x?}")]
    EchoMismatch {
        /// The hello this receiver sent.
        sent: [u8; 8],
        /// What came back.
        got: [u8; 8],
    },
    /// The announced message length is over the configured maximum.
    #[error("peer announced a message of {len} bytes, over the limit of {max}")]
    MessageTooLong {
        /// The announced length.
        len: u32,
        /// The configured `max_msg_len`.
        max: u32,
    },
    /// The message is not valid UTF-8.
    #[error("message is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The announced data length is over the configured maximum.
    #[error("peer announced {len} bytes of data, over the limit of {max}")]
    DataTooLong {
        /// The announced length.
        len: u64,
        /// The configured `max_data_len`.
        max: u64,
    },
    /// The stream ended before everything announced had arrived.
    #[error("stream ended while reading the {reading}: {got} of {expected} bytes arrived")]
    Truncated {
        /// What was being read.
        reading: Part,
        /// How many bytes of it arrived.
        got: u64,
        /// How many were expected.
        expected: u64,
    },
    /// The exchange did not complete within the `close` deadline.
    #[error("transfer not complete after {after:?}")]
    TimedOut {
        /// The configured `close` time.
        after: Duration,
    },

    // --- the caller's fault: the call was refused ---
    /// The message to send is longer than a u32 length can announce.
    #[error("message of {len} bytes is too long for KCOM5 (max 4294967295)")]
    OutgoingMessageTooLong {
        /// The message length.
        len: usize,
    },
    /// A data chunk would take the data past the length announced at construction.
    #[error("data chunk of {len} bytes exceeds the {remaining} bytes still announced")]
    DataOverflow {
        /// The refused chunk's length.
        len: usize,
        /// Bytes still expected.
        remaining: u64,
    },
    /// Data given before the handshake would exceed the write budget; wait for
    /// `SenderEvent::Ready` and feed it then.
    #[error("{pending} bytes already held before the handshake; a chunk of {len} would exceed the budget of {budget}")]
    NotReady {
        /// The refused chunk's length.
        len: usize,
        /// Bytes already held.
        pending: usize,
        /// The write budget.
        budget: usize,
    },
    /// Input after the transfer finished.
    #[error("the transfer is finished")]
    Finished,
    /// The application closed the transfer before it completed.
    #[error("the transfer was closed before it completed")]
    Abandoned,
    /// An input this machine does not take: KCOM5 runs over a byte stream, and a datagram
    /// would lose the stream's frame boundaries.
    #[error("this machine does not take {input} input")]
    UnexpectedInput {
        /// Which input was refused.
        input: &'static str,
    },
}

impl Blame for Error {
    fn fault(&self) -> Fault {
        match self {
            Error::OutgoingMessageTooLong { .. }
            | Error::DataOverflow { .. }
            | Error::NotReady { .. }
            | Error::UnexpectedInput { .. }
            | Error::Finished
            | Error::Abandoned => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}
