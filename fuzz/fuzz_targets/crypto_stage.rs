//! STAGE-profile cipher streams (WIRE.md §3a): `crypto::StageCipher::open` on arbitrary frames
//! for every spec, and `seal` of arbitrary bodies.
//!
//! Input: the spec (one of the 16), the key bytes, a selector, then the frame or body.
//!
//! Checks: `open` never panics and returns a plain frame whose header matches its length; the
//! profile is deterministic (fixed IV), so sealing the opened body gives back exactly the frame
//! that was opened; failures are the profile's own errors (bad header, misaligned, bad
//! padding); a sealed body has the length `ciphertext_len` promises and opens to the body.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Script;
use switchboard_proto::crypto::{CipherError, CipherSpec, FrameCipher, StageCipher};
use switchboard_proto::stage::HEADER_LEN;

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let spec = CipherSpec::all().nth(usize::from(script.byte() % 16)).expect("16 specs");
    let mut cipher = StageCipher::from_key_bytes(spec, script.bytes());
    let decrypt = script.byte() & 1 == 0;
    let input = script.rest();
    if decrypt {
        match cipher.open(BytesMut::from(input)) {
            Ok(plain) => {
                let header = u32::from_le_bytes(*plain.first_chunk::<4>().expect("a header"));
                assert_eq!(header as usize, plain.len(), "the plain header does not match the frame");
                let mut again = BytesMut::new();
                cipher.seal(&plain[HEADER_LEN..], &mut again).expect("an opened body seals again");
                assert_eq!(&again[..], input, "sealing the opened body does not give the frame back");
            }
            Err(CipherError::BadHeader { .. } | CipherError::Truncated { .. }) => {}
            Err(CipherError::Misaligned { .. } | CipherError::BadPadding) => {}
            Err(other) => panic!("open failed with {other:?}"),
        }
    } else {
        let mut sealed = BytesMut::new();
        match cipher.seal(input, &mut sealed) {
            Ok(()) => {
                let expected = cipher.ciphertext_len(input.len()).expect("sealed, so it has a length");
                assert_eq!(sealed.len(), HEADER_LEN + expected);
                let plain = cipher.open(sealed).expect("a sealed frame opens");
                assert_eq!(&plain[HEADER_LEN..], input);
            }
            Err(CipherError::UnalignedPlaintext { .. }) => assert!(cipher.ciphertext_len(input.len()).is_err()),
            Err(other) => panic!("seal failed with {other:?}"),
        }
    }
});
