//! KCOM5 one-shot transfers on any async [`Runtime`], with the originals' defaults: one message
//! and one data blob from a sender (the originals' `server`, which listens) to a receiver
//! (their `client`, which connects). `switchboard_std::kcom` is the same API, blocking: the
//! same names, the same [`KcomOptions`] and the same [`KcomError`].
//!
//! | call | role | does |
//! |---|---|---|
//! | [`send`] | sender | listens, accepts one connection, sends `msg` and `data` |
//! | [`send_from`] | sender | the same, streaming `len` bytes from any [`AsyncRead`] in chunks |
//! | [`KcomListener::bind`] then [`send`](KcomListener::send) / [`send_from`](KcomListener::send_from) | sender | the same, port known before the peer connects (port 0: the system picks) |
//! | [`KcomListener::accept`] then [`Accepted::send`] / [`Accepted::send_from`] | sender | the same, learning the receiver's address first |
//! | [`receive`] | receiver | connects (retrying until the sender is up), returns `(msg, data)` |
//! | [`receive_to`] | receiver | the same, writing the data to any [`AsyncWrite`] as it arrives |
//! | [`receive_with`] | receiver | the same, handing each [`Incoming`] piece to a callback |
//! | [`connect`] then [`Connected::receive`] / [`receive_to`](Connected::receive_to) / [`receive_with`](Connected::receive_with) | receiver | the same, learning the sender's address first |
//!
//! Defaults ([`KcomOptions::new`]) are the originals': IPv6 loopback `::1`, port
//! [`DEFAULT_PORT`] (13600), one `close` deadline of 150 s for the whole exchange, waiting for
//! the peer included ([`KcomOptions::close_secs`] maps a value ≤ 0 to no deadline, as they
//! do); [`KcomOptions::ipv4`] switches to `127.0.0.1`. The originals listen and connect on
//! loopback only; [`KcomOptions::host`] names another address (KCOM5 is in the clear: use it on
//! networks you trust), and [`KcomListener::bind_to`] / [`connect_to`] take several (a host
//! name's addresses: the first that binds, or the first that accepts).
//!
//! **Streaming.** [`send_from`] reads its source a chunk at a time ([`KcomListener::chunk`],
//! default [`DEFAULT_CHUNK`]) and hands each to the driver, waiting while the machine's write
//! budget (1 MiB) is used up: a transfer of any size holds at most the budget and three chunks.
//! [`receive_to`] writes each chunk as it arrives; while the sink is slow the driver stops
//! reading once about 2 MiB wait for it, and the sender is held back by TCP. Progress callbacks are optional:
//! `progress(done, total)` is called with `(0, total)` once the peer's hello checked out (sender)
//! or the header arrived (receiver), then after each chunk. The traits are `futures-io`'s; a
//! tokio reader or writer goes in through `switchboard_tokio::TokioStream`.
//!
//! **Errors.** A [`KcomError`] says who was wrong ([`KcomError::kind`], [`Blame::fault`]):
//! the peer, the caller (options, a refused call, a source or sink, our own bind, accept or
//! connect), or the clock. A failed transfer returns as soon as it has failed: the connection is
//! let go at once rather than lingering for a peer that keeps its side open
//! ([`parts::FailFast`]).
//!
//! The protocol is the sans-IO [`Sender`] / [`Receiver`] machines run by the generic stream
//! driver; this module only opens the socket, feeds data and collects events.
//!
//! [`Blame::fault`]: switchboard_proto::Blame::fault

mod error;
mod options;
pub mod parts;
mod pieces;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant as StdInstant;

