//! The `kcom` binary as a user meets it: help texts, exit statuses (0 success, 1 I/O or transfer
//! failure, 2 bad arguments), address packing, transfers between two processes (by port, by
//! address string, by host name), an output file that appears only complete, rates counted
//! from the peer's connection rather than from the start of the wait, and a failed transfer
//! that ends at once rather than seconds after its deadline or the peer's error.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{entries, free_port, kcom, scratch, stderr, stdout};

/// The seconds of the `… bytes in X s (… MB/s)` summary line.
fn summary_seconds(stderr: &str) -> f64 {
    let line = stderr.lines().find(|l| l.contains(" bytes in ")).unwrap_or_else(|| panic!("no summary in {stderr}"));
    let after = line.split(" bytes in ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("no seconds in {line:?}"))
}

#[test]
fn help_lists_the_commands_and_their_options() {
    let top = kcom(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let text = stdout(&top);
    for command in ["send", "recv", "pack", "unpack"] {
        assert!(text.contains(&format!("\n  {command} ")), "kcom --help lists {command}:\n{text}");
    }
    assert!(text.contains("loopback"), "kcom --help says the originals use loopback only:\n{text}");

    let shared = ["--ipv4", "--host <HOST>", "--port <N>", "--address <ADDR>", "--timeout <S>", "--quiet"];
    let per_command: [(&str, &[&str]); 4] = [
        ("send", &["--msg <TEXT>", "<FILE>"]),
        ("recv", &["--out <FILE>", "--json"]),
        ("pack", &["<PORT>", "<KEYHEX>"]),
        ("unpack", &["<ADDRESS>"]),
    ];
    for (command, own) in per_command {
        for help in [kcom(&[command, "--help"]), kcom(&["help", command])] {
            assert_eq!(help.status.code(), Some(0), "kcom {command} --help");
            let text = stdout(&help);
            let expected = if matches!(command, "send" | "recv") { [&shared[..], own].concat() } else { own.to_vec() };
            for option in expected {
                assert!(text.contains(option), "kcom {command} --help lists {option}:\n{text}");
            }
        }
    }
    // Every option line of `send` has a description after it.
    let send = stdout(&kcom(&["send", "--help"]));
    for line in send.lines().filter(|l| l.trim_start().starts_with("--")) {
        assert!(line.trim().split("  ").filter(|part| !part.is_empty()).count() >= 2, "undocumented: {line:?}");
    }
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
        &["send", "--host"],
        &["recv", "--address", "13600"],
        &["recv", "--timeout"],
        &["recv", "--timeout", "nan"],
        &["recv", "extra"],
        &["recv", "--msg", "only send has a message"],
    ] {
        let out = kcom(args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "kcom {args:?}: {text}");
        assert!(text.starts_with("error:") || text.contains("Usage:"), "kcom {args:?} says what is wrong: {text}");
        assert!(text.contains("--help") || text.contains("Usage:"), "kcom {args:?} points at the usage: {text}");
    }
}

#[test]
fn io_failures_exit_1_without_a_usage_dump() {
    let dir = scratch("io");
    let port = free_port().to_string();
    let missing_dir = dir.join("no/such/dir/out.bin");
    let missing_file = dir.join("no-such-input");
    let cases: [(Vec<&str>, &str); 4] = [
        // Nobody sends: the deadline passes; recv said where it waited.
        (
            vec!["recv", "--ipv4", "--port", &port, "--timeout", "0.3"],
            &format!("waiting for a sender at 127.0.0.1:{port}"),
        ),
        (
            vec!["recv", "--ipv4", "--port", &port, "--timeout", "0.3", "-o", missing_dir.to_str().unwrap()],
            "no/such/dir",
        ),
        (vec!["send", "--ipv4", "--port", &port, missing_file.to_str().unwrap()], "no-such-input"),
        (vec!["recv", "--host", "no-such-host.invalid", "--port", &port, "--timeout", "0.3"], "cannot resolve"),
    ];
    for (args, says) in cases {
        let out = kcom(&args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "kcom {args:?}: {text}");
        assert!(text.contains(says), "kcom {args:?} says {says:?}: {text}");
        assert_eq!(text.matches("error:").count(), 1, "one error line: {text}");
        assert!(!text.contains("Usage"), "no usage for an I/O failure: {text}");
    }
    let timeout = stderr(&kcom(&["recv", "--ipv4", "--port", &port, "--timeout", "0.3"]));
    assert!(timeout.contains("timed out"), "{timeout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn send_to_recv_between_two_processes() {
    let dir = scratch("transfer");
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
    assert_eq!(sent.status.code(), Some(0), "send: {}", stderr(&sent));
    assert_eq!(recv.status.code(), Some(0), "recv: {}", stderr(&recv));
    assert!(stderr(&sent).contains("MB/s"));
    assert!(stderr(&recv).contains("MB/s"));

    let json: serde_json::Value = serde_json::from_str(&stdout(&recv)).unwrap();
    assert_eq!(json["msg"], "from the cli");
    assert_eq!(json["data_len"], data.len());
    assert_eq!(std::fs::read(&output).unwrap(), data);
    assert_eq!(entries(&dir), ["in.bin", "out.bin"], "no temporary file is left behind");
    std::fs::remove_dir_all(&dir).unwrap();
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
    assert_eq!(sent.status.code(), Some(0), "send: {}", stderr(&sent));
    assert_eq!(recv.status.code(), Some(0), "recv: {}", stderr(&recv));
    assert_eq!(recv.stdout, b"piped bytes");
    assert!(stderr(&recv).contains("message: "));
    assert!(sent.stderr.is_empty(), "-q: nothing on stderr: {}", stderr(&sent));
}

#[test]
fn a_host_name_is_accepted() {
    let port = free_port().to_string();
    let mut sender = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["send", "--host", "localhost", "--port", &port, "--timeout", "30", "--msg", "by name", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sender.stdin.take().unwrap().write_all(b"over localhost").unwrap();
    let recv = kcom(&["recv", "--host", "localhost", "--port", &port, "--timeout", "30"]);
    let sent = sender.wait_with_output().unwrap();
    assert_eq!(sent.status.code(), Some(0), "send: {}", stderr(&sent));
    assert_eq!(recv.status.code(), Some(0), "recv: {}", stderr(&recv));
    assert_eq!(recv.stdout, b"over localhost");
    assert!(stderr(&recv).contains("message: by name"), "{}", stderr(&recv));
    // The name was resolved: both sides name a numeric address with the port.
    assert!(stderr(&sent).contains(&format!(":{port}, waiting for a receiver")), "{}", stderr(&sent));
    assert!(!stderr(&recv).contains("localhost"), "recv names the resolved address: {}", stderr(&recv));
}

/// A KCOM5 sender written from WIRE.md §1 that announces `announced` data bytes, sends `sent`
/// of them and hangs up. Returns its port and its thread.
fn truncating_sender(announced: u64, sent: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut hello = [0u8; 8];
        stream.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..5], b"KCOM5");
        let msg = b"cut short";
        let mut head = hello.to_vec();
        head.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        head.extend_from_slice(msg);
        head.extend_from_slice(&announced.to_le_bytes());
        stream.write_all(&head).unwrap();
        stream.write_all(&vec![0x5a; sent]).unwrap();
    });
    (port, peer)
}

