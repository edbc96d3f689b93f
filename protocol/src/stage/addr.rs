//! Socket addresses to text and back: the seed's `broker.ntoa` / `broker.aton` (seed 000).
//!
//! | seed call                                  | here                                             |
//! |--------------------------------------------|--------------------------------------------------|
//! | `broker.ntoa(addr)`                        | [`ntoa`]: `IP:PORT`, `[IP]:PORT`, `[IP%SCOPE]:PORT` |
//! | `broker.ntoa(addr, {})` (the table form)   | [`AddrParts::from`]`(addr)`: family, addr, port, scope_id |
//! | `broker.aton("udp://224.0.0.1:8082", {})`  | [`aton`] (a spec, an `IP:PORT`, or a bare IP)    |
//! | `broker.aton(s, { port = 8080 })`          | [`aton_with`] and [`Overrides`]                  |
//! | `broker.aton(10)` (a family number)        | [`Family::from_number`]`(10)?.`[`unspecified`](Family::unspecified)`()` |
//!
//! Spec and address texts go through the connection-spec parser ([`super::spec`]), so `aton`
//! takes exactly the addresses a spec takes. Nothing here resolves a host name (the core does
//! no I/O): a name comes back as [`AddrError::NeedsResolving`], and `switchboard_rt::net::aton`
//! is the variant that resolves it. Everything `ntoa` writes, `aton` reads back to the same
//! address (flow info, which has no text form, aside).

use alloc::string::{String, ToString};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::str::FromStr;

use super::spec::{parse_inet, Address, ConnectionSpec, SpecError};
use crate::fault::{Blame, Fault};

/// An address family, numbered as the seed's tables number it (Linux `AF_INET`, `AF_INET6`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Family {
    /// IPv4, number 2.
    Inet,
    /// IPv6, number 10.
    Inet6,
}

impl Family {
    /// The family's number in the seed's tables: 2 for IPv4, 10 for IPv6.
    pub fn number(self) -> u16 {
        match self {
            Family::Inet => 2,
            Family::Inet6 => 10,
        }
    }

    /// The family with this number (2 or 10).
    pub fn from_number(number: u16) -> Result<Family, AddrError> {
        match number {
            2 => Ok(Family::Inet),
            10 => Ok(Family::Inet6),
            other => Err(AddrError::UnknownFamily(other)),
        }
    }

    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::Inet,
            SocketAddr::V6(_) => Family::Inet6,
        }
    }

    /// The unspecified address of this family with port 0 (`0.0.0.0:0`, `[::]:0`): what the
    /// seed's `broker.aton(2)` / `broker.aton(10)` give, to fill in with [`Overrides::apply`].
    pub fn unspecified(self) -> SocketAddr {
        match self {
            Family::Inet => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            Family::Inet6 => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        }
    }
}

impl TryFrom<u16> for Family {
    type Error = AddrError;
    fn try_from(number: u16) -> Result<Family, AddrError> {
        Family::from_number(number)
    }
}

/// A socket address taken apart, as the seed's `broker.ntoa(addr, {})` table shows it.
///
/// The family is [`AddrParts::family`], read from `addr` so the two cannot disagree. IPv4 has
/// no scope: converting to a [`SocketAddr`] ignores `scope_id` for an IPv4 `addr`, and an IPv6
/// flow label does not survive the round trip (the seed's table has none).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct AddrParts {
    /// The IP address.
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
    /// The IPv6 scope id (interface index); 0 for none, and always 0 from an IPv4 address.
    pub scope_id: u32,
}

impl AddrParts {
    /// The address family (2 = IPv4, 10 = IPv6 through [`Family::number`]).
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

impl From<SocketAddr> for AddrParts {
    fn from(addr: SocketAddr) -> AddrParts {
        let scope_id = match addr {
            SocketAddr::V4(_) => 0,
            SocketAddr::V6(a) => a.scope_id(),
        };
        AddrParts { addr: addr.ip(), port: addr.port(), scope_id }
    }
}

impl From<AddrParts> for SocketAddr {
    fn from(parts: AddrParts) -> SocketAddr {
        match parts.addr {
            IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, parts.port)),
            IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, parts.port, 0, parts.scope_id)),
        }
    }
}

