//! Open packet connections from connection specs (`tcp://…`, `unix://…`, `udp://…`), the
//! `crypto=` option included: [`crate::RuntimeExt::connect_spec`],
//! [`listen_spec`](crate::RuntimeExt::listen_spec), [`bind_spec`](crate::RuntimeExt::bind_spec).
//!
//! The spec is parsed and the connection built by the protocol crate
//! ([`ConnectionSpec::packet_connection`]); this module only opens the socket it names. Each
//! connection gets its own cipher, with [`OsEntropy`] for the sealed profile's nonces.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use switchboard_proto::stage::spec::OpenError;
use switchboard_proto::stage::{Address, ConnectionSpec, PacketConnection, Scheme};
use switchboard_proto::{Blame, Fault};

use crate::async_driver::{Connection, DriverConfig};
use crate::runtime::{Listener, Runtime};
use crate::{Connections, OsEntropy, RuntimeExt, SocketOptions};

/// Why a spec could not be opened: a bad spec or `crypto` option (the caller's), a scheme this
/// call does not handle, or the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecConnectError {
    /// The spec or its `crypto` option is malformed ([`OpenError`] names which).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The scheme is valid but not one this call opens (`quic`, or `udp` for a stream call).
    #[error("{0}:// cannot be opened here")]
    Unsupported(Scheme),
    /// Resolving, binding, listening or connecting failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Blame for SpecConnectError {
    fn fault(&self) -> Fault {
        match self {
            SpecConnectError::Open(_) | SpecConnectError::Unsupported(_) => Fault::Caller,
            SpecConnectError::Io(_) => Fault::Peer,
        }
    }
}

/// Parse `text` and build a fresh connection for it (the cipher too) — parsed once more per
/// connection so every connection has its own cipher state.
pub fn parse(text: &str) -> Result<ConnectionSpec, SpecConnectError> {
    Ok(ConnectionSpec::parse(text).map_err(OpenError::from)?)
}

/// A fresh packet connection for `spec`, with OS entropy.
pub fn machine(spec: &ConnectionSpec) -> Result<PacketConnection, SpecConnectError> {
    Ok(spec.packet_connection(Box::new(OsEntropy))?)
}

/// The socket address of an `Inet` or `Host` address (a host name is resolved here, blocking,
/// as `std` does; the machines never resolve).
pub fn socket_addr(address: &Address) -> Result<SocketAddr, SpecConnectError> {
    match address {
        Address::Inet(addr) => Ok(*addr),
        Address::Host { host, port } => (host.as_str(), *port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")).into()),
        Address::Unix(_) => Err(io::Error::new(io::ErrorKind::InvalidInput, "not an IP address").into()),
    }
}

enum Inner<R: Runtime> {
    Tcp(R::TcpListener),
    #[cfg(unix)]
    Unix(R::UnixListener),
}

/// A listener opened from a spec (`tcp://` or `unix://`): every connection it accepts runs a
/// fresh [`PacketConnection`] with the spec's framing and cipher.
pub struct SpecListener<R: Runtime> {
    rt: R,
    spec: ConnectionSpec,
    inner: Inner<R>,
}

impl<R: Runtime> SpecListener<R> {
    pub(crate) fn open(rt: &R, spec: ConnectionSpec) -> Result<Self, SpecConnectError> {
        machine(&spec)?; // a bad crypto option fails here, not at the first accept
        let inner = match (&spec.scheme, &spec.address) {
            #[cfg(unix)]
            (Scheme::Unix, Address::Unix(path)) => Inner::Unix(rt.listen_unix(path)?),
            (Scheme::Tcp, address) => Inner::Tcp(rt.listen(socket_addr(address)?)?),
            (scheme, _) => return Err(SpecConnectError::Unsupported(*scheme)),
        };
        Ok(SpecListener { rt: rt.clone(), spec, inner })
    }

    /// The spec it was opened with.
    pub fn spec(&self) -> &ConnectionSpec {
        &self.spec
    }

    /// The TCP address it listens on (the port the system picked for port 0); an error for a
    /// Unix listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Tcp(l) => l.local_addr(),
            #[cfg(unix)]
            Inner::Unix(_) => Err(io::Error::new(io::ErrorKind::InvalidInput, "a unix listener has no IP address")),
        }
    }

    /// Accept one connection and drive it.
    pub async fn accept(&self) -> Result<Connection<PacketConnection>, SpecConnectError> {
        let conn = machine(&self.spec)?;
        Ok(match &self.inner {
            Inner::Tcp(l) => self.rt.drive(conn, l.accept().await?.0, &DriverConfig::default()),
            #[cfg(unix)]
            Inner::Unix(l) => self.rt.drive(conn, l.accept().await?.0, &DriverConfig::default()),
        })
    }

    /// Accept connections for ever, spawning `handler` for each (see
    /// [`RuntimeExt::serve`]).
    pub fn serve<H, Fut>(self, handler: H) -> impl Future<Output = io::Result<()>> + Send
    where
        H: FnMut(Connection<PacketConnection>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let SpecListener { rt, spec, inner } = self;
        // Checked in `open`: the spec builds a machine, so this closure cannot fail.
        let make = move || spec.packet_connection(Box::new(OsEntropy)).expect("checked when the listener opened");
        async move {
            match inner {
                Inner::Tcp(l) => rt.serve(l, move |_| make(), handler).await,
                #[cfg(unix)]
                Inner::Unix(l) => rt.serve(l, move |_| make(), handler).await,
            }
        }
    }

    /// [`serve`](Self::serve), keeping every connection reachable by id in `connections` (the
    /// seed's `broker.f(id)` / `broker.close(id)`; see [`RuntimeExt::serve_tracked`]).
    pub fn serve_tracked<H, Fut>(
        self,
        connections: Connections<PacketConnection>,
        handler: H,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        H: FnMut(u64, Connection<PacketConnection>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let SpecListener { rt, spec, inner } = self;
        // Checked in `open`: the spec builds a machine, so this closure cannot fail.
        let make = move || spec.packet_connection(Box::new(OsEntropy)).expect("checked when the listener opened");
        let (options, config) = (SocketOptions::new(), DriverConfig::default());
        async move {
            match inner {
                Inner::Tcp(l) => rt.serve_tracked(l, connections, options, config, move |_| make(), handler).await,
                #[cfg(unix)]
                Inner::Unix(l) => rt.serve_tracked(l, connections, options, config, move |_| make(), handler).await,
            }
        }
    }
}
