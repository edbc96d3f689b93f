//! [`KcomError`]: why a KCOM5 transfer failed and who was wrong, the same for every adapter.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use switchboard_proto::kcom::{self as proto, AddressError};
use switchboard_proto::{Blame, Fault};

/// Who was wrong, in one word: see [`KcomError::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The peer broke the protocol (bad magic, echo mismatch, truncated stream, …).
    Peer,
    /// The caller: bad options or address, a message too long, a data source that fell short.
    Caller,
    /// A socket or a local file failed.
    Io,
    /// The `close` deadline passed.
    Timeout,
}

/// What the transfer was waiting for when the deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Waiting {
    /// The sender waited for the receiver to connect.
    Accept,
    /// The receiver waited for the sender to listen.
    Connect,
    /// The connection was up; the exchange itself did not finish.
    Transfer,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waiting::Accept => "waiting for the receiver to connect",
            Waiting::Connect => "waiting for the sender to listen",
            Waiting::Transfer => "transferring",
        })
    }
}

/// Which of our own socket calls failed (see [`KcomError::Open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opening {
    /// Binding the sender's listening socket.
    Bind,
    /// Accepting the receiver's connection.
    Accept,
    /// Connecting the receiver to the sender.
    Connect,
}

impl fmt::Display for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Opening::Bind => "listen on",
            Opening::Accept => "accept on",
            Opening::Connect => "connect to",
        })
    }
}

