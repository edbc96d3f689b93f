//! Router payloads (`router::doc`, WIRE.md §5): `Hello`, `Welcome`, `Refused`, `ToHub` and
//! `FromHub` decoding of arbitrary bytes.
//!
//! Input: a selector byte (which payload), then the bytes.
//!
//! Checks: decoding never panics, however deep or malformed the BSON; whatever decodes encodes
//! again (the module's promise), decodes from those bytes to the same value, and encodes to the
//! same bytes a second time.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_proto::router::{DocError, FromHub, Hello, Refused, ToHub, Welcome};

/// Decode, encode, decode again and encode again; the two encodings must agree, and so must the
/// two values where `same` says they can be compared (a BSON double NaN is unequal to itself).
fn round_trip<T: std::fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DocError>,
    encode: impl Fn(&T) -> Result<Bytes, DocError>,
    same: impl Fn(&T, &T) -> bool,
) {
    let Ok(value) = decode(bytes) else {
        return;
    };
    let first = encode(&value).unwrap_or_else(|e| panic!("{value:?} decoded but does not encode: {e}"));
    let again = decode(&first).unwrap_or_else(|e| panic!("{value:?} encoded to bytes that do not decode: {e}"));
    assert!(same(&value, &again), "{value:?} came back as {again:?}");
    let second = encode(&again).expect("a decoded value encodes");
    assert_eq!(first, second, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => round_trip(bytes, Hello::from_bytes, Hello::to_bytes, |a, b| a == b),
        1 => round_trip(bytes, Welcome::from_bytes, Welcome::to_bytes, |a, b| a == b),
        2 => round_trip(bytes, Refused::from_bytes, Refused::to_bytes, |a, b| a == b),
        3 => round_trip(bytes, ToHub::from_bytes, ToHub::to_bytes, |_, _| true),
        _ => round_trip(bytes, FromHub::from_bytes, FromHub::to_bytes, |_, _| true),
    }
});
