//! The STAGE cipher profile (WIRE.md §3a, compat): AES-256 / SEED / DES in CBC or CFB with a
//! fixed IV and no integrity.
//!
//! # What one frame goes through
//!
//! | step | seal (`body` → encrypted frame)                        | open (encrypted frame → plain frame)                 |
//! |------|--------------------------------------------------------|------------------------------------------------------|
//! | 1    | ciphertext length: CBC pads (PKCS5/PKCS1) or demands alignment (NoPadding); CFB keeps the length | header checked: bit 31 set, length = frame size |
//! | 2    | header `(4 + ct_len) \| 0x8000_0000` appended to `out` | CBC: ciphertext must be whole blocks                 |
//! | 3    | body and padding appended, encrypted in place          | decrypted in place in the received buffer            |
//! | 4    | —                                                      | padding checked and cut off, header rewritten to `pt_len + 4`, bit 31 clear |
//!
//! Every frame starts from the same IV (one block of `0x20`): there is no chaining between
//! frames. The key schedule is computed once per connection and shared by every frame's fresh
//! mode state; it is wiped when the cipher is dropped (the RustCrypto `zeroize` features).
//!
//! Key: the key string's UTF-8 bytes truncated or zero-padded to 32 bytes; AES/RIJNDAEL use all
//! 32 (AES-256), SEED the first 16, DES the first 8.

use alloc::boxed::Box;
use bytes::{BufMut, BytesMut};
use cipher::inout::InOutBuf;
use cipher::{
    AsyncStreamCipher, Block, BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit,
    KeyInit,
};
use core::fmt;
use zeroize::Zeroizing;

use super::spec::{Algorithm, CipherSpec, Mode, Padding};
use super::{check_encrypted_header, write_header, CipherError, FrameCipher};
use crate::stage::codec::{HEADER_LEN, MAX_FRAME_LEN};

/// The STAGE IV: every byte of the first block is this value (`' '`).
pub const STAGE_IV_BYTE: u8 = 0x20;

/// Length of the STAGE key every algorithm takes its key from.
pub const STAGE_KEY_LEN: usize = 32;

/// The largest IV (one block) any STAGE algorithm needs.
const MAX_BLOCK: usize = 16;

/// A keyed block cipher with the CBC and CFB plumbing the STAGE profile uses, open for any key
/// and IV so the standards' known-answer vectors can run through the very same code.
///
/// The key schedule is wiped on drop.
pub struct BlockEngine {
    algorithm: Algorithm,
    cipher: Keyed,
}

/// AES boxed: its key schedule (≈1 KiB with both hardware and software forms) would otherwise
/// set the size of every variant.
enum Keyed {
    Aes(Box<aes::Aes256>),
    Seed(kisaseed::SEED),
    Des(des::Des),
}

/// Run `$body` with `$c` bound to the concrete cipher, so the generic mode code is
/// monomorphised once per algorithm instead of dispatching per block.
macro_rules! with_cipher {
    ($keyed:expr, $c:ident => $body:expr) => {
        match $keyed {
            Keyed::Aes($c) => {
                let $c: &aes::Aes256 = $c;
                $body
            }
            Keyed::Seed($c) => $body,
            Keyed::Des($c) => $body,
        }
    };
}

impl BlockEngine {
    /// Key `algorithm` with exactly [`Algorithm::key_size`] bytes (32 for AES/RIJNDAEL, 16 for
    /// SEED, 8 for DES).
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Result<BlockEngine, CipherError> {
        let expected = algorithm.key_size();
        if key.len() != expected {
            return Err(CipherError::KeyLength { expected, got: key.len() });
        }
        // The lengths were checked above, so `new_from_slice` cannot fail; map anyway, no panic.
        let bad = |_| CipherError::KeyLength { expected, got: key.len() };
        let cipher = match algorithm {
            Algorithm::Aes | Algorithm::Rijndael => {
                Keyed::Aes(Box::new(aes::Aes256::new_from_slice(key).map_err(bad)?))
            }
            Algorithm::Seed => Keyed::Seed(kisaseed::SEED::new_from_slice(key).map_err(bad)?),
            Algorithm::Des => Keyed::Des(des::Des::new_from_slice(key).map_err(bad)?),
        };
        Ok(BlockEngine { algorithm, cipher })
    }

