//! The accept loop: one stream driver per accepted connection, and a graceful shutdown.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use switchboard_proto::{stage, Machine};

use crate::handle::{Control, Handle, Notice, Settings};
use crate::stream::{spawn_named, StreamCore};
use crate::transport::{BlockingListener, BlockingStream};
use crate::DriverError;

/// The application side of one served connection: it sees every notice on that connection's
/// driver thread, and its outcome. Any `FnMut(Notice, &mut Control)` closure is a session.
///
/// `A` is the listener's address type ([`BlockingListener::Addr`]): [`SocketAddr`] for TCP
/// (the default), [`std::os::unix::net::SocketAddr`] for Unix, [`Addr`](crate::Addr) for
/// [`serve_spec`](crate::serve_spec). A session that does not look at the peer can implement
/// `Session<M, A>` for every `A`.
pub trait Session<M: Machine, A = SocketAddr>: Send + 'static {
    /// A notice from the connection's machine; queue replies through `control`.
    fn on_notice(&mut self, notice: Notice<M::Event, M::Error>, control: &mut Control<M::Command>);

    /// The connection ended with this result (after the socket was shut down).
    fn on_finished(&mut self, peer: A, result: Result<(), DriverError<M::Error>>) {
        let _ = (peer, result);
    }
}

impl<M, A, F> Session<M, A> for F
where
    M: Machine,
    F: FnMut(Notice<M::Event, M::Error>, &mut Control<M::Command>) + Send + 'static,
{
    fn on_notice(&mut self, notice: Notice<M::Event, M::Error>, control: &mut Control<M::Command>) {
        self(notice, control)
    }
}

struct Registry<C, E> {
    /// Each live connection by id: dropping its entry asks that connection to close.
    handles: Mutex<BTreeMap<u64, Live<C, E>>>,
    /// Each running connection's thread by id. A thread takes its own entry out as it ends, so
    /// its stack goes back to the system then rather than at shutdown.
    threads: Mutex<BTreeMap<u64, JoinHandle<()>>>,
    accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were being served.
    refused: AtomicU64,
}

/// One live connection: its handle, and where events signalled to it go.
struct Live<C, E> {
    handle: Handle<C>,
    signals: mpsc::Sender<E>,
}

