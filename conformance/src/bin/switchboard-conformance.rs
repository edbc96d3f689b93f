//! Run the conformance suites against a server, or serve Switchboard's own targets.
//!
//! ```text
//! switchboard-conformance (stage|message) check ADDR [--in SIZE] [--timeout MS] [--only CASE]
//! switchboard-conformance router check ADDR [--timeout MS] [--only CASE]
//! switchboard-conformance (stage|message) echo ADDR [--in SIZE]
//! switchboard-conformance router echo ADDR
//! switchboard-conformance list
//! ```
//!
//! ADDR is `HOST:PORT`, the host a name or an IP address. `check` first connects once: a target
//! that cannot be reached is one error line, not a failure per case. It then prints one line per
//! case. Exit status: 0 every case passed, 1 a case failed or the target could not be reached
//! (or, for `echo`, served), 2 bad arguments. `--help` on any command describes its options.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use switchboard_conformance::{message, reference, router, stage, Case, Report, Target};

/// Check a server against the wire spec, or serve Switchboard's targets for your client
#[derive(Parser)]
#[command(name = "switchboard-conformance", version)]
#[command(long_about = "Check a server against the wire spec, or serve Switchboard's targets for your client.

Each suite's `check` runs its cases against a server (a STAGE echo, a message echo, or a router \
hub) with a client written from WIRE.md, and prints one line per case with the rule it checks or \
how the server broke it. `echo` serves Switchboard's own target, for testing a client. `list` \
names every case.")]
#[command(after_help = "Exit status: 0 every case passed, 1 a case failed or the target could not be reached \
(echo: could not be served), 2 bad arguments.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// STAGE packet framing (WIRE.md §2): the target sends every frame back unchanged
    Stage {
        #[command(subcommand)]
        action: EchoSuite,
    },
    /// Typed message frames (WIRE.md §4): the target answers every request with its payload
    Message {
        #[command(subcommand)]
        action: EchoSuite,
    },
    /// The router hub (WIRE.md §5)
    Router {
        #[command(subcommand)]
        action: HubSuite,
    },
    /// Print every case of every suite and the rule it checks
    List,
}

/// The actions of a suite whose target is an echo server.
#[derive(Subcommand)]
enum EchoSuite {
    /// Run the suite's cases against the server at ADDR and report each
    Check {
        #[command(flatten)]
        check: CheckArgs,
        #[command(flatten)]
        limit: Limit,
    },
    /// Serve Switchboard's target on ADDR for your client, until Ctrl-C
    Echo {
        #[command(flatten)]
        listen: Listen,
        #[command(flatten)]
        limit: Limit,
    },
}

