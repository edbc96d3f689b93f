//! The accept loop: one stream driver per accepted connection, and a graceful shutdown.

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use switchboard_proto::Machine;

use crate::handle::{Control, Notice, Settings};
use crate::stream::{spawn_named, StreamCore};
use crate::DriverError;

/// The application side of one served connection: it sees every notice on that connection's
/// driver thread, and its outcome. Any `FnMut(Notice, &mut Control)` closure is a session.
pub trait Session<M: Machine>: Send + 'static {
    /// A notice from the connection's machine; queue replies through `control`.
    fn on_notice(&mut self, notice: Notice<M::Event, M::Error>, control: &mut Control<M::Command>);

    /// The connection ended with this result (after the socket was shut down).
    fn on_finished(&mut self, peer: SocketAddr, result: Result<(), DriverError<M::Error>>) {
        let _ = (peer, result);
    }
}

impl<M, F> Session<M> for F
where
    M: Machine,
    F: FnMut(Notice<M::Event, M::Error>, &mut Control<M::Command>) + Send + 'static,
{
    fn on_notice(&mut self, notice: Notice<M::Event, M::Error>, control: &mut Control<M::Command>) {
        self(notice, control)
    }
}

#[derive(Default)]
struct Registry {
    /// Each live connection's handle, type-erased: dropping it asks that connection to close.
    handles: Mutex<BTreeMap<u64, Box<dyn Any + Send>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
}

/// A running accept loop. [`Server::shutdown`] (or dropping it) stops accepting, closes every
/// connection gracefully and waits for them.
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("accepted", &self.accepted())
            .field("active", &self.active())
            .finish()
    }
}

/// Accept connections on `listener` until [`Server::shutdown`], running each on its own driver
/// thread: `make_machine(peer)` builds its machine, `on_connection(peer)` its [`Session`], and
/// `settings` (cloned per connection) its options, which are applied to each accepted stream.
pub fn serve<M, MK, OC, H>(
    listener: TcpListener,
    settings: Settings<M::Command>,
    mut make_machine: MK,
    mut on_connection: OC,
) -> io::Result<Server>
where
    M: Machine + Send + 'static,
    M::Command: Send + 'static,
    MK: FnMut(SocketAddr) -> M + Send + 'static,
    OC: FnMut(SocketAddr) -> H + Send + 'static,
    H: Session<M>,
{
    let local_addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let registry = Arc::new(Registry::default());
    let accept = {
        let (stop, registry) = (stop.clone(), registry.clone());
        spawn_named("switchboard-accept", move || loop {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => continue,
                Err(_) => {
                    // Out of descriptors or memory: back off instead of spinning; connections
                    // that end free what the next accept needs.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let id = registry.accepted.fetch_add(1, Ordering::Relaxed);
            let Ok(core) = StreamCore::new(stream, settings.clone()) else { continue };
            let machine = make_machine(peer);
            let mut session = on_connection(peer);
            let handle = core.link.handle();
            let source = core.link.weak_source(&handle);
            lock(&registry.handles).insert(id, Box::new(handle));
            let conn_registry = registry.clone();
            let spawned = spawn_named("switchboard-conn", move || {
                let result = core.run(machine, source, |n, c| session.on_notice(n, c));
                let handle = lock(&conn_registry.handles).remove(&id);
                drop(handle);
                session.on_finished(peer, result);
            });
            let mut threads = lock(&registry.threads);
            threads.retain(|t| !t.is_finished());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(_) => drop(lock(&registry.handles).remove(&id)),
            }
        })?
    };
    Ok(Server { local_addr, stop, accept: Some(accept), registry })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking session must not take the server down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.registry.accepted.load(Ordering::Relaxed)
    }

    /// Connections still running.
    pub fn active(&self) -> usize {
        lock(&self.registry.handles).len()
    }

    /// Stop accepting, close every connection gracefully (each machine flushes what it
    /// accepted), and wait for all of them.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        // A blocking accept wakes only for a connection: make one.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = accept.join();
        let handles = std::mem::take(&mut *lock(&self.registry.handles));
        drop(handles);
        let threads = std::mem::take(&mut *lock(&self.registry.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_all();
    }
}
