//! The STAGE stream connection: timers under injected time, peer errors, sender limits, and the
//! text and raw filters.

mod stage_common;

use bytes::{Bytes, BytesMut};
use stage_common::{feed_chunks, frame, XorCipher};
use switchboard_proto::machine::{drain, drain_closing};
use switchboard_proto::stage::{Command, Error, Event, FramingConfig, PacketConnection};
use switchboard_proto::{Blame, Duration, Fault, Input, Instant, Machine};

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn nanos(n: u64) -> Instant {
    Instant::from_nanos(n)
}

fn send_body(conn: &mut PacketConnection, now: Instant, body: &'static [u8]) -> Result<(), Error> {
    conn.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(body))))
}

fn stream(conn: &mut PacketConnection, now: Instant, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
}

// ---------------------------------------------------------------- timers

#[test]
fn expire_fires_exactly_at_last_inbound_plus_expire() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 0).with_expire(Some(Duration::from_millis(100))));
    // The clock starts at the first call.
    conn.handle_input(ms(10), Input::Timeout).unwrap();
    assert_eq!(drain(&mut conn, ms(10)).deadline, Some(ms(110)));
    // One nanosecond early: still open, same deadline.
    let out = drain(&mut conn, nanos(110_000_000 - 1));
    assert_eq!((out.finished, out.deadline), (None, Some(ms(110))));
    // Exactly on time: expired.
    let out = drain(&mut conn, ms(110));
    assert_eq!(out.finished, Some(Err(Error::Expired { idle: Duration::from_millis(100) })));
    assert_eq!(out.finished.unwrap().unwrap_err().fault(), Fault::Peer);
}

#[test]
fn inbound_bytes_push_expire_back_but_an_empty_read_does_not() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 0).with_expire(Some(Duration::from_millis(100))));
    conn.handle_input(ms(0), Input::Timeout).unwrap();
    assert_eq!(drain(&mut conn, ms(0)).deadline, Some(ms(100)));
    // Half a frame at 60 ms counts as inbound data.
    let mut buf = BytesMut::from(&b"\x06\x00\x00"[..]);
    conn.handle_input(ms(60), Input::Stream(&mut buf)).unwrap();
    assert_eq!(drain(&mut conn, ms(60)).deadline, Some(ms(160)));
    // The same buffer again with nothing new (a spurious wake-up) does not.
    conn.handle_input(ms(90), Input::Stream(&mut buf)).unwrap();
    assert_eq!(drain(&mut conn, ms(90)).deadline, Some(ms(160)));
    // The rest of the frame at 150 ms.
    buf.extend_from_slice(b"\x00ab");
    conn.handle_input(ms(150), Input::Stream(&mut buf)).unwrap();
    let out = drain(&mut conn, ms(150));
    assert_eq!(out.events, [Event::Frame(Bytes::from_static(b"\x06\x00\x00\x00ab"))]);
    assert_eq!(out.deadline, Some(ms(250)));
    assert!(drain(&mut conn, nanos(250_000_000 - 1)).finished.is_none());
    assert!(matches!(drain(&mut conn, ms(250)).finished, Some(Err(Error::Expired { .. }))));
}

#[test]
fn data_arriving_at_the_expire_instant_is_too_late() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 0).with_expire(Some(Duration::from_millis(5))));
    conn.handle_input(ms(0), Input::Timeout).unwrap();
    // The driver had not drained since; the bytes are moot, not a misuse.
    stream(&mut conn, ms(5), &frame(b"late"));
    let out = drain(&mut conn, ms(5));
    assert!(out.events.is_empty());
    assert!(matches!(out.finished, Some(Err(Error::Expired { .. }))));
}

