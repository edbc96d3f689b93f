//! The sans-IO contract every Switchboard machine follows.
//!
//! A machine is a plain value. The driver (a runtime adapter, the simulator, or your own event
//! loop) does the I/O and keeps the clock; the machine decides what the bytes mean.
//!
//! # Poll order
//!
//! ```text
//!   ┌──────────────► handle_input(now, Input)        bytes read, EOF, a command, Close, or a wake-up
//!   │                     │
//!   │                     ▼
//!   │              poll_output(now) ──► Transmit(bytes)   write it (after all earlier ones)
//!   │                     │       ──► TransmitTo(a, b)  send one datagram to `a`
//!   │                     │       ──► Event(e)          hand it to the application
//!   │                     │       ──► ReadClosed        no event comes any more; commands still do
//!   │                     │          (repeat poll_output until one of the two below)
//!   │                     ├─────► Timeout(deadline)     drained: wait for I/O, a command or
//!   └─────────────────────┘                              the deadline (None = no deadline)
//!                         └─────► Finished(result)      flush what was transmitted, close,
//!                                                        stop calling the machine
//! ```
//!
//! Rules every machine keeps and every driver may rely on:
//!
//! 1. **Time comes in on every call.** A machine acts on any deadline that `now` has reached, on
//!    whichever call it sees it; [`Input::Timeout`] only wakes it with no other news.
//! 2. **Drain fully.** After any `handle_input`, call `poll_output` until it returns
//!    [`Output::Timeout`] or [`Output::Finished`]. Outputs come in the order they must take
//!    effect: frames completed before a protocol error are delivered before `Finished(Err(..))`.
//! 3. **Deterministic.** The same inputs with the same times give the same outputs, byte for
//!    byte. Machines keep no global state and never iterate a hash map into their output.
//! 4. **Zero-copy in.** [`Input::Stream`] lends the driver's receive buffer; the machine splits
//!    complete frames off it as [`Bytes`] (no copy) and leaves any partial frame where it is.
//!    The driver keeps reading into the same buffer.
//! 5. **Errors say who was wrong** (see [`crate::fault`]). `handle_input` returns `Err` only for a
//!    refused call (the caller's fault): the machine is unchanged and the connection goes on. A
//!    peer's fault ends the connection through `Output::Finished(Err(..))`.
//! 6. **Bounded memory.** Limits are checked when a length is announced, before its body is
//!    buffered. [`Machine::write_budget`] tells the driver how much written-but-unsent data it may
//!    queue before it stops taking commands and reading (backpressure).
//! 7. **The peer's EOF is not the end.** A stream machine fed [`Input::Eof`] either finishes
//!    (a one-shot exchange that is now complete, or a frame cut short), or moves to
//!    *read-closed*: it reports [`Output::ReadClosed`] after every event before it and no event
//!    after it, and goes on taking commands, so the application can still answer what the peer
//!    said last. It finishes on [`Input::Close`] (or a timer). So a driver feeds the EOF the
//!    moment it reads it, and never has to hold it back until the application has answered.
//! 8. **Closing is an input.** [`Input::Close`] asks any machine to finish cleanly after
//!    everything fed before it: a driver feeds it when the application closes or drops its
//!    handle. No machine needs a close command of its own.

use bytes::{Bytes, BytesMut};
use core::net::SocketAddr;

use crate::fault::Blame;
use crate::time::Instant;

/// Something that happened outside the machine, fed to [`Machine::handle_input`].
///
/// `#[non_exhaustive]` on purpose: a machine written outside this crate handles the inputs it
/// knows and refuses others (`UnexpectedInput`, the caller's fault), so a new kind of input is
/// not a breaking change for it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a, C> {
    /// More bytes arrived on a stream transport; they were appended to this buffer, which may
    /// still hold an unfinished frame from before. The machine splits off what it consumes.
    Stream(&'a mut BytesMut),
    /// One whole datagram arrived from `from`. Stream machines refuse it with an
    /// `UnexpectedInput` error (the caller's fault): splicing datagrams into a byte stream
    /// would lose their boundaries.
    Datagram {
        /// The sender's address.
        from: SocketAddr,
        /// The datagram, exactly as received.
        data: Bytes,
    },
    /// The peer closed its side of the stream: no more bytes will arrive. See rule 7 of the
    /// [module docs](self): the machine finishes or becomes read-closed.
    Eof,
    /// The application asks for something.
    Command(C),
    /// Finish cleanly after everything fed before: flush what is queued, then report
    /// `Finished`. Fed by the driver when the application closes or drops its handle; a
    /// machine that has already finished (or is finishing) takes it as a no-op.
    Close,
    /// Nothing but the passage of time: the deadline from the last [`Output::Timeout`] came.
    Timeout,
}

