//! KCOM5 sending (WIRE.md §1): `kcom::Sender` (whole blob or streaming) driven by a sequence of
//! receiver bytes (a real hello or anything), data chunks, EOF, `Close` and time steps.
//!
//! Input: the mode (whole or streaming), the `close` deadline (ms, 0 = none), the write budget
//! (`u16`), the message and whether to repeat it past 4 KiB, the data (whole mode) or its
//! announced length (streaming), then operations.
//!
//! Checks: the bytes sent are the reference encoding: the first 8 bytes received, echoed, then
//! the u32 message length, the message, the u64 data length and the data accepted, in order,
//! all of it once the sender ends cleanly; `Ready` comes once, only after a hello starting with
//! `KCOM5`; a chunk is refused exactly when it would pass the announced length or, before the
//! hello, the write budget, and a refused chunk changes nothing; an EOF before the hello, a bad
//! magic and the deadline end the sender exactly when the rules say; `Close` with data still
//! owed ends it `Abandoned` at once, and with all data given is a no-op (the transfer goes on
//! and completes); `Close` is never refused, after the end either; a finished sender refuses
//! further data.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{close, drain, drain_into, end_input, optional_millis, Clock, Fed, Script};
use switchboard_proto::kcom::{Error, KcomConfig, Part, Sender, SenderCommand, SenderEvent, HELLO_LEN, MAGIC};
use switchboard_proto::{Input, Machine};

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let streaming = script.byte() & 1 == 1;
    let deadline = optional_millis(script.byte());
    let budget = usize::from(script.u16());
    let config = KcomConfig::default().with_close(deadline).with_write_budget(budget);
    // Repeated past 4 KiB on request, so that short inputs reach the long messages that go out
    // uncopied.
    let mut message = script.string();
    if script.byte() & 1 == 1 && !message.is_empty() {
        message = message.repeat(4096 / message.len() + 1);
    }
    let mut accepted: Vec<u8> = Vec::new();
    let (mut sender, data_len) = if streaming {
        let data_len = u64::from(script.u16());
        (Sender::streaming(config, message.clone(), data_len).expect("a short message"), data_len)
    } else {
        let blob = script.bytes();
        accepted.extend_from_slice(blob);
        let sender = Sender::new(config, message.clone(), Bytes::copy_from_slice(blob)).expect("a short message");
        (sender, blob.len() as u64)
    };
    let mut clock = Clock::new();
    let start = clock.now();
    let mut fed = Fed::<SenderEvent, Error>::default();
    fed.absorb(drain(&mut sender, start), start);
    let mut received: Vec<u8> = Vec::new();
    let mut buffer = BytesMut::new();
    let mut held = 0;
    let mut input_ended = false;
    let mut abandoned = false;

    while !script.is_empty() && !fed.is_finished() {
        let now = clock.now();
        let handshaken = received.len() >= HELLO_LEN;
        let mut closed_owing = false;
        match script.byte() % 5 {
            0 if !input_ended => {
                let bytes = script.bytes();
                received.extend_from_slice(bytes);
                buffer.extend_from_slice(bytes);
                sender.handle_input(now, Input::Stream(&mut buffer)).expect("stream input while open");
            }
            1 => {
                let chunk = script.bytes();
                let remaining = data_len - accepted.len() as u64;
                let result =
                    sender.handle_input(now, Input::Command(SenderCommand::Data(Bytes::copy_from_slice(chunk))));
                match result {
                    Ok(()) => {
                        assert!(chunk.len() as u64 <= remaining, "accepted data past the announced length");
                        if !handshaken {
                            held += chunk.len();
                            assert!(held <= budget, "held {held} bytes before the hello with a budget of {budget}");
                        }
                        accepted.extend_from_slice(chunk);
                    }
                    Err(Error::DataOverflow { .. }) => assert!(chunk.len() as u64 > remaining),
                    Err(Error::NotReady { .. }) => {
                        assert!(!handshaken && chunk.len() as u64 <= remaining && held + chunk.len() > budget)
                    }
                    Err(e) => panic!("data refused: {e}"),
                }
                assert_eq!(sender.remaining(), data_len - accepted.len() as u64);
            }
            2 if !input_ended => end_input(&mut sender, now, &mut input_ended),
            4 => {
                closed_owing = sender.remaining() > 0;
                abandoned |= closed_owing;
                close(&mut sender, now, &mut fed);
                if script.byte() & 1 == 1 {
                    close(&mut sender, now, &mut fed);
                }
            }
            _ => {
                clock.advance(u64::from(script.u16()));
            }
        }
        let now = clock.now();
        drain_into(&mut sender, now, &mut fed);
        let due = deadline.is_some_and(|deadline| now >= start + deadline);
        if closed_owing {
            assert_eq!(fed.finished, Some(Err(Error::Abandoned)), "Close with data owed did not abandon the transfer");
        }
        match &fed.finished {
            Some(Err(Error::TimedOut { .. })) => assert!(due, "timed out before the deadline"),
            Some(Err(Error::BadMagic { got })) => assert!(got[..MAGIC.len()] != MAGIC && received.starts_with(got)),
            Some(Err(Error::Truncated { reading: Part::Hello, got, .. })) => {
                assert!(input_ended && *got == received.len() as u64 && received.len() < HELLO_LEN)
            }
            Some(Ok(())) => assert_eq!(accepted.len() as u64, data_len, "ended before all data was given"),
            Some(Err(Error::Abandoned)) => assert!(abandoned, "abandoned without a Close while data was owed"),
            Some(Err(e)) => panic!("the sender failed: {e}"),
            None => assert!(!due, "the deadline passed unnoticed"),
        }
    }
    if fed.is_finished() {
        let refused = sender.handle_input(clock.now(), Input::Command(SenderCommand::Data(Bytes::from_static(b"x"))));
        assert_eq!(refused, Err(Error::Finished), "a finished sender took data");
        close(&mut sender, clock.now(), &mut fed);
    }

    let ready = fed.events.iter().filter(|e| **e == SenderEvent::Ready).count();
    let hello_ok = received.len() >= HELLO_LEN && received[..MAGIC.len()] == MAGIC;
    if !hello_ok {
        assert_eq!(ready, 0, "Ready without a valid hello");
        assert!(fed.wire.is_empty(), "sent before a valid hello");
        return;
    }
    let mut expected = received[..HELLO_LEN].to_vec();
    expected.extend_from_slice(&(message.len() as u32).to_le_bytes());
    expected.extend_from_slice(message.as_bytes());
    expected.extend_from_slice(&data_len.to_le_bytes());
    expected.extend_from_slice(&accepted);
    if fed.wire.is_empty() {
        // The deadline came on the very call that brought the hello.
        assert!(matches!(fed.finished, Some(Err(Error::TimedOut { .. }))));
        return;
    }
    assert_eq!(ready, 1, "Ready once");
    assert_eq!(fed.wire, expected, "the bytes sent differ from the reference encoding");
});
