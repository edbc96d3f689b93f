//! The router end to end (WIRE.md §5): one `router::Hub` and up to three `RouterClient`s, each
//! over a pair of message connections joined by in-memory pipes, driven by a sequence of
//! connects (with a fuzzer-chosen hello), client commands (`broadcast`, `at`, `omit`,
//! `datastore`, `bye`), closes, dropped connections and settling.
//!
//! Input: the client limit, the unique policy, the entropy seed, then operations.
//!
//! The glue plays the drivers: a side that finished closes its end of the pipe, so the other
//! reads EOF after the bytes in flight; nobody reads after `ReadClosed`; the hub's glue closes
//! a connection at its `ReadClosed`, and a client's application does too unless the script made
//! it linger (it goes on sending until the script closes it).
//!
//! Checks: after everything settles, every welcomed client still on the hub sees exactly the
//! hub's directory without itself (the same uniques, names, games, addresses and datastores),
//! and knows its own record as the hub does; no client is welcomed twice; an `op` reaches a
//! client only from a client the hub reported as joined; no event after `ReadClosed`; `Close`
//! is never refused; the hub acts only on connections the glue opened, and the network always
//! settles.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{check_read_side, drain, Script};
use switchboard_proto::message::{self, ErrorPayload, MessageConfig, MessageConnection};
use switchboard_proto::router::{
    ClientCommand, ClientConfig, ClientDoc, ClientEvent, FromHub, Hello, Hub, HubAction, HubConfig, HubInput,
    RouterClient, UniquePolicy,
};
use switchboard_proto::{Input, Instant, Machine, SplitMix64};

const SLOTS: usize = 3;
const UNIQUES: [&str; 3] = ["a", "b", "c"];

/// One client, the hub's end of its connection, and the bytes in flight between them.
struct Line {
    conn: u64,
    client: RouterClient,
    server: MessageConnection,
    upstream: BytesMut,
    downstream: BytesMut,
    client_done: bool,
    server_done: bool,
    /// Whether the client's driver still reads: no EOF fed, no `ReadClosed` reported.
    client_reading: bool,
    server_reading: bool,
    /// Whether the client and the server reported `ReadClosed`.
    client_read_closed: bool,
    server_read_closed: bool,
    /// Whether the client's application stays open after the hub's EOF (until the script closes).
    linger: bool,
    /// Whether the client's application closed it.
    client_closed: bool,
    welcomes: usize,
}

impl Line {
    fn closed(&self) -> bool {
        self.client_done && self.server_done
    }
}

struct Net {
    hub: Hub,
    lines: [Option<Line>; SLOTS],
    next_conn: u64,
    /// Every unique the hub reported as joined.
    ever_joined: BTreeSet<String>,
}

