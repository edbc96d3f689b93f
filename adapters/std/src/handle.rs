//! What the application holds: settings, the command handle, the per-event control, events.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::Machine;
use switchboard_rt::SocketOptions;

use crate::conn::Wake;
use crate::DriverError;

/// How a driver runs one connection or socket.
pub struct Settings<C> {
    /// Options applied to the socket before the driver starts (and to every accepted stream).
    pub socket: SocketOptions,
    /// How many commands (and reader hand-offs) the handle's channel holds before
    /// [`Handle::send`] blocks. Default 256: as many as the driver takes in one turn, so a
    /// sender that keeps the channel full wakes it once per 256 commands (64 B frames through
    /// `spawn`: 1.6–1.9M msg/s at 64, 2.7–3.3M at 256). The slots are allocated when the
    /// connection starts, about 80 bytes each.
    pub command_capacity: usize,
    /// Bytes the reader asks the socket for at a time (stream driver). Default 64 KiB.
    pub read_chunk: usize,
    /// Threaded stream driver ([`spawn`](crate::spawn)): notices queued for the application
    /// before the driver stops reading (default 256). Memory for events waiting on a slow
    /// application stays within this many frames.
    pub events: usize,
    /// [`serve`](crate::serve): the most connections served at once; a connection accepted
    /// beyond it is closed at once, before any byte is read (default `None`: no limit but the
    /// process's).
    pub max_connections: Option<usize>,
    /// After the machine finished, how long the stream driver may spend writing what it
    /// transmitted and waiting for the peer's EOF before it cuts the connection. Default 2 s.
    pub linger: Duration,
    /// Datagram driver: where [`Output::Transmit`](switchboard_proto::Output::Transmit) bytes
    /// go (each transmit is one datagram). `None`: to the sender of the last datagram received
    /// (a machine that answers whoever spoke last without naming them); before any, the driver
    /// ends with [`DriverError::NoDestination`]. Ignored by the stream driver.
    pub default_destination: Option<SocketAddr>,
    _commands: std::marker::PhantomData<fn(C)>,
}

impl<C> Settings<C> {
    /// Defaults: no socket options, 256 commands, 64 KiB reads, 2 s linger.
    pub fn new() -> Self {
        Settings {
            socket: SocketOptions::new(),
            command_capacity: 256,
            read_chunk: 64 * 1024,
            events: 256,
            max_connections: None,
            linger: Duration::from_secs(2),
            default_destination: None,
            _commands: std::marker::PhantomData,
        }
    }

    /// Set the socket options.
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// Set the command channel's capacity (at least 1).
    pub fn command_capacity(mut self, capacity: usize) -> Self {
        self.command_capacity = capacity.max(1);
        self
    }

    /// Set the read size (at least 512 bytes).
    pub fn read_chunk(mut self, bytes: usize) -> Self {
        self.read_chunk = bytes.max(512);
        self
    }

    /// Set how many notices wait for the application before the driver stops reading (at
    /// least 1).
    pub fn events(mut self, capacity: usize) -> Self {
        self.events = capacity.max(1);
        self
    }

    /// Set the most connections [`serve`](crate::serve) runs at once.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Set the linger time.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Set the datagram driver's default destination.
    pub fn default_destination(mut self, to: SocketAddr) -> Self {
        self.default_destination = Some(to);
        self
    }
}

impl Settings<switchboard_proto::stage::Command> {
    /// [`Settings::new`] for a STAGE [`PacketConnection`](switchboard_proto::stage::PacketConnection)
    /// (names the command type, so no annotation is needed).
    pub fn packet() -> Self {
        Self::new()
    }
}

impl<C> Default for Settings<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> Clone for Settings<C> {
    fn clone(&self) -> Self {
        Settings {
            socket: self.socket.clone(),
            command_capacity: self.command_capacity,
            read_chunk: self.read_chunk,
            events: self.events,
            max_connections: self.max_connections,
            linger: self.linger,
            default_destination: self.default_destination,
            _commands: std::marker::PhantomData,
        }
    }
}

