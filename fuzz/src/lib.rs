//! Harness helpers shared by the fuzz targets in `fuzz_targets/` and the seed generator.
//!
//! Every target reads its input as a small script: a few configuration bytes, then operations or
//! a byte stream. [`Script`] reads it (through `arbitrary::Unstructured`) and [`ScriptWriter`]
//! writes the same layout, so the seed generator (`src/bin/seeds.rs`) can turn the conformance
//! vectors and test frames into meaningful starting inputs. A short input reads as zeros past
//! its end, so every byte string is a valid script.
//!
//! [`feed_stream`] plays a driver for stream machines: one receive buffer that keeps what the
//! machine leaves in it, a full drain after every input, no reading after `ReadClosed`, a
//! `Close` once the read side closed, and the contract checks a driver relies on (nothing after
//! `Finished`, no event after `ReadClosed`, `Close` never refused, no deadline already due).
//! [`drain`] and [`Fed`] make the same checks for targets that drive machines themselves.

use arbitrary::Unstructured;
use bytes::BytesMut;
use switchboard_proto::crypto::{CipherSpec, FrameCipher, SealedCipher, StageCipher};
use switchboard_proto::machine::Drained;
use switchboard_proto::stage::HEADER_LEN;
use switchboard_proto::{Duration, Input, Instant, Machine, Output, SplitMix64};

/// Reads a fuzz input as a script of fixed-size fields and length-prefixed byte strings.
pub struct Script<'a> {
    input: Unstructured<'a>,
}

impl<'a> Script<'a> {
    /// A script over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Script { input: Unstructured::new(data) }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// One byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        self.input.arbitrary::<u8>().unwrap_or(0)
    }

    /// A `u16`, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A `u32`, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A `u64`, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// A byte string with a `u16` length prefix (shorter if the input ends first).
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16()).min(self.input.len());
        self.input.bytes(len).unwrap_or_default()
    }

    /// A string: [`bytes`](Self::bytes) read as UTF-8, lossily so that any input gives one.
    pub fn string(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.input.take_rest()
    }

    /// Up to 15 cut points (a count byte, then `u16` positions), to be placed within a stream
    /// read later with [`Cuts::within`].
    pub fn cuts(&mut self) -> Cuts {
        let count = self.byte() % 16;
        Cuts((0..count).map(|_| self.u16()).collect())
    }
}

/// Cut points read before the stream they cut: the chunking a driver's reads might produce.
pub struct Cuts(Vec<u16>);

impl Cuts {
    /// The cut positions within a stream of `len` bytes, sorted.
    pub fn within(&self, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = self.0.iter().map(|&cut| usize::from(cut) % (len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }
}

/// Writes the layout [`Script`] reads; used by the seed generator.
#[derive(Default)]
pub struct ScriptWriter {
    out: Vec<u8>,
}

impl ScriptWriter {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// One byte.
    pub fn byte(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A byte string with its `u16` length prefix.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u16::try_from(value.len()).expect("seed strings fit a u16 length");
        self.u16(len);
        self.out.extend_from_slice(value);
        self
    }

    /// Cut points as [`Script::cuts`] reads them.
    pub fn cuts(&mut self, cuts: &[u16]) -> &mut Self {
        self.byte(u8::try_from(cuts.len()).expect("fewer than 16 cuts"));
        cuts.iter().for_each(|&cut| {
            self.u16(cut);
        });
        self
    }

    /// Raw bytes with no prefix (the rest of a script).
    pub fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(value);
        self
    }

    /// The script's bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// `stream` cut at `cuts` (sorted positions within it), empty pieces included: a driver may be
/// woken with nothing new.
pub fn chunks<'s>(stream: &'s [u8], cuts: &[usize]) -> Vec<&'s [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in cuts {
        pieces.push(&stream[start..cut]);
        start = cut;
    }
    pieces.push(&stream[start..]);
    pieces
}

/// `switchboard_proto::machine::drain`, checking the order of what the machine reports on the
/// way: `ReadClosed` at most once, and no event after it (contract rule 7).
pub fn drain<M: Machine>(machine: &mut M, now: Instant) -> Drained<M::Event, M::Error> {
    switchboard_proto::machine::drain(&mut OrderChecked { machine, read_closed: false }, now)
}

/// A machine whose outputs are checked for the order rule 7 sets as they are polled.
struct OrderChecked<'m, M> {
    machine: &'m mut M,
    read_closed: bool,
}

