//! Served connections by id: the seed broker's `broker.f(id)` and `broker.close(id)` for the
//! async adapters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_proto::Machine;

use crate::async_driver::{Commands, Connection, Delivery, Drivable, WeakCommands};

/// Served connections by id: the seed broker's `broker.f(id)` ([`get`](Self::get)) and
/// `broker.close(id)` ([`close`](Self::close)) for the async adapters.
/// [`RuntimeExt::serve_tracked`](crate::RuntimeExt::serve_tracked) fills it; anyone holding a
/// clone can reach a connection by its id. Ids start at 0, count up in accept order and are
/// never reused, also when one registry serves several listeners.
///
/// **What it holds.** A connection of the channel driver closes gracefully once every
/// [`Commands`] (and its [`Connection`](crate::Connection)) is dropped. The registry does not
/// change that: it holds a *weak* sender per connection, so a handler that returns and drops
/// its connection still closes it, and a registry never keeps a connection open on its own.
/// [`get`](Self::get) upgrades the weak sender; it gives `None` once that connection is closing
/// for want of senders, even while its driver is still flushing.
///
/// **When an entry goes.** When that connection's driver finishes (or its task is dropped),
/// not when it is asked to close: until then it counts in [`len`](Self::len), like the blocking
/// server's `Server::active`.
///
/// [`serve_direct`](crate::RuntimeExt::serve_direct) is not covered: each of its connections is
/// a [`Direct`](crate::Direct) owned by one task, with no sender anyone else could hold.
///
/// ```
/// use switchboard_rt::Connections;
/// use switchboard_proto::stage::PacketConnection;
///
/// let connections = Connections::<PacketConnection>::new();
/// assert!(connections.is_empty());
/// assert!(connections.get(0).is_none());
/// assert!(!connections.close(0), "no connection has id 0 yet");
/// ```
pub struct Connections<M: Machine> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Machine> {
    live: Mutex<BTreeMap<u64, Entry<M>>>,
    next: AtomicU64,
}

/// One live connection: weak ways to its command channel and to its event stream, and the
/// switch that stops its driver at once.
struct Entry<M: Machine> {
    commands: WeakCommands<M>,
    signals: async_channel::WeakSender<Delivery<M>>,
    abort: async_channel::Sender<()>,
}

impl<M: Machine> Clone for Connections<M> {
    fn clone(&self) -> Self {
        Connections { inner: self.inner.clone() }
    }
}

impl<M: Machine> Default for Connections<M> {
    fn default() -> Self {
        Connections { inner: Arc::new(Inner { live: Mutex::default(), next: AtomicU64::new(0) }) }
    }
}

impl<M: Machine> std::fmt::Debug for Connections<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("live", &self.len()).field("accepted", &self.accepted()).finish()
    }
}

impl<M: Machine> Connections<M> {
    /// An empty registry; pass a clone to [`serve_tracked`](crate::RuntimeExt::serve_tracked).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sender to the connection with this id, to queue commands from anywhere (the seed's
    /// `broker.f(id)`). `None` for an id never given out, once its driver has finished, or once
    /// every other sender was dropped (the connection is closing). Holding it keeps the
    /// connection open, as any [`Commands`] does.
    pub fn get(&self, id: u64) -> Option<Commands<M>> {
        self.live().get(&id)?.commands.upgrade()
    }

    /// Connections whose driver has not finished yet (closing ones included).
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// Whether no connection is running.
    pub fn is_empty(&self) -> bool {
        self.live().is_empty()
    }

    /// Ids given out so far: the next connection gets this one.
    pub fn accepted(&self) -> u64 {
        self.inner.next.load(Ordering::Relaxed)
    }

    /// Register a new connection; the id it got, the guard that removes it again when the
    /// driver is done with it, and what [`abort`](Self::abort) rings (its driver's task stops
    /// when it does).
    pub(crate) fn insert(&self, connection: &Connection<M>) -> (u64, Deregister<M>, async_channel::Receiver<()>) {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (abort, aborted) = async_channel::bounded(1);
        let entry = Entry { commands: connection.commands().downgrade(), signals: connection.signals(), abort };
        self.live().insert(id, entry);
        (id, Deregister { inner: self.inner.clone(), id }, aborted)
    }

    /// Stop the connection with this id at once: its driver is dropped, the socket closed, and
    /// whatever was queued for it discarded; its [`Connection`](crate::Connection) then sees the
    /// end and its result is `Cancelled`. For a peer that stopped reading, which
    /// [`close`](Self::close) would wait behind. Never waits. `false` when no running connection
    /// has that id.
    pub fn abort(&self, id: u64) -> bool {
        match self.live().get(&id) {
            Some(entry) => {
                let _ = entry.abort.try_send(());
                true
            }
            None => false,
        }
    }

    /// Put `event` into the event stream of the connection with this id, as if its machine
    /// had reported it (the seed's `broker.signal(id, v)`: the handler reading that
    /// connection's events handles it like one that arrived). It comes after the events
    /// already delivered and does not pass through the machine. `false` when no running
    /// connection has that id or nobody reads its events any more.
    pub fn signal(&self, id: u64, event: M::Event) -> bool {
        let Some(events) = self.live().get(&id).and_then(|entry| entry.signals.upgrade()) else {
            return false;
        };
        events.try_send(Ok(event)).is_ok()
    }

    fn live(&self) -> MutexGuard<'_, BTreeMap<u64, Entry<M>>> {
        lock(&self.inner.live)
    }
}

impl<M: Drivable> Connections<M> {
    /// Ask the connection with this id to close gracefully, after the commands already queued
    /// for it (the seed's `broker.close(id)`, as [`Commands::close`]). Never waits. `false` when
    /// no running connection has that id; `true` means it is closing (it may already have been,
    /// and stays in [`len`](Self::len) until its driver has finished).
    pub fn close(&self, id: u64) -> bool {
        let live = self.live();
        let Some(entry) = live.get(&id) else { return false };
        if let Some(commands) = entry.commands.upgrade() {
            // Refused only by a driver that stopped taking commands: it is finishing anyway.
            commands.close();
        }
        // Else every sender is gone, and the machine has been fed `Input::Close` already.
        true
    }
}

/// Removes one connection from its registry when dropped: held by that connection's driver
/// task, so the entry goes when the driver finishes or its task is dropped.
pub(crate) struct Deregister<M: Machine> {
    inner: Arc<Inner<M>>,
    id: u64,
}

impl<M: Machine> Drop for Deregister<M> {
    fn drop(&mut self) {
        let weak = lock(&self.inner.live).remove(&self.id);
        drop(weak);
    }
}

/// Lock `m`, poisoned or not: nothing here panics while holding a lock, and a poisoned map or
/// hub is still a consistent one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
