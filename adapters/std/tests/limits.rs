//! The std drivers under the attacks of the driver-core issue: thousands of idle connections
//! on one server, a connection limit, a peer that sends and never reads, and an application
//! that stops taking events. Every bound is checked in bytes or connections, never in time.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{finished_channel, frame, numbered, Echo, GUARD};
use switchboard_proto::stage::{Event, FramingConfig, PacketConnection};
use switchboard_proto::Machine;
use switchboard_std::{serve, spawn, Notice, Settings, SocketOptions};

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < GUARD * 3, "{what}: not reached");
        thread::sleep(Duration::from_millis(10));
    }
}

/// One echo round trip on a plain blocking socket.
fn echo_once(stream: &mut TcpStream, i: u32) {
    let sent = frame(&numbered(i, 16));
    stream.write_all(&sent).unwrap();
    let mut back = vec![0; sent.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, sent[..]);
}

/// A server holds thousands of idle connections, each having carried one frame, with one
/// thread each; the per-connection memory is reported; when they close, every driver ends and
/// the memory they held comes back.
#[test]
fn thousands_of_idle_connections_are_served_and_let_go() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let soft = rlimit::increase_nofile_limit(hard.min(20_000)).unwrap();
    // Two descriptors per connection (ours and the server's), plus room for the test harness.
    let conns = (soft.saturating_sub(256) / 2).min(5_000) as usize;
    assert!(conns >= 500, "the descriptor limit ({soft}) leaves room for too few connections");
    let (done, _finished) = finished_channel();
    let server = serve(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Settings::packet().command_capacity(8),
        |_| PacketConnection::new(FramingConfig::packet(1024, 0)),
        move |_| Echo { finished: done.clone() },
    )
    .unwrap();
    let before = rss();
    let mut clients: Vec<TcpStream> = (0..conns)
        .map(|i| {
            let mut stream = TcpStream::connect(server.local_addr()).unwrap();
            echo_once(&mut stream, i as u32);
            stream
        })
        .collect();
    wait_until("every connection served", || server.active() == conns);
    println!(
        "{conns} served, just after their frame: {} KiB resident each",
        rss().saturating_sub(before) / conns / 1024
    );
    // Idle for longer than a read buffer is kept (1 s): the buffers go back.
    thread::sleep(Duration::from_millis(1_500));
    let held = rss().saturating_sub(before);
    println!("{conns} idle served connections: {} KiB resident each", held / conns / 1024);
    // Still alive after the idle time.
    echo_once(&mut clients[conns / 2], 7);
    drop(clients);
    wait_until("every driver ended", || server.active() == 0);
    thread::sleep(Duration::from_millis(200));
    let after = rss().saturating_sub(before);
    println!("after they closed: {} KiB above the start", after / 1024);
    // Generous bounds that the three-threads-per-connection driver broke (316 KB each, 930 MB
    // kept after 5,000 closed): a thread stack's touched pages, the command channel and the
    // machine per connection, and most of it returned once they are gone.
    assert!(held / conns < 96 * 1024, "{} bytes per idle connection", held / conns);
    assert!(after < held / 2 + 16 * 1024 * 1024, "{after} bytes still held of {held}");
    server.shutdown();
}

/// Past `max_connections` a connection is closed at once (the peer reads EOF), the others are
/// served as usual, and a place that frees up is taken again.
#[test]
fn connections_past_the_limit_are_refused_cleanly() {
    let (done, finished) = finished_channel();
    let server = serve(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Settings::packet().max_connections(3),
        |_| PacketConnection::new(FramingConfig::packet(1024, 0)),
        move |_| Echo { finished: done.clone() },
    )
    .unwrap();
    let mut served: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut stream = TcpStream::connect(server.local_addr()).unwrap();
            echo_once(&mut stream, i);
            stream
        })
        .collect();
    for _ in 0..2 {
        let mut refused = TcpStream::connect(server.local_addr()).unwrap();
        refused.set_read_timeout(Some(GUARD)).unwrap();
        let _ = refused.write_all(&frame(b"anyone?"));
        let mut rest = Vec::new();
        // EOF (or a reset, if our bytes arrived after the close): nothing is ever answered.
        let _ = refused.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
    assert_eq!((server.refused(), server.active()), (2, 3));
    echo_once(&mut served[1], 9);
    drop(served.remove(0));
    finished.recv_timeout(GUARD).unwrap().1.unwrap();
    wait_until("the place freed", || server.active() == 2);
    let mut again = TcpStream::connect(server.local_addr()).unwrap();
    echo_once(&mut again, 11);
    server.shutdown();
}

