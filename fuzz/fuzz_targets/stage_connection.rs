//! STAGE stream connections end to end: a sending and a receiving `stage::PacketConnection`
//! (packet, text or raw filter; packet with no cipher, a STAGE spec or sealed) driven by a
//! sequence of sends, flushes, time steps, deliveries of the sender's bytes in fuzzer-sized
//! pieces, injected garbage, `Close` on either side, EOF, and answers the receiver sends back,
//! before or after its read side closed.
//!
//! Input: the filter, IN and OUT (`u16` each), `commit` (ms, 0 = at once), `expire` (ms, 0 =
//! none), the cipher choice, then operations until the input ends. The harness plays the
//! receiver's driver: it stops reading at `ReadClosed`; the script closes either side when it
//! chooses, and both are closed at the end.
//!
//! Checks: with no cipher each side's bytes are exactly the reference encoding of the sends it
//! accepted (a header and body per packet frame, text and raw as given), all of them before
//! `Finished`, the receiver's answers after the sender's EOF or a fault in its bytes included;
//! a send is refused only when it breaks OUT or is a malformed whole frame, never because the
//! read side closed; with OUT set, no write is larger than OUT; the receiver gets back exactly
//! the frames sent (decrypted, in order), or lines / bytes for text and raw, however the bytes
//! are cut, until garbage is injected; its only possible error before that is a frame or line
//! over its IN, and it closes only the read side: no event after `ReadClosed`, and the error
//! is the result only once the receiver is closed (or expires); it never delivers a frame over
//! IN nor keeps IN bytes buffered; `expire` ends either side exactly when it is due, counted
//! from the last bytes received (the sender never receives any), and nothing else ends a side
//! that was not closed; `Close` is never refused, a second one is a no-op; a finished connection
//! refuses commands; no drained connection reports a deadline already due.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{cipher_pair, close, drain, end_input, optional_millis, reference_frame, Clock, Fed, Script};
use switchboard_proto::stage::{Command, Error, Event, Filter, FramingConfig, PacketConnection, HEADER_LEN};
use switchboard_proto::{Duration, Input, Instant, Machine};

/// The most a sealed or padded frame adds to its plain frame (sealed: nonce and tag).
const CIPHER_OVERHEAD: usize = 28;

/// What both connections share: the filter, OUT, and whether frames are encrypted.
#[derive(Clone, Copy)]
struct Setup {
    filter: Filter,
    max_out: usize,
    encrypted: bool,
}

/// One connection, what it produced, and what it accepted to send: packet frames one by one,
/// text and raw as one byte string.
struct Side {
    conn: PacketConnection,
    fed: Fed<Event, Error>,
    frames: Vec<Vec<u8>>,
    bytes: Vec<u8>,
}

impl Side {
    fn new(conn: PacketConnection) -> Self {
        Side { conn, fed: Fed::default(), frames: Vec::new(), bytes: Vec::new() }
    }

    /// Send `payload` as a body (`Command::SendBody`) or as given (`Command::Send`), checking
    /// that it is refused exactly when the rules say.
    fn send(&mut self, now: Instant, setup: Setup, as_body: bool, payload: Bytes) {
        let Setup { filter, max_out, encrypted } = setup;
        let command = if as_body { Command::SendBody(payload.clone()) } else { Command::Send(payload.clone()) };
        let result = self.conn.handle_input(now, Input::Command(command));
        if self.fed.is_finished() {
            assert_eq!(result, Err(Error::Finished), "a finished connection took a command");
            return;
        }
        let frame = match filter {
            Filter::Packet if as_body => Some(reference_frame(&payload)),
            Filter::Packet => Some(payload.to_vec()),
            _ => None,
        };
        let len = frame.as_ref().map_or(payload.len(), Vec::len);
        let over_out = max_out != 0 && len > max_out;
        let malformed = frame.as_ref().is_some_and(|f| f.len() < HEADER_LEN || reference_frame(&f[HEADER_LEN..]) != *f);
        match result {
            Ok(()) => {
                assert!(!over_out && !malformed, "accepted a send of {len} bytes with OUT = {max_out}");
                match frame {
                    Some(frame) => self.frames.push(frame),
                    None => self.bytes.extend_from_slice(&payload),
                }
            }
            Err(Error::OutgoingTooLarge { .. }) => assert!(over_out || encrypted, "refused a send within OUT"),
            Err(Error::MalformedOutgoing { .. }) => assert!(malformed, "refused a well-formed frame"),
            Err(Error::Cipher(_)) => assert!(encrypted, "a cipher error with no cipher"),
            Err(e) => panic!("send refused (read side closed: {}): {e}", self.fed.read_closed),
        }
    }

