//! STAGE packet framing properties: chunking, encode/decode identity, limits at the header,
//! garbage, and the shared test vectors.

mod stage_common;

use bytes::{Bytes, BytesMut};
use quickcheck::{Gen, QuickCheck, TestResult};
use stage_common::{cut, feed_chunks, frame, vector_frames, XorCipher};
use switchboard_proto::machine::{drain, drain_closing};
use switchboard_proto::stage::{
    encode_frame, DatagramEvent, Error, Event, FrameDecoder, FramingConfig, Header, PacketConnection, PacketDatagram,
    HEADER_LEN, MAX_FRAME_LEN,
};
use switchboard_proto::{Blame, Fault, Input, Instant, Machine, Output};

/// Deterministic quickcheck: a fixed seed per property, so a failure reproduces.
fn qc(seed: u64, tests: u64) -> QuickCheck {
    QuickCheck::new().rng(Gen::from_size_and_seed(200, seed)).tests(tests).max_tests(tests * 10)
}

fn wire_of(bodies: &[Vec<u8>]) -> Vec<u8> {
    bodies.iter().flat_map(|b| frame(b)).collect()
}

#[test]
fn qc_any_chunking_decodes_to_the_same_frames() {
    fn prop(bodies: Vec<Vec<u8>>, cuts: Vec<usize>) -> bool {
        let wire = wire_of(&bodies);
        let mut conn = PacketConnection::new(FramingConfig::packet(1 << 16, 0));
        let fed = feed_chunks(&mut conn, &cut(&wire, &cuts), true);
        let expected: Vec<Vec<u8>> = bodies.iter().map(|b| frame(b)).collect();
        let got: Vec<Vec<u8>> = fed.frames.iter().map(|f| f.to_vec()).collect();
        got == expected && fed.finished == Some(Ok(())) && fed.buf.is_empty()
    }
    qc(1, 300).quickcheck(prop as fn(Vec<Vec<u8>>, Vec<usize>) -> bool);
}

/// The sender's paths (small bodies copied in place, large ones queued whole, flushes when OUT
/// would overflow) together put every frame on the wire in order; with OUT set no write carries
/// more than OUT, and the commit deadline is the oldest unwritten frame's time + commit.
#[test]
fn qc_sent_bodies_reach_the_wire_in_order_within_out() {
    fn prop(bodies: Vec<Vec<u8>>, drains: Vec<bool>, out_pick: u8) -> bool {
        use switchboard_proto::stage::Command;
        use switchboard_proto::Duration;
        let max_out = [0, 64, 300, 4096, 1 << 17][out_pick as usize % 5];
        let mut config = FramingConfig::packet(1 << 16, max_out);
        if max_out != 0 {
            config = config.with_commit(Duration::from_millis(5));
        }
        let mut conn = PacketConnection::new(config);
        // Each accepted frame's wire bytes and the time it was sent.
        let mut sent: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut wire = Vec::new();
        let within_out = |out: &[Bytes]| max_out == 0 || out.iter().all(|t| t.len() <= max_out);
        for (i, body) in bodies.iter().enumerate() {
            let ms = i as u64 / 4;
            let now = Instant::from_millis(ms);
            let result = conn.handle_input(now, Input::Command(Command::SendBody(Bytes::from(body.clone()))));
            if max_out != 0 && body.len() + HEADER_LEN > max_out {
                // Over OUT: refused, and the connection goes on.
                if !matches!(result, Err(Error::OutgoingTooLarge { .. })) {
                    return false;
                }
                continue;
            }
            if result.is_err() {
                return false;
            }
            sent.push((frame(body), ms));
            if !drains.get(i).copied().unwrap_or(false) {
                continue;
            }
            let out = drain(&mut conn, now);
            if !within_out(&out.transmits) {
                return false;
            }
            wire.extend(out.wire());
            // Writes end on frame boundaries; the first frame not yet written sets the deadline.
            let mut written = 0;
            let oldest_held = sent.iter().find(|(f, _)| {
                written += f.len();
                written > wire.len()
            });
            let expected = oldest_held.map(|&(_, t)| Instant::from_millis(t + 5));
            if max_out == 0 && oldest_held.is_some() || out.deadline != expected {
                return false;
            }
        }
        let end = Instant::from_millis(60_000);
        conn.handle_input(end, Input::Command(Command::Flush)).unwrap();
        let out = drain(&mut conn, end);
        wire.extend(out.wire());
        within_out(&out.transmits) && wire == sent.iter().flat_map(|(f, _)| f.clone()).collect::<Vec<u8>>()
    }
    qc(7, 300).quickcheck(prop as fn(Vec<Vec<u8>>, Vec<bool>, u8) -> bool);
}

