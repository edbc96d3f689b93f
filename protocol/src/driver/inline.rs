//! The I/O-free half of a driver that runs on the application's own thread or task.
//!
//! [`Inline`] is what `switchboard_std::Direct` and `switchboard_rt::Direct` share: the
//! application's calls go straight into the machine, with no channel and no second thread or
//! task, and the driver does I/O only when it must. This type decides *what* to do; the
//! adapters only do the reads, writes and waits it asks for.
//!
//! # States
//!
//! | phase     | on                                                      | next      |
//! |-----------|---------------------------------------------------------|-----------|
//! | Open      | the peer's EOF: fed at once; the machine reports `ReadClosed` and goes on taking commands ([`is_read_closed`](Inline::is_read_closed)) | Open |
//! | Open      | the machine finishes (after `close` feeds it `Input::Close`, a timer, or an error) | Finishing |
//! | Open      | the transport fails (the adapter calls `fail`)           | Ended(Err) |
//! | Finishing | everything written: [`Step::ShutWrite`]; then the peer's EOF, or linger over | Ended(result) |
//! | Finishing | linger over with bytes unwritten                         | Ended(`Unflushed`) |
//! | Ended     | the events before it taken                               | reported once, then Reported |
//!
//! # A driver's loop
//!
//! ```text
//! send(cmd):  inline.send(now, cmd)?
//!             if inline.should_write() { io_round(sending, no waiting); while inline.must_write() { io_round(sending) } }
//! recv():     loop { if let Some(r) = inline.next(now) { return r }; if inline.events_ended() { return None }; io_round(not sending) }
//! io_round:   write inline.writes() until it would block      (then wait for writable)
//!             if inline.wants_read(sending) { read into inline.read_buffer(); inline.on_read(now, n, sending) }
//!             inline.on_wake(now)                               (timers, linger)
//!             match inline.after_io(now) { ShutWrite => shutdown(Write), End => shutdown(Both), Continue => {} }
//!             if nothing moved: wait for writable / readable / inline.wake_at()
//! ```

use alloc::collections::VecDeque;
use core::time::Duration;

use super::{Pump, ReadBuffer, WriteQueue, STREAM_GATHER};
use crate::machine::{Input, Machine};
use crate::time::Instant;

/// At most this many commands are fed before the machine is drained (and the budget checked).
/// The batch adapts to what commands produced so far: a quarter of the write budget's worth, so
/// small frames coalesce into large writes and large frames are checked one by one.
const MAX_BATCH: usize = 256;

/// While the application is sending (so not taking events), reads stop once this many events
/// wait for it. Reading on while blocked on writes is what keeps two peers that both send more
/// than they read from waiting on each other; this bounds what that can hold.
pub const EVENTS_HELD: usize = 1024;

/// While the application is sending, reads also stop once this many bytes were read since it
/// last emptied the event queue: events are slices of what was read, so this bounds the
/// memory they hold in bytes, whatever their count (1024 events of a 1 MiB IN would be 1 GiB).
pub const BYTES_HELD: usize = 1024 * 1024;

/// How an inline-driven connection ended, before the adapter adds its own I/O errors.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending<X> {
    /// The machine finished with this error.
    Machine(X),
    /// The linger time ran out with this many transmitted bytes unwritten.
    Unflushed(usize),
    /// The machine asked for an addressed datagram, which a stream cannot send: it was put on
    /// the wrong transport (the caller's fault). The connection ends at once.
    DatagramOnStream,
}

/// Why a send to an inline-driven connection did not take effect (the adapters re-export it
/// as `SendError`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal<X: core::error::Error + 'static> {
    /// The machine refused the command (the caller's fault); the connection goes on.
    #[error("command refused: {0}")]
    Refused(#[source] X),
    /// The connection has ended; receiving reports how.
    #[error("the connection has ended")]
    Closed,
}

/// What the adapter does after a round of I/O.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do but wait (or go on).
    Continue,
    /// Everything is written after the machine finished: shut down the write side (the peer
    /// sees EOF after the last byte).
    ShutWrite,
    /// The connection is over: shut the socket down both ways.
    End,
}

#[derive(Debug)]
enum Phase<X> {
    Open,
    Finishing { result: Result<(), X>, linger_until: Instant },
    Ended(Result<(), Ending<X>>),
    Reported,
}

