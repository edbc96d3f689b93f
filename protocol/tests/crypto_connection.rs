//! Two `PacketConnection`s with ciphers exchange BSON frames in memory, for every STAGE spec
//! and for the sealed profile: what one transmits is fed to the other, and the documents come
//! out intact in both directions.

use bson::{doc, Document};
use bytes::{Bytes, BytesMut};
use switchboard_proto::crypto::{self, CipherSpec, FrameCipher, Mode, Padding, Profile, SealedCipher, StageCipher};
use switchboard_proto::machine::{drain, drain_closing};
use switchboard_proto::stage::{Command, Error, Event, FramingConfig, PacketConnection};
use switchboard_proto::{Input, Instant, Machine, SplitMix64};

fn documents() -> Vec<Document> {
    vec![
        doc! { "t": "hello", "name": "alice", "game": "stage" },
        doc! {},
        doc! { "t": "op", "data": { "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![7u8; 700] } } },
        doc! { "message": "안녕하세요", "n": 12_i64, "list": [1, 2, 3] },
    ]
}

/// Send every document from `from` to `to` (split in two reads) and return what `to` delivered.
fn pass(from: &mut PacketConnection, to: &mut PacketConnection, now: Instant) -> Vec<Document> {
    for d in documents() {
        from.handle_input(now, Input::Command(Command::Send(Bytes::from(d.to_vec().unwrap())))).unwrap();
    }
    from.handle_input(now, Input::Command(Command::Flush)).unwrap();
    let out = drain(from, now);
    assert!(out.finished.is_none(), "sender finished: {:?}", out.finished);
    let wire = out.wire();
    // Everything on the wire is an encrypted frame: bit 31 set on the first header.
    assert_eq!(wire[3] & 0x80, 0x80);
    let (a, b) = wire.split_at(wire.len() / 3);
    let mut buf = BytesMut::from(a);
    to.handle_input(now, Input::Stream(&mut buf)).unwrap();
    let mut events = drain(to, now).events;
    buf.extend_from_slice(b);
    to.handle_input(now, Input::Stream(&mut buf)).unwrap();
    let out = drain(to, now);
    assert!(out.finished.is_none(), "receiver finished: {:?}", out.finished);
    events.extend(out.events);
    events
        .into_iter()
        .map(|Event::Frame(frame)| Document::from_reader(&frame[..]).expect("a whole BSON document"))
        .collect()
}

fn exchange(make: impl Fn(u64) -> Box<dyn FrameCipher + Send>, label: &str) {
    let now = Instant::from_millis(5);
    let config = FramingConfig::packet(8192, 4096);
    let mut a = PacketConnection::with_cipher(config, make(1));
    let mut b = PacketConnection::with_cipher(config, make(2));
    assert_eq!(pass(&mut a, &mut b, now), documents(), "{label}: a → b");
    assert_eq!(pass(&mut b, &mut a, now), documents(), "{label}: b → a");
    // And a second round on the same connections: no state leaks between frames.
    assert_eq!(pass(&mut a, &mut b, now), documents(), "{label}: a → b again");
}

#[test]
fn every_stage_spec_exchanges_bson() {
    for spec in CipherSpec::all() {
        if spec.padding == Padding::None && spec.mode == Mode::Cbc {
            continue; // BSON documents are not block-aligned; covered below with aligned bodies
        }
        exchange(|_| Box::new(StageCipher::new(spec, "shared secret")), &spec.to_string());
    }
}

#[test]
fn nopadding_cbc_exchanges_aligned_frames_and_refuses_unaligned_ones() {
    for spec in CipherSpec::all().filter(|s| s.mode == Mode::Cbc && s.padding == Padding::None) {
        let now = Instant::ZERO;
        let config = FramingConfig::packet(8192, 0);
        let mut a = PacketConnection::with_cipher(config, Box::new(StageCipher::new(spec, "k")));
        let mut b = PacketConnection::with_cipher(config, Box::new(StageCipher::new(spec, "k")));
        let body = Bytes::from(vec![0x5a; 4 * spec.algorithm.block_size()]);
        a.handle_input(now, Input::Command(Command::SendBody(body.clone()))).unwrap();
        let mut wire = BytesMut::from(&drain(&mut a, now).wire()[..]);
        b.handle_input(now, Input::Stream(&mut wire)).unwrap();
        match &drain(&mut b, now).events[..] {
            [Event::Frame(f)] => assert_eq!(f[4..], body[..], "{spec}"),
            other => panic!("{spec}: {other:?}"),
        }
        // An unaligned body is the caller's mistake: refused, connection still open.
        let err = a.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(b"odd")))).unwrap_err();
        assert!(
            matches!(err, Error::Cipher(crypto::CipherError::UnalignedPlaintext { len: 3, .. })),
            "{spec}: {err:?}"
        );
        assert!(!a.is_finished());
    }
}

#[test]
fn sealed_profile_exchanges_bson() {
    exchange(|seed| Box::new(SealedCipher::new("shared secret", Box::new(SplitMix64::new(seed)))), "AES-256-GCM");
    // The same through the option constructor.
    exchange(
        |seed| crypto::from_option("aes-256-gcm=shared secret", Box::new(SplitMix64::new(seed))).unwrap(),
        "option",
    );
    exchange(
        |seed| crypto::from_parts(Profile::Sealed, "shared secret", Box::new(SplitMix64::new(seed))).unwrap(),
        "parts",
    );
}

#[test]
fn a_sealed_replay_on_the_wire_ends_the_receiver() {
    let now = Instant::ZERO;
    let config = FramingConfig::packet(8192, 0);
    let mk = |seed| Box::new(SealedCipher::new("k", Box::new(SplitMix64::new(seed))));
    let mut a = PacketConnection::with_cipher(config, mk(1));
    let mut b = PacketConnection::with_cipher(config, mk(2));
    a.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(b"pay 10")))).unwrap();
    let frame = drain(&mut a, now).wire();
    let mut twice = BytesMut::from(&frame[..]);
    twice.extend_from_slice(&frame);
    b.handle_input(now, Input::Stream(&mut twice)).unwrap();
    let out = drain_closing(&mut b, now);
    assert_eq!(out.events, [Event::Frame(Bytes::from_static(b"\x0a\x00\x00\x00pay 10"))]);
    assert_eq!(out.finished, Some(Err(Error::Cipher(crypto::CipherError::Replay { counter: 0 }))));
}

#[test]
fn a_wrong_sealed_key_ends_the_receiver_without_delivering() {
    let now = Instant::ZERO;
    let config = FramingConfig::packet(8192, 0);
    let mut a = PacketConnection::with_cipher(
        config,
        crypto::from_option("AES-256-GCM=one", Box::new(SplitMix64::new(1))).unwrap(),
    );
    let mut b = PacketConnection::with_cipher(
        config,
        crypto::from_option("AES-256-GCM=two", Box::new(SplitMix64::new(2))).unwrap(),
    );
    a.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(b"secret")))).unwrap();
    let mut wire = BytesMut::from(&drain(&mut a, now).wire()[..]);
    b.handle_input(now, Input::Stream(&mut wire)).unwrap();
    let out = drain_closing(&mut b, now);
    assert!(out.events.is_empty());
    assert_eq!(out.finished, Some(Err(Error::Cipher(crypto::CipherError::Authentication))));
}
