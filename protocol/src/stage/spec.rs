//! The connection spec: `scheme://address?filter=IN,OUT&expire=MS&commit=MS&crypto=KEY`
//! (WIRE.md §2, seed 000 `broker.ready` / `broker.join`).
//!
//! # Grammar and outcomes
//!
//! | part      | accepted                                                        | otherwise |
//! |-----------|-----------------------------------------------------------------|-----------|
//! | scheme    | `tcp`, `udp`, `unix`, `quic` (any case), then `://`             | `MissingScheme`, `UnknownScheme` |
//! | address   | `IPv4:PORT`, `[IPv6]:PORT`, `[IPv6%SCOPE]:PORT` (numeric scope), `hostname:PORT`; `unix://` takes a path | `MissingHost`, `BadHost`, `MissingPort`, `BadPort`, `MissingPath`, `BadPath` |
//! | `?`       | optional; the query is `&`-separated items                      | `EmptyQueryItem` for `a&&b` |
//! | filter    | `packet` = `bson` (identical), `text`; absent = raw (but `udp` is always packet) | `UnknownFilter` (an unknown *first* item), `DuplicateFilter`, `TextOverDatagram` |
//! | limits    | `=IN,OUT` or `=IN:OUT`; `=IN` alone leaves OUT at 8192; bare = 8192,8192. Each a decimal number with an optional suffix `k` (×1024), `m` (×1024²), `b` (×1), any case; at most 2³¹−1. IN ≥ 4 for packet, ≥ 1 for text; OUT 0 = no coalescing | `BadLimit` naming the text |
//! | `expire`  | milliseconds > 0, or `-1` / `none` = never (the default)        | `BadOptionValue` |
//! | `commit`  | milliseconds ≥ 0 (default 0 = flush at once)                    | `BadOptionValue` |
//! | `crypto`  | any non-empty text, kept exactly as written for the cipher layer (WIRE.md §3a); it cannot contain `&` | `BadOptionValue` |
//! | other     | —                                                               | `UnknownOption` (or `UnknownFilter` when first), `DuplicateOption` |
//!
//! The filter comes first, as in the original, where the query *is* the filter
//! (`?packet=10k,40k`). `Display` writes a canonical form (lower-case scheme, limits with the
//! largest exact suffix, options in the order filter, expire, commit, crypto) that parses back to
//! an equal spec. Parsing never panics and never resolves names: `quic://example.org:443` stays
//! a [`Address::Host`] for the driver to resolve.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::str::FromStr;
use core::time::Duration;

use super::codec::{HEADER_LEN, MAX_FRAME_LEN};
use super::connection::PacketConnection;
use super::connection::{Filter, FramingConfig, DEFAULT_LIMIT};
use super::datagram::PacketDatagram;
use crate::crypto::FrameCipher;
use crate::entropy::Entropy;
use crate::fault::{Blame, Fault};
use crate::message::{MessageConfig, MessageConnection};

/// The transport named by a spec's scheme.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Scheme {
    /// `tcp://`: a byte stream of frames.
    Tcp,
    /// `udp://`: one packet frame per datagram; the address may be a multicast group.
    Udp,
    /// `unix://` (extension): a Unix stream socket, like TCP.
    Unix,
    /// `quic://` (extension): QUIC streams carry framed byte streams like TCP.
    Quic,
}

