//! STAGE raw framing (no filter): the receive side of `stage::PacketConnection` with
//! `FramingConfig::raw()`, which delivers every chunk as it arrives.
//!
//! Input: an (unused) limit, an EOF flag, the cut points, then the byte stream.
//!
//! Checks: each non-empty read comes out as exactly one frame, unchanged and in order, and an
//! empty read as none; together they are the stream; nothing is ever left buffered; EOF is
//! never an error (raw has no frames to cut short): it closes the read side, and the connection
//! ends cleanly on the harness's `Close` then, and only then.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{chunks, feed_stream, StreamCase};
use switchboard_proto::stage::{Event, FramingConfig, PacketConnection};
use switchboard_proto::Instant;

fuzz_target!(|data: &[u8]| {
    let StreamCase { eof, cuts, stream, .. } = StreamCase::read(data);
    let pieces = chunks(stream, &cuts);
    let fed = feed_stream(&mut PacketConnection::new(FramingConfig::raw()), Instant::ZERO, pieces.iter().copied(), eof);

    assert_eq!(fed.max_buffered, 0, "raw framing left bytes in the receive buffer");
    let frames: Vec<&[u8]> = fed.events.iter().map(|Event::Frame(frame)| &frame[..]).collect();
    let reads: Vec<&[u8]> = pieces.into_iter().filter(|piece| !piece.is_empty()).collect();
    assert_eq!(frames, reads, "raw frames are not the reads as they arrived");
    assert!(!matches!(fed.finished, Some(Err(_))), "raw framing failed: {:?}", fed.finished);
    assert_eq!(fed.read_closed, eof, "ReadClosed without an EOF, or none after it");
    assert_eq!(fed.finished.is_some(), eof && fed.closed, "ended {:?} with EOF {eof}", fed.finished);
});
