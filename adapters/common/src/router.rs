//! The router hub on any runtime (`WIRE.md` §5): one [`MessageConnection`] per client, every
//! one of them feeding the same [`Hub`], and the hub's decisions carried out on the clients'
//! connections.
//!
//! ```text
//!   client A ──► driver A ──► task A ──┐                     ┌──► commands of B ──► driver B ──► client B
//!   client B ──► driver B ──► task B ──┼──► lock(Hub) ──► actions ──► commands of C ──► …
//!   client C ──► driver C ──► task C ──┘   (one decision      └──► Close / Joined / Left
//!                                           at a time)
//! ```
//!
//! * **Order.** Each task hands its connection's events to the hub under one lock and queues
//!   the resulting commands on the target connections before letting go of it, so every client
//!   receives messages in the order the hub decided them (a `connected` before the first `op`
//!   of the client it announces).
//! * **Backpressure without reordering.** Commands are queued past a target's command cap
//!   rather than waited for under the lock; after the lock is released the task whose input
//!   produced them waits until each target is back under its cap. A client broadcasting faster
//!   than the others read is slowed down to their pace.
//! * **Slow clients are dropped.** A target that stays over its cap for
//!   [`HubSettings::slow_after`] is dropped at once (its driver stopped, the socket closed,
//!   what was queued for it discarded; the others see it leave with reason `"slow"`), so one
//!   client that stops reading cannot stall everyone else or pin its connection open.
//! * **Leaving.** A connection's end reaches the hub with its reason: `"closed"` for a clean
//!   end, `"timeout"` when the heartbeat's `dead_after` ran out, `"slow"` as above, otherwise
//!   the error's text.
//!
//! Clients connect with [`connect`] (a [`RouterClient`] machine on the generic driver), or any
//! implementation of §5.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use switchboard_proto::message::{self, ErrorPayload, MessageConfig, MessageConnection};
use switchboard_proto::router::{ClientConfig, ClientDoc, ConnId, Hub, HubAction, HubInput, RouterClient, RouterError};
use switchboard_proto::stage::FramingConfig;
use switchboard_proto::{Input, Machine, Output};

use crate::async_driver::{Connection, DriverConfig, DriverError};
use crate::ext::{accept_each, drive_tracked};
use crate::registry::lock;
use crate::runtime::{Listener, Runtime, Timer};
use crate::{Connections, RuntimeExt, SocketOptions};

/// How a hub serves its clients: their connections' transport, message layer and driver.
///
/// The hub's own rules (client limit, unique policy, token) are the [`Hub`]'s, given to
/// [`serve_hub`] with it: there is one place to set them, so none can be set here and then be
/// ignored (as a `hub` field once was):
///
/// ```compile_fail
/// use switchboard_rt::router::HubSettings;
/// use switchboard_proto::router::HubConfig;
/// let settings = HubSettings { hub: HubConfig::default().with_max_clients(1), ..HubSettings::default() };
/// ```
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Each client connection's message layer: limits and heartbeats (`interval`, `dead_after`).
    /// Its error payload is always raw (§5's are BSON documents).
    pub message: MessageConfig,
    /// Options for every accepted socket.
    pub options: SocketOptions,
    /// Each client connection's driver. Its `commands` cap is what a client may have queued
    /// towards it before the clients sending to it wait.
    pub driver: DriverConfig,
    /// How long a client may stay over its command cap before it is dropped as slow.
    pub slow_after: Duration,
    /// Joins and leaves kept for [`RouterHub::next_event`] until taken (default 1024); past
    /// that the oldest go, so an unwatched hub's memory does not grow with its churn.
    pub events: usize,
    /// The most client connections open at once, welcomed or not (default 10 000); one
    /// accepted past it is closed at once, before a byte is read. With the hub's
    /// `hello_timeout` this bounds what connections that never speak can hold.
    pub max_connections: usize,
}