impl Scheme {
    /// The scheme as written in a spec, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Udp => "udp",
            Scheme::Unix => "unix",
            Scheme::Quic => "quic",
        }
    }

    /// Whether this transport carries datagrams (one frame each) rather than a stream.
    pub fn is_datagram(self) -> bool {
        self == Scheme::Udp
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a spec points.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub enum Address {
    /// A literal IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// A host name and port, left for the driver to resolve (the machines never do).
    Host {
        /// The host name, as written.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix socket path, as written.
    Unix(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(SocketAddr::V4(a)) => write!(f, "{}:{}", a.ip(), a.port()),
            // Written by hand rather than with `SocketAddrV6`'s Display so the scope id comes
            // out in exactly the form `parse` reads (flow info is not part of a spec).
            Address::Inet(SocketAddr::V6(a)) if a.scope_id() != 0 => {
                write!(f, "[{}%{}]:{}", a.ip(), a.scope_id(), a.port())
            }
            Address::Inet(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            Address::Host { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => f.write_str(path),
        }
    }
}

/// A parsed connection spec. Build one with [`ConnectionSpec::parse`] (or `str::parse`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnectionSpec {
    /// The transport.
    pub scheme: Scheme,
    /// Where to listen or connect.
    pub address: Address,
    /// How the stream is cut into frames ([`Filter::Packet`] for every `udp` spec).
    pub filter: Filter,
    /// IN: the largest inbound frame or line (header included). `usize::MAX` for raw.
    pub max_in: usize,
    /// OUT: the output coalescing buffer; 0 = every frame is written at once.
    pub max_out: usize,
    /// Close after this long with no inbound data (`None` = never).
    pub expire: Option<Duration>,
    /// Flush coalesced output this long after the first unflushed byte.
    pub commit: Duration,
    /// The `crypto` option exactly as written, for the cipher layer to interpret.
    pub crypto: Option<String>,
}

/// Why a connection spec was refused. Always the caller's fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The spec is empty.
    #[error("empty connection spec")]
    Empty,
    /// No `scheme://` at the start.
    #[error("no scheme: a spec starts with tcp://, udp://, unix:// or quic://")]
    MissingScheme,
    /// A scheme other than tcp, udp, unix or quic.
    #[error("unknown scheme {0:?}; expected tcp, udp, unix or quic")]
    UnknownScheme(String),
    /// Nothing before the port.
    #[error("no host before the port")]
    MissingHost,
    /// The host is neither an IP address nor a valid host name.
    #[error("bad host {host:?}: {why}")]
    BadHost {
        /// The host text.
        host: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No `:PORT` after the host.
    #[error("no port after the host")]
    MissingPort,
    /// The port is not a number from 0 to 65535.
    #[error("bad port {0:?}: expected a number from 0 to 65535")]
    BadPort(String),
    /// `unix://` with no path.
    #[error("unix:// needs a socket path")]
    MissingPath,
    /// A Unix socket path the OS cannot take.
    #[error("bad unix socket path {path:?}: {why}")]
    BadPath {
        /// The path text.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The first query item is neither a filter nor an option.
    #[error("unknown filter {0:?}; expected packet, bson or text")]
    UnknownFilter(String),
    /// More than one filter in the query.
    #[error("a second filter {0:?}; a spec has at most one")]
    DuplicateFilter(String),
    /// An IN or OUT limit that is not a size.
    #[error("bad limit {text:?}: {why}")]
    BadLimit {
        /// The offending text (one limit, or the whole value when it has too many parts).
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A query item after the first that is not a known option.
    #[error("unknown option {0:?}; expected expire, commit or crypto")]
    UnknownOption(String),
    /// A known option with a value it cannot take.
    #[error("bad value {value:?} for {option}: {why}")]
    BadOptionValue {
        /// The option.
        option: &'static str,
        /// The value as written (empty when it had none).
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The same option twice.
    #[error("option {0} given twice")]
    DuplicateOption(&'static str),
    /// An empty item in the query (`?a&&b`, a trailing `&`).
    #[error("empty item in the query")]
    EmptyQueryItem,
    /// `udp` with the `text` filter: a datagram is exactly one packet frame.
    #[error("the text filter cannot be used over udp: one datagram is one packet frame")]
    TextOverDatagram,
}

impl Blame for SpecError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

impl ConnectionSpec {
    /// Parse a spec such as `tcp://0.0.0.0:8081?packet=10k,40k`. See the [module docs](self).
    pub fn parse(text: &str) -> Result<ConnectionSpec, SpecError> {
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        let (scheme_text, rest) = text.split_once("://").ok_or(SpecError::MissingScheme)?;
        let scheme = parse_scheme(scheme_text)?;
        let (address_text, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let address = match scheme {
            Scheme::Unix => parse_unix_path(address_text)?,
            _ => parse_inet(address_text)?,
        };
        let mut spec = ConnectionSpec {
            scheme,
            address,
            filter: Filter::Raw,
            max_in: usize::MAX,
            max_out: 0,
            expire: None,
            commit: Duration::ZERO,
            crypto: None,
        };
        spec.parse_query(query.unwrap_or(""))?;
        if scheme.is_datagram() {
            match spec.filter {
                Filter::Text => return Err(SpecError::TextOverDatagram),
                // UDP carries packet frames whatever the query says (WIRE.md §6).
                Filter::Raw => spec.set_limits(Filter::Packet, DEFAULT_LIMIT, DEFAULT_LIMIT),
                Filter::Packet => {}
            }
        }
        Ok(spec)
    }

    fn set_limits(&mut self, filter: Filter, max_in: usize, max_out: usize) {
        self.filter = filter;
        self.max_in = max_in;
        self.max_out = max_out;
    }

    fn parse_query(&mut self, query: &str) -> Result<(), SpecError> {
        if query.is_empty() {
            return Ok(());
        }
        let (mut have_filter, mut have_expire, mut have_commit) = (false, false, false);
        for (index, item) in query.split('&').enumerate() {
            if item.is_empty() {
                return Err(SpecError::EmptyQueryItem);
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            match key {
                "packet" | "bson" | "text" => {
                    if have_filter {
                        return Err(SpecError::DuplicateFilter(key.to_string()));
                    }
                    have_filter = true;
                    let filter = if key == "text" { Filter::Text } else { Filter::Packet };
                    let (max_in, max_out) = parse_limits(filter, value)?;
                    self.set_limits(filter, max_in, max_out);
                }
                "expire" => {
                    once(&mut have_expire, "expire")?;
                    self.expire = parse_expire(value.unwrap_or(""))?;
                }
                "commit" => {
                    once(&mut have_commit, "commit")?;
                    self.commit = Duration::from_millis(parse_millis("commit", value.unwrap_or(""))?);
                }
                "crypto" => {
                    if self.crypto.is_some() {
                        return Err(SpecError::DuplicateOption("crypto"));
                    }
                    match value {
                        Some(v) if !v.is_empty() => self.crypto = Some(v.to_string()),
                        _ => {
                            return Err(SpecError::BadOptionValue {
                                option: "crypto",
                                value: value.unwrap_or("").to_string(),
                                why: "needs a key or \"ALGO/MODE/PADDING=key\"",
                            })
                        }
                    }
                }
                _ if index == 0 => return Err(SpecError::UnknownFilter(key.to_string())),
                _ => return Err(SpecError::UnknownOption(key.to_string())),
            }
        }
        Ok(())
    }

    /// The framing configuration for a connection made from this spec.
    pub fn framing_config(&self) -> FramingConfig {
        FramingConfig {
            filter: self.filter,
            max_in: self.max_in,
            max_out: self.max_out,
            expire: self.expire,
            commit: self.commit,
        }
    }

    /// Whether the address is a multicast group (IPv4 224.0.0.0/4 or IPv6 ff00::/8).
    pub fn is_multicast(&self) -> bool {
        matches!(self.address, Address::Inet(a) if a.ip().is_multicast())
    }
}

impl FromStr for ConnectionSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        ConnectionSpec::parse(s)
    }
}

impl fmt::Display for ConnectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.address)?;
        let mut sep = '?';
        let mut item = |f: &mut fmt::Formatter<'_>| {
            let s = sep;
            sep = '&';
            f.write_fmt(format_args!("{s}"))
        };
        match self.filter {
            Filter::Packet | Filter::Text => {
                item(f)?;
                let name = if self.filter == Filter::Text { "text" } else { "packet" };
                write!(f, "{name}={},{}", Size(self.max_in), Size(self.max_out))?;
            }
            Filter::Raw => {}
        }
        if let Some(expire) = self.expire {
            item(f)?;
            write!(f, "expire={}", expire.as_millis())?;
        }
        if !self.commit.is_zero() {
            item(f)?;
            write!(f, "commit={}", self.commit.as_millis())?;
        }
        if let Some(crypto) = &self.crypto {
            item(f)?;
            write!(f, "crypto={crypto}")?;
        }
        Ok(())
    }
}

/// A byte count written with the largest suffix that divides it exactly.
struct Size(usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const K: usize = 1024;
        match self.0 {
            0 => f.write_str("0"),
            n if n % (K * K) == 0 => write!(f, "{}m", n / (K * K)),
            n if n % K == 0 => write!(f, "{}k", n / K),
            n => write!(f, "{n}"),
        }
    }
}

fn once(seen: &mut bool, option: &'static str) -> Result<(), SpecError> {
    if core::mem::replace(seen, true) {
        return Err(SpecError::DuplicateOption(option));
    }
    Ok(())
}

fn parse_scheme(text: &str) -> Result<Scheme, SpecError> {
    const SCHEMES: [Scheme; 4] = [Scheme::Tcp, Scheme::Udp, Scheme::Unix, Scheme::Quic];
    if text.is_empty() {
        return Err(SpecError::MissingScheme);
    }
    SCHEMES
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| SpecError::UnknownScheme(text.to_string()))
}

