//! What the machine and the direct driver's bookkeeping cost per frame, without sockets: the
//! sending side (commands fed through `driver::Inline` into a `PacketConnection`, the write
//! queue drained as a socket would) and the receiving side (a buffer of frames read into
//! `Inline` and taken as events), at 64 B bodies (`BODY=1024` in the environment for 1 KiB) with OUT = 0 and OUT = 128 KiB.
//!
//! Run: `cargo run --release -p switchboard-bench --bin machine_cost [-- FRAMES]`; under
//! `valgrind --tool=callgrind` for instruction counts that do not depend on machine load.

use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use switchboard_proto::driver::Inline;
use switchboard_proto::stage::{Command, FramingConfig, PacketConnection};
use switchboard_proto::Instant;

fn send_side(frames: usize, out: usize) -> (Duration, usize) {
    let now = Instant::ZERO;
    let mut inline =
        Inline::new(now, PacketConnection::new(FramingConfig::packet(1 << 20, out)), 64 * 1024, Duration::ZERO);
    let body = Bytes::from(vec![7u8; body_size()]);
    let mut written = 0;
    let start = StdInstant::now();
    for _ in 0..frames {
        inline.send(now, Command::SendBody(body.clone())).unwrap();
        if inline.must_write() {
            let n = inline.queued();
            inline.writes().advance(n);
            written += n;
        }
    }
    if inline.has_writes(now) {
        written += inline.queued();
    }
    (start.elapsed(), written)
}

fn receive_side(frames: usize) -> (Duration, usize) {
    let now = Instant::ZERO;
    let size = body_size();
    let mut wire = Vec::with_capacity(frames * (size + 4));
    for _ in 0..frames {
        wire.extend_from_slice(&(size as u32 + 4).to_le_bytes());
        wire.extend(std::iter::repeat_n(7u8, size));
    }
    let mut inline =
        Inline::new(now, PacketConnection::new(FramingConfig::packet(1 << 20, 0)), 64 * 1024, Duration::ZERO);
    let mut got = 0;
    let start = StdInstant::now();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        // As a socket read would: as much as the room takes.
        let room = inline.read_buffer();
        let n = room.len().min(rest.len());
        room[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        inline.on_read(now, n, false);
        while let Some(Ok(_event)) = inline.next(now) {
            got += 1;
        }
    }
    (start.elapsed(), got)
}

/// The body size: `BODY` in the environment, else 64 bytes.
fn body_size() -> usize {
    std::env::var("BODY").ok().and_then(|b| b.parse().ok()).unwrap_or(64)
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    // `send0` / `send128` / `receive`: only that side (for profiling one path).
    if std::env::args().nth(2).as_deref() == Some("receive") {
        let (t, _) = receive_side(frames);
        println!("receive {:.1} ns/frame", t.as_nanos() as f64 / frames as f64);
        return;
    }
    if std::env::args().nth(2).as_deref() == Some("send0") {
        let (t, _) = send_side(frames, 0);
        println!("send out=0 {:.1} ns/frame", t.as_nanos() as f64 / frames as f64);
        return;
    }
    if std::env::args().nth(2).as_deref() == Some("send128") {
        let (t, _) = send_side(frames, 128 * 1024);
        println!("send out=128k {:.1} ns/frame", t.as_nanos() as f64 / frames as f64);
        return;
    }
    for (name, out) in [("send out=0", 0), ("send out=128k", 128 * 1024)] {
        let (t, bytes) = send_side(frames, out);
        println!("{name:<16} {frames} frames, {bytes} bytes: {:.1} ns/frame", t.as_nanos() as f64 / frames as f64);
    }
    let (t, got) = receive_side(frames);
    assert_eq!(got, frames);
    println!("{:<16} {frames} frames: {:.1} ns/frame", "receive", t.as_nanos() as f64 / frames as f64);
}
