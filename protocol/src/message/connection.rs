//! The message connection: typed request/response/notification/heartbeat/error frames over one
//! STAGE packet connection.
//!
//! # States and transitions
//!
//! | state    | on                                                  | does                                              | next     |
//! |----------|-----------------------------------------------------|---------------------------------------------------|----------|
//! | Open     | a request, notification or heartbeat frame          | `Event::Request` / `Notification` / `Heartbeat`   | Open     |
//! | Open     | a response or error for a pending id, before its deadline | `Event::Response` / `Event::Error`, no longer pending | Open |
//! | Open     | a response or error for an issued id no longer pending | `Event::LateResponse` (never a success)        | Open     |
//! | Open     | an error frame with id 0                            | `Event::Error { id: 0, .. }` (no request involved) | Open    |
//! | Open     | a frame < 13 bytes, unknown type byte, bad error text, request id 0, an answer to an id never issued | events before it delivered, frames after it dropped; pending requests `Unanswered`, then `ReadClosed`; the fault is kept | ReadClosed(Err) |
//! | Open     | `Command::Request` / [`MessageConnection::request`] | request frame sent; id 1, 2, 3, … pending until `now + timeout` | Open |
//! | Open     | `Respond` / `Notify` / `Fail` / `FailPayload`       | frame sent                                        | Open     |
//! | Open     | a pending request's deadline                        | `Event::TimedOut { id }`, no longer pending       | Open     |
//! | Open     | `interval` with nothing sent                        | heartbeat frame with the next sequence number     | Open     |
//! | Open     | `dead_after` with nothing received                  | output flushed                                    | Ending(Err `PeerDead`) |
//! | Open     | `Eof` or a packet-layer fault (the packet layer reports `ReadClosed`) | `Event::Unanswered` for every pending request, then `ReadClosed`; `dead_after` stops | ReadClosed |
//! | ReadClosed | `Respond` / `Notify` / `Fail` / heartbeats        | frame sent                                        | ReadClosed |
//! | ReadClosed | `Command::Request`                                | refused: `Error::PeerClosed` (no answer can come)  | ReadClosed |
//! | Open / ReadClosed | `Close`, or the packet layer ending (`expire`) | the packet layer flushes and finishes | Finished(the kept fault, else its result) |
//! | Ending   | events and transmits drained                        | `Finished(result)`                                | Done     |
//! | Ending/Done | any input                                        | refused: `Error::Finished`                        | same     |
//!
//! The machine is a layer on a [`PacketConnection`]: the packet layer splits and limits frames
//! (IN), coalesces output (OUT, `commit`), runs `expire` and the cipher stream; this layer only
//! reads and writes the 9 bytes after each header and keeps the request table and timers.
//! Frames are decoded as they are polled out of the packet layer, so anything the packet layer
//! delivered before an error reaches the application before `Finished(Err(..))`.
//!
//! Timers (all inclusive: a deadline `t` fires at `t`, and an answer at `t` is late):
//! - **request deadlines**: each request's own timeout (or the configured default);
//! - **interval**: a heartbeat goes out once nothing at all was sent for `interval`;
//! - **dead_after**: the connection ends with [`Error::PeerDead`] once no byte was received for
//!   `dead_after`. Any received byte counts, so a peer trickling a large frame is alive.
//!
//! All of them run from the first call that drives the machine.
//!
//! # Unsolicited answers
//!
//! A response or error whose id this side never issued (0 for a response, or beyond the last
//! id allocated) ends the connection with [`Error::UnsolicitedResponse`] rather than being
//! reported as an event. A *late* answer is a normal race with our own clock and is only an
//! event; an answer to a request never made cannot be a race. It means the peer is answering
//! requests from some other connection or has lost track of the ids, so none of its later answers
//! can be trusted to belong to the request that carries the same id, and pairing a stray answer
//! with a future request is exactly what correlation must never do. Ids issued but no longer
//! pending (timed out, or answered twice) cannot be told apart without keeping every completed
//! id, so both are `LateResponse`: memory stays bounded by the pending requests.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Bytes, BytesMut};
use core::time::Duration;

