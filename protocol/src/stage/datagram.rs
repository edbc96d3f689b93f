//! The STAGE datagram endpoint: one UDP socket (unicast or a multicast group) on which every
//! datagram is exactly one packet frame (WIRE.md §2, §6).
//!
//! # States and transitions
//!
//! | state  | on                                                  | does                                              | next   |
//! |--------|-----------------------------------------------------|---------------------------------------------------|--------|
//! | Open   | `Datagram` holding exactly one valid frame          | `DatagramEvent::Frame { from, frame }` (decrypted if bit 31); expire timer restarts | Open |
//! | Open   | `Datagram` that is not one valid frame: shorter than 4 bytes, header length < 4, > IN or ≠ the datagram's size, bit 31 without a cipher, cipher failure | `DatagramEvent::Dropped { from, error }` | Open |
//! | Open   | `SendTo` / `SendBodyTo` / `Send` / `SendBody`       | one `Output::TransmitTo(addr, frame)`             | Open   |
//! | Open   | a send over OUT or the UDP payload limit, a malformed whole frame, `Send` without a default destination | refused (caller's fault) | Open |
//! | Open   | `Close`, or `Eof` (the driver's socket is gone)      | —                                                 | Ending(Ok) |
//! | Open   | the expire timer                                    | —                                                 | Ending(Err `Expired`) |
//! | Open   | `Stream`                                            | refused: `Error::UnexpectedInput`                 | Open   |
//! | Ending | `Datagram`, `Eof`, `Stream`, `Timeout`, `Close`     | ignored (the driver learns of the end only when it drains) | Ending |
//! | Ending | `Command`                                           | refused: `Error::Finished`                        | Ending |
//! | Ending | queue drained                                       | `Finished(result)`                                | Done   |
//! | Done   | any input                                           | refused: `Error::Finished`                        | Done   |
//!
//! A bad datagram never ends the endpoint: UDP has no connection to close, and anyone can send
//! to a socket. **expire** ends the endpoint at `last accepted frame + expire` (the clock starts
//! at the first call; dropped datagrams do not push it back, so stray traffic cannot keep a dead
//! group alive). There is no coalescing on UDP (the seed: "캐싱 무시"), so `commit` is ignored
//! and OUT, when not 0, only caps the size of a sent frame.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use bytes::{BufMut, Bytes, BytesMut};
use core::net::SocketAddr;

use super::codec::{FrameDecoder, Header, HEADER_LEN};
use super::connection::{FramingConfig, State};
use super::Error;
use crate::crypto::FrameCipher;
use crate::machine::{Input, Machine, Output};
use crate::time::Instant;

/// The largest UDP payload over IPv4 (65535 − 8-byte UDP header − 20-byte IP header).
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6 without jumbograms (65535 − 8-byte UDP header).
pub const MAX_UDP_PAYLOAD_V6: usize = 65_527;

/// What the application asks of a [`PacketDatagram`].
#[derive(Debug, Clone)]
pub enum DatagramCommand {
    /// Send a whole plain frame (header included, e.g. a BSON document) to this address.
    SendTo(SocketAddr, Bytes),
    /// Send `body` as one frame to this address; the endpoint writes the header.
    SendBodyTo(SocketAddr, Bytes),
    /// Send a whole plain frame to the default destination given at construction.
    Send(Bytes),
    /// Send `body` as one frame to the default destination given at construction.
    SendBody(Bytes),
}

/// What a [`PacketDatagram`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramEvent {
    /// One received frame: a whole plain packet frame, header included, decrypted if it was
    /// encrypted.
    Frame {
        /// The sender.
        from: SocketAddr,
        /// The frame (the datagram itself when it was plain: no copy).
        frame: Bytes,
    },
    /// A datagram that was not one valid frame was dropped; the endpoint keeps working.
    Dropped {
        /// The sender.
        from: SocketAddr,
        /// Why it was dropped (always the peer's fault).
        error: Error,
    },
}

enum Queued {
    TransmitTo(SocketAddr, Bytes),
    Event(DatagramEvent),
}

