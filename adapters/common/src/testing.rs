//! The adapter conformance matrix: every behaviour test written once, run on every runtime.
//!
//! An adapter crate joins with one [`Adapter`] impl and one macro line in a test file:
//!
//! ```text
//! struct TokioTests;
//! impl switchboard_rt::testing::Adapter for TokioTests {
//!     type Runtime = switchboard_tokio::Tokio;
//!     fn runtime() -> Self::Runtime { switchboard_tokio::Tokio }
//!     fn block_on<F: std::future::Future>(f: F) -> F::Output { /* the runtime's block_on */ }
//! }
//! switchboard_rt::adapter_matrix!(TokioTests);
//! ```
//!
//! A protocol joins with one [`Fixture`] impl (how to make its two ends, send a payload, and
//! recognise one) and one line in [`adapter_matrix!`](crate::adapter_matrix):
//! `$crate::stream_suite!($adapter, kcom, $crate::testing::Kcom);` — every adapter then runs
//! the echo, backpressure, shutdown and bad-header tests for it. A datagram protocol joins the
//! same way with one [`DatagramFixture`] impl and a `datagram_suite!` / `multicast_suite!` line.
//!
//! Every test is bounded by a generous guard deadline (a hang fails instead of blocking CI);
//! nothing asserts on elapsed time.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use switchboard_proto::fault::{Blame, Fault};
use switchboard_proto::stage::{
    self, Command, DatagramCommand, DatagramEvent, Event, FramingConfig, PacketConnection, PacketDatagram,
};
use switchboard_proto::Machine;

use crate::multicast::{self, Interface};
use crate::{
    stream_driver, Connection, DatagramSocket, Drivable, DriverConfig, DriverError, Listener, Runtime, RuntimeExt,
    SocketOptions,
};

/// A runtime under test: the [`Runtime`] and how to run a future to completion on it.
pub trait Adapter: 'static {
    /// The runtime.
    type Runtime: Runtime;
    /// A handle to it.
    fn runtime() -> Self::Runtime;
    /// Run `future` (and the tasks it spawns) until it completes.
    fn block_on<F: Future>(future: F) -> F::Output;
}

type Cmd<M> = <M as Machine>::Command;
type Ev<M> = <M as Machine>::Event;

/// A protocol under test: its two ends and how payloads travel over it.
pub trait Fixture: 'static {
    /// The connecting end.
    type Client: Drivable;
    /// The accepting end.
    type Server: Drivable;
    /// A fresh client machine.
    fn client() -> Self::Client;
    /// A fresh server machine.
    fn server() -> Self::Server;
    /// The client command that sends `payload` as one message.
    fn client_send(payload: Bytes) -> Cmd<Self::Client>;
    /// The payload of a message the client received, if the event is one.
    fn client_received(event: Ev<Self::Client>) -> Option<Bytes>;
    /// The server command that sends `payload` as one message.
    fn server_send(payload: Bytes) -> Cmd<Self::Server>;
    /// The payload of a message the server received, if the event is one.
    fn server_received(event: Ev<Self::Server>) -> Option<Bytes>;
    /// Bytes on the wire for one message of `payload_len` bytes.
    fn wire_len(payload_len: usize) -> usize;
    /// Bytes a client could send that break the protocol at the first header.
    fn bad_header() -> &'static [u8];
    /// Whether `error` is the server's answer to [`bad_header`](Self::bad_header).
    fn is_bad_header(error: &<Self::Server as Machine>::Error) -> bool;
}

/// STAGE packet framing (`PacketConnection`, `packet=65536,0`) at both ends.
pub struct StagePacket;

impl Fixture for StagePacket {
    type Client = PacketConnection;
    type Server = PacketConnection;
    fn client() -> PacketConnection {
        PacketConnection::new(FramingConfig::packet(65_536, 0))
    }
    fn server() -> PacketConnection {
        Self::client()
    }
    fn client_send(payload: Bytes) -> Command {
        Command::SendBody(payload)
    }
    fn client_received(event: Event) -> Option<Bytes> {
        let Event::Frame(frame) = event;
        Some(frame.slice(stage::HEADER_LEN..))
    }
    fn server_send(payload: Bytes) -> Command {
        Command::SendBody(payload)
    }
    fn server_received(event: Event) -> Option<Bytes> {
        Self::client_received(event)
    }
    fn wire_len(payload_len: usize) -> usize {
        payload_len + stage::HEADER_LEN
    }
    fn bad_header() -> &'static [u8] {
        b"\x02\x00\x00\x00"
    }
    fn is_bad_header(error: &stage::Error) -> bool {
        matches!(error, stage::Error::LengthTooShort { len: 2 })
    }
}

/// A datagram protocol under test: one endpoint machine per socket, messages addressed to and
/// from socket addresses.
pub trait DatagramFixture: 'static {
    /// The endpoint.
    type Endpoint: Drivable;
    /// A fresh endpoint whose plain sends go to `default_to`.
    fn endpoint(default_to: Option<SocketAddr>) -> Self::Endpoint;
    /// The command that sends `payload` as one message to the endpoint's default destination.
    fn send(payload: Bytes) -> Cmd<Self::Endpoint>;
    /// The sender and payload of a message received, if the event is one.
    fn received(event: Ev<Self::Endpoint>) -> Option<(SocketAddr, Bytes)>;
    /// The echo server's answer to `event`: the same message back to whoever sent it.
    fn echo(event: Ev<Self::Endpoint>) -> Option<Cmd<Self::Endpoint>>;
}

/// STAGE packet frames over UDP (`PacketDatagram`, `packet=65536,0`): one frame per datagram.
impl DatagramFixture for StagePacket {
    type Endpoint = PacketDatagram;
    fn endpoint(default_to: Option<SocketAddr>) -> PacketDatagram {
        PacketDatagram::new(FramingConfig::packet(65_536, 0), default_to)
    }
    fn send(payload: Bytes) -> DatagramCommand {
        DatagramCommand::SendBody(payload)
    }
    fn received(event: DatagramEvent) -> Option<(SocketAddr, Bytes)> {
        match event {
            DatagramEvent::Frame { from, frame } => Some((from, frame.slice(stage::HEADER_LEN..))),
            DatagramEvent::Dropped { .. } => None,
        }
    }
    fn echo(event: DatagramEvent) -> Option<DatagramCommand> {
        match event {
            DatagramEvent::Frame { from, frame } => Some(DatagramCommand::SendTo(from, frame)),
            DatagramEvent::Dropped { .. } => None,
        }
    }
}

