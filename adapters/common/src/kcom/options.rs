//! [`KcomOptions`]: where, how long and how much, for every adapter's KCOM5 API.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchboard_proto::kcom::{self as proto, unpack, AddressError, KcomConfig, DEFAULT_PORT, KEY_LEN};

/// Where, how long, and how much: the originals' settings plus the limits a receiver needs.
/// Runtime-neutral: the blocking and the async KCOM5 APIs take the same options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KcomOptions {
    /// Use `127.0.0.1` instead of `::1` (the originals' `ipv6 = false`). Not used when
    /// [`host`](Self::host) is set.
    pub ipv4: bool,
    /// Listen on (sender) or connect to (receiver) this address instead of loopback. The
    /// originals always use loopback; KCOM5 sends everything in the clear, so set a host only
    /// on networks you trust.
    pub host: Option<IpAddr>,
    /// The TCP port. 0 lets the system pick one for a listener.
    pub port: u16,
    /// One deadline for the whole exchange, waiting for the peer included (`None`: none).
    pub close: Option<Duration>,
    /// The session key of an address string, repeated to 48 bytes. KCOM5 never uses it (the
    /// transfer is in the clear); it is kept for the caller.
    pub key: Option<[u8; KEY_LEN]>,
    /// Receiver: the longest message accepted.
    pub max_msg_len: u32,
    /// Receiver: the largest data blob accepted. `receive` holds the blob in memory: bound it
    /// when the sender is not trusted.
    pub max_data_len: u64,
}

impl Default for KcomOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl KcomOptions {
    /// The originals' defaults: `::1`, port 13600, close 150 s, no key.
    pub fn new() -> Self {
        let config = KcomConfig::default();
        KcomOptions {
            ipv4: false,
            host: None,
            port: DEFAULT_PORT,
            close: config.close,
            key: None,
            max_msg_len: config.max_msg_len,
            max_data_len: config.max_data_len,
        }
    }

    /// The defaults with the port and key of an address string (`"13600.01.ab"`, see [`unpack`]).
    pub fn from_address(address: &str) -> Result<Self, AddressError> {
        let (port, key) = unpack(address)?;
        Ok(KcomOptions { port, key: Some(key), ..Self::new() })
    }

    /// Use IPv4 loopback (`true`) or IPv6 loopback (`false`, the default).
    pub fn ipv4(mut self, ipv4: bool) -> Self {
        self.ipv4 = ipv4;
        self
    }

    /// Use `host` instead of loopback (see [`KcomOptions::host`](Self#structfield.host)).
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = Some(host);
        self
    }

    /// Set the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Set the deadline for the whole exchange.
    pub fn close(mut self, close: Option<Duration>) -> Self {
        self.close = close;
        self
    }

    /// Set the deadline in seconds, as the originals take it: ≤ 0 (or not finite) means none.
    pub fn close_secs(mut self, secs: f64) -> Self {
        self.close = KcomConfig::from_close_secs(secs).close;
        self
    }

    /// Set the longest message a receiver accepts.
    pub fn max_msg_len(mut self, max: u32) -> Self {
        self.max_msg_len = max;
        self
    }

    /// Set the largest data blob a receiver accepts.
    pub fn max_data_len(mut self, max: u64) -> Self {
        self.max_data_len = max;
        self
    }

    /// The socket address these options name: the host, or else the originals' loopback
    /// (`::1`, or `127.0.0.1` with `ipv4`), with the port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host.unwrap_or(proto::loopback(self.ipv4)), self.port)
    }

    /// The machines' configuration, with `close` replaced by `close` (what is left of the
    /// deadline once the peer came).
    pub fn config(&self, close: Option<Duration>) -> KcomConfig {
        KcomConfig::default().with_close(close).with_max_msg_len(self.max_msg_len).with_max_data_len(self.max_data_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_replaces_loopback_and_ipv4_picks_the_loopback() {
        let options = KcomOptions::new().port(4000);
        assert_eq!(options.addr(), "[::1]:4000".parse().unwrap());
        assert_eq!(options.clone().ipv4(true).addr(), "127.0.0.1:4000".parse().unwrap());
        let host: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(options.clone().host(host).addr(), "192.0.2.7:4000".parse().unwrap());
        assert_eq!(options.host(host).ipv4(false).addr(), "192.0.2.7:4000".parse().unwrap());
    }
}