/// The STAGE datagram machine. See the [module docs](self) for its transitions.
pub struct PacketDatagram {
    config: FramingConfig,
    decoder: FrameDecoder,
    default_to: Option<SocketAddr>,
    cipher: Option<Box<dyn FrameCipher + Send>>,
    state: State,
    /// Outputs ready for `poll_output`, in the order they must take effect.
    queue: VecDeque<Queued>,
    /// Where outgoing datagrams are assembled, reused between sends.
    scratch: BytesMut,
    /// When the last frame was accepted (or the endpoint was first driven): the expire timer.
    last_inbound: Option<Instant>,
}

impl PacketDatagram {
    /// An endpoint with no cipher. `default_to` is where `Send` / `SendBody` go (for example
    /// the multicast group); without one, only `SendTo` / `SendBodyTo` can send. The config's
    /// filter is ignored: a datagram is always one packet frame.
    pub fn new(config: FramingConfig, default_to: Option<SocketAddr>) -> Self {
        PacketDatagram {
            decoder: FrameDecoder::new(config.max_in),
            config,
            default_to,
            cipher: None,
            state: State::Open,
            queue: VecDeque::new(),
            scratch: BytesMut::new(),
            last_inbound: None,
        }
    }

    /// An endpoint whose frames go through `cipher`.
    pub fn with_cipher(
        config: FramingConfig,
        default_to: Option<SocketAddr>,
        cipher: Box<dyn FrameCipher + Send>,
    ) -> Self {
        let mut endpoint = Self::new(config, default_to);
        endpoint.cipher = Some(cipher);
        endpoint
    }

    /// Switch encryption on (`Some`) or off (`None`) for frames sent and received from now on.
    pub fn set_cipher(&mut self, cipher: Option<Box<dyn FrameCipher + Send>>) {
        self.cipher = cipher;
    }

    /// Whether a cipher is configured.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The default destination of `Send` / `SendBody`.
    pub fn default_destination(&self) -> Option<SocketAddr> {
        self.default_to
    }

    /// The configuration this endpoint was built with.
    pub fn config(&self) -> &FramingConfig {
        &self.config
    }

