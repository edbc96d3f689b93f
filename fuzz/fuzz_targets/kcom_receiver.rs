//! KCOM5 receiving (WIRE.md §1): `kcom::Receiver` fed an arbitrary sender stream.
//!
//! Input: the message limit (`u16`; the data limit is 16 times it), flags (bit 0: an EOF after
//! the stream, bit 1: the application closes after it), the cut points, then the stream (seeds
//! start with the echo of the receiver's hello, `KCOM5` 01 02 03).
//!
//! Checks: the hello goes out first and alone; whole or cut at the fuzzer's points, the stream
//! gives the same message, data and end; they are what the reference parser reads (echo, u32
//! length and message, u64 length and data), with the error it names (mismatched echo, a
//! length over its limit before any of the body is buffered, a message that is not UTF-8, an
//! EOF naming the part it cut and how much of it had arrived; the receiver finishes at the EOF,
//! never going read-closed); a `Close` before the transfer completed ends it `Abandoned`, one
//! after the end is a no-op, never refused; events come in their documented order; the receive
//! buffer never holds more than a field or the message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{chunks, close, drain_into, feed_stream, Fed, StreamCase};
use switchboard_proto::kcom::{Collector, Error, KcomConfig, Part, Receiver, ReceiverEvent, HELLO_LEN, MAGIC};
use switchboard_proto::Instant;

const NONCE: [u8; 3] = [1, 2, 3];

/// What the reference parser reads: the message and data so far, and the end.
struct Reading {
    message: Option<String>,
    data: Vec<u8>,
    end: Option<Result<(), Error>>,
}

/// Parse a sender's stream as WIRE.md §1 describes it.
fn reference(stream: &[u8], eof: bool, config: &KcomConfig) -> Reading {
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&NONCE);
    let mut reading = Reading { message: None, data: Vec::new(), end: None };
    let cut = |reading: Reading, part, got: usize, expected: u64| Reading {
        end: eof.then_some(Err(Error::Truncated { reading: part, got: got as u64, expected })),
        ..reading
    };
    let Some((echo, rest)) = stream.split_first_chunk::<HELLO_LEN>() else {
        return cut(reading, Part::Echo, stream.len(), HELLO_LEN as u64);
    };
    if echo[..] != hello[..] {
        let sent: [u8; HELLO_LEN] = hello.try_into().expect("8 bytes");
        return Reading { end: Some(Err(Error::EchoMismatch { sent, got: *echo })), ..reading };
    }
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return cut(reading, Part::MessageLength, rest.len(), 4);
    };
    let len = u32::from_le_bytes(*len);
    if len > config.max_msg_len {
        return Reading { end: Some(Err(Error::MessageTooLong { len, max: config.max_msg_len })), ..reading };
    }
    if rest.len() < len as usize {
        return cut(reading, Part::Message, rest.len(), u64::from(len));
    }
    let (message, rest) = rest.split_at(len as usize);
    match std::str::from_utf8(message) {
        Ok(text) => reading.message = Some(text.to_owned()),
        Err(e) => return Reading { end: Some(Err(Error::InvalidUtf8 { valid_up_to: e.valid_up_to() })), ..reading },
    }
    let Some((len, rest)) = rest.split_first_chunk::<8>() else {
        return cut(reading, Part::DataLength, rest.len(), 8);
    };
    let len = u64::from_le_bytes(*len);
    if len > config.max_data_len {
        return Reading { end: Some(Err(Error::DataTooLong { len, max: config.max_data_len })), ..reading };
    }
    let take = rest.len().min(len as usize);
    reading.data = rest[..take].to_vec();
    if (take as u64) < len {
        return cut(reading, Part::Data, take, len);
    }
    Reading { end: Some(Ok(())), ..reading }
}

/// The message and data a run delivered, checking the events' order on the way.
fn collect(fed: &Fed<ReceiverEvent, Error>) -> (Option<String>, Bytes) {
    let mut collector = Collector::new();
    for event in &fed.events {
        match event {
            ReceiverEvent::Message(_) => assert!(collector.message().is_none(), "a second message"),
            ReceiverEvent::DataLength(_) => assert!(collector.message().is_some() && collector.data_len().is_none()),
            ReceiverEvent::Data(chunk) => {
                assert!(!chunk.is_empty(), "an empty data chunk");
                let announced = collector.data_len().expect("data after its length");
                assert!(collector.received() + chunk.len() as u64 <= announced, "more data than announced");
            }
        }
        collector.push(event.clone());
    }
    let message = collector.message().map(str::to_owned);
    (message, collector.into_parts().1)
}

fuzz_target!(|data: &[u8]| {
    let StreamCase { limit, eof, close: close_after, cuts, stream } = StreamCase::read(data);
    let config = KcomConfig::default()
        .with_close(None)
        .with_max_msg_len(u32::from(limit))
        .with_max_data_len(u64::from(limit) * 16);
    let run = |pieces: Vec<&[u8]>| {
        let mut receiver = Receiver::with_nonce(config, NONCE);
        let mut fed = feed_stream(&mut receiver, Instant::ZERO, pieces, eof);
        if close_after {
            close(&mut receiver, Instant::ZERO, &mut fed);
            drain_into(&mut receiver, Instant::ZERO, &mut fed);
            assert!(fed.is_finished(), "a closed receiver did not finish");
        }
        assert!(!fed.read_closed, "the receiver went read-closed instead of finishing");
        fed
    };
    let whole = run(vec![stream]);
    let split = run(chunks(stream, &cuts));

    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&NONCE);
    assert_eq!(whole.wire, hello, "the receiver must send its hello and nothing else");
    assert_eq!(split.wire, hello);
    let (message, received) = collect(&whole);
    assert_eq!(collect(&split), (message.clone(), received.clone()), "cutting the stream changed what arrived");
    assert_eq!(whole.finished, split.finished, "cutting the stream changed the end");
    let buffered = whole.max_buffered.max(split.max_buffered);
    assert!(buffered < HELLO_LEN.max(limit as usize), "{buffered} bytes buffered with a {limit}-byte message limit");

    let mut expected = reference(stream, eof, &config);
    if close_after && expected.end.is_none() {
        // Closed by the application before the transfer completed.
        expected.end = Some(Err(Error::Abandoned));
    }
    assert_eq!(message, expected.message, "the message differs from the reference");
    assert_eq!(&received[..], &expected.data[..], "the data differs from the reference");
    assert_eq!(whole.finished, expected.end, "the end differs from the reference");
});
