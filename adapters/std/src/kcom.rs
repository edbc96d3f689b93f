//! KCOM5 one-shot transfers with the originals' defaults: one message and one data blob from a
//! sender (the originals' `server`, which listens) to a receiver (their `client`, which connects).
//!
//! | call | role | does |
//! |---|---|---|
//! | [`send`] | sender | listens on loopback, accepts one connection, sends `msg` and `data` |
//! | [`send_from`] | sender | the same, streaming `len` bytes from any [`Read`] in chunks |
//! | [`receive`] | receiver | connects (retrying until the server is up), returns `(msg, data)` |
//! | [`receive_to`] | receiver | the same, writing the data to any [`Write`] as it arrives |
//! | [`receive_with`] | receiver | the same, handing each [`Incoming`] piece to a callback |
//!
//! Defaults ([`KcomOptions::new`]) are the originals': IPv6 loopback `::1`, port
//! [`DEFAULT_PORT`] (13600), one `close` deadline of 150 s for the whole exchange, waiting for
//! the peer included ([`KcomOptions::close_secs`] maps a value ≤ 0 to no deadline, as they do).
//! [`KcomOptions::ipv4`] switches to `127.0.0.1`. [`KcomOptions::from_address`] reads the
//! originals' `port.hh.hh…` address form: the port is used; the key is kept in
//! [`KcomOptions::key`] for the caller, because KCOM5 itself sends everything in the clear and
//! never uses it; a malformed address converts to [`KcomError::Address`] with `?`.
//! [`KcomOptions`] is `switchboard_rt`'s, shared with the async adapters; the one blocking-only
//! setting, the chunk size [`send_from`] reads with, is [`Listener::chunk`].
//!
//! Everything runs through the generic stream driver ([`crate::run`] /
//! [`crate::spawn`]) and the sans-IO [`Sender`] / [`Receiver`] machines: this module only
//! opens the socket, feeds data and collects events, so the protocol logic lives in one place.
//! Errors are a [`KcomError`] that says who was wrong ([`KcomError::kind`]).
//!
//! ## Example: a transfer between two threads on an ephemeral port
//!
//! ```
//! use switchboard_std::kcom::{self, KcomOptions, Listener};
//!
//! # fn main() -> Result<(), kcom::KcomError> {
//! // Port 0: the system picks one; the listener says which.
//! let options = KcomOptions::new().ipv4(true).port(0).close_secs(10.0);
//! let listener = Listener::bind(&options)?;
//! let options = options.port(listener.port());
//!
//! let sender = std::thread::spawn(move || listener.send("hello", &b"some data"[..]));
//! let (msg, data) = kcom::receive(&options)?;
//! sender.join().unwrap()?;
//!
//! assert_eq!(msg, "hello");
//! assert_eq!(&data[..], b"some data");
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant as StdInstant};

use bytes::{Bytes, BytesMut};
use switchboard_proto::kcom::{
    self as proto, AddressError, Collector, Receiver, ReceiverEvent, Sender, SenderCommand, SenderEvent,
};
use switchboard_proto::{Blame, Fault};
use switchboard_rt::{net, OsEntropy, SocketOptions};

pub use switchboard_rt::kcom::{KcomOptions, Waiting};

use crate::{run, spawn, DriverError, Notice, Settings};

pub use switchboard_proto::kcom::{pack, unpack, DEFAULT_PORT};

/// How long to wait between connection attempts while the sender is not up yet.
const RETRY_EVERY: Duration = Duration::from_millis(20);
/// How often a waiting [`Listener`] looks for a connection (std has no accept timeout).
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Default bytes read from the source per [`SenderCommand::Data`] chunk (see [`Listener::chunk`]).
pub const DEFAULT_CHUNK: usize = 128 * 1024;

/// Who was wrong, in one word: see [`KcomError::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The peer broke the protocol (bad magic, echo mismatch, truncated stream, …).
    Peer,
    /// The caller: bad options or address, a message too long, a data source that fell short.
    Caller,
    /// The network or a local file failed.
    Io,
    /// The `close` deadline passed.
    Timeout,
}

