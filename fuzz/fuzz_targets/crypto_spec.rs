//! Cipher specs (`crypto::spec`, WIRE.md §3): `CryptoOption::parse`, `Profile` and `CipherSpec`
//! parsing, and `crypto::from_option`, on arbitrary text.
//!
//! Input: the text (inputs that are not UTF-8 are skipped).
//!
//! Checks: parsing never panics; an option's key is non-empty and is the text after the first
//! `=` verbatim (or the whole text for a bare key, which then means `RIJNDAEL/CBC/PKCS5Padding`);
//! a parsed profile or spec prints in a canonical form that parses back to itself; CFB never
//! carries padding; `from_option` accepts exactly the options `CryptoOption::parse` accepts, and
//! the cipher it builds seals a frame that a twin built from the same option opens.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_proto::crypto::{self, CipherSpec, CryptoOption, Mode, Padding, Profile};
use switchboard_proto::SplitMix64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = text.parse::<CipherSpec>() {
        assert!(spec.mode != Mode::Cfb || spec.padding == Padding::None, "CFB with padding: {spec}");
        assert_eq!(spec.to_string().parse::<CipherSpec>(), Ok(spec), "{text:?} does not print back");
    }
    if let Ok(profile) = text.parse::<Profile>() {
        assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile), "{text:?} does not print back");
    }
    let parsed = CryptoOption::parse(text);
    let built = crypto::from_option(text, Box::new(SplitMix64::new(1)));
    assert_eq!(parsed.is_ok(), built.is_ok(), "parse and from_option disagree on {text:?}");
    let (Ok(option), Ok(mut cipher)) = (parsed, built) else {
        return;
    };
    assert!(!option.key.is_empty());
    match text.split_once('=') {
        Some((_, key)) => assert_eq!(option.key, key, "the key is not verbatim"),
        None => {
            assert_eq!(option.key, text);
            assert_eq!(option.profile, Profile::Stage(CipherSpec::DEFAULT));
        }
    }
    let mut twin = crypto::from_option(text, Box::new(SplitMix64::new(2))).expect("the same option builds twice");
    let body = b"a body of thirty-two bytes......";
    let mut sealed = BytesMut::new();
    cipher.seal(body, &mut sealed).expect("a block-aligned body seals");
    let opened = twin.open(sealed).expect("a twin opens what was sealed");
    assert_eq!(&opened[4..], body, "the twin opened something else");
});
