//! KCOM5 address strings (WIRE.md §1): a port and a session key in one printable string.
//!
//! `pack(13600, &[0x01, 0xab])` is `"13600.01.ab"`: the decimal port, then each key byte as two
//! lower-case hex digits, joined with `.`. The key length must divide 48. [`unpack`] reads the
//! string case-insensitively and repeats the key to 48 bytes. Where the originals crash (empty
//! key, bad hex, bad port), these return an [`AddressError`].

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::fault::{Blame, Fault};

/// The length [`unpack`] always returns a key at; a packed key's length must divide it.
pub const KEY_LEN: usize = 48;

/// Why an address could not be packed or unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address string is empty.
    #[error("the address is empty")]
    Empty,
    /// There is no key (no `.hh` group after the port).
    #[error("the address has no key")]
    EmptyKey,
    /// The key length does not divide 48.
    #[error("key of {len} bytes: its length must divide 48 (1, 2, 3, 4, 6, 8, 12, 16, 24 or 48)")]
    BadKeyLength {
        /// The key length.
        len: usize,
    },
    /// A key group is not exactly two hex digits.
    #[error("key byte {index} is {group:?}, not two hex digits")]
    BadHex {
        /// Which key byte (0 = the first group after the port).
        index: usize,
        /// The group as written.
        group: String,
    },
    /// The port is not a decimal number.
    #[error("port {port:?} is not a decimal number")]
    BadPort {
        /// The port as written.
        port: String,
    },
    /// The port is a number above 65535.
    #[error("port {port} is over 65535")]
    PortOutOfRange {
        /// The port as written.
        port: String,
    },
}

impl Blame for AddressError {
    /// An address is configuration handed in by the caller.
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

fn check_key_len(len: usize) -> Result<(), AddressError> {
    match len {
        0 => Err(AddressError::EmptyKey),
        len if KEY_LEN % len != 0 => Err(AddressError::BadKeyLength { len }),
        _ => Ok(()),
    }
}

/// Pack `port` and `key` into an address string: `"PORT.hh.hh…"`, lower-case hex.
///
/// ```
/// assert_eq!(switchboard_proto::kcom::pack(13600, &[0x01, 0xab]).unwrap(), "13600.01.ab");
/// ```
pub fn pack(port: u16, key: &[u8]) -> Result<String, AddressError> {
    check_key_len(key.len())?;
    let mut out = String::with_capacity(5 + 3 * key.len());
    // Writing to a String cannot fail.
    let _ = write!(out, "{port}");
    for byte in key {
        let _ = write!(out, ".{byte:02x}");
    }
    Ok(out)
}

/// Unpack an address string into its port and its key repeated to 48 bytes. Hex digits may be
/// upper- or lower-case.
///
/// ```
/// let (port, key) = switchboard_proto::kcom::unpack("13600.01.AB").unwrap();
/// assert_eq!(port, 13600);
/// assert_eq!(key[..4], [0x01, 0xab, 0x01, 0xab]);
/// ```
pub fn unpack(address: &str) -> Result<(u16, [u8; KEY_LEN]), AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    let mut parts = address.split('.');
    let port_text = parts.next().unwrap_or_default();
    let port = parse_port(port_text)?;
    let key = parts
        .enumerate()
        .map(|(index, group)| {
            parse_hex_byte(group).ok_or_else(|| AddressError::BadHex { index, group: group.to_owned() })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    check_key_len(key.len())?;
    let mut full = [0u8; KEY_LEN];
    for (dest, byte) in full.iter_mut().zip(key.iter().cycle()) {
        *dest = *byte;
    }
    Ok((port, full))
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::BadPort { port: text.to_owned() });
    }
    // Digits only, so the one way to fail is overflow (leading zeros are fine, as in the originals).
    let mut port: u16 = 0;
    for digit in text.bytes().map(|b| u16::from(b - b'0')) {
        port = port
            .checked_mul(10)
            .and_then(|p| p.checked_add(digit))
            .ok_or_else(|| AddressError::PortOutOfRange { port: text.to_owned() })?;
    }
    Ok(port)
}

fn parse_hex_byte(group: &str) -> Option<u8> {
    let &[hi, lo] = group.as_bytes() else { return None };
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}
