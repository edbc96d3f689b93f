//! The behaviour matrix: every behaviour test written once, run on every driver — the three
//! async adapters and the blocking `switchboard-std`.
//!
//! The tests are blocking functions over a small facade, [`Harness`]: listen, serve, connect,
//! drive a socket, and a blocking handle on each running machine ([`Conn`]). The facade is
//! implemented once for every async runtime ([`Async`], over an [`Adapter`]) and natively by
//! `switchboard-std` (in its tests). An async adapter crate joins with one [`Adapter`] impl and
//! one macro line in a test file:
//!
//! ```text
//! struct TokioTests;
//! impl switchboard_rt::testing::Adapter for TokioTests {
//!     type Runtime = switchboard_tokio::Tokio;
//!     fn runtime() -> Self::Runtime { switchboard_tokio::Tokio }
//!     fn block_on<F: std::future::Future>(f: F) -> F::Output { /* the runtime's block_on */ }
//! }
//! switchboard_rt::adapter_matrix!(switchboard_rt::testing::Async<TokioTests>);
//! ```
//!
//! A protocol joins with one [`Fixture`] impl (how to make its two ends, send a payload, and
//! recognise one) and one line in [`adapter_matrix!`](crate::adapter_matrix):
//! `$crate::stream_suite!($harness, kcom, $crate::testing::Kcom);` — every driver then runs
//! the echo, backpressure, shutdown and bad-header tests for it. A datagram protocol joins the
//! same way with one [`DatagramFixture`] impl and a `datagram_suite!` / `multicast_suite!` line.
//!
//! Every test is bounded by a generous guard deadline (a hang fails instead of blocking CI);
//! nothing asserts on elapsed time.

use std::future::Future;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use socket2::SockRef;
use switchboard_proto::fault::{Blame, Fault};
use switchboard_proto::stage::{
    self, Command, DatagramCommand, DatagramEvent, Event, FramingConfig, PacketConnection, PacketDatagram,
};
use switchboard_proto::{Input, Machine};

use crate::async_driver::TrySendError;
use crate::kcom::KcomOptions;
use crate::multicast::{self, Interface};
use crate::{
    Commands, Connection, Delivery, Done, Drivable, DriverConfig, DriverError, DriverStats, Events, Listener, Runtime,
    RuntimeExt, SocketOptions, SpecConnectError,
};

// ---------------------------------------------------------------- the facade

/// A hang fails the test instead of blocking: generous, never a timing assertion.
pub const GUARD: Duration = Duration::from_secs(30);

/// An error from a driver's high-level helpers (KCOM), for tests that only need it to say why.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How each driver is set up: socket options, the command channel's size, a datagram peer.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Options applied to the socket (before `connect` where the driver can).
    pub socket: SocketOptions,
    /// Commands the handle may queue before `send` waits (`None`: the driver's default).
    pub commands: Option<usize>,
    /// Datagram drivers: where unaddressed output goes (`None`: to the last sender).
    pub peer: Option<SocketAddr>,
}

impl Setup {
    /// Defaults everywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the socket options.
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// Set the command channel's size.
    pub fn commands(mut self, capacity: usize) -> Self {
        self.commands = Some(capacity);
        self
    }

    /// Set the datagram peer.
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The async drivers' configuration for this setup.
    pub fn driver_config(&self) -> DriverConfig {
        let mut config = DriverConfig::default();
        if let Some(n) = self.commands {
            config = config.with_commands(n);
        }
        if let Some(peer) = self.peer {
            config = config.with_peer(peer);
        }
        config
    }
}

/// A driver's figures, as every driver counts them.
pub type Figures = crate::Stats;

/// The driver stopped before it took the command.
#[derive(Debug)]
pub struct Stopped;

/// A blocking handle on one running machine. Shared by reference between threads (one sends
/// while another receives); dropping it closes the connection gracefully.
pub trait Conn<M: Machine>: Send + Sync + Sized {
    /// Send a command, waiting while the driver holds back.
    fn send(&self, command: M::Command) -> Result<(), Stopped>;
    /// Send a command if there is room now.
    fn try_send(&self, command: M::Command) -> Result<(), TrySendError<M::Command>>;
    /// The next event, or `Err` for a command the machine refused; `None` once the driver has
    /// stopped. Panics if nothing comes within [`GUARD`].
    fn recv(&self) -> Option<Delivery<M>>;
    /// Ask the machine to finish cleanly after every command sent before.
    fn close(&self);
    /// The driver's figures now.
    fn figures(&self) -> Figures;
    /// Wait for the driver to stop by itself (without closing).
    fn wait(self) -> Result<(), DriverError<M::Error>>;
    /// Close gracefully, drop unread events, wait for the result and the final figures.
    fn join_with_figures(self) -> (Result<(), DriverError<M::Error>>, Figures);
    /// Close gracefully, drop unread events, wait for the result.
    fn join(self) -> Result<(), DriverError<M::Error>> {
        self.join_with_figures().0
    }
}

type Reply<M> = dyn Fn(Delivery<M>) -> Option<<M as Machine>::Command> + Send + Sync;
type Ended<M> = dyn Fn(Result<(), DriverError<<M as Machine>::Error>>) + Send + Sync;

/// What a server does with each of its connections: answer each delivery (an event, or a
/// command the machine refused) with at most one command, and hear how the connection ended.
pub struct Service<M: Machine> {
    reply: Arc<Reply<M>>,
    ended: Arc<Ended<M>>,
}

impl<M: Machine> Clone for Service<M> {
    fn clone(&self) -> Self {
        Service { reply: self.reply.clone(), ended: self.ended.clone() }
    }
}

impl<M: Machine> Service<M> {
    /// A service from its two parts.
    pub fn new(
        reply: impl Fn(Delivery<M>) -> Option<M::Command> + Send + Sync + 'static,
        ended: impl Fn(Result<(), DriverError<M::Error>>) + Send + Sync + 'static,
    ) -> Self {
        Service { reply: Arc::new(reply), ended: Arc::new(ended) }
    }

    /// The answer to `delivery`.
    pub fn reply(&self, delivery: Delivery<M>) -> Option<M::Command> {
        (self.reply)(delivery)
    }

    /// A connection ended with `result`.
    pub fn ended(&self, result: Result<(), DriverError<M::Error>>) {
        (self.ended)(result)
    }
}

/// What the tests need from a driver, blocking. Implemented by [`Async`] for every async
/// runtime, and by `switchboard-std` in its tests.
pub trait Harness: Send + Sync + Sized + 'static {
    /// A blocking handle on a running machine.
    type Conn<M: Drivable>: Conn<M>;
    /// A listening TCP socket.
    type Listener: Send + 'static;
    /// An accepted TCP stream, not driven yet.
    type Stream: Send + 'static;
    /// A KCOM5 sender bound to its port and not accepted yet.
    type KcomSender: Send + 'static;

    /// A fresh harness for one test; dropping it stops what it started (servers included).
    fn start() -> Self;

    /// A TCP listener on `addr`, `options` applied before it binds.
    fn listen(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<Self::Listener>;
    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> SocketAddr;
    /// Accept one connection, without driving it.
    fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Stream>;
    /// Drive `machine` over an accepted stream.
    fn drive<M: Drivable>(&self, stream: Self::Stream, setup: &Setup, machine: M) -> io::Result<Self::Conn<M>>;
    /// Serve every connection `listener` accepts (until the harness is dropped) with a fresh
    /// machine from `make` and `service`; `setup` applies to each accepted socket.
    fn serve<M: Drivable>(
        &self,
        listener: Self::Listener,
        setup: &Setup,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    );
    /// Connect over TCP to `addr` and drive `machine`.
    fn connect<M: Drivable>(&self, addr: SocketAddr, setup: &Setup, machine: M) -> io::Result<Self::Conn<M>>;

    /// Listen at the Unix socket `path` (which must not exist) and serve as [`serve`](Self::serve).
    #[cfg(unix)]
    fn serve_unix<M: Drivable>(
        &self,
        path: &Path,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    ) -> io::Result<()>;
    /// Connect to the Unix socket `path` and drive `machine`.
    #[cfg(unix)]
    fn connect_unix<M: Drivable>(&self, path: &Path, machine: M) -> io::Result<Self::Conn<M>>;

    /// Drive `machine` over a bound UDP socket (blocking or not: the harness sets the mode).
    fn drive_udp<M: Drivable>(
        &self,
        socket: std::net::UdpSocket,
        setup: &Setup,
        machine: M,
    ) -> io::Result<Self::Conn<M>>;

    /// Serve a `tcp://` or `unix://` connection spec; the TCP address bound, if TCP.
    fn serve_spec(
        &self,
        spec: &str,
        service: Service<PacketConnection>,
    ) -> Result<Option<SocketAddr>, SpecConnectError>;
    /// Connect to a connection spec.
    fn connect_spec(&self, spec: &str) -> Result<Self::Conn<PacketConnection>, SpecConnectError>;
    /// Bind a `udp://` connection spec; plain sends go to `default_to`.
    fn bind_spec(
        &self,
        spec: &str,
        default_to: Option<SocketAddr>,
    ) -> Result<Self::Conn<PacketDatagram>, SpecConnectError>;

    /// Bind a KCOM5 sender (the originals' server) as `options` say.
    fn kcom_bind(&self, options: &KcomOptions) -> Result<Self::KcomSender, BoxError>;
    /// The port a KCOM5 sender is bound to.
    fn kcom_port(sender: &Self::KcomSender) -> u16;
    /// Accept one receiver and send it `msg` and `data`.
    fn kcom_send(&self, sender: Self::KcomSender, msg: &str, data: Bytes) -> Result<(), BoxError>;
    /// Connect to a KCOM5 sender and receive its message and data.
    fn kcom_receive(&self, options: &KcomOptions) -> Result<(String, Bytes), BoxError>;
}

// ---------------------------------------------------------------- the facade on async runtimes

/// A runtime under test: the [`Runtime`] and how to run a future to completion on it.
pub trait Adapter: 'static {
    /// The runtime.
    type Runtime: Runtime;
    /// A handle to it.
    fn runtime() -> Self::Runtime;
    /// Run `future` (and the tasks it spawns) until it completes.
    fn block_on<F: Future>(future: F) -> F::Output;
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The [`Harness`] of an async runtime: the runtime runs on a thread of its own (inside
/// [`Adapter::block_on`]), the test's blocking calls hand it futures and wait for their output.
pub struct Async<A: Adapter> {
    rt: A::Runtime,
    jobs: Option<async_channel::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    _adapter: PhantomData<fn() -> A>,
}

impl<A: Adapter> Async<A> {
    /// Spawn `future` on the runtime.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let jobs = self.jobs.as_ref().expect("the runtime thread runs until the harness is dropped");
        jobs.send_blocking(Box::pin(future)).expect("the runtime thread is running");
    }

    /// Run `future` on the runtime (where sockets register and tasks spawn) and wait for it.
    fn call<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(future.await);
        });
        match rx.recv_timeout(GUARD) {
            Ok(v) => v,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("a runtime call did not finish within {GUARD:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a runtime call panicked"),
        }
    }
}

