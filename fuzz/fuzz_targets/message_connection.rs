//! Message connections (WIRE.md §4): one `message::MessageConnection` driven by a sequence of
//! commands (requests, answers, notifications, errors, flush), `Close`, bytes from a scripted
//! peer (well-formed message frames or garbage, handed over in fuzzer-sized pieces), EOF and
//! time steps, with request timeouts, heartbeats and `dead_after` configured by the fuzzer.
//!
//! Input: IN and OUT (`u16` each), the heartbeat interval, `dead_after` and the request timeout
//! (ms, 0 = none), `max_pending`, the error payload form, then operations. The harness plays the
//! driver: it stops reading at `ReadClosed`, and the application goes on answering until the
//! script closes.
//!
//! Checks: the bytes sent decode, with the reference decoder, into exactly the messages the
//! accepted commands asked for, in order, all of them before `Finished` (answers after the
//! peer's EOF included), with heartbeats numbered 1, 2, 3, … between them; requests get ids 1,
//! 2, 3, …; answers and time-outs are reported only for requests that are pending,
//! `LateResponse` only for ids issued, and the pending table never exceeds `max_pending`; when
//! the read side closes (EOF, or a fault in the peer's bytes) every request then pending, and
//! only those, is reported `Unanswered`, before `ReadClosed`, and after it no event comes, a
//! request is refused with `PeerClosed` and answers are still sent; until the peer sends
//! garbage, the requests, notifications and heartbeats reported are exactly the peer's, in
//! order; `PeerDead` comes exactly when `dead_after` is due while the read side is open, and
//! never after it closed; nothing else ends the connection unless closed, and a fault in the
//! peer's bytes is the result only then; `Close` is never refused, a second one or one after the
//! end being a no-op; a finished connection refuses commands.
#![no_main]

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{close, drain, end_input, optional_millis, reference_frames, Clock, Fed, Script};
use switchboard_proto::message::{
    encode_message, Command, Error, ErrorPayload, Event, Message, MessageConfig, MessageConnection, MessageKind,
};
use switchboard_proto::stage::{FramingConfig, HEADER_LEN};
use switchboard_proto::{Input, Machine};

