//! KCOM5 transfers (WIRE.md §1) on any address, not only loopback.
//!
//! `switchboard_std::kcom` listens and connects on loopback only, as the originals do: its
//! [`KcomOptions`] name a port and the IPv4/IPv6 switch, never a host. `kcom --host` needs other
//! addresses, so this module opens the sockets itself and runs the same sans-IO
//! [`Sender`] / [`Receiver`] machines on `switchboard_std`'s stream driver, keeping the std
//! module's options, errors ([`KcomError`]), single deadline and chunked streaming. It also
//! reports the moment the peer came, which the progress bar and the rate count from.
//!
//! Once `KcomOptions` can name a host, this module reduces to calls of `switchboard_std::kcom`.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_proto::kcom::{self as proto, Receiver, ReceiverEvent, Sender, SenderCommand, SenderEvent};
use switchboard_proto::{Blame, Fault};
use switchboard_rt::OsEntropy;
use switchboard_std::kcom::{Incoming, KcomError, KcomOptions, Received, Waiting, DEFAULT_CHUNK};
use switchboard_std::net::{listen_tcp, resolve};
use switchboard_std::{run, spawn, DriverError, Handle, Notice, Settings, SocketOptions};

/// How long to wait between connection attempts while the sender is not up yet.
const RETRY_EVERY: Duration = Duration::from_millis(20);
/// How often a waiting [`Listener`] looks for a connection (std has no accept timeout).
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// The addresses a transfer uses: `host` resolved (only its IPv4 addresses when `ipv4`), or
/// without a host the originals' loopback address (`::1`, or `127.0.0.1` when `ipv4`).
pub fn addresses(host: Option<&str>, ipv4: bool, port: u16) -> io::Result<Vec<SocketAddr>> {
    let Some(host) = host else {
        return Ok(vec![SocketAddr::new(proto::loopback(ipv4), port)]);
    };
    let found: Vec<SocketAddr> = resolve(host, port)?.into_iter().filter(|a| a.is_ipv4() || !ipv4).collect();
    if found.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{host} has no IPv4 address")));
    }
    Ok(found)
}

/// The one deadline: `close` after the call began.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    close: Option<Duration>,
    at: Option<Instant>,
}

impl Deadline {
    fn start(close: Option<Duration>) -> Self {
        Deadline { close, at: close.and_then(|c| Instant::now().checked_add(c)) }
    }

    /// What is left of the deadline (`None`: no deadline), or the timeout error.
    fn remaining(&self, waiting: Waiting) -> Result<Option<Duration>, KcomError> {
        let (Some(at), Some(after)) = (self.at, self.close) else { return Ok(None) };
        match at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(KcomError::Timeout { after, waiting }),
        }
    }

    /// Sleep `pause`, or less when the deadline comes first.
    fn pause(&self, pause: Duration, waiting: Waiting) -> Result<(), KcomError> {
        let left = self.remaining(waiting)?;
        std::thread::sleep(left.map_or(pause, |l| l.min(pause)));
        Ok(())
    }
}

/// What a sender reports while it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sending {
    /// The receiver at this address connected and its hello checked out: data flows now.
    Connected(SocketAddr),
    /// This many data bytes have been handed to the driver.
    Sent(u64),
}

/// A bound sender socket that has not accepted yet.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    options: KcomOptions,
}

impl Listener {
    /// Listen on the first of `addrs` that can be bound, with `SO_REUSEADDR` as the originals
    /// (the options' port is ignored: the addresses carry it).
    pub fn bind(addrs: &[SocketAddr], options: &KcomOptions) -> Result<Self, KcomError> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
        for &addr in addrs {
            match listen_tcp(addr, &SocketOptions::new().reuseaddr(true)) {
                Ok(listener) => return Ok(Listener { listener, options: options.clone() }),
                Err(e) => last = io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")),
            }
        }
        Err(KcomError::Io(last))
    }

    /// The address bound (with the port the system picked, for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept one receiver and send it `msg` and `len` bytes read from `source`, a chunk at a
    /// time. `on_progress` hears [`Sending::Connected`] once, then [`Sending::Sent`] after each
    /// chunk. The deadline counts from now.
    pub fn send_from<R: Read>(
        self,
        msg: &str,
        len: u64,
        mut source: R,
        mut on_progress: impl FnMut(Sending),
    ) -> Result<(), KcomError> {
        let deadline = Deadline::start(self.options.close);
        let (stream, peer) = self.accept(&deadline)?;
        let config = self.options.config(deadline.remaining(Waiting::Transfer)?);
        let sender = Sender::streaming(config, msg, len).map_err(from_machine)?;
        // A few chunks in the channel plus the machine's write budget: memory stays bounded.
        let running = spawn(stream, sender, Settings::new().command_capacity(4)).map_err(KcomError::Io)?;
        let (handle, mut events, driver) = (running.handle, running.events, running.driver);

        // Data flows once the receiver's hello checked out; if the driver stops first (bad
        // magic, timeout), the events end and the join below says why.
        let mut fed = Ok(());
        if events.any(|n| matches!(n, Notice::Event(SenderEvent::Ready))) {
            on_progress(Sending::Connected(peer));
            fed = feed(&handle, &mut source, len, &mut on_progress);
        }
        drop(handle);
        drop(events);
        // The driver's verdict first: a peer that went away explains a short feed.
        driver.join().map_err(from_driver)?;
        fed
    }

    fn accept(&self, deadline: &Deadline) -> Result<(TcpStream, SocketAddr), KcomError> {
        self.listener.set_nonblocking(true).map_err(KcomError::Io)?;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    stream.set_nonblocking(false).map_err(KcomError::Io)?;
                    return Ok((stream, peer));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => deadline.pause(ACCEPT_POLL, Waiting::Accept)?,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => return Err(KcomError::Io(e)),
            }
        }
    }
}

