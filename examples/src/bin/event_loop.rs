//! A Switchboard machine driven by a hand-written event loop: non-blocking std sockets, `mio`
//! for readiness, [`Pump`] for the bookkeeping, and no runtime and no threads.
//!
//! One process, one thread: a STAGE packet-framing echo server and a client that sends
//! numbered frames of several sizes through it, coalesced by the client's commit timer. The
//! loop sleeps only inside `poll`, until a socket is ready or the nearest machine deadline.
//!
//! The shape is the one from `switchboard_proto::driver`:
//!
//! ```text
//! loop {
//!     poll(timeout = nearest deadline)            readiness is edge-triggered: remember it
//!     for each connection:
//!         feed commands while pump.wants_input()
//!         write pump.writes() until WouldBlock      (vectored, zero-copy)
//!         read until WouldBlock while pump.wants_input() -> pump.input(Stream(&mut rx))
//!         deadline passed                           -> pump.input(Timeout)
//!         pump.is_done()                            -> close, take_result()
//! }
//! ```

#[cfg(unix)]
fn main() {
    if let Err(e) = unix::main() {
        eprintln!("event_loop: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    println!("event_loop: this example registers raw file descriptors with mio, so it runs on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::collections::{BTreeMap, VecDeque};
    use std::error::Error;
    use std::io::{self, IoSlice, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant as StdInstant};

    use bytes::{Bytes, BytesMut};
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use switchboard_proto::driver::Pump;
    use switchboard_proto::stage::{self, Command, Event, FramingConfig, PacketConnection};
    use switchboard_proto::{Input, Instant};
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

    /// One connection: a std socket in non-blocking mode, a pump, and what readiness we know.
    struct Conn {
        name: String,
        stream: TcpStream,
        pump: Pump<PacketConnection>,
        rx: BytesMut,
        /// Commands waiting for the pump to take input again (backpressure).
        pending: VecDeque<Command>,
        /// Edge-triggered readiness: set by `poll`, cleared when a call would block.
        readable: bool,
        writable: bool,
        timer_wakeups: u32,
    }

    impl Conn {
        fn new(name: String, stream: TcpStream, config: FramingConfig) -> io::Result<Self> {
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                name,
                stream,
                pump: Pump::new(PacketConnection::new(config)),
                rx: BytesMut::new(),
                pending: VecDeque::new(),
                readable: false,
                writable: false,
                timer_wakeups: 0,
            })
        }

        /// Do everything that can be done without blocking, collecting the machine's events.
        fn step(&mut self, now: Instant, events: &mut Vec<Event>) -> io::Result<()> {
            let mut refused = |e: stage::Error| eprintln!("refused: {e}");
            loop {
                let mut progress = false;
                while self.pump.wants_input() {
                    let Some(command) = self.pending.pop_front() else { break };
                    self.pump.input(now, Input::Command(command), |e| events.push(e)).unwrap_or_else(&mut refused);
                    progress = true;
                }
                while self.writable && !self.pump.writes().is_empty() {
                    let written = {
                        let slices: Vec<IoSlice<'_>> = self.pump.writes().chunks().take(64).map(IoSlice::new).collect();
                        (&self.stream).write_vectored(&slices)
                    };
                    match written {
                        Ok(n) => {
                            self.pump.writes().advance(n);
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                while self.readable && self.pump.wants_input() {
                    // Safe Rust reads into initialised memory: zero the room first.
                    let start = self.rx.len();
                    self.rx.resize(start + READ_CHUNK, 0);
                    let read = (&self.stream).read(&mut self.rx[start..]);
                    self.rx.truncate(start + *read.as_ref().unwrap_or(&0));
                    match read {
                        Ok(0) => {
                            self.readable = false;
                            self.pump.input(now, Input::Eof, |e| events.push(e)).unwrap_or_else(&mut refused);
                        }
                        Ok(_) => {
                            // Frames are split off `rx` as `Bytes`: no copy.
                            let rx = &mut self.rx;
                            self.pump.input(now, Input::Stream(rx), |e| events.push(e)).unwrap_or_else(&mut refused);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                    progress = true;
                }
                if self.pump.deadline().is_some_and(|d| now >= d) {
                    self.timer_wakeups += 1;
                    self.pump.input(now, Input::Timeout, |e| events.push(e)).unwrap_or_else(&mut refused);
                    progress = true;
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
        let client = Conn::new("client".into(), TcpStream::connect(addr)?, client_config)?;
        let both = Interest::READABLE | Interest::WRITABLE;
        poll.registry().register(&mut SourceFd(&client.stream.as_raw_fd()), client_token, both)?;
        conns.insert(client_token, client);

        let (mut next_token, mut sent, mut echoed, mut bytes, mut wakeups) = (2usize, 0u32, 0u32, 0usize, 0u32);
        let mut closing = false;
        while !conns.is_empty() {
            let now = clock.now();
            let deadline = conns.values().filter_map(|c| c.pump.deadline()).min();
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
                                let conn = Conn::new(format!("server<-{peer}"), stream, server_config)?;
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
                let mut events = Vec::new();
                loop {
                    let sent_before = sent;
                    if token == client_token && !closing {
                        // The client application: feed frames while the pump takes input.
                        while sent < FRAMES && conn.pump.wants_input() {
                            let command = Input::Command(Command::SendBody(body(sent)));
                            conn.pump.input(now, command, |e| events.push(e))?;
                            sent += 1;
                        }
                    }
                    conn.step(now, &mut events)?;
                    if events.is_empty() && sent == sent_before {
                        break;
                    }
                    for Event::Frame(frame) in events.drain(..) {
                        if token == client_token {
                            if frame[4..] != body(echoed)[..] {
                                return Err(format!("echo {echoed} differs from what was sent").into());
                            }
                            echoed += 1;
                            bytes += frame.len();
                        } else {
                            // The server application: echo every frame as it is.
                            conn.pending.push_back(Command::Send(frame));
                        }
                    }
                    if token == client_token && echoed == FRAMES && !closing {
                        closing = true;
                        conn.pending.push_back(Command::Close);
                    }
                }
                if conn.pump.is_done() {
                    done.push(token);
                }
            }
            for token in done {
                let mut conn = conns.remove(&token).expect("listed above");
                poll.registry().deregister(&mut SourceFd(&conn.stream.as_raw_fd()))?;
                let _ = conn.stream.shutdown(Shutdown::Both);
                let result = conn.pump.take_result().expect("done means finished");
                println!("  {:<22} finished: {:?} (timer wake-ups: {})", conn.name, result, conn.timer_wakeups);
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