impl<A: Adapter> Drop for Async<A> {
    fn drop(&mut self) {
        // The runtime thread's loop ends with the channel; its runtime stops with it.
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wakes a thread parked in [`block_here`].
struct Unpark {
    thread: thread::Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Poll `future` on this thread until it is ready (channel futures need no runtime), failing
/// after [`GUARD`].
fn block_here<F: Future>(future: F) -> F::Output {
    let unpark = Arc::new(Unpark { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = StdInstant::now() + GUARD;
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        while !unpark.woken.swap(false, Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(StdInstant::now());
            assert!(!left.is_zero(), "waited {GUARD:?} for a driver");
            thread::park_timeout(left);
        }
    }
}

/// A connection of an async driver, taken apart so each piece can be used from any thread.
pub struct AsyncConn<M: Drivable> {
    commands: Option<Commands<M>>,
    events: Option<Events<M>>,
    done: Done<M>,
    stats: Arc<DriverStats>,
}

impl<M: Drivable> AsyncConn<M> {
    fn new(conn: Connection<M>) -> Self {
        let stats = conn.stats().clone();
        let (commands, events, done) = conn.split();
        AsyncConn { commands: Some(commands), events: Some(events), done, stats }
    }

    fn commands(&self) -> &Commands<M> {
        self.commands.as_ref().expect("taken only when the connection is consumed")
    }
}

impl<M: Drivable> Conn<M> for AsyncConn<M> {
    fn send(&self, command: M::Command) -> Result<(), Stopped> {
        block_here(self.commands().send(command)).map_err(|_| Stopped)
    }
    fn try_send(&self, command: M::Command) -> Result<(), TrySendError<M::Command>> {
        self.commands().try_send(command)
    }
    fn recv(&self) -> Option<Delivery<M>> {
        block_here(self.events.as_ref()?.recv())
    }
    fn close(&self) {
        let _ = self.commands().close();
    }
    fn figures(&self) -> Figures {
        self.stats.snapshot()
    }
    fn wait(mut self) -> Result<(), DriverError<M::Error>> {
        // Keep the commands: dropping the last sender would close the connection.
        let _commands = self.commands.take();
        drop(self.events.take());
        block_here(self.done.wait())
    }
    fn join_with_figures(mut self) -> (Result<(), DriverError<M::Error>>, Figures) {
        drop(self.commands.take());
        drop(self.events.take());
        let result = block_here(self.done.wait());
        (result, self.stats.snapshot())
    }
}

/// Run one served connection: answer every delivery, then report how it ended.
async fn serve_connection<M: Drivable>(service: Service<M>, conn: Connection<M>) {
    while let Some(delivery) = conn.recv().await {
        if let Some(answer) = service.reply(delivery) {
            if conn.send(answer).await.is_err() {
                break;
            }
        }
    }
    service.ended(conn.join().await);
}

impl<A: Adapter> Harness for Async<A> {
    type Conn<M: Drivable> = AsyncConn<M>;
    type Listener = Arc<<A::Runtime as Runtime>::TcpListener>;
    type Stream = <A::Runtime as Runtime>::Tcp;
    type KcomSender = crate::kcom::KcomListener<A::Runtime>;

    fn start() -> Self {
        let (tx, rx) = async_channel::unbounded::<Job>();
        let rt = A::runtime();
        let thread = {
            let rt = rt.clone();
            thread::Builder::new()
                .name("matrix-runtime".into())
                .spawn(move || {
                    A::block_on(async move {
                        while let Ok(job) = rx.recv().await {
                            rt.spawn(job);
                        }
                    })
                })
                .expect("a thread for the runtime")
        };
        Async { rt, jobs: Some(tx), thread: Some(thread), _adapter: PhantomData }
    }

    fn listen(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<Self::Listener> {
        let (rt, options) = (self.rt.clone(), options.clone());
        self.call(async move { rt.listen_with(addr, &options) }).map(Arc::new)
    }

    fn local_addr(listener: &Self::Listener) -> SocketAddr {
        listener.local_addr().expect("a bound listener has an address")
    }

    fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Stream> {
        let listener = listener.clone();
        self.call(async move { listener.accept().await.map(|(stream, _)| stream) })
    }

    fn drive<M: Drivable>(&self, stream: Self::Stream, setup: &Setup, machine: M) -> io::Result<Self::Conn<M>> {
        let (rt, setup) = (self.rt.clone(), setup.clone());
        self.call(async move {
            setup.socket.apply(&*crate::SocketRef::socket_ref(&stream))?;
            Ok(AsyncConn::new(rt.drive(machine, stream, &setup.driver_config())))
        })
    }

    fn serve<M: Drivable>(
        &self,
        listener: Self::Listener,
        setup: &Setup,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    ) {
        let (rt, setup) = (self.rt.clone(), setup.clone());
        let listener = Arc::into_inner(listener).expect("a listener is served or accepted from, not both");
        self.spawn(async move {
            let config = setup.driver_config();
            let handler = move |conn| serve_connection(service.clone(), conn);
            let _ = rt.serve_with(listener, setup.socket, config, move |_| make(), handler).await;
        });
    }

    fn connect<M: Drivable>(&self, addr: SocketAddr, setup: &Setup, machine: M) -> io::Result<Self::Conn<M>> {
        let (rt, setup) = (self.rt.clone(), setup.clone());
        self.call(async move {
            let config = setup.driver_config();
            rt.connect_with(addr, setup.socket, config, machine).await.map(AsyncConn::new)
        })
    }

    #[cfg(unix)]
    fn serve_unix<M: Drivable>(
        &self,
        path: &Path,
        make: impl Fn() -> M + Send + Sync + 'static,
        service: Service<M>,
    ) -> io::Result<()> {
        let (rt, path) = (self.rt.clone(), path.to_path_buf());
        let listener = self.call(async move { rt.listen_unix(path) })?;
        let rt = self.rt.clone();
        self.spawn(async move {
            let handler = move |conn| serve_connection(service.clone(), conn);
            let _ = rt.serve(listener, move |_| make(), handler).await;
        });
        Ok(())
    }

    #[cfg(unix)]
    fn connect_unix<M: Drivable>(&self, path: &Path, machine: M) -> io::Result<Self::Conn<M>> {
        let (rt, path) = (self.rt.clone(), path.to_path_buf());
        self.call(async move { rt.connect_unix(path, DriverConfig::default(), machine).await.map(AsyncConn::new) })
    }

    fn drive_udp<M: Drivable>(
        &self,
        socket: std::net::UdpSocket,
        setup: &Setup,
        machine: M,
    ) -> io::Result<Self::Conn<M>> {
        let (rt, config) = (self.rt.clone(), setup.driver_config());
        socket.set_nonblocking(true)?;
        self.call(async move { Ok(AsyncConn::new(rt.drive_datagram(machine, rt.udp(socket)?, &config))) })
    }

    fn serve_spec(
        &self,
        spec: &str,
        service: Service<PacketConnection>,
    ) -> Result<Option<SocketAddr>, SpecConnectError> {
        let (rt, spec) = (self.rt.clone(), spec.to_string());
        let listener = self.call(async move { rt.listen_spec(&spec) })?;
        let addr = listener.local_addr().ok();
        self.spawn(async move {
            let _ = listener.serve(move |conn| serve_connection(service.clone(), conn)).await;
        });
        Ok(addr)
    }

    fn connect_spec(&self, spec: &str) -> Result<Self::Conn<PacketConnection>, SpecConnectError> {
        let (rt, spec) = (self.rt.clone(), spec.to_string());
        self.call(async move { rt.connect_spec(&spec).await.map(AsyncConn::new) })
    }

    fn bind_spec(
        &self,
        spec: &str,
        default_to: Option<SocketAddr>,
    ) -> Result<Self::Conn<PacketDatagram>, SpecConnectError> {
        let (rt, spec) = (self.rt.clone(), spec.to_string());
        self.call(async move { rt.bind_spec(&spec, default_to).map(AsyncConn::new) })
    }

    fn kcom_bind(&self, options: &KcomOptions) -> Result<Self::KcomSender, BoxError> {
        let (rt, options) = (self.rt.clone(), options.clone());
        Ok(self.call(async move { crate::kcom::KcomListener::bind(&rt, &options) })?)
    }

    fn kcom_port(sender: &Self::KcomSender) -> u16 {
        sender.port()
    }

    fn kcom_send(&self, sender: Self::KcomSender, msg: &str, data: Bytes) -> Result<(), BoxError> {
        let msg = msg.to_string();
        Ok(self.call(async move { sender.send(&msg, data).await })?)
    }

    fn kcom_receive(&self, options: &KcomOptions) -> Result<(String, Bytes), BoxError> {
        let (rt, options) = (self.rt.clone(), options.clone());
        Ok(self.call(async move { crate::kcom::receive(&rt, &options).await })?)
    }
}

type Cmd<M> = <M as Machine>::Command;
type Ev<M> = <M as Machine>::Event;

/// A protocol under test: its two ends and how payloads travel over it.
pub trait Fixture: 'static {
    /// The connecting end.
    type Client: Drivable;
    /// The accepting end.
    type Server: Drivable;
    /// A fresh client machine.
    fn client() -> Self::Client;
    /// A fresh server machine.
    fn server() -> Self::Server;
    /// The client command that sends `payload` as one message.
    fn client_send(payload: Bytes) -> Cmd<Self::Client>;
    /// The payload of a message the client received, if the event is one.
    fn client_received(event: Ev<Self::Client>) -> Option<Bytes>;
    /// The server command that sends `payload` as one message.
    fn server_send(payload: Bytes) -> Cmd<Self::Server>;
    /// The payload of a message the server received, if the event is one.
    fn server_received(event: Ev<Self::Server>) -> Option<Bytes>;
    /// Bytes on the wire for one message of `payload_len` bytes.
    fn wire_len(payload_len: usize) -> usize;
    /// Bytes a client could send that break the protocol at the first header.
    fn bad_header() -> &'static [u8];
    /// Whether `error` is the server's answer to [`bad_header`](Self::bad_header).
    fn is_bad_header(error: &<Self::Server as Machine>::Error) -> bool;
}

/// STAGE packet framing (`PacketConnection`, `packet=65536,0`) at both ends.
pub struct StagePacket;

impl Fixture for StagePacket {
    type Client = PacketConnection;
    type Server = PacketConnection;
    fn client() -> PacketConnection {
        PacketConnection::new(FramingConfig::packet(65_536, 0))
    }
    fn server() -> PacketConnection {
        Self::client()
    }
    fn client_send(payload: Bytes) -> Command {
        Command::SendBody(payload)
    }
    fn client_received(event: Event) -> Option<Bytes> {
        let Event::Frame(frame) = event;
        Some(frame.slice(stage::HEADER_LEN..))
    }
    fn server_send(payload: Bytes) -> Command {
        Command::SendBody(payload)
    }
    fn server_received(event: Event) -> Option<Bytes> {
        Self::client_received(event)
    }
    fn wire_len(payload_len: usize) -> usize {
        payload_len + stage::HEADER_LEN
    }
    fn bad_header() -> &'static [u8] {
        b"\x02\x00\x00\x00"
    }
    fn is_bad_header(error: &stage::Error) -> bool {
        matches!(error, stage::Error::LengthTooShort { len: 2 })
    }
}

/// A datagram protocol under test: one endpoint machine per socket, messages addressed to and
/// from socket addresses.
pub trait DatagramFixture: 'static {
    /// The endpoint.
    type Endpoint: Drivable;
    /// A fresh endpoint whose plain sends go to `default_to`.
    fn endpoint(default_to: Option<SocketAddr>) -> Self::Endpoint;
    /// The command that sends `payload` as one message to the endpoint's default destination.
    fn send(payload: Bytes) -> Cmd<Self::Endpoint>;
    /// The sender and payload of a message received, if the event is one.
    fn received(event: Ev<Self::Endpoint>) -> Option<(SocketAddr, Bytes)>;
    /// The echo server's answer to `event`: the same message back to whoever sent it.
    fn echo(event: Ev<Self::Endpoint>) -> Option<Cmd<Self::Endpoint>>;
}

/// STAGE packet frames over UDP (`PacketDatagram`, `packet=65536,0`): one frame per datagram.
impl DatagramFixture for StagePacket {
    type Endpoint = PacketDatagram;
    fn endpoint(default_to: Option<SocketAddr>) -> PacketDatagram {
        PacketDatagram::new(FramingConfig::packet(65_536, 0), default_to)
    }
    fn send(payload: Bytes) -> DatagramCommand {
        DatagramCommand::SendBody(payload)
    }
    fn received(event: DatagramEvent) -> Option<(SocketAddr, Bytes)> {
        match event {
            DatagramEvent::Frame { from, frame } => Some((from, frame.slice(stage::HEADER_LEN..))),
            DatagramEvent::Dropped { .. } => None,
        }
    }
    fn echo(event: DatagramEvent) -> Option<DatagramCommand> {
        match event {
            DatagramEvent::Frame { from, frame } => Some(DatagramCommand::SendTo(from, frame)),
            DatagramEvent::Dropped { .. } => None,
        }
    }
}

/// Every matrix test for driver `$harness`. One line per protocol and suite.
#[macro_export]
macro_rules! adapter_matrix {
    ($harness:ty) => {
        $crate::stream_suite!($harness, stage_packet, $crate::testing::StagePacket);
        $crate::datagram_suite!($harness, stage_packet_udp, $crate::testing::StagePacket);
        $crate::stage_suite!($harness);
        $crate::driver_suite!($harness);
        $crate::multicast_suite!($harness, stage_packet_multicast, $crate::testing::StagePacket);
        $crate::cipher_suite!($harness, crypto_aes_cfb, $crate::testing::AesCfb);
        $crate::cipher_suite!($harness, crypto_rijndael_cbc, $crate::testing::RijndaelCbc);
        $crate::cipher_suite!($harness, crypto_seed_cbc, $crate::testing::SeedCbc);
        $crate::cipher_suite!($harness, crypto_des_cfb, $crate::testing::DesCfb);
        $crate::cipher_suite!($harness, crypto_sealed_gcm, $crate::testing::SealedGcm);
        $crate::protocol_suite!($harness);
    };
}

/// The encrypted BSON exchange with cipher `$cipher` on driver `$harness`, over TCP, Unix and
/// UDP sockets opened from connection specs.
#[doc(hidden)]
#[macro_export]
macro_rules! cipher_suite {
    ($harness:ty, $name:ident, $cipher:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn bson_echo_tcp() {
                $crate::testing::encrypted_bson_tcp::<$harness, $cipher>()
            }
            #[cfg(unix)]
            #[test]
            fn bson_echo_unix() {
                $crate::testing::encrypted_bson_unix::<$harness, $cipher>()
            }
            #[test]
            fn bson_echo_udp() {
                $crate::testing::encrypted_bson_udp::<$harness, $cipher>()
            }
        }
    };
}

/// Protocols with their own shape of test: typed request/response, KCOM5 (both roles, against
/// ourselves and the independent Python peer), spec errors.
#[doc(hidden)]
#[macro_export]
macro_rules! protocol_suite {
    ($harness:ty) => {
        mod protocols {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn message_request_response() {
                $crate::testing::message_request_response::<$harness>()
            }
            #[test]
            fn spec_errors_name_the_bad_part() {
                $crate::testing::spec_errors::<$harness>()
            }
            #[test]
            fn kcom_send_to_own_receiver() {
                $crate::testing::kcom_own_ends::<$harness>()
            }
            #[test]
            fn kcom_send_to_python_receiver() {
                $crate::testing::kcom_to_python::<$harness>()
            }
            #[test]
            fn kcom_receive_from_python_sender() {
                $crate::testing::kcom_from_python::<$harness>()
            }
        }
    };
}

/// The stream tests of protocol `$fixture` on driver `$harness`, in module `$name`.
#[doc(hidden)]
#[macro_export]
macro_rules! stream_suite {
    ($harness:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn echo_tcp() {
                $crate::testing::echo_tcp::<$harness, $fixture>()
            }
            #[cfg(unix)]
            #[test]
            fn echo_unix() {
                $crate::testing::echo_unix::<$harness, $fixture>()
            }
            #[test]
            fn full_duplex_bulk_echo_does_not_deadlock() {
                $crate::testing::full_duplex::<$harness, $fixture>()
            }
            #[test]
            fn backpressure_with_a_peer_that_stops_reading() {
                $crate::testing::backpressure::<$harness, $fixture>()
            }
            #[test]
            fn close_writes_everything_in_flight() {
                $crate::testing::shutdown_in_flight::<$harness, $fixture>(false)
            }
            #[test]
            fn dropping_the_handle_writes_everything_in_flight() {
                $crate::testing::shutdown_in_flight::<$harness, $fixture>(true)
            }
            #[test]
            fn bad_header_closes_only_that_connection() {
                $crate::testing::bad_header::<$harness, $fixture>()
            }
        }
    };
}