/// Fields to replace in an address (the seed's `aton(s, { addr = …, port = …, scope_id = … })`);
/// `None` keeps the field. Replacing the address with one of the other family changes the
/// family: the port is kept, and a scope id only carries over to IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Overrides {
    /// A new IP address.
    pub addr: Option<IpAddr>,
    /// A new port.
    pub port: Option<u16>,
    /// A new IPv6 scope id (only 0 is accepted for an IPv4 result).
    pub scope_id: Option<u32>,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Overrides::default()
    }

    /// Replace the IP address.
    pub fn addr(mut self, addr: IpAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Replace the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Replace the IPv6 scope id.
    pub fn scope_id(mut self, scope_id: u32) -> Self {
        self.scope_id = Some(scope_id);
        self
    }

    /// `to` with these fields replaced. Refuses a non-zero scope id on an IPv4 result.
    pub fn apply(&self, to: SocketAddr) -> Result<SocketAddr, AddrError> {
        let mut parts = AddrParts::from(to);
        if let Some(addr) = self.addr {
            parts.addr = addr;
        }
        if let Some(port) = self.port {
            parts.port = port;
        }
        if let Some(scope_id) = self.scope_id {
            if scope_id != 0 && parts.addr.is_ipv4() {
                return Err(AddrError::ScopeOnIpv4 { scope_id });
            }
            parts.scope_id = scope_id;
        }
        Ok(parts.into())
    }
}

/// Why a text is not a socket address. Always the caller's fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The text is empty.
    #[error("empty address")]
    Empty,
    /// A malformed spec or address part (scheme, host, port, scope id, query); the inner error
    /// names the part.
    #[error("bad address: {0}")]
    Spec(#[from] SpecError),
    /// The text names a host: resolving it is I/O, which the core does not do. Use
    /// `switchboard_rt::net::aton` (re-exported as `switchboard_std::net::aton`).
    #[error("{host}:{port} names a host; resolve it in an adapter (switchboard_rt::net::aton)")]
    NeedsResolving {
        /// The host name, as written.
        host: String,
        /// The port.
        port: u16,
    },
    /// A `unix://` spec: a path, not a socket address.
    #[error("unix socket path {0:?} is not an IP socket address")]
    NotInet(String),
    /// A family number other than 2 (IPv4) and 10 (IPv6).
    #[error("unknown address family {0}; expected 2 (IPv4) or 10 (IPv6)")]
    UnknownFamily(u16),
    /// A non-zero scope id asked for an IPv4 address.
    #[error("scope id {scope_id} given for an IPv4 address; only IPv6 has scopes")]
    ScopeOnIpv4 {
        /// The scope id asked for.
        scope_id: u32,
    },
}

impl Blame for AddrError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

/// An address as text: IPv4 `IP:PORT`, IPv6 `[IP]:PORT`, and an IPv6 address with a non-zero
/// scope id `[IP%SCOPE]:PORT` (the numeric form [`aton`] and connection specs read back).
///
/// ```
/// use std::net::SocketAddr;
/// use switchboard_proto::stage::ntoa;
///
/// assert_eq!(ntoa("224.0.0.1:8082".parse().unwrap()), "224.0.0.1:8082");
/// assert_eq!(ntoa("[::1]:8081".parse().unwrap()), "[::1]:8081");
/// let scoped = SocketAddr::from(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 3));
/// assert_eq!(ntoa(scoped), "[fe80::1%3]:80");
/// ```
pub fn ntoa(addr: SocketAddr) -> String {
    // The spec's address form, so whatever is written here parses back through `aton`.
    Address::Inet(addr).to_string()
}

