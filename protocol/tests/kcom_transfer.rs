//! KCOM5 sender and receiver machines, in memory: back-to-back transfers with arbitrary chunking,
//! every peer error, caller misuse, the deadline, and garbage input.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use quickcheck::{QuickCheck, TestResult};
use switchboard_proto::kcom::{
    Collector, Error, KcomConfig, Part, Receiver, ReceiverEvent, Sender, SenderCommand, SenderEvent, DEFAULT_CLOSE,
};
use switchboard_proto::machine::drain;
use switchboard_proto::{Blame, Duration, Fault, Input, Instant, Machine, SplitMix64};

/// Byte i of every test blob: the Python peer's pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 131 + 7) % 251) as u8).collect()
}

/// The bytes a sender must put on the wire for `hello`, `msg` and `data`.
fn expected_wire(hello: &[u8], msg: &str, data: &[u8]) -> Vec<u8> {
    let mut wire = hello.to_vec();
    wire.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    wire.extend_from_slice(msg.as_bytes());
    wire.extend_from_slice(&(data.len() as u64).to_le_bytes());
    wire.extend_from_slice(data);
    wire
}

/// Cuts a byte stream into chunks of the given sizes, cycling (empty = everything at once).
struct Cutter {
    sizes: Vec<usize>,
    next: usize,
}

impl Cutter {
    fn new(sizes: Vec<usize>) -> Self {
        Cutter { sizes, next: 0 }
    }

    fn take(&mut self, available: usize) -> usize {
        if self.sizes.is_empty() {
            return available;
        }
        let n = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        n.min(available)
    }
}

#[derive(Default)]
struct Outcome {
    events: Vec<ReceiverEvent>,
    sender_events: Vec<SenderEvent>,
    sender: Option<Result<(), Error>>,
    receiver: Option<Result<(), Error>>,
    /// Every byte the sender transmitted.
    to_receiver: Vec<u8>,
    /// Every byte the receiver transmitted.
    to_sender: Vec<u8>,
}

/// Run a sender and a receiver back to back at time zero. `stream` holds data chunks the
/// application feeds the sender (streaming form); each direction is cut by `cuts`. The receiver
/// sees EOF once the sender finished and everything it wrote was delivered.
fn run(sender: &mut Sender, receiver: &mut Receiver, mut stream: VecDeque<Bytes>, cuts: Vec<usize>) -> Outcome {
    let now = Instant::ZERO;
    let mut out = Outcome::default();
    let (mut to_s, mut to_r) = (VecDeque::<u8>::new(), VecDeque::<u8>::new());
    let (mut s_buf, mut r_buf) = (BytesMut::new(), BytesMut::new());
    let mut cutter = Cutter::new(cuts);
    let mut eof_sent = false;
    loop {
        if out.receiver.is_none() {
            let d = drain(receiver, now);
            to_s.extend(d.wire());
            out.to_sender.extend(d.wire());
            out.events.extend(d.events);
            out.receiver = d.finished;
        }
        if out.sender.is_none() {
            let d = drain(sender, now);
            to_r.extend(d.wire());
            out.to_receiver.extend(d.wire());
            out.sender_events.extend(d.events);
            out.sender = d.finished;
        }
        let mut progress = false;
        if !sender.is_finished() {
            if let Some(chunk) = stream.front() {
                match sender.handle_input(now, Input::Command(SenderCommand::Data(chunk.clone()))) {
                    Ok(()) => {
                        stream.pop_front();
                        progress = true;
                    }
                    Err(Error::NotReady { .. }) => assert!(!sender.is_ready()),
                    Err(e) => panic!("data refused: {e}"),
                }
            }
        }
        if !to_s.is_empty() && !sender.is_finished() {
            let n = cutter.take(to_s.len());
            s_buf.extend(to_s.drain(..n));
            sender.handle_input(now, Input::Stream(&mut s_buf)).unwrap();
            progress = true;
        }
        if !to_r.is_empty() && !receiver.is_finished() {
            let n = cutter.take(to_r.len());
            r_buf.extend(to_r.drain(..n));
            receiver.handle_input(now, Input::Stream(&mut r_buf)).unwrap();
            progress = true;
        }
        if out.sender.is_some() && to_r.is_empty() && !receiver.is_finished() && !eof_sent {
            receiver.handle_input(now, Input::Eof).unwrap();
            eof_sent = true;
            progress = true;
        }
        if !progress {
            return out;
        }
    }
}