/// Every matrix test for adapter `$adapter`. One line per protocol and suite.
#[macro_export]
macro_rules! adapter_matrix {
    ($adapter:ty) => {
        $crate::stream_suite!($adapter, stage_packet, $crate::testing::StagePacket);
        $crate::datagram_suite!($adapter, stage_packet_udp, $crate::testing::StagePacket);
        $crate::stage_suite!($adapter);
        $crate::driver_suite!($adapter);
        $crate::multicast_suite!($adapter, stage_packet_multicast, $crate::testing::StagePacket);
        $crate::cipher_suite!($adapter, crypto_aes_cfb, $crate::testing::AesCfb);
        $crate::cipher_suite!($adapter, crypto_rijndael_cbc, $crate::testing::RijndaelCbc);
        $crate::cipher_suite!($adapter, crypto_seed_cbc, $crate::testing::SeedCbc);
        $crate::cipher_suite!($adapter, crypto_des_cfb, $crate::testing::DesCfb);
        $crate::cipher_suite!($adapter, crypto_sealed_gcm, $crate::testing::SealedGcm);
        $crate::protocol_suite!($adapter);
    };
}

/// The encrypted BSON exchange with cipher `$cipher` on adapter `$adapter`, over TCP, Unix and
/// UDP sockets opened from connection specs.
#[doc(hidden)]
#[macro_export]
macro_rules! cipher_suite {
    ($adapter:ty, $name:ident, $cipher:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn bson_echo_tcp() {
                $crate::testing::encrypted_bson_tcp::<$adapter, $cipher>()
            }
            #[cfg(unix)]
            #[test]
            fn bson_echo_unix() {
                $crate::testing::encrypted_bson_unix::<$adapter, $cipher>()
            }
            #[test]
            fn bson_echo_udp() {
                $crate::testing::encrypted_bson_udp::<$adapter, $cipher>()
            }
        }
    };
}

/// Protocols with their own shape of test: typed request/response, KCOM5 (both roles, against
/// ourselves and the independent Python peer), spec errors.
#[doc(hidden)]
#[macro_export]
macro_rules! protocol_suite {
    ($adapter:ty) => {
        mod protocols {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn message_request_response() {
                $crate::testing::message_request_response::<$adapter>()
            }
            #[test]
            fn spec_errors_name_the_bad_part() {
                $crate::testing::spec_errors::<$adapter>()
            }
            #[test]
            fn kcom_send_to_own_receiver() {
                $crate::testing::kcom_own_ends::<$adapter>()
            }
            #[test]
            fn kcom_send_to_python_receiver() {
                $crate::testing::kcom_to_python::<$adapter>()
            }
            #[test]
            fn kcom_receive_from_python_sender() {
                $crate::testing::kcom_from_python::<$adapter>()
            }
        }
    };
}

/// The stream tests of protocol `$fixture` on adapter `$adapter`, in module `$name`.
#[doc(hidden)]
#[macro_export]
macro_rules! stream_suite {
    ($adapter:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn echo_tcp() {
                $crate::testing::echo_tcp::<$adapter, $fixture>()
            }
            #[cfg(unix)]
            #[test]
            fn echo_unix() {
                $crate::testing::echo_unix::<$adapter, $fixture>()
            }
            #[test]
            fn full_duplex_bulk_echo_does_not_deadlock() {
                $crate::testing::full_duplex::<$adapter, $fixture>()
            }
            #[test]
            fn backpressure_with_a_peer_that_stops_reading() {
                $crate::testing::backpressure::<$adapter, $fixture>()
            }
            #[test]
            fn close_writes_everything_in_flight() {
                $crate::testing::shutdown_in_flight::<$adapter, $fixture>(false)
            }
            #[test]
            fn dropping_the_handle_writes_everything_in_flight() {
                $crate::testing::shutdown_in_flight::<$adapter, $fixture>(true)
            }
            #[test]
            fn bad_header_closes_only_that_connection() {
                $crate::testing::bad_header::<$adapter, $fixture>()
            }
        }
    };
}

/// The datagram tests of protocol `$fixture` on adapter `$adapter`.
#[doc(hidden)]
#[macro_export]
macro_rules! datagram_suite {
    ($adapter:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn echo_udp() {
                $crate::testing::echo_udp::<$adapter, $fixture>()
            }
        }
    };
}

/// The multicast tests of protocol `$fixture` on adapter `$adapter`.
#[doc(hidden)]
#[macro_export]
macro_rules! multicast_suite {
    ($adapter:ty, $name:ident, $fixture:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn ipv4_group_reaches_two_receivers() {
                $crate::testing::multicast::<$adapter, $fixture>(false)
            }
            #[test]
            fn ipv6_group_reaches_two_receivers() {
                $crate::testing::multicast::<$adapter, $fixture>(true)
            }
        }
    };
}

/// Tests of the datagram driver's addressing (`Input::Datagram` / `Output::TransmitTo`).
#[doc(hidden)]
#[macro_export]
macro_rules! driver_suite {
    ($adapter:ty) => {
        mod datagram_addressing {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn transmit_to_reaches_the_named_peer_and_from_names_the_sender() {
                $crate::testing::transmit_to::<$adapter>()
            }
            #[test]
            fn stream_output_goes_to_the_peer_or_the_last_sender() {
                $crate::testing::transmit_fallback::<$adapter>()
            }
            #[test]
            fn stream_output_without_a_peer_is_a_typed_error() {
                $crate::testing::datagram_without_peer::<$adapter>()
            }
        }
    };
}

