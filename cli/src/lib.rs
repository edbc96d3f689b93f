//! # switchboard-cli
//!
//! Command-line tools built on Switchboard. The `kcom` binary (`src/bin/kcom.rs`) sends and
//! receives KCOM5 transfers with `switchboard_std::kcom` and packs and unpacks KCOM5 addresses:
//!
//! ```text
//! kcom send [--ipv4] [--port N] [--timeout S] [--msg TEXT] [--address ADDR] FILE|-
//! kcom recv [--ipv4] [--port N] [--timeout S] [--address ADDR] [-o FILE] [--json]
//! kcom pack PORT KEYHEX
//! kcom unpack ADDRESS
//! ```
//!
//! `kcom pack` prints exactly what the protocol crate's `pack` returns:
//!
//! ```
//! assert_eq!(switchboard_proto::kcom::pack(13600, &[0x01, 0xab]).unwrap(), "13600.01.ab");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