impl Default for HubSettings {
    /// Frames up to 1 MiB each way; a heartbeat
    /// after 5 s of silence and a client silent for 15 s dropped; 4096 commands queued per
    /// client; a client over that for 5 s dropped as slow.
    fn default() -> Self {
        HubSettings {
            message: message_config(),
            options: SocketOptions::new().nodelay(true),
            driver: DriverConfig { commands: 4096, ..DriverConfig::default() },
            slow_after: Duration::from_secs(5),
            events: 1024,
            max_connections: 10_000,
        }
    }
}

/// The message layer the router rides on by default: 1 MiB frames, raw (BSON) error payloads,
/// a heartbeat after 5 s of silence, a peer silent for 15 s dropped.
pub fn message_config() -> MessageConfig {
    MessageConfig::new(FramingConfig::packet(1 << 20, 0))
        .with_heartbeat(Some(Duration::from_secs(5)), Some(Duration::from_secs(15)))
        .with_error_payload(ErrorPayload::Raw)
}

/// What the hub tells the application hosting it.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A client was welcomed.
    Joined(ClientDoc),
    /// A client left (or was replaced, or dropped), and why.
    Left {
        /// Its record as it was.
        client: ClientDoc,
        /// `"bye"` (or its own reason), `"replaced"`, `"closed"`, `"timeout"`, `"slow"`, …
        reason: String,
    },
}

/// A running hub: its clients, its connections, its joins and leaves. Clones share it.
#[derive(Clone)]
pub struct RouterHub {
    shared: Arc<Shared>,
}

