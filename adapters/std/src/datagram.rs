//! The datagram driver: one machine over one [`UdpSocket`], on two threads.
//!
//! The reader thread receives each datagram into a slice of a large zeroed buffer and sends it
//! to the driver as [`Input::Datagram`] (zero-copy: the `Bytes` is that slice). The driver thread
//! owns the [`Pump`], sends [`Output::TransmitTo`](switchboard_proto::Output::TransmitTo)
//! datagrams itself (a UDP send does not wait for the peer), and sends each
//! [`Output::Transmit`](switchboard_proto::Output::Transmit) as one datagram to the
//! [default destination](Settings::default_destination), or without one to the sender of the
//! last datagram received. When the driver falls behind, the
//! bounded channel fills, the reader waits, and the kernel drops datagrams: UDP's own answer.

use std::io;
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use socket2::SockRef;
use switchboard_proto::driver::Pump;
use switchboard_proto::{Input, Machine};
use switchboard_rt::Clock;

use crate::handle::{Control, DriverThread, Events, HandleSource, Msg, Notice, Running, Settings, Shared};
use crate::stream::{spawn_named, Link};
use crate::DriverError;

/// The largest UDP payload; the receive buffer always has this much room.
const MAX_DATAGRAM: usize = 64 * 1024;
/// One receive allocation serves many datagrams.
const RECV_BLOCK: usize = 4 * MAX_DATAGRAM;

struct DatagramCore<C> {
    socket: UdpSocket,
    reader: UdpSocket,
    settings: Settings<C>,
    link: Link<C>,
}

impl<C: Send + 'static> DatagramCore<C> {
    fn new(socket: UdpSocket, settings: Settings<C>) -> io::Result<Self> {
        settings.socket.apply(&socket)?;
        let reader = socket.try_clone()?;
        // Linux wakes a blocked `recv` on `shutdown`; elsewhere the reader polls a stop flag.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        reader.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
        let link = Link::new(settings.command_capacity, None);
        Ok(DatagramCore { socket, reader, settings, link })
    }

    fn run<M, H>(self, machine: M, source: HandleSource<C>, mut handler: H) -> Result<(), DriverError<M::Error>>
    where
        M: Machine<Command = C>,
        H: FnMut(Notice<M::Event, M::Error>, &mut Control<C>),
    {
        let DatagramCore { socket, reader, settings, link } = self;
        let Link { tx, rx, shared } = link;
        let stop = Arc::new(AtomicBool::new(false));
        let reader_thread = {
            let (tx, shared, stop) = (tx.clone(), shared.clone(), stop.clone());
            spawn_named("switchboard-recv", move || recv_loop(reader, tx, &shared, &stop))?
        };

        let clock = Clock::new();
        let mut control = Control::new(source, shared.clone(), None);
        let mut pump = Pump::new(machine);
        let mut failure: Option<DriverError<M::Error>> = None;
        let (mut close_requested, mut close_sent) = (false, false);
        // Where unaddressed output goes without a default destination: whoever spoke last.
        let mut last_from: Option<SocketAddr> = None;

        macro_rules! feed {
            ($input:expr) => {{
                let refused = pump.input(clock.now(), $input, |e| {
                    shared.events.fetch_add(1, Ordering::Relaxed);
                    handler(Notice::Event(e), &mut control)
                });
                if let Err(e) = refused {
                    handler(Notice::Refused(e), &mut control);
                }
            }};
        }

        pump.drain(clock.now(), |e| {
            shared.events.fetch_add(1, Ordering::Relaxed);
            handler(Notice::Event(e), &mut control)
        });
        loop {
            let ended = pump.is_finished();
            if !ended {
                if pump.deadline().is_some_and(|d| clock.now() >= d) {
                    feed!(Input::Timeout);
                }
                while let Some(c) = control.pending.pop_front() {
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    feed!(Input::Command(c));
                }
                close_requested |= std::mem::take(&mut control.close);
                if close_requested && !close_sent {
                    close_sent = true;
                    feed!(Input::Close);
                }
            }
            let to = settings.default_destination.or(last_from);
            if let Err(e) = send_all(&socket, &mut pump, to, &shared, |to, error| {
                handler(Notice::Undeliverable { to, error }, &mut control)
            }) {
                failure = Some(e);
            }
            if failure.is_some() || pump.is_finished() {
                break;
            }

            let msg = match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(TryRecvError::Empty) => {
                    if !close_requested && shared.close_asked.load(Ordering::SeqCst) {
                        close_requested = true;
                        continue;
                    }
                    match pump.deadline() {
                        Some(d) => rx.recv_timeout(clock.to_std(d).saturating_duration_since(StdInstant::now())).ok(),
                        None => rx.recv().ok(),
                    }
                }
                Err(TryRecvError::Disconnected) => None,
            };
            match msg {
                Some(Msg::Command(c)) => {
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    feed!(Input::Command(c));
                }
                Some(Msg::Close | Msg::HandlesDropped) => close_requested = true,
                Some(Msg::Datagram(from, data)) => {
                    last_from = Some(from);
                    feed!(Input::Datagram { from, data })
                }
                Some(Msg::ReadFailed(e)) => failure = Some(DriverError::Io(e)),
                Some(Msg::Wake) | None => {}
            }
        }

        let result = match pump.take_result() {
            Some(Err(e)) => Err(DriverError::Machine(e)),
            _ => failure.map_or(Ok(()), Err),
        };
        stop.store(true, Ordering::SeqCst);
        // On an unconnected UDP socket Linux reports ENOTCONN but still wakes the reader.
        let _ = SockRef::from(&socket).shutdown(Shutdown::Read);
        drop((rx, tx));
        let _ = reader_thread.join();
        result
    }
}