/// The datagram tests of protocol `$fixture` on driver `$harness`.
#[doc(hidden)]
#[macro_export]
macro_rules! datagram_suite {
    ($harness:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn echo_udp() {
                $crate::testing::echo_udp::<$harness, $fixture>()
            }
        }
    };
}

/// The multicast tests of protocol `$fixture` on driver `$harness`.
#[doc(hidden)]
#[macro_export]
macro_rules! multicast_suite {
    ($harness:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn ipv4_group_reaches_two_receivers() {
                $crate::testing::multicast::<$harness, $fixture>(false)
            }
            #[test]
            fn ipv6_group_reaches_two_receivers() {
                $crate::testing::multicast::<$harness, $fixture>(true)
            }
        }
    };
}

/// Tests of the datagram driver's addressing (`Input::Datagram` / `Output::TransmitTo`).
#[doc(hidden)]
#[macro_export]
macro_rules! driver_suite {
    ($harness:ty) => {
        mod datagram_addressing {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn transmit_to_reaches_the_named_peer_and_from_names_the_sender() {
                $crate::testing::transmit_to::<$harness>()
            }
            #[test]
            fn stream_output_goes_to_the_peer_or_the_last_sender() {
                $crate::testing::transmit_fallback::<$harness>()
            }
            #[test]
            fn stream_output_without_a_peer_is_a_typed_error() {
                $crate::testing::datagram_without_peer::<$harness>()
            }
            #[test]
            fn each_unaddressed_transmit_is_one_datagram() {
                $crate::testing::transmit_each_one_datagram::<$harness>()
            }
            #[test]
            fn an_addressed_datagram_on_a_stream_is_the_callers_error() {
                $crate::testing::datagram_on_a_stream::<$harness>()
            }
        }
    };
}

/// Tests of STAGE connection features (timers, coalescing, refusals) on driver `$harness`.
#[doc(hidden)]
#[macro_export]
macro_rules! stage_suite {
    ($harness:ty) => {
        mod stage_features {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn expire_timer_closes_an_idle_connection() {
                $crate::testing::stage_expire::<$harness>()
            }
            #[test]
            fn commit_timer_coalesces_frames_into_one_write() {
                $crate::testing::stage_commit_coalescing::<$harness>()
            }
            #[test]
            fn refused_command_comes_back_and_the_connection_goes_on() {
                $crate::testing::stage_refused_command::<$harness>()
            }
            #[test]
            fn frames_before_the_peers_eof_are_answered() {
                $crate::testing::stage_answers_before_the_end::<$harness>($crate::testing::PeerEnd::Eof)
            }
            #[test]
            fn frames_before_a_truncating_eof_are_answered() {
                $crate::testing::stage_answers_before_the_end::<$harness>($crate::testing::PeerEnd::TruncatingEof)
            }
            #[test]
            fn frames_before_a_bad_header_in_the_same_read_are_answered() {
                $crate::testing::stage_answers_before_the_end::<$harness>($crate::testing::PeerEnd::BadHeader)
            }
        }
    };
}

// ---------------------------------------------------------------- helpers

/// Run `body` with a fresh harness `H` on a thread of its own, failing if it has not finished
/// (harness dropped, servers stopped) a little after [`GUARD`]; the blocking calls inside have
/// their own guards, so a hang usually fails there first, with a better message.
fn run<H: Harness>(body: impl FnOnce(&H) + Send + 'static) {
    let (tx, rx) = mpsc::channel::<()>();
    let test = thread::Builder::new()
        .name("matrix-test".into())
        .spawn(move || {
            let harness = H::start();
            body(&harness);
            drop(harness);
            let _ = tx.send(());
        })
        .expect("a thread for the test");
    match rx.recv_timeout(GUARD + Duration::from_secs(15)) {
        Ok(()) => test.join().expect("the test thread finished"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match test.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread reports before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish within {GUARD:?}"),
    }
}

/// Message `i`: `len` bytes anyone can recompute.
pub fn payload(i: usize, len: usize) -> Bytes {
    (0..len).map(|j| (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7)) % 251) as u8).collect::<Vec<u8>>().into()
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A plain peer's read until the end of stream (a reset counts as the end).
fn read_to_end(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A plain TCP peer of the driver under test: accepted from a std listener, reads bounded by
/// the guard so a driver that never writes fails the test instead of hanging it.
fn plain_peer(listener: &std::net::TcpListener) -> std::net::TcpStream {
    let (peer, _) = listener.accept().expect("the driver connected");
    peer.set_read_timeout(Some(GUARD)).unwrap();
    peer
}

type EndedRx<E> = mpsc::Receiver<Result<(), DriverError<E>>>;

/// A service answering each delivery with `reply`, and a channel of how its connections ended.
fn service<M: Drivable>(
    reply: impl Fn(Delivery<M>) -> Option<M::Command> + Send + Sync + 'static,
) -> (Service<M>, EndedRx<M::Error>) {
    let (tx, rx) = mpsc::channel();
    let service = Service::new(reply, move |result| {
        let _ = tx.send(result);
    });
    (service, rx)
}

/// The echo server of protocol `P`: every message goes back as it came.
fn echo_service<P: Fixture>() -> (Service<P::Server>, EndedRx<<P::Server as Machine>::Error>) {
    service(|delivery: Delivery<P::Server>| delivery.ok().and_then(P::server_received).map(P::server_send))
}

/// The next server connection's end, which must be clean.
fn ended_cleanly<E: std::error::Error>(ended: &EndedRx<E>) {
    let result = ended.recv_timeout(GUARD).expect("the server connection ended");
    result.expect("server connection failed");
}

/// Send `count` messages (lengths cycling below `max_len`) while receiving their echoes,
/// and check every echo, in order.
fn exchange<H: Harness, P: Fixture>(conn: &H::Conn<P::Client>, first: usize, count: usize, max_len: usize) {
    let len = |i: usize| (i * 977) % max_len;
    thread::scope(|s| {
        s.spawn(|| {
            for i in first..first + count {
                conn.send(P::client_send(payload(i, len(i)))).expect("driver stopped while sending");
            }
        });
        let mut i = first;
        while i < first + count {
            let delivery = conn.recv().expect("connection ended before every echo came back");
            let event = delivery.unwrap_or_else(|e| panic!("command refused: {e}"));
            if let Some(got) = P::client_received(event) {
                assert_eq!(got, payload(i, len(i)), "echo {i} differs");
                i += 1;
            }
        }
    });
}

fn unix_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("switchboard-{}-{n}.sock", std::process::id()))
}

// ---------------------------------------------------------------- stream suite

/// Echo over TCP on loopback through the driver's server.
pub fn echo_tcp<H: Harness, P: Fixture>() {
    run::<H>(|h| {
        let listener = h.listen(localhost(), &SocketOptions::new()).unwrap();
        let addr = H::local_addr(&listener);
        let (service, ended) = echo_service::<P>();
        h.serve(listener, &Setup::new(), P::server, service);
        let conn = h.connect(addr, &Setup::new(), P::client()).unwrap();
        exchange::<H, P>(&conn, 0, 200, 3000);
        conn.join().unwrap();
        ended_cleanly(&ended);
    })
}

/// Echo over a Unix socket through the driver's server.
#[cfg(unix)]
pub fn echo_unix<H: Harness, P: Fixture>() {
    run::<H>(|h| {
        let path = unix_path();
        let _ = std::fs::remove_file(&path);
        let (service, ended) = echo_service::<P>();
        h.serve_unix(&path, P::server, service).unwrap();
        let conn = h.connect_unix(&path, P::client()).unwrap();
        exchange::<H, P>(&conn, 0, 200, 3000);
        conn.join().unwrap();
        ended_cleanly(&ended);
        let _ = std::fs::remove_file(&path);
    })
}

/// Both ends stream at once through small kernel buffers (each side's queue over budget at
/// times): an application that keeps receiving while it sends must never deadlock.
pub fn full_duplex<H: Harness, P: Fixture>() {
    run::<H>(|h| {
        let small = SocketOptions::new().send_buffer(32 * 1024).recv_buffer(32 * 1024);
        let listener = h.listen(localhost(), &small).unwrap();
        let addr = H::local_addr(&listener);
        let (service, ended) = echo_service::<P>();
        h.serve(listener, &Setup::new().socket(small.clone()), P::server, service);
        let conn = h.connect(addr, &Setup::new().socket(small), P::client()).unwrap();
        exchange::<H, P>(&conn, 0, 1000, 32_000);
        conn.join().unwrap();
        ended_cleanly(&ended);
    })
}

/// A peer that stops reading: the client's write queue stays within budget + one message,
/// the driver pauses, and the sender is told to wait; once the peer reads, everything arrives.
pub fn backpressure<H: Harness, P: Fixture>() {
    run::<H>(|h| {
        // Small kernel buffers so the driver's own queue, not the kernel's, takes the load.
        let listener = h.listen(localhost(), &SocketOptions::new().recv_buffer(4096)).unwrap();
        let addr = H::local_addr(&listener);
        let setup = Setup::new().socket(SocketOptions::new().send_buffer(4096)).commands(4);
        let conn = h.connect(addr, &setup, P::client()).unwrap();
        let peer = h.accept(&listener).unwrap();

        let len = 8192;
        let bound = P::client().write_budget() + P::wire_len(len);
        let mut sent = 0;
        let mut next = P::client_send(payload(0, len));
        loop {
            assert!(sent < 10_000, "backpressure never engaged after {sent} messages");
            match conn.try_send(next) {
                Ok(()) => {
                    sent += 1;
                    next = P::client_send(payload(sent, len));
                }
                Err(TrySendError::Full(back)) => {
                    next = back;
                    if conn.figures().paused {
                        break; // the channel is full and the driver holds back: told to wait
                    }
                    // Polling a figure the driver updates as it goes; nothing to wait on.
                    thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Closed(_)) => panic!("driver stopped"),
            }
        }
        let figures = conn.figures();
        assert!(figures.queued > 0, "paused with nothing queued");
        assert!(figures.max_queued <= bound, "queue reached {} > budget + one message = {bound}", figures.max_queued);

        // The peer starts reading: everything accepted arrives, in order.
        let server = h.drive(peer, &Setup::new(), P::server()).unwrap();
        let (client, got) = thread::scope(|s| {
            let client = s.spawn(move || {
                conn.send(next).unwrap();
                conn.join_with_figures()
            });
            let mut got = 0;
            while let Some(delivery) = server.recv() {
                if let Some(p) = delivery.ok().and_then(P::server_received) {
                    assert_eq!(p, payload(got, len), "message {got} differs");
                    got += 1;
                }
            }
            (client.join().unwrap(), got)
        });
        let (result, figures) = client;
        result.unwrap();
        assert_eq!(got, sent + 1);
        assert!(figures.max_queued <= bound, "queue reached {} > {bound}", figures.max_queued);
        server.join().unwrap();
    })
}

/// Close (or drop the handle) with far more queued than the socket takes at once: the peer
/// still receives every message, in order, then a clean end of stream.
pub fn shutdown_in_flight<H: Harness, P: Fixture>(drop_handle: bool) {
    run::<H>(move |h| {
        // Small kernel buffers: at the close, most of the data is still in the driver's queue.
        let listener = h.listen(localhost(), &SocketOptions::new().recv_buffer(4096)).unwrap();
        let addr = H::local_addr(&listener);
        let setup = Setup::new().socket(SocketOptions::new().send_buffer(4096));
        let conn = h.connect(addr, &setup, P::client()).unwrap();
        let peer = h.accept(&listener).unwrap();
        let server = h.drive(peer, &Setup::new(), P::server()).unwrap();
        let (count, len) = (64, 16 * 1024);
        let got = thread::scope(|s| {
            s.spawn(move || {
                for i in 0..count {
                    conn.send(P::client_send(payload(i, len))).unwrap();
                }
                if drop_handle {
                    drop(conn);
                } else {
                    conn.close();
                    conn.join().unwrap();
                }
            });
            let mut got = 0;
            while let Some(delivery) = server.recv() {
                if let Some(p) = delivery.ok().and_then(P::server_received) {
                    assert_eq!(p, payload(got, len), "message {got} differs");
                    got += 1;
                }
            }
            got
        });
        assert_eq!(got, count, "messages lost in shutdown");
        server.join().expect("the peer saw an unclean end");
    })
}

/// A client sending a bad header ends only its own connection, with the typed peer error;
/// another client on the same server carries on.
pub fn bad_header<H: Harness, P: Fixture>() {
    use std::io::Write;
    run::<H>(|h| {
        let listener = h.listen(localhost(), &SocketOptions::new()).unwrap();
        let addr = H::local_addr(&listener);
        let (service, ended) = echo_service::<P>();
        h.serve(listener, &Setup::new(), P::server, service);

        let good = h.connect(addr, &Setup::new(), P::client()).unwrap();
        exchange::<H, P>(&good, 0, 3, 100);

        let mut bad = std::net::TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(GUARD)).unwrap();
        bad.write_all(P::bad_header()).unwrap();
        read_to_end(&mut bad).unwrap(); // the server closes this one
        drop(bad);
        match ended.recv_timeout(GUARD).unwrap() {
            Err(DriverError::Machine(e)) => {
                assert!(P::is_bad_header(&e), "unexpected error: {e}");
                assert_eq!(e.fault(), Fault::Peer);
            }
            other => panic!("expected the bad header's protocol error, got {other:?}"),
        }

        exchange::<H, P>(&good, 3, 3, 100);
        good.join().unwrap();
        assert!(ended.recv_timeout(GUARD).unwrap().is_ok(), "the good connection ended badly");
    })
}

