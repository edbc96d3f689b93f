//! The one async driver: runs any [`Machine`] over a byte stream or a datagram socket, on any
//! [`Runtime`].
//!
//! ```text
//!   application                         driver task                              socket
//!   ───────────                         ───────────                              ──────
//!   Connection::send ──► commands ──►  Pump::input(Command)  ─► WriteQueue ──► vectored write
//!   (waits when full)   (capped)                                                    │
//!   Connection::recv ◄── events   ◄──  Event / refused command ◄─ Pump::input(Stream(&mut rx)) ◄── read
//!                       (capped)       Timer(deadline) ─► Pump::input(Timeout)
//!   Connection::join ◄── done     ◄──  Finished: flush, shut down writing, linger, result
//! ```
//!
//! * **One copy in, no idle buffer.** Reads go into a per-thread scratch buffer; only the bytes
//!   that arrived are copied into the connection's `BytesMut`, which the machine splits frames
//!   off. A connection with nothing buffered holds no read buffer.
//! * **Backpressure.** While more than the machine's `write_budget()` is waiting to be written
//!   the driver takes no commands: the command channel fills to its cap and [`Connection::send`]
//!   waits (and [`Connection::try_send`] reports `Full`). It stops reading too as soon as a read
//!   adds to that queue (a peer that floods a machine answering every message while not reading
//!   the answers is held back; the queue stays within budget plus one command's or one read's
//!   output). Reads that only produce events go on, so two ends streaming at each other through
//!   full kernel buffers cannot deadlock. While the application is not taking events the driver
//!   stops reading.
//! * **Graceful shutdown.** Dropping every command sender (or [`Connection::close`]) feeds the
//!   machine `Input::Close` after every command already accepted; everything it transmits is
//!   written, the write side is shut down, and the driver waits a short linger for the peer's
//!   end of stream so nothing it sent is reset away. The result (and the end of the event
//!   stream) comes as soon as it is final, when the write side is shut down: the linger goes on
//!   behind it, so an application reacting to a connection's end (a hub telling the others a
//!   client left) does not wait for a peer that never closes its side.
//! * **The peer's end of stream ends the events, not the connection.** The driver feeds the
//!   peer's EOF at once; the machine reports `ReadClosed` after the events before it (contract
//!   rule 7) and goes on taking commands, so answers to the last requests before a peer's
//!   half-close still go out. The event stream ends there; the connection closes once the
//!   application closes it or drops every command sender.
//! * **Errors say who was wrong.** The result is `Ok`, or a [`DriverError`] whose
//!   [`Blame::fault`] tells a peer's protocol fault or transport failure from a local one. A
//!   command the machine refused comes back on the event channel as `Err` and the connection
//!   goes on.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use switchboard_proto::driver::Pump;
use switchboard_proto::fault::{Blame, Fault};
use switchboard_proto::{Input, Instant, Machine};

pub use async_channel::{SendError, TrySendError};

use crate::runtime::{ByteStream, DatagramSocket, Runtime, Timer};

/// A machine the async driver can run on another task: `Send`, with `Send` commands, events
/// and errors. Every such machine is one (a blanket impl); closing is the contract's
/// `Input::Close`, so no machine needs anything more.
pub trait Drivable:
    Machine<Command: Send + 'static, Event: Send + 'static, Error: Send + Sync + 'static> + Send + 'static
{
}

impl<M> Drivable for M where
    M: Machine<Command: Send + 'static, Event: Send + 'static, Error: Send + Sync + 'static> + Send + 'static
{
}

/// What the command channel carries: the application's commands, and its close.
pub(crate) enum Request<C> {
    Command(C),
    Close,
}

/// How a driver buffers and waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// The most bytes one stream read takes (default 16 KiB).
    pub read_chunk: usize,
    /// The largest datagram received whole (default 65 535).
    pub max_datagram: usize,
    /// Commands the application may queue before `send` waits (default 256). The channel
    /// allocates as commands arrive, so a larger cap costs an idle connection nothing; a
    /// sender that keeps it full wakes the driver once per this many commands (64 B frames
    /// through `connect_with`, tokio: 2.2–2.5M msg/s at 64, 2.9–3.2M at 256; smol 0.3–1.1M at
    /// 64, 2.1–2.8M at 256).
    pub commands: usize,
    /// Events queued for the application before the driver stops reading (default 256).
    pub events: usize,
    /// After shutting down its write side, how long the driver keeps reading (and discarding)
    /// while waiting for the peer to close, so a close does not reset data still in flight
    /// towards the peer (default 2 s; zero closes at once).
    pub linger: Duration,
    /// Datagram drivers: where `Output::Transmit` bytes go. `None`: to the sender of the last
    /// datagram received (a machine that answers whoever spoke last without naming them).
    /// Machines that address every datagram themselves (`Output::TransmitTo`, as STAGE's
    /// `PacketDatagram` does) never need it.
    pub peer: Option<SocketAddr>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            read_chunk: 16 * 1024,
            max_datagram: 65_535,
            commands: 256,
            events: 256,
            linger: Duration::from_secs(2),
            peer: None,
        }
    }
}

impl DriverConfig {
    /// Set the command channel's capacity (at least 1).
    pub fn with_commands(mut self, capacity: usize) -> Self {
        self.commands = capacity.max(1);
        self
    }

    /// Set the event channel's capacity (at least 1).
    pub fn with_events(mut self, capacity: usize) -> Self {
        self.events = capacity.max(1);
        self
    }

