//! The router client (WIRE.md §5): `router::RouterClient` against a scripted hub that writes
//! welcomes, notifications, refusals and arbitrary message frames (handed over in fuzzer-sized
//! pieces), while the application sends commands and closes; with EOF and time steps.
//!
//! Input: the hello's request timeout (ms, 0 = none), whether the hello asks for a unique, then
//! operations. The harness plays the driver: it stops reading at `ReadClosed`.
//!
//! Checks: the client's bytes are message frames: first the hello request (id 1) carrying the
//! configured hello, then exactly one notification per accepted command, carrying that
//! command's payload (heartbeats aside), and one `bye` when it is closed welcomed while the hub
//! has not closed its side, all of them before `Finished`; commands are refused before the
//! welcome and taken after the hub's EOF; `Welcome` comes at most once, before any hub
//! notification, never listing the client itself, and `me()` then carries its unique; no event
//! after `ReadClosed`; the hub's EOF before the welcome ends it `HelloUnanswered`; the client
//! ends only with a peer's or the connection's error, never one blamed on the caller, cleanly
//! only when closed, and once welcomed a fault in the hub's bytes is the result only once it is
//! closed; `Close` is never refused, a second one (no second `bye`) or one after the end being a
//! no-op; a finished client refuses commands.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{close, drain, drain_into, end_input, optional_millis, reference_frames, Clock, Fed, Script};
use switchboard_proto::message::{encode_message, Message, MessageConfig, MessageKind};
use switchboard_proto::router::{
    ClientCommand, ClientConfig, ClientDoc, ClientEvent, FromHub, Hello, RefuseCode, Refused, RouterClient,
    RouterError, ToHub, Welcome,
};
use switchboard_proto::{Blame, Fault, Input, Machine};

const UNIQUES: [&str; 4] = ["me", "b", "c", "d"];

fn unique(script: &mut Script<'_>) -> String {
    UNIQUES[usize::from(script.byte()) % UNIQUES.len()].to_owned()
}

fn client(script: &mut Script<'_>) -> ClientDoc {
    let mut doc =
        ClientDoc { name: script.string(), unique: unique(script), ip: "192.0.2.9".into(), ..ClientDoc::default() };
    if script.byte() & 1 == 1 {
        doc.datastore.insert(script.string().replace('\0', ""), script.string());
    }
    doc
}

/// A message the scripted hub writes: its kind, id and payload.
fn hub_message(script: &mut Script<'_>) -> (MessageKind, u64, Bytes) {
    match script.byte() % 4 {
        0 => {
            let clients = (0..script.byte() % 3).map(|_| client(script)).collect();
            let welcome = Welcome { unique: unique(script), ip: IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(), clients };
            (MessageKind::Response, u64::from(script.byte() % 3), welcome.to_bytes().expect("encodes"))
        }
        1 => {
            let note = match script.byte() % 5 {
                0 => FromHub::Op { from: unique(script), op: script.string(), data: bson::doc! { "n": 1 } },
                1 => FromHub::Connected(client(script)),
                2 => FromHub::Disconnected { client: client(script), reason: script.string() },
                3 => FromHub::Datastore {
                    unique: unique(script),
                    key: script.string().replace('\0', ""),
                    value: script.string(),
                },
                _ => FromHub::Closing { reason: script.string() },
            };
            (MessageKind::Notification, 0, note.to_bytes().expect("encodes"))
        }
        2 => {
            let refused = Refused { code: RefuseCode::Full, reason: script.string() };
            (MessageKind::Error, u64::from(script.byte() % 2), refused.to_bytes().expect("encodes"))
        }
        _ => {
            let kind = MessageKind::ALL[usize::from(script.byte()) % MessageKind::ALL.len()];
            (kind, u64::from(script.byte() % 3), Bytes::copy_from_slice(script.bytes()))
        }
    }
}