#[test]
fn commit_flushes_exactly_at_the_commit_instant_not_before() {
    let cfg = FramingConfig::packet(64, 64).with_commit(Duration::from_millis(10));
    let mut conn = PacketConnection::new(cfg);
    send_body(&mut conn, ms(5), b"ab").unwrap();
    send_body(&mut conn, ms(7), b"c").unwrap();
    // The commit timer runs from the first unflushed frame.
    let out = drain(&mut conn, ms(7));
    assert!(out.transmits.is_empty());
    assert_eq!(out.deadline, Some(ms(15)));
    let out = drain(&mut conn, nanos(15_000_000 - 1));
    assert!(out.transmits.is_empty(), "not one nanosecond early");
    let out = drain(&mut conn, ms(15));
    assert_eq!(out.wire(), b"\x06\x00\x00\x00ab\x05\x00\x00\x00c");
    assert_eq!(out.transmits.len(), 1, "coalesced into one write");
    assert_eq!(out.deadline, None, "nothing left to flush");
    // The next frame starts a new commit period.
    send_body(&mut conn, ms(40), b"d").unwrap();
    assert_eq!(drain(&mut conn, ms(40)).deadline, Some(ms(50)));
}

#[test]
fn the_earlier_of_commit_and_expire_is_reported() {
    let cfg = FramingConfig::packet(64, 64)
        .with_commit(Duration::from_millis(30))
        .with_expire(Some(Duration::from_millis(100)));
    let mut conn = PacketConnection::new(cfg);
    conn.handle_input(ms(0), Input::Timeout).unwrap();
    assert_eq!(drain(&mut conn, ms(0)).deadline, Some(ms(100)));
    send_body(&mut conn, ms(80), b"x").unwrap();
    assert_eq!(drain(&mut conn, ms(80)).deadline, Some(ms(100)));
    send_body(&mut conn, ms(85), b"y").unwrap();
    let out = drain(&mut conn, ms(85));
    assert_eq!(out.deadline, Some(ms(100)));
    // Expiry flushes what was coalesced before finishing.
    let out = drain(&mut conn, ms(100));
    assert_eq!(out.wire(), b"\x05\x00\x00\x00x\x05\x00\x00\x00y");
    assert!(matches!(out.finished, Some(Err(Error::Expired { .. }))));
}

#[test]
fn commit_zero_coalesces_one_input_and_flushes_at_the_next_poll() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 64));
    send_body(&mut conn, ms(1), b"a").unwrap();
    send_body(&mut conn, ms(1), b"b").unwrap();
    let out = drain(&mut conn, ms(1));
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.wire(), b"\x05\x00\x00\x00a\x05\x00\x00\x00b");
}

#[test]
fn overflowing_out_flushes_the_earlier_batch_first() {
    let cfg = FramingConfig::packet(64, 12).with_commit(Duration::from_millis(10));
    let mut conn = PacketConnection::new(cfg);
    send_body(&mut conn, ms(0), b"1234").unwrap(); // 8 bytes
    send_body(&mut conn, ms(1), b"56").unwrap(); // 6 more would exceed 12
    let out = drain(&mut conn, ms(1));
    assert_eq!(out.wire(), b"\x08\x00\x00\x001234");
    // The second batch started at 1 ms.
    assert_eq!(out.deadline, Some(ms(11)));
    conn.handle_input(ms(3), Input::Command(Command::Flush)).unwrap();
    assert_eq!(drain(&mut conn, ms(3)).wire(), b"\x06\x00\x00\x0056");
}

// ---------------------------------------------------------------- peer errors

/// Feed `wire` after one good frame; return what came out.
fn after_a_good_frame(config: FramingConfig, bad: &[u8], eof: bool) -> (Vec<Bytes>, Result<(), Error>) {
    let mut conn = PacketConnection::new(config);
    let mut wire = frame(b"ok");
    wire.extend_from_slice(bad);
    // Also queue some output so we can see it is flushed before the end.
    send_body(&mut conn, ms(0), b"out").unwrap();
    let fed = feed_chunks(&mut conn, &[&wire[..3], &wire[3..]], eof);
    let finished = fed.finished.expect("the machine finished");
    // Finished means finished: commands are refused, the result stays an error.
    assert_eq!(send_body(&mut conn, ms(0), b"more"), Err(Error::Finished));
    assert_eq!(conn.handle_input(ms(0), Input::Eof), Err(Error::Finished));
    assert!(conn.is_finished());
    (fed.frames, finished)
}

