//! A Switchboard machine driven by a hand-written event loop: non-blocking std sockets, `mio`
//! for readiness, [`Inline`] for every decision, and no runtime and no threads.
//!
//! One process, one thread: a STAGE packet-framing echo server and a client that sends
//! numbered frames of several sizes through it, coalesced by the client's commit timer. The
//! loop sleeps only inside `poll`, until a socket is ready or the nearest machine deadline.
//!
//! [`Inline`] is the I/O-free half of the `Direct` drivers: it batches commands, applies
//! backpressure, runs the timers and the close linger, and hands out events; this loop only
//! moves bytes when it says so:
//!
//! ```text
//! loop {
//!     poll(timeout = nearest inline.wake_at())      readiness is edge-triggered: remember it
//!     for each connection:
//!         application: inline.send(..) while !inline.must_write(); take inline.next(now)
//!         write inline.writes() until WouldBlock    (vectored, zero-copy)
//!         read into inline.read_buffer() until WouldBlock while inline.wants_read(..)
//!         inline.on_wake(now)                       (timers, linger)
//!         inline.after_io(now)                      ShutWrite / End: shut the socket down
//! }
//! ```
//!
//! [`Inline`]: switchboard_proto::driver::Inline

/// A STAGE echo server and client in one hand-written event loop (mio readiness, no runtime,
/// no threads); every echo is verified (no options)
#[derive(clap::Parser)]
#[command(name = "event_loop")]
struct Args {}

