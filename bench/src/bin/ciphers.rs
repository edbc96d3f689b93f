//! Cipher-stream throughput: `StageCipher` / `SealedCipher` next to the raw RustCrypto mode on
//! the same buffer, in the same run.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin ciphers
//! ```
//!
//! Every figure is MB/s (10^6 bytes of frame *body* per second), the best of five ~100 ms runs,
//! the profile's and the raw runs alternating.
//! Both sides copy the input into a reused buffer (at the same offset: after a 4-byte header,
//! and for GCM a 12-byte nonce) and transform it in place; the raw side uses
//! the already keyed block cipher, exactly as `StageCipher` does, so the ratio
//! (raw ÷ profile; 1.00 = no overhead) is the cost of the frame layer: header, padding and its
//! check, the `BytesMut` handling and dynamic dispatch.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::BytesMut;
use cipher::inout::InOutBuf;
use cipher::{
    AsyncStreamCipher, BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit,
};
use switchboard_proto::crypto::{CipherSpec, FrameCipher, Mode, Padding, SealedCipher, StageCipher};
use switchboard_proto::SplitMix64;

const SIZES: [usize; 2] = [1024, 64 * 1024];
/// Stand-in for the frame header, so the raw side transforms bytes at the very offsets the
/// profile does (memcpy and cipher speed depend on alignment).
const HEAD: [u8; 4] = [0; 4];
const KEY: &str = "benchmark key, 32 bytes or more!";

/// MB/s of `f` over one ~100 ms run, `bytes` per call.
fn run<S>(bytes: usize, state: &mut S, f: &mut impl FnMut(&mut S)) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        for _ in 0..8 {
            f(state);
        }
        calls += 8;
    }
    calls as f64 * bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Best MB/s of `a` and of `b` over five alternating runs each, so both see the same machine
/// load (other builds share these cores) and the ratio stays meaningful. Both work on the same
/// `state` (the same buffers: memcpy speed depends on the addresses involved).
fn pair<S>(bytes: usize, state: &mut S, mut a: impl FnMut(&mut S), mut b: impl FnMut(&mut S)) -> (f64, f64) {
    for _ in 0..4 {
        a(state);
        b(state);
    }
    let (mut best_a, mut best_b) = (0f64, 0f64);
    for _ in 0..5 {
        best_a = best_a.max(run(bytes, state, &mut a));
        best_b = best_b.max(run(bytes, state, &mut b));
    }
    (best_a, best_b)
}

/// The raw mode, applied in place to whole blocks (CBC) or any length (CFB) from `iv`.
fn raw_encrypt<C: BlockCipher + BlockEncrypt>(c: &C, mode: Mode, iv: &[u8], buf: &mut [u8]) {
    match mode {
        Mode::Cbc => {
            let (blocks, _) = InOutBuf::from(buf).into_chunks();
            cbc::Encryptor::<&C>::inner_iv_init(c, iv.into()).encrypt_blocks_inout_mut(blocks);
        }
        Mode::Cfb => cfb_mode::Encryptor::<&C>::inner_iv_init(c, iv.into()).encrypt(buf),
    }
}

fn raw_decrypt<C: BlockCipher + BlockEncrypt + BlockDecrypt>(c: &C, mode: Mode, iv: &[u8], buf: &mut [u8]) {
    match mode {
        Mode::Cbc => {
            let (blocks, _) = InOutBuf::from(buf).into_chunks();
            cbc::Decryptor::<&C>::inner_iv_init(c, iv.into()).decrypt_blocks_inout_mut(blocks);
        }
        Mode::Cfb => cfb_mode::Decryptor::<&C>::inner_iv_init(c, iv.into()).decrypt(buf),
    }
}

/// One table row: the profile's seal/open and the raw mode's encrypt/decrypt on `size` bytes.
fn stage_row<C: BlockCipher + BlockEncrypt + BlockDecrypt>(raw: &C, spec: CipherSpec, size: usize) {
    let block = spec.algorithm.block_size();
    let iv = vec![0x20u8; block];
    let body = vec![0xa5u8; size];
    let mut stage = StageCipher::new(spec, KEY);

    // Seal: both sides copy the same body into the same output buffer, after a 4-byte header.
    let mut out = BytesMut::with_capacity(size + 64);
    let (seal, raw_enc) = pair(
        size,
        &mut out,
        |out| {
            out.clear();
            stage.seal(black_box(&body), out).unwrap();
        },
        |out| {
            out.clear();
            out.extend_from_slice(&HEAD);
            out.extend_from_slice(black_box(&body));
            raw_encrypt(raw, spec.mode, &iv, &mut out[HEAD.len()..]);
        },
    );

    // Open: both sides receive the very same sealed frame, split off a reused buffer as the
    // packet connection does (the allocation is reclaimed once the previous frame is dropped);
    // the raw side decrypts its body (padding included) without the frame layer.
    let mut sealed = BytesMut::new();
    stage.seal(&body, &mut sealed).unwrap();
    let mut rx = BytesMut::with_capacity(size + 64);
    let (open, raw_dec) = pair(
        size,
        &mut rx,
        |rx| {
            rx.reserve(sealed.len());
            rx.extend_from_slice(&sealed);
            black_box(stage.open(rx.split()).unwrap());
        },
        |rx| {
            rx.reserve(sealed.len());
            rx.extend_from_slice(&sealed);
            let mut frame = rx.split();
            raw_decrypt(raw, spec.mode, &iv, &mut frame[HEAD.len()..]);
            black_box(frame);
        },
    );
    row(&spec.to_string(), size, seal, raw_enc, open, raw_dec);
}

