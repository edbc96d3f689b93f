//! Cipher streams: the layer between the packet framing and the application (WIRE.md §3).
//!
//! A [`FrameCipher`] turns a plain frame body into a complete encrypted frame (bit 31 set) and
//! back. The packet connection calls it for every outgoing frame and for every incoming frame
//! whose header has bit 31 set.
//!
//! | profile | spec | cipher | per frame | integrity |
//! |---------|------|--------|-----------|-----------|
//! | STAGE (§3a, compat) | `AES`/`RIJNDAEL`/`SEED`/`DES` `/CBC\|CFB/PKCS5Padding\|NoPadding\|PKCS1Padding`, or a bare key | [`StageCipher`] | fixed IV, padding | none |
//! | sealed (§3b, extension) | `AES-256-GCM` | [`SealedCipher`] | counter nonce, 16-byte tag | yes, plus replay rejection |
//!
//! Build one from a connection's `crypto` option with [`from_option`] (grammar in [`spec`]):
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard_proto::crypto::{self, FrameCipher};
//! use switchboard_proto::SplitMix64;
//!
//! let mut tx = crypto::from_option("AES-256-GCM=correct horse", Box::new(SplitMix64::new(1))).unwrap();
//! let mut rx = crypto::from_option("AES-256-GCM=correct horse", Box::new(SplitMix64::new(2))).unwrap();
//! let mut wire = BytesMut::new();
//! tx.seal(b"hello", &mut wire).unwrap();
//! assert_eq!(&rx.open(wire).unwrap()[..], b"\x09\x00\x00\x00hello");
//! ```
//!
//! # Threat model
//!
//! **The STAGE profile is obfuscation, not security against an active attacker.** It exists to
//! talk to the original broker byte for byte. Every frame is encrypted from the same fixed IV
//! with the same key, so identical plaintexts give identical ciphertexts, and frames with a
//! common prefix share a ciphertext prefix (CBC: whole blocks; CFB: byte for byte). In CFB the
//! block after a common prefix (the first block of every frame, at least) is XORed with the
//! same keystream, so one frame of known plaintext (BSON is predictable) exposes that block of
//! every other frame. Nothing is authenticated: flipping ciphertext bits in CFB flips the
//! same plaintext bits undetected, CBC bit flips garble one block and flip chosen bits in the
//! next, frames can be replayed, dropped or reordered, and a peer that reports padding errors
//! is a padding oracle. The key is a string cut to 32 bytes with no key derivation, and DES
//! (56-bit key) is brute-forceable.
//! Use it only where the original requires it, on a network you already trust.
//!
//! **The sealed profile is the recommended choice.** Within one connection it gives
//! confidentiality, integrity of every frame including its header (any change is rejected),
//! and rejection of replayed and reordered frames (each direction's counter must increase).
//! It does not hide frame sizes or timing (the length is in the clear and ciphertext is as
//! long as plaintext), does not protect against replay of a whole recorded connection into a
//! new one (counters restart per connection), and does not make a weak key string strong:
//! HKDF is not a password hash, so a guessable key can be found offline from one frame. Both
//! directions share one key, so nonce uniqueness between them rests on the 32 random bits
//! (keep one key for a bounded number of frames, well under 2^32 per direction).

use alloc::boxed::Box;
use bytes::{BufMut, BytesMut};

use crate::entropy::Entropy;
use crate::fault::{Blame, Fault};
use crate::stage::codec::{Header, HEADER_LEN};

pub mod sealed;
pub mod spec;
pub mod stage;

pub use sealed::SealedCipher;
pub use spec::{Algorithm, CipherSpec, CryptoOption, Mode, Padding, Profile, SpecError, SpecPart};
pub use stage::{BlockEngine, StageCipher};

/// Build the cipher a connection's `crypto` option asks for: `"key"`
/// (RIJNDAEL/CBC/PKCS5Padding), `"ALGO/MODE/PADDING=key"` or `"AES-256-GCM=key"`.
///
/// The full grammar is in [`spec`]. `entropy` feeds the sealed profile's nonces; the STAGE
/// profile draws no randomness and drops it.
pub fn from_option(option: &str, entropy: Box<dyn Entropy + Send>) -> Result<Box<dyn FrameCipher + Send>, SpecError> {
    let option = CryptoOption::parse(option)?;
    from_parts(option.profile, option.key, entropy)
}

/// Build the cipher for a profile and key given apart (the seed's Lua table form
/// `{["ALGO/MODE/PADDING"] = key}`). An empty key is refused.
pub fn from_parts(
    profile: Profile,
    key: &str,
    entropy: Box<dyn Entropy + Send>,
) -> Result<Box<dyn FrameCipher + Send>, SpecError> {
    if key.is_empty() {
        return Err(SpecError::EmptyKey);
    }
    Ok(match profile {
        Profile::Stage(spec) => Box::new(StageCipher::new(spec, key)),
        Profile::Sealed => Box::new(SealedCipher::new(key, entropy)),
    })
}

/// The four header bytes of a frame of `len` bytes (header included).
fn header_bytes(len: usize, encrypted: bool) -> [u8; HEADER_LEN] {
    Header { len, encrypted }.to_bytes()
}

fn write_header(out: &mut BytesMut, len: usize, encrypted: bool) {
    out.put_slice(&header_bytes(len, encrypted));
}

/// A received frame handed to `open` must be exactly what its header says: bit 31 set and the
/// length equal to the frame's size.
fn check_encrypted_header(frame: &[u8]) -> Result<(), CipherError> {
    let Some(head) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(CipherError::Truncated { len: frame.len() });
    };
    let header = Header::from_bytes(*head);
    if !header.encrypted || header.len != frame.len() {
        return Err(CipherError::BadHeader { header: u32::from_le_bytes(*head), len: frame.len() });
    }
    Ok(())
}

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
    /// A frame handed to `open` does not have bit 31 set or its header length differs from
    /// its size.
    #[error("frame header {header:#010x} does not describe an encrypted frame of {len} bytes")]
    BadHeader {
        /// The raw header.
        header: u32,
        /// The frame's actual size.
        len: usize,
    },
    /// The sealed send counter reached its end; the connection must be re-keyed.
    #[error("sealed send counter exhausted")]
    CounterExhausted,
    /// A raw [`BlockEngine`] was given a key of the wrong length.
    #[error("key of {got} bytes; this algorithm takes {expected}")]
    KeyLength {
        /// Required key length.
        expected: usize,
        /// Given key length.
        got: usize,
    },
    /// A raw [`BlockEngine`] was given an IV that is not one block long.
    #[error("IV of {got} bytes; this algorithm takes {expected}")]
    IvLength {
        /// Required IV length (the block size).
        expected: usize,
        /// Given IV length.
        got: usize,
    },
}

impl Blame for CipherError {
    fn fault(&self) -> Fault {
        match self {
            CipherError::UnalignedPlaintext { .. }
            | CipherError::TooLarge { .. }
            | CipherError::CounterExhausted
            | CipherError::KeyLength { .. }
            | CipherError::IvLength { .. } => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}
