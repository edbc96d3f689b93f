//! STAGE text framing: the receive side of `stage::PacketConnection` with
//! `FramingConfig::text` (lines split on `\n`, each delivered with its newline).
//!
//! Input: IN (`u16`, at least 1), an EOF flag, the cut points, then the byte stream.
//!
//! Checks: the same lines and end whether the stream arrives whole or cut at the fuzzer's
//! points; the lines are exactly the reference split of the stream (each ends with its only
//! `\n` and is at most IN long, newline included); `LineTooLong` comes exactly where the
//! reference finds a line over IN, or an unfinished one that can no longer fit; an EOF inside a
//! line reports how much was buffered; an EOF or a line over IN closes only the read side
//! (`ReadClosed` after the lines, no event after it) and the end, the peer's fault if any, comes
//! only once the harness closes (it stops reading at `ReadClosed` and closes, as a driver does);
//! the receive buffer never holds IN bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{reference_lines, same_across_chunkings, StreamCase};
use switchboard_proto::stage::{Error, Event, FramingConfig, PacketConnection};
use switchboard_proto::Instant;

fuzz_target!(|data: &[u8]| {
    let StreamCase { limit, eof, cuts, stream, .. } = StreamCase::read(data);
    let max_in = usize::from(limit).max(1);

    let config = FramingConfig::text(max_in, 0);
    let (fed, buffered) = same_across_chunkings(|| PacketConnection::new(config), Instant::ZERO, stream, &cuts, eof);
    assert!(buffered < max_in, "{buffered} bytes buffered with IN = {max_in}");

    let (expected, rest, too_long) = reference_lines(stream, max_in);
    let lines: Vec<&[u8]> = fed.events.iter().map(|Event::Frame(line)| &line[..]).collect();
    assert_eq!(lines, expected, "lines differ from the reference split");
    fed.assert_ended_only_at_read_close();
    match &fed.finished {
        Some(Err(Error::LineTooLong { max })) => {
            assert!(too_long && *max == max_in, "LineTooLong where the reference finds none")
        }
        _ if too_long => panic!("a line over IN was not refused: {:?}", fed.finished),
        None => assert!(!eof, "open after EOF"),
        Some(Ok(())) => assert!(rest.is_empty(), "a clean end with {} bytes of a line left", rest.len()),
        Some(Err(Error::Truncated { buffered })) => {
            assert!(eof, "truncated without an EOF");
            assert_eq!(*buffered, rest.len(), "truncation reports the wrong count");
        }
        Some(Err(other)) => panic!("unexpected end: {other:?}"),
    }
});