// ---------------------------------------------------------------- datagram suite

fn udp_socket() -> std::net::UdpSocket {
    crate::sockets::udp_socket("127.0.0.1:0", &SocketOptions::new()).unwrap()
}

/// Echo over UDP on loopback: the server answers whoever sent, the client sends to its default
/// destination (the server).
pub fn echo_udp<H: Harness, P: DatagramFixture>() {
    run::<H>(|h| {
        let server_socket = udp_socket();
        let server_addr = server_socket.local_addr().unwrap();
        let server = h.drive_udp(server_socket, &Setup::new(), P::endpoint(None)).unwrap();
        let client = h.drive_udp(udp_socket(), &Setup::new(), P::endpoint(Some(server_addr))).unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                while let Some(delivery) = server.recv() {
                    if let Some(answer) = delivery.ok().and_then(P::echo) {
                        if server.send(answer).is_err() {
                            break;
                        }
                    }
                }
            });
            // One at a time: a datagram test must not depend on socket buffers never overflowing.
            for i in 0..50 {
                let sent = payload(i, (i * 977) % 1200);
                client.send(P::send(sent.clone())).expect("driver stopped while sending");
                let echo = loop {
                    let delivery = client.recv().expect("endpoint ended before the echo came back");
                    let event = delivery.unwrap_or_else(|e| panic!("command refused: {e}"));
                    if let Some(echo) = P::received(event) {
                        break echo;
                    }
                };
                assert_eq!(echo, (server_addr, sent), "echo {i} differs");
            }
            client.join().unwrap();
            server.close();
        });
        server.join().unwrap();
    })
}

/// A sender and two receivers of one multicast group on loopback.
pub fn multicast<H: Harness, P: DatagramFixture>(ipv6: bool) {
    let (group, iface): (IpAddr, Interface) = if ipv6 {
        let Some(lo) = loopback_index() else {
            println!("skipped: no loopback interface index to join an IPv6 group on");
            return;
        };
        (Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0x5b, (std::process::id() % 0xffff) as u16).into(), Interface::Index(lo))
    } else {
        (Ipv4Addr::new(239, 255, 91, (std::process::id() % 250) as u8 + 1).into(), Interface::V4(Ipv4Addr::LOCALHOST))
    };
    let options = SocketOptions::new();
    let sockets = (|| {
        let first = multicast::receiver(group, 0, iface, &options)?;
        let port = first.local_addr()?.port();
        let second = multicast::receiver(group, port, iface, &options)?;
        let sender = multicast::sender(ipv6, iface, &options)?;
        probe(&sender, SocketAddr::new(group, port), [&first, &second])?;
        Ok::<_, io::Error>((first, second, sender, port))
    })();
    let (first, second, sender, port) = match sockets {
        Ok(s) => s,
        Err(e) => {
            println!("skipped: the kernel refuses {} multicast on loopback: {e}", if ipv6 { "IPv6" } else { "IPv4" });
            return;
        }
    };
    let to = SocketAddr::new(group, port);
    // Another descriptor of the first receiver's socket, to leave the group while it is driven.
    let first_membership = first.try_clone().unwrap();
    run::<H>(move |h| {
        let a = h.drive_udp(first, &Setup::new(), P::endpoint(None)).unwrap();
        let b = h.drive_udp(second, &Setup::new(), P::endpoint(None)).unwrap();
        let sender = h.drive_udp(sender, &Setup::new(), P::endpoint(Some(to))).unwrap();
        let message = payload(7, 300);
        sender.send(P::send(message.clone())).unwrap();
        for receiver in [&a, &b] {
            let event = receiver.recv().unwrap().unwrap();
            assert_eq!(P::received(event).map(|(_, got)| got), Some(message.clone()));
        }
        multicast::leave(&SockRef::from(&first_membership), group, iface).unwrap();
        // Still a member: the second receiver keeps getting the group.
        let later = payload(8, 200);
        sender.send(P::send(later.clone())).unwrap();
        let event = b.recv().unwrap().unwrap();
        assert_eq!(P::received(event).map(|(_, got)| got), Some(later));
        for conn in [a, b, sender] {
            conn.join().unwrap();
        }
    })
}

/// Whether the kernel delivers a datagram to the group on loopback (some sandboxes drop it
/// silently): send one, wait up to two seconds for each receiver.
fn probe(sender: &std::net::UdpSocket, to: SocketAddr, receivers: [&std::net::UdpSocket; 2]) -> io::Result<()> {
    sender.send_to(b"probe", to)?;
    for r in receivers {
        r.set_nonblocking(false)?;
        r.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 16];
        let result = r.recv_from(&mut buf);
        r.set_read_timeout(None)?;
        r.set_nonblocking(true)?;
        match result {
            Ok((5, _)) => {}
            Ok(_) => return Err(io::Error::other("unexpected datagram on the group")),
            Err(e) => return Err(io::Error::new(e.kind(), format!("probe not delivered: {e}"))),
        }
    }
    Ok(())
}

/// The loopback interface's index (Linux: from sysfs).
fn loopback_index() -> Option<u32> {
    std::fs::read_to_string("/sys/class/net/lo/ifindex").ok()?.trim().parse().ok()
}

/// A datagram machine for the addressing tests: `SendTo` goes out as `TransmitTo`; every
/// datagram received comes out as an event naming its sender.
pub struct Reflector {
    out: std::collections::VecDeque<(SocketAddr, Bytes)>,
    events: std::collections::VecDeque<(SocketAddr, Bytes)>,
    closed: bool,
}

/// What a [`Reflector`] is asked to do.
#[derive(Debug)]
pub enum ReflectorCommand {
    /// Send one datagram.
    SendTo(SocketAddr, Bytes),
    /// Send stream bytes (to the driver's default peer).
    Transmit(Bytes),
    /// Several unaddressed transmits from one input.
    TransmitEach(Vec<Bytes>),
}

/// A [`Reflector`] refuses nothing and never fails.
#[derive(Debug, thiserror::Error)]
#[error("reflector error")]
pub struct ReflectorError;

impl Blame for ReflectorError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

impl Reflector {
    /// A fresh reflector.
    pub fn new() -> Self {
        Reflector { out: Default::default(), events: Default::default(), closed: false }
    }
}

impl Default for Reflector {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine for Reflector {
    type Command = ReflectorCommand;
    type Event = (SocketAddr, Bytes);
    type Error = ReflectorError;

    fn handle_input(
        &mut self,
        _now: switchboard_proto::Instant,
        input: switchboard_proto::Input<'_, ReflectorCommand>,
    ) -> Result<(), ReflectorError> {
        use switchboard_proto::Input;
        match input {
            Input::Datagram { from, data } => self.events.push_back((from, data)),
            Input::Command(ReflectorCommand::SendTo(to, data)) => self.out.push_back((to, data)),
            Input::Command(ReflectorCommand::Transmit(data)) => {
                self.out.push_back((SocketAddr::from(([0, 0, 0, 0], 0)), data))
            }
            Input::Command(ReflectorCommand::TransmitEach(all)) => {
                self.out.extend(all.into_iter().map(|data| (SocketAddr::from(([0, 0, 0, 0], 0)), data)))
            }
            Input::Close => self.closed = true,
            _ => {}
        }
        Ok(())
    }

    fn poll_output(
        &mut self,
        _now: switchboard_proto::Instant,
    ) -> switchboard_proto::Output<(SocketAddr, Bytes), ReflectorError> {
        use switchboard_proto::Output;
        if let Some((to, data)) = self.out.pop_front() {
            // The unspecified address marks stream output (see `ReflectorCommand::Transmit`).
            return if to.ip().is_unspecified() { Output::Transmit(data) } else { Output::TransmitTo(to, data) };
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        if self.closed {
            Output::Finished(Ok(()))
        } else {
            Output::Timeout(None)
        }
    }
}

/// Two datagram drivers address each other with `TransmitTo`; each event names its sender.
pub fn transmit_to<H: Harness>() {
    run::<H>(|h| {
        let (a_socket, b_socket) = (udp_socket(), udp_socket());
        let (a_addr, b_addr) = (a_socket.local_addr().unwrap(), b_socket.local_addr().unwrap());
        let a = h.drive_udp(a_socket, &Setup::new(), Reflector::new()).unwrap();
        let b = h.drive_udp(b_socket, &Setup::new(), Reflector::new()).unwrap();
        for i in 0..20 {
            let ping = payload(i, 100 + i);
            a.send(ReflectorCommand::SendTo(b_addr, ping.clone())).unwrap();
            let (from, data) = b.recv().unwrap().unwrap();
            assert_eq!((from, &data), (a_addr, &ping));
            b.send(ReflectorCommand::SendTo(from, data)).unwrap();
            assert_eq!(a.recv().unwrap().unwrap(), (b_addr, ping));
        }
        a.join().unwrap();
        b.join().unwrap();
    })
}

/// Unaddressed output (`Output::Transmit`) goes to the configured peer, or, without one, back
/// to whoever sent the last datagram.
pub fn transmit_fallback<H: Harness>() {
    run::<H>(|h| {
        let (a_socket, b_socket) = (udp_socket(), udp_socket());
        let (a_addr, b_addr) = (a_socket.local_addr().unwrap(), b_socket.local_addr().unwrap());
        let a = h.drive_udp(a_socket, &Setup::new().peer(b_addr), Reflector::new()).unwrap();
        let b = h.drive_udp(b_socket, &Setup::new(), Reflector::new()).unwrap();
        for i in 0..10 {
            let ping = payload(i, 50 + i);
            a.send(ReflectorCommand::Transmit(ping.clone())).unwrap();
            assert_eq!(b.recv().unwrap().unwrap(), (a_addr, ping.clone()));
            b.send(ReflectorCommand::Transmit(ping.clone())).unwrap();
            assert_eq!(a.recv().unwrap().unwrap(), (b_addr, ping));
        }
        a.join().unwrap();
        b.join().unwrap();
    })
}

/// Stream output on a datagram driver that has no peer yet ends it with the driver's typed
/// no-destination error.
pub fn datagram_without_peer<H: Harness>() {
    run::<H>(|h| {
        let conn = h.drive_udp(udp_socket(), &Setup::new(), Reflector::new()).unwrap();
        conn.send(ReflectorCommand::Transmit(Bytes::from_static(b"nowhere"))).unwrap();
        match conn.join() {
            Err(DriverError::NoDestination) => {}
            other => panic!("expected the no-destination error, got {other:?}"),
        }
    })
}

/// Unaddressed transmits produced by one input go out as one datagram each, on every driver
/// (a driver once joined them into one).
pub fn transmit_each_one_datagram<H: Harness>() {
    run::<H>(|h| {
        let (a_socket, b_socket) = (udp_socket(), udp_socket());
        let (a_addr, b_addr) = (a_socket.local_addr().unwrap(), b_socket.local_addr().unwrap());
        let a = h.drive_udp(a_socket, &Setup::new().peer(b_addr), Reflector::new()).unwrap();
        let b = h.drive_udp(b_socket, &Setup::new(), Reflector::new()).unwrap();
        let parts: Vec<Bytes> = (0..3).map(|i| payload(i, 20 + i)).collect();
        a.send(ReflectorCommand::TransmitEach(parts.clone())).unwrap();
        for part in parts {
            assert_eq!(b.recv().unwrap().unwrap(), (a_addr, part), "one datagram per transmit, in order");
        }
        a.join().unwrap();
        b.join().unwrap();
    })
}

/// A machine that asks a stream driver for an addressed datagram was put on the wrong
/// transport: the driver ends with the same typed error, blamed on the caller, everywhere.
pub fn datagram_on_a_stream<H: Harness>() {
    run::<H>(|h| {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let conn = h.connect(listener.local_addr().unwrap(), &Setup::new(), Reflector::new()).unwrap();
        let _peer = listener.accept().unwrap();
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        // The send itself may already find the connection ended: the result says why.
        let _ = conn.send(ReflectorCommand::SendTo(to, Bytes::from_static(b"lost")));
        match conn.join() {
            Err(e @ DriverError::DatagramOnStream) => assert_eq!(e.fault(), Fault::Caller),
            other => panic!("expected DatagramOnStream, got {other:?}"),
        }
    })
}

// ---------------------------------------------------------------- STAGE features

/// An idle connection with `expire` set ends with the typed `Expired` peer error.
pub fn stage_expire<H: Harness>() {
    run::<H>(|h| {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let config = FramingConfig::packet(1024, 0).with_expire(Some(Duration::from_millis(50)));
        let conn = h.connect(listener.local_addr().unwrap(), &Setup::new(), PacketConnection::new(config)).unwrap();
        let mut peer = plain_peer(&listener);
        // `wait` keeps the command sender: dropping it would close the connection cleanly instead.
        let (result, seen) = thread::scope(|s| {
            let reader = s.spawn(move || read_to_end(&mut peer).unwrap());
            (conn.wait(), reader.join().unwrap())
        });
        match result {
            Err(DriverError::Machine(e @ stage::Error::Expired { .. })) => assert_eq!(e.fault(), Fault::Peer),
            other => panic!("expected Expired, got {other:?}"),
        }
        assert!(seen.is_empty());
    })
}

/// How the peer ends what it sends, in [`stage_answers_before_the_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEnd {
    /// It shuts down its sending side after whole frames.
    Eof,
    /// It sends half a frame, then shuts down its sending side.
    TruncatingEof,
    /// It sends a header shorter than itself in the same write as the frames, and stays open.
    BadHeader,
}

/// A peer sends frames and then ends (see [`PeerEnd`]): every frame before the end is answered,
/// in order, by an application that answers each frame as it takes it, and the connection then
/// ends with the peer's fault, if any. The seed's broker answers in the same loop turn as the
/// read, so a reply racing the end must not be lost; and with a bad header in the same read as
/// good frames, the good frames were once never answered (the driver-core issue's attack).
pub fn stage_answers_before_the_end<H: Harness>(end: PeerEnd) {
    use std::io::Write;
    run::<H>(move |h| {
        let listener = h.listen(localhost(), &SocketOptions::new()).unwrap();
        let addr = H::local_addr(&listener);
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(GUARD)).unwrap();
        let stream = h.accept(&listener).unwrap();
        let conn = h.drive(stream, &Setup::new(), PacketConnection::new(FramingConfig::packet(1024, 0))).unwrap();
        let frames: Vec<Bytes> = (0..3).map(|i| payload(i, 10 + i)).collect();
        let mut wire: Vec<u8> =
            frames.iter().flat_map(|body| [&(body.len() as u32 + 4).to_le_bytes()[..], &body[..]].concat()).collect();
        let answers = wire.clone();
        match end {
            PeerEnd::Eof => {}
            PeerEnd::TruncatingEof => wire.extend_from_slice(&[&20u32.to_le_bytes()[..], b"half"].concat()),
            PeerEnd::BadHeader => wire.extend_from_slice(&2u32.to_le_bytes()),
        }
        peer.write_all(&wire).unwrap();
        if end != PeerEnd::BadHeader {
            peer.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let (answered, result, echoed) = thread::scope(|s| {
            let reader = s.spawn(move || read_to_end(&mut peer).unwrap());
            let mut answered = 0;
            while let Some(delivery) = conn.recv() {
                if let Ok(Event::Frame(frame)) = delivery {
                    conn.send(Command::Send(frame)).expect("the connection takes the answer");
                    answered += 1;
                }
            }
            (answered, conn.join(), reader.join().unwrap())
        });
        assert_eq!(answered, 3);
        assert_eq!(echoed, answers, "every frame before the end was answered, in order");
        match (end, result) {
            (PeerEnd::Eof, Ok(())) => {}
            (PeerEnd::TruncatingEof, Err(DriverError::Machine(e @ stage::Error::Truncated { .. })))
            | (PeerEnd::BadHeader, Err(DriverError::Machine(e @ stage::Error::LengthTooShort { len: 2 }))) => {
                assert_eq!(e.fault(), Fault::Peer)
            }
            (end, other) => panic!("unexpected end after {end:?}: {other:?}"),
        }
    })
}

/// With `commit` set, frames queued together reach the socket in one write, when the commit
/// timer fires (no explicit flush).
pub fn stage_commit_coalescing<H: Harness>() {
    run::<H>(|h| {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let config = FramingConfig::packet(1024, 4096).with_commit(Duration::from_millis(200));
        let mut machine = PacketConnection::new(config);
        // Queued before any driver runs (at time zero, where every driver's clock starts), so
        // one commit interval covers all three.
        for body in [&b"one"[..], b"two", b"three"] {
            let command = Command::SendBody(Bytes::from_static(body));
            machine.handle_input(switchboard_proto::Instant::ZERO, Input::Command(command)).unwrap();
        }
        let conn = h.connect(listener.local_addr().unwrap(), &Setup::new(), machine).unwrap();
        let mut peer = plain_peer(&listener);
        let expected = b"\x07\0\0\0one\x07\0\0\0two\x09\0\0\0three";
        let mut got = [0u8; 23];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, expected);
        // A driver counts a write after the syscall returns, so the peer may read the bytes
        // first: count once the driver has finished (the close adds nothing to write).
        let ((result, figures), rest) = thread::scope(|s| {
            let reader = s.spawn(move || read_to_end(&mut peer).unwrap());
            (conn.join_with_figures(), reader.join().unwrap())
        });
        result.unwrap();
        assert!(rest.is_empty());
        assert_eq!(figures.writes, 1, "three frames should have gone out in one write");
        assert_eq!(figures.bytes_written, expected.len() as u64);
    })
}