use super::codec::{encode_message, Message, MessageKind, PREFIX_LEN};
use super::correlation::{Completion, Correlation};
use super::ids::RequestIds;
use super::Error;
use crate::crypto::FrameCipher;
use crate::machine::{Input, Machine, Output};
use crate::stage::{self, Filter, FramingConfig, PacketConnection};
use crate::time::{earliest, Instant};

/// How error frames' payloads are handed to the application.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ErrorPayload {
    /// UTF-8 text (WIRE.md §4), reported as [`Event::Error`]; invalid UTF-8 is a protocol error.
    #[default]
    Text,
    /// Bytes of the riding protocol's own format (the router's BSON documents, WIRE.md §5),
    /// reported as [`Event::ErrorPayload`] without any check.
    Raw,
}

/// The limit on pending requests a [`MessageConfig`] starts with.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Configuration of a [`MessageConnection`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MessageConfig {
    /// The packet layer underneath: IN/OUT limits, `commit`, `expire`. Its filter must be
    /// [`Filter::Packet`].
    pub framing: FramingConfig,
    /// Send a heartbeat after this long with nothing sent (`None`: never).
    pub interval: Option<Duration>,
    /// End the connection after this long with nothing received (`None`: never).
    pub dead_after: Option<Duration>,
    /// Deadline for requests sent without their own timeout (`None`: they wait forever).
    pub request_timeout: Option<Duration>,
    /// Most requests pending at once; more is refused, so the table's memory stays bounded.
    pub max_pending: usize,
    /// How error frames are reported.
    pub error_payload: ErrorPayload,
}

impl MessageConfig {
    /// Messages over `framing`, with no heartbeats, no default timeout and
    /// [`DEFAULT_MAX_PENDING`].
    pub fn new(framing: FramingConfig) -> Self {
        MessageConfig {
            framing,
            interval: None,
            dead_after: None,
            request_timeout: None,
            max_pending: DEFAULT_MAX_PENDING,
            error_payload: ErrorPayload::Text,
        }
    }

    /// Set the heartbeat interval and the silence after which the peer is dead.
    pub fn with_heartbeat(mut self, interval: Option<Duration>, dead_after: Option<Duration>) -> Self {
        self.interval = interval;
        self.dead_after = dead_after;
        self
    }

    /// Set the default request timeout.
    pub fn with_request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Set the limit on pending requests.
    pub fn with_max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending;
        self
    }

    /// Set how error payloads are reported.
    pub fn with_error_payload(mut self, error_payload: ErrorPayload) -> Self {
        self.error_payload = error_payload;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let reason = if self.framing.filter != Filter::Packet {
            "message frames need the packet filter"
        } else if self.framing.max_in < PREFIX_LEN {
            "IN below 13 bytes cannot hold a message frame"
        } else if self.framing.max_out != 0 && self.framing.max_out < PREFIX_LEN {
            "OUT below 13 bytes cannot hold a message frame"
        } else if self.interval == Some(Duration::ZERO) || self.dead_after == Some(Duration::ZERO) {
            "heartbeat interval and dead_after must be longer than zero"
        } else if self.max_pending == 0 {
            "max_pending must allow at least one request"
        } else {
            return Ok(());
        };
        Err(Error::BadConfig { reason })
    }
}

impl Default for MessageConfig {
    /// Messages over a bare `packet` filter (8192 bytes both ways), no timers.
    fn default() -> Self {
        Self::new(FramingConfig::default())
    }
}

/// What the application asks of a [`MessageConnection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a request with the next id (1, 2, 3, …; see [`MessageConnection::next_request_id`])
    /// and wait for its answer until `timeout` (`None`: the configured default).
    Request {
        /// The request's payload.
        payload: Bytes,
        /// How long to wait for the answer.
        timeout: Option<Duration>,
    },
    /// Answer the peer's request `id`.
    Respond {
        /// The id of the request answered (not 0).
        id: u64,
        /// The answer.
        payload: Bytes,
    },
    /// Send a one-way notification (id 0).
    Notify {
        /// The notification's payload.
        payload: Bytes,
    },
    /// Answer the peer's request `id` with a failure (id 0: not about any request).
    Fail {
        /// The id of the request answered, or 0.
        id: u64,
        /// What went wrong.
        text: String,
    },
    /// Like [`Command::Fail`], with a payload in the riding protocol's own format.
    FailPayload {
        /// The id of the request answered, or 0.
        id: u64,
        /// The error payload.
        payload: Bytes,
    },
    /// Transmit coalesced output now instead of waiting for the commit timer.
    Flush,
}

