//! Properties of both cipher profiles, checked with quickcheck: round trips for every
//! algorithm/mode/padding, typed errors (never panics) for tampered, truncated, misaligned and
//! badly padded input, and the sealed profile's integrity and replay rules.

use bytes::BytesMut;
use quickcheck::{Gen, QuickCheck, TestResult};
use switchboard_proto::crypto::{
    BlockEngine, CipherError, CipherSpec, FrameCipher, Mode, Padding, SealedCipher, StageCipher,
};
use switchboard_proto::{Blame, Fault, SplitMix64};

fn qc() -> QuickCheck {
    // Bodies up to 300 bytes: every padding remainder, many blocks. A fixed seed keeps runs repeatable.
    QuickCheck::new().tests(300).rng(Gen::from_size_and_seed(300, 0x5b_c0de))
}

fn spec(index: u8) -> CipherSpec {
    let all: Vec<CipherSpec> = CipherSpec::all().collect();
    all[index as usize % all.len()]
}

fn plain_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = ((body.len() + 4) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn encrypted_frame(ciphertext: &[u8]) -> BytesMut {
    let mut frame = BytesMut::from(&((ciphertext.len() + 4) as u32 | 0x8000_0000).to_le_bytes()[..]);
    frame.extend_from_slice(ciphertext);
    frame
}

fn sealed(seed: u64) -> SealedCipher {
    SealedCipher::new("quickcheck key", Box::new(SplitMix64::new(seed)))
}

#[test]
fn stage_open_inverts_seal_for_every_spec_and_allowed_length() {
    fn prop(index: u8, key: String, mut body: Vec<u8>) -> TestResult {
        let spec = spec(index);
        let block = spec.algorithm.block_size();
        if spec.mode == Mode::Cbc && spec.padding == Padding::None {
            body.truncate(body.len() - body.len() % block);
        }
        let mut cipher = StageCipher::new(spec, &key);
        let mut out = BytesMut::new();
        cipher.seal(&body, &mut out).unwrap();
        let ct_len = out.len() - 4;
        match spec.mode {
            Mode::Cfb => assert_eq!(ct_len, body.len()),
            Mode::Cbc => assert_eq!(ct_len % block, 0),
        }
        assert_eq!(out[3] & 0x80, 0x80, "bit 31 set");
        let opened = cipher.open(out).unwrap();
        TestResult::from_bool(opened[..] == plain_frame(&body)[..])
    }
    qc().quickcheck(prop as fn(u8, String, Vec<u8>) -> TestResult);
}

#[test]
fn stage_seal_refuses_unaligned_nopadding_cbc_and_leaves_out_alone() {
    fn prop(index: u8, body: Vec<u8>) -> TestResult {
        let spec = spec(index);
        let block = spec.algorithm.block_size();
        if spec.mode != Mode::Cbc || spec.padding != Padding::None || body.len() % block == 0 {
            return TestResult::discard();
        }
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = StageCipher::new(spec, "k").seal(&body, &mut out).unwrap_err();
        assert_eq!(err, CipherError::UnalignedPlaintext { len: body.len(), block });
        assert_eq!(err.fault(), Fault::Caller);
        TestResult::from_bool(out[..] == b"kept"[..])
    }
    qc().quickcheck(prop as fn(u8, Vec<u8>) -> TestResult);
}

/// Any ciphertext at all (tampered, truncated, random): `open` returns a consistent plain frame
/// or a typed peer error — never a panic, never a frame whose header lies.
#[test]
fn stage_open_of_arbitrary_ciphertext_is_typed() {
    fn prop(index: u8, ciphertext: Vec<u8>) -> bool {
        let spec = spec(index);
        let block = spec.algorithm.block_size();
        match StageCipher::new(spec, "k").open(encrypted_frame(&ciphertext)) {
            Ok(frame) => {
                let header = u32::from_le_bytes(frame[..4].try_into().unwrap());
                header as usize == frame.len()
                    && frame.len() - 4 <= ciphertext.len()
                    && (spec.padding == Padding::None || frame.len() - 4 < ciphertext.len())
            }
            Err(CipherError::Misaligned { len, block: b }) => {
                spec.mode == Mode::Cbc && len == ciphertext.len() && b == block && len % block != 0
            }
            Err(e @ CipherError::BadPadding) => spec.padding != Padding::None && e.fault() == Fault::Peer,
            Err(_) => false,
        }
    }
    qc().quickcheck(prop as fn(u8, Vec<u8>) -> bool);
}

/// A valid frame cut short (header fixed up or not) is refused with a typed error or, where
/// the cut keeps CBC alignment, opens to a consistent frame; it never panics.
#[test]
fn stage_truncated_frames_are_typed() {
    fn prop(index: u8, body: Vec<u8>, cut: usize, fix_header: bool) -> bool {
        let spec = spec(index);
        let mut cipher = StageCipher::new(spec, "k");
        let mut body = body;
        if spec.mode == Mode::Cbc && spec.padding == Padding::None {
            body.truncate(body.len() - body.len() % spec.algorithm.block_size());
        }
        let mut frame = BytesMut::new();
        cipher.seal(&body, &mut frame).unwrap();
        let keep = frame.len() - 1 - cut % frame.len();
        frame.truncate(keep);
        if fix_header && keep >= 4 {
            let header = ((keep as u32) | 0x8000_0000).to_le_bytes();
            frame[..4].copy_from_slice(&header);
        }
        match cipher.open(frame) {
            Ok(f) => fix_header && u32::from_le_bytes(f[..4].try_into().unwrap()) as usize == f.len(),
            Err(CipherError::Truncated { len }) => len < 4,
            Err(CipherError::BadHeader { .. }) => !fix_header || keep < 4,
            Err(CipherError::Misaligned { .. } | CipherError::BadPadding) => true,
            Err(_) => false,
        }
    }
    qc().quickcheck(prop as fn(u8, Vec<u8>, usize, bool) -> bool);
}

/// Plaintext whose last block is not valid padding, encrypted raw and opened as a padded spec:
/// always `BadPadding`.
#[test]
fn stage_bad_padding_is_refused() {
    fn prop(index: u8, blocks: Vec<u8>, last: u8) -> TestResult {
        let spec = spec(index);
        if spec.mode != Mode::Cbc || spec.padding == Padding::None {
            return TestResult::discard();
        }
        let block = spec.algorithm.block_size();
        let mut plain = blocks;
        plain.truncate(plain.len() - plain.len() % block);
        plain.extend(std::iter::repeat_n(0x41u8, block));
        // Make the final block's padding invalid for this scheme.
        let n = plain.len();
        match spec.padding {
            // Last byte 0 or larger than a block, or a count whose bytes do not all match.
            Padding::Pkcs5 => {
                plain[n - 1] = if last as usize % 2 == 0 { 0 } else { (block as u8).saturating_add(1).max(last) };
            }
            // No 0x80 marker: the last non-zero byte is something else.
            _ => plain[n - 1] = if last == 0x80 || last == 0 { 0x7f } else { last },
        }
        let engine = BlockEngine::from_stage_key(spec.algorithm, b"k");
        engine.encrypt(Mode::Cbc, &vec![0x20; block], &mut plain).unwrap();
        let result = StageCipher::new(spec, "k").open(encrypted_frame(&plain));
        TestResult::from_bool(result == Err(CipherError::BadPadding))
    }
    qc().quickcheck(prop as fn(u8, Vec<u8>, u8) -> TestResult);
}

#[test]
fn pkcs5_with_a_mismatched_count_is_refused() {
    for spec in CipherSpec::all().filter(|s| s.padding == Padding::Pkcs5) {
        let block = spec.algorithm.block_size();
        // Count 3 but the byte before it is 2.
        let mut plain = vec![0x41; block];
        plain[block - 3..].copy_from_slice(&[3, 2, 3]);
        BlockEngine::from_stage_key(spec.algorithm, b"k").encrypt(Mode::Cbc, &vec![0x20; block], &mut plain).unwrap();
        assert_eq!(StageCipher::new(spec, "k").open(encrypted_frame(&plain)), Err(CipherError::BadPadding), "{spec}");
    }
}

#[test]
fn sealed_round_trip_any_body() {
    fn prop(bodies: Vec<Vec<u8>>) -> bool {
        let (mut tx, mut rx) = (sealed(1), sealed(2));
        // A handful of frames per case keeps the debug-build run short.
        bodies.iter().take(12).all(|body| {
            let mut out = BytesMut::new();
            tx.seal(body, &mut out).unwrap();
            rx.open(out).unwrap()[..] == plain_frame(body)[..]
        })
    }
    qc().quickcheck(prop as fn(Vec<Vec<u8>>) -> bool);
}

#[test]
fn sealed_frame_with_any_single_bit_flipped_is_rejected() {
    fn prop(body: Vec<u8>, bit: usize) -> bool {
        let (mut tx, mut rx) = (sealed(1), sealed(2));
        let mut frame = BytesMut::new();
        tx.seal(&body, &mut frame).unwrap();
        let bit = bit % (frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        match rx.open(frame) {
            Err(e @ (CipherError::Authentication | CipherError::BadHeader { .. })) => {
                e.fault() == Fault::Peer && rx.last_accepted_counter().is_none()
            }
            _ => false,
        }
    }
    qc().quickcheck(prop as fn(Vec<u8>, usize) -> bool);
}

#[test]
fn sealed_truncated_or_arbitrary_frames_are_typed() {
    fn prop(body: Vec<u8>, cut: usize, junk: Vec<u8>) -> bool {
        let (mut tx, mut rx) = (sealed(1), sealed(2));
        let mut frame = BytesMut::new();
        tx.seal(&body, &mut frame).unwrap();
        let keep = frame.len() - 1 - cut % frame.len();
        frame.truncate(keep);
        if keep >= 4 {
            let header = ((keep as u32) | 0x8000_0000).to_le_bytes();
            frame[..4].copy_from_slice(&header);
        }
        let truncated_ok = matches!(
            rx.open(frame),
            Err(CipherError::Truncated { .. } | CipherError::Authentication | CipherError::BadHeader { .. })
        );
        let junk_ok =
            matches!(rx.open(encrypted_frame(&junk)), Err(CipherError::Truncated { .. } | CipherError::Authentication));
        truncated_ok && junk_ok
    }
    qc().quickcheck(prop as fn(Vec<u8>, usize, Vec<u8>) -> bool);
}

/// Frames `0..n` sealed in order and delivered in an arbitrary order (with repeats): a frame is
/// accepted exactly when its counter is above every counter accepted before it.
#[test]
fn sealed_replayed_and_reordered_frames_are_rejected() {
    fn prop(order: Vec<u8>) -> bool {
        let mut tx = sealed(1);
        let frames: Vec<BytesMut> = (0..16u8)
            .map(|i| {
                let mut out = BytesMut::new();
                tx.seal(&[i], &mut out).unwrap();
                out
            })
            .collect();
        let mut rx = sealed(2);
        let mut highest: Option<u64> = None;
        order.iter().map(|&i| (i % 16) as u64).all(|i| {
            let result = rx.open(frames[i as usize].clone());
            let fresh = highest.is_none_or(|h| i > h);
            if fresh {
                highest = Some(i);
                result.map(|f| f[4..] == [i as u8]).unwrap_or(false)
            } else {
                result == Err(CipherError::Replay { counter: i }) && rx.last_accepted_counter() == highest
            }
        })
    }
    qc().quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn sealed_exact_replay_is_rejected() {
    let (mut tx, mut rx) = (sealed(1), sealed(2));
    let mut frame = BytesMut::new();
    tx.seal(b"once", &mut frame).unwrap();
    rx.open(frame.clone()).unwrap();
    assert_eq!(rx.open(frame), Err(CipherError::Replay { counter: 0 }));
}
