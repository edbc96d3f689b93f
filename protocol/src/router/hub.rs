//! The hub: one directory of clients over many message connections (WIRE.md §5).
//!
//! The hub owns no sockets and no [`MessageConnection`](crate::message::MessageConnection)s.
//! The glue runs one message connection per accepted stream (with
//! [`ErrorPayload::Raw`](crate::message::ErrorPayload::Raw), so the hub's error payloads are
//! BSON) and feeds the hub what happens as [`HubInput`]s; the hub answers with [`HubAction`]s:
//! commands to hand to a connection, connections to close, and joins and leaves to report.
//!
//! # States of one connection, and transitions
//!
//! | state        | on                                                        | does                                                                 | next         |
//! |--------------|-----------------------------------------------------------|----------------------------------------------------------------------|--------------|
//! | —            | `Opened { conn, ip }`                                     | remembers `ip`                                                       | AwaitingHello |
//! | AwaitingHello | `hello` request, accepted                                | `Respond(welcome)`; others get `connected`; `Joined`                 | Joined       |
//! | AwaitingHello | `hello` with a taken unique, policy `replace`, accepted  | old: `closing{replaced}` + `Close`; others: `disconnected{replaced}`; `Left`; then as above | Joined |
//! | AwaitingHello | `hello` with a wrong token / verifier `Err`              | `FailPayload(refused unauthorized)` + `Close`                        | Gone         |
//! | AwaitingHello | `hello` with a taken unique, policy `reject`             | `refused unique_in_use` + `Close`                                    | Gone         |
//! | AwaitingHello | `hello` while `max_clients` are joined (no replacement)  | `refused full` + `Close`                                             | Gone         |
//! | AwaitingHello | a request that is not a valid hello                      | `refused bad_request` (the request's id) + `Close`                   | Gone         |
//! | AwaitingHello | a notification or error frame                            | `refused bad_request` (id 0) + `Close`                               | Gone         |
//! | AwaitingHello | `hello_timeout` passes without a hello                   | `refused bad_request` (id 0) + `Close`                               | Gone         |
//! | Joined       | `broadcast` / `at` / `omit`                               | `Notify(op)` to the addressed clients, in join order                 | Joined       |
//! | Joined       | `datastore`                                               | stored on its record; `Notify(datastore)` to the others              | Joined       |
//! | Joined       | `bye`                                                     | `Close`; the reason is kept for its `Closed`                         | Leaving      |
//! | Joined       | a malformed notification, a request or an error frame     | `refused bad_request` (id 0 / the request's id) + `Close`            | Leaving      |
//! | Joined       | another client's `hello` takes its unique (`replace`)     | as in the replace row above                                          | Gone         |
//! | Joined       | `Closed { reason }`                                       | others get `disconnected{reason}`; `Left`                            | —            |
//! | Leaving      | `Closed`                                                  | others get `disconnected{kept reason}`; `Left`                       | —            |
//! | Gone         | `Closed`                                                  | forgotten                                                            | —            |
//! | any          | `Heartbeat`                                               | nothing (the message connection keeps the heartbeats)                |              |
//! | Leaving/Gone | any message                                               | dropped: the hub already closed the connection                      |              |
//!
//! A *Leaving* client has been told to close but its `Closed` has not come yet: it still holds
//! its unique and still appears in `welcome` lists (the others learn of its end from the
//! `disconnected` sent at `Closed`), but it is sent nothing more.
//!
//! Caller misuse — an input for a connection id never opened, or `Opened` twice — is refused
//! with a [`HubError`] and changes nothing. The hub never fails because of what a peer sent:
//! the offending connection is refused and closed, the others go on.
//!
//! Fan-out (`op`, `connected`, `disconnected`, `datastore`) goes to clients in join order.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use core::net::IpAddr;
use core::time::Duration;

use super::doc::{ClientDoc, DocError, FromHub, Hello, RefuseCode, Refused, ToHub, Welcome};
use crate::entropy::Entropy;
use crate::fault::{Blame, Fault};
use crate::machine::{Input, Machine, Output};
use crate::message;
use crate::time::Instant;