/// Tests of STAGE connection features (timers, coalescing, refusals) on adapter `$adapter`.
#[doc(hidden)]
#[macro_export]
macro_rules! stage_suite {
    ($adapter:ty) => {
        mod stage_features {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn expire_timer_closes_an_idle_connection() {
                $crate::testing::stage_expire::<$adapter>()
            }
            #[test]
            fn commit_timer_coalesces_frames_into_one_write() {
                $crate::testing::stage_commit_coalescing::<$adapter>()
            }
            #[test]
            fn refused_command_comes_back_and_the_connection_goes_on() {
                $crate::testing::stage_refused_command::<$adapter>()
            }
        }
    };
}

// ---------------------------------------------------------------- helpers

/// A hang fails the test instead of blocking: generous, never a timing assertion.
const GUARD: Duration = Duration::from_secs(30);

/// Run `body` on adapter `A`, failing if it has not finished within [`GUARD`].
fn run<A: Adapter, F: Future<Output = ()>>(body: F) {
    A::block_on(async {
        let rt = A::runtime();
        let mut guard = std::pin::pin!(rt.clone().sleep(GUARD));
        let mut body = std::pin::pin!(body);
        std::future::poll_fn(|cx| {
            if body.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if guard.as_mut().poll(cx).is_ready() {
                panic!("the test did not finish within {GUARD:?}");
            }
            Poll::Pending
        })
        .await
    })
}

/// Run two futures concurrently, both to completion.
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

/// Message `i`: `len` bytes anyone can recompute.
pub fn payload(i: usize, len: usize) -> Bytes {
    (0..len).map(|j| (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7)) % 251) as u8).collect::<Vec<u8>>().into()
}

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

async fn read_to_end<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut buf)).await {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
    }
    Ok(())
}

/// Server side of the echo tests: send back every message, then report how it ended.
async fn echo<P: Fixture>(conn: Connection<P::Server>) -> Result<(), DriverError<<P::Server as Machine>::Error>> {
    while let Some(delivery) = conn.recv().await {
        if let Some(payload) = delivery.ok().and_then(P::server_received) {
            if conn.send(P::server_send(payload)).await.is_err() {
                break;
            }
        }
    }
    conn.join().await
}

/// Send `count` messages (lengths cycling below `max_len`) while receiving their echoes,
/// and check every echo, in order.
async fn exchange<P: Fixture>(conn: &Connection<P::Client>, first: usize, count: usize, max_len: usize) {
    let len = |i: usize| (i * 977) % max_len;
    let send = async {
        for i in first..first + count {
            conn.send(P::client_send(payload(i, len(i)))).await.expect("driver stopped while sending");
        }
    };
    let receive = async {
        let mut i = first;
        while i < first + count {
            let delivery = conn.recv().await.expect("connection ended before every echo came back");
            let event = delivery.unwrap_or_else(|e| panic!("command refused: {e}"));
            if let Some(got) = P::client_received(event) {
                assert_eq!(got, payload(i, len(i)), "echo {i} differs");
                i += 1;
            }
        }
    };
    both(send, receive).await;
}

fn unix_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("switchboard-{}-{n}.sock", std::process::id()))
}

// ---------------------------------------------------------------- stream suite

/// Echo over TCP on loopback through `serve`.
pub fn echo_tcp<A: Adapter, P: Fixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.clone().serve(
            listener,
            |_| P::server(),
            |conn| async move {
                echo::<P>(conn).await.expect("server connection failed");
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let conn = rt.clone().connect(addr, P::client()).await.unwrap();
        exchange::<P>(&conn, 0, 200, 3000).await;
        conn.join().await.unwrap();
    })
}

/// Echo over a Unix socket through `serve`.
#[cfg(unix)]
pub fn echo_unix<A: Adapter, P: Fixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let path = unix_path();
        let _ = std::fs::remove_file(&path);
        let listener = rt.listen_unix(&path).unwrap();
        let server = rt.clone().serve(
            listener,
            |_| P::server(),
            |conn| async move {
                echo::<P>(conn).await.expect("server connection failed");
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let conn = rt.clone().connect_unix(&path, DriverConfig::default(), P::client()).await.unwrap();
        exchange::<P>(&conn, 0, 200, 3000).await;
        conn.join().await.unwrap();
        let _ = std::fs::remove_file(&path);
    })
}

/// Both ends stream at once through small kernel buffers (each side's queue over budget at
/// times): an application that keeps receiving while it sends must never deadlock.
pub fn full_duplex<A: Adapter, P: Fixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let small = SocketOptions::new().send_buffer(32 * 1024).recv_buffer(32 * 1024);
        let listener = rt.listen_with("127.0.0.1:0", &small).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.clone().serve_with(
            listener,
            small.clone(),
            DriverConfig::default(),
            |_| P::server(),
            |conn| async move {
                echo::<P>(conn).await.expect("server connection failed");
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let conn = rt.clone().connect_with(addr, small, DriverConfig::default(), P::client()).await.unwrap();
        exchange::<P>(&conn, 0, 1000, 32_000).await;
        conn.join().await.unwrap();
    })
}

