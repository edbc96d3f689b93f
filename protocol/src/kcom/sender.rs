//! The KCOM5 sender: the originals' `server`, on a connection it has accepted.
//!
//! # States and transitions
//!
//! | state      | on                                              | does                                           | next     |
//! |------------|-------------------------------------------------|------------------------------------------------|----------|
//! | AwaitHello | `Stream`, under 8 bytes buffered                | waits                                          | AwaitHello |
//! | AwaitHello | `Stream`, 8 bytes starting `KCOM5`              | transmits the echo, `u32` msg_len, msg, `u64` data_len, then the data held so far; `Event::Ready` | Sending, or Ending(Ok) once all data was given |
//! | AwaitHello | `Stream`, 8 bytes not starting `KCOM5`          | —                                              | Ending(Err `BadMagic`) |
//! | AwaitHello | `Eof`                                           | —                                              | Ending(Err `Truncated`) |
//! | AwaitHello | `Command::Data`, held data within the budget    | holds the chunk until the handshake            | AwaitHello |
//! | AwaitHello | `Command::Data` over the budget                 | refused: `NotReady`                            | AwaitHello |
//! | Sending    | `Command::Data`                                 | transmits the chunk as it is (no copy)         | Sending, or Ending(Ok) after the last byte |
//! | Sending    | `Stream` / `Eof`                                | discarded: the receiver has nothing more to say | Sending |
//! | any open   | `Command::Data` past the announced data_len     | refused: `DataOverflow`                        | same     |
//! | any open   | `now` reaches first call + `close`              | —                                              | Ending(Err `TimedOut`) |
//! | any open   | `Close` with every data byte given              | nothing: the transfer completes on its own     | same     |
//! | any open   | `Close` with data still to give                 | —                                              | Ending(Err `Abandoned`) |
//! | Ending/Done | `Close`                                        | nothing: already finishing                     | same     |
//! | Ending     | queue drained                                   | `Finished(result)`                             | Done     |
//! | Ending/Done | any input                                      | refused: `Error::Finished`                     | same     |
//!
//! Two forms: [`Sender::new`] takes the whole blob up front; [`Sender::streaming`] announces a
//! length and takes the data as [`SenderCommand::Data`] chunks, so a gigabyte file never sits in
//! memory. The driver's backpressure ([`Machine::write_budget`]) paces the chunks.

use alloc::collections::VecDeque;
use alloc::string::String;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Deadline, Error, KcomConfig, Part, HELLO_LEN, MAGIC};
use crate::machine::{Input, Machine, Output};
use crate::time::Instant;

/// Messages up to this size are copied into the header write; longer ones go out as their own
/// buffer, uncopied.
const INLINE_MSG: usize = 4096;

/// What the application asks of a [`Sender`].
#[derive(Debug, Clone)]
pub enum SenderCommand {
    /// The next chunk of streamed data, transmitted as it is. Together the chunks must not exceed
    /// the announced data length.
    Data(Bytes),
}

/// What a [`Sender`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// The receiver's hello was valid and the echo and header are on their way; streamed data
    /// now flows straight out.
    Ready,
}

enum Phase {
    AwaitHello,
    Sending,
    Ending(Result<(), Error>),
    Done,
}

enum Queued {
    Transmit(Bytes),
    Event(SenderEvent),
}

/// The KCOM5 sender machine. See the [module docs](self) for its transitions.
pub struct Sender {
    config: KcomConfig,
    deadline: Deadline,
    phase: Phase,
    msg: Bytes,
    data_len: u64,
    /// Data bytes handed over so far (at construction or by commands).
    accepted: u64,
    /// Data given before the handshake, in order.
    held: VecDeque<Bytes>,
    /// Bytes in `held` that came from commands (bounded by the write budget).
    held_len: usize,
    queue: VecDeque<Queued>,
    /// Bytes of an unfinished hello left in the driver's buffer.
    partial: usize,
}

impl Sender {
    /// A sender of `msg` and the whole `data` blob.
    ///
    /// Fails with [`Error::OutgoingMessageTooLong`] if `msg` does not fit a `u32` length.
    pub fn new(config: KcomConfig, msg: impl Into<String>, data: Bytes) -> Result<Self, Error> {
        let mut sender = Self::streaming(config, msg, data.len() as u64)?;
        sender.accepted = data.len() as u64;
        if !data.is_empty() {
            // Already in memory: it does not count against the pre-handshake budget.
            sender.held.push_back(data);
        }
        Ok(sender)
    }

    /// A sender of `msg` and `data_len` bytes of data, fed later as [`SenderCommand::Data`].
    ///
    /// Fails with [`Error::OutgoingMessageTooLong`] if `msg` does not fit a `u32` length.
    pub fn streaming(config: KcomConfig, msg: impl Into<String>, data_len: u64) -> Result<Self, Error> {
        let msg = Bytes::from(msg.into().into_bytes());
        if u32::try_from(msg.len()).is_err() {
            return Err(Error::OutgoingMessageTooLong { len: msg.len() });
        }
        Ok(Sender {
            config,
            deadline: Deadline::new(config.close),
            phase: Phase::AwaitHello,
            msg,
            data_len,
            accepted: 0,
            held: VecDeque::new(),
            held_len: 0,
            queue: VecDeque::new(),
            partial: 0,
        })
    }

    /// The configuration this sender was built with.
    pub fn config(&self) -> &KcomConfig {
        &self.config
    }

    /// The announced data length.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Data bytes the application has still to give.
    pub fn remaining(&self) -> u64 {
        self.data_len - self.accepted
    }

