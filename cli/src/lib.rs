//! Command-line tools.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
