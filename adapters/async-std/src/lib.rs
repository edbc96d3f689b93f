//! # switchboard-async-std
//!
//! **Deprecated runtime:** async-std was discontinued upstream in 2025; new code should use
//! `switchboard-smol`. Coming with the runtime-adapters issue: a generic driver for async-std.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
