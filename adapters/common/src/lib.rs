//! # switchboard-rt
//!
//! What every Switchboard runtime adapter shares, so none of them copies it: the wall clock
//! turned into the machines' [`Instant`](switchboard_proto::Instant) ([`Clock`]), the operating
//! system's random source ([`OsEntropy`]), the seed-001 socket options ([`SocketOptions`])
//! applied through `socket2`, and the [`net`] helpers that open sockets with those options set
//! at the right moment (before `bind` / `connect`) and manage multicast membership.
//!
//! ```
//! use switchboard_rt::{Clock, OsEntropy, SocketOptions};
//! use switchboard_proto::Entropy;
//!
//! let clock = Clock::new();
//! let t0 = clock.now();
//! assert!(clock.now() >= t0);
//!
//! let mut hello = [0u8; 3];
//! OsEntropy.fill(&mut hello);
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
//! SocketOptions::new().nodelay(true).apply(&stream).unwrap();
//! assert!(stream.nodelay().unwrap());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
pub mod net;
mod options;

pub use clock::{Clock, OsEntropy};
pub use net::{Multicast, MulticastInterface};
pub use options::{Keepalive, SocketOptions};