/// A command the machine refuses comes back as `Err` (the caller's fault) on the event
/// channel; the connection carries on.
pub fn stage_refused_command<H: Harness>() {
    run::<H>(|h| {
        let listener = h.listen(localhost(), &SocketOptions::new()).unwrap();
        let addr = H::local_addr(&listener);
        let (service, ended) = echo_service::<StagePacket>();
        h.serve(listener, &Setup::new(), StagePacket::server, service);
        let conn = h.connect(addr, &Setup::new(), StagePacket::client()).unwrap();
        // The header says 9 bytes; the frame has 6.
        conn.send(Command::Send(Bytes::from_static(b"\x09\0\0\0ab"))).unwrap();
        match conn.recv() {
            Some(Err(e @ stage::Error::MalformedOutgoing { .. })) => assert_eq!(e.fault(), Fault::Caller),
            other => panic!("expected the refusal, got {other:?}"),
        }
        exchange::<H, StagePacket>(&conn, 0, 3, 100);
        conn.join().unwrap();
        ended_cleanly(&ended);
    })
}

// ---------------------------------------------------------------- connection specs and ciphers

/// A `crypto=` option for the encrypted-exchange tests.
pub trait CipherOption: 'static {
    /// The option value, key included.
    const OPTION: &'static str;
}

macro_rules! cipher_options {
    ($($(#[$doc:meta])* $name:ident = $option:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl CipherOption for $name {
            const OPTION: &'static str = $option;
        }
    )*};
}

cipher_options! {
    /// STAGE AES, CFB.
    AesCfb = "AES/CFB/NoPadding=matrix secret";
    /// STAGE RIJNDAEL (the bare-key default's algorithm), CBC with PKCS#5 padding.
    RijndaelCbc = "RIJNDAEL/CBC/PKCS5Padding=matrix secret";
    /// STAGE SEED, CBC with PKCS#5 padding.
    SeedCbc = "SEED/CBC/PKCS5Padding=matrix secret";
    /// STAGE DES, CFB.
    DesCfb = "DES/CFB/NoPadding=matrix secret";
    /// The sealed profile.
    SealedGcm = "AES-256-GCM=matrix secret";
}

/// BSON document `i` as bytes: what the original broker's peers exchange.
pub fn bson_doc(i: usize) -> Bytes {
    let doc = bson::doc! {
        "seq": i as i64,
        "cmd": "broker.echo",
        "body": { "text": "가나다 stage", "n": [1i32, 2, 3], "blob": bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic, bytes: payload(i, i * 37 % 700).to_vec() } },
    };
    doc.to_vec().expect("a document always serialises").into()
}

/// Server side of the encrypted tests: every frame must be a BSON document; send it back.
fn bson_service() -> (Service<PacketConnection>, EndedRx<stage::Error>) {
    service(|delivery| {
        let Ok(Event::Frame(frame)) = delivery else { return None };
        let body = frame.slice(stage::HEADER_LEN..);
        bson::Document::from_reader(&body[..]).expect("the server decrypted a frame that is not BSON");
        Some(Command::SendBody(body))
    })
}

/// Send BSON documents and check every decrypted echo equals the document's bytes.
fn bson_exchange<C: Conn<PacketConnection>>(conn: &C, count: usize) {
    for i in 0..count {
        conn.send(Command::SendBody(bson_doc(i))).unwrap();
        match conn.recv() {
            Some(Ok(Event::Frame(frame))) => assert_eq!(frame.slice(stage::HEADER_LEN..), bson_doc(i), "echo {i}"),
            other => panic!("expected echo {i}, got {other:?}"),
        }
    }
}

/// Two peers opened from specs with cipher `C` exchange BSON documents over TCP.
pub fn encrypted_bson_tcp<H: Harness, C: CipherOption>() {
    run::<H>(|h| {
        let (service, ended) = bson_service();
        let spec = format!("tcp://127.0.0.1:0?packet=64k,0&crypto={}", C::OPTION);
        let addr = h.serve_spec(&spec, service).unwrap().expect("a TCP spec listens on an address");
        let spec = format!("tcp://127.0.0.1:{}?packet=64k,64k&crypto={}", addr.port(), C::OPTION);
        let conn = h.connect_spec(&spec).unwrap();
        bson_exchange(&conn, 20);
        conn.join().unwrap();
        ended_cleanly(&ended);
    })
}

/// The same over a Unix socket.
#[cfg(unix)]
pub fn encrypted_bson_unix<H: Harness, C: CipherOption>() {
    run::<H>(|h| {
        let path = unix_path();
        let _ = std::fs::remove_file(&path);
        let spec = format!("unix://{}?packet=64k,0&crypto={}", path.display(), C::OPTION);
        let (service, ended) = bson_service();
        h.serve_spec(&spec, service).unwrap();
        let conn = h.connect_spec(&spec).unwrap();
        bson_exchange(&conn, 10);
        conn.join().unwrap();
        ended_cleanly(&ended);
        let _ = std::fs::remove_file(&path);
    })
}

/// The same over UDP (`bind_spec`): one encrypted frame per datagram; the server answers
/// whoever sent.
pub fn encrypted_bson_udp<H: Harness, C: CipherOption>() {
    run::<H>(|h| {
        let spec = |port: u16| format!("udp://127.0.0.1:{port}?packet=64k,0&crypto={}", C::OPTION);
        // A free port for the server, so the client can be told where to send.
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = h.bind_spec(&spec(port), None).unwrap();
        let client = h.bind_spec(&spec(0), Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))).unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                while let Some(delivery) = server.recv() {
                    match delivery {
                        Ok(DatagramEvent::Frame { from, frame }) => {
                            let body = frame.slice(stage::HEADER_LEN..);
                            bson::Document::from_reader(&body[..])
                                .expect("the server decrypted a frame that is not BSON");
                            server.send(DatagramCommand::SendBodyTo(from, body)).unwrap();
                        }
                        other => panic!("server: {other:?}"),
                    }
                }
            });
            // One at a time: a datagram test must not depend on socket buffers never overflowing.
            for i in 0..10 {
                client.send(DatagramCommand::SendBody(bson_doc(i))).unwrap();
                match client.recv() {
                    Some(Ok(DatagramEvent::Frame { frame, .. })) => {
                        assert_eq!(frame.slice(stage::HEADER_LEN..), bson_doc(i), "echo {i}")
                    }
                    other => panic!("expected echo {i}, got {other:?}"),
                }
            }
            client.join().unwrap();
            server.close();
        });
        server.join().unwrap();
    })
}

/// A spec with a bad `crypto` option fails before any socket is opened, naming the crypto part.
pub fn spec_errors<H: Harness>() {
    use switchboard_proto::stage::spec::OpenError;
    run::<H>(|h| {
        let (service, _ended) = service(|_| None);
        let bad_crypto = h.serve_spec("tcp://127.0.0.1:0?packet&crypto=ROT13/CBC=k", service);
        assert!(matches!(bad_crypto, Err(SpecConnectError::Open(OpenError::Crypto(_)))));
        let bad_spec = h.connect_spec("tcp://127.0.0.1?packet");
        assert!(matches!(bad_spec, Err(SpecConnectError::Open(OpenError::Spec(_)))));
        let udp = h.connect_spec("udp://127.0.0.1:9?packet");
        assert!(matches!(udp, Err(SpecConnectError::Unsupported(stage::Scheme::Udp))));
        assert_eq!(udp.err().map(|e| e.fault()), Some(Fault::Caller));
    })
}

// ---------------------------------------------------------------- typed messages

/// Request/response over TCP, typed message frames at both ends: the client sends requests,
/// the server answers each with `Respond`; every response carries its request's id.
pub fn message_request_response<H: Harness>() {
    use switchboard_proto::message::{Command as Msg, Event as MsgEvent, MessageConfig, MessageConnection};
    run::<H>(|h| {
        let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
        let listener = h.listen(localhost(), &SocketOptions::new()).unwrap();
        let addr = H::local_addr(&listener);
        let (service, ended) = service(|delivery| match delivery {
            Ok(MsgEvent::Request { id, payload }) => {
                Some(Msg::Respond { id, payload: [&b"re:"[..], &payload].concat().into() })
            }
            _ => None,
        });
        h.serve(listener, &Setup::new(), messages, service);
        let conn = h.connect(addr, &Setup::new(), messages()).unwrap();
        // Several in flight at once: the ids, not the order of sending, pair the answers.
        for round in 0..5 {
            for i in 0..4 {
                let payload = payload(round * 4 + i, 50 + i);
                conn.send(Msg::Request { payload, timeout: None }).unwrap();
            }
            for i in 0..4 {
                let n = round * 4 + i;
                match conn.recv() {
                    Some(Ok(MsgEvent::Response { id, payload: got })) => {
                        assert_eq!(id, n as u64 + 1, "request ids count from 1");
                        assert_eq!(got, [&b"re:"[..], &payload(n, 50 + i)].concat());
                    }
                    other => panic!("expected response {n}, got {other:?}"),
                }
            }
        }
        conn.join().unwrap();
        ended_cleanly(&ended);
    })
}

// ---------------------------------------------------------------- KCOM5

/// The shared directory (`/work/shared`): beside the checkout, one level further out for a
/// worktree, or `$SWITCHBOARD_SHARED`.
pub fn shared_dir() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [here.join("../../shared"), here.join("../../../shared"), here.join("../../../../shared")]
        .into_iter()
        .chain(std::env::var_os("SWITCHBOARD_SHARED").map(PathBuf::from))
        .find(|p| p.join("peers/kcom_peer.py").is_file())
}

fn kcom_options() -> KcomOptions {
    KcomOptions::new().ipv4(true).port(0).close(Some(Duration::from_secs(20)))
}

/// Our sender to our receiver, on an ephemeral port.
pub fn kcom_own_ends<H: Harness>() {
    run::<H>(|h| {
        let sender = h.kcom_bind(&kcom_options()).unwrap();
        let options = kcom_options().port(H::kcom_port(&sender));
        let data = payload(3, 100_000);
        let (sent, received) = thread::scope(|s| {
            let sending = s.spawn(|| h.kcom_send(sender, "hello kcom", data.clone()));
            let received = h.kcom_receive(&options);
            (sending.join().unwrap(), received)
        });
        sent.unwrap();
        assert_eq!(received.unwrap(), ("hello kcom".to_string(), data));
    })
}

