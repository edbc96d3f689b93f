//! The direct async driver: one machine over one stream, driven inside the application's own
//! task.
//!
//! No driver task and no channels: [`Direct::send`] hands the command straight to the machine
//! and awaits only while the write queue is at the machine's
//! [write budget](switchboard_proto::Machine::write_budget); [`Direct::recv`] writes what is
//! queued, reads, runs the machine's timers on the runtime's timer, and awaits whichever of
//! those can go on. Commands are fed in batches and the machine is drained once per batch, so
//! coalescing output (OUT) really coalesces. What to do when is decided by
//! [`Inline`] (shared with `switchboard_std::Direct`); this file does the I/O.
//!
//! Use it where one task owns a connection (a client, or a server's per-connection task: see
//! [`RuntimeExt::serve_direct`](crate::RuntimeExt::serve_direct)); use
//! [`RuntimeExt::drive`](crate::RuntimeExt::drive) when several tasks share one connection.
//! A single task cannot read while it is busy elsewhere: when both ends send far more than
//! they read, call [`Direct::try_recv`] between sends. While awaiting inside `send`, the driver
//! keeps reading up to [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events ([`BYTES_HELD`](switchboard_proto::driver::BYTES_HELD) bytes).

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use switchboard_proto::driver::{Inline, Refusal, Step};
use switchboard_proto::time::Instant;
use switchboard_proto::Machine;

use crate::async_driver::with_scratch;
use crate::{ByteStream, Drivable, DriverConfig, DriverError, Runtime, Timer};

/// At most this many buffers go into one vectored write.
const MAX_IOVECS: usize = 64;

/// Why [`Direct::send`] or [`Direct::flush`] did not take effect: the machine refused the
/// command (the caller's fault; the connection goes on), or the connection has ended.
pub type SendError<E> = Refusal<E>;

/// The direct async driver: one machine over one stream, driven inside the application's own
/// task.
///
/// No driver task and no channels: [`Direct::send`] hands the command straight to the machine
/// and awaits only while the write queue is at the machine's
/// [write budget](switchboard_proto::Machine::write_budget); [`Direct::recv`] writes what is
/// queued, reads, runs the machine's timers on the runtime's timer, and awaits whichever of
/// those can go on. Commands are fed in batches and the machine is drained once per batch, so
/// coalescing output (OUT) really coalesces. What to do when is decided by
/// [`Inline`] (shared with `switchboard_std::Direct`); this type does the I/O.
///
/// Use it where one task owns a connection (a client, or a server's per-connection task: see
/// [`RuntimeExt::serve_direct`](crate::RuntimeExt::serve_direct)); use
/// [`RuntimeExt::drive`](crate::RuntimeExt::drive) when several tasks share one connection.
/// A single task cannot read while it is busy elsewhere: when both ends send far more than
/// they read, call [`Direct::try_recv`] between sends. While awaiting inside `send`, the driver
/// keeps reading up to [`EVENTS_HELD`](switchboard_proto::driver::EVENTS_HELD) events ([`BYTES_HELD`](switchboard_proto::driver::BYTES_HELD) bytes).
///
/// Each runtime adapter's crate docs show a complete program (`switchboard_tokio`,
/// `switchboard_smol`, `switchboard_async_std`).
pub struct Direct<R: Runtime, M: Machine, S> {
    runtime: R,
    stream: S,
    inline: Inline<M>,
    now: Instant,
    timer: Option<R::Timer>,
    armed: Option<Instant>,
    io_error: Option<io::Error>,
    read_chunk: usize,
}

impl<R: Runtime, M: Drivable, S: ByteStream> Direct<R, M, S> {
    /// Drive `machine` over `stream` (options already applied) with `config`'s read size and
    /// linger; `config.commands` and `config.events` do not apply (there are no channels).
    pub fn new(runtime: R, stream: S, machine: M, config: &DriverConfig) -> Self {
        let now = runtime.now();
        Direct {
            runtime,
            stream,
            inline: Inline::new(now, machine, config.read_chunk, config.linger),
            now,
            timer: None,
            armed: None,
            io_error: None,
            read_chunk: config.read_chunk.max(1),
        }
    }

