//! `kcom`: KCOM5 one-shot transfers on loopback, compatible with the originals.
//!
//! ```text
//! kcom send [--ipv4] [--port N] [--timeout S] [--msg TEXT] [--address ADDR] [-q] FILE|-
//! kcom recv [--ipv4] [--port N] [--timeout S] [--address ADDR] [-o FILE] [--json] [-q]
//! kcom pack PORT KEYHEX
//! kcom unpack ADDRESS
//! ```
//!
//! `send` listens (it is the originals' server) and `recv` connects, retrying until `send` is up.
//! `recv` writes the data to FILE or stdout and the message to stderr; with `--json` it prints
//! `{"msg", "data_len", "sha256"}` instead (to stdout when `-o` is given, else to stderr). Both
//! print the throughput on stderr at the end (`-q` silences it) and show a progress bar on a
//! terminal for transfers of 8 MiB or more. Exit status: 0 success, 1 protocol or I/O failure,
//! 2 bad arguments.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sha2_std::{Digest, Sha256};
use switchboard_std::kcom::{self, ErrorKind, KcomError, KcomOptions};

const USAGE: &str = "usage:
  kcom send [--ipv4] [--port N] [--timeout S] [--msg TEXT] [--address ADDR] [-q] FILE|-
  kcom recv [--ipv4] [--port N] [--timeout S] [--address ADDR] [-o FILE] [--json] [-q]
  kcom pack PORT KEYHEX
  kcom unpack ADDRESS";

/// Transfers at least this large get a progress bar (on a terminal only).
const BAR_FROM: u64 = 8 * 1024 * 1024;

/// Why the command failed, and so its exit status.
enum Failure {
    /// Bad arguments: exit 2.
    Usage(String),
    /// The transfer failed: exit 1.
    Transfer(String),
}

