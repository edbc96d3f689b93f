//! The README's main job, until the router hub exists: a STAGE packet-framing echo server on
//! 127.0.0.1 driven by `switchboard-std`, several clients exchanging numbered frames of several
//! sizes through it (some coalesced with a commit timer and explicit flushes), one text-filter
//! connection exchanging lines, every echo verified, and a short report.

use std::error::Error;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_proto::stage::{self, Command, Event, FramingConfig, PacketConnection};
use switchboard_std::{serve, spawn, Control, DriverError, Notice, Server, Settings, SocketOptions};

const PACKET_CLIENTS: u32 = 6;
const FRAMES_PER_CLIENT: u32 = 2_000;
const TEXT_LINES: u32 = 1_000;
const SIZES: [usize; 6] = [4, 33, 256, 1_500, 4_000, 12_000];

type Outcome = Result<(), DriverError<stage::Error>>;

/// Frame `i`'s body: its number, then bytes derived from it, so a misplaced or damaged frame shows.
fn body(client: u32, i: u32) -> Bytes {
    let len = SIZES[(i + client) as usize % SIZES.len()];
    let mut b: Vec<u8> = (0..len).map(|k| (k as u32 ^ i ^ client) as u8).collect();
    b[..4].copy_from_slice(&i.to_le_bytes());
    Bytes::from(b)
}

/// An echo server whose connections report how they ended.
fn echo_server(config: FramingConfig, ended: mpsc::Sender<Outcome>) -> Result<Server, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let server = serve(
        listener,
        Settings::packet().socket(SocketOptions::new().nodelay(true)),
        move |_peer| PacketConnection::new(config),
        move |_peer| EchoSession(ended.clone()),
    )?;
    Ok(server)
}

struct EchoSession(mpsc::Sender<Outcome>);

impl switchboard_std::Session<PacketConnection> for EchoSession {
    fn on_notice(&mut self, notice: Notice<Event, stage::Error>, control: &mut Control<Command>) {
        if let Notice::Event(Event::Frame(frame)) = notice {
            control.send(Command::Send(frame));
        }
    }

    fn on_finished(&mut self, _peer: std::net::SocketAddr, result: Outcome) {
        let _ = self.0.send(result);
    }
}

struct Tally {
    frames: u64,
    bytes: u64,
}

/// One packet client: send every frame from a producer thread, verify every echo in order.
fn packet_client(server: &Server, client: u32, coalesce: bool) -> Result<Tally, Box<dyn Error>> {
    let config = match coalesce {
        // Frames gather in a 64 KiB OUT buffer and go out 1 ms after the first, or on Flush.
        true => FramingConfig::packet(64 * 1024, 64 * 1024).with_commit(Duration::from_millis(1)),
        false => FramingConfig::packet(64 * 1024, 0),
    };
    let stream = TcpStream::connect(server.local_addr())?;
    stream.set_nodelay(true)?;
    let running = spawn(stream, PacketConnection::new(config), Settings::packet())?;
    let handle = running.handle.clone();
    let producer = thread::spawn(move || {
        for i in 0..FRAMES_PER_CLIENT {
            handle.send(Command::SendBody(body(client, i)))?;
            if coalesce && i % 500 == 499 {
                handle.send(Command::Flush)?;
            }
        }
        Ok::<_, switchboard_std::Closed<Command>>(())
    });
    let mut tally = Tally { frames: 0, bytes: 0 };
    for i in 0..FRAMES_PER_CLIENT {
        match running.events.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(Notice::Event(Event::Frame(frame)))) => {
                if frame[4..] != body(client, i)[..] {
                    return Err(format!("client {client}: echo {i} differs from what was sent").into());
                }
                tally.frames += 1;
                tally.bytes += frame.len() as u64;
            }
            other => return Err(format!("client {client}: expected echo {i}, got {other:?}").into()),
        }
    }
    producer.join().map_err(|_| "producer panicked")??;
    running.close_and_join()?;
    Ok(tally)
}

