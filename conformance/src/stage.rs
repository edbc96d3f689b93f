//! The STAGE packet framing suite (`WIRE.md` §2).
//!
//! **The target's contract:** a TCP server with the `packet` filter, inbound limit IN as given
//! in the [`Target`], no cipher, that sends every frame it receives back unchanged (header
//! included), and ends a connection on a framing error. [`crate::reference::stage_echo`] is
//! Switchboard's; `switchboard-conformance stage echo ADDR` runs it.

use std::thread;
use std::time::Duration;

use crate::suite::{pattern, stage_frame, Case, Failure, Report, Target, Wire};

/// Every case of the suite, in the order they run.
pub static CASES: &[Case] = &[
    Case { name: "one-frame", checks: "a frame comes back unchanged (§2 layout)", run: one_frame },
    Case { name: "empty-body", checks: "a 4-byte frame (length = 4, no body) is valid", run: empty_body },
    Case { name: "bson-document", checks: "a BSON document is a plain frame as it is (§2)", run: bson_document },
    Case { name: "split-header", checks: "a header split across reads is reassembled", run: split_header },
    Case { name: "byte-at-a-time", checks: "frames arriving one byte per read are reassembled", run: byte_at_a_time },
    Case { name: "many-in-one-write", checks: "500 frames in one write come back in order", run: many_in_one_write },
    Case {
        name: "at-the-limit",
        checks: "a frame of exactly IN bytes is accepted (IN includes the header)",
        run: at_the_limit,
    },
    Case {
        name: "over-the-limit",
        checks: "a header announcing IN + 1 ends the connection before any body (§2)",
        run: over_the_limit,
    },
    Case {
        name: "length-under-four",
        checks: "header lengths 0 and 3 end the connection (§2)",
        run: length_under_four,
    },
    Case {
        name: "encrypted-without-cipher",
        checks: "bit 31 without a cipher ends the connection (§2)",
        run: encrypted_without_cipher,
    },
    Case {
        name: "eof-mid-frame",
        checks: "EOF inside a frame: the frames before it are delivered, the partial one is not",
        run: eof_mid_frame,
    },
    Case {
        name: "bad-peer-spares-others",
        checks: "one connection's framing error leaves another connection working",
        run: bad_peer_spares_others,
    },
];

/// Run the suite (or its case `only`) against `target`.
pub fn run(target: &Target, only: Option<&str>) -> Report {
    crate::suite::run("stage", CASES, target, only)
}

const LIMIT_RULE: &str = "WIRE.md §2: a length over IN is an error as soon as the header is seen";
const SHORT_RULE: &str = "WIRE.md §2: a length under 4 is an error";
const FLAG_RULE: &str = "WIRE.md §2: a frame with bit 31 set on a connection with no cipher is an error";

/// Send `frames` (one write), then expect each back, in order, unchanged.
fn echo(wire: &mut Wire, frames: &[Vec<u8>]) -> Result<(), Failure> {
    wire.send(&frames.concat())?;
    expect_echoes(wire, frames)
}

fn expect_echoes(wire: &mut Wire, frames: &[Vec<u8>]) -> Result<(), Failure> {
    for (i, sent) in frames.iter().enumerate() {
        let got = wire.frame(&format!("waiting for the echo of frame {i} ({} bytes)", sent.len()))?;
        if &got != sent {
            return Err(Failure::mismatch(format!("echo of frame {i}"), sent, got));
        }
    }
    Ok(())
}

fn one_frame(t: &Target) -> Result<(), Failure> {
    echo(&mut Wire::connect(t)?, &[stage_frame(b"switchboard conformance")])
}

fn empty_body(t: &Target) -> Result<(), Failure> {
    echo(&mut Wire::connect(t)?, &[stage_frame(b""), stage_frame(b"after the empty frame")])
}

fn bson_document(t: &Target) -> Result<(), Failure> {
    // {"a": 1} as BSON: i32 total length 12, int32 element "a" = 1, terminator.
    let document = b"\x0c\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x00".to_vec();
    echo(&mut Wire::connect(t)?, &[document])
}