impl From<KcomError> for Failure {
    fn from(e: KcomError) -> Self {
        match e {
            // An address given on the command line is an argument.
            KcomError::Address(_) => Failure::Usage(e.to_string()),
            e => {
                let who = match e.kind() {
                    ErrorKind::Peer => "peer error",
                    ErrorKind::Caller => "error",
                    ErrorKind::Io => "i/o error",
                    ErrorKind::Timeout => "timeout",
                };
                Failure::Transfer(format!("{who}: {e}"))
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("kcom: {why}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Transfer(why)) => {
            eprintln!("kcom: {why}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(args: &[String]) -> Result<(), Failure> {
    let (command, rest) = args.split_first().ok_or_else(|| Failure::Usage("no command given".into()))?;
    match command.as_str() {
        "send" => send(parse(rest, Role::Send)?),
        "recv" => recv(parse(rest, Role::Recv)?),
        "pack" => pack(rest),
        "unpack" => unpack(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Role {
    Send,
    Recv,
}

struct Args {
    options: KcomOptions,
    msg: String,
    input: Option<String>,
    output: Option<String>,
    json: bool,
    quiet: bool,
}

fn parse(args: &[String], role: Role) -> Result<Args, Failure> {
    let mut ipv4 = false;
    let mut port = None;
    let mut address = None;
    let mut timeout = None;
    let mut parsed =
        Args { options: KcomOptions::new(), msg: String::new(), input: None, output: None, json: false, quiet: false };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| Failure::Usage(format!("{name} needs a value")));
        match arg.as_str() {
            "--ipv4" => ipv4 = true,
            "-q" | "--quiet" => parsed.quiet = true,
            "--port" => {
                let text = value("--port")?;
                port = Some(text.parse::<u16>().map_err(|_| Failure::Usage(format!("bad port {text:?}")))?);
            }
            "--timeout" => {
                let text = value("--timeout")?;
                let secs = text.parse::<f64>().map_err(|_| Failure::Usage(format!("bad timeout {text:?}")))?;
                if secs.is_nan() {
                    return Err(Failure::Usage(format!("bad timeout {text:?}")));
                }
                timeout = Some(secs);
            }
            "--address" => address = Some(value("--address")?),
            "--msg" if role == Role::Send => parsed.msg = value("--msg")?,
            "-o" | "--out" if role == Role::Recv => parsed.output = Some(value("-o")?),
            "--json" if role == Role::Recv => parsed.json = true,
            "-" => set_input(&mut parsed, role, arg)?,
            flag if flag.starts_with('-') => return Err(Failure::Usage(format!("unknown option {flag:?}"))),
            _ => set_input(&mut parsed, role, arg)?,
        }
    }
    if role == Role::Send && parsed.input.is_none() {
        return Err(Failure::Usage("send needs a FILE (or - for stdin)".into()));
    }
    let mut options = match (&address, port) {
        (Some(_), Some(_)) => return Err(Failure::Usage("give --port or --address, not both".into())),
        (Some(address), None) => KcomOptions::from_address(address).map_err(KcomError::from)?,
        (None, port) => KcomOptions::new().port(port.unwrap_or(kcom::DEFAULT_PORT)),
    };
    options = options.ipv4(ipv4);
    if let Some(secs) = timeout {
        options = options.close_secs(secs);
    }
    parsed.options = options;
    Ok(parsed)
}

fn set_input(parsed: &mut Args, role: Role, arg: &str) -> Result<(), Failure> {
    if role == Role::Recv || parsed.input.is_some() {
        return Err(Failure::Usage(format!("unexpected argument {arg:?}")));
    }
    parsed.input = Some(arg.to_owned());
    Ok(())
}

/// A progress bar on stderr for large transfers; hidden when stderr is not a terminal.
fn bar(total: u64, quiet: bool) -> Option<ProgressBar> {
    if quiet || total < BAR_FROM {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    Some(bar)
}

fn report(verb: &str, bytes: u64, elapsed: Duration, quiet: bool) {
    if quiet {
        return;
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mbps = bytes as f64 / 1e6 / secs;
    eprintln!("kcom: {verb} {bytes} bytes in {secs:.3} s ({mbps:.1} MB/s)");
}

fn send(args: Args) -> Result<(), Failure> {
    let input = args.input.as_deref().unwrap_or("-");
    let (source, len): (Box<dyn Read>, u64) = if input == "-" {
        stdin_source().map_err(|e| Failure::Transfer(format!("reading stdin: {e}")))?
    } else {
        let file = File::open(input).map_err(|e| Failure::Transfer(format!("{input}: {e}")))?;
        let len = file.metadata().map_err(|e| Failure::Transfer(format!("{input}: {e}")))?.len();
        (Box::new(file), len)
    };
    let listener = kcom::Listener::bind(&args.options)?;
    if !args.quiet {
        eprintln!("kcom: listening on {} for a receiver", listener.local_addr());
    }
    let bar = bar(len, args.quiet);
    let mut started = None;
    let sent = listener.send_from(&args.msg, len, source, |done, _| {
        // The clock starts when the receiver's hello checked out (the first report).
        started.get_or_insert_with(Instant::now);
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    sent?;
    report("sent", len, started.map_or(Duration::ZERO, |t| t.elapsed()), args.quiet);
    Ok(())
}

/// Stdin as a data source: streamed when it is a regular file (its length is known), otherwise
/// read whole first, since KCOM5 announces the length before the data.
fn stdin_source() -> io::Result<(Box<dyn Read>, u64)> {
    let file = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok((Box::new(file), meta.len()));
    }
    let mut data = Vec::new();
    io::stdin().lock().read_to_end(&mut data)?;
    let len = data.len() as u64;
    Ok((Box::new(io::Cursor::new(data)), len))
}

fn recv(args: Args) -> Result<(), Failure> {
    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(File::create(path).map_err(|e| Failure::Transfer(format!("{path}: {e}")))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut sink = BufWriter::with_capacity(256 * 1024, &mut sink);
    let mut hasher = args.json.then(Sha256::new);
    let mut bar_state: Option<ProgressBar> = None;
    let mut started = None;
    let received = kcom::receive_with(&args.options, |piece| {
        match piece {
            kcom::Incoming::Header(header) => {
                started = Some(Instant::now());
                bar_state = bar(header.data_len, args.quiet);
            }
            kcom::Incoming::Data { chunk, received, .. } => {
                sink.write_all(&chunk)?;
                if let Some(hasher) = &mut hasher {
                    hasher.update(&chunk);
                }
                if let Some(bar) = &bar_state {
                    bar.set_position(received);
                }
            }
        }
        Ok(())
    });
    if let Some(bar) = &bar_state {
        bar.finish_and_clear();
    }
    let received = received?;
    sink.flush().map_err(|e| Failure::Transfer(format!("writing the data: {e}")))?;
    drop(sink);
    let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
    if let Some(hasher) = hasher {
        let line = serde_json::json!({
            "msg": received.msg,
            "data_len": received.data_len,
            "sha256": hex::encode(hasher.finalize()),
        });
        if args.output.is_some() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    } else if !args.quiet {
        eprintln!("kcom: message: {}", received.msg);
    }
    report("received", received.data_len, elapsed, args.quiet);
    Ok(())
}

fn pack(args: &[String]) -> Result<(), Failure> {
    let [port, key_hex] = args else { return Err(Failure::Usage("pack needs PORT KEYHEX".into())) };
    let port = port.parse::<u16>().map_err(|_| Failure::Usage(format!("bad port {port:?}")))?;
    let key = hex::decode(key_hex).map_err(|e| Failure::Usage(format!("bad key {key_hex:?}: {e}")))?;
    let address = kcom::pack(port, &key).map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{address}");
    Ok(())
}

fn unpack(args: &[String]) -> Result<(), Failure> {
    let [address] = args else { return Err(Failure::Usage("unpack needs ADDRESS".into())) };
    let (port, key) = kcom::unpack(address).map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{}", serde_json::json!({ "port": port, "key_hex": hex::encode(key) }));
    Ok(())
}