#[test]
fn qc_any_chunking_of_encrypted_frames_decodes_to_the_plain_frames() {
    fn prop(bodies: Vec<Vec<u8>>, cuts: Vec<usize>, key: u8) -> bool {
        let mut sender = PacketConnection::with_cipher(FramingConfig::packet(1 << 16, 0), Box::new(XorCipher(key)));
        for body in &bodies {
            sender
                .handle_input(
                    Instant::ZERO,
                    Input::Command(switchboard_proto::stage::Command::SendBody(Bytes::from(body.clone()))),
                )
                .unwrap();
        }
        let wire = drain(&mut sender, Instant::ZERO).wire();
        let mut receiver = PacketConnection::with_cipher(FramingConfig::packet(1 << 16, 0), Box::new(XorCipher(key)));
        let fed = feed_chunks(&mut receiver, &cut(&wire, &cuts), true);
        let expected: Vec<Vec<u8>> = bodies.iter().map(|b| frame(b)).collect();
        let got: Vec<Vec<u8>> = fed.frames.iter().map(|f| f.to_vec()).collect();
        got == expected && fed.finished == Some(Ok(()))
    }
    qc(2, 200).quickcheck(prop as fn(Vec<Vec<u8>>, Vec<usize>, u8) -> bool);
}

#[test]
fn qc_decoder_alone_splits_any_chunking() {
    fn prop(bodies: Vec<Vec<u8>>, cuts: Vec<usize>) -> bool {
        let wire = wire_of(&bodies);
        let decoder = FrameDecoder::new(1 << 16);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in cut(&wire, &cuts) {
            buf.extend_from_slice(chunk);
            while let Some((header, f)) = decoder.decode(&mut buf).unwrap() {
                assert!(!header.encrypted);
                assert_eq!(header.len, f.len());
                got.push(f.to_vec());
            }
        }
        got == bodies.iter().map(|b| frame(b)).collect::<Vec<_>>() && buf.is_empty()
    }
    qc(3, 300).quickcheck(prop as fn(Vec<Vec<u8>>, Vec<usize>) -> bool);
}

#[test]
fn qc_encode_then_decode_is_identity() {
    fn prop(body: Vec<u8>, trailing: Vec<u8>) -> bool {
        let mut buf = BytesMut::new();
        encode_frame(&body, &mut buf).unwrap();
        let encoded_len = buf.len();
        buf.extend_from_slice(&trailing);
        let (header, f) = FrameDecoder::new(MAX_FRAME_LEN).decode(&mut buf).unwrap().unwrap();
        header == Header { len: body.len() + HEADER_LEN, encrypted: false }
            && encoded_len == body.len() + HEADER_LEN
            && f[HEADER_LEN..] == body[..]
            && buf[..] == trailing[..]
    }
    qc(4, 300).quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> bool);
}

#[test]
fn qc_header_bytes_round_trip() {
    fn prop(raw: u32) -> bool {
        let header = Header::from_bytes(raw.to_le_bytes());
        header.len == (raw & 0x7FFF_FFFF) as usize
            && header.encrypted == (raw >> 31 == 1)
            && header.to_bytes() == raw.to_le_bytes()
    }
    qc(5, 500).quickcheck(prop as fn(u32) -> bool);
}