use bytes::{Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use socket2::Socket;
use switchboard_proto::kcom::{self as proto, Collector, Receiver, ReceiverEvent, Sender, SenderCommand, SenderEvent};

use crate::async_driver::{Commands, Done, DriverConfig, DriverError, Events};
use crate::runtime::{sleep_until, Listener, Runtime, SocketRef};
use crate::{OsEntropy, RuntimeExt, SocketOptions};

pub use error::{ErrorKind, KcomError, Opening, Waiting};
pub use options::KcomOptions;
use parts::{bind_first, settle, worth_retrying, Arrivals, Deadline, FailFast, Verdict, RETRY_EVERY};
pub use pieces::{Incoming, Received};
pub use switchboard_proto::kcom::{pack, unpack, DEFAULT_PORT};

/// Default bytes read from a source per data chunk (see [`KcomListener::chunk`]).
pub const DEFAULT_CHUNK: usize = 128 * 1024;

/// Data chunks waiting for the driver while the next is read: with the one being read and the
/// one the driver may take over budget, a streamed send holds the budget plus three chunks.
const QUEUED_CHUNKS: usize = 1;

/// Bytes a receiver reads at a time: each read is at most one data chunk handed on.
const RECEIVE_READ: usize = 64 * 1024;
/// Chunks that may wait for the application before the receiver's driver stops reading (and
/// TCP holds the sender back): with one the driver could not hand over yet and one the
/// application is taking, a receiver holds at most 34 reads, about 2 MiB.
const RECEIVE_QUEUE: usize = 32;

/// A progress callback: `(done, total)` in data bytes.
type Progress<'a> = Option<&'a mut (dyn FnMut(u64, u64) + Send)>;

fn report(progress: &mut Progress<'_>, done: u64, total: u64) {
    if let Some(progress) = progress {
        progress(done, total);
    }
}

/// `future`'s output, or `None` once `at` has come.
async fn until<R: Runtime, F: Future>(rt: &R, at: Option<StdInstant>, future: F) -> Option<F::Output> {
    let Some(at) = at else { return Some(future.await) };
    // The deadline on the runtime's clock (a simulator's may not be the wall clock).
    let at = rt.now().saturating_add(at.saturating_duration_since(StdInstant::now()));
    let mut timer = std::pin::pin!(sleep_until(rt, at));
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// The driver's error as the API reports it.
fn from_driver(e: DriverError<proto::Error>, deadline: &Deadline) -> KcomError {
    match e {
        DriverError::Machine(e) => deadline.blame(e),
        DriverError::Io(e) => KcomError::Io(e),
        DriverError::Cancelled => KcomError::Cancelled,
        DriverError::Unflushed { unsent } => KcomError::PeerStalled { unsent },
        // KCOM's machines run on streams and never address a datagram: not reachable.
        e @ (DriverError::NoDestination | DriverError::DatagramOnStream) => {
            KcomError::Io(io::Error::other(e.to_string()))
        }
    }
}

/// A second handle to `stream`'s socket, for [`FailFast`].
fn spare_socket<S: SocketRef>(stream: &S, opening: Opening, addr: SocketAddr) -> Result<Socket, KcomError> {
    stream.socket_ref().try_clone().map_err(|source| KcomError::Open { opening, addr, source })
}

/// A bound sender socket that has not accepted yet: bind first (port 0 picks one), tell the
/// receiver the [port](KcomListener::port), then [`send`](KcomListener::send) (or
/// [`accept`](KcomListener::accept) to learn who connected).
pub struct KcomListener<R: Runtime> {
    rt: R,
    listener: R::TcpListener,
    options: KcomOptions,
    chunk: usize,
}

impl<R: Runtime> KcomListener<R> {
    /// Listen on the options' address (loopback unless [`KcomOptions::host`] says otherwise)
    /// and port, with `SO_REUSEADDR` as the originals.
    pub fn bind(rt: &R, options: &KcomOptions) -> Result<Self, KcomError> {
        Self::bind_to(rt, &[options.addr()], options)
    }

    /// Listen on the first of `addrs` that can be bound (their ports are used, not the
    /// options'). Fails with the last address's error.
    pub fn bind_to(rt: &R, addrs: &[SocketAddr], options: &KcomOptions) -> Result<Self, KcomError> {
        let listener = bind_first(addrs, |addr| rt.listen_with(addr, &SocketOptions::new().reuseaddr(true)))?;
        Ok(KcomListener { rt: rt.clone(), listener, options: options.clone(), chunk: DEFAULT_CHUNK })
    }

    /// Set the chunk size [`send_from`](Self::send_from) reads with (at least 1 byte; default
    /// [`DEFAULT_CHUNK`]).
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
    pub async fn accept(self) -> Result<Accepted<R>, KcomError> {
        let deadline = Deadline::start(self.options.close);
        let local = self.local_addr();
        let (stream, peer) = loop {
            let accepted = until(&self.rt, deadline.at(), self.listener.accept()).await;
            match accepted.ok_or_else(|| deadline.passed(Waiting::Accept))? {
                Ok(accepted) => break accepted,
                // That connection is gone; the next one may come.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {}
                Err(source) => return Err(KcomError::Open { opening: Opening::Accept, addr: local, source }),
            }
        };
        let spare = spare_socket(&stream, Opening::Accept, local)?;
        let KcomListener { rt, options, chunk, .. } = self;
        Ok(Accepted { rt, stream, spare, peer, options, chunk, deadline })
    }

    /// Accept one connection and send `msg` and the whole `data`. The deadline counts from now.
    pub async fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        self.accept().await?.send(msg, data).await
    }

    /// Accept one connection and send `msg` and `len` bytes read from `source` (see
    /// [`Accepted::send_from`]). The deadline counts from now.
    pub async fn send_from<S: AsyncRead + Unpin>(
        self,
        msg: &str,
        len: u64,
        source: S,
        progress: Option<&mut (dyn FnMut(u64, u64) + Send)>,
    ) -> Result<(), KcomError> {
        self.accept().await?.send_from(msg, len, source, progress).await
    }
}

/// A receiver has connected to a [`KcomListener`]: send to it.
pub struct Accepted<R: Runtime> {
    rt: R,
    stream: R::Tcp,
    spare: Socket,
    peer: SocketAddr,
    options: KcomOptions,
    chunk: usize,
    deadline: Deadline,
}

impl<R: Runtime> Accepted<R> {
    /// The receiver's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Send `msg` and the whole `data`.
    pub async fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        let Accepted { rt, stream, spare, options, deadline, .. } = self;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::new(config, msg, data.into()).map_err(|e| deadline.blame(e))?;
        let (machine, verdict) = FailFast::new(sender, spare);
        let driven = rt.drive(machine, stream, &DriverConfig::default()).join().await;
        verdict.decide(&deadline, driven.map_err(|e| from_driver(e, &deadline)))
    }

    /// Send `msg` and `len` bytes read from `source` a chunk at a time, never the whole blob in
    /// memory (see the [module docs](self)). `progress(sent, len)` is called with `(0, len)`
    /// once the receiver's hello checked out, then after each chunk is handed to the driver.
    pub async fn send_from<S: AsyncRead + Unpin>(
        self,
        msg: &str,
        len: u64,
        mut source: S,
        mut progress: Option<&mut (dyn FnMut(u64, u64) + Send)>,
    ) -> Result<(), KcomError> {
        let Accepted { rt, stream, spare, options, chunk, deadline, .. } = self;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::streaming(config, msg, len).map_err(|e| deadline.blame(e))?;
        let (machine, verdict) = FailFast::new(sender, spare);
        let driver = DriverConfig::default().with_commands(QUEUED_CHUNKS);
        let (commands, events, done) = rt.drive(machine, stream, &driver).split();

        // Data flows once the receiver's hello checked out; if the driver stops first (bad
        // magic, the deadline), the events end and its result says why.
        let mut fed = Ok(());
        if ready(&events).await {
            fed = feed(&commands, &mut source, len, chunk, &mut progress).await;
        }
        drop((commands, events));
        let driven = done.wait().await.map_err(|e| from_driver(e, &deadline));
        settle(verdict.decide(&deadline, driven), fed)
    }
}

