//! Framing throughput over loopback TCP: STAGE-style frames (u32 LE length including the
//! header) from one client to one server, at several body sizes, in one run:
//!
//! - `raw`: hand-rolled blocking framing over std sockets with 64 KiB buffers — the limit;
//! - `raw-tokio`: the same over tokio sockets with 64 KiB `BufWriter`/`BufReader` — the async limit;
//! - `tokio-util`: `LengthDelimitedCodec` set up for the same wire format — the peer;
//! - Switchboard's `PacketConnection` through each driver (`sb-std`, `sb-tokio`, `sb-smol`,
//!   `sb-async-std`), with OUT = 0 and OUT = 128 KiB, one `Command::SendBody` per frame (the
//!   command API has no batch command, so there is no batched variant).
//!
//! Every run: one client sends N frames to one server over loopback TCP (`TCP_NODELAY` on);
//! the server counts frames; the time is from connect to the last frame received.
//!
//! Run: `cargo run --release -p switchboard-bench --bin framing [-- --quick]`

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_bench::{best_of, frames_for, print_table, Measurement};
use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
use switchboard_rt::{Direct, DriverConfig, Listener, Runtime, RuntimeExt, SocketOptions, SocketRef};
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
    tokio_runtime().block_on(async move {
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

/// The raw tokio limit: hand-rolled framing over a tokio `TcpStream` with 64 KiB
/// `BufWriter` / `BufReader`, on the same 2-worker runtime as the async peers.
fn raw_tokio(size: usize, frames: u64) -> Measurement {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio_runtime();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut reader = tokio::io::BufReader::with_capacity(BUF, stream);
            let mut body = vec![0u8; size];
            let mut header = [0u8; 4];
            let mut got = 0u64;
            while reader.read_exact(&mut header).await.is_ok() {
                let len = u32::from_le_bytes(header) as usize - 4;
                reader.read_exact(&mut body[..len]).await.unwrap();
                got += 1;
            }
            got
        });
        let wire = frame(size);
        let start = Instant::now();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut writer = tokio::io::BufWriter::with_capacity(BUF, stream);
        for _ in 0..frames {
            writer.write_all(&wire).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        let got = server.await.unwrap();
        assert_eq!(got, frames);
        Measurement { name: "raw-tokio".into(), size, frames, elapsed: start.elapsed() }
    })
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The two PacketConnection set-ups measured: OUT = 0 (every frame handed to the driver at
/// once: bodies up to 1 KiB copied with their header, larger ones as a header and the body) and OUT = 128 KiB with commit 0 (coalesced until the
/// driver drains; 128 KiB so a 64 KiB body plus header still fits OUT).
#[derive(Clone, Copy)]
enum Out {
    Zero,
    Coalesce,
}

impl Out {
    fn config(self) -> FramingConfig {
        match self {
            Out::Zero => FramingConfig::packet(1 << 20, 0),
            Out::Coalesce => FramingConfig::packet(1 << 20, 128 * 1024),
        }
    }

    fn label(self, driver: &str) -> String {
        match self {
            Out::Zero => format!("{driver} out=0"),
            Out::Coalesce => format!("{driver} out=128k"),
        }
    }
}

/// Switchboard over the blocking driver: the server `run`s a PacketConnection on the accepted
/// stream and counts `Event::Frame`s; the client `spawn`s one and sends a `Command::SendBody`
/// per frame through its `Handle`, then closes gracefully.
fn sb_std(size: usize, frames: u64, out: Out) -> Measurement {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = || switchboard_std::Settings::packet().socket(SocketOptions::new().nodelay(true));
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut got = 0u64;
        let mut last = None;
        switchboard_std::run(stream, PacketConnection::new(out.config()), settings(), |notice, _| {
            if let switchboard_std::Notice::Event(Event::Frame(_)) = notice {
                got += 1;
                if got == frames {
                    last = Some(Instant::now());
                }
            }
        })
        .unwrap();
        (got, last)
    });
    let body = Bytes::from(frame(size)[4..].to_vec());
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    let client = switchboard_std::spawn(stream, PacketConnection::new(out.config()), settings()).unwrap();
    for _ in 0..frames {
        client.handle.send(Command::SendBody(body.clone())).unwrap();
    }
    client.close_and_join().unwrap();
    let (got, last) = server.join().unwrap();
    assert_eq!(got, frames);
    Measurement { name: out.label("sb-std"), size, frames, elapsed: last.unwrap() - start }
}

