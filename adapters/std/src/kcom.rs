//! KCOM5 one-shot transfers with the originals' defaults: one message and one data blob from a
//! sender (the originals' `server`, which listens) to a receiver (their `client`, which connects).
//! The async adapters' `kcom` ([`switchboard_rt::kcom`]) is the same API: the same names, the
//! same [`KcomOptions`] and the same [`KcomError`].
//!
//! | call | role | does |
//! |---|---|---|
//! | [`send`] | sender | listens, accepts one connection, sends `msg` and `data` |
//! | [`send_from`] | sender | the same, streaming `len` bytes from any [`Read`] in chunks |
//! | [`KcomListener::bind`] then [`send`](KcomListener::send) / [`send_from`](KcomListener::send_from) | sender | the same, port known before the peer connects (port 0: the system picks) |
//! | [`KcomListener::accept`] then [`Accepted::send`] / [`Accepted::send_from`] | sender | the same, learning the receiver's address first |
//! | [`receive`] | receiver | connects (retrying until the sender is up), returns `(msg, data)` |
//! | [`receive_to`] | receiver | the same, writing the data to any [`Write`] as it arrives |
//! | [`receive_with`] | receiver | the same, handing each [`Incoming`] piece to a callback |
//! | [`connect`] then [`Connected::receive`] / [`receive_to`](Connected::receive_to) / [`receive_with`](Connected::receive_with) | receiver | the same, learning the sender's address first |
//!
//! Defaults ([`KcomOptions::new`]) are the originals': IPv6 loopback `::1`, port
//! [`DEFAULT_PORT`] (13600), one `close` deadline of 150 s for the whole exchange, waiting for
//! the peer included ([`KcomOptions::close_secs`] maps a value ≤ 0 to no deadline, as they do).
//! [`KcomOptions::ipv4`] switches to `127.0.0.1`. The originals listen and connect on loopback
//! only; [`KcomOptions::host`] names another address (KCOM5 sends everything in the clear: use it
//! on networks you trust), and [`KcomListener::bind_to`] / [`connect_to`] take several (a host
//! name's addresses: the first that binds, or the first that accepts).
//! [`KcomOptions::from_address`] reads the originals' `port.hh.hh…` address form: the port is
//! used; the key is kept in [`KcomOptions::key`] for the caller, because KCOM5 never uses it; a
//! malformed address converts to [`KcomError::Address`] with `?`.
//!
//! **Streaming.** [`send_from`] reads its source a chunk at a time ([`KcomListener::chunk`],
//! default [`DEFAULT_CHUNK`]) and hands each to the driver, blocking while the machine's write
//! budget (1 MiB) is used up: a transfer of any size holds at most the budget and a few chunks.
//! [`receive_to`] and [`receive_with`] hand each chunk on as it arrives. Progress callbacks are
//! optional: `progress(done, total)` is called with `(0, total)` once the peer's hello checked
//! out (sender) or the header arrived (receiver), then after each chunk.
//!
//! **Errors.** A [`KcomError`] says who was wrong ([`KcomError::kind`],
//! [`Blame::fault`](switchboard_proto::Blame::fault)): the peer, the caller (options, a refused
//! call, a source or sink, our own bind, accept or connect), or the clock. A failed transfer
//! returns as soon as it has failed: the connection is let go at once rather than lingering for
//! a peer that keeps its side open ([`FailFast`]).
//!
//! Everything runs through the generic stream driver ([`crate::run`] / [`crate::spawn`]) and
//! the sans-IO [`Sender`] / [`Receiver`] machines: this module only opens the socket, feeds data
//! and collects events, so the protocol logic lives in one place.
//!
//! ## Example: a transfer between two threads on an ephemeral port
//!
//! ```
//! use switchboard_std::kcom::{self, KcomListener, KcomOptions};
//!
//! # fn main() -> Result<(), kcom::KcomError> {
//! // Port 0: the system picks one; the listener says which.
//! let options = KcomOptions::new().ipv4(true).port(0).close_secs(10.0);
//! let listener = KcomListener::bind(&options)?;
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
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{SockRef, Socket};
use switchboard_proto::kcom::{self as proto, Collector, Receiver, ReceiverEvent, Sender, SenderCommand, SenderEvent};
use switchboard_rt::kcom::parts::{bind_first, settle, worth_retrying, Arrivals, Deadline, FailFast, RETRY_EVERY};
use switchboard_rt::{net, OsEntropy, SocketOptions};

