//! The STAGE stream connection: one TCP or Unix stream carrying packet, text or raw frames.
//!
//! # States and transitions
//!
//! | state    | on                                    | does                                       | next     |
//! |----------|---------------------------------------|--------------------------------------------|----------|
//! | Open     | `Stream` with complete frames         | one `Event::Frame` per frame, in order     | Open     |
//! | Open     | `Stream` with a partial frame         | nothing; the partial stays in the driver's buffer | Open |
//! | Open     | `Stream` with a bad header (length < 4 or > IN, bit 31 without a cipher; refused as soon as its 4 bytes are in), a line over IN, or a frame the cipher rejects | frames before it delivered, then `ReadClosed`; the error is kept | ReadClosed(Err) |
//! | Open     | `Eof`, nothing partial buffered       | `ReadClosed` after the frames before it; sends still taken | ReadClosed |
//! | Open     | `Eof` inside a frame or line          | `ReadClosed`; the error is kept            | ReadClosed(Err `Truncated`) |
//! | ReadClosed | `Command`, timers                   | as Open                                    | ReadClosed |
//! | ReadClosed | `Stream`                            | refused: `Error::UnexpectedInput` (the driver's fault) | ReadClosed |
//! | ReadClosed | `Close` (or expire)                 | output flushed                             | Ending(the kept error, else Ok or `Expired`) |
//! | Open     | `Command::Send` / `SendBody`          | frame coalesced into OUT (OUT = 0: transmitted at the next `poll_output`, small frames copied together, larger bodies uncopied) | Open |
//! | Open     | a send larger than OUT, or a malformed whole frame | refused (caller's fault)       | Open     |
//! | Open     | `Command::Flush`, or the commit timer | coalesced output transmitted               | Open     |
//! | Open     | `Close` (the contract's input)        | output flushed                             | Ending(Ok) |
//! | Open     | the expire timer                      | output flushed                             | Ending(Err `Expired`) |
//! | Open     | `Datagram`                            | refused: `Error::UnexpectedInput`          | Open     |
//! | Ending   | `Stream`, `Eof`, `Datagram`, `Timeout`, `Close` | ignored (the driver learns of the end only when it drains) | Ending |
//! | Ending   | `Command`                             | refused: `Error::Finished`                 | Ending   |
//! | Ending   | queue drained                         | `Finished(result)`                         | Done     |
//! | Done     | any input                             | refused: `Error::Finished`                 | Done     |
//!
//! A peer's fault on the way in (a bad header, a truncated frame) closes only the read side:
//! the frames before it were delivered and the application may still be answering them on
//! another thread, so the connection keeps taking commands (the driver stops reading at
//! `ReadClosed`) and finishes with the peer's error on `Close`. Answers to the last good frames
//! are written, never refused.
//!
//! Timers, both acting on whichever call first carries a `now` at or past them:
//! **expire** ends the connection at `last inbound byte + expire` (the clock starts at the first
//! call; every call that brings new bytes pushes it back); **commit** flushes coalesced output at
//! `first unflushed byte + commit` (0 = at the next `poll_output`, so everything queued since
//! the last drain goes out as one write). `Output::Timeout` reports the earlier deadline.
//!
//! Filters: **packet** splits u32-length-prefixed frames (WIRE.md §2) and decrypts those with
//! bit 31 set; **text** splits lines on `\n`, each delivered with its newline, a line longer than
//! IN (newline included) being a peer error; **raw** delivers every chunk as it arrives. Sends on
//! text and raw connections are written as given (no header).
//!
//! Steady-state receiving does not allocate: frames are split off the driver's buffer without
//! copying, the output queue keeps its capacity, and the decoder never forces the driver's buffer
//! to be reallocated while frames from it are still alive (see `FrameDecoder::decode`).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use bytes::{BufMut, Bytes, BytesMut};
use core::time::Duration;

use super::codec::{FrameDecoder, Header, HEADER_LEN, MAX_FRAME_LEN};
use super::Error;
use crate::crypto::FrameCipher;
use crate::machine::{Input, Machine, Output, DEFAULT_WRITE_BUDGET};
use crate::time::{earliest, Instant};

/// How the byte stream is cut into frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Filter {
    /// `packet` / `bson`: u32 LE length-prefixed frames (WIRE.md §2).
    Packet,
    /// `text`: lines split on `\n`, each delivered with its newline.
    Text,
    /// No filter: chunks delivered as they arrive.
    Raw,
}

