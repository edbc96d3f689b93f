//! Why a driver stopped, and who was wrong.

use std::io;

use switchboard_proto::{Blame, Fault};

/// Why a driven connection did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DriverError<E: std::error::Error + 'static> {
    /// The machine finished with this error (see its [`Blame`] for who caused it).
    #[error("{0}")]
    Machine(#[source] E),
    /// The socket failed: reset by the peer, a read or write timeout from
    /// [`SocketOptions`](switchboard_rt::SocketOptions), or a local I/O error.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The machine finished, but the peer did not take everything it transmitted within the
    /// linger time, so the rest was dropped when the socket was shut down.
    #[error("{unsent} bytes were still unwritten when the linger time ran out")]
    Unflushed {
        /// Bytes accepted from the machine that never reached the socket.
        unsent: usize,
    },
    /// A datagram machine asked for [`Output::Transmit`](switchboard_proto::Output::Transmit)
    /// but the driver was given no default destination and has received no datagram to answer.
    #[error("the machine sent a datagram without an address, with no default destination and no sender to answer")]
    NoDestination,
    /// A stream machine asked for
    /// [`Output::TransmitTo`](switchboard_proto::Output::TransmitTo), which a stream cannot do.
    #[error("the machine sent an addressed datagram on a stream transport")]
    DatagramOnStream,
}

impl<E: std::error::Error + Blame + 'static> Blame for DriverError<E> {
    fn fault(&self) -> Fault {
        match self {
            DriverError::Machine(e) => e.fault(),
            // The transport broke or the peer stopped reading: nothing the caller did.
            DriverError::Io(_) | DriverError::Unflushed { .. } => Fault::Peer,
            // The machine and the driver were put together wrongly.
            DriverError::NoDestination | DriverError::DatagramOnStream => Fault::Caller,
        }
    }
}

impl<E: std::error::Error + 'static> DriverError<E> {
    /// The machine's error, if that is why the connection ended.
    pub fn machine(&self) -> Option<&E> {
        match self {
            DriverError::Machine(e) => Some(e),
            _ => None,
        }
    }
}
