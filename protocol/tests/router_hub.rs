//! The router hub driven directly: `HubInput`s in, `HubAction`s out (payloads decoded with
//! `router::doc`). No sockets, no message connections.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use bson::{doc, Document};
use bytes::Bytes;
use quickcheck::{quickcheck, TestResult};
use switchboard_proto::machine::drain;
use switchboard_proto::message::{Command, Event};
use switchboard_proto::router::{
    ClientDoc, ConnId, FromHub, Hello, Hub, HubAction, HubConfig, HubError, HubInput, RefuseCode, Refused, ToHub,
    UniquePolicy, Welcome,
};
use switchboard_proto::{Blame, Fault, Input, Instant, Machine, SplitMix64};

const NOW: Instant = Instant::ZERO;

/// A hub action with its payload decoded, for readable assertions.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Welcome(ConnId, u64, Welcome),
    Refused(ConnId, u64, Refused),
    Note(ConnId, FromHub),
    Close(ConnId),
    Joined(String),
    Left(String, String),
}

fn decode(action: HubAction) -> Seen {
    match action {
        HubAction::Send { conn, command: Command::Respond { id, payload } } => {
            Seen::Welcome(conn, id, Welcome::from_bytes(&payload).unwrap())
        }
        HubAction::Send { conn, command: Command::FailPayload { id, payload } } => {
            Seen::Refused(conn, id, Refused::from_bytes(&payload).unwrap())
        }
        HubAction::Send { conn, command: Command::Notify { payload } } => {
            Seen::Note(conn, FromHub::from_bytes(&payload).unwrap())
        }
        HubAction::Send { conn, command } => panic!("unexpected command for {conn}: {command:?}"),
        HubAction::Close { conn } => Seen::Close(conn),
        HubAction::Joined(client) => Seen::Joined(client.unique),
        HubAction::Left { client, reason } => Seen::Left(client.unique, reason),
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn new_hub(config: HubConfig) -> Hub {
    Hub::new(config, Box::new(SplitMix64::new(42)))
}

fn input(hub: &mut Hub, input: HubInput) -> Vec<Seen> {
    hub.handle_input(NOW, Input::Command(input)).unwrap();
    let out = drain(hub, NOW);
    assert!(out.finished.is_none() && out.transmits.is_empty());
    out.events.into_iter().map(decode).collect()
}

fn open(hub: &mut Hub, conn: ConnId) {
    assert_eq!(input(hub, HubInput::Opened { conn, ip: ip(conn as u8) }), []);
}

fn event(hub: &mut Hub, conn: ConnId, event: Event) -> Vec<Seen> {
    input(hub, HubInput::Message { conn, event })
}

fn request(hub: &mut Hub, conn: ConnId, id: u64, payload: Bytes) -> Vec<Seen> {
    event(hub, conn, Event::Request { id, payload })
}

fn hello(name: &str, unique: Option<&str>) -> Hello {
    Hello { name: name.into(), game: "g".into(), unique: unique.map(Into::into), ..Default::default() }
}

fn say_hello(hub: &mut Hub, conn: ConnId, h: &Hello) -> Vec<Seen> {
    request(hub, conn, 1, h.to_bytes().unwrap())
}

fn note(hub: &mut Hub, conn: ConnId, n: &ToHub) -> Vec<Seen> {
    event(hub, conn, Event::Notification { payload: n.to_bytes().unwrap() })
}

fn closed(hub: &mut Hub, conn: ConnId, reason: &str) -> Vec<Seen> {
    input(hub, HubInput::Closed { conn, reason: reason.into() })
}

fn client(name: &str, unique: &str, conn: ConnId) -> ClientDoc {
    ClientDoc {
        name: name.into(),
        game: "g".into(),
        unique: unique.into(),
        ip: ip(conn as u8).to_string(),
        datastore: BTreeMap::new(),
    }
}

/// Open and join `unique` on `conn`, checking nothing but that it joined.
fn join(hub: &mut Hub, conn: ConnId, unique: &str) {
    open(hub, conn);
    let seen = say_hello(hub, conn, &hello(unique, Some(unique)));
    assert_eq!(seen.last(), Some(&Seen::Joined(unique.into())), "{seen:?}");
}

fn op(from: &str, name: &str, data: Document) -> FromHub {
    FromHub::Op { from: from.into(), op: name.into(), data }
}

fn bad_request(conn: ConnId, id: u64, seen: &[Seen]) {
    match seen {
        [Seen::Refused(c, i, Refused { code: RefuseCode::BadRequest, .. }), Seen::Close(c2)] => {
            assert_eq!((*c, *i, *c2), (conn, id, conn));
        }
        other => panic!("expected bad_request for {conn}/{id}, got {other:?}"),
    }
}

#[test]
fn hello_is_welcomed_with_ip_from_opened_and_an_assigned_unique() {
    let mut hub = new_hub(HubConfig::new());
    open(&mut hub, 7);
    let seen = say_hello(&mut hub, 7, &hello("bot", None));
    let [Seen::Welcome(7, 1, welcome), Seen::Joined(joined)] = &seen[..] else { panic!("{seen:?}") };
    assert_eq!(welcome.ip, "10.0.0.7");
    assert!(welcome.clients.is_empty());
    assert_eq!(welcome.unique.len(), 16);
    assert!(welcome.unique.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(joined, &welcome.unique);
    assert_eq!(hub.client(&welcome.unique), Some(&client("bot", &welcome.unique, 7)));
    assert_eq!(hub.conn_of(&welcome.unique), Some(7));
    assert_eq!(hub.len(), 1);

    // Same seed, same unique; a second assigned unique differs.
    let mut again = new_hub(HubConfig::new());
    open(&mut again, 7);
    assert_eq!(say_hello(&mut again, 7, &hello("bot", None)), seen);
    open(&mut again, 8);
    let seen = say_hello(&mut again, 8, &hello("bot", None));
    let [Seen::Welcome(8, 1, second), ..] = &seen[..] else { panic!("{seen:?}") };
    assert_ne!(second.unique, welcome.unique);
}

#[test]
fn the_ip_a_client_claims_is_ignored() {
    let mut hub = new_hub(HubConfig::new());
    open(&mut hub, 3);
    let forged = doc! { "t": "hello", "name": "n", "game": "g", "unique": "u", "ip": "1.2.3.4" };
    let seen = request(&mut hub, 3, 5, Bytes::from(forged.to_vec().unwrap()));
    let [Seen::Welcome(3, 5, welcome), Seen::Joined(_)] = &seen[..] else { panic!("{seen:?}") };
    assert_eq!(welcome.ip, "10.0.0.3");
}

#[test]
fn a_second_client_sees_the_first_and_the_first_hears_of_it() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    open(&mut hub, 2);
    let seen = say_hello(&mut hub, 2, &hello("b", Some("b")));
    assert_eq!(
        seen,
        [
            Seen::Welcome(
                2,
                1,
                Welcome { unique: "b".into(), ip: "10.0.0.2".into(), clients: vec![client("a", "a", 1)] }
            ),
            Seen::Note(1, FromHub::Connected(client("b", "b", 2))),
            Seen::Joined("b".into()),
        ]
    );
    assert_eq!(hub.clients().map(|c| c.unique.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn broadcast_at_and_omit_reach_exactly_the_right_clients_in_join_order() {
    let mut hub = new_hub(HubConfig::new());
    for (conn, unique) in [(1, "d"), (2, "c"), (3, "b"), (4, "a")] {
        join(&mut hub, conn, unique);
    }
    let data = doc! { "x": 1, "list": [1, "two"] };

    let seen = note(&mut hub, 2, &ToHub::Broadcast { op: "hi".into(), data: data.clone() });
    let hi = op("c", "hi", data.clone());
    assert_eq!(seen, [Seen::Note(1, hi.clone()), Seen::Note(3, hi.clone()), Seen::Note(4, hi)]);

    // at: unknown skipped, duplicates once, the sender included when listed, join order.
    let to = vec!["a".into(), "nobody".into(), "c".into(), "a".into(), "d".into()];
    let seen = note(&mut hub, 2, &ToHub::At { to, op: "at".into(), data: data.clone() });
    let at = op("c", "at", data.clone());
    assert_eq!(seen, [Seen::Note(1, at.clone()), Seen::Note(2, at.clone()), Seen::Note(4, at)]);

    // omit: never the sender, not those listed; unknown uniques change nothing.
    let to = vec!["b".into(), "ghost".into(), "c".into()];
    let seen = note(&mut hub, 2, &ToHub::Omit { to, op: "om".into(), data: data.clone() });
    let om = op("c", "om", data.clone());
    assert_eq!(seen, [Seen::Note(1, om.clone()), Seen::Note(4, om)]);

    // at nobody known: nothing at all.
    let seen = note(&mut hub, 2, &ToHub::At { to: vec!["ghost".into()], op: "x".into(), data });
    assert_eq!(seen, []);
}

#[test]
fn datastore_is_relayed_and_late_joiners_see_it() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "b");
    let seen = note(&mut hub, 1, &ToHub::Datastore { key: "k".into(), value: "v".into() });
    assert_eq!(seen, [Seen::Note(2, FromHub::Datastore { unique: "a".into(), key: "k".into(), value: "v".into() })]);
    assert_eq!(hub.client("a").unwrap().datastore["k"], "v");

    open(&mut hub, 3);
    let seen = say_hello(&mut hub, 3, &hello("c", Some("c")));
    let Seen::Welcome(3, 1, welcome) = &seen[0] else { panic!("{seen:?}") };
    let mut a = client("a", "a", 1);
    a.datastore.insert("k".into(), "v".into());
    assert_eq!(welcome.clients, [a.clone(), client("b", "b", 2)]);
    // The newcomer is announced with its own (empty) datastore.
    assert_eq!(seen[1], Seen::Note(1, FromHub::Connected(client("c", "c", 3))));
}

#[test]
fn replace_policy_closes_the_old_session_in_order() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "x");
    open(&mut hub, 3);
    let seen = say_hello(&mut hub, 3, &hello("new-x", Some("x")));
    assert_eq!(
        seen,
        [
            Seen::Note(2, FromHub::Closing { reason: "replaced".into() }),
            Seen::Close(2),
            Seen::Note(1, FromHub::Disconnected { client: client("x", "x", 2), reason: "replaced".into() }),
            Seen::Left("x".into(), "replaced".into()),
            Seen::Welcome(
                3,
                1,
                Welcome { unique: "x".into(), ip: "10.0.0.3".into(), clients: vec![client("a", "a", 1)] }
            ),
            Seen::Note(1, FromHub::Connected(client("new-x", "x", 3))),
            Seen::Joined("x".into()),
        ]
    );
    assert_eq!(hub.conn_of("x"), Some(3));
    // Whatever the old session still sends is dropped; its close is only a goodbye.
    assert_eq!(note(&mut hub, 2, &ToHub::Broadcast { op: "late".into(), data: doc! {} }), []);
    assert_eq!(closed(&mut hub, 2, "eof"), []);
    assert_eq!(hub.len(), 2);
}

#[test]
fn replacing_is_allowed_when_full_but_a_newcomer_is_not() {
    let mut hub = new_hub(HubConfig::new().with_max_clients(2));
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "b");
    open(&mut hub, 3);
    let seen = say_hello(&mut hub, 3, &hello("c", Some("c")));
    assert!(
        matches!(&seen[..], [Seen::Refused(3, 1, Refused { code: RefuseCode::Full, .. }), Seen::Close(3)]),
        "{seen:?}"
    );
    assert_eq!(closed(&mut hub, 3, "eof"), []);
    open(&mut hub, 4);
    let seen = say_hello(&mut hub, 4, &hello("b2", Some("b")));
    assert_eq!(seen.last(), Some(&Seen::Joined("b".into())));
    assert_eq!(hub.len(), 2);
}