/// A peer that stops reading: the client's write queue stays within budget + one message,
/// the driver pauses, and the sender is told to wait; once the peer reads, everything arrives.
pub fn backpressure<A: Adapter, P: Fixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        // Small kernel buffers so the driver's own queue, not the kernel's, takes the load.
        let listener = rt.listen_with("127.0.0.1:0", &SocketOptions::new().recv_buffer(4096)).unwrap();
        let addr = listener.local_addr().unwrap();
        let config = DriverConfig::default().with_commands(4);
        let conn =
            rt.clone().connect_with(addr, SocketOptions::new().send_buffer(4096), config, P::client()).await.unwrap();
        let (peer, _) = listener.accept().await.unwrap();

        let len = 8192;
        let bound = P::client().write_budget() + P::wire_len(len);
        let mut sent = 0;
        let mut next = P::client_send(payload(0, len));
        loop {
            assert!(sent < 10_000, "backpressure never engaged after {sent} messages");
            match conn.try_send(next) {
                Ok(()) => {
                    sent += 1;
                    next = P::client_send(payload(sent, len));
                }
                Err(crate::async_driver::TrySendError::Full(back)) => {
                    next = back;
                    if conn.stats().is_paused() {
                        break; // the channel is full and the driver holds back: told to wait
                    }
                    rt.clone().sleep(Duration::from_millis(1)).await;
                }
                Err(crate::async_driver::TrySendError::Closed(_)) => panic!("driver stopped"),
            }
        }
        let stats = conn.stats().clone();
        assert!(stats.queued() > 0, "paused with nothing queued");
        assert!(stats.max_queued() <= bound, "queue reached {} > budget + one message = {bound}", stats.max_queued());

        // The peer starts reading: everything accepted arrives, in order.
        let server = rt.drive(P::server(), peer, &DriverConfig::default());
        let client = async {
            conn.send(next).await.unwrap();
            conn.join().await.unwrap();
        };
        let receive = async {
            let mut got = 0;
            while let Some(delivery) = server.recv().await {
                if let Some(p) = delivery.ok().and_then(P::server_received) {
                    assert_eq!(p, payload(got, len), "message {got} differs");
                    got += 1;
                }
            }
            got
        };
        let ((), got) = both(client, receive).await;
        assert_eq!(got, sent + 1);
        assert!(stats.max_queued() <= bound, "queue reached {} > {bound}", stats.max_queued());
        server.join().await.unwrap();
    })
}

/// Close (or drop the handle) with far more queued than the socket takes at once: the peer
/// still receives every message, in order, then a clean end of stream.
pub fn shutdown_in_flight<A: Adapter, P: Fixture>(drop_handle: bool) {
    run::<A, _>(async {
        let rt = A::runtime();
        // Small kernel buffers: at the close, most of the data is still in the driver's queue.
        let listener = rt.listen_with("127.0.0.1:0", &SocketOptions::new().recv_buffer(4096)).unwrap();
        let addr = listener.local_addr().unwrap();
        let options = SocketOptions::new().send_buffer(4096);
        let conn = rt.clone().connect_with(addr, options, DriverConfig::default(), P::client()).await.unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        let server = rt.drive(P::server(), peer, &DriverConfig::default());
        let (count, len) = (64, 16 * 1024);
        let client = async {
            for i in 0..count {
                conn.send(P::client_send(payload(i, len))).await.unwrap();
            }
            if drop_handle {
                drop(conn);
            } else {
                conn.close().await.unwrap();
                conn.join().await.unwrap();
            }
        };
        let receive = async {
            let mut got = 0;
            while let Some(delivery) = server.recv().await {
                if let Some(p) = delivery.ok().and_then(P::server_received) {
                    assert_eq!(p, payload(got, len), "message {got} differs");
                    got += 1;
                }
            }
            got
        };
        let ((), got) = both(client, receive).await;
        assert_eq!(got, count, "messages lost in shutdown");
        server.join().await.expect("the peer saw an unclean end");
    })
}

/// A client sending a bad header ends only its own connection, with the typed peer error;
/// another client on the same server carries on.
pub fn bad_header<A: Adapter, P: Fixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (results, ended) = async_channel::unbounded();
        let server = rt.clone().serve(
            listener,
            |_| P::server(),
            move |conn| {
                let results = results.clone();
                async move {
                    let _ = results.send(echo::<P>(conn).await).await;
                }
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });

        let good = rt.clone().connect(addr, P::client()).await.unwrap();
        exchange::<P>(&good, 0, 3, 100).await;

        let mut bad = rt.tcp_connect(addr).await.unwrap();
        write_all(&mut bad, P::bad_header()).await.unwrap();
        read_to_end(&mut bad).await.unwrap(); // the server closes this one
        drop(bad);
        match ended.recv().await.unwrap() {
            Err(DriverError::Protocol(e)) => {
                assert!(P::is_bad_header(&e), "unexpected error: {e}");
                assert_eq!(e.fault(), Fault::Peer);
            }
            other => panic!("expected the bad header's protocol error, got {other:?}"),
        }

        exchange::<P>(&good, 3, 3, 100).await;
        good.join().await.unwrap();
        assert!(ended.recv().await.unwrap().is_ok(), "the good connection ended badly");
    })
}

// ---------------------------------------------------------------- datagram suite

/// Server side of the datagram echo test: answer every message to its sender until closed.
async fn echo_datagrams<P: DatagramFixture>(
    conn: Connection<P::Endpoint>,
) -> Result<(), DriverError<<P::Endpoint as Machine>::Error>> {
    while let Some(delivery) = conn.recv().await {
        if let Some(answer) = delivery.ok().and_then(P::echo) {
            if conn.send(answer).await.is_err() {
                break;
            }
        }
    }
    conn.join().await
}

/// Echo over UDP on loopback: the server answers whoever sent, the client sends to its default
/// destination (the server).
pub fn echo_udp<A: Adapter, P: DatagramFixture>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let server_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let server_addr = server_socket.local_addr().unwrap();
        let server = rt.drive_datagram(P::endpoint(None), server_socket, &DriverConfig::default());
        let stop = server.commands();
        let server = async move { echo_datagrams::<P>(server).await };
        let client_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let client = rt.drive_datagram(P::endpoint(Some(server_addr)), client_socket, &DriverConfig::default());
        let talk = async {
            // One at a time: a datagram test must not depend on socket buffers never overflowing.
            for i in 0..50 {
                let sent = payload(i, (i * 977) % 1200);
                client.send(P::send(sent.clone())).await.expect("driver stopped while sending");
                let echo = loop {
                    let delivery = client.recv().await.expect("endpoint ended before the echo came back");
                    let event = delivery.unwrap_or_else(|e| panic!("command refused: {e}"));
                    if let Some(echo) = P::received(event) {
                        break echo;
                    }
                };
                assert_eq!(echo, (server_addr, sent), "echo {i} differs");
            }
            client.join().await.unwrap();
            stop.close().await.unwrap();
            drop(stop);
        };
        let (server_result, ()) = both(server, talk).await;
        server_result.unwrap();
    })
}

