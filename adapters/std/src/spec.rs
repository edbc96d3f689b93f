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
//! let port = server.local_addr().port();
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

use crate::{serve, spawn, spawn_datagram, Running, Server, Session, Settings};

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

/// Listen on a `tcp://` spec; every accepted connection runs a fresh [`PacketConnection`] (its
/// own cipher state) and is handed to the session `on_connection` returns.
pub fn serve_spec<OC, H>(spec: &str, on_connection: OC) -> Result<Server, SpecConnectError>
where
    OC: FnMut(SocketAddr) -> H + Send + 'static,
    H: Session<PacketConnection>,
{
    let parsed = parse(spec)?;
    machine(&parsed)?; // a bad `crypto=` is refused now, not at the first connection
    if parsed.scheme != Scheme::Tcp {
        return Err(SpecConnectError::Unsupported(parsed.scheme));
    }
    let settings = Settings::packet();
    let listener: TcpListener = switchboard_rt::net::listen_tcp(socket_addr(&parsed.address)?, &settings.socket)?;
    let make = move |_peer| machine(&parsed).expect("the spec was checked when the server started");
    Ok(serve(listener, settings, make, on_connection)?)
}

/// Bind a `udp://` spec and run a [`PacketDatagram`] (one frame per datagram, the spec's cipher)
/// on a driver thread, sending to `default_to` when a command names no destination.
pub fn bind_spec(spec: &str, default_to: Option<SocketAddr>) -> Result<Running<PacketDatagram>, SpecConnectError> {
    let parsed = parse(spec)?;
    if parsed.scheme != Scheme::Udp {
        return Err(SpecConnectError::Unsupported(parsed.scheme));
    }
    let machine = parsed.packet_datagram(Box::new(OsEntropy), default_to).map_err(SpecConnectError::Open)?;
    let settings = Settings::new().close_with(|| switchboard_proto::stage::DatagramCommand::Close);
    let socket: UdpSocket = switchboard_rt::net::bind_udp(socket_addr(&parsed.address)?, &settings.socket)?;
    Ok(spawn_datagram(socket, machine, settings)?)
}