/// Send everything the machine queued: addressed datagrams, and stream transmits to `default`
/// (one datagram each). A datagram the system refuses is reported and dropped.
fn send_all<M: Machine>(
    socket: &UdpSocket,
    pump: &mut Pump<M>,
    default: Option<SocketAddr>,
    shared: &Shared,
    mut undeliverable: impl FnMut(SocketAddr, io::Error),
) -> Result<(), DriverError<M::Error>> {
    let mut send = |data: &[u8], to: SocketAddr| loop {
        match socket.send_to(data, to) {
            Ok(n) => {
                shared.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
                shared.writes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return undeliverable(to, e),
        }
    };
    while let Some(front) = pump.writes().front() {
        let to = default.ok_or(DriverError::NoDestination)?;
        let len = front.len();
        send(front, to);
        pump.writes().advance(len);
    }
    while let Some((to, data)) = pump.next_datagram() {
        send(&data, to);
    }
    Ok(())
}

fn recv_loop<C>(socket: UdpSocket, tx: SyncSender<Msg<C>>, shared: &Shared, stop: &AtomicBool) {
    let mut spare = BytesMut::new();
    loop {
        if spare.len() < MAX_DATAGRAM {
            spare = BytesMut::zeroed(RECV_BLOCK);
        }
        let received = socket.recv_from(&mut spare[..]);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match received {
            Ok((n, from)) => {
                shared.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                let data = spare.split_to(n).freeze();
                if tx.send(Msg::Datagram(from, data)).is_err() {
                    return;
                }
            }
            // Timeouts (the stop-flag poll, or the application's read timeout), interrupts, and
            // ICMP errors some systems report on later receives: none of them end the socket.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                let _ = tx.send(Msg::ReadFailed(e));
                return;
            }
        }
    }
}

/// Run `machine` over `socket` on the current thread, calling `handler` for every event, until
/// the machine finishes, the socket fails, or [`Control::close`] is called.
pub fn run_datagram<M, H>(
    socket: UdpSocket,
    machine: M,
    settings: Settings<M::Command>,
    handler: H,
) -> Result<(), DriverError<M::Error>>
where
    M: Machine,
    M::Command: Send + 'static,
    H: FnMut(Notice<M::Event, M::Error>, &mut Control<M::Command>),
{
    let core = DatagramCore::new(socket, settings)?;
    let handle = core.link.handle();
    core.run(machine, HandleSource::Strong(handle), handler)
}

/// Run `machine` over `socket` on a new thread; see [`spawn`](crate::spawn) for the pieces.
pub fn spawn_datagram<M>(socket: UdpSocket, machine: M, settings: Settings<M::Command>) -> io::Result<Running<M>>
where
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    M::Error: Send + 'static,
{
    let core = DatagramCore::new(socket, settings)?;
    let handle = core.link.handle();
    let source = core.link.weak_source(&handle);
    let shared = core.link.shared.clone();
    let (events_tx, events_rx) = mpsc::channel();
    let thread = spawn_named("switchboard-udp", move || {
        core.run(machine, source, move |notice, _| {
            let _ = events_tx.send(notice);
        })
    })?;
    Ok(Running { handle, events: Events { rx: events_rx, shared }, driver: DriverThread { thread } })
}