/// Run the foreign peer with `args` on a thread; its output comes from the handle.
fn python_peer(args: Vec<String>) -> Option<thread::JoinHandle<std::process::Output>> {
    let script = shared_dir()?.join("peers/kcom_peer.py");
    Some(thread::spawn(move || {
        std::process::Command::new("python3").arg(script).args(args).output().expect("python3 runs")
    }))
}

/// Our sender to the independent Python receiver.
pub fn kcom_to_python<H: Harness>() {
    run::<H>(|h| {
        let sender = h.kcom_bind(&kcom_options()).unwrap();
        let port = H::kcom_port(&sender);
        let out = std::env::temp_dir().join(format!("switchboard-kcom-{}-{port}.bin", std::process::id()));
        let args = ["recv", "--ipv4", "--timeout", "20", "--port", &port.to_string(), "--out"];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(out.display().to_string());
        let Some(peer) = python_peer(args) else {
            println!("skipped: the shared dir with kcom_peer.py was not found");
            return;
        };
        let data = payload(5, 3000);
        h.kcom_send(sender, "to python", data.clone()).unwrap();
        let result = peer.join().unwrap();
        assert!(result.status.success(), "peer failed: {}", String::from_utf8_lossy(&result.stderr));
        let line = String::from_utf8(result.stdout).unwrap();
        assert!(line.contains("\"msg\": \"to python\""), "peer saw {line}");
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let _ = std::fs::remove_file(&out);
    })
}

/// The independent Python sender to our receiver.
pub fn kcom_from_python<H: Harness>() {
    run::<H>(|h| {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = ["send", "--ipv4", "--timeout", "20", "--msg", "from python", "--data-len", "5000", "--port"];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(port.to_string());
        let Some(peer) = python_peer(args) else {
            println!("skipped: the shared dir with kcom_peer.py was not found");
            return;
        };
        let (msg, data) = h.kcom_receive(&kcom_options().port(port)).unwrap();
        assert_eq!(msg, "from python");
        let expected: Vec<u8> = (0..5000).map(|i| ((i * 131 + 7) % 251) as u8).collect();
        assert_eq!(data, expected);
        let result = peer.join().unwrap();
        assert!(result.status.success(), "peer failed: {}", String::from_utf8_lossy(&result.stderr));
    })
}

// ---------------------------------------------------------------- direct suite

/// The tests of [`Direct`](crate::Direct) (the driver inside the application's own task) for
/// async adapter `$adapter`: one line in each async adapter's test file.
#[macro_export]
macro_rules! direct_suite {
    ($adapter:ty) => {
        mod direct_suite {
            use super::*;
            #[test]
            fn full_duplex() {
                $crate::testing::direct_full_duplex::<$adapter>();
            }
            #[test]
            fn pipelined_echo() {
                $crate::testing::direct_pipelined_echo::<$adapter>();
            }
            #[cfg(unix)]
            #[test]
            fn unix_echo() {
                $crate::testing::direct_unix_echo::<$adapter>();
            }
            #[test]
            fn backpressure() {
                $crate::testing::direct_backpressure::<$adapter>();
            }
            #[test]
            fn expire() {
                $crate::testing::direct_expire::<$adapter>();
            }
            #[test]
            fn bad_header_then_refused_command() {
                $crate::testing::direct_bad_header_and_refusal::<$adapter>();
            }
            #[test]
            fn connect_options_and_refusal() {
                $crate::testing::direct_connect_options_and_refusal::<$adapter>();
            }
            #[test]
            fn send_takes_the_command_at_once() {
                $crate::testing::direct_send_takes_the_command_at_once::<$adapter>();
            }
            // The channel driver's event room, which only the async adapters have.
            #[test]
            fn driver_event_room() {
                $crate::testing::driver_event_room::<$adapter>();
            }
            // Served connections by id (`serve_tracked` and `Connections`), channel driver only.
            #[test]
            fn connections_by_id() {
                $crate::testing::connections_by_id::<$adapter>();
            }
            #[test]
            fn spec_connections_by_id() {
                $crate::testing::spec_connections_by_id::<$adapter>();
            }
            // The router hub (WIRE §5) and its clients over loopback.
            #[test]
            fn router_over_the_wire() {
                $crate::testing::router_over_the_wire::<$adapter>();
            }
            #[test]
            fn router_drops_a_silent_client() {
                $crate::testing::router_drops_a_silent_client::<$adapter>();
            }
            #[test]
            fn router_closes_a_connection_that_never_says_hello() {
                $crate::testing::router_hello_timeout::<$adapter>();
            }
            #[test]
            fn router_drops_a_slow_client() {
                $crate::testing::router_drops_a_slow_client::<$adapter>();
            }
        }
    };
}

/// Run `body` on adapter `A`'s runtime on its own thread; a hang fails after [`GUARD`].
fn run_direct<A: Adapter, Fut: Future<Output = ()> + 'static>(body: impl FnOnce(A::Runtime) -> Fut + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        A::block_on(body(A::runtime()));
        let _ = tx.send(());
    });
    match rx.recv_timeout(GUARD) {
        Ok(()) => worker.join().unwrap(),
        Err(_) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the direct test did not finish within {GUARD:?}"),
        },
    }
}

/// A `Direct` packet client connected to `addr`.
async fn direct_client<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    options: SocketOptions,
    config: DriverConfig,
    framing: FramingConfig,
) -> crate::Direct<R, PacketConnection, R::Tcp> {
    rt.clone().connect_direct(addr, options, config, PacketConnection::new(framing)).await.unwrap()
}

fn direct_frame_body(event: Event) -> Bytes {
    let Event::Frame(frame) = event;
    frame.slice(stage::HEADER_LEN..)
}

/// `serve_direct` echo server, `connect_direct` client with 200 frames in flight both ways.
pub fn direct_pipelined_echo<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let config = FramingConfig::packet(1 << 16, 0);
        let (done_tx, done_rx) = async_channel::bounded(1);
        let server = rt.clone().serve_direct(
            listener,
            SocketOptions::new(),
            DriverConfig::default(),
            move |_| PacketConnection::new(config),
            move |mut conn| {
                let done_tx = done_tx.clone();
                async move {
                    let mut echoed = 0;
                    while let Some(event) = conn.recv().await {
                        let Event::Frame(frame) = event.expect("server connection failed");
                        conn.send(Command::Send(frame)).await.unwrap();
                        echoed += 1;
                    }
                    let _ = done_tx.send(echoed).await;
                }
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let mut client = direct_client(&rt, addr, SocketOptions::new(), DriverConfig::default(), config).await;
        for i in 0..200 {
            client.send(Command::SendBody(payload(i, 100 + i))).await.unwrap();
        }
        for i in 0..200 {
            let event = client.recv().await.expect("an echo").unwrap();
            assert_eq!(direct_frame_body(event), payload(i, 100 + i));
        }
        client.close_and_join().await.unwrap();
        assert_eq!(done_rx.recv().await.unwrap(), 200);
    });
}

/// `serve_direct` on a Unix listener, `connect_unix_direct` client: an echo over a Unix socket.
#[cfg(unix)]
pub fn direct_unix_echo<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let path = unix_path();
        let _ = std::fs::remove_file(&path);
        let listener = rt.listen_unix(&path).unwrap();
        let config = FramingConfig::packet(1 << 16, 64 * 1024);
        let server = rt.clone().serve_direct(
            listener,
            SocketOptions::new(),
            DriverConfig::default(),
            move |_| PacketConnection::new(config),
            |mut conn| async move {
                while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
                    conn.send(Command::Send(frame)).await.unwrap();
                }
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let mut client = rt
            .clone()
            .connect_unix_direct(&path, DriverConfig::default(), PacketConnection::new(config))
            .await
            .unwrap();
        for i in 0..500 {
            client.send(Command::SendBody(payload(i, 1 + i * 7))).await.unwrap();
        }
        for i in 0..500 {
            assert_eq!(direct_frame_body(client.recv().await.expect("an echo").unwrap()), payload(i, 1 + i * 7));
        }
        client.close_and_join().await.unwrap();
        let _ = std::fs::remove_file(&path);
    });
}

/// Two `Direct`s both streaming 1000 × 2 KiB through small socket buffers, taking what has
/// arrived between sends: neither waits on the other for ever.
pub fn direct_full_duplex<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let small = SocketOptions::new().send_buffer(16 * 1024).recv_buffer(16 * 1024);
        let listener = rt.listen_with("127.0.0.1:0", &small).unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        const FRAMES: usize = 1000;
        async fn stream_both_ways<R: Runtime, S: crate::ByteStream>(
            mut conn: crate::Direct<R, PacketConnection, S>,
            seed: usize,
        ) -> Vec<Bytes> {
            let mut got = Vec::new();
            for i in 0..FRAMES {
                conn.send(Command::SendBody(payload(seed + i, 2048))).await.unwrap();
                while let Some(event) = conn.try_recv().await {
                    got.push(direct_frame_body(event.unwrap()));
                }
            }
            conn.flush().await.unwrap();
            while got.len() < FRAMES {
                got.push(direct_frame_body(conn.recv().await.expect("the peer's frames").unwrap()));
            }
            conn.close_and_join().await.unwrap();
            got
        }
        let (tx, rx) = async_channel::bounded(1);
        {
            let (rt2, small) = (rt.clone(), small.clone());
            rt.spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                small.apply(&*crate::SocketRef::socket_ref(&stream)).unwrap();
                let conn = crate::Direct::new(
                    rt2,
                    stream,
                    PacketConnection::new(FramingConfig::packet(1 << 16, 0)),
                    &DriverConfig::default(),
                );
                let _ = tx.send(stream_both_ways(conn, 1_000_000).await).await;
            });
        }
        let client = direct_client(&rt, addr, small, DriverConfig::default(), FramingConfig::packet(1 << 16, 0)).await;
        let got_client = stream_both_ways(client, 0).await;
        let got_server = rx.recv().await.unwrap();
        assert!(got_client.iter().enumerate().all(|(i, f)| *f == payload(1_000_000 + i, 2048)));
        assert!(got_server.iter().enumerate().all(|(i, f)| *f == payload(i, 2048)));
    });
}

/// A peer that does not read for a while: `send` waits at the budget, the queue never holds
/// more than the budget plus one batch plus one frame, and every frame arrives in order.
pub fn direct_backpressure<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        const FRAMES: usize = 2000;
        const SIZE: usize = 1024;
        let small = SocketOptions::new().send_buffer(16 * 1024).recv_buffer(16 * 1024);
        let listener = crate::sockets::tcp_listener("127.0.0.1:0", &small).unwrap();
        listener.set_nonblocking(false).unwrap(); // made for a runtime; accepted here in a thread
        let addr = listener.local_addr().unwrap();
        let reader = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Not reading for a while lets the buffers fill; the checks hold however long it is.
            thread::sleep(Duration::from_millis(200));
            let mut received = Vec::new();
            stream.read_to_end(&mut received).unwrap();
            received
        });
        let mut conn =
            direct_client(&rt, addr, small, DriverConfig::default(), FramingConfig::packet(1 << 16, 0)).await;
        let mut max_queued = 0;
        for i in 0..FRAMES {
            conn.send(Command::SendBody(payload(i, SIZE))).await.unwrap();
            max_queued = max_queued.max(conn.queued());
        }
        conn.close();
        // The reader's EOF comes only after ours; take the result once it has everything.
        let closing = async move { while conn.recv().await.is_some() {} };
        let received = {
            let handle = thread::spawn(move || reader.join().unwrap());
            closing.await;
            handle.join().unwrap()
        };
        assert_eq!(received.len(), FRAMES * (SIZE + 4), "nothing accepted was lost");
        for (i, frame) in received.chunks(SIZE + 4).enumerate() {
            assert_eq!(&frame[4..], &payload(i, SIZE)[..]);
        }
        let bound = 64 * 1024 + 16 * 1024 + SIZE + 4;
        assert!(max_queued <= bound, "queued {max_queued} bytes, bound {bound}");
    });
}

/// `Direct::send` hands the command to the machine when called: a future dropped unpolled
/// has still sent it (the future never holds the command).
pub fn direct_send_takes_the_command_at_once<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            stream.read_to_end(&mut received).unwrap();
            received
        });
        let mut conn =
            direct_client(&rt, addr, SocketOptions::new(), DriverConfig::default(), FramingConfig::packet(1024, 0))
                .await;
        drop(conn.send(Command::SendBody(payload(0, 10))));
        conn.send(Command::SendBody(payload(1, 10))).await.unwrap();
        conn.close_and_join().await.unwrap();
        let received = reader.join().unwrap();
        assert_eq!(received.len(), 2 * 14, "both frames were sent");
        assert_eq!(&received[4..14], &payload(0, 10)[..]);
        assert_eq!(&received[18..], &payload(1, 10)[..]);
    });
}