#[test]
fn reject_policy_refuses_a_taken_unique() {
    let mut hub = new_hub(HubConfig::new().with_policy(UniquePolicy::Reject));
    join(&mut hub, 1, "a");
    open(&mut hub, 2);
    let seen = say_hello(&mut hub, 2, &hello("a2", Some("a")));
    assert!(
        matches!(&seen[..], [Seen::Refused(2, 1, Refused { code: RefuseCode::UniqueInUse, .. }), Seen::Close(2)]),
        "{seen:?}"
    );
    assert_eq!(hub.conn_of("a"), Some(1));
}

#[test]
fn token_and_verifier_guard_the_door() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let mut hub = new_hub(HubConfig::new().with_token("s3cret")).with_verifier(move |hello, ip| {
        log.lock().unwrap().push((hello.name.clone(), ip));
        match hello.headers.get("role").map(String::as_str) {
            Some("dev") => Ok(()),
            _ => Err("developers only".to_string()),
        }
    });
    let mut good = hello("dev", Some("d"));
    good.token = Some("s3cret".into());
    good.headers.insert("role".into(), "dev".into());

    for (conn, token) in [(1, None), (2, Some("s3creT")), (3, Some("s3cret-longer"))] {
        open(&mut hub, conn);
        let mut h = good.clone();
        h.token = token.map(Into::into);
        let seen = say_hello(&mut hub, conn, &h);
        assert!(
            matches!(&seen[..], [Seen::Refused(c, 1, Refused { code: RefuseCode::Unauthorized, .. }), Seen::Close(c2)] if *c == conn && *c2 == conn),
            "{seen:?}"
        );
    }
    // The token is checked before the verifier is bothered.
    assert!(calls.lock().unwrap().is_empty());

    open(&mut hub, 4);
    let mut guest = good.clone();
    guest.headers.insert("role".into(), "guest".into());
    let seen = say_hello(&mut hub, 4, &guest);
    assert_eq!(
        seen,
        [
            Seen::Refused(4, 1, Refused { code: RefuseCode::Unauthorized, reason: "developers only".into() }),
            Seen::Close(4)
        ]
    );
    open(&mut hub, 5);
    assert_eq!(say_hello(&mut hub, 5, &good).last(), Some(&Seen::Joined("d".into())));
    assert_eq!(*calls.lock().unwrap(), [("dev".to_string(), ip(4)), ("dev".to_string(), ip(5))]);
}

