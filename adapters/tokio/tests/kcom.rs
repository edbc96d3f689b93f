//! The async KCOM5 API streaming on tokio: 64 MiB from a source that makes its bytes as they
//! are read into a sink that checks each byte, with what either side holds measured against
//! what its socket took or gave. The sockets count their bytes (a runtime wrapping [`Tokio`]),
//! so the figures leave out the kernel's buffers and depend on no timing.

#![cfg(unix)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use switchboard_proto::kcom::DEFAULT_KCOM_WRITE_BUDGET;
use switchboard_tokio::kcom::{self, KcomListener, KcomOptions, DEFAULT_CHUNK};
use switchboard_tokio::{Listener, Runtime, SocketOptions, Tokio, TokioStream};

const LEN: u64 = 64 * 1024 * 1024;
const MSG: &str = "lazily made";
/// Echo, message length, message, data length: what goes before the data on the wire.
const HEADER: u64 = 8 + 4 + MSG.len() as u64 + 8;
/// What the sender may hold at once (see `switchboard_rt::kcom`): the machine's write budget
/// and three chunks (one being read, one queued, one the driver took while just under budget).
const SENDER_HOLDS: u64 = DEFAULT_KCOM_WRITE_BUDGET as u64 + 3 * DEFAULT_CHUNK as u64;
/// What the receiver may hold that the sink has not taken: 32 reads of 64 KiB waiting for the
/// application, one the driver could not hand over yet, one being written.
const RECEIVER_HOLDS: u64 = 34 * 64 * 1024;

/// Byte `i` of the data (the Python peer's pattern).
fn pattern_byte(i: u64) -> u8 {
    ((i * 131 + 7) % 251) as u8
}

/// Bytes one side's TCP streams read and wrote.
#[derive(Clone, Debug, Default)]
struct Counts {
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

/// Tokio, with every TCP stream counting its bytes.
#[derive(Clone, Debug, Default)]
struct Counted(Counts);

struct CountedStream {
    inner: TokioStream<tokio::net::TcpStream>,
    counts: Counts,
}

impl CountedStream {
    fn wrote(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.counts.written.fetch_add(*n as u64, Ordering::SeqCst);
        }
    }
}

impl futures_io::AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            self.counts.read.fetch_add(n as u64, Ordering::SeqCst);
        }
        read
    }
}

impl futures_io::AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl std::os::fd::AsFd for CountedStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

struct CountedListener {
    inner: switchboard_tokio::TcpListener,
    counts: Counts,
}

