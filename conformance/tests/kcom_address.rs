//! KCOM5 address strings against the independent Python peer (`shared/peers/kcom_peer.py`):
//! `pack` and `unpack` must give the same answers, and refuse the same inputs.

use std::process::{Command, Output};

use switchboard_proto::kcom::{pack, unpack};

fn peer(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(switchboard_conformance::require_shared_dir().join("peers/kcom_peer.py"))
        .args(args)
        .output()
        .expect("python3 is needed to run the KCOM5 peer")
}

/// The peer's answer: `Some(stdout)` on success, `None` when it refused the input (exit 1).
fn peer_answer(args: &[&str]) -> Option<String> {
    let out = peer(args);
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).expect("peer prints UTF-8").trim_end().to_owned()),
        Some(1) => None,
        other => panic!("peer {args:?} exited with {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn pack_matches_the_python_peer() {
    let key48: String = (0..48u8).map(|b| format!("{:02x}", b.wrapping_mul(53))).collect();
    let cases: &[(u16, &str)] =
        &[(13600, "01ab"), (0, "ff"), (65535, &key48), (40000, "a1b2c3"), (12345, "00112233445566778899aabbccddeeff")];
    for &(port, key_hex) in cases {
        let key = hex::decode(key_hex).unwrap();
        let ours = pack(port, &key).unwrap();
        assert_eq!(Some(ours), peer_answer(&["pack", &port.to_string(), key_hex]), "pack({port}, {key_hex})");
    }
    for key_hex in ["0102030405", &key48[..94], &format!("{key48}00")] {
        let key = hex::decode(key_hex).unwrap();
        assert!(pack(1, &key).is_err());
        assert_eq!(peer_answer(&["pack", "1", key_hex]), None, "peer accepted key {key_hex}");
    }
}

#[test]
fn unpack_matches_the_python_peer() {
    let long = format!("65535{}", (0..24).map(|i| format!(".{:02X}", i * 7)).collect::<String>());
    for address in ["13600.01.AB", "13600.01.ab", "1.00", "013600.0A.bC.De", long.as_str()] {
        let (port, key) = unpack(address).unwrap();
        let answer = peer_answer(&["unpack", address]).expect("peer refused a valid address");
        let theirs: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(theirs["port"], u64::from(port), "unpack({address}) port");
        assert_eq!(theirs["key_hex"], hex::encode(key), "unpack({address}) key");
    }
    for address in ["13600", "13600.01.02.03.04.05", "x.01", "13600.0g", "13600."] {
        assert!(unpack(address).is_err(), "we accepted {address:?}");
        assert_eq!(peer_answer(&["unpack", address]), None, "peer accepted {address:?}");
    }
}
