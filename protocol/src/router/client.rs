//! The router client: one [`MessageConnection`] speaking WIRE.md §5 to a hub.
//!
//! # States and transitions
//!
//! | state     | on                                                  | does                                                    | next      |
//! |-----------|-----------------------------------------------------|---------------------------------------------------------|-----------|
//! | Start     | the first `handle_input` or `poll_output`           | sends the `hello` request                               | HelloSent |
//! | HelloSent | the `welcome` response                              | `ClientEvent::Welcome`; the client list filled          | Welcomed  |
//! | HelloSent | a command                                           | refused: [`RouterError::NotWelcomed`] (caller)          | HelloSent |
//! | HelloSent | the hub's EOF before the welcome                    | output flushed, connection closed                       | Ending(Err `HelloUnanswered`) |
//! | HelloSent | a notification from the hub                         | output flushed, connection closed                       | Ending(Err `UnexpectedFrame`) |
//! | HelloSent | the hello's request timeout                         | output flushed, connection closed                       | Ending(Err `HelloTimedOut`) |
//! | any open  | a `refused` error frame                             | output flushed, connection closed                       | Ending(Err `Refused`) |
//! | any open  | a payload that does not decode                      | output flushed, connection closed                       | Ending(Err `Doc`) |
//! | any open  | a request from the hub                              | output flushed, connection closed                       | Ending(Err `UnexpectedFrame`) |
//! | Welcomed  | `op` / `connected` / `disconnected` / `datastore` / `closing` | the list updated, then `ClientEvent::Hub(note)` | Welcomed |
//! | Welcomed  | `Broadcast` / `At` / `Omit` / `Datastore` / `Bye`   | the notification sent                                   | Welcomed  |
//! | Welcomed  | `Eof` (the hub closed its side)                     | `ReadClosed`: no event comes any more                   | Welcomed  |
//! | Welcomed  | `Close` before the hub's EOF                        | `bye` sent, then as the message connection does         | Finished(its result) |
//! | any open  | `Close`, or the message connection ending           | as the message connection does                          | Finished(its result, as `RouterError::Message`) |
//! | Ending    | output drained                                      | `Finished(Err(..))`                                     | Done      |
//!
//! The hub closes the connection after `closing` and after a `bye`, so both normally end with
//! `Eof`, `ReadClosed`, and `Finished(Ok)` once the application closes. Closing a welcomed
//! client says `bye` first, so the others see it leave with reason `bye`, not `closed`. Heartbeats and dead peers are the message connection's business
//! (configure them in [`MessageConfig`]); a dead hub ends the client with
//! `RouterError::Message(PeerDead)`.
//!
//! # Refusals
//!
//! A `refused` answer ends the machine with [`RouterError::Refused`], blamed on the peer: the
//! connection is over and nothing done to this machine changes that. Whether trying again can
//! help is for the application to read from the code: `unauthorized` and `unique_in_use` need
//! another hello, `full` may pass later, and `bad_request` means this client broke the protocol.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use bson::Document;
use bytes::Bytes;

use super::doc::{ClientDoc, DocError, FromHub, Hello, RefuseCode, Refused, ToHub, Welcome};
use crate::fault::{Blame, Fault};
use crate::machine::{Input, Machine, Output};
use crate::message::{self, Command, ErrorPayload, Event, MessageConfig, MessageConnection};
use crate::time::Instant;

/// How a [`RouterClient`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The message connection underneath (its `error_payload` is forced to
    /// [`ErrorPayload::Raw`]: the hub's errors are BSON).
    pub message: MessageConfig,
    /// The hello to send.
    pub hello: Hello,
}

impl ClientConfig {
    /// A client sending `hello` over messages configured by `message`.
    pub fn new(message: MessageConfig, hello: Hello) -> Self {
        ClientConfig { message, hello }
    }
}

/// What the application asks of a [`RouterClient`]: a notification for the hub (the
/// constructors below name them), or the end.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    /// Send this notification to the hub (refused before the welcome).
    Send(ToHub),
}

impl ClientCommand {
    /// Send `op` with `data` to every other client.
    pub fn broadcast(op: impl Into<String>, data: Document) -> Self {
        ClientCommand::Send(ToHub::Broadcast { op: op.into(), data })
    }