    /// `Close`, and a second one when the script asks: never refused, the second a no-op.
    fn close(&mut self, now: Instant, twice: bool) {
        close(&mut self.conn, now, &mut self.fed);
        if twice {
            close(&mut self.conn, now, &mut self.fed);
        }
    }

    /// A full drain at `now`: no write over OUT.
    fn drain(&mut self, now: Instant, max_out: usize) {
        if self.fed.is_finished() {
            return;
        }
        let drained = drain(&mut self.conn, now);
        if max_out != 0 {
            for write in &drained.transmits {
                assert!(write.len() <= max_out, "a write of {} bytes with OUT = {max_out}", write.len());
            }
        }
        self.fed.absorb(drained, now);
    }

    /// With no cipher: everything accepted went out, as the reference encodes it.
    fn check_wire(&self, setup: Setup, who: &str) {
        if setup.encrypted {
            return;
        }
        let expected: Vec<u8> = match setup.filter {
            Filter::Packet => self.frames.concat(),
            _ => self.bytes.clone(),
        };
        assert_eq!(self.fed.wire, expected, "the {who}'s bytes differ from the reference encoding of its sends");
    }
}

struct Receiver {
    side: Side,
    buffer: BytesMut,
    ended_input: bool,
    /// When bytes last arrived: the expire timer runs from here.
    last_inbound: Instant,
}

impl Receiver {
    /// Hand `bytes` over, as a driver that still reads does; whether it did.
    fn take(&mut self, now: Instant, bytes: &[u8], max_in: usize, max_out: usize) -> bool {
        if !self.side.fed.is_reading() || self.ended_input {
            return false;
        }
        self.buffer.extend_from_slice(bytes);
        if !bytes.is_empty() {
            self.last_inbound = now;
        }
        self.side.conn.handle_input(now, Input::Stream(&mut self.buffer)).expect("stream input while reading");
        self.side.drain(now, max_out);
        if self.side.fed.is_reading() {
            assert!(
                self.buffer.len() < max_in.max(HEADER_LEN),
                "{} bytes buffered with IN = {max_in}",
                self.buffer.len()
            );
        }
        true
    }
}

