//! Sealed-profile cipher streams (WIRE.md §3b, AES-256-GCM): a sender's `crypto::SealedCipher`
//! seals bodies, and the receiver's opens a fuzzer-chosen sequence of those frames, replays,
//! bit flips, truncations and forged frames.
//!
//! Input: operations until the input ends.
//!
//! Checks: an untouched frame opens to its body exactly when its counter is above the last one
//! accepted, and is otherwise refused as a replay; a changed, cut or forged frame is always
//! refused (never opened to anything) and leaves the replay window where it was; every plain
//! frame's header matches its length.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{Script, FUZZ_KEY};
use switchboard_proto::crypto::{CipherError, FrameCipher, SealedCipher};
use switchboard_proto::stage::HEADER_LEN;
use switchboard_proto::SplitMix64;

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let mut sender = SealedCipher::new(FUZZ_KEY, Box::new(SplitMix64::new(1)));
    let mut receiver = SealedCipher::new(FUZZ_KEY, Box::new(SplitMix64::new(2)));
    let mut sealed: Vec<(Vec<u8>, BytesMut)> = Vec::new();

    while !script.is_empty() {
        let op = script.byte() % 5;
        if op == 0 || sealed.is_empty() {
            let body = script.bytes().to_vec();
            let mut frame = BytesMut::new();
            sender.seal(&body, &mut frame).expect("a small body seals");
            sealed.push((body, frame));
            continue;
        }
        let index = usize::from(script.byte()) % sealed.len();
        let (body, frame) = &sealed[index];
        let window = receiver.last_accepted_counter();
        let mut tampered = frame.clone();
        match op {
            1 => {
                let counter = index as u64;
                match receiver.open(frame.clone()) {
                    Ok(plain) => {
                        assert!(window.is_none_or(|last| counter > last), "frame {counter} opened after {window:?}");
                        assert_eq!(&plain[HEADER_LEN..], &body[..]);
                        assert_eq!(u32::from_le_bytes(*plain.first_chunk::<4>().unwrap()) as usize, plain.len());
                        assert_eq!(receiver.last_accepted_counter(), Some(counter));
                    }
                    Err(CipherError::Replay { counter: refused }) => {
                        assert!(refused == counter && window.is_some_and(|last| counter <= last));
                    }
                    Err(e) => panic!("an untouched frame failed: {e}"),
                }
                continue;
            }
            2 => {
                let at = usize::from(script.u16()) % tampered.len();
                tampered[at] ^= script.byte().max(1);
            }
            3 => tampered.truncate(usize::from(script.u16()) % tampered.len()),
            _ => {
                let forged = script.bytes();
                tampered = BytesMut::from(&((forged.len() + HEADER_LEN) as u32 | 0x8000_0000).to_le_bytes()[..]);
                tampered.extend_from_slice(forged);
            }
        }
        let result = receiver.open(tampered);
        assert!(result.is_err(), "a changed frame opened: {result:?}");
        assert_eq!(receiver.last_accepted_counter(), window, "a refused frame moved the window");
    }
});
