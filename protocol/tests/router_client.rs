//! Router clients and a hub end to end, without sockets: each `RouterClient` is wired back to
//! back to its own hub-side `MessageConnection` (as the Pair harness in message_connection.rs
//! does), whose events go into the `Hub`, whose actions go back to those connections. Time is
//! injected.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bson::{doc, Document};
use bytes::BytesMut;
use switchboard_proto::machine::drain;
use switchboard_proto::message::{Command, Error as MessageError, ErrorPayload, MessageConfig, MessageConnection};
use switchboard_proto::router::{
    ClientCommand, ClientConfig, ClientDoc, ClientEvent, FromHub, Hello, Hub, HubAction, HubConfig, HubInput,
    RefuseCode, RouterClient, RouterError,
};
use switchboard_proto::{Blame, Duration, Fault, Input, Instant, Machine, SplitMix64};

const SECOND: Duration = Duration::from_secs(1);

/// One client and the hub's end of its connection.
struct Link {
    client: RouterClient,
    server: MessageConnection,
    to_server: BytesMut,
    to_client: BytesMut,
    client_end: Option<Result<(), RouterError>>,
    server_end: Option<Result<(), MessageError>>,
    /// EOF already handed to each side.
    eof_to_server: bool,
    eof_to_client: bool,
    events: Vec<ClientEvent>,
}

/// A hub and its clients; the client at index `i` is connection `i` at the hub.
struct Net {
    hub: Hub,
    links: Vec<Link>,
    server_config: MessageConfig,
    /// The hub's `Joined` / `Left` reports, as (unique, None) / (unique, Some(reason)).
    roster: Vec<(String, Option<String>)>,
}

impl Net {
    fn new(hub: HubConfig, server_config: MessageConfig) -> Self {
        let hub = Hub::new(hub, Box::new(SplitMix64::new(7)));
        let server_config = server_config.with_error_payload(ErrorPayload::Raw);
        Net { hub, links: Vec::new(), server_config, roster: Vec::new() }
    }