/// What a peer's message should be reported as, for kinds reported as they are.
fn reported(message: &Message) -> Option<Event> {
    let payload = message.payload.clone();
    match message.kind {
        MessageKind::Request => Some(Event::Request { id: message.id, payload }),
        MessageKind::Notification => Some(Event::Notification { payload }),
        MessageKind::Heartbeat => Some(Event::Heartbeat { seq: message.id }),
        MessageKind::Response | MessageKind::Error => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let max_in = usize::from(script.u16());
    let max_out = usize::from(script.u16());
    let interval = optional_millis(script.byte());
    let dead_after = optional_millis(script.byte());
    let request_timeout = optional_millis(script.byte());
    let max_pending = usize::from(script.byte() % 8);
    let error_payload = if script.byte() & 1 == 0 { ErrorPayload::Text } else { ErrorPayload::Raw };
    let config = MessageConfig::new(FramingConfig::packet(max_in, max_out))
        .with_heartbeat(interval, dead_after)
        .with_request_timeout(request_timeout)
        .with_max_pending(max_pending)
        .with_error_payload(error_payload);
    let Ok(mut conn) = MessageConnection::new(config) else {
        return;
    };
    let mut clock = Clock::new();
    let mut fed = Fed::<Event, Error>::default();
    fed.absorb(drain(&mut conn, clock.now()), clock.now());
    let mut last_received = clock.now();
    let mut expected_out: Vec<Message> = Vec::new();
    let mut next_id = 1;
    let mut pending = BTreeSet::new();
    let mut peer_wire: Vec<u8> = Vec::new();
    let mut delivered = 0;
    let mut buffer = BytesMut::new();
    let mut garbage = false;
    let mut peer_reported: Vec<Event> = Vec::new();
    let mut input_ended = false;

    while !script.is_empty() && !fed.is_finished() {
        let now = clock.now();
        let command = match script.byte() % 12 {
            0 => Some(Command::Request {
                payload: Bytes::copy_from_slice(script.bytes()),
                timeout: optional_millis(script.byte()),
            }),
            1 => {
                Some(Command::Respond { id: u64::from(script.byte()), payload: Bytes::copy_from_slice(script.bytes()) })
            }
            2 => Some(Command::Notify { payload: Bytes::copy_from_slice(script.bytes()) }),
            3 => Some(Command::Fail { id: u64::from(script.byte()), text: script.string() }),
            4 => Some(Command::FailPayload {
                id: u64::from(script.byte()),
                payload: Bytes::copy_from_slice(script.bytes()),
            }),
            5 => Some(Command::Flush),
            6 => {
                close(&mut conn, now, &mut fed);
                if script.byte() & 1 == 1 {
                    close(&mut conn, now, &mut fed);
                }
                None
            }
            7 => {
                // The peer writes a well-formed message frame (ids kept small so answers match).
                let kind = MessageKind::ALL[usize::from(script.byte() % 5)];
                let message = Message::new(kind, u64::from(script.byte() % 8), Bytes::copy_from_slice(script.bytes()));
                let mut frame = BytesMut::new();
                encode_message(message.kind, message.id, &message.payload, &mut frame).expect("encodes");
                if !garbage {
                    peer_reported.extend(reported(&message));
                }
                peer_wire.extend_from_slice(&frame);
                None
            }
            8 => {
                garbage = true;
                peer_wire.extend_from_slice(script.bytes());
                None
            }
            9 if fed.is_reading() && !input_ended => {
                let pending_bytes = &peer_wire[delivered..];
                let n = usize::from(script.u16()) % (pending_bytes.len() + 1);
                buffer.extend_from_slice(&pending_bytes[..n]);
                delivered += n;
                if n > 0 {
                    last_received = now;
                }
                conn.handle_input(now, Input::Stream(&mut buffer)).expect("stream input while reading");
                None
            }
            9 | 10 if !fed.is_reading() || input_ended => None,
            10 => {
                end_input(&mut conn, now, &mut input_ended);
                None
            }
            _ => {
                clock.advance(u64::from(script.u16()));
                None
            }
        };
        if let Some(command) = command {
            let id = next_id;
            let request = matches!(command, Command::Request { .. });
            let expected = match &command {
                Command::Request { payload, .. } => Some(Message::request(id, payload.clone())),
                Command::Respond { id, payload } => Some(Message::response(*id, payload.clone())),
                Command::Notify { payload } => Some(Message::notification(payload.clone())),
                Command::Fail { id, text } => Some(Message::error(*id, text)),
                Command::FailPayload { id, payload } => Some(Message::new(MessageKind::Error, *id, payload.clone())),
                _ => None,
            };
            match conn.handle_input(now, Input::Command(command)) {
                Ok(()) => {
                    assert!(!(request && fed.read_closed), "a request accepted after the read side closed");
                    if let Some(message) = expected {
                        if message.kind == MessageKind::Request {
                            next_id += 1;
                            pending.insert(id);
                        }
                        expected_out.push(message);
                    }
                }
                Err(Error::TooManyPending { max }) => {
                    assert!(max == max_pending && pending.len() >= max_pending && !fed.read_closed)
                }
                Err(Error::PeerClosed) => assert!(request && fed.read_closed, "PeerClosed with the read side open"),
                Err(Error::ZeroResponseId) => {}
                Err(Error::Stage(e)) => assert!(max_out != 0, "refused with OUT = 0: {e}"),
                Err(Error::Finished) => panic!("a command refused while open"),
                Err(e) => panic!("command refused: {e}"),
            }
        }

        let now = clock.now();
        let out = drain(&mut conn, now);
        for event in &out.events {
            match event {
                Event::Response { id, .. } | Event::TimedOut { id } => {
                    assert!(pending.remove(id), "{event:?} for a request not pending")
                }
                Event::Error { id, .. } | Event::ErrorPayload { id, .. } if *id != 0 => {
                    assert!(pending.remove(id), "{event:?} for a request not pending")
                }
                Event::LateResponse { id } => {
                    assert!(*id != 0 && *id < next_id && !pending.contains(id), "late answer to {id}")
                }
                Event::Unanswered { id } => {
                    assert!(out.read_closed, "Unanswered {{ id: {id} }} without ReadClosed");
                    assert!(pending.remove(id), "Unanswered for {id}, which is not pending");
                }
                _ => {}
            }
        }
        if out.read_closed {
            assert!(pending.is_empty(), "requests pending at the EOF not reported Unanswered: {pending:?}");
        }
        fed.absorb(out, now);
        // Once finished, pending requests are abandoned: the table no longer means anything.
        if !fed.is_finished() {
            assert_eq!(conn.pending().len(), pending.len(), "the pending table differs from the answers seen");
        }
        assert!(pending.len() <= max_pending);
        // `dead_after` runs while the read side is open: once it closed, no byte can come.
        let dead_due = dead_after.is_some_and(|d| now >= last_received + d);
        match &fed.finished {
            Some(Err(Error::PeerDead { .. })) => {
                assert!(dead_due && !fed.read_closed, "PeerDead before dead_after, or after the read side closed")
            }
            None => assert!(!dead_due || fed.read_closed, "dead_after passed unnoticed"),
            Some(end) => {
                assert!(fed.closed, "ended on its own with {end:?}");
                if end.is_err() {
                    assert!(fed.read_closed, "a fault that did not close the read side first: {end:?}");
                }
            }
        }
        if fed.is_reading() {
            assert!(buffer.len() < max_in.max(HEADER_LEN), "{} bytes buffered with IN = {max_in}", buffer.len());
        }
    }
    if fed.is_finished() {
        let refused = conn.handle_input(clock.now(), Input::Command(Command::Flush));
        assert_eq!(refused, Err(Error::Finished), "a finished connection took a command");
        close(&mut conn, clock.now(), &mut fed);
    }

    // What was sent, read back with the reference decoder: the commands' messages in order, and
    // heartbeats numbered from 1.
    let (frames, rest) = reference_frames(&fed.wire, usize::MAX);
    assert!(rest.is_empty(), "the connection wrote a partial or invalid frame");
    let mut heartbeat = 1;
    let mut messages = Vec::new();
    for frame in frames {
        let message = Message::decode(Bytes::copy_from_slice(frame)).expect("every frame sent is a message");
        if message.kind == MessageKind::Heartbeat && message.payload.is_empty() && message.id == heartbeat {
            heartbeat += 1;
        } else {
            messages.push(message);
        }
    }
    assert!(expected_out.starts_with(&messages), "sent messages differ from the commands");
    assert_eq!(messages.len(), expected_out.len(), "accepted commands were not sent (finished: {:?})", fed.finished);
    let reported: Vec<&Event> = fed
        .events
        .iter()
        .filter(|e| matches!(e, Event::Request { .. } | Event::Notification { .. } | Event::Heartbeat { .. }))
        .collect();
    let expected_reported: Vec<&Event> = peer_reported.iter().collect();
    if !garbage {
        assert!(expected_reported.starts_with(&reported), "reported messages differ from the peer's");
    }
});
