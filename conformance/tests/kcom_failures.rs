//! How our KCOM5 APIs end a transfer that cannot succeed, both of them ([`Api`]): as soon as
//! the outcome is final — at the deadline, at the peer's protocol error, at our own sink's
//! failure — even when the peer keeps its side of the connection open, and with the blame where
//! it belongs (our own bind or connect is never the peer's fault). The misbehaving peers are
//! written here from WIRE.md §1, with plain sockets.

mod kcom_peer;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kcom_peer::{Api, Pattern, APIS};
use switchboard_proto::kcom::Error as ProtoError;
use switchboard_proto::{Blame, Fault};
use switchboard_std::kcom::{ErrorKind, Incoming, KcomError, KcomOptions, Opening, Waiting};

/// The `close` deadline of the timeout cases.
const DEADLINE: Duration = Duration::from_millis(300);
/// How long after the moment a transfer has failed (its deadline, or the peer's error) the call
/// may take to return: generous for a loaded machine, yet under the 2 s the drivers linger for
/// a peer's end of stream, so a call that waited for a peer keeping its side open fails.
const SLACK: Duration = Duration::from_millis(1200);

/// A peer that does its part on the connection and then keeps it open, silent, until dropped.
struct Stubborn {
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Stubborn {
    fn hold(mut stream: TcpStream, act: impl FnOnce(&mut TcpStream), release: mpsc::Receiver<()>) {
        act(&mut stream);
        let _ = release.recv();
    }

    /// A sender on a free loopback port: `act` runs on the connection it accepts.
    fn sender(act: impl FnOnce(&mut TcpStream) + Send + 'static) -> (Self, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (release, held) = mpsc::channel();
        let thread = thread::spawn(move || Self::hold(listener.accept().unwrap().0, act, held));
        (Stubborn { release: Some(release), thread: Some(thread) }, port)
    }

    /// A receiver connecting to `port`: `act` runs on its connection.
    fn receiver(port: u16, act: impl FnOnce(&mut TcpStream) + Send + 'static) -> Self {
        let (release, held) = mpsc::channel();
        let thread = thread::spawn(move || Self::hold(TcpStream::connect(("127.0.0.1", port)).unwrap(), act, held));
        Stubborn { release: Some(release), thread: Some(thread) }
    }
}

impl Drop for Stubborn {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Run `call`; its result and how long it took.
fn timed<T>(call: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = call();
    (result, started.elapsed())
}

fn options(close: Duration) -> KcomOptions {
    KcomOptions::new().ipv4(true).port(0).close(Some(close))
}

fn assert_timed_out(api: Api, err: &KcomError, waiting: Waiting, took: Duration) {
    assert!(
        matches!(err, KcomError::Timeout { after, waiting: w } if *after == DEADLINE && *w == waiting),
        "{api:?}: {err:?}"
    );
    assert!(took >= DEADLINE - Duration::from_millis(20), "{api:?}: gave up after {took:?}, before its deadline");
    assert!(took < DEADLINE + SLACK, "{api:?}: returned {took:?} after it began, with a deadline of {DEADLINE:?}");
}

/// The hello a receiver sends, and the echo and header a sender answers it with.
const HELLO: &[u8; 8] = b"KCOM5abc";

#[test]
fn receive_ends_at_its_deadline_when_nobody_listens() {
    for api in APIS {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (got, took) = timed(|| api.receive(&options(DEADLINE).port(port)));
        assert_timed_out(api, &got.unwrap_err(), Waiting::Connect, took);
    }
}

#[test]
fn receive_ends_at_its_deadline_when_the_sender_says_nothing() {
    for api in APIS {
        let (peer, port) = Stubborn::sender(|stream| {
            let _ = stream.read_exact(&mut [0; 8]);
        });
        let (got, took) = timed(|| api.receive(&options(DEADLINE).port(port)));
        drop(peer);
        assert_timed_out(api, &got.unwrap_err(), Waiting::Transfer, took);
    }
}

#[test]
fn send_ends_at_its_deadline_when_the_receiver_says_nothing() {
    for api in APIS {
        let listener = api.bind(&options(DEADLINE)).unwrap();
        let peer = Stubborn::receiver(listener.port(), |_| {});
        let (sent, took) = timed(|| listener.send("m", &b"data"[..]));
        drop(peer);
        assert_timed_out(api, &sent.unwrap_err(), Waiting::Transfer, took);
    }
}

#[test]
fn send_ends_at_its_deadline_when_the_receiver_stops_reading() {
    const LEN: u64 = 256 * 1024 * 1024;
    for api in APIS {
        let listener = api.bind(&options(DEADLINE)).unwrap();
        // A valid hello, the echo read back, and then not another byte taken: the sender's
        // writes back up and its driver has bytes it can never write.
        let peer = Stubborn::receiver(listener.port(), |stream| {
            stream.write_all(HELLO).unwrap();
            let _ = stream.read_exact(&mut [0; 8]);
        });
        let (sent, took) = timed(|| listener.send_from("m", LEN, Pattern::new(LEN)));
        drop(peer);
        assert_timed_out(api, &sent.unwrap_err(), Waiting::Transfer, took);
    }
}

#[test]
fn a_bad_hello_fails_at_once_though_the_receiver_stays() {
    for api in APIS {
        let listener = api.bind(&options(Duration::from_secs(30))).unwrap();
        let peer = Stubborn::receiver(listener.port(), |stream| stream.write_all(b"KCOM4abc").unwrap());
        let (sent, took) = timed(|| listener.send("m", &b"data"[..]));
        drop(peer);
        let err = sent.unwrap_err();
        assert!(matches!(err, KcomError::Peer(ProtoError::BadMagic { .. })), "{api:?}: {err:?}");
        assert_eq!(err.fault(), Fault::Peer);
        assert!(took < SLACK, "{api:?}: returned after {took:?}");
    }
}

#[test]
fn a_bad_echo_fails_at_once_though_the_sender_stays() {
    for api in APIS {
        let (peer, port) = Stubborn::sender(|stream| {
            let _ = stream.read_exact(&mut [0; 8]);
            stream.write_all(b"garbage!").unwrap();
        });
        let (got, took) = timed(|| api.receive(&options(Duration::from_secs(30)).port(port)));
        drop(peer);
        let err = got.unwrap_err();
        assert!(matches!(err, KcomError::Peer(ProtoError::EchoMismatch { .. })), "{api:?}: {err:?}");
        assert!(took < SLACK, "{api:?}: returned after {took:?}");
    }
}

#[test]
fn a_failing_sink_ends_the_transfer_at_once_though_the_sender_stays() {
    for api in APIS {
        // The echo, an empty message, a million bytes announced and a thousand sent; then
        // silence, with the connection open.
        let (peer, port) = Stubborn::sender(|stream| {
            let mut hello = [0; 8];
            stream.read_exact(&mut hello).unwrap();
            let mut head = hello.to_vec();
            head.extend_from_slice(&0u32.to_le_bytes());
            head.extend_from_slice(&1_000_000u64.to_le_bytes());
            head.extend_from_slice(&[7; 1000]);
            stream.write_all(&head).unwrap();
        });
        let (got, took) = timed(|| {
            api.receive_with(&options(Duration::from_secs(30)).port(port), |piece| match piece {
                Incoming::Header(_) => Ok(()),
                Incoming::Data { .. } => Err(io::Error::other("disk full")),
            })
        });
        drop(peer);
        let err = got.unwrap_err();
        assert!(matches!(&err, KcomError::Sink(e) if e.to_string() == "disk full"), "{api:?}: {err:?}");
        assert_eq!((err.kind(), err.fault()), (ErrorKind::Io, Fault::Caller));
        assert!(took < SLACK, "{api:?}: returned after {took:?}");
    }
}

#[test]
fn a_port_in_use_is_our_fault_not_the_peers() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for api in APIS {
        let err = api.bind(&options(DEADLINE).port(addr.port())).err().expect("the port is taken");
        assert!(
            matches!(err, KcomError::Open { opening: Opening::Bind, addr: a, .. } if a == addr),
            "{api:?}: {err:?}"
        );
        assert_eq!((err.kind(), err.fault()), (ErrorKind::Io, Fault::Caller));
        assert!(err.to_string().starts_with(&format!("cannot listen on {addr}: ")), "{err}");
    }
}

#[test]
fn an_unreachable_sender_is_our_fault_and_is_not_retried() {
    // Linux refuses a TCP connection to the broadcast address at once (network unreachable):
    // not a sender that is not up yet, so no retrying until the deadline.
    let unreachable: SocketAddr = "255.255.255.255:9".parse().unwrap();
    for api in APIS {
        let (got, took) = timed(|| api.receive_from(&[unreachable], &options(Duration::from_secs(30))));
        let err = got.unwrap_err();
        assert!(
            matches!(err, KcomError::Open { opening: Opening::Connect, addr, .. } if addr == unreachable),
            "{err:?}"
        );
        assert_eq!((err.kind(), err.fault()), (ErrorKind::Io, Fault::Caller));
        assert!(took < SLACK, "{api:?}: returned after {took:?}");
    }
}

#[test]
fn no_address_at_all_is_the_callers_mistake() {
    for api in APIS {
        let bind = api.bind_to(&[], &options(DEADLINE)).err().expect("nothing to bind");
        assert!(matches!(bind, KcomError::NoAddress { opening: Opening::Bind }), "{bind:?}");
        let connect = api.receive_from(&[], &options(DEADLINE)).unwrap_err();
        assert!(matches!(connect, KcomError::NoAddress { opening: Opening::Connect }), "{connect:?}");
        assert_eq!((bind.fault(), connect.fault()), (Fault::Caller, Fault::Caller));
    }
}

#[test]
fn the_first_address_that_works_is_taken_and_each_side_learns_the_other() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let unreachable: SocketAddr = "255.255.255.255:9".parse().unwrap();
    for api in APIS {
        let listener = api.bind_to(&[taken, "127.0.0.1:0".parse().unwrap()], &options(Duration::from_secs(30)));
        let listener = listener.unwrap();
        let ours = listener.local_addr();
        assert_ne!(ours, taken, "{api:?}: the second address is bound");
        let sender = thread::spawn(move || listener.accept_and_send("both ways", &b"x"[..]));
        let (peer, got) = api.receive_from(&[unreachable, ours], &options(Duration::from_secs(30))).unwrap();
        let receiver = sender.join().unwrap().unwrap();
        assert_eq!(peer, ours, "{api:?}: the receiver names the sender it reached");
        assert_eq!(receiver.ip(), ours.ip(), "{api:?}: the sender names the receiver that came");
        assert_eq!((got.0.as_str(), &got.1[..]), ("both ways", &b"x"[..]));
    }
}
