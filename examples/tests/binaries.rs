//! Every example does its job and exits 0 by itself.

use std::process::Command;

fn run(exe: &str) -> String {
    let out = Command::new(exe).output().expect("the example starts");
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