/// Check a finished transfer delivered `msg` and `data` exactly, in event order.
fn check_delivered(out: &Outcome, msg: &str, data: &[u8]) -> Result<(), String> {
    if out.sender != Some(Ok(())) || out.receiver != Some(Ok(())) {
        return Err(format!("finished: sender {:?}, receiver {:?}", out.sender, out.receiver));
    }
    if out.sender_events != [SenderEvent::Ready] {
        return Err(format!("sender events {:?}", out.sender_events));
    }
    match &out.events[..] {
        [ReceiverEvent::Message(m), ReceiverEvent::DataLength(n), chunks @ ..] => {
            if m != msg || *n != data.len() as u64 {
                return Err(format!("header: {m:?} {n}"));
            }
            let mut got = Vec::new();
            for chunk in chunks {
                match chunk {
                    ReceiverEvent::Data(c) if !c.is_empty() => got.extend_from_slice(c),
                    other => return Err(format!("unexpected event {other:?}")),
                }
            }
            if got != data {
                return Err(format!("data differs: {} bytes vs {}", got.len(), data.len()));
            }
        }
        other => return Err(format!("events {other:?}")),
    }
    if out.to_receiver != expected_wire(&out.to_sender, msg, data) {
        return Err("sender wire bytes differ from WIRE.md §1".into());
    }
    Ok(())
}

const SIZES: [usize; 6] = [0, 1, 2, 1000, 4096, 5003];

#[test]
fn back_to_back_any_chunking() {
    #[allow(clippy::too_many_arguments)]
    fn prop(
        size: u8,
        msg: String,
        cuts: Vec<u8>,
        data_cuts: Vec<u16>,
        streaming: bool,
        seed: u64,
        budget: u16,
    ) -> TestResult {
        let data = pattern(SIZES[size as usize % SIZES.len()]);
        let config = KcomConfig::default().with_write_budget(budget as usize + 1);
        let mut receiver = Receiver::new(config, &mut SplitMix64::new(seed));
        let (mut sender, stream) = if streaming {
            let sender = Sender::streaming(config, msg.clone(), data.len() as u64).unwrap();
            let blob = Bytes::from(data.clone());
            let mut stream = VecDeque::new();
            let mut cut = Cutter::new(data_cuts.into_iter().map(usize::from).collect());
            let mut at = 0;
            while at < blob.len() {
                let n = cut.take(blob.len() - at);
                stream.push_back(blob.slice(at..at + n));
                at += n;
            }
            (sender, stream)
        } else {
            (Sender::new(config, msg.clone(), Bytes::from(data.clone())).unwrap(), VecDeque::new())
        };
        let out = run(&mut sender, &mut receiver, stream, cuts.into_iter().map(usize::from).collect());
        match check_delivered(&out, &msg, &data) {
            Ok(()) => TestResult::passed(),
            Err(why) => TestResult::error(why),
        }
    }
    QuickCheck::new().tests(300).quickcheck(prop as fn(u8, String, Vec<u8>, Vec<u16>, bool, u64, u16) -> TestResult);
}

#[test]
fn every_size_whole_and_streaming_one_byte_at_a_time() {
    for &size in &SIZES {
        for streaming in [false, true] {
            let data = pattern(size);
            let config = KcomConfig::default();
            let mut receiver = Receiver::new(config, &mut SplitMix64::new(size as u64));
            let (mut sender, stream) = if streaming {
                let chunks = data.chunks(333).map(Bytes::copy_from_slice).collect();
                (Sender::streaming(config, "ctl", size as u64).unwrap(), chunks)
            } else {
                (Sender::new(config, "ctl", Bytes::from(data.clone())).unwrap(), VecDeque::new())
            };
            let out = run(&mut sender, &mut receiver, stream, vec![1]);
            check_delivered(&out, "ctl", &data).unwrap_or_else(|e| panic!("size {size} streaming {streaming}: {e}"));
        }
    }
}

