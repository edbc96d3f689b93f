//! Which side of the async `Direct` framing run costs the time: every pairing of a raw tokio
//! sender/receiver (64 KiB BufWriter/BufReader) with a `Direct` one, over loopback TCP, in one
//! run, 1 KiB frames by default (`--size N`, `--out 0|128k`, `--runs N`).
//!
//! Run: `cargo run --release -p switchboard-bench --bin split -- --size 1024`

use std::time::Instant;

use bytes::Bytes;
use switchboard_bench::{best_of, frames_for, Measurement};
use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
use switchboard_rt::{Direct, DriverConfig, Listener, RuntimeExt, SocketOptions, SocketRef};
use switchboard_tokio::Tokio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUF: usize = 64 * 1024;

fn frame(size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(size + 4);
    f.extend_from_slice(&((size + 4) as u32).to_le_bytes());
    f.extend((0..size).map(|i| (i % 251) as u8));
    f
}

fn config(out: usize) -> FramingConfig {
    FramingConfig::packet(1 << 20, out)
}

async fn run(size: usize, frames: u64, out: usize, direct_tx: bool, direct_rx: bool) -> Measurement {
    let listener = Tokio.listen("127.0.0.1:0").unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let options = SocketOptions::new().nodelay(true);
    let dconfig = DriverConfig::default().with_read_chunk(BUF);
    let server = {
        let (options, dconfig) = (options.clone(), dconfig.clone());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            options.apply(&*stream.socket_ref()).unwrap();
            let mut got = 0u64;
            if direct_rx {
                let mut conn = Direct::new(Tokio, stream, PacketConnection::new(config(out)), &dconfig);
                while let Some(event) = conn.recv().await {
                    let Event::Frame(_) = event.unwrap();
                    got += 1;
                }
            } else {
                let mut reader = tokio::io::BufReader::with_capacity(BUF, stream.0);
                let mut body = vec![0u8; size];
                let mut header = [0u8; 4];
                while reader.read_exact(&mut header).await.is_ok() {
                    let len = u32::from_le_bytes(header) as usize - 4;
                    reader.read_exact(&mut body[..len]).await.unwrap();
                    got += 1;
                }
            }
            (got, Instant::now())
        })
    };
    let start = Instant::now();
    if direct_tx {
        let body = Bytes::from(frame(size)[4..].to_vec());
        let mut conn = Tokio.connect_direct(addr, options, dconfig, PacketConnection::new(config(out))).await.unwrap();
        for _ in 0..frames {
            conn.send(Command::SendBody(body.clone())).await.unwrap();
        }
        conn.close_and_join().await.unwrap();
    } else {
        let wire = frame(size);
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut writer = tokio::io::BufWriter::with_capacity(BUF, stream);
        for _ in 0..frames {
            writer.write_all(&wire).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        // The peer closes after EOF; wait for it so both variants end alike.
        let mut rest = Vec::new();
        let _ = writer.into_inner().read_to_end(&mut rest).await;
    }
    let (got, last) = server.await.unwrap();
    assert_eq!(got, frames);
    let name = format!("{} -> {}", if direct_tx { "direct" } else { "raw" }, if direct_rx { "direct" } else { "raw" });
    Measurement { name, size, frames, elapsed: last - start }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let size = arg("--size").map_or(1024, |s| s.parse().unwrap());
    let out = match arg("--out").as_deref() {
        Some("128k") => 128 * 1024,
        _ => 0,
    };
    let runs = arg("--runs").map_or(5, |s| s.parse().unwrap());
    let only = arg("--only");
    let frames = frames_for(size, 128 << 20, 1_000, 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut base = None;
    for (tx, rx) in [(false, false), (true, false), (false, true), (true, true)] {
        let label = format!("{}{}", if tx { "d" } else { "r" }, if rx { "d" } else { "r" });
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let m = best_of(runs, || rt.block_on(run(size, frames, out, tx, rx)));
        let base = *base.get_or_insert(m.rate());
        println!("{:<18} {size:>6} B  {:>10.0} msg/s  {:.2}×", m.name, m.rate(), m.rate() / base);
    }
}