    /// Send `op` with `data` to exactly the clients listed (yourself too, if listed).
    pub fn at<U: Into<String>>(to: impl IntoIterator<Item = U>, op: impl Into<String>, data: Document) -> Self {
        ClientCommand::Send(ToHub::At { to: to.into_iter().map(Into::into).collect(), op: op.into(), data })
    }

    /// Send `op` with `data` to every other client but those listed.
    pub fn omit<U: Into<String>>(to: impl IntoIterator<Item = U>, op: impl Into<String>, data: Document) -> Self {
        ClientCommand::Send(ToHub::Omit { to: to.into_iter().map(Into::into).collect(), op: op.into(), data })
    }

    /// Publish `key = value` on this client's record.
    pub fn datastore(key: impl Into<String>, value: impl Into<String>) -> Self {
        ClientCommand::Send(ToHub::Datastore { key: key.into(), value: value.into() })
    }

    /// Say goodbye (with a reason, if you give one); the hub closes the connection.
    pub fn bye(reason: Option<&str>) -> Self {
        ClientCommand::Send(ToHub::Bye { reason: reason.map(Into::into) })
    }
}

/// What a [`RouterClient`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The hub accepted the hello; [`RouterClient::clients`] now lists the others.
    Welcome {
        /// The unique this client goes by.
        unique: String,
        /// This client's address as the hub sees it.
        ip: String,
        /// The other clients as the welcome listed them, by unique (with their datastores),
        /// for applications that do not hold the machine (a driver's event stream).
        clients: Vec<ClientDoc>,
    },
    /// A notification from the hub: an operation from a client, a join or leave, a datastore
    /// key, or the hub closing this connection. [`RouterClient::clients`] is already updated.
    Hub(FromHub),
}

/// Why a router client call was refused or the client ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The message connection refused a call or ended; its own blame applies.
    #[error("message connection: {0}")]
    Message(message::Error),
    /// A payload did not decode (the hub's fault) or a command's payload cannot be encoded (the
    /// caller's).
    #[error("router payload: {0}")]
    Doc(DocError),
    /// The hub refused this client and closes the connection. Blamed on the peer (see the
    /// [module docs](self#refusals)).
    #[error("refused by the hub ({code}): {reason}")]
    Refused {
        /// Which rule refused us.
        code: RefuseCode,
        /// The hub's explanation.
        reason: String,
    },
    /// The hub did not answer the hello before the request timeout.
    #[error("the hub did not answer the hello in time")]
    HelloTimedOut,
    /// The hub closed its side before answering the hello.
    #[error("the hub closed the connection before answering the hello")]
    HelloUnanswered,
    /// The hub sent a frame the protocol does not allow it to send here.
    #[error("the hub sent an unexpected {what}")]
    UnexpectedFrame {
        /// What it sent.
        what: &'static str,
    },
    /// A command before the hub's welcome.
    #[error("not welcomed by the hub yet")]
    NotWelcomed,
}

impl From<message::Error> for RouterError {
    fn from(e: message::Error) -> Self {
        RouterError::Message(e)
    }
}

impl From<DocError> for RouterError {
    fn from(e: DocError) -> Self {
        RouterError::Doc(e)
    }
}

impl Blame for RouterError {
    fn fault(&self) -> Fault {
        match self {
            RouterError::Message(e) => e.fault(),
            RouterError::Doc(e) => e.fault(),
            RouterError::Refused { .. }
            | RouterError::HelloTimedOut
            | RouterError::HelloUnanswered
            | RouterError::UnexpectedFrame { .. } => Fault::Peer,
            RouterError::NotWelcomed => Fault::Caller,
        }
    }
}

enum State {
    /// The hello is encoded and waits for the first call.
    Start(Bytes),
    HelloSent(u64),
    Welcomed,
    /// This layer decided the end; the message connection is flushing and its frames are dropped.
    Ending(RouterError),
    Done,
}

/// The router client machine. See the [module docs](self) for its transitions.
pub struct RouterClient {
    conn: MessageConnection,
    hello: Hello,
    state: State,
    me: Option<ClientDoc>,
    clients: BTreeMap<String, ClientDoc>,
    events: VecDeque<ClientEvent>,
    /// The hub's EOF came (the message connection reported `ReadClosed`).
    hub_closed: bool,
    /// `ReadClosed` is to be reported once the events queued before it are out.
    read_closed_due: bool,
}

impl core::fmt::Debug for RouterClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RouterClient").field("me", &self.me).field("clients", &self.clients).finish_non_exhaustive()
    }
}

