//! # switchboard-sim
//!
//! Coming with the simulator issue: a virtual-clock driver and in-memory links for deterministic tests.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
