//! Every example does its job and exits 0 by itself, documents itself with `--help`, and refuses
//! bad arguments with exit status 2.

use std::process::{Command, Output};

fn run(exe: &str) -> String {
    run_with(exe, &[])
}

fn run_with(exe: &str, args: &[&str]) -> String {
    let out = Command::new(exe).args(args).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{exe} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn router_demo_verifies_every_delivery() {
    let report = run(env!("CARGO_BIN_EXE_router_demo"));
    assert!(report.contains("56000 operations delivered and verified"), "{report}");
    assert!(report.contains("welcome lists all 8 players with their datastore"), "{report}");
    assert!(report.contains("hub: 9 joined, 9 left with bye, 0 still connected"), "{report}");
}

#[test]
fn framing_demo_verifies_every_echo() {
    let report = run(env!("CARGO_BIN_EXE_framing_demo"));
    assert!(report.contains("13000 frames"), "{report}");
    assert!(report.contains("7 connections closed cleanly"), "{report}");
}

#[cfg(unix)]
#[test]
fn event_loop_echoes_every_frame() {
    let report = run(env!("CARGO_BIN_EXE_event_loop"));
    assert!(report.contains("2000 of 2000 frames echoed"), "{report}");
}

#[test]
fn router_demo_takes_players_and_rounds() {
    let report = run_with(env!("CARGO_BIN_EXE_router_demo"), &["--players", "3", "--rounds", "10"]);
    assert!(report.contains("3 players x 10 rounds"), "{report}");
    // Each of 3 players: 2 × 10 broadcasts, 10 whispers from its left neighbour, 10 news items.
    assert!(report.contains("120 operations delivered and verified (broadcast 60, at 30, omit 30)"), "{report}");
    assert!(report.contains("hub: 4 joined, 4 left with bye"), "{report}");
}

fn output(exe: &str, args: &[&str]) -> Output {
    Command::new(exe).args(args).output().expect("the example starts")
}

#[test]
fn every_example_has_help_and_refuses_bad_arguments() {
    let examples: [(&str, &[&str]); 3] = [
        (env!("CARGO_BIN_EXE_router_demo"), &["--players <N>", "--rounds <N>", "[default: 8]", "[default: 500]"]),
        (env!("CARGO_BIN_EXE_framing_demo"), &["Usage: framing_demo"]),
        (env!("CARGO_BIN_EXE_event_loop"), &["Usage: event_loop"]),
    ];
    for (exe, listed) in examples {
        let help = output(exe, &["--help"]);
        assert_eq!(help.status.code(), Some(0), "{exe} --help");
        let text = String::from_utf8_lossy(&help.stdout);
        for item in listed {
            assert!(text.contains(item), "{exe} --help lists {item}:\n{text}");
        }
        let bad = output(exe, &["--no-such-option"]);
        assert_eq!(bad.status.code(), Some(2), "{exe}: {}", String::from_utf8_lossy(&bad.stderr));
    }
    // Fewer than 3 players cannot exercise `at` and `omit` apart; a count that is no number.
    for args in [&["--players", "2"][..], &["--rounds", "many"]] {
        let bad = output(env!("CARGO_BIN_EXE_router_demo"), args);
        assert_eq!(bad.status.code(), Some(2), "router_demo {args:?}: {}", String::from_utf8_lossy(&bad.stderr));
        assert!(bad.stdout.is_empty(), "router_demo {args:?} did not start");
    }
}