/// A peer that sends echoable frames and never reads: the echo server's queue for it stays
/// within the machine's write budget (plus one batch of commands), whatever it sends, and the
/// peer's own sends block.
#[test]
fn an_echo_server_holds_a_peer_that_never_reads_to_its_budget() {
    let small = SocketOptions::new().send_buffer(16 * 1024).recv_buffer(16 * 1024);
    let (done, _finished) = finished_channel();
    let config = FramingConfig::packet(8 * 1024, 0);
    let budget = PacketConnection::new(config).write_budget();
    let server = serve(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Settings::packet().socket(small.clone()),
        move |_| PacketConnection::new(config),
        move |_| Echo { finished: done.clone() },
    )
    .unwrap();
    let mut flood = switchboard_std::net::connect_tcp(server.local_addr(), &small).unwrap();
    flood.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let body = frame(&[7u8; 1020]);
    let mut sent = 0usize;
    // Until a write has waited half a second: the server stopped reading.
    while flood.write_all(&body).is_ok() {
        sent += body.len();
        assert!(sent < 1 << 30, "a gigabyte went in and the server never pushed back");
    }
    let stats = server.connection(0).expect("the flooding connection is served").stats();
    assert!(stats.max_queued <= budget + budget / 4 + body.len(), "queued {} of a {budget} budget", stats.max_queued);
    assert!(stats.bytes_read < 4 * 1024 * 1024, "read {} bytes from a peer that never reads", stats.bytes_read);
    drop(flood);
    server.shutdown();
}

/// An application that stops taking events: at most `Settings::events` wait, the driver stops
/// reading (what it read is bounded), and every frame arrives in order once it takes them again.
#[test]
fn spawned_events_are_capped_and_reading_waits_for_the_application() {
    const FRAMES: u32 = 3_000;
    const SIZE: usize = 200;
    const ROOM: usize = 8;
    const CHUNK: usize = 4096;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        for i in 0..FRAMES {
            stream.write_all(&frame(&numbered(i, SIZE))).unwrap();
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    let small = SocketOptions::new().recv_buffer(16 * 1024);
    let settings = Settings::packet().socket(small.clone()).events(ROOM).read_chunk(CHUNK);
    let stream = switchboard_std::net::connect_tcp(addr, &small).unwrap();
    let running = spawn(stream, PacketConnection::new(FramingConfig::packet(1 << 16, 0)), settings).unwrap();
    let mut next = 0u32;
    let take = |next: &mut u32, notice: Option<Notice<Event, _>>| {
        let Some(Notice::Event(Event::Frame(frame))) = notice else { panic!("expected a frame") };
        assert_eq!(frame.slice(4..), numbered(*next, SIZE), "frame {next} in order");
        *next += 1;
    };
    let mut events = running.events;
    for _ in 0..10 {
        take(&mut next, events.next());
    }
    thread::sleep(Duration::from_millis(150));
    let read_while_full = running.handle.stats().bytes_read;
    thread::sleep(Duration::from_millis(100));
    assert_eq!(running.handle.stats().bytes_read, read_while_full, "no reads while the room is full");
    // Taken, waiting in the room, held by the driver, in the machine from the last read, and
    // one read (the receive buffer's region) beyond.
    let bound = ((10 + ROOM + 1) * (SIZE + 4) + 4 * CHUNK) as u64;
    assert!(read_while_full <= bound, "read {read_while_full} bytes for a full room, bound {bound}");
    while next < FRAMES {
        take(&mut next, events.next());
    }
    assert!(events.next().is_none(), "the peer's EOF ends the events");
    drop(running.handle);
    running.driver.join().unwrap();
    writer.join().unwrap();
}
