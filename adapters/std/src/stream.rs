//! The stream driver: one machine over one [`BlockingStream`], on three threads.
//!
//! * The **driver thread** owns the [`Pump`] (and so the machine). It never blocks on the
//!   socket: it waits in `recv_timeout` on one channel, until the machine's deadline.
//! * The **reader thread** reads into a [`BytesMut`] and sends the buffer itself to the driver
//!   on that channel, then waits for it to come back (ping-pong: frames stay slices of the
//!   receive buffer, nothing is copied). While the write queue is over the machine's budget the
//!   driver keeps the buffer, so the reader stops and the peer's sends back up in the kernel.
//! * The **writer thread** takes the whole write queue in one move (the `Bytes` the machine
//!   transmitted, no copies), writes it with blocking vectored writes and reports back. A peer
//!   that stops reading blocks only this thread, so reads, commands and timers go on.

use std::io::{self, IoSlice, Read, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::thread;
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use switchboard_proto::driver::{Pump, ReadBuffer, WriteQueue, STREAM_GATHER};
use switchboard_proto::{Input, Machine};
use switchboard_rt::Clock;

use crate::handle::{Control, DriverThread, Events, Handle, HandleSource, Msg, Notice, Running, Settings, Shared};
use crate::{BlockingStream, DriverError};

/// At most this many buffers go into one vectored write.
const MAX_IOVECS: usize = 64;

/// At most this many waiting commands are taken in one turn of the driver loop, so a sender
/// that keeps the channel full cannot keep the driver from its socket news.
const COMMANDS_PER_TURN: usize = 256;

/// The channel every message to a driver thread travels on, and the counters it shares.
pub(crate) struct Link<C> {
    pub(crate) tx: SyncSender<Msg<C>>,
    pub(crate) rx: Receiver<Msg<C>>,
    pub(crate) shared: Arc<Shared>,
}

impl<C> Link<C> {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        Link { tx, rx, shared: Arc::new(Shared::default()) }
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
    thread::Builder::new().name(name.to_string()).spawn(f)
}

/// A stream with its reader and writer halves, options applied, ready to drive.
pub(crate) struct StreamCore<S, C> {
    stream: S,
    reader: S,
    writer: S,
    settings: Settings<C>,
    pub(crate) link: Link<C>,
    peer: Option<SocketAddr>,
    /// Events are answered elsewhere (through [`Events`](crate::Events)), so the peer's EOF
    /// waits until the application has taken them all and asked for more.
    /// What happens at the machine's `ReadClosed` (see [`ReadClosed`]).
    at_read_closed: ReadClosed,
}

/// What a stream driver does when the machine reports `ReadClosed` (the peer's EOF, after
/// every event before it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReadClosed {
    /// The handler runs on the driver thread and has answered every event already: close.
    Close,
    /// The application answers on its own thread: end its events (it closes, or drops its
    /// handles, when it is done).
    EndEvents,
}