pub use switchboard_rt::kcom::{
    pack, unpack, ErrorKind, Incoming, KcomError, KcomOptions, Opening, Received, Waiting, DEFAULT_CHUNK, DEFAULT_PORT,
};

use crate::{run, spawn, DriverError, Handle, Notice, Settings};

/// How often a waiting [`KcomListener`] looks for a connection (std has no accept timeout).
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Commands the sender's channel holds: a few chunks, plus room for the driver's doorbell.
const QUEUED_CHUNKS: usize = 4;

/// The driver's error as the API reports it.
fn from_driver(e: DriverError<proto::Error>, deadline: &Deadline) -> KcomError {
    match e {
        DriverError::Machine(e) => deadline.blame(e),
        DriverError::Io(e) => KcomError::Io(e),
        DriverError::Unflushed { unsent } => KcomError::PeerStalled { unsent },
        // A stream machine on a stream driver: cannot happen, but say so rather than panic.
        other => KcomError::Io(io::Error::other(other.to_string())),
    }
}

/// A second handle to `stream`'s socket, for [`FailFast`].
fn spare_socket(stream: &TcpStream, opening: Opening, addr: SocketAddr) -> Result<Socket, KcomError> {
    SockRef::from(stream).try_clone().map_err(|source| KcomError::Open { opening, addr, source })
}

fn report(progress: &mut Option<&mut dyn FnMut(u64, u64)>, done: u64, total: u64) {
    if let Some(progress) = progress {
        progress(done, total);
    }
}

/// A bound sender socket that has not accepted yet: bind first (port 0 picks one), tell the
/// receiver the [port](KcomListener::port), then [`send`](KcomListener::send) (or
/// [`accept`](KcomListener::accept) to learn who connected).
#[derive(Debug)]
pub struct KcomListener {
    listener: TcpListener,
    options: KcomOptions,
    /// Bytes read from a [`Read`] per chunk in [`send_from`](KcomListener::send_from).
    chunk: usize,
}

impl KcomListener {
    /// Listen on the options' address (loopback unless [`KcomOptions::host`] says otherwise)
    /// and port, with `SO_REUSEADDR` as the originals.
    pub fn bind(options: &KcomOptions) -> Result<Self, KcomError> {
        Self::bind_to(&[options.addr()], options)
    }

    /// Listen on the first of `addrs` that can be bound (their ports are used, not the
    /// options'). Fails with the last address's error.
    pub fn bind_to(addrs: &[SocketAddr], options: &KcomOptions) -> Result<Self, KcomError> {
        let listener = bind_first(addrs, |addr| net::listen_tcp(addr, &SocketOptions::new().reuseaddr(true)))?;
        Ok(KcomListener { listener, options: options.clone(), chunk: DEFAULT_CHUNK })
    }

    /// Set the chunk size [`send_from`](KcomListener::send_from) reads with (at least 1 byte;
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

    /// Wait for the receiver to connect. The deadline counts from now and goes on into the
    /// transfer.
    pub fn accept(self) -> Result<Accepted, KcomError> {
        let deadline = Deadline::start(self.options.close);
        let local = self.local_addr();
        let failed = |source| KcomError::Open { opening: Opening::Accept, addr: local, source };
        self.listener.set_nonblocking(true).map_err(failed)?;
        let (stream, peer) = loop {
            match self.listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(deadline.pause(ACCEPT_POLL, Waiting::Accept)?);
                }
                // That connection is gone; the next one may come.
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => return Err(failed(e)),
            }
        };
        stream.set_nonblocking(false).map_err(failed)?;
        let spare = spare_socket(&stream, Opening::Accept, local)?;
        Ok(Accepted { stream, spare, peer, options: self.options, chunk: self.chunk, deadline })
    }

    /// Accept one connection and send `msg` and the whole `data`. The deadline counts from now.
    pub fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        self.accept()?.send(msg, data)
    }

    /// Accept one connection and send `msg` and `len` bytes read from `source` (see
    /// [`Accepted::send_from`]). The deadline counts from now.
    pub fn send_from<R: Read>(
        self,
        msg: &str,
        len: u64,
        source: R,
        progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<(), KcomError> {
        self.accept()?.send_from(msg, len, source, progress)
    }
}

