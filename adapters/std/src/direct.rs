//! The direct driver: one machine over one non-blocking stream, driven on the calling thread.
//!
//! No extra threads and no channels: [`Direct::send`] hands the command straight to the machine,
//! and I/O happens only when it must: when the write queue reaches the machine's
//! [write budget](switchboard_proto::Machine::write_budget), on [`Direct::flush`], and inside
//! [`Direct::recv`], which writes what is queued, reads, runs the machine's timers and waits in
//! `poll(2)` for whichever of those can go on. Commands are fed in batches and the machine is
//! drained once per batch, so coalescing output (OUT) really coalesces. What to do when is
//! decided by [`Inline`] (shared with the async adapters' `Direct`); this type does the I/O.
//!
//! The one thing a single thread cannot do is read while the application is busy elsewhere:
//! when both ends send far more than they read, call [`Direct::try_recv`] between sends (or
//! use [`spawn`](crate::spawn)). While blocked inside `send`, the driver keeps reading up to
//! [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use switchboard_proto::driver::{Ending, Inline, Refusal, Step};
use switchboard_proto::time::Instant;
use switchboard_proto::Machine;
use switchboard_rt::Clock;

use crate::stream::write_queue;
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
/// decided by [`Inline`] (shared with the async adapters' `Direct`); this type does the I/O.
///
/// The one thing a single thread cannot do is read while the application is busy elsewhere:
/// when both ends send far more than they read, call [`Direct::try_recv`] between sends (or
/// use [`spawn`](crate::spawn)). While blocked inside `send`, the driver keeps reading up to
/// [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events.
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
    stream: S,
    inline: Inline<M>,
    clock: Clock,
    /// The time last read from the clock: refreshed after every system call, so a busy sender
    /// does not read the clock per frame.
    now: Instant,
    /// A transport error ends the connection at once; `recv` reports it after the events.
    io_error: Option<io::Error>,
    peer: Option<SocketAddr>,
}

impl<M: Machine, S: BlockingStream + AsFd> Direct<M, S> {
    /// Drive `machine` over `stream` (put in non-blocking mode, with `settings.socket` applied).
    /// `settings.command_capacity` does not apply (there is no channel).
    pub fn new(stream: S, machine: M, settings: Settings<M::Command>) -> io::Result<Self> {
        stream.apply(&settings.socket)?;
        stream.set_nonblocking(true)?;
        let clock = Clock::new();
        let now = clock.now();
        Ok(Direct {
            peer: stream.peer_addr(),
            inline: Inline::new(now, machine, settings.read_chunk, settings.linger),
            stream,
            now,
            clock,
            io_error: None,
        })
    }

    /// Hand `command` to the machine. Blocks only while the write queue is at the machine's
    /// write budget (backpressure): it then writes, and reads (queueing events for
    /// [`recv`](Self::recv)), until the queue is under budget again.
    pub fn send(&mut self, command: M::Command) -> Result<(), SendError<M::Error>> {
        self.inline.send(self.now, command)?;
        if self.inline.should_write() {
            self.io_round(false, true);
            while self.inline.must_write() {
                self.io_round(true, true);
            }
        }
        Ok(())
    }

    /// Write everything queued so far (`Err(Closed)` only if the connection ended with bytes
    /// unwritten), blocking until the socket took it (reading meanwhile,
    /// as [`send`](Self::send) does). Output the machine itself holds back (OUT coalescing with
    /// a commit time) is not forced out: send its flush command first for that.
    pub fn flush(&mut self) -> Result<(), SendError<M::Error>> {
        while self.inline.has_writes(self.now) {
            self.io_round(true, true);
        }
        // Everything written is a success even if the peer has closed meanwhile; bytes left
        // unwritten mean the connection ended under them.
        match self.inline.queued() {
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
            if let Some(next) = self.next_ready() {
                return Some(next);
            }
            if !self.inline.is_running() || self.inline.events_ended() {
                return None;
            }
            self.io_round(true, false);
        }
    }

