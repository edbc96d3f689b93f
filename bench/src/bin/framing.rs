//! Framing throughput over loopback TCP: STAGE-style frames (u32 LE length including the
//! header) from one client to one server, at 64 B, 1 KiB and 64 KiB bodies.
//!
//! Implementations (each runs both ends of its connection):
//!
//! - references:
//!   - `raw`: hand-rolled blocking framing over std sockets, 64 KiB `BufWriter`/`BufReader` —
//!     the limit;
//!   - `raw-tokio`: the same over tokio sockets, 64 KiB tokio `BufWriter`/`BufReader`, on a
//!     2-worker runtime — the async limit;
//!   - `tokio-util`: `LengthDelimitedCodec` set up for the same wire format, **tuned** the way a
//!     user after throughput would set it: `FramedWrite::with_capacity(.., 64 KiB)` and
//!     `set_backpressure_boundary(64 KiB)` (the default boundary is 8 KiB, so it would write
//!     8 KiB at a time while raw writes 64 KiB), `FramedRead::with_capacity(.., 64 KiB)`, one
//!     `feed` per frame — the peer;
//! - Switchboard's `PacketConnection` on both ends, OUT = 0 and OUT = 128 KiB (commit 0), one
//!   `Command::SendBody` per frame (the command API has no batch command), reading 64 KiB at a
//!   time like the references:
//!   - in-thread / in-task (the application drives the connection itself): `sb-std-direct`
//!     (`switchboard_std::Direct`), `sb-tokio-direct`, `sb-smol-direct`, `sb-async-std-direct`
//!     (`switchboard_rt::Direct`, `connect_direct`);
//!   - shared-handle (the application on another thread or task than the driver):
//!     `sb-std-spawn` (`switchboard_std::connect`/`spawn`, events read on the server's own
//!     thread), `sb-tokio-drive`, `sb-smol-drive`, `sb-async-std-drive` (`connect_with` /
//!     `drive`, events read on the server's own task).
//!
//! Every run does the same work and is timed the same way:
//!
//! - `TCP_NODELAY` on both ends; the listener, the runtime and the server's thread or task are
//!   set up before the clock starts;
//! - the clock starts just before the client connects (connecting and setting up the
//!   connection are inside the timed span for every implementation);
//! - the client sends N frames, each with the same body (bytes `i % 251`), then closes;
//! - the receiver checks **every byte of every body** against that pattern, and its length,
//!   with one function (`Check::body`) whatever delivered the frame; the clock stops when the
//!   receiver has checked the last frame (read on the receiving side, not after the close).
//!
//! Rounds: every implementation runs once per round and size, in an order shuffled anew for
//! each round and size (seeded: `--seed`), so the VM's slow and fast phases fall on all of
//! them alike. Before the first round each implementation runs once untimed at 1/8 of the
//! frames (warm-up). The report gives, per size and implementation, min / median / max of its
//! rate over the rounds and of its ratio to each reference **measured in the same round**.
//!
//! Flags:
//!
//! - `--rounds N`: rounds (default 7; 3 with `--quick`);
//! - `--seed N`: seed of the run order (default 1);
//! - `--quick`: 16 MiB per run instead of 256 MiB, and 3 rounds;
//! - `--long`: 8× the frames per run (up to 16M frames instead of 2M);
//! - `--only S`: only the Switchboard implementations whose name contains `S` (the references
//!   always run: the ratios need them);
//! - `--size N`: one body size only;
//! - `--out 0|128k`: one OUT set-up only;
//! - `--per-round`: also print every round's order and rates;
//! - `--timeout S`: a run not finished after `S` seconds (default 60) is left hanging, counted
//!   as 0 msg/s and named under the table, and the benchmark goes on;
//! - `--profile`: no ratios (for perf): only the implementations `--only` selects, references
//!   included (without `--only`, every Switchboard one).
//!
//! Run: `cargo build --release -p switchboard-bench --bin framing`, then
//! `./target/release/framing [--rounds N] [--quick] ...`

