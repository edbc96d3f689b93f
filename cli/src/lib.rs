//! # switchboard-cli
//!
//! Command-line tools built on Switchboard. The `kcom` binary (`src/bin/kcom.rs`) sends and
//! receives KCOM5 transfers and packs and unpacks KCOM5 addresses; `kcom --help` and
//! `kcom COMMAND --help` describe every option:
//!
//! ```text
//! kcom send [--ipv4] [--host HOST] [--port N | --address ADDR] [--timeout S] [--msg TEXT] [-q] FILE|-
//! kcom recv [--ipv4] [--host HOST] [--port N | --address ADDR] [--timeout S] [-o FILE] [--json] [-q]
//! kcom pack PORT KEYHEX
//! kcom unpack ADDRESS
//! ```
//!
//! The transfers themselves are `switchboard_std::kcom`'s (`--host` names go to its
//! `KcomListener::bind_to` and `connect_to` as the addresses they resolve to); this crate adds
//! [`progress`] (the transfer clock, started when the peer connects) and [`output`] (an output
//! file that appears only complete).
//!
//! `kcom pack` prints exactly what the protocol crate's `pack` returns:
//!
//! ```
//! assert_eq!(switchboard_proto::kcom::pack(13600, &[0x01, 0xab]).unwrap(), "13600.01.ab");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod output;
pub mod progress;
