//! STAGE stream connections end to end: a sending and a receiving `stage::PacketConnection`
//! (packet, text or raw filter; packet with no cipher, a STAGE spec or sealed) driven by a
//! sequence of sends, flushes, time steps, deliveries of the sender's bytes in fuzzer-sized
//! pieces, injected garbage, `Close` and EOF.
//!
//! Input: the filter, IN and OUT (`u16` each), `commit` (ms, 0 = at once), `expire` (ms, 0 =
//! none), the cipher choice, then operations until the input ends.
//!
//! Checks: with no cipher the sender's bytes are exactly the reference encoding of the sends it
//! accepted (a header and body per packet frame, text and raw as given), and a send is refused
//! only when it breaks OUT or is a malformed whole frame; with OUT set, no write is larger than
//! OUT; the receiver gets back exactly the frames sent (decrypted, in order), or lines / bytes
//! for text and raw, however the bytes are cut, until garbage is injected; its only possible
//! error before that is a frame or line over its IN; it never delivers a frame over IN nor keeps
//! IN bytes buffered; `expire` ends either side exactly when it is due, counted from the last
//! bytes received (the sender never receives any); a finished connection refuses commands; no
//! drained connection reports a deadline already due.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{cipher_pair, drain_into, end_input, optional_millis, reference_frame, Clock, Fed, Script};
use switchboard_proto::machine::drain;
use switchboard_proto::stage::{Command, Error, Event, Filter, FramingConfig, PacketConnection, HEADER_LEN};
use switchboard_proto::{Duration, Input, Instant, Machine};

/// The most a sealed or padded frame adds to its plain frame (sealed: nonce and tag).
const CIPHER_OVERHEAD: usize = 28;

struct Receiver {
    conn: PacketConnection,
    fed: Fed<Event, Error>,
    buffer: BytesMut,
    ended_input: bool,
    /// When bytes last arrived: the expire timer runs from here.
    last_inbound: Instant,
}