use std::fmt::Write as _;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_bench::{frames_for, SplitMix64, Spread};
use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
use switchboard_rt::{Direct, DriverConfig, Listener, Runtime, RuntimeExt, SocketOptions, SocketRef};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Every buffer, read and write size of the references, and the Switchboard drivers' reads.
const BUF: usize = 64 * 1024;

/// The body every frame carries.
fn body(size: usize) -> Bytes {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The whole frame on the wire: header (length including itself) and body.
fn wire(size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(size + 4);
    f.extend_from_slice(&((size + 4) as u32).to_le_bytes());
    f.extend_from_slice(&body(size));
    f
}

/// What every receiver does with every frame, whatever delivered it: the body must be the
/// expected one, byte for byte; the clock stops when the last frame has passed.
struct Check {
    expected: Bytes,
    want: u64,
    got: u64,
    last: Option<Instant>,
}

impl Check {
    fn new(size: usize, want: u64) -> Self {
        Check { expected: body(size), want, got: 0, last: None }
    }

    #[inline]
    fn body(&mut self, body: &[u8]) {
        assert!(body == &self.expected[..], "frame {} has the wrong body ({} bytes)", self.got, body.len());
        self.got += 1;
        if self.got == self.want {
            self.last = Some(Instant::now());
        }
    }

    /// When the last frame was checked; panics unless exactly the frames sent arrived.
    fn finish(self) -> Instant {
        assert_eq!(self.got, self.want, "frames received");
        self.last.expect("the last frame")
    }
}

/// The limit: blocking std sockets, buffered, frames parsed by hand.
fn raw(size: usize, frames: u64) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut check = Check::new(size, frames);
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::with_capacity(BUF, stream);
        let mut body = vec![0u8; size];
        let mut header = [0u8; 4];
        while reader.read_exact(&mut header).is_ok() {
            let len = u32::from_le_bytes(header) as usize - 4;
            reader.read_exact(&mut body[..len]).unwrap();
            check.body(&body[..len]);
        }
        check.finish()
    });
    let wire = wire(size);
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = BufWriter::with_capacity(BUF, stream);
    for _ in 0..frames {
        writer.write_all(&wire).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    server.join().unwrap() - start
}

fn stage_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .length_adjustment(-4)
        .max_frame_length(1 << 24)
        .new_codec()
}

/// The peer: tokio-util's length-delimited codec for the STAGE wire format, with 64 KiB
/// buffers and a 64 KiB backpressure boundary (so it writes as much per call as raw does).
fn tokio_util(size: usize, frames: u64) -> Duration {
    tokio_runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = Check::new(size, frames);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut read = FramedRead::with_capacity(stream, stage_codec(), BUF);
            while let Some(frame) = read.next().await {
                check.body(&frame.unwrap());
            }
            check.finish()
        });
        let body = body(size);
        let start = Instant::now();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut write = FramedWrite::with_capacity(stream, stage_codec(), BUF);
        write.set_backpressure_boundary(BUF);
        for _ in 0..frames {
            // `feed` queues without flushing; FramedWrite writes once its buffer holds 64 KiB.
            write.feed(body.clone()).await.unwrap();
        }
        SinkExt::<Bytes>::close(&mut write).await.unwrap();
        server.await.unwrap() - start
    })
}

/// The raw tokio limit: hand-rolled framing over a tokio `TcpStream` with 64 KiB
/// `BufWriter` / `BufReader`, on the same 2-worker runtime as the async peers.
fn raw_tokio(size: usize, frames: u64) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio_runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut check = Check::new(size, frames);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut reader = tokio::io::BufReader::with_capacity(BUF, stream);
            let mut body = vec![0u8; size];
            let mut header = [0u8; 4];
            while reader.read_exact(&mut header).await.is_ok() {
                let len = u32::from_le_bytes(header) as usize - 4;
                reader.read_exact(&mut body[..len]).await.unwrap();
                check.body(&body[..len]);
            }
            check.finish()
        });
        let wire = wire(size);
        let start = Instant::now();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut writer = tokio::io::BufWriter::with_capacity(BUF, stream);
        for _ in 0..frames {
            writer.write_all(&wire).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        server.await.unwrap() - start
    })
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The two PacketConnection set-ups measured: OUT = 0 (every frame handed to the driver at
/// once: bodies up to 1 KiB copied with their header, larger ones as a header and the body)
/// and OUT = 128 KiB with commit 0 (coalesced until the driver drains; 128 KiB so a 64 KiB body
/// plus header still fits OUT).
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

    fn label(self) -> &'static str {
        match self {
            Out::Zero => "out=0",
            Out::Coalesce => "out=128k",
        }
    }
}