/// What a machine asks its driver to do, drained with [`Machine::poll_output`].
///
/// Exhaustive on purpose: a driver must act on every output, and one that silently skipped a
/// new kind would lose data, so adding an output is a breaking change by design.
#[derive(Debug)]
pub enum Output<E, X> {
    /// Write these bytes to the stream, after everything transmitted before.
    Transmit(Bytes),
    /// Send these bytes as one datagram to this address.
    TransmitTo(SocketAddr, Bytes),
    /// Hand this to the application.
    Event(E),
    /// The peer's EOF was fed and every event before it was reported: no event comes any
    /// more, but the machine still takes commands (answers to the peer's last requests) and
    /// finishes on [`Input::Close`]. Reported once. A driver ends the application's event
    /// stream here.
    ReadClosed,
    /// Nothing more to do now. Call again on new input, a command, or when this deadline passes
    /// (`None`: no deadline; wait for input or a command only).
    Timeout(Option<Instant>),
    /// The machine is done: flush what was transmitted, then close the transport. `Ok` is a clean
    /// end; `Err` says why not. The machine produces no further output.
    Finished(Result<(), X>),
}

/// The shape every Switchboard protocol machine shares. See the [module docs](self) for the poll
/// order.
pub trait Machine {
    /// What the application can ask of the machine.
    type Command;
    /// What the machine reports to the application.
    type Event;
    /// Why a call was refused or the connection ended.
    type Error: core::error::Error + Blame + 'static;

    /// Feed one input, with the current time. `Err` means the call was refused (the caller's
    /// fault) and the machine is unchanged.
    fn handle_input(&mut self, now: Instant, input: Input<'_, Self::Command>) -> Result<(), Self::Error>;

    /// Take the next output. Call repeatedly until [`Output::Timeout`] or [`Output::Finished`].
    fn poll_output(&mut self, now: Instant) -> Output<Self::Event, Self::Error>;

    /// How many bytes of transmitted-but-unwritten data the driver may hold before it applies
    /// backpressure (stops reading and stops taking commands until the queue drains).
    fn write_budget(&self) -> usize {
        DEFAULT_WRITE_BUDGET
    }
}

/// The write budget of machines that do not set their own (64 KiB).
pub const DEFAULT_WRITE_BUDGET: usize = 64 * 1024;

/// Everything one full drain of a machine produced; handy in tests and simple loops.
#[derive(Debug)]
pub struct Drained<E, X> {
    /// Stream bytes, in order.
    pub transmits: alloc::vec::Vec<Bytes>,
    /// Datagrams and their destinations, in order.
    pub datagrams: alloc::vec::Vec<(SocketAddr, Bytes)>,
    /// Events, in order.
    pub events: alloc::vec::Vec<E>,
    /// Whether the machine reported [`Output::ReadClosed`] in this drain.
    pub read_closed: bool,
    /// The deadline reported when the machine was drained, if it was not finished.
    pub deadline: Option<Instant>,
    /// `Some` once the machine reported [`Output::Finished`].
    pub finished: Option<Result<(), X>>,
}

impl<E, X> Drained<E, X> {
    /// All stream bytes joined into one buffer.
    pub fn wire(&self) -> alloc::vec::Vec<u8> {
        self.transmits.iter().flat_map(|b| b.iter().copied()).collect()
    }
}

/// Poll `machine` until it is drained or finished, collecting everything it produced.
pub fn drain<M: Machine>(machine: &mut M, now: Instant) -> Drained<M::Event, M::Error> {
    let mut out = Drained {
        transmits: alloc::vec::Vec::new(),
        datagrams: alloc::vec::Vec::new(),
        events: alloc::vec::Vec::new(),
        read_closed: false,
        deadline: None,
        finished: None,
    };
    loop {
        match machine.poll_output(now) {
            Output::Transmit(b) => out.transmits.push(b),
            Output::TransmitTo(to, b) => out.datagrams.push((to, b)),
            Output::Event(e) => out.events.push(e),
            Output::ReadClosed => out.read_closed = true,
            Output::Timeout(deadline) => {
                out.deadline = deadline;
                return out;
            }
            Output::Finished(result) => {
                out.finished = Some(result);
                return out;
            }
        }
    }
}

/// [`drain`], and when the machine reports [`Output::ReadClosed`] without finishing, close it
/// ([`Input::Close`]) and drain again, merging the outputs: what a driver does when its
/// application has nothing more to say once the peer has (the read side's fault, if any, is
/// then the result). Handy in tests and in one-shot loops.
pub fn drain_closing<M: Machine>(machine: &mut M, now: Instant) -> Drained<M::Event, M::Error> {
    let mut out = drain(machine, now);
    if out.read_closed && out.finished.is_none() {
        // A machine that is read-closed takes its close (contract rule 8); a refusal would mean
        // it finished already, which the drain below reports.
        let _ = machine.handle_input(now, Input::Close);
        let rest = drain(machine, now);
        out.transmits.extend(rest.transmits);
        out.datagrams.extend(rest.datagrams);
        out.events.extend(rest.events);
        out.deadline = rest.deadline;
        out.finished = rest.finished;
    }
    out
}
