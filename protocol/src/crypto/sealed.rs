//! The sealed profile (WIRE.md §3b, extension): AES-256-GCM with counter nonces and replay
//! rejection.
//!
//! # State and transitions
//!
//! | state                      | on                                          | does                                            | next |
//! |----------------------------|---------------------------------------------|-------------------------------------------------|------|
//! | `next_send = n`            | `seal(body)`                                | frame with nonce `n ‖ 4 random bytes`           | `next_send = n + 1` |
//! | `next_send = u64::MAX`     | `seal(body)`                                | refused: [`CipherError::CounterExhausted`]      | same |
//! | `last_accepted = a` (or none) | `open` of an authentic frame, counter `c > a` | plain frame                                | `last_accepted = c` |
//! | `last_accepted = a`        | `open` of an authentic frame, counter `c ≤ a` | refused: [`CipherError::Replay`]              | same |
//! | any                        | `open` of a tampered / truncated frame      | refused: [`CipherError::Authentication`] / [`CipherError::Truncated`] | same |
//!
//! # Frame
//!
//! ```text
//! | u32 LE header: (4 + 12 + n + 16) | 0x8000_0000 | nonce (12) | ciphertext (n) | tag (16) |
//!   nonce = u64 LE per-direction counter ‖ 4 bytes from the injected Entropy
//!   associated data = the 4 header bytes
//! ```
//!
//! Key: `HKDF-SHA256(salt = "switchboard sealed v1", ikm = the key string's bytes, info = "")`
//! expanded to 32 bytes. The whole key string is used (no truncation to 32 as in STAGE).
//!
//! Decryption happens in place in the received buffer; the plain frame is the same allocation
//! with the nonce skipped over and the tag cut off, so no byte of the payload is copied.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use alloc::boxed::Box;
use bytes::{Buf, BufMut, BytesMut};
use core::fmt;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{check_encrypted_header, header_bytes, write_header, CipherError, FrameCipher};
use crate::entropy::Entropy;
use crate::stage::codec::{HEADER_LEN, MAX_FRAME_LEN};

/// HKDF salt of the sealed profile's key derivation.
pub const SEALED_SALT: &[u8] = b"switchboard sealed v1";
/// HKDF `info` of the sealed profile's key derivation: empty (one key for both directions).
pub const SEALED_INFO: &[u8] = b"";
/// Nonce length: 8-byte counter + 4 random bytes.
pub const NONCE_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed frame adds to its plaintext: header, nonce and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A sealed-profile [`FrameCipher`] (WIRE.md §3b). One per connection: it holds the send
/// counter and the last accepted receive counter.
pub struct SealedCipher {
    aead: Aes256Gcm,
    entropy: Box<dyn Entropy + Send>,
    next_send: u64,
    last_accepted: Option<u64>,
}

impl SealedCipher {
    /// A cipher keyed from a key string; `entropy` supplies the 4 random bytes of each nonce.
    pub fn new(key: &str, entropy: Box<dyn Entropy + Send>) -> SealedCipher {
        SealedCipher::from_key_bytes(key.as_bytes(), entropy)
    }

    /// A cipher keyed from raw input key material (the HKDF `ikm`).
    pub fn from_key_bytes(ikm: &[u8], entropy: Box<dyn Entropy + Send>) -> SealedCipher {
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        Hkdf::<Sha256>::new(Some(SEALED_SALT), ikm)
            .expand(SEALED_INFO, &mut key[..])
            .unwrap_or_else(|_| unreachable!("HKDF-SHA256 can expand 32 bytes"));
        SealedCipher { aead: Aes256Gcm::new((&*key).into()), entropy, next_send: 0, last_accepted: None }
    }

    /// The counter the next sealed frame will carry.
    pub fn next_send_counter(&self) -> u64 {
        self.next_send
    }

    /// The counter of the last frame accepted by [`open`](FrameCipher::open), if any.
    pub fn last_accepted_counter(&self) -> Option<u64> {
        self.last_accepted
    }
}

impl fmt::Debug for SealedCipher {
    /// Counters only; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedCipher")
            .field("next_send", &self.next_send)
            .field("last_accepted", &self.last_accepted)
            .finish_non_exhaustive()
    }
}

