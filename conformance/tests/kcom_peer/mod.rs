//! Running the independent Python KCOM5 peer (`shared/peers/kcom_peer.py`) next to our API.
#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv6Addr, TcpListener};
use std::process::{Child, Command, Stdio};

use switchboard_std::kcom::{KcomOptions, Listener};

pub use switchboard_conformance::require_shared_dir as shared_dir;

/// Whether `[::1]` can be bound here; prints why a test skips when it cannot.
pub fn ipv6_or_skip(test: &str) -> bool {
    match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{test}: skipped, IPv6 loopback is unavailable: {e}");
            false
        }
    }
}

/// A port that was free a moment ago (bind port 0, read it, drop), so tests run in parallel.
pub fn free_port(ipv4: bool) -> u16 {
    let listener = if ipv4 { TcpListener::bind("127.0.0.1:0") } else { TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) };
    listener.unwrap().local_addr().unwrap().port()
}

/// Options for our side: the given family and port, a deadline generous enough for slow CI.
pub fn options(ipv4: bool, port: u16) -> KcomOptions {
    KcomOptions::new().ipv4(ipv4).port(port).close_secs(60.0)
}

/// A listener for our sender on a system-picked port, and its options.
pub fn our_listener(ipv4: bool) -> (Listener, KcomOptions) {
    let options = options(ipv4, 0);
    let listener = Listener::bind(&options).unwrap();
    let options = options.port(listener.port());
    (listener, options)
}

/// Start the peer with `args` plus the family and port flags; stdout and stderr piped.
pub fn start_peer(role: &str, ipv4: bool, port: u16, args: &[&str]) -> Child {
    let mut command = Command::new("python3");
    command.arg(shared_dir().join("peers/kcom_peer.py")).arg(role);
    if ipv4 {
        command.arg("--ipv4");
    }
    command
        .args(["--port", &port.to_string(), "--timeout", "60"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run the KCOM5 peer")
}

/// Start the peer's `send` and wait until it says it is listening.
pub fn peer_sender(ipv4: bool, args: &[&str]) -> (Child, u16) {
    let port = free_port(ipv4);
    let mut child = start_peer("send", ipv4, port, args);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "peer did not start: {line:?} {}", stderr_of(&mut child));
    (child, port)
}

/// Wait for the peer; its exit code, stdout and stderr.
pub fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stderr_of(child: &mut Child) -> String {
    let _ = child.kill();
    let mut text = String::new();
    if let Some(stderr) = child.stderr.as_mut() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// The peer's `recv` result line.
#[derive(Debug, PartialEq, Eq)]
pub struct PeerGot {
    pub msg: String,
    pub data_len: u64,
    pub sha256: String,
}

/// Parse the JSON line the peer's `recv` prints.
pub fn peer_got(stdout: &str) -> PeerGot {
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
    PeerGot {
        msg: line["msg"].as_str().unwrap().to_owned(),
        data_len: line["data_len"].as_u64().unwrap(),
        sha256: line["sha256"].as_str().unwrap().to_owned(),
    }
}

/// The byte at offset `i` of the peer's `--data-len` pattern.
pub fn pattern_byte(i: u64) -> u8 {
    ((i * 131 + 7) % 251) as u8
}

/// The peer's pattern as a reader: `len` bytes, produced as they are read (copied from one
/// 251-byte period, since byte `i` depends only on `i mod 251`).
pub struct Pattern {
    at: u64,
    len: u64,
    period: [u8; 251],
}

impl Pattern {
    /// `len` bytes of the pattern.
    pub fn new(len: u64) -> Self {
        Pattern { at: 0, len, period: std::array::from_fn(|i| pattern_byte(i as u64)) }
    }

    /// Whether `chunk` is the pattern at offset `at`.
    pub fn matches(&self, at: u64, chunk: &[u8]) -> bool {
        let mut offset = (at % 251) as usize;
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = rest.len().min(251 - offset);
            if rest[..n] != self.period[offset..offset + n] {
                return false;
            }
            rest = &rest[n..];
            offset = 0;
        }
        true
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.len - self.at).unwrap_or(usize::MAX));
        let mut offset = (self.at % 251) as usize;
        let mut filled = 0;
        while filled < n {
            let take = (n - filled).min(251 - offset);
            buf[filled..filled + take].copy_from_slice(&self.period[offset..offset + take]);
            filled += take;
            offset = 0;
        }
        self.at += n as u64;
        Ok(n)
    }
}