/// How much the coalescing buffer grows by at a time, at most (less when OUT is smaller).
const OUT_CHUNK: usize = 64 * 1024;

/// The first coalescing buffer's size (see `PacketConnection::grow_out`).
const OUT_CHUNK_MIN: usize = 4 * 1024;

/// OUT = 0: frames up to this size (a 1 KiB body and its header) are copied into the coalescing
/// buffer rather than transmitted as buffers of their own.
const SMALL_FRAME: usize = 1024 + HEADER_LEN;

/// Configuration of one packet connection: the filter, its IN/OUT limits and the timers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FramingConfig {
    /// How the stream is cut into frames.
    pub filter: Filter,
    /// IN: the largest inbound frame or line, in bytes, header included.
    pub max_in: usize,
    /// OUT: the output coalescing buffer, in bytes. 0 = every frame is transmitted at once.
    pub max_out: usize,
    /// Close the connection after this long with no inbound bytes (`None` = never).
    pub expire: Option<Duration>,
    /// Flush coalesced output this long after the first unflushed frame (zero = at once).
    pub commit: Duration,
}

/// The original's `BUFSIZ`: the limit a bare `packet` filter gets for IN and OUT.
pub const DEFAULT_LIMIT: usize = 8192;

impl FramingConfig {
    /// `packet=IN,OUT`.
    pub fn packet(max_in: usize, max_out: usize) -> Self {
        FramingConfig { filter: Filter::Packet, max_in, max_out, expire: None, commit: Duration::ZERO }
    }

    /// `text=IN,OUT`.
    pub fn text(max_in: usize, max_out: usize) -> Self {
        FramingConfig { filter: Filter::Text, ..Self::packet(max_in, max_out) }
    }

    /// No filter: raw chunks in, bytes out as given.
    pub fn raw() -> Self {
        FramingConfig { filter: Filter::Raw, ..Self::packet(usize::MAX, 0) }
    }

    /// Set the idle-close timer.
    pub fn with_expire(mut self, expire: Option<Duration>) -> Self {
        self.expire = expire;
        self
    }

    /// Set the flush interval.
    pub fn with_commit(mut self, commit: Duration) -> Self {
        self.commit = commit;
        self
    }
}

impl Default for FramingConfig {
    /// A bare `packet` filter: 8192 bytes both ways, no timers.
    fn default() -> Self {
        Self::packet(DEFAULT_LIMIT, DEFAULT_LIMIT)
    }
}

/// What the application asks of a [`PacketConnection`].
#[derive(Debug, Clone)]
pub enum Command {
    /// Send a whole frame, header included (for example a BSON document, which is already a
    /// valid frame). With the text or raw filter, the bytes are written as they are.
    Send(Bytes),
    /// Send `body` as one frame; the connection writes the header.
    SendBody(Bytes),
    /// Transmit coalesced output now instead of waiting for the commit timer.
    Flush,
}

/// What a [`PacketConnection`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One received frame: a whole plain packet frame (header included, decrypted if it was
    /// encrypted), one text line with its `\n`, or one raw chunk. A slice of the receive buffer.
    Frame(Bytes),
}

/// The lifecycle both STAGE machines share (stream and datagram).
pub(super) enum State {
    Open,
    /// Finished, once the queued outputs are drained; with why.
    Ending(Result<(), Error>),
    /// `Finished` was reported.
    Done,
}

impl State {
    /// Whether `input` is handled: `Ok(true)` while open. Once ending, the driver learns of the
    /// end only when it drains, so bytes, EOF or a wake-up arriving before that are moot
    /// (`Ok(false)`, dropped), not misuse; a command then, or anything after `Done`, is refused.
    /// `Close` once the end is decided is always a no-op (contract rule 8).
    pub(super) fn admit<C>(&self, input: &Input<'_, C>) -> Result<bool, Error> {
        match self {
            State::Open => Ok(true),
            _ if matches!(input, Input::Close) => Ok(false),
            State::Ending(_) if !matches!(input, Input::Command(_)) => Ok(false),
            _ => Err(Error::Finished),
        }
    }