impl<M: Machine> Machine for OrderChecked<'_, M> {
    type Command = M::Command;
    type Event = M::Event;
    type Error = M::Error;

    fn handle_input(&mut self, now: Instant, input: Input<'_, M::Command>) -> Result<(), M::Error> {
        self.machine.handle_input(now, input)
    }

    fn poll_output(&mut self, now: Instant) -> Output<M::Event, M::Error> {
        let output = self.machine.poll_output(now);
        match output {
            Output::Event(_) => assert!(!self.read_closed, "an event after ReadClosed"),
            Output::ReadClosed => {
                assert!(!self.read_closed, "ReadClosed reported twice");
                self.read_closed = true;
            }
            _ => {}
        }
        output
    }

    fn write_budget(&self) -> usize {
        self.machine.write_budget()
    }
}

/// The check [`drain`] makes within one drain, across drains: once a machine reported
/// `ReadClosed` (`*read_closed`), it reports neither an event nor `ReadClosed` again.
pub fn check_read_side<E: std::fmt::Debug, X>(read_closed: &mut bool, drained: &Drained<E, X>) {
    if *read_closed {
        assert!(drained.events.is_empty(), "events after ReadClosed: {:?}", drained.events);
        assert!(!drained.read_closed, "ReadClosed reported twice");
    }
    *read_closed |= drained.read_closed;
}

/// What a machine produced while a stream was fed to it.
#[derive(Debug)]
pub struct Fed<E, X> {
    /// Events, in order.
    pub events: Vec<E>,
    /// Every byte transmitted, in order.
    pub wire: Vec<u8>,
    /// The machine's end, if it reported one.
    pub finished: Option<Result<(), X>>,
    /// Whether the machine reported `ReadClosed`: a driver reads no more from then on.
    pub read_closed: bool,
    /// Whether the harness fed `Input::Close` while the machine had not finished (see
    /// [`close`]): a machine that finished with this still `false` ended on its own.
    pub closed: bool,
    /// The most bytes the machine left in the receive buffer after a `Stream` input while it
    /// still read.
    pub max_buffered: usize,
}

impl<E, X> Default for Fed<E, X> {
    fn default() -> Self {
        Fed { events: Vec::new(), wire: Vec::new(), finished: None, read_closed: false, closed: false, max_buffered: 0 }
    }
}

impl<E: std::fmt::Debug, X: std::fmt::Debug> Fed<E, X> {
    /// Take in one full drain at `now`, checking what every driver relies on.
    pub fn absorb(&mut self, drained: Drained<E, X>, now: Instant) {
        assert!(self.finished.is_none(), "the harness drained a finished machine");
        assert!(drained.datagrams.is_empty(), "a stream machine sent a datagram");
        check_read_side(&mut self.read_closed, &drained);
        self.wire.extend(drained.transmits.iter().flat_map(|b| b.iter().copied()));
        self.events.extend(drained.events);
        match drained.finished {
            Some(result) => self.finished = Some(result),
            None => check_deadline(drained.deadline, now),
        }
    }
}

impl<E, X: std::fmt::Debug> Fed<E, X> {
    /// For a machine with no timers fed by [`feed_stream`]: nothing ends it but the harness's
    /// `Close`, which comes exactly when its read side closed (the peer's EOF or a fault), so a
    /// fault is the result only then.
    pub fn assert_ended_only_at_read_close(&self) {
        assert_eq!(
            self.is_finished(),
            self.read_closed,
            "finished {:?}, read side closed: {}",
            self.finished,
            self.read_closed
        );
        assert_eq!(self.is_finished(), self.closed, "finished before the harness closed: {:?}", self.finished);
    }
}

impl<E, X> Fed<E, X> {
    /// Whether the machine has finished.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Whether a driver still reads: the machine has neither finished nor closed its read side.
    pub fn is_reading(&self) -> bool {
        !self.is_finished() && !self.read_closed
    }
}

/// A drained machine that is still open never reports a deadline that `now` has reached: the
/// contract says it acts on any deadline on whichever call first sees it.
pub fn check_deadline(deadline: Option<Instant>, now: Instant) {
    if let Some(deadline) = deadline {
        assert!(deadline > now, "drained at {now:?} with a deadline already due: {deadline:?}");
    }
}

