//! STAGE datagrams: `stage::PacketDatagram` driven by a sequence of received datagrams, sends,
//! time steps, `Close` and EOF, with or without a cipher (plain, each STAGE spec, sealed).
//!
//! Input: IN and OUT (`u16` each), `expire` (ms, 0 = none), whether there is a default
//! destination, the cipher choice, then operations until the input ends.
//!
//! Checks: every datagram received while open gives exactly one event, `Frame` (the datagram
//! itself when plain, a plain frame within IN when decrypted) or `Dropped` (exactly when the
//! reference says it is not one valid frame, for plain datagrams), and a bad one never ends the
//! endpoint; a send comes out as exactly one datagram to the address asked, whose bytes match the
//! reference encoder (plain) or open with the peer's cipher to the reference frame (encrypted),
//! within OUT and the UDP payload limit; a refused send transmits nothing; `expire` ends the
//! endpoint exactly when it is due, counted from the last accepted frame; `Close` and EOF end it
//! cleanly at once (a datagram endpoint has no read side to close apart: it never reports
//! `ReadClosed`), nothing else ends it cleanly, and `Close` is never refused, a second one or
//! one after the end being a no-op; a finished endpoint refuses commands.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use switchboard_fuzz::{
    check_deadline, cipher_pair, drain, optional_millis, reference_frame, reference_frames, Clock, Script,
};
use switchboard_proto::stage::datagram::{MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6};
use switchboard_proto::stage::{DatagramCommand, DatagramEvent, Error, FramingConfig, PacketDatagram, HEADER_LEN};
use switchboard_proto::{Input, Machine};

