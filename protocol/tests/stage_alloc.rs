//! Steady-state receiving does not allocate per frame.
//!
//! Its own test binary, because it swaps in a counting global allocator (`stats_alloc`: safe to
//! use, the `unsafe impl` lives in that crate) and counts every allocation the process makes.
//! There is one `#[test]` only, so no other test allocates while a region is measured.

mod stage_common;

use std::alloc::System;
use std::hint::black_box;

use bytes::BytesMut;
use stage_common::{frame, XorCipher};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
use switchboard_proto::{Input, Instant, Machine, Output};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What the driver reads per call: not aligned with frames, so frames straddle reads.
const READ: usize = 1000;

/// `n` packet frames of assorted sizes (7..=306 bytes), built before anything is measured.
fn packet_wire(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| frame(&vec![i as u8; 3 + (i * 37) % 300])).collect()
}

/// The same frames, sealed by the toy cipher.
fn sealed_wire(n: usize) -> Vec<u8> {
    let mut sender = PacketConnection::with_cipher(FramingConfig::packet(1024, 0), Box::new(XorCipher(0x77)));
    let mut wire = Vec::new();
    for i in 0..n {
        let body = bytes::Bytes::from(vec![i as u8; 3 + (i * 37) % 300]);
        sender.handle_input(Instant::ZERO, Input::Command(Command::SendBody(body))).unwrap();
        while let Output::Transmit(b) = sender.poll_output(Instant::ZERO) {
            wire.extend_from_slice(&b);
        }
    }
    wire
}

/// `n` text lines of assorted lengths.
fn text_wire(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let mut line = vec![b'a' + (i % 26) as u8; (i * 53) % 200];
            line.push(b'\n');
            line
        })
        .collect()
}

/// Drive `wire` through `conn` the way a driver does: one receive buffer, `reserve` for each
/// read, `handle_input`, drain, drop the frames. Returns the number of frames received.
fn receive(conn: &mut PacketConnection, buf: &mut BytesMut, wire: &[u8]) -> usize {
    let now = Instant::ZERO;
    let mut frames = 0;
    for read in wire.chunks(READ) {
        buf.reserve(read.len());
        buf.extend_from_slice(read);
        conn.handle_input(now, Input::Stream(buf)).unwrap();
        loop {
            match conn.poll_output(now) {
                Output::Event(Event::Frame(f)) => {
                    frames += 1;
                    black_box(&f);
                }
                Output::Timeout(_) => break,
                other => panic!("unexpected output {other:?}"),
            }
        }
    }
    frames
}

/// Allocations and reallocations made while receiving `wire` on a warmed-up connection.
fn allocations_while_receiving(conn: &mut PacketConnection, buf: &mut BytesMut, wire: &[u8], events: usize) -> usize {
    let region = Region::new(GLOBAL);
    let got = receive(conn, buf, wire);
    let stats = region.change();
    assert_eq!(got, events);
    stats.allocations + stats.reallocations
}

/// Warm up, then count allocations for 1000 and for 2000 frames: both must be 0.
/// `events(n, wire)` is how many events `wire` (made of `n` frames) yields.
fn check(name: &str, mut conn: PacketConnection, wire: impl Fn(usize) -> Vec<u8>, events: fn(usize, &[u8]) -> usize) {
    let (warm, w1000, w2000) = (wire(1000), wire(1000), wire(2000));
    let mut buf = BytesMut::with_capacity(8 * 1024);
    // Warm-up: the buffer becomes shared, the output queue reaches its working size.
    assert_eq!(receive(&mut conn, &mut buf, &warm), events(1000, &warm));
    let a = allocations_while_receiving(&mut conn, &mut buf, &w1000, events(1000, &w1000));
    let b = allocations_while_receiving(&mut conn, &mut buf, &w2000, events(2000, &w2000));
    assert_eq!(a, b, "{name}: allocations must not grow with the number of frames ({a} for 1000, {b} for 2000)");
    assert_eq!(a, 0, "{name}: steady-state receiving allocated {a} times for 1000 frames");
}

fn one_per_frame(n: usize, _: &[u8]) -> usize {
    n
}

fn one_per_read(_: usize, wire: &[u8]) -> usize {
    wire.len().div_ceil(READ)
}

#[test]
fn steady_state_receive_does_not_allocate_per_frame() {
    check("packet", PacketConnection::new(FramingConfig::packet(1024, 0)), packet_wire, one_per_frame);
    let sealed = PacketConnection::with_cipher(FramingConfig::packet(1024, 0), Box::new(XorCipher(0x77)));
    check("encrypted packet", sealed, sealed_wire, one_per_frame);
    check("text", PacketConnection::new(FramingConfig::text(1024, 0)), text_wire, one_per_frame);
    check("raw", PacketConnection::new(FramingConfig::raw()), text_wire, one_per_read);

    // The counter does count: one buffer made inside a region shows up.
    let region = Region::new(GLOBAL);
    black_box(BytesMut::with_capacity(64));
    assert_eq!(region.change().allocations, 1);
}
