//! The blocking shell over [`Inline`]: one machine over one non-blocking stream, with the
//! reads, writes and `poll(2)` waits [`Inline`] asks for. Both stream drivers are this shell:
//! [`Direct`](crate::Direct) runs it on the application's thread, and the threaded driver
//! ([`spawn`](crate::spawn), [`run`](crate::run), [`serve`](crate::serve)) on a thread of its
//! own, waking also for a [`Wake`] rung by the application's handles.

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{poll, EventfdFlags, PollFd, PollFlags, Timespec};
use switchboard_proto::driver::{Inline, Refusal, Step, WriteQueue};
use switchboard_proto::time::Instant;
use switchboard_proto::Machine;
use switchboard_rt::Clock;

use crate::{BlockingStream, DriverError, Settings};

/// At most this many buffers go into one vectored write.
const MAX_IOVECS: usize = 64;

/// A connection that read nothing for this long gives its receive buffer back (if it holds no
/// partial frame): thousands of idle connections then hold no read buffers, while a busy one
/// keeps reusing its own instead of allocating (and zeroing) one per wake-up.
const IDLE_RELEASE: core::time::Duration = core::time::Duration::from_secs(1);

/// Lets other threads wake a driver thread that waits in `poll(2)`: an eventfd, rung only
/// while the driver says it is about to sleep, so a busy driver costs its senders no system
/// call.
#[derive(Debug)]
pub(crate) struct Wake {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Wake {
    pub(crate) fn new() -> io::Result<Self> {
        let fd = rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Wake { fd, sleeping: AtomicBool::new(false) })
    }

    /// Wake the driver if it sleeps (or is about to).
    pub(crate) fn ring(&self) {
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            // A full counter still wakes the poll; nothing to do about an error here.
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// The driver is about to sleep: from now on a ring writes. The caller looks at its
    /// channels once more afterwards, so news posted just before is not slept through.
    pub(crate) fn arm(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// The driver is awake again: take any ring that came.
    pub(crate) fn disarm(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
        let _ = rustix::io::read(&self.fd, &mut [0u8; 8]);
    }
}

/// Counters of one connection's I/O, kept by the shell and copied out by whoever reports them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IoCounts {
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    pub(crate) writes: u64,
}

/// What one round of I/O came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// Bytes moved, a timer ran, or the connection ended: look again before waiting.
    Progress,
    /// Nothing could move without waiting (and the caller asked not to wait).
    Idle,
    /// Woken by the [`Wake`]: look at the channels.
    Woken,
}

/// A machine over a non-blocking stream. See the module docs.
pub(crate) struct Conn<M: Machine, S> {
    pub(crate) stream: S,
    pub(crate) inline: Inline<M>,
    clock: Clock,
    /// The time last read from the clock: refreshed after every system call, so a busy sender
    /// does not read the clock per frame.
    pub(crate) now: Instant,
    /// A transport error ends the connection at once; it is reported after the events.
    io_error: Option<io::Error>,
    peer: Option<SocketAddr>,
    pub(crate) counts: IoCounts,
    /// When bytes last arrived (see [`IDLE_RELEASE`]).
    last_read: Instant,
    /// A deadline of the caller's own to wake for, besides the machine's.
    alarm: Option<Instant>,
}