/// Drain `machine` at `now` into `fed` (nothing if it has finished).
pub fn drain_into<M: Machine>(machine: &mut M, now: Instant, fed: &mut Fed<M::Event, M::Error>)
where
    M::Event: std::fmt::Debug,
{
    if !fed.is_finished() {
        fed.absorb(drain(machine, now), now);
    }
}

/// Feed `Input::Close`, which no machine ever refuses (contract rule 8: a no-op once it is
/// finishing or finished), and remember that the harness closed it if it was still open.
pub fn close<M: Machine>(machine: &mut M, now: Instant, fed: &mut Fed<M::Event, M::Error>) {
    if let Err(e) = machine.handle_input(now, Input::Close) {
        panic!("Close refused (finished: {}): {e:?}", fed.is_finished());
    }
    if !fed.is_finished() {
        fed.closed = true;
    }
}

/// Play a stream driver: drain, then for each chunk append it to the one receive buffer, hand
/// the buffer over and drain again; then, if `eof`, report the end of the stream. Stops reading
/// once the machine reports `ReadClosed` or finishes, and closes it (`Input::Close`) when it
/// reported `ReadClosed` without finishing, as a driver whose application has nothing more to
/// say does. Stream input is never refused while the machine reads.
pub fn feed_stream<'s, M: Machine>(
    machine: &mut M,
    now: Instant,
    pieces: impl IntoIterator<Item = &'s [u8]>,
    eof: bool,
) -> Fed<M::Event, M::Error>
where
    M::Event: std::fmt::Debug,
{
    let mut fed = Fed::default();
    drain_into(machine, now, &mut fed);
    let mut buffer = BytesMut::new();
    for piece in pieces {
        if !fed.is_reading() {
            break;
        }
        buffer.extend_from_slice(piece);
        if let Err(e) = machine.handle_input(now, Input::Stream(&mut buffer)) {
            panic!("stream input refused while reading: {e:?}");
        }
        drain_into(machine, now, &mut fed);
        // What a fault leaves in the buffer is never read again.
        if fed.is_reading() {
            fed.max_buffered = fed.max_buffered.max(buffer.len());
        }
    }
    if eof && fed.is_reading() {
        if let Err(e) = machine.handle_input(now, Input::Eof) {
            panic!("EOF refused while reading: {e:?}");
        }
        drain_into(machine, now, &mut fed);
    }
    if fed.read_closed && !fed.is_finished() {
        close(machine, now, &mut fed);
        drain_into(machine, now, &mut fed);
        assert!(fed.is_finished(), "a read-closed machine did not finish on Close");
    }
    fed
}

/// Feed `stream` to two fresh machines, once whole and once cut at `cuts`, and check that both
/// give the same events and the same end: frames must not depend on how reads split the stream.
/// Returns the whole-stream run for further checks, and the larger buffered high-water mark.
pub fn same_across_chunkings<M, E, X>(
    mut fresh: impl FnMut() -> M,
    now: Instant,
    stream: &[u8],
    cuts: &[usize],
    eof: bool,
) -> (Fed<E, X>, usize)
where
    M: Machine<Event = E, Error = X>,
    E: PartialEq + std::fmt::Debug,
    X: PartialEq + std::fmt::Debug,
{
    let whole = feed_stream(&mut fresh(), now, [stream], eof);
    let split = feed_stream(&mut fresh(), now, chunks(stream, cuts), eof);
    assert_eq!(whole.events, split.events, "events differ when the stream is cut at {cuts:?}");
    assert_eq!(whole.finished, split.finished, "the end differs when the stream is cut at {cuts:?}");
    assert_eq!(whole.wire, split.wire, "output differs when the stream is cut at {cuts:?}");
    assert_eq!(whole.read_closed, split.read_closed, "ReadClosed differs when the stream is cut at {cuts:?}");
    let buffered = whole.max_buffered.max(split.max_buffered);
    (whole, buffered)
}

/// The reference STAGE packet decoder (WIRE.md §2), written apart from the machine's: the whole
/// frames at the front of `stream` (header included) and what is left after them. Stops at the
/// first header that is not a valid plain frame within `max_in`.
pub fn reference_frames(stream: &[u8], max_in: usize) -> (Vec<&[u8]>, &[u8]) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while let Some(head) = rest.first_chunk::<HEADER_LEN>() {
        let raw = u32::from_le_bytes(*head);
        let len = (raw & 0x7FFF_FFFF) as usize;
        if raw & 0x8000_0000 != 0 || len < HEADER_LEN || len > max_in || len > rest.len() {
            break;
        }
        let (frame, after) = rest.split_at(len);
        frames.push(frame);
        rest = after;
    }
    (frames, rest)
}

