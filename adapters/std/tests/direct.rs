//! The direct (calling-thread) driver: echo, pipelining, backpressure, timers, bad input,
//! graceful close and its failure modes, over TCP and Unix sockets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::stage::{Command, Error, Event, FramingConfig, PacketConnection};
use switchboard_std::{Direct, DriverError, SendError, Settings, SocketOptions};

fn payload(i: usize, len: usize) -> Bytes {
    Bytes::from((0..len).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>())
}

fn body(event: Event) -> Bytes {
    let Event::Frame(frame) = event;
    frame.slice(4..)
}

/// A server thread that echoes every frame back through its own `Direct`, until the peer's EOF.
fn echo_server(listener: TcpListener, config: FramingConfig) -> thread::JoinHandle<Result<usize, String>> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut conn = Direct::new(stream, PacketConnection::new(config), Settings::packet()).unwrap();
        let mut echoed = 0;
        while let Some(event) = conn.recv() {
            let Event::Frame(frame) = event.map_err(|e| e.to_string())?;
            conn.send(Command::Send(frame)).map_err(|e| e.to_string())?;
            echoed += 1;
        }
        Ok(echoed)
    })
}

#[test]
fn pipelined_echo_over_tcp_arrives_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = FramingConfig::packet(1 << 16, 0);
    let server = echo_server(listener, config);

    let mut client =
        Direct::new(TcpStream::connect(addr).unwrap(), PacketConnection::new(config), Settings::packet()).unwrap();
    assert_eq!(client.peer_addr(), Some(addr));
    // 200 frames in flight at once, both ways, before the first echo is read.
    for i in 0..200 {
        client.send(Command::SendBody(payload(i, 100 + i))).unwrap();
    }
    for i in 0..200 {
        let event = client.recv().expect("an echo").unwrap();
        assert_eq!(body(event), payload(i, 100 + i));
    }
    client.close_and_join().unwrap();
    assert_eq!(server.join().unwrap(), Ok(200));
}

#[test]
fn echo_over_a_unix_socketpair_with_coalescing() {
    let (a, b) = UnixStream::pair().unwrap();
    let config = FramingConfig::packet(4096, 64 * 1024);
    let server = thread::spawn(move || {
        let mut conn = Direct::new(b, PacketConnection::new(config), Settings::packet()).unwrap();
        let mut n = 0;
        while let Some(event) = conn.recv() {
            conn.send(Command::Send(match event.unwrap() {
                Event::Frame(f) => f,
            }))
            .unwrap();
            n += 1;
        }
        n
    });
    let mut client = Direct::new(a, PacketConnection::new(config), Settings::packet()).unwrap();
    assert_eq!(client.peer_addr(), None);
    for i in 0..1000 {
        client.send(Command::SendBody(payload(i, 8))).unwrap();
    }
    client.flush().unwrap();
    assert_eq!(client.queued(), 0, "flush writes everything");
    for i in 0..1000 {
        assert_eq!(body(client.recv().unwrap().unwrap()), payload(i, 8));
    }
    client.close_and_join().unwrap();
    assert_eq!(server.join().unwrap(), 1000);
}

