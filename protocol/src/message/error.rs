use core::time::Duration;

use crate::fault::{Blame, Fault};
use crate::stage;

/// Everything that can go wrong with typed message frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer's fault: the connection is finished ---
    /// A frame too short to hold the 13-byte message prefix (header, type, id).
    #[error("message frame of {len} bytes is shorter than the 13-byte minimum")]
    FrameTooShort {
        /// The frame's length, header included.
        len: usize,
    },
    /// The type byte is not one of the five message kinds.
    #[error("unknown message type byte {byte:#04x}")]
    UnknownKind {
        /// The byte found at offset 4.
        byte: u8,
    },
    /// An error frame's payload is not valid UTF-8 text.
    #[error("error frame {id} carries text that is not valid UTF-8")]
    InvalidErrorText {
        /// The error frame's id.
        id: u64,
    },
    /// A request frame carried id 0, which no answer could refer to.
    #[error("peer sent a request with id 0; request ids start at 1")]
    ZeroRequestId,
    /// A response or error frame answers an id this side never issued.
    #[error("peer answered request {id}, which was never sent")]
    UnsolicitedResponse {
        /// The id the peer answered.
        id: u64,
    },
    /// Nothing arrived from the peer for `dead_after`.
    #[error("nothing received from the peer for {silent:?}; peer presumed dead")]
    PeerDead {
        /// The configured `dead_after`.
        silent: Duration,
    },
    /// A frame handed to [`Message::decode`](super::Message::decode) has bit 31 set: it must be
    /// opened by the cipher layer first.
    #[error("message frame is still encrypted")]
    EncryptedFrame,
    /// A frame handed to [`Message::decode`](super::Message::decode) announces a length other
    /// than its size.
    #[error("message frame of {actual} bytes announces {announced}")]
    LengthMismatch {
        /// The length in the frame's header.
        announced: usize,
        /// The frame's actual size.
        actual: usize,
    },
    /// The packet layer underneath failed (framing, limits, cipher); its own blame applies.
    #[error("packet layer: {0}")]
    Stage(stage::Error),

    // --- the caller's fault: the call was refused ---
    /// A response must answer a request, and no request has id 0.
    #[error("cannot respond to id 0: request ids start at 1")]
    ZeroResponseId,
    /// The configured limit of outstanding requests is reached.
    #[error("{max} requests are already pending")]
    TooManyPending {
        /// The configured `max_pending`.
        max: usize,
    },
    /// The configuration cannot work.
    #[error("bad message connection configuration: {reason}")]
    BadConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// Input after the connection finished.
    #[error("the connection is finished")]
    Finished,
    /// A request after the peer closed its side: no answer could ever come.
    #[error("the peer closed its side; a request could never be answered")]
    PeerClosed,
}

impl From<stage::Error> for Error {
    fn from(e: stage::Error) -> Self {
        // One "finished" error for callers to match on, whichever layer noticed.
        if e == stage::Error::Finished {
            Error::Finished
        } else {
            Error::Stage(e)
        }
    }
}

impl Blame for Error {
    fn fault(&self) -> Fault {
        match self {
            Error::ZeroResponseId
            | Error::TooManyPending { .. }
            | Error::BadConfig { .. }
            | Error::Finished
            | Error::PeerClosed => Fault::Caller,
            Error::Stage(e) => e.fault(),
            _ => Fault::Peer,
        }
    }
}
