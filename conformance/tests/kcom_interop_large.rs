//! 256 MiB KCOM5 transfers with the independent Python peer, both directions, streamed on our
//! side so memory stays at a few chunks: the receive feeds a SHA-256 hasher chunk by chunk, the
//! send reads the peer's pattern from a generator. Its own test binary, so it runs beside the
//! quick interop tests instead of after them.

mod kcom_peer;

use std::time::Instant;

use kcom_peer::{finish, our_listener, peer_got, peer_sender, start_peer, Api, Pattern};
use sha2_std::{Digest, Sha256};
use switchboard_std::kcom::{self, Incoming};

const LEN: u64 = 256 * 1024 * 1024;
/// SHA-256 of the first 256 MiB of the peer's pattern (byte i = (i * 131 + 7) % 251), computed
/// with Python's hashlib; the peer's own report in `us_to_peer_256_mib` checks it again.
const PATTERN_SHA256: &str = "982964f67efe7f32adacb380f61a2f8d4fed993f9eea4c8dc8eeabbb32380031";

#[test]
fn peer_to_us_256_mib() {
    let (child, port) = peer_sender(true, &["--msg", "large", "--data-len", &LEN.to_string()]);
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let (mut largest, mut seen) = (0usize, 0u64);
    let header = kcom::receive_with(&kcom_peer::options(true, port), |piece| {
        if let Incoming::Data { chunk, received, .. } = piece {
            largest = largest.max(chunk.len());
            hasher.update(&chunk);
            seen = received;
        }
        Ok(())
    });
    let (code, _, stderr) = finish(child);
    let header = header.unwrap_or_else(|e| panic!("{e}; peer: {stderr}"));
    eprintln!("peer_to_us_256_mib: {:.2?}, largest chunk {largest} bytes", started.elapsed());
    assert_eq!(code, Some(0), "peer: {stderr}");
    assert_eq!((header.msg.as_str(), header.data_len, seen), ("large", LEN, LEN));
    assert_eq!(hex::encode(hasher.finalize()), PATTERN_SHA256);
    // Streamed, not collected: no chunk is anywhere near the blob.
    assert!(largest <= 16 * 1024 * 1024, "a chunk of {largest} bytes");
}

#[test]
fn us_to_peer_256_mib() {
    let (listener, options) = our_listener(Api::Std, true);
    let child = start_peer("recv", true, options.port, &[]);
    let started = Instant::now();
    let sent = listener.send_from("large", LEN, Pattern::new(LEN));
    let (code, stdout, stderr) = finish(child);
    let reports = sent.unwrap_or_else(|e| panic!("{e}; peer: {stderr}")).len();
    eprintln!("us_to_peer_256_mib: {:.2?}, {reports} progress reports", started.elapsed());
    assert_eq!(code, Some(0), "peer: {stderr}");
    let got = peer_got(&stdout);
    assert_eq!((got.msg.as_str(), got.data_len), ("large", LEN));
    assert_eq!(got.sha256, PATTERN_SHA256);
}
