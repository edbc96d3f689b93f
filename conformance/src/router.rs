//! The router hub suite (`WIRE.md` §5).
//!
//! **The target's contract:** a §5 hub over TCP with message frames (inbound limit at least
//! 64 KiB, no cipher), policy `replace`, no token and no client limit, and a `dead_after` of
//! a few seconds at least (the suite's clients send no heartbeats). The suite's clients use
//! uniques starting with `conformance-` plus the process id; other clients may be connected
//! (the checks look only at the suite's own). [`crate::reference::router_hub`] is
//! Switchboard's; `switchboard-conformance router echo ADDR` serves it.

use bson::{doc, Document};

use crate::message::{message, next_message, ERROR, NOTIFICATION, REQUEST, RESPONSE};
use crate::suite::{Case, Failure, Report, Target, Wire};

/// Every case of the suite, in the order they run.
pub static CASES: &[Case] = &[
    Case {
        name: "hello-welcome",
        checks: "a hello is answered by a welcome with its unique and the ip the hub sees",
        run: hello_welcome,
    },
    Case { name: "assigned-unique", checks: "a hello without a unique gets one assigned", run: assigned_unique },
    Case {
        name: "joins-are-announced",
        checks: "a newcomer's welcome lists the others; they get `connected`",
        run: joins_are_announced,
    },
    Case { name: "broadcast", checks: "broadcast reaches every client but the sender", run: broadcast },
    Case { name: "at", checks: "at reaches exactly those listed; unknown uniques are skipped", run: at },
    Case { name: "omit", checks: "omit reaches every client but the sender and those listed", run: omit },
    Case {
        name: "datastore",
        checks: "datastore is relayed to the others and listed in a late joiner's welcome",
        run: datastore,
    },
    Case { name: "bye", checks: "after bye the hub closes and the others get `disconnected`", run: bye },
    Case {
        name: "replace",
        checks: "a hello with a taken unique replaces: `closing{replaced}`, then disconnected + connected",
        run: replace,
    },
    Case {
        name: "notification-before-hello",
        checks: "anything before a hello is refused bad_request (id 0) and closed",
        run: notification_before_hello,
    },
    Case {
        name: "malformed-hello",
        checks: "a hello without a name is refused bad_request with its id and closed",
        run: malformed_hello,
    },
];

/// Run the suite (or its case `only`) against `target`.
pub fn run(target: &Target, only: Option<&str>) -> Report {
    crate::suite::run("router", CASES, target, only)
}

/// This run's unique for a client called `name`, so several runs and other clients can share a
/// hub.
fn unique(case: &str, name: &str) -> String {
    format!("conformance-{}-{case}-{name}", std::process::id())
}

fn bson_bytes(doc: &Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).expect("a document of strings and integers always encodes");
    bytes
}

fn decode(what: &str, payload: &[u8]) -> Result<Document, Failure> {
    Document::from_reader(payload).map_err(|e| Failure::mismatch(what, "a BSON document", e.to_string()))
}

fn field<'d>(doc: &'d Document, key: &str) -> Result<&'d str, Failure> {
    doc.get_str(key).map_err(|_| Failure::mismatch(format!("field {key:?}"), "a string", doc))
}

/// A client of the hub under test: its connection, its unique, and the prefix of the uniques
/// of the clients in its own case (news about any other client is not its business).
struct Client {
    wire: Wire,
    unique: String,
    welcome: Document,
    case_prefix: String,
}

/// The unique a hub notification is about, if any: `connected` / `disconnected` name a client,
/// `op` its sender, `datastore` its owner.
fn about(note: &Document) -> Option<&str> {
    match note.get_str("t").ok()? {
        "connected" | "disconnected" => note.get_document("client").ok()?.get_str("unique").ok(),
        "op" => note.get_str("from").ok(),
        "datastore" => note.get_str("unique").ok(),
        _ => None,
    }
}

impl Client {
    /// Connect and say hello as `name` (unique `unique`, or none to have one assigned).
    fn join(t: &Target, name: &str, unique: Option<&str>) -> Result<Client, Failure> {
        let case_prefix = unique.map_or(String::new(), |u| u[..u.rfind('-').map_or(0, |i| i + 1)].to_string());
        Self::join_case(t, name, unique, case_prefix)
    }

    fn join_case(t: &Target, name: &str, unique: Option<&str>, case_prefix: String) -> Result<Client, Failure> {
        let mut wire = Wire::connect(t)?;
        let mut hello = doc! { "t": "hello", "name": name, "game": "conformance" };
        if let Some(unique) = unique {
            hello.insert("unique", unique);
        }
        wire.send(&message(REQUEST, 1, &bson_bytes(&hello)))?;
        let (kind, id, payload) = next_message(&mut wire, &format!("waiting for {name}'s welcome"))?;
        let welcome = decode("welcome", &payload)?;
        if (kind, id) != (RESPONSE, 1) || welcome.get_str("t").ok() != Some("welcome") {
            return Err(Failure::mismatch(
                format!("answer to {name}'s hello"),
                "a response (id 1) {t:\"welcome\"}",
                (kind, id, welcome),
            ));
        }
        let unique = field(&welcome, "unique")?.to_string();
        Ok(Client { wire, unique, welcome, case_prefix })
    }

