//! Connection specs (`stage::spec`, WIRE.md §2): `ConnectionSpec::parse`, `parse_size` and
//! `aton` on arbitrary text.
//!
//! Input: the text (inputs that are not UTF-8 are skipped; the parser takes `&str`).
//!
//! Checks: parsing never panics; a parsed spec's `Display` form parses back to an equal spec
//! and is canonical (printing that again gives the same text); the limits obey the grammar
//! (packet IN ≥ 4, text IN ≥ 1, both at most 2³¹−1, raw IN unlimited with OUT 0, never text over
//! udp, udp always packet); `framing_config` carries the spec's fields; a size parses to at most
//! 2³¹−1; every address `aton` reads, `ntoa` writes back as text that `aton` reads to the same
//! address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::stage::{aton, ntoa, parse_size, Address, ConnectionSpec, Filter, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(size) = parse_size(text) {
        assert!(size <= MAX_FRAME_LEN, "{text:?} parsed to {size}");
    }
    if let Ok(addr) = aton(text) {
        assert_eq!(aton(&ntoa(addr)), Ok(addr), "{text:?} does not survive ntoa and aton");
    }
    let Ok(spec) = ConnectionSpec::parse(text) else {
        return;
    };
    let printed = spec.to_string();
    let again = ConnectionSpec::parse(&printed).unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) fails: {e}"));
    assert_eq!(again, spec, "{text:?} printed as {printed:?} parses differently");
    assert_eq!(again.to_string(), printed, "the printed form is not canonical");

    match spec.filter {
        Filter::Packet => assert!((4..=MAX_FRAME_LEN).contains(&spec.max_in), "packet IN {}", spec.max_in),
        Filter::Text => assert!((1..=MAX_FRAME_LEN).contains(&spec.max_in), "text IN {}", spec.max_in),
        Filter::Raw => assert_eq!((spec.max_in, spec.max_out), (usize::MAX, 0), "raw limits"),
    }
    assert!(spec.max_out <= MAX_FRAME_LEN);
    if spec.scheme.is_datagram() {
        assert_eq!(spec.filter, Filter::Packet, "a datagram spec without packet framing");
    }
    if let Address::Inet(addr) = &spec.address {
        assert_eq!(aton(&ntoa(*addr)), Ok(*addr));
    }
    let config = spec.framing_config();
    assert_eq!(
        (config.filter, config.max_in, config.max_out, config.expire, config.commit),
        (spec.filter, spec.max_in, spec.max_out, spec.expire, spec.commit)
    );
});
