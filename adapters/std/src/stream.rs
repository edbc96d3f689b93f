//! The threaded stream driver: one machine over one [`BlockingStream`], on one thread.
//!
//! The thread runs the same shell as [`Direct`](crate::Direct) (`conn::Conn`, over
//! [`Inline`](switchboard_proto::driver::Inline)): non-blocking reads and writes, and a
//! `poll(2)` wait on the socket, the machine's deadline and an eventfd that the application's
//! [`Handle`]s and [`Events`] ring. Between rounds of I/O it takes the commands waiting in the
//! handle's channel and hands events to the application: to a callback on this thread
//! ([`run`], [`serve`](crate::serve)) or into a bounded channel ([`spawn`]).
//!
//! Every bound is one of the shell's: commands are taken only while the write queue is under
//! the machine's write budget (so [`Handle::send`] blocks while a peer does not read), events
//! are handed over only while the application has room for them (so the driver stops reading
//! while it does not take them), and a callback's replies count against the same budget before
//! the next event is handed to it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;

use switchboard_proto::driver::Refusal;
use switchboard_proto::time::Instant;
use switchboard_proto::Machine;

use crate::conn::{Conn, Round, Wake};
use crate::handle::{Control, DriverThread, Events, Handle, HandleSource, Msg, Notice, Running, Settings, Shared};
use crate::{BlockingStream, DriverError};

/// At most this many waiting commands are taken in one turn of the driver loop, so a sender
/// that keeps the channel full cannot keep the driver from its socket.
const COMMANDS_PER_TURN: usize = 256;

/// The channel every message to a driver thread travels on, and the counters it shares.
pub(crate) struct Link<C> {
    pub(crate) tx: SyncSender<Msg<C>>,
    pub(crate) rx: Receiver<Msg<C>>,
    pub(crate) shared: Arc<Shared>,
}

impl<C> Link<C> {
    /// A channel of `capacity` commands; `wake` for a driver that waits in `poll(2)`.
    pub(crate) fn new(capacity: usize, wake: Option<Arc<Wake>>) -> Self {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        Link { tx, rx, shared: Arc::new(Shared::new(wake)) }
    }

    /// The first handle; the driver learns when it and all its clones are dropped.
    pub(crate) fn handle(&self) -> Handle<C> {
        Handle::new(self.tx.clone(), self.shared.clone())
    }

    pub(crate) fn weak_source(&self, handle: &Handle<C>) -> HandleSource<C> {
        HandleSource::Weak(handle.downgrade(), self.tx.clone())
    }
}

pub(crate) fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<thread::JoinHandle<T>> {
    thread::Builder::new().name(name.into()).spawn(f)
}

/// Where the application takes a notice: `Ok` taken, `Err` given back for want of room (the
/// driver holds it, stops reading, and offers it again once [`Shared::wants_room`] rings).
/// `None` is the machine's `ReadClosed`: no event comes after it.
pub(crate) type Deliver<'a, E, X, C> =
    dyn FnMut(Option<Notice<E, X>>, &mut Control<C>) -> Result<(), Notice<E, X>> + 'a;

/// What a stream driver does when the machine reports `ReadClosed` (the peer's EOF, or a fault
/// in what it sent, after every event before it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReadClosed {
    /// The handler runs on the driver thread and has answered every event already: close.
    Close,
    /// The application answers on its own thread: end its events (it closes, or drops its
    /// handles, when it is done).
    EndEvents,
}

/// A stream and its link, before the driver runs.
pub(crate) struct StreamCore<S, C> {
    stream: S,
    settings: Settings<C>,
    pub(crate) link: Link<C>,
    at_read_closed: ReadClosed,
}