    fn notify(&mut self, note: Document) -> Result<(), Failure> {
        self.wire.send(&message(NOTIFICATION, 0, &bson_bytes(&note)))
    }

    /// The next notification from the hub about this case's clients, which must have `t` = `t`.
    fn expect(&mut self, t: &str) -> Result<Document, Failure> {
        let waiting = format!("waiting for a {t:?} notification for {}", self.unique);
        let (kind, note) = loop {
            let (kind, _, payload) = next_message(&mut self.wire, &waiting)?;
            let note = decode(t, &payload)?;
            match about(&note) {
                Some(other) if kind == NOTIFICATION && !other.starts_with(&self.case_prefix) => continue,
                _ => break (kind, note),
            }
        };
        if kind != NOTIFICATION || note.get_str("t").ok() != Some(t) {
            return Err(Failure::mismatch(
                format!("next frame for {}", self.unique),
                format!("a {t:?} notification"),
                (kind, note),
            ));
        }
        Ok(note)
    }

    /// The next notification must be an `op` named `op` from `from`.
    fn expect_op(&mut self, from: &str, op: &str) -> Result<Document, Failure> {
        let note = self.expect("op")?;
        if field(&note, "from")? != from || field(&note, "op")? != op {
            return Err(Failure::mismatch(format!("op received by {}", self.unique), (from, op), note));
        }
        note.get_document("data").cloned().map_err(|_| Failure::mismatch("op data", "a document", note))
    }

    /// Send `op` to this client only (`at` itself): the next op it receives must be this one,
    /// which shows nothing sent before it was delivered here.
    fn marker(&mut self, op: &str) -> Result<(), Failure> {
        let me = self.unique.clone();
        self.notify(doc! { "t": "at", "to": [me.clone()], "op": op, "data": {} })?;
        self.expect_op(&me, op).map(drop)
    }
}

/// `a`, `b`, `c` joined and each aware of the others.
fn three(t: &Target, case: &str) -> Result<[Client; 3], Failure> {
    let mut a = Client::join(t, "a", Some(&unique(case, "a")))?;
    let mut b = Client::join(t, "b", Some(&unique(case, "b")))?;
    a.expect("connected")?;
    let c = Client::join(t, "c", Some(&unique(case, "c")))?;
    a.expect("connected")?;
    b.expect("connected")?;
    Ok([a, b, c])
}

fn hello_welcome(t: &Target) -> Result<(), Failure> {
    let wanted = unique("hello-welcome", "a");
    let a = Client::join(t, "a", Some(&wanted))?;
    if a.unique != wanted {
        return Err(Failure::mismatch("welcome.unique", &wanted, &a.unique));
    }
    let ip = field(&a.welcome, "ip")?;
    let seen = a.wire.local_addr()?.ip().to_string();
    if ip != seen {
        return Err(Failure::mismatch("welcome.ip (the client's address as the hub sees it)", seen, ip));
    }
    a.welcome.get_array("clients").map(drop).map_err(|_| Failure::mismatch("welcome.clients", "an array", &a.welcome))
}

fn assigned_unique(t: &Target) -> Result<(), Failure> {
    let a = Client::join(t, "nameless", None)?;
    match a.unique.is_empty() {
        true => Err(Failure::mismatch("assigned unique", "a non-empty string", "")),
        false => Ok(()),
    }
}

fn joins_are_announced(t: &Target) -> Result<(), Failure> {
    let mut a = Client::join(t, "first", Some(&unique("joins", "a")))?;
    let b = Client::join(t, "second", Some(&unique("joins", "b")))?;
    let listed =
        b.welcome.get_array("clients").map_err(|_| Failure::mismatch("welcome.clients", "an array", &b.welcome))?;
    let listed_a =
        listed.iter().filter_map(|c| c.as_document()).any(|c| c.get_str("unique").ok() == Some(a.unique.as_str()));
    if !listed_a {
        return Err(Failure::mismatch("the newcomer's welcome.clients", format!("lists {}", a.unique), listed));
    }
    let note = a.expect("connected")?;
    let client = note.get_document("client").map_err(|_| Failure::mismatch("connected.client", "a document", &note))?;
    if client.get_str("unique").ok() != Some(b.unique.as_str()) || client.get_str("name").ok() != Some("second") {
        return Err(Failure::mismatch("connected.client", (&b.unique, "second"), client));
    }
    Ok(())
}

fn broadcast(t: &Target) -> Result<(), Failure> {
    let [mut a, mut b, mut c] = three(t, "broadcast")?;
    a.notify(doc! { "t": "broadcast", "op": "hello", "data": { "n": 1 } })?;
    for other in [&mut b, &mut c] {
        let data = other.expect_op(&a.unique, "hello")?;
        if data.get_i32("n").ok() != Some(1) {
            return Err(Failure::mismatch("op data", doc! { "n": 1 }, data));
        }
    }
    a.marker("after-broadcast") // the sender got nothing before its marker
}

