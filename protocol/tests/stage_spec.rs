//! The connection-spec parser: the seed's and WIRE.md's examples, every malformed part, and
//! quickcheck properties (no panics, Display round-trips).

use quickcheck::{Arbitrary, Gen, QuickCheck};
use switchboard_proto::stage::{Address, ConnectionSpec, Filter, FramingConfig, Scheme, SpecError, DEFAULT_LIMIT};
use switchboard_proto::{Blame, Duration, Fault};

use std::net::SocketAddr;

fn parse(s: &str) -> ConnectionSpec {
    ConnectionSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> SpecError {
    match ConnectionSpec::parse(s) {
        Ok(spec) => panic!("{s} parsed as {spec:?}"),
        Err(e) => e,
    }
}

fn inet(s: &str) -> Address {
    Address::Inet(s.parse::<SocketAddr>().unwrap())
}

const K: usize = 1024;
const M: usize = 1024 * 1024;

#[test]
fn the_documented_examples() {
    let spec = parse("tcp://0.0.0.0:8081?packet=10k,40k");
    assert_eq!((spec.scheme, &spec.address), (Scheme::Tcp, &inet("0.0.0.0:8081")));
    assert_eq!(spec.framing_config(), FramingConfig::packet(10 * K, 40 * K));
    assert_eq!(spec.crypto, None);

    let spec = parse("tcp://[::1]:8081?bson=1m:1m");
    assert_eq!(spec.address, inet("[::1]:8081"));
    assert_eq!((spec.filter, spec.max_in, spec.max_out), (Filter::Packet, M, M));

    let spec = parse("tcp://[::1]:8081?bson=1m,1m");
    assert_eq!((spec.max_in, spec.max_out), (M, M));

    let spec = parse("udp://224.0.0.1:8082");
    assert_eq!((spec.scheme, &spec.address), (Scheme::Udp, &inet("224.0.0.1:8082")));
    assert!(spec.is_multicast() && spec.scheme.is_datagram());
    assert_eq!(spec.framing_config(), FramingConfig::packet(DEFAULT_LIMIT, DEFAULT_LIMIT), "udp is always packet");

    let spec = parse("udp://[ff02::1]:9000");
    assert!(spec.is_multicast());
    assert_eq!(spec.address, inet("[ff02::1]:9000"));

    let spec = parse("unix:///path/to.sock?text=4k,0");
    assert_eq!(spec.address, Address::Unix("/path/to.sock".into()));
    assert_eq!(spec.framing_config(), FramingConfig::text(4 * K, 0));
    assert!(!spec.is_multicast());

    let spec = parse("quic://example.org:443?packet");
    assert_eq!(spec.address, Address::Host { host: "example.org".into(), port: 443 });
    assert_eq!(spec.framing_config(), FramingConfig::packet(8192, 8192));

    let spec = parse("quic://127.0.0.1:4433?packet");
    assert_eq!(spec.address, inet("127.0.0.1:4433"));
}

#[test]
fn options() {
    let spec = parse("tcp://10.0.0.1:80?packet=64k,0&expire=30000&commit=5&crypto=AES/CFB=my key");
    assert_eq!(spec.expire, Some(Duration::from_secs(30)));
    assert_eq!(spec.commit, Duration::from_millis(5));
    assert_eq!(spec.crypto.as_deref(), Some("AES/CFB=my key"), "kept exactly as written");
    let cfg = spec.framing_config();
    assert_eq!(
        cfg,
        FramingConfig::packet(64 * K, 0)
            .with_expire(Some(Duration::from_secs(30)))
            .with_commit(Duration::from_millis(5))
    );

    for never in ["expire=-1", "expire=none", "expire=NONE"] {
        assert_eq!(parse(&format!("tcp://h.example:1?packet&{never}")).expire, None, "{never}");
    }
    // Options may come without a filter: the stream is then raw.
    let spec = parse("tcp://h.example:1?expire=100");
    assert_eq!(spec.filter, Filter::Raw);
    assert_eq!(spec.framing_config(), FramingConfig::raw().with_expire(Some(Duration::from_millis(100))));
    assert_eq!(parse("tcp://h.example:1?crypto=plainkey").crypto.as_deref(), Some("plainkey"));
}

#[test]
fn limits_suffixes_separators_and_defaults() {
    let limits = |q: &str| {
        let s = parse(&format!("tcp://127.0.0.1:1?{q}"));
        (s.max_in, s.max_out)
    };
    assert_eq!(limits("packet=100,200"), (100, 200));
    assert_eq!(limits("packet=100b:200B"), (100, 200));
    assert_eq!(limits("packet=2K,3M"), (2 * K, 3 * M));
    assert_eq!(limits("packet=4,0"), (4, 0));
    assert_eq!(limits("packet=10k"), (10 * K, DEFAULT_LIMIT), "OUT left at BUFSIZ like the original");
    assert_eq!(limits("packet"), (DEFAULT_LIMIT, DEFAULT_LIMIT));
    assert_eq!(limits("bson"), (DEFAULT_LIMIT, DEFAULT_LIMIT));
    assert_eq!(limits("text=1,1"), (1, 1));
    assert_eq!(limits("packet=2047m,0"), (2047 * M, 0));
    assert_eq!(parse("tcp://127.0.0.1:1").max_in, usize::MAX, "raw: no inbound limit");
}

#[test]
fn schemes_are_case_insensitive_and_addresses_varied() {
    assert_eq!(parse("TCP://127.0.0.1:1").scheme, Scheme::Tcp);
    assert_eq!(parse("Unix://rel.sock").address, Address::Unix("rel.sock".into()));
    assert_eq!(parse("tcp://[fe80::1%3]:80").address, Address::Inet("[fe80::1%3]:80".parse().unwrap()));
    assert_eq!(parse("tcp://localhost:0").address, Address::Host { host: "localhost".into(), port: 0 });
    assert_eq!(parse("tcp://my_host-1.lan:65535").address, Address::Host { host: "my_host-1.lan".into(), port: 65535 });
}

#[test]
fn every_malformed_part_has_its_own_error() {
    use SpecError::*;
    let cases: Vec<(&str, SpecError)> = vec![
        ("", Empty),
        ("0.0.0.0:8081", MissingScheme),
        ("://0.0.0.0:8081", MissingScheme),
        ("http://0.0.0.0:8081", UnknownScheme("http".into())),
        ("tcp://", MissingHost),
        ("tcp://:8081", MissingHost),
        ("tcp://[]:8081", MissingHost),
        ("tcp://0.0.0.0", MissingPort),
        ("tcp://0.0.0.0:", MissingPort),
        ("tcp://[::1]", MissingPort),
        ("tcp://0.0.0.0:http", BadPort("http".into())),
        ("tcp://0.0.0.0:65536", BadPort("65536".into())),
        ("tcp://0.0.0.0:-1", BadPort("-1".into())),
        ("tcp://0.0.0.0:80/path", BadPort("80/path".into())),
        ("unix://", MissingPath),
        ("unix://?text", MissingPath),
        ("unix://a\0b", BadPath { path: "a\0b".into(), why: "contains a NUL byte" }),
        ("tcp://0.0.0.0:1?json=1k,1k", UnknownFilter("json".into())),
        ("tcp://0.0.0.0:1?packet&bson", DuplicateFilter("bson".into())),
        ("tcp://0.0.0.0:1?packet&expire=5&color=red", UnknownOption("color".into())),
        ("tcp://0.0.0.0:1?packet&expire=5&expire=6", DuplicateOption("expire")),
        ("tcp://0.0.0.0:1?packet&commit=1&commit=1", DuplicateOption("commit")),
        ("tcp://0.0.0.0:1?crypto=a&crypto=b", DuplicateOption("crypto")),
        ("tcp://0.0.0.0:1?packet&&expire=5", EmptyQueryItem),
        ("tcp://0.0.0.0:1?packet&", EmptyQueryItem),
        ("udp://224.0.0.1:8082?text=1k,1k", TextOverDatagram),
    ];
    let mut seen: Vec<std::mem::Discriminant<SpecError>> = Vec::new();
    for (text, expected) in cases {
        let e = err(text);
        assert_eq!(e, expected, "{text}");
        assert_eq!(e.fault(), Fault::Caller);
        assert!(!e.to_string().is_empty());
        if !seen.contains(&std::mem::discriminant(&e)) {
            seen.push(std::mem::discriminant(&e));
        }
    }
    // Every kind above is distinct (BadHost, BadLimit, BadOptionValue: tests below).
    assert_eq!(seen.len(), 14);
}

#[test]
fn bad_hosts_say_what_is_wrong() {
    for host in [
        "tcp://::1:8081",
        "tcp://[::1:8081",
        "tcp://[::1]x:8081",
        "tcp://[1.2.3.4]:80",
        "tcp://[fe80::1%eth0]:80",
        "tcp://999.1.1.1:80",
        "tcp://1.2.3:80",
        "tcp://exa mple.org:80",
        "tcp://user@example.org:80",
        "tcp://-bad.org:80",
        "tcp://a..b:80",
        "tcp://example.org.:80",
    ] {
        assert!(matches!(err(host), SpecError::BadHost { .. }), "{host}: {:?}", err(host));
    }
    let SpecError::BadHost { host, why } = err("tcp://::1:8081") else { unreachable!() };
    assert_eq!(host, "::1");
    assert!(why.contains("brackets"));
}

#[test]
fn bad_limits_name_the_text() {
    let limit = |q: &str| match err(&format!("tcp://127.0.0.1:1?{q}")) {
        SpecError::BadLimit { text, .. } => text,
        other => panic!("{q}: {other:?}"),
    };
    assert_eq!(limit("packet=10x,4k"), "10x");
    assert_eq!(limit("packet=10k,4q"), "4q");
    assert_eq!(limit("packet=,4k"), "");
    assert_eq!(limit("packet="), "");
    assert_eq!(limit("packet=k"), "k");
    assert_eq!(limit("packet=1.5k"), "1.5k");
    assert_eq!(limit("packet=1k,2k,3k"), "1k,2k,3k");
    assert_eq!(limit("packet=2048m"), "2048m");
    assert_eq!(limit("packet=99999999999999999999999"), "99999999999999999999999");
    assert_eq!(limit("packet=3,0"), "3", "a frame is at least its 4-byte header");
    assert_eq!(limit("text=0,0"), "0");
    assert_eq!(limit("bson=-1"), "-1");
}

#[test]
fn bad_option_values() {
    let bad = |q: &str| match err(&format!("tcp://127.0.0.1:1?packet&{q}")) {
        SpecError::BadOptionValue { option, value, .. } => (option, value),
        other => panic!("{q}: {other:?}"),
    };
    assert_eq!(bad("expire=0"), ("expire", "0".into()));
    assert_eq!(bad("expire=-5"), ("expire", "-5".into()));
    assert_eq!(bad("expire=soon"), ("expire", "soon".into()));
    assert_eq!(bad("expire"), ("expire", "".into()));
    assert_eq!(bad("commit=1.5"), ("commit", "1.5".into()));
    assert_eq!(bad("commit=99999999999999999999999"), ("commit", "99999999999999999999999".into()));
    assert_eq!(bad("commit="), ("commit", "".into()));
    assert_eq!(bad("crypto="), ("crypto", "".into()));
    assert_eq!(bad("crypto"), ("crypto", "".into()));
}

#[test]
fn display_is_canonical_and_round_trips() {
    let cases = [
        ("tcp://0.0.0.0:8081?packet=10k,40k", "tcp://0.0.0.0:8081?packet=10k,40k"),
        ("tcp://[::1]:8081?bson=1m:1m", "tcp://[::1]:8081?packet=1m,1m"),
        ("udp://224.0.0.1:8082", "udp://224.0.0.1:8082?packet=8k,8k"),
        ("udp://[ff02::1]:9000?packet", "udp://[ff02::1]:9000?packet=8k,8k"),
        ("unix:///path/to.sock?text=4k,0", "unix:///path/to.sock?text=4k,0"),
        ("QUIC://example.org:443?packet=1536,1025", "quic://example.org:443?packet=1536,1025"),
        ("tcp://[fe80::1%3]:80?expire=none", "tcp://[fe80::1%3]:80"),
        (
            "tcp://1.2.3.4:5?commit=7&crypto=SEED/CBC/PKCS5Padding=k=y?&expire=9&packet=20b",
            "tcp://1.2.3.4:5?packet=20,8k&expire=9&commit=7&crypto=SEED/CBC/PKCS5Padding=k=y?",
        ),
    ];
    for (input, canonical) in cases {
        let spec = parse(input);
        assert_eq!(spec.to_string(), canonical, "{input}");
        assert_eq!(parse(canonical), spec, "{canonical} parses back");
        assert_eq!(canonical.parse::<ConnectionSpec>().unwrap(), spec);
    }
}

/// Strings made of the characters specs are made of, so parsing gets past the first check.
#[derive(Clone, Debug)]
struct SpecLike(String);

impl Arbitrary for SpecLike {
    fn arbitrary(g: &mut Gen) -> Self {
        // (mostly good, sometimes bad) pieces for each part.
        const SCHEMES: (&[&str], &[&str]) =
            (&["tcp://", "udp://", "unix://", "quic://", "TCP://"], &["://", "tcp:/", "", "ftp://"]);
        const HOSTS: (&[&str], &[&str]) = (
            &["0.0.0.0", "224.0.0.1", "[::1]", "[ff02::1]", "[fe80::1%2]", "example.org", "a-b.c_d", "/tmp/s.sock"],
            &["[ff02::1", "::1", "999.0.0.1", "", "\u{e9}t\u{e9}", "[x]", "-a."],
        );
        const PORTS: (&[&str], &[&str]) = (&[":8081", ":0", ":65535"], &[":65536", ":", "", ":x", ":80/p"]);
        const KEYS: (&[&str], &[&str]) =
            (&["packet", "bson", "text", "expire", "commit", "crypto"], &["json", "", "PACKET"]);
        const VALUES: (&[&str], &[&str]) = (
            &["", "=10k,40k", "=1m:1m", "=4,0", "=8k", "=none", "=-1", "=250", "=AES/CFB=key", "=2047M,0b"],
            &["=", "=3", "=1,2,3", "=0", "=1.5", "=k&", "=99999999999999999999", "=\u{1f600}"],
        );
        const NOISE: &[&str] = &["?", "&", "=", ",", ":", "%", "[", "]", " ", "\0", "k", "/"];
        let pick = |g: &mut Gen, (good, bad): (&[&'static str], &[&'static str])| {
            let from = if u8::arbitrary(g) % 8 == 0 { bad } else { good };
            *g.choose(from).unwrap()
        };
        let mut s = String::new();
        s.push_str(pick(g, SCHEMES));
        s.push_str(pick(g, HOSTS));
        s.push_str(pick(g, PORTS));
        let items = usize::arbitrary(g) % 5;
        for i in 0..items {
            s.push_str(if i == 0 { "?" } else { "&" });
            s.push_str(pick(g, KEYS));
            s.push_str(pick(g, VALUES));
        }
        // Now and then, a stray character anywhere.
        if u8::arbitrary(g) % 8 == 0 {
            let at = usize::arbitrary(g) % (s.len() + 1);
            if s.is_char_boundary(at) {
                s.insert_str(at, g.choose(NOISE).unwrap());
            }
        }
        SpecLike(s)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(SpecLike))
    }
}

