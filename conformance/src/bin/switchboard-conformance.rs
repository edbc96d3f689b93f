//! Run the conformance suites against a server, or serve Switchboard's own targets.
//!
//! ```text
//! switchboard-conformance (stage|message|router) check ADDR [--in SIZE] [--timeout MS] [--only CASE]
//! switchboard-conformance (stage|message|router) echo ADDR [--in SIZE]
//! switchboard-conformance list
//! ```
//!
//! `check` prints one line per case and exits with 0 when every case passed, 1 when one failed,
//! 2 on a usage error. SIZE takes the spec's units (`8k`, `1m`); IN defaults to 8192.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

use switchboard_conformance::{message, reference, router, stage, Case, Report, Target};

const USAGE: &str = "usage:
  switchboard-conformance (stage|message|router) check ADDR [--in SIZE] [--timeout MS] [--only CASE]
  switchboard-conformance (stage|message|router) echo ADDR [--in SIZE]   (router: a hub; IN unused)
  switchboard-conformance list";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("switchboard-conformance: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let positional: Vec<&str> = positional(args);
    match positional.as_slice() {
        ["list"] => {
            for (suite, cases) in [("stage", stage::CASES), ("message", message::CASES), ("router", router::CASES)] {
                list(suite, cases);
            }
            Ok(ExitCode::SUCCESS)
        }
        [suite @ ("stage" | "message" | "router"), "check", addr] => {
            let target = Target::new(parse_addr(addr)?)
                .max_in(option(args, "--in").map(parse_size).transpose()?.unwrap_or(8192))
                .timeout(Duration::from_millis(
                    option(args, "--timeout")
                        .map(|ms| ms.parse().map_err(|_| format!("--timeout {ms}: not a number of milliseconds")))
                        .transpose()?
                        .unwrap_or(2000),
                ));
            let only = option(args, "--only");
            let report: Report = match *suite {
                "stage" => stage::run(&target, only),
                "message" => message::run(&target, only),
                _ => router::run(&target, only),
            };
            if report.outcomes.is_empty() {
                return Err(format!("no case called {:?} in the {suite} suite", only.unwrap_or("")));
            }
            println!("{suite} suite against {} (IN = {}):\n{report}", target.addr, target.max_in);
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        [suite @ ("stage" | "message" | "router"), "echo", addr] => {
            let max_in = option(args, "--in").map(parse_size).transpose()?.unwrap_or(8192);
            let listener = TcpListener::bind(parse_addr(addr)?).map_err(|e| format!("bind {addr}: {e}"))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            let serving = |e: std::io::Error| format!("serve {local}: {e}");
            // Held until the process ends: dropping a server stops its accept loop.
            let (_stage, _message, _router) = match *suite {
                "stage" => (Some(reference::stage_echo(listener, max_in).map_err(serving)?), None, None),
                "message" => (None, Some(reference::message_echo(listener, max_in).map_err(serving)?), None),
                _ => (None, None, Some(reference::router_hub(listener, Default::default()).map_err(serving)?)),
            };
            println!("Switchboard's {suite} target on {local} (IN = {max_in}); Ctrl-C ends it");
            loop {
                std::thread::park();
            }
        }
        _ => Err("unknown command".into()),
    }
}

fn list(suite: &str, cases: &[Case]) {
    println!("{suite}:");
    for case in cases {
        println!("  {:26} {}", case.name, case.checks);
    }
}

/// The arguments that are not options or option values.
fn positional(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg.starts_with("--") {
            it.next();
        } else {
            out.push(arg.as_str());
        }
    }
    out
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|e| format!("{text}: not an IP address and port ({e})"))
}

fn parse_size(text: &str) -> Result<usize, String> {
    switchboard_proto::stage::parse_size(text).map_err(|e| format!("--in {text}: {e}"))
}
