//! The KCOM5 high-level API over real loopback sockets: round trips (whole and streamed), the
//! deadline with no peer at all, and errors that name who was wrong.

use std::io::{self, Read};
use std::thread;
use std::time::Duration;

use switchboard_proto::kcom::{Error as ProtoError, Part};
use switchboard_proto::{Blame, Fault};
use switchboard_std::kcom::{self, ErrorKind, Incoming, KcomError, KcomListener, KcomOptions, Waiting};

/// IPv4 loopback on a port the system picked, with a deadline generous enough for slow CI.
fn bound() -> (KcomListener, KcomOptions) {
    let options = KcomOptions::new().ipv4(true).port(0).close_secs(20.0);
    let listener = KcomListener::bind(&options).unwrap();
    let options = options.port(listener.port());
    (listener, options)
}

/// `len` bytes of the peer's pattern, produced as they are read.
struct Pattern {
    at: u64,
    len: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.at) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.at + i as u64) * 131 + 7).rem_euclid(251) as u8;
        }
        self.at += n as u64;
        Ok(n)
    }
}

#[test]
fn empty_message_and_data() {
    let (listener, options) = bound();
    let sender = thread::spawn(move || listener.send("", Vec::new()));
    let (msg, data) = kcom::receive(&options).unwrap();
    sender.join().unwrap().unwrap();
    assert_eq!((msg.as_str(), data.len()), ("", 0));
}

#[test]
fn streamed_both_ways_with_progress() {
    const LEN: u64 = 3 * 1024 * 1024 + 17;
    let (listener, options) = bound();
    let sender = thread::spawn(move || {
        let mut last = (0, 0);
        let mut progress = |done, total| last = (done, total);
        let sent = listener.send_from("big", LEN, Pattern { at: 0, len: LEN }, Some(&mut progress));
        sent.map(|()| last)
    });
    let mut out = Vec::new();
    let mut calls = 0u32;
    let mut last = (0, 0);
    let mut progress = |done, total| {
        calls += 1;
        last = (done, total);
    };
    let header = kcom::receive_to(&options, &mut out, Some(&mut progress)).unwrap();
    assert_eq!(sender.join().unwrap().unwrap(), (LEN, LEN));
    assert_eq!((header.msg.as_str(), header.data_len), ("big", LEN));
    assert_eq!(last, (LEN, LEN));
    assert!(calls >= 2, "progress was reported {calls} times");
    let mut want = Vec::new();
    Pattern { at: 0, len: LEN }.read_to_end(&mut want).unwrap();
    assert!(out == want, "streamed data differs");
}

#[test]
fn callback_error_stops_the_transfer_as_a_sink_error() {
    let (listener, options) = bound();
    let sender = thread::spawn(move || listener.send("m", vec![1u8; 1 << 20]));
    let err = kcom::receive_with(&options, |piece| match piece {
        Incoming::Header(_) => Ok(()),
        Incoming::Data { .. } => Err(io::Error::other("disk full")),
    })
    .unwrap_err();
    assert!(matches!(err, KcomError::Sink(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Io);
    // The sender may or may not have got everything out before the receiver left: only its
    // ending matters, and it ends.
    let _ = sender.join().unwrap();
}

#[test]
fn short_source_is_the_callers_fault() {
    let (listener, options) = bound();
    let sender = thread::spawn(move || listener.send_from("m", 1000, &[0u8; 10][..], None));
    let receiver = thread::spawn(move || kcom::receive(&options));
    let err = sender.join().unwrap().unwrap_err();
    assert!(matches!(err, KcomError::ShortSource { got: 10, expected: 1000 }), "{err:?}");
    assert_eq!(err.fault(), Fault::Caller);
    // The receiver sees the stream end early: the peer's fault, with the byte count.
    let err = receiver.join().unwrap().unwrap_err();
    assert!(
        matches!(err, KcomError::Peer(ProtoError::Truncated { reading: Part::Data, got: 10, expected: 1000 })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Peer);
}

#[test]
fn send_times_out_when_nobody_connects() {
    let options = KcomOptions::new().ipv4(true).port(0).close(Some(Duration::from_millis(300)));
    let err = kcom::send(&options, "m", &b"data"[..]).unwrap_err();
    assert!(matches!(err, KcomError::Timeout { waiting: Waiting::Accept, .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[test]
fn receive_times_out_when_nobody_listens() {
    // A port that was just free: bind, read it, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = KcomOptions::new().ipv4(true).port(port).close(Some(Duration::from_millis(300)));
    let err = kcom::receive(&options).unwrap_err();
    assert!(matches!(err, KcomError::Timeout { waiting: Waiting::Connect, .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Peer);
}

#[test]
fn receive_waits_for_a_late_sender() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = KcomOptions::new().ipv4(true).port(port).close_secs(20.0);
    let receiver = {
        let options = options.clone();
        thread::spawn(move || kcom::receive(&options))
    };
    // The receiver is already retrying; the sender comes up after it.
    thread::sleep(Duration::from_millis(100));
    kcom::send(&options, "late", &b"x"[..]).unwrap();
    let (msg, data) = receiver.join().unwrap().unwrap();
    assert_eq!((msg.as_str(), &data[..]), ("late", &b"x"[..]));
}

#[test]
fn address_form_sets_the_port_and_keeps_the_key() {
    let options = KcomOptions::from_address("4242.01.AB").unwrap();
    assert_eq!(options.port, 4242);
    assert!(!options.ipv4);
    assert_eq!(options.close, Some(Duration::from_secs(150)));
    let key = options.key.unwrap();
    assert_eq!(key.len(), 48);
    assert!(key.chunks(2).all(|pair| pair == [0x01, 0xab]));

    // The options are switchboard-rt's; their address error becomes this crate's with `?`.
    let err = KcomError::from(KcomOptions::from_address("4242.0x").unwrap_err());
    assert!(matches!(err, KcomError::Address(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Caller);
    assert_eq!(KcomError::from(KcomOptions::from_address("99999.01").unwrap_err()).kind(), ErrorKind::Caller);
}

#[test]
fn defaults_are_the_originals() {
    let options = KcomOptions::new();
    assert_eq!(options.addr(), "[::1]:13600".parse().unwrap());
    assert_eq!(options.clone().ipv4(true).addr(), "127.0.0.1:13600".parse().unwrap());
    assert_eq!(options.close, Some(Duration::from_secs(150)));
    assert_eq!(options.clone().close_secs(0.0).close, None);
    assert_eq!(options.close_secs(-3.0).close, None);
}