/// A machine with everything an inline driver keeps besides the socket. See the module docs.
#[derive(Debug)]
pub struct Inline<M: Machine> {
    pump: Pump<M>,
    events: VecDeque<M::Event>,
    rx: ReadBuffer,
    /// Commands fed since the last drain, and how many to feed before the next one.
    fed: usize,
    batch: usize,
    /// Commands drained since a drain last brought bytes out: the next batch is sized from
    /// what they produced together.
    unmeasured: usize,
    phase: Phase<M::Error>,
    linger: Duration,
    peer_eof: bool,
    write_shut: bool,
    /// A read made the machine transmit while over budget: no reads until under it again.
    read_paused: bool,
    /// Bytes were fed and the machine not drained since: `next` takes its events one by one
    /// straight from the machine (no second queue on the receive path).
    undrained: bool,
    /// Bytes read while the application was sending, since it last emptied the event queue
    /// (counted against [`BYTES_HELD`]).
    read_unclaimed: usize,
    /// The latest time a call brought, for a drain in a call that brings none (`wants_read`):
    /// the machine never sees time go back.
    now: Instant,
}

impl<M: Machine> Inline<M> {
    /// Wrap `machine`; reads take up to `read_chunk` bytes; after the machine finishes the
    /// driver waits up to `linger` for the peer's EOF. Drains once at `now` (timers start).
    pub fn new(now: Instant, machine: M, read_chunk: usize, linger: Duration) -> Self {
        let mut pump = Pump::new(machine);
        pump.writes().gather_small(STREAM_GATHER);
        let mut inline = Inline {
            pump,
            events: VecDeque::new(),
            rx: ReadBuffer::new(read_chunk),
            fed: 0,
            batch: 1,
            unmeasured: 0,
            phase: Phase::Open,
            linger,
            peer_eof: false,
            write_shut: false,
            read_paused: false,
            undrained: false,
            read_unclaimed: 0,
            now,
        };
        inline.drain(now);
        inline
    }

    /// Hand `command` to the machine. Afterwards, while [`must_write`](Self::must_write), the
    /// adapter does I/O rounds (backpressure).
    pub fn send(&mut self, now: Instant, command: M::Command) -> Result<(), Refusal<M::Error>> {
        self.now = now;
        if !matches!(self.phase, Phase::Open) {
            return Err(Refusal::Closed);
        }
        if let Err(e) = self.pump.feed(now, Input::Command(command)) {
            // A timer due at `now` may have ended the machine on this very call (contract rule
            // 1), which then refuses the command: the connection has ended, not the caller erred.
            self.drain(now);
            return Err(if self.is_open() { Refusal::Refused(e) } else { Refusal::Closed });
        }
        self.fed += 1;
        if self.fed >= self.batch {
            self.drain(now);
        }
        Ok(())
    }

    /// Whether the write queue is at the machine's budget: the sender must wait for writes.
    pub fn must_write(&self) -> bool {
        self.is_running() && self.pump.queued() >= self.pump.machine().write_budget()
    }

    /// Whether the write queue holds 7/8 of the budget: time to write what the socket takes
    /// now, without waiting, so the peer is kept busy while the sender fills the rest (waiting
    /// for the whole budget would alternate filling and draining instead of overlapping them).
    /// Why 7/8 and not less: each write then carries nearly a full budget, so fewer, larger
    /// writes wake the peer fewer times (at half, async 1 KiB framing ran 13% slower).
    pub fn should_write(&self) -> bool {
        self.is_running() && self.pump.queued() >= self.pump.machine().write_budget() / 8 * 7
    }

    /// Whether anything is waiting to be written (drains pending commands first).
    pub fn has_writes(&mut self, now: Instant) -> bool {
        self.now = now;
        if self.fed > 0 || self.undrained {
            self.drain(now);
        }
        self.is_running() && self.pump.queued() > 0
    }

    /// `Some(Ok(event))`: the next event. `Some(Err(ending))`: the connection ended with this
    /// error (reported once, after every event before it). `None`: nothing now (do an I/O
    /// round), or the end was reported ([`is_reported`](Self::is_reported)).
    pub fn next(&mut self, now: Instant) -> Option<Result<M::Event, Ending<M::Error>>> {
        self.now = now;
        if self.fed > 0 {
            self.drain(now);
        }
        if let Some(event) = self.events.pop_front() {
            return Some(Ok(event));
        }
        self.read_unclaimed = 0;
        if self.undrained {
            if let Some(event) = self.pump.next_event(now) {
                return Some(Ok(event));
            }
            self.undrained = false;
            self.check_finished(now);
        }
        match core::mem::replace(&mut self.phase, Phase::Reported) {
            Phase::Ended(Err(e)) => Some(Err(e)),
            Phase::Ended(Ok(())) | Phase::Reported => None,
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Whether the connection ended and its result was taken by [`next`](Self::next).
    pub fn is_reported(&self) -> bool {
        matches!(self.phase, Phase::Reported)
    }

    /// Whether the connection still does I/O (open, or finishing its writes and linger).
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Finishing { .. })
    }