fn parse_unix_path(text: &str) -> Result<Address, SpecError> {
    if text.is_empty() {
        return Err(SpecError::MissingPath);
    }
    if text.contains('\0') {
        return Err(SpecError::BadPath { path: text.to_string(), why: "contains a NUL byte" });
    }
    Ok(Address::Unix(text.to_string()))
}

fn bad_host(host: &str, why: &'static str) -> SpecError {
    SpecError::BadHost { host: host.to_string(), why }
}

/// `host:port`, `[v6]:port` or `[v6%scope]:port`.
pub(crate) fn parse_inet(text: &str) -> Result<Address, SpecError> {
    if text.is_empty() {
        return Err(SpecError::MissingHost);
    }
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(|| bad_host(text, "'[' without ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(SpecError::MissingPort),
            None => return Err(bad_host(text, "unexpected text after ']'")),
        };
        if host.is_empty() {
            return Err(SpecError::MissingHost);
        }
        let port = parse_port(port)?;
        let (ip, scope) = match host.split_once('%') {
            Some((ip, scope)) => (ip, Some(scope)),
            None => (host, None),
        };
        let ip = Ipv6Addr::from_str(ip).map_err(|_| bad_host(host, "not an IPv6 address"))?;
        let scope_id = match scope {
            None => 0,
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u32>().map_err(|_| bad_host(host, "scope id over 32 bits"))?
            }
            Some(_) => return Err(bad_host(host, "the scope id must be a number (interface index)")),
        };
        return Ok(Address::Inet(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id))));
    }
    let (host, port) = text.rsplit_once(':').ok_or(SpecError::MissingPort)?;
    if host.is_empty() {
        return Err(SpecError::MissingHost);
    }
    if host.contains(':') {
        return Err(bad_host(host, "an IPv6 address must be written in brackets: [::1]:port"));
    }
    let port = parse_port(port)?;
    if let Ok(ip) = Ipv4Addr::from_str(host) {
        return Ok(Address::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))));
    }
    check_host_name(host)?;
    Ok(Address::Host { host: host.to_string(), port })
}

