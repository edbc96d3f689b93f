//! # switchboard-std
//!
//! The blocking driver: runs any Switchboard machine over a std TcpStream or UnixStream.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
