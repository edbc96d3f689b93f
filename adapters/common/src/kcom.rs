//! KCOM5 one-shot transfers on any async [`Runtime`], with the originals' defaults: one message
//! and one data blob from a sender (the originals' `server`, which listens) to a receiver
//! (their `client`, which connects).
//!
//! | call | role | does |
//! |---|---|---|
//! | [`send`] | sender | listens on loopback, accepts one connection, sends `msg` and `data` |
//! | [`KcomListener::bind`] + [`KcomListener::send`] | sender | the same, port known before the peer connects (port 0: the system picks) |
//! | [`receive`] | receiver | connects (retrying until the sender is up), returns `(msg, data)` |
//!
//! Defaults ([`KcomOptions::new`]) are the originals' (from the protocol crate's constants):
//! IPv6 loopback `::1`, port [`DEFAULT_PORT`] (13600), one `close` deadline of 150 s for the
//! whole exchange, waiting for the peer included; [`KcomOptions::ipv4`] switches to
//! `127.0.0.1`. [`KcomOptions`] is runtime-neutral, so the blocking adapter can share it.
//!
//! The protocol is the sans-IO [`Sender`] / [`Receiver`] machines run by the generic stream
//! driver; this module only opens the socket and collects events.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use switchboard_proto::kcom::{self as proto, AddressError, Collector, KcomConfig, Receiver, Sender, KEY_LEN};
use switchboard_proto::{Blame, Fault};

use crate::async_driver::{DriverConfig, DriverError};
use crate::runtime::{sleep_until, Listener, Runtime};
use crate::{OsEntropy, RuntimeExt, SocketOptions};

pub use switchboard_proto::kcom::{pack, unpack, DEFAULT_PORT};

/// How long to wait between connection attempts while the sender is not up yet.
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Where, how long, and how much: the originals' settings plus the limits a receiver needs.
/// Runtime-neutral: usable by every adapter, blocking or async.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KcomOptions {
    /// Use `127.0.0.1` instead of `::1` (the originals' `ipv6 = false`).
    pub ipv4: bool,
    /// The TCP port. 0 lets the system pick one for a listener.
    pub port: u16,
    /// One deadline for the whole exchange, waiting for the peer included (`None`: none).
    pub close: Option<Duration>,
    /// The session key of an address string, repeated to 48 bytes. KCOM5 never uses it (the
    /// transfer is in the clear); it is kept for the caller.
    pub key: Option<[u8; KEY_LEN]>,
    /// Receiver: the longest message accepted.
    pub max_msg_len: u32,
    /// Receiver: the largest data blob accepted. [`receive`] holds the blob in memory: bound it.
    pub max_data_len: u64,
}

impl Default for KcomOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl KcomOptions {
    /// The originals' defaults: `::1`, port 13600, close 150 s, no key.
    pub fn new() -> Self {
        let config = KcomConfig::default();
        KcomOptions {
            ipv4: false,
            port: DEFAULT_PORT,
            close: config.close,
            key: None,
            max_msg_len: config.max_msg_len,
            max_data_len: config.max_data_len,
        }
    }

    /// The defaults with the port and key of an address string (`"13600.01.ab"`, see [`unpack`]).
    pub fn from_address(address: &str) -> Result<Self, AddressError> {
        let (port, key) = unpack(address)?;
        Ok(KcomOptions { port, key: Some(key), ..Self::new() })
    }

    /// Use IPv4 loopback (`true`) or IPv6 loopback (`false`, the default).
    pub fn ipv4(mut self, ipv4: bool) -> Self {
        self.ipv4 = ipv4;
        self
    }

    /// Set the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Set the deadline for the whole exchange.
    pub fn close(mut self, close: Option<Duration>) -> Self {
        self.close = close;
        self
    }

    /// Set the deadline in seconds, as the originals take it: ≤ 0 (or not finite) means none.
    pub fn close_secs(mut self, secs: f64) -> Self {
        self.close = KcomConfig::from_close_secs(secs).close;
        self
    }

    /// Set the longest message a receiver accepts.
    pub fn max_msg_len(mut self, max: u32) -> Self {
        self.max_msg_len = max;
        self
    }

    /// Set the largest data blob a receiver accepts.
    pub fn max_data_len(mut self, max: u64) -> Self {
        self.max_data_len = max;
        self
    }

    /// The loopback socket address these options name.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(proto::loopback(self.ipv4), self.port)
    }

    /// The machines' configuration, with `close` replaced by `close` (what is left of the
    /// deadline once the peer came).
    pub fn config(&self, close: Option<Duration>) -> KcomConfig {
        KcomConfig::default().with_close(close).with_max_msg_len(self.max_msg_len).with_max_data_len(self.max_data_len)
    }
}

/// What the transfer was waiting for when the deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Waiting {
    /// The sender waited for the receiver to connect.
    Accept,
    /// The receiver waited for the sender to listen.
    Connect,
    /// The connection was up; the exchange itself did not finish.
    Transfer,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::Accept => "waiting for the receiver to connect",
            Waiting::Connect => "waiting for the sender to listen",
            Waiting::Transfer => "transferring",
        })
    }
}