/// The channel driver (`connect_with`) holds at most `DriverConfig::events` events for an
/// application that stops taking them, stops reading meanwhile (the peer's bytes back up in
/// the kernel), and goes on once the application takes events again (it is woken when half the
/// channel is free): every frame arrives, in order.
pub fn driver_event_room<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        const FRAMES: usize = 3000;
        const SIZE: usize = 200;
        const ROOM: usize = 8;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = thread::spawn(move || {
            use std::io::Write;
            let (mut stream, _) = listener.accept().unwrap();
            for i in 0..FRAMES {
                let body = payload(i, SIZE);
                stream.write_all(&((SIZE + 4) as u32).to_le_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        });
        let small = SocketOptions::new().recv_buffer(16 * 1024);
        let config = DriverConfig::default().with_events(ROOM).with_read_chunk(4096);
        let conn = rt
            .clone()
            .connect_with(addr, small, config, PacketConnection::new(FramingConfig::packet(1 << 16, 0)))
            .await
            .unwrap();
        let stats = conn.stats().clone();
        // Keep `commands`: dropping every sender would close the connection.
        let (_commands, events, done) = conn.split();
        let mut next = 0;
        let take = |next: &mut usize, event: Option<Result<Event, stage::Error>>| {
            let body = direct_frame_body(event.expect("an event").unwrap());
            assert_eq!(body, payload(*next, SIZE), "frame {next} in order");
            *next += 1;
        };
        for _ in 0..10 {
            take(&mut next, events.recv().await);
        }
        // Not taking for a while: the driver fills the room and stops reading.
        crate::runtime::sleep_for(&rt, Duration::from_millis(150)).await;
        let read_while_full = stats.bytes_read();
        crate::runtime::sleep_for(&rt, Duration::from_millis(100)).await;
        assert_eq!(stats.bytes_read(), read_while_full, "no reads while the event room is full");
        // What was read: the events taken, the room, and at most one read (4 KiB) past it.
        let bound = ((10 + ROOM) * (SIZE + 4) + 4096) as u64;
        assert!(read_while_full <= bound, "read {read_while_full} bytes for a full room, bound {bound}");
        // Taking again: the rest arrives.
        while next < FRAMES {
            take(&mut next, events.recv().await);
        }
        assert!(events.recv().await.is_none(), "the peer's EOF ends the events");
        // The connection itself stays open for answers until the application closes it.
        assert!(_commands.close(), "still taking commands after the peer's EOF");
        done.wait().await.unwrap();
        writer.join().unwrap();
    });
}

/// Wait (bounded by [`GUARD`]) until `done` holds, looking again every few milliseconds.
async fn eventually<R: Runtime>(rt: &R, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + GUARD;
    while !done() {
        assert!(StdInstant::now() < deadline, "{what}: not within {GUARD:?}");
        crate::runtime::sleep_for(rt, Duration::from_millis(5)).await;
    }
}

/// `serve_tracked` fills a [`Connections`](crate::Connections): each accepted connection gets
/// the next id (0, 1, 2), the server side sends to each by id and each client gets its own
/// frame; `close(id)` ends that client's connection while another goes on echoing; an ended
/// connection's id is gone. A handler that drops its connection still closes it: the registry
/// keeps none open.
pub fn connections_by_id<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let framing = FramingConfig::packet(1 << 16, 0);
        let connections = crate::Connections::<PacketConnection>::new();
        let (ids_tx, ids_rx) = async_channel::unbounded();
        let server = rt.clone().serve_tracked(
            listener,
            connections.clone(),
            SocketOptions::new(),
            DriverConfig::default(),
            move |_| PacketConnection::new(framing),
            move |id, conn| {
                let ids_tx = ids_tx.clone();
                async move {
                    ids_tx.send(id).await.unwrap();
                    while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
                        if frame.slice(stage::HEADER_LEN..) == Bytes::from_static(b"bye") {
                            return; // drops the only sender: the connection closes
                        }
                        if conn.send(Command::Send(frame)).await.is_err() {
                            return;
                        }
                    }
                }
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let connect = || rt.clone().connect(addr, PacketConnection::new(framing));
        let body = |conn_event: Option<Delivery<PacketConnection>>| direct_frame_body(conn_event.unwrap().unwrap());

        // Ids count up in accept order (each client is accepted before the next connects).
        let a = connect().await.unwrap();
        let id_a = ids_rx.recv().await.unwrap();
        let b = connect().await.unwrap();
        let id_b = ids_rx.recv().await.unwrap();
        assert_eq!((id_a, id_b), (0, 1));
        assert_eq!((connections.len(), connections.accepted()), (2, 2));
        assert!(connections.get(7).is_none() && !connections.close(7), "an id never given out");

        // The server side reaches each connection by id.
        connections.get(id_a).unwrap().send(Command::SendBody(Bytes::from_static(b"to a"))).await.unwrap();
        connections.get(id_b).unwrap().send(Command::SendBody(Bytes::from_static(b"to b"))).await.unwrap();
        assert_eq!(body(a.recv().await), Bytes::from_static(b"to a"));
        assert_eq!(body(b.recv().await), Bytes::from_static(b"to b"));

        // A signal is handled as if it had arrived on that connection: the echo handler sends
        // it back to b's client.
        let whole = |body: &[u8]| {
            let mut frame = ((stage::HEADER_LEN + body.len()) as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(body);
            Event::Frame(Bytes::from(frame))
        };
        assert!(connections.signal(id_b, whole(b"signalled")));
        assert_eq!(body(b.recv().await), Bytes::from_static(b"signalled"));
        assert!(!connections.signal(7, whole(b"nobody")), "an id never given out");

        // Closing one by id ends it for its client; the other still echoes.
        assert!(connections.close(id_a));
        assert!(a.recv().await.is_none(), "the client sees the end of the closed connection");
        a.join().await.unwrap();
        b.send(Command::SendBody(payload(1, 300))).await.unwrap();
        assert_eq!(body(b.recv().await), payload(1, 300));
        eventually(&rt, "the closed connection leaves the registry", || connections.len() == 1).await;
        assert!(connections.get(id_a).is_none() && !connections.close(id_a), "an ended id is gone");
        assert!(!connections.signal(id_a, whole(b"late")), "an ended id takes no signal");
        assert!(connections.get(id_b).is_some());

        // The registry keeps no connection open: a handler that drops its connection closes it.
        let c = connect().await.unwrap();
        let id_c = ids_rx.recv().await.unwrap();
        assert_eq!(id_c, 2);
        c.send(Command::SendBody(Bytes::from_static(b"bye"))).await.unwrap();
        assert!(c.recv().await.is_none(), "the handler's drop closed the connection");
        c.join().await.unwrap();

        // Aborting one by id stops its driver at once: its client sees the end.
        let d = connect().await.unwrap();
        let id_d = ids_rx.recv().await.unwrap();
        assert!(connections.abort(id_d));
        assert!(d.recv().await.is_none(), "the aborted connection ended");
        let _ = d.join().await; // a reset or an end of stream, whichever the peer saw first
        assert!(!connections.abort(99), "an id never given out");

        // A client closing ends its entry too.
        b.join().await.unwrap();
        eventually(&rt, "every ended connection leaves the registry", || connections.is_empty()).await;
        assert!(connections.get(id_b).is_none() && connections.get(id_c).is_none() && connections.get(id_d).is_none());
        assert_eq!(connections.accepted(), 4);
    });
}

/// `SpecListener::serve_tracked`: a `connect_spec` client is reached by id and closed by id
/// (with the spec's cipher on both ends), and its entry goes.
pub fn spec_connections_by_id<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let spec = "tcp://127.0.0.1:0?packet=64k,0&crypto=AES/CFB/NoPadding=secret";
        let listener = rt.listen_spec(spec).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = crate::Connections::new();
        let (ids_tx, ids_rx) = async_channel::unbounded();
        let server = listener.serve_tracked(connections.clone(), move |id, conn| {
            let ids_tx = ids_tx.clone();
            async move {
                ids_tx.send(id).await.unwrap();
                while conn.recv().await.is_some() {}
            }
        });
        rt.spawn(async move {
            let _ = server.await;
        });
        let client_spec = format!("tcp://{addr}?packet=64k,0&crypto=AES/CFB/NoPadding=secret");
        let client = rt.clone().connect_spec(&client_spec).await.unwrap();
        let id = ids_rx.recv().await.unwrap();
        assert_eq!((id, connections.len()), (0, 1));
        connections.get(id).unwrap().send(Command::SendBody(payload(3, 50))).await.unwrap();
        assert_eq!(direct_frame_body(client.recv().await.unwrap().unwrap()), payload(3, 50));
        assert!(connections.close(id));
        assert!(client.recv().await.is_none(), "closed by id");
        client.join().await.unwrap();
        eventually(&rt, "the closed connection leaves the registry", || connections.is_empty()).await;
        assert!(connections.get(id).is_none() && !connections.close(id));
    });
}

/// `connect_direct` sets the options on the socket before it connects (the runtime's own
/// connect is not used) and still has them once connected; a refused connect is reported as
/// such.
pub fn direct_connect_options_and_refusal<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let options = SocketOptions::new().nodelay(true).recv_buffer(16 * 1024);
        let config = || PacketConnection::new(FramingConfig::packet(1024, 0));
        let conn = rt.clone().connect_direct(addr, options.clone(), DriverConfig::default(), config()).await.unwrap();
        let _peer = listener.accept().unwrap();
        let socket = crate::SocketRef::socket_ref(conn.stream());
        assert!(socket.tcp_nodelay().unwrap());
        assert!(socket.recv_buffer_size().unwrap() <= 64 * 1024, "16 KiB asked (the kernel may double it)");
        drop((socket, _peer, listener));
        match rt.clone().connect_direct(addr, options, DriverConfig::default(), config()).await {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            Ok(_) => panic!("connected to a closed port"),
        }
    });
}

/// The expire timer runs on the runtime's timer and ends an idle connection with its error.
pub fn direct_expire<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = FramingConfig::packet(1024, 0).with_expire(Some(Duration::from_millis(30)));
        let mut conn =
            direct_client(&rt, addr, SocketOptions::new(), DriverConfig::default().with_linger(Duration::ZERO), config)
                .await;
        let _peer = listener.accept().unwrap();
        match conn.recv().await {
            Some(Err(DriverError::Machine(stage::Error::Expired { .. }))) => {}
            other => panic!("expected Expired, got {other:?}"),
        }
        assert!(conn.recv().await.is_none(), "the result is reported once");
        assert!(matches!(
            conn.send(Command::SendBody(Bytes::from_static(b"late"))).await,
            Err(crate::SendError::Closed)
        ));
    });
}

/// Frames before a bad header are delivered, then the events end and the peer's error is the
/// result; a refused command is the caller's and leaves the connection open.
pub fn direct_bad_header_and_refusal<A: Adapter>() {
    run_direct::<A, _>(|rt| async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut first = [0u8; 8];
            stream.read_exact(&mut first).unwrap();
            io::Write::write_all(&mut stream, b"\x06\x00\x00\x00ok\x02\x00\x00\x00").unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            first
        });
        let mut conn =
            direct_client(&rt, addr, SocketOptions::new(), DriverConfig::default(), FramingConfig::packet(1024, 16))
                .await;
        match conn.send(Command::SendBody(Bytes::from(vec![0u8; 64]))).await {
            Err(crate::SendError::Refused(stage::Error::OutgoingTooLarge { .. })) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        conn.send(Command::SendBody(Bytes::from_static(b"fits"))).await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(direct_frame_body(conn.recv().await.unwrap().unwrap()), Bytes::from_static(b"ok"));
        // The bad header closed the read side: no more events, and the peer's fault is the
        // connection's result once the application closes.
        assert!(conn.recv().await.is_none());
        match conn.close_and_join().await {
            Err(e @ DriverError::Machine(stage::Error::LengthTooShort { len: 2 })) => {
                assert_eq!(e.fault(), Fault::Peer)
            }
            other => panic!("expected LengthTooShort, got {other:?}"),
        }
        assert_eq!(&peer.join().unwrap(), b"\x08\x00\x00\x00fits");
    });
}

// ---------------------------------------------------------------- router over the wire

/// The next router event of `conn` (failing on the connection's end).
async fn router_event(
    conn: &Connection<switchboard_proto::router::RouterClient>,
) -> switchboard_proto::router::ClientEvent {
    match conn.recv().await {
        Some(Ok(event)) => event,
        other => panic!("expected a router event, got {other:?}"),
    }
}