    /// Key `algorithm` from a STAGE key string's bytes: truncated or zero-padded to 32, then
    /// the algorithm's first [`Algorithm::key_size`] bytes.
    pub fn from_stage_key(algorithm: Algorithm, key: &[u8]) -> BlockEngine {
        let mut padded = Zeroizing::new([0u8; STAGE_KEY_LEN]);
        let n = key.len().min(STAGE_KEY_LEN);
        padded[..n].copy_from_slice(&key[..n]);
        let key = &padded[..algorithm.key_size()];
        let cipher = match algorithm {
            Algorithm::Aes | Algorithm::Rijndael => Keyed::Aes(Box::new(aes::Aes256::new(key.into()))),
            Algorithm::Seed => Keyed::Seed(kisaseed::SEED::new(key.into())),
            Algorithm::Des => Keyed::Des(des::Des::new(key.into())),
        };
        BlockEngine { algorithm, cipher }
    }

    /// The algorithm this engine was keyed for.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Block size in bytes (16, or 8 for DES).
    pub fn block_size(&self) -> usize {
        self.algorithm.block_size()
    }

    fn check(&self, mode: Mode, iv: &[u8], len: usize, encrypting: bool) -> Result<(), CipherError> {
        let block = self.block_size();
        if iv.len() != block {
            return Err(CipherError::IvLength { expected: block, got: iv.len() });
        }
        if mode == Mode::Cbc && len % block != 0 {
            return Err(if encrypting {
                CipherError::UnalignedPlaintext { len, block }
            } else {
                CipherError::Misaligned { len, block }
            });
        }
        Ok(())
    }

    /// Encrypt `data` in place with `mode` from `iv` (one block). CBC needs whole blocks and
    /// adds no padding; CFB (full-block feedback) takes any length.
    pub fn encrypt(&self, mode: Mode, iv: &[u8], data: &mut [u8]) -> Result<(), CipherError> {
        self.check(mode, iv, data.len(), true)?;
        with_cipher!(&self.cipher, c => match mode {
            Mode::Cbc => cbc_encrypt(c, iv.into(), data),
            Mode::Cfb => cfb_mode::Encryptor::<&_>::inner_iv_init(c, iv.into()).encrypt(data),
        });
        Ok(())
    }

    /// Decrypt `data` in place with `mode` from `iv`; the inverse of [`encrypt`](Self::encrypt).
    pub fn decrypt(&self, mode: Mode, iv: &[u8], data: &mut [u8]) -> Result<(), CipherError> {
        self.check(mode, iv, data.len(), false)?;
        with_cipher!(&self.cipher, c => match mode {
            Mode::Cbc => cbc_decrypt(c, iv.into(), data),
            Mode::Cfb => cfb_mode::Decryptor::<&_>::inner_iv_init(c, iv.into()).decrypt(data),
        });
        Ok(())
    }
}

impl fmt::Debug for BlockEngine {
    /// The algorithm only; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockEngine").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

// Key schedules must be wiped on drop: this stops compiling if a `zeroize` feature of aes, des
// or kisaseed is ever dropped from the workspace dependencies.
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<aes::Aes256>();
    wiped_on_drop::<kisaseed::SEED>();
    wiped_on_drop::<des::Des>();
};

/// CBC over whole blocks of `data`, in place. The caller checked alignment.
fn cbc_encrypt<C: BlockCipher + BlockEncrypt>(cipher: &C, iv: &Block<C>, data: &mut [u8]) {
    let (blocks, _tail) = InOutBuf::from(data).into_chunks();
    cbc::Encryptor::<&C>::inner_iv_init(cipher, iv).encrypt_blocks_inout_mut(blocks);
}

fn cbc_decrypt<C: BlockCipher + BlockDecrypt>(cipher: &C, iv: &Block<C>, data: &mut [u8]) {
    let (blocks, _tail) = InOutBuf::from(data).into_chunks();
    cbc::Decryptor::<&C>::inner_iv_init(cipher, iv).decrypt_blocks_inout_mut(blocks);
}