fn parse_port(text: &str) -> Result<u16, SpecError> {
    if text.is_empty() {
        return Err(SpecError::MissingPort);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SpecError::BadPort(text.to_string()));
    }
    text.parse::<u16>().map_err(|_| SpecError::BadPort(text.to_string()))
}

/// A DNS-style name: dot-separated labels of letters, digits, `-` and `_`, not all numeric.
fn check_host_name(host: &str) -> Result<(), SpecError> {
    if host.len() > 253 {
        return Err(bad_host(host, "longer than 253 characters"));
    }
    let mut all_numeric = true;
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad_host(host, "each dot-separated label must be 1 to 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad_host(host, "a host name takes only letters, digits, '-', '_' and '.'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad_host(host, "a label cannot start or end with '-'"));
        }
        all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
    }
    if all_numeric {
        return Err(bad_host(host, "not a valid IPv4 address"));
    }
    Ok(())
}

/// `IN,OUT`, `IN:OUT`, `IN` or nothing (bare filter).
fn parse_limits(filter: Filter, value: Option<&str>) -> Result<(usize, usize), SpecError> {
    let Some(value) = value else {
        return Ok((DEFAULT_LIMIT, DEFAULT_LIMIT));
    };
    let mut parts = value.splitn(3, [',', ':']);
    let in_text = parts.next().unwrap_or("");
    let out_text = parts.next();
    if parts.next().is_some() {
        return Err(SpecError::BadLimit { text: value.to_string(), why: "at most two limits: IN,OUT" });
    }
    let max_in = parse_size(in_text)?;
    let min_in = if filter == Filter::Packet { HEADER_LEN } else { 1 };
    if max_in < min_in {
        let why = if filter == Filter::Packet {
            "IN must be at least 4: the frame header alone is 4 bytes"
        } else {
            "IN must be at least 1"
        };
        return Err(SpecError::BadLimit { text: in_text.to_string(), why });
    }
    let max_out = match out_text {
        Some(text) => parse_size(text)?,
        // The original leaves a limit that is not given at BUFSIZ.
        None => DEFAULT_LIMIT,
    };
    Ok((max_in, max_out))
}