/// The glue's name for one client connection; any value unique among open connections.
pub type ConnId = u64;

/// How many fresh uniques the hub draws before giving up on a hello that asked for none (only a
/// broken entropy source collides this often with 64-bit values).
const UNIQUE_ATTEMPTS: usize = 16;

/// What to do when a hello asks for a unique that a joined client holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UniquePolicy {
    /// The newcomer wins: the old session is told `closing{reason:"replaced"}` and closed.
    #[default]
    Replace,
    /// The newcomer is refused with `unique_in_use`.
    Reject,
}

/// How a [`Hub`] admits clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Most clients joined at once (0: no limit).
    pub max_clients: usize,
    /// What a taken unique means.
    pub policy: UniquePolicy,
    /// The token every hello must carry (`None`: none needed).
    pub token: Option<String>,
    /// How long a connection may stay open without a hello: then it is refused
    /// (`bad_request`) and closed, so connections that never speak cannot hold the hub's
    /// resources (`None`: forever).
    pub hello_timeout: Option<Duration>,
}

/// The default [`HubConfig::hello_timeout`].
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { max_clients: 0, policy: UniquePolicy::default(), token: None, hello_timeout: Some(HELLO_TIMEOUT) }
    }
}

impl HubConfig {
    /// No limit, policy `replace`, no token, a hello within [`HELLO_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Set how long a connection may stay without a hello (`None`: forever).
    pub fn with_hello_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// Set the most clients joined at once (0: no limit).
    pub fn with_max_clients(mut self, max_clients: usize) -> Self {
        self.max_clients = max_clients;
        self
    }

    /// Set the policy for taken uniques.
    pub fn with_policy(mut self, policy: UniquePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Require this token in every hello.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// What the glue tells the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubInput {
    /// A client connection was accepted from `ip`.
    Opened {
        /// The glue's id for it.
        conn: ConnId,
        /// The peer's address, the only source of the client's `ip`.
        ip: IpAddr,
    },
    /// The connection's [`MessageConnection`](message::MessageConnection) reported an event.
    Message {
        /// Which connection.
        conn: ConnId,
        /// What it reported.
        event: message::Event,
    },
    /// The connection finished (the client left, the hub closed it, or its message connection
    /// ended; pass `"timeout"` for [`message::Error::PeerDead`]).
    Closed {
        /// Which connection.
        conn: ConnId,
        /// Why, as the others will read it in `disconnected`.
        reason: String,
    },
}

/// What the hub asks of the glue, or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAction {
    /// Hand this command to the connection's message connection.
    Send {
        /// Which connection.
        conn: ConnId,
        /// The command.
        command: message::Command,
    },
    /// Close the connection (its message connection's `Close`: what was sent is flushed first).
    /// Report its end with [`HubInput::Closed`] as usual.
    Close {
        /// Which connection.
        conn: ConnId,
    },
    /// A client joined.
    Joined(ClientDoc),
    /// A joined client left.
    Left {
        /// The client, as last known.
        client: ClientDoc,
        /// Why.
        reason: String,
    },
}

/// The caller fed the hub something inconsistent; the input was refused and nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// An input for a connection id that was never opened (or was already closed).
    #[error("connection {conn} is not open")]
    UnknownConn {
        /// The id.
        conn: ConnId,
    },
    /// `Opened` for a connection id that is open.
    #[error("connection {conn} is already open")]
    AlreadyOpen {
        /// The id.
        conn: ConnId,
    },
    /// Stream, datagram or EOF input: the hub takes [`HubInput`] commands only.
    #[error("the hub takes HubInput commands, not transport input")]
    UnexpectedInput,
}

impl Blame for HubError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

/// The verifier's signature: `Err(reason)` refuses the client as `unauthorized`.
type Verifier = Box<dyn FnMut(&Hello, IpAddr) -> Result<(), String> + Send>;

