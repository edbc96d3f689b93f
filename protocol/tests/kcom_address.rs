//! KCOM5 address strings: the WIRE.md §1 examples, every error case, and a round-trip property.

use quickcheck::{QuickCheck, TestResult};
use switchboard_proto::kcom::{pack, unpack, AddressError, KEY_LEN};
use switchboard_proto::{Blame, Fault};

fn repeated(key: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = key[i % key.len()];
    }
    out
}

#[test]
fn wire_md_examples() {
    assert_eq!(pack(13600, &[0x01, 0xab]).unwrap(), "13600.01.ab");
    assert_eq!(unpack("13600.01.AB").unwrap(), (13600, repeated(&[0x01, 0xab])));
    assert_eq!(unpack("13600.01.ab").unwrap(), (13600, repeated(&[0x01, 0xab])));
}

#[test]
fn every_divisor_of_48_packs_and_unpacks() {
    for len in [1usize, 2, 3, 4, 6, 8, 12, 16, 24, 48] {
        let key: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
        let address = pack(65535, &key).unwrap();
        assert_eq!(address.len(), 5 + 3 * len);
        assert_eq!(unpack(&address).unwrap(), (65535, repeated(&key)));
    }
}

#[test]
fn port_edges() {
    assert_eq!(pack(0, &[0xff]).unwrap(), "0.ff");
    assert_eq!(unpack("0.ff").unwrap().0, 0);
    assert_eq!(unpack("65535.ff").unwrap().0, 65535);
    // Leading zeros are a decimal number like any other.
    assert_eq!(unpack("013600.ff").unwrap().0, 13600);
}

#[test]
fn pack_errors() {
    assert_eq!(pack(1, &[]), Err(AddressError::EmptyKey));
    for len in [5usize, 7, 9, 10, 32, 47, 49, 96] {
        assert_eq!(pack(1, &vec![0; len]), Err(AddressError::BadKeyLength { len }), "len {len}");
    }
}

#[test]
fn unpack_errors() {
    let bad_hex = |index: usize, group: &str| AddressError::BadHex { index, group: group.to_owned() };
    let bad_port = |port: &str| AddressError::BadPort { port: port.to_owned() };
    let range = |port: &str| AddressError::PortOutOfRange { port: port.to_owned() };
    let cases: &[(&str, AddressError)] = &[
        ("", AddressError::Empty),
        ("13600", AddressError::EmptyKey),
        ("13600.", bad_hex(0, "")),
        ("13600.0g", bad_hex(0, "0g")),
        ("13600.01.1", bad_hex(1, "1")),
        ("13600.01.abc", bad_hex(1, "abc")),
        ("13600.01. a", bad_hex(1, " a")),
        ("13600.01.02.03.04.05", AddressError::BadKeyLength { len: 5 }),
        ("x.01", bad_port("x")),
        (".01", bad_port("")),
        ("-1.01", bad_port("-1")),
        ("+1.01", bad_port("+1")),
        (" 1.01", bad_port(" 1")),
        ("65536.01", range("65536")),
        ("99999999999999999999999.01", range("99999999999999999999999")),
    ];
    for (address, want) in cases {
        let got = unpack(address);
        assert_eq!(got.as_ref().err(), Some(want), "unpack({address:?}) = {got:?}");
        assert_eq!(want.fault(), Fault::Caller);
        assert!(!want.to_string().is_empty());
    }
    let too_long = format!("1{}", ".00".repeat(49));
    assert_eq!(unpack(&too_long), Err(AddressError::BadKeyLength { len: 49 }));
}

#[test]
fn round_trip_property() {
    fn prop(port: u16, key: Vec<u8>) -> TestResult {
        if key.is_empty() || KEY_LEN % key.len() != 0 {
            return TestResult::from_bool(pack(port, &key).is_err());
        }
        let address = pack(port, &key).unwrap();
        let upper = address.to_ascii_uppercase();
        TestResult::from_bool(
            unpack(&address) == Ok((port, repeated(&key))) && unpack(&upper) == Ok((port, repeated(&key))),
        )
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(u16, Vec<u8>) -> TestResult);
}

#[test]
fn unpack_never_panics() {
    fn prop(text: String) -> bool {
        // Either a valid result or a typed error; a panic fails the test.
        let _ = unpack(&text);
        let _ = unpack(&format!("1.{text}"));
        true
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(String) -> bool);
}