impl<S: BlockingStream, C: Send + 'static> StreamCore<S, C> {
    pub(crate) fn new(stream: S, settings: Settings<C>) -> io::Result<Self> {
        stream.apply(&settings.socket)?;
        let reader = stream.try_clone()?;
        let writer = stream.try_clone()?;
        let peer = stream.peer_addr();
        let link = Link::new(settings.command_capacity);
        Ok(StreamCore { stream, reader, writer, settings, link, peer, at_read_closed: ReadClosed::Close })
    }

    /// See [`ReadClosed::EndEvents`].
    pub(crate) fn end_events_at_read_closed(mut self) -> Self {
        self.at_read_closed = ReadClosed::EndEvents;
        self
    }

    /// Drive `machine` on this thread until it finishes and the socket is closed. Events sent on
    /// `signals` reach `handler` as if the machine had reported them (a server's `signal`).
    pub(crate) fn run<M, H>(
        self,
        machine: M,
        source: HandleSource<C>,
        signals: Option<Receiver<M::Event>>,
        handler: H,
    ) -> Result<(), DriverError<M::Error>>
    where
        M: Machine<Command = C>,
        H: FnMut(Option<Notice<M::Event, M::Error>>, &mut Control<C>),
    {
        let StreamCore { stream, reader, writer, settings, link, peer, at_read_closed } = self;
        let Link { tx, rx, shared } = link;
        let (buf_tx, buf_rx) = mpsc::channel::<BytesMut>();
        let (batch_tx, batch_rx) = mpsc::channel::<WriteQueue>();
        let (io_tx, io_rx) = mpsc::channel::<IoNews>();
        let nudge = io_tx.clone();
        let doorbell = (tx.clone(), io_tx.clone());
        *shared.nudge.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(move || {
            let _ = nudge.send(IoNews::Nudge);
        }));
        *shared.doorbell.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(move || {
            // Whichever channel the driver waits on.
            let _ = doorbell.0.try_send(Msg::Wake);
            let _ = doorbell.1.send(IoNews::Nudge);
        }));

        let reader_thread = {
            let (io_tx, wake, shared, chunk) = (io_tx.clone(), tx.clone(), shared.clone(), settings.read_chunk);
            spawn_named("switchboard-read", move || read_loop(reader, io_tx, wake, buf_rx, chunk, &shared))?
        };
        let writer_thread = {
            let (wake, shared) = (tx.clone(), shared.clone());
            spawn_named("switchboard-write", move || write_loop(writer, batch_rx, io_tx, wake, &shared))
        };
        let writer_thread = match writer_thread {
            Ok(t) => t,
            Err(e) => {
                // Wake the reader and let it go before reporting.
                let _ = stream.shutdown(Shutdown::Both);
                drop((rx, buf_tx));
                let _ = reader_thread.join();
                return Err(DriverError::Io(e));
            }
        };

        let control = Control::new(source, shared.clone(), peer);
        let mut driver = StreamLoop {
            pump: {
                let mut pump = Pump::new(machine);
                pump.writes().gather_small(STREAM_GATHER);
                pump
            },
            handler,
            control,
            clock: Clock::new(),
            shared,
            settings,
            stream: &stream,
            rx,
            buf_tx,
            batch_tx,
            io_rx,
            in_flight: 0,
            spare: {
                let mut spare = WriteQueue::new();
                spare.gather_small(STREAM_GATHER);
                spare
            },
            held: None,
            read_blocked: false,
            reader_done: false,
            close_requested: false,
            close_sent: false,
            abandoned: false,
            write_shut: false,
            linger_until: None,
            close_grace: None,
            failure: None,
            signals,
            at_read_closed,
            read_closed_told: false,
        };
        driver.run();
        let result = driver.result();

        // Teardown: wake every blocked thread (a write the peer never took, a read that would
        // never end), drop the channels they wait on, and join them so nothing leaks.
        let _ = stream.shutdown(Shutdown::Both);
        let StreamLoop { rx, io_rx, buf_tx, batch_tx, held, shared, .. } = driver;
        *shared.nudge.lock().unwrap_or_else(PoisonError::into_inner) = None;
        *shared.doorbell.lock().unwrap_or_else(PoisonError::into_inner) = None;
        drop((rx, io_rx, buf_tx, batch_tx, held, tx));
        let _ = writer_thread.join();
        let _ = reader_thread.join();
        result
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
    handler: H,
) -> Result<(), DriverError<M::Error>>
where
    M: Machine,
    M::Command: Send + 'static,
    S: BlockingStream,
    H: FnMut(Notice<M::Event, M::Error>, &mut Control<M::Command>),
{
    let core = StreamCore::new(stream, settings)?;
    let handle = core.link.handle();
    let mut handler = handler;
    core.run(machine, HandleSource::Strong(handle), None, move |notice, control: &mut Control<M::Command>| {
        if let Some(notice) = notice {
            handler(notice, control)
        }
    })
}

