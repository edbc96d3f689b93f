//! The part of every runtime driver that is not I/O.
//!
//! A driver for any runtime does the same bookkeeping around a [`Machine`]: drain it after each
//! input, queue what it transmits, hand events on, remember its deadline and its final result,
//! and stop reading while too much output is waiting (backpressure). [`Pump`] does all of that
//! once, so the runtime adapters only move bytes and wait.
//!
//! A driver's loop, for any runtime:
//!
//! ```text
//! loop {
//!     pump.drain(now, |event| deliver(event));
//!     write pump.writes() to the socket (vectored); pump.writes().advance(n)
//!     send each pump.next_datagram()
//!     if pump.is_done() { close; return pump.take_result() }
//!     wait for the first of:
//!         socket readable (only if pump.wants_input()) -> pump.input(now, Input::Stream(&mut rx))
//!         a command       (only if pump.wants_input()) -> pump.input(now, Input::Command(c))
//!         socket writable (only if pump.writes() is not empty)
//!         pump.deadline()                               -> pump.input(now, Input::Timeout)
//! }
//! ```

mod inline;

pub use inline::{Ending, Inline, Refusal, Step, BYTES_HELD, EVENTS_HELD};

use alloc::collections::VecDeque;
use bytes::{Buf, Bytes, BytesMut};
use core::net::SocketAddr;

use crate::machine::{Input, Machine, Output};
use crate::time::Instant;

/// Stream bytes waiting to be written, in order, as the machine produced them.
///
/// Buffers are kept as the machine's own [`Bytes`] (no copies), except that a stream driver may
/// turn on [gathering](Self::gather_small): buffers up to that size are then copied into one
/// staging buffer instead, because a vectored write takes a bounded number of slices and many
/// tiny frames (a 4-byte header and a 64-byte body each) would otherwise cost a system call
/// per few dozen frames. Copying 64 bytes is far cheaper than that. Datagram drivers leave it
/// off: there each buffer is one datagram.
#[derive(Debug, Default)]
pub struct WriteQueue {
    bufs: VecDeque<Bytes>,
    /// Small buffers gathered after the last entry of `bufs`, written after all of them.
    staging: BytesMut,
    len: usize,
    gather_max: usize,
}

/// The gathering threshold stream drivers use: buffers up to 1 KiB are copied.
pub const STREAM_GATHER: usize = 1024;

/// How large the staging buffer grows before it is sealed into the queue.
const STAGING_LIMIT: usize = 64 * 1024;

impl WriteQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy buffers of at most `max` bytes into a staging buffer instead of queueing them one by
    /// one (0, the default, turns gathering off). Only for byte streams: it merges buffers.
    pub fn gather_small(&mut self, max: usize) {
        self.gather_max = max;
    }

    /// Append bytes to write after everything already queued.
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if bytes.len() <= self.gather_max && self.staging.len() + bytes.len() <= STAGING_LIMIT {
            self.staging.extend_from_slice(&bytes);
            return;
        }
        self.seal_staging();
        self.bufs.push_back(bytes);
    }

    /// Move the staging buffer into the queue, so later buffers go after it.
    fn seal_staging(&mut self) {
        if !self.staging.is_empty() {
            self.bufs.push_back(self.staging.split().freeze());
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The waiting buffers in order, for a vectored write.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let staging = (!self.staging.is_empty()).then_some(&self.staging[..]);
        self.bufs.iter().map(|b| &b[..]).chain(staging)
    }

    /// The first waiting buffer.
    pub fn front(&self) -> Option<&[u8]> {
        self.chunks().next()
    }

    /// Take the first waiting buffer whole, uncopied: on a datagram driver (no gathering) each
    /// buffer is one transmit, so one datagram.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let front = match self.bufs.pop_front() {
            Some(front) => front,
            None if self.staging.is_empty() => return None,
            None => self.staging.split().freeze(),
        };
        self.len -= front.len();
        Some(front)
    }

    /// Mark `n` bytes as written.
    pub fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                let n = n.min(self.staging.len());
                self.staging.advance(n);
                if self.staging.is_empty() {
                    // Written out: start again at the front, so the allocation is reused.
                    self.staging.clear();
                }
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.bufs.pop_front();
        }
    }
}

/// Chunks per receive-buffer region (see [`ReadBuffer::spare`]), once reads fill their room.
const REGION_CHUNKS: usize = 4;

