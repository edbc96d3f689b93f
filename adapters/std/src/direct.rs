//! The direct driver: one machine over one non-blocking stream, driven on the calling thread.
//!
//! No extra threads and no channels: [`Direct::send`] hands the command straight to the machine,
//! and I/O happens only when it must: when the write queue reaches the machine's
//! [write budget](switchboard_proto::Machine::write_budget), on [`Direct::flush`], and inside
//! [`Direct::recv`], which writes what is queued, reads, runs the machine's timers and waits in
//! `poll(2)` for whichever of those can go on. Commands are fed in batches and the machine is
//! drained once per batch, so coalescing output (OUT) really coalesces. What to do when is
//! decided by [`Inline`](switchboard_proto::driver::Inline) (shared with the async adapters' `Direct`); this type does the I/O.
//!
//! The one thing a single thread cannot do is read while the application is busy elsewhere:
//! when both ends send far more than they read, call [`Direct::try_recv`] between sends (or
//! use [`spawn`](crate::spawn)). While blocked inside `send`, the driver keeps reading up to
//! [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events ([`BYTES_HELD`](switchboard_proto::driver::BYTES_HELD) bytes).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use switchboard_proto::driver::Refusal;
use switchboard_proto::Machine;

use crate::conn::Conn;
use crate::{BlockingStream, DriverError, Settings};

/// Why [`Direct::send`] or [`Direct::flush`] did not take effect: the machine refused the
/// command (the caller's fault; the connection goes on), or the connection has ended.
pub type SendError<E> = Refusal<E>;

/// The direct driver: one machine over one non-blocking stream, driven on the calling thread.
///
/// No extra threads and no channels: [`Direct::send`] hands the command straight to the machine,
/// and I/O happens only when it must: when the write queue reaches the machine's
/// [write budget](switchboard_proto::Machine::write_budget), on [`Direct::flush`], and inside
/// [`Direct::recv`], which writes what is queued, reads, runs the machine's timers and waits in
/// `poll(2)` for whichever of those can go on. Commands are fed in batches and the machine is
/// drained once per batch, so coalescing output (OUT) really coalesces. What to do when is
/// decided by [`Inline`](switchboard_proto::driver::Inline) (shared with the async adapters' `Direct`); this type does the I/O.
///
/// The one thing a single thread cannot do is read while the application is busy elsewhere:
/// when both ends send far more than they read, call [`Direct::try_recv`] between sends (or
/// use [`spawn`](crate::spawn)). While blocked inside `send`, the driver keeps reading up to
/// [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events ([`BYTES_HELD`](switchboard_proto::driver::BYTES_HELD) bytes).
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::thread;
/// use bytes::Bytes;
/// use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
/// use switchboard_std::{Direct, Settings};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let config = FramingConfig::packet(8192, 64 * 1024); // OUT = 64 KiB: frames coalesce
///
/// // The server counts frames until the client's EOF ends the connection cleanly.
/// let server = thread::spawn(move || {
///     let (stream, _) = listener.accept().unwrap();
///     let mut server = Direct::new(stream, PacketConnection::new(config), Settings::packet()).unwrap();
///     let mut frames = 0;
///     for event in &mut server {
///         let Event::Frame(frame) = event.unwrap();
///         assert_eq!(frame.len(), 8); // header + body
///         frames += 1;
///     }
///     frames
/// });
///
/// let mut client = Direct::new(TcpStream::connect(addr)?, PacketConnection::new(config), Settings::packet())?;
/// for i in 0..1000u32 {
///     client.send(Command::SendBody(Bytes::from(i.to_le_bytes().to_vec())))?;
/// }
/// client.close_and_join()?; // flush, send EOF, wait for the server's EOF
/// assert_eq!(server.join().unwrap(), 1000);
/// # Ok(())
/// # }
/// ```
pub struct Direct<M: Machine, S> {
    conn: Conn<M, S>,
}

impl<M: Machine, S: BlockingStream + AsFd> Direct<M, S> {
    /// Drive `machine` over `stream` (put in non-blocking mode, with `settings.socket` applied).
    /// `settings.command_capacity` and `settings.events` do not apply (there are no channels).
    pub fn new(stream: S, machine: M, settings: Settings<M::Command>) -> io::Result<Self> {
        Ok(Direct { conn: Conn::new(stream, machine, &settings)? })
    }