    /// Set the read size (at least 1).
    pub fn with_read_chunk(mut self, bytes: usize) -> Self {
        self.read_chunk = bytes.max(1);
        self
    }

    /// Set the close linger.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Set the datagram destination for stream output.
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

/// Why a driven connection did not end cleanly: one type for every driver, blocking or async,
/// so the same fault gets the same name and the same blame everywhere.
#[derive(Debug, thiserror::Error)]
pub enum DriverError<E: std::error::Error + 'static> {
    /// The machine finished with this error; its [`Blame::fault`] says whose.
    #[error("{0}")]
    Machine(#[source] E),
    /// The transport failed (reset, broken pipe, a socket timeout, …): the network's or the
    /// peer's doing.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The machine finished, but the peer did not take everything it transmitted within the
    /// linger time, so the rest was dropped when the socket was shut down.
    #[error("{unsent} bytes were still unwritten when the linger time ran out")]
    Unflushed {
        /// Bytes accepted from the machine that never reached the socket.
        unsent: usize,
    },
    /// A datagram driver got unaddressed output ([`Output::Transmit`](switchboard_proto::Output::Transmit))
    /// with no default destination and no datagram received to answer.
    #[error("the machine sent a datagram without an address, with no default destination and no sender to answer")]
    NoDestination,
    /// A stream driver got an addressed datagram
    /// ([`Output::TransmitTo`](switchboard_proto::Output::TransmitTo)), which a stream cannot send.
    #[error("the machine sent an addressed datagram on a stream transport")]
    DatagramOnStream,
    /// The driver's task was dropped before it finished (its runtime shut down).
    #[error("the driver was stopped before the connection finished")]
    Cancelled,
}

impl<E: std::error::Error + Blame + 'static> Blame for DriverError<E> {
    fn fault(&self) -> Fault {
        match self {
            DriverError::Machine(e) => e.fault(),
            // The transport broke or the peer stopped reading: nothing the caller did.
            DriverError::Io(_) | DriverError::Unflushed { .. } => Fault::Peer,
            // The machine and the driver were put together wrongly, or the runtime went away.
            DriverError::NoDestination | DriverError::DatagramOnStream | DriverError::Cancelled => Fault::Caller,
        }
    }
}

impl<E: std::error::Error + 'static> From<switchboard_proto::driver::Ending<E>> for DriverError<E> {
    /// How the I/O-free core says a connection ended, in the drivers' terms (every shell over
    /// [`Inline`](switchboard_proto::driver::Inline) reports it this way).
    fn from(ending: switchboard_proto::driver::Ending<E>) -> Self {
        use switchboard_proto::driver::Ending;
        match ending {
            Ending::Machine(e) => DriverError::Machine(e),
            Ending::Unflushed(unsent) => DriverError::Unflushed { unsent },
            Ending::DatagramOnStream => DriverError::DatagramOnStream,
        }
    }
}

impl<E: std::error::Error + 'static> DriverError<E> {
    /// The machine's error, if that is why the connection ended.
    pub fn machine(&self) -> Option<&E> {
        match self {
            DriverError::Machine(e) => Some(e),
            _ => None,
        }
    }
}

/// A snapshot of a driver's counters: the same figures from every driver, blocking or async.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes read from the socket (payload bytes for datagrams).
    pub bytes_read: u64,
    /// Bytes written to the socket (payload bytes for datagrams).
    pub bytes_written: u64,
    /// Successful write calls (one per datagram sent): coalescing shows as fewer of them.
    pub writes: u64,
    /// Bytes the machine transmitted that are not written yet.
    pub queued: usize,
    /// The driver is holding back: the write queue has reached the machine's write budget, so
    /// it takes no commands (`send` waits) until the peer reads.
    pub paused: bool,
    /// The most bytes that were ever waiting at once: stays near the machine's write budget
    /// however slowly the peer reads.
    pub max_queued: usize,
    /// Commands fed to the machine.
    pub commands: u64,
    /// Events the machine reported.
    pub events: u64,
}

/// Live figures of one driver, readable from any thread; [`snapshot`](Self::snapshot) gives
/// them as the [`Stats`] every driver reports.
#[derive(Debug, Default)]
pub struct DriverStats {
    queued: AtomicUsize,
    max_queued: AtomicUsize,
    paused: AtomicBool,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    writes: AtomicU64,
    commands: AtomicU64,
    events: AtomicU64,
}

impl DriverStats {
    /// Every figure at once.
    pub fn snapshot(&self) -> Stats {
        Stats {
            bytes_read: self.bytes_read(),
            bytes_written: self.bytes_written(),
            writes: self.writes(),
            queued: self.queued(),
            paused: self.is_paused(),
            max_queued: self.max_queued(),
            commands: self.commands.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }

    /// Bytes transmitted by the machine and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The most bytes ever waiting to be written at once.
    pub fn max_queued(&self) -> usize {
        self.max_queued.load(Ordering::Relaxed)
    }

    /// Whether the driver is holding back (not reading, not taking commands) because more than
    /// the write budget is waiting.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Bytes received.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Successful write (or send) calls; coalescing shows as fewer of them.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn note_queued(&self, queued: usize) {
        self.queued.store(queued, Ordering::Relaxed);
        self.max_queued.fetch_max(queued, Ordering::Relaxed);
    }

