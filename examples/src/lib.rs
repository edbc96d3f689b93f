//! Runnable examples: see `src/bin/`.
#![forbid(unsafe_code)]