/// Read `len` bytes from `source` in chunks and hand them to the sender; `Handle::send` blocks
/// while the driver is over its write budget, which paces the reads.
fn feed<R: Read>(
    handle: &Handle<SenderCommand>,
    source: &mut R,
    len: u64,
    on_progress: &mut impl FnMut(Sending),
) -> Result<(), KcomError> {
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent).unwrap_or(usize::MAX).min(DEFAULT_CHUNK);
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
        on_progress(Sending::Sent(sent));
    }
    Ok(())
}

/// Connect to one of `addrs` (retrying while they refuse, until the deadline: the sender must
/// be up first), call `on_connect` with the sender's address, then hand the header and each
/// data chunk to `on_piece` as they arrive. An error from `on_piece` stops the transfer:
/// [`KcomError::Sink`].
pub fn receive_with(
    addrs: &[SocketAddr],
    options: &KcomOptions,
    on_connect: impl FnOnce(SocketAddr),
    mut on_piece: impl FnMut(Incoming<'_>) -> io::Result<()>,
) -> Result<Received, KcomError> {
    let deadline = Deadline::start(options.close);
    let (stream, peer) = connect(addrs, &deadline)?;
    on_connect(peer);
    let config = options.config(deadline.remaining(Waiting::Transfer)?);
    let receiver = Receiver::new(config, &mut OsEntropy);
    let mut header = Received { msg: String::new(), data_len: 0 };
    let mut received = 0u64;
    let mut sink_error = None;
    let mut on_event = |event| match event {
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
    };
    let driven = run(stream, receiver, Settings::new().read_chunk(256 * 1024), |notice, control| {
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
    driven.map_err(from_driver)?;
    Ok(header)
}

/// Connect to the first of `addrs` that accepts. A refusal means the sender may not be up yet:
/// all are tried again after a pause, until the deadline. When every address fails otherwise
/// (unreachable, say), the last error is returned.
fn connect(addrs: &[SocketAddr], deadline: &Deadline) -> Result<(TcpStream, SocketAddr), KcomError> {
    loop {
        let mut refused = false;
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for &addr in addrs {
            let attempt = match deadline.remaining(Waiting::Connect)? {
                Some(left) => TcpStream::connect_timeout(&addr, left),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) => {
                    refused |= matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    );
                    last = io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}"));
                }
            }
        }
        if !refused {
            return Err(KcomError::Io(last));
        }
        deadline.pause(RETRY_EVERY, Waiting::Connect)?;
    }
}

/// A machine error as the std module reports it: a deadline is a timeout, a refused command the
/// caller's, anything else the peer's.
fn from_machine(e: proto::Error) -> KcomError {
    match e {
        proto::Error::TimedOut { after } => KcomError::Timeout { after, waiting: Waiting::Transfer },
        e if e.fault() == Fault::Caller => KcomError::Refused(e),
        e => KcomError::Peer(e),
    }
}

fn from_driver(e: DriverError<proto::Error>) -> KcomError {
    match e {
        DriverError::Machine(e) => from_machine(e),
        DriverError::Io(e) => KcomError::Io(e),
        DriverError::Unflushed { unsent } => KcomError::PeerStalled { unsent },
        // A stream machine on a stream driver cannot get the datagram errors; say so, not panic.
        other => KcomError::Io(io::Error::other(other.to_string())),
    }
}