#[cfg(unix)]
fn main() {
    // `--help`, and a usage error (exit 2) for any argument.
    let Args {} = clap::Parser::parse();
    if let Err(e) = unix::main() {
        eprintln!("event_loop: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    let Args {} = clap::Parser::parse();
    println!("event_loop: this example registers raw file descriptors with mio, so it runs on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::collections::BTreeMap;
    use std::error::Error;
    use std::io::{self, IoSlice, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant as StdInstant};

    use bytes::Bytes;
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use switchboard_proto::driver::{Inline, Step};
    use switchboard_proto::stage::{Command, Event, FramingConfig, PacketConnection};
    use switchboard_proto::Instant;
    use switchboard_rt::Clock;

    const LISTENER: Token = Token(0);
    const FRAMES: u32 = 2_000;
    const SIZES: [usize; 5] = [1, 60, 700, 4_000, 20_000];
    /// Bytes read per `read` call.
    const READ_CHUNK: usize = 16 * 1024;

    fn body(i: u32) -> Bytes {
        let len = SIZES[i as usize % SIZES.len()].max(4);
        let mut b = vec![(i % 251) as u8; len];
        b[..4].copy_from_slice(&i.to_le_bytes());
        Bytes::from(b)
    }

    /// One connection: a std socket in non-blocking mode, its `Inline`, and what readiness we
    /// know.
    struct Conn {
        name: String,
        stream: TcpStream,
        inline: Inline<PacketConnection>,
        /// Edge-triggered readiness: set by `poll`, cleared when a call would block.
        readable: bool,
        writable: bool,
        /// How the connection ended, once it has.
        ended: Option<Result<(), String>>,
    }

    impl Conn {
        fn new(now: Instant, name: String, stream: TcpStream, config: FramingConfig) -> io::Result<Self> {
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            let inline = Inline::new(now, PacketConnection::new(config), READ_CHUNK, Duration::from_secs(1));
            Ok(Conn { name, stream, inline, readable: false, writable: false, ended: None })
        }

        /// Do all the I/O that can be done without blocking, as `Inline` asks.
        fn step(&mut self, now: Instant) -> io::Result<()> {
            loop {
                let mut progress = false;
                while self.writable && self.inline.has_writes(now) {
                    let written = {
                        let slices: Vec<IoSlice<'_>> =
                            self.inline.writes().chunks().take(64).map(IoSlice::new).collect();
                        (&self.stream).write_vectored(&slices)
                    };
                    match written {
                        Ok(n) => {
                            self.inline.writes().advance(n);
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                // This loop reads until the socket would block, so it reads as a sender does
                // (`sending = true`): events are queued at once and reading pauses at
                // `EVENTS_HELD` of them until the application takes some.
                while self.readable && self.inline.wants_read(true) {
                    // Frames are split off the receive buffer as `Bytes`: no copy.
                    match (&self.stream).read(self.inline.read_buffer()) {
                        Ok(n) => {
                            self.readable &= n > 0;
                            self.inline.on_read(now, n, true);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                    progress = true;
                }
                progress |= self.inline.on_wake(now);
                match self.inline.after_io(now) {
                    Step::Continue => {}
                    Step::ShutWrite => {
                        let _ = self.stream.shutdown(Shutdown::Write);
                    }
                    Step::End => {
                        let _ = self.stream.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                }
                if !progress {
                    return Ok(());
                }
            }
        }
    }

    pub fn main() -> Result<(), Box<dyn Error>> {
        let started = StdInstant::now();
        let clock = Clock::new();
        let mut poll = Poll::new()?;
        let mut ready = Events::with_capacity(64);

        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        poll.registry().register(&mut SourceFd(&listener.as_raw_fd()), LISTENER, Interest::READABLE)?;

        // The server idles connections out after 5 s; the client coalesces up to 32 KiB of
        // frames and flushes them 2 ms after the first (the commit timer drives `poll`'s timeout).
        let server_config = FramingConfig::packet(64 * 1024, 0).with_expire(Some(Duration::from_secs(5)));
        let client_config = FramingConfig::packet(64 * 1024, 32 * 1024).with_commit(Duration::from_millis(2));

        let mut conns: BTreeMap<Token, Conn> = BTreeMap::new();
        let client_token = Token(1);
        let client = Conn::new(clock.now(), "client".into(), TcpStream::connect(addr)?, client_config)?;
        let both = Interest::READABLE | Interest::WRITABLE;
        poll.registry().register(&mut SourceFd(&client.stream.as_raw_fd()), client_token, both)?;
        conns.insert(client_token, client);

        let (mut next_token, mut sent, mut echoed, mut bytes, mut wakeups) = (2usize, 0u32, 0u32, 0usize, 0u32);
        let mut closing = false;
        while !conns.is_empty() {
            let now = clock.now();
            let deadline = conns.values().filter_map(|c| c.inline.wake_at()).min();
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            poll.poll(&mut ready, timeout)?;
            wakeups += 1;
            for event in ready.iter() {
                if event.token() == LISTENER {
                    loop {
                        match listener.accept() {
                            Ok((stream, peer)) => {
                                let token = Token(next_token);
                                next_token += 1;
                                let conn = Conn::new(clock.now(), format!("server<-{peer}"), stream, server_config)?;
                                poll.registry().register(&mut SourceFd(&conn.stream.as_raw_fd()), token, both)?;
                                conns.insert(token, conn);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e.into()),
                        }
                    }
                } else if let Some(conn) = conns.get_mut(&event.token()) {
                    conn.readable |= event.is_readable() || event.is_read_closed();
                    conn.writable |= event.is_writable() || event.is_write_closed();
                }
            }

            let now = clock.now();
            let mut done = Vec::new();
            for (&token, conn) in conns.iter_mut() {
                loop {
                    let mut moved = false;
                    if token == client_token && !closing {
                        // The client application: send frames until the queue reaches its budget.
                        while sent < FRAMES && conn.inline.is_open() && !conn.inline.must_write() {
                            conn.inline.send(now, Command::SendBody(body(sent)))?;
                            sent += 1;
                            moved = true;
                        }
                    }
                    conn.step(now)?;
                    // Events are taken only while the queue is under budget: an echo server
                    // that cannot write does not take more work (backpressure).
                    while !conn.inline.must_write() {
                        match conn.inline.next(now) {
                            Some(Ok(Event::Frame(frame))) => {
                                moved = true;
                                if token == client_token {
                                    if frame[4..] != body(echoed)[..] {
                                        return Err(format!("echo {echoed} differs from what was sent").into());
                                    }
                                    echoed += 1;
                                    bytes += frame.len();
                                } else {
                                    // The server application: echo every frame as it is.
                                    conn.inline.send(now, Command::Send(frame))?;
                                }
                            }
                            Some(Err(ending)) => {
                                conn.ended = Some(Err(format!("{ending:?}")));
                                break;
                            }
                            None => break,
                        }
                    }
                    if token == client_token && echoed == FRAMES && !closing {
                        closing = true;
                        conn.inline.close(now);
                        moved = true;
                    }
                    if token != client_token && conn.inline.is_read_closed() && conn.inline.is_open() {
                        // The client is done sending and every echo is queued: close our side.
                        conn.inline.close(now);
                        moved = true;
                    }
                    if !moved {
                        break;
                    }
                }
                if conn.inline.is_reported() {
                    done.push(token);
                }
            }
            for token in done {
                let mut conn = conns.remove(&token).expect("listed above");
                poll.registry().deregister(&mut SourceFd(&conn.stream.as_raw_fd()))?;
                let result = conn.ended.take().unwrap_or(Ok(()));
                println!("  {:<22} finished: {:?}", conn.name, result);
                result?;
            }
        }

        let elapsed = started.elapsed();
        println!(
            "event_loop: {echoed} of {FRAMES} frames echoed ({:.1} MiB each way) in {:.0} ms, {wakeups} poll wake-ups, one thread, no runtime",
            bytes as f64 / (1024.0 * 1024.0),
            elapsed.as_secs_f64() * 1e3
        );
        if echoed != FRAMES {
            return Err("not every frame came back".into());
        }
        Ok(())
    }
}
