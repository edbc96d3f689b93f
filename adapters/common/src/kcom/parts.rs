//! What the blocking and the async KCOM5 APIs share beyond options and errors: the one deadline,
//! the machine wrapper that lets go of a failed connection at once, the folding of receiver
//! events into [`Incoming`] pieces, and the rules for a streamed send's outcome and for
//! retrying a connect. Public so `switchboard-std` (and any other adapter) can build its API
//! from them; applications use the APIs instead.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant as StdInstant};

use socket2::Socket;
use switchboard_proto::kcom::{self as proto, ReceiverEvent};
use switchboard_proto::{Blame, Fault, Input, Instant, Machine, Output};

use super::{Incoming, KcomError, Opening, Received, Waiting};

/// How long a receiver waits between connection attempts while the sender is not up yet.
pub const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Whether a failed connect may only mean that the sender is not listening yet (refused, or
/// timed out or interrupted on the way): the receiver tries again until its deadline.
pub fn worth_retrying(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// Bind the first of `addrs` that `bind` can: what it bound, or the last address's error
/// ([`KcomError::NoAddress`] for none).
pub fn bind_first<L>(addrs: &[SocketAddr], mut bind: impl FnMut(SocketAddr) -> io::Result<L>) -> Result<L, KcomError> {
    let mut failed = KcomError::NoAddress { opening: Opening::Bind };
    for &addr in addrs {
        match bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(source) => failed = KcomError::Open { opening: Opening::Bind, addr, source },
        }
    }
    Err(failed)
}

/// The one deadline of a transfer: `close` after the call began, waiting for the peer included.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    close: Option<Duration>,
    at: Option<StdInstant>,
}

impl Deadline {
    /// The deadline `close` from now (`None`: none).
    pub fn start(close: Option<Duration>) -> Self {
        Deadline { close, at: close.and_then(|c| StdInstant::now().checked_add(c)) }
    }

    /// The `close` setting.
    pub fn close(&self) -> Option<Duration> {
        self.close
    }

    /// When it passes (`None`: never).
    pub fn at(&self) -> Option<StdInstant> {
        self.at
    }

    /// The error for the deadline passing while waiting for `waiting`.
    pub fn passed(&self, waiting: Waiting) -> KcomError {
        KcomError::Timeout { after: self.close.unwrap_or_default(), waiting }
    }

    /// What is left (`None`: no deadline), or the timeout error.
    pub fn remaining(&self, waiting: Waiting) -> Result<Option<Duration>, KcomError> {
        let Some(at) = self.at else { return Ok(None) };
        match at.checked_duration_since(StdInstant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(self.passed(waiting)),
        }
    }

    /// `pause`, or less when the deadline comes first; the timeout error once it has passed.
    pub fn pause(&self, pause: Duration, waiting: Waiting) -> Result<Duration, KcomError> {
        Ok(self.remaining(waiting)?.map_or(pause, |left| left.min(pause)))
    }

    /// A machine's error as the API reports it (see [`KcomError::from_protocol`]).
    pub fn blame(&self, e: proto::Error) -> KcomError {
        KcomError::from_protocol(e, self.close)
    }
}

/// A KCOM5 machine that lets go of its connection the moment the transfer fails.
///
/// Once a machine finishes, the drivers write what it transmitted and then linger up to a
/// couple of seconds for the peer's end of stream, so that closing does not reset data still in
/// flight. A failed transfer owes the peer nothing, and an API that waited for a peer that keeps
/// its side open would return seconds after its deadline or a protocol error. So when the
/// machine finishes with an error this shuts the socket down: both ways when the peer is at
/// fault (a protocol error, the deadline), the read side only when we gave up ourselves
/// (`Abandoned`: a source or sink failed), so the bytes already sent still reach the peer, which
/// can then say how far the data got. Either way the driver ends at once.
pub struct FailFast<M> {
    machine: M,
    socket: Socket,
    verdict: Verdict,
}

/// The failure a [`FailFast`] machine finished with, readable after the driver ended: once
/// the socket is shut down, a driver may report the resulting I/O error instead.
#[derive(Clone, Debug, Default)]
pub struct Verdict(Arc<OnceLock<proto::Error>>);

impl Verdict {
    /// The machine's error, if it finished with one.
    pub fn failure(&self) -> Option<&proto::Error> {
        self.0.get()
    }

    /// The transfer's outcome: the machine's own failure if it had one, else what the driver
    /// reported.
    pub fn decide(&self, deadline: &Deadline, driven: Result<(), KcomError>) -> Result<(), KcomError> {
        match self.failure() {
            Some(e) => Err(deadline.blame(e.clone())),
            None => driven,
        }
    }
}

impl<M: Machine<Error = proto::Error>> FailFast<M> {
    /// Wrap `machine`; `socket` is a second handle to the socket it will run over (see
    /// [`socket2::Socket::try_clone`], through a `SockRef`).
    pub fn new(machine: M, socket: Socket) -> (Self, Verdict) {
        let verdict = Verdict::default();
        (FailFast { machine, socket, verdict: verdict.clone() }, verdict)
    }
}