fn std_settings() -> switchboard_std::Settings<Command> {
    switchboard_std::Settings::packet().socket(SocketOptions::new().nodelay(true)).read_chunk(BUF)
}

/// The async drivers read 64 KiB at a time, like every reference here (`BUF`).
fn async_config() -> DriverConfig {
    DriverConfig::default().with_read_chunk(BUF)
}

/// Shared-handle std: both ends `spawn` a driver thread; the server's own thread reads the
/// events, the client's main thread sends through the `Handle`, then closes gracefully.
fn sb_std_spawn(size: usize, frames: u64, out: Out) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut check = Check::new(size, frames);
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut running = switchboard_std::spawn(stream, PacketConnection::new(out.config()), std_settings()).unwrap();
        for notice in &mut running.events {
            match notice {
                switchboard_std::Notice::Event(Event::Frame(frame)) => check.body(&frame[4..]),
                other => panic!("unexpected {other:?}"),
            }
        }
        let last = check.finish();
        running.close_and_join().unwrap();
        last
    });
    let body = body(size);
    let start = Instant::now();
    let client = switchboard_std::connect(addr, PacketConnection::new(out.config()), std_settings()).unwrap();
    for _ in 0..frames {
        client.handle.send(Command::SendBody(body.clone())).unwrap();
    }
    client.close_and_join().unwrap();
    server.join().unwrap() - start
}

/// In-thread std: the server iterates a `Direct` over the accepted stream; the client `send`s
/// on its own `Direct`, then closes gracefully.
fn sb_std_direct(size: usize, frames: u64, out: Out) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut check = Check::new(size, frames);
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut conn =
            switchboard_std::Direct::new(stream, PacketConnection::new(out.config()), std_settings()).unwrap();
        for event in &mut conn {
            let Event::Frame(frame) = event.unwrap();
            check.body(&frame[4..]);
        }
        check.finish()
    });
    let body = body(size);
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    let mut client = switchboard_std::Direct::new(stream, PacketConnection::new(out.config()), std_settings()).unwrap();
    for _ in 0..frames {
        client.send(Command::SendBody(body.clone())).unwrap();
    }
    client.close_and_join().unwrap();
    server.join().unwrap() - start
}

/// Shared-handle async on runtime `rt`: the server task `drive`s the accepted stream (the
/// driver is a task of its own) and reads the events; the client `connect_with`s and awaits
/// `Connection::send` per frame, then joins.
async fn sb_async_drive<R: Runtime>(rt: R, size: usize, frames: u64, out: Out) -> Duration {
    let listener = rt.listen("127.0.0.1:0").unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let options = SocketOptions::new().nodelay(true);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let mut check = Check::new(size, frames);
    {
        let (rt2, options) = (rt.clone(), options.clone());
        rt.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            options.apply(&*stream.socket_ref()).unwrap();
            let conn = rt2.drive(PacketConnection::new(out.config()), stream, &async_config());
            while let Some(delivery) = conn.recv().await {
                let Event::Frame(frame) = delivery.unwrap();
                check.body(&frame[4..]);
            }
            let last = check.finish();
            conn.join().await.unwrap();
            let _ = done_tx.send(last);
        });
    }
    let body = body(size);
    let start = Instant::now();
    let conn =
        rt.clone().connect_with(addr, options, async_config(), PacketConnection::new(out.config())).await.unwrap();
    for _ in 0..frames {
        conn.send(Command::SendBody(body.clone())).await.unwrap();
    }
    conn.join().await.unwrap();
    done_rx.await.unwrap() - start
}