/// Feed `bytes` to `m` through a fresh buffer, then drain.
fn feed<M: Machine>(m: &mut M, now: Instant, bytes: &[u8]) -> switchboard_proto::machine::Drained<M::Event, M::Error> {
    let mut buf = BytesMut::from(bytes);
    m.handle_input(now, Input::Stream(&mut buf)).unwrap();
    drain(m, now)
}

/// A receiver whose hello went out, and that hello.
fn started_receiver(config: KcomConfig) -> (Receiver, Vec<u8>) {
    let mut receiver = Receiver::new(config, &mut SplitMix64::new(42));
    let hello = drain(&mut receiver, Instant::ZERO).wire();
    assert_eq!(hello.len(), 8);
    assert_eq!(&hello[..5], b"KCOM5");
    assert_eq!(hello, receiver.hello());
    (receiver, hello)
}

#[test]
fn hello_bytes_come_from_the_injected_entropy() {
    let (a, b) = (started_receiver(KcomConfig::default()).1, started_receiver(KcomConfig::default()).1);
    assert_eq!(a, b);
    let mut rng = SplitMix64::new(42);
    let dyn_rng: &mut dyn switchboard_proto::Entropy = &mut rng;
    assert_eq!(Receiver::new(KcomConfig::default(), dyn_rng).hello()[..], a[..]);
    assert_ne!(Receiver::new(KcomConfig::default(), &mut SplitMix64::new(43)).hello()[..], a[..]);
    assert_eq!(Receiver::with_nonce(KcomConfig::default(), [1, 2, 3]).hello(), *b"KCOM5\x01\x02\x03");
}

#[test]
fn a_datagram_is_refused_as_the_callers_mistake_and_the_transfer_goes_on() {
    let from = "127.0.0.1:9".parse().unwrap();
    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    let mut sender = Sender::new(KcomConfig::default(), "m", Bytes::from_static(b"data")).unwrap();
    for refused in [
        receiver.handle_input(Instant::ZERO, Input::Datagram { from, data: Bytes::from_static(b"KCOM5") }),
        sender.handle_input(Instant::ZERO, Input::Datagram { from, data: Bytes::from_static(b"KCOM5") }),
    ] {
        let err = refused.unwrap_err();
        assert_eq!(err, Error::UnexpectedInput { input: "datagram" });
        assert_eq!(err.fault(), Fault::Caller);
    }
    // Nothing was taken from the datagram: the real stream still completes the exchange.
    let reply = feed(&mut sender, Instant::ZERO, &hello).wire();
    let out = feed(&mut receiver, Instant::ZERO, &reply);
    assert_eq!(out.finished, Some(Ok(())));
}

#[test]
fn bad_magic_ends_the_sender_without_a_reply() {
    let mut sender = Sender::new(KcomConfig::default(), "m", Bytes::from_static(b"data")).unwrap();
    let out = feed(&mut sender, Instant::ZERO, b"KCOM4xyz");
    assert!(out.transmits.is_empty());
    let err = out.finished.unwrap().unwrap_err();
    assert_eq!(err, Error::BadMagic { got: *b"KCOM4xyz" });
    assert_eq!(err.fault(), Fault::Peer);
    // Lower case is not the magic either.
    let mut sender = Sender::new(KcomConfig::default(), "m", Bytes::new()).unwrap();
    assert!(matches!(feed(&mut sender, Instant::ZERO, b"kcom5abc").finished, Some(Err(Error::BadMagic { .. }))));
}

