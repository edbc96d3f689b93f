//! The STAGE datagram endpoint: one frame per datagram, bad datagrams dropped, sends, expiry.

mod stage_common;

use bytes::Bytes;
use stage_common::{frame, XorCipher};
use switchboard_proto::machine::drain;
use switchboard_proto::stage::datagram::{MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6};
use switchboard_proto::stage::{
    Address, ConnectionSpec, DatagramCommand, DatagramEvent, Error, FramingConfig, PacketDatagram,
};
use switchboard_proto::{Blame, Duration, Fault, Input, Instant, Machine};

use std::net::SocketAddr;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn datagram(ep: &mut PacketDatagram, now: Instant, from: SocketAddr, data: &[u8]) {
    ep.handle_input(now, Input::Datagram { from, data: Bytes::copy_from_slice(data) }).unwrap();
}

fn command(ep: &mut PacketDatagram, c: DatagramCommand) -> Result<(), Error> {
    ep.handle_input(ms(0), Input::Command(c))
}

#[test]
fn a_valid_datagram_is_one_frame_without_a_copy() {
    let mut ep = PacketDatagram::new(FramingConfig::packet(64, 0), None);
    let from = addr("192.0.2.1:5000");
    let data = Bytes::from(frame(b"hello"));
    ep.handle_input(ms(0), Input::Datagram { from, data: data.clone() }).unwrap();
    let out = drain(&mut ep, ms(0));
    match &out.events[..] {
        [DatagramEvent::Frame { from: f, frame }] => {
            assert_eq!(*f, from);
            assert_eq!(frame, &data);
            assert_eq!(frame.as_ptr(), data.as_ptr());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.deadline, None);
}

#[test]
fn each_bad_datagram_is_dropped_with_its_own_error_and_the_endpoint_goes_on() {
    let mut ep = PacketDatagram::new(FramingConfig::packet(16, 0), None);
    let from = addr("[2001:db8::1]:7");
    let cases: [(&[u8], Error); 6] = [
        (b"\x06\x00", Error::DatagramTooShort { len: 2 }),
        (b"\x03\x00\x00\x00", Error::LengthTooShort { len: 3 }),
        (b"\x11\x00\x00\x00", Error::FrameTooLarge { len: 17, max: 16 }),
        (b"\x07\x00\x00\x00ab", Error::DatagramLengthMismatch { announced: 7, actual: 6 }),
        (b"\x05\x00\x00\x00ab", Error::DatagramLengthMismatch { announced: 5, actual: 6 }),
        (b"\x06\x00\x00\x80ab", Error::EncryptedWithoutCipher),
    ];
    for (bad, expected) in &cases {
        datagram(&mut ep, ms(0), from, bad);
        let out = drain(&mut ep, ms(0));
        assert_eq!(out.events, [DatagramEvent::Dropped { from, error: expected.clone() }], "{bad:?}");
        assert_eq!(expected.fault(), Fault::Peer);
        assert!(out.finished.is_none() && !ep.is_finished());
    }
    datagram(&mut ep, ms(0), from, &frame(b"still here"));
    assert!(matches!(&drain(&mut ep, ms(0)).events[..], [DatagramEvent::Frame { .. }]));
}

#[test]
fn encrypted_datagrams_are_opened_and_cipher_failures_dropped() {
    let key = XorCipher(0x33);
    let mut sender = PacketDatagram::with_cipher(FramingConfig::packet(64, 0), None, Box::new(key));
    let to = addr("127.0.0.1:9000");
    command(&mut sender, DatagramCommand::SendBodyTo(to, Bytes::from_static(b"secret"))).unwrap();
    let out = drain(&mut sender, ms(0));
    let [(dest, sealed)] = &out.datagrams[..] else { panic!("{:?}", out.datagrams) };
    assert_eq!(*dest, to);
    assert_eq!(sealed[3] & 0x80, 0x80);

    let mut receiver = PacketDatagram::with_cipher(FramingConfig::packet(64, 0), None, Box::new(XorCipher(0x33)));
    let from = addr("127.0.0.1:1234");
    datagram(&mut receiver, ms(0), from, sealed);
    let mut tampered = sealed.to_vec();
    tampered[5] ^= 1;
    datagram(&mut receiver, ms(0), from, &tampered);
    let out = drain(&mut receiver, ms(0));
    assert_eq!(out.events[0], DatagramEvent::Frame { from, frame: Bytes::from(frame(b"secret")) });
    assert!(matches!(&out.events[1], DatagramEvent::Dropped { error: Error::Cipher(_), .. }));
    assert!(out.finished.is_none());
}

#[test]
fn sends_go_to_the_given_or_default_destination() {
    let group = addr("224.0.0.1:8082");
    let peer = addr("10.0.0.2:8082");
    let mut ep = PacketDatagram::new(FramingConfig::packet(64, 0), Some(group));
    assert_eq!(ep.default_destination(), Some(group));
    let whole = Bytes::from(frame(b"w"));
    command(&mut ep, DatagramCommand::SendTo(peer, whole.clone())).unwrap();
    command(&mut ep, DatagramCommand::SendBodyTo(peer, Bytes::from_static(b"b"))).unwrap();
    command(&mut ep, DatagramCommand::Send(whole.clone())).unwrap();
    command(&mut ep, DatagramCommand::SendBody(Bytes::from_static(b"bb"))).unwrap();
    let out = drain(&mut ep, ms(0));
    let expected = [
        (peer, whole.clone()),
        (peer, Bytes::from(frame(b"b"))),
        (group, whole.clone()),
        (group, Bytes::from(frame(b"bb"))),
    ];
    assert_eq!(out.datagrams, expected);
    // A whole frame goes out as the caller's buffer.
    assert_eq!(out.datagrams[0].1.as_ptr(), whole.as_ptr());
    assert!(out.transmits.is_empty());
}

#[test]
fn send_refusals_are_the_callers_fault_and_change_nothing() {
    let mut ep = PacketDatagram::new(FramingConfig::packet(64, 8), None);
    let to = addr("127.0.0.1:1");
    let cases = [
        (DatagramCommand::Send(Bytes::from(frame(b"x"))), Error::NoDestination),
        (DatagramCommand::SendBody(Bytes::from_static(b"x")), Error::NoDestination),
        (DatagramCommand::SendBodyTo(to, Bytes::from_static(b"12345")), Error::OutgoingTooLarge { len: 9, max: 8 }),
        (
            DatagramCommand::SendTo(to, Bytes::from_static(b"\x05\x00\x00\x00ab")),
            Error::MalformedOutgoing { announced: 5, actual: 6 },
        ),
        (DatagramCommand::SendTo(to, Bytes::from_static(b"ab")), Error::MalformedOutgoing { announced: 0, actual: 2 }),
    ];
    for (c, expected) in cases {
        assert_eq!(command(&mut ep, c), Err(expected.clone()));
        assert_eq!(expected.fault(), Fault::Caller);
    }
    let out = drain(&mut ep, ms(0));
    assert!(out.datagrams.is_empty() && out.finished.is_none());
}

#[test]
fn sends_are_capped_at_the_udp_payload_size() {
    let mut ep = PacketDatagram::new(FramingConfig::packet(64, 0), None);
    let v4 = addr("127.0.0.1:1");
    let v6 = addr("[::1]:1");
    let body = |n: usize| Bytes::from(vec![0u8; n - 4]);
    assert_eq!(
        command(&mut ep, DatagramCommand::SendBodyTo(v4, body(MAX_UDP_PAYLOAD_V4 + 1))),
        Err(Error::OutgoingTooLarge { len: MAX_UDP_PAYLOAD_V4 + 1, max: MAX_UDP_PAYLOAD_V4 })
    );
    command(&mut ep, DatagramCommand::SendBodyTo(v4, body(MAX_UDP_PAYLOAD_V4))).unwrap();
    command(&mut ep, DatagramCommand::SendBodyTo(v6, body(MAX_UDP_PAYLOAD_V6))).unwrap();
    let sizes: Vec<usize> = drain(&mut ep, ms(0)).datagrams.iter().map(|(_, d)| d.len()).collect();
    assert_eq!(sizes, [MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6]);
}

#[test]
fn expire_counts_only_accepted_frames_and_fires_exactly_on_time() {
    let cfg = FramingConfig::packet(64, 0).with_expire(Some(Duration::from_millis(50)));
    let mut ep = PacketDatagram::new(cfg, None);
    let from = addr("127.0.0.1:2");
    ep.handle_input(ms(0), Input::Timeout).unwrap();
    assert_eq!(drain(&mut ep, ms(0)).deadline, Some(ms(50)));
    datagram(&mut ep, ms(20), from, &frame(b"alive"));
    assert_eq!(drain(&mut ep, ms(20)).deadline, Some(ms(70)));
    // Garbage does not keep the endpoint alive.
    datagram(&mut ep, ms(60), from, b"junk");
    let out = drain(&mut ep, ms(60));
    assert!(matches!(&out.events[..], [DatagramEvent::Dropped { .. }]));
    assert_eq!(out.deadline, Some(ms(70)));
    assert!(drain(&mut ep, Instant::from_nanos(70_000_000 - 1)).finished.is_none());
    assert_eq!(drain(&mut ep, ms(70)).finished, Some(Err(Error::Expired { idle: Duration::from_millis(50) })));
}

#[test]
fn close_and_eof_finish_cleanly_and_late_inputs_are_moot() {
    let to = addr("127.0.0.1:3");
    for end in [Input::Close, Input::Eof] {
        let mut ep = PacketDatagram::new(FramingConfig::packet(64, 0), Some(to));
        command(&mut ep, DatagramCommand::SendBody(Bytes::from_static(b"bye"))).unwrap();
        ep.handle_input(ms(0), end).unwrap();
        datagram(&mut ep, ms(0), to, &frame(b"late"));
        assert_eq!(command(&mut ep, DatagramCommand::SendBody(Bytes::from_static(b"no"))), Err(Error::Finished));
        let out = drain(&mut ep, ms(0));
        assert_eq!(out.datagrams, [(to, Bytes::from(frame(b"bye")))]);
        assert!(out.events.is_empty());
        assert_eq!(out.finished, Some(Ok(())));
        assert_eq!(ep.handle_input(ms(0), Input::Timeout), Err(Error::Finished));
    }
}

#[test]
fn a_stream_buffer_is_refused() {
    let mut ep = PacketDatagram::new(FramingConfig::default(), None);
    let mut buf = bytes::BytesMut::from(&frame(b"x")[..]);
    let err = ep.handle_input(ms(0), Input::Stream(&mut buf)).unwrap_err();
    assert_eq!(err, Error::UnexpectedInput { input: "stream" });
    assert_eq!(err.fault(), Fault::Caller);
    assert!(!ep.is_finished());
}

#[test]
fn built_from_a_multicast_spec() {
    let spec = ConnectionSpec::parse("udp://224.0.0.1:8082").unwrap();
    assert!(spec.is_multicast());
    let Address::Inet(group) = spec.address else { panic!("an inet address") };
    let mut ep = PacketDatagram::new(spec.framing_config(), Some(group));
    assert_eq!(ep.config().max_in, 8192);
    command(&mut ep, DatagramCommand::SendBody(Bytes::from_static(b"{}"))).unwrap();
    assert_eq!(drain(&mut ep, ms(0)).datagrams, [(group, Bytes::from(frame(b"{}")))]);
}
