//! The seed's `broker.f(id)`, `broker.close(id)` and `broker.signal(id, v)` on a real loopback
//! server: every served connection has an id its session sees ([`Control::id`]); the server
//! hands out a typed handle by id ([`Server::connection`]), closes one by id ([`Server::close`])
//! while the others go on, and hands a session an event as if it had arrived
//! ([`Server::signal`]).

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};

use bytes::Bytes;
use common::GUARD;
use switchboard_proto::stage::{self, Command, Event, FramingConfig, PacketConnection};
use switchboard_std::{serve, spawn, Control, DriverError, Notice, Running, Server, Session, Settings};

/// Echoes every frame, and reports each frame's body with the id of the connection it came on,
/// and the id of each connection that ended.
struct Tagged {
    id: Option<u64>,
    frames: Sender<(u64, Bytes)>,
    ended: Sender<u64>,
}

impl Session<PacketConnection> for Tagged {
    fn on_notice(&mut self, notice: Notice<Event, stage::Error>, control: &mut Control<Command>) {
        let id = control.id().expect("a served connection has an id");
        self.id = Some(id);
        if let Notice::Event(Event::Frame(frame)) = notice {
            let _ = self.frames.send((id, frame.slice(4..)));
            control.send(Command::Send(frame));
        }
    }

    fn on_finished(&mut self, _peer: SocketAddr, _result: Result<(), DriverError<stage::Error>>) {
        if let Some(id) = self.id {
            let _ = self.ended.send(id);
        }
    }
}

fn config() -> FramingConfig {
    FramingConfig::packet(64 * 1024, 0)
}

fn tagged_server() -> (Server, Receiver<(u64, Bytes)>, Receiver<u64>) {
    let (frames, frames_rx) = mpsc::channel();
    let (ended, ended_rx) = mpsc::channel();
    let server = serve(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Settings::packet(),
        |_| PacketConnection::new(config()),
        move |_| Tagged { id: None, frames: frames.clone(), ended: ended.clone() },
    )
    .unwrap();
    (server, frames_rx, ended_rx)
}

fn client(server: &Server) -> Running<PacketConnection> {
    spawn(TcpStream::connect(server.local_addr()).unwrap(), PacketConnection::new(config()), Settings::packet())
        .unwrap()
}

/// The next frame body a client receives; panics if none comes within the guard time.
fn next_body(client: &Running<PacketConnection>) -> Bytes {
    loop {
        match client.events.recv_timeout(GUARD).expect("no frame within the guard time") {
            Some(Notice::Event(Event::Frame(frame))) => return frame.slice(4..),
            Some(_) => continue,
            None => panic!("the client's connection ended"),
        }
    }
}

/// Say hello from `client` and learn the server-side id of its connection.
fn hello(client: &Running<PacketConnection>, frames: &Receiver<(u64, Bytes)>, name: &'static str) -> u64 {
    client.handle.send(Command::SendBody(Bytes::from_static(name.as_bytes()))).unwrap();
    assert_eq!(next_body(client), name.as_bytes(), "the echo");
    let (id, body) = frames.recv_timeout(GUARD).unwrap();
    assert_eq!(body, name.as_bytes());
    id
}

#[test]
fn send_to_a_connection_by_id_then_close_it_while_another_goes_on() {
    let (server, frames, ended) = tagged_server();
    let a = client(&server);
    let id_a = hello(&a, &frames, "a");
    let b = client(&server);
    let id_b = hello(&b, &frames, "b");
    assert_ne!(id_a, id_b);
    assert_eq!(server.active(), 2);

    // broker.f(id).commit(...): a typed handle reaches exactly that connection.
    let to_b = server.connection(id_b).expect("b is live");
    to_b.send(Command::SendBody(Bytes::from_static(b"for b only"))).unwrap();
    assert_eq!(next_body(&b), &b"for b only"[..]);
    server.connection(id_a).unwrap().send(Command::SendBody(Bytes::from_static(b"for a"))).unwrap();
    assert_eq!(next_body(&a), &b"for a"[..]);
    assert!(server.connection(u64::MAX).is_none());
    assert!(!server.close(u64::MAX));

    // broker.close(id): a ends (the client sees its stream end), b keeps going.
    assert!(server.close(id_a));
    assert_eq!(ended.recv_timeout(GUARD).unwrap(), id_a);
    loop {
        match a.events.recv_timeout(GUARD).expect("a was not closed within the guard time") {
            None => break,
            Some(Notice::Event(Event::Frame(f))) => panic!("unexpected frame on a: {f:?}"),
            Some(_) => {}
        }
    }
    assert!(server.connection(id_a).is_none(), "an ended connection is gone from the registry");
    assert!(!server.close(id_a));
    assert_eq!(server.active(), 1);

    b.handle.send(Command::SendBody(Bytes::from_static(b"still here"))).unwrap();
    assert_eq!(next_body(&b), &b"still here"[..]);
    assert_eq!(frames.recv_timeout(GUARD).unwrap(), (id_b, Bytes::from_static(b"still here")));
    to_b.send(Command::SendBody(Bytes::from_static(b"again"))).unwrap();
    assert_eq!(next_body(&b), &b"again"[..]);

    // A handle from `connection` does not hold the connection open against shutdown.
    server.shutdown();
    assert_eq!(ended.recv_timeout(GUARD).unwrap(), id_b);
    drop(to_b);
    b.close_and_join().unwrap();
    a.close_and_join().unwrap();
}

#[test]
fn ids_count_up_and_are_not_reused() {
    let (server, frames, ended) = tagged_server();
    let first = client(&server);
    let id_first = hello(&first, &frames, "first");
    first.close_and_join().unwrap();
    assert_eq!(ended.recv_timeout(GUARD).unwrap(), id_first);
    let second = client(&server);
    let id_second = hello(&second, &frames, "second");
    assert!(id_second > id_first);
    assert!(server.connection(id_first).is_none());
    second.close_and_join().unwrap();
}

/// A whole STAGE frame (header and body), as a received `Event::Frame` carries it.
fn whole(body: &[u8]) -> Event {
    let mut frame = ((stage::HEADER_LEN + body.len()) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    Event::Frame(Bytes::from(frame))
}

#[test]
fn a_signal_reaches_the_session_as_if_it_had_arrived() {
    let (server, frames, ended) = tagged_server();
    let a = client(&server);
    let id_a = hello(&a, &frames, "a");
    let b = client(&server);
    let id_b = hello(&b, &frames, "b");

    // broker.signal(id, v): the session of b sees the event like one from its peer (it reports
    // it with b's id and echoes it to b's client); a sees nothing.
    assert!(server.signal(id_b, whole(b"signalled")));
    assert_eq!(frames.recv_timeout(GUARD).unwrap(), (id_b, Bytes::from_static(b"signalled")));
    assert_eq!(next_body(&b), &b"signalled"[..]);
    assert!(!server.signal(u64::MAX, whole(b"nobody")), "an id never given out");

    // Several signals arrive in the order they were sent.
    assert!(server.signal(id_a, whole(b"one")));
    assert!(server.signal(id_a, whole(b"two")));
    assert_eq!(next_body(&a), &b"one"[..]);
    assert_eq!(next_body(&a), &b"two"[..]);

    a.close_and_join().unwrap();
    assert_eq!(ended.recv_timeout(GUARD).unwrap(), id_a);
    assert!(!server.signal(id_a, whole(b"late")), "an ended connection takes no signal");
    b.close_and_join().unwrap();
}
