//! The `kcom` binary: address packing, a send → recv round trip between two processes, and
//! exit status 2 for bad arguments.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

fn kcom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kcom")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap().trim_end().to_owned()
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn pack_and_unpack() {
    let out = kcom(&["pack", "13600", "01AB"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "13600.01.ab");

    let out = kcom(&["unpack", "13600.01.ab"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["port"], 13600);
    assert_eq!(json["key_hex"], "01ab".repeat(24));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["pack", "13600", "0102030405"],
        &["pack", "70000", "01"],
        &["pack", "1", "zz"],
        &["unpack", "13600.0x"],
        &["unpack"],
        &["send"],
        &["send", "--port", "nope", "-"],
        &["send", "--bogus", "-"],
        &["send", "--port", "1", "--address", "2.01", "-"],
        &["recv", "--address", "13600"],
        &["recv", "--timeout"],
        &["recv", "extra"],
    ] {
        let out = kcom(args);
        assert_eq!(out.status.code(), Some(2), "kcom {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"), "kcom {args:?} prints the usage");
    }
}

#[test]
fn recv_with_nobody_sending_exits_1() {
    let port = free_port().to_string();
    let out = kcom(&["recv", "--ipv4", "--port", &port, "--timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"));
}

#[test]
fn send_to_recv_between_two_processes() {
    let dir = std::env::temp_dir().join(format!("kcom-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.bin");
    let output = dir.join("out.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let port = free_port().to_string();

    let sender = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["send", "--ipv4", "--port", &port, "--timeout", "30", "--msg", "from the cli"])
        .arg(&input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let recv = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["recv", "--ipv4", "--port", &port, "--timeout", "30", "--json", "-o"])
        .arg(&output)
        .output()
        .unwrap();
    let sent = sender.wait_with_output().unwrap();
    assert_eq!(sent.status.code(), Some(0), "send: {}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(recv.status.code(), Some(0), "recv: {}", String::from_utf8_lossy(&recv.stderr));
    assert!(String::from_utf8_lossy(&sent.stderr).contains("MB/s"));
    assert!(String::from_utf8_lossy(&recv.stderr).contains("MB/s"));

    let json: serde_json::Value = serde_json::from_str(&stdout(&recv)).unwrap();
    assert_eq!(json["msg"], "from the cli");
    assert_eq!(json["data_len"], data.len());
    assert_eq!(std::fs::read(&output).unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stdin_to_stdout_with_an_address() {
    let port = free_port();
    let address = format!("{port}.a1.b2");
    let mut sender = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["send", "--ipv4", "--address", &address, "--timeout", "30", "-q", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A pipe, not a file: the CLI reads it whole to learn the length, then sends.
    sender.stdin.take().unwrap().write_all(b"piped bytes").unwrap();
    let recv = kcom(&["recv", "--ipv4", "--address", &address, "--timeout", "30"]);
    let sent = sender.wait_with_output().unwrap();
    assert_eq!(sent.status.code(), Some(0), "send: {}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(recv.status.code(), Some(0), "recv: {}", String::from_utf8_lossy(&recv.stderr));
    assert_eq!(recv.stdout, b"piped bytes");
    assert!(String::from_utf8_lossy(&recv.stderr).contains("message: "));
}