fn peers() -> [SocketAddr; 2] {
    ["192.0.2.1:8081".parse().unwrap(), "[2001:db8::1]:8081".parse().unwrap()]
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let max_in = usize::from(script.u16());
    let max_out = usize::from(script.u16());
    let expire = optional_millis(script.byte());
    let default_to = (script.byte() & 1 == 1).then_some(peers()[0]);
    let config = FramingConfig::packet(max_in, max_out).with_expire(expire);
    let (mut endpoint, mut peer) = match cipher_pair(script.byte()) {
        Some((ours, theirs)) => (PacketDatagram::with_cipher(config, default_to, ours), Some(theirs)),
        None => (PacketDatagram::new(config, default_to), None),
    };
    let mut clock = Clock::new();
    // The expire clock starts at the first call.
    let mut last_accepted = clock.now();
    assert!(drain(&mut endpoint, clock.now()).finished.is_none());

    while !script.is_empty() {
        let now = clock.now();
        let mut sent: Option<(SocketAddr, Vec<u8>)> = None;
        let mut received: Option<(SocketAddr, Bytes)> = None;
        let mut ending = false;
        match script.byte() % 6 {
            0 => {
                let from = peers()[usize::from(script.byte() & 1)];
                let datagram = Bytes::copy_from_slice(script.bytes());
                endpoint
                    .handle_input(now, Input::Datagram { from, data: datagram.clone() })
                    .expect("a datagram is never refused while open");
                received = Some((from, datagram));
            }
            op @ (1 | 2) => {
                let to = peers()[usize::from(script.byte() & 1)];
                let use_default = script.byte() & 1 == 1;
                let whole = op == 2;
                let payload = Bytes::copy_from_slice(script.bytes());
                let command = match (whole, use_default) {
                    (false, false) => DatagramCommand::SendBodyTo(to, payload.clone()),
                    (false, true) => DatagramCommand::SendBody(payload.clone()),
                    (true, false) => DatagramCommand::SendTo(to, payload.clone()),
                    (true, true) => DatagramCommand::Send(payload.clone()),
                };
                let to = if use_default { default_to } else { Some(to) };
                let result = endpoint.handle_input(now, Input::Command(command));
                let body = if whole && payload.len() >= HEADER_LEN { &payload[HEADER_LEN..] } else { &payload[..] };
                let well_formed = !whole || reference_frame(body) == payload;
                match (to, result) {
                    (None, Err(Error::NoDestination)) => {}
                    (None, other) => panic!("a send with no destination gave {other:?}"),
                    (Some(to), Ok(())) => {
                        assert!(well_formed, "a malformed whole frame was sent");
                        sent = Some((to, reference_frame(body)));
                    }
                    (Some(to), Err(e)) => {
                        let udp = if to.is_ipv4() { MAX_UDP_PAYLOAD_V4 } else { MAX_UDP_PAYLOAD_V6 };
                        let limit = if max_out == 0 { udp } else { max_out.min(udp) };
                        match e {
                            Error::MalformedOutgoing { .. } => assert!(!well_formed, "a well-formed frame was refused"),
                            Error::OutgoingTooLarge { max, .. } => {
                                assert_eq!(max, limit, "refused under the wrong limit")
                            }
                            Error::Cipher(_) => assert!(peer.is_some(), "a cipher error without a cipher"),
                            other => panic!("send refused with {other:?}"),
                        }
                        if peer.is_none() && well_formed {
                            assert!(body.len() + HEADER_LEN > limit, "a plain frame within OUT was refused");
                        }
                    }
                }
            }
            3 => {
                clock.advance(u64::from(script.u16()));
            }
            4 => {
                ending = true;
                endpoint.handle_input(now, Input::Close).expect("Close is never refused");
                if script.byte() & 1 == 1 {
                    endpoint.handle_input(now, Input::Close).expect("a second Close is a no-op");
                }
            }
            _ => {
                ending = true;
                endpoint.handle_input(now, Input::Eof).expect("EOF while open");
            }
        }

        let now = clock.now();
        let out = drain(&mut endpoint, now);
        assert!(out.transmits.is_empty(), "a datagram endpoint wrote to a stream");
        assert!(!out.read_closed, "a datagram endpoint reported ReadClosed");
        let expected_out = usize::from(sent.is_some());
        assert_eq!(out.datagrams.len(), expected_out, "one datagram per accepted send");
        if let (Some((to, frame)), Some((got_to, got))) = (sent, out.datagrams.first()) {
            assert_eq!(to, *got_to, "sent to the wrong address");
            match peer.as_mut() {
                None => assert_eq!(&got[..], &frame[..], "sent bytes differ from the reference encoder"),
                Some(peer) => {
                    let opened = peer.open(BytesMut::from(&got[..])).expect("the peer opens what we sealed");
                    assert_eq!(&opened[..], &frame[..], "the sealed datagram does not open to the frame");
                }
            }
        }
        if let Some((from, datagram)) = received {
            assert_eq!(out.events.len(), 1, "one event per received datagram");
            let plain = datagram.len() < HEADER_LEN || datagram[3] & 0x80 == 0;
            let valid = reference_frames(&datagram, max_in).0 == [&datagram[..]];
            match &out.events[0] {
                DatagramEvent::Frame { from: got_from, frame } => {
                    assert_eq!(*got_from, from);
                    if plain {
                        assert!(valid, "an invalid plain datagram was accepted");
                        assert_eq!(frame, &datagram, "a plain datagram was changed");
                    } else {
                        assert_eq!(reference_frames(frame, max_in).0, [&frame[..]], "decrypted to an invalid frame");
                    }
                    last_accepted = now;
                }
                DatagramEvent::Dropped { from: got_from, .. } => {
                    assert_eq!(*got_from, from);
                    assert!(!(plain && valid), "a valid plain datagram was dropped");
                }
            }
        } else {
            assert!(out.events.is_empty(), "an event without a datagram");
        }
        let due = expire.is_some_and(|idle| now >= last_accepted + idle);
        match out.finished {
            None => {
                assert!(!due, "expire was due at {now:?} but the endpoint is open");
                check_deadline(out.deadline, now);
            }
            Some(Err(Error::Expired { .. })) => assert!(due, "expired before the deadline"),
            Some(Err(e)) => panic!("a datagram endpoint failed: {e}"),
            Some(Ok(())) => assert!(ending, "ended cleanly without Close or EOF"),
        }
        assert!(!ending || out.finished.is_some(), "Close or EOF did not end the endpoint");
        if out.finished.is_some() {
            let now = clock.now();
            endpoint.handle_input(now, Input::Close).expect("Close after the end is a no-op");
            let refused =
                endpoint.handle_input(now, Input::Command(DatagramCommand::SendBodyTo(peers()[0], Bytes::new())));
            assert_eq!(refused, Err(Error::Finished), "a finished endpoint took a command");
            break;
        }
    }
});