#[test]
fn a_failed_transfer_leaves_no_output_file() {
    let dir = scratch("partial");
    let output = dir.join("out.bin");
    for existing in [None, Some(&b"the previous contents"[..])] {
        if let Some(contents) = existing {
            std::fs::write(&output, contents).unwrap();
        }
        let (port, peer) = truncating_sender(1_000_000, 300_000);
        let out =
            kcom(&["recv", "--ipv4", "--port", &port.to_string(), "--timeout", "30", "-o", output.to_str().unwrap()]);
        peer.join().unwrap();
        assert_eq!(out.status.code(), Some(1), "a truncated transfer fails: {}", stderr(&out));
        assert!(stderr(&out).contains("error:"), "{}", stderr(&out));
        match existing {
            None => assert!(entries(&dir).is_empty(), "neither an output nor a temporary file: {:?}", entries(&dir)),
            Some(contents) => {
                assert_eq!(entries(&dir), ["out.bin"], "no temporary file");
                assert_eq!(std::fs::read(&output).unwrap(), contents, "the existing file is untouched");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rates_count_from_the_connection_not_the_wait() {
    const WAIT: Duration = Duration::from_millis(1500);
    let dir = scratch("rates");
    let input = dir.join("in.bin");
    std::fs::write(&input, vec![0xa5; 400_000]).unwrap();

    // The sender waits WAIT for its receiver: its clock must not count the wait.
    let port = free_port().to_string();
    let sender = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["send", "--ipv4", "--port", &port, "--timeout", "30"])
        .arg(&input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(WAIT);
    let recv = kcom(&["recv", "--ipv4", "--port", &port, "--timeout", "30", "-q"]);
    let sent = sender.wait_with_output().unwrap();
    assert_eq!((sent.status.code(), recv.status.code()), (Some(0), Some(0)), "{}", stderr(&sent));
    let secs = summary_seconds(&stderr(&sent));
    assert!(secs < 1.0, "send counted {secs} s for a transfer that waited {WAIT:?} for its receiver");

    // The receiver waits WAIT for its sender: likewise.
    let port = free_port().to_string();
    let recv = Command::new(env!("CARGO_BIN_EXE_kcom"))
        .args(["recv", "--ipv4", "--port", &port, "--timeout", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(WAIT);
    let sent = kcom(&["send", "--ipv4", "--port", &port, "--timeout", "30", "-q", input.to_str().unwrap()]);
    let received = recv.wait_with_output().unwrap();
    assert_eq!((sent.status.code(), received.status.code()), (Some(0), Some(0)), "{}", stderr(&received));
    let secs = summary_seconds(&stderr(&received));
    assert!(secs < 1.0, "recv counted {secs} s for a transfer that waited {WAIT:?} for its sender");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sender that reads the hello, answers it with `answer` (nothing, or garbage) and then keeps
/// the connection open, silent, until the returned sender is dropped. Returns its port too.
fn stubborn_sender(answer: &'static [u8]) -> (u16, mpsc::Sender<()>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, held) = mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = stream.read_exact(&mut [0; 8]);
        let _ = stream.write_all(answer);
        let _ = held.recv();
    });
    (port, release, peer)
}

#[test]
fn a_failed_transfer_exits_at_once_though_the_peer_stays() {
    // The deadline (0.3 s) with a sender that never answers, and a bad echo with 30 s to go:
    // both final at once. The drivers linger 2 s for a peer's end of stream; kcom must not.
    for (answer, timeout, says) in [(&b""[..], "0.3", "timed out"), (&b"garbage!"[..], "30", "echoed")] {
        let (port, release, peer) = stubborn_sender(answer);
        let started = Instant::now();
        let out = kcom(&["recv", "--ipv4", "--port", &port.to_string(), "--timeout", timeout, "-q"]);
        let took = started.elapsed();
        drop(release);
        peer.join().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(took < Duration::from_millis(1500), "kcom recv took {took:?} (--timeout {timeout})");
    }
}