impl<C> fmt::Debug for Settings<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("socket", &self.socket)
            .field("command_capacity", &self.command_capacity)
            .field("read_chunk", &self.read_chunk)
            .field("events", &self.events)
            .field("max_connections", &self.max_connections)
            .field("linger", &self.linger)
            .field("default_destination", &self.default_destination)
            .finish()
    }
}

/// What reaches a driver thread on its bounded channel. The stream driver waits in `poll(2)`
/// and is woken through [`Shared::wake`]; the datagram driver waits on this channel, so
/// [`Msg::Wake`] wakes it.
pub(crate) enum Msg<C> {
    Command(C),
    Close,
    HandlesDropped,
    /// Look at what was posted elsewhere (signalled events).
    Wake,
    /// A received datagram (datagram driver).
    Datagram(SocketAddr, Bytes),
    /// The datagram reader failed.
    ReadFailed(io::Error),
}

/// Counters shared by the driver, its threads and the handles.
pub(crate) struct Shared {
    /// A close was asked for (every handle dropped, or `Handle::close`). The driver acts on it
    /// once the channel is empty, so commands sent before come first; over budget it gives the
    /// peer the linger time to make room before it gives up on them.
    pub(crate) close_asked: AtomicBool,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) queued: AtomicUsize,
    pub(crate) paused: AtomicBool,
    pub(crate) max_queued: AtomicUsize,
    pub(crate) commands: AtomicU64,
    pub(crate) events: AtomicU64,
    /// The connection's id in its [`Server`](crate::Server), set once before the driver starts.
    pub(crate) id: OnceLock<u64>,
    /// Wakes a stream driver waiting in `poll(2)` (`None` for the datagram driver, which waits
    /// on its channel).
    pub(crate) wake: Option<Arc<Wake>>,
    /// The stream driver holds a notice the application's [`Events`] had no room for: the
    /// next one taken rings [`wake`](Self::wake).
    pub(crate) wants_room: AtomicBool,
}

impl Shared {
    /// Tell the driver a close was asked for, wherever it is waiting.
    pub(crate) fn ask_close<C>(&self, tx: &SyncSender<Msg<C>>, msg: Msg<C>) {
        // Never block: if the channel is full, the flag tells the driver, which looks at it once
        // it has taken every command sent before (the channel is FIFO).
        self.close_asked.store(true, Ordering::SeqCst);
        let _ = tx.try_send(msg);
        self.nudge_driver();
    }

    /// Wake a stream driver waiting in `poll(2)`.
    pub(crate) fn nudge_driver(&self) {
        if let Some(wake) = &self.wake {
            wake.ring();
        }
    }

    /// Counters and, for a stream driver, its [`Wake`].
    pub(crate) fn new(wake: Option<Arc<Wake>>) -> Self {
        Shared {
            close_asked: AtomicBool::new(false),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            max_queued: AtomicUsize::new(0),
            commands: AtomicU64::new(0),
            events: AtomicU64::new(0),
            id: OnceLock::new(),
            wake,
            wants_room: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_queued(&self, bytes: usize) {
        self.queued.store(bytes, Ordering::Relaxed);
        self.max_queued.fetch_max(bytes, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            max_queued: self.max_queued.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }
}

pub use switchboard_rt::Stats;

pub(crate) struct HandleInner<C> {
    tx: SyncSender<Msg<C>>,
    shared: Arc<Shared>,
}

impl<C> Drop for HandleInner<C> {
    fn drop(&mut self) {
        self.shared.ask_close(&self.tx, Msg::HandlesDropped);
    }
}

/// Sends commands to a running machine from any thread. Cloning is cheap; when every clone is
/// dropped the driver closes the connection gracefully (the machine gets `Input::Close`).
pub struct Handle<C> {
    inner: Arc<HandleInner<C>>,
}

impl<C> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle { inner: self.inner.clone() }
    }
}

impl<C> fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("stats", &self.stats()).finish()
    }
}

/// The driver has stopped; the command comes back.
#[derive(thiserror::Error)]
#[error("the driver has stopped")]
pub struct Closed<C>(pub C);

impl<C> fmt::Debug for Closed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

/// Why [`Handle::try_send`] did not take a command; the command comes back.
#[derive(thiserror::Error)]
pub enum TrySendError<C> {
    /// The channel is full: the driver is applying backpressure.
    #[error("the command channel is full")]
    Full(C),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Closed(C),
}

