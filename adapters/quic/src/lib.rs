//! # switchboard-quic
//!
//! Coming with the QUIC issue: Switchboard machines over quinn streams and datagrams.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