/// A limit as the spec writes it: a decimal count with an optional `k` (×1024), `m` (×1024²)
/// or `b` (×1) suffix, any case, at most 2³¹−1 (`"10k"` is 10240).
pub fn parse_size(text: &str) -> Result<usize, SpecError> {
    let bad = |why| SpecError::BadLimit { text: text.to_string(), why };
    let (digits, unit): (&str, u64) = match text.as_bytes().last() {
        // The suffix is one ASCII byte, so slicing it off stays on a char boundary.
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1024),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1024 * 1024),
        Some(b'b' | b'B') => (&text[..text.len() - 1], 1),
        _ => (text, 1),
    };
    if digits.is_empty() {
        return Err(bad("no number"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a number with an optional k, m or b suffix"));
    }
    let n = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit));
    match n {
        Some(n) if n <= MAX_FRAME_LEN as u64 => Ok(n as usize),
        _ => Err(bad("over the 2 GiB frame limit")),
    }
}

fn parse_expire(value: &str) -> Result<Option<Duration>, SpecError> {
    if value == "-1" || value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match parse_millis("expire", value)? {
        0 => Err(SpecError::BadOptionValue {
            option: "expire",
            value: value.to_string(),
            why: "0 would close the connection at once; use -1 or none for never",
        }),
        ms => Ok(Some(Duration::from_millis(ms))),
    }
}

fn parse_millis(option: &'static str, value: &str) -> Result<u64, SpecError> {
    let bad = |why| SpecError::BadOptionValue { option, value: value.to_string(), why };
    if value.is_empty() {
        return Err(bad("needs a number of milliseconds"));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a whole number of milliseconds"));
    }
    value.parse::<u64>().map_err(|_| bad("too large"))
}