    /// Hand `command` to the machine. Blocks only while the write queue is at the machine's
    /// write budget (backpressure): it then writes, and reads (queueing events for
    /// [`recv`](Self::recv)), until the queue is under budget again.
    pub fn send(&mut self, command: M::Command) -> Result<(), SendError<M::Error>> {
        self.conn.feed(command)?;
        if self.conn.inline.should_write() {
            self.conn.io_round(false, true, true, None);
            while self.conn.inline.must_write() {
                self.conn.io_round(true, true, true, None);
            }
        }
        Ok(())
    }

    /// Write everything queued so far (`Err(Closed)` only if the connection ended with bytes
    /// unwritten), blocking until the socket took it (reading meanwhile,
    /// as [`send`](Self::send) does). Output the machine itself holds back (OUT coalescing with
    /// a commit time) is not forced out: send its flush command first for that.
    pub fn flush(&mut self) -> Result<(), SendError<M::Error>> {
        while self.conn.inline.has_writes(self.conn.now) {
            self.conn.io_round(true, true, true, None);
        }
        // Everything written is a success even if the peer has closed meanwhile; bytes left
        // unwritten mean the connection ended under them.
        match self.conn.inline.queued() {
            0 => Ok(()),
            _ => Err(SendError::Closed),
        }
    }

    /// The next event, blocking until one arrives (doing the connection's I/O and timers
    /// meanwhile). `None`: the peer closed its side (the connection still sends until
    /// [`close`](Self::close)), or the connection ended cleanly; `Some(Err)`: it ended with
    /// this error (reported once, after every event before it); after that, `None`.
    pub fn recv(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        loop {
            if let Some(next) = self.conn.next_ready() {
                return Some(next);
            }
            if !self.conn.inline.is_running() || self.conn.inline.events_ended() {
                return None;
            }
            self.conn.io_round(true, false, true, None);
        }
    }

    /// Like [`recv`](Self::recv) without blocking: do whatever I/O and timers are ready now and
    /// return an event if there is one. `None`: none yet, or the connection has ended and
    /// reported its result ([`is_ended`](Self::is_ended) tells which).
    pub fn try_recv(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        if let Some(next) = self.conn.next_ready() {
            return Some(next);
        }
        if self.conn.inline.is_running() {
            self.conn.io_round(false, false, true, None);
        }
        self.conn.next_ready()
    }

    /// Ask the machine to finish cleanly (`Input::Close`) after every command sent before.
    /// Keep calling [`recv`](Self::recv) for the events still coming and the result, or
    /// [`close_and_join`](Self::close_and_join).
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// [`close`](Self::close), then run the connection to its end, dropping the events still
    /// coming, and return its result.
    pub fn close_and_join(mut self) -> Result<(), DriverError<M::Error>> {
        self.close();
        loop {
            match self.conn.next_ready() {
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => continue,
                None if !self.conn.inline.is_running() => return Ok(()),
                None => {
                    self.conn.io_round(true, false, true, None);
                }
            }
        }
    }

    /// Whether the connection has ended and its result has been reported by `recv`.
    pub fn is_ended(&self) -> bool {
        self.conn.inline.is_reported() && self.conn.is_over()
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        self.conn.inline.machine()
    }

    /// The machine, for calls of its own API between inputs.
    pub fn machine_mut(&mut self) -> &mut M {
        self.conn.inline.machine_mut()
    }

    /// Bytes the machine transmitted that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.conn.inline.queued()
    }

    /// The peer's address, when the transport has an IP one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.peer_addr()
    }
}

impl<M: Machine, S: BlockingStream + AsFd> Iterator for Direct<M, S> {
    type Item = Result<M::Event, DriverError<M::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.recv()
    }
}

impl<M: Machine, S> std::fmt::Debug for Direct<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("queued", &self.conn.inline.queued())
            .field("peer", &self.conn.peer_addr())
            .finish_non_exhaustive()
    }
}
