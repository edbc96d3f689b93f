//! Properties of the inline driver core ([`Inline`]) over a simulated socket.
//!
//! Every stream driver is an I/O shell over `Inline`, so what these properties hold for, every
//! driver holds for. A quickcheck-generated [`Script`] interleaves what the application does
//! (sends, takes events, closes), what the socket does (takes part of the writes or would
//! block, delivers the peer's bytes in any chunking, its EOF) and the passage of time (the
//! machine's commit and expire timers, the linger); then a wind-down runs the connection to
//! its end as a shell would. A simulator ([`Sim`]) plays the script against
//! `Inline<PacketConnection>`, keeps a model of what must happen, and records every departure
//! from it as a [`Violation`] of one of four properties. Each property is its own test.
//!
//! For a longer search than the fixed one: `INLINE_PROPS_TESTS=20000 INLINE_PROPS_SEED=7
//! cargo test -p switchboard-proto --test inline_props`.

use std::cell::RefCell;

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use switchboard_proto::driver::{Ending, Inline, Refusal, Step as AfterIo, EVENTS_HELD};
use switchboard_proto::stage::{Command, Error, Event, FramingConfig, PacketConnection, HEADER_LEN};
use switchboard_proto::{Duration, Instant, Machine};

// ---------------------------------------------------------------------------------------------
// The script
// ---------------------------------------------------------------------------------------------

/// How the connection is configured.
#[derive(Clone, Debug)]
struct Setup {
    max_in: usize,
    max_out: usize,
    commit: Duration,
    expire: Option<Duration>,
    read_chunk: usize,
    linger: Duration,
}

impl Setup {
    fn config(&self) -> FramingConfig {
        FramingConfig::packet(self.max_in, self.max_out).with_commit(self.commit).with_expire(self.expire)
    }
}

/// What the peer sends: valid frames, then maybe something that ends them early.
#[derive(Clone, Debug)]
struct Peer {
    /// Tiny frames sent first, enough of them to reach [`EVENTS_HELD`].
    flood: usize,
    /// Body lengths of the frames after the flood (reduced to fit IN).
    bodies: Vec<u16>,
    tail: Tail,
}

#[derive(Clone, Debug)]
enum Tail {
    /// The wire ends on a frame boundary.
    Clean,
    /// A header the connection must refuse, then bytes that must never be looked at.
    BadHeader(BadHeader),
    /// The first bytes of one more frame: an EOF after them cuts it short.
    Cut { body: u16, keep: u16 },
}

#[derive(Clone, Copy, Debug)]
enum BadHeader {
    /// A length below the header's own four bytes.
    TooShort(u8),
    /// A length over IN by this much (plus one).
    TooLarge(u16),
    /// Bit 31 set on a connection without a cipher.
    Encrypted,
}

/// One thing that happens, from the application, the socket or the clock.
#[derive(Clone, Debug)]
enum Step {
    /// The application sends `count` frames with this body length (each `Inline::send`); it
    /// stops early when it would block (`must_write`), as a send blocks, or is refused.
    Send { len: SendLen, count: u16 },
    /// The socket takes up to this many of the queued bytes (0: it would block).
    Write(u32),
    /// A read of up to `max` bytes of what the peer sent (0: it would block), into the
    /// receive buffer or (`scratch`, while it is released) a shared scratch buffer.
    /// `in_send`: the application is inside a send or flush, so not taking events.
    Read { max: u32, in_send: bool, scratch: bool },
    /// The peer closes its side after everything it sends: its EOF follows the last byte.
    PeerCloses,
    /// The application takes up to this many events (or the ending).
    Next(u16),
    /// The application closes.
    Close,
    /// Time passes, in milliseconds, with nothing done: the next call is the first to see it.
    Advance(u16),
    /// The shell wakes with no I/O ready (a timer, or a poll that timed out).
    Wake,
    /// The transport fails (rarely).
    Fail,
}

#[derive(Clone, Copy, Debug)]
enum SendLen {
    Fixed(u32),
    /// OUT minus the header plus this: around the largest send OUT takes (with OUT = 0, a body
    /// larger than the write budget).
    NearOut(i8),
}

/// How the run ends after the script: the application takes every event and closes once the
/// peer is done; the socket takes every write (or none); the peer closes (or not).
#[derive(Clone, Copy, Debug)]
struct WindDown {
    socket_drains: bool,
    peer_closes: bool,
}

#[derive(Clone, Debug)]
struct Script {
    setup: Setup,
    peer: Peer,
    steps: Vec<Step>,
    /// Every send has the first send's length (an application with one message size).
    one_size: bool,
    wind_down: WindDown,
}

fn pick<T: Copy>(g: &mut Gen, choices: &[T]) -> T {
    *g.choose(choices).expect("choices are never empty")
}

fn below(g: &mut Gen, n: u32) -> u32 {
    u32::arbitrary(g) % n
}

/// A value in `lo..hi`.
fn between(g: &mut Gen, lo: u32, hi: u32) -> u32 {
    lo + below(g, hi - lo)
}