    /// Like [`recv`](Self::recv) without blocking: do whatever I/O and timers are ready now and
    /// return an event if there is one. `None`: none yet, or the connection has ended and
    /// reported its result ([`is_ended`](Self::is_ended) tells which).
    pub fn try_recv(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        if let Some(next) = self.next_ready() {
            return Some(next);
        }
        if self.inline.is_running() {
            self.io_round(false, false);
        }
        self.next_ready()
    }

    /// Ask the machine to finish cleanly (`Input::Close`) after every command sent before.
    /// Keep calling [`recv`](Self::recv) for the events still coming and the result, or
    /// [`close_and_join`](Self::close_and_join).
    pub fn close(&mut self) {
        self.inline.close(self.now);
    }

    /// [`close`](Self::close), then run the connection to its end, dropping the events still
    /// coming, and return its result.
    pub fn close_and_join(mut self) -> Result<(), DriverError<M::Error>> {
        self.close();
        loop {
            match self.next_ready() {
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => continue,
                None if !self.inline.is_running() => return Ok(()),
                None => self.io_round(true, false),
            }
        }
    }

    /// Whether the connection has ended and its result has been reported by `recv`.
    pub fn is_ended(&self) -> bool {
        self.inline.is_reported() && self.io_error.is_none()
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        self.inline.machine()
    }

    /// The machine, for calls of its own API between inputs.
    pub fn machine_mut(&mut self) -> &mut M {
        self.inline.machine_mut()
    }

    /// Bytes the machine transmitted that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.inline.queued()
    }

    /// The peer's address, when the transport has an IP one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// An event or the end, if one is ready without I/O.
    fn next_ready(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        match self.inline.next(self.now) {
            Some(Ok(event)) => Some(Ok(event)),
            Some(Err(Ending::Machine(e))) => Some(Err(DriverError::Machine(e))),
            Some(Err(Ending::Unflushed(unsent))) => Some(Err(DriverError::Unflushed { unsent })),
            None => self.io_error.take().map(|e| Err(DriverError::Io(e))),
        }
    }

    /// One round of I/O: write what the socket takes, read what is there, run the timers, and
    /// when none of that could go on and `wait` is set, wait in `poll(2)` until one can.
    /// `sending`: called from `send`/`flush`, so the application is not taking events now.
    fn io_round(&mut self, wait: bool, sending: bool) {
        let mut blocked_on = PollFlags::empty();
        let mut progressed = false;

        let queued = self.inline.queued();
        if self.inline.has_writes(self.now) {
            let outcome = write_queue(&mut self.stream, self.inline.writes(), || {});
            progressed |= self.inline.queued() < queued;
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked_on |= PollFlags::OUT,
                Err(e) => return self.fail(e),
            }
            self.now = self.clock.now();
        }

        if self.inline.wants_read(sending) {
            match read_once(&mut self.stream, self.inline.read_buffer()) {
                Ok(Some(n)) => {
                    self.now = self.clock.now();
                    self.inline.on_read(self.now, n, sending);
                    progressed = true;
                }
                Ok(None) => blocked_on |= PollFlags::IN,
                Err(e) => return self.fail(e),
            }
        }

        progressed |= self.inline.on_wake(self.now);
        match self.inline.after_io(self.now) {
            Step::Continue => {}
            Step::ShutWrite => {
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            Step::End => {
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
        }

        if !wait || progressed {
            // The caller re-checks what it waits for: this round may have been enough.
            return;
        }
        // With nothing to wait for but the socket's hang-up (the machine waits for a command
        // the application is not sending), poll with no events: that blocks, it does not spin.
        let timeout = self.inline.wake_at().map(|at| {
            let d = self.clock.until(at);
            Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
        });
        let mut fds = [PollFd::new(&self.stream, blocked_on)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return self.fail(e.into()),
        }
        self.now = self.clock.now();
    }

    /// The transport failed: end now, and report `e` after the events already queued.
    fn fail(&mut self, e: io::Error) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.inline.fail();
        self.io_error = Some(e);
    }
}

/// Read once without blocking: `Some(n)` bytes (0 = EOF), `None` if nothing is there.
fn read_once(stream: &mut impl io::Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
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
            .field("queued", &self.inline.queued())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
