//! The typed message frame suite (`WIRE.md` §4).
//!
//! **The target's contract:** a TCP server speaking message frames (inbound limit IN as given in
//! the [`Target`], no cipher) that answers every request with a response carrying the request's
//! id and payload, sends nothing in answer to notifications or heartbeats, may send heartbeats
//! of its own (the suite skips them), and ends a connection on a protocol error.
//! [`crate::reference::message_echo`] is Switchboard's; `switchboard-conformance message echo
//! ADDR` runs it.

use std::collections::BTreeSet;
use std::thread;

use crate::suite::{pattern, stage_frame, Case, Failure, Report, Target, Wire};

/// Every case of the suite, in the order they run.
pub static CASES: &[Case] = &[
    Case {
        name: "request-response",
        checks: "a request is answered by a response with its id and payload (§4)",
        run: request_response,
    },
    Case { name: "empty-payload", checks: "a 13-byte frame (no payload) is a valid request", run: empty_payload },
    Case { name: "large-id", checks: "ids are u64 little-endian at offset 5", run: large_id },
    Case { name: "pipelined", checks: "200 requests in one write get 200 responses, each id once", run: pipelined },
    Case {
        name: "notification-unanswered",
        checks: "a notification (id 0) gets no answer",
        run: notification_unanswered,
    },
    Case {
        name: "heartbeat-unanswered",
        checks: "a heartbeat is neither an error nor answered with a response",
        run: heartbeat_unanswered,
    },
    Case { name: "unknown-type", checks: "an unknown type byte ends the connection (§4)", run: unknown_type },
    Case {
        name: "shorter-than-prefix",
        checks: "a frame shorter than type + id (13 bytes) ends the connection",
        run: shorter_than_prefix,
    },
];

/// Run the suite (or its case `only`) against `target`.
pub fn run(target: &Target, only: Option<&str>) -> Report {
    crate::suite::run("message", CASES, target, only)
}

pub(crate) const REQUEST: u8 = 0;
pub(crate) const RESPONSE: u8 = 1;
pub(crate) const NOTIFICATION: u8 = 2;
pub(crate) const HEARTBEAT: u8 = 3;
pub(crate) const ERROR: u8 = 4;

/// A message frame: header, type, id, payload.
pub(crate) fn message(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(9 + payload.len());
    body.push(kind);
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(payload);
    stage_frame(&body)
}

/// The next message frame that is not a heartbeat, as (type, id, payload).
pub(crate) fn next_message(wire: &mut Wire, waiting_for: &str) -> Result<(u8, u64, Vec<u8>), Failure> {
    loop {
        let frame = wire.frame(waiting_for)?;
        if frame.len() < 13 {
            return Err(Failure::mismatch("reply length", "at least 13 bytes (header, type, id)", frame.len()));
        }
        let id = u64::from_le_bytes(frame[5..13].try_into().expect("eight bytes"));
        if frame[4] != HEARTBEAT {
            return Ok((frame[4], id, frame[13..].to_vec()));
        }
    }
}

fn expect_response(wire: &mut Wire, id: u64, payload: &[u8]) -> Result<(), Failure> {
    let got = next_message(wire, &format!("waiting for the response to request {id}"))?;
    if got != (RESPONSE, id, payload.to_vec()) {
        return Err(Failure::mismatch(format!("answer to request {id}"), (RESPONSE, id, payload), got));
    }
    Ok(())
}

fn request_response(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&message(REQUEST, 1, b"ping"))?;
    expect_response(&mut wire, 1, b"ping")?;
    wire.send(&message(REQUEST, 2, &pattern(300, 1)))?;
    expect_response(&mut wire, 2, &pattern(300, 1))
}

fn empty_payload(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&message(REQUEST, 1, b""))?;
    expect_response(&mut wire, 1, b"")
}

fn large_id(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let id = 0x0102_0304_0506_0708;
    wire.send(&message(REQUEST, id, b"id bytes"))?;
    expect_response(&mut wire, id, b"id bytes")?;
    wire.send(&message(REQUEST, u64::MAX, b"max"))?;
    expect_response(&mut wire, u64::MAX, b"max")
}

fn pipelined(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let payload = |id: u64| pattern((id as usize * 13) % 200, id as usize);
    let bytes: Vec<u8> = (1..=200u64).flat_map(|id| message(REQUEST, id, &payload(id))).collect();
    // Written from a thread of its own, so the answers flowing back cannot stall the write.
    let mut writer = wire.try_clone()?;
    let sender = thread::spawn(move || std::io::Write::write_all(&mut writer, &bytes));
    let mut seen = BTreeSet::new();
    let mut result = Ok(());
    for _ in 0..200 {
        match next_message(&mut wire, &format!("waiting for response {} of 200", seen.len() + 1)) {
            // Any order: the spec does not promise answers in request order.
            Ok((RESPONSE, id, got)) if (1..=200).contains(&id) && got == payload(id) && seen.insert(id) => {}
            Ok(other) => {
                result =
                    Err(Failure::mismatch("a pipelined answer", "a response to a request not yet answered", other));
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let sent = sender.join().map_err(|_| Failure::mismatch("writer thread", "finished", "panicked"))?;
    result?;
    Ok(sent?)
}

fn notification_unanswered(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&[message(NOTIFICATION, 0, b"one way"), message(REQUEST, 7, b"after")].concat())?;
    // Anything sent for the notification would arrive before this response.
    expect_response(&mut wire, 7, b"after")
}

fn heartbeat_unanswered(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&[message(HEARTBEAT, 1, b""), message(REQUEST, 1, b"still here")].concat())?;
    expect_response(&mut wire, 1, b"still here")
}

fn unknown_type(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    wire.send(&message(9, 1, b"what is this"))?;
    wire.closed("a frame with type byte 9", "WIRE.md §4: an unknown type byte is a protocol error")
}

fn shorter_than_prefix(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    // Header, type 0 and seven of the id's eight bytes.
    wire.send(&stage_frame(&[REQUEST, 1, 0, 0, 0, 0, 0, 0]))?;
    wire.closed("a 12-byte frame", "WIRE.md §4: a message frame is at least 13 bytes")
}