    /// The output once the queue is empty: `Timeout(deadline)` while open, otherwise the final
    /// result (once; `Finished(Err(Finished))` after that).
    pub(super) fn drained<E>(&mut self, deadline: Option<Instant>) -> Output<E, Error> {
        match core::mem::replace(self, State::Done) {
            State::Open => {
                *self = State::Open;
                Output::Timeout(deadline)
            }
            State::Ending(result) => Output::Finished(result),
            State::Done => Output::Finished(Err(Error::Finished)),
        }
    }
}

enum Queued {
    Transmit(Bytes),
    Event(Event),
    /// The peer's EOF, after the frames before it (contract rule 7).
    ReadClosed,
}

/// The STAGE stream connection machine. See the [module docs](self) for its transitions.
pub struct PacketConnection {
    config: FramingConfig,
    decoder: FrameDecoder,
    cipher: Option<Box<dyn FrameCipher + Send>>,
    state: State,
    /// Outputs ready for `poll_output`, in the order they must take effect.
    queue: VecDeque<Queued>,
    /// Coalesced output not yet transmitted (OUT; with OUT = 0, the small frames fed since the
    /// last `poll_output`).
    out: BytesMut,
    /// The other coalescing buffer (see `grow_out`): empty, its earlier chunks maybe still being
    /// written.
    out_spare: BytesMut,
    /// How large the next fresh coalescing buffer is (see `grow_out`).
    out_chunk: usize,
    /// When the oldest byte in `out` was queued: the commit timer runs from here.
    out_since: Option<Instant>,
    /// Scratch space for headers and sealed frames, reused so steady state does not allocate.
    scratch: BytesMut,
    /// When bytes last arrived (or the connection was first driven): the expire timer.
    last_inbound: Option<Instant>,
    /// The `now` the timers were last checked at.
    timers_checked_at: Option<Instant>,
    /// Bytes of an unfinished frame left in the driver's buffer after the last `Stream`.
    partial: usize,
    /// Text filter: how far into the buffer we already looked for `\n`.
    scanned: usize,
    /// The peer's EOF or a fault in what it sent: no more stream input, `ReadClosed` reported
    /// once.
    read_closed: bool,
    /// The peer's fault that closed the read side, reported when the connection finishes.
    read_failed: Option<Error>,
}

impl PacketConnection {
    /// A connection with no cipher.
    pub fn new(config: FramingConfig) -> Self {
        PacketConnection {
            decoder: FrameDecoder::new(config.max_in),
            config,
            cipher: None,
            state: State::Open,
            queue: VecDeque::new(),
            out: BytesMut::new(),
            out_spare: BytesMut::new(),
            out_chunk: OUT_CHUNK_MIN,
            out_since: None,
            scratch: BytesMut::new(),
            last_inbound: None,
            timers_checked_at: None,
            partial: 0,
            scanned: 0,
            read_closed: false,
            read_failed: None,
        }
    }

    /// A connection whose frames go through `cipher` (the seed's `crypto` option).
    pub fn with_cipher(config: FramingConfig, cipher: Box<dyn FrameCipher + Send>) -> Self {
        let mut conn = Self::new(config);
        conn.cipher = Some(cipher);
        conn
    }

    /// Switch encryption on (`Some`) or off (`None`) for frames sent and received from now on.
    pub fn set_cipher(&mut self, cipher: Option<Box<dyn FrameCipher + Send>>) {
        self.cipher = cipher;
    }

    /// Whether a cipher is configured.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The configuration this connection was built with.
    pub fn config(&self) -> &FramingConfig {
        &self.config
    }

