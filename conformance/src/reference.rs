//! Switchboard's own targets for the suites: the servers other implementations' clients can
//! test against, and what the suites check Switchboard with.

use std::io;
use std::net::{SocketAddr, TcpListener};

use switchboard_proto::message::{self, MessageConfig, MessageConnection};
use switchboard_proto::router::{Hub, HubConfig, UniquePolicy};
use switchboard_proto::stage::{self, FramingConfig, PacketConnection};
use switchboard_std::{serve, Control, Notice, Server, Settings};
use switchboard_tokio::router::{self, HubSettings, RouterHub};
use switchboard_tokio::{OsEntropy, Runtime, Tokio};

/// The STAGE echo target of [`crate::stage`]: `packet` framing with inbound limit `max_in`, OUT
/// = 0, each frame sent back as it arrived (a slice of the receive buffer, header included),
/// one thread-driven connection per client.
pub fn stage_echo(listener: TcpListener, max_in: usize) -> io::Result<Server<SocketAddr>> {
    let config = stage_config(max_in);
    serve(
        listener,
        Settings::packet(),
        move |_| PacketConnection::new(config),
        |_| {
            |notice: Notice<stage::Event, stage::Error>, control: &mut Control<stage::Command>| {
                if let Notice::Event(stage::Event::Frame(frame)) = notice {
                    control.send(stage::Command::Send(frame));
                }
            }
        },
    )
}

/// The framing configuration of the STAGE target: `packet` with inbound limit `max_in`, OUT = 0
/// (each echo written at once). For running the target on another driver.
pub fn stage_config(max_in: usize) -> FramingConfig {
    FramingConfig::packet(max_in, 0)
}

/// The message echo target of [`crate::message`]: message frames with inbound limit `max_in`,
/// every request answered with its own payload, no heartbeats of its own.
pub fn message_echo(
    listener: TcpListener,
    max_in: usize,
) -> io::Result<Server<SocketAddr, message::Command, message::Event>> {
    let config = MessageConfig::new(FramingConfig::packet(max_in, 0)).with_heartbeat(None, None);
    // Checked once here (an IN too small for a message frame is the caller's mistake), so the
    // per-connection constructor below cannot fail.
    MessageConnection::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    serve(
        listener,
        Settings::new(),
        move |_| MessageConnection::new(config).expect("the configuration was accepted above"),
        |_| {
            |notice: Notice<message::Event, message::Error>, control: &mut Control<message::Command>| {
                if let Notice::Event(message::Event::Request { id, payload }) = notice {
                    control.send(message::Command::Respond { id, payload });
                }
            }
        },
    )
}

/// The router target of [`crate::router`]: Switchboard's §5 hub ([`switchboard_rt::router`])
/// with default settings (policy `replace`, no token, no limit, 15 s `dead_after`), on a tokio
/// runtime of its own. `policy` lets a test serve a hub that breaks the suite's contract.
pub fn router_hub(listener: TcpListener, policy: UniquePolicy) -> io::Result<RouterTarget> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let hub = Hub::new(HubConfig::default().with_policy(policy), Box::new(OsEntropy));
    let (hub, accept) = runtime.block_on(async {
        let listener = Tokio.tcp_listener(listener)?;
        router::serve_hub(Tokio, listener, hub, HubSettings::default())
    })?;
    runtime.spawn(accept);
    Ok(RouterTarget { addr, hub, runtime })
}

/// A running [`router_hub`].
pub struct RouterTarget {
    addr: SocketAddr,
    hub: RouterHub,
    runtime: tokio::runtime::Runtime,
}

impl RouterTarget {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub, for its clients and its joins and leaves.
    pub fn hub(&self) -> &RouterHub {
        &self.hub
    }

    /// Stop serving: every connection is dropped.
    pub fn shutdown(self) {
        self.runtime.shutdown_background();
    }
}

impl std::fmt::Debug for RouterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterTarget").field("addr", &self.addr).field("hub", &self.hub).finish()
    }
}