struct Shared {
    hub: Mutex<Hub>,
    connections: Connections<MessageConnection>,
    /// Connections dropped for staying over their cap: they leave with reason `"slow"`, and
    /// nothing more is queued for them.
    slow: Mutex<BTreeSet<ConnId>>,
    /// Joins and leaves for the application, at most `HubSettings::events` of them: when
    /// nobody takes them the oldest go, so a hub left running unwatched does not grow.
    events_tx: async_channel::Sender<HubEvent>,
    events_rx: async_channel::Receiver<HubEvent>,
    events_dropped: std::sync::atomic::AtomicU64,
    slow_after: Duration,
    /// When the hub asked to be woken last (a hello deadline), for the clock task.
    deadline: Mutex<Option<switchboard_proto::Instant>>,
    /// Connections closed at once because `max_connections` were open.
    refused_connections: std::sync::atomic::AtomicU64,
    /// Rung when that deadline moves earlier, so the clock task looks again.
    deadline_moved: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

impl Shared {
    /// Record a join or leave; when the queue is full, the oldest goes.
    fn note(&self, event: HubEvent) {
        let mut event = event;
        loop {
            match self.events_tx.try_send(event) {
                Ok(()) => return,
                Err(async_channel::TrySendError::Full(back)) => {
                    event = back;
                    if self.events_rx.try_recv().is_ok() {
                        self.events_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(async_channel::TrySendError::Closed(_)) => return,
            }
        }
    }
}

impl RouterHub {
    /// The welcomed clients, in the order they joined.
    pub fn clients(&self) -> Vec<ClientDoc> {
        self.shared.hub().clients().cloned().collect()
    }

    /// How many clients are welcomed.
    pub fn len(&self) -> usize {
        self.shared.hub().len()
    }

    /// Whether no client is welcomed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client connections, by id (welcomed or not yet).
    pub fn connections(&self) -> &Connections<MessageConnection> {
        &self.shared.connections
    }

    /// The next join or leave, waiting for one. They queue until taken, at most
    /// [`HubSettings::events`] of them (then the oldest go: see
    /// [`events_dropped`](Self::events_dropped)).
    pub async fn next_event(&self) -> Option<HubEvent> {
        self.shared.events_rx.recv().await.ok()
    }

    /// The next join or leave, if one is waiting.
    pub fn try_event(&self) -> Option<HubEvent> {
        self.shared.events_rx.try_recv().ok()
    }

    /// Connections closed at once because [`HubSettings::max_connections`] were open.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused_connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Joins and leaves dropped because [`HubSettings::events`] were waiting untaken.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events_dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::fmt::Debug for RouterHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHub").field("clients", &self.len()).finish()
    }
}

/// Serve `hub` on `listener`: the handle to the running hub, and the accept loop to spawn (it
/// runs until it fails; each client runs on tasks of its own). `InvalidInput` if the message
/// configuration cannot carry messages (the caller's mistake, found before any client comes).
pub fn serve_hub<R, L>(
    rt: R,
    listener: L,
    hub: Hub,
    settings: HubSettings,
) -> io::Result<(RouterHub, impl Future<Output = io::Result<()>> + Send)>
where
    R: Runtime,
    L: Listener<Addr = SocketAddr>,
{
    let message = settings.message.with_error_payload(ErrorPayload::Raw);
    MessageConnection::new(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (events_tx, events_rx) = async_channel::bounded(settings.events.max(1));
    let shared = Arc::new(Shared {
        hub: Mutex::new(hub),
        connections: Connections::new(),
        slow: Mutex::new(BTreeSet::new()),
        events_tx,
        events_rx,
        events_dropped: std::sync::atomic::AtomicU64::new(0),
        deadline: Mutex::new(None),
        refused_connections: std::sync::atomic::AtomicU64::new(0),
        deadline_moved: async_channel::bounded(1),
        slow_after: settings.slow_after,
    });
    let handle = RouterHub { shared: shared.clone() };
    rt.spawn(hub_clock(rt.clone(), Arc::downgrade(&shared)));
    let accept = accept_each(rt.clone(), listener, settings.options.clone(), move |stream, peer: SocketAddr| {
        if shared.connections.len() >= settings.max_connections {
            // Dropped unread: the peer sees the connection close.
            shared.refused_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            return;
        }
        // Never refused: the same configuration was accepted above.
        let Ok(machine) = MessageConnection::new(message) else { return };
        let (id, connection) = drive_tracked(&rt, &shared.connections, machine, stream, &settings.driver);
        rt.spawn(serve_client(rt.clone(), shared.clone(), id, peer, connection));
    });
    Ok((handle, accept))
}

/// Wakes the hub at the deadline it asked for (a connection's hello is overdue), for as long
/// as the hub is served: sleeps until it, or until it moves earlier, and looks at least every
/// second (so the task notices when the hub is gone).
async fn hub_clock<R: Runtime>(rt: R, shared: std::sync::Weak<Shared>) {
    loop {
        let Some(hub) = shared.upgrade() else { return };
        let next_look = rt.now().saturating_add(Duration::from_secs(1));
        let at = lock(&hub.deadline).map_or(next_look, |at| at.min(next_look));
        let moved = hub.deadline_moved.1.clone();
        drop(hub);
        let mut timer = rt.timer(at);
        let mut moved = pin!(moved.recv());
        std::future::poll_fn(|cx| {
            if moved.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            timer.poll_fire(cx)
        })
        .await;
        let Some(hub) = shared.upgrade() else { return };
        if lock(&hub.deadline).is_some_and(|due| rt.now() >= due) {
            hub.apply(&rt, None).await;
        }
    }
}

/// One client connection's life at the hub.
async fn serve_client<R: Runtime>(
    rt: R,
    shared: Arc<Shared>,
    id: ConnId,
    peer: SocketAddr,
    connection: Connection<MessageConnection>,
) {
    shared.apply(&rt, Some(HubInput::Opened { conn: id, ip: peer.ip() })).await;
    while let Some(delivery) = connection.recv().await {
        // A refused command is the hub's own (a send to a connection already ending): no news.
        if let Ok(event) = delivery {
            shared.apply(&rt, Some(HubInput::Message { conn: id, event })).await;
        }
    }
    let slow = shared.slow_set().remove(&id);
    let reason = match connection.join().await {
        _ if slow => "slow".to_string(),
        Ok(()) => "closed".to_string(),
        Err(DriverError::Machine(message::Error::PeerDead { .. })) => "timeout".to_string(),
        Err(e) => e.to_string(),
    };
    shared.apply(&rt, Some(HubInput::Closed { conn: id, reason })).await;
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        lock(&self.hub)
    }

    fn slow_set(&self) -> MutexGuard<'_, BTreeSet<ConnId>> {
        lock(&self.slow)
    }