/// The WIRE §5 hub served by [`crate::router::serve_hub`] with router clients on the channel
/// driver, over loopback: welcome lists, joins, broadcast / at / omit reaching exactly the
/// right clients, datastore relayed and seen by a late joiner, bye and a dropped client seen
/// as leaving, replace policy, a refused token, and the hub's own join / leave events.
pub fn router_over_the_wire<A: Adapter>() {
    use crate::router::{self, HubEvent, HubSettings};
    use switchboard_proto::router::{
        ClientCommand, ClientConfig, ClientEvent, FromHub, Hello, Hub, HubConfig, RefuseCode, RouterError,
    };
    use switchboard_proto::SplitMix64;

    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        // A message layer that cannot carry messages is refused before any client comes.
        let unfit = HubSettings {
            message: switchboard_proto::message::MessageConfig {
                framing: FramingConfig::packet(8, 0),
                ..router::message_config()
            },
            ..HubSettings::default()
        };
        let other = rt.listen("127.0.0.1:0").unwrap();
        let refused =
            router::serve_hub(rt.clone(), other, Hub::new(HubConfig::default(), Box::new(SplitMix64::new(1))), unfit);
        assert_eq!(refused.err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));

        let hub = Hub::new(HubConfig::default().with_token("sesame"), Box::new(SplitMix64::new(7)));
        let (hub, accept) = router::serve_hub(rt.clone(), listener, hub, HubSettings::default()).unwrap();
        rt.spawn(async move {
            let _ = accept.await;
        });
        let join = |name: &str, unique: Option<&str>| {
            let mut hello = Hello::new(name, "demo").with_token("sesame");
            if let Some(unique) = unique {
                hello = hello.with_unique(unique);
            }
            let config = ClientConfig::new(router::message_config(), hello);
            router::connect(rt.clone(), addr, config, SocketOptions::new(), DriverConfig::default())
        };
        let data = |n: i32| bson::doc! { "n": n };

        // a, then b: b's welcome lists a; a hears of b.
        let a = join("alpha", Some("a")).await.unwrap();
        let ClientEvent::Welcome { unique, ip, clients } = router_event(&a).await else { panic!("a: no welcome") };
        assert_eq!((unique.as_str(), ip.as_str(), clients.len()), ("a", "127.0.0.1", 0));
        let b = join("bravo", None).await.unwrap();
        let ClientEvent::Welcome { unique: b_unique, clients, .. } = router_event(&b).await else {
            panic!("b: no welcome")
        };
        assert_eq!(b_unique.len(), 16, "assigned from the hub's entropy");
        assert_eq!(clients.iter().map(|c| c.unique.as_str()).collect::<Vec<_>>(), ["a"]);
        let ClientEvent::Hub(FromHub::Connected(seen)) = router_event(&a).await else { panic!("a: no connected") };
        assert_eq!(
            (seen.unique.as_str(), seen.fullname()),
            (b_unique.as_str(), format!("bravo[{b_unique}@127.0.0.1]"))
        );
        let c = join("charlie", Some("c")).await.unwrap();
        assert!(matches!(router_event(&c).await, ClientEvent::Welcome { .. }));
        for conn in [&a, &b] {
            assert!(matches!(router_event(conn).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.unique == "c"));
        }

        // broadcast: everyone but the sender; at: exactly those listed (unknown skipped); omit:
        // everyone but the sender and those listed. Each client's next event shows who got what.
        let op = |from: &str, op: &str, n: i32| {
            ClientEvent::Hub(FromHub::Op { from: from.into(), op: op.into(), data: data(n) })
        };
        a.send(ClientCommand::broadcast("hello", data(1))).await.unwrap();
        assert_eq!(router_event(&b).await, op("a", "hello", 1));
        assert_eq!(router_event(&c).await, op("a", "hello", 1));
        a.send(ClientCommand::at(["c", "nobody"], "psst", data(2))).await.unwrap();
        a.send(ClientCommand::omit(["c"], "not-c", data(3))).await.unwrap();
        assert_eq!(router_event(&c).await, op("a", "psst", 2));
        assert_eq!(router_event(&b).await, op("a", "not-c", 3));

        // datastore: relayed to the others, and in a late joiner's welcome.
        b.send(ClientCommand::datastore("score", "42")).await.unwrap();
        let relayed =
            ClientEvent::Hub(FromHub::Datastore { unique: b_unique.clone(), key: "score".into(), value: "42".into() });
        assert_eq!(router_event(&a).await, relayed);
        assert_eq!(router_event(&c).await, relayed);
        let d = join("delta", Some("d")).await.unwrap();
        let ClientEvent::Welcome { clients, .. } = router_event(&d).await else { panic!("d: no welcome") };
        let b_record = clients.iter().find(|c| c.unique == b_unique).expect("b in d's welcome");
        assert_eq!(b_record.datastore.get("score").map(String::as_str), Some("42"));
        for conn in [&a, &b, &c] {
            assert!(matches!(router_event(conn).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.unique == "d"));
        }

        // bye: the others see it leave with its reason; the client ends cleanly.
        d.send(ClientCommand::bye(Some("done"))).await.unwrap();
        for conn in [&a, &b, &c] {
            assert!(matches!(router_event(conn).await,
                ClientEvent::Hub(FromHub::Disconnected { client, reason }) if client.unique == "d" && reason == "done"));
        }
        d.join().await.unwrap();

        // replace: a second "c" takes over; the old one hears `closing`, the others see it
        // leave and the new one join.
        let c2 = join("charlie again", Some("c")).await.unwrap();
        assert!(matches!(router_event(&c2).await, ClientEvent::Welcome { .. }));
        assert_eq!(router_event(&c).await, ClientEvent::Hub(FromHub::Closing { reason: "replaced".into() }));
        for conn in [&a, &b] {
            assert!(matches!(router_event(conn).await,
                ClientEvent::Hub(FromHub::Disconnected { client, reason }) if client.unique == "c" && reason == "replaced"));
            assert!(
                matches!(router_event(conn).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.name == "charlie again")
            );
        }
        c.join().await.unwrap();

        // A wrong token is refused, and the client ends with the hub's refusal.
        let hello = Hello::new("mallory", "demo").with_token("wrong");
        let config = ClientConfig::new(router::message_config(), hello);
        let m = router::connect(rt.clone(), addr, config, SocketOptions::new(), DriverConfig::default()).await.unwrap();
        // Read to the end first: joining at once would close before the refusal arrives.
        if let Some(event) = m.recv().await {
            panic!("a refused client got {event:?}");
        }
        match m.join().await {
            Err(DriverError::Machine(RouterError::Refused { code: RefuseCode::Unauthorized, .. })) => {}
            other => panic!("expected unauthorized, got {other:?}"),
        }

        // A client that just drops its connection says `bye` on the way out.
        drop(c2);
        for conn in [&a, &b] {
            assert!(matches!(router_event(conn).await,
                ClientEvent::Hub(FromHub::Disconnected { client, reason }) if client.unique == "c" && reason == "bye"));
        }

        // The hub's own view: who is in, and every join and leave in order.
        let mut uniques: Vec<String> = hub.clients().into_iter().map(|c| c.unique).collect();
        uniques.sort();
        let mut expected = vec!["a".to_string(), b_unique.clone()];
        expected.sort();
        assert_eq!(uniques, expected);
        let mut log = Vec::new();
        while let Some(event) = hub.try_event() {
            log.push(match event {
                HubEvent::Joined(c) => format!("+{}", c.name),
                HubEvent::Left { client, reason } => format!("-{} {reason}", client.name),
            });
        }
        assert_eq!(
            log,
            [
                "+alpha",
                "+bravo",
                "+charlie",
                "+delta",
                "-delta done",
                "-charlie replaced",
                "+charlie again",
                "-charlie again bye"
            ]
        );
        a.join().await.unwrap();
        b.join().await.unwrap();
    });
}

/// A connection that never says hello (nor anything else) is refused (`bad_request`) and
/// closed when the hub's `hello_timeout` passes: connections that never speak cannot hold the
/// hub's resources (the hub issue's attack: 500 of them held 519 MB for as long as they liked).
pub fn router_hello_timeout<A: Adapter>() {
    use crate::router::{self, HubSettings};
    use std::io::Read;
    use switchboard_proto::router::{Hub, HubConfig, RefuseCode, Refused};
    use switchboard_proto::SplitMix64;

    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let timeout = Duration::from_millis(150);
        let hub = Hub::new(HubConfig::default().with_hello_timeout(Some(timeout)), Box::new(SplitMix64::new(1)));
        let (hub, accept) = router::serve_hub(rt.clone(), listener, hub, HubSettings::default()).unwrap();
        rt.spawn(async move {
            let _ = accept.await;
        });
        let started = StdInstant::now();
        let silent = thread::spawn(move || {
            let mut silent = std::net::TcpStream::connect(addr).unwrap();
            silent.set_read_timeout(Some(GUARD)).unwrap();
            let mut got = Vec::new();
            silent.read_to_end(&mut got).unwrap();
            got
        });
        let got = loop {
            if silent.is_finished() {
                break silent.join().unwrap();
            }
            crate::runtime::sleep_for(&rt, Duration::from_millis(10)).await;
        };
        assert!(started.elapsed() >= timeout, "closed before its time");
        // One error frame (type 4, id 0) carrying the refusal, then EOF.
        assert_eq!(got[4], 4, "an error frame: {got:?}");
        let refused = Refused::from_bytes(&got[13..]).unwrap();
        assert_eq!((refused.code, refused.reason.as_str()), (RefuseCode::BadRequest, "no hello in time"));
        assert_eq!(hub.connections().len(), 0, "nothing is kept for it");
    });
}

/// A client that sends its hello and then falls silent is dropped by the hub's heartbeat
/// (`dead_after`), and the others see it leave with reason `"timeout"`.
pub fn router_drops_a_silent_client<A: Adapter>() {
    use crate::router::{self, HubEvent, HubSettings};
    use std::io::Write;
    use switchboard_proto::router::{ClientConfig, ClientEvent, FromHub, Hello, Hub, HubConfig};
    use switchboard_proto::SplitMix64;

    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let mut settings = HubSettings::default();
        settings.message =
            settings.message.with_heartbeat(Some(Duration::from_millis(40)), Some(Duration::from_millis(400)));
        let hub = Hub::new(HubConfig::default(), Box::new(SplitMix64::new(1)));
        let (hub, accept) = router::serve_hub(rt.clone(), listener, hub, settings).unwrap();
        rt.spawn(async move {
            let _ = accept.await;
        });
        // The watcher keeps its heartbeat well inside the hub's `dead_after`.
        let beat = router::message_config().with_heartbeat(Some(Duration::from_millis(40)), None);
        let watcher = ClientConfig::new(beat, Hello::new("watcher", "demo").with_unique("w"));
        let watcher =
            router::connect(rt.clone(), addr, watcher, SocketOptions::new(), DriverConfig::default()).await.unwrap();
        assert!(matches!(router_event(&watcher).await, ClientEvent::Welcome { .. }));

        // A hand-written hello (type 0 = request, id 1), then silence: no heartbeats, no reads.
        let hello = Hello::new("sleeper", "demo").with_unique("s").to_bytes().unwrap();
        let mut frame = ((4 + 1 + 8 + hello.len()) as u32).to_le_bytes().to_vec();
        frame.push(0);
        frame.extend_from_slice(&1u64.to_le_bytes());
        frame.extend_from_slice(&hello);
        let mut sleeper = std::net::TcpStream::connect(addr).unwrap();
        sleeper.write_all(&frame).unwrap();

        assert!(matches!(router_event(&watcher).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.unique == "s"));
        match router_event(&watcher).await {
            ClientEvent::Hub(FromHub::Disconnected { client, reason }) => {
                assert_eq!((client.unique.as_str(), reason.as_str()), ("s", "timeout"))
            }
            other => panic!("expected the sleeper to be dropped, got {other:?}"),
        }
        let mut left = None;
        while let Some(event) = hub.try_event() {
            if let HubEvent::Left { client, reason } = event {
                left = Some((client.unique, reason));
            }
        }
        assert_eq!(left, Some(("s".to_string(), "timeout".to_string())));
        drop(sleeper);
        watcher.join().await.unwrap();
    });
}

/// A client that stops reading while another floods it is dropped as `"slow"` once it has
/// stayed over its command cap for `slow_after`; the flood goes on reaching everyone else.
pub fn router_drops_a_slow_client<A: Adapter>() {
    use crate::router::{self, HubSettings};
    use std::io::Write;
    use switchboard_proto::router::{ClientCommand, ClientConfig, ClientEvent, FromHub, Hello, Hub, HubConfig};
    use switchboard_proto::SplitMix64;

    run_direct::<A, _>(|rt| async move {
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let settings = HubSettings {
            // Generous for a healthy client on a loaded machine; the stalled one is over its
            // cap after about a thousand operations and stays there.
            slow_after: Duration::from_millis(500),
            driver: DriverConfig { commands: 1024, ..DriverConfig::default() },
            // Small kernel buffers towards the clients: one that does not read fills them soon.
            options: SocketOptions::new().nodelay(true).send_buffer(16 * 1024),
            ..HubSettings::default()
        };
        let hub = Hub::new(HubConfig::default(), Box::new(SplitMix64::new(3)));
        let (hub, accept) = router::serve_hub(rt.clone(), listener, hub, settings).unwrap();
        rt.spawn(async move {
            let _ = accept.await;
        });
        let join = |name: &str| {
            let config = ClientConfig::new(router::message_config(), Hello::new(name, "demo").with_unique(name));
            router::connect(rt.clone(), addr, config, SocketOptions::new(), DriverConfig::default())
        };
        let sender = join("sender").await.unwrap();
        assert!(matches!(router_event(&sender).await, ClientEvent::Welcome { .. }));
        let reader = join("reader").await.unwrap();
        assert!(matches!(router_event(&reader).await, ClientEvent::Welcome { .. }));
        assert!(
            matches!(router_event(&sender).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.unique == "reader")
        );

        // The stalled client: a hand-written hello, then it never reads.
        let hello = Hello::new("stalled", "demo").with_unique("stalled").to_bytes().unwrap();
        let mut frame = ((4 + 1 + 8 + hello.len()) as u32).to_le_bytes().to_vec();
        frame.push(0);
        frame.extend_from_slice(&1u64.to_le_bytes());
        frame.extend_from_slice(&hello);
        let stalled = std::net::TcpStream::connect(addr).unwrap();
        SockRef::from(&stalled).set_recv_buffer_size(16 * 1024).unwrap();
        (&stalled).write_all(&frame).unwrap();
        for conn in [&sender, &reader] {
            assert!(
                matches!(router_event(conn).await, ClientEvent::Hub(FromHub::Connected(doc)) if doc.unique == "stalled")
            );
        }

        // Flood: far more than the stalled client's buffers and cap hold. The reader takes
        // everything; the stalled client is dropped on the way.
        let rounds = 2500;
        let blob = bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![7; 512] };
        let flood = async {
            for k in 0..rounds {
                let data = bson::doc! { "k": k, "blob": blob.clone() };
                sender.send(ClientCommand::broadcast("flood", data)).await.unwrap();
            }
        };
        let read = async {
            let (mut ops, mut slow) = (0, false);
            while ops < rounds || !slow {
                match router_event(&reader).await {
                    ClientEvent::Hub(FromHub::Op { op, .. }) if op == "flood" => ops += 1,
                    ClientEvent::Hub(FromHub::Disconnected { client, reason }) => {
                        assert_eq!((client.unique.as_str(), reason.as_str()), ("stalled", "slow"));
                        slow = true;
                    }
                    other => panic!("reader got {other:?}"),
                }
            }
            ops
        };
        let ((), ops) = join_both(flood, read).await;
        assert_eq!(ops, rounds);
        assert_eq!(hub.len(), 2);
        drop(stalled);
        sender.join().await.unwrap();
        reader.join().await.unwrap();
    });
}

/// Run two futures to completion concurrently on the current task.
async fn join_both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}
