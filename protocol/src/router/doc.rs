//! The router's payloads (WIRE.md §5) as typed values, and their BSON bytes.
//!
//! Every payload is one BSON document whose string field `t` names the operation. Decoding is
//! strict about what it needs and lenient about the rest:
//!
//! - a required field that is missing or of another type is an error naming the field;
//! - an optional field (`unique`, `token`, `headers`, a bye's `reason`) may be absent or `null`;
//! - fields the spec does not name are ignored, so a newer peer may add some;
//! - documents nested deeper than [`MAX_DEPTH`] are refused before they are converted (the
//!   converter recurses, and a frame of nested empty documents must not exhaust the stack);
//! - a string that must become a document key (a datastore key) may not contain NUL, so that
//!   anything [`from_bytes`](Hello::from_bytes) accepts can be encoded again.
//!
//! Encoding fails only for values the caller built with a NUL inside a document key (in
//! `data`, `headers` or a datastore): [`DocError::Unencodable`], the caller's fault.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bson::raw::{RawDocument, RawIter};
use bson::spec::ElementType;
use bson::{Bson, Document};
use bytes::Bytes;

use crate::fault::{Blame, Fault};

/// How deeply documents and arrays may nest inside a payload (the payload itself is depth 1).
pub const MAX_DEPTH: usize = 64;

/// Why a payload could not be decoded (the peer's fault) or encoded (the caller's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The bytes are not one well-formed BSON document (bad length, truncated element, invalid
    /// UTF-8, trailing bytes…).
    #[error("payload is not a BSON document: {reason}")]
    NotBson {
        /// What the BSON reader found wrong.
        reason: String,
    },
    /// Documents or arrays nest deeper than [`MAX_DEPTH`].
    #[error("payload nests documents deeper than {max} levels")]
    TooDeep {
        /// [`MAX_DEPTH`].
        max: usize,
    },
    /// A required field is absent.
    #[error("payload lacks the field `{field}`")]
    MissingField {
        /// The field, as a path (`clients.name` for a field of a client document).
        field: &'static str,
    },
    /// A field holds a value of another BSON type.
    #[error("field `{field}` should be {expected}, found {found}")]
    WrongType {
        /// The field, as a path.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
        /// The BSON type it holds.
        found: String,
    },
    /// A field has the right type but a value the protocol does not allow.
    #[error("field `{field}`: {reason}")]
    BadValue {
        /// The field, as a path.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `t` names an operation this message may not carry here.
    #[error("unexpected operation `{t}`")]
    UnexpectedOp {
        /// The `t` found.
        t: String,
    },
    /// A refusal's `code` is not one of the four codes.
    #[error("unknown refusal code `{code}`")]
    UnknownCode {
        /// The code found.
        code: String,
    },
    /// A value built by the caller cannot be written as BSON (a document key containing NUL).
    #[error("cannot encode payload: {reason}")]
    Unencodable {
        /// What the BSON writer refused.
        reason: String,
    },
}

