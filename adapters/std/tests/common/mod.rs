//! Shared pieces of the switchboard-std integration tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_proto::stage::{self, Command, Event, Header, HEADER_LEN};
use switchboard_proto::{Input, Instant, Machine, Output};
use switchboard_std::{Control, DriverError, Notice, Session};

/// How long a test waits for something that should happen at once, before it fails instead of
/// hanging. Never an assertion about speed.
pub const GUARD: Duration = Duration::from_secs(20);

/// A whole packet frame for `body`.
pub fn frame(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + HEADER_LEN);
    out.put_slice(&Header { len: body.len() + HEADER_LEN, encrypted: false }.to_bytes());
    out.put_slice(body);
    out.freeze()
}

/// The body of frame number `i`: `len` bytes starting with `i`, so order and content show.
pub fn numbered(i: u32, len: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(len.max(4));
    body.put_u32_le(i);
    body.extend((0..len.saturating_sub(4)).map(|k| (i as usize + k) as u8));
    body.truncate(len.max(4));
    body.freeze()
}

/// How a served connection ended, as an [`Echo`] session reports it.
pub type Finished = (SocketAddr, Result<(), DriverError<stage::Error>>);

/// A session that echoes every frame and reports how the connection ended.
pub struct Echo {
    pub finished: Sender<Finished>,
}

impl Session<stage::PacketConnection> for Echo {
    fn on_notice(&mut self, notice: Notice<Event, stage::Error>, control: &mut Control<Command>) {
        if let Notice::Event(Event::Frame(frame)) = notice {
            control.send(Command::Send(frame));
        }
    }

    fn on_finished(&mut self, peer: SocketAddr, result: Result<(), DriverError<stage::Error>>) {
        let _ = self.finished.send((peer, result));
    }
}

/// A channel for [`Echo`] sessions to report on.
pub fn finished_channel() -> (Sender<Finished>, Receiver<Finished>) {
    mpsc::channel()
}

/// What the test datagram machine can be asked to do.
#[derive(Debug)]
pub enum DgCommand {
    /// Send `body` as one packet frame to this address.
    SendTo(SocketAddr, Bytes),
    /// Send `body` as one packet frame to the driver's default destination.
    Send(Bytes),
    /// Finish cleanly.
    Close,
}

/// What the test datagram machine reports.
#[derive(Debug, PartialEq, Eq)]
pub enum DgEvent {
    /// One valid frame (header included) and who sent it.
    Frame(SocketAddr, Bytes),
    /// A datagram that was not exactly one frame; the socket goes on (WIRE.md §2).
    Bad(SocketAddr, stage::Error),
}

/// One STAGE packet frame per datagram: a small machine for driving UDP in tests.
pub struct DatagramFrames {
    max_in: usize,
    out: VecDeque<Output<DgEvent, stage::Error>>,
    done: bool,
}

impl DatagramFrames {
    pub fn new(max_in: usize) -> Self {
        DatagramFrames { max_in, out: VecDeque::new(), done: false }
    }

    fn check(&self, data: &Bytes) -> Result<(), stage::Error> {
        let head = data
            .first_chunk::<HEADER_LEN>()
            .ok_or(stage::Error::DatagramLengthMismatch { announced: 0, actual: data.len() })?;
        let header = Header::from_bytes(*head).validate(self.max_in)?;
        if header.len != data.len() {
            return Err(stage::Error::DatagramLengthMismatch { announced: header.len, actual: data.len() });
        }
        Ok(())
    }
}

impl Machine for DatagramFrames {
    type Command = DgCommand;
    type Event = DgEvent;
    type Error = stage::Error;

    fn handle_input(&mut self, _now: Instant, input: Input<'_, DgCommand>) -> Result<(), stage::Error> {
        if self.done {
            return Err(stage::Error::Finished);
        }
        match input {
            Input::Datagram { from, data } => {
                let event = match self.check(&data) {
                    Ok(()) => DgEvent::Frame(from, data),
                    Err(e) => DgEvent::Bad(from, e),
                };
                self.out.push_back(Output::Event(event));
            }
            Input::Command(DgCommand::SendTo(to, body)) => self.out.push_back(Output::TransmitTo(to, frame(&body))),
            Input::Command(DgCommand::Send(body)) => self.out.push_back(Output::Transmit(frame(&body))),
            Input::Command(DgCommand::Close) => self.done = true,
            Input::Stream(_) | Input::Eof | Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(&mut self, _now: Instant) -> Output<DgEvent, stage::Error> {
        match self.out.pop_front() {
            Some(out) => out,
            None if self.done => Output::Finished(Ok(())),
            None => Output::Timeout(None),
        }
    }
}
