//! Benchmark harness helpers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