/// A sender and two receivers of one multicast group on loopback.
pub fn multicast<A: Adapter, P: DatagramFixture>(ipv6: bool) {
    let (group, iface): (IpAddr, Interface) = if ipv6 {
        let Some(lo) = loopback_index() else {
            println!("skipped: no loopback interface index to join an IPv6 group on");
            return;
        };
        (Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0x5b, (std::process::id() % 0xffff) as u16).into(), Interface::Index(lo))
    } else {
        (Ipv4Addr::new(239, 255, 91, (std::process::id() % 250) as u8 + 1).into(), Interface::V4(Ipv4Addr::LOCALHOST))
    };
    let options = SocketOptions::new();
    let sockets = (|| {
        let first = multicast::receiver(group, 0, iface, &options)?;
        let port = first.local_addr()?.port();
        let second = multicast::receiver(group, port, iface, &options)?;
        let sender = multicast::sender(ipv6, iface, &options)?;
        probe(&sender, SocketAddr::new(group, port), [&first, &second])?;
        Ok::<_, io::Error>((first, second, sender, port))
    })();
    let (first, second, sender, port) = match sockets {
        Ok(s) => s,
        Err(e) => {
            println!("skipped: the kernel refuses {} multicast on loopback: {e}", if ipv6 { "IPv6" } else { "IPv4" });
            return;
        }
    };
    let to = SocketAddr::new(group, port);
    run::<A, _>(async move {
        let rt = A::runtime();
        let first = Arc::new(rt.udp(first).unwrap());
        let second = rt.udp(second).unwrap();
        let a = rt.drive_datagram(P::endpoint(None), first.clone(), &DriverConfig::default());
        let b = rt.drive_datagram(P::endpoint(None), second, &DriverConfig::default());
        let sender = rt.drive_datagram(P::endpoint(Some(to)), rt.udp(sender).unwrap(), &DriverConfig::default());
        let message = payload(7, 300);
        sender.send(P::send(message.clone())).await.unwrap();
        for receiver in [&a, &b] {
            let event = receiver.recv().await.unwrap().unwrap();
            assert_eq!(P::received(event).map(|(_, got)| got), Some(message.clone()));
        }
        first.leave_multicast(group, iface).unwrap();
        // Still a member: the second receiver keeps getting the group.
        let later = payload(8, 200);
        sender.send(P::send(later.clone())).await.unwrap();
        let event = b.recv().await.unwrap().unwrap();
        assert_eq!(P::received(event).map(|(_, got)| got), Some(later));
        for conn in [a, b, sender] {
            conn.join().await.unwrap();
        }
    })
}

/// Whether the kernel delivers a datagram to the group on loopback (some sandboxes drop it
/// silently): send one, wait up to two seconds for each receiver.
fn probe(sender: &std::net::UdpSocket, to: SocketAddr, receivers: [&std::net::UdpSocket; 2]) -> io::Result<()> {
    sender.send_to(b"probe", to)?;
    for r in receivers {
        r.set_nonblocking(false)?;
        r.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 16];
        let result = r.recv_from(&mut buf);
        r.set_read_timeout(None)?;
        r.set_nonblocking(true)?;
        match result {
            Ok((5, _)) => {}
            Ok(_) => return Err(io::Error::other("unexpected datagram on the group")),
            Err(e) => return Err(io::Error::new(e.kind(), format!("probe not delivered: {e}"))),
        }
    }
    Ok(())
}

/// The loopback interface's index (Linux: from sysfs).
fn loopback_index() -> Option<u32> {
    std::fs::read_to_string("/sys/class/net/lo/ifindex").ok()?.trim().parse().ok()
}

/// A datagram machine for the addressing tests: `SendTo` goes out as `TransmitTo`; every
/// datagram received comes out as an event naming its sender.
pub struct Reflector {
    out: std::collections::VecDeque<(SocketAddr, Bytes)>,
    events: std::collections::VecDeque<(SocketAddr, Bytes)>,
    closed: bool,
}

/// What a [`Reflector`] is asked to do.
#[derive(Debug)]
pub enum ReflectorCommand {
    /// Send one datagram.
    SendTo(SocketAddr, Bytes),
    /// Send stream bytes (to the driver's default peer).
    Transmit(Bytes),
    /// Finish.
    Close,
}

/// A [`Reflector`] refuses nothing and never fails.
#[derive(Debug, thiserror::Error)]
#[error("reflector error")]
pub struct ReflectorError;

impl Blame for ReflectorError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

impl Reflector {
    /// A fresh reflector.
    pub fn new() -> Self {
        Reflector { out: Default::default(), events: Default::default(), closed: false }
    }
}

impl Default for Reflector {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine for Reflector {
    type Command = ReflectorCommand;
    type Event = (SocketAddr, Bytes);
    type Error = ReflectorError;

    fn handle_input(
        &mut self,
        _now: switchboard_proto::Instant,
        input: switchboard_proto::Input<'_, ReflectorCommand>,
    ) -> Result<(), ReflectorError> {
        use switchboard_proto::Input;
        match input {
            Input::Datagram { from, data } => self.events.push_back((from, data)),
            Input::Command(ReflectorCommand::SendTo(to, data)) => self.out.push_back((to, data)),
            Input::Command(ReflectorCommand::Transmit(data)) => {
                self.out.push_back((SocketAddr::from(([0, 0, 0, 0], 0)), data))
            }
            Input::Command(ReflectorCommand::Close) => self.closed = true,
            Input::Stream(_) | Input::Eof | Input::Timeout => {}
        }
        Ok(())
    }