/// Run `machine` over `stream` on a new thread. Send commands through the returned
/// [`Handle`] (dropping every clone closes gracefully), read events from [`Events`], and take
/// the final result from [`DriverThread::join`].
pub fn spawn<M, S>(stream: S, machine: M, settings: Settings<M::Command>) -> io::Result<Running<M>>
where
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    M::Error: Send + 'static,
    S: BlockingStream,
{
    let core = StreamCore::new(stream, settings)?;
    let handle = core.link.handle();
    let source = core.link.weak_source(&handle);
    let (events_tx, events_rx) = mpsc::channel();
    let thread = spawn_named("switchboard-conn", move || {
        // Events are answered on the application's thread: at the peer's EOF the events end
        // and the connection stays open for the answers until the handles are dropped.
        let mut events_tx = Some(events_tx);
        core.end_events_at_read_closed().run(machine, source, None, move |notice, _| match notice {
            // Nobody listening is fine: the application dropped its events on purpose.
            Some(notice) => {
                if let Some(tx) = &events_tx {
                    let _ = tx.send(notice);
                }
            }
            None => events_tx = None,
        })
    })?;
    Ok(Running { handle, events: Events { rx: events_rx }, driver: DriverThread { thread } })
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

/// What the reader and writer threads tell the driver, on a channel of its own so the driver
/// can wait for socket news alone while it takes no commands (backpressure).
enum IoNews {
    /// The reader's buffer with new bytes appended; the reader waits for it to come back.
    Read(BytesMut),
    Eof,
    ReadFailed(io::Error),
    /// The writer wrote a whole batch and gives the emptied queue back.
    Written {
        queue: WriteQueue,
        written: usize,
    },
    WriteFailed {
        error: io::Error,
        written: usize,
    },
    /// A close was asked for: look at the flag.
    Nudge,
}

struct StreamLoop<'s, M: Machine, H, S> {
    pump: Pump<M>,
    handler: H,
    control: Control<M::Command>,
    clock: Clock,
    shared: Arc<Shared>,
    settings: Settings<M::Command>,
    stream: &'s S,
    rx: Receiver<Msg<M::Command>>,
    buf_tx: mpsc::Sender<BytesMut>,
    batch_tx: mpsc::Sender<WriteQueue>,
    io_rx: Receiver<IoNews>,
    /// Bytes handed to the writer and not reported written yet.
    in_flight: usize,
    /// The writer's last emptied queue, reused so steady state does not allocate.
    spare: WriteQueue,
    /// The receive buffer, kept from the reader while over budget (backpressure).
    held: Option<BytesMut>,
    /// The last read made the machine transmit: while over budget, stop reading.
    read_blocked: bool,
    /// The reader saw EOF or failed: no more bytes will come.
    reader_done: bool,
    close_requested: bool,
    close_sent: bool,
    /// A close waited the whole linger for a peer that took nothing: the machine is no longer fed.
    abandoned: bool,
    write_shut: bool,
    linger_until: Option<StdInstant>,
    /// When a close asked for while over budget stops waiting for the peer to make room.
    close_grace: Option<StdInstant>,
    failure: Option<DriverError<M::Error>>,
    /// Events to hand the application as if the machine had reported them.
    signals: Option<Receiver<M::Event>>,
    /// What happens at the machine's `ReadClosed`.
    at_read_closed: ReadClosed,
    /// The handler was told of the `ReadClosed` (the `None` notice).
    read_closed_told: bool,
}