/// The actions of the router suite.
#[derive(Subcommand)]
enum HubSuite {
    /// Run the suite's cases against the hub at ADDR and report each
    Check {
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Serve Switchboard's hub on ADDR for your client, until Ctrl-C
    Echo {
        #[command(flatten)]
        listen: Listen,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The server: HOST:PORT, the host a name or an IP address (IPv6 in brackets: [::1]:8081)
    #[arg(value_name = "ADDR", value_parser = parse_host_port)]
    addr: String,
    /// How long to wait for each expected frame or close, and for the first connection
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout: u64,
    /// Run only the case called CASE (`list` names them)
    #[arg(long, value_name = "CASE")]
    only: Option<String>,
}

#[derive(Args)]
struct Listen {
    /// Where to listen: HOST:PORT (port 0: the system picks one; the address is printed)
    #[arg(value_name = "ADDR", value_parser = parse_host_port)]
    addr: String,
}

#[derive(Args)]
struct Limit {
    /// The target's inbound limit IN in bytes, header included, in the spec's units (8k, 1m)
    #[arg(long = "in", value_name = "SIZE", default_value = "8192", value_parser = parse_size)]
    max_in: usize,
}

/// `HOST:PORT` as `ToSocketAddrs` takes it; resolved only when used, so a bad form is an argument
/// error (exit 2) and a name that does not resolve an I/O one (exit 1).
fn parse_host_port(text: &str) -> Result<String, String> {
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let Some((host, port)) = text.rsplit_once(':') else { return Err("expected HOST:PORT".into()) };
    if host.is_empty() {
        return Err("the host is missing (HOST:PORT)".into());
    }
    if host.contains(':') {
        return Err("an IPv6 address goes in brackets: [::1]:8081".into());
    }
    port.parse::<u16>().map_err(|_| format!("{port:?} is not a port number"))?;
    Ok(text.to_owned())
}

fn parse_size(text: &str) -> Result<usize, String> {
    switchboard_proto::stage::parse_size(text).map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
enum Suite {
    Stage,
    Message,
    Router,
}

impl Suite {
    const ALL: [Suite; 3] = [Suite::Stage, Suite::Message, Suite::Router];

    fn name(self) -> &'static str {
        match self {
            Suite::Stage => "stage",
            Suite::Message => "message",
            Suite::Router => "router",
        }
    }

    fn cases(self) -> &'static [Case] {
        match self {
            Suite::Stage => stage::CASES,
            Suite::Message => message::CASES,
            Suite::Router => router::CASES,
        }
    }

    fn run(self, target: &Target, only: Option<&str>) -> Report {
        match self {
            Suite::Stage => stage::run(target, only),
            Suite::Message => message::run(target, only),
            Suite::Router => router::run(target, only),
        }
    }
}

fn main() -> ExitCode {
    // Bad arguments: clap prints the error and the usage and exits with 2.
    let cli = Cli::parse();
    let done = match cli.command {
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Stage { action } => echo_suite(Suite::Stage, Served::StageEcho, action),
        Command::Message { action } => echo_suite(Suite::Message, Served::MessageEcho, action),
        Command::Router { action: HubSuite::Check { check: args } } => check(Suite::Router, args, None),
        Command::Router { action: HubSuite::Echo { listen } } => echo(&listen, Served::RouterHub),
    };
    done.unwrap_or_else(|why| {
        eprintln!("error: {why}");
        ExitCode::FAILURE
    })
}

/// Check `suite`, or serve its target (made by `served` from the inbound limit).
fn echo_suite(suite: Suite, served: fn(usize) -> Served, action: EchoSuite) -> Result<ExitCode, String> {
    match action {
        EchoSuite::Check { check: args, limit } => check(suite, args, Some(limit.max_in)),
        EchoSuite::Echo { listen, limit } => echo(&listen, served(limit.max_in)),
    }
}

fn list() {
    for suite in Suite::ALL {
        println!("{}:", suite.name());
        for case in suite.cases() {
            println!("  {:26} {}", case.name, case.checks);
        }
    }
}

/// Run `suite` against `args.addr` (with the inbound limit `max_in`, for the echo suites).
fn check(suite: Suite, args: CheckArgs, max_in: Option<usize>) -> Result<ExitCode, String> {
    if let Some(only) = &args.only {
        if !suite.cases().iter().any(|c| c.name == only) {
            let names: Vec<&str> = suite.cases().iter().map(|c| c.name).collect();
            let message =
                format!("no case called {only:?} in the {} suite; its cases: {}", suite.name(), names.join(", "));
            argument_error(&[suite.name(), "check"], message);
        }
    }
    let mut target = reach(&args.addr, Duration::from_millis(args.timeout))?;
    let limit = max_in.map(|max_in| {
        target.max_in = max_in;
        format!(" (IN = {max_in})")
    });
    let report = suite.run(&target, args.only.as_deref());
    println!("{} suite against {}{}:\n{report}", suite.name(), target.addr, limit.unwrap_or_default());
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Exit as clap does on a bad argument (status 2), with the usage of the subcommand at `path`.
fn argument_error(path: &[&str], message: String) -> ! {
    let mut command = Cli::command();
    command.build(); // gives subcommands their full names for the usage line
    let mut at = &mut command;
    for name in path {
        at = at.find_subcommand_mut(name).expect("the path names subcommands of Cli");
    }
    at.error(ErrorKind::InvalidValue, message).exit()
}

fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
    if found.is_empty() {
        return Err(format!("cannot resolve {addr}: no address"));
    }
    Ok(found)
}

/// The first of `addr`'s addresses that accepts a connection, as a target; or one error that
/// names `addr` and says why none did.
fn reach(addr: &str, timeout: Duration) -> Result<Target, String> {
    let mut failures = Vec::new();
    for resolved in resolve(addr)? {
        let target = Target::new(resolved).timeout(timeout);
        match target.probe() {
            Ok(()) => return Ok(target),
            Err(e) => failures.push((resolved, describe(&e, timeout))),
        }
    }
    // `resolve` found at least one address, so there is a first failure.
    let first_why = &failures[0].1;
    if failures.iter().all(|(_, why)| why == first_why) {
        // A name: which addresses it stood for.
        let tried: Vec<String> = failures.iter().map(|(a, _)| a.to_string()).collect();
        let tried = if addr.parse::<SocketAddr>().is_ok() { String::new() } else { format!(" ({})", tried.join(", ")) };
        return Err(format!("cannot connect to {addr}{tried}: {first_why}"));
    }
    let each: Vec<String> = failures.iter().map(|(a, why)| format!("{a}: {why}")).collect();
    Err(format!("cannot connect to {addr}: {}", each.join("; ")))
}

/// A connection error in a few words.
fn describe(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!("no answer within {timeout:?}"),
        _ => e.to_string(),
    }
}

/// One of Switchboard's targets, with its inbound limit.
enum Served {
    StageEcho(usize),
    MessageEcho(usize),
    RouterHub,
}

/// Serve Switchboard's target on `listen.addr` until the process is ended.
fn echo(listen: &Listen, served: Served) -> Result<ExitCode, String> {
    let mut failures = Vec::new();
    let listener = resolve(&listen.addr)?
        .into_iter()
        .find_map(|a| TcpListener::bind(a).map_err(|e| failures.push(format!("{a}: {e}"))).ok())
        .ok_or_else(|| format!("cannot listen on {}: {}", listen.addr, failures.join("; ")))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let serving = |e: io::Error| format!("cannot serve on {local}: {e}");
    // Held until the process ends: dropping a server stops its accept loop.
    let (_stage, _message, _router, what) = match served {
        Served::StageEcho(max_in) => {
            let server = reference::stage_echo(listener, max_in).map_err(serving)?;
            (Some(server), None, None, format!("STAGE echo on {local} (IN = {max_in})"))
        }
        Served::MessageEcho(max_in) => {
            let server = reference::message_echo(listener, max_in).map_err(serving)?;
            (None, Some(server), None, format!("message echo on {local} (IN = {max_in})"))
        }
        Served::RouterHub => {
            let hub = reference::router_hub(listener, Default::default()).map_err(serving)?;
            (None, None, Some(hub), format!("router hub on {local}"))
        }
    };
    println!("Switchboard's {what}; Ctrl-C ends it");
    loop {
        std::thread::park();
    }
}