/// In-task async on runtime `rt`: the server task runs a `Direct` over the accepted stream;
/// the client `connect_direct`s and `send`s per frame from its own task, then closes
/// gracefully. No driver tasks, no channels.
async fn sb_async_direct<R: Runtime>(rt: R, size: usize, frames: u64, out: Out) -> Duration {
    let listener = rt.listen("127.0.0.1:0").unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let options = SocketOptions::new().nodelay(true);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let mut check = Check::new(size, frames);
    {
        let (rt2, options) = (rt.clone(), options.clone());
        rt.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            options.apply(&*stream.socket_ref()).unwrap();
            let mut conn = Direct::new(rt2, stream, PacketConnection::new(out.config()), &async_config());
            while let Some(event) = conn.recv().await {
                let Event::Frame(frame) = event.unwrap();
                check.body(&frame[4..]);
            }
            let _ = done_tx.send(check.finish());
        });
    }
    let body = body(size);
    let start = Instant::now();
    let mut conn =
        rt.clone().connect_direct(addr, options, async_config(), PacketConnection::new(out.config())).await.unwrap();
    for _ in 0..frames {
        conn.send(Command::SendBody(body.clone())).await.unwrap();
    }
    conn.close_and_join().await.unwrap();
    done_rx.await.unwrap() - start
}

fn sb_tokio_direct(size: usize, frames: u64, out: Out) -> Duration {
    tokio_runtime().block_on(sb_async_direct(switchboard_tokio::Tokio, size, frames, out))
}

fn sb_smol_direct(size: usize, frames: u64, out: Out) -> Duration {
    smol::block_on(sb_async_direct(switchboard_smol::Smol, size, frames, out))
}

fn sb_async_std_direct(size: usize, frames: u64, out: Out) -> Duration {
    async_std::task::block_on(sb_async_direct(switchboard_async_std::AsyncStd, size, frames, out))
}

fn sb_tokio_drive(size: usize, frames: u64, out: Out) -> Duration {
    tokio_runtime().block_on(sb_async_drive(switchboard_tokio::Tokio, size, frames, out))
}

fn sb_smol_drive(size: usize, frames: u64, out: Out) -> Duration {
    smol::block_on(sb_async_drive(switchboard_smol::Smol, size, frames, out))
}

fn sb_async_std_drive(size: usize, frames: u64, out: Out) -> Duration {
    async_std::task::block_on(sb_async_drive(switchboard_async_std::AsyncStd, size, frames, out))
}

/// One reference run once: (`size`, `frames`) → time.
type Reference = fn(usize, u64) -> Duration;

/// One Switchboard driver run once: (`size`, `frames`, OUT) → time.
type Driver = fn(usize, u64, Out) -> Duration;

/// One implementation: its name and how to run it once (`size`, `frames`) → time.
struct Implementation {
    name: String,
    run: Arc<dyn Fn(usize, u64) -> Duration + Send + Sync>,
}

impl Implementation {
    /// Run once on a thread of its own; `None` if it has not finished within `timeout` (the
    /// run is then left where it hangs, and the benchmark goes on). A panic (a wrong body, a
    /// driver error) ends the benchmark.
    fn run_once(&self, size: usize, frames: u64, timeout: Duration) -> Option<Duration> {
        let (tx, rx) = mpsc::channel();
        let run = self.run.clone();
        let thread = thread::Builder::new()
            .name("run".into())
            .spawn(move || {
                let _ = tx.send(run(size, frames));
            })
            .unwrap();
        match rx.recv_timeout(timeout) {
            Ok(elapsed) => {
                thread.join().unwrap();
                Some(elapsed)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the run sends its result before it ends"),
            },
        }
    }
}

/// The references every ratio is taken against, in the order the ratio columns show them.
const REFERENCES: [&str; 3] = ["tokio-util", "raw", "raw-tokio"];

