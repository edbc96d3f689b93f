//! Cipher streams: the layer between the packet framing and the application (WIRE.md §3).
//!
//! A [`FrameCipher`] turns a plain frame body into a complete encrypted frame (bit 31 set) and
//! back. The packet connection calls it for every outgoing frame and for every incoming frame
//! whose header has bit 31 set.

use bytes::BytesMut;

use crate::fault::{Blame, Fault};

/// Encrypts outgoing frames and decrypts incoming ones for one connection.
pub trait FrameCipher {
    /// Append one complete encrypted frame to `out`: the header (`4 + ciphertext_len`, bit 31
    /// set) followed by the ciphertext of `body` (a plain frame's bytes 4..end).
    fn seal(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), CipherError>;

    /// Decrypt one complete received frame (header included, bit 31 set), in place where the
    /// mode allows, and return the plain frame: header `plaintext_len + 4`, bit 31 clear.
    fn open(&mut self, frame: BytesMut) -> Result<BytesMut, CipherError>;
}

/// Why a frame could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// Received ciphertext is not a whole number of cipher blocks (CBC).
    #[error("ciphertext of {len} bytes is not a multiple of the {block}-byte block")]
    Misaligned {
        /// Ciphertext length.
        len: usize,
        /// Block size of the cipher.
        block: usize,
    },
    /// Decrypted data does not end in valid padding.
    #[error("bad padding after decryption")]
    BadPadding,
    /// NoPadding with CBC was asked to encrypt a body that is not block-aligned.
    #[error("NoPadding needs block-aligned input; got {len} bytes for a {block}-byte block")]
    UnalignedPlaintext {
        /// Plaintext length.
        len: usize,
        /// Block size of the cipher.
        block: usize,
    },
    /// A sealed frame failed authentication (tampered, truncated, or wrong key).
    #[error("sealed frame failed authentication")]
    Authentication,
    /// A sealed frame's nonce was already seen or is older than the last accepted one.
    #[error("replayed or reordered sealed frame (counter {counter})")]
    Replay {
        /// The counter in the rejected nonce.
        counter: u64,
    },
    /// The encrypted frame is too short to hold what the profile needs.
    #[error("encrypted frame of {len} bytes is too short")]
    Truncated {
        /// Frame length.
        len: usize,
    },
    /// The encrypted frame would exceed the header's 31-bit length.
    #[error("encrypted frame would be {len} bytes, over the header's limit")]
    TooLarge {
        /// Would-be frame length.
        len: usize,
    },
}

impl Blame for CipherError {
    fn fault(&self) -> Fault {
        match self {
            CipherError::UnalignedPlaintext { .. } | CipherError::TooLarge { .. } => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}