/// Where one connection stands.
#[derive(Debug)]
enum ConnState {
    AwaitingHello,
    /// Joined, under this join sequence number.
    Joined(u64),
    /// Told to close while joined; still holds its unique until `Closed`.
    Leaving(u64),
    /// Refused or replaced: nothing left but its `Closed`.
    Gone,
}

#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    state: ConnState,
    /// While awaiting the hello: when it is overdue (its entry in `Hub::hello_deadlines`).
    hello_by: Option<Instant>,
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    doc: ClientDoc,
    /// `Some(reason)` once the hub closed it (bye, refusal); reported at its `Closed`.
    leaving: Option<String>,
}

/// The hub machine. See the [module docs](self) for its rules.
pub struct Hub {
    config: HubConfig,
    entropy: Box<dyn Entropy + Send>,
    verifier: Option<Verifier>,
    conns: BTreeMap<ConnId, Conn>,
    /// Joined (and leaving) clients by join sequence number: iteration is join order.
    members: BTreeMap<u64, Member>,
    by_unique: BTreeMap<String, u64>,
    next_seq: u64,
    actions: VecDeque<HubAction>,
    /// When each connection still awaiting its hello is refused, earliest first.
    hello_deadlines: BTreeSet<(Instant, ConnId)>,
}

impl core::fmt::Debug for Hub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("conns", &self.conns)
            .field("members", &self.members)
            .field("queued_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with no clients, drawing assigned uniques from `entropy`.
    pub fn new(config: HubConfig, entropy: Box<dyn Entropy + Send>) -> Self {
        Hub {
            config,
            entropy,
            verifier: None,
            conns: BTreeMap::new(),
            members: BTreeMap::new(),
            by_unique: BTreeMap::new(),
            next_seq: 0,
            actions: VecDeque::new(),
            hello_deadlines: BTreeSet::new(),
        }
    }

    /// Call `verifier` with every hello (after the token check); `Err(reason)` refuses the
    /// client as `unauthorized` with that reason.
    pub fn with_verifier(
        mut self,
        verifier: impl FnMut(&Hello, IpAddr) -> Result<(), String> + Send + 'static,
    ) -> Self {
        self.verifier = Some(Box::new(verifier));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The joined clients (including any the hub is closing), in join order.
    pub fn clients(&self) -> impl Iterator<Item = &ClientDoc> {
        self.members.values().map(|m| &m.doc)
    }

    /// How many clients are joined.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no client is joined.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The joined client holding `unique`.
    pub fn client(&self, unique: &str) -> Option<&ClientDoc> {
        self.by_unique.get(unique).map(|seq| &self.members[seq].doc)
    }

    /// The connection of the joined client holding `unique`.
    pub fn conn_of(&self, unique: &str) -> Option<ConnId> {
        self.by_unique.get(unique).map(|seq| self.members[seq].conn)
    }

    /// How many connections are open (joined or not).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// A connection that got past awaiting its hello (welcomed or refused) has no deadline.
    fn settle_hello(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if !matches!(c.state, ConnState::AwaitingHello) {
            if let Some(at) = c.hello_by.take() {
                self.hello_deadlines.remove(&(at, conn));
            }
        }
    }

    /// Refuse every connection whose hello is overdue at `now`.
    fn on_time(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.hello_deadlines.first() {
            if at > now {
                break;
            }
            self.hello_deadlines.pop_first();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.hello_by = None;
            }
            self.refuse(conn, 0, RefuseCode::BadRequest, "no hello in time");
        }
    }

    fn on_input(&mut self, now: Instant, input: HubInput) -> Result<(), HubError> {
        match input {
            HubInput::Opened { conn, ip } => {
                if self.conns.contains_key(&conn) {
                    return Err(HubError::AlreadyOpen { conn });
                }
                let hello_by = self.config.hello_timeout.map(|t| now.saturating_add(t));
                self.conns.insert(conn, Conn { ip, state: ConnState::AwaitingHello, hello_by });
                if let Some(at) = hello_by {
                    self.hello_deadlines.insert((at, conn));
                }
            }
            HubInput::Message { conn, event } => {
                let state = &self.conns.get(&conn).ok_or(HubError::UnknownConn { conn })?.state;
                match *state {
                    ConnState::AwaitingHello => {
                        self.before_hello(conn, event);
                        self.settle_hello(conn);
                    }
                    ConnState::Joined(seq) => self.after_join(conn, seq, event),
                    ConnState::Leaving(_) | ConnState::Gone => {}
                }
            }
            HubInput::Closed { conn, reason } => {
                let Some(closed) = self.conns.remove(&conn) else {
                    return Err(HubError::UnknownConn { conn });
                };
                if let Some(at) = closed.hello_by {
                    self.hello_deadlines.remove(&(at, conn));
                }
                if let ConnState::Joined(seq) | ConnState::Leaving(seq) = closed.state {
                    self.remove_member(seq, reason);
                }
            }
        }
        Ok(())
    }

    // --- before the hello ----------------------------------------------------------------------

    fn before_hello(&mut self, conn: ConnId, event: message::Event) {
        use message::Event;
        match event {
            Event::Request { id, payload } => match Hello::from_bytes(&payload) {
                Ok(hello) => self.on_hello(conn, id, hello),
                Err(e) => self.refuse(conn, id, RefuseCode::BadRequest, &bad_payload("hello", &e)),
            },
            Event::Heartbeat { .. } => {}
            Event::Notification { .. } => {
                self.refuse(conn, 0, RefuseCode::BadRequest, "hello must come first");
            }
            other => self.on_stray(conn, other),
        }
    }

    fn on_hello(&mut self, conn: ConnId, id: u64, hello: Hello) {
        let ip = self.conns[&conn].ip;
        if let Some(token) = &self.config.token {
            if !hello.token.as_deref().is_some_and(|given| same_secret(given, token)) {
                return self.refuse(conn, id, RefuseCode::Unauthorized, "bad or missing token");
            }
        }
        if let Some(verify) = &mut self.verifier {
            if let Err(reason) = verify(&hello, ip) {
                return self.refuse(conn, id, RefuseCode::Unauthorized, &reason);
            }
        }
        let (unique, replaces) = match &hello.unique {
            Some(unique) => match self.by_unique.get(unique) {
                Some(_) if self.config.policy == UniquePolicy::Reject => {
                    let reason = alloc::format!("unique {unique} is in use");
                    return self.refuse(conn, id, RefuseCode::UniqueInUse, &reason);
                }
                Some(&seq) => (unique.clone(), Some(seq)),
                None => (unique.clone(), None),
            },
            None => match self.fresh_unique() {
                Some(unique) => (unique, None),
                None => return self.refuse(conn, id, RefuseCode::Full, "no free unique could be drawn"),
            },
        };
        // A replacement frees the seat it takes.
        if replaces.is_none() && self.config.max_clients != 0 && self.members.len() >= self.config.max_clients {
            let reason = alloc::format!("the hub holds its limit of {} clients", self.config.max_clients);
            return self.refuse(conn, id, RefuseCode::Full, &reason);
        }
        if let Some(old) = replaces {
            self.replace(old);
        }
        let doc =
            ClientDoc { name: hello.name, game: hello.game, unique, ip: ip.to_string(), datastore: BTreeMap::new() };
        self.join(conn, id, doc);
    }

    /// Sixteen lowercase hex characters from the entropy source, not held by anyone.
    fn fresh_unique(&mut self) -> Option<String> {
        for _ in 0..UNIQUE_ATTEMPTS {
            let mut bytes = [0u8; 8];
            self.entropy.fill(&mut bytes);
            let unique: String = bytes.iter().map(|b| alloc::format!("{b:02x}")).collect();
            if !self.by_unique.contains_key(&unique) {
                return Some(unique);
            }
        }
        None
    }

    /// The holder of a unique a newcomer takes over: told, closed, and gone for the others.
    fn replace(&mut self, seq: u64) {
        let Some(old) = self.members.remove(&seq) else { return };
        self.by_unique.remove(&old.doc.unique);
        if let Some(conn) = self.conns.get_mut(&old.conn) {
            // A leaving holder was already closed; its Closed is now a plain goodbye.
            if old.leaving.is_none() {
                self.actions.extend(notify(old.conn, &FromHub::Closing { reason: "replaced".into() }));
                self.actions.push_back(HubAction::Close { conn: old.conn });
            }
            conn.state = ConnState::Gone;
        }
        let reason = String::from("replaced");
        self.fan_out(&FromHub::Disconnected { client: old.doc.clone(), reason: reason.clone() }, |_| true);
        self.actions.push_back(HubAction::Left { client: old.doc, reason });
    }

    fn join(&mut self, conn: ConnId, id: u64, doc: ClientDoc) {
        let welcome =
            Welcome { unique: doc.unique.clone(), ip: doc.ip.clone(), clients: self.clients().cloned().collect() };
        let payload = match welcome.to_bytes() {
            Ok(payload) => payload,
            // Everything in it was decoded from peers, which guarantees it encodes again.
            Err(e) => return self.refuse(conn, id, RefuseCode::BadRequest, &bad_payload("welcome", &e)),
        };
        self.actions.push_back(HubAction::Send { conn, command: message::Command::Respond { id, payload } });
        self.fan_out(&FromHub::Connected(doc.clone()), |_| true);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_unique.insert(doc.unique.clone(), seq);
        self.members.insert(seq, Member { conn, doc: doc.clone(), leaving: None });
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Joined(seq);
        }
        self.actions.push_back(HubAction::Joined(doc));
    }

    // --- after joining ---------------------------------------------------------------------------

    fn after_join(&mut self, conn: ConnId, seq: u64, event: message::Event) {
        use message::Event;
        match event {
            Event::Notification { payload } => match ToHub::from_bytes(&payload) {
                Ok(note) => self.on_note(conn, seq, note),
                Err(e) => self.refuse(conn, 0, RefuseCode::BadRequest, &bad_payload("notification", &e)),
            },
            Event::Heartbeat { .. } => {}
            Event::Request { id, .. } => self.refuse(conn, id, RefuseCode::BadRequest, "already joined"),
            other => self.on_stray(conn, other),
        }
    }

    fn on_note(&mut self, conn: ConnId, seq: u64, note: ToHub) {
        let from = self.members[&seq].doc.unique.clone();
        match note {
            ToHub::Broadcast { op, data } => {
                self.fan_out(&FromHub::Op { from, op, data }, |m| m.conn != conn);
            }
            ToHub::Omit { to, op, data } => {
                let omitted: BTreeSet<&String> = to.iter().collect();
                let targets: Vec<ConnId> = self
                    .members
                    .values()
                    .filter(|m| m.conn != conn && m.leaving.is_none() && !omitted.contains(&m.doc.unique))
                    .map(|m| m.conn)
                    .collect();
                self.send_to(targets, &FromHub::Op { from, op, data });
            }
            ToHub::At { to, op, data } => {
                // By join order, each once; unknown uniques are skipped.
                let seqs: BTreeSet<u64> = to.iter().filter_map(|u| self.by_unique.get(u).copied()).collect();
                let targets: Vec<ConnId> =
                    seqs.iter().map(|s| &self.members[s]).filter(|m| m.leaving.is_none()).map(|m| m.conn).collect();
                self.send_to(targets, &FromHub::Op { from, op, data });
            }
            ToHub::Datastore { key, value } => {
                if let Some(member) = self.members.get_mut(&seq) {
                    member.doc.datastore.insert(key.clone(), value.clone());
                }
                self.fan_out(&FromHub::Datastore { unique: from, key, value }, |m| m.conn != conn);
            }
            ToHub::Bye { reason } => self.close_member(conn, seq, reason.unwrap_or_else(|| "bye".into())),
        }
    }

    // --- the end of a connection -------------------------------------------------------------

    /// Answer with `refused` and close. A joined client leaves at its `Closed`, with the code as
    /// the reason the others read.
    fn refuse(&mut self, conn: ConnId, id: u64, code: RefuseCode, reason: &str) {
        let refused = Refused { code, reason: reason.into() };
        // Strings only: a refusal always encodes.
        if let Ok(payload) = refused.to_bytes() {
            self.actions.push_back(HubAction::Send { conn, command: message::Command::FailPayload { id, payload } });
        }
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(&ConnState::Joined(seq)) => self.close_member(conn, seq, code.as_str().into()),
            _ => {
                self.actions.push_back(HubAction::Close { conn });
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.state = ConnState::Gone;
                }
            }
        }
    }

    /// A frame the hub never asks for (an error frame; answers to requests it never sent).
    fn on_stray(&mut self, conn: ConnId, event: message::Event) {
        use message::Event;
        match event {
            // The hub sends no requests, so these cannot concern it; nothing to answer.
            Event::Response { .. } | Event::LateResponse { .. } | Event::TimedOut { .. } => {}
            _ => self.refuse(conn, 0, RefuseCode::BadRequest, "unexpected frame"),
        }
    }

    fn close_member(&mut self, conn: ConnId, seq: u64, reason: String) {
        if let Some(member) = self.members.get_mut(&seq) {
            member.leaving = Some(reason);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Leaving(seq);
        }
        self.actions.push_back(HubAction::Close { conn });
    }

    fn remove_member(&mut self, seq: u64, reason: String) {
        let Some(member) = self.members.remove(&seq) else { return };
        self.by_unique.remove(&member.doc.unique);
        let reason = member.leaving.unwrap_or(reason);
        self.fan_out(&FromHub::Disconnected { client: member.doc.clone(), reason: reason.clone() }, |_| true);
        self.actions.push_back(HubAction::Left { client: member.doc, reason });
    }

    // --- fan-out ----------------------------------------------------------------------------------

    /// Notify every member that is not leaving and passes `keep`, in join order.
    fn fan_out(&mut self, note: &FromHub, keep: impl Fn(&Member) -> bool) {
        let targets: Vec<ConnId> =
            self.members.values().filter(|m| m.leaving.is_none() && keep(m)).map(|m| m.conn).collect();
        self.send_to(targets, note);
    }

    fn send_to(&mut self, targets: Vec<ConnId>, note: &FromHub) {
        if targets.is_empty() {
            return;
        }
        // Everything relayed was decoded from a peer, which guarantees it encodes again.
        let Ok(payload) = note.to_bytes() else { return };
        for conn in targets {
            self.actions
                .push_back(HubAction::Send { conn, command: message::Command::Notify { payload: payload.clone() } });
        }
    }
}