fn implementations(only: Option<&str>, outs: &[Out], profile: bool) -> Vec<Implementation> {
    let mut list = Vec::new();
    let references: [(&str, Reference); 3] = [("raw", raw), ("raw-tokio", raw_tokio), ("tokio-util", tokio_util)];
    for (name, run) in references {
        // The ratios need every reference; `--profile` (no ratios) takes only those selected.
        if !profile || only.is_some_and(|o| name.contains(o)) {
            list.push(Implementation { name: name.into(), run: Arc::new(run) });
        }
    }
    let drivers: [(&str, Driver); 8] = [
        ("sb-std-direct", sb_std_direct),
        ("sb-tokio-direct", sb_tokio_direct),
        ("sb-smol-direct", sb_smol_direct),
        ("sb-async-std-direct", sb_async_std_direct),
        ("sb-std-spawn", sb_std_spawn),
        ("sb-tokio-drive", sb_tokio_drive),
        ("sb-smol-drive", sb_smol_drive),
        ("sb-async-std-drive", sb_async_std_drive),
    ];
    for (driver, run) in drivers {
        for &out in outs {
            let name = format!("{driver} {}", out.label());
            if only.is_some_and(|o| !name.contains(o)) {
                continue;
            }
            list.push(Implementation { name, run: Arc::new(move |size, frames| run(size, frames, out)) });
        }
    }
    list
}

struct Options {
    rounds: usize,
    seed: u64,
    total: u64,
    max_frames: u64,
    only: Option<String>,
    sizes: Vec<usize>,
    outs: Vec<Out>,
    per_round: bool,
    profile: bool,
    timeout: Duration,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| args.iter().position(|a| a == name).map(|i| args.get(i + 1).map(String::as_str));
    let with_value = ["--rounds", "--seed", "--only", "--size", "--out", "--timeout"];
    let known = ["--quick", "--long", "--per-round", "--profile"];
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        assert!(
            known.contains(&a) || with_value.contains(&a),
            "unknown argument {a:?} (see the doc comment of bench/src/bin/framing.rs)"
        );
        i += if with_value.contains(&a) { 2 } else { 1 };
    }
    let number = |name: &str| {
        value(name).map(|v| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{name} takes a number")))
    };
    let quick = flag("--quick");
    let long = flag("--long");
    let (mut total, mut max_frames) = if quick { (16u64 << 20, 2_000_000) } else { (256u64 << 20, 2_000_000) };
    if long {
        (total, max_frames) = (total * 8, max_frames * 8);
    }
    Options {
        rounds: number("--rounds").map_or(if quick { 3 } else { 7 }, |n| n.max(1) as usize),
        seed: number("--seed").unwrap_or(1),
        total,
        max_frames,
        only: value("--only").map(|v| v.expect("--only takes a name or part of one").to_string()),
        sizes: number("--size").map_or(vec![64, 1024, 64 * 1024], |n| vec![n as usize]),
        outs: match value("--out") {
            None => vec![Out::Zero, Out::Coalesce],
            Some(Some("0")) => vec![Out::Zero],
            Some(Some("128k")) => vec![Out::Coalesce],
            Some(_) => panic!("--out takes 0 or 128k"),
        },
        per_round: flag("--per-round"),
        profile: flag("--profile"),
        timeout: Duration::from_secs(number("--timeout").unwrap_or(60)),
    }
}