    /// Whether the connection has reported (or is about to report) `Finished`.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, State::Open)
    }

    /// Whether the read side closed: the peer's EOF came, or a fault in what it sent (the
    /// connection may still send).
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn expire_deadline(&self) -> Option<Instant> {
        Some(self.last_inbound? + self.config.expire?)
    }

    fn commit_deadline(&self) -> Option<Instant> {
        Some(self.out_since? + self.config.commit)
    }

    /// Act on every timer `now` has reached.
    fn on_time(&mut self, now: Instant) {
        if !matches!(self.state, State::Open) || self.timers_checked_at == Some(now) {
            // Checked at this very time already: deadlines set since are all later than `now`
            // (commit = 0 flushes without a deadline; expire = 0 ends at the first check), so
            // nothing new can be due. Drivers pass one `now` for a whole batch of commands.
            return;
        }
        self.timers_checked_at = Some(now);
        self.last_inbound.get_or_insert(now);
        // commit = 0 flushes in `poll_output` only, so commands fed before the driver drains
        // still coalesce into one write.
        if !self.config.commit.is_zero() && self.commit_deadline().is_some_and(|t| now >= t) {
            self.flush();
        }
        if let (Some(t), Some(idle)) = (self.expire_deadline(), self.config.expire) {
            if now >= t {
                self.end(Err(Error::Expired { idle }));
            }
        }
    }

    /// Flush what is coalesced and move to `Ending`: outputs already queued still come first.
    /// A peer's fault that closed the read side is the result, whatever ended the connection.
    fn end(&mut self, result: Result<(), Error>) {
        self.flush();
        self.state = State::Ending(match self.read_failed.take() {
            Some(e) => Err(e),
            None => result,
        });
    }

    /// The peer will send nothing more we can use (its EOF, `Ok`, or a fault in what it sent):
    /// report `ReadClosed` after the frames before it and go on taking commands (see the
    /// module docs).
    fn close_read(&mut self, why: Result<(), Error>) {
        self.read_closed = true;
        self.read_failed = why.err();
        self.queue.push_back(Queued::ReadClosed);
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.queue.push_back(Queued::Transmit(self.out.split().freeze()));
        }
        self.out_since = None;
    }

    fn on_stream(&mut self, now: Instant, buf: &mut BytesMut) {
        if buf.len() > self.partial {
            self.last_inbound = Some(now);
        }
        let result = match self.config.filter {
            Filter::Packet => self.split_packets(buf),
            Filter::Text => self.split_lines(buf),
            Filter::Raw => {
                if !buf.is_empty() {
                    self.queue.push_back(Queued::Event(Event::Frame(buf.split().freeze())));
                }
                Ok(())
            }
        };
        self.partial = buf.len();
        if let Err(e) = result {
            self.close_read(Err(e));
        }
    }

    fn split_packets(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        while let Some(head) = buf.first_chunk::<HEADER_LEN>() {
            // An encrypted frame we cannot open is refused as soon as its header is in, like an
            // oversized one: there is no point buffering its body.
            if self.cipher.is_none() && Header::from_bytes(*head).validate(self.decoder.max_in())?.encrypted {
                return Err(Error::EncryptedWithoutCipher);
            }
            let Some((header, frame)) = self.decoder.decode(buf)? else {
                break;
            };
            let frame = match self.cipher.as_mut() {
                Some(cipher) if header.encrypted => cipher.open(frame)?,
                _ => frame,
            };
            self.queue.push_back(Queued::Event(Event::Frame(frame.freeze())));
        }
        Ok(())
    }

    fn split_lines(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        let max = self.config.max_in;
        loop {
            // `min`: a driver that handed a different (shorter) buffer must not make us panic.
            let start = self.scanned.min(buf.len());
            match buf[start..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let end = start + i + 1;
                    if end > max {
                        return Err(Error::LineTooLong { max });
                    }
                    self.scanned = 0;
                    self.queue.push_back(Queued::Event(Event::Frame(buf.split_to(end).freeze())));
                }
                None => {
                    self.scanned = buf.len();
                    // Without a newline in `max` bytes, the line cannot fit IN once it ends.
                    if buf.len() >= max {
                        return Err(Error::LineTooLong { max });
                    }
                    return Ok(());
                }
            }
        }
    }

    fn on_command(&mut self, now: Instant, command: Command) -> Result<(), Error> {
        match command {
            Command::SendBody(body) if self.config.filter == Filter::Packet => {
                if self.append_small_body(now, &body) {
                    return Ok(());
                }
                self.send_frame(now, body, false)
            }
            Command::Send(frame) if self.config.filter == Filter::Packet => {
                let announced = frame.first_chunk::<HEADER_LEN>().map(|h| u32::from_le_bytes(*h));
                match announced {
                    // Bit 31 set makes `a` differ from any length we can hold: refused too.
                    Some(a) if a as usize == frame.len() => self.send_frame(now, frame, true),
                    _ => Err(Error::MalformedOutgoing { announced: announced.unwrap_or(0), actual: frame.len() }),
                }
            }
            Command::Send(bytes) | Command::SendBody(bytes) => self.send_raw(now, bytes),
            Command::Flush => {
                self.flush();
                Ok(())
            }
        }
    }

    /// The common case of [`send_frame`](Self::send_frame), small enough to inline into the
    /// drivers' feed: a plain body that fits the coalescing buffer as it stands and needs no
    /// check that could fail. Anything else (a cipher, a body over 1 KiB with OUT = 0, a flush or
    /// a fresh buffer first) takes the full path. Returns whether it took the body.
    #[inline(always)]
    fn append_small_body(&mut self, now: Instant, body: &[u8]) -> bool {
        let len = body.len() + HEADER_LEN;
        let fits = match self.config.max_out {
            // As `send_frame` with OUT = 0: copied if small, written at the next drain.
            0 => len <= SMALL_FRAME,
            // Within OUT, so `check_outgoing` cannot refuse it and no flush is due.
            max => self.out.len() + len <= max,
        };
        if self.cipher.is_some() || !fits || self.out.capacity() - self.out.len() < len {
            return false;
        }
        self.out.put_slice(&Header { len, encrypted: false }.to_bytes());
        self.out.put_slice(body);
        if self.config.max_out != 0 {
            self.out_since.get_or_insert(now);
        }
        true
    }

    /// Queue one packet frame. `data` is the complete plain frame when `whole`, else its body;
    /// a whole frame is transmitted without a copy when nothing needs to be added to it.
    fn send_frame(&mut self, now: Instant, data: Bytes, whole: bool) -> Result<(), Error> {
        let body = if whole { &data[HEADER_LEN..] } else { &data[..] };
        let len = body.len() + HEADER_LEN;
        // Checked before sealing too: no cipher profile makes a frame shorter than its plaintext,
        // so an oversized frame is refused without touching the cipher's state.
        self.check_outgoing(len)?;
        if let Some(cipher) = self.cipher.as_mut() {
            self.scratch.clear();
            let sealed = cipher.seal(body, &mut self.scratch);
            if let Err(e) = sealed.map_err(Error::from).and_then(|()| self.check_outgoing(self.scratch.len())) {
                self.scratch.clear();
                return Err(e);
            }
            if self.config.max_out == 0 {
                self.flush();
                let sealed = self.scratch.split().freeze();
                self.queue.push_back(Queued::Transmit(sealed));
            } else {
                self.make_room(now, self.scratch.len());
                self.out.extend_from_slice(&self.scratch);
                self.scratch.clear();
            }
            return Ok(());
        }
        if self.config.max_out == 0 && len <= SMALL_FRAME {
            // Written at once too (`poll_output` hands `out` over), but copied: a copy of at
            // most 1 KiB costs less than two buffers per frame, and the small frames fed
            // before a drain go out as one buffer.
            if self.out.capacity() - self.out.len() < len {
                self.grow_out(len);
            }
            if !whole {
                self.out.put_slice(&Header { len, encrypted: false }.to_bytes());
            }
            self.out.put_slice(&data);
            return Ok(());
        }
        if self.config.max_out == 0 {
            // Written at once: the header goes out with the small frames copied before it
            // (one buffer, cut from the coalescing buffer: no allocation per frame) and the body
            // as a buffer of its own (a vectored write), so the body is never copied.
            if !whole {
                if self.out.capacity() - self.out.len() < HEADER_LEN {
                    self.grow_out(HEADER_LEN);
                }
                self.out.put_slice(&Header { len, encrypted: false }.to_bytes());
            }
            self.flush();
            self.queue.push_back(Queued::Transmit(data));
            return Ok(());
        }
        self.make_room(now, len);
        if whole {
            self.out.put_slice(&data);
        } else {
            self.out.put_slice(&Header { len, encrypted: false }.to_bytes());
            self.out.put_slice(&data);
        }
        Ok(())
    }

    /// Queue bytes that need no header (text or raw).
    fn send_raw(&mut self, now: Instant, bytes: Bytes) -> Result<(), Error> {
        self.check_outgoing(bytes.len())?;
        if self.config.max_out == 0 {
            self.flush();
            if !bytes.is_empty() {
                self.queue.push_back(Queued::Transmit(bytes));
            }
        } else if !bytes.is_empty() {
            self.make_room(now, bytes.len());
            self.out.put_slice(&bytes);
        }
        Ok(())
    }

    fn check_outgoing(&self, len: usize) -> Result<(), Error> {
        let max = if self.config.max_out == 0 { MAX_FRAME_LEN } else { self.config.max_out };
        if len > max && (self.config.max_out != 0 || self.config.filter == Filter::Packet) {
            return Err(Error::OutgoingTooLarge { len, max });
        }
        Ok(())
    }

    /// Flush first if `len` more bytes would overflow OUT; start the commit timer.
    fn make_room(&mut self, now: Instant, len: usize) {
        if self.out.len() + len > self.config.max_out {
            self.flush();
        }
        if self.out.capacity() - self.out.len() < len {
            self.grow_out(len);
        }
        self.out_since.get_or_insert(now);
    }

    /// Room in `out` for `len` more bytes, and for many frames at once: flushed chunks are split
    /// off one allocation, so small frames do not regrow a fresh buffer after every flush.
    /// Two allocations take turns: when one is full, its chunks are usually still being
    /// written, so `out` moves to the other, taken back once everything cut from it has been
    /// written. Freeing each full buffer and allocating the next instead makes the allocator
    /// return the pages and fault them in again, a page fault per few frames. Each buffer that
    /// cannot be taken back doubles the next one's size, up to OUT (at most 64 KiB): a
    /// connection that sends little keeps small buffers.
    fn grow_out(&mut self, len: usize) {
        let cap = match self.config.max_out {
            0 => OUT_CHUNK,
            max => max.min(OUT_CHUNK),
        };
        let want = self.out.len() + len.max(self.out_chunk.min(cap));
        let mut next = core::mem::take(&mut self.out_spare);
        if !next.try_reclaim(want) {
            next = BytesMut::with_capacity(want);
            self.out_chunk = (self.out_chunk * 2).min(cap);
        }
        // Usually nothing: a flush came first unless OUT is larger than the buffer.
        next.extend_from_slice(&self.out.split());
        self.out_spare = core::mem::replace(&mut self.out, next);
    }
}