/// The first region's size: a connection that carries a few small frames never holds more.
const FIRST_REGION: usize = 4096;

/// A stream driver's receive buffer: bytes read so far (handed to the machine as
/// [`Input::Stream`]) followed by zeroed spare room the next read goes into.
///
/// Safe Rust cannot read into uninitialised memory, so the spare room is zeroed once when it is
/// allocated, then read into in place: frames stay slices of the memory the kernel wrote, and no
/// byte is zeroed or copied per read. When less than a quarter of a chunk is left, a fresh
/// region is allocated (the old one lives on in the frames still referring to it).
#[derive(Debug)]
pub struct ReadBuffer {
    buf: BytesMut,
    spare: BytesMut,
    chunk: usize,
    /// How large the next region is: from [`FIRST_REGION`], doubled each time a read fills its
    /// whole room (more was waiting), up to `REGION_CHUNKS` chunks. Thousands of quiet
    /// connections then hold small buffers, and a bulk stream reaches full-size reads after a
    /// few of them.
    region: usize,
    /// The room handed out by the last [`spare`](Self::spare).
    last_room: usize,
}

impl ReadBuffer {
    /// A buffer that reads up to `chunk` bytes at a time. Allocates nothing until the first read.
    pub fn new(chunk: usize) -> Self {
        let chunk = chunk.max(1);
        ReadBuffer {
            buf: BytesMut::new(),
            spare: BytesMut::new(),
            chunk,
            region: FIRST_REGION.min(REGION_CHUNKS * chunk),
            last_room: 0,
        }
    }

    /// Room for the next read (at most one chunk); call [`filled`](Self::filled) with what the
    /// read returned.
    pub fn spare(&mut self) -> &mut [u8] {
        let read_size = self.chunk.min(self.region);
        if self.spare.len() < read_size / 4 + 1 {
            // A region holds several chunks, so a frame that straddles two reads is copied
            // (with the region's zeroing) once per region, not once per read; and grows by at
            // least what is buffered, so a frame much larger than a chunk is copied O(log n)
            // times, not O(n / chunk).
            let keep = self.buf.len();
            let want = keep + self.region.max(keep);
            let mut region = core::mem::take(&mut self.buf);
            region.unsplit(core::mem::take(&mut self.spare));
            region.truncate(keep);
            // When every frame cut from this region has been dropped, take it back (the
            // unconsumed bytes move to its front) instead of allocating and faulting in a new
            // one. It is zeroed again either way: safe Rust reads only into initialised memory.
            if region.capacity() < want && !region.try_reclaim(want - keep) {
                // A chunk of slack: the next region is taken back only if the bytes carried
                // over then fit too, and a frame's tail is carried over nearly every time.
                let mut fresh = BytesMut::with_capacity(want + self.chunk);
                fresh.extend_from_slice(&region);
                region = fresh;
            }
            region.resize(want, 0);
            self.spare = region.split_off(keep);
            self.buf = region;
        }
        let room = self.spare.len().min(read_size);
        self.last_room = room;
        &mut self.spare[..room]
    }

    /// `n` bytes were read into [`spare`](Self::spare): append them to the received bytes.
    pub fn filled(&mut self, n: usize) {
        if n > 0 && n == self.last_room && n >= self.chunk.min(self.region) {
            self.region = (self.region * 2).min(REGION_CHUNKS * self.chunk);
        }
        let n = n.min(self.spare.len());
        self.buf.unsplit(self.spare.split_to(n));
    }