#[test]
fn each_bad_input_is_its_own_typed_error_after_the_good_frames() {
    let cfg = FramingConfig::packet(16, 0);
    let cases: [(&[u8], bool, Error); 4] = [
        (b"\x03\x00\x00\x00", false, Error::LengthTooShort { len: 3 }),
        (b"\x11\x00\x00\x00", false, Error::FrameTooLarge { len: 17, max: 16 }),
        (b"\x06\x00\x00\x80", false, Error::EncryptedWithoutCipher),
        (b"\x08\x00\x00\x00ab", true, Error::Truncated { buffered: 6 }),
    ];
    let mut seen = Vec::new();
    for (bad, eof, expected) in cases {
        let (frames, finished) = after_a_good_frame(cfg, bad, eof);
        assert_eq!(frames, [Bytes::from(frame(b"ok"))], "the good frame first, for {expected:?}");
        assert_eq!(finished, Err(expected.clone()));
        assert_eq!(expected.fault(), Fault::Peer);
        assert!(!seen.contains(&expected), "distinct errors");
        seen.push(expected);
    }
}

#[test]
fn output_queued_before_a_peer_error_is_flushed_before_finished() {
    let mut conn = PacketConnection::new(FramingConfig::packet(16, 64).with_commit(Duration::from_millis(50)));
    send_body(&mut conn, ms(0), b"bye").unwrap();
    stream(&mut conn, ms(1), b"\x02\x00\x00\x00");
    let out = drain_closing(&mut conn, ms(1));
    assert_eq!(out.wire(), b"\x07\x00\x00\x00bye");
    assert_eq!(out.finished, Some(Err(Error::LengthTooShort { len: 2 })));
}

#[test]
fn a_cipher_failure_ends_the_connection_with_a_cipher_error() {
    let mut conn = PacketConnection::with_cipher(FramingConfig::packet(64, 0), Box::new(XorCipher(1)));
    // A frame sealed under another key fails the checksum.
    let mut other = PacketConnection::with_cipher(FramingConfig::packet(64, 0), Box::new(XorCipher(2)));
    send_body(&mut other, ms(0), b"secret").unwrap();
    let sealed = drain(&mut other, ms(0)).wire();
    let mut wire = frame(b"plain is fine too");
    wire.extend_from_slice(&sealed);
    let fed = feed_chunks(&mut conn, &[&wire], false);
    assert_eq!(fed.frames, [Bytes::from(frame(b"plain is fine too"))]);
    assert!(matches!(fed.finished, Some(Err(Error::Cipher(_)))));
}

#[test]
fn encrypted_round_trip_between_two_connections() {
    let mut a = PacketConnection::with_cipher(FramingConfig::packet(64, 64), Box::new(XorCipher(9)));
    let mut b = PacketConnection::with_cipher(FramingConfig::packet(64, 64), Box::new(XorCipher(9)));
    assert!(a.is_encrypted());
    send_body(&mut a, ms(0), b"hello").unwrap();
    a.handle_input(ms(0), Input::Command(Command::Send(Bytes::from(frame(b"whole"))))).unwrap();
    let wire = drain(&mut a, ms(0)).wire();
    assert_eq!(wire[3] & 0x80, 0x80, "bit 31 set on the wire");
    let fed = feed_chunks(&mut b, &[&wire], true);
    assert_eq!(fed.frames, [Bytes::from(frame(b"hello")), Bytes::from(frame(b"whole"))]);
    assert_eq!(fed.finished, Some(Ok(())));
}

// ---------------------------------------------------------------- caller errors