impl<C> fmt::Debug for TrySendError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<C> Handle<C> {
    pub(crate) fn new(tx: SyncSender<Msg<C>>, shared: Arc<Shared>) -> Self {
        Handle { inner: Arc::new(HandleInner { tx, shared }) }
    }

    /// Record the connection's server id, for [`Control::id`].
    pub(crate) fn set_id(&self, id: u64) {
        let _ = self.inner.shared.id.set(id);
    }

    pub(crate) fn downgrade(&self) -> Weak<HandleInner<C>> {
        Arc::downgrade(&self.inner)
    }

    /// Send a command. Blocks while the channel is full, which it stays while the machine's
    /// written-but-unsent output is over its write budget (backpressure). `Ok` means the driver
    /// took it; a command that reaches an already finished machine is dropped (the machine
    /// would refuse it).
    pub fn send(&self, command: C) -> Result<(), Closed<C>> {
        self.inner.tx.send(Msg::Command(command)).map_err(|e| match e.0 {
            Msg::Command(c) => Closed(c),
            _ => unreachable!("the message sent was a command"),
        })?;
        self.inner.shared.nudge_driver();
        Ok(())
    }

    /// Send a command if the channel has room now.
    pub fn try_send(&self, command: C) -> Result<(), TrySendError<C>> {
        self.inner.tx.try_send(Msg::Command(command)).map_err(|e| match e {
            mpsc::TrySendError::Full(Msg::Command(c)) => TrySendError::Full(c),
            mpsc::TrySendError::Disconnected(Msg::Command(c)) => TrySendError::Closed(c),
            _ => unreachable!("the message sent was a command"),
        })?;
        self.inner.shared.nudge_driver();
        Ok(())
    }

    /// Ask the driver to close gracefully after every command sent before. Never blocks. If the
    /// peer is not reading, the driver waits the [linger](Settings::linger) time for room and
    /// then ends with [`DriverError::Unflushed`].
    pub fn close(&self) {
        self.inner.shared.ask_close(&self.inner.tx, Msg::Close);
    }

    /// The driver's counters now.
    pub fn stats(&self) -> Stats {
        self.inner.shared.snapshot()
    }

    /// Wake the driver wherever it waits (for commands, or for socket news only while over
    /// budget), so it looks at what was posted for it elsewhere (signalled events).
    pub(crate) fn wake(&self) {
        let _ = self.inner.tx.try_send(Msg::Wake);
        self.inner.shared.nudge_driver();
    }
}

/// Where a [`Control`] gets a [`Handle`] from.
pub(crate) enum HandleSource<C> {
    /// Callback form: the control keeps a handle for the whole run, so handing out clones never
    /// closes the connection when they are dropped.
    Strong(Handle<C>),
    /// The application (or the server) holds the handles; dropping them closes.
    Weak(Weak<HandleInner<C>>, SyncSender<Msg<C>>),
}

/// What an event callback can do: queue commands for the machine, ask to close, and get a
/// [`Handle`] for other threads. Commands queued here are fed right after the current drain,
/// ahead of anything from the channel.
pub struct Control<C> {
    pub(crate) pending: VecDeque<C>,
    pub(crate) close: bool,
    source: HandleSource<C>,
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
}

impl<C> Control<C> {
    pub(crate) fn new(source: HandleSource<C>, shared: Arc<Shared>, peer: Option<SocketAddr>) -> Self {
        Control { pending: VecDeque::new(), close: false, source, shared, peer }
    }

    /// Queue a command for the machine.
    pub fn send(&mut self, command: C) {
        self.pending.push_back(command);
    }

    /// Close gracefully after the commands queued so far.
    pub fn close(&mut self) {
        self.close = true;
    }

    /// A handle to send commands from other threads.
    pub fn handle(&mut self) -> Handle<C> {
        match &self.source {
            HandleSource::Strong(h) => h.clone(),
            HandleSource::Weak(weak, tx) => match weak.upgrade() {
                Some(inner) => Handle { inner },
                // Every handle is gone, so the connection is closing already; a fresh one
                // still reaches the driver until it stops.
                None => Handle::new(tx.clone(), self.shared.clone()),
            },
        }
    }