impl RouterClient {
    /// A client that will send `config.hello`. Refuses a message configuration that cannot
    /// work, or a hello that cannot be encoded.
    pub fn new(config: ClientConfig) -> Result<Self, RouterError> {
        let message = config.message.with_error_payload(ErrorPayload::Raw);
        let hello = config.hello.to_bytes()?;
        Ok(RouterClient {
            conn: MessageConnection::new(message)?,
            hello: config.hello,
            state: State::Start(hello),
            me: None,
            clients: BTreeMap::new(),
            events: VecDeque::new(),
            hub_closed: false,
            read_closed_due: false,
        })
    }

    /// The other clients on the hub, by unique.
    pub fn clients(&self) -> &BTreeMap<String, ClientDoc> {
        &self.clients
    }

    /// This client as the hub knows it, once welcomed.
    pub fn me(&self) -> Option<&ClientDoc> {
        self.me.as_ref()
    }

    /// Whether the hub has welcomed this client (and it has not ended since).
    pub fn is_welcomed(&self) -> bool {
        matches!(self.state, State::Welcomed)
    }

    /// The message connection underneath (read-only: its state belongs to this machine).
    pub fn connection(&self) -> &MessageConnection {
        &self.conn
    }

    /// Send the hello if it is not sent yet.
    fn start(&mut self, now: Instant) {
        let State::Start(hello) = &self.state else { return };
        let hello = hello.clone();
        match self.conn.request(now, hello, None) {
            Ok(id) => self.state = State::HelloSent(id),
            Err(e) => self.end(now, RouterError::Message(e)),
        }
    }

    fn end(&mut self, now: Instant, error: RouterError) {
        self.state = State::Ending(error);
        // A no-op if the connection already ended; it flushed then too.
        let _ = self.conn.handle_input(now, Input::Close);
    }

    fn on_command(&mut self, now: Instant, command: ClientCommand) -> Result<(), RouterError> {
        let note = match command {
            _ if !self.is_welcomed() => return Err(RouterError::NotWelcomed),
            ClientCommand::Send(ToHub::Datastore { key, .. }) if key.contains('\0') => {
                return Err(DocError::Unencodable { reason: "a datastore key cannot contain NUL".into() }.into());
            }
            ClientCommand::Send(note) => note,
        };
        let payload = note.to_bytes()?;
        self.conn.handle_input(now, Input::Command(Command::Notify { payload }))?;
        // The hub does not echo our own datastore back; keep our record as the others see it.
        if let (ToHub::Datastore { key, value }, Some(me)) = (note, &mut self.me) {
            me.datastore.insert(key, value);
        }
        Ok(())
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        if let Err(e) = self.try_event(event) {
            self.end(now, e);
        }
    }

    fn try_event(&mut self, event: Event) -> Result<(), RouterError> {
        match event {
            Event::Response { id, payload } => match self.state {
                State::HelloSent(hello) if hello == id => self.on_welcome(Welcome::from_bytes(&payload)?),
                // Only the hello is ever asked; the message connection refuses answers to
                // anything else.
                _ => Err(RouterError::UnexpectedFrame { what: "response" }),
            },
            Event::ErrorPayload { payload, .. } => {
                let Refused { code, reason } = Refused::from_bytes(&payload)?;
                Err(RouterError::Refused { code, reason })
            }
            Event::Notification { payload } => {
                if !self.is_welcomed() {
                    return Err(RouterError::UnexpectedFrame { what: "notification before the welcome" });
                }
                self.on_note(FromHub::from_bytes(&payload)?);
                Ok(())
            }
            Event::TimedOut { .. } => Err(RouterError::HelloTimedOut),
            Event::Unanswered { .. } => Err(RouterError::HelloUnanswered),
            Event::Request { .. } => Err(RouterError::UnexpectedFrame { what: "request" }),
            Event::Error { .. } => Err(RouterError::UnexpectedFrame { what: "text error" }),
            Event::Heartbeat { .. } | Event::LateResponse { .. } => Ok(()),
        }
    }

    fn on_welcome(&mut self, welcome: Welcome) -> Result<(), RouterError> {
        self.clients = welcome.clients.into_iter().map(|c| (c.unique.clone(), c)).collect();
        self.clients.remove(&welcome.unique);
        self.me = Some(ClientDoc {
            name: self.hello.name.clone(),
            game: self.hello.game.clone(),
            unique: welcome.unique.clone(),
            ip: welcome.ip.clone(),
            datastore: BTreeMap::new(),
        });
        self.state = State::Welcomed;
        let clients = self.clients.values().cloned().collect();
        self.events.push_back(ClientEvent::Welcome { unique: welcome.unique, ip: welcome.ip, clients });
        Ok(())
    }