    /// Connect a client (from 10.0.0.<index+1>); returns its index.
    fn connect(&mut self, now: Instant, config: MessageConfig, hello: Hello) -> usize {
        let conn = self.links.len();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, conn as u8 + 1));
        self.hub.handle_input(now, Input::Command(HubInput::Opened { conn: conn as u64, ip })).unwrap();
        self.links.push(Link {
            client: RouterClient::new(ClientConfig::new(config, hello)).unwrap(),
            server: MessageConnection::new(self.server_config).unwrap(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            client_end: None,
            server_end: None,
            eof_to_server: false,
            eof_to_client: false,
            events: Vec::new(),
        });
        conn
    }

    fn join(&mut self, now: Instant, name: &str, unique: Option<&str>) -> usize {
        let i = self.connect(now, MessageConfig::default(), hello(name, unique));
        self.settle(now);
        assert!(self.links[i].client.is_welcomed(), "{:?}", self.links[i].events);
        i
    }

    fn command(&mut self, now: Instant, i: usize, command: ClientCommand) {
        self.links[i].client.handle_input(now, Input::Command(command)).unwrap();
    }

    /// Move bytes, events and actions until nothing moves.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            for (conn, link) in self.links.iter_mut().enumerate() {
                if link.client_end.is_none() {
                    let out = drain(&mut link.client, now);
                    moved |= !out.transmits.is_empty() || !out.events.is_empty() || out.finished.is_some();
                    link.to_server.extend_from_slice(&out.wire());
                    link.events.extend(out.events);
                    link.client_end = out.finished;
                    if out.read_closed {
                        // The hub is done: so is the application.
                        link.client.handle_input(now, Input::Close).unwrap();
                        moved = true;
                    }
                }
                if link.server_end.is_none() {
                    let out = drain(&mut link.server, now);
                    moved |= !out.transmits.is_empty() || !out.events.is_empty() || out.finished.is_some();
                    link.to_client.extend_from_slice(&out.wire());
                    for event in out.events {
                        let input = HubInput::Message { conn: conn as u64, event };
                        self.hub.handle_input(now, Input::Command(input)).unwrap();
                    }
                    if out.read_closed {
                        // The glue closes a client's connection once the client stopped sending.
                        link.server.handle_input(now, Input::Close).unwrap();
                        moved = true;
                    }
                    if let Some(end) = out.finished {
                        // The glue's reading of a message connection's end.
                        let reason = match &end {
                            Err(MessageError::PeerDead { .. }) => "timeout".to_string(),
                            Err(e) => e.to_string(),
                            Ok(()) => "closed".to_string(),
                        };
                        let input = HubInput::Closed { conn: conn as u64, reason };
                        self.hub.handle_input(now, Input::Command(input)).unwrap();
                        link.server_end = Some(end);
                    }
                }
                // Bytes first, then the end of the stream.
                if !link.to_server.is_empty() && link.server_end.is_none() {
                    link.server.handle_input(now, Input::Stream(&mut link.to_server)).unwrap();
                }
                if !link.to_client.is_empty() && link.client_end.is_none() {
                    link.client.handle_input(now, Input::Stream(&mut link.to_client)).unwrap();
                }
                if link.client_end.is_some() && !link.eof_to_server && link.server_end.is_none() {
                    link.eof_to_server = true;
                    moved = true;
                    link.server.handle_input(now, Input::Eof).unwrap();
                }
                if link.server_end.is_some() && !link.eof_to_client && link.client_end.is_none() {
                    link.eof_to_client = true;
                    moved = true;
                    link.client.handle_input(now, Input::Eof).unwrap();
                }
            }
            let actions = drain(&mut self.hub, now).events;
            moved |= !actions.is_empty();
            for action in actions {
                match action {
                    HubAction::Send { conn, command } => {
                        self.links[conn as usize].server.handle_input(now, Input::Command(command)).unwrap();
                    }
                    HubAction::Close { conn } => {
                        let link = &mut self.links[conn as usize];
                        link.server.handle_input(now, Input::Close).unwrap();
                    }
                    HubAction::Joined(client) => self.roster.push((client.unique, None)),
                    HubAction::Left { client, reason } => self.roster.push((client.unique, Some(reason))),
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Every client's events since the last call.
    fn take_events(&mut self) -> Vec<Vec<ClientEvent>> {
        self.links.iter_mut().map(|l| std::mem::take(&mut l.events)).collect()
    }

    fn uniques_seen_by(&self, i: usize) -> Vec<&str> {
        self.links[i].client.clients().keys().map(String::as_str).collect()
    }
}

fn hello(name: &str, unique: Option<&str>) -> Hello {
    Hello { name: name.into(), game: "game".into(), unique: unique.map(Into::into), ..Default::default() }
}

fn op(from: &str, name: &str, data: &Document) -> ClientEvent {
    ClientEvent::Hub(FromHub::Op { from: from.into(), op: name.into(), data: data.clone() })
}

#[test]
fn welcome_and_client_lists_converge() {
    let now = Instant::ZERO;
    let mut net = Net::new(HubConfig::new(), MessageConfig::default());
    let a = net.join(now, "alice", Some("a"));
    let b = net.join(now, "bob", None);
    let c = net.join(now, "carol", Some("c"));

    let events = net.take_events();
    assert_eq!(events[a][0], ClientEvent::Welcome { unique: "a".into(), ip: "10.0.0.1".into(), clients: vec![] });
    let b_unique = net.links[b].client.me().unwrap().unique.clone();
    assert_eq!(b_unique.len(), 16);
    assert_eq!(net.links[b].client.me().unwrap().fullname(), format!("bob[{b_unique}@10.0.0.2]"));

    // Everyone knows everyone else, exactly as the hub does.
    let hub_docs: BTreeMap<String, ClientDoc> = net.hub.clients().map(|d| (d.unique.clone(), d.clone())).collect();
    for i in [a, b, c] {
        let me = net.links[i].client.me().unwrap().clone();
        let mut expected = hub_docs.clone();
        assert_eq!(expected.remove(&me.unique), Some(me));
        assert_eq!(net.links[i].client.clients(), &expected);
    }
    assert!(
        matches!(&events[a][1..], [ClientEvent::Hub(FromHub::Connected(x)), ClientEvent::Hub(FromHub::Connected(y))] if x.name == "bob" && y.name == "carol")
    );
    assert_eq!(net.roster, [("a".into(), None), (b_unique, None), ("c".into(), None)]);
}

#[test]
fn operations_reach_exactly_the_right_clients() {
    let now = Instant::ZERO;
    let mut net = Net::new(HubConfig::new(), MessageConfig::default());
    for unique in ["a", "b", "c", "d"] {
        net.join(now, unique, Some(unique));
    }
    net.take_events();
    let data = doc! { "hp": 10, "pos": [1.5, 2.5] };

    net.command(now, 0, ClientCommand::broadcast("move", data.clone()));
    net.settle(now);
    let e = net.take_events();
    assert_eq!(e[0], []);
    for received in &e[1..] {
        assert_eq!(received, &[op("a", "move", &data)]);
    }

    let to = ["b", "b", "nobody", "a"];
    net.command(now, 0, ClientCommand::at(to, "whisper", data.clone()));
    net.settle(now);
    let e = net.take_events();
    assert_eq!(e, [vec![op("a", "whisper", &data)], vec![op("a", "whisper", &data)], vec![], vec![]]);

    net.command(now, 3, ClientCommand::omit(["b"], "shout", data.clone()));
    net.settle(now);
    let e = net.take_events();
    assert_eq!(e, [vec![op("d", "shout", &data)], vec![], vec![op("d", "shout", &data)], vec![]]);

    net.command(now, 2, ClientCommand::datastore("team", "red"));
    net.settle(now);
    let e = net.take_events();
    let stored = ClientEvent::Hub(FromHub::Datastore { unique: "c".into(), key: "team".into(), value: "red".into() });
    assert_eq!(e, [vec![stored.clone()], vec![stored.clone()], vec![], vec![stored]]);
    assert_eq!(net.links[0].client.clients()["c"].datastore["team"], "red");
    assert_eq!(net.links[2].client.me().unwrap().datastore["team"], "red");

    // A late joiner finds it in its welcome.
    let e = net.join(now, "e", Some("e"));
    assert_eq!(net.links[e].client.clients()["c"].datastore["team"], "red");
    assert_eq!(net.uniques_seen_by(e), ["a", "b", "c", "d"]);
}

#[test]
fn commands_before_the_welcome_are_refused() {
    let now = Instant::ZERO;
    let mut net = Net::new(HubConfig::new(), MessageConfig::default());
    let a = net.connect(now, MessageConfig::default(), hello("a", Some("a")));
    let refused = net.links[a].client.handle_input(now, Input::Command(ClientCommand::bye(None)));
    assert_eq!(refused, Err(RouterError::NotWelcomed));
    assert_eq!(RouterError::NotWelcomed.fault(), Fault::Caller);
    net.settle(now);
    assert!(net.links[a].client.is_welcomed());
}

#[test]
fn a_refused_client_ends_with_refused() {
    let now = Instant::ZERO;
    let mut net = Net::new(HubConfig::new().with_token("t0k3n"), MessageConfig::default());
    let mut good = hello("a", Some("a"));
    good.token = Some("t0k3n".into());
    let a = net.connect(now, MessageConfig::default(), good);
    let b = net.connect(now, MessageConfig::default(), hello("b", Some("b")));
    net.settle(now);
    assert!(net.links[a].client.is_welcomed());
    let end = net.links[b].client_end.clone().expect("the refused client ended");
    let Err(error) = end else { panic!("refused, yet ended cleanly") };
    assert!(matches!(&error, RouterError::Refused { code: RefuseCode::Unauthorized, .. }), "{error:?}");
    assert_eq!(error.fault(), Fault::Peer);
    // The hub closed the refused connection; the welcomed client never heard of it.
    assert!(net.links[b].server_end.is_some());
    assert_eq!(
        net.take_events()[a],
        [ClientEvent::Welcome { unique: "a".into(), ip: "10.0.0.1".into(), clients: vec![] }]
    );
    assert_eq!(net.hub.len(), 1);
}

#[test]
fn bye_and_replacement_end_sessions_and_the_others_see_it() {
    let now = Instant::ZERO;
    let mut net = Net::new(HubConfig::new(), MessageConfig::default());
    let a = net.join(now, "a", Some("a"));
    let b = net.join(now, "b", Some("b"));
    net.take_events();

    net.command(now, b, ClientCommand::bye(Some("later")));
    net.settle(now);
    assert_eq!(net.links[b].client_end, Some(Ok(())));
    let e = net.take_events();
    assert!(
        matches!(&e[a][..], [ClientEvent::Hub(FromHub::Disconnected { client, reason })] if client.unique == "b" && reason == "later")
    );
    assert_eq!(net.uniques_seen_by(a), Vec::<&str>::new());

    let a2 = net.join(now, "a-again", Some("a"));
    let e = net.take_events();
    assert_eq!(e[a], [ClientEvent::Hub(FromHub::Closing { reason: "replaced".into() })]);
    assert_eq!(net.links[a].client_end, Some(Ok(())));
    assert_eq!(net.links[a2].client.me().unwrap().name, "a-again");
    assert_eq!(net.roster.last(), Some(&("a".to_string(), None)));
    assert_eq!(
        net.roster[net.roster.len() - 2..],
        [("a".to_string(), Some("replaced".to_string())), ("a".to_string(), None)]
    );
}

#[test]
fn a_silent_client_is_dropped_and_the_others_see_a_timeout() {
    let server = MessageConfig::default().with_heartbeat(Some(SECOND), Some(5 * SECOND));
    let chatty = MessageConfig::default().with_heartbeat(Some(SECOND), None);
    let mut net = Net::new(HubConfig::new(), server);
    let t0 = Instant::ZERO;
    let a = net.connect(t0, chatty, hello("a", Some("a")));
    let quiet = net.connect(t0, MessageConfig::default(), hello("q", Some("q")));
    let c = net.connect(t0, chatty, hello("c", Some("c")));
    net.settle(t0);
    net.take_events();

    let mut now = t0;
    for _ in 0..4 {
        now = now + SECOND;
        net.settle(now);
    }
    // Four seconds of silence: still there.
    assert_eq!(net.hub.len(), 3);
    assert!(net.take_events().iter().all(Vec::is_empty));

    now = t0 + 5 * SECOND;
    net.settle(now);
    assert!(matches!(net.links[quiet].server_end, Some(Err(MessageError::PeerDead { .. }))));
    let e = net.take_events();
    for i in [a, c] {
        assert!(
            matches!(&e[i][..], [ClientEvent::Hub(FromHub::Disconnected { client, reason })] if client.unique == "q" && reason == "timeout"),
            "{:?}",
            e[i]
        );
    }
    assert_eq!(net.roster.last(), Some(&("q".to_string(), Some("timeout".to_string()))));
    // The chatty ones are alive well past dead_after.
    for _ in 0..10 {
        now = now + SECOND;
        net.settle(now);
    }
    assert_eq!(net.hub.len(), 2);
    assert!(net.links[a].client.is_welcomed() && net.links[c].client.is_welcomed());
}

#[test]
fn a_hub_that_breaks_the_protocol_ends_the_client_with_a_peer_fault() {
    let now = Instant::ZERO;
    let mut client = RouterClient::new(ClientConfig::new(MessageConfig::default(), hello("a", None))).unwrap();
    let mut hub_side = MessageConnection::new(MessageConfig::default().with_error_payload(ErrorPayload::Raw)).unwrap();
    let mut wire = BytesMut::from(&drain(&mut client, now).wire()[..]);
    hub_side.handle_input(now, Input::Stream(&mut wire)).unwrap();
    assert_eq!(drain(&mut hub_side, now).events.len(), 1);
    // A welcome missing its client list.
    let payload = bytes::Bytes::from(doc! { "t": "welcome", "unique": "u", "ip": "i" }.to_vec().unwrap());
    hub_side.handle_input(now, Input::Command(Command::Respond { id: 1, payload })).unwrap();
    let mut wire = BytesMut::from(&drain(&mut hub_side, now).wire()[..]);
    client.handle_input(now, Input::Stream(&mut wire)).unwrap();
    let out = drain(&mut client, now);
    let Some(Err(error)) = out.finished else { panic!("{out:?}") };
    assert!(matches!(error, RouterError::Doc(_)), "{error:?}");
    assert_eq!(error.fault(), Fault::Peer);
    assert_eq!(client.handle_input(now, Input::Close), Ok(()), "closing what has ended is no news");
    assert_eq!(
        client.handle_input(now, Input::Command(ClientCommand::bye(None))),
        Err(RouterError::Message(MessageError::Finished))
    );
}