    fn poll_output(
        &mut self,
        _now: switchboard_proto::Instant,
    ) -> switchboard_proto::Output<(SocketAddr, Bytes), ReflectorError> {
        use switchboard_proto::Output;
        if let Some((to, data)) = self.out.pop_front() {
            // The unspecified address marks stream output (see `ReflectorCommand::Transmit`).
            return if to.ip().is_unspecified() { Output::Transmit(data) } else { Output::TransmitTo(to, data) };
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        if self.closed {
            Output::Finished(Ok(()))
        } else {
            Output::Timeout(None)
        }
    }
}

impl Drivable for Reflector {
    fn close_command() -> ReflectorCommand {
        ReflectorCommand::Close
    }
}

/// Two datagram drivers address each other with `TransmitTo`; each event names its sender.
pub fn transmit_to<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let a_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let b_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let (a_addr, b_addr) = (a_socket.local_addr().unwrap(), b_socket.local_addr().unwrap());
        let a = rt.drive_datagram(Reflector::new(), a_socket, &DriverConfig::default());
        let b = rt.drive_datagram(Reflector::new(), b_socket, &DriverConfig::default());
        for i in 0..20 {
            let ping = payload(i, 100 + i);
            a.send(ReflectorCommand::SendTo(b_addr, ping.clone())).await.unwrap();
            let (from, data) = b.recv().await.unwrap().unwrap();
            assert_eq!((from, &data), (a_addr, &ping));
            b.send(ReflectorCommand::SendTo(from, data)).await.unwrap();
            assert_eq!(a.recv().await.unwrap().unwrap(), (b_addr, ping));
        }
        a.join().await.unwrap();
        b.join().await.unwrap();
    })
}

/// Unaddressed output (`Output::Transmit`) goes to the configured peer, or, without one, back
/// to whoever sent the last datagram.
pub fn transmit_fallback<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let a_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let b_socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let (a_addr, b_addr) = (a_socket.local_addr().unwrap(), b_socket.local_addr().unwrap());
        let a = rt.drive_datagram(Reflector::new(), a_socket, &DriverConfig::default().with_peer(b_addr));
        let b = rt.drive_datagram(Reflector::new(), b_socket, &DriverConfig::default());
        for i in 0..10 {
            let ping = payload(i, 50 + i);
            a.send(ReflectorCommand::Transmit(ping.clone())).await.unwrap();
            assert_eq!(b.recv().await.unwrap().unwrap(), (a_addr, ping.clone()));
            b.send(ReflectorCommand::Transmit(ping.clone())).await.unwrap();
            assert_eq!(a.recv().await.unwrap().unwrap(), (b_addr, ping));
        }
        a.join().await.unwrap();
        b.join().await.unwrap();
    })
}

/// Stream output on a datagram driver that has no peer yet ends it with `NotConnected`.
pub fn datagram_without_peer<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let socket = rt.bind_udp("127.0.0.1:0", &SocketOptions::new()).unwrap();
        let conn = rt.drive_datagram(Reflector::new(), socket, &DriverConfig::default());
        conn.send(ReflectorCommand::Transmit(Bytes::from_static(b"nowhere"))).await.unwrap();
        match conn.join().await {
            Err(DriverError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotConnected),
            other => panic!("expected NotConnected, got {other:?}"),
        }
    })
}

// ---------------------------------------------------------------- STAGE features

/// An idle connection with `expire` set ends with the typed `Expired` peer error.
pub fn stage_expire<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = FramingConfig::packet(1024, 0).with_expire(Some(Duration::from_millis(50)));
        let conn = rt.clone().connect(addr, PacketConnection::new(config)).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        // Keep the command sender: dropping it would close the connection cleanly instead.
        let (_commands, _events, done) = conn.split();
        let (result, seen) = both(done.wait(), async move { read_to_end(&mut peer).await.unwrap() }).await;
        match result {
            Err(DriverError::Protocol(e @ stage::Error::Expired { .. })) => assert_eq!(e.fault(), Fault::Peer),
            other => panic!("expected Expired, got {other:?}"),
        }
        assert!(seen.is_empty());
    })
}

/// With `commit` set, frames queued together reach the socket in one write, when the commit
/// timer fires (no explicit flush).
pub fn stage_commit_coalescing<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = rt.tcp_connect(addr).await.unwrap();
        let config = FramingConfig::packet(1024, 4096).with_commit(Duration::from_millis(200));
        let (conn, driver) = stream_driver(rt.clone(), PacketConnection::new(config), stream, &DriverConfig::default());
        // Queued before the driver runs, so it takes all three within one commit interval.
        for body in [&b"one"[..], b"two", b"three"] {
            conn.try_send(Command::SendBody(Bytes::from_static(body))).unwrap();
        }
        rt.spawn(driver);
        let (mut peer, _) = listener.accept().await.unwrap();
        let expected = b"\x07\0\0\0one\x07\0\0\0two\x09\0\0\0three";
        let mut got = [0u8; 23];
        read_exact(&mut peer, &mut got).await.unwrap();
        assert_eq!(&got, expected);
        // The driver counts a write after the syscall returns, so the peer may read the bytes
        // first: count once the driver has finished (the close adds nothing to write).
        let stats = conn.stats().clone();
        let (result, rest) = both(conn.join(), async move { read_to_end(&mut peer).await.unwrap() }).await;
        result.unwrap();
        assert!(rest.is_empty());
        assert_eq!(stats.writes(), 1, "three frames should have gone out in one write");
        assert_eq!(stats.bytes_written(), expected.len() as u64);
    })
}

/// A command the machine refuses comes back as `Err` (the caller's fault) on the event
/// channel; the connection carries on.
pub fn stage_refused_command<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.clone().serve(
            listener,
            |_| StagePacket::server(),
            |conn| async move {
                echo::<StagePacket>(conn).await.expect("server connection failed");
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let conn = rt.clone().connect(addr, StagePacket::client()).await.unwrap();
        // The header says 9 bytes; the frame has 6.
        conn.send(Command::Send(Bytes::from_static(b"\x09\0\0\0ab"))).await.unwrap();
        match conn.recv().await {
            Some(Err(e @ stage::Error::MalformedOutgoing { .. })) => assert_eq!(e.fault(), Fault::Caller),
            other => panic!("expected the refusal, got {other:?}"),
        }
        exchange::<StagePacket>(&conn, 0, 3, 100).await;
        conn.join().await.unwrap();
    })
}