#[test]
fn qc_parser_never_panics_on_arbitrary_strings() {
    fn prop(s: String) -> bool {
        let _ = ConnectionSpec::parse(&s);
        true
    }
    QuickCheck::new().rng(Gen::from_size_and_seed(100, 11)).tests(2000).quickcheck(prop as fn(String) -> bool);
}

#[test]
fn qc_whatever_parses_displays_to_something_that_parses_back_equal() {
    fn prop(s: SpecLike) -> bool {
        match ConnectionSpec::parse(&s.0) {
            Ok(spec) => ConnectionSpec::parse(&spec.to_string()).as_ref() == Ok(&spec),
            Err(e) => e.fault() == Fault::Caller,
        }
    }
    QuickCheck::new().rng(Gen::from_size_and_seed(100, 12)).tests(5000).quickcheck(prop as fn(SpecLike) -> bool);
}

#[test]
fn qc_generated_valid_specs_parse_to_their_parts() {
    fn prop(ip: u32, port: u16, max_in: u32, max_out: u32, text: bool, expire: Option<u32>, commit: u32) -> bool {
        let ip = std::net::Ipv4Addr::from(ip);
        let max_in = 4 + (max_in % (1 << 20)) as usize;
        let max_out = (max_out % (1 << 20)) as usize;
        let filter = if text { "text" } else { "packet" };
        let mut s = format!("tcp://{ip}:{port}?{filter}={max_in}:{max_out}&commit={commit}");
        if let Some(e) = expire {
            s.push_str(&format!("&expire={}", e.max(1)));
        }
        let spec = match ConnectionSpec::parse(&s) {
            Ok(spec) => spec,
            Err(_) => return false,
        };
        spec.address == Address::Inet(SocketAddr::from((ip, port)))
            && spec.filter == if text { Filter::Text } else { Filter::Packet }
            && (spec.max_in, spec.max_out) == (max_in, max_out)
            && spec.expire == expire.map(|e| Duration::from_millis(e.max(1) as u64))
            && spec.commit == Duration::from_millis(commit as u64)
            && ConnectionSpec::parse(&spec.to_string()).as_ref() == Ok(&spec)
    }
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(100, 13))
        .tests(1000)
        .quickcheck(prop as fn(u32, u16, u32, u32, bool, Option<u32>, u32) -> bool);
}