/// A send as the script writes it: the payload, then (for `Send`) whether to wrap it into a
/// whole frame first.
fn read_send(script: &mut Script<'_>, as_body: bool) -> Bytes {
    let payload = Bytes::copy_from_slice(script.bytes());
    if !as_body && script.byte() & 1 == 1 {
        Bytes::from(reference_frame(&payload))
    } else {
        payload
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
    let setup = Setup { filter, max_out, encrypted: ciphers.is_some() };
    let (sender, receiver) = match ciphers {
        Some((ours, theirs)) => {
            (PacketConnection::with_cipher(config, ours), PacketConnection::with_cipher(config, theirs))
        }
        None => (PacketConnection::new(config), PacketConnection::new(config)),
    };
    let mut sender = Side::new(sender);
    let mut receiver = Receiver {
        side: Side::new(receiver),
        buffer: BytesMut::new(),
        ended_input: false,
        last_inbound: Instant::ZERO,
    };
    let mut clock = Clock::new();
    // Both expire clocks start at the first call.
    let start = clock.now();
    sender.drain(start, max_out);
    receiver.side.drain(start, max_out);
    receiver.last_inbound = start;
    let mut delivered = 0;
    let mut corrupted = false;

    while !script.is_empty() {
        let now = clock.now();
        match script.byte() % 10 {
            op @ (0 | 1) => {
                let payload = read_send(&mut script, op == 0);
                sender.send(now, setup, op == 0, payload);
            }
            2 => {
                let result = sender.conn.handle_input(now, Input::Command(Command::Flush));
                assert_eq!(result.is_err(), sender.fed.is_finished(), "Flush: {result:?}");
            }
            3 => {
                clock.advance(u64::from(script.u16()));
            }
            4 => {
                let pending = &sender.fed.wire[delivered..];
                let n = usize::from(script.u16()) % (pending.len() + 1);
                receiver.take(now, &pending[..n], max_in, max_out);
                delivered += n;
            }
            5 => {
                corrupted = true;
                receiver.take(now, script.bytes(), max_in, max_out);
            }
            6 => sender.close(now, script.byte() & 1 == 1),
            7 => {
                if receiver.side.fed.is_reading() {
                    end_input(&mut receiver.side.conn, now, &mut receiver.ended_input);
                }
            }
            8 => {
                // The receiver's application answers, whether or not its read side closed.
                let as_body = script.byte() & 1 == 0;
                let payload = read_send(&mut script, as_body);
                receiver.side.send(now, setup, as_body, payload);
            }
            _ => receiver.side.close(now, script.byte() & 1 == 1),
        }
        let now = clock.now();
        sender.drain(now, max_out);
        assert!(sender.fed.events.is_empty(), "the sender reported a received frame");
        receiver.side.drain(now, max_out);
        check_expire(&sender.fed, expire, start, now);
        check_expire(&receiver.side.fed, expire, receiver.last_inbound, now);
    }

    // Close the sender (which flushes), deliver everything it wrote, then close the receiver:
    // the receiver must then hold every frame, and each side's answers must all be out.
    let now = clock.now();
    sender.close(now, false);
    sender.drain(now, max_out);
    let pending = sender.fed.wire[delivered..].to_vec();
    let all_delivered = receiver.take(now, &pending, max_in, max_out);
    receiver.side.close(now, false);
    receiver.side.drain(now, max_out);
    for side in [&mut sender, &mut receiver.side] {
        assert!(side.fed.is_finished(), "a closed connection did not finish");
        side.close(now, false);
        let refused = side.conn.handle_input(now, Input::Command(Command::Flush));
        assert_eq!(refused, Err(Error::Finished), "a finished connection took a command");
    }
    sender.check_wire(setup, "sender");
    receiver.side.check_wire(setup, "receiver");
    if corrupted {
        return;
    }
    let received = &receiver.side.fed;
    let frames: Vec<&[u8]> = received.events.iter().map(|Event::Frame(frame)| &frame[..]).collect();
    for frame in &frames {
        assert!(filter == Filter::Raw || frame.len() <= max_in, "a frame of {} bytes with IN = {max_in}", frame.len());
    }
    match filter {
        Filter::Packet => {
            let expected: Vec<&[u8]> = sender.frames.iter().map(Vec::as_slice).collect();
            assert!(expected.starts_with(&frames), "received frames differ from those sent");
            match &received.finished {
                Some(Err(Error::FrameTooLarge { .. })) => {
                    let next = expected[frames.len()].len();
                    let wire_len = if setup.encrypted { next + CIPHER_OVERHEAD } else { next };
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
            let bytes = frames.concat();
            assert!(sender.bytes.starts_with(&bytes), "received bytes differ from those sent");
            if filter == Filter::Text {
                assert!(frames.iter().all(|line| line.ends_with(b"\n")), "a line without its newline");
            }
            match &received.finished {
                Some(Err(Error::LineTooLong { .. })) => assert_eq!(filter, Filter::Text),
                Some(Err(e)) if !matches!(e, Error::Truncated { .. } | Error::Expired { .. }) => {
                    panic!("the receiver failed: {e}")
                }
                Some(Err(_)) => {}
                _ if all_delivered && filter == Filter::Raw => assert_eq!(bytes, sender.bytes, "bytes were lost"),
                _ => {}
            }
        }
    }
});

/// `expire` ends a connection exactly when `now` reaches the last inbound bytes plus `expire`,
/// and nothing else ends a connection the harness did not close (a fault in what the peer sent
/// only closes the read side; it is the result once the connection is closed or expires).
fn check_expire(fed: &Fed<Event, Error>, expire: Option<Duration>, last_inbound: Instant, now: Instant) {
    let due = expire.is_some_and(|idle| now >= last_inbound + idle);
    match &fed.finished {
        Some(Err(Error::Expired { .. })) => assert!(due, "expired before the deadline"),
        None => assert!(!due, "expire was due at {now:?} but the connection is open"),
        Some(end) if !fed.closed => assert!(due, "ended on its own before expire, unclosed: {end:?}"),
        Some(_) => {}
    }
}
