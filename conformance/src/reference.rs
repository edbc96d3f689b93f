//! Switchboard's own targets for the suites: the servers other implementations' clients can
//! test against, and what the suites check Switchboard with.

use std::io;
use std::net::{SocketAddr, TcpListener};

use switchboard_proto::message::{self, MessageConfig, MessageConnection};
use switchboard_proto::stage::{self, FramingConfig, PacketConnection};
use switchboard_std::{serve, Control, Notice, Server, Settings};

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
        Settings::new().close_with(|| message::Command::Close),
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