impl<S: BlockingStream + AsFd, C: Send + 'static> StreamCore<S, C> {
    pub(crate) fn new(stream: S, settings: Settings<C>) -> io::Result<Self> {
        let link = Link::new(settings.command_capacity, Some(Arc::new(Wake::new()?)));
        Ok(StreamCore { stream, settings, link, at_read_closed: ReadClosed::Close })
    }

    /// See [`ReadClosed::EndEvents`].
    pub(crate) fn end_events_at_read_closed(mut self) -> Self {
        self.at_read_closed = ReadClosed::EndEvents;
        self
    }

    /// Drive `machine` on this thread until it finishes and the socket is closed. Events sent on
    /// `signals` reach `deliver` as if the machine had reported them (a server's `signal`).
    pub(crate) fn run<M>(
        self,
        machine: M,
        source: HandleSource<C>,
        signals: Option<Receiver<M::Event>>,
        deliver: &mut Deliver<'_, M::Event, M::Error, C>,
    ) -> Result<(), DriverError<M::Error>>
    where
        M: Machine<Command = C>,
    {
        let StreamCore { stream, settings, link, at_read_closed } = self;
        let Link { rx, shared, .. } = link;
        let conn = Conn::new(stream, machine, &settings)?;
        let control = Control::new(source, shared.clone(), conn.peer_addr());
        let mut driver = Driver {
            conn,
            control,
            shared,
            rx,
            signals,
            stash: None,
            held: None,
            refusals: Default::default(),
            at_read_closed,
            read_closed_told: false,
            close_grace: None,
            linger: settings.linger,
            result: Ok(()),
        };
        driver.run(deliver);
        driver.result
    }
}

struct Driver<M: Machine, S> {
    conn: Conn<M, S>,
    control: Control<M::Command>,
    shared: Arc<Shared>,
    rx: Receiver<Msg<M::Command>>,
    signals: Option<Receiver<M::Event>>,
    /// A message taken from the channel to look before sleeping, handled first next turn.
    stash: Option<Msg<M::Command>>,
    /// A notice the application had no room for.
    held: Option<Notice<M::Event, M::Error>>,
    /// Commands a callback queued that the machine refused, told at the next turn.
    refusals: std::collections::VecDeque<M::Error>,
    at_read_closed: ReadClosed,
    read_closed_told: bool,
    /// A close was asked for while over budget: when to stop waiting for the peer to make room
    /// for the commands before it, and close anyway.
    close_grace: Option<Instant>,
    linger: std::time::Duration,
    result: Result<(), DriverError<M::Error>>,
}

impl<M: Machine, S: BlockingStream + AsFd> Driver<M, S> {
    fn run(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) {
        loop {
            let mut progress = self.offer_held(deliver);
            while self.held.is_none() {
                let Some(refused) = self.refusals.pop_front() else { break };
                progress |= self.deliver(deliver, Notice::Refused(refused));
            }
            progress |= self.take_signals(deliver);
            progress |= self.take_commands(deliver);
            progress |= self.hand_over_events(deliver);
            self.on_read_closed(deliver);
            self.report();
            if !self.conn.inline.is_running() && self.held.is_none() {
                // Everything after the end: the remaining events, and how it ended.
                self.hand_over_events(deliver);
                if self.held.is_none() && self.conn.is_over() {
                    return;
                }
            }
            let sending = !self.takes_events();
            let may_read = self.held.is_none();
            match self.conn.io_round(false, sending, may_read, None) {
                Round::Progress => continue,
                Round::Idle | Round::Woken => {}
            }
            if progress {
                continue;
            }
            self.sleep(sending, may_read, deliver);
        }
    }

    /// Wait for the socket, the deadline, or a ring; look at the channels once more after
    /// announcing the sleep, so nothing posted just before is slept through.
    fn sleep(&mut self, sending: bool, may_read: bool, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) {
        let Some(wake) = self.shared.wake.clone() else { return };
        wake.arm();
        if self.held.is_some() {
            // Ask to be rung at the next take, then look once more: a take between the failed
            // hand-over and this request would otherwise ring nobody, and an application that
            // then waits for this very notice would wait forever.
            self.shared.wants_room.store(true, Ordering::SeqCst);
            if self.offer_held(deliver) {
                wake.disarm();
                return;
            }
        }
        let look = self.can_take() && self.stash.is_none();
        if look {
            if let Ok(msg) = self.rx.try_recv() {
                self.stash = Some(msg);
                wake.disarm();
                return;
            }
        }
        self.conn.set_alarm(self.close_grace);
        self.conn.io_round(true, sending, may_read, Some(&wake));
        self.conn.set_alarm(None);
        wake.disarm();
    }

    /// Whether events are handed over now. A callback on this thread answers into the write
    /// queue, so it gets the next event only while the queue is under budget; an application on
    /// its own thread answers through the command channel, which the budget gates already, so
    /// its events flow as long as it has room (two peers that both send more than they read
    /// would otherwise wait on each other).
    fn takes_events(&self) -> bool {
        self.at_read_closed == ReadClosed::EndEvents || !self.conn.inline.must_write()
    }

