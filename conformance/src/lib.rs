//! # switchboard-conformance
//!
//! Conformance tests against independent peers (see tests/).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