/// A receiver has connected to a [`KcomListener`]: send to it.
#[derive(Debug)]
pub struct Accepted {
    stream: TcpStream,
    spare: Socket,
    peer: SocketAddr,
    options: KcomOptions,
    chunk: usize,
    deadline: Deadline,
}

impl Accepted {
    /// The receiver's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Send `msg` and the whole `data`.
    pub fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        let Accepted { stream, spare, options, deadline, .. } = self;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::new(config, msg, data.into()).map_err(|e| deadline.blame(e))?;
        let (machine, verdict) = FailFast::new(sender, spare);
        let driven = run(stream, machine, Settings::new(), |_, _| {});
        verdict.decide(&deadline, driven.map_err(|e| from_driver(e, &deadline)))
    }

    /// Send `msg` and `len` bytes read from `source` a chunk at a time, never the whole blob in
    /// memory. `progress(sent, len)` is called with `(0, len)` once the receiver's hello
    /// checked out, then after each chunk is handed to the driver.
    pub fn send_from<R: Read>(
        self,
        msg: &str,
        len: u64,
        mut source: R,
        mut progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<(), KcomError> {
        let Accepted { stream, spare, options, chunk, deadline, .. } = self;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::streaming(config, msg, len).map_err(|e| deadline.blame(e))?;
        let (machine, verdict) = FailFast::new(sender, spare);
        // A few chunks in the channel plus the machine's write budget: memory stays bounded.
        let settings = Settings::new().command_capacity(QUEUED_CHUNKS);
        let running = spawn(stream, machine, settings).map_err(KcomError::Io)?;
        let (handle, mut events, driver) = (running.handle, running.events, running.driver);

        // Data flows once the receiver's hello checked out; if the driver stops first (bad
        // magic, the deadline), the events end and the join below says why.
        let mut fed = Ok(());
        if events.any(|n| matches!(n, Notice::Event(SenderEvent::Ready))) {
            fed = feed(&handle, &mut source, len, chunk, &mut progress);
        }
        drop((handle, events));
        let driven = driver.join().map_err(|e| from_driver(e, &deadline));
        settle(verdict.decide(&deadline, driven), fed)
    }
}

/// Read `len` bytes from `source` in chunks and hand them to the sender; `Handle::send` blocks
/// while the driver is over its write budget, which paces the reads.
fn feed<R: Read>(
    handle: &Handle<SenderCommand>,
    source: &mut R,
    len: u64,
    chunk: usize,
    progress: &mut Option<&mut dyn FnMut(u64, u64)>,
) -> Result<(), KcomError> {
    let mut sent = 0u64;
    report(progress, 0, len);
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
        report(progress, sent, len);
    }
    Ok(())
}

/// Listen on `options`' address, accept one connection, and send `msg` and `data`.
pub fn send(options: &KcomOptions, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
    KcomListener::bind(options)?.send(msg, data)
}

/// Listen on `options`' address, accept one connection, and send `msg` and `len` bytes streamed
/// from `source` (see [`Accepted::send_from`]).
pub fn send_from<R: Read>(
    options: &KcomOptions,
    msg: &str,
    len: u64,
    source: R,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<(), KcomError> {
    KcomListener::bind(options)?.send_from(msg, len, source, progress)
}

/// Connect to `options`' address (loopback unless [`KcomOptions::host`] says otherwise),
/// retrying while nobody listens yet, within the deadline, which goes on into the transfer.
pub fn connect(options: &KcomOptions) -> Result<Connected, KcomError> {
    connect_to(&[options.addr()], options)
}

/// Connect to the first of `addrs` that accepts (their ports are used, not the options'). A
/// refusal means the sender may not be up yet: all are tried again after a pause, until the
/// deadline. When every address fails otherwise (unreachable, say), the last error is returned.
pub fn connect_to(addrs: &[SocketAddr], options: &KcomOptions) -> Result<Connected, KcomError> {
    let deadline = Deadline::start(options.close);
    loop {
        let mut failed = KcomError::NoAddress { opening: Opening::Connect };
        let mut retry = false;
        for &addr in addrs {
            let attempt = match deadline.remaining(Waiting::Connect)? {
                Some(left) => TcpStream::connect_timeout(&addr, left),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    let spare = spare_socket(&stream, Opening::Connect, addr)?;
                    return Ok(Connected { stream, spare, peer: addr, options: options.clone(), deadline });
                }
                Err(source) => {
                    retry |= worth_retrying(&source);
                    failed = KcomError::Open { opening: Opening::Connect, addr, source };
                }
            }
        }
        if !retry {
            return Err(failed);
        }
        std::thread::sleep(deadline.pause(RETRY_EVERY, Waiting::Connect)?);
    }
}