fn split_header(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let frames = [stage_frame(&pattern(40, 1)), stage_frame(&pattern(9, 2))];
    let bytes = frames.concat();
    // Cuts inside the first header (after 1 byte) and the second (after 2 of its bytes).
    let second = frames[0].len();
    for part in [&bytes[..1], &bytes[1..second + 2], &bytes[second + 2..]] {
        wire.send(part)?;
        thread::sleep(Duration::from_millis(20));
    }
    expect_echoes(&mut wire, &frames)
}

fn byte_at_a_time(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let frames = [stage_frame(b"x"), stage_frame(&pattern(10, 3)), stage_frame(&pattern(50, 4))];
    wire.send_bytewise(&frames.concat(), Duration::from_micros(300))?;
    expect_echoes(&mut wire, &frames)
}

fn many_in_one_write(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let max_body = t.max_in.saturating_sub(4).min(300);
    let frames: Vec<Vec<u8>> = (0..500).map(|i| stage_frame(&pattern((i * 37) % (max_body + 1), i))).collect();
    // Written from a thread of its own: an echo server that writes while this side writes too
    // would otherwise fill both directions' buffers and wait on this case forever.
    let mut writer = wire.try_clone()?;
    let bytes = frames.concat();
    let sender = thread::spawn(move || std::io::Write::write_all(&mut writer, &bytes));
    let echoed = expect_echoes(&mut wire, &frames);
    let sent = sender.join().map_err(|_| Failure::mismatch("writer thread", "finished", "panicked"))?;
    echoed?;
    Ok(sent?)
}

fn at_the_limit(t: &Target) -> Result<(), Failure> {
    if !(4..=crate::suite::MAX_REPLY).contains(&t.max_in) {
        return Err(Failure::mismatch("the target's IN (as given to the suite)", "4 to 16 MiB", t.max_in));
    }
    let mut wire = Wire::connect(t)?;
    let frame = stage_frame(&pattern(t.max_in - 4, 5));
    let mut writer = wire.try_clone()?;
    let bytes = frame.clone();
    let sender = thread::spawn(move || std::io::Write::write_all(&mut writer, &bytes));
    let echoed = expect_echoes(&mut wire, &[frame]);
    sender.join().map_err(|_| Failure::mismatch("writer thread", "finished", "panicked"))??;
    echoed
}

fn over_the_limit(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    // The header only: a target that waits for the body before checking never answers.
    wire.send(&(t.max_in as u32 + 1).to_le_bytes())?;
    wire.closed(&format!("a header announcing {} bytes with IN = {}", t.max_in + 1, t.max_in), LIMIT_RULE)
}

fn length_under_four(t: &Target) -> Result<(), Failure> {
    for len in [0u32, 3] {
        let mut wire = Wire::connect(t)?;
        wire.send(&len.to_le_bytes())?;
        wire.closed(&format!("a header announcing length {len}"), SHORT_RULE)?;
    }
    Ok(())
}

fn encrypted_without_cipher(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let mut frame = stage_frame(&pattern(12, 6));
    frame[3] |= 0x80;
    wire.send(&frame)?;
    wire.closed("a whole frame with bit 31 set", FLAG_RULE)
}

fn eof_mid_frame(t: &Target) -> Result<(), Failure> {
    let mut wire = Wire::connect(t)?;
    let whole = stage_frame(&pattern(30, 7));
    let partial = stage_frame(&pattern(20, 8));
    wire.send(&[&whole[..], &partial[..10]].concat())?;
    wire.shutdown_write()?;
    expect_echoes(&mut wire, &[whole])?;
    wire.closed("EOF ten bytes into a 24-byte frame", "WIRE.md §2 framing: a partial frame is never delivered")
}

fn bad_peer_spares_others(t: &Target) -> Result<(), Failure> {
    let mut good = Wire::connect(t)?;
    echo(&mut good, &[stage_frame(b"before")])?;
    let mut bad = Wire::connect(t)?;
    bad.send(&2u32.to_le_bytes())?;
    bad.closed("a header announcing length 2", SHORT_RULE)?;
    echo(&mut good, &[stage_frame(b"after the other connection failed")])
}