impl Machine for PacketConnection {
    type Command = Command;
    type Event = Event;
    type Error = Error;

    // Inlined into the drivers' feed, so a command reaches `on_command` without first being
    // written into an `Input` on the stack and read back (measured, 64 B frames: the async
    // `Direct` drivers 15-16M -> 18-21M msg/s, std `Direct` a few percent).
    #[inline(always)]
    fn handle_input(&mut self, now: Instant, input: Input<'_, Command>) -> Result<(), Error> {
        self.on_time(now);
        if !self.state.admit(&input)? {
            return Ok(());
        }
        match input {
            // A driver that reads on after the EOF it fed has lost track of its socket.
            Input::Stream(_) if self.read_closed => {
                return Err(Error::UnexpectedInput { input: "bytes after the read side closed" })
            }
            Input::Stream(buf) => self.on_stream(now, buf),
            Input::Eof if self.read_closed => {}
            Input::Eof if self.partial > 0 => self.close_read(Err(Error::Truncated { buffered: self.partial })),
            Input::Eof => self.close_read(Ok(())),
            Input::Close => self.end(Ok(())),
            Input::Command(command) => self.on_command(now, command)?,
            // Datagrams carry whole frames and belong to `PacketDatagram`; splicing them into a
            // stream would lose frame boundaries.
            Input::Datagram { .. } => return Err(Error::UnexpectedInput { input: "datagram" }),
            Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(&mut self, now: Instant) -> Output<Event, Error> {
        self.on_time(now);
        // Checked here, not only in `flush`: this runs once per event on the receive path.
        // OUT = 0 coalesces small frames only until here, whatever the commit time.
        if !self.out.is_empty()
            && matches!(self.state, State::Open)
            && (self.config.commit.is_zero() || self.config.max_out == 0)
        {
            self.flush();
        }
        if let Some(next) = self.queue.pop_front() {
            return match next {
                Queued::Transmit(bytes) => Output::Transmit(bytes),
                Queued::Event(event) => Output::Event(event),
                Queued::ReadClosed => Output::ReadClosed,
            };
        }
        let deadline = earliest(self.expire_deadline(), self.commit_deadline());
        self.state.drained(deadline)
    }

    fn write_budget(&self) -> usize {
        if self.config.max_out == 0 {
            DEFAULT_WRITE_BUDGET
        } else {
            self.config.max_out.max(DEFAULT_WRITE_BUDGET)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::drain;

    fn feed(conn: &mut PacketConnection, now: Instant, bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        conn.handle_input(now, Input::Stream(&mut buf)).unwrap();
    }

    #[test]
    fn frames_before_an_error_are_delivered_first() {
        let mut conn = PacketConnection::new(FramingConfig::packet(16, 0));
        feed(&mut conn, Instant::ZERO, b"\x05\x00\x00\x00a\x03\x00\x00\x00");
        let out = drain(&mut conn, Instant::ZERO);
        assert_eq!(out.events, [Event::Frame(Bytes::from_static(b"\x05\x00\x00\x00a"))]);
        assert!(out.read_closed && out.finished.is_none(), "only the read side closed: {out:?}");
        // The good frame that came in the same read as the bad header is still answered.
        conn.handle_input(Instant::ZERO, Input::Command(Command::SendBody(Bytes::from_static(b"re")))).unwrap();
        conn.handle_input(Instant::ZERO, Input::Close).unwrap();
        let out = drain(&mut conn, Instant::ZERO);
        assert_eq!(out.wire(), b"\x06\x00\x00\x00re");
        assert_eq!(out.finished, Some(Err(Error::LengthTooShort { len: 3 })), "the peer's fault is the result");
    }

    #[test]
    fn coalesced_bytes_stay_in_order_across_buffer_turns() {
        // OUT larger than one buffer, so frames cross buffer boundaries with bytes still
        // coalesced (carried into the next buffer); chunks are "written" (dropped) two rounds
        // late, as a driver does, so a full buffer is often still referenced when `out` moves on.
        let cfg = FramingConfig::packet(1 << 20, 200 * 1024).with_commit(Duration::from_millis(10));
        let mut conn = PacketConnection::new(cfg);
        let mut expected = alloc::vec::Vec::new();
        let mut writing = alloc::collections::VecDeque::new();
        for round in 0..12u8 {
            let t0 = Instant::from_millis(1 + u64::from(round) * 20);
            for i in 0..(40 + 25 * (round % 4)) {
                let body = Bytes::from(alloc::vec![round ^ i; 1000]);
                expected.extend_from_slice(&1004u32.to_le_bytes());
                expected.extend_from_slice(&body);
                conn.handle_input(t0, Input::Command(Command::SendBody(body))).unwrap();
            }
            let out = drain(&mut conn, t0.saturating_add(Duration::from_millis(10)));
            let wire = out.wire();
            assert!(!wire.is_empty());
            assert_eq!(wire, &expected[..wire.len()], "round {round}");
            expected.drain(..wire.len());
            writing.push_back(out.transmits);
            if writing.len() > 2 {
                writing.pop_front();
            }
        }
        assert!(expected.is_empty());
    }

    #[test]
    fn coalescing_buffers_start_small_and_grow_only_for_bursts() {
        let mut conn = PacketConnection::new(FramingConfig::packet(1 << 20, 0));
        let now = Instant::from_millis(1);
        for _ in 0..100 {
            conn.handle_input(now, Input::Command(Command::SendBody(Bytes::from_static(b"hello")))).unwrap();
            drop(drain(&mut conn, now)); // written at once
        }
        assert_eq!(conn.out_chunk, 2 * OUT_CHUNK_MIN, "one small buffer was enough");
        assert!(conn.out.capacity() + conn.out_spare.capacity() <= 2 * OUT_CHUNK_MIN);
        // A burst whose chunks are still being written when the next are cut grows them.
        let mut writing = alloc::vec::Vec::new();
        for _ in 0..200 {
            conn.handle_input(now, Input::Command(Command::SendBody(Bytes::from(alloc::vec![1u8; 1000])))).unwrap();
            writing.push(drain(&mut conn, now));
        }
        assert_eq!(conn.out_chunk, OUT_CHUNK);
    }

    #[test]
    fn coalesces_until_commit() {
        let cfg = FramingConfig::packet(64, 64).with_commit(Duration::from_millis(10));
        let mut conn = PacketConnection::new(cfg);
        let t0 = Instant::from_millis(1);
        conn.handle_input(t0, Input::Command(Command::SendBody(Bytes::from_static(b"ab")))).unwrap();
        conn.handle_input(t0, Input::Command(Command::SendBody(Bytes::from_static(b"c")))).unwrap();
        let out = drain(&mut conn, t0);
        assert!(out.transmits.is_empty());
        assert_eq!(out.deadline, Some(Instant::from_millis(11)));
        let out = drain(&mut conn, Instant::from_millis(11));
        assert_eq!(out.wire(), b"\x06\x00\x00\x00ab\x05\x00\x00\x00c");
    }
}
