//! # switchboard-tokio
//!
//! Coming with the runtime-adapters issue: a generic driver that runs any Switchboard machine on tokio.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