/// What the application does: a command, or `None` for closing (`Input::Close`).
fn command(script: &mut Script<'_>) -> Option<ClientCommand> {
    let data = bson::doc! { "n": i32::from(script.byte()) };
    Some(match script.byte() % 6 {
        0 => ClientCommand::broadcast(script.string(), data),
        1 => ClientCommand::at([unique(script)], script.string(), data),
        2 => ClientCommand::omit([unique(script)], script.string(), data),
        3 => ClientCommand::datastore(script.string(), script.string()),
        4 => ClientCommand::bye((script.byte() & 1 == 1).then_some("done")),
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let timeout = optional_millis(script.byte());
    let mut hello = Hello::new("player", "game");
    if script.byte() & 1 == 1 {
        hello = hello.with_unique("me");
    }
    let message = MessageConfig::default().with_request_timeout(timeout);
    let mut client = RouterClient::new(ClientConfig::new(message, hello.clone())).expect("a valid config");
    let mut clock = Clock::new();
    let mut fed = Fed::<ClientEvent, RouterError>::default();
    fed.absorb(drain(&mut client, clock.now()), clock.now());
    let mut hub_wire: Vec<u8> = Vec::new();
    let mut delivered = 0;
    let mut buffer = BytesMut::new();
    let mut notes_sent: Vec<Bytes> = Vec::new();
    let mut input_ended = false;

    while !script.is_empty() && !fed.is_finished() {
        let now = clock.now();
        match script.byte() % 5 {
            0 => {
                let (kind, id, payload) = hub_message(&mut script);
                let mut frame = BytesMut::new();
                encode_message(kind, id, &payload, &mut frame).expect("encodes");
                hub_wire.extend_from_slice(&frame);
            }
            1 if fed.is_reading() && !input_ended => {
                let pending = &hub_wire[delivered..];
                let n = usize::from(script.u16()) % (pending.len() + 1);
                buffer.extend_from_slice(&pending[..n]);
                delivered += n;
                client.handle_input(now, Input::Stream(&mut buffer)).expect("stream input while reading");
            }
            2 => {
                let Some(command) = command(&mut script) else {
                    // Closing a welcomed client whose hub has not closed says bye first, once.
                    if client.is_welcomed() && !fed.read_closed && !fed.closed {
                        notes_sent.push(ToHub::Bye { reason: None }.to_bytes().expect("a bye encodes"));
                    }
                    close(&mut client, now, &mut fed);
                    if script.byte() & 1 == 1 {
                        close(&mut client, now, &mut fed);
                    }
                    drain_into(&mut client, now, &mut fed);
                    continue;
                };
                let ClientCommand::Send(note) = command.clone();
                let welcomed = client.is_welcomed();
                match client.handle_input(now, Input::Command(command)) {
                    Ok(()) => {
                        assert!(welcomed, "a notification accepted before the welcome");
                        notes_sent.push(note.to_bytes().expect("an accepted note encodes"));
                    }
                    Err(RouterError::NotWelcomed) => assert!(!welcomed),
                    Err(RouterError::Doc(e)) => {
                        assert!(matches!(note, ToHub::Datastore { key, .. } if key.contains('\0')), "{e}")
                    }
                    Err(e) => panic!("command refused: {e}"),
                }
            }
            3 if fed.is_reading() && !input_ended => end_input(&mut client, now, &mut input_ended),
            _ => {
                clock.advance(u64::from(script.u16()));
            }
        }
        let now = clock.now();
        drain_into(&mut client, now, &mut fed);
    }
    if let Some(Err(e)) = &fed.finished {
        assert_eq!(e.fault(), Fault::Peer, "the client ended blaming the caller: {e}");
    }
    if fed.is_finished() {
        let refused = client.handle_input(clock.now(), Input::Command(ClientCommand::bye(None)));
        assert!(refused.is_err(), "a finished client took a command");
        close(&mut client, clock.now(), &mut fed);
    }

    let ever_welcomed = fed.events.iter().any(|e| matches!(e, ClientEvent::Welcome { .. }));
    match &fed.finished {
        Some(Err(RouterError::HelloUnanswered)) => {
            assert!(input_ended && !ever_welcomed, "HelloUnanswered without the hub's EOF before the welcome")
        }
        // Only the application's Close ends the client cleanly; once welcomed, the hub's fault in
        // what it sent closes only the read side, and is the result once the client is closed.
        Some(Ok(())) => assert!(fed.closed, "ended cleanly without Close"),
        Some(Err(RouterError::Message(e))) if !fed.closed => {
            assert!(!ever_welcomed, "a welcomed client ended on the hub's fault before Close: {e}")
        }
        _ => {}
    }

    let mut welcomed = false;
    for event in &fed.events {
        match event {
            ClientEvent::Welcome { unique, clients, .. } => {
                assert!(!welcomed, "welcomed twice");
                welcomed = true;
                assert!(clients.iter().all(|c| &c.unique != unique), "the welcome lists the client itself");
                if !fed.is_finished() {
                    assert_eq!(client.me().map(|me| &me.unique), Some(unique));
                }
            }
            ClientEvent::Hub(_) => assert!(welcomed, "a hub notification before the welcome"),
        }
    }

    let (frames, rest) = reference_frames(&fed.wire, usize::MAX);
    assert!(rest.is_empty(), "the client wrote a partial frame");
    let mut messages =
        frames.into_iter().map(|frame| Message::decode(Bytes::copy_from_slice(frame)).expect("a message"));
    if let Some(first) = messages.next() {
        assert_eq!((first.kind, first.id), (MessageKind::Request, 1), "the hello comes first");
        assert_eq!(Hello::from_bytes(&first.payload).expect("the hello decodes"), hello);
    }
    let notes: Vec<Bytes> = messages.filter(|m| m.kind != MessageKind::Heartbeat).map(|m| m.payload).collect();
    assert!(notes_sent.starts_with(&notes), "notifications sent differ from the commands");
    assert_eq!(notes.len(), notes_sent.len(), "accepted commands were not sent (finished: {:?})", fed.finished);
});