    fn can_take(&self) -> bool {
        self.conn.inline.is_open() && !self.conn.inline.must_write()
    }

    /// Hand `notice` over, or hold it until the application has room. True if handed over.
    fn deliver(
        &mut self,
        deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>,
        notice: Notice<M::Event, M::Error>,
    ) -> bool {
        match deliver(Some(notice), &mut self.control) {
            Ok(()) => {
                self.apply_control();
                true
            }
            Err(back) => {
                self.held = Some(back);
                false
            }
        }
    }

    fn offer_held(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) -> bool {
        match self.held.take() {
            Some(notice) => self.deliver(deliver, notice),
            None => false,
        }
    }

    /// Events signalled to this connection go to the application as the machine's own; once
    /// the machine has ended none are (nothing arrives on a finished connection either).
    fn take_signals(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) -> bool {
        let mut progress = false;
        while self.held.is_none() {
            let Some(event) = self.signals.as_ref().and_then(|s| s.try_recv().ok()) else { break };
            if self.conn.inline.is_open() {
                progress |= self.deliver(deliver, Notice::Event(event));
            }
        }
        progress
    }

    /// Take the commands waiting (up to [`COMMANDS_PER_TURN`]) while under budget. A close
    /// takes effect in order, after the commands sent before it.
    fn take_commands(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) -> bool {
        let mut taken = 0;
        while taken < COMMANDS_PER_TURN && self.can_take() {
            let msg = match self.stash.take() {
                Some(msg) => msg,
                None => match self.rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => {
                        // Every command sent before a close asked for while the channel was
                        // full is taken: close now.
                        if self.shared.close_asked.load(Ordering::SeqCst) {
                            self.conn.close();
                        }
                        break;
                    }
                    Err(TryRecvError::Disconnected) => {
                        self.conn.close();
                        break;
                    }
                },
            };
            taken += 1;
            match msg {
                Msg::Command(command) => {
                    self.shared.commands.fetch_add(1, Ordering::Relaxed);
                    if let Err(Refusal::Refused(e)) = self.conn.feed(command) {
                        self.deliver(deliver, Notice::Refused(e));
                    }
                }
                Msg::Close | Msg::HandlesDropped => self.conn.close(),
                Msg::Wake | Msg::Datagram(..) | Msg::ReadFailed(_) => {}
            }
        }
        self.watch_close_grace();
        taken > 0
    }

    /// A close asked for while over budget waits for the commands before it, but not longer
    /// than the linger time for a peer that does not read.
    fn watch_close_grace(&mut self) {
        if !self.conn.inline.is_open() || !self.shared.close_asked.load(Ordering::SeqCst) || self.can_take() {
            self.close_grace = None;
            return;
        }
        let now = self.conn.now;
        let grace = *self.close_grace.get_or_insert(now.saturating_add(self.linger));
        if now >= grace {
            self.conn.close();
        }
    }

    /// Hand the machine's events over while [`takes_events`](Self::takes_events) and the
    /// application has room.
    fn hand_over_events(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) -> bool {
        let mut progress = false;
        while self.held.is_none() && self.takes_events() {
            match self.conn.next_ready() {
                Some(Ok(event)) => {
                    self.shared.events.fetch_add(1, Ordering::Relaxed);
                    progress |= self.deliver(deliver, Notice::Event(event));
                }
                Some(Err(e)) => {
                    self.result = Err(e);
                    progress = true;
                }
                None => break,
            }
        }
        progress
    }

    /// At the machine's `ReadClosed`, once every event before it is handed over: tell the
    /// application, and close or end its events.
    fn on_read_closed(&mut self, deliver: &mut Deliver<'_, M::Event, M::Error, M::Command>) {
        if self.read_closed_told || self.held.is_some() || !self.conn.inline.is_read_closed() {
            return;
        }
        self.read_closed_told = true;
        let _ = deliver(None, &mut self.control);
        if self.at_read_closed == ReadClosed::Close {
            self.control.close();
        }
        self.apply_control();
    }

    /// Feed what the callback queued, then its close.
    fn apply_control(&mut self) {
        while let Some(command) = self.control.pending.pop_front() {
            self.shared.commands.fetch_add(1, Ordering::Relaxed);
            if let Err(Refusal::Refused(e)) = self.conn.feed(command) {
                // Refused in the callback's own turn: it is told next.
                self.refusals.push_back(e);
            }
        }
        if std::mem::take(&mut self.control.close) {
            self.conn.close();
        }
    }

    fn report(&self) {
        let counts = self.conn.counts;
        let shared = &self.shared;
        shared.bytes_read.store(counts.bytes_read, Ordering::Relaxed);
        shared.bytes_written.store(counts.bytes_written, Ordering::Relaxed);
        shared.writes.store(counts.writes, Ordering::Relaxed);
        shared.set_queued(self.conn.inline.queued());
        let paused = self.conn.inline.is_open() && self.conn.inline.must_write();
        shared.paused.store(paused, Ordering::Relaxed);
    }
}