#[test]
fn echo_mismatch_ends_the_receiver() {
    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    let mut echo = hello.clone();
    echo[7] ^= 1;
    let out = feed(&mut receiver, Instant::ZERO, &echo);
    let err = out.finished.unwrap().unwrap_err();
    assert_eq!(err, Error::EchoMismatch { sent: hello.try_into().unwrap(), got: echo.try_into().unwrap() });
    assert_eq!(err.fault(), Fault::Peer);
}

#[test]
fn header_dribbled_one_byte_at_a_time_still_succeeds() {
    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    let wire = expected_wire(&hello, "dribble ✓", b"xyz");
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut finished = None;
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        receiver.handle_input(Instant::ZERO, Input::Stream(&mut buf)).unwrap();
        let out = drain(&mut receiver, Instant::ZERO);
        events.extend(out.events);
        finished = out.finished;
    }
    assert_eq!(finished, Some(Ok(())));
    assert_eq!(receiver.data_len(), Some(3));
    assert!(receiver.is_finished());
    let mut collector = Collector::new();
    events.into_iter().for_each(|e| collector.push(e));
    assert_eq!(collector.message(), Some("dribble ✓"));
    assert_eq!(collector.data_len(), Some(3));
    assert_eq!(collector.into_parts(), ("dribble ✓".to_owned(), Bytes::from_static(b"xyz")));
}

/// The receiver's wire up to and including the data, cut at `cut`, then EOF.
fn truncated_at(cut: usize, data_len: usize) -> (Vec<ReceiverEvent>, Error) {
    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    let wire = expected_wire(&hello, "msg", &pattern(data_len));
    let mut events = feed(&mut receiver, Instant::ZERO, &wire[..cut]).events;
    receiver.handle_input(Instant::ZERO, Input::Eof).unwrap();
    let out = drain(&mut receiver, Instant::ZERO);
    events.extend(out.events);
    (events, out.finished.unwrap().unwrap_err())
}

#[test]
fn truncation_names_the_part_and_the_byte_count() {
    let t = |reading, got, expected| Error::Truncated { reading, got, expected };
    // hello 8 | msg_len 4 | "msg" 3 | data_len 8 | data 1000
    assert_eq!(truncated_at(0, 1000).1, t(Part::Echo, 0, 8));
    assert_eq!(truncated_at(5, 1000).1, t(Part::Echo, 5, 8));
    assert_eq!(truncated_at(10, 1000).1, t(Part::MessageLength, 2, 4));
    assert_eq!(truncated_at(13, 1000).1, t(Part::Message, 1, 3));
    assert_eq!(truncated_at(15, 1000).1, t(Part::DataLength, 0, 8));
    assert_eq!(truncated_at(22, 1000).1, t(Part::DataLength, 7, 8));
    let (events, err) = truncated_at(23 + 500, 1000);
    assert_eq!(err, t(Part::Data, 500, 1000));
    assert_eq!(err.fault(), Fault::Peer);
    assert!(err.to_string().contains("500 of 1000"), "{err}");
    assert!(err.to_string().contains("data"), "{err}");
    // What arrived before the end was delivered first.
    assert_eq!(events.last(), Some(&ReceiverEvent::Data(Bytes::from(pattern(500)))));

    let mut sender = Sender::new(KcomConfig::default(), "", Bytes::new()).unwrap();
    feed(&mut sender, Instant::ZERO, b"KCOM");
    sender.handle_input(Instant::ZERO, Input::Eof).unwrap();
    assert_eq!(drain(&mut sender, Instant::ZERO).finished, Some(Err(t(Part::Hello, 4, 8))));
}