    /// Whether the handshake is done and streamed data goes straight out.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Sending)
    }

    /// Whether the sender has reported (or is about to report) `Finished`.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Ending(_) | Phase::Done)
    }

    fn is_open(&self) -> bool {
        matches!(self.phase, Phase::AwaitHello | Phase::Sending)
    }

    fn on_time(&mut self, now: Instant) {
        if let Some(e) = self.deadline.check(now) {
            if self.is_open() {
                self.phase = Phase::Ending(Err(e));
            }
        }
    }

    fn on_stream(&mut self, buf: &mut BytesMut) {
        if !matches!(self.phase, Phase::AwaitHello) {
            // The receiver says nothing after its hello; drop whatever comes so memory stays bounded.
            buf.clear();
            return;
        }
        let Some(hello) = buf.first_chunk::<HELLO_LEN>().copied() else {
            self.partial = buf.len();
            return;
        };
        buf.advance(HELLO_LEN);
        buf.clear();
        self.partial = 0;
        if hello[..MAGIC.len()] != MAGIC {
            self.phase = Phase::Ending(Err(Error::BadMagic { got: hello }));
            return;
        }
        self.send_header(&hello);
        self.queue.push_back(Queued::Event(SenderEvent::Ready));
        while let Some(chunk) = self.held.pop_front() {
            self.queue.push_back(Queued::Transmit(chunk));
        }
        self.held_len = 0;
        self.phase = Phase::Sending;
        self.end_if_complete();
    }

    /// Queue the echo, msg_len, msg and data_len: one buffer, or three when the message is long
    /// enough that copying it would cost more than an extra write.
    fn send_header(&mut self, hello: &[u8; HELLO_LEN]) {
        let inline = self.msg.len() <= INLINE_MSG;
        let mut head = BytesMut::with_capacity(HELLO_LEN + 4 + if inline { self.msg.len() } else { 0 } + 8);
        head.put_slice(hello);
        // Checked to fit at construction.
        head.put_u32_le(self.msg.len() as u32);
        if inline {
            head.put_slice(&self.msg);
        } else {
            self.queue.push_back(Queued::Transmit(head.split().freeze()));
            self.queue.push_back(Queued::Transmit(self.msg.clone()));
        }
        head.put_u64_le(self.data_len);
        self.queue.push_back(Queued::Transmit(head.freeze()));
    }

    fn end_if_complete(&mut self) {
        if matches!(self.phase, Phase::Sending) && self.accepted == self.data_len {
            self.phase = Phase::Ending(Ok(()));
        }
    }

    fn on_data(&mut self, chunk: Bytes) -> Result<(), Error> {
        let remaining = self.remaining();
        if chunk.len() as u64 > remaining {
            return Err(Error::DataOverflow { len: chunk.len(), remaining });
        }
        if chunk.is_empty() {
            return Ok(());
        }
        if matches!(self.phase, Phase::AwaitHello) {
            let budget = self.config.write_budget;
            if self.held_len.saturating_add(chunk.len()) > budget {
                return Err(Error::NotReady { len: chunk.len(), pending: self.held_len, budget });
            }
            self.held_len += chunk.len();
            self.accepted += chunk.len() as u64;
            self.held.push_back(chunk);
            return Ok(());
        }
        self.accepted += chunk.len() as u64;
        self.queue.push_back(Queued::Transmit(chunk));
        self.end_if_complete();
        Ok(())
    }
}

impl Machine for Sender {
    type Command = SenderCommand;
    type Event = SenderEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, SenderCommand>) -> Result<(), Error> {
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
            Input::Eof if matches!(self.phase, Phase::AwaitHello) => {
                let got = self.partial as u64;
                self.phase =
                    Phase::Ending(Err(Error::Truncated { reading: Part::Hello, got, expected: HELLO_LEN as u64 }));
            }
            // The receiver may half-close once its hello is out; the data still goes.
            Input::Eof => {}
            Input::Command(SenderCommand::Data(chunk)) => self.on_data(chunk)?,
            // Every byte given: the transfer completes on its own, which is closing cleanly.
            Input::Close if self.remaining() == 0 => {}
            Input::Close => self.phase = Phase::Ending(Err(Error::Abandoned)),
            Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(&mut self, now: Instant) -> Output<SenderEvent, Error> {
        self.on_time(now);
        if let Some(next) = self.queue.pop_front() {
            return match next {
                Queued::Transmit(bytes) => Output::Transmit(bytes),
                Queued::Event(event) => Output::Event(event),
            };
        }
        match core::mem::replace(&mut self.phase, Phase::Done) {
            phase @ (Phase::AwaitHello | Phase::Sending) => {
                self.phase = phase;
                Output::Timeout(self.deadline.at())
            }
            Phase::Ending(result) => Output::Finished(result),
            Phase::Done => Output::Finished(Err(Error::Finished)),
        }
    }

    fn write_budget(&self) -> usize {
        self.config.write_budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::drain;

    #[test]
    fn long_message_goes_out_uncopied() {
        let msg = "m".repeat(INLINE_MSG + 1);
        let mut sender = Sender::new(KcomConfig::default(), msg.clone(), Bytes::from_static(b"d")).unwrap();
        let msg_ptr = sender.msg.as_ptr();
        let mut buf = BytesMut::from(&b"KCOM5abc"[..]);
        sender.handle_input(Instant::ZERO, Input::Stream(&mut buf)).unwrap();
        let out = drain(&mut sender, Instant::ZERO);
        assert_eq!(out.transmits.len(), 4);
        assert_eq!(out.transmits[1].as_ptr(), msg_ptr);
        let mut want = b"KCOM5abc".to_vec();
        want.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        want.extend_from_slice(msg.as_bytes());
        want.extend_from_slice(&1u64.to_le_bytes());
        want.push(b'd');
        assert_eq!(out.wire(), want);
        assert_eq!(out.finished, Some(Ok(())));
    }
}
