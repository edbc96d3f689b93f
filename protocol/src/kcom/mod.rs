//! KCOM5 one-shot transfer (WIRE.md §1): one message and one data blob from a [`Sender`] to a
//! [`Receiver`] over a single stream, plus the `port.hh.hh…` [address strings](address).
//!
//! ```text
//!   receiver                                  sender
//!      │ "KCOM5" + 3 random bytes ─────────────► │  reads 8, checks "KCOM5"
//!      │ ◄──────────────────────── same 8 bytes  │
//!      │ ◄──── u32 msg_len, msg, u64 data_len, data
//!      └── close                        close ───┘
//! ```
//!
//! The [`Sender`] is the originals' `server` (it listens and has accepted one connection); the
//! [`Receiver`] is their `client` (it has connected). Both are sans-IO [`Machine`]s; one
//! deadline, [`KcomConfig::close`], bounds the whole exchange on either side.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use switchboard_proto::kcom::{Collector, KcomConfig, Receiver, Sender};
//! use switchboard_proto::machine::drain;
//! use switchboard_proto::{Input, Instant, Machine, SplitMix64};
//!
//! let now = Instant::ZERO;
//! let config = KcomConfig::default();
//! let mut sender = Sender::new(config, "hi", Bytes::from_static(b"payload")).unwrap();
//! let mut receiver = Receiver::new(config, &mut SplitMix64::new(1));
//!
//! let hello = drain(&mut receiver, now).wire();
//! sender.handle_input(now, Input::Stream(&mut BytesMut::from(&hello[..]))).unwrap();
//! let reply = drain(&mut sender, now);
//! assert!(matches!(reply.finished, Some(Ok(()))));
//!
//! receiver.handle_input(now, Input::Stream(&mut BytesMut::from(&reply.wire()[..]))).unwrap();
//! let mut collector = Collector::new();
//! let out = drain(&mut receiver, now);
//! out.events.into_iter().for_each(|e| collector.push(e));
//! assert!(matches!(out.finished, Some(Ok(()))));
//! assert_eq!(collector.into_parts(), ("hi".into(), Bytes::from_static(b"payload")));
//! ```
//!
//! [`Machine`]: crate::Machine

pub mod address;
mod error;
pub mod receiver;
pub mod sender;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use crate::time::Instant;

pub use address::{pack, unpack, AddressError, KEY_LEN};
pub use error::{Error, Part};
pub use receiver::{Collector, Receiver, ReceiverEvent};
pub use sender::{Sender, SenderCommand, SenderEvent};

/// The 5 bytes every hello starts with.
pub const MAGIC: [u8; 5] = *b"KCOM5";
/// Length of the hello and of its echo: the magic plus 3 random bytes.
pub const HELLO_LEN: usize = 8;
/// The originals' default port.
pub const DEFAULT_PORT: u16 = 13600;
/// The originals' default `close` timeout: 150 s.
pub const DEFAULT_CLOSE: Duration = Duration::from_secs(150);
/// Default [`KcomConfig::max_msg_len`]: 16 MiB. The message is buffered whole, so it is bounded;
/// the originals use it for short control strings.
pub const DEFAULT_MAX_MSG_LEN: u32 = 16 * 1024 * 1024;
/// Default [`KcomConfig::max_data_len`]: no limit, since the receiver streams data on in chunks
/// and never buffers it. Set a limit when the application collects the blob in memory.
pub const DEFAULT_MAX_DATA_LEN: u64 = u64::MAX;
/// Default [`KcomConfig::write_budget`]: 1 MiB of queued output before the driver holds back.
pub const DEFAULT_KCOM_WRITE_BUDGET: usize = 1024 * 1024;
/// The IPv4 loopback address the originals use with `ipv6 = false`.
pub const LOOPBACK_V4: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The IPv6 loopback address the originals use by default.
pub const LOOPBACK_V6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// The loopback address for the originals' `ipv6` flag: `127.0.0.1` when `ipv4`, else `::1`.
pub fn loopback(ipv4: bool) -> IpAddr {
    if ipv4 {
        IpAddr::V4(LOOPBACK_V4)
    } else {
        IpAddr::V6(LOOPBACK_V6)
    }
}

/// Settings shared by both roles.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KcomConfig {
    /// One deadline for the whole exchange, counted from the machine's first call (`None`: no
    /// deadline).
    pub close: Option<Duration>,
    /// Receiver: the longest message accepted, checked when its length arrives.
    pub max_msg_len: u32,
    /// Receiver: the largest data blob accepted, checked when its length arrives.
    pub max_data_len: u64,
    /// Sender: queued output the driver may hold before it stops taking data chunks; also the
    /// most streamed data held before the handshake.
    pub write_budget: usize,
}

impl Default for KcomConfig {
    /// The originals' defaults: `close` 150 s; no data limit, 16 MiB message limit.
    fn default() -> Self {
        KcomConfig {
            close: Some(DEFAULT_CLOSE),
            max_msg_len: DEFAULT_MAX_MSG_LEN,
            max_data_len: DEFAULT_MAX_DATA_LEN,
            write_budget: DEFAULT_KCOM_WRITE_BUDGET,
        }
    }
}

impl KcomConfig {
    /// The defaults with the seed's `close` in seconds: a value ≤ 0 (or NaN, or infinity) means
    /// no deadline; values too large for a `Duration` saturate.
    pub fn from_close_secs(secs: f64) -> Self {
        let close = if secs > 0.0 && secs.is_finite() {
            Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        } else {
            None
        };
        KcomConfig { close, ..Self::default() }
    }

    /// Set the deadline for the whole exchange.
    pub fn with_close(mut self, close: Option<Duration>) -> Self {
        self.close = close;
        self
    }

    /// Set the longest message the receiver accepts.
    pub fn with_max_msg_len(mut self, max: u32) -> Self {
        self.max_msg_len = max;
        self
    }

    /// Set the largest data blob the receiver accepts.
    pub fn with_max_data_len(mut self, max: u64) -> Self {
        self.max_data_len = max;
        self
    }

    /// Set the sender's write budget.
    pub fn with_write_budget(mut self, budget: usize) -> Self {
        self.write_budget = budget;
        self
    }
}

/// The one deadline both machines keep: it starts at the first call's `now`.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    close: Option<Duration>,
    start: Option<Instant>,
}

impl Deadline {
    fn new(close: Option<Duration>) -> Self {
        Deadline { close, start: None }
    }

    /// Start the clock on the first call; `Some(Error::TimedOut)` once `now` reaches the deadline.
    fn check(&mut self, now: Instant) -> Option<Error> {
        self.start.get_or_insert(now);
        let after = self.close?;
        (now >= self.at()?).then_some(Error::TimedOut { after })
    }

    fn at(&self) -> Option<Instant> {
        Some(self.start? + self.close?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_secs_mapping() {
        assert_eq!(KcomConfig::from_close_secs(150.0).close, Some(DEFAULT_CLOSE));
        assert_eq!(KcomConfig::from_close_secs(0.5).close, Some(Duration::from_millis(500)));
        assert_eq!(KcomConfig::from_close_secs(0.0).close, None);
        assert_eq!(KcomConfig::from_close_secs(-1.0).close, None);
        assert_eq!(KcomConfig::from_close_secs(f64::NAN).close, None);
        assert_eq!(KcomConfig::from_close_secs(f64::INFINITY).close, None);
        assert_eq!(KcomConfig::from_close_secs(1e300).close, Some(Duration::MAX));
    }

    #[test]
    fn loopback_addresses() {
        assert_eq!(loopback(true), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(loopback(false), "::1".parse::<IpAddr>().unwrap());
    }
}