#[test]
fn a_frame_over_out_is_refused_and_the_connection_goes_on() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 8));
    let err = send_body(&mut conn, ms(0), b"12345").unwrap_err();
    assert_eq!(err, Error::OutgoingTooLarge { len: 9, max: 8 });
    assert_eq!(err.fault(), Fault::Caller);
    assert!(!conn.is_finished());
    // Nothing half-sent, and the connection still sends and receives.
    send_body(&mut conn, ms(0), b"1234").unwrap();
    stream(&mut conn, ms(0), &frame(b"in"));
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.wire(), b"\x08\x00\x00\x001234");
    assert_eq!(out.events, [Event::Frame(Bytes::from(frame(b"in")))]);
    assert!(out.finished.is_none());
}

#[test]
fn a_sealed_frame_over_out_is_refused_too() {
    // The toy cipher adds one byte: 4 + 4 fits OUT = 8 in plain form but not sealed.
    let mut conn = PacketConnection::with_cipher(FramingConfig::packet(64, 8), Box::new(XorCipher(3)));
    assert_eq!(send_body(&mut conn, ms(0), b"1234"), Err(Error::OutgoingTooLarge { len: 9, max: 8 }));
    send_body(&mut conn, ms(0), b"123").unwrap();
    assert_eq!(drain(&mut conn, ms(0)).wire().len(), 8);
}

#[test]
fn a_malformed_whole_frame_is_refused() {
    let mut conn = PacketConnection::new(FramingConfig::packet(4096, 0));
    for bad in [&b"\x09\x00\x00\x00abc"[..], b"\x07\x00\x00\x80abc", b"ab"] {
        let err = conn.handle_input(ms(0), Input::Command(Command::Send(Bytes::copy_from_slice(bad)))).unwrap_err();
        assert!(matches!(err, Error::MalformedOutgoing { .. }), "{bad:?}");
        assert_eq!(err.fault(), Fault::Caller);
    }
    let good = Bytes::from(frame(&[b'x'; 2000]));
    conn.handle_input(ms(0), Input::Command(Command::Send(good.clone()))).unwrap();
    let out = drain(&mut conn, ms(0));
    // With OUT = 0 a whole frame over 1 KiB goes out as the caller's own buffer: no copy.
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.transmits[0].as_ptr(), good.as_ptr());
}

#[test]
fn send_body_with_out_zero_does_not_copy_a_large_body() {
    let mut conn = PacketConnection::new(FramingConfig::packet(4096, 0));
    let body = Bytes::from(vec![b'z'; 1025]);
    conn.handle_input(ms(0), Input::Command(Command::SendBody(body.clone()))).unwrap();
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.transmits.len(), 2, "header and body as a vectored write");
    assert_eq!(&out.transmits[0][..], 1029u32.to_le_bytes());
    assert_eq!(out.transmits[1].as_ptr(), body.as_ptr());
}

#[test]
fn small_frames_with_out_zero_go_out_at_once_in_one_buffer_and_in_order() {
    let mut conn = PacketConnection::new(FramingConfig::packet(4096, 0).with_commit(Duration::from_secs(1)));
    send_body(&mut conn, ms(0), b"ab").unwrap();
    conn.handle_input(ms(0), Input::Command(Command::Send(Bytes::from(frame(b"cd"))))).unwrap();
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.transmits.len(), 1, "two small frames, one buffer");
    assert_eq!(out.wire(), [frame(b"ab"), frame(b"cd")].concat());
    assert_eq!(out.deadline, None, "OUT = 0 has no commit timer, whatever the commit time");

    // A large body between small frames keeps its place.
    let large = Bytes::from(vec![b'L'; 2000]);
    send_body(&mut conn, ms(1), b"ef").unwrap();
    conn.handle_input(ms(1), Input::Command(Command::SendBody(large.clone()))).unwrap();
    send_body(&mut conn, ms(1), b"gh").unwrap();
    let out = drain(&mut conn, ms(1));
    assert_eq!(out.wire(), [frame(b"ef"), frame(&large), frame(b"gh")].concat());
    assert!(out.transmits.iter().any(|t| t.as_ptr() == large.as_ptr()), "the large body is not copied");
}