#[test]
fn before_hello_anything_else_is_a_bad_request() {
    let mut hub = new_hub(HubConfig::new());
    open(&mut hub, 1);
    let seen = note(&mut hub, 1, &ToHub::Broadcast { op: "x".into(), data: doc! {} });
    bad_request(1, 0, &seen);
    // Closed, so later frames are dropped, and the hello is too late.
    assert_eq!(say_hello(&mut hub, 1, &hello("a", Some("a"))), []);
    assert!(hub.is_empty());

    // A request that is not a hello (garbage, another op, a hello missing its name) → its id.
    let not_hellos = [
        Bytes::from_static(b"garbage"),
        Bytes::from(doc! { "t": "broadcast", "op": "x", "data": {} }.to_vec().unwrap()),
        Bytes::from(doc! { "t": "hello", "game": "g" }.to_vec().unwrap()),
        Bytes::from(doc! { "t": "hello", "name": "n", "game": "g", "unique": "" }.to_vec().unwrap()),
    ];
    for (i, payload) in not_hellos.into_iter().enumerate() {
        let conn = 10 + i as u64;
        open(&mut hub, conn);
        bad_request(conn, 9, &request(&mut hub, conn, 9, payload));
    }
    // An error frame before the hello is not a hello either; heartbeats are fine.
    open(&mut hub, 20);
    assert_eq!(event(&mut hub, 20, Event::Heartbeat { seq: 1 }), []);
    bad_request(20, 0, &event(&mut hub, 20, Event::ErrorPayload { id: 0, payload: Bytes::new() }));
    assert!(hub.is_empty());
}