/// The socket address in `text`: a connection spec (`udp://224.0.0.1:8082`,
/// `tcp://[::1]:8081?packet=10k,40k`, whose options must be valid too), an address as [`ntoa`]
/// writes it (`IP:PORT`, `[IP]:PORT`, `[IP%SCOPE]:PORT`), or a bare IP address (port 0).
///
/// A host name is refused with [`AddrError::NeedsResolving`] (no I/O here); a `unix://` spec
/// with [`AddrError::NotInet`].
///
/// ```
/// use std::net::SocketAddr;
/// use switchboard_proto::stage::{aton, AddrError};
///
/// let group: SocketAddr = aton("udp://224.0.0.1:8082").unwrap();
/// assert_eq!(group, "224.0.0.1:8082".parse().unwrap());
/// assert_eq!(aton("tcp://[::1]:8081?packet=10k,40k").unwrap(), "[::1]:8081".parse().unwrap());
/// assert_eq!(aton("10.0.0.7").unwrap(), "10.0.0.7:0".parse().unwrap());
/// assert!(matches!(aton("tcp://example.org:80"), Err(AddrError::NeedsResolving { port: 80, .. })));
/// assert!(matches!(aton("127.0.0.1:99999"), Err(AddrError::Spec(_))));
/// ```
pub fn aton(text: &str) -> Result<SocketAddr, AddrError> {
    if text.is_empty() {
        return Err(AddrError::Empty);
    }
    let address = if text.contains("://") {
        ConnectionSpec::parse(text)?.address
    } else if let Ok(ip) = IpAddr::from_str(text) {
        return Ok(SocketAddr::new(ip, 0));
    } else {
        parse_inet(text)?
    };
    match address {
        Address::Inet(addr) => Ok(addr),
        Address::Host { host, port } => Err(AddrError::NeedsResolving { host, port }),
        Address::Unix(path) => Err(AddrError::NotInet(path)),
    }
}