#[test]
fn a_datagram_on_a_stream_connection_is_refused() {
    let mut conn = PacketConnection::new(FramingConfig::default());
    let input = Input::Datagram { from: "127.0.0.1:1".parse().unwrap(), data: Bytes::from(frame(b"x")) };
    let err = conn.handle_input(ms(0), input).unwrap_err();
    assert_eq!(err, Error::UnexpectedInput { input: "datagram" });
    assert_eq!(err.fault(), Fault::Caller);
    assert!(!conn.is_finished());
}

#[test]
fn close_flushes_then_finishes_and_late_inputs_are_moot() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 64).with_commit(Duration::from_secs(1)));
    send_body(&mut conn, ms(0), b"last").unwrap();
    conn.handle_input(ms(0), Input::Close).unwrap();
    // Before the driver drains, bytes and EOF are ignored; a command is refused.
    stream(&mut conn, ms(0), &frame(b"ignored"));
    conn.handle_input(ms(0), Input::Eof).unwrap();
    assert_eq!(send_body(&mut conn, ms(0), b"no"), Err(Error::Finished));
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.wire(), b"\x08\x00\x00\x00last");
    assert!(out.events.is_empty());
    assert_eq!(out.finished, Some(Ok(())));
    // After Finished: everything refused, and Finished again.
    let mut buf = BytesMut::new();
    assert_eq!(conn.handle_input(ms(0), Input::Stream(&mut buf)), Err(Error::Finished));
    assert_eq!(drain(&mut conn, ms(0)).finished, Some(Err(Error::Finished)));
}

#[test]
fn eof_reports_read_closed_after_the_frames_and_the_connection_still_sends_until_close() {
    let mut conn = PacketConnection::new(FramingConfig::packet(64, 0));
    stream(&mut conn, ms(0), &frame(b"last words"));
    conn.handle_input(ms(0), Input::Eof).unwrap();
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.events, [Event::Frame(Bytes::from(frame(b"last words")))]);
    assert!(out.read_closed && out.finished.is_none(), "{out:?}");
    assert!(conn.is_read_closed() && !conn.is_finished());
    // The answer still goes out.
    send_body(&mut conn, ms(1), b"reply").unwrap();
    assert_eq!(drain(&mut conn, ms(1)).wire(), frame(b"reply"));
    // Bytes after the EOF are the driver's mistake, refused; a second EOF is no news.
    let mut late = BytesMut::from(&frame(b"x")[..]);
    let err = conn.handle_input(ms(1), Input::Stream(&mut late)).unwrap_err();
    assert_eq!(
        (err.clone(), err.fault()),
        (Error::UnexpectedInput { input: "bytes after the read side closed" }, Fault::Caller)
    );
    conn.handle_input(ms(1), Input::Eof).unwrap();
    // Close finishes it cleanly, and closing again is a no-op.
    conn.handle_input(ms(2), Input::Close).unwrap();
    conn.handle_input(ms(2), Input::Close).unwrap();
    let out = drain(&mut conn, ms(2));
    assert!(!out.read_closed, "reported once");
    assert_eq!(out.finished, Some(Ok(())));
}

#[test]
fn write_budget_covers_out() {
    assert_eq!(PacketConnection::new(FramingConfig::packet(64, 0)).write_budget(), 64 * 1024);
    assert_eq!(PacketConnection::new(FramingConfig::packet(64, 1 << 20)).write_budget(), 1 << 20);
}

// ---------------------------------------------------------------- text filter

#[test]
fn text_splits_lines_across_chunks_keeping_the_newline() {
    let mut conn = PacketConnection::new(FramingConfig::text(16, 0));
    let fed = feed_chunks(&mut conn, &[b"GET / HT", b"TP/1.0\r\n\r", b"\nab\ncd", b"\n"], true);
    let lines: Vec<&[u8]> = fed.frames.iter().map(|f| &f[..]).collect();
    assert_eq!(lines, [&b"GET / HTTP/1.0\r\n"[..], b"\r\n", b"ab\n", b"cd\n"]);
    assert_eq!(fed.finished, Some(Ok(())));
}

