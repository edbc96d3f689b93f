//! The router hub (WIRE.md §5): `router::Hub` driven by a sequence of connection events for a
//! few connections: opens, hellos (well-formed from fuzzer fields, or raw bytes), notifications
//! (well-formed `broadcast`/`at`/`omit`/`datastore`/`bye`, or raw bytes), other message events
//! and closes, under a fuzzer-chosen client limit, unique policy and token.
//!
//! Input: the client limit, the policy, whether a token is needed, the entropy seed, then
//! operations.
//!
//! Checks: caller misuse (a second `Opened`, input for a connection not open) is refused with
//! the documented error and changes nothing; the hub never fails on anything a peer sent; every
//! action names an open connection; every payload the hub sends decodes (`welcome` for a
//! response, a hub notification, `refused` for an error); `Joined` and `Left` pair up, never two
//! clients with one unique, the hub's count matches them and stays within the limit; a welcome
//! carries the unique that joined and the address the connection was opened from.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{drain, Script};
use switchboard_proto::message::{Command, Event};
use switchboard_proto::router::{
    FromHub, Hello, Hub, HubAction, HubConfig, HubError, HubInput, Refused, ToHub, UniquePolicy, Welcome,
};
use switchboard_proto::{Input, Instant, Machine, SplitMix64};

/// The few uniques and connection ids the script picks from, so that they collide.
const UNIQUES: [&str; 4] = ["a", "b", "c", "d"];
const CONNS: u8 = 5;

fn unique(script: &mut Script<'_>) -> String {
    UNIQUES[usize::from(script.byte()) % UNIQUES.len()].to_owned()
}

fn note(script: &mut Script<'_>) -> ToHub {
    let data = bson::doc! { "n": i32::from(script.byte()) };
    let to: Vec<String> = (0..script.byte() % 3).map(|_| unique(script)).collect();
    match script.byte() % 5 {
        0 => ToHub::Broadcast { op: script.string(), data },
        1 => ToHub::At { to, op: script.string(), data },
        2 => ToHub::Omit { to, op: script.string(), data },
        3 => ToHub::Datastore { key: script.string().replace('\0', ""), value: script.string() },
        _ => ToHub::Bye { reason: (script.byte() & 1 == 1).then(|| script.string()) },
    }
}

