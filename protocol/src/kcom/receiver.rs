//! The KCOM5 receiver: the originals' `client`, on a connection it has opened.
//!
//! # States and transitions
//!
//! | state         | on                                          | does                                    | next     |
//! |---------------|---------------------------------------------|-----------------------------------------|----------|
//! | Echo          | first `poll_output`                         | transmits the hello (`KCOM5` + 3 random bytes drawn at construction) | Echo |
//! | Echo          | 8 bytes equal to the hello                  | —                                       | MessageLength |
//! | Echo          | 8 bytes that differ                         | —                                       | Ending(Err `EchoMismatch`) |
//! | MessageLength | 4 bytes, length ≤ `max_msg_len`             | —                                       | Message  |
//! | MessageLength | 4 bytes, length > `max_msg_len`             | — (the body is never buffered)          | Ending(Err `MessageTooLong`) |
//! | Message       | the whole message, valid UTF-8              | `Event::Message`                        | DataLength |
//! | Message       | the whole message, not UTF-8                | —                                       | Ending(Err `InvalidUtf8`) |
//! | DataLength    | 8 bytes, length ≤ `max_data_len`            | `Event::DataLength`                     | Data, or Ending(Ok) when 0 |
//! | DataLength    | 8 bytes, length > `max_data_len`            | —                                       | Ending(Err `DataTooLong`) |
//! | Data          | `Stream` with data                          | `Event::Data` with what arrived (a slice of the receive buffer) | Data, or Ending(Ok) after the last byte |
//! | any open      | `Eof`                                       | —                                       | Ending(Err `Truncated`) naming the part and the byte count |
//! | any open      | `now` reaches first call + `close`          | —                                       | Ending(Err `TimedOut`) |
//! | any open      | `Close` (the application gave up)           | —                                       | Ending(Err `Abandoned`) |
//! | Ending/Done   | `Close`                                     | nothing: already finishing              | same     |
//! | Ending        | queue drained                               | `Finished(result)`                      | Done     |
//! | Ending/Done   | any input                                   | refused: `Error::Finished`              | same     |
//!
//! Partial fields stay in the driver's buffer until complete; data is split off as it arrives,
//! so only the message (bounded by `max_msg_len`) is ever held whole. Bytes after the announced
//! data are left unread. [`Collector`] folds the events back into `(message, data)` for callers
//! that want the blob in memory.

use alloc::collections::VecDeque;
use alloc::string::String;
use bytes::{Buf, Bytes, BytesMut};
use core::convert::Infallible;

use super::{Deadline, Error, KcomConfig, Part, HELLO_LEN, MAGIC};
use crate::entropy::Entropy;
use crate::machine::{Input, Machine, Output};
use crate::time::Instant;

/// What a [`Receiver`] reports, in this order: one `Message`, one `DataLength`, then `Data`
/// chunks adding up to that length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// The sender's message.
    Message(String),
    /// The announced data length, before any data.
    DataLength(u64),
    /// The next chunk of data, as it arrived (never empty).
    Data(Bytes),
}

#[derive(Clone, Copy)]
enum Phase {
    Echo,
    MessageLength,
    Message(u32),
    DataLength,
    Data { len: u64, remaining: u64 },
    Ending,
    Done,
}

enum Queued {
    Transmit(Bytes),
    Event(ReceiverEvent),
}

/// The KCOM5 receiver machine. See the [module docs](self) for its transitions.
pub struct Receiver {
    config: KcomConfig,
    deadline: Deadline,
    hello: [u8; HELLO_LEN],
    phase: Phase,
    /// The announced data length, once it arrived.
    data_len: Option<u64>,
    /// The result reported once the queue is drained (meaningful in `Ending`).
    result: Result<(), Error>,
    queue: VecDeque<Queued>,
    /// Bytes of an unfinished fixed field or message left in the driver's buffer.
    partial: usize,
}

impl Receiver {
    /// A receiver whose hello takes its 3 random bytes from `entropy`, now.
    pub fn new<E: Entropy + ?Sized>(config: KcomConfig, entropy: &mut E) -> Self {
        let mut nonce = [0u8; 3];
        entropy.fill(&mut nonce);
        Self::with_nonce(config, nonce)
    }