/// What a [`MessageConnection`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer asks; answer with [`Command::Respond`] or [`Command::Fail`] and this id.
    Request {
        /// The peer's request id.
        id: u64,
        /// A slice of the received frame.
        payload: Bytes,
    },
    /// The answer to our request `id`, in time.
    Response {
        /// Our request's id.
        id: u64,
        /// A slice of the received frame.
        payload: Bytes,
    },
    /// A one-way message from the peer.
    Notification {
        /// A slice of the received frame.
        payload: Bytes,
    },
    /// Our request `id` failed at the peer (or, with id 0, the peer reports a failure about no
    /// particular request). With [`ErrorPayload::Text`].
    Error {
        /// Our request's id, or 0.
        id: u64,
        /// The peer's error text.
        text: String,
    },
    /// As [`Event::Error`], with [`ErrorPayload::Raw`].
    ErrorPayload {
        /// Our request's id, or 0.
        id: u64,
        /// A slice of the received frame.
        payload: Bytes,
    },
    /// The peer's heartbeat.
    Heartbeat {
        /// Its sequence number.
        seq: u64,
    },
    /// An answer (response or error) to our request `id` arrived after its deadline, or after
    /// it was already answered. Its payload is dropped: it is never a success.
    LateResponse {
        /// Our request's id.
        id: u64,
    },
    /// Our request `id` reached its deadline without an answer; it is no longer pending.
    TimedOut {
        /// Our request's id.
        id: u64,
    },
    /// The peer closed its side before answering our request `id`; it is no longer pending.
    /// Reported at the peer's EOF, before `ReadClosed`.
    Unanswered {
        /// Our request's id.
        id: u64,
    },
}

enum State {
    Open,
    /// This layer decided the end (a protocol error or a dead peer); the packet layer is
    /// flushing. Frames it still delivers are dropped.
    Ending(Result<(), Error>),
    Done,
}

/// The typed-message machine: a [`PacketConnection`] plus request correlation and heartbeats.
/// See the [module docs](self) for its transitions.
pub struct MessageConnection {
    inner: PacketConnection,
    config: MessageConfig,
    state: State,
    /// Events ready for `poll_output`, ahead of anything still inside the packet layer.
    events: VecDeque<Event>,
    ids: RequestIds,
    pending: Correlation,
    /// The sequence number of the next heartbeat we send.
    heartbeat_seq: u64,
    /// When a frame was last sent (or the machine first driven): the heartbeat timer.
    last_sent: Option<Instant>,
    /// When a byte last arrived (or the machine first driven): the dead-peer timer.
    last_received: Option<Instant>,
    /// Bytes left in the driver's buffer after the last `Stream`: more than this means news.
    leftover: usize,
    /// Outgoing frames are built here; each is split off, so steady state reuses the space.
    scratch: BytesMut,
    /// The packet layer reported the peer's EOF: no answer can come, `dead_after` is moot.
    read_closed: bool,
    /// `ReadClosed` is to be reported once the events queued before it are out.
    read_closed_due: bool,
    /// The peer's fault in a message that closed the read side: the result at the finish.
    read_failed: Option<Error>,
}

impl MessageConnection {
    /// A connection with no cipher. Refuses a configuration that cannot carry messages.
    pub fn new(config: MessageConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(MessageConnection {
            inner: PacketConnection::new(config.framing),
            config,
            state: State::Open,
            events: VecDeque::new(),
            ids: RequestIds::new(),
            pending: Correlation::new(),
            heartbeat_seq: 1,
            last_sent: None,
            last_received: None,
            leftover: 0,
            scratch: BytesMut::new(),
            read_closed: false,
            read_closed_due: false,
            read_failed: None,
        })
    }

    /// A connection whose frames go through `cipher` (bytes 4..end: type, id and payload).
    pub fn with_cipher(config: MessageConfig, cipher: Box<dyn FrameCipher + Send>) -> Result<Self, Error> {
        let mut conn = Self::new(config)?;
        conn.inner.set_cipher(Some(cipher));
        Ok(conn)
    }