    /// Drop a client that stayed over its cap: no more commands for it, its driver stopped
    /// (a graceful close would wait behind what it does not read).
    fn drop_slow(&self, conn: ConnId) {
        self.slow_set().insert(conn);
        self.connections.abort(conn);
    }

    /// Give the hub one input and carry out what it decides; then wait for every connection
    /// this queued commands on to be back under its cap (dropping the ones that stay over).
    async fn apply<R: Runtime>(&self, rt: &R, input: Option<HubInput>) {
        let touched = self.decide(rt.now(), input);
        for conn in touched {
            let Some(commands) = self.connections.get(conn) else { continue };
            let deadline = rt.now().saturating_add(self.slow_after);
            let mut timer = rt.timer(deadline);
            let mut room = pin!(commands.room());
            let in_time = std::future::poll_fn(|cx| {
                if room.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                timer.poll_fire(cx).map(|()| false)
            })
            .await;
            if !in_time {
                self.drop_slow(conn);
            }
        }
    }

    /// The hub's decision on `input`, carried out under its lock so that every connection gets
    /// its commands in decision order. Returns the connections commands were queued on.
    /// `None`: only time passed (the hub's deadline came).
    fn decide(&self, now: switchboard_proto::Instant, input: Option<HubInput>) -> BTreeSet<ConnId> {
        let mut touched = BTreeSet::new();
        let mut hub = self.hub();
        let input = match input {
            Some(input) => Input::Command(input),
            None => Input::Timeout,
        };
        // Refused only for an input the glue got wrong (an id opened twice or never): nothing
        // to carry out.
        if hub.handle_input(now, input).is_err() {
            return touched;
        }
        let slow = self.slow_set().clone();
        loop {
            let action = match hub.poll_output(now) {
                Output::Event(action) => action,
                Output::Timeout(deadline) => {
                    let mut known = lock(&self.deadline);
                    if deadline.is_some_and(|at| known.is_none_or(|k| at < k)) {
                        let _ = self.deadline_moved.0.try_send(());
                    }
                    *known = deadline;
                    break;
                }
                _ => break,
            };
            match action {
                HubAction::Send { conn, .. } if slow.contains(&conn) => {}
                HubAction::Send { conn, command } => {
                    if let Some(commands) = self.connections.get(conn) {
                        if commands.push(command).is_ok() {
                            touched.insert(conn);
                        }
                    }
                }
                HubAction::Close { conn } => {
                    self.connections.close(conn);
                }
                HubAction::Joined(client) => self.note(HubEvent::Joined(client)),
                HubAction::Left { client, reason } => self.note(HubEvent::Left { client, reason }),
            }
        }
        touched
    }
}

/// Connect a [`RouterClient`] to the hub at `addr` on the generic async driver.
pub async fn connect<R: Runtime>(
    rt: R,
    addr: SocketAddr,
    config: ClientConfig,
    options: SocketOptions,
    driver: DriverConfig,
) -> Result<Connection<RouterClient>, ConnectError> {
    let client = RouterClient::new(config).map_err(ConnectError::Config)?;
    Ok(rt.connect_with(addr, options, driver, client).await?)
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The client configuration was refused (the caller's).
    #[error("router client configuration: {0}")]
    Config(RouterError),
    /// The connection could not be made.
    #[error("connecting to the hub: {0}")]
    Io(#[from] io::Error),
}
