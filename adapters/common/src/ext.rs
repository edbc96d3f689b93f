//! Everything an application does with a runtime, written once over [`Runtime`]: connect,
//! listen, serve, bind, drive. Each adapter crate re-exports this trait next to its runtime.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::async_driver::{datagram_driver, stream_driver, Connection, Drivable, DriverConfig};
use crate::runtime::{sleep_until, ByteStream, DatagramSocket, Listener, Runtime, SocketRef};
use crate::spec::{SpecConnectError, SpecListener};
use crate::{sockets, Connections, Direct, SocketOptions};
use switchboard_proto::stage::{Address, PacketConnection, PacketDatagram, Scheme};

/// Accept errors that end one connection attempt, not the server.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// Out of descriptors or memory: wait a moment for connections to close, then accept again.
fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// Connect, listen, serve and drive on runtime `Self`. Implemented for every [`Runtime`].
///
/// The async methods take the runtime by value (runtime handles are cheap to clone), so the
/// futures they return borrow nothing and can be spawned.
pub trait RuntimeExt: Runtime {
    /// Spawn a driver running `machine` over `io`.
    fn drive<M: Drivable, S: ByteStream>(&self, machine: M, io: S, config: &DriverConfig) -> Connection<M> {
        let (connection, driver) = stream_driver(self.clone(), machine, io, config);
        self.spawn(driver);
        connection
    }

    /// Spawn a datagram driver running `machine` over `socket` (pass an `Arc` of the socket to
    /// keep a handle for multicast membership changes).
    fn drive_datagram<M: Drivable, U: DatagramSocket>(
        &self,
        machine: M,
        socket: U,
        config: &DriverConfig,
    ) -> Connection<M> {
        let (connection, driver) = datagram_driver(self.clone(), machine, socket, config);
        self.spawn(driver);
        connection
    }

    /// Connect over TCP and drive `machine` with default options.
    fn connect<M: Drivable>(
        self,
        addr: SocketAddr,
        machine: M,
    ) -> impl Future<Output = io::Result<Connection<M>>> + Send {
        self.connect_with(addr, SocketOptions::new(), DriverConfig::default(), machine)
    }

    /// Connect over TCP with `options` applied before connecting, and drive `machine`.
    fn connect_with<M: Drivable>(
        self,
        addr: SocketAddr,
        options: SocketOptions,
        config: DriverConfig,
        machine: M,
    ) -> impl Future<Output = io::Result<Connection<M>>> + Send {
        let rt = self;
        async move {
            let stream = rt.tcp_connect(addr, &options).await?;
            Ok(rt.drive(machine, stream, &config))
        }
    }

    /// Connect to a Unix socket and drive `machine`.
    #[cfg(unix)]
    fn connect_unix<M: Drivable>(
        self,
        path: impl AsRef<std::path::Path>,
        config: DriverConfig,
        machine: M,
    ) -> impl Future<Output = io::Result<Connection<M>>> + Send {
        let rt = self;
        let path = path.as_ref().to_path_buf();
        async move {
            let stream = rt.unix_connect(path).await?;
            Ok(rt.drive(machine, stream, &config))
        }
    }

    /// A TCP listener on `addr` with default options (`SO_REUSEADDR` on).
    fn listen(&self, addr: impl ToSocketAddrs) -> io::Result<Self::TcpListener> {
        self.listen_with(addr, &SocketOptions::new())
    }

    /// A TCP listener on `addr`, `options` applied before it binds (accepted sockets inherit
    /// most of them).
    fn listen_with(&self, addr: impl ToSocketAddrs, options: &SocketOptions) -> io::Result<Self::TcpListener> {
        self.tcp_listener(sockets::tcp_listener(addr, options)?)
    }

    /// A Unix listener at `path` (which must not exist).
    #[cfg(unix)]
    fn listen_unix(&self, path: impl AsRef<std::path::Path>) -> io::Result<Self::UnixListener> {
        self.unix_listener(sockets::unix_listener(path, &SocketOptions::new())?)
    }

    /// A UDP socket bound to `addr`, `options` applied before it binds.
    fn bind_udp(&self, addr: impl ToSocketAddrs, options: &SocketOptions) -> io::Result<Self::Udp> {
        self.udp(sockets::udp_socket(addr, options)?)
    }

