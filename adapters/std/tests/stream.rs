//! The stream driver over real TCP and Unix sockets.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::{finished_channel, frame, numbered, Echo, GUARD};
use switchboard_proto::stage::{self, Command, Event, FramingConfig, PacketConnection};
use switchboard_proto::{Blame, Fault, Machine};
use switchboard_std::{
    connect, net, run, serve, socketpair, spawn, Control, DriverError, Notice, Running, Settings, SocketOptions,
};

/// Frame bodies of many sizes, so frames straddle reads and writes.
const SIZES: [usize; 8] = [4, 5, 17, 300, 1500, 4096, 8000, 40_000];

fn echo_server(config: FramingConfig) -> (switchboard_std::Server, mpsc::Receiver<common::Finished>) {
    let (finished, results) = finished_channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = serve(
        listener,
        Settings::packet().socket(SocketOptions::new().nodelay(true)),
        move |_| PacketConnection::new(config),
        move |_| Echo { finished: finished.clone() },
    )
    .unwrap();
    (server, results)
}

/// Send `count` numbered frames of the test sizes and check every echo, in order.
fn exchange(client: &mut Running<PacketConnection>, count: u32) {
    let sender = client.handle.clone();
    let producer = thread::spawn(move || {
        for i in 0..count {
            sender.send(Command::SendBody(numbered(i, SIZES[i as usize % SIZES.len()]))).unwrap();
        }
    });
    for i in 0..count {
        let notice = client.events.recv_timeout(GUARD).expect("echo in time").expect("driver running");
        let Notice::Event(Event::Frame(echo)) = notice else { panic!("unexpected {notice:?}") };
        assert_eq!(echo, frame(&numbered(i, SIZES[i as usize % SIZES.len()])), "frame {i}");
    }
    producer.join().unwrap();
}

#[test]
fn tcp_packet_echo() {
    let config = FramingConfig::packet(64 * 1024, 0);
    let (server, results) = echo_server(config);
    let settings = Settings::packet().socket(SocketOptions::new().nodelay(true));
    let mut client = connect(server.local_addr(), PacketConnection::new(config), settings).unwrap();
    exchange(&mut client, 400);
    let stats = client.handle.stats();
    let total: usize = (0..400).map(|i| SIZES[i % SIZES.len()] + 4).sum();
    assert_eq!(stats.bytes_read, total as u64, "every byte sent came back");
    assert_eq!(stats.events, 400);
    client.close_and_join().unwrap();
    let (_, result) = results.recv_timeout(GUARD).unwrap();
    result.unwrap();
    server.shutdown();
}

#[test]
fn unix_socketpair_echo_with_callback_driver() {
    let config = FramingConfig::packet(64 * 1024, 64 * 1024);
    let (a, b) = socketpair(&SocketOptions::new()).unwrap();
    // The echo side runs in callback form on its own thread.
    let echo = thread::spawn(move || {
        run(a, PacketConnection::new(config), Settings::packet(), |notice, control: &mut Control<Command>| {
            if let Notice::Event(Event::Frame(frame)) = notice {
                control.send(Command::Send(frame));
            }
        })
    });
    let mut client = spawn(b, PacketConnection::new(config), Settings::packet()).unwrap();
    exchange(&mut client, 300);
    client.close_and_join().unwrap();
    echo.join().unwrap().unwrap();
}

#[test]
fn commit_coalesces_frames_into_one_write() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bodies: Vec<Bytes> = (0..10).map(|i| numbered(i, 20 + i as usize)).collect();
    let expected: Vec<u8> = bodies.iter().flat_map(|b| frame(b).to_vec()).collect();

    // A commit interval far longer than the test: only Flush can send.
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut held_peer, _) = listener.accept().unwrap();
    let config = FramingConfig::packet(1024, 4096).with_commit(Duration::from_secs(3600));
    let held = spawn(stream, PacketConnection::new(config), Settings::packet()).unwrap();
    for body in &bodies {
        held.handle.send(Command::SendBody(body.clone())).unwrap();
    }
    // Wait until the driver took all ten (the guard only stops a hang).
    let start = std::time::Instant::now();
    while held.handle.stats().commands < 10 {
        assert!(start.elapsed() < GUARD, "driver never took the commands");
        thread::yield_now();
    }
    assert_eq!(held.handle.stats().bytes_written, 0, "coalesced frames wait for the commit");
    held.handle.send(Command::Flush).unwrap();
    let mut got = vec![0u8; expected.len()];
    held_peer.read_exact(&mut got).unwrap();
    assert_eq!(got, expected);

    // With a short commit the timer flushes by itself.
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut timed_peer, _) = listener.accept().unwrap();
    let config = FramingConfig::packet(1024, 4096).with_commit(Duration::from_millis(20));
    let timed = spawn(stream, PacketConnection::new(config), Settings::packet()).unwrap();
    for body in &bodies {
        timed.handle.send(Command::SendBody(body.clone())).unwrap();
    }
    let mut got = vec![0u8; expected.len()];
    timed_peer.read_exact(&mut got).unwrap();
    assert_eq!(got, expected);

    for (running, peer) in [(held, held_peer), (timed, timed_peer)] {
        peer.shutdown(Shutdown::Write).unwrap();
        running.close_and_join().unwrap();
    }
}