/// Wait for the sender's `Ready`; `false` if the events end first.
async fn ready(events: &Events<FailFast<Sender>>) -> bool {
    while let Some(delivery) = events.recv().await {
        if matches!(delivery, Ok(SenderEvent::Ready)) {
            return true;
        }
    }
    false
}

/// Read `len` bytes from `source` in chunks and hand them to the sender; `Commands::send` waits
/// while the driver is over its write budget, which paces the reads.
async fn feed<S: AsyncRead + Unpin>(
    commands: &Commands<FailFast<Sender>>,
    source: &mut S,
    len: u64,
    chunk: usize,
    progress: &mut Progress<'_>,
) -> Result<(), KcomError> {
    let mut sent = 0u64;
    report(progress, 0, len);
    while sent < len {
        let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(chunk);
        let mut buf = BytesMut::zeroed(want);
        let n = read_some(source, &mut buf).await.map_err(KcomError::Source)?;
        if n == 0 {
            return Err(KcomError::ShortSource { got: sent, expected: len });
        }
        buf.truncate(n);
        if commands.send(SenderCommand::Data(buf.freeze())).await.is_err() {
            // The driver stopped (the peer left or the deadline passed); its result says why.
            return Ok(());
        }
        sent += n as u64;
        report(progress, sent, len);
    }
    Ok(())
}