/// Why a spec could not be turned into a ready connection; the variant names the bad part.
/// Always the caller's fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The spec itself (scheme, address, filter, options).
    #[error("bad connection spec: {0}")]
    Spec(#[from] SpecError),
    /// The `crypto` option: unknown algorithm, mode or padding, or an empty key.
    #[error("bad crypto option: {0}")]
    Crypto(#[from] crate::crypto::SpecError),
    /// The framing cannot carry typed messages (only the packet filter can).
    #[error("cannot carry typed messages: {0}")]
    Message(#[source] crate::message::Error),
}

impl Blame for OpenError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

impl ConnectionSpec {
    /// The cipher the `crypto` option asks for (`None` without one). `entropy` feeds the sealed
    /// profile's nonces and is dropped otherwise.
    pub fn cipher(
        &self,
        entropy: Box<dyn Entropy + Send>,
    ) -> Result<Option<Box<dyn FrameCipher + Send>>, crate::crypto::SpecError> {
        self.crypto.as_deref().map(|option| crate::crypto::from_option(option, entropy)).transpose()
    }

    /// A ready packet connection: this spec's framing, encrypted when `crypto` is set.
    ///
    /// ```
    /// use switchboard_proto::stage::ConnectionSpec;
    /// use switchboard_proto::SplitMix64;
    ///
    /// let spec = ConnectionSpec::parse("tcp://127.0.0.1:9000?packet=64k,64k&crypto=AES/CFB/NoPadding=secret").unwrap();
    /// let conn = spec.packet_connection(Box::new(SplitMix64::new(1))).unwrap();
    /// assert!(conn.is_encrypted());
    /// assert_eq!(conn.config().max_in, 64 * 1024);
    /// ```
    pub fn packet_connection(&self, entropy: Box<dyn Entropy + Send>) -> Result<PacketConnection, OpenError> {
        let config = self.framing_config();
        Ok(match self.cipher(entropy)? {
            Some(cipher) => PacketConnection::with_cipher(config, cipher),
            None => PacketConnection::new(config),
        })
    }

    /// A ready datagram endpoint (for `udp://` specs): this spec's framing, encrypted when
    /// `crypto` is set; `default_to` is where `Send` / `SendBody` go.
    pub fn packet_datagram(
        &self,
        entropy: Box<dyn Entropy + Send>,
        default_to: Option<SocketAddr>,
    ) -> Result<PacketDatagram, OpenError> {
        let mut endpoint = PacketDatagram::new(self.framing_config(), default_to);
        endpoint.set_cipher(self.cipher(entropy)?);
        Ok(endpoint)
    }

    /// A ready typed-message connection over this spec's framing (which must be `packet`),
    /// encrypted when `crypto` is set; the other message settings are the defaults.
    pub fn message_connection(&self, entropy: Box<dyn Entropy + Send>) -> Result<MessageConnection, OpenError> {
        let config = MessageConfig::new(self.framing_config());
        let cipher = self.cipher(entropy)?;
        let mut conn = MessageConnection::new(config).map_err(OpenError::Message)?;
        conn.set_cipher(cipher);
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example() {
        let spec = ConnectionSpec::parse("tcp://0.0.0.0:8081?packet=10k,40k").unwrap();
        assert_eq!(spec.scheme, Scheme::Tcp);
        assert_eq!(spec.framing_config(), FramingConfig::packet(10 * 1024, 40 * 1024));
        assert_eq!(spec.to_string(), "tcp://0.0.0.0:8081?packet=10k,40k");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert!(parse_size("2048m").is_err());
        assert!(parse_size("k").is_err());
        assert_eq!(Size(3 << 20).to_string(), "3m");
        assert_eq!(Size(1536).to_string(), "1536");
    }

    #[test]
    fn open_names_the_bad_part() {
        use crate::entropy::SplitMix64;
        let open = |text: &str| {
            ConnectionSpec::parse(text)
                .map_err(OpenError::from)
                .and_then(|spec| spec.packet_connection(Box::new(SplitMix64::new(1))))
        };
        assert!(matches!(open("tcp://127.0.0.1:1?packet&crypto=AES-256-GCM=k"), Ok(c) if c.is_encrypted()));
        assert!(matches!(open("tcp://127.0.0.1:1?packet"), Ok(c) if !c.is_encrypted()));
        assert!(matches!(open("tcp:/x"), Err(OpenError::Spec(SpecError::MissingScheme))));
        assert!(matches!(
            open("tcp://127.0.0.1:1?packet&crypto=BLOWFISH/CBC=k"),
            Err(OpenError::Crypto(crate::crypto::SpecError::UnknownAlgorithm { .. }))
        ));
        assert!(matches!(
            open("tcp://127.0.0.1:1?crypto=AES="),
            Err(OpenError::Crypto(crate::crypto::SpecError::EmptyKey))
        ));
        let raw = ConnectionSpec::parse("tcp://127.0.0.1:1").unwrap();
        let message = raw.message_connection(Box::new(SplitMix64::new(1)));
        assert!(matches!(message, Err(OpenError::Message(_))));
        let e = OpenError::from(SpecError::Empty);
        assert_eq!(e.fault(), Fault::Caller);
        let udp = ConnectionSpec::parse("udp://127.0.0.1:1?crypto=DES/CFB=k").unwrap();
        assert!(udp.packet_datagram(Box::new(SplitMix64::new(1)), None).is_ok());
        let spec = ConnectionSpec::parse("unix:///tmp/x?packet&crypto=SEED/CFB/NoPadding=k").unwrap();
        assert!(spec.message_connection(Box::new(SplitMix64::new(1))).unwrap().packet().is_encrypted());
    }
}
