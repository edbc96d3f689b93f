//! `kcom`: KCOM5 one-shot transfers, compatible with the Python and Go originals (WIRE.md §1).
//!
//! `send` listens (it is the originals' server) and `recv` connects, retrying until `send` is
//! up; both use loopback unless `--host` names another address. `recv` writes the data to a
//! file (`-o`, which appears only once complete) or stdout and the message to stderr. Both print
//! the throughput on stderr at the end, counted from the peer's connection (`-q` silences it),
//! and show a progress bar on a terminal for transfers of 8 MiB or more. `kcom --help` and
//! `kcom COMMAND --help` describe every option. Exit status: 0 success, 1 transfer or I/O
//! failure, 2 bad arguments.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sha2_std::{Digest, Sha256};
use switchboard_cli::output::StagedFile;
use switchboard_cli::progress::{Meter, Summary};
use switchboard_proto::kcom::DEFAULT_CLOSE;
use switchboard_std::kcom::{self, Incoming, KcomListener, KcomOptions, DEFAULT_PORT};
use switchboard_std::net::resolve;

/// KCOM5 one-shot transfers, byte-compatible with the Python and Go originals (WIRE.md §1)
#[derive(Parser)]
#[command(name = "kcom", version)]
#[command(long_about = "KCOM5 one-shot transfers, byte-compatible with the Python and Go originals (WIRE.md §1).

A sender (`kcom send`, the originals' server) listens and sends one message and one data blob to \
the first receiver (`kcom recv`, the originals' client) that connects. Like the originals, both use \
the loopback address only (::1, or 127.0.0.1 with --ipv4) unless --host names another; KCOM5 sends \
everything in the clear.")]
#[command(after_help = "Exit status: 0 success, 1 transfer or I/O failure, 2 bad arguments.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen, wait for one receiver, and send it a message and FILE (the originals' server)
    Send(SendArgs),
    /// Connect to a sender (retrying until it listens) and receive its message and data (the
    /// originals' client)
    Recv(RecvArgs),
    /// Print the address string of PORT and KEYHEX (`kcom pack 13600 01ab` prints 13600.01.ab)
    Pack {
        /// The TCP port
        port: u16,
        /// The session key in hex; its length in bytes must divide 48
        #[arg(value_name = "KEYHEX", value_parser = parse_key)]
        key_hex: Key,
    },
    /// Print the port and the key (repeated to 48 bytes) of an address string as JSON
    Unpack {
        /// An address string: PORT.HH.HH… (see `kcom pack`)
        #[arg(value_name = "ADDRESS", value_parser = parse_address)]
        address: KcomOptions,
    },
}

/// Where and how long: the options `send` and `recv` share.
#[derive(Args)]
struct Endpoint {
    /// Use 127.0.0.1 instead of ::1 (with --host: only the host's IPv4 addresses)
    #[arg(long)]
    ipv4: bool,
    /// Listen on (send) or connect to (recv) HOST, a name or an IP address, instead of loopback,
    /// which the originals always use
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// The TCP port
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Take the port (and key) from an address string PORT.HH.HH… instead (see `kcom pack`)
    #[arg(long, value_name = "ADDR", value_parser = parse_address, conflicts_with = "port")]
    address: Option<KcomOptions>,
    /// One deadline in seconds for the whole exchange, waiting for the peer included; 0 or less
    /// means none
    #[arg(long, value_name = "S", default_value_t = DEFAULT_CLOSE.as_secs_f64(), value_parser = parse_seconds)]
    timeout: f64,
    /// Print only errors on stderr: no progress, message or rate
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The message sent before the data
    #[arg(long, value_name = "TEXT", default_value = "")]
    msg: String,
    /// The data: a file, or - for stdin (a pipe is read whole first: KCOM5 announces the length)
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

#[derive(Args)]
struct RecvArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Write the data to FILE instead of stdout; FILE appears only when the transfer succeeded
    /// (it is written under a temporary name beside it, and removed on failure)
    #[arg(short, long = "out", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print {"msg", "data_len", "sha256"} as JSON instead of the message: to stdout with -o,
    /// else to stderr
    #[arg(long)]
    json: bool,
}

/// A key as written, decoded from hex, of a length `pack` takes.
#[derive(Clone)]
struct Key(Vec<u8>);

fn parse_key(text: &str) -> Result<Key, String> {
    let key = hex::decode(text).map_err(|e| e.to_string())?;
    // The length rule is `pack`'s; the port plays no part in it.
    kcom::pack(0, &key).map_err(|e| e.to_string())?;
    Ok(Key(key))
}

fn parse_address(text: &str) -> Result<KcomOptions, String> {
    KcomOptions::from_address(text).map_err(|e| e.to_string())
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if !secs.is_nan() => Ok(secs),
        _ => Err("not a number of seconds".into()),
    }
}

impl Endpoint {
    fn options(&self) -> KcomOptions {
        let options = self.address.clone().unwrap_or_else(|| KcomOptions::new().port(self.port));
        options.ipv4(self.ipv4).close_secs(self.timeout)
    }

    /// The addresses to listen on or connect to: `--host` resolved (only its IPv4 addresses
    /// with `--ipv4`), or without it the options' loopback address, as the originals use.
    fn addresses(&self, options: &KcomOptions) -> Result<Vec<SocketAddr>, String> {
        let Some(host) = self.host.as_deref() else { return Ok(vec![options.addr()]) };
        let found: Vec<SocketAddr> = resolve(host, options.port)
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .into_iter()
            .filter(|a| a.is_ipv4() || !self.ipv4)
            .collect();
        if found.is_empty() {
            return Err(format!("cannot resolve {host}: it has no IPv4 address"));
        }
        Ok(found)
    }

