//! KCOM5 transfers between our APIs — `switchboard_std::kcom` and the async
//! `switchboard_tokio::kcom`, every case through both ([`Api`]) — and the independent Python peer
//! (`shared/peers/kcom_peer.py`): both directions, IPv4 and IPv6, whole and streamed, and
//! against a peer that misbehaves on purpose. Each test picks its own free ports, so they run in
//! parallel.

mod kcom_peer;

use std::io::Read;

use kcom_peer::{finish, ipv6_or_skip, our_listener, peer_got, peer_sender, start_peer, Api, Pattern, APIS};
use sha2_std::{Digest, Sha256};
use switchboard_proto::kcom::{Error as ProtoError, Part};
use switchboard_std::kcom::{ErrorKind, KcomError};

const SIZES: [u64; 3] = [0, 1, 1024 * 1024];
const MSG: &str = "héllo, KCOM5 ✓";

fn pattern(len: u64) -> Vec<u8> {
    let mut data = Vec::new();
    Pattern::new(len).read_to_end(&mut data).unwrap();
    data
}

/// The peer's `send --data-len N` into our `receive`.
fn peer_to_us(api: Api, ipv4: bool, len: u64) {
    let (child, port) = peer_sender(ipv4, &["--msg", MSG, "--data-len", &len.to_string()]);
    let got = api.receive(&kcom_peer::options(ipv4, port));
    let (code, _, stderr) = finish(child);
    let (msg, data) = got.unwrap_or_else(|e| panic!("{api:?} ipv4={ipv4} len={len}: {e}; peer: {stderr}"));
    assert_eq!(code, Some(0), "peer: {stderr}");
    assert_eq!(msg, MSG);
    assert_eq!(data.len() as u64, len);
    assert!(data[..] == pattern(len)[..], "{api:?} ipv4={ipv4} len={len}: data differs");
}

/// Our `send` into the peer's `recv`; it reports msg, length and SHA-256 as JSON.
fn us_to_peer(api: Api, ipv4: bool, len: u64) {
    let (listener, options) = our_listener(api, ipv4);
    let child = start_peer("recv", ipv4, options.port, &[]);
    let data = pattern(len);
    let sent = listener.send(MSG, data.clone());
    let (code, stdout, stderr) = finish(child);
    sent.unwrap_or_else(|e| panic!("{api:?} ipv4={ipv4} len={len}: {e}; peer: {stderr}"));
    assert_eq!(code, Some(0), "peer: {stderr}");
    let got = peer_got(&stdout);
    assert_eq!(got.msg, MSG);
    assert_eq!(got.data_len, len);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(&data)));
}

#[test]
fn peer_to_us_ipv4() {
    for api in APIS {
        SIZES.iter().for_each(|&len| peer_to_us(api, true, len));
    }
}

#[test]
fn peer_to_us_ipv6() {
    if ipv6_or_skip("peer_to_us_ipv6") {
        for api in APIS {
            SIZES.iter().for_each(|&len| peer_to_us(api, false, len));
        }
    }
}

#[test]
fn us_to_peer_ipv4() {
    for api in APIS {
        SIZES.iter().for_each(|&len| us_to_peer(api, true, len));
    }
}

#[test]
fn us_to_peer_ipv6() {
    if ipv6_or_skip("us_to_peer_ipv6") {
        for api in APIS {
            SIZES.iter().for_each(|&len| us_to_peer(api, false, len));
        }
    }
}

#[test]
fn streamed_send_to_peer() {
    let len = 1024 * 1024 + 3;
    for api in APIS {
        let (listener, options) = our_listener(api, true);
        let child = start_peer("recv", true, options.port, &[]);
        let sent = listener.send_from("streamed", len, Pattern::new(len));
        let (code, stdout, stderr) = finish(child);
        let reports = sent.unwrap_or_else(|e| panic!("{api:?}: {e}; peer: {stderr}"));
        assert_eq!(code, Some(0), "peer: {stderr}");
        let got = peer_got(&stdout);
        assert_eq!((got.msg.as_str(), got.data_len), ("streamed", len));
        assert_eq!(got.sha256, hex::encode(Sha256::digest(pattern(len))));
        assert_eq!((reports.first(), reports.last()), (Some(&(0, len)), Some(&(len, len))), "{api:?}");
    }
}

#[test]
fn streamed_receive_from_peer() {
    let len = 1024 * 1024 + 5;
    for api in APIS {
        let (child, port) = peer_sender(true, &["--msg", "to a sink", "--data-len", &len.to_string()]);
        let got = api.receive_to(&kcom_peer::options(true, port));
        let (code, _, stderr) = finish(child);
        let (header, sink, reports) = got.unwrap_or_else(|e| panic!("{api:?}: {e}; peer: {stderr}"));
        assert_eq!(code, Some(0), "peer: {stderr}");
        assert_eq!((header.msg.as_str(), header.data_len), ("to a sink", len));
        assert!(sink == pattern(len), "{api:?}: data differs");
        assert_eq!((reports.first(), reports.last()), (Some(&(0, len)), Some(&(len, len))), "{api:?}");
    }
}

#[test]
fn bad_echo_is_the_peers_fault() {
    for api in APIS {
        let (child, port) = peer_sender(true, &["--data-len", "100", "--bad-echo"]);
        let err = api.receive(&kcom_peer::options(true, port)).unwrap_err();
        // The peer may or may not see us leave before it finishes writing: only our verdict matters.
        let _ = finish(child);
        assert!(matches!(err, KcomError::Peer(ProtoError::EchoMismatch { .. })), "{api:?}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::Peer);
    }
}

#[test]
fn bad_magic_is_the_peers_fault() {
    for api in APIS {
        let (listener, options) = our_listener(api, true);
        let child = start_peer("recv", true, options.port, &["--bad-magic"]);
        let err = listener.send("m", &b"data"[..]).unwrap_err();
        let (code, _, _) = finish(child);
        assert_eq!(code, Some(1), "the peer never got an echo, so it fails too");
        match &err {
            KcomError::Peer(ProtoError::BadMagic { got }) => assert_eq!(&got[..5], b"KCOM4"),
            other => panic!("{api:?}: {other:?}"),
        }
        assert_eq!(err.kind(), ErrorKind::Peer);
    }
}

#[test]
fn truncated_data_names_the_byte_count() {
    for api in APIS {
        let (child, port) = peer_sender(true, &["--data-len", "5000", "--truncate", "1234"]);
        let err = api.receive(&kcom_peer::options(true, port)).unwrap_err();
        let (code, _, stderr) = finish(child);
        assert_eq!(code, Some(0), "the peer truncates on purpose and exits cleanly: {stderr}");
        assert!(
            matches!(err, KcomError::Peer(ProtoError::Truncated { reading: Part::Data, got: 1234, expected: 5000 })),
            "{api:?}: {err:?}"
        );
        assert!(err.to_string().contains("1234 of 5000"), "{err}");
    }
}

#[test]
fn slow_header_still_arrives() {
    for api in APIS {
        let (child, port) =
            peer_sender(true, &["--msg", "dribbled one byte at a time", "--data-len", "3000", "--slow"]);
        let (msg, data) = api.receive(&kcom_peer::options(true, port)).unwrap();
        let (code, _, stderr) = finish(child);
        assert_eq!(code, Some(0), "peer: {stderr}");
        assert_eq!(msg, "dribbled one byte at a time");
        assert!(data[..] == pattern(3000)[..], "{api:?}");
    }
}