#[test]
fn qc_length_over_in_is_refused_at_the_header_with_nothing_buffered() {
    fn prop(prefix: Vec<Vec<u8>>, max_in: u16, excess: u32) -> TestResult {
        let max_in = max_in as usize + HEADER_LEN;
        let prefix: Vec<Vec<u8>> = prefix.into_iter().filter(|b| b.len() + HEADER_LEN <= max_in).collect();
        let announced = (max_in + 1 + excess as usize).min(MAX_FRAME_LEN);
        if announced <= max_in {
            return TestResult::discard();
        }
        let mut conn = PacketConnection::new(FramingConfig::packet(max_in, 0));
        let now = Instant::ZERO;
        let prefix_wire = wire_of(&prefix);
        let header = (announced as u32).to_le_bytes();
        // Room for exactly what will be fed: anything more would be room made for the body.
        let mut buf = BytesMut::with_capacity(prefix_wire.len() + HEADER_LEN);
        buf.extend_from_slice(&prefix_wire);
        conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
        let out = drain(&mut conn, now);
        if out.events.len() != prefix.len() || out.finished.is_some() {
            return TestResult::failed();
        }
        for (i, byte) in header.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let cap_before = buf.capacity();
            conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
            let out = drain_closing(&mut conn, now);
            if !out.events.is_empty() || buf.capacity() > cap_before {
                return TestResult::failed();
            }
            let expected = (i == HEADER_LEN - 1).then_some(Err(Error::FrameTooLarge { len: announced, max: max_in }));
            if out.finished != expected {
                return TestResult::failed();
            }
        }
        TestResult::from_bool(buf.len() == HEADER_LEN)
    }
    qc(6, 300).quickcheck(prop as fn(Vec<Vec<u8>>, u16, u32) -> TestResult);
}

/// Every outcome of garbage must be typed: more input needed, a clean end, or a peer error.
fn check_garbage_outcome(finished: &Option<Result<(), Error>>) -> bool {
    match finished {
        None | Some(Ok(())) => true,
        Some(Err(e)) => e.fault() == Fault::Peer,
    }
}

#[test]
fn qc_garbage_never_panics_and_ends_typed() {
    fn prop(garbage: Vec<u8>, cuts: Vec<usize>, max_in: u16, filter: u8, cipher: bool, eof: bool) -> bool {
        let max_in = max_in as usize + 1;
        let config = match filter % 3 {
            0 => FramingConfig::packet(max_in.max(HEADER_LEN), 0),
            1 => FramingConfig::text(max_in, 0),
            _ => FramingConfig::raw(),
        };
        let mut conn = if cipher {
            PacketConnection::with_cipher(config, Box::new(XorCipher(0x5a)))
        } else {
            PacketConnection::new(config)
        };
        let fed = feed_chunks(&mut conn, &cut(&garbage, &cuts), eof);
        let delivered: usize = fed.frames.iter().map(|f| f.len()).sum();
        // Whatever was delivered came from the garbage (decryption only shrinks frames).
        check_garbage_outcome(&fed.finished) && delivered <= garbage.len() && (!eof || fed.finished.is_some())
    }
    qc(7, 500).quickcheck(prop as fn(Vec<u8>, Vec<usize>, u16, u8, bool, bool) -> bool);
}

#[test]
fn qc_garbage_headers_hit_every_framing_error() {
    // One header (biased towards small lengths) and at most its body: every error path is hit.
    fn prop(len: u32, flag: bool, body: Vec<u8>) -> bool {
        let len = (len % 64) as usize;
        let raw = len as u32 | if flag { 0x8000_0000 } else { 0 };
        let mut wire = raw.to_le_bytes().to_vec();
        wire.extend_from_slice(&body[..body.len().min(len.saturating_sub(HEADER_LEN))]);
        let mut conn = PacketConnection::new(FramingConfig::packet(32, 0));
        let fed = feed_chunks(&mut conn, &[&wire], true);
        let expected = if len < HEADER_LEN {
            Err(Error::LengthTooShort { len })
        } else if len > 32 {
            Err(Error::FrameTooLarge { len, max: 32 })
        } else if flag {
            Err(Error::EncryptedWithoutCipher)
        } else if wire.len() < len {
            Err(Error::Truncated { buffered: wire.len() })
        } else {
            Ok(())
        };
        let frames_ok =
            if expected.is_ok() { fed.frames == [Bytes::from(wire.clone())] } else { fed.frames.is_empty() };
        fed.finished == Some(expected) && frames_ok
    }
    qc(8, 500).quickcheck(prop as fn(u32, bool, Vec<u8>) -> bool);
}