    /// Whether commands are still taken.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Whether the machine reported the peer's EOF after every event before it: no event
    /// comes any more, but commands are still taken until [`close`](Self::close).
    pub fn is_read_closed(&self) -> bool {
        self.pump.is_read_closed() && self.events.is_empty() && !self.undrained
    }

    /// Whether [`next`](Self::next) can give nothing more: the peer's EOF was reported
    /// ([`is_read_closed`](Self::is_read_closed)), or the connection ended and said how.
    pub fn events_ended(&self) -> bool {
        self.is_read_closed() || self.is_reported()
    }

    /// Ask the machine to finish cleanly (`Input::Close`), after every command before.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        // A machine that is finishing already takes it as a no-op.
        let _ = self.pump.feed(now, Input::Close);
        self.drain(now);
    }

    /// The transport failed: the connection is over (the adapter reports its own error).
    pub fn fail(&mut self) {
        self.phase = Phase::Reported;
    }

    /// Bytes to write, in order.
    pub fn writes(&mut self) -> &mut WriteQueue {
        self.pump.writes()
    }

    /// Bytes transmitted and not yet written.
    pub fn queued(&self) -> usize {
        self.pump.queued()
    }

    /// Whether to read now. `sending`: the application is inside a send or flush, not taking
    /// events.
    pub fn wants_read(&mut self, sending: bool) -> bool {
        if self.undrained {
            // Events read while not sending wait in the machine, maybe with its `ReadClosed`
            // (a fault in what the peer sent): count them, and read nothing more for a machine
            // whose read side closed.
            self.drain(self.now);
        }
        if self.read_paused && self.pump.queued() < self.pump.machine().write_budget() {
            self.read_paused = false;
        }
        let holding_events = sending && (self.events.len() >= EVENTS_HELD || self.read_unclaimed >= BYTES_HELD);
        // Once the machine closed its read side (a fault in what the peer sent), nothing read
        // has anywhere to go until the machine finishes; then the linger drains the socket.
        let machine_reads = !(self.is_open() && self.pump.is_read_closed());
        self.is_running()
            && !self.peer_eof
            && machine_reads
            && !self.read_paused
            && !holding_events
            && (self.pump.wants_input() || !self.is_open() || self.pump.queued() > 0)
    }

    /// Where the next read goes; then call [`on_read`](Self::on_read) with its length.
    pub fn read_buffer(&mut self) -> &mut [u8] {
        self.rx.spare()
    }

    /// Whether the receive buffer is allocated. A driver holding many idle connections reads
    /// into a shared scratch buffer while it is not, and hands what arrived to
    /// [`on_read_copy`](Self::on_read_copy).
    pub fn read_buffer_allocated(&self) -> bool {
        self.rx.is_allocated()
    }

    /// Bytes read into a scratch buffer: copy them into the receive buffer, then as
    /// [`on_read`](Self::on_read).
    pub fn on_read_copy(&mut self, now: Instant, bytes: &[u8], sending: bool) {
        if bytes.is_empty() {
            return self.on_read(now, 0, sending);
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = self.rx.spare();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            self.rx.filled(n);
            rest = &rest[n..];
        }
        self.on_filled(now, bytes.len(), sending);
    }

    /// A read would block: release the receive buffer if it holds nothing unconsumed, so an
    /// idle connection costs no read buffer.
    pub fn read_idle(&mut self) {
        self.rx.release_if_empty();
    }

    /// A read returned `n` bytes (0: the peer's EOF). `sending` as for
    /// [`wants_read`](Self::wants_read): then the machine is drained into the event queue at
    /// once (its events are counted against [`EVENTS_HELD`], its bytes against [`BYTES_HELD`]);
    /// otherwise [`next`](Self::next)
    /// takes them from the machine as the application asks.
    pub fn on_read(&mut self, now: Instant, n: usize, sending: bool) {
        self.now = now;
        if n == 0 {
            self.peer_eof = true;
            if self.is_open() {
                let _ = self.pump.feed(now, Input::Eof);
                self.drain(now);
            }
            return;
        }
        self.rx.filled(n);
        self.on_filled(now, n, sending);
    }

    /// `n` more bytes are in the receive buffer (`n > 0`).
    fn on_filled(&mut self, now: Instant, n: usize, sending: bool) {
        debug_assert!(n > 0);
        self.now = now;
        if !self.is_open() {
            // Lingering after the end: what the peer still sends has nowhere to go.
            self.rx.received().clear();
            return;
        }
        if sending {
            self.read_unclaimed = self.read_unclaimed.saturating_add(n);
        }
        let over_budget = self.pump.queued() >= self.pump.machine().write_budget();
        let queued_before = self.pump.queued();
        let _ = self.pump.feed(now, Input::Stream(self.rx.received()));
        if !(sending || over_budget) {
            self.undrained = true;
            return;
        }
        self.drain(now);
        if over_budget && self.pump.queued() > queued_before {
            self.read_paused = true;
        }
    }

    /// When to wake with [`on_wake`](Self::on_wake) if nothing else happens.
    pub fn wake_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open => self.pump.deadline(),
            Phase::Finishing { linger_until, .. } => Some(linger_until),
            _ => None,
        }
    }

    /// Run the machine's timers (and the linger) at `now`. Returns whether anything was due.
    pub fn on_wake(&mut self, now: Instant) -> bool {
        self.now = now;
        match self.phase {
            Phase::Open if self.pump.deadline().is_some_and(|d| now >= d) => {
                let _ = self.pump.feed(now, Input::Timeout);
                self.drain(now);
                true
            }
            Phase::Finishing { linger_until, .. } => now >= linger_until,
            _ => false,
        }
    }

    /// After a round of I/O: what the adapter must do to the socket.
    pub fn after_io(&mut self, now: Instant) -> Step {
        let Phase::Finishing { linger_until, .. } = self.phase else {
            return Step::Continue;
        };
        let written = self.pump.queued() == 0;
        if written && !self.write_shut {
            self.write_shut = true;
            if !(self.peer_eof || self.linger.is_zero()) {
                return Step::ShutWrite;
            }
        }
        if (written && (self.peer_eof || self.linger.is_zero())) || now >= linger_until {
            let Phase::Finishing { result, .. } = core::mem::replace(&mut self.phase, Phase::Reported) else {
                unreachable!("matched Finishing above")
            };
            let unsent = self.pump.queued();
            self.phase = Phase::Ended(match result {
                Ok(()) if unsent > 0 => Err(Ending::Unflushed(unsent)),
                Ok(()) => Ok(()),
                Err(e) => Err(Ending::Machine(e)),
            });
            return Step::End;
        }
        Step::Continue
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        self.pump.machine()
    }

    /// The machine, for calls of its own API (drained before the next wait).
    pub fn machine_mut(&mut self) -> &mut M {
        self.fed += 1;
        self.pump.machine_mut()
    }

    /// Drain the machine into the write queue and the event queue; notice when it finished.
    fn drain(&mut self, now: Instant) {
        let before = self.pump.queued();
        self.unmeasured += self.fed;
        self.fed = 0;
        self.undrained = false;
        let events = &mut self.events;
        self.pump.drain(now, |event| events.push_back(event));
        // A machine that coalesces (OUT) transmits nothing for most commands, then many at
        // once: a drain that brought nothing out says nothing of their size (taking it for
        // "tiny" would let the next batch be MAX_BATCH frames of any size), so the batch is
        // sized when bytes come out, from every command since.
        let produced = self.pump.queued().saturating_sub(before);
        if produced > 0 && self.unmeasured > 0 {
            let per_command = produced / self.unmeasured;
            self.batch = (self.pump.machine().write_budget() / 4 / per_command.max(1)).clamp(1, MAX_BATCH);
            self.unmeasured = 0;
        }
        self.check_finished(now);
    }

    /// Once the machine reported `Finished`, move to Finishing with its result.
    fn check_finished(&mut self, now: Instant) {
        if self.is_running() && self.pump.next_datagram().is_some() {
            self.phase = Phase::Ended(Err(Ending::DatagramOnStream));
            return;
        }
        if self.is_open() && self.pump.is_finished() {
            let result = self.pump.take_result().unwrap_or(Ok(()));
            self.finish(now, result);
        }
    }

    fn finish(&mut self, now: Instant, result: Result<(), M::Error>) {
        self.phase = Phase::Finishing { result, linger_until: now.saturating_add(self.linger) };
    }
}
