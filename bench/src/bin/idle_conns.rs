//! Idle-connection scale: one switchboard-tokio server (`RuntimeExt::serve`, a
//! `PacketConnection` per connection, a handler task that holds the `Connection` and waits for
//! events) holding N concurrent idle TCP connections on loopback. Reports the server's resident
//! memory (VmRSS) before and after, per connection.
//!
//! The clients run in a child process of this same binary (`--client ADDR N SOURCES`), so their
//! memory is not counted; they bind to 127.0.0.2, 127.0.0.3, … before connecting so N is not
//! limited by one source address's ephemeral ports. Both processes raise RLIMIT_NOFILE.
//!
//! Run: `cargo run --release -p switchboard-bench --bin idle_conns [-- --conns 50000 --sources 8] [--direct]`
//! (`--direct`: the server uses `RuntimeExt::serve_direct`, one task per connection).
//! (`--read-chunk B`, `--events N`, `--commands N` change the server's `DriverConfig`, to see
//! what each buffer costs an idle connection).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_proto::stage::{FramingConfig, PacketConnection};
use switchboard_rt::{DriverConfig, RuntimeExt, SocketOptions};
use switchboard_tokio::Tokio;

/// Raise the open-file limit (soft and hard) so `want` sockets fit; returns the soft limit.
fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it, go as far as the hard limit.
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::NOFILE, want.max(soft), want.max(hard)) {
        eprintln!("cannot raise RLIMIT_NOFILE to {want} (hard limit {hard}): {e}");
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
    rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(s, _)| s).unwrap_or(soft)
}

/// This process's resident set size in bytes, from /proc/self/status.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The child: open `n` connections from `sources` source addresses, report, hold them until
/// stdin closes.
fn client(addr: SocketAddr, n: usize, sources: usize) {
    raise_nofile(n as u64 + 1024);
    let mut conns = Vec::with_capacity(n);
    let mut failed = None;
    for i in 0..n {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i % sources) as u8);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
        let connected = socket.and_then(|s| {
            s.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
            s.connect(&addr.into())?;
            Ok(TcpStream::from(s))
        });
        match connected {
            Ok(s) => conns.push(s),
            Err(e) => {
                failed = Some(format!("connection {i} from {source}: {e}"));
                break;
            }
        }
    }
    println!("connected {}", conns.len());
    if let Some(why) = failed {
        println!("failed {why}");
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    // Hold every connection until the server is done measuring.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(conns);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        let addr: SocketAddr = args[i + 1].parse().expect("client address");
        let n: usize = args[i + 2].parse().expect("connection count");
        let sources: usize = args[i + 3].parse().expect("source count");
        return client(addr, n, sources);
    }
    let n: usize = arg(&args, "--conns", 50_000);
    let sources: usize = arg(&args, "--sources", 8).clamp(1, 250);
    let limit = raise_nofile(n as u64 + 1024);
    println!("RLIMIT_NOFILE (soft) now {limit}");

    // The driver's buffers, to see what each costs an idle connection (defaults unless given).
    let defaults = DriverConfig::default();
    let config = DriverConfig::default()
        .with_read_chunk(arg(&args, "--read-chunk", defaults.read_chunk))
        .with_events(arg(&args, "--events", defaults.events))
        .with_commands(arg(&args, "--commands", defaults.commands));
    println!(
        "driver config: read_chunk {} B, events {}, commands {}",
        config.read_chunk, config.events, config.commands
    );
    // `--direct`: serve with `serve_direct` (one task per connection) instead of `serve_with`.
    let direct = args.iter().any(|a| a == "--direct");
    println!(
        "server: {}",
        if direct { "serve_direct (one task per connection)" } else { "serve_with (driver task + handler task)" }
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (addr, before) = rt.block_on(async {
        let listener = Tokio.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counter = accepted.clone();
        let make = move |_: &SocketAddr| {
            counter.fetch_add(1, Ordering::Relaxed);
            PacketConnection::new(FramingConfig::default())
        };
        if direct {
            // One task per connection: the machine is driven inside the application's task.
            tokio::spawn(Tokio.serve_direct(listener, SocketOptions::new(), config, make, |mut conn| async move {
                while conn.recv().await.is_some() {}
            }));
        } else {
            // A driver task plus the application's task, which holds the `Connection` and
            // waits for events.
            tokio::spawn(Tokio.serve_with(listener, SocketOptions::new(), config, make, |conn| async move {
                while conn.recv().await.is_some() {}
            }));
        }
        // Let the runtime's threads and the listener settle before the baseline.
        tokio::time::sleep(Duration::from_millis(200)).await;
        (addr, rss())
    });

    let start = Instant::now();
    let exe = std::env::current_exe().unwrap();
    let mut child = Process::new(exe)
        .args(["--client", &addr.to_string(), &n.to_string(), &sources.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let connected: usize = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("connected ").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    for line in lines.map_while(Result::ok).take_while(|l| l != "ready") {
        println!("client: {line}");
    }
    // Wait until the server has accepted every connection the client made.
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::Relaxed) < connected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let setup = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss();
    let held = accepted.load(Ordering::Relaxed);
    println!("requested {n}, client connected {connected}, server accepted {held} in {setup:.2?}");
    println!("server VmRSS before {} KiB, after {} KiB", before / 1024, after / 1024);
    if held > 0 {
        let per = (after.saturating_sub(before)) as f64 / held as f64;
        println!("RSS per connection: {:.0} bytes ({:.2} KiB); target <= 4 KiB", per, per / 1024.0);
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