/// [`aton`], then `overrides` applied (the seed's `broker.aton(s, t)`).
///
/// ```
/// use switchboard_proto::stage::{aton_with, Family, Overrides};
///
/// let addr = aton_with("udp://224.0.0.1:8082", &Overrides::new().port(9000)).unwrap();
/// assert_eq!(addr, "224.0.0.1:9000".parse().unwrap());
///
/// // From a family number: the unspecified address, then the fields wanted.
/// let any6 = Family::from_number(10).unwrap().unspecified();
/// let scoped = Overrides::new().addr("fe80::1".parse().unwrap()).port(80).scope_id(2).apply(any6).unwrap();
/// assert_eq!(switchboard_proto::stage::ntoa(scoped), "[fe80::1%2]:80");
/// ```
pub fn aton_with(text: &str, overrides: &Overrides) -> Result<SocketAddr, AddrError> {
    overrides.apply(aton(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(text: &str) -> SocketAddr {
        SocketAddr::from_str(text).unwrap()
    }

    #[test]
    fn ntoa_round_trips_through_aton() {
        for text in ["127.0.0.1:80", "0.0.0.0:0", "[::1]:8081", "[fe80::1%7]:65535", "[::]:0"] {
            let addr = sa(text);
            assert_eq!(ntoa(addr), text);
            assert_eq!(aton(&ntoa(addr)), Ok(addr));
        }
    }

    #[test]
    fn aton_reads_specs_addresses_and_bare_ips() {
        assert_eq!(aton("UDP://224.0.0.1:8082"), Ok(sa("224.0.0.1:8082")));
        assert_eq!(aton("quic://[::1%2]:443"), Ok(sa("[::1%2]:443")));
        assert_eq!(aton("::1"), Ok(sa("[::1]:0")));
        assert_eq!(aton("[::ffff:1.2.3.4]:5"), Ok(sa("[::ffff:1.2.3.4]:5")));
    }

    #[test]
    fn aton_names_the_bad_part() {
        assert_eq!(aton(""), Err(AddrError::Empty));
        assert_eq!(aton("127.0.0.1"), Ok(sa("127.0.0.1:0")));
        assert_eq!(aton("127.0.0.1:"), Err(AddrError::Spec(SpecError::MissingPort)));
        assert_eq!(aton(":80"), Err(AddrError::Spec(SpecError::MissingHost)));
        assert_eq!(aton("1.2.3.4:x"), Err(AddrError::Spec(SpecError::BadPort("x".into()))));
        assert!(matches!(aton("::1:80x"), Err(AddrError::Spec(SpecError::BadHost { .. }))));
        assert!(matches!(aton("[fe80::1%eth0]:80"), Err(AddrError::Spec(SpecError::BadHost { .. }))));
        assert!(matches!(aton("[::1"), Err(AddrError::Spec(SpecError::BadHost { .. }))));
        assert!(matches!(aton("ftp://1.2.3.4:5"), Err(AddrError::Spec(SpecError::UnknownScheme(_)))));
        assert!(matches!(aton("tcp://1.2.3.4:5?bogus"), Err(AddrError::Spec(SpecError::UnknownFilter(_)))));
        assert_eq!(aton("unix:///tmp/s"), Err(AddrError::NotInet("/tmp/s".into())));
        assert_eq!(aton("localhost:80"), Err(AddrError::NeedsResolving { host: "localhost".into(), port: 80 }));
        assert!(matches!(aton("1.2.3:80"), Err(AddrError::Spec(SpecError::BadHost { .. }))));
        assert_eq!(AddrError::Empty.fault(), Fault::Caller);
    }

    #[test]
    fn overrides_replace_fields_and_refuse_scopes_on_ipv4() {
        let v6 = sa("[fe80::1%3]:80");
        assert_eq!(Overrides::new().apply(v6), Ok(v6));
        assert_eq!(Overrides::new().port(81).apply(v6), Ok(sa("[fe80::1%3]:81")));
        assert_eq!(Overrides::new().addr("::2".parse().unwrap()).apply(v6), Ok(sa("[::2%3]:80")));
        // Another family: port kept, scope gone.
        assert_eq!(Overrides::new().addr("10.0.0.1".parse().unwrap()).apply(v6), Ok(sa("10.0.0.1:80")));
        assert_eq!(Overrides::new().scope_id(4).apply(sa("10.0.0.1:1")), Err(AddrError::ScopeOnIpv4 { scope_id: 4 }));
        assert_eq!(Overrides::new().scope_id(0).apply(sa("10.0.0.1:1")), Ok(sa("10.0.0.1:1")));
        assert_eq!(aton_with("tcp://example.org:1", &Overrides::new()).map_err(|e| e.fault()), Err(Fault::Caller));
    }

    #[test]
    fn families_and_parts() {
        assert_eq!(Family::from_number(2).map(Family::unspecified), Ok(sa("0.0.0.0:0")));
        assert_eq!(Family::try_from(10).map(Family::unspecified), Ok(sa("[::]:0")));
        assert_eq!(Family::from_number(1), Err(AddrError::UnknownFamily(1)));
        assert_eq!(Family::Inet6.number(), 10);
        assert_eq!(Family::of(&sa("1.2.3.4:5")), Family::Inet);

        let parts = AddrParts::from(sa("[fe80::1%3]:80"));
        assert_eq!((parts.family().number(), parts.port, parts.scope_id), (10, 80, 3));
        assert_eq!(SocketAddr::from(parts), sa("[fe80::1%3]:80"));
        let v4 = AddrParts { addr: "1.2.3.4".parse().unwrap(), port: 5, scope_id: 9 };
        assert_eq!(v4.family(), Family::Inet);
        assert_eq!(SocketAddr::from(v4), sa("1.2.3.4:5"));
    }
}
