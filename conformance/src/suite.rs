//! What every suite shares: the target, the cases, the report, and a hand-written wire client.
//!
//! The client speaks the bytes of `WIRE.md` with plain `std::net` sockets and its own header
//! code, not with Switchboard's machines, so running a suite against Switchboard checks the
//! machines against an independent reading of the spec rather than against themselves.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A server under test: where it listens and what it was configured with.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its TCP address.
    pub addr: SocketAddr,
    /// Its inbound limit IN in bytes, header included (`packet` alone means 8192).
    pub max_in: usize,
    /// How long to wait for each expected frame or close before calling the case failed.
    pub timeout: Duration,
}

impl Target {
    /// A target at `addr` with the bare `packet` limit (8192) and a 2 s wait.
    pub fn new(addr: SocketAddr) -> Self {
        Target { addr, max_in: 8192, timeout: Duration::from_secs(2) }
    }

    /// Its inbound limit.
    pub fn max_in(mut self, max_in: usize) -> Self {
        self.max_in = max_in;
        self
    }

    /// How long to wait for each expected frame or close.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect once (waiting at most the timeout) and hang up: whether anything accepts
    /// connections at the address. A runner calls it first, to say "cannot connect" once rather
    /// than fail every case with it.
    pub fn probe(&self) -> io::Result<()> {
        TcpStream::connect_timeout(&self.addr, self.timeout).map(drop)
    }
}

/// How a case failed: what the target did against what the spec asks.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The target closed the connection while the case still expected something.
    #[error("the target closed the connection while {waiting_for}")]
    Closed {
        /// What the case was waiting for.
        waiting_for: String,
    },
    /// Nothing arrived in time.
    #[error("nothing arrived within {after:?} while {waiting_for}")]
    Timeout {
        /// What the case was waiting for.
        waiting_for: String,
        /// The target's timeout.
        after: Duration,
    },
    /// The target kept the connection open when the spec says it must end it.
    #[error("the connection was still open {after:?} after {sent} ({rule})")]
    StillOpen {
        /// What the case sent.
        sent: String,
        /// The rule the target broke.
        rule: &'static str,
        /// How long the case waited.
        after: Duration,
    },
    /// Bytes arrived where the case expected the connection to end.
    #[error("{got} bytes arrived after {sent}, where the connection should have ended ({rule})")]
    Unexpected {
        /// What the case sent.
        sent: String,
        /// The rule the target broke.
        rule: &'static str,
        /// How many bytes arrived.
        got: usize,
    },
    /// Something arrived, but not what the spec asks for.
    #[error("{what}: expected {expected}, got {got}")]
    Mismatch {
        /// Which part differs.
        what: String,
        /// What the spec asks for.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// The case could not talk to the target at all.
    #[error("I/O with the target failed: {0}")]
    Io(#[from] io::Error),
}

impl Failure {
    /// A [`Failure::Mismatch`].
    pub fn mismatch(what: impl Into<String>, expected: impl fmt::Debug, got: impl fmt::Debug) -> Self {
        Failure::Mismatch {
            what: what.into(),
            expected: short(&format!("{expected:?}")),
            got: short(&format!("{got:?}")),
        }
    }
}

/// At most 120 characters of a debug rendering (frames can be long).
fn short(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}… ({} chars)", &s[..i], s.chars().count()),
        None => s.to_string(),
    }
}

/// One check of a suite.
pub struct Case {
    /// Its name, for `--only` and the report.
    pub name: &'static str,
    /// What it checks and where the rule is written.
    pub checks: &'static str,
    pub(crate) run: fn(&Target) -> Result<(), Failure>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// One case's result.
#[derive(Debug)]
pub struct Outcome {
    /// The case.
    pub case: &'static Case,
    /// `Ok`, or how it failed.
    pub result: Result<(), Failure>,
    /// How long it took.
    pub took: Duration,
}

/// A suite's results, one per case run, in the suite's order.
#[derive(Debug)]
pub struct Report {
    /// The suite's name.
    pub suite: &'static str,
    /// The results.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Whether every case run passed (and at least one ran).
    pub fn passed(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err())
    }

    /// The result of the case called `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.case.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.outcomes.iter().map(|o| o.case.name.len()).max().unwrap_or(0);
        for o in &self.outcomes {
            let ms = o.took.as_secs_f64() * 1e3;
            match &o.result {
                Ok(()) => writeln!(f, "ok    {:width$}  {ms:7.1} ms  {}", o.case.name, o.case.checks)?,
                Err(e) => writeln!(f, "FAIL  {:width$}  {ms:7.1} ms  {e}", o.case.name)?,
            }
        }
        let failed = self.failures().count();
        write!(f, "{}: {} passed, {failed} failed", self.suite, self.outcomes.len() - failed)
    }
}