impl Arbitrary for Setup {
    fn arbitrary(g: &mut Gen) -> Self {
        Setup {
            max_in: pick(g, &[64, 2048, 1 << 16]),
            max_out: pick(g, &[0, 0, 300, 4096, 1 << 17]),
            commit: Duration::from_millis(pick(g, &[0, 0, 1, 5, 20])),
            expire: pick(g, &[None, None, Some(30), Some(300)]).map(Duration::from_millis),
            read_chunk: pick(g, &[1, 5, 64, 4096, 1 << 16]),
            linger: Duration::from_millis(pick(g, &[0, 5, 50])),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let s = self.clone();
        let mut simpler = Vec::new();
        if s.expire.is_some() {
            simpler.push(Setup { expire: None, ..s.clone() });
        }
        if !s.commit.is_zero() {
            simpler.push(Setup { commit: Duration::ZERO, ..s.clone() });
        }
        if s.read_chunk != 1 << 16 {
            simpler.push(Setup { read_chunk: 1 << 16, ..s.clone() });
        }
        if s.max_in != 1 << 16 {
            simpler.push(Setup { max_in: 1 << 16, ..s.clone() });
        }
        Box::new(simpler.into_iter())
    }
}

impl Arbitrary for Peer {
    fn arbitrary(g: &mut Gen) -> Self {
        let flood = if below(g, 4) == 0 { between(g, 1000, 2500) as usize } else { 0 };
        let count = below(g, 40) as usize;
        let bodies = (0..count)
            .map(|_| match below(g, 4) {
                0 => below(g, 8) as u16,
                1 => below(g, 100) as u16,
                2 => below(g, 2100) as u16,
                _ => u16::arbitrary(g),
            })
            .collect();
        let tail = match below(g, 6) {
            0 => Tail::BadHeader(BadHeader::TooShort(below(g, 4) as u8)),
            1 => Tail::BadHeader(BadHeader::TooLarge(below(g, 3) as u16 * below(g, 5000) as u16)),
            2 => Tail::BadHeader(BadHeader::Encrypted),
            3 => Tail::Cut { body: below(g, 3000) as u16, keep: u16::arbitrary(g) },
            _ => Tail::Clean,
        };
        Peer { flood, bodies, tail }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let s = self.clone();
        let mut simpler = Vec::new();
        if s.flood > 0 {
            simpler.push(Peer { flood: 0, ..s.clone() });
            simpler.push(Peer { flood: s.flood / 2, ..s.clone() });
        }
        if !matches!(s.tail, Tail::Clean) {
            simpler.push(Peer { tail: Tail::Clean, ..s.clone() });
        }
        let bodies = s.bodies.shrink().map(move |bodies| Peer { bodies, ..s.clone() });
        Box::new(simpler.into_iter().chain(bodies))
    }
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        match below(g, 100) {
            0..=19 => {
                let len = match below(g, 6) {
                    0 => SendLen::Fixed(below(g, 16)),
                    1 => SendLen::Fixed(between(g, 1000, 1100)),
                    2 => SendLen::Fixed(between(g, 1100, 9000)),
                    3 => SendLen::Fixed(between(g, 9000, 45_000)),
                    4 => SendLen::NearOut(between(g, 0, 8) as i8 - 4),
                    _ => SendLen::Fixed(below(g, 300)),
                };
                let count = match below(g, 4) {
                    0 => between(g, 2, 400) as u16,
                    _ => 1,
                };
                Step::Send { len, count }
            }
            20..=39 => Step::Write(match below(g, 5) {
                0 => 0,
                1 => below(g, 64),
                2 => below(g, 5000),
                3 => below(g, 100_000),
                _ => u32::MAX,
            }),
            40..=64 => Step::Read {
                max: match below(g, 4) {
                    0 => 0,
                    1 => between(g, 1, 8),
                    2 => between(g, 1, 300),
                    _ => between(g, 1, 70_000),
                },
                in_send: below(g, 3) == 0,
                scratch: bool::arbitrary(g),
            },
            65..=79 => Step::Next(match below(g, 3) {
                0 => 1,
                1 => between(g, 1, 20) as u16,
                _ => u16::MAX,
            }),
            80..=87 => Step::Advance(match below(g, 3) {
                0 => below(g, 3) as u16,
                1 => between(g, 1, 30) as u16,
                _ => between(g, 100, 300) as u16,
            }),
            88..=91 => Step::Wake,
            92..=94 => Step::PeerCloses,
            95..=98 => Step::Close,
            _ => Step::Fail,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Step::Send { len, count } if count > 1 => {
                Box::new([Step::Send { len, count: 1 }, Step::Send { len, count: count / 2 }].into_iter())
            }
            Step::Write(n) if n > 0 && n != u32::MAX => {
                Box::new([Step::Write(u32::MAX), Step::Write(n / 2)].into_iter())
            }
            Step::Read { max, in_send, scratch } if in_send || scratch => {
                Box::new([Step::Read { max, in_send: false, scratch: false }].into_iter())
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl Arbitrary for Script {
    fn arbitrary(g: &mut Gen) -> Self {
        Script {
            setup: Setup::arbitrary(g),
            peer: Peer::arbitrary(g),
            steps: Vec::arbitrary(g),
            one_size: bool::arbitrary(g),
            wind_down: WindDown { socket_drains: below(g, 4) != 0, peer_closes: bool::arbitrary(g) },
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let s = self.clone();
        let steps = {
            let s = s.clone();
            self.steps.shrink().map(move |steps| Script { steps, ..s.clone() })
        };
        let peer = {
            let s = s.clone();
            self.peer.shrink().map(move |peer| Script { peer, ..s.clone() })
        };
        let one_size = s.one_size.then(|| Script { one_size: false, ..s.clone() });
        let setup = self.setup.shrink().map(move |setup| Script { setup, ..s.clone() });
        Box::new(steps.chain(peer).chain(setup).chain(one_size))
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator and its model
// ---------------------------------------------------------------------------------------------

/// The four properties; every violation is charged to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
    /// The bytes written are the accepted sends' frames, in order, whole, none lost.
    OrderOut,
    /// The events are the peer's valid frames, in order; the peer's error or truncation ends it.
    OrderIn,
    /// The write queue, the events held while sending and the reads keep their bounds.
    Budgets,
    /// The ending once and last; nothing after `ReadClosed`; the phases only move forward.
    Lifecycle,
}

#[derive(Clone, Debug)]
struct Violation {
    property: Property,
    what: String,
}

/// What the runs of one test reached, so no property holds only because its case never came.
#[derive(Clone, Copy, Debug, Default)]
struct Coverage {
    runs: usize,
    whole_wire_delivered: usize,
    peer_error_reported: usize,
    truncated_reported: usize,
    expired_reported: usize,
    unflushed_reported: usize,
    clean_end_all_written: usize,
    refused_sends: usize,
    over_budget: usize,
    over_budget_one_size: usize,
    events_held_full: usize,
    read_paused: usize,
    shut_write: usize,
    read_closed_seen: usize,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.runs += other.runs;
        self.whole_wire_delivered += other.whole_wire_delivered;
        self.peer_error_reported += other.peer_error_reported;
        self.truncated_reported += other.truncated_reported;
        self.expired_reported += other.expired_reported;
        self.unflushed_reported += other.unflushed_reported;
        self.clean_end_all_written += other.clean_end_all_written;
        self.refused_sends += other.refused_sends;
        self.over_budget += other.over_budget;
        self.over_budget_one_size += other.over_budget_one_size;
        self.events_held_full += other.events_held_full;
        self.read_paused += other.read_paused;
        self.shut_write += other.shut_write;
        self.read_closed_seen += other.read_closed_seen;
    }
}

thread_local! {
    static COVERAGE: RefCell<Coverage> = RefCell::new(Coverage::default());
}

/// The peer's wire and what it means.
struct Wire {
    bytes: Vec<u8>,
    /// The valid frames, in order, and where each ends on the wire.
    frames: Vec<Vec<u8>>,
    frame_ends: Vec<usize>,
    /// The refused header: where it starts and the error it must end the connection with.
    bad_header: Option<(usize, Error)>,
}

/// A body that tells frame `index` from its neighbours: the index, then a fill byte of its own
/// (cheap to build at 45 KB, unlike a byte-by-byte pattern in a debug build).
fn numbered_body(index: usize, len: usize, salt: u8) -> Vec<u8> {
    let mut body = vec![(index as u8).wrapping_mul(31) ^ salt; len];
    let tag = (index as u32).to_le_bytes();
    let n = len.min(tag.len());
    body[..n].copy_from_slice(&tag[..n]);
    body
}

fn peer_body(index: usize, len: usize) -> Vec<u8> {
    numbered_body(index, len, 0xa5)
}

fn sent_body(seq: usize, len: usize) -> Vec<u8> {
    numbered_body(seq, len, 0x5a)
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut frame = ((body.len() + HEADER_LEN) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

impl Wire {
    fn build(peer: &Peer, max_in: usize) -> Wire {
        let mut wire = Wire { bytes: Vec::new(), frames: Vec::new(), frame_ends: Vec::new(), bad_header: None };
        let flood = (0..peer.flood).map(|i| (i, 2));
        let rest = peer.bodies.iter().enumerate().map(|(i, &len)| (peer.flood + i, len as usize));
        for (index, len) in flood.chain(rest) {
            let frame = frame_of(&peer_body(index, len % (max_in - HEADER_LEN + 1)));
            wire.bytes.extend_from_slice(&frame);
            wire.frame_ends.push(wire.bytes.len());
            wire.frames.push(frame);
        }
        match peer.tail {
            Tail::Clean => {}
            Tail::BadHeader(bad) => {
                let (raw, error) = match bad {
                    BadHeader::TooShort(len) => {
                        (u32::from(len % 4), Error::LengthTooShort { len: usize::from(len % 4) })
                    }
                    BadHeader::TooLarge(excess) => {
                        let len = max_in + 1 + usize::from(excess);
                        (len as u32, Error::FrameTooLarge { len, max: max_in })
                    }
                    BadHeader::Encrypted => (8 | 0x8000_0000, Error::EncryptedWithoutCipher),
                };
                wire.bad_header = Some((wire.bytes.len(), error));
                wire.bytes.extend_from_slice(&raw.to_le_bytes());
                wire.bytes.extend_from_slice(b"never a frame");
            }
            Tail::Cut { body, keep } => {
                let frame = frame_of(&peer_body(usize::MAX, usize::from(body) % (max_in - HEADER_LEN + 1)));
                let keep = 1 + usize::from(keep) % (frame.len() - 1);
                wire.bytes.extend_from_slice(&frame[..keep]);
            }
        }
        wire
    }

    /// How many valid frames lie wholly within the first `n` bytes.
    fn complete_within(&self, n: usize) -> usize {
        self.frame_ends.partition_point(|&end| end <= n)
    }
}

/// The phases in the order they must come: open, finishing, ended, reported.
fn rank(inline: &Inline<PacketConnection>) -> u8 {
    match (inline.is_open(), inline.is_running(), inline.is_reported()) {
        (_, _, true) => 3,
        (true, _, false) => 0,
        (false, true, false) => 1,
        (false, false, false) => 2,
    }
}

/// `Inline`'s `MAX_BATCH`: at most this many commands are fed before the budget is checked.
const DOCUMENTED_MAX_BATCH: usize = 256;

/// One `Inline` with a simulated shell, socket and peer around it, and the model it is checked
/// against.
struct Sim {
    setup: Setup,
    budget: usize,
    now: Instant,
    inline: Inline<PacketConnection>,
    violations: Vec<Violation>,
    coverage: Coverage,

    // The peer and the socket.
    wire: Wire,
    /// Bytes of the wire the socket delivered.
    read_pos: usize,
    peer_closed: bool,
    /// The EOF was delivered (`on_read(.., 0, ..)`).
    eof_read: bool,

    // The model of the machine.
    /// Bytes of the wire the machine took (fed while it was open and reading).
    machine_took: usize,
    last_inbound: Instant,
    /// The machine finished (closed or expired), whether or not `Inline` has drained it yet.
    machine_ended: bool,
    expired: bool,
    eof_fed: bool,
    /// The peer's fault the machine saw: the connection must end with it.
    read_error: Option<Error>,
    failed: bool,
    /// A read over budget made the machine transmit: no read until under budget.
    read_paused: bool,

    // The application's side.
    sends: usize,
    /// The frames of every accepted send, concatenated: exactly what must be written.
    accepted: Vec<u8>,
    accepted_frames: Vec<Vec<u8>>,
    largest_frame: usize,
    /// The smallest frame accepted so far, and whether a later one was larger: the batch is
    /// sized from what earlier commands produced, so a frame larger than those before it can
    /// be fed past the budget check with up to a batch of others like it (documented; see
    /// `a_burst_of_larger_frames_is_fed_in_a_batch_sized_for_smaller_ones`).
    smallest_frame: usize,
    frames_grew: bool,
    written: Vec<u8>,
    taken: usize,
    endings: Vec<Ending<Error>>,
    read_closed_seen: bool,
    rank: u8,
    finishing_since: Option<Instant>,
    shut_write: bool,
    /// Bytes still queued when `after_io` said `End`.
    end_queued: Option<usize>,
    closed_in_wind_down: bool,
    socket_drains: bool,
}

impl Sim {
    fn new(script: &Script) -> Sim {
        let setup = script.setup.clone();
        let machine = PacketConnection::new(setup.config());
        let budget = machine.write_budget();
        let now = Instant::ZERO;
        let inline = Inline::new(now, machine, setup.read_chunk, setup.linger);
        let wire = Wire::build(&script.peer, setup.max_in);
        Sim {
            budget,
            now,
            inline,
            violations: Vec::new(),
            coverage: Coverage { runs: 1, ..Coverage::default() },
            wire,
            read_pos: 0,
            peer_closed: false,
            eof_read: false,
            machine_took: 0,
            last_inbound: now,
            machine_ended: false,
            expired: false,
            eof_fed: false,
            read_error: None,
            failed: false,
            read_paused: false,
            sends: 0,
            accepted: Vec::new(),
            accepted_frames: Vec::new(),
            largest_frame: 0,
            smallest_frame: usize::MAX,
            frames_grew: false,
            written: Vec::new(),
            taken: 0,
            endings: Vec::new(),
            read_closed_seen: false,
            rank: 0,
            finishing_since: None,
            shut_write: false,
            end_queued: None,
            closed_in_wind_down: false,
            socket_drains: script.wind_down.socket_drains,
            setup,
        }
    }

    fn violate(&mut self, property: Property, what: String) {
        self.violations.push(Violation { property, what: format!("at {:?}: {what}", self.now) });
    }

    fn run(mut self, script: &Script) -> Sim {
        let mut first_len = None;
        for step in &script.steps {
            match *step {
                Step::Send { len, count } if script.one_size => {
                    let len = *first_len.get_or_insert(len);
                    self.step(&Step::Send { len, count });
                }
                _ => self.step(step),
            }
        }
        self.wind_down(script.wind_down);
        self.final_checks();
        self
    }

    fn step(&mut self, step: &Step) {
        match *step {
            Step::Send { len, count } => {
                let len = match len {
                    SendLen::Fixed(len) => len as usize,
                    SendLen::NearOut(delta) => {
                        let out = if self.setup.max_out == 0 { self.budget + 100 } else { self.setup.max_out };
                        (out - HEADER_LEN).saturating_add_signed(isize::from(delta))
                    }
                };
                for _ in 0..count {
                    if !self.send(len) {
                        break;
                    }
                }
            }
            Step::Write(max) => self.io_round(Some(max as usize), None),
            Step::Read { max, in_send, scratch } => self.io_round(None, Some((max as usize, in_send, scratch))),
            Step::PeerCloses => self.peer_closed = true,
            Step::Next(k) => self.take_events(k as usize),
            Step::Close => self.close(),
            Step::Advance(ms) => self.now = self.now.saturating_add(Duration::from_millis(u64::from(ms))),
            Step::Wake => self.io_round(None, None),
            Step::Fail => {
                if self.inline.is_running() {
                    self.failed = true;
                    self.inline.fail();
                    self.observe();
                }
            }
        }
    }

    fn expire_due(&self) -> bool {
        self.setup.expire.is_some_and(|idle| self.now >= self.last_inbound.saturating_add(idle))
    }

    /// Whether the machine is still open at `now`, noting an expiry it is about to act on.
    fn machine_open_now(&mut self) -> bool {
        if self.failed || self.machine_ended {
            return false;
        }
        if self.expire_due() {
            self.machine_ended = true;
            self.expired = true;
            return false;
        }
        true
    }

    /// The application sends one frame. False: it would block here (the write queue is at the
    /// budget), so the rest of its sends wait; or it was refused.
    fn send(&mut self, len: usize) -> bool {
        if self.inline.must_write() {
            return false;
        }
        let body = sent_body(self.sends, len);
        self.sends += 1;
        let frame_len = len + HEADER_LEN;
        // A send at or past the expire deadline is the first to show the machine the time: it
        // ends, so the send finds the connection closed.
        let expected = if !self.inline.is_open() || !self.machine_open_now() {
            Err(Refusal::Closed)
        } else if self.setup.max_out != 0 && frame_len > self.setup.max_out {
            Err(Refusal::Refused(Error::OutgoingTooLarge { len: frame_len, max: self.setup.max_out }))
        } else {
            Ok(())
        };
        let got = self.inline.send(self.now, Command::SendBody(Bytes::from(body.clone())));
        if got != expected {
            self.violate(Property::OrderOut, format!("send of {len} bytes: {got:?}, expected {expected:?}"));
        }
        if got.is_ok() {
            let frame = frame_of(&body);
            self.largest_frame = self.largest_frame.max(frame.len());
            self.frames_grew |= frame.len() > self.smallest_frame;
            self.smallest_frame = self.smallest_frame.min(frame.len());
            self.accepted.extend_from_slice(&frame);
            self.accepted_frames.push(frame);
        } else {
            self.coverage.refused_sends += 1;
        }
        self.observe();
        got.is_ok()
    }

    fn close(&mut self) {
        if self.inline.is_open() {
            self.machine_open_now();
            self.machine_ended = true;
        }
        self.inline.close(self.now);
        self.observe();
    }

    fn take_events(&mut self, max: usize) {
        for _ in 0..max {
            let next = self.inline.next(self.now);
            match next {
                Some(Ok(Event::Frame(frame))) => {
                    if !self.endings.is_empty() {
                        self.violate(Property::Lifecycle, "an event after the ending".into());
                    }
                    if self.read_closed_seen {
                        self.violate(Property::Lifecycle, "an event after ReadClosed".into());
                    }
                    match self.wire.frames.get(self.taken) {
                        Some(expected) if expected[..] == frame[..] => {}
                        expected => self.violate(
                            Property::OrderIn,
                            format!(
                                "event {} is {:?}, expected {:?}",
                                self.taken,
                                short(&frame),
                                expected.map(|f| short(f))
                            ),
                        ),
                    }
                    self.taken += 1;
                }
                Some(Err(ending)) => {
                    if !self.endings.is_empty() {
                        self.violate(Property::Lifecycle, format!("a second ending {ending:?}"));
                    }
                    let before = self.wire.complete_within(self.machine_took);
                    if self.taken != before {
                        self.violate(
                            Property::Lifecycle,
                            format!("the ending came after {} events, not after all {before} before it", self.taken),
                        );
                    }
                    self.endings.push(ending);
                }
                None => {
                    self.observe();
                    return;
                }
            }
            self.observe();
        }
    }

    /// One round of a shell's I/O: write (`Some(max)`: up to `max` bytes), read (`Some(..)`),
    /// then the timers and `after_io`.
    fn io_round(&mut self, write: Option<usize>, read: Option<(usize, bool, bool)>) {
        if let Some(max) = write {
            self.write(max);
        }
        if let Some((max, in_send, scratch)) = read {
            self.read(max, in_send, scratch);
        }
        if self.inline.is_open() {
            self.machine_open_now();
        }
        self.inline.on_wake(self.now);
        self.observe();
        self.after_io();
    }

    fn write(&mut self, max: usize) {
        if !self.inline.is_running() || !self.inline.has_writes(self.now) {
            self.observe();
            return;
        }
        let mut chunk = Vec::new();
        for buf in self.inline.writes().chunks() {
            let n = buf.len().min(max - chunk.len());
            chunk.extend_from_slice(&buf[..n]);
            if chunk.len() == max {
                break;
            }
        }
        let at = self.written.len();
        let expected = self.accepted.get(at..at + chunk.len());
        if expected != Some(&chunk[..]) {
            self.violate(
                Property::OrderOut,
                format!(
                    "{} bytes written at {at} are not the accepted frames' ({} accepted)",
                    chunk.len(),
                    self.accepted.len()
                ),
            );
        }
        if self.shut_write && !chunk.is_empty() {
            self.violate(Property::OrderOut, format!("{} bytes written after ShutWrite", chunk.len()));
        }
        self.inline.writes().advance(chunk.len());
        self.written.extend_from_slice(&chunk);
        self.observe();
    }

    fn waiting_events(&self) -> usize {
        self.wire.complete_within(self.machine_took).saturating_sub(self.taken)
    }

    fn read(&mut self, max: usize, in_send: bool, scratch: bool) {
        let sending = in_send || self.inline.must_write();
        if self.inline.queued() < self.budget {
            self.read_paused = false;
        }
        let wants = self.inline.wants_read(sending);
        if wants {
            if !self.inline.is_running() {
                self.violate(Property::Budgets, "wants_read after the end".into());
            }
            if self.read_paused {
                self.violate(Property::Budgets, format!("wants_read while paused ({} queued)", self.inline.queued()));
            }
            if self.eof_read {
                self.violate(Property::Budgets, "wants_read after the peer's EOF".into());
            }
            if self.inline.is_open() && (self.read_error.is_some() || self.eof_fed) {
                self.violate(Property::Budgets, "wants_read after the read side closed".into());
            }
            if sending && self.inline.is_open() && self.waiting_events() >= EVENTS_HELD {
                let waiting = self.waiting_events();
                self.violate(Property::Budgets, format!("a read while sending with {waiting} events waiting"));
            }
        }
        if self.read_paused {
            self.coverage.read_paused += 1;
        }
        if sending && self.waiting_events() >= EVENTS_HELD {
            self.coverage.events_held_full += 1;
        }
        if !wants || !self.inline.is_running() {
            return;
        }
        let remaining = self.wire.bytes.len() - self.read_pos;
        if remaining == 0 {
            if self.peer_closed {
                self.read_eof(sending);
            } else {
                self.inline.read_idle();
            }
            return;
        }
        if max == 0 {
            self.inline.read_idle();
            return;
        }
        let open_before = self.inline.is_open();
        let takes = open_before && self.machine_open_now() && self.read_error.is_none() && !self.eof_fed;
        let queued_before = self.inline.queued();
        let n = if scratch && !self.inline.read_buffer_allocated() {
            let n = max.min(remaining);
            let bytes = self.wire.bytes[self.read_pos..self.read_pos + n].to_vec();
            self.inline.on_read_copy(self.now, &bytes, sending);
            n
        } else {
            let room = self.inline.read_buffer();
            let n = room.len().min(max).min(remaining);
            room[..n].copy_from_slice(&self.wire.bytes[self.read_pos..self.read_pos + n]);
            self.inline.on_read(self.now, n, sending);
            n
        };
        self.read_pos += n;
        if open_before && queued_before >= self.budget && self.inline.queued() > queued_before {
            self.read_paused = true;
        }
        if takes {
            self.machine_took += n;
            self.last_inbound = self.now;
            if let Some((at, error)) = &self.wire.bad_header {
                if self.machine_took >= at + HEADER_LEN {
                    self.read_error = Some(error.clone());
                }
            }
        }
        self.observe();
    }

    fn read_eof(&mut self, sending: bool) {
        if self.inline.is_open() && self.machine_open_now() && self.read_error.is_none() && !self.eof_fed {
            self.eof_fed = true;
            let complete = self.wire.complete_within(self.machine_took);
            let end_of_complete = complete.checked_sub(1).map_or(0, |i| self.wire.frame_ends[i]);
            let buffered = self.machine_took - end_of_complete;
            if buffered > 0 {
                self.read_error = Some(Error::Truncated { buffered });
            }
        }
        self.eof_read = true;
        self.inline.on_read(self.now, 0, sending);
        self.observe();
    }

    fn after_io(&mut self) {
        match self.inline.after_io(self.now) {
            AfterIo::Continue => {}
            AfterIo::ShutWrite => {
                self.coverage.shut_write += 1;
                if self.shut_write {
                    self.violate(Property::Lifecycle, "a second ShutWrite".into());
                }
                self.shut_write = true;
                if self.inline.queued() != 0 || self.written.len() != self.accepted.len() {
                    self.violate(
                        Property::OrderOut,
                        format!(
                            "ShutWrite with {} of {} accepted bytes written, {} queued",
                            self.written.len(),
                            self.accepted.len(),
                            self.inline.queued()
                        ),
                    );
                }
            }
            AfterIo::End => {
                if self.end_queued.is_some() {
                    self.violate(Property::Lifecycle, "a second End".into());
                }
                let queued = self.inline.queued();
                self.end_queued = Some(queued);
                if self.written.len() + queued != self.accepted.len() {
                    self.violate(
                        Property::OrderOut,
                        format!(
                            "End with {} written + {queued} queued of {} accepted bytes",
                            self.written.len(),
                            self.accepted.len()
                        ),
                    );
                }
                let linger_over = self.finishing_since.is_some_and(|t| self.now >= t.saturating_add(self.setup.linger));
                if queued > 0 && !linger_over {
                    self.violate(
                        Property::OrderOut,
                        format!("End with {queued} bytes unwritten before the linger ran out"),
                    );
                }
                let done = queued == 0 && (self.eof_read || self.setup.linger.is_zero());
                if !(done || linger_over) {
                    self.violate(Property::Lifecycle, "End with the peer's EOF still awaited in the linger".into());
                }
            }
        }
        self.observe();
    }

    /// Checks after every call: the write queue's bound and the phases' order.
    fn observe(&mut self) {
        // The machine may first see a due timer on a call the model does not follow (`next`
        // or `has_writes` draining it); `Inline` then leaves Open.
        if !self.inline.is_open() && !self.machine_ended && !self.failed {
            self.machine_ended = true;
            if self.expire_due() {
                self.expired = true;
            } else {
                self.violate(Property::Lifecycle, "the machine ended with no close and no timer due".into());
            }
        }
        let queued = self.inline.queued();
        if queued >= self.budget && self.inline.is_open() {
            self.coverage.over_budget += 1;
        }
        // Over the budget by at most a batch (a quarter of the budget, but never less than the
        // one command it holds) and one transmit (a frame, or the OUT's worth the machine held
        // coalesced); once frames grew, by the documented batch of up to MAX_BATCH commands.
        let batch = if self.frames_grew {
            DOCUMENTED_MAX_BATCH * self.largest_frame
        } else {
            (self.budget / 4).max(self.largest_frame)
        };
        let bound = self.budget + batch + self.largest_frame.max(self.setup.max_out);
        if queued > bound {
            self.violate(
                Property::Budgets,
                format!("{queued} bytes queued, over the budget {} + a batch + a frame ({bound})", self.budget),
            );
        }
        if !self.frames_grew && queued >= self.budget {
            self.coverage.over_budget_one_size += 1;
        }
        let rank = rank(&self.inline);
        if rank < self.rank {
            self.violate(Property::Lifecycle, format!("the phase went back from {} to {rank}", self.rank));
        }
        if rank >= 1 && self.finishing_since.is_none() {
            self.finishing_since = Some(self.now);
        }
        self.rank = rank;
        let read_closed = self.inline.is_read_closed();
        if self.read_closed_seen && !read_closed {
            self.violate(Property::Lifecycle, "is_read_closed went back to false".into());
        }
        self.read_closed_seen |= read_closed;
    }

    /// The application takes every event and closes once the peer is done (or after a while);
    /// the socket takes all it is given (or nothing); time passes when nothing else moves.
    fn wind_down(&mut self, wind_down: WindDown) {
        if wind_down.peer_closes {
            self.peer_closed = true;
        }
        for round in 0..4000 {
            self.take_events(usize::MAX);
            if !self.inline.is_running() {
                if !(self.inline.is_reported() || self.failed) {
                    self.violate(Property::Lifecycle, "ended, and next reported nothing".into());
                }
                return;
            }
            let peer_done = self.read_pos == self.wire.bytes.len() && !wind_down.peer_closes;
            if self.inline.is_open() && (self.inline.events_ended() || peer_done || round > 50) {
                self.closed_in_wind_down = true;
                self.close();
            }
            let before = (self.written.len(), self.read_pos, self.eof_read, self.rank, self.taken);
            let write = if wind_down.socket_drains { usize::MAX } else { 0 };
            self.io_round(Some(write), Some((usize::MAX, false, false)));
            let moved = before != (self.written.len(), self.read_pos, self.eof_read, self.rank, self.taken);
            // Lingering, the bytes still read are dropped; time passes meanwhile, as it does for
            // a shell reading a peer that trickles.
            if !moved || !self.inline.is_open() {
                let next = self.now.saturating_add(Duration::from_millis(1));
                self.now = if moved { next } else { self.inline.wake_at().map_or(next, |at| at.max(next)) };
                self.io_round(None, None);
            }
        }
        self.violate(Property::Lifecycle, "the connection did not end".into());
    }

    fn final_checks(&mut self) {
        // Order out: the written bytes parse back into the accepted frames, in order.
        let mut rest = &self.written[..];
        let mut index = 0;
        while rest.len() >= HEADER_LEN {
            let len = u32::from_le_bytes(rest[..HEADER_LEN].try_into().unwrap()) as usize;
            if len > rest.len() {
                break;
            }
            if self.accepted_frames.get(index).is_none_or(|f| f[..] != rest[..len]) {
                self.violate(Property::OrderOut, format!("written frame {index} is not accepted frame {index}"));
                break;
            }
            rest = &rest[len..];
            index += 1;
        }
        // Order in: every frame the machine took was delivered (a failed transport too reports
        // the events before it), then the ending.
        let delivered = self.wire.complete_within(self.machine_took);
        if self.taken != delivered {
            self.violate(Property::OrderIn, format!("{} events of the {delivered} frames read", self.taken));
        }
        if self.failed {
            return;
        }
        if self.end_queued.is_none() {
            self.violate(Property::Lifecycle, "no End".into());
        }
        if self.taken == self.wire.frames.len() {
            self.coverage.whole_wire_delivered += 1;
        }
        if self.read_closed_seen {
            self.coverage.read_closed_seen += 1;
        }
        let unflushed = self.end_queued.unwrap_or(0);
        let (expected, property) = match (&self.read_error, self.expired) {
            (Some(e), _) => (Some(Ending::Machine(e.clone())), Property::OrderIn),
            (None, true) => {
                let idle = self.setup.expire.expect("expired with an expire time");
                (Some(Ending::Machine(Error::Expired { idle })), Property::Lifecycle)
            }
            (None, false) if unflushed > 0 => (Some(Ending::Unflushed(unflushed)), Property::OrderOut),
            (None, false) => (None, Property::Lifecycle),
        };
        if self.endings.len() > 1 || self.endings.first() != expected.as_ref() {
            self.violate(property, format!("ended with {:?}, expected {expected:?}", self.endings));
        }
        match expected {
            Some(Ending::Machine(Error::Truncated { .. })) => self.coverage.truncated_reported += 1,
            Some(Ending::Machine(Error::Expired { .. })) => self.coverage.expired_reported += 1,
            Some(Ending::Machine(_)) => self.coverage.peer_error_reported += 1,
            Some(Ending::Unflushed(_)) => self.coverage.unflushed_reported += 1,
            _ => {}
        }
        // Closed, with a socket taking everything: every accepted byte was written by the End.
        if self.closed_in_wind_down && self.socket_drains {
            if unflushed != 0 {
                self.violate(
                    Property::OrderOut,
                    format!("closed with the socket draining, {unflushed} bytes unwritten"),
                );
            } else {
                self.coverage.clean_end_all_written += 1;
            }
        }
    }
}

fn short(bytes: &[u8]) -> String {
    if bytes.len() <= 12 {
        format!("{bytes:?}")
    } else {
        format!("{:?}.. ({} bytes)", &bytes[..12], bytes.len())
    }
}

/// Run `script` and report the first violation of `property`.
fn check(property: Property, script: &Script) -> TestResult {
    let sim = Sim::new(script).run(script);
    COVERAGE.with(|c| c.borrow_mut().add(&sim.coverage));
    match sim.violations.iter().find(|v| v.property == property) {
        Some(v) => TestResult::error(format!("{:?}: {}", v.property, v.what)),
        None => TestResult::passed(),
    }
}

/// Deterministic quickcheck: a fixed seed per property, so a failure reproduces (set
/// `INLINE_PROPS_SEED` and `INLINE_PROPS_TESTS` for a longer search). Returns what the runs
/// reached.
fn run_property(property: Property, seed: u64, tests: u64) -> Coverage {
    COVERAGE.with(|c| *c.borrow_mut() = Coverage::default());
    let prop: fn(Script) -> TestResult = match property {
        Property::OrderOut => |s| check(Property::OrderOut, &s),
        Property::OrderIn => |s| check(Property::OrderIn, &s),
        Property::Budgets => |s| check(Property::Budgets, &s),
        Property::Lifecycle => |s| check(Property::Lifecycle, &s),
    };
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let seed = from_env("INLINE_PROPS_SEED").unwrap_or(seed);
    let tests = from_env("INLINE_PROPS_TESTS").unwrap_or(tests);
    QuickCheck::new().rng(Gen::from_size_and_seed(120, seed)).tests(tests).max_tests(tests).quickcheck(prop);
    COVERAGE.with(|c| *c.borrow())
}

/// Every violation `script` shows, of any property.
fn violations(script: &Script) -> Vec<Violation> {
    Sim::new(script).run(script).violations
}

fn assert_holds(script: &Script) {
    let violations = violations(script);
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The bytes leaving through `writes()` are exactly the accepted sends' frames, in order,
/// whole (parsed back); a refused send leaves none; after a close, every accepted byte is
/// written before `End`, or the ending is `Unflushed(n)` with `n` the bytes left unwritten.
///
/// Mutations it caught: `after_io` ending as soon as the peer's EOF came, written or not
/// (End with bytes unwritten before the linger ran out); `Unflushed` counting one byte less;
/// `send` reporting the machine's refusal after a timer ended it (the regression below).
#[test]
fn qc_order_and_no_loss_out() {
    let c = run_property(Property::OrderOut, 11, 1000);
    assert!(
        c.clean_end_all_written > 0 && c.unflushed_reported > 0 && c.refused_sends > 0 && c.shut_write > 0,
        "{c:?}"
    );
}

/// The events are exactly the peer's valid frames, in order, however they were chunked; a bad
/// header ends them with the peer's error, an EOF inside a frame with `Truncated`.
///
/// Mutations it caught: the drain queueing events at the front (reversed order); `on_read`
/// not feeding the EOF to the machine (no `Truncated`).
#[test]
fn qc_order_and_no_loss_in() {
    let c = run_property(Property::OrderIn, 12, 1000);
    assert!(c.whole_wire_delivered > 0 && c.peer_error_reported > 0 && c.truncated_reported > 0, "{c:?}");
}

/// The write queue stays within the budget plus one batch plus one transmit (see
/// `Sim::observe`); no read while sending with `EVENTS_HELD` events waiting, so what the
/// application holds while sending is at most that plus one read's frames; no read while
/// paused, once the machine's read side closed, after the peer's EOF or after the end.
///
/// Mutations it caught: the batch sized from drains that moved no bytes (the regression below);
/// `wants_read` without `holding_events`, or without `read_paused`; `wants_read` not draining
/// events read while not sending (the regression below).
#[test]
fn qc_budgets_and_bounds() {
    let c = run_property(Property::Budgets, 13, 1000);
    assert!(
        c.over_budget_one_size > 0 && c.events_held_full > 0 && c.read_paused > 0 && c.read_closed_seen > 0,
        "{c:?}"
    );
}

/// The ending is reported once, by `next`, after every event before it; no event after
/// `ReadClosed`; open, finishing, ended and reported come in that order only.
///
/// Mutations it caught: `next` reporting the ending before the queued events; `after_io` not
/// remembering the write side was shut (a second `ShutWrite`).
#[test]
fn qc_lifecycle() {
    let c = run_property(Property::Lifecycle, 14, 1000);
    assert!(c.expired_reported > 0 && c.read_closed_seen > 0 && c.peer_error_reported > 0, "{c:?}");
}

fn silent_peer() -> Peer {
    Peer { flood: 0, bodies: Vec::new(), tail: Tail::Clean }
}

fn plain_setup(max_out: usize) -> Setup {
    Setup {
        max_in: 1 << 16,
        max_out,
        commit: Duration::ZERO,
        expire: None,
        read_chunk: 1 << 16,
        linger: Duration::from_millis(50),
    }
}

/// Found by `qc_budgets_and_bounds`. With OUT coalescing and a commit time, the first drains
/// move no bytes (the frames wait in the machine); the batch was then sized as if commands
/// produced nothing, MAX_BATCH of them, so all 86 sends went in before the budget was checked:
/// 88 452 bytes queued against 65 536 + 16 384 + 4096.
#[test]
fn regression_coalesced_sends_do_not_make_the_batch_unbounded() {
    assert_holds(&Script {
        setup: Setup { max_out: 4096, commit: Duration::from_millis(20), ..plain_setup(4096) },
        peer: silent_peer(),
        steps: vec![Step::Send { len: SendLen::Fixed(1049), count: 86 }],
        one_size: false,
        wind_down: WindDown { socket_drains: true, peer_closes: true },
    });
}

/// Found by `qc_order_and_no_loss_out`. A send that is the first call past the expire
/// deadline ends the machine (contract rule 1), which then refuses the command; `send`
/// reported that as `Refused(Finished)`, the caller's fault, instead of `Closed`.
#[test]
fn regression_a_send_past_the_expire_deadline_finds_the_connection_closed() {
    assert_holds(&Script {
        setup: Setup { expire: Some(Duration::from_millis(30)), ..plain_setup(0) },
        peer: silent_peer(),
        steps: vec![Step::Advance(109), Step::Send { len: SendLen::Fixed(100), count: 1 }],
        one_size: false,
        wind_down: WindDown { socket_drains: true, peer_closes: true },
    });
}

/// Found by `qc_budgets_and_bounds`. Bytes read while not sending stay undrained in the
/// machine, here with its `ReadClosed` (a header of length 1); `wants_read` looked only at
/// what had been drained, so it asked for more bytes for a machine whose read side had closed
/// (it refuses them), and counted none of those events against `EVENTS_HELD`.
#[test]
fn regression_no_read_after_a_bad_header_read_while_not_sending() {
    assert_holds(&Script {
        setup: plain_setup(0),
        peer: Peer { tail: Tail::BadHeader(BadHeader::TooShort(1)), ..silent_peer() },
        steps: vec![
            Step::Read { max: 36378, in_send: false, scratch: false },
            Step::Read { max: 2, in_send: false, scratch: false },
        ],
        one_size: false,
        wind_down: WindDown { socket_drains: true, peer_closes: false },
    });
}

/// Found by `qc_budgets_and_bounds`, and left open: `Inline` feeds up to a batch of commands
/// before draining the machine and checking the budget, the batch sized from what earlier
/// commands produced (documented at `MAX_BATCH`). A command's size is unknown until the
/// machine is drained, so frames larger than those the batch was sized from go past the
/// budget together: here 117 frames of 1041 bytes after one of 140, 121 937 bytes queued
/// against 65 536 + 16 384 + 1041. Run with `--ignored`.
#[test]
#[ignore = "documented batching: a batch is sized from the commands before it"]
fn a_burst_of_larger_frames_is_fed_in_a_batch_sized_for_smaller_ones() {
    let now = Instant::ZERO;
    let machine = PacketConnection::new(FramingConfig::packet(1 << 16, 0));
    let budget = machine.write_budget();
    let mut inline = Inline::new(now, machine, 1 << 16, Duration::ZERO);
    inline.send(now, Command::SendBody(Bytes::from(vec![0; 136]))).unwrap();
    let body = Bytes::from(vec![1; 1037]);
    // As an application does: send until a send would block.
    while !inline.must_write() {
        inline.send(now, Command::SendBody(body.clone())).unwrap();
        let bound = budget + budget / 4 + body.len() + HEADER_LEN;
        assert!(inline.queued() <= bound, "{} bytes queued, over {bound}", inline.queued());
    }
}