#[test]
fn a_peer_that_stops_reading_blocks_send_at_the_budget() {
    let small = SocketOptions::new().send_buffer(16 * 1024).recv_buffer(16 * 1024);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    small.apply(&listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = FramingConfig::packet(1 << 16, 0); // write budget: 64 KiB
    const FRAMES: usize = 2000;
    const SIZE: usize = 1024;

    let max_queued = Arc::new(AtomicUsize::new(0));
    let client = {
        let max_queued = max_queued.clone();
        let settings = Settings::packet().socket(small.clone());
        thread::spawn(move || {
            let mut conn =
                Direct::new(TcpStream::connect(addr).unwrap(), PacketConnection::new(config), settings).unwrap();
            for i in 0..FRAMES {
                conn.send(Command::SendBody(payload(i, SIZE))).unwrap();
                max_queued.fetch_max(conn.queued(), Ordering::Relaxed);
            }
            conn.close_and_join()
        })
    };
    let (mut server, _) = listener.accept().unwrap();
    // Not reading for a while lets the kernel buffers fill, so the client's queue reaches its
    // budget and `send` has to wait. The assertions below hold however long this takes.
    thread::sleep(Duration::from_millis(200));
    let mut received = Vec::new();
    server.read_to_end(&mut received).unwrap();
    drop(server); // our EOF ends the client's linger
    client.join().unwrap().unwrap();

    assert_eq!(received.len(), FRAMES * (SIZE + 4), "nothing accepted was lost");
    for (i, frame) in received.chunks(SIZE + 4).enumerate() {
        assert_eq!(&frame[4..], &payload(i, SIZE)[..]);
    }
    // The budget plus one batch (a quarter of the budget) plus one frame at most.
    let bound = 64 * 1024 + 16 * 1024 + SIZE + 4;
    let max = max_queued.load(Ordering::Relaxed);
    assert!(max <= bound, "queued {max} bytes, bound {bound}");
}

#[test]
fn both_ends_streaming_at_once_do_not_deadlock() {
    let small = SocketOptions::new().send_buffer(16 * 1024).recv_buffer(16 * 1024);
    let (a, b) = UnixStream::pair().unwrap();
    const FRAMES: usize = 3000;
    let run = move |stream: UnixStream, seed: usize| {
        let settings = Settings::packet().socket(small.clone());
        let mut conn = Direct::new(stream, PacketConnection::new(FramingConfig::packet(1 << 16, 0)), settings).unwrap();
        let mut got = Vec::new();
        // The pattern the direct driver asks for when both sides send a lot: take what has
        // arrived between sends.
        for i in 0..FRAMES {
            conn.send(Command::SendBody(payload(seed + i, 2048))).unwrap();
            while let Some(event) = conn.try_recv() {
                got.push(body(event.unwrap()));
            }
        }
        conn.flush().unwrap();
        while got.len() < FRAMES {
            got.push(body(conn.recv().expect("the peer's frames").unwrap()));
        }
        conn.close_and_join().unwrap();
        got
    };
    let other = {
        let run = run.clone();
        thread::spawn(move || run(b, 1_000_000))
    };
    let got_a = run(a, 0);
    let got_b = other.join().unwrap();
    assert!(got_a.iter().enumerate().all(|(i, f)| *f == payload(1_000_000 + i, 2048)));
    assert!(got_b.iter().enumerate().all(|(i, f)| *f == payload(i, 2048)));
}

#[test]
fn expire_ends_an_idle_connection_with_its_error() {
    let (a, _b) = UnixStream::pair().unwrap();
    let config = FramingConfig::packet(1024, 0).with_expire(Some(Duration::from_millis(30)));
    let settings = Settings::packet().linger(Duration::ZERO);
    let mut conn = Direct::new(a, PacketConnection::new(config), settings).unwrap();
    match conn.recv() {
        Some(Err(DriverError::Machine(Error::Expired { .. }))) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(conn.recv().is_none(), "the result is reported once");
    assert!(conn.is_ended());
    assert!(matches!(conn.send(Command::SendBody(Bytes::from_static(b"late"))), Err(SendError::Closed)));
}

#[test]
fn commit_timer_flushes_coalesced_output_without_a_flush_call() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let config = FramingConfig::packet(1024, 8192).with_commit(Duration::from_millis(20));
    let mut conn = Direct::new(a, PacketConnection::new(config), Settings::packet()).unwrap();
    conn.send(Command::SendBody(Bytes::from_static(b"one"))).unwrap();
    conn.send(Command::SendBody(Bytes::from_static(b"two"))).unwrap();
    // Waiting for an event runs the timers: the commit deadline writes both frames at once.
    let reader = thread::spawn(move || {
        let mut wire = [0u8; 14];
        b.read_exact(&mut wire).unwrap();
        b.write_all(b"\x05\x00\x00\x00!").unwrap();
        wire
    });
    assert_eq!(body(conn.recv().unwrap().unwrap()), Bytes::from_static(b"!"));
    assert_eq!(&reader.join().unwrap(), b"\x07\x00\x00\x00one\x07\x00\x00\x00two");
}

#[test]
fn a_bad_header_ends_the_connection_after_the_frames_before_it() {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"\x06\x00\x00\x00ok\x02\x00\x00\x00").unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap(); // the bad peer is done: no linger needed
    let mut conn = Direct::new(a, PacketConnection::new(FramingConfig::packet(1024, 0)), Settings::packet()).unwrap();
    assert_eq!(body(conn.recv().unwrap().unwrap()), Bytes::from_static(b"ok"));
    // The bad header closed the read side: the frame before it can still be answered, and the
    // peer's fault is the result at the close.
    assert!(conn.recv().is_none());
    conn.send(Command::SendBody(Bytes::from_static(b"re: ok"))).unwrap();
    match conn.close_and_join() {
        Err(e @ DriverError::Machine(Error::LengthTooShort { len: 2 })) => {
            assert_eq!(switchboard_proto::Blame::fault(&e), switchboard_proto::Fault::Peer);
        }
        other => panic!("expected LengthTooShort, got {other:?}"),
    }
    let mut answered = Vec::new();
    b.read_to_end(&mut answered).unwrap();
    assert_eq!(answered, b"\x0a\x00\x00\x00re: ok");
}

#[test]
fn a_refused_command_is_the_callers_and_the_connection_goes_on() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let settings = Settings::packet().linger(Duration::ZERO); // the peer reads only after the close
    let mut conn = Direct::new(a, PacketConnection::new(FramingConfig::packet(1024, 16)), settings).unwrap();
    match conn.send(Command::SendBody(Bytes::from(vec![0u8; 64]))) {
        Err(SendError::Refused(Error::OutgoingTooLarge { .. })) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    conn.send(Command::SendBody(Bytes::from_static(b"fits"))).unwrap();
    conn.close_and_join().unwrap_or_else(|e| panic!("{e}"));
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).unwrap();
    assert_eq!(wire, b"\x08\x00\x00\x00fits");
}

#[test]
fn closing_without_a_close_command_writes_what_was_transmitted() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let settings = Settings::new().linger(Duration::ZERO);
    let mut conn = Direct::new(a, PacketConnection::new(FramingConfig::packet(1024, 0)), settings).unwrap();
    conn.send(Command::SendBody(Bytes::from_static(b"abc"))).unwrap();
    conn.close_and_join().unwrap();
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).unwrap();
    assert_eq!(wire, b"\x07\x00\x00\x00abc");
}

#[test]
fn linger_running_out_with_bytes_unwritten_is_reported() {
    let small = SocketOptions::new().send_buffer(8 * 1024).recv_buffer(8 * 1024);
    let (a, b) = UnixStream::pair().unwrap();
    let settings = Settings::packet().socket(small).linger(Duration::from_millis(50));
    let mut conn = Direct::new(a, PacketConnection::new(FramingConfig::packet(1 << 20, 0)), settings).unwrap();
    // Far more than the socket buffers hold (but under the 64 KiB write budget, so `send`
    // returns); the peer never reads.
    conn.send(Command::SendBody(Bytes::from(vec![1u8; 60 * 1024]))).unwrap();
    match conn.close_and_join() {
        Err(DriverError::Unflushed { unsent }) => assert!(unsent > 0),
        other => panic!("expected Unflushed, got {other:?}"),
    }
    drop(b);
}