/// Switchboard over the direct (calling-thread) std driver: the server iterates a `Direct`
/// over the accepted stream counting `Event::Frame`s; the client `send`s a `Command::SendBody`
/// per frame on its own `Direct`, then closes gracefully.
fn sb_direct(size: usize, frames: u64, out: Out) -> Measurement {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = || switchboard_std::Settings::packet().socket(SocketOptions::new().nodelay(true));
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut conn = switchboard_std::Direct::new(stream, PacketConnection::new(out.config()), settings()).unwrap();
        let mut got = 0u64;
        let mut last = None;
        for event in &mut conn {
            let Event::Frame(_) = event.unwrap();
            got += 1;
            if got == frames {
                last = Some(Instant::now());
            }
        }
        (got, last)
    });
    let body = Bytes::from(frame(size)[4..].to_vec());
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    let mut client = switchboard_std::Direct::new(stream, PacketConnection::new(out.config()), settings()).unwrap();
    for _ in 0..frames {
        client.send(Command::SendBody(body.clone())).unwrap();
    }
    client.close_and_join().unwrap();
    let (got, last) = server.join().unwrap();
    assert_eq!(got, frames);
    Measurement { name: out.label("sb-direct"), size, frames, elapsed: last.unwrap() - start }
}

/// Switchboard over the generic async driver on runtime `rt`: the server task drives a
/// PacketConnection on the accepted stream and counts events; the client connects with
/// `connect_with` and awaits `Connection::send(Command::SendBody)` per frame, then joins.
async fn sb_async<R: Runtime>(rt: R, name: &str, size: usize, frames: u64, out: Out) -> Measurement {
    let listener = rt.listen("127.0.0.1:0").unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let options = SocketOptions::new().nodelay(true);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let (rt2, options) = (rt.clone(), options.clone());
        rt.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            options.apply(&*stream.socket_ref()).unwrap();
            let conn = rt2.drive(PacketConnection::new(out.config()), stream, &DriverConfig::default());
            let mut got = 0u64;
            let mut last = None;
            while let Some(delivery) = conn.recv().await {
                if let Ok(Event::Frame(_)) = delivery {
                    got += 1;
                    if got == frames {
                        last = Some(Instant::now());
                    }
                }
            }
            conn.join().await.unwrap();
            let _ = done_tx.send((got, last));
        });
    }
    let body = Bytes::from(frame(size)[4..].to_vec());
    let start = Instant::now();
    let conn = rt
        .clone()
        .connect_with(addr, options, DriverConfig::default(), PacketConnection::new(out.config()))
        .await
        .unwrap();
    for _ in 0..frames {
        conn.send(Command::SendBody(body.clone())).await.unwrap();
    }
    conn.join().await.unwrap();
    let (got, last) = done_rx.await.unwrap();
    assert_eq!(got, frames);
    Measurement { name: out.label(name), size, frames, elapsed: last.unwrap() - start }
}

/// Switchboard's direct async driver on runtime `rt`: the server task runs a `Direct` over the
/// accepted stream counting events; the client `connect_direct`s and `send`s a
/// `Command::SendBody` per frame from its own task, then closes gracefully. No driver tasks,
/// no channels.
async fn sb_async_direct<R: Runtime>(rt: R, name: &str, size: usize, frames: u64, out: Out) -> Measurement {
    let listener = rt.listen("127.0.0.1:0").unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let options = SocketOptions::new().nodelay(true);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let (rt2, options) = (rt.clone(), options.clone());
        rt.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            options.apply(&*stream.socket_ref()).unwrap();
            let mut conn = Direct::new(rt2, stream, PacketConnection::new(out.config()), &direct_config());
            let mut got = 0u64;
            let mut last = None;
            while let Some(event) = conn.recv().await {
                let Event::Frame(_) = event.unwrap();
                got += 1;
                if got == frames {
                    last = Some(Instant::now());
                }
            }
            let _ = done_tx.send((got, last));
        });
    }
    let body = Bytes::from(frame(size)[4..].to_vec());
    let start = Instant::now();
    let mut conn =
        rt.clone().connect_direct(addr, options, direct_config(), PacketConnection::new(out.config())).await.unwrap();
    for _ in 0..frames {
        conn.send(Command::SendBody(body.clone())).await.unwrap();
    }
    conn.close_and_join().await.unwrap();
    let (got, last) = done_rx.await.unwrap();
    assert_eq!(got, frames);
    Measurement { name: out.label(&format!("{name}-direct")), size, frames, elapsed: last.unwrap() - start }
}