fn row(name: &str, size: usize, seal: f64, raw_enc: f64, open: f64, raw_dec: f64) {
    println!(
        "| {name:<22} | {:>6} | {seal:>9.1} | {raw_enc:>9.1} | {:>5.2} | {open:>9.1} | {raw_dec:>9.1} | {:>5.2} |",
        format!("{} KiB", size / 1024),
        raw_enc / seal,
        raw_dec / open,
    );
}

fn sealed_row(size: usize) {
    let body = vec![0xa5u8; size];
    let mut tx = SealedCipher::new(KEY, Box::new(SplitMix64::new(1)));
    let mut rx = SealedCipher::new(KEY, Box::new(SplitMix64::new(2)));
    let raw = Aes256Gcm::new(&[7u8; 32].into());
    let nonce = Nonce::from([3u8; 12]);
    // The raw side works after a 16-byte gap, where the sealed frame's payload starts.
    let raw_copy = |out: &mut BytesMut| {
        out.clear();
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(black_box(&body));
    };

    let mut out = BytesMut::with_capacity(size + 64);
    let (seal, raw_enc) = pair(
        size,
        &mut out,
        |out| {
            out.clear();
            tx.seal(black_box(&body), out).unwrap();
        },
        |out| {
            raw_copy(out);
            black_box(raw.encrypt_in_place_detached(&nonce, &HEAD, &mut out[16..]).unwrap());
        },
    );
    // Every sealed frame can be opened once only (replay rejection), so the open side is timed
    // as seal + open of a fresh frame, against raw encrypt + decrypt.
    let (round, raw_round) = pair(
        size,
        &mut out,
        |out| {
            out.clear();
            tx.seal(black_box(&body), out).unwrap();
            black_box(rx.open(out.split()).unwrap());
        },
        |out| {
            raw_copy(out);
            let tag = raw.encrypt_in_place_detached(&nonce, &HEAD, &mut out[16..]).unwrap();
            raw.decrypt_in_place_detached(&nonce, &HEAD, &mut out[16..], &tag).unwrap();
            black_box(&out);
        },
    );
    row("AES-256-GCM (sealed)", size, seal, raw_enc, round, raw_round);
}

/// Raw single-block (ECB) speed of a block cipher over 64 KiB.
fn ecb<C: BlockCipher + BlockEncrypt>(name: &str, c: &C) {
    let mut buf = vec![0x5au8; 64 * 1024];
    let mut encrypt = |buf: &mut Vec<u8>| {
        let (blocks, _) = InOutBuf::from(&mut buf[..]).into_chunks();
        c.encrypt_blocks_inout(blocks);
    };
    let speed = (0..5).map(|_| run(64 * 1024, &mut buf, &mut encrypt)).fold(0f64, f64::max);
    println!("| {name:<22} | {speed:>9.1} |");
}

fn main() {
    let key = {
        let mut k = [0u8; 32];
        k.copy_from_slice(&KEY.as_bytes()[..32]);
        k
    };
    let aes = aes::Aes256::new(&key.into());
    let seed = kisaseed::SEED::new_from_slice(&key[..16]).unwrap();
    let des = des::Des::new_from_slice(&key[..8]).unwrap();

    println!("StageCipher / SealedCipher vs the raw RustCrypto mode (MB/s of body; ratio = raw / profile)");
    println!();
    println!("| spec                   | frame  | seal MB/s | raw enc   | ratio | open MB/s | raw dec   | ratio |");
    println!("|------------------------|--------|-----------|-----------|-------|-----------|-----------|-------|");
    for size in SIZES {
        for (mode, padding) in [(Mode::Cbc, Padding::Pkcs5), (Mode::Cfb, Padding::None)] {
            let spec = |algorithm| CipherSpec { algorithm, mode, padding };
            stage_row(&aes, spec(switchboard_proto::crypto::Algorithm::Aes), size);
            stage_row(&seed, spec(switchboard_proto::crypto::Algorithm::Seed), size);
            stage_row(&des, spec(switchboard_proto::crypto::Algorithm::Des), size);
        }
        sealed_row(size);
    }
    println!();
    println!("(sealed row: the open columns are seal+open of a fresh frame vs raw encrypt+decrypt)");
    println!();
    println!("Raw block cipher, ECB over 64 KiB");
    println!();
    println!("| cipher                 | MB/s      |");
    println!("|------------------------|-----------|");
    ecb("AES-256 (aes 0.8)", &aes);
    ecb("SEED (kisaseed 0.1.3)", &seed);
    ecb("DES (des 0.8)", &des);
}