#[test]
fn limits_are_checked_when_the_length_arrives() {
    let config = KcomConfig::default().with_max_msg_len(10).with_max_data_len(100);
    // Message: only the 4 length bytes are fed, no body.
    let (mut receiver, mut wire) = started_receiver(config);
    wire.extend_from_slice(&11u32.to_le_bytes());
    let out = feed(&mut receiver, Instant::ZERO, &wire);
    assert_eq!(out.finished, Some(Err(Error::MessageTooLong { len: 11, max: 10 })));

    // Data: the length alone ends it; at the limit passes.
    let (mut receiver, hello) = started_receiver(config);
    let full = expected_wire(&hello, "0123456789", &pattern(101));
    let out = feed(&mut receiver, Instant::ZERO, &full[..8 + 4 + 10 + 8]);
    assert_eq!(out.events, [ReceiverEvent::Message("0123456789".into())]);
    let err = out.finished.unwrap().unwrap_err();
    assert_eq!(err, Error::DataTooLong { len: 101, max: 100 });
    assert_eq!(err.fault(), Fault::Peer);

    let (mut receiver, hello) = started_receiver(config);
    let out = feed(&mut receiver, Instant::ZERO, &expected_wire(&hello, "0123456789", &pattern(100)));
    assert_eq!(out.finished, Some(Ok(())));
}

#[test]
fn invalid_utf8_is_a_typed_error() {
    let (mut receiver, mut wire) = started_receiver(KcomConfig::default());
    wire.extend_from_slice(&3u32.to_le_bytes());
    wire.extend_from_slice(b"ab\xff");
    let out = feed(&mut receiver, Instant::ZERO, &wire);
    assert!(out.events.is_empty());
    assert_eq!(out.finished, Some(Err(Error::InvalidUtf8 { valid_up_to: 2 })));
}

