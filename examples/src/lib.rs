//! Runnable examples: see `src/bin/`.
//!
//! * `framing_demo`: a STAGE packet-framing echo server on loopback driven by
//!   `switchboard-std`, several clients (some coalescing with a commit timer) and a text-filter
//!   connection, every echo verified, and a short report.
//! * `event_loop`: a machine driven by a hand-written single-threaded event loop over
//!   non-blocking std sockets (`mio` for readiness, `Pump` for the bookkeeping, no runtime).
#![forbid(unsafe_code)]