/// Run `cases` against `target` (only the one named `only`, if given), each on connections of
/// its own, so one case's failure cannot spoil the next.
pub fn run(suite: &'static str, cases: &'static [Case], target: &Target, only: Option<&str>) -> Report {
    let outcomes = cases
        .iter()
        .filter(|c| only.is_none_or(|name| name == c.name))
        .map(|case| {
            let start = Instant::now();
            let result = (case.run)(target);
            Outcome { case, result, took: start.elapsed() }
        })
        .collect();
    Report { suite, outcomes }
}

/// The largest frame the client accepts from a target (its own memory bound).
pub(crate) const MAX_REPLY: usize = 16 << 20;

/// A connection to the target, read with the target's timeout.
pub(crate) struct Wire {
    stream: TcpStream,
    timeout: Duration,
}

impl Wire {
    pub(crate) fn connect(target: &Target) -> Result<Wire, Failure> {
        let stream = TcpStream::connect_timeout(&target.addr, target.timeout)?;
        stream.set_nodelay(true)?;
        Ok(Wire { stream, timeout: target.timeout })
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        Ok(self.stream.write_all(bytes)?)
    }

    /// Write `bytes` one at a time, pausing between writes so they travel apart.
    pub(crate) fn send_bytewise(&mut self, bytes: &[u8], pause: Duration) -> Result<(), Failure> {
        for b in bytes {
            self.stream.write_all(std::slice::from_ref(b))?;
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// This end's address, as the target sees it.
    pub(crate) fn local_addr(&self) -> Result<std::net::SocketAddr, Failure> {
        Ok(self.stream.local_addr()?)
    }

    /// A second handle on the socket, for a writer thread.
    pub(crate) fn try_clone(&self) -> Result<TcpStream, Failure> {
        Ok(self.stream.try_clone()?)
    }

    /// End the sending side (the target reads EOF).
    pub(crate) fn shutdown_write(&mut self) -> Result<(), Failure> {
        Ok(self.stream.shutdown(Shutdown::Write)?)
    }

    /// Read exactly `buf.len()` bytes before the timeout.
    fn read_exact(&mut self, buf: &mut [u8], waiting_for: &str) -> Result<(), Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Timeout { waiting_for: waiting_for.into(), after: self.timeout });
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(Failure::Closed { waiting_for: waiting_for.into() }),
                Ok(n) => filled += n,
                Err(e) if is_timeout(&e) => {
                    return Err(Failure::Timeout { waiting_for: waiting_for.into(), after: self.timeout })
                }
                Err(e) if is_reset(&e) => return Err(Failure::Closed { waiting_for: waiting_for.into() }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The next STAGE frame, header included. A header with bit 31 set or a length under 4 is
    /// a mismatch: every suite here runs without a cipher.
    pub(crate) fn frame(&mut self, waiting_for: &str) -> Result<Vec<u8>, Failure> {
        let mut header = [0u8; 4];
        self.read_exact(&mut header, waiting_for)?;
        let raw = u32::from_le_bytes(header);
        let len = (raw & 0x7fff_ffff) as usize;
        if raw & 0x8000_0000 != 0 {
            return Err(Failure::mismatch("reply header", "bit 31 clear (no cipher)", format!("{raw:#010x}")));
        }
        if !(4..=MAX_REPLY).contains(&len) {
            return Err(Failure::mismatch("reply length", format!("4..={MAX_REPLY}"), len));
        }
        let mut frame = vec![0u8; len];
        frame[..4].copy_from_slice(&header);
        self.read_exact(&mut frame[4..], waiting_for)?;
        Ok(frame)
    }

    /// Expect the target to end the connection (EOF or reset) within the timeout, sending
    /// nothing more: `sent` says what provoked it, `rule` which rule asks for it.
    pub(crate) fn closed(&mut self, sent: &str, rule: &'static str) -> Result<(), Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        let mut got = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let still_open = |got| match got {
                0 => Failure::StillOpen { sent: sent.into(), rule, after: self.timeout },
                got => Failure::Unexpected { sent: sent.into(), rule, got },
            };
            if left.is_zero() {
                return Err(still_open(got));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => return Err(Failure::Unexpected { sent: sent.into(), rule, got }),
                Ok(n) => got += n,
                Err(e) if is_timeout(&e) => return Err(still_open(got)),
                Err(e) if is_reset(&e) && got == 0 => return Ok(()),
                Err(e) if is_reset(&e) => return Err(Failure::Unexpected { sent: sent.into(), rule, got }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe)
}

/// A plain STAGE frame around `body` (the header written here, not by Switchboard's codec).
pub(crate) fn stage_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// `len` bytes of a deterministic pattern that differs per `seed` (no RNG: reports reproduce).
pub(crate) fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed * 17) % 251) as u8).collect()
}