    fn on_note(&mut self, note: FromHub) {
        match &note {
            FromHub::Connected(client) => {
                self.clients.insert(client.unique.clone(), client.clone());
            }
            FromHub::Disconnected { client, .. } => {
                self.clients.remove(&client.unique);
            }
            FromHub::Datastore { unique, key, value } => {
                let record = match &mut self.me {
                    Some(me) if &me.unique == unique => Some(me),
                    _ => self.clients.get_mut(unique),
                };
                if let Some(record) = record {
                    record.datastore.insert(key.clone(), value.clone());
                }
            }
            FromHub::Op { .. } | FromHub::Closing { .. } => {}
        }
        self.events.push_back(ClientEvent::Hub(note));
    }

    fn finish(&mut self, inner: Result<(), message::Error>) -> Output<ClientEvent, RouterError> {
        let result = match core::mem::replace(&mut self.state, State::Done) {
            // The hello went unanswered because of the hub's fault in what it sent: say that.
            State::Ending(RouterError::HelloUnanswered) if inner.is_err() => inner.map_err(RouterError::Message),
            State::Ending(ours) => Err(ours),
            State::Done => Err(RouterError::Message(message::Error::Finished)),
            _ => inner.map_err(RouterError::Message),
        };
        Output::Finished(result)
    }
}

impl Machine for RouterClient {
    type Command = ClientCommand;
    type Event = ClientEvent;
    type Error = RouterError;

    fn handle_input(&mut self, now: Instant, input: Input<'_, ClientCommand>) -> Result<(), RouterError> {
        if matches!(self.state, State::Ending(_) | State::Done) {
            // Closing what is already ending is no news (contract rule 8).
            return match input {
                Input::Close => Ok(()),
                _ => Err(RouterError::Message(message::Error::Finished)),
            };
        }
        self.start(now);
        match input {
            Input::Command(command) => self.on_command(now, command),
            Input::Stream(buf) => Ok(self.conn.handle_input(now, Input::Stream(buf))?),
            Input::Datagram { from, data } => Ok(self.conn.handle_input(now, Input::Datagram { from, data })?),
            Input::Eof => Ok(self.conn.handle_input(now, Input::Eof)?),
            Input::Close => {
                if self.is_welcomed() && !self.hub_closed {
                    // Leave as the protocol says, so the others learn why; a refusal here only
                    // means the connection is ending anyway.
                    let _ = self.on_command(now, ClientCommand::bye(None));
                }
                Ok(self.conn.handle_input(now, Input::Close)?)
            }
            Input::Timeout => Ok(self.conn.handle_input(now, Input::Timeout)?),
        }
    }

    fn poll_output(&mut self, now: Instant) -> Output<ClientEvent, RouterError> {
        self.start(now);
        loop {
            if let Some(event) = self.events.pop_front() {
                return Output::Event(event);
            }
            if core::mem::take(&mut self.read_closed_due) {
                return Output::ReadClosed;
            }
            if matches!(self.state, State::Done) {
                return Output::Finished(Err(RouterError::Message(message::Error::Finished)));
            }
            match self.conn.poll_output(now) {
                Output::Transmit(bytes) => return Output::Transmit(bytes),
                Output::TransmitTo(to, bytes) => return Output::TransmitTo(to, bytes),
                Output::Event(event) => {
                    // After this layer's own end, later frames are dropped.
                    if !matches!(self.state, State::Ending(_)) {
                        self.on_event(now, event);
                    }
                }
                Output::ReadClosed => {
                    self.hub_closed = true;
                    if matches!(self.state, State::Welcomed) && self.events.is_empty() {
                        return Output::ReadClosed;
                    }
                    if matches!(self.state, State::Welcomed) {
                        self.read_closed_due = true;
                    }
                }
                Output::Timeout(deadline) => {
                    return match self.state {
                        State::Ending(_) => self.finish(Ok(())),
                        _ => Output::Timeout(deadline),
                    };
                }
                Output::Finished(result) => return self.finish(result),
            }
        }
    }

    fn write_budget(&self) -> usize {
        self.conn.write_budget()
    }
}