    fn note_written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the event channel carries: an event, or a command the machine refused.
pub type Delivery<M> = Result<<M as Machine>::Event, <M as Machine>::Error>;

/// The application's sending end; clone it to send from several tasks. The connection closes
/// gracefully once every clone (and the [`Connection`]) is dropped.
pub struct Commands<M: Machine> {
    tx: Sender<Request<M::Command>>,
    /// The most commands queued at once (`DriverConfig::commands`). The channel itself is
    /// unbounded so an idle connection preallocates no slots; senders keep it within this.
    capacity: usize,
    /// Rings when the driver takes commands (or stops).
    gate: Arc<Gate>,
}

impl<M: Machine> Clone for Commands<M> {
    fn clone(&self) -> Self {
        Commands { tx: self.tx.clone(), capacity: self.capacity, gate: self.gate.clone() }
    }
}

impl<M: Machine> Commands<M> {
    /// Queue a command, waiting while the channel is full (backpressure). `Err` once the
    /// driver has stopped.
    pub async fn send(&self, command: M::Command) -> Result<(), SendError<M::Command>> {
        let mut command = Some(command);
        std::future::poll_fn(|cx| loop {
            let Some(next) = command.take() else { return Poll::Pending };
            match self.try_send(next) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(TrySendError::Closed(back)) => return Poll::Ready(Err(SendError(back))),
                Err(TrySendError::Full(back)) => {
                    command = Some(back);
                    self.gate.wait(cx.waker());
                    // A take between the check and the registration would otherwise be missed.
                    if self.tx.len() >= self.capacity && !self.tx.is_closed() {
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    /// Queue a command if there is room now: `Full` means wait, `Closed` that the driver stopped.
    pub fn try_send(&self, command: M::Command) -> Result<(), TrySendError<M::Command>> {
        if self.tx.is_closed() {
            return Err(TrySendError::Closed(command));
        }
        if self.tx.len() >= self.capacity {
            return Err(TrySendError::Full(command));
        }
        self.tx.try_send(Request::Command(command)).map_err(|e| match e {
            TrySendError::Full(Request::Command(c)) => TrySendError::Full(c),
            TrySendError::Closed(Request::Command(c)) => TrySendError::Closed(c),
            _ => unreachable!("only commands are sent here"),
        })
    }

    /// Queue a command even past the cap (never waits; `Err` gives it back once the driver
    /// stopped). For a sender that must keep its commands in order under a lock and waits for
    /// [`room`](Self::room) afterwards, as the router hub does.
    pub(crate) fn push(&self, command: M::Command) -> Result<(), M::Command> {
        self.tx.try_send(Request::Command(command)).map_err(|e| match e.into_inner() {
            Request::Command(c) => c,
            Request::Close => unreachable!("only commands are sent here"),
        })
    }

    /// Wait until the channel is under its cap again (or the driver stopped).
    pub(crate) async fn room(&self) {
        std::future::poll_fn(|cx| {
            if self.tx.len() < self.capacity || self.tx.is_closed() {
                return Poll::Ready(());
            }
            self.gate.wait(cx.waker());
            // A take between the check and the registration would otherwise be missed.
            if self.tx.len() < self.capacity || self.tx.is_closed() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }

    /// Commands queued and not yet taken by the driver.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Whether no command is waiting.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

impl<M: Machine> Commands<M> {
    /// A sender that does not keep the connection open (for the [`Connections`] registry).
    ///
    /// [`Connections`]: crate::Connections
    pub(crate) fn downgrade(&self) -> WeakCommands<M> {
        WeakCommands { tx: self.tx.downgrade(), capacity: self.capacity, gate: self.gate.clone() }
    }
}

impl<M: Machine> Commands<M> {
    /// Ask the machine to finish cleanly (`Input::Close`), after every command queued before.
    /// The command channel is unbounded (the cap is kept by `send` and `try_send`, which the
    /// close skips), so this never waits; `false` once the driver has stopped taking commands.
    pub fn close(&self) -> bool {
        self.tx.try_send(Request::Close).is_ok()
    }
}

/// A [`Commands`] that does not count as a sender: the connection still closes once every
/// [`Commands`] is dropped.
pub(crate) struct WeakCommands<M: Machine> {
    tx: async_channel::WeakSender<Request<M::Command>>,
    capacity: usize,
    gate: Arc<Gate>,
}

impl<M: Machine> WeakCommands<M> {
    /// A sender again, unless every sender is gone (the connection is closing) or the driver
    /// stopped.
    pub(crate) fn upgrade(&self) -> Option<Commands<M>> {
        let tx = self.tx.upgrade()?;
        Some(Commands { tx, capacity: self.capacity, gate: self.gate.clone() })
    }
}

/// The application's receiving end: events (and refused commands) in order. Also a `Stream`.
pub struct Events<M: Machine> {
    rx: Pin<Box<Receiver<Delivery<M>>>>,
    room: Arc<Room>,
}

/// How the driver tells senders waiting for room that it took commands (or stopped).
#[derive(Default)]
struct Gate {
    waiting: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Gate {
    /// A sender found the channel full: wake it at the next take. The caller checks the channel
    /// again afterwards, so a take in between is not missed.
    fn wait(&self, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        drop(wakers);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The driver took commands or stopped: every waiting sender tries again.
    fn open(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::SeqCst) {
            let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
            for waker in wakers {
                waker.wake();
            }
        }
    }
}

/// How the application tells the driver that the event channel has room again. The channel
/// itself is unbounded, so it allocates only as events arrive (a bounded one preallocates every
/// slot, kilobytes per idle connection); the driver keeps it within `DriverConfig::events`.
struct Room {
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
    /// The application wakes a waiting driver once the channel holds at most this many events
    /// (half its capacity): waking it at every event taken would have it deliver one event and
    /// wait again, a wake-up per event.
    low_water: usize,
}

impl Room {
    /// The application found the channel empty: a driver waiting for room may go on.
    fn found_empty(&self) {
        self.wake();
    }

    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::SeqCst) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// The driver found the channel full: wake it after the next take. The caller checks the
    /// channel again afterwards, so a take in between is not missed.
    fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
        drop(slot);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The application took an event; `left` are still in the channel. A driver waiting for
    /// room is woken once `left` is down to the low-water mark (it is at the latest when the
    /// application waits on an empty channel, so a driver never waits on an application that
    /// waits on it).
    fn taken(&self, left: usize) {
        if left <= self.low_water {
            self.wake();
        }
    }
}

impl<M: Machine> Events<M> {
    /// The next event; `None` once the peer closed its side (the connection still takes
    /// commands until it is closed) or the driver has stopped, and everything was received.
    pub async fn recv(&self) -> Option<Delivery<M>> {
        let next = match self.rx.try_recv() {
            Ok(next) => Some(next),
            Err(async_channel::TryRecvError::Closed) => None,
            Err(async_channel::TryRecvError::Empty) => {
                self.room.found_empty();
                self.rx.recv().await.ok()
            }
        };
        self.took();
        next
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Delivery<M>> {
        let next = self.rx.try_recv();
        if let Err(async_channel::TryRecvError::Empty) = next {
            self.room.found_empty();
        }
        let next = next.ok();
        self.took();
        next
    }

    fn took(&self) {
        self.room.taken(self.rx.len());
    }
}

impl<M: Machine> Stream for Events<M> {
    type Item = Delivery<M>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rx.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(_) => self.took(),
            Poll::Pending => self.room.found_empty(),
        }
        next
    }
}

/// The driver's result, once.
pub struct Done<M: Machine> {
    rx: Receiver<Result<(), DriverError<M::Error>>>,
}

impl<M: Machine> Done<M> {
    /// Wait for the connection's result: once everything is written and the write side shut
    /// down (the linger for the peer's end of stream goes on behind it).
    pub async fn wait(self) -> Result<(), DriverError<M::Error>> {
        self.rx.recv().await.unwrap_or(Err(DriverError::Cancelled))
    }
}

/// A running connection: send commands, receive events, wait for the end.
pub struct Connection<M: Machine> {
    commands: Commands<M>,
    events: Events<M>,
    done: Done<M>,
    stats: Arc<DriverStats>,
    /// Puts an event into the application's stream as if the machine had reported it (the
    /// broker's `signal`); weak, so it never keeps the event stream open.
    signals: async_channel::WeakSender<Delivery<M>>,
}

impl<M: Machine> Connection<M> {
    /// Queue a command, waiting while the driver holds back (see [`Commands::send`]).
    pub async fn send(&self, command: M::Command) -> Result<(), SendError<M::Command>> {
        self.commands.send(command).await
    }

    /// Queue a command if there is room now (see [`Commands::try_send`]).
    pub fn try_send(&self, command: M::Command) -> Result<(), TrySendError<M::Command>> {
        self.commands.try_send(command)
    }

    /// The next event, or `Err` for a command the machine refused; `None` at the end.
    pub async fn recv(&self) -> Option<Delivery<M>> {
        self.events.recv().await
    }

    /// A sender to share with other tasks.
    pub fn commands(&self) -> Commands<M> {
        self.commands.clone()
    }

    /// The driver's live figures.
    pub fn stats(&self) -> &Arc<DriverStats> {
        &self.stats
    }

    /// What [`Connections::signal`](crate::Connections::signal) sends through.
    pub(crate) fn signals(&self) -> async_channel::WeakSender<Delivery<M>> {
        self.signals.clone()
    }

    /// Take the connection apart.
    pub fn split(self) -> (Commands<M>, Events<M>, Done<M>) {
        (self.commands, self.events, self.done)
    }

    /// Close gracefully (once other [`Commands`] clones are gone too), drop the remaining events,
    /// and wait for the driver's result.
    pub async fn join(self) -> Result<(), DriverError<M::Error>> {
        let Connection { commands, events, done, .. } = self;
        drop(commands);
        drop(events);
        done.wait().await
    }
}

impl<M: Machine> Connection<M> {
    /// Ask the machine to finish cleanly after every command queued before (`false` if the
    /// driver has stopped already); read the rest of the events, then [`join`](Self::join).
    pub fn close(&self) -> bool {
        self.commands.close()
    }
}

/// A driver future's output goes to [`Done`]; the future itself yields `()`.
pub type DriverFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Steps taken before a busy driver yields to its executor, so one fast peer cannot starve
/// other tasks on the same thread.
const STEPS_PER_POLL: usize = 64;
/// Most buffers handed to one vectored write.
const MAX_IOV: usize = 64;
/// Most commands taken in one step, so a sender that keeps the channel full cannot keep the
/// driver from writing and reading.
const COMMANDS_PER_STEP: usize = 1024;

enum Step {
    Progress,
    Idle,
    Done,
}

/// What both drivers share: the pump, its timer, and the two channels.
struct Core<R: Runtime, M: Drivable> {
    pump: Pump<M>,
    runtime: R,
    timer: Option<R::Timer>,
    armed: Option<Instant>,
    commands: Pin<Box<Receiver<Request<M::Command>>>>,
    commands_open: bool,
    /// Rings for senders waiting for room in the command channel.
    gate: Arc<Gate>,
    events: Sender<Delivery<M>>,
    /// Events the channel had no room for yet, in order.
    pending: VecDeque<Delivery<M>>,
    /// The most events the channel holds (`DriverConfig::events`).
    event_capacity: usize,
    /// Rings when the application takes an event.
    room: Arc<Room>,
    /// The channel was full with events still pending: the driver waits for room.
    full: bool,
    events_open: bool,
    stats: Arc<DriverStats>,
    started: bool,
}

impl<R: Runtime, M: Drivable> Core<R, M> {
    /// Drain the machine once before any input, so it can report a first deadline (an idle
    /// timer must run even if nothing ever arrives) or output it has from the start.
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            let (pending, events) = (&mut self.pending, &self.stats.events);
            self.pump.drain(self.runtime.now(), |event| {
                events.fetch_add(1, Ordering::Relaxed);
                pending.push_back(Ok(event))
            });
        }
    }

    fn feed(&mut self, now: Instant, input: Input<'_, M::Command>) {
        let (pending, events) = (&mut self.pending, &self.stats.events);
        let taken = |event| {
            events.fetch_add(1, Ordering::Relaxed);
            pending.push_back(Ok(event))
        };
        if let Err(refused) = self.pump.input(now, input, taken) {
            pending.push_back(Err(refused));
        }
    }

    /// Move pending events into the channel; true if any moved.
    fn deliver(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let was_full = self.full;
        self.full = false;
        while !self.pending.is_empty() {
            if !self.events_open {
                // Nobody listens: events are dropped, the connection goes on.
                self.pending.clear();
                break;
            }
            if self.events.len() >= self.event_capacity {
                self.room.register(cx.waker());
                if self.events.len() >= self.event_capacity {
                    self.full = true;
                    return progress;
                }
            }
            if let Some(next) = self.pending.pop_front() {
                match self.events.try_send(next) {
                    Ok(()) => progress = true,
                    Err(_) => self.events_open = false,
                }
            }
        }
        progress || was_full
    }

    /// Whether more than the write budget waits to be written (`queued`: the driver's count).
    fn over_budget(&self, queued: usize) -> bool {
        queued >= self.pump.machine().write_budget()
    }

    /// Whether events wait for the application (then the driver stops reading).
    fn backlogged(&self) -> bool {
        self.full
    }

    fn delivered(&self) -> bool {
        self.pending.is_empty()
    }

    /// After the machine's `ReadClosed` no event comes: once the ones before it are delivered,
    /// end the application's event stream (the commands stay open).
    fn end_events_if_read_closed(&mut self) {
        if self.events_open && self.pump.is_read_closed() && self.pending.is_empty() {
            self.events.close();
            self.events_open = false;
        }
    }

    /// Take one command; when every sender is gone, feed `Input::Close` once.
    fn poll_command(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        if !self.commands_open {
            return false;
        }
        match self.commands.as_mut().poll_next(cx) {
            // The gate is opened by the caller once per batch of takes: waking a waiting
            // sender per command taken makes it send one and wait again, a wake-up per command
            // (measured: tokio 1 KiB framing through `connect_with` ran at half the speed).
            Poll::Ready(Some(Request::Command(command))) => {
                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                self.feed(now, Input::Command(command));
            }
            Poll::Ready(Some(Request::Close)) => self.feed(now, Input::Close),
            Poll::Ready(None) => {
                self.commands_open = false;
                // Nobody can send any more: finish cleanly (a no-op if closed already).
                self.feed(now, Input::Close);
            }
            Poll::Pending => return false,
        }
        true
    }

    /// Wake the machine at its deadline. The timer is re-armed only when the deadline moves
    /// earlier or the timer fired, so an idle timer pushed back by every read costs nothing.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.pump.deadline() else { return false };
        let now = self.runtime.now();
        if now >= deadline {
            self.armed = None;
            self.feed(now, Input::Timeout);
            return true;
        }
        let at = deadline;
        let timer = match self.timer.as_mut() {
            Some(timer) => {
                if self.armed.is_none_or(|armed| armed > deadline) {
                    timer.reset(at);
                }
                timer
            }
            None => self.timer.insert(self.runtime.timer(at)),
        };
        self.armed = Some(self.armed.map_or(deadline, |armed| armed.min(deadline)));
        match timer.poll_fire(cx) {
            Poll::Ready(()) => {
                self.armed = None;
                true
            }
            Poll::Pending => false,
        }
    }

    fn result(&mut self) -> Result<(), DriverError<M::Error>> {
        match self.pump.take_result() {
            Some(Ok(())) | None => Ok(()),
            Some(Err(e)) => Err(DriverError::Machine(e)),
        }
    }

    /// On a transport failure, hand over what fits without waiting.
    fn deliver_now(&mut self) {
        while let Some(next) = self.pending.pop_front() {
            if self.events.try_send(next).is_err() {
                break;
            }
        }
    }
}

impl<R: Runtime, M: Drivable> Drop for Core<R, M> {
    /// The driver stopped: senders waiting for room learn that it never comes.
    fn drop(&mut self) {
        self.commands.close();
        self.gate.open();
    }
}

/// How a driver ended.
type DriverResult<M> = Result<(), DriverError<<M as Machine>::Error>>;

/// Build the channels and the shared core.
fn core<R: Runtime, M: Drivable>(
    runtime: R,
    machine: M,
    config: &DriverConfig,
) -> (Connection<M>, Core<R, M>, Sender<DriverResult<M>>) {
    // Both channels are unbounded so an idle connection preallocates no slots; their caps are
    // kept by the senders (`Commands::send`/`try_send` at `config.commands`, the driver at
    // `config.events`), and the router's `push` past the cap is bounded by its slow-client drop.
    let (command_tx, command_rx) = async_channel::unbounded();
    let gate = Arc::new(Gate::default());
    let (event_tx, event_rx) = async_channel::unbounded();
    let room = Arc::new(Room {
        waiting: AtomicBool::new(false),
        waker: Mutex::new(None),
        low_water: config.events.max(1) / 2,
    });
    let (done_tx, done_rx) = async_channel::bounded(1);
    let stats = Arc::new(DriverStats::default());
    let connection = Connection {
        commands: Commands { tx: command_tx, capacity: config.commands.max(1), gate: gate.clone() },
        events: Events { rx: Box::pin(event_rx), room: room.clone() },
        done: Done { rx: done_rx },
        stats: stats.clone(),
        signals: event_tx.downgrade(),
    };
    let core = Core {
        pump: Pump::new(machine),
        runtime,
        timer: None,
        armed: None,
        commands: Box::pin(command_rx),
        commands_open: true,
        gate,
        events: event_tx,
        pending: VecDeque::new(),
        event_capacity: config.events.max(1),
        room,
        full: false,
        events_open: true,
        stats,
        started: false,
    };
    (connection, core, done_tx)
}

enum Phase {
    Running,
    Closing,
    Lingering,
}

struct StreamDriver<R: Runtime, M: Drivable, S: ByteStream> {
    core: Core<R, M>,
    io: S,
    rx: BytesMut,
    read_chunk: usize,
    eof: bool,
    /// The last read added to the write queue: over budget, such reads stop.
    read_grew: bool,
    needs_flush: bool,
    phase: Phase,
    linger: Duration,
    linger_timer: Option<R::Timer>,
    /// Where the result goes: as soon as it is final (everything written, the write side shut
    /// down), not after the linger, which only waits for the peer's end of stream.
    done: Option<Sender<DriverResult<M>>>,
}

/// Run `machine` over the byte stream `io`: the connection's handles and the driver future to
/// spawn (its result goes to [`Connection::join`]). `Output::TransmitTo` has no meaning on a
/// stream: the driver ends with [`DriverError::DatagramOnStream`] (the caller's fault). [`RuntimeExt::drive`](crate::RuntimeExt::drive)
/// spawns it for you.
pub fn stream_driver<R: Runtime, M: Drivable, S: ByteStream>(
    runtime: R,
    machine: M,
    io: S,
    config: &DriverConfig,
) -> (Connection<M>, DriverFuture) {
    let (connection, core, done) = core(runtime, machine, config);
    let mut driver = StreamDriver {
        core,
        io,
        rx: BytesMut::new(),
        read_chunk: config.read_chunk.max(1),
        eof: false,
        read_grew: false,
        needs_flush: false,
        phase: Phase::Running,
        linger: config.linger,
        linger_timer: None,
        done: Some(done),
    };
    let future = async move {
        let result = std::future::poll_fn(|cx| driver.poll_run(cx)).await;
        if let Some(done) = driver.done.take() {
            let _ = done.try_send(result);
        }
    };
    (connection, Box::pin(future))
}

impl<R: Runtime, M: Drivable, S: ByteStream> StreamDriver<R, M, S> {
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DriverError<M::Error>>> {
        self.core.start();
        for _ in 0..STEPS_PER_POLL {
            match self.step(cx) {
                Ok(Step::Progress) => {}
                Ok(Step::Idle) => return Poll::Pending,
                Ok(Step::Done) => return Poll::Ready(self.core.result()),
                Err(e) => {
                    self.core.deliver_now();
                    return Poll::Ready(Err(e));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Result<Step, DriverError<M::Error>> {
        let mut progress = self.core.deliver(cx);
        progress |= self.poll_write(cx)?;
        match self.phase {
            Phase::Running => {
                if self.core.pump.is_done() {
                    self.phase = Phase::Closing;
                    return Ok(Step::Progress);
                }
                progress |= self.poll_input(cx)?;
                progress |= self.core.poll_timer(cx);
                self.core.end_events_if_read_closed();
                let pump = &self.core.pump;
                self.core.stats.paused.store(!pump.wants_input() && !pump.is_finished(), Ordering::Relaxed);
            }
            Phase::Closing => {
                if self.needs_flush {
                    return Ok(if progress { Step::Progress } else { Step::Idle });
                }
                match Pin::new(&mut self.io).poll_close(cx) {
                    Poll::Ready(_) => {
                        // Not every runtime's close shuts the write side down (async-io's only
                        // flushes), so do it here. A peer that already reset is no news.
                        let _ = self.io.socket_ref().shutdown(std::net::Shutdown::Write);
                        self.phase = Phase::Lingering;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            Phase::Lingering => {
                if self.core.delivered() {
                    // Nothing can change the outcome now, and no event can come: end the event
                    // stream and report, so the application (a hub telling others that this
                    // client left) does not wait for the peer's end of stream too.
                    if let Some(done) = self.done.take() {
                        self.core.events.close();
                        let _ = done.try_send(self.core.result());
                    }
                }
                if !self.eof && !self.linger.is_zero() {
                    match self.discard_input(cx) {
                        Poll::Ready(true) => self.eof = true,
                        Poll::Ready(false) => progress = true,
                        Poll::Pending => self.eof = self.linger_expired(cx),
                    }
                }
                if (self.eof || self.linger.is_zero()) && self.core.delivered() {
                    return Ok(Step::Done);
                }
            }
        }
        Ok(if progress { Step::Progress } else { Step::Idle })
    }

    /// Write what is queued (vectored, in order) and flush; true if anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, DriverError<M::Error>> {
        // A stream has no addresses: a machine that asks for a datagram here was put on the
        // wrong transport.
        if self.core.pump.next_datagram().is_some() {
            return Err(DriverError::DatagramOnStream);
        }
        let mut progress = false;
        loop {
            let queue = self.core.pump.writes();
            if queue.is_empty() {
                break;
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(queue.chunks()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Poll::Ready(Ok(n)) => {
                    queue.advance(n);
                    let left = queue.len();
                    self.core.stats.note_written(n);
                    self.core.stats.note_queued(left);
                    self.needs_flush = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// Take a command and read, unless held back; true if anything came in.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Result<bool, DriverError<M::Error>> {
        let now = self.core.runtime.now();
        let mut progress = false;
        // Take every command that is ready (within budget) before writing: the whole batch
        // then goes out in one vectored write and costs one wake-up, not one per command. Each
        // command is drained at once, so the budget check stays exact (the queue never exceeds
        // the budget by more than one command's output).
        let mut taken = 0;
        while taken < COMMANDS_PER_STEP && self.core.pump.wants_input() && self.core.poll_command(cx, now) {
            taken += 1;
        }
        if taken > 0 {
            self.core.gate.open();
            self.core.stats.note_queued(self.core.pump.writes().len());
            progress = true;
        }
        let before = self.core.pump.writes().len();
        let held_back = self.core.over_budget(before) && self.read_grew;
        let read_closed = self.core.pump.is_read_closed();
        if self.eof || self.core.pump.is_finished() || read_closed || held_back || self.core.backlogged() {
            return Ok(progress);
        }
        let read = self.poll_fill(cx);
        match read {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                self.core.feed(now, Input::Eof);
            }
            Poll::Ready(Ok(n)) => {
                self.core.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                self.core.feed(now, Input::Stream(&mut self.rx));
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Err(e.into()),
            Poll::Pending => {
                if self.rx.is_empty() {
                    // Nothing buffered and nothing to read: an idle connection keeps no buffer.
                    self.rx = BytesMut::new();
                }
                return Ok(progress);
            }
        }
        let after = self.core.pump.writes().len();
        self.read_grew = after > before;
        self.core.stats.note_queued(after);
        Ok(true)
    }

    /// Read once, appending to `rx`.
    ///
    /// The read goes into this thread's scratch buffer (zeroed once per thread, since safe Rust
    /// cannot read into uninitialised memory) and only the bytes that arrived are copied into
    /// `rx`: no per-read zeroing, and an idle connection holds no read buffer at all.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let chunk = self.read_chunk;
        let (io, rx) = (&mut self.io, &mut self.rx);
        with_scratch(chunk, |scratch| {
            let read = Pin::new(io).poll_read(cx, scratch);
            if let Poll::Ready(Ok(n)) = read {
                rx.extend_from_slice(&scratch[..n]);
            }
            read
        })
    }

    fn linger_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let timer = match self.linger_timer.as_mut() {
            Some(timer) => timer,
            None => {
                let at = self.core.runtime.now().saturating_add(self.linger);
                self.linger_timer.insert(self.core.runtime.timer(at))
            }
        };
        timer.poll_fire(cx).is_ready()
    }

    /// After closing: read and drop until the peer's end of stream. `Ready(true)` once it came
    /// (or the transport failed, which ends the wait just the same).
    fn discard_input(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        self.rx = BytesMut::new();
        let io = &mut self.io;
        match with_scratch(self.read_chunk, |scratch| Pin::new(io).poll_read(cx, scratch)) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(true),
            Poll::Ready(Ok(_)) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    }
}

thread_local! {
    /// Where stream drivers on this thread read into before copying out what arrived.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` on this thread's zeroed scratch buffer of `len` bytes (grown, and zeroed, once).
pub(crate) fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            if scratch.len() < len {
                scratch.resize(len, 0);
            }
            f(&mut scratch[..len])
        }
        // Only a read nested inside another read's poll could get here; it gets its own buffer.
        Err(_) => f(&mut vec![0; len]),
    })
}

struct DatagramDriver<R: Runtime, M: Drivable, U: DatagramSocket> {
    core: Core<R, M>,
    socket: U,
    scratch: Vec<u8>,
    peer: Option<SocketAddr>,
    last_from: Option<SocketAddr>,
    outbox: VecDeque<(SocketAddr, Bytes)>,
    outbox_bytes: usize,
    /// The last datagram received added to the outbox: over budget, receiving stops.
    read_grew: bool,
}

/// Run `machine` over the UDP socket `socket`: datagrams in as `Input::Datagram`,
/// `Output::TransmitTo` out as datagrams. Each unaddressed `Output::Transmit` goes out as one
/// datagram to `config.peer`, or to the sender of the last datagram; with neither, the driver
/// ends with [`DriverError::NoDestination`] (the caller's fault).
/// [`RuntimeExt::drive_datagram`](crate::RuntimeExt::drive_datagram) spawns it for you.
pub fn datagram_driver<R: Runtime, M: Drivable, U: DatagramSocket>(
    runtime: R,
    machine: M,
    socket: U,
    config: &DriverConfig,
) -> (Connection<M>, DriverFuture) {
    let (connection, core, done) = core(runtime, machine, config);
    let mut driver = DatagramDriver {
        core,
        socket,
        scratch: vec![0; config.max_datagram.max(1)],
        peer: config.peer,
        last_from: None,
        outbox: VecDeque::new(),
        outbox_bytes: 0,
        read_grew: false,
    };
    let future = async move {
        let result = std::future::poll_fn(|cx| driver.poll_run(cx)).await;
        let _ = done.try_send(result);
    };
    (connection, Box::pin(future))
}

impl<R: Runtime, M: Drivable, U: DatagramSocket> DatagramDriver<R, M, U> {
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DriverError<M::Error>>> {
        self.core.start();
        if let Err(e) = self.collect() {
            return Poll::Ready(Err(e));
        }
        for _ in 0..STEPS_PER_POLL {
            match self.step(cx) {
                Ok(Step::Progress) => {}
                Ok(Step::Idle) => return Poll::Pending,
                Ok(Step::Done) => return Poll::Ready(self.core.result()),
                Err(e) => {
                    self.core.deliver_now();
                    return Poll::Ready(Err(e));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Whether commands are taken now.
    fn accepting(&self) -> bool {
        self.core.pump.wants_input() && !self.core.over_budget(self.outbox_bytes)
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Result<Step, DriverError<M::Error>> {
        let mut progress = self.core.deliver(cx);
        progress |= self.poll_send(cx)?;
        if self.core.pump.is_finished() && self.outbox.is_empty() {
            return Ok(if self.core.delivered() {
                Step::Done
            } else if progress {
                Step::Progress
            } else {
                Step::Idle
            });
        }
        let now = self.core.runtime.now();
        if self.accepting() && self.core.poll_command(cx, now) {
            self.core.gate.open();
            self.collect()?;
            progress = true;
        }
        let held_back = self.core.over_budget(self.outbox_bytes) && self.read_grew;
        if !self.core.pump.is_finished() && !held_back && !self.core.backlogged() {
            let before = self.outbox_bytes;
            if self.poll_recv(cx, now)? {
                self.read_grew = self.outbox_bytes > before;
                progress = true;
            }
        }
        if self.core.poll_timer(cx) {
            self.collect()?;
            progress = true;
        }
        self.core.stats.paused.store(!self.accepting() && !self.core.pump.is_finished(), Ordering::Relaxed);
        Ok(if progress { Step::Progress } else { Step::Idle })
    }

    /// Move what the machine transmitted into the outbox: its datagrams, then the stream bytes
    /// of this input as one datagram.
    fn collect(&mut self) -> Result<(), DriverError<M::Error>> {
        while let Some((to, data)) = self.core.pump.next_datagram() {
            self.outbox_bytes += data.len();
            self.outbox.push_back((to, data));
        }
        // Unaddressed output: each transmit is one datagram (the queue does not gather on a
        // datagram driver), to the configured peer or whoever spoke last.
        let queue = self.core.pump.writes();
        if !queue.is_empty() {
            let to = self.peer.or(self.last_from).ok_or(DriverError::NoDestination)?;
            while let Some(datagram) = queue.pop_front() {
                self.outbox_bytes += datagram.len();
                self.outbox.push_back((to, datagram));
            }
        }
        self.core.stats.note_queued(self.outbox_bytes);
        Ok(())
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<bool, DriverError<M::Error>> {
        let mut progress = false;
        while let Some((to, data)) = self.outbox.front() {
            match self.socket.try_send_to(data, *to) {
                Ok(_) => self.core.stats.note_written(data.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.socket.poll_send_ready(cx) {
                    Poll::Ready(Ok(())) => return Ok(true),
                    Poll::Ready(Err(e)) => return Err(e.into()),
                    Poll::Pending => return Ok(progress),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Nobody listens at that port (an ICMP error from an earlier send): the datagram
                // is lost, as datagrams may be.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
            if let Some((_, sent)) = self.outbox.pop_front() {
                self.outbox_bytes -= sent.len();
            }
            self.core.stats.note_queued(self.outbox_bytes);
            progress = true;
        }
        Ok(progress)
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>, now: Instant) -> Result<bool, DriverError<M::Error>> {
        match self.socket.try_recv_from(&mut self.scratch) {
            Ok((n, from)) => {
                self.last_from = Some(from);
                self.core.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                let data = Bytes::copy_from_slice(&self.scratch[..n]);
                self.core.feed(now, Input::Datagram { from, data });
                self.collect()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.socket.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => Ok(true),
                Poll::Ready(Err(e)) => Err(e.into()),
                Poll::Pending => Ok(false),
            },
            // ICMP errors for earlier sends surface here on some systems; they end nothing.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<DriverError<E>> for io::Error {
    /// For applications that report everything as `io::Error`; the kind tells a protocol error
    /// (`InvalidData`) from a stopped driver (`Interrupted`).
    fn from(e: DriverError<E>) -> io::Error {
        match e {
            DriverError::Io(e) => e,
            DriverError::Machine(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            DriverError::Cancelled => io::Error::new(io::ErrorKind::Interrupted, e.to_string()),
            DriverError::Unflushed { .. } => io::Error::new(io::ErrorKind::TimedOut, e.to_string()),
            DriverError::NoDestination => io::Error::new(io::ErrorKind::NotConnected, e.to_string()),
            DriverError::DatagramOnStream => io::Error::new(io::ErrorKind::Unsupported, e.to_string()),
        }
    }
}