#[test]
fn after_joining_requests_and_malformed_notifications_are_refused_and_the_client_leaves() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "b");
    bad_request(2, 2, &say_hello_again(&mut hub, 2));
    // Leaving: nothing more is sent to it, and it still holds its unique until it is closed.
    assert_eq!(note(&mut hub, 1, &ToHub::Broadcast { op: "x".into(), data: doc! {} }), []);
    assert_eq!(hub.conn_of("b"), Some(2));
    assert_eq!(
        closed(&mut hub, 2, "eof"),
        [
            Seen::Note(1, FromHub::Disconnected { client: client("b", "b", 2), reason: "bad_request".into() }),
            Seen::Left("b".into(), "bad_request".into()),
        ]
    );

    join(&mut hub, 3, "c");
    let malformed = doc! { "t": "at", "to": "c", "op": "x", "data": {} };
    bad_request(3, 0, &event(&mut hub, 3, Event::Notification { payload: Bytes::from(malformed.to_vec().unwrap()) }));
    join(&mut hub, 4, "d");
    bad_request(4, 0, &event(&mut hub, 4, Event::Notification { payload: Bytes::from_static(b"\x05\0\0\0\0") }));
}

fn say_hello_again(hub: &mut Hub, conn: ConnId) -> Vec<Seen> {
    request(hub, conn, 2, hello("again", None).to_bytes().unwrap())
}