impl Net {
    /// Move bytes, events and actions until nothing moves (bounded: every round must move
    /// something, and there is only so much to move).
    fn settle(&mut self, now: Instant) {
        for _ in 0..1000 {
            let mut moved = false;
            for line in self.lines.iter_mut().flatten() {
                if !line.client_done {
                    let out = drain(&mut line.client, now);
                    check_read_side(&mut line.client_read_closed, &out);
                    moved |= !out.transmits.is_empty() || out.finished.is_some();
                    line.upstream.extend_from_slice(&out.wire());
                    for event in &out.events {
                        if matches!(event, ClientEvent::Welcome { .. }) {
                            line.welcomes += 1;
                        }
                        if let ClientEvent::Hub(FromHub::Op { from, .. }) = event {
                            assert!(self.ever_joined.contains(from), "an op from {from}, who never joined");
                        }
                    }
                    moved |= !out.events.is_empty();
                    line.client_done = out.finished.is_some();
                    if out.read_closed {
                        line.client_reading = false;
                        if !line.client_done && !line.linger {
                            line.client.handle_input(now, Input::Close).expect("Close is never refused");
                            line.client_closed = true;
                            moved = true;
                        }
                    }
                }
                if !line.server_done {
                    let out = drain(&mut line.server, now);
                    check_read_side(&mut line.server_read_closed, &out);
                    moved |= !out.transmits.is_empty() || !out.events.is_empty() || out.finished.is_some();
                    line.downstream.extend_from_slice(&out.wire());
                    for event in out.events {
                        let input = HubInput::Message { conn: line.conn, event };
                        self.hub
                            .handle_input(now, Input::Command(input))
                            .expect("the hub takes its connection's events");
                    }
                    if let Some(end) = out.finished {
                        let reason = match end {
                            Ok(()) => "closed".to_owned(),
                            Err(message::Error::PeerDead { .. }) => "timeout".to_owned(),
                            Err(e) => e.to_string(),
                        };
                        self.hub
                            .handle_input(now, Input::Command(HubInput::Closed { conn: line.conn, reason }))
                            .expect("Closed");
                        line.server_done = true;
                    } else if out.read_closed {
                        // The hub's glue closes a connection whose client closed its side.
                        line.server_reading = false;
                        line.server.handle_input(now, Input::Close).expect("Close is never refused");
                        moved = true;
                    }
                }
                if !line.upstream.is_empty() && !line.server_done && line.server_reading {
                    line.server.handle_input(now, Input::Stream(&mut line.upstream)).expect("bytes for the hub");
                    moved = true;
                }
                if !line.downstream.is_empty() && !line.client_done && line.client_reading {
                    line.client.handle_input(now, Input::Stream(&mut line.downstream)).expect("bytes for the client");
                    moved = true;
                }
                // A side that finished closes its end of the stream: the other reads EOF after the
                // bytes in flight.
                if line.client_done && line.upstream.is_empty() && !line.server_done && line.server_reading {
                    line.server_reading = false;
                    line.server.handle_input(now, Input::Eof).expect("EOF while reading");
                    moved = true;
                }
                if line.server_done && line.downstream.is_empty() && !line.client_done && line.client_reading {
                    line.client_reading = false;
                    line.client.handle_input(now, Input::Eof).expect("EOF while reading");
                    moved = true;
                }
            }
            for action in drain(&mut self.hub, now).events {
                moved = true;
                match action {
                    HubAction::Send { conn, command } => {
                        let line = line_of(&mut self.lines, conn);
                        // A connection that is ending refuses it (`Finished`): the hub learns of the end
                        // only at `Closed`, as a real glue's hub does.
                        match line.server.handle_input(now, Input::Command(command)) {
                            Ok(()) | Err(message::Error::Finished) => {}
                            Err(e) => panic!("the hub's command was refused: {e}"),
                        }
                    }
                    HubAction::Close { conn } => {
                        let line = line_of(&mut self.lines, conn);
                        if !line.server_done {
                            line.server.handle_input(now, Input::Close).expect("Close is never refused");
                        }
                    }
                    HubAction::Joined(client) => {
                        self.ever_joined.insert(client.unique);
                    }
                    HubAction::Left { .. } => {}
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// Every welcomed client the hub still lists sees the hub's directory, less itself.
    fn check_views(&self) {
        for line in self.lines.iter().flatten() {
            assert!(line.welcomes <= 1, "welcomed twice");
            let Some(me) = line.client.me() else { continue };
            if line.client_done || self.hub.conn_of(&me.unique) != Some(line.conn) {
                continue;
            }
            let hub_view: BTreeMap<&str, &ClientDoc> = self.hub.clients().map(|c| (c.unique.as_str(), c)).collect();
            assert_eq!(hub_view.get(me.unique.as_str()), Some(&me), "the client's own record differs from the hub's");
            let seen: BTreeMap<&str, &ClientDoc> = line.client.clients().iter().map(|(u, c)| (u.as_str(), c)).collect();
            let expected: BTreeMap<&str, &ClientDoc> =
                hub_view.into_iter().filter(|(unique, _)| *unique != me.unique).collect();
            assert_eq!(seen, expected, "client {} sees another directory than the hub's", me.unique);
        }
    }
}

/// The line of a connection the hub acts on: it must be one the glue opened.
fn line_of(lines: &mut [Option<Line>; SLOTS], conn: u64) -> &mut Line {
    lines.iter_mut().flatten().find(|line| line.conn == conn).expect("the hub acts on a connection the glue opened")
}

/// What a client's application does: a command, or `None` for closing (`Input::Close`).
fn command(script: &mut Script<'_>) -> Option<ClientCommand> {
    let data = bson::doc! { "n": i32::from(script.byte()) };
    let to = [UNIQUES[usize::from(script.byte()) % UNIQUES.len()]];
    Some(match script.byte() % 6 {
        0 => ClientCommand::broadcast("op", data),
        1 => ClientCommand::at(to, "op", data),
        2 => ClientCommand::omit(to, "op", data),
        3 => ClientCommand::datastore(["k", "l"][usize::from(script.byte() & 1)], script.string().replace('\0', "")),
        4 => ClientCommand::bye(None),
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let max_clients = usize::from(script.byte() % 4);
    let policy = if script.byte() & 1 == 0 { UniquePolicy::Replace } else { UniquePolicy::Reject };
    let config = HubConfig::new().with_max_clients(max_clients).with_policy(policy);
    let hub = Hub::new(config, Box::new(SplitMix64::new(u64::from(script.byte()))));
    let mut net = Net { hub, lines: [None, None, None], next_conn: 0, ever_joined: BTreeSet::new() };
    let now = Instant::ZERO;
    let server_config = MessageConfig::default().with_error_payload(ErrorPayload::Raw);

    while !script.is_empty() {
        let slot = usize::from(script.byte()) % SLOTS;
        match script.byte() % 4 {
            0 => {
                let hello = Hello::new(script.string(), "game");
                let choice = script.byte();
                let hello = match choice % 4 {
                    0 => hello,
                    u => hello.with_unique(UNIQUES[usize::from(u) - 1]),
                };
                let linger = choice & 4 == 4;
                if net.lines[slot].as_ref().is_some_and(|line| !line.closed()) {
                    continue;
                }
                let conn = net.next_conn;
                net.next_conn += 1;
                let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, slot as u8 + 1));
                net.hub
                    .handle_input(now, Input::Command(HubInput::Opened { conn, ip }))
                    .expect("a fresh connection opens");
                net.lines[slot] = Some(Line {
                    conn,
                    client: RouterClient::new(ClientConfig::new(MessageConfig::default(), hello))
                        .expect("a valid client"),
                    server: MessageConnection::new(server_config).expect("a valid server"),
                    upstream: BytesMut::new(),
                    downstream: BytesMut::new(),
                    client_done: false,
                    server_done: false,
                    client_reading: true,
                    server_reading: true,
                    client_read_closed: false,
                    server_read_closed: false,
                    linger,
                    client_closed: false,
                    welcomes: 0,
                });
            }
            1 => {
                let command = command(&mut script);
                if let Some(line) = net.lines[slot].as_mut().filter(|line| !line.client_done) {
                    match command {
                        // Refusals (not welcomed yet) are the client's documented answer; not under test here.
                        Some(command) => drop(line.client.handle_input(now, Input::Command(command))),
                        None => {
                            line.client.handle_input(now, Input::Close).expect("Close is never refused");
                            line.client_closed = true;
                        }
                    }
                }
            }
            2 => {
                // The connection drops: both ends read EOF, with whatever was in flight lost; the
                // transport is gone, so the client's application closes too.
                if let Some(line) = net.lines[slot].as_mut() {
                    line.upstream.clear();
                    line.downstream.clear();
                    if !line.client_done && !line.client_closed {
                        if line.client_reading {
                            line.client_reading = false;
                            line.client.handle_input(now, Input::Eof).expect("EOF while reading");
                        }
                        line.client.handle_input(now, Input::Close).expect("Close is never refused");
                        line.client_closed = true;
                    }
                    if !line.server_done && line.server_reading {
                        line.server_reading = false;
                        line.server.handle_input(now, Input::Eof).expect("EOF while reading");
                    }
                }
            }
            _ => {
                net.settle(now);
                net.check_views();
            }
        }
    }
    net.settle(now);
    net.check_views();
});