    /// A line on stderr, unless quiet.
    fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("kcom: {line}");
        }
    }
}

fn main() -> ExitCode {
    // Bad arguments: clap prints the error and the usage and exits with 2.
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Send(args) => send(args),
        Command::Recv(args) => recv(args),
        Command::Pack { port, key_hex } => pack(port, &key_hex.0),
        Command::Unpack { address } => {
            unpack(&address);
            Ok(())
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::FAILURE
        }
    }
}

/// "timeout 150 s", or "no timeout".
fn patience(close: Option<Duration>) -> String {
    close.map_or_else(|| "no timeout".into(), |c| format!("timeout {} s", c.as_secs_f64()))
}

fn send(args: SendArgs) -> Result<(), String> {
    let SendArgs { endpoint, msg, input } = args;
    let (source, len) = open_input(&input)?;
    let options = endpoint.options();
    let listener = KcomListener::bind_to(&endpoint.addresses(&options)?, &options).map_err(|e| e.to_string())?;
    let local = listener.local_addr();
    endpoint.say(format_args!("listening on {local}, waiting for a receiver ({})", patience(options.close)));
    let accepted = listener.accept().map_err(|e| e.to_string())?;
    endpoint.say(format_args!("receiver {} connected; sending {len} bytes", accepted.peer_addr()));
    // The first report, (0, len), comes once the receiver's hello checked out: the clock starts.
    let mut meter = None;
    let mut progress = |done, total| meter.get_or_insert_with(|| Meter::start(total, !endpoint.quiet)).set(done);
    let sent = accepted.send_from(&msg, len, source, Some(&mut progress));
    let elapsed = meter.map(Meter::finish);
    sent.map_err(|e| e.to_string())?;
    endpoint.say(Summary { verb: "sent", bytes: len, elapsed: elapsed.unwrap_or_default() });
    Ok(())
}

/// The data to send and its length.
fn open_input(input: &Path) -> Result<(Box<dyn Read>, u64), String> {
    if input == Path::new("-") {
        return stdin_source().map_err(|e| format!("reading stdin: {e}"));
    }
    let file = File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let len = file.metadata().map_err(|e| format!("{}: {e}", input.display()))?.len();
    Ok((Box::new(file), len))
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

fn recv(args: RecvArgs) -> Result<(), String> {
    let RecvArgs { endpoint, output, json } = args;
    let options = endpoint.options();
    let addrs = endpoint.addresses(&options)?;
    // Created before connecting, so an unwritable path fails before the sender has sent.
    let mut staged =
        output.as_ref().map(StagedFile::create).transpose().map_err(|e| describe_output(output.as_deref(), e))?;
    let places: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    endpoint.say(format_args!("waiting for a sender at {} ({})", places.join(" or "), patience(options.close)));

    let sink: Box<dyn Write + '_> = match &mut staged {
        Some(file) => Box::new(file),
        None => Box::new(io::stdout().lock()),
    };
    let mut sink = BufWriter::with_capacity(256 * 1024, sink);
    let mut hasher = json.then(Sha256::new);
    let mut meter = None;
    let connected = kcom::connect_to(&addrs, &options).map_err(|e| e.to_string())?;
    endpoint.say(format_args!("connected to {}", connected.peer_addr()));
    let received = connected.receive_with(|piece| {
        match piece {
            Incoming::Header(header) => meter = Some(Meter::start(header.data_len, !endpoint.quiet)),
            Incoming::Data { chunk, received, .. } => {
                sink.write_all(&chunk)?;
                if let Some(hasher) = &mut hasher {
                    hasher.update(&chunk);
                }
                if let Some(meter) = &meter {
                    meter.set(received);
                }
            }
        }
        Ok(())
    });
    let elapsed = meter.map(Meter::finish);
    // On failure `staged` is dropped on return, which removes the temporary file.
    let received = received.map_err(|e| e.to_string())?;
    sink.flush().map_err(|e| format!("writing the data: {e}"))?;
    drop(sink);
    if let Some(file) = staged {
        file.commit().map_err(|e| describe_output(output.as_deref(), e))?;
    }

    if let Some(hasher) = hasher {
        let line = serde_json::json!({
            "msg": received.msg,
            "data_len": received.data_len,
            "sha256": hex::encode(hasher.finalize()),
        });
        if output.is_some() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    } else {
        endpoint.say(format_args!("message: {}", received.msg));
    }
    endpoint.say(Summary { verb: "received", bytes: received.data_len, elapsed: elapsed.unwrap_or_default() });
    Ok(())
}

fn describe_output(path: Option<&Path>, e: io::Error) -> String {
    format!("{}: {e}", path.map_or_else(|| "stdout".into(), |p| p.display().to_string()))
}

fn pack(port: u16, key: &[u8]) -> Result<(), String> {
    println!("{}", kcom::pack(port, key).map_err(|e| e.to_string())?);
    Ok(())
}

fn unpack(address: &KcomOptions) {
    let key = address.key.map(hex::encode).unwrap_or_default();
    println!("{}", serde_json::json!({ "port": address.port, "key_hex": key }));
}