    /// This connection's id in its [`Server`](crate::Server) (the seed's `socket.id`): pass it
    /// around and get the connection back with [`Server::connection`](crate::Server::connection),
    /// or close it with [`Server::close`](crate::Server::close). `None` for a connection that
    /// no server accepted. Ids count up from 0 and are never reused by a server.
    pub fn id(&self) -> Option<u64> {
        self.shared.id.get().copied()
    }

    /// The peer's address, when the transport has one (TCP; the sender for datagrams is in the
    /// machine's events).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The driver's counters now.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }
}

/// What the driver hands the application.
#[derive(Debug)]
pub enum Notice<E, X> {
    /// An event from the machine.
    Event(E),
    /// The machine refused a command (the caller's fault); it is unchanged and goes on.
    Refused(X),
    /// The datagram driver could not send a datagram (UDP is lossy; the socket goes on).
    Undeliverable {
        /// Where it was going.
        to: SocketAddr,
        /// Why it failed.
        error: io::Error,
    },
}

impl<E, X> Notice<E, X> {
    /// The event, if this is one.
    pub fn event(self) -> Option<E> {
        match self {
            Notice::Event(e) => Some(e),
            _ => None,
        }
    }
}

/// The events of a spawned driver. Iterating blocks until the next one and ends at the peer's
/// EOF (the connection still takes commands until the handles are dropped or closed) or when
/// the driver has stopped. At most [`Settings::events`] notices wait here: while they do, the
/// stream driver stops reading, so a slow application holds the peer back instead of letting
/// memory grow. A thread that sends commands before it reads events cannot deadlock with the
/// driver: reads and writes go on while commands wait.
pub struct Events<E, X> {
    pub(crate) rx: Receiver<Notice<E, X>>,
    pub(crate) shared: Arc<Shared>,
}

impl<E, X> Events<E, X> {
    /// The next notice, waiting at most `timeout`. `Ok(None)`: the driver stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Notice<E, X>>, Duration> {
        match self.rx.recv_timeout(timeout) {
            Ok(n) => Ok(Some(self.took(n))),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(timeout),
        }
    }

    /// The next notice if one is waiting.
    pub fn try_recv(&self) -> Option<Notice<E, X>> {
        self.rx.try_recv().ok().map(|n| self.took(n))
    }

    /// A notice was taken: a driver holding one for want of room may go on.
    fn took(&self, notice: Notice<E, X>) -> Notice<E, X> {
        if self.shared.wants_room.load(Ordering::SeqCst) && self.shared.wants_room.swap(false, Ordering::SeqCst) {
            self.shared.nudge_driver();
        }
        notice
    }
}

impl<E, X> Iterator for Events<E, X> {
    type Item = Notice<E, X>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok().map(|n| self.took(n))
    }
}

impl<E, X> fmt::Debug for Events<E, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

/// The thread a spawned driver runs on.
#[derive(Debug)]
pub struct DriverThread<X: std::error::Error + 'static> {
    pub(crate) thread: JoinHandle<Result<(), DriverError<X>>>,
}

impl<X: std::error::Error + 'static> DriverThread<X> {
    /// Wait for the driver to stop and take its result. Drop (or close) the handles first, or
    /// this waits until the machine finishes by itself.
    pub fn join(self) -> Result<(), DriverError<X>> {
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether the driver has stopped.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// A machine running on its own driver thread.
pub struct Running<M: Machine> {
    /// Sends commands; dropping every clone closes the connection.
    pub handle: Handle<M::Command>,
    /// The machine's events, and commands it refused.
    pub events: Events<M::Event, M::Error>,
    /// The driver thread, for its final result.
    pub driver: DriverThread<M::Error>,
}

impl<M: Machine> fmt::Debug for Running<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running").field("handle", &self.handle).field("driver", &self.driver).finish()
    }
}

impl<M: Machine> Running<M> {
    /// Drop the handle (closing gracefully), discard unread events, and wait for the result.
    pub fn close_and_join(self) -> Result<(), DriverError<M::Error>> {
        let Running { handle, events, driver } = self;
        drop(handle);
        drop(events);
        driver.join()
    }
}
