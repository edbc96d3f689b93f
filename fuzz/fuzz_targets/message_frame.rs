//! Message frames (WIRE.md §4): `message::Message::decode` on arbitrary bytes, and
//! `Message::encode` of arbitrary messages.
//!
//! Input: a selector byte; 0 decodes the rest as one frame, anything else reads a kind byte, an
//! id and a payload and encodes them.
//!
//! Checks: a frame decodes exactly when the reference rules hold (at least 13 bytes, bit 31
//! clear, the header's length equal to the frame's, a known type byte), otherwise the error
//! names the rule broken; a decoded message re-encodes to the very same bytes and its payload is
//! a slice of the frame; an encoded message decodes back to itself.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Script;
use switchboard_proto::message::{Error, Message, MessageKind, PREFIX_LEN};

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    if script.byte() == 0 {
        let frame = Bytes::copy_from_slice(script.rest());
        let header = frame.first_chunk::<4>().map(|h| u32::from_le_bytes(*h));
        match Message::decode(frame.clone()) {
            Ok(message) => {
                assert_eq!(message.to_frame().expect("a decoded message re-encodes"), frame);
                assert_eq!(message.encoded_len(), frame.len());
                assert_eq!(message.payload.as_ptr(), frame[PREFIX_LEN..].as_ptr(), "the payload was copied");
            }
            Err(Error::FrameTooShort { len }) => assert!(len == frame.len() && len < PREFIX_LEN),
            Err(Error::EncryptedFrame) => assert!(header.is_some_and(|h| h & 0x8000_0000 != 0)),
            Err(Error::LengthMismatch { announced, actual }) => {
                assert_eq!(actual, frame.len());
                assert_eq!(Some(announced as u32), header);
                assert_ne!(announced, actual);
            }
            Err(Error::UnknownKind { byte }) => assert!(byte == frame[4] && MessageKind::from_byte(byte).is_none()),
            Err(other) => panic!("unexpected decode error: {other:?}"),
        }
    } else {
        let kind = MessageKind::ALL[usize::from(script.byte()) % MessageKind::ALL.len()];
        let message = Message::new(kind, script.u64(), Bytes::copy_from_slice(script.rest()));
        let frame = message.to_frame().expect("a small message encodes");
        assert_eq!(frame.len(), message.encoded_len());
        assert_eq!(Message::decode(frame).expect("an encoded message decodes"), message);
    }
});