#[test]
fn bye_closes_and_the_close_reports_its_reason() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "b");
    join(&mut hub, 3, "c");
    assert_eq!(note(&mut hub, 2, &ToHub::Bye { reason: Some("done for today".into()) }), [Seen::Close(2)]);
    let gone = closed(&mut hub, 2, "eof");
    let disconnected = FromHub::Disconnected { client: client("b", "b", 2), reason: "done for today".into() };
    assert_eq!(
        gone,
        [
            Seen::Note(1, disconnected.clone()),
            Seen::Note(3, disconnected),
            Seen::Left("b".into(), "done for today".into())
        ]
    );
    assert_eq!(note(&mut hub, 3, &ToHub::Bye { reason: None }), [Seen::Close(3)]);
    assert_eq!(closed(&mut hub, 3, "eof").last(), Some(&Seen::Left("c".into(), "bye".into())));
    assert_eq!(hub.clients().map(|c| c.unique.as_str()).collect::<Vec<_>>(), ["a"]);
}

#[test]
fn a_closed_connection_is_announced_with_the_glues_reason() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    join(&mut hub, 2, "b");
    join(&mut hub, 3, "c");
    let gone = closed(&mut hub, 1, "timeout");
    let disconnected = FromHub::Disconnected { client: client("a", "a", 1), reason: "timeout".into() };
    assert_eq!(
        gone,
        [Seen::Note(2, disconnected.clone()), Seen::Note(3, disconnected), Seen::Left("a".into(), "timeout".into())]
    );
    assert_eq!(hub.client("a"), None);
    // A connection that never joined leaves silently.
    open(&mut hub, 9);
    assert_eq!(closed(&mut hub, 9, "eof"), []);
    assert_eq!(hub.connections(), 2);
}

#[test]
fn caller_misuse_is_refused_and_changes_nothing() {
    let mut hub = new_hub(HubConfig::new());
    join(&mut hub, 1, "a");
    let refusals = [
        (HubInput::Opened { conn: 1, ip: ip(9) }, HubError::AlreadyOpen { conn: 1 }),
        (HubInput::Message { conn: 5, event: Event::Heartbeat { seq: 1 } }, HubError::UnknownConn { conn: 5 }),
        (HubInput::Closed { conn: 5, reason: "eof".into() }, HubError::UnknownConn { conn: 5 }),
    ];
    for (bad, error) in refusals {
        assert_eq!(hub.handle_input(NOW, Input::Command(bad)), Err(error.clone()));
        assert_eq!(error.fault(), Fault::Caller);
    }
    assert_eq!(hub.handle_input(NOW, Input::Eof), Err(HubError::UnexpectedInput));
    assert!(drain(&mut hub, NOW).events.is_empty());
    assert_eq!(hub.client("a"), Some(&client("a", "a", 1)));
    assert_eq!(hub.connections(), 1);
    // Once closed, the id is unknown again.
    closed(&mut hub, 1, "eof");
    assert_eq!(
        hub.handle_input(NOW, Input::Command(HubInput::Closed { conn: 1, reason: "eof".into() })),
        Err(HubError::UnknownConn { conn: 1 })
    );
}