#[test]
fn without_a_close_command_dropping_the_handle_flushes_and_ends() {
    let (a, mut b) = socketpair(&SocketOptions::new()).unwrap();
    // `Settings::new()` knows no close command: the driver stops feeding the machine, writes
    // what it transmitted, and shuts the socket down.
    let config = FramingConfig::packet(1024, 0);
    let running = spawn(a, PacketConnection::new(config), Settings::new()).unwrap();
    for i in 0..100 {
        running.handle.send(Command::SendBody(numbered(i, 100))).unwrap();
    }
    let Running { handle, driver, .. } = running;
    drop(handle);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    let expected: Vec<u8> = (0..100).flat_map(|i| frame(&numbered(i, 100)).to_vec()).collect();
    assert_eq!(got, expected);
    drop(b);
    driver.join().unwrap();
}

#[test]
fn close_while_the_peer_never_reads_gives_up_after_the_linger_time() {
    let small = SocketOptions::new().send_buffer(4096).recv_buffer(4096);
    let listener = net::listen_tcp("127.0.0.1:0".parse().unwrap(), &small).unwrap();
    let stream = net::connect_tcp(listener.local_addr().unwrap(), &small).unwrap();
    let (peer, _) = listener.accept().unwrap(); // never reads
    let config = FramingConfig::packet(64 * 1024, 0);
    let budget = PacketConnection::new(config).write_budget();
    let settings = Settings::packet().socket(small).linger(Duration::from_millis(50));
    let client = spawn(stream, PacketConnection::new(config), settings).unwrap();
    let producer = {
        let handle = client.handle.clone();
        // Sends until the driver is gone: the send that is blocked then fails.
        thread::spawn(move || (0u32..).find(|&i| handle.send(Command::SendBody(numbered(i, 1000))).is_err()))
    };
    let start = std::time::Instant::now();
    while client.handle.stats().queued < budget {
        assert!(start.elapsed() < GUARD, "the queue never reached the budget");
        thread::yield_now();
    }
    client.handle.close();
    let Running { handle, driver, .. } = client;
    match driver.join() {
        // Commands are fed in batches of up to a quarter of the budget before the queue is
        // looked at again: the budget, one batch, and the command that crossed it.
        Err(DriverError::Unflushed { unsent }) => {
            assert!(unsent > 0 && unsent <= budget + budget / 4 + 1004, "{unsent}")
        }
        other => panic!("expected Unflushed, got {other:?}"),
    }
    assert!(producer.join().unwrap().is_some());
    drop((handle, peer));
}

#[test]
fn server_shutdown_closes_connections_gracefully() {
    let config = FramingConfig::packet(64 * 1024, 0);
    let (server, results) = echo_server(config);
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    let mut client = spawn(stream, PacketConnection::new(config), Settings::packet()).unwrap();
    exchange(&mut client, 20);
    server.shutdown();
    let (_, result) = results.recv_timeout(GUARD).unwrap();
    result.unwrap();
    // The client's events end at the server's EOF; dropping its handle then closes it cleanly.
    let Running { handle, events, driver } = client;
    assert!(events.count() == 0, "no echoes after the ones exchanged");
    drop(handle);
    driver.join().unwrap();
}

#[test]
fn bad_header_closes_only_that_connection_with_the_typed_error() {
    let config = FramingConfig::packet(64 * 1024, 0);
    let (server, results) = echo_server(config);
    let good_stream = TcpStream::connect(server.local_addr()).unwrap();
    let mut good = spawn(good_stream, PacketConnection::new(config), Settings::packet()).unwrap();
    exchange(&mut good, 5);

    let mut bad = TcpStream::connect(server.local_addr()).unwrap();
    let bad_addr = bad.local_addr().unwrap();
    bad.write_all(&frame(b"fine")).unwrap();
    let mut echo = [0u8; 8];
    bad.read_exact(&mut echo).unwrap();
    assert_eq!(echo, frame(b"fine")[..]);
    bad.write_all(&[2, 0, 0, 0]).unwrap(); // announces 2 bytes: shorter than its own header
    let mut rest = Vec::new();
    bad.read_to_end(&mut rest).unwrap(); // the server closes: EOF
    assert!(rest.is_empty());
    drop(bad);
    let (peer, result) = results.recv_timeout(GUARD).unwrap();
    assert_eq!(peer, bad_addr);
    let err = result.unwrap_err();
    assert!(matches!(err, DriverError::Machine(stage::Error::LengthTooShort { len: 2 })), "{err:?}");
    assert_eq!(err.fault(), Fault::Peer);

    // The other connection goes on.
    exchange(&mut good, 5);
    good.close_and_join().unwrap();
    results.recv_timeout(GUARD).unwrap().1.unwrap();
    server.shutdown();
}
