//! `serve` over Unix domain sockets: concurrent clients, graceful shutdown with echoes in flight,
//! and a shutdown that does not depend on the socket file.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use common::{finished_channel, frame, numbered, Echo, Finished, GUARD};
use switchboard_proto::stage::{self, Command, Event, FramingConfig, PacketConnection};
use switchboard_proto::Machine;
use switchboard_std::{serve, spawn, Control, DriverError, Notice, Running, Server, Session, Settings, SocketOptions};

/// A fresh socket path in the temp directory, removed again when dropped.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("switchboard-std-unix-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn echo_server(path: &Path, config: FramingConfig) -> (Server<UnixAddr>, mpsc::Receiver<Finished<UnixAddr>>) {
    let (finished, results) = finished_channel();
    let server = serve(
        UnixListener::bind(path).unwrap(),
        Settings::packet(),
        move |_| PacketConnection::new(config),
        move |_| Echo { finished: finished.clone() },
    )
    .unwrap();
    (server, results)
}

fn client(path: &Path, config: FramingConfig) -> Running<PacketConnection> {
    spawn(UnixStream::connect(path).unwrap(), PacketConnection::new(config), Settings::packet()).unwrap()
}

/// The body of client `c`'s frame `i`: its number, then bytes that depend on the client, of a
/// size that varies so frames straddle reads.
fn body(c: u32, i: u32) -> bytes::Bytes {
    let mut body = numbered(i, 4 + ((i as usize * 131 + c as usize * 17) % 3000)).to_vec();
    body[4..].iter_mut().for_each(|b| *b ^= c as u8);
    body.into()
}

#[test]
fn unix_echo_with_concurrent_clients() {
    const CLIENTS: u32 = 6;
    const FRAMES: u32 = 300;
    let path = SocketPath::new();
    let config = FramingConfig::packet(64 * 1024, 0);
    let (server, results) = echo_server(&path.0, config);
    assert_eq!(server.local_addr().as_pathname(), Some(path.0.as_path()));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let running = client(&path.0, config);
            thread::spawn(move || {
                let sender = running.handle.clone();
                let producer = thread::spawn(move || {
                    for i in 0..FRAMES {
                        sender.send(Command::SendBody(body(c, i))).unwrap();
                    }
                });
                for i in 0..FRAMES {
                    let notice = running.events.recv_timeout(GUARD).expect("echo in time").expect("driver running");
                    let Notice::Event(Event::Frame(echo)) = notice else { panic!("unexpected {notice:?}") };
                    assert_eq!(echo, frame(&body(c, i)), "client {c}, frame {i}");
                }
                producer.join().unwrap();
                running.close_and_join().unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    for _ in 0..CLIENTS {
        let (peer, result) = results.recv_timeout(GUARD).unwrap();
        assert!(peer.is_unnamed(), "the clients did not bind a path: {peer:?}");
        result.unwrap();
    }
    assert_eq!(server.accepted(), u64::from(CLIENTS));
    assert_eq!(server.active(), 0);
    server.shutdown();
}

/// An echo session that says when it has seen `expect` frames, and how its connection ended.
struct CountingEcho {
    expect: u32,
    count: u32,
    seen: mpsc::Sender<()>,
    finished: mpsc::Sender<Finished<UnixAddr>>,
}

impl Session<PacketConnection, UnixAddr> for CountingEcho {
    fn on_notice(&mut self, notice: Notice<Event, stage::Error>, control: &mut Control<Command>) {
        if let Notice::Event(Event::Frame(frame)) = notice {
            control.send(Command::Send(frame));
            self.count += 1;
            if self.count == self.expect {
                self.seen.send(()).unwrap();
            }
        }
    }

    fn on_finished(&mut self, peer: UnixAddr, result: Result<(), DriverError<stage::Error>>) {
        self.finished.send((peer, result)).unwrap();
    }
}

#[test]
fn unix_shutdown_flushes_every_echo_accepted() {
    const CLIENTS: u32 = 2;
    const FRAMES: u32 = 12;
    const SIZE: usize = 4000;
    let path = SocketPath::new();
    // The echoes (48 KB a client) stay within the machine's write budget (64 KB), so the server
    // reads every frame; with a 4 KB send buffer most of them wait in the server's queue, since
    // the clients read nothing until the shutdown has begun.
    let config = FramingConfig::packet(64 * 1024, 0);
    assert!(FRAMES as usize * (SIZE + 4) < PacketConnection::new(config).write_budget());
    let (seen_tx, seen) = mpsc::channel();
    let (finished, results) = finished_channel();
    let server = serve(
        UnixListener::bind(&path.0).unwrap(),
        Settings::packet().socket(SocketOptions::new().send_buffer(4096)),
        move |_| PacketConnection::new(config),
        move |_| CountingEcho { expect: FRAMES, count: 0, seen: seen_tx.clone(), finished: finished.clone() },
    )
    .unwrap();
    let body = |c: u32, i: u32| numbered((c << 16) | i, SIZE);
    let mut clients: Vec<UnixStream> = (0..CLIENTS).map(|_| UnixStream::connect(&path.0).unwrap()).collect();
    for (c, stream) in clients.iter_mut().enumerate() {
        for i in 0..FRAMES {
            stream.write_all(&frame(&body(c as u32, i))).unwrap();
        }
    }
    // Every frame reached its server session (so was accepted there) before the shutdown.
    for _ in 0..CLIENTS {
        seen.recv_timeout(GUARD).expect("the server saw every frame");
    }
    let (done_tx, done) = mpsc::channel();
    let stopper = thread::spawn(move || {
        server.shutdown();
        done_tx.send(()).unwrap();
    });
    for (c, mut stream) in clients.into_iter().enumerate() {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap(); // every echo, then the server's EOF
        let expected: Vec<u8> = (0..FRAMES).flat_map(|i| frame(&body(c as u32, i)).to_vec()).collect();
        assert!(got == expected, "client {c}: {} bytes of {}", got.len(), expected.len());
        drop(stream); // our EOF lets the server's connection finish
    }
    done.recv_timeout(GUARD).expect("the shutdown finished");
    stopper.join().unwrap();
    for _ in 0..CLIENTS {
        results.recv_timeout(GUARD).unwrap().1.unwrap();
    }
}

#[test]
fn shutdown_does_not_need_the_socket_file() {
    let path = SocketPath::new();
    let config = FramingConfig::packet(1024, 0);
    let (server, _results) = echo_server(&path.0, config);
    // With the file gone nobody can connect to the listener, not even to wake it.
    std::fs::remove_file(&path.0).unwrap();
    let (done_tx, done) = mpsc::channel();
    let stopper = thread::spawn(move || {
        server.shutdown();
        done_tx.send(()).unwrap();
    });
    done.recv_timeout(GUARD).expect("the accept loop stopped");
    stopper.join().unwrap();
}
