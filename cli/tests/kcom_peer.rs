//! The `kcom` binary against the independent Python peer (`shared/peers/kcom_peer.py`, the bytes
//! of the originals), both directions, and against the peer hanging up in the middle of the data:
//! `-o` must then leave no file.

mod common;

use std::process::{Child, Command, Stdio};

use common::{entries, free_port, kcom, scratch};
use sha2_std::{Digest, Sha256};

const MSG: &str = "from the other side ✓";

/// The peer's `--data-len N` data: byte i is (i * 131 + 7) % 251.
fn peer_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 131 + 7) % 251) as u8).collect()
}

fn peer(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command.arg(switchboard_conformance::require_shared_dir().join("peers/kcom_peer.py")).args(args);
    command
}

/// The peer as a sender on `port`, already listening when this returns.
fn peer_sender(port: u16, args: &[&str]) -> Child {
    let port = port.to_string();
    let mut child = peer(&["send", "--ipv4", "--port", &port, "--timeout", "30"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run the KCOM5 peer");
    // It prints {"listening": PORT} once bound.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("listening"), "the peer did not start: {line:?}");
    child
}

#[test]
fn kcom_recv_takes_the_peers_transfer() {
    let dir = scratch("recv");
    let output = dir.join("out.bin");
    let port = free_port();
    let sender = peer_sender(port, &["--msg", MSG, "--data-len", "1000003"]);
    let out = kcom(&["recv", "--ipv4", "--port", &port.to_string(), "--json", "-o", output.to_str().unwrap()]);
    let sent = sender.wait_with_output().unwrap();
    assert_eq!(sent.status.code(), Some(0), "peer: {}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(out.status.code(), Some(0), "kcom: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["msg"].as_str(), json["data_len"].as_u64()), (Some(MSG), Some(1_000_003)));
    assert!(std::fs::read(&output).unwrap() == peer_pattern(1_000_003), "the data differs");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kcom_send_reaches_the_peer() {
    let dir = scratch("send");
    let input = dir.join("in.bin");
    let data: Vec<u8> = (0..777_777u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let port = free_port().to_string();
    let sender = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["send", "--ipv4", "--port", &port, "--timeout", "30", "--msg", MSG])
        .arg(&input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = peer(&["recv", "--ipv4", "--port", &port, "--timeout", "30"]).output().unwrap();
    let sent = sender.wait_with_output().unwrap();
    assert_eq!(sent.status.code(), Some(0), "kcom: {}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(got.status.code(), Some(0), "peer: {}", String::from_utf8_lossy(&got.stderr));
    let json: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(json["msg"], MSG);
    assert_eq!(json["data_len"], data.len());
    assert_eq!(json["sha256"], hex::encode(Sha256::digest(&data)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_peer_that_hangs_up_mid_data_leaves_no_output_file() {
    let dir = scratch("truncated");
    let output = dir.join("out.bin");
    let port = free_port();
    let sender = peer_sender(port, &["--data-len", "500000", "--truncate", "200000"]);
    let out = kcom(&["recv", "--ipv4", "--port", &port.to_string(), "-o", output.to_str().unwrap()]);
    sender.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("200000"), "the error says how much arrived: {stderr}");
    assert!(entries(&dir).is_empty(), "nothing is left behind: {:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}