impl<M: Machine, S> Conn<M, S> {
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl<M: Machine, S: BlockingStream + AsFd> Conn<M, S> {
    /// `stream` is put in non-blocking mode with `settings.socket` applied.
    pub(crate) fn new(stream: S, machine: M, settings: &Settings<M::Command>) -> io::Result<Self> {
        stream.apply(&settings.socket)?;
        stream.set_nonblocking(true)?;
        let clock = Clock::new();
        let now = clock.now();
        Ok(Conn {
            peer: stream.peer_addr(),
            inline: Inline::new(now, machine, settings.read_chunk, settings.linger),
            stream,
            now,
            clock,
            io_error: None,
            counts: IoCounts::default(),
            last_read: now,
            alarm: None,
        })
    }

    /// Hand `command` to the machine (no I/O).
    pub(crate) fn feed(&mut self, command: M::Command) -> Result<(), Refusal<M::Error>> {
        self.inline.send(self.now, command)
    }

    /// Ask the machine to finish cleanly (no I/O).
    pub(crate) fn close(&mut self) {
        self.inline.close(self.now);
    }

    /// An event or the end, if one is ready without I/O.
    pub(crate) fn next_ready(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        match self.inline.next(self.now) {
            Some(next) => Some(next.map_err(DriverError::from)),
            None => self.io_error.take().map(|e| Err(DriverError::Io(e))),
        }
    }

    /// Wake for `at` too in the next waits (`None`: the machine's deadline only).
    pub(crate) fn set_alarm(&mut self, at: Option<Instant>) {
        self.alarm = at;
    }

    /// Whether the connection ended and said how (no event and no result to come).
    pub(crate) fn is_over(&self) -> bool {
        !self.inline.is_running() && self.io_error.is_none()
    }

    /// One round of I/O: write what the socket takes, read what is there (unless `may_read` is
    /// false: the application has no room for events), run the timers, and when none of that
    /// could go on and `wait` is set, wait in `poll(2)` until one can (or `wake` rings).
    /// `sending`: the application is not taking events now (inside a send, or over budget).
    pub(crate) fn io_round(&mut self, wait: bool, sending: bool, may_read: bool, wake: Option<&Wake>) -> Round {
        let mut blocked_on = PollFlags::empty();
        let mut progressed = false;

        let queued = self.inline.queued();
        if self.inline.has_writes(self.now) {
            let counts = &mut self.counts;
            let outcome = write_queue(&mut self.stream, self.inline.writes(), |n| {
                counts.bytes_written += n as u64;
                counts.writes += 1;
            });
            progressed |= self.inline.queued() < queued;
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked_on |= PollFlags::OUT,
                Err(e) => {
                    self.fail(e);
                    return Round::Progress;
                }
            }
            self.now = self.clock.now();
        }

        if may_read && self.inline.wants_read(sending) {
            match read_once(&mut self.stream, self.inline.read_buffer()) {
                Ok(Some(n)) => {
                    self.now = self.clock.now();
                    self.last_read = self.now;
                    self.counts.bytes_read += n as u64;
                    self.inline.on_read(self.now, n, sending);
                    progressed = true;
                }
                Ok(None) => blocked_on |= PollFlags::IN,
                Err(e) => {
                    self.fail(e);
                    return Round::Progress;
                }
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
                return Round::Progress;
            }
        }

        if progressed {
            return Round::Progress;
        }
        if !wait {
            return Round::Idle;
        }
        // With nothing to wait for but the socket's hang-up (the machine waits for a command
        // the application is not sending), poll with no events: that blocks, it does not spin.
        let mut wake_at = match (self.inline.wake_at(), self.alarm) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.inline.read_buffer_allocated() {
            let release_at = self.last_read.saturating_add(IDLE_RELEASE);
            if self.now >= release_at {
                self.inline.read_idle();
            } else {
                wake_at = Some(wake_at.map_or(release_at, |at| at.min(release_at)));
            }
        }
        let timeout = wake_at.map(|at| {
            let d = self.clock.until(at);
            Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
        });
        let polled = match wake {
            Some(wake) => {
                let mut fds = [PollFd::new(&self.stream, blocked_on), PollFd::new(&wake.fd, PollFlags::IN)];
                let polled = poll(&mut fds, timeout.as_ref());
                polled.map(|_| !fds[1].revents().is_empty())
            }
            None => {
                let mut fds = [PollFd::new(&self.stream, blocked_on)];
                poll(&mut fds, timeout.as_ref()).map(|_| false)
            }
        };
        self.now = self.clock.now();
        match polled {
            Ok(true) => Round::Woken,
            Ok(false) | Err(rustix::io::Errno::INTR) => Round::Progress,
            Err(e) => {
                self.fail(e.into());
                Round::Progress
            }
        }
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

/// Write `queue` with vectored writes until it is empty (or the socket fails or would block),
/// calling `on_write(n)` after each successful write call.
pub(crate) fn write_queue<S: Write>(
    stream: &mut S,
    queue: &mut WriteQueue,
    mut on_write: impl FnMut(usize),
) -> io::Result<()> {
    while !queue.is_empty() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(queue.chunks()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            stream.write_vectored(&slices[..count])
        };
        match written {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes")),
            Ok(n) => {
                on_write(n);
                queue.advance(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
