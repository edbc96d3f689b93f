//! Framing throughput over loopback TCP: STAGE-style frames (u32 LE length including the
//! header) from one client to one server, at several body sizes, in one run:
//!
//! - `raw`: hand-rolled blocking framing over std sockets with 64 KiB buffers — the limit;
//! - `tokio-util`: `LengthDelimitedCodec` set up for the same wire format — the peer;
//! - Switchboard's `PacketConnection` through each driver.
//!
//! Run: `cargo run --release -p switchboard-bench --bin framing [-- --quick]`

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_bench::{best_of, frames_for, print_table, Measurement};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const BUF: usize = 64 * 1024;

fn frame(size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(size + 4);
    f.extend_from_slice(&((size + 4) as u32).to_le_bytes());
    f.extend((0..size).map(|i| (i % 251) as u8));
    f
}

/// The limit: blocking std sockets, buffered, frames parsed by hand.
fn raw(size: usize, frames: u64) -> Measurement {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::with_capacity(BUF, stream);
        let mut body = vec![0u8; size];
        let mut got = 0u64;
        let mut header = [0u8; 4];
        while reader.read_exact(&mut header).is_ok() {
            let len = u32::from_le_bytes(header) as usize - 4;
            reader.read_exact(&mut body[..len]).unwrap();
            got += 1;
        }
        got
    });
    let wire = frame(size);
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = BufWriter::with_capacity(BUF, stream);
    for _ in 0..frames {
        writer.write_all(&wire).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    let got = server.join().unwrap();
    assert_eq!(got, frames);
    Measurement { name: "raw".into(), size, frames, elapsed: start.elapsed() }
}

fn stage_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .length_adjustment(-4)
        .max_frame_length(1 << 24)
        .new_codec()
}

/// The peer: tokio-util's length-delimited codec configured for the STAGE wire format.
fn tokio_util(size: usize, frames: u64) -> Measurement {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut read = FramedRead::with_capacity(stream, stage_codec(), BUF);
            let mut got = 0u64;
            while let Some(frame) = read.next().await {
                frame.unwrap();
                got += 1;
            }
            got
        });
        let body = Bytes::from(frame(size)[4..].to_vec());
        let start = Instant::now();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut write = FramedWrite::new(stream, stage_codec());
        for _ in 0..frames {
            // `feed` queues without flushing each frame; FramedWrite writes when its buffer fills.
            write.feed(body.clone()).await.unwrap();
        }
        SinkExt::<Bytes>::close(&mut write).await.unwrap();
        let got = server.await.unwrap();
        assert_eq!(got, frames);
        Measurement { name: "tokio-util".into(), size, frames, elapsed: start.elapsed() }
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (total, runs) = if quick { (16u64 << 20, 1) } else { (256u64 << 20, 3) };
    let mut results = Vec::new();
    for size in [64usize, 1024, 64 * 1024] {
        let frames = frames_for(size, total, 1_000, 2_000_000);
        results.push(best_of(runs, || raw(size, frames)));
        results.push(best_of(runs, || tokio_util(size, frames)));
    }
    print_table(&results, "raw", "tokio-util");
}