impl<C, E> Default for Registry<C, E> {
    fn default() -> Self {
        Registry {
            handles: Mutex::default(),
            threads: Mutex::default(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

/// A running accept loop. [`Server::shutdown`] (or dropping it) stops accepting, closes every
/// connection gracefully and waits for them. `A` is the listener's address type; `C` and `E`
/// the machines' command and event types (STAGE's [`stage::Command`] and [`stage::Event`]
/// unless said otherwise), so [`Server::connection`] hands out typed handles and
/// [`Server::signal`] takes typed events.
pub struct Server<A = SocketAddr, C = stage::Command, E = stage::Event> {
    local_addr: A,
    /// Dropping it (the accept loop polls the other end) stops the accept loop.
    wake: Option<WakeSocket>,
    accept: Option<JoinHandle<()>>,
    registry: Arc<Registry<C, E>>,
}

impl<A: std::fmt::Debug, C, E> std::fmt::Debug for Server<A, C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("accepted", &self.accepted())
            .field("active", &self.active())
            .finish()
    }
}

/// Accept connections on `listener` (a [`TcpListener`](std::net::TcpListener), a
/// [`UnixListener`](std::os::unix::net::UnixListener) or any [`BlockingListener`]) until
/// [`Server::shutdown`], running each on its own driver thread: `make_machine(peer)` builds its
/// machine, `on_connection(peer)` its [`Session`], and `settings` (cloned per connection) its
/// options, which are applied to each accepted stream. The listener is switched to
/// non-blocking mode; accepted streams are blocking.
pub fn serve<L, M, MK, OC, H>(
    listener: L,
    settings: Settings<M::Command>,
    make_machine: MK,
    on_connection: OC,
) -> io::Result<Server<L::Addr, M::Command, M::Event>>
where
    L: BlockingListener,
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    MK: FnMut(L::Addr) -> M + Send + 'static,
    OC: FnMut(L::Addr) -> H + Send + 'static,
    H: Session<M, L::Addr>,
{
    serve_as(listener, |addr| addr, settings, make_machine, on_connection)
}

/// [`serve`], with the listener's addresses converted by `to_addr` before anyone sees them (so
/// [`serve_spec`](crate::serve_spec) serves TCP and Unix as one [`Addr`](crate::Addr) type).
pub(crate) fn serve_as<L, A, M, MK, OC, H>(
    listener: L,
    to_addr: fn(L::Addr) -> A,
    settings: Settings<M::Command>,
    mut make_machine: MK,
    mut on_connection: OC,
) -> io::Result<Server<A, M::Command, M::Event>>
where
    L: BlockingListener,
    A: Clone + Send + 'static,
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    M::Event: Send + 'static,
    MK: FnMut(A) -> M + Send + 'static,
    OC: FnMut(A) -> H + Send + 'static,
    H: Session<M, A>,
{
    let local_addr = to_addr(listener.local_addr()?);
    listener.set_nonblocking(true)?;
    let (waiting, wake) = wake_pair()?;
    let registry = Arc::new(Registry::default());
    let accept = {
        let registry = registry.clone();
        spawn_named("switchboard-accept", move || {
            let mut pause = None;
            loop {
                if !wait_for_accept(&listener, &waiting, pause.take()) {
                    return;
                }
                let (stream, peer) = match listener.accept() {
                    Ok((stream, peer)) => (stream, to_addr(peer)),
                    // Nothing waiting after all (another process took it, or the peer gave up).
                    Err(e) if is_transient(&e) => continue,
                    Err(_) => {
                        // Out of descriptors or memory: back off instead of spinning; connections
                        // that end free what the next accept needs.
                        pause = Some(BACKOFF);
                        continue;
                    }
                };
                if settings.max_connections.is_some_and(|max| lock(&registry.handles).len() >= max) {
                    // Over the limit: closed before a byte is read, so the peer sees EOF at
                    // once, and the process never runs out of threads or memory for it.
                    registry.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
                let id = registry.accepted.fetch_add(1, Ordering::Relaxed);
                // Some systems (the BSDs) pass the listener's non-blocking mode on.
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let Ok(core) = StreamCore::new(stream, settings.clone()) else { continue };
                let machine = make_machine(peer.clone());
                let mut session = on_connection(peer.clone());
                let handle = core.link.handle();
                let source = core.link.weak_source(&handle);
                handle.set_id(id);
                let (signals, signalled) = mpsc::channel();
                lock(&registry.handles).insert(id, Live { handle, signals });
                let conn_registry = registry.clone();
                let spawned = spawn_named("switchboard-conn", move || {
                    let result = core.run(machine, source, Some(signalled), &mut |n, c| {
                        if let Some(n) = n {
                            session.on_notice(n, c)
                        }
                        Ok(())
                    });
                    let live = lock(&conn_registry.handles).remove(&id);
                    drop(live);
                    session.on_finished(peer, result);
                    // Detach: nothing is left to wait for, and a finished thread that nobody
                    // joins would keep its stack.
                    drop(lock(&conn_registry.threads).remove(&id));
                });
                match spawned {
                    Ok(thread) => {
                        let mut threads = lock(&registry.threads);
                        // One that ended before it was listed here could not take itself out.
                        if !thread.is_finished() {
                            threads.insert(id, thread);
                        }
                    }
                    Err(_) => drop(lock(&registry.handles).remove(&id)),
                }
            }
        })?
    };
    Ok(Server { local_addr, wake: Some(wake), accept: Some(accept), registry })
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted)
}

/// How long the accept loop rests after an accept failed for want of resources.
const BACKOFF: Duration = Duration::from_millis(20);

/// The accept loop's stop signal: a connected socket pair. The loop polls one end; the server
/// writes a byte to the other and drops it.
#[cfg(unix)]
type WakeSocket = std::os::unix::net::UnixStream;
#[cfg(not(unix))]
type WakeSocket = std::net::TcpStream;

#[cfg(unix)]
fn wake_pair() -> io::Result<(WakeSocket, WakeSocket)> {
    WakeSocket::pair()
}

/// Windows has no socketpair: a loopback TCP connection stands in for one.
#[cfg(not(unix))]
fn wake_pair() -> io::Result<(WakeSocket, WakeSocket)> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let wake = WakeSocket::connect(listener.local_addr()?)?;
    loop {
        // Take our own connection, not one another local process raced in.
        let (waiting, from) = listener.accept()?;
        if from == wake.local_addr()? {
            return Ok((waiting, wake));
        }
    }
}

/// Wait until `listener` may have a connection (`true`) or the server stops (`false`). With a
/// `pause`, wait that long for the stop only (after a failed accept).
fn wait_for_accept<L: BlockingListener>(listener: &L, waiting: &WakeSocket, pause: Option<Duration>) -> bool {
    let timeout = pause.map(|d| Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ });
    let mut fds = [PollFd::new(waiting, PollFlags::IN), PollFd::new(listener, PollFlags::IN)];
    let watched = if pause.is_some() { 1 } else { 2 };
    loop {
        match poll(&mut fds[..watched], timeout.as_ref()) {
            Ok(_) => break,
            // A signal: poll again (a pause may then last a little longer; it is only a rest).
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                // Out of memory for the poll itself: rest, then let accept decide.
                std::thread::sleep(BACKOFF);
                break;
            }
        }
    }
    // Any news on the stop socket (the byte, or the hang-up) means stop.
    fds[0].revents().is_empty()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking session must not take the server down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<A: Clone, C, E> Server<A, C, E> {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> A {
        self.local_addr.clone()
    }
}