    /// The received bytes not yet consumed, for [`Input::Stream`].
    pub fn received(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received and not yet consumed.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether spare room is allocated (an idle, released buffer holds none).
    pub fn is_allocated(&self) -> bool {
        !self.spare.is_empty()
    }

    /// Give the memory back when nothing unconsumed is held: an idle connection then costs no
    /// read buffer (frames already split off keep their own part alive). Returns whether it did.
    pub fn release_if_empty(&mut self) -> bool {
        if !self.buf.is_empty() || self.spare.is_empty() {
            return false;
        }
        self.buf = BytesMut::new();
        self.spare = BytesMut::new();
        true
    }

    /// Whether no unconsumed bytes are held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A machine plus its driver-side bookkeeping. See the [module docs](self) for the loop.
#[derive(Debug)]
pub struct Pump<M: Machine> {
    machine: M,
    writes: WriteQueue,
    datagrams: VecDeque<(SocketAddr, Bytes)>,
    deadline: Option<Instant>,
    result: Option<Result<(), M::Error>>,
    result_taken: bool,
    /// The machine reported `ReadClosed`: no event comes any more.
    read_closed: bool,
}

impl<M: Machine> Pump<M> {
    /// Wrap a machine.
    pub fn new(machine: M) -> Self {
        Pump {
            machine,
            writes: WriteQueue::new(),
            datagrams: VecDeque::new(),
            deadline: None,
            result: None,
            result_taken: false,
            read_closed: false,
        }
    }

    /// The machine, for inspection.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The machine, for calls of its own API between inputs (drain afterwards).
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// Feed one input and drain. `Err`: the machine refused the call (caller's fault); it is
    /// unchanged and the connection goes on.
    pub fn input(
        &mut self,
        now: Instant,
        input: Input<'_, M::Command>,
        on_event: impl FnMut(M::Event),
    ) -> Result<(), M::Error> {
        if self.result.is_some() || self.result_taken {
            // Finished machines get no more input; the result already says why.
            return Ok(());
        }
        let refused = self.feed(now, input).err();
        self.drain(now, on_event);
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Feed one input without draining, so a driver can hand the machine every command (or read)
    /// that is ready and then [`drain`](Self::drain) once: one drain, one coalesced write, one
    /// wake-up for a whole batch instead of one per frame. `Err`: the machine refused the call
    /// (caller's fault); it is unchanged and the connection goes on.
    pub fn feed(&mut self, now: Instant, input: Input<'_, M::Command>) -> Result<(), M::Error> {
        if self.result.is_some() || self.result_taken {
            return Ok(());
        }
        self.machine.handle_input(now, input)
    }

    /// Poll the machine until it is drained or finished, queueing writes and delivering events.
    pub fn drain(&mut self, now: Instant, mut on_event: impl FnMut(M::Event)) {
        while let Some(event) = self.next_event(now) {
            on_event(event);
        }
    }

    /// Poll the machine until its next event (queueing the writes before it), or until it is
    /// drained or finished (`None`): [`drain`](Self::drain) one event at a time, for a driver
    /// that hands events to the application as they are asked for.
    pub fn next_event(&mut self, now: Instant) -> Option<M::Event> {
        if self.result.is_some() || self.result_taken {
            return None;
        }
        loop {
            match self.machine.poll_output(now) {
                Output::Transmit(bytes) => self.writes.push(bytes),
                Output::TransmitTo(to, bytes) => self.datagrams.push_back((to, bytes)),
                Output::Event(event) => return Some(event),
                Output::ReadClosed => self.read_closed = true,
                Output::Timeout(deadline) => {
                    self.deadline = deadline;
                    return None;
                }
                Output::Finished(result) => {
                    self.deadline = None;
                    self.result = Some(result);
                    return None;
                }
            }
        }
    }

    /// Stream bytes to write.
    pub fn writes(&mut self) -> &mut WriteQueue {
        &mut self.writes
    }

    /// Stream bytes waiting to be written (the length of [`writes`](Self::writes)).
    pub fn queued(&self) -> usize {
        self.writes.len()
    }

    /// The next datagram to send.
    pub fn next_datagram(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.datagrams.pop_front()
    }

    /// Put a datagram back at the front (the socket would block).
    pub fn unsend_datagram(&mut self, datagram: (SocketAddr, Bytes)) {
        self.datagrams.push_front(datagram);
    }

    /// When to wake the machine with [`Input::Timeout`] if nothing else happens.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the driver should read from the socket and take commands now. False once the
    /// machine finished, and while queued output exceeds the machine's write budget
    /// (backpressure: a peer that stops reading cannot make memory grow without bound).
    pub fn wants_input(&self) -> bool {
        self.result.is_none() && !self.result_taken && self.writes.len() < self.machine.write_budget()
    }

    /// Whether the machine reported `ReadClosed` (the peer's EOF, after every event before
    /// it): no event comes any more, commands still do.
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// Whether the machine finished.
    pub fn is_finished(&self) -> bool {
        self.result.is_some() || self.result_taken
    }

    /// Whether the machine finished and everything it transmitted has been written: close now.
    pub fn is_done(&self) -> bool {
        self.is_finished() && self.writes.is_empty() && self.datagrams.is_empty()
    }

    /// The machine's final result, once (later calls return `None`).
    pub fn take_result(&mut self) -> Option<Result<(), M::Error>> {
        let result = self.result.take();
        self.result_taken |= result.is_some();
        result
    }

    /// Unwrap the machine.
    pub fn into_machine(self) -> M {
        self.machine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Command, Event, FramingConfig, PacketConnection};
    use bytes::BytesMut;

    #[test]
    fn feeding_a_batch_then_draining_once_coalesces_the_writes() {
        let mut pump = Pump::new(PacketConnection::new(FramingConfig::packet(1024, 1024)));
        let now = Instant::ZERO;
        for _ in 0..10 {
            pump.feed(now, Input::Command(Command::SendBody(Bytes::from_static(b"abcd")))).unwrap();
        }
        assert!(pump.writes().is_empty(), "nothing is written before the drain");
        pump.drain(now, |_| {});
        assert_eq!(pump.writes().chunks().count(), 1, "ten frames, one buffer to write");
        assert_eq!(pump.writes().len(), 80);
    }

    #[test]
    fn gathering_copies_small_buffers_in_order_and_keeps_large_ones() {
        let mut q = WriteQueue::new();
        q.gather_small(8);
        q.push(Bytes::from_static(b"ab"));
        q.push(Bytes::from_static(b"cd"));
        q.push(Bytes::from_static(b"0123456789"));
        q.push(Bytes::from_static(b"ef"));
        assert_eq!(q.chunks().collect::<alloc::vec::Vec<_>>(), [&b"abcd"[..], b"0123456789", b"ef"]);
        assert_eq!(q.len(), 16);
        q.advance(5);
        assert_eq!(q.front(), Some(&b"123456789"[..]));
        q.advance(10);
        assert_eq!(q.front(), Some(&b"f"[..]));
        q.advance(1);
        assert!(q.is_empty());
        q.push(Bytes::from_static(b"gh"));
        assert_eq!(q.chunks().collect::<alloc::vec::Vec<_>>(), [&b"gh"[..]]);
    }

    #[test]
    fn read_buffer_appends_reads_in_place() {
        let mut rb = ReadBuffer::new(16);
        let room = rb.spare();
        assert!(room.len() >= 16);
        room[..3].copy_from_slice(b"abc");
        rb.filled(3);
        rb.spare()[..2].copy_from_slice(b"de");
        rb.filled(2);
        assert_eq!(&rb.received()[..], b"abcde");
        let frame = rb.received().split_to(4).freeze();
        assert_eq!(&frame[..], b"abcd");
        // Keep reading until a fresh region is needed; the unconsumed byte moves with it.
        for _ in 0..10 {
            let room = rb.spare();
            room[0] = b'x';
            rb.filled(1);
        }
        assert_eq!(&rb.received()[..], b"exxxxxxxxxx");
        assert_eq!(&frame[..], b"abcd", "frames already split off are untouched");
    }

    #[test]
    fn read_buffer_takes_its_region_back_with_a_frame_tail_carried_over() {
        let mut rb = ReadBuffer::new(16);
        let first = rb.spare().as_ptr() as usize;
        for _ in 0..40 {
            let room = rb.spare();
            let at = room.as_ptr() as usize;
            // Every read after the first region is full lands in that same allocation again.
            assert!((first..first + 16 * (REGION_CHUNKS + 1)).contains(&at), "a fresh region was allocated");
            room.fill(b'x');
            let n = room.len();
            rb.filled(n);
            // Every frame but the last 3 bytes (a frame's beginning) is taken and dropped.
            let whole = rb.len() - 3;
            drop(rb.received().split_to(whole));
        }
    }

    #[test]
    fn the_region_starts_small_and_grows_only_while_reads_fill_their_room() {
        let mut rb = ReadBuffer::new(64 * 1024);
        // Small reads: the room never grows past the first region.
        for _ in 0..100 {
            assert!(rb.spare().len() <= FIRST_REGION);
            rb.filled(10);
            let n = rb.len();
            drop(rb.received().split_to(n));
        }
        // Reads that fill their room: full-size reads after a few.
        let mut rooms = alloc::vec::Vec::new();
        for _ in 0..10 {
            let room = rb.spare().len();
            rooms.push(room);
            rb.filled(room);
            let n = rb.len();
            drop(rb.received().split_to(n));
        }
        assert_eq!(*rooms.last().unwrap(), 64 * 1024, "{rooms:?}");
        assert!(rooms.windows(2).all(|w| w[0] <= w[1]), "{rooms:?}");
    }

    #[test]
    fn an_empty_read_buffer_gives_its_memory_back_and_a_partial_frame_keeps_it() {
        let mut rb = ReadBuffer::new(64);
        assert!(!rb.is_allocated(), "nothing is allocated before the first read");
        rb.spare()[..2].copy_from_slice(b"ab");
        rb.filled(2);
        assert!(!rb.release_if_empty(), "unconsumed bytes keep the buffer");
        assert_eq!(&rb.received()[..], b"ab");
        let frame = rb.received().split_to(2).freeze();
        assert!(rb.release_if_empty());
        assert!(!rb.is_allocated());
        assert_eq!(&frame[..], b"ab", "a frame split off lives on after the release");
    }

    #[test]
    fn while_sending_reads_stop_at_the_bytes_held_and_go_on_once_the_events_are_taken() {
        use core::time::Duration;
        let config = FramingConfig::packet(1 << 20, 0);
        let mut inline = Inline::new(Instant::ZERO, PacketConnection::new(config), 64 * 1024, Duration::ZERO);
        let now = Instant::ZERO;
        let body = alloc::vec![5u8; 256 * 1024 - 4];
        let mut frame = alloc::vec::Vec::from(((body.len() + 4) as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        let mut read = 0;
        // The application is inside a send: whole frames arrive and nobody takes them.
        while inline.wants_read(true) {
            let room = inline.read_buffer();
            let n = room.len().min(frame.len() - read % frame.len());
            let start = read % frame.len();
            room[..n].copy_from_slice(&frame[start..start + n]);
            inline.on_read(now, n, true);
            read += n;
            assert!(read <= BYTES_HELD + 64 * 1024, "read {read} bytes with nobody taking events");
        }
        assert!(read >= BYTES_HELD, "stopped after {read} bytes, before the bound");
        let mut taken = 0;
        while let Some(Ok(Event::Frame(f))) = inline.next(now) {
            assert_eq!(f.len(), frame.len());
            taken += 1;
        }
        assert_eq!(taken, read / frame.len());
        assert!(inline.wants_read(true), "reading goes on once the events are taken");
    }

    #[test]
    fn write_queue_advances_across_buffers() {
        let mut q = WriteQueue::new();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"de"));
        assert_eq!(q.len(), 5);
        q.advance(4);
        assert_eq!(q.front(), Some(&b"e"[..]));
        assert_eq!(q.len(), 1);
        q.advance(1);
        assert!(q.is_empty());
        assert_eq!(q.chunks().count(), 0);
    }

    #[test]
    fn pump_queues_writes_and_applies_backpressure() {
        let mut pump = Pump::new(PacketConnection::new(FramingConfig::packet(1024, 0)));
        let body = Bytes::from(alloc::vec![7u8; 40 * 1024]);
        let now = Instant::ZERO;
        pump.input(now, Input::Command(Command::SendBody(body.clone())), |_| {}).unwrap();
        assert!(pump.wants_input());
        pump.input(now, Input::Command(Command::SendBody(body)), |_| {}).unwrap();
        assert_eq!(pump.writes().len(), 2 * (40 * 1024 + 4));
        assert!(!pump.wants_input(), "over the 64 KiB budget the driver must stop taking input");
        let n = pump.writes().len();
        pump.writes().advance(n);
        assert!(pump.wants_input());

        let mut rx = BytesMut::from(&b"\x05\x00\x00\x00z"[..]);
        let mut events = alloc::vec::Vec::new();
        pump.input(now, Input::Stream(&mut rx), |e| events.push(e)).unwrap();
        assert_eq!(events, [Event::Frame(Bytes::from_static(b"\x05\x00\x00\x00z"))]);
        pump.input(now, Input::Eof, |_| {}).unwrap();
        assert!(pump.is_read_closed() && !pump.is_finished(), "the peer's EOF leaves the machine sending");
        pump.input(now, Input::Close, |_| {}).unwrap();
        assert!(pump.is_done());
        assert_eq!(pump.take_result(), Some(Ok(())));
        assert_eq!(pump.take_result(), None);
    }
}