/// The text-filter client: lines out, the same lines back.
fn text_client(server: &Server) -> Result<Tally, Box<dyn Error>> {
    let stream = TcpStream::connect(server.local_addr())?;
    let config = FramingConfig::text(1024, 0);
    let running = spawn(stream, PacketConnection::new(config), Settings::packet())?;
    let line = |i: u32| Bytes::from(format!("line {i}: the quick brown fox {}\n", "!".repeat(i as usize % 40)));
    let handle = running.handle.clone();
    let producer = thread::spawn(move || (0..TEXT_LINES).try_for_each(|i| handle.send(Command::Send(line(i)))));
    let mut tally = Tally { frames: 0, bytes: 0 };
    for i in 0..TEXT_LINES {
        match running.events.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(Notice::Event(Event::Frame(got)))) if got == line(i) => {
                tally.frames += 1;
                tally.bytes += got.len() as u64;
            }
            other => return Err(format!("text: expected line {i}, got {other:?}").into()),
        }
    }
    producer.join().map_err(|_| "producer panicked")??;
    running.close_and_join()?;
    Ok(tally)
}

/// STAGE packet-framing echo servers on 127.0.0.1 with clients exchanging frames of several
/// sizes and text lines; every echo is verified (no options)
#[derive(clap::Parser)]
#[command(name = "framing_demo")]
struct Args {}

fn main() {
    // `--help`, and a usage error (exit 2) for any argument.
    let Args {} = clap::Parser::parse();
    if let Err(e) = demo() {
        eprintln!("framing_demo: FAILED: {e}");
        std::process::exit(1);
    }
}

fn demo() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let (ended_tx, ended) = mpsc::channel();
    let packet_server = echo_server(FramingConfig::packet(64 * 1024, 0), ended_tx.clone())?;
    let text_server = echo_server(FramingConfig::text(1024, 0), ended_tx)?;
    println!(
        "framing_demo: STAGE echo servers on {} (packet=64k,0) and {} (text=1k,0)",
        packet_server.local_addr(),
        text_server.local_addr()
    );

    let (packet, text) = thread::scope(|s| {
        let clients: Vec<_> = (0..PACKET_CLIENTS)
            .map(|c| {
                let server = &packet_server;
                s.spawn(move || packet_client(server, c, c % 2 == 1).map_err(|e| e.to_string()))
            })
            .collect();
        let text = s.spawn(|| text_client(&text_server).map_err(|e| e.to_string()));
        let packet: Result<Vec<Tally>, String> =
            clients.into_iter().map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into()))).collect();
        (packet, text.join().unwrap_or_else(|_| Err("text client panicked".into())))
    });
    let (packet, text) = (packet?, text?);

    let connections = packet_server.accepted() + text_server.accepted();
    packet_server.shutdown();
    text_server.shutdown();
    let outcomes: Vec<Outcome> = ended.try_iter().collect();
    let clean = outcomes.iter().filter(|r| r.is_ok()).count();
    if clean as u64 != connections {
        return Err(format!("{clean} of {connections} server connections ended cleanly: {outcomes:?}").into());
    }

    let elapsed = started.elapsed().as_secs_f64();
    let frames: u64 = packet.iter().map(|t| t.frames).sum::<u64>() + text.frames;
    let bytes: u64 = packet.iter().map(|t| t.bytes).sum::<u64>() + text.bytes;
    println!(
        "  packet: {PACKET_CLIENTS} clients x {FRAMES_PER_CLIENT} frames of {SIZES:?} bytes, half of them coalesced (OUT 64k, commit 1 ms, Flush every 500)"
    );
    println!("  text:   1 client x {TEXT_LINES} lines");
    println!(
        "  {frames} frames and {:.1} MiB echoed and verified, {connections} connections closed cleanly, in {:.0} ms: {:.0} frames/s, {:.1} MiB/s each way",
        bytes as f64 / 1048576.0,
        elapsed * 1e3,
        frames as f64 / elapsed,
        bytes as f64 / 1048576.0 / elapsed
    );
    Ok(())
}
