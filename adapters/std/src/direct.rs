//! The direct driver: one machine over one non-blocking stream, driven on the calling thread.
//!
//! No extra threads and no channels: [`Direct::send`] hands the command straight to the machine,
//! and I/O happens only when it must: when the write queue reaches the machine's
//! [write budget](switchboard_proto::Machine::write_budget), on [`Direct::flush`], and inside
//! [`Direct::recv`], which writes what is queued, reads, runs the machine's timers and waits in
//! `poll(2)` for whichever of those can go on. Commands are fed in batches and the machine is
//! drained once per batch, so coalescing output (OUT) really coalesces.
//!
//! # States
//!
//! | state     | on                                              | next      |
//! |-----------|-------------------------------------------------|-----------|
//! | Open      | the machine finishes (`Finished`), or `close` without a close command | Finishing |
//! | Open      | a socket error                                  | Ended(Err `Io`) |
//! | Finishing | everything written: write side shut down; then the peer's EOF, or linger over | Ended(result) |
//! | Finishing | linger over with bytes unwritten                | Ended(Err `Unflushed`) |
//! | Ended     | `recv` after the queued events                  | reports the result once, then `None` |

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use switchboard_proto::driver::{Pump, ReadBuffer, STREAM_GATHER};
use switchboard_proto::time::Instant;
use switchboard_proto::{Input, Machine};
use switchboard_rt::Clock;

use crate::stream::write_queue;
use crate::{BlockingStream, DriverError, Settings};

/// At most this many commands are fed before the machine is drained (and the budget checked).
/// The batch adapts to what commands produced so far (see `Direct::drain`): a quarter of the
/// write budget's worth, so small frames coalesce into large writes and large frames are
/// checked against the budget one by one.
const MAX_BATCH: usize = 256;

/// While the application is inside `send` or `flush` (so not taking events), reads stop once
/// this many events wait for it. Reading on while blocked on writes is what keeps two peers
/// that both send more than they read from waiting on each other; this bounds what it can hold.
const EVENTS_HELD: usize = 1024;

/// Why [`Direct::send`] or [`Direct::flush`] did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E: std::error::Error + 'static> {
    /// The machine refused the command (the caller's fault); the connection goes on.
    #[error("command refused: {0}")]
    Refused(#[source] E),
    /// The connection has ended; [`Direct::recv`] reports how.
    #[error("the connection has ended")]
    Closed,
}

/// Where the connection is in its life (see the module's state table).
#[derive(Debug)]
enum Phase<X: std::error::Error + 'static> {
    Open,
    /// The machine is done; writing the rest, then waiting for the peer's EOF until `linger`.
    Finishing {
        result: Result<(), DriverError<X>>,
        linger_until: Instant,
    },
    /// The result waits for `recv` to report it after the events before it.
    Ended(Result<(), DriverError<X>>),
    Reported,
}

/// A machine driven directly on the calling thread over a non-blocking stream. See the
/// [module docs](self).
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
    pump: Pump<M>,
    rx: ReadBuffer,
    events: VecDeque<M::Event>,
    clock: Clock,
    /// The time last read from the clock: refreshed per batch of commands and after every
    /// system call, so a busy sender does not read the clock per frame.
    now: Instant,
    /// Commands fed since the last drain.
    fed: usize,
    /// Commands to feed before the next drain (adapted in `drain`).
    batch: usize,
    settings: Settings<M::Command>,
    phase: Phase<M::Error>,
    peer_eof: bool,
    write_shut: bool,
    /// A read made the machine transmit while the queue was over budget: stop reading until it
    /// is under again, so a peer that does not read cannot make the queue grow.
    read_paused: bool,
    peer: Option<SocketAddr>,
}

impl<M: Machine, S: BlockingStream + AsFd> Direct<M, S> {
    /// Drive `machine` over `stream` (put in non-blocking mode, with `settings.socket` applied).
    /// `settings.command_capacity` does not apply (there is no channel).
    pub fn new(stream: S, machine: M, settings: Settings<M::Command>) -> io::Result<Self> {
        stream.apply(&settings.socket)?;
        stream.set_nonblocking(true)?;
        let clock = Clock::new();
        let mut pump = Pump::new(machine);
        pump.writes().gather_small(STREAM_GATHER);
        let mut direct = Direct {
            peer: stream.peer_addr(),
            stream,
            pump,
            rx: ReadBuffer::new(settings.read_chunk),
            events: VecDeque::new(),
            now: clock.now(),
            clock,
            fed: 0,
            batch: 1,
            settings,
            phase: Phase::Open,
            peer_eof: false,
            write_shut: false,
            read_paused: false,
        };
        // The first drain gives the machine the time (its timers start) and takes anything it
        // transmits on its own, such as a greeting.
        direct.drain();
        Ok(direct)
    }