impl<M, H, S> StreamLoop<'_, M, H, S>
where
    M: Machine,
    H: FnMut(Option<Notice<M::Event, M::Error>>, &mut Control<M::Command>),
    S: BlockingStream,
{
    fn run(&mut self) {
        self.drain();
        loop {
            while let Ok(news) = self.io_rx.try_recv() {
                self.on_io(news);
            }
            if self.failure.is_some() {
                return;
            }
            self.deliver_signals();
            self.on_time();
            self.feed_pending();
            self.on_read_closed();
            self.on_close();
            self.give_back_buffer();
            self.hand_to_writer();
            if self.pump.next_datagram().is_some() {
                self.failure = Some(DriverError::DatagramOnStream);
                return;
            }
            let queued = self.queued();
            self.shared.set_queued(queued);
            let paused = !self.ended() && !self.can_take();
            self.shared.paused.store(paused, Ordering::Relaxed);
            if self.ended() {
                let until = *self.linger_until.get_or_insert_with(|| StdInstant::now() + self.settings.linger);
                if queued == 0 && !self.write_shut {
                    // Everything transmitted is written: now the peer may see EOF.
                    let _ = self.stream.shutdown(Shutdown::Write);
                    self.write_shut = true;
                }
                if (self.write_shut && self.reader_done) || StdInstant::now() >= until {
                    return;
                }
            }
            self.wait();
        }
    }

    fn ended(&self) -> bool {
        self.pump.is_finished() || self.abandoned
    }

    /// Hand signalled events to the application like the machine's own; once the machine has
    /// ended, none are delivered (nothing arrives on a finished connection either).
    fn deliver_signals(&mut self) {
        let Some(signals) = self.signals.as_ref() else { return };
        while let Ok(event) = signals.try_recv() {
            if !self.ended() {
                (self.handler)(Some(Notice::Event(event)), &mut self.control);
            }
        }
    }

    fn queued(&mut self) -> usize {
        self.in_flight + self.pump.writes().len()
    }

    /// Whether to read and take commands: not ended, and queued output under the budget.
    fn can_take(&mut self) -> bool {
        !self.ended() && self.queued() < self.pump.machine().write_budget()
    }

    fn drain(&mut self) {
        let now = self.clock.now();
        let StreamLoop { pump, handler, control, shared, .. } = self;
        pump.drain(now, |e| {
            shared.events.fetch_add(1, Ordering::Relaxed);
            handler(Some(Notice::Event(e)), control)
        });
    }

    fn feed(&mut self, input: Input<'_, M::Command>) {
        let now = self.clock.now();
        let StreamLoop { pump, handler, control, shared, .. } = self;
        let refused = pump.input(now, input, |e| {
            shared.events.fetch_add(1, Ordering::Relaxed);
            handler(Some(Notice::Event(e)), control)
        });
        if let Err(e) = refused {
            handler(Some(Notice::Refused(e)), control);
        }
    }

    fn command(&mut self, command: M::Command) {
        self.shared.commands.fetch_add(1, Ordering::Relaxed);
        self.feed(Input::Command(command));
    }

    fn on_time(&mut self) {
        if !self.ended() && self.pump.deadline().is_some_and(|d| self.clock.now() >= d) {
            self.feed(Input::Timeout);
        }
    }

    /// At the machine's `ReadClosed` (once every event before it was handed over): close, or
    /// end the application's events (see [`ReadClosed`]).
    fn on_read_closed(&mut self) {
        if self.read_closed_told || !self.pump.is_read_closed() || self.ended() {
            return;
        }
        self.read_closed_told = true;
        (self.handler)(None, &mut self.control);
        if self.at_read_closed == ReadClosed::Close {
            self.control.close();
        }
    }

    fn feed_pending(&mut self) {
        if self.ended() {
            self.control.pending.clear();
            return;
        }
        while self.can_take() {
            match self.control.pending.pop_front() {
                Some(c) => self.command(c),
                None => break,
            }
        }
    }

    fn on_close(&mut self) {
        self.close_requested |= mem::take(&mut self.control.close);
        if !self.ended() && self.close_grace.is_some_and(|t| StdInstant::now() >= t) && !self.can_take() {
            // The peer took nothing for the whole linger time: stop feeding the machine; the
            // result says how much never went out.
            self.abandoned = true;
            return;
        }
        if self.close_requested && !self.close_sent && self.control.pending.is_empty() && self.can_take() {
            self.close_sent = true;
            self.feed(Input::Close);
        }
    }

    fn give_back_buffer(&mut self) {
        let Some(mut buf) = self.held.take() else { return };
        if self.pump.is_read_closed() && !self.ended() {
            // A fault in what the peer sent closed the machine's read side: read nothing more
            // until it finishes (then the linger drains the socket).
            self.held = Some(buf);
            return;
        }
        if self.ended() {
            // Drain what the peer still sends until its EOF; the machine is done with it.
            buf.clear();
        } else if self.read_blocked && !self.can_take() {
            self.held = Some(buf);
            return;
        }
        // A reader that already stopped does not need it back.
        let _ = self.buf_tx.send(buf);
    }

    fn hand_to_writer(&mut self) {
        if self.in_flight == 0 && !self.write_shut && !self.pump.writes().is_empty() {
            let batch = mem::replace(self.pump.writes(), mem::take(&mut self.spare));
            self.in_flight = batch.len();
            if self.batch_tx.send(batch).is_err() {
                self.failure =
                    Some(DriverError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "writer thread stopped")));
            }
        }
    }

    fn on_io(&mut self, news: IoNews) {
        match news {
            IoNews::Read(mut buf) => {
                if self.ended() || self.pump.is_read_closed() {
                    self.held = Some(buf);
                    return;
                }
                let before = self.queued();
                self.feed(Input::Stream(&mut buf));
                // A read that made the machine transmit counts against the budget: over it, the
                // buffer stays here and the reader stops. A read that transmitted nothing cannot
                // grow the queue, so reading goes on; that keeps two peers that both send more
                // than they read (an echo and its client) from waiting on each other forever.
                self.read_blocked = self.queued() > before;
                self.held = Some(buf);
            }
            IoNews::Eof => {
                self.reader_done = true;
                if !self.ended() {
                    self.feed(Input::Eof);
                }
            }
            IoNews::ReadFailed(error) => {
                self.reader_done = true;
                if !self.ended() {
                    self.failure.get_or_insert(DriverError::Io(error));
                }
            }
            IoNews::Written { queue, written } => {
                self.in_flight = 0;
                self.spare = queue;
                self.shared.bytes_written.fetch_add(written as u64, Ordering::Relaxed);
            }
            IoNews::WriteFailed { error, written } => {
                self.in_flight = 0;
                self.shared.bytes_written.fetch_add(written as u64, Ordering::Relaxed);
                self.failure.get_or_insert(DriverError::Io(error));
            }
            IoNews::Nudge => {}
        }
    }

    fn on_msg(&mut self, msg: Msg<M::Command>) {
        match msg {
            Msg::Command(c) => {
                if !self.ended() {
                    self.command(c);
                }
            }
            Msg::Close | Msg::HandlesDropped => self.close_requested = true,
            // Datagram news is the datagram driver's; the stream reader reports on `io_rx`.
            Msg::Wake | Msg::Datagram(..) | Msg::ReadFailed(_) => {}
        }
    }

    /// Take the commands already waiting, up to [`COMMANDS_PER_TURN`], while under budget: one
    /// turn of the loop (one hand-over to the writer, one look at the socket news) then serves
    /// the whole burst instead of one command each. Each command is still drained at once, so
    /// the budget check stays exact. Anything but a command ends the burst (a close must not
    /// overtake the commands after it).
    fn take_ready_commands(&mut self) {
        for _ in 0..COMMANDS_PER_TURN {
            if !self.can_take() {
                return;
            }
            match self.rx.try_recv() {
                Ok(Msg::Command(c)) => self.command(c),
                Ok(other) => return self.on_msg(other),
                Err(_) => return,
            }
        }
    }

    /// Wait for the next thing that can make progress, at most until the deadline.
    fn wait(&mut self) {
        let deadline = match self.ended() {
            true => self.linger_until,
            false => self.pump.deadline().map(|d| self.clock.to_std(d)),
        };
        if self.can_take() {
            // Commands, and the doorbell the reader and writer ring after each piece of news.
            let msg = match self.rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(TryRecvError::Empty) => {
                    // Every command sent before the close was asked for is taken: close now.
                    if !self.close_requested && self.shared.close_asked.load(Ordering::SeqCst) {
                        self.close_requested = true;
                        return;
                    }
                    match deadline {
                        Some(t) => self.rx.recv_timeout(t.saturating_duration_since(StdInstant::now())).ok(),
                        None => self.rx.recv().ok(),
                    }
                }
                Err(TryRecvError::Disconnected) => None,
            };
            if let Some(msg) = msg {
                self.on_msg(msg);
                self.take_ready_commands();
            }
            return;
        }
        if self.ended() {
            // Nobody needs to wait on a finished machine: refuse queued commands at once.
            while let Ok(msg) = self.rx.try_recv() {
                drop(msg);
            }
        }
        // Over budget (or ended): take no commands; only the socket can make progress. A close
        // asked for meanwhile gets the linger time for the peer to make room.
        let asked = self.close_requested || self.shared.close_asked.load(Ordering::SeqCst);
        let deadline = match self.ended() || !asked {
            true => deadline,
            false => {
                let grace = *self.close_grace.get_or_insert_with(|| StdInstant::now() + self.settings.linger);
                Some(deadline.map_or(grace, |d| d.min(grace)))
            }
        };
        let news = match deadline {
            Some(t) => match self.io_rx.recv_timeout(t.saturating_duration_since(StdInstant::now())) {
                Ok(news) => Some(news),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.threads_gone(),
            },
            None => match self.io_rx.recv() {
                Ok(news) => Some(news),
                Err(_) => return self.threads_gone(),
            },
        };
        if let Some(news) = news {
            self.on_io(news);
        }
    }

    fn threads_gone(&mut self) {
        self.in_flight = 0;
        self.reader_done = true;
        self.failure
            .get_or_insert(DriverError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "socket threads stopped")));
    }

    /// The connection's outcome: the machine's error first (it says why), then an I/O failure,
    /// then output that never made it out.
    fn result(&mut self) -> Result<(), DriverError<M::Error>> {
        if let Some(Err(e)) = self.pump.take_result() {
            return Err(DriverError::Machine(e));
        }
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        match self.queued() {
            0 => Ok(()),
            unsent => Err(DriverError::Unflushed { unsent }),
        }
    }
}

