//! KCOM5 address strings (`kcom::address`, WIRE.md §1): `unpack` of arbitrary text and `pack`
//! of arbitrary ports and keys.
//!
//! Input: a selector byte; 0 unpacks the rest as text (skipped if not UTF-8), anything else
//! reads a port (`u16`) and packs the rest as the key.
//!
//! Checks: unpacking never panics; what unpacks packs again and unpacks to the same port and
//! key; a key packs exactly when its length divides 48, and unpacks to itself repeated to 48
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Script;
use switchboard_proto::kcom::{pack, unpack, AddressError, KEY_LEN};

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    if script.byte() == 0 {
        let Ok(text) = std::str::from_utf8(script.rest()) else {
            return;
        };
        if let Ok((port, key)) = unpack(text) {
            let packed = pack(port, &key).expect("a 48-byte key packs");
            assert_eq!(unpack(&packed), Ok((port, key)), "{text:?} does not survive pack and unpack");
        }
    } else {
        let port = script.u16();
        let key = script.rest();
        match pack(port, key) {
            Ok(packed) => {
                assert!(!key.is_empty() && KEY_LEN.is_multiple_of(key.len()), "packed a key of {} bytes", key.len());
                let (got_port, full) = unpack(&packed).expect("a packed address unpacks");
                assert_eq!(got_port, port);
                assert!(full.iter().zip(key.iter().cycle()).all(|(a, b)| a == b), "the key is not repeated");
            }
            Err(AddressError::EmptyKey) => assert!(key.is_empty()),
            Err(AddressError::BadKeyLength { len }) => assert!(len == key.len() && !KEY_LEN.is_multiple_of(len)),
            Err(other) => panic!("pack failed: {other:?}"),
        }
    }
});