fn at(t: &Target) -> Result<(), Failure> {
    let [mut a, mut b, mut c] = three(t, "at")?;
    a.notify(doc! { "t": "at", "to": [c.unique.clone(), unique("at", "nobody")], "op": "psst", "data": {} })?;
    c.expect_op(&a.unique, "psst")?;
    b.marker("after-at")?;
    a.marker("after-at")
}

fn omit(t: &Target) -> Result<(), Failure> {
    let [mut a, mut b, mut c] = three(t, "omit")?;
    a.notify(doc! { "t": "omit", "to": [b.unique.clone()], "op": "not-b", "data": {} })?;
    c.expect_op(&a.unique, "not-b")?;
    b.marker("after-omit")?;
    a.marker("after-omit")
}

fn datastore(t: &Target) -> Result<(), Failure> {
    let [mut a, mut b, _c] = three(t, "datastore")?;
    a.notify(doc! { "t": "datastore", "key": "level", "value": "7" })?;
    let note = b.expect("datastore")?;
    if (field(&note, "unique")?, field(&note, "key")?, field(&note, "value")?) != (a.unique.as_str(), "level", "7") {
        return Err(Failure::mismatch("relayed datastore", (&a.unique, "level", "7"), note));
    }
    let late = Client::join(t, "late", Some(&unique("datastore", "late")))?;
    let listed = late
        .welcome
        .get_array("clients")
        .map_err(|_| Failure::mismatch("welcome.clients", "an array", &late.welcome))?;
    let a_record =
        listed.iter().filter_map(|c| c.as_document()).find(|c| c.get_str("unique").ok() == Some(a.unique.as_str()));
    let level = a_record.and_then(|c| c.get_document("datastore").ok()).and_then(|d| d.get_str("level").ok());
    match level {
        Some("7") => Ok(()),
        _ => Err(Failure::mismatch("the late joiner's record of the publisher", "datastore {level: \"7\"}", a_record)),
    }
}

fn bye(t: &Target) -> Result<(), Failure> {
    let mut a = Client::join(t, "stays", Some(&unique("bye", "a")))?;
    let mut b = Client::join(t, "leaves", Some(&unique("bye", "b")))?;
    a.expect("connected")?;
    b.notify(doc! { "t": "bye", "reason": "done" })?;
    b.wire.closed("a bye", "WIRE.md §5: the hub closes a client's connection after its bye")?;
    let note = a.expect("disconnected")?;
    let client =
        note.get_document("client").map_err(|_| Failure::mismatch("disconnected.client", "a document", &note))?;
    match client.get_str("unique").ok() == Some(b.unique.as_str()) {
        true => Ok(()),
        false => Err(Failure::mismatch("disconnected.client.unique", &b.unique, client)),
    }
}

fn replace(t: &Target) -> Result<(), Failure> {
    let shared = unique("replace", "shared");
    let mut watcher = Client::join(t, "watcher", Some(&unique("replace", "watcher")))?;
    let mut old = Client::join(t, "old", Some(&shared))?;
    watcher.expect("connected")?;
    let _new = Client::join(t, "new", Some(&shared))?;
    let closing = old.expect("closing")?;
    if closing.get_str("reason").ok() != Some("replaced") {
        return Err(Failure::mismatch("closing.reason", "replaced", closing));
    }
    old.wire.closed("its replacement's hello", "WIRE.md §5: the replaced session is closed")?;
    let gone = watcher.expect("disconnected")?;
    if gone.get_str("reason").ok() != Some("replaced") {
        return Err(Failure::mismatch("disconnected.reason", "replaced", gone));
    }
    let came = watcher.expect("connected")?;
    let name = came.get_document("client").ok().and_then(|c| c.get_str("name").ok());
    match name {
        Some("new") => Ok(()),
        _ => Err(Failure::mismatch("connected.client.name", "new", came)),
    }
}

/// Expect a `refused` error frame with `code` and `id`, then the end of the connection.
fn expect_refused(wire: &mut Wire, id: u64, code: &str, sent: &str) -> Result<(), Failure> {
    let (kind, got_id, payload) = next_message(wire, &format!("waiting for the refusal of {sent}"))?;
    let refused = decode("refused", &payload)?;
    if (kind, got_id) != (ERROR, id)
        || refused.get_str("t").ok() != Some("refused")
        || refused.get_str("code").ok() != Some(code)
    {
        return Err(Failure::mismatch(
            format!("answer to {sent}"),
            format!("an error frame (id {id}) {{t:\"refused\", code:{code:?}}}"),
            (kind, got_id, refused),
        ));
    }
    wire.closed(sent, "WIRE.md §5: a refused connection is closed")
}

fn notification_before_hello(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&message(NOTIFICATION, 0, &bson_bytes(&doc! { "t": "broadcast", "op": "early", "data": {} })))?;
    expect_refused(&mut wire, 0, "bad_request", "a broadcast before any hello")
}

fn malformed_hello(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&message(REQUEST, 5, &bson_bytes(&doc! { "t": "hello", "game": "conformance" })))?;
    expect_refused(&mut wire, 5, "bad_request", "a hello without a name")
}