    /// Whether the endpoint has reported (or is about to report) `Finished`.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, State::Open)
    }

    fn expire_deadline(&self) -> Option<Instant> {
        Some(self.last_inbound? + self.config.expire?)
    }

    fn on_time(&mut self, now: Instant) {
        if !matches!(self.state, State::Open) {
            return;
        }
        self.last_inbound.get_or_insert(now);
        if let (Some(t), Some(idle)) = (self.expire_deadline(), self.config.expire) {
            if now >= t {
                self.state = State::Ending(Err(Error::Expired { idle }));
            }
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        let event = match self.open(data) {
            Ok(frame) => {
                self.last_inbound = Some(now);
                DatagramEvent::Frame { from, frame }
            }
            Err(error) => DatagramEvent::Dropped { from, error },
        };
        self.queue.push_back(Queued::Event(event));
    }

    /// Check that `data` is exactly one acceptable frame and return it in plain form.
    fn open(&mut self, data: Bytes) -> Result<Bytes, Error> {
        let head = data.first_chunk::<HEADER_LEN>().ok_or(Error::DatagramTooShort { len: data.len() })?;
        let header = Header::from_bytes(*head).validate(self.decoder.max_in())?;
        if header.len != data.len() {
            return Err(Error::DatagramLengthMismatch { announced: header.len, actual: data.len() });
        }
        if !header.encrypted {
            return Ok(data);
        }
        let cipher = self.cipher.as_mut().ok_or(Error::EncryptedWithoutCipher)?;
        // Zero-copy when the driver handed over the only reference to the datagram.
        Ok(cipher.open(BytesMut::from(data))?.freeze())
    }

    /// The largest datagram this endpoint may send to `to`.
    fn out_limit(&self, to: SocketAddr) -> usize {
        let udp = if to.is_ipv4() { MAX_UDP_PAYLOAD_V4 } else { MAX_UDP_PAYLOAD_V6 };
        match self.config.max_out {
            0 => udp,
            out => out.min(udp),
        }
    }

    fn on_command(&mut self, command: DatagramCommand) -> Result<(), Error> {
        match command {
            DatagramCommand::SendTo(to, frame) => self.send(to, frame, true),
            DatagramCommand::SendBodyTo(to, body) => self.send(to, body, false),
            DatagramCommand::Send(frame) => self.send(self.default_to.ok_or(Error::NoDestination)?, frame, true),
            DatagramCommand::SendBody(body) => self.send(self.default_to.ok_or(Error::NoDestination)?, body, false),
        }
    }

    /// Queue one datagram. `data` is a whole plain frame when `whole`, else a body.
    fn send(&mut self, to: SocketAddr, data: Bytes, whole: bool) -> Result<(), Error> {
        if whole {
            let announced = data.first_chunk::<HEADER_LEN>().map(|h| u32::from_le_bytes(*h));
            // Bit 31 set makes `a` differ from any length we can hold: refused too.
            if !matches!(announced, Some(a) if a as usize == data.len()) {
                return Err(Error::MalformedOutgoing { announced: announced.unwrap_or(0), actual: data.len() });
            }
        }
        let body = if whole { &data[HEADER_LEN..] } else { &data[..] };
        let len = body.len() + HEADER_LEN;
        let max = self.out_limit(to);
        // Checked before sealing: no cipher profile makes a frame shorter than its plaintext.
        if len > max {
            return Err(Error::OutgoingTooLarge { len, max });
        }
        let datagram = if let Some(cipher) = self.cipher.as_mut() {
            self.scratch.clear();
            if let Err(e) = cipher.seal(body, &mut self.scratch) {
                self.scratch.clear();
                return Err(e.into());
            }
            if self.scratch.len() > max {
                let len = self.scratch.len();
                self.scratch.clear();
                return Err(Error::OutgoingTooLarge { len, max });
            }
            self.scratch.split().freeze()
        } else if whole {
            data
        } else {
            // One datagram must be one contiguous buffer, so the body is copied once here.
            self.scratch.reserve(len);
            self.scratch.put_slice(&Header { len, encrypted: false }.to_bytes());
            self.scratch.put_slice(body);
            self.scratch.split().freeze()
        };
        self.queue.push_back(Queued::TransmitTo(to, datagram));
        Ok(())
    }
}

impl Machine for PacketDatagram {
    type Command = DatagramCommand;
    type Event = DatagramEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, DatagramCommand>) -> Result<(), Error> {
        self.on_time(now);
        if !self.state.admit(&input)? {
            return Ok(());
        }
        match input {
            Input::Datagram { from, data } => self.on_datagram(now, from, data),
            Input::Command(command) => self.on_command(command)?,
            Input::Eof | Input::Close => self.state = State::Ending(Ok(())),
            Input::Stream(_) => return Err(Error::UnexpectedInput { input: "stream" }),
            Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(&mut self, now: Instant) -> Output<DatagramEvent, Error> {
        self.on_time(now);
        if let Some(next) = self.queue.pop_front() {
            return match next {
                Queued::TransmitTo(to, bytes) => Output::TransmitTo(to, bytes),
                Queued::Event(event) => Output::Event(event),
            };
        }
        let deadline = self.expire_deadline();
        self.state.drained(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::drain;

    const PEER: SocketAddr = SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::LOCALHOST, 9000));

    #[test]
    fn bad_datagram_is_dropped_and_the_endpoint_goes_on() {
        let mut ep = PacketDatagram::new(FramingConfig::packet(64, 64), None);
        let t = Instant::ZERO;
        let data = Bytes::from_static(b"\x07\x00\x00\x00ab");
        ep.handle_input(t, Input::Datagram { from: PEER, data }).unwrap();
        let data = Bytes::from_static(b"\x06\x00\x00\x00ab");
        ep.handle_input(t, Input::Datagram { from: PEER, data: data.clone() }).unwrap();
        let out = drain(&mut ep, t);
        let error = Error::DatagramLengthMismatch { announced: 7, actual: 6 };
        assert_eq!(
            out.events,
            [DatagramEvent::Dropped { from: PEER, error }, DatagramEvent::Frame { from: PEER, frame: data }]
        );
        assert!(out.finished.is_none());
    }
}
