//! STAGE packet framing (`packet` = `bson`, WIRE.md §2) on the receive side of
//! `stage::PacketConnection` with `FramingConfig::packet`.
//!
//! Input: IN (`u16`, at least 4), an EOF flag, the cut points, then the byte stream.
//!
//! The harness plays a driver: it stops reading at `ReadClosed` and then closes the connection.
//!
//! Checks: the same frames and end whether the stream arrives whole or cut at the fuzzer's
//! points; every frame is a plain frame whose header matches its length and is within IN; the
//! frames are exactly what the reference decoder finds, and re-encoding their bodies gives them
//! back; an error comes only where the reference decoder stops at a bad header (the frames
//! before it delivered first), and an EOF inside a frame reports how much was buffered; an EOF
//! or a bad header closes only the read side (`ReadClosed` after the frames, no event after it)
//! and the end, the peer's fault if any, comes only once the harness closes; the receive buffer
//! never holds a whole IN's worth (an oversized frame is refused at its header).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{reference_frames, same_across_chunkings, StreamCase};
use switchboard_proto::stage::{encode_frame, Error, Event, FramingConfig, PacketConnection, HEADER_LEN};
use switchboard_proto::Instant;

fuzz_target!(|data: &[u8]| {
    let StreamCase { limit, eof, cuts, stream, .. } = StreamCase::read(data);
    let max_in = usize::from(limit).max(HEADER_LEN);

    let config = FramingConfig::packet(max_in, 0);
    let (fed, buffered) = same_across_chunkings(|| PacketConnection::new(config), Instant::ZERO, stream, &cuts, eof);
    assert!(buffered < max_in.max(HEADER_LEN), "{buffered} bytes buffered with IN = {max_in}");

    let (expected, rest) = reference_frames(stream, max_in);
    let frames: Vec<&[u8]> = fed.events.iter().map(|Event::Frame(frame)| &frame[..]).collect();
    assert_eq!(frames, expected, "frames differ from the reference decoder");
    for frame in &frames {
        let mut again = BytesMut::new();
        encode_frame(&frame[HEADER_LEN..], &mut again).expect("a received frame re-encodes");
        assert_eq!(&again[..], *frame, "re-encoding a received frame changed it");
    }
    fed.assert_ended_only_at_read_close();
    match &fed.finished {
        None => assert!(!eof, "open after EOF"),
        Some(Ok(())) => assert!(rest.is_empty(), "a clean end with {} bytes of a frame left", rest.len()),
        Some(Err(Error::Truncated { buffered })) => {
            assert!(eof, "truncated without an EOF");
            assert_eq!(*buffered, rest.len(), "truncation reports the wrong count");
        }
        Some(Err(Error::LengthTooShort { .. } | Error::FrameTooLarge { .. } | Error::EncryptedWithoutCipher)) => {
            assert!(rest.len() >= HEADER_LEN, "a header error without a whole header left");
        }
        Some(Err(other)) => panic!("unexpected end: {other:?}"),
    }
});