/// The reference text split (STAGE `text`): whole lines within `max_in`, what follows them, and whether the stream
/// breaks the limit there.
pub fn reference_lines(stream: &[u8], max_in: usize) -> (Vec<&[u8]>, &[u8], bool) {
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        if at + 1 > max_in {
            return (lines, rest, true);
        }
        let (line, after) = rest.split_at(at + 1);
        lines.push(line);
        rest = after;
    }
    (lines, rest, rest.len() >= max_in)
}

/// The reference STAGE encoder: a plain frame for `body`.
pub fn reference_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = ((body.len() + HEADER_LEN) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A virtual clock that only moves forward, by fuzzer-chosen steps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    now: Instant,
}

impl Clock {
    /// A clock at 1 ms (0 is a valid time too, but a non-zero start catches `now - start` slips).
    pub fn new() -> Self {
        Clock { now: Instant::from_millis(1) }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Move on by `millis` milliseconds.
    pub fn advance(&mut self, millis: u64) -> Instant {
        self.now = self.now + Duration::from_millis(millis);
        self.now
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A timer setting from one script byte: 0 = none, otherwise 1 to 255 ms.
pub fn optional_millis(byte: u8) -> Option<Duration> {
    (byte != 0).then(|| Duration::from_millis(u64::from(byte)))
}

/// The common layout of the stream-decoder targets: a `u16` limit, a flags byte (bit 0: EOF,
/// bit 1: close), cut points, then the stream itself (the rest of the input).
pub struct StreamCase<'a> {
    /// The limit under test (IN, or the largest message), as the fuzzer chose it.
    pub limit: u16,
    /// Whether the stream ends with an EOF.
    pub eof: bool,
    /// Whether the application closes the machine after the stream (targets that use it).
    pub close: bool,
    /// Where the stream is cut, sorted.
    pub cuts: Vec<usize>,
    /// The bytes.
    pub stream: &'a [u8],
}

impl<'a> StreamCase<'a> {
    /// Read a case from a fuzz input.
    pub fn read(data: &'a [u8]) -> Self {
        let mut script = Script::new(data);
        let limit = script.u16();
        let flags = script.byte();
        let cuts = script.cuts();
        let stream = script.rest();
        StreamCase { limit, eof: flags & 1 == 1, close: flags & 2 == 2, cuts: cuts.within(stream.len()), stream }
    }

    /// Write a case (for seeds), with no cuts.
    pub fn write(limit: u16, eof: bool, stream: &[u8]) -> Vec<u8> {
        ScriptWriter::new().u16(limit).byte(u8::from(eof)).cuts(&[]).raw(stream).finish()
    }
}

/// The key every cipher in the fuzz targets uses: the key is not under test, the streams are.
pub const FUZZ_KEY: &str = "switchboard fuzz key";

/// How many cipher choices [`cipher_pair`] has: none, the 16 STAGE specs, and sealed.
pub const CIPHER_CHOICES: u8 = 18;

/// One side's cipher and its peer's for a script byte: `None` for 0 (plain), then every STAGE
/// profile spec (WIRE.md §3a), then the sealed profile (§3b).
pub fn cipher_pair(choice: u8) -> Option<(BoxedCipher, BoxedCipher)> {
    let choice = choice % CIPHER_CHOICES;
    let one = |seed: u64| -> BoxedCipher {
        match CipherSpec::all().nth(usize::from(choice) - 1) {
            Some(spec) => Box::new(StageCipher::new(spec, FUZZ_KEY)),
            None => Box::new(SealedCipher::new(FUZZ_KEY, Box::new(SplitMix64::new(seed)))),
        }
    };
    (choice != 0).then(|| (one(1), one(2)))
}

/// A cipher as the machines take it.
pub type BoxedCipher = Box<dyn FrameCipher + Send>;

/// Report the end of the stream once (`ended` remembers it): never refused while the machine
/// reads. After it the harness feeds no more bytes.
pub fn end_input<M: Machine>(machine: &mut M, now: Instant, ended: &mut bool) {
    if !*ended {
        *ended = true;
        if let Err(e) = machine.handle_input(now, Input::Eof) {
            panic!("EOF refused while reading: {e:?}");
        }
    }
}