impl Receiver {
    fn take(&mut self, now: Instant, bytes: &[u8], max_in: usize) {
        if self.fed.is_finished() || self.ended_input {
            return;
        }
        self.buffer.extend_from_slice(bytes);
        if !bytes.is_empty() {
            self.last_inbound = now;
        }
        self.conn.handle_input(now, Input::Stream(&mut self.buffer)).expect("stream input while open");
        drain_into(&mut self.conn, now, &mut self.fed);
        if !self.fed.is_finished() {
            assert!(
                self.buffer.len() < max_in.max(HEADER_LEN),
                "{} bytes buffered with IN = {max_in}",
                self.buffer.len()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let filter = [Filter::Packet, Filter::Text, Filter::Raw][usize::from(script.byte() % 3)];
    let max_in = usize::from(script.u16()).max(HEADER_LEN);
    let max_out = usize::from(script.u16());
    let commit = optional_millis(script.byte()).unwrap_or_default();
    let expire = optional_millis(script.byte());
    let cipher_choice = script.byte();
    let config = match filter {
        Filter::Raw => FramingConfig { max_out, expire, ..FramingConfig::raw() },
        _ => FramingConfig { filter, max_in, max_out, expire, commit },
    };
    let ciphers = if filter == Filter::Packet { cipher_pair(cipher_choice) } else { None };
    let encrypted = ciphers.is_some();
    let (mut sender, receiver) = match ciphers {
        Some((ours, theirs)) => {
            (PacketConnection::with_cipher(config, ours), PacketConnection::with_cipher(config, theirs))
        }
        None => (PacketConnection::new(config), PacketConnection::new(config)),
    };
    let mut receiver = Receiver {
        conn: receiver,
        fed: Fed::default(),
        buffer: BytesMut::new(),
        ended_input: false,
        last_inbound: Instant::ZERO,
    };
    let mut sent = Fed::<Event, Error>::default();
    let mut clock = Clock::new();
    // Both expire clocks start at the first call.
    let start = clock.now();
    drain_into(&mut sender, start, &mut sent);
    drain_into(&mut receiver.conn, start, &mut receiver.fed);
    receiver.last_inbound = start;
    // What the sender accepted: packet frames one by one, text and raw as one byte string.
    let mut expected_frames: Vec<Vec<u8>> = Vec::new();
    let mut expected_bytes: Vec<u8> = Vec::new();
    let mut delivered = 0;
    let mut corrupted = false;

    while !script.is_empty() {
        let now = clock.now();
        match script.byte() % 8 {
            op @ (0 | 1) => {
                let payload = Bytes::copy_from_slice(script.bytes());
                let whole = op == 1 && script.byte() & 1 == 1;
                let payload = if whole { Bytes::from(reference_frame(&payload)) } else { payload };
                let command = if op == 0 { Command::SendBody(payload.clone()) } else { Command::Send(payload.clone()) };
                let result = sender.handle_input(now, Input::Command(command));
                if sent.is_finished() {
                    assert_eq!(result, Err(Error::Finished), "a finished connection took a command");
                    continue;
                }
                let frame = match filter {
                    Filter::Packet if op == 0 => Some(reference_frame(&payload)),
                    Filter::Packet => Some(payload.to_vec()),
                    _ => None,
                };
                let len = frame.as_ref().map_or(payload.len(), Vec::len);
                let over_out = max_out != 0 && len > max_out;
                let malformed =
                    frame.as_ref().is_some_and(|f| f.len() < HEADER_LEN || reference_frame(&f[HEADER_LEN..]) != *f);
                match result {
                    Ok(()) => {
                        assert!(!over_out && !malformed, "accepted a send of {len} bytes with OUT = {max_out}");
                        match frame {
                            Some(frame) => expected_frames.push(frame),
                            None => expected_bytes.extend_from_slice(&payload),
                        }
                    }
                    Err(Error::OutgoingTooLarge { .. }) => assert!(over_out || encrypted, "refused a send within OUT"),
                    Err(Error::MalformedOutgoing { .. }) => assert!(malformed, "refused a well-formed frame"),
                    Err(Error::Cipher(_)) => assert!(encrypted, "a cipher error with no cipher"),
                    Err(e) => panic!("send refused: {e}"),
                }
            }
            2 => {
                let result = sender.handle_input(now, Input::Command(Command::Flush));
                assert_eq!(result.is_err(), sent.is_finished(), "Flush: {result:?}");
            }
            3 => {
                clock.advance(u64::from(script.u16()));
            }
            4 => {
                let pending = &sent.wire[delivered..];
                let n = usize::from(script.u16()) % (pending.len() + 1);
                receiver.take(now, &pending[..n], max_in);
                delivered += n;
            }
            5 => {
                corrupted = true;
                receiver.take(now, script.bytes(), max_in);
            }
            6 => {
                let result = sender.handle_input(now, Input::Command(Command::Close));
                assert_eq!(result.is_err(), sent.is_finished(), "Close: {result:?}");
            }
            _ => {
                if !receiver.fed.is_finished() {
                    end_input(&mut receiver.conn, now, &mut receiver.ended_input);
                }
            }
        }
        let now = clock.now();
        let drained = drain(&mut sender, now);
        if max_out != 0 {
            for write in &drained.transmits {
                assert!(write.len() <= max_out, "a write of {} bytes with OUT = {max_out}", write.len());
            }
        }
        assert!(drained.events.is_empty(), "the sender reported a received frame");
        if !sent.is_finished() {
            sent.absorb(drained, now);
        }
        drain_into(&mut receiver.conn, now, &mut receiver.fed);
        check_expire(&sent, expire, start, now);
        check_expire(&receiver.fed, expire, receiver.last_inbound, now);
    }

    // Flush what is coalesced and deliver everything: the receiver must then hold every frame.
    let now = clock.now();
    if !sent.is_finished() {
        sender.handle_input(now, Input::Command(Command::Flush)).expect("Flush while open");
        drain_into(&mut sender, now, &mut sent);
    }
    let pending = sent.wire[delivered..].to_vec();
    receiver.take(now, &pending, max_in);
    let all_delivered = !receiver.ended_input;

    if !encrypted {
        let expected_wire: Vec<u8> = match filter {
            Filter::Packet => expected_frames.concat(),
            _ => expected_bytes.clone(),
        };
        assert_eq!(sent.wire, expected_wire, "the sender's bytes differ from the reference encoding");
    }
    if corrupted {
        return;
    }
    let frames: Vec<&[u8]> = receiver.fed.events.iter().map(|Event::Frame(frame)| &frame[..]).collect();
    for frame in &frames {
        assert!(filter == Filter::Raw || frame.len() <= max_in, "a frame of {} bytes with IN = {max_in}", frame.len());
    }
    match filter {
        Filter::Packet => {
            let expected: Vec<&[u8]> = expected_frames.iter().map(Vec::as_slice).collect();
            assert!(expected.starts_with(&frames), "received frames differ from those sent");
            match &receiver.fed.finished {
                Some(Err(Error::FrameTooLarge { .. })) => {
                    let next = expected[frames.len()].len();
                    let wire_len = if encrypted { next + CIPHER_OVERHEAD } else { next };
                    assert!(wire_len > max_in, "a frame of {next} bytes was refused with IN = {max_in}");
                }
                Some(Err(e)) if !matches!(e, Error::Truncated { .. } | Error::Expired { .. }) => {
                    panic!("the receiver failed: {e}")
                }
                Some(Err(_)) => {}
                _ if all_delivered => assert_eq!(frames, expected, "frames were lost"),
                _ => {}
            }
        }
        _ => {
            let received = frames.concat();
            assert!(expected_bytes.starts_with(&received), "received bytes differ from those sent");
            if filter == Filter::Text {
                assert!(frames.iter().all(|line| line.ends_with(b"\n")), "a line without its newline");
            }
            match &receiver.fed.finished {
                Some(Err(Error::LineTooLong { .. })) => assert_eq!(filter, Filter::Text),
                Some(Err(e)) if !matches!(e, Error::Truncated { .. } | Error::Expired { .. }) => {
                    panic!("the receiver failed: {e}")
                }
                Some(Err(_)) => {}
                _ if all_delivered && filter == Filter::Raw => assert_eq!(received, expected_bytes, "bytes were lost"),
                _ => {}
            }
        }
    }
});

/// `expire` ends a connection exactly when `now` reaches the last inbound bytes plus `expire`.
fn check_expire(fed: &Fed<Event, Error>, expire: Option<Duration>, last_inbound: Instant, now: Instant) {
    let due = expire.is_some_and(|idle| now >= last_inbound + idle);
    match &fed.finished {
        Some(Err(Error::Expired { .. })) => assert!(due, "expired before the deadline"),
        None => assert!(!due, "expire was due at {now:?} but the connection is open"),
        Some(_) => {}
    }
}