#[test]
fn text_line_of_exactly_in_is_accepted_one_longer_is_not() {
    let mut conn = PacketConnection::new(FramingConfig::text(4, 0));
    let fed = feed_chunks(&mut conn, &[b"abc\n", b"ab", b"c"], false);
    assert_eq!(fed.frames, [Bytes::from_static(b"abc\n")]);
    assert_eq!(fed.finished, None, "3 bytes without a newline may still end within 4");
    let fed2 = {
        let mut buf = fed.buf;
        buf.extend_from_slice(b"d");
        conn.handle_input(ms(0), Input::Stream(&mut buf)).unwrap();
        drain_closing(&mut conn, ms(0))
    };
    assert!(fed2.events.is_empty());
    assert_eq!(fed2.finished, Some(Err(Error::LineTooLong { max: 4 })));

    // A long line with its newline in the same read is refused as well.
    let mut conn = PacketConnection::new(FramingConfig::text(4, 0));
    let fed = feed_chunks(&mut conn, &[b"ok\nabcd\n"], false);
    assert_eq!(fed.frames, [Bytes::from_static(b"ok\n")]);
    assert_eq!(fed.finished, Some(Err(Error::LineTooLong { max: 4 })));
}

#[test]
fn text_eof_inside_a_line_is_truncated() {
    let mut conn = PacketConnection::new(FramingConfig::text(64, 0));
    let fed = feed_chunks(&mut conn, &[b"one\ntw", b"o"], true);
    assert_eq!(fed.frames, [Bytes::from_static(b"one\n")]);
    assert_eq!(fed.finished, Some(Err(Error::Truncated { buffered: 3 })));
}

#[test]
fn text_sends_are_written_as_given_and_coalesced() {
    let mut conn = PacketConnection::new(FramingConfig::text(64, 64));
    conn.handle_input(ms(0), Input::Command(Command::Send(Bytes::from_static(b"GET / HTTP/1.0\r\n")))).unwrap();
    conn.handle_input(ms(0), Input::Command(Command::SendBody(Bytes::from_static(b"\r\n")))).unwrap();
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.wire(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(out.transmits.len(), 1);
    // OUT still bounds a send.
    let big = Bytes::from(vec![b'x'; 65]);
    let err = conn.handle_input(ms(0), Input::Command(Command::Send(big))).unwrap_err();
    assert_eq!(err, Error::OutgoingTooLarge { len: 65, max: 64 });
}

// ---------------------------------------------------------------- raw filter

#[test]
fn raw_delivers_each_chunk_as_it_arrives() {
    let mut conn = PacketConnection::new(FramingConfig::raw());
    let fed = feed_chunks(&mut conn, &[b"\x03\x00", b"anything", b"\n"], true);
    assert_eq!(
        fed.frames,
        [Bytes::from_static(b"\x03\x00"), Bytes::from_static(b"anything"), Bytes::from_static(b"\n")]
    );
    assert_eq!(fed.finished, Some(Ok(())), "raw never has a partial frame");
}

#[test]
fn raw_sends_go_out_unchanged_without_a_header() {
    let mut conn = PacketConnection::new(FramingConfig::raw());
    let data = Bytes::from_static(b"\x01\x02\x03");
    conn.handle_input(ms(0), Input::Command(Command::SendBody(data.clone()))).unwrap();
    let out = drain(&mut conn, ms(0));
    assert_eq!(out.transmits, std::slice::from_ref(&data));
    assert_eq!(out.transmits[0].as_ptr(), data.as_ptr());
}

#[test]
fn raw_with_expire_closes_when_idle() {
    let mut conn = PacketConnection::new(FramingConfig::raw().with_expire(Some(Duration::from_millis(20))));
    stream(&mut conn, ms(0), b"x");
    assert_eq!(drain(&mut conn, ms(0)).deadline, Some(ms(20)));
    stream(&mut conn, ms(15), b"y");
    assert_eq!(drain(&mut conn, ms(15)).deadline, Some(ms(35)));
    assert!(matches!(drain(&mut conn, ms(35)).finished, Some(Err(Error::Expired { .. }))));
}