/// The reader thread: read into the buffer, hand it to the driver, wait for it to come back.
/// [`ReadBuffer`] keeps the zeroed spare room the reads go into, so frames stay slices of what
/// the kernel wrote and nothing is zeroed or copied per read.
fn read_loop<S: Read, C>(
    mut stream: S,
    news: mpsc::Sender<IoNews>,
    wake: SyncSender<Msg<C>>,
    returned: Receiver<BytesMut>,
    chunk: usize,
    shared: &Shared,
) {
    let tell = |n: IoNews| {
        let sent = news.send(n).is_ok();
        // A full channel means the driver is busy with messages and checks its news each turn.
        let _ = wake.try_send(Msg::Wake);
        sent
    };
    let mut rx = ReadBuffer::new(chunk);
    loop {
        match stream.read(rx.spare()) {
            Ok(0) => {
                tell(IoNews::Eof);
                return;
            }
            Ok(n) => {
                shared.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                rx.filled(n);
                if !tell(IoNews::Read(mem::take(rx.received()))) {
                    return;
                }
                match returned.recv() {
                    Ok(back) => *rx.received() = back,
                    Err(_) => return,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tell(IoNews::ReadFailed(e));
                return;
            }
        }
    }
}

/// The writer thread: write each batch fully, report, ring the driver's doorbell.
fn write_loop<S: Write, C>(
    mut stream: S,
    batches: Receiver<WriteQueue>,
    news: mpsc::Sender<IoNews>,
    wake: SyncSender<Msg<C>>,
    shared: &Shared,
) {
    for mut batch in batches {
        let total = batch.len();
        let outcome = write_queue(&mut stream, &mut batch, || {
            shared.writes.fetch_add(1, Ordering::Relaxed);
        });
        let written = total - batch.len();
        let failed = outcome.is_err();
        let report = match outcome {
            Ok(()) => IoNews::Written { queue: batch, written },
            Err(error) => IoNews::WriteFailed { error, written },
        };
        if news.send(report).is_err() {
            return;
        }
        let _ = wake.try_send(Msg::Wake);
        if failed {
            return;
        }
    }
}

/// Write `queue` with vectored writes until it is empty (or the socket fails or would block),
/// calling `on_write` once per successful write call.
pub(crate) fn write_queue<S: Write>(
    stream: &mut S,
    queue: &mut WriteQueue,
    mut on_write: impl FnMut(),
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
                on_write();
                queue.advance(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