    /// A receiver whose hello ends with these 3 bytes (for replaying a recorded exchange).
    pub fn with_nonce(config: KcomConfig, nonce: [u8; 3]) -> Self {
        let mut hello = [0u8; HELLO_LEN];
        hello[..MAGIC.len()].copy_from_slice(&MAGIC);
        hello[MAGIC.len()..].copy_from_slice(&nonce);
        let mut queue = VecDeque::new();
        queue.push_back(Queued::Transmit(Bytes::copy_from_slice(&hello)));
        Receiver {
            config,
            deadline: Deadline::new(config.close),
            hello,
            phase: Phase::Echo,
            data_len: None,
            result: Ok(()),
            queue,
            partial: 0,
        }
    }

    /// The configuration this receiver was built with.
    pub fn config(&self) -> &KcomConfig {
        &self.config
    }

    /// The 8-byte hello this receiver sends.
    pub fn hello(&self) -> [u8; HELLO_LEN] {
        self.hello
    }

    /// The announced data length, once it has arrived.
    pub fn data_len(&self) -> Option<u64> {
        self.data_len
    }

    /// Whether the receiver has reported (or is about to report) `Finished`.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Ending | Phase::Done)
    }

    fn is_open(&self) -> bool {
        !self.is_finished()
    }

    fn end(&mut self, result: Result<(), Error>) {
        self.result = result;
        self.phase = Phase::Ending;
    }

    fn on_time(&mut self, now: Instant) {
        if let Some(e) = self.deadline.check(now) {
            if self.is_open() {
                self.end(Err(e));
            }
        }
    }

    fn on_stream(&mut self, buf: &mut BytesMut) {
        let result = self.parse(buf);
        self.partial = buf.len();
        match result {
            Ok(true) => self.end(Ok(())),
            Ok(false) => {}
            Err(e) => self.end(Err(e)),
        }
    }

    /// Consume every complete field in `buf`; `Ok(true)` once the last data byte arrived.
    fn parse(&mut self, buf: &mut BytesMut) -> Result<bool, Error> {
        loop {
            match self.phase {
                Phase::Echo => {
                    let Some(got) = take::<HELLO_LEN>(buf) else { return Ok(false) };
                    if got != self.hello {
                        return Err(Error::EchoMismatch { sent: self.hello, got });
                    }
                    self.phase = Phase::MessageLength;
                }
                Phase::MessageLength => {
                    let Some(len) = take::<4>(buf) else { return Ok(false) };
                    let len = u32::from_le_bytes(len);
                    let max = self.config.max_msg_len;
                    if len > max {
                        return Err(Error::MessageTooLong { len, max });
                    }
                    self.phase = Phase::Message(len);
                }
                Phase::Message(len) => {
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    if buf.len() < len {
                        return Ok(false);
                    }
                    let body = buf.split_to(len);
                    let text =
                        core::str::from_utf8(&body).map_err(|e| Error::InvalidUtf8 { valid_up_to: e.valid_up_to() })?;
                    self.queue.push_back(Queued::Event(ReceiverEvent::Message(String::from(text))));
                    self.phase = Phase::DataLength;
                }
                Phase::DataLength => {
                    let Some(len) = take::<8>(buf) else { return Ok(false) };
                    let len = u64::from_le_bytes(len);
                    let max = self.config.max_data_len;
                    if len > max {
                        return Err(Error::DataTooLong { len, max });
                    }
                    self.data_len = Some(len);
                    self.queue.push_back(Queued::Event(ReceiverEvent::DataLength(len)));
                    if len == 0 {
                        return Ok(true);
                    }
                    self.phase = Phase::Data { len, remaining: len };
                }
                Phase::Data { len, remaining } => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    // Split, not copied: the chunk shares the driver's receive buffer.
                    let chunk = buf.split_to(n).freeze();
                    self.queue.push_back(Queued::Event(ReceiverEvent::Data(chunk)));
                    let remaining = remaining - n as u64;
                    self.phase = Phase::Data { len, remaining };
                    if remaining == 0 {
                        return Ok(true);
                    }
                }
                Phase::Ending | Phase::Done => return Ok(false),
            }
        }
    }

    /// The `Truncated` error for an end of stream in the current phase.
    fn truncated(&self) -> Error {
        let partial = self.partial as u64;
        let (reading, got, expected) = match self.phase {
            Phase::Echo => (Part::Echo, partial, HELLO_LEN as u64),
            Phase::MessageLength => (Part::MessageLength, partial, 4),
            Phase::Message(len) => (Part::Message, partial, u64::from(len)),
            Phase::DataLength => (Part::DataLength, partial, 8),
            Phase::Data { len, remaining } => (Part::Data, len - remaining, len),
            // Not reached: input after the end is refused before this is asked.
            Phase::Ending | Phase::Done => (Part::Data, 0, 0),
        };
        Error::Truncated { reading, got, expected }
    }
}