#[test]
fn qc_garbage_datagrams_are_dropped_never_fatal() {
    fn prop(datagrams: Vec<Vec<u8>>, cipher: bool) -> bool {
        let from = "127.0.0.1:9".parse().unwrap();
        let config = FramingConfig::packet(64, 0);
        let mut ep = if cipher {
            PacketDatagram::with_cipher(config, None, Box::new(XorCipher(7)))
        } else {
            PacketDatagram::new(config, None)
        };
        for data in &datagrams {
            ep.handle_input(Instant::ZERO, Input::Datagram { from, data: Bytes::from(data.clone()) }).unwrap();
        }
        let out = drain(&mut ep, Instant::ZERO);
        out.finished.is_none()
            && out.events.len() == datagrams.len()
            && out.events.iter().all(|e| match e {
                DatagramEvent::Frame { frame, .. } => frame.len() >= HEADER_LEN,
                DatagramEvent::Dropped { error, .. } => error.fault() == Fault::Peer,
            })
    }
    qc(9, 300).quickcheck(prop as fn(Vec<Vec<u8>>, bool) -> bool);
}

fn hex_field(v: &serde_json::Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap_or_else(|| panic!("{field} is a string"))).expect("valid hex")
}

#[test]
fn vector_plain_frames_decode_as_one_frame_byte_for_byte() {
    for (i, v) in vector_frames().iter().enumerate() {
        let plain = hex_field(v, "plain_frame_hex");
        // A BSON document is already a valid plain frame.
        assert_eq!(plain, hex_field(v, "bson_hex"), "vector {i}: the plain frame is the BSON document");

        let mut conn = PacketConnection::new(FramingConfig::packet(1 << 20, 0));
        let mut buf = BytesMut::from(&plain[..]);
        conn.handle_input(Instant::ZERO, Input::Stream(&mut buf)).unwrap();
        let out = drain(&mut conn, Instant::ZERO);
        assert_eq!(out.events, [Event::Frame(Bytes::from(plain.clone()))], "vector {i}");
        assert!(out.finished.is_none() && buf.is_empty(), "vector {i}");

        // The same, one byte at a time.
        let mut conn = PacketConnection::new(FramingConfig::packet(1 << 20, 0));
        let one_by_one: Vec<&[u8]> = plain.chunks(1).collect();
        let fed = feed_chunks(&mut conn, &one_by_one, true);
        assert_eq!(fed.frames, [Bytes::from(plain.clone())], "vector {i}, bytewise");
        assert_eq!(fed.finished, Some(Ok(())));

        // And as a datagram.
        let mut ep = PacketDatagram::new(FramingConfig::packet(1 << 16, 0), None);
        let from = "[::1]:8082".parse().unwrap();
        ep.handle_input(Instant::ZERO, Input::Datagram { from, data: Bytes::from(plain.clone()) }).unwrap();
        assert_eq!(
            drain(&mut ep, Instant::ZERO).events,
            [DatagramEvent::Frame { from, frame: Bytes::from(plain.clone()) }],
            "vector {i}, datagram"
        );

        // Its encrypted form is a well-formed frame with bit 31 set, refused without a cipher.
        let sealed = hex_field(v, "encrypted_frame_hex");
        let header = Header::from_bytes(sealed[..4].try_into().unwrap());
        assert!(header.encrypted && header.len == sealed.len(), "vector {i}: encrypted header");
        let mut conn = PacketConnection::new(FramingConfig::packet(1 << 20, 0));
        let fed = feed_chunks(&mut conn, &[&sealed], false);
        assert!(fed.frames.is_empty());
        assert_eq!(fed.finished, Some(Err(Error::EncryptedWithoutCipher)), "vector {i}");
    }
}

#[test]
fn many_frames_in_one_read_come_out_in_order_then_finish() {
    let bodies: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize]).collect();
    let wire = wire_of(&bodies);
    let mut conn = PacketConnection::new(FramingConfig::packet(1024, 0));
    let mut buf = BytesMut::from(&wire[..]);
    conn.handle_input(Instant::ZERO, Input::Stream(&mut buf)).unwrap();
    let mut n = 0;
    loop {
        match conn.poll_output(Instant::ZERO) {
            Output::Event(Event::Frame(f)) => {
                assert_eq!(f[HEADER_LEN..], bodies[n][..]);
                n += 1;
            }
            Output::Timeout(None) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(n, bodies.len());
}
