//! Time enters the async drivers through `Runtime::now()` and `Runtime::timer()` only: a
//! runtime whose clock runs an hour ahead of the wall clock (as a simulator's virtual one may
//! run anywhere) drives machine timers exactly as tokio's own. A driver that read the wall
//! clock anywhere would see every deadline an hour away (never firing) or an hour past (firing
//! at once).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use switchboard_proto::stage::{self, FramingConfig, PacketConnection};
use switchboard_proto::Instant;
use switchboard_rt::{DriverConfig, DriverError, Runtime, RuntimeExt, SocketOptions, Timer};
use switchboard_tokio::{Tokio, TokioTimer};

const AHEAD: Duration = Duration::from_secs(3600);

/// tokio with a clock an hour ahead.
#[derive(Clone, Copy, Debug, Default)]
struct Ahead;

/// A tokio timer set in the ahead clock's terms.
struct AheadTimer(TokioTimer);

impl Timer for AheadTimer {
    fn reset(&mut self, at: Instant) {
        self.0.reset(behind(at));
    }
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_fire(cx)
    }
}

fn behind(at: Instant) -> Instant {
    Instant::from_nanos(at.as_nanos().saturating_sub(AHEAD.as_nanos() as u64))
}

impl Runtime for Ahead {
    type Timer = AheadTimer;
    type Tcp = <Tokio as Runtime>::Tcp;
    type TcpListener = <Tokio as Runtime>::TcpListener;
    type Unix = <Tokio as Runtime>::Unix;
    type UnixListener = <Tokio as Runtime>::UnixListener;
    type Udp = <Tokio as Runtime>::Udp;

    fn now(&self) -> Instant {
        Tokio.now().saturating_add(AHEAD)
    }
    fn timer(&self, at: Instant) -> AheadTimer {
        AheadTimer(Tokio.timer(behind(at)))
    }
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        Tokio.spawn(future)
    }
    fn tcp_connect(
        &self,
        addr: SocketAddr,
        options: &SocketOptions,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send {
        Tokio.tcp_connect(addr, options)
    }
    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Self::TcpListener> {
        Tokio.tcp_listener(listener)
    }
    fn unix_connect(&self, path: std::path::PathBuf) -> impl Future<Output = io::Result<Self::Unix>> + Send {
        Tokio.unix_connect(path)
    }
    fn unix_listener(&self, listener: std::os::unix::net::UnixListener) -> io::Result<Self::UnixListener> {
        Tokio.unix_listener(listener)
    }
    fn udp(&self, socket: std::net::UdpSocket) -> io::Result<Self::Udp> {
        Tokio.udp(socket)
    }
}

const EXPIRE: Duration = Duration::from_millis(100);

fn expiring() -> PacketConnection {
    PacketConnection::new(FramingConfig::packet(1024, 0).with_expire(Some(EXPIRE)))
}

fn expect_expired(result: Result<(), DriverError<stage::Error>>, started: StdInstant) {
    assert!(matches!(result, Err(DriverError::Machine(stage::Error::Expired { .. }))), "{result:?}");
    let took = started.elapsed();
    assert!(took >= EXPIRE - Duration::from_millis(5), "expired after {took:?}, before its time");
}

#[tokio::test]
async fn the_channel_driver_keeps_time_on_the_runtimes_clock() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = StdInstant::now();
    let conn = Ahead
        .connect_with(listener.local_addr().unwrap(), SocketOptions::new(), DriverConfig::default(), expiring())
        .await
        .unwrap();
    let _peer = listener.accept().unwrap();
    // Keep the commands: dropping them would close the connection cleanly instead.
    let (_commands, _events, done) = conn.split();
    let result =
        tokio::time::timeout(Duration::from_secs(20), done.wait()).await.expect("the expire timer never fired");
    expect_expired(result, started);
}

#[tokio::test]
async fn the_direct_driver_keeps_time_on_the_runtimes_clock() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = StdInstant::now();
    let mut conn = Ahead
        .connect_direct(listener.local_addr().unwrap(), SocketOptions::new(), DriverConfig::default(), expiring())
        .await
        .unwrap();
    let _peer = listener.accept().unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), conn.recv()).await.expect("the expire timer never fired");
    match next {
        Some(Err(e)) => expect_expired(Err(e), started),
        other => panic!("expected the expire error, got {other:?}"),
    }
}