/// The direct drivers read 64 KiB at a time, like every baseline here (`BUF`).
fn direct_config() -> DriverConfig {
    DriverConfig::default().with_read_chunk(BUF)
}

fn sb_tokio_direct(size: usize, frames: u64, out: Out) -> Measurement {
    tokio_runtime().block_on(sb_async_direct(switchboard_tokio::Tokio, "sb-tokio", size, frames, out))
}

fn sb_smol_direct(size: usize, frames: u64, out: Out) -> Measurement {
    smol::block_on(sb_async_direct(switchboard_smol::Smol, "sb-smol", size, frames, out))
}

fn sb_async_std_direct(size: usize, frames: u64, out: Out) -> Measurement {
    async_std::task::block_on(sb_async_direct(switchboard_async_std::AsyncStd, "sb-async-std", size, frames, out))
}

fn sb_tokio(size: usize, frames: u64, out: Out) -> Measurement {
    tokio_runtime().block_on(sb_async(switchboard_tokio::Tokio, "sb-tokio", size, frames, out))
}

fn sb_smol(size: usize, frames: u64, out: Out) -> Measurement {
    smol::block_on(sb_async(switchboard_smol::Smol, "sb-smol", size, frames, out))
}

fn sb_async_std(size: usize, frames: u64, out: Out) -> Measurement {
    async_std::task::block_on(sb_async(switchboard_async_std::AsyncStd, "sb-async-std", size, frames, out))
}

type Bench = fn(usize, u64, Out) -> Measurement;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME`: run only the Switchboard driver NAME (std, tokio, smol, async-std) with the
    // baselines, e.g. under perf.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let profile = args.iter().any(|a| a == "--profile");
    // `--out 0|128k`: one OUT set-up only.
    let outs: Vec<Out> = match args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).map(String::as_str)
    {
        Some("0") => vec![Out::Zero],
        Some("128k") => vec![Out::Coalesce],
        _ => vec![Out::Zero, Out::Coalesce],
    };
    // `--long`: 8× the frames per row (runs of a few hundred ms instead of ~40 ms at 64 B, so
    // scheduling noise matters less).
    let long = args.iter().any(|a| a == "--long");
    let (total, runs) = if quick { (16u64 << 20, 1) } else { (128u64 << 20, 3) };
    let (total, max_frames) = if long { (total * 8, 8_000_000) } else { (total, 1_000_000) };
    let drivers: [(&str, Bench); 8] = [
        ("direct", sb_direct),
        ("std", sb_std),
        ("tokio-direct", sb_tokio_direct),
        ("smol-direct", sb_smol_direct),
        ("async-std-direct", sb_async_std_direct),
        ("tokio", sb_tokio),
        ("smol", sb_smol),
        ("async-std", sb_async_std),
    ];
    let mut results = Vec::new();
    // `--size N`: one body size only.
    let sizes = match args.iter().position(|a| a == "--size").and_then(|i| args.get(i + 1)) {
        Some(n) => vec![n.parse::<usize>().expect("--size takes a byte count")],
        None => vec![64usize, 1024, 64 * 1024],
    };
    for size in sizes {
        let frames = frames_for(size, total, 1_000, max_frames);
        // `--profile`: no baselines and no table (ratios need them): only the drivers, for perf.
        if !profile {
            results.push(best_of(runs, || raw(size, frames)));
            results.push(best_of(runs, || raw_tokio(size, frames)));
            results.push(best_of(runs, || tokio_util(size, frames)));
        }
        for (name, bench) in drivers {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            for out in outs.iter().copied() {
                results.push(best_of(runs, || bench(size, frames, out)));
            }
        }
    }
    if profile {
        for m in &results {
            println!("{} {} B: {:.0} msg/s", m.name, m.size, m.frames as f64 / m.elapsed.as_secs_f64());
        }
        return;
    }
    print_table(&results, "raw", "tokio-util");
    println!();
    println!("async drivers against the raw tokio limit (here \"÷ raw\" is ÷ raw-tokio):");
    print_table(
        &results
            .iter()
            .filter(|m| {
                m.name == "raw-tokio"
                    || m.name == "tokio-util"
                    || m.name.starts_with("sb-") && !m.name.starts_with("sb-std ") && !m.name.starts_with("sb-direct ")
            })
            .cloned()
            .collect::<Vec<_>>(),
        "raw-tokio",
        "tokio-util",
    );
}