    /// Switch encryption on or off for frames sent and received from now on.
    pub fn set_cipher(&mut self, cipher: Option<Box<dyn FrameCipher + Send>>) {
        self.inner.set_cipher(cipher);
    }

    /// The configuration this connection was built with.
    pub fn config(&self) -> &MessageConfig {
        &self.config
    }

    /// The packet layer underneath (read-only: its state belongs to this machine).
    pub fn packet(&self) -> &PacketConnection {
        &self.inner
    }

    /// The requests waiting for an answer.
    pub fn pending(&self) -> &Correlation {
        &self.pending
    }

    /// The id the next request will get.
    pub fn next_request_id(&self) -> u64 {
        self.ids.peek()
    }

    /// Whether the connection has reported (or is about to report) `Finished`.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, State::Open) || self.inner.is_finished()
    }

    /// Send a request now and return its id: [`Command::Request`] for embedders that need the
    /// id at once. Drain the machine afterwards, as after any input.
    pub fn request(&mut self, now: Instant, payload: Bytes, timeout: Option<Duration>) -> Result<u64, Error> {
        self.on_time(now);
        self.check_open()?;
        self.send_request(now, &payload, timeout)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.is_finished() {
            Err(Error::Finished)
        } else {
            Ok(())
        }
    }

    fn send_request(&mut self, now: Instant, payload: &[u8], timeout: Option<Duration>) -> Result<u64, Error> {
        if self.read_closed {
            return Err(Error::PeerClosed);
        }
        if self.pending.len() >= self.config.max_pending {
            return Err(Error::TooManyPending { max: self.config.max_pending });
        }
        // Allocate only once the frame is accepted, so a refused request leaves the ids as
        // they were.
        let id = self.ids.peek();
        self.send(now, MessageKind::Request, id, payload)?;
        self.ids.allocate();
        let deadline = timeout.or(self.config.request_timeout).map(|d| now + d);
        self.pending.insert(id, deadline);
        Ok(id)
    }

    /// Encode one frame and hand it to the packet layer whole, so it is transmitted without
    /// another copy (or sealed, if a cipher is set).
    fn send(&mut self, now: Instant, kind: MessageKind, id: u64, payload: &[u8]) -> Result<(), Error> {
        encode_message(kind, id, payload, &mut self.scratch)?;
        let frame = self.scratch.split().freeze();
        self.inner.handle_input(now, Input::Command(stage::Command::Send(frame)))?;
        self.last_sent = Some(now);
        Ok(())
    }

    fn on_command(&mut self, now: Instant, command: Command) -> Result<(), Error> {
        match command {
            Command::Request { payload, timeout } => self.send_request(now, &payload, timeout).map(drop),
            Command::Respond { id: 0, .. } => Err(Error::ZeroResponseId),
            Command::Respond { id, payload } => self.send(now, MessageKind::Response, id, &payload),
            Command::Notify { payload } => self.send(now, MessageKind::Notification, 0, &payload),
            Command::Fail { id, text } => self.send(now, MessageKind::Error, id, text.as_bytes()),
            Command::FailPayload { id, payload } => self.send(now, MessageKind::Error, id, &payload),
            Command::Flush => Ok(self.inner.handle_input(now, Input::Command(stage::Command::Flush))?),
        }
    }

    /// Act on every timer `now` has reached: request deadlines, then the dead peer, then the
    /// heartbeat (a dead peer gets no heartbeat).
    fn on_time(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        let last_received = *self.last_received.get_or_insert(now);
        let last_sent = *self.last_sent.get_or_insert(now);
        while let Some(id) = self.pending.pop_expired(now) {
            self.events.push_back(Event::TimedOut { id });
        }
        if let Some(dead_after) = self.config.dead_after.filter(|_| !self.read_closed) {
            if now >= last_received + dead_after {
                self.end(now, Err(Error::PeerDead { silent: dead_after }));
                return;
            }
        }
        if let Some(interval) = self.config.interval {
            if now >= last_sent + interval {
                let seq = self.heartbeat_seq;
                match self.send(now, MessageKind::Heartbeat, seq, &[]) {
                    Ok(()) => self.heartbeat_seq = seq.wrapping_add(1),
                    // The packet layer just ended by itself (its expire timer); it reports why.
                    Err(Error::Finished) => {}
                    Err(e) => self.end(now, Err(e)),
                }
            }
        }
    }

    /// Decide the end; the packet layer flushes what is coalesced, and what it already queued
    /// still goes out before `Finished`.
    fn end(&mut self, now: Instant, result: Result<(), Error>) {
        self.state = State::Ending(result);
        // A no-op if the packet layer already ended, in which case it flushed too.
        let _ = self.inner.handle_input(now, Input::Close);
    }

    fn on_frame(&mut self, now: Instant, frame: Bytes) {
        match Message::decode(frame).and_then(|message| self.on_message(now, message)) {
            Ok(Some(event)) => self.events.push_back(event),
            Ok(None) => {}
            // Only the read side is over: the application may still answer what came before.
            Err(e) => self.close_read(Some(e)),
        }
    }

    /// Nothing more will be read (the peer's EOF, or `fault` in what it sent): every pending
    /// request ends unanswered, then `ReadClosed` is reported; commands are still taken, and
    /// the fault is the result once the connection finishes.
    fn close_read(&mut self, fault: Option<Error>) {
        if self.read_closed {
            return;
        }
        self.read_closed = true;
        self.read_failed = fault;
        let pending: alloc::vec::Vec<u64> = self.pending.ids().collect();
        for id in pending {
            self.pending.cancel(id);
            self.events.push_back(Event::Unanswered { id });
        }
        self.read_closed_due = true;
    }

    fn on_message(&mut self, now: Instant, message: Message) -> Result<Option<Event>, Error> {
        let Message { kind, id, payload } = message;
        let event = match kind {
            MessageKind::Request if id == 0 => return Err(Error::ZeroRequestId),
            MessageKind::Request => Event::Request { id, payload },
            MessageKind::Notification => Event::Notification { payload },
            MessageKind::Heartbeat => Event::Heartbeat { seq: id },
            MessageKind::Error if id == 0 => self.error_event(id, payload)?,
            MessageKind::Response | MessageKind::Error => match self.pending.complete(now, id) {
                Completion::OnTime if kind == MessageKind::Response => Event::Response { id, payload },
                Completion::OnTime => match self.error_event(id, payload) {
                    Ok(event) => event,
                    Err(fault) => {
                        // The request is off the table already: it ends here, unanswered (no
                        // answer could be read), before the fault closes the read side.
                        self.events.push_back(Event::Unanswered { id });
                        return Err(fault);
                    }
                },
                Completion::Late => Event::LateResponse { id },
                Completion::NotPending if self.ids.was_issued(id) => Event::LateResponse { id },
                Completion::NotPending => return Err(Error::UnsolicitedResponse { id }),
            },
        };
        Ok(Some(event))
    }

    fn error_event(&self, id: u64, payload: Bytes) -> Result<Event, Error> {
        Ok(match self.config.error_payload {
            ErrorPayload::Text => {
                let text = core::str::from_utf8(&payload).map_err(|_| Error::InvalidErrorText { id })?;
                Event::Error { id, text: text.to_string() }
            }
            ErrorPayload::Raw => Event::ErrorPayload { id, payload },
        })
    }

    /// This layer's own next deadline.
    fn deadline(&self) -> Option<Instant> {
        // After the read side closed nothing can arrive: `dead_after` no longer acts, so it
        // must not be reported either (a deadline never acted on would have a driver spin).
        let dead = self.config.dead_after.filter(|_| !self.read_closed).zip(self.last_received).map(|(d, t)| t + d);
        let beat = self.config.interval.zip(self.last_sent).map(|(d, t)| t + d);
        earliest(self.pending.next_deadline(), earliest(dead, beat))
    }

    fn finish(&mut self, inner: Result<(), stage::Error>) -> Output<Event, Error> {
        let result = match core::mem::replace(&mut self.state, State::Done) {
            State::Ending(ours) => ours,
            State::Open => match self.read_failed.take() {
                Some(fault) => Err(fault),
                None => inner.map_err(Error::from),
            },
            State::Done => Err(Error::Finished),
        };
        Output::Finished(result)
    }
}

