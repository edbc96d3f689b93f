//! Every entry of `shared/vectors/stage-crypto.json` (computed with `openssl enc`), through
//! `StageCipher` directly and through a `PacketConnection` with that cipher.

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use switchboard_proto::crypto::{self, CipherSpec, FrameCipher, StageCipher};
use switchboard_proto::machine::drain;
use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
use switchboard_proto::{Input, Instant, Machine, SplitMix64};

fn vectors() -> Value {
    let path = switchboard_conformance::stage_crypto_vectors().expect("shared/ beside the checkout");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or_else(|| panic!("{name} missing in {entry}"))
}

fn unhex(entry: &Value, name: &str) -> Vec<u8> {
    hex::decode(field(entry, name)).unwrap()
}

fn plain_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = ((body.len() + 4) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn all_48_cipher_vectors_encrypt_and_decrypt_exactly() {
    let v = vectors();
    let ciphers = v["ciphers"].as_array().unwrap();
    assert_eq!(ciphers.len(), 48);
    for entry in ciphers {
        let spec: CipherSpec = field(entry, "spec").parse().unwrap();
        let (key, pt, ct) = (field(entry, "key"), unhex(entry, "plaintext_hex"), unhex(entry, "ciphertext_hex"));
        let mut cipher = StageCipher::new(spec, key);

        let mut out = BytesMut::from(&b"prefix"[..]);
        cipher.seal(&pt, &mut out).unwrap_or_else(|e| panic!("{spec} seal: {e}"));
        assert_eq!(&out[..6], b"prefix", "{spec}: seal appends");
        let header = ((ct.len() + 4) as u32 | 0x8000_0000).to_le_bytes();
        assert_eq!(out[6..10], header, "{spec}: header");
        assert_eq!(hex::encode(&out[10..]), hex::encode(&ct), "{spec} key {key}: ciphertext");

        let mut encrypted = header.to_vec();
        encrypted.extend_from_slice(&ct);
        let opened = cipher.open(BytesMut::from(&encrypted[..])).unwrap_or_else(|e| panic!("{spec} open: {e}"));
        assert_eq!(hex::encode(&opened), hex::encode(plain_frame(&pt)), "{spec} key {key}: plaintext");
    }
}

fn frame_cipher(entry: &Value) -> Box<dyn FrameCipher + Send> {
    let key = field(entry, "key");
    let option = match entry["crypto"].as_str() {
        Some(spec) => format!("{spec}={key}"),
        None => key.to_string(),
    };
    crypto::from_option(&option, Box::new(SplitMix64::new(0))).unwrap()
}

#[test]
fn all_7_frame_vectors_seal_and_open_byte_for_byte() {
    let v = vectors();
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 7);
    for entry in frames {
        let (plain, encrypted) = (unhex(entry, "plain_frame_hex"), unhex(entry, "encrypted_frame_hex"));
        let mut cipher = frame_cipher(entry);
        let mut out = BytesMut::new();
        cipher.seal(&plain[4..], &mut out).unwrap();
        assert_eq!(hex::encode(&out), hex::encode(&encrypted), "seal {entry}");
        let opened = cipher.open(BytesMut::from(&encrypted[..])).unwrap();
        assert_eq!(hex::encode(&opened), hex::encode(&plain), "open {entry}");
    }
}

#[test]
fn frame_vectors_through_a_packet_connection() {
    let v = vectors();
    let now = Instant::ZERO;
    for entry in v["frames"].as_array().unwrap() {
        let (plain, encrypted) = (unhex(entry, "plain_frame_hex"), unhex(entry, "encrypted_frame_hex"));

        // Sending the plain BSON frame puts exactly the vector's encrypted frame on the wire,
        // both when written at once (OUT = 0) and when coalesced.
        for max_out in [0, 4096] {
            let mut conn = PacketConnection::with_cipher(FramingConfig::packet(4096, max_out), frame_cipher(entry));
            conn.handle_input(now, Input::Command(Command::Send(Bytes::from(plain.clone())))).unwrap();
            conn.handle_input(now, Input::Command(Command::Flush)).unwrap();
            let out = drain(&mut conn, now);
            assert_eq!(hex::encode(out.wire()), hex::encode(&encrypted), "send (OUT={max_out}) {entry}");
            assert!(out.finished.is_none());
        }

        // Feeding the vector's encrypted frame yields the plain frame, split across two reads.
        let mut conn = PacketConnection::with_cipher(FramingConfig::packet(4096, 0), frame_cipher(entry));
        let (a, b) = encrypted.split_at(encrypted.len() / 2);
        let mut buf = BytesMut::from(a);
        conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
        assert!(drain(&mut conn, now).events.is_empty());
        buf.extend_from_slice(b);
        conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
        let out = drain(&mut conn, now);
        assert_eq!(out.events, [Event::Frame(Bytes::from(plain))], "receive {entry}");
        assert!(out.finished.is_none());
    }
}
