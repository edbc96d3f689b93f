//! Open packet connections from STAGE connection specs, `crypto=` included — the seed's
//! `broker.join` / `broker.ready` on plain threads:
//!
//! ```
//! use switchboard_std::proto::stage::{Command, Event};
//! use switchboard_std::{connect_spec, serve_spec, Notice};
//!
//! let options = "packet=64k,64k&crypto=SEED/CBC/PKCS5Padding=secret";
//! let server = serve_spec(&format!("tcp://127.0.0.1:0?{options}"), |_peer| {
//!     // echo every decrypted frame back, encrypted again
//!     |notice: Notice<Event, _>, control: &mut switchboard_std::Control<Command>| {
//!         if let Notice::Event(Event::Frame(frame)) = notice {
//!             control.send(Command::SendBody(frame.slice(4..)));
//!         }
//!     }
//! })?;
//! let port = server.local_addr().tcp().expect("a TCP server").port();
//!
//! let mut client = connect_spec(&format!("tcp://127.0.0.1:{port}?{options}"))?;
//! client.handle.send(Command::SendBody("hello".into())).unwrap();
//! let Some(Event::Frame(echo)) = client.events.by_ref().find_map(Notice::event) else { panic!("no echo") };
//! assert_eq!(&echo[4..], b"hello");
//! client.close_and_join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Parsing and building the machine is the protocol crate's
//! ([`ConnectionSpec::packet_connection`](switchboard_proto::stage::ConnectionSpec::packet_connection));
//! the spec helpers of `switchboard-rt` do the rest, shared with the async adapters.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use switchboard_proto::stage::{Address, PacketConnection, PacketDatagram, Scheme};
use switchboard_rt::spec::{machine, parse, socket_addr};
use switchboard_rt::{OsEntropy, SpecConnectError};

use crate::server::serve_as;
use crate::{spawn, spawn_datagram, Addr, Running, Server, Session, Settings};

/// Connect to a `tcp://` or `unix://` spec and run a [`PacketConnection`] with its framing,
/// timers and cipher on a driver thread.
pub fn connect_spec(spec: &str) -> Result<Running<PacketConnection>, SpecConnectError> {
    connect_spec_with(spec, Settings::packet())
}

/// [`connect_spec`] with driver settings (socket options, capacities, linger).
pub fn connect_spec_with(
    spec: &str,
    settings: Settings<switchboard_proto::stage::Command>,
) -> Result<Running<PacketConnection>, SpecConnectError> {
    let spec = parse(spec)?;
    let conn = machine(&spec)?;
    match (&spec.scheme, &spec.address) {
        (Scheme::Tcp, address) => {
            let stream = switchboard_rt::net::connect_tcp(socket_addr(address)?, &settings.socket)?;
            Ok(spawn(stream, conn, settings)?)
        }
        #[cfg(unix)]
        (Scheme::Unix, Address::Unix(path)) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            Ok(spawn(stream, conn, settings)?)
        }
        (scheme, _) => Err(SpecConnectError::Unsupported(*scheme)),
    }
}

/// Listen on a `tcp://` or `unix://` spec; every accepted connection runs a fresh
/// [`PacketConnection`] (its own cipher state) and is handed to the session `on_connection`
/// returns. Peers and [`Server::local_addr`] are [`Addr`]s, since the spec picks the transport.
///
/// A `unix://` path must not exist yet (as with the async adapters' `listen_spec`): a socket
/// file left by an earlier server is not removed here, since telling a stale one from a live
/// one's is racy. The server does not remove its socket file when it stops either.
pub fn serve_spec<OC, H>(spec: &str, on_connection: OC) -> Result<Server<Addr>, SpecConnectError>
where
    OC: FnMut(Addr) -> H + Send + 'static,
    H: Session<PacketConnection, Addr>,
{
    let parsed = parse(spec)?;
    machine(&parsed)?; // a bad `crypto=` is refused now, not at the first connection
    let settings = Settings::packet();
    let listener = match (&parsed.scheme, &parsed.address) {
        (Scheme::Tcp, address) => {
            let listener: TcpListener = switchboard_rt::net::listen_tcp(socket_addr(address)?, &settings.socket)?;
            Listening::Tcp(listener)
        }
        #[cfg(unix)]
        (Scheme::Unix, Address::Unix(path)) => {
            Listening::Unix(switchboard_rt::sockets::unix_listener(path, &settings.socket)?)
        }
        (scheme, _) => return Err(SpecConnectError::Unsupported(*scheme)),
    };
    let make = move |_peer| machine(&parsed).expect("the spec was checked when the server started");
    Ok(match listener {
        Listening::Tcp(l) => serve_as(l, Addr::Tcp, settings, make, on_connection)?,
        #[cfg(unix)]
        Listening::Unix(l) => serve_as(l, Addr::Unix, settings, make, on_connection)?,
    })
}

enum Listening {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// Bind a `udp://` spec and run a [`PacketDatagram`] (one frame per datagram, the spec's cipher)
/// on a driver thread, sending to `default_to` when a command names no destination.
pub fn bind_spec(spec: &str, default_to: Option<SocketAddr>) -> Result<Running<PacketDatagram>, SpecConnectError> {
    let parsed = parse(spec)?;
    if parsed.scheme != Scheme::Udp {
        return Err(SpecConnectError::Unsupported(parsed.scheme));
    }
    let machine = parsed.packet_datagram(Box::new(OsEntropy), default_to).map_err(SpecConnectError::Open)?;
    let settings = Settings::new();
    let socket: UdpSocket = switchboard_rt::net::bind_udp(socket_addr(&parsed.address)?, &settings.socket)?;
    Ok(spawn_datagram(socket, machine, settings)?)
}