impl Listener for CountedListener {
    type Stream = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&self) -> io::Result<(CountedStream, SocketAddr)> {
        let (inner, addr) = self.inner.accept().await?;
        Ok((CountedStream { inner, counts: self.counts.clone() }, addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Listener::local_addr(&self.inner)
    }
}

impl Runtime for Counted {
    type Timer = <Tokio as Runtime>::Timer;
    type Tcp = CountedStream;
    type TcpListener = CountedListener;
    type Unix = <Tokio as Runtime>::Unix;
    type UnixListener = <Tokio as Runtime>::UnixListener;
    type Udp = <Tokio as Runtime>::Udp;

    fn timer(&self, at: switchboard_proto::Instant) -> Self::Timer {
        Tokio.timer(at)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        Tokio.spawn(future)
    }

    async fn tcp_connect(&self, addr: SocketAddr, options: &SocketOptions) -> io::Result<CountedStream> {
        Ok(CountedStream { inner: Tokio.tcp_connect(addr, options).await?, counts: self.0.clone() })
    }

    fn tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<CountedListener> {
        Ok(CountedListener { inner: Tokio.tcp_listener(listener)?, counts: self.0.clone() })
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

/// `LEN` bytes of the pattern, made as they are read. At every read it notes how far it has
/// been read ahead of the data the sender's socket took: what the sender holds.
struct LazySource {
    at: u64,
    sender: Counts,
    most_held: u64,
}

impl futures_io::AsyncRead for LazySource {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = buf.len().min((LEN - self.at) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(self.at + i as u64);
        }
        self.at += n as u64;
        let sent = self.sender.written.load(Ordering::SeqCst).saturating_sub(HEADER);
        self.most_held = self.most_held.max(self.at - sent);
        Poll::Ready(Ok(n))
    }
}

/// Checks every byte against the pattern. At every write it notes how much the receiver's
/// socket gave that has not reached it yet (this write included): what the receiver holds.
struct CheckingSink {
    at: u64,
    receiver: Counts,
    most_held: u64,
    wrong: Option<u64>,
}

impl futures_io::AsyncWrite for CheckingSink {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let arrived = self.receiver.read.load(Ordering::SeqCst).saturating_sub(HEADER);
        self.most_held = self.most_held.max(arrived - self.at);
        if self.wrong.is_none() {
            let at = self.at;
            self.wrong = buf.iter().zip(at..).find(|&(&b, i)| b != pattern_byte(i)).map(|(_, i)| i);
        }
        self.at += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_stream_through_with_bounded_memory_on_both_sides() {
    let (sending, receiving) = (Counted::default(), Counted::default());
    let options = KcomOptions::new().ipv4(true).port(0).close_secs(120.0);
    let listener = KcomListener::bind(&sending, &options).unwrap();
    let options = options.port(listener.port());

    let mut source = LazySource { at: 0, sender: sending.0.clone(), most_held: 0 };
    let sender = tokio::spawn(async move {
        let mut reports = 0u64;
        let sent = listener.send_from(MSG, LEN, &mut source, Some(&mut |_, _| reports += 1)).await;
        sent.map(|()| (source.most_held, reports))
    });
    let mut sink = CheckingSink { at: 0, receiver: receiving.0.clone(), most_held: 0, wrong: None };
    let mut last = (0, 0);
    let mut progress = |done, total| last = (done, total);
    let header = kcom::receive_to(&receiving, &options, &mut sink, Some(&mut progress)).await.unwrap();
    let (sender_held, reports) = sender.await.unwrap().unwrap();

    assert_eq!((header.msg.as_str(), header.data_len), (MSG, LEN));
    assert_eq!((sink.at, sink.wrong), (LEN, None), "every byte arrived, as sent");
    assert_eq!(last, (LEN, LEN));
    assert_eq!(reports, 1 + LEN.div_ceil(DEFAULT_CHUNK as u64), "(0, len), then one report per chunk");
    eprintln!("sender held at most {sender_held} bytes, receiver {} bytes", sink.most_held);
    assert!(sender_held <= SENDER_HOLDS, "the sender held {sender_held} bytes at once, over {SENDER_HOLDS}");
    assert!(sink.most_held <= RECEIVER_HOLDS, "the receiver held {} bytes, over {RECEIVER_HOLDS}", sink.most_held);
    // Streamed, not collected: neither side came anywhere near the blob.
    assert!(sender_held < LEN / 16 && sink.most_held < LEN / 16);
}

#[tokio::test]
async fn a_tokio_reader_and_writer_go_in_through_tokio_stream() {
    let options = KcomOptions::new().ipv4(true).port(0).close_secs(20.0);
    let listener = KcomListener::bind(&Tokio, &options).unwrap();
    let options = options.port(listener.port());
    // `&[u8]` and `Vec<u8>` as tokio's AsyncRead and AsyncWrite.
    let sender = tokio::spawn(listener.send_from("tokio io", 9, TokioStream(&b"some data"[..]), None));
    let mut sink = TokioStream(Vec::new());
    let header = kcom::receive_to(&Tokio, &options, &mut sink, None).await.unwrap();
    sender.await.unwrap().unwrap();
    assert_eq!((header.msg.as_str(), header.data_len, &sink.0[..]), ("tokio io", 9, &b"some data"[..]));
}