/// Why an async KCOM5 transfer failed; [`Blame::fault`] says whose fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KcomError {
    /// The peer broke the protocol; the machine's error says how.
    #[error("the peer broke the protocol: {0}")]
    Peer(#[source] proto::Error),
    /// The machine refused what the caller asked (a message too long for KCOM5, say).
    #[error("refused: {0}")]
    Refused(#[source] proto::Error),
    /// The socket failed (including an address that cannot be bound).
    #[error("network: {0}")]
    Io(#[from] io::Error),
    /// The `close` deadline passed.
    #[error("timed out after {after:?} {waiting}")]
    Timeout {
        /// The `close` setting.
        after: Duration,
        /// What was still missing.
        waiting: Waiting,
    },
}

impl Blame for KcomError {
    fn fault(&self) -> Fault {
        match self {
            KcomError::Refused(_) => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}

impl KcomError {
    fn from_driver(e: DriverError<proto::Error>) -> Self {
        match e {
            DriverError::Machine(proto::Error::TimedOut { after }) => {
                KcomError::Timeout { after, waiting: Waiting::Transfer }
            }
            DriverError::Machine(e) if e.fault() == Fault::Caller => KcomError::Refused(e),
            DriverError::Machine(e) => KcomError::Peer(e),
            DriverError::Io(e) => KcomError::Io(e),
            e @ (DriverError::Cancelled | DriverError::NoDestination | DriverError::DatagramOnStream) => {
                KcomError::Io(io::Error::other(e.to_string()))
            }
            e @ DriverError::Unflushed { .. } => KcomError::Io(io::Error::new(io::ErrorKind::TimedOut, e.to_string())),
        }
    }
}

/// The deadline `close` from now, if any.
fn deadline(close: Option<Duration>) -> Option<StdInstant> {
    close.and_then(|c| StdInstant::now().checked_add(c))
}

/// What is left until `at` (`None`: no deadline), or the timeout error.
fn remaining(at: Option<StdInstant>, close: Option<Duration>, waiting: Waiting) -> Result<Option<Duration>, KcomError> {
    let (Some(at), Some(after)) = (at, close) else { return Ok(None) };
    match at.checked_duration_since(StdInstant::now()) {
        Some(left) if !left.is_zero() => Ok(Some(left)),
        _ => Err(KcomError::Timeout { after, waiting }),
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

/// A bound sender socket that has not accepted yet: bind first (port 0 picks one), tell the
/// receiver the [port](KcomListener::port), then [`send`](KcomListener::send).
pub struct KcomListener<R: Runtime> {
    rt: R,
    listener: R::TcpListener,
    options: KcomOptions,
}

impl<R: Runtime> KcomListener<R> {
    /// Listen on the options' loopback address and port, with `SO_REUSEADDR` as the originals.
    pub fn bind(rt: &R, options: &KcomOptions) -> Result<Self, KcomError> {
        let listener = rt.listen_with(options.addr(), &SocketOptions::new().reuseaddr(true))?;
        Ok(KcomListener { rt: rt.clone(), listener, options: options.clone() })
    }

    /// The port bound (the one the system picked, for port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(self.options.port, |a| a.port())
    }

    /// Accept one connection and send `msg` and the whole `data`. The deadline counts from now.
    pub async fn send(self, msg: &str, data: impl Into<Bytes>) -> Result<(), KcomError> {
        let close = self.options.close;
        let at = deadline(close);
        let accepted = until(&self.rt, at, self.listener.accept()).await;
        let (stream, _) =
            accepted.ok_or(KcomError::Timeout { after: close.unwrap_or_default(), waiting: Waiting::Accept })??;
        let config = self.options.config(remaining(at, close, Waiting::Transfer)?);
        let sender = Sender::new(config, msg, data.into()).map_err(KcomError::Refused)?;
        let conn = self.rt.drive(sender, stream, &DriverConfig::default());
        conn.join().await.map_err(KcomError::from_driver)
    }
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

/// Connect to the options' address (retrying while nobody listens yet, within the deadline)
/// and receive the message and the whole data blob.
pub async fn receive<R: Runtime>(rt: &R, options: &KcomOptions) -> Result<(String, Bytes), KcomError> {
    let close = options.close;
    let at = deadline(close);
    let stream = loop {
        let attempt = until(rt, at, rt.tcp_connect(options.addr(), &SocketOptions::new())).await;
        match attempt {
            Some(Ok(stream)) => break stream,
            Some(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                let left = remaining(at, close, Waiting::Connect)?;
                rt.clone().sleep(left.map_or(RETRY_EVERY, |l| l.min(RETRY_EVERY))).await;
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(KcomError::Timeout { after: close.unwrap_or_default(), waiting: Waiting::Connect }),
        }
    };
    let config = options.config(remaining(at, close, Waiting::Transfer)?);
    let receiver = Receiver::new(config, &mut OsEntropy);
    let (_commands, events, done) = rt.drive(receiver, stream, &DriverConfig::default()).split();
    let mut collector = Collector::new();
    while let Some(delivery) = events.recv().await {
        // The receiver takes no commands, so nothing is ever refused.
        if let Ok(event) = delivery {
            collector.push(event);
        }
    }
    done.wait().await.map_err(KcomError::from_driver)?;
    Ok(collector.into_parts())
}