/// A STAGE-profile [`FrameCipher`] (WIRE.md §3a). See the [module docs](self) for the steps
/// and [`crypto`](super) for why this profile is not safe against an active attacker.
pub struct StageCipher {
    spec: CipherSpec,
    engine: BlockEngine,
}

impl StageCipher {
    /// A cipher for `spec` keyed with the key string's UTF-8 bytes.
    ///
    /// Any string is accepted, the empty one included (it means 32 zero bytes); the option
    /// parser [`from_option`](super::from_option) is the one that refuses an empty key.
    pub fn new(spec: CipherSpec, key: &str) -> StageCipher {
        StageCipher::from_key_bytes(spec, key.as_bytes())
    }

    /// A cipher for `spec` keyed with raw bytes (truncated or zero-padded to 32 as for a key
    /// string).
    pub fn from_key_bytes(spec: CipherSpec, key: &[u8]) -> StageCipher {
        StageCipher { spec, engine: BlockEngine::from_stage_key(spec.algorithm, key) }
    }

    /// The spec this cipher implements.
    pub fn spec(&self) -> CipherSpec {
        self.spec
    }

    /// The ciphertext length for a body of `plain_len` bytes, or why it cannot be sealed.
    pub fn ciphertext_len(&self, plain_len: usize) -> Result<usize, CipherError> {
        let block = self.engine.block_size();
        match (self.spec.mode, self.spec.padding) {
            (Mode::Cfb, _) => Ok(plain_len),
            (Mode::Cbc, Padding::None) if plain_len % block != 0 => {
                Err(CipherError::UnalignedPlaintext { len: plain_len, block })
            }
            (Mode::Cbc, Padding::None) => Ok(plain_len),
            // Both paddings always add 1..=block bytes.
            (Mode::Cbc, _) => {
                plain_len.checked_add(block - plain_len % block).ok_or(CipherError::TooLarge { len: usize::MAX })
            }
        }
    }

    fn iv(&self) -> ([u8; MAX_BLOCK], usize) {
        ([STAGE_IV_BYTE; MAX_BLOCK], self.engine.block_size())
    }
}