impl<M: Machine<Error = proto::Error>> Machine for FailFast<M> {
    type Command = M::Command;
    type Event = M::Event;
    type Error = proto::Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, M::Command>) -> Result<(), proto::Error> {
        self.machine.handle_input(now, input)
    }

    fn poll_output(&mut self, now: Instant) -> Output<M::Event, proto::Error> {
        let output = self.machine.poll_output(now);
        if let Output::Finished(Err(e)) = &output {
            if self.verdict.0.set(e.clone()).is_ok() {
                let how = match e.fault() {
                    Fault::Caller => Shutdown::Read,
                    Fault::Peer => Shutdown::Both,
                };
                // A socket the peer has reset already is no news.
                let _ = self.socket.shutdown(how);
            }
        }
        output
    }

    fn write_budget(&self) -> usize {
        self.machine.write_budget()
    }
}

/// Folds a [`Receiver`](proto::Receiver)'s events into the [`Incoming`] pieces an application
/// sees: the header once (message and length together), then each data chunk with the count
/// so far.
#[derive(Debug)]
pub struct Arrivals {
    header: Received,
    received: u64,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self::new()
    }
}

impl Arrivals {
    /// Nothing arrived yet.
    pub fn new() -> Self {
        Arrivals { header: Received { msg: String::new(), data_len: 0 }, received: 0 }
    }

    /// The piece `event` completes, if any (the message alone is not one: it waits for the
    /// length).
    pub fn piece(&mut self, event: ReceiverEvent) -> Option<Incoming<'_>> {
        match event {
            ReceiverEvent::Message(msg) => {
                self.header.msg = msg;
                None
            }
            ReceiverEvent::DataLength(len) => {
                self.header.data_len = len;
                Some(Incoming::Header(&self.header))
            }
            ReceiverEvent::Data(chunk) => {
                self.received += chunk.len() as u64;
                Some(Incoming::Data { chunk, received: self.received, total: self.header.data_len })
            }
        }
    }

    /// The header (message and announced length).
    pub fn into_received(self) -> Received {
        self.header
    }
}

/// A streamed send's outcome from the driver's (`driven`) and the feeder's (`fed`). A feeder
/// whose source fails or falls short closes the machine, which then ends `Abandoned`: the
/// feeder's error says why. Otherwise the driver's verdict comes first: a peer that went away
/// explains a feed cut short.
pub fn settle(driven: Result<(), KcomError>, fed: Result<(), KcomError>) -> Result<(), KcomError> {
    match driven {
        Err(KcomError::Refused(proto::Error::Abandoned)) if fed.is_err() => fed,
        driven => driven.and(fed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn arrivals_give_the_header_once_then_counted_data() {
        let mut arrivals = Arrivals::new();
        assert!(arrivals.piece(ReceiverEvent::Message("m".into())).is_none());
        match arrivals.piece(ReceiverEvent::DataLength(5)) {
            Some(Incoming::Header(header)) => assert_eq!((header.msg.as_str(), header.data_len), ("m", 5)),
            other => panic!("{other:?}"),
        }
        for (chunk, want) in [(&b"ab"[..], 2), (&b"cde"[..], 5)] {
            match arrivals.piece(ReceiverEvent::Data(Bytes::from_static(chunk))) {
                Some(Incoming::Data { received, total: 5, .. }) => assert_eq!(received, want),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(arrivals.into_received(), Received { msg: "m".into(), data_len: 5 });
    }

    #[test]
    fn a_short_feed_explains_an_abandoned_transfer_and_the_peer_explains_the_rest() {
        let short = || Err(KcomError::ShortSource { got: 1, expected: 2 });
        let abandoned = || Err(KcomError::Refused(proto::Error::Abandoned));
        assert!(matches!(settle(abandoned(), short()), Err(KcomError::ShortSource { .. })));
        let peer = || Err(KcomError::Peer(proto::Error::BadMagic { got: [0; 8] }));
        assert!(matches!(settle(peer(), short()), Err(KcomError::Peer(_))));
        assert!(matches!(settle(Ok(()), short()), Err(KcomError::ShortSource { .. })));
        assert!(settle(Ok(()), Ok(())).is_ok());
    }

    #[test]
    fn the_deadline_counts_down_and_then_says_what_was_awaited() {
        assert!(Deadline::start(None).remaining(Waiting::Accept).unwrap().is_none());
        let deadline = Deadline::start(Some(Duration::from_secs(60)));
        assert!(deadline.pause(Duration::from_millis(5), Waiting::Connect).unwrap() <= Duration::from_millis(5));
        let over = Deadline::start(Some(Duration::ZERO));
        let err = over.remaining(Waiting::Connect).unwrap_err();
        assert!(matches!(err, KcomError::Timeout { waiting: Waiting::Connect, .. }), "{err:?}");
    }
}