fn other_event(script: &mut Script<'_>) -> Event {
    let id = u64::from(script.byte());
    match script.byte() % 7 {
        0 => Event::Heartbeat { seq: id },
        1 => Event::Response { id, payload: Bytes::copy_from_slice(script.bytes()) },
        2 => Event::Error { id, text: script.string() },
        3 => Event::ErrorPayload { id, payload: Bytes::copy_from_slice(script.bytes()) },
        4 => Event::LateResponse { id },
        5 => Event::TimedOut { id },
        _ => Event::Unanswered { id },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let max_clients = usize::from(script.byte() % 4);
    let policy = if script.byte() & 1 == 0 { UniquePolicy::Replace } else { UniquePolicy::Reject };
    let mut config = HubConfig::new().with_max_clients(max_clients).with_policy(policy);
    if script.byte() & 1 == 1 {
        config = config.with_token("secret");
    }
    let mut hub = Hub::new(config, Box::new(SplitMix64::new(u64::from(script.byte()))));
    let now = Instant::ZERO;
    let mut open: BTreeMap<u64, IpAddr> = BTreeMap::new();
    let mut members: BTreeSet<String> = BTreeSet::new();

    while !script.is_empty() {
        let conn = u64::from(script.byte() % CONNS);
        let input = match script.byte() % 7 {
            0 => HubInput::Opened { conn, ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, script.byte())) },
            1 => {
                let mut hello = Hello::new(script.string(), script.string());
                if script.byte() & 1 == 1 {
                    hello = hello.with_unique(unique(&mut script));
                }
                if script.byte() & 1 == 1 {
                    hello =
                        hello.with_token(if script.byte() & 1 == 1 { "secret".to_owned() } else { script.string() });
                }
                let payload = hello.to_bytes().expect("a hello without NUL keys encodes");
                HubInput::Message { conn, event: Event::Request { id: u64::from(script.byte()), payload } }
            }
            2 => {
                let payload = Bytes::copy_from_slice(script.bytes());
                HubInput::Message { conn, event: Event::Request { id: u64::from(script.byte()), payload } }
            }
            3 => {
                let payload = note(&mut script).to_bytes().expect("a note without NUL keys encodes");
                HubInput::Message { conn, event: Event::Notification { payload } }
            }
            4 => HubInput::Message {
                conn,
                event: Event::Notification { payload: Bytes::copy_from_slice(script.bytes()) },
            },
            5 => HubInput::Message { conn, event: other_event(&mut script) },
            _ => HubInput::Closed { conn, reason: script.string() },
        };
        let result = hub.handle_input(now, Input::Command(input.clone()));
        match (&input, result) {
            (HubInput::Opened { conn, .. }, Err(HubError::AlreadyOpen { conn: refused })) => {
                assert!(open.contains_key(conn) && refused == *conn)
            }
            (HubInput::Opened { conn, ip }, Ok(())) => assert!(open.insert(*conn, *ip).is_none(), "opened twice"),
            (
                HubInput::Message { conn, .. } | HubInput::Closed { conn, .. },
                Err(HubError::UnknownConn { conn: refused }),
            ) => {
                assert!(!open.contains_key(conn) && refused == *conn)
            }
            (HubInput::Closed { conn, .. }, Ok(())) => {
                assert!(open.remove(conn).is_some(), "closed a connection not open")
            }
            (HubInput::Message { conn, .. }, Ok(())) => assert!(open.contains_key(conn)),
            (_, result) => panic!("{input:?} gave {result:?}"),
        }

        let out = drain(&mut hub, now);
        assert!(out.transmits.is_empty() && out.datagrams.is_empty() && out.finished.is_none() && !out.read_closed);
        let (mut welcomed, mut joined) = (Vec::new(), Vec::new());
        for action in out.events {
            match action {
                HubAction::Send { conn, command } => {
                    assert!(open.contains_key(&conn), "a command for connection {conn}, which is not open");
                    match command {
                        Command::Respond { payload, .. } => {
                            let welcome = Welcome::from_bytes(&payload).expect("a welcome decodes");
                            assert_eq!(welcome.ip, open[&conn].to_string(), "a welcome with another address");
                            welcomed.push(welcome.unique);
                        }
                        Command::Notify { payload } => {
                            drop(FromHub::from_bytes(&payload).expect("a notification decodes"))
                        }
                        Command::FailPayload { payload, .. } => {
                            drop(Refused::from_bytes(&payload).expect("a refusal decodes"))
                        }
                        other => panic!("the hub sent {other:?}"),
                    }
                }
                HubAction::Close { conn } => assert!(open.contains_key(&conn), "closing connection {conn}, not open"),
                HubAction::Joined(client) => {
                    assert!(members.insert(client.unique.clone()), "two clients hold {}", client.unique);
                    joined.push(client.unique);
                }
                HubAction::Left { client, .. } => {
                    assert!(members.remove(&client.unique), "{} left twice", client.unique)
                }
            }
        }
        assert_eq!(welcomed, joined, "welcomes and joins differ");
        assert_eq!(hub.len(), members.len(), "the hub's count differs from its joins and leaves");
        assert!(
            max_clients == 0 || members.len() <= max_clients,
            "{} clients with a limit of {max_clients}",
            members.len()
        );
        for unique in &members {
            assert!(hub.client(unique).is_some() && hub.conn_of(unique).is_some_and(|c| open.contains_key(&c)));
        }
        assert_eq!(hub.connections(), open.len());
    }
});