fn main() {
    let opts = options();
    let list = implementations(opts.only.as_deref(), &opts.outs, opts.profile);
    let frames: Vec<u64> =
        opts.sizes.iter().map(|&size| frames_for(size, opts.total, 1_000, opts.max_frames)).collect();
    let mut rng = SplitMix64::new(opts.seed);
    let mut rounds_log = String::new();

    // Warm-up: every implementation once per size at 1/8 of the frames, untimed.
    for (&size, &n) in opts.sizes.iter().zip(&frames) {
        for imp in &list {
            if imp.run_once(size, (n / 8).max(1_000), opts.timeout).is_none() {
                eprintln!("warm-up: {} at {size} B timed out", imp.name);
            }
        }
    }

    // rates[size][implementation][round], frames per second.
    let mut rates = vec![vec![Vec::with_capacity(opts.rounds); list.len()]; opts.sizes.len()];
    // (size, round, implementation) of every run that timed out; its rate counts as 0.
    let mut timeouts: Vec<(usize, usize, usize)> = Vec::new();
    for round in 0..opts.rounds {
        for (s, (&size, &n)) in opts.sizes.iter().zip(&frames).enumerate() {
            let mut order: Vec<usize> = (0..list.len()).collect();
            rng.shuffle(&mut order);
            let _ = write!(rounds_log, "round {} size {size}:", round + 1);
            for &i in &order {
                let rate = match list[i].run_once(size, n, opts.timeout) {
                    Some(elapsed) => n as f64 / elapsed.as_secs_f64(),
                    None => {
                        eprintln!(
                            "round {} size {size}: {} timed out after {:?}",
                            round + 1,
                            list[i].name,
                            opts.timeout
                        );
                        timeouts.push((s, round, i));
                        0.0
                    }
                };
                rates[s][i].push(rate);
                let _ = write!(rounds_log, " {}={:.4}M", list[i].name, rate / 1e6);
            }
            rounds_log.push('\n');
            eprintln!("round {}/{} size {size} done", round + 1, opts.rounds);
        }
    }

    println!(
        "framing: {} rounds, seed {}, order shuffled per round and size; frames per run: {}",
        opts.rounds,
        opts.seed,
        opts.sizes.iter().zip(&frames).map(|(s, n)| format!("{n} at {s} B")).collect::<Vec<_>>().join(", ")
    );
    println!("each cell: min / median / max over the rounds; ratios taken within each round");
    let reference = |name: &str| list.iter().position(|imp| imp.name == name);
    let fmt3 = |s: Spread, scale: f64, digits: usize| {
        format!("{:.d$} / **{:.d$}** / {:.d$}", s.min / scale, s.median / scale, s.max / scale, d = digits)
    };
    for (s, &size) in opts.sizes.iter().enumerate() {
        println!();
        println!("**{size} B** ({} frames per run)", frames[s]);
        println!();
        let mut head = "| implementation | M msg/s | MB/s (median) |".to_string();
        let mut rule = "|---|---|---|".to_string();
        if !opts.profile {
            for r in REFERENCES {
                let _ = write!(head, " ÷ {r} |");
                rule.push_str("---|");
            }
        }
        println!("{head}");
        println!("{rule}");
        // M msg/s needs more digits at 64 KiB, where rates are tens of thousands.
        let digits = if size >= 16 * 1024 { 4 } else { 2 };
        for (i, imp) in list.iter().enumerate() {
            let rate = Spread::of(&rates[s][i]).expect("at least one round");
            let mut row =
                format!("| {} | {} | {:.0} |", imp.name, fmt3(rate, 1e6, digits), rate.median * size as f64 / 1e6);
            if !opts.profile {
                for r in REFERENCES {
                    let cell = match reference(r) {
                        Some(j) if j != i => {
                            let ratios: Vec<f64> = rates[s][i].iter().zip(&rates[s][j]).map(|(a, b)| a / b).collect();
                            fmt3(Spread::of(&ratios).expect("at least one round"), 1.0, 2)
                        }
                        _ => "-".to_string(),
                    };
                    let _ = write!(row, " {cell} |");
                }
            }
            println!("{row}");
        }
        let timed_out: Vec<String> = timeouts
            .iter()
            .filter(|&&(ts, _, _)| ts == s)
            .map(|&(_, round, i)| format!("{} in round {}", list[i].name, round + 1))
            .collect();
        if !timed_out.is_empty() {
            println!();
            println!("timed out after {:?} (counted as 0 msg/s): {}", opts.timeout, timed_out.join(", "));
        }
    }
    if opts.per_round {
        println!();
        println!("per round, in run order (M msg/s):");
        print!("{rounds_log}");
    }
}
