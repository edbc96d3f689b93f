//! Running the independent Python KCOM5 peer (`shared/peers/kcom_peer.py`) next to our APIs,
//! and [`Api`]: the blocking and the async KCOM5 APIs behind one face, so every case runs
//! through both.
#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use switchboard_std::kcom::{self as blocking, Incoming, KcomError, KcomListener, KcomOptions, Received};
use switchboard_tokio::{kcom as nonblocking, Tokio};

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

/// A listener for our sender (of `api`) on a system-picked port, and its options.
pub fn our_listener(api: Api, ipv4: bool) -> (Bound, KcomOptions) {
    let options = options(ipv4, 0);
    let listener = api.bind(&options).unwrap();
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

impl futures_io::AsyncRead for Pattern {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.read(buf))
    }
}

/// The KCOM5 API under test: `switchboard_std::kcom`, or `switchboard_tokio::kcom` (the async
/// API, `switchboard_rt::kcom`) on a shared tokio runtime. They speak one vocabulary, so a case
/// is written once and run through both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Std,
    Tokio,
}

/// The `(done, total)` progress reports of a transfer, in order.
pub type Reports = Vec<(u64, u64)>;

/// Both APIs.
pub const APIS: [Api; 2] = [Api::Std, Api::Tokio];

/// The runtime the async API runs on in these tests.
fn tokio() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// A bound sender of either API.
pub enum Bound {
    Std(KcomListener),
    Tokio(nonblocking::KcomListener<Tokio>),
}

impl Api {
    /// `KcomListener::bind`.
    pub fn bind(self, options: &KcomOptions) -> Result<Bound, KcomError> {
        self.bind_to(&[options.addr()], options)
    }

    /// `KcomListener::bind_to`.
    pub fn bind_to(self, addrs: &[SocketAddr], options: &KcomOptions) -> Result<Bound, KcomError> {
        match self {
            Api::Std => KcomListener::bind_to(addrs, options).map(Bound::Std),
            Api::Tokio => {
                // Tokio registers the socket with the reactor of the runtime it is entered in.
                let _entered = tokio().enter();
                nonblocking::KcomListener::bind_to(&Tokio, addrs, options).map(Bound::Tokio)
            }
        }
    }

    /// `receive`.
    pub fn receive(self, options: &KcomOptions) -> Result<(String, Bytes), KcomError> {
        match self {
            Api::Std => blocking::receive(options),
            Api::Tokio => tokio().block_on(nonblocking::receive(&Tokio, options)),
        }
    }

    /// `connect_to`, then `receive`; also says which address answered.
    pub fn receive_from(
        self,
        addrs: &[SocketAddr],
        options: &KcomOptions,
    ) -> Result<(SocketAddr, (String, Bytes)), KcomError> {
        match self {
            Api::Std => {
                let connected = blocking::connect_to(addrs, options)?;
                Ok((connected.peer_addr(), connected.receive()?))
            }
            Api::Tokio => tokio().block_on(async {
                let connected = nonblocking::connect_to(&Tokio, addrs, options).await?;
                Ok((connected.peer_addr(), connected.receive().await?))
            }),
        }
    }

    /// `receive_with`.
    pub fn receive_with(
        self,
        options: &KcomOptions,
        on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
    ) -> Result<Received, KcomError> {
        match self {
            Api::Std => blocking::receive_with(options, on_piece),
            Api::Tokio => tokio().block_on(nonblocking::receive_with(&Tokio, options, on_piece)),
        }
    }

    /// `receive_to` into memory, with progress reports collected.
    pub fn receive_to(self, options: &KcomOptions) -> Result<(Received, Vec<u8>, Reports), KcomError> {
        let mut sink = Vec::new();
        let mut reports = Vec::new();
        let received = match self {
            Api::Std => blocking::receive_to(options, &mut sink, Some(&mut |done, total| reports.push((done, total)))),
            Api::Tokio => tokio().block_on(nonblocking::receive_to(
                &Tokio,
                options,
                &mut sink,
                Some(&mut |done, total| reports.push((done, total))),
            )),
        }?;
        Ok((received, sink, reports))
    }
}

impl Bound {
    /// `KcomListener::port`.
    pub fn port(&self) -> u16 {
        match self {
            Bound::Std(listener) => listener.port(),
            Bound::Tokio(listener) => listener.port(),
        }
    }

    /// `KcomListener::local_addr`.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Bound::Std(listener) => listener.local_addr(),
            Bound::Tokio(listener) => listener.local_addr(),
        }
    }

    /// `KcomListener::send`.
    pub fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        match self {
            Bound::Std(listener) => listener.send(msg, data),
            Bound::Tokio(listener) => tokio().block_on(listener.send(msg, data)),
        }
    }

    /// `accept`, then `send`; also says who connected.
    pub fn accept_and_send(self, msg: &str, data: impl Into<Bytes>) -> Result<SocketAddr, KcomError> {
        match self {
            Bound::Std(listener) => {
                let accepted = listener.accept()?;
                let peer = accepted.peer_addr();
                accepted.send(msg, data).map(|()| peer)
            }
            Bound::Tokio(listener) => tokio().block_on(async {
                let accepted = listener.accept().await?;
                let peer = accepted.peer_addr();
                accepted.send(msg, data).await.map(|()| peer)
            }),
        }
    }

    /// `KcomListener::send_from`, with progress reports collected.
    pub fn send_from<S: Read + futures_io::AsyncRead + Unpin + Send>(
        self,
        msg: &str,
        len: u64,
        source: S,
    ) -> Result<Reports, KcomError> {
        let mut reports = Vec::new();
        let mut progress = |done, total| reports.push((done, total));
        match self {
            Bound::Std(listener) => listener.send_from(msg, len, source, Some(&mut progress)),
            Bound::Tokio(listener) => tokio().block_on(listener.send_from(msg, len, source, Some(&mut progress))),
        }?;
        Ok(reports)
    }
}