/// Why a KCOM5 transfer failed, in the blocking and the async APIs alike.
/// [`KcomError::kind`] and [`Blame::fault`] say who was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KcomError {
    /// The peer broke the protocol; the machine's error says how.
    #[error("the peer broke the protocol: {0}")]
    Peer(#[source] proto::Error),
    /// The peer stopped reading and the linger time ran out with this much unsent.
    #[error("the peer stopped reading; {unsent} bytes were never sent")]
    PeerStalled {
        /// Bytes accepted from the machine that never reached the socket.
        unsent: usize,
    },
    /// The address string is malformed.
    #[error("bad address: {0}")]
    Address(#[from] AddressError),
    /// The machine refused what the caller asked (a message too long for KCOM5, say).
    #[error("refused: {0}")]
    Refused(#[source] proto::Error),
    /// The data source ended before the announced length.
    #[error("the data source ended after {got} of the {expected} bytes announced")]
    ShortSource {
        /// Bytes the source gave.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// Reading the data to send failed.
    #[error("reading the data to send: {0}")]
    Source(#[source] io::Error),
    /// Writing the received data failed.
    #[error("writing the received data: {0}")]
    Sink(#[source] io::Error),
    /// One of our own socket calls failed before any peer was involved: the address cannot be
    /// bound (in use, not ours), the accept failed, or the sender's address is unreachable.
    #[error("cannot {opening} {addr}: {source}")]
    Open {
        /// Which call.
        opening: Opening,
        /// The address it was for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An empty list of addresses to bind or connect to.
    #[error("no address to {opening}")]
    NoAddress {
        /// Which call had none.
        opening: Opening,
    },
    /// The connection failed during the transfer (reset, broken pipe).
    #[error("network: {0}")]
    Io(#[source] io::Error),
    /// The async runtime dropped the transfer's driver before it finished (it shut down).
    #[error("the runtime stopped the transfer before it finished")]
    Cancelled,
    /// The `close` deadline passed.
    #[error("timed out after {after:?} {waiting}")]
    Timeout {
        /// The `close` setting.
        after: Duration,
        /// What was still missing.
        waiting: Waiting,
    },
}

impl KcomError {
    /// Who was wrong: the peer, the caller, a socket or a local file, or the clock.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KcomError::Peer(_) | KcomError::PeerStalled { .. } => ErrorKind::Peer,
            KcomError::Address(_)
            | KcomError::Refused(_)
            | KcomError::ShortSource { .. }
            | KcomError::NoAddress { .. }
            | KcomError::Cancelled => ErrorKind::Caller,
            KcomError::Source(_) | KcomError::Sink(_) | KcomError::Open { .. } | KcomError::Io(_) => ErrorKind::Io,
            KcomError::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    /// The machine's protocol error, when the peer broke the protocol or a call was refused.
    pub fn protocol(&self) -> Option<&proto::Error> {
        match self {
            KcomError::Peer(e) | KcomError::Refused(e) => Some(e),
            _ => None,
        }
    }

    /// A machine's error as the API reports it: its deadline is a [`KcomError::Timeout`] naming
    /// the `close` setting (the machine only knew what was left of it), a refusal is the
    /// caller's, anything else the peer's.
    pub fn from_protocol(e: proto::Error, close: Option<Duration>) -> Self {
        match e {
            proto::Error::TimedOut { after } => {
                KcomError::Timeout { after: close.unwrap_or(after), waiting: Waiting::Transfer }
            }
            e if e.fault() == Fault::Caller => KcomError::Refused(e),
            e => KcomError::Peer(e),
        }
    }
}

impl Blame for KcomError {
    /// Peer for protocol errors, stalls, a connection that failed mid-transfer and the deadline
    /// (the peer did not come or did not finish); caller for options, addresses, refused input,
    /// local files and our own sockets (a failed bind, accept or connect is never the peer's).
    fn fault(&self) -> Fault {
        match self.kind() {
            ErrorKind::Peer | ErrorKind::Timeout => Fault::Peer,
            ErrorKind::Caller => Fault::Caller,
            ErrorKind::Io if matches!(self, KcomError::Io(_)) => Fault::Peer,
            ErrorKind::Io => Fault::Caller,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> io::Error {
        io::Error::from(io::ErrorKind::AddrInUse)
    }

    #[test]
    fn our_own_sockets_and_files_are_never_the_peers_fault() {
        let addr: SocketAddr = "127.0.0.1:13600".parse().unwrap();
        for opening in [Opening::Bind, Opening::Accept, Opening::Connect] {
            let err = KcomError::Open { opening, addr, source: io() };
            assert_eq!((err.kind(), err.fault()), (ErrorKind::Io, Fault::Caller), "{err}");
        }
        assert_eq!(KcomError::NoAddress { opening: Opening::Bind }.fault(), Fault::Caller);
        assert_eq!(KcomError::Source(io()).fault(), Fault::Caller);
        assert_eq!(KcomError::Sink(io()).fault(), Fault::Caller);
        assert_eq!(KcomError::Cancelled.fault(), Fault::Caller);
        let bind = KcomError::Open { opening: Opening::Bind, addr, source: io() };
        assert!(bind.to_string().starts_with("cannot listen on 127.0.0.1:13600: "), "{bind}");
    }

    #[test]
    fn the_peer_and_the_clock_are_the_peers_fault() {
        let peer = KcomError::from_protocol(proto::Error::BadMagic { got: *b"KCOM4abc" }, None);
        assert!(matches!(peer, KcomError::Peer(_)));
        assert_eq!((peer.kind(), peer.fault()), (ErrorKind::Peer, Fault::Peer));
        assert_eq!(KcomError::Io(io()).fault(), Fault::Peer);
        assert_eq!(KcomError::PeerStalled { unsent: 1 }.fault(), Fault::Peer);
        let timeout = KcomError::Timeout { after: Duration::from_secs(1), waiting: Waiting::Accept };
        assert_eq!((timeout.kind(), timeout.fault()), (ErrorKind::Timeout, Fault::Peer));
    }

    #[test]
    fn refusals_are_the_callers_and_a_timeout_names_the_setting() {
        let refused = KcomError::from_protocol(proto::Error::OutgoingMessageTooLong { len: 1 }, None);
        assert!(matches!(refused, KcomError::Refused(_)));
        assert_eq!((refused.kind(), refused.fault()), (ErrorKind::Caller, Fault::Caller));
        assert!(refused.protocol().is_some());

        // The machine ran on what was left of the deadline; the error names the whole of it.
        let left = proto::Error::TimedOut { after: Duration::from_millis(120) };
        let timeout = KcomError::from_protocol(left, Some(Duration::from_millis(500)));
        assert!(
            matches!(timeout, KcomError::Timeout { after, waiting: Waiting::Transfer } if after == Duration::from_millis(500)),
            "{timeout:?}"
        );
    }
}