    /// Hand `command` to the machine. Blocks only while the write queue is at the machine's
    /// write budget (backpressure): it then writes, and reads (queueing events for
    /// [`recv`](Self::recv)), until the queue is under budget again.
    pub fn send(&mut self, command: M::Command) -> Result<(), SendError<M::Error>> {
        if !matches!(self.phase, Phase::Open) {
            return Err(SendError::Closed);
        }
        self.pump.feed(self.now, Input::Command(command)).map_err(SendError::Refused)?;
        self.fed += 1;
        if self.fed >= self.batch {
            self.now = self.clock.now();
            self.drain();
            while self.pump.writes().len() >= self.pump.machine().write_budget() && self.is_running() {
                self.step(true, true);
            }
        }
        Ok(())
    }

    /// Write everything queued so far, blocking until the socket took it (reading meanwhile,
    /// as [`send`](Self::send) does). Output the machine itself holds back (OUT coalescing with
    /// a commit time) is not forced out: send its flush command first for that.
    pub fn flush(&mut self) -> Result<(), SendError<M::Error>> {
        self.drain();
        while !self.pump.writes().is_empty() && self.is_running() {
            self.step(true, true);
        }
        if self.is_running() {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    /// The next event, blocking until one arrives (doing the connection's I/O and timers
    /// meanwhile). `None`: the connection ended cleanly; `Some(Err)`: it ended with this error
    /// (reported once, after every event before it); after that, `None`.
    pub fn recv(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        loop {
            if self.fed > 0 {
                self.drain();
            }
            if let Some(event) = self.events.pop_front() {
                return Some(Ok(event));
            }
            match std::mem::replace(&mut self.phase, Phase::Reported) {
                Phase::Ended(result) => return result.err().map(Err),
                Phase::Reported => return None,
                other => self.phase = other,
            }
            self.step(true, false);
        }
    }

    /// Like [`recv`](Self::recv) without blocking: do whatever I/O and timers are ready now and
    /// return an event if there is one (`None` when there is none yet, or the connection has
    /// ended and reported its result; [`is_ended`](Self::is_ended) tells which).
    pub fn try_recv(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        if self.events.is_empty() && matches!(self.phase, Phase::Open | Phase::Finishing { .. }) {
            self.step(false, false);
        }
        match self.events.is_empty() && matches!(self.phase, Phase::Open | Phase::Finishing { .. }) {
            true => None,
            false => self.recv(),
        }
    }

    /// Ask the machine to finish cleanly: its close command ([`Settings::close_with`]) goes in
    /// after every command sent before. Keep calling [`recv`](Self::recv) for the events still
    /// coming and the result. Without a close command, the machine is fed nothing more and the
    /// connection ends `Ok` once what it transmitted is written.
    pub fn close(&mut self) {
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        match self.settings.close_command() {
            Some(command) => {
                // A machine that refuses its own close command is finishing already.
                let _ = self.pump.feed(self.now, Input::Command(command));
                self.drain();
            }
            None => self.finish(Ok(())),
        }
    }

    /// [`close`](Self::close), then run the connection to its end, dropping the events still
    /// coming, and return its result.
    pub fn close_and_join(mut self) -> Result<(), DriverError<M::Error>> {
        self.close();
        while let Some(next) = self.recv() {
            next?;
        }
        Ok(())
    }

    /// Whether the connection has ended and its result has been reported by `recv`.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Reported)
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        self.pump.machine()
    }

    /// The machine, for calls of its own API between inputs.
    pub fn machine_mut(&mut self) -> &mut M {
        self.fed += 1; // drain before the next wait: the call may have produced output
        self.pump.machine_mut()
    }

    /// Bytes the machine transmitted that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.pump.queued()
    }