impl<A, C, E> Server<A, C, E> {
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.registry.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because [`Settings::max_connections`] were being served.
    pub fn refused(&self) -> u64 {
        self.registry.refused.load(Ordering::Relaxed)
    }

    /// Connections still running.
    pub fn active(&self) -> usize {
        lock(&self.registry.handles).len()
    }

    /// A handle to the live connection with this id ([`Control::id`]), to send it commands
    /// from anywhere: the seed's `broker.f(id)`. `None` once that connection has ended (or for
    /// an id never given out). Holding the handle does not keep the connection from closing by
    /// [`Server::close`] or [`Server::shutdown`].
    pub fn connection(&self, id: u64) -> Option<Handle<C>> {
        lock(&self.registry.handles).get(&id).map(|live| live.handle.clone())
    }

    /// Hand `event` to the session of the connection with this id as if its machine had
    /// reported it (the seed's `broker.signal(id, v)`): it arrives on that connection's driver
    /// thread as a [`Notice::Event`], after what the driver is handling now, without passing
    /// through the machine. Never blocks. `false` when no live connection has that id; an
    /// event signalled to a connection that ends first is dropped.
    pub fn signal(&self, id: u64, event: E) -> bool {
        let handles = lock(&self.registry.handles);
        let Some(live) = handles.get(&id) else { return false };
        if live.signals.send(event).is_err() {
            return false;
        }
        live.handle.wake();
        true
    }

    /// Ask the connection with this id to close gracefully, after the commands already sent to
    /// it (the seed's `broker.close(id)`, as [`Handle::close`]). Never blocks. `false` when no
    /// live connection has that id. The connection counts as [active](Server::active) until its
    /// driver has finished.
    pub fn close(&self, id: u64) -> bool {
        match lock(&self.registry.handles).get(&id) {
            Some(live) => {
                live.handle.close();
                true
            }
            None => false,
        }
    }

    /// Stop accepting, close every connection gracefully (each machine flushes what it
    /// accepted), and wait for all of them.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        if let Some(mut wake) = self.wake.take() {
            // The byte wakes the poll; should the write fail, closing the socket hangs the
            // other end up, which wakes it too.
            let _ = wake.write(&[1]);
        }
        let _ = accept.join();
        let handles = std::mem::take(&mut *lock(&self.registry.handles));
        // Close explicitly: handles given out by `connection` may still be alive.
        for live in handles.values() {
            live.handle.close();
        }
        drop(handles);
        let threads = std::mem::take(&mut *lock(&self.registry.threads));
        for thread in threads.into_values() {
            let _ = thread.join();
        }
    }
}

impl<A, C, E> Drop for Server<A, C, E> {
    fn drop(&mut self) {
        self.stop_all();
    }
}