impl fmt::Debug for StageCipher {
    /// The spec only; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageCipher").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl FrameCipher for StageCipher {
    fn seal(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), CipherError> {
        let ct_len = self.ciphertext_len(body.len())?;
        let frame_len = ct_len.saturating_add(HEADER_LEN);
        if frame_len > MAX_FRAME_LEN {
            return Err(CipherError::TooLarge { len: frame_len });
        }
        let start = out.len();
        out.reserve(frame_len);
        write_header(out, frame_len, true);
        out.put_slice(body);
        let pad = ct_len - body.len();
        match self.spec.padding {
            Padding::Pkcs5 => out.put_bytes(pad as u8, pad),
            Padding::Pkcs1 => {
                out.put_u8(0x80);
                out.put_bytes(0, pad - 1);
            }
            Padding::None => {}
        }
        let (iv, block) = self.iv();
        if let Err(e) = self.engine.encrypt(self.spec.mode, &iv[..block], &mut out[start + HEADER_LEN..]) {
            // Unreachable by construction (the length was made to fit); leave `out` as it was.
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    fn open(&mut self, mut frame: BytesMut) -> Result<BytesMut, CipherError> {
        check_encrypted_header(&frame)?;
        let (iv, block) = self.iv();
        let body = &mut frame[HEADER_LEN..];
        self.engine.decrypt(self.spec.mode, &iv[..block], body)?;
        let plain_len = match self.spec.padding {
            Padding::None => body.len(),
            Padding::Pkcs5 => unpad_pkcs7(body, block)?,
            Padding::Pkcs1 => unpad_one_and_zeros(body, block)?,
        };
        frame.truncate(HEADER_LEN + plain_len);
        let header = super::header_bytes(HEADER_LEN + plain_len, false);
        frame[..HEADER_LEN].copy_from_slice(&header);
        Ok(frame)
    }
}

/// Length of `data` without its PKCS#7 padding: the last byte `n` is in 1..=block and the last
/// `n` bytes all equal `n`.
fn unpad_pkcs7(data: &[u8], block: usize) -> Result<usize, CipherError> {
    let n = *data.last().ok_or(CipherError::BadPadding)? as usize;
    if n == 0 || n > block || n > data.len() {
        return Err(CipherError::BadPadding);
    }
    let (plain, pad) = data.split_at(data.len() - n);
    if pad.iter().any(|&b| b as usize != n) {
        return Err(CipherError::BadPadding);
    }
    Ok(plain.len())
}

/// Length of `data` without its ONE_AND_ZEROS padding: trailing zeros, then `0x80`, all within
/// the last block.
fn unpad_one_and_zeros(data: &[u8], block: usize) -> Result<usize, CipherError> {
    let marker = data.iter().rposition(|&b| b != 0).ok_or(CipherError::BadPadding)?;
    if data[marker] != 0x80 || data.len() - marker > block {
        return Err(CipherError::BadPadding);
    }
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs7_unpad_rules() {
        assert_eq!(unpad_pkcs7(&[1, 2, 3, 1], 4), Ok(3));
        assert_eq!(unpad_pkcs7(&[4, 4, 4, 4], 4), Ok(0));
        assert_eq!(unpad_pkcs7(&[1, 2, 3, 0], 4), Err(CipherError::BadPadding));
        assert_eq!(unpad_pkcs7(&[5, 5, 5, 5], 4), Err(CipherError::BadPadding));
        assert_eq!(unpad_pkcs7(&[1, 3, 2, 2], 4), Ok(2));
        assert_eq!(unpad_pkcs7(&[1, 3, 3, 3], 4), Ok(1));
        assert_eq!(unpad_pkcs7(&[1, 2, 3, 3], 4), Err(CipherError::BadPadding));
        assert_eq!(unpad_pkcs7(&[], 4), Err(CipherError::BadPadding));
    }

    #[test]
    fn one_and_zeros_unpad_rules() {
        assert_eq!(unpad_one_and_zeros(&[1, 0x80, 0, 0], 4), Ok(1));
        assert_eq!(unpad_one_and_zeros(&[0x80, 0, 0, 0], 4), Ok(0));
        assert_eq!(unpad_one_and_zeros(&[1, 2, 3, 0x80], 4), Ok(3));
        assert_eq!(unpad_one_and_zeros(&[1, 2, 3, 4], 4), Err(CipherError::BadPadding));
        assert_eq!(unpad_one_and_zeros(&[0, 0, 0, 0], 4), Err(CipherError::BadPadding));
        assert_eq!(unpad_one_and_zeros(&[0x80, 0, 0, 0, 0, 0, 0, 0], 4), Err(CipherError::BadPadding));
    }

    #[test]
    fn ciphertext_lengths() {
        let c = |s: &str| StageCipher::new(s.parse().unwrap(), "k");
        assert_eq!(c("AES/CBC/PKCS5Padding").ciphertext_len(0), Ok(16));
        assert_eq!(c("AES/CBC/PKCS1Padding").ciphertext_len(16), Ok(32));
        assert_eq!(c("DES/CBC/PKCS1Padding").ciphertext_len(17), Ok(24));
        assert_eq!(c("DES/CBC/NoPadding").ciphertext_len(9), Err(CipherError::UnalignedPlaintext { len: 9, block: 8 }));
        assert_eq!(c("SEED/CFB").ciphertext_len(3), Ok(3));
    }

    #[test]
    fn raw_engine_checks_lengths() {
        assert_eq!(
            BlockEngine::new(Algorithm::Seed, &[0; 15]).unwrap_err(),
            CipherError::KeyLength { expected: 16, got: 15 }
        );
        let e = BlockEngine::new(Algorithm::Des, &[1; 8]).unwrap();
        assert_eq!(e.encrypt(Mode::Cbc, &[0; 16], &mut [0; 8]), Err(CipherError::IvLength { expected: 8, got: 16 }));
        assert_eq!(
            e.encrypt(Mode::Cbc, &[0; 8], &mut [0; 9]),
            Err(CipherError::UnalignedPlaintext { len: 9, block: 8 })
        );
        assert_eq!(e.decrypt(Mode::Cbc, &[0; 8], &mut [0; 9]), Err(CipherError::Misaligned { len: 9, block: 8 }));
        assert_eq!(e.encrypt(Mode::Cfb, &[0; 8], &mut [0; 9]), Ok(()));
    }
}