impl FrameCipher for SealedCipher {
    fn seal(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), CipherError> {
        let frame_len = body.len().saturating_add(SEALED_OVERHEAD);
        if frame_len > MAX_FRAME_LEN {
            return Err(CipherError::TooLarge { len: frame_len });
        }
        // u64::MAX is never used, so a counter can never wrap back to one already sent.
        let counter = self.next_send;
        let next = counter.checked_add(1).ok_or(CipherError::CounterExhausted)?;
        let mut nonce = Nonce::default();
        nonce[..8].copy_from_slice(&counter.to_le_bytes());
        self.entropy.fill(&mut nonce[8..]);

        let start = out.len();
        out.reserve(frame_len);
        write_header(out, frame_len, true);
        out.put_slice(&nonce);
        out.put_slice(body);
        let (head, payload) = out[start..].split_at_mut(HEADER_LEN + NONCE_LEN);
        match self.aead.encrypt_in_place_detached(&nonce, &head[..HEADER_LEN], payload) {
            Ok(tag) => out.put_slice(&tag),
            Err(_) => {
                // Only for payloads over GCM's 64 GiB limit, which the length check excludes.
                out.truncate(start);
                return Err(CipherError::TooLarge { len: frame_len });
            }
        }
        self.next_send = next;
        Ok(())
    }

    fn open(&mut self, mut frame: BytesMut) -> Result<BytesMut, CipherError> {
        check_encrypted_header(&frame)?;
        if frame.len() < SEALED_OVERHEAD {
            return Err(CipherError::Truncated { len: frame.len() });
        }
        let tag_at = frame.len() - TAG_LEN;
        let (rest, tag) = frame.split_at_mut(tag_at);
        let (head, payload) = rest.split_at_mut(HEADER_LEN + NONCE_LEN);
        let nonce = Nonce::from_slice(&head[HEADER_LEN..]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&nonce[..8]);
        let counter = u64::from_le_bytes(counter);
        self.aead
            .decrypt_in_place_detached(nonce, &head[..HEADER_LEN], payload, Tag::from_slice(tag))
            .map_err(|_| CipherError::Authentication)?;
        // Checked after authentication, so only genuine frames move the window and a forged
        // frame is always reported as a forgery.
        if self.last_accepted.is_some_and(|last| counter <= last) {
            return Err(CipherError::Replay { counter });
        }
        self.last_accepted = Some(counter);

        let plain_len = tag_at - HEADER_LEN - NONCE_LEN;
        frame.truncate(tag_at);
        // Skip the first 12 bytes (old header + first 8 nonce bytes) without copying, and write
        // the plain header over the last 4 nonce bytes, right before the plaintext.
        frame.advance(NONCE_LEN);
        frame[..HEADER_LEN].copy_from_slice(&header_bytes(HEADER_LEN + plain_len, false));
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SplitMix64;

    fn pair() -> (SealedCipher, SealedCipher) {
        (SealedCipher::new("k", Box::new(SplitMix64::new(1))), SealedCipher::new("k", Box::new(SplitMix64::new(2))))
    }

    #[test]
    fn layout_and_round_trip() {
        let (mut a, mut b) = pair();
        let mut out = BytesMut::new();
        a.seal(b"hello", &mut out).unwrap();
        assert_eq!(out.len(), 5 + SEALED_OVERHEAD);
        assert_eq!(out[..4], (((5 + SEALED_OVERHEAD) as u32) | 0x8000_0000).to_le_bytes());
        assert_eq!(out[4..12], 0u64.to_le_bytes());
        let plain = b.open(out).unwrap();
        assert_eq!(&plain[..], b"\x09\x00\x00\x00hello");
        assert_eq!((a.next_send_counter(), b.last_accepted_counter()), (1, Some(0)));
    }

    #[test]
    fn counter_exhaustion_is_refused_not_wrapped() {
        let (mut a, _) = pair();
        a.next_send = u64::MAX;
        let mut out = BytesMut::new();
        assert_eq!(a.seal(b"x", &mut out), Err(CipherError::CounterExhausted));
        assert!(out.is_empty());
    }

    #[test]
    fn header_is_authenticated() {
        let (mut a, mut b) = pair();
        let mut out = BytesMut::new();
        a.seal(b"hello", &mut out).unwrap();
        // A different key string cannot open it either.
        let mut other = SealedCipher::new("K", Box::new(SplitMix64::new(3)));
        assert_eq!(other.open(out.clone()), Err(CipherError::Authentication));
        out[3] ^= 0x40; // any header change is refused
        assert!(b.open(out).is_err());
    }
}