// ---------------------------------------------------------------- connection specs and ciphers

/// A `crypto=` option for the encrypted-exchange tests.
pub trait CipherOption: 'static {
    /// The option value, key included.
    const OPTION: &'static str;
}

macro_rules! cipher_options {
    ($($(#[$doc:meta])* $name:ident = $option:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl CipherOption for $name {
            const OPTION: &'static str = $option;
        }
    )*};
}

cipher_options! {
    /// STAGE AES, CFB.
    AesCfb = "AES/CFB/NoPadding=matrix secret";
    /// STAGE RIJNDAEL (the bare-key default's algorithm), CBC with PKCS#5 padding.
    RijndaelCbc = "RIJNDAEL/CBC/PKCS5Padding=matrix secret";
    /// STAGE SEED, CBC with PKCS#5 padding.
    SeedCbc = "SEED/CBC/PKCS5Padding=matrix secret";
    /// STAGE DES, CFB.
    DesCfb = "DES/CFB/NoPadding=matrix secret";
    /// The sealed profile.
    SealedGcm = "AES-256-GCM=matrix secret";
}

/// BSON document `i` as bytes: what the original broker's peers exchange.
pub fn bson_doc(i: usize) -> Bytes {
    let doc = bson::doc! {
        "seq": i as i64,
        "cmd": "broker.echo",
        "body": { "text": "가나다 stage", "n": [1i32, 2, 3], "blob": bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic, bytes: payload(i, i * 37 % 700).to_vec() } },
    };
    doc.to_vec().expect("a document always serialises").into()
}

/// Server side of the encrypted tests: every frame must be a BSON document; send it back.
async fn echo_bson(conn: Connection<PacketConnection>) {
    while let Some(delivery) = conn.recv().await {
        let Ok(Event::Frame(frame)) = delivery else { continue };
        let body = frame.slice(stage::HEADER_LEN..);
        bson::Document::from_reader(&body[..]).expect("the server decrypted a frame that is not BSON");
        if conn.send(Command::SendBody(body)).await.is_err() {
            break;
        }
    }
    conn.join().await.expect("server connection failed");
}

/// Send BSON documents and check every decrypted echo equals the document's bytes.
async fn bson_exchange(conn: &Connection<PacketConnection>, count: usize) {
    for i in 0..count {
        conn.send(Command::SendBody(bson_doc(i))).await.unwrap();
        match conn.recv().await {
            Some(Ok(Event::Frame(frame))) => assert_eq!(frame.slice(stage::HEADER_LEN..), bson_doc(i), "echo {i}"),
            other => panic!("expected echo {i}, got {other:?}"),
        }
    }
}

/// Two peers opened from specs with cipher `C` exchange BSON documents over TCP.
pub fn encrypted_bson_tcp<A: Adapter, C: CipherOption>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = rt.listen_spec(&format!("tcp://127.0.0.1:0?packet=64k,0&crypto={}", C::OPTION)).unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            let _ = listener.serve(echo_bson).await;
        });
        let spec = format!("tcp://127.0.0.1:{port}?packet=64k,64k&crypto={}", C::OPTION);
        let conn = rt.clone().connect_spec(&spec).await.unwrap();
        bson_exchange(&conn, 20).await;
        conn.join().await.unwrap();
    })
}

/// The same over a Unix socket.
#[cfg(unix)]
pub fn encrypted_bson_unix<A: Adapter, C: CipherOption>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let path = unix_path();
        let _ = std::fs::remove_file(&path);
        let spec = format!("unix://{}?packet=64k,0&crypto={}", path.display(), C::OPTION);
        let listener = rt.listen_spec(&spec).unwrap();
        rt.spawn(async move {
            let _ = listener.serve(echo_bson).await;
        });
        let conn = rt.clone().connect_spec(&spec).await.unwrap();
        bson_exchange(&conn, 10).await;
        conn.join().await.unwrap();
        let _ = std::fs::remove_file(&path);
    })
}

/// The same over UDP (`bind_spec`): one encrypted frame per datagram; the server answers
/// whoever sent.
pub fn encrypted_bson_udp<A: Adapter, C: CipherOption>() {
    use switchboard_proto::stage::{DatagramCommand, DatagramEvent};
    run::<A, _>(async {
        let rt = A::runtime();
        let spec = |port: u16| format!("udp://127.0.0.1:{port}?packet=64k,0&crypto={}", C::OPTION);
        // A free port for the server, so the client can be told where to send.
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = rt.bind_spec(&spec(port), None).unwrap();
        let stop = server.commands();
        let client = rt.bind_spec(&spec(0), Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))).unwrap();
        let echo = async {
            while let Some(delivery) = server.recv().await {
                match delivery {
                    Ok(DatagramEvent::Frame { from, frame }) => {
                        let body = frame.slice(stage::HEADER_LEN..);
                        bson::Document::from_reader(&body[..]).expect("the server decrypted a frame that is not BSON");
                        server.send(DatagramCommand::SendBodyTo(from, body)).await.unwrap();
                    }
                    other => panic!("server: {other:?}"),
                }
            }
        };
        let talk = async {
            // One at a time: a datagram test must not depend on socket buffers never overflowing.
            for i in 0..10 {
                client.send(DatagramCommand::SendBody(bson_doc(i))).await.unwrap();
                match client.recv().await {
                    Some(Ok(DatagramEvent::Frame { frame, .. })) => {
                        assert_eq!(frame.slice(stage::HEADER_LEN..), bson_doc(i), "echo {i}")
                    }
                    other => panic!("expected echo {i}, got {other:?}"),
                }
            }
            client.join().await.unwrap();
            stop.close().await.unwrap();
            drop(stop);
        };
        both(echo, talk).await;
    })
}

