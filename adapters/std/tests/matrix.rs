//! The behaviour matrix of `switchboard-rt`, on the blocking driver: the same tests the async
//! adapters run, through switchboard-std's own API (`serve` over TCP and Unix listeners,
//! `connect`, `spawn`, `spawn_datagram`, the spec helpers, `kcom`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use switchboard_proto::stage::{PacketConnection, PacketDatagram};
use switchboard_proto::Machine;
use switchboard_rt::async_driver::TrySendError;
use switchboard_rt::kcom::KcomOptions;
use switchboard_rt::testing::{BoxError, Conn, Figures, Harness, Service, Setup, Stopped, GUARD};
use switchboard_rt::{Delivery, Drivable, SocketOptions, SpecConnectError};
use switchboard_std::{kcom, Control, DriverError, DriverThread, Events, Handle, Notice, Running, Session, Settings};

/// The blocking driver under the matrix. It keeps what it started (servers) until dropped.
struct StdTests {
    servers: Mutex<Vec<Box<dyn Send>>>,
}

impl StdTests {
    fn keep(&self, server: impl Send + 'static) {
        self.servers.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(server));
    }
}

/// The driver settings for `setup`, closing with the machine's close command.
fn settings<M: Drivable>(setup: &Setup) -> Settings<M::Command> {
    let mut settings = Settings::new().socket(setup.socket.clone());
    if let Some(n) = setup.commands {
        settings = settings.command_capacity(n);
    }
    if let Some(peer) = setup.peer {
        settings = settings.default_destination(peer);
    }
    settings
}

/// A notice as the matrix sees it: an event, or a refused command (`Err`).
fn delivery<E, X>(notice: Notice<E, X>) -> Option<Result<E, X>> {
    match notice {
        Notice::Event(e) => Some(Ok(e)),
        Notice::Refused(e) => Some(Err(e)),
        // A datagram the system would not send: lost, as datagrams may be.
        Notice::Undeliverable { .. } => None,
    }
}

/// A spawned driver: its handle, its events (one reader at a time), its thread.
struct StdConn<M: Machine> {
    handle: Handle<M::Command>,
    events: Mutex<Option<Events<M::Event, M::Error>>>,
    driver: DriverThread<M::Error>,
}

impl<M: Machine> From<Running<M>> for StdConn<M> {
    fn from(running: Running<M>) -> Self {
        let Running { handle, events, driver } = running;
        StdConn { handle, events: Mutex::new(Some(events)), driver }
    }
}

impl<M: Drivable> Conn<M> for StdConn<M> {
    fn send(&self, command: M::Command) -> Result<(), Stopped> {
        self.handle.send(command).map_err(|_| Stopped)
    }

    fn try_send(&self, command: M::Command) -> Result<(), TrySendError<M::Command>> {
        self.handle.try_send(command).map_err(|e| match e {
            switchboard_std::TrySendError::Full(c) => TrySendError::Full(c),
            switchboard_std::TrySendError::Closed(c) => TrySendError::Closed(c),
        })
    }

    fn recv(&self) -> Option<Delivery<M>> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let events = events.as_ref()?;
        loop {
            match events.recv_timeout(GUARD) {
                Ok(Some(notice)) => match delivery(notice) {
                    Some(d) => return Some(d),
                    None => continue,
                },
                Ok(None) => return None,
                Err(_) => panic!("no event within {GUARD:?}"),
            }
        }
    }

    fn close(&self) {
        self.handle.close();
    }

    fn figures(&self) -> Figures {
        self.handle.stats()
    }

    fn wait(self) -> Result<(), DriverError<M::Error>> {
        let StdConn { handle, events, driver } = self;
        drop(events);
        // The handle outlives the driver: dropping it first would close the connection.
        let result = driver.join();
        drop(handle);
        result
    }

    fn join_with_figures(self) -> (Result<(), DriverError<M::Error>>, Figures) {
        let StdConn { handle, events, driver } = self;
        // An explicit close keeps the handle, so the final figures can be read after the end.
        handle.close();
        drop(events);
        let result = driver.join();
        (result, handle.stats())
    }
}

/// A matrix [`Service`] as a switchboard-std [`Session`].
struct Served<M: Machine>(Service<M>);

impl<M: Drivable, A> Session<M, A> for Served<M> {
    fn on_notice(&mut self, notice: Notice<M::Event, M::Error>, control: &mut Control<M::Command>) {
        if let Some(answer) = delivery(notice).and_then(|d| self.0.reply(d)) {
            control.send(answer);
        }
    }