impl Blame for DocError {
    fn fault(&self) -> Fault {
        match self {
            DocError::Unencodable { .. } => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing documents.

/// Parse `bytes` as exactly one BSON document, checking the nesting before converting it.
fn parse(bytes: &[u8]) -> Result<Document, DocError> {
    let not_bson = |e: bson::error::Error| DocError::NotBson { reason: e.to_string() };
    let raw = RawDocument::from_bytes(bytes).map_err(not_bson)?;
    check_depth(raw)?;
    Document::try_from(raw).map_err(not_bson)
}

/// Walk the raw document without recursion and refuse nesting beyond [`MAX_DEPTH`].
fn check_depth(raw: &RawDocument) -> Result<(), DocError> {
    let not_bson = |e: bson::error::Error| DocError::NotBson { reason: e.to_string() };
    let mut stack: Vec<RawIter<'_>> = alloc::vec![raw.iter_elements()];
    while let Some(top) = stack.last_mut() {
        let Some(element) = top.next() else {
            stack.pop();
            continue;
        };
        let element = element.map_err(not_bson)?;
        let nested = match element.element_type() {
            ElementType::EmbeddedDocument => {
                element.value().map_err(not_bson)?.as_document().map(|d| d.iter_elements())
            }
            ElementType::Array => element.value().map_err(not_bson)?.as_array().map(|a| a.iter_elements()),
            ElementType::JavaScriptCodeWithScope => match element.value().map_err(not_bson)? {
                bson::RawBsonRef::JavaScriptCodeWithScope(code) => Some(code.scope.iter_elements()),
                _ => None,
            },
            _ => None,
        };
        if let Some(inner) = nested {
            if stack.len() >= MAX_DEPTH {
                return Err(DocError::TooDeep { max: MAX_DEPTH });
            }
            stack.push(inner);
        }
    }
    Ok(())
}

fn encode(doc: &Document) -> Result<Bytes, DocError> {
    doc.to_vec().map(Bytes::from).map_err(|e| DocError::Unencodable { reason: e.to_string() })
}

fn type_name(value: &Bson) -> String {
    alloc::format!("{:?}", value.element_type())
}

fn wrong(field: &'static str, expected: &'static str, value: &Bson) -> DocError {
    DocError::WrongType { field, expected, found: type_name(value) }
}

fn absent(value: Option<&Bson>) -> bool {
    matches!(value, None | Some(Bson::Null))
}

fn get_str(doc: &Document, key: &str, field: &'static str) -> Result<String, DocError> {
    match doc.get(key) {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong(field, "a string", other)),
        None => Err(DocError::MissingField { field }),
    }
}

fn get_opt_str(doc: &Document, key: &str, field: &'static str) -> Result<Option<String>, DocError> {
    if absent(doc.get(key)) {
        return Ok(None);
    }
    get_str(doc, key, field).map(Some)
}

fn get_doc(doc: &Document, key: &str, field: &'static str) -> Result<Document, DocError> {
    match doc.get(key) {
        Some(Bson::Document(d)) => Ok(d.clone()),
        Some(other) => Err(wrong(field, "a document", other)),
        None => Err(DocError::MissingField { field }),
    }
}

fn get_array<'a>(doc: &'a Document, key: &str, field: &'static str) -> Result<&'a [Bson], DocError> {
    match doc.get(key) {
        Some(Bson::Array(a)) => Ok(a),
        Some(other) => Err(wrong(field, "an array", other)),
        None => Err(DocError::MissingField { field }),
    }
}

fn get_str_list(doc: &Document, key: &str, field: &'static str) -> Result<Vec<String>, DocError> {
    get_array(doc, key, field)?
        .iter()
        .map(|item| match item {
            Bson::String(s) => Ok(s.clone()),
            other => Err(wrong(field, "an array of strings", other)),
        })
        .collect()
}

/// A `{str: str}` document as a map.
fn get_str_map(doc: &Document, key: &str, field: &'static str) -> Result<BTreeMap<String, String>, DocError> {
    let map = get_doc(doc, key, field)?;
    str_map(&map, field)
}

fn str_map(map: &Document, field: &'static str) -> Result<BTreeMap<String, String>, DocError> {
    map.iter()
        .map(|(k, v)| match v {
            Bson::String(s) => Ok((k.clone(), s.clone())),
            other => Err(wrong(field, "a document of strings", other)),
        })
        .collect()
}

fn map_doc(map: &BTreeMap<String, String>) -> Document {
    map.iter().map(|(k, v)| (k.clone(), Bson::String(v.clone()))).collect()
}

/// A datastore key becomes a document key at the hub and in every `welcome`; BSON keys cannot
/// hold NUL.
fn check_key(key: &str, field: &'static str) -> Result<(), DocError> {
    if key.contains('\0') {
        return Err(DocError::BadValue { field, reason: "contains NUL, which a document key cannot hold" });
    }
    Ok(())
}

/// The operation `t` of a parsed payload.
fn op_of(doc: &Document) -> Result<String, DocError> {
    get_str(doc, "t", "t")
}

fn expect_op(doc: &Document, t: &str) -> Result<(), DocError> {
    let found = op_of(doc)?;
    if found != t {
        return Err(DocError::UnexpectedOp { t: found });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client documents.

/// One client as the hub knows it: `{name, game, unique, ip, datastore: {str: str}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientDoc {
    /// The name the client goes by (not an identifier).
    pub name: String,
    /// The game the client belongs to (not an identifier).
    pub game: String,
    /// The identifier the hub routes by.
    pub unique: String,
    /// The client's address as the hub saw it.
    pub ip: String,
    /// Key/value pairs the client published with `datastore`.
    pub datastore: BTreeMap<String, String>,
}

impl ClientDoc {
    /// `name[unique@ip]`.
    pub fn fullname(&self) -> String {
        alloc::format!("{}[{}]", self.name, self.uniquename())
    }

    /// `unique@ip`.
    pub fn uniquename(&self) -> String {
        alloc::format!("{}@{}", self.unique, self.ip)
    }

    fn to_document(&self) -> Document {
        bson::doc! {
            "name": &self.name,
            "game": &self.game,
            "unique": &self.unique,
            "ip": &self.ip,
            "datastore": map_doc(&self.datastore),
        }
    }

    /// A client document found in `field`.
    fn from_bson(value: &Bson, field: &'static str) -> Result<Self, DocError> {
        let Bson::Document(doc) = value else {
            return Err(wrong(field, "a client document", value));
        };
        Ok(ClientDoc {
            name: get_str(doc, "name", "client.name")?,
            game: get_str(doc, "game", "client.game")?,
            unique: get_str(doc, "unique", "client.unique")?,
            ip: get_str(doc, "ip", "client.ip")?,
            datastore: get_str_map(doc, "datastore", "client.datastore")?,
        })
    }

    fn from_field(doc: &Document, key: &str, field: &'static str) -> Result<Self, DocError> {
        match doc.get(key) {
            Some(value) => Self::from_bson(value, field),
            None => Err(DocError::MissingField { field }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// hello / welcome / refused.

/// The client's first request: `{t:"hello", name, game, unique?, token?, headers?}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// The client's name.
    pub name: String,
    /// The client's game.
    pub game: String,
    /// The unique it asks for; `None` lets the hub assign one. Never empty.
    pub unique: Option<String>,
    /// The access token, for a hub that requires one.
    pub token: Option<String>,
    /// Free-form headers, for a verifier to look at.
    pub headers: BTreeMap<String, String>,
}

impl Hello {
    /// A hello from `name` in `game`, asking the hub for a unique, with no token or headers.
    pub fn new(name: impl Into<String>, game: impl Into<String>) -> Self {
        Hello { name: name.into(), game: game.into(), unique: None, token: None, headers: BTreeMap::new() }
    }

    /// Ask for this unique (it must not be empty).
    pub fn with_unique(mut self, unique: impl Into<String>) -> Self {
        self.unique = Some(unique.into());
        self
    }

    /// Carry this access token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Add a header for the hub's verifier.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// The payload's bytes.
    pub fn to_bytes(&self) -> Result<Bytes, DocError> {
        let mut doc = bson::doc! { "t": "hello", "name": &self.name, "game": &self.game };
        if let Some(unique) = &self.unique {
            doc.insert("unique", unique);
        }
        if let Some(token) = &self.token {
            doc.insert("token", token);
        }
        if !self.headers.is_empty() {
            doc.insert("headers", map_doc(&self.headers));
        }
        encode(&doc)
    }

    /// Decode a hello payload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let doc = parse(bytes)?;
        expect_op(&doc, "hello")?;
        let unique = get_opt_str(&doc, "unique", "unique")?;
        if unique.as_deref() == Some("") {
            return Err(DocError::BadValue { field: "unique", reason: "empty (omit it to have one assigned)" });
        }
        Ok(Hello {
            name: get_str(&doc, "name", "name")?,
            game: get_str(&doc, "game", "game")?,
            unique,
            token: get_opt_str(&doc, "token", "token")?,
            headers: if absent(doc.get("headers")) {
                BTreeMap::new()
            } else {
                get_str_map(&doc, "headers", "headers")?
            },
        })
    }
}

/// The hub's answer to a successful hello: `{t:"welcome", unique, ip, clients: [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Welcome {
    /// The unique the client goes by (its own, or the one the hub assigned).
    pub unique: String,
    /// The client's address as the hub sees it.
    pub ip: String,
    /// Every other client on the hub.
    pub clients: Vec<ClientDoc>,
}

impl Welcome {
    /// The payload's bytes.
    pub fn to_bytes(&self) -> Result<Bytes, DocError> {
        let clients: Vec<Bson> = self.clients.iter().map(|c| Bson::Document(c.to_document())).collect();
        encode(&bson::doc! { "t": "welcome", "unique": &self.unique, "ip": &self.ip, "clients": clients })
    }

    /// Decode a welcome payload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let doc = parse(bytes)?;
        expect_op(&doc, "welcome")?;
        Ok(Welcome {
            unique: get_str(&doc, "unique", "unique")?,
            ip: get_str(&doc, "ip", "ip")?,
            clients: get_array(&doc, "clients", "clients")?
                .iter()
                .map(|c| ClientDoc::from_bson(c, "clients"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Why the hub refused a client (WIRE.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseCode {
    /// `unauthorized`: wrong or missing token, or the verifier said no.
    Unauthorized,
    /// `unique_in_use`: the unique is taken and the hub rejects duplicates.
    UniqueInUse,
    /// `full`: the hub holds as many clients as it allows.
    Full,
    /// `bad_request`: a frame the protocol does not allow at this point, or a malformed payload.
    BadRequest,
}

impl RefuseCode {
    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseCode::Unauthorized => "unauthorized",
            RefuseCode::UniqueInUse => "unique_in_use",
            RefuseCode::Full => "full",
            RefuseCode::BadRequest => "bad_request",
        }
    }

    /// The code for its wire string.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "unauthorized" => RefuseCode::Unauthorized,
            "unique_in_use" => RefuseCode::UniqueInUse,
            "full" => RefuseCode::Full,
            "bad_request" => RefuseCode::BadRequest,
            _ => return None,
        })
    }
}

impl core::fmt::Display for RefuseCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hub's error payload: `{t:"refused", code, reason}`; the hub closes the connection after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Which rule refused the client.
    pub code: RefuseCode,
    /// Human-readable detail.
    pub reason: String,
}

impl Refused {
    /// The payload's bytes.
    pub fn to_bytes(&self) -> Result<Bytes, DocError> {
        encode(&bson::doc! { "t": "refused", "code": self.code.as_str(), "reason": &self.reason })
    }

    /// Decode a refused payload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let doc = parse(bytes)?;
        expect_op(&doc, "refused")?;
        let code = get_str(&doc, "code", "code")?;
        Ok(Refused {
            code: RefuseCode::parse(&code).ok_or(DocError::UnknownCode { code })?,
            reason: get_str(&doc, "reason", "reason")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications.

/// A notification from a client to the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum ToHub {
    /// `{t:"broadcast", op, data}`: to every other client.
    Broadcast {
        /// The operation's name.
        op: String,
        /// Its data.
        data: Document,
    },
    /// `{t:"at", to, op, data}`: to exactly the clients listed (the sender too, if listed).
    At {
        /// The uniques to reach.
        to: Vec<String>,
        /// The operation's name.
        op: String,
        /// Its data.
        data: Document,
    },
    /// `{t:"omit", to, op, data}`: to every other client but those listed.
    Omit {
        /// The uniques to leave out.
        to: Vec<String>,
        /// The operation's name.
        op: String,
        /// Its data.
        data: Document,
    },
    /// `{t:"datastore", key, value}`: set `key` on the sender's record and tell everyone.
    Datastore {
        /// The key (no NUL).
        key: String,
        /// The value.
        value: String,
    },
    /// `{t:"bye", reason?}`: the client leaves.
    Bye {
        /// Why, if it says.
        reason: Option<String>,
    },
}

impl ToHub {
    /// The payload's bytes.
    pub fn to_bytes(&self) -> Result<Bytes, DocError> {
        let doc = match self {
            ToHub::Broadcast { op, data } => bson::doc! { "t": "broadcast", "op": op, "data": data.clone() },
            ToHub::At { to, op, data } => bson::doc! { "t": "at", "to": to.clone(), "op": op, "data": data.clone() },
            ToHub::Omit { to, op, data } => {
                bson::doc! { "t": "omit", "to": to.clone(), "op": op, "data": data.clone() }
            }
            ToHub::Datastore { key, value } => bson::doc! { "t": "datastore", "key": key, "value": value },
            ToHub::Bye { reason: Some(reason) } => bson::doc! { "t": "bye", "reason": reason },
            ToHub::Bye { reason: None } => bson::doc! { "t": "bye" },
        };
        encode(&doc)
    }

    /// Decode a client's notification.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let doc = parse(bytes)?;
        let t = op_of(&doc)?;
        Ok(match t.as_str() {
            "broadcast" => ToHub::Broadcast { op: get_str(&doc, "op", "op")?, data: get_doc(&doc, "data", "data")? },
            "at" => ToHub::At {
                to: get_str_list(&doc, "to", "to")?,
                op: get_str(&doc, "op", "op")?,
                data: get_doc(&doc, "data", "data")?,
            },
            "omit" => ToHub::Omit {
                to: get_str_list(&doc, "to", "to")?,
                op: get_str(&doc, "op", "op")?,
                data: get_doc(&doc, "data", "data")?,
            },
            "datastore" => {
                let key = get_str(&doc, "key", "key")?;
                check_key(&key, "key")?;
                ToHub::Datastore { key, value: get_str(&doc, "value", "value")? }
            }
            "bye" => ToHub::Bye { reason: get_opt_str(&doc, "reason", "reason")? },
            _ => return Err(DocError::UnexpectedOp { t }),
        })
    }
}

/// A notification from the hub to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum FromHub {
    /// `{t:"op", from, op, data}`: another client's broadcast, at or omit.
    Op {
        /// The sender's unique.
        from: String,
        /// The operation's name.
        op: String,
        /// Its data.
        data: Document,
    },
    /// `{t:"connected", client}`: a client joined.
    Connected(ClientDoc),
    /// `{t:"disconnected", client, reason}`: a client left.
    Disconnected {
        /// The client, as last known.
        client: ClientDoc,
        /// Why (`"bye"`, `"replaced"`, `"timeout"`, …).
        reason: String,
    },
    /// `{t:"datastore", unique, key, value}`: a client set a datastore key.
    Datastore {
        /// Whose record.
        unique: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `{t:"closing", reason}`: the hub is about to close this connection.
    Closing {
        /// Why.
        reason: String,
    },
}

impl FromHub {
    /// The payload's bytes.
    pub fn to_bytes(&self) -> Result<Bytes, DocError> {
        let doc = match self {
            FromHub::Op { from, op, data } => bson::doc! { "t": "op", "from": from, "op": op, "data": data.clone() },
            FromHub::Connected(client) => bson::doc! { "t": "connected", "client": client.to_document() },
            FromHub::Disconnected { client, reason } => {
                bson::doc! { "t": "disconnected", "client": client.to_document(), "reason": reason }
            }
            FromHub::Datastore { unique, key, value } => {
                bson::doc! { "t": "datastore", "unique": unique, "key": key, "value": value }
            }
            FromHub::Closing { reason } => bson::doc! { "t": "closing", "reason": reason },
        };
        encode(&doc)
    }

    /// Decode a hub's notification.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let doc = parse(bytes)?;
        let t = op_of(&doc)?;
        Ok(match t.as_str() {
            "op" => FromHub::Op {
                from: get_str(&doc, "from", "from")?,
                op: get_str(&doc, "op", "op")?,
                data: get_doc(&doc, "data", "data")?,
            },
            "connected" => FromHub::Connected(ClientDoc::from_field(&doc, "client", "client")?),
            "disconnected" => FromHub::Disconnected {
                client: ClientDoc::from_field(&doc, "client", "client")?,
                reason: get_str(&doc, "reason", "reason")?,
            },
            "datastore" => {
                let key = get_str(&doc, "key", "key")?;
                check_key(&key, "key")?;
                FromHub::Datastore {
                    unique: get_str(&doc, "unique", "unique")?,
                    key,
                    value: get_str(&doc, "value", "value")?,
                }
            }
            "closing" => FromHub::Closing { reason: get_str(&doc, "reason", "reason")? },
            _ => return Err(DocError::UnexpectedOp { t }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn names() {
        let c = ClientDoc {
            name: "bot".into(),
            game: "g".into(),
            unique: "u1".into(),
            ip: "10.0.0.1".into(),
            ..Default::default()
        };
        assert_eq!(c.fullname(), "bot[u1@10.0.0.1]");
        assert_eq!(c.uniquename(), "u1@10.0.0.1");
    }

    fn sample_client() -> ClientDoc {
        let mut c = ClientDoc {
            name: "n".into(),
            game: "g".into(),
            unique: "u".into(),
            ip: "::1".into(),
            ..Default::default()
        };
        c.datastore.insert("k".into(), "값".into());
        c
    }

    #[test]
    fn every_payload_round_trips() {
        let data = bson::doc! { "n": 1, "s": "x", "nested": { "list": [1, 2.5, "3"] }, "1": true };
        let mut headers = BTreeMap::new();
        headers.insert("role".to_string(), "dev".to_string());
        let hellos = [
            Hello { name: "a".into(), game: "g".into(), unique: Some("u".into()), token: Some("t".into()), headers },
            Hello { name: "b".into(), game: "".into(), ..Default::default() },
        ];
        for hello in hellos {
            assert_eq!(Hello::from_bytes(&hello.to_bytes().unwrap()), Ok(hello));
        }
        let welcome = Welcome {
            unique: "u".into(),
            ip: "10.0.0.1".into(),
            clients: alloc::vec![sample_client(), ClientDoc::default()],
        };
        assert_eq!(Welcome::from_bytes(&welcome.to_bytes().unwrap()), Ok(welcome));
        for code in [RefuseCode::Unauthorized, RefuseCode::UniqueInUse, RefuseCode::Full, RefuseCode::BadRequest] {
            let refused = Refused { code, reason: "why".into() };
            assert_eq!(Refused::from_bytes(&refused.to_bytes().unwrap()), Ok(refused));
            assert_eq!(RefuseCode::parse(code.as_str()), Some(code));
        }
        let to_hub = [
            ToHub::Broadcast { op: "o".into(), data: data.clone() },
            ToHub::At { to: alloc::vec!["a".into(), "b".into()], op: "o".into(), data: data.clone() },
            ToHub::Omit { to: alloc::vec![], op: "o".into(), data: data.clone() },
            ToHub::Datastore { key: "k".into(), value: "v".into() },
            ToHub::Bye { reason: Some("r".into()) },
            ToHub::Bye { reason: None },
        ];
        for note in to_hub {
            assert_eq!(ToHub::from_bytes(&note.to_bytes().unwrap()), Ok(note));
        }
        let from_hub = [
            FromHub::Op { from: "a".into(), op: "o".into(), data },
            FromHub::Connected(sample_client()),
            FromHub::Disconnected { client: sample_client(), reason: "timeout".into() },
            FromHub::Datastore { unique: "u".into(), key: "k".into(), value: "v".into() },
            FromHub::Closing { reason: "replaced".into() },
        ];
        for note in from_hub {
            assert_eq!(FromHub::from_bytes(&note.to_bytes().unwrap()), Ok(note));
        }
    }

    #[test]
    fn the_wire_form_is_the_specs() {
        let bytes =
            ToHub::At { to: alloc::vec!["x".into()], op: "o".into(), data: bson::doc! { "a": 1 } }.to_bytes().unwrap();
        let doc = Document::from_reader(&bytes[..]).unwrap();
        assert_eq!(doc, bson::doc! { "t": "at", "to": ["x"], "op": "o", "data": { "a": 1 } });
        let bytes = Refused { code: RefuseCode::UniqueInUse, reason: "r".into() }.to_bytes().unwrap();
        assert_eq!(
            Document::from_reader(&bytes[..]).unwrap(),
            bson::doc! { "t": "refused", "code": "unique_in_use", "reason": "r" }
        );
    }

    #[test]
    fn optional_fields_may_be_null_and_unknown_fields_are_ignored() {
        let bytes = bson::doc! { "t": "hello", "name": "n", "game": "g", "unique": null, "token": null, "headers": null, "extra": 1 }.to_vec().unwrap();
        assert_eq!(Hello::from_bytes(&bytes), Ok(Hello { name: "n".into(), game: "g".into(), ..Default::default() }));
        let bytes = bson::doc! { "t": "bye", "reason": null }.to_vec().unwrap();
        assert_eq!(ToHub::from_bytes(&bytes), Ok(ToHub::Bye { reason: None }));
    }

    fn bytes_of(doc: Document) -> Vec<u8> {
        doc.to_vec().unwrap()
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong() {
        let not_bson: [&[u8]; 4] = [b"", b"garbage", b"\x06\0\0\0\0", b"\x05\0\0\0\0trailing"];
        for bytes in not_bson {
            assert!(matches!(ToHub::from_bytes(bytes), Err(DocError::NotBson { .. })), "{bytes:?}");
        }
        let cases: [(Vec<u8>, DocError); 9] = [
            (bytes_of(bson::doc! { "op": "x" }), DocError::MissingField { field: "t" }),
            (
                bytes_of(bson::doc! { "t": 1 }),
                DocError::WrongType { field: "t", expected: "a string", found: "Int32".into() },
            ),
            (bytes_of(bson::doc! { "t": "fly" }), DocError::UnexpectedOp { t: "fly".into() }),
            (
                bytes_of(bson::doc! { "t": "op", "from": "a", "op": "o", "data": {} }),
                DocError::UnexpectedOp { t: "op".into() },
            ),
            (bytes_of(bson::doc! { "t": "broadcast", "op": "o" }), DocError::MissingField { field: "data" }),
            (
                bytes_of(bson::doc! { "t": "broadcast", "op": "o", "data": [1] }),
                DocError::WrongType { field: "data", expected: "a document", found: "Array".into() },
            ),
            (
                bytes_of(bson::doc! { "t": "omit", "to": ["a", 1], "op": "o", "data": {} }),
                DocError::WrongType { field: "to", expected: "an array of strings", found: "Int32".into() },
            ),
            (
                bytes_of(bson::doc! { "t": "datastore", "key": "a\0b", "value": "v" }),
                DocError::BadValue { field: "key", reason: "contains NUL, which a document key cannot hold" },
            ),
            (
                bytes_of(bson::doc! { "t": "bye", "reason": 3 }),
                DocError::WrongType { field: "reason", expected: "a string", found: "Int32".into() },
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(ToHub::from_bytes(&bytes), Err(error.clone()));
            assert_eq!(error.fault(), Fault::Peer);
        }
        let bad_client = bytes_of(
            bson::doc! { "t": "welcome", "unique": "u", "ip": "i", "clients": [{ "name": "n", "game": "g", "unique": "u", "ip": "i", "datastore": { "k": 1 } }] },
        );
        assert_eq!(
            Welcome::from_bytes(&bad_client),
            Err(DocError::WrongType {
                field: "client.datastore",
                expected: "a document of strings",
                found: "Int32".into()
            })
        );
        let unknown_code = bytes_of(bson::doc! { "t": "refused", "code": "busy", "reason": "r" });
        assert_eq!(Refused::from_bytes(&unknown_code), Err(DocError::UnknownCode { code: "busy".into() }));
        assert_eq!(
            Hello::from_bytes(&bytes_of(bson::doc! { "t": "welcome" })),
            Err(DocError::UnexpectedOp { t: "welcome".into() })
        );
    }

    #[test]
    fn a_nul_in_a_key_cannot_be_encoded_and_is_the_callers_fault() {
        let mut data = Document::new();
        data.insert("a\0b", 1);
        let error = ToHub::Broadcast { op: "o".into(), data }.to_bytes().unwrap_err();
        assert!(matches!(error, DocError::Unencodable { .. }), "{error:?}");
        assert_eq!(error.fault(), Fault::Caller);
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let mut data = Document::new();
        for _ in 0..MAX_DEPTH + 5 {
            data = bson::doc! { "a": data };
        }
        let bytes = bson::doc! { "t": "broadcast", "op": "x", "data": data }.to_vec().unwrap();
        assert_eq!(ToHub::from_bytes(&bytes), Err(DocError::TooDeep { max: MAX_DEPTH }));
    }
}