/// A spec with a bad `crypto` option fails before any socket is opened, naming the crypto part.
pub fn spec_errors<A: Adapter>() {
    use crate::SpecConnectError;
    use switchboard_proto::stage::spec::OpenError;
    run::<A, _>(async {
        let rt = A::runtime();
        let bad_crypto = rt.listen_spec("tcp://127.0.0.1:0?packet&crypto=ROT13/CBC=k");
        assert!(matches!(bad_crypto, Err(SpecConnectError::Open(OpenError::Crypto(_)))));
        let bad_spec = rt.clone().connect_spec("tcp://127.0.0.1?packet").await;
        assert!(matches!(bad_spec, Err(SpecConnectError::Open(OpenError::Spec(_)))));
        let udp = rt.clone().connect_spec("udp://127.0.0.1:9?packet").await;
        assert!(matches!(udp, Err(SpecConnectError::Unsupported(stage::Scheme::Udp))));
        assert_eq!(udp.err().map(|e| e.fault()), Some(Fault::Caller));
    })
}

// ---------------------------------------------------------------- typed messages

/// Request/response over TCP, typed message frames at both ends: the client sends requests,
/// the server's loop answers each with `Respond`; every response carries its request's id.
pub fn message_request_response<A: Adapter>() {
    use switchboard_proto::message::{Command as Msg, Event as MsgEvent, MessageConfig, MessageConnection};
    run::<A, _>(async {
        let rt = A::runtime();
        let messages = || MessageConnection::new(MessageConfig::default()).unwrap();
        let listener = rt.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.clone().serve(
            listener,
            move |_| messages(),
            |conn| async move {
                while let Some(delivery) = conn.recv().await {
                    if let Ok(MsgEvent::Request { id, payload }) = delivery {
                        let answer = [&b"re:"[..], &payload].concat().into();
                        if conn.send(Msg::Respond { id, payload: answer }).await.is_err() {
                            break;
                        }
                    }
                }
                conn.join().await.expect("server connection failed");
            },
        );
        rt.spawn(async move {
            let _ = server.await;
        });
        let conn = rt.clone().connect(addr, messages()).await.unwrap();
        // Several in flight at once: the ids, not the order of sending, pair the answers.
        for round in 0..5 {
            for i in 0..4 {
                let payload = payload(round * 4 + i, 50 + i);
                conn.send(Msg::Request { payload, timeout: None }).await.unwrap();
            }
            for i in 0..4 {
                let n = round * 4 + i;
                match conn.recv().await {
                    Some(Ok(MsgEvent::Response { id, payload: got })) => {
                        assert_eq!(id, n as u64 + 1, "request ids count from 1");
                        assert_eq!(got, [&b"re:"[..], &payload(n, 50 + i)].concat());
                    }
                    other => panic!("expected response {n}, got {other:?}"),
                }
            }
        }
        conn.join().await.unwrap();
    })
}

// ---------------------------------------------------------------- KCOM5

/// The shared directory (`/work/shared`): beside the checkout, one level further out for a
/// worktree, or `$SWITCHBOARD_SHARED`.
pub fn shared_dir() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [here.join("../../shared"), here.join("../../../shared")]
        .into_iter()
        .chain(std::env::var_os("SWITCHBOARD_SHARED").map(PathBuf::from))
        .find(|p| p.join("peers/kcom_peer.py").is_file())
}

fn kcom_options() -> crate::kcom::KcomOptions {
    crate::kcom::KcomOptions::new().ipv4(true).port(0).close(Some(Duration::from_secs(20)))
}

/// Our sender to our receiver, on an ephemeral port.
pub fn kcom_own_ends<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = crate::kcom::KcomListener::bind(&rt, &kcom_options()).unwrap();
        let options = kcom_options().port(listener.port());
        let data = payload(3, 100_000);
        let (sent, received) =
            both(listener.send("hello kcom", data.clone()), crate::kcom::receive(&rt, &options)).await;
        sent.unwrap();
        assert_eq!(received.unwrap(), ("hello kcom".to_string(), data));
    })
}

/// Run the foreign peer with `args` on a thread; its stdout arrives on the channel.
fn python_peer(args: Vec<String>) -> Option<async_channel::Receiver<std::process::Output>> {
    let script = shared_dir()?.join("peers/kcom_peer.py");
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let out = std::process::Command::new("python3").arg(script).args(args).output().expect("python3 runs");
        let _ = tx.send_blocking(out);
    });
    Some(rx)
}

/// Our sender to the independent Python receiver.
pub fn kcom_to_python<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let listener = crate::kcom::KcomListener::bind(&rt, &kcom_options()).unwrap();
        let out = std::env::temp_dir().join(format!("switchboard-kcom-{}-{}.bin", std::process::id(), listener.port()));
        let args = ["recv", "--ipv4", "--timeout", "20", "--port", &listener.port().to_string(), "--out"];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(out.display().to_string());
        let Some(peer) = python_peer(args) else {
            println!("skipped: the shared dir with kcom_peer.py was not found");
            return;
        };
        let data = payload(5, 3000);
        listener.send("to python", data.clone()).await.unwrap();
        let result = peer.recv().await.unwrap();
        assert!(result.status.success(), "peer failed: {}", String::from_utf8_lossy(&result.stderr));
        let line = String::from_utf8(result.stdout).unwrap();
        assert!(line.contains("\"msg\": \"to python\""), "peer saw {line}");
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let _ = std::fs::remove_file(&out);
    })
}

/// The independent Python sender to our receiver.
pub fn kcom_from_python<A: Adapter>() {
    run::<A, _>(async {
        let rt = A::runtime();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = ["send", "--ipv4", "--timeout", "20", "--msg", "from python", "--data-len", "5000", "--port"];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(port.to_string());
        let Some(peer) = python_peer(args) else {
            println!("skipped: the shared dir with kcom_peer.py was not found");
            return;
        };
        let (msg, data) = crate::kcom::receive(&rt, &kcom_options().port(port)).await.unwrap();
        assert_eq!(msg, "from python");
        let expected: Vec<u8> = (0..5000).map(|i| ((i * 131 + 7) % 251) as u8).collect();
        assert_eq!(data, expected);
        let result = peer.recv().await.unwrap();
        assert!(result.status.success(), "peer failed: {}", String::from_utf8_lossy(&result.stderr));
    })
}