    fn on_finished(&mut self, _peer: A, result: Result<(), DriverError<M::Error>>) {
        self.0.ended(result);
    }
}

impl Harness for StdTests {
    type Conn<M: Drivable> = StdConn<M>;
    type Listener = TcpListener;
    type Stream = TcpStream;
    type KcomSender = kcom::KcomListener;

    fn start() -> Self {
        StdTests { servers: Mutex::new(Vec::new()) }
    }

    fn listen(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<TcpListener> {
        let listener = switchboard_rt::sockets::tcp_listener(addr, options)?;
        listener.set_nonblocking(false)?;
        Ok(listener)
    }

    fn local_addr(listener: &TcpListener) -> SocketAddr {
        listener.local_addr().expect("a bound listener has an address")
    }

    fn accept(&self, listener: &TcpListener) -> io::Result<TcpStream> {
        listener.accept().map(|(stream, _)| stream)
    }

    fn drive<M: Drivable>(&self, stream: TcpStream, setup: &Setup, machine: M) -> io::Result<StdConn<M>> {
        switchboard_std::spawn(stream, machine, settings::<M>(setup)).map(StdConn::from)
    }

    fn serve<M: Drivable>(
        &self,
        listener: TcpListener,
        setup: &Setup,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    ) {
        let server =
            switchboard_std::serve(listener, settings::<M>(setup), move |_| make(), move |_| Served(service.clone()));
        self.keep(server.expect("the accept thread starts"));
    }

    fn connect<M: Drivable>(&self, addr: SocketAddr, setup: &Setup, machine: M) -> io::Result<StdConn<M>> {
        switchboard_std::connect(addr, machine, settings::<M>(setup)).map(StdConn::from)
    }

    #[cfg(unix)]
    fn serve_unix<M: Drivable>(
        &self,
        path: &Path,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    ) -> io::Result<()> {
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        let settings = settings::<M>(&Setup::new());
        self.keep(switchboard_std::serve(listener, settings, move |_| make(), move |_| Served(service.clone()))?);
        Ok(())
    }

    #[cfg(unix)]
    fn connect_unix<M: Drivable>(&self, path: &Path, machine: M) -> io::Result<StdConn<M>> {
        let stream = std::os::unix::net::UnixStream::connect(path)?;
        switchboard_std::spawn(stream, machine, settings::<M>(&Setup::new())).map(StdConn::from)
    }

    fn drive_udp<M: Drivable>(&self, socket: UdpSocket, setup: &Setup, machine: M) -> io::Result<StdConn<M>> {
        socket.set_nonblocking(false)?;
        switchboard_std::spawn_datagram(socket, machine, settings::<M>(setup)).map(StdConn::from)
    }

    fn serve_spec(
        &self,
        spec: &str,
        service: Service<PacketConnection>,
    ) -> Result<Option<SocketAddr>, SpecConnectError> {
        let server = switchboard_std::serve_spec(spec, move |_| Served(service.clone()))?;
        let addr = server.local_addr().tcp();
        self.keep(server);
        Ok(addr)
    }

    fn connect_spec(&self, spec: &str) -> Result<StdConn<PacketConnection>, SpecConnectError> {
        switchboard_std::connect_spec(spec).map(StdConn::from)
    }

    fn bind_spec(
        &self,
        spec: &str,
        default_to: Option<SocketAddr>,
    ) -> Result<StdConn<PacketDatagram>, SpecConnectError> {
        switchboard_std::bind_spec(spec, default_to).map(StdConn::from)
    }

    fn kcom_bind(&self, options: &KcomOptions) -> Result<kcom::KcomListener, BoxError> {
        Ok(kcom::KcomListener::bind(options)?)
    }

    fn kcom_port(sender: &kcom::KcomListener) -> u16 {
        sender.port()
    }

    fn kcom_send(&self, sender: kcom::KcomListener, msg: &str, data: Bytes) -> Result<(), BoxError> {
        Ok(sender.send(msg, data)?)
    }

    fn kcom_receive(&self, options: &KcomOptions) -> Result<(String, Bytes), BoxError> {
        Ok(kcom::receive(options)?)
    }
}

impl Drop for StdTests {
    fn drop(&mut self) {
        // Servers stop in the order they started, each closing its connections gracefully.
        let servers = std::mem::take(&mut *self.servers.lock().unwrap_or_else(PoisonError::into_inner));
        drop(servers);
    }
}

switchboard_rt::adapter_matrix!(StdTests);