    /// Hand `command` to the machine. Awaits only while the write queue is at the machine's
    /// write budget (backpressure): it then writes, and reads (queueing events for
    /// [`recv`](Self::recv)), until the queue is under budget again.
    ///
    /// The command goes to the machine when `send` is called, not when the future is first
    /// polled: the future never holds it, so dropping the future unpolled does not lose it
    /// (the machine has it), and the command is moved once instead of into and out of the
    /// future's state (measurably cheaper per small frame).
    pub fn send(&mut self, command: M::Command) -> impl Future<Output = Result<(), SendError<M::Error>>> + '_ {
        let accepted = self.inline.send(self.now, command);
        async move {
            accepted?;
            if self.inline.should_write() {
                // One round without waiting: write what the socket takes now.
                poll_fn(|cx| {
                    let _ = self.poll_round(cx, true);
                    Poll::Ready(())
                })
                .await;
                while self.inline.must_write() {
                    poll_fn(|cx| self.poll_round(cx, true)).await;
                }
            }
            Ok(())
        }
    }

    /// Write everything queued so far (`Err(Closed)` only if the connection ended with bytes
    /// unwritten) (reading meanwhile, as [`send`](Self::send) does).
    pub async fn flush(&mut self) -> Result<(), SendError<M::Error>> {
        while self.inline.has_writes(self.now) {
            poll_fn(|cx| self.poll_round(cx, true)).await;
        }
        // Everything written is a success even if the peer has closed meanwhile; bytes left
        // unwritten mean the connection ended under them.
        match self.inline.queued() {
            0 => Ok(()),
            _ => Err(SendError::Closed),
        }
    }

    /// The next event, awaiting until one arrives (doing the connection's I/O and timers
    /// meanwhile). `None`: the peer closed its side (the connection still sends until
    /// [`close`](Self::close)), or the connection ended cleanly; `Some(Err)`: it ended with
    /// this error (reported once, after every event before it); after that, `None`.
    pub fn recv(&mut self) -> impl Future<Output = Option<Result<M::Event, DriverError<M::Error>>>> + '_ {
        // A plain poll function rather than an `async fn`: the event goes straight to the
        // caller instead of through the future's state (measurably cheaper per small frame).
        poll_fn(move |cx| loop {
            if let Some(next) = self.next_ready() {
                return Poll::Ready(Some(next));
            }
            if !self.inline.is_running() || self.inline.events_ended() {
                return Poll::Ready(None);
            }
            if self.poll_round(cx, false).is_pending() {
                return Poll::Pending;
            }
        })
    }

    /// Like [`recv`](Self::recv) without waiting: do whatever I/O and timers are ready now and
    /// return an event if there is one (`None`: none yet, or the end was reported). It is async
    /// because the round registers this task for what comes next, like any other poll; it
    /// never waits.
    pub fn try_recv(&mut self) -> impl Future<Output = Option<Result<M::Event, DriverError<M::Error>>>> + '_ {
        poll_fn(move |cx| {
            if let Some(next) = self.next_ready() {
                return Poll::Ready(Some(next));
            }
            if self.inline.is_running() {
                let _ = self.poll_round(cx, false);
            }
            Poll::Ready(self.next_ready())
        })
    }

    /// Ask the machine to finish cleanly (`Input::Close`) after every command sent before.
    /// Keep calling [`recv`](Self::recv) for the events still coming and the result, or
    /// [`close_and_join`](Self::close_and_join).
    pub fn close(&mut self) {
        self.inline.close(self.now);
    }

    /// [`close`](Self::close), then run the connection to its end, dropping the events still
    /// coming, and return its result.
    pub async fn close_and_join(mut self) -> Result<(), DriverError<M::Error>> {
        self.close();
        poll_fn(|cx| loop {
            match self.next_ready() {
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) => continue,
                None if !self.inline.is_running() => return Poll::Ready(Ok(())),
                None => {}
            }
            if self.poll_round(cx, false).is_pending() {
                return Poll::Pending;
            }
        })
        .await
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        self.inline.machine()
    }

    /// Bytes the machine transmitted that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.inline.queued()
    }

    /// The stream, for its addresses and options.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    fn next_ready(&mut self) -> Option<Result<M::Event, DriverError<M::Error>>> {
        match self.inline.next(self.now) {
            Some(next) => Some(next.map_err(DriverError::from)),
            None => self.io_error.take().map(|e| Err(DriverError::Io(e))),
        }
    }

    /// One round of I/O: write what the socket takes, read what is there, run the timers.
    /// Ready when anything moved (the caller re-checks what it waits for); Pending with a wake-up
    /// registered on every source that can move next.
    fn poll_round(&mut self, cx: &mut Context<'_>, sending: bool) -> Poll<()> {
        let mut progressed = false;

        while self.inline.has_writes(self.now) {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(self.inline.writes().chunks()) {
                    *slot = IoSlice::new(chunk);
                    count += 1;
                }
                Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..count])
            };
            match written {
                Poll::Ready(Ok(0)) => {
                    self.fail(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes"));
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    self.inline.writes().advance(n);
                    progressed = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.fail(e);
                    return Poll::Ready(());
                }
                Poll::Pending => break,
            }
        }
        if progressed {
            self.now = self.runtime.now();
        }

        if self.inline.wants_read(sending) {
            match self.poll_read_once(cx, sending) {
                Poll::Ready(Ok(())) => progressed = true,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                Poll::Ready(Err(e)) => {
                    self.fail(e);
                    return Poll::Ready(());
                }
                // Nothing to read: an idle connection gives its read buffer back.
                Poll::Pending => self.inline.read_idle(),
            }
        }

        progressed |= self.inline.on_wake(self.now);
        match self.inline.after_io(self.now) {
            Step::Continue => {}
            Step::ShutWrite => {
                let _ = self.stream.socket_ref().shutdown(Shutdown::Write);
            }
            Step::End => {
                let _ = self.stream.socket_ref().shutdown(Shutdown::Both);
                return Poll::Ready(());
            }
        }
        if progressed {
            return Poll::Ready(());
        }

        let Some(at) = self.inline.wake_at() else {
            return Poll::Pending;
        };
        if self.armed != Some(at) {
            let when = at;
            match self.timer.as_mut() {
                Some(timer) => timer.reset(when),
                None => self.timer = Some(self.runtime.timer(when)),
            }
            self.armed = Some(at);
        }
        let timer = self.timer.as_mut().expect("armed above");
        match timer.poll_fire(cx) {
            Poll::Ready(()) => {
                self.armed = None;
                self.now = self.runtime.now();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// One read, handed to the machine. Into the receive buffer when it is allocated (frames
    /// stay slices of it); otherwise into this thread's scratch buffer, copied only if bytes
    /// came: so waiting on an idle connection needs no buffer of its own.
    fn poll_read_once(&mut self, cx: &mut Context<'_>, sending: bool) -> Poll<io::Result<()>> {
        if self.inline.read_buffer_allocated() {
            let n = ready!(Pin::new(&mut self.stream).poll_read(cx, self.inline.read_buffer()))?;
            self.now = self.runtime.now();
            self.inline.on_read(self.now, n, sending);
            return Poll::Ready(Ok(()));
        }
        let (stream, inline, runtime, now) = (&mut self.stream, &mut self.inline, &self.runtime, &mut self.now);
        with_scratch(self.read_chunk, |scratch| {
            let n = ready!(Pin::new(stream).poll_read(cx, scratch))?;
            *now = runtime.now();
            inline.on_read_copy(*now, &scratch[..n], sending);
            Poll::Ready(Ok(()))
        })
    }

    /// The transport failed: end now, and report `e` after the events already queued.
    fn fail(&mut self, e: io::Error) {
        let _ = self.stream.socket_ref().shutdown(Shutdown::Both);
        self.inline.fail();
        self.io_error = Some(e);
    }
}

impl<R: Runtime, M: Machine, S> std::fmt::Debug for Direct<R, M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").field("queued", &self.inline.queued()).finish_non_exhaustive()
    }
}