/// Run `machine` over `stream` on the current thread, calling `handler` for every event, until
/// the machine finishes (or the socket fails) and the socket is shut down.
///
/// The handler runs on this thread between inputs; commands it queues through its [`Control`]
/// are fed right after. To close, call [`Control::close`]. The peer's EOF closes the
/// connection once the handler has seen every event before it (its answers go out first).
pub fn run<M, S, H>(
    stream: S,
    machine: M,
    settings: Settings<M::Command>,
    mut handler: H,
) -> Result<(), DriverError<M::Error>>
where
    M: Machine,
    M::Command: Send + 'static,
    S: BlockingStream + AsFd,
    H: FnMut(Notice<M::Event, M::Error>, &mut Control<M::Command>),
{
    let core = StreamCore::new(stream, settings)?;
    let handle = core.link.handle();
    core.run(machine, HandleSource::Strong(handle), None, &mut |notice, control| {
        if let Some(notice) = notice {
            handler(notice, control);
        }
        Ok(())
    })
}

/// Run `machine` over `stream` on a new thread. Send commands through the returned
/// [`Handle`] (dropping every clone closes gracefully), read events from [`Events`] (they end
/// at the peer's EOF; the connection takes commands until the handles go), and take the final
/// result from [`DriverThread::join`].
///
/// At most [`Settings::events`] notices wait for the application; while they do, the driver
/// stops reading. A thread that sends a long burst to a peer that answers each frame must read
/// the answers meanwhile (from another thread, or with [`Direct`](crate::Direct), which reads
/// while it sends): otherwise the peer, then the driver, then `send` wait on each other.
pub fn spawn<M, S>(stream: S, machine: M, settings: Settings<M::Command>) -> io::Result<Running<M>>
where
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    M::Error: Send + 'static,
    S: BlockingStream + AsFd,
{
    let (events_tx, events_rx) = mpsc::sync_channel(settings.events.max(1));
    let core = StreamCore::new(stream, settings)?.end_events_at_read_closed();
    let handle = core.link.handle();
    let source = core.link.weak_source(&handle);
    let shared = core.link.shared.clone();
    let thread = spawn_named("switchboard-conn", move || {
        let mut events_tx = Some(events_tx);
        core.run(machine, source, None, &mut |notice, _| match (notice, &events_tx) {
            (Some(notice), Some(tx)) => match tx.try_send(notice) {
                Ok(()) => Ok(()),
                Err(mpsc::TrySendError::Full(back)) => Err(back),
                // Nobody listening is fine: the application dropped its events on purpose.
                Err(mpsc::TrySendError::Disconnected(_)) => Ok(()),
            },
            (Some(_), None) => Ok(()),
            // The events end at the peer's EOF; the connection stays open for the answers.
            (None, _) => {
                events_tx = None;
                Ok(())
            }
        })
    })?;
    Ok(Running { handle, events: Events { rx: events_rx, shared }, driver: DriverThread { thread } })
}

/// Connect to `addr` over TCP, with `settings.socket` applied before `connect` (so buffer sizes
/// shape the handshake), and [`spawn`] a driver for `machine` on the stream.
pub fn connect<M>(addr: SocketAddr, machine: M, settings: Settings<M::Command>) -> io::Result<Running<M>>
where
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    M::Error: Send + 'static,
{
    let stream = switchboard_rt::net::connect_tcp(addr, &settings.socket)?;
    spawn(stream, machine, settings)
}
