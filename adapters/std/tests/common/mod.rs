//! Shared pieces of the switchboard-std integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_proto::stage::{self, Command, Event, Header, HEADER_LEN};
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

/// How a served connection ended, as an [`Echo`] session reports it: the peer's address (of the
/// listener's address type) and the result.
pub type Finished<A = SocketAddr> = (A, Result<(), DriverError<stage::Error>>);

/// A session that echoes every frame and reports how the connection ended.
pub struct Echo<A = SocketAddr> {
    pub finished: Sender<Finished<A>>,
}

impl<A: Send + 'static> Session<stage::PacketConnection, A> for Echo<A> {
    fn on_notice(&mut self, notice: Notice<Event, stage::Error>, control: &mut Control<Command>) {
        if let Notice::Event(Event::Frame(frame)) = notice {
            control.send(Command::Send(frame));
        }
    }

    fn on_finished(&mut self, peer: A, result: Result<(), DriverError<stage::Error>>) {
        let _ = self.finished.send((peer, result));
    }
}

/// A channel for [`Echo`] sessions to report on.
pub fn finished_channel<A>() -> (Sender<Finished<A>>, Receiver<Finished<A>>) {
    mpsc::channel()
}