/// A receiver connected to a sender: receive from it.
#[derive(Debug)]
pub struct Connected {
    stream: TcpStream,
    spare: Socket,
    peer: SocketAddr,
    options: KcomOptions,
    deadline: Deadline,
}

impl Connected {
    /// The sender's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Receive the message and the whole data blob in memory. Bound the blob with
    /// [`KcomOptions::max_data_len`] when the sender is not trusted.
    pub fn receive(self) -> Result<(String, Bytes), KcomError> {
        let mut collector = Collector::new();
        self.run(|event| {
            collector.push(event);
            Ok(())
        })?;
        Ok(collector.into_parts())
    }

    /// Write the data to `sink` as it arrives, calling `progress(received, total)` with
    /// `(0, total)` once the header arrived and then after each chunk; flush `sink` at the end.
    /// Returns the message and length.
    pub fn receive_to<W: Write>(
        self,
        mut sink: W,
        mut progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<Received, KcomError> {
        let received = self.receive_with(|piece| {
            match piece {
                Incoming::Header(header) => report(&mut progress, 0, header.data_len),
                Incoming::Data { chunk, received, total } => {
                    sink.write_all(&chunk)?;
                    report(&mut progress, received, total);
                }
            }
            Ok(())
        })?;
        sink.flush().map_err(KcomError::Sink)?;
        Ok(received)
    }

    /// Hand the header and then each data chunk to `on_piece` as they arrive, so a transfer of
    /// any size needs no more memory than one read. An error from `on_piece` stops the
    /// transfer: [`KcomError::Sink`].
    pub fn receive_with(self, mut on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>) -> Result<Received, KcomError> {
        let mut arrivals = Arrivals::new();
        self.run(|event| arrivals.piece(event).map_or(Ok(()), &mut on_piece))?;
        Ok(arrivals.into_received())
    }

    /// Run a [`Receiver`] over the stream, handing every event to `on_event`. The first error
    /// from `on_event` closes the connection and is returned as [`KcomError::Sink`].
    fn run(self, mut on_event: impl FnMut(ReceiverEvent) -> io::Result<()>) -> Result<(), KcomError> {
        let Connected { stream, spare, options, deadline, .. } = self;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let (machine, verdict) = FailFast::new(Receiver::new(config, &mut OsEntropy), spare);
        let settings = Settings::new().read_chunk(256 * 1024);
        let mut sink_error = None;
        let driven = run(stream, machine, settings, |notice, control| {
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
        verdict.decide(&deadline, driven.map_err(|e| from_driver(e, &deadline)))
    }
}

/// Connect to `options`' address (see [`connect`]) and receive the message and the whole data
/// blob (see [`Connected::receive`]).
pub fn receive(options: &KcomOptions) -> Result<(String, Bytes), KcomError> {
    connect(options)?.receive()
}

/// Connect to `options`' address and write the data to `sink` as it arrives (see
/// [`Connected::receive_to`]).
pub fn receive_to<W: Write>(
    options: &KcomOptions,
    sink: W,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Received, KcomError> {
    connect(options)?.receive_to(sink, progress)
}

/// Connect to `options`' address and hand each piece to `on_piece` as it arrives (see
/// [`Connected::receive_with`]).
pub fn receive_with(
    options: &KcomOptions,
    on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
) -> Result<Received, KcomError> {
    connect(options)?.receive_with(on_piece)
}
