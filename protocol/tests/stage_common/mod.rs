//! Helpers shared by the `stage_*` integration tests.
#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_proto::crypto::{CipherError, FrameCipher};
use switchboard_proto::machine::drain_closing;
use switchboard_proto::stage::{encode_frame, Error, Event, PacketConnection};
use switchboard_proto::{Input, Instant, Machine};

/// The `frames` of `vectors/stage-crypto.json`.
pub fn vector_frames() -> Vec<serde_json::Value> {
    let path = switchboard_conformance::stage_crypto_vectors().expect("shared/ beside the checkout");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("stage-crypto.json is JSON");
    let frames = json["frames"].as_array().expect("a frames array").clone();
    assert!(!frames.is_empty(), "the vector file has frames");
    frames
}

/// A toy cipher for the framing tests (the real profiles live in `crypto`): XOR with a key
/// byte, plus a trailing checksum byte so that tampering is detected and `open` can fail.
pub struct XorCipher(pub u8);

impl FrameCipher for XorCipher {
    fn seal(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), CipherError> {
        let len = 4 + body.len() + 1;
        out.reserve(len);
        out.put_u32_le(len as u32 | 0x8000_0000);
        out.extend(body.iter().map(|b| b ^ self.0));
        out.put_u8(body.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
        Ok(())
    }

    fn open(&mut self, mut frame: BytesMut) -> Result<BytesMut, CipherError> {
        if frame.len() < 5 {
            return Err(CipherError::Truncated { len: frame.len() });
        }
        let sum = frame[frame.len() - 1];
        frame.truncate(frame.len() - 1);
        for b in &mut frame[4..] {
            *b ^= self.0;
        }
        if frame[4..].iter().fold(0u8, |a, b| a.wrapping_add(*b)) != sum {
            return Err(CipherError::Authentication);
        }
        let len = frame.len() as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        Ok(frame)
    }
}

/// A plain frame for `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(body, &mut out).unwrap();
    out.to_vec()
}

/// What a connection did with a sequence of chunks.
pub struct Fed {
    pub frames: Vec<Bytes>,
    pub finished: Option<Result<(), Error>>,
    /// The receive buffer as the driver holds it afterwards.
    pub buf: BytesMut,
}

/// Feed `chunks` the way a driver does: all into ONE receive buffer, draining after each, then
/// (if `eof`) an EOF, and a close if the EOF was clean. Stops feeding once the machine reports `Finished`.
pub fn feed_chunks(conn: &mut PacketConnection, chunks: &[&[u8]], eof: bool) -> Fed {
    let now = Instant::ZERO;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        conn.handle_input(now, Input::Stream(&mut buf)).expect("stream input accepted while open");
        // A fault in what arrived closes the read side; closing then says which.
        let out = drain_closing(conn, now);
        frames.extend(out.events.into_iter().map(|Event::Frame(f)| f));
        if out.finished.is_some() {
            return Fed { frames, finished: out.finished, buf };
        }
    }
    if eof {
        conn.handle_input(now, Input::Eof).expect("eof accepted while open");
        // A clean EOF leaves the connection sending; close it as an application done with the
        // peer would, so `finished` says how the stream ended.
        let out = drain_closing(conn, now);
        frames.extend(out.events.into_iter().map(|Event::Frame(f)| f));
        return Fed { frames, finished: out.finished, buf };
    }
    Fed { frames, finished: None, buf }
}

/// Cut `wire` at the given (arbitrary, possibly out-of-range or repeated) offsets.
pub fn cut<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| if wire.is_empty() { 0 } else { c % (wire.len() + 1) }).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}