    /// The peer's address, when the transport has an IP one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Finishing { .. })
    }

    /// Drain the machine into the write queue and the event queue; notice when it finished.
    fn drain(&mut self) {
        let (fed, before) = (self.fed, self.pump.queued());
        self.fed = 0;
        let events = &mut self.events;
        self.pump.drain(self.now, |event| events.push_back(event));
        if let Some(per_command) = self.pump.queued().saturating_sub(before).checked_div(fed) {
            let per_command = per_command.max(1);
            self.batch = (self.pump.machine().write_budget() / 4 / per_command).clamp(1, MAX_BATCH);
        }
        if matches!(self.phase, Phase::Open) && self.pump.is_finished() {
            let result = self.pump.take_result().unwrap_or(Ok(())).map_err(DriverError::Machine);
            self.finish(result);
        }
    }

    /// The machine is done (or the application stopped feeding it): write the rest, then close.
    fn finish(&mut self, result: Result<(), DriverError<M::Error>>) {
        self.phase = Phase::Finishing { result, linger_until: self.now.saturating_add(self.settings.linger) };
    }

    /// End now: shut the socket down both ways and keep `result` for `recv` to report.
    fn end(&mut self, result: Result<(), DriverError<M::Error>>) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.phase = Phase::Ended(result);
    }

    /// One round of I/O: write what the socket takes, read what is there, run the timers, and
    /// when none of that could go on and `wait` is set, wait in `poll(2)` until one can.
    /// `sending`: called from `send`/`flush`, so the application is not taking events now.
    fn step(&mut self, wait: bool, sending: bool) {
        let mut blocked_on = PollFlags::empty();
        let mut progressed = false;

        let queued = self.pump.queued();
        if queued > 0 {
            let outcome = write_queue(&mut self.stream, self.pump.writes(), || {});
            progressed = self.pump.queued() < queued;
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked_on |= PollFlags::OUT,
                Err(e) => return self.end(Err(DriverError::Io(e))),
            }
            self.now = self.clock.now();
        }
        if self.read_paused && self.pump.writes().len() < self.pump.machine().write_budget() {
            self.read_paused = false;
        }

        let holding_events = sending && self.events.len() >= EVENTS_HELD;
        let reading = !self.peer_eof
            && !self.read_paused
            && !holding_events
            && (self.pump.wants_input() || !matches!(self.phase, Phase::Open) || !self.pump.writes().is_empty());
        if reading {
            match self.read_once() {
                Ok(true) => return,
                Ok(false) => blocked_on |= PollFlags::IN,
                Err(e) => return self.end(Err(DriverError::Io(e))),
            }
        }

        if let Some(deadline) = self.pump.deadline() {
            if self.now >= deadline && matches!(self.phase, Phase::Open) {
                let _ = self.pump.feed(self.now, Input::Timeout);
                self.drain();
                return;
            }
        }

        if let Phase::Finishing { linger_until, .. } = self.phase {
            if self.pump.writes().is_empty() && !self.write_shut {
                // Everything is written: the peer sees EOF after our last byte.
                self.write_shut = true;
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            let written = self.pump.writes().is_empty();
            if (written && (self.peer_eof || self.settings.linger.is_zero())) || self.now >= linger_until {
                let Phase::Finishing { result, .. } = std::mem::replace(&mut self.phase, Phase::Reported) else {
                    unreachable!("matched Finishing above")
                };
                let unsent = self.pump.writes().len();
                let result = match result {
                    Ok(()) if unsent > 0 => Err(DriverError::Unflushed { unsent }),
                    other => other,
                };
                return self.end(result);
            }
        }

        if !wait || progressed {
            // The caller re-checks what it waits for: the write may have been enough.
            return;
        }
        // With nothing to wait for but the socket's hang-up (the machine waits for a command
        // the application is not sending), poll with no events: that blocks, it does not spin.
        let wake_at = match self.phase {
            Phase::Finishing { linger_until, .. } => {
                Some(self.pump.deadline().map_or(linger_until, |d| d.min(linger_until)))
            }
            _ => self.pump.deadline(),
        };
        let timeout = wake_at.map(|at| {
            let d = self.clock.until(at);
            Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
        });
        let mut fds = [PollFd::new(&self.stream, blocked_on)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return self.end(Err(DriverError::Io(e.into()))),
        }
        self.now = self.clock.now();
    }

    /// Read once without blocking. `Ok(true)`: something happened (bytes or EOF).
    fn read_once(&mut self) -> io::Result<bool> {
        let over_budget = self.pump.writes().len() >= self.pump.machine().write_budget();
        let queued_before = self.pump.writes().len();
        let n = loop {
            match self.stream.read(self.rx.spare()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        self.now = self.clock.now();
        if n == 0 {
            self.peer_eof = true;
            if matches!(self.phase, Phase::Open) {
                let _ = self.pump.feed(self.now, Input::Eof);
                self.drain();
            }
            return Ok(true);
        }
        self.rx.filled(n);
        if !matches!(self.phase, Phase::Open) {
            // Lingering after the end: what the peer still sends has nowhere to go.
            self.rx.received().clear();
            return Ok(true);
        }
        let _ = self.pump.feed(self.now, Input::Stream(self.rx.received()));
        self.drain();
        if over_budget && self.pump.writes().len() > queued_before {
            self.read_paused = true;
        }
        Ok(true)
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
        f.debug_struct("Direct").field("events", &self.events.len()).field("peer", &self.peer).finish_non_exhaustive()
    }
}