impl Machine for MessageConnection {
    type Command = Command;
    type Event = Event;
    type Error = Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, Command>) -> Result<(), Error> {
        self.on_time(now);
        if matches!(input, Input::Close) && self.is_finished() {
            // Closing what is finishing (or finished) is no news (contract rule 8).
            return Ok(());
        }
        self.check_open()?;
        match input {
            Input::Stream(_) if self.read_closed => {
                return Err(Error::Stage(stage::Error::UnexpectedInput { input: "bytes after the read side closed" }))
            }
            Input::Stream(buf) => {
                if buf.len() > self.leftover {
                    self.last_received = Some(now);
                }
                let result = self.inner.handle_input(now, Input::Stream(&mut *buf));
                self.leftover = buf.len();
                result?;
            }
            Input::Datagram { from, data } => {
                if !data.is_empty() {
                    self.last_received = Some(now);
                }
                self.inner.handle_input(now, Input::Datagram { from, data })?;
            }
            Input::Eof => self.inner.handle_input(now, Input::Eof)?,
            Input::Close => self.inner.handle_input(now, Input::Close)?,
            Input::Timeout => self.inner.handle_input(now, Input::Timeout)?,
            Input::Command(command) => self.on_command(now, command)?,
        }
        Ok(())
    }

    fn poll_output(&mut self, now: Instant) -> Output<Event, Error> {
        self.on_time(now);
        loop {
            if let Some(event) = self.events.pop_front() {
                return Output::Event(event);
            }
            if core::mem::take(&mut self.read_closed_due) {
                return Output::ReadClosed;
            }
            if matches!(self.state, State::Done) {
                return Output::Finished(Err(Error::Finished));
            }
            match self.inner.poll_output(now) {
                Output::Transmit(bytes) => return Output::Transmit(bytes),
                Output::TransmitTo(to, bytes) => return Output::TransmitTo(to, bytes),
                Output::Event(stage::Event::Frame(frame)) => {
                    // After this layer's own error, later frames are dropped.
                    if matches!(self.state, State::Open) && !self.read_closed {
                        self.on_frame(now, frame);
                    }
                }
                // The packet layer's read side closed (EOF, or its own fault, which its
                // `Finished` reports).
                Output::ReadClosed => {
                    if matches!(self.state, State::Open) {
                        self.close_read(None);
                    }
                }
                Output::Timeout(inner) => {
                    return match self.state {
                        State::Open => Output::Timeout(earliest(inner, self.deadline())),
                        // The packet layer was closed in `end`, so it cannot be waiting; finish
                        // rather than wait for nothing.
                        _ => self.finish(Ok(())),
                    };
                }
                Output::Finished(result) => return self.finish(result),
            }
        }
    }

    fn write_budget(&self) -> usize {
        self.inner.write_budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::drain;

    #[test]
    fn request_ids_are_one_two_three_and_refusals_keep_state() {
        let cfg = MessageConfig::default().with_max_pending(2);
        let mut conn = MessageConnection::new(cfg).unwrap();
        let now = Instant::ZERO;
        assert_eq!(conn.request(now, Bytes::from_static(b"a"), None), Ok(1));
        conn.handle_input(now, Input::Command(Command::Request { payload: Bytes::new(), timeout: None })).unwrap();
        assert_eq!(conn.request(now, Bytes::new(), None), Err(Error::TooManyPending { max: 2 }));
        assert_eq!(conn.next_request_id(), 3);
        let out = drain(&mut conn, now);
        assert_eq!(out.wire().len(), 2 * PREFIX_LEN + 1);
        assert_eq!(out.deadline, None);
    }

    #[test]
    fn bad_configs_are_refused() {
        let text = MessageConfig::new(FramingConfig::text(64, 64));
        assert!(matches!(MessageConnection::new(text), Err(Error::BadConfig { .. })));
        let small = MessageConfig::new(FramingConfig::packet(12, 0));
        assert!(matches!(MessageConnection::new(small), Err(Error::BadConfig { .. })));
        let zero = MessageConfig::default().with_heartbeat(Some(Duration::ZERO), None);
        assert!(matches!(MessageConnection::new(zero), Err(Error::BadConfig { .. })));
    }
}