    /// Accept connections for ever: for each, `make` a machine, spawn its driver, and spawn
    /// `handler` with the [`Connection`]. Returns only on a listener error that is not about
    /// one connection. To reach connections by id from elsewhere, use
    /// [`serve_tracked`](Self::serve_tracked).
    fn serve<L, M, F, H, Fut>(self, listener: L, make: F, handler: H) -> impl Future<Output = io::Result<()>> + Send
    where
        L: Listener,
        M: Drivable,
        F: FnMut(&L::Addr) -> M + Send + 'static,
        H: FnMut(Connection<M>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.serve_with(listener, SocketOptions::new(), DriverConfig::default(), make, handler)
    }

    /// [`serve`](Self::serve), applying `options` to every accepted socket and running its
    /// driver with `config`. A socket the options cannot be applied to is dropped.
    fn serve_with<L, M, F, H, Fut>(
        self,
        listener: L,
        options: SocketOptions,
        config: DriverConfig,
        mut make: F,
        mut handler: H,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        L: Listener,
        M: Drivable,
        F: FnMut(&L::Addr) -> M + Send + 'static,
        H: FnMut(Connection<M>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rt = self;
        accept_each(rt.clone(), listener, options, move |stream, addr| {
            let connection = rt.drive(make(&addr), stream, &config);
            rt.spawn(handler(connection));
        })
    }

    /// [`serve_with`](Self::serve_with), keeping every connection reachable by id in
    /// `connections` (the seed's `broker.f(id)` / `broker.close(id)`): each accepted connection
    /// gets the registry's next id, which `handler` receives with it. The entry goes when that
    /// connection's driver finishes. The registry holds no sender that would keep a connection
    /// open: when `handler` drops the connection (and every [`Commands`](crate::Commands) clone
    /// is gone) it closes, as with `serve_with`. See [`Connections`].
    fn serve_tracked<L, M, F, H, Fut>(
        self,
        listener: L,
        connections: Connections<M>,
        options: SocketOptions,
        config: DriverConfig,
        mut make: F,
        mut handler: H,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        L: Listener,
        M: Drivable,
        F: FnMut(&L::Addr) -> M + Send + 'static,
        H: FnMut(u64, Connection<M>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rt = self;
        accept_each(rt.clone(), listener, options, move |stream, addr| {
            let (id, connection) = drive_tracked(&rt, &connections, make(&addr), stream, &config);
            rt.spawn(handler(id, connection));
        })
    }

    /// Connect over TCP with `options` applied before connecting, and drive `machine`
    /// [directly](Direct) in the calling task: no driver task, no channels.
    fn connect_direct<M: Drivable>(
        self,
        addr: SocketAddr,
        options: SocketOptions,
        config: DriverConfig,
        machine: M,
    ) -> impl Future<Output = io::Result<Direct<Self, M, Self::Tcp>>> + Send {
        let rt = self;
        async move {
            let stream = rt.tcp_connect(addr, &options).await?;
            Ok(Direct::new(rt, stream, machine, &config))
        }
    }

    /// Connect to a Unix socket and drive `machine` [directly](Direct) in the calling task.
    #[cfg(unix)]
    fn connect_unix_direct<M: Drivable>(
        self,
        path: impl AsRef<std::path::Path>,
        config: DriverConfig,
        machine: M,
    ) -> impl Future<Output = io::Result<Direct<Self, M, Self::Unix>>> + Send {
        let rt = self;
        let path = path.as_ref().to_path_buf();
        async move {
            let stream = rt.unix_connect(path).await?;
            Ok(Direct::new(rt, stream, machine, &config))
        }
    }

    /// Accept connections for ever, with one task per connection: for each, `make` a machine
    /// and spawn `handler` with it driven [directly](Direct) in that task. The lightest way to
    /// serve many connections (one task and no channels each). `options` are applied to every
    /// accepted socket; a socket they cannot be applied to is dropped. Its connections cannot be
    /// reached from outside their task, so there is no by-id registry for them: use
    /// [`serve_tracked`](Self::serve_tracked) for that.
    fn serve_direct<L, M, F, H, Fut>(
        self,
        listener: L,
        options: SocketOptions,
        config: DriverConfig,
        mut make: F,
        mut handler: H,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        L: Listener,
        M: Drivable,
        F: FnMut(&L::Addr) -> M + Send + 'static,
        H: FnMut(Direct<Self, M, L::Stream>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rt = self;
        accept_each(rt.clone(), listener, options, move |stream, addr| {
            let direct = Direct::new(rt.clone(), stream, make(&addr), &config);
            rt.spawn(handler(direct));
        })
    }

    /// Connect to what a spec names (`tcp://` or `unix://`) and drive a [`PacketConnection`]
    /// with its framing and its `crypto` cipher:
    /// `"tcp://127.0.0.1:9000?packet=64k,64k&crypto=AES/CFB/NoPadding=secret"`.
    ///
    /// [`PacketConnection`]: switchboard_proto::stage::PacketConnection
    fn connect_spec(
        self,
        spec: &str,
    ) -> impl Future<Output = Result<Connection<PacketConnection>, SpecConnectError>> + Send {
        let rt = self;
        let parsed = crate::spec::parse(spec).and_then(|s| crate::spec::machine(&s).map(|m| (s, m)));
        async move {
            let (spec, machine) = parsed?;
            match (spec.scheme, &spec.address) {
                #[cfg(unix)]
                (Scheme::Unix, Address::Unix(path)) => {
                    Ok(rt.connect_unix(path.as_str(), DriverConfig::default(), machine).await?)
                }
                (Scheme::Tcp, address) => Ok(rt.connect(crate::spec::socket_addr(address)?, machine).await?),
                (scheme, _) => Err(SpecConnectError::Unsupported(scheme)),
            }
        }
    }

    /// Listen where a spec says (`tcp://` or `unix://`); every accepted connection runs a fresh
    /// [`PacketConnection`](switchboard_proto::stage::PacketConnection) with the spec's framing
    /// and cipher. A bad spec or `crypto` option fails here.
    fn listen_spec(&self, spec: &str) -> Result<SpecListener<Self>, SpecConnectError> {
        SpecListener::open(self, crate::spec::parse(spec)?)
    }

    /// Bind the UDP address a spec names (`udp://`) and drive a
    /// [`PacketDatagram`](switchboard_proto::stage::PacketDatagram) endpoint with its framing and
    /// cipher; `default_to` is where `Send` / `SendBody` go.
    fn bind_spec(
        &self,
        spec: &str,
        default_to: Option<SocketAddr>,
    ) -> Result<Connection<PacketDatagram>, SpecConnectError> {
        let spec = crate::spec::parse(spec)?;
        if spec.scheme != Scheme::Udp {
            return Err(SpecConnectError::Unsupported(spec.scheme));
        }
        let machine = spec.packet_datagram(Box::new(crate::OsEntropy), default_to).map_err(SpecConnectError::Open)?;
        let socket = self.bind_udp(crate::spec::socket_addr(&spec.address)?, &SocketOptions::new())?;
        Ok(self.drive_datagram(machine, socket, &DriverConfig::default()))
    }

    /// Wait `duration`.
    fn sleep(self, duration: Duration) -> impl Future<Output = ()> + Send {
        let rt = self;
        async move { sleep_until(&rt, rt.now().saturating_add(duration)).await }
    }
}

impl<R: Runtime> RuntimeExt for R {}

/// The accept loop `serve_with` and `serve_direct` share: options applied to each accepted
/// socket, then `on_stream`. Returns only on a listener error that is not about one connection.
/// Drive `machine` over `stream` on a task of its own, registered in `connections` for as long
/// as that task runs: its id and its connection. The task ends with the driver, or at once when
/// [`Connections::abort`] rings (the driver, and with it the socket, dropped).
pub(crate) fn drive_tracked<R: Runtime, M: Drivable, S: ByteStream>(
    rt: &R,
    connections: &Connections<M>,
    machine: M,
    stream: S,
    config: &DriverConfig,
) -> (u64, Connection<M>) {
    let (connection, mut driver) = stream_driver(rt.clone(), machine, stream, config);
    // Registered before the driver runs, so it cannot finish unregistered.
    let (id, registered, aborted) = connections.insert(&connection);
    rt.spawn(async move {
        let mut aborted = std::pin::pin!(aborted.recv());
        std::future::poll_fn(|cx| match driver.as_mut().poll(cx).is_ready() || aborted.as_mut().poll(cx).is_ready() {
            true => std::task::Poll::Ready(()),
            false => std::task::Poll::Pending,
        })
        .await;
        drop(driver);
        drop(registered);
    });
    (id, connection)
}

pub(crate) async fn accept_each<R: Runtime, L: Listener>(
    rt: R,
    listener: L,
    options: SocketOptions,
    mut on_stream: impl FnMut(L::Stream, L::Addr) + Send,
) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if options.apply(&*stream.socket_ref()).is_err() {
                    continue;
                }
                on_stream(stream, addr);
            }
            Err(e) if transient(&e) => {}
            Err(e) if exhausted(&e) => rt.clone().sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e),
        }
    }
}
