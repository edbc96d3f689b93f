//! The router protocol (WIRE.md §5): a hub and many clients, a chat room for processes.
//!
//! Clients connect to a hub over typed message frames (§4). Each says `hello` once (a request:
//! name, game, optionally a unique, a token and headers); the hub answers `welcome` with the
//! unique the client goes by, its address as the hub sees it, and everyone else. After that a
//! client sends notifications — `broadcast` (everyone else), `at` (exactly those listed),
//! `omit` (everyone else but those listed), `datastore` (publish a key on its own record),
//! `bye` — and the hub relays them and tells everyone who comes and goes (`op`, `connected`,
//! `disconnected`, `datastore`, `closing`). Refusals are error frames carrying `refused`,
//! after which the hub closes the connection. Every payload is a BSON document whose `t` names
//! the operation ([`doc`]).
//!
//! Roles:
//! - [`Hub`] ([`hub`]): the directory and the routing rules. It owns no connections: the glue
//!   runs one [`MessageConnection`](crate::message::MessageConnection) per client and feeds the
//!   hub their events; the hub answers with commands for them.
//! - [`RouterClient`] ([`client`]): a [`Machine`](crate::Machine) over one message connection,
//!   keeping the list of the other clients.
//!
//! # A hub-side connection
//!
//! | state         | on                                       | next          |
//! |---------------|------------------------------------------|---------------|
//! | AwaitingHello | a valid, admitted `hello`                | Joined (`welcome`, others get `connected`) |
//! | AwaitingHello | anything else, or a refused `hello`      | Gone (`refused` + close) |
//! | Joined        | `broadcast` `at` `omit` `datastore`      | Joined (relayed) |
//! | Joined        | `bye`, or a frame it may not send        | Gone once `Closed` (others get `disconnected`) |
//! | Joined        | replaced by a newcomer with its unique   | Gone (`closing` + close; others get `disconnected`) |
//! | Joined        | `Closed` (left, timed out)               | Gone (others get `disconnected`) |
//!
//! The full table, with the order of every action, is in [`hub`].
//!
//! # The client
//!
//! | state      | on                                        | next        |
//! |------------|-------------------------------------------|-------------|
//! | (start)    | first call                                | Hello sent  |
//! | Hello sent | `welcome`                                 | Welcomed    |
//! | Hello sent | `refused`, a bad payload, a timeout       | Done (error) |
//! | Welcomed   | notifications in; commands out            | Welcomed    |
//! | Welcomed   | `closing`, `bye` sent, or `Close`         | Closing → Done when the connection ends |
//!
//! The full table is in [`client`].

pub mod client;
pub mod doc;
pub mod hub;

pub use client::{ClientCommand, ClientConfig, ClientEvent, RouterClient, RouterError};
pub use doc::{ClientDoc, DocError, FromHub, Hello, RefuseCode, Refused, ToHub, Welcome, MAX_DEPTH};
pub use hub::{ConnId, Hub, HubAction, HubConfig, HubError, HubInput, UniquePolicy};