/// Split `N` bytes off the front of `buf` if that many are there.
fn take<const N: usize>(buf: &mut BytesMut) -> Option<[u8; N]> {
    let field = buf.first_chunk::<N>().copied()?;
    buf.advance(N);
    Some(field)
}

impl Machine for Receiver {
    /// The receiver takes no commands.
    type Command = Infallible;
    type Event = ReceiverEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, Infallible>) -> Result<(), Error> {
        let was_open = self.is_open();
        self.on_time(now);
        if !self.is_open() {
            // Ended by the deadline on this very call: the input came too late, and `Finished`
            // reports why. Only input after an earlier end is the caller's mistake; closing
            // what has ended is no news (contract rule 8).
            return if was_open || matches!(input, Input::Close) { Ok(()) } else { Err(Error::Finished) };
        }
        match input {
            Input::Stream(buf) => self.on_stream(buf),
            // Stream machines refuse datagrams, as every stream machine does (contract rule 5).
            Input::Datagram { .. } => return Err(Error::UnexpectedInput { input: "datagram" }),
            Input::Eof => {
                let e = self.truncated();
                self.end(Err(e));
            }
            Input::Command(never) => match never {},
            Input::Close => self.end(Err(Error::Abandoned)),
            Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(&mut self, now: Instant) -> Output<ReceiverEvent, Error> {
        self.on_time(now);
        if let Some(next) = self.queue.pop_front() {
            return match next {
                Queued::Transmit(bytes) => Output::Transmit(bytes),
                Queued::Event(event) => Output::Event(event),
            };
        }
        match self.phase {
            Phase::Ending => {
                self.phase = Phase::Done;
                Output::Finished(core::mem::replace(&mut self.result, Err(Error::Finished)))
            }
            Phase::Done => Output::Finished(Err(Error::Finished)),
            _ => Output::Timeout(self.deadline.at()),
        }
    }
}

/// The largest capacity [`Collector`] reserves on the strength of an announced length alone.
const PREALLOC_CAP: u64 = 16 * 1024 * 1024;

/// Folds a [`Receiver`]'s events into the message and the whole data blob, for callers that want
/// the blob in memory (set [`KcomConfig::max_data_len`] to bound it).
#[derive(Debug, Default)]
pub struct Collector {
    message: Option<String>,
    data_len: Option<u64>,
    /// The first chunk, kept uncopied in case it is the only one.
    first: Option<Bytes>,
    /// Every chunk, copied together once a second one arrives.
    joined: BytesMut,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one event.
    pub fn push(&mut self, event: ReceiverEvent) {
        match event {
            ReceiverEvent::Message(message) => self.message = Some(message),
            ReceiverEvent::DataLength(len) => self.data_len = Some(len),
            ReceiverEvent::Data(chunk) => match self.first.take() {
                None if self.joined.is_empty() => self.first = Some(chunk),
                None => self.joined.extend_from_slice(&chunk),
                Some(first) => {
                    let so_far = (first.len() + chunk.len()) as u64;
                    let want = self.data_len.unwrap_or(0).min(PREALLOC_CAP).max(so_far);
                    self.joined.reserve(usize::try_from(want).unwrap_or(usize::MAX));
                    self.joined.extend_from_slice(&first);
                    self.joined.extend_from_slice(&chunk);
                }
            },
        }
    }

    /// The message, once it has arrived.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The announced data length, once it has arrived.
    pub fn data_len(&self) -> Option<u64> {
        self.data_len
    }

    /// Data bytes collected so far.
    pub fn received(&self) -> u64 {
        self.first.as_ref().map_or(self.joined.len(), Bytes::len) as u64
    }

    /// The message (empty if none arrived) and all data collected.
    pub fn into_parts(self) -> (String, Bytes) {
        let data = self.first.unwrap_or_else(|| self.joined.freeze());
        (self.message.unwrap_or_default(), data)
    }
}