async fn read_some<S: AsyncRead + Unpin>(source: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut *source).poll_read(cx, buf)).await {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            read => return read,
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(sink: &mut W, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match std::future::poll_fn(|cx| Pin::new(&mut *sink).poll_write(cx, buf)).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Listen on the options' address, accept one receiver, and send it `msg` and `data`.
pub async fn send<R: Runtime>(
    rt: &R,
    options: &KcomOptions,
    msg: &str,
    data: impl Into<Bytes>,
) -> Result<(), KcomError> {
    KcomListener::bind(rt, options)?.send(msg, data).await
}

/// Listen on the options' address, accept one receiver, and send it `msg` and `len` bytes
/// streamed from `source` (see [`Accepted::send_from`]).
pub async fn send_from<R: Runtime, S: AsyncRead + Unpin>(
    rt: &R,
    options: &KcomOptions,
    msg: &str,
    len: u64,
    source: S,
    progress: Option<&mut (dyn FnMut(u64, u64) + Send)>,
) -> Result<(), KcomError> {
    KcomListener::bind(rt, options)?.send_from(msg, len, source, progress).await
}

/// Connect to the options' address (loopback unless [`KcomOptions::host`] says otherwise),
/// retrying while nobody listens yet, within the deadline, which goes on into the transfer.
pub async fn connect<R: Runtime>(rt: &R, options: &KcomOptions) -> Result<Connected<R>, KcomError> {
    connect_to(rt, &[options.addr()], options).await
}

/// Connect to the first of `addrs` that accepts (their ports are used, not the options'). A
/// refusal means the sender may not be up yet: all are tried again after a pause, until the
/// deadline. When every address fails otherwise (unreachable, say), the last error is returned.
pub async fn connect_to<R: Runtime>(
    rt: &R,
    addrs: &[SocketAddr],
    options: &KcomOptions,
) -> Result<Connected<R>, KcomError> {
    let deadline = Deadline::start(options.close);
    loop {
        let mut failed = KcomError::NoAddress { opening: Opening::Connect };
        let mut retry = false;
        for &addr in addrs {
            let attempt = until(rt, deadline.at(), rt.tcp_connect(addr, &SocketOptions::new())).await;
            match attempt.ok_or_else(|| deadline.passed(Waiting::Connect))? {
                Ok(stream) => {
                    let spare = spare_socket(&stream, Opening::Connect, addr)?;
                    return Ok(Connected {
                        rt: rt.clone(),
                        stream,
                        spare,
                        peer: addr,
                        options: options.clone(),
                        deadline,
                    });
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
        rt.clone().sleep(deadline.pause(RETRY_EVERY, Waiting::Connect)?).await;
    }
}

/// A receiver connected to a sender: receive from it.
pub struct Connected<R: Runtime> {
    rt: R,
    stream: R::Tcp,
    spare: Socket,
    peer: SocketAddr,
    options: KcomOptions,
    deadline: Deadline,
}

impl<R: Runtime> Connected<R> {
    /// The sender's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Receive the message and the whole data blob in memory. Bound the blob with
    /// [`KcomOptions::max_data_len`] when the sender is not trusted.
    pub async fn receive(self) -> Result<(String, Bytes), KcomError> {
        let receiving = Receiving::start(self)?;
        let mut collector = Collector::new();
        while let Some(event) = receiving.next_event().await {
            collector.push(event);
        }
        receiving.finish().await?;
        Ok(collector.into_parts())
    }

    /// Write the data to `sink` as it arrives, calling `progress(received, total)` with
    /// `(0, total)` once the header arrived and then after each chunk; flush `sink` at the end.
    /// Returns the message and length.
    pub async fn receive_to<W: AsyncWrite + Unpin>(
        self,
        mut sink: W,
        mut progress: Option<&mut (dyn FnMut(u64, u64) + Send)>,
    ) -> Result<Received, KcomError> {
        let mut receiving = Receiving::start(self)?;
        while let Some(piece) = receiving.next_piece().await {
            match piece {
                Incoming::Header(header) => report(&mut progress, 0, header.data_len),
                Incoming::Data { chunk, received, total } => {
                    if let Err(e) = write_all(&mut sink, &chunk).await {
                        return receiving.abandon(e).await;
                    }
                    report(&mut progress, received, total);
                }
            }
        }
        let received = receiving.finish().await?;
        std::future::poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx)).await.map_err(KcomError::Sink)?;
        Ok(received)
    }

    /// Hand the header and then each data chunk to `on_piece` as they arrive, so a transfer of
    /// any size needs no more memory than a few reads. An error from `on_piece` stops the
    /// transfer: [`KcomError::Sink`].
    pub async fn receive_with(
        self,
        mut on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
    ) -> Result<Received, KcomError> {
        let mut receiving = Receiving::start(self)?;
        while let Some(piece) = receiving.next_piece().await {
            if let Err(e) = on_piece(piece) {
                return receiving.abandon(e).await;
            }
        }
        receiving.finish().await
    }
}

/// A [`Receiver`] running on its driver, and what is needed to end it.
struct Receiving {
    commands: Commands<FailFast<Receiver>>,
    events: Events<FailFast<Receiver>>,
    done: Done<FailFast<Receiver>>,
    verdict: Verdict,
    deadline: Deadline,
    arrivals: Arrivals,
}

impl Receiving {
    fn start<R: Runtime>(connected: Connected<R>) -> Result<Self, KcomError> {
        let Connected { rt, stream, spare, options, deadline, .. } = connected;
        let config = options.config(deadline.remaining(Waiting::Transfer)?);
        let (machine, verdict) = FailFast::new(Receiver::new(config, &mut OsEntropy), spare);
        let driver = DriverConfig::default().with_read_chunk(RECEIVE_READ).with_events(RECEIVE_QUEUE);
        let (commands, events, done) = rt.drive(machine, stream, &driver).split();
        Ok(Receiving { commands, events, done, verdict, deadline, arrivals: Arrivals::new() })
    }

    async fn next_event(&self) -> Option<ReceiverEvent> {
        // The receiver takes no commands, so nothing is ever refused.
        while let Some(delivery) = self.events.recv().await {
            if let Ok(event) = delivery {
                return Some(event);
            }
        }
        None
    }

    async fn next_piece(&mut self) -> Option<Incoming<'_>> {
        loop {
            let event = self.next_event().await?;
            if matches!(event, ReceiverEvent::Message(_)) {
                // Kept for the header, which comes with the data length.
                self.arrivals.piece(event);
                continue;
            }
            return self.arrivals.piece(event);
        }
    }

    /// The transfer's outcome once the driver ended, and the header.
    async fn finish(self) -> Result<Received, KcomError> {
        let Receiving { commands, events, done, verdict, deadline, arrivals } = self;
        drop((commands, events));
        let driven = done.wait().await.map_err(|e| from_driver(e, &deadline));
        verdict.decide(&deadline, driven)?;
        Ok(arrivals.into_received())
    }

    /// The application could not take what arrived: close, and report why.
    async fn abandon(self, why: io::Error) -> Result<Received, KcomError> {
        self.commands.close();
        // The machine ends `Abandoned`, which is this very failure.
        let _ = self.finish().await;
        Err(KcomError::Sink(why))
    }
}

/// Connect to the options' address (see [`connect`]) and receive the message and the whole
/// data blob (see [`Connected::receive`]).
pub async fn receive<R: Runtime>(rt: &R, options: &KcomOptions) -> Result<(String, Bytes), KcomError> {
    connect(rt, options).await?.receive().await
}

/// Connect to the options' address and write the data to `sink` as it arrives (see
/// [`Connected::receive_to`]).
pub async fn receive_to<R: Runtime, W: AsyncWrite + Unpin>(
    rt: &R,
    options: &KcomOptions,
    sink: W,
    progress: Option<&mut (dyn FnMut(u64, u64) + Send)>,
) -> Result<Received, KcomError> {
    connect(rt, options).await?.receive_to(sink, progress).await
}

/// Connect to the options' address and hand each piece to `on_piece` as it arrives (see
/// [`Connected::receive_with`]).
pub async fn receive_with<R: Runtime>(
    rt: &R,
    options: &KcomOptions,
    on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
) -> Result<Received, KcomError> {
    connect(rt, options).await?.receive_with(on_piece).await
}