/// Why a KCOM5 transfer failed. [`KcomError::kind`] says who was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KcomError {
    /// The peer broke the protocol; the machine's error says how.
    #[error("the peer broke the protocol: {0}")]
    Peer(#[source] proto::Error),
    /// The peer stopped reading and the linger time ran out with this much unsent.
    #[error("the peer stopped reading; {unsent} bytes were never sent")]
    PeerStalled {
        /// Bytes accepted from the machine that never reached the socket.
        unsent: usize,
    },
    /// The address string is malformed.
    #[error("bad address: {0}")]
    Address(#[from] AddressError),
    /// The machine refused what the caller asked (a message too long for KCOM5, say).
    #[error("refused: {0}")]
    Refused(#[source] proto::Error),
    /// The data source ended before the announced length.
    #[error("the data source ended after {got} of the {expected} bytes announced")]
    ShortSource {
        /// Bytes the source gave.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// Reading the data to send failed.
    #[error("reading the data to send: {0}")]
    Source(#[source] io::Error),
    /// Writing the received data failed.
    #[error("writing the received data: {0}")]
    Sink(#[source] io::Error),
    /// The socket failed (including an address that cannot be bound).
    #[error("network: {0}")]
    Io(#[source] io::Error),
    /// The `close` deadline passed.
    #[error("timed out after {after:?} {waiting}")]
    Timeout {
        /// The `close` setting.
        after: Duration,
        /// What was still missing.
        waiting: Waiting,
    },
}

impl KcomError {
    /// Who was wrong: the peer, the caller, the network or a file, or the clock.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KcomError::Peer(_) | KcomError::PeerStalled { .. } => ErrorKind::Peer,
            KcomError::Address(_) | KcomError::Refused(_) | KcomError::ShortSource { .. } => ErrorKind::Caller,
            KcomError::Source(_) | KcomError::Sink(_) | KcomError::Io(_) => ErrorKind::Io,
            KcomError::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    /// The machine's protocol error, when the peer broke the protocol.
    pub fn protocol(&self) -> Option<&proto::Error> {
        match self {
            KcomError::Peer(e) | KcomError::Refused(e) => Some(e),
            _ => None,
        }
    }

    fn from_machine(e: proto::Error) -> Self {
        match e {
            proto::Error::TimedOut { after } => KcomError::Timeout { after, waiting: Waiting::Transfer },
            e if e.fault() == Fault::Caller => KcomError::Refused(e),
            e => KcomError::Peer(e),
        }
    }

    fn from_driver(e: DriverError<proto::Error>) -> Self {
        match e {
            DriverError::Machine(e) => Self::from_machine(e),
            DriverError::Io(e) => KcomError::Io(e),
            DriverError::Unflushed { unsent } => KcomError::PeerStalled { unsent },
            // A stream machine on a stream driver: cannot happen, but say so rather than panic.
            other => KcomError::Io(io::Error::other(other.to_string())),
        }
    }
}

impl Blame for KcomError {
    /// Peer for protocol errors, stalls, the network and the deadline (the peer did not come or
    /// did not finish); caller for options, addresses, refused input and local files.
    fn fault(&self) -> Fault {
        match self.kind() {
            ErrorKind::Caller => Fault::Caller,
            ErrorKind::Io if matches!(self, KcomError::Source(_) | KcomError::Sink(_)) => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}

/// The one deadline: `close` after the call began.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    close: Option<Duration>,
    at: Option<StdInstant>,
}

impl Deadline {
    fn start(close: Option<Duration>) -> Self {
        Deadline { close, at: close.and_then(|c| StdInstant::now().checked_add(c)) }
    }

    /// What is left of the deadline (`None`: no deadline), or the timeout error.
    fn remaining(&self, waiting: Waiting) -> Result<Option<Duration>, KcomError> {
        let (Some(at), Some(after)) = (self.at, self.close) else { return Ok(None) };
        match at.checked_duration_since(StdInstant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(KcomError::Timeout { after, waiting }),
        }
    }
}

/// A bound sender socket that has not accepted yet: bind first (port 0 picks one), tell the
/// receiver the [port](Listener::port), then [`send`](Listener::send).
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    options: KcomOptions,
    /// Bytes read from a [`Read`] per chunk in [`send_from`](Listener::send_from).
    chunk: usize,
}

impl Listener {
    /// Listen on the options' loopback address and port, with `SO_REUSEADDR` as the originals.
    pub fn bind(options: &KcomOptions) -> Result<Self, KcomError> {
        let listener = net::listen_tcp(options.addr(), &SocketOptions::new().reuseaddr(true)).map_err(KcomError::Io)?;
        Ok(Listener { listener, options: options.clone(), chunk: DEFAULT_CHUNK })
    }

    /// Set the chunk size [`send_from`](Listener::send_from) reads with (at least 1 byte;
    /// default [`DEFAULT_CHUNK`]).
    pub fn chunk(mut self, bytes: usize) -> Self {
        self.chunk = bytes.max(1);
        self
    }

    /// The port bound (the one the system picked, for port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| self.options.addr())
    }

    /// Accept one connection and send `msg` and the whole `data`. The deadline counts from now.
    pub fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        let deadline = Deadline::start(self.options.close);
        let stream = self.accept(&deadline)?;
        let config = self.options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::new(config, msg, data.into()).map_err(KcomError::from_machine)?;
        run(stream, sender, Settings::new(), |_, _| {}).map_err(KcomError::from_driver)
    }

    /// Accept one connection and send `msg` and `len` bytes read from `source`, a chunk at a
    /// time (never the whole blob in memory). `progress(sent, len)` is called after each chunk is
    /// handed to the driver. The deadline counts from now.
    pub fn send_from<R: Read>(
        self,
        msg: &str,
        len: u64,
        mut source: R,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), KcomError> {
        let deadline = Deadline::start(self.options.close);
        let stream = self.accept(&deadline)?;
        let config = self.options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::streaming(config, msg, len).map_err(KcomError::from_machine)?;
        // A few chunks in the channel plus the machine's write budget: memory stays bounded.
        let settings = Settings::new().command_capacity(4);
        let running = spawn(stream, sender, settings).map_err(KcomError::Io)?;
        let (handle, mut events, driver) = (running.handle, running.events, running.driver);

        // Data flows once the receiver's hello checked out; if the driver stops first (bad
        // magic, timeout), the events end and the join below says why.
        let ready = events.any(|n| matches!(n, Notice::Event(SenderEvent::Ready)));
        let mut fed = Ok(());
        if ready {
            fed = feed(&handle, &mut source, len, self.chunk, &mut progress);
        }
        drop(handle);
        drop(events);
        match driver.join() {
            // Our own close with data still owed: the feed says why (a short source).
            Err(DriverError::Machine(proto::Error::Abandoned)) if fed.is_err() => fed,
            // Otherwise the driver's verdict first: a peer that went away explains a short feed.
            verdict => verdict.map_err(KcomError::from_driver).and(fed),
        }
    }

    fn accept(&self, deadline: &Deadline) -> Result<TcpStream, KcomError> {
        self.listener.set_nonblocking(true).map_err(KcomError::Io)?;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(KcomError::Io)?;
                    return Ok(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.remaining(Waiting::Accept)?;
                    std::thread::sleep(left.map_or(ACCEPT_POLL, |l| l.min(ACCEPT_POLL)));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => return Err(KcomError::Io(e)),
            }
        }
    }
}

/// Read `len` bytes from `source` in chunks and hand them to the sender; `Handle::send` blocks
/// while the driver is over its write budget, which paces the reads.
fn feed<R: Read>(
    handle: &crate::Handle<SenderCommand>,
    source: &mut R,
    len: u64,
    chunk: usize,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), KcomError> {
    let mut sent = 0u64;
    progress(0, len);
    while sent < len {
        let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(chunk);
        let mut buf = BytesMut::zeroed(want);
        let n = loop {
            match source.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(KcomError::Source(e)),
            }
        };
        if n == 0 {
            return Err(KcomError::ShortSource { got: sent, expected: len });
        }
        buf.truncate(n);
        if handle.send(SenderCommand::Data(buf.freeze())).is_err() {
            // The driver stopped (the peer left or the deadline passed); its result says why.
            return Ok(());
        }
        sent += n as u64;
        progress(sent, len);
    }
    Ok(())
}

/// Listen on `options`' address, accept one connection, and send `msg` and `data`.
pub fn send(options: &KcomOptions, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
    Listener::bind(options)?.send(msg, data)
}

/// Listen on `options`' address, accept one connection, and send `msg` and `len` bytes streamed
/// from `source` (see [`Listener::send_from`]).
pub fn send_from<R: Read>(
    options: &KcomOptions,
    msg: &str,
    len: u64,
    source: R,
    progress: impl FnMut(u64, u64),
) -> Result<(), KcomError> {
    Listener::bind(options)?.send_from(msg, len, source, progress)
}

/// What a receiver has learned once the header arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sender's message.
    pub msg: String,
    /// The announced (and, on success, received) data length.
    pub data_len: u64,
}

/// One piece of an incoming transfer, for [`receive_with`].
#[derive(Debug)]
pub enum Incoming<'a> {
    /// The message and the announced data length, before any data.
    Header(&'a Received),
    /// The next chunk of data as it arrived (a slice of the receive buffer, never empty).
    Data {
        /// The bytes.
        chunk: Bytes,
        /// Data bytes received so far, this chunk included.
        received: u64,
        /// The announced total.
        total: u64,
    },
}

/// Connect to `options`' address (retrying while the connection is refused, until the deadline:
/// the sender must be up first) and receive the message and the whole data blob in memory.
/// Bound the blob with [`KcomOptions::max_data_len`] when the sender is not trusted.
pub fn receive(options: &KcomOptions) -> Result<(String, Bytes), KcomError> {
    let mut collector = Collector::new();
    drive_receiver(options, |event| {
        collector.push(event);
        Ok(())
    })?;
    Ok(collector.into_parts())
}

/// Like [`receive`], but write the data to `sink` as it arrives, calling
/// `progress(received, total)` after each chunk. Returns the message and length.
pub fn receive_to<W: Write>(
    options: &KcomOptions,
    mut sink: W,
    mut progress: impl FnMut(u64, u64),
) -> Result<Received, KcomError> {
    let received = receive_with(options, |piece| {
        match piece {
            Incoming::Header(header) => progress(0, header.data_len),
            Incoming::Data { chunk, received, total } => {
                sink.write_all(&chunk)?;
                progress(received, total);
            }
        }
        Ok(())
    })?;
    sink.flush().map_err(KcomError::Sink)?;
    Ok(received)
}

/// Like [`receive`], but hand the header and then each data chunk to `on_piece` as they arrive,
/// so a transfer of any size needs no more memory than one read. An error from `on_piece`
/// stops the transfer: [`KcomError::Sink`].
pub fn receive_with(
    options: &KcomOptions,
    mut on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
) -> Result<Received, KcomError> {
    let mut header = Received { msg: String::new(), data_len: 0 };
    let mut received = 0u64;
    drive_receiver(options, |event| match event {
        ReceiverEvent::Message(msg) => {
            header.msg = msg;
            Ok(())
        }
        ReceiverEvent::DataLength(len) => {
            header.data_len = len;
            on_piece(Incoming::Header(&header))
        }
        ReceiverEvent::Data(chunk) => {
            received += chunk.len() as u64;
            on_piece(Incoming::Data { chunk, received, total: header.data_len })
        }
    })?;
    Ok(header)
}

/// Connect, then run a [`Receiver`] over the stream, handing every event to `on_event`. The
/// first error from `on_event` closes the connection and is returned as [`KcomError::Sink`].
fn drive_receiver(
    options: &KcomOptions,
    mut on_event: impl FnMut(ReceiverEvent) -> io::Result<()>,
) -> Result<(), KcomError> {
    let deadline = Deadline::start(options.close);
    let stream = connect(options.addr(), &deadline)?;
    let config = options.config(deadline.remaining(Waiting::Transfer)?);
    let receiver = Receiver::new(config, &mut OsEntropy);
    let settings = Settings::new().read_chunk(256 * 1024);
    let mut sink_error = None;
    let driven = run(stream, receiver, settings, |notice, control| {
        let Notice::Event(event) = notice else { return };
        if sink_error.is_none() {
            if let Err(e) = on_event(event) {
                sink_error = Some(e);
                control.close();
            }
        }
    });
    if let Some(e) = sink_error {
        return Err(KcomError::Sink(e));
    }
    driven.map_err(KcomError::from_driver)
}

/// Connect to `addr`, retrying while the connection is refused (the sender is not up yet).
fn connect(addr: SocketAddr, deadline: &Deadline) -> Result<TcpStream, KcomError> {
    loop {
        let attempt = match deadline.remaining(Waiting::Connect)? {
            Some(left) => TcpStream::connect_timeout(&addr, left),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                let pause = deadline.remaining(Waiting::Connect)?.map_or(RETRY_EVERY, |l| l.min(RETRY_EVERY));
                std::thread::sleep(pause);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                deadline.remaining(Waiting::Connect)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(KcomError::Io(e)),
        }
    }
}