#[test]
fn data_chunks_are_slices_of_the_receive_buffer() {
    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    let wire = expected_wire(&hello, "", &pattern(64));
    let mut buf = BytesMut::from(&wire[..]);
    let data_start = buf.as_ptr() as usize + wire.len() - 64;
    receiver.handle_input(Instant::ZERO, Input::Stream(&mut buf)).unwrap();
    let out = drain(&mut receiver, Instant::ZERO);
    match &out.events[..] {
        [_, ReceiverEvent::DataLength(64), ReceiverEvent::Data(chunk)] => {
            assert_eq!(chunk.as_ptr() as usize, data_start);
            assert_eq!(chunk[..], pattern(64)[..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.finished, Some(Ok(())));
}

#[test]
fn streamed_chunks_go_out_uncopied_after_the_header() {
    let config = KcomConfig::default();
    let mut sender = Sender::streaming(config, "m", 6).unwrap();
    let early = Bytes::from_static(b"abc");
    sender.handle_input(Instant::ZERO, Input::Command(SenderCommand::Data(early.clone()))).unwrap();
    assert_eq!(sender.remaining(), 3);
    let out = feed(&mut sender, Instant::ZERO, b"KCOM5\x00\x01\x02");
    assert_eq!(out.events, [SenderEvent::Ready]);
    assert!(sender.is_ready());
    assert_eq!(out.transmits.last().unwrap().as_ptr(), early.as_ptr());
    assert_eq!(out.finished, None);
    assert_eq!(out.deadline, Some(Instant::ZERO + DEFAULT_CLOSE));

    let late = Bytes::from_static(b"def");
    sender.handle_input(Instant::ZERO, Input::Command(SenderCommand::Data(late.clone()))).unwrap();
    let out = drain(&mut sender, Instant::ZERO);
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.transmits[0].as_ptr(), late.as_ptr());
    assert_eq!(out.finished, Some(Ok(())));
}

#[test]
fn caller_misuse_is_refused_and_changes_nothing() {
    let config = KcomConfig::default().with_write_budget(4);
    let mut sender = Sender::streaming(config, "", 10).unwrap();
    let data = |s: &'static [u8]| Input::Command(SenderCommand::Data(Bytes::from_static(s)));

    // More than announced.
    let err = sender.handle_input(Instant::ZERO, data(b"0123456789x")).unwrap_err();
    assert_eq!(err, Error::DataOverflow { len: 11, remaining: 10 });
    assert_eq!(err.fault(), Fault::Caller);
    // Over the pre-handshake budget.
    sender.handle_input(Instant::ZERO, data(b"012")).unwrap();
    let err = sender.handle_input(Instant::ZERO, data(b"34")).unwrap_err();
    assert_eq!(err, Error::NotReady { len: 2, pending: 3, budget: 4 });
    assert_eq!(err.fault(), Fault::Caller);
    assert_eq!(sender.remaining(), 7);
    // After the handshake the budget is the driver's business.
    let mut wire = feed(&mut sender, Instant::ZERO, b"KCOM5abc").wire();
    sender.handle_input(Instant::ZERO, data(b"3456")).unwrap();
    assert_eq!(
        sender.handle_input(Instant::ZERO, data(b"789x")).unwrap_err(),
        Error::DataOverflow { len: 4, remaining: 3 }
    );
    sender.handle_input(Instant::ZERO, data(b"789")).unwrap();
    let out = drain(&mut sender, Instant::ZERO);
    assert_eq!(out.finished, Some(Ok(())));
    wire.extend(out.wire());
    assert_eq!(wire, expected_wire(b"KCOM5abc", "", b"0123456789"));
    // After the end.
    assert_eq!(sender.handle_input(Instant::ZERO, data(b"")).unwrap_err(), Error::Finished);
    assert!(matches!(sender.poll_output(Instant::ZERO), switchboard_proto::Output::Finished(Err(Error::Finished))));

    // The whole form takes no more data.
    let mut sender = Sender::new(KcomConfig::default(), "", Bytes::from_static(b"ab")).unwrap();
    assert_eq!(
        sender.handle_input(Instant::ZERO, data(b"c")).unwrap_err(),
        Error::DataOverflow { len: 1, remaining: 0 }
    );
    assert_eq!(feed(&mut sender, Instant::ZERO, b"KCOM5abc").wire(), expected_wire(b"KCOM5abc", "", b"ab"));

    let (mut receiver, hello) = started_receiver(KcomConfig::default());
    feed(&mut receiver, Instant::ZERO, &expected_wire(&hello, "", b""));
    assert_eq!(receiver.handle_input(Instant::ZERO, Input::Eof).unwrap_err(), Error::Finished);
}

#[test]
fn timeout_exactly_at_start_plus_close() {
    let close = Duration::from_secs(150);
    let start = Instant::from_millis(7_000);
    let deadline = start + close;
    let just_before = Instant::from_nanos(deadline.as_nanos() - 1);

    let mut receiver = Receiver::new(KcomConfig::default(), &mut SplitMix64::new(1));
    let out = drain(&mut receiver, start);
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.deadline, Some(deadline));
    receiver.handle_input(just_before, Input::Timeout).unwrap();
    assert_eq!(drain(&mut receiver, just_before).finished, None);
    receiver.handle_input(deadline, Input::Timeout).unwrap();
    let err = drain(&mut receiver, deadline).finished.unwrap().unwrap_err();
    assert_eq!(err, Error::TimedOut { after: close });
    assert_eq!(err.fault(), Fault::Peer);

    // The sender's clock starts at its first call too, even a poll; a partial hello does not
    // move the deadline.
    let mut sender = Sender::new(KcomConfig::from_close_secs(150.0), "", Bytes::new()).unwrap();
    assert_eq!(drain(&mut sender, start).deadline, Some(deadline));
    assert_eq!(feed(&mut sender, just_before, b"KCOM").deadline, Some(deadline));
    assert_eq!(drain(&mut sender, deadline).finished, Some(Err(Error::TimedOut { after: close })));

    // Input arriving at the deadline is too late: the deadline wins.
    let mut sender = Sender::new(KcomConfig::default(), "", Bytes::new()).unwrap();
    let mut buf = BytesMut::from(&b"KCOM5abc"[..]);
    sender.handle_input(start, Input::Timeout).unwrap();
    sender.handle_input(deadline, Input::Stream(&mut buf)).unwrap();
    let out = drain(&mut sender, deadline);
    assert!(out.transmits.is_empty());
    assert_eq!(out.finished, Some(Err(Error::TimedOut { after: close })));
}

#[test]
fn no_timeout_when_close_is_none() {
    for config in
        [KcomConfig::default().with_close(None), KcomConfig::from_close_secs(0.0), KcomConfig::from_close_secs(-5.0)]
    {
        let late = Instant::from_nanos(u64::MAX - 1);
        let mut receiver = Receiver::new(config, &mut SplitMix64::new(1));
        assert_eq!(drain(&mut receiver, Instant::ZERO).deadline, None);
        receiver.handle_input(late, Input::Timeout).unwrap();
        let out = drain(&mut receiver, late);
        assert_eq!((out.finished, out.deadline), (None, None));

        let mut sender = Sender::new(config, "", Bytes::new()).unwrap();
        assert_eq!(drain(&mut sender, Instant::ZERO).deadline, None);
        let out = feed(&mut sender, late, b"KCOM5abc");
        assert_eq!(out.finished, Some(Ok(())));
    }
}

#[test]
fn collector_joins_chunks() {
    let mut collector = Collector::new();
    collector.push(ReceiverEvent::Message("m".into()));
    collector.push(ReceiverEvent::DataLength(6));
    collector.push(ReceiverEvent::Data(Bytes::from_static(b"ab")));
    assert_eq!(collector.received(), 2);
    collector.push(ReceiverEvent::Data(Bytes::from_static(b"cd")));
    collector.push(ReceiverEvent::Data(Bytes::from_static(b"ef")));
    assert_eq!(collector.received(), 6);
    assert_eq!(collector.into_parts(), ("m".to_owned(), Bytes::from_static(b"abcdef")));
    assert_eq!(Collector::new().into_parts(), (String::new(), Bytes::new()));
}

#[test]
fn garbage_never_panics() {
    fn prop(garbage: Vec<u8>, cuts: Vec<u8>, after_echo: bool, eof: bool) -> bool {
        let config = KcomConfig::default().with_max_msg_len(64);
        let (mut receiver, hello) = started_receiver(config);
        let mut wire = if after_echo { hello } else { Vec::new() };
        wire.extend_from_slice(&garbage);
        let mut sender = Sender::streaming(config, "m", 3).unwrap();
        let mut cutter = Cutter::new(cuts.into_iter().map(usize::from).collect());
        let (mut r_buf, mut s_buf) = (BytesMut::new(), BytesMut::new());
        let (mut r_done, mut s_done) = (None, None);
        let (mut announced, mut delivered) = (None, 0u64);
        let mut at = 0;
        while at < wire.len() {
            let n = cutter.take(wire.len() - at);
            if r_done.is_none() {
                r_buf.extend_from_slice(&wire[at..at + n]);
                receiver.handle_input(Instant::ZERO, Input::Stream(&mut r_buf)).unwrap();
                let out = drain(&mut receiver, Instant::ZERO);
                for e in out.events {
                    match e {
                        ReceiverEvent::DataLength(len) => announced = Some(len),
                        ReceiverEvent::Data(c) => delivered += c.len() as u64,
                        ReceiverEvent::Message(_) => {}
                    }
                }
                r_done = out.finished;
            }
            if s_done.is_none() {
                s_buf.extend_from_slice(&garbage[at.min(garbage.len())..(at + n).min(garbage.len())]);
                sender.handle_input(Instant::ZERO, Input::Stream(&mut s_buf)).unwrap();
                s_done = drain(&mut sender, Instant::ZERO).finished;
            }
            at += n;
        }
        if eof {
            if r_done.is_none() {
                receiver.handle_input(Instant::ZERO, Input::Eof).unwrap();
                r_done = drain(&mut receiver, Instant::ZERO).finished;
            }
            if s_done.is_none() {
                sender.handle_input(Instant::ZERO, Input::Eof).unwrap();
                s_done = drain(&mut sender, Instant::ZERO).finished;
            }
        }
        let peer_fault = |r: &Option<Result<(), Error>>| match r {
            Some(Err(e)) => e.fault() == Fault::Peer,
            _ => true,
        };
        delivered <= announced.unwrap_or(0) && peer_fault(&r_done) && peer_fault(&s_done)
    }
    QuickCheck::new().tests(1000).quickcheck(prop as fn(Vec<u8>, Vec<u8>, bool, bool) -> bool);
}