#[test]
fn garbage_never_panics_the_hub() {
    fn prop(frames: Vec<(u8, Vec<u8>)>) -> TestResult {
        let mut hub = new_hub(HubConfig::new());
        join(&mut hub, 1, "a");
        open(&mut hub, 2);
        for (selector, bytes) in frames.into_iter().take(30) {
            // Half the time, a real document with a random `t` and fields, so decoding gets
            // past the BSON layer.
            let payload = if selector % 2 == 0 {
                Bytes::from(bytes)
            } else {
                let t = ["hello", "broadcast", "at", "omit", "datastore", "bye", "op", "x"][selector as usize % 8];
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let fields = doc! { "t": t, "name": &text, "game": 1, "op": &text, "to": [&text, 2], "data": { "k": &text }, "key": &text, "value": &text };
                Bytes::from(fields.to_vec().unwrap())
            };
            let conn = 1 + u64::from(selector % 3 == 0);
            let event = match selector % 5 {
                0 => Event::Request { id: 1 + u64::from(selector), payload },
                4 => Event::ErrorPayload { id: 0, payload },
                _ => Event::Notification { payload },
            };
            // Peer input is never the caller's fault: the hub takes it, whatever it is.
            if hub.handle_input(NOW, Input::Command(HubInput::Message { conn, event })).is_err() {
                return TestResult::failed();
            }
            let out = drain(&mut hub, NOW);
            for action in out.events {
                if let HubAction::Send { command: Command::Notify { payload }, .. } = action {
                    // Whatever the hub relays decodes.
                    if FromHub::from_bytes(&payload).is_err() {
                        return TestResult::failed();
                    }
                }
            }
        }
        TestResult::passed()
    }
    quickcheck(prop as fn(Vec<(u8, Vec<u8>)>) -> TestResult);
}

#[test]
fn a_connection_without_a_hello_is_refused_and_closed_when_its_time_is_up() {
    let timeout = switchboard_proto::Duration::from_secs(3);
    let mut hub = new_hub(HubConfig::new().with_hello_timeout(Some(timeout)));
    open(&mut hub, 1);
    let due = NOW.saturating_add(timeout);
    assert_eq!(drain(&mut hub, NOW).deadline, Some(due), "the hub asks to be woken at the deadline");
    // A second connection that says hello in time has no deadline any more.
    hub.handle_input(
        NOW.saturating_add(switchboard_proto::Duration::from_secs(1)),
        Input::Command(HubInput::Opened { conn: 2, ip: ip(2) }),
    )
    .unwrap();
    let welcomed = say_hello(&mut hub, 2, &hello("b", Some("b")));
    assert!(matches!(welcomed[..], [Seen::Welcome(2, 1, _), Seen::Joined(_)]), "{welcomed:?}");
    // One nanosecond before: nothing. At the deadline: refused and closed, once.
    let just_before = Instant::from_nanos(due.as_nanos() - 1);
    assert!(drain(&mut hub, just_before).events.is_empty());
    let out = drain(&mut hub, due);
    let seen: Vec<Seen> = out.events.into_iter().map(decode).collect();
    assert_eq!(
        seen,
        [
            Seen::Refused(1, 0, Refused { code: RefuseCode::BadRequest, reason: "no hello in time".into() }),
            Seen::Close(1)
        ]
    );
    assert_eq!(out.deadline, None, "the welcomed connection has no deadline");
    assert!(drain(&mut hub, due.saturating_add(timeout)).events.is_empty(), "refused once");
    // Its Closed is a plain goodbye; the welcomed client is untouched.
    assert_eq!(closed(&mut hub, 1, "closed"), []);
    assert_eq!(hub.len(), 1);

    // Without a timeout, a silent connection is never refused.
    let mut patient = new_hub(HubConfig::new().with_hello_timeout(None));
    open(&mut patient, 1);
    assert_eq!(drain(&mut patient, NOW.saturating_add(timeout * 1000)).deadline, None);
}
