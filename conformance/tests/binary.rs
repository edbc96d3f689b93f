//! The `switchboard-conformance` binary as a user meets it: help texts, exit statuses (0 every
//! case passed, 1 a case failed or the target could not be reached or served, 2 bad arguments),
//! one message for a target that is not there, and host names wherever an address is taken.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::thread;

use switchboard_conformance::reference;

fn conformance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard-conformance")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An address nothing listens on: a port just released.
fn nobody_there() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn help_lists_the_suites_their_actions_and_options() {
    let helps: [(&[&str], &[&str], &[&str]); 7] = [
        (&["--help"], &["stage", "message", "router", "list"], &[]),
        (&["stage", "--help"], &["check", "echo"], &[]),
        (&["stage", "check", "--help"], &["<ADDR>", "--in <SIZE>", "--timeout <MS>", "--only <CASE>"], &[]),
        (&["message", "check", "--help"], &["<ADDR>", "--in <SIZE>", "--timeout <MS>", "--only <CASE>"], &[]),
        (&["message", "echo", "--help"], &["<ADDR>", "--in <SIZE>"], &["--only"]),
        // The router suite has no inbound limit to give.
        (&["router", "check", "--help"], &["<ADDR>", "--timeout <MS>", "--only <CASE>"], &["--in"]),
        (&["router", "echo", "--help"], &["<ADDR>"], &["--in", "--only"]),
    ];
    for (args, listed, absent) in helps {
        let out = conformance(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        for item in listed {
            assert!(text.contains(item), "{args:?} lists {item}:\n{text}");
        }
        for item in absent {
            assert!(!text.contains(item), "{args:?} does not offer {item}:\n{text}");
        }
    }
}

#[test]
fn a_target_that_is_not_there_is_one_message_naming_it() {
    for suite in ["stage", "message", "router"] {
        let addr = nobody_there().to_string();
        let out = conformance(&[suite, "check", &addr, "--timeout", "300"]);
        assert_eq!(out.status.code(), Some(1), "{suite}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim_end(), format!("error: cannot connect to {addr}: connection refused"), "{suite}");
        assert!(!stdout(&out).contains("FAIL"), "{suite}: no case ran:\n{}", stdout(&out));
    }
    // A name says which addresses it stood for, still in one line.
    let port = nobody_there().port();
    let out = conformance(&["stage", "check", &format!("localhost:{port}"), "--timeout", "300"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("error: cannot connect to localhost:{port}")), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "the address tried: {text}");
    assert!(text.contains("connection refused"), "{text}");
}

#[test]
fn a_host_name_is_accepted_by_check_and_echo() {
    let server = reference::stage_echo(TcpListener::bind("127.0.0.1:0").unwrap(), 8192).unwrap();
    let port = server.local_addr().port();
    let out = conformance(&["stage", "check", &format!("localhost:{port}"), "--only", "one-frame"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ok    one-frame"), "{}", stdout(&out));
    server.shutdown();

    // `echo` on a name and port 0 says where it listens; the suite passes against it.
    let mut echo = Command::new(env!("CARGO_BIN_EXE_switchboard-conformance"))
        .args(["message", "echo", "localhost:0", "--in", "16k"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(echo.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let local = first.split(" on ").nth(1).and_then(|rest| rest.split(' ').next()).map(str::to_owned);
    let out = local.as_deref().map(|addr| conformance(&["message", "check", addr, "--in", "16k"]));
    echo.kill().unwrap();
    echo.wait().unwrap();
    assert!(first.contains("(IN = 16384)"), "{first}");
    let out = out.unwrap_or_else(|| panic!("no address in {first:?}"));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_failed_case_exits_1() {
    // A server that hangs up on every connection: reachable, but no case can pass.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || listener.incoming().for_each(drop));
    let out = conformance(&["stage", "check", &addr, "--only", "one-frame", "--timeout", "300"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("FAIL  one-frame"), "{}", stdout(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn an_address_that_cannot_be_served_exits_1_without_usage() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = conformance(&["stage", "echo", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!("error: cannot listen on {addr}: ")), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Usage"), "{}", stderr(&out));
}

#[test]
fn bad_arguments_exit_2() {
    let addr = nobody_there().to_string();
    for args in [
        &[][..],
        &["frobnicate"],
        &["stage"],
        &["stage", "check"],
        &["stage", "check", "8081"],
        &["stage", "check", ":8081"],
        &["stage", "check", "::1:8081"],
        &["stage", "check", "localhost:http"],
        &["stage", "check", &addr, "--in", "3q"],
        &["stage", "check", &addr, "--timeout", "soon"],
        &["stage", "check", &addr, "--only", "no-such-case"],
        &["router", "check", &addr, "--in", "8k"],
        &["router", "check", &addr, "--only", "one-frame"],
        &["list", "extra"],
    ] {
        let out = conformance(args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.starts_with("error:") || text.contains("Usage:"), "{args:?}: {text}");
        assert!(!text.contains("cannot connect"), "{args:?} was refused before connecting: {text}");
    }
}

#[test]
fn list_names_every_case() {
    let out = conformance(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let suites = [
        ("stage", switchboard_conformance::stage::CASES),
        ("message", switchboard_conformance::message::CASES),
        ("router", switchboard_conformance::router::CASES),
    ];
    for (suite, cases) in suites {
        assert!(text.contains(&format!("{suite}:\n")), "{text}");
        for case in cases {
            assert!(text.contains(&format!("  {:26} {}", case.name, case.checks)), "{suite} {}:\n{text}", case.name);
        }
    }
}