fn notify(conn: ConnId, note: &FromHub) -> Option<HubAction> {
    let payload: Bytes = note.to_bytes().ok()?;
    Some(HubAction::Send { conn, command: message::Command::Notify { payload } })
}

fn bad_payload(what: &str, error: &DocError) -> String {
    alloc::format!("malformed {what}: {error}")
}

/// Compare a secret without stopping at the first difference, so the time taken does not tell
/// how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Machine for Hub {
    type Command = HubInput;
    type Event = HubAction;
    type Error = HubError;

    fn handle_input(&mut self, now: Instant, input: Input<'_, HubInput>) -> Result<(), HubError> {
        self.on_time(now);
        match input {
            Input::Command(input) => self.on_input(now, input),
            // The hub owns no transport of its own: each client's connection is closed through
            // `HubAction::Close`, so there is nothing for it to finish.
            Input::Timeout | Input::Close => Ok(()),
            Input::Stream(_) | Input::Datagram { .. } | Input::Eof => Err(HubError::UnexpectedInput),
        }
    }

    fn poll_output(&mut self, now: Instant) -> Output<HubAction, HubError> {
        if self.actions.is_empty() {
            self.on_time(now);
        }
        match self.actions.pop_front() {
            Some(action) => Output::Event(action),
            None => Output::Timeout(self.hello_deadlines.first().map(|&(at, _)| at)),
        }
    }
}
